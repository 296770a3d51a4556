//! The `index` controller: `create`, `delete`, `exists`, `list`, `mDelete`. Every action
//! touches the document store, so every one runs on the blocking pool.

use serde_json::{json, Map, Value};
use switchyard_plugin_api::errors;

use crate::api::action::{ActionResult, Args, BlockingContext, Controller, Run};
use crate::api::documents::{flag, index_of, stored, string_list, take_body};
use crate::api::{Action, Request};

/// The `index` controller.
pub static CONTROLLER: Controller = Controller {
    name: "index",
    actions: &[
        Action {
            name: "create",
            http: &[("post", "/:index/_create")],
            args: Args {
                index: true,
                collection: false,
                body: false,
            },
            run: Run::Blocking(create),
        },
        Action {
            name: "delete",
            http: &[("delete", "/:index")],
            args: Args {
                index: true,
                collection: false,
                body: false,
            },
            run: Run::Blocking(delete),
        },
        Action {
            name: "exists",
            http: &[("get", "/:index/_exists")],
            args: Args {
                index: true,
                collection: false,
                body: false,
            },
            run: Run::Blocking(exists),
        },
        Action {
            name: "list",
            http: &[("get", "/_list")],
            args: Args::NONE,
            run: Run::Blocking(list),
        },
        Action {
            name: "mDelete",
            http: &[("delete", "/_mDelete")],
            args: Args::BODY,
            run: Run::Blocking(m_delete),
        },
    ],
};

/// `index:create`: `null`.
fn create(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let index = index_of(request)?;
    stored(context.storage().create_index(&index))?;
    Ok(Value::Null.into())
}

/// `index:delete`: `{acknowledged: true}`.
fn delete(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let index = index_of(request)?;
    stored(context.storage().delete_index(&index))?;
    Ok(json!({ "acknowledged": true }).into())
}

/// `index:exists`: a boolean.
fn exists(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let index = index_of(request)?;
    Ok(Value::Bool(stored(context.storage().index_exists(&index))?).into())
}

/// `index:list`: `{indexes}`, with `collections: {index: count}` when `countCollection`.
fn list(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let storage = context.storage();
    let indexes = stored(storage.list_indexes())?;
    let mut result = json!({ "indexes": indexes });
    if flag(request, "countCollection")? {
        let mut counts = Map::new();
        for index in &indexes {
            // An index deleted meanwhile is left out.
            if let Ok(collections) = storage.list_collections(index) {
                counts.insert(index.clone(), collections.len().into());
            }
        }
        result["collections"] = Value::Object(counts);
    }
    Ok(result.into())
}

/// `index:mDelete`: deletes the listed indexes that exist; `{deleted: [...]}`.
fn m_delete(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let mut body = take_body(request)?;
    let indexes = match body.remove("indexes") {
        Some(Value::Array(indexes)) => string_list(indexes, "body.indexes")?,
        None | Some(Value::Null) => {
            return Err(errors::API_ASSERT_MISSING_ARGUMENT.with(&["body.indexes"]))
        }
        Some(_) => return Err(errors::API_ASSERT_INVALID_TYPE.with(&["body.indexes", "array"])),
    };
    let storage = context.storage();
    let mut deleted = Vec::new();
    for index in indexes {
        if crate::api::documents::public(&index).is_ok() && storage.delete_index(&index).is_ok() {
            deleted.push(index);
        }
    }
    Ok(json!({ "deleted": deleted }).into())
}

#[cfg(test)]
mod tests {
    use crate::api::testing::Harness;
    use serde_json::json;

    #[test]
    fn the_internal_index_does_not_exist_for_the_api() {
        let harness = Harness::new();
        // The security store lives in `%kuzzle`: no document action may reach it.
        let deleted = harness.call(
            r#"{"controller":"index","action":"mDelete","body":{"indexes":["%kuzzle"]}}"#,
        );
        assert_eq!(deleted["result"], json!({"deleted": []}), "{deleted}");
        for request in [
            r#"{"controller":"document","action":"search","index":"%kuzzle","collection":"users","body":{}}"#,
            r#"{"controller":"collection","action":"list","index":"%kuzzle"}"#,
            r#"{"controller":"index","action":"delete","index":"%kuzzle"}"#,
        ] {
            let answer = harness.call(request);
            assert_eq!(answer["status"], 412, "{request}: {answer}");
            assert_eq!(answer["error"]["id"], "services.storage.unknown_index", "{answer}");
        }
    }

    #[test]
    fn create_exists_list_delete() {
        let harness = Harness::new();
        let created = harness.call(r#"{"controller":"index","action":"create","index":"i1"}"#);
        assert_eq!(created["status"], 200, "{created}");
        assert_eq!(created["result"], json!(null));
        let again = harness.call(r#"{"controller":"index","action":"create","index":"i1"}"#);
        assert_eq!(again["status"], 412);
        assert_eq!(again["error"]["id"], "services.storage.index_already_exists");
        assert_eq!(again["error"]["message"], "A public index named \"i1\" already exists");
        harness.call(r#"{"controller":"index","action":"create","index":"i2"}"#);
        harness.call(r#"{"controller":"collection","action":"create","index":"i2","collection":"c"}"#);
        let exists = harness.call(r#"{"controller":"index","action":"exists","index":"i1"}"#);
        assert_eq!(exists["result"], true);
        let list = harness
            .call(r#"{"controller":"index","action":"list","countCollection":true}"#);
        assert_eq!(
            list["result"],
            json!({"indexes": ["i1", "i2"], "collections": {"i1": 0, "i2": 1}})
        );
        let deleted = harness.call(r#"{"controller":"index","action":"delete","index":"i1"}"#);
        assert_eq!(deleted["result"], json!({"acknowledged": true}));
        let exists = harness.call(r#"{"controller":"index","action":"exists","index":"i1"}"#);
        assert_eq!(exists["result"], false);
        let missing = harness.call(r#"{"controller":"index","action":"delete","index":"i1"}"#);
        assert_eq!(missing["status"], 412);
        assert_eq!(missing["error"]["id"], "services.storage.unknown_index");
        let deleted = harness.call(
            r#"{"controller":"index","action":"mDelete","body":{"indexes":["i2","nope"]}}"#,
        );
        assert_eq!(deleted["result"], json!({"deleted": ["i2"]}));
    }

    #[test]
    fn names_follow_kuzzles_rules() {
        let harness = Harness::new();
        for name in ["Upper", "a.b", "_all", "a b", "a%"] {
            let answer = harness.call(&format!(
                r#"{{"controller":"index","action":"create","index":{}}}"#,
                json!(name)
            ));
            assert_eq!(answer["status"], 400, "{answer}");
            assert_eq!(answer["error"]["id"], "services.storage.invalid_index_name");
            assert_eq!(answer["error"]["code"], 16842793);
        }
        let missing = harness.call(r#"{"controller":"index","action":"create"}"#);
        assert_eq!(missing["error"]["id"], "api.assert.missing_argument");
    }
}
