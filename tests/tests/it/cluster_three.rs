//! Three nodes on loopback sharing one `redis-server` and one PostgreSQL (issue 16's "done
//! when"): official Kuzzle SDK clients on each node (`tests/js/cluster_three.js`) hear, exactly
//! once, what SDK clients publish and write on the others; `realtime:count` and
//! `realtime:list` add up the three nodes.
//!
//! Skipped, with a message, only when `redis-server` or PostgreSQL is missing (and
//! `SWITCHYARD_REQUIRE_POSTGRES` is unset); `scripts/test.sh` installs both.

use std::time::Duration;

use serde_json::{json, Value};
use switchyard_tests::redis::Redis;
use switchyard_tests::{postgres, protocol_section, LineClient, Server};

use crate::sdk::Scenario;

const WAIT: Duration = Duration::from_secs(15);

/// A node: WebSocket (for the SDK) and the line fixture (for the test's own requests), its
/// documents in PostgreSQL at `database`, its realtime shared through `redis`.
fn node(database: &str, redis: &str, name: &str) -> Server {
    Server::start(&format!(
        "[server]\n{}{}[storage]\nbackend = \"postgres\"\nurl = \"{database}\"\npoolSize = 4\n\
         [cluster]\nredis = \"{redis}\"\nnodeName = \"{name}\"\nretryInterval = 100\nheartbeatInterval = 100\n",
        protocol_section("websocket", "websocket", "port = 0\naddress = \"127.0.0.1\""),
        protocol_section("line", "fixture_line", ""),
    ))
}

fn call(client: &mut LineClient, request: Value) -> Value {
    let (_, status, content) = client.request(&request.to_string());
    assert_eq!(status, 200, "{request} → {content}");
    content["result"].clone()
}

/// `(type, action, scope, _id, _source.tag)` of a notification as the script summarised it.
fn summary(notification: &Value) -> (String, String, String, Option<String>, Option<String>) {
    let text = |key: &str| notification[key].as_str().unwrap_or_default().to_string();
    (
        text("type"),
        text("action"),
        text("scope"),
        notification["id"].as_str().map(str::to_string),
        notification["tag"].as_str().map(str::to_string),
    )
}

#[test]
fn sdk_subscribers_on_three_nodes_hear_every_write_of_the_others_exactly_once() {
    let test =
        "cluster_three::sdk_subscribers_on_three_nodes_hear_every_write_of_the_others_exactly_once";
    let Some(server) = postgres::server(test) else {
        return;
    };
    let Some(redis) = Redis::start(test) else {
        return;
    };
    let database = server.database("three_nodes");
    let nodes = [
        node(&database, &redis.url(), "a"),
        node(&database, &redis.url(), "b"),
        node(&database, &redis.url(), "c"),
    ];
    let mut on_b = LineClient::connect(&nodes[1].address("line"));
    call(
        &mut on_b,
        json!({"controller": "index", "action": "create", "index": "i"}),
    );
    call(
        &mut on_b,
        json!({"controller": "collection", "action": "create", "index": "i", "collection": "c"}),
    );
    // Each node listens to i/c's channel before the script publishes anything: a room there
    // (its own, matching nothing the script sends) makes it subscribe.
    let mut keepers = Vec::new();
    for node in &nodes {
        let mut keeper = LineClient::connect(&node.address("line"));
        call(
            &mut keeper,
            json!({"controller": "realtime", "action": "subscribe", "index": "i",
                   "collection": "c", "body": {"equals": {"never": true}}}),
        );
        node.wait_for_log(&["cluster: subscribed to switchyard:i/c"], WAIT);
        keepers.push(keeper);
    }

    let urls: Vec<&str> = nodes.iter().map(|node| node.url("websocket")).collect();
    let observed = Scenario::start_with("cluster_three", &urls).finish();

    let rooms = &observed.one("subscribed")["rooms"];
    let room = rooms["A"].as_str().expect("a room id");
    assert_eq!(rooms["B"], room, "one filter, one room id on every node");
    assert_eq!(rooms["C"], room, "one filter, one room id on every node");
    for counted in observed.all("counted") {
        assert_eq!(counted["count"], 3, "{counted}");
        // The keepers' room is listed with its three subscribers too.
        let collection = counted["list"]["i"]["c"].as_object().expect("rooms of i/c");
        assert_eq!(collection.len(), 2, "{counted}");
        assert_eq!(
            collection.values().map(|n| n.as_u64()).sum::<Option<u64>>(),
            Some(6),
            "{counted}"
        );
    }

    let document = |action: &str, scope: &str, id: &str, tag: &str| {
        (
            "document".to_string(),
            action.to_string(),
            scope.to_string(),
            Some(id.to_string()),
            Some(tag.to_string()),
        )
    };
    let publication = |tag: &str| {
        (
            "document".to_string(),
            "publish".to_string(),
            "in".to_string(),
            None,
            Some(tag.to_string()),
        )
    };
    // Each node's events arrive in the order it made them; B's and C's may interleave.
    let from_b = vec![
        publication("pb1"),
        document("create", "in", "b1", "b1"),
        // A delete is heard as `out` (Kuzzle: the document left every room).
        document("delete", "out", "c1", "c1"),
        publication("pb2"),
        publication("endB"),
        publication("finalB"),
    ];
    let from_c = vec![
        publication("pc1"),
        document("create", "in", "c1", "c1"),
        document("update", "in", "b1", "b1u"),
        publication("pc2"),
        publication("endC"),
        publication("finalC"),
    ];
    for who in ["A", "B", "C"] {
        let received: Vec<_> = observed.received("who", who).iter().map(summary).collect();
        let (of_b, of_c): (Vec<_>, Vec<_>) = received
            .iter()
            .cloned()
            .partition(|notification| from_b.contains(notification));
        assert_eq!(of_b, from_b, "subscriber on {who}: {received:#?}");
        assert_eq!(of_c, from_c, "subscriber on {who}: {received:#?}");
    }

    // Node A heard every event of B and C through Redis, once each, and dropped no duplicate.
    let mut on_a = LineClient::connect(&nodes[0].address("line"));
    let info = call(&mut on_a, json!({"controller": "server", "action": "info"}))["serverInfo"]
        ["kuzzle"]["cluster"]
        .clone();
    assert_eq!(info["duplicates"], 0, "{info}");
    assert_eq!(info["lost"], 0, "{info}");
}
