//! Writing a refusal (see `gate`): what a refused client is told, in its protocol's terms, and
//! the one way it is written — read what the client sends first, answer, close, read until the
//! client closes too. Reading first matters: closing a socket with unread bytes makes the
//! kernel send a reset, which can discard the answer before the client reads it.
//!
//! The accept loop bounds every refusal in time (`gate::REFUSAL_TIMEOUT`) and in number
//! (`gate::MAX_REFUSALS_IN_PROGRESS`), so a refused client is never waited on for long.

use switchyard_plugin_api::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::gate::Refusal;

/// The most read from a refused client before answering (an HTTP request's head).
const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// What to read from a refused client before answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// An HTTP request's head, up to the blank line (or 8 KB).
    HttpHead,
    /// Whatever arrives first (an MQTT CONNECT).
    FirstBytes,
}

/// Kuzzle's error response body, as the HTTP plugin writes one for an error answered before
/// any request is read: `{"requestId":null,"status":429,"error":{…},"controller":null,…}`.
pub fn kuzzle_error_body(refusal: Refusal) -> String {
    let error = refusal.error();
    let mut body = String::with_capacity(320);
    body.push_str("{\"requestId\":null,\"status\":");
    json::push_u64(&mut body, error.status().into());
    body.push_str(",\"error\":");
    error.write_json(&mut body);
    body.push_str(
        ",\"controller\":null,\"action\":null,\"collection\":null,\"index\":null,\
         \"volatile\":null,\"headers\":{},\"result\":null}",
    );
    body
}

/// A whole HTTP/1.1 answer refusing the connection: 429 for the per-address limits (503 for
/// the descriptor reserve, though the accept loop closes those without a word), `Retry-After:
/// 1`, Kuzzle's error body, `Connection: close`. What HTTP, a WebSocket handshake and
/// Socket.io's first request get.
pub fn http_answer(refusal: Refusal) -> Vec<u8> {
    let body = kuzzle_error_body(refusal);
    let status = match refusal.error().status() {
        429 => "429 Too Many Requests",
        _ => "503 Service Unavailable",
    };
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nRetry-After: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads what `wait` asks for, writes `answer`, closes the write side and reads until the
/// client closes. Errors end it quietly: the client is refused either way. The caller bounds
/// it in time.
pub async fn answer(mut stream: TcpStream, answer: &[u8], wait: Wait) {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(read) => head.extend_from_slice(&chunk[..read]),
        }
        let done = match wait {
            Wait::FirstBytes => true,
            Wait::HttpHead => head.windows(4).any(|window| window == b"\r\n\r\n"),
        };
        if done || head.len() >= MAX_REQUEST_HEAD {
            break;
        }
    }
    if stream.write_all(answer).await.is_err() || stream.shutdown().await.is_err() {
        return;
    }
    // Until the client closes (bounded by the caller's timeout): what it sends is discarded.
    while let Ok(read) = stream.read(&mut chunk).await {
        if read == 0 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_answer_carries_kuzzles_error_shape() {
        let answer = String::from_utf8(http_answer(Refusal::TooManyConnections)).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert_eq!(
            head,
            format!(
                "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: {}\r\nRetry-After: 1\r\nconnection: close",
                body.len()
            )
        );
        assert_eq!(
            body,
            r#"{"requestId":null,"status":429,"error":{"message":"Rejected: too many connections from this address","status":429,"id":"network.entrypoint.too_many_connections","code":50593892,"props":[]},"controller":null,"action":null,"collection":null,"index":null,"volatile":null,"headers":{},"result":null}"#
        );
        let answer = String::from_utf8(http_answer(Refusal::OutOfFileDescriptors)).unwrap();
        assert!(answer.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
    }
}
