//! The admin page: its static files, built into the binary, and `/api/overview`, the JSON
//! it polls once a second.
//!
//! The overview carries counters (requests answered, notifications handed to the protocols,
//! and what plugins report), not rates: the page keeps the last minutes of samples and
//! charts the differences, so the host keeps no history and a scrape costs the same as
//! `/metrics`. A counter the host cannot read yet is `null` and the page shows "n/a":
//! [`plugin_counters`] is the one place to fill it in.

use serde_json::{json, Value};

use super::{warnings, Reply};
use crate::entry_point::EntryPoint;

/// Rooms listed, busiest first.
const BUSIEST_ROOMS: usize = 10;

const INDEX_HTML: &str = include_str!("../../assets/admin/index.html");
const ADMIN_JS: &str = include_str!("../../assets/admin/admin.js");
const ADMIN_CSS: &str = include_str!("../../assets/admin/admin.css");

/// The page's routes: its files and `/api/overview`; `None` for any other path.
pub(super) fn route(entry: &EntryPoint, path: &str) -> Option<Reply> {
    let (content_type, body) = match path {
        "/" | "/index.html" => ("text/html; charset=utf-8", INDEX_HTML.to_string()),
        "/admin.js" => ("text/javascript; charset=utf-8", ADMIN_JS.to_string()),
        "/admin.css" => ("text/css; charset=utf-8", ADMIN_CSS.to_string()),
        "/api/overview" => ("application/json", overview(entry).to_string()),
        _ => return None,
    };
    Some(Reply {
        status: 200,
        content_type,
        body,
    })
}

/// Counters that protocols report themselves (deliveries, slow-consumer closes), summed over
/// every protocol; `None` while the host has no way to read them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PluginCounters {
    /// Notifications written to clients.
    pub deliveries: Option<u64>,
    /// Connections closed because their client did not read.
    pub slow_consumer_closes: Option<u64>,
}

/// The one place plugin-reported counters enter the page: plugins cannot report counters
/// through the ABI yet, so both are unknown.
fn plugin_counters(_entry: &EntryPoint) -> PluginCounters {
    PluginCounters::default()
}

/// Everything the page shows, as of now.
pub fn overview(entry: &EntryPoint) -> Value {
    let services = &entry.services;
    let protocols = services.protocols.all();
    let snapshot = entry.metrics.snapshot();
    let answered = |protocol: Option<usize>| -> u64 {
        snapshot
            .latency(protocol)
            .0
            .last()
            .map_or(0, |(_, count)| *count)
    };
    let mut open = vec![0u64; protocols.len()];
    for (_, protocol) in services.connections.ids() {
        if let Some(count) = open.get_mut(protocol) {
            *count += 1;
        }
    }
    let protocol_rows: Vec<Value> = protocols
        .iter()
        .zip(&open)
        .map(|(protocol, open)| {
            let (accepted, closed) = snapshot.connections(protocol.index);
            json!({
                "name": protocol.name,
                "plugin": protocol.library.plugin_name,
                "version": protocol.library.plugin_version,
                "pluginApi": protocol.library.interface_version.to_string(),
                "library": protocol.path.display().to_string(),
                "listening": protocol.listeners(),
                "enabled": !protocol.is_disabled(),
                "hookPanics": protocol.panics(),
                "connections": open,
                "accepted": accepted,
                "closed": closed,
                "requests": answered(Some(protocol.index)),
            })
        })
        .collect();
    let requests = protocols
        .iter()
        .map(|protocol| answered(Some(protocol.index)))
        .sum::<u64>()
        + answered(None);
    let counters = plugin_counters(entry);
    let rooms: Vec<Value> = services
        .realtime
        .busiest_rooms(BUSIEST_ROOMS)
        .into_iter()
        .map(|room| {
            json!({
                "roomId": &*room.room_id,
                "index": room.index,
                "collection": room.collection,
                "filter": &*room.filter,
                "subscribers": room.subscribers,
            })
        })
        .collect();
    let warnings: Vec<Value> = warnings::recent()
        .into_iter()
        .rev()
        .map(|warning| {
            json!({
                "timeMs": warning.time_ms,
                "level": warning.level,
                "target": warning.target,
                "message": warning.message,
            })
        })
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pluginApi": switchyard_plugin_api::INTERFACE_VERSION,
        "uptimeSeconds": services.started_at.elapsed().as_secs_f64(),
        "node": services.cluster.as_ref().map(|cluster| cluster.node()),
        "draining": entry.is_draining(),
        "protocols": protocol_rows,
        "counters": {
            "requests": requests,
            "notifications": crate::plugin::notifications::total(),
            "deliveries": counters.deliveries,
            "slowConsumerCloses": counters.slow_consumer_closes,
        },
        "inFlight": entry.in_flight(),
        "rooms": {
            "count": services.realtime.room_count(),
            "busiest": rooms,
        },
        "warnings": warnings,
    })
}
