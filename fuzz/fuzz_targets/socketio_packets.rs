//! Engine.IO and Socket.IO packets (`plugins/socketio/src/engine.rs`, `sio.rs`), as the plugin
//! reads them: a polling body split into Engine.IO packets, each message's data read as a
//! Socket.IO packet, a `kuzzle` event's argument checked as a request; and the query string of
//! an Engine.IO request.

#![no_main]

use libfuzzer_sys::fuzz_target;
use socketio::{engine, http::Query, sio};
use switchyard_plugin_kit::request;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Query::parse(text);
    for packet in engine::split_payload(text) {
        let Ok(engine::Packet::Message(message)) = engine::decode(packet) else {
            continue;
        };
        match sio::decode(message) {
            Ok(sio::Packet::Event {
                name,
                first_argument: Some(argument),
                ..
            }) => {
                let _ = name.len();
                if request::check_object(argument).is_ok() {
                    let _ = request::request_id_of(argument.as_bytes());
                }
            }
            Ok(other) => {
                let _ = format!("{other:?}");
            }
            Err(malformed) => {
                let _ = format!("{malformed:?}");
            }
        }
    }
});
