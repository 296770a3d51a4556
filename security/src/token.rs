//! Authentication tokens as Kuzzle makes them (`tokenRepository.ts`): `"kauth-"` (or
//! `"kapikey-"` for API keys) followed by an HS256 JWT `{_id, iat, exp}`, valid only while a
//! server-side record exists, so logout, refresh grace periods, single use and revocation work
//! whatever the signature says.
//!
//! We add a random `jti` claim so two tokens issued in the same second differ (Kuzzle's are
//! byte-identical then), drawn again until the payload segment has no `-` or `_`: the SDK decodes
//! it with the standard base64 alphabet. Records are keyed by SHA-256 of the whole token (its
//! *fingerprint*), so the store never holds a usable token.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Sha256, Sha384, Sha512};
use switchyard_plugin_api::errors;

use crate::clock::Clock;
use crate::error::{Result, SecurityError};
use crate::repository::SecurityRepository;
use crate::secret::{random_bytes, sha256_hex, to_hex, Secret};

/// Prefix of authentication tokens.
pub const AUTH_PREFIX: &str = "kauth-";
/// Prefix of API keys.
pub const API_KEY_PREFIX: &str = "kapikey-";

/// A token lifetime: `expiresIn` parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiresIn {
    /// `-1`: no `exp`, `expiresAt: -1`.
    Never,
    /// A number of milliseconds (0 is refused when a token is made, as Kuzzle does).
    Millis(i64),
}

impl ExpiresIn {
    /// Kuzzle's `parseTimespan`: a number is milliseconds, a string goes through the `ms`
    /// package (`"1h"`, `"6d"`, `"1.5 hours"`), anything unparsable is 0.
    pub fn parse(value: &Value) -> ExpiresIn {
        let millis = match value {
            Value::Number(n) => n.as_f64().unwrap_or(0.0),
            Value::String(s) => parse_ms(s).unwrap_or(0.0),
            _ => 0.0,
        };
        if millis == -1.0 {
            ExpiresIn::Never
        } else {
            ExpiresIn::Millis(millis.floor() as i64)
        }
    }

    /// The TTL Kuzzle reports: `-1` for never.
    pub fn ttl(self) -> i64 {
        match self {
            ExpiresIn::Never => -1,
            ExpiresIn::Millis(ms) => ms,
        }
    }
}

/// The `ms` package's `parse` (v2.1): a number with an optional unit, case-insensitive;
/// `None` where `ms()` returns `undefined`.
pub fn parse_ms(text: &str) -> Option<f64> {
    if text.is_empty() || text.len() > 100 {
        return None;
    }
    let bytes = text.as_bytes();
    let mut at = 0;
    if bytes.first() == Some(&b'-') {
        at = 1;
    }
    let number_start = at;
    while at < bytes.len() && (bytes[at].is_ascii_digit() || bytes[at] == b'.') {
        at += 1;
    }
    let number = &text[number_start..at];
    // `(?:\d+)?\.?\d+`: digits, at most one dot, ending with a digit.
    let dots = number.bytes().filter(|b| *b == b'.').count();
    if number.is_empty() || dots > 1 || number.ends_with('.') {
        return None;
    }
    let value: f64 = text[..at].parse().ok()?;
    let unit = text[at..].trim_start_matches(' ').to_ascii_lowercase();
    const SECOND: f64 = 1000.0;
    const MINUTE: f64 = SECOND * 60.0;
    const HOUR: f64 = MINUTE * 60.0;
    const DAY: f64 = HOUR * 24.0;
    let factor = match unit.as_str() {
        "" | "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => 1.0,
        "s" | "sec" | "secs" | "second" | "seconds" => SECOND,
        "m" | "min" | "mins" | "minute" | "minutes" => MINUTE,
        "h" | "hr" | "hrs" | "hour" | "hours" => HOUR,
        "d" | "day" | "days" => DAY,
        "w" | "week" | "weeks" => DAY * 7.0,
        "y" | "yr" | "yrs" | "year" | "years" => DAY * 365.25,
        _ => return None,
    };
    Some(value * factor)
}

/// `security.authToken` and `security.apiKey` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenConfig {
    /// HMAC algorithm: `HS256` (default), `HS384` or `HS512`.
    pub algorithm: String,
    /// Default lifetime of a login token (`"1h"`).
    pub expires_in: ExpiresIn,
    /// How long a refreshed token stays valid, in ms (1000).
    pub grace_period_ms: i64,
    /// Largest lifetime a login may ask for, in ms; `None` is no cap (Kuzzle's -1).
    pub max_ttl_ms: Option<i64>,
    /// The same for API keys.
    pub api_key_max_ttl_ms: Option<i64>,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            algorithm: "HS256".into(),
            expires_in: ExpiresIn::Millis(3_600_000),
            grace_period_ms: 1000,
            max_ttl_ms: None,
            api_key_max_ttl_ms: None,
        }
    }
}

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A login token (`kauth-`).
    AuthToken,
    /// An API key (`kapikey-`).
    ApiKey,
}

/// The server-side record of a token: it exists while the token is usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// SHA-256 (hex) of the whole token string.
    pub fingerprint: String,
    /// The kuid it authenticates.
    pub user_id: String,
    /// Login token or API key.
    pub kind: TokenKind,
    /// Epoch ms of expiry; -1 is never.
    pub expires_at: i64,
    /// The lifetime asked for, in ms; -1 is never.
    pub ttl: i64,
    /// Whether it was refreshed (then it lives until `valid_until`, the grace period).
    pub refreshed: bool,
    /// Whether the first verification consumes it.
    pub single_use: bool,
    /// Epoch ms after which the record is gone (Kuzzle's cache TTL); -1 is never.
    pub valid_until: i64,
}

impl TokenRecord {
    fn is_live(&self, now_ms: i64) -> bool {
        self.valid_until < 0 || now_ms < self.valid_until
    }
}

/// A token just made: the string is returned once, to its owner.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The token (`kauth-…`/`kapikey-…`).
    pub token: Secret,
    /// Its record.
    pub record: TokenRecord,
}

impl IssuedToken {
    /// The `auth:login`/`refreshToken` result: `{_id, jwt, expiresAt, ttl}`.
    pub fn to_login_result(&self) -> Value {
        let mut out = Map::new();
        out.insert("_id".into(), Value::String(self.record.user_id.clone()));
        out.insert("jwt".into(), Value::String(self.token.expose().to_owned()));
        out.insert("expiresAt".into(), Value::from(self.record.expires_at));
        out.insert("ttl".into(), Value::from(self.record.ttl));
        Value::Object(out)
    }

    /// The `auth:createToken` result: `{token, expiresAt, ttl, singleUse}`.
    pub fn to_create_token_result(&self) -> Value {
        let mut out = Map::new();
        out.insert(
            "token".into(),
            Value::String(self.token.expose().to_owned()),
        );
        out.insert("expiresAt".into(), Value::from(self.record.expires_at));
        out.insert("ttl".into(), Value::from(self.record.ttl));
        out.insert("singleUse".into(), Value::Bool(self.record.single_use));
        Value::Object(out)
    }
}

/// Who a request is from, once its token is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// No token: the anonymous user `-1` (`expiresAt: null` in `checkToken`).
    Anonymous,
    /// A verified token.
    Token(TokenRecord),
}

impl Identity {
    /// The kuid.
    pub fn kuid(&self) -> &str {
        match self {
            Identity::Anonymous => crate::model::ANONYMOUS_KUID,
            Identity::Token(record) => &record.user_id,
        }
    }
}

/// An API key: `{_id, _source:{userId, description, expiresAt, ttl, fingerprint}}` (the token
/// itself only in the creation result).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The key's id.
    pub id: String,
    /// Its owner.
    pub user_id: String,
    /// Its description.
    pub description: String,
    /// Epoch ms of expiry, -1 never.
    pub expires_at: i64,
    /// Lifetime in ms, -1 never.
    pub ttl: i64,
    /// SHA-256 of the token.
    pub fingerprint: String,
}

impl ApiKey {
    /// `{_id, _source}`; `token` only in `createApiKey`'s result.
    pub fn to_api(&self, token: Option<&Secret>) -> Value {
        let mut source = Map::new();
        source.insert("userId".into(), Value::String(self.user_id.clone()));
        source.insert(
            "description".into(),
            Value::String(self.description.clone()),
        );
        source.insert("expiresAt".into(), Value::from(self.expires_at));
        source.insert("ttl".into(), Value::from(self.ttl));
        source.insert(
            "fingerprint".into(),
            Value::String(self.fingerprint.clone()),
        );
        if let Some(token) = token {
            source.insert("token".into(), Value::String(token.expose().to_owned()));
        }
        let mut out = Map::new();
        out.insert("_id".into(), Value::String(self.id.clone()));
        out.insert("_source".into(), Value::Object(source));
        Value::Object(out)
    }
}

/// Options of [`TokenService::issue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssueOptions {
    /// Login token or API key.
    pub kind: TokenKind,
    /// Ignore `maxTTL` (`security:createApiKey`).
    pub bypass_max_ttl: bool,
    /// Consumed by its first verification (`auth:createToken`).
    pub single_use: bool,
}

impl Default for IssueOptions {
    fn default() -> Self {
        IssueOptions {
            kind: TokenKind::AuthToken,
            bypass_max_ttl: false,
            single_use: false,
        }
    }
}

/// The signing key and algorithm.
#[derive(Clone)]
struct Signer {
    key: Secret,
    algorithm: &'static str,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

fn hmac_sign(algorithm: &str, key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut mac =
            <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }
    Some(match algorithm {
        "HS256" => run::<Hmac<Sha256>>(key, data),
        "HS384" => run::<Hmac<Sha384>>(key, data),
        "HS512" => run::<Hmac<Sha512>>(key, data),
        _ => return None,
    })
}

/// Makes, verifies, refreshes and revokes tokens and API keys over a repository.
pub struct TokenService {
    signer: Signer,
    config: TokenConfig,
    repository: Arc<dyn SecurityRepository>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("signer", &self.signer)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TokenService {
    /// A service signing with `secret` (`security.authToken.secret`), or when `None` with the
    /// seed stored in the repository, generated (512 random bytes, hex, as Kuzzle) and stored
    /// the first time. Whether the seed was generated now is returned, for a start-up warning.
    pub fn new(
        config: TokenConfig,
        secret: Option<Secret>,
        repository: Arc<dyn SecurityRepository>,
        clock: Arc<dyn Clock>,
    ) -> Result<(TokenService, bool)> {
        let algorithm = match config.algorithm.as_str() {
            "HS256" => "HS256",
            "HS384" => "HS384",
            "HS512" => "HS512",
            other => {
                return Err(errors::API_ASSERT_INVALID_ARGUMENT
                    .with(&[
                        "security.authToken.algorithm",
                        &format!("HS256, HS384 or HS512, not {other}"),
                    ])
                    .into())
            }
        };
        let (key, generated) = match secret.filter(|s| !s.is_empty()) {
            Some(secret) => (secret, false),
            None => match repository.signing_seed()? {
                Some(seed) => (seed, false),
                None => {
                    // Insert if absent, then read again: of nodes starting together on one
                    // empty store, the first to store its seed wins and all sign with it.
                    let seed = Secret::new(to_hex(&random_bytes(512)));
                    repository.put_signing_seed(&seed)?;
                    let stored = repository.signing_seed()?.ok_or_else(|| {
                        crate::error::RepositoryError::Storage(
                            "the token signing seed is missing right after it was stored".into(),
                        )
                    })?;
                    let generated = stored.expose() == seed.expose();
                    (stored, generated)
                }
            },
        };
        let service = TokenService {
            signer: Signer { key, algorithm },
            config,
            repository,
            clock,
        };
        Ok((service, generated))
    }

    /// The settings.
    pub fn config(&self) -> &TokenConfig {
        &self.config
    }

    /// `generateToken`: a token for `kuid` living `expires_in` (the configured default when
    /// `None`), recorded server-side.
    pub fn issue(
        &self,
        kuid: &str,
        expires_in: Option<ExpiresIn>,
        options: IssueOptions,
    ) -> Result<IssuedToken> {
        if kuid.is_empty() {
            return Err(errors::SECURITY_TOKEN_UNKNOWN_USER.error().into());
        }
        let expires_in = expires_in.unwrap_or(self.config.expires_in);
        let max_ttl = match options.kind {
            TokenKind::ApiKey => self.config.api_key_max_ttl_ms,
            TokenKind::AuthToken => self.config.max_ttl_ms,
        };
        if let (false, Some(max)) = (options.bypass_max_ttl, max_ttl) {
            let exceeded = match expires_in {
                ExpiresIn::Never => true,
                ExpiresIn::Millis(ms) => ms > max,
            };
            if exceeded {
                return Err(errors::SECURITY_TOKEN_TTL_EXCEEDED.error().into());
            }
        }
        if expires_in == ExpiresIn::Millis(0) {
            return Err(errors::API_ASSERT_INVALID_ARGUMENT
                .with(&[
                    "expiresIn",
                    "a number of milliseconds, or a parsable timespan string",
                ])
                .into());
        }
        let now = self.clock.now_ms();
        let iat = now.div_euclid(1000);
        let exp = match expires_in {
            ExpiresIn::Never => None,
            ExpiresIn::Millis(ms) => Some(iat + ms.div_euclid(1000)),
        };
        let prefix = match options.kind {
            TokenKind::AuthToken => AUTH_PREFIX,
            TokenKind::ApiKey => API_KEY_PREFIX,
        };
        let token = Secret::new(format!("{prefix}{}", self.sign(kuid, iat, exp)));
        let (expires_at, ttl) = match expires_in {
            ExpiresIn::Never => (-1, -1),
            ExpiresIn::Millis(ms) => (now + ms, ms),
        };
        let record = TokenRecord {
            fingerprint: sha256_hex(token.expose().as_bytes()),
            user_id: kuid.to_owned(),
            kind: options.kind,
            expires_at,
            ttl,
            refreshed: false,
            single_use: options.single_use,
            valid_until: expires_at,
        };
        self.repository.put_token(&record)?;
        Ok(IssuedToken { token, record })
    }

    fn sign(&self, kuid: &str, iat: i64, exp: Option<i64>) -> String {
        const HEADERS: [(&str, &str); 3] = [
            ("HS256", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"),
            ("HS384", "eyJhbGciOiJIUzM4NCIsInR5cCI6IkpXVCJ9"),
            ("HS512", "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9"),
        ];
        let header = HEADERS
            .iter()
            .find(|(alg, _)| *alg == self.signer.algorithm)
            .map(|h| h.1);
        let header = header.unwrap_or(HEADERS[0].1);
        let mut payload = String::new();
        for attempt in 0..64 {
            let mut claims = Map::new();
            claims.insert("_id".into(), Value::String(kuid.to_owned()));
            claims.insert("iat".into(), Value::from(iat));
            if let Some(exp) = exp {
                claims.insert("exp".into(), Value::from(exp));
            }
            claims.insert("jti".into(), Value::String(to_hex(&random_bytes(12))));
            payload = URL_SAFE_NO_PAD.encode(Value::Object(claims).to_string());
            // The SDK's decoder skips `-` and `_`; draw another jti until there are none (a kuid
            // that always produces one gets the last draw: it cannot be helped from here).
            if !payload.contains(['-', '_']) || attempt == 63 {
                break;
            }
        }
        let signing_input = format!("{header}.{payload}");
        let signature = hmac_sign(
            self.signer.algorithm,
            self.signer.key.expose().as_bytes(),
            signing_input.as_bytes(),
        )
        .unwrap_or_default();
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// `verifyToken`: `None` is the anonymous user; a bad token is `security.token.invalid`, a
    /// token past its `exp` `security.token.expired`, a token without a live record (logged
    /// out, revoked, refreshed past its grace period, single use already used) `invalid`.
    pub fn verify(&self, token: Option<&str>) -> Result<Identity> {
        let Some(token) = token else {
            return Ok(Identity::Anonymous);
        };
        let now = self.clock.now_ms();
        let kuid = self.verify_jwt(token, now)?;
        let fingerprint = sha256_hex(token.as_bytes());
        let record = self.repository.token(&fingerprint)?;
        let Some(record) = record.filter(|r| r.user_id == kuid && r.is_live(now)) else {
            return Err(invalid());
        };
        if record.single_use {
            self.repository.delete_token(&fingerprint)?;
        }
        Ok(Identity::Token(record))
    }

    /// `jsonwebtoken.verify` with the secret: the kuid, or why not.
    fn verify_jwt(&self, token: &str, now_ms: i64) -> Result<String> {
        let jwt = token
            .strip_prefix(AUTH_PREFIX)
            .or_else(|| token.strip_prefix(API_KEY_PREFIX))
            .unwrap_or(token);
        let mut parts = jwt.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        let decode_json = |segment: &str| -> Option<Map<String, Value>> {
            let bytes = URL_SAFE_NO_PAD.decode(segment.trim_end_matches('=')).ok()?;
            match serde_json::from_slice(&bytes).ok()? {
                Value::Object(map) => Some(map),
                _ => None,
            }
        };
        let header_json = decode_json(header).ok_or_else(invalid)?;
        // With a string secret, jsonwebtoken accepts the HS family and nothing else (no `none`).
        let algorithm = header_json
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(invalid)?;
        let signing_input = &jwt[..header.len() + 1 + payload.len()];
        let expected = hmac_sign(
            algorithm,
            self.signer.key.expose().as_bytes(),
            signing_input.as_bytes(),
        )
        .ok_or_else(invalid)?;
        let given = URL_SAFE_NO_PAD.decode(signature).map_err(|_| invalid())?;
        if !crate::secret::constant_time_eq(&expected, &given) {
            return Err(invalid());
        }
        let claims = decode_json(payload).ok_or_else(invalid)?;
        let now_s = now_ms.div_euclid(1000);
        let number = |key: &str| -> Result<Option<f64>> {
            match claims.get(key) {
                None => Ok(None),
                Some(Value::Number(n)) => Ok(n.as_f64()),
                Some(_) => Err(invalid()),
            }
        };
        number("iat")?;
        if let Some(nbf) = number("nbf")? {
            if nbf > now_s as f64 {
                return Err(invalid());
            }
        }
        if let Some(exp) = number("exp")? {
            if now_s as f64 >= exp {
                return Err(errors::SECURITY_TOKEN_EXPIRED.error().into());
            }
        }
        match claims.get("_id") {
            Some(Value::String(kuid)) if !kuid.is_empty() => Ok(kuid.clone()),
            // "probably forged token => throw without providing any information"
            _ => Err(invalid()),
        }
    }

    /// `refresh`: a new token for the same user; the old one lives on for the grace period,
    /// marked refreshed. API keys and tokens that never expire cannot be refreshed.
    pub fn refresh(
        &self,
        current: &TokenRecord,
        expires_in: Option<ExpiresIn>,
    ) -> Result<IssuedToken> {
        if current.refreshed {
            return Err(invalid());
        }
        if current.kind == TokenKind::ApiKey || current.ttl < 0 {
            return Err(errors::SECURITY_TOKEN_REFRESH_FORBIDDEN.error().into());
        }
        let fresh = self.issue(&current.user_id, expires_in, IssueOptions::default())?;
        let mut old = current.clone();
        old.refreshed = true;
        old.valid_until = self.clock.now_ms() + self.config.grace_period_ms;
        self.repository.put_token(&old)?;
        Ok(fresh)
    }

    /// Deletes a token's record: it is refused from now on. Whether it existed.
    pub fn revoke(&self, fingerprint: &str) -> Result<bool> {
        Ok(self.repository.delete_token(fingerprint)?)
    }

    /// `deleteByKuid`: revokes every token of `kuid` (API keys too unless `keep_api_keys`);
    /// the revoked fingerprints, for the connections linked to them.
    pub fn revoke_user(&self, kuid: &str, keep_api_keys: bool) -> Result<Vec<String>> {
        let mut revoked = Vec::new();
        for record in self.repository.tokens_of_user(kuid)? {
            if keep_api_keys && record.kind == TokenKind::ApiKey {
                continue;
            }
            self.repository.delete_token(&record.fingerprint)?;
            revoked.push(record.fingerprint);
        }
        Ok(revoked)
    }

    /// `createApiKey`: a `kapikey-` token (never expiring by default) and its stored key. The
    /// token is in the result only.
    pub fn create_api_key(
        &self,
        kuid: &str,
        description: &str,
        expires_in: Option<ExpiresIn>,
        id: Option<&str>,
        bypass_max_ttl: bool,
    ) -> Result<(ApiKey, Secret)> {
        let issued = self.issue(
            kuid,
            Some(expires_in.unwrap_or(ExpiresIn::Never)),
            IssueOptions {
                kind: TokenKind::ApiKey,
                bypass_max_ttl,
                single_use: false,
            },
        )?;
        let key = ApiKey {
            id: id.map_or_else(|| issued.record.fingerprint.clone(), str::to_owned),
            user_id: kuid.to_owned(),
            description: description.to_owned(),
            expires_at: issued.record.expires_at,
            ttl: issued.record.ttl,
            fingerprint: issued.record.fingerprint.clone(),
        };
        if let Err(error) = self.repository.put_api_key(&key, true) {
            self.repository.delete_token(&issued.record.fingerprint)?;
            return Err(error.into());
        }
        Ok((key, issued.token))
    }

    /// `deleteApiKey`: deletes the key and revokes its token; the key, if it existed.
    pub fn delete_api_key(&self, kuid: &str, id: &str) -> Result<Option<ApiKey>> {
        let Some(key) = self.repository.api_key(kuid, id)? else {
            return Ok(None);
        };
        self.repository.delete_api_key(kuid, id)?;
        self.repository.delete_token(&key.fingerprint)?;
        Ok(Some(key))
    }
}

fn invalid() -> SecurityError {
    errors::SECURITY_TOKEN_INVALID.error().into()
}
