//! Kuzzle's naming rules for indexes, collections and document ids.

use crate::error::{Result, StorageError};

/// Characters Elasticsearch (and so Kuzzle) refuses in index and collection names
/// (`elasticsearch.ts` `FORBIDDEN_CHARS`).
const FORBIDDEN_CHARS: &[char] = &[
    '\\', '/', '*', '?', '"', '<', '>', '|', ' ', '\t', '\r', '\n', ',', '+', '#', ':', '.', '&',
    '%',
];

/// Longest index or collection name, in bytes.
pub const MAX_NAME_BYTES: usize = 126;
/// Longest document id, in bytes (Elasticsearch's `_id` limit).
pub const MAX_ID_BYTES: usize = 512;

fn name_is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name != "_all"
        && !name
            .chars()
            .any(|c| c.is_uppercase() || FORBIDDEN_CHARS.contains(&c))
}

/// Lower case, at most 126 bytes, not `_all`, none of `\ / * ? " < > |`, whitespace, `, + # : . & %`.
pub fn validate_index_name(name: &str) -> Result<()> {
    if name_is_valid(name) {
        Ok(())
    } else {
        Err(StorageError::InvalidIndexName { name: name.into() })
    }
}

/// The first character of an internal index's name (`%kuzzle`, where the host keeps users,
/// roles, profiles, credentials and tokens). [`validate_index_name`] refuses it, so no API
/// request can create one, and [`crate::Storage::list_indexes`] leaves internal indexes out.
pub const INTERNAL_INDEX_PREFIX: char = '%';

/// Whether `name` is an internal index's name.
pub fn is_internal_index(name: &str) -> bool {
    name.starts_with(INTERNAL_INDEX_PREFIX)
}

/// `%` then a name [`validate_index_name`] accepts.
pub fn validate_internal_index_name(name: &str) -> Result<()> {
    match name.strip_prefix(INTERNAL_INDEX_PREFIX) {
        Some(rest) if name_is_valid(rest) => Ok(()),
        _ => Err(StorageError::InvalidIndexName { name: name.into() }),
    }
}

/// Same rules as [`validate_index_name`].
pub fn validate_collection_name(name: &str) -> Result<()> {
    if name_is_valid(name) {
        Ok(())
    } else {
        Err(StorageError::InvalidCollectionName { name: name.into() })
    }
}

/// Not empty, at most 512 bytes, not `_search` (it would shadow the HTTP search route).
pub fn validate_document_id(id: &str) -> Result<()> {
    let reason = if id.is_empty() {
        "an id cannot be empty"
    } else if id.len() > MAX_ID_BYTES {
        "an id is at most 512 bytes"
    } else if id == "_search" {
        "_search is not a valid document identifier"
    } else {
        return Ok(());
    };
    Err(StorageError::InvalidId {
        id: id.into(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kuzzle_rules() {
        for good in ["nyc-open-data", "yellow_taxi", "a", "é", &"x".repeat(126)] {
            assert!(validate_index_name(good).is_ok(), "{good}");
            assert!(validate_collection_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "_all",
            "Upper",
            "a.b",
            "a b",
            "a/b",
            "a:b",
            "a%b",
            "a#b",
            &"x".repeat(127),
        ] {
            assert!(validate_index_name(bad).is_err(), "{bad}");
            assert!(validate_collection_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn internal_index_names_are_apart() {
        assert!(validate_index_name("%kuzzle").is_err());
        assert!(validate_internal_index_name("%kuzzle").is_ok());
        assert!(validate_internal_index_name("kuzzle").is_err());
        assert!(validate_internal_index_name("%").is_err());
        assert!(is_internal_index("%kuzzle") && !is_internal_index("kuzzle"));
    }

    #[test]
    fn ids() {
        assert!(validate_document_id("abc").is_ok());
        assert!(validate_document_id("_abc").is_ok());
        assert!(validate_document_id("").is_err());
        assert!(validate_document_id("_search").is_err());
        assert!(validate_document_id(&"x".repeat(513)).is_err());
    }
}
