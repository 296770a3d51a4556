//! The MQTT 3.1.1 codec (`plugins/mqtt/src/codec.rs`): packets decoded one after the other from
//! a connection's buffer, as the reader task does, and every topic name and filter checked and
//! matched as the broker would.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mqtt::codec::{self, Packet};
use mqtt::{kuzzle, topic};

/// `maxPacketSize` for the fuzzer: small, so the cap is reached often.
const MAX_PACKET_SIZE: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    // Bounded: every decoded packet consumes at least two bytes.
    while !rest.is_empty() {
        let (used, packet) = match codec::decode(rest, MAX_PACKET_SIZE) {
            Ok(Some(decoded)) => decoded,
            Ok(None) | Err(_) => return,
        };
        assert!(
            used >= 2 && used <= rest.len(),
            "used {used} of {}",
            rest.len()
        );
        match &packet {
            Packet::Publish(publish) => {
                // A publish on `requestTopic` is a Kuzzle request.
                if let Err(bad) = kuzzle::check_request(publish.payload) {
                    let _ = kuzzle::error_response(None, &bad.error());
                }
                if topic::check_name(publish.topic).is_ok() {
                    let _ = topic::matches("#", publish.topic);
                    let _ = topic::matches("+/+", publish.topic);
                }
            }
            Packet::Subscribe { filters, .. } => {
                for (filter, _) in filters {
                    if topic::check_filter(filter).is_ok() {
                        let _ = topic::has_wildcards(filter);
                        let _ = topic::matches(filter, "a/b/c");
                        let _ = topic::matches(filter, "$SYS/x");
                    }
                }
            }
            _ => {}
        }
        let _ = format!("{packet:?}");
        rest = &rest[used..];
    }
});
