//! The security service: the repository (store + memory), tokens, the `local` strategy, each
//! user's compiled rights, and the token ↔ connection links; and the [`Gatekeeper`] every
//! request passes.
//!
//! The gate runs inline on plugin threads and never touches the disk: token records and
//! users/profiles/roles are in memory ([`StoredRepository`]), and rights are compiled once per
//! user ([`UserRights`]) and dropped whenever a user, profile or role changes
//! ([`Security::rights_changed`]).
//!
//! Each plugin thread also remembers the tokens it admitted ([`Admitted`], in `ADMITTED`): a
//! request repeating one costs a lookup keyed by the token's last bytes, a comparison of its
//! bytes, two generation loads and the time checks — no shared lock, no hash of the whole
//! token, no copy. Any change to a user, profile, role or token record (here or, in cluster
//! mode, on another node: [`Security::refresh_from_store`]) moves a generation and empties
//! every thread's memory before its next request; expiry is checked on every request.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, RwLock};
use switchyard_plugin_api::errors::KuzzleError;
use switchyard_plugin_api::ConnectionId;
use switchyard_security::auth::{load_user_rights, LocalStrategy};
use switchyard_security::clock::{Clock, SystemClock};
use switchyard_security::expiry::TokenLinks;
use switchyard_security::limits::{LockoutConfig, LoginGuard, RequestLimits};
use switchyard_security::repository::SecurityRepository;
use switchyard_security::secret::same_secret_text;
use switchyard_security::token::{self, TokenConfig, TokenRecord, TokenService};
use switchyard_security::{defaults, RightsRequest, SecurityError, UserRights, ANONYMOUS_KUID};
use switchyard_storage::Storage;

use super::store::StoredRepository;
use super::{Access, Gatekeeper, Identity};

/// What the service is made from (the host's `[security]` section, resolved).
#[derive(Debug, Clone)]
pub struct SecuritySettings {
    /// Token settings.
    pub tokens: TokenConfig,
    /// The configured secret, if any.
    pub secret: Option<switchyard_security::secret::Secret>,
    /// New passwords' Argon2id cost.
    pub argon2: switchyard_security::password::Argon2Params,
    /// `security:createRestrictedUser`'s profiles.
    pub restricted_profile_ids: Vec<String>,
    /// Per protocol index: whether its connections get `TokenExpired` (Kuzzle's
    /// `realtimeNotifications`; an index past the end counts as notifiable).
    pub notifiable: Vec<bool>,
    /// `limits.loginsPerSecond`: `auth:login` requests per connection per second.
    pub logins_per_second: u64,
    /// `[security.loginLockout]`; `None`: failed logins lock nothing out.
    pub login_lockout: Option<LockoutConfig>,
}

/// Rights compiled per kuid, valid for one generation of the security objects.
#[derive(Debug, Default)]
struct RightsCache {
    generation: u64,
    by_user: HashMap<Box<str>, Arc<UserRights>>,
}

/// A token the gate verified (signature, claims, record).
#[derive(Debug, Clone)]
struct Verified {
    record: TokenRecord,
    /// The JWT's `exp` claim (seconds), if any.
    exp_s: Option<i64>,
}

/// Verified tokens, all valid for one generation of the token records.
#[derive(Debug, Default)]
struct VerifiedCache {
    generation: u64,
    by_token: hashbrown::HashMap<TokenKey, Verified, RandomState>,
}

/// Numbers each service, so a thread's copy of the anonymous rights (`ANONYMOUS`) is never
/// taken for another service's (tests open many).
static INSTANCES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's copy of the anonymous user's rights: (the service's instance, the
    /// generation they were compiled for, the rights). Most requests of an open or public
    /// server are anonymous: their check then takes no lock and touches no shared counter.
    static ANONYMOUS: RefCell<Option<(u64, u64, Arc<UserRights>)>> = const { RefCell::new(None) };
}

/// Most verified tokens kept; past it, the cache starts over.
const VERIFIED_CAPACITY: usize = 100_000;

/// A token this thread's gate admitted, with everything a request repeating it needs.
#[derive(Debug)]
struct Admitted {
    /// Who it authenticates (`None`: the anonymous user `-1`, whose token `auth:createToken`
    /// may issue).
    user: Option<Arc<str>>,
    /// The token's text, handed to the request's [`Identity`] without a copy.
    token: Arc<str>,
    /// The user's compiled rights.
    rights: Arc<UserRights>,
    /// The JWT's `exp` claim (seconds), if any.
    exp_s: Option<i64>,
    /// The record's end (its grace period once refreshed); -1 never.
    valid_until: i64,
    /// For linking a connection to it.
    record: TokenRecord,
    /// The connections this thread linked to the token: while the links' generation stays
    /// theirs, linking them again would change nothing (many connections may share a token).
    linked: RefCell<LinkedHere>,
}

/// See [`Admitted::linked`].
#[derive(Debug, Default)]
struct LinkedHere {
    /// The links' generation when each of `connections` was last found linked.
    generation: u64,
    connections: rustc_hash::FxHashSet<ConnectionId>,
}

/// This thread's admitted tokens, valid for one generation of the security objects (rights)
/// and of the token records.
#[derive(Debug, Default)]
struct AdmittedCache {
    /// The service they belong to (`INSTANCES`).
    instance: u64,
    rights_generation: u64,
    token_generation: u64,
    by_token: hashbrown::HashMap<TokenKey, Admitted, TailHash>,
}

/// A token as the key of the gate's memories. Its equality reads every byte (no early exit):
/// how long a lookup takes must not tell a client how much of its forged token matches one
/// the server remembers.
#[derive(Debug, Clone)]
struct TokenKey(Arc<str>);

impl PartialEq for TokenKey {
    fn eq(&self, other: &TokenKey) -> bool {
        same_secret_text(&self.0, &other.0)
    }
}

impl Eq for TokenKey {}

impl Hash for TokenKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

/// A request's token looked up in the memories without making it a [`TokenKey`] (no copy):
/// hashed as the key is, compared in constant time.
struct TokenProbe<'a>(&'a str);

impl Hash for TokenProbe<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

impl hashbrown::Equivalent<TokenKey> for TokenProbe<'_> {
    fn equivalent(&self, key: &TokenKey) -> bool {
        same_secret_text(self.0, &key.0)
    }
}

/// Most tokens one thread remembers; past it, its memory starts over.
const ADMITTED_CAPACITY: usize = 1024;

/// The hasher of the admitted tokens: their last eight bytes and length. Only tokens that
/// verified are kept, and a token ends with its HMAC signature — bytes the server chose, which
/// a client cannot aim at one bucket; the key's equality then compares every byte.
type TailHash = BuildHasherDefault<TailHasher>;

/// See [`TailHash`].
#[derive(Debug, Default, Clone, Copy)]
struct TailHasher(u64);

impl Hasher for TailHasher {
    fn finish(&self) -> u64 {
        let mixed = (self.0 ^ (self.0 >> 31)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^ (mixed >> 29)
    }

    fn write(&mut self, bytes: &[u8]) {
        let tail = &bytes[bytes.len().saturating_sub(8)..];
        let mut word = [0u8; 8];
        word[..tail.len()].copy_from_slice(tail);
        self.0 = (self.0 ^ u64::from_le_bytes(word) ^ (bytes.len() as u64).rotate_left(40))
            .wrapping_mul(0xbf58_476d_1ce4_e5b9);
    }

    fn write_u8(&mut self, byte: u8) {
        self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

thread_local! {
    /// This thread's admitted tokens ([`Admitted`]).
    static ADMITTED: RefCell<AdmittedCache> = RefCell::new(AdmittedCache::default());
}

/// The security service.
pub struct Security {
    /// Users, profiles, roles, credentials, tokens, API keys.
    pub repository: Arc<dyn SecurityRepository>,
    /// The same, concretely (for its token generation).
    store: Arc<StoredRepository>,
    /// Tokens already verified, by their text: a request with one costs a lookup, not an HMAC.
    verified: RwLock<VerifiedCache>,
    /// Issues, verifies, refreshes and revokes tokens.
    pub tokens: TokenService,
    /// The `local` strategy (its calls hash: blocking pool only).
    pub local: LocalStrategy,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// The settings.
    pub settings: SecuritySettings,
    rights: RwLock<RightsCache>,
    /// Moves with every change to a user, profile or role ([`Security::rights_changed`]).
    generation: AtomicU64,
    /// Moves with every change to the token ↔ connection links that could undo a link a
    /// thread remembers ([`Admitted::linked`]).
    links_generation: AtomicU64,
    /// This service's number (`INSTANCES`).
    instance: u64,
    links: Mutex<TokenLinks>,
    /// Wakes the expiry timer when a link may expire sooner than it planned.
    links_changed: Condvar,
    /// Kuzzle's rate limits: requests per user per second (the profiles' `rateLimit`) and
    /// logins per connection per second, checked by the gate after the rights.
    limits: RequestLimits<ConnectionId>,
    /// Failed logins per username and per source address (`[security.loginLockout]`).
    login_guard: Option<LoginGuard>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security").finish_non_exhaustive()
    }
}

/// A security failure as the API sends it.
pub fn kuzzle(error: SecurityError) -> KuzzleError {
    error.to_kuzzle()
}

impl Security {
    /// Opens the repository in `storage` (the internal index) and, on first start, creates
    /// Kuzzle's open bootstrap: roles and profiles `admin`, `default`, `anonymous`, all `*:*`
    /// (whichever of them the store does not hold yet).
    pub fn open(
        storage: Arc<dyn Storage>,
        settings: SecuritySettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Security, SecurityError> {
        let store = Arc::new(StoredRepository::open(storage, clock.now_ms())?);
        let repository: Arc<dyn SecurityRepository> = store.clone();
        // Each protected role and profile this node's memory lacks (they cannot be deleted):
        // all of them on a fresh store; some when another node sharing the store (PostgreSQL)
        // was writing them while this one loaded — written only where still absent.
        let mut roles = defaults::bootstrap_roles();
        roles.retain(|role| !matches!(repository.role(&role.id), Ok(Some(_))));
        let mut profiles = defaults::bootstrap_profiles();
        profiles.retain(|profile| !matches!(repository.profile(&profile.id), Ok(Some(_))));
        if !roles.is_empty() || !profiles.is_empty() {
            store.create_absent(&roles, &profiles)?;
        }
        let (tokens, generated) = TokenService::new(
            settings.tokens.clone(),
            settings.secret.clone(),
            Arc::clone(&repository),
            Arc::clone(&clock),
        )?;
        if generated {
            // Kuzzle warns; here it is the normal first start (documented in the README).
            tracing::debug!(
                "security.authToken.secret is not set: a random one was generated and stored in the internal index"
            );
        }
        let local = LocalStrategy::new(Arc::clone(&repository), settings.argon2)?;
        let limits = RequestLimits::new(settings.logins_per_second, Arc::clone(&clock));
        let login_guard = settings
            .login_lockout
            .map(|config| LoginGuard::new(config, Arc::clone(&clock)));
        Ok(Security {
            limits,
            login_guard,
            repository,
            store,
            verified: RwLock::new(VerifiedCache::default()),
            tokens,
            local,
            clock,
            settings,
            rights: RwLock::new(RightsCache::default()),
            generation: AtomicU64::new(0),
            links_generation: AtomicU64::new(0),
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
            links: Mutex::new(TokenLinks::new()),
            links_changed: Condvar::new(),
        })
    }

    /// The per-user request rate limiter (its counts shared with the other nodes in cluster
    /// mode: `cluster/rate_limits.rs`).
    pub fn user_rate_limiter(&self) -> Arc<switchyard_security::limits::UserRateLimiter> {
        Arc::clone(self.limits.per_user())
    }

    /// The service over `storage` with the default settings and the system clock.
    pub fn with_defaults(storage: Arc<dyn Storage>) -> Result<Security, SecurityError> {
        Security::open(
            storage,
            SecuritySettings {
                tokens: TokenConfig::default(),
                secret: None,
                argon2: Default::default(),
                restricted_profile_ids: defaults::restricted_profile_ids(),
                notifiable: Vec::new(),
                logins_per_second: 1,
                login_lockout: Some(LockoutConfig::default()),
            },
            Arc::new(SystemClock),
        )
    }

    /// `kuid`'s compiled rights (`-1` for anonymous), from the cache or compiled now (in
    /// memory).
    pub fn rights_of(&self, kuid: &str) -> Result<Arc<UserRights>, KuzzleError> {
        let generation = {
            let cache = self.rights.read();
            if let Some(rights) = cache.by_user.get(kuid) {
                return Ok(Arc::clone(rights));
            }
            cache.generation
        };
        let (_, rights) = load_user_rights(&*self.repository, kuid).map_err(kuzzle)?;
        let rights = Arc::new(rights);
        let mut cache = self.rights.write();
        // A change since the read would make this compilation stale: keep it out of the cache.
        if cache.generation == generation && self.generation.load(Ordering::Acquire) == generation {
            cache.by_user.insert(kuid.into(), Arc::clone(&rights));
        }
        Ok(rights)
    }

    /// Checks `request` against the anonymous user's rights, from this thread's copy while no
    /// user, profile or role changed since it was taken (the generation is read first, so a
    /// change made meanwhile is seen by the next request).
    /// Returns the anonymous user's request rate limit (`None`: unlimited).
    fn check_anonymous(&self, request: &RightsRequest<'_>) -> Result<Option<u64>, KuzzleError> {
        let generation = self.generation.load(Ordering::Acquire);
        ANONYMOUS.with(|slot| {
            let mut slot = slot.borrow_mut();
            let fresh = matches!(
                &*slot,
                Some((instance, compiled, _)) if *instance == self.instance && *compiled == generation
            );
            if !fresh {
                let rights = self.rights_of(ANONYMOUS_KUID)?;
                *slot = Some((self.instance, generation, rights));
            }
            let (_, _, rights) = slot.as_ref().expect("filled above");
            rights.check(request)?;
            Ok(rights.rate_limit())
        })
    }

    /// A user, profile or role changed: every compiled right is dropped, and every thread's
    /// admitted tokens before its next request. The generation moves under the cache's write
    /// lock, so a thread that sees the new generation finds the cache already emptied.
    pub fn rights_changed(&self) {
        let mut cache = self.rights.write();
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        cache.generation = generation;
        cache.by_user.clear();
    }

    /// Whether the protocol at `protocol` gets `TokenExpired` notifications.
    pub fn is_notifiable(&self, protocol: usize) -> bool {
        self.settings
            .notifiable
            .get(protocol)
            .copied()
            .unwrap_or(true)
    }

    /// Links `connection` to `record` (its requests use it), waking the expiry timer.
    pub fn link(&self, connection: ConnectionId, record: &TokenRecord) {
        self.link_at(connection, record);
    }

    /// [`Security::link`], returning the links' generation once linked (read under their
    /// lock, where every change moves it: while it stays, the link stands).
    fn link_at(&self, connection: ConnectionId, record: &TokenRecord) -> u64 {
        let mut links = self.links.lock();
        if links.token_of(connection) == Some(record.fingerprint.as_str()) {
            return self.links_generation.load(Ordering::Acquire);
        }
        links.link(connection, record);
        // The connection's previous token, if another, was unlinked.
        let generation = self.links_generation.fetch_add(1, Ordering::AcqRel) + 1;
        drop(links);
        self.links_changed.notify_all();
        generation
    }

    /// Unlinks `connection` (logout on it, or it left); its token's fingerprint if it had one.
    pub fn unlink(&self, connection: ConnectionId) -> Option<String> {
        let mut links = self.links.lock();
        let unlinked = links.unlink(connection);
        if unlinked.is_some() {
            self.links_generation.fetch_add(1, Ordering::AcqRel);
        }
        unlinked
    }

    /// A token was revoked: the connections still linked to it.
    pub fn revoke_links(&self, fingerprint: &str) -> Vec<ConnectionId> {
        let mut links = self.links.lock();
        let revoked = links.revoke(fingerprint);
        if !revoked.is_empty() {
            self.links_generation.fetch_add(1, Ordering::AcqRel);
        }
        revoked
    }

    /// A token was refreshed: its connections move to the new one.
    pub fn refresh_links(&self, old_fingerprint: &str, new: &TokenRecord) {
        let mut links = self.links.lock();
        links.refresh(old_fingerprint, new);
        self.links_generation.fetch_add(1, Ordering::AcqRel);
        drop(links);
        self.links_changed.notify_all();
    }

    /// The links whose token expired at `now_ms`, removed from the schedule.
    pub fn take_expired(&self, now_ms: i64) -> Vec<switchyard_security::expiry::ExpiredLink> {
        let mut links = self.links.lock();
        let expired = links.take_expired(now_ms);
        if !expired.is_empty() {
            self.links_generation.fetch_add(1, Ordering::AcqRel);
        }
        expired
    }

    /// Blocks until the next link expires (per `self.clock`), a link changes, or `max` passes;
    /// the expiry timer's wait.
    pub fn wait_for_expiry(&self, max: std::time::Duration) {
        let mut links = self.links.lock();
        let now = self.clock.now_ms();
        let wait = match links.next_expiry() {
            Some(at) if at <= now => return,
            Some(at) => max.min(std::time::Duration::from_millis((at - now) as u64)),
            None => max,
        };
        self.links_changed.wait_for(&mut links, wait);
    }

    /// Wakes the expiry timer (shutdown, or tests moving the clock).
    pub fn wake_expiry_timer(&self) {
        self.links_changed.notify_all();
    }

    /// A connection left: its login count is forgotten.
    pub fn forget_connection(&self, connection: ConnectionId) {
        self.limits.forget_connection(&connection);
    }

    /// Before checking a password: Kuzzle's 429 `api.process.too_many_logins_requests` when
    /// `username` or `address` is locked out (`[security.loginLockout]`).
    pub fn check_login_lockout(&self, username: &str, address: &str) -> Result<(), KuzzleError> {
        match &self.login_guard {
            Some(guard) if guard.check(username, address).is_err() => {
                Err(switchyard_plugin_api::errors::API_PROCESS_TOO_MANY_LOGINS_REQUESTS.error())
            }
            _ => Ok(()),
        }
    }

    /// After a login's password check: a failure counts against `username` and `address`, a
    /// success clears the username's failures.
    pub fn record_login(&self, username: &str, address: &str, succeeded: bool) {
        if let Some(guard) = &self.login_guard {
            if succeeded {
                guard.record_success(username);
            } else {
                guard.record_failure(username, address);
            }
        }
    }

    /// The token record of a raw token, if it is a live one.
    pub fn record_of(&self, token: &str) -> Option<TokenRecord> {
        let fingerprint = switchyard_security::secret::sha256_hex(token.as_bytes());
        self.repository.token(&fingerprint).ok().flatten()
    }
}

impl Security {
    /// Cluster mode: another node changed `collection`/`id` in the shared store. Reads it again
    /// into memory; compiled rights are dropped when a user, profile or role changed. Returns
    /// the fingerprint of a token record that is gone (its connections lose their
    /// subscriptions).
    pub fn refresh_from_store(
        &self,
        collection: &str,
        id: &str,
    ) -> Result<Option<String>, switchyard_security::error::RepositoryError> {
        let refreshed = self.store.refresh(collection, id)?;
        if refreshed.rights_changed {
            self.rights_changed();
        }
        Ok(refreshed.token_gone)
    }

    /// Cluster mode: `observer` hears `(collection, id)` after each write of a security object,
    /// to tell the other nodes.
    pub fn on_store_change(&self, observer: super::store::ChangeObserver) {
        self.store.on_change(observer);
    }

    /// `TokenService::verify` for the gate, remembering what it verified: the same token again
    /// costs a lookup and the time checks (its `exp`, its record's grace period), until a token
    /// record changes anywhere (login, logout, refresh, revocation clear it).
    pub fn verify_cached(&self, jwt: &str) -> Result<TokenRecord, KuzzleError> {
        let generation = self.store.token_generation();
        let now = self.clock.now_ms();
        let cache = self.verified.read();
        if let Some(hit) = cache.by_token.get(&TokenProbe(jwt)) {
            if cache.generation == generation {
                if hit.exp_s.is_some_and(|exp| now.div_euclid(1000) >= exp) {
                    return Err(switchyard_plugin_api::errors::SECURITY_TOKEN_EXPIRED.error());
                }
                let live = hit.record.valid_until < 0 || now < hit.record.valid_until;
                if !live {
                    return Err(switchyard_plugin_api::errors::SECURITY_TOKEN_INVALID.error());
                }
                return Ok(hit.record.clone());
            }
        }
        drop(cache);
        let record = match self.tokens.verify(Some(jwt)).map_err(kuzzle)? {
            token::Identity::Token(record) => record,
            token::Identity::Anonymous => {
                return Err(switchyard_plugin_api::errors::SECURITY_TOKEN_INVALID.error())
            }
        };
        if !record.single_use {
            let mut cache = self.verified.write();
            if generation > cache.generation {
                cache.by_token.clear();
                cache.generation = generation;
            } else if cache.by_token.len() >= VERIFIED_CAPACITY {
                cache.by_token.clear();
            }
            // Verified against an older generation than the cache's: do not keep it.
            if cache.generation == generation {
                cache.by_token.insert(
                    TokenKey(jwt.into()),
                    Verified {
                        record: record.clone(),
                        exp_s: jwt_exp(jwt),
                    },
                );
            }
        }
        Ok(record)
    }
}

impl Security {
    /// The gate for a request with a token: from this thread's memory of it ([`Admitted`]),
    /// else verified, its rights compiled (both through the shared caches) and remembered.
    /// Returns the identity and the user's request rate limit.
    fn check_token(
        &self,
        jwt: &str,
        access: &Access<'_>,
        request: &RightsRequest<'_>,
    ) -> Result<(Identity, Option<u64>), KuzzleError> {
        // The generations first: a change made from here on is seen by the next request.
        let rights_generation = self.generation.load(Ordering::Acquire);
        let token_generation = self.store.token_generation();
        let now = self.clock.now_ms();
        let without_memory = || {
            let admitted = self.admit_fresh(jwt)?;
            self.pass(&admitted, access, request, now)
        };
        let remembered = ADMITTED.try_with(|cache| {
            let Ok(mut cache) = cache.try_borrow_mut() else {
                // Re-entered from within a verification (nothing does today).
                return without_memory();
            };
            if cache.instance != self.instance
                || cache.rights_generation != rights_generation
                || cache.token_generation != token_generation
            {
                cache.by_token.clear();
                cache.instance = self.instance;
                cache.rights_generation = rights_generation;
                cache.token_generation = token_generation;
            }
            if let Some(admitted) = cache.by_token.get(&TokenProbe(jwt)) {
                return self.pass(admitted, access, request, now);
            }
            let admitted = self.admit_fresh(jwt)?;
            // A single-use token was consumed by its verification: nothing to remember.
            if admitted.record.single_use {
                return self.pass(&admitted, access, request, now);
            }
            if cache.by_token.len() >= ADMITTED_CAPACITY {
                cache.by_token.clear();
            }
            let admitted = cache
                .by_token
                .entry(TokenKey(Arc::clone(&admitted.token)))
                .or_insert(admitted);
            self.pass(admitted, access, request, now)
        });
        // The thread is exiting (its memory already destroyed).
        remembered.unwrap_or_else(|_| without_memory())
    }

    /// `jwt` verified (through the shared cache) and its user's rights compiled.
    fn admit_fresh(&self, jwt: &str) -> Result<Admitted, KuzzleError> {
        let record = self.verify_cached(jwt)?;
        let rights = self.rights_of(&record.user_id)?;
        Ok(Admitted {
            user: (record.user_id != ANONYMOUS_KUID).then(|| record.user_id.as_str().into()),
            token: jwt.into(),
            rights,
            exp_s: jwt_exp(jwt),
            valid_until: record.valid_until,
            linked: RefCell::default(),
            record,
        })
    }

    /// A request with an admitted token, at `now`: the token's time checks, its link to the
    /// connection, the rights.
    fn pass(
        &self,
        admitted: &Admitted,
        access: &Access<'_>,
        request: &RightsRequest<'_>,
        now: i64,
    ) -> Result<(Identity, Option<u64>), KuzzleError> {
        if admitted
            .exp_s
            .is_some_and(|exp| now.div_euclid(1000) >= exp)
        {
            return Err(switchyard_plugin_api::errors::SECURITY_TOKEN_EXPIRED.error());
        }
        if admitted.valid_until >= 0 && now >= admitted.valid_until {
            return Err(switchyard_plugin_api::errors::SECURITY_TOKEN_INVALID.error());
        }
        if self.is_notifiable(access.protocol) {
            let current = self.links_generation.load(Ordering::Acquire);
            let mut linked = admitted.linked.borrow_mut();
            if linked.generation != current {
                // A link changed since: any of them may have been undone.
                linked.connections.clear();
                linked.generation = current;
            }
            if !linked.connections.contains(&access.connection) {
                let generation = self.link_at(access.connection, &admitted.record);
                if generation != linked.generation {
                    linked.connections.clear();
                    linked.generation = generation;
                }
                linked.connections.insert(access.connection);
            }
        }
        admitted.rights.check(request)?;
        let identity = Identity {
            user: admitted.user.clone(),
            token: Some(Arc::clone(&admitted.token)),
        };
        Ok((identity, admitted.rights.rate_limit()))
    }
}

/// The `exp` claim of a token that verified.
fn jwt_exp(jwt: &str) -> Option<i64> {
    use base64::Engine;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_f64().map(|exp| exp.ceil() as i64)
}

impl Gatekeeper for Security {
    /// Kuzzle's funnel: the token, the rights, then the rate limits (`rateLimiter.isAllowed`
    /// runs after `checkRights`, so a denied request is refused for its rights first).
    fn admit(&self, access: &Access<'_>) -> Result<Identity, KuzzleError> {
        let request = RightsRequest {
            controller: access.controller,
            action: access.action,
            index: access.index,
            collection: access.collection,
            targets: None,
        };
        let (identity, rate_limit) = match access.jwt {
            None => {
                let rate_limit = self.check_anonymous(&request)?;
                (Identity::anonymous(), rate_limit)
            }
            Some(jwt) => self.check_token(jwt, access, &request)?,
        };
        // The fast path (no limit, not a login) touches nothing shared.
        if rate_limit.is_some() || (access.controller == "auth" && access.action == "login") {
            self.limits.check(
                &access.connection,
                identity.user_id(),
                rate_limit,
                access.controller,
                access.action,
            )?;
        }
        Ok(identity)
    }
}

impl Gatekeeper for Arc<Security> {
    fn admit(&self, access: &Access<'_>) -> Result<Identity, KuzzleError> {
        (**self).admit(access)
    }
}
