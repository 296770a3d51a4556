//! Who is connected and who joined which channel, for one plugin instance.
//!
//! Hooks arrive concurrently from host threads, so both maps are sharded behind short locks.
//! Lock order: a member's `Memberships` lock, then a channel shard; nothing takes them the other
//! way round. No lock is ever held while touching a socket: delivering is pushing a `Bytes`
//! handle into an outbox.
//!
//! Every operation is O(1) in the number of channels a connection joined and of members a
//! channel has (issue 19): a connection keeps its channels in a set, a channel its members in a
//! map. Leaving all channels at disconnect is O(channels joined).

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::Arc;

use parking_lot::{MappedRwLockReadGuard, Mutex, RwLock, RwLockReadGuard};
use switchyard_plugin_api::ConnectionId;

const SHARDS: usize = 32;

/// A member's side of the registry: its connection id while attached, and the channels it
/// joined, so detaching removes its memberships even if the host does not ask. One lock, so a
/// late `join` after a detach cannot leak a membership.
#[derive(Debug, Default)]
pub struct Memberships {
    /// `None` while not attached (never, or no longer).
    state: Mutex<Option<Joined>>,
}

#[derive(Debug)]
struct Joined {
    /// The host's id of the attached connection.
    connection: ConnectionId,
    /// Channels joined, each name shared with the channel map's key.
    channels: HashSet<Arc<str>>,
}

impl Memberships {
    /// The attached connection, if any.
    pub fn connection(&self) -> Option<ConnectionId> {
        self.state.lock().as_ref().map(|joined| joined.connection)
    }

    /// Channels joined (tests, metrics).
    pub fn channel_count(&self) -> usize {
        self.state
            .lock()
            .as_ref()
            .map_or(0, |joined| joined.channels.len())
    }
}

/// What the registry holds: anything with `Memberships` (a WebSocket connection, a Socket.io
/// session).
pub trait Member: Send + Sync {
    /// This member's memberships.
    fn memberships(&self) -> &Memberships;
}

/// The members of one channel, by connection id.
pub type Members<M> = HashMap<ConnectionId, Arc<M>>;

/// Connections and channel memberships of one instance.
#[derive(Debug)]
pub struct Registry<M> {
    /// Hashes channel names to shards (and keys in them).
    hasher: std::hash::RandomState,
    /// Attached members by connection id.
    connections: Vec<RwLock<HashMap<ConnectionId, Arc<M>>>>,
    /// Channel name → members. A channel without members is removed.
    channels: Vec<RwLock<HashMap<Arc<str>, Members<M>>>>,
}

impl<M> Default for Registry<M> {
    fn default() -> Self {
        Registry {
            hasher: std::hash::RandomState::new(),
            connections: (0..SHARDS).map(|_| RwLock::default()).collect(),
            channels: (0..SHARDS).map(|_| RwLock::default()).collect(),
        }
    }
}

impl<M: Member> Registry<M> {
    fn connection_shard(&self, id: ConnectionId) -> &RwLock<HashMap<ConnectionId, Arc<M>>> {
        &self.connections[(id.0 % SHARDS as u64) as usize]
    }

    fn channel_shard(&self, channel: &str) -> &RwLock<HashMap<Arc<str>, Members<M>>> {
        &self.channels[(self.hasher.hash_one(channel) % SHARDS as u64) as usize]
    }

    /// Ties `member` to connection `id`, in no channel (after the handshake, or when a Socket.io
    /// session joins the main namespace).
    pub fn attach(&self, member: Arc<M>, id: ConnectionId) {
        *member.memberships().state.lock() = Some(Joined {
            connection: id,
            channels: HashSet::new(),
        });
        self.connection_shard(id).write().insert(id, member);
    }

    /// Unties `member` from its connection, dropping its memberships; returns the connection id
    /// the first time only (to give to the host's `remove_connection`).
    pub fn detach(&self, member: &M) -> Option<ConnectionId> {
        let mut state = member.memberships().state.lock();
        let joined = state.take()?;
        for channel in &joined.channels {
            self.remove_member(channel, joined.connection);
        }
        drop(state);
        self.connection_shard(joined.connection)
            .write()
            .remove(&joined.connection);
        Some(joined.connection)
    }

    /// Forgets connection `id` and all its memberships. Idempotent.
    pub fn remove(&self, id: ConnectionId) {
        if let Some(member) = self.get(id) {
            self.detach(&member);
        }
    }

    /// The attached member with this connection id, if it belongs to this instance.
    pub fn get(&self, id: ConnectionId) -> Option<Arc<M>> {
        self.connection_shard(id).read().get(&id).cloned()
    }

    /// `id` joins `channel`; joining twice is a no-op, unknown or detached connections are
    /// ignored.
    pub fn join(&self, channel: &str, id: ConnectionId) {
        let Some(member) = self.get(id) else {
            return;
        };
        let mut state = member.memberships().state.lock();
        let Some(joined) = state.as_mut().filter(|joined| joined.connection == id) else {
            return;
        };
        if joined.channels.contains(channel) {
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
            .insert(id, member.clone());
        joined.channels.insert(name);
    }

    /// `id` leaves `channel`; unknown pairs are ignored.
    pub fn leave(&self, channel: &str, id: ConnectionId) {
        if let Some(member) = self.get(id) {
            let mut state = member.memberships().state.lock();
            if let Some(joined) = state.as_mut().filter(|joined| joined.connection == id) {
                joined.channels.remove(channel);
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

    /// The members of `channel`, read-locked (its shard) until the guard is dropped: push into
    /// their outboxes, nothing slower.
    pub fn members(&self, channel: &str) -> Option<MappedRwLockReadGuard<'_, Members<M>>> {
        RwLockReadGuard::try_map(self.channel_shard(channel).read(), |shard| {
            shard.get(channel)
        })
        .ok()
    }

    /// Delivers to every member of each channel, under the channel's shard read lock:
    /// `prepare` runs once per channel that has members (build its frame there), `deliver` once
    /// per member (push the frame into its outbox, nothing slower). Returns how many members
    /// were reached.
    pub fn fan_out<'c, T>(
        &self,
        channels: impl Iterator<Item = &'c str>,
        mut prepare: impl FnMut(&'c str) -> T,
        mut deliver: impl FnMut(&mut T, &M),
    ) -> usize {
        let mut delivered = 0;
        for channel in channels {
            let Some(members) = self.members(channel) else {
                continue;
            };
            let mut prepared = prepare(channel);
            for member in members.values() {
                deliver(&mut prepared, member);
            }
            delivered += members.len();
        }
        delivered
    }

    /// Number of members of `channel` (tests, metrics).
    pub fn member_count(&self, channel: &str) -> usize {
        self.members(channel).map_or(0, |members| members.len())
    }

    /// Number of attached connections (tests, metrics).
    pub fn connection_count(&self) -> usize {
        self.connections
            .iter()
            .map(|shard| shard.read().len())
            .sum()
    }

    /// Checks that both sides agree: every member of a channel is attached and lists the
    /// channel, every channel a member lists has it as a member, no channel is empty (tests).
    pub fn check_consistency(&self) -> Result<(), String> {
        let mut listed = 0;
        for shard in &self.connections {
            for (id, member) in shard.read().iter() {
                let state = member.memberships().state.lock();
                let Some(joined) = state.as_ref().filter(|joined| joined.connection == *id) else {
                    return Err(format!(
                        "connection {} is registered but not attached",
                        id.0
                    ));
                };
                for channel in &joined.channels {
                    if !self
                        .members(channel)
                        .is_some_and(|members| members.contains_key(id))
                    {
                        return Err(format!("{} lists {channel:?} but is not in it", id.0));
                    }
                }
                listed += joined.channels.len();
            }
        }
        let mut memberships = 0;
        for shard in &self.channels {
            for (channel, members) in shard.read().iter() {
                if members.is_empty() {
                    return Err(format!("channel {channel:?} is empty but kept"));
                }
                for id in members.keys() {
                    if self.get(*id).is_none() {
                        return Err(format!("{channel:?} has {} which is gone", id.0));
                    }
                }
                memberships += members.len();
            }
        }
        if listed != memberships {
            return Err(format!(
                "{listed} memberships listed by connections, {memberships} by channels"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default)]
    struct TestMember {
        memberships: Memberships,
    }

    impl Member for TestMember {
        fn memberships(&self) -> &Memberships {
            &self.memberships
        }
    }

    fn connect(registry: &Registry<TestMember>, id: u64) -> Arc<TestMember> {
        let member = Arc::new(TestMember::default());
        registry.attach(member.clone(), ConnectionId(id));
        member
    }

    fn member_ids(registry: &Registry<TestMember>, channel: &str) -> Vec<u64> {
        let mut ids: Vec<u64> = registry
            .members(channel)
            .map(|members| members.keys().map(|id| id.0).collect())
            .unwrap_or_default();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn joins_are_idempotent_and_unknown_connections_ignored() {
        let registry = Registry::default();
        let a = connect(&registry, 1);
        connect(&registry, 2);
        registry.join("c1", ConnectionId(1));
        registry.join("c1", ConnectionId(1));
        registry.join("c2", ConnectionId(1));
        registry.join("c1", ConnectionId(2));
        registry.join("c1", ConnectionId(99));
        assert_eq!(member_ids(&registry, "c1"), [1, 2]);
        assert_eq!(member_ids(&registry, "c2"), [1]);
        assert_eq!(a.memberships.channel_count(), 2);
        registry.check_consistency().unwrap();
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
        registry.leave("c", ConnectionId(1));
        registry.leave("never", ConnectionId(77));
        assert_eq!(member_ids(&registry, "c"), [2]);
        assert_eq!(a.memberships.channel_count(), 0);
        registry.check_consistency().unwrap();

        assert_eq!(registry.detach(&b), Some(ConnectionId(2)));
        assert_eq!(registry.detach(&b), None, "detached once");
        registry.remove(ConnectionId(2));
        assert_eq!(registry.member_count("c"), 0);
        assert_eq!(registry.member_count("d"), 0);
        registry.join("c", ConnectionId(2));
        assert_eq!(registry.member_count("c"), 0, "a late join is ignored");
        assert!(registry.get(ConnectionId(2)).is_none());
        assert_eq!(b.memberships.connection(), None);
        registry.check_consistency().unwrap();
    }

    #[test]
    fn a_reattached_member_starts_in_no_channel() {
        let registry = Registry::default();
        let a = connect(&registry, 1);
        registry.join("c", ConnectionId(1));
        registry.detach(&a);
        registry.attach(a.clone(), ConnectionId(3));
        registry.join("c", ConnectionId(1));
        assert_eq!(registry.member_count("c"), 0, "the old id is gone");
        registry.join("d", ConnectionId(3));
        assert_eq!(member_ids(&registry, "d"), [3]);
        registry.check_consistency().unwrap();
    }

    /// Issue 19, item 1: `join` scanned the connection's channel list, so a connection's n-th
    /// join cost O(n). With sets, 100,000 joins and one disconnect finish at once.
    #[test]
    fn issue_19_a_hundred_thousand_joins_then_a_disconnect() {
        let registry = Registry::default();
        let busy = connect(&registry, 1);
        let other = connect(&registry, 2);
        for channel in 0..100_000 {
            registry.join(&format!("channel-{channel}"), ConnectionId(1));
        }
        for channel in 0..100_000 {
            registry.join(&format!("channel-{channel}"), ConnectionId(1));
        }
        for channel in (0..100_000).step_by(10) {
            registry.join(&format!("channel-{channel}"), ConnectionId(2));
        }
        assert_eq!(busy.memberships.channel_count(), 100_000);
        assert_eq!(registry.member_count("channel-0"), 2);
        assert_eq!(registry.member_count("channel-1"), 1);
        registry.check_consistency().unwrap();

        registry.remove(ConnectionId(1));
        assert_eq!(busy.memberships.channel_count(), 0);
        assert_eq!(registry.member_count("channel-1"), 0);
        assert_eq!(member_ids(&registry, "channel-0"), [2]);
        assert_eq!(other.memberships.channel_count(), 10_000);
        assert_eq!(registry.connection_count(), 1);
        registry.check_consistency().unwrap();
    }
}
