//! The crate's error type. Messages follow Kuzzle's where Kuzzle has one; the host maps each variant
//! to its Kuzzle error id (the mapping is in `README.md`, "Errors").

use std::fmt;

/// Everything a [`crate::Storage`] call can fail with.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum StorageError {
    /// The index does not exist (`services.storage.unknown_index`).
    IndexNotFound { index: String },
    /// The collection does not exist (`services.storage.unknown_collection`).
    CollectionNotFound { index: String, collection: String },
    /// `create_index` on an existing index (`services.storage.index_already_exists`).
    IndexAlreadyExists { index: String },
    /// `create_collection` on an existing collection (Kuzzle updates the mapping instead: the host
    /// decides).
    CollectionAlreadyExists { index: String, collection: String },
    /// The document does not exist (`services.storage.not_found`).
    DocumentNotFound {
        index: String,
        collection: String,
        id: String,
    },
    /// A `Precondition::Absent` write found a document (`services.storage.document_already_exists`).
    DocumentAlreadyExists {
        index: String,
        collection: String,
        id: String,
    },
    /// A `Precondition::Version` write found another version.
    VersionConflict {
        id: String,
        expected: u64,
        actual: u64,
    },
    /// The index name breaks Kuzzle's rules (`services.storage.invalid_index_name`).
    InvalidIndexName { name: String },
    /// The collection name breaks Kuzzle's rules (`services.storage.invalid_collection_name`).
    InvalidCollectionName { name: String },
    /// The document id cannot be stored (empty, too long, or `_search`).
    InvalidId { id: String, reason: &'static str },
    /// The document source is not a JSON object.
    InvalidDocument { id: String, reason: &'static str },
    /// The document is larger than the host's limit (the host refuses it before the store sees
    /// it; `size` and `limit` in bytes of its JSON).
    DocumentTooLarge {
        id: String,
        size: usize,
        limit: usize,
    },
    /// The document breaks its collection's validation specifications (the host refuses it
    /// before the store sees it): `field` is the failing field's path, `None` for the document
    /// as a whole (a `strict` specification and an unspecified field).
    FailedValidation {
        id: String,
        field: Option<String>,
        message: String,
    },
    /// The mapping is not a JSON object, or its `properties` are malformed.
    InvalidMapping { reason: String },
    /// The search body or query is refused; see [`QueryError`].
    Query(QueryError),
    /// The store failed (I/O, corruption, a full disk). Nothing acknowledged is lost.
    Store { message: String },
    /// The database was laid out by a newer Switchyard (`switchyard_schema`'s version is
    /// `found`, this build knows up to `known`): refused at start-up, nothing touched.
    SchemaTooNew { found: i32, known: i32 },
}

/// Why a search body was refused.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum QueryError {
    /// A query clause that is not Elasticsearch DSL (`services.storage.unknown_query_keyword`).
    UnknownKeyword { keyword: String },
    /// A top-level body key outside Kuzzle's whitelist (`services.storage.invalid_search_query`).
    ForbiddenArgument { argument: String },
    /// Valid Elasticsearch DSL (query clause or body key) that this store does not implement, such
    /// as `aggregations` or `nested`. Kuzzle-on-Elasticsearch would accept it; refusing is better
    /// than a silent wrong answer (`services.storage.invalid_query_keyword` is the closest id).
    Unsupported { keyword: String },
    /// A clause with the wrong shape, such as `range` without bounds
    /// (`services.storage.invalid_argument` or `api.assert.invalid_argument`).
    Malformed { keyword: String, reason: String },
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::IndexNotFound { index } => {
                write!(f, "The index \"{index}\" does not exist.")
            }
            StorageError::CollectionNotFound { index, collection } => {
                write!(
                    f,
                    "The collection \"{index}\":\"{collection}\" does not exist."
                )
            }
            StorageError::IndexAlreadyExists { index } => {
                write!(f, "A public index named \"{index}\" already exists")
            }
            StorageError::CollectionAlreadyExists { index, collection } => {
                write!(
                    f,
                    "The collection \"{index}\":\"{collection}\" already exists."
                )
            }
            StorageError::DocumentNotFound {
                index,
                collection,
                id,
            } => {
                write!(
                    f,
                    "Document \"{id}\" not found in \"{index}\":\"{collection}\"."
                )
            }
            StorageError::DocumentAlreadyExists { .. } => write!(f, "Document already exists."),
            StorageError::VersionConflict {
                id,
                expected,
                actual,
            } => write!(
                f,
                "Document \"{id}\" is at version {actual}, the write expected version {expected}"
            ),
            StorageError::InvalidIndexName { name } => {
                write!(f, "The index name \"{name}\" is invalid")
            }
            StorageError::InvalidCollectionName { name } => {
                write!(f, "The collection name \"{name}\" is invalid")
            }
            StorageError::InvalidId { id, reason } => {
                write!(f, "Invalid document id \"{id}\": {reason}")
            }
            StorageError::InvalidDocument { id, reason } => {
                write!(f, "Document \"{id}\": {reason}")
            }
            StorageError::DocumentTooLarge { id, size, limit } => write!(
                f,
                "Document \"{id}\" is too large: {size} bytes (limit: {limit} bytes)"
            ),
            StorageError::FailedValidation {
                id,
                field: Some(field),
                message,
            } => write!(f, "Document \"{id}\": field \"{field}\": {message}"),
            StorageError::FailedValidation {
                id,
                field: None,
                message,
            } => write!(f, "Document \"{id}\": {message}"),
            StorageError::InvalidMapping { reason } => write!(f, "Invalid mapping: {reason}"),
            StorageError::Query(error) => error.fmt(f),
            StorageError::Store { message } => write!(f, "storage failure: {message}"),
            StorageError::SchemaTooNew { found, known } => write!(
                f,
                "the database's schema is version {found} (switchyard_schema), newer than this \
                 build's {known}"
            ),
        }
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::UnknownKeyword { keyword } => write!(
                f,
                "The keyword \"{keyword}\" is not part of Elasticsearch Query DSL. Are you trying to use a Koncorde query?"
            ),
            QueryError::ForbiddenArgument { argument } => write!(
                f,
                "The argument \"{argument}\" is not allowed at this level of a search query."
            ),
            QueryError::Unsupported { keyword } => {
                write!(f, "The \"{keyword}\" keyword is not allowed in this query.")
            }
            QueryError::Malformed { keyword, reason } => {
                write!(f, "Invalid \"{keyword}\" clause: {reason}")
            }
        }
    }
}

impl std::error::Error for StorageError {}
impl std::error::Error for QueryError {}

impl From<QueryError> for StorageError {
    fn from(error: QueryError) -> Self {
        StorageError::Query(error)
    }
}

impl StorageError {
    /// A store failure, from any engine error.
    pub fn store(error: impl fmt::Display) -> Self {
        StorageError::Store {
            message: error.to_string(),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
