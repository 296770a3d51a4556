//! The MQTT plugin end to end with real clients: Debian's `mosquitto_pub`/`mosquitto_sub` and
//! PyPI's `paho-mqtt` (scripts in tests/py), against the real `switchyard` binary. Kuzzle's
//! request/response and notifications, its refusals, and the broker (QoS 1 and 2, retained
//! messages, wills, wildcards). Malformed input over raw sockets is in `mqtt_raw.rs`.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::{protocol_section, Server};
use tungstenite::Message;

const WAIT: Duration = Duration::from_secs(10);

fn start(mqtt_keys: &str, with_websocket: bool) -> Server {
    let websocket = if with_websocket {
        protocol_section(
            "websocket",
            "websocket",
            "port = 0\naddress = \"127.0.0.1\"",
        )
    } else {
        String::new()
    };
    Server::start(&format!(
        "[server]\n{}{websocket}",
        protocol_section(
            "mqtt",
            "mqtt",
            &format!("port = 0\naddress = \"127.0.0.1\"\n{mqtt_keys}")
        )
    ))
}

fn port(server: &Server) -> String {
    let address = server.address("mqtt");
    address.rsplit_once(':').expect("host:port").1.to_string()
}

/// A client program on PATH, or a panic saying which package provides it.
fn tool(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "{name} is not on PATH: the MQTT tests use real clients.\n\
             hint: run scripts/test.sh, which installs it, or apt-get install -y mosquitto-clients"
        )
    })
}

/// `python3` with paho-mqtt importable, or a panic saying what to install.
fn python() -> Command {
    let probe = Command::new("python3")
        .args(["-c", "import paho.mqtt.client"])
        .output();
    match probe {
        Ok(output) if output.status.success() => {}
        _ => panic!(
            "python3 with paho-mqtt is needed by the MQTT tests.\n\
             hint: run scripts/test.sh, which installs it, or python3 -m pip install paho-mqtt"
        ),
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("py/kuzzle_mqtt.py");
    let mut command = Command::new("python3");
    command.arg(script);
    command
}

/// A running client whose standard output arrives line by line; killed when dropped.
struct Program {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Program {
    fn spawn(mut command: Command) -> Program {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
        let stdout = child.stdout.take().expect("piped");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Program {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn mosquitto(tool_name: &str, port: &str, args: &[&str]) -> Program {
        // Piped, the clients' stdio would buffer their lines until exit: stdbuf makes them
        // line-buffered, so a test can wait for "Subscribed" before publishing.
        let mut command = Command::new("stdbuf");
        command
            .arg("-oL")
            .arg(tool(tool_name))
            .args(["-h", "127.0.0.1", "-p", port])
            .args(args);
        Program::spawn(command)
    }

    /// Waits for a line containing `needle`; returns it.
    fn wait_for(&mut self, needle: &str) -> String {
        let until = Instant::now() + WAIT;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?}; the client printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for the program to exit; returns every line it printed.
    fn finish(mut self) -> Vec<String> {
        let until = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // The reader thread may still hold the last lines: read until it hangs up (at
                // the end of the output), not just what has arrived so far.
                while let Ok(line) = self
                    .lines
                    .recv_timeout(until.saturating_duration_since(Instant::now()))
                {
                    self.seen.push(line);
                }
                assert!(
                    status.success(),
                    "{status}; it printed:\n{}",
                    self.seen.join("\n")
                );
                return std::mem::take(&mut self.seen);
            }
            assert!(
                Instant::now() < until,
                "did not exit; printed:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn paho(args: &[&str]) -> Program {
    let mut command = python();
    command.args(args);
    Program::spawn(command)
}

#[test]
fn an_api_request_is_answered_on_the_response_topic() {
    let server = start("", false);
    let port = port(&server);
    let request = r#"{"controller":"server","action":"now","requestId":"mqtt-1"}"#;
    let lines = paho(&["request", "127.0.0.1", &port, request]).finish();
    let response: Value = serde_json::from_str(&lines[0]).expect("a JSON response");
    assert_eq!(response["requestId"], "mqtt-1");
    assert_eq!(response["status"], 200);
    assert!(response["result"]["now"].is_u64(), "{response}");
    assert!(
        response.get("room").is_none(),
        "MQTT responses carry no room: {response}"
    );
}

#[test]
fn responses_go_to_their_requester_only() {
    let server = start("", false);
    let lines = paho(&["private", "127.0.0.1", &port(&server)]).finish();
    assert_eq!(lines, ["ok"]);
}

#[test]
fn notifications_arrive_on_the_channel_topic_from_mqtt_and_websocket_publishers() {
    let server = start("", true);
    let port = port(&server);
    let mut subscriber = paho(&["subscribe", "127.0.0.1", &port, "shop", "orders", "2"]);
    let ready = subscriber.wait_for("ready ");
    let channel = ready.trim_start_matches("ready ").to_string();
    assert!(channel.ends_with("-311"), "{channel}");

    // One document published through MQTT …
    let publish = json!({"controller": "realtime", "action": "publish", "requestId": "p-1",
        "index": "shop", "collection": "orders", "body": {"from": "mqtt"}});
    let lines = paho(&["request", "127.0.0.1", &port, &publish.to_string()]).finish();
    assert_eq!(
        serde_json::from_str::<Value>(&lines[0]).unwrap()["status"],
        200
    );
    // … and one through the WebSocket plugin of the same host.
    let (mut websocket, _) = tungstenite::connect(server.url("websocket")).expect("ws connect");
    let publish = json!({"controller": "realtime", "action": "publish", "requestId": "p-2",
        "index": "shop", "collection": "orders", "body": {"from": "websocket"}});
    websocket.send(Message::text(publish.to_string())).unwrap();
    if let tungstenite::stream::MaybeTlsStream::Plain(stream) = websocket.get_ref() {
        stream.set_read_timeout(Some(WAIT)).unwrap();
    }
    let answer = websocket.read().expect("a WebSocket answer");
    assert!(
        answer.to_text().unwrap().contains("\"status\":200"),
        "{answer}"
    );

    let lines = subscriber.finish();
    let notifications: Vec<(String, Value)> = lines[1..]
        .iter()
        .map(|line| {
            let (topic, payload) = line.split_once(' ').expect("topic and payload");
            (
                topic.to_string(),
                serde_json::from_str(payload).expect("JSON"),
            )
        })
        .collect();
    for ((topic, notification), from) in notifications.iter().zip(["mqtt", "websocket"]) {
        assert_eq!(topic, &channel);
        assert_eq!(notification["type"], "document", "{notification}");
        assert_eq!(
            notification["result"]["_source"]["from"], from,
            "{notification}"
        );
        assert!(notification.get("room").is_none(), "{notification}");
    }
}

#[test]
fn kuzzle_topics_are_guarded() {
    let server = start("", false);
    let port = port(&server);
    // Subscribing to requestTopic, or to a wildcard without allowPubSub, is refused in SUBACK.
    let mut subscriber = Program::mosquitto(
        "mosquitto_sub",
        &port,
        &[
            "-d",
            "-t",
            "Kuzzle/request",
            "-t",
            "#",
            "-t",
            "Kuzzle/response",
        ],
    );
    assert_eq!(
        subscriber.wait_for("Subscribed"),
        "Subscribed (mid: 1): 128, 128, 0"
    );
    // Publishing to responseTopic closes the publisher's connection; so does publishing an
    // ordinary topic without allowPubSub (mosquitto_pub reports the lost connection).
    for topic in ["Kuzzle/response", "some/topic"] {
        let output = Command::new(tool("mosquitto_pub"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-q",
                "1",
                "-t",
                topic,
                "-m",
                "x",
                "-d",
            ])
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&output.stdout);
        assert!(!printed.contains("received PUBACK"), "{topic}: {printed}");
        assert!(!output.status.success(), "{topic}: {printed}");
    }
}

fn pubsub() -> (Server, String) {
    let server = start("allowPubSub = true", false);
    let port = port(&server);
    (server, port)
}

#[test]
fn qos_1_and_2_complete_their_handshakes() {
    let (_server, port) = pubsub();
    for (qos, sub_expect, pub_expect) in [
        ("1", vec!["sending PUBACK"], vec!["received PUBACK"]),
        (
            "2",
            vec!["sending PUBREC", "received PUBREL", "sending PUBCOMP"],
            vec!["received PUBREC", "sending PUBREL", "received PUBCOMP"],
        ),
    ] {
        let topic = format!("qos/{qos}");
        let mut subscriber = Program::mosquitto(
            "mosquitto_sub",
            &port,
            &["-d", "-q", qos, "-C", "1", "-v", "-t", &topic],
        );
        assert_eq!(
            subscriber.wait_for("Subscribed"),
            format!("Subscribed (mid: 1): {qos}")
        );
        let publisher = Program::mosquitto(
            "mosquitto_pub",
            &port,
            &["-d", "-q", qos, "-t", &topic, "-m", "exactly-once"],
        );
        let published = publisher.finish().join("\n");
        for needle in pub_expect {
            assert!(
                published.contains(needle),
                "qos {qos}: {needle}:\n{published}"
            );
        }
        let received = subscriber.finish().join("\n");
        assert!(
            received.contains(&format!("received PUBLISH (d0, q{qos}, r0, m1, '{topic}'")),
            "{received}"
        );
        for needle in sub_expect {
            assert!(
                received.contains(needle),
                "qos {qos}: {needle}:\n{received}"
            );
        }
        assert!(
            received.contains(&format!("{topic} exactly-once")),
            "{received}"
        );
    }
}

#[test]
fn a_retained_message_reaches_later_subscribers_and_an_empty_one_clears_it() {
    let (_server, port) = pubsub();
    Program::mosquitto(
        "mosquitto_pub",
        &port,
        &["-r", "-q", "1", "-t", "state/lamp", "-m", "on"],
    )
    .finish();
    let received = Program::mosquitto(
        "mosquitto_sub",
        &port,
        &["-d", "-C", "1", "-v", "-t", "state/+"],
    )
    .finish()
    .join("\n");
    assert!(
        received.contains("received PUBLISH (d0, q0, r1, m0, 'state/lamp'"),
        "{received}"
    );
    assert!(received.contains("state/lamp on"), "{received}");

    Program::mosquitto("mosquitto_pub", &port, &["-r", "-t", "state/lamp", "-n"]).finish();
    // Nothing retained any more: the first message is the live one published after SUBACK.
    let mut subscriber = Program::mosquitto(
        "mosquitto_sub",
        &port,
        &["-d", "-C", "1", "-v", "-t", "state/lamp"],
    );
    subscriber.wait_for("Subscribed");
    Program::mosquitto("mosquitto_pub", &port, &["-t", "state/lamp", "-m", "live"]).finish();
    let received = subscriber.finish().join("\n");
    assert!(received.contains("state/lamp live"), "{received}");
    assert!(!received.contains("r1"), "{received}");
}

#[test]
fn a_last_will_is_published_when_a_client_vanishes() {
    let (_server, port) = pubsub();
    let mut watcher = Program::mosquitto(
        "mosquitto_sub",
        &port,
        &["-d", "-C", "1", "-v", "-t", "wills/#"],
    );
    watcher.wait_for("Subscribed");
    let mut doomed = Program::mosquitto(
        "mosquitto_sub",
        &port,
        &[
            "-d",
            "-t",
            "anything",
            "--will-topic",
            "wills/doomed",
            "--will-payload",
            "gone",
        ],
    );
    doomed.wait_for("Subscribed");
    // SIGKILL: no DISCONNECT, the socket just closes.
    doomed.child.kill().unwrap();
    let received = watcher.finish().join("\n");
    assert!(received.contains("wills/doomed gone"), "{received}");

    // A clean DISCONNECT discards the will: the watcher sees the next live message instead.
    let mut watcher = Program::mosquitto(
        "mosquitto_sub",
        &port,
        &["-d", "-C", "1", "-v", "-t", "wills/#"],
    );
    watcher.wait_for("Subscribed");
    Program::mosquitto(
        "mosquitto_pub",
        &port,
        &[
            "-t",
            "x",
            "-m",
            "x",
            "--will-topic",
            "wills/polite",
            "--will-payload",
            "gone",
        ],
    )
    .finish();
    Program::mosquitto("mosquitto_pub", &port, &["-t", "wills/after", "-m", "live"]).finish();
    let received = watcher.finish().join("\n");
    assert!(received.contains("wills/after live"), "{received}");
}

#[test]
fn a_persistent_session_keeps_subscriptions_and_qos1_messages_while_offline() {
    let (_server, port) = pubsub();
    let persistent = [
        "-d",
        "-c",
        "-i",
        "keeper",
        "-q",
        "1",
        "-v",
        "-t",
        "inbox/keeper",
    ];
    let mut first = Program::mosquitto("mosquitto_sub", &port, &persistent);
    first.wait_for("Subscribed");
    drop(first); // killed: offline, the session stays
    Program::mosquitto(
        "mosquitto_pub",
        &port,
        &["-q", "1", "-t", "inbox/keeper", "-m", "while away"],
    )
    .finish();
    // Reconnecting without subscribing again: the stored message arrives.
    let mut args = vec![
        "-d",
        "-c",
        "-i",
        "keeper",
        "-C",
        "1",
        "-v",
        "-t",
        "unrelated",
    ];
    args.extend(["-q", "1"]);
    let received = Program::mosquitto("mosquitto_sub", &port, &args)
        .finish()
        .join("\n");
    assert!(received.contains("inbox/keeper while away"), "{received}");
}

#[test]
fn wildcards_match_ordinary_topics_with_allow_pub_sub() {
    let (_server, port) = pubsub();
    let mut subscriber = Program::mosquitto(
        "mosquitto_sub",
        &port,
        &[
            "-d",
            "-C",
            "3",
            "-v",
            "-t",
            "sensors/+/temp",
            "-t",
            "logs/#",
        ],
    );
    assert_eq!(
        subscriber.wait_for("Subscribed"),
        "Subscribed (mid: 1): 0, 0"
    );
    for (topic, message) in [
        ("sensors/kitchen/temp", "21"),
        ("sensors/kitchen/humidity", "40"),
        ("logs/a/b/c", "deep"),
        ("logs", "parent"),
    ] {
        Program::mosquitto("mosquitto_pub", &port, &["-t", topic, "-m", message]).finish();
    }
    let received: Vec<String> = subscriber
        .finish()
        .into_iter()
        .filter(|line| !line.starts_with("Client ") && !line.starts_with("Subscribed"))
        .collect();
    assert_eq!(
        received,
        ["sensors/kitchen/temp 21", "logs/a/b/c deep", "logs parent"]
    );
}

/// The socket is reachable by a plain TCP client too (the raw tests rely on it).
#[test]
fn the_listener_is_announced_as_an_mqtt_url() {
    let server = start("", false);
    assert!(
        server.url("mqtt").starts_with("mqtt://127.0.0.1:"),
        "{}",
        server.ready_line
    );
    TcpStream::connect(server.address("mqtt")).expect("connect");
}
