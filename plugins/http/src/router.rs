//! URL routing: the host's route table (from `server:info`) as a per-verb segment trie, the
//! plugin's own endpoints, and query-string parsing.
//!
//! Paths match as in Kuzzle's router: empty segments are ignored (`/_now/` is `/_now`), each
//! segment is percent-decoded, a literal segment wins over a `:placeholder`, and placeholders
//! become request arguments.

use std::borrow::Cow;

use hyper::Method;
use serde_json::{Map, Value};

/// What a request is routed to; an action borrows its names from the route table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'r> {
    /// `POST /_query`: the body is a whole API request.
    Query,
    /// `GET /_healthcheck`: 200, without reaching the API.
    HealthCheck,
    /// `GET /_ready`: 200 once routes are loaded, 503 while starting or shutting down.
    Ready,
    /// `GET /_publicApi`: the route table in Kuzzle's `server:publicApi` shape.
    PublicApi,
    /// `HEAD /`: 200, no body.
    HeadRoot,
    /// An API action, with its placeholders' values.
    Action {
        /// Controller name.
        controller: &'r str,
        /// Action name.
        action: &'r str,
        /// `(placeholder, value)` pairs, in URL order.
        arguments: Vec<(&'r str, String)>,
    },
}

/// The path's non-empty segments, still percent-encoded (`/_now/` and `//_now` are `/_now`).
/// Cloning it is how the trie search backtracks.
fn segments(path: &str) -> impl Iterator<Item = &str> + Clone {
    path.split('/').filter(|segment| !segment.is_empty())
}

/// The plugin's own endpoint for `method path`, if any (no route table needed). Checked
/// before the host's table, as Kuzzle registers them first.
pub fn builtin_route(method: &Method, path: &str) -> Option<Target<'static>> {
    let mut segments = segments(path);
    let first = segments.next();
    if segments.next().is_some() {
        return None;
    }
    let first = first.map(|segment| percent_decode_cow(segment, false));
    match (method, first.as_deref()) {
        (&Method::POST, Some("_query")) => Some(Target::Query),
        (&Method::GET, Some("_healthcheck")) => Some(Target::HealthCheck),
        (&Method::GET, Some("_ready")) => Some(Target::Ready),
        (&Method::GET, Some("_publicApi")) => Some(Target::PublicApi),
        (&Method::HEAD, None) => Some(Target::HeadRoot),
        _ => None,
    }
}

/// One trie node: literal children, one placeholder child, and the action ending here. A node
/// has a handful of children at most: a list searched in order beats hashing the segment.
#[derive(Debug, Default)]
struct Node {
    literals: Vec<(Box<str>, Node)>,
    placeholder: Option<Box<Node>>,
    action: Option<Endpoint>,
}

/// The action a route ends at.
#[derive(Debug)]
struct Endpoint {
    controller: Box<str>,
    action: Box<str>,
    /// The route's placeholders, in URL order.
    names: Vec<Box<str>>,
}

impl Node {
    fn literal(&self, segment: &str) -> Option<&Node> {
        self.literals
            .iter()
            .find(|(literal, _)| &**literal == segment)
            .map(|(_, node)| node)
    }

    fn literal_mut(&mut self, segment: &str) -> &mut Node {
        let at = match self
            .literals
            .iter()
            .position(|(literal, _)| &**literal == segment)
        {
            Some(at) => at,
            None => {
                self.literals.push((segment.into(), Node::default()));
                self.literals.len() - 1
            }
        };
        &mut self.literals[at].1
    }
}

/// The verbs Kuzzle's router knows; any other is `network.http.unsupported_verb`.
pub const KNOWN_VERBS: [Method; 6] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::HEAD,
];

/// A known verb's index in [`KNOWN_VERBS`].
fn verb_index(method: &Method) -> Option<usize> {
    KNOWN_VERBS.iter().position(|known| known == method)
}

/// The host's REST routes, one trie per verb.
#[derive(Debug, Default)]
pub struct Router {
    verbs: [Node; KNOWN_VERBS.len()],
}

impl Router {
    /// Adds `verb url` for `controller:action`. A route already taken keeps its first action
    /// (Kuzzle refuses duplicates at start-up; the host's table has none).
    pub fn add(&mut self, verb: &str, url: &str, controller: &str, action: &str) {
        let Some(verb) = Method::from_bytes(verb.to_ascii_uppercase().as_bytes())
            .ok()
            .as_ref()
            .and_then(verb_index)
        else {
            return;
        };
        let mut node = &mut self.verbs[verb];
        let mut names = Vec::new();
        for segment in segments(url) {
            node = match segment.strip_prefix(':') {
                Some(name) => {
                    names.push(name.into());
                    node.placeholder.get_or_insert_with(Box::default)
                }
                None => node.literal_mut(segment),
            };
        }
        if node.action.is_none() {
            node.action = Some(Endpoint {
                controller: controller.into(),
                action: action.into(),
                names,
            });
        }
    }

    /// Builds the router from `server:info`'s `api.routes`:
    /// `{controller: {action: {http: [{verb, url}]}}}`.
    pub fn from_routes(routes: &Map<String, Value>) -> Router {
        let mut router = Router::default();
        for (controller, actions) in routes {
            let Some(actions) = actions.as_object() else {
                continue;
            };
            for (action, definition) in actions {
                for route in definition["http"].as_array().into_iter().flatten() {
                    if let (Some(verb), Some(url)) = (route["verb"].as_str(), route["url"].as_str())
                    {
                        router.add(verb, url, controller, action);
                    }
                }
            }
        }
        router
    }

    /// Routes a request: the plugin's own endpoints first, then the host's actions. `None`:
    /// no route for this verb and path.
    pub fn route(&self, method: &Method, path: &str) -> Option<Target<'_>> {
        builtin_route(method, path).or_else(|| self.action(method, path))
    }

    /// The host's action for `method path`, if any (ignores the plugin's own endpoints).
    pub fn action(&self, method: &Method, path: &str) -> Option<Target<'_>> {
        let mut values = Vec::new();
        let endpoint = find(
            &self.verbs[verb_index(method)?],
            segments(path),
            &mut values,
        )?;
        Some(Target::Action {
            controller: &endpoint.controller,
            action: &endpoint.action,
            arguments: endpoint
                .names
                .iter()
                .map(|name| &**name)
                .zip(values.into_iter().map(Cow::into_owned))
                .collect(),
        })
    }
}

/// Depth-first, literal before placeholder, backtracking when a branch dead-ends. Segments are
/// decoded only when they hold an escape.
fn find<'r, 'p>(
    node: &'r Node,
    mut segments: impl Iterator<Item = &'p str> + Clone,
    values: &mut Vec<Cow<'p, str>>,
) -> Option<&'r Endpoint> {
    let Some(raw) = segments.next() else {
        return node.action.as_ref();
    };
    let segment = percent_decode_cow(raw, false);
    if let Some(found) = node
        .literal(&segment)
        .and_then(|next| find(next, segments.clone(), values))
    {
        return Some(found);
    }
    let next = node.placeholder.as_deref()?;
    values.push(segment);
    let found = find(next, segments, values);
    if found.is_none() {
        values.pop();
    }
    found
}

/// Decodes `%XX` escapes (and `+` as a space in query strings). Invalid escapes stay as they
/// are; invalid UTF-8 becomes U+FFFD.
pub fn percent_decode(text: &str, plus_is_space: bool) -> String {
    percent_decode_cow(text, plus_is_space).into_owned()
}

/// [`percent_decode`], borrowing `text` when there is nothing to decode (the usual case).
pub fn percent_decode_cow(text: &str, plus_is_space: bool) -> Cow<'_, str> {
    let escaped = text
        .bytes()
        .any(|byte| byte == b'%' || (plus_is_space && byte == b'+'));
    if !escaped {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        if byte == b'%' && at + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(high), Some(low)) = (hex(bytes[at + 1]), hex(bytes[at + 2])) {
                out.push((high * 16 + low) as u8);
                at += 3;
                continue;
            }
        }
        out.push(if byte == b'+' && plus_is_space {
            b' '
        } else {
            byte
        });
        at += 1;
    }
    Cow::Owned(
        String::from_utf8(out)
            .unwrap_or_else(|invalid| String::from_utf8_lossy(invalid.as_bytes()).into_owned()),
    )
}

/// `a=1&b=x+y&c` → `("a", Some("1")), ("b", Some("x y")), ("c", None)`, decoded.
pub fn query_pairs(query: &str) -> impl Iterator<Item = (String, Option<String>)> + '_ {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => (percent_decode(key, true), Some(percent_decode(value, true))),
            None => (percent_decode(pair, true), None),
        })
}

/// Adds a query or form argument: a bare key is `true` (as the SDK sends booleans), a repeated
/// key collects its values in an array (as Node's `querystring`).
pub fn insert_arg(object: &mut Map<String, Value>, key: String, value: Option<String>) {
    let value = value.map_or(Value::Bool(true), Value::String);
    match object.get_mut(&key) {
        Some(Value::Array(values)) => values.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None => {
            object.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        let routes = serde_json::json!({
            "server": {
                "now": {"controller":"server","action":"now","http":[{"verb":"get","url":"/_now"}]},
                "info": {"controller":"server","action":"info","http":[{"verb":"get","url":"/_serverInfo"},{"verb":"get","url":"/"}]}
            },
            "realtime": {
                "publish": {"http":[{"verb":"post","url":"/:index/:collection/_publish"}]},
                "subscribe": {"http":[]}
            },
            "document": {
                "get": {"http":[{"verb":"GET","url":"/:index/:collection/:_id"}]},
                "mGet": {"http":[{"verb":"get","url":"/:index/:collection/_mGet"}]},
                "exists": {"http":[{"verb":"get","url":"/:index/:collection/:_id/_exists"}]}
            }
        });
        Router::from_routes(routes.as_object().unwrap())
    }

    fn action<'r>(
        controller: &'r str,
        action: &'r str,
        arguments: &[(&'r str, &str)],
    ) -> Option<Target<'r>> {
        Some(Target::Action {
            controller,
            action,
            arguments: arguments.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        })
    }

    #[test]
    fn routes_match_like_kuzzles_router() {
        let router = router();
        let cases = [
            (Method::GET, "/_now", action("server", "now", &[])),
            (Method::GET, "/_now/", action("server", "now", &[])),
            (Method::GET, "//_now", action("server", "now", &[])),
            (Method::GET, "/", action("server", "info", &[])),
            (Method::GET, "/_serverInfo", action("server", "info", &[])),
            (Method::POST, "/_now", None),
            (Method::GET, "/_nope", None),
            (
                Method::POST,
                "/idx/coll/_publish",
                action(
                    "realtime",
                    "publish",
                    &[("index", "idx"), ("collection", "coll")],
                ),
            ),
            (
                Method::POST,
                "/my%20index/c%2Fd/_publish",
                action(
                    "realtime",
                    "publish",
                    &[("index", "my index"), ("collection", "c/d")],
                ),
            ),
            (
                Method::GET,
                "/i/c/_mGet",
                action("document", "mGet", &[("index", "i"), ("collection", "c")]),
            ),
            (
                Method::GET,
                "/i/c/doc1",
                action(
                    "document",
                    "get",
                    &[("index", "i"), ("collection", "c"), ("_id", "doc1")],
                ),
            ),
            (
                Method::GET,
                "/i/c/_mGet/_exists",
                action(
                    "document",
                    "exists",
                    &[("index", "i"), ("collection", "c"), ("_id", "_mGet")],
                ),
            ),
            (Method::GET, "/i/c/d/e/f", None),
            (Method::POST, "/_query", Some(Target::Query)),
            (Method::GET, "/_query", None),
            (Method::GET, "/_healthcheck", Some(Target::HealthCheck)),
            (Method::GET, "/_ready", Some(Target::Ready)),
            (Method::GET, "/_publicApi", Some(Target::PublicApi)),
            (Method::HEAD, "/", Some(Target::HeadRoot)),
            (Method::HEAD, "/_now", None),
            (Method::DELETE, "/", None),
        ];
        for (method, path, expected) in cases {
            assert_eq!(router.route(&method, path), expected, "{method} {path}");
        }
    }

    #[test]
    fn query_strings_decode() {
        let mut object = Map::new();
        for (key, value) in query_pairs("a=1&b=x+y&b=%C3%A9&pretty&&c=%zz&d=&e=1=2") {
            insert_arg(&mut object, key, value);
        }
        assert_eq!(
            Value::Object(object),
            serde_json::json!({"a":"1","b":["x y","é"],"pretty":true,"c":"%zz","d":"","e":"1=2"})
        );
        assert_eq!(percent_decode("a+b%2", false), "a+b%2");
        assert_eq!(percent_decode("%41%4a%4A", false), "AJJ");
        assert_eq!(percent_decode("%ff", false), "\u{fffd}");
    }
}
