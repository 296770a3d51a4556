//! The WebSocket plugin end to end: the real `switchyard` binary loading `libwebsocket`, driven
//! by a plain WebSocket client (tungstenite). Exact error responses and close codes.

use std::net::TcpStream;
use std::time::Duration;

use nix::sys::signal::Signal;
use switchyard_tests::{protocol_section, run_config, Server};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

type Client = WebSocket<MaybeTlsStream<TcpStream>>;

fn start(server_keys: &str, websocket_keys: &str) -> Server {
    Server::start(&format!(
        "[server]\n{server_keys}\n{}",
        protocol_section(
            "websocket",
            "websocket",
            &format!("port = 0\naddress = \"127.0.0.1\"\n{websocket_keys}")
        )
    ))
}

fn connect(server: &Server) -> Client {
    let (client, response) = tungstenite::connect(server.url("websocket")).expect("connect");
    assert_eq!(response.status(), 101);
    if let MaybeTlsStream::Plain(stream) = client.get_ref() {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
    }
    client
}

/// The next data or close message (pings and pongs are skipped).
fn next(client: &mut Client) -> Message {
    loop {
        match client.read().expect("a message within 10 s") {
            Message::Ping(_) | Message::Pong(_) => continue,
            message => return message,
        }
    }
}

fn next_json(client: &mut Client) -> serde_json::Value {
    match next(client) {
        Message::Text(text) => serde_json::from_str(text.as_str()).expect("JSON"),
        other => panic!("expected text, got {other:?}"),
    }
}

fn expect_close(client: &mut Client, code: CloseCode, reason: &str) {
    match next(client) {
        Message::Close(Some(frame)) => {
            assert_eq!(frame.code, code);
            assert_eq!(frame.reason.as_str(), reason);
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[test]
fn server_now_answers_with_room_set_to_the_request_id() {
    let server = start("", "");
    let mut client = connect(&server);
    client
        .send(Message::text(
            r#"{"controller":"server","action":"now","requestId":"ws-1"}"#,
        ))
        .unwrap();
    let answer = next_json(&mut client);
    assert_eq!(answer["room"], "ws-1");
    assert_eq!(answer["requestId"], "ws-1");
    assert_eq!(answer["status"], 200);
    assert!(answer["result"]["now"].is_u64(), "{answer}");
}

#[test]
fn keep_alives_are_answered() {
    let server = start("", "");
    let mut client = connect(&server);
    client.send(Message::text(r#"{"p":1}"#)).unwrap();
    assert_eq!(next(&mut client), Message::text(r#"{"p":2}"#));
    client.send(Message::Ping(b"hb".to_vec().into())).unwrap();
    assert_eq!(client.read().unwrap(), Message::Pong(b"hb".to_vec().into()));
}

#[test]
fn bad_input_gets_kuzzles_error_responses() {
    let server = start("", "");
    let mut client = connect(&server);
    let error = |request_id: &str, detail: &str| {
        let room = if request_id == "null" {
            String::new()
        } else {
            format!(r#","room":{request_id}"#)
        };
        format!(
            r#"{{"requestId":{request_id},"status":400,"error":{{"message":"Caught an unexpected WebSocket error: {detail}","status":400,"id":"network.websocket.unexpected_error","code":50528257,"props":[]}},"controller":null,"action":null,"collection":null,"index":null,"volatile":null,"result":null{room}}}"#
        )
    };
    let cases = [
        (
            Message::text("{oops"),
            error(
                "null",
                "invalid JSON: key must be a string at line 1 column 2",
            ),
        ),
        (
            Message::text("[]"),
            error("null", "a request must be a JSON object"),
        ),
        (
            Message::Binary(br#"{"requestId":"bin"}"#.to_vec().into()),
            error(
                r#""bin""#,
                "binary frames are not supported: send each request as a JSON text frame",
            ),
        ),
    ];
    for (input, expected) in cases {
        client.send(input).unwrap();
        assert_eq!(next(&mut client), Message::text(expected));
    }
    // The connection still serves requests.
    client
        .send(Message::text(
            r#"{"controller":"server","action":"now","requestId":"after"}"#,
        ))
        .unwrap();
    assert_eq!(next_json(&mut client)["status"], 200);
}

/// A raw control character or a bad escape inside a string gets the plugin's own error (with
/// serde_json's words and column: 0-based for a control character, as its `IgnoredAny` reports
/// it), never the host's: also inside a token the connection sent
/// before, which the plugin remembers and compares instead of scanning (issue 15).
#[test]
fn bad_strings_get_the_plugins_error_even_in_a_remembered_token() {
    let server = start("", "");
    let mut client = connect(&server);
    let error = |detail: String| {
        format!(
            r#"{{"requestId":null,"status":400,"error":{{"message":"Caught an unexpected WebSocket error: invalid JSON: {detail}","status":400,"id":"network.websocket.unexpected_error","code":50528257,"props":[]}},"controller":null,"action":null,"collection":null,"index":null,"volatile":null,"result":null}}"#
        )
    };
    let token = format!("kauth-{}", "eyJfaWQiOiJiZW5jaCJ9.".repeat(10));
    let prefix = r#"{"controller":"server","action":"now","requestId":"r","jwt":""#;
    let control = |column: usize| {
        format!(
            "control character (\\\\u0000-\\\\u001F) found while parsing a string at line 1 column {column}"
        )
    };
    // Once as it is: valid JSON, so it reaches the host, which issued no such token.
    client
        .send(Message::text(format!("{prefix}{token}\"}}")))
        .unwrap();
    let answer = next_json(&mut client);
    assert_eq!(
        (&answer["status"], &answer["error"]["id"]),
        (
            &serde_json::json!(401),
            &serde_json::json!("security.token.invalid")
        ),
        "{answer}"
    );
    let end = prefix.len() + token.len();
    let cases = [
        (format!("{token}\u{1}"), control(end)),
        (
            format!("{token}\\x"),
            format!("invalid escape at line 1 column {}", end + 2),
        ),
        (format!("\u{1f}{token}"), control(prefix.len())),
        (
            format!("{}\u{0}{}", &token[..100], &token[100..]),
            control(prefix.len() + 100),
        ),
        (
            format!("{token}\\u12"),
            format!("invalid escape at line 1 column {}", end + 6),
        ),
    ];
    for (jwt, detail) in cases {
        client
            .send(Message::text(format!("{prefix}{jwt}\"}}")))
            .unwrap();
        assert_eq!(next(&mut client), Message::text(error(detail)), "{jwt:?}");
    }
}

#[test]
fn requests_past_the_rate_limit_get_429() {
    let server = start("", "rateLimit = 1");
    let mut client = connect(&server);
    for id in ["a", "b"] {
        client
            .write(Message::text(format!(
                r#"{{"controller":"server","action":"now","requestId":"{id}"}}"#
            )))
            .unwrap();
    }
    client.flush().unwrap();
    let mut answers: Vec<serde_json::Value> = (0..2).map(|_| next_json(&mut client)).collect();
    answers.sort_by_key(|answer| answer["room"].as_str().unwrap().to_string());
    assert_eq!(answers[0]["status"], 200);
    assert_eq!(
        answers[1],
        serde_json::json!({"requestId":"b","status":429,"error":{"message":"Rejected: too many requests received from that socket","status":429,"id":"network.websocket.ratelimit_exceeded","code":50528258,"props":[]},"controller":null,"action":null,"collection":null,"index":null,"volatile":null,"result":null,"room":"b"})
    );
}

#[test]
fn a_message_over_max_request_size_closes_with_1009() {
    let server = start("maxRequestSize = \"1KB\"", "");
    let mut client = connect(&server);
    client
        .send(Message::text(format!(r#"{{"x":"{}"}}"#, "y".repeat(2000))))
        .unwrap();
    expect_close(&mut client, CloseCode::Size, "message too big");
}

#[test]
fn idle_connections_are_closed_with_1001() {
    let server = start("", "idleTimeout = 1000");
    let mut client = connect(&server);
    expect_close(&mut client, CloseCode::Away, "idle timeout");
}

/// Writes raw bytes under tungstenite (a frame it would not send: unfinished).
fn write_raw(client: &mut Client, bytes: &[u8]) {
    use std::io::Write as _;
    let MaybeTlsStream::Plain(stream) = client.get_mut() else {
        unreachable!("plain TCP")
    };
    // The server may have closed already: a failed write shows up as the close frame.
    let _ = stream.write_all(bytes);
}

#[test]
fn issue_19_a_frame_trickled_a_byte_at_a_time_does_not_outlive_idle_timeout() {
    let server = start("", "idleTimeout = 1000");
    let mut client = connect(&server);
    if let MaybeTlsStream::Plain(stream) = client.get_ref() {
        // Each read waiting this long paces the trickle: 4 bytes per idleTimeout.
        stream
            .set_read_timeout(Some(Duration::from_millis(250)))
            .unwrap();
    }
    // A masked text frame announcing 100 bytes; its payload follows a byte at a time, never
    // completing it.
    write_raw(&mut client, &[0x81, 0x80 | 100, 1, 2, 3, 4]);
    for _ in 0..40 {
        match client.read() {
            Ok(Message::Close(Some(frame))) => {
                assert_eq!(frame.code, CloseCode::Away);
                assert_eq!(frame.reason.as_str(), "idle timeout");
                return;
            }
            Ok(other) => panic!("expected a close frame, got {other:?}"),
            Err(tungstenite::Error::Io(error))
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                write_raw(&mut client, b"x");
            }
            Err(error) => panic!("expected a close frame, got {error}"),
        }
    }
    panic!("still open after 40 bytes trickled over 10 s with idleTimeout = 1000");
}

/// A masked client frame (mask 0, so the payload is sent as is) with a 64-bit length.
fn raw_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![first, 0x80 | 127];
    frame.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(payload);
    frame
}

/// The answer to a ping sent after an unfinished message's first fragment: the pong, or the
/// close frame's code and reason.
fn pong_or_close(client: &mut Client) -> Result<(), (CloseCode, String)> {
    loop {
        match client.read().expect("a frame within 10 s") {
            Message::Pong(_) => return Ok(()),
            Message::Close(Some(frame)) => return Err((frame.code, frame.reason.to_string())),
            Message::Ping(_) => continue,
            other => panic!("expected a pong or a close, got {other:?}"),
        }
    }
}

#[test]
fn issue_19_unfinished_messages_past_max_total_partial_bytes_are_refused_with_1009() {
    let server = start("", "maxTotalPartialBytes = \"1MB\"");
    // A 700 KB request, in two fragments of 600 KB and 100 KB.
    let request = |id: &str| {
        let head = format!(r#"{{"controller":"server","action":"now","requestId":"{id}","pad":""#);
        let mut text = head.into_bytes();
        text.resize(700 * 1024 - 2, b'x');
        text.extend_from_slice(b"\"}");
        text
    };
    const PING: [u8; 6] = [0x89, 0x80, 0, 0, 0, 0];
    // The pong answering a ping after the first fragment says the server holds it.
    let first = request("a");
    let mut holder = connect(&server);
    write_raw(&mut holder, &raw_frame(0x01, &first[..600 * 1024]));
    write_raw(&mut holder, &PING);
    assert_eq!(pong_or_close(&mut holder), Ok(()));
    // 600 KB more would make 1.2 MB unfinished, over the 1 MB total: refused.
    let second = request("b");
    let mut refused = connect(&server);
    write_raw(&mut refused, &raw_frame(0x01, &second[..600 * 1024]));
    write_raw(&mut refused, &PING);
    assert_eq!(
        pong_or_close(&mut refused),
        Err((
            CloseCode::Size,
            "server busy: too many unfinished messages".to_string()
        ))
    );
    // Small messages still get through, and the holder finishes its message.
    let mut small = connect(&server);
    small
        .send(Message::text(
            r#"{"controller":"server","action":"now","requestId":"small"}"#,
        ))
        .unwrap();
    assert_eq!(next_json(&mut small)["requestId"], "small");
    write_raw(&mut holder, &raw_frame(0x80, &first[600 * 1024..]));
    assert_eq!(next_json(&mut holder)["requestId"], "a");
    // The bytes were given back: the same message goes through now.
    let mut third = connect(&server);
    write_raw(&mut third, &raw_frame(0x81, &request("c")));
    assert_eq!(next_json(&mut third)["requestId"], "c");
}

#[test]
fn sigterm_closes_websockets_with_1001() {
    let server = start("", "");
    let mut client = connect(&server);
    server.signal(Signal::SIGTERM);
    expect_close(&mut client, CloseCode::Away, "server shutting down");
    assert_eq!(server.wait_exit(Duration::from_secs(20)).code(), Some(0));
}

#[test]
fn a_port_in_use_stops_start_up_with_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let finished = run_config(
        &format!(
            "[server]\n{}",
            protocol_section(
                "websocket",
                "websocket",
                &format!("port = {port}\naddress = \"127.0.0.1\"")
            )
        ),
        Duration::from_secs(30),
    );
    assert_ne!(finished.status.code(), Some(0));
    let output = format!("{}{}", finished.stdout, finished.stderr);
    assert!(
        output.contains(&format!(
            "protocol \"websocket\" cannot listen on 127.0.0.1:{port}: "
        )),
        "{output}"
    );
    assert!(
        output.contains(
            "hint: another process may use this port; change server.protocols.websocket.port"
        ),
        "{output}"
    );
}
