//! Sessions by Engine.IO id, Kuzzle connections by id, and channel members, for one instance.
//!
//! Hooks arrive concurrently from host threads, so the maps sit behind short locks, sharded.
//! Lock order: a session's `kuzzle` lock, then a channel shard, then a session's queue (pushing);
//! nothing takes them the other way round. No lock is held while touching a socket or calling
//! the host.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use parking_lot::RwLock;
use switchyard_plugin_api::ConnectionId;

use crate::packets::ChannelFrame;
use crate::session::Session;

const SHARDS: usize = 16;

type Members = HashMap<ConnectionId, Arc<Session>>;

/// Everything one instance knows about its clients.
#[derive(Debug)]
pub struct Registry {
    /// Hashes channel names to shards.
    hasher: std::hash::RandomState,
    /// Live sessions by Engine.IO id (polling requests and upgrades look them up).
    sessions: RwLock<HashMap<Arc<str>, Arc<Session>>>,
    /// Sessions that joined the main namespace, by their Kuzzle connection id.
    connections: Vec<RwLock<HashMap<ConnectionId, Arc<Session>>>>,
    /// Channel → members. A channel without members is removed.
    channels: Vec<RwLock<HashMap<Arc<str>, Members>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            hasher: std::hash::RandomState::new(),
            sessions: RwLock::default(),
            connections: (0..SHARDS).map(|_| RwLock::default()).collect(),
            channels: (0..SHARDS).map(|_| RwLock::default()).collect(),
        }
    }
}

impl Registry {
    fn connection_shard(&self, id: ConnectionId) -> &RwLock<Members> {
        &self.connections[(id.0 % SHARDS as u64) as usize]
    }

    fn channel_shard(&self, channel: &str) -> &RwLock<HashMap<Arc<str>, Members>> {
        &self.channels[(self.hasher.hash_one(channel) % SHARDS as u64) as usize]
    }

    /// Registers a new session.
    pub fn insert_session(&self, session: Arc<Session>) {
        self.sessions.write().insert(session.sid.clone(), session);
    }

    /// The live session with this id.
    pub fn session(&self, sid: &str) -> Option<Arc<Session>> {
        self.sessions.read().get(sid).cloned()
    }

    /// Forgets a session (its connection must be detached first). Idempotent.
    pub fn remove_session(&self, sid: &str) {
        self.sessions.write().remove(sid);
    }

    /// Number of live sessions (tests, metrics).
    pub fn session_count(&self) -> usize {
        self.sessions.read().len()
    }

    /// Ties a Kuzzle connection to a session (the main namespace was joined).
    pub fn attach(&self, session: &Arc<Session>, id: ConnectionId) {
        let mut kuzzle = session.kuzzle.lock();
        kuzzle.connection = Some(id);
        kuzzle.channels.clear();
        self.connection_shard(id)
            .write()
            .insert(id, session.clone());
    }

    /// Unties the session's Kuzzle connection, dropping its memberships; returns it (to give to
    /// `remove_connection`) the first time only.
    pub fn detach(&self, session: &Session) -> Option<ConnectionId> {
        let mut kuzzle = session.kuzzle.lock();
        let id = kuzzle.connection.take()?;
        for channel in std::mem::take(&mut kuzzle.channels) {
            self.remove_member(&channel, id);
        }
        drop(kuzzle);
        self.connection_shard(id).write().remove(&id);
        Some(id)
    }

    /// The session of a Kuzzle connection.
    pub fn connection(&self, id: ConnectionId) -> Option<Arc<Session>> {
        self.connection_shard(id).read().get(&id).cloned()
    }

    /// `id` joins `channel`; idempotent; unknown or detached connections are ignored.
    pub fn join(&self, channel: &str, id: ConnectionId) {
        let Some(session) = self.connection(id) else {
            return;
        };
        let mut kuzzle = session.kuzzle.lock();
        if kuzzle.connection != Some(id) || kuzzle.channels.iter().any(|name| &**name == channel) {
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
            .insert(id, session.clone());
        kuzzle.channels.push(name);
    }

    /// `id` leaves `channel`; unknown pairs are ignored.
    pub fn leave(&self, channel: &str, id: ConnectionId) {
        if let Some(session) = self.connection(id) {
            let mut kuzzle = session.kuzzle.lock();
            if kuzzle.connection == Some(id) {
                kuzzle.channels.retain(|name| &**name != channel);
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

    /// Queues `payload` as the event `channel` to every member of each channel: one frame per
    /// channel, shared. Returns how many frames were queued.
    pub fn broadcast<'c>(&self, channels: impl Iterator<Item = &'c str>, payload: &str) -> usize {
        let mut delivered = 0;
        for channel in channels {
            let shard = self.channel_shard(channel).read();
            let Some(members) = shard.get(channel) else {
                continue;
            };
            let frame = ChannelFrame::build(channel, payload);
            for session in members.values() {
                session.push(frame.clone());
                delivered += 1;
            }
        }
        delivered
    }

    /// Members of `channel` (tests, metrics).
    pub fn member_count(&self, channel: &str) -> usize {
        self.channel_shard(channel)
            .read()
            .get(channel)
            .map_or(0, HashMap::len)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::frame::payload_of;
    use crate::session::{Client, Transport};

    fn connect(registry: &Registry, id: u64) -> Arc<Session> {
        let session = Arc::new(Session::new(
            format!("s{id}"),
            String::new(),
            Client::default(),
            Transport::Polling,
            1 << 20,
        ));
        registry.insert_session(session.clone());
        registry.attach(&session, ConnectionId(id));
        session
    }

    fn drain(session: &Session) -> Vec<String> {
        let mut batch = VecDeque::new();
        session.take(&mut batch);
        batch
            .iter()
            .map(|frame| String::from_utf8(payload_of(frame).to_vec()).unwrap())
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
        registry.join("c1", ConnectionId(99));
        assert_eq!(registry.member_count("c1"), 2);
        assert_eq!(
            registry.broadcast(["c1", "c2", "nobody"].into_iter(), r#"{"x":1}"#),
            3
        );
        assert_eq!(drain(&a), [r#"42["c1",{"x":1}]"#, r#"42["c2",{"x":1}]"#]);
        assert_eq!(drain(&b), [r#"42["c1",{"x":1}]"#]);
    }

    #[test]
    fn leaving_and_detaching_remove_memberships() {
        let registry = Registry::default();
        let a = connect(&registry, 1);
        let b = connect(&registry, 2);
        registry.join("c", ConnectionId(1));
        registry.join("c", ConnectionId(2));
        registry.join("d", ConnectionId(2));
        registry.leave("c", ConnectionId(1));
        registry.leave("never", ConnectionId(77));
        assert_eq!(registry.broadcast(["c"].into_iter(), "{}"), 1);
        assert!(drain(&a).is_empty());

        assert_eq!(registry.detach(&b), Some(ConnectionId(2)));
        assert_eq!(registry.detach(&b), None, "detached once");
        assert_eq!(registry.member_count("c"), 0);
        assert_eq!(registry.member_count("d"), 0);
        registry.join("c", ConnectionId(2));
        assert_eq!(registry.member_count("c"), 0, "a late join is ignored");
    }
}
