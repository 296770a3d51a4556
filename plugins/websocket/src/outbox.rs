//! A connection's bounded queue of outgoing frames, filled by any thread, drained by its writer.
//!
//! Invariant: `queued_bytes` never exceeds the cap, except by the one frame always accepted into
//! an empty queue (so a response larger than the cap still goes out). The first push past the
//! cap empties the queue and turns it into a 1011 close: the slow consumer costs nobody else
//! anything, and its memory is freed at once.

use std::collections::VecDeque;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::frame::{self, close_code};

/// The close reason Kuzzle sends to a slow consumer.
pub const BACKPRESSURE_REASON: &str = "too much backpressure: client is too slow";

/// What became of a pushed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued for writing.
    Queued,
    /// Dropped: the connection is closing.
    Closing,
    /// Dropped, and the connection is now closing with 1011 because its queue was full.
    Overflow,
}

#[derive(Debug, Default)]
struct State {
    /// Frames not yet taken by the writer, oldest first.
    frames: VecDeque<Bytes>,
    /// Sum of `frames`' lengths.
    queued_bytes: usize,
    /// Set once a close is requested: later pushes are dropped.
    closing: bool,
    /// The close frame to send after the queued frames, until the writer takes it (empty: close
    /// without a frame).
    close_frame: Option<Bytes>,
    /// The requested close code, for logs.
    close_code: u16,
}

impl State {
    fn request_close(&mut self, frame: Bytes, code: u16) {
        self.closing = true;
        self.close_frame = Some(frame);
        self.close_code = code;
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
    /// The slow-consumer cap, in bytes.
    max_queued_bytes: usize,
}

/// What the writer takes out of the outbox in one go.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// Nothing to do: wait for `writer_wake`.
    Idle,
    /// Frames were moved into the batch.
    Frames,
    /// Frames (maybe none) were moved into the batch; send this close frame after them, then stop.
    Close(Bytes),
}

impl Outbox {
    /// An empty outbox with a cap of `max_queued_bytes`.
    pub fn new(max_queued_bytes: usize) -> Outbox {
        Outbox {
            state: Mutex::new(State::default()),
            writer_wake: Notify::new(),
            reader_wake: Notify::new(),
            max_queued_bytes,
        }
    }

    /// Queues a complete frame. Never blocks beyond a short lock.
    pub fn push(&self, frame: Bytes) -> Pushed {
        let mut state = self.state.lock();
        if state.closing {
            return Pushed::Closing;
        }
        let was_empty = state.frames.is_empty();
        if !was_empty && state.queued_bytes + frame.len() > self.max_queued_bytes {
            state.frames = VecDeque::new();
            state.queued_bytes = 0;
            state.request_close(
                frame::close(close_code::INTERNAL_ERROR, BACKPRESSURE_REASON),
                close_code::INTERNAL_ERROR,
            );
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

    /// Asks for the connection to close with `code` once queued frames are written (or at once,
    /// dropping them, when `discard_queued`). Returns false if a close was already requested.
    pub fn close(&self, code: u16, reason: &str, discard_queued: bool) -> bool {
        let mut state = self.state.lock();
        if state.closing {
            return false;
        }
        if discard_queued {
            state.frames = VecDeque::new();
            state.queued_bytes = 0;
        }
        state.request_close(frame::close(code, reason), code);
        drop(state);
        self.wake_both();
        true
    }

    /// Marks the outbox closed without any close frame (the socket is gone). Returns false if a
    /// close was already requested.
    pub fn close_silently(&self) -> bool {
        let mut state = self.state.lock();
        if state.closing {
            return false;
        }
        state.frames = VecDeque::new();
        state.queued_bytes = 0;
        state.request_close(Bytes::new(), 0);
        drop(state);
        self.wake_both();
        true
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: usize) -> Bytes {
        Bytes::from(vec![b'x'; len])
    }

    #[test]
    fn frames_queue_up_to_the_cap_then_the_connection_closes_with_1011() {
        let outbox = Outbox::new(100);
        assert_eq!(outbox.push(frame(60)), Pushed::Queued);
        assert_eq!(outbox.push(frame(40)), Pushed::Queued);
        assert_eq!(outbox.queued_bytes(), 100);
        assert_eq!(outbox.push(frame(1)), Pushed::Overflow);
        assert_eq!(outbox.queued_bytes(), 0, "queued frames are freed at once");
        assert_eq!(outbox.push(frame(1)), Pushed::Closing);
        assert_eq!(outbox.close_code(), Some(1011));
        let mut batch = VecDeque::new();
        let expected = frame::close(1011, BACKPRESSURE_REASON);
        assert_eq!(outbox.take(&mut batch), Taken::Close(expected));
        assert!(batch.is_empty());
    }

    #[test]
    fn one_frame_larger_than_the_cap_fits_an_empty_queue() {
        let outbox = Outbox::new(10);
        assert_eq!(outbox.push(frame(1000)), Pushed::Queued);
        assert_eq!(outbox.push(frame(1)), Pushed::Overflow);
    }

    #[test]
    fn the_writer_takes_everything_and_the_cap_applies_to_what_is_left() {
        let outbox = Outbox::new(100);
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
        let outbox = Outbox::new(100);
        outbox.push(frame(5));
        assert!(outbox.close(1001, "bye", false));
        assert!(!outbox.close(1011, "again", false));
        assert_eq!(outbox.push(frame(5)), Pushed::Closing);
        let mut batch = VecDeque::new();
        assert_eq!(
            outbox.take(&mut batch),
            Taken::Close(frame::close(1001, "bye"))
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
        let outbox = Outbox::new(100);
        outbox.push(frame(5));
        outbox.close(1002, "protocol error", true);
        let mut batch = VecDeque::new();
        assert_eq!(
            outbox.take(&mut batch),
            Taken::Close(frame::close(1002, "protocol error"))
        );
        assert!(batch.is_empty());
    }

    #[tokio::test]
    async fn pushes_wake_the_writer_and_closes_wake_the_reader() {
        let outbox = std::sync::Arc::new(Outbox::new(100));
        let pusher = outbox.clone();
        let thread = std::thread::spawn(move || {
            pusher.push(frame(1));
            pusher.close(1001, "bye", false);
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
