//! The WebSocket transport's RFC 6455 codec: server frames (built once, unmasked, shared by every
//! recipient), client frames (masked, maybe fragmented) and the accept key. No extensions are
//! negotiated, so RSV bits are always refused.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use sha1::{Digest, Sha1};

/// Opcodes (RFC 6455 §5.2).
pub mod opcode {
    /// Continuation of a fragmented message.
    pub const CONTINUATION: u8 = 0x0;
    /// UTF-8 text.
    pub const TEXT: u8 = 0x1;
    /// Binary.
    pub const BINARY: u8 = 0x2;
    /// Close.
    pub const CLOSE: u8 = 0x8;
    /// Ping.
    pub const PING: u8 = 0x9;
    /// Pong.
    pub const PONG: u8 = 0xA;
}

/// Close codes this server sends.
pub mod close_code {
    /// Normal closure (the session ended: ping timeout, client close, bad Engine.IO input).
    pub const NORMAL: u16 = 1000;
    /// Going away: server shutdown.
    pub const GOING_AWAY: u16 = 1001;
    /// A WebSocket protocol error.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// Binary data where text is expected, or text that is not UTF-8.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A message over `maxRequestSize` (what npm `ws` sends for its `maxPayload`).
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// Internal error: the slow-consumer cap was hit.
    pub const INTERNAL_ERROR: u16 = 1011;
}

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a client's key.
pub fn accept_key(key: &str) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key.as_bytes());
    sha1.update(GUID.as_bytes());
    BASE64.encode(sha1.finalize())
}

/// True for a well-formed `Sec-WebSocket-Key` (16 bytes, base64).
pub fn is_valid_key(key: &str) -> bool {
    BASE64
        .decode(key.trim())
        .is_ok_and(|bytes| bytes.len() == 16)
}

/// Length of the header of a server frame whose payload is `len` bytes.
pub fn header_len(len: usize) -> usize {
    if len < 126 {
        2
    } else if len <= usize::from(u16::MAX) {
        4
    } else {
        10
    }
}

/// Builds a frame from a payload written after `header_len(max)` reserved bytes: call
/// `FrameBuilder::new`, append the payload to `buffer()`, then `finish`.
#[derive(Debug)]
pub struct FrameBuilder {
    buffer: Vec<u8>,
}

/// Room reserved for the largest header.
const RESERVED: usize = 10;

impl FrameBuilder {
    /// A builder for a payload of about `capacity` bytes.
    pub fn new(capacity: usize) -> FrameBuilder {
        let mut buffer = Vec::with_capacity(RESERVED + capacity);
        buffer.resize(RESERVED, 0);
        FrameBuilder { buffer }
    }

    /// The buffer to append the payload to.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buffer
    }

    /// The complete frame (FIN set, unmasked), sharing the builder's allocation.
    pub fn finish(mut self, opcode: u8) -> Bytes {
        let len = self.buffer.len() - RESERVED;
        let start = RESERVED - header_len(len);
        let header = &mut self.buffer[start..RESERVED];
        header[0] = 0x80 | opcode;
        match header.len() {
            2 => header[1] = len as u8,
            4 => {
                header[1] = 126;
                header[2..].copy_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                header[1] = 127;
                header[2..].copy_from_slice(&(len as u64).to_be_bytes());
            }
        }
        Bytes::from(self.buffer).slice(start..)
    }
}

/// A complete server frame holding `payload`.
pub fn build(opcode: u8, payload: &[u8]) -> Bytes {
    let mut builder = FrameBuilder::new(payload.len());
    builder.buffer().extend_from_slice(payload);
    builder.finish(opcode)
}

/// A close frame with `code` and `reason` (≤ 123 bytes).
pub fn close(code: u16, reason: &str) -> Bytes {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(&reason.as_bytes()[..reason.len().min(123)]);
    build(opcode::CLOSE, &payload)
}

/// The payload of a server text frame built here (polling sends packets without the header).
pub fn payload_of(frame: &Bytes) -> Bytes {
    let start = match frame.get(1) {
        Some(126) => 4,
        Some(127) => 10,
        _ => 2,
    };
    frame.slice(start.min(frame.len())..)
}

/// Something a client sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete text message.
    Text(&'a str),
    /// A ping: answer with a pong carrying the same payload.
    Ping(&'a [u8]),
    /// A pong (ignored).
    Pong,
    /// A close frame, with its code (1005 when absent).
    Close(u16),
}

/// Why the client's WebSocket is closed: the code and reason sent back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    /// Close code.
    pub code: u16,
    /// Close reason.
    pub reason: &'static str,
}

const fn violation(code: u16, reason: &'static str) -> Violation {
    Violation { code, reason }
}

/// Per-connection decoding state: the message being reassembled, if any.
#[derive(Debug)]
pub struct Reader {
    /// The cap on a whole message (`maxRequestSize`).
    max_message_size: usize,
    /// Fragments of a text message received so far (`None`: no message in progress).
    partial: Option<Vec<u8>>,
    /// The last reassembled message, borrowed by its event.
    assembled: Vec<u8>,
}

impl Reader {
    /// A reader refusing messages over `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> Reader {
        Reader {
            max_message_size,
            partial: None,
            assembled: Vec::new(),
        }
    }

    /// Decodes frames from the start of `input` until one completes an event or more bytes are
    /// needed. Returns the bytes used (drop them before the next call) and the event, if any.
    /// Unmasks payloads in place.
    pub fn decode<'a>(
        &'a mut self,
        input: &'a mut [u8],
    ) -> Result<(usize, Option<Event<'a>>), Violation> {
        self.assembled = Vec::new();
        let mut offset = 0;
        loop {
            let Some((header, fin, op)) = parse_header(&input[offset..], self.max_message_size)?
            else {
                return Ok((offset, None));
            };
            let frame_len = header.header_len + header.payload_len;
            if input.len() - offset < frame_len {
                return Ok((offset, None));
            }
            let start = offset + header.header_len;
            offset += frame_len;
            let payload = &mut input[start..offset];
            for (index, byte) in payload.iter_mut().enumerate() {
                *byte ^= header.mask[index % 4];
            }
            match op {
                opcode::PING => return Ok((offset, Some(Event::Ping(&input[start..offset])))),
                opcode::PONG => return Ok((offset, Some(Event::Pong))),
                opcode::CLOSE => {
                    let code = match &input[start..offset] {
                        [high, low, ..] => u16::from_be_bytes([*high, *low]),
                        _ => 1005,
                    };
                    return Ok((offset, Some(Event::Close(code))));
                }
                opcode::BINARY => {
                    return Err(violation(
                        close_code::UNSUPPORTED_DATA,
                        "binary messages are not supported",
                    ))
                }
                opcode::CONTINUATION => {
                    let Some(partial) = self.partial.as_mut() else {
                        return Err(violation(
                            close_code::PROTOCOL_ERROR,
                            "continuation without a message",
                        ));
                    };
                    if partial.len() + payload.len() > self.max_message_size {
                        return Err(too_big());
                    }
                    partial.extend_from_slice(payload);
                    if fin {
                        self.assembled = self.partial.take().unwrap_or_default();
                        return text_event(&self.assembled).map(|event| (offset, Some(event)));
                    }
                }
                _ => {
                    if self.partial.is_some() {
                        return Err(violation(
                            close_code::PROTOCOL_ERROR,
                            "new message before the previous one ended",
                        ));
                    }
                    if fin {
                        return text_event(&input[start..offset])
                            .map(|event| (offset, Some(event)));
                    }
                    self.partial = Some(payload.to_vec());
                }
            }
        }
    }
}

fn text_event(payload: &[u8]) -> Result<Event<'_>, Violation> {
    std::str::from_utf8(payload)
        .map(Event::Text)
        .map_err(|_| violation(close_code::UNSUPPORTED_DATA, "invalid UTF-8"))
}

/// The violation for a message over `maxRequestSize`.
pub fn too_big() -> Violation {
    violation(close_code::MESSAGE_TOO_BIG, "Max payload size exceeded")
}

struct Header {
    mask: [u8; 4],
    payload_len: usize,
    header_len: usize,
}

/// Parses a client frame header; `Ok(None)`: more bytes needed. An oversized frame is refused
/// from its header, before its payload is buffered.
fn parse_header(input: &[u8], max_payload: usize) -> Result<Option<(Header, bool, u8)>, Violation> {
    let [first, second, ..] = *input else {
        return Ok(None);
    };
    let fin = first & 0x80 != 0;
    let op = first & 0x0F;
    if first & 0x70 != 0 {
        return Err(violation(close_code::PROTOCOL_ERROR, "reserved bits set"));
    }
    let control = op & 0x8 != 0;
    if !matches!(
        op,
        opcode::CONTINUATION
            | opcode::TEXT
            | opcode::BINARY
            | opcode::CLOSE
            | opcode::PING
            | opcode::PONG
    ) {
        return Err(violation(close_code::PROTOCOL_ERROR, "reserved opcode"));
    }
    if second & 0x80 == 0 {
        return Err(violation(
            close_code::PROTOCOL_ERROR,
            "client frames must be masked",
        ));
    }
    let (len, extra) = match second & 0x7F {
        126 => match input.get(2..4) {
            None => return Ok(None),
            Some(bytes) => (u64::from(u16::from_be_bytes([bytes[0], bytes[1]])), 2),
        },
        127 => match input.get(2..10) {
            None => return Ok(None),
            Some(bytes) => {
                let mut length = [0; 8];
                length.copy_from_slice(bytes);
                (u64::from_be_bytes(length), 8)
            }
        },
        short => (u64::from(short), 0),
    };
    if control && (!fin || len > 125) {
        return Err(violation(
            close_code::PROTOCOL_ERROR,
            "invalid control frame",
        ));
    }
    let payload_len = match usize::try_from(len) {
        Ok(len) if len <= max_payload => len,
        _ => return Err(too_big()),
    };
    let Some(mask) = input.get(2 + extra..6 + extra) else {
        return Ok(None);
    };
    let header = Header {
        mask: [mask[0], mask[1], mask[2], mask[3]],
        payload_len,
        header_len: 6 + extra,
    };
    Ok(Some((header, fin, op)))
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
