//! Engine.IO protocol 4: packets, polling payloads, the open packet and the HTTP errors, as the
//! npm `engine.io` 6.x server writes them. Pure (no I/O), so every rule is table-tested.
//!
//! A packet is one type digit and its data: `0` open, `1` close, `2` ping, `3` pong, `4` message,
//! `5` upgrade, `6` noop. Over polling, packets are joined with the record separator `\x1e`;
//! over WebSocket, one packet per text frame. `b<base64>` is a binary message (polling only).

use switchyard_plugin_api::json;

/// The record separator between packets of a polling payload.
pub const SEPARATOR: u8 = 0x1e;

/// A packet a client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    /// `1`: the client closes the session.
    Close,
    /// `2`, with its data (`2probe` during an upgrade).
    Ping(&'a str),
    /// `3`, with its data (`3probe` answers our probe, which we never send).
    Pong(&'a str),
    /// `4`: a message for the layer above (Socket.IO).
    Message(&'a str),
    /// `5`: the client switches to the transport it probed.
    Upgrade,
    /// `6`: nothing.
    Noop,
    /// `b…`: a binary message. Kuzzle requests are JSON text; these are refused.
    Binary,
}

/// Why a packet could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// An empty packet.
    Empty,
    /// A type digit outside `1`..`6` (clients never send `0`, open).
    UnknownType(u8),
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed::Empty => f.write_str("empty Engine.IO packet"),
            Malformed::UnknownType(byte) => {
                write!(f, "unknown Engine.IO packet type {:?}", char::from(*byte))
            }
        }
    }
}

/// Reads one packet.
pub fn decode(text: &str) -> Result<Packet<'_>, Malformed> {
    let Some(&first) = text.as_bytes().first() else {
        return Err(Malformed::Empty);
    };
    if !first.is_ascii() {
        // A multi-byte first character: `text[1..]` would not be a character boundary (found
        // by the `socketio_packets` fuzz target, issue 19).
        return Err(Malformed::UnknownType(first));
    }
    let data = &text[1..];
    Ok(match first {
        b'1' => Packet::Close,
        b'2' => Packet::Ping(data),
        b'3' => Packet::Pong(data),
        b'4' => Packet::Message(data),
        b'5' => Packet::Upgrade,
        b'6' => Packet::Noop,
        b'b' => Packet::Binary,
        other => return Err(Malformed::UnknownType(other)),
    })
}

/// The packets of a polling payload (a POST body), in order.
pub fn split_payload(body: &str) -> impl Iterator<Item = &str> {
    body.split(char::from(SEPARATOR))
}

/// What the open packet announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenInfo<'a> {
    /// The session id.
    pub sid: &'a str,
    /// Whether the client may upgrade to WebSocket (only from polling).
    pub upgrade_to_websocket: bool,
    /// Milliseconds between our pings.
    pub ping_interval_ms: u64,
    /// Milliseconds the client has to answer a ping.
    pub ping_timeout_ms: u64,
    /// Largest payload we accept (the client splits its polling payloads below it).
    pub max_payload: u64,
}

/// The open packet: `0{"sid":…,"upgrades":[…],"pingInterval":…,"pingTimeout":…,"maxPayload":…}`.
pub fn open_packet(info: &OpenInfo<'_>) -> String {
    let mut out = String::with_capacity(128);
    out.push_str("0{\"sid\":");
    json::push_str(&mut out, info.sid);
    out.push_str(if info.upgrade_to_websocket {
        ",\"upgrades\":[\"websocket\"]"
    } else {
        ",\"upgrades\":[]"
    });
    out.push_str(",\"pingInterval\":");
    json::push_u64(&mut out, info.ping_interval_ms);
    out.push_str(",\"pingTimeout\":");
    json::push_u64(&mut out, info.ping_timeout_ms);
    out.push_str(",\"maxPayload\":");
    json::push_u64(&mut out, info.max_payload);
    out.push('}');
    out
}

/// Engine.IO's request errors (`Server.errors` in npm `engine.io`), answered before any session
/// exists or when a request names a session wrongly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// `transport` is missing or neither `polling` nor `websocket`.
    UnknownTransport = 0,
    /// `sid` names no live session.
    UnknownSid = 1,
    /// A handshake (no `sid`) that is not a GET.
    BadHandshakeMethod = 2,
    /// Anything else wrong: wrong transport for the session, a WebSocket handshake without an
    /// upgrade, an overlapping poll…
    BadRequest = 3,
    /// The origin is not allowed.
    Forbidden = 4,
    /// `EIO` is not `4`.
    UnsupportedProtocolVersion = 5,
}

impl RequestError {
    /// Engine.IO's message for it.
    pub fn message(self) -> &'static str {
        match self {
            RequestError::UnknownTransport => "Transport unknown",
            RequestError::UnknownSid => "Session ID unknown",
            RequestError::BadHandshakeMethod => "Bad handshake method",
            RequestError::BadRequest => "Bad request",
            RequestError::Forbidden => "Forbidden",
            RequestError::UnsupportedProtocolVersion => "Unsupported protocol version",
        }
    }

    /// The HTTP status of a polling request refused with it (403 for `Forbidden`, else 400).
    pub fn status(self) -> u16 {
        if self == RequestError::Forbidden {
            403
        } else {
            400
        }
    }

    /// The JSON body of a polling request refused with it: `{"code":1,"message":"…"}`.
    pub fn json(self) -> String {
        format!(
            "{{\"code\":{},\"message\":\"{}\"}}",
            self as u8,
            self.message()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_decode() {
        let cases = [
            ("1", Ok(Packet::Close)),
            ("2", Ok(Packet::Ping(""))),
            ("2probe", Ok(Packet::Ping("probe"))),
            ("3", Ok(Packet::Pong(""))),
            ("3probe", Ok(Packet::Pong("probe"))),
            ("40", Ok(Packet::Message("0"))),
            ("42[\"kuzzle\",{}]", Ok(Packet::Message("2[\"kuzzle\",{}]"))),
            ("4", Ok(Packet::Message(""))),
            ("5", Ok(Packet::Upgrade)),
            ("6", Ok(Packet::Noop)),
            ("bAQID", Ok(Packet::Binary)),
            ("", Err(Malformed::Empty)),
            ("0{}", Err(Malformed::UnknownType(b'0'))),
            ("7", Err(Malformed::UnknownType(b'7'))),
            ("x", Err(Malformed::UnknownType(b'x'))),
            ("{\"a\":1}", Err(Malformed::UnknownType(b'{'))),
            // Issue 19 (fuzzing): a multi-byte first character panicked on `text[1..]`.
            ("\u{507}esage\":}", Err(Malformed::UnknownType(0xd4))),
            ("é", Err(Malformed::UnknownType(0xc3))),
        ];
        for (text, expected) in cases {
            assert_eq!(decode(text), expected, "{text:?}");
        }
    }

    #[test]
    fn payloads_split_on_the_record_separator() {
        let cases: [(&str, &[&str]); 4] = [
            ("3", &["3"]),
            ("3\x1e40\x1e42[\"a\"]", &["3", "40", "42[\"a\"]"]),
            ("", &[""]),
            ("40\x1e", &["40", ""]),
        ];
        for (body, expected) in cases {
            assert_eq!(
                split_payload(body).collect::<Vec<_>>(),
                expected,
                "{body:?}"
            );
        }
    }

    #[test]
    fn the_open_packet_is_engine_ios() {
        let info = OpenInfo {
            sid: "abc",
            upgrade_to_websocket: true,
            ping_interval_ms: 25000,
            ping_timeout_ms: 20000,
            max_payload: 1_000_000,
        };
        assert_eq!(
            open_packet(&info),
            r#"0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
        );
        let direct = OpenInfo {
            upgrade_to_websocket: false,
            ..info
        };
        assert!(open_packet(&direct).contains(r#""upgrades":[]"#));
    }

    #[test]
    fn request_errors_are_engine_ios() {
        let cases = [
            (
                RequestError::UnknownTransport,
                400,
                r#"{"code":0,"message":"Transport unknown"}"#,
            ),
            (
                RequestError::UnknownSid,
                400,
                r#"{"code":1,"message":"Session ID unknown"}"#,
            ),
            (
                RequestError::BadHandshakeMethod,
                400,
                r#"{"code":2,"message":"Bad handshake method"}"#,
            ),
            (
                RequestError::BadRequest,
                400,
                r#"{"code":3,"message":"Bad request"}"#,
            ),
            (
                RequestError::Forbidden,
                403,
                r#"{"code":4,"message":"Forbidden"}"#,
            ),
            (
                RequestError::UnsupportedProtocolVersion,
                400,
                r#"{"code":5,"message":"Unsupported protocol version"}"#,
            ),
        ];
        for (error, status, body) in cases {
            assert_eq!(error.status(), status);
            assert_eq!(error.json(), body);
        }
    }
}
