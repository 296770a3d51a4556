//! The WebSocket plugin end to end, with clients that misbehave below what a WebSocket library
//! lets one do: a raw TCP client that writes its own frames (protocol violations, pings, close
//! frames) and one that stops reading (the slow consumer), through the real `switchyard` binary.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::{protocol_section, Server};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

pub(crate) const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONTINUATION: u8 = 0x0;
pub(crate) const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// The RFC 6455 example key and its accept value.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

fn start(websocket_keys: &str) -> Server {
    Server::start(&format!(
        "[server]\n{}",
        protocol_section(
            "websocket",
            "websocket",
            &format!("port = 0\naddress = \"127.0.0.1\"\n{websocket_keys}")
        )
    ))
}

/// A client that writes raw frames and reads raw frames.
pub(crate) struct Raw {
    pub(crate) stream: TcpStream,
    /// Bytes read but not consumed yet.
    buffer: Vec<u8>,
}

/// A frame from the server.
#[derive(Debug, PartialEq)]
pub(crate) struct Frame {
    fin: bool,
    pub(crate) opcode: u8,
    pub(crate) payload: Vec<u8>,
}

impl Frame {
    fn text(&self) -> &str {
        assert_eq!(self.opcode, TEXT, "{self:?}");
        std::str::from_utf8(&self.payload).expect("UTF-8")
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(self.text()).expect("JSON")
    }

    /// `(code, reason)` of a close frame.
    pub(crate) fn close(&self) -> (u16, String) {
        assert_eq!(self.opcode, CLOSE, "expected a close frame, got {self:?}");
        assert!(self.payload.len() >= 2, "{self:?}");
        (
            u16::from_be_bytes([self.payload[0], self.payload[1]]),
            String::from_utf8(self.payload[2..].to_vec()).expect("UTF-8 reason"),
        )
    }
}

impl Raw {
    /// Connects and completes the opening handshake.
    pub(crate) fn connect(server: &Server) -> Raw {
        Raw::connect_with(server, "")
    }

    /// Connects and completes the opening handshake, with `headers` (each ending in CRLF)
    /// added to the upgrade request.
    fn connect_with(server: &Server, headers: &str) -> Raw {
        let stream = TcpStream::connect(server.address("websocket")).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut raw = Raw {
            stream,
            buffer: Vec::new(),
        };
        raw.write(
            format!(
                "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{headers}\r\n"
            )
            .as_bytes(),
        );
        let end = loop {
            if let Some(end) = raw.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            assert!(raw.fill(), "the server closed during the handshake");
        };
        let response = String::from_utf8(raw.buffer.drain(..end).collect()).unwrap();
        assert!(
            response.starts_with("HTTP/1.1 101 "),
            "not a 101 response: {response}"
        );
        assert!(
            response.contains(&format!("Sec-WebSocket-Accept: {ACCEPT}\r\n")),
            "{response}"
        );
        raw
    }

    /// How long a read may wait before the test fails (10 s from `connect`).
    pub(crate) fn read_timeout(self, timeout: Duration) -> Raw {
        self.stream
            .set_read_timeout(Some(timeout))
            .expect("set the read timeout");
        self
    }

    /// A second handle on the same socket, to write from another thread while this one reads.
    pub(crate) fn writer(&self) -> Raw {
        Raw {
            stream: self.stream.try_clone().expect("clone the socket"),
            buffer: Vec::new(),
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the server");
    }

    /// Reads more bytes; false at end of stream.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(read) => {
                self.buffer.extend_from_slice(&chunk[..read]);
                true
            }
            Err(error) if error.kind() == ErrorKind::ConnectionReset => false,
            Err(error) => panic!("reading from the server failed: {error}"),
        }
    }

    fn take(&mut self, count: usize) -> Option<Vec<u8>> {
        while self.buffer.len() < count {
            if !self.fill() {
                return None;
            }
        }
        Some(self.buffer.drain(..count).collect())
    }

    /// The next frame, or `None` at end of stream.
    pub(crate) fn frame(&mut self) -> Option<Frame> {
        let header = self.take(2)?;
        assert_eq!(header[1] & 0x80, 0, "server frames are never masked");
        let length = match header[1] & 0x7F {
            126 => u16::from_be_bytes(self.take(2)?.try_into().unwrap()) as usize,
            127 => u64::from_be_bytes(self.take(8)?.try_into().unwrap()) as usize,
            length => length as usize,
        };
        Some(Frame {
            fin: header[0] & 0x80 != 0,
            opcode: header[0] & 0x0F,
            payload: self.take(length)?,
        })
    }

    pub(crate) fn expect_frame(&mut self) -> Frame {
        self.frame().expect("a frame before the end of the stream")
    }

    /// Expects a close frame with `code` and `reason`, then the end of the stream.
    fn expect_close(&mut self, code: u16, reason: &str) {
        let frame = self.expect_frame();
        assert_eq!(frame.close(), (code, reason.to_string()));
        assert_eq!(self.frame(), None, "nothing may follow a close frame");
    }

    /// Writes one frame: `first` is the first byte (FIN, RSV, opcode); masked unless `unmasked`.
    fn send_raw(&mut self, first: u8, payload: &[u8], unmasked: bool) {
        let mut frame = vec![first];
        let mask_bit = if unmasked { 0 } else { 0x80 };
        match payload.len() {
            length @ 0..=125 => frame.push(mask_bit | length as u8),
            length @ 126..=0xFFFF => {
                frame.push(mask_bit | 126);
                frame.extend_from_slice(&(length as u16).to_be_bytes());
            }
            length => {
                frame.push(mask_bit | 127);
                frame.extend_from_slice(&(length as u64).to_be_bytes());
            }
        }
        if unmasked {
            frame.extend_from_slice(payload);
        } else {
            let mask = [0x37, 0xfa, 0x21, 0x3d];
            frame.extend_from_slice(&mask);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        self.write(&frame);
    }

    /// Writes one complete (FIN) masked frame.
    pub(crate) fn send(&mut self, opcode: u8, payload: &[u8]) {
        self.send_raw(0x80 | opcode, payload, false);
    }
}

#[test]
fn each_protocol_violation_closes_with_its_code_and_reason() {
    let server = start("");
    let close_payload = |code: u16, reason: &str| {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_bytes());
        payload
    };
    // (what, frames to send as (first byte, payload, unmasked), expected code, expected reason)
    type Frames = Vec<(u8, Vec<u8>, bool)>;
    let cases: Vec<(&str, Frames, u16, &str)> = vec![
        (
            "text that is not UTF-8",
            vec![(0x80 | TEXT, b"{\"a\":\"\xff\xfe\"}".to_vec(), false)],
            1007,
            "invalid UTF-8 in text message",
        ),
        (
            "a continuation that makes the text invalid UTF-8",
            vec![
                (TEXT, b"\xc3".to_vec(), false),
                (CONTINUATION, b"(".to_vec(), false),
            ],
            1007,
            "invalid UTF-8 in text message",
        ),
        (
            "an unmasked frame",
            vec![(0x80 | TEXT, br#"{"p":1}"#.to_vec(), true)],
            1002,
            "client frames must be masked",
        ),
        (
            "RSV1 without permessage-deflate",
            vec![(0x80 | 0x40 | TEXT, br#"{"p":1}"#.to_vec(), false)],
            1002,
            "reserved bits set",
        ),
        (
            "RSV2",
            vec![(0x80 | 0x20 | TEXT, br#"{"p":1}"#.to_vec(), false)],
            1002,
            "reserved bits set",
        ),
        (
            "a reserved data opcode",
            vec![(0x80 | 0x3, b"x".to_vec(), false)],
            1002,
            "reserved opcode",
        ),
        (
            "a reserved control opcode",
            vec![(0x80 | 0xB, b"x".to_vec(), false)],
            1002,
            "reserved opcode",
        ),
        (
            "a fragmented ping",
            vec![(PING, b"x".to_vec(), false)],
            1002,
            "fragmented control frame",
        ),
        (
            "a ping over 125 bytes",
            vec![(0x80 | PING, vec![b'x'; 126], false)],
            1002,
            "control frame too long",
        ),
        (
            "a continuation without a message",
            vec![(0x80 | CONTINUATION, b"x".to_vec(), false)],
            1002,
            "continuation frame without a message to continue",
        ),
        (
            "a new message inside a fragmented one",
            vec![
                (TEXT, b"{\"p\"".to_vec(), false),
                (0x80 | TEXT, b"{}".to_vec(), false),
            ],
            1002,
            "new message before the previous one ended",
        ),
        (
            "a close frame with a 1-byte payload",
            vec![(0x80 | CLOSE, vec![3], false)],
            1002,
            "close frame with a 1-byte payload",
        ),
        (
            "a close code reserved for endpoints' own use (1005)",
            vec![(0x80 | CLOSE, close_payload(1005, ""), false)],
            1002,
            "invalid close code",
        ),
        (
            "a close code below 1000",
            vec![(0x80 | CLOSE, close_payload(999, ""), false)],
            1002,
            "invalid close code",
        ),
        (
            "a close reason that is not UTF-8",
            vec![(0x80 | CLOSE, [&[0x03, 0xE8][..], b"\xff"].concat(), false)],
            1007,
            "invalid UTF-8 in text message",
        ),
        // Well-formed closes are echoed with the client's code (1000 when it gave none).
        (
            "a close frame with code 4000",
            vec![(0x80 | CLOSE, close_payload(4000, "bye"), false)],
            4000,
            "",
        ),
        (
            "a close frame without a code",
            vec![(0x80 | CLOSE, Vec::new(), false)],
            1000,
            "",
        ),
    ];
    for (what, frames, code, reason) in cases {
        let mut client = Raw::connect(&server);
        for (first, payload, unmasked) in &frames {
            client.send_raw(*first, payload, *unmasked);
        }
        let frame = client.expect_frame();
        assert_eq!(
            frame.close(),
            (code, reason.to_string()),
            "{what}: wrong close"
        );
        assert_eq!(client.frame(), None, "{what}: something followed the close");
    }
    // The server still serves new clients.
    let mut client = Raw::connect(&server);
    client.send(TEXT, br#"{"p":1}"#);
    assert_eq!(client.expect_frame().text(), r#"{"p":2}"#);
}

#[test]
fn every_ping_form_is_answered() {
    let server = start("");
    let mut client = Raw::connect(&server);
    // The application ping: exactly {"p":1}, even when fragmented.
    client.send(TEXT, br#"{"p":1}"#);
    assert_eq!(client.expect_frame().text(), r#"{"p":2}"#);
    client.send_raw(TEXT, br#"{"p""#, false);
    client.send_raw(0x80 | CONTINUATION, b":1}", false);
    assert_eq!(client.expect_frame().text(), r#"{"p":2}"#);
    // Ping frames: empty, with a payload, the largest allowed, and in the middle of a
    // fragmented message (control frames may be interleaved).
    for payload in [&b""[..], b"heartbeat", &[0x5a; 125]] {
        client.send(PING, payload);
        assert_eq!(
            client.expect_frame(),
            Frame {
                fin: true,
                opcode: PONG,
                payload: payload.to_vec()
            }
        );
    }
    client.send_raw(TEXT, br#"{"controller":"server","#, false);
    client.send(PING, b"between");
    assert_eq!(client.expect_frame().payload, b"between");
    // An unsolicited pong is ignored.
    client.send(PONG, b"unsolicited");
    client.send_raw(
        0x80 | CONTINUATION,
        br#""action":"now","requestId":"fragmented"}"#,
        false,
    );
    let answer = client.expect_frame().json();
    assert_eq!(answer["room"], "fragmented");
    assert_eq!(answer["status"], 200);
    // A binary {"p":1} is not a ping: binary frames are refused with an error response.
    client.send(BINARY, br#"{"p":1}"#);
    let answer = client.expect_frame().json();
    assert_eq!(answer["error"]["id"], "network.websocket.unexpected_error");
}

#[test]
fn pings_keep_an_idle_connection_open_and_the_idle_close_removes_its_subscriptions() {
    // The watcher connects to a second listener, without the short idle timeout.
    let server = Server::start(&format!(
        "[server]\n{}{}",
        protocol_section(
            "websocket",
            "websocket",
            "port = 0\naddress = \"127.0.0.1\"\nidleTimeout = 1000"
        ),
        protocol_section("watch", "websocket", "port = 0\naddress = \"127.0.0.1\"")
    ));
    let (mut watcher, _) = tungstenite::connect(server.url("watch")).expect("connect");
    if let MaybeTlsStream::Plain(stream) = watcher.get_ref() {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
    }
    let (room, _) = subscribe_ws(&mut watcher, r#","users":"out""#, "watcher");
    let mut client = Raw::connect(&server);
    client.send(
        TEXT,
        br#"{"controller":"realtime","action":"subscribe","index":"i","collection":"c","body":{},"requestId":"idle"}"#,
    );
    assert_eq!(client.expect_frame().json()["room"], "idle");
    // Three pings 400 ms apart: 1.6 s without requests, never 1 s without a frame.
    let opened = Instant::now();
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(400));
        client.send(PING, b"");
        assert_eq!(client.expect_frame().opcode, PONG);
    }
    assert!(opened.elapsed() >= Duration::from_millis(1600));
    // Then silence: closed with 1001 about 1 s after the last ping.
    let silent = Instant::now();
    client.expect_close(1001, "idle timeout");
    let waited = silent.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );
    // Its subscription went with it: the watcher hears it leave.
    let left = next_json(&mut watcher);
    assert_eq!(left["type"], "user", "{left}");
    assert_eq!(left["user"], "out");
    assert_eq!(left["result"]["count"], 1);
    watcher
        .send(Message::text(format!(
            r#"{{"controller":"realtime","action":"count","body":{{"roomId":"{room}"}},"requestId":"count"}}"#
        )))
        .unwrap();
    assert_eq!(next_json(&mut watcher)["result"], json!({"count": 1}));
}

type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

fn connect_ws(server: &Server) -> Ws {
    let (client, _) = tungstenite::connect(server.url("websocket")).expect("connect");
    if let MaybeTlsStream::Plain(stream) = client.get_ref() {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
    }
    client
}

fn next_json(client: &mut Ws) -> Value {
    loop {
        match client.read().expect("a message within 10 s") {
            Message::Text(text) => return serde_json::from_str(text.as_str()).expect("JSON"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// Subscribes to everything in i/c; returns (roomId, channel).
fn subscribe_ws(client: &mut Ws, extra: &str, request_id: &str) -> (String, String) {
    client
        .send(Message::text(format!(
            r#"{{"controller":"realtime","action":"subscribe","index":"i","collection":"c","body":{{}}{extra},"requestId":"{request_id}"}}"#
        )))
        .unwrap();
    let answer = next_json(client);
    assert_eq!(answer["status"], 200, "{answer}");
    (
        answer["result"]["roomId"].as_str().unwrap().to_string(),
        answer["result"]["channel"].as_str().unwrap().to_string(),
    )
}

/// Sends a request and returns its answer, skipping notifications.
fn request(client: &mut Ws, request: Value) -> Value {
    let id = request["requestId"]
        .as_str()
        .expect("a requestId")
        .to_string();
    client.send(Message::text(request.to_string())).unwrap();
    loop {
        let answer = next_json(client);
        if answer["room"] == id.as_str() {
            return answer;
        }
    }
}

#[test]
fn a_slow_consumer_is_closed_with_1011_and_nobody_else_notices() {
    let server = start("maxQueuedBytes = \"64KB\"");
    let mut publisher = connect_ws(&server);

    // The slow consumer subscribes, then stops reading.
    let mut slow = Raw::connect(&server);
    slow.send(
        TEXT,
        br#"{"controller":"realtime","action":"subscribe","index":"i","collection":"c","body":{},"requestId":"slow"}"#,
    );
    let answer = slow.expect_frame().json();
    let room = answer["result"]["roomId"].as_str().unwrap().to_string();

    // A well-behaved subscriber reads everything on its own thread.
    let mut good = connect_ws(&server);
    let (good_room, _) = subscribe_ws(&mut good, "", "good");
    assert_eq!(good_room, room);
    let reader = std::thread::spawn(move || {
        let mut numbers = Vec::new();
        loop {
            let notification = next_json(&mut good);
            let source = &notification["result"]["_source"];
            if source["last"] == true {
                break (numbers, good);
            }
            numbers.push(source["n"].as_u64().expect("a number"));
        }
    });

    let count = |publisher: &mut Ws| {
        let answer = request(
            publisher,
            json!({"controller":"realtime","action":"count","body":{"roomId":room},"requestId":"count"}),
        );
        answer["result"]["count"]
            .as_u64()
            .unwrap_or_else(|| panic!("a count: {answer}"))
    };
    assert_eq!(count(&mut publisher), 2);

    // Flood with 16 KB messages until the host no longer counts the slow consumer. Kernel
    // socket buffers absorb a few MB first; 4,000 messages (64 MB) is far beyond that.
    let pad = "x".repeat(16 * 1024);
    let mut published = 0u64;
    let flooded = Instant::now();
    loop {
        let answer = request(
            &mut publisher,
            json!({"controller":"realtime","action":"publish","index":"i","collection":"c",
                   "body":{"n":published,"pad":pad},"requestId":"publish"}),
        );
        assert_eq!(answer["result"], json!({"published": true}), "{answer}");
        published += 1;
        if published % 4 == 0 && count(&mut publisher) == 1 {
            break;
        }
        assert!(
            published < 4000,
            "the slow consumer was never dropped ({:?})",
            flooded.elapsed()
        );
    }

    // The slow consumer now reads: notifications (whatever the kernel held), then the close.
    let mut notifications = 0;
    let close = loop {
        let frame = slow
            .frame()
            .expect("a 1011 close frame before the end of the stream");
        match frame.opcode {
            TEXT => notifications += 1,
            CLOSE => break frame.close(),
            other => panic!("unexpected opcode {other}"),
        }
    };
    assert_eq!(
        close,
        (
            1011,
            "too much backpressure: client is too slow".to_string()
        )
    );
    assert_eq!(slow.frame(), None, "nothing may follow the close frame");
    assert!(
        (notifications as u64) < published,
        "the slow consumer got all {published} notifications"
    );

    // Everybody else carries on: the good subscriber got every message, in order.
    request(
        &mut publisher,
        json!({"controller":"realtime","action":"publish","index":"i","collection":"c",
               "body":{"last":true},"requestId":"publish"}),
    );
    let (numbers, _good) = reader.join().expect("the good subscriber's reader");
    assert_eq!(numbers, (0..published).collect::<Vec<_>>());
    assert_eq!(count(&mut publisher), 1);
}

#[test]
fn bad_handshakes_get_an_http_error_that_says_why() {
    let server = start("");
    let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\n";
    let key = format!("Sec-WebSocket-Key: {KEY}\r\n");
    let cases = [
        (
            "GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
            "426 Upgrade Required",
            "this port serves WebSocket connections only",
        ),
        (
            format!("POST / HTTP/1.1\r\nHost: x\r\n{upgrade}{key}Sec-WebSocket-Version: 13\r\n\r\n"),
            "405 Method Not Allowed",
            "a WebSocket handshake must use GET",
        ),
        (
            format!("GET / HTTP/1.0\r\nHost: x\r\n{upgrade}{key}Sec-WebSocket-Version: 13\r\n\r\n"),
            "400 Bad Request",
            "a WebSocket handshake must use HTTP/1.1",
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n{key}Sec-WebSocket-Version: 13\r\n\r\n"),
            "400 Bad Request",
            "missing \"Connection: Upgrade\"",
        ),
        (
            format!("GET / HTTP/1.1\r\n{upgrade}{key}Sec-WebSocket-Version: 13\r\n\r\n"),
            "400 Bad Request",
            "missing Host header",
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: x\r\n{upgrade}{key}Sec-WebSocket-Version: 8\r\n\r\n"),
            "426 Upgrade Required",
            "unsupported Sec-WebSocket-Version (this server speaks 13)",
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: x\r\n{upgrade}Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n"),
            "400 Bad Request",
            "missing or invalid Sec-WebSocket-Key",
        ),
        // Exactly 8 KB without the end of the headers: the server has read it all when it
        // refuses, so its close cannot turn into a reset that would eat the response.
        (
            {
                let head = format!("GET / HTTP/1.1\r\nHost: x\r\n{upgrade}{key}X-Padding: ");
                format!("{head}{}", "p".repeat(8 * 1024 - head.len()))
            },
            "431 Request Header Fields Too Large",
            "request too large",
        ),
    ];
    for (request, status, reason) in cases {
        let mut stream = TcpStream::connect(server.address("websocket")).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let response = String::from_utf8(response).expect("a UTF-8 response");
        assert!(
            response.starts_with(&format!("HTTP/1.1 {status}\r\n")),
            "{reason}: {response}"
        );
        assert!(
            response.ends_with(&format!("\r\n\r\n{reason}\n")),
            "{reason}: {response}"
        );
        assert!(response.contains("Connection: close\r\n"), "{response}");
        if status.starts_with("426") {
            assert!(
                response.contains("Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"),
                "{response}"
            );
        }
    }
    // A request that is not HTTP at all.
    let mut stream = TcpStream::connect(server.address("websocket")).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n")
        .unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    assert!(
        response.starts_with("HTTP/1.1 400 Bad Request\r\n")
            && response.contains("\r\n\r\nmalformed HTTP request: "),
        "{response}"
    );
}

/// A message compressed as permessage-deflate sends it (raw deflate, sync flush, the
/// `00 00 ff ff` tail removed).
fn permessage_deflate(message: &[u8]) -> Vec<u8> {
    let mut compressor = flate2::Compress::new(flate2::Compression::default(), false);
    let mut out = Vec::with_capacity(message.len() / 100 + 1024);
    let mut offset = 0;
    loop {
        out.reserve(64 * 1024);
        let before = compressor.total_in();
        compressor
            .compress_vec(&message[offset..], &mut out, flate2::FlushCompress::Sync)
            .unwrap();
        offset += (compressor.total_in() - before) as usize;
        if offset == message.len() && out.ends_with(&[0, 0, 0xff, 0xff]) {
            out.truncate(out.len() - 4);
            return out;
        }
    }
}

/// Issue 19 (minor): a 1 KB compressed frame inflates to about 1 MB. Past `inflateBudget`
/// bytes inflated in a second, the connection is closed with 1008 before inflating more.
#[test]
fn issue_19_compressed_messages_past_the_inflate_budget_close_with_1008() {
    let server = start("compression = true\ninflateBudget = \"2MB\"");
    let mut raw = Raw::connect_with(&server, "Sec-WebSocket-Extensions: permessage-deflate\r\n");
    // Ten 900 KB requests, each about 1 KB compressed, sent at once: two fit in 2 MB.
    const SENT: usize = 10;
    for n in 0..SENT {
        let mut request =
            format!(r#"{{"controller":"server","action":"now","requestId":"{n}","pad":""#)
                .into_bytes();
        request.resize(900 * 1024 - 2, b' ');
        request.extend_from_slice(b"\"}");
        let compressed = permessage_deflate(&request);
        assert!(compressed.len() < 2048, "{}", compressed.len());
        // FIN, RSV1 (compressed), text.
        raw.send_raw(0xc1, &compressed, false);
    }
    let mut answered = 0;
    let close = loop {
        let frame = raw.expect_frame();
        match frame.opcode {
            TEXT => answered += 1,
            CLOSE => break frame.close(),
            other => panic!("unexpected frame {other}: {frame:?}"),
        }
    };
    assert_eq!(
        close,
        (
            1008,
            "inflate budget exceeded: too much compressed data per second".to_string()
        )
    );
    // The answers to the two the budget allowed may be dropped with the close (a violation
    // discards what is queued); never all ten.
    assert!(answered <= 4, "{answered} answered");
}
