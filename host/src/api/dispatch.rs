//! One request, from its text to its answer: parse, find the action, check its arguments, ask
//! the gate who calls and whether they may, then run the handler — or hand back an owned
//! request: for the blocking pool when the action is declared `Blocking` (or `Weighed` and the
//! request is heavy: a network thread must not spend long on one request), for the pacing queue
//! when the action fans out while a protocol reports congestion (`pressure.rs`). A `Cached`
//! action is tried in memory here first, and handed back for the blocking pool on a miss.
//!
//! A handler that panics is caught here: the request is answered 500
//! (`core.fatal.unexpected_error`) and the panic is logged with `controller:action`.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use switchyard_plugin_api::errors;
use switchyard_plugin_api::ConnectionId;

use super::action::{ActionResult, BlockingContext, Caller, Context, Run};
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
            Run::Blocking(_) | Run::Weighed(..) | Run::Cached(..)
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
            Run::Blocking(handler) | Run::Cached(_, handler) => {
                let context = BlockingContext::new(context, on_pool);
                invoke(request, |request| handler(&context, request))
            }
        };
        routed(answer, route)
    }

    /// The answer when it cannot run (a full queue, a pacing deadline passed).
    pub fn refuse(self, error: errors::KuzzleError) -> Answer<'static> {
        routed(build(self.request, Err(error)), self.route)
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
        Run::Blocking(_) => Dispatched::Blocking(owned(request, caller)),
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
