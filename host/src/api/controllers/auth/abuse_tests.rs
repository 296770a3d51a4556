//! Abuse limits through the real dispatch on a manual clock: the profiles' `rateLimit` per user
//! per second (anonymous included), `limits.loginsPerSecond` per connection, and the failed-login
//! lockout per username and per source address — Kuzzle's exact 429 errors.

use std::sync::Arc;

use serde_json::{json, Value};
use switchyard_security::clock::ManualClock;
use switchyard_storage::EmbeddedStorage;

use crate::api::testing::Harness;
use crate::api::Router;
use crate::config::Config;
use crate::security::Security;
use crate::services::{security_settings, Services};

/// A whole second, so `advance(1000)` starts the next rate window.
const T0: i64 = 1_000_000;

/// A harness on `clock` with `extra` TOML after the cheap Argon2 parameters.
fn harness_on(clock: &ManualClock, extra: &str) -> Harness {
    let config = Config::parse(
        std::path::Path::new("test.toml"),
        &format!(
            "[server]\n[security.argon2]\nmemoryKib = 64\niterations = 1\nparallelism = 1\n{extra}"
        ),
    )
    .unwrap();
    let storage: Arc<dyn switchyard_storage::Storage> =
        Arc::new(EmbeddedStorage::in_memory().unwrap());
    let security = Security::open(
        Arc::clone(&storage),
        security_settings(&config),
        Arc::new(clock.clone()),
    )
    .unwrap();
    let services = Services::with_security(Arc::new(config), storage, Arc::new(security));
    let connection = services.connections.declare(0, &["10.0.0.1"], "");
    Harness {
        services: Arc::new(services),
        router: Arc::new(Router::standard()),
        connection,
    }
}

fn call(harness: &Harness, request: Value) -> Value {
    harness.call(&request.to_string())
}

/// `{id, status, message}` of an answer's error.
fn error_of(answer: &Value) -> Value {
    let error = &answer["error"];
    json!({"id": error["id"], "status": error["status"], "message": error["message"]})
}

fn too_many_requests() -> Value {
    json!({"id": "api.process.too_many_requests", "status": 429,
           "message": "Rejected: requests rate limit exceeded for this user."})
}

fn too_many_logins() -> Value {
    json!({"id": "api.process.too_many_logins_requests", "status": 429,
           "message": "Rejected: Too many login attempts per second"})
}

fn create_user(harness: &Harness, kuid: &str, profile: &str, password: &str) {
    let created = call(
        harness,
        json!({"controller": "security", "action": "createUser", "_id": kuid,
               "body": {"content": {"profileIds": [profile]},
                        "credentials": {"local": {"username": kuid, "password": password}}}}),
    );
    assert_eq!(created["status"], 200, "{created}");
}

fn login(harness: &Harness, username: &str, password: &str) -> Value {
    call(
        harness,
        json!({"controller": "auth", "action": "login", "strategy": "local",
               "body": {"username": username, "password": password}}),
    )
}

#[test]
fn a_profiles_rate_limit_counts_requests_per_user_per_second() {
    let clock = ManualClock::at(T0);
    let harness = harness_on(&clock, "");
    let profile = call(
        &harness,
        json!({"controller": "security", "action": "createProfile", "_id": "limited",
               "body": {"policies": [{"roleId": "default"}], "rateLimit": 3}}),
    );
    assert_eq!(profile["status"], 200, "{profile}");
    create_user(&harness, "u", "limited", "p");
    let jwt = login(&harness, "u", "p")["result"]["jwt"]
        .as_str()
        .unwrap()
        .to_owned();
    let now = || call(&harness, json!({"controller": "server", "action": "now", "jwt": jwt}));
    for _ in 0..3 {
        assert_eq!(now()["status"], 200);
    }
    assert_eq!(error_of(&now()), too_many_requests());
    // Another user's requests, and the anonymous user's (profile `anonymous`, no limit), pass.
    assert_eq!(
        call(&harness, json!({"controller": "server", "action": "now"}))["status"],
        200
    );
    clock.advance(1000);
    assert_eq!(now()["status"], 200, "a new second");
    for _ in 0..2 {
        now();
    }
    assert_eq!(error_of(&now()), too_many_requests());
    let logout = call(&harness, json!({"controller": "auth", "action": "logout", "jwt": jwt}));
    assert_eq!(logout["result"], json!({"acknowledged": true}), "logout is never limited");
}

#[test]
fn profiles_fold_their_rate_limits_and_zero_means_unlimited() {
    let clock = ManualClock::at(T0);
    let harness = harness_on(&clock, "");
    for (id, limit) in [("two", 2), ("five", 5), ("free", 0)] {
        let profile = call(
            &harness,
            json!({"controller": "security", "action": "createProfile", "_id": id,
                   "body": {"policies": [{"roleId": "default"}], "rateLimit": limit}}),
        );
        assert_eq!(profile["status"], 200, "{profile}");
    }
    let make = |kuid: &str, profiles: Value| {
        let created = call(
            &harness,
            json!({"controller": "security", "action": "createUser", "_id": kuid,
                   "body": {"content": {"profileIds": profiles},
                            "credentials": {"local": {"username": kuid, "password": "p"}}}}),
        );
        assert_eq!(created["status"], 200, "{created}");
    };
    make("most", json!(["two", "five"]));
    make("unlimited", json!(["two", "free"]));
    let jwt_of = |kuid: &str| {
        clock.advance(1000); // one login per second on this connection
        login(&harness, kuid, "p")["result"]["jwt"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (most, unlimited) = (jwt_of("most"), jwt_of("unlimited"));
    let now = |jwt: &str| call(&harness, json!({"controller": "server", "action": "now", "jwt": jwt}));
    for _ in 0..5 {
        assert_eq!(now(&most)["status"], 200);
    }
    assert_eq!(error_of(&now(&most)), too_many_requests(), "the largest limit");
    for _ in 0..50 {
        assert_eq!(now(&unlimited)["status"], 200, "0 anywhere is unlimited");
    }
}

#[test]
fn the_anonymous_user_is_limited_by_its_profile_after_a_reset() {
    let clock = ManualClock::at(T0);
    let harness = harness_on(&clock, "");
    let first = call(
        &harness,
        json!({"controller": "security", "action": "createFirstAdmin", "_id": "root",
               "reset": true,
               "body": {"content": {},
                        "credentials": {"local": {"username": "root", "password": "p"}}}}),
    );
    assert_eq!(first["status"], 200, "{first}");
    // Kuzzle's standard anonymous profile: rateLimit 200, shared by every anonymous caller.
    let other = harness.services.connections.declare(0, &["10.0.0.2"], "");
    let check = json!({"controller": "auth", "action": "checkToken"}).to_string();
    for n in 0..200 {
        let connection = if n % 2 == 0 { harness.connection } else { other };
        let answer = match crate::api::dispatch::dispatch(
            &harness.services,
            &harness.router,
            connection,
            &check,
        ) {
            crate::api::dispatch::Dispatched::Answered(answer) => answer.content,
            _ => unreachable!("checkToken runs inline"),
        };
        assert!(answer.contains("\"status\":200"), "{answer}");
    }
    assert_eq!(
        error_of(&call(&harness, json!({"controller": "auth", "action": "checkToken"}))),
        too_many_requests()
    );
    clock.advance(1000);
    assert_eq!(
        call(&harness, json!({"controller": "auth", "action": "checkToken"}))["status"],
        200
    );
}

#[test]
fn logins_per_second_count_per_connection_whatever_their_outcome() {
    let clock = ManualClock::at(T0);
    let harness = harness_on(&clock, "[limits]\nloginsPerSecond = 2\n");
    create_user(&harness, "u", "default", "p");
    assert_eq!(login(&harness, "u", "wrong")["error"]["id"], "plugin.strategy.missing_user");
    assert_eq!(login(&harness, "u", "p")["status"], 200);
    assert_eq!(error_of(&login(&harness, "u", "p")), too_many_logins());
    let elsewhere = Harness {
        services: Arc::clone(&harness.services),
        router: Arc::clone(&harness.router),
        connection: harness.services.connections.declare(0, &["10.0.0.1"], ""),
    };
    assert_eq!(login(&elsewhere, "u", "p")["status"], 200, "per connection");
    clock.advance(1000);
    assert_eq!(login(&harness, "u", "p")["status"], 200, "a new second");
}

#[test]
fn failed_logins_lock_a_username_and_an_address_out_without_checking_the_password() {
    let clock = ManualClock::at(T0);
    let harness = harness_on(
        &clock,
        "[limits]\nloginsPerSecond = 1000\n\
         [security.loginLockout]\nmaxFailures = 3\nfailureWindow = 60000\nlockoutDuration = 600000\n",
    );
    create_user(&harness, "alice", "default", "right");
    create_user(&harness, "bob", "default", "right");
    let wrong = json!({"id": "plugin.strategy.missing_user", "status": 401,
                       "message": "wrong username or password"});
    for _ in 0..3 {
        assert_eq!(error_of(&login(&harness, "alice", "guess")), wrong);
    }
    // Locked: even the right password is refused, before it is checked.
    assert_eq!(error_of(&login(&harness, "alice", "right")), too_many_logins());
    // The address made three failures too: bob, from it, is locked out as well...
    assert_eq!(error_of(&login(&harness, "bob", "right")), too_many_logins());
    // ...but not from another address, while alice stays locked everywhere.
    let elsewhere = Harness {
        services: Arc::clone(&harness.services),
        router: Arc::clone(&harness.router),
        connection: harness.services.connections.declare(0, &["10.9.9.9"], ""),
    };
    assert_eq!(login(&elsewhere, "bob", "right")["status"], 200);
    assert_eq!(error_of(&login(&elsewhere, "alice", "right")), too_many_logins());
    // Missing credentials check no password: they count against nothing.
    for _ in 0..5 {
        assert_eq!(
            login(&elsewhere, "", "")["error"]["message"],
            "Missing credentials"
        );
    }
    assert_eq!(login(&elsewhere, "bob", "right")["status"], 200);
    clock.advance(600_000);
    assert_eq!(login(&harness, "alice", "right")["status"], 200, "the lockout ended");
}

#[test]
fn a_zero_max_failures_turns_the_lockout_off() {
    let clock = ManualClock::at(T0);
    let harness = harness_on(
        &clock,
        "[limits]\nloginsPerSecond = 1000\n[security.loginLockout]\nmaxFailures = 0\n",
    );
    create_user(&harness, "alice", "default", "right");
    for _ in 0..20 {
        assert_eq!(login(&harness, "alice", "guess")["status"], 401);
    }
    assert_eq!(login(&harness, "alice", "right")["status"], 200);
}
