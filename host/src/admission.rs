//! Admission and answers: which requests may start, how many are in flight, and the responder
//! that answers each admitted request exactly once.
//!
//! "Shutting down" and "in flight" are one atomic word, so admission and the start of a drain
//! are ordered: a request is either counted before the drain begins (and the drain waits for
//! it) or sees the drain and is refused. Nothing can slip in between.
//!
//! A [`Responder`] owns a plugin's callback and an admission [`Ticket`]. Answering consumes it;
//! dropping it unanswered (a bug, a panic unwinding through its owner) answers 500. Either way
//! the callback runs exactly once and the ticket is returned after it, so `in flight` counts
//! requests whose callback has not returned yet, and never leaks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};
use switchyard_plugin_api::errors;

use crate::api::{build, Answer, Request};
use crate::plugin::callback::Callback;

/// The top bit of the state: set once the drain began.
const DRAINING: usize = 1 << (usize::BITS - 1);

/// Requests in flight, and whether new ones are still admitted.
#[derive(Debug, Default)]
pub struct Admission {
    /// `DRAINING` | number of requests in flight.
    state: AtomicUsize,
    /// Held only to wait for, and announce, "nothing in flight".
    idle_lock: Mutex<()>,
    /// Notified when the last request in flight finishes during a drain.
    idle: Condvar,
}

/// One admitted request; returning it (dropping) ends its flight.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    /// Requests in flight when this one was admitted (itself excluded).
    pub in_flight_before: usize,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.release();
    }
}

impl Admission {
    /// Admits a request, unless the drain began.
    pub fn admit(self: &Arc<Self>) -> Option<Ticket> {
        let before = self.state.fetch_add(1, Ordering::AcqRel);
        let ticket = Ticket {
            admission: Arc::clone(self),
            in_flight_before: before & !DRAINING,
        };
        // Refused after counting: the ticket's drop undoes the count (and wakes the drain if
        // this was the last one), so the word never says "idle" while a request runs.
        (before & DRAINING == 0).then_some(ticket)
    }

    fn release(&self) {
        let before = self.state.fetch_sub(1, Ordering::AcqRel);
        if before == DRAINING | 1 {
            // Taking the lock orders this notification after the drain's check of the count.
            let _guard = self.idle_lock.lock();
            self.idle.notify_all();
        }
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.state.load(Ordering::Acquire) & !DRAINING
    }

    /// True once the drain began.
    pub fn is_draining(&self) -> bool {
        self.state.load(Ordering::Acquire) & DRAINING != 0
    }

    /// Stops admitting requests: every later `admit` is refused. Idempotent.
    pub fn close(&self) {
        self.state.fetch_or(DRAINING, Ordering::AcqRel);
    }

    /// Stops admitting requests, then waits until none is in flight or `deadline` passes.
    /// Returns how many are still in flight.
    pub fn drain(&self, deadline: Instant) -> usize {
        self.close();
        let mut guard = self.idle_lock.lock();
        while self.in_flight() > 0 {
            if self.idle.wait_until(&mut guard, deadline).timed_out() {
                break;
            }
        }
        self.in_flight()
    }
}

/// Answers one admitted request, exactly once.
#[derive(Debug)]
pub struct Responder {
    /// `None` once answered.
    callback: Option<Callback>,
    /// Dropped after the callback ran (fields drop after `Drop::drop`).
    _ticket: Ticket,
    /// When the request was admitted (its latency runs from here).
    admitted: Instant,
}

impl Responder {
    /// A responder for an admitted request.
    pub fn new(callback: Callback, ticket: Ticket) -> Responder {
        Responder {
            callback: Some(callback),
            _ticket: ticket,
            admitted: Instant::now(),
        }
    }

    /// Requests in flight when this one was admitted.
    pub fn in_flight_before(&self) -> usize {
        self._ticket.in_flight_before
    }

    /// Time since the request was admitted.
    pub fn elapsed(&self) -> std::time::Duration {
        self.admitted.elapsed()
    }

    /// Sends the answer.
    pub fn answer(mut self, answer: &Answer<'_>) {
        if let Some(callback) = self.callback.take() {
            callback.call(answer.status, &answer.request_id, &answer.content);
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let Some(callback) = self.callback.take() else {
            return;
        };
        tracing::error!("a request was dropped without an answer: answering 500");
        let error = errors::CORE_FATAL_UNEXPECTED_ERROR
            .with(&["the request was dropped without an answer"]);
        let answer = build(Request::default(), Err(error));
        callback.call(answer.status, &answer.request_id, &answer.content);
    }
}

/// Answers a request that was not admitted, with its id when it can be read.
pub fn refuse(request_json: &str, callback: Callback, error: errors::KuzzleError) {
    let answer = Answer::refusal(request_json, error);
    callback.call(answer.status, &answer.request_id, &answer.content);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_drain_refuses_new_requests_and_waits_for_those_in_flight() {
        let admission = Arc::new(Admission::default());
        let first = admission.admit().expect("admitted");
        assert_eq!(first.in_flight_before, 0);
        let second = admission.admit().expect("admitted");
        assert_eq!(second.in_flight_before, 1);
        drop(second);
        let releaser = std::thread::spawn(move || drop(first));
        let left = admission.drain(Instant::now() + Duration::from_secs(30));
        releaser.join().unwrap();
        assert_eq!(left, 0);
        assert!(admission.admit().is_none());
        assert_eq!(admission.in_flight(), 0);
    }

    #[test]
    fn admission_racing_a_drain_is_either_waited_for_or_refused() {
        // Threads admit requests while the drain begins. The drain may only return once no
        // admitted request is still running: a request that holds its ticket and sees that the
        // drain already returned slipped past it.
        use std::sync::atomic::AtomicBool;
        for _ in 0..20 {
            let admission = Arc::new(Admission::default());
            let drained = Arc::new(AtomicBool::new(false));
            let slipped = Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let (admission, drained) = (Arc::clone(&admission), Arc::clone(&drained));
                    let slipped = Arc::clone(&slipped);
                    std::thread::spawn(move || {
                        for _ in 0..2000 {
                            if let Some(ticket) = admission.admit() {
                                for _ in 0..50 {
                                    std::hint::spin_loop();
                                }
                                if drained.load(Ordering::SeqCst) {
                                    slipped.fetch_add(1, Ordering::SeqCst);
                                }
                                drop(ticket);
                            }
                        }
                    })
                })
                .collect();
            assert_eq!(admission.drain(Instant::now() + Duration::from_secs(30)), 0);
            drained.store(true, Ordering::SeqCst);
            assert!(admission.admit().is_none());
            for thread in threads {
                thread.join().unwrap();
            }
            assert_eq!(slipped.load(Ordering::SeqCst), 0);
            assert_eq!(admission.in_flight(), 0);
        }
    }

    #[test]
    fn a_responder_answers_exactly_once_even_when_dropped() {
        use std::ffi::c_void;
        use std::sync::atomic::AtomicU32;
        use switchyard_plugin_api::abi::{FfiCallback, FfiResponse};

        static CALLS: AtomicU32 = AtomicU32::new(0);
        static LAST_STATUS: AtomicU32 = AtomicU32::new(0);
        extern "C" fn record(_context: *mut c_void, response: FfiResponse<'_>) {
            CALLS.fetch_add(1, Ordering::SeqCst);
            LAST_STATUS.store(response.status.into(), Ordering::SeqCst);
        }
        let callback = || {
            Callback::Abi(FfiCallback {
                call: record,
                context: std::ptr::null_mut(),
            })
        };
        let admission = Arc::new(Admission::default());

        let responder = Responder::new(callback(), admission.admit().unwrap());
        let answer = build(Request::default(), Ok(serde_json::json!(1).into()));
        responder.answer(&answer);
        assert_eq!(CALLS.load(Ordering::SeqCst), 1);
        assert_eq!(LAST_STATUS.load(Ordering::SeqCst), 200);
        assert_eq!(admission.in_flight(), 0);

        let responder = Responder::new(callback(), admission.admit().unwrap());
        drop(responder);
        assert_eq!(CALLS.load(Ordering::SeqCst), 2);
        assert_eq!(LAST_STATUS.load(Ordering::SeqCst), 500);
        assert_eq!(admission.in_flight(), 0);
    }
}
