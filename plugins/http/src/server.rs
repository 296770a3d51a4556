//! One instance: its request threads (a single-threaded tokio runtime each), its listener,
//! hyper's HTTP/1.1 connections, and the route table loaded from the host.
//!
//! Hooks run on host threads that know nothing of these runtimes (the host has another copy of
//! tokio); HTTP has no realtime, so they have nothing to do here anyway.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use switchyard_plugin_api::{
    BoxError, ConnectionId, DisconnectReason, Host, InitConfig, StatsSink,
};
use switchyard_plugin_kit::config::Section;
use switchyard_plugin_kit::gate::Gate;
use switchyard_plugin_kit::instance::Instance;
use switchyard_plugin_kit::partial::PartialBudget;
use switchyard_plugin_kit::refusal::{self, Wait};
use switchyard_plugin_kit::server::{self, Listen};
use switchyard_plugin_kit::stats::Counters;
use switchyard_plugin_kit::stream::Stream;
use switchyard_plugin_kit::tls::Tls;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::sync::watch;
use tracing::debug;

use crate::config::Settings;
use crate::exchange;
use crate::routes::{self, RouteTable};
use switchyard_plugin_api::Backend;

/// How long a REST request waits for the route table while the instance starts.
const ROUTE_TABLE_WAIT: Duration = Duration::from_secs(5);

/// What every connection task of an instance shares.
pub struct Shared {
    /// Validated configuration.
    pub settings: Settings,
    /// The host.
    pub backend: Arc<dyn Backend>,
    /// The route table once `server:info` answered: the lock-free path of every request.
    table: std::sync::OnceLock<Arc<RouteTable>>,
    /// The same, for requests that arrive before it is loaded and wait for it.
    routes: watch::Receiver<Option<Arc<RouteTable>>>,
    /// Makes generated request ids unique across instances and restarts: `<8 hex digits>-`.
    id_prefix: String,
    /// Numbers generated request ids within this instance.
    next_id: AtomicU64,
    /// Request and response body bytes (the `stats` hook).
    pub counters: Counters,
    /// Who gets in: per-address limits, the descriptor reserve, refusals counted.
    pub gate: Arc<Gate>,
    /// Bytes of request bodies being received by all connections (`maxTotalPartialBytes`).
    pub partial: Arc<PartialBudget>,
}

impl Shared {
    /// A request id for a request without `X-Kuzzle-Request-Id`: `<instance>-<n>`, cheap and
    /// unique (Kuzzle uses the connection's UUID).
    pub fn next_request_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut id = String::with_capacity(self.id_prefix.len() + 20);
        id.push_str(&self.id_prefix);
        switchyard_plugin_api::json::push_u64(&mut id, n);
        id
    }

    /// The route table if loaded.
    pub fn route_table_now(&self) -> Option<&RouteTable> {
        if let Some(table) = self.table.get() {
            return Some(&**table);
        }
        let loaded = self.routes.borrow().clone()?;
        Some(&**self.table.get_or_init(|| loaded))
    }

    /// The route table, waiting for it while the instance starts (at most 5 s).
    pub async fn route_table(&self) -> Option<&RouteTable> {
        if let Some(table) = self.route_table_now() {
            return Some(table);
        }
        let mut routes = self.routes.clone();
        let waited = tokio::time::timeout(ROUTE_TABLE_WAIT, routes.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(_)) => self.route_table_now(),
            _ => None,
        }
    }
}

/// A running HTTP listener.
pub struct Server {
    /// Shared with every connection task.
    shared: Arc<Shared>,
    /// The instance's request threads; dropping the server stops them.
    _workers: Workers,
    /// The address actually bound (the real port when 0 was asked).
    local_address: SocketAddr,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_address", &self.local_address)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds the listener, starts serving and starts loading the route table.
    pub fn start(
        name: &str,
        settings: Settings,
        backend: Arc<dyn Backend>,
    ) -> Result<Server, BoxError> {
        let threads = match settings.worker_threads {
            0 => default_worker_threads(),
            n => n,
        };
        let listen = Listen::new("http", settings.address, settings.port, threads)
            .with_limits(settings.connections)
            .with_tls(settings.tls.clone());
        let listener = server::bind(name, &listen)?;
        let local_address = listener.local_addr()?;
        let workers = Workers::start(name, threads, &backend)?;
        let listener = server::register(listener, &workers.handles[0])?;
        let tls = server::start_tls(listen.tls, &workers.handles[0])?;
        let (routes_sender, routes) = watch::channel(None);
        let id_prefix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos())
            ^ std::process::id().rotate_left(16);
        let id_prefix = format!("{id_prefix:08x}-");
        let shared = Arc::new(Shared {
            backend,
            table: std::sync::OnceLock::new(),
            routes,
            id_prefix,
            next_id: AtomicU64::new(1),
            counters: Counters::new(),
            gate: Arc::new(Gate::new(listen.limits)),
            partial: PartialBudget::new(settings.max_total_partial_bytes),
            settings,
        });
        let loader = shared.backend.clone();
        workers.handles[0].spawn(async move {
            if let Some(table) = routes::load(loader).await {
                let _ = routes_sender.send(Some(Arc::new(table)));
            }
            // Keep the sender until the instance ends: waiters then only time out.
            std::future::pending::<()>().await;
        });
        workers.handles[0].spawn(accept_loop(
            listener,
            shared.clone(),
            workers.handles.clone(),
            tls,
        ));
        shared
            .backend
            .announce_listener(&server::announced_url(listen.scheme, local_address));
        Ok(Server {
            shared,
            _workers: workers,
            local_address,
        })
    }

    /// The bound address.
    pub fn local_address(&self) -> SocketAddr {
        self.local_address
    }

    /// True once the route table is loaded.
    pub fn is_ready(&self) -> bool {
        self.shared.route_table_now().is_some()
    }
}

impl Instance for Server {
    fn init(host: Host, config: InitConfig<'_>) -> Result<Self, BoxError> {
        let settings = Settings::from_init(&config)?;
        Server::start(config.name, settings, Arc::new(host))
    }

    // HTTP clients never join channels (subscriptions are refused), so there is nothing to
    // deliver, and `joinChannel` / `leaveChannel` keep their no-op defaults.
    fn broadcast<'c>(&self, _channels: impl Iterator<Item = &'c str>, _payload: &str) {}

    fn notify<'c>(
        &self,
        _connection: ConnectionId,
        _channels: impl Iterator<Item = &'c str>,
        _payload: &str,
    ) {
    }

    // The request in flight finishes (the host refuses new ones while shutting down) and the
    // socket's connection is removed when it closes; keep-alive sockets get `Connection:
    // close` on their next answer.
    fn disconnect(&self, _connection: ConnectionId, _reason: DisconnectReason, _message: &str) {}

    /// The `stats` hook: body bytes in and out, refused connections; HTTP queues nothing and
    /// closes nobody itself.
    fn stats(&self, sink: &mut StatsSink<'_>) {
        self.shared.counters.report(sink, 0);
        self.shared.gate.report_stats(sink);
    }
}

/// Half the cores, at least one: more than half of a request's CPU time is the kernel's
/// (socket reads and writes, loopback delivery), and the host and the other protocols need
/// cores too. On the 2-core bench machine one thread answers more `server:now` per second
/// than two (BENCHMARKS.md).
fn default_worker_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |cores| (cores.get() / 2).max(1))
}

/// The request threads: each runs its own single-threaded runtime, and a connection lives on
/// one thread from accept to close. Nothing is stolen or handed over between threads mid-request,
/// so a request costs no cross-thread wake-up and its memory is freed where it was allocated.
struct Workers {
    /// One per thread; the first also runs the accept loop and the route-table loader.
    handles: Vec<Handle>,
    /// Dropping these stops the threads (each then drops its runtime and its connections).
    _stops: Vec<oneshot::Sender<()>>,
}

impl Workers {
    fn start(name: &str, threads: usize, backend: &Arc<dyn Backend>) -> Result<Workers, BoxError> {
        let mut handles = Vec::with_capacity(threads);
        let mut stops = Vec::with_capacity(threads);
        for index in 0..threads {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()
                .map_err(|error| {
                    format!("protocol \"{name}\" cannot start its runtime: {error}")
                })?;
            handles.push(runtime.handle().clone());
            let (stop, stopped) = oneshot::channel::<()>();
            stops.push(stop);
            let backend = backend.clone();
            std::thread::Builder::new()
                .name(format!("{name}-http-{index}"))
                .spawn(move || {
                    backend.tag_thread_logs();
                    let _ = runtime.block_on(stopped);
                    // Dropped here, on its own thread: the connections' tasks end with it.
                    drop(runtime);
                })
                .map_err(|error| format!("protocol \"{name}\" cannot start a thread: {error}"))?;
        }
        Ok(Workers {
            handles,
            _stops: stops,
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    workers: Vec<Handle>,
    tls: Option<Arc<Tls>>,
) {
    let mut next_worker = 0;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(shared.settings.header_timeout)
        // No read while a request is being answered: hyper would only look for an early EOF,
        // and the read-ahead makes it allocate a fresh read buffer for every request (the
        // request's headers still point into the old one). A client that leaves mid-request
        // is noticed when its answer is written.
        .half_close(true)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let backend = shared.backend.clone();
    let gate = shared.gate.clone();
    let refuse = |stream, refusal| async move {
        // 429 with Kuzzle's error body, after reading the request's head.
        let answer = refusal::http_answer(refusal);
        refusal::answer(stream, &answer, Wait::HttpHead).await;
    };
    server::accept_loop(listener, backend, gate, move |stream, peer, admitted| {
        // Answers are small and written in one go: do not wait for more to send.
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let builder = builder.clone();
        // The socket's host connection is removed when hyper drops the service, with it.
        let socket = Arc::new(exchange::Socket::new(
            shared.backend.clone(),
            peer.ip().to_string(),
        ));
        next_worker = (next_worker + 1) % workers.len();
        let tls = tls.clone();
        workers[next_worker].spawn(async move {
            // The address's slot is given back when the connection ends.
            let _admitted = admitted;
            let stream = match tls {
                None => Stream::Plain(stream),
                Some(tls) => match tls.accept(stream, peer).await {
                    Some(stream) => stream,
                    None => return,
                },
            };
            let service = service_fn(move |request| {
                let shared = shared.clone();
                let socket = socket.clone();
                async move { Ok::<_, Infallible>(exchange::handle(&shared, &socket, request).await) }
            });
            if let Err(error) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(peer = %peer, error = %error, "connection ended with an error");
            }
        });
    }, refuse)
    .await;
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::*;
    use crate::testing::FakeHost;

    /// Sends `POST /_query` on `stream` and reads one answer (its headers and body).
    fn query(stream: &mut TcpStream, extra_header: &str) -> String {
        let body = r#"{"controller":"server","action":"now"}"#;
        write!(
            stream,
            "POST /_query HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{extra_header}content-length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = Vec::new();
        let mut chunk = [0; 4096];
        loop {
            let read = stream.read(&mut chunk).unwrap();
            assert!(read > 0, "closed before an answer");
            answer.extend_from_slice(&chunk[..read]);
            let text = String::from_utf8_lossy(&answer);
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text[..end]
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length: "))
                    .unwrap()
                    .parse()
                    .unwrap();
                if answer.len() >= end + 4 + length {
                    return text.into_owned();
                }
            }
        }
    }

    fn live_connections(host: &FakeHost) -> Vec<Vec<String>> {
        host.connections
            .lock()
            .iter()
            .map(|(_, ips)| ips.clone())
            .collect()
    }

    /// Issue 12, item 10: one host connection per keep-alive socket, removed when it closes;
    /// a request with `X-Forwarded-For` still gets its own, as in Kuzzle.
    #[test]
    fn issue_12_one_host_connection_per_keep_alive_socket() {
        let host = Arc::new(FakeHost::default());
        let settings = Settings {
            address: [127, 0, 0, 1].into(),
            port: 0,
            worker_threads: 1,
            ..Settings::default()
        };
        let server = Server::start("http", settings, host.clone()).unwrap();
        let mut stream = TcpStream::connect(server.local_address()).unwrap();
        for _ in 0..3 {
            assert!(query(&mut stream, "").starts_with("HTTP/1.1 200"));
        }
        assert_eq!(live_connections(&host), [vec!["127.0.0.1".to_string()]]);
        query(&mut stream, "x-forwarded-for: 10.0.0.7\r\n");
        assert_eq!(
            live_connections(&host),
            [vec!["127.0.0.1".to_string()]],
            "the forwarded request's own connection is gone once answered"
        );
        let mut other = TcpStream::connect(server.local_address()).unwrap();
        query(&mut other, "");
        assert_eq!(live_connections(&host).len(), 2);

        drop(stream);
        drop(other);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !live_connections(&host).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "connections never removed"
            );
            std::thread::yield_now();
        }
    }
}
