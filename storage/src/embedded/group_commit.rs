//! Group commit: concurrent writers share one durable commit.
//!
//! A writer queues its item. If no commit is running it becomes the leader: it takes every queued
//! item (its own and those that arrived meanwhile), commits them in one transaction, hands each
//! waiter its result and wakes exactly that waiter. If items queued during the commit, the
//! leader then hands the lead to the oldest of their writers, who commits the next group.
//! Nobody returns before the commit holding its item is durable.
//!
//! Wake-ups are per writer (`Thread::unpark`), not a broadcast: with 32 writers waiting, a
//! condition variable's `notify_all` woke all of them for every commit, and most went back to
//! sleep — a third of a durable create's CPU was those futex round trips.
//!
//! Invariant: `leader_active` is true exactly while one thread runs `commit` outside the lock,
//! or has been handed the lead and not yet taken the queue.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::Thread;

use crate::error::{Result, StorageError};

/// What a waiting writer is told.
enum Signal<R> {
    /// Its item's commit ended: its result.
    Done(Result<R>),
    /// Its item is still queued and no commit runs: it leads the next group.
    Lead,
}

/// Where one writer waits.
struct Waiter<R> {
    thread: Thread,
    signal: Mutex<Option<Signal<R>>>,
}

impl<R> Waiter<R> {
    fn new() -> Arc<Waiter<R>> {
        Arc::new(Waiter {
            thread: std::thread::current(),
            signal: Mutex::new(None),
        })
    }

    fn post(&self, signal: Signal<R>) {
        *lock(&self.signal) = Some(signal);
        self.thread.unpark();
    }

    /// Parks until signalled (`park` may return spuriously: the loop checks).
    fn wait(&self) -> Signal<R> {
        loop {
            if let Some(signal) = lock(&self.signal).take() {
                return signal;
            }
            std::thread::park();
        }
    }
}

struct State<T, R> {
    /// Items waiting for the next group, with their writers.
    queue: Vec<(Arc<Waiter<R>>, T)>,
    leader_active: bool,
}

pub(crate) struct GroupCommit<T, R> {
    state: Mutex<State<T, R>>,
}

/// A panic while holding one of these locks cannot leave its data inconsistent: every critical
/// section is a few moves; `commit` runs outside them.
fn lock<S>(mutex: &Mutex<S>) -> MutexGuard<'_, S> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Commits a group: one result per item, in order. An error of the whole group, a panic, or a
/// result count that does not match fails every item of the group.
pub(crate) fn commit_guarded<T, R>(
    items: Vec<T>,
    commit: &dyn Fn(Vec<T>) -> Result<Vec<Result<R>>>,
) -> Vec<Result<R>> {
    let n = items.len();
    match catch_unwind(AssertUnwindSafe(|| commit(items))) {
        Ok(Ok(results)) if results.len() == n => results,
        Ok(Err(error)) => (0..n).map(|_| Err(error.clone())).collect(),
        _ => (0..n)
            .map(|_| {
                Err(StorageError::Store {
                    message: "the commit failed unexpectedly (panic); nothing was acknowledged"
                        .into(),
                })
            })
            .collect(),
    }
}

impl<T, R> GroupCommit<T, R> {
    pub(crate) fn new() -> Self {
        GroupCommit {
            state: Mutex::new(State {
                queue: Vec::new(),
                leader_active: false,
            }),
        }
    }

    /// Queues `item` and returns its result once the group that holds it has committed.
    /// `commit` gets a group's items in arrival order and returns one result per item (or one
    /// error for the whole group).
    pub(crate) fn submit(
        &self,
        item: T,
        commit: &dyn Fn(Vec<T>) -> Result<Vec<Result<R>>>,
    ) -> Result<R> {
        let waiter = Waiter::new();
        {
            let mut state = lock(&self.state);
            state.queue.push((Arc::clone(&waiter), item));
            if state.leader_active {
                drop(state);
                match waiter.wait() {
                    Signal::Done(result) => return result,
                    // `leader_active` stayed true for us.
                    Signal::Lead => {}
                }
            } else {
                state.leader_active = true;
            }
        }
        self.lead(&waiter, commit)
    }

    /// Commits every queued item (`waiter`'s among them), answers their writers, and hands the
    /// lead on if more queued meanwhile. Returns `waiter`'s result.
    fn lead(
        &self,
        waiter: &Arc<Waiter<R>>,
        commit: &dyn Fn(Vec<T>) -> Result<Vec<Result<R>>>,
    ) -> Result<R> {
        let group = std::mem::take(&mut lock(&self.state).queue);
        let (waiters, items): (Vec<Arc<Waiter<R>>>, Vec<T>) = group.into_iter().unzip();
        let results = commit_guarded(items, commit);
        let mut own = None;
        for (other, result) in waiters.into_iter().zip(results) {
            if Arc::ptr_eq(&other, waiter) {
                own = Some(result);
            } else {
                other.post(Signal::Done(result));
            }
        }
        {
            let mut state = lock(&self.state);
            match state.queue.first() {
                Some((next, _)) => next.post(Signal::Lead),
                None => state.leader_active = false,
            }
        }
        own.expect("the leader's item is in its group")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_item_gets_its_own_result_and_groups_form() {
        let group = GroupCommit::<u64, u64>::new();
        let commits = AtomicUsize::new(0);
        let commit = |items: Vec<u64>| -> Result<Vec<Result<u64>>> {
            commits.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(2));
            Ok(items.into_iter().map(|i| Ok(i * 10)).collect())
        };
        std::thread::scope(|scope| {
            for t in 0..16u64 {
                let group = &group;
                let commit = &commit;
                scope.spawn(move || {
                    for i in 0..20 {
                        let item = t * 1000 + i;
                        assert_eq!(group.submit(item, commit).unwrap(), item * 10);
                    }
                });
            }
        });
        assert!(
            commits.load(Ordering::SeqCst) < 16 * 20,
            "writers never shared a commit"
        );
    }

    #[test]
    fn a_panicking_commit_fails_its_group_and_the_next_group_still_commits() {
        let group = GroupCommit::<u64, u64>::new();
        let bad = |_: Vec<u64>| -> Result<Vec<Result<u64>>> { panic!("boom") };
        assert!(group.submit(1, &bad).is_err());
        let good = |items: Vec<u64>| -> Result<Vec<Result<u64>>> {
            Ok(items.into_iter().map(Ok).collect())
        };
        assert_eq!(group.submit(2, &good).unwrap(), 2);
    }

    /// Writers queued behind a failing or panicking group still get their turn: the lead is
    /// handed on whatever the commit did, and every writer returns.
    #[test]
    fn writers_queued_behind_a_failing_group_all_return() {
        let group = GroupCommit::<u64, u64>::new();
        let commits = AtomicUsize::new(0);
        let commit = |items: Vec<u64>| -> Result<Vec<Result<u64>>> {
            match commits.fetch_add(1, Ordering::SeqCst) % 3 {
                0 => Err(StorageError::store("disk full")),
                1 => panic!("the commit panics on purpose"),
                _ => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    Ok(items.into_iter().map(Ok).collect())
                }
            }
        };
        let answered = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for t in 0..12u64 {
                let (group, commit, answered) = (&group, &commit, &answered);
                scope.spawn(move || {
                    for i in 0..30 {
                        let item = t * 1000 + i;
                        if let Ok(result) = group.submit(item, commit) {
                            assert_eq!(result, item);
                        }
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(answered.load(Ordering::SeqCst), 12 * 30);
    }
}
