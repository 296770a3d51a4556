//! The gate's per-thread memory of admitted tokens (`ADMITTED` in
//! `host/src/security/service.rs`) must never outlive what it remembers: every test first makes the token remembered (a request passes
//! with it on this thread), then changes something elsewhere, and asserts the very next request
//! with the same token on the same connection sees the change — a role, a profile or a user
//! changed, a logout from another connection, a revocation, a refresh's grace period and the
//! token's expiry on a manual clock, and the connection's link moving between tokens.

use std::sync::Arc;

use serde_json::{json, Value};
use switchyard_plugin_api::ConnectionId;
use switchyard_security::clock::ManualClock;
use switchyard_storage::EmbeddedStorage;

use crate::api::testing::Harness;
use crate::api::Router;
use crate::config::Config;
use crate::security::Security;
use crate::services::{security_settings, Services};

/// A whole second: a JWT's `exp` (seconds) and its record's end (ms) then agree.
const T0: i64 = 1_000_000;

fn harness_on(clock: &ManualClock) -> Harness {
    let config = Config::parse(
        std::path::Path::new("test.toml"),
        // Logins unlimited (Kuzzle's 0): the manual clock stays within one second.
        "[server]\n[limits]\nloginsPerSecond = 0\n\
         [security.argon2]\nmemoryKib = 64\niterations = 1\nparallelism = 1\n",
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
    let connection = services.connections.declare(0, &["127.0.0.1"], "");
    Harness {
        services: Arc::new(services),
        router: Arc::new(Router::standard()),
        connection,
    }
}

/// Another connection on the same server.
fn other_connection(harness: &Harness) -> Harness {
    Harness {
        services: Arc::clone(&harness.services),
        router: Arc::clone(&harness.router),
        connection: harness.services.connections.declare(0, &["127.0.0.2"], ""),
    }
}

fn call(harness: &Harness, request: Value) -> Value {
    harness.call(&request.to_string())
}

fn ok(answer: Value) -> Value {
    assert_eq!(answer["status"], 200, "{answer}");
    answer
}

/// `{id, status, message}` of an answer's error.
fn error_of(answer: &Value) -> Value {
    let error = &answer["error"];
    json!({"id": error["id"], "status": error["status"], "message": error["message"]})
}

fn forbidden(action: &str, kuid: &str) -> Value {
    json!({"id": "security.rights.forbidden", "status": 403,
           "message": format!("Insufficient permissions to execute the action \"{action}\" (User \"{kuid}\").")})
}

fn invalid() -> Value {
    json!({"id": "security.token.invalid", "status": 401, "message": "Invalid token."})
}

fn expired() -> Value {
    json!({"id": "security.token.expired", "status": 401, "message": "Token expired"})
}

/// Role `r` (`server:now` and `server:info` allowed), profile `p` with it, profile `q` with
/// role `info` (`server:info` only), user `u` (password `p`) with profile `p`.
fn setup(harness: &Harness) {
    let requests = [
        json!({"controller": "security", "action": "createRole", "_id": "r",
               "body": {"controllers": {"server": {"actions": {"now": true, "info": true}},
                                        "auth": {"actions": {"*": true}}}}}),
        json!({"controller": "security", "action": "createRole", "_id": "info",
               "body": {"controllers": {"server": {"actions": {"info": true}},
                                        "auth": {"actions": {"*": true}}}}}),
        json!({"controller": "security", "action": "createProfile", "_id": "p",
               "body": {"policies": [{"roleId": "r"}]}}),
        json!({"controller": "security", "action": "createProfile", "_id": "q",
               "body": {"policies": [{"roleId": "info"}]}}),
        json!({"controller": "security", "action": "createUser", "_id": "u",
               "body": {"content": {"profileIds": ["p"]},
                        "credentials": {"local": {"username": "u", "password": "p"}}}}),
    ];
    for request in requests {
        ok(call(harness, request));
    }
}

fn login(harness: &Harness, expires_in: &str) -> String {
    let login = ok(call(
        harness,
        json!({"controller": "auth", "action": "login", "strategy": "local",
               "expiresIn": expires_in, "body": {"username": "u", "password": "p"}}),
    ));
    login["result"]["jwt"].as_str().unwrap().to_owned()
}

fn now(harness: &Harness, jwt: &str) -> Value {
    call(
        harness,
        json!({"controller": "server", "action": "now", "jwt": jwt}),
    )
}

/// Two passing requests: the token is in this thread's memory.
fn remembered(harness: &Harness, jwt: &str) {
    ok(now(harness, jwt));
    ok(now(harness, jwt));
}

#[test]
fn a_role_profile_or_user_change_holds_from_the_next_request() {
    let clock = ManualClock::at(T0);
    let harness = harness_on(&clock);
    setup(&harness);
    let admin = other_connection(&harness);
    let jwt = login(&harness, "1h");
    remembered(&harness, &jwt);

    // The role loses `server:now`.
    ok(call(
        &admin,
        json!({"controller": "security", "action": "updateRole", "_id": "r",
               "body": {"controllers": {"server": {"actions": {"now": false, "info": true}}}}}),
    ));
    assert_eq!(error_of(&now(&harness, &jwt)), forbidden("server:now", "u"));
    ok(call(
        &admin,
        json!({"controller": "security", "action": "updateRole", "_id": "r",
               "body": {"controllers": {"server": {"actions": {"now": true}}}}}),
    ));
    remembered(&harness, &jwt);

    // The profile moves to the role without it.
    ok(call(
        &admin,
        json!({"controller": "security", "action": "updateProfile", "_id": "p",
               "body": {"policies": [{"roleId": "info"}]}}),
    ));
    assert_eq!(error_of(&now(&harness, &jwt)), forbidden("server:now", "u"));
    ok(call(
        &admin,
        json!({"controller": "security", "action": "updateProfile", "_id": "p",
               "body": {"policies": [{"roleId": "r"}]}}),
    ));
    remembered(&harness, &jwt);

    // The user moves to the profile without it.
    ok(call(
        &admin,
        json!({"controller": "security", "action": "updateUser", "_id": "u",
               "body": {"profileIds": ["q"]}}),
    ));
    assert_eq!(error_of(&now(&harness, &jwt)), forbidden("server:now", "u"));
    ok(call(
        &harness,
        json!({"controller": "server", "action": "info", "jwt": jwt}),
    ));
}

#[test]
fn a_logout_or_a_revocation_elsewhere_refuses_the_token_on_the_next_request() {
    let clock = ManualClock::at(T0);
    let harness = harness_on(&clock);
    setup(&harness);
    let other = other_connection(&harness);

    // Logged out from another connection.
    let jwt = login(&harness, "1h");
    remembered(&harness, &jwt);
    ok(call(
        &other,
        json!({"controller": "auth", "action": "logout", "jwt": jwt}),
    ));
    assert_eq!(error_of(&now(&harness, &jwt)), invalid());

    // Every token of the user revoked by an administrator.
    let jwt = login(&harness, "1h");
    remembered(&harness, &jwt);
    ok(call(
        &other,
        json!({"controller": "security", "action": "revokeTokens", "_id": "u"}),
    ));
    assert_eq!(error_of(&now(&harness, &jwt)), invalid());

    // The user deleted.
    let jwt = login(&harness, "1h");
    remembered(&harness, &jwt);
    ok(call(
        &other,
        json!({"controller": "security", "action": "deleteUser", "_id": "u"}),
    ));
    let after = now(&harness, &jwt);
    assert_eq!(after["status"], 401, "{after}");
}

#[test]
fn expiry_and_a_refreshs_grace_period_hold_on_the_millisecond() {
    let clock = ManualClock::at(T0);
    let harness = harness_on(&clock);
    setup(&harness);
    let jwt = login(&harness, "2s");
    remembered(&harness, &jwt);
    clock.advance(1_999);
    ok(now(&harness, &jwt));
    clock.advance(1);
    assert_eq!(error_of(&now(&harness, &jwt)), expired());

    // Refreshed: the old token lives for the grace period (1 s), then is refused.
    let old = login(&harness, "1h");
    remembered(&harness, &old);
    let refreshed = ok(call(
        &harness,
        json!({"controller": "auth", "action": "refreshToken", "jwt": old}),
    ));
    let new = refreshed["result"]["jwt"].as_str().unwrap().to_owned();
    remembered(&harness, &old);
    remembered(&harness, &new);
    clock.advance(999);
    ok(now(&harness, &old));
    clock.advance(1);
    assert_eq!(error_of(&now(&harness, &old)), invalid());
    ok(now(&harness, &new));
}

#[test]
fn a_connection_switching_tokens_is_linked_to_the_one_it_used_last() {
    let clock = ManualClock::at(T0);
    let harness = harness_on(&clock);
    setup(&harness);
    let other = other_connection(&harness);
    let first = login(&other, "10s");
    let second = login(&other, "20s");
    let security = &harness.services.security;
    let linked_at = |at: i64| -> Vec<ConnectionId> {
        let mut connections: Vec<_> = security
            .take_expired(at)
            .into_iter()
            .map(|link| link.connection)
            .filter(|connection| *connection == harness.connection)
            .collect();
        connections.dedup();
        connections
    };

    // first, second, first again: the last one used holds the link, although this thread
    // remembers having linked the connection to `first` already.
    remembered(&harness, &first);
    remembered(&harness, &second);
    remembered(&harness, &first);
    assert_eq!(linked_at(T0 + 10_000), vec![harness.connection]);

    // Unlinked by its expiry: a later request with a live token links it again.
    remembered(&harness, &second);
    assert_eq!(linked_at(T0 + 20_000), vec![harness.connection]);
}

#[test]
fn connections_sharing_a_token_stay_linked_through_each_others_changes() {
    let clock = ManualClock::at(T0);
    let a = harness_on(&clock);
    setup(&a);
    let b = other_connection(&a);
    let first = login(&b, "10s");
    let second = login(&b, "20s");
    let security = &a.services.security;
    let linked_at = |at: i64| -> Vec<ConnectionId> {
        let mut connections: Vec<_> = security
            .take_expired(at)
            .into_iter()
            .map(|link| link.connection)
            .filter(|connection| *connection == a.connection || *connection == b.connection)
            .collect();
        connections.sort();
        connections.dedup();
        connections
    };

    // Both on `first`, alternating: this thread remembers both links.
    for _ in 0..2 {
        remembered(&a, &first);
        remembered(&b, &first);
    }
    // b moves to `second` and back while a keeps `first`.
    remembered(&b, &second);
    remembered(&a, &first);
    remembered(&b, &first);
    // a leaves (its link undone, as a disconnection does), then comes back with the token.
    security.unlink(a.connection);
    remembered(&b, &first);
    remembered(&a, &first);
    let mut both = vec![a.connection, b.connection];
    both.sort();
    assert_eq!(linked_at(T0 + 10_000), both);
}
