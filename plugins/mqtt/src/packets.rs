//! What a connected client's packets do: Kuzzle requests, the publish and subscribe rules, the
//! QoS 1 and 2 handshakes, pings.

use std::sync::Arc;

use bytes::Bytes;
use switchyard_plugin_api::ConnectionId;
use tracing::debug;

use crate::broker::Broker;
use crate::codec::{kind, Packet, Publish, Violation};
use crate::encode::{self, SUBACK_FAILURE};
use crate::kuzzle;
use crate::outbox::{Outbox, Pushed};
use crate::server::Shared;
use crate::session::{Message, Session};
use crate::topic;
use switchyard_plugin_kit::flow::Pending;

/// Why a connection's reader stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The client sent DISCONNECT: its will is discarded.
    Disconnected,
    /// The client broke a protocol rule.
    Violation(Violation),
    /// The client did something Kuzzle's rules forbid (publishing to `responseTopic`, or to an
    /// ordinary topic without `allowPubSub`).
    Refused(&'static str),
    /// Nothing received for one and a half keep-alive periods.
    KeepAlive,
    /// An unfinished packet past the instance's `maxTotalPartialBytes`.
    Busy,
    /// A close was requested through the outbox (disconnect hook, slow consumer, takeover,
    /// dead writer).
    Requested,
    /// The socket closed or failed.
    Gone,
}

/// A connected client, as its packets see it.
pub struct Handler<'a> {
    /// Settings, host and broker.
    pub shared: &'a Shared,
    /// The host's id for this connection.
    pub connection: ConnectionId,
    /// The client's session.
    pub session: &'a Arc<Session>,
    /// This connection's outgoing queue.
    pub outbox: &'a Arc<Outbox>,
    /// Its Kuzzle requests awaiting answers.
    pub pending: &'a Arc<Pending>,
}

/// Why the reader leaves a packet unread for now (flow control, issue 13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pause {
    /// A Kuzzle request while `maxPendingRequests` await answers: wait for answers.
    Answers,
    /// An ordinary PUBLISH while the instance's queues are congested: wait for relief, so
    /// TCP pushes back on the publisher (nats-server stalls a fast producer the same way).
    Congestion,
}

impl Handler<'_> {
    /// Whether `packet` must wait before it is handled.
    pub fn pause_before(&self, packet: &Packet<'_>) -> Option<Pause> {
        let Packet::Publish(publish) = packet else {
            return None;
        };
        if publish.topic == self.shared.settings.request_topic {
            self.pending.is_full().then_some(Pause::Answers)
        } else {
            self.shared
                .pressure()
                .is_congested()
                .then_some(Pause::Congestion)
        }
    }

    /// Acts on one packet; `Some` ends the connection.
    pub fn handle(&mut self, packet: Packet<'_>) -> Option<Ending> {
        match packet {
            Packet::Connect(_) => {
                return Some(Ending::Violation(Violation::Malformed("second CONNECT")))
            }
            Packet::Publish(publish) => return self.publish(publish),
            Packet::PubAck(packet_id) | Packet::PubComp(packet_id) => {
                self.session.acknowledged(packet_id)
            }
            Packet::PubRec(packet_id) => {
                self.session.received(packet_id);
                self.push(encode::ack(kind::PUBREL, packet_id));
            }
            Packet::PubRel(packet_id) => {
                self.session.release_incoming(packet_id);
                self.push(encode::ack(kind::PUBCOMP, packet_id));
            }
            Packet::Subscribe { packet_id, filters } => self.subscribe(packet_id, &filters),
            Packet::Unsubscribe { packet_id, filters } => {
                for filter in filters {
                    self.shared.broker.unsubscribe(self.session, filter);
                }
                self.push(encode::unsuback(packet_id));
            }
            Packet::PingReq => self.push(encode::pingresp()),
            Packet::Disconnect => return Some(Ending::Disconnected),
        }
        None
    }

    /// Queues a reply to the client's own packet (acks, PINGRESP): not counted in the
    /// protocol's pressure (`Outbox::push_reply`).
    fn push(&self, packet: Bytes) {
        if self.outbox.push_reply(packet) == Pushed::Overflow {
            debug!(connection = %self.connection, "outgoing queue full: closing");
        }
    }

    fn publish(&mut self, publish: Publish<'_>) -> Option<Ending> {
        let settings = &self.shared.settings;
        let is_request = publish.topic == settings.request_topic;
        if !is_request {
            if publish.topic == settings.response_topic {
                return Some(Ending::Refused("publishing to responseTopic is refused"));
            }
            if !settings.allow_pub_sub {
                return Some(Ending::Refused(
                    "publishing to a topic other than requestTopic needs allowPubSub",
                ));
            }
        }
        // QoS 2, method B: act on the first copy, acknowledge every copy, until PUBREL.
        let fresh = match (publish.qos, publish.packet_id) {
            (2, Some(packet_id)) => self.session.begin_incoming(packet_id),
            _ => true,
        };
        if fresh {
            if is_request {
                self.request(publish.payload);
            } else {
                let message = Message {
                    topic: Arc::from(publish.topic),
                    payload: Bytes::copy_from_slice(publish.payload),
                    qos: publish.qos,
                };
                self.shared.broker.publish(&message, publish.retain);
            }
        }
        match (publish.qos, publish.packet_id) {
            (1, Some(packet_id)) => self.push(encode::ack(kind::PUBACK, packet_id)),
            (2, Some(packet_id)) => self.push(encode::ack(kind::PUBREC, packet_id)),
            _ => {}
        }
        None
    }

    /// A Kuzzle API request: to the host, whose answer goes to this client only, on
    /// `responseTopic`, as a QoS 0 PUBLISH of the response's `content`.
    fn request(&self, payload: &[u8]) {
        let response_topic: Arc<str> = Arc::from(self.shared.settings.response_topic.as_str());
        match kuzzle::check_request(payload) {
            Ok(text) => {
                let outbox = self.outbox.clone();
                let pending = self.pending.clone();
                pending.started();
                self.shared.backend.execute(
                    self.connection,
                    text,
                    Box::new(move |response| {
                        let packet = encode::publish(
                            &response_topic,
                            response.content.as_bytes(),
                            0,
                            false,
                            false,
                            None,
                        );
                        outbox.push_reply(packet);
                        pending.answered();
                    }),
                );
            }
            Err(bad) => {
                let request_id = kuzzle::request_id_of(payload);
                let json = kuzzle::error_response(request_id.as_deref(), &bad.error());
                let packet =
                    encode::publish(&response_topic, json.as_bytes(), 0, false, false, None);
                self.push(packet);
            }
        }
    }

    /// Grants or refuses each filter, then sends SUBACK, then the retained messages.
    fn subscribe(&self, packet_id: u16, filters: &[(&str, u8)]) {
        let settings = &self.shared.settings;
        let mut codes = Vec::with_capacity(filters.len());
        let mut retained = Vec::new();
        for &(filter, qos) in filters {
            let refused = filter == settings.request_topic
                || (topic::has_wildcards(filter) && !settings.allow_pub_sub);
            if refused {
                codes.push(SUBACK_FAILURE);
                continue;
            }
            codes.push(qos);
            let messages = self.shared.broker.subscribe(self.session, filter, qos);
            if !messages.is_empty() {
                retained.push((messages, qos));
            }
        }
        self.push(encode::suback(packet_id, &codes));
        for (messages, qos) in retained {
            Broker::send_retained(self.session, &messages, qos);
        }
    }
}
