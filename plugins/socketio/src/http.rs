//! Every HTTP request on the listener: routing by Engine.IO's query (`EIO`, `transport`, `sid`),
//! the checks npm `engine.io` makes in the same order, the polling handshake, GET (long poll)
//! and POST (packets in), CORS. WebSocket upgrades go to `websocket`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tracing::debug;

use crate::engine::{self, RequestError};
use switchyard_plugin_kit::partial::PartialClaim;
use switchyard_plugin_kit::ws::frame::{close_code, payload_of};

use crate::server::Shared;
use crate::session::{Session, Taken, Transport};
use crate::{inbound, packets, websocket};

/// The response body type.
pub type Body = Full<Bytes>;

/// How long a POST body may take to arrive (npm `engine.io`'s `httpRequestBodyTimeout`... is
/// unset by default; a bound is kinder to the server).
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The query parameters Engine.IO reads.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Query<'a> {
    /// Protocol revision (`4`).
    pub eio: Option<&'a str>,
    /// `polling` or `websocket`.
    pub transport: Option<&'a str>,
    /// Session id, absent on a handshake.
    pub sid: Option<&'a str>,
}

impl<'a> Query<'a> {
    /// Reads `EIO`, `transport` and `sid`; everything else (`t`, user parameters) is ignored.
    pub fn parse(query: &'a str) -> Query<'a> {
        let mut out = Query::default();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "EIO" => out.eio = Some(value),
                "transport" => out.transport = Some(value),
                "sid" if !value.is_empty() => out.sid = Some(value),
                _ => {}
            }
        }
        out
    }
}

/// Serves one request.
pub async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let allowed = shared.settings.origins.allows(origin.as_deref());
    let mut response = route(&shared, peer, request, allowed).await;
    if let (Some(origin), true) = (origin, allowed) {
        if let Ok(value) = HeaderValue::from_str(&origin) {
            let headers = response.headers_mut();
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            headers.append(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
    Ok(response)
}

async fn route(
    shared: &Arc<Shared>,
    peer: SocketAddr,
    request: Request<Incoming>,
    origin_allowed: bool,
) -> Response<Body> {
    let path = shared.settings.path.as_str();
    let request_path = request.uri().path();
    if !(request_path.starts_with(path) || request_path == path.trim_end_matches('/')) {
        return plain(StatusCode::NOT_FOUND, "Not Found");
    }
    if request.method() == Method::OPTIONS {
        return preflight(&request, origin_allowed);
    }
    let query_text = request.uri().query().unwrap_or("").to_string();
    let query = Query::parse(&query_text);
    let is_upgrade = websocket::is_upgrade(&request);
    let transport = match query.transport {
        Some("polling") => Transport::Polling,
        Some("websocket") => Transport::WebSocket,
        _ => return refuse(RequestError::UnknownTransport, is_upgrade),
    };
    if !origin_allowed {
        return refuse(RequestError::Forbidden, is_upgrade);
    }
    let eio_4 = query.eio == Some("4");
    if let Some(sid) = query.sid {
        let Some(session) = shared.registry.session(sid) else {
            return refuse(RequestError::UnknownSid, is_upgrade);
        };
        if !eio_4 {
            return refuse(RequestError::BadRequest, is_upgrade);
        }
        return match (transport, is_upgrade) {
            (Transport::WebSocket, true) => websocket::upgrade_session(shared, session, request),
            (Transport::WebSocket, false) => refuse(RequestError::BadRequest, false),
            (Transport::Polling, _) if session.transport() != Transport::Polling => {
                refuse(RequestError::BadRequest, is_upgrade)
            }
            (Transport::Polling, _) if request.method() == Method::GET => poll(session).await,
            (Transport::Polling, _) if request.method() == Method::POST => {
                post(shared, session, request).await
            }
            (Transport::Polling, _) => refuse(RequestError::BadRequest, false),
        };
    }
    if request.method() != Method::GET {
        return refuse(RequestError::BadHandshakeMethod, is_upgrade);
    }
    if transport == Transport::WebSocket && !is_upgrade {
        return refuse(RequestError::BadRequest, false);
    }
    if !eio_4 {
        return refuse(RequestError::UnsupportedProtocolVersion, is_upgrade);
    }
    if shared.backend.is_shutting_down() {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    let client = websocket::client_of(peer, &request);
    match transport {
        Transport::WebSocket => websocket::open_session(shared, client, request),
        Transport::Polling => {
            let session = shared.new_session(client, Transport::Polling);
            let mut batch = VecDeque::new();
            session.take(&mut batch);
            payload(batch)
        }
    }
}

/// A long poll: answers at once with what is queued, or waits until something is. `6` (noop)
/// when a WebSocket probe needs the poll to end; `1` (close) when the session closed.
async fn poll(session: Arc<Session>) -> Response<Body> {
    if !session.begin_poll() {
        debug!(sid = %session.sid, "overlapping polls: closing");
        session.close(close_code::NORMAL, false);
        return refuse(RequestError::BadRequest, false);
    }
    struct Ending(Arc<Session>);
    impl Drop for Ending {
        fn drop(&mut self) {
            self.0.end_poll();
        }
    }
    let _ending = Ending(session.clone());
    let mut batch = VecDeque::new();
    loop {
        match session.take(&mut batch) {
            Taken::Frames => return payload(batch),
            Taken::Close(_) => {
                batch.push_back(packets::close());
                return payload(batch);
            }
            Taken::Idle if session.is_upgrading() || session.transport() != Transport::Polling => {
                batch.push_back(packets::engine("6"));
                return payload(batch);
            }
            Taken::Idle => session.consumer_wait().await,
        }
    }
}

/// Packets in: the body is read up to `maxRequestSize` (past it: 413, as Engine.IO's
/// `maxHttpBufferSize`, and the session closes).
async fn post(
    shared: &Shared,
    session: Arc<Session>,
    request: Request<Incoming>,
) -> Response<Body> {
    if !session.begin_post() {
        debug!(sid = %session.sid, "overlapping posts: closing");
        session.close(close_code::NORMAL, false);
        return refuse(RequestError::BadRequest, false);
    }
    let response = read_and_handle(shared, &session, request).await;
    session.end_post();
    response
}

async fn read_and_handle(
    shared: &Shared,
    session: &Arc<Session>,
    request: Request<Incoming>,
) -> Response<Body> {
    let binary = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/octet-stream"));
    let fail = |status: StatusCode, why: &str| {
        debug!(sid = %session.sid, why, "closing session");
        session.close(close_code::NORMAL, false);
        plain(status, "")
    };
    if binary {
        return fail(StatusCode::BAD_REQUEST, "binary payload");
    }
    // A body announced larger than the limit is refused before a byte of it is read (the HTTP
    // plugin does the same), not after waiting for it.
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.trim().parse::<u64>().ok());
    if announced.is_some_and(|length| length > shared.settings.max_request_size as u64) {
        return fail(StatusCode::PAYLOAD_TOO_LARGE, "announced payload too large");
    }
    // The bytes received so far count against `maxTotalPartialBytes` until the body is whole.
    let mut partial = shared.partial.claim();
    let read = read_body(
        request.into_body(),
        shared.settings.max_request_size,
        &mut partial,
    );
    let body = match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Err(_) => return fail(StatusCode::REQUEST_TIMEOUT, "body timeout"),
        Ok(Err(BodyError::TooLarge)) => {
            return fail(StatusCode::PAYLOAD_TOO_LARGE, "payload too large")
        }
        Ok(Err(BodyError::Busy)) => {
            return fail(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too many unfinished payloads (maxTotalPartialBytes)",
            )
        }
        Ok(Err(BodyError::Broken)) => return fail(StatusCode::BAD_REQUEST, "body read failed"),
        Ok(Ok(body)) => body,
    };
    drop(partial);
    let Ok(text) = std::str::from_utf8(&body) else {
        return fail(StatusCode::BAD_REQUEST, "body is not UTF-8");
    };
    for packet in engine::split_payload(text) {
        if inbound::on_engine_packet(shared, session, packet).is_err() {
            break;
        }
    }
    let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    response
}

/// Why a POST body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyError {
    /// Past `maxRequestSize`.
    TooLarge,
    /// Past `maxTotalPartialBytes`, all sessions' unfinished bodies and messages together.
    Busy,
    /// The client broke HTTP framing or went away.
    Broken,
}

/// Reads a POST body of at most `max` bytes, holding what it received so far in `partial`.
async fn read_body(
    mut body: Incoming,
    max: usize,
    partial: &mut PartialClaim,
) -> Result<Bytes, BodyError> {
    let mut buffer = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Broken)?;
        if let Ok(data) = frame.into_data() {
            if buffer.len() + data.len() > max {
                return Err(BodyError::TooLarge);
            }
            if partial.hold(buffer.len() + data.len()).is_err() {
                return Err(BodyError::Busy);
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(buffer.freeze())
}

/// A polling payload: the packets joined with `\x1e`.
fn payload(batch: VecDeque<Bytes>) -> Response<Body> {
    let body = if batch.len() == 1 {
        payload_of(&batch[0])
    } else {
        let mut body = BytesMut::new();
        for (index, frame) in batch.iter().enumerate() {
            if index > 0 {
                body.extend_from_slice(&[engine::SEPARATOR]);
            }
            body.extend_from_slice(&payload_of(frame));
        }
        body.freeze()
    };
    let mut response = Response::new(Full::new(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A CORS preflight: allowed origins get the methods and headers they ask for.
fn preflight(request: &Request<Incoming>, origin_allowed: bool) -> Response<Body> {
    if !origin_allowed {
        return refuse(RequestError::Forbidden, false);
    }
    let mut response = plain(StatusCode::NO_CONTENT, "");
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST"),
    );
    if let Some(asked) = request
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
    {
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    response
}

/// Engine.IO's refusal: JSON `{"code":…,"message":…}` with 400 (403 when forbidden); for an
/// upgrade request, 400 with the message as text, as npm `engine.io`'s `abortUpgrade`.
pub fn refuse(error: RequestError, upgrade: bool) -> Response<Body> {
    if upgrade {
        let mut response = plain(StatusCode::BAD_REQUEST, error.message());
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        return response;
    }
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = Response::new(Full::new(Bytes::from(error.json())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A plain-text response.
pub fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::copy_from_slice(text.as_bytes())));
    *response.status_mut() = status;
    if !text.is_empty() {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_read_as_engine_io_reads_them() {
        let cases = [
            (
                "EIO=4&transport=polling&t=PXk3",
                Query {
                    eio: Some("4"),
                    transport: Some("polling"),
                    sid: None,
                },
            ),
            (
                "EIO=4&transport=websocket&sid=abc",
                Query {
                    eio: Some("4"),
                    transport: Some("websocket"),
                    sid: Some("abc"),
                },
            ),
            (
                "sid=&EIO",
                Query {
                    eio: Some(""),
                    ..Query::default()
                },
            ),
            ("", Query::default()),
        ];
        for (text, expected) in cases {
            assert_eq!(Query::parse(text), expected, "{text}");
        }
    }
}
