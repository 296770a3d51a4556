//! Kuzzle requests as text, before they reach the host: the checks every protocol makes.

use serde::de::IgnoredAny;

/// Why a text is not one JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAnObject {
    /// Not JSON at all; serde_json's message.
    InvalidJson(String),
    /// JSON, but not an object.
    OtherJson,
}

/// Checks that `text` is one JSON object, without building it.
pub fn check_object(text: &str) -> Result<(), NotAnObject> {
    if let Err(error) = serde_json::from_str::<IgnoredAny>(text) {
        return Err(NotAnObject::InvalidJson(error.to_string()));
    }
    if text.trim_start().starts_with('{') {
        Ok(())
    } else {
        Err(NotAnObject::OtherJson)
    }
}

/// The request's `requestId` when `bytes` is a JSON object holding a string one.
pub fn request_id_of(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "requestId")]
        request_id: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes).ok()?;
    match probe.request_id? {
        serde_json::Value::String(id) => Some(id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_pass_and_request_ids_are_found() {
        assert_eq!(check_object(r#" {"a":1}"#), Ok(()));
        assert_eq!(check_object("[1]"), Err(NotAnObject::OtherJson));
        assert!(matches!(
            check_object("{"),
            Err(NotAnObject::InvalidJson(_))
        ));
        assert_eq!(
            request_id_of(br#"{"requestId":"r1"}"#).as_deref(),
            Some("r1")
        );
        assert_eq!(request_id_of(br#"{"requestId":1}"#), None);
        assert_eq!(request_id_of(b"nope"), None);
    }
}
