//! Benchmark (not a test): documents matched against 10,000 and 100,000 mixed subscriptions,
//! by this crate and, in the same run, by npm koncorde on the same filters and documents
//! (`filters/oracle/bench.js`, skipped with a notice if the oracle is not installed).
//!
//! Run: `cargo bench -p switchyard-filters --bench matching`. `BENCH_SIZES=100000` picks the
//! sizes, `BENCH_RUST_ONLY=1` skips koncorde (for profiling).

use std::alloc::System;
use std::io::Write;
use std::process::Command;
use std::time::Instant;

use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

use serde_json::{json, Value};
use switchyard_filters::{Engine, EngineConfig};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A subscription of a realistic mix: mostly equals/in on ids and statuses, ranges, exists,
/// some boolean combinations, a few regexps and geo distances.
fn subscription(rng: &mut Rng, i: u64) -> Value {
    let field = |rng: &mut Rng| format!("f{}", rng.below(50));
    match i % 10 {
        0 | 1 => json!({"equals": {"user": format!("u{}", rng.below(100_000))}}),
        2 => {
            json!({"in": {"status": [format!("s{}", rng.below(1000)), format!("s{}", rng.below(1000))]}})
        }
        3 => {
            let low = rng.below(1_000_000) as f64;
            json!({"range": {"price": {"gte": low, "lt": low + 1000.0}}})
        }
        4 => json!({"and": [
            {"equals": {"room": format!("r{}", rng.below(10_000))}},
            {"range": {"age": {"gt": rng.below(100)}}}
        ]}),
        5 => {
            json!({"and": [{"exists": field(rng)}, {"equals": {"kind": format!("k{}", rng.below(5000))}}]})
        }
        6 => json!({"or": [
            {"equals": {"user": format!("u{}", rng.below(100_000))}},
            {"equals": {"team": format!("t{}", rng.below(10_000))}}
        ]}),
        7 => json!({"bool": {
            "must": [{"equals": {"country": format!("c{}", rng.below(200))}}],
            "must_not": [{"equals": {"user": format!("u{}", rng.below(100_000))}}],
            "should": [{"range": {"score": {"gte": rng.below(1000)}}}, {"exists": field(rng)}]
        }}),
        8 => {
            if rng.below(10) == 0 {
                json!({"and": [{"equals": {"kind": format!("k{}", rng.below(5000))}}, {"regexp": {"name": format!("^n{}", rng.below(1000))}}]})
            } else {
                json!({"equals": {"kind": format!("k{}", rng.below(5000))}})
            }
        }
        _ => {
            if rng.below(10) == 0 {
                let lat = 43.0 + rng.below(1000) as f64 / 1000.0;
                json!({"and": [
                    {"equals": {"fleet": format!("fl{}", rng.below(1000))}},
                    {"geoDistance": {"pos": {"lat": lat, "lon": 3.9}, "distance": "5km"}}
                ]})
            } else {
                json!({"ids": {"values": [format!("d{}", rng.below(100_000))]}})
            }
        }
    }
}

fn document(rng: &mut Rng) -> Value {
    let mut doc = json!({
        "_id": format!("d{}", rng.below(100_000)),
        "user": format!("u{}", rng.below(100_000)),
        "status": format!("s{}", rng.below(1000)),
        "price": rng.below(1_000_000),
        "room": format!("r{}", rng.below(10_000)),
        "age": rng.below(100),
        "kind": format!("k{}", rng.below(5000)),
        "team": format!("t{}", rng.below(10_000)),
        "country": format!("c{}", rng.below(200)),
        "score": rng.below(1000),
        "name": format!("n{}", rng.below(100_000)),
        "fleet": format!("fl{}", rng.below(1000)),
        "pos": {"lat": 43.0 + rng.below(1000) as f64 / 1000.0, "lon": 3.9},
    });
    for _ in 0..3 {
        doc[format!("f{}", rng.below(50))] = json!(true);
    }
    doc
}

/// A document with the same fields whose values no subscription wants: its cost is the index's
/// overhead alone, whatever the number of subscriptions.
fn miss_document(rng: &mut Rng) -> Value {
    json!({
        "_id": format!("x{}", rng.below(100_000)),
        "user": "nobody",
        "status": "none",
        "price": -5 - rng.below(1000) as i64,
        "room": "none",
        "age": -1,
        "kind": "none",
        "team": "none",
        "country": "none",
        "score": -1,
        "name": "zzz",
        "fleet": "none",
        "pos": {"lat": -43.0, "lon": 3.9},
    })
}

/// Documents per second through `test_into`, measured for about 2 s; and matches per document.
fn rate(engine: &Engine, index: &str, docs: &[Value]) -> (f64, f64) {
    let mut total = 0usize;
    let mut out = Vec::new();
    let start = Instant::now();
    let mut rounds = 0;
    while rounds == 0 || start.elapsed().as_secs_f64() < 2.0 {
        for doc in docs {
            out.clear();
            engine.test_into(index, doc, &mut out);
            total += out.len();
        }
        rounds += 1;
    }
    let tested = (rounds * docs.len()) as f64;
    (
        tested / start.elapsed().as_secs_f64(),
        total as f64 / tested,
    )
}

/// Counts heap bytes, so that memory is measured exactly (live bytes, not RSS).
#[global_allocator]
static HEAP: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn live_heap_bytes() -> i64 {
    let stats = HEAP.stats();
    // `realloc` is counted in both (growth as allocated, shrinkage as deallocated).
    stats.bytes_allocated as i64 - stats.bytes_deallocated as i64
}

fn main() {
    let index = "bench/collection";
    let mut rng = Rng(0x00be_ec4a_11ce);
    let docs: Vec<Value> = (0..2000).map(|_| document(&mut rng)).collect();
    let misses: Vec<Value> = (0..2000).map(|_| miss_document(&mut rng)).collect();
    let oracle = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("oracle");
    println!(
        "switchyard-filters matching benchmark ({} documents per size)",
        docs.len()
    );
    let sizes: Vec<u64> = std::env::var("BENCH_SIZES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000]);
    let rust_only = std::env::var_os("BENCH_RUST_ONLY").is_some();
    for n in sizes {
        let mut rng = Rng(0x5eed ^ n);
        let filters: Vec<Value> = (0..n).map(|i| subscription(&mut rng, i)).collect();

        let before = live_heap_bytes();
        let start = Instant::now();
        let mut engine = Engine::new(EngineConfig::default());
        let mut ids = Vec::with_capacity(filters.len());
        for f in &filters {
            let normalized = engine.normalize(index, f).expect("bench filters are valid");
            ids.push(engine.store(normalized));
        }
        let store_time = start.elapsed();
        // The ids the caller keeps are not the engine's memory.
        let ids_bytes: i64 = ids.iter().map(|id| id.capacity() as i64).sum::<i64>()
            + (ids.capacity() * std::mem::size_of::<String>()) as i64;
        let memory = live_heap_bytes() - before - ids_bytes;

        let (rate_docs, matches) = rate(&engine, index, &docs);
        let (rate_misses, _) = rate(&engine, index, &misses);
        println!(
            "rust      {n:>7} subscriptions ({} rooms): {rate_docs:>12.0} documents/s, {matches:.2} matches/doc, {rate_misses:.0} documents matching nothing/s, store {:.2}s, ~{} bytes/subscription",
            engine.len(),
            store_time.as_secs_f64(),
            memory / n as i64
        );

        // Removal gives memory back: remove every other subscription, then the rest.
        let with_all = live_heap_bytes();
        let start = Instant::now();
        for id in ids.iter().step_by(2) {
            engine.remove(id);
        }
        let half = with_all - live_heap_bytes();
        for id in ids.iter().skip(1).step_by(2) {
            engine.remove(id);
        }
        let remove_time = start.elapsed();
        let left = live_heap_bytes() - (with_all - memory);
        println!(
            "          removing half the subscriptions frees {:.0}% of the index, removing all leaves {} bytes, remove {:.2}s",
            100.0 * half as f64 / memory as f64,
            left.max(0),
            remove_time.as_secs_f64(),
        );
        assert!(engine.is_empty());
        drop(engine);

        if rust_only {
            continue;
        }
        if oracle.join("node_modules/koncorde").exists() {
            let path = std::env::temp_dir().join(format!("switchyard-filters-bench-{n}.json"));
            let mut file = std::fs::File::create(&path).expect("temp file");
            writeln!(
                file,
                "{}",
                json!({"index": index, "filters": filters, "docs": docs, "misses": misses})
            )
            .expect("write");
            let output = Command::new("node")
                .arg("--expose-gc")
                .arg(oracle.join("bench.js"))
                .arg(&path)
                .output();
            match output {
                Ok(o) => print!("{}", String::from_utf8_lossy(&o.stdout)),
                Err(e) => println!("koncorde  (not run: {e})"),
            }
            let _ = std::fs::remove_file(&path);
        } else {
            println!("koncorde  (not run: bash filters/oracle/setup.sh installs it)");
        }
    }
}
