//! One client connection: the handshake, a reader (this task) and a writer (its own task).
//!
//! The reader decodes frames and hands requests to the host; it never writes. The writer drains
//! the connection's outbox, writing each batch with as few `writev` calls as possible. Whoever
//! wants the connection closed asks the outbox; the reader then removes the connection from the
//! registry and the host at once, and lingers at most `CLOSE_TIMEOUT` for the close handshake.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::debug;

use switchyard_plugin_kit::outbox::Pushed;
use switchyard_plugin_kit::partial::PartialClaim;
use switchyard_plugin_kit::socket::{self, Filled, Idle};
use switchyard_plugin_kit::stats::Counter;
use switchyard_plugin_kit::stream::{ReadHalf, Stream};
use switchyard_plugin_kit::writer::{write_all, write_loop};
use switchyard_plugin_kit::ws::frame::{self, close_code, opcode, Violation};
use switchyard_plugin_kit::ws::handshake;
use switchyard_plugin_kit::ws::reader::{Event, MessageReader};

use crate::registry::{self, Connection};
use crate::replies::{self, BadRequest};
use crate::server::Shared;
use switchyard_plugin_api::errors;
use switchyard_plugin_api::json::KnownPlainString;

/// How long a client has to complete its opening handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the closing handshake may take before the socket is dropped.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// The close reason (with 1009) of a message refused at `maxTotalPartialBytes`.
pub const BUSY_REASON: &str = "server busy: too many unfinished messages";

/// Why the reader stopped.
#[derive(Debug)]
enum Ending {
    /// The client sent a close frame with this code.
    ClientClosed(u16),
    /// The client broke a protocol rule.
    Violation(Violation),
    /// No whole message received for `idleTimeout`.
    Idle,
    /// An unfinished message past the instance's `maxTotalPartialBytes`.
    Busy,
    /// A close was requested through the outbox (disconnect hook, slow consumer, dead writer).
    Requested,
    /// The client went away without a closing handshake.
    Gone,
}

/// Serves one accepted socket until it is closed.
pub async fn serve(shared: Arc<Shared>, stream: Stream, peer: SocketAddr) {
    // Small frames must leave at once: batching is done by the writer, not by Nagle.
    let _ = stream.set_nodelay(true);
    let (mut read_half, write_half) = stream.into_split();
    let opened = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        open(&mut read_half, shared.settings.compression),
    )
    .await;
    let (mut upgrade, leftover) = match opened {
        Ok(Ok(Ok(opened))) => opened,
        Ok(Ok(Err(refusal))) => {
            debug!(peer = %peer, reason = %refusal.reason, "handshake refused");
            let _ = write_all(
                &write_half,
                &mut VecDeque::from([Bytes::from(refusal.response)]),
                shared.pressure.counters(),
            )
            .await;
            return;
        }
        Ok(Err(error)) => {
            debug!(peer = %peer, error = %error, "handshake failed");
            return;
        }
        Err(_) => {
            debug!(peer = %peer, "handshake timed out");
            return;
        }
    };

    let ip = peer.ip().to_string();
    let headers: Vec<(&str, &str)> = upgrade
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    // Declared to the host before the client sees 101: once a client is open, the host knows it.
    let id = shared.backend.new_connection(&[&ip], &headers);
    drop(headers);
    let connection = Arc::new(Connection::new(
        id,
        &shared.settings.flow,
        shared.pressure.clone(),
        upgrade.deflate,
    ));
    // The 101 response is the outbox's first frame: the writer sends it before anything else.
    connection
        .outbox
        .push(Bytes::from(std::mem::take(&mut upgrade.response)));
    drop(upgrade);
    registry::insert(&shared.registry, connection.clone());
    let writer = tokio::spawn(write_loop(write_half, connection.clone()));

    let mut session = Session {
        shared: &shared,
        connection: &connection,
        reader: MessageReader::new(shared.settings.max_message_size, connection.deflate),
        rate: RateLimiter::new(shared.settings.rate_limit, Instant::now()),
        inflate: InflateBudget::new(
            if connection.deflate {
                shared.settings.inflate_budget
            } else {
                0
            },
            Instant::now(),
        ),
        partial: shared.partial.claim(),
        token: KnownPlainString::new(),
    };
    let ending = session.read_loop(&read_half, leftover).await;
    // Gives back its share of `maxTotalPartialBytes` now, not after the closing handshake.
    drop(session);
    debug!(connection = %id, ending = ?ending, "closing");
    match ending {
        Ending::ClientClosed(code) => {
            // Echo the client's code (1000 if it sent none), after what is already queued.
            let echo = if code == close_code::NO_STATUS {
                1000
            } else {
                code
            };
            connection.outbox.close(frame::closing(echo, ""), false);
        }
        Ending::Violation(violation) => {
            shared.pressure.counters().add(Counter::ClosedError, 1);
            connection
                .outbox
                .close(frame::closing(violation.code(), violation.reason()), true);
        }
        Ending::Idle => {
            shared.pressure.counters().add(Counter::ClosedIdle, 1);
            connection.outbox.close(
                frame::closing(close_code::GOING_AWAY, "idle timeout"),
                false,
            );
        }
        Ending::Busy => {
            connection.outbox.close(
                frame::closing(close_code::MESSAGE_TOO_BIG, BUSY_REASON),
                true,
            );
        }
        Ending::Requested => {}
        Ending::Gone => {
            connection.outbox.close_silently();
        }
    }
    if let Some(code) = connection.outbox.close_code() {
        if code == close_code::INTERNAL_ERROR {
            debug!(connection = %id, "slow consumer disconnected");
        }
    }
    // The host forgets it now, not after the linger: its subscriptions go at once.
    shared.registry.remove(id);
    shared.backend.remove_connection(id);

    let deadline = tokio::time::Instant::now() + CLOSE_TIMEOUT;
    let mut writer = writer;
    if tokio::time::timeout_at(deadline, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
        return;
    }
    // The writer sent our close frame and a FIN; read (and ignore) until the client's FIN so
    // that closing does not reset the connection before the client has read our close frame.
    let _ = tokio::time::timeout_at(deadline, drain(&read_half)).await;
}

/// Reads the upgrade request. Returns it and any bytes after it; the caller answers it.
async fn open(
    read_half: &mut ReadHalf,
    compression: bool,
) -> io::Result<Result<(handshake::Upgrade, Vec<u8>), handshake::Refusal>> {
    let mut buffer = Vec::with_capacity(1024);
    loop {
        read_half.readable().await?;
        buffer.reserve(1024);
        match read_half.try_read_buf(&mut buffer) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            Err(error) => return Err(error),
        }
        match handshake::parse(&buffer, compression) {
            Ok(None) => continue,
            Err(refusal) => return Ok(Err(refusal)),
            Ok(Some(upgrade)) => {
                let leftover = buffer.split_off(upgrade.request_len);
                return Ok(Ok((upgrade, leftover)));
            }
        }
    }
}

/// The reader's state.
struct Session<'a> {
    shared: &'a Shared,
    connection: &'a Arc<Connection>,
    reader: MessageReader,
    rate: RateLimiter,
    /// What its compressed messages may still inflate to this second (`inflateBudget`).
    inflate: InflateBudget,
    /// This connection's share of `maxTotalPartialBytes`.
    partial: PartialClaim,
    /// The token its requests carry, remembered so the next request's copy is compared, not
    /// scanned, by the JSON check (`replies::check_request`).
    token: KnownPlainString,
}

impl Session<'_> {
    async fn read_loop(&mut self, read_half: &ReadHalf, mut buffer: Vec<u8>) -> Ending {
        let idle_timeout = self.shared.settings.idle_timeout;
        let mut idle = Idle::new(idle_timeout);
        let timer = tokio::time::sleep(idle_timeout);
        tokio::pin!(timer);
        loop {
            // Only whole messages move the idle deadline, not bytes: a client trickling an
            // unfinished frame a byte at a time is idle (issue 19), as in uWebSockets, whose
            // `idleTimeout` Kuzzle documents as time "without sending or getting a message".
            let (ending, progressed) = self.process(&mut buffer);
            if progressed {
                idle.touch();
            }
            if let Some(ending) = ending {
                return ending;
            }
            // What is left is unfinished: the read buffer's partial frame and a fragmented
            // message's frames so far. Counted against the instance's total (issue 19).
            let held = buffer.len() + self.reader.partial_len();
            if self.partial.hold(held).is_err() {
                return Ending::Busy;
            }
            if buffer.is_empty() {
                // An idle connection keeps no read buffer.
                buffer = Vec::new();
            }
            // Flow control: while too many requests await answers (the host paces them), this
            // connection is not read, so TCP pushes back on its client.
            let paused = self.connection.pending.is_full();
            tokio::select! {
                biased;
                () = self.connection.outbox.reader_wait() => return Ending::Requested,
                // Waiting for answers is not the client's idleness.
                () = self.connection.pending.room(), if paused => idle.touch(),
                ready = read_half.readable(), if !paused => {
                    let counters = self.shared.pressure.counters();
                    if socket::fill_ready(ready, read_half, &mut buffer, counters) == Filled::Gone {
                        return Ending::Gone;
                    }
                }
                () = idle.expired(timer.as_mut()) => return Ending::Idle,
            }
        }
    }

    /// Handles every complete message in `buffer`, then drops the bytes used. Also says whether
    /// the client made progress: a whole message, or a control frame while no fragmented
    /// message is pending (pings interleaved with an unfinished message do not count).
    fn process(&mut self, buffer: &mut Vec<u8>) -> (Option<Ending>, bool) {
        let mut used = 0;
        let mut progressed = false;
        let ending = loop {
            if self.connection.pending.is_full() {
                // The rest waits in the buffer until answers come back.
                break None;
            }
            if let Some(allowance) = self.inflate.allowance_now() {
                self.reader.set_inflate_allowance(allowance);
            }
            match self.reader.decode(&mut buffer[used..]) {
                Err(violation) => break Some(Ending::Violation(violation)),
                Ok((length, event)) => {
                    used += length;
                    let Some(event) = event else { break None };
                    let control = matches!(event, Event::Ping(_) | Event::Pong);
                    let ending = handle(
                        self.shared,
                        self.connection,
                        &mut self.rate,
                        &mut self.token,
                        event,
                    );
                    progressed |= !control || !self.reader.is_mid_message();
                    self.inflate.spend(self.reader.inflated());
                    if ending.is_some() {
                        break ending;
                    }
                }
            }
        };
        buffer.drain(..used);
        (ending, progressed)
    }
}

/// Acts on one event from the client.
fn handle(
    shared: &Shared,
    connection: &Arc<Connection>,
    rate: &mut RateLimiter,
    token: &mut KnownPlainString,
    event: Event<'_>,
) -> Option<Ending> {
    match event {
        Event::Text(text) if replies::is_application_ping(text) => {
            push(connection, Bytes::from_static(b"\x81\x07{\"p\":2}"));
        }
        Event::Text(text) => {
            if !rate.allow_now() {
                let error = errors::NETWORK_WEBSOCKET_RATELIMIT_EXCEEDED.error();
                reply_error(connection, text.as_bytes(), &error);
            } else if let Err(bad) = replies::check_request(text, token) {
                reply_error(connection, text.as_bytes(), &bad.error());
            } else {
                let target = connection.clone();
                connection.pending.started();
                shared.backend.execute(
                    connection.id,
                    text,
                    Box::new(move |response| {
                        let frame = replies::room_frame(
                            response.content,
                            response.request_id,
                            target.deflate,
                        );
                        push(&target, frame);
                        target.pending.answered();
                    }),
                );
            }
        }
        Event::Binary(bytes) => {
            let error = if rate.allow_now() {
                BadRequest::Binary.error()
            } else {
                errors::NETWORK_WEBSOCKET_RATELIMIT_EXCEEDED.error()
            };
            reply_error(connection, bytes, &error);
        }
        Event::Ping(payload) => push(connection, frame::build(opcode::PONG, payload)),
        Event::Pong => {}
        Event::Close { code, .. } => return Some(Ending::ClientClosed(code)),
    }
    None
}

fn reply_error(connection: &Connection, request: &[u8], error: &errors::KuzzleError) {
    let request_id = replies::request_id_of(request);
    let json = replies::error_response(request_id.as_deref(), error);
    push(connection, frame::build(opcode::TEXT, json.as_bytes()));
}

/// Queues a reply (an answer, a pong, an error) to the connection's own message: not counted
/// in the protocol's pressure (`Outbox::push_reply`).
fn push(connection: &Connection, frame: Bytes) {
    if connection.outbox.push_reply(frame) == Pushed::Overflow {
        debug!(connection = %connection.id, "outgoing queue full: closing with 1011");
    }
}

/// Messages per second per connection, in fixed one-second windows (Kuzzle's `rateLimit`).
#[derive(Debug)]
pub struct RateLimiter {
    /// Allowed messages per window; 0 = unlimited.
    limit: u32,
    /// Start of the current window.
    window_start: Instant,
    /// Messages seen in the current window.
    count: u32,
}

impl RateLimiter {
    /// A limiter allowing `limit` messages per second (0: no limit), its first window at `now`.
    pub fn new(limit: u32, now: Instant) -> RateLimiter {
        RateLimiter {
            limit,
            window_start: now,
            count: 0,
        }
    }

    /// Counts one message now; false when it is over the limit. Without a limit (the
    /// default), reads no clock.
    pub fn allow_now(&mut self) -> bool {
        self.limit == 0 || self.allow(Instant::now())
    }

    /// Counts one message at `now`; false when it is over the limit.
    pub fn allow(&mut self, now: Instant) -> bool {
        if self.limit == 0 {
            return true;
        }
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.count <= self.limit
    }
}

/// Bytes a connection's compressed messages may inflate to per second, in fixed one-second
/// windows (`inflateBudget`, issue 19). The reader stops inflating where the window's budget
/// ends, so a connection never costs more than the budget's worth of CPU a second (about 1 ms
/// per MB) however small its frames are; past it, the connection is closed with 1008.
#[derive(Debug)]
pub struct InflateBudget {
    /// Bytes per window; 0 = unlimited (also for a connection without permessage-deflate).
    per_second: usize,
    /// Start of the current window.
    window_start: Instant,
    /// Bytes inflated in the current window.
    spent: usize,
}

impl InflateBudget {
    /// A budget of `per_second` bytes (0: none), its first window at `now`.
    pub fn new(per_second: usize, now: Instant) -> InflateBudget {
        InflateBudget {
            per_second,
            window_start: now,
            spent: 0,
        }
    }

    /// What may still be inflated in the window holding `now`; `None` without a budget (no
    /// clock read).
    pub fn allowance(&mut self, now: Instant) -> Option<usize> {
        if self.per_second == 0 {
            return None;
        }
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.spent = 0;
        }
        Some(self.per_second - self.spent)
    }

    /// [`InflateBudget::allowance`] now.
    pub fn allowance_now(&mut self) -> Option<usize> {
        if self.per_second == 0 {
            return None;
        }
        self.allowance(Instant::now())
    }

    /// Counts `bytes` inflated in the current window (never past the budget: the reader
    /// stopped there).
    pub fn spend(&mut self, bytes: usize) {
        if self.per_second != 0 {
            self.spent = (self.spent + bytes).min(self.per_second);
        }
    }
}

/// Reads and discards until the client closes its side.
async fn drain(read_half: &ReadHalf) {
    loop {
        if read_half.readable().await.is_err() {
            return;
        }
        match discard(read_half) {
            Ok(0) => return,
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

/// One non-blocking read into a throw-away buffer (on the stack, not in the future).
fn discard(read_half: &ReadHalf) -> io::Result<usize> {
    let mut scratch = [0u8; 512];
    read_half.try_read(&mut scratch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_plugin_api::ConnectionId;
    use switchyard_plugin_kit::stream::WriteHalf;
    use tokio::net::TcpStream;

    #[test]
    fn the_rate_limit_counts_per_second() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(2, start);
        assert!(limiter.allow(start));
        assert!(limiter.allow(start));
        assert!(!limiter.allow(start + Duration::from_millis(999)));
        assert!(limiter.allow(start + Duration::from_secs(1)));
        let mut unlimited = RateLimiter::new(0, start);
        assert!((0..10_000).all(|_| unlimited.allow(start)));
    }

    #[test]
    fn the_inflate_budget_counts_per_second() {
        let start = Instant::now();
        let mut budget = InflateBudget::new(1000, start);
        assert_eq!(budget.allowance(start), Some(1000));
        budget.spend(600);
        assert_eq!(
            budget.allowance(start + Duration::from_millis(999)),
            Some(400)
        );
        budget.spend(400);
        assert_eq!(
            budget.allowance(start + Duration::from_millis(999)),
            Some(0)
        );
        assert_eq!(budget.allowance(start + Duration::from_secs(1)), Some(1000));
        let mut unlimited = InflateBudget::new(0, start);
        unlimited.spend(usize::MAX);
        assert_eq!(unlimited.allowance(start), None);
        assert_eq!(unlimited.allowance_now(), None);
    }

    fn shared_pressure() -> Arc<switchyard_plugin_kit::pressure::Pressure> {
        Arc::new(switchyard_plugin_kit::pressure::Pressure::unreported())
    }

    struct NoHost;

    impl switchyard_plugin_api::Backend for NoHost {
        fn new_connection(&self, _: &[&str], _: &[(&str, &str)]) -> ConnectionId {
            ConnectionId(1)
        }
        fn remove_connection(&self, _: ConnectionId) {}
        fn execute(&self, _: ConnectionId, _: &str, _: switchyard_plugin_api::ResponseCallback) {}
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
        let shared = Arc::new(Shared::new(
            "websocket",
            crate::config::Settings::default(),
            Arc::new(NoHost),
        ));
        let reader_task = serve(shared, Stream::Plain(stream), peer);
        let (_, write_half) = client.into_split();
        let connection = Arc::new(Connection::new(
            ConnectionId(1),
            &switchyard_plugin_kit::flow::Flow::default(),
            shared_pressure(),
            false,
        ));
        let writer_task = write_loop(WriteHalf::Plain(write_half), connection.clone());
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
