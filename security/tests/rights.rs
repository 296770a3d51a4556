//! Rights as Kuzzle decides them: a table of cases from Kuzzle's code, documentation and
//! quirks, each checked on the compiled rights and on the transcription of Kuzzle's algorithm,
//! then a grid comparing both everywhere.

use serde_json::json;
use switchyard_security::defaults;
use switchyard_security::rights::{flatten_rights, reference, RightsItem};
use switchyard_security::{Profile, RightsRequest, Role, Target, UserRights};

struct World {
    roles: Vec<Role>,
    profiles: Vec<Profile>,
}

impl World {
    fn new(roles: &[(&str, serde_json::Value)], profiles: &[(&str, serde_json::Value)]) -> World {
        World {
            roles: roles
                .iter()
                .map(|(id, body)| Role::from_json(id, body).unwrap())
                .collect(),
            profiles: profiles
                .iter()
                .map(|(id, body)| Profile::from_json(id, body).unwrap())
                .collect(),
        }
    }

    fn standard() -> World {
        World {
            roles: defaults::standard_roles(),
            profiles: defaults::standard_profiles(),
        }
    }

    fn role(&self, id: &str) -> Option<&Role> {
        self.roles.iter().find(|role| role.id == id)
    }

    fn profiles(&self, ids: &[&str]) -> Vec<&Profile> {
        ids.iter()
            .map(|id| self.profiles.iter().find(|p| p.id == *id).unwrap())
            .collect()
    }

    fn compile(&self, kuid: &str, profile_ids: &[&str]) -> UserRights {
        UserRights::compile(kuid, &self.profiles(profile_ids), |id| self.role(id))
    }

    /// Both implementations, which must agree.
    fn allowed(&self, profile_ids: &[&str], request: &RightsRequest<'_>) -> bool {
        let compiled = self.compile("u", profile_ids).is_allowed(request);
        let transcribed =
            reference::is_allowed(&self.profiles(profile_ids), |id| self.role(id), request);
        assert_eq!(
            compiled, transcribed,
            "compiled and reference disagree on {request:?}"
        );
        compiled
    }
}

fn req<'a>(controller: &'a str, action: &'a str) -> RightsRequest<'a> {
    RightsRequest::new(controller, action)
}

#[test]
fn role_checks_without_fall_through() {
    let world = World::new(
        &[
            (
                "login-then-all",
                json!({"controllers": {"auth": {"actions": {"login": true}}, "*": {"actions": {"*": true}}}}),
            ),
            (
                "all",
                json!({"controllers": {"*": {"actions": {"*": true}}}}),
            ),
            (
                "no-delete",
                json!({"controllers": {"document": {"actions": {"*": true, "delete": false}}}}),
            ),
            (
                "docs-example",
                json!({"controllers": {
                "auth": {"actions": {"login": true, "getMyRights": true}},
                "document": {"actions": {"get": true, "search": true}}}}),
            ),
            (
                "ms-short",
                json!({"controllers": {"ms": {"actions": {"get": true}}}}),
            ),
            (
                "ms-both",
                json!({"controllers": {"memoryStorage": {"actions": {"*": true}}, "ms": {"actions": {"get": true}}}}),
            ),
            (
                "ms-long",
                json!({"controllers": {"memoryStorage": {"actions": {"set": true}}, "*": {"actions": {"*": true}}}}),
            ),
            (
                "star-false",
                json!({"controllers": {"*": {"actions": {"*": false}}}}),
            ),
        ],
        &[
            (
                "login-then-all",
                json!({"policies": [{"roleId": "login-then-all"}]}),
            ),
            ("all", json!({"policies": [{"roleId": "all"}]})),
            ("no-delete", json!({"policies": [{"roleId": "no-delete"}]})),
            (
                "docs-example",
                json!({"policies": [{"roleId": "docs-example"}]}),
            ),
            ("ms-short", json!({"policies": [{"roleId": "ms-short"}]})),
            ("ms-both", json!({"policies": [{"roleId": "ms-both"}]})),
            ("ms-long", json!({"policies": [{"roleId": "ms-long"}]})),
            (
                "star-false",
                json!({"policies": [{"roleId": "star-false"}]}),
            ),
        ],
    );
    let table: &[(&str, &str, &str, bool)] = &[
        // An exact controller key replaces `*` entirely (§A2.1).
        ("login-then-all", "auth", "login", true),
        ("login-then-all", "auth", "logout", false),
        ("login-then-all", "document", "create", true),
        ("all", "anything", "really", true),
        ("no-delete", "document", "delete", false),
        ("no-delete", "document", "get", true),
        ("no-delete", "collection", "create", false),
        // The permissions guide's example role.
        ("docs-example", "auth", "login", true),
        ("docs-example", "auth", "getMyRights", true),
        ("docs-example", "auth", "logout", false),
        ("docs-example", "document", "get", true),
        ("docs-example", "document", "search", true),
        ("docs-example", "document", "create", false),
        ("docs-example", "realtime", "subscribe", false),
        // `ms` and `memoryStorage` are one controller; `ms` wins when a role has both.
        ("ms-short", "memoryStorage", "get", true),
        ("ms-short", "ms", "get", true),
        ("ms-short", "ms", "set", false),
        ("ms-both", "memoryStorage", "set", false),
        ("ms-both", "ms", "get", true),
        ("ms-long", "ms", "set", true),
        ("ms-long", "ms", "get", false),
        ("ms-long", "document", "get", true),
        ("star-false", "auth", "login", false),
    ];
    for (profile, controller, action, expected) in table {
        assert_eq!(
            world.allowed(&[profile], &req(controller, action)),
            *expected,
            "{profile}: {controller}:{action}"
        );
    }
}

fn restricted_world() -> World {
    World::new(
        &[
            (
                "read",
                json!({"controllers": {"document": {"actions": {"get": true, "search": true}}, "realtime": {"actions": {"*": true}}, "index": {"actions": {"*": true}}}}),
            ),
            (
                "write",
                json!({"controllers": {"document": {"actions": {"create": true, "update": true}}}}),
            ),
            (
                "all",
                json!({"controllers": {"*": {"actions": {"*": true}}}}),
            ),
        ],
        &[
            (
                "index-only",
                json!({"policies": [{"roleId": "read", "restrictedTo": [{"index": "i1"}]}]}),
            ),
            (
                "collections",
                json!({"policies": [{"roleId": "read", "restrictedTo": [{"index": "i1", "collections": ["c2", "c1"]}]}]}),
            ),
            (
                "empty-restrictions",
                json!({"policies": [{"roleId": "read", "restrictedTo": []}]}),
            ),
            (
                "merged",
                json!({"policies": [{"roleId": "read", "restrictedTo": [{"index": "i1"}, {"index": "i1", "collections": ["c1"]}]}]}),
            ),
            (
                "empty-index",
                json!({"policies": [{"roleId": "read", "restrictedTo": [{"index": ""}]}]}),
            ),
            (
                "empty-collections",
                json!({"policies": [{"roleId": "read", "restrictedTo": [{"index": "i1", "collections": []}]}]}),
            ),
            (
                "read-i1-write-i2",
                json!({"policies": [
                {"roleId": "read", "restrictedTo": [{"index": "i1"}]},
                {"roleId": "write", "restrictedTo": [{"index": "i2", "collections": ["c1"]}]}]}),
            ),
            ("write-anywhere", json!({"policies": [{"roleId": "write"}]})),
            (
                "all-on-i3",
                json!({"policies": [{"roleId": "all", "restrictedTo": [{"index": "i3"}]}]}),
            ),
        ],
    )
}

#[test]
fn restrictions_by_index_and_collection() {
    let world = restricted_world();
    let get = req("document", "get");
    let table: &[(&[&str], RightsRequest<'_>, bool, &str)] = &[
        (
            &["index-only"],
            get.on("i1", "c1"),
            true,
            "index without collections admits all",
        ),
        (&["index-only"], get.on("i2", "c1"), false, "other index"),
        (
            &["index-only"],
            req("realtime", "unsubscribe"),
            true,
            "no index arg ignores restrictions",
        ),
        (
            &["index-only"],
            req("index", "list"),
            true,
            "index:list has no index",
        ),
        (
            &["index-only"],
            req("index", "exists").on_index("i2"),
            false,
            "index-level on another index",
        ),
        (
            &["collections"],
            get.on("i1", "c1"),
            true,
            "listed collection",
        ),
        (
            &["collections"],
            get.on("i1", "c2"),
            true,
            "listed collection (sorted)",
        ),
        (
            &["collections"],
            get.on("i1", "c3"),
            false,
            "unlisted collection",
        ),
        (
            &["collections"],
            get.on("i2", "c1"),
            false,
            "unlisted index",
        ),
        (
            &["collections"],
            req("index", "exists").on_index("i1"),
            true,
            "quirk: index without collection passes",
        ),
        (
            &["collections"],
            get.on("", "c9"),
            true,
            "quirk: an empty index ignores restrictions",
        ),
        (
            &["collections"],
            get.on("i1", ""),
            false,
            "an empty collection is a collection",
        ),
        (
            &["empty-restrictions"],
            get.on("i9", "c9"),
            true,
            "restrictedTo: [] is no restriction",
        ),
        (&["merged"], get.on("i1", "c1"), true, "merged entries"),
        (
            &["merged"],
            get.on("i1", "c2"),
            false,
            "quirk: merging an index-wide entry with a listed one restricts",
        ),
        (
            &["empty-index"],
            get.on("i9", "c9"),
            true,
            "quirk: an empty index is dropped, leaving no restriction",
        ),
        (
            &["empty-collections"],
            get.on("i1", "c9"),
            true,
            "collections: [] admits all",
        ),
        (
            &["read-i1-write-i2"],
            req("document", "create").on("i1", "c1"),
            false,
            "write only on i2",
        ),
        (
            &["read-i1-write-i2"],
            req("document", "create").on("i2", "c1"),
            true,
            "write on i2/c1",
        ),
        (
            &["read-i1-write-i2"],
            req("document", "create").on("i2", "c2"),
            false,
            "write not on i2/c2",
        ),
        (
            &["read-i1-write-i2"],
            get.on("i2", "c1"),
            false,
            "read not on i2",
        ),
        (
            &["read-i1-write-i2"],
            get.on("i1", "c7"),
            true,
            "read on i1",
        ),
        (
            &["read-i1-write-i2", "write-anywhere"],
            req("document", "create").on("i5", "c5"),
            true,
            "allow-list over profiles",
        ),
        (
            &["write-anywhere", "read-i1-write-i2"],
            get.on("i2", "c1"),
            false,
            "another profile's write does not add read",
        ),
        (
            &["all-on-i3"],
            req("server", "now"),
            true,
            "restricted *:* without index",
        ),
        (
            &["all-on-i3"],
            req("collection", "create").on("i4", "c"),
            false,
            "restricted *:* elsewhere",
        ),
        (&[], req("server", "now"), false, "no profiles, no rights"),
    ];
    for (profiles, request, expected, why) in table {
        assert_eq!(
            world.allowed(profiles, request),
            *expected,
            "{why}: {profiles:?} {request:?}"
        );
    }
}

#[test]
fn targets_need_every_pair_admitted() {
    let world = restricted_world();
    let target = |index: Option<&str>, collections: Option<&[&str]>| Target {
        index: index.map(str::to_owned),
        collections: collections.map(|c| c.iter().map(|s| s.to_string()).collect()),
    };
    let search = req("document", "search");
    let cases: Vec<(&str, Vec<Target>, bool, &str)> = vec![
        (
            "collections",
            vec![target(Some("i1"), Some(&["c1", "c2"]))],
            true,
            "all admitted",
        ),
        (
            "collections",
            vec![target(Some("i1"), Some(&["c1", "c3"]))],
            false,
            "one collection not admitted",
        ),
        (
            "collections",
            vec![
                target(Some("i1"), Some(&["c1"])),
                target(Some("i2"), Some(&["c1"])),
            ],
            false,
            "one index not admitted",
        ),
        (
            "collections",
            vec![target(Some("i*"), Some(&["c1"]))],
            false,
            "wildcard index",
        ),
        (
            "collections",
            vec![target(Some("i1"), Some(&["c*"]))],
            false,
            "wildcard collection",
        ),
        (
            "index-only",
            vec![target(Some("i1"), Some(&["x", "y"]))],
            true,
            "index-wide restriction",
        ),
        (
            "write-anywhere",
            vec![target(Some("i1"), Some(&["c1"]))],
            false,
            "role denies search",
        ),
        (
            "write-anywhere",
            vec![target(Some("i1"), None)],
            true,
            "quirk: skipped targets allow whatever the role says",
        ),
        (
            "write-anywhere",
            vec![target(None, Some(&["c1"]))],
            true,
            "quirk: a target without index is skipped",
        ),
        (
            "write-anywhere",
            vec![target(Some("i1"), Some(&[]))],
            true,
            "quirk: empty collections are skipped too",
        ),
    ];
    for (profile, targets, expected, why) in cases {
        let request = search.with_targets(&targets);
        assert_eq!(world.allowed(&[profile], &request), expected, "{why}");
    }
    // Empty targets are no targets: the ordinary check applies.
    assert!(!world.allowed(&["collections"], &search.on("i2", "c1").with_targets(&[])));
}

#[test]
fn fresh_install_is_open_and_standard_rights_are_kuzzles() {
    let open = World {
        roles: defaults::bootstrap_roles(),
        profiles: defaults::bootstrap_profiles(),
    };
    for profile in ["admin", "default", "anonymous"] {
        assert!(open.allowed(&[profile], &req("document", "create").on("a", "b")));
        assert!(open.allowed(&[profile], &req("security", "createFirstAdmin")));
    }

    let standard = World::standard();
    let table: &[(&str, &str, &str, bool)] = &[
        ("anonymous", "auth", "login", true),
        ("anonymous", "auth", "checkToken", true),
        ("anonymous", "auth", "getCurrentUser", true),
        ("anonymous", "auth", "getMyRights", true),
        ("anonymous", "auth", "logout", false),
        ("anonymous", "server", "publicApi", true),
        ("anonymous", "server", "openapi", true),
        ("anonymous", "server", "now", false),
        ("anonymous", "realtime", "subscribe", false),
        ("default", "auth", "logout", true),
        ("default", "auth", "updateSelf", true),
        ("default", "auth", "refreshToken", false),
        ("default", "auth", "login", false),
        ("default", "server", "publicApi", true),
        ("default", "server", "openapi", false),
        ("default", "realtime", "subscribe", false),
        ("default", "document", "get", false),
        ("admin", "admin", "resetDatabase", true),
        ("admin", "security", "createUser", true),
    ];
    for (profile, controller, action, expected) in table {
        assert_eq!(
            standard.allowed(&[profile], &req(controller, action)),
            *expected,
            "{profile}: {controller}:{action}"
        );
    }
    // Kuzzle's folding of rateLimit: 0 anywhere is unlimited, else the most permissive.
    assert_eq!(standard.compile("u", &["default"]).rate_limit(), Some(10));
    assert_eq!(
        standard
            .compile("u", &["default", "anonymous"])
            .rate_limit(),
        Some(200)
    );
    assert_eq!(
        standard.compile("u", &["default", "admin"]).rate_limit(),
        None
    );
}

#[test]
fn denials_are_unauthorized_for_anonymous_and_forbidden_otherwise() {
    let standard = World::standard();
    let anonymous = standard.compile("-1", &["anonymous"]);
    let error = anonymous.check(&req("document", "create")).unwrap_err();
    assert_eq!(error.id(), "security.rights.unauthorized");
    assert_eq!(error.status(), 401);
    assert_eq!(error.spec.code, 117637121);
    assert_eq!(
        error.message,
        r#"Unauthorized: authentication required to execute the action "document:create"."#
    );

    let user = standard.compile("alice", &["default"]);
    let error = user.check(&req("document", "create")).unwrap_err();
    assert_eq!(error.id(), "security.rights.forbidden");
    assert_eq!(error.status(), 403);
    assert_eq!(error.spec.code, 117637122);
    assert_eq!(
        error.message,
        r#"Insufficient permissions to execute the action "document:create" (User "alice")."#
    );
    assert!(user.check(&req("auth", "logout")).is_ok());
}

/// Every combination of the worlds' profiles against a grid of requests: the compiled rights
/// answer as the transcription of Kuzzle's code.
#[test]
fn compiled_rights_match_the_reference_on_a_grid() {
    let world = restricted_world();
    let mut roles = world.roles.clone();
    roles.extend(defaults::standard_roles().into_iter().map(|mut r| {
        r.id = format!("std-{}", r.id);
        r
    }));
    let mut profiles = world.profiles.clone();
    profiles.push(Profile::from_json("std", &json!({"policies": [{"roleId": "std-default"}, {"roleId": "std-anonymous", "restrictedTo": [{"index": "i1", "collections": ["c1"]}]}]})).unwrap());
    let world = World { roles, profiles };
    let ids: Vec<&str> = world.profiles.iter().map(|p| p.id.as_str()).collect();
    let controllers = [
        "document",
        "auth",
        "realtime",
        "index",
        "server",
        "ms",
        "memoryStorage",
        "nope",
    ];
    let actions = [
        "get",
        "search",
        "create",
        "login",
        "logout",
        "subscribe",
        "exists",
        "publicApi",
        "set",
        "x",
    ];
    let places: [(Option<&str>, Option<&str>); 8] = [
        (None, None),
        (Some("i1"), None),
        (Some("i1"), Some("c1")),
        (Some("i1"), Some("c3")),
        (Some("i2"), Some("c1")),
        (Some("i3"), Some("c")),
        (Some(""), Some("c1")),
        (None, Some("c1")),
    ];
    let mut checked = 0;
    for first in 0..ids.len() {
        for second in first..ids.len() {
            let combo = [ids[first], ids[second]];
            for controller in controllers {
                for action in actions {
                    for (index, collection) in places {
                        let request = RightsRequest {
                            controller,
                            action,
                            index,
                            collection,
                            targets: None,
                        };
                        world.allowed(&combo, &request);
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 10_000, "{checked}");
}

#[test]
fn get_my_rights_flattening() {
    let admin = World::standard();
    let items = flatten_rights(&admin.profiles(&["admin"]), |id| admin.role(id));
    let only = RightsItem {
        controller: "*".into(),
        action: "*".into(),
        index: "*".into(),
        collection: "*".into(),
        allowed: true,
    };
    assert_eq!(
        items,
        vec![only.clone()],
        "the SDK suite counts exactly one entry for admin"
    );
    assert_eq!(
        only.to_json(),
        json!({"controller": "*", "action": "*", "index": "*", "collection": "*", "value": "allowed"})
    );

    let world = World::new(
        &[
            (
                "r1",
                json!({"controllers": {"document": {"actions": {"get": true, "delete": false}}}}),
            ),
            (
                "r2",
                json!({"controllers": {"document": {"actions": {"delete": true}}}}),
            ),
        ],
        &[
            (
                "p1",
                json!({"policies": [{"roleId": "r1", "restrictedTo": [{"index": "i1", "collections": ["b", "a"]}, {"index": "i2"}]}]}),
            ),
            (
                "p2",
                json!({"policies": [{"roleId": "r2", "restrictedTo": [{"index": "i1", "collections": ["a"]}]}]}),
            ),
        ],
    );
    let items = flatten_rights(&world.profiles(&["p1", "p2"]), |id| world.role(id));
    let rows: Vec<(String, String, String, bool)> = items
        .iter()
        .map(|i| {
            (
                i.action.clone(),
                i.index.clone(),
                i.collection.clone(),
                i.allowed,
            )
        })
        .collect();
    let expected = [
        ("get", "i1", "a", true),
        ("get", "i1", "b", true),
        ("get", "i2", "*", true),
        ("delete", "i1", "a", true), // denied by r1, allowed by r2: merged allowed
        ("delete", "i1", "b", false),
        ("delete", "i2", "*", false),
    ];
    let expected: Vec<(String, String, String, bool)> = expected
        .iter()
        .map(|(a, i, c, v)| (a.to_string(), i.to_string(), c.to_string(), *v))
        .collect();
    assert_eq!(rows, expected);
}
