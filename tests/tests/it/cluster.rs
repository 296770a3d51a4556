//! Cluster mode: hosts with `[cluster]` share realtime through a real `redis-server` (started
//! here on a free loopback port, without persistence). Clients use the line fixture.
//!
//! Skipped, with a message, only when `redis-server` is not installed (`scripts/test.sh`
//! installs it).

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::redis::{free_port, Redis};
use switchyard_tests::{parse_answer, protocol_section, run_config, LineClient, Server};

const WAIT: Duration = Duration::from_secs(15);

fn node(redis: &str, name: &str) -> Server {
    node_with(redis, name, "")
}

/// [`node`] with more `[cluster]` keys (`extra`, whole lines).
fn node_with(redis: &str, name: &str, extra: &str) -> Server {
    Server::start(&format!(
        "[server]\n{}[cluster]\nredis = \"{redis}\"\nnodeName = \"{name}\"\nretryInterval = 100\nheartbeatInterval = 100\n{extra}",
        protocol_section("line", "fixture_line", "")
    ))
}

fn client(server: &Server) -> LineClient {
    LineClient::connect(&server.address("line"))
}

fn call(client: &mut LineClient, request: Value) -> Value {
    let (_, status, content) = client.request(&request.to_string());
    assert_eq!(status, 200, "{request} → {content}");
    content["result"].clone()
}

fn subscribe(client: &mut LineClient, filter: Value) -> String {
    subscribe_room(client, filter).1
}

/// Subscribes; returns the room id and the channel.
fn subscribe_room(client: &mut LineClient, filter: Value) -> (String, String) {
    let result = call(
        client,
        json!({"controller": "realtime", "action": "subscribe", "index": "i",
               "collection": "c", "body": filter}),
    );
    (
        result["roomId"].as_str().expect("a room").to_string(),
        result["channel"].as_str().expect("a channel").to_string(),
    )
}

/// Asks `realtime:count` until it answers `expected` (counts from other nodes are at most
/// one heartbeat old: this converges, it does not synchronise), for `WAIT` at most.
fn wait_for_count(client: &mut LineClient, room: &str, expected: u64) {
    let until = Instant::now() + WAIT;
    let mut last = Value::Null;
    while Instant::now() < until {
        let (_, _, content) = client.request(
            &json!({"controller": "realtime", "action": "count", "body": {"roomId": room}})
                .to_string(),
        );
        if content["result"]["count"] == expected {
            return;
        }
        last = content;
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("realtime:count never answered {expected}; last answer: {last}");
}

fn publish(client: &mut LineClient, body: Value) {
    let result = call(
        client,
        json!({"controller": "realtime", "action": "publish", "index": "i",
               "collection": "c", "body": body}),
    );
    assert_eq!(result, json!({"published": true}));
}

/// The next notification (10 s at most): its channel and payload.
fn notification(client: &mut LineClient) -> (String, Value) {
    let line = client.read_line().expect("a notification");
    let rest = line
        .strip_prefix("notification ")
        .unwrap_or_else(|| panic!("not a notification: {line}"));
    let (channel, payload) = rest.split_once(' ').expect("channel and payload");
    (
        channel.to_string(),
        serde_json::from_str(payload).expect("JSON"),
    )
}

fn cluster_info(client: &mut LineClient) -> Value {
    call(client, json!({"controller": "server", "action": "info"}))["serverInfo"]["kuzzle"]
        ["cluster"]
        .clone()
}

#[test]
fn a_node_that_cannot_reach_redis_refuses_to_start() {
    let url = format!("redis://127.0.0.1:{}", free_port());
    let finished = run_config(
        &format!("[server]\n[cluster]\nredis = \"{url}\"\nconnectTimeout = 300\n"),
        WAIT,
    );
    assert!(!finished.status.success(), "{}", finished.stderr);
    let text = format!("{}{}", finished.stdout, finished.stderr);
    assert!(
        text.contains(&format!("cannot reach Redis at {url}")),
        "{text}"
    );
}

#[test]
fn publications_and_document_changes_cross_nodes_exactly_once() {
    let Some(redis) =
        Redis::start("cluster::publications_and_document_changes_cross_nodes_exactly_once")
    else {
        return;
    };
    let a = node(&redis.url(), "a");
    let b = node(&redis.url(), "b");
    assert!(
        a.ready_line.contains("cluster node a via"),
        "{}",
        a.ready_line
    );

    let mut on_a = client(&a);
    let red = subscribe(&mut on_a, json!({"equals": {"color": "red"}}));
    a.wait_for_log(&["cluster: subscribed to switchyard:i/c"], WAIT);
    // A subscriber on the publishing node, with another filter: it hears each event once
    // (locally), never again through Redis.
    let mut on_b = client(&b);
    let any = subscribe(&mut on_b, json!({"exists": "color"}));
    b.wait_for_log(&["cluster: subscribed to switchyard:i/c"], WAIT);

    let mut writer = client(&b);
    publish(&mut writer, json!({"color": "blue", "n": 1}));
    publish(&mut writer, json!({"color": "red", "n": 2}));
    publish(&mut writer, json!({"color": "red", "n": 3}));
    for n in [2, 3] {
        let (channel, payload) = notification(&mut on_a);
        assert_eq!(channel, red);
        assert_eq!(payload["action"], "publish");
        assert_eq!(payload["scope"], "in");
        assert_eq!(payload["result"]["_source"]["n"], n, "{payload}");
    }
    for n in [1, 2, 3] {
        let (channel, payload) = notification(&mut on_b);
        assert_eq!(channel, any);
        assert_eq!(payload["result"]["_source"]["n"], n, "{payload}");
    }

    // Document changes made on B, matched on A against A's rooms.
    call(
        &mut writer,
        json!({"controller": "index", "action": "create", "index": "i"}),
    );
    call(
        &mut writer,
        json!({"controller": "collection", "action": "create", "index": "i", "collection": "c"}),
    );
    call(
        &mut writer,
        json!({"controller": "document", "action": "create", "index": "i", "collection": "c",
               "_id": "d1", "body": {"color": "red", "n": 4}}),
    );
    let (channel, payload) = notification(&mut on_a);
    assert_eq!(channel, red);
    assert_eq!(
        (
            &payload["action"],
            &payload["scope"],
            &payload["result"]["_id"]
        ),
        (&json!("create"), &json!("in"), &json!("d1")),
        "{payload}"
    );
    call(
        &mut writer,
        json!({"controller": "document", "action": "update", "index": "i", "collection": "c",
               "_id": "d1", "body": {"color": "blue"}}),
    );
    // B's write did not know A's room: A tells `out` from the content before the change.
    let (channel, payload) = notification(&mut on_a);
    assert_eq!(channel, red);
    assert_eq!(
        (&payload["action"], &payload["scope"]),
        (&json!("update"), &json!("out")),
        "{payload}"
    );
    call(
        &mut writer,
        json!({"controller": "document", "action": "delete", "index": "i", "collection": "c",
               "_id": "d1"}),
    );
    // The delete matched nothing on A; the next thing A hears is this marker.
    publish(&mut writer, json!({"color": "red", "n": 5}));
    let (_, payload) = notification(&mut on_a);
    assert_eq!(payload["result"]["_source"]["n"], 5, "{payload}");
    for expected in ["create", "update", "delete", "publish"] {
        let (_, payload) = notification(&mut on_b);
        assert_eq!(payload["action"], expected, "{payload}");
    }

    // A heard all of B's events: the arrival of B's subscriber, 4 publishes, 3 changes.
    let info_a = cluster_info(&mut on_a);
    assert_eq!(info_a["node"], "a", "{info_a}");
    assert_eq!(info_a["delivered"], 8, "{info_a}");
    // Plus, maybe, the echo of its own subscriber's arrival (published as it subscribed).
    let (received, echoes) = (&info_a["received"], &info_a["echoes"]);
    assert_eq!(received.as_u64(), echoes.as_u64().map(|echoes| echoes + 8));
    assert_eq!(info_a["duplicates"], 0, "{info_a}");
    assert_eq!(info_a["lost"], 0, "{info_a}");
    // B queued each once, and dropped its own when Redis sent them back.
    let info_b = cluster_info(&mut on_b);
    assert_eq!(info_b["queued"], 8, "{info_b}");
    assert_eq!(info_b["dropped"], 0, "{info_b}");
    assert!(info_b["echoes"].as_u64() >= Some(1), "{info_b}");
    assert_eq!(info_b["delivered"], 0, "{info_b}");
}

#[test]
fn nodes_resubscribe_after_a_redis_restart() {
    let Some(mut redis) = Redis::start("cluster::nodes_resubscribe_after_a_redis_restart") else {
        return;
    };
    let a = node(&redis.url(), "a");
    let b = node(&redis.url(), "b");
    let mut on_a = client(&a);
    subscribe(&mut on_a, json!({"equals": {"color": "red"}}));
    a.wait_for_log(&["cluster: subscribed to switchyard:i/c"], WAIT);
    let mut on_b = client(&b);
    subscribe(&mut on_b, json!({"equals": {"color": "red"}}));
    let mut writer = client(&b);
    publish(&mut writer, json!({"color": "red", "n": 1}));
    assert_eq!(notification(&mut on_a).1["result"]["_source"]["n"], 1);
    assert_eq!(notification(&mut on_b).1["result"]["_source"]["n"], 1);

    redis.kill();
    a.wait_for_log(&["cluster: lost Redis at"], WAIT);
    b.wait_for_log(&["cluster: lost Redis at"], WAIT);
    // B keeps serving its own subscribers, and the publish does not wait for Redis.
    let begun = Instant::now();
    publish(&mut writer, json!({"color": "red", "n": 2}));
    assert!(
        begun.elapsed() < Duration::from_secs(1),
        "{:?}",
        begun.elapsed()
    );
    assert_eq!(notification(&mut on_b).1["result"]["_source"]["n"], 2);

    redis.restart();
    // The collection's channel, and the security channel every node listens to.
    a.wait_for_log(&["is back; resubscribed to 2 channel(s)"], WAIT);
    b.wait_for_log(&["is back; resubscribed to 2 channel(s)"], WAIT);
    publish(&mut writer, json!({"color": "red", "n": 3}));
    // What was published during the outage is lost (or, if Redis took it, delivered once).
    let mut seen = Vec::new();
    while seen.last() != Some(&3) {
        let n = notification(&mut on_a).1["result"]["_source"]["n"]
            .as_u64()
            .expect("n");
        seen.push(n);
    }
    assert!(seen == [3] || seen == [2, 3], "{seen:?}");
    assert_eq!(notification(&mut on_b).1["result"]["_source"]["n"], 3);
    let info = cluster_info(&mut on_a);
    assert!(info["disconnections"].as_u64() >= Some(1), "{info}");
    assert_eq!(info["duplicates"], 0, "{info}");
    assert_eq!(info["channels"], 2, "{info}");
    if seen == [3] {
        // B numbered the lost event: A counts the gap and says so.
        assert_eq!(info["lost"], 1, "{info}");
        a.wait_for_log(
            &["cluster: lost 1 event(s) from node b on switchyard:i/c"],
            WAIT,
        );
    }

    // The last room on the collection goes: A stops listening to its channel.
    drop(on_a);
    a.wait_for_log(&["cluster: unsubscribed from switchyard:i/c"], WAIT);
}

#[test]
fn counts_and_lists_add_up_across_nodes_and_a_killed_node_s_expire() {
    let Some(redis) = Redis::start("cluster::counts_and_lists_add_up_across_nodes") else {
        return;
    };
    let a = node(&redis.url(), "a");
    let b = node(&redis.url(), "b");
    let filter = json!({"equals": {"color": "red"}});
    let mut first = client(&a);
    let mut second = client(&a);
    let mut on_b = client(&b);
    let mut only_b = client(&b);
    let (room, _) = subscribe_room(&mut first, filter.clone());
    subscribe_room(&mut second, filter.clone());
    assert_eq!(subscribe_room(&mut on_b, filter).0, room);
    let (room_on_b, _) = subscribe_room(&mut only_b, json!({"equals": {"color": "blue"}}));
    wait_for_count(&mut first, &room, 3);
    // A room only B has is counted from A too.
    wait_for_count(&mut first, &room_on_b, 1);
    wait_for_count(&mut on_b, &room, 3);
    // realtime:list too, from the same reports.
    let list = call(
        &mut first,
        json!({"controller": "realtime", "action": "list"}),
    );
    assert_eq!(list["i"]["c"][&room], 3, "{list}");
    assert_eq!(list["i"]["c"][&room_on_b], 1, "{list}");
    // B dies without a word: its counts expire within three heartbeats.
    drop(b);
    wait_for_count(&mut first, &room, 2);
}

#[test]
fn a_frozen_redis_never_holds_local_delivery_and_nothing_arrives_twice() {
    let Some(redis) = Redis::start("cluster::a_frozen_redis_never_holds_local_delivery") else {
        return;
    };
    let a = node(&redis.url(), "a");
    let b = Server::start(&format!(
        "[server]\n{}[cluster]\nredis = \"{}\"\nnodeName = \"b\"\nretryInterval = 100\n\
         outgoingQueueSize = 2\n",
        protocol_section("line", "fixture_line", ""),
        redis.url()
    ));
    let mut on_a = client(&a);
    subscribe(&mut on_a, json!({"equals": {"color": "red"}}));
    a.wait_for_log(&["cluster: subscribed to switchyard:i/c"], WAIT);
    let mut on_b = client(&b);
    subscribe(&mut on_b, json!({"equals": {"color": "red"}}));
    let mut writer = client(&b);
    publish(&mut writer, json!({"color": "red", "n": 0}));
    assert_eq!(notification(&mut on_a).1["result"]["_source"]["n"], 0);
    assert_eq!(notification(&mut on_b).1["result"]["_source"]["n"], 0);

    let redis_pid = nix::unistd::Pid::from_raw(redis.pid() as i32);
    nix::sys::signal::kill(redis_pid, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP");
    for n in 1..=20 {
        let begun = Instant::now();
        publish(&mut writer, json!({"color": "red", "n": n}));
        let answered = begun.elapsed();
        assert!(
            answered < Duration::from_millis(500),
            "publish {n}: {answered:?}"
        );
        assert_eq!(notification(&mut on_b).1["result"]["_source"]["n"], n);
    }
    b.wait_for_log(&["cluster: lost Redis at"], WAIT);
    nix::sys::signal::kill(redis_pid, nix::sys::signal::Signal::SIGCONT).expect("SIGCONT");
    b.wait_for_log(&["is back"], WAIT);
    publish(&mut writer, json!({"color": "red", "n": 21}));
    // Whatever Redis took before the freeze arrives once, in order; then the marker.
    let mut seen = Vec::new();
    while seen.last() != Some(&21) {
        let n = notification(&mut on_a).1["result"]["_source"]["n"]
            .as_u64()
            .expect("n");
        assert!(
            seen.last().is_none_or(|last| *last < n),
            "{seen:?} then {n}"
        );
        seen.push(n);
    }
    let info = cluster_info(&mut writer);
    assert!(info["dropped"].as_u64() >= Some(1), "{info}");
    assert_eq!(cluster_info(&mut on_a)["duplicates"], 0);
}

/// Asks `server:info` until `cluster[key]` is `expected` (B counts a PUBLISH once Redis
/// answered it, which may come just after A heard it), for `WAIT` at most.
fn wait_for_info(client: &mut LineClient, key: &str, expected: u64) -> Value {
    let until = Instant::now() + WAIT;
    loop {
        let info = cluster_info(client);
        if info[key] == expected {
            return info;
        }
        assert!(
            Instant::now() < until,
            "{key} never reached {expected}: {info}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_burst_of_publications_crosses_in_batches_once_and_in_order() {
    let Some(redis) = Redis::start("cluster::a_burst_of_publications_crosses_in_batches") else {
        return;
    };
    let a = node(&redis.url(), "a");
    let b = node(&redis.url(), "b");
    let mut on_a = client(&a);
    let room = subscribe(&mut on_a, json!({"exists": "n"}));
    a.wait_for_log(&["cluster: subscribed to switchyard:i/c"], WAIT);

    // 1000 publications sent without waiting for their answers (100 at a time): they reach B's
    // `cluster` thread faster than it flushes, so they leave in batches.
    const BURST: u64 = 1000;
    let mut writer = client(&b);
    for chunk in 0..BURST / 100 {
        publish_pipelined(&mut writer, chunk * 100..(chunk + 1) * 100);
    }
    hear_in_order(&mut on_a, &room, BURST);

    let info_a = cluster_info(&mut on_a);
    assert_eq!(info_a["delivered"], BURST, "{info_a}");
    assert_eq!(info_a["duplicates"], 0, "{info_a}");
    assert_eq!(info_a["lost"], 0, "{info_a}");
    assert_eq!(info_a["malformed"], 0, "{info_a}");
    let info_b = wait_for_info(&mut writer, "published", BURST);
    let batches = info_b["batches"].as_u64().expect("batches");
    assert!((1..BURST).contains(&batches), "{info_b}");
    // B's own batches came back from Redis only if B listened: it has no room.
    assert_eq!(info_b["echoes"], 0, "{info_b}");
}

#[test]
fn any_flush_interval_keeps_a_burst_exactly_once_and_in_order() {
    let Some(redis) = Redis::start("cluster::any_flush_interval_keeps_a_burst") else {
        return;
    };
    let a = node(&redis.url(), "a");
    let mut on_a = client(&a);
    let room = subscribe(&mut on_a, json!({"exists": "n"}));
    a.wait_for_log(&["cluster: subscribed to switchyard:i/c"], WAIT);
    const BURST: u64 = 300;
    let mut delivered = 0;
    // 0: the publisher takes what is queued each time it wakes; 50: at most every 50 ms.
    for (name, interval) in [("b0", 0), ("b50", 50)] {
        let b = node_with(&redis.url(), name, &format!("flushInterval = {interval}\n"));
        let mut writer = client(&b);
        for chunk in 0..BURST / 100 {
            publish_pipelined(&mut writer, chunk * 100..(chunk + 1) * 100);
        }
        hear_in_order(&mut on_a, &room, BURST);
        delivered += BURST;
        let info_a = cluster_info(&mut on_a);
        assert_eq!(info_a["delivered"], delivered, "{info_a}");
        assert_eq!(info_a["duplicates"], 0, "{info_a}");
        assert_eq!(info_a["lost"], 0, "{info_a}");
        let info_b = wait_for_info(&mut writer, "published", BURST);
        let batches = info_b["batches"].as_u64().expect("batches");
        // Events that wait for the interval leave together (one pipelined chunk of 100 is read
        // in well under 50 ms); with 0 they may still, while a PUBLISH is under way.
        let most = if interval == 0 { BURST } else { BURST - 1 };
        assert!(
            (1..=most).contains(&batches),
            "flushInterval {interval}: {info_b}"
        );
    }
}

#[test]
fn while_a_node_from_before_batches_is_live_events_cross_one_per_message() {
    let Some(redis) = Redis::start("cluster::while_a_node_from_before_batches_is_live") else {
        return;
    };
    let a = node(&redis.url(), "a");
    let b = node(&redis.url(), "b");
    let mut on_a = client(&a);
    let room = subscribe(&mut on_a, json!({"exists": "n"}));
    a.wait_for_log(&["cluster: subscribed to switchyard:i/c"], WAIT);
    let mut writer = client(&b);
    // Every live node stamps `switchyard:wire`: B publishes batches.
    wait_for_batching(&mut writer, true);
    // A node of an earlier version heartbeats (its entry in `nodes`) but never stamps.
    redis_cli(
        &redis,
        &["ZADD", "switchyard:nodes", "99999999999999", "old"],
    );
    wait_for_batching(&mut writer, false);
    let before = cluster_info(&mut writer);
    const BURST: u64 = 300;
    publish_pipelined(&mut writer, 0..BURST);
    hear_in_order(&mut on_a, &room, BURST);
    let published = before["published"].as_u64().expect("published") + BURST;
    let after = wait_for_info(&mut writer, "published", published);
    // One PUBLISH per event: what the old node reads.
    assert_eq!(
        after["batches"].as_u64().expect("batches") - before["batches"].as_u64().expect("batches"),
        BURST,
        "{after}"
    );
    let info_a = cluster_info(&mut on_a);
    assert_eq!(info_a["delivered"], BURST, "{info_a}");
    assert_eq!(info_a["malformed"], 0, "{info_a}");
    assert_eq!(info_a["lost"], 0, "{info_a}");
    // The old node gone (upgraded): batches again.
    redis_cli(&redis, &["ZREM", "switchyard:nodes", "old"]);
    wait_for_batching(&mut writer, true);
}

/// Publishes `{"n": n}` on i/c for every n of `numbers` without waiting, then reads every
/// answer (200 each).
fn publish_pipelined(writer: &mut LineClient, numbers: std::ops::Range<u64>) {
    let count = numbers.end - numbers.start;
    for n in numbers {
        writer.send(
            &json!({"controller": "realtime", "action": "publish", "index": "i",
                    "collection": "c", "body": {"n": n}})
            .to_string(),
        );
    }
    for _ in 0..count {
        let line = writer.read_line().expect("an answer");
        let (_, status, content) = parse_answer(&line);
        assert_eq!(status, 200, "{content}");
    }
}

/// The next `count` notifications are room `room`'s, numbered 0, 1, 2… in order.
fn hear_in_order(client: &mut LineClient, room: &str, count: u64) {
    for n in 0..count {
        let (channel, payload) = notification(client);
        assert_eq!(channel, room);
        assert_eq!(payload["result"]["_source"]["n"], n, "{payload}");
    }
}

/// Waits until the node's `server:info` says it publishes in batches (or not).
fn wait_for_batching(client: &mut LineClient, batching: bool) {
    let until = Instant::now() + WAIT;
    loop {
        let info = cluster_info(client);
        if info["batching"] == batching {
            return;
        }
        assert!(
            Instant::now() < until,
            "batching never became {batching}: {info}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs one `redis-cli` command against `redis`.
fn redis_cli(redis: &Redis, args: &[&str]) {
    let output = std::process::Command::new("redis-cli")
        .arg("-u")
        .arg(redis.url())
        .args(args)
        .output()
        .expect("redis-cli runs");
    assert!(output.status.success(), "{output:?}");
}

/// PUBLISHes `payload` on `channel` with `redis-cli`, as another node would.
fn publish_raw(redis: &Redis, channel: &str, payload: &str) {
    let output = std::process::Command::new("redis-cli")
        .args(["-u", &redis.url(), "PUBLISH", channel, payload])
        .output()
        .expect("redis-cli runs");
    assert!(output.status.success(), "{output:?}");
}

#[test]
fn single_event_messages_of_older_nodes_arrive_and_bad_batches_are_counted() {
    let Some(redis) = Redis::start("cluster::single_event_messages_of_older_nodes") else {
        return;
    };
    let a = node(&redis.url(), "a");
    let mut on_a = client(&a);
    let room = subscribe(&mut on_a, json!({"exists": "n"}));
    a.wait_for_log(&["cluster: subscribed to switchyard:i/c"], WAIT);
    let event = |n: u64| {
        json!({"index": "i", "collection": "c", "action": "publish", "id": null,
               "source": {"n": n}, "extra": "", "requestId": format!("r{n}"),
               "volatile": null, "controller": "realtime", "protocol": "line",
               "timestamp": 1, "now": {"n": n}, "before": null})
        .to_string()
    };
    // A node from before batches: one event per message.
    publish_raw(
        &redis,
        "switchyard:i/c",
        &format!("SY1 old 7 1 d\n{}", event(1)),
    );
    publish_raw(
        &redis,
        "switchyard:i/c",
        &format!("SY1 old 7 2 d\n{}", event(2)),
    );
    // A batch whose count does not match its frames: refused whole.
    let frame = event(3);
    publish_raw(
        &redis,
        "switchyard:i/c",
        &format!("SY2 new 8 1 2\nd{}\n{frame}", frame.len()),
    );
    // Then a good batch of two from that node, sequences 2 and 3 (the first message heard from
    // a node sets where its sequence starts: nothing counted lost), and the same batch again
    // (duplicates).
    let (four, five) = (event(4), event(5));
    let batch = format!(
        "SY2 new 8 2 2\nd{}\n{four}d{}\n{five}",
        four.len(),
        five.len()
    );
    publish_raw(&redis, "switchyard:i/c", &batch);
    publish_raw(&redis, "switchyard:i/c", &batch);
    // A later batch overlapping the last one: only its new event arrives.
    let six = event(6);
    publish_raw(
        &redis,
        "switchyard:i/c",
        &format!(
            "SY2 new 8 3 2\nd{}\n{five}d{}\n{six}",
            five.len(),
            six.len()
        ),
    );
    for n in [1, 2, 4, 5, 6] {
        let (channel, payload) = notification(&mut on_a);
        assert_eq!(channel, room);
        assert_eq!(payload["result"]["_source"]["n"], n, "{payload}");
    }
    let info = wait_for_info(&mut on_a, "delivered", 5);
    assert_eq!(info["malformed"], 2, "{info}");
    assert_eq!(info["duplicates"], 3, "{info}");
    assert_eq!(info["lost"], 0, "{info}");
}

#[test]
fn members_of_a_room_hear_arrivals_and_departures_on_other_nodes() {
    let Some(redis) = Redis::start("cluster::members_of_a_room_hear_arrivals_and_departures")
    else {
        return;
    };
    let a = node(&redis.url(), "a");
    let b = node(&redis.url(), "b");
    let filter = json!({"equals": {"color": "red"}});
    let mut watcher = client(&a);
    let watching = call(
        &mut watcher,
        json!({"controller": "realtime", "action": "subscribe", "index": "i",
               "collection": "c", "body": filter, "users": "all",
               "volatile": {"who": "watcher"}}),
    );
    let room = watching["roomId"].as_str().expect("a room").to_string();
    a.wait_for_log(&["cluster: subscribed to switchyard:i/c"], WAIT);

    let mut newcomer = client(&b);
    let joined = call(
        &mut newcomer,
        json!({"controller": "realtime", "action": "subscribe", "index": "i",
               "collection": "c", "body": filter, "volatile": {"who": "newcomer"}}),
    );
    assert_eq!(joined["roomId"], room);
    let (channel, payload) = notification(&mut watcher);
    assert_eq!(channel, watching["channel"]);
    assert_eq!(payload["type"], "user", "{payload}");
    assert_eq!(payload["user"], "in", "{payload}");
    assert_eq!(payload["volatile"], json!({"who": "newcomer"}), "{payload}");
    assert!(payload["result"]["count"].as_u64() >= Some(1), "{payload}");

    call(
        &mut newcomer,
        json!({"controller": "realtime", "action": "unsubscribe", "body": {"roomId": room}}),
    );
    let (_, payload) = notification(&mut watcher);
    assert_eq!(
        (&payload["type"], &payload["user"], &payload["action"]),
        (&json!("user"), &json!("out"), &json!("unsubscribe")),
        "{payload}"
    );
    assert_eq!(payload["volatile"], json!({"who": "newcomer"}), "{payload}");

    // A connection that goes away on B: its departure too.
    let mut passer = client(&b);
    subscribe(&mut passer, filter);
    assert_eq!(notification(&mut watcher).1["user"], "in");
    drop(passer);
    assert_eq!(notification(&mut watcher).1["user"], "out");
}

#[test]
fn a_client_joins_by_id_a_room_only_another_node_holds() {
    let Some(redis) = Redis::start("cluster::a_client_joins_by_id_a_room_only_another_node_holds")
    else {
        return;
    };
    let a = node(&redis.url(), "a");
    let b = node(&redis.url(), "b");
    let mut on_b = client(&b);
    let mut joiner = client(&a);
    let (room, _) = subscribe_room(&mut on_b, json!({"equals": {"color": "green"}}));
    // Without a cluster, or before B's report reaches A, the room is unknown here.
    let unknown = json!({"controller": "realtime", "action": "join",
                         "body": {"roomId": "no-such-room"}});
    let (_, status, content) = joiner.request(&unknown.to_string());
    assert_eq!(status, 404, "{content}");
    assert_eq!(content["error"]["id"], "core.realtime.room_not_found");
    // Once A knows B's rooms (one heartbeat), a join by id recreates the room here.
    wait_for_count(&mut joiner, &room, 1);
    let joined = call(
        &mut joiner,
        json!({"controller": "realtime", "action": "join", "body": {"roomId": room}}),
    );
    assert_eq!(joined["roomId"], room.as_str());
    let channel = joined["channel"].as_str().expect("a channel").to_string();
    wait_for_count(&mut on_b, &room, 2);
    // A publication on B reaches the joiner on A, and only what matches.
    let mut publisher = client(&b);
    publish(&mut publisher, json!({"color": "red"}));
    publish(&mut publisher, json!({"color": "green", "n": 1}));
    let (heard_on, payload) = notification(&mut joiner);
    assert_eq!(heard_on, channel);
    assert_eq!(payload["result"]["_source"]["n"], 1, "{payload}");
}

/// The collections' channels a `redis-server` has subscribers on (`PUBSUB CHANNELS`, through
/// `redis-cli`; not the security channel, on the first shard whatever the rooms).
fn channels_on(redis: &Redis) -> Vec<String> {
    let output = std::process::Command::new("redis-cli")
        .args(["-u", &redis.url(), "PUBSUB", "CHANNELS", "switchyard:i/*"])
        .output()
        .expect("redis-cli runs");
    let mut channels: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect();
    channels.sort();
    channels
}

#[test]
fn channels_spread_over_two_redis_shards_and_still_reach_every_node() {
    let Some(first) = Redis::start("cluster::channels_spread_over_two_redis_shards") else {
        return;
    };
    let second = Redis::start("cluster::channels_spread_over_two_redis_shards").expect("redis");
    let sharded = |name: &str| {
        Server::start(&format!(
            "[server]\n{}[cluster]\nredis = \"{}\"\nshards = [\"{}\"]\nnodeName = \"{name}\"\nretryInterval = 100\nheartbeatInterval = 100\n",
            protocol_section("line", "fixture_line", ""),
            first.url(),
            second.url()
        ))
    };
    let a = sharded("a");
    let b = sharded("b");
    assert!(
        b.ready_line
            .contains(&format!("via {}, {}", first.url(), second.url())),
        "{}",
        b.ready_line
    );
    // Eight collections, each with a subscriber on B.
    let mut subscribers = Vec::new();
    for number in 0..8 {
        let mut subscriber = client(&b);
        let result = call(
            &mut subscriber,
            json!({"controller": "realtime", "action": "subscribe", "index": "i",
                   "collection": format!("c{number}"), "body": {}}),
        );
        let channel = result["channel"].as_str().expect("a channel").to_string();
        subscribers.push((subscriber, channel));
    }
    // B listens to each collection's channel on exactly one shard, and both shards have some.
    let until = Instant::now() + WAIT;
    let (on_first, on_second) = loop {
        let (on_first, on_second) = (channels_on(&first), channels_on(&second));
        if on_first.len() + on_second.len() == 8 {
            break (on_first, on_second);
        }
        assert!(
            Instant::now() < until,
            "B never subscribed to 8 channels: {on_first:?} {on_second:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        !on_first.is_empty() && !on_second.is_empty(),
        "{on_first:?} {on_second:?}"
    );
    // Security changes travel on the first shard only (both nodes listen there).
    let security = |redis: &Redis| {
        let output = std::process::Command::new("redis-cli")
            .args([
                "-u",
                &redis.url(),
                "PUBSUB",
                "NUMSUB",
                "switchyard:~security",
            ])
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    assert_eq!(security(&first), "switchyard:~security\n2");
    assert_eq!(security(&second), "switchyard:~security\n0");
    let mut all: Vec<String> = on_first.iter().chain(&on_second).cloned().collect();
    all.sort();
    all.dedup();
    let expected: Vec<String> = (0..8)
        .map(|number| format!("switchyard:i/c{number}"))
        .collect();
    assert_eq!(all, expected);
    // A publication on A, whatever its shard, reaches B's subscriber once.
    let mut publisher = client(&a);
    for number in 0..8 {
        let result = call(
            &mut publisher,
            json!({"controller": "realtime", "action": "publish", "index": "i",
                   "collection": format!("c{number}"), "body": {"n": number}}),
        );
        assert_eq!(result, json!({"published": true}));
    }
    for (number, (subscriber, channel)) in subscribers.iter_mut().enumerate() {
        let (heard_on, payload) = notification(subscriber);
        assert_eq!(&heard_on, channel);
        assert_eq!(payload["result"]["_source"]["n"], number, "{payload}");
    }
    let info = cluster_info(&mut publisher);
    assert_eq!(info["shards"], json!([first.url(), second.url()]), "{info}");
}

#[test]
fn a_node_that_cannot_reach_a_shard_refuses_to_start_naming_it() {
    let Some(redis) = Redis::start("cluster::a_node_that_cannot_reach_a_shard") else {
        return;
    };
    let missing = format!("redis://127.0.0.1:{}", free_port());
    let finished = run_config(
        &format!(
            "[server]\n[cluster]\nredis = \"{}\"\nshards = [\"{missing}\"]\nconnectTimeout = 300\n",
            redis.url()
        ),
        WAIT,
    );
    assert!(!finished.status.success(), "{}", finished.stderr);
    let text = format!("{}{}", finished.stdout, finished.stderr);
    assert!(
        text.contains(&format!("shard {missing} (cluster.shards)")),
        "{text}"
    );
}
