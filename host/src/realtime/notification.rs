//! Kuzzle's notification payloads, serialized once per notification.

use serde_json::Value;
use switchyard_plugin_api::json;

/// A user notification's direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserEvent {
    /// Someone subscribed.
    In,
    /// Someone left.
    Out,
}

/// The node name in notifications (Kuzzle's node id).
pub const NODE: &str = "switchyard";

fn push_value(out: &mut String, value: Option<&Value>) {
    match value {
        Some(value) => out.push_str(&value.to_string()),
        None => out.push_str("null"),
    }
}

/// `{type:"user", status, user, result:{count}, node, timestamp, volatile, index, collection,
/// controller:"realtime", action, protocol}`; `protocol` is absent when unknown (a departure).
pub fn user_notification(
    event: UserEvent,
    count: usize,
    index: &str,
    collection: &str,
    volatile: Option<&Value>,
    protocol: Option<&str>,
    action: &str,
) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("{\"type\":\"user\",\"status\":200,\"user\":");
    out.push_str(match event {
        UserEvent::In => "\"in\"",
        UserEvent::Out => "\"out\"",
    });
    out.push_str(",\"result\":{\"count\":");
    json::push_u64(&mut out, count as u64);
    out.push_str("},\"node\":");
    json::push_str(&mut out, NODE);
    out.push_str(",\"timestamp\":");
    json::push_u64(&mut out, now_ms());
    out.push_str(",\"volatile\":");
    push_value(&mut out, volatile);
    out.push_str(",\"index\":");
    json::push_str(&mut out, index);
    out.push_str(",\"collection\":");
    json::push_str(&mut out, collection);
    out.push_str(",\"controller\":\"realtime\",\"action\":");
    json::push_str(&mut out, action);
    if let Some(protocol) = protocol {
        out.push_str(",\"protocol\":");
        json::push_str(&mut out, protocol);
    }
    out.push('}');
    out
}

/// What a document notification describes.
#[derive(Debug, Clone, Copy)]
pub struct DocumentEvent<'a> {
    /// `publish`, `create`…
    pub action: &'a str,
    /// `in` or `out`.
    pub scope: &'a str,
    /// The document's id, when it has one.
    pub id: Option<&'a str>,
    /// The document (`_source`), already serialized.
    pub source: &'a str,
    /// The originating request's id.
    pub request_id: &'a str,
    /// The originating request's `volatile`.
    pub volatile: Option<&'a Value>,
    /// `index`.
    pub index: &'a str,
    /// `collection`.
    pub collection: &'a str,
    /// The originating request's controller.
    pub controller: &'a str,
    /// The originating connection's protocol.
    pub protocol: &'a str,
    /// The originating request's time.
    pub timestamp: u64,
    /// More members of `result`, serialized, without braces (`"_version":2,"created":true`),
    /// written after `_source`.
    pub extra: Option<&'a str>,
}

/// `{type:"document", status, action, scope, result:{_id?, _source}, node, event, requestId,
/// timestamp, volatile, index, collection, controller, protocol}`.
pub fn document_notification(event: &DocumentEvent<'_>) -> String {
    let mut out = String::with_capacity(320 + event.source.len());
    out.push_str("{\"type\":\"document\",\"status\":200,\"action\":");
    json::push_str(&mut out, event.action);
    out.push_str(",\"scope\":");
    json::push_str(&mut out, event.scope);
    out.push_str(",\"result\":{");
    if let Some(id) = event.id {
        out.push_str("\"_id\":");
        json::push_str(&mut out, id);
        out.push(',');
    }
    out.push_str("\"_source\":");
    out.push_str(event.source);
    if let Some(extra) = event.extra.filter(|extra| !extra.is_empty()) {
        out.push(',');
        out.push_str(extra);
    }
    out.push_str("},\"node\":");
    json::push_str(&mut out, NODE);
    out.push_str(",\"event\":");
    json::push_str(
        &mut out,
        match event.action {
            "publish" => "publish",
            "delete" | "mDelete" | "deleteByQuery" => "delete",
            _ => "write",
        },
    );
    out.push_str(",\"requestId\":");
    json::push_str(&mut out, event.request_id);
    out.push_str(",\"timestamp\":");
    json::push_u64(&mut out, event.timestamp);
    out.push_str(",\"volatile\":");
    push_value(&mut out, event.volatile);
    out.push_str(",\"index\":");
    json::push_str(&mut out, event.index);
    out.push_str(",\"collection\":");
    json::push_str(&mut out, event.collection);
    out.push_str(",\"controller\":");
    json::push_str(&mut out, event.controller);
    out.push_str(",\"protocol\":");
    json::push_str(&mut out, event.protocol);
    out.push('}');
    out
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payloads_are_valid_json_with_kuzzles_fields() {
        let volatile = json!({"sdkInstanceId": "x"});
        let text = document_notification(&DocumentEvent {
            action: "publish",
            scope: "in",
            id: None,
            source: r#"{"a":1}"#,
            request_id: "r",
            volatile: Some(&volatile),
            index: "i",
            collection: "c",
            controller: "realtime",
            protocol: "websocket",
            timestamp: 5,
            extra: None,
        });
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["result"], json!({"_source": {"a": 1}}));
        assert_eq!(value["event"], "publish");
        assert_eq!(value["volatile"], volatile);
        let text = user_notification(UserEvent::Out, 3, "i", "c", None, None, "unsubscribe");
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["user"], "out");
        assert_eq!(value["result"], json!({"count": 3}));
        assert!(value.get("protocol").is_none());
    }
}
