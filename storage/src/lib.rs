//! Switchyard's document storage: the [`Storage`] trait the host talks to, Kuzzle's search
//! subset ([`Query`], [`SearchRequest`]), the embedded durable store ([`EmbeddedStorage`],
//! redb with group commit) and the PostgreSQL one ([`PostgresStorage`], shared by a cluster's
//! nodes). No dependency on the host: it maps [`StorageError`] to Kuzzle errors.
#![forbid(unsafe_code)]

mod document;
mod embedded;
mod error;
pub mod mapping;
pub mod names;
mod pg;
mod query;
mod storage;

pub use document::{
    Document, KuzzleInfo, Operation, Outcome, Precondition, RawDocument, WriteBatch,
};
pub use embedded::{EmbeddedOptions, EmbeddedStorage, DEFAULT_DOCUMENT_CACHE_BYTES};
pub use error::{QueryError, Result, StorageError};
pub use pg::{redact_url, PostgresOptions, PostgresStorage};
pub use query::{
    compare_values, BoolQuery, Query, RangeBounds, SearchPage, SearchRequest, SortKey,
};
pub use storage::{Storage, WriteDone};
