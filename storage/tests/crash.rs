//! Crash safety: a child process (this test binary, re-run on one test) writes from 24 threads
//! and prints every acknowledged id; the parent SIGKILLs it mid-way, reopens the store, and checks
//! that every acknowledged id is there. Acknowledged: `write` returned, or (deferred writes) the
//! store's log thread called the batch's `then` with its outcome.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use serde_json::json;
use switchyard_storage::{
    EmbeddedOptions, EmbeddedStorage, KuzzleInfo, Operation, Outcome, Precondition, Storage,
    WriteBatch,
};

const DIR_VAR: &str = "SWITCHYARD_STORAGE_CRASH_DIR";
/// Set (to anything) when the child writes with `write_deferred`.
const DEFERRED_VAR: &str = "SWITCHYARD_STORAGE_CRASH_DEFERRED";
const THREADS: usize = 24;

fn batch(t: usize, i: u64) -> WriteBatch {
    WriteBatch {
        index: "crash".into(),
        collection: "docs".into(),
        operations: vec![Operation::Put {
            id: format!("t{t}-{i}"),
            source: json!({"thread": t, "i": i, "pad": "x".repeat(200)}),
            info: KuzzleInfo::default(),
            meta: Vec::new(),
            precondition: Precondition::Absent,
        }],
    }
}

fn print_ack(outcomes: &[Outcome]) {
    let Outcome::Written { id, .. } = &outcomes[0] else {
        panic!("not written: {outcomes:?}");
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "ack {id}").unwrap();
    out.flush().unwrap();
}

/// The child's side: does nothing unless started by `acknowledged_writes_survive_sigkill`.
#[test]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let store = EmbeddedStorage::open(&dir, EmbeddedOptions::default()).unwrap();
    let deferred = std::env::var(DEFERRED_VAR).is_ok();
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let store = &store;
            scope.spawn(move || {
                // Deferred: up to 8 writes of this thread in flight, each acknowledged by the log
                // thread.
                let (done, acknowledged) = std::sync::mpsc::channel::<()>();
                for i in 0.. {
                    if !deferred {
                        print_ack(&store.write(batch(t, i)).unwrap());
                        continue;
                    }
                    if i >= 8 {
                        acknowledged.recv().unwrap();
                    }
                    assert!(store.can_defer_writes());
                    let done = done.clone();
                    store.write_deferred(
                        batch(t, i),
                        Box::new(move |outcomes| {
                            print_ack(&outcomes.unwrap());
                            let _ = done.send(());
                        }),
                    );
                }
            });
        }
    });
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    crash_and_check(false);
}

#[test]
fn acknowledged_deferred_writes_survive_sigkill() {
    crash_and_check(true);
}

fn crash_and_check(deferred: bool) {
    if std::env::var(DIR_VAR).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStorage::open(dir.path(), EmbeddedOptions::default()).unwrap();
        store.create_index("crash").unwrap();
        store
            .create_collection("crash", "docs", &json!({}))
            .unwrap();
    }
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "crash_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_VAR, dir.path())
        .stdout(Stdio::piped());
    if deferred {
        command.env(DEFERRED_VAR, "1");
    }
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acknowledged = Vec::new();
    for line in lines.by_ref() {
        if let Some(id) = line.unwrap().strip_prefix("ack ") {
            acknowledged.push(id.to_string());
            if acknowledged.len() == 3000 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
                           // Lines already in the pipe were acknowledged too.
    for line in lines {
        let Ok(line) = line else { break };
        if let Some(id) = line.strip_prefix("ack ") {
            acknowledged.push(id.to_string());
        }
    }
    child.wait().unwrap();
    assert!(acknowledged.len() >= 3000, "the child stopped early");

    let store = EmbeddedStorage::open(dir.path(), EmbeddedOptions::default()).unwrap();
    let found = store.mget("crash", "docs", &acknowledged).unwrap();
    let missing: Vec<&String> = acknowledged
        .iter()
        .zip(&found)
        .filter(|(_, doc)| doc.is_none())
        .map(|(id, _)| id)
        .collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    let stored = store.len("crash", "docs").unwrap();
    assert!(stored >= acknowledged.len() as u64);
    eprintln!(
        "{} acknowledged before SIGKILL, {stored} stored after reopen",
        acknowledged.len()
    );
}
