//! Requests and Kuzzle's answers to bad input, through a real client library (tokio-tungstenite).

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{Harness, HostEvent, WAIT};

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(harness: &Harness) -> Client {
    let (client, _) = tokio_tungstenite::connect_async(harness.url())
        .await
        .unwrap();
    client
}

/// The next message that is not a ping/pong.
async fn next(client: &mut Client) -> Message {
    loop {
        let message = tokio::time::timeout(WAIT, client.next())
            .await
            .expect("no message in time")
            .expect("stream ended")
            .expect("client error");
        if !matches!(message, Message::Ping(_) | Message::Pong(_)) {
            return message;
        }
    }
}

async fn next_text(client: &mut Client) -> String {
    match next(client).await {
        Message::Text(text) => text.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

fn unexpected_error(request_id: Option<&str>, detail: &str) -> String {
    let (id, room) = match request_id {
        Some(id) => (format!("\"{id}\""), format!(",\"room\":\"{id}\"")),
        None => ("null".to_string(), String::new()),
    };
    format!(
        r#"{{"requestId":{id},"status":400,"error":{{"message":"Caught an unexpected WebSocket error: {detail}","status":400,"id":"network.websocket.unexpected_error","code":50528257,"props":[]}},"controller":null,"action":null,"collection":null,"index":null,"volatile":null,"result":null{room}}}"#
    )
}

#[tokio::test]
async fn a_request_is_answered_with_room_set_to_its_request_id() {
    let mut harness = Harness::start("{}");
    let mut client = connect(&harness).await;
    let HostEvent::Connected(id, ips, headers) = harness.next_event().await else {
        panic!("expected a connection");
    };
    assert_eq!(ips, ["127.0.0.1"]);
    assert!(headers
        .iter()
        .any(|(name, value)| name == "upgrade" || (name == "Upgrade" && value == "websocket")));

    let request = r#"{"controller":"server","action":"now","requestId":"r-1"}"#;
    client.send(Message::text(request)).await.unwrap();
    assert_eq!(
        harness.next_event().await,
        HostEvent::Executed(id, request.to_string())
    );
    let answer: serde_json::Value = serde_json::from_str(&next_text(&mut client).await).unwrap();
    assert_eq!(answer["room"], "r-1");
    assert_eq!(answer["requestId"], "r-1");
    assert_eq!(answer["result"]["action"], "now");

    // An answer from another thread, after `execute` returned.
    let later = r#"{"controller":"later","action":"x","requestId":"r-2"}"#;
    client.send(Message::text(later)).await.unwrap();
    let answer: serde_json::Value = serde_json::from_str(&next_text(&mut client).await).unwrap();
    assert_eq!(answer["room"], "r-2");
}

#[tokio::test]
async fn the_application_ping_is_answered_without_the_host() {
    let mut harness = Harness::start("{}");
    let mut client = connect(&harness).await;
    harness.connected().await;
    client.send(Message::text(r#"{"p":1}"#)).await.unwrap();
    assert_eq!(next_text(&mut client).await, r#"{"p":2}"#);
    // As in Kuzzle, any object whose only member is `p: 1` is a ping, spaces or not.
    client.send(Message::text(r#"{ "p": 1 }"#)).await.unwrap();
    assert_eq!(next_text(&mut client).await, r#"{"p":2}"#);
    // Anything else is a request.
    client
        .send(Message::text(r#"{"p":1,"controller":"server"}"#))
        .await
        .unwrap();
    assert!(matches!(
        harness.next_event().await,
        HostEvent::Executed(..)
    ));
}

#[tokio::test]
async fn protocol_pings_get_pongs() {
    let harness = Harness::start("{}");
    let mut client = connect(&harness).await;
    client
        .send(Message::Ping(b"abc".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(WAIT, client.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(pong, Message::Pong(b"abc".to_vec().into()));
}

#[tokio::test]
async fn bad_input_gets_kuzzles_error_responses_and_the_connection_stays() {
    let mut harness = Harness::start("{}");
    let mut client = connect(&harness).await;
    let id = harness.connected().await;
    let cases = [
        (
            "{not json",
            None,
            "invalid JSON: key must be a string at line 1 column 2",
        ),
        ("[1,2]", None, "a request must be a JSON object"),
        ("\"text\"", None, "a request must be a JSON object"),
    ];
    for (input, request_id, detail) in cases {
        client.send(Message::text(input)).await.unwrap();
        assert_eq!(
            next_text(&mut client).await,
            unexpected_error(request_id, detail),
            "{input}"
        );
    }
    client
        .send(Message::Binary(
            br#"{"requestId":"b-1","controller":"server"}"#.to_vec().into(),
        ))
        .await
        .unwrap();
    assert_eq!(
        next_text(&mut client).await,
        unexpected_error(
            Some("b-1"),
            "binary frames are not supported: send each request as a JSON text frame"
        )
    );
    // Still usable, and the host never saw the bad ones.
    client
        .send(Message::text(r#"{"requestId":"ok"}"#))
        .await
        .unwrap();
    assert_eq!(
        harness.next_event().await,
        HostEvent::Executed(id, r#"{"requestId":"ok"}"#.into())
    );
}

#[tokio::test]
async fn requests_past_the_rate_limit_get_429_and_the_connection_stays() {
    let mut harness = Harness::start(r#"{"rateLimit":2}"#);
    let mut client = connect(&harness).await;
    harness.connected().await;
    for n in 0..4 {
        client
            .feed(Message::text(format!(r#"{{"requestId":"q{n}"}}"#)))
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    let mut rooms_ok = Vec::new();
    let mut limited = Vec::new();
    for _ in 0..4 {
        let answer: serde_json::Value =
            serde_json::from_str(&next_text(&mut client).await).unwrap();
        if answer["status"] == 429 {
            assert_eq!(
                answer["error"]["id"],
                "network.websocket.ratelimit_exceeded"
            );
            assert_eq!(
                answer["error"]["message"],
                "Rejected: too many requests received from that socket"
            );
            assert_eq!(answer["error"]["code"], 50528258);
            limited.push(answer["room"].as_str().unwrap().to_string());
        } else {
            rooms_ok.push(answer["room"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(rooms_ok, ["q0", "q1"]);
    assert_eq!(limited, ["q2", "q3"]);
}

#[tokio::test]
async fn an_oversized_message_closes_with_1009() {
    let mut harness = Harness::start(r#"{"maxRequestSize":"1KB"}"#);
    let mut client = connect(&harness).await;
    let id = harness.connected().await;
    client
        .send(Message::text(format!(r#"{{"x":"{}"}}"#, "a".repeat(1024))))
        .await
        .unwrap();
    match next(&mut client).await {
        Message::Close(Some(frame)) => {
            assert_eq!(frame.code, CloseCode::Size);
            assert_eq!(frame.reason.as_str(), "message too big");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    harness.removed(id).await;
}

#[tokio::test]
async fn a_client_close_is_echoed_and_the_connection_removed_once() {
    let mut harness = Harness::start("{}");
    let mut client = connect(&harness).await;
    let id = harness.connected().await;
    client.close(None).await.unwrap();
    // tungstenite reports the server's echo and then the end of the stream.
    while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, client.next()).await {}
    assert_eq!(harness.next_event().await, HostEvent::Removed(id));
    // A second client connecting proves no second Removed(id) was queued before it.
    let _other = connect(&harness).await;
    assert!(matches!(
        harness.next_event().await,
        HostEvent::Connected(..)
    ));
}

#[tokio::test]
async fn idle_connections_are_closed_with_1001() {
    let mut harness = Harness::start(r#"{"idleTimeout":1000}"#);
    let mut client = connect(&harness).await;
    let id = harness.connected().await;
    match next(&mut client).await {
        Message::Close(Some(frame)) => {
            assert_eq!(frame.code, CloseCode::Away);
            assert_eq!(frame.reason.as_str(), "idle timeout");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    harness.removed(id).await;
}
