//! The `server` controller: `now`, `info`, `healthCheck`, `publicApi`.

use serde_json::{json, Map, Value};

use crate::api::action::{ActionResult, Args, Context, Controller, Output, Run};
use crate::api::{Action, Request};

/// The `server` controller.
pub static CONTROLLER: Controller = Controller {
    name: "server",
    actions: &[
        Action {
            name: "now",
            http: &[("GET", "/_now")],
            args: Args::NONE,
            run: Run::Inline(now),
        },
        Action {
            name: "info",
            http: &[("GET", "/_serverInfo"), ("GET", "/")],
            args: Args::NONE,
            run: Run::Inline(info),
        },
        Action {
            name: "healthCheck",
            http: &[("GET", "/_healthCheck")],
            args: Args::NONE,
            run: Run::Inline(health_check),
        },
        Action {
            name: "publicApi",
            http: &[],
            args: Args::NONE,
            run: Run::Inline(public_api),
        },
    ],
};

/// `server:now` → `{now: <epoch ms>}`.
fn now(_context: &Context<'_>, _request: &mut Request<'_>) -> ActionResult {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0);
    Ok(Output::Number("now", now))
}

/// `server:info` → the server's name and version, its API routes and its protocols.
fn info(context: &Context<'_>, _request: &mut Request<'_>) -> ActionResult {
    let services = context.services;
    let mut protocols = Map::new();
    for protocol in services.protocols.all() {
        // What the plugin counts itself (ABI 1.2's `stats`); null for older plugins.
        let stats = protocol.stats().map(|stats| {
            stats
                .reported()
                .map(|(_, name, value)| (name.to_string(), Value::from(value)))
                .collect::<Map<String, Value>>()
        });
        protocols.insert(
            protocol.name.clone(),
            json!({
                "plugin": protocol.library.plugin_name,
                "version": protocol.library.plugin_version,
                "pluginApi": protocol.library.interface_version.to_string(),
                "listening": protocol.listeners(),
                "enabled": !protocol.is_disabled(),
                "stats": stats,
            }),
        );
    }
    let mut info = json!({
        "serverInfo": {
            "kuzzle": {
                "name": "switchyard",
                "version": env!("CARGO_PKG_VERSION"),
                "pluginApi": switchyard_plugin_api::INTERFACE_VERSION,
                "uptime": format!("{}s", services.started_at.elapsed().as_secs()),
                "api": { "routes": context.router.routes() },
                "protocols": protocols,
            },
            "services": {},
        }
    });
    if let Some(cluster) = &services.cluster {
        info["serverInfo"]["kuzzle"]["cluster"] = cluster.info();
    }
    Ok(info.into())
}

/// `server:healthCheck` → `{status: "green", services: {}}`.
fn health_check(_context: &Context<'_>, _request: &mut Request<'_>) -> ActionResult {
    Ok(json!({ "status": "green", "services": {} }).into())
}

/// `server:publicApi` → every action with its HTTP routes, in Kuzzle's shape.
fn public_api(context: &Context<'_>, _request: &mut Request<'_>) -> ActionResult {
    Ok(context.router.public_api().into())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::api::testing::Harness;

    #[test]
    fn now_is_the_wall_clock_in_milliseconds() {
        let harness = Harness::new();
        let answer = harness.call(r#"{"controller":"server","action":"now","requestId":"r"}"#);
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let now = answer["result"]["now"].as_u64().expect("a number");
        assert!(wall.abs_diff(now) < 60_000, "now={now} wall={wall}");
        assert_eq!(answer["requestId"], "r");
    }

    #[test]
    fn public_api_lists_every_action_once() {
        let harness = Harness::new();
        let answer = harness.call(r#"{"controller":"server","action":"publicApi"}"#);
        let api = &answer["result"];
        assert_eq!(
            api["server"]["now"],
            json!({"controller":"server","action":"now","http":[{"verb":"GET","url":"/_now","path":"/_now"}]})
        );
        assert_eq!(
            api["realtime"]["subscribe"],
            json!({"controller":"realtime","action":"subscribe"})
        );
        let info = harness.call(r#"{"controller":"server","action":"info"}"#);
        let routes = &info["result"]["serverInfo"]["kuzzle"]["api"]["routes"];
        let count = |value: &Value| {
            value
                .as_object()
                .unwrap()
                .values()
                .map(|actions| actions.as_object().unwrap().len())
                .sum::<usize>()
        };
        assert_eq!(count(api), count(routes));
    }
}
