//! permessage-deflate (RFC 7692): negotiation, and compression without per-connection state.
//!
//! The server always answers `server_no_context_takeover; client_no_context_takeover`: every
//! message is then compressed and decompressed on its own, so one compressed notification frame
//! can be shared by every member of a channel, and a connection keeps no 300 KB deflate state.
//! Compressors live in thread-locals and are reset per message.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::ws::frame::Violation;

/// The `Sec-WebSocket-Extensions` value the server answers with when it accepts an offer.
pub const RESPONSE: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// Messages shorter than this are sent uncompressed (RSV1 clear), as RFC 7692 allows: deflate
/// would not shrink them and would cost more CPU than the bytes it saves.
pub const MIN_COMPRESSED_LEN: usize = 64;

/// The empty stored block a sync flush ends with; stripped on send, appended on receive.
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// True if one of the comma-separated `offers` (all `Sec-WebSocket-Extensions` values) is a
/// permessage-deflate offer this server can accept. Offers that ask the server for a window
/// smaller than 32 KB are declined: the pure-Rust deflate backend cannot honour them.
pub fn accepts_offer(offers: &str) -> bool {
    offers.split(',').any(|offer| {
        let mut parts = offer.split(';').map(str::trim);
        if parts.next() != Some("permessage-deflate") {
            return false;
        }
        let mut seen: Vec<&str> = Vec::new();
        for param in parts {
            let (name, value) = match param.split_once('=') {
                Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
                None => (param, None),
            };
            if seen.contains(&name) {
                return false;
            }
            seen.push(name);
            let ok = match (name, value) {
                ("server_no_context_takeover" | "client_no_context_takeover", None) => true,
                // A client can always be inflated with the largest window.
                ("client_max_window_bits", None) => true,
                ("client_max_window_bits", Some(bits)) => valid_bits(bits),
                ("server_max_window_bits", Some(bits)) => bits == "15",
                _ => false,
            };
            if !ok {
                return false;
            }
        }
        true
    })
}

fn valid_bits(bits: &str) -> bool {
    matches!(bits.parse::<u8>(), Ok(8..=15)) && !bits.starts_with('0')
}

thread_local! {
    static COMPRESSOR: RefCell<Compress> = RefCell::new(Compress::new(Compression::fast(), false));
    static DECOMPRESSOR: RefCell<Decompress> = RefCell::new(Decompress::new(false));
}

/// Appends `input` compressed as one permessage-deflate message (no context takeover) to `out`.
pub fn compress(input: &[u8], out: &mut Vec<u8>) {
    COMPRESSOR.with(|compressor| {
        let mut compressor = compressor.borrow_mut();
        compressor.reset();
        let start = compressor.total_in();
        loop {
            out.reserve(64 + input.len() / 2);
            let consumed = (compressor.total_in() - start) as usize;
            // Raw deflate into a Vec cannot fail: errors only come from misuse of the stream.
            let _ = compressor.compress_vec(&input[consumed..], out, FlushCompress::Sync);
            let consumed = (compressor.total_in() - start) as usize;
            // A sync flush is complete once all input is in and output space is left over.
            if consumed == input.len() && out.len() < out.capacity() {
                break;
            }
        }
    });
    if out.ends_with(&SYNC_TAIL) {
        out.truncate(out.len() - SYNC_TAIL.len());
    }
}

/// Appends the decompressed form of one permessage-deflate message to `out`, refusing to let
/// `out` grow past `max_len` (a small compressed frame can expand a thousandfold).
pub fn decompress(input: &[u8], max_len: usize, out: &mut Vec<u8>) -> Result<(), Violation> {
    DECOMPRESSOR.with(|decompressor| {
        let mut decompressor = decompressor.borrow_mut();
        decompressor.reset(false);
        for chunk in [input, &SYNC_TAIL[..]] {
            let mut offset = 0;
            loop {
                let room = (max_len + 1).saturating_sub(out.len()).clamp(1, 64 * 1024);
                out.reserve(room);
                let before_in = decompressor.total_in();
                let before_out = out.len();
                let status = decompressor
                    .decompress_vec(&chunk[offset..], out, FlushDecompress::Sync)
                    .map_err(|_| Violation::InvalidCompressed)?;
                offset += (decompressor.total_in() - before_in) as usize;
                if out.len() > max_len {
                    return Err(Violation::TooBig);
                }
                let stalled = offset == chunk.len() && out.len() < out.capacity();
                let no_progress = decompressor.total_in() == before_in && out.len() == before_out;
                if stalled || status == Status::StreamEnd || no_progress {
                    break;
                }
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_are_accepted_or_declined() {
        let cases = [
            ("permessage-deflate", true),
            ("permessage-deflate; client_max_window_bits", true),
            ("permessage-deflate; client_max_window_bits=10", true),
            ("permessage-deflate; client_max_window_bits=\"12\"", true),
            (
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
                true,
            ),
            ("permessage-deflate; server_max_window_bits=15", true),
            ("permessage-deflate; server_max_window_bits=10", false),
            (
                "permessage-deflate; server_max_window_bits=10, permessage-deflate",
                true,
            ),
            ("permessage-deflate; client_max_window_bits=16", false),
            ("permessage-deflate; client_max_window_bits=08", false),
            (
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                false,
            ),
            ("permessage-deflate; unknown", false),
            ("x-webkit-deflate-frame", false),
            ("", false),
        ];
        for (offer, expected) in cases {
            assert_eq!(accepts_offer(offer), expected, "{offer}");
        }
    }

    #[test]
    fn round_trip() {
        for text in ["", "a", &"{\"hello\":\"world\"}".repeat(200)] {
            let mut compressed = Vec::new();
            compress(text.as_bytes(), &mut compressed);
            assert!(!compressed.ends_with(&SYNC_TAIL));
            let mut back = Vec::new();
            decompress(&compressed, 1 << 20, &mut back).unwrap();
            assert_eq!(back, text.as_bytes());
        }
    }

    #[test]
    fn rfc_7692_example_decompresses() {
        // RFC 7692 §7.2.3.1: "Hello" compressed without context takeover.
        let mut out = Vec::new();
        decompress(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 100, &mut out).unwrap();
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn expansion_past_the_cap_is_refused() {
        let mut compressed = Vec::new();
        compress(&vec![b'a'; 100_000], &mut compressed);
        assert!(compressed.len() < 1000);
        let mut out = Vec::new();
        assert_eq!(
            decompress(&compressed, 99_999, &mut out),
            Err(Violation::TooBig)
        );
        out.clear();
        assert!(decompress(&compressed, 100_000, &mut out).is_ok());
    }

    #[test]
    fn garbage_is_invalid_payload() {
        let mut out = Vec::new();
        let error = decompress(&[0xff, 0xff, 0xff, 0xff, 0xff], 100, &mut out).unwrap_err();
        assert_eq!(error, Violation::InvalidCompressed);
    }
}
