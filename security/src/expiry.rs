//! Kuzzle's token manager (`lib/core/auth/tokenManager.ts`): which connections used which token,
//! and one schedule ordered by expiry, so the host runs a single timer for the earliest token
//! and, when it fires, sends `TokenExpired` to that token's connections.
//!
//! Invariant: a token is in the schedule exactly while some connection is linked to it, and a
//! connection is linked to at most one token.

use std::collections::{BTreeSet, HashMap, HashSet};

use switchyard_plugin_api::ConnectionId;

use crate::token::TokenRecord;

/// One connection to tell about an expired token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredLink {
    /// The connection (send `TokenExpired`, then drop its subscriptions).
    pub connection: ConnectionId,
    /// The token's fingerprint.
    pub fingerprint: String,
    /// Its owner.
    pub user_id: String,
}

#[derive(Debug)]
struct Linked {
    user_id: String,
    /// Epoch ms, -1 never (then not scheduled).
    expires_at: i64,
    connections: HashSet<ConnectionId>,
}

/// Token ↔ connection links with their expiry schedule.
#[derive(Debug, Default)]
pub struct TokenLinks {
    tokens: HashMap<String, Linked>,
    by_connection: HashMap<ConnectionId, String>,
    /// `(expires_at, fingerprint)` of the linked tokens that expire.
    schedule: BTreeSet<(i64, String)>,
}

impl TokenLinks {
    /// Empty.
    pub fn new() -> Self {
        Self::default()
    }

    /// Links `connection` to `token` (after each authenticated request from a notifiable
    /// protocol). A connection's previous token, if another, is unlinked first.
    pub fn link(&mut self, connection: ConnectionId, token: &TokenRecord) {
        if self.by_connection.get(&connection) == Some(&token.fingerprint) {
            return;
        }
        self.unlink(connection);
        let linked = self
            .tokens
            .entry(token.fingerprint.clone())
            .or_insert_with(|| Linked {
                user_id: token.user_id.clone(),
                expires_at: token.expires_at,
                connections: HashSet::new(),
            });
        if linked.connections.is_empty() && linked.expires_at >= 0 {
            self.schedule
                .insert((linked.expires_at, token.fingerprint.clone()));
        }
        linked.connections.insert(connection);
        self.by_connection
            .insert(connection, token.fingerprint.clone());
    }

    /// Unlinks `connection` (logout on it, or it closed); its token, if it had one.
    pub fn unlink(&mut self, connection: ConnectionId) -> Option<String> {
        let fingerprint = self.by_connection.remove(&connection)?;
        if let Some(linked) = self.tokens.get_mut(&fingerprint) {
            linked.connections.remove(&connection);
            if linked.connections.is_empty() {
                let expires_at = linked.expires_at;
                self.tokens.remove(&fingerprint);
                self.schedule.remove(&(expires_at, fingerprint.clone()));
            }
        }
        Some(fingerprint)
    }

    /// The token linked to `connection`.
    pub fn token_of(&self, connection: ConnectionId) -> Option<&str> {
        self.by_connection.get(&connection).map(String::as_str)
    }

    /// When the host's timer should next fire.
    pub fn next_expiry(&self) -> Option<i64> {
        self.schedule.first().map(|(at, _)| *at)
    }

    /// Removes the tokens expired at `now_ms` and returns each of their connections, for
    /// `TokenExpired`.
    pub fn take_expired(&mut self, now_ms: i64) -> Vec<ExpiredLink> {
        let mut out = Vec::new();
        while let Some((at, _)) = self.schedule.first() {
            if *at > now_ms {
                break;
            }
            let Some((_, fingerprint)) = self.schedule.pop_first() else {
                break;
            };
            out.extend(self.remove_token(&fingerprint));
        }
        out
    }

    /// Revocation (logout elsewhere, `revokeTokens`, user deletion, API key deletion): the
    /// connections still linked, whose subscriptions the host drops without notification.
    pub fn revoke(&mut self, fingerprint: &str) -> Vec<ConnectionId> {
        if let Some(linked) = self.tokens.get(fingerprint) {
            self.schedule
                .remove(&(linked.expires_at, fingerprint.to_owned()));
        }
        self.remove_token(fingerprint)
            .into_iter()
            .map(|link| link.connection)
            .collect()
    }

    /// A refresh moves the old token's connections to the new one.
    pub fn refresh(&mut self, old_fingerprint: &str, new_token: &TokenRecord) {
        let connections: Vec<ConnectionId> = self
            .tokens
            .get(old_fingerprint)
            .map(|linked| linked.connections.iter().copied().collect())
            .unwrap_or_default();
        for connection in connections {
            self.link(connection, new_token);
        }
    }

    fn remove_token(&mut self, fingerprint: &str) -> Vec<ExpiredLink> {
        let Some(linked) = self.tokens.remove(fingerprint) else {
            return Vec::new();
        };
        let mut connections: Vec<ConnectionId> = linked.connections.into_iter().collect();
        connections.sort();
        connections
            .into_iter()
            .map(|connection| {
                self.by_connection.remove(&connection);
                ExpiredLink {
                    connection,
                    fingerprint: fingerprint.to_owned(),
                    user_id: linked.user_id.clone(),
                }
            })
            .collect()
    }

    /// How many tokens are linked.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// The `TokenExpired` payload Kuzzle sends on `kuzzle:notification:server`.
pub fn token_expired_payload(node_id: &str) -> serde_json::Value {
    serde_json::json!({
        "status": 200,
        "info": "This is an automated server notification",
        "message": "Authentication Token Expired",
        "type": "TokenExpired",
        "node": node_id,
    })
}

/// The channel of server notifications.
pub const SERVER_NOTIFICATION_CHANNEL: &str = "kuzzle:notification:server";
