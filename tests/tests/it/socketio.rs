//! The Socket.io plugin end to end: the real `switchyard` binary loading `libsocketio` (and
//! `libwebsocket` next to it). npm `socket.io-client` 4.x scenarios (`tests/js/socketio`) over
//! polling, WebSocket and the default upgrade path; raw HTTP and WebSocket for bad input.
//!
//! Needs Node.js and npm on PATH; the npm packages are installed on first use.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{json, Value};
use switchyard_tests::{node_modules, protocol_section, Server};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

const POLLING: &str = r#"["polling"]"#;
const WEBSOCKET: &str = r#"["websocket"]"#;
const UPGRADE: &str = r#"["polling","websocket"]"#;

fn config(port: u16, socketio_keys: &str) -> String {
    format!(
        "[server]\n{}{}",
        protocol_section(
            "websocket",
            "websocket",
            "port = 0\naddress = \"127.0.0.1\""
        ),
        protocol_section(
            "socketio",
            "socketio",
            &format!("port = {port}\naddress = \"127.0.0.1\"\n{socketio_keys}")
        )
    )
}

fn start(socketio_keys: &str) -> Server {
    Server::start(&config(0, socketio_keys))
}

/// `tests/js` with socket.io-client installed (`npm ci` when the lock file names it but an
/// older `node_modules` does not have it yet).
fn js() -> &'static Path {
    let js = node_modules();
    if !js
        .join("node_modules/socket.io-client/package.json")
        .is_file()
    {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(js)
            .stdin(Stdio::null())
            .status()
            .expect("npm runs");
        assert!(status.success(), "npm ci in {} failed", js.display());
    }
    js
}

/// A running scenario of `tests/js/socketio/scenarios.js`.
struct Scenario {
    child: Child,
    lines: Receiver<String>,
    observed: Vec<Value>,
}

impl Scenario {
    fn start(name: &str, server: &Server, transports: &str) -> Scenario {
        let js = js();
        let mut child = Command::new("node")
            .arg(js.join("socketio/scenarios.js"))
            .args([
                name,
                server.url("socketio"),
                server.url("websocket"),
                transports,
            ])
            .env("SIO_OVERSIZE", "70000")
            .current_dir(js)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs");
        let (sender, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        Scenario {
            child,
            lines,
            observed: Vec::new(),
        }
    }

    /// Reads observations until `event`; returns it.
    fn expect(&mut self, event: &str) -> Value {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no \"{event}\"; observed: {:?}", self.observed));
            let value: Value = serde_json::from_str(&line).expect("a JSON line");
            self.observed.push(value.clone());
            if value["event"] == event {
                return value;
            }
        }
    }

    /// Waits for "done" and a successful exit; returns every observation.
    fn finish(mut self) -> Vec<Value> {
        self.expect("done");
        let status = self.child.wait().expect("node exits");
        assert!(status.success(), "{status}");
        std::mem::take(&mut self.observed)
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn one<'a>(observed: &'a [Value], event: &str) -> &'a Value {
    let found: Vec<_> = observed.iter().filter(|v| v["event"] == event).collect();
    assert_eq!(found.len(), 1, "one {event}: {observed:?}");
    found[0]
}

fn api(transports: &str, expected_events: Value) {
    let server = start("");
    let observed = Scenario::start("api", &server, transports).finish();
    let now = &one(&observed, "now")["response"];
    assert_eq!(now["requestId"], "r-now");
    assert_eq!(now["status"], 200);
    assert!(now["result"]["now"].as_u64().unwrap() > 1_600_000_000_000);
    assert!(
        now.get("room").is_none(),
        "the content, without room: {now}"
    );
    let acked = one(&observed, "acked");
    assert_eq!(
        acked["ack"], acked["emitted"],
        "the ack carries the same content"
    );
    assert_eq!(acked["ack"]["requestId"], "r-ack");
    let unknown = &one(&observed, "unknown")["response"];
    assert_eq!(unknown["status"], 404);
    assert_eq!(unknown["error"]["id"], "api.process.controller_not_found");
    let invalid = &one(&observed, "invalid")["response"];
    assert_eq!(invalid["status"], 400);
    assert_eq!(invalid["error"]["id"], "api.assert.invalid_argument");
    assert_eq!(one(&observed, "after")["response"]["status"], 200);
    assert_eq!(one(&observed, "transports")["events"], expected_events);
}

#[test]
fn api_requests_over_polling() {
    api(POLLING, json!(["open:polling"]));
}

#[test]
fn api_requests_over_websocket() {
    api(WEBSOCKET, json!(["open:websocket"]));
}

#[test]
fn api_requests_after_the_upgrade_from_polling() {
    api(UPGRADE, json!(["open:polling", "upgrade:websocket"]));
}

/// Flow control (issue 13): socket.io-client publishes 5,000 times back to back to a channel
/// with 100 socket.io-client subscribers that keep reading; every subscriber gets every
/// publication once, every publication is answered 200, and nobody is closed as slow.
#[test]
fn a_burst_reaches_every_reading_socketio_subscriber() {
    let server = start("");
    let observed = Scenario::start("burst", &server, WEBSOCKET).finish();
    let burst = one(&observed, "burst");
    assert_eq!(burst["statuses"], json!({"200": 5000}), "{burst}");
    let counts = burst["counts"].as_array().expect("counts");
    assert_eq!(counts.len(), 100);
    assert!(counts.iter().all(|count| count == 5000), "{burst}");
    assert_eq!(burst["duplicates"], 0, "{burst}");
    assert_eq!(burst["disconnected"], 0, "{burst}");
    assert!(
        !server.log().contains("slow consumer closed"),
        "{}",
        server.log()
    );
}

fn pubsub(transports: &str) {
    let server = start("");
    let observed = Scenario::start("pubsub", &server, transports).finish();
    let red = &one(&observed, "subscribed")["red"];
    assert_eq!(one(&observed, "unsubscribed")["response"]["status"], 200);
    let received = one(&observed, "received");
    assert_eq!(
        received["all"],
        json!(["ws1", "sio1", "blue", "after", "last"])
    );
    let notifications = received["red"].as_array().unwrap();
    let tags: Vec<_> = notifications
        .iter()
        .map(|n| n["result"]["_source"]["tag"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["ws1", "sio1"], "nothing after unsubscribing");
    assert_eq!(notifications[0]["protocol"], "websocket");
    assert_eq!(notifications[1]["protocol"], "socketio");
    for notification in notifications {
        assert_eq!(notification["type"], "document");
        assert_eq!(notification["action"], "publish");
        assert!(notification.get("room").is_none(), "{notification}");
    }
    assert!(red["channel"]
        .as_str()
        .unwrap()
        .starts_with(red["roomId"].as_str().unwrap()));
}

#[test]
fn notifications_from_websocket_and_socketio_publishers_over_polling() {
    pubsub(POLLING);
}

#[test]
fn notifications_from_websocket_and_socketio_publishers_over_websocket() {
    pubsub(WEBSOCKET);
}

#[test]
fn notifications_after_the_upgrade_from_polling() {
    pubsub(UPGRADE);
}

fn reconnect(transports: &str) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = config(port, "");
    let server = Server::start(&config);
    let mut scenario = Scenario::start("reconnect", &server, transports);
    scenario.expect("ready");
    let status = server.stop_with(Signal::SIGTERM, Duration::from_secs(20));
    assert_eq!(status.code(), Some(0));
    let _server = Server::start(&config);
    let observed = scenario.finish();
    let resubscribed = one(&observed, "resubscribed");
    // Over polling, the host's exit may cut a poll before or after the close packet.
    let reason = resubscribed["reason"].as_str().unwrap();
    assert!(
        ["transport close", "transport error"].contains(&reason),
        "{reason}"
    );
    assert_eq!(
        resubscribed["before"], resubscribed["after"],
        "same room, same channel"
    );
    let received = one(&observed, "received");
    assert_eq!(received["red"], json!(["before", "after"]));
}

#[test]
fn clients_reconnect_after_a_restart_over_polling() {
    reconnect(POLLING);
}

#[test]
fn clients_reconnect_after_a_restart_over_websocket() {
    reconnect(UPGRADE);
}

fn oversized(transports: &str) {
    let server = start("maxRequestSize = \"64KB\"");
    let observed = Scenario::start("oversized", &server, transports).finish();
    let result = one(&observed, "oversized");
    assert!(
        ["transport close", "transport error"].contains(&result["reason"].as_str().unwrap()),
        "{result}"
    );
    assert_eq!(result["after"], 200, "it reconnected and carries on");
    assert_eq!(result["healthy"], 200);
    let healthy_events = result["healthyEvents"].as_array().unwrap();
    assert!(
        healthy_events
            .iter()
            .all(|e| !e.as_str().unwrap().starts_with("disconnect")),
        "the other client never noticed: {result}"
    );
}

#[test]
fn an_oversized_request_closes_only_that_client_over_polling() {
    oversized(POLLING);
}

#[test]
fn an_oversized_request_closes_only_that_client_over_websocket() {
    oversized(WEBSOCKET);
}

// ---- raw HTTP and WebSocket: exactly what a misbehaving client gets ----

/// One HTTP/1.1 request on a new connection: (status, body).
fn http(server: &Server, method: &str, target: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(server.address("socketio")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

/// A polling session that joined the main namespace: its sid.
fn polling_session(server: &Server) -> String {
    let (status, open) = http(server, "GET", "/socket.io/?EIO=4&transport=polling", "");
    assert_eq!(status, 200, "{open}");
    let open: Value = serde_json::from_str(&open[1..]).unwrap();
    let sid = open["sid"].as_str().unwrap().to_string();
    assert_eq!(
        http(server, "POST", &poll_url(&sid), "40"),
        (200, "ok".into())
    );
    let (_, connected) = http(server, "GET", &poll_url(&sid), "");
    assert!(
        packets(&connected).any(|p| p.starts_with("40{\"sid\":")),
        "{connected}"
    );
    sid
}

/// The packets of a polling payload.
fn packets(body: &str) -> impl Iterator<Item = &str> {
    body.split('\x1e')
}

fn poll_url(sid: &str) -> String {
    format!("/socket.io/?EIO=4&transport=polling&sid={sid}")
}

/// GETs until the session is gone: it may first hand out its close packet.
fn assert_closed(server: &Server, sid: &str) {
    loop {
        match http(server, "GET", &poll_url(sid), "") {
            (400, body) => {
                assert_eq!(body, r#"{"code":1,"message":"Session ID unknown"}"#);
                return;
            }
            (200, body) if body.ends_with('1') => continue,
            other => panic!("session {sid} still open: {other:?}"),
        }
    }
}

#[test]
fn requests_engine_io_refuses_get_its_errors() {
    let server = start("");
    let unknown = r#"{"code":1,"message":"Session ID unknown"}"#;
    let cases = [
        (
            "GET",
            "/socket.io/?EIO=4&transport=polling&sid=nope",
            400,
            unknown,
        ),
        (
            "POST",
            "/socket.io/?EIO=4&transport=polling&sid=nope",
            400,
            unknown,
        ),
        (
            "GET",
            "/socket.io/?EIO=4&transport=carrier-pigeon",
            400,
            r#"{"code":0,"message":"Transport unknown"}"#,
        ),
        (
            "GET",
            "/socket.io/?EIO=4",
            400,
            r#"{"code":0,"message":"Transport unknown"}"#,
        ),
        (
            "POST",
            "/socket.io/?EIO=4&transport=polling",
            400,
            r#"{"code":2,"message":"Bad handshake method"}"#,
        ),
        (
            "GET",
            "/socket.io/?EIO=4&transport=websocket",
            400,
            r#"{"code":3,"message":"Bad request"}"#,
        ),
        (
            "GET",
            "/socket.io/?EIO=3&transport=polling",
            400,
            r#"{"code":5,"message":"Unsupported protocol version"}"#,
        ),
        ("GET", "/elsewhere", 404, "Not Found"),
    ];
    for (method, target, status, body) in cases {
        assert_eq!(
            http(&server, method, target, ""),
            (status, body.to_string()),
            "{method} {target}"
        );
    }
}

#[test]
fn forbidden_origins_are_refused() {
    let server = start("origins = [\"https://app.example\"]");
    let mut stream = TcpStream::connect(server.address("socketio")).unwrap();
    stream.write_all(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    assert!(
        response.ends_with(r#"{"code":4,"message":"Forbidden"}"#),
        "{response}"
    );
}

#[test]
fn malformed_packets_close_only_that_session() {
    let server = start("");
    let healthy = polling_session(&server);
    for bad in [
        "9garbage",
        "42not json",
        "2",
        "4{\"a\":1}",
        "42[\"disconnect\"]",
        "bAQID",
        "41\x1e42[\"kuzzle\",{}]",
    ] {
        let sid = polling_session(&server);
        assert_eq!(
            http(&server, "POST", &poll_url(&sid), bad),
            (200, "ok".into()),
            "{bad:?}"
        );
        assert_closed(&server, &sid);
    }
    let request = r#"42["kuzzle",{"controller":"server","action":"now","requestId":"h"}]"#;
    assert_eq!(
        http(&server, "POST", &poll_url(&healthy), request),
        (200, "ok".into())
    );
    let (status, answer) = http(&server, "GET", &poll_url(&healthy), "");
    assert_eq!(status, 200);
    assert!(
        answer.starts_with(r#"42["h",{"requestId":"h","status":200"#),
        "{answer}"
    );
}

#[test]
fn oversized_posts_get_413_and_close_the_session() {
    let server = start("maxRequestSize = 1000");
    let sid = polling_session(&server);
    let big = format!(r#"42["kuzzle",{{"body":"{}"}}]"#, "x".repeat(1000));
    assert_eq!(http(&server, "POST", &poll_url(&sid), &big).0, 413);
    assert_closed(&server, &sid);
}

/// Issue 19 (minor): a body its `Content-Length` announces past `maxRequestSize` is refused at
/// once, not read for up to 10 s (without the check, this request, which never sends its body,
/// got 408 after the body timeout).
#[test]
fn a_post_announcing_an_oversized_body_gets_413_before_sending_it() {
    let server = start("maxRequestSize = 1000");
    let sid = polling_session(&server);
    let mut stream = TcpStream::connect(server.address("socketio")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "POST {} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: 104857600\r\n\r\n",
        poll_url(&sid)
    )
    .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 413");
    drop(stream);
    assert_closed(&server, &sid);
}

#[test]
fn overlapping_polls_close_the_session() {
    let server = start("");
    let sid = polling_session(&server);
    // Nothing is queued, so whichever poll comes first waits until the other arrives: one is
    // refused, the other gets the close packet.
    let polls: Vec<_> = (0..2)
        .map(|_| {
            let address = server.address("socketio");
            let url = poll_url(&sid);
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(address).unwrap();
                write!(
                    stream,
                    "GET {url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                )
                .unwrap();
                let mut response = String::new();
                stream.read_to_string(&mut response).unwrap();
                let body = response.split_once("\r\n\r\n").unwrap().1.to_string();
                (response[9..12].to_string(), body)
            })
        })
        .collect();
    let mut results: Vec<_> = polls.into_iter().map(|poll| poll.join().unwrap()).collect();
    results.sort();
    assert_eq!(
        results,
        [
            ("200".to_string(), "1".to_string()),
            (
                "400".to_string(),
                r#"{"code":3,"message":"Bad request"}"#.to_string()
            )
        ]
    );
    assert_closed(&server, &sid);
}

#[test]
fn a_client_that_stops_answering_pings_is_closed_and_its_subscriptions_go() {
    let server = start("pingInterval = 1000\npingTimeout = 300");
    let sid = polling_session(&server);
    let subscribe = r#"42["kuzzle",{"controller":"realtime","action":"subscribe","index":"i","collection":"c","body":{},"requestId":"s"}]"#;
    assert_eq!(
        http(&server, "POST", &poll_url(&sid), subscribe),
        (200, "ok".into())
    );
    let (_, answer) = http(&server, "GET", &poll_url(&sid), "");
    let packet = packets(&answer)
        .find_map(|p| p.strip_prefix("42[\"s\","))
        .unwrap_or_else(|| panic!("no answer: {answer}"));
    let response: Value = serde_json::from_str(&packet[..packet.len() - 1]).unwrap();
    let room = response["result"]["roomId"].as_str().unwrap().to_string();

    // Count the room's subscribers from a WebSocket client until the dead client is gone.
    let (mut ws, _) = tungstenite::connect(server.url("websocket")).unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let count = json!({"controller":"realtime","action":"count","body":{"roomId":room},"requestId":"c"});
        ws.send(Message::text(count.to_string())).unwrap();
        let Message::Text(text) = ws.read().unwrap() else {
            continue;
        };
        let answer: Value = serde_json::from_str(text.as_str()).unwrap();
        if answer["status"] == 404 || answer["result"]["count"] == 0 {
            break;
        }
        assert_eq!(answer["result"]["count"], 1, "{answer}");
        assert!(Instant::now() < until, "the dead client was never removed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_closed(&server, &sid);
}

fn websocket_session(
    server: &Server,
) -> tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>> {
    let url = format!(
        "ws://{}/socket.io/?EIO=4&transport=websocket",
        server.address("socketio")
    );
    let (mut ws, response) = tungstenite::connect(url).unwrap();
    assert_eq!(response.status(), 101);
    let Message::Text(open) = ws.read().unwrap() else {
        panic!("no open packet")
    };
    assert!(open.as_str().starts_with("0{\"sid\":"), "{open}");
    assert!(open.as_str().contains("\"upgrades\":[]"), "{open}");
    ws.send(Message::text("40")).unwrap();
    let Message::Text(connected) = ws.read().unwrap() else {
        panic!("no connect answer")
    };
    assert!(connected.as_str().starts_with("40{\"sid\":"), "{connected}");
    ws
}

#[test]
fn bad_websocket_input_closes_with_a_code() {
    let server = start("maxRequestSize = 1000");
    let cases = [
        (
            Message::text(format!("42[\"kuzzle\",\"{}\"]", "x".repeat(1000))),
            CloseCode::Size,
        ),
        (Message::binary(vec![1, 2, 3]), CloseCode::Unsupported),
        (Message::text("42not json"), CloseCode::Normal),
        (Message::text("9"), CloseCode::Normal),
    ];
    for (message, code) in cases {
        let mut ws = websocket_session(&server);
        ws.send(message).unwrap();
        let close = loop {
            match ws.read() {
                Ok(Message::Close(frame)) => break frame.map(|frame| frame.code),
                Ok(_) => continue,
                Err(error) => panic!("no close frame: {error}"),
            }
        };
        assert_eq!(close, Some(code));
    }
}

/// A Kuzzle request event of exactly `size` bytes (`server:now`, padded), as Socket.io text.
fn padded_event(id: &str, size: usize) -> Vec<u8> {
    let mut text =
        format!(r#"42["kuzzle",{{"controller":"server","action":"now","requestId":"{id}","pad":""#)
            .into_bytes();
    text.resize(size - 3, b'x');
    text.extend_from_slice(b"\"}]");
    text
}

/// Issue 19: the bytes of unfinished POST bodies count against `maxTotalPartialBytes`; past
/// it, a large one gets 413 and its session closes, as for a body over `maxRequestSize`.
#[test]
fn issue_19_polling_bodies_past_max_total_partial_bytes_get_413() {
    let server = start("maxTotalPartialBytes = \"1MB\"");
    let sids = [polling_session(&server), polling_session(&server)];
    let events = [padded_event("a", 700 * 1024), padded_event("b", 700 * 1024)];
    let mut streams: Vec<TcpStream> = sids
        .iter()
        .zip(&events)
        .map(|(sid, event)| {
            let mut stream = TcpStream::connect(server.address("socketio")).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            write!(
                stream,
                "POST {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n\r\n",
                poll_url(sid),
                event.len()
            )
            .unwrap();
            stream.write_all(&event[..600 * 1024]).unwrap();
            stream
        })
        .collect();
    // 1.2 MB being received, over the 1 MB total: whichever the server reads second is
    // refused at once.
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = 'found: loop {
        assert!(
            Instant::now() < deadline,
            "neither POST was answered in 10 s"
        );
        for (index, stream) in streams.iter_mut().enumerate() {
            let mut head = [0u8; 12];
            match stream.read(&mut head) {
                Ok(read) => {
                    assert!(read > 0, "closed without an answer");
                    stream
                        .set_read_timeout(Some(Duration::from_secs(10)))
                        .unwrap();
                    stream.read_exact(&mut head[read..]).unwrap();
                    assert_eq!(&head, b"HTTP/1.1 413");
                    break 'found index;
                }
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(error) => panic!("reading: {error}"),
            }
        }
    };
    assert_closed(&server, &sids[refused]);
    // Small bodies still get through (on another session: one POST at a time per session).
    let other = polling_session(&server);
    let small = padded_event("small", 200);
    let small = std::str::from_utf8(&small).unwrap();
    assert_eq!(
        http(&server, "POST", &poll_url(&other), small),
        (200, "ok".into())
    );
    let (_, polled) = http(&server, "GET", &poll_url(&other), "");
    assert!(polled.contains(r#""requestId":"small""#), "{polled}");
    // The other POST finishes and is answered.
    let kept = refused ^ 1;
    streams[kept]
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    streams[kept]
        .write_all(&events[kept][600 * 1024..])
        .unwrap();
    let mut answer = String::new();
    let _ = streams[kept].read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (_, polled) = http(&server, "GET", &poll_url(&sids[kept]), "");
    let id = ["a", "b"][kept];
    assert!(
        polled.contains(&format!(r#""requestId":"{id}""#)),
        "{polled}"
    );
}

/// Issue 19: the same total counts unfinished WebSocket messages; past it, 1009.
#[test]
fn issue_19_websocket_messages_past_max_total_partial_bytes_are_closed_with_1009() {
    use std::io::Write as _;
    use tungstenite::stream::MaybeTlsStream;
    let server = start("maxTotalPartialBytes = \"1MB\"");
    type Client = tungstenite::WebSocket<MaybeTlsStream<TcpStream>>;
    let write_raw = |client: &mut Client, bytes: &[u8]| {
        let MaybeTlsStream::Plain(stream) = client.get_mut() else {
            unreachable!("plain TCP")
        };
        let _ = stream.write_all(bytes);
    };
    // A masked client frame (mask 0) with a 64-bit length.
    let raw_frame = |first: u8, payload: &[u8]| {
        let mut frame = vec![first, 0x80 | 127];
        frame.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0, 0]);
        frame.extend_from_slice(payload);
        frame
    };
    const PING: [u8; 6] = [0x89, 0x80, 0, 0, 0, 0];
    // The pong answering a ping after the first fragment says the server holds it.
    let pong_or_close = |client: &mut Client| loop {
        match client.read().expect("a frame within 10 s") {
            Message::Pong(_) => return Ok(()),
            Message::Close(frame) => return Err(frame.map(|frame| frame.code)),
            Message::Ping(_) => continue,
            other => panic!("expected a pong or a close, got {other:?}"),
        }
    };
    let first = padded_event("a", 700 * 1024);
    let mut holder = websocket_session(&server);
    write_raw(&mut holder, &raw_frame(0x01, &first[..600 * 1024]));
    write_raw(&mut holder, &PING);
    assert_eq!(pong_or_close(&mut holder), Ok(()));
    // 600 KB more would make 1.2 MB unfinished, over the 1 MB total: refused.
    let mut refused = websocket_session(&server);
    write_raw(
        &mut refused,
        &raw_frame(0x01, &padded_event("b", 700 * 1024)[..600 * 1024]),
    );
    write_raw(&mut refused, &PING);
    assert_eq!(pong_or_close(&mut refused), Err(Some(CloseCode::Size)));
    // Small messages still get through; the holder finishes its message and is answered.
    let mut small = websocket_session(&server);
    small
        .send(Message::text(
            String::from_utf8(padded_event("small", 200)).unwrap(),
        ))
        .unwrap();
    let answered = |client: &mut Client, id: &str| loop {
        match client.read().expect("an answer within 10 s") {
            Message::Text(text) if text.as_str().contains(&format!(r#""requestId":"{id}""#)) => {
                return
            }
            Message::Text(_) | Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected the answer to {id}, got {other:?}"),
        }
    };
    answered(&mut small, "small");
    write_raw(&mut holder, &raw_frame(0x80, &first[600 * 1024..]));
    answered(&mut holder, "a");
}
