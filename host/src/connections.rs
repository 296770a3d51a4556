//! The connection table: every client connection a protocol declared, in shards.
//!
//! A leaf: it imports nothing else of the host, so the entry point, the realtime engine and the
//! controllers can all use it without a circle.
//!
//! Ids are allocated here, start at 1 and are never reused. Protocols declare and remove
//! connections from many threads (an HTTP exchange may declare one), so the table is split in
//! shards, each behind its own lock; ids are sequential, so `id % SHARDS` spreads them evenly.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::{Condvar, Mutex, RwLock};
use switchyard_plugin_api::{json, ConnectionId};

/// A map keyed by connection id. Ids are sequential and never chosen by clients, so a
/// fixed mixer spreads them as well as SipHash does, at a fraction of its cost (three lookups
/// per HTTP request).
pub type ConnectionMap<V> = HashMap<ConnectionId, V, ConnectionHash>;

/// A set of connection ids, hashed like [`ConnectionMap`].
pub type ConnectionSet = std::collections::HashSet<ConnectionId, ConnectionHash>;

/// The hasher of [`ConnectionMap`].
pub type ConnectionHash = BuildHasherDefault<IdHasher>;

/// Hashes one `u64` (a connection id) with splitmix64's finalizer: every bit of the id moves
/// every bit of the hash, the low ones included (the table indexes by the low bits, and the
/// ids of one shard share their low four).
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only ids are hashed; kept correct for any input anyway.
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        let mut mixed = (id ^ (id >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.0 = mixed ^ (mixed >> 31);
    }
}

/// A client connection a protocol declared.
#[derive(Debug)]
pub struct Connection {
    /// The protocol that owns it (index into the protocol list).
    pub protocol: usize,
    /// What the protocol told about the client, in one allocation:
    /// `{"ips":[…],"headers":{…}}`, the socket's peer first in `ips`.
    pub context: Box<str>,
}

const SHARDS: usize = 16;

/// Every declared connection.
pub struct Connections {
    shards: [RwLock<ConnectionMap<Connection>>; SHARDS],
    /// The next id (never reused; starts at 1).
    next_id: AtomicU64,
    /// How many connections are declared (the shards' lengths would take every lock).
    count: AtomicUsize,
    /// Held only to wait for and announce "the table is empty" (shutdown waits on it).
    emptied_lock: Mutex<()>,
    /// Notified each time the last connection leaves.
    emptied: Condvar,
}

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections")
            .field("count", &self.count())
            .finish_non_exhaustive()
    }
}

impl Default for Connections {
    fn default() -> Self {
        Connections::new()
    }
}

impl Connections {
    /// An empty table.
    pub fn new() -> Connections {
        // Sized up front: with one HTTP connection per request, a shard that grows and
        // shrinks around a handful of entries would otherwise rehash again and again.
        Connections {
            shards: std::array::from_fn(|_| {
                RwLock::new(HashMap::with_capacity_and_hasher(
                    64,
                    ConnectionHash::default(),
                ))
            }),
            next_id: AtomicU64::new(1),
            count: AtomicUsize::new(0),
            emptied_lock: Mutex::new(()),
            emptied: Condvar::new(),
        }
    }

    fn shard(&self, id: ConnectionId) -> &RwLock<ConnectionMap<Connection>> {
        &self.shards[(id.0 % SHARDS as u64) as usize]
    }

    /// Declares a connection for protocol `protocol`; returns its new id.
    pub fn declare(&self, protocol: usize, ips: &[&str], headers_json: &str) -> ConnectionId {
        let id = ConnectionId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let mut context = String::with_capacity(
            24 + headers_json.len() + ips.iter().map(|ip| ip.len() + 3).sum::<usize>(),
        );
        context.push_str("{\"ips\":[");
        for (index, ip) in ips.iter().enumerate() {
            if index > 0 {
                context.push(',');
            }
            json::push_str(&mut context, ip);
        }
        context.push_str("],\"headers\":");
        context.push_str(if headers_json.is_empty() {
            "{}"
        } else {
            headers_json
        });
        context.push('}');
        let connection = Connection {
            protocol,
            context: context.into_boxed_str(),
        };
        self.count.fetch_add(1, Ordering::AcqRel);
        self.shard(id).write().insert(id, connection);
        id
    }

    /// Forgets a connection; `None` when it was not declared (or already removed).
    pub fn remove(&self, id: ConnectionId) -> Option<Connection> {
        let removed = self.shard(id).write().remove(&id)?;
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Taking the lock orders this notification after a waiter's check of the count.
            let _guard = self.emptied_lock.lock();
            self.emptied.notify_all();
        }
        Some(removed)
    }

    /// The protocol owning a connection, while it is declared.
    pub fn protocol_of(&self, id: ConnectionId) -> Option<usize> {
        self.shard(id).read().get(&id).map(|c| c.protocol)
    }

    /// The client's address as its protocol saw it (the first of `ips`: the socket's peer),
    /// while the connection is declared.
    pub fn peer_address(&self, id: ConnectionId) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct Context {
            ips: Vec<String>,
        }
        let shard = self.shard(id).read();
        let context: Context = serde_json::from_str(&shard.get(&id)?.context).ok()?;
        context.ips.into_iter().next()
    }

    /// True while the connection is declared.
    pub fn contains(&self, id: ConnectionId) -> bool {
        self.shard(id).read().contains_key(&id)
    }

    /// How many connections are declared.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Every declared connection with its protocol.
    pub fn ids(&self) -> Vec<(ConnectionId, usize)> {
        let mut ids = Vec::with_capacity(self.count());
        for shard in &self.shards {
            ids.extend(
                shard
                    .read()
                    .iter()
                    .map(|(id, connection)| (*id, connection.protocol)),
            );
        }
        ids
    }

    /// Blocks until no connection is declared or `deadline` passes; returns how many remain.
    pub fn wait_until_empty(&self, deadline: Instant) -> usize {
        let mut guard = self.emptied_lock.lock();
        while self.count() > 0 {
            if self.emptied.wait_until(&mut guard, deadline).timed_out() {
                break;
            }
        }
        self.count()
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn ids_of_one_shard_spread_over_the_low_bits() {
        // The ids a shard holds (`id % 16` fixed) must still reach every bucket of a table.
        let hasher = ConnectionHash::default();
        let buckets: std::collections::HashSet<u64> = (0..4096u64)
            .map(|n| hasher.hash_one(ConnectionId(n * SHARDS as u64 + 3)) & 255)
            .collect();
        assert_eq!(buckets.len(), 256);
    }

    #[test]
    fn ids_start_at_one_and_are_never_reused() {
        let connections = Connections::new();
        let first = connections.declare(0, &["127.0.0.1"], "");
        assert_eq!(first, ConnectionId(1));
        assert_eq!(
            &*connections.remove(first).unwrap().context,
            r#"{"ips":["127.0.0.1"],"headers":{}}"#
        );
        assert!(connections.remove(first).is_none());
        assert_eq!(
            connections.declare(1, &[], "{\"a\":\"b\"}"),
            ConnectionId(2)
        );
        assert_eq!(connections.protocol_of(ConnectionId(2)), Some(1));
        assert_eq!(connections.count(), 1);
    }

    #[test]
    fn waiting_for_empty_wakes_when_the_last_connection_leaves() {
        let connections = Arc::new(Connections::new());
        let ids: Vec<_> = (0..3).map(|_| connections.declare(0, &[], "")).collect();
        let remover = {
            let connections = Arc::clone(&connections);
            std::thread::spawn(move || {
                for id in ids {
                    connections.remove(id);
                }
            })
        };
        let left = connections.wait_until_empty(Instant::now() + Duration::from_secs(30));
        assert_eq!(left, 0);
        remover.join().unwrap();
        // An empty table returns at once, and a deadline in the past is honoured.
        connections.declare(0, &[], "");
        assert_eq!(connections.wait_until_empty(Instant::now()), 1);
    }
}
