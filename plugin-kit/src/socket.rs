//! Reading a socket into a connection's buffer, the same way in every protocol: at most
//! `READ_CHUNK` more at a time, the buffer growing only when nearly full.

use std::io;

use tokio::net::tcp::OwnedReadHalf;

/// Read granularity; connections free their buffer whenever no partial message is left in it.
pub const READ_CHUNK: usize = 16 * 1024;

/// What one read after readiness gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filled {
    /// Bytes were appended to the buffer.
    Data,
    /// The readiness was spurious: wait again.
    Nothing,
    /// End of stream or a socket error: the client is gone.
    Gone,
}

/// Appends what `read_half` has to `buffer` (call it once the socket is readable).
pub fn fill(read_half: &OwnedReadHalf, buffer: &mut Vec<u8>) -> Filled {
    if buffer.capacity() - buffer.len() < READ_CHUNK / 4 {
        buffer.reserve(READ_CHUNK);
    }
    match read_half.try_read_buf(buffer) {
        Ok(0) => Filled::Gone,
        Ok(_) => Filled::Data,
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => Filled::Nothing,
        Err(_) => Filled::Gone,
    }
}
