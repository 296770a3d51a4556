//! The WebSocket opening handshake (`plugin-kit/src/ws/handshake.rs`): the upgrade request as
//! read from the socket, with and without compression enabled, and the permessage-deflate
//! offer check.
//!
//! Input: one flag byte (bit 0: compression enabled), then the request bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_plugin_kit::ws::{deflate, handshake};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, request)) = data.split_first() else {
        return;
    };
    let compression = flags & 1 == 1;
    match handshake::parse(request, compression) {
        Ok(Some(upgrade)) => {
            let _ = format!("{upgrade:?}");
        }
        Ok(None) => {}
        Err(refusal) => {
            let _ = format!("{refusal:?}");
        }
    }
    if let Ok(text) = std::str::from_utf8(request) {
        let _ = deflate::accepts_offer(text);
        if handshake::is_valid_key(text) {
            assert_eq!(handshake::accept_key(text).len(), 28);
        }
    }
});
