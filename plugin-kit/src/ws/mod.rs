//! RFC 6455 (WebSocket) and RFC 7692 (permessage-deflate): pure codecs, no I/O.
//!
//! `frame` parses client headers and builds server frames; `reader` turns bytes into messages
//! (reassembly, size cap, UTF-8, decompression); `handshake` parses the upgrade request and
//! builds the answer; `deflate` compresses and inflates messages.

pub mod deflate;
pub mod frame;
pub mod handshake;
pub mod reader;
#[doc(hidden)]
pub mod testing;
