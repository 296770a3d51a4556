//! The `realtime` controller: `subscribe`, `join`, `unsubscribe`, `publish`, `count`, `list`.
//!
//! Order matters to clients: a subscriber's protocol hears `joinChannel` before the response is
//! sent, and a publish's notifications are handed to the protocols before its response.

use serde_json::{json, Value};
use switchyard_plugin_api::errors::{self, KuzzleError};

use super::{ActionResult, Context, Request};
use crate::realtime::{self, DocumentEvent, Scope, SubscribeRequest, Subscribed, Users};

fn subscribe_request<'a>(
    context: &Context<'_>,
    request: &'a Request<'_>,
    filter: &'a Value,
) -> Result<SubscribeRequest<'a>, KuzzleError> {
    let (index, collection) = request.index_and_collection()?;
    Ok(SubscribeRequest {
        connection: context.connection,
        index,
        collection,
        filter,
        scope: Scope::parse(request.args.get("scope"))?,
        users: Users::parse(request.args.get("users"))?,
        volatile: request.volatile.as_ref(),
    })
}

/// Tells the plugins about a new subscription and answers `{roomId, channel}`.
fn announce(context: &Context<'_>, subscribed: Subscribed) -> ActionResult {
    let entry = context.entry;
    if let Some(notification) = &subscribed.user_notification {
        entry.broadcast(notification);
    }
    if let Some(protocol) = entry.protocols().get(context.protocol) {
        protocol.join_channel(&subscribed.channel, context.connection);
    }
    Ok(json!({ "roomId": &*subscribed.room_id, "channel": &*subscribed.channel }).into())
}

/// `realtime:subscribe`.
pub fn subscribe(context: &Context<'_>, request: &mut Request<'_>) -> ActionResult {
    request.index_and_collection()?;
    let Some(filter) = &request.body else {
        return Err(errors::API_ASSERT_BODY_REQUIRED.error());
    };
    let subscription = subscribe_request(context, request, filter)?;
    let entry = context.entry;
    let subscribed =
        entry
            .realtime
            .subscribe(&subscription, context.protocol_name(), |connection| {
                entry.connection_protocol(connection).is_some()
            })?;
    announce(context, subscribed)
}

/// `realtime:join`: subscribe to an existing room by id.
pub fn join(context: &Context<'_>, request: &mut Request<'_>) -> ActionResult {
    let room_id = request.body_string("roomId")?.to_string();
    let entry = context.entry;
    let no_filter = Value::Null;
    let subscription = SubscribeRequest {
        connection: context.connection,
        index: "",
        collection: "",
        filter: &no_filter,
        scope: Scope::parse(request.args.get("scope"))?,
        users: Users::parse(request.args.get("users"))?,
        volatile: request.volatile.as_ref(),
    };
    let subscribed = entry.realtime.join(
        &room_id,
        &subscription,
        context.protocol_name(),
        |connection| entry.connection_protocol(connection).is_some(),
    )?;
    announce(context, subscribed)
}

/// `realtime:unsubscribe`.
pub fn unsubscribe(context: &Context<'_>, request: &mut Request<'_>) -> ActionResult {
    let room_id = request.body_string("roomId")?;
    let departure = context
        .entry
        .realtime
        .unsubscribe(context.connection, room_id)?;
    context
        .entry
        .complete_departure(context.connection, context.protocol, &departure);
    Ok(json!({ "roomId": room_id }).into())
}

/// `realtime:count`.
pub fn count(context: &Context<'_>, request: &mut Request<'_>) -> ActionResult {
    let room_id = request.body_string("roomId")?;
    Ok(json!({ "count": context.entry.realtime.count(room_id)? }).into())
}

/// `realtime:list`.
pub fn list(context: &Context<'_>, _request: &mut Request<'_>) -> ActionResult {
    Ok(context.entry.realtime.list().into())
}

/// `realtime:publish`: notifies matching subscribers; nothing is stored.
pub fn publish(context: &Context<'_>, request: &mut Request<'_>) -> ActionResult {
    request.index_and_collection()?;
    let Some(Value::Object(mut body)) = request.body.take() else {
        return Err(errors::API_ASSERT_BODY_REQUIRED.error());
    };
    let timestamp = realtime::now_ms();
    body.insert(
        "_kuzzle_info".to_string(),
        json!({ "author": "-1", "createdAt": timestamp }),
    );
    let id = request.string_arg("_id").map(str::to_string);
    let mut document = Value::Object(body);
    let source = document.to_string();
    if let (Some(id), Value::Object(fields)) = (&id, &mut document) {
        fields.insert("_id".to_string(), Value::String(id.clone()));
    }
    let (index, collection) = request.index_and_collection()?;
    let channels = context
        .entry
        .realtime
        .match_document(index, collection, &document);
    if !channels.is_empty() {
        let payload = realtime::document_notification(&DocumentEvent {
            action: "publish",
            scope: "in",
            id: id.as_deref(),
            source: &source,
            request_id: &request.request_id,
            volatile: request.volatile.as_ref(),
            index,
            collection,
            controller: "realtime",
            protocol: context.protocol_name(),
            timestamp,
        });
        context
            .entry
            .broadcast(&realtime::Broadcast { channels, payload });
    }
    Ok(json!({ "published": true }).into())
}
