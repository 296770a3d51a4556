//! What the `index`, `collection`, `document` and `admin` controllers share: the one mapping of
//! [`StorageError`] to Kuzzle's errors, Kuzzle's argument readers (`refresh`, booleans,
//! integers, `_id`), `_kuzzle_info` by Kuzzle's per-action rules, partial updates, and the
//! limits.
//!
//! Arguments arrive typed over WebSocket and MQTT and as strings over HTTP (`?silent=true`,
//! `?size=2`): the readers accept both, as Kuzzle's do.

use serde_json::{Map, Value};
use switchyard_plugin_api::errors::{self, KuzzleError};
use switchyard_storage::{KuzzleInfo, QueryError, StorageError};

use std::sync::Arc;

use super::action::BlockingContext;
use super::Request;
use crate::config::Limits;
use crate::validation::{specifications_key, Specification, SPECIFICATIONS};

/// Kuzzle's error for a storage failure. Every storage call of the API goes through here.
pub fn storage_error(error: StorageError) -> KuzzleError {
    match error {
        StorageError::IndexNotFound { index } => {
            errors::SERVICES_STORAGE_UNKNOWN_INDEX.with(&[&index])
        }
        StorageError::CollectionNotFound { index, collection } => {
            errors::SERVICES_STORAGE_UNKNOWN_COLLECTION.with(&[&index, &collection])
        }
        StorageError::IndexAlreadyExists { index } => {
            errors::SERVICES_STORAGE_INDEX_ALREADY_EXISTS.with(&["public", &index])
        }
        // Only reached if a caller forgot Kuzzle's rule (create updates the mapping).
        error @ StorageError::CollectionAlreadyExists { .. } => {
            errors::SERVICES_STORAGE_UNEXPECTED_BAD_REQUEST.with(&[&error.to_string()])
        }
        StorageError::DocumentNotFound {
            index,
            collection,
            id,
        } => errors::SERVICES_STORAGE_NOT_FOUND.with(&[&id, &index, &collection]),
        StorageError::DocumentAlreadyExists { .. } => {
            errors::SERVICES_STORAGE_DOCUMENT_ALREADY_EXISTS.error()
        }
        StorageError::VersionConflict { id, .. } => {
            errors::SERVICES_STORAGE_TOO_MANY_CHANGES.with(&[&id])
        }
        StorageError::InvalidIndexName { name } => {
            errors::SERVICES_STORAGE_INVALID_INDEX_NAME.with(&[&name])
        }
        StorageError::InvalidCollectionName { name } => {
            errors::SERVICES_STORAGE_INVALID_COLLECTION_NAME.with(&[&name])
        }
        StorageError::InvalidId { id, .. } if id == "_search" => {
            errors::SERVICES_STORAGE_SEARCH_AS_AN_ID.error()
        }
        StorageError::InvalidId { reason, .. } => {
            errors::API_ASSERT_INVALID_ARGUMENT.with(&["_id", reason])
        }
        StorageError::DocumentTooLarge { id, size, limit } => {
            errors::SERVICES_STORAGE_DOCUMENT_TOO_LARGE.with(&[
                &id,
                &size.to_string(),
                &limit.to_string(),
            ])
        }
        StorageError::FailedValidation {
            field: Some(field),
            message,
            ..
        } => errors::VALIDATION_CHECK_FAILED_FIELD.with(&[&field, &message]),
        StorageError::FailedValidation {
            field: None,
            message,
            ..
        } => errors::VALIDATION_CHECK_FAILED_DOCUMENT.with(&[&message]),
        StorageError::InvalidDocument { .. } => {
            errors::API_ASSERT_INVALID_TYPE.with(&["body", "object"])
        }
        error @ StorageError::InvalidMapping { .. } => {
            errors::SERVICES_STORAGE_UNEXPECTED_BAD_REQUEST.with(&[&error.to_string()])
        }
        StorageError::Query(error) => query_error(error),
        StorageError::Store { message } => {
            tracing::error!("document store failure: {message}");
            errors::SERVICES_STORAGE_UNEXPECTED_ERROR.with(&[&message])
        }
        error => errors::SERVICES_STORAGE_UNEXPECTED_ERROR.with(&[&error.to_string()]),
    }
}

/// Kuzzle's error for a refused search body or query.
pub fn query_error(error: QueryError) -> KuzzleError {
    match error {
        QueryError::UnknownKeyword { keyword } => {
            errors::SERVICES_STORAGE_UNKNOWN_QUERY_KEYWORD.with(&[&keyword])
        }
        QueryError::ForbiddenArgument { argument } => {
            errors::SERVICES_STORAGE_INVALID_SEARCH_QUERY.with(&[&argument])
        }
        QueryError::Unsupported { keyword } => {
            errors::SERVICES_STORAGE_INVALID_QUERY_KEYWORD.with(&[&keyword])
        }
        error => errors::SERVICES_STORAGE_UNEXPECTED_BAD_REQUEST.with(&[&error.to_string()]),
    }
}

/// `map_err` shorthand.
pub fn stored<T>(result: switchyard_storage::Result<T>) -> Result<T, KuzzleError> {
    result.map_err(storage_error)
}

/// A boolean argument (Kuzzle's `getBoolean`): absent is false; over HTTP `"true"`, `""` (a
/// bare `?silent`) and `"1"` are true, `"false"` and `"0"` false.
pub fn flag(request: &Request<'_>, name: &str) -> Result<bool, KuzzleError> {
    match request.args.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(value)) => Ok(*value),
        Some(Value::String(text)) if matches!(text.as_str(), "true" | "" | "1") => Ok(true),
        Some(Value::String(text)) if matches!(text.as_str(), "false" | "0") => Ok(false),
        Some(Value::Number(number)) if number.as_u64() == Some(1) => Ok(true),
        Some(Value::Number(number)) if number.as_u64() == Some(0) => Ok(false),
        Some(_) => Err(errors::API_ASSERT_INVALID_TYPE.with(&[name, "boolean"])),
    }
}

/// A non-negative integer argument (numbers, or digits over HTTP).
pub fn integer(request: &Request<'_>, name: &str) -> Result<Option<usize>, KuzzleError> {
    match request.args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => number
            .as_u64()
            .map(|n| Some(n as usize))
            .ok_or_else(|| errors::API_ASSERT_INVALID_TYPE.with(&[name, "integer"])),
        Some(Value::String(text)) => text
            .parse::<usize>()
            .map(Some)
            .map_err(|_| errors::API_ASSERT_INVALID_TYPE.with(&[name, "integer"])),
        Some(_) => Err(errors::API_ASSERT_INVALID_TYPE.with(&[name, "integer"])),
    }
}

/// `refresh`: absent, `"false"` or `"wait_for"` (every committed write is visible to search
/// already, so both mean the same here).
pub fn check_refresh(request: &Request<'_>) -> Result<(), KuzzleError> {
    match request.args.get("refresh") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(value)) if value == "wait_for" || value == "false" => Ok(()),
        Some(Value::Bool(false)) => Ok(()),
        Some(_) => {
            Err(errors::SERVICES_STORAGE_INVALID_ARGUMENT
                .with(&["refresh", "\"wait_for\", \"false\""]))
        }
    }
}

/// The `_id` argument, required (Kuzzle's `getId`).
pub fn required_id(request: &Request<'_>) -> Result<String, KuzzleError> {
    optional_id(request)?.ok_or_else(|| errors::API_ASSERT_MISSING_ARGUMENT.with(&["_id"]))
}

/// The `_id` argument when given (`null` is absent), checked with Kuzzle's rules.
pub fn optional_id(request: &Request<'_>) -> Result<Option<String>, KuzzleError> {
    match request.args.get("_id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) => {
            stored(switchyard_storage::names::validate_document_id(id))?;
            Ok(Some(id.clone()))
        }
        Some(_) => Err(errors::API_ASSERT_INVALID_TYPE.with(&["_id", "string"])),
    }
}

/// `index` and `collection`, owned. An internal index (`%kuzzle`: users, tokens) does not
/// exist for the API.
pub fn target(request: &Request<'_>) -> Result<(String, String), KuzzleError> {
    let (index, collection) = request.index_and_collection()?;
    public(index)?;
    Ok((index.to_string(), collection.to_string()))
}

/// `index`, owned; an internal index does not exist for the API.
pub fn index_of(request: &Request<'_>) -> Result<String, KuzzleError> {
    let index = request
        .index
        .as_deref()
        .ok_or_else(|| errors::API_ASSERT_MISSING_ARGUMENT.with(&["index"]))?;
    public(index)?;
    Ok(index.to_string())
}

/// Refuses an internal index's name as if the index did not exist.
pub fn public(index: &str) -> Result<(), KuzzleError> {
    if switchyard_storage::names::is_internal_index(index) {
        return Err(storage_error(StorageError::IndexNotFound {
            index: index.to_string(),
        }));
    }
    Ok(())
}

/// The body as an object (taken out of the request).
pub fn take_body(request: &mut Request<'_>) -> Result<Map<String, Value>, KuzzleError> {
    match request.body.take() {
        Some(Value::Object(body)) => Ok(body),
        Some(_) => Err(errors::API_ASSERT_INVALID_TYPE.with(&["body", "object"])),
        None => Err(errors::API_ASSERT_BODY_REQUIRED.error()),
    }
}

/// `body.<key>` as an array, required.
pub fn body_array(body: &mut Map<String, Value>, key: &str) -> Result<Vec<Value>, KuzzleError> {
    match body.remove(key) {
        Some(Value::Array(items)) => Ok(items),
        None | Some(Value::Null) => {
            Err(errors::API_ASSERT_MISSING_ARGUMENT.with(&[&format!("body.{key}")]))
        }
        Some(_) => Err(errors::API_ASSERT_INVALID_TYPE.with(&[&format!("body.{key}"), "array"])),
    }
}

/// `body.<key>` as an object: required, or `{}` when absent and not required.
pub fn body_object(
    body: &mut Map<String, Value>,
    key: &str,
    required: bool,
) -> Result<Map<String, Value>, KuzzleError> {
    match body.remove(key) {
        Some(Value::Object(object)) => Ok(object),
        None | Some(Value::Null) if !required => Ok(Map::new()),
        None | Some(Value::Null) => {
            Err(errors::API_ASSERT_MISSING_ARGUMENT.with(&[&format!("body.{key}")]))
        }
        Some(_) => Err(errors::API_ASSERT_INVALID_TYPE.with(&[&format!("body.{key}"), "object"])),
    }
}

/// Ids as strings; `what` names the argument in errors.
pub fn string_list(values: Vec<Value>, what: &str) -> Result<Vec<String>, KuzzleError> {
    values
        .into_iter()
        .map(|value| match value {
            Value::String(id) => Ok(id),
            _ => Err(errors::API_ASSERT_INVALID_TYPE.with(&[what, "string[]"])),
        })
        .collect()
}

/// Refuses reading more than `limits.documentsFetchCount` documents.
pub fn check_fetch(limits: &Limits, count: usize) -> Result<(), KuzzleError> {
    if count > limits.documents_fetch_count {
        return Err(errors::SERVICES_STORAGE_GET_LIMIT_EXCEEDED.error());
    }
    Ok(())
}

/// Refuses writing more than `limits.documentsWriteCount` documents.
pub fn check_write(limits: &Limits, count: usize) -> Result<(), KuzzleError> {
    if count > limits.documents_write_count {
        return Err(errors::SERVICES_STORAGE_WRITE_LIMIT_EXCEEDED.error());
    }
    Ok(())
}

/// Refuses a document whose JSON is larger than `limits.documentMaxSize` (measured without
/// building the text).
pub fn check_size(limits: &Limits, id: &str, source: &Value) -> Result<(), StorageError> {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing into a counter cannot fail.
    let _ = serde_json::to_writer(&mut counter, source);
    check_size_of(limits, id, counter.0)
}

/// Refuses a document whose JSON is `size` bytes when that is more than
/// `limits.documentMaxSize` (for a caller that already wrote the JSON: no second measure).
pub fn check_size_of(limits: &Limits, id: &str, size: usize) -> Result<(), StorageError> {
    if size > limits.document_max_size {
        return Err(StorageError::DocumentTooLarge {
            id: id.to_string(),
            size,
            limit: limits.document_max_size,
        });
    }
    Ok(())
}

/// `_kuzzle_info` of a creation: `{author, createdAt: now, updatedAt: null, updater: null}`
/// (create, mCreate, mCreateOrReplace, mReplace).
pub fn created_info(user: &str, now: u64) -> KuzzleInfo {
    KuzzleInfo {
        author: Some(user.to_string()),
        created_at: Some(now),
        updated_at: None,
        updater: None,
    }
}

/// `_kuzzle_info` of a single replace or createOrReplace: author and updater both the caller,
/// both times now (Kuzzle resets `createdAt` on replace).
pub fn replaced_info(user: &str, now: u64) -> KuzzleInfo {
    KuzzleInfo {
        author: Some(user.to_string()),
        created_at: Some(now),
        updated_at: Some(now),
        updater: Some(user.to_string()),
    }
}

/// `_kuzzle_info` after an update: author and creation kept, updater and time set.
pub fn updated_info(previous: &KuzzleInfo, user: &str, now: u64) -> KuzzleInfo {
    KuzzleInfo {
        updated_at: Some(now),
        updater: Some(user.to_string()),
        ..previous.clone()
    }
}

/// Drops a client-supplied `_kuzzle_info` (the store keeps it apart).
pub fn strip_info(body: &mut Map<String, Value>) {
    body.remove("_kuzzle_info");
}

/// Elasticsearch's partial update: objects merge key by key, recursively; anything else
/// (arrays, scalars, null) replaces.
pub fn merge(target: &mut Map<String, Value>, changes: &Map<String, Value>) {
    for (key, change) in changes {
        match (target.get_mut(key), change) {
            (Some(Value::Object(existing)), Value::Object(change)) => merge(existing, change),
            _ => {
                target.insert(key.clone(), change.clone());
            }
        }
    }
}

/// Kuzzle's `_updatedFields`: the dotted paths of the change's leaves, `_kuzzle_info` left out.
pub fn updated_fields(changes: &Map<String, Value>) -> Vec<String> {
    fn walk(prefix: &str, object: &Map<String, Value>, out: &mut Vec<String>) {
        for (key, value) in object {
            if prefix.is_empty() && key == "_kuzzle_info" {
                continue;
            }
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                Value::Object(inner) if !inner.is_empty() => walk(&path, inner, out),
                _ => out.push(path),
            }
        }
    }
    let mut out = Vec::new();
    walk("", changes, &mut out);
    out
}

/// Removes a dotted path from a document (`deleteFields`); absent paths are ignored.
pub fn remove_path(target: &mut Map<String, Value>, path: &str) {
    match path.split_once('.') {
        None => {
            target.remove(path);
        }
        Some((head, rest)) => {
            if let Some(Value::Object(inner)) = target.get_mut(head) {
                remove_path(inner, rest);
            }
        }
    }
}

/// A new document id: 20 characters of URL-safe base64 from 120 random bits, the shape of
/// Elasticsearch's generated ids.
pub fn generate_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut out = String::with_capacity(20);
    for chunk in bytes[..15].chunks(3) {
        let n = (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]);
        for shift in [18, 12, 6, 0] {
            out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
        }
    }
    out
}

/// A collection's specifications, compiled; `None` when it has none. On a single node the
/// registry is the store's exact copy (it changes only through this node), so it answers
/// without a read or a compilation; in a cluster another node may have changed them, so they
/// are read from the store. Stored specifications that no longer compile are ignored, as Kuzzle
/// logs and ignores them.
pub fn load_specifications(
    context: &BlockingContext<'_>,
    index: &str,
    collection: &str,
) -> Result<Option<Arc<Specification>>, KuzzleError> {
    let services = context.services;
    if services.cluster.is_none() {
        return Ok(services.specifications.get(index, collection));
    }
    let key = specifications_key(index, collection);
    let Some(record) = stored(context.storage().get_internal(SPECIFICATIONS, &key))? else {
        return Ok(None);
    };
    match Specification::compile(index, collection, &record["validation"]) {
        Ok(specification) => Ok(Some(Arc::new(specification))),
        Err(invalid) => {
            tracing::error!(index, collection, problems = %invalid.joined(), "stored specifications no longer compile; ignored");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn partial_updates_merge_objects_and_list_their_leaves() {
        let mut doc = object(json!({"a": {"b": 1, "c": 2}, "d": [1, 2], "e": "x"}));
        let changes =
            object(json!({"a": {"b": 3}, "d": [3], "f": {"g": null}, "_kuzzle_info": {}}));
        merge(&mut doc, &changes);
        assert_eq!(
            Value::Object(doc),
            json!({"a": {"b": 3, "c": 2}, "d": [3], "e": "x", "f": {"g": null}, "_kuzzle_info": {}})
        );
        assert_eq!(updated_fields(&changes), vec!["a.b", "d", "f.g"]);
    }

    #[test]
    fn paths_are_removed_and_ids_generated() {
        let mut doc = object(json!({"a": {"b": 1, "c": 2}, "d": 1}));
        remove_path(&mut doc, "a.b");
        remove_path(&mut doc, "x.y");
        remove_path(&mut doc, "d");
        assert_eq!(Value::Object(doc), json!({"a": {"c": 2}}));
        let id = generate_id();
        assert_eq!(id.len(), 20);
        assert_ne!(id, generate_id());
    }

    #[test]
    fn every_storage_error_has_kuzzles_id() {
        let cases = [
            (
                StorageError::IndexNotFound { index: "i".into() },
                "services.storage.unknown_index",
                "The index \"i\" does not exist.",
            ),
            (
                StorageError::IndexAlreadyExists { index: "i".into() },
                "services.storage.index_already_exists",
                "A public index named \"i\" already exists",
            ),
            (
                StorageError::DocumentNotFound {
                    index: "i".into(),
                    collection: "c".into(),
                    id: "x".into(),
                },
                "services.storage.not_found",
                "Document \"x\" not found in \"i\":\"c\".",
            ),
            (
                StorageError::InvalidId {
                    id: "_search".into(),
                    reason: "r",
                },
                "services.storage.search_as_an_id",
                "_search is not a valid document identifier",
            ),
        ];
        for (error, id, message) in cases {
            let kuzzle = storage_error(error);
            assert_eq!((kuzzle.id(), &*kuzzle.message), (id, message));
        }
    }
}
