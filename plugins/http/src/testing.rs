//! A fake host for tests and the benchmark's baseline: answers `server:info` with a small
//! route table and any other request with a canned response, recording connections.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use switchyard_plugin_api::{ConnectionId, Response};

use switchyard_plugin_api::{Backend, ResponseCallback};

/// The routes the fake host publishes.
pub const ROUTES: &str = r#"{"server":{"now":{"controller":"server","action":"now","http":[{"verb":"get","url":"/_now"}]}},"realtime":{"publish":{"controller":"realtime","action":"publish","http":[{"verb":"post","url":"/:index/:collection/_publish"}]},"subscribe":{"controller":"realtime","action":"subscribe","http":[]}}}"#;

/// A host that records what it is asked and echoes requests back as `result`.
#[derive(Debug, Default)]
pub struct FakeHost {
    next_id: AtomicU64,
    /// Live connections and their ips.
    pub connections: Mutex<Vec<(ConnectionId, Vec<String>)>>,
    /// Every request executed, as JSON text.
    pub requests: Mutex<Vec<String>>,
    /// What `is_shutting_down` answers.
    pub shutting_down: AtomicBool,
    /// Every announced listener.
    pub listeners: Mutex<Vec<String>>,
}

impl Backend for FakeHost {
    fn new_connection(&self, ips: &[&str], _headers: &[(&str, &str)]) -> ConnectionId {
        let id = ConnectionId(self.next_id.fetch_add(1, Ordering::Relaxed) + 1);
        self.connections
            .lock()
            .push((id, ips.iter().map(|ip| ip.to_string()).collect()));
        id
    }

    fn remove_connection(&self, connection: ConnectionId) {
        self.connections.lock().retain(|(id, _)| *id != connection);
    }

    fn execute(&self, _connection: ConnectionId, request: &str, on_response: ResponseCallback) {
        self.requests.lock().push(request.to_string());
        let parsed: serde_json::Value = serde_json::from_str(request).unwrap_or_default();
        let request_id = parsed["requestId"].as_str().unwrap_or_default().to_string();
        let content = if parsed["action"] == "info" {
            format!(
                r#"{{"status":200,"result":{{"serverInfo":{{"kuzzle":{{"api":{{"routes":{ROUTES}}}}}}}}}}}"#
            )
        } else {
            format!(
                r#"{{"requestId":{},"status":200,"error":null,"result":{request}}}"#,
                serde_json::Value::String(request_id.clone())
            )
        };
        on_response(Response {
            status: 200,
            request_id: &request_id,
            content: &content,
            headers: "{}",
        });
    }

    fn announce_listener(&self, address: &str) {
        self.listeners.lock().push(address.to_string());
    }

    fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}
