//! Test support: a fake host that records what the plugin asks of it, and a raw WebSocket client
//! for the frames no client library would send.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use switchyard_plugin_api::{ConnectionId, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use websocket::{Backend, ResponseCallback, Section, Server, Settings};

/// How long any single wait may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// What the plugin asked the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEvent {
    /// `new_connection(ips, headers)`.
    Connected(ConnectionId, Vec<String>, Vec<(String, String)>),
    /// `remove_connection`.
    Removed(ConnectionId),
    /// `execute(request)`.
    Executed(ConnectionId, String),
}

/// A host that answers every request at once with `{"requestId":…,"status":200,"result":<request>}`
/// (from a new thread when the request's controller is "later", to exercise late callbacks).
pub struct FakeHost {
    next_id: AtomicU64,
    events: UnboundedSender<HostEvent>,
    pub shutting_down: AtomicBool,
}

impl Backend for FakeHost {
    fn new_connection(&self, ips: &[&str], headers: &[(&str, &str)]) -> ConnectionId {
        let id = ConnectionId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let ips = ips.iter().map(|ip| ip.to_string()).collect();
        let headers = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let _ = self.events.send(HostEvent::Connected(id, ips, headers));
        id
    }

    fn remove_connection(&self, connection: ConnectionId) {
        let _ = self.events.send(HostEvent::Removed(connection));
    }

    fn execute(&self, connection: ConnectionId, request: &str, on_response: ResponseCallback) {
        let _ = self
            .events
            .send(HostEvent::Executed(connection, request.to_string()));
        let value: serde_json::Value = serde_json::from_str(request).unwrap();
        let request_id = value["requestId"]
            .as_str()
            .unwrap_or("generated")
            .to_string();
        let content = serde_json::json!({"requestId": request_id, "status": 200, "result": value})
            .to_string();
        let answer = move || {
            on_response(Response {
                status: 200,
                request_id: &request_id,
                content: &content,
                headers: "{}",
            })
        };
        if value["controller"] == "later" {
            std::thread::spawn(answer);
        } else {
            answer();
        }
    }

    fn announce_listener(&self, _address: &str) {}

    fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}

/// A running plugin instance on 127.0.0.1:0 and the stream of what it asked the host.
pub struct Harness {
    pub server: Server,
    pub host: Arc<FakeHost>,
    pub events: UnboundedReceiver<HostEvent>,
}

impl Harness {
    /// Starts an instance with `section` as its configuration (port 0 and loopback added).
    pub fn start(section: &str) -> Harness {
        let mut config: serde_json::Value = serde_json::from_str(section).unwrap();
        config["port"] = 0.into();
        config["address"] = "127.0.0.1".into();
        let settings = Settings::from_json("websocket", &config.to_string(), "{}").unwrap();
        let (sender, events) = unbounded_channel();
        let host = Arc::new(FakeHost {
            next_id: AtomicU64::new(1),
            events: sender,
            shutting_down: AtomicBool::new(false),
        });
        let server = Server::start("websocket", settings, host.clone()).unwrap();
        Harness {
            server,
            host,
            events,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.server.local_address())
    }

    pub fn address(&self) -> SocketAddr {
        self.server.local_address()
    }

    /// The next event the host saw.
    pub async fn next_event(&mut self) -> HostEvent {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("no host event in time")
            .unwrap()
    }

    /// Waits for a `Connected` event and returns its id.
    pub async fn connected(&mut self) -> ConnectionId {
        match self.next_event().await {
            HostEvent::Connected(id, ..) => id,
            other => panic!("expected a connection, got {other:?}"),
        }
    }

    /// Waits for the `Removed` event of `id`, skipping others.
    pub async fn removed(&mut self, id: ConnectionId) {
        loop {
            if self.next_event().await == HostEvent::Removed(id) {
                return;
            }
        }
    }
}

/// A raw client: performs the handshake, then sends bytes and reads server frames itself.
pub struct RawClient {
    pub stream: TcpStream,
    buffer: Vec<u8>,
    /// The server's handshake response head.
    pub response: String,
}

/// A server frame: first header byte and payload.
#[derive(Debug, PartialEq, Eq)]
pub struct ServerFrame {
    pub first: u8,
    pub payload: Vec<u8>,
}

impl ServerFrame {
    pub fn text(&self) -> String {
        String::from_utf8(self.payload.clone()).unwrap()
    }

    /// (code, reason) of a close frame.
    pub fn close(&self) -> (u16, String) {
        assert_eq!(self.first & 0x0F, 0x8, "not a close frame: {self:?}");
        let code = u16::from_be_bytes([self.payload[0], self.payload[1]]);
        (code, String::from_utf8(self.payload[2..].to_vec()).unwrap())
    }
}

impl RawClient {
    /// Connects and sends an upgrade request with `extra_headers` (each ending in CRLF).
    pub async fn connect(address: SocketAddr, extra_headers: &str) -> RawClient {
        let stream = TcpStream::connect(address).await.unwrap();
        RawClient::handshake(stream, extra_headers).await
    }

    /// Connects with a 4 KB receive buffer, for a client that will not read.
    pub async fn connect_small(address: SocketAddr) -> RawClient {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = socket.connect(address).await.unwrap();
        RawClient::handshake(stream, "").await
    }

    async fn handshake(stream: TcpStream, extra_headers: &str) -> RawClient {
        let mut client = RawClient {
            stream,
            buffer: Vec::new(),
            response: String::new(),
        };
        let request = format!(
            "GET / HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra_headers}\r\n"
        );
        client.send(request.as_bytes()).await;
        client.response = client.read_head().await;
        client
    }

    /// Reads an HTTP response head.
    pub async fn read_head(&mut self) -> String {
        loop {
            if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buffer.drain(..end + 4).collect();
                return String::from_utf8(head).unwrap();
            }
            assert!(self.fill().await, "connection closed during the handshake");
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads more bytes; false on EOF or reset.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16384];
        match tokio::time::timeout(WAIT, self.stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "read timed out with {} bytes buffered: {:?}",
                    self.buffer.len(),
                    &self.buffer[..self.buffer.len().min(16)]
                )
            }) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next server frame, or `None` once the server closed the TCP connection.
    pub async fn frame(&mut self) -> Option<ServerFrame> {
        loop {
            if let Some((frame, used)) = parse_server_frame(&self.buffer) {
                self.buffer.drain(..used);
                return Some(frame);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Everything remaining has been read and the server closed the connection.
    pub async fn expect_eof(&mut self) {
        assert!(
            !self.fill().await,
            "expected the server to close, got {:?}",
            self.buffer
        );
    }
}

fn parse_server_frame(buffer: &[u8]) -> Option<(ServerFrame, usize)> {
    let [first, second, ..] = *buffer else {
        return None;
    };
    assert_eq!(second & 0x80, 0, "server frames must not be masked");
    let (len, start) = match second & 0x7F {
        126 => (
            u16::from_be_bytes(buffer.get(2..4)?.try_into().unwrap()) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(buffer.get(2..10)?.try_into().unwrap()) as usize,
            10,
        ),
        len => (len as usize, 2),
    };
    let payload = buffer.get(start..start + len)?.to_vec();
    Some((ServerFrame { first, payload }, start + len))
}
