//! One HTTP request, start to finish: checks in Kuzzle's order, body, routing, the API call on
//! the socket's host connection, and the framed response with CORS headers.

use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::Method;
use serde_json::Map;
use switchyard_plugin_api::errors::{self, KuzzleError};
use switchyard_plugin_api::ConnectionId;

use crate::body::{self, ReadError};
use crate::errors::API_PROCESS_UNAUTHORIZED_ORIGIN;
use crate::reply::{self, Framing, Reply};
use crate::request::{self, HeaderArgs, Jwt, KnownToken};
use crate::router::{self, Target, KNOWN_VERBS};
use crate::server::Shared;
use switchyard_plugin_api::Backend;
use switchyard_plugin_kit::stats::Counter;

/// One client socket, shared by the requests it carries one after the other (keep-alive).
///
/// It declares one host connection, at its first API call, and removes it when the socket
/// closes (this value is dropped with hyper's connection, also when the instance stops):
/// per-connection limits then count a client, not a request, and a request costs no
/// declaration. Kuzzle declares one per request; see README.md, "Host connections".
pub struct Socket {
    /// The peer's address, formatted once.
    peer_ip: String,
    /// The host, to remove the connection.
    backend: Arc<dyn Backend>,
    /// The socket's host connection, once declared.
    connection: OnceLock<ConnectionId>,
    /// The token its requests carry (`Authorization`), compared rather than re-checked.
    token: Mutex<KnownToken>,
}

impl Socket {
    /// A socket from `peer_ip`, with no host connection yet.
    pub fn new(backend: Arc<dyn Backend>, peer_ip: String) -> Socket {
        Socket {
            peer_ip,
            backend,
            connection: OnceLock::new(),
            token: Mutex::default(),
        }
    }

    /// Runs `then` with the token of `authorization` ([`request::bearer`]), read through the
    /// socket's memory of it (a fresh one should it be held: hyper serves one request of a
    /// socket at a time, so it never is). A request without the header touches no memory.
    fn with_bearer<R>(
        &self,
        authorization: Option<&[u8]>,
        then: impl FnOnce(Option<Jwt<'_>>) -> R,
    ) -> R {
        let Some(authorization) = authorization else {
            return then(None);
        };
        match self.token.try_lock() {
            Ok(mut known) => then(request::bearer(authorization, &mut known)),
            Err(_) => then(request::bearer(authorization, &mut KnownToken::default())),
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if let Some(id) = self.connection.get() {
            self.backend.remove_connection(*id);
        }
    }
}

/// Answers one request. Never fails: every problem is an HTTP answer.
pub async fn handle<B>(
    shared: &Shared,
    socket: &Socket,
    request: hyper::Request<B>,
) -> hyper::Response<Full<Bytes>>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let (parts, body) = request.into_parts();
    let known = KnownHeaders::find(&parts.headers);
    let header_id = known.request_id.and_then(|value| value.to_str().ok());
    let mut request_id = match header_id {
        Some(id) => id.to_string(),
        None => shared.next_request_id(),
    };
    let query = parts.uri.query().unwrap_or("");
    let pretty = router::query_pairs(query).any(|(key, _)| key == "pretty");
    let compression = if shared.settings.allow_compression {
        reply::negotiate(known.accept_encoding)
    } else {
        None
    };
    let reply = answer(
        shared,
        socket,
        &parts,
        &known,
        body,
        header_id,
        &mut request_id,
    )
    .await;
    let framing = Framing {
        request_id: &request_id,
        pretty,
        compression,
        head: parts.method == Method::HEAD,
    };
    let mut response = reply::http_response(reply, &framing);
    // Bodies only: hyper writes the heads.
    let sent = hyper::body::Body::size_hint(response.body())
        .exact()
        .unwrap_or(0);
    shared.counters.add(Counter::BytesOut, sent);
    shared
        .settings
        .cors
        .apply(known.origin, response.headers_mut());
    if shared.backend.is_shutting_down() {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Kuzzle's own headers, named once (a name given as text is parsed at every lookup).
pub static X_KUZZLE_REQUEST_ID: HeaderName = HeaderName::from_static("x-kuzzle-request-id");
static X_KUZZLE_VOLATILE: HeaderName = HeaderName::from_static("x-kuzzle-volatile");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The request headers the plugin reads, found in one pass over the request's few headers
/// rather than one hashed lookup each. A repeated header counts by its first value, as
/// `HeaderMap::get`.
#[derive(Debug, Default)]
struct KnownHeaders<'a> {
    request_id: Option<&'a HeaderValue>,
    accept_encoding: Option<&'a HeaderValue>,
    origin: Option<&'a HeaderValue>,
    content_length: Option<&'a HeaderValue>,
    content_type: Option<&'a HeaderValue>,
    content_encoding: Option<&'a HeaderValue>,
    authorization: Option<&'a HeaderValue>,
    volatile: Option<&'a HeaderValue>,
    transfer_encoding: bool,
    forwarded_for: bool,
}

impl<'a> KnownHeaders<'a> {
    fn find(headers: &'a HeaderMap) -> KnownHeaders<'a> {
        let mut known = KnownHeaders::default();
        for (name, value) in headers {
            let slot = if name == header::ACCEPT_ENCODING {
                &mut known.accept_encoding
            } else if name == header::ORIGIN {
                &mut known.origin
            } else if name == header::CONTENT_LENGTH {
                &mut known.content_length
            } else if name == header::CONTENT_TYPE {
                &mut known.content_type
            } else if name == header::CONTENT_ENCODING {
                &mut known.content_encoding
            } else if name == header::AUTHORIZATION {
                &mut known.authorization
            } else if name == header::TRANSFER_ENCODING {
                known.transfer_encoding = true;
                continue;
            } else if name == X_KUZZLE_REQUEST_ID {
                &mut known.request_id
            } else if name == X_KUZZLE_VOLATILE {
                &mut known.volatile
            } else if name == X_FORWARDED_FOR {
                known.forwarded_for = true;
                continue;
            } else {
                continue;
            };
            slot.get_or_insert(value);
        }
        known
    }

    /// `Content-Length` as a number, when present and valid.
    fn content_length(&self) -> Option<u64> {
        self.content_length
            .and_then(|value| value.to_str().ok())
            .and_then(|length| length.trim().parse::<u64>().ok())
    }

    /// True when the request announces a body (which an early answer leaves unread).
    fn announces_body(&self) -> bool {
        self.transfer_encoding || self.content_length().is_some_and(|length| length > 0)
    }
}

async fn answer<B>(
    shared: &Shared,
    socket: &Socket,
    parts: &hyper::http::request::Parts,
    known: &KnownHeaders<'_>,
    body: B,
    header_id: Option<&str>,
    request_id: &mut String,
) -> Reply
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let settings = &shared.settings;
    let headers = &parts.headers;
    // An answer given before the body is read: the connection cannot be reused.
    let early = |error: KuzzleError, id: &str| {
        let reply = Reply::error(id, &error);
        if known.announces_body() {
            reply.closing()
        } else {
            reply
        }
    };
    if parts.method == Method::OPTIONS {
        // CORS preflight: the headers say it all (added by `handle`).
        return Reply::result(request_id, 200, None, "{}");
    }
    if !KNOWN_VERBS.contains(&parts.method) {
        let error = errors::NETWORK_HTTP_UNSUPPORTED_VERB.with(&[parts.method.as_str()]);
        return early(error, request_id);
    }
    if let Some(origin) = known.origin {
        let text = String::from_utf8_lossy(origin.as_bytes());
        if !settings.cors.allows(&text) {
            return early(API_PROCESS_UNAUTHORIZED_ORIGIN.with(&[&text]), request_id);
        }
    }
    let too_large = known
        .content_length()
        .is_some_and(|length| length > settings.max_request_size as u64);
    if too_large {
        return Reply::error(request_id, &errors::NETWORK_HTTP_REQUEST_TOO_LARGE.error()).closing();
    }
    let kind = match body::content_kind(known.content_type.map(HeaderValue::as_bytes)) {
        Ok(kind) => kind,
        Err(error) => return early(error, request_id),
    };
    let layers = match body::encodings(
        known.content_encoding.map(HeaderValue::as_bytes),
        settings.max_encoding_layers,
        settings.allow_compression,
    ) {
        Ok(layers) => layers,
        Err(error) => return early(error, request_id),
    };
    let mut partial = shared.partial.claim();
    let read = body::read_capped(
        body,
        settings.max_request_size,
        settings.body_timeout,
        &mut partial,
    )
    .await;
    drop(partial);
    let raw = match read {
        Ok(raw) => {
            shared.counters.add(Counter::BytesIn, raw.len() as u64);
            raw
        }
        Err(ReadError::Refused(error)) => return Reply::error(request_id, &error).closing(),
        Err(ReadError::Timeout) => {
            let why = format!(
                "request body not received within {} ms",
                settings.body_timeout.as_millis()
            );
            let error = errors::NETWORK_HTTP_UNEXPECTED_ERROR.with(&[&why]);
            return Reply::error(request_id, &error).closing();
        }
        Err(ReadError::Broken(why)) => {
            let error = errors::NETWORK_HTTP_UNEXPECTED_ERROR.with(&[&why]);
            return Reply::error(request_id, &error).closing();
        }
    };
    let parsed = body::decode(raw, &layers, settings.max_request_size)
        .and_then(|decoded| body::parse(&decoded, kind));
    let parsed = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return Reply::error(request_id, &error),
    };
    let volatile = match request::volatile(known.volatile.map(HeaderValue::as_bytes)) {
        Ok(volatile) => volatile,
        Err(error) => return Reply::error(request_id, &error),
    };
    // The token is read where the request's JSON is written (the socket's memory of it is
    // not held across an await).
    let authorization = known.authorization.map(HeaderValue::as_bytes);
    let volatile = volatile.as_ref();

    let path = parts.uri.path();
    let target = match router::builtin_route(&parts.method, path) {
        Some(target) => Some(target),
        None => match shared.route_table().await {
            Some(table) => table.router.action(&parts.method, path),
            None => return Reply::error(request_id, &not_ready(shared)),
        },
    };
    let client = Client {
        socket,
        headers,
        forwarded_for: known.forwarded_for,
    };
    let Some(target) = target else {
        let shown = path.strip_suffix('/').unwrap_or(path);
        return Reply::error(
            request_id,
            &errors::NETWORK_HTTP_URL_NOT_FOUND.with(&[shown]),
        );
    };
    match target {
        Target::HealthCheck => Reply::result(request_id, 200, None, "null"),
        Target::HeadRoot => Reply::result(request_id, 200, None, "{}"),
        Target::Ready => {
            let ready = shared.route_table_now().is_some() && !shared.backend.is_shutting_down();
            Reply::result(request_id, if ready { 200 } else { 503 }, None, "null")
        }
        Target::PublicApi => match shared.route_table().await {
            Some(table) => Reply::result(
                request_id,
                200,
                Some(("server", "publicApi")),
                &table.public_api,
            ),
            None => Reply::error(request_id, &not_ready(shared)),
        },
        Target::Query => {
            let query = socket.with_bearer(authorization, |jwt| {
                request::query_request(parsed, &HeaderArgs { jwt, volatile }, header_id, request_id)
            });
            match query {
                Ok((json, id)) => {
                    *request_id = id;
                    execute(shared, &client, &json, request_id).await
                }
                Err((id, error)) => {
                    *request_id = id;
                    Reply::error(request_id, &error)
                }
            }
        }
        Target::Action {
            controller,
            action,
            arguments,
        } => {
            let mut query_args = Map::new();
            for (key, value) in router::query_pairs(parts.uri.query().unwrap_or("")) {
                router::insert_arg(&mut query_args, key, value);
            }
            let json = socket.with_bearer(authorization, |jwt| {
                request::rest_request(
                    controller,
                    action,
                    request_id,
                    &query_args,
                    parsed.as_ref(),
                    &arguments,
                    &HeaderArgs { jwt, volatile },
                )
            });
            execute(shared, &client, &json, request_id).await
        }
    }
}

/// The answer while the route table is not loaded yet (or never will be: shutting down).
fn not_ready(shared: &Shared) -> KuzzleError {
    if shared.backend.is_shutting_down() {
        errors::NETWORK_ENTRYPOINT_SHUTTING_DOWN.error()
    } else {
        errors::API_PROCESS_OVERLOADED.error()
    }
}

/// Removes the host connection when dropped: also when the client goes away mid-request and
/// hyper drops the handler.
struct HostConnection<'a> {
    backend: &'a Arc<dyn Backend>,
    id: ConnectionId,
}

impl Drop for HostConnection<'_> {
    fn drop(&mut self) {
        self.backend.remove_connection(self.id);
    }
}

/// Who sent a request, as the host connection declares it.
struct Client<'a> {
    /// The socket it came on.
    socket: &'a Socket,
    /// The request's headers.
    headers: &'a HeaderMap,
    /// The request has `X-Forwarded-For` (its addresses follow the peer's).
    forwarded_for: bool,
}

/// One API call, on the socket's host connection. A request with `X-Forwarded-For` gets a
/// connection of its own, as in Kuzzle: a proxy may carry many clients on one socket, and the
/// connection declares the forwarded addresses.
async fn execute(shared: &Shared, client: &Client<'_>, json: &str, request_id: &str) -> Reply {
    let own_connection;
    let id = if client.forwarded_for {
        own_connection = HostConnection {
            backend: &shared.backend,
            id: declare(shared, client),
        };
        own_connection.id
    } else {
        *client
            .socket
            .connection
            .get_or_init(|| declare(shared, client))
    };
    let (sender, receiver) = tokio::sync::oneshot::channel();
    shared.backend.execute(
        id,
        json,
        Box::new(move |response| {
            let content = Bytes::copy_from_slice(response.content.as_bytes());
            let _ = sender.send((response.status, content));
        }),
    );
    match receiver.await {
        Ok((status, content)) => Reply::content(status, content),
        Err(_) => {
            let error = errors::CORE_FATAL_UNEXPECTED_ERROR.with(&["the host dropped the request"]);
            Reply::error(request_id, &error)
        }
    }
}

/// Declares a host connection for `client`: the peer and `X-Forwarded-For` addresses, and the
/// request's headers.
fn declare(shared: &Shared, client: &Client<'_>) -> ConnectionId {
    let Client {
        socket,
        headers,
        forwarded_for,
    } = *client;
    let peer_ip = socket.peer_ip.as_str();
    let peer_only = [peer_ip];
    let mut forwarded: Vec<&str> = Vec::new();
    if forwarded_for {
        forwarded.push(peer_ip);
        for value in headers.get_all(&X_FORWARDED_FOR) {
            if let Ok(text) = value.to_str() {
                forwarded.extend(text.split(',').map(str::trim).filter(|ip| !ip.is_empty()));
            }
        }
    }
    let ips: &[&str] = if forwarded_for {
        &forwarded
    } else {
        &peer_only
    };
    // Text headers only (a value that is not visible ASCII cannot be shown as a JSON string
    // faithfully). Browsers send about a dozen: no allocation up to sixteen.
    let text_headers = headers
        .iter()
        .filter_map(|(name, value)| value.to_str().ok().map(|value| (name.as_str(), value)));
    let mut few = [("", ""); 16];
    let many: Vec<(&str, &str)>;
    let header_pairs: &[(&str, &str)] = if headers.len() <= few.len() {
        let mut count = 0;
        for (slot, pair) in few.iter_mut().zip(text_headers) {
            *slot = pair;
            count += 1;
        }
        &few[..count]
    } else {
        many = text_headers.collect();
        &many
    };
    shared.backend.new_connection(ips, header_pairs)
}
