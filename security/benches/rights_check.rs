//! Cost of one rights check on compiled rights, and of one per-user rate-limit count, in ns per
//! check. Prints figures; asserts nothing.
//! Run: `cargo bench -p switchyard-security --bench rights_check`.

use std::hint::black_box;
use std::time::Instant;

use std::sync::Arc;

use serde_json::json;
use switchyard_security::clock::SystemClock;
use switchyard_security::limits::{RateWindow, UserRateLimiter};
use switchyard_security::{defaults, Profile, RightsRequest, Role, UserRights};

fn main() {
    let roles = [
        Role::from_json("read", &json!({"controllers": {"document": {"actions": {"get": true, "search": true, "mGet": true}}, "realtime": {"actions": {"*": true}}, "auth": {"actions": {"*": true}}}})).unwrap(),
        Role::from_json("write", &json!({"controllers": {"document": {"actions": {"create": true, "update": true, "delete": false}}}})).unwrap(),
        Role::from_json("server", &json!({"controllers": {"server": {"actions": {"now": true, "info": true}}, "*": {"actions": {"*": false}}}})).unwrap(),
    ];
    let profiles = [
        Profile::from_json("reader", &json!({"policies": [{"roleId": "read", "restrictedTo": [{"index": "shop", "collections": ["orders", "products", "customers", "stock"]}, {"index": "blog"}]}], "rateLimit": 50})).unwrap(),
        Profile::from_json("writer", &json!({"policies": [{"roleId": "write", "restrictedTo": [{"index": "shop", "collections": ["orders"]}]}, {"roleId": "server"}]})).unwrap(),
    ];
    let role_of = |id: &str| roles.iter().find(|r| r.id == id);
    let user = UserRights::compile("alice", &[&profiles[0], &profiles[1]], role_of);
    let standard_roles = defaults::standard_roles();
    let standard_profiles = defaults::standard_profiles();
    let anonymous = UserRights::compile("-1", &[&standard_profiles[2]], |id| {
        standard_roles.iter().find(|r| r.id == id)
    });

    let requests = [
        (
            "restricted allow",
            RightsRequest::new("document", "get").on("shop", "orders"),
        ),
        (
            "restricted deny (collection)",
            RightsRequest::new("document", "get").on("shop", "secrets"),
        ),
        (
            "restricted deny (index)",
            RightsRequest::new("document", "create").on("blog", "posts"),
        ),
        ("unrestricted allow", RightsRequest::new("server", "now")),
        (
            "deny by other controller",
            RightsRequest::new("admin", "resetDatabase"),
        ),
        (
            "realtime subscribe",
            RightsRequest::new("realtime", "subscribe").on("blog", "comments"),
        ),
    ];
    const N: u32 = 5_000_000;
    for (name, request) in &requests {
        report(name, N, || user.is_allowed(black_box(request)));
    }
    let login = RightsRequest::new("auth", "login");
    report("anonymous auth:login (standard)", N, || {
        anonymous.is_allowed(black_box(&login))
    });
    let all: Vec<RightsRequest<'_>> = requests.iter().map(|(_, r)| *r).collect();
    let mut at = 0;
    report("mixed rotation", N, || {
        at = (at + 1) % all.len();
        user.is_allowed(black_box(&all[at]))
    });

    // Rate limits: a limit no loop reaches, so every call does the whole count.
    let limit = 10_000_000;
    let limiter = UserRateLimiter::new(Arc::new(SystemClock));
    report("rate limit, anonymous (one atomic)", N, || {
        limiter.try_acquire(black_box("-1"), limit)
    });
    report("rate limit, a user (shard + atomic)", N, || {
        limiter.try_acquire(black_box("alice"), limit)
    });
    for _ in 0..10_000 {
        limiter.try_acquire(&format!("user-{}", rand_like()), limit);
    }
    report("rate limit, a user among 10,000", N, || {
        limiter.try_acquire(black_box("alice"), limit)
    });
    let window = RateWindow::default();
    report("rate window alone (clock read by caller)", N, || {
        window.try_acquire(black_box(1_700_000_000_000), limit)
    });
    // Two threads counting the same user: the atomic's cache line moves between cores.
    let shared = Arc::new(UserRateLimiter::new(Arc::new(SystemClock)));
    let other = Arc::clone(&shared);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_other = Arc::clone(&stop);
    let rival = std::thread::spawn(move || {
        while !stop_other.load(std::sync::atomic::Ordering::Relaxed) {
            black_box(other.try_acquire("alice", limit));
        }
    });
    report("rate limit, same user on 2 threads", N, || {
        shared.try_acquire(black_box("alice"), limit)
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    rival.join().unwrap();
}

/// A varying number without a dependency.
fn rand_like() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
    let x = STATE.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    (x ^ (x >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

fn report(name: &str, n: u32, mut check: impl FnMut() -> bool) {
    for _ in 0..n / 10 {
        black_box(check());
    }
    let mut allowed = 0u32;
    let start = Instant::now();
    for _ in 0..n {
        allowed += u32::from(black_box(check()));
    }
    let elapsed = start.elapsed();
    println!(
        "{name:<34} {:>7.1} ns/check  (allowed {allowed}/{n})",
        elapsed.as_nanos() as f64 / f64::from(n)
    );
}
