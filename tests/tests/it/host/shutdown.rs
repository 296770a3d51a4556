//! Graceful shutdown: exit 0 on SIGTERM and SIGINT, connections closed, late requests refused.

use std::time::Duration;

use nix::sys::signal::Signal;
use switchyard_tests::{protocol_section, LineClient, Server};

#[test]
fn sigterm_closes_connections_and_exits_zero() {
    let server = Server::start(&format!(
        "[server]\n{}",
        protocol_section("line", "fixture_line", "")
    ));
    let mut client = LineClient::connect(&server.address("line"));
    let (_, status, _) = client.request(r#"{"controller":"server","action":"now"}"#);
    assert_eq!(status, 200);
    let status = server.stop_with(Signal::SIGTERM, Duration::from_secs(20));
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        client.read_line().as_deref(),
        Some("closing server shutting down")
    );
    assert_eq!(client.read_line(), None);
}

#[test]
fn sigint_exits_zero() {
    let server = Server::start(&format!(
        "[server]\n{}",
        protocol_section("line", "fixture_line", "")
    ));
    assert_eq!(
        server
            .stop_with(Signal::SIGINT, Duration::from_secs(20))
            .code(),
        Some(0)
    );
}

#[test]
fn requests_during_shutdown_are_refused_before_execute_returns() {
    // This protocol ignores the host's shutdown disconnects, so its client can still talk
    // while the host waits (up to shutdownTimeout) for connections to close.
    let server = Server::start(&format!(
        "[server]\nshutdownTimeout = 60000\n{}",
        protocol_section("line", "fixture_line", "ignoreShutdown = true")
    ));
    let mut client = LineClient::connect(&server.address("line"));
    // One round trip first: then the host knows the connection and waits for it.
    let (_, status, _) = client.request(r#"{"controller":"server","action":"now"}"#);
    assert_eq!(status, 200);
    server.signal(Signal::SIGTERM);
    server.wait_for_log(
        &["shutting down: new requests are refused"],
        Duration::from_secs(10),
    );
    let (timing, status, content) =
        client.request(r#"{"controller":"server","action":"now","requestId":"late"}"#);
    assert_eq!((timing.as_str(), status), ("sync", 503));
    assert_eq!(content["requestId"], "late");
    assert_eq!(
        content["error"],
        serde_json::json!({
            "message": "Rejected: instance is shutting down",
            "status": 503,
            "id": "network.entrypoint.shutting_down",
            "code": 50593795,
            "props": []
        })
    );
    // Once its last connection closes, the host exits without waiting for the deadline.
    drop(client);
    assert_eq!(server.wait_exit(Duration::from_secs(20)).code(), Some(0));
}
