//! The host's route table, learnt through the API itself: `server:info` on an internal
//! connection at start-up (no ABI change needed), kept for the life of the instance.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tracing::{debug, warn};

use crate::router::Router;
use switchyard_plugin_api::Backend;

/// What `server:info` told us about the API.
#[derive(Debug)]
pub struct RouteTable {
    /// REST routes.
    pub router: Router,
    /// `GET /_publicApi`'s `result`, as JSON text: Kuzzle's `server:publicApi` shape,
    /// `{controller: {action: {controller, action, http: [{verb, url, path}]}}}` with upper-case
    /// verbs and no `http` key for actions without a route.
    pub public_api: String,
}

impl RouteTable {
    /// Builds the table from a `server:info` response `content`.
    pub fn from_server_info(content: &str) -> Result<RouteTable, String> {
        let value: Value = serde_json::from_str(content)
            .map_err(|error| format!("server:info answered invalid JSON: {error}"))?;
        let routes = value["result"]["serverInfo"]["kuzzle"]["api"]["routes"]
            .as_object()
            .ok_or("server:info has no result.serverInfo.kuzzle.api.routes object")?;
        Ok(RouteTable::from_routes(routes))
    }

    /// Builds the table from `api.routes`.
    pub fn from_routes(routes: &Map<String, Value>) -> RouteTable {
        let mut public_api = Map::new();
        for (controller, actions) in routes {
            let Some(actions) = actions.as_object() else {
                continue;
            };
            let mut described = Map::new();
            for (action, definition) in actions {
                let mut entry = json!({ "action": action, "controller": controller });
                let http: Vec<Value> = definition["http"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|route| {
                        let verb = route["verb"].as_str()?.to_ascii_uppercase();
                        let url = route["url"].as_str()?;
                        Some(json!({ "verb": verb, "url": url, "path": url }))
                    })
                    .collect();
                if !http.is_empty() {
                    entry["http"] = Value::Array(http);
                }
                described.insert(action.clone(), entry);
            }
            public_api.insert(controller.clone(), Value::Object(described));
        }
        RouteTable {
            router: Router::from_routes(routes),
            public_api: Value::Object(public_api).to_string(),
        }
    }
}

/// Asks the host for its routes until it answers (or shuts down). A refusal (overloaded) is
/// retried every 200 ms.
pub async fn load(backend: Arc<dyn Backend>) -> Option<RouteTable> {
    const REQUEST: &str =
        r#"{"controller":"server","action":"info","requestId":"plugin-http-routes"}"#;
    loop {
        if backend.is_shutting_down() {
            return None;
        }
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let connection = backend.new_connection(&[], &[]);
        backend.execute(
            connection,
            REQUEST,
            Box::new(move |response| {
                let _ = sender.send((response.status, response.content.to_string()));
            }),
        );
        let answer = receiver.await;
        backend.remove_connection(connection);
        match answer {
            Ok((200, content)) => match RouteTable::from_server_info(&content) {
                Ok(table) => {
                    debug!("route table loaded");
                    return Some(table);
                }
                Err(error) => warn!(error = %error, "cannot read the host's route table"),
            },
            Ok((status, content)) => {
                warn!(status, content = %content, "server:info failed; retrying")
            }
            Err(_) => warn!("server:info was never answered; retrying"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_api_has_kuzzles_shape() {
        let content = r#"{"status":200,"result":{"serverInfo":{"kuzzle":{"api":{"routes":{
            "server":{"now":{"controller":"server","action":"now","http":[{"verb":"get","url":"/_now"}]}},
            "realtime":{"subscribe":{"controller":"realtime","action":"subscribe","http":[]}}
        }}}}}}"#;
        let table = RouteTable::from_server_info(content).unwrap();
        let public: Value = serde_json::from_str(&table.public_api).unwrap();
        assert_eq!(
            public,
            json!({
                "server": {"now": {"action":"now","controller":"server","http":[{"verb":"GET","url":"/_now","path":"/_now"}]}},
                "realtime": {"subscribe": {"action":"subscribe","controller":"realtime"}}
            })
        );
        assert!(table.router.route(&hyper::Method::GET, "/_now").is_some());
        assert!(RouteTable::from_server_info(r#"{"result":null}"#).is_err());
    }
}
