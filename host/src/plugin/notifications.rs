//! Notifications handed to the protocols (one per `broadcast` of an event, whatever the
//! number of protocols and members; one per `notify`), counted per thread for the admin
//! page's notifications/s.
//!
//! Like `metrics.rs`: each thread that hands out notifications increments a counter only it
//! writes (a load and a store, no locked instruction, no cache line shared with another
//! writer); [`total`] sums them. The count is the process's, not one host instance's: the
//! binary runs one host. What a protocol actually writes to its clients (deliveries) only the
//! plugin knows.

use std::cell::OnceCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// Every thread's counter, registered on its first notification.
static COUNTERS: Mutex<Vec<Arc<AtomicU64>>> = Mutex::new(Vec::new());

thread_local! {
    static MINE: OnceCell<Arc<AtomicU64>> = const { OnceCell::new() };
}

/// Counts one notification handed to the protocols.
pub fn record() {
    MINE.with(|mine| {
        let counter = mine.get_or_init(|| {
            let counter = Arc::new(AtomicU64::new(0));
            COUNTERS.lock().push(Arc::clone(&counter));
            counter
        });
        // Only this thread writes it.
        counter.store(
            counter.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    });
}

/// Notifications handed out since the process started, over every thread.
pub fn total() -> u64 {
    COUNTERS
        .lock()
        .iter()
        .map(|counter| counter.load(Ordering::Relaxed))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_counts_and_the_total_sums_them() {
        let before = total();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..1000 {
                        record();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        // Other tests may count too, never less.
        assert!(total() >= before + 4000);
    }
}
