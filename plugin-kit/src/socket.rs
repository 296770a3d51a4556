//! Reading a socket into a connection's buffer, the same way in every protocol: at most
//! `READ_CHUNK` more at a time, the buffer growing only when nearly full; and the idle timer of a
//! connection's read loop.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio::time::Sleep;

use crate::stats::{Counter, Counters};
use crate::stream::ReadHalf;

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

thread_local! {
    /// Where a connection without a buffer reads first: one per thread, so such a read neither
    /// allocates nor zeroes anything.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}

/// Appends what `read_half` has to `buffer` (call it once the socket is readable), counting
/// the bytes in `counters` (`BytesIn`).
///
/// A connection without a buffer reads into its thread's scratch buffer first: a spurious
/// wake-up then allocates nothing, and a small message gets a buffer of its own size instead
/// of a `READ_CHUNK` one that is freed as soon as the message is handled.
pub fn fill(read_half: &ReadHalf, buffer: &mut Vec<u8>, counters: &Counters) -> Filled {
    if buffer.capacity() == 0 {
        return SCRATCH.with_borrow_mut(|scratch| match read_half.try_read(scratch) {
            Ok(0) => Filled::Gone,
            Ok(read) => {
                buffer.extend_from_slice(&scratch[..read]);
                counters.add(Counter::BytesIn, read as u64);
                Filled::Data
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Filled::Nothing,
            Err(_) => Filled::Gone,
        });
    }
    if buffer.capacity() - buffer.len() < READ_CHUNK / 4 {
        buffer.reserve(READ_CHUNK);
    }
    match read_half.try_read_buf(buffer) {
        Ok(0) => Filled::Gone,
        Ok(read) => {
            counters.add(Counter::BytesIn, read as u64);
            Filled::Data
        }
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => Filled::Nothing,
        Err(_) => Filled::Gone,
    }
}

/// [`fill`] once `readable()` gave `ready`: a readiness error means the client is gone.
pub fn fill_ready(
    ready: io::Result<()>,
    read_half: &ReadHalf,
    buffer: &mut Vec<u8>,
    counters: &Counters,
) -> Filled {
    match ready {
        Ok(()) => fill(read_half, buffer, counters),
        Err(_) => Filled::Gone,
    }
}

/// A read loop's idle deadline: `window` after the last [`Idle::touch`]. Activity only records
/// the time; the one timer is re-armed when it fires early, so a busy connection never resets
/// it. Read loops touch it for whole messages, never for bytes: a byte at a time must not keep
/// an unfinished frame alive (issue 19).
#[derive(Debug)]
pub struct Idle {
    window: Duration,
    last_activity: Instant,
}

impl Idle {
    /// A deadline `window` from now. Wait on it with a `tokio::time::sleep(window)`, pinned.
    pub fn new(window: Duration) -> Idle {
        Idle {
            window,
            last_activity: Instant::now(),
        }
    }

    /// Something happened on the connection (or it waited on the server, which is not the
    /// client's idleness): the deadline moves to `window` from now.
    pub fn touch(&mut self) {
        self.last_activity = Instant::now();
    }

    /// Completes once nothing touched the deadline for `window`; `timer` is re-armed to the
    /// moved deadline when it fires early.
    pub async fn expired(&mut self, mut timer: Pin<&mut Sleep>) {
        loop {
            timer.as_mut().await;
            let idle_until = self.last_activity + self.window;
            if Instant::now() >= idle_until {
                return;
            }
            timer
                .as_mut()
                .reset(tokio::time::Instant::from_std(idle_until));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_deadline_moves_with_activity() {
        let window = Duration::from_millis(60);
        let mut idle = Idle::new(window);
        let timer = tokio::time::sleep(window);
        tokio::pin!(timer);
        let start = Instant::now();
        tokio::time::sleep(Duration::from_millis(40)).await;
        idle.touch();
        idle.expired(timer.as_mut()).await;
        assert!(start.elapsed() >= Duration::from_millis(100));
    }
}
