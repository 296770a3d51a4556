//! Socket.IO protocol 5 packets, as npm `socket.io-parser` 4.x reads and writes them, carried in
//! Engine.IO message packets. Pure (no I/O), table-tested.
//!
//! A packet is a type digit, an optional namespace (`/name,`), an optional ack id (digits) and
//! optional JSON data: `0` connect, `1` disconnect, `2` event (`2["name",arg…]`), `3` ack,
//! `4` connect error, `5`/`6` binary event/ack (not supported: Kuzzle speaks JSON).

use serde_json::value::RawValue;
use switchyard_plugin_api::json;

/// The only namespace served.
pub const MAIN_NAMESPACE: &str = "/";

/// A packet a client sent, its data checked as `socket.io-parser` checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    /// `0`: join `namespace` (any auth payload is ignored).
    Connect {
        /// The namespace.
        namespace: &'a str,
    },
    /// `1`: leave `namespace`.
    Disconnect {
        /// The namespace.
        namespace: &'a str,
    },
    /// `2`: an event.
    Event {
        /// The namespace.
        namespace: &'a str,
        /// Set when the client waits for an acknowledgement.
        ack: Option<u64>,
        /// The event's name (a number is kept as its text).
        name: &'a str,
        /// The first argument as raw JSON, if any.
        first_argument: Option<&'a str>,
    },
    /// `3`: an acknowledgement (we never ask for one; ignored).
    Ack {
        /// The namespace.
        namespace: &'a str,
    },
    /// `4`: a connect error (only servers send it: an invalid state).
    ConnectError {
        /// The namespace.
        namespace: &'a str,
    },
}

/// Why a Socket.IO packet is refused (`socket.io-parser` throws, and the server closes the
/// Engine.IO session).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Malformed {
    /// A type digit outside `0`..`6`, or an empty packet.
    UnknownType,
    /// `5` or `6`: binary attachments.
    Binary,
    /// An ack id too large for a number.
    BadAckId,
    /// The data is not JSON.
    InvalidJson,
    /// JSON of the wrong shape for the packet type.
    InvalidPayload,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Malformed::UnknownType => "unknown Socket.IO packet type",
            Malformed::Binary => "binary Socket.IO packets are not supported",
            Malformed::BadAckId => "invalid Socket.IO ack id",
            Malformed::InvalidJson => "Socket.IO packet data is not JSON",
            Malformed::InvalidPayload => "invalid Socket.IO payload",
        })
    }
}

/// Event names `socket.io` reserves; a client may not emit them.
const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Reads one packet (the data of an Engine.IO message).
pub fn decode(text: &str) -> Result<Packet<'_>, Malformed> {
    let bytes = text.as_bytes();
    let kind = match bytes.first() {
        Some(digit @ b'0'..=b'4') => *digit,
        Some(b'5' | b'6') => return Err(Malformed::Binary),
        _ => return Err(Malformed::UnknownType),
    };
    let mut at = 1;
    let namespace = if bytes.get(at) == Some(&b'/') {
        let end = text[at..].find(',').map_or(text.len(), |comma| at + comma);
        let namespace = &text[at..end];
        at = (end + 1).min(text.len());
        namespace
    } else {
        MAIN_NAMESPACE
    };
    let digits = bytes[at..]
        .iter()
        .take_while(|byte| byte.is_ascii_digit())
        .count();
    let ack = if digits > 0 {
        let id = text[at..at + digits]
            .parse::<u64>()
            .map_err(|_| Malformed::BadAckId)?;
        at += digits;
        Some(id)
    } else {
        None
    };
    let data = &text[at..];
    let data = if data.is_empty() {
        None
    } else {
        Some(serde_json::from_str::<&RawValue>(data).map_err(|_| Malformed::InvalidJson)?)
    };
    let starts = |data: &RawValue, open: char| data.get().starts_with(open);
    match kind {
        b'0' => match data {
            Some(data) if !starts(data, '{') => Err(Malformed::InvalidPayload),
            _ => Ok(Packet::Connect { namespace }),
        },
        b'1' => match data {
            Some(_) => Err(Malformed::InvalidPayload),
            None => Ok(Packet::Disconnect { namespace }),
        },
        b'2' => {
            let data = data.ok_or(Malformed::InvalidPayload)?;
            let (name, first_argument) = event_parts(data.get())?;
            Ok(Packet::Event {
                namespace,
                ack,
                name,
                first_argument,
            })
        }
        b'3' => match data {
            Some(data) if starts(data, '[') => Ok(Packet::Ack { namespace }),
            _ => Err(Malformed::InvalidPayload),
        },
        _ => Ok(Packet::ConnectError { namespace }),
    }
}

/// The name and first argument of an event's array.
fn event_parts(array: &str) -> Result<(&str, Option<&str>), Malformed> {
    let items: Vec<&RawValue> =
        serde_json::from_str(array).map_err(|_| Malformed::InvalidPayload)?;
    let Some(first) = items.first() else {
        return Err(Malformed::InvalidPayload);
    };
    let raw_name = first.get();
    let name = if raw_name.starts_with('"') {
        // Names with escapes are compared in their escaped form: none of ours has any.
        let name = &raw_name[1..raw_name.len() - 1];
        if RESERVED_EVENTS.contains(&name) {
            return Err(Malformed::InvalidPayload);
        }
        name
    } else if serde_json::from_str::<f64>(raw_name).is_ok() {
        raw_name
    } else {
        return Err(Malformed::InvalidPayload);
    };
    Ok((name, items.get(1).map(|argument| argument.get())))
}

/// `40{"sid":"…"}`: the answer to a connect to the main namespace (without the Engine.IO `4`).
pub fn connect_ok(socket_id: &str) -> String {
    let mut out = String::with_capacity(32);
    out.push_str("0{\"sid\":");
    json::push_str(&mut out, socket_id);
    out.push('}');
    out
}

/// `4/name,{"message":"Invalid namespace"}`: the answer to a connect to any other namespace.
pub fn invalid_namespace(namespace: &str) -> String {
    format!("4{namespace},{{\"message\":\"Invalid namespace\"}}")
}

/// Appends an event packet `2[<name>,<raw argument>]` to `out` (the Engine.IO `4` is the
/// caller's). `raw_argument` must be JSON.
pub fn push_event(out: &mut Vec<u8>, name: &str, raw_argument: &str) {
    let mut quoted = String::with_capacity(name.len() + 2);
    json::push_str(&mut quoted, name);
    out.reserve(quoted.len() + raw_argument.len() + 4);
    out.extend_from_slice(b"2[");
    out.extend_from_slice(quoted.as_bytes());
    out.push(b',');
    out.extend_from_slice(raw_argument.as_bytes());
    out.push(b']');
}

/// Appends an ack packet `3<id>[<raw argument>]` to `out`.
pub fn push_ack(out: &mut Vec<u8>, id: u64, raw_argument: &str) {
    out.reserve(raw_argument.len() + 24);
    out.push(b'3');
    out.extend_from_slice(id.to_string().as_bytes());
    out.push(b'[');
    out.extend_from_slice(raw_argument.as_bytes());
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event<'a>(ack: Option<u64>, name: &'a str, first: Option<&'a str>) -> Packet<'a> {
        Packet::Event {
            namespace: "/",
            ack,
            name,
            first_argument: first,
        }
    }

    #[test]
    fn packets_decode_as_socket_io_parser_reads_them() {
        let cases = [
            ("0", Ok(Packet::Connect { namespace: "/" })),
            ("0{\"token\":\"x\"}", Ok(Packet::Connect { namespace: "/" })),
            (
                "0/admin,",
                Ok(Packet::Connect {
                    namespace: "/admin",
                }),
            ),
            (
                "0/admin",
                Ok(Packet::Connect {
                    namespace: "/admin",
                }),
            ),
            ("0[1]", Err(Malformed::InvalidPayload)),
            ("0\"x\"", Err(Malformed::InvalidPayload)),
            ("1", Ok(Packet::Disconnect { namespace: "/" })),
            (
                "1/admin,",
                Ok(Packet::Disconnect {
                    namespace: "/admin",
                }),
            ),
            ("1{}", Err(Malformed::InvalidPayload)),
            (
                "2[\"kuzzle\",{\"controller\":\"server\"}]",
                Ok(event(None, "kuzzle", Some("{\"controller\":\"server\"}"))),
            ),
            (
                "2[\"kuzzle\" , {\"a\":1} , 2]",
                Ok(event(None, "kuzzle", Some("{\"a\":1}"))),
            ),
            ("2[\"kuzzle\"]", Ok(event(None, "kuzzle", None))),
            (
                "212[\"kuzzle\",\"x\"]",
                Ok(event(Some(12), "kuzzle", Some("\"x\""))),
            ),
            ("2[7,1]", Ok(event(None, "7", Some("1")))),
            (
                "2/admin,3[\"x\"]",
                Ok(Packet::Event {
                    namespace: "/admin",
                    ack: Some(3),
                    name: "x",
                    first_argument: None,
                }),
            ),
            ("2", Err(Malformed::InvalidPayload)),
            ("2[]", Err(Malformed::InvalidPayload)),
            ("2{}", Err(Malformed::InvalidPayload)),
            ("2[{}]", Err(Malformed::InvalidPayload)),
            ("2[\"disconnect\"]", Err(Malformed::InvalidPayload)),
            ("2[\"kuzzle\",", Err(Malformed::InvalidJson)),
            ("2not json", Err(Malformed::InvalidJson)),
            ("299999999999999999999[\"x\"]", Err(Malformed::BadAckId)),
            ("31[]", Ok(Packet::Ack { namespace: "/" })),
            ("31{}", Err(Malformed::InvalidPayload)),
            (
                "4{\"message\":\"x\"}",
                Ok(Packet::ConnectError { namespace: "/" }),
            ),
            (
                "51-[\"x\",{\"_placeholder\":true,\"num\":0}]",
                Err(Malformed::Binary),
            ),
            ("6", Err(Malformed::Binary)),
            ("7", Err(Malformed::UnknownType)),
            ("", Err(Malformed::UnknownType)),
            ("x", Err(Malformed::UnknownType)),
        ];
        for (text, expected) in cases {
            assert_eq!(decode(text), expected, "{text:?}");
        }
    }

    #[test]
    fn packets_encode_as_socket_io_writes_them() {
        assert_eq!(connect_ok("s1"), r#"0{"sid":"s1"}"#);
        assert_eq!(
            invalid_namespace("/admin"),
            r#"4/admin,{"message":"Invalid namespace"}"#
        );
        let mut out = Vec::new();
        push_event(&mut out, "room-\"1\"", r#"{"a":1}"#);
        assert_eq!(out, br#"2["room-\"1\"",{"a":1}]"#);
        let mut out = Vec::new();
        push_ack(&mut out, 42, r#"{"a":1}"#);
        assert_eq!(out, br#"342[{"a":1}]"#);
    }
}
