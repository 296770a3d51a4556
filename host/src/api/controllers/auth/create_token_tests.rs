//! `auth:createToken` (Kuzzle 2.20+): its result, `singleUse`, the refused infinite lifetime
//! and the anonymous caller (a token for kuid `-1` where its role allows the action, as in
//! Kuzzle; 401 from the standard `anonymous` role).

use serde_json::{json, Value};

use crate::api::testing::Harness;

fn call(harness: &Harness, request: Value) -> Value {
    harness.call(&request.to_string())
}

#[test]
fn create_token_issues_a_token_for_the_caller() {
    let harness = Harness::new();
    let created = call(
        &harness,
        json!({"controller": "security", "action": "createUser", "_id": "u",
               "body": {"content": {"profileIds": ["default"]},
                        "credentials": {"local": {"username": "u", "password": "p"}}}}),
    );
    assert_eq!(created["status"], 200, "{created}");
    let login = call(
        &harness,
        json!({"controller": "auth", "action": "login", "strategy": "local",
               "body": {"username": "u", "password": "p"}}),
    );
    let jwt = login["result"]["jwt"].as_str().unwrap().to_owned();

    let made = call(
        &harness,
        json!({"controller": "auth", "action": "createToken", "jwt": jwt, "expiresIn": "1m"}),
    );
    let result = &made["result"];
    assert_eq!(result["ttl"], 60_000, "{made}");
    assert_eq!(result["singleUse"], false);
    assert!(result["expiresAt"].as_i64().unwrap() > 0);
    let token = result["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("kauth-"), "{token}");
    assert_eq!(result.as_object().unwrap().len(), 4, "{made}");
    let checked = call(
        &harness,
        json!({"controller": "auth", "action": "checkToken", "body": {"token": token}}),
    );
    assert_eq!(checked["result"]["kuid"], "u", "{checked}");

    // Single use: the first request with it passes, the second finds it gone.
    let once = call(
        &harness,
        json!({"controller": "auth", "action": "createToken", "jwt": jwt, "singleUse": true}),
    );
    assert_eq!(once["result"]["singleUse"], true, "{once}");
    let once = once["result"]["token"].as_str().unwrap().to_owned();
    let first = call(&harness, json!({"controller": "server", "action": "now", "jwt": once}));
    assert_eq!(first["status"], 200, "{first}");
    let second = call(&harness, json!({"controller": "server", "action": "now", "jwt": once}));
    assert_eq!(second["error"]["id"], "security.token.invalid", "{second}");

    let infinite = call(
        &harness,
        json!({"controller": "auth", "action": "createToken", "jwt": jwt, "expiresIn": -1}),
    );
    assert_eq!(
        infinite["error"],
        json!({"id": "security.token.invalid_expiration", "status": 400, "code": 117506057,
               "message": "Token can not be created with this expiration time: expiresIn cannot be infinite",
               "props": []}),
        "{infinite}"
    );
    // Kuzzle asserts nothing: where the anonymous role allows the action (this open install),
    // the anonymous user gets a token for kuid `-1`, which runs as the anonymous user.
    let anonymous = call(
        &harness,
        json!({"controller": "auth", "action": "createToken", "expiresIn": "1m"}),
    );
    assert_eq!(anonymous["status"], 200, "{anonymous}");
    assert_eq!(anonymous["result"]["ttl"], 60_000, "{anonymous}");
    let token = anonymous["result"]["token"].as_str().unwrap().to_owned();
    let checked = call(
        &harness,
        json!({"controller": "auth", "action": "checkToken", "body": {"token": token}}),
    );
    assert_eq!(checked["result"]["valid"], true, "{checked}");
    assert_eq!(checked["result"]["kuid"], "-1", "{checked}");
    for _ in 0..2 {
        let me = call(
            &harness,
            json!({"controller": "auth", "action": "getCurrentUser", "jwt": token}),
        );
        assert_eq!(me["result"]["_id"], "-1", "{me}");
    }
    let logout = call(
        &harness,
        json!({"controller": "auth", "action": "logout", "jwt": token}),
    );
    assert_eq!(
        logout["error"]["message"],
        "Unauthorized: authentication required to execute the action \"auth:logout\".",
        "{logout}"
    );
}

#[test]
fn the_standard_anonymous_role_may_not_create_a_token() {
    let harness = Harness::new();
    let admin = call(
        &harness,
        json!({"controller": "security", "action": "createFirstAdmin", "_id": "admin",
               "reset": true,
               "body": {"content": {},
                        "credentials": {"local": {"username": "admin", "password": "p"}}}}),
    );
    assert_eq!(admin["status"], 200, "{admin}");
    let anonymous = call(&harness, json!({"controller": "auth", "action": "createToken"}));
    assert_eq!(anonymous["error"]["id"], "security.rights.unauthorized", "{anonymous}");
    assert_eq!(
        anonymous["error"]["message"],
        "Unauthorized: authentication required to execute the action \"auth:createToken\"."
    );
}
