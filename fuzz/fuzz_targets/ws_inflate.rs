//! permessage-deflate (`plugin-kit/src/ws/deflate.rs`): inflating what a client sent under the
//! message cap, and compress → decompress giving back the input.
//!
//! Input: one flag byte (bit 0: treat the rest as plain text to round-trip), then bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_plugin_kit::ws::deflate;

/// The cap on an inflated message: small, so inflate bombs hit it.
const MAX_MESSAGE_SIZE: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, bytes)) = data.split_first() else {
        return;
    };
    if flags & 1 == 0 {
        let mut out = Vec::new();
        if deflate::decompress(bytes, MAX_MESSAGE_SIZE, &mut out).is_ok() {
            assert!(
                out.len() <= MAX_MESSAGE_SIZE,
                "inflated {} bytes",
                out.len()
            );
        }
    } else {
        let mut compressed = Vec::new();
        deflate::compress(bytes, &mut compressed);
        let mut back = Vec::new();
        deflate::decompress(&compressed, bytes.len().max(1), &mut back)
            .expect("what the server compresses inflates");
        assert_eq!(back, bytes);
    }
});
