//! Cost of one rights check on compiled rights, in ns per check. Prints figures; asserts nothing.
//! Run: `cargo bench -p switchyard-security --bench rights_check`.

use std::hint::black_box;
use std::time::Instant;

use serde_json::json;
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
