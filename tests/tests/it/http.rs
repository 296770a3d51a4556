//! The HTTP plugin end to end: the real `switchyard` binary loading `libhttp` (and
//! `libwebsocket` for notifications), driven by exact bytes over a plain `TcpStream`, by `ureq`,
//! and by the official JS SDK's `Http` protocol. Exact statuses, headers and bodies.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_tests::{node_modules, protocol_section, Server};

fn start(http_keys: &str) -> Server {
    Server::start(&format!(
        "[server]\n{}{}",
        protocol_section(
            "websocket",
            "websocket",
            "port = 0\naddress = \"127.0.0.1\""
        ),
        protocol_section(
            "http",
            "http",
            &format!("port = 0\naddress = \"127.0.0.1\"\n{http_keys}")
        )
    ))
}

/// An HTTP answer as read off the socket.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// Lower-case names, in order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "not JSON ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The Kuzzle error of an answer, checked to have Kuzzle's response shape.
    fn error(&self) -> Value {
        let content = self.json();
        assert_eq!(content["status"], self.status, "{content}");
        assert_eq!(content["result"], Value::Null, "{content}");
        content["error"].clone()
    }
}

/// A keep-alive connection speaking raw HTTP/1.1.
struct Raw {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Raw {
    fn connect(server: &Server) -> Raw {
        let stream = TcpStream::connect(server.address("http")).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Raw {
            stream,
            buffer: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Sends `method path` with `headers` and `body` (Content-Length added when there is one).
    fn request(&mut self, method: &str, path: &str, headers: &[&str], body: &[u8]) -> Answer {
        let mut bytes = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n").into_bytes();
        for header in headers {
            bytes.extend_from_slice(format!("{header}\r\n").as_bytes());
        }
        if !body.is_empty() {
            bytes.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(body);
        self.send(&bytes);
        self.read_answer(method == "HEAD")
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 16384];
        let read = self
            .stream
            .read(&mut chunk)
            .expect("read an answer within 10 s");
        self.buffer.extend_from_slice(&chunk[..read]);
        read
    }

    fn read_answer(&mut self, head: bool) -> Answer {
        let end = loop {
            if let Some(at) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            assert!(self.fill() > 0, "connection closed before an answer");
        };
        let text = String::from_utf8(self.buffer[..end].to_vec()).unwrap();
        self.buffer.drain(..end + 4);
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap();
        let status = status_line[9..12].parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|line| {
                let (name, value) = line.split_once(':').unwrap();
                (name.to_ascii_lowercase(), value.trim().to_string())
            })
            .collect();
        let length: usize = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .map_or(0, |(_, value)| value.parse().unwrap());
        let length = if head { 0 } else { length };
        while self.buffer.len() < length {
            assert!(self.fill() > 0, "connection closed inside a body");
        }
        let body = self.buffer.drain(..length).collect();
        Answer {
            status,
            headers,
            body,
        }
    }

    /// True when the server closed the connection (reads end of stream).
    fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.read(&mut byte), Ok(0) | Err(_))
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn rest_and_query_share_one_keep_alive_connection() {
    let server = start("");
    let mut client = Raw::connect(&server);
    let answer = client.request("GET", "/_now", &[], b"");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let content = answer.json();
    assert!(content["result"]["now"].as_u64().unwrap() > 1_700_000_000_000);
    assert_eq!(content["controller"], "server");
    assert_eq!(content["action"], "now");
    assert!(content.get("room").is_none());
    let generated = answer.header("x-kuzzle-request-id").unwrap().to_string();
    assert_eq!(content["requestId"], generated.as_str());

    let answer = client.request(
        "POST",
        "/_query",
        &[
            "Content-Type: application/json",
            "X-Kuzzle-Request-Id: mine-1",
        ],
        br#"{"controller":"server","action":"now"}"#,
    );
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-kuzzle-request-id"), Some("mine-1"));
    assert_eq!(answer.json()["requestId"], "mine-1");

    let answer = client.request(
        "POST",
        "/_query",
        &[],
        br#"{"controller":"server","action":"nope","requestId":"q-2"}"#,
    );
    assert_eq!(answer.status, 404);
    assert_eq!(answer.header("x-kuzzle-request-id"), Some("q-2"));
    assert_eq!(answer.error()["id"], "api.process.action_not_found");

    let answer = client.request("GET", "/_healthCheck?pretty", &[], b"");
    assert_eq!(answer.status, 200);
    let text = String::from_utf8(answer.body.clone()).unwrap();
    assert!(text.starts_with("{\n  \"requestId\": "), "{text}");
    assert_eq!(answer.json()["result"]["status"], "green");
    assert!(answer.header("connection").is_none());
}

/// One keep-alive socket carrying several users' tokens in turn (the plugin remembers the last
/// one per socket): every request runs as the token it carries, a token that differs from the
/// remembered one in a single byte (same length) is refused, and no header means anonymous.
#[test]
fn each_request_on_a_socket_runs_as_the_token_it_carries() {
    let server = start("");
    let mut client = Raw::connect(&server);
    let query = |client: &mut Raw, request: Value| {
        let answer = client.request(
            "POST",
            "/_query",
            &["Content-Type: application/json"],
            request.to_string().as_bytes(),
        );
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        answer.json()
    };
    let mut tokens = Vec::new();
    for user in ["ann", "bob"] {
        // A socket each: logins are limited per connection (one a second by default).
        let mut own = Raw::connect(&server);
        query(
            &mut own,
            json!({"controller": "security", "action": "createUser", "_id": user,
                   "body": {"content": {"profileIds": ["default"]},
                            "credentials": {"local": {"username": user, "password": "pass-1234"}}}}),
        );
        let login = query(
            &mut own,
            json!({"controller": "auth", "action": "login", "strategy": "local",
                   "body": {"username": user, "password": "pass-1234"}}),
        );
        tokens.push(login["result"]["jwt"].as_str().unwrap().to_owned());
    }
    let (ann, bob) = (&tokens[0], &tokens[1]);
    let mut forged = ann.clone().into_bytes();
    // Inside the signature (its last character holds padding bits).
    let at = forged.len() - 10;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let me = |client: &mut Raw, token: Option<&str>| {
        let header = token.map(|token| format!("Authorization: Bearer {token}"));
        let headers: Vec<&str> = header.iter().map(String::as_str).collect();
        let answer = client.request("GET", "/users/_me", &headers, b"");
        (answer.status, answer.json())
    };
    for (token, expected) in [
        (Some(ann.as_str()), "ann"),
        (Some(ann.as_str()), "ann"),
        (Some(bob.as_str()), "bob"),
        (Some(ann.as_str()), "ann"),
        (None, "-1"),
        (Some(ann.as_str()), "ann"),
    ] {
        let (status, answer) = me(&mut client, token);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["result"]["_id"], expected, "{answer}");
    }
    let (status, answer) = me(&mut client, Some(&forged));
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["error"]["id"], "security.token.invalid", "{answer}");
    let (status, answer) = me(&mut client, Some(ann));
    assert_eq!(
        (status, &answer["result"]["_id"]),
        (200, &json!("ann")),
        "{answer}"
    );
}

#[test]
fn builtin_endpoints() {
    let server = start("");
    let mut client = Raw::connect(&server);
    let answer = client.request("GET", "/_publicApi", &[], b"");
    assert_eq!(answer.status, 200);
    let content = answer.json();
    assert_eq!(
        (&content["controller"], &content["action"]),
        (&json!("server"), &json!("publicApi"))
    );
    let api = &content["result"];
    assert_eq!(
        api["server"]["now"],
        json!({"action":"now","controller":"server","http":[{"verb":"GET","url":"/_now","path":"/_now"}]})
    );
    assert_eq!(
        api["realtime"]["publish"]["http"],
        json!([{"verb":"POST","url":"/:index/:collection/_publish","path":"/:index/:collection/_publish"}])
    );
    assert_eq!(
        api["realtime"]["subscribe"],
        json!({"action":"subscribe","controller":"realtime"})
    );

    for path in ["/_healthcheck", "/_ready"] {
        let answer = client.request("GET", path, &[], b"");
        assert_eq!(answer.status, 200, "{path}");
        assert_eq!(answer.json()["error"], Value::Null);
    }
    let answer = client.request("HEAD", "/", &[], b"");
    assert_eq!(answer.status, 200);
    assert!(answer.body.is_empty());
    // Still usable after the HEAD answer without a body.
    assert_eq!(
        client.request("GET", "/", &[], b"").json()["result"]["serverInfo"]["kuzzle"]["name"],
        "switchyard"
    );
}

/// Every bad input: exact status and error, and the connection stays usable unless the body
/// was left unread.
#[test]
fn bad_input_gets_kuzzles_errors() {
    let server = start("maxRequestSize = \"1KB\"");
    let json_type = "Content-Type: application/json";
    // (method, path, headers, body, status, error id, message)
    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<&'a str>,
        Vec<u8>,
        u16,
        &'a str,
        String,
    );
    let cases: Vec<Case> = vec![
        ("POST", "/_query", vec![json_type], b"{not json".to_vec(), 400,
            "network.http.body_parse_failed", "Unable to convert the HTTP body to JSON: {not json".into()),
        ("POST", "/_query", vec!["Content-Type: text/plain"], b"{}".to_vec(), 400,
            "network.http.unsupported_content", "Invalid request content-type. Expected \"application/json\", got: \"text/plain\".".into()),
        ("POST", "/_query", vec!["Content-Type: application/json; charset=latin1"], b"{}".to_vec(), 400,
            "network.http.unsupported_charset", "Unsupported request charset. Expected \"utf-8\", got: \"latin1\".".into()),
        ("POST", "/_query", vec![json_type, "Content-Encoding: gzip"], b"not gzip at all".to_vec(), 400,
            "network.http.unexpected_error", "Caught an unexpected HTTP error: invalid gzip body: invalid gzip header".into()),
        ("POST", "/_query", vec![json_type, "Content-Encoding: br"], b"{}".to_vec(), 400,
            "network.http.unsupported_compression", "Unsupported compression algorithm \"br\".".into()),
        ("POST", "/_query", vec![json_type, "Content-Encoding: gzip, gzip, gzip, gzip"], b"{}".to_vec(), 400,
            "network.http.too_many_encodings", "Too many encodings.".into()),
        ("GET", "/_nope/", vec![], vec![], 404, "network.http.url_not_found", "API URL not found: /_nope.".into()),
        ("GET", "/_query", vec![], vec![], 404, "network.http.url_not_found", "API URL not found: /_query.".into()),
        // (`DELETE /_now` is `index:delete` of index `_now`, as in Kuzzle.)
        ("PATCH", "/_now", vec![], vec![], 404, "network.http.url_not_found", "API URL not found: /_now.".into()),
        ("TRACE", "/", vec![], vec![], 400, "network.http.unsupported_verb", "Unsupported HTTP verb \"TRACE\".".into()),
        ("GET", "/_now", vec!["X-Kuzzle-Volatile: {oops"], vec![], 400, "network.http.volatile_parse_failed",
            "Unable to convert the \"x-kuzzle-volatile\" HTTP header to JSON: key must be a string at line 1 column 2".into()),
        ("POST", "/_query", vec![json_type], vec![], 400, "api.assert.body_required", "The request must specify a body.".into()),
        ("POST", "/_query", vec![json_type], br#"{"controller":"realtime","action":"subscribe","index":"i","collection":"c","body":{}}"#.to_vec(), 400,
            "api.assert.persistent_connection_required", "The API action \"realtime:subscribe\" subscribes to notifications, which needs a persistent connection: use WebSocket, MQTT or Socket.io, not HTTP.".into()),
        ("POST", "/_query", vec![json_type], br#"{"controller":"realtime","action":"join","body":{"roomId":"x"}}"#.to_vec(), 400,
            "api.assert.persistent_connection_required", "The API action \"realtime:join\" subscribes to notifications, which needs a persistent connection: use WebSocket, MQTT or Socket.io, not HTTP.".into()),
    ];
    let mut client = Raw::connect(&server);
    for (method, path, headers, body, status, id, message) in cases {
        let answer = client.request(method, path, &headers, &body);
        let what = format!("{method} {path} {headers:?}");
        assert_eq!(
            answer.status,
            status,
            "{what}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        let error = answer.error();
        assert_eq!(error["id"], id, "{what}");
        assert_eq!(error["message"], message.as_str(), "{what}");
        assert_eq!(error["status"], status, "{what}");
        assert!(answer.header("x-kuzzle-request-id").is_some());
        if answer.header("connection") == Some("close") {
            client = Raw::connect(&server);
        }
    }
    // The connection survived every answer that read the body.
    assert_eq!(client.request("GET", "/_now", &[], b"").status, 200);
}

#[test]
fn oversized_bodies_get_413_without_being_read() {
    let server = start("maxRequestSize = \"1KB\"");
    let expected = json!({"message":"Maximum HTTP request size exceeded.","status":413,
        "id":"network.http.request_too_large","code":50397185,"props":[]});

    // Content-Length over the cap: answered before a single body byte is sent.
    let mut client = Raw::connect(&server);
    client.send(b"POST /_query HTTP/1.1\r\nHost: t\r\nContent-Length: 1025\r\n\r\n");
    let answer = client.read_answer(false);
    assert_eq!(answer.status, 413);
    assert_eq!(answer.error(), expected);
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(client.is_closed());

    // Chunked, no length announced: refused once the cap is passed.
    let mut client = Raw::connect(&server);
    let chunk = "x".repeat(600);
    client.send(format!("POST /_query HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n").as_bytes());
    let answer = client.read_answer(false);
    assert_eq!((answer.status, answer.error()), (413, expected.clone()));

    // A gzip bomb: under 1 KB on the wire, 256 KB decoded; the cap applies to decoded bytes.
    let bomb = gzip(&vec![b' '; 1 << 18]);
    assert!(bomb.len() < 1024);
    let answer =
        Raw::connect(&server).request("POST", "/_query", &["Content-Encoding: gzip"], &bomb);
    assert_eq!((answer.status, answer.error()), (413, expected));

    // Exactly at the cap is fine.
    let body = format!(
        r#"{{"controller":"server","action":"now","pad":"{}"}}"#,
        " ".repeat(1024 - 47)
    );
    assert_eq!(body.len(), 1024);
    assert_eq!(
        Raw::connect(&server)
            .request("POST", "/_query", &[], body.as_bytes())
            .status,
        200
    );
}

#[test]
fn headers_one_byte_at_a_time_and_slow_clients() {
    let server = start("headerTimeout = 300\nbodyTimeout = 300");
    let mut client = Raw::connect(&server);
    client.stream.set_nodelay(true).unwrap();
    for byte in b"GET /_now HTTP/1.1\r\nHost: t\r\nX-Kuzzle-Request-Id: slow\r\n\r\n" {
        client.send(&[*byte]);
        std::thread::sleep(Duration::from_millis(2));
    }
    let answer = client.read_answer(false);
    assert_eq!(
        (answer.status, answer.header("x-kuzzle-request-id")),
        (200, Some("slow"))
    );
    // An idle keep-alive connection counts as waiting for headers: closed at headerTimeout.
    let idle_since = std::time::Instant::now();
    assert!(client.is_closed());
    let idle = idle_since.elapsed();
    assert!(
        idle >= Duration::from_millis(250) && idle < Duration::from_secs(5),
        "{idle:?}"
    );

    // Headers that never end: the connection is closed at headerTimeout.
    let mut client = Raw::connect(&server);
    client.send(b"GET /_now HTTP/1.1\r\nHost: t\r\n");
    assert!(client.is_closed());

    // A body that never comes: 400 at bodyTimeout, then closed.
    let mut client = Raw::connect(&server);
    client.send(b"POST /_query HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n{}");
    let answer = client.read_answer(false);
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.error()["message"],
        "Caught an unexpected HTTP error: request body not received within 300 ms"
    );
    assert!(client.is_closed());
}

#[test]
fn cors_preflight_and_origins() {
    let server = start(
        "accessControlAllowOrigin = [\"^https://[a-z]+\\\\.app\\\\.example$\"]\naccessControlAllowOriginUseRegExp = true\naccessControlAllowMethods = \"GET,POST\"",
    );
    let mut client = Raw::connect(&server);
    let preflight = [
        "Origin: https://front.app.example",
        "Access-Control-Request-Method: POST",
        "Access-Control-Request-Headers: content-type, x-kuzzle-volatile",
    ];
    let answer = client.request("OPTIONS", "/_query", &preflight, b"");
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://front.app.example")
    );
    assert_eq!(answer.header("vary"), Some("Origin"));
    assert_eq!(
        answer.header("access-control-allow-methods"),
        Some("GET,POST")
    );
    assert_eq!(
        answer.header("access-control-allow-headers"),
        Some("Content-Type, Access-Control-Allow-Headers, Authorization, X-Requested-With, Content-Encoding, Content-Length, X-Kuzzle-Volatile")
    );

    let answer = client.request("GET", "/_now", &["Origin: https://front.app.example"], b"");
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://front.app.example")
    );

    let answer = client.request("OPTIONS", "/_query", &["Origin: https://evil.example"], b"");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("access-control-allow-origin"), None);
    assert_eq!(answer.header("vary"), Some("Origin"));

    let answer = client.request("GET", "/_now", &["Origin: https://evil.example"], b"");
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.error(),
        json!({"message":"The origin \"https://evil.example\" is not authorized.","status":401,
            "id":"api.process.unauthorized_origin","code":33685516,"props":[]})
    );
    assert_eq!(answer.header("access-control-allow-origin"), None);
}

#[test]
fn compressed_bodies_and_answers() {
    let server = start("");
    let mut client = Raw::connect(&server);
    let answer = client.request(
        "POST",
        "/_query",
        &[
            "Content-Encoding: gzip",
            "Accept-Encoding: deflate;q=0.5, gzip",
        ],
        &gzip(br#"{"controller":"server","action":"now"}"#),
    );
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-encoding"), Some("gzip"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&answer.body[..])
        .read_to_string(&mut text)
        .unwrap();
    let content: Value = serde_json::from_str(&text).unwrap();
    assert!(content["result"]["now"].is_u64());

    let answer = client.request("GET", "/_now", &["Accept-Encoding: deflate"], b"");
    assert_eq!(answer.header("content-encoding"), Some("deflate"));
    let mut text = String::new();
    flate2::read::ZlibDecoder::new(&answer.body[..])
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.contains("\"now\""));

    let server = start("allowCompression = false");
    let answer = Raw::connect(&server).request("GET", "/_now", &["Accept-Encoding: gzip"], b"");
    assert_eq!(answer.header("content-encoding"), None);
    let answer =
        Raw::connect(&server).request("POST", "/_query", &["Content-Encoding: gzip"], &gzip(b"{}"));
    assert_eq!(answer.error()["id"], "network.http.compression_disabled");
}

#[test]
fn publish_over_http_reaches_websocket_subscribers() {
    let server = start("");
    let (mut ws, _) = tungstenite::connect(server.url("websocket")).expect("connect");
    ws.send(tungstenite::Message::text(
        r#"{"controller":"realtime","action":"subscribe","index":"i","collection":"c","body":{},"requestId":"s"}"#,
    ))
    .unwrap();
    let subscribed: Value = serde_json::from_str(ws.read().unwrap().to_text().unwrap()).unwrap();
    assert_eq!(subscribed["status"], 200, "{subscribed}");

    let answer = Raw::connect(&server).request(
        "POST",
        "/i/c/_publish?_id=doc-1",
        &[
            "Content-Type: application/json; charset=utf-8",
            "X-Kuzzle-Volatile: {\"from\":\"http\"}",
        ],
        br#"{"hello":"world"}"#,
    );
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.json()["result"], json!({"published": true}));
    assert_eq!(answer.json()["volatile"], json!({"from":"http"}));

    let notification: Value = serde_json::from_str(ws.read().unwrap().to_text().unwrap()).unwrap();
    assert_eq!(notification["room"], subscribed["result"]["channel"]);
    assert_eq!(notification["protocol"], "http");
    assert_eq!(notification["result"]["_id"], "doc-1");
    assert_eq!(notification["result"]["_source"]["hello"], "world");
    assert_eq!(notification["volatile"], json!({"from":"http"}));

    // The bearer token is the request's `jwt`: a bad one is refused before the action runs.
    let refused = Raw::connect(&server).request(
        "POST",
        "/i/c/_publish",
        &[
            "Content-Type: application/json",
            "Authorization: Bearer a.b.c",
        ],
        br#"{"hello":"world"}"#,
    );
    assert_eq!(refused.status, 401);
    assert_eq!(refused.json()["error"]["id"], "security.token.invalid");
}

#[test]
fn a_standard_client_works() {
    let server = start("");
    let agent = ureq::Agent::new_with_defaults();
    let url = server.url("http");
    for _ in 0..3 {
        let mut response = agent.get(format!("{url}/_now")).call().expect("GET /_now");
        assert_eq!(response.status(), 200);
        let content: Value =
            serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        assert!(content["result"]["now"].is_u64());
    }
}

#[test]
fn the_sdks_http_protocol_publishes_to_a_websocket_subscriber() {
    let server = start("");
    let js = node_modules();
    let output = Command::new("node")
        .arg(js.join("http_publish.js"))
        .arg(server.url("websocket"))
        .arg(server.url("http"))
        .current_dir(js)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("the SDK tests need Node.js on PATH: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "http_publish.js failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let event = |name: &str| {
        events
            .iter()
            .find(|e| e["event"] == name)
            .unwrap_or_else(|| panic!("no {name}: {stdout}"))
    };
    assert_eq!(
        event("routes")["now"],
        json!({"verb":"GET","url":"/_now","path":"/_now"})
    );
    assert!(event("now")["now"].as_u64().unwrap() > 1_700_000_000_000);
    assert_eq!(event("published")["published"], true);
    let notification = event("notification");
    assert_eq!(notification["action"], "publish");
    assert_eq!(notification["protocol"], "http");
    assert_eq!(notification["source"]["tag"], "fromHttp");
    assert_eq!(
        notification["sdkInstanceId"],
        notification["httpInstanceId"]
    );
    assert!(event("done").is_object());
}

/// A `server:now` body of exactly `size` bytes.
fn padded_body(size: usize) -> Vec<u8> {
    let mut text = br#"{"controller":"server","action":"now","pad":""#.to_vec();
    text.resize(size - 2, b'x');
    text.extend_from_slice(b"\"}");
    text
}

/// Which of two sockets gets an answer first (reading both in turn for at most 10 s).
fn which_is_answered(clients: &mut [Raw; 2]) -> usize {
    for client in clients.iter() {
        client
            .stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        for (index, client) in clients.iter_mut().enumerate() {
            let mut chunk = [0u8; 16384];
            match client.stream.read(&mut chunk) {
                Ok(read) => {
                    client.buffer.extend_from_slice(&chunk[..read]);
                    for client in clients.iter() {
                        client
                            .stream
                            .set_read_timeout(Some(Duration::from_secs(10)))
                            .unwrap();
                    }
                    return index;
                }
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(error) => panic!("reading: {error}"),
            }
        }
    }
    panic!("neither request was answered within 10 s");
}

#[test]
fn issue_19_bodies_past_max_total_partial_bytes_get_413() {
    let server = start("maxTotalPartialBytes = \"1MB\"");
    let body = padded_body(700 * 1024);
    let head = format!(
        "POST /_query HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut clients = [Raw::connect(&server), Raw::connect(&server)];
    // 600 KB of each body: 1.2 MB being received, over the 1 MB total. Whichever the server
    // reads second is refused at once; the other is still being read.
    for client in clients.iter_mut() {
        client.send(head.as_bytes());
        client.send(&body[..600 * 1024]);
    }
    let refused = which_is_answered(&mut clients);
    let answer = clients[refused].read_answer(false);
    assert_eq!(answer.status, 413);
    assert_eq!(
        answer.error(),
        json!({"message":"Maximum HTTP request size exceeded: the server holds too many unfinished request bodies; retry later.",
            "status":413,"id":"network.http.request_too_large","code":50397185,"props":[]})
    );
    assert_eq!(answer.header("connection"), Some("close"));
    // Small bodies still get through.
    let small = padded_body(1000);
    assert_eq!(
        Raw::connect(&server)
            .request("POST", "/_query", &[], &small)
            .status,
        200
    );
    // The other one finishes its body and is answered.
    let kept = &mut clients[1 - refused];
    kept.send(&body[600 * 1024..]);
    assert_eq!(kept.read_answer(false).status, 200);
    // Every byte was given back: a whole 700 KB body goes through now.
    assert_eq!(
        Raw::connect(&server)
            .request("POST", "/_query", &[], &body)
            .status,
        200
    );
}
