//! A connection's writer: drains its outbox in batches, one `writev` per 64 frames, no copies.
//!
//! A consumer is slow by its own behaviour: when the socket takes nothing for
//! `slow_consumer_timeout` while frames wait, the writer closes the connection with the
//! outbox's overflow close (1011 for WebSocket), whatever other connections do.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};

use crate::outbox::{Outbox, Taken};
use crate::stats::{Counter, Counters};
use crate::stream::WriteHalf;

/// Frames per `writev` (Linux allows 1024; 64 already amortizes the syscall ~50-fold).
pub const MAX_SLICES: usize = 64;

/// Writes the outbox of `owner` (a connection, or the outbox itself) to the socket until a close
/// is taken (then writes what came with it and sends a FIN by dropping the write half) or the
/// socket fails (then closes the outbox so the reader stops).
pub async fn write_loop<T: AsRef<Outbox> + ?Sized>(write_half: WriteHalf, owner: Arc<T>) {
    let outbox = (*owner).as_ref();
    let stall = outbox.limits().slow_consumer_timeout;
    let counters = outbox.pressure().counters();
    let mut batch = VecDeque::new();
    // The front frame of `batch` is partly written.
    let mut partial = false;
    loop {
        let result = match outbox.take(&mut batch) {
            Taken::Idle => {
                if batch.capacity() > MAX_SLICES {
                    batch = VecDeque::new();
                }
                outbox.writer_wait().await;
                continue;
            }
            Taken::Frames => {
                write_within(&write_half, &mut batch, stall, &mut partial, counters).await
            }
            Taken::Close(last) => {
                if !last.is_empty() {
                    batch.push_back(last);
                }
                if !batch.is_empty() {
                    let _ =
                        write_within(&write_half, &mut batch, stall, &mut partial, counters).await;
                }
                return;
            }
        };
        match result {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::TimedOut => {
                let unwritten: usize = batch.iter().map(Bytes::len).sum();
                // A partly written frame must be finished before a close frame can follow.
                batch.truncate(usize::from(partial));
                if outbox.stalled(unwritten) {
                    let mut rest = VecDeque::new();
                    if let Taken::Close(last) = outbox.take(&mut rest) {
                        if !last.is_empty() && !partial {
                            batch.push_back(last);
                        }
                    }
                }
                // The reader drops the socket after its close timeout if this never ends.
                let _ = write_within(&write_half, &mut batch, stall, &mut partial, counters).await;
                return;
            }
            Err(_) => {
                outbox.close_silently();
                return;
            }
        }
    }
}

/// Writes every frame of `batch`, emptying it; the bytes written are counted in `counters`.
pub async fn write_all(
    write_half: &WriteHalf,
    batch: &mut VecDeque<Bytes>,
    counters: &Counters,
) -> io::Result<()> {
    let mut partial = false;
    write_within(write_half, batch, Duration::MAX, &mut partial, counters).await
}

/// Writes every frame of `batch`, emptying it, unless the socket takes nothing for `stall`
/// (then `TimedOut`, with what is left in `batch` and `partial` saying whether its front frame
/// is partly written). The bytes written are counted in `counters` (`BytesOut`), once per
/// system call, in this thread's cells.
pub async fn write_within(
    write_half: &WriteHalf,
    batch: &mut VecDeque<Bytes>,
    stall: Duration,
    partial: &mut bool,
    counters: &Counters,
) -> io::Result<()> {
    while !batch.is_empty() {
        // Without readiness this returns `WouldBlock` without a system call.
        match write_some(write_half, batch) {
            Ok((written, front_partial)) => {
                counters.add(Counter::BytesOut, written as u64);
                *partial = front_partial;
                continue;
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
        // The socket is full: the timer runs only now. Boxed, so the timer is not part of
        // every idle connection's writer future (a socket fills rarely; this is the slow path).
        wait_writable(write_half, stall).await?;
    }
    // Over TLS, the last records may still wait in the session (never over plain TCP).
    while write_half.holds_unsent() {
        match write_half.try_flush() {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                wait_writable(write_half, stall).await?
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Waits until the socket takes more, or fails with `TimedOut` after `stall`.
async fn wait_writable(write_half: &WriteHalf, stall: Duration) -> io::Result<()> {
    match Box::pin(tokio::time::timeout(stall, write_half.writable())).await {
        Ok(ready) => ready,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// One `writev` of the front of `batch`; written frames are popped, a partly written one is
/// advanced. Returns the bytes written and whether the front frame is now partly written. Not
/// async, so its slice array lives on the stack, not in every connection's future.
fn write_some(write_half: &WriteHalf, batch: &mut VecDeque<Bytes>) -> io::Result<(usize, bool)> {
    let mut slices = [IoSlice::new(&[]); MAX_SLICES];
    let count = batch
        .iter()
        .zip(slices.iter_mut())
        .map(|(frame, slice)| *slice = IoSlice::new(frame))
        .count();
    let total = write_half.try_write_vectored(&slices[..count])?;
    let mut written = total;
    if written == 0 {
        return Err(io::ErrorKind::WriteZero.into());
    }
    while written > 0 {
        let front = batch
            .front_mut()
            .expect("written bytes come from queued frames");
        if front.len() <= written {
            written -= front.len();
            batch.pop_front();
        } else {
            front.advance(written);
            return Ok((total, true));
        }
    }
    Ok((total, false))
}
