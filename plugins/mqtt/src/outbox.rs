//! The MQTT plugin's outbox: the kit's (`switchyard_plugin_kit::outbox`), capped in bytes
//! (`maxQueuedBytes`), closed without a last packet on overflow or when its writes stall for
//! `slowConsumerTimeout` (MQTT 3.1.1 has no DISCONNECT from the server). QoS 0 packets are not
//! capped in number: a subscriber that keeps reading gets a whole burst (the protocol's pressure
//! paces the publishers); QoS 1/2 messages are bounded per session (`maxQueuedMessages`).

use std::sync::Arc;

use switchyard_plugin_api::ConnectionId;
use switchyard_plugin_kit::flow::Flow;
use switchyard_plugin_kit::outbox::Limits;
pub use switchyard_plugin_kit::outbox::{Closing, Outbox, Pushed, Taken};
use switchyard_plugin_kit::pressure::Pressure;

/// The reason given when a queue overflows.
pub const TOO_SLOW: &str = "too many queued bytes: client is too slow";

/// An empty outbox of `connection`, capped as `flow` says, its bytes counted in `pressure`.
pub fn new(connection: ConnectionId, flow: &Flow, pressure: Arc<Pressure>) -> Outbox {
    Outbox::new(
        connection,
        Limits::bytes(flow.max_queued_bytes, flow.slow_consumer_timeout),
        Closing::silent(TOO_SLOW),
        pressure,
    )
}

/// An outbox capped at `max_bytes`, counted nowhere (tests).
#[cfg(test)]
pub fn for_tests(max_bytes: usize) -> Outbox {
    let flow = Flow {
        max_queued_bytes: max_bytes,
        ..Flow::default()
    };
    new(ConnectionId(1), &flow, Arc::new(Pressure::unreported()))
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use bytes::Bytes;

    use super::*;

    #[test]
    fn the_byte_cap_closes_a_slow_consumer_without_a_last_packet() {
        let outbox = for_tests(2);
        for _ in 0..2 {
            assert_eq!(outbox.push(Bytes::from_static(b"x")), Pushed::Queued);
        }
        assert_eq!(outbox.push(Bytes::from_static(b"x")), Pushed::Overflow);
        assert_eq!(outbox.close_reason(), Some(TOO_SLOW));
        let mut batch = VecDeque::new();
        assert_eq!(outbox.take(&mut batch), Taken::Close(Bytes::new()));
        assert!(batch.is_empty());
    }
}
