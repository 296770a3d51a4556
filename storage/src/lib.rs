//! Switchyard's document storage: the [`Storage`] trait the host talks to, Kuzzle's search
//! subset ([`Query`], [`SearchRequest`]), and the embedded durable store ([`EmbeddedStorage`],
//! redb with group commit). No dependency on the host: it maps [`StorageError`] to Kuzzle errors.
#![forbid(unsafe_code)]

mod document;
mod embedded;
mod error;
pub mod mapping;
pub mod names;
mod query;
mod storage;

pub use document::{
    Document, KuzzleInfo, Operation, Outcome, Precondition, RawDocument, WriteBatch,
};
pub use embedded::{EmbeddedOptions, EmbeddedStorage};
pub use error::{QueryError, Result, StorageError};
pub use query::{
    compare_values, BoolQuery, Query, RangeBounds, SearchPage, SearchRequest, SortKey,
};
pub use storage::Storage;
