//! The scenarios: each starts the servers it compares (the real `switchyard` and its baseline,
//! one after the other), drives them with the same load from this process, and returns a JSON
//! record. Helpers shared by every scenario live here.
//!
//! Adding a scenario: a function `fn(&Settings) -> anyhow::Result<Value>` in a module here,
//! its name in `SCENARIOS` and `run`, a line in `usage.txt`, a smoke test in
//! `tests/smoke.rs`, and its figures in `BENCHMARKS.md`.

mod auth;
mod burst;
mod cluster;
mod documents;
mod documents_scale;
mod http;
mod login;
mod mqtt;
mod mqtt_rtt;
mod socketio;
mod ws;

use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::Settings;

/// Every scenario's name, in the order `usage.txt` lists them.
pub const SCENARIOS: &[&str] = &[
    "ws-fanout",
    "ws-rtt",
    "http",
    "mqtt-fanout",
    "mqtt-rtt",
    "socketio-fanout",
    "connections",
    "documents",
    "documents-search",
    "documents-subscribed",
    "cluster-fanout",
    "login",
];

/// Runs the scenario called `name`.
pub fn run(name: &str, settings: &Settings) -> anyhow::Result<Value> {
    match name {
        "ws-fanout" => ws::ws_fanout(settings),
        "ws-rtt" => ws::ws_rtt(settings),
        "connections" => ws::connections(settings),
        "http" => http::http(settings),
        "mqtt-fanout" => mqtt::mqtt_fanout(settings),
        "mqtt-rtt" => mqtt_rtt::mqtt_rtt(settings),
        "socketio-fanout" => socketio::socketio_fanout(settings),
        "documents" => documents::documents(settings),
        "documents-search" => documents_scale::documents_search(settings),
        "documents-subscribed" => documents_scale::documents_subscribed(settings),
        "cluster-fanout" => cluster::cluster_fanout(settings),
        "login" => login::login(settings),
        other => anyhow::bail!("unknown scenario {other}: {}", SCENARIOS.join(", ")),
    }
}

/// A single-threaded tokio runtime (the load generator's threads).
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A latency histogram in microseconds.
pub(crate) fn histogram() -> Mutex<Histogram<u64>> {
    Mutex::new(Histogram::new(3).expect("a histogram"))
}

/// p50, p99 and p99.9 of a histogram in microseconds, and its sample count.
pub(crate) fn percentiles(histogram: &Histogram<u64>) -> Value {
    json!({
        "p50_us": histogram.value_at_quantile(0.50),
        "p99_us": histogram.value_at_quantile(0.99),
        "p999_us": histogram.value_at_quantile(0.999),
        "samples": histogram.len(),
    })
}

/// `switchyard / baseline` for `key`, rounded to 0.01 (null unless both were measured); the
/// logged-in user's record (`--auth`) and the TLS one (`--tls`) are neither.
pub(crate) fn ratio(results: &[Value], key: &str) -> Value {
    let ours = results
        .iter()
        .find(|result| result["target"] == "switchyard")
        .and_then(|result| result[key].as_f64());
    let theirs = results
        .iter()
        .find(|result| {
            result["target"] != "switchyard"
                && result["target"] != auth::USER_TARGET
                && result["target"] != crate::tls::TLS_TARGET
        })
        .and_then(|result| result[key].as_f64());
    match (ours, theirs) {
        (Some(ours), Some(theirs)) if theirs > 0.0 => {
            json!((ours / theirs * 100.0).round() / 100.0)
        }
        _ => Value::Null,
    }
}

/// The server's CPU use over a measured window: seconds, and microseconds per operation.
pub(crate) fn cpu_figures(before: Option<f64>, after: Option<f64>, operations: u64) -> Value {
    match (before, after) {
        (Some(before), Some(after)) => {
            let seconds = after - before;
            json!({
                "seconds": (seconds * 100.0).round() / 100.0,
                "us_per_op": if operations > 0 {
                    json!((seconds * 1e6 / operations as f64 * 1000.0).round() / 1000.0)
                } else {
                    Value::Null
                },
            })
        }
        _ => Value::Null,
    }
}

/// Added to timestamps so they always have 19 digits (a fixed message size; JSON numbers
/// cannot have leading zeros).
pub(crate) const TS_OFFSET: u64 = 1_000_000_000_000_000_000;

/// `{"ts":<19 digits>,"pad":"…"}` padded to `payload` bytes: a message body carrying the time
/// it was sent (nanoseconds since the run's epoch).
pub(crate) fn timed_body(sent_at: u64, payload: usize) -> String {
    let fixed = r#"{"ts":1000000000000000000,"pad":""}"#.len();
    let pad = "x".repeat(payload.saturating_sub(fixed));
    format!(r#"{{"ts":{},"pad":"{pad}"}}"#, TS_OFFSET + sent_at)
}
