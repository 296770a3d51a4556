//! Abuse limits, on an injectable [`Clock`]: Kuzzle's per-user request rate (`rateLimit` of the
//! profiles, per second) and per-connection logins per second (`limits.loginsPerSecond`), plus a
//! token bucket and a failed-login lockout per username and per source address.
//!
//! Every map is pruned of idle keys as it grows, so a flood of distinct keys costs memory only
//! for the current window.

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
        let second = (now_ms.div_euclid(1000) as u64) & ((1 << (64 - COUNT_BITS)) - 1);
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

const USER_SHARDS: usize = 16;

/// Kuzzle's per-user request rate (`rateLimit` of the profiles, per second): the anonymous
/// user's count in its own field (no lookup), the others' in a sharded map read under a
/// shard's read lock (written only for a user's first request in a while).
pub struct UserRateLimiter {
    clock: Arc<dyn Clock>,
    anonymous: RateWindow,
    hasher: foldhash::fast::RandomState,
    shards: [RwLock<HashMap<Box<str>, RateWindow>>; USER_SHARDS],
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
            anonymous: RateWindow::default(),
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
            let second = now.div_euclid(1000) as u64 & ((1 << (64 - COUNT_BITS)) - 1);
            users.retain(|_, window| window.second() >= second);
        }
        users
            .entry(kuid.into())
            .or_default()
            .try_acquire(now, limit)
    }
}

/// Kuzzle's two limiters: requests per user per second after the profiles' `rateLimit`, and
/// `auth:login` per connection per second.
pub struct RequestLimits<C> {
    per_user: UserRateLimiter,
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
            per_user: UserRateLimiter::new(Arc::clone(&clock)),
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
