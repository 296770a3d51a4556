//! Unit tests of the `document` controller, through the real dispatch and an in-memory store.

use serde_json::{json, Value};

use crate::api::testing::Harness;

/// A harness with index `i` and collection `c` (`city` mapped as a keyword).
fn harness() -> Harness {
    let harness = Harness::new();
    harness.call(r#"{"controller":"index","action":"create","index":"i"}"#);
    harness.call(r#"{"controller":"collection","action":"create","index":"i","collection":"c","body":{"properties":{"city":{"type":"keyword"}}}}"#);
    harness
}

/// Runs `document:<action>` on `i`/`c` with the given extra members.
fn call(harness: &Harness, action: &str, members: Value) -> Value {
    let mut request = json!({"controller": "document", "action": action, "index": "i", "collection": "c"});
    for (key, value) in members.as_object().expect("an object") {
        request[key] = value.clone();
    }
    harness.call(&request.to_string())
}

fn info(source: &Value) -> &Value {
    &source["_kuzzle_info"]
}

#[test]
fn create_get_exists_and_kuzzle_info() {
    let harness = harness();
    let created = call(&harness, "create", json!({"_id": "a", "body": {"x": 1, "_kuzzle_info": {"author": "forged"}}}));
    assert_eq!(created["status"], 200, "{created}");
    let result = &created["result"];
    assert_eq!(result["_id"], "a");
    assert_eq!(result["_version"], 1);
    assert_eq!(result["_source"]["x"], 1);
    assert_eq!(info(&result["_source"])["author"], "-1");
    assert!(info(&result["_source"])["createdAt"].is_u64());
    assert_eq!(info(&result["_source"])["updatedAt"], Value::Null);
    assert_eq!(info(&result["_source"])["updater"], Value::Null);

    let again = call(&harness, "create", json!({"_id": "a", "body": {}}));
    assert_eq!(again["status"], 400);
    assert_eq!(again["error"]["id"], "services.storage.document_already_exists");
    assert_eq!(again["error"]["message"], "Document already exists.");

    let generated = call(&harness, "create", json!({"_id": null, "body": {"y": 2}}));
    assert_eq!(generated["result"]["_id"].as_str().map(str::len), Some(20));

    let got = call(&harness, "get", json!({"_id": "a"}));
    assert_eq!(got["result"], created["result"]);
    assert_eq!(call(&harness, "exists", json!({"_id": "a"}))["result"], true);
    assert_eq!(call(&harness, "exists", json!({"_id": "zz"}))["result"], false);
    let missing = call(&harness, "get", json!({"_id": "zz"}));
    assert_eq!(missing["status"], 404);
    assert_eq!(missing["error"]["id"], "services.storage.not_found");
    assert_eq!(missing["error"]["message"], "Document \"zz\" not found in \"i\":\"c\".");
}

#[test]
fn errors_for_bad_arguments_and_missing_targets() {
    let harness = harness();
    let cases = [
        (json!({"controller": "document", "action": "create", "index": "nope", "collection": "c", "body": {}}), 412, "services.storage.unknown_index"),
        (json!({"controller": "document", "action": "create", "index": "i", "collection": "nope", "body": {}}), 412, "services.storage.unknown_collection"),
        (json!({"controller": "document", "action": "create", "index": "i", "collection": "c"}), 400, "api.assert.body_required"),
        (json!({"controller": "document", "action": "create", "index": "i", "collection": "c", "_id": "_search", "body": {}}), 400, "services.storage.search_as_an_id"),
        (json!({"controller": "document", "action": "create", "index": "i", "collection": "c", "_id": 3, "body": {}}), 400, "api.assert.invalid_type"),
        (json!({"controller": "document", "action": "create", "index": "i", "collection": "c", "body": {}, "refresh": "now"}), 400, "services.storage.invalid_argument"),
        (json!({"controller": "document", "action": "replace", "index": "i", "collection": "c", "body": {}}), 400, "api.assert.missing_argument"),
        (json!({"controller": "document", "action": "replace", "index": "i", "collection": "c", "_id": "zz", "body": {}}), 404, "services.storage.not_found"),
        (json!({"controller": "document", "action": "update", "index": "i", "collection": "c", "_id": "zz", "body": {}}), 404, "services.storage.not_found"),
        (json!({"controller": "document", "action": "delete", "index": "i", "collection": "c", "_id": "zz"}), 404, "services.storage.not_found"),
        (json!({"controller": "document", "action": "search", "index": "i", "collection": "c", "body": {"query": {"equals": {"a": 1}}}}), 400, "services.storage.unknown_query_keyword"),
        (json!({"controller": "document", "action": "search", "index": "i", "collection": "c", "body": {"aggs": {}}}), 400, "services.storage.invalid_query_keyword"),
        (json!({"controller": "document", "action": "search", "index": "i", "collection": "c", "body": {"nope": {}}}), 400, "services.storage.invalid_search_query"),
        (json!({"controller": "document", "action": "search", "index": "i", "collection": "c", "size": 10001}), 413, "services.storage.get_limit_exceeded"),
        (json!({"controller": "document", "action": "search", "index": "i", "collection": "c", "scroll": "2m"}), 400, "services.storage.scroll_duration_too_great"),
        (json!({"controller": "document", "action": "scroll", "scrollId": "nope"}), 404, "services.storage.unknown_scroll_id"),
        (json!({"controller": "document", "action": "count", "index": "i", "collection": "c", "lang": "koncorde", "body": {"query": {"bool": {}}}}), 400, "api.assert.koncorde_restricted_keyword"),
        (json!({"controller": "document", "action": "mCreate", "index": "i", "collection": "c", "body": {"documents": [{"_source": {}}]}}), 400, "api.assert.unexpected_argument"),
    ];
    for (request, status, id) in cases {
        let answer = harness.call(&request.to_string());
        assert_eq!((answer["status"].clone(), answer["error"]["id"].clone()), (json!(status), json!(id)), "{request} → {answer}");
    }
}

#[test]
fn replace_update_upsert_delete_fields_delete() {
    let harness = harness();
    call(&harness, "create", json!({"_id": "a", "body": {"x": 1, "o": {"p": 1, "q": 2}}}));
    let replaced = call(&harness, "replace", json!({"_id": "a", "body": {"a": "replaced"}}));
    assert_eq!(replaced["result"]["_version"], 2, "{replaced}");
    assert_eq!(replaced["result"]["_source"]["a"], "replaced");
    assert_eq!(info(&replaced["result"]["_source"])["updater"], "-1");

    let updated = call(&harness, "update", json!({"_id": "a", "body": {"some": "update", "o": {"p": 3}}}));
    assert_eq!(updated["result"]["_version"], 3, "{updated}");
    assert_eq!(updated["result"]["_source"]["some"], "update");
    assert!(updated["result"]["_source"].get("a").is_none(), "only the changes without source");
    let full = call(&harness, "update", json!({"_id": "a", "body": {"n": 1}, "source": true}));
    assert_eq!(full["result"]["_source"]["a"], "replaced");
    assert_eq!(full["result"]["_source"]["o"], json!({"p": 3}));

    let upserted = call(&harness, "upsert", json!({"_id": "u", "body": {"changes": {"c": 1}, "default": {"d": 2}}}));
    assert_eq!(upserted["result"], json!({"_id": "u", "_version": 1, "created": true}));
    let upserted = call(&harness, "upsert", json!({"_id": "u", "body": {"changes": {"c": 5}}, "source": true}));
    assert_eq!(upserted["result"]["created"], false);
    assert_eq!(upserted["result"]["_source"]["c"], 5);
    assert_eq!(upserted["result"]["_source"]["d"], 2);

    let fields = call(&harness, "deleteFields", json!({"_id": "u", "body": {"fields": ["d"]}, "source": true}));
    assert_eq!(fields["result"]["_source"].get("d"), None, "{fields}");
    assert_eq!(fields["result"]["_version"], 3);

    let deleted = call(&harness, "delete", json!({"_id": "u"}));
    assert_eq!(deleted["result"], json!({"_id": "u"}));
    let deleted = call(&harness, "delete", json!({"_id": "a", "source": true}));
    assert_eq!(deleted["result"]["_source"]["a"], "replaced");

    let created = call(&harness, "createOrReplace", json!({"_id": "n", "body": {"k": 1}}));
    assert_eq!(created["result"]["created"], true);
    let replaced = call(&harness, "createOrReplace", json!({"_id": "n", "body": {"k": 2}}));
    assert_eq!(replaced["result"]["created"], false);
    assert_eq!(replaced["result"]["_version"], 2);
}

#[test]
fn multiple_writes_report_partial_failures() {
    let harness = harness();
    call(&harness, "create", json!({"_id": "a", "body": {}}));
    let created = call(&harness, "mCreate", json!({"body": {"documents": [
        {"_id": "a", "body": {"n": 1}},
        {"_id": "b", "body": {"n": 2}},
        {"_id": 5, "body": {}},
        {"_id": "c", "body": 3},
    ]}}));
    let result = &created["result"];
    assert_eq!(result["successes"].as_array().unwrap().len(), 1, "{created}");
    let success = &result["successes"][0];
    assert_eq!((success["_id"].clone(), success["created"].clone(), success["result"].clone(), success["status"].clone()), (json!("b"), json!(true), json!("created"), json!(201)));
    assert_eq!(result["errors"], json!([
        {"document": {"_id": 5, "body": {}}, "reason": "document _id must be a string", "status": 400},
        {"document": {"_id": "c", "body": 3}, "reason": "document body must be an object", "status": 400},
        {"document": {"_id": "a", "body": {"n": 1}}, "reason": "document already exists", "status": 400},
    ]));
    let strict = call(&harness, "mCreate", json!({"strict": true, "body": {"documents": [{"_id": "a", "body": {}}]}}));
    assert_eq!(strict["error"]["id"], "api.process.incomplete_multiple_request");
    assert_eq!(strict["error"]["message"], "At least one of the mCreate actions failed.");

    let replaced = call(&harness, "mReplace", json!({"body": {"documents": [{"_id": "b", "body": {"n": 3}}, {"_id": "zz", "body": {}}]}}));
    assert_eq!(replaced["result"]["successes"][0]["_source"]["n"], 3, "{replaced}");
    assert_eq!(replaced["result"]["errors"][0]["reason"], "document not found");
    assert_eq!(replaced["result"]["errors"][0]["status"], 404);

    let written = call(&harness, "mCreateOrReplace", json!({"body": {"documents": [{"_id": "b", "body": {"n": 4}}, {"_id": "d", "body": {"n": 5}}]}}));
    let statuses: Vec<Value> = written["result"]["successes"].as_array().unwrap().iter().map(|s| s["status"].clone()).collect();
    assert_eq!(statuses, vec![json!(200), json!(201)]);

    let updated = call(&harness, "mUpdate", json!({"body": {"documents": [{"_id": "b", "body": {"m": 1}}, {"_id": "zz", "body": {}}]}}));
    assert_eq!(updated["result"]["successes"][0]["_source"]["n"], 4, "{updated}");
    assert_eq!(updated["result"]["successes"][0]["_source"]["m"], 1);
    assert_eq!(updated["result"]["successes"][0]["status"], 200);
    assert_eq!(updated["result"]["errors"][0]["reason"], "document not found");

    let upserted = call(&harness, "mUpsert", json!({"body": {"documents": [{"_id": "b", "changes": {"u": 1}}, {"_id": "e", "changes": {"u": 2}, "default": {"v": 3}}]}}));
    assert_eq!(upserted["result"]["successes"][1]["created"], true, "{upserted}");
    assert_eq!(upserted["result"]["successes"][1]["_source"]["v"], 3);

    let got = call(&harness, "mGet", json!({"body": {"ids": ["b", "zz"]}}));
    assert_eq!(got["result"]["successes"][0]["_id"], "b");
    assert_eq!(got["result"]["errors"], json!(["zz"]));
    let exist = call(&harness, "mExists", json!({"ids": "b,zz"}));
    assert_eq!(exist["result"], json!({"successes": ["b"], "errors": ["zz"]}));

    let deleted = call(&harness, "mDelete", json!({"body": {"ids": ["b", "zz"]}}));
    assert_eq!(deleted["result"], json!({"successes": ["b"], "errors": [{"_id": "zz", "reason": "document not found", "status": 404}]}));
}

#[test]
fn the_write_and_fetch_limits_apply() {
    let harness = harness();
    let documents: Vec<Value> = (0..201).map(|n| json!({"_id": n.to_string(), "body": {}})).collect();
    let refused = call(&harness, "mCreate", json!({"body": {"documents": documents}}));
    assert_eq!(refused["status"], 413);
    assert_eq!(refused["error"]["id"], "services.storage.write_limit_exceeded");
    let ids: Vec<String> = (0..10_001).map(|n| n.to_string()).collect();
    let refused = call(&harness, "mGet", json!({"body": {"ids": ids}}));
    assert_eq!(refused["error"]["id"], "services.storage.get_limit_exceeded");
}

#[test]
fn search_count_scroll_and_by_query() {
    let harness = harness();
    let documents: Vec<Value> = (0..5).map(|n| json!({"_id": format!("d{n}"), "body": {"n": n, "city": if n % 2 == 0 { "paris" } else { "rome" }}})).collect();
    call(&harness, "mCreate", json!({"body": {"documents": documents}, "refresh": "wait_for"}));

    let found = call(&harness, "search", json!({"body": {"query": {"match": {"_id": "d1"}}}}));
    assert_eq!(found["result"]["total"], 1, "{found}");
    assert_eq!(found["result"]["hits"][0]["_id"], "d1");
    assert_eq!(found["result"]["hits"][0]["index"], "i");
    let page = call(&harness, "search", json!({"from": 0, "size": 2, "body": {"sort": ["n"]}}));
    assert_eq!(page["result"]["total"], 5);
    let ids: Vec<&str> = page["result"]["hits"].as_array().unwrap().iter().map(|h| h["_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["d0", "d1"]);
    assert!(page["result"].get("scrollId").is_none());

    let counted = call(&harness, "count", json!({"body": {"query": {"term": {"city": "paris"}}}}));
    assert_eq!(counted["result"], json!({"count": 3}));
    let koncorde = call(&harness, "count", json!({"lang": "koncorde", "body": {"query": {"and": [{"equals": {"city": "rome"}}, {"range": {"n": {"gt": 1}}}]}}}));
    assert_eq!(koncorde["result"], json!({"count": 1}), "{koncorde}");

    let first = call(&harness, "search", json!({"size": 2, "scroll": "10s", "body": {"sort": [{"n": "desc"}]}}));
    assert_eq!(first["result"]["remaining"], 3, "{first}");
    let scroll_id = first["result"]["scrollId"].as_str().unwrap().to_string();
    let mut seen: Vec<String> = first["result"]["hits"].as_array().unwrap().iter().map(|h| h["_id"].as_str().unwrap().to_string()).collect();
    loop {
        let next = harness.call(&json!({"controller": "document", "action": "scroll", "scrollId": scroll_id}).to_string());
        let hits = next["result"]["hits"].as_array().unwrap().clone();
        if hits.is_empty() {
            assert_eq!(next["result"]["remaining"], 0);
            break;
        }
        seen.extend(hits.iter().map(|h| h["_id"].as_str().unwrap().to_string()));
    }
    assert_eq!(seen, ["d4", "d3", "d2", "d1", "d0"]);

    let updated = call(&harness, "updateByQuery", json!({"body": {"query": {"term": {"city": "rome"}}, "changes": {"flag": true}}}));
    assert_eq!(updated["result"]["successes"].as_array().unwrap().len(), 2, "{updated}");
    assert_eq!(updated["result"]["successes"][0]["status"], 200);
    assert_eq!(updated["result"]["errors"], json!([]));
    let deleted = call(&harness, "deleteByQuery", json!({"body": {"query": {"term": {"flag": true}}}}));
    let mut ids = deleted["result"]["ids"].as_array().unwrap().clone();
    ids.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    assert_eq!(ids, vec![json!("d1"), json!("d3")], "{deleted}");
    assert_eq!(call(&harness, "count", json!({}))["result"]["count"], 3);
    let validated = call(&harness, "validate", json!({"body": {"x": 1}}));
    assert_eq!(validated["result"], json!({"errorMessages": {}, "valid": true}));
}

#[test]
fn validate_honours_the_collection_specifications() {
    let harness = harness();
    let plain = call(&harness, "validate", json!({"body": {"anything": 1}}));
    assert_eq!(plain["result"], json!({"errorMessages": {}, "valid": true}), "{plain}");
    harness.call(r#"{"controller":"collection","action":"updateSpecifications","index":"i","collection":"c","body":{"strict":true,"fields":{"name":{"type":"string","mandatory":true},"age":{"type":"integer"}}}}"#);
    let good = call(&harness, "validate", json!({"body": {"name": "n", "age": 3}}));
    assert_eq!(good["result"], json!({"errorMessages": {}, "valid": true}));
    // Kuzzle's verbose check: a root `strict` violation stops the field checks.
    let strict = call(&harness, "validate", json!({"body": {"age": "old", "extra": 1}}));
    assert_eq!(
        strict["result"],
        json!({"valid": false, "errorMessages": {
            "documentScope": ["The document validation is strict. Cannot add unspecified sub-field \"extra\""],
        }})
    );
    let bad = call(&harness, "validate", json!({"body": {"age": 1.5}}));
    assert_eq!(
        bad["result"],
        json!({"valid": false, "errorMessages": {
            "fieldScope": {"children": {
                "age": {"messages": ["The field must be an integer."]},
                "name": {"messages": ["The field is mandatory."]},
            }},
        }})
    );
}

/// m* writes get their defaults as their single counterparts do: absent or null fields on
/// mCreate/mCreateOrReplace/mReplace, null fields only on mUpdate; upsert applies none.
#[test]
fn m_writes_fill_in_default_values() {
    let harness = harness();
    harness.call(r#"{"controller":"collection","action":"updateSpecifications","index":"i","collection":"c","body":{"fields":{"color":{"type":"string","defaultValue":"red"}}}}"#);
    let created = call(&harness, "mCreate", json!({"body": {"documents": [{"_id": "a", "body": {}}, {"_id": "b", "body": {"color": null}}]}}));
    assert_eq!(created["result"]["errors"], json!([]), "{created}");
    let source = |id: &str| {
        let mut got = call(&harness, "get", json!({"_id": id}))["result"]["_source"].clone();
        got.as_object_mut().expect("a source").remove("_kuzzle_info");
        got
    };
    assert_eq!(source("a"), json!({"color": "red"}));
    assert_eq!(source("b"), json!({"color": "red"}));
    call(&harness, "mReplace", json!({"body": {"documents": [{"_id": "a", "body": {"x": 1}}]}}));
    assert_eq!(source("a"), json!({"x": 1, "color": "red"}));
    call(&harness, "mUpdate", json!({"body": {"documents": [{"_id": "a", "body": {"color": "blue"}}]}}));
    call(&harness, "mUpdate", json!({"body": {"documents": [{"_id": "a", "body": {"color": null}}]}}));
    assert_eq!(source("a"), json!({"x": 1, "color": "red"}));
    call(&harness, "upsert", json!({"_id": "u", "body": {"changes": {"y": 1}}}));
    assert_eq!(source("u"), json!({"y": 1}));
}

/// A small `limits.documentMaxSize` for the size tests.
fn small_limit_harness(storage: std::sync::Arc<dyn switchyard_storage::Storage>) -> Harness {
    let harness = Harness::with_config("[server]\n[limits]\ndocumentMaxSize = 100\n", storage);
    harness.call(r#"{"controller":"index","action":"create","index":"i"}"#);
    harness.call(r#"{"controller":"collection","action":"create","index":"i","collection":"c"}"#);
    harness
}

#[test]
fn oversized_documents_are_refused_before_they_are_stored() {
    let storage = std::sync::Arc::new(switchyard_storage::EmbeddedStorage::in_memory().unwrap());
    let harness = small_limit_harness(storage);
    let big = "x".repeat(200);
    let refused = call(&harness, "create", json!({"_id": "big", "body": {"text": big}}));
    assert_eq!(refused["status"], 413, "{refused}");
    assert_eq!(refused["error"]["id"], "services.storage.document_too_large");
    assert!(refused["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Document \"big\" is too large: "));
    let absent = call(&harness, "get", json!({"_id": "big"}));
    assert_eq!(absent["status"], 404);
    // An update that makes a document too large is refused too; the document is unchanged.
    call(&harness, "create", json!({"_id": "a", "body": {"n": 1}}));
    let grown = call(&harness, "update", json!({"_id": "a", "body": {"text": big}}));
    assert_eq!(grown["status"], 413, "{grown}");
    assert_eq!(call(&harness, "get", json!({"_id": "a"}))["result"]["_source"]["n"], 1);
    // In an m* action, only the oversized item fails, in its place.
    let mixed = call(
        &harness,
        "mCreate",
        json!({"body": {"documents": [{"_id": "m1", "body": {"n": 1}}, {"_id": "m2", "body": {"text": big}}, {"_id": "m3", "body": {"n": 3}}]}}),
    );
    let ids: Vec<&Value> = mixed["result"]["successes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["_id"])
        .collect();
    assert_eq!(ids, ["m1", "m3"], "{mixed}");
    let errors = mixed["result"]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["document"]["_id"], "m2", "{mixed}");
    assert_eq!(errors[0]["status"], 413);
}

/// A store whose writes fail while `failing` is set, like a full disk: every other call goes to
/// an in-memory store.
struct FailingStorage {
    inner: switchyard_storage::EmbeddedStorage,
    failing: std::sync::atomic::AtomicBool,
}

impl switchyard_storage::Storage for FailingStorage {
    fn create_index(&self, index: &str) -> switchyard_storage::Result<()> {
        self.inner.create_index(index)
    }
    fn create_internal_index(&self, index: &str) -> switchyard_storage::Result<()> {
        self.inner.create_internal_index(index)
    }
    fn delete_index(&self, index: &str) -> switchyard_storage::Result<()> {
        self.inner.delete_index(index)
    }
    fn index_exists(&self, index: &str) -> switchyard_storage::Result<bool> {
        self.inner.index_exists(index)
    }
    fn list_indexes(&self) -> switchyard_storage::Result<Vec<String>> {
        self.inner.list_indexes()
    }
    fn create_collection(&self, i: &str, c: &str, m: &Value) -> switchyard_storage::Result<()> {
        self.inner.create_collection(i, c, m)
    }
    fn update_mapping(&self, i: &str, c: &str, m: &Value) -> switchyard_storage::Result<Value> {
        self.inner.update_mapping(i, c, m)
    }
    fn get_mapping(&self, i: &str, c: &str) -> switchyard_storage::Result<Value> {
        self.inner.get_mapping(i, c)
    }
    fn delete_collection(&self, i: &str, c: &str) -> switchyard_storage::Result<()> {
        self.inner.delete_collection(i, c)
    }
    fn collection_exists(&self, i: &str, c: &str) -> switchyard_storage::Result<bool> {
        self.inner.collection_exists(i, c)
    }
    fn list_collections(&self, i: &str) -> switchyard_storage::Result<Vec<String>> {
        self.inner.list_collections(i)
    }
    fn truncate_collection(&self, i: &str, c: &str) -> switchyard_storage::Result<()> {
        self.inner.truncate_collection(i, c)
    }
    fn get(
        &self,
        i: &str,
        c: &str,
        id: &str,
    ) -> switchyard_storage::Result<Option<switchyard_storage::Document>> {
        self.inner.get(i, c, id)
    }
    fn mget(
        &self,
        i: &str,
        c: &str,
        ids: &[String],
    ) -> switchyard_storage::Result<Vec<Option<switchyard_storage::Document>>> {
        self.inner.mget(i, c, ids)
    }
    fn write(
        &self,
        batch: switchyard_storage::WriteBatch,
    ) -> switchyard_storage::Result<Vec<switchyard_storage::Outcome>> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(switchyard_storage::StorageError::Store {
                message: "No space left on device (os error 28)".into(),
            });
        }
        self.inner.write(batch)
    }
    fn search(
        &self,
        i: &str,
        c: &str,
        r: &switchyard_storage::SearchRequest,
    ) -> switchyard_storage::Result<switchyard_storage::SearchPage> {
        self.inner.search(i, c, r)
    }
    fn count(
        &self,
        i: &str,
        c: &str,
        q: &switchyard_storage::Query,
    ) -> switchyard_storage::Result<u64> {
        self.inner.count(i, c, q)
    }
    fn get_internal(&self, kind: &str, key: &str) -> switchyard_storage::Result<Option<Value>> {
        self.inner.get_internal(kind, key)
    }
    fn put_internal(
        &self,
        kind: &str,
        key: &str,
        value: Option<&Value>,
    ) -> switchyard_storage::Result<bool> {
        self.inner.put_internal(kind, key, value)
    }
}

#[test]
fn a_failing_store_answers_an_error_and_loses_nothing_acknowledged() {
    use std::sync::atomic::Ordering;
    let storage = std::sync::Arc::new(FailingStorage {
        inner: switchyard_storage::EmbeddedStorage::in_memory().unwrap(),
        failing: false.into(),
    });
    let harness = small_limit_harness(storage.clone());
    for id in ["a", "b"] {
        let created = call(&harness, "create", json!({"_id": id, "body": {"n": 1}}));
        assert_eq!(created["status"], 200, "{created}");
    }
    storage.failing.store(true, Ordering::SeqCst);
    let failed = call(&harness, "create", json!({"_id": "c", "body": {"n": 1}}));
    assert_eq!(failed["status"], 500, "{failed}");
    assert_eq!(failed["error"]["id"], "services.storage.unexpected_error");
    assert!(failed["error"]["message"]
        .as_str()
        .unwrap()
        .contains("No space left on device"));
    let update = call(&harness, "update", json!({"_id": "a", "body": {"n": 2}}));
    assert_eq!(update["status"], 500, "{update}");
    let m = call(&harness, "mDelete", json!({"body": {"ids": ["a", "b"]}}));
    assert_eq!(m["status"], 500, "{m}");
    storage.failing.store(false, Ordering::SeqCst);
    // Everything acknowledged is there, unchanged; nothing refused was stored.
    for id in ["a", "b"] {
        let got = call(&harness, "get", json!({"_id": id}));
        assert_eq!(got["result"]["_source"]["n"], 1, "{got}");
    }
    assert_eq!(call(&harness, "get", json!({"_id": "c"}))["status"], 404);
    let retried = call(&harness, "create", json!({"_id": "c", "body": {"n": 1}}));
    assert_eq!(retried["status"], 200, "{retried}");
}

/// `document:get` writes its answer around the stored text (`raw_hit`): byte for byte what
/// building the value and serializing it gives.
#[test]
fn the_raw_answer_of_get_is_the_serialized_hit() {
    use switchyard_storage::{Document, KuzzleInfo, RawDocument};
    let documents = [
        (json!({}), KuzzleInfo::default()),
        (
            json!({"a": [1, 2.5, "x\"y\n"], "b": {"c": null}, "é": true}),
            KuzzleInfo {
                author: Some("kuid \"quoted\"".into()),
                created_at: Some(1_700_000_000_000),
                updated_at: Some(1_700_000_000_001),
                updater: Some("-1".into()),
            },
        ),
        (json!({"n": -12, "big": 18446744073709551615u64}), KuzzleInfo::default()),
    ];
    for (source, info) in documents {
        let document = Document {
            id: "id with \\ and \u{1}".into(),
            version: 7,
            source,
            info,
            meta: Vec::new(),
        };
        let expected = super::hit(&document).to_string();
        assert_eq!(super::raw_hit(&RawDocument::from(document)), expected);
    }
}

/// `document:create` writes its answer around the body's text (`raw_hit`, as `get` does, no copy
/// of the body as a value): the same result as `get` then gives for the stored document.
#[test]
fn create_answers_what_get_then_returns() {
    let harness = harness();
    let body = json!({"b": [1, 2.5, {"c": "é\n\"q\""}], "a": null, "_kuzzle_info": {"author": "x"}});
    let created = call(&harness, "create", json!({"_id": "raw", "body": body}));
    assert_eq!(created["status"], 200, "{created}");
    let got = call(&harness, "get", json!({"_id": "raw"}));
    assert_eq!(created["result"], got["result"]);
    assert_eq!(created["result"]["_source"]["b"][2]["c"], "é\n\"q\"");
    let empty = call(&harness, "create", json!({"_id": "empty", "body": {}}));
    assert_eq!(
        empty["result"]["_source"].as_object().map(|o| o.keys().collect::<Vec<_>>()),
        Some(vec![&"_kuzzle_info".to_string()])
    );
}
