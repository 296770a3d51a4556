//! Graceful shutdown: refuse new requests, let in-flight ones finish, close connections.
//!
//! WebSocket clients must be closed with "going away", never a normal close (the Kuzzle SDK
//! does not reconnect after one), and not all in the same instant, so they do not all come
//! back in the same second: closes are spread over `CLOSE_WINDOW`.

use std::time::{Duration, Instant};

use switchyard_plugin_api::DisconnectReason;

use crate::entry_point::EntryPoint;

/// Closes are spread over this window when there are many connections.
const CLOSE_WINDOW: Duration = Duration::from_millis(500);
/// Up to this many connections are closed at once, without spreading.
const CLOSE_AT_ONCE: usize = 100;
/// How long protocols get to report their connections closed.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Shuts the host down; returns when it is safe to exit.
pub fn shutdown(entry: &EntryPoint) {
    entry.begin_shutdown();
    let deadline = entry.config.shutdown_timeout;
    tracing::info!(
        deadline_ms = deadline.as_millis() as u64,
        "shutting down: new requests are refused; waiting for requests in flight"
    );
    let unfinished = entry.drain(deadline);
    if unfinished > 0 {
        tracing::warn!(
            unfinished,
            "requests still running at the shutdown deadline"
        );
    }

    let connections = entry.connection_ids();
    let protocols = entry.protocols();
    let batches = if connections.len() <= CLOSE_AT_ONCE {
        1
    } else {
        10
    };
    let batch_size = connections.len().div_ceil(batches).max(1);
    let pause = CLOSE_WINDOW / batches as u32;
    for (number, batch) in connections.chunks(batch_size).enumerate() {
        if number > 0 {
            std::thread::sleep(pause);
        }
        for (connection, protocol) in batch {
            if let Some(protocol) = protocols.get(*protocol) {
                protocol.disconnect(
                    *connection,
                    DisconnectReason::SHUTDOWN,
                    "server shutting down",
                );
            }
        }
    }

    let until = Instant::now() + CLOSE_GRACE;
    while entry.connection_count() > 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    tracing::info!("stopped");
}
