//! The API: parses Kuzzle requests, routes them to controllers, builds Kuzzle responses.
//!
//! A request is Kuzzle's JSON object `{controller, action, requestId, …}`; the answer is the
//! response `content` object, built as text once and handed to the protocol.

mod auth;
mod realtime;
mod request;
mod server;

use std::borrow::Cow;
use std::fmt::Write as _;

use serde_json::Value;
use switchyard_plugin_api::errors::{self, KuzzleError};
use switchyard_plugin_api::json;
use switchyard_plugin_api::ConnectionId;

use crate::entry_point::EntryPoint;
use request::Rejected;
pub use request::Request;

/// What a controller action returns: a result or a Kuzzle error.
pub type ActionResult = Result<Output, KuzzleError>;

/// An action's `result`.
#[derive(Debug)]
pub enum Output {
    /// Any JSON value.
    Value(Value),
    /// `{"<key>": <number>}`, written without building a map (`server:now`).
    Number(&'static str, u64),
}

impl From<Value> for Output {
    fn from(value: Value) -> Output {
        Output::Value(value)
    }
}

/// Everything an action can look at.
pub struct Context<'a> {
    /// The host's shared state.
    pub entry: &'a EntryPoint,
    /// The connection the request came from.
    pub connection: ConnectionId,
    /// Its protocol's index.
    pub protocol: usize,
}

impl Context<'_> {
    /// The name of the protocol the request came through (`websocket`).
    pub fn protocol_name(&self) -> &str {
        self.entry
            .protocols()
            .get(self.protocol)
            .map_or("", |protocol| protocol.name.as_str())
    }
}

/// One API action. It may take what it needs out of the request (`body`); the response is built
/// from what is left (`requestId`, `controller`, `action`, `index`, `collection`, `volatile`).
type Handler = fn(&Context<'_>, &mut Request<'_>) -> ActionResult;

/// An action the host serves, and its REST routes (for the HTTP protocol and `/_publicApi`).
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// Controller name.
    pub controller: &'static str,
    /// Action name.
    pub action: &'static str,
    /// `(verb, path)` pairs, Kuzzle's URLs.
    pub http: &'static [(&'static str, &'static str)],
    handler: Handler,
}

/// The route table: the one list of what the API serves.
const ROUTES: &[Route] = &[
    Route {
        controller: "auth",
        action: "checkToken",
        http: &[("POST", "/_checkToken")],
        handler: auth::check_token,
    },
    Route {
        controller: "realtime",
        action: "subscribe",
        http: &[],
        handler: realtime::subscribe,
    },
    Route {
        controller: "realtime",
        action: "join",
        http: &[],
        handler: realtime::join,
    },
    Route {
        controller: "realtime",
        action: "unsubscribe",
        http: &[],
        handler: realtime::unsubscribe,
    },
    Route {
        controller: "realtime",
        action: "count",
        http: &[],
        handler: realtime::count,
    },
    Route {
        controller: "realtime",
        action: "list",
        http: &[("GET", "/_listSubscriptions")],
        handler: realtime::list,
    },
    Route {
        controller: "realtime",
        action: "publish",
        http: &[("POST", "/:index/:collection/_publish")],
        handler: realtime::publish,
    },
    Route {
        controller: "server",
        action: "now",
        http: &[("GET", "/_now")],
        handler: server::now,
    },
    Route {
        controller: "server",
        action: "info",
        http: &[("GET", "/_serverInfo"), ("GET", "/")],
        handler: server::info,
    },
    Route {
        controller: "server",
        action: "healthCheck",
        http: &[("GET", "/_healthCheck")],
        handler: server::health_check,
    },
];

/// Controllers and actions.
#[derive(Debug)]
pub struct Api {
    routes: &'static [Route],
}

impl Default for Api {
    fn default() -> Self {
        Api::new()
    }
}

impl Api {
    /// The API with every built-in controller.
    pub fn new() -> Self {
        Api { routes: ROUTES }
    }

    /// Every action, in table order.
    pub fn routes(&self) -> &'static [Route] {
        self.routes
    }

    fn find(&self, controller: &str, action: &str) -> Result<&Route, KuzzleError> {
        let mut known_controller = false;
        for route in self.routes {
            if route.controller == controller {
                known_controller = true;
                if route.action == action {
                    return Ok(route);
                }
            }
        }
        Err(if known_controller {
            errors::API_PROCESS_ACTION_NOT_FOUND.with(&[controller, action])
        } else {
            errors::API_PROCESS_CONTROLLER_NOT_FOUND.with(&[controller])
        })
    }
}

/// A finished answer: status, request id, and the response `content` as JSON text.
#[derive(Debug, Clone)]
pub struct Answer<'a> {
    /// HTTP-like status.
    pub status: u16,
    /// The request's id (borrowed from the request's text when it could be).
    pub request_id: Cow<'a, str>,
    /// The response `content` object.
    pub content: String,
}

impl<'a> Answer<'a> {
    /// The answer to a request refused before it ran (overloaded, shutting down).
    pub fn refusal(request_json: &'a str, error: KuzzleError) -> Answer<'a> {
        let request = Request::parse_lenient(request_json);
        build(request, Err(error))
    }
}

/// Runs one request for `connection` (owned by protocol `protocol`, if it still exists).
pub fn handle<'a>(
    entry: &EntryPoint,
    connection: ConnectionId,
    protocol: Option<usize>,
    request_json: &'a str,
) -> Answer<'a> {
    let mut request = match Request::parse(request_json) {
        Ok(request) => request,
        Err(rejected) => {
            let Rejected { request, error } = *rejected;
            return build(request, Err(error));
        }
    };
    let Some(protocol) = protocol else {
        return build(request, Err(errors::API_PROCESS_CONNECTION_DROPPED.error()));
    };
    let outcome = entry
        .api
        .find(&request.controller, &request.action)
        .and_then(|route| {
            let context = Context {
                entry,
                connection,
                protocol,
            };
            (route.handler)(&context, &mut request)
        });
    build(request, outcome)
}

/// Builds Kuzzle's response `content`:
/// `{requestId, status, error, controller, action, collection, index, volatile, headers, result}`.
pub fn build(request: Request<'_>, outcome: ActionResult) -> Answer<'_> {
    let mut content = String::with_capacity(256);
    content.push_str("{\"requestId\":");
    json::push_str(&mut content, &request.request_id);
    let status = match &outcome {
        Ok(_) => {
            content.push_str(",\"status\":200,\"error\":null");
            200
        }
        Err(error) => {
            content.push_str(",\"status\":");
            json::push_u64(&mut content, error.status().into());
            content.push_str(",\"error\":");
            error.write_json(&mut content);
            error.status()
        }
    };
    let present = |text: &str| !text.is_empty();
    push_member(
        &mut content,
        ",\"controller\":",
        Some(&*request.controller).filter(|c| present(c)),
    );
    push_member(
        &mut content,
        ",\"action\":",
        Some(&*request.action).filter(|a| present(a)),
    );
    if request.collection.is_none() && request.index.is_none() {
        content.push_str(",\"collection\":null,\"index\":null");
    } else {
        push_member(
            &mut content,
            ",\"collection\":",
            request.collection.as_deref(),
        );
        push_member(&mut content, ",\"index\":", request.index.as_deref());
    }
    match &request.volatile {
        // Written in place: `Display` for a JSON value is its compact text.
        Some(volatile) => {
            let _ = write!(content, ",\"volatile\":{volatile}");
        }
        None => content.push_str(",\"volatile\":null"),
    }
    content.push_str(",\"headers\":{},\"result\":");
    match &outcome {
        Ok(Output::Value(result)) => {
            let _ = write!(content, "{result}");
        }
        Ok(Output::Number(key, number)) => {
            content.push('{');
            json::push_str(&mut content, key);
            content.push(':');
            json::push_u64(&mut content, *number);
            content.push('}');
        }
        Err(_) => content.push_str("null"),
    }
    content.push('}');
    Answer {
        status,
        request_id: request.request_id,
        content,
    }
}

/// `prefix` (`,"key":`) then `value` as a JSON string, or `null`.
fn push_member(out: &mut String, prefix: &str, value: Option<&str>) {
    out.push_str(prefix);
    match value {
        Some(value) => json::push_str(out, value),
        None => out.push_str("null"),
    }
}
