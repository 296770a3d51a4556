//! Counters the admin listener exports (Prometheus text format), kept per thread.
//!
//! Every thread that records gets its own block of counters (`Shard`), found through a
//! thread-local: recording is a load and a store on a cache line no other thread writes, never
//! a shared atomic read-modify-write. A scrape sums the blocks of every thread that ever
//! recorded. Counts are monotonic; a scrape may miss the last few increments of a running
//! thread, never see one twice.
//!
//! What is counted per protocol: requests by action and status class, request latency (from
//! admission to answer), connections accepted and closed. The layout is fixed at creation
//! (protocols × actions), so a record is an index computation, no lookup.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

/// Upper bounds of the latency histogram's buckets, in microseconds (`+Inf` is implied).
pub const LATENCY_BUCKETS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000,
];
/// `le` labels of the buckets, as Prometheus writes them (seconds).
const LATENCY_LABELS: [&str; 15] = [
    "5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
    "0.1", "0.25", "0.5", "1", "+Inf",
];
/// Status classes: 1xx–5xx.
const CLASSES: usize = 5;

/// Where a request was counted: its protocol and action (see [`Metrics::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The protocol's index, or `None` when the connection was unknown.
    pub protocol: Option<u16>,
    /// The action's id in the router, or `None` when no action was found.
    pub action: Option<u16>,
}

impl Route {
    /// A request that reached no action of no known protocol.
    pub const UNKNOWN: Route = Route {
        protocol: None,
        action: None,
    };
}

/// The counters of one process.
#[derive(Debug)]
pub struct Metrics {
    /// Tells this instance's shards from other instances' in the thread-local (tests make
    /// several).
    id: usize,
    layout: Layout,
    shards: Mutex<Vec<Arc<Shard>>>,
}

#[derive(Debug, Clone, Copy)]
struct Layout {
    /// Protocols, plus one slot for "unknown".
    protocols: usize,
    /// Actions, plus one slot for "no action".
    actions: usize,
}

impl Layout {
    fn requests(&self) -> usize {
        0
    }
    fn request(&self, protocol: usize, action: usize, class: usize) -> usize {
        self.requests() + (protocol * self.actions + action) * CLASSES + class
    }
    fn latency(&self) -> usize {
        self.protocols * self.actions * CLASSES
    }
    /// Per protocol: the buckets, then the sum in nanoseconds.
    fn latency_bucket(&self, protocol: usize, bucket: usize) -> usize {
        self.latency() + protocol * (LATENCY_LABELS.len() + 1) + bucket
    }
    fn latency_sum(&self, protocol: usize) -> usize {
        self.latency_bucket(protocol, LATENCY_LABELS.len())
    }
    fn connections(&self) -> usize {
        self.latency() + self.protocols * (LATENCY_LABELS.len() + 1)
    }
    fn accepted(&self, protocol: usize) -> usize {
        self.connections() + protocol * 2
    }
    fn closed(&self, protocol: usize) -> usize {
        self.accepted(protocol) + 1
    }
    fn cells(&self) -> usize {
        self.connections() + self.protocols * 2
    }
}

/// One thread's counters.
#[derive(Debug)]
struct Shard {
    cells: Box<[AtomicU64]>,
}

impl Shard {
    /// Only the owning thread writes: a plain load and store, no locked instruction.
    fn add(&self, cell: usize, value: u64) {
        let cell = &self.cells[cell];
        cell.store(
            cell.load(Ordering::Relaxed).wrapping_add(value),
            Ordering::Relaxed,
        );
    }
}

thread_local! {
    /// This thread's shards, by `Metrics::id` (one, outside tests).
    static SHARDS: RefCell<Vec<(usize, Arc<Shard>)>> = const { RefCell::new(Vec::new()) };
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Sums of every shard, read once per scrape.
#[derive(Debug, Clone)]
pub struct Snapshot {
    layout: Layout,
    cells: Vec<u64>,
}

impl Metrics {
    /// Counters for `protocols` protocols and `actions` actions.
    pub fn new(protocols: usize, actions: usize) -> Metrics {
        Metrics {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed) as usize,
            layout: Layout {
                protocols: protocols + 1,
                actions: actions + 1,
            },
            shards: Mutex::new(Vec::new()),
        }
    }

    fn with_shard(&self, record: impl FnOnce(&Shard)) {
        SHARDS.with(|shards| {
            let mut shards = shards.borrow_mut();
            if let Some((_, shard)) = shards.iter().find(|(id, _)| *id == self.id) {
                return record(shard);
            }
            let shard = Arc::new(Shard {
                cells: (0..self.layout.cells())
                    .map(|_| AtomicU64::new(0))
                    .collect(),
            });
            self.shards.lock().push(Arc::clone(&shard));
            record(&shard);
            shards.push((self.id, shard));
        });
    }

    fn protocol_slot(&self, protocol: Option<u16>) -> usize {
        protocol
            .map(usize::from)
            .filter(|&p| p < self.layout.protocols - 1)
            .unwrap_or(self.layout.protocols - 1)
    }

    /// One answered request.
    pub fn request(&self, route: Route, status: u16, latency: Duration) {
        let protocol = self.protocol_slot(route.protocol);
        let action = route
            .action
            .map(usize::from)
            .filter(|&a| a < self.layout.actions - 1)
            .unwrap_or(self.layout.actions - 1);
        let class = usize::from(status / 100).clamp(1, CLASSES) - 1;
        let micros = latency.as_micros() as u64;
        let bucket = LATENCY_BUCKETS_US
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        let layout = self.layout;
        self.with_shard(|shard| {
            shard.add(layout.request(protocol, action, class), 1);
            shard.add(layout.latency_bucket(protocol, bucket), 1);
            shard.add(layout.latency_sum(protocol), latency.as_nanos() as u64);
        });
    }

    /// A connection declared by `protocol`.
    pub fn connection_accepted(&self, protocol: usize) {
        let slot = self.protocol_slot(u16::try_from(protocol).ok());
        let layout = self.layout;
        self.with_shard(|shard| shard.add(layout.accepted(slot), 1));
    }

    /// A connection of `protocol` removed.
    pub fn connection_closed(&self, protocol: usize) {
        let slot = self.protocol_slot(u16::try_from(protocol).ok());
        let layout = self.layout;
        self.with_shard(|shard| shard.add(layout.closed(slot), 1));
    }

    /// Every shard summed.
    pub fn snapshot(&self) -> Snapshot {
        let mut cells = vec![0u64; self.layout.cells()];
        for shard in self.shards.lock().iter() {
            for (sum, cell) in cells.iter_mut().zip(shard.cells.iter()) {
                *sum = sum.wrapping_add(cell.load(Ordering::Relaxed));
            }
        }
        Snapshot {
            layout: self.layout,
            cells,
        }
    }
}

impl Snapshot {
    /// Requests of `protocol` (None: unknown) for action `action` (None: none found) whose
    /// status was in class `class` (2 for 2xx…).
    pub fn requests(&self, protocol: Option<usize>, action: Option<usize>, class: u16) -> u64 {
        let protocol = protocol.unwrap_or(self.layout.protocols - 1);
        let action = action.unwrap_or(self.layout.actions - 1);
        let class = usize::from(class).clamp(1, CLASSES) - 1;
        self.cells[self.layout.request(protocol, action, class)]
    }

    /// Latency histogram of `protocol`: cumulative counts per bucket (Prometheus' `le`
    /// semantics, `+Inf` last) and the sum in seconds.
    pub fn latency(&self, protocol: Option<usize>) -> (Vec<(&'static str, u64)>, f64) {
        let protocol = protocol.unwrap_or(self.layout.protocols - 1);
        let mut total = 0;
        let buckets = LATENCY_LABELS
            .iter()
            .enumerate()
            .map(|(bucket, label)| {
                total += self.cells[self.layout.latency_bucket(protocol, bucket)];
                (*label, total)
            })
            .collect();
        let sum = self.cells[self.layout.latency_sum(protocol)] as f64 / 1e9;
        (buckets, sum)
    }

    /// Connections accepted and closed by `protocol`.
    pub fn connections(&self, protocol: usize) -> (u64, u64) {
        (
            self.cells[self.layout.accepted(protocol)],
            self.cells[self.layout.closed(protocol)],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_every_thread_are_summed() {
        let metrics = Arc::new(Metrics::new(2, 3));
        let route = Route {
            protocol: Some(1),
            action: Some(2),
        };
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let metrics = Arc::clone(&metrics);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        metrics.request(route, 200, Duration::from_micros(70));
                    }
                    metrics.request(route, 503, Duration::from_secs(2));
                    metrics.connection_accepted(1);
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        metrics.request(Route::UNKNOWN, 400, Duration::ZERO);
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.requests(Some(1), Some(2), 2), 4000);
        assert_eq!(snapshot.requests(Some(1), Some(2), 5), 4);
        assert_eq!(snapshot.requests(Some(0), Some(2), 2), 0);
        assert_eq!(snapshot.requests(None, None, 4), 1);
        let (buckets, sum) = snapshot.latency(Some(1));
        assert_eq!(buckets[0], ("5e-05", 0));
        assert_eq!(buckets[1], ("0.0001", 4000));
        assert_eq!(buckets[13], ("1", 4000));
        assert_eq!(buckets[14], ("+Inf", 4004));
        assert!((sum - (4000.0 * 70e-6 + 8.0)).abs() < 1e-6, "{sum}");
        assert_eq!(snapshot.connections(1), (4, 0));
    }
}
