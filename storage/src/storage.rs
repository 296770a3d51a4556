//! The `Storage` interface: what the host asks of any document store (the embedded one here, a
//! PostgreSQL one later). Synchronous and object safe: the host holds an `Arc<dyn Storage>` and
//! calls it from its blocking pool — except `write_deferred`, which never blocks (a store that
//! cannot promise that says so with `can_defer_writes`). Nothing in it assumes the store is
//! in-process: every argument and result is owned data.

use serde_json::Value;

use crate::document::{Document, Outcome, RawDocument, WriteBatch};
use crate::error::Result;
use crate::query::{Query, SearchPage, SearchRequest};

/// What a deferred write calls once its batch is durable (`Storage::write_deferred`).
pub type WriteDone = Box<dyn FnOnce(Result<Vec<Outcome>>) + Send>;

/// A durable document store of indexes, collections and documents.
///
/// Every document call first checks that the index then the collection exist
/// (`IndexNotFound`, `CollectionNotFound`). Names are checked with Kuzzle's rules on creation.
pub trait Storage: Send + Sync {
    /// Creates an empty index. `IndexAlreadyExists` if it exists, `InvalidIndexName`.
    fn create_index(&self, index: &str) -> Result<()>;
    /// Creates an internal index (`%kuzzle`: `%` then a valid name, see
    /// [`crate::names::INTERNAL_INDEX_PREFIX`]), which `create_index` refuses.
    /// `IndexAlreadyExists` if it exists, `InvalidIndexName`.
    fn create_internal_index(&self, index: &str) -> Result<()>;
    /// Deletes an index with its collections and documents. `IndexNotFound`.
    fn delete_index(&self, index: &str) -> Result<()>;
    fn index_exists(&self, index: &str) -> Result<bool>;
    /// Public index names (internal ones left out), sorted.
    fn list_indexes(&self) -> Result<Vec<String>>;

    /// Creates a collection with its mapping (a JSON object, `{}` for none); the fields the
    /// mapping types as keyword, numbers, date or boolean get secondary indexes. The index must
    /// exist. `CollectionAlreadyExists` if it exists (Kuzzle then updates the mapping: the host
    /// calls `update_mapping`).
    fn create_collection(&self, index: &str, collection: &str, mapping: &Value) -> Result<()>;
    /// Merges `mapping` into the stored one (objects key by key, as Elasticsearch does), rebuilds
    /// the secondary indexes if the indexed fields changed, and returns the merged mapping.
    fn update_mapping(&self, index: &str, collection: &str, mapping: &Value) -> Result<Value>;
    /// The stored mapping, as given (the host adds or hides `_kuzzle_info`).
    fn get_mapping(&self, index: &str, collection: &str) -> Result<Value>;
    fn delete_collection(&self, index: &str, collection: &str) -> Result<()>;
    fn collection_exists(&self, index: &str, collection: &str) -> Result<bool>;
    /// Collection names of an index, sorted. `IndexNotFound`.
    fn list_collections(&self, index: &str) -> Result<Vec<String>>;
    /// Deletes every document, keeps the collection and its mapping.
    fn truncate_collection(&self, index: &str, collection: &str) -> Result<()>;

    /// One document, `None` if absent.
    fn get(&self, index: &str, collection: &str, id: &str) -> Result<Option<Document>>;
    /// One document with its body as JSON text, `None` if absent. A store that keeps bodies as
    /// text returns them without parsing them (`document:get` copies them into its answer).
    fn get_raw(&self, index: &str, collection: &str, id: &str) -> Result<Option<RawDocument>> {
        Ok(self.get(index, collection, id)?.map(RawDocument::from))
    }
    /// [`get_raw`](Self::get_raw) answered from memory, without any I/O and without blocking
    /// (the host calls it on a network thread): `Some` only when the store holds the document's
    /// current body in memory, `None` when it cannot tell without reading (the caller then
    /// calls `get_raw` on its blocking pool). Never stale: once a write or a delete returned,
    /// this answers its result or `None`. A store shared by several processes cannot promise
    /// that, so the default answers `None`.
    fn get_raw_in_memory(&self, index: &str, collection: &str, id: &str) -> Option<RawDocument> {
        let _ = (index, collection, id);
        None
    }
    /// Several documents, in the order of `ids`.
    fn mget(&self, index: &str, collection: &str, ids: &[String]) -> Result<Vec<Option<Document>>>;
    /// Applies a batch atomically and durably: when this returns `Ok`, every `Written` and
    /// `Deleted` outcome is on disk, and a crash before it returns keeps all or none of them.
    /// One outcome per operation, in order; an operation whose precondition fails (or whose id or
    /// body is invalid) gets `Outcome::Failed` and the others still apply. `Err` means nothing of
    /// the batch was applied.
    fn write(&self, batch: WriteBatch) -> Result<Vec<Outcome>>;
    /// Whether [`write_deferred`](Self::write_deferred) would queue a batch now without blocking
    /// its caller: false for a store without a thread of its own (the default), and while its
    /// queue is long (the caller then calls `write` from its blocking pool, whose queue is
    /// bounded).
    fn can_defer_writes(&self) -> bool {
        false
    }
    /// [`write`](Self::write) without waiting: queues the batch and returns; `then` is called
    /// once, on a thread of the store's, with what `write` would have returned, once that is
    /// durable (and visible to every read). Batches commit, and their `then`s run, in the order
    /// they were queued. `then` must not block: it runs where the next batches are committed.
    /// Call it only when `can_defer_writes` said so: the default runs `write` on the caller's
    /// thread.
    fn write_deferred(&self, batch: WriteBatch, then: WriteDone) {
        then(self.write(batch));
    }

    /// Matching documents, sorted (then by `_id`), after `search_after`, from/size applied.
    fn search(&self, index: &str, collection: &str, request: &SearchRequest) -> Result<SearchPage>;
    /// How many documents match.
    fn count(&self, index: &str, collection: &str, query: &Query) -> Result<u64>;

    /// An internal record: a JSON value the host keeps outside every index (Kuzzle's internal
    /// index: validation specifications under `kind` `"validations"`, key `<index>#<collection>`).
    /// Deleting an index or a collection never touches them. `None` if absent.
    fn get_internal(&self, kind: &str, key: &str) -> Result<Option<Value>>;
    /// Stores an internal record durably (on disk when this returns), replacing any previous
    /// one; `None` deletes it. Returns whether a record was there before.
    fn put_internal(&self, kind: &str, key: &str, value: Option<&Value>) -> Result<bool>;
}
