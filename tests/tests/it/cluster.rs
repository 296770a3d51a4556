//! Cluster mode: hosts with `[cluster]` share realtime through a real `redis-server` (started
//! here on a free loopback port, without persistence). Clients use the line fixture.
//!
//! Skipped, with a message, only when `redis-server` is not installed (`scripts/test.sh`
//! installs it).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::{protocol_section, run_config, LineClient, Scratch, Server};

const WAIT: Duration = Duration::from_secs(15);

/// A `redis-server` this test started, killed when dropped (also used by `postgres.rs`).
pub(crate) struct Redis {
    child: Child,
    port: u16,
    dir: Scratch,
}

impl Redis {
    /// Starts one on a free port, or `None` (with a message) when `redis-server` is absent.
    pub(crate) fn start(test: &str) -> Option<Redis> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            eprintln!(
                "skipping {test}: redis-server is not installed (scripts/test.sh installs it)"
            );
            return None;
        }
        let dir = Scratch::new();
        let port = free_port();
        let child = spawn_redis(port, &dir);
        Some(Redis { child, port, dir })
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL: no goodbye to clients) and starts a new one on the same port.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.child = spawn_redis(self.port, &self.dir);
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Starts `redis-server` and waits for "Ready to accept connections".
fn spawn_redis(port: u16, dir: &Scratch) -> Child {
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server starts");
    let (lines, ready) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let until = Instant::now() + WAIT;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match ready.recv_timeout(left) {
            Ok(line) if line.contains("Ready to accept connections") => break,
            Ok(_) => continue,
            Err(_) => {
                let _ = child.kill();
                panic!("redis-server on port {port} did not get ready");
            }
        }
    }
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || while ready.recv().is_ok() {});
    child
}

fn node(redis: &str, name: &str) -> Server {
    Server::start(&format!(
        "[server]\n{}[cluster]\nredis = \"{redis}\"\nnodeName = \"{name}\"\nretryInterval = 100\nheartbeatInterval = 100\n",
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
    a.wait_for_log(&["is back; resubscribed to 1 channel(s)"], WAIT);
    b.wait_for_log(&["is back; resubscribed to 1 channel(s)"], WAIT);
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
    assert_eq!(info["channels"], 1, "{info}");
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

    let redis_pid = nix::unistd::Pid::from_raw(redis.child.id() as i32);
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
