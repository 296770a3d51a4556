//! A client's session (MQTT 3.1.1, 4.1): its subscriptions and the QoS 1/2 state that outlives
//! one network connection when the client asked for a persistent session.
//!
//! Lock order: a subscription-table shard, then a session's `state`, then an outbox. Nothing
//! takes a table lock while holding a session lock.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::codec::kind;
use crate::encode;
use crate::outbox::{Outbox, Pushed};
use switchyard_plugin_kit::pressure::Batch;

/// A message on its way through the broker (client publishes, wills, retained messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic name.
    pub topic: Arc<str>,
    /// Payload.
    pub payload: Bytes,
    /// QoS it was published with.
    pub qos: u8,
}

/// An outgoing QoS 1/2 message the client has not acknowledged yet.
#[derive(Debug, Clone)]
enum Inflight {
    /// PUBLISH sent (this packet), waiting for PUBACK or PUBREC.
    Sent(Bytes),
    /// PUBREC received and PUBREL sent, waiting for PUBCOMP.
    Released,
}

/// What a delivery did (for counting and for the caller's logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// Queued to the live connection.
    Sent,
    /// Kept for later: the session is offline (persistent), or its in-flight window is full.
    Stored,
    /// Dropped: offline QoS 0, a full queue (`maxQueuedMessages`), or a closing connection.
    Dropped,
    /// The connection's queue overflowed: it is now closing as too slow.
    Overflow,
}

/// Mutable session state.
#[derive(Debug, Default)]
struct State {
    /// The live connection's outbox and serial; `None` while offline.
    live: Option<(u64, Arc<Outbox>)>,
    /// Filter → granted QoS.
    subscriptions: HashMap<Arc<str>, u8>,
    /// Outgoing QoS 1/2 messages by packet id, in the order they were sent.
    inflight: VecDeque<(u16, Inflight)>,
    /// Incoming QoS 2 packet ids answered with PUBREC and not yet released: a duplicate
    /// PUBLISH with one of these ids is acknowledged but not delivered again.
    awaiting_release: HashSet<u16>,
    /// QoS 1/2 messages waiting, in order: while a persistent session is offline, or while
    /// its in-flight window is full (sent as acknowledgements free it): (message, granted QoS).
    offline: VecDeque<(Message, u8)>,
    /// Last packet id used for an outgoing message.
    last_packet_id: u16,
}

/// Keys of sessions, never reused: a client id can name a new session while the old one is
/// still being torn down, so tables key subscribers by session, not by client id.
static SESSION_KEYS: AtomicU64 = AtomicU64::new(1);

/// One client id's session.
#[derive(Debug)]
pub struct Session {
    /// Unique among every session this process ever made.
    pub key: u64,
    /// The client identifier.
    pub client_id: Arc<str>,
    /// Whether it ends with its connection (clean session).
    pub clean: bool,
    /// Cap on `offline` (mosquitto's `max_queued_messages`).
    max_queued: usize,
    /// Cap on `inflight`, the messages sent and not yet acknowledged (mosquitto's
    /// `max_inflight_messages`; 0: as many as packet ids allow).
    max_inflight: usize,
    state: Mutex<State>,
}

impl Session {
    /// A new, empty session.
    pub fn new(
        client_id: Arc<str>,
        clean: bool,
        max_queued: usize,
        max_inflight: usize,
    ) -> Session {
        Session {
            key: SESSION_KEYS.fetch_add(1, Ordering::Relaxed),
            client_id,
            clean,
            max_queued,
            max_inflight: match max_inflight {
                0 => 65_535,
                max => max.min(65_535),
            },
            state: Mutex::new(State::default()),
        }
    }

    /// Attaches a live connection. Returns the outbox it replaced, if another connection had
    /// this session (a takeover), then sends what the client missed: unacknowledged messages
    /// again (DUP set, or PUBREL), then messages stored while it was offline.
    pub fn attach(&self, serial: u64, outbox: Arc<Outbox>) -> Option<Arc<Outbox>> {
        let mut state = self.state.lock();
        let replaced = state
            .live
            .replace((serial, outbox.clone()))
            .map(|(_, old)| old);
        for (packet_id, inflight) in &state.inflight {
            let packet = match inflight {
                Inflight::Sent(packet) => encode::with_dup(packet),
                Inflight::Released => encode::ack(kind::PUBREL, *packet_id),
            };
            outbox.push(packet);
        }
        let offline = std::mem::take(&mut state.offline);
        for (message, qos) in offline {
            self.send_locked(&mut state, &message, qos, false);
        }
        replaced
    }

    /// Detaches connection `serial` if it is still the live one. Returns false when another
    /// connection took the session over meanwhile.
    pub fn detach(&self, serial: u64) -> bool {
        let mut state = self.state.lock();
        match &state.live {
            Some((live, _)) if *live == serial => {
                state.live = None;
                true
            }
            _ => false,
        }
    }

    /// The live connection's outbox.
    pub fn outbox(&self) -> Option<Arc<Outbox>> {
        self.state
            .lock()
            .live
            .as_ref()
            .map(|(_, outbox)| outbox.clone())
    }

    /// Pushes a packet built once for many subscribers (QoS 0) to the live connection, its
    /// bytes counted in the fan-out's `batch`.
    pub fn push_shared(&self, packet: &Bytes, batch: &mut Batch<'_>) -> Delivered {
        let state = self.state.lock();
        match &state.live {
            Some((_, outbox)) => match outbox.push_counted(packet.clone(), batch) {
                Pushed::Queued => Delivered::Sent,
                Pushed::Closing => Delivered::Dropped,
                Pushed::Overflow => Delivered::Overflow,
            },
            None => Delivered::Dropped,
        }
    }

    /// Delivers `message` at `qos` (already the minimum of the message's and the
    /// subscription's), giving it a packet id when `qos > 0`.
    pub fn deliver(&self, message: &Message, qos: u8, retain: bool) -> Delivered {
        let mut state = self.state.lock();
        self.send_locked(&mut state, message, qos, retain)
    }

    fn send_locked(
        &self,
        state: &mut State,
        message: &Message,
        qos: u8,
        retain: bool,
    ) -> Delivered {
        // Offline, or the window is full: QoS 1/2 waits (in order) while there is room.
        let waits = match &state.live {
            None => true,
            Some(_) => {
                qos > 0 && (state.inflight.len() >= self.max_inflight || !state.offline.is_empty())
            }
        };
        if waits {
            if qos == 0 || state.offline.len() >= self.max_queued {
                return Delivered::Dropped;
            }
            state.offline.push_back((message.clone(), qos));
            return Delivered::Stored;
        }
        Self::send_now(state, message, qos, retain)
    }

    /// Sends `message` to the live connection now (the caller checked the window).
    fn send_now(state: &mut State, message: &Message, qos: u8, retain: bool) -> Delivered {
        let Some((_, outbox)) = state.live.clone() else {
            return Delivered::Dropped;
        };
        let packet_id = if qos > 0 {
            Some(next_packet_id(state))
        } else {
            None
        };
        let packet = encode::publish(
            &message.topic,
            &message.payload,
            qos,
            retain,
            false,
            packet_id,
        );
        if let Some(packet_id) = packet_id {
            state
                .inflight
                .push_back((packet_id, Inflight::Sent(packet.clone())));
        }
        match outbox.push(packet) {
            Pushed::Queued => Delivered::Sent,
            Pushed::Closing => Delivered::Dropped,
            Pushed::Overflow => Delivered::Overflow,
        }
    }

    /// PUBACK (QoS 1) or PUBCOMP (QoS 2) for an outgoing message: forget it, and send what
    /// waited for room in the window.
    pub fn acknowledged(&self, packet_id: u16) {
        let mut state = self.state.lock();
        state.inflight.retain(|(id, _)| *id != packet_id);
        if state.live.is_none() {
            return;
        }
        while state.inflight.len() < self.max_inflight {
            let Some((message, qos)) = state.offline.pop_front() else {
                break;
            };
            Self::send_now(&mut state, &message, qos, false);
        }
    }

    /// PUBREC for an outgoing QoS 2 message: it is now released (the caller sends PUBREL).
    pub fn received(&self, packet_id: u16) {
        let mut state = self.state.lock();
        if let Some((_, inflight)) = state.inflight.iter_mut().find(|(id, _)| *id == packet_id) {
            *inflight = Inflight::Released;
        }
    }

    /// An incoming QoS 2 PUBLISH: true if it is new (deliver it), false for a duplicate.
    pub fn begin_incoming(&self, packet_id: u16) -> bool {
        self.state.lock().awaiting_release.insert(packet_id)
    }

    /// PUBREL for an incoming QoS 2 message.
    pub fn release_incoming(&self, packet_id: u16) {
        self.state.lock().awaiting_release.remove(&packet_id);
    }

    /// Records a subscription; returns the QoS it had before, if any.
    pub fn subscribe(&self, filter: Arc<str>, qos: u8) -> Option<u8> {
        self.state.lock().subscriptions.insert(filter, qos)
    }

    /// Forgets a subscription; returns whether it existed.
    pub fn unsubscribe(&self, filter: &str) -> bool {
        self.state.lock().subscriptions.remove(filter).is_some()
    }

    /// Every subscribed filter (to purge them from the tables).
    pub fn filters(&self) -> Vec<Arc<str>> {
        self.state.lock().subscriptions.keys().cloned().collect()
    }

    /// Messages stored while offline (tests, metrics).
    pub fn stored(&self) -> usize {
        self.state.lock().offline.len()
    }
}

fn next_packet_id(state: &mut State) -> u16 {
    loop {
        state.last_packet_id = state.last_packet_id.wrapping_add(1).max(1);
        let candidate = state.last_packet_id;
        if !state.inflight.iter().any(|(id, _)| *id == candidate) {
            return candidate;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Taken;

    fn message(qos: u8) -> Message {
        Message {
            topic: Arc::from("t"),
            payload: Bytes::from_static(b"p"),
            qos,
        }
    }

    /// A message whose one-byte payload is `n` (the last byte of its PUBLISH packet).
    fn numbered(n: u8) -> Message {
        Message {
            topic: Arc::from("t"),
            payload: Bytes::from(vec![n]),
            qos: 1,
        }
    }

    fn drain(outbox: &Outbox) -> Vec<Bytes> {
        let mut batch = VecDeque::new();
        assert_ne!(outbox.take(&mut batch), Taken::Close(bytes::Bytes::new()));
        batch.into()
    }

    #[test]
    fn a_persistent_session_keeps_qos1_messages_and_resends_unacknowledged_ones() {
        let session = Session::new(Arc::from("c"), false, 10, 10);
        assert_eq!(session.deliver(&message(0), 0, false), Delivered::Dropped);
        assert_eq!(session.deliver(&message(1), 1, false), Delivered::Stored);

        let first = Arc::new(crate::outbox::for_tests(1 << 20));
        assert!(session.attach(1, first.clone()).is_none());
        let sent = drain(&first);
        assert_eq!(sent, [encode::publish("t", b"p", 1, false, false, Some(1))]);
        assert!(session.detach(1));

        // Not acknowledged: sent again with DUP on the next connection.
        let second = Arc::new(crate::outbox::for_tests(1 << 20));
        session.attach(2, second.clone());
        assert_eq!(
            drain(&second),
            [encode::publish("t", b"p", 1, false, true, Some(1))]
        );
        session.acknowledged(1);
        assert!(session.detach(2));
        let third = Arc::new(crate::outbox::for_tests(1 << 20));
        session.attach(3, third.clone());
        assert!(drain(&third).is_empty());
    }

    #[test]
    fn qos2_outgoing_state_survives_as_pubrel() {
        let session = Session::new(Arc::from("c"), false, 10, 10);
        let first = Arc::new(crate::outbox::for_tests(1 << 20));
        session.attach(1, first.clone());
        session.deliver(&message(2), 2, false);
        drain(&first);
        session.received(1);
        session.detach(1);
        let second = Arc::new(crate::outbox::for_tests(1 << 20));
        session.attach(2, second.clone());
        assert_eq!(drain(&second), [encode::ack(kind::PUBREL, 1)]);
    }

    #[test]
    fn a_takeover_returns_the_old_outbox_and_stale_detaches_are_ignored() {
        let session = Session::new(Arc::from("c"), true, 10, 10);
        let first = Arc::new(crate::outbox::for_tests(1 << 20));
        session.attach(1, first.clone());
        let replaced = session.attach(2, Arc::new(crate::outbox::for_tests(1 << 20)));
        assert!(Arc::ptr_eq(&replaced.unwrap(), &first));
        assert!(!session.detach(1));
        assert!(session.detach(2));
    }

    #[test]
    fn the_offline_queue_and_the_inflight_window_are_capped() {
        let session = Session::new(Arc::from("c"), false, 2, 2);
        for _ in 0..2 {
            assert_eq!(session.deliver(&message(1), 1, false), Delivered::Stored);
        }
        assert_eq!(session.deliver(&message(1), 1, false), Delivered::Dropped);
        assert_eq!(session.stored(), 2);
        session.attach(1, Arc::new(crate::outbox::for_tests(1 << 20)));
        // Both sent on attach: the window (2) is full, so the next ones wait, up to 2.
        assert_eq!(session.stored(), 0);
        assert_eq!(session.deliver(&message(1), 1, false), Delivered::Stored);
        assert_eq!(session.deliver(&message(1), 1, false), Delivered::Stored);
        assert_eq!(session.deliver(&message(1), 1, false), Delivered::Dropped);
        assert!(session.begin_incoming(7));
        assert!(!session.begin_incoming(7));
        session.release_incoming(7);
        assert!(session.begin_incoming(7));
    }

    /// mosquitto's `max_inflight_messages`: past the window, QoS 1/2 messages wait (in order,
    /// up to `max_queued`) and leave as acknowledgements free the window.
    #[test]
    fn messages_past_the_inflight_window_wait_for_acknowledgements() {
        let session = Session::new(Arc::from("c"), false, 10, 2);
        let outbox = Arc::new(crate::outbox::for_tests(1 << 20));
        session.attach(1, outbox.clone());
        let sent: Vec<Delivered> = (0..5u8)
            .map(|n| session.deliver(&numbered(n), 1, false))
            .collect();
        assert_eq!(
            sent,
            [
                Delivered::Sent,
                Delivered::Sent,
                Delivered::Stored,
                Delivered::Stored,
                Delivered::Stored
            ]
        );
        // A QoS 0 message does not wait for the window.
        assert_eq!(session.deliver(&numbered(9), 0, false), Delivered::Sent);
        let payloads = |outbox: &Outbox| {
            let mut batch = VecDeque::new();
            let _ = outbox.take(&mut batch);
            batch
                .iter()
                .map(|packet| *packet.last().unwrap())
                .collect::<Vec<u8>>()
        };
        assert_eq!(payloads(&outbox), [0, 1, 9]);
        session.acknowledged(1);
        assert_eq!(payloads(&outbox), [2]);
        session.acknowledged(2);
        session.acknowledged(3);
        assert_eq!(payloads(&outbox), [3, 4]);
        assert_eq!(session.stored(), 0);
    }
}
