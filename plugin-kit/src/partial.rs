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
    /// then keeps its previous value.
    pub fn hold(&mut self, bytes: usize) -> Result<(), Exhausted> {
        if bytes <= self.held {
            self.budget
                .used
                .fetch_sub(self.held - bytes, Ordering::Relaxed);
            self.held = bytes;
            return Ok(());
        }
        let growth = bytes - self.held;
        let total = self.budget.used.fetch_add(growth, Ordering::Relaxed) + growth;
        if total > self.budget.limit && bytes > ALWAYS_ALLOWED {
            self.budget.used.fetch_sub(growth, Ordering::Relaxed);
            return Err(Exhausted);
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
        // Large and past the total: refused, the claim unchanged.
        assert_eq!(second.hold(100 * 1024), Err(Exhausted));
        assert_eq!(budget.used(), 150 * 1024 + ALWAYS_ALLOWED);
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
}
