//! Kuzzle's *entry point*: what plugins call (through `plugin/host_api.rs`), on their own
//! threads — connections, and where each request runs.
//!
//! Where a request runs: an in-memory (`Inline`) action runs at once on the calling plugin
//! thread while fewer than `concurrentRequests` requests are in flight, nothing waits for a
//! worker and the request is small (`INLINE_REQUEST_BYTES`: parsing a large body is not a
//! network thread's job); otherwise it waits in the API workers' bounded queue. A `Blocking`
//! action always runs on the blocking pool (`execution.rs`); a `Staged` one (`document:create`)
//! prepares its write where it is dispatched and queues it to the store, whose log thread
//! answers it once durable, unless the store cannot take it (then: the blocking pool). A full
//! queue answers `api.process.overloaded` at once; no plugin thread ever waits for room.
//!
//! Invariant: every `execute` calls its callback exactly once. Admitted requests hold a
//! `Responder` (`admission.rs`) that answers exactly once by construction; refused ones are
//! answered before `execute` returns.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use switchyard_plugin_api::errors;
use switchyard_plugin_api::ConnectionId;

use crate::admission::{self, Admission, Responder};
use crate::api::dispatch::{dispatch, Dispatched, OwnedRequest, Staging};
use crate::api::{Answer, Router};
use crate::config::Config;
use crate::execution::{Pool, PoolKind};
use crate::listeners::ListenerKey;
use crate::metrics::Metrics;
use crate::plugin::callback::Callback;
use crate::plugin::host_api::EntryPointApi;
use crate::services::Services;

/// Requests longer than this are parsed and run on an API worker, never on the plugin's thread.
pub const INLINE_REQUEST_BYTES: usize = 64 * 1024;

/// A request waiting for an API worker: not parsed yet.
struct Job {
    connection: ConnectionId,
    request: String,
    responder: Responder,
}

/// A request that fans out, waiting for congested protocols to drain.
struct PacedJob {
    request: Box<OwnedRequest>,
    responder: Responder,
    deadline: Instant,
}

/// A checked request waiting for the blocking pool.
struct BlockingJob {
    request: Box<OwnedRequest>,
    responder: Responder,
}

/// Host-wide state shared by the host API, the pools and the start-up code.
pub struct EntryPoint {
    /// What actions use.
    pub services: Arc<Services>,
    /// Controllers and actions.
    pub router: Arc<Router>,
    /// Requests in flight, and the drain.
    admission: Arc<Admission>,
    /// The API workers' queue (in-memory actions that did not run inline).
    workers: Arc<Pool<Job>>,
    /// The blocking pool's queue.
    blocking: Arc<Pool<BlockingJob>>,
    /// Requests that fan out while a protocol is congested (`pressure.rs`), in order.
    pacing: Arc<Pool<PacedJob>>,
    /// Requests and connections counted per thread, for the admin listener (shared with the
    /// store's thread, which answers staged writes).
    pub metrics: Arc<Metrics>,
    /// Set once a hot upgrade handed the listeners to a new process: protocols stop accepting
    /// (`is_shutting_down`) while requests are still admitted until the drain.
    handing_over: AtomicBool,
}

impl std::fmt::Debug for EntryPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryPoint")
            .field("in_flight", &self.admission.in_flight())
            .finish_non_exhaustive()
    }
}

impl EntryPoint {
    /// An entry point over `services` and `router`, with its pools started.
    pub fn start(services: Services, router: Router) -> std::io::Result<Arc<EntryPoint>> {
        let config = Arc::clone(&services.config);
        let actions = router.action_names().len();
        let entry = Arc::new(EntryPoint {
            services: Arc::new(services),
            router: Arc::new(router),
            admission: Arc::new(Admission::default()),
            workers: Arc::new(Pool::new("api", config.request_queue_size)),
            blocking: Arc::new(Pool::new("blocking", config.blocking_queue_size)),
            pacing: Arc::new(Pool::new("pacing", config.pacing_queue_size)),
            metrics: Arc::new(Metrics::new(config.protocols.len(), actions)),
            handing_over: AtomicBool::new(false),
        });
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let worker_entry = Arc::clone(&entry);
        entry
            .workers
            .start(cores, PoolKind::Compute, move |job, _| {
                worker_entry.run_here(job.connection, &job.request, job.responder);
            })?;
        let blocking_entry = Arc::clone(&entry);
        entry.blocking.start(
            config.blocking_threads,
            PoolKind::Blocking,
            move |job, on_pool| {
                let on_pool = on_pool.expect("the blocking pool lends its proof");
                let answer =
                    job.request
                        .run(&blocking_entry.services, &blocking_entry.router, on_pool);
                blocking_entry.reply(job.responder, &answer);
            },
        )?;
        // One thread: paced requests leave in the order they came, once every protocol is
        // relieved; each waits at most until its own deadline.
        let pacing_entry = Arc::clone(&entry);
        entry.pacing.start(1, PoolKind::Compute, move |job, _| {
            let entry = &pacing_entry;
            if !entry.services.pressure.wait_relieved(job.deadline) {
                let answer = job.request.refuse(errors::API_PROCESS_OVERLOADED.error());
                return entry.reply(job.responder, &answer);
            }
            entry.run_owned(job.request, job.responder);
        })?;
        Ok(entry)
    }

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.services.config
    }

    /// Requests admitted whose callback has not returned yet.
    pub fn in_flight(&self) -> usize {
        self.admission.in_flight()
    }

    /// True once the drain began.
    pub fn is_draining(&self) -> bool {
        self.admission.is_draining()
    }

    /// Requests waiting for an API worker, and for a blocking thread.
    pub fn queue_depths(&self) -> (usize, usize) {
        (self.workers.queued(), self.blocking.queued())
    }

    /// A new process holds the listeners now (a hot upgrade): protocols see
    /// `is_shutting_down` and stop accepting, but requests are still admitted until the drain
    /// (`shutdown::hand_over`), so a client that connected just before is answered.
    pub fn begin_handover(&self) {
        self.handing_over.store(true, Ordering::Release);
    }

    /// Stops admitting requests: new ones get 503 `network.entrypoint.shutting_down`.
    pub fn stop_admitting(&self) {
        self.admission.close();
    }

    /// Stops admitting requests (new ones get 503 `network.entrypoint.shutting_down`), then
    /// waits until none is in flight or `deadline` passes. Returns how many remain.
    pub fn drain(&self, deadline: Instant) -> usize {
        self.admission.drain(deadline)
    }

    /// Parses, checks and runs a request on this thread; a blocking action goes on to the
    /// blocking pool.
    fn run_here(&self, connection: ConnectionId, request: &str, responder: Responder) {
        match dispatch(&self.services, &self.router, connection, request) {
            Dispatched::Answered(answer) => self.reply(responder, &answer),
            Dispatched::Blocking(request) => self.run_owned(request, responder),
            Dispatched::Paced(request) => {
                let deadline = Instant::now() + self.services.config.pacing_timeout;
                let job = PacedJob {
                    request,
                    responder,
                    deadline,
                };
                if let Err(job) = self.pacing.submit(job) {
                    let answer = job.request.refuse(errors::API_PROCESS_OVERLOADED.error());
                    self.reply(job.responder, &answer);
                }
            }
        }
    }

    /// Runs a checked request: an in-memory action here; a staged one's write queued to the
    /// store, whose log thread answers it; a blocking one on the blocking pool.
    fn run_owned(&self, request: Box<OwnedRequest>, responder: Responder) {
        let request = match request.run_inline(&self.services, &self.router) {
            Ok(answer) => return self.reply(responder, &answer),
            Err(blocking) => blocking,
        };
        let request = match request.stage(&self.services, &self.router) {
            Staging::Pool(request) => request,
            Staging::Answered(answer) => return self.reply(responder, &answer),
            Staging::Write(batch, complete) => {
                let metrics = Arc::clone(&self.metrics);
                let then = move |result| reply(&metrics, responder, &complete(result));
                return self.services.write_deferred(batch, Box::new(then));
            }
        };
        if let Err(job) = self.blocking.submit(BlockingJob { request, responder }) {
            let answer = job.request.refuse(errors::API_PROCESS_OVERLOADED.error());
            self.reply(job.responder, &answer);
        }
    }

    /// Counts the answer, then sends it.
    fn reply(&self, responder: Responder, answer: &Answer<'_>) {
        reply(&self.metrics, responder, answer);
    }
}

/// Counts the answer, then sends it.
fn reply(metrics: &Metrics, responder: Responder, answer: &Answer<'_>) {
    metrics.request(answer.route, answer.status, responder.elapsed());
    responder.answer(answer);
}

impl EntryPointApi for EntryPoint {
    fn new_connection(&self, protocol: usize, ips: &[&str], headers_json: &str) -> ConnectionId {
        self.metrics.connection_accepted(protocol);
        self.services
            .connections
            .declare(protocol, ips, headers_json)
    }

    fn remove_connection(&self, connection: ConnectionId) {
        if let Some(protocol) = self.services.remove_connection(connection) {
            self.metrics.connection_closed(protocol);
        }
    }

    fn execute(&self, connection: ConnectionId, request: &str, callback: Callback) {
        let Some(ticket) = self.admission.admit() else {
            return admission::refuse(
                request,
                callback,
                errors::NETWORK_ENTRYPOINT_SHUTTING_DOWN.error(),
            );
        };
        let responder = Responder::new(callback, ticket);
        if responder.in_flight_before() < self.services.config.concurrent_requests
            && self.workers.queued() == 0
            && request.len() <= INLINE_REQUEST_BYTES
        {
            return self.run_here(connection, request, responder);
        }
        let job = Job {
            connection,
            request: request.to_owned(),
            responder,
        };
        if let Err(job) = self.workers.submit(job) {
            let answer = Answer::refusal(&job.request, errors::API_PROCESS_OVERLOADED.error());
            self.reply(job.responder, &answer);
        }
    }

    fn is_shutting_down(&self) -> bool {
        self.handing_over.load(Ordering::Acquire) || self.admission.is_draining()
    }

    fn listener(
        &self,
        protocol_name: &str,
        address: std::net::IpAddr,
        port: u16,
    ) -> std::io::Result<std::net::TcpListener> {
        self.services.listeners.take(&ListenerKey {
            owner: protocol_name.to_string(),
            address,
            port,
        })
    }

    fn report_pressure(&self, protocol: usize, congested: bool) {
        self.services.pressure.set(protocol, congested);
    }

    fn announce_listener(&self, protocol: usize, address: &str) {
        if let Some(protocol) = self.services.protocols.get(protocol) {
            protocol.add_listener(address.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use serde_json::{json, Value};
    use switchyard_storage::{EmbeddedStorage, Storage};

    use super::*;
    use crate::api::action::{
        Action, ActionResult, Args, BlockingContext, Context, Controller, Run,
    };
    use crate::api::Request;

    fn explode(_context: &Context<'_>, _request: &mut Request<'_>) -> ActionResult {
        panic!("this action always panics");
    }

    fn explode_blocking(
        _context: &BlockingContext<'_>,
        _request: &mut Request<'_>,
    ) -> ActionResult {
        panic!("this blocking action always panics");
    }

    fn fine(_context: &Context<'_>, _request: &mut Request<'_>) -> ActionResult {
        Ok(json!("fine").into())
    }

    static BROKEN: Controller = Controller {
        name: "broken",
        actions: &[
            Action {
                name: "inline",
                http: &[],
                args: Args::NONE,
                run: Run::Inline(explode),
            },
            Action {
                name: "blocking",
                http: &[],
                args: Args::NONE,
                run: Run::Blocking(explode_blocking),
            },
            Action {
                name: "fine",
                http: &[],
                args: Args::NONE,
                run: Run::Inline(fine),
            },
        ],
    };

    /// An entry point over the `broken` controller; `extra` goes into `[server]`.
    fn start(extra: &str) -> Arc<EntryPoint> {
        start_with(extra, Router::new(&[&BROKEN]))
    }

    /// An entry point over `router`, with one protocol section (so pressure has a slot).
    fn start_with(extra: &str, router: Router) -> Arc<EntryPoint> {
        let config = Config::parse(
            std::path::Path::new("test.toml"),
            &format!("[server]\n{extra}\n[server.protocols.line]\nlibrary = \"none\"\n"),
        )
        .expect("a valid configuration");
        let storage = Arc::new(EmbeddedStorage::in_memory().expect("an in-memory store"));
        EntryPoint::start(Services::new(Arc::new(config), storage), router).expect("threads start")
    }

    /// Executes `request` and waits for its one answer: `(status, content)`.
    fn execute(entry: &EntryPoint, request: &str) -> (u16, Value) {
        let (answers, answer) = mpsc::channel();
        let connection = entry.new_connection(0, &["127.0.0.1"], "{}");
        entry.execute(
            connection,
            request,
            Callback::Native(Box::new(move |status, _, content| {
                let _ = answers.send((status, content.to_owned()));
            })),
        );
        let (status, content) = answer
            .recv_timeout(Duration::from_secs(30))
            .expect("every request is answered");
        assert!(
            answer.recv_timeout(Duration::from_millis(50)).is_err(),
            "answered twice"
        );
        entry.remove_connection(connection);
        (status, serde_json::from_str(&content).expect("JSON"))
    }

    fn assert_answers_500_then_keeps_serving(entry: &EntryPoint, action: &str) {
        let (status, content) = execute(
            entry,
            &format!(r#"{{"controller":"broken","action":"{action}","requestId":"r1"}}"#),
        );
        assert_eq!(status, 500);
        assert_eq!(content["requestId"], "r1");
        assert_eq!(content["error"]["id"], "core.fatal.unexpected_error");
        assert_eq!(content["error"]["status"], 500);
        // The host goes on: the same threads answer the next request.
        let (status, content) = execute(entry, r#"{"controller":"broken","action":"fine"}"#);
        assert_eq!((status, &content["result"]), (200, &json!("fine")));
    }

    /// Nothing leaked: the drain finds every request finished (a callback may still be
    /// returning when its answer arrives, so this waits for it rather than reading the count).
    fn assert_nothing_in_flight(entry: &EntryPoint) {
        assert_eq!(entry.drain(Instant::now() + Duration::from_secs(30)), 0);
        assert_eq!(entry.in_flight(), 0);
    }

    #[test]
    fn a_panic_on_the_plugin_thread_answers_500_and_leaks_nothing() {
        let entry = start("");
        assert_answers_500_then_keeps_serving(&entry, "inline");
        assert_nothing_in_flight(&entry);
    }

    #[test]
    fn a_panic_on_an_api_worker_answers_500_and_leaks_nothing() {
        // concurrentRequests = 0: every request waits for a worker.
        let entry = start("concurrentRequests = 0");
        for _ in 0..4 {
            assert_answers_500_then_keeps_serving(&entry, "inline");
        }
        assert_nothing_in_flight(&entry);
    }

    #[test]
    fn a_panic_on_the_blocking_pool_answers_500_and_leaks_nothing() {
        let entry = start("blockingThreads = 1");
        for _ in 0..4 {
            assert_answers_500_then_keeps_serving(&entry, "blocking");
        }
        assert_nothing_in_flight(&entry);
    }

    #[test]
    fn after_the_drain_requests_are_refused_before_execute_returns() {
        let entry = start("");
        assert_eq!(entry.drain(Instant::now() + Duration::from_secs(5)), 0);
        let (status, content) = execute(&entry, r#"{"controller":"broken","action":"fine"}"#);
        assert_eq!(status, 503);
        assert_eq!(content["error"]["id"], "network.entrypoint.shutting_down");
        assert!(entry.is_shutting_down());
    }

    /// `hold:hold`: blocks its blocking-pool thread until the test lets it go (`HELD`).
    static HOLD: Controller = Controller {
        name: "hold",
        actions: &[Action {
            name: "hold",
            http: &[],
            args: Args::NONE,
            run: Run::Blocking(hold),
        }],
    };

    /// (started, release): `hold` says it started, then waits for its release.
    static HELD: std::sync::Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>> =
        std::sync::Mutex::new(None);

    fn hold(_context: &BlockingContext<'_>, _request: &mut Request<'_>) -> ActionResult {
        let held = HELD.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some((started, release)) = held {
            let _ = started.send(());
            let _ = release.recv_timeout(Duration::from_secs(60));
        }
        Ok(json!("held").into())
    }

    /// `document:create` does not use the blocking pool: with its one thread held and its
    /// queue full, a create is still written and answered (the store's log thread answers it),
    /// while an action that needs the pool is refused `overloaded`.
    #[test]
    fn creates_are_answered_while_the_blocking_pool_is_full() {
        let (started, running) = mpsc::channel();
        let (release, released) = mpsc::channel();
        *HELD.lock().unwrap() = Some((started, released));
        let config = Config::parse(
            std::path::Path::new("test.toml"),
            "[server]\nblockingThreads = 1\nblockingQueueSize = 1\n\
             [server.protocols.line]\nlibrary = \"none\"\n",
        )
        .expect("a valid configuration");
        let storage = Arc::new(EmbeddedStorage::in_memory().expect("an in-memory store"));
        storage.create_index("i").unwrap();
        storage.create_collection("i", "c", &json!({})).unwrap();
        let router = Router::new(&[&HOLD, &crate::api::controllers::document::CONTROLLER]);
        let entry = EntryPoint::start(Services::new(Arc::new(config), storage), router)
            .expect("threads start");
        let hold = r#"{"controller":"hold","action":"hold"}"#;
        let first = send(&entry, hold);
        running
            .recv_timeout(Duration::from_secs(30))
            .expect("the blocking thread runs the first hold");
        // The queue's one place.
        let second = send(&entry, hold);
        let exists =
            r#"{"controller":"document","action":"exists","index":"i","collection":"c","_id":"a"}"#;
        let (status, content) = execute(&entry, exists);
        assert_eq!(
            (status, &content["error"]["id"]),
            (503, &json!("api.process.overloaded"))
        );

        let create = r#"{"controller":"document","action":"create","index":"i","collection":"c","_id":"a","body":{"n":1}}"#;
        let (status, content) = execute(&entry, create);
        assert_eq!(status, 200, "{content}");
        assert_eq!(content["result"]["_id"], "a");
        assert_eq!(content["result"]["_version"], 1);
        assert_eq!(content["result"]["_source"]["n"], 1);
        // Errors as before: the id is taken.
        let (status, content) = execute(&entry, create);
        assert_eq!(status, 400, "{content}");
        assert_eq!(
            content["error"]["id"],
            "services.storage.document_already_exists"
        );

        release.send(()).unwrap();
        for held in [first, second] {
            let (status, _) = held
                .recv_timeout(Duration::from_secs(30))
                .expect("the holds end");
            assert_eq!(status, 200);
        }
        let (status, content) = execute(&entry, exists);
        assert_eq!((status, &content["result"]), (200, &json!(true)));
        assert_nothing_in_flight(&entry);
    }

    const PUBLISH: &str = r#"{"controller":"realtime","action":"publish","index":"i","collection":"c","body":{"n":1}}"#;

    /// Executes `request` without waiting: the answer comes on the returned channel.
    fn send(entry: &EntryPoint, request: &str) -> mpsc::Receiver<(u16, String)> {
        let (answers, answer) = mpsc::channel();
        let connection = entry.new_connection(0, &["127.0.0.1"], "{}");
        entry.execute(
            connection,
            request,
            Callback::Native(Box::new(move |status, _, content| {
                let _ = answers.send((status, content.to_owned()));
            })),
        );
        answer
    }

    #[test]
    fn requests_that_fan_out_wait_while_a_protocol_is_congested() {
        let entry = start_with("pacingTimeout = 60000", Router::standard());
        entry.report_pressure(0, true);
        let published = send(&entry, PUBLISH);
        // Requests that do not fan out go on.
        let (status, _) = execute(&entry, r#"{"controller":"server","action":"now"}"#);
        assert_eq!(status, 200);
        assert!(
            published.recv_timeout(Duration::from_millis(100)).is_err(),
            "a publish ran while its subscribers were congested"
        );
        entry.report_pressure(0, false);
        let (status, content) = published
            .recv_timeout(Duration::from_secs(30))
            .expect("the publish runs once relieved");
        assert_eq!(status, 200, "{content}");
        assert_nothing_in_flight(&entry);
    }

    #[test]
    fn a_publisher_paced_past_the_timeout_gets_503() {
        let entry = start_with("pacingTimeout = 50", Router::standard());
        entry.report_pressure(0, true);
        let (status, content) = send(&entry, PUBLISH)
            .recv_timeout(Duration::from_secs(30))
            .expect("refused after the pacing timeout");
        assert_eq!(status, 503);
        let content: Value = serde_json::from_str(&content).unwrap();
        assert_eq!(content["error"]["id"], "api.process.overloaded");
        assert_eq!(content["controller"], "realtime");
        assert_nothing_in_flight(&entry);
    }
}
