//! The JSON frames this plugin writes: responses and notifications with `room` spliced in, and
//! Kuzzle's error responses for input that never reaches the host.

use bytes::Bytes;
use switchyard_plugin_api::errors::{self, KuzzleError};
use switchyard_plugin_api::json::{self, KnownPlainString};
use switchyard_plugin_kit::request::NotAnObject;

use switchyard_plugin_kit::ws::deflate;
use switchyard_plugin_kit::ws::frame::{opcode, FrameBuilder};

/// The answer to the application ping `{"p":1}`.
pub const APPLICATION_PONG: &[u8] = b"{\"p\":2}";

/// True for Kuzzle's application ping: a JSON object whose only member is `p` equal to 1 (the
/// SDKs send exactly `{"p":1}`; Kuzzle also accepts `{ "p": 1 }` or `{"p":1.0}`).
pub fn is_application_ping(text: &str) -> bool {
    if text == "{\"p\":1}" {
        return true;
    }
    // Anything longer cannot be a spaced-out `{"p":1}` worth parsing.
    if text.len() > 64 || !text.contains("\"p\"") {
        return false;
    }
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text) {
        Ok(object) => {
            object.len() == 1 && object.get("p").and_then(serde_json::Value::as_f64) == Some(1.0)
        }
        Err(_) => false,
    }
}

/// A text frame holding `object` with `"room":"<room>"` spliced in, compressed when `deflate`
/// and long enough. An `object` that is not a JSON object is sent as it is.
pub fn room_frame(object: &str, room: &str, deflate: bool) -> Bytes {
    // Exact for an answer that needs no escape in its room: `,"room":"<room>"` is 10 + room.
    let mut builder = FrameBuilder::with_capacity(object.len() + room.len() + 10);
    if !json::splice_room(builder.payload(), object, room) {
        builder.payload().extend_from_slice(object.as_bytes());
    }
    if deflate && builder.payload_bytes().len() >= deflate::MIN_COMPRESSED_LEN {
        let plain = builder.payload_bytes().to_vec();
        builder.clear_payload();
        deflate::compress(&plain, builder.payload());
        return builder.finish(opcode::TEXT, true);
    }
    builder.finish(opcode::TEXT, false)
}

/// The frames of one notification for one channel, built on first use and then shared by every
/// member: at most one plain and one compressed frame per channel, whatever the member count.
#[derive(Debug)]
pub struct ChannelFrames<'a> {
    payload: &'a str,
    channel: &'a str,
    plain: Option<Bytes>,
    compressed: Option<Bytes>,
}

impl<'a> ChannelFrames<'a> {
    /// Frames for `payload` sent on `channel`; nothing is built yet.
    pub fn new(payload: &'a str, channel: &'a str) -> ChannelFrames<'a> {
        ChannelFrames {
            payload,
            channel,
            plain: None,
            compressed: None,
        }
    }

    /// The frame for a member that negotiated deflate or not (a cheap handle clone).
    pub fn get(&mut self, deflate: bool) -> Bytes {
        let (slot, payload, channel) = if deflate {
            (&mut self.compressed, self.payload, self.channel)
        } else {
            (&mut self.plain, self.payload, self.channel)
        };
        slot.get_or_insert_with(|| room_frame(payload, channel, deflate))
            .clone()
    }
}

/// What is wrong with a text message before it reaches the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadRequest {
    /// Not JSON at all.
    InvalidJson(String),
    /// JSON, but not an object.
    NotAnObject,
    /// A binary frame: requests are JSON text.
    Binary,
}

/// Checks that `text` is one JSON object, without building it. `token` is the connection's
/// memory of the token its requests carry (`check_object_with_token`).
pub fn check_request(text: &str, token: &mut KnownPlainString) -> Result<(), BadRequest> {
    match switchyard_plugin_kit::request::check_object_with_token(text, token) {
        Ok(()) => Ok(()),
        Err(NotAnObject::InvalidJson(why)) => Err(BadRequest::InvalidJson(why)),
        Err(NotAnObject::OtherJson) => Err(BadRequest::NotAnObject),
    }
}

pub use switchyard_plugin_kit::request::request_id_of;

impl BadRequest {
    /// Kuzzle's error for it (`network.websocket.unexpected_error`, 400).
    pub fn error(&self) -> KuzzleError {
        let detail = match self {
            BadRequest::InvalidJson(detail) => format!("invalid JSON: {detail}"),
            BadRequest::NotAnObject => "a request must be a JSON object".to_string(),
            BadRequest::Binary => {
                "binary frames are not supported: send each request as a JSON text frame"
                    .to_string()
            }
        };
        errors::NETWORK_WEBSOCKET_UNEXPECTED_ERROR.with(&[&detail])
    }
}

/// Kuzzle's error response for a request that never reached the host. `room` is the request id
/// when it is known (Kuzzle omits it, but then the SDK's promise never resolves).
pub fn error_response(request_id: Option<&str>, error: &KuzzleError) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("{\"requestId\":");
    push_optional(&mut out, request_id);
    out.push_str(",\"status\":");
    json::push_u64(&mut out, error.status().into());
    out.push_str(",\"error\":");
    error.write_json(&mut out);
    out.push_str(
        ",\"controller\":null,\"action\":null,\"collection\":null,\"index\":null,\"volatile\":null,\"result\":null",
    );
    if let Some(id) = request_id {
        out.push_str(",\"room\":");
        json::push_str(&mut out, id);
    }
    out.push('}');
    out
}

fn push_optional(out: &mut String, value: Option<&str>) {
    match value {
        Some(value) => json::push_str(out, value),
        None => out.push_str("null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_pings_are_recognised_as_kuzzle_does() {
        let cases = [
            (r#"{"p":1}"#, true),
            (r#"{ "p": 1 }"#, true),
            (r#"{"p":1.0}"#, true),
            (r#"{"p":2}"#, false),
            (r#"{"p":"1"}"#, false),
            (r#"{"p":1,"q":1}"#, false),
            (r#"{"controller":"server","action":"now","p":1}"#, false),
            ("p", false),
        ];
        for (text, expected) in cases {
            assert_eq!(is_application_ping(text), expected, "{text}");
        }
    }
    use switchyard_plugin_kit::ws::reader::{Event, MessageReader};

    #[test]
    fn requests_are_checked() {
        let cases = [
            (r#"{"controller":"server","action":"now"}"#, Ok(())),
            (" {}", Ok(())),
            ("[1]", Err(BadRequest::NotAnObject)),
            ("\"text\"", Err(BadRequest::NotAnObject)),
            ("42", Err(BadRequest::NotAnObject)),
            ("null", Err(BadRequest::NotAnObject)),
            (
                "{",
                Err(BadRequest::InvalidJson(
                    "EOF while parsing an object at line 1 column 1".into(),
                )),
            ),
            (
                "nope",
                Err(BadRequest::InvalidJson(
                    "expected ident at line 1 column 2".into(),
                )),
            ),
            (
                "{} {}",
                Err(BadRequest::InvalidJson(
                    "trailing characters at line 1 column 4".into(),
                )),
            ),
            (
                "",
                Err(BadRequest::InvalidJson(
                    "EOF while parsing a value at line 1 column 0".into(),
                )),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(
                check_request(text, &mut KnownPlainString::new()),
                expected,
                "{text}"
            );
        }
    }

    #[test]
    fn request_ids_are_found_when_they_are_strings() {
        assert_eq!(
            request_id_of(br#"{"requestId":"r-1","x":[1]}"#).as_deref(),
            Some("r-1")
        );
        assert_eq!(request_id_of(br#"{"requestId":12}"#), None);
        assert_eq!(request_id_of(br#"{"a":1}"#), None);
        assert_eq!(request_id_of(br#"[1]"#), None);
        assert_eq!(request_id_of(b"{"), None);
    }

    #[test]
    fn error_responses_have_kuzzles_shape() {
        let error = BadRequest::NotAnObject.error();
        assert_eq!(
            error_response(Some("r\"1"), &error),
            r#"{"requestId":"r\"1","status":400,"error":{"message":"Caught an unexpected WebSocket error: a request must be a JSON object","status":400,"id":"network.websocket.unexpected_error","code":50528257,"props":[]},"controller":null,"action":null,"collection":null,"index":null,"volatile":null,"result":null,"room":"r\"1"}"#
        );
        let limited = errors::NETWORK_WEBSOCKET_RATELIMIT_EXCEEDED.error();
        assert_eq!(
            error_response(None, &limited),
            r#"{"requestId":null,"status":429,"error":{"message":"Rejected: too many requests received from that socket","status":429,"id":"network.websocket.ratelimit_exceeded","code":50528258,"props":[]},"controller":null,"action":null,"collection":null,"index":null,"volatile":null,"result":null}"#
        );
    }

    /// Reads a server frame back as (RSV1, payload text).
    fn open(frame: &Bytes) -> (bool, String) {
        let compressed = frame[0] & 0x40 != 0;
        let (len, start) = match frame[1] {
            126 => (u16::from_be_bytes([frame[2], frame[3]]) as usize, 4),
            len => (len as usize, 2),
        };
        assert_eq!(frame.len(), start + len);
        let body = &frame[start..];
        if compressed {
            let mut out = Vec::new();
            deflate::decompress(body, 1 << 20, &mut out).unwrap();
            (true, String::from_utf8(out).unwrap())
        } else {
            (false, String::from_utf8(body.to_vec()).unwrap())
        }
    }

    #[test]
    fn room_frames_splice_and_compress_long_payloads() {
        let frame = room_frame(r#"{"a":1}"#, "chan", false);
        assert_eq!(
            open(&frame),
            (false, r#"{"a":1,"room":"chan"}"#.to_string())
        );
        assert!(
            !open(&room_frame(r#"{"a":1}"#, "chan", true)).0,
            "short: sent plain"
        );
        let long = format!(r#"{{"text":"{}"}}"#, "x".repeat(200));
        let (compressed, text) = open(&room_frame(&long, "chan", true));
        assert!(compressed);
        assert_eq!(
            text,
            format!(r#"{{"text":"{}","room":"chan"}}"#, "x".repeat(200))
        );
        assert_eq!(open(&room_frame("[1]", "chan", false)).1, "[1]");
    }

    #[test]
    fn channel_frames_are_built_once_per_kind() {
        let mut frames = ChannelFrames::new(r#"{"n":1}"#, "c");
        let first = frames.get(false);
        let second = frames.get(false);
        assert_eq!(first.as_ptr(), second.as_ptr(), "same buffer, not a copy");
        let mut reader = MessageReader::new(100, false);
        // Server frames are unmasked; mask it the way a client would to reuse the reader.
        let mut client = switchyard_plugin_kit::ws::testing::masked_frame(0x81, &first[2..]);
        let (_, event) = reader.decode(&mut client).unwrap();
        assert_eq!(event, Some(Event::Text(r#"{"n":1,"room":"c"}"#)));
    }
}
