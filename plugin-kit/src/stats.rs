//! A protocol instance's own counters, reported to the host through the `stats` hook (ABI 1.2):
//! closes by reason, deliveries, bytes in and out.
//!
//! Counting happens on the delivery and I/O paths, so it must cost next to nothing there: every
//! thread that counts gets its own block of cells (`Shard`), found through a thread-local, and
//! only that thread writes it (a load and a store, no locked read-modify-write, no cache line
//! shared with another writer). The host pulls: `stats` sums the shards when it is asked
//! (`server:info`, `/metrics`), which may miss a running thread's last few increments, never
//! count one twice. The same design as the host's `metrics.rs`.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use switchyard_plugin_api::{StatId, StatsSink};

/// What an instance counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Connections closed as slow consumers.
    ClosedSlowConsumer,
    /// Connections closed after their idle timeout.
    ClosedIdle,
    /// Connections closed past a rate limit.
    ClosedRateLimit,
    /// Connections closed on a protocol error.
    ClosedError,
    /// Notification frames queued (one per member per channel).
    Deliveries,
    /// Bytes read from clients.
    BytesIn,
    /// Bytes written to clients.
    BytesOut,
}

/// Every counter with the ABI's id for it, in cell order.
const COUNTERS: [(Counter, StatId); 7] = [
    (Counter::ClosedSlowConsumer, StatId::CLOSED_SLOW_CONSUMER),
    (Counter::ClosedIdle, StatId::CLOSED_IDLE),
    (Counter::ClosedRateLimit, StatId::CLOSED_RATE_LIMIT),
    (Counter::ClosedError, StatId::CLOSED_ERROR),
    (Counter::Deliveries, StatId::DELIVERIES),
    (Counter::BytesIn, StatId::BYTES_IN),
    (Counter::BytesOut, StatId::BYTES_OUT),
];

impl Counter {
    fn cell(self) -> usize {
        self as usize
    }
}

/// One thread's cells; only that thread writes them.
#[derive(Debug, Default)]
struct Shard {
    cells: [AtomicU64; COUNTERS.len()],
}

thread_local! {
    /// This thread's shards, by `Counters::id` (one per instance the thread counted for).
    static SHARDS: RefCell<Vec<(u64, Arc<Shard>)>> = const { RefCell::new(Vec::new()) };
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One instance's counters.
#[derive(Debug)]
pub struct Counters {
    /// Tells this instance's shards from another's in the thread-local (two instances of one
    /// library share its threads' statics).
    id: u64,
    /// Every shard ever made, for the sum.
    shards: Mutex<Vec<Arc<Shard>>>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters::new()
    }
}

impl Counters {
    /// All zero.
    pub fn new() -> Counters {
        Counters {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shards: Mutex::new(Vec::new()),
        }
    }

    /// Adds `value` to `counter`, in this thread's shard.
    pub fn add(&self, counter: Counter, value: u64) {
        if value == 0 {
            return;
        }
        SHARDS.with(|shards| {
            let mut shards = shards.borrow_mut();
            let shard = match shards.iter().find(|(id, _)| *id == self.id) {
                Some((_, shard)) => shard,
                None => {
                    let shard = Arc::new(Shard::default());
                    self.shards.lock().push(Arc::clone(&shard));
                    shards.push((self.id, shard));
                    &shards.last().expect("just pushed").1
                }
            };
            let cell = &shard.cells[counter.cell()];
            // Only this thread writes the cell: no read-modify-write needed.
            cell.store(
                cell.load(Ordering::Relaxed).wrapping_add(value),
                Ordering::Relaxed,
            );
        })
    }

    /// The total of `counter` over every thread.
    pub fn get(&self, counter: Counter) -> u64 {
        self.shards.lock().iter().fold(0u64, |sum, shard| {
            sum.wrapping_add(shard.cells[counter.cell()].load(Ordering::Relaxed))
        })
    }

    /// Writes every counter, and `queued_bytes` (a gauge), into the host's sink.
    pub fn report(&self, sink: &mut StatsSink<'_>, queued_bytes: u64) {
        let mut sums = [0u64; COUNTERS.len()];
        for shard in self.shards.lock().iter() {
            for (sum, cell) in sums.iter_mut().zip(&shard.cells) {
                *sum = sum.wrapping_add(cell.load(Ordering::Relaxed));
            }
        }
        for ((_, id), sum) in COUNTERS.iter().zip(sums) {
            sink.record(*id, sum);
        }
        sink.record(StatId::QUEUED_BYTES, queued_bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_every_thread_are_summed_per_instance() {
        let counters = Arc::new(Counters::new());
        let other = Arc::new(Counters::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (counters, other) = (counters.clone(), other.clone());
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        counters.add(Counter::Deliveries, 2);
                    }
                    other.add(Counter::BytesIn, 1);
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        counters.add(Counter::ClosedSlowConsumer, 1);
        assert_eq!(counters.get(Counter::Deliveries), 8000);
        assert_eq!(counters.get(Counter::BytesIn), 0);
        assert_eq!(other.get(Counter::BytesIn), 4);

        let mut seen = Vec::new();
        let mut record = |id: StatId, value: u64| seen.push((id.0, value));
        counters.report(&mut StatsSink::new(&mut record), 42);
        assert_eq!(
            seen,
            [
                (1, 1),
                (2, 0),
                (3, 0),
                (4, 0),
                (5, 8000),
                (6, 0),
                (7, 0),
                (8, 42)
            ]
        );
    }
}
