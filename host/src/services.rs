//! What an action may use: the host's services, without the entry point.
//!
//! Controllers receive `&Services` (through their context), never the entry point: they can be
//! unit-tested with a `Services` and no plugin, no thread, no running host. Services that may
//! block (storage, password hashing) are not reachable from here: only an action declared
//! `Blocking` gets them (`api::action::BlockingContext`), and it runs on the blocking pool.

use std::sync::Arc;
use std::time::Instant;

use switchyard_plugin_api::ConnectionId;

use switchyard_storage::{Storage, WriteDone};

use crate::cluster::{Cluster, Contents, Destination, Inbound, UserInbound};
use crate::config::{Config, LibrarySpec};
use crate::connections::Connections;
use crate::execution::OnBlockingPool;
use crate::listeners::Listeners;
use crate::plugin::registry::Protocols;
use crate::pressure::Pressure;
use crate::realtime::{
    Broadcast, Departure, DocumentEvent, Realtime, RoomCount, Scope, UserChange, UserEvent,
};
use crate::security::{Gatekeeper, Security, SecuritySettings};

/// The host's in-memory services.
pub struct Services {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Declared connections.
    pub connections: Connections,
    /// Rooms, channels and subscriptions.
    pub realtime: Realtime,
    /// The enabled protocols: the one way to call their hooks.
    pub protocols: Protocols,
    /// Who a request runs as, and whether it may.
    pub gate: Box<dyn Gatekeeper>,
    /// Users, rights, tokens (the gate, unless a test replaced it).
    pub security: Arc<Security>,
    /// When the host started.
    pub started_at: Instant,
    /// Which protocols report their subscribers' queues congested.
    pub pressure: Pressure,
    /// The document store: reachable only from a blocking-pool thread ([`Services::storage`]).
    storage: Arc<dyn Storage>,
    /// `[cluster]`: the other nodes, through Redis; `None` on a single node.
    pub cluster: Option<Cluster>,
    /// The listening sockets the host owns and lends to protocols (and hands over in a hot
    /// upgrade).
    pub listeners: Arc<Listeners>,
    /// Every collection's validation specifications, compiled, for `realtime:publish` (which
    /// may not read the store).
    pub specifications: crate::validation::Registry,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("connections", &self.connections)
            .finish_non_exhaustive()
    }
}

impl Services {
    /// Services with no connection, no room, no protocol yet, and the security service opened
    /// on `storage` (for tests: start-up opens it first, to report a failure).
    pub fn new(config: Arc<Config>, storage: Arc<dyn Storage>) -> Services {
        let security = Security::open(
            Arc::clone(&storage),
            security_settings(&config),
            Arc::new(switchyard_security::clock::SystemClock),
        )
        .expect("the security service opens");
        Services::with_security(config, storage, Arc::new(security))
    }

    /// Services with no connection, no room, no protocol yet, and `security` as the gate.
    pub fn with_security(
        config: Arc<Config>,
        storage: Arc<dyn Storage>,
        security: Arc<Security>,
    ) -> Services {
        Services {
            specifications: crate::validation::Registry::load(&*storage),
            storage,
            realtime: Realtime::new(config.limits),
            pressure: Pressure::new(config.protocols.len()),
            config,
            connections: Connections::new(),
            protocols: Protocols::new(),
            gate: Box::new(Arc::clone(&security)),
            security,
            started_at: Instant::now(),
            cluster: None,
            listeners: Arc::new(Listeners::default()),
        }
    }

    /// The document store. Its calls may block on the disk: only a blocking-pool thread can
    /// show the proof this asks for.
    pub fn storage(&self, _on_pool: &OnBlockingPool) -> &dyn Storage {
        &*self.storage
    }

    /// Whether the store takes a deferred write now without blocking (`write_deferred`).
    pub fn can_defer_writes(&self) -> bool {
        self.storage.can_defer_writes()
    }

    /// Queues a write to the store and returns at once: never blocks, so any thread may call it
    /// once `can_defer_writes` said so; `then` runs on the store's thread once the write is
    /// durable (or failed).
    pub fn write_deferred(&self, batch: switchyard_storage::WriteBatch, then: WriteDone) {
        self.storage.write_deferred(batch, then);
    }

    /// The document's current body when the store holds it in memory (the embedded store's
    /// document cache): never blocks, so any thread may ask; `None` means ask `storage` on the
    /// blocking pool.
    pub fn document_in_memory(
        &self,
        index: &str,
        collection: &str,
        id: &str,
    ) -> Option<switchyard_storage::RawDocument> {
        self.storage.get_raw_in_memory(index, collection, id)
    }

    /// Hands a notification to every protocol (each delivers to its own members).
    pub fn broadcast(&self, notification: &Broadcast) {
        self.protocols
            .broadcast(&notification.channels, &notification.payload);
    }

    /// The one place an event becomes notifications: `in` to `into`, `out` to `out` (channels of
    /// this node's rooms), at once; then, in cluster mode, the event is queued for the other
    /// nodes, which match `contents()` against their own rooms ([`Destination::deliver`]).
    pub fn notify(
        &self,
        event: &DocumentEvent<'_>,
        into: Vec<Arc<str>>,
        out: Vec<Arc<str>>,
        contents: impl FnOnce() -> Contents,
    ) {
        self.deliver(event, into, out);
        if let Some(cluster) = &self.cluster {
            cluster.publish(event, &contents());
        }
    }

    fn deliver(&self, event: &DocumentEvent<'_>, into: Vec<Arc<str>>, out: Vec<Arc<str>>) {
        for (scope, channels) in [("in", into), ("out", out)] {
            if !channels.is_empty() {
                let payload =
                    crate::realtime::document_notification(&DocumentEvent { scope, ..*event });
                self.broadcast(&Broadcast { channels, payload });
            }
        }
    }

    /// This node's rooms changed (a subscription, a departure): in cluster mode, the channels
    /// it listens to follow.
    pub fn rooms_changed(&self) {
        if let Some(cluster) = &self.cluster {
            cluster.rooms_changed();
        }
    }

    /// Cluster mode: someone arrived in or left a room; the other nodes tell their members.
    pub fn share_user_change(
        &self,
        change: Option<&UserChange>,
        event: UserEvent,
        protocol: Option<&str>,
    ) {
        if let (Some(cluster), Some(change)) = (&self.cluster, change) {
            cluster.publish_user(change, event, protocol);
        }
    }

    /// `connection` (of protocol `protocol`) joins `channel`.
    pub fn join_channel(&self, protocol: usize, channel: &str, connection: ConnectionId) {
        if let Some(protocol) = self.protocols.get(protocol) {
            protocol.join_channel(channel, connection);
        }
    }

    /// Tells the plugins about a connection leaving a room: its protocol hears `leaveChannel`
    /// for each of the room's channels, the room's other members get the user notification.
    /// Revocation: `connections` (linked to a revoked token) lose their subscriptions, without
    /// a notification (Kuzzle's `core:realtime:connection:remove`).
    pub fn drop_subscriptions(&self, connections: Vec<ConnectionId>) {
        for connection in connections {
            let Some(protocol) = self.connections.protocol_of(connection) else {
                continue;
            };
            self.realtime.remove_connection(connection, |departure| {
                self.complete_departure(connection, protocol, &departure)
            });
        }
    }

    pub fn complete_departure(&self, id: ConnectionId, protocol: usize, departure: &Departure) {
        if let Some(protocol) = self.protocols.get(protocol) {
            for channel in &departure.channels {
                protocol.leave_channel(channel, id);
            }
        }
        if let Some(notification) = &departure.user_notification {
            self.broadcast(notification);
        }
        self.share_user_change(departure.user_change.as_ref(), UserEvent::Out, None);
        self.rooms_changed();
    }

    /// Forgets a connection: it leaves every room (see [`Services::complete_departure`]).
    /// Returns its protocol; unknown ids are ignored (`None`).
    pub fn remove_connection(&self, id: ConnectionId) -> Option<usize> {
        let connection = self.connections.remove(id)?;
        self.security.unlink(id);
        self.security.forget_connection(id);
        self.realtime.remove_connection(id, |departure| {
            self.complete_departure(id, connection.protocol, &departure)
        });
        Some(connection.protocol)
    }
}

/// Events from other nodes: matched against this node's rooms, as a local event would be.
impl Destination for Services {
    fn deliver(&self, inbound: &Inbound) {
        let realtime = &self.realtime;
        let rooms = |content: &Option<serde_json::Value>| {
            content.as_ref().map_or_else(Vec::new, |document| {
                realtime.match_rooms(&inbound.index, &inbound.collection, document)
            })
        };
        let now = rooms(&inbound.now);
        let before = rooms(&inbound.before);
        let left = before.iter().filter(|room| !now.contains(room));
        let into = realtime.channels_of(now.iter().map(|room| &**room), Scope::In);
        let out = realtime.channels_of(left.map(|room| &**room), Scope::Out);
        self.deliver(&inbound.event(), into, out);
    }

    fn deliver_user(&self, event: &UserInbound) {
        let others = self
            .cluster
            .as_ref()
            .and_then(|cluster| cluster.remote_count(&event.room_id))
            .unwrap_or(0);
        if let Some(notification) = self.realtime.user_notification_from_elsewhere(
            &event.room_id,
            event.event(),
            event.volatile.as_ref(),
            event.protocol.as_deref(),
            others as usize,
        ) {
            self.broadcast(&notification);
        }
    }

    fn deliver_security(&self, collection: &str, id: &str) {
        if collection == crate::validation::registry::CLUSTER_KIND {
            if let Err(error) = self.specifications.reload(&*self.storage, id) {
                tracing::warn!("cluster: could not read the specifications {id} again after another node changed them: {error}");
            }
            return;
        }
        match self.security.refresh_from_store(collection, id) {
            Ok(Some(fingerprint)) => {
                self.drop_subscriptions(self.security.revoke_links(&fingerprint));
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(
                "cluster: could not read {collection}/{id} again after another node changed it: {error}"
            ),
        }
    }

    fn collections(&self) -> Vec<(String, String)> {
        self.realtime.koncorde_indexes()
    }

    fn room_counts(&self) -> Vec<RoomCount> {
        self.realtime.room_counts()
    }
}

/// The security service's settings from `[security]` and the protocols: HTTP connections, one
/// per request, are not notifiable (Kuzzle's `realtimeNotifications`).
pub fn security_settings(config: &Config) -> SecuritySettings {
    let security = &config.security;
    let notifiable = config
        .protocols
        .iter()
        .map(|protocol| match &protocol.library {
            LibrarySpec::Named(name) => name != "http",
            LibrarySpec::Path(path) => !path
                .file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("libhttp.")),
        })
        .collect();
    SecuritySettings {
        tokens: security.token_config(),
        secret: security.auth_token.secret.clone(),
        argon2: security.argon2.unwrap_or_default(),
        restricted_profile_ids: security
            .restricted_profile_ids
            .clone()
            .unwrap_or_else(switchyard_security::defaults::restricted_profile_ids),
        notifiable,
        logins_per_second: config.limits.logins_per_second,
        login_lockout: security.login_lockout.settings(),
    }
}
