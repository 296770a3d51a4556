//! The opening handshake (RFC 6455 §4.2): parse the HTTP upgrade request, answer 101 or an
//! HTTP error that says what was wrong.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::ws::deflate;

/// Largest upgrade request accepted; browsers send well under 2 KB.
pub const MAX_REQUEST_LEN: usize = 8 * 1024;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A valid upgrade request.
#[derive(Debug, PartialEq, Eq)]
pub struct Upgrade {
    /// The `101 Switching Protocols` response to send.
    pub response: Vec<u8>,
    /// The request's headers, for the host's `ClientConnection`.
    pub headers: Vec<(String, String)>,
    /// permessage-deflate was negotiated.
    pub deflate: bool,
    /// Length of the request in the buffer; bytes after it are the client's first frames.
    pub request_len: usize,
}

/// A refused request: the HTTP response to send before closing, and why (for the log).
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The complete HTTP response.
    pub response: Vec<u8>,
    /// What was wrong.
    pub reason: String,
}

/// Parses the request at the start of `buffer`. `Ok(None)`: incomplete, read more.
pub fn parse(buffer: &[u8], compression: bool) -> Result<Option<Upgrade>, Refusal> {
    let mut header_storage = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut header_storage);
    let request_len = match request.parse(buffer) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buffer.len() < MAX_REQUEST_LEN => return Ok(None),
        Ok(httparse::Status::Partial) => {
            return Err(refuse(
                431,
                "Request Header Fields Too Large",
                "request too large",
            ))
        }
        Err(error) => {
            return Err(refuse(
                400,
                "Bad Request",
                &format!("malformed HTTP request: {error}"),
            ))
        }
    };
    if request.method != Some("GET") {
        return Err(refuse(
            405,
            "Method Not Allowed",
            "a WebSocket handshake must use GET",
        ));
    }
    if request.version != Some(1) {
        return Err(refuse(
            400,
            "Bad Request",
            "a WebSocket handshake must use HTTP/1.1",
        ));
    }
    let header = |name: &str| -> Vec<&str> {
        request
            .headers
            .iter()
            .filter(|header| header.name.eq_ignore_ascii_case(name))
            .filter_map(|header| std::str::from_utf8(header.value).ok())
            .collect()
    };
    let has_token = |name: &str, token: &str| {
        header(name)
            .iter()
            .flat_map(|value| value.split(','))
            .any(|item| item.trim().eq_ignore_ascii_case(token))
    };
    if !has_token("upgrade", "websocket") {
        return Err(upgrade_required(
            "this port serves WebSocket connections only",
        ));
    }
    if !has_token("connection", "upgrade") {
        return Err(refuse(
            400,
            "Bad Request",
            "missing \"Connection: Upgrade\"",
        ));
    }
    if header("host").is_empty() {
        return Err(refuse(400, "Bad Request", "missing Host header"));
    }
    if header("sec-websocket-version") != ["13"] {
        return Err(upgrade_required(
            "unsupported Sec-WebSocket-Version (this server speaks 13)",
        ));
    }
    let key = match header("sec-websocket-key").as_slice() {
        [key] if is_valid_key(key) => key.trim().to_string(),
        _ => {
            return Err(refuse(
                400,
                "Bad Request",
                "missing or invalid Sec-WebSocket-Key",
            ))
        }
    };
    let deflate =
        compression && deflate::accepts_offer(&header("sec-websocket-extensions").join(","));

    let mut response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        accept_key(&key)
    );
    if deflate {
        response.push_str("Sec-WebSocket-Extensions: ");
        response.push_str(deflate::RESPONSE);
        response.push_str("\r\n");
    }
    response.push_str("\r\n");
    let headers = request
        .headers
        .iter()
        .map(|header| {
            (
                header.name.to_string(),
                String::from_utf8_lossy(header.value).into_owned(),
            )
        })
        .collect();
    Ok(Some(Upgrade {
        response: response.into_bytes(),
        headers,
        deflate,
        request_len,
    }))
}

/// True for a well-formed `Sec-WebSocket-Key`: 16 bytes in base64 (surrounding spaces allowed).
pub fn is_valid_key(key: &str) -> bool {
    BASE64
        .decode(key.trim())
        .is_ok_and(|bytes| bytes.len() == 16)
}

/// `Sec-WebSocket-Accept` for a client's key.
pub fn accept_key(key: &str) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key.as_bytes());
    sha1.update(GUID.as_bytes());
    BASE64.encode(sha1.finalize())
}

fn refuse(status: u16, text: &str, reason: &str) -> Refusal {
    refusal(status, text, reason, "")
}

fn upgrade_required(reason: &str) -> Refusal {
    refusal(
        426,
        "Upgrade Required",
        reason,
        "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
    )
}

fn refusal(status: u16, text: &str, reason: &str, extra_headers: &str) -> Refusal {
    let body = format!("{reason}\n");
    let response = format!(
        "HTTP/1.1 {status} {text}\r\n{extra_headers}Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    Refusal {
        response: response.into_bytes(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn request(extra: &str) -> String {
        format!(
            "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
    }

    #[test]
    fn rfc_6455_example_key() {
        assert_eq!(accept_key(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert!(is_valid_key(KEY));
        assert!(is_valid_key(" dGhlIHNhbXBsZSBub25jZQ== "));
        assert!(!is_valid_key("c2hvcnQ="));
        assert!(!is_valid_key("not base64!"));
    }

    #[test]
    fn a_valid_request_is_upgraded() {
        let text = request("X-Custom: yes\r\n");
        let mut buffer = text.clone().into_bytes();
        buffer.extend_from_slice(b"\x81\x80");
        let upgrade = parse(&buffer, false).unwrap().unwrap();
        assert_eq!(upgrade.request_len, text.len());
        assert!(!upgrade.deflate);
        assert_eq!(
            String::from_utf8(upgrade.response).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
        assert!(upgrade
            .headers
            .contains(&("X-Custom".to_string(), "yes".to_string())));
    }

    #[test]
    fn deflate_is_negotiated_only_when_enabled_and_offered() {
        let offered =
            request("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n");
        let upgrade = parse(offered.as_bytes(), true).unwrap().unwrap();
        assert!(upgrade.deflate);
        assert!(String::from_utf8(upgrade.response).unwrap().contains(
            "\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"
        ));
        assert!(!parse(offered.as_bytes(), false).unwrap().unwrap().deflate);
        assert!(
            !parse(request("").as_bytes(), true)
                .unwrap()
                .unwrap()
                .deflate
        );
    }

    #[test]
    fn partial_requests_wait_for_more() {
        let text = request("");
        assert_eq!(parse(&text.as_bytes()[..text.len() - 1], false), Ok(None));
    }

    #[test]
    fn bad_requests_are_refused_with_a_reason() {
        let good = request("");
        let cases = [
            (
                good.replace("GET", "POST"),
                405,
                "a WebSocket handshake must use GET",
            ),
            (
                good.replace("HTTP/1.1", "HTTP/1.0"),
                400,
                "a WebSocket handshake must use HTTP/1.1",
            ),
            (
                good.replace("Upgrade: websocket\r\n", ""),
                426,
                "this port serves WebSocket connections only",
            ),
            (
                good.replace("keep-alive, Upgrade", "keep-alive"),
                400,
                "missing \"Connection: Upgrade\"",
            ),
            (
                good.replace("Host: server.example.com\r\n", ""),
                400,
                "missing Host header",
            ),
            (
                good.replace("Version: 13", "Version: 8"),
                426,
                "unsupported Sec-WebSocket-Version (this server speaks 13)",
            ),
            (
                good.replace(KEY, "c2hvcnQ="),
                400,
                "missing or invalid Sec-WebSocket-Key",
            ),
            (
                "GET / HTTP/1.1\r\nHost\r\n\r\n".to_string(),
                400,
                "malformed HTTP request: invalid header name",
            ),
        ];
        for (text, status, reason) in cases {
            let refusal = parse(text.as_bytes(), false).unwrap_err();
            assert_eq!(refusal.reason, reason);
            let response = String::from_utf8(refusal.response).unwrap();
            assert!(
                response.starts_with(&format!("HTTP/1.1 {status} ")),
                "{response}"
            );
            assert!(
                response.ends_with(&format!("\r\n\r\n{reason}\n")),
                "{response}"
            );
        }
        let huge = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_REQUEST_LEN));
        assert_eq!(
            parse(huge.as_bytes(), false).unwrap_err().reason,
            "request too large"
        );
    }
}
