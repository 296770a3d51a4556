//! Engine comparison behind `storage/README.md` "Choosing the engine": redb, SQLite (rusqlite,
//! bundled) and fjall, measured the same way, each in its own process so memory figures are its own.
//!
//! `cargo bench -p switchyard-storage --bench engines [-- N]` (N documents, default 100000). Per
//! engine: durable single-document commits (latency), durable 50-document commits (what group
//! commit does), a bulk load, file size, random point reads on a reopened store with a 16 MiB cache
//! (data set several times larger), peak memory, and recovery after `kill -9` in the middle of
//! durable writes (time to open and read, and whether every acknowledged write is there).
//! Figures are printed, never asserted.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CACHE_BYTES: usize = 16 << 20;
const ENGINES: &[&str] = &["redb", "redb-quick-repair", "sqlite", "fjall"];

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        Some("measure") => measure(&args[1], Path::new(&args[2]), args[3].parse().unwrap()),
        Some("crash-child") => crash_child(&args[1], Path::new(&args[2]), args[3].parse().unwrap()),
        Some("recover") => recover(&args[1], Path::new(&args[2])),
        other => {
            let n: u64 = other.and_then(|s| s.parse().ok()).unwrap_or(100_000);
            let only: Vec<String> = args.iter().skip(1).cloned().collect();
            println!("{}", cpu_and_load());
            for engine in ENGINES {
                if !only.is_empty() && !only.iter().any(|o| o == engine) {
                    continue;
                }
                run_engine(engine, n);
            }
        }
    }
}

fn cpu_and_load() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .unwrap_or("model name: ?")
        .to_string();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!("{cpu}; loadavg {}", load.trim())
}

fn run_engine(engine: &str, n: u64) {
    let dir = tempfile::Builder::new()
        .prefix("engines-")
        .tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "target".into()))
        .unwrap();
    let path = dir.path().join("db");
    std::fs::create_dir_all(&path).unwrap();
    let me = std::env::current_exe().unwrap();
    let status = Command::new(&me)
        .args(["measure", engine, path.to_str().unwrap(), &n.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Crash: durable single writes from one thread; kill -9 after 500 acknowledgements.
    let mut child = Command::new(&me)
        .args([
            "crash-child",
            engine,
            path.to_str().unwrap(),
            &n.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acknowledged = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(key) = line.strip_prefix("ack ") {
            acknowledged.push(key.to_string());
            if acknowledged.len() == 500 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    std::fs::write(path.join("acknowledged.txt"), acknowledged.join("\n")).unwrap();
    let status = Command::new(&me)
        .args(["recover", engine, path.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// One engine behind the few operations the bench needs.
enum Engine {
    Redb(redb::Database),
    Sqlite(rusqlite::Connection),
    Fjall(fjall::Database, fjall::Keyspace),
}

const TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("docs");

impl Engine {
    fn open(engine: &str, path: &Path) -> Engine {
        match engine {
            "redb" | "redb-quick-repair" => {
                let db = redb::Database::builder()
                    .set_cache_size(CACHE_BYTES)
                    .create(path.join("data.redb"))
                    .unwrap();
                Engine::Redb(db)
            }
            "sqlite" => {
                let conn = rusqlite::Connection::open(path.join("data.sqlite")).unwrap();
                conn.execute_batch(&format!(
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-{};
                     CREATE TABLE IF NOT EXISTS docs (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID;",
                    CACHE_BYTES / 1024
                ))
                .unwrap();
                Engine::Sqlite(conn)
            }
            "fjall" => {
                let db = fjall::Database::builder(path.join("fjall"))
                    .cache_size(CACHE_BYTES as u64)
                    .open()
                    .unwrap();
                let ks = db
                    .keyspace("docs", fjall::KeyspaceCreateOptions::default)
                    .unwrap();
                Engine::Fjall(db, ks)
            }
            other => panic!("unknown engine {other}"),
        }
    }

    /// Writes `docs` in one transaction, durable (fsync) before returning.
    fn commit(&mut self, engine: &str, docs: &[(Vec<u8>, Vec<u8>)]) {
        match self {
            Engine::Redb(db) => {
                let mut txn = db.begin_write().unwrap();
                txn.set_quick_repair(engine == "redb-quick-repair");
                {
                    let mut table = txn.open_table(TABLE).unwrap();
                    for (k, v) in docs {
                        table.insert(k.as_slice(), v.as_slice()).unwrap();
                    }
                }
                txn.commit().unwrap();
            }
            Engine::Sqlite(conn) => {
                let txn = conn.transaction().unwrap();
                {
                    let mut stmt = txn
                        .prepare_cached("INSERT OR REPLACE INTO docs (k, v) VALUES (?1, ?2)")
                        .unwrap();
                    for (k, v) in docs {
                        stmt.execute((k, v)).unwrap();
                    }
                }
                txn.commit().unwrap();
            }
            Engine::Fjall(db, ks) => {
                let mut batch = db.batch().durability(Some(fjall::PersistMode::SyncData));
                for (k, v) in docs {
                    batch.insert(ks, k.clone(), v.clone());
                }
                batch.commit().unwrap();
            }
        }
    }

    /// 50 threads, 40 durable single-document commits each; returns documents per second.
    fn concurrent_singles(&self, engine: &str, path: &Path, base: u64) -> f64 {
        const THREADS: u64 = 50;
        const PER_THREAD: u64 = 40;
        // `rusqlite::Connection` is not `Sync`: share only the handles that are.
        enum Shared<'a> {
            Redb(&'a redb::Database),
            Sqlite,
            Fjall(&'a fjall::Database, &'a fjall::Keyspace),
        }
        let shared = match self {
            Engine::Redb(db) => Shared::Redb(db),
            Engine::Sqlite(_) => Shared::Sqlite,
            Engine::Fjall(db, ks) => Shared::Fjall(db, ks),
        };
        let shared = &shared;
        let started = Instant::now();
        std::thread::scope(|scope| {
            for t in 0..THREADS {
                scope.spawn(move || {
                    let mut own = match shared {
                        // SQLite needs one connection per writer; redb and fjall share the handle.
                        Shared::Sqlite => {
                            let conn =
                                rusqlite::Connection::open(path.join("data.sqlite")).unwrap();
                            conn.execute_batch(
                                "PRAGMA synchronous=FULL; PRAGMA busy_timeout=60000;",
                            )
                            .unwrap();
                            Some(conn)
                        }
                        _ => None,
                    };
                    for i in 0..PER_THREAD {
                        let k = key(base + t * PER_THREAD + i);
                        let v = document(i);
                        match (shared, own.as_mut()) {
                            (Shared::Redb(db), _) => {
                                let mut txn = db.begin_write().unwrap();
                                txn.set_quick_repair(engine == "redb-quick-repair");
                                txn.open_table(TABLE)
                                    .unwrap()
                                    .insert(k.as_slice(), v.as_slice())
                                    .unwrap();
                                txn.commit().unwrap();
                            }
                            (Shared::Sqlite, Some(conn)) => {
                                let txn = rusqlite::Transaction::new(
                                    conn,
                                    rusqlite::TransactionBehavior::Immediate,
                                )
                                .unwrap();
                                txn.execute(
                                    "INSERT OR REPLACE INTO docs (k, v) VALUES (?1, ?2)",
                                    (&k, &v),
                                )
                                .unwrap();
                                txn.commit().unwrap();
                            }
                            (Shared::Fjall(db, ks), _) => {
                                let mut batch =
                                    db.batch().durability(Some(fjall::PersistMode::SyncData));
                                batch.insert(ks, k, v);
                                batch.commit().unwrap();
                            }
                            _ => unreachable!(),
                        }
                    }
                });
            }
        });
        (THREADS * PER_THREAD) as f64 / started.elapsed().as_secs_f64()
    }

    fn get(&self, key: &[u8]) -> Option<usize> {
        match self {
            Engine::Redb(db) => {
                use redb::{ReadableDatabase, ReadableTable};
                let txn = db.begin_read().unwrap();
                let table = txn.open_table(TABLE).unwrap();
                table.get(key).unwrap().map(|v| v.value().len())
            }
            Engine::Sqlite(conn) => {
                let mut stmt = conn
                    .prepare_cached("SELECT v FROM docs WHERE k = ?1")
                    .unwrap();
                let mut rows = stmt.query([key]).unwrap();
                rows.next()
                    .unwrap()
                    .map(|row| row.get_ref(0).unwrap().as_blob().unwrap().len())
            }
            Engine::Fjall(_, ks) => ks.get(key).unwrap().map(|v| v.len()),
        }
    }
}

fn key(i: u64) -> Vec<u8> {
    format!("doc-{i:012}").into_bytes()
}

/// A `document:create`-sized document (~330 bytes of JSON), different for every `i`.
fn document(i: u64) -> Vec<u8> {
    format!(
        r#"{{"name":"user {i}","email":"user{i}@example.com","age":{},"city":"city-{}","tags":["t{}","t{}"],"score":{}.5,"active":{},"bio":"lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt {i}","_kuzzle_info":{{"author":"-1","createdAt":{},"updatedAt":null,"updater":null}}}}"#,
        i % 90,
        i % 1000,
        i % 7,
        i % 13,
        i % 10_000,
        i.is_multiple_of(2),
        1_700_000_000_000u64 + i
    )
    .into_bytes()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn measure(engine: &str, path: &Path, n: u64) {
    let mut store = Engine::open(engine, path);
    // Durable single-document commits.
    let mut latencies = Vec::new();
    for i in 0..300 {
        let started = Instant::now();
        store.commit(engine, &[(key(n + 10_000_000 + i), document(i))]);
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let single_rate = 300.0 / latencies.iter().sum::<Duration>().as_secs_f64();
    // Durable 50-document commits.
    let started = Instant::now();
    for batch in 0..40u64 {
        let docs: Vec<_> = (0..50)
            .map(|j| (key(n + 20_000_000 + batch * 50 + j), document(j)))
            .collect();
        store.commit(engine, &docs);
    }
    let batch_rate = 2000.0 / started.elapsed().as_secs_f64();
    // 50 threads, each committing single documents durably (no group commit: the engine's own
    // writer lock serialises them).
    let concurrent_rate = store.concurrent_singles(engine, path, n + 40_000_000);
    // Bulk load, 5000 documents per commit.
    let started = Instant::now();
    let mut i = 0;
    while i < n {
        let docs: Vec<_> = (i..(i + 5000).min(n))
            .map(|j| (key(j), document(j)))
            .collect();
        store.commit(engine, &docs);
        i += 5000;
    }
    let load = started.elapsed();
    drop(store);
    let size = dir_size(path);
    // Reopen (cold engine cache, warm OS cache), random point reads.
    let started = Instant::now();
    let store = Engine::open(engine, path);
    let reopen = started.elapsed();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let reads = 200_000;
    let started = Instant::now();
    let mut bytes = 0;
    for _ in 0..reads {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        bytes += store.get(&key(rng % n)).expect("document present");
    }
    let read_time = started.elapsed();
    assert!(bytes > 0);
    let (rss, hwm) = memory();
    println!(
        "{engine:18} single durable commit p50 {:>7.0} us p99 {:>7.0} us ({single_rate:>6.0}/s) | 50 threads x single commits {concurrent_rate:>6.0} docs/s | 50-doc durable commits {batch_rate:>7.0} docs/s | load {n} docs {:>5.1} s | size {:>6.1} MiB | clean reopen {:>6.1} ms | random get {:>5.2} us ({:>7.0}/s) | RSS {:>5.1} MiB, peak {:>5.1} MiB | {}",
        percentile(&latencies, 0.5).as_secs_f64() * 1e6,
        percentile(&latencies, 0.99).as_secs_f64() * 1e6,
        load.as_secs_f64(),
        size as f64 / (1 << 20) as f64,
        reopen.as_secs_f64() * 1e3,
        read_time.as_secs_f64() * 1e6 / reads as f64,
        reads as f64 / read_time.as_secs_f64(),
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        cpu_and_load().split("; ").nth(1).unwrap_or("")
    );
}

fn crash_child(engine: &str, path: &Path, n: u64) {
    let mut store = Engine::open(engine, path);
    let mut out = std::io::stdout().lock();
    for i in 0.. {
        let k = key(n + 30_000_000 + i);
        store.commit(engine, &[(k.clone(), document(i))]);
        writeln!(out, "ack {}", String::from_utf8(k).unwrap()).unwrap();
        out.flush().unwrap();
    }
}

fn recover(engine: &str, path: &Path) {
    let started = Instant::now();
    let store = Engine::open(engine, path);
    let open = started.elapsed();
    let acknowledged = std::fs::read_to_string(path.join("acknowledged.txt")).unwrap();
    let missing = acknowledged
        .lines()
        .filter(|k| store.get(k.as_bytes()).is_none())
        .count();
    let total = started.elapsed();
    println!(
        "{engine:18} after kill -9 (size {:.1} MiB): open {:.1} ms, open + read 500 acknowledged {:.1} ms, missing {missing}",
        dir_size(path) as f64 / (1 << 20) as f64,
        open.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3
    );
}

fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack: Vec<PathBuf> = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

/// (VmRSS, VmHWM) in KiB.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
