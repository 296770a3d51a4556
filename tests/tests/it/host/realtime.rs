//! Realtime through the line fixture: subscriptions, notifications across protocols, and a
//! protocol whose `broadcast` panics without taking anything else down.

use std::time::Duration;

use serde_json::{json, Value};
use switchyard_tests::{protocol_section, LineClient, Server};

fn subscribe(client: &mut LineClient, filter: Value, extra: &str) -> (String, String) {
    let (_, status, content) = client.request(&format!(
        r#"{{"controller":"realtime","action":"subscribe","index":"i","collection":"c","body":{filter}{extra}}}"#
    ));
    assert_eq!(status, 200, "{content}");
    (
        content["result"]["roomId"].as_str().unwrap().to_string(),
        content["result"]["channel"].as_str().unwrap().to_string(),
    )
}

fn publish(client: &mut LineClient, body: Value) {
    let (_, status, content) = client.request(&format!(
        r#"{{"controller":"realtime","action":"publish","index":"i","collection":"c","requestId":"pub","body":{body}}}"#
    ));
    assert_eq!(
        (status, &content["result"]),
        (200, &json!({"published": true}))
    );
}

fn notification(client: &mut LineClient) -> (String, Value) {
    let line = client.read_line().expect("a notification");
    let rest = line
        .strip_prefix("notification ")
        .unwrap_or_else(|| panic!("not a notification: {line}"));
    let (channel, payload) = rest.split_once(' ').unwrap();
    (channel.to_string(), serde_json::from_str(payload).unwrap())
}

#[test]
fn publish_reaches_matching_subscribers_on_every_protocol() {
    let server = Server::start(&format!(
        "[server]\n{}{}",
        protocol_section("first", "fixture_line", ""),
        protocol_section("second", "fixture_line", "")
    ));
    let mut subscriber = LineClient::connect(&server.address("first"));
    let mut other = LineClient::connect(&server.address("second"));
    let mut publisher = LineClient::connect(&server.address("second"));
    let (room, channel) = subscribe(&mut subscriber, json!({"equals": {"color": "red"}}), "");
    let (other_room, other_channel) =
        subscribe(&mut other, json!({"range": {"size": {"gte": 10}}}), "");
    assert_eq!(channel, format!("{room}-311"));
    assert_ne!(room, other_room);

    publish(&mut publisher, json!({"color": "blue", "size": 3}));
    publish(&mut publisher, json!({"color": "red", "size": 12}));
    // Only the second message matches either filter, and it matches both.
    for (client, expected_channel) in [(&mut subscriber, &channel), (&mut other, &other_channel)] {
        let (channel, payload) = notification(client);
        assert_eq!(&channel, expected_channel);
        assert_eq!(payload["type"], "document");
        assert_eq!(payload["action"], "publish");
        assert_eq!(payload["event"], "publish");
        assert_eq!(payload["scope"], "in");
        assert_eq!(payload["requestId"], "pub");
        assert_eq!(payload["protocol"], "second");
        assert_eq!(payload["result"]["_source"]["color"], "red");
        assert_eq!(payload["result"]["_source"]["_kuzzle_info"]["author"], "-1");
    }

    let (_, status, content) = subscriber.request(&format!(
        r#"{{"controller":"realtime","action":"count","body":{{"roomId":"{room}"}}}}"#
    ));
    assert_eq!((status, &content["result"]), (200, &json!({"count": 1})));
    let (_, status, content) = subscriber.request(&format!(
        r#"{{"controller":"realtime","action":"unsubscribe","body":{{"roomId":"{room}"}}}}"#
    ));
    assert_eq!(
        (status, &content["result"]),
        (200, &json!({"roomId": room}))
    );
    let (_, status, content) = subscriber.request(&format!(
        r#"{{"controller":"realtime","action":"count","body":{{"roomId":"{room}"}}}}"#
    ));
    assert_eq!(status, 404);
    assert_eq!(content["error"]["id"], "core.realtime.room_not_found");
}

#[test]
fn a_panicking_broadcast_does_not_take_the_host_down() {
    let server = Server::start(&format!(
        "[server]\nhookPanicLimit = 2\n{}{}",
        protocol_section("faulty", "fixture_line", "panicOnBroadcast = true"),
        protocol_section("healthy", "fixture_line", "")
    ));
    let mut subscriber = LineClient::connect(&server.address("healthy"));
    let mut faulty_client = LineClient::connect(&server.address("faulty"));
    subscribe(&mut subscriber, json!({}), "");

    publish(&mut faulty_client, json!({"n": 1}));
    assert_eq!(notification(&mut subscriber).1["result"]["_source"]["n"], 1);
    let line = server.wait_for_log(
        &["hook panicked at", "broadcast panicked on purpose"],
        Duration::from_secs(10),
    );
    assert!(line.contains("plugin=\"fixture-line\""), "{line}");
    assert!(line.contains("protocol=\"faulty\""), "{line}");
    assert!(line.contains("hook=\"broadcast\""), "{line}");

    // The faulty protocol still serves requests; the second panic reaches the limit.
    publish(&mut faulty_client, json!({"n": 2}));
    assert_eq!(notification(&mut subscriber).1["result"]["_source"]["n"], 2);
    server.wait_for_log(
        &["protocol disabled after 2 panics"],
        Duration::from_secs(10),
    );
    publish(&mut faulty_client, json!({"n": 3}));
    assert_eq!(notification(&mut subscriber).1["result"]["_source"]["n"], 3);

    let (_, status, content) = subscriber.request(r#"{"controller":"server","action":"info"}"#);
    assert_eq!(status, 200);
    let protocols = &content["result"]["serverInfo"]["kuzzle"]["protocols"];
    assert_eq!(protocols["faulty"]["enabled"], false);
    assert_eq!(protocols["healthy"]["enabled"], true);
}

#[test]
fn a_dropped_connection_leaves_its_rooms() {
    let server = Server::start(&format!(
        "[server]\n{}",
        protocol_section("line", "fixture_line", "")
    ));
    let mut watcher = LineClient::connect(&server.address("line"));
    let (room, watcher_channel) = subscribe(&mut watcher, json!({}), r#","users":"all""#);
    {
        let mut leaving = LineClient::connect(&server.address("line"));
        let (same_room, _) = subscribe(&mut leaving, json!({}), r#","volatile":{"who":"leaver"}"#);
        assert_eq!(same_room, room);
        let (channel, joined) = notification(&mut watcher);
        assert_eq!(channel, watcher_channel);
        assert_eq!(joined["user"], "in");
        assert_eq!(joined["result"]["count"], 2);
        assert_eq!(joined["volatile"], json!({"who": "leaver"}));
    }
    let (_, left) = notification(&mut watcher);
    assert_eq!(left["type"], "user");
    assert_eq!(left["user"], "out");
    assert_eq!(left["action"], "unsubscribe");
    assert_eq!(left["result"]["count"], 1);
    assert_eq!(left["volatile"], json!({"who": "leaver"}));
}

#[test]
fn costly_filters_are_refused_with_kuzzles_errors_at_the_default_limits() {
    let server = Server::start(&format!(
        "[server]\n{}",
        protocol_section("line", "fixture_line", "")
    ));
    let mut client = LineClient::connect(&server.address("line"));
    // The probe of issue 19: 833 bytes that normalize to 16,384 terms.
    let group = |n: usize| json!({"or": (0..4).map(|v| json!({"equals": {format!("f{n}"): v}})).collect::<Vec<_>>()});
    let bomb = json!({"and": (0..7).map(group).collect::<Vec<_>>()});
    let (_, status, content) = client.request(&format!(
        r#"{{"controller":"realtime","action":"subscribe","index":"i","collection":"c","body":{bomb}}}"#
    ));
    assert_eq!(status, 413, "{content}");
    assert_eq!(
        content["error"],
        json!({
            "message": "Unable to subscribe: maximum number of terms exceeded (max 512, received 16384).",
            "status": 413,
            "id": "core.realtime.too_many_terms",
            "code": 65542,
            "props": []
        })
    );

    // A regexp of 80,000 alternatives (about 790 KB) is refused before it is compiled.
    let pattern = (0..80_000)
        .map(|i| format!("word{i}"))
        .collect::<Vec<_>>()
        .join("|");
    let (_, status, content) = client.request(&format!(
        r#"{{"controller":"realtime","action":"subscribe","index":"i","collection":"c","body":{{"regexp":{{"s":{{"value":"{pattern}"}}}}}}}}"#
    ));
    assert_eq!(status, 400, "{content}");
    assert_eq!(content["error"]["id"], "api.assert.koncorde_dsl_error");
    assert!(
        content["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("(pattern too large - compile failed)"),
        "{content}"
    );
    // Nothing was stored.
    let (_, _, content) = client.request(r#"{"controller":"realtime","action":"list"}"#);
    assert_eq!(content["result"], json!({}));
}

/// Issue 17, finding 3: the line fixture wrote to sockets inside `broadcast` while holding its
/// connections' lock, so one subscriber that stopped reading blocked the hook (and with it
/// every other subscriber) once its socket buffers were full. Its hooks now only queue lines
/// for a writer thread per connection: ~13 MB of notifications to a client that never reads
/// hold up neither the publisher's answers nor the reading subscriber's notifications.
#[test]
fn a_line_subscriber_that_never_reads_holds_up_no_one() {
    let server = Server::start(&format!(
        "[server]\n{}",
        protocol_section("line", "fixture_line", "")
    ));
    let mut stalled = LineClient::connect(&server.address("line"));
    let mut reader = LineClient::connect(&server.address("line"));
    let mut publisher = LineClient::connect(&server.address("line"));
    subscribe(&mut stalled, json!({}), "");
    let (_, channel) = subscribe(&mut reader, json!({}), "");

    const COUNT: usize = 200;
    let pad = "x".repeat(64 * 1024);
    let reading = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..COUNT {
            let (on, payload) = notification(&mut reader);
            assert_eq!(on, channel);
            seen.push(payload["result"]["_source"]["n"].as_u64().expect("n"));
        }
        seen
    });
    for n in 0..COUNT {
        publish(&mut publisher, json!({"n": n, "pad": pad}));
    }
    let seen = reading
        .join()
        .expect("the reading subscriber got every notification");
    assert_eq!(seen, (0..COUNT as u64).collect::<Vec<_>>());
    drop(stalled);
}
