//! A small bounded pool of synchronous PostgreSQL connections: at most `size` open, callers
//! wait (up to `acquire_timeout`) for one to come back, a connection found closed is dropped
//! and a new one opened on the next demand. No background thread: the pool only acts when
//! asked.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use postgres::{Client, Config, GenericClient, NoTls, Statement};

use super::{describe, redact_url};
use crate::error::{Result, StorageError};

/// Statements prepared on one connection, by their SQL: the hot ones (reads by id, the
/// write path) then take one round trip instead of two (parse, then execute).
#[derive(Default)]
pub(crate) struct Statements(HashMap<&'static str, Statement>);

impl Statements {
    /// `sql` prepared on this connection (through `client`: the connection or a transaction
    /// on it), once.
    pub(crate) fn get(
        &mut self,
        client: &mut impl GenericClient,
        sql: &'static str,
    ) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.0.get(sql) {
            return Ok(statement.clone());
        }
        let statement = client.prepare(sql)?;
        self.0.insert(sql, statement.clone());
        Ok(statement)
    }
}

/// A connection and its prepared statements.
struct Conn {
    client: Client,
    statements: Statements,
}

/// The pool's state behind its lock.
struct State {
    /// Connections open and not in use.
    idle: Vec<Conn>,
    /// Connections open (idle or lent), plus those being opened.
    open: usize,
}

pub(crate) struct Pool {
    /// Parsed from the URL, with a connect timeout when it had none.
    config: Config,
    /// The URL with its password replaced, for messages.
    redacted_url: String,
    size: usize,
    acquire_timeout: Duration,
    state: Mutex<State>,
    /// Signalled when a connection comes back or a slot frees up.
    returned: Condvar,
}

impl Pool {
    pub(crate) fn new(
        url: &str,
        size: usize,
        connect_timeout: Duration,
        acquire_timeout: Duration,
    ) -> Result<Pool> {
        let redacted_url = redact_url(url);
        let mut config: Config = url.parse().map_err(|error| {
            StorageError::store(format!(
                "invalid PostgreSQL URL {redacted_url}: {}",
                describe(&error)
            ))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(connect_timeout);
        }
        Ok(Pool {
            config,
            redacted_url,
            size: size.max(1),
            acquire_timeout,
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            returned: Condvar::new(),
        })
    }

    pub(crate) fn redacted_url(&self) -> &str {
        &self.redacted_url
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An idle connection, or a new one when fewer than `size` are open, or the next one
    /// returned. `fresh` skips idle connections (a retry after finding one closed).
    pub(crate) fn get(&self, fresh: bool) -> Result<Pooled<'_>> {
        let deadline = Instant::now() + self.acquire_timeout;
        let mut state = self.lock();
        loop {
            if !fresh {
                if let Some(client) = state.idle.pop() {
                    return Ok(Pooled {
                        pool: self,
                        client: Some(client),
                    });
                }
            } else if state.open >= self.size {
                // Make room: an idle connection may be stale too.
                if state.idle.pop().is_some() {
                    state.open -= 1;
                }
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                return match self.connect() {
                    Ok(client) => Ok(Pooled {
                        pool: self,
                        client: Some(Conn {
                            client,
                            statements: Statements::default(),
                        }),
                    }),
                    Err(error) => {
                        self.lock().open -= 1;
                        self.returned.notify_one();
                        Err(error)
                    }
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(StorageError::store(format!(
                    "all {} PostgreSQL connections (storage.poolSize) stayed busy for {} ms",
                    self.size,
                    self.acquire_timeout.as_millis()
                )));
            }
            state = self
                .returned
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn connect(&self) -> Result<Client> {
        let unreachable = |error: postgres::Error| {
            StorageError::store(format!(
                "cannot reach PostgreSQL at {}: {}",
                self.redacted_url,
                describe(&error)
            ))
        };
        let mut client = self.config.connect(NoTls).map_err(unreachable)?;
        // Acknowledge a write only once its commit is on disk, whatever the server's default.
        client
            .batch_execute("SET synchronous_commit TO on")
            .map_err(unreachable)?;
        Ok(client)
    }
}

/// A connection lent by the pool; it goes back when dropped (or is closed if it broke).
pub(crate) struct Pooled<'a> {
    pool: &'a Pool,
    client: Option<Conn>,
}

impl Pooled<'_> {
    /// The connection and its statement cache, borrowed apart (a transaction on the one
    /// prepares into the other).
    pub(crate) fn split(&mut self) -> (&mut Client, &mut Statements) {
        let conn = self.client.as_mut().expect("present until dropped");
        (&mut conn.client, &mut conn.statements)
    }
}

impl Deref for Pooled<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client.as_ref().expect("present until dropped").client
    }
}

impl DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client.as_mut().expect("present until dropped").client
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        let client = self.client.take().expect("present until dropped");
        if client.client.is_closed() {
            // Closed outside the lock: dropping a client shuts its connection down.
            drop(client);
            self.pool.lock().open -= 1;
        } else {
            self.pool.lock().idle.push(client);
        }
        self.pool.returned.notify_one();
    }
}
