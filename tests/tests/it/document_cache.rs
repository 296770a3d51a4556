//! `document:get` answered from the embedded store's document cache on the WebSocket thread
//! (`Run::Cached`, `storage/src/embedded/document_cache.rs`): a get on another connection,
//! right after a change was acknowledged, always answers the change — writes, m* writes,
//! updates, deletes, deleteByQuery, truncate, collection and index deletion — with the cache on
//! (the default) and the same answers with it off (`documentCacheBytes = 0`, every get on the
//! blocking pool).

use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_tests::{protocol_section, Server};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// A WebSocket client speaking Kuzzle's JSON requests, one at a time.
struct Ws(WebSocket<MaybeTlsStream<TcpStream>>);

impl Ws {
    fn connect(server: &Server) -> Ws {
        let (socket, _) = tungstenite::connect(server.url("websocket")).expect("connect");
        if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
            stream
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
        }
        Ws(socket)
    }

    /// Sends `request` (with `index` shop and `collection` items unless it says) and returns
    /// its answer.
    fn call(&mut self, mut request: Value) -> Value {
        let fields = request.as_object_mut().expect("an object");
        fields.entry("index").or_insert(json!("shop"));
        fields.entry("collection").or_insert(json!("items"));
        fields.insert("requestId".into(), json!("r"));
        self.0
            .send(Message::text(request.to_string()))
            .expect("send");
        loop {
            match self.0.read().expect("an answer before the timeout") {
                Message::Text(text) => return serde_json::from_str(&text).expect("JSON"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// `call`, which must succeed.
    fn ok(&mut self, request: Value) -> Value {
        let answer = self.call(request.clone());
        assert_eq!(answer["status"], 200, "{request} answered {answer}");
        answer
    }

    /// What `document:get` of `id` says: `{version, source}` without `_kuzzle_info`, or the
    /// error's id and message.
    fn get(&mut self, id: &str) -> Value {
        let answer = self.call(json!({"controller": "document", "action": "get", "_id": id}));
        if answer["status"] == 200 {
            let mut source = answer["result"]["_source"].clone();
            source
                .as_object_mut()
                .expect("an object")
                .remove("_kuzzle_info");
            json!({"version": answer["result"]["_version"], "source": source})
        } else {
            json!({"status": answer["status"], "id": answer["error"]["id"],
                "message": answer["error"]["message"]})
        }
    }
}

fn found(version: u64, source: Value) -> Value {
    json!({"version": version, "source": source})
}

fn missing(id: &str) -> Value {
    json!({"status": 404, "id": "services.storage.not_found",
        "message": format!("Document \"{id}\" not found in \"shop\":\"items\".")})
}

fn start(cache: Option<u64>) -> Server {
    let websocket = protocol_section(
        "websocket",
        "websocket",
        "port = 0\naddress = \"127.0.0.1\"",
    );
    let storage = cache.map_or(String::new(), |bytes| {
        format!("[storage]\ndocumentCacheBytes = {bytes}\n")
    });
    Server::start(&format!("[server]\n{websocket}{storage}"))
}

fn every_change_is_read_back(server: &Server) {
    let mut writer = Ws::connect(server);
    let mut reader = Ws::connect(server);
    let create_collection = json!({"controller": "collection", "action": "create", "body": {"properties": {"city": {"type": "keyword"}}}});
    writer.ok(json!({"controller": "index", "action": "create"}));
    writer.ok(create_collection.clone());

    // Single writes; each get twice (the second is the cache's if the first filled it).
    writer.ok(json!({"controller": "document", "action": "create", "_id": "a", "body": {"v": 1}}));
    assert_eq!(reader.get("a"), found(1, json!({"v": 1})));
    assert_eq!(reader.get("a"), found(1, json!({"v": 1})));
    writer.ok(json!({"controller": "document", "action": "replace", "_id": "a", "body": {"v": 2}}));
    assert_eq!(reader.get("a"), found(2, json!({"v": 2})));
    writer.ok(json!({"controller": "document", "action": "update", "_id": "a", "body": {"w": 3}}));
    assert_eq!(reader.get("a"), found(3, json!({"v": 2, "w": 3})));
    writer.ok(json!({"controller": "document", "action": "createOrReplace", "_id": "a", "body": {"v": 4}}));
    assert_eq!(reader.get("a"), found(4, json!({"v": 4})));
    writer.ok(json!({"controller": "document", "action": "delete", "_id": "a"}));
    assert_eq!(reader.get("a"), missing("a"));
    assert_eq!(reader.get("a"), missing("a"));
    writer.ok(json!({"controller": "document", "action": "create", "_id": "a", "body": {"v": 5}}));
    assert_eq!(reader.get("a"), found(1, json!({"v": 5})));

    // m* writes and by-query changes.
    writer.ok(
        json!({"controller": "document", "action": "mCreate", "body": {"documents": [
        {"_id": "b", "body": {"city": "x"}}, {"_id": "c", "body": {"city": "y"}}]}}),
    );
    assert_eq!(reader.get("b"), found(1, json!({"city": "x"})));
    assert_eq!(reader.get("c"), found(1, json!({"city": "y"})));
    writer.ok(
        json!({"controller": "document", "action": "mUpdate", "body": {"documents": [
        {"_id": "b", "body": {"n": 1}}]}}),
    );
    assert_eq!(reader.get("b"), found(2, json!({"city": "x", "n": 1})));
    writer.ok(json!({"controller": "document", "action": "updateByQuery",
        "body": {"query": {"term": {"city": "y"}}, "changes": {"n": 2}}}));
    assert_eq!(reader.get("c"), found(2, json!({"city": "y", "n": 2})));
    writer.ok(
        json!({"controller": "document", "action": "deleteFields", "_id": "c",
        "body": {"fields": ["n"]}}),
    );
    assert_eq!(reader.get("c"), found(3, json!({"city": "y"})));
    writer.ok(json!({"controller": "document", "action": "mDelete", "body": {"ids": ["b"]}}));
    assert_eq!(reader.get("b"), missing("b"));
    writer.ok(json!({"controller": "document", "action": "deleteByQuery",
        "body": {"query": {"term": {"city": "y"}}}}));
    assert_eq!(reader.get("c"), missing("c"));

    // Truncate.
    assert_eq!(reader.get("a"), found(1, json!({"v": 5})));
    writer.ok(json!({"controller": "collection", "action": "truncate"}));
    assert_eq!(reader.get("a"), missing("a"));

    // Collection deletion, then the same name again.
    writer.ok(json!({"controller": "document", "action": "create", "_id": "d", "body": {"v": 1}}));
    assert_eq!(reader.get("d"), found(1, json!({"v": 1})));
    writer.ok(json!({"controller": "collection", "action": "delete"}));
    assert_eq!(
        reader.get("d"),
        json!({"status": 412, "id": "services.storage.unknown_collection",
            "message": "The collection \"shop\":\"items\" does not exist."})
    );
    writer.ok(create_collection.clone());
    assert_eq!(reader.get("d"), missing("d"));

    // Index deletion, then the same name again.
    writer.ok(json!({"controller": "document", "action": "create", "_id": "e", "body": {"v": 1}}));
    assert_eq!(reader.get("e"), found(1, json!({"v": 1})));
    writer.ok(json!({"controller": "index", "action": "delete"}));
    assert_eq!(
        reader.get("e"),
        json!({"status": 412, "id": "services.storage.unknown_index",
            "message": "The index \"shop\" does not exist."})
    );
    writer.ok(json!({"controller": "index", "action": "create"}));
    writer.ok(create_collection);
    assert_eq!(reader.get("e"), missing("e"));

    // A bad id gets its error from the blocking path, cache or not.
    let answer = reader.call(json!({"controller": "document", "action": "get", "_id": 7}));
    assert_eq!(answer["error"]["id"], "api.assert.invalid_type", "{answer}");
}

#[test]
fn document_get_reads_every_acknowledged_change_with_the_cache() {
    every_change_is_read_back(&start(None));
}

#[test]
fn document_get_reads_every_acknowledged_change_without_the_cache() {
    every_change_is_read_back(&start(Some(0)));
}
