//! A bounded cache of recently read and written document bodies, so that `document:get` of a
//! hot document is answered from memory on the caller's thread, without the blocking pool
//! (`Storage::get_raw_in_memory`).
//!
//! Sharded by key; each shard is an LRU bounded in bytes (the body, the id and the key, plus a
//! fixed overhead per entry). Capacity 0 turns it off.
//!
//! Invariant (read-your-writes): every commit updates the cache (the new bodies, deletions,
//! or a clear for truncate and collection or index deletion) after redb's commit and before
//! its writers are answered (`Store::commit_group` and the catalog writes).
//!
//! Invariant (no stale fill): a read that missed fills the cache only if no commit touched the
//! key's shard since before its snapshot was taken: it takes a [`FillToken`] (the shard's
//! sequence) first, and every update of a shard bumps its sequence, so a body read from a
//! snapshot older than a commit can never be put back over that commit's update.

use std::hash::BuildHasher;
use std::sync::Mutex;

use hashlink::LinkedHashMap;

use crate::document::RawDocument;

/// Shards: enough that the WebSocket threads and the blocking pool rarely meet on one lock.
const SHARDS: usize = 16;

/// Bytes counted per entry beyond its strings: the map's node, the `RawDocument`, `KuzzleInfo`.
const ENTRY_OVERHEAD: usize = 160;

/// A cache key: index, collection and id, length-prefixed so that no two triples share one.
pub(super) fn key(index: &str, collection: &str, id: &str) -> String {
    let mut key = String::with_capacity(index.len() + collection.len() + id.len() + 12);
    key.push_str(&index.len().to_string());
    key.push(':');
    key.push_str(&collection.len().to_string());
    key.push(':');
    key.push_str(index);
    key.push_str(collection);
    key.push_str(id);
    key
}

fn cost(key: &str, document: &RawDocument) -> usize {
    key.len()
        + document.id.len()
        + document.source.len()
        + document.info.author.as_ref().map_or(0, String::len)
        + document.info.updater.as_ref().map_or(0, String::len)
        + ENTRY_OVERHEAD
}

struct Shard {
    /// Least recently used first.
    entries: LinkedHashMap<String, RawDocument>,
    bytes: usize,
    /// Bumped by every update (write, delete, clear): fills taken before it are refused.
    sequence: u64,
}

impl Shard {
    fn remove(&mut self, key: &str) {
        if let Some(old) = self.entries.remove(key) {
            self.bytes -= cost(key, &old);
        }
    }

    fn insert(&mut self, key: String, document: RawDocument, capacity: usize) {
        self.remove(&key);
        let size = cost(&key, &document);
        if size > capacity {
            return;
        }
        while self.bytes + size > capacity {
            match self.entries.pop_front() {
                Some((old_key, old)) => self.bytes -= cost(&old_key, &old),
                None => break,
            }
        }
        self.bytes += size;
        self.entries.insert(key, document);
    }
}

/// Where and when a read that missed started: see the module's second invariant.
#[derive(Debug, Clone, Copy)]
pub(super) struct FillToken {
    shard: usize,
    sequence: u64,
}

/// The cache. `capacity` 0: every lookup misses and nothing is kept.
pub(super) struct DocumentCache {
    shards: Box<[Mutex<Shard>]>,
    /// Bytes per shard.
    shard_capacity: usize,
    hasher: std::collections::hash_map::RandomState,
}

impl DocumentCache {
    /// A cache of about `capacity` bytes in all.
    pub(super) fn new(capacity: usize) -> DocumentCache {
        DocumentCache {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        entries: LinkedHashMap::new(),
                        bytes: 0,
                        sequence: 0,
                    })
                })
                .collect(),
            shard_capacity: capacity / SHARDS,
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    fn enabled(&self) -> bool {
        self.shard_capacity > 0
    }

    fn shard_of(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) % SHARDS as u64) as usize
    }

    fn lock(&self, shard: usize) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[shard]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached body, marked recently used.
    pub(super) fn get(&self, key: &str) -> Option<RawDocument> {
        if !self.enabled() {
            return None;
        }
        let mut shard = self.lock(self.shard_of(key));
        let document = shard.entries.to_back(key)?;
        Some(document.clone())
    }

    /// Taken by a read before it opens its snapshot; `fill` checks it.
    pub(super) fn token(&self, key: &str) -> Option<FillToken> {
        if !self.enabled() {
            return None;
        }
        let shard = self.shard_of(key);
        let sequence = self.lock(shard).sequence;
        Some(FillToken { shard, sequence })
    }

    /// Keeps what a read found, unless a commit touched the shard since `token`.
    pub(super) fn fill(&self, token: FillToken, key: String, document: RawDocument) {
        let mut shard = self.lock(token.shard);
        if shard.sequence == token.sequence {
            shard.insert(key, document, self.shard_capacity);
        }
    }

    /// A committed write: `Some` is the document's new body, `None` a deletion (or a write
    /// whose outcome is unknown: the entry goes).
    pub(super) fn update(&self, key: String, document: Option<RawDocument>) {
        if !self.enabled() {
            return;
        }
        let mut shard = self.lock(self.shard_of(&key));
        shard.sequence += 1;
        match document {
            Some(document) => shard.insert(key, document, self.shard_capacity),
            None => shard.remove(&key),
        }
    }

    /// Forgets everything (truncate, collection or index deletion).
    pub(super) fn clear(&self) {
        for shard in 0..self.shards.len() {
            let mut shard = self.lock(shard);
            shard.sequence += 1;
            shard.entries.clear();
            shard.bytes = 0;
        }
    }

    /// Bytes held (tests).
    #[cfg(test)]
    fn bytes(&self) -> usize {
        (0..self.shards.len()).map(|s| self.lock(s).bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::KuzzleInfo;

    fn document(id: &str, body: &str) -> RawDocument {
        RawDocument {
            id: id.into(),
            version: 1,
            source: body.into(),
            info: KuzzleInfo::default(),
        }
    }

    #[test]
    fn keys_of_different_triples_differ() {
        assert_ne!(key("ab", "c", "d"), key("a", "bc", "d"));
        assert_ne!(key("a", "b", "cd"), key("a", "bc", "d"));
    }

    #[test]
    fn bounded_in_bytes_least_recently_used_out() {
        let cache = DocumentCache::new(SHARDS * 1_000);
        for n in 0..1_000 {
            let id = format!("doc-{n}");
            cache.update(key("i", "c", &id), Some(document(&id, "{\"a\":1}")));
        }
        assert!(cache.bytes() <= SHARDS * 1_000, "{}", cache.bytes());
        assert!(cache.get(&key("i", "c", "doc-999")).is_some());
        assert!(cache.get(&key("i", "c", "doc-0")).is_none());
        // A body larger than a shard is never kept.
        let huge = format!("{{\"a\":\"{}\"}}", "x".repeat(2_000));
        cache.update(key("i", "c", "huge"), Some(document("huge", &huge)));
        assert!(cache.get(&key("i", "c", "huge")).is_none());
    }

    #[test]
    fn a_fill_older_than_an_update_is_refused() {
        let cache = DocumentCache::new(1 << 20);
        let k = key("i", "c", "d");
        let token = cache.token(&k).unwrap();
        cache.update(k.clone(), Some(document("d", "{\"v\":2}")));
        cache.fill(token, k.clone(), document("d", "{\"v\":1}"));
        assert_eq!(cache.get(&k).unwrap().source, "{\"v\":2}");
        let token = cache.token(&k).unwrap();
        cache.clear();
        cache.fill(token, k.clone(), document("d", "{\"v\":1}"));
        assert!(cache.get(&k).is_none());
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let cache = DocumentCache::new(0);
        let k = key("i", "c", "d");
        assert!(cache.token(&k).is_none());
        cache.update(k.clone(), Some(document("d", "{}")));
        assert!(cache.get(&k).is_none());
    }
}
