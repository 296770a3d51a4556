//! Building packets: what the server sends, and (for tests and the benchmark) what clients send.
//!
//! A PUBLISH is built as one `Bytes` (fixed header, topic, packet id, payload) so that a QoS 0
//! message to a topic is built once and its handle shared by every subscriber.

use bytes::{BufMut, Bytes, BytesMut};

use crate::codec::kind;

/// CONNACK return codes (MQTT 3.1.1, 3.2.2.3).
pub mod connack_code {
    /// Connection accepted.
    pub const ACCEPTED: u8 = 0;
    /// The server does not support the protocol level the client asked for.
    pub const UNACCEPTABLE_PROTOCOL_VERSION: u8 = 1;
    /// The client identifier is not allowed (empty with a persistent session, or keep-alive
    /// outside the server's limits, as mosquitto answers it).
    pub const IDENTIFIER_REJECTED: u8 = 2;
    /// The server is shutting down.
    pub const SERVER_UNAVAILABLE: u8 = 3;
    /// The will names a topic this client may not publish to.
    pub const NOT_AUTHORIZED: u8 = 5;
}

/// SUBACK's failure return code.
pub const SUBACK_FAILURE: u8 = 0x80;

/// Appends the variable-length remaining length.
pub fn put_remaining_length(out: &mut BytesMut, mut length: usize) {
    loop {
        let mut byte = (length % 128) as u8;
        length /= 128;
        if length > 0 {
            byte |= 0x80;
        }
        out.put_u8(byte);
        if length == 0 {
            return;
        }
    }
}

fn remaining_length_size(length: usize) -> usize {
    match length {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// CONNACK.
pub fn connack(session_present: bool, code: u8) -> Bytes {
    Bytes::copy_from_slice(&[kind::CONNACK << 4, 2, u8::from(session_present), code])
}

/// MQTT 5's CONNACK refusing the protocol version (0x84), for a v5 client: it could not read a
/// 3.1.1 CONNACK.
pub fn connack_v5_unsupported() -> Bytes {
    Bytes::from_static(&[kind::CONNACK << 4, 3, 0, 0x84, 0])
}

/// A PUBLISH packet. `packet_id` must be set exactly when `qos > 0`.
pub fn publish(
    topic: &str,
    payload: &[u8],
    qos: u8,
    retain: bool,
    dup: bool,
    packet_id: Option<u16>,
) -> Bytes {
    let remaining = 2 + topic.len() + if qos > 0 { 2 } else { 0 } + payload.len();
    let mut out = BytesMut::with_capacity(1 + remaining_length_size(remaining) + remaining);
    let flags = (u8::from(dup) << 3) | (qos << 1) | u8::from(retain);
    out.put_u8((kind::PUBLISH << 4) | flags);
    put_remaining_length(&mut out, remaining);
    put_string(&mut out, topic);
    if qos > 0 {
        out.put_u16(packet_id.unwrap_or(1));
    }
    out.put_slice(payload);
    out.freeze()
}

/// Sets the DUP flag of an encoded PUBLISH (for a re-delivery).
pub fn with_dup(packet: &Bytes) -> Bytes {
    let mut copy = BytesMut::from(&packet[..]);
    copy[0] |= 0b1000;
    copy.freeze()
}

/// PUBACK, PUBREC, PUBREL (flags 0b0010) or PUBCOMP for `packet_id`.
pub fn ack(packet_type: u8, packet_id: u16) -> Bytes {
    let flags = if packet_type == kind::PUBREL {
        0b0010
    } else {
        0
    };
    let id = packet_id.to_be_bytes();
    Bytes::copy_from_slice(&[(packet_type << 4) | flags, 2, id[0], id[1]])
}

/// SUBACK with one return code per filter (granted QoS, or 0x80).
pub fn suback(packet_id: u16, codes: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(4 + codes.len() + 3);
    out.put_u8(kind::SUBACK << 4);
    put_remaining_length(&mut out, 2 + codes.len());
    out.put_u16(packet_id);
    out.put_slice(codes);
    out.freeze()
}

/// UNSUBACK.
pub fn unsuback(packet_id: u16) -> Bytes {
    ack(kind::UNSUBACK, packet_id)
}

/// PINGRESP.
pub fn pingresp() -> Bytes {
    Bytes::from_static(&[kind::PINGRESP << 4, 0])
}

fn put_string(out: &mut BytesMut, text: &str) {
    put_binary(out, text.as_bytes());
}

fn put_binary(out: &mut BytesMut, bytes: &[u8]) {
    out.put_u16(bytes.len() as u16);
    out.put_slice(bytes);
}

/// What a client sends, for tests and the benchmark's load generator.
pub mod client {
    use super::*;

    /// A CONNECT for MQTT 3.1.1 (level 4).
    #[derive(Debug, Clone, Default)]
    pub struct ConnectOptions<'a> {
        /// Client identifier.
        pub client_id: &'a str,
        /// Clean session flag.
        pub clean_session: bool,
        /// Keep-alive, seconds.
        pub keep_alive: u16,
        /// Will: (topic, payload, qos, retain).
        pub will: Option<(&'a str, &'a [u8], u8, bool)>,
        /// User name.
        pub username: Option<&'a str>,
    }

    /// Encodes a CONNECT.
    pub fn connect(options: &ConnectOptions<'_>) -> Bytes {
        let mut body = BytesMut::new();
        put_string(&mut body, "MQTT");
        body.put_u8(4);
        let mut flags = u8::from(options.clean_session) << 1;
        if let Some((_, _, qos, retain)) = options.will {
            flags |= 0b100 | (qos << 3) | (u8::from(retain) << 5);
        }
        if options.username.is_some() {
            flags |= 0b1000_0000;
        }
        body.put_u8(flags);
        body.put_u16(options.keep_alive);
        put_string(&mut body, options.client_id);
        if let Some((topic, payload, _, _)) = options.will {
            put_string(&mut body, topic);
            put_binary(&mut body, payload);
        }
        if let Some(username) = options.username {
            put_string(&mut body, username);
        }
        with_header(kind::CONNECT << 4, &body)
    }

    /// Encodes a SUBSCRIBE.
    pub fn subscribe(packet_id: u16, filters: &[(&str, u8)]) -> Bytes {
        let mut body = BytesMut::new();
        body.put_u16(packet_id);
        for (filter, qos) in filters {
            put_string(&mut body, filter);
            body.put_u8(*qos);
        }
        with_header((kind::SUBSCRIBE << 4) | 0b0010, &body)
    }

    /// Encodes an UNSUBSCRIBE.
    pub fn unsubscribe(packet_id: u16, filters: &[&str]) -> Bytes {
        let mut body = BytesMut::new();
        body.put_u16(packet_id);
        for filter in filters {
            put_string(&mut body, filter);
        }
        with_header((kind::UNSUBSCRIBE << 4) | 0b0010, &body)
    }

    /// PINGREQ.
    pub fn pingreq() -> Bytes {
        Bytes::from_static(&[kind::PINGREQ << 4, 0])
    }

    /// DISCONNECT.
    pub fn disconnect() -> Bytes {
        Bytes::from_static(&[kind::DISCONNECT << 4, 0])
    }

    fn with_header(first: u8, body: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(body.len() + 5);
        out.put_u8(first);
        put_remaining_length(&mut out, body.len());
        out.put_slice(body);
        out.freeze()
    }
}
