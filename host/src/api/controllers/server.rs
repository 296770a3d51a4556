//! The `server` controller: `now`, `info`, `healthCheck`.

use serde_json::{json, Map, Value};

use super::{ActionResult, Context, Output, Request};

/// `server:now` → `{now: <epoch ms>}`.
pub fn now(_context: &Context<'_>, _request: &mut Request<'_>) -> ActionResult {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0);
    Ok(Output::Number("now", now))
}

/// `server:info` → the server's name and version, its API routes and its protocols.
pub fn info(context: &Context<'_>, _request: &mut Request<'_>) -> ActionResult {
    let entry = context.entry;
    let mut protocols = Map::new();
    for protocol in entry.protocols() {
        protocols.insert(
            protocol.name.clone(),
            json!({
                "plugin": protocol.library.plugin_name,
                "version": protocol.library.plugin_version,
                "pluginApi": protocol.library.interface_version.to_string(),
                "listening": protocol.listeners(),
                "enabled": !protocol.is_disabled(),
            }),
        );
    }
    let mut routes = Map::new();
    for route in entry.api.routes() {
        let controller = routes
            .entry(route.controller)
            .or_insert_with(|| Value::Object(Map::new()));
        let http: Vec<Value> = route
            .http
            .iter()
            .map(|(verb, url)| json!({ "verb": verb, "url": url, "path": url }))
            .collect();
        controller[route.action] = json!({
            "controller": route.controller,
            "action": route.action,
            "http": http,
        });
    }
    Ok(json!({
        "serverInfo": {
            "kuzzle": {
                "name": "switchyard",
                "version": env!("CARGO_PKG_VERSION"),
                "pluginApi": switchyard_plugin_api::INTERFACE_VERSION,
                "uptime": format!("{}s", entry.started_at.elapsed().as_secs()),
                "api": { "routes": routes },
                "protocols": protocols,
            },
            "services": {},
        }
    })
    .into())
}

/// `server:healthCheck` → `{status: "green", services: {}}`.
pub fn health_check(_context: &Context<'_>, _request: &mut Request<'_>) -> ActionResult {
    Ok(json!({ "status": "green", "services": {} }).into())
}
