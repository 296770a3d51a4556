//! The frames this plugin queues: Engine.IO packets wrapped in a WebSocket text frame, built once
//! and shared (a polling GET sends the same bytes without the frame header).

use bytes::Bytes;

use switchyard_plugin_kit::ws::frame::{opcode, FrameBuilder};

use crate::sio;

/// An Engine.IO packet (`text` includes its type digit) as a frame.
pub fn engine(text: &str) -> Bytes {
    switchyard_plugin_kit::ws::frame::build(opcode::TEXT, text.as_bytes())
}

/// The ping packet `2`.
pub fn ping() -> Bytes {
    Bytes::from_static(b"\x81\x012")
}

/// The close packet `1`.
pub fn close() -> Bytes {
    Bytes::from_static(b"\x81\x011")
}

/// A notification: the event named after the channel, the payload as its argument.
#[derive(Debug)]
pub struct ChannelFrame;

impl ChannelFrame {
    /// `42["<channel>",<payload>]` in a frame, for every member of `channel`.
    pub fn build(channel: &str, payload: &str) -> Bytes {
        event(channel, payload)
    }
}

/// `42[<name>,<raw argument>]` in a frame.
pub fn event(name: &str, raw_argument: &str) -> Bytes {
    let mut builder = FrameBuilder::with_capacity(name.len() + raw_argument.len() + 8);
    builder.payload().push(b'4');
    sio::push_event(builder.payload(), name, raw_argument);
    builder.finish(opcode::TEXT, false)
}

/// `43<id>[<raw argument>]` in a frame.
pub fn ack(id: u64, raw_argument: &str) -> Bytes {
    let mut builder = FrameBuilder::with_capacity(raw_argument.len() + 24);
    builder.payload().push(b'4');
    sio::push_ack(builder.payload(), id, raw_argument);
    builder.finish(opcode::TEXT, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_plugin_kit::ws::frame::payload_of;

    #[test]
    fn frames_hold_engine_packets() {
        let cases = [
            (engine("3probe"), "3probe"),
            (ping(), "2"),
            (close(), "1"),
            (
                ChannelFrame::build("r-1", r#"{"a":1}"#),
                r#"42["r-1",{"a":1}]"#,
            ),
            (ack(7, r#"{"a":1}"#), r#"437[{"a":1}]"#),
        ];
        for (frame, text) in cases {
            assert_eq!(frame[0], 0x81);
            assert_eq!(usize::from(frame[1]), text.len());
            assert_eq!(&payload_of(&frame)[..], text.as_bytes());
        }
        let long = "x".repeat(300);
        let frame = event("c", &format!("\"{long}\""));
        assert_eq!(frame[1], 126);
        assert_eq!(
            String::from_utf8(payload_of(&frame).to_vec()).unwrap(),
            format!("42[\"c\",\"{long}\"]")
        );
    }
}
