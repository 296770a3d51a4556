//! Where requests run when not on the calling plugin's thread: bounded pools of host threads.
//!
//! Two pools, one type: the API workers (one per core) run in-memory actions that could not run
//! inline; the blocking pool (many threads, `server.blockingThreads`) runs the actions declared
//! `Blocking` — disk, password hashing, network. Each has a bounded queue: a job that does not
//! fit is handed back to the caller, which answers `api.process.overloaded`; no plugin thread
//! ever waits for room.
//!
//! A job that panics is caught here: the thread survives, and the job's responder (dropped
//! while unwinding) still answers its request.

use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Proof that the current code runs on the blocking pool: only this module makes one, on a
/// blocking-pool thread, and lends it to the job; it cannot be copied or sent to another thread.
/// So a `BlockingContext` (which borrows one) cannot exist on a plugin's thread.
#[derive(Debug)]
pub struct OnBlockingPool(PhantomData<*const ()>);

/// A bounded queue served by a fixed set of threads.
pub struct Pool<J> {
    /// Thread names are `<name>-<n>`.
    name: &'static str,
    sender: flume::Sender<J>,
    receiver: flume::Receiver<J>,
    /// Jobs waiting (the channel's own length takes its lock); shared with the threads.
    queued: Arc<AtomicUsize>,
}

impl<J> std::fmt::Debug for Pool<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.name)
            .field("queued", &self.queued.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Whether jobs of a pool may use blocking services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    /// In-memory work only (the API workers).
    Compute,
    /// May block: its jobs receive an [`OnBlockingPool`].
    Blocking,
}

impl<J: Send + 'static> Pool<J> {
    /// A pool whose queue holds up to `capacity` jobs; no thread runs until [`Pool::start`].
    pub fn new(name: &'static str, capacity: usize) -> Pool<J> {
        let (sender, receiver) = flume::bounded(capacity);
        Pool {
            name,
            sender,
            receiver,
            queued: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Starts `threads` threads, each running `run` on one job at a time. `run` gets an
    /// [`OnBlockingPool`] only when `kind` is [`PoolKind::Blocking`]. The threads end when the
    /// pool is dropped and its queue is empty.
    pub fn start(
        &self,
        threads: usize,
        kind: PoolKind,
        run: impl Fn(J, Option<&OnBlockingPool>) + Send + Sync + 'static,
    ) -> std::io::Result<()> {
        let run = Arc::new(run);
        for number in 0..threads {
            let receiver = self.receiver.clone();
            let queued = Arc::clone(&self.queued);
            let run = Arc::clone(&run);
            std::thread::Builder::new()
                .name(format!("{}-{number}", self.name))
                .spawn(move || {
                    let token = OnBlockingPool(PhantomData);
                    let on_pool = (kind == PoolKind::Blocking).then_some(&token);
                    while let Ok(job) = receiver.recv() {
                        queued.fetch_sub(1, Ordering::AcqRel);
                        // A panic is the job's bug, not the pool's: the job's own values (its
                        // responder) clean up while unwinding, and the thread goes on.
                        let _ = catch_unwind(AssertUnwindSafe(|| run(job, on_pool)));
                    }
                })?;
        }
        Ok(())
    }

    /// Queues a job, or hands it back when the queue is full.
    pub fn submit(&self, job: J) -> Result<(), J> {
        self.queued.fetch_add(1, Ordering::AcqRel);
        self.sender.try_send(job).map_err(|error| {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            error.into_inner()
        })
    }

    /// Jobs waiting for a thread.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_full_queue_hands_the_job_back() {
        let pool: Pool<u32> = Pool::new("test", 1);
        assert_eq!(pool.submit(1), Ok(()));
        assert_eq!(pool.submit(2), Err(2));
        assert_eq!(pool.queued(), 1);
    }

    #[test]
    fn a_panicking_job_does_not_stop_its_thread() {
        let pool: Arc<Pool<u32>> = Arc::new(Pool::new("test", 8));
        let (done, results) = mpsc::channel();
        pool.start(1, PoolKind::Blocking, move |job, on_pool| {
            assert!(on_pool.is_some());
            if job == 0 {
                panic!("job 0 panics on purpose");
            }
            done.send(job).unwrap();
        })
        .unwrap();
        pool.submit(0).unwrap();
        pool.submit(1).unwrap();
        assert_eq!(results.recv_timeout(Duration::from_secs(10)), Ok(1));
    }
}
