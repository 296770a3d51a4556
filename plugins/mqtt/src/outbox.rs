//! A connection's bounded queue of outgoing packets, filled by any thread, drained by its writer.
//!
//! Invariant: at most `max_messages` packets and `max_bytes` bytes are queued, except the one
//! packet always accepted into an empty queue (so a large response still goes out). The first
//! push past a cap empties the queue and asks for the connection to close: a slow consumer costs
//! nobody else anything, and its memory is freed at once.

use std::collections::VecDeque;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// What became of a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued for writing.
    Queued,
    /// Dropped: the connection is closing.
    Closing,
    /// Dropped, and the connection is now closing because its queue was full.
    Overflow,
}

/// What the writer takes out of the outbox in one go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Nothing to do: wait for `writer_wait`.
    Idle,
    /// Packets were moved into the batch.
    Packets,
    /// Packets (maybe none) were moved into the batch; write them, then close the socket.
    Close,
}

#[derive(Debug, Default)]
struct State {
    /// Packets not yet taken by the writer, oldest first.
    packets: VecDeque<Bytes>,
    /// Sum of `packets`' lengths.
    queued_bytes: usize,
    /// Why the connection is closing, once it is: later pushes are dropped.
    closing: Option<&'static str>,
    /// The writer has been told to close (it is told once).
    close_taken: bool,
}

/// One connection's outgoing queue.
#[derive(Debug)]
pub struct Outbox {
    /// The queue, behind a lock held only to push or swap, never while writing.
    state: Mutex<State>,
    /// Wakes the writer when the queue stops being empty or a close is requested. `Notify`
    /// keeps one permit, so a wake-up between the writer's check and its wait is not lost.
    writer_wake: Notify,
    /// Wakes the reader when a close is requested, so it stops reading.
    reader_wake: Notify,
    /// Slow-consumer cap, in packets.
    max_messages: usize,
    /// Slow-consumer cap, in bytes.
    max_bytes: usize,
}

/// The reason given when a queue overflows.
pub const TOO_SLOW: &str = "too many queued messages: client is too slow";

impl Outbox {
    /// An empty outbox with these caps.
    pub fn new(max_messages: usize, max_bytes: usize) -> Outbox {
        Outbox {
            state: Mutex::new(State::default()),
            writer_wake: Notify::new(),
            reader_wake: Notify::new(),
            max_messages,
            max_bytes,
        }
    }

    /// Queues a complete packet. Never blocks beyond a short lock.
    pub fn push(&self, packet: Bytes) -> Pushed {
        let mut state = self.state.lock();
        if state.closing.is_some() {
            return Pushed::Closing;
        }
        let was_empty = state.packets.is_empty();
        if !was_empty
            && (state.packets.len() >= self.max_messages
                || state.queued_bytes + packet.len() > self.max_bytes)
        {
            state.packets = VecDeque::new();
            state.queued_bytes = 0;
            state.closing = Some(TOO_SLOW);
            drop(state);
            self.wake_both();
            return Pushed::Overflow;
        }
        state.queued_bytes += packet.len();
        state.packets.push_back(packet);
        drop(state);
        // The writer drains everything it finds, so only the first packet of a batch wakes it.
        if was_empty {
            self.writer_wake.notify_one();
        }
        Pushed::Queued
    }

    /// Asks for the connection to close, after the queued packets are written (or at once,
    /// dropping them, when `discard_queued`). Returns false if a close was already requested.
    pub fn close(&self, reason: &'static str, discard_queued: bool) -> bool {
        let mut state = self.state.lock();
        if state.closing.is_some() {
            return false;
        }
        if discard_queued {
            state.packets = VecDeque::new();
            state.queued_bytes = 0;
        }
        state.closing = Some(reason);
        drop(state);
        self.wake_both();
        true
    }

    fn wake_both(&self) {
        self.writer_wake.notify_one();
        self.reader_wake.notify_one();
    }

    /// Why the connection is closing, if it is.
    pub fn closing(&self) -> Option<&'static str> {
        self.state.lock().closing
    }

    /// Moves every queued packet to the end of `batch` (empty on entry).
    pub fn take(&self, batch: &mut VecDeque<Bytes>) -> Taken {
        debug_assert!(batch.is_empty());
        let mut state = self.state.lock();
        std::mem::swap(&mut state.packets, batch);
        state.queued_bytes = 0;
        if state.closing.is_some() && !state.close_taken {
            state.close_taken = true;
            return Taken::Close;
        }
        if batch.is_empty() {
            Taken::Idle
        } else {
            Taken::Packets
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

    /// Packets currently queued (tests, metrics).
    pub fn queued(&self) -> usize {
        self.state.lock().packets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(len: usize) -> Bytes {
        Bytes::from(vec![b'x'; len])
    }

    #[test]
    fn the_message_cap_closes_a_slow_consumer() {
        let outbox = Outbox::new(2, 1000);
        assert_eq!(outbox.push(packet(1)), Pushed::Queued);
        assert_eq!(outbox.push(packet(1)), Pushed::Queued);
        assert_eq!(outbox.push(packet(1)), Pushed::Overflow);
        assert_eq!(outbox.queued(), 0, "queued packets are freed at once");
        assert_eq!(outbox.push(packet(1)), Pushed::Closing);
        assert_eq!(outbox.closing(), Some(TOO_SLOW));
        let mut batch = VecDeque::new();
        assert_eq!(outbox.take(&mut batch), Taken::Close);
        assert!(batch.is_empty());
        assert_eq!(
            outbox.take(&mut batch),
            Taken::Idle,
            "the close is handed out once"
        );
    }

    #[test]
    fn the_byte_cap_spares_one_large_packet() {
        let outbox = Outbox::new(100, 10);
        assert_eq!(outbox.push(packet(1000)), Pushed::Queued);
        assert_eq!(outbox.push(packet(1)), Pushed::Overflow);
    }

    #[test]
    fn a_graceful_close_keeps_queued_packets_and_a_discarding_one_drops_them() {
        let outbox = Outbox::new(100, 1000);
        outbox.push(packet(5));
        assert!(outbox.close("bye", false));
        assert!(!outbox.close("again", true));
        let mut batch = VecDeque::new();
        assert_eq!(outbox.take(&mut batch), Taken::Close);
        assert_eq!(batch.len(), 1);

        let outbox = Outbox::new(100, 1000);
        outbox.push(packet(5));
        outbox.close("violation", true);
        let mut batch = VecDeque::new();
        assert_eq!(outbox.take(&mut batch), Taken::Close);
        assert!(batch.is_empty());
    }

    #[test]
    fn the_writer_takes_everything_and_caps_apply_to_what_is_left() {
        let outbox = Outbox::new(3, 1000);
        let mut batch = VecDeque::new();
        assert_eq!(outbox.take(&mut batch), Taken::Idle);
        for _ in 0..3 {
            outbox.push(packet(30));
        }
        assert_eq!(outbox.take(&mut batch), Taken::Packets);
        assert_eq!(batch.len(), 3);
        assert_eq!(outbox.push(packet(1)), Pushed::Queued);
    }
}
