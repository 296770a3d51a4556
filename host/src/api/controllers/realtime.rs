//! The `realtime` controller: `subscribe`, `join`, `unsubscribe`, `publish`, `count`, `list`.
//!
//! Order matters to clients: a subscriber's protocol hears `joinChannel` before the response is
//! sent, and a publish's notifications are handed to the protocols before its response.

use serde_json::{json, Value};
use switchyard_plugin_api::errors::{self, KuzzleError};

use crate::api::action::{ActionResult, Args, Context, Controller, Run};
use crate::api::{Action, Request};
use crate::cluster::Contents;
use crate::realtime::{
    self, DocumentEvent, Scope, SubscribeRequest, Subscribed, UserEvent, Users,
};

/// The `realtime` controller.
pub static CONTROLLER: Controller = Controller {
    name: "realtime",
    actions: &[
        Action {
            name: "subscribe",
            http: &[],
            args: Args::INDEX_COLLECTION_BODY,
            // A filter heavy to normalize (many terms, large regexps) leaves the network thread.
            run: Run::Weighed(subscribe, heavy_filter),
        },
        Action {
            name: "join",
            http: &[],
            args: Args::BODY,
            run: Run::Inline(join),
        },
        Action {
            name: "unsubscribe",
            http: &[],
            args: Args::BODY,
            run: Run::Inline(unsubscribe),
        },
        Action {
            name: "count",
            http: &[],
            args: Args::BODY,
            run: Run::Inline(count),
        },
        Action {
            name: "list",
            http: &[("GET", "/_listSubscriptions")],
            args: Args::NONE,
            run: Run::Inline(list),
        },
        Action {
            name: "publish",
            http: &[("POST", "/:index/:collection/_publish")],
            args: Args::INDEX_COLLECTION_BODY,
            run: Run::Inline(publish),
        },
    ],
};

fn subscribe_request<'a>(
    context: &Context<'_>,
    request: &'a Request<'_>,
    filter: &'a Value,
) -> Result<SubscribeRequest<'a>, KuzzleError> {
    let (index, collection) = request.index_and_collection()?;
    Ok(SubscribeRequest {
        connection: context.caller.connection,
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
    let services = context.services;
    if let Some(notification) = &subscribed.user_notification {
        services.broadcast(notification);
    }
    services.join_channel(
        context.caller.protocol,
        &subscribed.channel,
        context.caller.connection,
    );
    services.share_user_change(
        subscribed.user_change.as_ref(),
        UserEvent::In,
        Some(context.protocol_name()),
    );
    services.rooms_changed();
    Ok(json!({ "roomId": &*subscribed.room_id, "channel": &*subscribed.channel }).into())
}

/// `realtime:subscribe`'s `Weigh`: its filter is heavy to normalize.
fn heavy_filter(request: &Request<'_>) -> bool {
    request.body.as_ref().is_some_and(realtime::is_heavy_filter)
}

/// `realtime:subscribe`.
fn subscribe(context: &Context<'_>, request: &mut Request<'_>) -> ActionResult {
    let Some(filter) = &request.body else {
        return Err(errors::API_ASSERT_BODY_REQUIRED.error());
    };
    let subscription = subscribe_request(context, request, filter)?;
    let services = context.services;
    let subscribed =
        services
            .realtime
            .subscribe(&subscription, context.protocol_name(), |connection| {
                services.connections.contains(connection)
            })?;
    announce(context, subscribed)
}

/// `realtime:join`: subscribe to an existing room by id.
fn join(context: &Context<'_>, request: &mut Request<'_>) -> ActionResult {
    let room_id = request.body_string("roomId")?.to_string();
    let services = context.services;
    let no_filter = Value::Null;
    let subscription = SubscribeRequest {
        connection: context.caller.connection,
        index: "",
        collection: "",
        filter: &no_filter,
        scope: Scope::parse(request.args.get("scope"))?,
        users: Users::parse(request.args.get("users"))?,
        volatile: request.volatile.as_ref(),
    };
    let joined = services.realtime.join(
        &room_id,
        &subscription,
        context.protocol_name(),
        |connection| services.connections.contains(connection),
    );
    let subscribed = match joined {
        Err(error) if error.spec.id == errors::CORE_REALTIME_ROOM_NOT_FOUND.id => {
            // Cluster mode: a room only other nodes hold is recreated here from its filter.
            match join_remote(context, &room_id, &subscription) {
                Some(subscribed) => subscribed?,
                None => return Err(error),
            }
        }
        joined => joined?,
    };
    announce(context, subscribed)
}

/// `realtime:join` on a room another live node holds (as of its last heartbeat): subscribes
/// with that room's index, collection and filter, which gives the same room id. `None` when no
/// node has the room (or in single-node mode).
fn join_remote(
    context: &Context<'_>,
    room_id: &str,
    joining: &SubscribeRequest<'_>,
) -> Option<Result<Subscribed, KuzzleError>> {
    let services = context.services;
    let room = services.cluster.as_ref()?.remote_room(room_id)?;
    let subscription = SubscribeRequest {
        index: &room.index,
        collection: &room.collection,
        filter: &room.filter,
        ..*joining
    };
    let subscribed = services
        .realtime
        .subscribe(&subscription, context.protocol_name(), |connection| {
            services.connections.contains(connection)
        });
    Some(match subscribed {
        Ok(subscribed) if &*subscribed.room_id != room_id => {
            // Not the same room after all (a node with other normalization rules): undo.
            let departure = services
                .realtime
                .unsubscribe(context.caller.connection, &subscribed.room_id);
            if let Ok(departure) = departure {
                services.complete_departure(
                    context.caller.connection,
                    context.caller.protocol,
                    &departure,
                );
            }
            Err(errors::CORE_REALTIME_ROOM_NOT_FOUND.with(&[room_id]))
        }
        subscribed => subscribed,
    })
}

/// `realtime:unsubscribe`.
fn unsubscribe(context: &Context<'_>, request: &mut Request<'_>) -> ActionResult {
    let room_id = request.body_string("roomId")?;
    let caller = context.caller;
    let services = context.services;
    let departure = services.realtime.unsubscribe(caller.connection, room_id)?;
    services.complete_departure(caller.connection, caller.protocol, &departure);
    Ok(json!({ "roomId": room_id }).into())
}

/// `realtime:count`.
fn count(context: &Context<'_>, request: &mut Request<'_>) -> ActionResult {
    let room_id = request.body_string("roomId")?;
    let local = context.services.realtime.count(room_id);
    if let Some(cluster) = &context.services.cluster {
        // The other nodes' subscribers too; a room only they have is known here.
        let remote = cluster.remote_count(room_id);
        let count = match (local, remote) {
            (Ok(local), remote) => local as u64 + remote.unwrap_or(0),
            (Err(_), Some(remote)) => remote,
            (Err(error), None) => return Err(error),
        };
        return Ok(json!({ "count": count }).into());
    }
    Ok(json!({ "count": local? }).into())
}

/// `realtime:list`: `{index: {collection: {roomId: subscribers}}}`, only the collections the
/// caller may `realtime:subscribe` to (Kuzzle's `hotelClerk.list`).
fn list(context: &Context<'_>, _request: &mut Request<'_>) -> ActionResult {
    let mut list = context.services.realtime.list();
    if let Some(cluster) = &context.services.cluster {
        cluster.merge_list(&mut list);
    }
    let rights = context
        .services
        .security
        .rights_of(context.caller.identity.user_id())?;
    if let Value::Object(indexes) = &mut list {
        for (index, collections) in indexes.iter_mut() {
            if let Value::Object(collections) = collections {
                collections.retain(|collection, _| {
                    rights.is_allowed(
                        &switchyard_security::RightsRequest::new("realtime", "subscribe")
                            .on(index, collection),
                    )
                });
            }
        }
        indexes.retain(|_, collections| collections.as_object().is_some_and(|c| !c.is_empty()));
    }
    Ok(list.into())
}

/// `realtime:publish`: notifies matching subscribers; nothing is stored.
fn publish(context: &Context<'_>, request: &mut Request<'_>) -> ActionResult {
    let Some(Value::Object(mut body)) = request.body.take() else {
        return Err(errors::API_ASSERT_BODY_REQUIRED.error());
    };
    let (index, collection) = request.index_and_collection()?;
    // As Kuzzle: the message is checked against its collection's specifications (the first
    // problem refuses it) and gets their default values.
    if let Some(specification) = context.services.specifications.get(index, collection) {
        if let Some((field, message)) =
            specification.first_problem(request.string_arg("_id"), &body)
        {
            return Err(match field {
                Some(field) => errors::VALIDATION_CHECK_FAILED_FIELD.with(&[&field, &message]),
                None => errors::VALIDATION_CHECK_FAILED_DOCUMENT.with(&[&message]),
            });
        }
        specification.apply_defaults(&mut body, false);
    }
    let timestamp = realtime::now_ms();
    body.insert(
        "_kuzzle_info".to_string(),
        json!({ "author": context.caller.identity.user_id(), "createdAt": timestamp }),
    );
    let id = request.string_arg("_id").map(str::to_string);
    let mut document = Value::Object(body);
    let source = document.to_string();
    if let (Some(id), Value::Object(fields)) = (&id, &mut document) {
        fields.insert("_id".to_string(), Value::String(id.clone()));
    }
    let (index, collection) = request.index_and_collection()?;
    let services = context.services;
    let channels = services
        .realtime
        .match_document(index, collection, &document);
    let event = DocumentEvent {
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
        extra: None,
    };
    services.notify(&event, channels, Vec::new(), || Contents {
        now: Some(document),
        before: None,
    });
    Ok(json!({ "published": true }).into())
}

#[cfg(test)]
mod tests {
    use crate::api::testing::Harness;

    const SUBSCRIBE: &str = r#"{"controller":"realtime","action":"subscribe","index":"i","collection":"c","body":{"equals":{"k":1}}}"#;

    #[test]
    fn subscribe_count_unsubscribe() {
        let harness = Harness::new();
        let subscribed = harness.call(SUBSCRIBE);
        assert_eq!(subscribed["status"], 200, "{subscribed}");
        let room = subscribed["result"]["roomId"].as_str().expect("a room id");
        let channel = subscribed["result"]["channel"].as_str().expect("a channel");
        assert!(channel.starts_with(room), "{channel} of {room}");

        let counted = harness.call(&format!(
            r#"{{"controller":"realtime","action":"count","body":{{"roomId":"{room}"}}}}"#
        ));
        assert_eq!(counted["result"]["count"], 1, "{counted}");

        let left = harness.call(&format!(
            r#"{{"controller":"realtime","action":"unsubscribe","body":{{"roomId":"{room}"}}}}"#
        ));
        assert_eq!(left["result"]["roomId"], room, "{left}");
        let counted = harness.call(&format!(
            r#"{{"controller":"realtime","action":"count","body":{{"roomId":"{room}"}}}}"#
        ));
        assert_eq!(counted["status"], 404, "{counted}");
        assert_eq!(counted["error"]["id"], "core.realtime.room_not_found");
    }

    /// Issue 19: a filter heavy to normalize leaves the network thread (it goes to the
    /// blocking pool, still answered the same); a light one runs where it arrived.
    #[test]
    fn heavy_filters_are_normalized_off_the_network_thread() {
        use crate::api::dispatch::{dispatch, Dispatched};
        use serde_json::json;
        let harness = Harness::new();
        let four = |field: &str| {
            json!({"or": (0..4).map(|v| json!({"equals": {field: v}})).collect::<Vec<_>>()})
        };
        let subscribe = |filter: serde_json::Value| {
            json!({"controller": "realtime", "action": "subscribe", "index": "i",
                   "collection": "c", "body": filter})
            .to_string()
        };
        let alternatives: Vec<String> = (0..100).map(|n| format!("word{n}")).collect();
        let cases = [
            // 64 terms: within the budget.
            (json!({"and": [four("a"), four("b"), four("c")]}), false),
            // 256 terms.
            (json!({"and": [four("a"), four("b"), four("c"), four("d")]}), true),
            (json!({"regexp": {"t": "^a|b$"}}), false),
            (json!({"regexp": {"t": alternatives.join("|")}}), true),
        ];
        for (filter, heavy) in cases {
            let request = subscribe(filter.clone());
            let dispatched = dispatch(
                &harness.services,
                &harness.router,
                harness.connection,
                &request,
            );
            match dispatched {
                Dispatched::Answered(answer) => {
                    assert!(!heavy, "{filter} ran inline");
                    assert!(answer.content.contains("\"status\":200"), "{}", answer.content);
                }
                Dispatched::Blocking(owned) => {
                    assert!(heavy, "{filter} left the thread");
                    assert!(owned.is_blocking());
                    // The blocking pool answers it as the plugin's thread would have.
                    assert_eq!(harness.call(&request)["status"], 200, "{filter}");
                }
                Dispatched::Paced(_) => unreachable!("subscribe does not fan out"),
            }
        }
    }

    #[test]
    fn subscribe_needs_an_index_and_a_collection() {
        let harness = Harness::new();
        let answer = harness.call(
            r#"{"controller":"realtime","action":"subscribe","collection":"c","body":{}}"#,
        );
        assert_eq!(answer["status"], 400);
        assert_eq!(answer["error"]["id"], "api.assert.missing_argument");
        assert_eq!(answer["error"]["message"], "Missing argument \"index\".");
    }

    /// Kuzzle's `hotelClerk.list`: only the collections the caller may subscribe to.
    #[test]
    fn list_shows_only_what_the_caller_may_subscribe_to() {
        use serde_json::json;
        let harness = Harness::new();
        let call = |request: serde_json::Value| harness.call(&request.to_string());
        for (index, collection) in [("shop", "orders"), ("shop", "stock"), ("blog", "posts")] {
            let subscribed = call(json!({"controller": "realtime", "action": "subscribe",
                                         "index": index, "collection": collection, "body": {}}));
            assert_eq!(subscribed["status"], 200, "{subscribed}");
        }
        let role = call(json!({"controller": "security", "action": "createRole", "_id": "rt",
                               "body": {"controllers": {"realtime": {"actions": {"*": true}}}}}));
        assert_eq!(role["status"], 200, "{role}");
        let profile = call(json!({"controller": "security", "action": "createProfile", "_id": "rt",
            "body": {"policies": [{"roleId": "rt",
                                    "restrictedTo": [{"index": "shop", "collections": ["orders"]}]}]}}));
        assert_eq!(profile["status"], 200, "{profile}");
        let user = call(json!({"controller": "security", "action": "createUser", "_id": "u",
            "body": {"content": {"profileIds": ["rt"]},
                     "credentials": {"local": {"username": "u", "password": "p"}}}}));
        assert_eq!(user["status"], 200, "{user}");
        let login = call(json!({"controller": "auth", "action": "login", "strategy": "local",
                                "body": {"username": "u", "password": "p"}}));
        let jwt = login["result"]["jwt"].as_str().expect("a jwt").to_owned();

        let listed = call(json!({"controller": "realtime", "action": "list", "jwt": jwt}));
        let orders = listed["result"]["shop"]["orders"].as_object().expect("shop/orders");
        assert_eq!(orders.len(), 1);
        assert_eq!(listed["result"].as_object().unwrap().len(), 1, "{listed}");
        assert_eq!(listed["result"]["shop"].as_object().unwrap().len(), 1, "{listed}");
        let everything = call(json!({"controller": "realtime", "action": "list"}));
        assert_eq!(everything["result"]["shop"].as_object().unwrap().len(), 2);
        assert_eq!(everything["result"]["blog"]["posts"].as_object().unwrap().len(), 1);
    }
}
