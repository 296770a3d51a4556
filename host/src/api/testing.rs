//! Unit-test support: services with no plugin and one declared connection, and a way to run a
//! request through the real dispatch (and, for a blocking action, a real blocking pool; for a
//! staged one, the store's log thread) and read its answer as JSON. No host, no plugin, no socket.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use switchyard_plugin_api::ConnectionId;
use switchyard_storage::{EmbeddedStorage, Storage};

use super::dispatch::{dispatch, Dispatched, OwnedRequest, Staging};
use super::router::Router;
use crate::config::Config;
use crate::execution::{Pool, PoolKind};
use crate::services::Services;

/// Services, a router and one connection (of protocol 0, which has no plugin behind it).
pub struct Harness {
    pub services: Arc<Services>,
    pub router: Arc<Router>,
    pub connection: ConnectionId,
}

/// Cheap Argon2 parameters: debug builds hash slowly. Logins per second unlimited in practice:
/// the harness's tests log in many times a second on its one connection (the limit itself is
/// tested in `controllers/auth/abuse_tests.rs`).
const CHEAP_ARGON2: &str = "[server]\n[limits]\nloginsPerSecond = 1000000\n\
     [security.argon2]\nmemoryKib = 64\niterations = 1\nparallelism = 1\n";

impl Harness {
    /// The standard router over fresh services.
    pub fn new() -> Harness {
        Harness::with_router(Router::standard())
    }

    /// `router` over fresh services.
    pub fn with_router(router: Router) -> Harness {
        let storage = Arc::new(EmbeddedStorage::in_memory().expect("an in-memory store"));
        Harness::with_parts(router, CHEAP_ARGON2, storage)
    }

    /// The standard router over services with the configuration `config` (TOML) and `storage`
    /// (a store that fails on demand, say).
    pub fn with_config(config: &str, storage: Arc<dyn Storage>) -> Harness {
        Harness::with_parts(Router::standard(), config, storage)
    }

    fn with_parts(router: Router, config: &str, storage: Arc<dyn Storage>) -> Harness {
        let config = Config::parse(std::path::Path::new("test.toml"), config)
            .expect("a valid test configuration");
        let services = Services::new(Arc::new(config), storage);
        let connection = services.connections.declare(0, &["127.0.0.1"], "");
        Harness {
            services: Arc::new(services),
            router: Arc::new(router),
            connection,
        }
    }

    /// Runs `request` as the harness's connection and returns the response `content`.
    pub fn call(&self, request: &str) -> Value {
        let text = match dispatch(&self.services, &self.router, self.connection, request) {
            Dispatched::Answered(answer) => answer.content,
            Dispatched::Blocking(blocking) | Dispatched::Paced(blocking) => {
                match blocking.stage(&self.services, &self.router) {
                    Staging::Pool(blocking) => self.run_blocking(blocking),
                    Staging::Answered(answer) => answer.content,
                    Staging::Write(batch, complete) => {
                        let (answers, answer) = mpsc::channel();
                        let then = move |result| {
                            let _ = answers.send(complete(result).content);
                        };
                        self.services.write_deferred(batch, Box::new(then));
                        answer
                            .recv_timeout(Duration::from_secs(30))
                            .expect("the store answers a staged write")
                    }
                }
            }
        };
        serde_json::from_str(&text).expect("answers are JSON")
    }

    /// Runs a blocking request on a one-thread blocking pool, as the host would.
    fn run_blocking(&self, blocking: Box<OwnedRequest>) -> String {
        let (answers, answer) = mpsc::channel();
        let pool: Arc<Pool<Box<OwnedRequest>>> = Arc::new(Pool::new("harness", 1));
        let (services, router) = (Arc::clone(&self.services), Arc::clone(&self.router));
        pool.start(1, PoolKind::Blocking, move |job, on_pool| {
            let on_pool = on_pool.expect("a blocking pool lends its proof");
            let _ = answers.send(job.run(&services, &router, on_pool).content);
        })
        .expect("a thread starts");
        pool.submit(blocking).expect("an empty queue has room");
        answer
            .recv_timeout(Duration::from_secs(30))
            .expect("the blocking pool answers")
    }
}
