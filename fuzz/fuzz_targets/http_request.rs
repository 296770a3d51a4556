//! The HTTP plugin's request-to-Kuzzle-request path (`plugins/http/src/exchange.rs` `answer`,
//! without the socket): `Content-Type` and `Content-Encoding` checks, body decoding (gzip,
//! deflate, under the cap) and parsing (JSON or form), `Authorization` and `X-Kuzzle-Volatile`,
//! routing against a route table with placeholders, query-string arguments, and the JSON
//! request written for the host.
//!
//! Oracle: every request written parses as one JSON object whose `controller` and `action` are
//! the route's (a query string or body cannot override them).
//!
//! Input: lines `METHOD URI`, `Content-Type`, `Content-Encoding`, `Authorization`,
//! `X-Kuzzle-Volatile`, `X-Kuzzle-Request-Id` (an empty line is an absent header), then the body.

#![no_main]

use hyper::{Method, Uri};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use switchyard_plugin_http::{body, request, router, routes::RouteTable, testing};

/// `maxRequestSize` for the fuzzer.
const MAX_REQUEST_SIZE: usize = 64 * 1024;

/// The route table: the fake host's, plus routes with several placeholders.
fn route_table() -> &'static RouteTable {
    static TABLE: std::sync::OnceLock<RouteTable> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut routes: Map<String, Value> =
            serde_json::from_str(testing::ROUTES).expect("the fake host's routes are JSON");
        routes.insert(
            "document".into(),
            serde_json::json!({
                "get": {"http": [{"verb": "get", "url": "/:index/:collection/:_id"}]},
                "create": {"http": [{"verb": "post", "url": "/:index/:collection/_create"}]},
                "mGet": {"http": [{"verb": "get", "url": "/:index/:collection/_mGet"}]}
            }),
        );
        RouteTable::from_routes(&routes)
    })
}

fuzz_target!(|data: &[u8]| {
    let mut lines = data.splitn(7, |&byte| byte == b'\n');
    let request_line = lines.next().unwrap_or_default();
    let mut header = || lines.next().filter(|line| !line.is_empty());
    let (content_type, content_encoding, authorization, volatile, request_id) =
        (header(), header(), header(), header(), header());
    let raw_body = lines.next().unwrap_or_default();

    let Some(space) = request_line.iter().position(|&byte| byte == b' ') else {
        return;
    };
    let Ok(method) = Method::from_bytes(&request_line[..space]) else {
        return;
    };
    let Ok(uri) = Uri::try_from(&request_line[space + 1..]) else {
        return;
    };
    let request_id = request_id.and_then(|id| std::str::from_utf8(id).ok());

    let Ok(kind) = body::content_kind(content_type) else {
        return;
    };
    let Ok(layers) = body::encodings(content_encoding, 3, true) else {
        return;
    };
    if raw_body.len() > MAX_REQUEST_SIZE {
        return;
    }
    let decoded = body::decode(raw_body.to_vec().into(), &layers, MAX_REQUEST_SIZE);
    let parsed = match decoded {
        Ok(decoded) => {
            assert!(
                decoded.len() <= MAX_REQUEST_SIZE,
                "decoded {} bytes",
                decoded.len()
            );
            match body::parse(&decoded, kind) {
                Ok(parsed) => parsed,
                Err(_) => return,
            }
        }
        Err(_) => return,
    };
    let Ok(headers) = request::HeaderArgs::read(authorization, volatile) else {
        return;
    };

    let path = uri.path();
    let target =
        router::builtin_route(&method, path).or_else(|| route_table().router.action(&method, path));
    match target {
        Some(router::Target::Query) => {
            if let Ok((json, id)) = request::query_request(parsed, &headers, request_id, "gen") {
                let value: Value = serde_json::from_str(&json).expect("the request is JSON");
                assert_eq!(value["requestId"].as_str(), Some(id.as_str()));
            }
        }
        Some(router::Target::Action {
            controller,
            action,
            arguments,
        }) => {
            let mut query = Map::new();
            for (key, value) in router::query_pairs(uri.query().unwrap_or("")) {
                router::insert_arg(&mut query, key, value);
            }
            let id = request_id.unwrap_or("gen");
            let json = request::rest_request(
                controller,
                action,
                id,
                &query,
                parsed.as_ref(),
                &arguments,
                &headers,
            );
            // Duplicate keys: the last one wins, as the host reads them.
            let value: Map<String, Value> =
                serde_json::from_str(&json).expect("the request is one JSON object");
            assert_eq!(value["controller"].as_str(), Some(controller));
            assert_eq!(value["action"].as_str(), Some(action));
            assert_eq!(value["requestId"].as_str(), Some(id));
        }
        _ => {}
    }
});
