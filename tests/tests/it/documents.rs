//! Documents against the real host: every index, collection and document action through the
//! official SDK (`js/documents.js`), the notification matrix (`js/notifications.js`), and a
//! crash test: SIGKILL during 50 concurrent writers, restart, every acknowledged write there.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{json, Value};
use switchyard_tests::{parse_answer, protocol_section, LineClient, Scratch, Server};

use crate::sdk::{run, start_server, start_server_on_postgres};

/// A host on PostgreSQL (a database of its own), or `None` when the test is skipped.
fn start_server_on_a_new_database(test: &str) -> Option<Server> {
    let server = switchyard_tests::postgres::server(test)?;
    Some(start_server_on_postgres(&server.database(test)))
}

/// The steps `documents.js` reported, by name: `{ok}` or `{error}`.
fn steps(observed: &crate::sdk::Observations) -> HashMap<String, Value> {
    observed
        .all("step")
        .into_iter()
        .map(|step| {
            let name = step["name"].as_str().expect("a step name").to_string();
            let mut outcome = step.clone();
            let fields = outcome.as_object_mut().expect("an object");
            fields.remove("event");
            fields.remove("name");
            (name, outcome)
        })
        .collect()
}

fn error(id: &str, status: u16, message: &str) -> Value {
    json!({ "error": { "id": id, "status": status, "message": message } })
}

fn info_created() -> Value {
    json!({ "author": "-1", "createdAt": "<time>", "updatedAt": null, "updater": null })
}

fn info_replaced() -> Value {
    json!({ "author": "-1", "createdAt": "<time>", "updatedAt": "<time>", "updater": "-1" })
}

#[test]
fn every_document_action_through_the_sdk() {
    every_document_action(start_server());
}

/// The same SDK script, the same expected results and errors, on the PostgreSQL store.
#[test]
fn every_document_action_through_the_sdk_on_postgres() {
    if let Some(server) = start_server_on_a_new_database("every_document_action") {
        every_document_action(server);
    }
}

fn every_document_action(server: Server) {
    let observed = run("documents", &server);
    let steps = steps(&observed);
    let ok = |value: Value| json!({ "ok": value });
    let expected: Vec<(&str, Value)> = vec![
        ("index:create", ok(json!(null))),
        ("index:create again", error("services.storage.index_already_exists", 412, "A public index named \"shop\" already exists")),
        ("index:create bad name", error("services.storage.invalid_index_name", 400, "The index name \"Shop\" is invalid")),
        ("index:exists", ok(json!(true))),
        ("index:create other", ok(json!(null))),
        ("index:list", ok(json!(["other", "shop"]))),
        ("index:mDelete", ok(json!(["other"]))),
        ("collection:create", ok(json!(null))),
        ("collection:create bad name", error("services.storage.invalid_collection_name", 400, "The collection name \"It.ems\" is invalid")),
        ("collection:exists", ok(json!(true))),
        ("collection:list", ok(json!({"type": "all", "collections": [{"name": "items", "type": "stored"}]}))),
        ("collection:getMapping", ok(json!({"dynamic": "true", "properties": {"city": {"type": "keyword"}}}))),
        ("collection:updateMapping", ok(json!({"dynamic": "true", "properties": {"age": {"type": "integer"}, "city": {"type": "keyword"}}}))),
        ("collection:update", ok(json!(null))),
        ("collection:getMapping after", ok(json!({"_meta": {"v": 1}, "dynamic": "true", "properties": {"age": {"type": "integer"}, "city": {"type": "keyword"}}}))),
        ("collection:refresh", ok(json!(null))),
        ("collection:delete", ok(json!(null))),
        ("collection:exists deleted", ok(json!(false))),
        ("document:create", ok(json!({"_id": "a", "_version": 1, "_source": {"city": "paris", "age": 3, "_kuzzle_info": info_created()}}))),
        ("document:create existing", error("services.storage.document_already_exists", 400, "Document already exists.")),
        ("document:create unknown index", error("services.storage.unknown_index", 412, "The index \"ghost\" does not exist.")),
        ("document:create unknown collection", error("services.storage.unknown_collection", 412, "The collection \"shop\":\"ghost\" does not exist.")),
        ("document:create bad refresh", error("services.storage.invalid_argument", 400, "Argument \"refresh\" is invalid (expected: \"wait_for\", \"false\")")),
        ("document:get", ok(json!({"_id": "a", "_version": 1, "_source": {"city": "paris", "age": 3, "_kuzzle_info": info_created()}}))),
        ("document:get missing", error("services.storage.not_found", 404, "Document \"zz\" not found in \"shop\":\"items\".")),
        ("document:exists", ok(json!(true))),
        ("document:createOrReplace new", ok(json!({"_id": "b", "_version": 1, "created": true, "_source": {"city": "rome", "age": 5, "_kuzzle_info": info_replaced()}}))),
        ("document:createOrReplace existing", ok(json!({"_id": "b", "_version": 2, "created": false, "_source": {"city": "rome", "age": 6, "_kuzzle_info": info_replaced()}}))),
        ("document:replace", ok(json!({"_id": "a", "_version": 2, "_source": {"city": "paris", "age": 4, "_kuzzle_info": info_replaced()}}))),
        ("document:replace missing", error("services.storage.not_found", 404, "Document \"zz\" not found in \"shop\":\"items\".")),
        ("document:update", ok(json!({"_id": "a", "_version": 3, "_source": {"tag": "x", "_kuzzle_info": info_replaced()}}))),
        ("document:update source", ok(json!({"_id": "a", "_version": 4, "_source": {"city": "paris", "age": 4, "tag": "y", "_kuzzle_info": info_replaced()}}))),
        ("document:update missing", error("services.storage.not_found", 404, "Document \"zz\" not found in \"shop\":\"items\".")),
        ("document:upsert create", ok(json!({"_id": "c", "_version": 1, "created": true}))),
        ("document:upsert update", ok(json!({"_id": "c", "_version": 2, "created": false, "_source": {"city": "oslo", "age": 10, "_kuzzle_info": {"author": "-1", "createdAt": "<time>", "updatedAt": "<time>", "updater": "-1"}}}))),
        ("document:deleteFields", ok(json!({"_id": "c", "_version": 3, "_source": {"city": "oslo", "_kuzzle_info": {"author": "-1", "createdAt": "<time>", "updatedAt": "<time>", "updater": "-1"}}}))),
        ("document:count", ok(json!(3))),
        ("document:count term", ok(json!(1))),
        ("document:count koncorde", ok(json!(2))),
        ("document:search next", ok(json!(["c"]))),
        ("document:search unknown keyword", error("services.storage.unknown_query_keyword", 400, "The keyword \"equals\" is not part of Elasticsearch Query DSL. Are you trying to use a Koncorde query?")),
        ("document:search forbidden key", error("services.storage.invalid_search_query", 400, "The argument \"nope\" is not allowed at this level of a search query.")),
        ("document:search too many", error("services.storage.get_limit_exceeded", 413, "The number of documents returned by this request exceeds the configured server limit.")),
        ("document:scroll all", ok(json!(["a", "b", "c"]))),
        ("document:scroll unknown", error("services.storage.unknown_scroll_id", 404, "Non-existing or expired scroll identifier.")),
        ("document:mCreate strict", error("api.process.incomplete_multiple_request", 400, "At least one of the mCreate actions failed.")),
        ("document:mCreate too many", error("services.storage.write_limit_exceeded", 413, "The number of documents edited by this request exceeds the configured server limit.")),
        ("document:mGet strict", error("api.process.incomplete_multiple_request", 400, "At least one of the get actions failed.")),
        ("document:mExists", ok(json!({"successes": ["m1"], "errors": ["zz"]}))),
        ("document:mDelete", ok(json!({"successes": ["m4"], "errors": [{"_id": "zz", "reason": "document not found", "status": 404}]}))),
        ("document:deleteByQuery", ok(json!(["m1", "m3"]))),
        ("document:validate", ok(json!({"errorMessages": {}, "valid": true}))),
        ("document:delete", ok(json!("b"))),
        ("document:get deleted", error("services.storage.not_found", 404, "Document \"b\" not found in \"shop\":\"items\".")),
        ("document:delete missing", error("services.storage.not_found", 404, "Document \"b\" not found in \"shop\":\"items\".")),
        ("collection:updateSpecifications", ok(json!({"strict": false}))),
        ("collection:getSpecifications", ok(json!({"strict": false}))),
        ("collection:validateSpecifications", ok(json!({"valid": true}))),
        ("collection:validateSpecifications bad", ok(json!({"valid": false, "description": "Some errors with provided specifications.", "details": ["In \"shop.items.a\": unknown type \"nope\"."]}))),
        ("collection:updateSpecifications bad", error("validation.assert.invalid_specifications", 400, "Errors occured with the provided specifications:\nThe object \"shop.items\" contains unexpected properties (allowed: strict, fields, validators).")),
        ("collection:updateSpecifications strict", ok(json!({"strict": true, "fields": {"city": {"type": "string", "mandatory": true}}}))),
        // As Kuzzle: a root `strict` violation stops the field checks.
        ("document:validate strict", ok(json!({"valid": false, "errorMessages": {"documentScope": ["The document validation is strict. Cannot add unspecified sub-field \"age\""]}}))),
        ("collection:truncate", ok(json!(null))),
        ("document:count truncated", ok(json!(0))),
        ("admin:resetDatabase", ok(json!({"acknowledge": true}))),
        ("index:list after reset", ok(json!([]))),
        ("collection:getSpecifications after reset", ok(json!(true))),
        // The SDK resolves to undefined (the raw result, `{acknowledged: true}`, is unit-tested).
        ("collection:deleteSpecifications", ok(json!(null))),
        ("collection:getSpecifications deleted", error("validation.assert.not_found", 404, "No specifications defined for index shop and collection items")),
        ("index:delete missing", error("services.storage.unknown_index", 412, "The index \"shop\" does not exist.")),
    ];
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(name, want)| steps.get(*name) != Some(want))
        .map(|(name, want)| format!("{name}: got {:?}, want {want}", steps.get(*name)))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // Steps whose results are checked field by field.
    let search = &steps["document:search"]["ok"];
    assert_eq!(search["total"], 3, "{search}");
    let hits: Vec<&Value> = search["hits"].as_array().expect("hits").iter().collect();
    assert_eq!(
        hits.iter()
            .map(|hit| hit["_id"].clone())
            .collect::<Vec<_>>(),
        [json!("a"), json!("b")]
    );
    assert_eq!(hits[0]["index"], "shop");
    assert_eq!(hits[0]["collection"], "items");
    assert_eq!(steps["document:search by id"]["ok"]["total"], 1);
    assert_eq!(steps["document:search scroll"]["ok"]["total"], 3);

    let created = &steps["document:mCreate"]["ok"];
    assert_eq!(
        created["successes"].as_array().map(Vec::len),
        Some(1),
        "{created}"
    );
    assert_eq!(created["successes"][0]["_id"], "m1");
    assert_eq!(created["successes"][0]["status"], 201);
    assert_eq!(
        created["errors"],
        json!([
            {"document": {"_id": "m2", "body": "nope"}, "reason": "document body must be an object", "status": 400},
            {"document": {"_id": "a", "body": {"age": 1}}, "reason": "document already exists", "status": 400},
        ])
    );
    let replaced = &steps["document:mReplace"]["ok"];
    assert_eq!(replaced["successes"][0]["_source"]["age"], 2, "{replaced}");
    assert_eq!(
        replaced["errors"],
        json!([{"document": {"_id": "zz", "body": {}}, "reason": "document not found", "status": 404}])
    );
    let written = &steps["document:mCreateOrReplace"]["ok"];
    assert_eq!(written["successes"][0]["result"], "updated", "{written}");
    assert_eq!(written["successes"][1]["result"], "created");
    let updated = &steps["document:mUpdate"]["ok"];
    assert_eq!(updated["successes"][0]["_source"]["tag"], "u", "{updated}");
    assert_eq!(updated["errors"][0]["reason"], "document not found");
    let upserted = &steps["document:mUpsert"]["ok"];
    assert_eq!(upserted["successes"][1]["created"], true, "{upserted}");
    assert_eq!(upserted["successes"][1]["_source"]["age"], 4);
    let got = &steps["document:mGet"]["ok"];
    assert_eq!(got["successes"][0]["_id"], "m1", "{got}");
    assert_eq!(got["errors"], json!(["zz"]));
    let by_query = &steps["document:updateByQuery"]["ok"];
    let mut ids: Vec<String> = by_query["successes"]
        .as_array()
        .expect("successes")
        .iter()
        .map(|s| s["_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["m1", "m3"], "{by_query}");
    assert_eq!(
        steps.len(),
        expected.len() + 11,
        "every step is checked: {steps:?}"
    );
}

/// One reduced notification: `[action, scope, id, event]` plus `updatedFields`/`volatile`.
fn n(action: &str, scope: &str, id: &str, extra: Value) -> Value {
    let event = match action {
        "delete" => "delete",
        _ => "write",
    };
    let mut out = json!({ "action": action, "scope": scope, "id": id, "event": event });
    for (key, value) in extra.as_object().expect("an object") {
        out[key] = value.clone();
    }
    out
}

#[test]
fn every_write_notifies_with_scope_in_and_out() {
    every_write_notifies(start_server());
}

/// The same notifications with the rooms kept in PostgreSQL's `meta` column.
#[test]
fn every_write_notifies_with_scope_in_and_out_on_postgres() {
    if let Some(server) = start_server_on_a_new_database("every_write_notifies") {
        every_write_notifies(server);
    }
}

fn every_write_notifies(server: Server) {
    let observed = run("notifications", &server);
    let none = json!({});
    let all = vec![
        n("create", "in", "d1", json!({"volatile": 1})),
        n("replace", "out", "d1", none.clone()),
        n("replace", "in", "d2", none.clone()),
        n("update", "in", "d2", json!({"updatedFields": ["size"]})),
        n("update", "out", "d2", json!({"updatedFields": ["color"]})),
        n("create", "in", "d3", none.clone()),
        n("replace", "in", "d3", none.clone()),
        n("delete", "out", "d3", none.clone()),
        n("update", "in", "d2", json!({"updatedFields": ["color"]})),
        n("create", "in", "d4", none.clone()),
        n("update", "out", "d4", json!({"updatedFields": ["color"]})),
        n("delete", "out", "d2", none.clone()),
        n("create", "in", "d6", none.clone()),
        n("update", "in", "d7", json!({"updatedFields": ["color"]})),
        n("delete", "out", "d6", none.clone()),
        n("delete", "out", "d7", none.clone()),
    ];
    let only = |scope: &str| -> Vec<Value> {
        all.iter()
            .filter(|notification| notification["scope"] == scope)
            .cloned()
            .collect()
    };
    assert_eq!(observed.received("scope", "all"), &all);
    assert_eq!(observed.received("scope", "in"), &only("in"));
    assert_eq!(observed.received("scope", "out"), &only("out"));
}

/// Acknowledged document writes survive SIGKILL: 50 writers on the line protocol, the host
/// killed once 1,500 writes were answered, then restarted on the same data folder; every
/// answered write is there, and the store opened without help.
#[test]
fn acknowledged_writes_survive_sigkill() {
    let data = Scratch::new();
    let config = format!(
        "[server]\ndataDir = {:?}\n{}",
        data.path().join("store"),
        protocol_section("line", "fixture_line", "")
    );
    let server = Server::start(&config);
    let address = server.address("line");
    let mut setup = LineClient::connect(&address);
    let (_, status, answer) = setup.request(
        r#"{"controller":"collection","action":"create","index":"crash","collection":"c"}"#,
    );
    assert_eq!(status, 200, "{answer}");

    let (acks, acknowledged) = mpsc::channel::<String>();
    let writers: Vec<_> = (0..50)
        .map(|writer| {
            let acks = acks.clone();
            let address = address.clone();
            std::thread::spawn(move || {
                let stream = TcpStream::connect(&address).expect("connect");
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut stream = stream;
                for n in 0.. {
                    let id = format!("w{writer}-{n}");
                    let request = json!({"controller": "document", "action": "create", "index": "crash", "collection": "c", "_id": id, "body": {"writer": writer, "n": n}});
                    if stream.write_all(format!("{request}\n").as_bytes()).is_err() {
                        return;
                    }
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    let (_, status, answer) = parse_answer(line.trim_end());
                    assert_eq!(status, 200, "{answer}");
                    if acks.send(id).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    drop(acks);
    let mut answered = Vec::new();
    while answered.len() < 1_500 {
        answered.push(
            acknowledged
                .recv_timeout(Duration::from_secs(60))
                .expect("writes are answered"),
        );
    }
    server.signal(Signal::SIGKILL);
    // Answers already in flight when the host died count too.
    answered.extend(acknowledged.iter());
    for writer in writers {
        writer.join().expect("a writer ends when the host dies");
    }
    drop(server);

    let server = Server::start(&config);
    let mut client = LineClient::connect(&server.address("line"));
    for chunk in answered.chunks(1_000) {
        let request = json!({"controller": "document", "action": "mGet", "index": "crash", "collection": "c", "body": {"ids": chunk}});
        let (_, status, answer) = client.request(&request.to_string());
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer["result"]["errors"],
            json!([]),
            "acknowledged writes lost"
        );
        assert_eq!(
            answer["result"]["successes"].as_array().map(Vec::len),
            Some(chunk.len())
        );
    }
    let (_, _, counted) = client
        .request(r#"{"controller":"document","action":"count","index":"crash","collection":"c"}"#);
    let count = counted["result"]["count"].as_u64().expect("a count");
    assert!(
        count as usize >= answered.len(),
        "{count} < {}",
        answered.len()
    );
}

/// One HTTP/1.1 request on its own connection: `(status, body as JSON)`.
fn http(address: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    use std::io::Read;
    let mut stream = TcpStream::connect(address).expect("connect to the HTTP plugin");
    let body = body.map(|body| body.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    let status = answer[9..12].parse().expect("a status");
    let (_, content) = answer.split_once("\r\n\r\n").expect("headers end");
    // Chunked answers: the JSON object sits between the chunk size lines.
    let start = content.find('{').expect("a JSON body");
    let end = content.rfind('}').expect("a JSON body");
    (
        status,
        serde_json::from_str(&content[start..=end]).expect("JSON"),
    )
}

/// The REST routes come from the host's action table: Kuzzle's URLs reach the document actions.
#[test]
fn rest_routes_reach_the_document_actions() {
    let server = Server::start(&format!(
        "[server]\n{}",
        protocol_section("http", "http", "port = 0\naddress = \"127.0.0.1\"")
    ));
    let address = server.address("http");
    let calls: Vec<(&str, &str, Option<Value>, u16, Value)> = vec![
        ("POST", "/shop/_create", None, 200, json!(null)),
        ("GET", "/shop/_exists", None, 200, json!(true)),
        (
            "PUT",
            "/shop/items",
            Some(json!({"mappings": {"properties": {"city": {"type": "keyword"}}}})),
            200,
            json!({"acknowledged": true}),
        ),
        ("GET", "/shop/items/_exists", None, 200, json!(true)),
        (
            "GET",
            "/shop/_list",
            None,
            200,
            json!({"type": "all", "collections": [{"name": "items", "type": "stored"}]}),
        ),
        (
            "GET",
            "/shop/items/_mapping",
            None,
            200,
            json!({"dynamic": "true", "properties": {"city": {"type": "keyword"}}}),
        ),
        (
            "PUT",
            "/shop/items/b",
            Some(json!({"city": "rome"})),
            200,
            json!("created"),
        ),
        ("GET", "/shop/items/b/_exists", None, 200, json!(true)),
        (
            "POST",
            "/shop/items/_count",
            Some(json!({"query": {"term": {"city": "rome"}}})),
            200,
            json!({"count": 1}),
        ),
        (
            "POST",
            "/shop/items/_mGet",
            Some(json!({"ids": ["b", "zz"]})),
            200,
            json!("mget"),
        ),
        (
            "DELETE",
            "/shop/items/b?silent=true",
            None,
            200,
            json!({"_id": "b"}),
        ),
        (
            "GET",
            "/shop/items/b",
            None,
            404,
            json!("services.storage.not_found"),
        ),
        (
            "DELETE",
            "/shop/items/_truncate?refresh=wait_for",
            None,
            200,
            json!({"acknowledged": true}),
        ),
        ("GET", "/_list", None, 200, json!({"indexes": ["shop"]})),
        (
            "POST",
            "/admin/_resetDatabase",
            None,
            200,
            json!({"acknowledge": true}),
        ),
        (
            "DELETE",
            "/shop",
            None,
            412,
            json!("services.storage.unknown_index"),
        ),
    ];
    for (method, path, body, status, want) in calls {
        let (got_status, content) = http(&address, method, path, body);
        assert_eq!(got_status, status, "{method} {path}: {content}");
        match want.as_str() {
            Some("created") => assert_eq!(content["result"]["created"], true, "{content}"),
            Some("mget") => assert_eq!(content["result"]["errors"], json!(["zz"]), "{content}"),
            Some(id) => assert_eq!(content["error"]["id"], id, "{method} {path}: {content}"),
            None => assert_eq!(content["result"], want, "{method} {path}: {content}"),
        }
    }
    // A document created over REST, read back over REST.
    let (status, created) = http(&address, "POST", "/shop/_create", None);
    assert_eq!(status, 200, "{created}");
    http(&address, "PUT", "/shop/items", None);
    let (status, created) = http(
        &address,
        "POST",
        "/shop/items/a/_create?refresh=wait_for",
        Some(json!({"n": 1})),
    );
    assert_eq!(
        (status, created["result"]["_id"].clone()),
        (200, json!("a")),
        "{created}"
    );
    let (_, got) = http(&address, "GET", "/shop/items/a", None);
    assert_eq!(got["result"]["_source"]["n"], 1, "{got}");
    let (_, updated) = http(
        &address,
        "PUT",
        "/shop/items/a/_update",
        Some(json!({"m": 2})),
    );
    assert_eq!(updated["result"]["_version"], 2, "{updated}");
    let (_, found) = http(
        &address,
        "POST",
        "/shop/items/_search?size=1",
        Some(json!({"query": {"range": {"m": {"gte": 2}}}})),
    );
    assert_eq!(found["result"]["total"], 1, "{found}");
}

/// Writes honour the collection's validation specifications (`js/specifications.js`): every
/// write path refuses a document that breaks them with Kuzzle's `validation.check.*` error
/// (the first problem only), `update` checks the merged document, m* actions list the refused
/// items in `errors` and write the rest, a refused write changes nothing and notifies no one,
/// and a collection without specifications accepts anything.
#[test]
fn writes_honour_the_collection_specifications() {
    let server = start_server();
    let observed = run("specifications", &server);
    let steps = steps(&observed);
    let ok = |value: Value| json!({ "ok": value });
    let field = |field: &str, message: &str| {
        error(
            "validation.check.failed_field",
            400,
            &format!("Validation failed. Field \"{field}\": {message}"),
        )
    };
    let mandatory = "The field is mandatory.";
    // Kuzzle's integer type checks a number first: a string is "not a number".
    let integer = "The field must be a number.";
    let item = |document: Value, reason: &str| json!({ "document": document, "reason": format!("Validation failed. Field {reason}"), "status": 400 });
    let expected: Vec<(&str, Value)> = vec![
        ("updateSpecifications", ok(json!({"strict": true, "fields": {
            "name": {"type": "string", "mandatory": true},
            "age": {"type": "integer"},
            "tags": {"type": "string", "multivalued": {"value": true}},
        }}))),
        ("create valid", ok(json!({"_id": "a", "_version": 1, "_source": {"name": "a", "age": 1, "tags": ["x"]}}))),
        ("create without a mandatory field", field("name", mandatory)),
        ("create with a wrong type", field("age", integer)),
        ("create with an unspecified field", error("validation.check.failed_document", 400, "Failed to validate document: The document validation is strict. Cannot add unspecified sub-field \"extra\"")),
        ("create with a unary multivalued field", field("tags", "The field must be multivalued, unary value provided.")),
        ("create with an array in a unary field", field("name", "The field is not a multivalued field; Multiple values provided.")),
        ("replace invalid", field("name", mandatory)),
        ("createOrReplace invalid", field("name", "The field must be a string.")),
        // The merged document is checked: `name` comes from the stored one.
        ("update valid (merged)", ok(json!({"_id": "a", "_version": 2, "_source": {"age": 5}}))),
        ("update invalid (merged)", field("name", mandatory)),
        ("update with a wrong type", field("age", "The field must be an integer.")),
        ("upsert creating an invalid document", field("name", mandatory)),
        ("upsert with a valid default", ok(json!({"_id": "u", "_version": 1, "created": true}))),
        ("mCreate partial", ok(json!({
            "successes": [{"_id": "m1", "_source": {"name": "m"}, "_version": 1, "created": true, "result": "created", "status": 201}],
            "errors": [item(json!({"_id": "m2", "body": {"age": 1}}), "\"name\": The field is mandatory.")],
        }))),
        ("mUpdate partial", ok(json!({
            "successes": [{"_id": "a", "_version": 3, "_source": {"name": "a", "age": 7, "tags": ["x"]}, "status": 200}],
            "errors": [item(json!({"_id": "m1", "body": {"age": "x"}}), "\"age\": The field must be a number.")],
        }))),
        ("mCreate strict", error("api.process.incomplete_multiple_request", 400, "At least one of the mCreate actions failed.")),
        ("updateByQuery invalid", ok(json!({
            "successes": [],
            "errors": [item(json!({"_id": "a"}), "\"age\": The field must be a number.")],
        }))),
        // Nothing refused was written: `a` as mUpdate left it; a, u and m1 only.
        ("get a", ok(json!({"name": "a", "age": 7, "tags": ["x"]}))),
        ("count", ok(json!(3))),
        ("validate agrees", ok(json!({"valid": false, "errorMessages": {"fieldScope": {"children": {"age": {"messages": [integer]}}}}}))),
        ("plain collection unaffected", ok(json!({"_id": "p", "_version": 1, "_source": {"age": "old", "extra": 1}}))),
        ("end", ok(json!({"_id": "end", "_version": 1, "_source": {"name": "end"}}))),
        ("deleteSpecifications", ok(json!(null))),
        ("create after deleteSpecifications", ok(json!({"_id": "b", "_version": 1, "_source": {"age": "old"}}))),
    ];
    for (name, outcome) in &expected {
        assert_eq!(steps.get(*name), Some(outcome), "step {name}");
    }
    assert_eq!(
        steps.len(),
        expected.len(),
        "every step is checked: {steps:?}"
    );
    // Only the accepted writes were notified (mCreate's m1, mUpdate's a), none of the refused.
    let notified = |action: &str, id: &str| json!({ "action": action, "id": id });
    assert_eq!(
        observed.received("scope", "all"),
        &vec![
            notified("create", "a"),
            notified("update", "a"),
            notified("create", "u"),
            notified("create", "m1"),
            notified("update", "a"),
            notified("create", "end"),
        ]
    );
}

/// Kuzzle's validation types and their options, nested fields, `defaultValue` and
/// `validators` (`js/specification_types.js`): bad specifications refused with Kuzzle's
/// messages, each type's bad value refused with its own, defaults stored, and
/// `realtime:publish` checked and defaulted like a create (refused messages reach no one).
#[test]
fn specification_types_defaults_validators_and_publish() {
    let server = start_server();
    let observed = run("specification_types", &server);
    let steps = steps(&observed);
    let ok = |value: Value| json!({ "ok": value });
    let bad = |message: &str| {
        error(
            "validation.assert.invalid_specifications",
            400,
            &format!("Errors occured with the provided specifications:\n{message}"),
        )
    };
    let field = |field: &str, message: &str| {
        error(
            "validation.check.failed_field",
            400,
            &format!("Validation failed. Field \"{field}\": {message}"),
        )
    };
    let document = |message: &str| {
        error(
            "validation.check.failed_document",
            400,
            &format!("Failed to validate document: {message}"),
        )
    };
    let ann = json!({
        "name": "ann", "age": 30, "score": 9.5, "ok": true, "born": "1990-05-17",
        "mail": "ann@example.com", "site": "https://example.com/ann", "ip": "192.168.0.1",
        "where": {"lat": 43.6, "lon": 3.9},
        "zone": {"type": "circle", "coordinates": [3.9, 43.6], "radius": "10km"},
        "meta": {"list": [1, "two"]}, "address": {"city": "Montpellier", "zip": "00000"},
        "tags": ["a", "b"], "color": "red", "status": "new",
    });
    let replaced = json!({"name": "ann", "address": {"city": "Paris", "zip": "00000"}, "color": "red", "status": "new"});
    let specifications = steps["updateSpecifications"]["ok"].clone();
    let expected: Vec<(&str, Value)> = vec![
        ("bad type name", bad("In \"t.c.a\": unknown type \"geoPoint\".")),
        ("bad string length", bad("Property \"length\": invalid range (min > max).")),
        ("bad numeric range", bad("Wrong type for parameter \"range.min\" (expected: number).")),
        ("bad enum values", bad("The \"enum\" type requires a \"values\" property holding the list of the enum values.")),
        ("bad date formats", bad("The following date types are invalid: nope.")),
        ("bad geo_shape types", bad("The following shapes are invalid: [ 'blob' ].")),
        ("bad option of another type", bad("The object \"t.c.a\" contains unexpected properties (allowed: ).")),
        ("bad missing level", bad("PreconditionError: All levels of an object have to be defined in the specification.")),
        ("bad children of a string", bad("PreconditionError: The field type \"string\" is not allowed to have children fields.")),
        ("bad validators", bad("BadRequestError: Invalid filters validator: \"bool.and.nope\": unknown keyword")),
        ("validateSpecifications lists every problem", ok(json!({
            "valid": false,
            "description": "Some errors with provided specifications.",
            "details": ["Wrong type for parameter \"notEmpty\" (expected: boolean).", "In \"t.c.b\": unknown type \"nope\"."],
        }))),
        ("updateSpecifications", ok(specifications.clone())),
        ("create with every type", ok(json!({"_id": "ann", "_version": 1, "_source": ann}))),
        ("defaults were stored", ok(ann.clone())),
        ("string too short", field("name", "Invalid string length. Expected min: 2. Received: 1 (\"b\")")),
        ("integer over its maximum", field("age", "Value 200 is greater than the allowed maximum (150)")),
        ("integer with a fraction", field("age", "The field must be an integer.")),
        ("integer as a string", field("age", "The field must be a number.")),
        ("numeric over its maximum", field("score", "Value 11 is greater than the allowed maximum (10)")),
        ("boolean", field("ok", "The field must be of type boolean.")),
        ("date format", field("born", "The date format is invalid.")),
        ("date before its minimum", field("born", "The provided date is before the defined minimum.")),
        ("email", field("mail", "The string must be a valid email address.")),
        ("url empty", field("site", "The string must not be empty.")),
        ("url", field("site", "The string must be a valid URL.")),
        ("ip_address", field("ip", "The string must be a valid IP address.")),
        ("enum", field("color", "The field only accepts following values: \"red, blue\".")),
        ("geo_point", field("where", "Invalid GeoPoint format")),
        ("geo_shape type not allowed", field("zone", "The provided shape type is not allowed.")),
        ("nested mandatory", field("address.city", "The field is mandatory.")),
        ("nested strict", field("address", "The field is set to \"strict\"; cannot add unspecified sub-field \"street\".")),
        ("too many elements", field("tags", "Too many elements. Maximum count is set to 2.")),
        ("validators", document("The document does not match validation filters.")),
        ("update sets a default on null", ok(json!({"_id": "ann", "_version": 2, "_source": {"status": "new"}}))),
        ("replace fills defaults", ok(json!({"_id": "ann", "_version": 3, "_source": replaced}))),
        ("get after replace", ok(replaced.clone())),
        ("validate lists nested problems", ok(json!({"valid": false, "errorMessages": {"fieldScope": {"children": {
            "name": {"messages": ["Invalid string length. Expected min: 2. Received: 1 (\"a\")"]},
            "address": {"children": {"city": {"messages": ["The field must be a string."]}}},
            "tags": {"messages": ["The field must be multivalued, unary value provided."]},
        }}}}))),
        ("publish valid", ok(json!(true))),
        ("publish invalid", field("name", "Invalid string length. Expected min: 2. Received: 1 (\"p\")")),
        ("publish refused by validators", document("The document does not match validation filters.")),
        ("publish strict", document("The document validation is strict. Cannot add unspecified sub-field \"extra\"")),
        ("publish elsewhere", ok(json!(true))),
        ("end", ok(json!(true))),
        ("deleteSpecifications", ok(json!(null))),
        ("publish after deleteSpecifications", ok(json!(true))),
    ];
    for (name, outcome) in &expected {
        let got = steps.get(*name);
        assert_eq!(got, Some(outcome), "step {name}");
    }
    assert_eq!(
        steps.len(),
        expected.len(),
        "every step is checked: {steps:?}"
    );
    // Accepted writes and messages only, each with its defaults.
    let notified = |action: &str, id: Value, source: Value| json!({ "action": action, "id": id, "source": source });
    let mut updated = ann.clone();
    updated["status"] = json!("new");
    assert_eq!(
        observed.received("scope", "all"),
        &vec![
            notified("create", json!("ann"), ann),
            notified("update", json!("ann"), updated),
            notified("replace", json!("ann"), replaced),
            notified(
                "publish",
                Value::Null,
                json!({"name": "pub", "address": {"city": "Nice", "zip": "00000"}, "color": "red", "status": "new"})
            ),
            notified(
                "publish",
                Value::Null,
                json!({"name": "end", "color": "red", "status": "new"})
            ),
        ]
    );
}

/// `realtime:publish` reads specifications from memory: after a restart they are loaded from
/// the store, including those of a collection that does not exist (Kuzzle does not require
/// one), and a deletion is remembered across the next restart.
#[test]
fn publish_checks_specifications_loaded_at_start_up() {
    let data = Scratch::new();
    let config = format!(
        "[server]\ndataDir = {:?}\n{}",
        data.path().join("store"),
        protocol_section("line", "fixture_line", "")
    );
    let publish = |client: &mut LineClient, index: &str, body: Value| {
        let request = json!({"controller": "realtime", "action": "publish", "index": index, "collection": "c", "body": body});
        let (_, status, answer) = client.request(&request.to_string());
        (status, answer["error"]["message"].clone())
    };
    let refused = (
        400,
        json!("Validation failed. Field \"name\": The field is mandatory."),
    );
    let accepted = (200, Value::Null);
    let server = Server::start(&config);
    let mut client = LineClient::connect(&server.address("line"));
    for request in [
        r#"{"controller":"collection","action":"create","index":"stored","collection":"c"}"#,
        r#"{"controller":"collection","action":"updateSpecifications","index":"stored","collection":"c","body":{"fields":{"name":{"type":"string","mandatory":true}}}}"#,
        r#"{"controller":"collection","action":"updateSpecifications","index":"ghost","collection":"c","body":{"fields":{"name":{"type":"string","mandatory":true}}}}"#,
    ] {
        let (_, status, answer) = client.request(request);
        assert_eq!(status, 200, "{answer}");
    }
    assert_eq!(publish(&mut client, "ghost", json!({})), refused);
    drop(client);
    server.stop_with(Signal::SIGTERM, Duration::from_secs(30));

    let server = Server::start(&config);
    let mut client = LineClient::connect(&server.address("line"));
    assert_eq!(publish(&mut client, "stored", json!({})), refused);
    assert_eq!(publish(&mut client, "ghost", json!({})), refused);
    assert_eq!(
        publish(&mut client, "ghost", json!({"name": "n"})),
        accepted
    );
    let (_, status, answer) = client.request(
        r#"{"controller":"collection","action":"deleteSpecifications","index":"ghost","collection":"c"}"#,
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(publish(&mut client, "ghost", json!({})), accepted);
    drop(client);
    server.stop_with(Signal::SIGTERM, Duration::from_secs(30));

    let server = Server::start(&config);
    let mut client = LineClient::connect(&server.address("line"));
    assert_eq!(publish(&mut client, "ghost", json!({})), accepted);
    assert_eq!(publish(&mut client, "stored", json!({})), refused);
}
