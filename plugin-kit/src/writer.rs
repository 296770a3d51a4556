//! A connection's writer: drains its outbox in batches, one `writev` per 64 frames, no copies.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::Arc;

use bytes::{Buf, Bytes};
use tokio::net::tcp::OwnedWriteHalf;

use crate::outbox::{Outbox, Taken};

/// Frames per `writev` (Linux allows 1024; 64 already amortizes the syscall ~50-fold).
pub const MAX_SLICES: usize = 64;

/// Writes the outbox of `owner` (a connection, or the outbox itself) to the socket until a close
/// is taken (then writes what came with it and sends a FIN by dropping the write half) or the
/// socket fails (then closes the outbox so the reader stops).
pub async fn write_loop<T: AsRef<Outbox> + ?Sized>(write_half: OwnedWriteHalf, owner: Arc<T>) {
    let outbox = (*owner).as_ref();
    let mut batch = VecDeque::new();
    loop {
        let result = match outbox.take(&mut batch) {
            Taken::Idle => {
                if batch.capacity() > MAX_SLICES {
                    batch = VecDeque::new();
                }
                outbox.writer_wait().await;
                continue;
            }
            Taken::Frames => write_all(&write_half, &mut batch).await,
            Taken::Close(last) => {
                if !last.is_empty() {
                    batch.push_back(last);
                }
                if !batch.is_empty() {
                    let _ = write_all(&write_half, &mut batch).await;
                }
                return;
            }
        };
        if result.is_err() {
            outbox.close_silently();
            return;
        }
    }
}

/// Writes every frame of `batch`, emptying it.
pub async fn write_all(write_half: &OwnedWriteHalf, batch: &mut VecDeque<Bytes>) -> io::Result<()> {
    while !batch.is_empty() {
        write_half.writable().await?;
        match write_some(write_half, batch) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// One `writev` of the front of `batch`; written frames are popped, a partly written one is
/// advanced. Not async, so its slice array lives on the stack, not in every connection's future.
fn write_some(write_half: &OwnedWriteHalf, batch: &mut VecDeque<Bytes>) -> io::Result<()> {
    let mut slices = [IoSlice::new(&[]); MAX_SLICES];
    let count = batch
        .iter()
        .zip(slices.iter_mut())
        .map(|(frame, slice)| *slice = IoSlice::new(frame))
        .count();
    let mut written = write_half.try_write_vectored(&slices[..count])?;
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
            written = 0;
        }
    }
    Ok(())
}
