//! The WebSocket baseline, run in its own process by this same binary (`__baseline-ws`): a bare
//! tokio-tungstenite broadcast server (what fan-out costs with no host and no plugin layer),
//! built the fast way — one shared buffer per message, each connection's writer feeds
//! its whole queue into the sink and flushes once.
//!
//! Its protocol: a text message starting with `{"echo"` is sent back to its sender only (for
//! round trips); any other text message is sent to every other connection.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

type Members = Arc<std::sync::Mutex<Vec<(u64, mpsc::UnboundedSender<Message>)>>>;

/// Runs the broadcast server on `port` (0: any) with `threads` runtime threads and
/// tungstenite's read buffer of `read_buffer` bytes (its default, 128 KiB, is zero-filled for
/// every connection: 128 KiB of RSS each); prints `listening on 127.0.0.1:PORT` once ready.
/// Never returns.
pub fn run_ws_broadcast(
    port: u16,
    threads: usize,
    read_buffer: Option<usize>,
) -> anyhow::Result<()> {
    let mut config = WebSocketConfig::default();
    if let Some(size) = read_buffer {
        config = config.read_buffer_size(size);
    }
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        println!("listening on {}", listener.local_addr()?);
        let members: Members = Arc::default();
        let mut next_id = 0u64;
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            next_id += 1;
            let id = next_id;
            let members = Arc::clone(&members);
            tokio::spawn(async move {
                let Ok(socket) =
                    tokio_tungstenite::accept_async_with_config(stream, Some(config)).await
                else {
                    return;
                };
                let (mut sink, mut stream) = socket.split();
                let (queue, mut outbox) = mpsc::unbounded_channel::<Message>();
                members
                    .lock()
                    .expect("not poisoned")
                    .push((id, queue.clone()));
                let writer = tokio::spawn(async move {
                    while let Some(first) = outbox.recv().await {
                        if sink.feed(first).await.is_err() {
                            return;
                        }
                        while let Ok(next) = outbox.try_recv() {
                            if sink.feed(next).await.is_err() {
                                return;
                            }
                        }
                        if sink.flush().await.is_err() {
                            return;
                        }
                    }
                });
                while let Some(Ok(message)) = stream.next().await {
                    let Message::Text(text) = message else {
                        continue;
                    };
                    if text.as_str().starts_with("{\"echo\"") {
                        let _ = queue.send(Message::Text(text));
                        continue;
                    }
                    let shared: Utf8Bytes = text;
                    for (member, member_queue) in members.lock().expect("not poisoned").iter() {
                        if *member != id {
                            let _ = member_queue.send(Message::Text(shared.clone()));
                        }
                    }
                }
                members
                    .lock()
                    .expect("not poisoned")
                    .retain(|(member, _)| *member != id);
                writer.abort();
            });
        }
    })
}
