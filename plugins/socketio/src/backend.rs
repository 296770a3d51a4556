//! What the plugin needs from the host, as a trait: the real `Host` in production, a fake in
//! tests (the SDK's `Host` can only be built by the SDK's `init` trampoline).

use switchyard_plugin_api::{ConnectionId, Host, Response};

/// The continuation of an `execute`: runs exactly once, on any thread; it must only enqueue.
pub type ResponseCallback = Box<dyn FnOnce(Response<'_>) + Send>;

/// The host's entry point, as this plugin uses it.
pub trait Backend: Send + Sync + 'static {
    /// Declares a connection (a client joined the main namespace).
    fn new_connection(&self, ips: &[&str], headers: &[(&str, &str)]) -> ConnectionId;
    /// Forgets a connection; called exactly once per `new_connection`.
    fn remove_connection(&self, connection: ConnectionId);
    /// Runs one API request.
    fn execute(&self, connection: ConnectionId, request: &str, on_response: ResponseCallback);
    /// Tells the host where this instance listens.
    fn announce_listener(&self, address: &str);
    /// True once the host is shutting down: new sessions are refused.
    fn is_shutting_down(&self) -> bool;
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
}
