//! RFC 6455 rules over a raw socket: handshake refusals, fragmentation, close codes for
//! violations, permessage-deflate.

use switchyard_plugin_kit::ws::deflate;
use switchyard_plugin_kit::ws::testing::masked_frame;

use crate::support::{Harness, HostEvent, RawClient};

#[tokio::test]
async fn a_plain_http_request_gets_426() {
    let harness = Harness::start("{}");
    let mut client = RawClient::connect(harness.address(), "").await;
    assert!(client
        .response
        .starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
    drop(client);

    let stream = tokio::net::TcpStream::connect(harness.address())
        .await
        .unwrap();
    let mut plain = RawClientLike(stream);
    let response = plain.request("GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        response.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
        "{response}"
    );
    assert!(
        response.ends_with("\r\n\r\nthis port serves WebSocket connections only\n"),
        "{response}"
    );
    client = RawClient::connect(harness.address(), "").await;
    assert!(client
        .response
        .contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
}

/// A plain TCP client for HTTP exchanges that end with the server closing.
struct RawClientLike(tokio::net::TcpStream);

impl RawClientLike {
    async fn request(&mut self, text: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.0.write_all(text.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        let read = self.0.read_to_end(&mut response);
        tokio::time::timeout(crate::support::WAIT, read)
            .await
            .unwrap()
            .unwrap();
        String::from_utf8(response).unwrap()
    }
}

#[tokio::test]
async fn fragmented_requests_are_reassembled_around_control_frames() {
    let mut harness = Harness::start("{}");
    let mut client = RawClient::connect(harness.address(), "").await;
    let id = harness.connected().await;
    let mut bytes = masked_frame(0x01, br#"{"requestId":"#);
    bytes.extend(masked_frame(0x89, b"mid"));
    bytes.extend(masked_frame(0x00, br#""frag""#));
    bytes.extend(masked_frame(0x80, b"}"));
    client.send(&bytes).await;
    let pong = client.frame().await.unwrap();
    assert_eq!((pong.first, pong.payload), (0x8A, b"mid".to_vec()));
    assert_eq!(
        harness.next_event().await,
        HostEvent::Executed(id, r#"{"requestId":"frag"}"#.into())
    );
    let answer = client.frame().await.unwrap();
    assert_eq!(answer.first, 0x81);
    assert!(
        answer.text().ends_with(r#","room":"frag"}"#),
        "{}",
        answer.text()
    );
}

#[tokio::test]
async fn protocol_violations_close_with_the_rfcs_codes() {
    let mut harness = Harness::start(r#"{"maxRequestSize":100}"#);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "unmasked frame",
            vec![0x81, 0x02, b'h', b'i'],
            1002,
            "client frames must be masked",
        ),
        (
            "invalid UTF-8",
            masked_frame(0x81, b"\xff\xfe"),
            1007,
            "invalid UTF-8 in text message",
        ),
        (
            "fragmented ping",
            masked_frame(0x09, b""),
            1002,
            "fragmented control frame",
        ),
        (
            "long ping",
            masked_frame(0x89, &[0; 126]),
            1002,
            "control frame too long",
        ),
        (
            "reserved opcode",
            masked_frame(0x83, b""),
            1002,
            "reserved opcode",
        ),
        (
            "RSV1 without deflate",
            masked_frame(0xC1, b"x"),
            1002,
            "reserved bits set",
        ),
        (
            "lone continuation",
            masked_frame(0x80, b"x"),
            1002,
            "continuation frame without a message to continue",
        ),
        (
            "bad close code",
            masked_frame(0x88, &[0x03, 0xED]),
            1002,
            "invalid close code",
        ),
        (
            "fragments over maxRequestSize",
            [
                masked_frame(0x01, &[b' '; 60]),
                masked_frame(0x80, &[b' '; 60]),
            ]
            .concat(),
            1009,
            "message too big",
        ),
    ];
    for (name, bytes, code, reason) in cases {
        let mut client = RawClient::connect(harness.address(), "").await;
        let id = harness.connected().await;
        client.send(&bytes).await;
        let close = client
            .frame()
            .await
            .unwrap_or_else(|| panic!("{name}: no close frame"));
        assert_eq!(close.close(), (code, reason.to_string()), "{name}");
        client.expect_eof().await;
        harness.removed(id).await;
    }
}

#[tokio::test]
async fn the_closing_handshake_echoes_the_code() {
    let mut harness = Harness::start("{}");
    let mut client = RawClient::connect(harness.address(), "").await;
    let id = harness.connected().await;
    client.send(&masked_frame(0x88, b"\x0f\xa0bye")).await; // 4000
    let echo = client.frame().await.unwrap();
    assert_eq!(echo.close(), (4000, String::new()));
    client.expect_eof().await;
    harness.removed(id).await;
}

#[tokio::test]
async fn permessage_deflate_is_negotiated_and_used_both_ways() {
    let mut harness = Harness::start(r#"{"compression":true}"#);
    let mut client = RawClient::connect(
        harness.address(),
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
    )
    .await;
    assert!(client.response.contains(
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"
    ));
    let id = harness.connected().await;
    let request = format!(r#"{{"requestId":"z","pad":"{}"}}"#, "p".repeat(300));
    let mut compressed = Vec::new();
    deflate::compress(request.as_bytes(), &mut compressed);
    client.send(&masked_frame(0xC1, &compressed)).await;
    assert_eq!(
        harness.next_event().await,
        HostEvent::Executed(id, request.clone())
    );
    let answer = client.frame().await.unwrap();
    assert_eq!(answer.first, 0xC1, "a long answer is compressed");
    let mut text = Vec::new();
    deflate::decompress(&answer.payload, 1 << 20, &mut text).unwrap();
    assert!(String::from_utf8(text)
        .unwrap()
        .ends_with(r#","room":"z"}"#));

    // Without an offer, the same server speaks plain frames.
    let plain = RawClient::connect(harness.address(), "").await;
    assert!(!plain.response.contains("Sec-WebSocket-Extensions"));
}
