//! A rough fan-out figure: one instance, N subscribers on loopback, M broadcasts of a 100-byte
//! payload, timed until every subscriber has read every frame. The clients run in this process
//! on one thread, so the figure is a floor; the real benchmark drives the host from outside.
//!
//! `cargo run --release -p plugin-websocket --example fanout -- [subscribers] [messages]`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use switchyard_plugin_api::ConnectionId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use websocket::{Backend, Instance, ResponseCallback, Section, Server, Settings};

struct CountingHost(AtomicU64);

impl Backend for CountingHost {
    fn new_connection(&self, _: &[&str], _: &[(&str, &str)]) -> ConnectionId {
        ConnectionId(self.0.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn remove_connection(&self, _: ConnectionId) {}
    fn execute(&self, _: ConnectionId, _: &str, _: ResponseCallback) {}
    fn announce_listener(&self, _: &str) {}
    fn is_shutting_down(&self) -> bool {
        false
    }
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|arg| arg.parse::<usize>().expect("a number"));
    let subscribers = args.next().unwrap_or(1000);
    let messages = args.next().unwrap_or(2000);
    let settings = Settings::from_json(
        "websocket",
        r#"{"port":0,"address":"127.0.0.1","maxQueuedBytes":"64MB"}"#,
        "{}",
    )
    .unwrap();
    let server = Server::start(
        "websocket",
        settings,
        Arc::new(CountingHost(AtomicU64::new(0))),
    )
    .unwrap();
    let address = server.local_address();
    let payload = format!(r#"{{"n":"{}"}}"#, "x".repeat(91));
    let frame_len = 2 + payload.len() + r#","room":"bench""#.len();
    let expected = (frame_len * messages) as u64;

    let clients = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        clients.block_on(async move {
            let mut readers = Vec::new();
            for _ in 0..subscribers {
                let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
                stream
                    .write_all(b"GET / HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
                    .await
                    .unwrap();
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") {
                    head.push(stream.read_u8().await.unwrap());
                }
                readers.push(stream);
            }
            ready_tx.send(()).unwrap();
            let mut tasks = Vec::new();
            for mut stream in readers {
                tasks.push(tokio::spawn(async move {
                    let mut buffer = vec![0u8; 64 * 1024];
                    let mut total = 0u64;
                    while total < expected {
                        total += stream.read(&mut buffer).await.unwrap() as u64;
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
            done_tx.send(()).unwrap();
        });
    });
    ready_rx.recv().unwrap();
    for id in 1..=subscribers as u64 {
        server.join_channel("bench", ConnectionId(id));
    }
    let start = Instant::now();
    for _ in 0..messages {
        server.broadcast(["bench"].into_iter(), &payload);
    }
    let queued = start.elapsed();
    done_rx.recv().unwrap();
    let elapsed = start.elapsed();
    let deliveries = (subscribers * messages) as f64;
    println!(
        "{subscribers} subscribers x {messages} messages: {:.2} M deliveries/s ({:.0} ms; broadcasts queued in {:.0} ms)",
        deliveries / elapsed.as_secs_f64() / 1e6,
        elapsed.as_secs_f64() * 1e3,
        queued.as_secs_f64() * 1e3
    );
}
