//! Server scaffolding: the listener, the instance's runtime, the accept loop and its shutdown
//! check, the same for every protocol.
//!
//! Hooks run on host threads that know nothing of an instance's runtime (the host has another
//! copy of tokio): they only touch runtime-agnostic state (registries, outboxes), or spawn on the
//! instance's runtime through its handle.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use switchyard_plugin_api::runtime::InstanceRuntime;
use switchyard_plugin_api::{Backend, BoxError};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tracing::{debug, warn};

use crate::stream::Stream;
use crate::tls::{Tls, TlsSettings};

/// Where and how an instance listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// Listening address.
    pub address: IpAddr,
    /// Listening port (0: any free port).
    pub port: u16,
    /// The URL scheme announced to the host (`ws`, `mqtt`, `http`).
    pub scheme: &'static str,
    /// Threads of the instance's runtime (0: one per core).
    pub worker_threads: usize,
    /// TLS on every accepted socket, when the section has `ssl` keys.
    pub tls: Option<TlsSettings>,
}

impl Listen {
    /// Listening on `address`:`port` for `scheme` URLs, on a runtime of `worker_threads`
    /// threads (0: one per core).
    pub fn new(scheme: &'static str, address: IpAddr, port: u16, worker_threads: usize) -> Listen {
        Listen {
            address,
            port,
            scheme,
            worker_threads,
            tls: None,
        }
    }

    /// The same, over TLS when `tls` is set (URLs announced as `wss`, `https`, `mqtts`).
    pub fn with_tls(mut self, tls: Option<TlsSettings>) -> Listen {
        if tls.is_some() {
            self.scheme = TlsSettings::secure_scheme(self.scheme);
        }
        self.tls = tls;
        self
    }
}

/// What the tasks of a protocol's instance share, and how it serves a connection: what
/// [`Running::launch`] (and the type [`server!`](crate::server!) declares) starts from settings.
pub trait Service: Send + Sync + Sized + 'static {
    /// The instance's validated settings.
    type Settings;

    /// Where and how the instance listens.
    fn listen(settings: &Self::Settings) -> Listen;

    /// What the tasks of the instance named `name` share.
    fn new(name: &str, settings: Self::Settings, backend: Arc<dyn Backend>) -> Self;

    /// Serves one accepted connection (its TLS handshake done, if any), on the instance's
    /// runtime.
    fn serve(
        self: Arc<Self>,
        stream: Stream,
        peer: SocketAddr,
    ) -> impl Future<Output = ()> + Send + 'static;
}

/// Declares the plugin's running instance, `$name`, serving a [`Service`] (`$shared`): a
/// [`Running`] with `start(name, settings, backend)`, `from_init(host, config)` (settings that are
/// a [`Section`](crate::config::Section)), `local_address()` and, for the plugin's own methods,
/// `shared()`.
#[macro_export]
macro_rules! server {
    ($(#[$meta:meta])* $name:ident => $shared:ty) => {
        $(#[$meta])*
        #[derive(Debug)]
        pub struct $name {
            /// The runtime, the listener and what connections share.
            running: $crate::server::Running<$shared>,
        }

        impl $name {
            /// Binds the listener and starts serving. Fails if the port cannot be bound or the
            /// runtime cannot start.
            pub fn start(
                name: &str,
                settings: <$shared as $crate::server::Service>::Settings,
                backend: ::std::sync::Arc<dyn $crate::__api::Backend>,
            ) -> ::std::result::Result<$name, $crate::__api::BoxError> {
                let running = $crate::server::Running::launch(name, settings, backend)?;
                Ok($name { running })
            }

            /// The `init` hook's work: reads the protocol's section (and `[server]
            /// maxRequestSize`), then starts serving.
            pub fn from_init(
                host: $crate::__api::Host,
                config: &$crate::__api::InitConfig<'_>,
            ) -> ::std::result::Result<$name, $crate::__api::BoxError> {
                let settings = $crate::config::Section::from_init(config)?;
                $name::start(config.name, settings, ::std::sync::Arc::new(host))
            }

            /// The bound address.
            pub fn local_address(&self) -> ::std::net::SocketAddr {
                self.running.local_address()
            }

            /// What the instance's tasks share.
            fn shared(&self) -> &$shared {
                self.running.shared()
            }
        }
    };
}

/// Binds the listening socket (non-blocking, not yet tied to a runtime). The one place a
/// listener is made: a later host version will hand plugins pre-opened sockets, and only
/// `switchyard_plugin_api::net::bind_listener` will change.
pub fn bind(name: &str, listen: &Listen) -> Result<std::net::TcpListener, BoxError> {
    switchyard_plugin_api::net::bind_listener(name, listen.address, listen.port)
}

/// Registers a bound listener with the runtime of `handle`.
pub fn register(listener: std::net::TcpListener, handle: &Handle) -> Result<TcpListener, BoxError> {
    let _context = handle.enter();
    Ok(TcpListener::from_std(listener)?)
}

/// The URL of the address the listener is really bound to: `ws://0.0.0.0:7512` when it listens
/// on every interface, `ws://127.0.0.1:7512` when on loopback only. The ready line and
/// `server:info` say where the socket is, not a guess at how a client reaches it (issue 18).
pub fn announced_url(scheme: &str, bound: SocketAddr) -> String {
    format!("{scheme}://{bound}")
}

/// A listener's TLS from its settings, its certificates reloaded on SIGHUP on the runtime of
/// `handle`; `None` without `ssl` keys.
pub fn start_tls(
    settings: Option<TlsSettings>,
    handle: &Handle,
) -> Result<Option<Arc<Tls>>, BoxError> {
    let Some(settings) = settings else {
        return Ok(None);
    };
    let tls = Arc::new(Tls::new(settings));
    tls.reload_on_sighup(handle)?;
    Ok(Some(tls))
}

/// Accepts connections until the runtime stops, handing each to `serve`. While the host shuts
/// down, new connections are closed at once.
pub async fn accept_loop(
    listener: TcpListener,
    backend: Arc<dyn Backend>,
    mut serve: impl FnMut(TcpStream, SocketAddr),
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                if backend.is_shutting_down() {
                    debug!(peer = %peer, "refused: shutting down");
                    continue;
                }
                serve(stream, peer);
            }
            Err(error) => {
                // Out of file descriptors, most likely: back off instead of spinning.
                warn!(error = %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A running instance on one tokio runtime: its listener's accept loop spawns one task per
/// connection. Dropping it stops the runtime (and every connection with it).
pub struct Running<S> {
    /// What every task of the instance shares (settings, registry, the host).
    shared: Arc<S>,
    /// The instance's own runtime.
    runtime: InstanceRuntime,
    /// The address actually bound (the real port when 0 was asked).
    local_address: SocketAddr,
}

impl<S> std::fmt::Debug for Running<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("local_address", &self.local_address)
            .finish_non_exhaustive()
    }
}

impl<S: Service> Running<S> {
    /// Starts a [`Service`]: its listener from its settings, what its tasks share, its
    /// connections served by [`Service::serve`].
    pub fn launch(
        name: &str,
        settings: S::Settings,
        backend: Arc<dyn Backend>,
    ) -> Result<Running<S>, BoxError> {
        let listen = S::listen(&settings);
        let shared = S::new(name, settings, backend.clone());
        Running::start(name, listen, backend, shared, S::serve)
    }
}

impl<S: Send + Sync + 'static> Running<S> {
    /// Binds the listener, starts the runtime, serves each connection with `serve` on it, and
    /// announces the listener to the host. Fails if the port cannot be bound or the runtime
    /// cannot start.
    pub fn start<F, Fut>(
        name: &str,
        listen: Listen,
        backend: Arc<dyn Backend>,
        shared: S,
        serve: F,
    ) -> Result<Running<S>, BoxError>
    where
        F: Fn(Arc<S>, Stream, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = bind(name, &listen)?;
        let local_address = listener.local_addr()?;
        let runtime = InstanceRuntime::start(name, listen.scheme, listen.worker_threads, &backend)?;
        let listener = register(listener, runtime.handle())?;
        let tls = start_tls(listen.tls, runtime.handle())?;
        let shared = Arc::new(shared);
        let for_tasks = shared.clone();
        runtime.handle().spawn(accept_loop(
            listener,
            backend.clone(),
            move |stream, peer| match &tls {
                None => {
                    tokio::spawn(serve(for_tasks.clone(), Stream::Plain(stream), peer));
                }
                Some(tls) => {
                    let (tls, shared, serve) = (tls.clone(), for_tasks.clone(), serve.clone());
                    tokio::spawn(async move {
                        if let Some(stream) = tls.accept(stream, peer).await {
                            serve(shared, stream, peer).await;
                        }
                    });
                }
            },
        ));
        backend.announce_listener(&announced_url(listen.scheme, local_address));
        Ok(Running {
            shared,
            runtime,
            local_address,
        })
    }

    /// What the instance's tasks share.
    pub fn shared(&self) -> &Arc<S> {
        &self.shared
    }

    /// The instance's runtime (to spawn on it from a host thread).
    pub fn handle(&self) -> &Handle {
        self.runtime.handle()
    }

    /// The bound address.
    pub fn local_address(&self) -> SocketAddr {
        self.local_address
    }
}
