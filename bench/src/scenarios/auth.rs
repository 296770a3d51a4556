//! A logged-in user for the security benchmarks (issue 15): a role, a profile and a user with
//! `local` credentials created through the API (a fresh data folder lets anonymous do it), then
//! its `auth:login`, over WebSocket or over HTTP (`POST /_query`). `ws-rtt --auth` and
//! `http --auth` send the token it returns with every request; `login` logs in again and again.

use anyhow::{bail, Context as _};
use bytes::{Buf, BytesMut};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::wsclient::{find, WsClient};

/// The record of switchyard measured as the logged-in user (`--auth`).
pub(crate) const USER_TARGET: &str = "switchyard (logged-in user)";

/// `logged-in user / anonymous` for `key`, rounded to 0.001 (null without `--auth`).
pub(super) fn user_vs_anonymous(results: &[Value], key: &str) -> Value {
    let figure = |target: &str| {
        results
            .iter()
            .find(|result| result["target"] == target)
            .and_then(|result| result[key].as_f64())
    };
    match (figure(USER_TARGET), figure("switchyard")) {
        (Some(user), Some(anonymous)) if anonymous > 0.0 => {
            json!((user / anonymous * 1000.0).round() / 1000.0)
        }
        _ => Value::Null,
    }
}

/// The benchmark user's `local` username.
pub(super) const USERNAME: &str = "bench";
/// Its password (the scenario measures hashing, not the secret).
pub(super) const PASSWORD: &str = "bench-password-1";

/// The requests that make the user: a role allowing a few controllers (so its rights are not
/// a lone `*:*`), a profile with that role, the user with `local` credentials.
fn setup_requests() -> Vec<Value> {
    vec![
        json!({
            "controller": "security", "action": "createRole", "_id": "bench",
            "body": {"controllers": {
                "server": {"actions": {"now": true, "info": true}},
                "realtime": {"actions": {"*": true}},
                "document": {"actions": {"get": true, "search": true}},
                "auth": {"actions": {"*": true}},
            }},
        }),
        json!({
            "controller": "security", "action": "createProfile", "_id": "bench",
            "body": {"policies": [{"roleId": "bench"}]},
        }),
        json!({
            "controller": "security", "action": "createUser", "_id": "bench",
            "body": {
                "content": {"profileIds": ["bench"]},
                "credentials": {"local": {"username": USERNAME, "password": PASSWORD}},
            },
        }),
    ]
}

/// `auth:login` with the benchmark user's credentials (`requestId` added by the sender).
pub(super) fn login_request() -> Value {
    json!({
        "controller": "auth", "action": "login", "strategy": "local",
        "body": {"username": USERNAME, "password": PASSWORD},
    })
}

/// The answer's `result`, or the error it carries.
fn result_of(request: &Value, answer: &str) -> anyhow::Result<Value> {
    let answer: Value = serde_json::from_str(answer).context("a JSON answer")?;
    if answer["status"] != 200 {
        bail!(
            "{}:{} answered {}",
            request["controller"].as_str().unwrap_or("?"),
            request["action"].as_str().unwrap_or("?"),
            answer["error"]
        );
    }
    Ok(answer["result"].clone())
}

/// Creates the user over WebSocket at `address` and logs it in; returns its token.
pub(super) async fn user_token_ws(address: &str) -> anyhow::Result<String> {
    let mut client = WsClient::connect(address).await?;
    let mut jwt = Value::Null;
    for (number, mut request) in setup_requests()
        .into_iter()
        .chain([login_request()])
        .enumerate()
    {
        let request_id = format!("bench-setup-{number}");
        request["requestId"] = json!(request_id);
        client.send_text(request.to_string().as_bytes()).await?;
        let answer = client
            .wait_for(&format!("\"requestId\":\"{request_id}\""))
            .await?;
        jwt = result_of(&request, &answer)?["jwt"].clone();
    }
    jwt.as_str()
        .map(str::to_string)
        .context("auth:login answered without a jwt")
}

/// Creates the user over HTTP at `address` (`POST /_query`) and logs it in; returns its token.
pub(super) async fn user_token_http(address: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(address).await?;
    let mut buffer = BytesMut::with_capacity(8192);
    let mut jwt = Value::Null;
    for request in setup_requests().into_iter().chain([login_request()]) {
        let body = request.to_string();
        let head = format!(
            "POST /_query HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        let answer = read_body(&mut stream, &mut buffer).await?;
        jwt = result_of(&request, &answer)?["jwt"].clone();
    }
    jwt.as_str()
        .map(str::to_string)
        .context("auth:login answered without a jwt")
}

/// Reads one response with a `Content-Length` body, whatever its status; returns the body.
async fn read_body(stream: &mut TcpStream, buffer: &mut BytesMut) -> anyhow::Result<String> {
    loop {
        if let Some(end) = find(buffer, b"\r\n\r\n") {
            let head = std::str::from_utf8(&buffer[..end]).context("ASCII headers")?;
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .context("an answer without Content-Length")?;
            if buffer.len() >= end + 4 + length {
                let body = String::from_utf8_lossy(&buffer[end + 4..end + 4 + length]).to_string();
                buffer.advance(end + 4 + length);
                return Ok(body);
            }
        }
        if stream.read_buf(buffer).await? == 0 {
            bail!("the server closed the connection");
        }
    }
}
