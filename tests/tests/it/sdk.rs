//! The official Kuzzle JavaScript SDK (npm `kuzzle-sdk`, pinned in `tests/js/package.json`)
//! against the real host and WebSocket plugin. Each test starts `switchyard`, runs one Node
//! scenario from `tests/js` (which prints what the SDK observed as JSON lines) and asserts
//! exactly what arrived, and that nothing else did.
//!
//! Needs Node.js and npm on PATH; `node_modules()` runs `npm ci` in `tests/js` when needed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;
use serde_json::{json, Value};
use switchyard_tests::{node_modules, protocol_section, Server};

/// How long a whole scenario may take (each of its waits has its own, shorter, deadline).
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);

fn config(port: u16) -> String {
    format!(
        "[server]\n{}",
        protocol_section(
            "websocket",
            "websocket",
            &format!("port = {port}\naddress = \"127.0.0.1\"")
        )
    )
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A running Node scenario: its observations as they come.
pub(crate) struct Scenario {
    script: String,
    child: Child,
    lines: Receiver<String>,
    stderr: Option<JoinHandle<String>>,
    observed: Vec<Value>,
}

impl Scenario {
    fn start(script: &str, url: &str) -> Scenario {
        Scenario::start_with(script, &[url])
    }

    /// Starts `tests/js/<script>.js` with `args`.
    pub(crate) fn start_with(script: &str, args: &[&str]) -> Scenario {
        let js = node_modules();
        let mut child = Command::new("node")
            .arg(js.join(format!("{script}.js")))
            .args(args)
            .current_dir(js)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("the SDK tests need Node.js on PATH: {error}"));
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().expect("piped");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Scenario {
            script: script.to_string(),
            child,
            lines,
            stderr: Some(stderr),
            observed: Vec::new(),
        }
    }

    /// Kills the script and panics with everything it printed.
    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let stderr = self
            .stderr
            .take()
            .map(|handle| handle.join().unwrap_or_default())
            .unwrap_or_default();
        panic!(
            "{}.js: {why}\nobserved:\n{}\nstderr:\n{stderr}",
            self.script,
            self.observed
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    /// Reads observations until one is `event`; returns it.
    fn expect(&mut self, event: &str, timeout: Duration) -> Value {
        let until = Instant::now() + timeout;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let value: Value = serde_json::from_str(&line)
                        .unwrap_or_else(|_| self.fail(&format!("not a JSON line: {line}")));
                    self.observed.push(value.clone());
                    if value["event"] == event {
                        return value;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.fail(&format!("no \"{event}\" within {timeout:?}"))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.fail(&format!("exited before \"{event}\""))
                }
            }
        }
    }

    /// Waits for the scenario to end successfully; returns everything it observed.
    pub(crate) fn finish(mut self) -> Observations {
        self.expect("done", SCENARIO_TIMEOUT);
        let until = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for node") {
                break status;
            }
            if Instant::now() >= until {
                self.fail("did not exit after \"done\"");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        if !status.success() {
            self.fail(&format!("exited with {status}"));
        }
        Observations(std::mem::take(&mut self.observed))
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a scenario to completion against `server`.
pub(crate) fn run(script: &str, server: &Server) -> Observations {
    Scenario::start(script, server.url("websocket")).finish()
}

pub(crate) fn start_server() -> Server {
    Server::start(&config(0))
}

/// [`start_server`] with its documents in PostgreSQL at `url` (`[storage]`).
pub(crate) fn start_server_on_postgres(url: &str) -> Server {
    Server::start(&format!(
        "{}[storage]\nbackend = \"postgres\"\nurl = \"{url}\"\n",
        config(0)
    ))
}

/// What a scenario printed.
pub(crate) struct Observations(pub(crate) Vec<Value>);

impl Observations {
    /// Every observation of `event`.
    pub(crate) fn all(&self, event: &str) -> Vec<&Value> {
        self.0
            .iter()
            .filter(|value| value["event"] == event)
            .collect()
    }

    /// The only observation of `event`.
    pub(crate) fn one(&self, event: &str) -> &Value {
        let found = self.all(event);
        assert_eq!(found.len(), 1, "one \"{event}\" expected: {:?}", self.0);
        found[0]
    }

    /// The observation of `event` whose `key` is `value`.
    fn find(&self, event: &str, key: &str, value: &str) -> &Value {
        self.0
            .iter()
            .find(|observed| observed["event"] == event && observed[key] == value)
            .unwrap_or_else(|| panic!("no \"{event}\" with {key} = {value}: {:?}", self.0))
    }

    /// `received` notifications for `who`, by key `key`.
    pub(crate) fn received(&self, key: &str, who: &str) -> &Vec<Value> {
        self.find("received", key, who)["notifications"]
            .as_array()
            .expect("a list of notifications")
    }
}

/// The `_source.tag` of each document notification.
fn tags(notifications: &[Value]) -> Vec<&str> {
    notifications
        .iter()
        .map(|notification| {
            assert_eq!(notification["type"], "document", "{notification}");
            notification["result"]["_source"]["tag"]
                .as_str()
                .unwrap_or_else(|| panic!("no tag: {notification}"))
        })
        .collect()
}

fn is_room_id(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|id| id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn is_uuid(value: &Value) -> bool {
    value.as_str().is_some_and(|id| {
        id.len() == 36
            && id.char_indices().all(|(i, c)| {
                if [8, 13, 18, 23].contains(&i) {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit()
                }
            })
    })
}

#[test]
fn filters_decide_exactly_who_hears_a_publication() {
    let server = start_server();
    let started = now_ms();
    let observed = run("pubsub", &server);
    let ended = now_ms();

    let rooms = &observed.one("subscribed")["rooms"];
    for who in ["red", "big", "every", "other"] {
        assert!(is_room_id(&rooms[who]), "{rooms}");
    }
    let ids: std::collections::HashSet<_> = rooms.as_object().unwrap().values().collect();
    assert_eq!(ids.len(), 4, "four filters, four rooms: {rooms}");
    for published in observed.all("published") {
        assert_eq!(published["published"], true, "{published}");
    }

    // Exactly the matching messages, in publication order; m6 (another index) reaches nobody.
    let expected = [
        ("red", vec!["m2", "last"]),
        ("big", vec!["m3", "last"]),
        ("every", vec!["m1", "m2", "m3", "m4", "last"]),
        ("other", vec!["m5", "last"]),
    ];
    for (who, tags_expected) in expected {
        assert_eq!(tags(observed.received("who", who)), tags_expected, "{who}");
        for notification in observed.received("who", who) {
            assert_eq!(
                notification["room"],
                format!("{}-311", rooms[who].as_str().unwrap()),
                "{who} hears on its room's default channel"
            );
        }
    }

    // The whole notification, as the SDK hands it to the callback.
    let instances = observed.one("instances");
    let sdk_name = instances["sdkName"].as_str().unwrap();
    assert!(sdk_name.starts_with("js@7."), "{sdk_name}");
    let last = &observed.received("who", "red")[1];
    let at = observed.find("published", "tag", "last")["at"]
        .as_u64()
        .unwrap();
    let created_at = last["result"]["_source"]["_kuzzle_info"]["createdAt"]
        .as_u64()
        .unwrap_or_else(|| panic!("createdAt: {last}"));
    assert!(
        (started..=at).contains(&created_at) && at <= ended,
        "createdAt {created_at} not within the run ({started}..={at})"
    );
    let timestamp = last["timestamp"].as_u64().unwrap();
    assert!((started..=created_at).contains(&timestamp), "{last}");
    assert!(is_uuid(&last["requestId"]), "{last}");
    let mut fixed = last.clone();
    for key in ["timestamp", "requestId", "node"] {
        fixed.as_object_mut().unwrap().remove(key);
    }
    assert_eq!(
        fixed,
        json!({
            "type": "document",
            "status": 200,
            "action": "publish",
            "event": "publish",
            "scope": "in",
            "controller": "realtime",
            "index": "i",
            "collection": "c",
            "protocol": "websocket",
            "result": {
                "_id": "sentinel",
                "_source": {
                    "tag": "last",
                    "color": "red",
                    "size": 99,
                    "nested": {"list": [1, "two"]},
                    "_kuzzle_info": {"author": "-1", "createdAt": created_at}
                }
            },
            // The publisher's volatile: its own, the SDK-wide one and the SDK's two keys.
            "volatile": {
                "seq": 7,
                "app": "switchyard-tests",
                "sdkInstanceId": instances["publisher"],
                "sdkName": sdk_name
            },
            "room": format!("{}-311", rooms["red"].as_str().unwrap())
        })
    );
    // Without an `_id` argument, the notification has no `_id` (as Kuzzle: undefined).
    let m2 = &observed.received("who", "red")[0];
    assert_eq!(
        m2["result"].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["_source"]
    );
    assert_eq!(m2["volatile"]["seq"], 2);
}

#[test]
fn subscribe_to_self_false_drops_only_the_instances_own_publications() {
    let server = start_server();
    let observed = run("self", &server);
    let rooms = &observed.one("subscribed")["rooms"];
    assert_eq!(rooms["pNoSelf"], rooms["pWithSelf"]);
    assert_eq!(rooms["pNoSelf"], rooms["qNoSelf"]);

    assert_eq!(
        tags(observed.received("who", "pNoSelf")),
        ["q2", "q4", "lastFromQ"]
    );
    assert_eq!(
        tags(observed.received("who", "pWithSelf")),
        ["p1", "q2", "p3", "q4", "lastFromQ", "lastFromP"]
    );
    assert_eq!(
        tags(observed.received("who", "qNoSelf")),
        ["p1", "p3", "lastFromP"]
    );
    // The server echoes each publisher's instance id: that is what the SDK filters on.
    let instances = observed.one("instances");
    for who in ["pNoSelf", "pWithSelf", "qNoSelf"] {
        for notification in observed.received("who", who) {
            let tag = notification["result"]["_source"]["tag"].as_str().unwrap();
            let publisher = if tag.starts_with('p') || tag == "lastFromP" {
                "p"
            } else {
                "q"
            };
            assert_eq!(
                notification["volatile"]["sdkInstanceId"], instances[publisher],
                "{notification}"
            );
        }
    }
}

#[test]
fn count_and_unsubscribe() {
    let server = start_server();
    let observed = run("count_unsubscribe", &server);
    let rooms = &observed.one("subscribed")["rooms"];
    assert_eq!(rooms["a"], rooms["b"], "equivalent filters share a room");
    assert_ne!(rooms["a"], rooms["aTail"]);
    let room = rooms["a"].as_str().unwrap();

    let counts: Vec<_> = observed
        .all("count")
        .iter()
        .map(|count| (count["step"].as_str().unwrap(), count["count"].clone()))
        .collect();
    assert_eq!(
        counts,
        [("both subscribed", json!(2)), ("a left", json!(1))]
    );
    assert_eq!(observed.one("channel")["channel"], format!("{room}-311"));

    // After unsubscribing, a hears nothing from that room, not even below the SDK...
    assert_eq!(tags(observed.received("who", "aRed")), Vec::<&str>::new());
    assert_eq!(tags(observed.received("who", "aRaw")), Vec::<&str>::new());
    // ...while its other subscription and the other subscriber carry on.
    assert_eq!(tags(observed.received("who", "aTail")), ["last"]);
    assert_eq!(tags(observed.received("who", "bRed")), ["after", "last"]);

    // Once the last subscriber leaves, the room is gone.
    let errors: HashMap<_, _> = observed
        .all("error")
        .iter()
        .map(|error| (error["step"].as_str().unwrap(), error["error"].clone()))
        .collect();
    assert_eq!(
        errors["count of a room nobody is in"],
        json!({
            "id": "core.realtime.room_not_found",
            "status": 404,
            "message": format!("The room \"{room}\" doesn't exist")
        })
    );
    let again = &errors["unsubscribe again"];
    assert_eq!(again["id"], "core.realtime.not_subscribed");
    assert_eq!(again["status"], 412);
    let message = again["message"].as_str().unwrap();
    assert!(
        message.starts_with("User \"")
            && message.ends_with(&format!("\" has not subscribed to \"{room}\".")),
        "{message}"
    );
}

#[test]
fn scope_in_and_all_hear_publications_out_and_none_do_not() {
    let server = start_server();
    let observed = run("scope", &server);
    let subscribed = observed.all("subscribed");
    let room = subscribed[0]["roomId"].as_str().unwrap();
    for (scope, suffix) in [
        ("all", "-311"),
        ("in", "-312"),
        ("out", "-313"),
        ("none", "-31"),
    ] {
        let entry = observed.find("subscribed", "scope", scope);
        assert_eq!(entry["roomId"], room, "one room for one filter");
        assert_eq!(
            entry["channel"],
            format!("{room}{suffix}"),
            "Kuzzle's channel"
        );
    }
    for (scope, expected) in [
        ("all", vec!["x1", "x2"]),
        ("in", vec!["x1", "x2"]),
        ("out", vec![]),
        ("none", vec![]),
    ] {
        let received = observed.find("received", "scope", scope);
        let notifications = received["notifications"].as_array().unwrap();
        assert_eq!(tags(notifications), expected, "scope {scope}");
        for notification in notifications {
            assert_eq!(notification["scope"], "in");
            assert_eq!(
                notification["room"],
                observed.find("subscribed", "scope", scope)["channel"]
            );
        }
        assert_eq!(tags(received["tail"].as_array().unwrap()), ["last"]);
    }
}

#[test]
fn user_notifications_follow_the_users_option() {
    let server = start_server();
    let observed = run("users", &server);
    let mut ids = HashMap::new();
    let mut channels = HashMap::new();
    let mut room_of = HashMap::new();
    for entry in observed.all("subscribed") {
        let who = entry["who"].as_str().unwrap();
        ids.insert(who, entry["sdkInstanceId"].clone());
        channels.insert(who, entry["channel"].as_str().unwrap().to_string());
        room_of.insert(who, entry["roomId"].as_str().unwrap().to_string());
    }
    ids.insert("joiner", observed.one("joiner")["sdkInstanceId"].clone());
    ids.insert("leaver", observed.one("leaver")["sdkInstanceId"].clone());
    assert_eq!(room_of["gOut"], room_of["gIn"]);
    assert_eq!(room_of["gOut"], room_of["gAll"]);
    assert_eq!(room_of["hNone"], room_of["hAll"]);
    for (who, suffix) in [
        ("gOut", "-311"),
        ("gIn", "-211"),
        ("gAll", "-111"),
        ("hNone", "-311"),
        ("hAll", "-111"),
    ] {
        assert_eq!(channels[who], format!("{}{suffix}", room_of[who]), "{who}");
    }

    // (user, count, whose volatile) per phase and watcher.
    type Expected = Vec<(&'static str, u64, &'static str)>;
    let phases: [(&str, [(&str, Expected); 5]); 4] = [
        (
            "setup",
            [
                ("gOut", vec![]),
                ("gIn", vec![("in", 3, "gAll")]),
                ("gAll", vec![]),
                ("hNone", vec![]),
                ("hAll", vec![]),
            ],
        ),
        (
            "join",
            [
                ("gOut", vec![]),
                ("gIn", vec![("in", 4, "joiner")]),
                ("gAll", vec![("in", 4, "joiner")]),
                ("hNone", vec![]),
                ("hAll", vec![("in", 3, "joiner")]),
            ],
        ),
        (
            "unsubscribe",
            [
                ("gOut", vec![("out", 3, "joiner")]),
                ("gIn", vec![]),
                ("gAll", vec![("out", 3, "joiner")]),
                ("hNone", vec![]),
                ("hAll", vec![("out", 2, "joiner")]),
            ],
        ),
        (
            "disconnect",
            [
                ("gOut", vec![("out", 3, "leaver")]),
                ("gIn", vec![("in", 4, "leaver")]),
                ("gAll", vec![("in", 4, "leaver"), ("out", 3, "leaver")]),
                ("hNone", vec![]),
                ("hAll", vec![("in", 3, "leaver"), ("out", 2, "leaver")]),
            ],
        ),
    ];
    let sdk_name = observed.find("subscribed", "who", "gAll")["sdkName"].clone();
    for (phase, watchers) in phases {
        for (who, expected) in watchers {
            let received = observed
                .0
                .iter()
                .find(|o| o["event"] == "received" && o["phase"] == phase && o["who"] == who)
                .unwrap_or_else(|| panic!("no {phase}/{who}"))["notifications"]
                .as_array()
                .unwrap();
            let summary: Vec<_> = received
                .iter()
                .map(|n| {
                    (
                        n["user"].as_str().unwrap_or("?"),
                        n["result"]["count"].as_u64().unwrap_or(0),
                        n["volatile"]["who"].as_str().unwrap_or("?"),
                    )
                })
                .collect();
            assert_eq!(summary, expected, "{phase}: what {who} heard");
            for n in received {
                let arrived = n["user"] == "in";
                let mut fixed = n.clone();
                let object = fixed.as_object_mut().unwrap();
                let timestamp = object.remove("timestamp");
                assert!(timestamp.is_some_and(|t| t.is_u64()), "{n}");
                object.remove("node");
                let volatile_who = n["volatile"]["who"].as_str().unwrap();
                let mut expected = json!({
                    "type": "user",
                    "status": 200,
                    "user": n["user"],
                    "action": if arrived { "subscribe" } else { "unsubscribe" },
                    "controller": "realtime",
                    "index": "i",
                    "collection": "c",
                    "result": {"count": n["result"]["count"]},
                    // The volatile given when subscribing, even for an unsubscribe that sent
                    // its own, and for a disconnection.
                    "volatile": {
                        "who": volatile_who,
                        "sdkInstanceId": ids[volatile_who],
                        "sdkName": sdk_name
                    },
                    "room": channels[who]
                });
                if arrived {
                    expected["protocol"] = json!("websocket");
                }
                assert_eq!(fixed, expected, "{phase}/{who}");
            }
        }
    }
}

/// A port free right now, to start two servers on in turn.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_sdk_reconnects_resubscribes_and_notifications_resume() {
    let config = config(free_port());
    let server = Server::start(&config);
    let mut scenario = Scenario::start("reconnect", server.url("websocket"));
    scenario.expect("ready", Duration::from_secs(20));
    let status = server.stop_with(Signal::SIGTERM, Duration::from_secs(20));
    assert_eq!(status.code(), Some(0));
    let server = Server::start(&config);
    let observed = scenario.finish();

    let rooms = |event: &str| {
        let mut rooms: Vec<_> = observed.one(event)["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|room| {
                (
                    room["roomId"].as_str().unwrap().to_string(),
                    room["channel"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        rooms.sort();
        rooms
    };
    let before = rooms("subscribed");
    assert_eq!(before.len(), 2);
    for (room, channel) in &before {
        assert!(
            *channel == format!("{room}-311") || *channel == format!("{room}-112"),
            "{channel}"
        );
    }
    assert_eq!(
        rooms("resubscribed"),
        before,
        "the new server gives the same ids"
    );

    let received = |phase: &str, who: &str| {
        tags(
            observed.find("received", "phase", phase)[who]
                .as_array()
                .unwrap(),
        )
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>()
    };
    assert_eq!(received("before", "red"), ["before"]);
    assert_eq!(received("before", "big"), ["before"]);
    // "blue" matches neither filter and was published first: only "after" arrives.
    assert_eq!(received("after", "red"), ["after"]);
    assert_eq!(received("after", "big"), ["after"]);
    assert_eq!(observed.one("count")["count"], 1);

    let events: Vec<(String, String)> = observed.one("events")["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["who"].to_string(), e["event"].to_string()))
        .collect();
    for who in ["subscriber", "publisher"] {
        let of = |event: &str| {
            events
                .iter()
                .filter(|(w, e)| *w == format!("\"{who}\"") && *e == format!("\"{event}\""))
                .count()
        };
        assert_eq!(of("disconnected"), 1, "{who}: {events:?}");
        assert!(of("networkError") >= 1, "{who}: {events:?}");
        assert_eq!(of("reconnected"), 1, "{who}: {events:?}");
    }
    let reconnected_ms = observed.one("reconnected")["ms"].as_u64().unwrap();
    assert!(reconnected_ms < 10_000, "{reconnected_ms} ms to reconnect");
    drop(server);
}

#[test]
fn security_first_admin_login_rights_logout_and_token_expiry() {
    // The scenario logs in twice in a row on one connection (a wrong password, then the right
    // one): Kuzzle's default of one login per connection per second would refuse the second.
    let server = Server::start(&format!("{}[limits]\nloginsPerSecond = 10\n", config(0)));
    let observed = run("security", &server);
    assert_eq!(
        observed.one("anonymousCheck")["result"],
        json!({"valid": true, "kuid": "-1", "expiresAt": null})
    );
    observed.one("openPublish");
    assert_eq!(
        observed.one("firstAdmin"),
        &json!({"event": "firstAdmin", "_id": "root", "profileIds": ["admin"]})
    );
    assert_eq!(
        observed.one("anonymousDenied")["error"],
        json!({"id": "security.rights.unauthorized", "status": 401,
               "message": "Unauthorized: authentication required to execute the action \"realtime:publish\"."})
    );
    assert_eq!(
        observed.one("wrongPassword")["error"],
        json!({"id": "plugin.strategy.missing_user", "status": 401,
               "message": "wrong username or password"})
    );
    assert_eq!(
        observed.one("loggedIn"),
        &json!({"event": "loggedIn", "valid": true, "kuid": "root", "prefix": "kauth-"})
    );
    assert_eq!(
        observed.one("rights")["rights"],
        json!([{"controller": "*", "action": "*", "index": "*", "collection": "*",
                "value": "allowed"}])
    );
    assert_eq!(
        observed.one("bobDenied")["error"],
        json!({"id": "security.rights.forbidden", "status": 403,
               "message": "Insufficient permissions to execute the action \"realtime:publish\" (User \"bob\")."})
    );
    assert_eq!(
        observed.one("afterLogout")["result"],
        json!({"valid": false, "state": "Invalid token."})
    );
    assert_eq!(observed.one("subscribed")["count"], 1);
    assert_eq!(
        observed.one("tokenExpired")["frames"],
        json!([{"status": 200, "info": "This is an automated server notification",
                "message": "Authentication Token Expired", "type": "TokenExpired",
                "node": "switchyard", "room": "kuzzle:notification:server"}])
    );
    assert_eq!(
        observed.one("unsubscribed")["error"]["id"],
        "core.realtime.room_not_found"
    );
}
