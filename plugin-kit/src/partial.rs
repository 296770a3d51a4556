//! The bytes of unfinished messages held by all of an instance's connections, against one total
//! (`maxTotalPartialBytes`, issue 19): each connection is capped by `maxRequestSize` and its idle
//! timer, but 500 connections each holding an unfinished 1 MB frame held 500 MB. Every protocol
//! counts what it holds: WebSocket frames, MQTT packets, HTTP bodies, Socket.io polling bodies
//! and WebSocket frames.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// `maxTotalPartialBytes` when the section does not say: well above what ordinary clients hold
/// (a few requests in flight each), well below the memory of a small server.
pub const DEFAULT_MAX_TOTAL_PARTIAL_BYTES: u64 = 256 << 20;

/// A connection holding at most this much is never refused: ordinary requests get through while
/// the total is reached, and only large unfinished messages are turned away.
pub const ALWAYS_ALLOWED: usize = 64 * 1024;

/// One instance's total.
#[derive(Debug)]
pub struct PartialBudget {
    /// `maxTotalPartialBytes`; `usize::MAX` for no limit.
    limit: usize,
    /// Sum of every claim's `held`.
    used: AtomicUsize,
}

/// The total was reached: the connection must refuse the message it is receiving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted;

/// The total a section's `maxTotalPartialBytes` asks for (absent: the default), in bytes.
pub fn configured(raw: Option<switchyard_plugin_api::config::Size>) -> usize {
    raw.map_or(DEFAULT_MAX_TOTAL_PARTIAL_BYTES, |size| size.0)
        .try_into()
        .unwrap_or(usize::MAX)
}

impl PartialBudget {
    /// A total of `limit` bytes; 0 means no limit.
    pub fn new(limit: usize) -> Arc<PartialBudget> {
        Arc::new(PartialBudget {
            limit: if limit == 0 { usize::MAX } else { limit },
            used: AtomicUsize::new(0),
        })
    }

    /// Bytes held by all connections now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// A claim for one connection, holding nothing yet.
    pub fn claim(self: &Arc<Self>) -> PartialClaim {
        PartialClaim {
            budget: self.clone(),
            held: 0,
        }
    }
}

/// What one connection holds; released when dropped.
#[derive(Debug)]
pub struct PartialClaim {
    budget: Arc<PartialBudget>,
    /// Bytes this connection counts in the total.
    held: usize,
}

impl PartialClaim {
    /// The connection now holds `bytes` of unfinished messages (its read buffer after the
    /// whole messages were taken out, plus a fragmented message's frames so far). Growing past
    /// the total is refused once the connection holds more than [`ALWAYS_ALLOWED`]; the claim
    /// then holds nothing: the caller abandons the unfinished message (every protocol closes
    /// the connection or drops the body), and what it held stops counting at once.
    pub fn hold(&mut self, bytes: usize) -> Result<(), Exhausted> {
        if bytes <= self.held {
            self.budget
                .used
                .fetch_sub(self.held - bytes, Ordering::Relaxed);
            self.held = bytes;
            return Ok(());
        }
        let growth = bytes - self.held;
        if bytes <= ALWAYS_ALLOWED {
            self.budget.used.fetch_add(growth, Ordering::Relaxed);
        } else {
            // Decided in one step, and a refusal gives back what the claim held in that same
            // step: two connections growing past the total at the same instant on two threads
            // are decided one after the other, and the one refused first no longer counts when
            // the other is decided (an add then a take-back, or a refusal that kept its bytes
            // until the connection closed, let each see the other's bytes and refuse both).
            let held = self.held;
            let limit = self.budget.limit;
            let mut refused = false;
            let decided =
                self.budget
                    .used
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                        refused = used.checked_add(growth).is_none_or(|total| total > limit);
                        Some(if refused { used - held } else { used + growth })
                    });
            debug_assert!(decided.is_ok());
            if refused {
                self.held = 0;
                return Err(Exhausted);
            }
        }
        self.held = bytes;
        Ok(())
    }
}

impl Drop for PartialClaim {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.held, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_count_against_one_total_and_small_ones_always_pass() {
        let budget = PartialBudget::new(200 * 1024);
        let mut first = budget.claim();
        let mut second = budget.claim();
        assert_eq!(first.hold(150 * 1024), Ok(()));
        assert_eq!(second.hold(40 * 1024), Ok(()));
        // Small: allowed past the total.
        assert_eq!(second.hold(ALWAYS_ALLOWED), Ok(()));
        assert_eq!(budget.used(), 150 * 1024 + ALWAYS_ALLOWED);
        // Large and past the total: refused, and what the claim held stops counting.
        assert_eq!(second.hold(100 * 1024), Err(Exhausted));
        assert_eq!(budget.used(), 150 * 1024);
        // Shrinking and dropping give bytes back.
        first.hold(10).unwrap();
        assert_eq!(second.hold(100 * 1024), Ok(()));
        drop(second);
        assert_eq!(budget.used(), 10);
        drop(first);
        assert_eq!(budget.used(), 0);
        let unlimited = PartialBudget::new(0);
        assert_eq!(unlimited.claim().hold(usize::MAX / 2), Ok(()));
    }

    #[test]
    fn two_claims_growing_at_once_past_the_total_keep_exactly_one() {
        // Both fit before growing, each fits alone after, both together do not: whatever the
        // interleaving on two threads, one is kept and one refused — never both refused (the
        // one refused first no longer counts when the other is decided), never both kept.
        let budget = PartialBudget::new(1_000_000);
        let start = std::sync::Barrier::new(2);
        for _ in 0..1_000 {
            let outcomes: Vec<Result<(), Exhausted>> = std::thread::scope(|scope| {
                let racers: Vec<_> = (0..2)
                    .map(|_| {
                        scope.spawn(|| {
                            let mut claim = budget.claim();
                            claim.hold(480_000).unwrap();
                            start.wait();
                            let outcome = claim.hold(544_000);
                            // Both have been decided before either connection goes away.
                            start.wait();
                            outcome
                        })
                    })
                    .collect();
                racers
                    .into_iter()
                    .map(|racer| racer.join().unwrap())
                    .collect()
            });
            let kept = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
            assert_eq!(kept, 1, "{outcomes:?}");
            assert_eq!(budget.used(), 0);
        }
    }
}
