//! Burst mode (`--burst N`, issue 13) of the fan-out scenarios: no publishing window, the
//! publisher writes N messages as fast as the server reads them, then the run waits until every
//! subscriber has all N (or nothing arrived for `STALL`). Reported next to the baseline's: the
//! delivered percentage (overall, and the worst and average subscriber), the time from the
//! first write to the last delivery, deliveries per second over it, and the server's peak RSS
//! growth over the burst (`VmHWM` after resetting it through `/proc/<pid>/clear_refs`, and
//! `VmRSS` sampled every 2 ms, whichever is higher, minus `VmRSS` before).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::target::{rss_bytes, Running};

/// The run ends when no delivery arrived for this long.
const STALL: Duration = Duration::from_secs(10);
/// Messages per publisher write in burst mode (one write, many frames: the client is not the
/// bottleneck).
pub(crate) const PER_WRITE: u64 = 64;

/// Watches the server's memory over one burst.
pub(crate) struct MemoryProbe {
    pid: Option<u32>,
    rss_before: Option<u64>,
    peak_sampled: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<()>>,
}

impl MemoryProbe {
    /// Resets the server's `VmHWM` (if the kernel lets us), reads its RSS and starts sampling.
    pub(crate) fn start(server: &Running) -> MemoryProbe {
        let pid = server.pid();
        if let Some(pid) = pid {
            // "5" resets the peak resident set size (proc(5), clear_refs).
            let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
        }
        let rss_before = pid.and_then(rss_bytes);
        let peak_sampled = Arc::new(AtomicU64::new(rss_before.unwrap_or(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = pid.map(|pid| {
            let (peak, stop) = (Arc::clone(&peak_sampled), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    if let Some(rss) = rss_bytes(pid) {
                        peak.fetch_max(rss, Ordering::AcqRel);
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        });
        MemoryProbe {
            pid,
            rss_before,
            peak_sampled,
            stop,
            sampler,
        }
    }

    /// Stops sampling: (RSS before, peak RSS growth), in MB.
    fn finish(mut self) -> (Value, Value) {
        self.stop.store(true, Ordering::Release);
        if let Some(sampler) = self.sampler.take() {
            let _ = sampler.join();
        }
        let hwm = self.pid.and_then(hwm_bytes).unwrap_or(0);
        let peak = hwm.max(self.peak_sampled.load(Ordering::Acquire));
        match self.rss_before {
            Some(before) => (json!(mb(before)), json!(mb(peak.saturating_sub(before)))),
            None => (Value::Null, Value::Null),
        }
    }
}

fn mb(bytes: u64) -> f64 {
    (bytes as f64 / (1024.0 * 1024.0) * 10.0).round() / 10.0
}

/// Peak resident memory of a process since start or its last reset (`VmHWM`).
fn hwm_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Waits until `received()` reaches `expected`, or nothing arrived for `STALL`, or a subscriber
/// was closed and nothing arrived for a second; returns when the last delivery was seen.
pub(crate) async fn wait_delivered(
    expected: u64,
    received: impl Fn() -> u64,
    closed: impl Fn() -> usize,
) -> Instant {
    let mut last = received();
    let mut last_at = Instant::now();
    loop {
        let now = received();
        if now != last {
            last = now;
            last_at = Instant::now();
        }
        if now >= expected {
            return last_at;
        }
        let quiet = last_at.elapsed();
        if quiet >= STALL || (closed() > 0 && quiet >= Duration::from_secs(1)) {
            return last_at;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The record of one burst against one server.
pub(crate) fn record(
    server: &Running,
    burst: u64,
    per_subscriber: &[u64],
    elapsed: Duration,
    memory: MemoryProbe,
    disconnected: usize,
) -> Value {
    let delivered: u64 = per_subscriber.iter().sum();
    let expected = burst * per_subscriber.len() as u64;
    let percent = |count: u64, of: u64| {
        if of == 0 {
            0.0
        } else {
            (count as f64 / of as f64 * 10_000.0).round() / 100.0
        }
    };
    let worst = per_subscriber.iter().copied().min().unwrap_or(0);
    let (rss_before, growth) = memory.finish();
    json!({
        "target": server.name(),
        "burst": burst,
        "delivered_percent": percent(delivered, expected),
        "worst_subscriber_percent": percent(worst, burst),
        "average_subscriber_percent": percent(delivered, expected),
        "seconds_to_deliver": (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        "deliveries_per_second": (delivered as f64 / elapsed.as_secs_f64().max(1e-9)).round(),
        "rss_before_mb": rss_before,
        "peak_rss_growth_mb": growth,
        "deliveries": delivered,
        "lost": expected.saturating_sub(delivered),
        "subscribers_disconnected": disconnected,
    })
}

/// Per-subscriber counters, read once.
pub(crate) fn snapshot(counters: &[AtomicU64]) -> Vec<u64> {
    counters
        .iter()
        .map(|count| count.load(Ordering::Acquire))
        .collect()
}
