//! `socketio-fanout`: the extension point for the Socket.io plugin (`plugins/socketio`, being
//! written, with its own interim bench against npm `socket.io` in `plugins/socketio/benches/`).
//! Until it moves here the scenario is listed, and refuses to run with a message saying so.
//!
//! What moving it here takes (the same shape as `mqtt.rs`):
//! 1. `target.rs`: a `Protocol::SocketIo` variant; its switchyard section
//!    `protocol_section("socketio", "socketio", "port = 0\naddress = \"127.0.0.1\"")`; its
//!    baseline — npm `socket.io` 4.x (`tests/js/socketio/reference_server.js`, started with
//!    `node` after `switchyard_tests::node_modules()`, printing `listening on HOST:PORT` like the
//!    other baselines) — in `Running::start`, failing with the npm command when Node is missing.
//! 2. A minimal client over `WsClient::connect_path(address,
//!    "/socket.io/?EIO=4&transport=websocket")`: read the Engine.IO open packet `0{…}`, send
//!    `40`, wait for `40{"sid":…}`, answer each ping `2` with `3`; count text frames starting
//!    with `42` (events) on one thread; the publisher on another, with the window of
//!    `ws-fanout`.
//! 3. Subscribing: for switchyard, emit `42["kuzzle",{"controller":"realtime","action":
//!    "subscribe",…,"requestId":"sub"}]`, wait for the event named `sub`, and count the events
//!    named after `result.channel`; publishing is `realtime:publish` on the `kuzzle` event. For
//!    the npm server, the reference script's own `join`/`publish` events.
//! 4. `tests/smoke.rs`: a short run with counts (every message reaches every subscriber), and
//!    the figures at 100 and 1000 subscribers in `BENCHMARKS.md`.

use serde_json::Value;

use crate::Settings;

/// `socketio-fanout`: not yet (see the module's documentation).
pub fn socketio_fanout(_settings: &Settings) -> anyhow::Result<Value> {
    anyhow::bail!(
        "socketio-fanout is not implemented yet: the Socket.io plugin is still being written \
         (its interim bench: cargo bench -p plugin-socketio --bench fanout). \
         bench/src/scenarios/socketio.rs says what adding the scenario takes"
    )
}
