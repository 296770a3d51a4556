//! A short run of every scenario against both targets: it checks that each runs and that the
//! messages add up. Never timings: speed is measured by running the bench, not by tests.

use std::process::Command;

use serde_json::Value;

fn bench(args: &[&str], env: &[(&str, &str)]) -> (std::process::Output, Option<Value>) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let json = dir.path().join("record.json");
    let output = Command::new(env!("CARGO_BIN_EXE_switchyard-bench"))
        .args(args)
        .args(["--seconds", "0.5", "--warmup", "0.2", "--json"])
        .arg(&json)
        .envs(env.iter().copied())
        .output()
        .expect("switchyard-bench runs");
    let record = std::fs::read_to_string(&json)
        .ok()
        .map(|text| serde_json::from_str(&text).expect("valid JSON"));
    (output, record)
}

fn run(args: &[&str]) -> Value {
    let (output, record) = bench(args, &[]);
    assert!(
        output.status.success(),
        "switchyard-bench {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    record.expect("the JSON record")
}

/// Every delivery counted: N per published message, none lost, nobody cut off.
fn assert_every_subscriber_got_every_message(record: &Value, subscribers: u64) {
    for result in results(record) {
        let published = result["messages_published"].as_u64().unwrap();
        assert!(published > 0, "{result}");
        assert_eq!(
            result["deliveries"].as_u64().unwrap(),
            published * subscribers,
            "{result}"
        );
        assert_eq!(result["lost"], 0, "{result}");
        assert_eq!(result["subscribers_disconnected"], 0, "{result}");
    }
}

/// Round trips counted, each one timed.
fn assert_round_trips(record: &Value) {
    for result in results(record) {
        let requests = result["requests"].as_u64().unwrap();
        assert!(requests > 0, "{result}");
        assert_eq!(result["latency"]["samples"].as_u64().unwrap(), requests);
    }
}

fn results(record: &Value) -> &Vec<Value> {
    let results = record["results"].as_array().expect("results");
    // switchyard and the baseline; http also measures bare hyper on one thread.
    let expected = if record["scenario"] == "http" { 3 } else { 2 };
    assert_eq!(
        results.len(),
        expected,
        "switchyard and the baselines: {record}"
    );
    results
}

#[test]
fn ws_fanout_delivers_every_message_to_every_subscriber() {
    let record = run(&["ws-fanout", "--subscribers", "20"]);
    assert_eq!(record["scenario"], "ws-fanout");
    assert!(record["machine"]["cores"].as_u64().unwrap() > 0);
    assert_every_subscriber_got_every_message(&record, 20);
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
fn auth_measures_a_logged_in_user_beside_anonymous_on_the_same_server() {
    for scenario in ["ws-rtt", "http"] {
        let record = run(&[
            scenario,
            "--connections",
            "4",
            "--auth",
            "--target",
            "switchyard",
        ]);
        let results = record["results"].as_array().expect("results");
        let targets: Vec<&str> = results
            .iter()
            .map(|result| result["target"].as_str().unwrap())
            .collect();
        // Every request answered 200 (the bench stops on any other answer).
        assert_eq!(
            targets,
            ["switchyard", "switchyard (logged-in user)"],
            "{record}"
        );
        for result in results {
            assert!(
                result["requests_per_second"].as_f64().unwrap() > 0.0,
                "{result}"
            );
        }
        assert!(record["ratio_user_vs_anonymous"].is_number(), "{record}");
        assert_eq!(record["parameters"]["auth"], true);
    }
}

#[test]
fn tls_measures_switchyard_over_tls_beside_plain_text() {
    for scenario in ["ws-rtt", "http"] {
        let record = run(&[
            scenario,
            "--connections",
            "4",
            "--tls",
            "--target",
            "switchyard",
        ]);
        let results = record["results"].as_array().expect("results");
        let targets: Vec<&str> = results
            .iter()
            .map(|result| result["target"].as_str().unwrap())
            .collect();
        // Every request answered 200 over TLS (the bench stops on any other answer).
        assert_eq!(targets, ["switchyard", "switchyard (TLS)"], "{record}");
        for result in results {
            assert!(
                result["requests_per_second"].as_f64().unwrap() > 0.0,
                "{result}"
            );
        }
        assert!(record["ratio_tls_vs_plain"].is_number(), "{record}");
        assert_eq!(record["parameters"]["tls"], true);
    }
}

#[test]
fn ws_fanout_measures_switchyard_over_tls_beside_plain_text() {
    let record = run(&[
        "ws-fanout",
        "--subscribers",
        "20",
        "--tls",
        "--target",
        "switchyard",
    ]);
    let results = record["results"].as_array().expect("results");
    let targets: Vec<&str> = results
        .iter()
        .map(|result| result["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["switchyard", "switchyard (TLS)"], "{record}");
    for result in results {
        assert!(
            result["deliveries_per_second"].as_f64().unwrap() > 0.0,
            "{result}"
        );
        assert_eq!(result["lost"], 0, "{result}");
    }
    assert!(record["ratio_tls_vs_plain"].is_number(), "{record}");
}

#[test]
fn login_counts_logins_beside_bare_argon2id_verifications() {
    let record = run(&["login", "--connections", "2"]);
    let results = record["results"].as_array().expect("results");
    assert_eq!(results.len(), 2, "{record}");
    assert_eq!(results[0]["target"], "switchyard");
    assert!(
        results[1]["target"]
            .as_str()
            .unwrap()
            .starts_with("argon2id verify, "),
        "{record}"
    );
    for result in results {
        assert!(result["logins"].as_u64().unwrap() > 0, "{result}");
        assert_eq!(
            result["latency"]["samples"].as_u64(),
            result["logins"].as_u64()
        );
    }
    assert_eq!(record["parameters"]["argon2id"]["memory_kib"], 19456);
    assert!(record["ratio_logins_per_second"].is_number(), "{record}");
}

#[test]
fn connections_reads_the_servers_memory() {
    let record = run(&["connections", "--connections", "50"]);
    for result in results(&record) {
        assert!(result["rss_after_bytes"].as_u64().unwrap() > 0, "{result}");
    }
}

#[test]
fn http_counts_requests_and_both_servers_send_the_same_bytes() {
    let record = run(&["http", "--connections", "4"]);
    assert_round_trips(&record);
    let results = results(&record);
    // `requestId` grows with the request count: the same size within a few bytes.
    let sizes: Vec<i64> = results
        .iter()
        .map(|result| result["response_bytes"].as_i64().unwrap())
        .collect();
    // switchyard, bare hyper, and bare hyper on one thread.
    assert_eq!(sizes.len(), 3, "{sizes:?}");
    assert!(
        sizes.iter().all(|size| (size - sizes[0]).abs() < 10),
        "{sizes:?}"
    );
    assert!(record["ratio_requests_per_second_vs_single_thread_hyper"].is_number());
}

#[test]
fn rounds_give_the_median_ratio_and_every_rounds_results() {
    let record = run(&["http", "--connections", "2", "--rounds", "3"]);
    assert_round_trips(&record);
    let per_round: Vec<f64> = record["ratio_requests_per_second_rounds"]
        .as_array()
        .expect("the ratio of each round")
        .iter()
        .map(|ratio| ratio.as_f64().unwrap())
        .collect();
    assert_eq!(per_round.len(), 3);
    assert_eq!(record["rounds"].as_array().map(Vec::len), Some(3));
    let mut sorted = per_round.clone();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(
        record["ratio_requests_per_second"].as_f64(),
        Some(sorted[1])
    );
    // The results shown are the median round's.
    let median_round = record["median_round"].as_u64().unwrap() as usize;
    assert_eq!(per_round[median_round - 1], sorted[1]);
    assert_eq!(record["results"], record["rounds"][median_round - 1]);
}

#[test]
fn mqtt_fanout_delivers_every_message_to_every_subscriber() {
    let record = run(&["mqtt-fanout", "--subscribers", "20"]);
    assert_eq!(results(&record)[1]["target"], "mosquitto");
    assert_every_subscriber_got_every_message(&record, 20);
}

#[test]
fn mqtt_fanout_through_kuzzle_notifications() {
    let record = run(&["mqtt-fanout", "--subscribers", "20", "--via", "kuzzle"]);
    assert_eq!(results(&record)[0]["via"], "kuzzle");
    assert_every_subscriber_got_every_message(&record, 20);
}

#[test]
fn mqtt_rtt_counts_round_trips() {
    assert_round_trips(&run(&["mqtt-rtt", "--connections", "4"]));
    assert_round_trips(&run(&["mqtt-rtt", "--connections", "4", "--via", "topics"]));
}

#[test]
fn mqtt_baseline_without_mosquitto_names_the_package() {
    let (output, _) = bench(
        &["mqtt-fanout", "--subscribers", "2", "--target", "baseline"],
        &[("SWITCHYARD_BENCH_MOSQUITTO", "/nonexistent/mosquitto")],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("package `mosquitto`"), "{stderr}");
}

#[test]
fn socketio_fanout_delivers_every_message_to_every_subscriber() {
    let record = run(&["socketio-fanout", "--subscribers", "20"]);
    let results = results(&record);
    assert_eq!(results[0]["target"], "switchyard");
    assert!(
        results[1]["target"]
            .as_str()
            .unwrap()
            .starts_with("npm socket.io 4."),
        "{record}"
    );
    assert_every_subscriber_got_every_message(&record, 20);
}

#[test]
fn socketio_baseline_without_node_says_what_to_install() {
    let (output, _) = bench(
        &[
            "socketio-fanout",
            "--subscribers",
            "2",
            "--target",
            "baseline",
        ],
        &[("SWITCHYARD_BENCH_NODE", "/nonexistent/node")],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("install Node.js"), "{stderr}");
    assert!(stderr.contains("npm ci"), "{stderr}");
}

#[test]
fn documents_creates_then_gets_on_both_sides() {
    let record = run(&["documents", "--connections", "4"]);
    let results = results(&record);
    assert_eq!(results.len(), 2, "{record}");
    for result in results {
        assert!(result["documents"].as_u64().unwrap() > 0, "{result}");
        assert!(
            result["create_latency"]["samples"].as_u64().unwrap() > 0,
            "{result}"
        );
        assert!(
            result["get_latency"]["samples"].as_u64().unwrap() > 0,
            "{result}"
        );
    }
}

#[test]
fn documents_search_and_documents_subscribed_run_on_both_sides() {
    let record = run(&["documents-search", "--documents", "3000"]);
    let searched = results(&record);
    assert_eq!(searched.len(), 2, "{record}");
    for result in searched {
        assert_eq!(result["documents"], 3000, "{result}");
        assert!(
            result["search_latency"]["samples"].as_u64().unwrap() > 0,
            "{result}"
        );
    }
    let record = run(&[
        "documents-subscribed",
        "--rooms",
        "300",
        "--connections",
        "4",
    ]);
    let results = results(&record);
    assert_eq!(results.len(), 2, "{record}");
    assert_eq!(results[0]["rooms"], 0, "{record}");
    assert_eq!(results[1]["rooms"], 300, "{record}");
    for result in results {
        assert!(result["documents"].as_u64().unwrap() > 0, "{result}");
    }
}

/// Burst mode (`--burst`): the whole burst reaches every subscriber on both sides, and the
/// record has the burst's figures.
#[test]
fn burst_mode_delivers_the_whole_burst_on_both_sides() {
    for scenario in ["ws-fanout", "mqtt-fanout", "socketio-fanout"] {
        let record = run(&[scenario, "--subscribers", "20", "--burst", "500"]);
        assert_eq!(record["parameters"]["burst"], 500, "{record}");
        for result in results(&record) {
            assert_eq!(result["burst"], 500, "{result}");
            assert_eq!(result["deliveries"], 10_000, "{result}");
            assert_eq!(result["lost"], 0, "{result}");
            assert_eq!(result["delivered_percent"], 100.0, "{result}");
            assert_eq!(result["worst_subscriber_percent"], 100.0, "{result}");
            assert_eq!(result["subscribers_disconnected"], 0, "{result}");
            assert!(result["seconds_to_deliver"].as_f64().unwrap() > 0.0);
            assert!(result["peak_rss_growth_mb"].is_number(), "{result}");
        }
    }
}

/// `cluster-fanout`: every setup (one node alone, then 1, 2 and 3 nodes through Redis) delivers
/// every message to every subscriber, wherever they are connected, and reports the nodes' writes
/// per delivery (`--flush-interval` set on the clustered nodes).
#[test]
fn cluster_fanout_delivers_everything_on_every_setup() {
    let record = run(&[
        "cluster-fanout",
        "--subscribers",
        "30",
        "--flush-interval",
        "2",
    ]);
    assert_eq!(record["parameters"]["flush_interval_ms"], 2, "{record}");
    let results = record["results"].as_array().expect("results");
    let setups: Vec<(u64, bool)> = results
        .iter()
        .map(|result| {
            (
                result["nodes"].as_u64().unwrap(),
                result["cluster"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(setups, [(1, false), (1, true), (2, true), (3, true)]);
    for result in results {
        let published = result["messages_published"].as_u64().unwrap();
        assert!(published > 0, "{result}");
        assert_eq!(
            result["deliveries"].as_u64().unwrap(),
            published * 30,
            "{result}"
        );
        assert_eq!(result["lost"], 0, "{result}");
        // The nodes wrote to their subscribers, and the CPU is split in user and system time.
        let writes = result["node_writes"]["per_delivery"].as_f64().unwrap();
        assert!(writes > 0.0, "{result}");
        assert!(result["user_cpu"]["us_per_op"].is_number(), "{result}");
        assert!(result["system_cpu"]["us_per_op"].is_number(), "{result}");
    }
}
