//! Document notifications (Kuzzle's notifier): every acknowledged write tells the rooms whose
//! filter matches the document's new content (scope `in`) and the rooms it matched at its last
//! write but no longer does (scope `out`); a delete tells the rooms matching the deleted content
//! (`out`). Same rooms, channels and broadcast path as `realtime:publish`.
//!
//! "What it matched at its last write" is durable: before a write, [`Rooms::matching`] tests the
//! new content and the room ids go into the document's `meta` bytes, written in the same batch;
//! the next write gets them back with the previous document ([`Rooms::decode`]). Unlike
//! Kuzzle's cache, they never expire, and a silent write still records them (it sends nothing).

use std::sync::Arc;

use serde_json::Value;
use switchyard_storage::{Document, KuzzleInfo};

use super::action::Context;
use super::Request;
use crate::cluster::Contents;
use crate::realtime::{self, DocumentEvent, Scope};

/// Room ids a document matches, in the engine's order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Rooms(pub Vec<Arc<str>>);

impl Rooms {
    /// The rooms the document `{_id, ..source, _kuzzle_info}` matches now. Nothing is built when
    /// there is no room at all.
    pub fn matching(
        context: &Context<'_>,
        index: &str,
        collection: &str,
        id: &str,
        source: &Value,
        info: &KuzzleInfo,
    ) -> Rooms {
        let realtime = &context.services.realtime;
        if realtime.room_count() == 0 {
            return Rooms::default();
        }
        let mut document = source.clone();
        if let Value::Object(fields) = &mut document {
            fields.insert("_kuzzle_info".to_string(), info.to_json());
            fields.insert("_id".to_string(), Value::String(id.to_string()));
        }
        Rooms(realtime.match_rooms(index, collection, &document))
    }

    /// The rooms a stored document matches now (for deletes).
    pub fn of_document(
        context: &Context<'_>,
        index: &str,
        collection: &str,
        document: &Document,
    ) -> Rooms {
        Rooms::matching(
            context,
            index,
            collection,
            &document.id,
            &document.source,
            &document.info,
        )
    }

    /// What goes into `meta`: the room ids, one per line (room ids have no newline).
    pub fn encode(&self) -> Vec<u8> {
        self.0.join("\n").into_bytes()
    }

    /// The room ids kept in a document's `meta`.
    pub fn decode(meta: &[u8]) -> Vec<&str> {
        std::str::from_utf8(meta)
            .map(|text| text.split('\n').filter(|id| !id.is_empty()).collect())
            .unwrap_or_default()
    }
}

/// One document's change, to notify.
#[derive(Debug)]
pub struct Change<'a> {
    /// The document's id.
    pub id: &'a str,
    /// Kuzzle's normalized action: `create`, `replace`, `update` or `delete`.
    pub action: &'static str,
    /// `result._source`, serialized.
    pub source: String,
    /// More members of `result` (`"_version":1`), serialized, or empty.
    pub extra: String,
    /// Writes: the rooms matching the new content. Deletes: the rooms matching the deleted one.
    pub matching: &'a Rooms,
    /// Writes: the rooms the document matched before (from its previous `meta`).
    pub before: Vec<&'a str>,
    /// Writes: the new content as notified (other nodes match it against their rooms).
    pub content: Option<&'a Value>,
    /// The document before the write, or the deleted one (other nodes match it too).
    pub previous: Option<&'a Document>,
}

/// `document` with `_id`, as rooms match it.
fn with_id(document: &Value, id: &str) -> Value {
    let mut document = document.clone();
    if let Value::Object(fields) = &mut document {
        fields.insert("_id".to_string(), Value::String(id.to_string()));
    }
    document
}

/// Sends one change's notifications: `in` to every matching room's `all`/`in` channels and,
/// for a write, `out` to the rooms matched before and not now; a delete sends `out` to the
/// rooms matching the deleted content.
pub fn notify(
    context: &Context<'_>,
    request: &Request<'_>,
    index: &str,
    collection: &str,
    change: &Change<'_>,
) {
    let services = context.services;
    let realtime = &services.realtime;
    let event = DocumentEvent {
        action: change.action,
        scope: "in",
        id: Some(change.id),
        source: &change.source,
        request_id: &request.request_id,
        volatile: request.volatile.as_ref(),
        index,
        collection,
        controller: "document",
        protocol: context.protocol_name(),
        timestamp: realtime::now_ms(),
        extra: Some(&change.extra),
    };
    // What other nodes match against their own rooms (built only in cluster mode).
    let contents = || Contents {
        now: change.content.map(|content| with_id(content, change.id)),
        before: change
            .previous
            .map(|previous| with_id(&previous.source_with_info(), &previous.id)),
    };
    let now: Vec<&str> = change.matching.0.iter().map(|room| &**room).collect();
    if change.action == "delete" {
        let out = realtime.channels_of(now, Scope::Out);
        services.notify(&event, Vec::new(), out, contents);
        return;
    }
    let left: Vec<&str> = change
        .before
        .iter()
        .copied()
        .filter(|room| !now.contains(room))
        .collect();
    let into = realtime.channels_of(now, Scope::In);
    let out = realtime.channels_of(left, Scope::Out);
    services.notify(&event, into, out, contents);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_round_trip_through_meta() {
        let rooms = Rooms(vec![Arc::from("a1"), Arc::from("b2")]);
        assert_eq!(Rooms::decode(&rooms.encode()), vec!["a1", "b2"]);
        assert!(Rooms::decode(b"").is_empty());
        assert!(Rooms::decode(&[0xff]).is_empty());
    }
}
