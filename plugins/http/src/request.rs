//! Turning an HTTP request into Kuzzle's JSON API request.
//!
//! REST routes (as Kuzzle's `RouteHandler`): query-string arguments first, then `body`, URL
//! placeholders, `jwt` from `Authorization: Bearer`, `volatile` from `X-Kuzzle-Volatile`, and
//! the route's controller and action last, so a query string cannot override them. `POST
//! /_query` takes the body as the request and only fills in `jwt` and `requestId`.

use serde_json::{Map, Value};
use switchyard_plugin_api::errors::{self, KuzzleError};
use switchyard_plugin_api::json;

use crate::errors::{
    API_ASSERT_PERSISTENT_CONNECTION_REQUIRED, NETWORK_HTTP_VOLATILE_PARSE_FAILED,
};

/// What the headers add to a request.
#[derive(Debug, Default, Clone, Copy)]
pub struct HeaderArgs<'a> {
    /// From `Authorization: Bearer <jwt>` ([`bearer`]).
    pub jwt: Option<Jwt<'a>>,
    /// From `X-Kuzzle-Volatile`, already checked to be JSON ([`volatile`]).
    pub volatile: Option<&'a Value>,
}

/// A token from `Authorization`, and whether it is known to need no escape as a JSON string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jwt<'a> {
    /// The token's text.
    pub text: &'a str,
    /// True when JSON holds it as it is (no `"`, `\\` or control character): it is written
    /// between quotes without another scan.
    pub plain: bool,
}

/// `X-Kuzzle-Volatile` as JSON, or Kuzzle's error when it is not.
pub fn volatile(raw: Option<&[u8]>) -> Result<Option<Value>, KuzzleError> {
    match raw {
        None => Ok(None),
        Some(raw) => match serde_json::from_slice::<Value>(raw) {
            Ok(value) => Ok(Some(value)),
            Err(error) => Err(NETWORK_HTTP_VOLATILE_PARSE_FAILED.with(&[&error.to_string()])),
        },
    }
}

/// The token of an `Authorization: Bearer <jwt>` header (scheme case-insensitive, as Kuzzle),
/// when it is text. `known` is the socket's memory of the token its requests carry.
pub fn bearer<'a>(authorization: &'a [u8], known: &'a mut KnownToken) -> Option<Jwt<'a>> {
    let (scheme, token) = authorization.split_at_checked(7)?;
    // The usual spelling first: one comparison instead of a byte-by-byte case fold.
    if scheme != b"Bearer " && !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    known.read(token)
}

/// The last token a socket's requests carried in `Authorization`, when it is text JSON holds
/// as it is: a client sends the same one (~230 bytes) with every request, so the next copy costs
/// one comparison instead of a UTF-8 check and a scan for bytes to escape. The comparison
/// reads every byte (no early exit), as the host's: how long it takes says nothing about how
/// much of a token matched.
#[derive(Debug, Default)]
pub struct KnownToken {
    /// The token; empty when none is remembered.
    text: String,
}

impl KnownToken {
    /// Longer tokens are not remembered (memory per socket).
    const MAX_LEN: usize = 1024;

    /// `token` as text when it is UTF-8, with whether it is plain (see [`Jwt::plain`]). A
    /// token equal to the remembered one is given as the memory's copy (same bytes, already
    /// checked).
    pub fn read<'a>(&'a mut self, token: &'a [u8]) -> Option<Jwt<'a>> {
        if !self.text.is_empty() && json::same_bytes(token, self.text.as_bytes()) {
            return Some(Jwt {
                text: &self.text,
                plain: true,
            });
        }
        let text = std::str::from_utf8(token).ok()?;
        let plain = json::find_special(token).is_none();
        if plain && !text.is_empty() && text.len() <= Self::MAX_LEN {
            self.text.clear();
            self.text.push_str(text);
        }
        Some(Jwt { text, plain })
    }
}

/// The JSON request of a REST route, written directly as text.
pub fn rest_request(
    controller: &str,
    action: &str,
    request_id: &str,
    query: &Map<String, Value>,
    body: Option<&Value>,
    arguments: &[(&str, String)],
    headers: &HeaderArgs,
) -> String {
    use std::fmt::Write as _;

    // Later keys win when the host reads duplicates, so the order below is the precedence.
    // Room for the usual request, and the token when there is one: no reallocation.
    let token_room = headers.jwt.map_or(0, |jwt| jwt.text.len() + 8);
    let mut out = String::with_capacity(128 + token_room);
    out.push('{');
    for (key, value) in query {
        member(&mut out, key);
        let _ = write!(out, "{value}");
    }
    if let Some(body) = body {
        member(&mut out, "body");
        let _ = write!(out, "{body}");
    }
    for (name, value) in arguments {
        member(&mut out, name);
        json::push_str(&mut out, value);
    }
    if let Some(jwt) = headers.jwt {
        member(&mut out, "jwt");
        push_token(&mut out, jwt);
    }
    if let Some(volatile) = headers.volatile {
        member(&mut out, "volatile");
        let _ = write!(out, "{volatile}");
    }
    if out.len() > 1 {
        out.push(',');
    }
    out.push_str("\"controller\":");
    json::push_str(&mut out, controller);
    out.push_str(",\"action\":");
    json::push_str(&mut out, action);
    out.push_str(",\"requestId\":");
    json::push_str(&mut out, request_id);
    out.push('}');
    out
}

/// Writes `jwt` as a JSON string: as it is between quotes when known to be plain.
fn push_token(out: &mut String, jwt: Jwt<'_>) {
    if jwt.plain {
        out.push('"');
        out.push_str(jwt.text);
        out.push('"');
    } else {
        json::push_str(out, jwt.text);
    }
}

/// Starts the member `key` of the object being written in `out` (`,"key":`).
fn member(out: &mut String, key: &str) {
    if out.len() > 1 {
        out.push(',');
    }
    json::push_str(out, key);
    out.push(':');
}

/// Realtime actions that would make the connection join a channel: an HTTP connection ends
/// with its request, so Kuzzle's clients must use WebSocket (or MQTT) for them.
pub fn is_subscription(controller: &str, action: &str) -> bool {
    controller == "realtime" && matches!(action, "subscribe" | "join")
}

/// The error for a subscription over HTTP: 400, a client mistake (issue 13, item 6).
pub fn subscription_refused(controller: &str, action: &str) -> KuzzleError {
    API_ASSERT_PERSISTENT_CONNECTION_REQUIRED.with(&[&format!("{controller}:{action}"), "HTTP"])
}

/// The JSON request of `POST /_query`: the body, with `jwt` from the headers when the body has
/// none, and `requestId` set (`request_id` when given by header, else the body's own, else
/// `generated`). Returns the request and its id.
pub fn query_request(
    body: Option<Value>,
    headers: &HeaderArgs,
    header_request_id: Option<&str>,
    generated: &str,
) -> Result<(String, String), (String, KuzzleError)> {
    let Some(body) = body else {
        let id = header_request_id.unwrap_or(generated).to_string();
        return Err((id, errors::API_ASSERT_BODY_REQUIRED.error()));
    };
    let Value::Object(mut object) = body else {
        let id = header_request_id.unwrap_or(generated).to_string();
        return Err((
            id,
            errors::API_ASSERT_INVALID_ARGUMENT.with(&["body", "a JSON object (an API request)"]),
        ));
    };
    let request_id = match (header_request_id, object.get("requestId")) {
        (Some(id), _) => id.to_string(),
        (None, Some(Value::String(id))) => id.clone(),
        _ => generated.to_string(),
    };
    let controller = object.get("controller").and_then(Value::as_str);
    let action = object.get("action").and_then(Value::as_str);
    if let (Some(controller), Some(action)) = (controller, action) {
        if is_subscription(controller, action) {
            let error = subscription_refused(controller, action);
            return Err((request_id, error));
        }
    }
    object.insert("requestId".into(), Value::String(request_id.clone()));
    if let Some(jwt) = headers.jwt {
        if matches!(object.get("jwt"), None | Some(Value::Null)) {
            object.insert("jwt".into(), Value::String(jwt.text.to_string()));
        }
    }
    Ok((Value::Object(object).to_string(), request_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn headers_give_jwt_and_volatile() {
        let cases: [(Option<&str>, Option<&str>); 5] = [
            (Some("Bearer abc.def.ghi"), Some("abc.def.ghi")),
            (Some("bearer x"), Some("x")),
            (Some("Basic dXNlcjpwYXNz"), None),
            (Some("Bearer"), None),
            (None, None),
        ];
        for (header, jwt) in cases {
            let mut known = KnownToken::default();
            let read = header.and_then(|header| bearer(header.as_bytes(), &mut known));
            assert_eq!(read.map(|jwt| jwt.text), jwt, "{header:?}");
        }
        let mut known = KnownToken::default();
        assert_eq!(bearer(b"Bearer \xff\xfe", &mut known), None);
        assert_eq!(volatile(Some(br#"{"a":1}"#)).unwrap(), Some(json!({"a":1})));
        assert_eq!(volatile(None).unwrap(), None);
        let error = volatile(Some(b"{oops")).unwrap_err();
        assert_eq!(error.id(), "network.http.volatile_parse_failed");
        assert_eq!(
            error.message,
            "Unable to convert the \"x-kuzzle-volatile\" HTTP header to JSON: key must be a string at line 1 column 2"
        );
    }

    /// The socket's memory answers as a fresh read would, whatever came before: same text,
    /// `plain` exactly when nothing needs an escape, and the request's JSON the same.
    #[test]
    fn a_remembered_token_reads_as_a_fresh_one() {
        let long = "kauth-eyJhbGciOiJIUzI1NiJ9.eyJfaWQiOiJiZW5jaCIsImlhdCI6MX0.c2lnbmF0dXJl";
        let other = "kauth-eyJhbGciOiJIUzI1NiJ9.eyJfaWQiOiJiZW5jaCIsImlhdCI6Mn0.c2lnbmF0dXJl";
        let quoted = "kauth-eyJhbGciOiJIUzI1NiJ9.eyJfaWQiOiJiZW5jaCIsImlhdCI6M\"0.c2lnbmF0dXJl";
        let tabbed = "kauth-eyJhbGciOiJIUzI1NiJ9.eyJfaWQiOiJiZW5jaCIsImlhdCI6M\t0.c2lnbmF0dXJl";
        let mut known = KnownToken::default();
        for token in [
            long, long, other, long, quoted, quoted, long, tabbed, long, "x", long,
        ] {
            let header = format!("Bearer {token}");
            let jwt = bearer(header.as_bytes(), &mut known).unwrap();
            assert_eq!(jwt.text, token);
            assert_eq!(jwt.plain, !token.contains(['"', '\t']), "{token}");
            let headers = HeaderArgs {
                jwt: Some(jwt),
                volatile: None,
            };
            let text = rest_request("server", "now", "r", &Map::new(), None, &[], &headers);
            let parsed: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(parsed["jwt"], token);
        }
    }

    #[test]
    fn rest_requests_follow_kuzzles_precedence() {
        let query =
            json!({"controller":"evil","index":"from-query","refresh":"wait_for","pretty":true});
        let volatile = json!({"v":1});
        let headers = HeaderArgs {
            jwt: Some(Jwt {
                text: "t.o.k",
                plain: true,
            }),
            volatile: Some(&volatile),
        };
        let text = rest_request(
            "realtime",
            "publish",
            "r-1",
            query.as_object().unwrap(),
            Some(&json!({"hello":"world"})),
            &[("index", "i".into()), ("collection", "c".into())],
            &headers,
        );
        // The host keeps the last of duplicate keys, as serde_json does.
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            parsed,
            json!({"controller":"realtime","action":"publish","requestId":"r-1","index":"i",
                   "collection":"c","refresh":"wait_for","pretty":true,"body":{"hello":"world"},
                   "jwt":"t.o.k","volatile":{"v":1}})
        );
    }

    #[test]
    fn query_requests_keep_the_body_and_fill_in() {
        let headers = HeaderArgs {
            jwt: Some(Jwt {
                text: "h",
                plain: true,
            }),
            volatile: None,
        };
        let (text, id) = query_request(
            Some(json!({"controller":"server","action":"now","requestId":"mine"})),
            &headers,
            None,
            "gen",
        )
        .unwrap();
        assert_eq!(id, "mine");
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            parsed,
            json!({"controller":"server","action":"now","requestId":"mine","jwt":"h"})
        );

        let (text, id) = query_request(
            Some(json!({"controller":"server","action":"now","jwt":"own"})),
            &headers,
            Some("hdr"),
            "gen",
        )
        .unwrap();
        assert_eq!(id, "hdr");
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["jwt"], "own");

        let (id, error) = query_request(
            Some(json!({"controller":"realtime","action":"subscribe","index":"i","collection":"c","body":{}})),
            &headers,
            None,
            "gen",
        )
        .unwrap_err();
        assert_eq!(id, "gen");
        assert_eq!(error.id(), "api.assert.persistent_connection_required");
        assert_eq!(error.status(), 400);
        assert_eq!(
            error.message,
            "The API action \"realtime:subscribe\" subscribes to notifications, which needs a persistent connection: use WebSocket, MQTT or Socket.io, not HTTP."
        );
        let (_, error) = query_request(None, &headers, None, "gen").unwrap_err();
        assert_eq!(error.id(), "api.assert.body_required");
        let (_, error) = query_request(Some(json!([1])), &headers, None, "gen").unwrap_err();
        assert_eq!(error.id(), "api.assert.invalid_argument");
    }
}
