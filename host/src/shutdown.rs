//! Graceful shutdown: refuse new requests, let in-flight ones finish, close connections; and
//! the same drain after a hot upgrade handed the listeners to a new process (`hand_over`).
//!
//! WebSocket clients must be closed with "going away", never a normal close (the Kuzzle SDK
//! does not reconnect after one), and not all in the same instant, so they do not all come
//! back in the same second: closes are spread over `CLOSE_WINDOW`.

use std::time::{Duration, Instant};

use switchyard_plugin_api::DisconnectReason;

use crate::entry_point::EntryPoint;

/// Closes are spread over this window when there are many connections.
const CLOSE_WINDOW: Duration = Duration::from_millis(500);
/// After the last connection is reported closed, protocols get this long to flush what they
/// queued (close frames) before the process exits. Plugins report a connection closed as soon
/// as they start closing it; exiting at once could cut the close frame off.
const CLOSE_LINGER: Duration = Duration::from_millis(100);
/// Up to this many connections are closed at once, without spreading.
const CLOSE_AT_ONCE: usize = 100;
/// After a hand-over, how long protocols keep serving before the drain: their accept loops
/// notice within 100 ms (`plugin-kit`'s `accept_loop`), and a client they accepted meanwhile
/// sends its request and is answered instead of being refused.
const HANDOVER_GRACE: Duration = Duration::from_millis(300);
/// While waiting for the last connection, how often connections declared after the close pass
/// (accepted just as the protocols stopped accepting) are asked to close too.
const LATE_SWEEP: Duration = Duration::from_millis(100);

/// The drain after a hot upgrade: the new process holds the listeners and passed its checks.
/// Protocols stop accepting (the host reports `is_shutting_down`), the host drops its own
/// copies of the sockets, and after [`HANDOVER_GRACE`] the connections are drained as in a
/// shutdown, closed with `DisconnectReason::RESTART` (WebSocket 1012, "service restart").
pub fn hand_over(entry: &EntryPoint) {
    entry.begin_handover();
    entry.services.listeners.close_all();
    tracing::info!("handed the listeners over: no longer accepting connections");
    // Pacing, not polling: the grace is the protocols' time to stop accepting.
    std::thread::sleep(HANDOVER_GRACE);
    drain_and_close(entry, DisconnectReason::RESTART, "service restart");
}

/// Shuts the host down; returns when it is safe to exit. The whole sequence takes at most
/// `server.shutdownTimeout`: requests in flight get that long to finish, and protocols get
/// what is left of it to report their connections closed.
///
/// One signal starts it: the drain (`admission.rs`) refuses every request admitted after it,
/// atomically with the in-flight count, and its completion is awaited on a condition
/// variable, as is the last connection's removal (woken every [`LATE_SWEEP`] to close the
/// connections a protocol declared after the close pass).
pub fn shutdown(entry: &EntryPoint) {
    drain_and_close(entry, DisconnectReason::SHUTDOWN, "server shutting down");
}

/// Refuses new requests, waits for the ones in flight, then closes every connection with
/// `reason`, spread over [`CLOSE_WINDOW`].
fn drain_and_close(entry: &EntryPoint, reason: DisconnectReason, message: &str) {
    let timeout = entry.config().shutdown_timeout;
    let deadline = Instant::now() + timeout;
    entry.stop_admitting();
    tracing::info!(
        deadline_ms = timeout.as_millis() as u64,
        "shutting down: new requests are refused; waiting for requests in flight"
    );
    let unfinished = entry.drain(deadline);
    if unfinished > 0 {
        tracing::warn!(
            unfinished,
            "requests still running at the shutdown deadline"
        );
    }

    let services = &entry.services;
    let connections = services.connections.ids();
    let batches = if connections.len() <= CLOSE_AT_ONCE {
        1
    } else {
        10
    };
    let batch_size = connections.len().div_ceil(batches).max(1);
    let pause = CLOSE_WINDOW / batches as u32;
    for (number, batch) in connections.chunks(batch_size).enumerate() {
        if number > 0 {
            // Pacing, not polling: spreads reconnections over CLOSE_WINDOW.
            std::thread::sleep(pause);
        }
        for (connection, protocol) in batch {
            if let Some(protocol) = services.protocols.get(*protocol) {
                protocol.disconnect(*connection, reason, message);
            }
        }
    }

    // A protocol may still declare a connection it accepted just before it noticed the
    // shutdown (it serves it rather than drop it): those are closed too, as they appear.
    let mut asked: std::collections::HashSet<_> = connections
        .iter()
        .map(|(connection, _)| *connection)
        .collect();
    let left_open = loop {
        let slice_end = (Instant::now() + LATE_SWEEP).min(deadline);
        let left_open = services.connections.wait_until_empty(slice_end);
        if left_open == 0 || Instant::now() >= deadline {
            break left_open;
        }
        for (connection, protocol) in services.connections.ids() {
            if asked.insert(connection) {
                if let Some(protocol) = services.protocols.get(protocol) {
                    protocol.disconnect(connection, reason, message);
                }
            }
        }
    };
    if left_open > 0 {
        tracing::warn!(left_open, "connections still open at the shutdown deadline");
    }
    if !connections.is_empty() {
        std::thread::sleep(CLOSE_LINGER.min(deadline.saturating_duration_since(Instant::now())));
    }
    tracing::info!("stopped");
}
