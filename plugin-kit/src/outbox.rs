//! A connection's bounded queue of outgoing frames, filled by any thread, drained by its writer.
//!
//! Frames are complete wire units (WebSocket frames, MQTT packets), shared `Bytes`: a fan-out
//! pushes the same handle into every member's outbox.
//!
//! Invariant: at most `max_frames` frames and `max_bytes` bytes are queued, except the one frame
//! always accepted into an empty queue (so a response larger than the cap still goes out). The
//! first push past a cap empties the queue and turns into the outbox's overflow close (a 1011
//! close frame for WebSocket, a bare socket close for MQTT): the slow consumer costs nobody else
//! anything, and its memory is freed at once.

use std::collections::VecDeque;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

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
}

#[derive(Debug, Default)]
struct State {
    /// Frames not yet taken by the writer, oldest first.
    frames: VecDeque<Bytes>,
    /// Sum of `frames`' lengths.
    queued_bytes: usize,
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

impl Outbox {
    /// An empty outbox with these caps; a push past them requests `overflow`.
    pub fn new(limits: Limits, overflow: Closing) -> Outbox {
        Outbox {
            state: Mutex::new(State::default()),
            writer_wake: Notify::new(),
            reader_wake: Notify::new(),
            limits,
            overflow,
        }
    }

    /// Queues a complete frame. Never blocks beyond a short lock.
    pub fn push(&self, frame: Bytes) -> Pushed {
        let mut state = self.state.lock();
        if state.closing {
            return Pushed::Closing;
        }
        let was_empty = state.frames.is_empty();
        if !was_empty
            && (state.frames.len() >= self.limits.max_frames
                || state.queued_bytes + frame.len() > self.limits.max_bytes)
        {
            state.frames = VecDeque::new();
            state.queued_bytes = 0;
            state.request_close(self.overflow.clone());
            drop(state);
            self.wake_both();
            return Pushed::Overflow;
        }
        state.queued_bytes += frame.len();
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
        if discard_queued {
            state.frames = VecDeque::new();
            state.queued_bytes = 0;
        }
        state.request_close(closing);
        drop(state);
        self.wake_both();
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
        if let Some(close) = state.close_frame.take() {
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
            Limits {
                max_frames: usize::MAX,
                max_bytes,
            },
            overflow(),
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
    fn the_frame_cap_closes_a_slow_consumer() {
        let outbox = Outbox::new(
            Limits {
                max_frames: 2,
                max_bytes: 1000,
            },
            Closing::silent("too many frames"),
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
