//! One client connection: CONNECT, then a reader (this task) and a writer (its own task).
//!
//! The reader decodes packets and acts on them; it never writes to the socket. Every rule
//! breach closes only this connection, as MQTT 3.1.1 requires (it has no error packet): the
//! queued packets are dropped, the socket is closed, and the will is published.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tracing::debug;

use crate::broker::Link;
use crate::codec::{self, Connect, Violation};
use crate::encode::{self, connack_code};
use crate::outbox::{self, Closing};
use crate::packets::{Ending, Handler, Pause};
use crate::server::Shared;
use crate::session::Message;
use switchyard_plugin_kit::flow::Pending;
use switchyard_plugin_kit::partial::PartialClaim;
use switchyard_plugin_kit::socket::{self, Filled, Idle};
use switchyard_plugin_kit::stats::Counter;
use switchyard_plugin_kit::stream::{ReadHalf, Stream};
use switchyard_plugin_kit::writer::{write_all, write_loop};

/// How long the writer may take to flush after the reader stopped.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Serial numbers of network connections: they tell a session's current connection from one
/// it replaced, and name clients that sent an empty client id.
static SERIALS: AtomicU64 = AtomicU64::new(1);

/// Serves one accepted socket until it is closed.
pub async fn serve(shared: Arc<Shared>, stream: Stream, peer: SocketAddr) {
    // Small packets must leave at once: batching is the writer's job, not Nagle's.
    let _ = stream.set_nodelay(true);
    let (read_half, write_half) = stream.into_split();
    let mut buffer = Vec::new();
    // This connection's share of `maxTotalPartialBytes`, from its first byte: a CONNECT may
    // carry a will as large as any packet.
    let mut partial = shared.partial.claim();
    let first = tokio::time::timeout(
        shared.settings.connect_timeout,
        read_connect(
            &read_half,
            &mut buffer,
            shared.settings.max_packet_size,
            &mut partial,
        ),
    )
    .await;
    let refuse = |packet: Bytes| async {
        let counters = shared.pressure().counters();
        let _ = write_all(&write_half, &mut VecDeque::from([packet]), counters).await;
    };
    let (connect_length, refusal) = match first {
        Err(_) => return debug!(peer = %peer, "no CONNECT in time"),
        Ok(Err(error)) => return debug!(peer = %peer, error = %error, "closed before CONNECT"),
        Ok(Ok(Err(Violation::UnsupportedLevel(level)))) => {
            debug!(peer = %peer, level, "unsupported protocol level");
            let answer = if level == 5 {
                encode::connack_v5_unsupported()
            } else {
                encode::connack(false, connack_code::UNACCEPTABLE_PROTOCOL_VERSION)
            };
            return refuse(answer).await;
        }
        Ok(Ok(Err(violation))) => {
            return debug!(peer = %peer, violation = %violation, "closing before CONNECT")
        }
        Ok(Ok(Ok(None))) => {
            return debug!(peer = %peer, "CONNECT past maxTotalPartialBytes: closing")
        }
        Ok(Ok(Ok(Some(length)))) => {
            let Ok(Some((_, codec::Packet::Connect(connect)))) = codec::decode(&buffer, usize::MAX)
            else {
                unreachable!("read_connect returned a CONNECT")
            };
            (length, accept(&shared, &connect))
        }
    };
    let hello = match refusal {
        Ok(hello) => hello,
        Err(code) => {
            debug!(peer = %peer, code, "CONNECT refused");
            return refuse(encode::connack(false, code)).await;
        }
    };
    buffer.drain(..connect_length);
    let serial = SERIALS.fetch_add(1, Ordering::Relaxed);
    let client_id = hello
        .client_id
        .unwrap_or_else(|| format!("switchyard-{serial}"));

    let ip = peer.ip().to_string();
    let id = shared.backend.new_connection(&[&ip], &[]);
    let outbox = Arc::new(outbox::new(
        id,
        &shared.settings.flow,
        shared.pressure().clone(),
    ));
    let (session, present) = shared.broker.open_session(&client_id, hello.clean);
    // CONNACK is the first packet out, before anything the session resends.
    outbox.push(encode::connack(present, connack_code::ACCEPTED));
    shared.broker.insert_link(
        id,
        Link {
            outbox: outbox.clone(),
        },
    );
    if let Some(replaced) = session.attach(serial, outbox.clone()) {
        replaced.close(Closing::silent(crate::broker::TAKEN_OVER), false);
    }
    debug!(connection = %id, client_id = %client_id, clean = hello.clean, present, "connected");
    let writer = tokio::spawn(write_loop(write_half, outbox.clone()));

    let pending = Arc::new(Pending::new(shared.settings.flow.max_pending_requests));
    let mut handler = Handler {
        shared: &shared,
        connection: id,
        session: &session,
        outbox: &outbox,
        pending: &pending,
    };
    // The specification's grace: one and a half keep-alive periods without any packet.
    let keep_alive =
        (hello.keep_alive > 0).then(|| Duration::from_millis(u64::from(hello.keep_alive) * 1500));
    let ending = read_loop(&mut handler, &read_half, buffer, keep_alive, &mut partial).await;
    // Gives back its share of `maxTotalPartialBytes` now, not after the writer's linger.
    drop(partial);
    debug!(connection = %id, ending = ?ending, "closing");
    match ending {
        Ending::Disconnected => {
            outbox.close(Closing::silent("client disconnected"), false);
        }
        Ending::Violation(_) | Ending::Refused(_) => {
            shared.pressure().counters().add(Counter::ClosedError, 1);
            outbox.close(Closing::silent("protocol violation"), true);
        }
        Ending::KeepAlive => {
            shared.pressure().counters().add(Counter::ClosedIdle, 1);
            outbox.close(Closing::silent("keep-alive timeout"), true);
        }
        Ending::Busy => {
            // MQTT 3.1.1 has no error packet: closing is the refusal (as mosquitto does at its
            // memory limit).
            outbox.close(Closing::silent("too many unfinished packets"), true);
        }
        Ending::Gone => {
            outbox.close(Closing::silent("socket closed"), true);
        }
        Ending::Requested => {}
    }
    shared.broker.remove_link(id);
    shared.broker.close_session(&session, serial);
    if !matches!(ending, Ending::Disconnected) && !shared.backend.is_shutting_down() {
        if let Some((message, retain)) = hello.will {
            shared.broker.publish(&message, retain);
        }
    }
    shared.backend.remove_connection(id);
    let mut writer = writer;
    if tokio::time::timeout(CLOSE_TIMEOUT, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

/// Reads until one whole packet is buffered; it must be a CONNECT. Returns its length, or
/// `None` when the bytes it holds would pass `maxTotalPartialBytes`.
async fn read_connect(
    read_half: &ReadHalf,
    buffer: &mut Vec<u8>,
    max_packet_size: usize,
    partial: &mut PartialClaim,
) -> io::Result<Result<Option<usize>, Violation>> {
    loop {
        // The first byte says whether this is a CONNECT: anything else (an HTTP request, a
        // PINGREQ…) is refused at once rather than after waiting for its announced length.
        if buffer
            .first()
            .is_some_and(|&first| first != codec::kind::CONNECT << 4)
        {
            return Ok(Err(Violation::Malformed("first packet is not CONNECT")));
        }
        match codec::decode(buffer, max_packet_size) {
            Err(violation) => return Ok(Err(violation)),
            Ok(Some((length, codec::Packet::Connect(_)))) => return Ok(Ok(Some(length))),
            Ok(Some(_)) => return Ok(Err(Violation::Malformed("first packet is not CONNECT"))),
            Ok(None) => {}
        }
        if partial.hold(buffer.len()).is_err() {
            return Ok(Ok(None));
        }
        read_half.readable().await?;
        buffer.reserve(1024);
        match read_half.try_read_buf(buffer) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
}

/// What the connection keeps of an accepted CONNECT.
struct Hello {
    /// `None` when the client sent an empty id (one is assigned).
    client_id: Option<String>,
    clean: bool,
    keep_alive: u16,
    /// The will and its retain flag.
    will: Option<(Message, bool)>,
}

/// Accepts a well-formed CONNECT, or returns the CONNACK code refusing it.
fn accept(shared: &Shared, connect: &Connect<'_>) -> Result<Hello, u8> {
    let settings = &shared.settings;
    if shared.backend.is_shutting_down() {
        return Err(connack_code::SERVER_UNAVAILABLE);
    }
    if connect.client_id.is_empty() && !connect.clean_session {
        return Err(connack_code::IDENTIFIER_REJECTED);
    }
    // As mosquitto's max_keepalive: 3.1.1 cannot tell the client to use less.
    if settings.max_keep_alive > 0
        && (connect.keep_alive == 0 || connect.keep_alive > settings.max_keep_alive)
    {
        return Err(connack_code::IDENTIFIER_REJECTED);
    }
    if let Some(will) = &connect.will {
        let allowed = settings.allow_pub_sub
            && will.topic != settings.request_topic
            && will.topic != settings.response_topic;
        if !allowed {
            return Err(connack_code::NOT_AUTHORIZED);
        }
    }
    Ok(Hello {
        client_id: (!connect.client_id.is_empty()).then(|| connect.client_id.to_string()),
        clean: connect.clean_session,
        keep_alive: connect.keep_alive,
        will: connect.will.as_ref().map(|will| {
            let message = Message {
                topic: Arc::from(will.topic),
                payload: Bytes::copy_from_slice(will.payload),
                qos: will.qos,
            };
            (message, will.retain)
        }),
    })
}

/// Reads and handles packets until the connection must end.
async fn read_loop(
    handler: &mut Handler<'_>,
    read_half: &ReadHalf,
    mut buffer: Vec<u8>,
    keep_alive: Option<Duration>,
    partial: &mut PartialClaim,
) -> Ending {
    let max_packet_size = handler.shared.settings.max_packet_size;
    // Without a keep-alive the deadline is far away; the timer is still cheap.
    let window = keep_alive.unwrap_or(Duration::from_secs(86_400 * 365));
    let mut idle = Idle::new(window);
    let timer = tokio::time::sleep(window);
    tokio::pin!(timer);
    loop {
        // Only whole packets move the keep-alive deadline, as MQTT 3.1.1 §3.1.2.10 says ("a
        // Control Packet"), not bytes: a client trickling an unfinished packet is idle.
        let mut progressed = false;
        let outcome = process(handler, &mut buffer, max_packet_size, &mut progressed);
        if progressed {
            idle.touch();
        }
        let pause = match outcome {
            Err(ending) => return ending,
            Ok(pause) => pause,
        };
        // What is left is an unfinished packet (or whole ones waiting for answers), counted
        // against the instance's total (issue 19): past it, a connection holding a large one
        // is closed, small ones always get through.
        if partial.hold(buffer.len()).is_err() {
            return Ending::Busy;
        }
        if buffer.is_empty() {
            // An idle connection keeps no read buffer.
            buffer = Vec::new();
        }
        let pending = handler.pending;
        let pressure = handler.shared.pressure();
        tokio::select! {
            biased;
            () = handler.outbox.reader_wait() => return Ending::Requested,
            // Waiting for the server is not the client's idleness.
            () = pending.room(), if pause == Some(Pause::Answers) => idle.touch(),
            () = pressure.wait_relieved(), if pause == Some(Pause::Congestion) => idle.touch(),
            ready = read_half.readable(), if pause.is_none() => {
                if socket::fill_ready(ready, read_half, &mut buffer, pressure.counters()) == Filled::Gone {
                    return Ending::Gone;
                }
            }
            () = idle.expired(timer.as_mut()) => return Ending::KeepAlive,
        }
    }
}

/// Handles every complete packet in `buffer`, then drops the bytes used. Stops early, leaving
/// the rest buffered, when a packet must wait (`Ok(Some(pause))`). Sets `progressed` when a
/// whole packet was handled.
fn process(
    handler: &mut Handler<'_>,
    buffer: &mut Vec<u8>,
    max_packet_size: usize,
    progressed: &mut bool,
) -> Result<Option<Pause>, Ending> {
    let mut used = 0;
    let outcome = loop {
        match codec::decode(&buffer[used..], max_packet_size) {
            Err(violation) => break Err(Ending::Violation(violation)),
            Ok(None) => break Ok(None),
            Ok(Some((length, packet))) => {
                if let Some(pause) = handler.pause_before(&packet) {
                    break Ok(Some(pause));
                }
                used += length;
                *progressed = true;
                if let Some(ending) = handler.handle(packet) {
                    break Err(ending);
                }
            }
        }
    };
    buffer.drain(..used);
    outcome
}
