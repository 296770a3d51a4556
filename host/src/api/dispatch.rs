//! One request, from its text to its answer: parse, find the action, check its arguments, ask
//! the gate who calls and whether they may, then run the handler — or, for an action declared
//! `Blocking`, hand back an owned request for the blocking pool.
//!
//! A handler that panics is caught here: the request is answered 500
//! (`core.fatal.unexpected_error`) and the panic is logged with `controller:action`.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use switchyard_plugin_api::errors;
use switchyard_plugin_api::ConnectionId;

use super::action::{ActionResult, BlockingContext, BlockingHandler, Caller, Context, Run};
use super::request::{Rejected, Request};
use super::response::{build, Answer};
use super::router::Router;
use crate::execution::OnBlockingPool;
use crate::security::Access;
use crate::services::Services;

/// What became of a request on the thread that dispatched it.
#[derive(Debug)]
pub enum Dispatched<'a> {
    /// It ran (or was refused): here is its answer.
    Answered(Answer<'a>),
    /// Its action may block: run it on the blocking pool.
    Blocking(Box<BlockingRequest>),
}

/// A checked request for a blocking action, owning everything it needs to move threads.
pub struct BlockingRequest {
    request: Request<'static>,
    caller: Caller,
    handler: BlockingHandler,
}

impl std::fmt::Debug for BlockingRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingRequest")
            .field("controller", &self.request.controller)
            .field("action", &self.request.action)
            .finish_non_exhaustive()
    }
}

impl BlockingRequest {
    /// Runs the action; only the blocking pool can call this (it needs `on_pool`).
    pub fn run(
        self,
        services: &Services,
        router: &Router,
        on_pool: &OnBlockingPool,
    ) -> Answer<'static> {
        let BlockingRequest {
            request,
            caller,
            handler,
        } = self;
        let context = BlockingContext::new(
            Context {
                services,
                router,
                caller: &caller,
            },
            on_pool,
        );
        invoke(request, |request| handler(&context, request))
    }

    /// The answer when the blocking pool cannot take it.
    pub fn refuse(self, error: errors::KuzzleError) -> Answer<'static> {
        build(self.request, Err(error))
    }
}

/// Parses and checks a request, then runs it here if its action is inline.
pub fn dispatch<'a>(
    services: &Services,
    router: &Router,
    connection: ConnectionId,
    text: &'a str,
) -> Dispatched<'a> {
    let request = match Request::parse(text) {
        Ok(request) => request,
        Err(rejected) => {
            let Rejected { request, error } = *rejected;
            return Dispatched::Answered(build(request, Err(error)));
        }
    };
    let refuse = |request, error| Dispatched::Answered(build(request, Err(error)));
    let Some(protocol) = services.connections.protocol_of(connection) else {
        return refuse(request, errors::API_PROCESS_CONNECTION_DROPPED.error());
    };
    let action = match router.find(&request.controller, &request.action) {
        Ok(action) => action,
        Err(error) => return refuse(request, error),
    };
    if let Err(error) = action.args.check(&request) {
        return refuse(request, error);
    }
    let access = Access {
        connection,
        protocol,
        controller: &request.controller,
        action: &request.action,
        index: request.index.as_deref(),
        collection: request.collection.as_deref(),
        jwt: request.jwt.as_deref(),
    };
    let identity = match services.gate.admit(&access) {
        Ok(identity) => identity,
        Err(error) => return refuse(request, error),
    };
    let caller = Caller {
        connection,
        protocol,
        identity,
    };
    match action.run {
        Run::Inline(handler) => {
            let context = Context {
                services,
                router,
                caller: &caller,
            };
            Dispatched::Answered(invoke(request, |request| handler(&context, request)))
        }
        Run::Blocking(handler) => Dispatched::Blocking(Box::new(BlockingRequest {
            request: request.into_owned(),
            caller,
            handler,
        })),
    }
}

/// Runs a handler, turning a panic into Kuzzle's 500.
fn invoke<'r>(
    mut request: Request<'r>,
    handler: impl FnOnce(&mut Request<'r>) -> ActionResult,
) -> Answer<'r> {
    let outcome = match catch_unwind(AssertUnwindSafe(|| handler(&mut request))) {
        Ok(outcome) => outcome,
        Err(panic) => {
            let message = panic_message(&*panic);
            tracing::error!(
                controller = %request.controller,
                action = %request.action,
                "action {}:{} panicked: {message}",
                request.controller,
                request.action
            );
            Err(errors::CORE_FATAL_UNEXPECTED_ERROR.with(&[message]))
        }
    };
    build(request, outcome)
}

/// A panic's message, when it has one.
pub fn panic_message(panic: &(dyn Any + Send)) -> &str {
    if let Some(message) = panic.downcast_ref::<&str>() {
        message
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message
    } else {
        "a panic without a message"
    }
}
