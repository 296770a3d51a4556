//! RFC 6455 frames: parsing the headers clients send, building the frames the server sends.
//!
//! Server frames are never masked, so a frame built once (header and payload in one `Bytes`) is
//! byte-identical for every recipient: that is what makes fan-out a reference-count increment.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use switchyard_plugin_api::ConnectionId;

use crate::outbox::{Closing, Limits, Outbox};
use crate::pressure::Pressure;

/// Opcodes (RFC 6455 §5.2).
pub mod opcode {
    /// Continuation of a fragmented message.
    pub const CONTINUATION: u8 = 0x0;
    /// UTF-8 text message.
    pub const TEXT: u8 = 0x1;
    /// Binary message.
    pub const BINARY: u8 = 0x2;
    /// Close.
    pub const CLOSE: u8 = 0x8;
    /// Ping.
    pub const PING: u8 = 0x9;
    /// Pong.
    pub const PONG: u8 = 0xA;
}

/// Close status codes (RFC 6455 §7.4.1).
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// Going away: server shutdown or idle connection (the Kuzzle SDK reconnects).
    pub const GOING_AWAY: u16 = 1001;
    /// Protocol error.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// Data of a type the endpoint cannot accept (binary where text is expected).
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// No status code in the client's close frame; never sent on the wire.
    pub const NO_STATUS: u16 = 1005;
    /// Invalid payload data (text that is not UTF-8).
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Policy violation: the client broke a rule of this server's (the inflate budget).
    pub const POLICY_VIOLATION: u16 = 1008;
    /// Message too big.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// Internal error; also Kuzzle's code for "too much backpressure".
    pub const INTERNAL_ERROR: u16 = 1011;
    /// Service restart: the host is being replaced by a new process (a hot upgrade); clients
    /// reconnect (the Kuzzle SDK does after any code but 1000).
    pub const SERVICE_RESTART: u16 = 1012;

    /// The code a `disconnect` hook closes with: 1001 on shutdown, 1012 on a hot upgrade's
    /// drain (the Kuzzle SDK and socket.io-client reconnect; the SDK would not after 1000),
    /// `otherwise` for any other reason.
    pub fn on_disconnect(reason: switchyard_plugin_api::DisconnectReason, otherwise: u16) -> u16 {
        use switchyard_plugin_api::DisconnectReason;
        match reason {
            DisconnectReason::SHUTDOWN => GOING_AWAY,
            DisconnectReason::RESTART => SERVICE_RESTART,
            _ => otherwise,
        }
    }
}

/// A rule a client broke: the connection must be failed. `code` and `reason` are what the
/// WebSocket plugin sends; another protocol on RFC 6455 (Socket.io) may map a rule to its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// RSV bits set without a negotiated extension, or on a frame that cannot carry them.
    ReservedBits,
    /// An opcode RFC 6455 reserves.
    ReservedOpcode,
    /// A client frame without a mask.
    Unmasked,
    /// A 64-bit length with its high bit set.
    InvalidLength,
    /// A control frame without FIN.
    FragmentedControl,
    /// A control frame over 125 bytes.
    ControlTooLong,
    /// A message over the cap (`maxRequestSize`), after reassembly and decompression.
    TooBig,
    /// A text message that is not UTF-8.
    InvalidUtf8,
    /// A continuation frame with no message to continue.
    OrphanContinuation,
    /// A new data frame inside a fragmented message.
    Interleaved,
    /// A close frame whose payload is one byte.
    OneByteClose,
    /// A close code a client may not send.
    InvalidCloseCode,
    /// A close reason that is not UTF-8.
    CloseReasonNotUtf8,
    /// A compressed message that does not inflate.
    InvalidCompressed,
    /// Compressed messages inflating to more than the connection's budget per second (issue
    /// 19: a 1.1 KB frame inflates to 1 MB for about 1 ms of CPU).
    InflateBudget,
}

impl Violation {
    /// The close code sent to the client.
    pub fn code(self) -> u16 {
        match self {
            Violation::TooBig => close_code::MESSAGE_TOO_BIG,
            Violation::InvalidUtf8
            | Violation::CloseReasonNotUtf8
            | Violation::InvalidCompressed => close_code::INVALID_PAYLOAD,
            Violation::InflateBudget => close_code::POLICY_VIOLATION,
            _ => close_code::PROTOCOL_ERROR,
        }
    }

    /// The reason sent in the close frame (at most 123 bytes).
    pub fn reason(self) -> &'static str {
        match self {
            Violation::ReservedBits => "reserved bits set",
            Violation::ReservedOpcode => "reserved opcode",
            Violation::Unmasked => "client frames must be masked",
            Violation::InvalidLength => "invalid payload length",
            Violation::FragmentedControl => "fragmented control frame",
            Violation::ControlTooLong => "control frame too long",
            Violation::TooBig => "message too big",
            Violation::InvalidUtf8 | Violation::CloseReasonNotUtf8 => {
                "invalid UTF-8 in text message"
            }
            Violation::OrphanContinuation => "continuation frame without a message to continue",
            Violation::Interleaved => "new message before the previous one ended",
            Violation::OneByteClose => "close frame with a 1-byte payload",
            Violation::InvalidCloseCode => "invalid close code",
            Violation::InvalidCompressed => "invalid compressed data",
            Violation::InflateBudget => {
                "inflate budget exceeded: too much compressed data per second"
            }
        }
    }

    /// True for the rules about a close frame's payload: the client did ask to close.
    pub fn is_in_close_frame(self) -> bool {
        matches!(
            self,
            Violation::OneByteClose | Violation::InvalidCloseCode | Violation::CloseReasonNotUtf8
        )
    }
}

/// A frame header as received from a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Last frame of its message.
    pub fin: bool,
    /// RSV1: set on the first frame of a permessage-deflate compressed message.
    pub compressed: bool,
    /// The opcode.
    pub opcode: u8,
    /// The masking key (client frames are always masked).
    pub mask: [u8; 4],
    /// Payload length.
    pub payload_len: usize,
    /// Header length in bytes (2 to 14).
    pub header_len: usize,
}

impl Header {
    /// True for close, ping and pong.
    pub fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }
}

/// Parses a client frame header from the start of `input`. `Ok(None)` means more bytes are
/// needed. Checks every rule that the header alone decides, so an oversized frame is refused
/// before any of its payload is buffered. `deflate` tells whether RSV1 may be set.
pub fn parse_header(
    input: &[u8],
    deflate: bool,
    max_payload: usize,
) -> Result<Option<Header>, Violation> {
    let [first, second, ..] = *input else {
        return Ok(None);
    };
    let fin = first & 0x80 != 0;
    let rsv1 = first & 0x40 != 0;
    let opcode = first & 0x0F;
    if first & 0x30 != 0 {
        return Err(Violation::ReservedBits);
    }
    if !matches!(
        opcode,
        opcode::CONTINUATION
            | opcode::TEXT
            | opcode::BINARY
            | opcode::CLOSE
            | opcode::PING
            | opcode::PONG
    ) {
        return Err(Violation::ReservedOpcode);
    }
    let is_control = opcode & 0x8 != 0;
    if rsv1 && (!deflate || is_control || opcode == opcode::CONTINUATION) {
        return Err(Violation::ReservedBits);
    }
    if second & 0x80 == 0 {
        return Err(Violation::Unmasked);
    }
    let (payload_len, length_len) = match second & 0x7F {
        126 => match input.get(2..4) {
            None => return Ok(None),
            Some(bytes) => (u64::from(u16::from_be_bytes([bytes[0], bytes[1]])), 2),
        },
        127 => match input.get(2..10) {
            None => return Ok(None),
            Some(bytes) => {
                let mut length = [0; 8];
                length.copy_from_slice(bytes);
                let length = u64::from_be_bytes(length);
                if length >> 63 != 0 {
                    return Err(Violation::InvalidLength);
                }
                (length, 8)
            }
        },
        short => (u64::from(short), 0),
    };
    if is_control {
        if !fin {
            return Err(Violation::FragmentedControl);
        }
        if payload_len > 125 {
            return Err(Violation::ControlTooLong);
        }
    }
    let payload_len = match usize::try_from(payload_len) {
        Ok(length) if length <= max_payload => length,
        _ => return Err(Violation::TooBig),
    };
    let mask_at = 2 + length_len;
    let Some(mask) = input.get(mask_at..mask_at + 4) else {
        return Ok(None);
    };
    Ok(Some(Header {
        fin,
        compressed: rsv1,
        opcode,
        mask: [mask[0], mask[1], mask[2], mask[3]],
        payload_len,
        header_len: mask_at + 4,
    }))
}

/// XORs `payload` with the masking key (RFC 6455 §5.3), in place.
pub fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = payload.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let value = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) ^ word;
        chunk.copy_from_slice(&value.to_ne_bytes());
    }
    for (byte, key) in chunks.into_remainder().iter_mut().zip(mask) {
        *byte ^= key;
    }
}

/// Largest server frame header: 2 bytes, then an 8-byte length.
pub const MAX_HEADER_LEN: usize = 10;

/// Writes a server frame header (FIN set, unmasked) for a payload of `len` bytes into the end
/// of `out[..MAX_HEADER_LEN]`; returns where the header starts.
fn write_header(out: &mut [u8; MAX_HEADER_LEN], opcode: u8, compressed: bool, len: usize) -> usize {
    let first = 0x80 | if compressed { 0x40 } else { 0 } | opcode;
    if len < 126 {
        out[8..].copy_from_slice(&[first, len as u8]);
        8
    } else if let Ok(short) = u16::try_from(len) {
        out[6..8].copy_from_slice(&[first, 126]);
        out[8..].copy_from_slice(&short.to_be_bytes());
        6
    } else {
        out[..2].copy_from_slice(&[first, 127]);
        out[2..].copy_from_slice(&(len as u64).to_be_bytes());
        0
    }
}

/// A buffer for building one server frame: reserve room for the header, write the payload,
/// then `finish` prepends the header without moving the payload.
pub struct FrameBuilder {
    buffer: Vec<u8>,
}

impl FrameBuilder {
    /// A builder for a payload of about `capacity` bytes (exactly, and the frame costs one
    /// allocation instead of two).
    pub fn with_capacity(capacity: usize) -> FrameBuilder {
        let mut buffer = Vec::with_capacity(MAX_HEADER_LEN + capacity);
        buffer.resize(MAX_HEADER_LEN, 0);
        FrameBuilder { buffer }
    }

    /// The payload buffer; append to it (it starts after the reserved header room).
    pub fn payload(&mut self) -> &mut Vec<u8> {
        &mut self.buffer
    }

    /// The payload written so far.
    pub fn payload_bytes(&self) -> &[u8] {
        &self.buffer[MAX_HEADER_LEN..]
    }

    /// Forgets the payload, keeping the header room.
    pub fn clear_payload(&mut self) {
        self.buffer.truncate(MAX_HEADER_LEN);
    }

    /// The complete frame, sharing the builder's allocation.
    pub fn finish(mut self, opcode: u8, compressed: bool) -> Bytes {
        let len = self.buffer.len() - MAX_HEADER_LEN;
        let mut header = [0; MAX_HEADER_LEN];
        let start = write_header(&mut header, opcode, compressed, len);
        self.buffer[start..MAX_HEADER_LEN].copy_from_slice(&header[start..]);
        // `advance`, not `slice`: slicing clones the handle, and a clone of a buffer whose
        // length is its capacity (no extra allocation so far) allocates a shared header.
        let mut frame = Bytes::from(self.buffer);
        frame.advance(start);
        frame
    }
}

/// A complete, uncompressed server frame holding `payload`.
pub fn build(opcode: u8, payload: &[u8]) -> Bytes {
    let mut builder = FrameBuilder::with_capacity(payload.len());
    builder.payload().extend_from_slice(payload);
    builder.finish(opcode, false)
}

/// A close frame with `code` and `reason` (truncated to fit the 125-byte control-frame limit
/// on a character boundary).
pub fn close(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    build(opcode::CLOSE, &payload)
}

/// The payload of a server frame built here (a long-polling transport sends the same bytes
/// without the frame header: a slice, no copy).
pub fn payload_of(frame: &Bytes) -> Bytes {
    let start = match frame.get(1).map(|length| length & 0x7F) {
        Some(126) => 4,
        Some(127) => 10,
        _ => 2,
    };
    frame.slice(start.min(frame.len())..)
}

/// The close reason Kuzzle sends to a slow consumer.
pub const BACKPRESSURE_REASON: &str = "too much backpressure: client is too slow";

/// A close request sending a close frame with `code` and `reason`.
pub fn closing(code: u16, reason: &str) -> Closing {
    Closing {
        frame: close(code, reason),
        code,
        reason: "close frame",
    }
}

/// What a WebSocket outbox turns into when a slow consumer overflows it: a 1011 close, built
/// once per process and shared.
pub fn backpressure_closing() -> Closing {
    static FRAME: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    Closing {
        frame: FRAME
            .get_or_init(|| close(close_code::INTERNAL_ERROR, BACKPRESSURE_REASON))
            .clone(),
        code: close_code::INTERNAL_ERROR,
        reason: BACKPRESSURE_REASON,
    }
}

/// An outbox for WebSocket connection `connection`: capped in bytes, closed with 1011 on
/// overflow or when its writes stall for `slow_consumer_timeout`, counted in `pressure`.
pub fn outbox(
    connection: ConnectionId,
    max_queued_bytes: usize,
    slow_consumer_timeout: Duration,
    pressure: Arc<Pressure>,
) -> Outbox {
    Outbox::new(
        connection,
        Limits::bytes(max_queued_bytes, slow_consumer_timeout),
        backpressure_closing(),
        pressure,
    )
}

/// True for close codes a client may send (RFC 6455 §7.4; 1004–1006 and 1015 are reserved
/// for local use, 1016–2999 unassigned, below 1000 unused).
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::testing::masked_frame as client_frame;

    #[test]
    fn headers_parse_or_are_refused() {
        let long = vec![b'a'; 300];
        let huge = vec![b'a'; 70_000];
        type Case = (
            &'static str,
            Vec<u8>,
            bool,
            Result<Option<(bool, u8, usize, usize)>, &'static str>,
        );
        let cases: Vec<Case> = vec![
            ("empty", vec![], false, Ok(None)),
            ("one byte", vec![0x81], false, Ok(None)),
            (
                "text",
                client_frame(0x81, b"hi"),
                false,
                Ok(Some((true, 1, 2, 6))),
            ),
            (
                "fragment",
                client_frame(0x01, b"hi"),
                false,
                Ok(Some((false, 1, 2, 6))),
            ),
            (
                "16-bit length",
                client_frame(0x82, &long),
                false,
                Ok(Some((true, 2, 300, 8))),
            ),
            (
                "64-bit length",
                client_frame(0x81, &huge),
                false,
                Ok(Some((true, 1, 70_000, 14))),
            ),
            (
                "length incomplete",
                client_frame(0x82, &long)[..3].to_vec(),
                false,
                Ok(None),
            ),
            (
                "mask incomplete",
                client_frame(0x81, b"hi")[..5].to_vec(),
                false,
                Ok(None),
            ),
            (
                "unmasked",
                vec![0x81, 0x02, b'h', b'i'],
                false,
                Err("client frames must be masked"),
            ),
            (
                "rsv2",
                client_frame(0xA1, b"hi"),
                false,
                Err("reserved bits set"),
            ),
            (
                "rsv3",
                client_frame(0x91, b"hi"),
                false,
                Err("reserved bits set"),
            ),
            (
                "rsv1 without deflate",
                client_frame(0xC1, b"hi"),
                false,
                Err("reserved bits set"),
            ),
            (
                "rsv1 with deflate",
                client_frame(0xC1, b"hi"),
                true,
                Ok(Some((true, 1, 2, 6))),
            ),
            (
                "rsv1 on continuation",
                client_frame(0xC0, b"hi"),
                true,
                Err("reserved bits set"),
            ),
            (
                "rsv1 on ping",
                client_frame(0xC9, b"hi"),
                true,
                Err("reserved bits set"),
            ),
            (
                "opcode 3",
                client_frame(0x83, b""),
                false,
                Err("reserved opcode"),
            ),
            (
                "opcode 0xB",
                client_frame(0x8B, b""),
                false,
                Err("reserved opcode"),
            ),
            (
                "fragmented ping",
                client_frame(0x09, b""),
                false,
                Err("fragmented control frame"),
            ),
            (
                "long ping",
                client_frame(0x89, &[0; 126]),
                false,
                Err("control frame too long"),
            ),
            (
                "125-byte ping",
                client_frame(0x89, &[0; 125]),
                false,
                Ok(Some((true, 9, 125, 6))),
            ),
            (
                "close",
                client_frame(0x88, &[3, 232]),
                false,
                Ok(Some((true, 8, 2, 6))),
            ),
            (
                "length high bit",
                vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4],
                false,
                Err("invalid payload length"),
            ),
            (
                "over the cap",
                client_frame(0x81, &huge),
                false,
                Err("message too big"),
            ),
        ];
        for (name, input, deflate, expected) in cases {
            let max = if name == "over the cap" {
                65_535
            } else {
                1 << 20
            };
            let got = parse_header(&input, deflate, max)
                .map(|header| header.map(|h| (h.fin, h.opcode, h.payload_len, h.header_len)))
                .map_err(Violation::reason);
            assert_eq!(got, expected, "{name}");
        }
    }

    #[test]
    fn unmasking_restores_the_payload() {
        for len in [0, 1, 3, 4, 5, 17, 300] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut frame = client_frame(0x82, &payload);
            let header = parse_header(&frame, false, 1 << 20).unwrap().unwrap();
            let body = &mut frame[header.header_len..];
            unmask(body, header.mask);
            assert_eq!(body, &payload[..], "{len}");
        }
    }

    #[test]
    fn server_frames_use_the_shortest_length() {
        let cases = [
            (0, vec![0x81, 0]),
            (125, vec![0x81, 125]),
            (126, vec![0x81, 126, 0, 126]),
        ];
        for (len, header) in cases {
            let frame = build(opcode::TEXT, &vec![b'x'; len]);
            assert_eq!(&frame[..header.len()], &header[..], "{len}");
            assert_eq!(frame.len(), header.len() + len);
        }
        let frame = build(opcode::BINARY, &vec![0; 65_536]);
        assert_eq!(&frame[..10], &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
        let mut builder = FrameBuilder::with_capacity(4);
        builder.payload().extend_from_slice(b"abc");
        assert_eq!(
            &builder.finish(opcode::TEXT, true)[..],
            &[0xC1, 3, b'a', b'b', b'c']
        );
    }

    #[test]
    fn close_frames_carry_code_and_truncated_reason() {
        assert_eq!(
            &close(1011, "slow")[..],
            &[0x88, 6, 0x03, 0xF3, b's', b'l', b'o', b'w']
        );
        let long = "é".repeat(100);
        let frame = close(1001, &long);
        assert_eq!(frame[1], 124, "2 + 122 bytes: 123 would split a character");
        assert!(std::str::from_utf8(&frame[4..]).is_ok());
    }

    #[test]
    fn close_codes_are_validated() {
        let valid = [
            1000, 1001, 1002, 1003, 1007, 1010, 1011, 1012, 1014, 3000, 4999,
        ];
        let invalid = [
            0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
        ];
        assert!(valid.iter().all(|code| is_valid_close_code(*code)));
        assert!(!invalid.iter().any(|code| is_valid_close_code(*code)));
    }
}
