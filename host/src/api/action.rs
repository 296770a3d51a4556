//! What a controller declares: its actions, their argument rules, their HTTP routes and where
//! each runs — and what an action receives.
//!
//! Where an action runs is part of its type. [`Run::Inline`] handlers get a [`Context`]: the
//! in-memory services only, so they may run on the calling plugin's thread. [`Run::Blocking`]
//! handlers get a [`BlockingContext`], which only the blocking pool can make
//! (`execution::OnBlockingPool`): an action that may block can never run on a plugin thread,
//! and an inline action can never reach a service that blocks. [`Run::Weighed`] handlers are
//! inline ones whose cost depends on the request (`realtime:subscribe`'s filter): a request
//! its `weigh` finds heavy runs on the blocking pool instead of the plugin's thread.
//! [`Run::Cached`] actions first try an inline handler that answers from memory only
//! (`document:get` from the store's document cache) and go to the blocking pool when it
//! cannot answer. [`Run::Staged`] actions (`document:create`) prepare their write in memory
//! where they are dispatched and hand it to the store's log thread, which answers them once it
//! is durable (`Storage::write_deferred`): no blocking-pool thread waits for the disk; when the
//! store cannot take it (`Staged::Pool`), the blocking handler runs on the pool instead.

use serde_json::Value;
use switchyard_plugin_api::errors::{self, KuzzleError};
use switchyard_plugin_api::ConnectionId;
use switchyard_storage::{Outcome, Result as StorageResult, WriteBatch};

use super::request::Request;
use super::router::Router;
use crate::execution::OnBlockingPool;
use crate::security::Identity;
use crate::services::Services;

/// Actions that fan out notifications: while a protocol reports its subscribers' queues past
/// their high-water mark (`pressure.rs`), they wait in the pacing queue instead of running, so
/// that a burst slows its publisher rather than overflowing its subscribers.
pub const FAN_OUT: &[(&str, &str)] = &[
    ("realtime", "publish"),
    ("document", "create"),
    ("document", "createOrReplace"),
    ("document", "replace"),
    ("document", "update"),
    ("document", "upsert"),
    ("document", "delete"),
    ("document", "mCreate"),
    ("document", "mCreateOrReplace"),
    ("document", "mReplace"),
    ("document", "mUpdate"),
    ("document", "mUpsert"),
    ("document", "mDelete"),
    ("document", "deleteByQuery"),
    ("document", "updateByQuery"),
    ("document", "deleteFields"),
];

/// What an action returns: a result or a Kuzzle error.
pub type ActionResult = Result<Output, KuzzleError>;

/// An action's `result`.
#[derive(Debug)]
pub enum Output {
    /// Any JSON value.
    Value(Value),
    /// `{"<key>": <number>}`, written without building a map (`server:now`).
    Number(&'static str, u64),
    /// JSON text, written as is: an answer copied out of the store without parsing it
    /// (`document:get`). The action vouches that it is one valid JSON value.
    Json(String),
}

impl From<Value> for Output {
    fn from(value: Value) -> Output {
        Output::Value(value)
    }
}

/// A handler that may run on a plugin's thread: in memory and short.
pub type InlineHandler = fn(&Context<'_>, &mut Request<'_>) -> ActionResult;

/// A handler that may block (disk, hashing, network): runs on the blocking pool only.
pub type BlockingHandler = fn(&BlockingContext<'_>, &mut Request<'_>) -> ActionResult;

/// An inline attempt at a blocking action: `Some` when it could answer from memory alone,
/// `None` (leaving the request as it found it) when the blocking handler must run.
pub type InMemoryHandler = fn(&Context<'_>, &mut Request<'_>) -> Option<ActionResult>;

/// What a [`Run::Staged`] action's in-memory handler decided.
pub enum Staged {
    /// It answered without writing (a refused argument, a document refused before the store).
    Answer(ActionResult),
    /// Its write, for the store's log thread.
    Write(StagedWrite),
    /// It cannot prepare its write in memory: the blocking handler must run, on the blocking
    /// pool. The request is left as it was found.
    Pool,
}

/// What turns a staged write's result into the action's result (and its notifications); it
/// runs where the store answers the write, so it must not block.
pub type Finish = Box<
    dyn FnOnce(&Context<'_>, &mut Request<'_>, StorageResult<Vec<Outcome>>) -> ActionResult + Send,
>;

/// A write prepared in memory: the batch, and what to do with its result.
pub struct StagedWrite {
    /// What the store writes.
    pub batch: WriteBatch,
    /// Called with the store's result once the batch is durable (or failed).
    pub finish: Finish,
}

impl std::fmt::Debug for Staged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Staged::Answer(result) => f.debug_tuple("Answer").field(result).finish(),
            Staged::Write(write) => f.debug_tuple("Write").field(&write.batch).finish(),
            Staged::Pool => f.write_str("Pool"),
        }
    }
}

/// Prepares a write in memory, on the thread that dispatched the request (no disk).
pub type StageHandler = fn(&Context<'_>, &mut Request<'_>) -> Staged;

/// Says whether a request is too heavy for a network thread (its cost past a small budget);
/// it must itself be cheap (a look at the request, no work).
pub type Weigh = fn(&Request<'_>) -> bool;

/// Where an action runs, with its handler.
#[derive(Clone, Copy)]
pub enum Run {
    /// On the calling plugin's thread when admitted there, else on an API worker.
    Inline(InlineHandler),
    /// On the blocking pool, always.
    Blocking(BlockingHandler),
    /// As `Inline`, but on the blocking pool when `Weigh` finds the request heavy (it is
    /// still in memory: only the thread changes).
    Weighed(InlineHandler, Weigh),
    /// The in-memory handler where the request is dispatched; when it cannot answer, the
    /// blocking handler on the blocking pool.
    Cached(InMemoryHandler, BlockingHandler),
    /// The staging handler where the request is dispatched, its write answered by the store's
    /// log thread; the blocking handler on the blocking pool when the write cannot be staged.
    Staged(StageHandler, BlockingHandler),
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Run::Inline(_) => "Inline",
            Run::Blocking(_) => "Blocking",
            Run::Weighed(..) => "Weighed",
            Run::Cached(..) => "Cached",
            Run::Staged(..) => "Staged",
        })
    }
}

/// The arguments an action requires, checked before it runs, in Kuzzle's order (`index`,
/// `collection`, then `body`), with Kuzzle's errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Args {
    /// `index` is required.
    pub index: bool,
    /// `collection` is required.
    pub collection: bool,
    /// `body` is required.
    pub body: bool,
}

impl Args {
    /// Nothing required.
    pub const NONE: Args = Args {
        index: false,
        collection: false,
        body: false,
    };
    /// `index` and `collection`.
    pub const INDEX_COLLECTION: Args = Args {
        index: true,
        collection: true,
        body: false,
    };
    /// `index`, `collection` and `body`.
    pub const INDEX_COLLECTION_BODY: Args = Args {
        index: true,
        collection: true,
        body: true,
    };
    /// `body`.
    pub const BODY: Args = Args {
        index: false,
        collection: false,
        body: true,
    };

    /// The first missing argument's error, if any.
    pub fn check(&self, request: &Request<'_>) -> Result<(), KuzzleError> {
        if self.index && request.index.is_none() {
            return Err(errors::API_ASSERT_MISSING_ARGUMENT.with(&["index"]));
        }
        if self.collection && request.collection.is_none() {
            return Err(errors::API_ASSERT_MISSING_ARGUMENT.with(&["collection"]));
        }
        if self.body && request.body.is_none() {
            return Err(errors::API_ASSERT_BODY_REQUIRED.error());
        }
        Ok(())
    }
}

/// One API action.
#[derive(Debug, Clone, Copy)]
pub struct Action {
    /// Its name (`now`).
    pub name: &'static str,
    /// `(verb, path)` pairs: Kuzzle's REST routes for it (the HTTP plugin's table).
    pub http: &'static [(&'static str, &'static str)],
    /// The arguments it requires.
    pub args: Args,
    /// Where it runs, and its handler.
    pub run: Run,
}

/// A controller: a name and its actions. Each lives in `api/controllers/<name>.rs`.
#[derive(Debug)]
pub struct Controller {
    /// Its name (`server`).
    pub name: &'static str,
    /// Its actions.
    pub actions: &'static [Action],
}

/// Who calls: the connection, its protocol, and the identity the gate gave the request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The connection the request came from.
    pub connection: ConnectionId,
    /// Its protocol's index.
    pub protocol: usize,
    /// Who the request runs as.
    pub identity: Identity,
}

/// What an inline action can look at.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The in-memory services.
    pub services: &'a Services,
    /// The API's controllers (for `server:info` and `server:publicApi`).
    pub router: &'a Router,
    /// Who calls.
    pub caller: &'a Caller,
}

impl Context<'_> {
    /// The name of the protocol the request came through (`websocket`).
    pub fn protocol_name(&self) -> &str {
        self.services.protocols.name(self.caller.protocol)
    }
}

/// What a blocking action can look at: everything an inline one can, and (as they land) the
/// services that block. It borrows the blocking pool's proof, so it exists only there.
#[derive(Debug, Clone, Copy)]
pub struct BlockingContext<'a> {
    /// The in-memory part.
    pub context: Context<'a>,
    /// Proof that this runs on the blocking pool.
    on_pool: &'a OnBlockingPool,
}

impl<'a> BlockingContext<'a> {
    /// A context for a handler running on the blocking pool.
    pub fn new(context: Context<'a>, on_pool: &'a OnBlockingPool) -> BlockingContext<'a> {
        BlockingContext { context, on_pool }
    }

    /// The document store (its calls may block: this context only exists on the blocking
    /// pool).
    pub fn storage(&self) -> &'a dyn switchyard_storage::Storage {
        self.context.services.storage(self.on_pool)
    }
}

impl<'a> std::ops::Deref for BlockingContext<'a> {
    type Target = Context<'a>;

    fn deref(&self) -> &Context<'a> {
        &self.context
    }
}
