//! A Switchyard protocol written with the Rust SDK: a line protocol over TCP.
//!
//! ```text
//! client -> host:  one Kuzzle API request per line, a JSON object
//!                  {"controller":"realtime","action":"subscribe","index":"i",...}
//! host -> client:  answer <status> <content JSON>
//!                  notification <channel> <payload JSON>
//!                  error <text>
//! ```
//!
//! Settings (`[server.protocols.<name>]`): `port` (0 = any free port). It listens on 127.0.0.1.
//!
//! Threads: one accept thread per instance; per connection a reader thread (which calls the
//! host's `execute`) and a writer thread that owns the socket's output. Hooks and `execute`
//! callbacks never write to a socket: they put a line in the connection's queue (bounded) and
//! return. Locks are held only for bookkeeping, never across I/O or a host call.
//!
//! The socket code is generic over [`Backend`], so the tests below run it against a fake host;
//! the plugin runs it against the real [`Host`]. `docs/writing-a-protocol.md` quotes this file;
//! `templates/protocol/src/lib.rs` is a copy of it (a test keeps them equal).

#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, TcpListener, TcpStream};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use switchyard_plugin_api::net::{announced_url, bind_blocking_listener};
use switchyard_plugin_api::{
    export_protocol, Backend, BoxError, Channels, ConnectionId, DisconnectReason, Host, InitConfig,
    Protocol,
};

/// A client this far behind is disconnected rather than buffered without end.
const MAX_QUEUED_LINES: usize = 10_000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Settings {
    /// 0: any free port.
    #[serde(default)]
    port: u16,
}

/// What a connection's writer thread is given.
enum Output {
    /// One line, without its `\n`.
    Line(String),
    /// Write what is queued before this, then close the socket.
    Close,
}

/// One client, as hooks see it: its queue, and its socket only to shut it down.
struct Connection {
    queue: SyncSender<Output>,
    socket: TcpStream,
}

/// An instance's state, shared by its threads and its hooks.
pub struct Lines<B: Backend> {
    backend: B,
    connections: Mutex<HashMap<ConnectionId, Connection>>,
    /// Who joined each channel (`join_channel`/`leave_channel`).
    channels: Mutex<HashMap<String, HashSet<ConnectionId>>>,
}

impl<B: Backend> Lines<B> {
    /// An instance without connections, talking to `backend`.
    pub fn new(backend: B) -> Arc<Self> {
        Arc::new(Lines {
            backend,
            connections: Mutex::default(),
            channels: Mutex::default(),
        })
    }

    /// Queues `line` for `connection`'s writer; never blocks. A client too far behind is
    /// dropped: its socket is shut down, which ends its reader and its writer.
    fn enqueue(&self, connection: ConnectionId, output: Output) {
        let connections = self.connections.lock().unwrap();
        let Some(client) = connections.get(&connection) else {
            return; // gone already
        };
        if let Err(TrySendError::Full(_)) = client.queue.try_send(output) {
            let _ = client.socket.shutdown(Shutdown::Both);
        }
    }

    /// Accepts clients until the host shuts down, each on its own threads.
    pub fn accept(self: Arc<Self>, listener: TcpListener) {
        for socket in listener.incoming() {
            let Ok(socket) = socket else { continue };
            if self.backend.is_shutting_down() {
                continue; // dropped: closed
            }
            let lines = Arc::clone(&self);
            let spawned = std::thread::Builder::new()
                .name("line-client".into())
                .spawn(move || lines.serve(socket));
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a connection thread");
            }
        }
    }

    /// One client: declare it, start its writer, read its lines, then say it is gone.
    fn serve(self: Arc<Self>, socket: TcpStream) {
        self.backend.tag_thread_logs();
        let ip = socket.peer_addr().map(|peer| peer.ip().to_string());
        let (Ok(ip), Ok(for_writer), Ok(for_hooks)) = (ip, socket.try_clone(), socket.try_clone())
        else {
            return;
        };
        let connection = self.backend.new_connection(&[&ip], &[]);
        let (queue, outputs) = sync_channel(MAX_QUEUED_LINES);
        self.connections.lock().unwrap().insert(
            connection,
            Connection {
                queue,
                socket: for_hooks,
            },
        );
        let writer = std::thread::Builder::new()
            .name("line-writer".into())
            .spawn(move || write_lines(for_writer, outputs));
        if writer.is_ok() {
            for line in BufReader::new(socket).lines() {
                let Ok(line) = line else { break };
                self.handle(connection, line.trim_end_matches('\r'));
            }
        }
        // Forget it first (its queue closes: the writer flushes and ends), then tell the host.
        self.connections.lock().unwrap().remove(&connection);
        self.backend.remove_connection(connection);
    }

    fn handle(self: &Arc<Self>, connection: ConnectionId, line: &str) {
        if line.is_empty() {
            return;
        }
        if !line.starts_with('{') {
            let error = "error expected a JSON request on one line".to_string();
            return self.enqueue(connection, Output::Line(error));
        }
        let lines = Arc::clone(self);
        // No lock held: the callback may run before `execute` returns, and takes a lock.
        self.backend.execute(
            connection,
            line,
            Box::new(move |response| {
                let answer = format!("answer {} {}", response.status, response.content);
                lines.enqueue(connection, Output::Line(answer));
            }),
        );
    }
}

/// A connection's writer: the only code that writes to its socket.
fn write_lines(mut socket: TcpStream, outputs: Receiver<Output>) {
    for output in outputs {
        let Output::Line(mut line) = output else {
            break;
        };
        line.push('\n');
        if socket.write_all(line.as_bytes()).is_err() {
            break;
        }
    }
    // Ends the reader too: it sees end of stream and tells the host.
    let _ = socket.shutdown(Shutdown::Both);
}

/// The hooks: each one records or enqueues, and returns.
impl<B: Backend> Lines<B> {
    fn deliver(&self, connection: ConnectionId, channel: &str, payload: &str) {
        let line = format!("notification {channel} {payload}");
        self.enqueue(connection, Output::Line(line));
    }

    fn members(&self, channel: &str) -> Vec<ConnectionId> {
        let channels = self.channels.lock().unwrap();
        channels
            .get(channel)
            .into_iter()
            .flatten()
            .copied()
            .collect()
    }
}

/// The plugin: one value per `[server.protocols.<name>]` section using this library.
pub struct LineProtocol {
    lines: Arc<Lines<Host>>,
}

impl Protocol for LineProtocol {
    fn init(host: Host, config: InitConfig<'_>) -> Result<Self, BoxError> {
        let settings: Settings = config.parse()?;
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let listener = bind_blocking_listener(config.name, localhost, settings.port)?;
        let url = announced_url("tcp", listener.local_addr()?);
        host.announce_listener(&url);
        let lines = Lines::new(host);
        let acceptor = Arc::clone(&lines);
        std::thread::Builder::new()
            .name(format!("{}-accept", config.name))
            .spawn(move || acceptor.accept(listener))?;
        tracing::info!("listening on {url}");
        Ok(LineProtocol { lines })
    }

    fn broadcast(&self, channels: Channels<'_>, payload: &str) {
        for channel in channels.iter() {
            for connection in self.lines.members(channel) {
                self.lines.deliver(connection, channel, payload);
            }
        }
    }

    fn notify(&self, connection: ConnectionId, channels: Channels<'_>, payload: &str) {
        for channel in channels.iter() {
            self.lines.deliver(connection, channel, payload);
        }
    }

    fn join_channel(&self, channel: &str, connection: ConnectionId) {
        let mut channels = self.lines.channels.lock().unwrap();
        channels
            .entry(channel.to_string())
            .or_default()
            .insert(connection);
    }

    fn leave_channel(&self, channel: &str, connection: ConnectionId) {
        let mut channels = self.lines.channels.lock().unwrap();
        if let Some(members) = channels.get_mut(channel) {
            members.remove(&connection);
            if members.is_empty() {
                channels.remove(channel);
            }
        }
    }

    fn disconnect(&self, connection: ConnectionId, reason: DisconnectReason, message: &str) {
        tracing::debug!(connection = connection.0, ?reason, "closing: {message}");
        // The writer flushes what is queued, then shuts the socket down.
        self.lines.enqueue(connection, Output::Close);
    }
}

export_protocol!(LineProtocol, name = env!("CARGO_PKG_NAME"));

#[cfg(test)]
mod tests {
    //! The socket code against a fake host: no Switchyard process needed.

    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use switchyard_plugin_api::{Response, ResponseCallback};

    /// Answers every request at once with its own text as the content.
    #[derive(Default)]
    struct FakeHost {
        next: AtomicU64,
        removed: Mutex<Vec<ConnectionId>>,
    }

    impl Backend for FakeHost {
        fn new_connection(&self, _: &[&str], _: &[(&str, &str)]) -> ConnectionId {
            ConnectionId(self.next.fetch_add(1, Ordering::Relaxed) + 1)
        }
        fn remove_connection(&self, connection: ConnectionId) {
            self.removed.lock().unwrap().push(connection);
        }
        fn execute(&self, _: ConnectionId, request: &str, on_response: ResponseCallback) {
            on_response(Response {
                status: 200,
                request_id: "r",
                content: request,
                headers: "{}",
            });
        }
        fn announce_listener(&self, _: &str) {}
        fn is_shutting_down(&self) -> bool {
            false
        }
    }

    fn read_line(reader: &mut BufReader<TcpStream>) -> String {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        line.trim_end().to_string()
    }

    #[test]
    fn answers_notifies_and_closes_through_the_queue() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let lines = Lines::new(FakeHost::default());
        let acceptor = Arc::clone(&lines);
        std::thread::spawn(move || acceptor.accept(listener));

        let client = TcpStream::connect(address).unwrap();
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(client.try_clone().unwrap());
        let mut writer = client;
        writer.write_all(b"hello\n{\"a\":1}\n").unwrap();
        assert_eq!(
            read_line(&mut reader),
            "error expected a JSON request on one line"
        );
        assert_eq!(read_line(&mut reader), "answer 200 {\"a\":1}");

        // The connection is known once its first answer came back.
        let connection = ConnectionId(1);
        lines.deliver(connection, "room-1", "{\"n\":1}");
        assert_eq!(read_line(&mut reader), "notification room-1 {\"n\":1}");
        lines.enqueue(connection, Output::Close);
        assert_eq!(read_line(&mut reader), "");
        // The reader saw the end of stream and told the host.
        for _ in 0..1000 {
            if !lines.backend.removed.lock().unwrap().is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(*lines.backend.removed.lock().unwrap(), [connection]);
    }
}
