//! The WebSocket transport: the upgrade (a new session, or the probe and switch of a polling
//! session), then a reader (this task) and a writer (its own task) on the raw socket.
//!
//! hyper answers the upgrade; the socket is then taken back out of hyper (`downcast`), so the
//! writer can `writev` shared frames straight from the session's queue.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::debug;

use crate::engine::RequestError;
use crate::http::{refuse, Body};
use crate::server::Shared;
use crate::session::{Client, Session, Taken, Transport};
use crate::{inbound, packets};
use switchyard_plugin_kit::partial::PartialClaim;
use switchyard_plugin_kit::socket::{self, Filled, READ_CHUNK};
use switchyard_plugin_kit::stream::{ReadHalf, Stream, WriteHalf};
use switchyard_plugin_kit::writer::{write_all, write_within, MAX_SLICES};
use switchyard_plugin_kit::ws::frame::{self, close_code, opcode, Violation};
use switchyard_plugin_kit::ws::handshake;
use switchyard_plugin_kit::ws::reader::{Event, MessageReader as Reader};

/// How long the closing handshake may take before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// True for a WebSocket upgrade request.
pub fn is_upgrade(request: &Request<Incoming>) -> bool {
    request
        .headers()
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("websocket"))
}

/// The peer's address and the request's headers, for the host.
pub fn client_of(peer: SocketAddr, request: &Request<Incoming>) -> Client {
    Client {
        ip: peer.ip().to_string(),
        headers: request
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
    }
}

/// The 101 answer; `None` when the handshake is malformed (answered with Engine.IO's
/// "Bad request").
fn accept(request: &Request<Incoming>) -> Option<Response<Body>> {
    let header_is = |name: header::HeaderName, expected: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.trim() == expected)
    };
    let key = request
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|value| value.to_str().ok())
        .filter(|key| handshake::is_valid_key(key));
    let (Some(key), true, true) = (
        key,
        request.method() == Method::GET,
        header_is(header::SEC_WEBSOCKET_VERSION, "13"),
    ) else {
        return None;
    };
    let mut response = Response::new(Body::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(value) = HeaderValue::from_str(&handshake::accept_key(key.trim())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
    }
    Some(response)
}

/// Runs `then` with the raw socket once hyper has sent the 101.
fn after_upgrade<F, Fut>(mut request: Request<Incoming>, then: F)
where
    F: FnOnce(Stream, Vec<u8>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        match upgraded.downcast::<TokioIo<Stream>>() {
            Ok(parts) => then(parts.io.into_inner(), parts.read_buf.to_vec()).await,
            Err(_) => debug!("upgraded connection is not the kit's stream"),
        }
    });
}

/// A client that connects over WebSocket directly: a new session, no upgrades.
pub fn open_session(
    shared: &Arc<Shared>,
    client: Client,
    request: Request<Incoming>,
) -> Response<Body> {
    let Some(response) = accept(&request) else {
        return refuse(RequestError::BadRequest, true);
    };
    let shared = shared.clone();
    after_upgrade(request, move |stream, leftover| async move {
        let session = shared.new_session(client, Transport::WebSocket);
        serve(shared, session, stream, leftover).await;
    });
    response
}

/// A polling session upgrading: answer `2probe` with `3probe`, wait for `5`, then switch.
pub fn upgrade_session(
    shared: &Arc<Shared>,
    session: Arc<Session>,
    request: Request<Incoming>,
) -> Response<Body> {
    if session.transport() != Transport::Polling || session.is_upgrading() {
        return refuse(RequestError::BadRequest, true);
    }
    let Some(response) = accept(&request) else {
        return refuse(RequestError::BadRequest, true);
    };
    let shared = shared.clone();
    after_upgrade(request, move |mut stream, mut buffer| async move {
        let timeout = shared.settings.upgrade_timeout;
        let mut reader = Reader::new(shared.settings.max_request_size, false);
        let probed = tokio::time::timeout(timeout, async {
            if next_text(&mut stream, &mut reader, &mut buffer)
                .await
                .as_deref()
                != Some("2probe")
                || !session.set_upgrading(true)
            {
                return false;
            }
            let pong = packets::engine("3probe");
            if stream.write_all(&pong).await.is_err() {
                return false;
            }
            next_text(&mut stream, &mut reader, &mut buffer)
                .await
                .as_deref()
                == Some("5")
        })
        .await;
        if probed != Ok(true) || session.is_closing() {
            debug!(sid = %session.sid, "upgrade abandoned");
            session.set_upgrading(false);
            let _ = stream
                .write_all(&frame::close(close_code::NORMAL, ""))
                .await;
            return;
        }
        session.finish_upgrade();
        serve(shared, session, stream, buffer).await;
    });
    response
}

/// The next text message during a probe (pings answered, anything else ends the probe).
async fn next_text(
    stream: &mut Stream,
    reader: &mut Reader,
    buffer: &mut Vec<u8>,
) -> Option<String> {
    loop {
        let (used, event) = match reader.decode(buffer) {
            Err(_) => return None,
            Ok((used, Some(Event::Text(text)))) => (used, Some(text.to_string())),
            Ok((used, Some(Event::Ping(payload)))) => {
                let pong = frame::build(opcode::PONG, payload);
                buffer.drain(..used);
                stream.write_all(&pong).await.ok()?;
                continue;
            }
            Ok((used, Some(Event::Pong))) => (used, None),
            Ok((_, Some(Event::Close { .. } | Event::Binary(_)))) => return None,
            Ok((used, None)) => {
                buffer.drain(..used);
                buffer.reserve(READ_CHUNK);
                match stream.read_buf(buffer).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => continue,
                }
            }
        };
        buffer.drain(..used);
        if event.is_some() {
            return event;
        }
    }
}

/// Serves a session's WebSocket until it closes.
async fn serve(shared: Arc<Shared>, session: Arc<Session>, stream: Stream, mut buffer: Vec<u8>) {
    let _ = stream.set_nodelay(true);
    let (read_half, write_half) = stream.into_split();
    let mut writer = tokio::spawn(write_loop(write_half, session.clone()));
    let mut reader = Reader::new(shared.settings.max_request_size, false);
    let mut partial = shared.partial.claim();
    read_loop(
        &shared,
        &session,
        &read_half,
        &mut reader,
        &mut buffer,
        &mut partial,
    )
    .await;
    // Gives back its share of `maxTotalPartialBytes` now, not after the closing handshake.
    drop(partial);
    let deadline = tokio::time::Instant::now() + CLOSE_TIMEOUT;
    if tokio::time::timeout_at(deadline, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
        return;
    }
    // Our close frame is out: wait (briefly) for the client's FIN rather than reset.
    let _ = tokio::time::timeout_at(deadline, drain(&read_half)).await;
}

async fn read_loop(
    shared: &Shared,
    session: &Arc<Session>,
    read_half: &ReadHalf,
    reader: &mut Reader,
    buffer: &mut Vec<u8>,
    partial: &mut PartialClaim,
) {
    loop {
        let mut used = 0;
        loop {
            if session.pending.is_full() {
                // Flow control: the rest waits in the buffer until answers come back.
                break;
            }
            match reader.decode(&mut buffer[used..]) {
                Err(violation) => {
                    let (code, reason) = close_for(violation);
                    debug!(sid = %session.sid, reason, "closing");
                    session.close(code, true);
                    return;
                }
                Ok((length, event)) => {
                    used += length;
                    let Some(event) = event else { break };
                    match event {
                        Event::Text(text) => {
                            if inbound::on_engine_packet(shared, session, text).is_err() {
                                return;
                            }
                        }
                        Event::Ping(payload) => {
                            session.push(frame::build(opcode::PONG, payload));
                        }
                        Event::Pong => {}
                        Event::Binary(_) => {
                            debug!(sid = %session.sid, "binary message: closing");
                            session.close(close_code::UNSUPPORTED_DATA, true);
                            return;
                        }
                        Event::Close { .. } => {
                            session.close(close_code::NORMAL, false);
                            return;
                        }
                    }
                }
            }
        }
        buffer.drain(..used);
        if session.is_closing() {
            return;
        }
        // What is left is unfinished (a partial frame, a fragmented message's frames so far),
        // counted against the instance's total (issue 19); past it, 1009 as for a message
        // over `maxRequestSize`.
        if partial.hold(buffer.len() + reader.partial_len()).is_err() {
            debug!(sid = %session.sid, "too many unfinished messages: closing");
            session.close(close_code::MESSAGE_TOO_BIG, true);
            return;
        }
        if buffer.is_empty() {
            *buffer = Vec::new();
        }
        let paused = session.pending.is_full();
        tokio::select! {
            biased;
            () = session.reader_wait() => return,
            () = session.pending.room(), if paused => {}
            ready = read_half.readable(), if !paused => {
                if ready.is_err() {
                    session.close(close_code::NORMAL, true);
                    return;
                }
                if socket::fill(read_half, buffer, session.counters()) == Filled::Gone {
                    session.close(close_code::NORMAL, true);
                    return;
                }
            }
        }
    }
}

/// Writes the session's queue until its close is written (then a FIN) or the socket fails.
async fn write_loop(write_half: WriteHalf, session: Arc<Session>) {
    let stall = session.slow_consumer_timeout;
    let counters = session.counters();
    let mut batch = VecDeque::new();
    let mut partial = false;
    loop {
        match session.take(&mut batch) {
            Taken::Idle => {
                if batch.capacity() > MAX_SLICES {
                    batch = VecDeque::new();
                }
                session.consumer_wait().await;
            }
            Taken::Frames => {
                match write_within(&write_half, &mut batch, stall, &mut partial, counters).await {
                    Ok(()) => {}
                    Err(error) if error.kind() == io::ErrorKind::TimedOut => {
                        // A slow consumer by its own behaviour: close with 1011 (after the
                        // frame cut short, if any; then no close frame can follow it).
                        let unwritten = batch.iter().map(Bytes::len).sum();
                        batch.truncate(usize::from(partial));
                        session.stalled(unwritten);
                        if !partial {
                            batch.push_back(frame::close(close_code::INTERNAL_ERROR, ""));
                        }
                        let _ =
                            write_within(&write_half, &mut batch, stall, &mut partial, counters)
                                .await;
                        return;
                    }
                    Err(_) => {
                        session.close(close_code::NORMAL, true);
                        return;
                    }
                }
            }
            Taken::Close(code) => {
                let code = if code == 0 { close_code::NORMAL } else { code };
                batch.push_back(frame::close(code, ""));
                let _ = write_all(&write_half, &mut batch, counters).await;
                return;
            }
        }
    }
}

/// The close code (and, for logs, the reason) for a rule the client broke. Socket.io's
/// reference server (`ws`) closes text that is not UTF-8 with 1003, not RFC 6455's 1007.
fn close_for(violation: Violation) -> (u16, &'static str) {
    match violation {
        Violation::InvalidUtf8 => (close_code::UNSUPPORTED_DATA, "invalid UTF-8"),
        Violation::TooBig => (close_code::MESSAGE_TOO_BIG, "Max payload size exceeded"),
        other => (other.code(), other.reason()),
    }
}

async fn drain(read_half: &ReadHalf) {
    let mut scratch = [0u8; 512];
    loop {
        if read_half.readable().await.is_err() {
            return;
        }
        match read_half.try_read(&mut scratch) {
            Ok(0) => return,
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_plugin_kit::ws::testing::masked_frame as masked;

    /// What a client's bad input closes the WebSocket with: the kit's rules, Socket.io's codes.
    #[test]
    fn violations_close_with_a_code() {
        let mut unmasked = masked(0x81, b"40");
        unmasked[1] &= 0x7F;
        let cases = [
            (masked(0x81, &[0xff, 0xfe]), 1003, "invalid UTF-8"),
            (
                masked(0x81, &[b'x'; 101]),
                1009,
                "Max payload size exceeded",
            ),
            (masked(0xC1, b"40"), 1002, "reserved bits set"),
            (masked(0x83, b"40"), 1002, "reserved opcode"),
            (
                masked(0x80, b"40"),
                1002,
                "continuation frame without a message to continue",
            ),
            (masked(0x09, b""), 1002, "fragmented control frame"),
            (unmasked, 1002, "client frames must be masked"),
        ];
        for (mut input, code, reason) in cases {
            let error = Reader::new(100, false).decode(&mut input).unwrap_err();
            assert_eq!(close_for(error), (code, reason));
        }
        // A fragmented message is capped as a whole.
        let mut input = masked(0x01, &[b'x'; 60]);
        input.extend(masked(0x80, &[b'x'; 60]));
        let error = Reader::new(100, false).decode(&mut input).unwrap_err();
        assert_eq!(close_for(error).0, 1009);
        // Binary messages are refused by the read loop, not the codec.
        let mut input = masked(0x82, b"\x01");
        let mut reader = Reader::new(100, false);
        let decoded = reader.decode(&mut input).unwrap();
        assert!(matches!(decoded.1, Some(Event::Binary(_))));
    }
}
