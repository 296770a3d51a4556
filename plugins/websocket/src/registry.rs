//! The WebSocket plugin's connections as the kit's registry holds them, and fan-out.
//!
//! Joins, leaves and disconnects are the kit's (`switchyard_plugin_kit::registry`); what is
//! WebSocket's own is the connection (its outbox, whether it gets compressed frames) and the
//! frames a broadcast queues.

use std::sync::Arc;

use switchyard_plugin_api::ConnectionId;
use switchyard_plugin_kit::flow::{Flow, Pending};
use switchyard_plugin_kit::outbox::Outbox;
use switchyard_plugin_kit::pressure::Pressure;
use switchyard_plugin_kit::registry::{Member, Memberships};
use switchyard_plugin_kit::ws::frame;

use crate::replies::ChannelFrames;

/// Connections and channel memberships of one instance.
pub type Registry = switchyard_plugin_kit::registry::Registry<Connection>;

/// A live connection, as hooks see it.
#[derive(Debug)]
pub struct Connection {
    /// The host's id for it.
    pub id: ConnectionId,
    /// Its outgoing queue.
    pub outbox: Outbox,
    /// permessage-deflate was negotiated: it gets compressed frames.
    pub deflate: bool,
    /// Its requests awaiting answers: it is not read while there are too many.
    pub pending: Pending,
    /// Channels it joined, so closing it removes its memberships even if the host does not ask.
    memberships: Memberships,
}

impl Connection {
    /// A new connection, in no channel, its queued bytes counted in `pressure`.
    pub fn new(
        id: ConnectionId,
        flow: &Flow,
        pressure: Arc<Pressure>,
        deflate: bool,
    ) -> Connection {
        Connection {
            id,
            outbox: frame::outbox(
                id,
                flow.max_queued_bytes,
                flow.slow_consumer_timeout,
                pressure,
            ),
            deflate,
            pending: Pending::new(flow.max_pending_requests),
            memberships: Memberships::default(),
        }
    }
}

impl Member for Connection {
    fn memberships(&self) -> &Memberships {
        &self.memberships
    }
}

impl AsRef<Outbox> for Connection {
    fn as_ref(&self) -> &Outbox {
        &self.outbox
    }
}

/// Registers a connection (after the handshake).
pub fn insert(registry: &Registry, connection: Arc<Connection>) {
    let id = connection.id;
    registry.attach(connection, id);
}

/// Queues `payload` (with `room` = the channel) to every member of each channel. Returns how
/// many frames were queued. One frame per channel (and per compression kind) is built. The
/// bytes queued are added to `pressure` once, at the end.
pub fn broadcast<'c>(
    registry: &Registry,
    pressure: &Pressure,
    channels: impl Iterator<Item = &'c str>,
    payload: &str,
) -> usize {
    let mut batch = pressure.batch();
    registry.fan_out(
        channels,
        |channel| ChannelFrames::new(payload, channel),
        |frames, connection| {
            connection
                .outbox
                .push_counted(frames.get(connection.deflate), &mut batch);
        },
    )
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use switchyard_plugin_kit::outbox::Taken;

    fn pressure() -> Arc<Pressure> {
        Arc::new(Pressure::unreported())
    }

    fn connect(registry: &Registry, id: u64) -> Arc<Connection> {
        let connection = Arc::new(Connection::new(
            ConnectionId(id),
            &Flow::default(),
            pressure(),
            false,
        ));
        insert(registry, connection.clone());
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
        assert_eq!(
            broadcast(
                &registry,
                &Pressure::unreported(),
                ["c1", "c2", "nobody"].into_iter(),
                r#"{"x":1}"#
            ),
            3
        );
        assert_eq!(
            drain(&a),
            [r#"{"x":1,"room":"c1"}"#, r#"{"x":1,"room":"c2"}"#]
        );
        assert_eq!(drain(&b), [r#"{"x":1,"room":"c1"}"#]);
        registry.remove(ConnectionId(1));
        assert_eq!(
            broadcast(&registry, &Pressure::unreported(), ["c2"].into_iter(), "{}"),
            0
        );
    }

    #[test]
    fn a_full_outbox_does_not_stop_the_others() {
        let registry = Registry::default();
        let flow = Flow {
            max_queued_bytes: 10,
            ..Flow::default()
        };
        let slow = Arc::new(Connection::new(ConnectionId(1), &flow, pressure(), false));
        insert(&registry, slow.clone());
        let fast = connect(&registry, 2);
        registry.join("c", ConnectionId(1));
        registry.join("c", ConnectionId(2));
        for _ in 0..3 {
            broadcast(
                &registry,
                &Pressure::unreported(),
                ["c"].into_iter(),
                r#"{"a":"bcdefgh"}"#,
            );
        }
        assert_eq!(drain(&fast).len(), 3);
        let mut batch = VecDeque::new();
        assert!(matches!(slow.outbox.take(&mut batch), Taken::Close(_)));
        assert_eq!(slow.outbox.close_code(), Some(1011));
    }
}
