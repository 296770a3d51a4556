//! Group commit: concurrent writers share one durable commit.
//!
//! A writer queues its item. If no commit is running it becomes the leader: it takes every queued
//! item (its own and those that arrived meanwhile), commits them in one transaction, posts each
//! result and wakes everyone. Writers that queued during that commit find no leader when woken,
//! so one of them leads the next group. Nobody returns before the commit holding its item is
//! durable.
//!
//! Invariant: `leader_active` is true exactly while one thread runs `commit` outside the lock.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Condvar, Mutex, MutexGuard};

use crate::error::{Result, StorageError};

struct State<T, R> {
    /// Items waiting for the next group, with their tickets.
    queue: Vec<(u64, T)>,
    leader_active: bool,
    /// Results not yet collected by their writers.
    done: HashMap<u64, Result<R>>,
    next_ticket: u64,
}

pub(crate) struct GroupCommit<T, R> {
    state: Mutex<State<T, R>>,
    wake: Condvar,
}

impl<T, R> GroupCommit<T, R> {
    pub(crate) fn new() -> Self {
        GroupCommit {
            state: Mutex::new(State {
                queue: Vec::new(),
                leader_active: false,
                done: HashMap::new(),
                next_ticket: 0,
            }),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T, R>> {
        // A panic while holding this lock cannot leave it inconsistent: every critical section
        // is a few moves; `commit` runs outside it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `item` and returns its result once the group that holds it has committed.
    /// `commit` gets a group's items in arrival order and returns one result per item (or one
    /// error for the whole group).
    pub(crate) fn submit(
        &self,
        item: T,
        commit: &dyn Fn(Vec<T>) -> Result<Vec<Result<R>>>,
    ) -> Result<R> {
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.queue.push((ticket, item));
        loop {
            if let Some(result) = state.done.remove(&ticket) {
                return result;
            }
            if !state.leader_active {
                state.leader_active = true;
                let group = std::mem::take(&mut state.queue);
                drop(state);
                let (tickets, items): (Vec<u64>, Vec<T>) = group.into_iter().unzip();
                let n = items.len();
                let results: Vec<Option<Result<R>>> =
                    match catch_unwind(AssertUnwindSafe(|| commit(items))) {
                        Ok(Ok(results)) if results.len() == n => {
                            results.into_iter().map(Some).collect()
                        }
                        Ok(Err(error)) => (0..n).map(|_| Some(Err(error.clone()))).collect(),
                        // A panic, or a result count that does not match: fail the whole group.
                        _ => (0..n).map(|_| None).collect(),
                    };
                state = self.lock();
                for (ticket, result) in tickets.into_iter().zip(results) {
                    let result = result.unwrap_or_else(|| {
                        Err(StorageError::Store {
                            message:
                                "the commit failed unexpectedly (panic); nothing was acknowledged"
                                    .into(),
                        })
                    });
                    state.done.insert(ticket, result);
                }
                state.leader_active = false;
                self.wake.notify_all();
                continue;
            }
            state = self
                .wake
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
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
}
