//! A connection's bounded queue of outgoing frames, filled by any thread, drained by its writer.
//!
//! Frames are complete wire units (WebSocket frames, MQTT packets), shared `Bytes`: a fan-out
//! pushes the same handle into every member's outbox.
//!
//! Invariant: at most `max_frames` frames and `max_bytes` bytes are queued, except the one frame
//! always accepted into an empty queue (so a response larger than the cap still goes out). The
//! first push past a cap empties the queue and turns into the outbox's overflow close (a 1011
//! close frame for WebSocket, a bare socket close for MQTT): the slow consumer costs nobody else
//! anything, and its memory is freed at once. The same happens to a push into a non-empty queue
//! while the protocol's total is past `maxTotalQueuedBytes` (`pressure.rs`), and when the
//! writer makes no progress for `slow_consumer_timeout` (`writer.rs`). The caps are a last
//! resort: the protocol's pressure (`pressure.rs`) makes the host pace publishers well before.
//!
//! Every byte queued or dropped is accounted in the protocol's [`Pressure`]: `push` adds its
//! frame at once, `push_counted` into the fan-out's [`Batch`]; `take` and drops subtract.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use switchyard_plugin_api::ConnectionId;
use tokio::sync::Notify;

use crate::pressure::{Batch, Pressure};

/// What became of a pushed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued for writing.
    Queued,
    /// Dropped: the connection is closing.
    Closing,
    /// Dropped, and the connection is now closing because its queue was full.
    Overflow,
}

/// A requested close: what the writer sends last, and what logs say of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closing {
    /// Written after the queued frames, then the socket is shut (empty: nothing more is sent).
    pub frame: Bytes,
    /// The protocol's close code (WebSocket), 0 when it has none.
    pub code: u16,
    /// Why, for logs.
    pub reason: &'static str,
}

impl Closing {
    /// A close that sends nothing more: the socket is gone, or the protocol has no close frame.
    pub const fn silent(reason: &'static str) -> Closing {
        Closing {
            frame: Bytes::new(),
            code: 0,
            reason,
        }
    }
}

/// The caps of one outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most frames queued (`usize::MAX`: only bytes count).
    pub max_frames: usize,
    /// Most bytes queued.
    pub max_bytes: usize,
    /// The writer closes the connection when its writes make no progress for this long while
    /// frames are queued.
    pub slow_consumer_timeout: Duration,
}

impl Limits {
    /// Capped in bytes only.
    pub fn bytes(max_bytes: usize, slow_consumer_timeout: Duration) -> Limits {
        Limits {
            max_frames: usize::MAX,
            max_bytes,
            slow_consumer_timeout,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// Frames not yet taken by the writer, oldest first.
    frames: VecDeque<Bytes>,
    /// Sum of `frames`' lengths.
    queued_bytes: usize,
    /// The part of `queued_bytes` counted in the protocol's pressure: all but replies
    /// (`push_reply`).
    counted_bytes: usize,
    /// Set once a close is requested: later pushes are dropped.
    closing: bool,
    /// The last frame to send after the queued frames, until the writer takes it (the writer is
    /// told to close once).
    close_frame: Option<Bytes>,
    /// The requested close code, for logs.
    close_code: u16,
    /// Why the connection is closing, for logs.
    close_reason: &'static str,
}

impl State {
    fn request_close(&mut self, closing: Closing) {
        self.closing = true;
        self.close_frame = Some(closing.frame);
        self.close_code = closing.code;
        self.close_reason = closing.reason;
    }
}

/// One connection's outgoing queue.
#[derive(Debug)]
pub struct Outbox {
    /// The queue, behind a lock held only to push or swap, never while writing.
    state: Mutex<State>,
    /// Wakes the writer: signalled when the queue stops being empty or a close is requested.
    /// `Notify` keeps one permit, so a wake-up between the writer's check and its wait is not lost.
    writer_wake: Notify,
    /// Wakes the reader when a close is requested, so it stops reading requests.
    reader_wake: Notify,
    /// The slow-consumer caps.
    limits: Limits,
    /// What a push past a cap turns into.
    overflow: Closing,
    /// The protocol's queued bytes, which this outbox's are part of.
    pressure: Arc<Pressure>,
    /// The connection, for logs.
    connection: ConnectionId,
}

/// What the writer takes out of the outbox in one go.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// Nothing to do: wait for `writer_wait`.
    Idle,
    /// Frames were moved into the batch.
    Frames,
    /// Frames (maybe none) were moved into the batch; send them and this last frame (maybe
    /// empty), then stop.
    Close(Bytes),
}

impl AsRef<Outbox> for Outbox {
    fn as_ref(&self) -> &Outbox {
        self
    }
}

impl Drop for Outbox {
    /// Frames never taken (the writer was stopped) leave the protocol's total with it.
    fn drop(&mut self) {
        self.pressure.sub(self.state.get_mut().counted_bytes);
    }
}

impl Outbox {
    /// An empty outbox of `connection` with these caps, its bytes counted in `pressure`; a
    /// push past a cap requests `overflow`.
    pub fn new(
        connection: ConnectionId,
        limits: Limits,
        overflow: Closing,
        pressure: Arc<Pressure>,
    ) -> Outbox {
        Outbox {
            state: Mutex::new(State::default()),
            writer_wake: Notify::new(),
            reader_wake: Notify::new(),
            limits,
            overflow,
            pressure,
            connection,
        }
    }

    /// The caps.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The protocol's pressure this outbox counts in.
    pub fn pressure(&self) -> &Arc<Pressure> {
        &self.pressure
    }

    /// The connection it belongs to.
    pub fn connection(&self) -> ConnectionId {
        self.connection
    }

    /// Queues a complete frame (a response, a pong: one at a time). Never blocks beyond a
    /// short lock. Not subject to `maxTotalQueuedBytes`: a connection's answers are bounded by
    /// its pending requests (`maxPendingRequests`), and a publisher must get its answers.
    pub fn push(&self, frame: Bytes) -> Pushed {
        let len = frame.len();
        let pushed = self.push_inner(frame, false, true);
        if pushed == Pushed::Queued {
            self.pressure.add(len);
        }
        pushed
    }

    /// Queues the answer to one of the connection's own requests (or a pong): like [`push`],
    /// but left out of the protocol's pressure. Replies are bounded per connection by its
    /// pending requests (`maxPendingRequests`), and counting them would put two read-modify-
    /// writes of one shared counter (queued, then written) on every request/response round
    /// trip, on whichever threads serve them.
    ///
    /// [`push`]: Outbox::push
    pub fn push_reply(&self, frame: Bytes) -> Pushed {
        self.push_inner(frame, false, false)
    }

    /// Queues a frame of a fan-out, counted in `batch` (added to the protocol's total once,
    /// for the whole fan-out).
    pub fn push_counted(&self, frame: Bytes, batch: &mut Batch<'_>) -> Pushed {
        let len = frame.len();
        let pushed = self.push_inner(frame, batch.over_total, true);
        if pushed == Pushed::Queued {
            batch.bytes += len;
            batch.frames += 1;
        }
        pushed
    }

    fn push_inner(&self, frame: Bytes, over_total: bool, counted: bool) -> Pushed {
        let mut state = self.state.lock();
        if state.closing {
            return Pushed::Closing;
        }
        let was_empty = state.frames.is_empty();
        if !was_empty
            && (state.frames.len() >= self.limits.max_frames
                || state.queued_bytes + frame.len() > self.limits.max_bytes
                || over_total)
        {
            let dropped = std::mem::take(&mut state.queued_bytes);
            let counted = std::mem::take(&mut state.counted_bytes);
            state.frames = VecDeque::new();
            state.request_close(self.overflow.clone());
            drop(state);
            self.pressure.sub(counted);
            self.wake_both();
            let why = if over_total {
                "the protocol's queued bytes passed maxTotalQueuedBytes"
            } else {
                "its queue passed its cap"
            };
            self.pressure
                .slow_consumer_closed(&self.connection, dropped, why);
            return Pushed::Overflow;
        }
        state.queued_bytes += frame.len();
        if counted {
            state.counted_bytes += frame.len();
        }
        state.frames.push_back(frame);
        drop(state);
        // The writer drains everything it finds, so only the first frame of a batch wakes it.
        if was_empty {
            self.writer_wake.notify_one();
        }
        Pushed::Queued
    }

    /// Asks for the connection to close once queued frames are written (or at once, dropping
    /// them, when `discard_queued`). Returns false if a close was already requested.
    pub fn close(&self, closing: Closing, discard_queued: bool) -> bool {
        let mut state = self.state.lock();
        if state.closing {
            return false;
        }
        let mut dropped = 0;
        if discard_queued {
            state.frames = VecDeque::new();
            state.queued_bytes = 0;
            dropped = std::mem::take(&mut state.counted_bytes);
        }
        state.request_close(closing);
        drop(state);
        self.pressure.sub(dropped);
        self.wake_both();
        true
    }

    /// The writer made no progress for `slow_consumer_timeout` with `unwritten` bytes in hand:
    /// closes with the overflow close, dropping what is queued, and logs it. False if a close
    /// was already requested.
    pub fn stalled(&self, unwritten: usize) -> bool {
        let queued = self.queued_bytes();
        if !self.close(self.overflow.clone(), true) {
            return false;
        }
        let why = format!(
            "its writes made no progress for {} ms",
            self.limits.slow_consumer_timeout.as_millis()
        );
        self.pressure
            .slow_consumer_closed(&self.connection, queued + unwritten, &why);
        true
    }

    /// Marks the outbox closed without sending anything more (the socket is gone). Returns
    /// false if a close was already requested.
    pub fn close_silently(&self) -> bool {
        self.close(Closing::silent("socket closed"), true)
    }

    fn wake_both(&self) {
        self.writer_wake.notify_one();
        self.reader_wake.notify_one();
    }

    /// The code of the requested close, if any.
    pub fn close_code(&self) -> Option<u16> {
        let state = self.state.lock();
        state.closing.then_some(state.close_code)
    }

    /// Why the connection is closing, if it is.
    pub fn close_reason(&self) -> Option<&'static str> {
        let state = self.state.lock();
        state.closing.then_some(state.close_reason)
    }

    /// Moves every queued frame to the end of `batch` (empty on entry).
    pub fn take(&self, batch: &mut VecDeque<Bytes>) -> Taken {
        debug_assert!(batch.is_empty());
        let mut state = self.state.lock();
        std::mem::swap(&mut state.frames, batch);
        state.queued_bytes = 0;
        let taken = std::mem::take(&mut state.counted_bytes);
        let close = state.close_frame.take();
        drop(state);
        self.pressure.sub(taken);
        if let Some(close) = close {
            return Taken::Close(close);
        }
        if batch.is_empty() {
            Taken::Idle
        } else {
            Taken::Frames
        }
    }

    /// Waits until the writer has something to do.
    pub async fn writer_wait(&self) {
        self.writer_wake.notified().await
    }

    /// Waits until a close is requested.
    pub async fn reader_wait(&self) {
        self.reader_wake.notified().await
    }

    /// Bytes currently queued (tests, metrics).
    pub fn queued_bytes(&self) -> usize {
        self.state.lock().queued_bytes
    }

    /// Frames currently queued (tests, metrics).
    pub fn queued_frames(&self) -> usize {
        self.state.lock().frames.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OVERFLOW_CODE: u16 = 1011;

    fn overflow() -> Closing {
        Closing {
            frame: Bytes::from_static(b"overflow"),
            code: OVERFLOW_CODE,
            reason: "too slow",
        }
    }

    fn bytes_only(max_bytes: usize) -> Outbox {
        Outbox::new(
            ConnectionId(1),
            Limits::bytes(max_bytes, Duration::from_secs(10)),
            overflow(),
            Arc::new(Pressure::unreported()),
        )
    }

    fn closing(code: u16, reason: &'static str) -> Closing {
        Closing {
            frame: Bytes::from(format!("close {code} {reason}")),
            code,
            reason,
        }
    }

    fn frame(len: usize) -> Bytes {
        Bytes::from(vec![b'x'; len])
    }

    #[test]
    fn frames_queue_up_to_the_cap_then_the_connection_closes_with_1011() {
        let outbox = bytes_only(100);
        assert_eq!(outbox.push(frame(60)), Pushed::Queued);
        assert_eq!(outbox.push(frame(40)), Pushed::Queued);
        assert_eq!(outbox.queued_bytes(), 100);
        assert_eq!(outbox.push(frame(1)), Pushed::Overflow);
        assert_eq!(outbox.queued_bytes(), 0, "queued frames are freed at once");
        assert_eq!(outbox.push(frame(1)), Pushed::Closing);
        assert_eq!(outbox.close_code(), Some(1011));
        let mut batch = VecDeque::new();
        assert_eq!(outbox.close_reason(), Some("too slow"));
        assert_eq!(outbox.take(&mut batch), Taken::Close(overflow().frame));
        assert!(batch.is_empty());
    }

    #[test]
    fn one_frame_larger_than_the_cap_fits_an_empty_queue() {
        let outbox = bytes_only(10);
        assert_eq!(outbox.push(frame(1000)), Pushed::Queued);
        assert_eq!(outbox.push(frame(1)), Pushed::Overflow);
    }

    #[test]
    fn the_writer_takes_everything_and_the_cap_applies_to_what_is_left() {
        let outbox = bytes_only(100);
        let mut batch = VecDeque::new();
        assert_eq!(outbox.take(&mut batch), Taken::Idle);
        for _ in 0..3 {
            outbox.push(frame(30));
        }
        assert_eq!(outbox.take(&mut batch), Taken::Frames);
        assert_eq!(batch.len(), 3);
        assert_eq!(outbox.queued_bytes(), 0);
        batch.clear();
        assert_eq!(outbox.push(frame(90)), Pushed::Queued);
    }

    #[test]
    fn a_close_is_sent_after_queued_frames_and_only_once() {
        let outbox = bytes_only(100);
        outbox.push(frame(5));
        assert!(outbox.close(closing(1001, "bye"), false));
        assert!(!outbox.close(closing(1011, "again"), false));
        assert_eq!(outbox.push(frame(5)), Pushed::Closing);
        let mut batch = VecDeque::new();
        assert_eq!(
            outbox.take(&mut batch),
            Taken::Close(closing(1001, "bye").frame)
        );
        assert_eq!(batch.len(), 1);
        batch.clear();
        assert_eq!(
            outbox.take(&mut batch),
            Taken::Idle,
            "the close frame is handed out once"
        );
        assert_eq!(outbox.push(frame(5)), Pushed::Closing);
    }

    #[test]
    fn a_discarding_close_drops_queued_frames() {
        let outbox = bytes_only(100);
        outbox.push(frame(5));
        outbox.close(closing(1002, "protocol error"), true);
        let mut batch = VecDeque::new();
        assert_eq!(
            outbox.take(&mut batch),
            Taken::Close(closing(1002, "protocol error").frame)
        );
        assert!(batch.is_empty());
    }

    #[test]
    fn replies_are_queued_and_capped_but_left_out_of_the_pressure() {
        let pressure = Arc::new(Pressure::unreported());
        let outbox = Outbox::new(
            ConnectionId(1),
            Limits::bytes(100, Duration::from_secs(10)),
            Closing::silent("too slow"),
            pressure.clone(),
        );
        assert_eq!(outbox.push(frame(30)), Pushed::Queued);
        assert_eq!(outbox.push_reply(frame(50)), Pushed::Queued);
        assert_eq!(outbox.queued_bytes(), 80);
        assert_eq!(pressure.queued_bytes(), 30);
        let mut batch = VecDeque::new();
        assert!(matches!(outbox.take(&mut batch), Taken::Frames));
        assert_eq!(batch.len(), 2);
        assert_eq!((outbox.queued_bytes(), pressure.queued_bytes()), (0, 0));
        // The per-connection cap still counts replies.
        assert_eq!(outbox.push_reply(frame(60)), Pushed::Queued);
        assert_eq!(outbox.push(frame(20)), Pushed::Queued);
        assert_eq!(pressure.queued_bytes(), 20);
        assert_eq!(outbox.push_reply(frame(30)), Pushed::Overflow);
        assert_eq!((outbox.queued_bytes(), pressure.queued_bytes()), (0, 0));
    }

    #[test]
    fn the_frame_cap_closes_a_slow_consumer() {
        let outbox = Outbox::new(
            ConnectionId(1),
            Limits {
                max_frames: 2,
                max_bytes: 1000,
                slow_consumer_timeout: Duration::from_secs(10),
            },
            Closing::silent("too many frames"),
            Arc::new(Pressure::unreported()),
        );
        assert_eq!(outbox.push(frame(1)), Pushed::Queued);
        assert_eq!(outbox.push(frame(1)), Pushed::Queued);
        assert_eq!(outbox.push(frame(1)), Pushed::Overflow);
        assert_eq!(outbox.queued_frames(), 0, "queued frames are freed at once");
        assert_eq!(outbox.close_reason(), Some("too many frames"));
        let mut batch = VecDeque::new();
        assert_eq!(outbox.take(&mut batch), Taken::Close(Bytes::new()));
        assert_eq!(
            outbox.take(&mut batch),
            Taken::Idle,
            "the close is handed out once"
        );
    }

    #[test]
    fn every_byte_queued_is_counted_until_taken_or_dropped() {
        let pressure = Arc::new(Pressure::unreported());
        let outbox = |id| {
            Outbox::new(
                ConnectionId(id),
                Limits::bytes(100, Duration::from_secs(10)),
                overflow(),
                pressure.clone(),
            )
        };
        let (a, b) = (outbox(1), outbox(2));
        a.push(frame(10));
        {
            let mut batch = pressure.batch();
            a.push_counted(frame(20), &mut batch);
            b.push_counted(frame(30), &mut batch);
        }
        assert_eq!(pressure.queued_bytes(), 60);
        let mut taken = VecDeque::new();
        a.take(&mut taken);
        assert_eq!(pressure.queued_bytes(), 30);
        b.push(frame(80));
        assert_eq!(b.queued_bytes(), 0, "overflowed");
        assert_eq!(pressure.queued_bytes(), 0);
        assert_eq!(pressure.slow_consumers_closed(), 1);
        a.push(frame(5));
        a.close(closing(1001, "bye"), true);
        assert_eq!(pressure.queued_bytes(), 0);
        let c = outbox(3);
        c.push(frame(7));
        drop(c);
        assert_eq!(
            pressure.queued_bytes(),
            0,
            "a dropped outbox leaves the total"
        );
    }

    #[test]
    fn past_the_protocol_total_a_non_empty_queue_overflows() {
        let marks = crate::pressure::Marks {
            high: 50,
            low: 10,
            max_total: 100,
        };
        let pressure = Arc::new(Pressure::new("test", marks, |_| {}));
        let outbox = |id| {
            Outbox::new(
                ConnectionId(id),
                Limits::bytes(1000, Duration::from_secs(10)),
                overflow(),
                pressure.clone(),
            )
        };
        let (a, b) = (outbox(1), outbox(2));
        a.push(frame(60));
        b.push(frame(60));
        assert!(pressure.over_total());
        assert_eq!(
            a.push(frame(1)),
            Pushed::Queued,
            "answers are not capped by the total"
        );
        let mut batch = pressure.batch();
        assert_eq!(a.push_counted(frame(1), &mut batch), Pushed::Overflow);
        let mut taken = VecDeque::new();
        b.take(&mut taken);
        assert_eq!(
            b.push_counted(frame(1), &mut batch),
            Pushed::Queued,
            "an empty queue takes one"
        );
    }

    #[tokio::test]
    async fn pushes_wake_the_writer_and_closes_wake_the_reader() {
        let outbox = std::sync::Arc::new(bytes_only(100));
        let pusher = outbox.clone();
        let thread = std::thread::spawn(move || {
            pusher.push(frame(1));
            pusher.close(closing(1001, "bye"), false);
        });
        // Permits are kept, so these return whether the pushes came before or after the waits.
        tokio::time::timeout(std::time::Duration::from_secs(5), outbox.writer_wait())
            .await
            .unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), outbox.reader_wait())
            .await
            .unwrap();
        thread.join().unwrap();
    }
}
