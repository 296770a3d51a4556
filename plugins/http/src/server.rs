//! One instance: its own tokio runtime, its listener, hyper's HTTP/1.1 connections, and the
//! route table loaded from the host.
//!
//! Hooks run on host threads that know nothing of this runtime (the host has another copy of
//! tokio); HTTP has no realtime, so they have nothing to do here anyway.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use switchyard_plugin_api::BoxError;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tracing::{debug, warn};

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
    /// Makes generated request ids unique across instances and restarts.
    id_prefix: u32,
    /// Numbers generated request ids within this instance.
    next_id: AtomicU64,
}

impl Shared {
    /// A request id for a request without `X-Kuzzle-Request-Id`: `<instance>-<n>`, cheap and
    /// unique (Kuzzle uses the connection's UUID).
    pub fn next_request_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}-{n}", self.id_prefix)
    }

    /// The route table if loaded.
    pub fn route_table_now(&self) -> Option<Arc<RouteTable>> {
        if let Some(table) = self.table.get() {
            return Some(table.clone());
        }
        let loaded = self.routes.borrow().clone()?;
        Some(self.table.get_or_init(|| loaded).clone())
    }

    /// The route table, waiting for it while the instance starts (at most 5 s).
    pub async fn route_table(&self) -> Option<Arc<RouteTable>> {
        if let Some(table) = self.route_table_now() {
            return Some(table);
        }
        let mut routes = self.routes.clone();
        let waited = tokio::time::timeout(ROUTE_TABLE_WAIT, routes.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(table)) => table.clone(),
            _ => None,
        }
    }
}

/// A running HTTP listener.
pub struct Server {
    /// Shared with every connection task.
    shared: Arc<Shared>,
    /// The instance's own runtime; `None` only while dropping.
    runtime: Option<Runtime>,
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

/// Creates the listening socket: a port in use fails start-up with a hint.
pub fn bind_listener(name: &str, settings: &Settings) -> Result<std::net::TcpListener, BoxError> {
    switchyard_plugin_api::net::bind_listener(name, settings.address, settings.port)
}

/// The URL clients on this machine can use: an unspecified bind address is reached on loopback.
pub fn announced_url(bound: SocketAddr) -> String {
    switchyard_plugin_api::net::announced_url("http", bound)
}

impl Server {
    /// Binds the listener, starts serving and starts loading the route table.
    pub fn start(
        name: &str,
        settings: Settings,
        backend: Arc<dyn Backend>,
    ) -> Result<Server, BoxError> {
        let listener = bind_listener(name, &settings)?;
        let local_address = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name(format!("{name}-http"))
            .enable_io()
            .enable_time()
            .build()
            .map_err(|error| format!("protocol \"{name}\" cannot start its runtime: {error}"))?;
        let listener = {
            let _context = runtime.enter();
            TcpListener::from_std(listener)?
        };
        let (routes_sender, routes) = watch::channel(None);
        let id_prefix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos())
            ^ std::process::id().rotate_left(16);
        let shared = Arc::new(Shared {
            settings,
            backend,
            table: std::sync::OnceLock::new(),
            routes,
            id_prefix,
            next_id: AtomicU64::new(1),
        });
        let loader = shared.backend.clone();
        runtime.spawn(async move {
            if let Some(table) = routes::load(loader).await {
                let _ = routes_sender.send(Some(Arc::new(table)));
            }
            // Keep the sender until the instance ends: waiters then only time out.
            std::future::pending::<()>().await;
        });
        runtime.spawn(accept_loop(listener, shared.clone()));
        shared
            .backend
            .announce_listener(&announced_url(local_address));
        Ok(Server {
            shared,
            runtime: Some(runtime),
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

impl Drop for Server {
    fn drop(&mut self) {
        // Dropping a runtime blocks; tests may drop a server inside another runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(shared.settings.header_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if shared.backend.is_shutting_down() {
                    debug!(peer = %peer, "refused: shutting down");
                    continue;
                }
                // Answers are small and written in one go: do not wait for more to send.
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let builder = builder.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let shared = shared.clone();
                        async move {
                            Ok::<_, Infallible>(exchange::handle(&shared, peer, request).await)
                        }
                    });
                    if let Err(error) = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                    {
                        debug!(peer = %peer, error = %error, "connection ended with an error");
                    }
                });
            }
            Err(error) => {
                // Out of file descriptors, most likely: back off instead of spinning.
                warn!(error = %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
