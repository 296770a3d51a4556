//! The realtime engine: rooms, channels, subscriptions (Kuzzle's hotel clerk) and notifications.
//!
//! A *room* is one (index, collection, normalized filter): its id is the filter engine's
//! deterministic id, so equivalent filters share a room, on every run. A *channel* is a room plus
//! notification options (`scope`, `users`): `<roomId>-<users><cluster><scope>`, Kuzzle's digits.
//! Protocols deliver by channel; the host decides which channels a notification goes to.
//!
//! Locking: one `RwLock` over the whole state. Publishing takes it for reading; subscriptions
//! take it for writing. Hooks are never called while it is held: the state changes, the lock is
//! released, then the caller tells the plugins (`Subscribed`, `Departure`, `Broadcast`).
//! No write lock is held for work proportional to one client's state: a departing connection
//! leaves its rooms in slices of `DEPARTURE_SLICE`, the lock released between slices.
//!
//! This module knows nothing of plugins or of the entry point: it imports only the connection
//! map types (`connections.rs`) and the filter engine.

mod notification;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use parking_lot::RwLock;
use serde_json::Value;
use switchyard_filters::{Engine, EngineConfig, FilterErrorKind, NormalizedFilter};
use switchyard_plugin_api::errors::{self, KuzzleError};
use switchyard_plugin_api::ConnectionId;

use crate::config::Limits;
use crate::connections::ConnectionMap;

pub use notification::{
    document_notification, now_ms, user_notification, DocumentEvent, UserEvent,
};

/// `scope`: which document notifications a channel receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Documents entering and leaving the filter.
    All,
    /// Documents entering or staying in it.
    In,
    /// Documents leaving it.
    Out,
    /// None.
    None,
}

/// `users`: which user (join/leave) notifications a channel receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Users {
    /// Joins and leaves.
    All,
    /// Joins.
    In,
    /// Leaves.
    Out,
    /// None (the default).
    None,
}

impl Scope {
    /// Parses Kuzzle's `scope` argument (absent: `all`).
    pub fn parse(value: Option<&Value>) -> Result<Scope, KuzzleError> {
        match value.map(|value| value.as_str()) {
            None => Ok(Scope::All),
            Some(Some("all")) => Ok(Scope::All),
            Some(Some("in")) => Ok(Scope::In),
            Some(Some("out")) => Ok(Scope::Out),
            Some(Some("none")) => Ok(Scope::None),
            Some(_) => Err(errors::CORE_REALTIME_INVALID_SCOPE.error()),
        }
    }

    fn digit(self) -> &'static str {
        match self {
            Scope::All => "1",
            Scope::In => "2",
            Scope::Out => "3",
            Scope::None => "",
        }
    }
}

impl Users {
    /// Parses Kuzzle's `users` argument (absent: `none`).
    pub fn parse(value: Option<&Value>) -> Result<Users, KuzzleError> {
        match value.map(|value| value.as_str()) {
            None => Ok(Users::None),
            Some(Some("all")) => Ok(Users::All),
            Some(Some("in")) => Ok(Users::In),
            Some(Some("out")) => Ok(Users::Out),
            Some(Some("none")) => Ok(Users::None),
            Some(_) => Err(errors::CORE_REALTIME_INVALID_USERS.error()),
        }
    }

    /// Kuzzle's digit: `out` and `none` share `3` (a Kuzzle quirk kept for compatible ids).
    fn digit(self) -> &'static str {
        match self {
            Users::All => "1",
            Users::In => "2",
            Users::Out | Users::None => "3",
        }
    }

    fn wants(self, event: UserEvent) -> bool {
        matches!(
            (self, event),
            (Users::All, _) | (Users::In, UserEvent::In) | (Users::Out, UserEvent::Out)
        )
    }
}

/// The channel name for a room and options. `cluster` is always on for API clients.
pub fn channel_name(room_id: &str, scope: Scope, users: Users) -> String {
    format!("{room_id}-{}1{}", users.digit(), scope.digit())
}

#[derive(Debug)]
struct Channel {
    name: Arc<str>,
    scope: Scope,
    users: Users,
}

#[derive(Debug)]
struct Subscriber {
    /// The volatile data given at subscribe time, echoed in user notifications.
    volatile: Option<Value>,
}

#[derive(Debug)]
struct Room {
    index: String,
    collection: String,
    /// The filter as the first subscriber wrote it (the admin page shows it); stored once per
    /// room, never read on a notification's path.
    filter: Arc<Value>,
    /// Channels by creation order; few per room.
    channels: Vec<Channel>,
    subscribers: ConnectionMap<Subscriber>,
}

#[derive(Debug)]
struct State {
    engine: Engine,
    rooms: HashMap<Arc<str>, Room>,
    /// The rooms each connection is in (a set: joining and leaving are O(1), whatever the
    /// number of rooms one connection holds).
    connection_rooms: ConnectionMap<HashSet<Arc<str>>>,
    /// Rooms per `(index, collection)`: the collections with rooms, without a walk over the
    /// rooms (cluster mode asks after every subscription).
    collection_rooms: HashMap<(String, String), usize>,
    /// Cluster mode: arrivals and departures carry a [`UserChange`].
    shared: bool,
}

/// What a subscription asks for.
#[derive(Debug)]
pub struct SubscribeRequest<'a> {
    /// The subscribing connection.
    pub connection: ConnectionId,
    /// `index`.
    pub index: &'a str,
    /// `collection`.
    pub collection: &'a str,
    /// The Koncorde filter (`body`).
    pub filter: &'a Value,
    /// `scope`.
    pub scope: Scope,
    /// `users`.
    pub users: Users,
    /// `volatile`.
    pub volatile: Option<&'a Value>,
}

/// The outcome of a subscription: ids for the client, and what to tell the plugins.
#[derive(Debug)]
pub struct Subscribed {
    /// The room's id.
    pub room_id: Arc<str>,
    /// The connection's channel in it.
    pub channel: Arc<str>,
    /// A user "in" notification to broadcast, when the connection is new in the room.
    pub user_notification: Option<Broadcast>,
    /// Shared realtime only ([`Realtime::share`]): the arrival, for the other nodes' members.
    pub user_change: Option<UserChange>,
}

/// Shared realtime (cluster mode): someone arrived in or left a room, for the other nodes to
/// tell their own members of it.
#[derive(Debug, Clone)]
pub struct UserChange {
    /// The room.
    pub room_id: Arc<str>,
    /// Its index.
    pub index: String,
    /// Its collection.
    pub collection: String,
    /// The subscriber's `volatile`.
    pub volatile: Option<Value>,
}

/// A notification to hand to every protocol's `broadcast`.
#[derive(Debug)]
pub struct Broadcast {
    /// The channels it goes to.
    pub channels: Vec<Arc<str>>,
    /// What the members receive.
    pub payload: String,
}

/// One room's subscribers, for the other nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomCount {
    /// The room's id.
    pub room_id: Arc<str>,
    /// Its index.
    pub index: String,
    /// Its collection.
    pub collection: String,
    /// Its subscribers on this node.
    pub count: usize,
    /// The filter as its first subscriber wrote it: another node recreates the room from it
    /// when one of its clients joins the room by id (`realtime:join`, cluster mode).
    pub filter: Arc<Value>,
}

/// A room as the admin page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomSummary {
    /// The room's id.
    pub room_id: Arc<str>,
    /// Its index.
    pub index: String,
    /// Its collection.
    pub collection: String,
    /// The filter as its first subscriber wrote it.
    pub filter: Arc<Value>,
    /// Its subscribers on this node.
    pub subscribers: usize,
}

/// One channel a connection leaves.
#[derive(Debug)]
pub struct Departure {
    /// The room left.
    pub room_id: Arc<str>,
    /// Every channel of that room (Kuzzle calls `leaveChannel` for each, joined or not).
    pub channels: Vec<Arc<str>>,
    /// The user "out" notification, if the room still has subscribers to tell.
    pub user_notification: Option<Broadcast>,
    /// Shared realtime only ([`Realtime::share`]): the departure, for the other nodes' members.
    pub user_change: Option<UserChange>,
}

/// Rooms a departing connection leaves per write-lock acquisition.
const DEPARTURE_SLICE: usize = 256;

/// A filter whose normal form may have more terms than this is normalized on the blocking pool,
/// not on the protocol's network thread (issue 19): 64 terms normalize in about 0.2 ms
/// (`cargo bench -p switchyard-filters --bench normalize`, BENCHMARKS.md).
pub const INLINE_FILTER_TERMS: u64 = 64;
/// The same for the bytes of its regexps: 256 bytes of alternatives compile in about 0.1 ms.
pub const INLINE_FILTER_REGEXP_BYTES: usize = 256;

/// True when normalizing `filter` may cost more than a network thread should spend on one
/// request (`INLINE_FILTER_TERMS`, `INLINE_FILTER_REGEXP_BYTES`); cheap: one walk of the JSON.
pub fn is_heavy_filter(filter: &Value) -> bool {
    switchyard_filters::weigh(filter).exceeds(INLINE_FILTER_TERMS, INLINE_FILTER_REGEXP_BYTES)
}

/// The realtime engine.
#[derive(Debug)]
pub struct Realtime {
    state: RwLock<State>,
    /// Normalizes filters with the configured limits, before the lock is taken.
    filters: EngineConfig,
    limits: Limits,
}

impl Default for Realtime {
    fn default() -> Self {
        Realtime::new(Limits::default())
    }
}

impl Realtime {
    /// An engine with no rooms.
    pub fn new(limits: Limits) -> Self {
        let filters = EngineConfig::new(
            limits.subscription_conditions_count,
            limits.subscription_minterms,
            limits.regexp_size_limit,
        );
        Realtime {
            state: RwLock::new(State {
                engine: Engine::new(filters.clone()),
                rooms: HashMap::new(),
                collection_rooms: HashMap::new(),
                shared: false,
                connection_rooms: ConnectionMap::default(),
            }),
            filters,
            limits,
        }
    }

    /// Checks and normalizes a filter, with no lock held: its cost is bounded by the limits
    /// but paid by the caller alone.
    fn normalize(&self, request: &SubscribeRequest<'_>) -> Result<NormalizedFilter, KuzzleError> {
        let koncorde_index = format!("{}/{}", request.index, request.collection);
        self.filters
            .normalize(&koncorde_index, request.filter)
            .map_err(|error| match (error.kind(), error.terms()) {
                (FilterErrorKind::TooManyTerms, Some((max, received))) => {
                    errors::CORE_REALTIME_TOO_MANY_TERMS
                        .with(&[&max.to_string(), &received.to_string()])
                }
                _ => errors::API_ASSERT_KONCORDE_DSL_ERROR.with(&[error.message()]),
            })
    }

    /// Refuses a connection at its subscription cap, unless it is in `room_id` already.
    fn check_connection_cap(
        &self,
        state: &State,
        connection: ConnectionId,
        room_id: &str,
    ) -> Result<(), KuzzleError> {
        let cap = self.limits.subscriptions_per_connection;
        match state.connection_rooms.get(&connection) {
            Some(rooms) if cap > 0 && rooms.len() >= cap && !rooms.contains(room_id) => {
                Err(errors::CORE_REALTIME_TOO_MANY_SUBSCRIPTIONS.with(&[&cap.to_string()]))
            }
            _ => Ok(()),
        }
    }

    /// Subscribes a connection, creating the room if needed. `alive` is checked under the lock,
    /// so a connection removed concurrently never leaves a subscription behind.
    pub fn subscribe(
        &self,
        request: &SubscribeRequest<'_>,
        protocol_name: &str,
        alive: impl Fn(ConnectionId) -> bool,
    ) -> Result<Subscribed, KuzzleError> {
        let normalized = self.normalize(request)?;
        let room_id: Arc<str> = Arc::from(normalized.id());
        let mut state = self.state.write();
        if !alive(request.connection) {
            return Err(errors::API_PROCESS_CONNECTION_DROPPED.error());
        }
        self.check_connection_cap(&state, request.connection, &room_id)?;
        if !state.rooms.contains_key(&room_id) {
            if state.rooms.len() >= self.limits.subscription_rooms {
                return Err(errors::CORE_REALTIME_TOO_MANY_ROOMS.error());
            }
            state.engine.store(normalized);
            *state
                .collection_rooms
                .entry((request.index.to_string(), request.collection.to_string()))
                .or_insert(0) += 1;
            state.rooms.insert(
                Arc::clone(&room_id),
                Room {
                    index: request.index.to_string(),
                    collection: request.collection.to_string(),
                    filter: Arc::new(request.filter.clone()),
                    channels: Vec::new(),
                    subscribers: ConnectionMap::default(),
                },
            );
        }
        Ok(join_room(&mut state, &room_id, request, protocol_name))
    }

    /// `realtime:join`: subscribes to an existing room by id.
    pub fn join(
        &self,
        room_id: &str,
        request: &SubscribeRequest<'_>,
        protocol_name: &str,
        alive: impl Fn(ConnectionId) -> bool,
    ) -> Result<Subscribed, KuzzleError> {
        let mut state = self.state.write();
        let Some((room_id, _)) = state.rooms.get_key_value(room_id) else {
            return Err(errors::CORE_REALTIME_ROOM_NOT_FOUND.with(&[room_id]));
        };
        let room_id = Arc::clone(room_id);
        if !alive(request.connection) {
            return Err(errors::API_PROCESS_CONNECTION_DROPPED.error());
        }
        self.check_connection_cap(&state, request.connection, &room_id)?;
        Ok(join_room(&mut state, &room_id, request, protocol_name))
    }

    /// `realtime:unsubscribe`: the connection leaves a room.
    pub fn unsubscribe(
        &self,
        connection: ConnectionId,
        room_id: &str,
    ) -> Result<Departure, KuzzleError> {
        let mut state = self.state.write();
        let in_room = state
            .connection_rooms
            .get(&connection)
            .is_some_and(|rooms| rooms.contains(room_id));
        if !in_room {
            return Err(
                errors::CORE_REALTIME_NOT_SUBSCRIBED.with(&[&connection.to_string(), room_id])
            );
        }
        leave_room(&mut state, connection, room_id, true)
            .ok_or_else(|| errors::CORE_REALTIME_ROOM_NOT_FOUND.with(&[room_id]))
    }

    /// A connection went away: it leaves every room. `on_departure` runs for each room left,
    /// outside the lock (it tells the plugins). The rooms are left in slices, so a connection
    /// with 100,000 subscriptions holds the write lock for one slice at a time, never for all.
    pub fn remove_connection(
        &self,
        connection: ConnectionId,
        mut on_departure: impl FnMut(Departure),
    ) {
        // Most connections never subscribe (every HTTP request is one): check under the read
        // lock before taking the write lock that would stall every publish.
        if !self.state.read().connection_rooms.contains_key(&connection) {
            return;
        }
        let Some(rooms) = self.state.write().connection_rooms.remove(&connection) else {
            return;
        };
        let rooms: Vec<Arc<str>> = rooms.into_iter().collect();
        let mut departures = Vec::with_capacity(DEPARTURE_SLICE.min(rooms.len()));
        for slice in rooms.chunks(DEPARTURE_SLICE) {
            {
                let mut state = self.state.write();
                departures.extend(
                    slice
                        .iter()
                        .filter_map(|room_id| leave_room(&mut state, connection, room_id, true)),
                );
            }
            departures.drain(..).for_each(&mut on_departure);
        }
    }

    /// `realtime:count`: connections in a room.
    pub fn count(&self, room_id: &str) -> Result<usize, KuzzleError> {
        self.state
            .read()
            .rooms
            .get(room_id)
            .map(|room| room.subscribers.len())
            .ok_or_else(|| errors::CORE_REALTIME_ROOM_NOT_FOUND.with(&[room_id]))
    }

    /// `realtime:list`: `{index: {collection: {roomId: count}}}`.
    pub fn list(&self) -> Value {
        let state = self.state.read();
        let mut list = serde_json::Map::new();
        for (room_id, room) in &state.rooms {
            let index = list
                .entry(room.index.clone())
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
            let collection = index
                .as_object_mut()
                .expect("an object")
                .entry(room.collection.clone())
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
            collection[&**room_id] = Value::from(room.subscribers.len());
        }
        Value::Object(list)
    }

    /// The channels a published document reaches (rooms whose filter matches, channels whose
    /// scope takes "in" notifications). `document` must already carry `_id` when there is one.
    pub fn match_document(&self, index: &str, collection: &str, document: &Value) -> Vec<Arc<str>> {
        let koncorde_index = format!("{index}/{collection}");
        let state = self.state.read();
        let mut channels = Vec::new();
        for room_id in state.engine.test(&koncorde_index, document) {
            if let Some(room) = state.rooms.get(room_id) {
                channels.extend(
                    room.channels
                        .iter()
                        .filter(|channel| matches!(channel.scope, Scope::All | Scope::In))
                        .map(|channel| Arc::clone(&channel.name)),
                );
            }
        }
        channels
    }

    /// The rooms whose filter matches a stored document (`document` carries `_id`), in the
    /// filter engine's order: what a document write keeps with the document, and tests again
    /// at its next write to tell "in" from "out".
    pub fn match_rooms(&self, index: &str, collection: &str, document: &Value) -> Vec<Arc<str>> {
        let koncorde_index = format!("{index}/{collection}");
        let state = self.state.read();
        state
            .engine
            .test(&koncorde_index, document)
            .into_iter()
            .filter_map(|room_id| state.rooms.get_key_value(room_id))
            .map(|(room_id, _)| Arc::clone(room_id))
            .collect()
    }

    /// The channels of `rooms` that take document notifications of `scope` (`In` or `Out`):
    /// those whose scope is `all` or that one. Rooms that no longer exist are skipped.
    pub fn channels_of<'r>(
        &self,
        rooms: impl IntoIterator<Item = &'r str>,
        scope: Scope,
    ) -> Vec<Arc<str>> {
        let state = self.state.read();
        let mut channels = Vec::new();
        for room_id in rooms {
            if let Some(room) = state.rooms.get(room_id) {
                channels.extend(
                    room.channels
                        .iter()
                        .filter(|channel| channel.scope == Scope::All || channel.scope == scope)
                        .map(|channel| Arc::clone(&channel.name)),
                );
            }
        }
        channels
    }

    /// The collections of `index` that have subscriptions (`collection:list`'s "realtime"
    /// entries), sorted.
    pub fn collections(&self, index: &str) -> Vec<String> {
        let state = self.state.read();
        let mut names: Vec<String> = state
            .rooms
            .values()
            .filter(|room| room.index == index)
            .map(|room| room.collection.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Every room: id, index, collection and subscriber count (what this node publishes in
    /// cluster mode).
    pub fn room_counts(&self) -> Vec<RoomCount> {
        let state = self.state.read();
        state
            .rooms
            .iter()
            .map(|(id, room)| RoomCount {
                room_id: Arc::clone(id),
                index: room.index.clone(),
                collection: room.collection.clone(),
                count: room.subscribers.len(),
                filter: Arc::clone(&room.filter),
            })
            .collect()
    }

    /// `(index, collection)` of every room, without repeats.
    pub fn koncorde_indexes(&self) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> =
            self.state.read().collection_rooms.keys().cloned().collect();
        pairs.sort();
        pairs
    }

    /// Cluster mode: from now on, arrivals and departures carry a [`UserChange`].
    pub fn share(&self) {
        self.state.write().shared = true;
    }

    /// A user notification for this node's members of `room_id` about someone arriving or
    /// leaving on another node; `None` when no channel here wants it. `others` are the room's
    /// subscribers elsewhere, added to the count.
    pub fn user_notification_from_elsewhere(
        &self,
        room_id: &str,
        event: UserEvent,
        volatile: Option<&Value>,
        protocol: Option<&str>,
        others: usize,
    ) -> Option<Broadcast> {
        let state = self.state.read();
        let room = state.rooms.get(room_id)?;
        let action = match event {
            UserEvent::In => "subscribe",
            UserEvent::Out => "unsubscribe",
        };
        user_broadcast(room, event, volatile, protocol, action, others)
    }

    /// The `limit` rooms with the most subscribers, most first (ties by room id). One walk
    /// over the rooms under the read lock; the filters are shared, not copied.
    pub fn busiest_rooms(&self, limit: usize) -> Vec<RoomSummary> {
        let state = self.state.read();
        let mut rooms: Vec<(&Arc<str>, &Room)> = state.rooms.iter().collect();
        let order = |a: &(&Arc<str>, &Room), b: &(&Arc<str>, &Room)| {
            b.1.subscribers
                .len()
                .cmp(&a.1.subscribers.len())
                .then_with(|| a.0.cmp(b.0))
        };
        if rooms.len() > limit && limit > 0 {
            rooms.select_nth_unstable_by(limit - 1, order);
        }
        rooms.truncate(limit);
        rooms.sort_unstable_by(order);
        rooms
            .into_iter()
            .map(|(room_id, room)| RoomSummary {
                room_id: Arc::clone(room_id),
                index: room.index.clone(),
                collection: room.collection.clone(),
                filter: Arc::clone(&room.filter),
                subscribers: room.subscribers.len(),
            })
            .collect()
    }

    /// How many rooms exist.
    pub fn room_count(&self) -> usize {
        self.state.read().rooms.len()
    }
}

fn join_room(
    state: &mut State,
    room_id: &Arc<str>,
    request: &SubscribeRequest<'_>,
    protocol_name: &str,
) -> Subscribed {
    let room = state.rooms.get_mut(room_id).expect("the room exists");
    let is_new = !room.subscribers.contains_key(&request.connection);
    let mut user_notification = None;
    if is_new {
        room.subscribers.insert(
            request.connection,
            Subscriber {
                volatile: request.volatile.cloned(),
            },
        );
        // Computed before the newcomer's channel exists, and broadcast before it joins:
        // a subscriber is not told about its own arrival.
        user_notification = user_broadcast(
            room,
            UserEvent::In,
            request.volatile,
            Some(protocol_name),
            "subscribe",
            0,
        );
    }
    let user_change = (is_new && state.shared).then(|| UserChange {
        room_id: Arc::clone(room_id),
        index: room.index.clone(),
        collection: room.collection.clone(),
        volatile: request.volatile.cloned(),
    });
    let name: Arc<str> = Arc::from(channel_name(room_id, request.scope, request.users));
    // Channels are keyed by name: with `out` and `none` sharing a name, the first one's
    // options stay (as in Kuzzle).
    let channel = match room.channels.iter().find(|channel| channel.name == name) {
        Some(channel) => Arc::clone(&channel.name),
        None => {
            room.channels.push(Channel {
                name: Arc::clone(&name),
                scope: request.scope,
                users: request.users,
            });
            name
        }
    };
    if is_new {
        state
            .connection_rooms
            .entry(request.connection)
            .or_default()
            .insert(Arc::clone(room_id));
    }
    Subscribed {
        room_id: Arc::clone(room_id),
        channel,
        user_notification,
        user_change,
    }
}

fn leave_room(
    state: &mut State,
    connection: ConnectionId,
    room_id: &str,
    notify: bool,
) -> Option<Departure> {
    if let Some(rooms) = state.connection_rooms.get_mut(&connection) {
        rooms.remove(room_id);
        if rooms.is_empty() {
            state.connection_rooms.remove(&connection);
        }
    }
    let (room_key, room) = state.rooms.get_key_value(room_id)?;
    let room_key = Arc::clone(room_key);
    let channels: Vec<Arc<str>> = room.channels.iter().map(|c| Arc::clone(&c.name)).collect();
    let room = state.rooms.get_mut(room_id)?;
    let subscriber = room.subscribers.remove(&connection);
    let mut user_notification = None;
    let user_change = (notify && state.shared).then(|| UserChange {
        room_id: Arc::clone(&room_key),
        index: room.index.clone(),
        collection: room.collection.clone(),
        volatile: subscriber
            .as_ref()
            .and_then(|subscriber| subscriber.volatile.clone()),
    });
    if room.subscribers.is_empty() {
        if let Some(room) = state.rooms.remove(room_id) {
            let key = (room.index, room.collection);
            if let Some(rooms) = state.collection_rooms.get_mut(&key) {
                *rooms -= 1;
                if *rooms == 0 {
                    state.collection_rooms.remove(&key);
                }
            }
        }
        state.engine.remove(room_id);
    } else if notify {
        let volatile = subscriber.and_then(|subscriber| subscriber.volatile);
        user_notification = user_broadcast(
            room,
            UserEvent::Out,
            volatile.as_ref(),
            None,
            "unsubscribe",
            0,
        );
    }
    Some(Departure {
        room_id: room_key,
        channels,
        user_notification,
        user_change,
    })
}

fn user_broadcast(
    room: &Room,
    event: UserEvent,
    volatile: Option<&Value>,
    protocol: Option<&str>,
    action: &str,
    others: usize,
) -> Option<Broadcast> {
    let channels: Vec<Arc<str>> = room
        .channels
        .iter()
        .filter(|channel| channel.users.wants(event))
        .map(|channel| Arc::clone(&channel.name))
        .collect();
    if channels.is_empty() {
        return None;
    }
    let payload = user_notification(
        event,
        room.subscribers.len() + others,
        &room.index,
        &room.collection,
        volatile,
        protocol,
        action,
    );
    Some(Broadcast { channels, payload })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn subscribe(
        realtime: &Realtime,
        connection: u64,
        filter: Value,
        scope: Scope,
        users: Users,
    ) -> Subscribed {
        realtime
            .subscribe(
                &SubscribeRequest {
                    connection: ConnectionId(connection),
                    index: "i",
                    collection: "c",
                    filter: &filter,
                    scope,
                    users,
                    volatile: None,
                },
                "line",
                |_| true,
            )
            .unwrap()
    }

    #[test]
    fn busiest_rooms_come_first_with_their_filter() {
        let realtime = Realtime::default();
        let quiet = json!({"equals": {"x": 1}});
        let busy = json!({"range": {"y": {"gt": 2}}});
        subscribe(&realtime, 1, quiet.clone(), Scope::All, Users::None);
        for connection in 2..5 {
            subscribe(&realtime, connection, busy.clone(), Scope::All, Users::None);
        }
        subscribe(&realtime, 9, json!({}), Scope::All, Users::None);
        subscribe(&realtime, 10, json!({}), Scope::All, Users::None);
        let rooms = realtime.busiest_rooms(2);
        let seen: Vec<(&str, &str, &Value, usize)> = rooms
            .iter()
            .map(|room| {
                (
                    room.index.as_str(),
                    room.collection.as_str(),
                    &*room.filter,
                    room.subscribers,
                )
            })
            .collect();
        assert_eq!(seen, [("i", "c", &busy, 3), ("i", "c", &json!({}), 2)]);
        assert_eq!(realtime.busiest_rooms(10).len(), 3);
        assert!(realtime.busiest_rooms(0).is_empty());
    }

    #[test]
    fn collections_with_rooms_follow_rooms_coming_and_going() {
        let realtime = Realtime::default();
        let x = subscribe(
            &realtime,
            1,
            json!({"equals": {"x": 1}}),
            Scope::All,
            Users::None,
        );
        subscribe(
            &realtime,
            2,
            json!({"equals": {"x": 1}}),
            Scope::All,
            Users::None,
        );
        let y = subscribe(
            &realtime,
            3,
            json!({"equals": {"y": 1}}),
            Scope::All,
            Users::None,
        );
        let pair = vec![("i".to_string(), "c".to_string())];
        assert_eq!(realtime.koncorde_indexes(), pair);
        realtime.unsubscribe(ConnectionId(1), &x.room_id).unwrap();
        realtime.unsubscribe(ConnectionId(3), &y.room_id).unwrap();
        assert_eq!(realtime.koncorde_indexes(), pair);
        realtime.unsubscribe(ConnectionId(2), &x.room_id).unwrap();
        assert!(realtime.koncorde_indexes().is_empty());
        assert!(realtime.room_counts().is_empty());
    }

    #[test]
    fn equivalent_filters_share_a_room_and_options_pick_the_channel() {
        let realtime = Realtime::default();
        let a = subscribe(
            &realtime,
            1,
            json!({"equals": {"x": 1}}),
            Scope::All,
            Users::None,
        );
        let b = subscribe(
            &realtime,
            2,
            json!({"and": [{"equals": {"x": 1}}]}),
            Scope::In,
            Users::All,
        );
        assert_eq!(a.room_id, b.room_id);
        assert_eq!(&*a.channel, format!("{}-311", a.room_id));
        assert_eq!(&*b.channel, format!("{}-112", b.room_id));
        assert_eq!(realtime.count(&a.room_id).unwrap(), 2);
        assert!(
            b.user_notification.is_none(),
            "nobody listens to user events yet"
        );
        let c = subscribe(
            &realtime,
            3,
            json!({"equals": {"x": 1}}),
            Scope::All,
            Users::None,
        );
        let notified = c.user_notification.expect("b listens to joins");
        assert_eq!(notified.channels, vec![b.channel.clone()]);
    }

    #[test]
    fn publishing_reaches_matching_rooms_only() {
        let realtime = Realtime::default();
        let x1 = subscribe(
            &realtime,
            1,
            json!({"equals": {"x": 1}}),
            Scope::All,
            Users::None,
        );
        let out = subscribe(
            &realtime,
            2,
            json!({"equals": {"x": 1}}),
            Scope::Out,
            Users::None,
        );
        let _x2 = subscribe(
            &realtime,
            3,
            json!({"equals": {"x": 2}}),
            Scope::All,
            Users::None,
        );
        let channels = realtime.match_document("i", "c", &json!({"x": 1}));
        assert_eq!(channels, vec![x1.channel.clone()]);
        assert_ne!(out.channel, x1.channel);
        assert!(realtime
            .match_document("i", "other", &json!({"x": 1}))
            .is_empty());
    }

    #[test]
    fn rooms_and_their_channels_by_scope() {
        let realtime = Realtime::default();
        let all = subscribe(
            &realtime,
            1,
            json!({"equals": {"x": 1}}),
            Scope::All,
            Users::None,
        );
        let only_in = subscribe(
            &realtime,
            2,
            json!({"equals": {"x": 1}}),
            Scope::In,
            Users::None,
        );
        let only_out = subscribe(
            &realtime,
            3,
            json!({"equals": {"x": 1}}),
            Scope::Out,
            Users::None,
        );
        let other = subscribe(
            &realtime,
            4,
            json!({"equals": {"x": 2}}),
            Scope::All,
            Users::None,
        );
        let rooms = realtime.match_rooms("i", "c", &json!({"x": 1}));
        assert_eq!(rooms, vec![all.room_id.clone()]);
        let room = [&*all.room_id];
        assert_eq!(
            realtime.channels_of(room, Scope::In),
            vec![all.channel.clone(), only_in.channel.clone()]
        );
        assert_eq!(
            realtime.channels_of(room, Scope::Out),
            vec![all.channel.clone(), only_out.channel.clone()]
        );
        assert!(realtime.channels_of(["gone"], Scope::In).is_empty());
        assert_eq!(realtime.collections("i"), vec!["c".to_string()]);
        assert!(realtime.collections("j").is_empty());
        assert_ne!(other.room_id, all.room_id);
    }

    #[test]
    fn leaving_frees_the_room() {
        let realtime = Realtime::default();
        let a = subscribe(&realtime, 1, json!({}), Scope::All, Users::None);
        let mut departures = Vec::new();
        realtime.remove_connection(ConnectionId(1), |departure| departures.push(departure));
        assert_eq!(departures.len(), 1);
        assert_eq!(departures[0].channels, vec![a.channel.clone()]);
        assert_eq!(realtime.room_count(), 0);
        assert_eq!(
            realtime
                .unsubscribe(ConnectionId(1), &a.room_id)
                .unwrap_err()
                .id(),
            "core.realtime.not_subscribed"
        );
    }

    fn try_subscribe(
        realtime: &Realtime,
        connection: u64,
        filter: Value,
    ) -> Result<Subscribed, KuzzleError> {
        realtime.subscribe(
            &SubscribeRequest {
                connection: ConnectionId(connection),
                index: "i",
                collection: "c",
                filter: &filter,
                scope: Scope::All,
                users: Users::None,
                volatile: None,
            },
            "line",
            |_| true,
        )
    }

    #[test]
    fn limits_refuse_with_kuzzles_errors() {
        let realtime = Realtime::new(Limits {
            subscription_minterms: 16,
            subscription_rooms: 3,
            subscriptions_per_connection: 2,
            ..Limits::default()
        });
        // (4 equals) and (4 equals) and (4 equals): 64 terms.
        let group = |n: usize| json!({"or": (0..4).map(|v| json!({"equals": {format!("f{n}"): v}})).collect::<Vec<_>>()});
        let error = try_subscribe(&realtime, 1, json!({"and": [group(0), group(1), group(2)]}))
            .unwrap_err();
        assert_eq!(error.id(), "core.realtime.too_many_terms");
        assert_eq!(
            error.message,
            "Unable to subscribe: maximum number of terms exceeded (max 16, received 64)."
        );
        assert_eq!(realtime.room_count(), 0);

        try_subscribe(&realtime, 1, json!({"equals": {"a": 1}})).unwrap();
        try_subscribe(&realtime, 1, json!({"equals": {"a": 2}})).unwrap();
        let error = try_subscribe(&realtime, 1, json!({"equals": {"a": 3}})).unwrap_err();
        assert_eq!(error.id(), "core.realtime.too_many_subscriptions");
        assert_eq!(error.status(), 413);
        // A room the connection is in already does not count twice.
        try_subscribe(&realtime, 1, json!({"equals": {"a": 2}})).unwrap();

        try_subscribe(&realtime, 2, json!({"equals": {"a": 3}})).unwrap();
        let error = try_subscribe(&realtime, 2, json!({"equals": {"a": 4}})).unwrap_err();
        assert_eq!(error.id(), "core.realtime.too_many_rooms");
        // Existing rooms can still be joined.
        try_subscribe(&realtime, 3, json!({"equals": {"a": 1}})).unwrap();
    }

    #[test]
    fn a_connection_with_many_subscriptions_leaves_them_all() {
        let realtime = Realtime::new(Limits {
            subscriptions_per_connection: 0,
            ..Limits::default()
        });
        for k in 0..5_000 {
            try_subscribe(&realtime, 7, json!({"equals": {"k": k}})).unwrap();
        }
        try_subscribe(&realtime, 8, json!({"equals": {"k": 0}})).unwrap();
        let mut departures = 0;
        realtime.remove_connection(ConnectionId(7), |_| departures += 1);
        assert_eq!(departures, 5_000);
        assert_eq!(
            realtime.room_count(),
            1,
            "the room connection 8 is in stays"
        );
    }
}
