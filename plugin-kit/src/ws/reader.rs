//! Turns the bytes a client sent into messages: frame parsing, fragment reassembly, size cap,
//! UTF-8 validation and decompression. Pure (no I/O), so every rule is table-tested.

use crate::ws::deflate;
use crate::ws::frame::{self, close_code, opcode, Violation};

/// Something a client sent that the connection must act on.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete text message, valid UTF-8.
    Text(&'a str),
    /// A complete binary message.
    Binary(&'a [u8]),
    /// A ping; answer with a pong carrying the same payload.
    Ping(&'a [u8]),
    /// A pong (unsolicited ones are allowed and ignored).
    Pong,
    /// The client started or answered the closing handshake. `code` is 1005 when the frame had
    /// no status code.
    Close {
        /// The client's close code.
        code: u16,
        /// The client's reason.
        reason: &'a str,
    },
}

/// A message arriving in several frames.
#[derive(Debug)]
struct Partial {
    /// `TEXT` or `BINARY`, from the first frame.
    opcode: u8,
    /// RSV1 on the first frame: the reassembled payload is compressed.
    compressed: bool,
    /// Payload received so far (compressed if `compressed`).
    data: Vec<u8>,
    /// How much of `data` is known to be valid UTF-8, so a bad byte fails the connection as
    /// soon as its fragment arrives, not at the end of the message.
    utf8_checked: usize,
}

/// Per-connection decoding state. Small while idle: no buffer is kept between messages.
#[derive(Debug)]
pub struct MessageReader {
    /// `maxRequestSize`: the cap on a whole message, after reassembly and decompression.
    max_message_size: usize,
    /// permessage-deflate was negotiated: RSV1 may be set.
    deflate: bool,
    /// The message being reassembled, if any.
    partial: Option<Box<Partial>>,
    /// A message assembled or decompressed by the last `decode`, borrowed by its event.
    assembled: Vec<u8>,
    /// Bytes decompression may still produce (the connection's inflate budget, issue 19);
    /// `usize::MAX` when unbudgeted.
    inflate_allowance: usize,
    /// Bytes the last `decode` decompressed.
    inflated: usize,
}

impl MessageReader {
    /// A reader for one connection.
    pub fn new(max_message_size: usize, deflate: bool) -> MessageReader {
        MessageReader {
            max_message_size,
            deflate,
            partial: None,
            assembled: Vec::new(),
            inflate_allowance: usize::MAX,
            inflated: 0,
        }
    }

    /// Bytes the next messages may inflate to, in all, before decoding fails with
    /// [`Violation::InflateBudget`]: decompression stops there, so a budget is never exceeded
    /// (`usize::MAX`, the default: no budget).
    pub fn set_inflate_allowance(&mut self, bytes: usize) {
        self.inflate_allowance = bytes;
    }

    /// Bytes the last `decode` decompressed (0 if it finished no compressed message).
    pub fn inflated(&self) -> usize {
        self.inflated
    }

    /// A fragmented message is partly received: a ping or pong now is not progress on it (the
    /// read loops' idle timers count whole messages, issue 19).
    pub fn is_mid_message(&self) -> bool {
        self.partial.is_some()
    }

    /// Bytes of the fragmented message received so far (0 between messages).
    pub fn partial_len(&self) -> usize {
        self.partial
            .as_ref()
            .map_or(0, |partial| partial.data.len())
    }

    /// Decodes frames from the start of `input` until one completes an event or more bytes are
    /// needed. Returns how many bytes of `input` were used (drop them before the next call) and
    /// the event, if any. Unmasks payloads in place.
    pub fn decode<'a>(
        &'a mut self,
        input: &'a mut [u8],
    ) -> Result<(usize, Option<Event<'a>>), Violation> {
        // The previous event is handled by now: free its buffer so an idle connection holds none.
        self.assembled = Vec::new();
        self.inflated = 0;
        let mut offset = 0;
        loop {
            let rest = &input[offset..];
            let Some(header) = frame::parse_header(rest, self.deflate, self.max_message_size)?
            else {
                return Ok((offset, None));
            };
            let frame_len = header.header_len + header.payload_len;
            if rest.len() < frame_len {
                return Ok((offset, None));
            }
            let start = offset + header.header_len;
            offset += frame_len;
            let payload = &mut input[start..offset];
            frame::unmask(payload, header.mask);

            match header.opcode {
                opcode::PING => return Ok((offset, Some(Event::Ping(&input[start..offset])))),
                opcode::PONG => return Ok((offset, Some(Event::Pong))),
                opcode::CLOSE => {
                    return close_event(&input[start..offset]).map(|event| (offset, Some(event)))
                }
                opcode::CONTINUATION => {
                    let Some(partial) = self.partial.as_mut() else {
                        return Err(Violation::OrphanContinuation);
                    };
                    if partial.data.len() + payload.len() > self.max_message_size {
                        return Err(Violation::TooBig);
                    }
                    partial.data.extend_from_slice(payload);
                    if partial.opcode == opcode::TEXT && !partial.compressed {
                        check_utf8(&partial.data, &mut partial.utf8_checked, header.fin)?;
                    }
                    if header.fin {
                        let partial = self.partial.take().expect("checked above");
                        return self.finish(*partial).map(|event| (offset, Some(event)));
                    }
                }
                data_opcode => {
                    if self.partial.is_some() {
                        return Err(Violation::Interleaved);
                    }
                    if header.fin {
                        if header.compressed {
                            let partial = Partial {
                                opcode: data_opcode,
                                compressed: true,
                                data: payload.to_vec(),
                                utf8_checked: 0,
                            };
                            return self.finish(partial).map(|event| (offset, Some(event)));
                        }
                        let payload = &input[start..offset];
                        return message_event(data_opcode, payload)
                            .map(|event| (offset, Some(event)));
                    }
                    let mut partial = Partial {
                        opcode: data_opcode,
                        compressed: header.compressed,
                        data: payload.to_vec(),
                        utf8_checked: 0,
                    };
                    if data_opcode == opcode::TEXT && !header.compressed {
                        check_utf8(&partial.data, &mut partial.utf8_checked, false)?;
                    }
                    self.partial = Some(Box::new(partial));
                }
            }
        }
    }

    /// The event for a message whose last fragment arrived.
    fn finish(&mut self, partial: Partial) -> Result<Event<'_>, Violation> {
        if partial.compressed {
            let cap = self.max_message_size.min(self.inflate_allowance);
            let mut out = Vec::with_capacity(partial.data.len().saturating_mul(2).min(cap));
            match deflate::decompress(&partial.data, cap, &mut out) {
                Err(Violation::TooBig) if cap < self.max_message_size => {
                    return Err(Violation::InflateBudget)
                }
                result => result?,
            }
            self.inflated = out.len();
            self.assembled = out;
        } else {
            self.assembled = partial.data;
        }
        message_event(partial.opcode, &self.assembled)
    }
}

/// Validates the UTF-8 of `data[*checked..]`; an incomplete character at the end is allowed
/// unless this is the last fragment.
fn check_utf8(data: &[u8], checked: &mut usize, last: bool) -> Result<(), Violation> {
    match std::str::from_utf8(&data[*checked..]) {
        Ok(_) => {
            *checked = data.len();
            Ok(())
        }
        Err(error) if error.error_len().is_none() && !last => {
            *checked += error.valid_up_to();
            Ok(())
        }
        Err(_) => Err(Violation::InvalidUtf8),
    }
}

fn message_event(opcode: u8, payload: &[u8]) -> Result<Event<'_>, Violation> {
    if opcode == opcode::TEXT {
        std::str::from_utf8(payload)
            .map(Event::Text)
            .map_err(|_| Violation::InvalidUtf8)
    } else {
        Ok(Event::Binary(payload))
    }
}

fn close_event(payload: &[u8]) -> Result<Event<'_>, Violation> {
    match payload {
        [] => Ok(Event::Close {
            code: close_code::NO_STATUS,
            reason: "",
        }),
        [_] => Err(Violation::OneByteClose),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            if !frame::is_valid_close_code(code) {
                return Err(Violation::InvalidCloseCode);
            }
            let reason = std::str::from_utf8(reason).map_err(|_| Violation::CloseReasonNotUtf8)?;
            Ok(Event::Close { code, reason })
        }
    }
}

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;
