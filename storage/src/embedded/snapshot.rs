//! The latest committed snapshot, shared by reads until the next commit.
//!
//! A redb read costs more to set up than to do: `begin_read`, then `open_table` for the catalog's
//! two tables and the collection's documents (each a lookup in redb's table tree that allocates
//! the table's name and checks its definition) — 13,000 of the 15,700 instructions of a
//! `get_raw`. Reads share one read transaction instead, and what they derive from it (a
//! collection's catalog entry and its open documents table, internal records): a snapshot never
//! changes, so nothing derived from it can go stale while it is in use.
//!
//! Invariant: a read that starts after a commit returned sees that commit. Every commit calls
//! [`Snapshots::invalidate`] after redb's commit and before its writers are answered; a snapshot
//! opened before a commit is installed only if no commit invalidated meanwhile (the epoch).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use redb::{Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable};
use serde_json::Value;

use super::{store_error, DocsTable, Store, INTERNAL};
use crate::error::{Result, StorageError};

/// A collection as one snapshot has it: its open documents table.
pub(super) struct CollectionView {
    pub(super) docs: ReadOnlyTable<&'static str, &'static [u8]>,
}

/// At most this many entries in each of a snapshot's caches: names come from requests, and a
/// flood of reads of missing collections must not grow memory until the next commit. Past it,
/// reads are answered without being kept.
const MAX_CACHED: usize = 4096;

/// Values derived from a snapshot, by two names (index and collection, kind and key), looked up
/// without allocating.
struct Cache<V> {
    entries: HashMap<String, HashMap<String, V>>,
    len: usize,
}

impl<V: Clone> Cache<V> {
    fn new() -> Cache<V> {
        Cache {
            entries: HashMap::new(),
            len: 0,
        }
    }

    fn get(&self, first: &str, second: &str) -> Option<V> {
        self.entries.get(first)?.get(second).cloned()
    }

    fn insert(&mut self, first: &str, second: &str, value: V) {
        if self.len >= MAX_CACHED {
            return;
        }
        let inner = self.entries.entry(first.to_string()).or_default();
        if inner.insert(second.to_string(), value).is_none() {
            self.len += 1;
        }
    }
}

/// One committed state of the store, and what reads derived from it.
pub(super) struct Snapshot {
    txn: ReadTransaction,
    /// index → collection → its view, or why there is none (`IndexNotFound`, …).
    collections: RwLock<Cache<Arc<Result<CollectionView>>>>,
    /// kind → key → the internal record (`None`: absent).
    internal: RwLock<Cache<Option<Value>>>,
}

impl Snapshot {
    fn new(txn: ReadTransaction) -> Snapshot {
        Snapshot {
            txn,
            collections: RwLock::new(Cache::new()),
            internal: RwLock::new(Cache::new()),
        }
    }

    /// The collection's view, opened on first use.
    pub(super) fn collection(
        &self,
        index: &str,
        collection: &str,
    ) -> Result<Arc<Result<CollectionView>>> {
        let cached = read(&self.collections).get(index, collection);
        if let Some(view) = cached {
            return Ok(view);
        }
        let view = Arc::new(self.open_collection(index, collection)?);
        write(&self.collections).insert(index, collection, Arc::clone(&view));
        Ok(view)
    }

    /// The outer `Err` is a store failure (not kept); the inner one a missing index or
    /// collection, which this snapshot will always answer.
    fn open_collection(&self, index: &str, collection: &str) -> Result<Result<CollectionView>> {
        let record = match Store::find_collection_read(&self.txn, index, collection) {
            Ok(record) => record,
            Err(
                error @ (StorageError::IndexNotFound { .. }
                | StorageError::CollectionNotFound { .. }),
            ) => return Ok(Err(error)),
            Err(error) => return Err(error),
        };
        let docs = self
            .txn
            .open_table(DocsTable::new(&super::docs_table_name(record.id)))
            .map_err(store_error)?;
        Ok(Ok(CollectionView { docs }))
    }

    /// An internal record, read on first use.
    pub(super) fn internal(&self, kind: &str, key: &str) -> Result<Option<Value>> {
        let cached = read(&self.internal).get(kind, key);
        if let Some(value) = cached {
            return Ok(value);
        }
        let internal = self.txn.open_table(INTERNAL).map_err(store_error)?;
        let value =
            match internal.get((kind, key)).map_err(store_error)? {
                Some(bytes) => Some(serde_json::from_slice(bytes.value()).map_err(|e| {
                    StorageError::store(format!("internal record {kind}/{key}: {e}"))
                })?),
                None => None,
            };
        write(&self.internal).insert(kind, key, value.clone());
        Ok(value)
    }
}

/// The current snapshot, replaced after every commit.
pub(super) struct Snapshots {
    state: Mutex<State>,
}

struct State {
    /// Bumped by every invalidation: a snapshot opened under an older epoch may predate a
    /// commit, so it is used once but not installed.
    epoch: u64,
    current: Option<Arc<Snapshot>>,
}

impl Snapshots {
    pub(super) fn new() -> Snapshots {
        Snapshots {
            state: Mutex::new(State {
                epoch: 0,
                current: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section is a few moves: a panic cannot leave the state half-changed.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The latest committed snapshot.
    pub(super) fn current(&self, db: &Database) -> Result<Arc<Snapshot>> {
        let epoch = {
            let state = self.lock();
            if let Some(current) = &state.current {
                return Ok(Arc::clone(current));
            }
            state.epoch
        };
        let snapshot = Arc::new(Snapshot::new(db.begin_read().map_err(store_error)?));
        let mut state = self.lock();
        if state.epoch == epoch && state.current.is_none() {
            state.current = Some(Arc::clone(&snapshot));
        }
        Ok(snapshot)
    }

    /// A commit happened (or may have): later reads need a newer snapshot.
    pub(super) fn invalidate(&self) {
        let old = {
            let mut state = self.lock();
            state.epoch += 1;
            state.current.take()
        };
        // The read transaction ends (if no read still holds it) outside the lock.
        drop(old);
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_stops_growing_at_its_cap_and_keeps_answering() {
        let mut cache = Cache::new();
        for n in 0..MAX_CACHED + 10 {
            cache.insert("index", &n.to_string(), n);
        }
        cache.insert("index", "0", 0);
        assert_eq!(cache.len, MAX_CACHED);
        assert_eq!(cache.get("index", "0"), Some(0));
        assert_eq!(
            cache.get("index", &(MAX_CACHED - 1).to_string()),
            Some(MAX_CACHED - 1)
        );
        assert_eq!(cache.get("index", &MAX_CACHED.to_string()), None);
        assert_eq!(cache.get("other", "0"), None);
    }
}
