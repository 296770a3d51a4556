//! Crash safety: a child process (this test binary, re-run on one test) writes from 24 threads
//! and prints every acknowledged id; the parent SIGKILLs it mid-way, reopens the store, and checks
//! that every acknowledged id is there.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use serde_json::json;
use switchyard_storage::{
    EmbeddedOptions, EmbeddedStorage, KuzzleInfo, Operation, Outcome, Precondition, Storage,
    WriteBatch,
};

const DIR_VAR: &str = "SWITCHYARD_STORAGE_CRASH_DIR";
const THREADS: usize = 24;

/// The child's side: does nothing unless started by `acknowledged_writes_survive_sigkill`.
#[test]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let store = EmbeddedStorage::open(&dir, EmbeddedOptions::default()).unwrap();
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let store = &store;
            scope.spawn(move || {
                for i in 0.. {
                    let id = format!("t{t}-{i}");
                    let outcomes = store
                        .write(WriteBatch {
                            index: "crash".into(),
                            collection: "docs".into(),
                            operations: vec![Operation::Put {
                                id: id.clone(),
                                source: json!({"thread": t, "i": i, "pad": "x".repeat(200)}),
                                info: KuzzleInfo::default(),
                                meta: Vec::new(),
                                precondition: Precondition::Absent,
                            }],
                        })
                        .unwrap();
                    assert!(matches!(outcomes[0], Outcome::Written { .. }));
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {id}").unwrap();
                    out.flush().unwrap();
                }
            });
        }
    });
}

#[test]
fn acknowledged_writes_survive_sigkill() {
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
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_VAR, dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
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
