//! One request, from its text to its answer: parse, find the action, check its arguments, ask
//! the gate who calls and whether they may, then run the handler — or hand back an owned
//! request: for the blocking pool when the action is declared `Blocking` (or `Weighed` and the
//! request is heavy: a network thread must not spend long on one request), for the pacing queue
//! when the action fans out while a protocol reports congestion (`pressure.rs`). A `Cached`
//! action is tried in memory here first, and handed back for the blocking pool on a miss. A
//! `Staged` action is handed back too, and [`OwnedRequest::stage`] prepares its write where the
//! caller stands (`entry_point.rs` queues it to the store, whose log thread answers it).
//!
//! A handler that panics is caught here: the request is answered 500
//! (`core.fatal.unexpected_error`) and the panic is logged with `controller:action`.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use switchyard_plugin_api::errors;
use switchyard_plugin_api::ConnectionId;
use switchyard_storage::{Outcome, Result as StorageResult, WriteBatch};

use super::action::{ActionResult, BlockingContext, Caller, Context, Run, Staged, StagedWrite};
use super::request::{Rejected, Request};
use super::response::{build, Answer};
use super::router::Router;
use crate::execution::OnBlockingPool;
use crate::metrics::Route;
use crate::security::Access;
use crate::services::Services;

/// What became of a request on the thread that dispatched it.
#[derive(Debug)]
pub enum Dispatched<'a> {
    /// It ran (or was refused): here is its answer.
    Answered(Answer<'a>),
    /// Its action may block, or is too heavy for this thread: run it on the blocking pool.
    Blocking(Box<OwnedRequest>),
    /// Its action fans out and a protocol is congested: it waits for relief.
    Paced(Box<OwnedRequest>),
}

/// A checked request, owning everything it needs to move threads.
pub struct OwnedRequest {
    request: Request<'static>,
    caller: Caller,
    run: Run,
    route: Route,
}

impl std::fmt::Debug for OwnedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedRequest")
            .field("controller", &self.request.controller)
            .field("action", &self.request.action)
            .finish_non_exhaustive()
    }
}

impl OwnedRequest {
    /// True when its action must run on the blocking pool (a `Weighed` one is owned only
    /// when it was found heavy).
    pub fn is_blocking(&self) -> bool {
        matches!(
            self.run,
            Run::Blocking(_) | Run::Weighed(..) | Run::Cached(..) | Run::Staged(..)
        )
    }

    /// Runs an in-memory action here; a blocking one is handed back.
    pub fn run_inline(
        self: Box<Self>,
        services: &Services,
        router: &Router,
    ) -> Result<Answer<'static>, Box<Self>> {
        let Run::Inline(handler) = self.run else {
            return Err(self);
        };
        let context = Context {
            services,
            router,
            caller: &self.caller,
        };
        let answer = invoke(self.request, |request| handler(&context, request));
        Ok(routed(answer, self.route))
    }

    /// Runs the action, whatever its kind; only the blocking pool can call this (it needs
    /// `on_pool`).
    pub fn run(
        self,
        services: &Services,
        router: &Router,
        on_pool: &OnBlockingPool,
    ) -> Answer<'static> {
        let OwnedRequest {
            request,
            caller,
            run,
            route,
        } = self;
        let context = Context {
            services,
            router,
            caller: &caller,
        };
        let answer = match run {
            Run::Inline(handler) | Run::Weighed(handler, _) => {
                invoke(request, |request| handler(&context, request))
            }
            Run::Blocking(handler) | Run::Cached(_, handler) | Run::Staged(_, handler) => {
                let context = BlockingContext::new(context, on_pool);
                invoke(request, |request| handler(&context, request))
            }
        };
        routed(answer, route)
    }

    /// Prepares a `Staged` action's write here, in memory: its answer when it needs no write,
    /// or the write with what turns the store's result into the answer (called on the store's
    /// thread). The request comes back untouched when its action is not `Staged`, when the
    /// store cannot take a deferred write now, or when the action needs the blocking pool.
    pub fn stage(self: Box<Self>, services: &Arc<Services>, router: &Arc<Router>) -> Staging {
        let Run::Staged(stage, _) = self.run else {
            return Staging::Pool(self);
        };
        if !services.can_defer_writes() {
            return Staging::Pool(self);
        }
        let OwnedRequest {
            mut request,
            caller,
            run,
            route,
        } = *self;
        let context = Context {
            services,
            router,
            caller: &caller,
        };
        let staged = catch_unwind(AssertUnwindSafe(|| stage(&context, &mut request)));
        let write = match staged {
            Ok(Staged::Write(write)) => write,
            Ok(Staged::Answer(outcome)) => {
                return Staging::Answered(routed(build(request, outcome), route))
            }
            Ok(Staged::Pool) => {
                return Staging::Pool(Box::new(OwnedRequest {
                    request,
                    caller,
                    run,
                    route,
                }))
            }
            Err(panic) => {
                let outcome = Err(panicked(&request, &*panic));
                return Staging::Answered(routed(build(request, outcome), route));
            }
        };
        let StagedWrite { batch, finish } = write;
        let (services, router) = (Arc::clone(services), Arc::clone(router));
        let complete = move |result| {
            let context = Context {
                services: &services,
                router: &router,
                caller: &caller,
            };
            let answer = invoke(request, |request| finish(&context, request, result));
            routed(answer, route)
        };
        Staging::Write(batch, Box::new(complete))
    }

    /// The answer when it cannot run (a full queue, a pacing deadline passed).
    pub fn refuse(self, error: errors::KuzzleError) -> Answer<'static> {
        routed(build(self.request, Err(error)), self.route)
    }
}

/// What [`OwnedRequest::stage`] made of a request.
pub enum Staging {
    /// It runs on the blocking pool.
    Pool(Box<OwnedRequest>),
    /// Answered here.
    Answered(Answer<'static>),
    /// A write for the store (`Storage::write_deferred`), and what turns its result into the
    /// answer.
    Write(WriteBatch, Complete),
}

/// Turns a staged write's result into the request's answer.
pub type Complete = Box<dyn FnOnce(StorageResult<Vec<Outcome>>) -> Answer<'static> + Send>;

impl std::fmt::Debug for Staging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Staging::Pool(request) => f.debug_tuple("Pool").field(request).finish(),
            Staging::Answered(answer) => f.debug_tuple("Answered").field(answer).finish(),
            Staging::Write(batch, _) => f.debug_tuple("Write").field(batch).finish(),
        }
    }
}

/// Parses and checks a request, then runs it here if its action is inline.
pub fn dispatch<'a>(
    services: &Services,
    router: &Router,
    connection: ConnectionId,
    text: &'a str,
) -> Dispatched<'a> {
    let protocol = services.connections.protocol_of(connection);
    let mut route = Route {
        protocol: protocol.and_then(|p| u16::try_from(p).ok()),
        action: None,
    };
    let refuse =
        |request, error, route| Dispatched::Answered(routed(build(request, Err(error)), route));
    let request = match Request::parse(text) {
        Ok(request) => request,
        Err(rejected) => {
            let Rejected { request, error } = *rejected;
            return refuse(request, error, route);
        }
    };
    let Some(protocol) = protocol else {
        return refuse(
            request,
            errors::API_PROCESS_CONNECTION_DROPPED.error(),
            route,
        );
    };
    let (id, action) = match router.locate(&request.controller, &request.action) {
        Ok((id, action)) => {
            route.action = Some(id);
            (id, action)
        }
        Err(error) => return refuse(request, error, route),
    };
    if let Err(error) = action.args.check(&request) {
        return refuse(request, error, route);
    }
    // Internal indexes (`%kuzzle`: users, tokens, credentials) do not exist for the API,
    // whatever the action: one check here rather than one per controller.
    if let Some(index) = request
        .index
        .as_deref()
        .filter(|index| index.starts_with('%'))
    {
        let error = errors::SERVICES_STORAGE_UNKNOWN_INDEX.with(&[index]);
        return refuse(request, error, route);
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
        Err(error) => return refuse(request, error, route),
    };
    let caller = Caller {
        connection,
        protocol,
        identity,
    };
    let owned = |mut request: Request<'_>, caller: Caller| {
        // The gate has read the token; from here on the caller's identity holds it (shared),
        // so the request handed to another thread does not copy its text (~230 bytes).
        request.jwt = None;
        Box::new(OwnedRequest {
            request: request.into_owned(),
            caller,
            run: action.run,
            route,
        })
    };
    if router.fans_out(id) && services.pressure.is_congested() {
        return Dispatched::Paced(owned(request, caller));
    }
    match action.run {
        Run::Weighed(_, weigh) if weigh(&request) => Dispatched::Blocking(owned(request, caller)),
        Run::Inline(handler) | Run::Weighed(handler, _) => {
            let context = Context {
                services,
                router,
                caller: &caller,
            };
            let answer = invoke(request, |request| handler(&context, request));
            Dispatched::Answered(routed(answer, route))
        }
        Run::Blocking(_) | Run::Staged(..) => Dispatched::Blocking(owned(request, caller)),
        Run::Cached(in_memory, _) => {
            let context = Context {
                services,
                router,
                caller: &caller,
            };
            let mut request = request;
            match catch_unwind(AssertUnwindSafe(|| in_memory(&context, &mut request))) {
                Ok(Some(outcome)) => Dispatched::Answered(routed(build(request, outcome), route)),
                Ok(None) => Dispatched::Blocking(owned(request, caller)),
                // The blocking handler runs it again and answers (or panics and gets the 500).
                Err(_) => Dispatched::Blocking(owned(request, caller)),
            }
        }
    }
}

/// `answer`, counted under `route`.
fn routed(mut answer: Answer<'_>, route: Route) -> Answer<'_> {
    answer.route = route;
    answer
}

/// Runs a handler, turning a panic into Kuzzle's 500.
fn invoke<'r>(
    mut request: Request<'r>,
    handler: impl FnOnce(&mut Request<'r>) -> ActionResult,
) -> Answer<'r> {
    let outcome = match catch_unwind(AssertUnwindSafe(|| handler(&mut request))) {
        Ok(outcome) => outcome,
        Err(panic) => Err(panicked(&request, &*panic)),
    };
    build(request, outcome)
}

/// Logs a handler's panic with `controller:action`; Kuzzle's 500.
fn panicked(request: &Request<'_>, panic: &(dyn Any + Send)) -> errors::KuzzleError {
    let message = panic_message(panic);
    tracing::error!(
        controller = %request.controller,
        action = %request.action,
        "action {}:{} panicked: {message}",
        request.controller,
        request.action
    );
    errors::CORE_FATAL_UNEXPECTED_ERROR.with(&[message])
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
