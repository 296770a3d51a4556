//! The safe SDK: the `Protocol` trait a plugin implements and the `Host` handle it calls.
//!
//! A plugin author writes no `unsafe`: `export_protocol!` wires the trait to the ABI, and the
//! trampolines in `export.rs` catch every panic before it reaches the boundary.

use std::ffi::c_void;
use std::fmt;

use abi_stable::std_types::{RSlice, RStr};
use serde::de::DeserializeOwned;

use crate::abi::{
    ConnectionId, DisconnectReason, FfiCallback, FfiHost, FfiResponse, FfiStatsSink, LogLevel,
    StatId,
};

/// Any error, as `init` returns it; only its text crosses the boundary.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A network protocol served through the host. One value per `[server.protocols.<name>]`
/// section: a library enabled twice gets two instances.
///
/// Threading: every method may be called from any host thread, concurrently, and re-entrantly
/// from inside a `Host` call. Each must return quickly — enqueue work on the plugin's own
/// runtime, never block on I/O. A panic is caught, logged by the host with the plugin's name,
/// and counted (`ABI.md`, "Panics").
pub trait Protocol: Sized + Send + Sync + 'static {
    /// Starts an instance: parse `config`, bind listeners, start the plugin's own threads.
    /// An error (or a panic) stops the host from starting, with the error's text shown.
    fn init(host: Host, config: InitConfig<'_>) -> Result<Self, BoxError>;

    /// Delivers `payload` (a JSON object) to every connection of this instance that joined one
    /// of `channels`. Called on every loaded protocol for every notification.
    fn broadcast(&self, channels: Channels<'_>, payload: &str);

    /// Delivers `payload` to one connection, once for each of `channels`.
    fn notify(&self, connection: ConnectionId, channels: Channels<'_>, payload: &str);

    /// `connection` joins `channel`. Called again for a pair already joined: must be idempotent.
    fn join_channel(&self, channel: &str, connection: ConnectionId);

    /// `connection` leaves `channel`. May name pairs never joined, or a connection already
    /// removed: ignore them.
    fn leave_channel(&self, channel: &str, connection: ConnectionId);

    /// Closes `connection`; `reason` says why (`SHUTDOWN`: the client should come back later).
    fn disconnect(&self, connection: ConnectionId, reason: DisconnectReason, message: &str);

    /// Writes this instance's counters into `sink` (since 1.2): the host calls it when it is
    /// asked for them (`server:info`, `/metrics`), from any host thread. Keep the counting
    /// cheap where it happens and the summing here. The default reports nothing.
    fn stats(&self, sink: &mut StatsSink<'_>) {
        let _ = sink;
    }
}

/// Where [`Protocol::stats`] writes its figures (see [`StatId`] for what each means).
pub struct StatsSink<'a> {
    record: &'a mut dyn FnMut(StatId, u64),
}

impl<'a> StatsSink<'a> {
    /// A sink that hands every figure to `record` (the SDK's trampoline, or a test).
    pub fn new(record: &'a mut dyn FnMut(StatId, u64)) -> StatsSink<'a> {
        StatsSink { record }
    }

    /// Reports `value` for `stat`: a total since start for a counter, the current value for a
    /// gauge.
    pub fn record(&mut self, stat: StatId, value: u64) {
        (self.record)(stat, value)
    }
}

impl fmt::Debug for StatsSink<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatsSink").finish_non_exhaustive()
    }
}

/// The host's sink as a closure: each figure goes to `sink.record` during the hook.
pub(crate) fn ffi_sink_record(sink: FfiStatsSink) -> impl FnMut(StatId, u64) {
    move |stat, value| (sink.record)(sink.context, stat, value)
}

/// The channels of a `broadcast` or `notify`, borrowed for the call.
#[derive(Clone, Copy)]
pub struct Channels<'a>(pub(crate) RSlice<'a, RStr<'a>>);

impl<'a> Channels<'a> {
    /// How many channels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The channels, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a str> + 'a {
        let slice: &'a [RStr<'a>] = self.0.as_slice();
        slice.iter().map(|channel| channel.as_str())
    }
}

impl fmt::Debug for Channels<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// What `init` is given: the protocol's name and configuration.
#[derive(Debug, Clone, Copy)]
pub struct InitConfig<'a> {
    /// The protocol's name (its config section), e.g. `websocket`.
    pub name: &'a str,
    /// The protocol's section as JSON, without the host's keys (`enabled`, `library`).
    pub config: &'a str,
    /// The whole `[server]` table as JSON.
    pub server: &'a str,
}

impl InitConfig<'_> {
    /// Deserializes the protocol's section. Errors name the offending key by its full path
    /// (`server.protocols.websocket.port: invalid type: …`), so the operator can find it.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, BoxError> {
        let mut deserializer = serde_json::Deserializer::from_str(self.config);
        serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            let path = error.path().to_string();
            let key = if path == "." {
                format!("server.protocols.{}", self.name)
            } else {
                format!("server.protocols.{}.{}", self.name, path)
            };
            format!("{key}: {}", without_position(error.inner())).into()
        })
    }

    /// The largest request the protocol accepts, in bytes: `own` (its section's
    /// `maxRequestSize`) when set, else `[server] maxRequestSize`, else
    /// [`DEFAULT_MAX_REQUEST_SIZE`](crate::config::DEFAULT_MAX_REQUEST_SIZE). Range checks are
    /// the protocol's (what is too large differs).
    pub fn max_request_size(&self, own: Option<crate::config::Size>) -> Result<u64, BoxError> {
        /// The one key of `[server]` a protocol inherits; the others belong to the host.
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Server {
            #[serde(default)]
            max_request_size: Option<crate::config::Size>,
        }
        if let Some(own) = own {
            return Ok(own.0);
        }
        let server: Server = self.parse_server()?;
        Ok(server
            .max_request_size
            .map_or(crate::config::DEFAULT_MAX_REQUEST_SIZE, |size| size.0))
    }

    /// Deserializes the `[server]` table (host-wide settings such as `maxRequestSize`).
    pub fn parse_server<T: DeserializeOwned>(&self) -> Result<T, BoxError> {
        let mut deserializer = serde_json::Deserializer::from_str(self.server);
        serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            format!(
                "server.{}: {}",
                error.path(),
                without_position(error.inner())
            )
            .into()
        })
    }
}

/// serde_json's message without its ` at line 1 column 7` tail: the position is in the JSON
/// the host made from `config.toml`, which would only mislead the operator.
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let tail = format!(" at line {} column {}", error.line(), error.column());
    text.strip_suffix(&tail).map(str::to_string).unwrap_or(text)
}

/// The answer to an `execute`, borrowed for the duration of the callback.
#[derive(Debug, Clone, Copy)]
pub struct Response<'a> {
    /// HTTP-like status.
    pub status: u16,
    /// The request's id.
    pub request_id: &'a str,
    /// Kuzzle's response `content`, a JSON object.
    pub content: &'a str,
    /// Headers an action set, a JSON object (usually `{}`).
    pub headers: &'a str,
}

impl<'a> From<FfiResponse<'a>> for Response<'a> {
    fn from(response: FfiResponse<'a>) -> Self {
        Response {
            status: response.status,
            request_id: response.request_id.as_str(),
            content: response.content.as_str(),
            headers: response.headers.as_str(),
        }
    }
}

/// The host, as a protocol instance sees it (Kuzzle's *entry point*). Cheap to copy; safe to
/// use from any thread.
#[derive(Clone, Copy)]
pub struct Host {
    ffi: FfiHost,
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host").finish_non_exhaustive()
    }
}

impl Host {
    pub(crate) fn new(ffi: FfiHost) -> Self {
        Host { ffi }
    }

    /// Declares a client connection; call it before `execute` for that connection.
    /// `ips` are the client's addresses (the socket's peer first); `headers` the request
    /// headers a client sent when connecting, if any.
    pub fn new_connection(&self, ips: &[&str], headers: &[(&str, &str)]) -> ConnectionId {
        // Usually one address (the peer): no allocation for a few.
        let mut few = [RStr::from_str(""); 4];
        let many: Vec<RStr<'_>>;
        let ips: &[RStr<'_>] = if ips.len() <= few.len() {
            for (slot, ip) in few.iter_mut().zip(ips) {
                *slot = RStr::from_str(ip);
            }
            &few[..ips.len()]
        } else {
            many = ips.iter().map(|ip| RStr::from_str(ip)).collect();
            &many
        };
        let mut headers_json = String::with_capacity(2 + headers.len() * 32);
        headers_json.push('{');
        for (index, (name, value)) in headers.iter().enumerate() {
            if index > 0 {
                headers_json.push(',');
            }
            // Header names are case-insensitive; Kuzzle keys them in lower case. Most clients
            // already send them so (hyper always does): only copy when one is not.
            if name.bytes().any(|byte| byte.is_ascii_uppercase()) {
                crate::json::push_str(&mut headers_json, &name.to_ascii_lowercase());
            } else {
                crate::json::push_str(&mut headers_json, name);
            }
            headers_json.push(':');
            crate::json::push_str(&mut headers_json, value);
        }
        headers_json.push('}');
        (self.ffi.vtable.new_connection())(
            self.ffi,
            RSlice::from_slice(ips),
            RStr::from_str(&headers_json),
        )
    }

    /// Forgets a connection (it closed). The host makes it leave every channel it joined,
    /// calling `leave_channel` on this instance, possibly before this call returns.
    pub fn remove_connection(&self, connection: ConnectionId) {
        (self.ffi.vtable.remove_connection())(self.ffi, connection)
    }

    /// Runs an API request (Kuzzle's JSON request) for `connection`. `on_response` runs exactly
    /// once: maybe before `execute` returns, maybe later on a host thread. It must not block.
    pub fn execute<F>(&self, connection: ConnectionId, request_json: &str, on_response: F)
    where
        F: FnOnce(Response<'_>) + Send + 'static,
    {
        let callback = FfiCallback {
            call: crate::export::callback_trampoline::<F>,
            context: Box::into_raw(Box::new(on_response)).cast::<c_void>(),
        };
        (self.ffi.vtable.execute())(self.ffi, connection, RStr::from_str(request_json), callback)
    }

    /// Writes to the host's log, tagged with this plugin's name. Prefer `tracing`'s macros:
    /// the SDK forwards them here.
    pub fn log(&self, level: LogLevel, target: &str, message: &str) {
        (self.ffi.vtable.log())(
            self.ffi,
            level,
            RStr::from_str(target),
            RStr::from_str(message),
        )
    }

    /// From now on, `tracing` events made on the current thread are logged under this
    /// instance's protocol name. Call it first thing on every thread the instance starts (with
    /// tokio: `Builder::on_thread_start`); `init` is already tagged. Without it, a library
    /// loaded as two protocols logs everything under the first one's name.
    pub fn tag_thread_logs(&self) {
        crate::logging::set_thread_host(Some(self.ffi));
    }

    /// Tells the host where this instance listens, as a URL (`ws://127.0.0.1:7512`); the host
    /// names it in its ready line. Call it from `init`, once per listener, after binding.
    pub fn announce_listener(&self, address: &str) {
        (self.ffi.vtable.announce_listener())(self.ffi, RStr::from_str(address))
    }

    /// True once the host has started shutting down: stop accepting connections.
    pub fn is_shutting_down(&self) -> bool {
        (self.ffi.vtable.is_shutting_down())(self.ffi)
    }

    /// A listening socket for `address:port` owned by the host (since 1.3): one the host made,
    /// or the one it inherited from the process it replaced (a hot upgrade hands listeners
    /// over, so no client is refused). `None` on a host that predates it: bind your own (no
    /// hand-over then). [`crate::net::bind_listener`] does all of this; call that.
    #[cfg(unix)]
    pub fn take_listener(
        &self,
        address: std::net::IpAddr,
        port: u16,
    ) -> Option<Result<std::net::TcpListener, BoxError>> {
        let listener = self.ffi.vtable.listener()?;
        let address = address.to_string();
        Some(match listener(self.ffi, RStr::from_str(&address), port) {
            abi_stable::std_types::ROk(fd) => crate::abi::listener_from_host(fd)
                .ok_or_else(|| format!("the host gave an invalid descriptor ({fd})").into()),
            abi_stable::std_types::RErr(message) => Err(message.into_string().into()),
        })
    }

    /// Tells the host this instance's outgoing queues passed their high-water mark
    /// (`congested`) or drained below the low-water mark, so it paces the requests that fan
    /// out. Call it on crossings only. Does nothing on a host that predates it.
    pub fn report_pressure(&self, congested: bool) {
        if let Some(report) = self.ffi.vtable.report_pressure() {
            report(self.ffi, congested)
        }
    }
}

/// The continuation of an `execute`, boxed: runs exactly once, on any thread; it must only
/// enqueue.
pub type ResponseCallback = Box<dyn FnOnce(Response<'_>) + Send>;

/// The host's entry point as a trait, so a protocol's code can run against a fake host in its
/// tests (a `Host` is only made by the SDK's `init` trampoline). `Host` implements it.
pub trait Backend: Send + Sync + 'static {
    /// See [`Host::new_connection`].
    fn new_connection(&self, ips: &[&str], headers: &[(&str, &str)]) -> ConnectionId;
    /// See [`Host::remove_connection`].
    fn remove_connection(&self, connection: ConnectionId);
    /// See [`Host::execute`].
    fn execute(&self, connection: ConnectionId, request: &str, on_response: ResponseCallback);
    /// See [`Host::announce_listener`].
    fn announce_listener(&self, address: &str);
    /// See [`Host::is_shutting_down`].
    fn is_shutting_down(&self) -> bool;
    /// See [`Host::tag_thread_logs`]. A fake host need not do anything.
    fn tag_thread_logs(&self) {}
    /// See [`Host::report_pressure`]. A fake host need not do anything.
    fn report_pressure(&self, congested: bool) {
        let _ = congested;
    }
}

impl Backend for Host {
    fn new_connection(&self, ips: &[&str], headers: &[(&str, &str)]) -> ConnectionId {
        Host::new_connection(self, ips, headers)
    }

    fn remove_connection(&self, connection: ConnectionId) {
        Host::remove_connection(self, connection)
    }

    fn execute(&self, connection: ConnectionId, request: &str, on_response: ResponseCallback) {
        Host::execute(self, connection, request, on_response)
    }

    fn announce_listener(&self, address: &str) {
        Host::announce_listener(self, address)
    }

    fn is_shutting_down(&self) -> bool {
        Host::is_shutting_down(self)
    }

    fn tag_thread_logs(&self) {
        Host::tag_thread_logs(self)
    }

    fn report_pressure(&self, congested: bool) {
        Host::report_pressure(self, congested)
    }
}
