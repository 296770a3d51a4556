//! Integration tests of the stores through the `Storage` trait: every test that takes a
//! `Backend` runs twice, `embedded::<name>` on the embedded store and `postgres::<name>` on the
//! PostgreSQL one (a throwaway server, see `tests/src/postgres.rs`; skipped with a message when
//! there is no PostgreSQL and `SWITCHYARD_REQUIRE_POSTGRES` is unset). Same calls, same
//! expected results and errors.

use std::sync::Arc;

use serde_json::{json, Value};
use switchyard_storage::{
    Document, EmbeddedOptions, EmbeddedStorage, KuzzleInfo, Operation, Outcome, PostgresOptions,
    PostgresStorage, Precondition, Query, QueryError, SearchRequest, Storage, StorageError,
    WriteBatch,
};

#[path = "../../tests/src/postgres.rs"]
mod postgres_server;

/// Where a test's store lives; `open` may be called again to reopen it.
enum Backend {
    /// The embedded store's folder.
    Embedded(tempfile::TempDir),
    /// A database of its own on the test server: its URL.
    Postgres(String),
}

impl Backend {
    fn open(&self) -> Arc<dyn Storage> {
        match self {
            Backend::Embedded(dir) => {
                Arc::new(EmbeddedStorage::open(dir.path(), EmbeddedOptions::default()).unwrap())
            }
            Backend::Postgres(url) => {
                Arc::new(PostgresStorage::connect(&PostgresOptions::new(url.clone())).unwrap())
            }
        }
    }
}

/// The embedded store in `dir` (tests of the embedded store's own read snapshot).
fn open_embedded(dir: &std::path::Path) -> Arc<dyn Storage> {
    Arc::new(EmbeddedStorage::open(dir, EmbeddedOptions::default()).unwrap())
}

/// Declares `embedded::<test>` and `postgres::<test>` for each test function.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[test]
                fn $name() {
                    super::$name(&super::Backend::Embedded(tempfile::tempdir().unwrap()));
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $name() {
                    let test = concat!("postgres::", stringify!($name));
                    if let Some(server) = super::postgres_server::server(test) {
                        let url = server.database(stringify!($name));
                        super::$name(&super::Backend::Postgres(url));
                    }
                }
            )*
        }
    };
}

on_both_backends!(
    indexes_and_collections,
    crud_preconditions_and_partial_failures,
    reopen_keeps_everything,
    concurrent_writers_all_land,
    racing_creates_of_one_id_one_wins,
    search_clauses_index_and_scan_agree,
    sort_paging_and_search_after,
    property_index_and_scan_give_the_same_answers,
    internal_records_survive_index_deletion_and_reopen,
    exists_finds_objects_stored_under_an_indexed_field,
    range_and_prefix_on_indexed_fields_match_a_scan,
);

fn info() -> KuzzleInfo {
    KuzzleInfo {
        author: Some("-1".into()),
        created_at: Some(1_700_000_000_000),
        updated_at: None,
        updater: None,
    }
}

fn put(id: &str, source: Value, precondition: Precondition) -> Operation {
    Operation::Put {
        id: id.into(),
        source,
        info: info(),
        meta: id.as_bytes().to_vec(),
        precondition,
    }
}

/// Creates `docs` in each of `collections` of `nyc`, one batch per collection.
fn create_in(store: &dyn Storage, collections: &[&str], docs: &[(&str, Value)]) {
    for collection in collections {
        let ops = docs
            .iter()
            .map(|(id, source)| put(id, source.clone(), Precondition::Absent))
            .collect();
        let mut b = batch(ops);
        b.collection = (*collection).into();
        store.write(b).unwrap();
    }
}

/// Creates `{prefix}0` … `{prefix}{n-1}`, one batch (one group) each, `body(i)` as source.
fn create_one_by_one(store: &dyn Storage, prefix: &str, n: usize, body: impl Fn(usize) -> Value) {
    for i in 0..n {
        store
            .write(batch(vec![put(
                &format!("{prefix}{i}"),
                body(i),
                Precondition::Absent,
            )]))
            .unwrap();
    }
}

fn batch(operations: Vec<Operation>) -> WriteBatch {
    WriteBatch {
        index: "nyc".into(),
        collection: "taxi".into(),
        operations,
    }
}

fn setup(store: &dyn Storage, mapping: Value) {
    store.create_index("nyc").unwrap();
    store.create_collection("nyc", "taxi", &mapping).unwrap();
}

fn indexes_and_collections(backend: &Backend) {
    let store = backend.open();
    assert!(!store.index_exists("nyc").unwrap());
    store.create_index("nyc").unwrap();
    assert!(matches!(
        store.create_index("nyc"),
        Err(StorageError::IndexAlreadyExists { .. })
    ));
    assert!(matches!(
        store.create_index("Bad"),
        Err(StorageError::InvalidIndexName { .. })
    ));
    store.create_index("ams").unwrap();
    assert!(matches!(
        store.create_index("%kuzzle"),
        Err(StorageError::InvalidIndexName { .. })
    ));
    store.create_internal_index("%kuzzle").unwrap();
    assert!(store.index_exists("%kuzzle").unwrap());
    store
        .create_collection("%kuzzle", "users", &json!({}))
        .unwrap();
    // Internal indexes are not listed: `index:list` and `admin:resetDatabase` never see them.
    assert_eq!(store.list_indexes().unwrap(), ["ams", "nyc"]);
    assert!(matches!(
        store.create_collection("nope", "taxi", &json!({})),
        Err(StorageError::IndexNotFound { .. })
    ));
    assert!(matches!(
        store.create_collection("nyc", "a.b", &json!({})),
        Err(StorageError::InvalidCollectionName { .. })
    ));
    let mapping = json!({"dynamic": "true", "properties": {"city": {"type": "keyword"}}});
    store.create_collection("nyc", "taxi", &mapping).unwrap();
    store.create_collection("nyc", "bus", &json!({})).unwrap();
    assert!(matches!(
        store.create_collection("nyc", "taxi", &json!({})),
        Err(StorageError::CollectionAlreadyExists { .. })
    ));
    assert_eq!(store.list_collections("nyc").unwrap(), ["bus", "taxi"]);
    assert!(store.list_collections("ams").unwrap().is_empty());
    assert!(store.collection_exists("nyc", "taxi").unwrap());
    assert!(!store.collection_exists("ams", "taxi").unwrap());
    assert_eq!(store.get_mapping("nyc", "taxi").unwrap(), mapping);
    let merged = store
        .update_mapping(
            "nyc",
            "taxi",
            &json!({"properties": {"age": {"type": "integer"}}}),
        )
        .unwrap();
    assert_eq!(
        merged,
        json!({"dynamic": "true", "properties": {"city": {"type": "keyword"}, "age": {"type": "integer"}}})
    );
    assert!(matches!(
        store.get("nyc", "nope", "x"),
        Err(StorageError::CollectionNotFound { .. })
    ));
    assert!(matches!(
        store.get("nope", "taxi", "x"),
        Err(StorageError::IndexNotFound { .. })
    ));
    store.delete_collection("nyc", "bus").unwrap();
    assert_eq!(store.list_collections("nyc").unwrap(), ["taxi"]);
    store
        .write(batch(vec![put(
            "a",
            json!({"city": "x"}),
            Precondition::Any,
        )]))
        .unwrap();
    store.delete_index("nyc").unwrap();
    assert_eq!(store.list_indexes().unwrap(), ["ams"]);
    assert!(matches!(
        store.delete_index("nyc"),
        Err(StorageError::IndexNotFound { .. })
    ));
    // A re-created collection starts empty.
    setup(&*store, json!({}));
    assert_eq!(store.get("nyc", "taxi", "a").unwrap(), None);
}

fn crud_preconditions_and_partial_failures(backend: &Backend) {
    let store = backend.open();
    setup(
        &*store,
        json!({"properties": {"city": {"type": "keyword"}}}),
    );

    let outcomes = store
        .write(batch(vec![
            put("a", json!({"city": "nyc"}), Precondition::Absent),
            put("b", json!({"city": "ams"}), Precondition::Absent),
            put("a", json!({"city": "dup"}), Precondition::Absent),
            put("c", json!([1]), Precondition::Any),
            put("", json!({}), Precondition::Any),
            put("d", json!({}), Precondition::Present),
        ]))
        .unwrap();
    assert!(matches!(
        &outcomes[0],
        Outcome::Written {
            version: 1,
            created: true,
            previous: None,
            ..
        }
    ));
    assert!(matches!(
        &outcomes[1],
        Outcome::Written {
            version: 1,
            created: true,
            ..
        }
    ));
    assert!(matches!(
        &outcomes[2],
        Outcome::Failed {
            error: StorageError::DocumentAlreadyExists { .. },
            ..
        }
    ));
    assert_eq!(
        outcomes[2].clone(),
        Outcome::Failed {
            id: "a".into(),
            error: StorageError::DocumentAlreadyExists {
                index: "nyc".into(),
                collection: "taxi".into(),
                id: "a".into()
            }
        }
    );
    assert!(matches!(
        &outcomes[3],
        Outcome::Failed {
            error: StorageError::InvalidDocument { .. },
            ..
        }
    ));
    assert!(matches!(
        &outcomes[4],
        Outcome::Failed {
            error: StorageError::InvalidId { .. },
            ..
        }
    ));
    assert!(matches!(
        &outcomes[5],
        Outcome::Failed {
            error: StorageError::DocumentNotFound { .. },
            ..
        }
    ));

    let a = store.get("nyc", "taxi", "a").unwrap().unwrap();
    assert_eq!(
        a,
        Document {
            id: "a".into(),
            version: 1,
            source: json!({"city": "nyc"}),
            info: info(),
            meta: b"a".to_vec(),
        }
    );
    assert_eq!(a.source_with_info()["_kuzzle_info"]["author"], "-1");

    // Read-modify-write with a version: a stale version fails, the right one applies.
    let outcomes = store
        .write(batch(vec![
            put("a", json!({"city": "stale"}), Precondition::Version(7)),
            put("a", json!({"city": "paris"}), Precondition::Version(1)),
            put("b", json!({"city": "rome"}), Precondition::Present),
        ]))
        .unwrap();
    assert!(matches!(
        &outcomes[0],
        Outcome::Failed {
            error: StorageError::VersionConflict {
                expected: 7,
                actual: 1,
                ..
            },
            ..
        }
    ));
    match &outcomes[1] {
        Outcome::Written {
            version,
            created,
            previous,
            ..
        } => {
            assert_eq!(*version, 2);
            assert!(!created);
            assert_eq!(previous.as_ref().unwrap().source, json!({"city": "nyc"}));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&outcomes[2], Outcome::Written { version: 2, .. }));

    let docs = store
        .mget("nyc", "taxi", &["b".into(), "zz".into(), "a".into()])
        .unwrap();
    assert_eq!(docs[0].as_ref().unwrap().source, json!({"city": "rome"}));
    assert!(docs[1].is_none());
    assert_eq!(docs[2].as_ref().unwrap().version, 2);

    // Deletes: missing fails, a version mismatch fails, the rest applies; the index follows.
    let outcomes = store
        .write(batch(vec![
            Operation::Delete {
                id: "zz".into(),
                precondition: Precondition::Any,
            },
            Operation::Delete {
                id: "a".into(),
                precondition: Precondition::Version(1),
            },
            Operation::Delete {
                id: "b".into(),
                precondition: Precondition::Any,
            },
        ]))
        .unwrap();
    assert!(matches!(
        &outcomes[0],
        Outcome::Failed {
            error: StorageError::DocumentNotFound { .. },
            ..
        }
    ));
    assert!(matches!(
        &outcomes[1],
        Outcome::Failed {
            error: StorageError::VersionConflict { .. },
            ..
        }
    ));
    match &outcomes[2] {
        Outcome::Deleted { previous, .. } => assert_eq!(previous.source, json!({"city": "rome"})),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.get("nyc", "taxi", "b").unwrap(), None);
    let rome = Query::parse(&json!({"term": {"city": "rome"}})).unwrap();
    assert_eq!(store.count("nyc", "taxi", &rome).unwrap(), 0);
    let paris = Query::parse(&json!({"term": {"city": "paris"}})).unwrap();
    assert_eq!(store.count("nyc", "taxi", &paris).unwrap(), 1);

    // A batch on a missing collection fails as a whole.
    let mut missing = batch(vec![put("x", json!({}), Precondition::Any)]);
    missing.collection = "nope".into();
    assert!(matches!(
        store.write(missing),
        Err(StorageError::CollectionNotFound { .. })
    ));

    store.truncate_collection("nyc", "taxi").unwrap();
    assert_eq!(store.get("nyc", "taxi", "a").unwrap(), None);
    assert_eq!(store.count("nyc", "taxi", &paris).unwrap(), 0);
    assert!(store.collection_exists("nyc", "taxi").unwrap());
}

fn reopen_keeps_everything(backend: &Backend) {
    {
        let store = backend.open();
        setup(&*store, json!({"properties": {"n": {"type": "long"}}}));
        let ops = (0..100)
            .map(|i| put(&format!("d{i:03}"), json!({"n": i}), Precondition::Absent))
            .collect();
        store.write(batch(ops)).unwrap();
    }
    let store = backend.open();
    assert_eq!(store.list_collections("nyc").unwrap(), ["taxi"]);
    let doc = store.get("nyc", "taxi", "d042").unwrap().unwrap();
    assert_eq!(doc.source, json!({"n": 42}));
    assert_eq!(doc.meta, b"d042");
    let q = Query::parse(&json!({"range": {"n": {"gte": 10, "lt": 20}}})).unwrap();
    assert_eq!(store.count("nyc", "taxi", &q).unwrap(), 10);
}

fn concurrent_writers_all_land(backend: &Backend) {
    let store = backend.open();
    setup(&*store, json!({}));
    std::thread::scope(|scope| {
        for t in 0..20 {
            let store = store.clone();
            scope.spawn(move || {
                for i in 0..25 {
                    let outcomes = store
                        .write(batch(vec![put(
                            &format!("{t}-{i}"),
                            json!({"t": t}),
                            Precondition::Absent,
                        )]))
                        .unwrap();
                    assert!(matches!(outcomes[0], Outcome::Written { .. }));
                }
            });
        }
    });
    assert_eq!(store.count("nyc", "taxi", &Query::MatchAll).unwrap(), 500);
}

/// Creates of the same ids from many threads at once: exactly one create of each id wins,
/// the others get `DocumentAlreadyExists` (PostgreSQL: the loser of the insert race reads the
/// winner's row; embedded: group commit orders them).
fn racing_creates_of_one_id_one_wins(backend: &Backend) {
    let store = backend.open();
    setup(&*store, json!({}));
    let won: Vec<usize> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                scope.spawn(move || {
                    let ops = (0..20)
                        .map(|i| put(&format!("id{i}"), json!({"t": t}), Precondition::Absent))
                        .collect();
                    let outcomes = store.write(batch(ops)).unwrap();
                    let mut won = 0;
                    for outcome in outcomes {
                        match outcome {
                            Outcome::Written { created: true, .. } => won += 1,
                            Outcome::Failed {
                                error: StorageError::DocumentAlreadyExists { .. },
                                ..
                            } => {}
                            other => panic!("{other:?}"),
                        }
                    }
                    won
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(won.iter().sum::<usize>(), 20, "{won:?}");
    assert_eq!(store.count("nyc", "taxi", &Query::MatchAll).unwrap(), 20);
}

fn search_ids(store: &dyn Storage, collection: &str, body: Value) -> Vec<String> {
    let request = SearchRequest::from_body(&body, None, Some(10_000)).unwrap();
    store
        .search("nyc", collection, &request)
        .unwrap()
        .hits
        .into_iter()
        .map(|d| d.id)
        .collect()
}

const MAPPING: &str = r#"{"properties": {
    "city": {"type": "keyword"},
    "name": {"type": "text", "fields": {"keyword": {"type": "keyword"}}},
    "age": {"type": "integer"},
    "score": {"type": "double"},
    "active": {"type": "boolean"},
    "tags": {"type": "keyword"},
    "address": {"properties": {"zip": {"type": "keyword"}}},
    "_kuzzle_info": {"properties": {"createdAt": {"type": "date"}, "author": {"type": "keyword"}}}
}}"#;

fn fixtures(store: &dyn Storage) {
    let docs = [
        (
            "alice",
            json!({"city": "nyc", "name": "Alice Smith", "age": 30, "score": 1.5, "active": true, "tags": ["a", "b"], "address": {"zip": "10001"}}),
        ),
        (
            "bob",
            json!({"city": "ams", "name": "Bob Stone", "age": 25, "score": -2.0, "active": false, "tags": ["b"]}),
        ),
        (
            "carol",
            json!({"city": "nyc", "name": "Carol Smith-Jones", "age": 41, "tags": [], "address": {"zip": "10002"}}),
        ),
        (
            "dave",
            json!({"city": "paris", "name": "dave", "age": null, "score": 7}),
        ),
        ("eve", json!({"city": "nycity", "age": 30, "active": true})),
    ];
    create_in(store, &["taxi", "scan"], &docs);
}

fn search_clauses_index_and_scan_agree(backend: &Backend) {
    let store = backend.open();
    setup(&*store, serde_json::from_str(MAPPING).unwrap());
    store.create_collection("nyc", "scan", &json!({})).unwrap();
    fixtures(&*store);
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({}), vec!["alice", "bob", "carol", "dave", "eve"]),
        (
            json!({"match_all": {}}),
            vec!["alice", "bob", "carol", "dave", "eve"],
        ),
        (
            json!({"ids": {"values": ["bob", "zed", "eve"]}}),
            vec!["bob", "eve"],
        ),
        (json!({"term": {"city": "nyc"}}), vec!["alice", "carol"]),
        (json!({"term": {"city": {"value": "ams"}}}), vec!["bob"]),
        (json!({"term": {"_id": "dave"}}), vec!["dave"]),
        (json!({"term": {"tags": "b"}}), vec!["alice", "bob"]),
        (json!({"term": {"age": 30}}), vec!["alice", "eve"]),
        (json!({"term": {"age": 30.0}}), vec!["alice", "eve"]),
        (json!({"term": {"active": false}}), vec!["bob"]),
        (json!({"term": {"address.zip": "10002"}}), vec!["carol"]),
        (json!({"term": {"name.keyword": "dave"}}), vec!["dave"]),
        (
            json!({"terms": {"city": ["ams", "paris", "x"]}}),
            vec!["bob", "dave"],
        ),
        (
            json!({"terms": {"_id": ["bob", "carol"]}}),
            vec!["bob", "carol"],
        ),
        (
            json!({"range": {"age": {"gte": 25, "lt": 41}}}),
            vec!["alice", "bob", "eve"],
        ),
        (
            json!({"range": {"age": {"gt": 25}}}),
            vec!["alice", "carol", "eve"],
        ),
        (
            json!({"range": {"age": {"lte": 30}}}),
            vec!["alice", "bob", "eve"],
        ),
        (
            json!({"range": {"score": {"gt": -3, "lt": 2}}}),
            vec!["alice", "bob"],
        ),
        (
            json!({"range": {"city": {"gte": "nyc", "lte": "nyz"}}}),
            vec!["alice", "carol", "eve"],
        ),
        (json!({"range": {"age": {"gte": "a"}}}), vec![]),
        (
            json!({"range": {"_kuzzle_info.createdAt": {"gte": 1_700_000_000_000u64}}}),
            vec!["alice", "bob", "carol", "dave", "eve"],
        ),
        (
            json!({"exists": {"field": "age"}}),
            vec!["alice", "bob", "carol", "eve"],
        ),
        (json!({"exists": {"field": "tags"}}), vec!["alice", "bob"]),
        (
            json!({"exists": {"field": "address"}}),
            vec!["alice", "carol"],
        ),
        (
            json!({"prefix": {"city": "nyc"}}),
            vec!["alice", "carol", "eve"],
        ),
        (json!({"prefix": {"city": {"value": "p"}}}), vec!["dave"]),
        (json!({"match": {"_id": "carol"}}), vec!["carol"]),
        (json!({"match": {"name": "smith"}}), vec!["alice", "carol"]),
        (
            json!({"match": {"name": "SMITH bob"}}),
            vec!["alice", "bob", "carol"],
        ),
        (
            json!({"match": {"name": {"query": "smith jones", "operator": "and"}}}),
            vec!["carol"],
        ),
        (json!({"match": {"city": "nyc"}}), vec!["alice", "carol"]),
        (json!({"match": {"age": 41}}), vec!["carol"]),
        (
            json!({"bool": {"must": {"term": {"city": "nyc"}}, "must_not": [{"range": {"age": {"gt": 35}}}]}}),
            vec!["alice"],
        ),
        (
            json!({"bool": {"filter": [{"term": {"active": true}}, {"term": {"age": 30}}]}}),
            vec!["alice", "eve"],
        ),
        (
            json!({"bool": {"should": [{"term": {"city": "ams"}}, {"term": {"city": "paris"}}]}}),
            vec!["bob", "dave"],
        ),
        (
            json!({"bool": {"should": [{"term": {"city": "ams"}}, {"match": {"name": "dave"}}]}}),
            vec!["bob", "dave"],
        ),
        (
            json!({"bool": {"must": {"term": {"city": "nyc"}}, "should": [{"term": {"age": 30}}]}}),
            vec!["alice", "carol"],
        ),
        (
            json!({"bool": {"must": {"term": {"city": "nyc"}}, "should": [{"term": {"age": 30}}], "minimum_should_match": 1}}),
            vec!["alice"],
        ),
        (
            json!({"bool": {"should": [{"term": {"tags": "a"}}, {"term": {"tags": "b"}}, {"term": {"city": "ams"}}], "minimum_should_match": "2"}}),
            vec!["alice", "bob"],
        ),
        (
            json!({"bool": {"must_not": {"exists": {"field": "age"}}}}),
            vec!["dave"],
        ),
    ];
    for (query, expected) in cases {
        for collection in ["taxi", "scan"] {
            // A multi-field exists only where the mapping declares it.
            if collection == "scan" && query.to_string().contains(".keyword") {
                continue;
            }
            let got = search_ids(&*store, collection, json!({"query": query}));
            assert_eq!(got, expected, "{query} on {collection}");
            // `count` takes its own shortcuts (the table's length, the exact index's ids).
            let count = store
                .count("nyc", collection, &Query::parse(&query).unwrap())
                .unwrap();
            assert_eq!(
                count,
                expected.len() as u64,
                "count {query} on {collection}"
            );
        }
    }
}

/// An object (or an array holding one) stored where the mapping has a keyword field: `exists`
/// must find it through the secondary index as a scan does, after a write, an update back to
/// a scalar, a delete, and an index rebuilt by `update_mapping`. (The embedded store's index
/// had no entry for non-scalar values, so `exists` through the index missed them.)
fn exists_finds_objects_stored_under_an_indexed_field(backend: &Backend) {
    let store = backend.open();
    let mapping =
        json!({"properties": {"place": {"type": "keyword"}, "city": {"type": "keyword"}}});
    setup(&*store, mapping);
    store.create_collection("nyc", "scan", &json!({})).unwrap();
    store.create_collection("nyc", "later", &json!({})).unwrap();
    let docs = [
        ("object", json!({"place": {"lat": 40.7, "lon": -74.0}})),
        ("empty-object", json!({"place": {}})),
        ("objects", json!({"place": [{"name": "a"}, {"name": "b"}]})),
        ("scalar", json!({"place": "harbour"})),
        ("mixed", json!({"place": ["pier", {"name": "c"}]})),
        ("null", json!({"place": null})),
        ("empty-array", json!({"place": []})),
        ("absent", json!({"city": "nyc"})),
    ];
    create_in(&*store, &["taxi", "scan", "later"], &docs);
    // `later` gets the mapping after its documents: its index is rebuilt from them.
    store
        .update_mapping(
            "nyc",
            "later",
            &json!({"properties": {"place": {"type": "keyword"}}}),
        )
        .unwrap();
    let exists = json!({"query": {"exists": {"field": "place"}}});
    let expected = ["empty-object", "mixed", "object", "objects", "scalar"];
    for collection in ["taxi", "scan", "later"] {
        let mut got = search_ids(&*store, collection, exists.clone());
        got.sort();
        assert_eq!(got, expected, "exists on {collection}");
        let count = store
            .count("nyc", collection, &Query::parse(&exists["query"]).unwrap())
            .unwrap();
        assert_eq!(count, 5, "count on {collection}");
    }
    // The other queries on the field still answer what a scan answers.
    for query in [
        json!({"term": {"place": "pier"}}),
        json!({"range": {"place": {"gte": "a"}}}),
        json!({"prefix": {"place": "h"}}),
    ] {
        let body = json!({"query": query});
        assert_eq!(
            search_ids(&*store, "taxi", body.clone()),
            search_ids(&*store, "scan", body.clone()),
            "{query}"
        );
    }
    // An object replaced by a scalar, then deleted: no stale entry either way.
    let mut replace = batch(vec![put(
        "object",
        json!({"city": "ams"}),
        Precondition::Present,
    )]);
    replace.collection = "taxi".into();
    store.write(replace).unwrap();
    let mut delete = batch(vec![Operation::Delete {
        id: "objects".into(),
        precondition: Precondition::Present,
    }]);
    delete.collection = "taxi".into();
    store.write(delete).unwrap();
    let mut got = search_ids(&*store, "taxi", exists);
    got.sort();
    assert_eq!(got, ["empty-object", "mixed", "scalar"]);
}

fn sort_paging_and_search_after(backend: &Backend) {
    let store = backend.open();
    setup(&*store, serde_json::from_str(MAPPING).unwrap());
    store.create_collection("nyc", "scan", &json!({})).unwrap();
    fixtures(&*store);
    let body = json!({"sort": [{"age": "desc"}, "city"]});
    assert_eq!(
        search_ids(&*store, "taxi", body.clone()),
        ["carol", "alice", "eve", "bob", "dave"]
    );
    let body = json!({"sort": {"city": {"order": "asc"}}});
    assert_eq!(
        search_ids(&*store, "scan", body),
        ["bob", "alice", "carol", "eve", "dave"]
    );

    // Page through with search_after (the SDK's way: the last hit's raw source values).
    let mut seen = Vec::new();
    let mut after: Option<Value> = None;
    loop {
        let mut body = json!({"sort": ["age"], "size": 2});
        if let Some(after) = &after {
            body["search_after"] = after.clone();
        }
        let request = SearchRequest::from_body(&body, None, None).unwrap();
        let page = store.search("nyc", "taxi", &request).unwrap();
        assert_eq!(page.total, 5);
        if page.hits.is_empty() {
            break;
        }
        seen.extend(page.hits.iter().map(|d| d.id.clone()));
        after = Some(Value::Array(page.next_search_after.unwrap()));
    }
    assert_eq!(seen, ["bob", "alice", "eve", "carol", "dave"]);

    // from/size.
    let request = SearchRequest::from_body(&json!({"sort": "_id"}), Some(1), Some(2)).unwrap();
    let page = store.search("nyc", "taxi", &request).unwrap();
    assert_eq!(
        page.hits.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["bob", "carol"]
    );
    assert_eq!(page.total, 5);
}

#[test]
fn search_body_errors_are_kuzzles() {
    let cases = [
        (json!({"query": {"equals": {"a": 1}}}), "The keyword \"equals\" is not part of Elasticsearch Query DSL. Are you trying to use a Koncorde query?"),
        (json!({"foo": 1}), "The argument \"foo\" is not allowed at this level of a search query."),
        (json!({"aggregations": {}}), "The \"aggregations\" keyword is not allowed in this query."),
        (json!({"query": {"wildcard": {"a": "x*"}}}), "The \"wildcard\" keyword is not allowed in this query."),
    ];
    for (body, message) in cases {
        let error = SearchRequest::from_body(&body, None, None).unwrap_err();
        assert_eq!(error.to_string(), message);
        assert_eq!(StorageError::from(error).to_string(), message);
    }
    assert!(matches!(
        SearchRequest::from_body(
            &json!({"query": {"bool": {"must": [{"nope": {}}]}}}),
            None,
            None
        ),
        Err(QueryError::UnknownKeyword { .. })
    ));
    assert!(matches!(
        SearchRequest::from_body(&json!({"query": {"term": {"a": 1, "b": 2}}}), None, None),
        Err(QueryError::Malformed { .. })
    ));
    let request = SearchRequest::from_body(&Value::Null, None, None).unwrap();
    assert_eq!(request.query, Query::MatchAll);
    assert_eq!(request.size, 10);
}

/// A tiny xorshift generator: the property test needs no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_value(rng: &mut Rng) -> Value {
    match rng.below(6) {
        0 => json!(rng.below(10)),
        1 => json!(rng.below(10) as f64 - 4.5),
        2 => json!(["a", "b", "c", "ab", "ba"][rng.below(5) as usize]),
        3 => json!(rng.below(2) == 1),
        4 => {
            let s = ["a", "b"][rng.below(2) as usize];
            json!([rng.below(5), s])
        }
        _ => Value::Null,
    }
}

fn random_query(rng: &mut Rng, depth: u32) -> Value {
    let field = ["k", "n", "m"][rng.below(3) as usize];
    let value = random_value(rng);
    let scalar = if value.is_null() || value.is_array() {
        json!(3)
    } else {
        value
    };
    let extra = random_value(rng);
    let values: Vec<Value> = [scalar.clone(), extra]
        .into_iter()
        .filter(|v| !v.is_null() && !v.is_array())
        .collect();
    let prefix = ["a", "b", ""][rng.below(3) as usize];
    let after = ["a", "b"][rng.below(2) as usize];
    match rng.below(if depth > 1 { 9 } else { 10 }) {
        0 => json!({"term": {field: scalar}}),
        1 => json!({"terms": {field: values}}),
        2 => json!({"range": {field: {"gte": rng.below(6), "lt": rng.below(10)}}}),
        3 => json!({"exists": {"field": field}}),
        4 => json!({"prefix": {field: prefix}}),
        5 => json!({"range": {field: {"gt": after}}}),
        6 => {
            json!({"ids": {"values": [format!("d{}", rng.below(40)), format!("d{}", rng.below(40))]}})
        }
        7 => {
            json!({"range": {field: {"gt": rng.below(10) as f64 - 4.5, "lte": rng.below(10)}}})
        }
        8 => json!({"range": {field: {["gt", "gte", "lt", "lte"][rng.below(4) as usize]: scalar}}}),
        _ => json!({"bool": {
            "must": (0..rng.below(3)).map(|_| random_query(rng, depth + 1)).collect::<Vec<_>>(),
            "should": (0..rng.below(3)).map(|_| random_query(rng, depth + 1)).collect::<Vec<_>>(),
            "must_not": (0..rng.below(2)).map(|_| random_query(rng, depth + 1)).collect::<Vec<_>>(),
        }}),
    }
}

fn property_index_and_scan_give_the_same_answers(backend: &Backend) {
    let store = backend.open();
    let mapping = json!({"properties": {"k": {"type": "keyword"}, "n": {"type": "double"}, "m": {"type": "boolean"}}});
    setup(&*store, mapping);
    store.create_collection("nyc", "scan", &json!({})).unwrap();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut ops = Vec::new();
    for i in 0..200 {
        let mut source = serde_json::Map::new();
        for field in ["k", "n", "m"] {
            if rng.below(4) != 0 {
                source.insert(field.into(), random_value(&mut rng));
            }
        }
        ops.push(put(
            &format!("d{}", i % 40 + i / 40 * 1000),
            Value::Object(source),
            Precondition::Any,
        ));
    }
    for collection in ["taxi", "scan"] {
        let mut b = batch(ops.clone());
        b.collection = collection.into();
        store.write(b).unwrap();
    }
    for _ in 0..400 {
        let query = random_query(&mut rng, 0);
        let indexed = search_ids(&*store, "taxi", json!({"query": query}));
        let scanned = search_ids(&*store, "scan", json!({"query": query}));
        assert_eq!(indexed, scanned, "{query}");
    }
}

/// `range` and `prefix` on indexed fields (PostgreSQL: read from `switchyard_terms`, the
/// embedded store: from its secondary index) answer what a scan of an unmapped collection
/// answers, and what is written here: arrays (any element), mixed types (a bound of another
/// type never matches), integers past 2^53, non-ASCII and U+10FFFF, a prefix that is a whole
/// value, strings longer than PostgreSQL keeps in its index, NUL in a bound; then after
/// updates, deletes, a truncate, and on a collection whose mapping gains the fields after its
/// documents were written.
fn range_and_prefix_on_indexed_fields_match_a_scan(backend: &Backend) {
    let store = backend.open();
    let mapping = json!({"properties": {
        "kw": {"type": "keyword"},
        "n": {"type": "double"},
        "name": {"type": "text", "fields": {"raw": {"type": "keyword"}}}
    }});
    setup(&*store, mapping.clone());
    store.create_collection("nyc", "scan", &json!({})).unwrap();
    store.create_collection("nyc", "later", &json!({})).unwrap();
    let long = format!("{}z", "a".repeat(300));
    let docs = [
        ("a", json!({"kw": "apple", "n": 5, "name": "Zed"})),
        ("b", json!({"kw": ["banana", "cherry"], "n": [1, 100]})),
        ("c", json!({"kw": 42, "n": "7"})),
        ("d", json!({"kw": "Ápfel", "n": -3.5})),
        ("e", json!({"kw": "app", "n": 9_007_199_254_740_993u64})),
        ("f", json!({"kw": "ápice", "n": 5.0})),
        ("g", json!({"kw": "z\u{10FFFF}\u{10FFFF}y"})),
        ("h", json!({"kw": {"nested": "apple"}, "n": true})),
        ("i", json!({"kw": [["apricot"]], "n": [[[[3]]]]})),
        ("j", json!({"kw": long})),
        ("k", json!({"other": 1})),
        ("l", json!({"kw": "", "n": 0})),
    ];
    create_in(&*store, &["taxi", "scan", "later"], &docs);
    // `later` gets the indexed fields after its documents.
    store.update_mapping("nyc", "later", &mapping).unwrap();
    let a300 = "a".repeat(300);
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"range": {"n": {"gte": 5}}}),
            vec!["a", "b", "e", "f"],
        ),
        (json!({"range": {"n": {"gt": 5}}}), vec!["b", "e"]),
        (json!({"range": {"n": {"lt": 5}}}), vec!["b", "d", "i", "l"]),
        (
            json!({"range": {"n": {"lte": 5}}}),
            vec!["a", "b", "d", "f", "i", "l"],
        ),
        (json!({"range": {"n": {"gt": 1, "lt": 5}}}), vec!["i"]),
        (json!({"range": {"n": {"gte": 100, "lte": 100}}}), vec!["b"]),
        (
            json!({"range": {"n": {"gt": 9_007_199_254_740_992u64}}}),
            vec!["e"],
        ),
        (
            json!({"range": {"n": {"lt": 9_007_199_254_740_993u64, "gt": 4.5}}}),
            vec!["a", "b", "f"],
        ),
        (json!({"range": {"n": {"gte": "7"}}}), vec!["c"]),
        (json!({"range": {"n": {"gte": 1, "lt": "z"}}}), vec![]),
        (json!({"range": {"n": {"gte": true}}}), vec!["h"]),
        (json!({"range": {"n": {"lt": true}}}), vec![]),
        (
            json!({"range": {"kw": {"gte": "apple", "lt": "b"}}}),
            vec!["a", "i"],
        ),
        (
            json!({"range": {"kw": {"gt": "a"}}}),
            vec!["a", "b", "d", "e", "f", "g", "i", "j"],
        ),
        (
            json!({"range": {"kw": {"lte": "app"}}}),
            vec!["e", "j", "l"],
        ),
        (json!({"range": {"kw": {"gte": 40}}}), vec!["c"]),
        (
            json!({"range": {"kw": {"gte": a300}}}),
            vec!["a", "b", "d", "e", "f", "g", "i", "j"],
        ),
        (json!({"range": {"kw": {"lte": a300}}}), vec!["l"]),
        (
            json!({"range": {"kw": {"gt": "a".repeat(256)}}}),
            vec!["a", "b", "d", "e", "f", "g", "i", "j"],
        ),
        (
            json!({"range": {"kw": {"gt": "a".repeat(255), "lt": "ab"}}}),
            vec!["j"],
        ),
        (
            json!({"range": {"kw": {"gte": "apple\u{0}"}}}),
            vec!["b", "d", "f", "g", "i"],
        ),
        (
            json!({"range": {"kw": {"lt": "app\u{0}x"}}}),
            vec!["e", "j", "l"],
        ),
        (json!({"range": {"kw": {"gte": "\u{10FFFF}"}}}), vec![]),
        (json!({"range": {"name.raw": {"gte": "Z"}}}), vec!["a"]),
        (json!({"prefix": {"kw": "app"}}), vec!["a", "e"]),
        (json!({"prefix": {"kw": "apple"}}), vec!["a"]),
        (json!({"prefix": {"kw": "á"}}), vec!["f"]),
        (json!({"prefix": {"kw": "Á"}}), vec!["d"]),
        (json!({"prefix": {"kw": "z\u{10FFFF}"}}), vec!["g"]),
        (
            json!({"prefix": {"kw": "z\u{10FFFF}\u{10FFFF}"}}),
            vec!["g"],
        ),
        (json!({"prefix": {"kw": "ch"}}), vec!["b"]),
        (
            json!({"prefix": {"kw": ""}}),
            vec!["a", "b", "d", "e", "f", "g", "i", "j", "l"],
        ),
        (json!({"prefix": {"kw": a300}}), vec!["j"]),
        (
            json!({"prefix": {"kw": format!("{}b", "a".repeat(299))}}),
            vec![],
        ),
        (json!({"prefix": {"kw": "a\u{0}"}}), vec![]),
        (json!({"prefix": {"_id": "a\u{0}"}}), vec![]),
        (json!({"ids": {"values": ["a\u{0}", "b"]}}), vec!["b"]),
        (json!({"terms": {"kw": ["apple\u{0}", "app"]}}), vec!["e"]),
        (json!({"prefix": {"name.raw": "Ze"}}), vec!["a"]),
        (
            json!({"bool": {"must": [{"prefix": {"kw": "ap"}}, {"range": {"n": {"gte": 5}}}]}}),
            vec!["a", "e"],
        ),
        (
            json!({"bool": {"should": [{"prefix": {"kw": "ch"}}, {"range": {"n": {"lt": 0}}}]}}),
            vec!["b", "d"],
        ),
        (
            json!({"bool": {"filter": [{"prefix": {"kw": "ap"}}, {"term": {"n": 5}}]}}),
            vec!["a"],
        ),
        (
            json!({"bool": {"must": {"ids": {"values": ["a", "b", "c"]}}, "should": [{"range": {"n": {"gte": 50}}}], "minimum_should_match": 1}}),
            vec!["b"],
        ),
    ];
    let check = |cases: &[(Value, Vec<&str>)], collections: &[&str]| {
        for (query, expected) in cases {
            for collection in collections {
                if *collection == "scan" && query.to_string().contains("name.raw") {
                    continue;
                }
                let mut got = search_ids(&*store, collection, json!({"query": query}));
                got.sort();
                assert_eq!(got, *expected, "{query} on {collection}");
                let count = store
                    .count("nyc", collection, &Query::parse(query).unwrap())
                    .unwrap();
                assert_eq!(
                    count,
                    expected.len() as u64,
                    "count {query} on {collection}"
                );
            }
        }
    };
    check(&cases, &["taxi", "scan", "later"]);

    // Updated and deleted documents leave nothing behind; a re-created one is found again.
    for collection in ["taxi", "scan", "later"] {
        let mut b = batch(vec![
            put("a", json!({"kw": "zzz"}), Precondition::Present),
            Operation::Delete {
                id: "b".into(),
                precondition: Precondition::Present,
            },
            put("m", json!({"kw": ["apex"], "n": [6]}), Precondition::Absent),
        ]);
        b.collection = collection.into();
        store.write(b).unwrap();
    }
    let after: Vec<(Value, Vec<&str>)> = vec![
        (json!({"prefix": {"kw": "ap"}}), vec!["e", "i", "m"]),
        (json!({"range": {"n": {"gte": 5}}}), vec!["e", "f", "m"]),
        (json!({"range": {"n": {"gt": 5}}}), vec!["e", "m"]),
        (json!({"prefix": {"kw": "ch"}}), vec![]),
        (
            json!({"range": {"kw": {"gte": "z"}}}),
            vec!["a", "d", "f", "g"],
        ),
    ];
    check(&after, &["taxi", "scan", "later"]);

    for collection in ["taxi", "scan", "later"] {
        store.truncate_collection("nyc", collection).unwrap();
        let mut b = batch(vec![put("n", json!({"kw": "apple"}), Precondition::Absent)]);
        b.collection = collection.into();
        store.write(b).unwrap();
    }
    let truncated: Vec<(Value, Vec<&str>)> = vec![
        (json!({"prefix": {"kw": "ap"}}), vec!["n"]),
        (json!({"range": {"n": {"gte": 0}}}), vec![]),
    ];
    check(&truncated, &["taxi", "scan", "later"]);
}

/// PostgreSQL only: `switchyard_terms` holds exactly the current documents' indexed numbers and
/// strings after creates, updates, deletes, a mapping change, a truncate and deleted
/// collections and indexes (a stale row would only cost time, a missing one a wrong answer);
/// a version-1 database (no such table) gets it built at `connect`, once, when two nodes start
/// together; a newer version is refused.
#[test]
fn postgres_terms_rows_follow_writes_and_the_version_1_migration() {
    let test = "postgres_terms_rows_follow_writes_and_the_version_1_migration";
    let Some(server) = postgres_server::server(test) else {
        return;
    };
    let url = server.database("terms");
    let database = url.rsplit('/').next().unwrap().to_string();
    let rows = || -> Vec<String> {
        let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        client
            .query(
                "SELECT id, field, num, str FROM switchyard_terms ORDER BY id, field, num, str",
                &[],
            )
            .unwrap()
            .iter()
            .map(|row| {
                let num: Option<f64> = row.get(2);
                let str: Option<String> = row.get(3);
                format!(
                    "{} {} {}",
                    row.get::<_, String>(0),
                    row.get::<_, String>(1),
                    num.map_or_else(|| str.unwrap_or_default(), |n| n.to_string())
                )
            })
            .collect()
    };
    let store = PostgresStorage::connect(&PostgresOptions::new(url.clone())).unwrap();
    setup(
        &store,
        json!({"properties": {"kw": {"type": "keyword"}, "n": {"type": "double"}}}),
    );
    let write = |ops: Vec<Operation>| {
        let outcomes = store.write(batch(ops)).unwrap();
        assert!(
            outcomes
                .iter()
                .all(|o| !matches!(o, Outcome::Failed { .. })),
            "{outcomes:?}"
        );
    };
    write(vec![
        put(
            "a",
            json!({"kw": ["x", "y"], "n": 1, "free": "f"}),
            Precondition::Absent,
        ),
        put("b", json!({"kw": "z", "n": true}), Precondition::Absent),
        put("c", json!({"m": "q"}), Precondition::Absent),
    ]);
    assert_eq!(rows(), ["a kw x", "a kw y", "a n 1", "b kw z"]);
    write(vec![put("a", json!({"n": 2.5}), Precondition::Present)]);
    assert_eq!(rows(), ["a n 2.5", "b kw z"]);
    write(vec![Operation::Delete {
        id: "b".into(),
        precondition: Precondition::Present,
    }]);
    assert_eq!(rows(), ["a n 2.5"]);
    // A mapping change that adds an indexed field rebuilds the collection's rows.
    store
        .update_mapping(
            "nyc",
            "taxi",
            &json!({"properties": {"m": {"type": "keyword"}}}),
        )
        .unwrap();
    assert_eq!(rows(), ["a n 2.5", "c m q"]);
    store.truncate_collection("nyc", "taxi").unwrap();
    assert_eq!(rows(), Vec::<String>::new());
    write(vec![put("d", json!({"kw": "w"}), Precondition::Absent)]);
    store
        .create_collection(
            "nyc",
            "other",
            &json!({"properties": {"kw": {"type": "keyword"}}}),
        )
        .unwrap();
    let mut other = batch(vec![put("e", json!({"kw": "v"}), Precondition::Absent)]);
    other.collection = "other".into();
    store.write(other).unwrap();
    assert_eq!(rows(), ["d kw w", "e kw v"]);
    store.delete_collection("nyc", "other").unwrap();
    assert_eq!(rows(), ["d kw w"]);
    store.create_index("gone").unwrap();
    store
        .create_collection(
            "gone",
            "c",
            &json!({"properties": {"kw": {"type": "keyword"}}}),
        )
        .unwrap();
    let mut gone = batch(vec![put("f", json!({"kw": "u"}), Precondition::Absent)]);
    gone.index = "gone".into();
    gone.collection = "c".into();
    store.write(gone).unwrap();
    store.delete_index("gone").unwrap();
    assert_eq!(rows(), ["d kw w"]);
    drop(store);

    // A version-1 database: no terms table. Two nodes start together: one builds it.
    server.psql_in(
        &database,
        "DROP TABLE switchyard_terms; UPDATE switchyard_schema SET version = 1",
    );
    let stores: Vec<PostgresStorage> = std::thread::scope(|scope| {
        let starts: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| PostgresStorage::connect(&PostgresOptions::new(url.clone()))))
            .collect();
        starts
            .into_iter()
            .map(|s| s.join().unwrap().unwrap())
            .collect()
    });
    assert_eq!(rows(), ["d kw w"]);
    let prefix =
        SearchRequest::from_body(&json!({"query": {"prefix": {"kw": "w"}}}), None, None).unwrap();
    for store in &stores {
        assert_eq!(store.search("nyc", "taxi", &prefix).unwrap().total, 1);
    }
    drop(stores);

    // A newer layout is refused, nothing changed.
    server.psql_in(&database, "UPDATE switchyard_schema SET version = 3");
    let error = PostgresStorage::connect(&PostgresOptions::new(url.clone())).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the database's schema is version 3 (switchyard_schema), newer than this build's 2"
    );
}

/// PostgreSQL only: writers creating, replacing and deleting documents while the collection is
/// truncated and another one deleted and re-created leave `switchyard_terms` exact: no row
/// without its document, no document without its rows.
#[test]
fn postgres_terms_rows_stay_exact_under_racing_writes_truncates_and_deletes() {
    let test = "postgres_terms_rows_stay_exact_under_racing_writes_truncates_and_deletes";
    let Some(server) = postgres_server::server(test) else {
        return;
    };
    let url = server.database("terms_race");
    let store = Arc::new(PostgresStorage::connect(&PostgresOptions::new(url.clone())).unwrap());
    let mapping = json!({"properties": {"kw": {"type": "keyword"}, "n": {"type": "long"}}});
    setup(&*store, mapping.clone());
    store.create_collection("nyc", "other", &mapping).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let written = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        for writer in 0..4u64 {
            let store = store.clone();
            let (stop, written) = (&stop, &written);
            scope.spawn(move || {
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    let id = format!("d{}", (i * 7 + writer) % 40);
                    let operation = if i.is_multiple_of(5) {
                        Operation::Delete {
                            id,
                            precondition: Precondition::Any,
                        }
                    } else {
                        put(
                            &id,
                            json!({"kw": format!("w{writer}-{i}"), "n": i}),
                            Precondition::Any,
                        )
                    };
                    for collection in ["taxi", "other"] {
                        let mut b = batch(vec![operation.clone()]);
                        b.collection = collection.into();
                        // The other collection may be gone for a moment: an error then.
                        let _ = store.write(b);
                    }
                    written.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
        for _ in 0..5 {
            // Some writes between two truncates.
            let target = written.load(std::sync::atomic::Ordering::Relaxed) + 40;
            while written.load(std::sync::atomic::Ordering::Relaxed) < target {
                std::thread::yield_now();
            }
            store.truncate_collection("nyc", "taxi").unwrap();
            store.delete_collection("nyc", "other").unwrap();
            store.create_collection("nyc", "other", &mapping).unwrap();
        }
        let target = written.load(std::sync::atomic::Ordering::Relaxed) + 40;
        while written.load(std::sync::atomic::Ordering::Relaxed) < target {
            std::thread::yield_now();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
    let count = |client: &mut ::postgres::Client, sql: &str| -> i64 {
        client.query_one(sql, &[]).unwrap().get(0)
    };
    let documents = count(&mut client, "SELECT count(*) FROM switchyard_documents");
    assert!(documents > 0);
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM switchyard_terms t WHERE NOT EXISTS (SELECT 1 FROM \
             switchyard_documents d WHERE d.cid = t.cid AND d.id = t.id)"
        ),
        0,
        "rows without their document"
    );
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM switchyard_documents d WHERE NOT EXISTS (SELECT 1 FROM \
             switchyard_terms t WHERE t.cid = d.cid AND t.id = d.id AND t.field = 'kw' \
             AND t.str = d.body->>'kw') OR NOT EXISTS (SELECT 1 FROM switchyard_terms t \
             WHERE t.cid = d.cid AND t.id = d.id AND t.field = 'n' \
             AND t.num = (d.body->>'n')::float8)"
        ),
        0,
        "documents without their rows"
    );
    assert_eq!(
        count(&mut client, "SELECT count(*) FROM switchyard_terms"),
        2 * documents
    );
}

/// PostgreSQL only: the same random documents (nested objects and arrays, keys with dots) and
/// random queries and sorts on both stores give the same pages, in the same order.
#[test]
fn postgres_and_embedded_agree_on_random_queries() {
    let test = "postgres_and_embedded_agree_on_random_queries";
    let Some(server) = postgres_server::server(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let stores: [Arc<dyn Storage>; 2] = [
        Backend::Embedded(dir).open(),
        Backend::Postgres(server.database("agree")).open(),
    ];
    let mapping = json!({"properties": {"k": {"type": "keyword"}, "n": {"type": "double"}}});
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut ops = Vec::new();
    for i in 0..150 {
        let mut source = serde_json::Map::new();
        for field in ["k", "n", "m"] {
            if rng.below(4) != 0 {
                let value = match rng.below(5) {
                    0 => json!([[random_value(&mut rng)], random_value(&mut rng)]),
                    // An object under a mapped field is not in the embedded store's secondary
                    // index (`exists` by index misses it, a scan finds it): unmapped only.
                    1 if field == "m" => json!({"x": random_value(&mut rng)}),
                    // Deeper than PostgreSQL's JSON paths unwrap (its `deep` documents).
                    2 if rng.below(3) == 0 => json!([[[[[random_value(&mut rng)]]]], 9]),
                    _ => random_value(&mut rng),
                };
                source.insert(field.into(), value);
            }
        }
        if rng.below(3) == 0 {
            source.insert("k.x".into(), random_value(&mut rng));
        }
        ops.push(put(
            &format!("d{i}"),
            Value::Object(source),
            Precondition::Any,
        ));
    }
    for store in &stores {
        setup(&**store, mapping.clone());
        store.write(batch(ops.clone())).unwrap();
    }
    for round in 0..300 {
        let mut query = random_query(&mut rng, 0);
        if round % 5 == 0 {
            query = json!({"bool": {"should": [query, {"exists": {"field": "k.x"}}]}});
        }
        let sort = match rng.below(3) {
            0 => json!(["k", {"n": "desc"}]),
            1 => json!([{"m": "desc"}]),
            _ => json!([]),
        };
        let body = json!({"query": query, "sort": sort, "from": rng.below(3), "size": 20});
        let request = SearchRequest::from_body(&body, None, None).unwrap();
        let pages: Vec<(u64, Vec<String>)> = stores
            .iter()
            .map(|store| {
                let page = store.search("nyc", "taxi", &request).unwrap();
                (page.total, page.hits.into_iter().map(|d| d.id).collect())
            })
            .collect();
        assert_eq!(pages[0], pages[1], "{body}");
    }
}

fn internal_records_survive_index_deletion_and_reopen(backend: &Backend) {
    {
        let store = backend.open();
        setup(&*store, json!({}));
        assert_eq!(store.get_internal("validations", "nyc#taxi").unwrap(), None);
        let spec = json!({"strict": false});
        assert!(!store
            .put_internal("validations", "nyc#taxi", Some(&spec))
            .unwrap());
        assert!(store
            .put_internal("validations", "nyc#taxi", Some(&json!({"strict": true})))
            .unwrap());
        store.delete_index("nyc").unwrap();
        assert_eq!(
            store.get_internal("validations", "nyc#taxi").unwrap(),
            Some(json!({"strict": true}))
        );
        assert_eq!(store.get_internal("other", "nyc#taxi").unwrap(), None);
        store
            .put_internal("validations", "a#b", Some(&spec))
            .unwrap();
    }
    let store = backend.open();
    assert_eq!(
        store.get_internal("validations", "nyc#taxi").unwrap(),
        Some(json!({"strict": true}))
    );
    assert!(store.put_internal("validations", "a#b", None).unwrap());
    assert!(!store.put_internal("validations", "a#b", None).unwrap());
    assert_eq!(store.get_internal("validations", "a#b").unwrap(), None);
}

/// PostgreSQL only: connections the server drops (a restart, an idle timeout, an
/// administrator) are replaced without the caller seeing an error; while the database refuses
/// connections every call answers a store error naming the URL, and once it is back everything
/// acknowledged before is there.
#[test]
fn postgres_outage_answers_errors_and_loses_nothing_acknowledged() {
    let test = "postgres_outage_answers_errors_and_loses_nothing_acknowledged";
    let Some(server) = postgres_server::server(test) else {
        return;
    };
    let url = server.database("outage");
    let database = url.rsplit('/').next().unwrap().to_string();
    let store = PostgresStorage::connect(&PostgresOptions::new(url.clone())).unwrap();
    setup(&store, json!({}));
    let ops = (0..50)
        .map(|i| put(&format!("d{i}"), json!({"n": i}), Precondition::Absent))
        .collect();
    store.write(batch(ops)).unwrap();
    let kill_connections = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'"
    );

    // Every pooled connection killed: the next calls reconnect by themselves.
    server.psql(&kill_connections);
    assert_eq!(store.count("nyc", "taxi", &Query::MatchAll).unwrap(), 50);
    server.psql(&kill_connections);
    let outcomes = store
        .write(batch(vec![put("late", json!({}), Precondition::Absent)]))
        .unwrap();
    assert!(matches!(outcomes[0], Outcome::Written { .. }));

    // The database refuses connections: errors, not a hang or a panic.
    server.psql(&format!(
        "ALTER DATABASE {database} WITH ALLOW_CONNECTIONS false"
    ));
    server.psql(&kill_connections);
    let error = store.get("nyc", "taxi", "d1").unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, StorageError::Store { .. })
            && message.contains(&format!("cannot reach PostgreSQL at {url}"))
            && message.contains("is not currently accepting connections"),
        "{message}"
    );
    assert!(matches!(
        store.write(batch(vec![put("lost", json!({}), Precondition::Absent)])),
        Err(StorageError::Store { .. })
    ));

    server.psql(&format!(
        "ALTER DATABASE {database} WITH ALLOW_CONNECTIONS true"
    ));
    assert_eq!(store.count("nyc", "taxi", &Query::MatchAll).unwrap(), 51);
    assert_eq!(store.get("nyc", "taxi", "lost").unwrap(), None);
    assert_eq!(
        store.get("nyc", "taxi", "d49").unwrap().unwrap().source,
        json!({"n": 49})
    );
}

/// PostgreSQL only: a server that is not there fails `connect` with the URL, its password
/// redacted, and the cause.
#[test]
fn postgres_unreachable_at_connect_names_the_url_without_its_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut options = PostgresOptions::new(format!("postgres://app:hunter2@127.0.0.1:{port}/sy"));
    options.connect_timeout = std::time::Duration::from_secs(2);
    let error = PostgresStorage::connect(&options).unwrap_err().to_string();
    assert!(
        error.contains(&format!(
            "cannot reach PostgreSQL at postgres://app:***@127.0.0.1:{port}/sy: "
        )) && !error.contains("hunter2"),
        "{error}"
    );
}

/// Reads share one snapshot until the next commit (`embedded/snapshot.rs`): every read that
/// starts after a write returned sees it, whatever earlier reads cached — documents, catalog
/// changes (a collection deleted, re-created, another index) and internal records.
#[test]
fn reads_after_a_write_see_it_through_the_shared_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_embedded(dir.path());
    setup(
        &*store,
        json!({"properties": {"city": {"type": "keyword"}}}),
    );
    // Each read below first fills the snapshot, then a write must retire it.
    assert_eq!(store.get_raw("nyc", "taxi", "a").unwrap(), None);
    assert_eq!(store.get_internal("validations", "nyc#taxi").unwrap(), None);
    store
        .write(batch(vec![put(
            "a",
            json!({"city": "x"}),
            Precondition::Absent,
        )]))
        .unwrap();
    let raw = store.get_raw("nyc", "taxi", "a").unwrap().expect("written");
    assert_eq!((raw.version, raw.source.as_str()), (1, r#"{"city":"x"}"#));
    store
        .write(batch(vec![put(
            "a",
            json!({"city": "y"}),
            Precondition::Version(1),
        )]))
        .unwrap();
    let doc = store.get("nyc", "taxi", "a").unwrap().expect("replaced");
    assert_eq!((doc.version, &doc.source), (2, &json!({"city": "y"})));
    assert_eq!(
        store
            .mget("nyc", "taxi", &["a".into(), "b".into()])
            .unwrap()[0]
            .as_ref()
            .map(|d| d.version),
        Some(2)
    );

    store
        .put_internal("validations", "nyc#taxi", Some(&json!({"strict": true})))
        .unwrap();
    assert_eq!(
        store.get_internal("validations", "nyc#taxi").unwrap(),
        Some(json!({"strict": true}))
    );
    store.put_internal("validations", "nyc#taxi", None).unwrap();
    assert_eq!(store.get_internal("validations", "nyc#taxi").unwrap(), None);

    store.delete_collection("nyc", "taxi").unwrap();
    assert_eq!(
        store.get_raw("nyc", "taxi", "a").unwrap_err(),
        StorageError::CollectionNotFound {
            index: "nyc".into(),
            collection: "taxi".into()
        }
    );
    store.create_collection("nyc", "taxi", &json!({})).unwrap();
    assert_eq!(store.get_raw("nyc", "taxi", "a").unwrap(), None);
    assert_eq!(
        store.get_raw("sf", "taxi", "a").unwrap_err(),
        StorageError::IndexNotFound { index: "sf".into() }
    );
    store.create_index("sf").unwrap();
    assert_eq!(
        store.get_raw("sf", "taxi", "a").unwrap_err(),
        StorageError::CollectionNotFound {
            index: "sf".into(),
            collection: "taxi".into()
        }
    );
    store.delete_index("nyc").unwrap();
    assert_eq!(
        store.get("nyc", "taxi", "a").unwrap_err(),
        StorageError::IndexNotFound {
            index: "nyc".into()
        }
    );
}

/// Writers and readers at once: as soon as a writer's `write` returns, another thread reading
/// the document finds it (group commit answers after the snapshot is retired).
#[test]
fn concurrent_readers_see_every_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_embedded(dir.path());
    setup(&*store, json!({}));
    let (acknowledged, to_check) = std::sync::mpsc::channel::<String>();
    std::thread::scope(|scope| {
        for t in 0..8 {
            let (store, acknowledged) = (store.clone(), acknowledged.clone());
            scope.spawn(move || {
                for i in 0..50 {
                    let id = format!("{t}-{i}");
                    store
                        .write(batch(vec![put(&id, json!({"t": t}), Precondition::Absent)]))
                        .unwrap();
                    acknowledged.send(id).unwrap();
                }
            });
        }
        drop(acknowledged);
        let store = store.clone();
        scope.spawn(move || {
            for id in to_check {
                let raw = store.get_raw("nyc", "taxi", &id).unwrap();
                assert!(raw.is_some(), "{id} was acknowledged but a read missed it");
            }
        });
    });
}

/// Reads of many missing collections (names come from requests) are all answered, past what a
/// snapshot keeps, and a collection created afterwards is found.
#[test]
fn reads_of_many_missing_collections_all_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_embedded(dir.path());
    setup(&*store, json!({}));
    for n in 0..5000 {
        let collection = format!("missing{n}");
        assert_eq!(
            store.get_raw("nyc", &collection, "a").unwrap_err(),
            StorageError::CollectionNotFound {
                index: "nyc".into(),
                collection
            }
        );
        assert_eq!(
            store
                .get_internal("validations", &format!("nyc#missing{n}"))
                .unwrap(),
            None
        );
    }
    store
        .create_collection("nyc", "missing4999", &json!({}))
        .unwrap();
    assert_eq!(store.get_raw("nyc", "missing4999", "a").unwrap(), None);
}

/// The embedded store's document cache (`embedded/document_cache.rs`): `get_raw_in_memory`
/// answers a document's current body or nothing, never an old one — after a write (the new
/// body), a failed write (unchanged), a delete, a truncate, and a collection or index deletion
/// (nothing, even once the collection is re-created).
#[test]
fn the_document_cache_never_answers_a_stale_body() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_embedded(dir.path());
    setup(&*store, json!({}));
    let in_memory = |id: &str| {
        store
            .get_raw_in_memory("nyc", "taxi", id)
            .map(|raw| (raw.version, raw.source))
    };
    let write = |operations: Vec<Operation>| store.write(batch(operations)).unwrap();
    assert_eq!(in_memory("a"), None);
    // A write puts the new body in, a read of an uncached document fills it.
    write(vec![put("a", json!({"v": 1}), Precondition::Absent)]);
    assert_eq!(in_memory("a"), Some((1, r#"{"v":1}"#.to_string())));
    write(vec![put("a", json!({"v": 2}), Precondition::Version(1))]);
    assert_eq!(in_memory("a"), Some((2, r#"{"v":2}"#.to_string())));
    // A failed precondition changes nothing.
    let outcomes = write(vec![put("a", json!({"v": 3}), Precondition::Absent)]);
    assert!(matches!(outcomes[0], Outcome::Failed { .. }));
    assert_eq!(in_memory("a"), Some((2, r#"{"v":2}"#.to_string())));
    // Delete.
    write(vec![Operation::Delete {
        id: "a".into(),
        precondition: Precondition::Present,
    }]);
    assert_eq!(in_memory("a"), None);
    assert_eq!(store.get_raw("nyc", "taxi", "a").unwrap(), None);
    assert_eq!(in_memory("a"), None);
    // Truncate.
    write(vec![put("b", json!({"v": 1}), Precondition::Absent)]);
    assert!(in_memory("b").is_some());
    store.truncate_collection("nyc", "taxi").unwrap();
    assert_eq!(in_memory("b"), None);
    // Collection deletion, then the same name again.
    write(vec![put("c", json!({"v": 1}), Precondition::Absent)]);
    assert!(in_memory("c").is_some());
    store.delete_collection("nyc", "taxi").unwrap();
    assert_eq!(in_memory("c"), None);
    store.create_collection("nyc", "taxi", &json!({})).unwrap();
    assert_eq!(in_memory("c"), None);
    assert_eq!(store.get_raw("nyc", "taxi", "c").unwrap(), None);
    // Index deletion.
    write(vec![put("d", json!({"v": 1}), Precondition::Absent)]);
    assert!(in_memory("d").is_some());
    store.delete_index("nyc").unwrap();
    assert_eq!(in_memory("d"), None);
    // A reopened store starts empty and fills from reads.
    setup(&*store, json!({}));
    write(vec![put("e", json!({"v": 1}), Precondition::Absent)]);
    drop(store);
    let store = open_embedded(dir.path());
    assert_eq!(store.get_raw_in_memory("nyc", "taxi", "e"), None);
    store.get_raw("nyc", "taxi", "e").unwrap().expect("stored");
    assert_eq!(
        store
            .get_raw_in_memory("nyc", "taxi", "e")
            .map(|raw| raw.source),
        Some(r#"{"v":1}"#.to_string())
    );
}

/// With `document_cache_bytes` 0 nothing is kept; readers racing writers never see a body
/// older than the last write acknowledged before their read began.
#[test]
fn the_document_cache_off_and_under_racing_writers() {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedOptions {
        document_cache_bytes: 0,
        ..EmbeddedOptions::default()
    };
    let store: Arc<dyn Storage> = Arc::new(EmbeddedStorage::open(dir.path(), options).unwrap());
    setup(&*store, json!({}));
    store
        .write(batch(vec![put("a", json!({"v": 1}), Precondition::Absent)]))
        .unwrap();
    store.get_raw("nyc", "taxi", "a").unwrap().expect("stored");
    assert_eq!(store.get_raw_in_memory("nyc", "taxi", "a"), None);
    drop(store);

    let dir = tempfile::tempdir().unwrap();
    let store = open_embedded(dir.path());
    setup(&*store, json!({}));
    store
        .write(batch(vec![put("a", json!({"v": 0}), Precondition::Absent)]))
        .unwrap();
    let acknowledged = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for v in 1..=300u64 {
                store
                    .write(batch(vec![put(
                        "a",
                        json!({"v": v}),
                        Precondition::Present,
                    )]))
                    .unwrap();
                acknowledged.store(v, std::sync::atomic::Ordering::SeqCst);
            }
        });
        for _ in 0..2 {
            scope.spawn(|| loop {
                let floor = acknowledged.load(std::sync::atomic::Ordering::SeqCst);
                // Both paths: the cache, and a read that may fill it.
                for raw in [
                    store.get_raw_in_memory("nyc", "taxi", "a"),
                    store.get_raw("nyc", "taxi", "a").unwrap(),
                ]
                .into_iter()
                .flatten()
                {
                    let v: Value = serde_json::from_str(&raw.source).unwrap();
                    let v = v["v"].as_u64().unwrap();
                    assert!(v >= floor, "read v {v} after v {floor} was acknowledged");
                }
                if floor == 300 {
                    break;
                }
            });
        }
    });
}

/// What a SIGKILL of the process leaves of an open embedded store: its two files as they are in
/// the file system now (`data.redb`, `data.wal`), copied to a new folder; `with_log` false
/// leaves the write-ahead log out.
fn files_of_an_open_store(from: &std::path::Path, with_log: bool) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    std::fs::copy(from.join("data.redb"), to.path().join("data.redb")).unwrap();
    if with_log {
        std::fs::copy(from.join("data.wal"), to.path().join("data.wal")).unwrap();
    }
    to
}

/// Every acknowledged write of a group is in the write-ahead log before it is answered; redb's
/// own commit of it is not synced. The files of an open store, opened elsewhere, have every
/// acknowledged put, update and delete, with their secondary index entries; without the log
/// they would not (the log is what keeps them, this test can tell).
#[test]
fn acknowledged_writes_survive_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_embedded(dir.path());
    setup(&*store, serde_json::from_str(MAPPING).unwrap());
    std::thread::scope(|scope| {
        for t in 0..8 {
            let store = &store;
            scope.spawn(move || {
                for i in 0..25 {
                    let id = format!("t{t}-{i}");
                    store
                        .write(batch(vec![put(
                            &id,
                            json!({"city": format!("c{}", i % 5), "n": i}),
                            Precondition::Absent,
                        )]))
                        .unwrap();
                }
            });
        }
    });
    store
        .write(batch(vec![
            put(
                "t0-0",
                json!({"city": "moved", "n": 0}),
                Precondition::Present,
            ),
            Operation::Delete {
                id: "t0-1".into(),
                precondition: Precondition::Present,
            },
        ]))
        .unwrap();
    let crashed = files_of_an_open_store(dir.path(), true);
    let without_log = files_of_an_open_store(dir.path(), false);

    let reopened = open_embedded(crashed.path());
    assert_eq!(reopened.len_of("nyc", "taxi"), 199);
    let moved = reopened.get("nyc", "taxi", "t0-0").unwrap().unwrap();
    assert_eq!(
        (moved.version, moved.source["city"].clone()),
        (2, json!("moved"))
    );
    assert!(reopened.get("nyc", "taxi", "t0-1").unwrap().is_none());
    assert_eq!(
        search_ids(
            &*reopened,
            "taxi",
            json!({"query": {"term": {"city": "moved"}}})
        ),
        vec!["t0-0"]
    );
    let c0 = search_ids(
        &*reopened,
        "taxi",
        json!({"query": {"term": {"city": "c0"}}}),
    );
    assert_eq!(c0.len(), 8 * 5 - 1, "{c0:?}");
    assert!(!c0.contains(&"t0-0".to_string()));

    // Written again over the same files: the replay changes nothing more.
    drop(reopened);
    let again = open_embedded(crashed.path());
    assert_eq!(again.len_of("nyc", "taxi"), 199);

    let lost = open_embedded(without_log.path());
    assert_eq!(
        lost.len_of("nyc", "taxi"),
        0,
        "redb synced what the log keeps"
    );
}

/// A store opened with the log off still applies a log left by a run with it on, then writes
/// without it (every commit durable in redb).
#[test]
fn the_log_is_replayed_even_when_the_next_open_turns_it_off() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_embedded(dir.path());
    setup(&*store, json!({}));
    create_one_by_one(&*store, "d", 10, |_| json!({}));
    let crashed = files_of_an_open_store(dir.path(), true);
    let off = EmbeddedOptions {
        log_checkpoint_bytes: 0,
        ..EmbeddedOptions::default()
    };
    let reopened = EmbeddedStorage::open(crashed.path(), off.clone()).unwrap();
    assert_eq!(reopened.len("nyc", "taxi").unwrap(), 10);
    reopened
        .write(batch(vec![put("d10", json!({}), Precondition::Absent)]))
        .unwrap();
    let again = files_of_an_open_store(crashed.path(), false);
    let reopened = EmbeddedStorage::open(again.path(), off).unwrap();
    assert_eq!(reopened.len("nyc", "taxi").unwrap(), 11);
}

/// A catalog change commits durably in redb and starts a new log epoch: the log's older entries
/// never bring back documents of a truncated or re-created collection.
#[test]
fn catalog_changes_are_not_undone_by_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_embedded(dir.path());
    setup(&*store, json!({}));
    create_one_by_one(&*store, "old-", 20, |i| json!({"i": i}));
    store.truncate_collection("nyc", "taxi").unwrap();
    store
        .write(batch(vec![put("new", json!({}), Precondition::Absent)]))
        .unwrap();
    store.create_collection("nyc", "cabs", &json!({})).unwrap();
    let crashed = files_of_an_open_store(dir.path(), true);
    let reopened = open_embedded(crashed.path());
    assert_eq!(reopened.len_of("nyc", "taxi"), 1);
    assert!(reopened.get("nyc", "taxi", "new").unwrap().is_some());

    store.delete_collection("nyc", "taxi").unwrap();
    store.create_collection("nyc", "taxi", &json!({})).unwrap();
    let crashed = files_of_an_open_store(dir.path(), true);
    assert_eq!(open_embedded(crashed.path()).len_of("nyc", "taxi"), 0);
}

/// A small `log_checkpoint_bytes`: groups keep checkpointing and the log keeps starting over
/// from its first byte under a new epoch; what is acknowledged is still all there.
#[test]
fn frequent_checkpoints_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let options = EmbeddedOptions {
        log_checkpoint_bytes: 2_000,
        ..EmbeddedOptions::default()
    };
    let store = EmbeddedStorage::open(dir.path(), options.clone()).unwrap();
    setup(&store, json!({}));
    create_one_by_one(&store, "d", 300, |i| json!({"pad": "x".repeat(i % 200)}));
    assert!(
        std::fs::metadata(dir.path().join("data.wal"))
            .unwrap()
            .len()
            < 3_000
    );
    let crashed = files_of_an_open_store(dir.path(), true);
    let reopened = EmbeddedStorage::open(crashed.path(), options).unwrap();
    assert_eq!(reopened.len("nyc", "taxi").unwrap(), 300);
    let ids: Vec<String> = (0..300).map(|i| format!("d{i}")).collect();
    assert!(reopened
        .mget("nyc", "taxi", &ids)
        .unwrap()
        .iter()
        .all(Option::is_some));
}

/// The number of documents in a collection, through the trait.
trait LenOf {
    fn len_of(&self, index: &str, collection: &str) -> u64;
}

impl LenOf for Arc<dyn Storage> {
    fn len_of(&self, index: &str, collection: &str) -> u64 {
        self.count(index, collection, &Query::MatchAll).unwrap()
    }
}

/// Groups are acknowledged on the log and applied to redb later, in batches of about a MiB:
/// every read that starts after a write was answered sees it, whether it is still pending or
/// already applied — `get`, a term search through the secondary index, a count, a create's
/// precondition, a version check — while other threads write and the applies happen.
#[test]
fn writes_applied_behind_the_log_are_seen_by_every_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_embedded(dir.path());
    setup(&*store, serde_json::from_str(MAPPING).unwrap());
    let pad = "p".repeat(4_000);
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (store, pad) = (&store, &pad);
            scope.spawn(move || {
                let city = format!("c{t}");
                let mut alive = 0;
                for i in 0..300 {
                    let id = format!("t{t}-{i}");
                    let body = json!({"city": city, "i": i, "pad": pad});
                    store
                        .write(batch(vec![put(&id, body.clone(), Precondition::Absent)]))
                        .unwrap();
                    alive += 1;
                    if i % 50 == 0 {
                        let got = store.get("nyc", "taxi", &id).unwrap().unwrap();
                        assert_eq!((got.version, got.source["i"].clone()), (1, json!(i)));
                    }
                    // Reads are rare: these see the write while it is pending.
                    let again = store
                        .write(batch(vec![put(&id, body.clone(), Precondition::Absent)]))
                        .unwrap();
                    assert!(matches!(again[0], Outcome::Failed { .. }), "{again:?}");
                    if i % 3 == 0 {
                        let updated = store
                            .write(batch(vec![put(
                                &id,
                                json!({"city": city, "i": i, "updated": true}),
                                Precondition::Version(1),
                            )]))
                            .unwrap();
                        assert!(matches!(updated[0], Outcome::Written { version: 2, .. }));
                    }
                    if i % 7 == 0 {
                        store
                            .write(batch(vec![Operation::Delete {
                                id: id.clone(),
                                precondition: Precondition::Present,
                            }]))
                            .unwrap();
                        alive -= 1;
                        if i % 49 == 0 {
                            assert!(store.get("nyc", "taxi", &id).unwrap().is_none());
                        }
                    }
                    if i % 50 == 25 {
                        let hits = search_ids(
                            &**store,
                            "taxi",
                            json!({"query": {"term": {"city": city}}}),
                        );
                        assert_eq!(hits.len(), alive, "thread {t} after {i}");
                    }
                }
            });
        }
    });
    let alive = 4 * (300 - 300_usize.div_ceil(7));
    assert_eq!(store.len_of("nyc", "taxi"), alive as u64);
    let crashed = files_of_an_open_store(dir.path(), true);
    let reopened = open_embedded(crashed.path());
    assert_eq!(reopened.len_of("nyc", "taxi"), alive as u64);
    let updated = search_ids(
        &*reopened,
        "taxi",
        json!({"query": {"term": {"city": "c2"}}}),
    );
    assert_eq!(updated.len(), alive / 4);
    let doc = reopened.get("nyc", "taxi", "t2-3").unwrap().unwrap();
    assert_eq!(
        (doc.version, doc.source["updated"].clone()),
        (2, json!(true))
    );
}

/// Deferred writes (`write_deferred`) are answered in the order they were queued, each with what
/// `write` would have said (a duplicate id fails alone, a missing collection fails its batch),
/// are visible to every read once answered, and survive a reopen; a store without threads (group
/// commit off) does not offer them.
#[test]
fn deferred_writes_answer_in_order_like_write() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_embedded(dir.path());
    setup(&*store, json!({"properties": {"n": {"type": "integer"}}}));
    assert!(store.can_defer_writes());
    let (done, answers) = std::sync::mpsc::channel();
    let mut queued = 0;
    for i in 0..200u64 {
        // Each round: a new document, then (after the first) `d0` again, and once a write into
        // a collection that does not exist.
        for (id, collection) in std::iter::once((format!("d{i}"), "taxi"))
            .chain((i > 0).then(|| ("d0".to_string(), "taxi")))
            .chain((i == 7).then(|| ("x".to_string(), "nope")))
        {
            let mut b = batch(vec![put(&id, json!({"n": i}), Precondition::Absent)]);
            b.collection = collection.into();
            let done = done.clone();
            let store_in_then = Arc::clone(&store);
            store.write_deferred(
                b,
                Box::new(move |result| {
                    // Read your writes: the store answers reads with it already.
                    let seen = match &result {
                        Ok(outcomes) => match &outcomes[0] {
                            Outcome::Written { id, .. } => store_in_then
                                .get("nyc", "taxi", id)
                                .unwrap()
                                .map(|doc| doc.source["n"].clone()),
                            _ => None,
                        },
                        Err(_) => None,
                    };
                    done.send((i, id, result, seen)).unwrap();
                }),
            );
            queued += 1;
        }
    }
    drop(done);
    let answers: Vec<_> = answers.iter().collect();
    assert_eq!(answers.len(), queued);
    let mut last = 0;
    for (i, id, result, seen) in answers {
        assert!(i >= last, "answered out of order: {i} after {last}");
        last = i;
        match (id.as_str(), i) {
            ("x", _) => assert!(
                matches!(result, Err(StorageError::CollectionNotFound { .. })),
                "{result:?}"
            ),
            ("d0", 0) => {
                assert!(matches!(
                    result.unwrap()[0],
                    Outcome::Written { created: true, .. }
                ));
                assert_eq!(seen, Some(json!(0)));
            }
            ("d0", _) => assert!(
                matches!(
                    result.unwrap()[0],
                    Outcome::Failed {
                        error: StorageError::DocumentAlreadyExists { .. },
                        ..
                    }
                ),
                "d0 created twice"
            ),
            _ => {
                assert!(matches!(result.unwrap()[0], Outcome::Written { .. }));
                assert_eq!(seen, Some(json!(i)));
            }
        }
    }
    assert_eq!(
        store
            .count(
                "nyc",
                "taxi",
                &Query::parse(&json!({"range": {"n": {"gte": 100}}})).unwrap()
            )
            .unwrap(),
        100
    );
    drop(store);
    let store = open_embedded(dir.path());
    assert_eq!(
        store.get("nyc", "taxi", "d199").unwrap().unwrap().source,
        json!({"n": 199})
    );

    let options = EmbeddedOptions {
        group_commit: false,
        ..EmbeddedOptions::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStorage::open(dir.path(), options).unwrap();
    assert!(!store.can_defer_writes());
}
