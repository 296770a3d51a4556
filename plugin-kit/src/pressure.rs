//! Protocol-wide delivery pressure: the bytes queued in all of an instance's outboxes, with a
//! high-water and a low-water mark, reported to the host on each crossing (issue 13).
//!
//! While the total is past the high-water mark the host paces the requests that fan out
//! (`host/src/pressure.rs`), so a publisher's burst waits for the writers instead of filling
//! every subscriber's queue; once the writers drained it below the low-water mark, the host
//! resumes. The marks are per protocol (`highWaterMark`, `lowWaterMark`).
//!
//! The hot path stays cheap: a fan-out sums what it queued in a [`Batch`] and adds it once; a
//! writer subtracts what it took once per batch. No shared read-modify-write per subscriber
//! per message. Because a fan-out adds its sum after its frames are queued, a writer may take
//! them first: the total is signed and may dip below zero for that moment.
//!
//! Also here, because it is per protocol too: the cap on all queued bytes
//! (`maxTotalQueuedBytes`), the rate-limited warning for every slow consumer closed, and the
//! instance's counters (`stats.rs`), which every outbox and writer already reaches from here.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::stats::{Counter, Counters};

/// Default high-water mark: 64 MB queued in all of a protocol's outboxes.
pub const DEFAULT_HIGH_WATER_MARK: u64 = 64 * 1024 * 1024;
/// Default low-water mark: 16 MB.
pub const DEFAULT_LOW_WATER_MARK: u64 = 16 * 1024 * 1024;
/// Default cap on all queued bytes of a protocol: four times the high-water mark.
pub const DEFAULT_MAX_TOTAL_QUEUED_BYTES: u64 = 4 * DEFAULT_HIGH_WATER_MARK;

/// At most one slow-consumer warning per this period per protocol.
const LOG_PERIOD: Duration = Duration::from_secs(1);

/// The marks and the cap of one protocol, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marks {
    /// Crossing up reports "congested".
    pub high: u64,
    /// Draining below reports "relieved"; below `high`.
    pub low: u64,
    /// Past it, a push to a connection that already has frames queued closes it as too slow.
    pub max_total: u64,
}

impl Default for Marks {
    fn default() -> Self {
        Marks {
            high: DEFAULT_HIGH_WATER_MARK,
            low: DEFAULT_LOW_WATER_MARK,
            max_total: DEFAULT_MAX_TOTAL_QUEUED_BYTES,
        }
    }
}

/// The rate limiter of slow-consumer warnings.
#[derive(Debug, Default)]
struct WarnLog {
    /// When the last line was written.
    last: Option<Instant>,
    /// Closes not logged since.
    suppressed: u64,
}

/// One protocol instance's queued bytes and congestion state. Shared (`Arc`) by its outboxes.
pub struct Pressure {
    /// The protocol's name, for logs.
    protocol: String,
    /// Bytes in all outboxes (signed: see the module comment).
    queued: AtomicI64,
    /// The last state reported, read without the lock on the hot path.
    congested: AtomicBool,
    /// The last state reported, under the lock that orders reports.
    reported: Mutex<bool>,
    marks: Marks,
    /// Tells the host (`Host::report_pressure`).
    report: Box<dyn Fn(bool) + Send + Sync>,
    /// Wakes the plugin's own publishers paused by congestion (MQTT's pub/sub).
    relieved: Notify,
    /// The instance's counters (closes, deliveries, bytes), per thread.
    counters: Counters,
    warn_log: Mutex<WarnLog>,
}

impl std::fmt::Debug for Pressure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pressure")
            .field("protocol", &self.protocol)
            .field("queued", &self.queued)
            .field("congested", &self.congested)
            .field("marks", &self.marks)
            .finish_non_exhaustive()
    }
}

impl Pressure {
    /// Pressure of protocol `protocol`, reporting crossings to the host (`report_pressure`).
    pub fn reported_to(
        protocol: &str,
        marks: Marks,
        backend: &Arc<dyn switchyard_plugin_api::Backend>,
    ) -> Pressure {
        let backend = backend.clone();
        Pressure::new(protocol, marks, move |congested| {
            backend.report_pressure(congested)
        })
    }

    /// Pressure of protocol `protocol`, reporting crossings to `report`.
    pub fn new(
        protocol: &str,
        marks: Marks,
        report: impl Fn(bool) + Send + Sync + 'static,
    ) -> Pressure {
        Pressure {
            protocol: protocol.to_string(),
            queued: AtomicI64::new(0),
            congested: AtomicBool::new(false),
            reported: Mutex::new(false),
            marks,
            report: Box::new(report),
            relieved: Notify::new(),
            counters: Counters::new(),
            warn_log: Mutex::new(WarnLog::default()),
        }
    }

    /// Default marks, reporting to nobody (tests, tools).
    pub fn unreported() -> Pressure {
        Pressure::new("test", Marks::default(), |_| {})
    }

    /// The marks.
    pub fn marks(&self) -> Marks {
        self.marks
    }

    /// Bytes queued in all outboxes now (never negative).
    pub fn queued_bytes(&self) -> u64 {
        self.queued.load(Ordering::Relaxed).max(0) as u64
    }

    /// True while congestion is reported.
    pub fn is_congested(&self) -> bool {
        self.congested.load(Ordering::SeqCst)
    }

    /// True when the total passed `maxTotalQueuedBytes`.
    pub fn over_total(&self) -> bool {
        self.queued.load(Ordering::Relaxed) > self.marks.max_total as i64
    }

    /// Slow consumers closed since start.
    pub fn slow_consumers_closed(&self) -> u64 {
        self.counters.get(Counter::ClosedSlowConsumer)
    }

    /// The instance's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Writes the instance's counters and its queued bytes into the host's sink (the `stats`
    /// hook).
    pub fn report_stats(&self, sink: &mut switchyard_plugin_api::StatsSink<'_>) {
        self.counters.report(sink, self.queued_bytes());
    }

    /// `bytes` were queued.
    pub fn add(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let now = self.queued.fetch_add(bytes as i64, Ordering::SeqCst) + bytes as i64;
        if now >= self.marks.high as i64 && !self.congested.load(Ordering::SeqCst) {
            self.reconcile();
        }
    }

    /// `bytes` left the outboxes (taken by a writer, or dropped).
    pub fn sub(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let now = self.queued.fetch_sub(bytes as i64, Ordering::SeqCst) - bytes as i64;
        if now <= self.marks.low as i64 && self.congested.load(Ordering::SeqCst) {
            self.reconcile();
        }
    }

    /// Reports the state the total calls for, if it differs from the last report. Under the
    /// lock, so reports reach the host in order; the loop re-reads the total after publishing
    /// the flag, so an `add` or `sub` that raced with it (and saw the old flag) is not missed.
    fn reconcile(&self) {
        let mut reported = self.reported.lock();
        loop {
            let queued = self.queued.load(Ordering::SeqCst);
            let want = if *reported {
                queued > self.marks.low as i64
            } else {
                queued >= self.marks.high as i64
            };
            if want == *reported {
                return;
            }
            *reported = want;
            self.congested.store(want, Ordering::SeqCst);
            // Report first: until the host knows, its threads keep running fan-outs (a log
            // line can block on the host's output).
            (self.report)(want);
            if !want {
                self.relieved.notify_waiters();
            }
            tracing::debug!(protocol = %self.protocol, queued, congested = want, "pressure");
        }
    }

    /// Waits until congestion is not reported (at once if it is not): for a protocol's own
    /// publishers, which do not go through the host (MQTT's pub/sub).
    pub async fn wait_relieved(&self) {
        loop {
            let notified = self.relieved.notified();
            tokio::pin!(notified);
            // Registered before the check, so a relief between the two is not missed.
            notified.as_mut().enable();
            if !self.is_congested() {
                return;
            }
            notified.await;
        }
    }

    /// Starts accounting one fan-out: push with [`crate::outbox::Outbox::push_counted`]; the
    /// sum is added when the batch is dropped.
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            pressure: self,
            bytes: 0,
            frames: 0,
            over_total: self.over_total(),
        }
    }

    /// A slow consumer was closed: counted, and logged at warn at most once per second per
    /// protocol (with how many closes were not logged since the last line).
    pub fn slow_consumer_closed(
        &self,
        connection: &dyn std::fmt::Display,
        queued_bytes: usize,
        why: &str,
    ) {
        self.counters.add(Counter::ClosedSlowConsumer, 1);
        let now = Instant::now();
        let mut log = self.warn_log.lock();
        if log
            .last
            .is_some_and(|last| now.duration_since(last) < LOG_PERIOD)
        {
            log.suppressed += 1;
            return;
        }
        log.last = Some(now);
        let suppressed = std::mem::take(&mut log.suppressed);
        drop(log);
        tracing::warn!(
            protocol = %self.protocol,
            connection = %connection,
            queued_bytes,
            suppressed,
            "slow consumer closed: {why}"
        );
    }
}

/// The bytes one fan-out queued, added to the protocol's total once, when dropped.
#[derive(Debug)]
pub struct Batch<'a> {
    pressure: &'a Pressure,
    /// Bytes queued so far.
    pub(crate) bytes: usize,
    /// Frames queued so far: the fan-out's deliveries.
    pub(crate) frames: u64,
    /// The total was past `maxTotalQueuedBytes` when the fan-out began.
    pub(crate) over_total: bool,
}

impl Batch<'_> {
    /// True when the protocol's total was past `maxTotalQueuedBytes` as the fan-out began: a
    /// push into a non-empty queue then closes that consumer.
    pub fn over_total(&self) -> bool {
        self.over_total
    }

    /// One more frame of `bytes` was queued (for a protocol whose queues are not the kit's
    /// outboxes).
    pub fn count(&mut self, bytes: usize) {
        self.bytes += bytes;
        self.frames += 1;
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        self.pressure.add(self.bytes);
        self.pressure.counters.add(Counter::Deliveries, self.frames);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use switchyard_plugin_api::ConnectionId;

    use super::*;

    fn recording(high: u64, low: u64) -> (Arc<Pressure>, Arc<Mutex<Vec<bool>>>) {
        let reports = Arc::new(Mutex::new(Vec::new()));
        let sink = reports.clone();
        let marks = Marks {
            high,
            low,
            max_total: high * 4,
        };
        let pressure = Pressure::new("test", marks, move |congested| sink.lock().push(congested));
        (Arc::new(pressure), reports)
    }

    #[test]
    fn crossings_are_reported_once_each_with_hysteresis() {
        let (pressure, reports) = recording(100, 20);
        pressure.add(60);
        pressure.add(39);
        assert!(reports.lock().is_empty());
        pressure.add(1);
        pressure.add(50);
        assert_eq!(*reports.lock(), [true]);
        assert!(pressure.is_congested());
        pressure.sub(100);
        assert_eq!(*reports.lock(), [true], "50 left: above the low-water mark");
        pressure.sub(30);
        assert_eq!(*reports.lock(), [true, false]);
        pressure.sub(20);
        assert_eq!(*reports.lock(), [true, false]);
        assert_eq!(pressure.queued_bytes(), 0);
    }

    #[test]
    fn a_batch_adds_once_when_dropped() {
        let (pressure, reports) = recording(100, 20);
        {
            let mut batch = pressure.batch();
            batch.bytes += 150;
            assert!(reports.lock().is_empty());
        }
        assert_eq!(*reports.lock(), [true]);
        assert_eq!(pressure.queued_bytes(), 150);
    }

    #[test]
    fn racing_adds_and_subs_end_in_the_right_state() {
        for _ in 0..20 {
            let (pressure, reports) = recording(100, 50);
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let pressure = pressure.clone();
                    std::thread::spawn(move || {
                        for _ in 0..10_000 {
                            pressure.add(37);
                            pressure.sub(37);
                        }
                    })
                })
                .collect();
            for thread in threads {
                thread.join().unwrap();
            }
            assert_eq!(pressure.queued_bytes(), 0);
            assert!(!pressure.is_congested());
            let reports = reports.lock();
            assert!(
                reports.windows(2).all(|pair| pair[0] != pair[1]),
                "edges alternate"
            );
            assert_ne!(reports.last(), Some(&true));
        }
    }

    #[tokio::test]
    async fn publishers_wait_for_relief() {
        let (pressure, _) = recording(100, 20);
        pressure.add(100);
        let draining = pressure.clone();
        let thread = std::thread::spawn(move || draining.sub(90));
        tokio::time::timeout(Duration::from_secs(10), pressure.wait_relieved())
            .await
            .unwrap();
        thread.join().unwrap();
    }

    #[test]
    fn slow_consumer_closes_are_counted() {
        let pressure = Pressure::unreported();
        for id in 0..5 {
            pressure.slow_consumer_closed(&ConnectionId(id), 10, "test");
        }
        assert_eq!(pressure.slow_consumers_closed(), 5);
        assert_eq!(pressure.warn_log.lock().suppressed, 4);
    }
}
