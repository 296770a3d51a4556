//! Who is connected and who joined which channel, for one plugin instance.
//!
//! Hooks arrive concurrently from host threads, so both maps are sharded behind short locks.
//! Lock order: a connection's `channels` lock, then a channel shard; nothing takes them the other
//! way round. No lock is ever held while touching a socket: delivering is pushing a `Bytes`
//! handle into an outbox.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use switchyard_plugin_api::ConnectionId;

use crate::outbox::Outbox;
use crate::replies::ChannelFrames;

const SHARDS: usize = 32;

/// A live connection, as hooks see it.
#[derive(Debug)]
pub struct Connection {
    /// The host's id for it.
    pub id: ConnectionId,
    /// Its outgoing queue.
    pub outbox: Outbox,
    /// permessage-deflate was negotiated: it gets compressed frames.
    pub deflate: bool,
    /// Channels it joined, so closing it removes its memberships even if the host does not ask;
    /// `None` once closed, so a late `join_channel` cannot leak a membership.
    channels: Mutex<Option<Vec<Arc<str>>>>,
}

impl Connection {
    /// A new connection, in no channel.
    pub fn new(id: ConnectionId, max_queued_bytes: usize, deflate: bool) -> Connection {
        Connection {
            id,
            outbox: Outbox::new(max_queued_bytes),
            deflate,
            channels: Mutex::new(Some(Vec::new())),
        }
    }
}

type Members = HashMap<ConnectionId, Arc<Connection>>;

/// Connections and channel memberships of one instance.
#[derive(Debug)]
pub struct Registry {
    /// Hashes channel names to shards (and keys in them).
    hasher: std::hash::RandomState,
    /// Live connections by id.
    connections: Vec<RwLock<HashMap<ConnectionId, Arc<Connection>>>>,
    /// Channel name → members. A channel without members is removed.
    channels: Vec<RwLock<HashMap<Arc<str>, Members>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            hasher: std::hash::RandomState::new(),
            connections: (0..SHARDS).map(|_| RwLock::default()).collect(),
            channels: (0..SHARDS).map(|_| RwLock::default()).collect(),
        }
    }
}

impl Registry {
    fn connection_shard(
        &self,
        id: ConnectionId,
    ) -> &RwLock<HashMap<ConnectionId, Arc<Connection>>> {
        &self.connections[(id.0 % SHARDS as u64) as usize]
    }

    fn channel_shard(&self, channel: &str) -> &RwLock<HashMap<Arc<str>, Members>> {
        &self.channels[shard_of(&self.hasher, channel)]
    }

    /// Registers a connection (after the handshake).
    pub fn insert(&self, connection: Arc<Connection>) {
        self.connection_shard(connection.id)
            .write()
            .insert(connection.id, connection);
    }

    /// The live connection with this id, if it belongs to this instance.
    pub fn get(&self, id: ConnectionId) -> Option<Arc<Connection>> {
        self.connection_shard(id).read().get(&id).cloned()
    }

    /// Forgets a connection and all its memberships. Idempotent.
    pub fn remove(&self, id: ConnectionId) {
        let Some(connection) = self.connection_shard(id).write().remove(&id) else {
            return;
        };
        let joined = connection.channels.lock().take().unwrap_or_default();
        for channel in joined {
            self.remove_member(&channel, id);
        }
    }

    /// `id` joins `channel`; joining twice is a no-op, unknown connections are ignored.
    pub fn join(&self, channel: &str, id: ConnectionId) {
        let Some(connection) = self.get(id) else {
            return;
        };
        let mut joined = connection.channels.lock();
        let Some(joined) = joined.as_mut() else {
            return;
        };
        if joined.iter().any(|name| &**name == channel) {
            return;
        }
        let mut shard = self.channel_shard(channel).write();
        let name = match shard.get_key_value(channel) {
            Some((name, _)) => name.clone(),
            None => Arc::from(channel),
        };
        shard
            .entry(name.clone())
            .or_default()
            .insert(id, connection.clone());
        joined.push(name);
    }

    /// `id` leaves `channel`; unknown pairs are ignored.
    pub fn leave(&self, channel: &str, id: ConnectionId) {
        if let Some(connection) = self.get(id) {
            if let Some(joined) = connection.channels.lock().as_mut() {
                joined.retain(|name| &**name != channel);
            }
        }
        self.remove_member(channel, id);
    }

    fn remove_member(&self, channel: &str, id: ConnectionId) {
        let mut shard = self.channel_shard(channel).write();
        if let Some(members) = shard.get_mut(channel) {
            members.remove(&id);
            if members.is_empty() {
                shard.remove(channel);
            }
        }
    }

    /// Queues `payload` (with `room` = the channel) to every member of each channel. Returns how
    /// many frames were queued. One frame per channel (and per compression kind) is built.
    pub fn broadcast<'c>(&self, channels: impl Iterator<Item = &'c str>, payload: &str) -> usize {
        let mut delivered = 0;
        for channel in channels {
            let shard = self.channel_shard(channel).read();
            let Some(members) = shard.get(channel) else {
                continue;
            };
            let mut frames = ChannelFrames::new(payload, channel);
            for connection in members.values() {
                connection.outbox.push(frames.get(connection.deflate));
                delivered += 1;
            }
        }
        delivered
    }

    /// Number of members of `channel` (tests, metrics).
    pub fn member_count(&self, channel: &str) -> usize {
        self.channel_shard(channel)
            .read()
            .get(channel)
            .map_or(0, HashMap::len)
    }
}

fn shard_of(hasher: &impl BuildHasher, key: &(impl Hash + ?Sized)) -> usize {
    (hasher.hash_one(key) % SHARDS as u64) as usize
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::outbox::Taken;

    fn connect(registry: &Registry, id: u64) -> Arc<Connection> {
        let connection = Arc::new(Connection::new(ConnectionId(id), 1 << 20, false));
        registry.insert(connection.clone());
        connection
    }

    fn drain(connection: &Connection) -> Vec<String> {
        let mut batch = VecDeque::new();
        connection.outbox.take(&mut batch);
        batch
            .iter()
            .map(|frame| String::from_utf8(frame[2..].to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn broadcasts_reach_members_once_per_channel() {
        let registry = Registry::default();
        let a = connect(&registry, 1);
        let b = connect(&registry, 2);
        registry.join("c1", ConnectionId(1));
        registry.join("c1", ConnectionId(1));
        registry.join("c2", ConnectionId(1));
        registry.join("c1", ConnectionId(2));
        registry.join("c1", ConnectionId(99)); // not ours: ignored
        assert_eq!(registry.member_count("c1"), 2);

        assert_eq!(
            registry.broadcast(["c1", "c2", "nobody"].into_iter(), r#"{"x":1}"#),
            3
        );
        assert_eq!(
            drain(&a),
            [r#"{"x":1,"room":"c1"}"#, r#"{"x":1,"room":"c2"}"#]
        );
        assert_eq!(drain(&b), [r#"{"x":1,"room":"c1"}"#]);
    }

    #[test]
    fn leaving_and_closing_remove_memberships() {
        let registry = Registry::default();
        let a = connect(&registry, 1);
        connect(&registry, 2);
        registry.join("c", ConnectionId(1));
        registry.join("c", ConnectionId(2));
        registry.join("d", ConnectionId(2));
        registry.leave("c", ConnectionId(1));
        registry.leave("c", ConnectionId(1));
        registry.leave("never", ConnectionId(77));
        assert_eq!(registry.broadcast(["c"].into_iter(), "{}"), 1);
        assert!(drain(&a).is_empty());

        registry.remove(ConnectionId(2));
        registry.remove(ConnectionId(2));
        assert_eq!(registry.member_count("c"), 0);
        assert_eq!(registry.member_count("d"), 0);
        registry.join("c", ConnectionId(2)); // late join after close: ignored
        assert_eq!(registry.member_count("c"), 0);
        assert!(registry.get(ConnectionId(2)).is_none());
    }

    #[test]
    fn a_full_outbox_does_not_stop_the_others() {
        let registry = Registry::default();
        let slow = Arc::new(Connection::new(ConnectionId(1), 10, false));
        registry.insert(slow.clone());
        let fast = connect(&registry, 2);
        registry.join("c", ConnectionId(1));
        registry.join("c", ConnectionId(2));
        for _ in 0..3 {
            registry.broadcast(["c"].into_iter(), r#"{"a":"bcdefgh"}"#);
        }
        assert_eq!(drain(&fast).len(), 3);
        let mut batch = VecDeque::new();
        assert!(matches!(slow.outbox.take(&mut batch), Taken::Close(_)));
    }
}
