//! One Engine.IO session: its transport, its bounded queue of outgoing packets and its Kuzzle
//! connection.
//!
//! Outgoing packets are queued as complete WebSocket text frames (`Bytes`, shared between every
//! member of a channel). The WebSocket writer writes them as they are; a polling GET strips the
//! frame headers (`frame::payload_of`, no copy) and joins the packets with `\x1e`.
//!
//! Invariant: `queued_bytes` never exceeds the cap, except by the one frame always accepted into
//! an empty queue. The first push past the cap (or a notification to a non-empty queue while the
//! instance's total is past `maxTotalQueuedBytes`) empties the queue and closes the session
//! with 1011: a slow consumer costs nobody else anything. Queued bytes are counted in the
//! instance's `Pressure` (the kit's `pressure.rs`), as the kit's outboxes are.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use switchyard_plugin_kit::flow::{Flow, Pending};
use switchyard_plugin_kit::pressure::{Batch, Pressure};
use switchyard_plugin_kit::registry::{Member, Memberships};
use switchyard_plugin_kit::stats::Counters;
use switchyard_plugin_kit::ws::frame::close_code;

/// The transport carrying the session's packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTP long-polling: GETs take packets, POSTs bring them.
    Polling,
    /// One WebSocket, one packet per text frame.
    WebSocket,
}

/// What a consumer (a polling GET or the WebSocket writer) takes out of the queue.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// Nothing queued: wait for `wait`.
    Idle,
    /// Frames were moved into the batch.
    Frames,
    /// Frames (maybe none) were moved into the batch; then close with this WebSocket code.
    Close(u16),
}

#[derive(Debug)]
struct State {
    /// Frames not yet taken, oldest first.
    frames: VecDeque<Bytes>,
    /// Sum of `frames`' lengths.
    queued_bytes: usize,
    /// The close code, once a close is requested.
    closing: Option<u16>,
    /// Set when a consumer has taken the close.
    close_taken: bool,
    /// The current transport.
    transport: Transport,
    /// A WebSocket probed this polling session (`2probe` answered): a waiting GET returns `6`.
    upgrading: bool,
    /// A polling GET is waiting or answering (a second one is an error).
    polling: bool,
    /// A polling POST is being read (a second one is an error).
    posting: bool,
    /// A ping was sent and nothing came back since.
    awaiting_pong: bool,
}

/// One Engine.IO session.
#[derive(Debug)]
pub struct Session {
    /// Engine.IO's session id (`sid` in URLs).
    pub sid: Arc<str>,
    /// Socket.IO's socket id, sent in the connect answer.
    pub socket_id: String,
    /// Client address and handshake headers, given to the host on the namespace connect.
    pub client: Client,
    /// Its Kuzzle connection (while the main namespace is joined) and the channels that
    /// connection joined, as the host sees them.
    pub memberships: Memberships,
    /// The queue and transport state, behind a lock never held across I/O or host calls.
    state: Mutex<State>,
    /// Wakes the consumer (a GET or the WebSocket writer) when something is queued or a close is
    /// requested. `Notify` keeps a permit, so a wake between a check and a wait is not lost.
    consumer_wake: Notify,
    /// Wakes the WebSocket reader when a close is requested.
    reader_wake: Notify,
    /// Wakes the session's driver (pings, timeouts, clean-up) when a close is requested.
    driver_wake: Notify,
    /// The slow-consumer cap.
    max_queued_bytes: usize,
    /// How long the WebSocket writer may make no progress before the session is closed.
    pub slow_consumer_timeout: std::time::Duration,
    /// Its Kuzzle requests awaiting answers: its WebSocket is not read while there are too many.
    pub pending: Pending,
    /// The instance's queued bytes, which this session's are part of.
    pressure: Arc<Pressure>,
}

impl Drop for Session {
    /// Frames never taken leave the instance's total with the session.
    fn drop(&mut self) {
        self.pressure.sub(self.state.get_mut().queued_bytes);
    }
}

impl Member for Session {
    fn memberships(&self) -> &Memberships {
        &self.memberships
    }
}

/// Who is at the other end, as seen at the handshake.
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// The peer's address.
    pub ip: String,
    /// The handshake request's headers (lower-case names).
    pub headers: Vec<(String, String)>,
}

impl Session {
    /// A new session on `transport`.
    pub fn new(
        sid: String,
        socket_id: String,
        client: Client,
        transport: Transport,
        flow: &Flow,
        pressure: Arc<Pressure>,
    ) -> Session {
        Session {
            sid: Arc::from(sid),
            socket_id,
            client,
            memberships: Memberships::default(),
            state: Mutex::new(State {
                frames: VecDeque::new(),
                queued_bytes: 0,
                closing: None,
                close_taken: false,
                transport,
                upgrading: false,
                polling: false,
                posting: false,
                awaiting_pong: false,
            }),
            consumer_wake: Notify::new(),
            reader_wake: Notify::new(),
            driver_wake: Notify::new(),
            max_queued_bytes: flow.max_queued_bytes,
            slow_consumer_timeout: flow.slow_consumer_timeout,
            pending: Pending::new(flow.max_pending_requests),
            pressure,
        }
    }

    /// The instance's counters (bytes, deliveries, closes).
    pub fn counters(&self) -> &Counters {
        self.pressure.counters()
    }

    /// Queues a frame (an answer, a ping: one at a time). Returns false if it was dropped
    /// (closing, or the queue overflowed, which closes the session with 1011).
    pub fn push(&self, frame: Bytes) -> bool {
        let len = frame.len();
        let queued = self.push_inner(frame, false);
        if queued {
            self.pressure.add(len);
        }
        queued
    }

    /// Queues a frame of a fan-out, its bytes counted in `batch`.
    pub fn push_counted(&self, frame: Bytes, batch: &mut Batch<'_>) -> bool {
        let len = frame.len();
        let queued = self.push_inner(frame, batch.over_total());
        if queued {
            batch.count(len);
        }
        queued
    }

    fn push_inner(&self, frame: Bytes, over_total: bool) -> bool {
        let mut state = self.state.lock();
        if state.closing.is_some() {
            return false;
        }
        let was_empty = state.frames.is_empty();
        if !was_empty && (state.queued_bytes + frame.len() > self.max_queued_bytes || over_total) {
            let dropped = std::mem::take(&mut state.queued_bytes);
            state.frames = VecDeque::new();
            state.closing = Some(close_code::INTERNAL_ERROR);
            drop(state);
            self.pressure.sub(dropped);
            self.wake_all();
            let why = if over_total {
                "the protocol's queued bytes passed maxTotalQueuedBytes"
            } else {
                "its queue passed its cap"
            };
            self.pressure.slow_consumer_closed(&self.sid, dropped, why);
            return false;
        }
        state.queued_bytes += frame.len();
        state.frames.push_back(frame);
        drop(state);
        if was_empty {
            self.consumer_wake.notify_one();
        }
        true
    }

    /// Asks for the session to close with `code` once queued packets are sent (dropping them
    /// when `discard`). Returns false if a close was already requested.
    pub fn close(&self, code: u16, discard: bool) -> bool {
        let mut state = self.state.lock();
        if state.closing.is_some() {
            return false;
        }
        let mut dropped = 0;
        if discard {
            state.frames = VecDeque::new();
            dropped = std::mem::take(&mut state.queued_bytes);
        }
        state.closing = Some(code);
        drop(state);
        self.pressure.sub(dropped);
        self.wake_all();
        true
    }

    /// The WebSocket writer made no progress for `slow_consumer_timeout` with `unwritten`
    /// bytes in hand: closes with 1011, dropping what is queued, and logs it.
    pub fn stalled(&self, unwritten: usize) -> bool {
        let queued = self.queued_bytes();
        if !self.close(close_code::INTERNAL_ERROR, true) {
            return false;
        }
        let why = format!(
            "its writes made no progress for {} ms",
            self.slow_consumer_timeout.as_millis()
        );
        self.pressure
            .slow_consumer_closed(&self.sid, queued + unwritten, &why);
        true
    }

    fn wake_all(&self) {
        self.consumer_wake.notify_one();
        self.reader_wake.notify_one();
        self.driver_wake.notify_one();
    }

    /// True once a close was requested.
    pub fn is_closing(&self) -> bool {
        self.state.lock().closing.is_some()
    }

    /// Moves every queued frame to `batch` (empty on entry).
    pub fn take(&self, batch: &mut VecDeque<Bytes>) -> Taken {
        let mut state = self.state.lock();
        std::mem::swap(&mut state.frames, batch);
        let taken = std::mem::take(&mut state.queued_bytes);
        self.pressure.sub(taken);
        match state.closing {
            Some(code) if !state.close_taken => {
                state.close_taken = true;
                Taken::Close(code)
            }
            Some(_) => Taken::Close(0),
            None if batch.is_empty() => Taken::Idle,
            None => Taken::Frames,
        }
    }

    /// Waits until a consumer has something to do.
    pub async fn consumer_wait(&self) {
        self.consumer_wake.notified().await
    }

    /// Waits until a close is requested (the WebSocket reader).
    pub async fn reader_wait(&self) {
        self.reader_wake.notified().await
    }

    /// Waits until a close is requested (the driver).
    pub async fn driver_wait(&self) {
        self.driver_wake.notified().await
    }

    /// The current transport.
    pub fn transport(&self) -> Transport {
        self.state.lock().transport
    }

    /// Starts a polling GET; false if one is already running (Engine.IO's "overlap").
    pub fn begin_poll(&self) -> bool {
        !std::mem::replace(&mut self.state.lock().polling, true)
    }

    /// Ends a polling GET.
    pub fn end_poll(&self) {
        self.state.lock().polling = false;
    }

    /// Starts a polling POST; false if one is already being read.
    pub fn begin_post(&self) -> bool {
        !std::mem::replace(&mut self.state.lock().posting, true)
    }

    /// Ends a polling POST.
    pub fn end_post(&self) {
        self.state.lock().posting = false;
    }

    /// True while a WebSocket probe is under way: a waiting GET answers `6` (noop).
    pub fn is_upgrading(&self) -> bool {
        self.state.lock().upgrading
    }

    /// Marks a probe under way (true) or abandoned (false); false if the session is not a
    /// polling session, or is already being upgraded.
    pub fn set_upgrading(&self, upgrading: bool) -> bool {
        let mut state = self.state.lock();
        if state.transport != Transport::Polling || (upgrading && state.upgrading) {
            return false;
        }
        state.upgrading = upgrading;
        drop(state);
        self.consumer_wake.notify_one();
        true
    }

    /// Switches to WebSocket (the client sent `5`). A waiting GET is woken and answers at once.
    pub fn finish_upgrade(&self) {
        let mut state = self.state.lock();
        state.transport = Transport::WebSocket;
        state.upgrading = false;
        drop(state);
        self.consumer_wake.notify_one();
    }

    /// Records that a ping was sent.
    pub fn ping_sent(&self) {
        self.state.lock().awaiting_pong = true;
    }

    /// Records that the client is alive (a pong, or any packet).
    pub fn alive(&self) {
        self.state.lock().awaiting_pong = false;
    }

    /// True if the last ping got no answer.
    pub fn awaiting_pong(&self) -> bool {
        self.state.lock().awaiting_pong
    }

    /// Bytes queued (tests).
    pub fn queued_bytes(&self) -> usize {
        self.state.lock().queued_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(cap: usize) -> Session {
        Session::new(
            "s".into(),
            "i".into(),
            Client::default(),
            Transport::Polling,
            &Flow {
                max_queued_bytes: cap,
                ..Flow::default()
            },
            Arc::new(Pressure::unreported()),
        )
    }

    fn frame(len: usize) -> Bytes {
        Bytes::from(vec![b'x'; len])
    }

    #[test]
    fn frames_queue_up_to_the_cap_then_the_session_closes_with_1011() {
        let session = session(100);
        assert!(session.push(frame(60)));
        assert!(session.push(frame(40)));
        assert!(!session.push(frame(1)));
        assert_eq!(session.queued_bytes(), 0, "queued frames are freed at once");
        assert!(!session.push(frame(1)));
        let mut batch = VecDeque::new();
        assert_eq!(session.take(&mut batch), Taken::Close(1011));
        assert!(batch.is_empty());
    }

    #[test]
    fn one_frame_larger_than_the_cap_fits_an_empty_queue() {
        let session = session(10);
        assert!(session.push(frame(1000)));
        assert!(!session.push(frame(1)));
    }

    #[test]
    fn a_close_comes_after_queued_frames_and_is_handed_out_once() {
        let session = session(100);
        let mut batch = VecDeque::new();
        assert_eq!(session.take(&mut batch), Taken::Idle);
        session.push(frame(5));
        assert!(session.close(1001, false));
        assert!(!session.close(1000, false));
        assert_eq!(session.take(&mut batch), Taken::Close(1001));
        assert_eq!(batch.len(), 1);
        batch.clear();
        assert_eq!(session.take(&mut batch), Taken::Close(0));
    }

    #[test]
    fn polls_and_posts_do_not_overlap() {
        let session = session(100);
        assert!(session.begin_poll());
        assert!(!session.begin_poll());
        session.end_poll();
        assert!(session.begin_poll());
        assert!(session.begin_post());
        assert!(!session.begin_post());
    }

    #[test]
    fn only_a_polling_session_is_upgraded_once() {
        let session = session(100);
        assert!(session.set_upgrading(true));
        assert!(!session.set_upgrading(true));
        session.finish_upgrade();
        assert_eq!(session.transport(), Transport::WebSocket);
        assert!(!session.is_upgrading());
        assert!(!session.set_upgrading(true));
    }
}
