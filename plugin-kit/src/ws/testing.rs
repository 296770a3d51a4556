//! Helpers for tests (this crate's and the workspace's): client frames as a browser sends them.
//!
//! Public but hidden: integration tests need to send frames no conforming client library would
//! (unmasked, fragmented pings, invalid UTF-8).

/// A masked client frame: `first` is the first header byte (FIN, RSV and opcode bits).
pub fn masked_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(first);
    match payload.len() {
        len if len < 126 => out.push(0x80 | len as u8),
        len if len < 65536 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(
        payload
            .iter()
            .zip(mask.iter().cycle())
            .map(|(byte, key)| byte ^ key),
    );
    out
}
