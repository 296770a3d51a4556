//! Sessions by Engine.IO id, and Kuzzle connections and channel members (the kit's registry,
//! `switchyard_plugin_kit::registry`), for one instance.
//!
//! Hooks arrive concurrently from host threads, so the maps sit behind short locks, sharded.
//! Lock order: a session's `memberships` lock, then a channel shard, then a session's queue
//! (pushing); nothing takes them the other way round. No lock is held while touching a socket
//! or calling the host.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use switchyard_plugin_api::ConnectionId;
use switchyard_plugin_kit::pressure::Pressure;

use crate::packets::ChannelFrame;
use crate::session::Session;

/// Everything one instance knows about its clients.
#[derive(Debug, Default)]
pub struct Registry {
    /// Live sessions by Engine.IO id (polling requests and upgrades look them up).
    sessions: RwLock<HashMap<Arc<str>, Arc<Session>>>,
    /// Sessions that joined the main namespace, by their Kuzzle connection id, and channels.
    members: switchyard_plugin_kit::registry::Registry<Session>,
}

impl Registry {
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
        self.members.attach(session.clone(), id);
    }

    /// Unties the session's Kuzzle connection, dropping its memberships; returns it (to give to
    /// `remove_connection`) the first time only.
    pub fn detach(&self, session: &Session) -> Option<ConnectionId> {
        self.members.detach(session)
    }

    /// The session of a Kuzzle connection.
    pub fn connection(&self, id: ConnectionId) -> Option<Arc<Session>> {
        self.members.get(id)
    }

    /// `id` joins `channel`; idempotent; unknown or detached connections are ignored.
    pub fn join(&self, channel: &str, id: ConnectionId) {
        self.members.join(channel, id);
    }

    /// `id` leaves `channel`; unknown pairs are ignored.
    pub fn leave(&self, channel: &str, id: ConnectionId) {
        self.members.leave(channel, id);
    }

    /// Queues `payload` as the event `channel` to every member of each channel: one frame per
    /// channel, shared. Returns how many frames were queued. The bytes are added to `pressure`
    /// once, at the end.
    pub fn broadcast<'c>(
        &self,
        pressure: &Pressure,
        channels: impl Iterator<Item = &'c str>,
        payload: &str,
    ) -> usize {
        let mut batch = pressure.batch();
        self.members.fan_out(
            channels,
            |channel| ChannelFrame::build(channel, payload),
            |frame, session| {
                session.push_counted(frame.clone(), &mut batch);
            },
        )
    }

    /// Members of `channel` (tests, metrics).
    pub fn member_count(&self, channel: &str) -> usize {
        self.members.member_count(channel)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::session::{Client, Transport};
    use switchyard_plugin_kit::ws::frame::payload_of;

    fn connect(registry: &Registry, id: u64) -> Arc<Session> {
        let session = Arc::new(Session::new(
            format!("s{id}"),
            String::new(),
            Client::default(),
            Transport::Polling,
            &switchyard_plugin_kit::flow::Flow::default(),
            Arc::new(Pressure::unreported()),
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
            registry.broadcast(
                &Pressure::unreported(),
                ["c1", "c2", "nobody"].into_iter(),
                r#"{"x":1}"#
            ),
            3
        );
        assert_eq!(drain(&a), [r#"42["c1",{"x":1}]"#, r#"42["c2",{"x":1}]"#]);
        assert_eq!(drain(&b), [r#"42["c1",{"x":1}]"#]);
    }

    #[test]
    fn detaching_drops_memberships_once() {
        let registry = Registry::default();
        let b = connect(&registry, 2);
        registry.join("c", ConnectionId(2));
        assert_eq!(registry.detach(&b), Some(ConnectionId(2)));
        assert_eq!(registry.detach(&b), None, "detached once");
        assert_eq!(registry.member_count("c"), 0);
    }
}
