//! The admin listener: Prometheus metrics that count known traffic exactly, liveness and
//! readiness, and what it answers to bad requests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use switchyard_tests::{protocol_section, LineClient, Server};

/// One request to the admin listener: (status, body).
pub fn get(server: &Server, request_line: &str) -> (u16, String) {
    get_as(server, request_line, "127.0.0.1")
}

/// One request to the admin listener with `host` as its `Host` header: (status, body).
fn get_as(server: &Server, request_line: &str, host: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(server.address("admin")).expect("connect to admin");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "{request_line}\r\nhost: {host}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a response head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .expect("a status");
    (status, body.to_string())
}

/// The value of the series `series` (name and labels, exactly as exported).
pub fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|value| value.parse().ok())
    })
}

#[test]
fn metrics_count_known_traffic_and_health_answers() {
    let server = Server::start(&format!(
        "[server]\n[server.admin]\nport = 0\n{}",
        protocol_section("line", "fixture_line", "")
    ));
    assert!(
        server.ready_line.contains("; admin on http://127.0.0.1:"),
        "{}",
        server.ready_line
    );
    let mut client = LineClient::connect(&server.address("line"));
    for _ in 0..3 {
        let (_, status, _) = client.request(r#"{"controller":"server","action":"now"}"#);
        assert_eq!(status, 200);
    }
    let (_, status, _) = client.request(r#"{"controller":"nope","action":"now"}"#);
    assert_eq!(status, 404);
    let (_, status, _) = client.request(r#"{"controller":"realtime","action":"subscribe"}"#);
    assert_eq!(status, 400);

    // A request leaves `in flight` just after its answer is sent: the client may read the last
    // answer a moment before. Scrape until it has left (bounded), then check every figure.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let (status, metrics) = get(&server, "GET /metrics HTTP/1.1");
        assert_eq!(status, 200);
        if value(&metrics, "switchyard_requests_in_flight") == Some(0.0)
            || std::time::Instant::now() > deadline
        {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let requests =
        |labels: &str| value(&metrics, &format!("switchyard_requests_total{{{labels}}}"));
    assert_eq!(
        requests(r#"protocol="line",controller="server",action="now",status="2xx""#),
        Some(3.0),
        "{metrics}"
    );
    assert_eq!(
        requests(r#"protocol="line",controller="none",action="none",status="4xx""#),
        Some(1.0)
    );
    assert_eq!(
        requests(r#"protocol="line",controller="realtime",action="subscribe",status="4xx""#),
        Some(1.0)
    );
    assert_eq!(
        value(
            &metrics,
            r#"switchyard_request_duration_seconds_count{protocol="line"}"#
        ),
        Some(5.0)
    );
    assert_eq!(
        value(&metrics, r#"switchyard_connections_open{protocol="line"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(
            &metrics,
            r#"switchyard_connections_accepted_total{protocol="line"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&metrics, r#"switchyard_protocol_enabled{protocol="line"}"#),
        Some(1.0)
    );
    assert!(metrics.contains("switchyard_protocol_info{protocol=\"line\",plugin=\"fixture-line\""));
    assert_eq!(value(&metrics, "switchyard_requests_in_flight"), Some(0.0));

    assert_eq!(
        get(&server, "GET /healthz HTTP/1.1"),
        (200, "ok\n".to_string())
    );
    assert_eq!(
        get(&server, "GET /readyz HTTP/1.1"),
        (200, "ready\n".to_string())
    );
    assert_eq!(get(&server, "POST /metrics HTTP/1.1").0, 405);
    assert_eq!(get(&server, "GET /nothing HTTP/1.1").0, 404);
    assert_eq!(get(&server, "GARBAGE").0, 400);
    // DNS rebinding: a page from elsewhere that resolved its own name to 127.0.0.1.
    assert_eq!(
        get_as(&server, "GET /metrics HTTP/1.1", "evil.example:7510"),
        (421, "Host \"evil.example:7510\" is not a loopback name: the admin listener answers only requests addressed to 127.0.0.1, localhost or [::1] (a web page elsewhere must not reach it through DNS rebinding; a proxy in front must set Host to 127.0.0.1)\n".to_string())
    );
    assert_eq!(
        get_as(&server, "GET /healthz HTTP/1.1", "localhost:7510").0,
        200
    );
}
