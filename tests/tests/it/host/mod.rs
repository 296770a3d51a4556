//! The host: start-up refusals, the request path, realtime, shutdown, faults.
//! Every test starts the real `switchyard` binary with real plugin libraries.

pub mod admin;
mod realtime;
mod refusals;
mod requests;
mod shutdown;
