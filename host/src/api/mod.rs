//! The API: parses Kuzzle requests, routes them to controllers, builds Kuzzle responses.
//!
//! A request is Kuzzle's JSON object `{controller, action, requestId, …}`; the answer is the
//! response `content` object, built as text once and handed to the protocol.
//!
//! - `action.rs`: what a controller declares (actions, argument rules, routes, where each runs)
//!   and what an action receives;
//! - `controllers/`: one file per controller;
//! - `router.rs`: the controllers assembled into one lookup and one API description;
//! - `dispatch.rs`: one request from text to answer, with the gate's check before any action;
//! - `request.rs` / `response.rs`: Kuzzle's request and response formats;
//! - `documents.rs`: what the storage controllers share (errors, arguments, `_kuzzle_info`);
//! - `notify.rs`: document notifications, with the rooms kept in each document's `meta`.

pub mod action;
pub mod controllers;
pub mod dispatch;
pub mod documents;
pub mod notify;
pub mod request;
pub mod response;
pub mod router;
#[cfg(test)]
pub(crate) mod testing;

pub use action::{Action, ActionResult, Controller, Output};
pub use request::Request;
pub use response::{build, Answer};
pub use router::Router;
