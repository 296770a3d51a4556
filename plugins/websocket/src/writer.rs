//! A connection's writer: drains its outbox in batches, one `writev` per 64 frames, no copies.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::Arc;

use bytes::{Buf, Bytes};
use tokio::net::tcp::OwnedWriteHalf;

use crate::outbox::Taken;
use crate::registry::Connection;

/// Frames per `writev` (Linux allows 1024; 64 already amortizes the syscall ~50-fold).
const MAX_SLICES: usize = 64;

/// Writes the outbox to the socket until a close frame has been written (then sends a FIN by
/// dropping the write half) or the socket fails (then closes the outbox so the reader stops).
pub async fn write_loop(write_half: OwnedWriteHalf, connection: Arc<Connection>) {
    let mut batch = VecDeque::new();
    loop {
        let taken = connection.outbox.take(&mut batch);
        let result = match taken {
            Taken::Idle => {
                if batch.capacity() > MAX_SLICES {
                    batch = VecDeque::new();
                }
                connection.outbox.writer_wait().await;
                continue;
            }
            Taken::Frames => write_all(&write_half, &mut batch).await,
            Taken::Close(close) => {
                if !close.is_empty() {
                    batch.push_back(close);
                    let _ = write_all(&write_half, &mut batch).await;
                }
                return;
            }
        };
        if result.is_err() {
            connection.outbox.close_silently();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::connection::serve;
    use crate::registry::Connection;
    use crate::server::Shared;
    use std::sync::Arc;
    use switchyard_plugin_api::ConnectionId;
    use switchyard_plugin_api::{Backend, ResponseCallback};
    use tokio::net::TcpStream;

    struct NoHost;

    impl Backend for NoHost {
        fn new_connection(&self, _: &[&str], _: &[(&str, &str)]) -> ConnectionId {
            ConnectionId(1)
        }
        fn remove_connection(&self, _: ConnectionId) {}
        fn execute(&self, _: ConnectionId, _: &str, _: ResponseCallback) {}
        fn announce_listener(&self, _: &str) {}
        fn is_shutting_down(&self) -> bool {
            false
        }
    }

    /// The per-connection budget is 4 KB of user-space memory while idle: the two task futures
    /// and the shared connection state must stay far below it.
    #[tokio::test]
    async fn an_idle_connection_costs_little_memory() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let shared = Arc::new(Shared {
            settings: Settings::default(),
            backend: Arc::new(NoHost),
            registry: crate::registry::Registry::default(),
        });
        let reader_task = serve(shared, stream, peer);
        let (_, write_half) = client.into_split();
        let connection = Arc::new(Connection::new(ConnectionId(1), 1024, false));
        let writer_task = write_loop(write_half, connection.clone());
        let total = std::mem::size_of_val(&reader_task)
            + std::mem::size_of_val(&writer_task)
            + std::mem::size_of::<Connection>();
        println!(
            "reader {} + writer {} + connection {} = {total} bytes",
            std::mem::size_of_val(&reader_task),
            std::mem::size_of_val(&writer_task),
            std::mem::size_of::<Connection>()
        );
        assert!(total < 2048, "{total} bytes");
    }
}
