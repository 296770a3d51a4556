//! The embedded store: redb (one file, copy-on-write B-trees, crash-safe commits, one writer and
//! MVCC readers) behind [`Storage`], with group commit for writes.
//!
//! Layout, all in one redb file:
//! * `indexes`: index name → ();
//! * `collections`: (index, collection) → collection id (u64 LE) ‖ mapping generation (u64 LE) ‖
//!   mapping JSON;
//! * `counters`: `next` → the next collection id / mapping generation;
//! * per collection `docs/<id>`: document id → record (`document::codec`);
//! * per collection `index/<id>`: secondary index entries (`keys`) → ();
//! * `internal`: (kind, key) → JSON: the host's internal records (validation specifications),
//!   outside every index;
//! * `meta`: `walEpoch` → the write-ahead log's epoch (`wal.rs`).
//!
//! Beside it, `data.wal`: the write-ahead log. A group of document writes is acknowledged once
//! its record in the log is durable; it then waits in memory (`Pending`) and is applied to redb,
//! with the groups around it, in a transaction committed without a sync (`apply_pending`), by the
//! applier thread once a MiB is pending (`threads.rs`) or by the next read or write transaction.
//! Catalog changes, and a group every `log_checkpoint_bytes` of log, commit durably in redb
//! (checkpoints, `wal.rs`). Writes come as groups of concurrent `write` calls (`group_commit.rs`)
//! or of deferred writes, committed and answered by the log thread (`threads.rs`).
//!
//! Invariant: every write (documents and catalog) runs in a redb write transaction that reads the
//! catalog itself, so a batch never writes into a collection deleted or re-created meanwhile.
//!
//! Invariant: every commit goes through [`Store::commit`] or
//! [`Store::apply_pending`], which retire the read snapshot that `get`, `get_raw`,
//! `mget` and `get_internal` share (`snapshot.rs`) right after redb's commit; the document cache
//! (`document_cache.rs`) is updated before any writer of the group is answered.
//!
//! Invariant: with the log on, every write transaction is begun by [`Store::begin_write`]
//! (or is an apply of pending groups) and holds the log's lock until it commits or aborts, so the
//! log's epoch and offset always describe redb's latest commit plus the pending groups; a write
//! is either durable in redb (a checkpoint, which first applies every pending group and moves the
//! log to a new epoch) or acknowledged only after its record is durable in the log.
//!
//! Invariant (read your writes): every read that goes to redb (`get_raw`, `mget`, `search`,
//! `count`, `len`) first applies the pending groups (`apply_pending`), so it sees every write
//! answered before it began; a group checks its preconditions against its own earlier writes,
//! then the pending ones, then redb's snapshot taken after it locked the pending ones (an apply
//! removes pending groups only after its commit retired the old snapshot).

mod document_cache;
mod group_commit;
mod keys;
mod plan;
mod snapshot;
mod threads;
mod wal;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use serde_json::Value;

use crate::document::{codec, Document, Operation, Outcome, Precondition, RawDocument, WriteBatch};
use crate::error::{Result, StorageError};
use crate::mapping::{merge_mapping, Schema};
use crate::names::{
    is_internal_index, validate_collection_name, validate_document_id, validate_index_name,
    validate_internal_index_name,
};
use crate::query::{field_values, page, Query, SearchPage, SearchRequest};
use crate::storage::Storage;
use document_cache::DocumentCache;
use group_commit::GroupCommit;
use snapshot::Snapshots;
pub use threads::EmbeddedStorage;
use wal::Wal;

const INDEXES: TableDefinition<&str, ()> = TableDefinition::new("indexes");
const COLLECTIONS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("collections");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
const INTERNAL: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("internal");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const WAL_EPOCH: &str = "walEpoch";

type DocsTable<'a> = TableDefinition<'a, &'static str, &'static [u8]>;
type IndexTable<'a> = TableDefinition<'a, &'static [u8], ()>;

fn docs_table_name(collection_id: u64) -> String {
    format!("docs/{collection_id}")
}

fn index_table_name(collection_id: u64) -> String {
    format!("index/{collection_id}")
}

/// Any redb error as a store failure.
fn store_error(error: impl Into<redb::Error>) -> StorageError {
    StorageError::store(error.into())
}

/// `EmbeddedOptions::document_cache_bytes`' default: 64 MiB, ~150,000 bodies of 300 bytes.
pub const DEFAULT_DOCUMENT_CACHE_BYTES: usize = 64 << 20;

/// How the embedded store runs.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Concurrent `write` calls share one commit (default). Off: one commit per call, for
    /// measurements.
    pub group_commit: bool,
    /// redb's page cache, in bytes.
    pub cache_bytes: usize,
    /// redb's quick repair: each commit also saves the allocator state, so opening after a crash
    /// takes milliseconds instead of a scan of the file, at some cost per commit.
    pub quick_repair: bool,
    /// Bytes of recently read and written document bodies kept in memory, which
    /// `get_raw_in_memory` answers without touching redb (`document_cache.rs`); 0: none.
    pub document_cache_bytes: usize,
    /// The write-ahead log (`wal.rs`): a group of document writes is acknowledged once its record
    /// in `data.wal` is durable, and applied to redb later without a sync; once the log holds this many
    /// bytes, the next group commits durably in redb and the log starts over. 0: no log, every
    /// commit durable in redb. Ignored by an in-memory store.
    pub log_checkpoint_bytes: u64,
}

/// `EmbeddedOptions::log_checkpoint_bytes`' default: 16 MiB, ~40,000 documents of 300 bytes.
pub const DEFAULT_LOG_CHECKPOINT_BYTES: u64 = 16 << 20;

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            group_commit: true,
            cache_bytes: 256 << 20,
            quick_repair: false,
            document_cache_bytes: DEFAULT_DOCUMENT_CACHE_BYTES,
            log_checkpoint_bytes: DEFAULT_LOG_CHECKPOINT_BYTES,
        }
    }
}

/// A collection's catalog entry.
struct CollectionRecord {
    id: u64,
    generation: u64,
    mapping: Vec<u8>,
}

impl CollectionRecord {
    fn encode(id: u64, generation: u64, mapping: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&generation.to_le_bytes());
        serde_json::to_writer(&mut out, mapping).expect("a Value always serialises");
        out
    }

    fn decode(bytes: &[u8]) -> Result<CollectionRecord> {
        if bytes.len() < 16 {
            return Err(StorageError::store("a catalog record is corrupt"));
        }
        Ok(CollectionRecord {
            id: u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")),
            generation: u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")),
            mapping: bytes[16..].to_vec(),
        })
    }

    fn mapping(&self) -> Result<Value> {
        serde_json::from_slice(&self.mapping)
            .map_err(|_| StorageError::store("a stored mapping is corrupt"))
    }
}

/// The embedded document store's state, shared by its handle ([`EmbeddedStorage`]) and its
/// threads (`threads.rs`).
struct Store {
    /// The latest committed snapshot, shared by reads (`snapshot.rs`). First, so that its read
    /// transaction ends before the database closes (fields drop in order).
    snapshots: Snapshots,
    db: Database,
    path: PathBuf,
    options: EmbeddedOptions,
    group: GroupCommit<WriteBatch, Vec<Outcome>>,
    /// Parsed schemas by mapping generation (generations are never reused).
    schemas: Mutex<HashMap<u64, Arc<Schema>>>,
    /// Recently read and written bodies (`get_raw_in_memory`); updated by every commit.
    documents: DocumentCache,
    /// The write-ahead log (`wal.rs`); `None` when off or in memory. Locked by
    /// [`begin_write`](Self::begin_write) for the whole transaction, and by a group staged on it.
    wal: Option<Mutex<Wal>>,
    /// Groups acknowledged on the log, not yet in redb (`apply_pending`).
    pending: Mutex<Pending>,
    /// Held by the one `apply_pending` running.
    applying: Mutex<()>,
}

/// A write transaction and, with the log on, the log's lock, held until it commits or aborts.
/// Fields drop in order: an aborted transaction ends before the lock is released.
struct Write<'s> {
    txn: WriteTransaction,
    wal: Option<MutexGuard<'s, Wal>>,
}

impl std::ops::Deref for Write<'_> {
    type Target = WriteTransaction;

    fn deref(&self) -> &WriteTransaction {
        &self.txn
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStorage")
            .field("path", &self.path)
            .field("options", &self.options)
            .finish()
    }
}

impl Store {
    /// Opens (or creates) the store in the data folder `dir` (file `data.redb`). After a crash
    /// redb repairs the file on open by itself; acknowledged writes are all there.
    pub fn open(dir: impl AsRef<Path>, options: EmbeddedOptions) -> Result<Store> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| {
            StorageError::store(format!("cannot create data folder {}: {e}", dir.display()))
        })?;
        let path = dir.join("data.redb");
        let db = Database::builder()
            .set_cache_size(options.cache_bytes)
            .create(&path)
            .map_err(|e| StorageError::store(format!("cannot open {}: {e}", path.display())))?;
        // With the log off, a log left by an earlier run with it on is still replayed.
        let log = dir.join("data.wal");
        let log = (options.log_checkpoint_bytes > 0 || log.exists()).then_some(log);
        Store::with_database(db, path, log, options)
    }

    /// A store that lives in memory only (unit tests of code above the store): same engine,
    /// nothing written to disk.
    pub fn in_memory() -> Result<Store> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| StorageError::store(format!("cannot create an in-memory store: {e}")))?;
        Store::with_database(db, PathBuf::new(), None, EmbeddedOptions::default())
    }

    /// With `log` (the write-ahead log's file): applies the log's records of redb's epoch again,
    /// then checkpoints (a durable commit that starts the next epoch); the log is then kept only
    /// if `options` turn it on.
    fn with_database(
        db: Database,
        path: PathBuf,
        log: Option<PathBuf>,
        options: EmbeddedOptions,
    ) -> Result<Store> {
        let txn = db.begin_write().map_err(store_error)?;
        txn.open_table(INDEXES).map_err(store_error)?;
        txn.open_table(COLLECTIONS).map_err(store_error)?;
        txn.open_table(COUNTERS).map_err(store_error)?;
        txn.open_table(INTERNAL).map_err(store_error)?;
        let epoch = Self::epoch(&txn)?;
        let (wal, records) = match log {
            Some(log) => {
                let (wal, records) = Wal::open(&log, epoch)?;
                (Some(Mutex::new(wal)), records)
            }
            None => (None, Vec::new()),
        };
        let mut store = Store {
            pending: Mutex::new(Pending::default()),
            applying: Mutex::new(()),
            documents: DocumentCache::new(options.document_cache_bytes),
            snapshots: Snapshots::new(),
            db,
            path,
            options,
            group: GroupCommit::new(),
            schemas: Mutex::new(HashMap::new()),
            wal,
        };
        let records: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        store.replay(&txn, &records)?;
        let wal = store.wal.as_ref().map(lock_wal);
        store.commit(Write { txn, wal })?;
        if store.options.log_checkpoint_bytes == 0 {
            store.wal = None;
        }
        Ok(store)
    }

    /// The log's epoch as redb has it (0 before the first checkpoint).
    fn epoch(txn: &WriteTransaction) -> Result<u64> {
        let meta = txn.open_table(META).map_err(store_error)?;
        let epoch = meta.get(WAL_EPOCH).map_err(store_error)?;
        Ok(epoch.map_or(0, |v| v.value()))
    }

    /// Applies the log's records again, in order (`wal.rs`: each entry states a document's whole
    /// new state, so entries redb already has change nothing). An entry whose collection is gone
    /// cannot occur (deleting one is a checkpoint) and is skipped.
    fn replay(&self, txn: &WriteTransaction, records: &[&[u8]]) -> Result<()> {
        let mut open: Vec<OpenCollection<'_>> = Vec::new();
        for record in records {
            for entry in wal::entries(record)? {
                let position = match open
                    .iter()
                    .position(|o| o.index == entry.index && o.collection == entry.collection)
                {
                    Some(position) => position,
                    None => {
                        let batch = WriteBatch {
                            index: entry.index.to_string(),
                            collection: entry.collection.to_string(),
                            operations: Vec::new(),
                        };
                        let tables = self.open_collection_write(txn, &batch)?;
                        open.push(OpenCollection {
                            index: batch.index,
                            collection: batch.collection,
                            tables,
                        });
                        open.len() - 1
                    }
                };
                let Ok(tables) = &mut open[position].tables else {
                    continue;
                };
                let previous = tables.previous(entry.id)?;
                match entry.record {
                    Some(bytes) => {
                        let document = codec::decode(entry.id, bytes)?;
                        tables.put(entry.id, previous.as_ref(), &document, bytes)?;
                    }
                    None => {
                        if let Some(old) = previous {
                            tables.delete(entry.id, &old)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies every pending group to redb, in one transaction committed without a sync (the
    /// log has them), then forgets them. Every read that goes to redb calls this first (a read
    /// barrier: it sees every write acknowledged before it began), and so does every write
    /// transaction. On an error nothing is forgotten: the next call applies them again.
    fn apply_pending(&self) -> Result<()> {
        // Nothing pending: every acknowledged write is in redb (an apply forgets its groups only
        // after its commit).
        if self.wal.is_none() || lock(&self.pending).queue.is_empty() {
            return Ok(());
        }
        let _applying = lock(&self.applying);
        self.apply_pending_locked()
    }

    /// True when enough bytes are pending that they should be applied now: the applier thread
    /// (`threads.rs`) is then woken once a group is answered. A failed apply leaves the groups
    /// pending: the next apply, or a read, retries them.
    fn apply_is_due(&self) -> bool {
        self.wal.is_some() && lock(&self.pending).bytes >= APPLY_BYTES
    }

    fn apply_pending_locked(&self) -> Result<()> {
        let (upto, records) = {
            let pending = lock(&self.pending);
            match pending.queue.last() {
                None => return Ok(()),
                Some((last, _)) => (
                    *last,
                    pending
                        .queue
                        .iter()
                        .map(|(_, record)| Arc::clone(record))
                        .collect::<Vec<_>>(),
                ),
            }
        };
        let mut txn = self.db.begin_write().map_err(store_error)?;
        txn.set_quick_repair(self.options.quick_repair);
        txn.set_durability(Durability::None)
            .map_err(|e| StorageError::store(format!("{e}")))?;
        let slices: Vec<&[u8]> = records.iter().map(|record| record.as_slice()).collect();
        self.replay(&txn, &slices)?;
        let committed = txn.commit();
        self.snapshots.invalidate();
        committed.map_err(store_error)?;
        let mut pending = lock(&self.pending);
        pending.queue.retain(|(sequence, _)| *sequence > upto);
        pending.bytes = pending.queue.iter().map(|(_, record)| record.len()).sum();
        pending.latest.retain(|_, (sequence, _)| *sequence > upto);
        Ok(())
    }

    /// The database file (empty for an in-memory store).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Begins a write transaction, holding the log's lock first (always in this order).
    fn begin_write(&self) -> Result<Write<'_>> {
        let wal = self.wal.as_ref().map(lock_wal);
        // Pending groups first: this transaction must see them, and a checkpoint must hold them.
        self.apply_pending()?;
        let mut txn = self.db.begin_write().map_err(store_error)?;
        txn.set_quick_repair(self.options.quick_repair);
        Ok(Write { txn, wal })
    }

    /// Commits a write transaction durably in redb, then retires the snapshot reads share: every
    /// commit goes through here or [`apply_pending`](Self::apply_pending) (`snapshot.rs`'s
    /// invariant). With the log on, this is a checkpoint: the commit also moves the log to the
    /// next epoch.
    fn commit(&self, write: Write<'_>) -> Result<()> {
        let Write { txn, wal } = write;
        let epoch = match wal {
            Some(_) => {
                let next = Self::epoch(&txn)? + 1;
                let mut meta = txn.open_table(META).map_err(store_error)?;
                meta.insert(WAL_EPOCH, next).map_err(store_error)?;
                Some(next)
            }
            None => None,
        };
        let committed = txn.commit();
        self.snapshots.invalidate();
        if let (Some(mut wal), Some(epoch)) = (wal, epoch) {
            match committed {
                Ok(()) => wal.restart(epoch),
                Err(_) => wal.checkpoint_failed(),
            }
        }
        committed.map_err(store_error)
    }

    /// [`commit`](Self::commit) for a catalog change that drops documents (truncate, collection
    /// or index deletion): the document cache forgets everything before the caller is answered.
    fn commit_dropping_documents(&self, write: Write<'_>) -> Result<()> {
        let committed = self.commit(write);
        self.documents.clear();
        committed
    }

    fn schema(&self, record: &CollectionRecord) -> Result<Arc<Schema>> {
        let mut schemas = self.schemas.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(schema) = schemas.get(&record.generation) {
            return Ok(schema.clone());
        }
        let schema = Arc::new(Schema::from_mapping(&record.mapping()?)?);
        if schemas.len() > 4096 {
            schemas.clear();
        }
        schemas.insert(record.generation, schema.clone());
        Ok(schema)
    }

    /// The catalog entry, or which of index and collection is missing.
    fn find_collection(
        indexes: &impl ReadableTable<&'static str, ()>,
        collections: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
        index: &str,
        collection: &str,
    ) -> Result<Result<CollectionRecord>> {
        if let Some(record) = collections.get((index, collection)).map_err(store_error)? {
            return Ok(CollectionRecord::decode(record.value()));
        }
        Ok(Err(if indexes.get(index).map_err(store_error)?.is_none() {
            StorageError::IndexNotFound {
                index: index.into(),
            }
        } else {
            StorageError::CollectionNotFound {
                index: index.into(),
                collection: collection.into(),
            }
        }))
    }

    fn find_collection_read(
        txn: &redb::ReadTransaction,
        index: &str,
        collection: &str,
    ) -> Result<CollectionRecord> {
        let indexes = txn.open_table(INDEXES).map_err(store_error)?;
        let collections = txn.open_table(COLLECTIONS).map_err(store_error)?;
        Self::find_collection(&indexes, &collections, index, collection)?
    }

    fn find_collection_write(
        txn: &WriteTransaction,
        index: &str,
        collection: &str,
    ) -> Result<Result<CollectionRecord>> {
        let indexes = txn.open_table(INDEXES).map_err(store_error)?;
        let collections = txn.open_table(COLLECTIONS).map_err(store_error)?;
        Self::find_collection(&indexes, &collections, index, collection)
    }

    fn next_counter(txn: &WriteTransaction) -> Result<u64> {
        let mut counters = txn.open_table(COUNTERS).map_err(store_error)?;
        let next = counters
            .get("next")
            .map_err(store_error)?
            .map_or(1, |v| v.value());
        counters.insert("next", next + 1).map_err(store_error)?;
        Ok(next)
    }

    /// Commits a group of batches in one transaction. The outer `Err` fails every batch.
    ///
    /// A group's batches mostly write into one collection: its catalog entry, schema and tables
    /// are looked up and opened once per group, not once per batch.
    fn commit_group(&self, batches: Vec<WriteBatch>) -> Result<Vec<Result<Vec<Outcome>>>> {
        if let Some(wal) = &self.wal {
            let wal = lock_wal(wal);
            if wal.can_append(self.options.log_checkpoint_bytes) {
                return self.stage_group(wal, batches);
            }
        }
        self.commit_group_in_redb(batches)
    }

    /// Acknowledges a group on the log: its batches are checked against the pending writes and
    /// redb's snapshot, its effects appended to the log and made durable, then added to the
    /// pending writes (reads see them from there on: `apply_pending`) and the document cache.
    fn stage_group(
        &self,
        mut wal: MutexGuard<'_, Wal>,
        batches: Vec<WriteBatch>,
    ) -> Result<Vec<Result<Vec<Outcome>>>> {
        let mut results = Vec::with_capacity(batches.len());
        let mut cached = Vec::new();
        let mut payload = Vec::new();
        let mut staged = HashMap::new();
        {
            // Held while reading: an apply cannot move a pending write into redb between this
            // group's look at the pending writes and its look at the snapshot, taken after.
            let pending = lock(&self.pending);
            let snapshot = self.snapshots.current(&self.db)?;
            for batch in batches {
                let view = snapshot.collection(&batch.index, &batch.collection)?;
                let view = match view.as_ref() {
                    Ok(view) => view,
                    Err(error) => {
                        results.push(Err(error.clone()));
                        continue;
                    }
                };
                let (index, collection) = (batch.index.clone(), batch.collection.clone());
                let mut target = Staging {
                    index: &index,
                    collection: &collection,
                    view,
                    pending: &pending,
                    staged: &mut staged,
                };
                results.push(Ok(Self::apply_batch(
                    &mut target,
                    batch,
                    &mut cached,
                    Some(&mut payload),
                )?));
            }
        }
        if !payload.is_empty() {
            wal.append(&payload)
                .map_err(|e| StorageError::store(format!("the write-ahead log: {e}")))?;
            let mut pending = lock(&self.pending);
            pending.last += 1;
            let sequence = pending.last;
            pending.bytes += payload.len();
            pending.queue.push((sequence, Arc::new(payload)));
            for (key, record) in staged {
                pending.latest.insert(key, (sequence, record));
            }
        }
        for (key, document) in cached {
            self.documents.update(key, document);
        }
        drop(wal);
        Ok(results)
    }

    /// Commits a group in one redb transaction, durably: without the log, or as a checkpoint.
    fn commit_group_in_redb(&self, batches: Vec<WriteBatch>) -> Result<Vec<Result<Vec<Outcome>>>> {
        let txn = self.begin_write()?;
        let mut results = Vec::with_capacity(batches.len());
        // What the commit changes in the document cache, applied once it is durable.
        let mut cached = Vec::new();
        {
            let mut open: Vec<OpenCollection<'_>> = Vec::new();
            for batch in batches {
                let position = match open
                    .iter()
                    .position(|o| o.index == batch.index && o.collection == batch.collection)
                {
                    Some(position) => position,
                    None => {
                        let tables = self.open_collection_write(&txn, &batch)?;
                        open.push(OpenCollection {
                            index: batch.index.clone(),
                            collection: batch.collection.clone(),
                            tables,
                        });
                        open.len() - 1
                    }
                };
                results.push(match &mut open[position].tables {
                    Ok(tables) => Ok(Self::apply_batch(tables, batch, &mut cached, None)?),
                    Err(error) => Err(error.clone()),
                });
            }
        }
        let committed = self.commit(txn);
        // Whatever the commit's fate, no entry of these keys may stay as it was: the new bodies
        // if it committed, else (unknown outcome) no entry.
        let ok = committed.is_ok();
        for (key, document) in cached {
            self.documents.update(key, document.filter(|_| ok));
        }
        committed?;
        Ok(results)
    }

    /// A batch's collection, its tables open in `txn`; the inner `Err` when the index or the
    /// collection does not exist.
    fn open_collection_write<'t>(
        &self,
        txn: &'t WriteTransaction,
        batch: &WriteBatch,
    ) -> Result<Result<WriteTables<'t>>> {
        let record = match Self::find_collection_write(txn, &batch.index, &batch.collection)? {
            Ok(record) => record,
            Err(error) => return Ok(Err(error)),
        };
        let schema = self.schema(&record)?;
        let indexed = IndexedFields::new(&schema);
        let docs = txn
            .open_table(DocsTable::new(&docs_table_name(record.id)))
            .map_err(store_error)?;
        let index = txn
            .open_table(IndexTable::new(&index_table_name(record.id)))
            .map_err(store_error)?;
        Ok(Ok(WriteTables {
            indexed,
            docs,
            index,
        }))
    }

    /// Applies one batch in the group's transaction; `cached` gets each written document's key
    /// and new body (`None`: deleted) for the document cache, `log` (when the group is
    /// acknowledged on the log) each written document's entry.
    fn apply_batch(
        target: &mut impl BatchTarget,
        batch: WriteBatch,
        cached: &mut Vec<(String, Option<RawDocument>)>,
        mut log: Option<&mut Vec<u8>>,
    ) -> Result<Vec<Outcome>> {
        let mut outcomes = Vec::with_capacity(batch.operations.len());
        for operation in batch.operations {
            let id = operation.id().to_string();
            if let Err(error) = validate_document_id(&id) {
                outcomes.push(Outcome::Failed { id, error });
                continue;
            }
            let previous = target.previous(&id)?;
            let not_found = || StorageError::DocumentNotFound {
                index: batch.index.clone(),
                collection: batch.collection.clone(),
                id: id.clone(),
            };
            let precondition = match &operation {
                Operation::Put { precondition, .. } | Operation::Delete { precondition, .. } => {
                    *precondition
                }
            };
            let check = match (precondition, &previous) {
                (Precondition::Absent, Some(_)) => Err(StorageError::DocumentAlreadyExists {
                    index: batch.index.clone(),
                    collection: batch.collection.clone(),
                    id: id.clone(),
                }),
                (Precondition::Present | Precondition::Version(_), None) => Err(not_found()),
                (Precondition::Version(expected), Some(doc)) if doc.version != expected => {
                    Err(StorageError::VersionConflict {
                        id: id.clone(),
                        expected,
                        actual: doc.version,
                    })
                }
                _ => Ok(()),
            };
            if let Err(error) = check {
                outcomes.push(Outcome::Failed { id, error });
                continue;
            }
            match operation {
                Operation::Put {
                    source, info, meta, ..
                } => {
                    if !source.is_object() {
                        outcomes.push(Outcome::Failed {
                            id: id.clone(),
                            error: StorageError::InvalidDocument {
                                id,
                                reason: "document body must be an object",
                            },
                        });
                        continue;
                    }
                    let version = previous.as_ref().map_or(1, |d| d.version + 1);
                    let document = Document {
                        id: id.clone(),
                        version,
                        source,
                        info,
                        meta,
                    };
                    let bytes =
                        codec::encode(version, &document.source, &document.info, &document.meta);
                    target.put(&id, previous.as_ref(), &document, &bytes)?;
                    if let Some(log) = log.as_deref_mut() {
                        wal::push_entry(log, &batch.index, &batch.collection, &id, Some(&bytes));
                    }
                    cached.push((
                        document_cache::key(&batch.index, &batch.collection, &id),
                        codec::decode_raw(&id, &bytes).ok(),
                    ));
                    outcomes.push(Outcome::Written {
                        id,
                        version,
                        created: previous.is_none(),
                        previous,
                    });
                }
                Operation::Delete { .. } => {
                    let Some(old) = previous else {
                        outcomes.push(Outcome::Failed {
                            error: not_found(),
                            id,
                        });
                        continue;
                    };
                    target.delete(&id, &old)?;
                    if let Some(log) = log.as_deref_mut() {
                        wal::push_entry(log, &batch.index, &batch.collection, &id, None);
                    }
                    cached.push((
                        document_cache::key(&batch.index, &batch.collection, &id),
                        None,
                    ));
                    outcomes.push(Outcome::Deleted { id, previous: old });
                }
            }
        }
        Ok(outcomes)
    }

    /// Re-creates a collection's secondary index from its documents.
    fn rebuild_index(txn: &WriteTransaction, collection_id: u64, schema: &Schema) -> Result<()> {
        let index_name = index_table_name(collection_id);
        txn.delete_table(IndexTable::new(&index_name))
            .map_err(store_error)?;
        let mut index = txn
            .open_table(IndexTable::new(&index_name))
            .map_err(store_error)?;
        let docs_name = docs_table_name(collection_id);
        let docs = txn
            .open_table(DocsTable::new(&docs_name))
            .map_err(store_error)?;
        let indexed = IndexedFields::new(schema);
        for entry in docs.iter().map_err(store_error)? {
            let (id, bytes) = entry.map_err(store_error)?;
            let document = codec::decode(id.value(), bytes.value())?;
            for key in indexed.entries(&document) {
                index.insert(key.as_slice(), ()).map_err(store_error)?;
            }
        }
        Ok(())
    }

    /// The documents of a collection matching `query`, through the secondary index when the plan
    /// allows, else by a full scan.
    fn matching(
        &self,
        index: &str,
        collection: &str,
        query: &Query,
    ) -> Result<(Vec<Document>, Arc<Schema>)> {
        self.apply_pending()?;
        let txn = self.db.begin_read().map_err(store_error)?;
        let record = Self::find_collection_read(&txn, index, collection)?;
        let schema = self.schema(&record)?;
        let docs_name = docs_table_name(record.id);
        let index_name = index_table_name(record.id);
        let docs = txn
            .open_table(DocsTable::new(&docs_name))
            .map_err(store_error)?;
        let index_table = txn
            .open_table(IndexTable::new(&index_name))
            .map_err(store_error)?;
        let mut found = Vec::new();
        match plan::candidates(query, &schema, &index_table)? {
            Some(ids) => {
                for id in ids {
                    if let Some(bytes) = docs.get(id.as_str()).map_err(store_error)? {
                        let document = codec::decode(&id, bytes.value())?;
                        if query.matches(&document, &schema) {
                            found.push(document);
                        }
                    }
                }
            }
            None => {
                for entry in docs.iter().map_err(store_error)? {
                    let (id, bytes) = entry.map_err(store_error)?;
                    let document = codec::decode(id.value(), bytes.value())?;
                    if query.matches(&document, &schema) {
                        found.push(document);
                    }
                }
            }
        }
        Ok((found, schema))
    }

    /// The ids matching `query` when the secondary index answers it exactly (`plan::is_exact`),
    /// with the read transaction and collection they were read in. `None`: the general path
    /// must answer.
    fn exact_ids(
        &self,
        index: &str,
        collection: &str,
        query: &Query,
    ) -> Result<Option<(redb::ReadTransaction, CollectionRecord, plan::Ids)>> {
        self.apply_pending()?;
        let txn = self.db.begin_read().map_err(store_error)?;
        let record = Self::find_collection_read(&txn, index, collection)?;
        let schema = self.schema(&record)?;
        if !plan::is_exact(query, &schema) {
            return Ok(None);
        }
        let index_name = index_table_name(record.id);
        let index_table = txn
            .open_table(IndexTable::new(&index_name))
            .map_err(store_error)?;
        let Some(ids) = plan::candidates(query, &schema, &index_table)? else {
            return Ok(None);
        };
        drop(index_table);
        Ok(Some((txn, record, ids)))
    }

    /// `search` when the secondary index answers the query exactly and the hits are in `_id`
    /// order (no sort, no `search_after`): the total is the number of ids, and only the page's
    /// documents are read and parsed (a term matching 100 documents read and parsed all 100 to
    /// answer 10). `None`: the general path must answer.
    fn search_exact(
        &self,
        index: &str,
        collection: &str,
        request: &SearchRequest,
    ) -> Result<Option<SearchPage>> {
        if !request.sort.is_empty() || request.search_after.is_some() {
            return Ok(None);
        }
        let Some((txn, record, ids)) = self.exact_ids(index, collection, &request.query)? else {
            return Ok(None);
        };
        let docs_name = docs_table_name(record.id);
        let docs = txn
            .open_table(DocsTable::new(&docs_name))
            .map_err(store_error)?;
        // Ids are a BTreeSet: in `_id` order, the general path's order without a sort.
        let mut hits = Vec::with_capacity(request.size.min(ids.len()));
        for id in ids.iter().skip(request.from).take(request.size) {
            let bytes = docs.get(id.as_str()).map_err(store_error)?.ok_or_else(|| {
                StorageError::store(format!("the secondary index names a missing document {id}"))
            })?;
            hits.push(codec::decode(id, bytes.value())?);
        }
        let next_search_after = hits
            .last()
            .map(|document| vec![Value::String(document.id.clone())]);
        Ok(Some(SearchPage {
            total: ids.len() as u64,
            hits,
            next_search_after,
        }))
    }

    /// Number of documents in a collection (no query).
    /// Adds an index whose name was checked.
    fn insert_index(&self, index: &str) -> Result<()> {
        let txn = self.begin_write()?;
        {
            let mut indexes = txn.open_table(INDEXES).map_err(store_error)?;
            if indexes.get(index).map_err(store_error)?.is_some() {
                return Err(StorageError::IndexAlreadyExists {
                    index: index.into(),
                });
            }
            indexes.insert(index, ()).map_err(store_error)?;
        }
        self.commit(txn)
    }

    pub fn len(&self, index: &str, collection: &str) -> Result<u64> {
        self.apply_pending()?;
        let txn = self.db.begin_read().map_err(store_error)?;
        let record = Self::find_collection_read(&txn, index, collection)?;
        let docs_name = docs_table_name(record.id);
        let docs = txn
            .open_table(DocsTable::new(&docs_name))
            .map_err(store_error)?;
        docs.len().map_err(store_error)
    }
}

/// The log's lock. A panic while holding it leaves the log as the last completed call left it.
fn lock_wal(wal: &Mutex<Wal>) -> MutexGuard<'_, Wal> {
    lock(wal)
}

/// The pending writes' and the apply's locks, and the log's: a panic while holding one leaves
/// its data as the last completed change left it (pending writes are added and removed whole).
fn lock<S>(mutex: &Mutex<S>) -> MutexGuard<'_, S> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where a batch's operations land: a collection's tables in a redb write transaction, or a
/// group staged on the log (`Staging`).
trait BatchTarget {
    /// The document as the writes before this one left it.
    fn previous(&mut self, id: &str) -> Result<Option<Document>>;
    /// `id` is now `document`, stored as `bytes`; `old` is what it was.
    fn put(
        &mut self,
        id: &str,
        old: Option<&Document>,
        document: &Document,
        bytes: &[u8],
    ) -> Result<()>;
    /// `id`, which was `old`, is deleted.
    fn delete(&mut self, id: &str, old: &Document) -> Result<()>;
}

impl BatchTarget for WriteTables<'_> {
    fn previous(&mut self, id: &str) -> Result<Option<Document>> {
        match self.docs.get(id).map_err(store_error)? {
            Some(bytes) => Ok(Some(codec::decode(id, bytes.value())?)),
            None => Ok(None),
        }
    }

    fn put(
        &mut self,
        id: &str,
        old: Option<&Document>,
        document: &Document,
        bytes: &[u8],
    ) -> Result<()> {
        if let Some(old) = old {
            for key in self.indexed.entries(old) {
                self.index.remove(key.as_slice()).map_err(store_error)?;
            }
        }
        for key in self.indexed.entries(document) {
            self.index.insert(key.as_slice(), ()).map_err(store_error)?;
        }
        self.docs.insert(id, bytes).map_err(store_error)?;
        Ok(())
    }

    fn delete(&mut self, id: &str, old: &Document) -> Result<()> {
        for key in self.indexed.entries(old) {
            self.index.remove(key.as_slice()).map_err(store_error)?;
        }
        self.docs.remove(id).map_err(store_error)?;
        Ok(())
    }
}

/// A group staged on the log, one collection at a time: what it reads is its own earlier writes,
/// else the pending ones (`Pending::latest`), else redb's snapshot; what it writes goes to
/// `staged` (applied to redb later, `Store::apply_pending`).
struct Staging<'a> {
    index: &'a str,
    collection: &'a str,
    view: &'a snapshot::CollectionView,
    pending: &'a Pending,
    /// The group's own writes: (index, collection, id) → stored record, `None` deleted.
    staged: &'a mut HashMap<DocumentKey, Option<Vec<u8>>>,
}

impl BatchTarget for Staging<'_> {
    fn previous(&mut self, id: &str) -> Result<Option<Document>> {
        let key = (
            self.index.to_string(),
            self.collection.to_string(),
            id.to_string(),
        );
        let record = match self.staged.get(&key) {
            Some(record) => record.as_deref(),
            None => match self.pending.latest.get(&key) {
                Some((_, record)) => record.as_deref(),
                None => {
                    return match self.view.docs.get(id).map_err(store_error)? {
                        Some(bytes) => Ok(Some(codec::decode(id, bytes.value())?)),
                        None => Ok(None),
                    }
                }
            },
        };
        record.map(|bytes| codec::decode(id, bytes)).transpose()
    }

    fn put(&mut self, id: &str, _: Option<&Document>, _: &Document, bytes: &[u8]) -> Result<()> {
        let key = (
            self.index.to_string(),
            self.collection.to_string(),
            id.to_string(),
        );
        self.staged.insert(key, Some(bytes.to_vec()));
        Ok(())
    }

    fn delete(&mut self, id: &str, _: &Document) -> Result<()> {
        let key = (
            self.index.to_string(),
            self.collection.to_string(),
            id.to_string(),
        );
        self.staged.insert(key, None);
        Ok(())
    }
}

/// (index, collection, document id).
type DocumentKey = (String, String, String);

/// Writes acknowledged on the log and not yet applied to redb (`apply_pending`).
#[derive(Default)]
struct Pending {
    /// Each group's log record, with its sequence number, in order.
    queue: Vec<(u64, Arc<Vec<u8>>)>,
    /// Each pending document's latest state and the sequence number of the group that wrote it.
    latest: HashMap<DocumentKey, (u64, Option<Vec<u8>>)>,
    /// Bytes of records in `queue`.
    bytes: usize,
    /// The last sequence number given.
    last: u64,
}

/// Once this many bytes of records are pending, the group that added them applies them.
const APPLY_BYTES: usize = 1 << 20;

/// A collection of a group being committed: where its batches go.
struct OpenCollection<'t> {
    index: String,
    collection: String,
    tables: Result<WriteTables<'t>>,
}

/// A collection's indexed fields and tables, open in a write transaction.
struct WriteTables<'t> {
    indexed: IndexedFields,
    docs: redb::Table<'t, &'static str, &'static [u8]>,
    index: redb::Table<'t, &'static [u8], ()>,
}

/// The indexed fields of a schema, ready to produce entry keys.
struct IndexedFields {
    /// (source path, encoded field prefix).
    fields: Vec<(String, Vec<u8>)>,
}

impl IndexedFields {
    fn new(schema: &Schema) -> IndexedFields {
        IndexedFields {
            fields: schema
                .indexed_fields()
                .map(|(path, field)| (field.source_path.clone(), keys::field_prefix(path)))
                .collect(),
        }
    }

    fn entries(&self, document: &Document) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for (source_path, prefix) in &self.fields {
            for value in field_values(document, source_path) {
                if let Some(key) = keys::entry(prefix, &value, &document.id) {
                    out.push(key);
                }
            }
        }
        out
    }
}

impl Storage for Store {
    fn create_index(&self, index: &str) -> Result<()> {
        validate_index_name(index)?;
        self.insert_index(index)
    }

    fn create_internal_index(&self, index: &str) -> Result<()> {
        validate_internal_index_name(index)?;
        self.insert_index(index)
    }

    fn delete_index(&self, index: &str) -> Result<()> {
        let txn = self.begin_write()?;
        {
            let mut indexes = txn.open_table(INDEXES).map_err(store_error)?;
            if indexes.remove(index).map_err(store_error)?.is_none() {
                return Err(StorageError::IndexNotFound {
                    index: index.into(),
                });
            }
            let mut collections = txn.open_table(COLLECTIONS).map_err(store_error)?;
            let mut doomed = Vec::new();
            for entry in collections.range((index, "")..).map_err(store_error)? {
                let (key, value) = entry.map_err(store_error)?;
                let (entry_index, name) = key.value();
                if entry_index != index {
                    break;
                }
                doomed.push((
                    name.to_string(),
                    CollectionRecord::decode(value.value())?.id,
                ));
            }
            for (name, id) in doomed {
                collections
                    .remove((index, name.as_str()))
                    .map_err(store_error)?;
                txn.delete_table(DocsTable::new(&docs_table_name(id)))
                    .map_err(store_error)?;
                txn.delete_table(IndexTable::new(&index_table_name(id)))
                    .map_err(store_error)?;
            }
        }
        self.commit_dropping_documents(txn)
    }

    fn index_exists(&self, index: &str) -> Result<bool> {
        let txn = self.db.begin_read().map_err(store_error)?;
        let indexes = txn.open_table(INDEXES).map_err(store_error)?;
        let exists = indexes.get(index).map_err(store_error)?.is_some();
        Ok(exists)
    }

    fn list_indexes(&self) -> Result<Vec<String>> {
        let txn = self.db.begin_read().map_err(store_error)?;
        let indexes = txn.open_table(INDEXES).map_err(store_error)?;
        let mut out = Vec::new();
        for entry in indexes.iter().map_err(store_error)? {
            let name = entry.map_err(store_error)?.0.value().to_string();
            if !is_internal_index(&name) {
                out.push(name);
            }
        }
        Ok(out)
    }

    fn create_collection(&self, index: &str, collection: &str, mapping: &Value) -> Result<()> {
        validate_collection_name(collection)?;
        Schema::from_mapping(mapping)?;
        let txn = self.begin_write()?;
        let id = match Self::find_collection_write(&txn, index, collection)? {
            Ok(_) => {
                return Err(StorageError::CollectionAlreadyExists {
                    index: index.into(),
                    collection: collection.into(),
                })
            }
            Err(StorageError::CollectionNotFound { .. }) => Self::next_counter(&txn)?,
            Err(error) => return Err(error),
        };
        {
            let mut collections = txn.open_table(COLLECTIONS).map_err(store_error)?;
            let record = CollectionRecord::encode(id, id, mapping);
            collections
                .insert((index, collection), record.as_slice())
                .map_err(store_error)?;
            txn.open_table(DocsTable::new(&docs_table_name(id)))
                .map_err(store_error)?;
            txn.open_table(IndexTable::new(&index_table_name(id)))
                .map_err(store_error)?;
        }
        self.commit(txn)
    }

    fn update_mapping(&self, index: &str, collection: &str, mapping: &Value) -> Result<Value> {
        if !mapping.is_object() {
            return Err(StorageError::InvalidMapping {
                reason: "a mapping is a JSON object".into(),
            });
        }
        let txn = self.begin_write()?;
        let record = Self::find_collection_write(&txn, index, collection)??;
        let mut merged = record.mapping()?;
        merge_mapping(&mut merged, mapping);
        let old_schema = self.schema(&record)?;
        let new_schema = Schema::from_mapping(&merged)?;
        let indexed = |s: &Schema| -> Vec<(String, String)> {
            s.indexed_fields()
                .map(|(p, f)| (p.clone(), f.source_path.clone()))
                .collect()
        };
        if indexed(&old_schema) != indexed(&new_schema) {
            Self::rebuild_index(&txn, record.id, &new_schema)?;
        }
        let generation = Self::next_counter(&txn)?;
        {
            let mut collections = txn.open_table(COLLECTIONS).map_err(store_error)?;
            let bytes = CollectionRecord::encode(record.id, generation, &merged);
            collections
                .insert((index, collection), bytes.as_slice())
                .map_err(store_error)?;
        }
        self.commit(txn)?;
        Ok(merged)
    }

    fn get_mapping(&self, index: &str, collection: &str) -> Result<Value> {
        let txn = self.db.begin_read().map_err(store_error)?;
        Self::find_collection_read(&txn, index, collection)?.mapping()
    }

    fn delete_collection(&self, index: &str, collection: &str) -> Result<()> {
        let txn = self.begin_write()?;
        let record = Self::find_collection_write(&txn, index, collection)??;
        {
            let mut collections = txn.open_table(COLLECTIONS).map_err(store_error)?;
            collections
                .remove((index, collection))
                .map_err(store_error)?;
        }
        txn.delete_table(DocsTable::new(&docs_table_name(record.id)))
            .map_err(store_error)?;
        txn.delete_table(IndexTable::new(&index_table_name(record.id)))
            .map_err(store_error)?;
        self.commit_dropping_documents(txn)
    }

    fn collection_exists(&self, index: &str, collection: &str) -> Result<bool> {
        let txn = self.db.begin_read().map_err(store_error)?;
        let collections = txn.open_table(COLLECTIONS).map_err(store_error)?;
        let exists = collections
            .get((index, collection))
            .map_err(store_error)?
            .is_some();
        Ok(exists)
    }

    fn list_collections(&self, index: &str) -> Result<Vec<String>> {
        let txn = self.db.begin_read().map_err(store_error)?;
        let indexes = txn.open_table(INDEXES).map_err(store_error)?;
        if indexes.get(index).map_err(store_error)?.is_none() {
            return Err(StorageError::IndexNotFound {
                index: index.into(),
            });
        }
        let collections = txn.open_table(COLLECTIONS).map_err(store_error)?;
        let mut out = Vec::new();
        for entry in collections.range((index, "")..).map_err(store_error)? {
            let (key, _) = entry.map_err(store_error)?;
            let (entry_index, name) = key.value();
            if entry_index != index {
                break;
            }
            out.push(name.to_string());
        }
        Ok(out)
    }

    fn truncate_collection(&self, index: &str, collection: &str) -> Result<()> {
        let txn = self.begin_write()?;
        let record = Self::find_collection_write(&txn, index, collection)??;
        let docs_name = docs_table_name(record.id);
        let index_name = index_table_name(record.id);
        txn.delete_table(DocsTable::new(&docs_name))
            .map_err(store_error)?;
        txn.delete_table(IndexTable::new(&index_name))
            .map_err(store_error)?;
        txn.open_table(DocsTable::new(&docs_name))
            .map_err(store_error)?;
        txn.open_table(IndexTable::new(&index_name))
            .map_err(store_error)?;
        self.commit_dropping_documents(txn)
    }

    fn get(&self, index: &str, collection: &str, id: &str) -> Result<Option<Document>> {
        Ok(self
            .mget(index, collection, &[id.to_string()])?
            .pop()
            .flatten())
    }

    fn get_raw(&self, index: &str, collection: &str, id: &str) -> Result<Option<RawDocument>> {
        let key = document_cache::key(index, collection, id);
        // Before the snapshot: a commit after this refuses the fill below.
        let token = self.documents.token(&key);
        self.apply_pending()?;
        let snapshot = self.snapshots.current(&self.db)?;
        let view = snapshot.collection(index, collection)?;
        let view = view.as_ref().as_ref().map_err(Clone::clone)?;
        let raw = match view.docs.get(id).map_err(store_error)? {
            Some(bytes) => codec::decode_raw(id, bytes.value())?,
            None => return Ok(None),
        };
        if let Some(token) = token {
            self.documents.fill(token, key, raw.clone());
        }
        Ok(Some(raw))
    }

    fn get_raw_in_memory(&self, index: &str, collection: &str, id: &str) -> Option<RawDocument> {
        self.documents
            .get(&document_cache::key(index, collection, id))
    }

    fn mget(&self, index: &str, collection: &str, ids: &[String]) -> Result<Vec<Option<Document>>> {
        self.apply_pending()?;
        let snapshot = self.snapshots.current(&self.db)?;
        let view = snapshot.collection(index, collection)?;
        let view = view.as_ref().as_ref().map_err(Clone::clone)?;
        ids.iter()
            .map(
                |id| match view.docs.get(id.as_str()).map_err(store_error)? {
                    Some(bytes) => codec::decode(id, bytes.value()).map(Some),
                    None => Ok(None),
                },
            )
            .collect()
    }

    fn write(&self, batch: WriteBatch) -> Result<Vec<Outcome>> {
        if self.options.group_commit {
            self.group
                .submit(batch, &|batches| self.commit_group(batches))
        } else {
            self.commit_group(vec![batch])?
                .pop()
                .expect("one result per batch")
        }
    }

    fn search(&self, index: &str, collection: &str, request: &SearchRequest) -> Result<SearchPage> {
        if let Some(page) = self.search_exact(index, collection, request)? {
            return Ok(page);
        }
        let (found, schema) = self.matching(index, collection, &request.query)?;
        Ok(page(found, request, &schema))
    }

    fn count(&self, index: &str, collection: &str, query: &Query) -> Result<u64> {
        // Neither reads a document: the table's length, or the exact index's ids.
        if matches!(query, Query::MatchAll) {
            return self.len(index, collection);
        }
        if let Some((_, _, ids)) = self.exact_ids(index, collection, query)? {
            return Ok(ids.len() as u64);
        }
        Ok(self.matching(index, collection, query)?.0.len() as u64)
    }

    fn get_internal(&self, kind: &str, key: &str) -> Result<Option<Value>> {
        self.snapshots.current(&self.db)?.internal(kind, key)
    }

    fn put_internal(&self, kind: &str, key: &str, value: Option<&Value>) -> Result<bool> {
        let txn = self.begin_write()?;
        let existed = {
            let mut internal = txn.open_table(INTERNAL).map_err(store_error)?;
            match value {
                Some(value) => {
                    let bytes = serde_json::to_vec(value).map_err(|e| {
                        StorageError::store(format!("internal record {kind}/{key}: {e}"))
                    })?;
                    internal
                        .insert((kind, key), bytes.as_slice())
                        .map_err(store_error)?
                        .is_some()
                }
                None => internal.remove((kind, key)).map_err(store_error)?.is_some(),
            }
        };
        self.commit(txn)?;
        Ok(existed)
    }
}
