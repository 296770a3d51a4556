//! Delivery pressure: which protocols report their subscribers' queues past their high-water
//! mark, so that the host paces the requests that fan out (flow control, end to end).
//!
//! A protocol says "congested" when its queued outgoing bytes pass its high-water mark and
//! "relieved" when its writers drained them below the low-water mark (edge-triggered: one call
//! per crossing). While any protocol is congested, requests whose action fans out (publish,
//! document writes) wait in the entry point's pacing queue instead of running; they run, in
//! order, once every protocol is relieved, or are refused with 503 after `pacingTimeout`.
//! Checking costs one load of a read-mostly atomic per fan-out request.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

/// The protocols' congestion flags.
#[derive(Debug)]
pub struct Pressure {
    /// One flag per protocol.
    protocols: Box<[AtomicBool]>,
    /// How many flags are set.
    congested: AtomicUsize,
    /// Waiters for "no protocol congested".
    relieved_lock: Mutex<()>,
    relieved: Condvar,
}

impl Pressure {
    /// No protocol congested, for `protocols` protocols.
    pub fn new(protocols: usize) -> Pressure {
        Pressure {
            protocols: (0..protocols).map(|_| AtomicBool::new(false)).collect(),
            congested: AtomicUsize::new(0),
            relieved_lock: Mutex::new(()),
            relieved: Condvar::new(),
        }
    }

    /// Records what `protocol` reported. Repeated reports of the same state change nothing;
    /// unknown protocols are ignored.
    pub fn set(&self, protocol: usize, congested: bool) {
        let Some(flag) = self.protocols.get(protocol) else {
            return;
        };
        if flag.swap(congested, Ordering::AcqRel) == congested {
            return;
        }
        if congested {
            self.congested.fetch_add(1, Ordering::AcqRel);
        } else if self.congested.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Taking the lock orders this wake-up after a waiter's check.
            let _guard = self.relieved_lock.lock();
            self.relieved.notify_all();
        }
    }

    /// True while some protocol is congested.
    pub fn is_congested(&self) -> bool {
        self.congested.load(Ordering::Acquire) > 0
    }

    /// Whether `protocol` is congested.
    pub fn is_protocol_congested(&self, protocol: usize) -> bool {
        self.protocols
            .get(protocol)
            .is_some_and(|flag| flag.load(Ordering::Acquire))
    }

    /// Waits until no protocol is congested (true) or `deadline` passes (false).
    pub fn wait_relieved(&self, deadline: Instant) -> bool {
        let mut guard = self.relieved_lock.lock();
        while self.is_congested() {
            if self.relieved.wait_until(&mut guard, deadline).timed_out() {
                return !self.is_congested();
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn congestion_is_counted_per_protocol_and_edges_only() {
        let pressure = Pressure::new(2);
        assert!(!pressure.is_congested());
        pressure.set(0, true);
        pressure.set(0, true);
        pressure.set(1, true);
        pressure.set(7, true);
        assert!(pressure.is_congested());
        pressure.set(0, false);
        assert!(pressure.is_congested(), "protocol 1 still is");
        assert!(pressure.is_protocol_congested(1));
        pressure.set(1, false);
        pressure.set(1, false);
        assert!(!pressure.is_congested());
    }

    #[test]
    fn waiters_wake_when_the_last_protocol_is_relieved() {
        let pressure = Arc::new(Pressure::new(1));
        pressure.set(0, true);
        assert!(!pressure.wait_relieved(Instant::now() + Duration::from_millis(20)));
        let reliever = {
            let pressure = Arc::clone(&pressure);
            std::thread::spawn(move || pressure.set(0, false))
        };
        assert!(pressure.wait_relieved(Instant::now() + Duration::from_secs(30)));
        reliever.join().unwrap();
    }
}
