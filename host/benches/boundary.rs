//! Micro-benchmark of the plugin boundary: the cost of one hook call into a real plugin, and of
//! one `execute` round trip (admission, routing, response, callback), in process — both when
//! requests run at once on the caller's thread (the default) and when they wait for a worker.
//!
//! `cargo bench -p switchyard --bench boundary`. Prints figures; asserts nothing about time.

use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard::config::Config;
use switchyard::entry_point::EntryPoint;
use switchyard::plugin::callback::Callback;
use switchyard::plugin::host_api::EntryPointApi;
use switchyard::startup;
use switchyard_plugin_api::abi::{FfiCallback, FfiResponse};
use switchyard_plugin_api::{ConnectionId, DisconnectReason};

/// Answers received so far (the callback has no context: it only counts).
static ANSWERED: AtomicU64 = AtomicU64::new(0);

extern "C" fn count_answer(_context: *mut c_void, response: FfiResponse<'_>) {
    assert_eq!(response.status, 200, "{}", response.content.as_str());
    ANSWERED.fetch_add(1, Ordering::Release);
}

fn callback() -> Callback {
    Callback::Abi(FfiCallback {
        call: count_answer,
        context: std::ptr::null_mut(),
    })
}

fn wait_for(answers: u64) {
    while ANSWERED.load(Ordering::Acquire) < answers {
        std::hint::spin_loop();
    }
}

fn per_op(elapsed: Duration, ops: u64) -> f64 {
    elapsed.as_nanos() as f64 / ops as f64
}

/// Starts a host in this process with the line fixture and extra `[server]` settings.
fn start(extra: &str) -> Arc<EntryPoint> {
    let library = switchyard_tests::artifacts()
        .library("fixture_line")
        .to_path_buf();
    let text = format!(
        "[server]\nrequestQueueSize = 200000\n{extra}\n[server.protocols.line]\nlibrary = {library:?}\nignoreShutdown = true\n"
    );
    let config = Config::parse(std::path::Path::new("bench.toml"), &text).expect("valid config");
    startup::start(config)
        .expect("the line fixture starts")
        .entry
}

/// Sequential round trips (latency), then pipelined ones (throughput).
fn round_trips(entry: &EntryPoint, label: &str) {
    let connection = entry.new_connection(0, &[], "{}");
    let request = r#"{"controller":"server","action":"now","requestId":"bench"}"#;
    const ROUND_TRIPS: u64 = 200_000;
    let mut samples = Vec::with_capacity(ROUND_TRIPS as usize);
    let base = ANSWERED.load(Ordering::Acquire);
    let begun = Instant::now();
    for sent in 1..=ROUND_TRIPS {
        let one = Instant::now();
        entry.execute(connection, request, callback());
        wait_for(base + sent);
        samples.push(one.elapsed().as_nanos() as u64);
    }
    let sequential = per_op(begun.elapsed(), ROUND_TRIPS);
    samples.sort_unstable();
    let p50 = samples[samples.len() / 2];
    let p99 = samples[samples.len() * 99 / 100];

    const PIPELINED: u64 = 1_000_000;
    let base = ANSWERED.load(Ordering::Acquire);
    let begun = Instant::now();
    let mut sent = 0;
    while sent < PIPELINED {
        let batch = 100_000.min(PIPELINED - sent);
        for _ in 0..batch {
            entry.execute(connection, request, callback());
        }
        sent += batch;
        wait_for(base + sent);
    }
    let pipelined = PIPELINED as f64 / begun.elapsed().as_secs_f64();
    println!("  execute, {label}: one at a time {sequential:.0} ns mean (p50 {p50} ns, p99 {p99} ns); pipelined {pipelined:.0} requests/s");
}

fn main() {
    let entry = start("");
    let protocol = &entry.services.protocols.all()[0];
    println!(
        "plugin boundary ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // `disconnect` with SHUTDOWN returns at once in this fixture (it ignores shutdown), so this
    // is the boundary itself: indirect call, catch_unwind, result check.
    const HOOK_CALLS: u64 = 5_000_000;
    let begun = Instant::now();
    for _ in 0..HOOK_CALLS {
        protocol.disconnect(ConnectionId(u64::MAX), DisconnectReason::SHUTDOWN, "");
    }
    println!(
        "  hook call, empty body (disconnect): {:.1} ns",
        per_op(begun.elapsed(), HOOK_CALLS)
    );
    // A hook doing a little work: a lock and a map lookup in the plugin.
    let begun = Instant::now();
    for _ in 0..HOOK_CALLS {
        protocol.leave_channel("bench", ConnectionId(u64::MAX));
    }
    println!(
        "  hook call, lock + lookup (leaveChannel): {:.1} ns",
        per_op(begun.elapsed(), HOOK_CALLS)
    );

    // What a protocol pays to declare and forget a connection (HTTP does it per request).
    const CONNECTIONS: u64 = 1_000_000;
    let ips = ["127.0.0.1"];
    let headers = r#"{"host":"127.0.0.1:7511","user-agent":"bench","accept":"*/*"}"#;
    let begun = Instant::now();
    for _ in 0..CONNECTIONS {
        let id = entry.new_connection(0, &ips, headers);
        entry.remove_connection(id);
    }
    println!(
        "  new_connection + remove_connection: {:.0} ns",
        per_op(begun.elapsed(), CONNECTIONS)
    );

    round_trips(&entry, "run at once (default)");
    round_trips(&start("concurrentRequests = 0"), "queued for a worker");
}
