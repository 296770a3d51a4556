//! The PostgreSQL store against the embedded one, same run, same documents and calls.
//!
//! `cargo bench -p switchyard-storage --bench postgres [-- N]` (default N = 20000): starts a
//! throwaway PostgreSQL (`tests/src/postgres.rs`; `SWITCHYARD_POSTGRES_URL` uses yours, default
//! settings, `fsync` and `synchronous_commit` on) and, for each store:
//! * load: N documents in batches of 100;
//! * 50 writer threads writing 2,000 single-document batches in all (acknowledged durable);
//! * `get` by id from 2 threads;
//! * `term` on a keyword field matching 2 documents, `range` on a number matching ~1 %,
//!   `prefix` on a keyword matching ~1.1 % (`city-10` … `city-99`: 111 of 10,000 cities):
//!   p50 / p99 of 200 searches each.
//!
//! Figures are printed, never asserted.

#[path = "../../tests/src/postgres.rs"]
mod postgres_server;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_storage::{
    EmbeddedOptions, EmbeddedStorage, KuzzleInfo, Operation, PostgresOptions, PostgresStorage,
    Precondition, SearchRequest, Storage, WriteBatch,
};

const WRITERS: usize = 50;
const WRITES: u64 = 2_000;

fn document(i: u64) -> Value {
    json!({
        "name": format!("user {i}"),
        "email": format!("user{i}@example.com"),
        "age": i % 90,
        "city": format!("city-{}", i % 10_000),
        "tags": [format!("t{}", i % 7), format!("t{}", i % 13)],
        "score": (i % 10_000) as f64 + 0.5,
        "active": i.is_multiple_of(2),
        "bio": format!("lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt {i}"),
    })
}

fn put(i: u64) -> Operation {
    Operation::Put {
        id: format!("doc-{i:012}"),
        source: document(i),
        info: KuzzleInfo {
            author: Some("-1".into()),
            created_at: Some(1_700_000_000_000),
            updated_at: None,
            updater: None,
        },
        meta: Vec::new(),
        precondition: Precondition::Absent,
    }
}

fn batch(collection: &str, operations: Vec<Operation>) -> WriteBatch {
    WriteBatch {
        index: "bench".into(),
        collection: collection.into(),
        operations,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

/// `settle`: called after the writes, before the searches are measured again (PostgreSQL:
/// `VACUUM ANALYZE`, which autovacuum does by itself later, moves GIN's pending list into the
/// index).
fn run(name: &str, store: Arc<dyn Storage>, n: u64, settle: Option<&dyn Fn()>) {
    let mapping: Value = serde_json::from_str(
        r#"{"properties": {"city": {"type": "keyword"}, "age": {"type": "integer"}, "score": {"type": "double"}}}"#,
    )
    .unwrap();
    store.create_index("bench").unwrap();
    store.create_collection("bench", "docs", &mapping).unwrap();
    store
        .create_collection("bench", "writes", &mapping)
        .unwrap();

    let started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        store
            .write(batch("docs", chunk.iter().map(|i| put(*i)).collect()))
            .unwrap();
    }
    let load = started.elapsed();

    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..WRITERS as u64 {
            let store = store.clone();
            scope.spawn(move || {
                let mut i = t;
                while i < WRITES {
                    store.write(batch("writes", vec![put(i)])).unwrap();
                    i += WRITERS as u64;
                }
            });
        }
    });
    let writes = started.elapsed();

    let gets_per_thread = 10_000u64;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..2u64 {
            let store = store.clone();
            scope.spawn(move || {
                for k in 0..gets_per_thread {
                    let i = (k * 7919 + t * 104_729) % n;
                    let id = format!("doc-{i:012}");
                    assert!(store.get_raw("bench", "docs", &id).unwrap().is_some());
                }
            });
        }
    });
    let gets = started.elapsed();

    let latencies = |body: &dyn Fn(u64) -> Value| {
        let mut times: Vec<Duration> = (0..200u64)
            .map(|k| {
                let request = SearchRequest::from_body(&body(k), None, Some(1000)).unwrap();
                let started = Instant::now();
                let page = store.search("bench", "docs", &request).unwrap();
                let took = started.elapsed();
                assert!(page.total > 0);
                took
            })
            .collect();
        times.sort();
        (percentile(&times, 0.5), percentile(&times, 0.99))
    };
    let term_body =
        |k: u64| json!({"query": {"term": {"city": format!("city-{}", k % (n / 2).min(10_000))}}});
    let range_body =
        |k: u64| json!({"query": {"range": {"age": {"gte": k % 89, "lt": k % 89 + 1}}}});
    let prefix_body =
        |k: u64| json!({"query": {"prefix": {"city": format!("city-{}", k % 90 + 10)}}});
    let term = latencies(&term_body);
    let range = latencies(&range_body);
    let prefix = latencies(&prefix_body);
    if let Some(settle) = settle {
        settle();
        let term = latencies(&term_body);
        let range = latencies(&range_body);
        let prefix = latencies(&prefix_body);
        println!(
            "{name:9} after VACUUM ANALYZE: term p50 {:>7.2} ms p99 {:>7.2} ms | range(1%) p50 {:>7.2} ms p99 {:>7.2} ms | prefix(1.1%) p50 {:>7.2} ms p99 {:>7.2} ms",
            term.0.as_secs_f64() * 1e3,
            term.1.as_secs_f64() * 1e3,
            range.0.as_secs_f64() * 1e3,
            range.1.as_secs_f64() * 1e3,
            prefix.0.as_secs_f64() * 1e3,
            prefix.1.as_secs_f64() * 1e3,
        );
    }

    println!(
        "{name:9} load {:>8.0} docs/s | 50 writers {:>7.0} docs/s | get {:>7.0}/s | term p50 {:>7.2} ms p99 {:>7.2} ms | range(1%) p50 {:>7.2} ms p99 {:>7.2} ms | prefix(1.1%) p50 {:>7.2} ms p99 {:>7.2} ms",
        n as f64 / load.as_secs_f64(),
        WRITES as f64 / writes.as_secs_f64(),
        (2 * gets_per_thread) as f64 / gets.as_secs_f64(),
        term.0.as_secs_f64() * 1e3,
        term.1.as_secs_f64() * 1e3,
        range.0.as_secs_f64() * 1e3,
        range.1.as_secs_f64() * 1e3,
        prefix.0.as_secs_f64() * 1e3,
        prefix.1.as_secs_f64() * 1e3,
    );
}

fn main() {
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let Some(server) = postgres_server::server("bench postgres") else {
        return;
    };
    let dir =
        tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into())).unwrap();
    let embedded: Arc<dyn Storage> =
        Arc::new(EmbeddedStorage::open(dir.path(), EmbeddedOptions::default()).unwrap());
    run("embedded", embedded, n, None);
    let url = server.database("bench");
    let mut options = PostgresOptions::new(url.clone());
    options.pool_size = 16;
    let pg_store: Arc<dyn Storage> = Arc::new(PostgresStorage::connect(&options).unwrap());
    let vacuum = move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client
            .batch_execute("VACUUM ANALYZE switchyard_documents")
            .unwrap();
    };
    run("postgres", pg_store, n, Some(&vacuum));
}
