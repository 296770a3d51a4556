//! MQTT 3.1.1 packets as a client sends them: the fixed header and every client packet's body.
//!
//! Decoding borrows from the read buffer (topics and payloads are slices of it), checks every
//! rule whose breach the specification answers by closing the connection, and refuses a packet
//! larger than the limit from its fixed header alone, before its body is buffered.

use std::fmt;

use crate::topic;

/// Packet types (the fixed header's high nibble).
pub mod kind {
    /// Client asks to connect.
    pub const CONNECT: u8 = 1;
    /// Server accepts or refuses a CONNECT.
    pub const CONNACK: u8 = 2;
    /// A message.
    pub const PUBLISH: u8 = 3;
    /// QoS 1 acknowledgement.
    pub const PUBACK: u8 = 4;
    /// QoS 2, step 1.
    pub const PUBREC: u8 = 5;
    /// QoS 2, step 2.
    pub const PUBREL: u8 = 6;
    /// QoS 2, step 3.
    pub const PUBCOMP: u8 = 7;
    /// Subscribe request.
    pub const SUBSCRIBE: u8 = 8;
    /// Subscribe acknowledgement.
    pub const SUBACK: u8 = 9;
    /// Unsubscribe request.
    pub const UNSUBSCRIBE: u8 = 10;
    /// Unsubscribe acknowledgement.
    pub const UNSUBACK: u8 = 11;
    /// Keep-alive ping.
    pub const PINGREQ: u8 = 12;
    /// Keep-alive answer.
    pub const PINGRESP: u8 = 13;
    /// Clean disconnect.
    pub const DISCONNECT: u8 = 14;
}

/// A decoded client packet, borrowing its strings and payload from the read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// CONNECT.
    Connect(Connect<'a>),
    /// PUBLISH.
    Publish(Publish<'a>),
    /// PUBACK with its packet id.
    PubAck(u16),
    /// PUBREC with its packet id.
    PubRec(u16),
    /// PUBREL with its packet id.
    PubRel(u16),
    /// PUBCOMP with its packet id.
    PubComp(u16),
    /// SUBSCRIBE: packet id and (filter, requested QoS) pairs, at least one.
    Subscribe {
        /// Echoed in the SUBACK.
        packet_id: u16,
        /// Filters with their requested QoS, in order.
        filters: Vec<(&'a str, u8)>,
    },
    /// UNSUBSCRIBE: packet id and filters, at least one.
    Unsubscribe {
        /// Echoed in the UNSUBACK.
        packet_id: u16,
        /// Filters to remove.
        filters: Vec<&'a str>,
    },
    /// PINGREQ.
    PingReq,
    /// DISCONNECT.
    Disconnect,
}

/// CONNECT's variable header and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect<'a> {
    /// 4 for MQTT 3.1.1, 3 for MQTT 3.1 (`MQIsdp`).
    pub protocol_level: u8,
    /// Discard any previous session and do not keep this one.
    pub clean_session: bool,
    /// Seconds; 0 turns keep-alive off.
    pub keep_alive: u16,
    /// May be empty (the server assigns one) when `clean_session` is set.
    pub client_id: &'a str,
    /// Published if the connection ends without DISCONNECT.
    pub will: Option<Will<'a>>,
    /// Read and ignored: authentication is Kuzzle's, per request (`jwt`).
    pub username: Option<&'a str>,
    /// Read and ignored.
    pub password: Option<&'a [u8]>,
}

/// A last will.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will<'a> {
    /// Topic name (no wildcards).
    pub topic: &'a str,
    /// Message.
    pub payload: &'a [u8],
    /// 0, 1 or 2.
    pub qos: u8,
    /// Keep it as the topic's retained message.
    pub retain: bool,
}

/// PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish<'a> {
    /// A re-delivery of an earlier attempt.
    pub dup: bool,
    /// 0, 1 or 2.
    pub qos: u8,
    /// Keep it as the topic's retained message.
    pub retain: bool,
    /// Topic name (no wildcards).
    pub topic: &'a str,
    /// Present when `qos > 0`, never 0.
    pub packet_id: Option<u16>,
    /// Message bytes.
    pub payload: &'a [u8],
}

/// Why a connection must be closed. Every variant is a rule of the specification whose breach
/// the server answers by closing the network connection (MQTT 3.1.1 has no error packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// A packet is malformed; the text says how.
    Malformed(&'static str),
    /// The packet is larger than the configured limit (bytes, including its fixed header).
    TooLarge(usize),
    /// CONNECT names a protocol level this server does not speak: answer CONNACK 0x01
    /// (0x84 in MQTT 5's layout for level 5) before closing.
    UnsupportedLevel(u8),
    /// A packet type a client never sends (CONNACK, SUBACK…) or the reserved types 0 and 15.
    UnexpectedType(u8),
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Malformed(why) => write!(f, "malformed packet: {why}"),
            Violation::TooLarge(size) => write!(f, "packet of {size} bytes is over the limit"),
            Violation::UnsupportedLevel(level) => write!(f, "unsupported protocol level {level}"),
            Violation::UnexpectedType(kind) => write!(f, "unexpected packet type {kind}"),
        }
    }
}

/// Reads the remaining length at `buffer[1..]`: `Ok(None)` if incomplete, else the value and
/// how many bytes encode it.
pub fn remaining_length(buffer: &[u8]) -> Result<Option<(usize, usize)>, Violation> {
    let mut value = 0usize;
    for index in 0..4 {
        let Some(&byte) = buffer.get(1 + index) else {
            return Ok(None);
        };
        value |= usize::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Ok(Some((value, index + 1)));
        }
    }
    Err(Violation::Malformed("remaining length longer than 4 bytes"))
}

/// Decodes the first packet of `buffer`. `Ok(None)`: more bytes are needed. Otherwise returns
/// the packet and its total length. A packet over `max_size` bytes is refused as soon as its
/// fixed header is complete.
pub fn decode(buffer: &[u8], max_size: usize) -> Result<Option<(usize, Packet<'_>)>, Violation> {
    let Some(&first) = buffer.first() else {
        return Ok(None);
    };
    let Some((remaining, length_bytes)) = remaining_length(buffer)? else {
        return Ok(None);
    };
    let total = 1 + length_bytes + remaining;
    if total > max_size {
        return Err(Violation::TooLarge(total));
    }
    if buffer.len() < total {
        return Ok(None);
    }
    let body = &buffer[1 + length_bytes..total];
    let packet = decode_body(first, body)?;
    Ok(Some((total, packet)))
}

fn decode_body(first: u8, body: &[u8]) -> Result<Packet<'_>, Violation> {
    let packet_type = first >> 4;
    let flags = first & 0x0f;
    let expected_flags = match packet_type {
        kind::PUBLISH => flags,
        kind::PUBREL | kind::SUBSCRIBE | kind::UNSUBSCRIBE => 0b0010,
        _ => 0,
    };
    if flags != expected_flags {
        return Err(Violation::Malformed(
            "reserved fixed-header flags are wrong",
        ));
    }
    let mut reader = Reader { body, at: 0 };
    let packet = match packet_type {
        kind::CONNECT => Packet::Connect(decode_connect(&mut reader)?),
        kind::PUBLISH => return decode_publish(flags, reader),
        kind::PUBACK => Packet::PubAck(reader.packet_id()?),
        kind::PUBREC => Packet::PubRec(reader.packet_id()?),
        kind::PUBREL => Packet::PubRel(reader.packet_id()?),
        kind::PUBCOMP => Packet::PubComp(reader.packet_id()?),
        kind::SUBSCRIBE => {
            let packet_id = reader.packet_id()?;
            let mut filters = Vec::new();
            while !reader.is_done() {
                let filter = reader.string()?;
                let qos = reader.byte()?;
                if qos > 2 {
                    return Err(Violation::Malformed("requested QoS must be 0, 1 or 2"));
                }
                check_filter(filter)?;
                filters.push((filter, qos));
            }
            if filters.is_empty() {
                return Err(Violation::Malformed("SUBSCRIBE without a topic filter"));
            }
            Packet::Subscribe { packet_id, filters }
        }
        kind::UNSUBSCRIBE => {
            let packet_id = reader.packet_id()?;
            let mut filters = Vec::new();
            while !reader.is_done() {
                let filter = reader.string()?;
                check_filter(filter)?;
                filters.push(filter);
            }
            if filters.is_empty() {
                return Err(Violation::Malformed("UNSUBSCRIBE without a topic filter"));
            }
            Packet::Unsubscribe { packet_id, filters }
        }
        kind::PINGREQ => Packet::PingReq,
        kind::DISCONNECT => Packet::Disconnect,
        other => return Err(Violation::UnexpectedType(other)),
    };
    if !reader.is_done() {
        return Err(Violation::Malformed("bytes after the end of the packet"));
    }
    Ok(packet)
}

fn check_filter(filter: &str) -> Result<(), Violation> {
    topic::check_filter(filter).map_err(Violation::Malformed)
}

fn decode_publish(flags: u8, mut reader: Reader<'_>) -> Result<Packet<'_>, Violation> {
    let qos = (flags >> 1) & 0b11;
    let dup = flags & 0b1000 != 0;
    if qos == 3 {
        return Err(Violation::Malformed("PUBLISH with QoS 3"));
    }
    if qos == 0 && dup {
        return Err(Violation::Malformed("PUBLISH with QoS 0 and DUP set"));
    }
    let topic_name = reader.string()?;
    topic::check_name(topic_name).map_err(Violation::Malformed)?;
    let packet_id = if qos > 0 {
        Some(reader.packet_id()?)
    } else {
        None
    };
    Ok(Packet::Publish(Publish {
        dup,
        qos,
        retain: flags & 1 != 0,
        topic: topic_name,
        packet_id,
        payload: reader.rest(),
    }))
}

fn decode_connect<'a>(reader: &mut Reader<'a>) -> Result<Connect<'a>, Violation> {
    let protocol_name = reader.string()?;
    let protocol_level = reader.byte()?;
    match (protocol_name, protocol_level) {
        ("MQTT", 4) | ("MQIsdp", 3) => {}
        ("MQTT", level) | ("MQIsdp", level) => return Err(Violation::UnsupportedLevel(level)),
        _ => return Err(Violation::Malformed("unknown protocol name")),
    }
    let flags = reader.byte()?;
    if flags & 1 != 0 {
        return Err(Violation::Malformed("CONNECT reserved flag is set"));
    }
    let keep_alive = reader.u16()?;
    let client_id = reader.string()?;
    let will_flag = flags & 0b100 != 0;
    let will_qos = (flags >> 3) & 0b11;
    let will_retain = flags & 0b10_0000 != 0;
    let will = if will_flag {
        if will_qos == 3 {
            return Err(Violation::Malformed("will QoS 3"));
        }
        let topic_name = reader.string()?;
        topic::check_name(topic_name).map_err(Violation::Malformed)?;
        let payload = reader.binary()?;
        Some(Will {
            topic: topic_name,
            payload,
            qos: will_qos,
            retain: will_retain,
        })
    } else {
        if will_qos != 0 || will_retain {
            return Err(Violation::Malformed(
                "will QoS or retain set without a will",
            ));
        }
        None
    };
    let has_username = flags & 0b1000_0000 != 0;
    let has_password = flags & 0b100_0000 != 0;
    if has_password && !has_username && protocol_level == 4 {
        return Err(Violation::Malformed("password without a user name"));
    }
    let username = has_username.then(|| reader.string()).transpose()?;
    let password = has_password.then(|| reader.binary()).transpose()?;
    Ok(Connect {
        protocol_level,
        clean_session: flags & 0b10 != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
    })
}

/// A cursor over a packet's body.
struct Reader<'a> {
    body: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn is_done(&self) -> bool {
        self.at == self.body.len()
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], Violation> {
        let end = self
            .at
            .checked_add(count)
            .filter(|&end| end <= self.body.len())
            .ok_or(Violation::Malformed("packet shorter than its fields"))?;
        let bytes = &self.body[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, Violation> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Violation> {
        let bytes = self.take(2)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn packet_id(&mut self) -> Result<u16, Violation> {
        match self.u16()? {
            0 => Err(Violation::Malformed("packet identifier 0")),
            id => Ok(id),
        }
    }

    fn binary(&mut self) -> Result<&'a [u8], Violation> {
        let length = self.u16()?;
        self.take(usize::from(length))
    }

    /// A UTF-8 string: well-formed, no U+0000 (MQTT 3.1.1, 1.5.3).
    fn string(&mut self) -> Result<&'a str, Violation> {
        let bytes = self.binary()?;
        let text =
            std::str::from_utf8(bytes).map_err(|_| Violation::Malformed("string is not UTF-8"))?;
        if text.contains('\0') {
            return Err(Violation::Malformed("string contains U+0000"));
        }
        Ok(text)
    }

    fn rest(&mut self) -> &'a [u8] {
        let rest = &self.body[self.at..];
        self.at = self.body.len();
        rest
    }
}
