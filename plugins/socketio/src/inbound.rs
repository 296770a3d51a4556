//! What a client sends, whatever the transport: Engine.IO packets, the Socket.IO packets inside
//! them, and Kuzzle's `kuzzle` event, which becomes an `execute`.
//!
//! Bad input closes that session only, as npm `engine.io`/`socket.io` do: an unknown Engine.IO
//! packet, a ping from the client (v4 pings go server → client), a binary packet, a Socket.IO
//! packet `socket.io-parser` would refuse, or a packet in the wrong state (an event before the
//! namespace connect, a second connect).

use std::sync::Arc;

use tracing::debug;

use switchyard_plugin_kit::ws::frame::close_code;

use crate::server::Shared;
use crate::session::Session;
use crate::{engine, packets, sio};

/// The Socket.IO event carrying Kuzzle requests.
pub const KUZZLE_EVENT: &str = "kuzzle";

/// The session must close: the reason, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub &'static str);

/// Handles one Engine.IO packet. On `Err`, the session has been asked to close.
pub fn on_engine_packet(
    shared: &Shared,
    session: &Arc<Session>,
    text: &str,
) -> Result<(), Refused> {
    session.alive();
    let result = match engine::decode(text) {
        Err(_) => Err(Refused("parse error")),
        Ok(engine::Packet::Message(data)) => on_socket_io(shared, session, data),
        Ok(engine::Packet::Pong(_) | engine::Packet::Noop | engine::Packet::Upgrade) => Ok(()),
        Ok(engine::Packet::Ping(_)) => Err(Refused("invalid heartbeat direction")),
        Ok(engine::Packet::Close) => Err(Refused("client closed")),
        Ok(engine::Packet::Binary) => Err(Refused("binary packets are not supported")),
    };
    if let Err(Refused(reason)) = result {
        debug!(sid = %session.sid, reason, "closing session");
        session.close(close_code::NORMAL, false);
    }
    result
}

fn on_socket_io(shared: &Shared, session: &Arc<Session>, data: &str) -> Result<(), Refused> {
    let packet = sio::decode(data).map_err(|_| Refused("parse error"))?;
    let connection = session.memberships.connection();
    match packet {
        sio::Packet::Connect { namespace } if namespace != sio::MAIN_NAMESPACE => {
            session.push(packets::engine(&format!(
                "4{}",
                sio::invalid_namespace(namespace)
            )));
            Ok(())
        }
        sio::Packet::Connect { .. } => {
            if connection.is_some() {
                return Err(Refused("invalid state: already connected"));
            }
            let client = &session.client;
            let headers: Vec<(&str, &str)> = client
                .headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect();
            let id = shared.backend.new_connection(&[&client.ip], &headers);
            shared.registry.attach(session, id);
            session.push(packets::engine(&format!(
                "4{}",
                sio::connect_ok(&session.socket_id)
            )));
            Ok(())
        }
        sio::Packet::Disconnect { namespace } => {
            if namespace == sio::MAIN_NAMESPACE {
                if let Some(id) = shared.registry.detach(session) {
                    shared.backend.remove_connection(id);
                }
            }
            Ok(())
        }
        sio::Packet::Event {
            namespace,
            ack,
            name,
            first_argument,
        } => {
            let Some(id) = connection.filter(|_| namespace == sio::MAIN_NAMESPACE) else {
                return Err(Refused(
                    "invalid state: event outside a connected namespace",
                ));
            };
            if name == KUZZLE_EVENT {
                execute(shared, session, id, ack, first_argument.unwrap_or("null"));
            }
            Ok(())
        }
        sio::Packet::Ack { .. } if connection.is_some() => Ok(()),
        sio::Packet::Ack { .. } | sio::Packet::ConnectError { .. } => Err(Refused("invalid state")),
    }
}

/// Runs a Kuzzle request; its response `content` is emitted on the event named after the
/// `requestId` (Kuzzle 1's convention), and also acknowledged when the client asked for an ack.
fn execute(
    shared: &Shared,
    session: &Arc<Session>,
    id: switchyard_plugin_api::ConnectionId,
    ack: Option<u64>,
    request: &str,
) {
    let target = session.clone();
    session.pending.started();
    shared.backend.execute(
        id,
        request,
        Box::new(move |response| {
            target.push(packets::event(response.request_id, response.content));
            if let Some(ack) = ack {
                target.push(packets::ack(ack, response.content));
            }
            target.pending.answered();
        }),
    );
}
