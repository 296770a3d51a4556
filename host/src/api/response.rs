//! Kuzzle's response `content`, written as text once: `{requestId, status, error, controller,
//! action, collection, index, volatile, headers, result}`.

use std::borrow::Cow;
use std::fmt::Write as _;

use switchyard_plugin_api::errors::KuzzleError;
use switchyard_plugin_api::json;

use super::action::{ActionResult, Output};
use super::request::Request;
use crate::metrics::Route;

/// A finished answer: status, request id, and the response `content` as JSON text.
#[derive(Debug, Clone)]
pub struct Answer<'a> {
    /// HTTP-like status.
    pub status: u16,
    /// The request's id (borrowed from the request's text when it could be).
    pub request_id: Cow<'a, str>,
    /// The response `content` object.
    pub content: String,
    /// Where it is counted (`metrics.rs`): set by dispatch once it knows.
    pub route: Route,
}

impl<'a> Answer<'a> {
    /// The answer to a request refused before it ran (overloaded, shutting down).
    pub fn refusal(request_json: &'a str, error: KuzzleError) -> Answer<'a> {
        let request = Request::parse_lenient(request_json);
        build(request, Err(error))
    }
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
        Ok(Output::Json(text)) => content.push_str(text),
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
        route: Route::UNKNOWN,
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
