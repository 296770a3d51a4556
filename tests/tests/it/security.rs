//! Security against the real binary over real sockets (tungstenite, raw HTTP/1.1): Kuzzle's
//! 429s (the profiles' `rateLimit`, `limits.loginsPerSecond` per connection, the failed-login
//! lockout across protocols), and no password, hash, secret or token in any response (but
//! where Kuzzle returns the token) or any log line, logging at `trace`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_tests::{protocol_section, Server};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// Cheap Argon2 parameters (the binary under test is a debug build).
const CHEAP_ARGON2: &str = "[security.argon2]\nmemoryKib = 64\niterations = 1\nparallelism = 1\n";

fn config(extra: &str) -> String {
    format!(
        "[server]\n{}{}{CHEAP_ARGON2}{extra}",
        protocol_section(
            "websocket",
            "websocket",
            "port = 0\naddress = \"127.0.0.1\""
        ),
        protocol_section("http", "http", "port = 0\naddress = \"127.0.0.1\""),
    )
}

/// A WebSocket client speaking Kuzzle's JSON requests.
struct Ws(WebSocket<MaybeTlsStream<TcpStream>>);

impl Ws {
    fn connect(server: &Server) -> Ws {
        let (socket, _) = tungstenite::connect(server.url("websocket")).expect("connect");
        if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
            stream
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
        }
        Ws(socket)
    }

    fn send(&mut self, request: &Value) {
        self.0
            .send(Message::text(request.to_string()))
            .expect("send");
    }

    /// The next text frame.
    fn receive(&mut self) -> String {
        loop {
            match self.0.read().expect("a frame before the timeout") {
                Message::Text(text) => return text.to_string(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// Sends `request` and returns its answer's text (the next frame: no subscription here).
    fn call_text(&mut self, request: Value) -> String {
        self.send(&request);
        self.receive()
    }

    fn call(&mut self, request: Value) -> Value {
        serde_json::from_str(&self.call_text(request)).expect("JSON")
    }
}

/// One HTTP/1.1 request on its own connection: (status, body).
fn http(server: &Server, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(server.address("http")).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{headers}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("an answer");
    let status = answer[9..12].parse().expect("a status line");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return (status, body.to_owned());
    }
    let (mut rest, mut decoded) = (body, String::new());
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        if size == 0 {
            break;
        }
        decoded.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    (status, decoded)
}

/// `{id, status, message}` of an answer's error.
fn error_of(answer: &Value) -> Value {
    let error = &answer["error"];
    json!({"id": error["id"], "status": error["status"], "message": error["message"]})
}

fn too_many_requests() -> Value {
    json!({"id": "api.process.too_many_requests", "status": 429,
           "message": "Rejected: requests rate limit exceeded for this user."})
}

fn too_many_logins() -> Value {
    json!({"id": "api.process.too_many_logins_requests", "status": 429,
           "message": "Rejected: Too many login attempts per second"})
}

fn login_request(username: &str, password: &str) -> Value {
    json!({"controller": "auth", "action": "login", "strategy": "local",
           "body": {"username": username, "password": password}})
}

/// Sends every request at once, then reads as many answers: all pass the gate before the
/// first is answered.
fn pipelined(ws: &mut Ws, requests: &[Value]) -> Vec<Value> {
    for request in requests {
        ws.send(request);
    }
    (0..requests.len())
        .map(|_| serde_json::from_str(&ws.receive()).expect("JSON"))
        .collect()
}

#[test]
fn kuzzles_rate_limits_answer_429_over_websocket() {
    let server = Server::start(&config(""));
    let mut setup = Ws::connect(&server);
    let profile = setup.call(json!({"controller": "security", "action": "createProfile",
        "_id": "limited", "body": {"policies": [{"roleId": "default"}], "rateLimit": 2}}));
    assert_eq!(profile["status"], 200, "{profile}");
    let user = setup.call(
        json!({"controller": "security", "action": "createUser", "_id": "u",
        "body": {"content": {"profileIds": ["limited"]},
                 "credentials": {"local": {"username": "u", "password": "p"}}}}),
    );
    assert_eq!(user["status"], 200, "{user}");

    let mut client = Ws::connect(&server);
    let jwt = client.call(login_request("u", "p"))["result"]["jwt"]
        .as_str()
        .expect("a jwt")
        .to_owned();
    // Ten requests within at most two one-second windows: two pass per window.
    let now = json!({"controller": "server", "action": "now", "jwt": jwt});
    let answers = pipelined(&mut client, &vec![now.clone(); 10]);
    let passed = answers.iter().filter(|a| a["status"] == 200).count();
    assert!((2..=4).contains(&passed), "{answers:?}");
    for refused in answers.iter().filter(|a| a["status"] != 200) {
        assert_eq!(error_of(refused), too_many_requests());
        assert_eq!(refused["error"]["code"], 33685512);
    }
    // Logging out is never limited.
    let mut burst = vec![now; 4];
    burst.push(json!({"controller": "auth", "action": "logout", "jwt": jwt}));
    let answers = pipelined(&mut client, &burst);
    let logout = answers
        .iter()
        .find(|a| a["action"] == "logout")
        .expect("its answer");
    assert_eq!(
        logout["result"],
        json!({"acknowledged": true}),
        "{answers:?}"
    );

    // Logins: one per connection per second (Kuzzle's default), whatever their outcome.
    let mut logins = Ws::connect(&server);
    let answers = pipelined(&mut logins, &vec![login_request("u", "p"); 5]);
    let passed = answers.iter().filter(|a| a["status"] == 200).count();
    assert!((1..=2).contains(&passed), "{answers:?}");
    for refused in answers.iter().filter(|a| a["status"] != 200) {
        assert_eq!(error_of(refused), too_many_logins());
        assert_eq!(refused["error"]["code"], 33685517);
    }
}

#[test]
fn a_locked_out_login_is_refused_on_every_protocol_from_that_address() {
    let server = Server::start(&config(
        "[security.loginLockout]\nmaxFailures = 3\nfailureWindow = 60000\nlockoutDuration = 600000\n",
    ));
    let mut setup = Ws::connect(&server);
    for (kuid, password) in [("alice", "right"), ("bob", "right")] {
        let user = setup.call(
            json!({"controller": "security", "action": "createUser", "_id": kuid,
            "body": {"content": {"profileIds": ["default"]},
                     "credentials": {"local": {"username": kuid, "password": password}}}}),
        );
        assert_eq!(user["status"], 200, "{user}");
    }
    // Three wrong passwords over HTTP, each on its own connection (one login per connection
    // per second).
    let login = |username: &str, password: &str| {
        let (status, body) = http(
            &server,
            "POST",
            "/_login/local",
            "",
            &json!({"username": username, "password": password}).to_string(),
        );
        (status, serde_json::from_str::<Value>(&body).expect("JSON"))
    };
    for _ in 0..3 {
        let (status, answer) = login("alice", "guess");
        assert_eq!(status, 401);
        assert_eq!(
            error_of(&answer),
            json!({"id": "plugin.strategy.missing_user", "status": 401,
                   "message": "wrong username or password"})
        );
    }
    // The right password no longer helps, over HTTP or WebSocket...
    let (status, answer) = login("alice", "right");
    assert_eq!((status, error_of(&answer)), (429, too_many_logins()));
    let over_ws = Ws::connect(&server).call(login_request("alice", "right"));
    assert_eq!(error_of(&over_ws), too_many_logins());
    // ...and the address is locked for every username.
    let (status, answer) = login("bob", "right");
    assert_eq!((status, error_of(&answer)), (429, too_many_logins()));
}

const ROOT_PASSWORD: &str = "Root-Pa55word-7f3c1";
const ALICE_PASSWORD: &str = "Alice-Pa55word-91b2e";
const ALICE_NEW_PASSWORD: &str = "Alice-NewPa55-4d8a0";
const BOB_PASSWORD: &str = "Bob-Pa55word-c0ffee";
const BOB_NEW_PASSWORD: &str = "Bob-NewPa55-b00b1e5";
const WRONG_PASSWORD: &str = "Wrong-Guess-0a1b2c";
const JWT_SECRET: &str = "jwt-secret-5ac7e2b19f4d";

/// The actions whose answers carry a token (Kuzzle returns it there, and only there).
const ISSUERS: &[&str] = &["login", "refreshToken", "createApiKey", "createToken"];

/// Every answer of a security scenario, with its action.
#[derive(Default)]
struct Captured {
    answers: Vec<(String, String)>,
    tokens: Vec<String>,
}

impl Captured {
    fn call(&mut self, ws: &mut Ws, request: Value) -> Value {
        let action = request["action"].as_str().unwrap().to_owned();
        let text = ws.call_text(request);
        let answer: Value = serde_json::from_str(&text).expect("JSON");
        for token in [
            &answer["result"]["jwt"],
            &answer["result"]["token"],
            &answer["result"]["_source"]["token"],
        ] {
            if let Some(token) = token.as_str() {
                self.tokens.push(token.to_owned());
            }
        }
        self.answers.push((action, text));
        answer
    }
}

#[test]
fn no_password_hash_secret_or_token_reaches_a_response_or_a_log_line() {
    let server = Server::start_with_log(
        &config(&format!(
            "[limits]\nloginsPerSecond = 1000\n[security.authToken]\nsecret = \"{JWT_SECRET}\"\n"
        )),
        "trace",
    );
    let mut seen = Captured::default();
    let mut admin = Ws::connect(&server);
    let ok = |seen: &mut Captured, ws: &mut Ws, request: Value| {
        let answer = seen.call(ws, request);
        assert_eq!(answer["status"], 200, "{answer}");
        answer
    };
    ok(
        &mut seen,
        &mut admin,
        json!({"controller": "security", "action": "createFirstAdmin",
        "_id": "root", "reset": true,
        "body": {"content": {}, "credentials": {"local": {"username": "root", "password": ROOT_PASSWORD}}}}),
    );
    let root = ok(&mut seen, &mut admin, login_request("root", ROOT_PASSWORD))["result"]["jwt"]
        .as_str()
        .unwrap()
        .to_owned();
    let as_root = |mut request: Value| {
        request["jwt"] = json!(root);
        request
    };
    ok(
        &mut seen,
        &mut admin,
        as_root(json!({"controller": "security", "action": "createRole",
        "_id": "self", "body": {"controllers": {"auth": {"actions": {"*": true}}}}})),
    );
    ok(
        &mut seen,
        &mut admin,
        as_root(json!({"controller": "security", "action": "createProfile",
        "_id": "self", "body": {"policies": [{"roleId": "self"}]}})),
    );
    ok(
        &mut seen,
        &mut admin,
        as_root(json!({"controller": "security", "action": "createUser",
        "_id": "alice", "body": {"content": {"profileIds": ["self"], "name": "Alice"},
            "credentials": {"local": {"username": "alice", "password": ALICE_PASSWORD}}}})),
    );
    ok(
        &mut seen,
        &mut admin,
        as_root(
            json!({"controller": "security", "action": "createRestrictedUser",
        "_id": "bob", "body": {"content": {},
            "credentials": {"local": {"username": "bob", "password": BOB_PASSWORD}}}}),
        ),
    );

    let mut alice = Ws::connect(&server);
    for username in ["alice", "bob", "nobody"] {
        let refused = seen.call(&mut alice, login_request(username, WRONG_PASSWORD));
        assert_eq!(refused["status"], 401, "{refused}");
    }
    let jwt = ok(
        &mut seen,
        &mut alice,
        login_request("alice", ALICE_PASSWORD),
    )["result"]["jwt"]
        .as_str()
        .unwrap()
        .to_owned();
    let as_alice = |jwt: &str, mut request: Value| {
        request["jwt"] = json!(jwt);
        request
    };
    for action in ["getCurrentUser", "getMyRights", "getStrategies"] {
        ok(
            &mut seen,
            &mut alice,
            as_alice(&jwt, json!({"controller": "auth", "action": action})),
        );
    }
    for action in ["getMyCredentials", "credentialsExist"] {
        ok(
            &mut seen,
            &mut alice,
            as_alice(
                &jwt,
                json!({"controller": "auth", "action": action, "strategy": "local"}),
            ),
        );
    }
    for password in [ALICE_PASSWORD, WRONG_PASSWORD] {
        seen.call(
            &mut alice,
            as_alice(
                &jwt,
                json!({"controller": "auth",
            "action": "validateMyCredentials", "strategy": "local",
            "body": {"username": "alice", "password": password}}),
            ),
        );
    }
    ok(
        &mut seen,
        &mut alice,
        as_alice(
            &jwt,
            json!({"controller": "auth",
        "action": "updateMyCredentials", "strategy": "local",
        "body": {"password": ALICE_NEW_PASSWORD}}),
        ),
    );
    ok(
        &mut seen,
        &mut alice,
        as_alice(
            &jwt,
            json!({"controller": "auth", "action": "createApiKey",
        "body": {"description": "ci"}}),
        ),
    );
    ok(
        &mut seen,
        &mut alice,
        as_alice(
            &jwt,
            json!({"controller": "auth", "action": "searchApiKeys",
        "body": {}}),
        ),
    );
    ok(
        &mut seen,
        &mut alice,
        as_alice(
            &jwt,
            json!({"controller": "auth", "action": "createToken",
        "expiresIn": "1m"}),
        ),
    );
    let refreshed = ok(
        &mut seen,
        &mut alice,
        as_alice(
            &jwt,
            json!({"controller": "auth", "action": "refreshToken"}),
        ),
    )["result"]["jwt"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(
        &mut seen,
        &mut alice,
        json!({"controller": "auth", "action": "checkToken",
        "body": {"token": refreshed}}),
    );

    for request in [
        json!({"controller": "security", "action": "getUser", "_id": "alice"}),
        json!({"controller": "security", "action": "searchUsers", "body": {}}),
        json!({"controller": "security", "action": "getCredentials", "strategy": "local", "_id": "alice"}),
        json!({"controller": "security", "action": "hasCredentials", "strategy": "local", "_id": "bob"}),
        json!({"controller": "security", "action": "updateCredentials", "strategy": "local",
               "_id": "bob", "body": {"password": BOB_NEW_PASSWORD}}),
        json!({"controller": "security", "action": "searchApiKeys", "userId": "alice", "body": {}}),
        json!({"controller": "security", "action": "createApiKey", "userId": "bob",
               "body": {"description": "bob's"}}),
        json!({"controller": "security", "action": "getUserRights", "_id": "alice"}),
        json!({"controller": "security", "action": "getProfile", "_id": "self"}),
    ] {
        ok(&mut seen, &mut admin, as_root(request));
    }
    ok(
        &mut seen,
        &mut alice,
        as_alice(
            &refreshed,
            json!({"controller": "auth", "action": "logout", "global": true}),
        ),
    );
    let revoked = seen.call(
        &mut alice,
        as_alice(
            &refreshed,
            json!({"controller": "auth", "action": "getCurrentUser"}),
        ),
    );
    assert_eq!(
        revoked["error"]["id"], "security.token.invalid",
        "{revoked}"
    );

    // Over HTTP too: a login, then the caller's user with the token in a header.
    let (status, body) = http(
        &server,
        "POST",
        "/_login/local",
        "",
        &json!({"username": "bob", "password": BOB_NEW_PASSWORD}).to_string(),
    );
    assert_eq!(status, 200, "{body}");
    let bob: Value = serde_json::from_str(&body).unwrap();
    let bob_jwt = bob["result"]["jwt"].as_str().unwrap().to_owned();
    seen.tokens.push(bob_jwt.clone());
    seen.answers.push(("login".into(), body));
    let (status, body) = http(
        &server,
        "GET",
        "/users/_me",
        &format!("Authorization: Bearer {bob_jwt}\r\n"),
        "",
    );
    assert_eq!(status, 200, "{body}");
    seen.answers.push(("getCurrentUser".into(), body));

    server.signal(nix::sys::signal::Signal::SIGTERM);
    server.wait_for_log(&["stopped"], Duration::from_secs(20));
    let log = server.log();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "the log is not at trace level:\n{log}"
    );
    assert_eq!(
        seen.tokens.len(),
        7,
        "login ×2, createApiKey ×2, createToken, refresh, HTTP login"
    );

    let passwords = [
        ROOT_PASSWORD,
        ALICE_PASSWORD,
        ALICE_NEW_PASSWORD,
        BOB_PASSWORD,
        BOB_NEW_PASSWORD,
        WRONG_PASSWORD,
    ];
    let forbidden_everywhere = passwords.iter().chain([
        &JWT_SECRET,
        &"$argon2",
        &"argon2id",
        &"pbkdf2",
        &"userPassword",
        &"userSalt",
    ]);
    for needle in forbidden_everywhere {
        for (action, text) in &seen.answers {
            assert!(
                !text.contains(needle),
                "{needle:?} in the answer of {action}: {text}"
            );
        }
        assert!(!log.contains(needle), "{needle:?} in the log:\n{log}");
    }
    for token in &seen.tokens {
        // The JWT without its prefix: a log line might hold either form.
        let jwt_part = token.split_once('-').map_or(token.as_str(), |(_, jwt)| jwt);
        for (action, text) in &seen.answers {
            if text.contains(jwt_part) {
                assert!(
                    ISSUERS.contains(&action.as_str()),
                    "a token in the answer of {action}: {text}"
                );
            }
        }
        assert!(!log.contains(jwt_part), "a token in the log:\n{log}");
    }
}

#[test]
fn a_publication_is_signed_with_its_authors_kuid() {
    let server = Server::start(&config(""));
    let mut setup = Ws::connect(&server);
    let user = setup.call(
        json!({"controller": "security", "action": "createUser", "_id": "u",
        "body": {"content": {"profileIds": ["default"]},
                 "credentials": {"local": {"username": "u", "password": "p"}}}}),
    );
    assert_eq!(user["status"], 200, "{user}");
    let subscribed = setup.call(json!({"controller": "realtime", "action": "subscribe",
        "index": "i", "collection": "c", "body": {}}));
    assert_eq!(subscribed["status"], 200, "{subscribed}");
    let mut author = Ws::connect(&server);
    let jwt = author.call(login_request("u", "p"))["result"]["jwt"]
        .as_str()
        .unwrap()
        .to_owned();
    let published = author.call(json!({"controller": "realtime", "action": "publish",
        "jwt": jwt, "index": "i", "collection": "c", "body": {"n": 1}}));
    assert_eq!(published["status"], 200, "{published}");
    let notification: Value = serde_json::from_str(&setup.receive()).unwrap();
    assert_eq!(notification["result"]["_source"]["n"], 1, "{notification}");
    assert_eq!(
        notification["result"]["_source"]["_kuzzle_info"]["author"],
        "u"
    );
}

/// The gate remembers each token it admitted per plugin thread (`host/src/security/service.rs`):
/// a role change, and a logout from another connection, hold from the very next request of a
/// connection whose token is remembered, over WebSocket and over HTTP.
#[test]
fn a_changed_role_or_a_logout_elsewhere_holds_from_the_very_next_request() {
    let server = Server::start(&config(""));
    let mut setup = Ws::connect(&server);
    for request in [
        json!({"controller": "security", "action": "createRole", "_id": "r",
               "body": {"controllers": {"server": {"actions": {"now": true}},
                                        "auth": {"actions": {"*": true}}}}}),
        json!({"controller": "security", "action": "createProfile", "_id": "p",
               "body": {"policies": [{"roleId": "r"}]}}),
        json!({"controller": "security", "action": "createUser", "_id": "u",
               "body": {"content": {"profileIds": ["p"]},
                        "credentials": {"local": {"username": "u", "password": "p"}}}}),
    ] {
        let answer = setup.call(request);
        assert_eq!(answer["status"], 200, "{answer}");
    }
    let mut client = Ws::connect(&server);
    let jwt = client.call(login_request("u", "p"))["result"]["jwt"]
        .as_str()
        .expect("a jwt")
        .to_owned();
    let now = json!({"controller": "server", "action": "now", "jwt": jwt});
    let bearer = format!("Authorization: Bearer {jwt}\r\n");
    let http_now = || http(&server, "GET", "/_now", &bearer, "");
    for _ in 0..3 {
        assert_eq!(client.call(now.clone())["status"], 200);
        assert_eq!(http_now().0, 200);
    }

    let denied = setup.call(
        json!({"controller": "security", "action": "updateRole", "_id": "r",
        "body": {"controllers": {"server": {"actions": {"now": false}},
                                 "auth": {"actions": {"*": true}}}}}),
    );
    assert_eq!(denied["status"], 200, "{denied}");
    let forbidden = json!({"id": "security.rights.forbidden", "status": 403,
        "message": "Insufficient permissions to execute the action \"server:now\" (User \"u\")."});
    assert_eq!(error_of(&client.call(now.clone())), forbidden);
    let (status, body) = http_now();
    assert_eq!(status, 403, "{body}");
    assert_eq!(error_of(&serde_json::from_str(&body).unwrap()), forbidden);

    let allowed = setup.call(
        json!({"controller": "security", "action": "updateRole", "_id": "r",
        "body": {"controllers": {"server": {"actions": {"now": true}},
                                 "auth": {"actions": {"*": true}}}}}),
    );
    assert_eq!(allowed["status"], 200, "{allowed}");
    for _ in 0..3 {
        assert_eq!(client.call(now.clone())["status"], 200);
        assert_eq!(http_now().0, 200);
    }

    // Logged out from another connection.
    let logout = setup.call(json!({"controller": "auth", "action": "logout", "jwt": jwt}));
    assert_eq!(logout["result"], json!({"acknowledged": true}), "{logout}");
    let invalid =
        json!({"id": "security.token.invalid", "status": 401, "message": "Invalid token."});
    assert_eq!(error_of(&client.call(now.clone())), invalid);
    let (status, body) = http_now();
    assert_eq!(status, 401, "{body}");
    assert_eq!(error_of(&serde_json::from_str(&body).unwrap()), invalid);
}
