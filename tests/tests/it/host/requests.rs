//! The request path through a real plugin: answers, Kuzzle errors, the callback's two timings,
//! the bounded queue, two instances of one library, plugin logs.

use std::time::Duration;

use serde_json::json;
use switchyard_tests::{protocol_section, LineClient, Server};

fn line_server(extra_server: &str) -> Server {
    Server::start(&format!(
        "[server]\n{extra_server}\n{}",
        protocol_section("line", "fixture_line", "")
    ))
}

#[test]
fn below_the_concurrency_limit_a_request_is_answered_inside_execute() {
    let server = line_server("");
    let mut client = LineClient::connect(&server.address("line"));
    let (timing, status, content) =
        client.request(r#"{"controller":"server","action":"now","requestId":"r-0"}"#);
    assert_eq!((timing.as_str(), status), ("sync", 200));
    assert_eq!(content["requestId"], "r-0");
}

#[test]
fn queued_requests_are_answered_later_by_a_worker() {
    let server = line_server("concurrentRequests = 0");
    let mut client = LineClient::connect(&server.address("line"));
    let (timing, status, content) =
        client.request(r#"{"controller":"server","action":"now","requestId":"r-1"}"#);
    assert_eq!((timing.as_str(), status), ("async", 200));
    assert_eq!(content["requestId"], "r-1");
    assert_eq!(content["status"], 200);
    assert_eq!(content["error"], serde_json::Value::Null);
    assert_eq!(content["controller"], "server");
    assert_eq!(content["action"], "now");
    let now = content["result"]["now"].as_u64().expect("a number");
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(wall.abs_diff(now) < 60_000, "now={now} wall={wall}");
}

#[test]
fn unknown_controllers_and_actions_get_kuzzles_errors() {
    let server = line_server("");
    let mut client = LineClient::connect(&server.address("line"));
    let cases = [
        (
            r#"{"controller":"nope","action":"x","requestId":"a"}"#,
            json!({"message":"API controller \"nope\" not found.","status":404,"id":"api.process.controller_not_found","code":33685508,"props":[]}),
        ),
        (
            r#"{"controller":"server","action":"nope","requestId":"b"}"#,
            json!({"message":"API action \"server\":\"nope\" not found","status":404,"id":"api.process.action_not_found","code":33685509,"props":[]}),
        ),
        (
            r#"{"action":"now","requestId":"c"}"#,
            json!({"message":"Missing argument \"controller\".","status":400,"id":"api.assert.missing_argument","code":33619971,"props":[]}),
        ),
        (
            r#"{"controller":"server","requestId":"d"}"#,
            json!({"message":"Missing argument \"action\".","status":400,"id":"api.assert.missing_argument","code":33619971,"props":[]}),
        ),
        (
            r#"{"controller":["server"],"action":"now","requestId":"e"}"#,
            json!({"message":"Wrong type for argument \"controller\" (expected: string)","status":400,"id":"api.assert.invalid_type","code":33619969,"props":[]}),
        ),
    ];
    for (request, error) in cases {
        let (_, status, content) = client.request(request);
        assert_eq!(
            status,
            error["status"].as_u64().unwrap() as u16,
            "{request}"
        );
        assert_eq!(content["error"], error, "{request}");
        assert_eq!(content["result"], serde_json::Value::Null);
        let sent: serde_json::Value = serde_json::from_str(request).unwrap();
        assert_eq!(content["requestId"], sent["requestId"]);
    }
    // The connection still works after every error.
    let (_, status, _) = client.request(r#"{"controller":"server","action":"now"}"#);
    assert_eq!(status, 200);
}

#[test]
fn server_info_lists_protocols_with_their_versions() {
    let server = Server::start(&format!(
        "[server]\n{}{}",
        protocol_section("line", "fixture_line", ""),
        protocol_section("second", "fixture_line", "")
    ));
    let mut client = LineClient::connect(&server.address("second"));
    let (_, status, content) = client.request(r#"{"controller":"server","action":"info"}"#);
    assert_eq!(status, 200);
    let kuzzle = &content["result"]["serverInfo"]["kuzzle"];
    assert_eq!(kuzzle["name"], "switchyard");
    assert_eq!(kuzzle["pluginApi"], "1.3.0");
    for name in ["line", "second"] {
        let protocol = &kuzzle["protocols"][name];
        assert_eq!(protocol["plugin"], "fixture-line");
        assert_eq!(protocol["version"], "0.3.0");
        assert_eq!(protocol["pluginApi"], "1.3.0");
        assert_eq!(protocol["listening"], json!([server.url(name)]));
    }
    assert_eq!(
        kuzzle["api"]["routes"]["server"]["now"]["http"],
        json!([{"verb":"GET","url":"/_now","path":"/_now"}])
    );
}

#[test]
fn two_instances_of_one_library_serve_two_ports() {
    let server = Server::start(&format!(
        "[server]\n{}{}",
        protocol_section("first", "fixture_line", ""),
        protocol_section("second", "fixture_line", "")
    ));
    assert_ne!(server.address("first"), server.address("second"));
    let mut first = LineClient::connect(&server.address("first"));
    let mut second = LineClient::connect(&server.address("second"));
    for client in [&mut first, &mut second] {
        let (_, status, content) =
            client.request(r#"{"controller":"server","action":"now","requestId":"x"}"#);
        assert_eq!((status, content["requestId"].as_str()), (200, Some("x")));
    }
    // One library, one global `tracing` subscriber: each line still names its own protocol,
    // from `init` (on the host's thread, logged before the ready line) and from each
    // instance's own threads (the connections just made).
    let started = server.log();
    for protocol in ["first", "second"] {
        let tag = format!("protocol=\"{protocol}\"");
        assert!(
            started
                .lines()
                .any(|line| line.contains("line protocol listening") && line.contains(&tag)),
            "no start-up line for {protocol}:\n{started}"
        );
    }
    let mut missing = vec!["protocol=\"first\"", "protocol=\"second\""];
    while !missing.is_empty() {
        let line = server.wait_for_log(&["line connection opened"], Duration::from_secs(10));
        missing.retain(|tag| !line.contains(tag));
    }
}

#[test]
fn a_full_queue_answers_overloaded_at_once() {
    let server = line_server("requestQueueSize = 1\nconcurrentRequests = 0");
    let mut client = LineClient::connect(&server.address("line"));
    client.send(r#"burst 2000 {"controller":"server","action":"now"}"#);
    let line = client.read_line().expect("the burst summary");
    // `burst sync=<a> async=<b> 200=<c> 503=<d>`: every callback ran exactly once; those
    // refused by the full queue ran before `execute` returned.
    let fields: std::collections::HashMap<&str, usize> = line
        .split(' ')
        .skip(1)
        .filter_map(|field| field.split_once('='))
        .map(|(key, value)| (key, value.parse().unwrap()))
        .collect();
    assert_eq!(fields["sync"] + fields["async"], 2000, "{line}");
    assert_eq!(
        fields.get("200").unwrap_or(&0) + fields.get("503").unwrap_or(&0),
        2000,
        "{line}"
    );
    assert!(fields.get("503").copied().unwrap_or(0) > 0, "{line}");
    assert!(fields["sync"] >= fields["503"], "{line}");

    // The refusal itself is Kuzzle's: the first one, as the plugin received it.
    let refusal = client.read_line().expect("the first refusal");
    let content: serde_json::Value = serde_json::from_str(
        refusal
            .strip_prefix("first-failure ")
            .unwrap_or_else(|| panic!("expected the first refusal, got {refusal}")),
    )
    .unwrap();
    assert_eq!(content["status"], 503, "{content}");
    assert_eq!(
        content["error"],
        serde_json::json!({
            "message": "Request discarded: Kuzzle Server is temporarily overloaded.",
            "status": 503,
            "id": "api.process.overloaded",
            "code": 33685506,
            "props": []
        })
    );
    assert_eq!(content["controller"], "server");
    assert_eq!(content["action"], "now");
}

#[test]
fn plugin_logs_reach_the_host_log_with_the_plugin_name() {
    let server = line_server("");
    let line = server.wait_for_log(
        &["line protocol listening", "plugin=\"fixture-line\""],
        Duration::from_secs(10),
    );
    assert!(line.contains("INFO"), "{line}");
}
