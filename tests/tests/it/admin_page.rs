//! Issue 18, for operators: the ready line names the addresses really bound, `/api/overview`
//! reports known traffic exactly, and the admin page works in a real browser (Debian's
//! `chromium` driven by npm `playwright-core`, `tests/js/admin_page.js`).
//!
//! `SWITCHYARD_SCREENSHOT=1` makes the browser test write `docs/admin-page.png`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_tests::{artifacts, protocol_section, repository, LineClient, Server};

use crate::sdk::Scenario;

/// The version of the host and of the shipped plugins.
const HOST_VERSION: &str = "0.1.0";

/// One GET to the admin listener: (status, content type, body).
fn get(server: &Server, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(server.address("admin")).expect("connect to admin");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a response head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .expect("a status");
    let content_type = head
        .lines()
        .find_map(|line| line.strip_prefix("content-type: "))
        .unwrap_or_default()
        .to_string();
    (status, content_type, body.to_string())
}

/// The ready line with its start-up time replaced by `N`.
fn without_time(ready_line: &str) -> String {
    let (before, after) = ready_line.split_once(" ready in ").expect("a ready line");
    let (_, rest) = after.split_once(" ms: ").expect("a start-up time");
    format!("{before} ready in N ms: {rest}")
}

fn port(server: &Server, protocol: &str) -> String {
    let address = server.address(protocol);
    address.rsplit_once(':').expect("host:port").1.to_string()
}

/// Two protocols, one on every interface (the plugins' default) and one on loopback.
fn two_protocols() -> String {
    format!(
        "[server]\n[server.admin]\nport = 0\n{}{}",
        protocol_section("websocket", "websocket", "port = 0"),
        protocol_section("http", "http", "port = 0\naddress = \"127.0.0.1\"")
    )
}

#[test]
fn the_ready_line_names_the_addresses_really_bound() {
    let server = Server::start(&two_protocols());
    let version = HOST_VERSION;
    assert_eq!(
        without_time(&server.ready_line),
        format!(
            "switchyard {version} ready in N ms: websocket (websocket {version}) on ws://0.0.0.0:{}; http (http {version}) on http://127.0.0.1:{}; admin on http://127.0.0.1:{}",
            port(&server, "websocket"),
            port(&server, "http"),
            port(&server, "admin")
        )
    );
    // Bound on every interface, so loopback reaches it too.
    TcpStream::connect(format!("127.0.0.1:{}", port(&server, "websocket"))).expect("connect");
}

#[test]
fn a_non_loopback_admin_address_is_refused_at_start_up() {
    let finished = switchyard_tests::run_config(
        "[server]\n[server.admin]\nhost = \"0.0.0.0\"\nport = 0\n",
        Duration::from_secs(30),
    );
    assert!(!finished.status.success());
    assert!(
        finished.stderr.contains("server.admin.host: \"0.0.0.0\" is not a loopback address; the admin listener (metrics, admin page) has no login, so it binds only 127.0.0.1, ::1 or localhost (reach it from elsewhere through an SSH tunnel or an authenticating proxy)"),
        "{}",
        finished.stderr
    );
}

#[test]
fn the_overview_reports_protocols_rooms_traffic_and_warnings() {
    let server = Server::start(&format!(
        "[server]\nhookPanicLimit = 1\n[server.admin]\nport = 0\n{}{}",
        protocol_section("line", "fixture_line", ""),
        protocol_section("faulty", "fixture_line", "panicOnBroadcast = true")
    ));
    let mut client = LineClient::connect(&server.address("line"));
    for _ in 0..3 {
        assert_eq!(
            client
                .request(r#"{"controller":"server","action":"now"}"#)
                .1,
            200
        );
    }
    let (_, status, _) = client.request(
        r#"{"controller":"realtime","action":"subscribe","index":"shop","collection":"orders","body":{"range":{"total":{"gte":100}}}}"#,
    );
    assert_eq!(status, 200);
    let mut publisher = LineClient::connect(&server.address("line"));
    let (_, status, _) = publisher.request(
        r#"{"controller":"realtime","action":"publish","index":"shop","collection":"orders","requestId":"p","body":{"total":150}}"#,
    );
    assert_eq!(status, 200);
    let notification = client.read_line().expect("a notification");
    assert!(
        notification.contains(r#""_source":{"total":150"#),
        "{notification}"
    );
    server.wait_for_log(
        &["protocol disabled after 1 panics"],
        Duration::from_secs(10),
    );

    let (status, content_type, body) = get(&server, "/api/overview");
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    let overview: Value = serde_json::from_str(&body).expect("JSON");
    let library = artifacts().library("fixture_line").display().to_string();
    let line_port = port(&server, "line");
    let faulty_port = port(&server, "faulty");
    assert_eq!(
        overview["protocols"],
        json!([
            {"name": "line", "plugin": "fixture-line", "version": "0.3.0", "pluginApi": switchyard_plugin_api::INTERFACE_VERSION,
             "library": library, "listening": [format!("tcp://127.0.0.1:{line_port}")],
             "enabled": true, "hookPanics": 0, "connections": 2, "accepted": 2, "closed": 0,
             "requests": 5},
            {"name": "faulty", "plugin": "fixture-line", "version": "0.3.0", "pluginApi": switchyard_plugin_api::INTERFACE_VERSION,
             "library": library, "listening": [format!("tcp://127.0.0.1:{faulty_port}")],
             "enabled": false, "hookPanics": 1, "connections": 0, "accepted": 0, "closed": 0,
             "requests": 0}
        ])
    );
    assert_eq!(
        overview["counters"],
        json!({"requests": 5, "notifications": 1, "deliveries": null, "slowConsumerCloses": null})
    );
    assert_eq!(
        overview["rooms"]["busiest"],
        json!([{
            "roomId": overview["rooms"]["busiest"][0]["roomId"],
            "index": "shop", "collection": "orders",
            "filter": {"range": {"total": {"gte": 100}}}, "subscribers": 1
        }])
    );
    assert_eq!(overview["rooms"]["count"], 1);
    // Newest first: the disabling, then the panic that caused it.
    let warnings: Vec<(&str, &str)> = overview["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|warning| {
            (
                warning["level"].as_str().unwrap_or_default(),
                warning["message"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert_eq!(warnings[0].0, "ERROR");
    assert!(
        warnings[0].1.starts_with("protocol disabled after 1 panics (server.hookPanicLimit): its hooks are no longer called protocol=\"faulty\" plugin=\"fixture-line\""),
        "{warnings:?}"
    );
    assert!(
        warnings[1].1.contains("broadcast panicked on purpose"),
        "{warnings:?}"
    );

    let (status, content_type, page) = get(&server, "/");
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/html; charset=utf-8")
    );
    assert!(page.contains("<script src=\"/admin.js\"></script>"));
    // Nothing from elsewhere: the browser refuses it.
    let mut stream = TcpStream::connect(server.address("admin")).expect("connect to admin");
    write!(stream, "HEAD / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n").unwrap();
    let mut head = String::new();
    stream.read_to_string(&mut head).unwrap();
    assert!(
        head.contains("\r\ncontent-security-policy: default-src 'self'\r\n"),
        "{head}"
    );
    assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");
    assert_eq!(
        get(&server, "/admin.js").1,
        "text/javascript; charset=utf-8"
    );
    assert_eq!(get(&server, "/admin.css").1, "text/css; charset=utf-8");
    assert_eq!(
        get(&server, "/nothing"),
        (
            404,
            "text/plain; charset=utf-8".to_string(),
            "not found: try /, /metrics, /healthz or /readyz\n".to_string()
        )
    );
}

/// The page in headless Chromium: it shows the test config's protocols, and the requests/s and
/// notifications/s charts, flat before any traffic, move when the test publishes over
/// WebSocket.
#[test]
fn the_admin_page_shows_the_protocols_and_its_chart_moves_in_a_browser() {
    let server = Server::start(&two_protocols());
    // The HTTP plugin loads its route table with a request of its own at start-up; one
    // request through a route waits for that table, so after its answer the counts are still.
    let mut http = TcpStream::connect(server.address("http")).expect("connect to http");
    write!(
        http,
        "GET /_now HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    http.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    let screenshot = std::env::var_os("SWITCHYARD_SCREENSHOT")
        .is_some_and(|value| value == "1")
        .then(|| repository().join("docs/admin-page.png"));
    let admin = server.url("admin").to_string();
    let mut args = vec![server.url("websocket"), admin.as_str()];
    let screenshot_path = screenshot.as_ref().map(|path| path.display().to_string());
    if let Some(path) = &screenshot_path {
        args.push(path);
    }
    let observations = Scenario::start_with("admin_page", &args).finish();

    assert_eq!(observations.one("title")["title"], "Switchyard admin");
    let version = HOST_VERSION;
    let row = |name: &str, listening: String, requests: &str| {
        json!([
            name,
            format!("{name} {version}"),
            switchyard_plugin_api::INTERFACE_VERSION,
            artifacts().library(name).display().to_string(),
            listening,
            "enabled",
            "0",
            requests
        ])
    };
    assert_eq!(
        observations.one("protocols")["rows"],
        json!([
            row(
                "websocket",
                format!("ws://0.0.0.0:{}", port(&server, "websocket")),
                "0"
            ),
            row(
                "http",
                format!("http://127.0.0.1:{}", port(&server, "http")),
                "2"
            )
        ])
    );
    assert_eq!(
        observations.one("before"),
        &json!({"event": "before", "requests": "0", "notifications": "0", "deliveries": "n/a", "slowConsumerCloses": "n/a"})
    );
    let after = observations.one("after");
    assert_eq!(after["requestsMoved"], true, "{after}");
    assert_eq!(after["notificationsMoved"], true, "{after}");
    assert_eq!(
        after["rooms"],
        json!([["shop / orders", r#"{"range":{"total":{"gte":100}}}"#, "1"]])
    );
    assert_eq!(
        after["connections"],
        json!([["websocket", "2"], ["http", "0"]])
    );
    assert_eq!(observations.one("failures")["failures"], json!([]));
    if let Some(path) = screenshot {
        assert!(path.is_file(), "no screenshot at {}", path.display());
    }
}
