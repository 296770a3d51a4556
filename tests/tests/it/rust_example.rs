//! The Rust example (`examples/rust-line`, a workspace member) serves a client end to end, as
//! `c_abi.rs` does for the C one; the template (`templates/protocol`) builds outside the
//! workspace and passes `switchyard check`.

use std::time::Duration;

use serde_json::{json, Value};
use switchyard_tests::{artifacts, protocol_section, run_host, LineClient, Server};
use tungstenite::Message;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Subscribes to red documents of `i/c`; returns the channel.
fn subscribe(client: &mut LineClient) -> String {
    client.send(
        r#"{"controller":"realtime","action":"subscribe","index":"i","collection":"c","body":{"equals":{"color":"red"}}}"#,
    );
    let line = client.read_line().expect("an answer");
    let rest = line
        .strip_prefix("answer 200 ")
        .unwrap_or_else(|| panic!("not a 200 answer: {line}"));
    let content: Value = serde_json::from_str(rest).expect("JSON content");
    content["result"]["channel"]
        .as_str()
        .expect("a channel")
        .to_string()
}

#[test]
fn the_rust_example_receives_a_publication_made_over_websocket() {
    let library = artifacts().library("rust_line").to_path_buf();
    let finished = run_host(&["check", library.to_str().unwrap()], TIMEOUT);
    assert_eq!(
        finished.stdout,
        format!(
            "{}: rust-line 0.1.0, plugin-api 1.1.0: OK\n",
            library.display()
        ),
        "{}",
        finished.stderr
    );

    let server = Server::start(&format!(
        "[server]\n{}{}",
        protocol_section("line", "rust_line", "port = 0"),
        protocol_section(
            "websocket",
            "websocket",
            "port = 0\naddress = \"127.0.0.1\""
        )
    ));
    server.wait_for_log(&["listening on tcp://127.0.0.1:"], TIMEOUT);
    let mut subscriber = LineClient::connect(&server.address("line"));
    let channel = subscribe(&mut subscriber);
    // Not JSON: the plugin answers by itself, without the host.
    subscriber.send("hello");
    assert_eq!(
        subscriber.read_line().as_deref(),
        Some("error expected a JSON request on one line")
    );

    let (mut publisher, _) = tungstenite::connect(server.url("websocket")).expect("connect");
    for color in ["blue", "red"] {
        let request = json!({
            "controller": "realtime", "action": "publish", "index": "i", "collection": "c",
            "requestId": color, "body": {"color": color}
        });
        publisher
            .send(Message::text(request.to_string()))
            .expect("publish");
        let answer: Value = loop {
            match publisher.read().expect("an answer") {
                Message::Text(text) => break serde_json::from_str(text.as_str()).unwrap(),
                _ => continue,
            }
        };
        assert_eq!(answer["status"], 200, "{answer}");
    }

    // Only the red document matches the filter.
    let line = subscriber.read_line().expect("a notification");
    let rest = line
        .strip_prefix(&format!("notification {channel} "))
        .unwrap_or_else(|| panic!("not a notification on {channel}: {line}"));
    let payload: Value = serde_json::from_str(rest).expect("JSON payload");
    assert_eq!(payload["requestId"], "red");
    assert_eq!(payload["protocol"], "websocket");
    assert_eq!(payload["result"]["_source"]["color"], "red");

    // Unsubscribing goes through the host, which calls the plugin's leave_channel.
    subscriber.send(&format!(
        r#"{{"controller":"realtime","action":"unsubscribe","body":{{"roomId":"{}"}}}}"#,
        channel.split('-').next().unwrap()
    ));
    let answer = subscriber.read_line().expect("an answer");
    assert!(answer.starts_with("answer 200 "), "{answer}");

    // At shutdown the host calls disconnect: the writer flushes and closes the socket.
    server.stop_with(nix::sys::signal::Signal::SIGTERM, TIMEOUT);
    assert_eq!(subscriber.read_line(), None);
}
