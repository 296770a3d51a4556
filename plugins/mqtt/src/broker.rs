//! The broker's shared state for one instance: sessions by client id, the subscription tables,
//! retained messages, and live connections by host connection id (for the hooks).
//!
//! Subscriptions without wildcards live in a sharded hash table keyed by the exact topic, so a
//! publish (or a Kuzzle notification) costs one lookup whatever the number of topics; filters
//! with wildcards are matched one by one (few are expected). Kuzzle notifications reach exact
//! subscriptions only: a wildcard filter never sees another user's rooms.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use switchyard_plugin_api::ConnectionId;
use switchyard_plugin_kit::pressure::Pressure;
use switchyard_plugin_kit::stats::Counter;

use crate::encode;
use crate::outbox::{Closing, Outbox};
use crate::session::{Delivered, Message, Session};
use crate::topic;

const SHARDS: usize = 32;

/// Why a connection is closed when a new CONNECT with its client id arrives.
pub const TAKEN_OVER: &str = "session taken over by a new connection";

/// Subscribers of one filter: session key → (session, granted QoS).
type Members = HashMap<u64, (Arc<Session>, u8)>;

/// A live network connection, as the hooks reach it.
#[derive(Debug, Clone)]
pub struct Link {
    /// Its outgoing queue.
    pub outbox: Arc<Outbox>,
}

/// How many deliveries a publish made (tests, benchmarks).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fanout {
    /// Queued to live connections.
    pub sent: usize,
    /// Connections that overflowed and are closing.
    pub overflowed: usize,
}

impl Fanout {
    fn count(&mut self, delivered: Delivered) {
        match delivered {
            Delivered::Sent => self.sent += 1,
            Delivered::Overflow => self.overflowed += 1,
            Delivered::Stored | Delivered::Dropped => {}
        }
    }
}

/// Caps on the retained-message store (`maxRetainedMessages`, `maxRetainedBytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetainLimits {
    /// Topics with a retained message; 0 keeps none.
    pub max_messages: usize,
    /// Bytes of topics and payloads retained, in all.
    pub max_bytes: usize,
}

impl RetainLimits {
    /// No cap (tests).
    pub const UNLIMITED: RetainLimits = RetainLimits {
        max_messages: usize::MAX,
        max_bytes: usize::MAX,
    };
}

/// What `Broker::retain` did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Kept (or a retained message cleared).
    Kept,
    /// Over `maxRetainedMessages` or `maxRetainedBytes`: delivered but not kept.
    Refused,
}

/// Retained messages and what they cost, so a cap is checked in O(1) (issue 19, item 3).
#[derive(Debug, Default)]
struct RetainedStore {
    /// Topic → its retained message.
    messages: HashMap<Arc<str>, Message>,
    /// Sum of `retained_size` over `messages`.
    bytes: usize,
    /// A refusal was logged since the store last had room: one warning per filling, not one
    /// per publish.
    warned: bool,
}

/// What one retained message counts against `maxRetainedBytes`.
fn retained_size(message: &Message) -> usize {
    message.topic.len() + message.payload.len()
}

/// All shared broker state of one instance.
#[derive(Debug)]
pub struct Broker {
    /// Hashes topics to shards.
    hasher: std::hash::RandomState,
    /// Sessions by client id (clean ones while connected, persistent ones for ever).
    sessions: Mutex<HashMap<Arc<str>, Arc<Session>>>,
    /// Exact topic → subscribers.
    exact: Vec<RwLock<HashMap<Arc<str>, Members>>>,
    /// Filter with wildcards → subscribers.
    wildcard: RwLock<HashMap<Arc<str>, Members>>,
    /// Topic → its retained message, and their total size.
    retained: RwLock<RetainedStore>,
    /// Caps on `retained`.
    retain_limits: RetainLimits,
    /// Live connections by host id.
    links: Vec<RwLock<HashMap<ConnectionId, Link>>>,
    /// Cap on each session's waiting messages.
    max_queued: usize,
    /// Cap on each session's messages sent and not yet acknowledged.
    max_inflight: usize,
    /// The instance's queued bytes.
    pressure: Arc<Pressure>,
}

impl Broker {
    /// An empty broker; sessions keep at most `max_queued` messages each; fan-outs count
    /// their bytes in `pressure`; retained messages are capped by `retain_limits`.
    pub fn new(max_queued: usize, pressure: Arc<Pressure>, retain_limits: RetainLimits) -> Broker {
        Broker {
            hasher: std::hash::RandomState::new(),
            sessions: Mutex::default(),
            exact: (0..SHARDS).map(|_| RwLock::default()).collect(),
            wildcard: RwLock::default(),
            retained: RwLock::default(),
            retain_limits,
            links: (0..SHARDS).map(|_| RwLock::default()).collect(),
            max_queued,
            max_inflight: crate::config::DEFAULT_MAX_INFLIGHT_MESSAGES,
            pressure,
        }
    }

    /// Sessions send at most `max_inflight` QoS 1/2 messages before acknowledgements (0: as
    /// many as packet ids allow); the rest wait in their queue.
    pub fn with_max_inflight(mut self, max_inflight: usize) -> Broker {
        self.max_inflight = max_inflight;
        self
    }

    /// The instance's queued bytes.
    pub fn pressure(&self) -> &Arc<Pressure> {
        &self.pressure
    }

    fn exact_shard(&self, topic: &str) -> &RwLock<HashMap<Arc<str>, Members>> {
        &self.exact[(self.hasher.hash_one(topic) % SHARDS as u64) as usize]
    }

    fn link_shard(&self, id: ConnectionId) -> &RwLock<HashMap<ConnectionId, Link>> {
        &self.links[(id.0 % SHARDS as u64) as usize]
    }

    /// Opens a session for a CONNECT: a clean session replaces any previous one (whose
    /// subscriptions are purged and whose live connection is closed); a persistent one is
    /// resumed if it exists (`Session::attach` then closes the connection it replaces).
    /// Returns the session and whether it was resumed ("session present").
    pub fn open_session(&self, client_id: &str, clean: bool) -> (Arc<Session>, bool) {
        let mut sessions = self.sessions.lock();
        let existing = sessions.get(client_id).cloned();
        match existing {
            Some(session) if !clean && !session.clean => (session, true),
            existing => {
                let client_id: Arc<str> = Arc::from(client_id);
                let session = Arc::new(Session::new(
                    client_id.clone(),
                    clean,
                    self.max_queued,
                    self.max_inflight,
                ));
                sessions.insert(client_id, session.clone());
                drop(sessions);
                if let Some(old) = existing {
                    if let Some(outbox) = old.outbox() {
                        outbox.close(Closing::silent(TAKEN_OVER), false);
                    }
                    self.purge(&old);
                }
                (session, false)
            }
        }
    }

    /// Connection `serial` of `session` ended. A clean session ends with it, and so does a
    /// session that a new one replaced; a persistent session stays (offline).
    pub fn close_session(&self, session: &Arc<Session>, serial: u64) {
        if !session.detach(serial) {
            // Another connection took this session over: it is still in use.
            return;
        }
        let mut sessions = self.sessions.lock();
        let current = sessions
            .get(&session.client_id)
            .is_some_and(|current| Arc::ptr_eq(current, session));
        if current && !session.clean {
            return;
        }
        if current {
            sessions.remove(&session.client_id);
        }
        drop(sessions);
        self.purge(session);
    }

    fn purge(&self, session: &Arc<Session>) {
        for filter in session.filters() {
            self.remove_member(&filter, session.key);
        }
    }

    /// Adds (or updates) a subscription. Returns the retained messages it matches: the caller
    /// sends them (`send_retained`) after the SUBACK.
    pub fn subscribe(&self, session: &Arc<Session>, filter: &str, qos: u8) -> Vec<Message> {
        let filter: Arc<str> = Arc::from(filter);
        session.subscribe(filter.clone(), qos);
        let entry = (session.clone(), qos);
        if topic::has_wildcards(&filter) {
            let mut table = self.wildcard.write();
            table
                .entry(filter.clone())
                .or_default()
                .insert(session.key, entry);
        } else {
            let mut shard = self.exact_shard(&filter).write();
            shard
                .entry(filter.clone())
                .or_default()
                .insert(session.key, entry);
        }
        let retained = self.retained.read();
        if topic::has_wildcards(&filter) {
            retained
                .messages
                .values()
                .filter(|message| topic::matches(&filter, &message.topic))
                .cloned()
                .collect()
        } else {
            retained
                .messages
                .get(&filter)
                .cloned()
                .into_iter()
                .collect()
        }
    }

    /// Sends retained messages to a new subscription granted `qos`, with the RETAIN flag set.
    pub fn send_retained(session: &Session, messages: &[Message], qos: u8) {
        for message in messages {
            session.deliver(message, message.qos.min(qos), true);
        }
    }

    /// Removes a subscription; unknown ones are ignored.
    pub fn unsubscribe(&self, session: &Arc<Session>, filter: &str) {
        if session.unsubscribe(filter) {
            self.remove_member(filter, session.key);
        }
    }

    fn remove_member(&self, filter: &str, key: u64) {
        let mut table = if topic::has_wildcards(filter) {
            self.wildcard.write()
        } else {
            self.exact_shard(filter).write()
        };
        if let Some(members) = table.get_mut(filter) {
            members.remove(&key);
            if members.is_empty() {
                table.remove(filter);
            }
        }
    }

    /// Stores `message` as its topic's retained message, or clears the topic's when the payload
    /// is empty. A message that would take the store over `maxRetainedMessages` or
    /// `maxRetainedBytes` is refused (MQTT 3.1.1 cannot tell the publisher; mosquitto's
    /// `retain_available false` closes it instead, which would punish one client for a
    /// broker-wide state), and the topic's previous retained message is cleared: it is
    /// superseded, and a later subscriber must not take a stale value for the current one.
    /// Clearing is always allowed.
    pub fn retain(&self, message: &Message) -> Retention {
        let mut store = self.retained.write();
        let store = &mut *store;
        let previous = store.messages.get(&message.topic).map(retained_size);
        if message.payload.is_empty() {
            if let Some(size) = previous {
                store.messages.remove(&message.topic);
                store.bytes -= size;
                store.warned = false;
            }
            return Retention::Kept;
        }
        let count = store.messages.len() + usize::from(previous.is_none());
        let bytes = store.bytes - previous.unwrap_or(0) + retained_size(message);
        if count > self.retain_limits.max_messages || bytes > self.retain_limits.max_bytes {
            if let Some(size) = previous {
                store.messages.remove(&message.topic);
                store.bytes -= size;
            }
            if !store.warned {
                store.warned = true;
                tracing::warn!(
                    topic = %message.topic,
                    retained_messages = store.messages.len(),
                    retained_bytes = store.bytes,
                    max_retained_messages = self.retain_limits.max_messages,
                    max_retained_bytes = self.retain_limits.max_bytes,
                    "retained-message store full: messages are delivered but not retained until some are cleared"
                );
            }
            return Retention::Refused;
        }
        store.bytes = bytes;
        store
            .messages
            .insert(message.topic.clone(), message.clone());
        Retention::Kept
    }

    /// Retained messages held and their bytes (tests, metrics).
    pub fn retained_usage(&self) -> (usize, usize) {
        let store = self.retained.read();
        (store.messages.len(), store.bytes)
    }

    /// Routes a client's (or a will's) message to every matching subscription, after storing
    /// or clearing the topic's retained message when `retain` is set (see `retain`).
    pub fn publish(&self, message: &Message, retain: bool) -> Fanout {
        if retain {
            self.retain(message);
        }
        let mut fanout = Fanout::default();
        let mut batch = self.pressure.batch();
        // One QoS 0 packet for every QoS 0 delivery, built on first use.
        let mut shared: Option<Bytes> = None;
        // QoS 0 packets are counted as deliveries by the batch; QoS 1 and 2 ones here.
        let mut acknowledged_sent = 0u64;
        let mut deliver = |session: &Session, granted: u8| {
            let qos = message.qos.min(granted);
            let delivered = if qos == 0 {
                let packet = shared.get_or_insert_with(|| {
                    encode::publish(&message.topic, &message.payload, 0, false, false, None)
                });
                session.push_shared(packet, &mut batch)
            } else {
                let delivered = session.deliver(message, qos, false);
                acknowledged_sent += u64::from(delivered == Delivered::Sent);
                delivered
            };
            fanout.count(delivered);
        };
        if let Some(members) = self.exact_shard(&message.topic).read().get(&message.topic) {
            for (session, granted) in members.values() {
                deliver(session, *granted);
            }
        }
        for (filter, members) in self.wildcard.read().iter() {
            if topic::matches(filter, &message.topic) {
                for (session, granted) in members.values() {
                    deliver(session, *granted);
                }
            }
        }
        self.pressure
            .counters()
            .add(Counter::Deliveries, acknowledged_sent);
        fanout
    }

    /// Kuzzle's `broadcast`: `payload` as a QoS 0 PUBLISH on each channel's topic, built once
    /// per channel and shared by the exact subscribers of that topic.
    pub fn broadcast<'c>(&self, channels: impl Iterator<Item = &'c str>, payload: &str) -> Fanout {
        let mut fanout = Fanout::default();
        let mut batch = self.pressure.batch();
        for channel in channels {
            let shard = self.exact_shard(channel).read();
            let Some(members) = shard.get(channel) else {
                continue;
            };
            let packet = encode::publish(channel, payload.as_bytes(), 0, false, false, None);
            for (session, _) in members.values() {
                fanout.count(session.push_shared(&packet, &mut batch));
            }
        }
        fanout
    }

    /// Registers a live connection for the hooks.
    pub fn insert_link(&self, id: ConnectionId, link: Link) {
        self.link_shard(id).write().insert(id, link);
    }

    /// The live connection with this host id, if it is one of ours.
    pub fn link(&self, id: ConnectionId) -> Option<Link> {
        self.link_shard(id).read().get(&id).cloned()
    }

    /// Forgets a live connection.
    pub fn remove_link(&self, id: ConnectionId) {
        self.link_shard(id).write().remove(&id);
    }

    /// Every live connection (shutdown).
    pub fn links(&self) -> Vec<Link> {
        self.links
            .iter()
            .flat_map(|shard| shard.read().values().cloned().collect::<Vec<_>>())
            .collect()
    }

    /// Subscribers of a filter (tests, metrics).
    pub fn subscriber_count(&self, filter: &str) -> usize {
        let table = if topic::has_wildcards(filter) {
            self.wildcard.read()
        } else {
            self.exact_shard(filter).read()
        };
        table.get(filter).map_or(0, HashMap::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn online(broker: &Broker, id: &str, clean: bool, serial: u64) -> (Arc<Session>, Arc<Outbox>) {
        let (session, _) = broker.open_session(id, clean);
        let outbox = Arc::new(crate::outbox::for_tests(1 << 20));
        session.attach(serial, outbox.clone());
        (session, outbox)
    }

    fn message(topic: &str, qos: u8) -> Message {
        Message {
            topic: Arc::from(topic),
            payload: Bytes::from_static(b"m"),
            qos,
        }
    }

    #[test]
    fn a_new_clean_session_closes_the_old_connection_and_keeps_its_own_subscriptions() {
        let broker = Broker::new(
            10,
            Arc::new(Pressure::unreported()),
            RetainLimits::UNLIMITED,
        );
        let (old, old_outbox) = online(&broker, "c", true, 1);
        broker.subscribe(&old, "t", 0);
        let (new, _) = online(&broker, "c", true, 2);
        assert_eq!(old_outbox.close_reason(), Some(TAKEN_OVER));
        broker.subscribe(&new, "t", 0);
        // The old connection's late cleanup must not touch the new session's subscription.
        broker.close_session(&old, 1);
        assert_eq!(broker.subscriber_count("t"), 1);
        assert_eq!(broker.publish(&message("t", 0), false).sent, 1);
        broker.close_session(&new, 2);
        assert_eq!(broker.subscriber_count("t"), 0);
    }

    #[test]
    fn a_persistent_session_outlives_its_connection() {
        let broker = Broker::new(
            10,
            Arc::new(Pressure::unreported()),
            RetainLimits::UNLIMITED,
        );
        let (session, _) = online(&broker, "p", false, 1);
        broker.subscribe(&session, "a/+", 1);
        broker.close_session(&session, 1);
        assert_eq!(broker.subscriber_count("a/+"), 1);
        broker.publish(&message("a/b", 1), false);
        assert_eq!(session.stored(), 1);
        let (resumed, present) = broker.open_session("p", false);
        assert!(present);
        assert!(Arc::ptr_eq(&resumed, &session));
        // A clean CONNECT with the same id discards it.
        broker.open_session("p", true);
        assert_eq!(broker.subscriber_count("a/+"), 0);
    }

    #[test]
    fn retained_messages_are_kept_replaced_and_cleared() {
        let broker = Broker::new(
            10,
            Arc::new(Pressure::unreported()),
            RetainLimits::UNLIMITED,
        );
        let (session, _) = online(&broker, "s", true, 1);
        broker.publish(&message("r/1", 1), true);
        broker.publish(&message("r/2", 0), true);
        assert_eq!(broker.subscribe(&session, "r/#", 0).len(), 2);
        assert_eq!(broker.subscribe(&session, "r/1", 0).len(), 1);
        broker.publish(
            &Message {
                payload: Bytes::new(),
                ..message("r/1", 0)
            },
            true,
        );
        assert_eq!(broker.subscribe(&session, "r/#", 0).len(), 1);
    }

    #[test]
    fn retained_messages_are_capped_in_count_and_bytes() {
        let limits = RetainLimits {
            max_messages: 2,
            max_bytes: 20,
        };
        let broker = Broker::new(10, Arc::new(Pressure::unreported()), limits);
        let sized = |topic: &str, payload: &'static [u8]| Message {
            topic: Arc::from(topic),
            payload: Bytes::from_static(payload),
            qos: 0,
        };
        assert_eq!(broker.retain(&sized("r/1", b"aaaa")), Retention::Kept);
        assert_eq!(broker.retain(&sized("r/2", b"bbbb")), Retention::Kept);
        assert_eq!(broker.retained_usage(), (2, 14));
        // A third topic is over the count; replacing one is not.
        assert_eq!(broker.retain(&sized("r/3", b"c")), Retention::Refused);
        assert_eq!(broker.retain(&sized("r/1", b"aaaaaaaa")), Retention::Kept);
        assert_eq!(broker.retained_usage(), (2, 18));
        // A replacement over the bytes is refused, and clears the superseded message.
        assert_eq!(
            broker.retain(&sized("r/2", b"bbbbbbbbbbbbbbb")),
            Retention::Refused
        );
        assert_eq!(broker.retained_usage(), (1, 11));
        // Clearing makes room.
        assert_eq!(broker.retain(&sized("r/3", b"c")), Retention::Kept);
        assert_eq!(broker.retain(&sized("r/1", b"")), Retention::Kept);
        assert_eq!(broker.retained_usage(), (1, 4));
        let none = Broker::new(
            10,
            Arc::new(Pressure::unreported()),
            RetainLimits {
                max_messages: 0,
                max_bytes: 100,
            },
        );
        assert_eq!(none.retain(&sized("r/1", b"a")), Retention::Refused);
    }

    #[test]
    fn notifications_reach_exact_subscribers_only() {
        let broker = Broker::new(
            10,
            Arc::new(Pressure::unreported()),
            RetainLimits::UNLIMITED,
        );
        let (exact, exact_outbox) = online(&broker, "e", true, 1);
        let (wild, wild_outbox) = online(&broker, "w", true, 2);
        broker.subscribe(&exact, "room-311", 0);
        broker.subscribe(&wild, "#", 0);
        assert_eq!(broker.broadcast(["room-311"].into_iter(), "{}").sent, 1);
        assert_eq!(exact_outbox.queued_frames(), 1);
        assert_eq!(wild_outbox.queued_frames(), 0);
    }
}
