//! What an action may use: the host's services, without the entry point.
//!
//! Controllers receive `&Services` (through their context), never the entry point: they can be
//! unit-tested with a `Services` and no plugin, no thread, no running host. Services that may
//! block (storage, password hashing) are not reachable from here: only an action declared
//! `Blocking` gets them (`api::action::BlockingContext`), and it runs on the blocking pool.

use std::sync::Arc;
use std::time::Instant;

use switchyard_plugin_api::ConnectionId;

use switchyard_storage::Storage;

use crate::config::{Config, LibrarySpec};
use crate::connections::Connections;
use crate::execution::OnBlockingPool;
use crate::plugin::registry::Protocols;
use crate::pressure::Pressure;
use crate::realtime::{Broadcast, Departure, Realtime};
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
            storage,
            realtime: Realtime::new(config.limits),
            pressure: Pressure::new(config.protocols.len()),
            config,
            connections: Connections::new(),
            protocols: Protocols::new(),
            gate: Box::new(Arc::clone(&security)),
            security,
            started_at: Instant::now(),
        }
    }

    /// The document store. Its calls may block on the disk: only a blocking-pool thread can
    /// show the proof this asks for.
    pub fn storage(&self, _on_pool: &OnBlockingPool) -> &dyn Storage {
        &*self.storage
    }

    /// Hands a notification to every protocol (each delivers to its own members).
    pub fn broadcast(&self, notification: &Broadcast) {
        self.protocols
            .broadcast(&notification.channels, &notification.payload);
    }

    /// `connection` (of protocol `protocol`) joins `channel`.
    pub fn join_channel(&self, protocol: usize, channel: &str, connection: ConnectionId) {
        if let Some(protocol) = self.protocols.get(protocol) {
            protocol.join_channel(channel, connection);
        }
    }

    /// Tells the plugins about a connection leaving a room: its protocol hears `leaveChannel`
    /// for each of the room's channels, the room's other members get the user notification.
    pub fn complete_departure(&self, id: ConnectionId, protocol: usize, departure: &Departure) {
        if let Some(protocol) = self.protocols.get(protocol) {
            for channel in &departure.channels {
                protocol.leave_channel(channel, id);
            }
        }
        if let Some(notification) = &departure.user_notification {
            self.broadcast(notification);
        }
    }

    /// Forgets a connection: it leaves every room (see [`Services::complete_departure`]).
    /// Returns its protocol; unknown ids are ignored (`None`).
    pub fn remove_connection(&self, id: ConnectionId) -> Option<usize> {
        let connection = self.connections.remove(id)?;
        self.security.unlink(id);
        self.realtime.remove_connection(id, |departure| {
            self.complete_departure(id, connection.protocol, &departure)
        });
        Some(connection.protocol)
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
    }
}
