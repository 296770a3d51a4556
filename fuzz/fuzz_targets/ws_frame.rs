//! The WebSocket message reader (`plugin-kit/src/ws/reader.rs`): frame headers, masking,
//! fragment reassembly, the size cap, UTF-8 checks and permessage-deflate, fed the way a
//! connection feeds it (bytes arrive in chunks, consumed bytes are dropped).
//!
//! Input: one flag byte (bit 0: deflate negotiated; bits 1..7: chunk size - 1), then the bytes
//! the client sent.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_plugin_kit::ws::reader::{Event, MessageReader};

/// `maxRequestSize` for the fuzzer: small, so the cap is reached often.
const MAX_MESSAGE_SIZE: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, bytes)) = data.split_first() else {
        return;
    };
    let deflate = flags & 1 == 1;
    let chunk = usize::from(flags >> 1) + 1;
    let mut reader = MessageReader::new(MAX_MESSAGE_SIZE, deflate);
    let mut buffer: Vec<u8> = Vec::new();
    for piece in bytes.chunks(chunk) {
        buffer.extend_from_slice(piece);
        loop {
            let before = buffer.len();
            match reader.decode(&mut buffer) {
                Err(violation) => {
                    // Every violation has a close code and a reason a close frame can carry.
                    assert!(violation.reason().len() <= 123);
                    let _ = violation.code();
                    return;
                }
                Ok((used, event)) => {
                    assert!(used <= before, "used {used} of {before} bytes");
                    let done = matches!(event, Some(Event::Close { .. }));
                    match &event {
                        // The cap holds after reassembly and after inflating.
                        Some(Event::Text(text)) => assert!(text.len() <= MAX_MESSAGE_SIZE),
                        Some(Event::Binary(bytes)) => assert!(bytes.len() <= MAX_MESSAGE_SIZE),
                        Some(Event::Ping(payload)) => assert!(payload.len() <= 125),
                        _ => {}
                    }
                    buffer.drain(..used);
                    if done {
                        return;
                    }
                    if used == 0 {
                        break;
                    }
                }
            }
        }
    }
});
