//! The `collection` controller: `create`, `update`, `updateMapping`, `getMapping`, `delete`,
//! `exists`, `list`, `truncate`, `refresh`. Every action touches the document store, so every one
//! runs on the blocking pool.
//!
//! Mappings: each new collection gets Kuzzle's common mapping (`_kuzzle_info`'s fields, which
//! the store then indexes); `getMapping` hides it unless `includeKuzzleMeta`. `dynamic` is
//! reported as a string, `"true"` unless the mapping says otherwise: every field is stored and
//! searchable (mapped fields through secondary indexes, the others by a scan).

use serde_json::{json, Map, Value};
use switchyard_plugin_api::errors;

use crate::api::action::{ActionResult, Args, BlockingContext, Controller, Run};
use crate::api::documents::{check_refresh, flag, index_of, integer, stored, target};
use crate::api::{Action, Request};

const IC: Args = Args::INDEX_COLLECTION;

/// The `collection` controller.
pub static CONTROLLER: Controller = Controller {
    name: "collection",
    actions: &[
        Action {
            name: "create",
            http: &[("put", "/:index/:collection")],
            args: IC,
            run: Run::Blocking(create),
        },
        Action {
            name: "update",
            http: &[("post", "/:index/:collection")],
            args: IC,
            run: Run::Blocking(update),
        },
        Action {
            name: "updateMapping",
            http: &[("put", "/:index/:collection/_mapping")],
            args: Args::INDEX_COLLECTION_BODY,
            run: Run::Blocking(update_mapping),
        },
        Action {
            name: "getMapping",
            http: &[("get", "/:index/:collection/_mapping")],
            args: IC,
            run: Run::Blocking(get_mapping),
        },
        Action {
            name: "delete",
            http: &[("delete", "/:index/:collection")],
            args: IC,
            run: Run::Blocking(delete),
        },
        Action {
            name: "exists",
            http: &[("get", "/:index/:collection/_exists")],
            args: IC,
            run: Run::Blocking(exists),
        },
        Action {
            name: "list",
            http: &[("get", "/:index/_list")],
            args: Args {
                index: true,
                collection: false,
                body: false,
            },
            run: Run::Blocking(list),
        },
        Action {
            name: "truncate",
            http: &[("delete", "/:index/:collection/_truncate")],
            args: IC,
            run: Run::Blocking(truncate),
        },
        Action {
            name: "refresh",
            http: &[("post", "/:index/:collection/_refresh")],
            args: IC,
            run: Run::Blocking(refresh),
        },
    ],
};

/// Kuzzle's common mapping: `_kuzzle_info`'s fields.
fn kuzzle_meta_mapping() -> Value {
    json!({
        "properties": {
            "author": { "type": "keyword" },
            "createdAt": { "type": "date" },
            "updatedAt": { "type": "date" },
            "updater": { "type": "keyword" },
        }
    })
}

/// The mapping in a `create`/`update` body: `body.mappings`, or (deprecated) a bare mapping.
fn mapping_of(body: Option<&Value>) -> Result<Value, switchyard_plugin_api::errors::KuzzleError> {
    let Some(body) = body else {
        return Ok(json!({}));
    };
    let Value::Object(fields) = body else {
        return Err(errors::API_ASSERT_INVALID_TYPE.with(&["body", "object"]));
    };
    if let Some(mappings) = fields.get("mappings") {
        return match mappings {
            Value::Object(_) => Ok(strip_kuzzle_meta(mappings.clone())),
            _ => Err(errors::API_ASSERT_INVALID_TYPE.with(&["body.mappings", "object"])),
        };
    }
    if ["properties", "dynamic", "_meta"]
        .iter()
        .any(|key| fields.contains_key(*key))
    {
        return Ok(strip_kuzzle_meta(body.clone()));
    }
    Ok(json!({}))
}

/// A client may not redefine `_kuzzle_info`.
fn strip_kuzzle_meta(mut mapping: Value) -> Value {
    if let Some(Value::Object(properties)) = mapping.get_mut("properties") {
        properties.remove("_kuzzle_info");
    }
    mapping
}

/// A stored mapping as `getMapping` shows it: `{_meta?, dynamic, properties}`.
fn public_mapping(mapping: &Value, include_kuzzle_meta: bool) -> Value {
    let mut out = Map::new();
    if let Some(meta) = mapping.get("_meta") {
        out.insert("_meta".into(), meta.clone());
    }
    let dynamic = match mapping.get("dynamic") {
        None | Some(Value::Null) => "true".to_string(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    };
    out.insert("dynamic".into(), Value::String(dynamic));
    let mut properties = mapping
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if !include_kuzzle_meta {
        properties.remove("_kuzzle_info");
    }
    out.insert("properties".into(), Value::Object(properties));
    Value::Object(out)
}

/// `collection:create`: creates the collection (and its index if needed), or updates its
/// mapping when it exists, as Kuzzle does. `{acknowledged: true}`.
fn create(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let (index, collection) = target(request)?;
    let mapping = mapping_of(request.body.as_ref())?;
    let storage = context.storage();
    stored(switchyard_storage::names::validate_index_name(&index))?;
    stored(switchyard_storage::names::validate_collection_name(
        &collection,
    ))?;
    if !stored(storage.index_exists(&index))? {
        match storage.create_index(&index) {
            Ok(()) | Err(switchyard_storage::StorageError::IndexAlreadyExists { .. }) => {}
            Err(error) => return Err(crate::api::documents::storage_error(error)),
        }
    }
    if stored(storage.collection_exists(&index, &collection))? {
        stored(storage.update_mapping(&index, &collection, &mapping))?;
    } else {
        let mut full = mapping.clone();
        if let Value::Object(fields) = &mut full {
            let properties = fields
                .entry("properties")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(properties) = properties {
                properties.insert("_kuzzle_info".into(), kuzzle_meta_mapping());
            }
        }
        match storage.create_collection(&index, &collection, &full) {
            Ok(()) => {}
            // Created concurrently: Kuzzle's rule, update the mapping.
            Err(switchyard_storage::StorageError::CollectionAlreadyExists { .. }) => {
                stored(storage.update_mapping(&index, &collection, &mapping))?;
            }
            Err(error) => return Err(crate::api::documents::storage_error(error)),
        }
    }
    Ok(json!({ "acknowledged": true }).into())
}

/// `collection:update`: `{mappings?, settings?}` (settings are accepted and ignored); `null`.
fn update(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let (index, collection) = target(request)?;
    let mapping = mapping_of(request.body.as_ref())?;
    stored(context.storage().update_mapping(&index, &collection, &mapping))?;
    Ok(Value::Null.into())
}

/// `collection:updateMapping` (deprecated): the body is the mapping; answers the mapping.
fn update_mapping(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let (index, collection) = target(request)?;
    let mapping = strip_kuzzle_meta(request.body.take().unwrap_or_else(|| json!({})));
    let merged = stored(context.storage().update_mapping(&index, &collection, &mapping))?;
    Ok(public_mapping(&merged, false).into())
}

/// `collection:getMapping`: `{_meta?, dynamic, properties}`.
fn get_mapping(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let (index, collection) = target(request)?;
    let include = flag(request, "includeKuzzleMeta")?;
    let mapping = stored(context.storage().get_mapping(&index, &collection))?;
    Ok(public_mapping(&mapping, include).into())
}

/// `collection:delete`: `null`.
fn delete(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let (index, collection) = target(request)?;
    stored(context.storage().delete_collection(&index, &collection))?;
    Ok(Value::Null.into())
}

/// `collection:exists`: a boolean.
fn exists(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let (index, collection) = target(request)?;
    Ok(Value::Bool(stored(context.storage().collection_exists(&index, &collection))?).into())
}

/// `collection:list`: `{type, collections: [{name, type: "stored"|"realtime"}]}` sorted by
/// name (a stored collection with subscriptions appears twice, as in Kuzzle), `from`/`size`
/// when paginated.
fn list(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let index = index_of(request)?;
    let kind = request.string_arg("type").unwrap_or("all").to_string();
    if !matches!(kind.as_str(), "all" | "stored" | "realtime") {
        return Err(errors::API_ASSERT_INVALID_ARGUMENT
            .with(&["type", "\"all\", \"stored\", \"realtime\""]));
    }
    let mut collections: Vec<(String, &str)> = Vec::new();
    if kind != "realtime" {
        let storage = context.storage();
        match storage.list_collections(&index) {
            Ok(names) => collections.extend(names.into_iter().map(|name| (name, "stored"))),
            // An index with only subscriptions lists its realtime collections.
            Err(switchyard_storage::StorageError::IndexNotFound { .. }) => {}
            Err(error) => return Err(crate::api::documents::storage_error(error)),
        }
    }
    if kind != "stored" {
        let realtime = context.services.realtime.collections(&index);
        collections.extend(realtime.into_iter().map(|name| (name, "realtime")));
    }
    collections.sort();
    let from = integer(request, "from")?.unwrap_or(0);
    let size = integer(request, "size")?.unwrap_or(0);
    let mut result = json!({ "type": kind });
    let paginated = size > 0 || from > 0;
    let page: Vec<Value> = collections
        .into_iter()
        .skip(from)
        .take(if size > 0 { size } else { usize::MAX })
        .map(|(name, kind)| json!({ "name": name, "type": kind }))
        .collect();
    result["collections"] = Value::Array(page);
    if paginated {
        result["from"] = from.into();
        result["size"] = size.into();
    }
    Ok(result.into())
}

/// `collection:truncate`: deletes every document, keeps the mapping; `{acknowledged: true}`.
fn truncate(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    check_refresh(request)?;
    let (index, collection) = target(request)?;
    stored(context.storage().truncate_collection(&index, &collection))?;
    Ok(json!({ "acknowledged": true }).into())
}

/// `collection:refresh`: searches see every committed write already; checks the collection
/// exists and answers `null`.
fn refresh(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let (index, collection) = target(request)?;
    let storage = context.storage();
    if !stored(storage.index_exists(&index))? {
        return Err(errors::SERVICES_STORAGE_UNKNOWN_INDEX.with(&[&index]));
    }
    if !stored(storage.collection_exists(&index, &collection))? {
        return Err(errors::SERVICES_STORAGE_UNKNOWN_COLLECTION.with(&[&index, &collection]));
    }
    Ok(Value::Null.into())
}

#[cfg(test)]
mod tests {
    use crate::api::testing::Harness;
    use serde_json::json;

    #[test]
    fn create_with_a_mapping_then_update_it() {
        let harness = Harness::new();
        harness.call(r#"{"controller":"index","action":"create","index":"i"}"#);
        let created = harness.call(
            r#"{"controller":"collection","action":"create","index":"i","collection":"c","body":{"properties":{"gordon":{"type":"keyword"}}}}"#,
        );
        assert_eq!(created["result"], json!({"acknowledged": true}), "{created}");
        let mapping = harness
            .call(r#"{"controller":"collection","action":"getMapping","index":"i","collection":"c"}"#);
        assert_eq!(
            mapping["result"],
            json!({"dynamic": "true", "properties": {"gordon": {"type": "keyword"}}})
        );
        let with_meta = harness.call(
            r#"{"controller":"collection","action":"getMapping","index":"i","collection":"c","includeKuzzleMeta":true}"#,
        );
        assert_eq!(
            with_meta["result"]["properties"]["_kuzzle_info"]["properties"]["author"],
            json!({"type": "keyword"})
        );
        // Creating again updates the mapping.
        let again = harness.call(
            r#"{"controller":"collection","action":"create","index":"i","collection":"c","body":{"mappings":{"properties":{"age":{"type":"integer"}}}}}"#,
        );
        assert_eq!(again["status"], 200, "{again}");
        let updated = harness.call(
            r#"{"controller":"collection","action":"updateMapping","index":"i","collection":"c","body":{"dynamic":"false","_meta":{"v":1}}}"#,
        );
        assert_eq!(
            updated["result"],
            json!({"_meta": {"v": 1}, "dynamic": "false", "properties": {"age": {"type": "integer"}, "gordon": {"type": "keyword"}}})
        );
    }

    #[test]
    fn exists_list_truncate_refresh_delete() {
        let harness = Harness::new();
        let bad = harness.call(
            r#"{"controller":"collection","action":"create","index":"i","collection":"A"}"#,
        );
        assert_eq!(bad["error"]["id"], "services.storage.invalid_collection_name");
        for c in ["b", "a"] {
            harness.call(&format!(
                r#"{{"controller":"collection","action":"create","index":"i","collection":"{c}"}}"#
            ));
        }
        let list = harness.call(r#"{"controller":"collection","action":"list","index":"i"}"#);
        assert_eq!(
            list["result"],
            json!({"type": "all", "collections": [{"name": "a", "type": "stored"}, {"name": "b", "type": "stored"}]})
        );
        let page = harness
            .call(r#"{"controller":"collection","action":"list","index":"i","from":1,"size":5}"#);
        assert_eq!(
            page["result"],
            json!({"type": "all", "collections": [{"name": "b", "type": "stored"}], "from": 1, "size": 5})
        );
        let exists = harness
            .call(r#"{"controller":"collection","action":"exists","index":"i","collection":"a"}"#);
        assert_eq!(exists["result"], true);
        harness.call(r#"{"controller":"document","action":"create","index":"i","collection":"a","body":{"x":1}}"#);
        let truncated = harness.call(
            r#"{"controller":"collection","action":"truncate","index":"i","collection":"a","refresh":"wait_for"}"#,
        );
        assert_eq!(truncated["result"], json!({"acknowledged": true}));
        let count = harness
            .call(r#"{"controller":"document","action":"count","index":"i","collection":"a"}"#);
        assert_eq!(count["result"], json!({"count": 0}));
        let refreshed = harness
            .call(r#"{"controller":"collection","action":"refresh","index":"i","collection":"a"}"#);
        assert_eq!(refreshed["result"], json!(null));
        let deleted = harness
            .call(r#"{"controller":"collection","action":"delete","index":"i","collection":"a"}"#);
        assert_eq!(deleted["result"], json!(null));
        let gone = harness
            .call(r#"{"controller":"collection","action":"refresh","index":"i","collection":"a"}"#);
        assert_eq!(gone["status"], 412);
        assert_eq!(gone["error"]["id"], "services.storage.unknown_collection");
        assert_eq!(gone["error"]["message"], "The collection \"i\":\"a\" does not exist.");
    }
}
