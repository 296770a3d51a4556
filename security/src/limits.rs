//! Abuse limits, on an injectable [`Clock`]: Kuzzle's per-user request rate (`rateLimit` of the
//! profiles, per second) and per-connection logins per second (`limits.loginsPerSecond`), plus a
//! token bucket and a failed-login lockout per username and per source address.
//!
//! Every map is pruned of idle keys as it grows, so a flood of distinct keys costs memory only
//! for the current window.
//!
//! In a cluster the per-user rate holds across nodes within a tolerance: each node counts its
//! own requests, and a sharing task (the host's `cluster/rate_limits.rs`) regularly hands the
//! cluster this node's new counts for the current second ([`UserRateLimiter::unshared`]) and
//! gives back the cluster's totals ([`UserRateLimiter::set_cluster_totals`]); a user's limit on
//! this node is then its `rateLimit` minus what the other nodes admitted this second, as last
//! read. No request waits for the cluster.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use switchyard_plugin_api::errors::{self, KuzzleError};

use crate::clock::Clock;

/// At most `limit` events per key per fixed window (Kuzzle's limiter counts per second).
pub struct FixedWindowLimiter<K> {
    limit: u64,
    window_ms: i64,
    clock: Arc<dyn Clock>,
    /// key → (window start, count).
    counts: Mutex<HashMap<K, (i64, u64)>>,
}

impl<K> std::fmt::Debug for FixedWindowLimiter<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixedWindowLimiter")
            .field("limit", &self.limit)
            .field("window_ms", &self.window_ms)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone> FixedWindowLimiter<K> {
    /// `limit` per `window_ms`.
    pub fn new(limit: u64, window_ms: i64, clock: Arc<dyn Clock>) -> Self {
        FixedWindowLimiter {
            limit,
            window_ms: window_ms.max(1),
            clock,
            counts: Mutex::default(),
        }
    }

    /// Counts one event for `key` with this limit; whether it is within it.
    pub fn try_acquire(&self, key: &K) -> bool {
        self.try_acquire_with_limit(key, self.limit)
    }

    /// Counts one event for `key` with `limit` (per-user limits differ by profile).
    pub fn try_acquire_with_limit(&self, key: &K, limit: u64) -> bool {
        let now = self.clock.now_ms();
        let window = now - now.rem_euclid(self.window_ms);
        let mut counts = self.counts.lock();
        if counts.len() > 1024 {
            counts.retain(|_, (start, _)| *start == window);
        }
        let entry = counts.entry(key.clone()).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        if entry.1 >= limit {
            return false;
        }
        entry.1 += 1;
        true
    }

    /// Forgets `key` (its connection closed).
    pub fn forget(&self, key: &K) {
        self.counts.lock().remove(key);
    }
}

/// One key's count in the current one-second window, in one atomic word: the window's second
/// in the high 40 bits, the count in the low 24 (saturating). A check is a load and, when
/// admitted, one compare-and-swap: no lock.
#[derive(Debug, Default)]
pub struct RateWindow(AtomicU64);

/// Bits of the count in a [`RateWindow`]'s word.
const COUNT_BITS: u32 = 24;
/// The largest count a [`RateWindow`] holds; a limit above it never refuses.
pub const RATE_WINDOW_MAX_COUNT: u64 = (1 << COUNT_BITS) - 1;

impl RateWindow {
    /// Counts one request at `now_ms` against `limit` per second; whether it is within it.
    /// Kuzzle's windows are whole seconds (its frame is reset by a one-second interval).
    pub fn try_acquire(&self, now_ms: i64, limit: u64) -> bool {
        let second = second_of(now_ms);
        let mut current = self.0.load(Ordering::Relaxed);
        loop {
            let (window, count) = (current >> COUNT_BITS, current & RATE_WINDOW_MAX_COUNT);
            // A thread whose clock read is a little behind another's counts in the newer window.
            let (window, count) = if window >= second {
                (window, count)
            } else {
                (second, 0)
            };
            if count >= limit {
                return false;
            }
            let next = (window << COUNT_BITS) | (count + 1).min(RATE_WINDOW_MAX_COUNT);
            match self
                .0
                .compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    /// The second this window last counted in (for pruning).
    fn second(&self) -> u64 {
        self.0.load(Ordering::Relaxed) >> COUNT_BITS
    }
}

/// `now_ms`'s second as a [`RateWindow`] keeps it (the low 40 bits).
fn second_of(now_ms: i64) -> u64 {
    (now_ms.div_euclid(1000) as u64) & ((1 << (64 - COUNT_BITS)) - 1)
}

/// A second and a count in one word, as in a [`RateWindow`].
fn pack(second: u64, count: u64) -> u64 {
    (second << COUNT_BITS) | count.min(RATE_WINDOW_MAX_COUNT)
}

/// `(second, count)` of a [`pack`]ed word.
fn unpack(word: u64) -> (u64, u64) {
    (word >> COUNT_BITS, word & RATE_WINDOW_MAX_COUNT)
}

/// One user's requests: this node's in the current second, how many of them the cluster was
/// told, and the other nodes' for that second as last read (each a packed second and count).
#[derive(Debug, Default)]
pub struct UserWindow {
    /// This node's requests.
    local: RateWindow,
    /// How many of `local`'s the cluster was told (written by the sharing task only).
    shared: AtomicU64,
    /// The other nodes' requests in that second, as last read.
    others: AtomicU64,
}

impl UserWindow {
    /// Counts one request at `now_ms` against `limit` per second, less what the other nodes
    /// admitted in this second (as last read); whether it is within it.
    fn try_acquire(&self, now_ms: i64, limit: u64) -> bool {
        let (second, others) = unpack(self.others.load(Ordering::Relaxed));
        let others = if second == second_of(now_ms) {
            others
        } else {
            0
        };
        self.local.try_acquire(now_ms, limit.saturating_sub(others))
    }

    /// This node's requests in `second` not yet shared; marks them shared.
    fn take_unshared(&self, second: u64) -> u64 {
        let (local_second, local) = unpack(self.local.0.load(Ordering::Relaxed));
        if local_second != second {
            return 0;
        }
        let (shared_second, shared) = unpack(self.shared.load(Ordering::Relaxed));
        let shared = if shared_second == second { shared } else { 0 };
        if local <= shared {
            return 0;
        }
        self.shared.store(pack(second, local), Ordering::Relaxed);
        local - shared
    }

    /// The cluster's `total` for `second` (this node's shared requests included): the rest is
    /// the other nodes'.
    fn set_total(&self, second: u64, total: u64) {
        let (shared_second, shared) = unpack(self.shared.load(Ordering::Relaxed));
        let own = if shared_second == second { shared } else { 0 };
        self.others
            .store(pack(second, total.saturating_sub(own)), Ordering::Relaxed);
    }
}

/// This node's requests of one user in one second that the cluster has not been told of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsharedCount {
    /// The user (`-1`: anonymous).
    pub kuid: Box<str>,
    /// Requests admitted here since the last share.
    pub count: u64,
}

const USER_SHARDS: usize = 16;

/// Kuzzle's per-user request rate (`rateLimit` of the profiles, per second): the anonymous
/// user's count in its own field (no lookup), the others' in a sharded map read under a
/// shard's read lock (written only for a user's first request in a while).
pub struct UserRateLimiter {
    clock: Arc<dyn Clock>,
    anonymous: UserWindow,
    hasher: foldhash::fast::RandomState,
    shards: [RwLock<HashMap<Box<str>, UserWindow>>; USER_SHARDS],
}

impl std::fmt::Debug for UserRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRateLimiter").finish_non_exhaustive()
    }
}

/// Users a shard holds before idle ones (no request this second) are pruned.
const USERS_PER_SHARD: usize = 4096;

impl UserRateLimiter {
    /// A limiter on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        UserRateLimiter {
            clock,
            anonymous: UserWindow::default(),
            hasher: foldhash::fast::RandomState::default(),
            shards: std::array::from_fn(|_| RwLock::default()),
        }
    }

    /// Counts one request of `kuid` against `limit` per second; whether it is within it.
    pub fn try_acquire(&self, kuid: &str, limit: u64) -> bool {
        let now = self.clock.now_ms();
        if kuid == crate::model::ANONYMOUS_KUID {
            return self.anonymous.try_acquire(now, limit);
        }
        use std::hash::BuildHasher;
        let shard = &self.shards[(self.hasher.hash_one(kuid) as usize) % USER_SHARDS];
        if let Some(window) = shard.read().get(kuid) {
            return window.try_acquire(now, limit);
        }
        let mut users = shard.write();
        if users.len() >= USERS_PER_SHARD {
            let second = second_of(now);
            users.retain(|_, window| window.local.second() >= second);
        }
        users
            .entry(kuid.into())
            .or_default()
            .try_acquire(now, limit)
    }

    /// The current second, as [`UserRateLimiter::unshared`] and
    /// [`UserRateLimiter::set_cluster_totals`] name it (seconds since the epoch).
    pub fn current_second(&self) -> u64 {
        second_of(self.clock.now_ms())
    }

    /// This node's requests in `second` that the cluster has not been told of, per user;
    /// marks them told. Called by one task only (the cluster's sharing task).
    pub fn unshared(&self, second: u64) -> Vec<UnsharedCount> {
        let mut out = Vec::new();
        let mut take = |kuid: &str, window: &UserWindow| {
            let count = window.take_unshared(second);
            if count > 0 {
                out.push(UnsharedCount {
                    kuid: kuid.into(),
                    count,
                });
            }
        };
        take(crate::model::ANONYMOUS_KUID, &self.anonymous);
        for shard in &self.shards {
            for (kuid, window) in shard.read().iter() {
                take(kuid, window);
            }
        }
        out
    }

    /// The cluster's request counts in `second` per user, every node's (this one's shared
    /// requests included): from now on a user's limit here is its `rateLimit` less the other
    /// nodes' part. Users absent from `totals` have no requests elsewhere. A user this node has
    /// not seen yet gets an entry (while its shard has room), so its first request here already
    /// counts the others'.
    pub fn set_cluster_totals(&self, second: u64, totals: &HashMap<String, u64>) {
        self.anonymous.set_total(
            second,
            totals
                .get(crate::model::ANONYMOUS_KUID)
                .copied()
                .unwrap_or(0),
        );
        for shard in &self.shards {
            for (kuid, window) in shard.read().iter() {
                window.set_total(second, totals.get(&**kuid).copied().unwrap_or(0));
            }
        }
        use std::hash::BuildHasher;
        for (kuid, total) in totals {
            if kuid == crate::model::ANONYMOUS_KUID || *total == 0 {
                continue;
            }
            let shard = &self.shards[(self.hasher.hash_one(kuid.as_str()) as usize) % USER_SHARDS];
            if shard.read().contains_key(kuid.as_str()) {
                continue;
            }
            let mut users = shard.write();
            if users.len() < USERS_PER_SHARD {
                users
                    .entry(kuid.as_str().into())
                    .or_default()
                    .set_total(second, *total);
            }
        }
    }
}

/// Kuzzle's two limiters: requests per user per second after the profiles' `rateLimit`, and
/// `auth:login` per connection per second.
pub struct RequestLimits<C> {
    per_user: Arc<UserRateLimiter>,
    logins: FixedWindowLimiter<C>,
}

impl<C> std::fmt::Debug for RequestLimits<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestLimits")
            .field("logins", &self.logins)
            .finish_non_exhaustive()
    }
}

impl<C: Hash + Eq + Clone> RequestLimits<C> {
    /// `logins_per_second` is `limits.loginsPerSecond` (Kuzzle's default is 1; 0 is no limit).
    pub fn new(logins_per_second: u64, clock: Arc<dyn Clock>) -> Self {
        RequestLimits {
            per_user: Arc::new(UserRateLimiter::new(Arc::clone(&clock))),
            logins: FixedWindowLimiter::new(logins_per_second, 1000, clock),
        }
    }

    /// `rateLimiter.isAllowed`: `auth:login` counts against the connection, every other request
    /// against the user with `user_limit` (`None`: unlimited); an authenticated `auth:logout`
    /// is never limited.
    pub fn check(
        &self,
        connection: &C,
        kuid: &str,
        user_limit: Option<u64>,
        controller: &str,
        action: &str,
    ) -> Result<(), KuzzleError> {
        if controller == "auth" && action == "login" {
            // Kuzzle's `limit === 0 || count <= limit`: 0 is no limit.
            if self.logins.limit == 0 || self.logins.try_acquire(connection) {
                return Ok(());
            }
            return Err(errors::API_PROCESS_TOO_MANY_LOGINS_REQUESTS.error());
        }
        if controller == "auth" && action == "logout" && kuid != crate::model::ANONYMOUS_KUID {
            return Ok(());
        }
        let Some(limit) = user_limit else {
            return Ok(());
        };
        if self.per_user.try_acquire(kuid, limit) {
            Ok(())
        } else {
            Err(errors::API_PROCESS_TOO_MANY_REQUESTS.error())
        }
    }

    /// The per-user limiter (the cluster shares its counts).
    pub fn per_user(&self) -> &Arc<UserRateLimiter> {
        &self.per_user
    }

    /// Forgets a closed connection.
    pub fn forget_connection(&self, connection: &C) {
        self.logins.forget(connection);
    }
}

/// A token bucket per key: `capacity` burst, refilled at `per_second`.
pub struct TokenBucket<K> {
    capacity: f64,
    per_second: f64,
    clock: Arc<dyn Clock>,
    /// key → (tokens, last refill ms).
    buckets: Mutex<HashMap<K, (f64, i64)>>,
}

impl<K> std::fmt::Debug for TokenBucket<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenBucket")
            .field("capacity", &self.capacity)
            .field("per_second", &self.per_second)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq + Clone> TokenBucket<K> {
    /// A bucket of `capacity`, refilled at `per_second`.
    pub fn new(capacity: u32, per_second: f64, clock: Arc<dyn Clock>) -> Self {
        TokenBucket {
            capacity: f64::from(capacity),
            per_second,
            clock,
            buckets: Mutex::default(),
        }
    }

    /// Takes one token for `key`; whether there was one.
    pub fn try_acquire(&self, key: &K) -> bool {
        let now = self.clock.now_ms();
        let mut buckets = self.buckets.lock();
        if buckets.len() > 1024 {
            let (capacity, rate) = (self.capacity, self.per_second);
            buckets
                .retain(|_, (tokens, at)| *tokens + (now - *at) as f64 / 1000.0 * rate < capacity);
        }
        let (tokens, at) = buckets.entry(key.clone()).or_insert((self.capacity, now));
        let elapsed = (now - *at).max(0) as f64 / 1000.0;
        *tokens = (*tokens + elapsed * self.per_second).min(self.capacity);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Failed-login lockout settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutConfig {
    /// Failures allowed within `window_ms` before a lockout.
    pub max_failures: u32,
    /// The window the failures are counted in.
    pub window_ms: i64,
    /// How long a locked key stays locked.
    pub lockout_ms: i64,
}

impl Default for LockoutConfig {
    /// 10 failures in 5 minutes lock for 15 minutes.
    fn default() -> Self {
        LockoutConfig {
            max_failures: 10,
            window_ms: 300_000,
            lockout_ms: 900_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    window_start: i64,
    count: u32,
    locked_until: i64,
}

/// Keys (usernames, addresses) a [`LoginGuard`] tracks per kind at most: past it, keys that are
/// not locked are forgotten first, and when every one is locked new failures are not counted
/// (a spray of made-up usernames neither grows memory nor lifts a lockout).
pub const LOCKOUT_KEYS: usize = 100_000;

/// A tracked username or address: the first 16 bytes of its SHA-256, so a 1 MB username costs
/// what a short one does.
type GuardKey = [u8; 16];

fn guard_key(key: &str) -> GuardKey {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.as_bytes());
    let mut out = [0; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// Failed logins per username and per source address, with a lockout. Memory is bounded: at
/// most [`LOCKOUT_KEYS`] keys of 16 bytes per kind.
pub struct LoginGuard {
    config: LockoutConfig,
    clock: Arc<dyn Clock>,
    by_username: Mutex<HashMap<GuardKey, Failures>>,
    by_address: Mutex<HashMap<GuardKey, Failures>>,
    /// Keys per kind at most ([`LOCKOUT_KEYS`]; smaller in tests).
    capacity: usize,
}

impl std::fmt::Debug for LoginGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginGuard")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl LoginGuard {
    /// A guard with `config`.
    pub fn new(config: LockoutConfig, clock: Arc<dyn Clock>) -> Self {
        LoginGuard {
            config,
            clock,
            by_username: Mutex::default(),
            by_address: Mutex::default(),
            capacity: LOCKOUT_KEYS,
        }
    }

    /// [`LoginGuard::new`] tracking at most `capacity` keys per kind.
    pub fn with_capacity(config: LockoutConfig, clock: Arc<dyn Clock>, capacity: usize) -> Self {
        LoginGuard {
            capacity,
            ..LoginGuard::new(config, clock)
        }
    }

    /// Keys tracked now (usernames, addresses).
    pub fn tracked(&self) -> (usize, usize) {
        (self.by_username.lock().len(), self.by_address.lock().len())
    }

    /// Before checking a password: `Err` with the epoch ms the lockout ends when the username
    /// or the address is locked. The host answers Kuzzle's `too_many_logins_requests`.
    pub fn check(&self, username: &str, address: &str) -> Result<(), i64> {
        let now = self.clock.now_ms();
        let locked = |map: &Mutex<HashMap<GuardKey, Failures>>, key: &str| {
            map.lock()
                .get(&guard_key(key))
                .map(|f| f.locked_until)
                .filter(|until| *until > now)
        };
        match (
            locked(&self.by_username, username),
            locked(&self.by_address, address),
        ) {
            (None, None) => Ok(()),
            (a, b) => Err(a.unwrap_or(0).max(b.unwrap_or(0))),
        }
    }

    /// After a wrong password (or unknown username).
    pub fn record_failure(&self, username: &str, address: &str) {
        let now = self.clock.now_ms();
        for (map, key) in [(&self.by_username, username), (&self.by_address, address)] {
            let key = guard_key(key);
            let mut map = map.lock();
            if map.len() >= self.capacity && !map.contains_key(&key) {
                // Full: forget what no longer counts, then what is not locked.
                let window = self.config.window_ms;
                map.retain(|_, f| f.locked_until > now || now - f.window_start < window);
                if map.len() >= self.capacity {
                    map.retain(|_, f| f.locked_until > now);
                }
                if map.len() >= self.capacity {
                    // Every key is locked: this failure is not counted.
                    continue;
                }
            }
            let entry = map.entry(key).or_insert(Failures {
                window_start: now,
                count: 0,
                locked_until: 0,
            });
            if now - entry.window_start >= self.config.window_ms {
                entry.window_start = now;
                entry.count = 0;
            }
            entry.count += 1;
            if entry.count >= self.config.max_failures {
                entry.locked_until = now + self.config.lockout_ms;
                entry.count = 0;
                entry.window_start = now;
            }
        }
    }

    /// After a successful login: the username's failures are forgotten (the address's are
    /// not: one good account must not launder a spray of guesses).
    pub fn record_success(&self, username: &str) {
        self.by_username.lock().remove(&guard_key(username));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn guard(capacity: usize) -> (LoginGuard, ManualClock) {
        let clock = ManualClock::at(1_000_000);
        let config = LockoutConfig {
            max_failures: 2,
            window_ms: 1_000,
            lockout_ms: 10_000,
        };
        let guard = LoginGuard::with_capacity(config, Arc::new(clock.clone()), capacity);
        (guard, clock)
    }

    #[test]
    fn zero_logins_per_second_is_no_limit_as_in_kuzzle() {
        let clock = ManualClock::at(1_000_000);
        let unlimited = RequestLimits::new(0, Arc::new(clock.clone()));
        for _ in 0..100 {
            assert!(unlimited.check(&1u64, "-1", None, "auth", "login").is_ok());
        }
        let one = RequestLimits::new(1, Arc::new(clock));
        assert!(one.check(&1u64, "-1", None, "auth", "login").is_ok());
        let refused = one.check(&1u64, "-1", None, "auth", "login").unwrap_err();
        assert_eq!(refused.id(), "api.process.too_many_logins_requests");
    }

    #[test]
    fn a_spray_of_usernames_neither_grows_memory_nor_lifts_a_lockout() {
        let (guard, clock) = guard(100);
        guard.record_failure("victim", "10.0.0.1");
        guard.record_failure("victim", "10.0.0.2");
        assert!(guard.check("victim", "10.0.0.3").is_err(), "locked");
        // 10,000 made-up usernames from many addresses, within the window and after it.
        for round in 0..10_000 {
            if round == 5_000 {
                clock.advance(2_000);
            }
            guard.record_failure(&format!("made-up-{round}"), &format!("addr-{round}"));
        }
        let (usernames, addresses) = guard.tracked();
        assert!(
            usernames <= 100 && addresses <= 100,
            "{usernames} {addresses}"
        );
        assert!(guard.check("victim", "10.0.0.3").is_err(), "still locked");
        // Once the lockout is over, it is over.
        clock.advance(10_000);
        assert_eq!(guard.check("victim", "10.0.0.3"), Ok(()));
    }

    /// One node of a simulated cluster: its limiter on the shared manual clock.
    fn nodes(n: usize, clock: &ManualClock) -> Vec<UserRateLimiter> {
        (0..n)
            .map(|_| UserRateLimiter::new(Arc::new(clock.clone())))
            .collect()
    }

    /// What the host's sharing task does with Redis (`HINCRBY` of the second's hash, then
    /// `HGETALL`), with a map for Redis.
    fn share(node: &UserRateLimiter, redis: &mut HashMap<String, u64>) {
        let second = node.current_second();
        for unshared in node.unshared(second) {
            *redis.entry(unshared.kuid.to_string()).or_default() += unshared.count;
        }
        node.set_cluster_totals(second, redis);
    }

    fn admitted(node: &UserRateLimiter, kuid: &str, limit: u64, requests: usize) -> usize {
        (0..requests)
            .filter(|_| node.try_acquire(kuid, limit))
            .count()
    }

    #[test]
    fn a_user_on_two_nodes_gets_one_rate_limit_once_counts_are_shared() {
        let clock = ManualClock::at(1_000_000);
        let nodes = nodes(2, &clock);
        let mut redis = HashMap::new();
        assert_eq!(admitted(&nodes[0], "u", 10, 6), 6);
        share(&nodes[0], &mut redis);
        share(&nodes[1], &mut redis);
        // B knows A's 6: 4 more, then refusals.
        assert_eq!(admitted(&nodes[1], "u", 10, 10), 4);
        share(&nodes[1], &mut redis);
        share(&nodes[0], &mut redis);
        // And A now knows B's 4.
        assert_eq!(admitted(&nodes[0], "u", 10, 10), 0);
        assert_eq!(redis["u"], 10);
        // Another user is not affected; nor is the next second.
        assert_eq!(admitted(&nodes[1], "v", 10, 20), 10);
        clock.advance(1_000);
        assert_eq!(admitted(&nodes[0], "u", 10, 20), 10);
        assert_eq!(admitted(&nodes[1], "u", 10, 20), 10);
    }

    #[test]
    fn a_node_that_has_not_seen_a_user_yet_counts_the_others_requests_from_its_first() {
        let clock = ManualClock::at(5_000_500);
        let nodes = nodes(2, &clock);
        let mut redis = HashMap::new();
        assert_eq!(admitted(&nodes[0], "u", 3, 5), 3);
        assert_eq!(admitted(&nodes[0], "-1", 3, 5), 3, "anonymous too");
        share(&nodes[0], &mut redis);
        share(&nodes[1], &mut redis);
        assert_eq!(admitted(&nodes[1], "u", 3, 5), 0);
        assert_eq!(admitted(&nodes[1], "-1", 3, 5), 0);
    }

    /// The tolerance the README states: requests of one user spread over `n` nodes, each node
    /// sharing every `k` of its requests (in turn, as the nodes' ticks fall), are admitted at
    /// most `limit + (n - 1) × k` times in a second; without sharing it would be `n × limit`.
    #[test]
    fn admitted_requests_stay_within_the_limit_plus_what_the_others_did_not_share_yet() {
        for (n, k, limit) in [
            (2, 1, 10),
            (2, 5, 10),
            (3, 4, 50),
            (3, 10, 200),
            (5, 7, 100),
        ] {
            let clock = ManualClock::at(7_000_000);
            let nodes = nodes(n, &clock);
            let mut redis = HashMap::new();
            let mut total = 0;
            for _round in 0..(4 * limit as usize / k + 4) {
                for node in &nodes {
                    total += admitted(node, "u", limit, k);
                }
                for node in &nodes {
                    share(node, &mut redis);
                }
            }
            assert!(
                total >= limit as usize && total <= limit as usize + (n - 1) * k,
                "{n} nodes, shares every {k}, limit {limit}: {total} admitted"
            );
        }
    }

    #[test]
    fn a_megabyte_username_is_tracked_in_sixteen_bytes() {
        let (guard, _clock) = guard(10);
        let long = "x".repeat(1 << 20);
        guard.record_failure(&long, "a");
        guard.record_failure(&long, "b");
        assert!(guard.check(&long, "c").is_err());
        assert_eq!(guard.check("x", "c"), Ok(()));
        assert_eq!(std::mem::size_of::<GuardKey>(), 16);
    }
}
