//! A short run of every scenario against both targets: it checks that each runs and that the
//! messages add up. Never timings: speed is measured by running the bench, not by tests.

use std::process::Command;

use serde_json::Value;

fn run(args: &[&str]) -> Value {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let json = dir.path().join("record.json");
    let output = Command::new(env!("CARGO_BIN_EXE_switchyard-bench"))
        .args(args)
        .args(["--seconds", "0.5", "--warmup", "0.2", "--json"])
        .arg(&json)
        .output()
        .expect("switchyard-bench runs");
    assert!(
        output.status.success(),
        "switchyard-bench {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&json).expect("the JSON record");
    serde_json::from_str(&text).expect("valid JSON")
}

fn results(record: &Value) -> &Vec<Value> {
    let results = record["results"].as_array().expect("results");
    assert_eq!(results.len(), 2, "switchyard and the baseline: {record}");
    results
}

#[test]
fn ws_fanout_delivers_every_message_to_every_subscriber() {
    let record = run(&["ws-fanout", "--subscribers", "20"]);
    assert_eq!(record["scenario"], "ws-fanout");
    assert!(record["machine"]["cores"].as_u64().unwrap() > 0);
    for result in results(&record) {
        let published = result["messages_published"].as_u64().unwrap();
        assert!(published > 0, "{result}");
        assert_eq!(
            result["deliveries"].as_u64().unwrap(),
            published * 20,
            "{result}"
        );
        assert_eq!(result["lost"], 0, "{result}");
        assert_eq!(result["subscribers_disconnected"], 0, "{result}");
    }
}

#[test]
fn ws_rtt_counts_round_trips() {
    let record = run(&["ws-rtt", "--connections", "4"]);
    for result in results(&record) {
        assert!(
            result["latency"]["samples"].as_u64().unwrap() > 0,
            "{result}"
        );
    }
}

#[test]
fn connections_reads_the_servers_memory() {
    let record = run(&["connections", "--connections", "50"]);
    for result in results(&record) {
        assert!(result["rss_after_bytes"].as_u64().unwrap() > 0, "{result}");
    }
}
