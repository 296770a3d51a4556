//! Tokens, API keys, expiry links, passwords and limits, on a manual clock.

use std::sync::Arc;

use base64::Engine;
use serde_json::{json, Value};
use switchyard_plugin_api::ConnectionId;
use switchyard_security::clock::{Clock, ManualClock};
use switchyard_security::expiry::TokenLinks;
use switchyard_security::limits::{
    FixedWindowLimiter, LockoutConfig, LoginGuard, RateWindow, RequestLimits, TokenBucket,
};
use switchyard_security::password::{kuzzle_hash, Argon2Params, LocalCredentials, StoredPassword};
use switchyard_security::repository::{InMemoryRepository, SecurityRepository};
use switchyard_security::secret::{sha256_hex, Secret};
use switchyard_security::token::{
    parse_ms, ExpiresIn, IssueOptions, TokenConfig, TokenKind, TokenService,
};

const T0: i64 = 1_700_000_000_000;

fn service(config: TokenConfig) -> (TokenService, ManualClock, Arc<InMemoryRepository>) {
    let clock = ManualClock::at(T0);
    let repository = Arc::new(InMemoryRepository::new());
    let (service, generated) = TokenService::new(
        config,
        Some(Secret::new("test-secret")),
        repository.clone(),
        Arc::new(clock.clone()),
    )
    .unwrap();
    assert!(!generated);
    (service, clock, repository)
}

fn error_id(result: switchyard_security::Result<impl std::fmt::Debug>) -> &'static str {
    result.unwrap_err().id()
}

/// What the SDK does (`src/core/Jwt.ts`): segment 1, standard base64 alphabet, JSON.
fn sdk_decode(token: &str) -> Value {
    let segment = token.split('.').nth(1).unwrap();
    assert!(
        !segment.contains(['-', '_']),
        "the SDK would skip these characters: {segment}"
    );
    let padded = format!("{segment}{}", "=".repeat((4 - segment.len() % 4) % 4));
    serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(padded)
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn login_tokens_have_kuzzles_shape() {
    let (tokens, _clock, _) = service(TokenConfig::default());
    let issued = tokens
        .issue("my-user-id", None, IssueOptions::default())
        .unwrap();
    let token = issued.token.expose();
    assert!(
        token.starts_with("kauth-eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."),
        "{token}"
    );
    let claims = sdk_decode(token);
    assert_eq!(claims["_id"], "my-user-id");
    assert_eq!(claims["iat"], T0 / 1000);
    assert_eq!(claims["exp"], T0 / 1000 + 3600);
    let result = issued.to_login_result();
    assert_eq!(result["_id"], "my-user-id");
    assert_eq!(result["expiresAt"], T0 + 3_600_000);
    assert_eq!(result["ttl"], 3_600_000);
    assert_eq!(result["jwt"], token);
    // Two tokens in the same second differ (Kuzzle's would not).
    let again = tokens
        .issue("my-user-id", None, IssueOptions::default())
        .unwrap();
    assert_ne!(again.token, issued.token);
    // Many kuids, every one decodable by the SDK.
    for n in 0..300 {
        let issued = tokens
            .issue(
                &format!("kuid-adjective-name-{n}"),
                None,
                IssueOptions::default(),
            )
            .unwrap();
        sdk_decode(issued.token.expose());
    }
    assert!(
        !format!("{issued:?}").contains(token),
        "Debug must not show the token"
    );
}

#[test]
fn a_jwt_made_elsewhere_with_the_secret_verifies() {
    // Built with Python's hmac, independently of this crate: base64url (unpadded) of
    // {"alg":"HS256","typ":"JWT"} and {"_id":"my-user-id","iat":1700000000,"exp":1700003600},
    // signed with HMAC-SHA256 under the key "test-secret".
    let jwt = "kauth-eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJfaWQiOiJteS11c2VyLWlkIiwiaWF0IjoxNzAwMDAwMDAwLCJleHAiOjE3MDAwMDM2MDB9.uG5EMxCMcsyJCvK4YcqRpf7qlPYCAh8Z-WbJOsTWH9c";
    let (tokens, _clock, repository) = service(TokenConfig::default());
    // A valid signature without a server-side record is refused.
    assert_eq!(error_id(tokens.verify(Some(jwt))), "security.token.invalid");
    repository
        .put_token(&switchyard_security::token::TokenRecord {
            fingerprint: sha256_hex(jwt.as_bytes()),
            user_id: "my-user-id".into(),
            kind: TokenKind::AuthToken,
            expires_at: T0 + 3_600_000,
            ttl: 3_600_000,
            refreshed: false,
            single_use: false,
            valid_until: T0 + 3_600_000,
        })
        .unwrap();
    assert_eq!(tokens.verify(Some(jwt)).unwrap().kuid(), "my-user-id");
    // One character of signature changed.
    let forged = jwt.replace("H9c", "H9d");
    assert_eq!(
        error_id(tokens.verify(Some(&forged))),
        "security.token.invalid"
    );
}

#[test]
fn verification_errors() {
    let (tokens, clock, _) = service(TokenConfig::default());
    assert_eq!(tokens.verify(None).unwrap().kuid(), "-1");
    for bad in [
        "",
        "kauth-",
        "kauth-a.b",
        "kauth-a.b.c",
        "not a token",
        "kauth-eyJhbGciOiJub25lIn0.eyJfaWQiOiJ4In0.",
    ] {
        let error = tokens.verify(Some(bad)).unwrap_err();
        assert_eq!(
            (error.id(), error.message()),
            ("security.token.invalid", "Invalid token.".to_owned()),
            "{bad:?}"
        );
    }
    let issued = tokens
        .issue(
            "alice",
            Some(ExpiresIn::Millis(10_000)),
            IssueOptions::default(),
        )
        .unwrap();
    let token = issued.token.expose().to_owned();
    assert!(tokens.verify(Some(&token)).is_ok());
    // Signed with another secret.
    let (other, _, _) = service(TokenConfig::default());
    let (other_secret, _) = TokenService::new(
        TokenConfig::default(),
        Some(Secret::new("another")),
        Arc::new(InMemoryRepository::new()),
        Arc::new(ManualClock::at(T0)),
    )
    .unwrap();
    let foreign = other_secret
        .issue("alice", None, IssueOptions::default())
        .unwrap();
    assert_eq!(
        error_id(tokens.verify(Some(foreign.token.expose()))),
        "security.token.invalid"
    );
    drop(other);
    clock.advance(10_000);
    let error = tokens.verify(Some(&token)).unwrap_err();
    assert_eq!(
        (error.id(), error.message()),
        ("security.token.expired", "Token expired".to_owned())
    );
    assert_eq!(error.to_kuzzle().spec.code, 117506054);
}

#[test]
fn logout_refresh_and_revocation() {
    let (tokens, clock, _) = service(TokenConfig::default());
    let first = tokens
        .issue("alice", None, IssueOptions::default())
        .unwrap();
    let first_token = first.token.expose().to_owned();
    let refreshed = tokens.refresh(&first.record, None).unwrap();
    // The old token lives for the grace period, and cannot be refreshed again.
    let old = match tokens.verify(Some(&first_token)).unwrap() {
        switchyard_security::token::Identity::Token(record) => record,
        other => panic!("{other:?}"),
    };
    assert!(old.refreshed);
    assert_eq!(
        error_id(tokens.refresh(&old, None)),
        "security.token.invalid"
    );
    clock.advance(1000);
    assert_eq!(
        error_id(tokens.verify(Some(&first_token))),
        "security.token.invalid"
    );
    assert!(tokens.verify(Some(refreshed.token.expose())).is_ok());
    // Logout.
    assert!(tokens.revoke(&refreshed.record.fingerprint).unwrap());
    assert_eq!(
        error_id(tokens.verify(Some(refreshed.token.expose()))),
        "security.token.invalid"
    );

    // Infinite tokens and API keys cannot be refreshed.
    let forever = tokens
        .issue("alice", Some(ExpiresIn::Never), IssueOptions::default())
        .unwrap();
    assert_eq!(forever.record.expires_at, -1);
    assert!(!sdk_decode(forever.token.expose())
        .as_object()
        .unwrap()
        .contains_key("exp"));
    let error = tokens.refresh(&forever.record, None).unwrap_err();
    assert_eq!(
        (error.id(), error.message()),
        (
            "security.token.refresh_forbidden",
            "Token cannot be refreshed.".to_owned()
        )
    );

    // revokeTokens / deleteUser: everything but API keys.
    let a = tokens.issue("bob", None, IssueOptions::default()).unwrap();
    let (key, key_token) = tokens
        .create_api_key("bob", "ci", None, None, false)
        .unwrap();
    let mut revoked = tokens.revoke_user("bob", true).unwrap();
    revoked.sort();
    assert_eq!(revoked, vec![a.record.fingerprint.clone()]);
    assert!(tokens.verify(Some(key_token.expose())).is_ok());
    assert_eq!(
        tokens.revoke_user("bob", false).unwrap(),
        vec![key.fingerprint.clone()]
    );
}

#[test]
fn expires_in_rules() {
    let (tokens, _clock, _) = service(TokenConfig {
        max_ttl_ms: Some(60_000),
        ..Default::default()
    });
    let error = tokens
        .issue(
            "a",
            Some(ExpiresIn::Millis(60_001)),
            IssueOptions::default(),
        )
        .unwrap_err();
    assert_eq!(
        (error.id(), error.message()),
        (
            "security.token.ttl_exceeded",
            "expiresIn value exceeds maximum allowed value".to_owned()
        )
    );
    assert_eq!(
        error_id(tokens.issue("a", Some(ExpiresIn::Never), IssueOptions::default())),
        "security.token.ttl_exceeded"
    );
    let error = tokens
        .issue(
            "a",
            Some(ExpiresIn::parse(&json!("soon"))),
            IssueOptions::default(),
        )
        .unwrap_err();
    assert_eq!(
        (error.id(), error.message()),
        ("api.assert.invalid_argument", r#"Invalid argument "expiresIn". Expected: a number of milliseconds, or a parsable timespan string"#.to_owned())
    );
    // API keys ignore the login cap (their own is unset).
    assert!(tokens.create_api_key("a", "d", None, None, false).is_ok());

    let table = [
        (json!(1000), ExpiresIn::Millis(1000)),
        (json!(-1), ExpiresIn::Never),
        (json!("-1"), ExpiresIn::Never),
        (json!("1h"), ExpiresIn::Millis(3_600_000)),
        (json!("1.5 hours"), ExpiresIn::Millis(5_400_000)),
        (json!("6d"), ExpiresIn::Millis(518_400_000)),
        (json!("10s"), ExpiresIn::Millis(10_000)),
        (json!("2 Minutes"), ExpiresIn::Millis(120_000)),
        (json!("1y"), ExpiresIn::Millis(31_557_600_000)),
        (json!("100"), ExpiresIn::Millis(100)),
        (json!(".5s"), ExpiresIn::Millis(500)),
        (json!("1h30"), ExpiresIn::Millis(0)),
        (json!(""), ExpiresIn::Millis(0)),
        (json!(true), ExpiresIn::Millis(0)),
    ];
    for (value, expected) in table {
        assert_eq!(ExpiresIn::parse(&value), expected, "{value}");
    }
    assert_eq!(parse_ms("1."), None);
}

#[test]
fn single_use_tokens_and_api_keys() {
    let (tokens, _clock, repository) = service(TokenConfig::default());
    let once = tokens
        .issue(
            "alice",
            Some(ExpiresIn::Millis(60_000)),
            IssueOptions {
                single_use: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(once.to_create_token_result()["singleUse"], true);
    assert!(tokens.verify(Some(once.token.expose())).is_ok());
    assert_eq!(
        error_id(tokens.verify(Some(once.token.expose()))),
        "security.token.invalid"
    );

    let (key, token) = tokens
        .create_api_key("alice", "my key", None, Some("k1"), false)
        .unwrap();
    assert!(token.expose().starts_with("kapikey-"));
    assert_eq!(key.fingerprint, sha256_hex(token.expose().as_bytes()));
    assert_eq!(key.expires_at, -1);
    let created = key.to_api(Some(&token));
    assert_eq!(created["_source"]["token"], token.expose());
    assert_eq!(created["_id"], "k1");
    assert!(key.to_api(None)["_source"].get("token").is_none());
    assert_eq!(tokens.verify(Some(token.expose())).unwrap().kuid(), "alice");
    assert_eq!(
        repository.api_keys_of_user("alice").unwrap(),
        vec![key.clone()]
    );
    assert!(tokens.delete_api_key("alice", "k1").unwrap().is_some());
    assert_eq!(
        error_id(tokens.verify(Some(token.expose()))),
        "security.token.invalid"
    );
    // Default id: the fingerprint.
    let (key, _) = tokens
        .create_api_key("alice", "other", None, None, false)
        .unwrap();
    assert_eq!(key.id, key.fingerprint);
}

#[test]
fn generated_seed_is_stored_once_and_reused() {
    let repository: Arc<InMemoryRepository> = Arc::new(InMemoryRepository::new());
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::at(T0));
    let (first, generated) = TokenService::new(
        TokenConfig::default(),
        None,
        repository.clone(),
        clock.clone(),
    )
    .unwrap();
    assert!(generated);
    assert_eq!(
        repository.signing_seed().unwrap().unwrap().expose().len(),
        1024
    );
    let token = first.issue("alice", None, IssueOptions::default()).unwrap();
    // A restart: same repository, same seed, the token still verifies.
    let (second, generated) =
        TokenService::new(TokenConfig::default(), None, repository, clock).unwrap();
    assert!(!generated);
    assert!(second.verify(Some(token.token.expose())).is_ok());
    assert!(!format!("{second:?}").contains(&token.token.expose()[6..20]));
}

fn record(fingerprint: &str, expires_at: i64) -> switchyard_security::token::TokenRecord {
    switchyard_security::token::TokenRecord {
        fingerprint: fingerprint.into(),
        user_id: format!("user-of-{fingerprint}"),
        kind: TokenKind::AuthToken,
        expires_at,
        ttl: 1000,
        refreshed: false,
        single_use: false,
        valid_until: expires_at,
    }
}

#[test]
fn expiry_schedule_and_connection_links() {
    let mut links = TokenLinks::new();
    let (c1, c2, c3) = (ConnectionId(1), ConnectionId(2), ConnectionId(3));
    links.link(c1, &record("a", 300));
    links.link(c2, &record("a", 300));
    links.link(c3, &record("b", 100));
    links.link(ConnectionId(4), &record("forever", -1));
    assert_eq!(links.next_expiry(), Some(100));
    assert!(links.take_expired(99).is_empty());
    let expired = links.take_expired(100);
    assert_eq!(expired.len(), 1);
    assert_eq!(
        (expired[0].connection, expired[0].fingerprint.as_str()),
        (c3, "b")
    );
    assert_eq!(links.next_expiry(), Some(300));
    // A re-login on c1 moves it to its new token.
    links.link(c1, &record("c", 500));
    assert_eq!(links.token_of(c1), Some("c"));
    // A refresh moves every connection of the old token.
    links.refresh("a", &record("a2", 700));
    assert_eq!(links.token_of(c2), Some("a2"));
    assert_eq!(links.next_expiry(), Some(500));
    // Revocation: the still-linked connections, silently.
    assert_eq!(links.revoke("a2"), vec![c2]);
    assert_eq!(links.token_of(c2), None);
    // Logout on a connection unlinks it; the token leaves the schedule with its last link.
    assert_eq!(links.unlink(c1).as_deref(), Some("c"));
    assert_eq!(links.next_expiry(), None);
    assert_eq!(links.len(), 1, "the never-expiring token stays linked");
    assert!(links.take_expired(i64::MAX).is_empty());
}

#[test]
fn kuzzle_local_strategy_hashes_verify() {
    // Python: hashlib.pbkdf2_hmac('sha512', b'p4ssw0rd', ('ab'*128).encode(), 10000, 512).hex(),
    // compared through its SHA-512 to keep the test short.
    let salt = "ab".repeat(128);
    let hash = kuzzle_hash("p4ssw0rd", &salt, "sha512", true, "hmac", "hex").unwrap();
    assert_eq!(hash.len(), 1024);
    assert_eq!(
        switchyard_security::secret::to_hex(&<sha2::Sha512 as sha2::Digest>::digest(hash.as_bytes())),
        "3e28e51422d2befe6d87188d45f01a437ba44a6e653644922a5bbe52cbae5602cc0432773a8e73d2e62a08fb2d45a5de2e1697115e7b74d83e5ad9883103db5d"
    );
    // hmac.new(b'somesalt', b'p4ssw0rd', 'sha512').hexdigest()
    assert_eq!(
        kuzzle_hash("p4ssw0rd", "somesalt", "sha512", false, "hmac", "hex").unwrap(),
        "d8f996fdca49de57caf30e4181c31b4866032f593a39a3a65881c317c37b5a8b238d8843da984bf473cea9999ae1612cbeb5bb33599e7f8251c3c0ff96f726e3"
    );
    // hashlib.sha256(b'somesalt:p4ssw0rd').hexdigest()
    assert_eq!(
        kuzzle_hash("p4ssw0rd", "somesalt", "sha256", false, "hash", "hex").unwrap(),
        "ebacb770960f5009de72df9175ec42dfdf6ad827854b66af9e84e58446256911"
    );

    let mut document = serde_json::Map::new();
    document.insert("kuid".into(), json!("alice"));
    document.insert("userPassword".into(), json!(hash));
    document.insert("userSalt".into(), json!(salt));
    document.insert("algorithm".into(), json!("sha512"));
    document.insert("stretching".into(), json!(true));
    document.insert("pepper".into(), json!(false));
    document.insert("encryption".into(), json!("hmac"));
    let credentials =
        LocalCredentials::from_kuzzle_document("alice-login", &document, "hex").unwrap();
    assert!(credentials
        .password
        .verify(&Secret::new("p4ssw0rd"))
        .unwrap());
    assert!(!credentials
        .password
        .verify(&Secret::new("p4ssw0rD"))
        .unwrap());
    assert!(credentials.password.needs_rehash(&Argon2Params::default()));
    assert_eq!(
        credentials.to_api(),
        json!({"username": "alice-login", "kuid": "alice"})
    );
    let shown = format!("{credentials:?}");
    assert!(
        !shown.contains(&salt) && !shown.contains(&hash[..32]),
        "{shown}"
    );
}

#[test]
fn argon2id_hashes() {
    // Small parameters keep the test fast; the defaults are OWASP's.
    let params = Argon2Params {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };
    let stored = StoredPassword::hash(&Secret::new("correct horse"), &params).unwrap();
    let StoredPassword::Argon2id(phc) = &stored else {
        panic!()
    };
    assert!(phc.expose().starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
    assert!(stored.verify(&Secret::new("correct horse")).unwrap());
    assert!(!stored.verify(&Secret::new("correct horsf")).unwrap());
    assert!(!stored.needs_rehash(&params));
    assert!(stored.needs_rehash(&Argon2Params::default()));
    assert_eq!(format!("{stored:?}"), "Argon2id(***)");
    assert_eq!(
        Argon2Params::default(),
        Argon2Params {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1
        }
    );
}

#[test]
fn limits_on_a_manual_clock() {
    let clock = ManualClock::at(T0);
    let shared: Arc<dyn Clock> = Arc::new(clock.clone());

    let limits: RequestLimits<ConnectionId> = RequestLimits::new(1, shared.clone());
    let c = ConnectionId(7);
    assert!(limits.check(&c, "-1", None, "auth", "login").is_ok());
    let error = limits.check(&c, "-1", None, "auth", "login").unwrap_err();
    assert_eq!(
        (error.id(), error.status(), error.spec.code),
        ("api.process.too_many_logins_requests", 429, 33685517)
    );
    assert!(
        limits
            .check(&ConnectionId(8), "-1", None, "auth", "login")
            .is_ok(),
        "per connection"
    );
    clock.advance(1000);
    assert!(limits.check(&c, "-1", None, "auth", "login").is_ok());

    for _ in 0..10 {
        assert!(limits
            .check(&c, "alice", Some(10), "document", "get")
            .is_ok());
    }
    let error = limits
        .check(&c, "alice", Some(10), "document", "get")
        .unwrap_err();
    assert_eq!(
        (error.id(), error.message.as_ref()),
        (
            "api.process.too_many_requests",
            "Rejected: requests rate limit exceeded for this user."
        )
    );
    assert!(
        limits
            .check(&c, "alice", Some(10), "auth", "logout")
            .is_ok(),
        "logout is never limited"
    );
    assert!(
        limits.check(&c, "bob", Some(10), "document", "get").is_ok(),
        "per user"
    );
    assert!(limits.check(&c, "carol", None, "document", "get").is_ok());
    clock.advance(1000);
    assert!(limits
        .check(&c, "alice", Some(10), "document", "get")
        .is_ok());

    // The anonymous user is a user like the others (its own counter, shared by every
    // anonymous connection, as Kuzzle's frame["-1"]).
    for _ in 0..3 {
        assert!(limits.check(&c, "-1", Some(3), "server", "now").is_ok());
    }
    assert_eq!(
        limits
            .check(&ConnectionId(9), "-1", Some(3), "server", "now")
            .unwrap_err()
            .id(),
        "api.process.too_many_requests"
    );
    assert_eq!(
        limits
            .check(&c, "-1", Some(3), "auth", "logout")
            .unwrap_err()
            .id(),
        "api.process.too_many_requests",
        "an anonymous logout is limited"
    );

    let window = FixedWindowLimiter::new(2, 60_000, shared.clone());
    assert!(window.try_acquire(&"k") && window.try_acquire(&"k") && !window.try_acquire(&"k"));

    let bucket = TokenBucket::new(2, 1.0, shared.clone());
    assert!(bucket.try_acquire(&"k") && bucket.try_acquire(&"k") && !bucket.try_acquire(&"k"));
    clock.advance(999);
    assert!(!bucket.try_acquire(&"k"));
    clock.advance(1);
    assert!(bucket.try_acquire(&"k"));

    let guard = LoginGuard::new(
        LockoutConfig {
            max_failures: 3,
            window_ms: 60_000,
            lockout_ms: 600_000,
        },
        shared,
    );
    for _ in 0..2 {
        guard.record_failure("alice", "10.0.0.1");
    }
    assert!(guard.check("alice", "10.0.0.1").is_ok());
    guard.record_failure("alice", "10.0.0.2");
    let until = guard.check("alice", "10.0.0.9").unwrap_err();
    assert_eq!(until, clock.now_ms() + 600_000);
    assert!(guard.check("bob", "10.0.0.9").is_ok());
    for user in ["u1", "u2", "u3"] {
        guard.record_failure(user, "10.6.6.6");
    }
    assert!(guard.check("dave", "10.6.6.6").is_err(), "per address");
    clock.advance(600_000);
    assert!(guard.check("alice", "10.0.0.9").is_ok());
}

#[test]
fn a_rate_window_admits_exactly_its_limit_across_threads() {
    let window = Arc::new(RateWindow::default());
    let admitted = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..10_000 {
                    if window.try_acquire(T0, 5_000) {
                        admitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(admitted.into_inner(), 5_000);
    assert!(window.try_acquire(T0 + 1000, 1), "a new second starts over");
    assert!(!window.try_acquire(T0 + 1000, 1));
    assert!(
        !window.try_acquire(T0, 1),
        "a late clock read counts in the newer window"
    );
}

#[test]
fn local_strategy_login_and_rights_loading() {
    use switchyard_security::auth::{load_user_rights, LocalStrategy};
    use switchyard_security::{defaults, RightsRequest, User};

    let repository = Arc::new(InMemoryRepository::new());
    for role in defaults::standard_roles() {
        repository.put_role(&role, true).unwrap();
    }
    for profile in defaults::standard_profiles() {
        repository.put_profile(&profile, true).unwrap();
    }
    let alice = User::from_content("alice", &json!({"profileIds": ["default"]})).unwrap();
    repository.put_user(&alice, true).unwrap();
    let params = Argon2Params {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };
    let strategy = LocalStrategy::new(repository.clone(), params).unwrap();

    // An imported Kuzzle hash logs in, then is re-hashed with Argon2id.
    let salt = "0f".repeat(128);
    let hash = kuzzle_hash("s3cret", &salt, "sha512", true, "hmac", "hex").unwrap();
    let imported = StoredPassword::Kuzzle {
        hash: Secret::new(hash),
        salt: Secret::new(salt),
        algorithm: "sha512".into(),
        stretching: true,
        encryption: "hmac".into(),
        digest: "hex".into(),
    };
    repository
        .put_credentials(&LocalCredentials {
            username: "alice-login".into(),
            kuid: "alice".into(),
            password: imported,
        })
        .unwrap();
    assert_eq!(
        strategy
            .verify(&json!({"username": "alice-login", "password": "s3cret"}))
            .unwrap(),
        "alice"
    );
    let stored = repository
        .credentials_by_username("alice-login")
        .unwrap()
        .unwrap();
    assert!(matches!(stored.password, StoredPassword::Argon2id(_)));
    assert_eq!(
        strategy
            .verify(&json!({"username": "alice-login", "password": "s3cret"}))
            .unwrap(),
        "alice"
    );

    for (body, message) in [
        (
            json!({"username": "alice-login", "password": "nope"}),
            "wrong username or password",
        ),
        (
            json!({"username": "nobody", "password": "s3cret"}),
            "wrong username or password",
        ),
        (json!({"username": "alice-login"}), "Missing credentials"),
        (json!({}), "Missing credentials"),
    ] {
        let error = strategy.verify(&body).unwrap_err();
        assert_eq!(
            (error.id(), error.message()),
            ("plugin.strategy.missing_user", message.to_owned()),
            "{body}"
        );
        assert_eq!(error.to_kuzzle().status(), 401);
    }

    let (user, rights) = load_user_rights(&*repository, "alice").unwrap();
    assert_eq!(user.id, "alice");
    assert!(rights.is_allowed(&RightsRequest::new("auth", "logout")));
    assert!(!rights.is_allowed(&RightsRequest::new("document", "get").on("i", "c")));
    let (anonymous, rights) = load_user_rights(&*repository, "-1").unwrap();
    assert!(anonymous.is_anonymous());
    assert!(rights.is_allowed(&RightsRequest::new("auth", "login")));
    assert_eq!(
        load_user_rights(&*repository, "bob").unwrap_err().message(),
        r#"User "bob" not found."#
    );
    let ghost = User {
        id: "ghost".into(),
        profile_ids: vec!["gone".into()],
        content: Default::default(),
    };
    repository.put_user(&ghost, true).unwrap();
    assert_eq!(
        load_user_rights(&*repository, "ghost")
            .unwrap_err()
            .message(),
        r#"Unable to hydrate the user "ghost": missing profile(s) in the database"#
    );
}
