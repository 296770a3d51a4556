//! The MQTT plugin's outbox: the kit's (`switchyard_plugin_kit::outbox`), capped in packets and
//! bytes, closed without a last packet on overflow (MQTT 3.1.1 has no DISCONNECT from the server).

use switchyard_plugin_kit::outbox::Limits;
pub use switchyard_plugin_kit::outbox::{Closing, Outbox, Pushed, Taken};

/// The reason given when a queue overflows.
pub const TOO_SLOW: &str = "too many queued messages: client is too slow";

/// An empty outbox holding at most `max_messages` packets and `max_bytes` bytes.
pub fn new(max_messages: usize, max_bytes: usize) -> Outbox {
    Outbox::new(
        Limits {
            max_frames: max_messages,
            max_bytes,
        },
        Closing::silent(TOO_SLOW),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use bytes::Bytes;

    use super::*;

    #[test]
    fn the_message_cap_closes_a_slow_consumer_without_a_last_packet() {
        let outbox = new(2, 1000);
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
