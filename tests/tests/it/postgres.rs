//! `[storage] backend = "postgres"` against the real host: nodes sharing one PostgreSQL (a
//! throwaway server, `switchyard_tests::postgres`) read each other's documents; a node that
//! cannot reach it refuses to start, naming the URL without its password; a database lost
//! mid-run answers Kuzzle errors, and nothing acknowledged is lost.
//!
//! Skipped, with a message, only when PostgreSQL is not installed and
//! `SWITCHYARD_REQUIRE_POSTGRES` is unset (`scripts/test.sh` installs and requires it).

use std::time::Duration;

use serde_json::{json, Value};
use switchyard_tests::{postgres, protocol_section, run_config, LineClient, Server};

use switchyard_tests::redis::Redis;

const WAIT: Duration = Duration::from_secs(15);

fn node(url: &str, cluster: &str) -> Server {
    Server::start(&format!(
        "[server]\n{}[storage]\nbackend = \"postgres\"\nurl = \"{url}\"\npoolSize = 4\n{cluster}",
        protocol_section("line", "fixture_line", "")
    ))
}

fn client(server: &Server) -> LineClient {
    LineClient::connect(&server.address("line"))
}

/// Sends a request; returns its status and content.
fn ask(client: &mut LineClient, request: Value) -> (u16, Value) {
    let (_, status, content) = client.request(&request.to_string());
    (status, content)
}

fn call(client: &mut LineClient, request: Value) -> Value {
    let (status, content) = ask(client, request.clone());
    assert_eq!(status, 200, "{request} → {content}");
    content["result"].clone()
}

fn get(client: &mut LineClient, id: &str) -> (u16, Value) {
    ask(
        client,
        json!({"controller": "document", "action": "get", "index": "i", "collection": "c", "_id": id}),
    )
}

#[test]
fn two_nodes_share_documents_through_one_postgres() {
    let test = "postgres::two_nodes_share_documents_through_one_postgres";
    let Some(server) = postgres::server(test) else {
        return;
    };
    let url = server.database("two_nodes");
    let a = node(&url, "");
    let mut on_a = client(&a);
    // Users are read into memory at start (README, "Storage"): one created through A before B
    // starts is known to B, and so is the token signing secret A generated.
    call(
        &mut on_a,
        json!({"controller": "security", "action": "createFirstAdmin", "_id": "admin",
               "body": {"content": {}, "credentials": {"local": {"username": "admin", "password": "pw-0123456789"}}}}),
    );
    let token = call(
        &mut on_a,
        json!({"controller": "auth", "action": "login", "strategy": "local",
               "body": {"username": "admin", "password": "pw-0123456789"}}),
    )["jwt"]
        .as_str()
        .expect("a token")
        .to_string();
    let b = node(&url, "");
    let mut on_b = client(&b);
    let checked = call(
        &mut on_b,
        json!({"controller": "auth", "action": "checkToken", "body": {"token": token}}),
    );
    assert_eq!(checked["valid"], true, "{checked}");
    let login = call(
        &mut on_b,
        json!({"controller": "auth", "action": "login", "strategy": "local",
               "body": {"username": "admin", "password": "pw-0123456789"}}),
    );
    assert_eq!(login["_id"], "admin");

    call(
        &mut on_a,
        json!({"controller": "index", "action": "create", "index": "i"}),
    );
    call(
        &mut on_a,
        json!({"controller": "collection", "action": "create", "index": "i", "collection": "c",
               "body": {"properties": {"color": {"type": "keyword"}}}}),
    );
    let created = call(
        &mut on_a,
        json!({"controller": "document", "action": "create", "index": "i", "collection": "c",
               "_id": "d1", "body": {"color": "red", "n": 1}}),
    );
    assert_eq!(created["_version"], 1);

    // B sees A's index, collection and document, byte for byte.
    assert_eq!(
        call(&mut on_b, json!({"controller": "index", "action": "list"}))["indexes"],
        json!(["i"])
    );
    let (status, got) = get(&mut on_b, "d1");
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["result"]["_source"]["color"], "red");
    assert_eq!(got["result"]["_source"]["n"], 1);
    assert_eq!(got["result"]["_version"], 1);
    assert_eq!(
        got["result"]["_source"]["_kuzzle_info"]["createdAt"],
        created["_source"]["_kuzzle_info"]["createdAt"]
    );

    // A write through B is seen by A; a create of the same id through B is refused as on one node.
    let updated = call(
        &mut on_b,
        json!({"controller": "document", "action": "update", "index": "i", "collection": "c",
               "_id": "d1", "body": {"n": 2}}),
    );
    assert_eq!(updated["_version"], 2);
    let (_, got) = get(&mut on_a, "d1");
    assert_eq!(got["result"]["_source"]["n"], 2);
    assert_eq!(got["result"]["_version"], 2);
    let (status, refused) = ask(
        &mut on_b,
        json!({"controller": "document", "action": "create", "index": "i", "collection": "c",
               "_id": "d1", "body": {}}),
    );
    assert_eq!(status, 400, "{refused}");
    assert_eq!(
        refused["error"]["id"],
        "services.storage.document_already_exists"
    );
    assert_eq!(refused["error"]["message"], "Document already exists.");

    let found = call(
        &mut on_b,
        json!({"controller": "document", "action": "search", "index": "i", "collection": "c",
               "body": {"query": {"term": {"color": "red"}}}}),
    );
    assert_eq!(found["total"], 1);
    assert_eq!(found["hits"][0]["_id"], "d1");
}

#[test]
fn with_redis_too_a_subscriber_on_one_node_hears_writes_made_on_another() {
    let test = "postgres::with_redis_too_a_subscriber_on_one_node_hears_writes_made_on_another";
    let Some(server) = postgres::server(test) else {
        return;
    };
    let Some(redis) = Redis::start(test) else {
        return;
    };
    let url = server.database("with_redis");
    let cluster = |name: &str| {
        format!(
            "[cluster]\nredis = \"{}\"\nnodeName = \"{name}\"\nretryInterval = 100\nheartbeatInterval = 100\n",
            redis.url()
        )
    };
    let a = node(&url, &cluster("a"));
    let b = node(&url, &cluster("b"));
    let mut on_a = client(&a);
    call(
        &mut on_a,
        json!({"controller": "index", "action": "create", "index": "i"}),
    );
    call(
        &mut on_a,
        json!({"controller": "collection", "action": "create", "index": "i", "collection": "c"}),
    );
    let mut on_b = client(&b);
    let subscribed = call(
        &mut on_b,
        json!({"controller": "realtime", "action": "subscribe", "index": "i", "collection": "c",
               "body": {"equals": {"color": "red"}}}),
    );
    b.wait_for_log(&["cluster: subscribed to switchyard:i/c"], WAIT);
    call(
        &mut on_a,
        json!({"controller": "document", "action": "create", "index": "i", "collection": "c",
               "_id": "d1", "body": {"color": "red"}}),
    );
    let line = on_b.read_line().expect("a notification");
    let (channel, payload) = line
        .strip_prefix("notification ")
        .and_then(|rest| rest.split_once(' '))
        .unwrap_or_else(|| panic!("not a notification: {line}"));
    assert_eq!(channel, subscribed["channel"]);
    let payload: Value = serde_json::from_str(payload).expect("JSON");
    assert_eq!(payload["action"], "create");
    assert_eq!(payload["scope"], "in");
    assert_eq!(payload["result"]["_id"], "d1");
    // And the document it announces is there for B to read.
    let (status, got) = get(&mut on_b, "d1");
    assert_eq!(
        (status, &got["result"]["_source"]["color"]),
        (200, &json!("red"))
    );
}

#[test]
fn a_node_that_cannot_reach_postgres_refuses_to_start() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let finished = run_config(
        &format!(
            "[server]\n[storage]\nbackend = \"postgres\"\nurl = \"postgres://app:hunter2@127.0.0.1:{port}/sy\"\nconnectTimeout = 2000\n"
        ),
        WAIT,
    );
    assert!(!finished.status.success(), "{}", finished.stderr);
    let text = format!("{}{}", finished.stdout, finished.stderr);
    assert!(
        text.contains(&format!(
            "error: cannot open the document store (storage.url): cannot reach PostgreSQL at postgres://app:***@127.0.0.1:{port}/sy: error connecting to server"
        )),
        "{text}"
    );
    assert!(
        text.contains("hint: start PostgreSQL, fix storage.url"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn a_lost_database_answers_errors_and_loses_nothing_acknowledged() {
    let test = "postgres::a_lost_database_answers_errors_and_loses_nothing_acknowledged";
    let Some(server) = postgres::server(test) else {
        return;
    };
    let url = server.database("lost");
    let database = url.rsplit('/').next().expect("a database").to_string();
    let host = node(&url, "");
    let mut on = client(&host);
    call(
        &mut on,
        json!({"controller": "index", "action": "create", "index": "i"}),
    );
    call(
        &mut on,
        json!({"controller": "collection", "action": "create", "index": "i", "collection": "c"}),
    );
    for n in 0..20 {
        call(
            &mut on,
            json!({"controller": "document", "action": "create", "index": "i", "collection": "c",
                   "_id": format!("d{n}"), "body": {"n": n}}),
        );
    }
    server.psql(&format!(
        "ALTER DATABASE {database} WITH ALLOW_CONNECTIONS false"
    ));
    server.psql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'"
    ));
    let (status, answer) = get(&mut on, "d1");
    assert_eq!(status, 500, "{answer}");
    assert_eq!(answer["error"]["id"], "services.storage.unexpected_error");
    let message = answer["error"]["message"].as_str().expect("a message");
    assert!(
        message.contains(&format!("cannot reach PostgreSQL at {url}")),
        "{message}"
    );
    let (status, _) = ask(
        &mut on,
        json!({"controller": "document", "action": "create", "index": "i", "collection": "c",
               "_id": "lost", "body": {}}),
    );
    assert_eq!(status, 500);

    server.psql(&format!(
        "ALTER DATABASE {database} WITH ALLOW_CONNECTIONS true"
    ));
    let counted = call(
        &mut on,
        json!({"controller": "document", "action": "count", "index": "i", "collection": "c", "body": {}}),
    );
    assert_eq!(counted["count"], 20);
    let (status, _) = get(&mut on, "lost");
    assert_eq!(status, 404);
}

/// Asks until `done` says the answer is the expected one (another node's change reaches this
/// one within a Redis round trip: this converges, it does not synchronise), for `WAIT` at most.
fn ask_until(
    client: &mut LineClient,
    request: Value,
    done: impl Fn(u16, &Value) -> bool,
) -> (u16, Value) {
    let until = std::time::Instant::now() + WAIT;
    loop {
        let (status, content) = ask(client, request.clone());
        if done(status, &content) {
            return (status, content);
        }
        assert!(
            std::time::Instant::now() < until,
            "{request} never gave the expected answer; last: {status} {content}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn with_redis_too_security_changes_made_on_one_node_apply_on_the_others() {
    let test = "postgres::with_redis_too_security_changes_made_on_one_node_apply_on_the_others";
    let Some(server) = postgres::server(test) else {
        return;
    };
    let Some(redis) = Redis::start(test) else {
        return;
    };
    let url = server.database("security_changes");
    let cluster = |name: &str| {
        format!(
            "[cluster]\nredis = \"{}\"\nnodeName = \"{name}\"\nretryInterval = 100\nheartbeatInterval = 100\n",
            redis.url()
        )
    };
    let a = node(&url, &cluster("a"));
    let b = node(&url, &cluster("b"));
    for node in [&a, &b] {
        node.wait_for_log(&["cluster: subscribed to switchyard:~security"], WAIT);
    }
    let mut on_a = client(&a);
    let mut on_b = client(&b);
    // A user created through A after B started: B reads it again, so it can log in there.
    call(
        &mut on_a,
        json!({"controller": "security", "action": "createFirstAdmin", "_id": "admin",
               "body": {"content": {}, "credentials": {"local": {"username": "admin", "password": "pw-0123456789"}}}}),
    );
    call(
        &mut on_a,
        json!({"controller": "index", "action": "create", "index": "i"}),
    );
    call(
        &mut on_a,
        json!({"controller": "collection", "action": "create", "index": "i", "collection": "c"}),
    );
    // (Asked with an action without a rate limit of its own, unlike `auth:login`.)
    ask_until(
        &mut on_b,
        json!({"controller": "security", "action": "hasCredentials", "strategy": "local",
               "_id": "admin"}),
        |status, content| status == 200 && content["result"] == true,
    );
    let logged_in = call(
        &mut on_b,
        json!({"controller": "auth", "action": "login", "strategy": "local",
               "body": {"username": "admin", "password": "pw-0123456789"}}),
    );
    let token = logged_in["jwt"].as_str().expect("a token").to_string();
    // B's connection subscribes with the token: the token is linked to it.
    let room = call(
        &mut on_b,
        json!({"controller": "realtime", "action": "subscribe", "index": "i", "collection": "c",
               "jwt": token, "body": {}}),
    )["roomId"]
        .as_str()
        .expect("a room")
        .to_string();
    let count = json!({"controller": "realtime", "action": "count", "body": {"roomId": room}});
    assert_eq!(call(&mut on_b, count.clone())["count"], 1);
    // A learns of the token B issued within a Redis round trip.
    ask_until(
        &mut on_a,
        json!({"controller": "auth", "action": "checkToken", "body": {"token": token}}),
        |status, content| status == 200 && content["result"]["valid"] == true,
    );
    // A logout through A: on B the token stops being valid, and the connection linked to it
    // loses its subscription.
    call(
        &mut on_a,
        json!({"controller": "auth", "action": "logout", "jwt": token}),
    );
    ask_until(
        &mut on_b,
        json!({"controller": "auth", "action": "checkToken", "body": {"token": token}}),
        |status, content| status == 200 && content["result"]["valid"] == false,
    );
    let (status, content) = ask_until(&mut on_b, count, |status, _| status != 200);
    assert_eq!(status, 404, "{content}");
    assert_eq!(content["error"]["id"], "core.realtime.room_not_found");
    // B's gate remembered the token (the subscription passed with it): once B has read the
    // logout, its next request with the token is refused.
    let (status, content) = ask(
        &mut on_b,
        json!({"controller": "server", "action": "now", "jwt": token}),
    );
    assert_eq!(status, 401, "{content}");
    assert_eq!(content["error"]["id"], "security.token.invalid");

    // A role changed through A holds on B for a token B's gate remembers.
    let admin = call(
        &mut on_a,
        json!({"controller": "auth", "action": "login", "strategy": "local",
               "body": {"username": "admin", "password": "pw-0123456789"}}),
    )["jwt"]
        .as_str()
        .expect("a token")
        .to_string();
    for request in [
        json!({"controller": "security", "action": "createRole", "_id": "r", "jwt": admin,
               "body": {"controllers": {"server": {"actions": {"now": true}}}}}),
        json!({"controller": "security", "action": "createProfile", "_id": "p", "jwt": admin,
               "body": {"policies": [{"roleId": "r"}]}}),
        json!({"controller": "security", "action": "createUser", "_id": "u", "jwt": admin,
               "body": {"content": {"profileIds": ["p"]},
                        "credentials": {"local": {"username": "u", "password": "pw-u-0123456789"}}}}),
    ] {
        call(&mut on_a, request);
    }
    ask_until(
        &mut on_b,
        json!({"controller": "security", "action": "hasCredentials", "strategy": "local",
               "_id": "u", "jwt": admin}),
        |status, content| status == 200 && content["result"] == true,
    );
    // A connection of its own: logins are limited to one per connection per second.
    let mut user_b = client(&b);
    let user = call(
        &mut user_b,
        json!({"controller": "auth", "action": "login", "strategy": "local",
               "body": {"username": "u", "password": "pw-u-0123456789"}}),
    )["jwt"]
        .as_str()
        .expect("a token")
        .to_string();
    let now = json!({"controller": "server", "action": "now", "jwt": user});
    call(&mut user_b, now.clone());
    call(&mut user_b, now.clone());
    call(
        &mut on_a,
        json!({"controller": "security", "action": "updateRole", "_id": "r", "jwt": admin,
               "body": {"controllers": {"server": {"actions": {"now": false, "info": true}}}}}),
    );
    let (status, content) = ask_until(&mut user_b, now, |status, _| status != 200);
    assert_eq!(status, 403, "{content}");
    assert_eq!(content["error"]["id"], "security.rights.forbidden");
}

#[test]
fn a_database_laid_out_by_a_newer_version_is_refused_at_start_up() {
    let test = "postgres::a_database_laid_out_by_a_newer_version_is_refused_at_start_up";
    let Some(server) = postgres::server(test) else {
        return;
    };
    let url = server.database("newer_schema");
    let database = url.rsplit('/').next().expect("a database").to_string();
    // A first start records today's layout, version 2; a second start accepts it.
    for _ in 0..2 {
        let host = node(&url, "");
        let mut on = client(&host);
        call(&mut on, json!({"controller": "server", "action": "now"}));
    }
    // As if a newer Switchyard had migrated the database.
    server.psql_in(&database, "UPDATE switchyard_schema SET version = 3");
    let finished = run_config(
        &format!("[server]\n[storage]\nbackend = \"postgres\"\nurl = \"{url}\"\n"),
        WAIT,
    );
    assert!(!finished.status.success(), "{}", finished.stderr);
    let text = format!("{}{}", finished.stdout, finished.stderr);
    assert!(
        text.contains(&format!(
            "error: cannot open the document store (storage.url): PostgreSQL at {url}: the database's schema is version 3 (switchyard_schema), newer than this build's 2"
        )),
        "{text}"
    );
    assert!(
        text.contains("hint: run the Switchyard version that laid it out (or a newer one), or point storage.url at another database"),
        "{text}"
    );
}

#[test]
fn with_redis_too_nodes_starting_together_on_an_empty_database_accept_each_others_tokens() {
    let test = "postgres::with_redis_too_nodes_starting_together_on_an_empty_database_accept_each_others_tokens";
    let Some(server) = postgres::server(test) else {
        return;
    };
    let Some(redis) = Redis::start(test) else {
        return;
    };
    let url = server.database("together");
    let cluster = |name: &str| {
        format!(
            "[cluster]\nredis = \"{}\"\nnodeName = \"{name}\"\nretryInterval = 100\nheartbeatInterval = 100\n",
            redis.url()
        )
    };
    // They generate signing seeds on the empty database at the same time; one is kept.
    let nodes: Vec<Server> = std::thread::scope(|scope| {
        let starting: Vec<_> = ["a", "b", "c", "d"]
            .map(|name| {
                let cluster = cluster(name);
                let url = &url;
                scope.spawn(move || node(url, &cluster))
            })
            .into_iter()
            .collect();
        starting
            .into_iter()
            .map(|node| node.join().expect("a node"))
            .collect()
    });
    for node in &nodes {
        node.wait_for_log(&["cluster: subscribed to switchyard:~security"], WAIT);
    }
    let mut clients: Vec<LineClient> = nodes.iter().map(client).collect();
    call(
        &mut clients[0],
        json!({"controller": "security", "action": "createUser", "_id": "u",
               "body": {"content": {"profileIds": ["default"]},
                        "credentials": {"local": {"username": "u", "password": "pw-0123456789"}}}}),
    );
    let login = json!({"controller": "auth", "action": "login", "strategy": "local",
                       "body": {"username": "u", "password": "pw-0123456789"}});
    let mut tokens = Vec::new();
    for client in &mut clients {
        ask_until(
            client,
            json!({"controller": "security", "action": "hasCredentials", "strategy": "local",
                   "_id": "u"}),
            |status, content| status == 200 && content["result"] == true,
        );
        tokens.push(
            call(client, login.clone())["jwt"]
                .as_str()
                .expect("a token")
                .to_string(),
        );
    }
    // Each node accepts every other's token (a token signed with another seed never would).
    for (checker, client) in clients.iter_mut().enumerate() {
        for (issuer, token) in tokens.iter().enumerate() {
            if issuer != checker {
                ask_until(
                    client,
                    json!({"controller": "auth", "action": "checkToken", "body": {"token": token}}),
                    |status, content| status == 200 && content["result"]["valid"] == true,
                );
            }
        }
    }
}

#[test]
fn with_redis_too_specifications_changed_on_one_node_check_publishes_on_the_others() {
    let test =
        "postgres::with_redis_too_specifications_changed_on_one_node_check_publishes_on_the_others";
    let Some(server) = postgres::server(test) else {
        return;
    };
    let Some(redis) = Redis::start(test) else {
        return;
    };
    let url = server.database("specifications_changes");
    let cluster = |name: &str| {
        format!(
            "[cluster]\nredis = \"{}\"\nnodeName = \"{name}\"\nretryInterval = 100\nheartbeatInterval = 100\n",
            redis.url()
        )
    };
    let a = node(&url, &cluster("a"));
    let b = node(&url, &cluster("b"));
    for node in [&a, &b] {
        node.wait_for_log(&["cluster: subscribed to switchyard:~security"], WAIT);
    }
    let mut on_a = client(&a);
    let mut on_b = client(&b);
    call(
        &mut on_a,
        json!({"controller": "index", "action": "create", "index": "i"}),
    );
    call(
        &mut on_a,
        json!({"controller": "collection", "action": "create", "index": "i", "collection": "c"}),
    );
    let extra = json!({"controller": "realtime", "action": "publish", "index": "i",
                       "collection": "c", "body": {"extra": 1}});
    // B started before any specifications existed: the message goes through.
    assert_eq!(call(&mut on_b, extra.clone()), json!({"published": true}));
    // Strict specifications stored through A: B's `realtime:publish`, which checks its copy
    // in memory, refuses the same message once the change crossed Redis.
    call(
        &mut on_a,
        json!({"controller": "collection", "action": "updateSpecifications", "index": "i",
               "collection": "c", "body": {"strict": true, "fields": {"name": {"type": "string"}}}}),
    );
    let (status, content) = ask_until(&mut on_b, extra.clone(), |status, _| status != 200);
    assert_eq!(status, 400, "{content}");
    assert_eq!(content["error"]["id"], "validation.check.failed_document");
    assert_eq!(
        content["error"]["message"],
        "Failed to validate document: The document validation is strict. Cannot add unspecified sub-field \"extra\""
    );
    // Deleted through A: B lets it through again.
    call(
        &mut on_a,
        json!({"controller": "collection", "action": "deleteSpecifications", "index": "i",
               "collection": "c"}),
    );
    ask_until(&mut on_b, extra, |status, _| status == 200);
}
