//! Validation of roles, profiles and users: Kuzzle's error ids and messages, in Kuzzle's order.

use serde_json::json;
use switchyard_security::catalog::KuzzleCatalog;
use switchyard_security::{Profile, Role, User};

fn role_error(body: serde_json::Value) -> (String, String) {
    let error = Role::from_json("r", &body).unwrap_err();
    (error.id().to_owned(), error.message())
}

#[test]
fn role_definitions() {
    let table = [
        (
            json!({}),
            "api.assert.missing_argument",
            r#"Missing argument "r.controllers"."#,
        ),
        (
            json!({"controllers": null}),
            "api.assert.missing_argument",
            r#"Missing argument "r.controllers"."#,
        ),
        (
            json!({"controllers": []}),
            "api.assert.invalid_type",
            r#"Wrong type for argument "r.controllers" (expected: object)"#,
        ),
        (
            json!({"controllers": {}}),
            "api.assert.empty_argument",
            r#"The argument "r.controllers" is empty."#,
        ),
        (
            json!({"controllers": {"auth": true}}),
            "api.assert.invalid_type",
            r#"Wrong type for argument "auth" (expected: object)"#,
        ),
        (
            json!({"controllers": {"auth": {}}}),
            "api.assert.empty_argument",
            r#"The argument "auth" is empty."#,
        ),
        (
            json!({"controllers": {"auth": {"action": {}}}}),
            "api.assert.missing_argument",
            r#"Missing argument "auth"."#,
        ),
        (
            json!({"controllers": {"auth": {"actions": []}}}),
            "api.assert.invalid_type",
            r#"Wrong type for argument "auth.actions" (expected: object)"#,
        ),
        (
            json!({"controllers": {"auth": {"actions": {}}}}),
            "api.assert.empty_argument",
            r#"The argument "auth.actions" is empty."#,
        ),
        (
            json!({"controllers": {"auth": {"actions": {"login": 1}}}}),
            "api.assert.invalid_type",
            r#"Wrong type for argument "auth.actions.login" (expected: boolean)"#,
        ),
    ];
    for (body, id, message) in table {
        assert_eq!(
            role_error(body.clone()),
            (id.to_owned(), message.to_owned()),
            "{body}"
        );
    }
    let role = Role::from_json(
        "r",
        &json!({"controllers": {"auth": {"actions": {"login": true, "logout": false}}}}),
    )
    .unwrap();
    assert_eq!(
        role.to_source(),
        json!({"controllers": {"auth": {"actions": {"login": true, "logout": false}}}})
    );
}

#[test]
fn role_saving_rules() {
    let save = |id: &str, body: serde_json::Value, force: bool| {
        Role::from_json(id, &body)
            .unwrap()
            .validate_for_save(&KuzzleCatalog, force)
            .map_err(|e| (e.id(), e.message()))
    };
    assert!(save(
        "anonymous",
        json!({"controllers": {"auth": {"actions": {"login": true}}}}),
        false
    )
    .is_ok());
    assert!(save(
        "anonymous",
        json!({"controllers": {"*": {"actions": {"*": true}}}}),
        false
    )
    .is_ok());
    assert_eq!(
        save(
            "anonymous",
            json!({"controllers": {"auth": {"actions": {"login": false, "logout": true}}}}),
            false
        ),
        Err((
            "security.role.login_required",
            r#"Cannot remove the "login" action from the anonymous role."#.to_owned()
        ))
    );
    assert_eq!(
        save(
            "r",
            json!({"controllers": {"auth": {"actions": {"lgin": true}}}}),
            false
        ),
        Err((
            "security.role.unknown_action",
            "Trying to set role r with a non-existing action 'lgin' in controller 'auth'. "
                .to_owned()
        ))
    );
    assert_eq!(
        save(
            "r",
            json!({"controllers": {"*": {"actions": {"get": true}}}}),
            false
        ),
        Err((
            "security.role.unknown_action",
            "Trying to set role r with a non-existing action 'get' in controller '*'. %s"
                .to_owned()
        ))
    );
    assert_eq!(
        save(
            "r",
            json!({"controllers": {"myPlugin": {"actions": {"x": true}}}}),
            false
        ),
        Err((
            "security.role.unknown_controller",
            "Trying to set role r with a non-existing controller 'myPlugin'. ".to_owned()
        ))
    );
    assert!(save(
        "r",
        json!({"controllers": {"myPlugin": {"actions": {"x": true}}}}),
        true
    )
    .is_ok());
    assert!(save("r", json!({"controllers": {"ms": {"actions": {"get": true}}, "document": {"actions": {"*": true}}}}), false).is_ok());
}

#[test]
fn profile_definitions() {
    let table = [
        (
            json!({}),
            "api.assert.missing_argument",
            r#"Missing argument "p.policies"."#,
        ),
        (
            json!({"policies": false}),
            "api.assert.missing_argument",
            r#"Missing argument "p.policies"."#,
        ),
        (
            json!({"policies": {}}),
            "api.assert.invalid_type",
            r#"Wrong type for argument "p.policies" (expected: object[])"#,
        ),
        (
            json!({"policies": []}),
            "api.assert.empty_argument",
            r#"The argument "p.policies" is empty."#,
        ),
        (
            json!({"policies": [{}]}),
            "api.assert.missing_argument",
            r#"Missing argument "p.policies[0].roleId"."#,
        ),
        (
            json!({"policies": [{"roleId": "a"}, {"roleId": ""}]}),
            "api.assert.missing_argument",
            r#"Missing argument "p.policies[1].roleId"."#,
        ),
        (
            json!({"policies": [{"roleId": "a", "extra": 1}]}),
            "api.assert.unexpected_argument",
            r#"Unexpected argument "p.policies[0].extra" (accepted arguments: "roleId", "restrictedTo")"#,
        ),
        (
            json!({"policies": [{"roleId": "a", "restrictedTo": {}}]}),
            "api.assert.invalid_type",
            r#"Wrong type for argument "p.policies[0].restrictedTo" (expected: object[])"#,
        ),
        (
            json!({"policies": [{"roleId": "a", "restrictedTo": ["foo"]}]}),
            "api.assert.invalid_type",
            r#"Wrong type for argument "p.policies[0].restrictedTo[foo]" (expected: object)"#,
        ),
        (
            json!({"policies": [{"roleId": "a", "restrictedTo": [{"collections": []}]}]}),
            "api.assert.missing_argument",
            r#"Missing argument "p.policies[0].restrictedTo[0].index"."#,
        ),
        (
            json!({"policies": [{"roleId": "a", "restrictedTo": [{"index": "i", "collections": "c"}]}]}),
            "api.assert.invalid_type",
            r#"Wrong type for argument "p.policies[0].restrictedTo[0].collections" (expected: string[])"#,
        ),
        (
            json!({"policies": [{"roleId": "a", "restrictedTo": [{"index": "i", "foo": 1}]}]}),
            "api.assert.unexpected_argument",
            r#"Unexpected argument "p.policies[0].restrictedTo[0].foo" (accepted arguments: "index", "collections")"#,
        ),
        (
            json!({"policies": [{"roleId": "a"}], "rateLimit": "10"}),
            "api.assert.invalid_type",
            r#"Wrong type for argument "rateLimit" (expected: integer)"#,
        ),
        (
            json!({"policies": [{"roleId": "a"}], "rateLimit": 1.5}),
            "api.assert.invalid_type",
            r#"Wrong type for argument "rateLimit" (expected: integer)"#,
        ),
        (
            json!({"policies": [{"roleId": "a"}], "rateLimit": -1}),
            "api.assert.invalid_argument",
            r#"Invalid argument "rateLimit". Expected: positive integer, or zero"#,
        ),
        // rateLimit is checked before policies, as Kuzzle does.
        (
            json!({"rateLimit": -1}),
            "api.assert.invalid_argument",
            r#"Invalid argument "rateLimit". Expected: positive integer, or zero"#,
        ),
    ];
    for (body, id, message) in table {
        let error = Profile::from_json("p", &body).unwrap_err();
        assert_eq!(
            (error.id(), error.message()),
            (id, message.to_owned()),
            "{body}"
        );
    }
    let profile = Profile::from_json("p", &json!({"policies": [{"roleId": "a", "restrictedTo": [{"index": "i", "collections": ["c"]}]}], "rateLimit": 10.0})).unwrap();
    assert_eq!(profile.rate_limit, 10);
    assert_eq!(
        profile.to_source(),
        json!({"policies": [{"roleId": "a", "restrictedTo": [{"index": "i", "collections": ["c"]}]}], "rateLimit": 10})
    );
    let anonymous =
        Profile::from_json("anonymous", &json!({"policies": [{"roleId": "default"}]})).unwrap();
    let error = anonymous.validate_for_save().unwrap_err();
    assert_eq!(error.id(), "security.profile.missing_anonymous_role");
    assert_eq!(
        error.message(),
        "The anonymous profile must include the anonymous role"
    );
}

#[test]
fn users() {
    let user = User::from_content(
        "alice",
        &json!({"profileIds": ["default"], "name": "Alice"}),
    )
    .unwrap();
    assert_eq!(
        user.to_api(),
        json!({"_id": "alice", "_source": {"profileIds": ["default"], "name": "Alice"}})
    );
    let error = User::from_content("alice", &json!({"name": "Alice"})).unwrap_err();
    assert_eq!(
        error.message(),
        r#"Missing argument "body.content.profileIds"."#
    );
    let error = User::from_content("alice", &json!({"profileIds": []})).unwrap_err();
    assert_eq!(
        (error.id(), error.message()),
        (
            "security.user.no_profile",
            r#"Cannot load user "alice": there is no security profiles associated to it"#
                .to_owned()
        )
    );
    let mut anonymous = User::anonymous();
    assert_eq!(
        anonymous.to_api(),
        json!({"_id": "-1", "_source": {"profileIds": ["anonymous"], "name": "Anonymous"}})
    );
    anonymous.profile_ids = vec!["default".into()];
    assert_eq!(
        anonymous.validate_profiles().unwrap_err().id(),
        "security.user.anonymous_profile_required"
    );
}
