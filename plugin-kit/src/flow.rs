//! Flow control shared by every protocol (issue 13): the settings, and [`Pending`], the count
//! of a connection's requests awaiting their answers.
//!
//! End to end: a fan-out that pushes the protocol's queued bytes past `highWaterMark` makes
//! the protocol report congestion (`pressure.rs`); the host then holds the requests that fan
//! out until every protocol drained below `lowWaterMark`. A publisher's requests stay
//! unanswered meanwhile, so its connection soon has `maxPendingRequests` awaiting answers and
//! stops being read: TCP pushes back on the publisher instead of the server buffering its
//! burst. Reading resumes as answers come back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use switchyard_plugin_api::config::Size;
use switchyard_plugin_api::BoxError;
use tokio::sync::Notify;

use crate::pressure::{Marks, DEFAULT_HIGH_WATER_MARK, DEFAULT_LOW_WATER_MARK};

/// Default `slowConsumerTimeout`, in ms: writes making no progress for 4 s. A reader that keeps
/// reading never comes near it, however long a paced burst lasts: the timer only runs while the
/// kernel takes nothing at all. It is below the host's `pacingTimeout` (5 s) on purpose: a
/// stalled reader whose queue alone pushes its protocol past the high-water mark holds up every
/// publisher, and it must be closed before a paced publisher is refused with 503.
/// (nats-server's `write_deadline` is 10 s, but nats does not pace publishers on a
/// subscriber's behalf.)
pub const DEFAULT_SLOW_CONSUMER_TIMEOUT_MS: u64 = 4_000;
/// Default `maxPendingRequests`: requests of one connection awaiting answers before it stops
/// being read. Above what a client pipelining in order needs (the host answers in batches of
/// `concurrentRequests`, 50), small enough that a paced publisher is held by TCP, not memory.
pub const DEFAULT_MAX_PENDING_REQUESTS: usize = 64;

/// Flow-control settings of one protocol instance, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    /// High- and low-water marks and the protocol's total cap.
    pub marks: Marks,
    /// Per-connection hard cap on queued bytes, the last resort.
    pub max_queued_bytes: usize,
    /// Writes without progress for this long while frames are queued close the connection.
    pub slow_consumer_timeout: Duration,
    /// A connection stops being read while this many of its requests await answers.
    pub max_pending_requests: usize,
}

impl Default for Flow {
    fn default() -> Self {
        let marks = Marks::default();
        Flow {
            marks,
            max_queued_bytes: default_max_queued_bytes(marks.high),
            slow_consumer_timeout: Duration::from_millis(DEFAULT_SLOW_CONSUMER_TIMEOUT_MS),
            max_pending_requests: DEFAULT_MAX_PENDING_REQUESTS,
        }
    }
}

/// The default per-connection cap: twice the high-water mark (128 MB by default). A reader that
/// keeps up never reaches it: its queue is part of the protocol's total, which stops growing
/// soon after the high-water mark (the host holds new fan-outs at once; only those already
/// running land, at most `concurrentRequests` × `maxRequestSize` = 50 MB by default).
pub fn default_max_queued_bytes(high_water_mark: u64) -> usize {
    usize::try_from(high_water_mark.saturating_mul(2)).unwrap_or(usize::MAX)
}

/// The flow-control keys of a section, as written (each plugin's `RawConfig` holds them, as
/// `deny_unknown_fields` rules out `flatten`: `raw_section!`'s `@flow` declares them there, and
/// `RawSection::flow` collects them).
#[derive(Debug, Clone, Copy, Default)]
pub struct RawFlow {
    /// `highWaterMark`.
    pub high_water_mark: Option<Size>,
    /// `lowWaterMark`.
    pub low_water_mark: Option<Size>,
    /// `maxTotalQueuedBytes`.
    pub max_total_queued_bytes: Option<Size>,
    /// `maxQueuedBytes`.
    pub max_queued_bytes: Option<Size>,
    /// `slowConsumerTimeout`, ms.
    pub slow_consumer_timeout: Option<u64>,
    /// `maxPendingRequests`.
    pub max_pending_requests: Option<usize>,
}

impl Flow {
    /// Checks the keys; messages name `section.<key>`.
    pub fn validate(raw: RawFlow, section: &str) -> Result<Flow, BoxError> {
        let high = raw
            .high_water_mark
            .map_or(DEFAULT_HIGH_WATER_MARK, |size| size.0);
        let low = raw
            .low_water_mark
            .map_or(DEFAULT_LOW_WATER_MARK.min(high / 4), |size| size.0);
        let max_total = raw
            .max_total_queued_bytes
            .map_or(high.saturating_mul(4), |size| size.0);
        let max_queued = raw
            .max_queued_bytes
            .map_or(default_max_queued_bytes(high) as u64, |size| size.0);
        let timeout = raw
            .slow_consumer_timeout
            .unwrap_or(DEFAULT_SLOW_CONSUMER_TIMEOUT_MS);
        let pending = raw
            .max_pending_requests
            .unwrap_or(DEFAULT_MAX_PENDING_REQUESTS);
        crate::config::require_positive(high, section, "highWaterMark")?;
        if low >= high {
            return Err(format!(
                "{section}.lowWaterMark: must be below highWaterMark ({high} bytes)"
            )
            .into());
        }
        if max_total < high {
            return Err(format!(
                "{section}.maxTotalQueuedBytes: must be at least highWaterMark ({high} bytes)"
            )
            .into());
        }
        crate::config::require_positive(max_queued, section, "maxQueuedBytes")?;
        crate::config::require_positive(timeout, section, "slowConsumerTimeout")?;
        crate::config::require_positive(pending as u64, section, "maxPendingRequests")?;
        Ok(Flow {
            marks: Marks {
                high,
                low,
                max_total,
            },
            max_queued_bytes: usize::try_from(max_queued).unwrap_or(usize::MAX),
            slow_consumer_timeout: Duration::from_millis(timeout),
            max_pending_requests: pending,
        })
    }
}

/// One connection's requests awaiting their answers. The reader counts each request it hands
/// to the host (`started`) and stops reading while [`Pending::is_full`]; each answer counts
/// down (`answered`) and wakes the reader when room appears.
#[derive(Debug)]
pub struct Pending {
    count: AtomicUsize,
    max: usize,
    room: Notify,
}

impl Pending {
    /// No request pending; at most `max` before the reader pauses.
    pub fn new(max: usize) -> Pending {
        Pending {
            count: AtomicUsize::new(0),
            max: max.max(1),
            room: Notify::new(),
        }
    }

    /// A request was handed to the host.
    pub fn started(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    /// A request was answered.
    pub fn answered(&self) {
        if self.count.fetch_sub(1, Ordering::AcqRel) == self.max {
            // `Notify` keeps the permit if the reader is not waiting yet.
            self.room.notify_one();
        }
    }

    /// True while the reader must not hand the host more requests.
    pub fn is_full(&self) -> bool {
        self.count.load(Ordering::Acquire) >= self.max
    }

    /// Requests awaiting answers (tests, metrics).
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Waits until the reader may hand the host another request.
    pub async fn room(&self) {
        while self.is_full() {
            self.room.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(raw: RawFlow) -> Result<Flow, String> {
        Flow::validate(raw, "server.protocols.demo").map_err(|error| error.to_string())
    }

    #[test]
    fn defaults_and_checks() {
        let flow = validate(RawFlow::default()).unwrap();
        assert_eq!(flow, Flow::default());
        assert_eq!(flow.marks.high, 64 << 20);
        assert_eq!(flow.marks.low, 16 << 20);
        assert_eq!(flow.marks.max_total, 256 << 20);
        assert_eq!(flow.max_queued_bytes, 128 << 20);
        let small = validate(RawFlow {
            high_water_mark: Some(Size(1000)),
            ..RawFlow::default()
        })
        .unwrap();
        assert_eq!((small.marks.low, small.marks.max_total), (250, 4000));
        assert_eq!(small.max_queued_bytes, 2000);
        assert_eq!(
            validate(RawFlow {
                low_water_mark: Some(Size(64 << 20)),
                ..RawFlow::default()
            })
            .unwrap_err(),
            "server.protocols.demo.lowWaterMark: must be below highWaterMark (67108864 bytes)"
        );
        assert_eq!(
            validate(RawFlow {
                max_total_queued_bytes: Some(Size(1)),
                ..RawFlow::default()
            })
            .unwrap_err(),
            "server.protocols.demo.maxTotalQueuedBytes: must be at least highWaterMark (67108864 bytes)"
        );
        assert_eq!(
            validate(RawFlow {
                max_pending_requests: Some(0),
                ..RawFlow::default()
            })
            .unwrap_err(),
            "server.protocols.demo.maxPendingRequests: must be greater than 0"
        );
    }

    #[tokio::test]
    async fn the_reader_waits_for_room() {
        let pending = std::sync::Arc::new(Pending::new(2));
        pending.started();
        assert!(!pending.is_full());
        pending.started();
        assert!(pending.is_full());
        let answering = pending.clone();
        let thread = std::thread::spawn(move || answering.answered());
        tokio::time::timeout(Duration::from_secs(10), pending.room())
            .await
            .unwrap();
        thread.join().unwrap();
        assert_eq!(pending.count(), 1);
    }
}
