//! The embedded store's handle, [`EmbeddedStorage`], and the two threads it owns.
//!
//! The **log thread** commits deferred writes (`Storage::write_deferred`): a caller queues a
//! batch with what to do once it is durable and returns at once. The thread takes every batch
//! queued (those that arrived while it committed the last group), commits them as one group
//! (`Store::commit_group`: one log record and one `fdatasync`), then calls each batch's `then`,
//! in order, itself. A durable write thus costs no thread parked per writer and no wake-up per
//! writer: the host's network thread queues it, and this thread answers it (BENCHMARKS.md,
//! "durable create without the blocking-pool hop").
//!
//! The **applier thread** applies the pending groups to redb (`Store::apply_pending`) once a MiB
//! of them waits, so that no writer waits for that apply (tens of ms) before it is answered.
//!
//! Invariant: a deferred batch's `then` runs after its group's `commit_group` returned, so what
//! it is told was written is durable, in the document cache and visible to every read (the
//! pending groups); groups commit and `then`s run in the order batches were queued.
//!
//! Dropping the handle lets the log thread commit and answer what is queued, then joins both
//! threads, so the database is closed when the drop returns (a test can open it again).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use serde_json::Value;

use super::group_commit::commit_guarded;
use super::{EmbeddedOptions, Store};
use crate::document::{Document, Outcome, RawDocument, WriteBatch};
use crate::error::{Result, StorageError};
use crate::query::{Query, SearchPage, SearchRequest};
use crate::storage::{Storage, WriteDone};

/// Deferred batches queued past this many: `can_defer_writes` says no, and the host writes on
/// its blocking pool, whose queue is bounded (so a flood of writes meets `overloaded` there).
const MAX_QUEUED: usize = 4096;

/// A batch waiting for the log thread, with what to do once it is durable.
type Deferred = (WriteBatch, WriteDone);

/// The embedded document store. Cheap to share: wrap it in an `Arc`.
pub struct EmbeddedStorage {
    /// The log and applier threads; `None` without group commit (every write is then its own
    /// commit, on the caller's thread). First: they are joined before `store` drops.
    threads: Option<Threads>,
    store: Arc<Store>,
}

struct Threads {
    /// Batches for the log thread; `None` once closing.
    queue: Option<Sender<Deferred>>,
    /// Batches queued and not yet taken by the log thread.
    queued: Arc<AtomicUsize>,
    /// Wakes the applier (a full channel: it is woken already).
    apply: SyncSender<()>,
    log: Option<JoinHandle<()>>,
    applier: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for EmbeddedStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.store.fmt(f)
    }
}

impl EmbeddedStorage {
    /// Opens (or creates) the store in the data folder `dir` (file `data.redb`). After a crash
    /// redb repairs the file on open by itself; acknowledged writes are all there.
    pub fn open(dir: impl AsRef<Path>, options: EmbeddedOptions) -> Result<EmbeddedStorage> {
        EmbeddedStorage::start(Store::open(dir, options)?)
    }

    /// A store that lives in memory only (unit tests of code above the store): same engine,
    /// nothing written to disk.
    pub fn in_memory() -> Result<EmbeddedStorage> {
        EmbeddedStorage::start(Store::in_memory()?)
    }

    fn start(store: Store) -> Result<EmbeddedStorage> {
        let store = Arc::new(store);
        if !store.options.group_commit {
            return Ok(EmbeddedStorage {
                threads: None,
                store,
            });
        }
        let spawn_error =
            |e: std::io::Error| StorageError::store(format!("cannot start a store thread: {e}"));
        let (apply, wake) = mpsc::sync_channel(1);
        let applier = {
            let store = Arc::clone(&store);
            std::thread::Builder::new()
                .name("store-apply".into())
                .spawn(move || run_applier(&store, &wake))
                .map_err(spawn_error)?
        };
        let (queue, batches) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let log = {
            let (store, queued, apply) = (Arc::clone(&store), Arc::clone(&queued), apply.clone());
            std::thread::Builder::new()
                .name("store-log".into())
                .spawn(move || run_log(&store, &batches, &queued, &apply))
                .map_err(spawn_error)?
        };
        Ok(EmbeddedStorage {
            threads: Some(Threads {
                queue: Some(queue),
                queued,
                apply,
                log: Some(log),
                applier: Some(applier),
            }),
            store,
        })
    }

    /// The database file (empty for an in-memory store).
    pub fn path(&self) -> &Path {
        self.store.path()
    }

    /// Number of documents in a collection (no query).
    pub fn len(&self, index: &str, collection: &str) -> Result<u64> {
        self.store.len(index, collection)
    }

    /// Wakes the applier when a MiB is pending (without threads: applies here).
    fn apply_if_due(&self) {
        if !self.store.apply_is_due() {
            return;
        }
        match &self.threads {
            Some(threads) => {
                let _ = threads.apply.try_send(());
            }
            None => {
                let _ = self.store.apply_pending();
            }
        }
    }
}

/// The log thread: commits what is queued as one group, answers it, again.
fn run_log(
    store: &Store,
    batches: &Receiver<Deferred>,
    queued: &AtomicUsize,
    apply: &SyncSender<()>,
) {
    while let Ok(first) = batches.recv() {
        let mut group = vec![first];
        group.extend(batches.try_iter());
        queued.fetch_sub(group.len(), Ordering::AcqRel);
        let (group, thens): (Vec<WriteBatch>, Vec<WriteDone>) = group.into_iter().unzip();
        let results = commit_guarded(group, &|batches| store.commit_group(batches));
        for (then, result) in thens.into_iter().zip(results) {
            // A `then` that panics is its caller's bug: the others are still answered.
            let _ = catch_unwind(AssertUnwindSafe(|| then(result)));
        }
        if store.apply_is_due() {
            let _ = apply.try_send(());
        }
    }
}

/// The applier thread: applies the pending groups each time it is woken.
fn run_applier(store: &Store, wake: &Receiver<()>) {
    while wake.recv().is_ok() {
        // A failure leaves the groups pending: the next apply, or a read, retries them.
        let _ = store.apply_pending();
    }
}

impl Drop for EmbeddedStorage {
    fn drop(&mut self) {
        let Some(threads) = &mut self.threads else {
            return;
        };
        // The log thread ends once it answered what is queued; the applier once the log thread
        // and this handle dropped their senders.
        threads.queue = None;
        let (closed, _) = mpsc::sync_channel(0);
        threads.apply = closed;
        // The last handle may drop on the log thread itself (a `then` held it): both threads
        // then end on their own once the log thread's loop sees the queue closed.
        let on_log_thread = threads
            .log
            .as_ref()
            .is_some_and(|log| log.thread().id() == std::thread::current().id());
        if on_log_thread {
            return;
        }
        for handle in [threads.log.take(), threads.applier.take()]
            .into_iter()
            .flatten()
        {
            let _ = handle.join();
        }
    }
}

impl Storage for EmbeddedStorage {
    fn create_index(&self, index: &str) -> Result<()> {
        self.store.create_index(index)
    }

    fn create_internal_index(&self, index: &str) -> Result<()> {
        self.store.create_internal_index(index)
    }

    fn delete_index(&self, index: &str) -> Result<()> {
        self.store.delete_index(index)
    }

    fn index_exists(&self, index: &str) -> Result<bool> {
        self.store.index_exists(index)
    }

    fn list_indexes(&self) -> Result<Vec<String>> {
        self.store.list_indexes()
    }

    fn create_collection(&self, index: &str, collection: &str, mapping: &Value) -> Result<()> {
        self.store.create_collection(index, collection, mapping)
    }

    fn update_mapping(&self, index: &str, collection: &str, mapping: &Value) -> Result<Value> {
        self.store.update_mapping(index, collection, mapping)
    }

    fn get_mapping(&self, index: &str, collection: &str) -> Result<Value> {
        self.store.get_mapping(index, collection)
    }

    fn delete_collection(&self, index: &str, collection: &str) -> Result<()> {
        self.store.delete_collection(index, collection)
    }

    fn collection_exists(&self, index: &str, collection: &str) -> Result<bool> {
        self.store.collection_exists(index, collection)
    }

    fn list_collections(&self, index: &str) -> Result<Vec<String>> {
        self.store.list_collections(index)
    }

    fn truncate_collection(&self, index: &str, collection: &str) -> Result<()> {
        self.store.truncate_collection(index, collection)
    }

    fn get(&self, index: &str, collection: &str, id: &str) -> Result<Option<Document>> {
        self.store.get(index, collection, id)
    }

    fn get_raw(&self, index: &str, collection: &str, id: &str) -> Result<Option<RawDocument>> {
        self.store.get_raw(index, collection, id)
    }

    fn get_raw_in_memory(&self, index: &str, collection: &str, id: &str) -> Option<RawDocument> {
        self.store.get_raw_in_memory(index, collection, id)
    }

    fn mget(&self, index: &str, collection: &str, ids: &[String]) -> Result<Vec<Option<Document>>> {
        self.store.mget(index, collection, ids)
    }

    fn write(&self, batch: WriteBatch) -> Result<Vec<Outcome>> {
        let result = self.store.write(batch);
        // The group is answered; the next one may already run on the log meanwhile.
        self.apply_if_due();
        result
    }

    fn can_defer_writes(&self) -> bool {
        self.threads
            .as_ref()
            .is_some_and(|threads| threads.queued.load(Ordering::Acquire) < MAX_QUEUED)
    }

    fn write_deferred(&self, batch: WriteBatch, then: WriteDone) {
        let Some(queue) = self.threads.as_ref().and_then(|t| t.queue.as_ref()) else {
            return then(self.write(batch));
        };
        let threads = self.threads.as_ref().expect("a queue has threads");
        threads.queued.fetch_add(1, Ordering::AcqRel);
        if let Err(mpsc::SendError((batch, then))) = queue.send((batch, then)) {
            // The log thread is gone (it cannot end while this handle holds the queue, unless
            // it panicked outside a commit): nothing was written.
            threads.queued.fetch_sub(1, Ordering::AcqRel);
            let _ = batch;
            then(Err(StorageError::store(
                "the store's log thread stopped; nothing was written",
            )));
        }
    }

    fn search(&self, index: &str, collection: &str, request: &SearchRequest) -> Result<SearchPage> {
        self.store.search(index, collection, request)
    }

    fn count(&self, index: &str, collection: &str, query: &Query) -> Result<u64> {
        self.store.count(index, collection, query)
    }

    fn get_internal(&self, kind: &str, key: &str) -> Result<Option<Value>> {
        self.store.get_internal(kind, key)
    }

    fn put_internal(&self, kind: &str, key: &str, value: Option<&Value>) -> Result<bool> {
        self.store.put_internal(kind, key, value)
    }
}
