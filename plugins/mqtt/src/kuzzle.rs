//! Kuzzle's side of the protocol: checking a request published on `requestTopic` and building
//! the error response a malformed one gets (on `responseTopic`, to its sender only).

use switchyard_plugin_api::errors::KuzzleError;
pub use switchyard_plugin_api::errors::NETWORK_MQTT_UNEXPECTED_ERROR;
use switchyard_plugin_api::json;
use switchyard_plugin_kit::request::NotAnObject;

/// Why a request payload cannot go to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadRequest {
    /// Not UTF-8.
    NotUtf8,
    /// Not JSON; serde_json's message.
    InvalidJson(String),
    /// JSON, but not an object.
    NotAnObject,
}

impl BadRequest {
    /// The Kuzzle error sent back.
    pub fn error(&self) -> KuzzleError {
        let detail = match self {
            BadRequest::NotUtf8 => "a request must be UTF-8 JSON".to_string(),
            BadRequest::InvalidJson(why) => format!("invalid JSON: {why}"),
            BadRequest::NotAnObject => "a request must be a JSON object".to_string(),
        };
        NETWORK_MQTT_UNEXPECTED_ERROR.with(&[&detail])
    }
}

/// The payload as request text, if it is one UTF-8 JSON object.
pub fn check_request(payload: &[u8]) -> Result<&str, BadRequest> {
    let text = std::str::from_utf8(payload).map_err(|_| BadRequest::NotUtf8)?;
    match switchyard_plugin_kit::request::check_object(text) {
        Ok(()) => Ok(text),
        Err(NotAnObject::InvalidJson(why)) => Err(BadRequest::InvalidJson(why)),
        Err(NotAnObject::OtherJson) => Err(BadRequest::NotAnObject),
    }
}

pub use switchyard_plugin_kit::request::request_id_of;

/// Kuzzle's error response content (no `room`: on MQTT the topic says what it is).
pub fn error_response(request_id: Option<&str>, error: &KuzzleError) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("{\"requestId\":");
    match request_id {
        Some(id) => json::push_str(&mut out, id),
        None => out.push_str("null"),
    }
    out.push_str(",\"status\":");
    json::push_u64(&mut out, error.status().into());
    out.push_str(",\"error\":");
    error.write_json(&mut out);
    out.push_str(
        ",\"controller\":null,\"action\":null,\"collection\":null,\"index\":null,\"volatile\":null,\"result\":null}",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked() {
        assert_eq!(check_request(br#" {"a":1}"#), Ok(r#" {"a":1}"#));
        assert_eq!(check_request(b"[1]"), Err(BadRequest::NotAnObject));
        assert_eq!(check_request(b"\xff"), Err(BadRequest::NotUtf8));
        assert!(matches!(
            check_request(b"{"),
            Err(BadRequest::InvalidJson(_))
        ));
        assert_eq!(
            request_id_of(br#"{"requestId":"r1"}"#).as_deref(),
            Some("r1")
        );
        assert_eq!(request_id_of(br#"{"requestId":1}"#), None);
    }

    #[test]
    fn error_responses_have_kuzzles_shape() {
        let error = BadRequest::NotAnObject.error();
        let json: serde_json::Value =
            serde_json::from_str(&error_response(Some("r"), &error)).unwrap();
        assert_eq!(json["requestId"], "r");
        assert_eq!(json["status"], 400);
        assert_eq!(json["error"]["id"], "network.mqtt.unexpected_error");
        assert_eq!(json["error"]["code"], 50_462_721);
        assert_eq!(
            json["error"]["message"],
            "Caught an unexpected MQTT error: a request must be a JSON object"
        );
    }
}
