//! Notifications handed to the protocols (one per `broadcast` of an event, whatever the
//! number of protocols and members; one per `notify`), counted per thread for the admin
//! page's notifications/s.
//!
//! Like `metrics.rs`: each thread that hands out notifications increments a counter only it
//! writes (a load and a store, no locked instruction, no cache line shared with another
//! writer); [`total`] sums them, plus what threads that ended had counted. The count is the process's, not one host instance's: the
//! binary runs one host. What a protocol actually writes to its clients (deliveries) only the
//! plugin knows.

use std::cell::OnceCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// The counters of live threads, and what threads that ended had counted (a thread-per-
/// connection plugin would otherwise leave one counter behind per connection).
struct Registry {
    live: Vec<Arc<AtomicU64>>,
    retired: u64,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    live: Vec::new(),
    retired: 0,
});

/// This thread's counter, registered on its first notification, retired when the thread ends.
struct Mine(OnceCell<Arc<AtomicU64>>);

impl Drop for Mine {
    fn drop(&mut self) {
        if let Some(counter) = self.0.get() {
            // Under the lock: a total is taken either before (counter live) or after (its
            // count retired), never with both or neither.
            let mut registry = REGISTRY.lock();
            registry.retired += counter.load(Ordering::Relaxed);
            registry.live.retain(|live| !Arc::ptr_eq(live, counter));
        }
    }
}

thread_local! {
    static MINE: Mine = const { Mine(OnceCell::new()) };
}

/// Counts one notification handed to the protocols.
pub fn record() {
    // During the thread's own teardown the count is dropped (nothing hands out notifications
    // then).
    let _ = MINE.try_with(|mine| {
        let counter = mine.0.get_or_init(|| {
            let counter = Arc::new(AtomicU64::new(0));
            REGISTRY.lock().live.push(Arc::clone(&counter));
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
    let registry = REGISTRY.lock();
    registry.retired
        + registry
            .live
            .iter()
            .map(|counter| counter.load(Ordering::Relaxed))
            .sum::<u64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_counts_and_the_total_keeps_what_ended_threads_counted() {
        let before = total();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..1000 {
                        record();
                    }
                    MINE.with(|mine| mine.0.get().cloned()).expect("registered")
                })
            })
            .collect();
        let counters: Vec<Arc<AtomicU64>> = threads
            .into_iter()
            .map(|thread| thread.join().unwrap())
            .collect();
        // Other tests may count too, never less.
        assert!(total() >= before + 4000);
        let registry = REGISTRY.lock();
        assert!(
            counters
                .iter()
                .all(|ended| !registry.live.iter().any(|live| Arc::ptr_eq(live, ended))),
            "an ended thread's counter is retired"
        );
    }
}
