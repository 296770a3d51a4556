//! The `collection` controller: `create`, `update`, `updateMapping`, `getMapping`, `delete`,
//! `exists`, `list`, `truncate`, `refresh`, and the validation specifications (`update`, `get`,
//! `validate`, `deleteSpecifications`). Every action touches the document store, so every one
//! runs on the blocking pool.
//!
//! Specifications are internal records of the store (`documents::SPECIFICATIONS`), outside every
//! index as in Kuzzle's internal index: they survive `admin:resetDatabase` and the deletion of
//! their collection, and nothing checks that the collection exists.
//!
//! Mappings: each new collection gets Kuzzle's common mapping (`_kuzzle_info`'s fields, which
//! the store then indexes); `getMapping` hides it unless `includeKuzzleMeta`. `dynamic` is
//! reported as a string, `"true"` unless the mapping says otherwise: every field is stored and
//! searchable (mapped fields through secondary indexes, the others by a scan).

use serde_json::{json, Map, Value};
use switchyard_plugin_api::errors;

use crate::api::action::{ActionResult, Args, BlockingContext, Controller, Run};
use crate::api::documents::{check_refresh, flag, index_of, integer, stored, target};
use crate::validation::{specifications_key, Specification, SPECIFICATIONS};
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
        Action {
            name: "updateSpecifications",
            http: &[("put", "/:index/:collection/_specifications")],
            args: Args::INDEX_COLLECTION_BODY,
            run: Run::Blocking(update_specifications),
        },
        Action {
            name: "getSpecifications",
            http: &[("get", "/:index/:collection/_specifications")],
            args: IC,
            run: Run::Blocking(get_specifications),
        },
        Action {
            name: "validateSpecifications",
            http: &[("post", "/:index/:collection/_validateSpecifications")],
            args: Args::INDEX_COLLECTION_BODY,
            run: Run::Blocking(validate_specifications),
        },
        Action {
            name: "deleteSpecifications",
            http: &[("delete", "/:index/:collection/_specifications")],
            args: IC,
            run: Run::Blocking(delete_specifications),
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

/// The body of a specifications action (required).
fn specifications_body(request: &mut Request<'_>) -> Result<Value, errors::KuzzleError> {
    request
        .body
        .take()
        .ok_or_else(|| errors::API_ASSERT_BODY_REQUIRED.error())
}

/// `collection:updateSpecifications`: checks the specifications (every problem, joined, in
/// `validation.assert.invalid_specifications`), stores them and answers them.
fn update_specifications(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let (index, collection) = target(request)?;
    let spec = specifications_body(request)?;
    let specification = Specification::compile(&index, &collection, &spec).map_err(|invalid| {
        errors::VALIDATION_ASSERT_INVALID_SPECIFICATIONS.with(&[&invalid.joined()])
    })?;
    let record = json!({ "collection": collection, "index": index, "validation": spec });
    stored(context.storage().put_internal(
        SPECIFICATIONS,
        &specifications_key(&index, &collection),
        Some(&record),
    ))?;
    stored(context.services.specifications.changed(
        context.storage(),
        &index,
        &collection,
        Some(specification),
    ))?;
    Ok(record["validation"].clone().into())
}

/// `collection:getSpecifications`: `{collection, index, validation}`, or 404
/// `validation.assert.not_found`.
fn get_specifications(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let (index, collection) = target(request)?;
    let key = specifications_key(&index, &collection);
    match stored(context.storage().get_internal(SPECIFICATIONS, &key))? {
        Some(record) => Ok(record.into()),
        None => Err(errors::VALIDATION_ASSERT_NOT_FOUND.with(&[&index, &collection])),
    }
}

/// `collection:validateSpecifications`: `{valid: true}`, or `{valid: false, description,
/// details}` listing every problem. Stores nothing.
fn validate_specifications(
    _context: &BlockingContext<'_>,
    request: &mut Request<'_>,
) -> ActionResult {
    let (index, collection) = target(request)?;
    let spec = specifications_body(request)?;
    match Specification::compile(&index, &collection, &spec) {
        Ok(_) => Ok(json!({ "valid": true }).into()),
        Err(invalid) => Ok(json!({
            "description": "Some errors with provided specifications.",
            "details": invalid.details(),
            "valid": false,
        })
        .into()),
    }
}

/// `collection:deleteSpecifications`: `{acknowledged: true}`, whether there were any or not.
fn delete_specifications(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let (index, collection) = target(request)?;
    let key = specifications_key(&index, &collection);
    stored(context.storage().put_internal(SPECIFICATIONS, &key, None))?;
    stored(context.services.specifications.changed(
        context.storage(),
        &index,
        &collection,
        None,
    ))?;
    Ok(json!({ "acknowledged": true }).into())
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

    #[test]
    fn specifications_update_get_validate_delete_and_survive_a_reset() {
        let harness = Harness::new();
        let none = harness.call(
            r#"{"controller":"collection","action":"getSpecifications","index":"i","collection":"c"}"#,
        );
        assert_eq!(none["status"], 404, "{none}");
        assert_eq!(none["error"]["id"], "validation.assert.not_found");
        assert_eq!(
            none["error"]["message"],
            "No specifications defined for index i and collection c"
        );
        let updated = harness.call(
            r#"{"controller":"collection","action":"updateSpecifications","index":"i","collection":"c","body":{"strict":false}}"#,
        );
        assert_eq!(updated["result"], json!({"strict": false}), "{updated}");
        let got = harness.call(
            r#"{"controller":"collection","action":"getSpecifications","index":"i","collection":"c"}"#,
        );
        assert_eq!(
            got["result"],
            json!({"collection": "c", "index": "i", "validation": {"strict": false}})
        );
        let valid = harness.call(
            r#"{"controller":"collection","action":"validateSpecifications","index":"i","collection":"c","body":{"strict":true}}"#,
        );
        assert_eq!(valid["result"], json!({"valid": true}));
        let invalid = harness.call(
            r#"{"controller":"collection","action":"validateSpecifications","index":"i","collection":"c","body":{"strict":true,"fields":{"a":{"type":"nope"},"b":{}}}}"#,
        );
        assert_eq!(
            invalid["result"],
            json!({"description": "Some errors with provided specifications.", "valid": false, "details": [
                "In \"i.c.a\": unknown type \"nope\".",
                "Missing property \"type\" in field \"i.c.b\".",
                "In \"i.c.b\": unknown type \"undefined\"."
            ]})
        );
        let refused = harness.call(
            r#"{"controller":"collection","action":"updateSpecifications","index":"i","collection":"c","body":{"foo":1}}"#,
        );
        assert_eq!(refused["status"], 400);
        assert_eq!(
            refused["error"]["id"],
            "validation.assert.invalid_specifications"
        );
        assert_eq!(
            refused["error"]["message"],
            "Errors occured with the provided specifications:\nThe object \"i.c\" contains unexpected properties (allowed: strict, fields, validators)."
        );
        let no_body = harness.call(
            r#"{"controller":"collection","action":"updateSpecifications","index":"i","collection":"c"}"#,
        );
        assert_eq!(no_body["status"], 400, "{no_body}");
        // Kept by a reset, as Kuzzle's internal index is.
        harness.call(r#"{"controller":"index","action":"create","index":"i"}"#);
        harness.call(r#"{"controller":"admin","action":"resetDatabase"}"#);
        let kept = harness.call(
            r#"{"controller":"collection","action":"getSpecifications","index":"i","collection":"c"}"#,
        );
        assert_eq!(kept["result"]["validation"], json!({"strict": false}));
        let deleted = harness.call(
            r#"{"controller":"collection","action":"deleteSpecifications","index":"i","collection":"c"}"#,
        );
        assert_eq!(deleted["result"], json!({"acknowledged": true}));
        let again = harness.call(
            r#"{"controller":"collection","action":"deleteSpecifications","index":"i","collection":"c"}"#,
        );
        assert_eq!(again["result"], json!({"acknowledged": true}));
        let gone = harness.call(
            r#"{"controller":"collection","action":"getSpecifications","index":"i","collection":"c"}"#,
        );
        assert_eq!(gone["status"], 404);
    }
}
