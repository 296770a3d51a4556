//! The MQTT plugin end to end with a raw TCP client that writes its own bytes: malformed
//! packets, a wrong protocol level, oversized packets, packets before CONNECT, Kuzzle's
//! refusals, keep-alive. Each must close only the offending client, exactly as asserted.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use switchyard_tests::{protocol_section, Server};

fn start(mqtt_keys: &str) -> Server {
    Server::start(&format!(
        "[server]\n{}",
        protocol_section(
            "mqtt",
            "mqtt",
            &format!("port = 0\naddress = \"127.0.0.1\"\n{mqtt_keys}")
        )
    ))
}

fn string(text: &str) -> Vec<u8> {
    let mut out = (text.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out
}

/// A packet: first byte, remaining length, body.
fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut length = body.len();
    loop {
        let byte = (length % 128) as u8;
        length /= 128;
        out.push(if length > 0 { byte | 0x80 } else { byte });
        if length == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// CONNECT with this protocol name and level, connect flags, keep-alive, client id, and the
/// will's topic and message when flags ask for one.
fn connect(name: &str, level: u8, flags: u8, keep_alive: u16, id: &str, will: &[&str]) -> Vec<u8> {
    let mut body = string(name);
    body.push(level);
    body.push(flags);
    body.extend_from_slice(&keep_alive.to_be_bytes());
    body.extend(string(id));
    for part in will {
        body.extend(string(part));
    }
    packet(0x10, &body)
}

fn publish(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = string(topic);
    body.extend_from_slice(payload);
    packet(0x30, &body)
}

fn subscribe(filter: &str) -> Vec<u8> {
    let mut body = vec![0, 1];
    body.extend(string(filter));
    body.push(0);
    packet(0x82, &body)
}

const PINGREQ: [u8; 2] = [0xc0, 0];
const PINGRESP: [u8; 2] = [0xd0, 0];
const CONNACK_OK: [u8; 4] = [0x20, 2, 0, 0];

struct Raw {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Raw {
    fn open(server: &Server) -> Raw {
        let stream = TcpStream::connect(server.address("mqtt")).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Raw {
            stream,
            buffer: Vec::new(),
        }
    }

    /// Opens and completes a clean-session CONNECT.
    fn connected(server: &Server, id: &str) -> Raw {
        let mut raw = Raw::open(server);
        raw.send(&connect("MQTT", 4, 0x02, 0, id, &[]));
        assert_eq!(raw.next(), CONNACK_OK);
        raw
    }

    fn send(&mut self, bytes: &[u8]) {
        // The server may already have closed: a failed write shows up as the expected EOF.
        let _ = self.stream.write_all(bytes);
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk) {
            Ok(read) => {
                self.buffer.extend_from_slice(&chunk[..read]);
                read
            }
            Err(error) if error.kind() == ErrorKind::ConnectionReset => 0,
            Err(error) => panic!("nothing from the server within 10 s: {error}"),
        }
    }

    /// The next whole packet.
    fn next(&mut self) -> Vec<u8> {
        loop {
            if self.buffer.len() >= 2 {
                let mut length = 0usize;
                let mut at = 1;
                let mut shift = 0;
                while at < self.buffer.len() {
                    length |= usize::from(self.buffer[at] & 0x7f) << shift;
                    shift += 7;
                    at += 1;
                    if self.buffer[at - 1] & 0x80 == 0 {
                        if self.buffer.len() >= at + length {
                            return self.buffer.drain(..at + length).collect();
                        }
                        break;
                    }
                }
            }
            assert!(self.fill() > 0, "closed; unread bytes {:?}", self.buffer);
        }
    }

    /// Asserts the server closes the connection, having sent exactly `last` before.
    fn expect_close_after(&mut self, last: &[u8]) {
        while self.fill() > 0 {}
        assert_eq!(self.buffer, last, "bytes received before the close");
    }
}

/// The topic and payload of a QoS 0 PUBLISH.
fn publish_parts(packet: &[u8]) -> (String, Vec<u8>) {
    assert_eq!(packet[0], 0x30, "not a QoS 0 PUBLISH: {packet:?}");
    let body_start = 1
        + packet[1..]
            .iter()
            .position(|byte| byte & 0x80 == 0)
            .unwrap()
        + 1;
    let body = &packet[body_start..];
    let topic_length = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let topic = String::from_utf8(body[2..2 + topic_length].to_vec()).unwrap();
    (topic, body[2 + topic_length..].to_vec())
}

/// A connected bystander keeps being served after someone else's bad input.
fn bystander_still_served(bystander: &mut Raw) {
    bystander.send(&PINGREQ);
    assert_eq!(bystander.next(), PINGRESP);
}

#[test]
fn a_packet_before_connect_closes_without_an_answer() {
    let server = start("");
    let mut bystander = Raw::connected(&server, "bystander");
    for first in [
        PINGREQ.to_vec(),
        publish("Kuzzle/request", b"{}"),
        subscribe("a"),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
    ] {
        let mut raw = Raw::open(&server);
        raw.send(&first);
        raw.expect_close_after(&[]);
    }
    bystander_still_served(&mut bystander);
}

#[test]
fn a_wrong_protocol_level_gets_connack_1_then_a_close() {
    let server = start("");
    let cases: [(&str, u8, &[u8]); 4] = [
        ("MQTT", 3, &[0x20, 2, 0, 1]),
        ("MQTT", 6, &[0x20, 2, 0, 1]),
        // An MQTT 5 client reads MQTT 5's CONNACK: reason 0x84, empty properties.
        ("MQTT", 5, &[0x20, 3, 0, 0x84, 0]),
        // An unknown protocol name: closed without an answer.
        ("MQTX", 4, &[]),
    ];
    for (name, level, expected) in cases {
        let mut raw = Raw::open(&server);
        raw.send(&connect(name, level, 0x02, 0, "x", &[]));
        raw.expect_close_after(expected);
    }
    // MQTT 3.1 is accepted.
    let mut raw = Raw::open(&server);
    raw.send(&connect("MQIsdp", 3, 0x02, 0, "old", &[]));
    assert_eq!(raw.next(), CONNACK_OK);
}

#[test]
fn refused_connects_get_their_connack_code() {
    let server = start("");
    let cases: [(Vec<u8>, u8); 2] = [
        // A persistent session needs a client id.
        (connect("MQTT", 4, 0x00, 0, "", &[]), 2),
        // A will is a publish: without allowPubSub it is not authorized.
        (connect("MQTT", 4, 0x06, 0, "w", &["some/topic", "bye"]), 5),
    ];
    for (bytes, code) in cases {
        let mut raw = Raw::open(&server);
        raw.send(&bytes);
        raw.expect_close_after(&[0x20, 2, 0, code]);
    }
}

#[test]
fn malformed_packets_close_only_their_connection() {
    let server = start("allowPubSub = true");
    let mut bystander = Raw::connected(&server, "bystander");
    bystander.send(&subscribe("news"));
    assert_eq!(bystander.next(), [0x90, 3, 0, 1, 0]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("PINGREQ with reserved flags", vec![0xc1, 0]),
        ("reserved packet type 0", vec![0x00, 0]),
        ("reserved packet type 15", vec![0xf0, 0]),
        ("CONNACK from a client", vec![0x20, 2, 0, 0]),
        ("second CONNECT", connect("MQTT", 4, 0x02, 0, "again", &[])),
        (
            "remaining length of 5 bytes",
            vec![0x30, 0xff, 0xff, 0xff, 0xff, 0x01],
        ),
        ("PUBLISH with QoS 3", packet(0x36, &[0, 1, b't', 0, 1])),
        ("wildcard in a topic name", publish("a/#", b"x")),
        ("topic not UTF-8", packet(0x30, &[0, 2, 0xc3, 0x28])),
        ("packet id 0", packet(0x32, &[0, 1, b't', 0, 0])),
        ("SUBSCRIBE without filters", packet(0x82, &[0, 1])),
        (
            "SUBSCRIBE with flags 0",
            packet(0x80, &[0, 1, 0, 1, b'a', 0]),
        ),
        ("invalid filter", subscribe("a/#/b")),
        ("PINGREQ with a body", vec![0xc0, 1, 0]),
    ];
    for (name, bytes) in cases {
        let mut raw = Raw::connected(&server, name);
        raw.send(&bytes);
        raw.expect_close_after(&[]);
        bystander_still_served(&mut bystander);
    }
    let mut publisher = Raw::connected(&server, "publisher");
    publisher.send(&publish("news", b"still delivered"));
    assert_eq!(bystander.next(), publish("news", b"still delivered"));
}

#[test]
fn an_oversized_packet_is_refused_from_its_header() {
    let server = start("maxRequestSize = \"1KB\"\nallowPubSub = true");
    let mut bystander = Raw::connected(&server, "bystander");
    let mut raw = Raw::connected(&server, "big");
    // Only the fixed header of a 2 KB PUBLISH: the server closes without waiting for the body.
    raw.send(&[0x30, 0x80, 0x10]);
    raw.expect_close_after(&[]);
    // At the limit is fine.
    let mut raw = Raw::connected(&server, "fits");
    let payload = vec![b'x'; 1024 - 8];
    let fits = publish("a/b", &payload);
    assert_eq!(fits.len(), 1024);
    raw.send(&fits);
    raw.send(&PINGREQ);
    assert_eq!(raw.next(), PINGRESP);
    bystander_still_served(&mut bystander);
}

#[test]
fn kuzzles_rules_refuse_by_closing_or_in_suback() {
    let server = start("");
    let mut bystander = Raw::connected(&server, "bystander");
    // Subscribing to requestTopic, or to a wildcard without allowPubSub: 0x80 in SUBACK.
    let mut raw = Raw::connected(&server, "subscriber");
    for filter in ["Kuzzle/request", "#", "a/+"] {
        raw.send(&subscribe(filter));
        assert_eq!(raw.next(), [0x90, 3, 0, 1, 0x80], "{filter}");
    }
    raw.send(&subscribe("Kuzzle/response"));
    assert_eq!(raw.next(), [0x90, 3, 0, 1, 0]);
    // Publishing to responseTopic, or to any other topic without allowPubSub: closed.
    for topic in ["Kuzzle/response", "some/topic"] {
        let mut raw = Raw::connected(&server, topic);
        raw.send(&publish(topic, b"{}"));
        raw.expect_close_after(&[]);
    }
    bystander_still_served(&mut bystander);
}

#[test]
fn a_request_that_is_not_json_gets_an_error_response_and_the_connection_stays() {
    let server = start("");
    let mut raw = Raw::connected(&server, "client");
    raw.send(&publish("Kuzzle/request", b"not json"));
    let (topic, payload) = publish_parts(&raw.next());
    assert_eq!(topic, "Kuzzle/response");
    let response: Value = serde_json::from_slice(&payload).expect("JSON");
    assert_eq!(response["status"], 400);
    assert_eq!(response["error"]["id"], "network.mqtt.unexpected_error");
    assert!(
        response["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Caught an unexpected MQTT error: invalid JSON"),
        "{response}"
    );
    raw.send(&PINGREQ);
    assert_eq!(raw.next(), PINGRESP);
}

#[test]
fn a_silent_client_is_closed_after_one_and_a_half_keep_alives_and_its_will_published() {
    let server = start("allowPubSub = true");
    let mut watcher = Raw::connected(&server, "watcher");
    watcher.send(&subscribe("status/sleepy"));
    watcher.next();
    let mut sleepy = Raw::open(&server);
    // keep-alive 1 s, will (QoS 0) "status/sleepy" = "lost".
    sleepy.send(&connect(
        "MQTT",
        4,
        0x06,
        1,
        "sleepy",
        &["status/sleepy", "lost"],
    ));
    assert_eq!(sleepy.next(), CONNACK_OK);
    let connected = Instant::now();
    sleepy.expect_close_after(&[]);
    let waited = connected.elapsed();
    assert!(
        waited >= Duration::from_millis(1400),
        "closed after {waited:?}"
    );
    assert_eq!(watcher.next(), publish("status/sleepy", b"lost"));
}

#[test]
fn a_second_connect_with_the_same_client_id_takes_the_session_over() {
    let server = start("");
    let mut first = Raw::connected(&server, "same-id");
    let mut second = Raw::connected(&server, "same-id");
    first.expect_close_after(&[]);
    second.send(&PINGREQ);
    assert_eq!(second.next(), PINGRESP);
}

#[test]
fn a_subscriber_that_stops_reading_is_cut_off_and_others_keep_receiving() {
    let server = start("allowPubSub = true\nmaxQueuedMessages = 50\nmaxQueuedBytes = \"256KB\"");
    let mut slow = Raw::connected(&server, "slow");
    slow.send(&subscribe("feed"));
    assert_eq!(slow.next(), [0x90, 3, 0, 1, 0]);
    let mut fast = Raw::connected(&server, "fast");
    fast.send(&subscribe("feed"));
    assert_eq!(fast.next(), [0x90, 3, 0, 1, 0]);
    let mut publisher = Raw::connected(&server, "publisher");
    // 16 MB in 64 KB messages: more than the slow reader's socket buffers and its queue hold.
    let message = publish("feed", &vec![b'x'; 64 * 1024]);
    for _ in 0..256 {
        publisher.send(&message);
        assert_eq!(fast.next(), message);
    }
    // The slow subscriber was disconnected: after whatever its socket buffered, end of stream
    // or a reset (which may discard what was buffered, so no count of it is asserted); a
    // subscriber still connected would make `fill` panic after 10 s without data.
    slow.stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    while slow.fill() > 0 {}
    publisher.send(&PINGREQ);
    assert_eq!(publisher.next(), PINGRESP);
}

/// Issue 13: a QoS 0 publisher sending 20,000 messages back to back to 100 subscribers of one
/// topic got 0.3–2 % delivered, the subscribers dropped. Now every subscriber that reads gets
/// every message, in order: past the high-water mark the publisher is left unread until the
/// writers caught up, and TCP pushes back on it.
#[test]
fn a_qos0_burst_reaches_every_reading_subscriber() {
    const SUBSCRIBERS: usize = 100;
    const MESSAGES: usize = 20_000;
    // Marks small enough that the burst is paced many times over.
    let server = start("allowPubSub = true\nhighWaterMark = \"512KB\"\nlowWaterMark = \"128KB\"");
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let subscribers: Vec<_> = (0..SUBSCRIBERS)
        .map(|n| {
            let mut client = Raw::connected(&server, &format!("sub{n}"));
            let ready = ready_tx.clone();
            std::thread::spawn(move || {
                client.send(&subscribe("burst"));
                assert_eq!(client.next(), [0x90, 3, 0, 1, 0]);
                ready.send(()).unwrap();
                let mut numbers = Vec::with_capacity(MESSAGES);
                while numbers.len() < MESSAGES {
                    let (topic, payload) = publish_parts(&client.next());
                    assert_eq!(topic, "burst");
                    numbers.push(
                        String::from_utf8(payload)
                            .unwrap()
                            .trim()
                            .parse::<usize>()
                            .unwrap(),
                    );
                }
                numbers
            })
        })
        .collect();
    for _ in 0..SUBSCRIBERS {
        ready
            .recv_timeout(Duration::from_secs(30))
            .expect("every subscriber subscribed within 30 s");
    }
    let mut publisher = Raw::connected(&server, "publisher");
    let started = Instant::now();
    let mut burst = Vec::with_capacity(MESSAGES * 110);
    for n in 0..MESSAGES {
        burst.extend(publish("burst", format!("{n:<100}").as_bytes()));
    }
    publisher.send(&burst);
    for subscriber in subscribers {
        let numbers = subscriber.join().expect("a subscriber");
        assert_eq!(numbers, (0..MESSAGES).collect::<Vec<_>>());
    }
    println!(
        "{MESSAGES} × {SUBSCRIBERS} delivered in {:?}",
        started.elapsed()
    );
    publisher.send(&PINGREQ);
    assert_eq!(publisher.next(), PINGRESP);
    assert!(
        !server.log().contains("slow consumer closed"),
        "{}",
        server.log()
    );
}

#[test]
fn sigterm_closes_mqtt_clients_and_the_host_exits_cleanly() {
    let server = start("");
    let mut client = Raw::connected(&server, "stays");
    client.send(&subscribe("Kuzzle/response"));
    client.next();
    server.signal(nix::sys::signal::Signal::SIGTERM);
    client.expect_close_after(&[]);
    let status = server.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "{status}");
}

/// Issue 13, cross-protocol pacing: Kuzzle `realtime:publish` requests sent back to back over
/// MQTT fan out to WebSocket subscribers; the WebSocket instance's pressure paces them in the
/// host, the MQTT connection stops being read at `maxPendingRequests`, and every subscriber
/// that reads gets every notification, with a 1 MB cap per subscriber.
#[test]
fn an_mqtt_publisher_is_paced_by_websocket_subscribers_pressure() {
    const SUBSCRIBERS: usize = 50;
    const PUBLISHES: usize = 3_000;
    // A paced publish may wait behind the others longer than the default 5 s on a loaded
    // machine (the 503 is tested in flow.rs): the timeout is raised.
    let server = Server::start(&format!(
        "[server]\npacingTimeout = 60000\n{}{}",
        protocol_section("mqtt", "mqtt", "port = 0\naddress = \"127.0.0.1\""),
        protocol_section(
            "websocket",
            "websocket",
            "port = 0\naddress = \"127.0.0.1\"\nhighWaterMark = \"256KB\"\nlowWaterMark = \"64KB\"\nmaxQueuedBytes = \"1MB\""
        )
    ));
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let subscribers: Vec<_> = (0..SUBSCRIBERS)
        .map(|_| {
            let (mut client, _) =
                tungstenite::connect(server.url("websocket")).expect("connect");
            if let tungstenite::stream::MaybeTlsStream::Plain(stream) = client.get_ref() {
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
            }
            let ready = ready_tx.clone();
            std::thread::spawn(move || {
                client
                    .send(tungstenite::Message::text(
                        r#"{"controller":"realtime","action":"subscribe","index":"i","collection":"c","body":{},"requestId":"s"}"#,
                    ))
                    .unwrap();
                let mut next = || -> Value {
                    loop {
                        match client.read().expect("a message within 10 s") {
                            tungstenite::Message::Text(text) => {
                                return serde_json::from_str(text.as_str()).expect("JSON")
                            }
                            tungstenite::Message::Ping(_) => continue,
                            other => panic!("expected text, got {other:?}"),
                        }
                    }
                };
                let answer = next();
                assert_eq!(answer["status"], 200, "{answer}");
                ready.send(()).unwrap();
                let mut numbers: Vec<u64> = (0..PUBLISHES)
                    .map(|_| {
                        let notification = next();
                        notification["result"]["_source"]["n"]
                            .as_u64()
                            .unwrap_or_else(|| panic!("a notification: {notification}"))
                    })
                    .collect();
                numbers.sort_unstable();
                numbers
            })
        })
        .collect();
    for _ in 0..SUBSCRIBERS {
        ready
            .recv_timeout(Duration::from_secs(30))
            .expect("every subscriber subscribed within 30 s");
    }
    let mut publisher = Raw::connected(&server, "publisher");
    let mut writer = Raw {
        stream: publisher.stream.try_clone().unwrap(),
        buffer: Vec::new(),
    };
    let sending = std::thread::spawn(move || {
        let pad = "x".repeat(100);
        for n in 0..PUBLISHES {
            let request = format!(
                r#"{{"controller":"realtime","action":"publish","index":"i","collection":"c","body":{{"n":{n},"pad":"{pad}"}},"requestId":"p{n}"}}"#
            );
            writer.send(&publish("Kuzzle/request", request.as_bytes()));
        }
    });
    for _ in 0..PUBLISHES {
        let (topic, payload) = publish_parts(&publisher.next());
        assert_eq!(topic, "Kuzzle/response");
        let response: Value = serde_json::from_slice(&payload).expect("JSON");
        assert_eq!(response["status"], 200, "{response}");
    }
    sending.join().expect("the publisher's writer");
    for subscriber in subscribers {
        let numbers = subscriber.join().expect("a subscriber");
        assert_eq!(numbers, (0..PUBLISHES as u64).collect::<Vec<_>>());
    }
    assert!(
        !server.log().contains("slow consumer closed"),
        "{}",
        server.log()
    );
}

/// A QoS 0 PUBLISH with RETAIN set.
fn publish_retained(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = string(topic);
    body.extend_from_slice(payload);
    packet(0x31, &body)
}

/// The topic and payload of a QoS 0 PUBLISH, whatever its RETAIN flag, and the flag.
fn publish_parts_retain(packet: &[u8]) -> (String, Vec<u8>, bool) {
    let retain = packet[0] & 1 == 1;
    let mut plain = packet.to_vec();
    plain[0] &= !1;
    let (topic, payload) = publish_parts(&plain);
    (topic, payload, retain)
}

/// Waits until every packet `raw` sent before is handled (packets on one connection are
/// handled in order, and PINGRESP answers the last one).
fn sync(raw: &mut Raw) {
    raw.send(&PINGREQ);
    assert_eq!(raw.next(), PINGRESP);
}

/// What a new subscriber to `filter` receives as retained messages, sorted by topic: everything
/// between the SUBACK of `filter` and the SUBACK of a second SUBSCRIBE (the broker sends
/// retained messages right after their SUBACK, before handling the next packet).
fn retained_for(server: &Server, filter: &str) -> Vec<(String, Vec<u8>)> {
    let mut raw = Raw::connected(server, "late");
    raw.send(&subscribe(filter));
    assert_eq!(raw.next(), [0x90, 3, 0, 1, 0]);
    raw.send(&subscribe("marker/done"));
    let mut retained = Vec::new();
    for _ in 0..100 {
        let packet = raw.next();
        if packet == [0x90, 3, 0, 1, 0] {
            retained.sort();
            return retained;
        }
        let (topic, payload, retain) = publish_parts_retain(&packet);
        assert!(retain, "a retained message arrives with RETAIN set");
        retained.push((topic, payload));
    }
    panic!("no second SUBACK after 100 packets");
}

#[test]
fn issue_19_retained_messages_over_max_retained_messages_are_delivered_not_kept() {
    let server = start("allowPubSub = true\nmaxRetainedMessages = 2");
    let mut live = Raw::connected(&server, "live");
    live.send(&subscribe("r/+"));
    assert_eq!(live.next(), [0x90, 3, 0, 1, 0]);
    let mut publisher = Raw::connected(&server, "publisher");
    for (topic, payload) in [("r/1", "one"), ("r/2", "two"), ("r/3", "three")] {
        publisher.send(&publish_retained(topic, payload.as_bytes()));
    }
    sync(&mut publisher);
    // Every message reaches the live subscriber, the third one too.
    for expected in ["r/1", "r/2", "r/3"] {
        let (topic, _, retain) = publish_parts_retain(&live.next());
        assert_eq!((topic.as_str(), retain), (expected, false));
    }
    let topics = |messages: Vec<(String, Vec<u8>)>| -> Vec<String> {
        messages.into_iter().map(|(topic, _)| topic).collect()
    };
    assert_eq!(topics(retained_for(&server, "r/+")), ["r/1", "r/2"]);
    // Clearing one makes room for another.
    publisher.send(&publish_retained("r/1", b""));
    publisher.send(&publish_retained("r/3", b"three"));
    sync(&mut publisher);
    assert_eq!(
        retained_for(&server, "r/+"),
        [
            ("r/2".to_string(), b"two".to_vec()),
            ("r/3".to_string(), b"three".to_vec())
        ]
    );
    // The live subscriber got both, the clearing message too.
    for expected in [("r/1", &b""[..]), ("r/3", b"three")] {
        let (topic, payload, _) = publish_parts_retain(&live.next());
        assert_eq!((topic.as_str(), payload.as_slice()), expected);
    }
    bystander_still_served(&mut live);
}

#[test]
fn issue_19_retained_messages_over_max_retained_bytes_are_not_kept() {
    let server = start("allowPubSub = true\nmaxRetainedBytes = \"1KB\"");
    let mut publisher = Raw::connected(&server, "publisher");
    // 3 + 1000 bytes: kept; 5 + 100 more would make 1108 > 1024: not kept.
    publisher.send(&publish_retained("r/a", &[b'a'; 1000]));
    publisher.send(&publish_retained("r/bb", &[b'b'; 100]));
    sync(&mut publisher);
    let kept = retained_for(&server, "r/+");
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].0, "r/a");
    // A replacement too large is not kept, and the message it supersedes is gone.
    publisher.send(&publish_retained("r/a", &[b'A'; 2000]));
    sync(&mut publisher);
    assert_eq!(retained_for(&server, "r/+"), []);
    // The room is back.
    publisher.send(&publish_retained("r/bb", &[b'b'; 100]));
    sync(&mut publisher);
    assert_eq!(
        retained_for(&server, "r/+"),
        [("r/bb".to_string(), vec![b'b'; 100])]
    );
}

#[test]
fn issue_19_a_packet_trickled_a_byte_at_a_time_does_not_outlive_the_keep_alive() {
    let server = start("");
    let mut raw = Raw::open(&server);
    raw.send(&connect("MQTT", 4, 0x02, 1, "trickler", &[]));
    assert_eq!(raw.next(), CONNACK_OK);
    // Each read waiting this long paces the trickle: 6 bytes per keep-alive window (1.5 s).
    raw.stream
        .set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    // A PUBLISH announcing 100 bytes, sent a byte at a time and never completed.
    raw.send(&[0x30, 100, 0, 1, b'x']);
    let mut chunk = [0u8; 64];
    for _ in 0..40 {
        match raw.stream.read(&mut chunk) {
            // Closed without an answer: MQTT 3.1.1 has no packet for it.
            Ok(0) => return,
            Err(error) if error.kind() == ErrorKind::ConnectionReset => return,
            Ok(read) => panic!("unexpected bytes {:?}", &chunk[..read]),
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                raw.send(b"y");
            }
            Err(error) => panic!("expected a close, got {error}"),
        }
    }
    panic!("still open after 40 bytes trickled over 10 s with a 1 s keep-alive");
}

/// A Kuzzle request of exactly `size` bytes (`server:now`, padded), as a PUBLISH to
/// `Kuzzle/request`.
fn padded_request(id: &str, size: usize) -> Vec<u8> {
    let mut text = format!(r#"{{"controller":"server","action":"now","requestId":"{id}","pad":""#)
        .into_bytes();
    text.resize(size - 2, b'x');
    text.extend_from_slice(b"\"}");
    publish("Kuzzle/request", &text)
}

/// The `requestId` of the next packet, a response on `Kuzzle/response`.
fn response_id(raw: &mut Raw) -> String {
    let (topic, payload) = publish_parts(&raw.next());
    assert_eq!(topic, "Kuzzle/response");
    let response: Value = serde_json::from_slice(&payload).expect("JSON");
    assert_eq!(response["status"], 200, "{response}");
    response["requestId"].as_str().unwrap().to_string()
}

/// Which of two connections the server closes (end of stream or reset, no bytes), reading
/// both in turn for at most 10 s.
fn which_is_closed(clients: &mut [Raw; 2]) -> usize {
    for client in clients.iter() {
        client
            .stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        for (index, client) in clients.iter_mut().enumerate() {
            let mut chunk = [0u8; 64];
            match client.stream.read(&mut chunk) {
                Ok(0) => return index,
                Err(error) if error.kind() == ErrorKind::ConnectionReset => return index,
                Ok(read) => panic!("unexpected bytes {:?}", &chunk[..read]),
                Err(error)
                    if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(error) => panic!("reading: {error}"),
            }
        }
    }
    panic!("neither connection was closed within 10 s");
}

#[test]
fn issue_19_unfinished_packets_past_max_total_partial_bytes_are_refused_by_closing() {
    let server = start("maxTotalPartialBytes = \"1MB\"");
    let requests = [
        padded_request("a", 700 * 1024),
        padded_request("b", 700 * 1024),
    ];
    let mut clients = [Raw::connected(&server, "a"), Raw::connected(&server, "b")];
    // 600 KB of each: 1.2 MB unfinished, over the 1 MB total. Whichever the server reads
    // second is closed (MQTT 3.1.1 has no packet to say why); the other is kept.
    for (client, request) in clients.iter_mut().zip(&requests) {
        client.send(&request[..600 * 1024]);
    }
    let closed = which_is_closed(&mut clients);
    let kept = 1 - closed;
    clients[kept]
        .stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // Small packets still get through.
    let mut small = Raw::connected(&server, "small");
    small.send(&padded_request("small", 200));
    assert_eq!(response_id(&mut small), "small");
    // The kept client finishes its packet and is answered.
    clients[kept].send(&requests[kept][600 * 1024..]);
    let expected = ["a", "b"][kept];
    assert_eq!(response_id(&mut clients[kept]), expected);
    // Every byte was given back: a whole 700 KB packet goes through now.
    let mut third = Raw::connected(&server, "c");
    third.send(&padded_request("c", 700 * 1024));
    assert_eq!(response_id(&mut third), "c");
}
