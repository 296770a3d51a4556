//! Server scaffolding: the listener, the instance's runtime, the accept loop and its shutdown
//! check, the same for every protocol. The accept loop asks the listener's `Gate` about every
//! connection (per-address limits, the descriptor reserve) and hands refused ones to
//! `Service::refuse`, bounded in time and number.
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
use tracing::debug;

use crate::gate::{Admitted, ConnectionLimits, Gate, Refusal, REFUSAL_TIMEOUT};

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
    /// Per-address limits and the descriptor reserve (the defaults unless
    /// [`Listen::with_limits`] says otherwise).
    pub limits: ConnectionLimits,
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
            limits: ConnectionLimits::default(),
            tls: None,
        }
    }

    /// The same, enforcing `limits` in the accept loop.
    pub fn with_limits(self, limits: ConnectionLimits) -> Listen {
        Listen { limits, ..self }
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

    /// Tells a connection the accept loop refused why, in the protocol's own terms (see
    /// `refusal::answer`), then closes it. The loop bounds it in time
    /// ([`REFUSAL_TIMEOUT`]). By default the connection is just closed.
    fn refuse(
        self: Arc<Self>,
        stream: TcpStream,
        refusal: Refusal,
    ) -> impl Future<Output = ()> + Send + 'static {
        let _ = refusal;
        async move { drop((self, stream)) }
    }
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

            /// The listener's gate: its per-address limits and refusal count.
            fn gate(&self) -> &$crate::gate::Gate {
                self.running.gate()
            }
        }
    };
}

/// The listening socket (non-blocking, not yet tied to a runtime): the host's (since
/// plugin-api 1.3, handed over to the next process in a hot upgrade), or one bound here on an
/// older host. The one place a listener is made: `switchyard_plugin_api::net::bind_listener`.
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

/// How often an accept loop waiting for a client checks whether the host began shutting down
/// (or handing its listeners to a new process): the loop must then stop calling `accept`.
const SHUTDOWN_CHECK: Duration = Duration::from_millis(100);

/// Accepts connections until the host shuts down or hands its listeners over to a new process
/// (a hot upgrade), then drops its listener: from then on the clients queued on the socket are
/// the new process's. A connection accepted before the loop noticed is served, not dropped
/// (the host still answers during its drain), so no client is refused while the process is
/// replaced.
///
/// `gate` admits each: `serve` gets the admitted ones with their [`Admitted`] (to hold until
/// the connection ends); a refused one is counted, logged (one line per second) and, unless the
/// refusal is for descriptors, handed to `refuse`, whose answer runs on its own task for at
/// most [`REFUSAL_TIMEOUT`] — or is closed at once when
/// [`crate::gate::MAX_REFUSALS_IN_PROGRESS`] are being written.
///
/// Out of descriptors (EMFILE), `accept` fails and the pending connection stays queued, so the
/// loop would wake again at once: the loop keeps one spare descriptor (`/dev/null`), closes it
/// to accept that connection and close it, then opens it again.
pub async fn accept_loop<Refused>(
    listener: TcpListener,
    backend: Arc<dyn Backend>,
    gate: Arc<Gate>,
    mut serve: impl FnMut(TcpStream, SocketAddr, Admitted),
    refuse: impl Fn(TcpStream, Refusal) -> Refused,
) where
    Refused: Future<Output = ()> + Send + 'static,
{
    let mut spare = open_spare();
    let mut check = tokio::time::interval(SHUTDOWN_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    match gate.admit(&stream, peer.ip()) {
                        Ok(admitted) => serve(stream, peer, admitted),
                        Err(refusal) => {
                            gate.refused(peer.ip(), refusal);
                            // Past the reserve, answering would hold a descriptor the host
                            // needs.
                            if refusal != Refusal::OutOfFileDescriptors {
                                if let Some(slot) = gate.refusal_slot() {
                                    let answer = refuse(stream, refusal);
                                    tokio::spawn(async move {
                                        let _slot = slot;
                                        let _ = tokio::time::timeout(REFUSAL_TIMEOUT, answer).await;
                                    });
                                }
                            }
                        }
                    }
                    if backend.is_shutting_down() {
                        break;
                    }
                }
                Err(error) => {
                    gate.accept_failed(&error);
                    if is_out_of_descriptors(&error) {
                        if let Some(file) = spare.take() {
                            drop(file);
                            // Polled once: the connection that failed is still queued.
                            let accepted =
                                tokio::time::timeout(Duration::ZERO, listener.accept()).await;
                            if let Ok(Ok((stream, peer))) = accepted {
                                gate.refused(peer.ip(), Refusal::OutOfFileDescriptors);
                                drop(stream);
                            }
                            spare = open_spare();
                            if spare.is_some() {
                                continue;
                            }
                        }
                    }
                    // No spare to give (another thread took the descriptor), or another
                    // error: back off instead of spinning, then try to get a spare again.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if spare.is_none() {
                        spare = open_spare();
                    }
                }
            },
            _ = check.tick() => {
                if backend.is_shutting_down() {
                    break;
                }
            }
        }
    }
    debug!("stopped accepting: the host is shutting down");
}

/// The spare descriptor the accept loop gives up to drain a connection when out of them.
fn open_spare() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

/// EMFILE (the process's limit) or ENFILE (the system's).
fn is_out_of_descriptors(error: &std::io::Error) -> bool {
    let code = error.raw_os_error();
    code == Some(rustix::io::Errno::MFILE.raw_os_error())
        || code == Some(rustix::io::Errno::NFILE.raw_os_error())
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
    /// Who gets in: per-address limits, the descriptor reserve, refusals counted.
    gate: Arc<Gate>,
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
        Running::start(name, listen, backend, shared, S::serve, S::refuse)
    }
}

impl<S: Send + Sync + 'static> Running<S> {
    /// Binds the listener, starts the runtime, serves each connection with `serve` on it (the
    /// task holding the connection's place in its address's count), answers refused ones with
    /// `refuse`, and announces the listener to the host. Fails if the port cannot be bound or
    /// the runtime cannot start.
    pub fn start<F, Fut, R, RFut>(
        name: &str,
        listen: Listen,
        backend: Arc<dyn Backend>,
        shared: S,
        serve: F,
        refuse: R,
    ) -> Result<Running<S>, BoxError>
    where
        F: Fn(Arc<S>, Stream, SocketAddr) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
        R: Fn(Arc<S>, TcpStream, Refusal) -> RFut + Send + 'static,
        RFut: Future<Output = ()> + Send + 'static,
    {
        let listener = bind(name, &listen)?;
        let local_address = listener.local_addr()?;
        let runtime = InstanceRuntime::start(name, listen.scheme, listen.worker_threads, &backend)?;
        let listener = register(listener, runtime.handle())?;
        let tls = start_tls(listen.tls, runtime.handle())?;
        let shared = Arc::new(shared);
        let gate = Arc::new(Gate::new(listen.limits));
        let for_tasks = shared.clone();
        let for_refusals = shared.clone();
        runtime.handle().spawn(accept_loop(
            listener,
            backend.clone(),
            gate.clone(),
            move |stream, peer, admitted| {
                let (tls, shared, serve) = (tls.clone(), for_tasks.clone(), serve.clone());
                tokio::spawn(async move {
                    // The address's slot is given back when the connection's task ends.
                    let _admitted = admitted;
                    match tls {
                        None => serve(shared, Stream::Plain(stream), peer).await,
                        Some(tls) => {
                            if let Some(stream) = tls.accept(stream, peer).await {
                                serve(shared, stream, peer).await;
                            }
                        }
                    }
                });
            },
            move |stream, refusal| refuse(for_refusals.clone(), stream, refusal),
        ));
        backend.announce_listener(&announced_url(listen.scheme, local_address));
        Ok(Running {
            shared,
            runtime,
            local_address,
            gate,
        })
    }

    /// The listener's gate.
    pub fn gate(&self) -> &Gate {
        &self.gate
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
