//! The crate's error type: a Kuzzle API error (exact id, code, status and message) or a failure
//! of the repository underneath.

use switchyard_plugin_api::errors::{self, KuzzleError};

/// What the persistence layer reports. Its message must never carry a secret: implementations
/// describe the operation and the document id, not the document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RepositoryError {
    /// A create-only write found the document already there.
    #[error("document {id:?} already exists in {collection}")]
    AlreadyExists {
        /// The internal collection (`users`, `roles`…).
        collection: &'static str,
        /// The document id.
        id: String,
    },
    /// The store failed.
    #[error("security storage failed: {0}")]
    Storage(String),
}

/// An error of a security operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecurityError {
    /// An error the API sends as is.
    #[error("{0}")]
    Kuzzle(KuzzleError),
    /// The repository failed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

impl SecurityError {
    /// The error as the API sends it: a repository failure is Kuzzle's internal error.
    pub fn to_kuzzle(&self) -> KuzzleError {
        match self {
            SecurityError::Kuzzle(error) => error.clone(),
            SecurityError::Repository(error) => {
                errors::CORE_FATAL_UNEXPECTED_ERROR.with(&[&error.to_string()])
            }
        }
    }

    /// Kuzzle's error id, for tests and logs.
    pub fn id(&self) -> &'static str {
        match self {
            SecurityError::Kuzzle(error) => error.id(),
            SecurityError::Repository(_) => errors::CORE_FATAL_UNEXPECTED_ERROR.id,
        }
    }

    /// The message the client reads.
    pub fn message(&self) -> String {
        self.to_kuzzle().message.into_owned()
    }
}

impl From<KuzzleError> for SecurityError {
    fn from(error: KuzzleError) -> Self {
        SecurityError::Kuzzle(error)
    }
}

/// This crate's results.
pub type Result<T, E = SecurityError> = std::result::Result<T, E>;
