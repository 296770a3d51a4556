//! Cluster mode (`[cluster]`): realtime shared with other nodes through Redis, evaluated at the
//! destination.
//!
//! Every event that produces notifications (a `realtime:publish`, a document change) is
//! delivered to this node's rooms first (`Services::notify`), then handed to [`Cluster::publish`],
//! which only serializes and queues it: a bounded queue (full: the event is dropped and counted)
//! feeds one publisher task on the `cluster` thread. Each time that task wakes it takes all that
//! is queued, makes one batch per channel (`<prefix><index>/<collection>`) and PUBLISHes the
//! batches in one pipeline; then, while events keep coming, it waits for the rest of
//! `cluster.flushInterval` (1 ms by default) before taking the next ones, so a busy node wakes
//! its `cluster` thread and calls Redis about once per interval, whatever the rate, and a lone
//! event is published at once. Nothing here runs on a plugin's thread or under the realtime lock, and no request waits
//! for Redis.
//!
//! A node SUBSCRIBEs to a collection's channel while it has a room on that collection
//! ([`Cluster::rooms_changed`] asks the `cluster` thread to compare). What arrives is matched by
//! the receiving node against its own rooms through the normal local path
//! ([`Destination::deliver`]): scopes and channels stay right without any node knowing another's
//! filters.
//!
//! Someone arriving in or leaving a room is published the same way (kind `u`), so the room's
//! members on other nodes get their user notifications (`users: all/in/out`).
//!
//! Each message is a batch, `SY2 <origin> <epoch> <first> <count>\n` then `count` frames
//! `<kind><length>\n<json>` (kind `d` a document event, `u` a user event, `s` a security
//! change): `origin` the node's name, `epoch` its start time (a restarted node is a new origin),
//! the events numbered per channel from 1, `first` to `first + count - 1`. A receiver drops its
//! own messages (echoes: Redis sends every PUBLISH back to the publisher's subscriber connection)
//! on their header, and the events at or below the last sequence it saw from that origin on that
//! channel (duplicates); a jump counts the missing ones as lost (logged). It still reads the
//! single-event `SY1 <origin> <epoch> <seq> <kind>\n<json>` of nodes from before batches, and
//! writes it too while any live node does not read batches: each heartbeat a node also stamps
//! its entry in `<prefix>wire` (node → the time its stamp expires), and batches go out only when
//! every other live node's stamp is current (`batching` in `server:info`). So a rolling upgrade
//! from a version before batches loses nothing; a node downgraded stops stamping and is heard
//! in single events again within three heartbeats.
//!
//! `realtime:count` and `realtime:list` add the other nodes' subscribers: every heartbeat each
//! node rewrites its room counts in Redis (a hash that expires after three heartbeats, so a dead
//! node's subscribers disappear by themselves) and reads the other live nodes' hashes into
//! [`Cluster::remote_count`]'s cache: an answer at most one heartbeat old, never a Redis call
//! on the request's thread.
//!
//! Redis lost after start-up: local delivery goes on, publishes fail (counted; never retried: a
//! timeout does not mean "not published"), the loss is logged (at most every 10 s), and every
//! `retryInterval` the node pings Redis; once both connections answer, it subscribes again to
//! its channels and logs it.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::config::ClusterConfig;
use crate::realtime::{DocumentEvent, RoomCount, UserChange, UserEvent};

pub mod rate_limits;

/// Where remote events go: this node's rooms (`Services` implements it).
pub trait Destination: Send + Sync {
    /// Matches a remote event against this node's rooms and notifies them. Runs on the
    /// `cluster` thread.
    fn deliver(&self, event: &Inbound);
    /// Tells this node's members of a room about someone arriving or leaving elsewhere. Runs on
    /// the `cluster` thread.
    fn deliver_user(&self, event: &UserInbound);
    /// `(index, collection)` of every room of this node: the channels to subscribe to.
    fn collections(&self) -> Vec<(String, String)>;
    /// Every room of this node and its subscriber count.
    fn room_counts(&self) -> Vec<RoomCount>;
    /// Another node changed security object `collection`/`id` in the shared store: read it
    /// again (and drop the subscriptions of a token that is gone). Runs on the `cluster` thread.
    fn deliver_security(&self, collection: &str, id: &str);
}

/// What a receiver matches against its rooms: the document now (rooms matching it hear `in`)
/// and before the change (rooms matching it and not now hear `out`).
#[derive(Debug, Default)]
pub struct Contents {
    /// The content now, with `_id`; `None` for a delete.
    pub now: Option<Value>,
    /// The content before a write, or the deleted content, with `_id`.
    pub before: Option<Value>,
}

/// An event as published.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Outbound<'a> {
    index: &'a str,
    collection: &'a str,
    action: &'a str,
    id: Option<&'a str>,
    extra: &'a str,
    request_id: &'a str,
    volatile: Option<&'a Value>,
    controller: &'a str,
    protocol: &'a str,
    timestamp: u64,
    now: Option<&'a Value>,
    before: Option<&'a Value>,
}

/// An event from another node.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inbound {
    /// `index`.
    pub index: String,
    /// `collection`.
    pub collection: String,
    action: String,
    id: Option<String>,
    source: Box<RawValue>,
    extra: String,
    request_id: String,
    volatile: Option<Value>,
    controller: String,
    protocol: String,
    timestamp: u64,
    /// The content now (see [`Contents`]).
    pub now: Option<Value>,
    /// The content before (see [`Contents`]).
    pub before: Option<Value>,
}

impl Inbound {
    /// The notification it makes (scope `in`; the caller sets `out`).
    pub fn event(&self) -> DocumentEvent<'_> {
        DocumentEvent {
            action: &self.action,
            scope: "in",
            id: self.id.as_deref(),
            source: self.source.get(),
            request_id: &self.request_id,
            volatile: self.volatile.as_ref(),
            index: &self.index,
            collection: &self.collection,
            controller: &self.controller,
            protocol: &self.protocol,
            timestamp: self.timestamp,
            extra: Some(&self.extra),
        }
    }
}

/// Someone arrived in or left a room, as published.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserOutbound<'a> {
    room_id: &'a str,
    user: &'a str,
    volatile: Option<&'a Value>,
    protocol: Option<&'a str>,
}

/// Someone arrived in or left a room on another node.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserInbound {
    /// The room.
    pub room_id: String,
    user: String,
    /// The subscriber's `volatile`.
    pub volatile: Option<Value>,
    /// The arrival's protocol (none for a departure).
    pub protocol: Option<String>,
}

impl UserInbound {
    /// `in` or `out`.
    pub fn event(&self) -> UserEvent {
        if self.user == "out" {
            UserEvent::Out
        } else {
            UserEvent::In
        }
    }
}

/// A security object another node wrote: `{"c": collection, "id": id}`.
#[derive(Debug, Deserialize)]
struct SecurityInbound {
    #[serde(rename = "c")]
    collection: String,
    id: String,
}

/// Counters, exported in `server:info` (`serverInfo.kuzzle.cluster`).
#[derive(Debug, Default)]
pub struct Stats {
    /// Events queued for Redis.
    pub queued: AtomicU64,
    /// Events dropped because the outgoing queue was full.
    pub dropped: AtomicU64,
    /// Events PUBLISHed (Redis answered).
    pub published: AtomicU64,
    /// PUBLISH commands that carried them (each a batch of one channel's events).
    pub batches: AtomicU64,
    /// Events whose PUBLISH failed or timed out (maybe delivered anyway; never retried).
    pub publish_failed: AtomicU64,
    /// Events received from Redis (every event of a batch; a message that cannot be decoded
    /// counts one).
    pub received: AtomicU64,
    /// Remote events matched against this node's rooms.
    pub delivered: AtomicU64,
    /// This node's own events, back from Redis, dropped.
    pub echoes: AtomicU64,
    /// Events seen already (sequence not above the last), dropped.
    pub duplicates: AtomicU64,
    /// Events missing from another node's sequence.
    pub lost: AtomicU64,
    /// Events (or messages) that could not be decoded.
    pub malformed: AtomicU64,
    /// Times Redis was lost.
    pub disconnections: AtomicU64,
    /// Channels subscribed to now.
    pub channels: AtomicU64,
    /// Every other live node reads batches (its `<prefix>wire` stamp is current): publish
    /// batches, else one `SY1` message per event. Set by the first shard's heartbeat.
    pub batching: AtomicBool,
}

/// A running cluster member.
pub struct Cluster {
    node: Arc<str>,
    epoch: u64,
    url: String,
    /// Every shard's URL, `url` first.
    shard_urls: Vec<String>,
    prefix: String,
    /// One queue per shard, in shard order.
    outgoing: Vec<mpsc::Sender<Queued>>,
    /// One per shard.
    changed: Vec<mpsc::Sender<()>>,
    destination: Arc<OnceLock<Weak<dyn Destination>>>,
    stats: Arc<Stats>,
    remote_counts: Arc<RwLock<HashMap<String, RemoteRoom>>>,
    /// The per-user rate limits' sharing, once started (`rate_limits.rs`).
    rate_limits: OnceLock<Arc<rate_limits::RateLimitSharing>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.node)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// A room as the other live nodes reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RemoteRoom {
    index: String,
    collection: String,
    count: u64,
    /// The room's filter as JSON text (absent from nodes older than `realtime:join` across
    /// nodes).
    filter: Option<String>,
}

/// A room another live node holds: what a `realtime:join` by id needs to recreate it here.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteRoomDefinition {
    /// Its index.
    pub index: String,
    /// Its collection.
    pub collection: String,
    /// Its filter, as its first subscriber wrote it.
    pub filter: Value,
}

/// Logs at most once per this long, per kind of trouble.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// Events taken from the queue per flush, at most.
const BATCH: usize = 256;
/// A batch's events, in bytes, beyond which the next event of its channel starts another batch
/// (Redis holds a subscriber's unread messages in its output buffer, bounded).
const BATCH_BYTES: usize = 256 * 1024;

/// An event waiting for the `cluster` thread: its channel, kind (`d`, `u`, `s`) and JSON body.
#[derive(Debug)]
struct Queued {
    channel: String,
    kind: u8,
    body: Vec<u8>,
}

impl Cluster {
    /// Connects to every shard's Redis (two connections each, within the connect timeout) and
    /// starts one `cluster` thread per shard. The error names what failed and, for a shard
    /// other than `cluster.redis`, its URL; the caller names `cluster.redis`.
    pub fn start(config: &ClusterConfig) -> Result<Cluster, String> {
        let epoch = crate::realtime::now_ms();
        let node: Arc<str> = Arc::from(config.node());
        let destination: Arc<OnceLock<Weak<dyn Destination>>> = Arc::new(OnceLock::new());
        let stats = Arc::new(Stats::default());
        let remote_counts = Arc::new(RwLock::new(HashMap::new()));
        let shard_urls: Vec<String> = std::iter::once(config.redis.clone())
            .chain(config.shards.iter().cloned())
            .collect();
        let mut outgoing = Vec::with_capacity(shard_urls.len());
        let mut changed = Vec::with_capacity(shard_urls.len());
        for (shard, url) in shard_urls.iter().enumerate() {
            let (outgoing_tx, outgoing_rx) = mpsc::channel(config.outgoing_queue_size);
            let (changed_tx, changed_rx) = mpsc::channel(1);
            let worker = Worker {
                node: Arc::clone(&node),
                epoch,
                shard,
                shards: shard_urls.len(),
                url: url.clone(),
                prefix: config.channel_prefix.clone(),
                retry: Duration::from_millis(config.retry_interval),
                heartbeat: Duration::from_millis(config.heartbeat_interval),
                flush_spacing: Duration::from_millis(config.flush_interval),
                remote_counts: Arc::clone(&remote_counts),
                destination: Arc::clone(&destination),
                stats: Arc::clone(&stats),
                down: Cell::new(false),
                last_log: RefCell::new(HashMap::new()),
                subscribed: RefCell::new(HashSet::new()),
                last_seq: RefCell::new(HashMap::new()),
                security: (shard == 0)
                    .then(|| security_reader(Arc::clone(&destination)))
                    .transpose()?,
            };
            start_worker(worker, config, outgoing_rx, changed_rx).map_err(|error| {
                if shard == 0 {
                    error
                } else {
                    format!("shard {url} (cluster.shards): {error}")
                }
            })?;
            outgoing.push(outgoing_tx);
            changed.push(changed_tx);
        }
        tracing::info!(
            "cluster: node {node} (epoch {epoch}) connected to Redis at {}",
            shard_urls.join(", ")
        );
        Ok(Cluster {
            node,
            epoch,
            url: config.redis.clone(),
            shard_urls,
            prefix: config.channel_prefix.clone(),
            outgoing,
            changed,
            destination,
            stats,
            remote_counts,
            rate_limits: OnceLock::new(),
        })
    }

    /// Shares `limiter`'s per-user counts with the other nodes (`rate_limits.rs`), unless
    /// `cluster.rateLimitInterval` is 0.
    pub fn share_rate_limits(
        &self,
        config: &ClusterConfig,
        limiter: Arc<switchyard_security::limits::UserRateLimiter>,
    ) -> Result<(), String> {
        if config.rate_limit_interval > 0 {
            let _ = self.rate_limits.set(rate_limits::start(config, limiter)?);
        }
        Ok(())
    }

    /// Subscribers of `room_id` on the other live nodes, as they last reported them (at most
    /// one heartbeat old); `None` when none has the room.
    pub fn remote_count(&self, room_id: &str) -> Option<u64> {
        self.remote_counts
            .read()
            .get(room_id)
            .map(|room| room.count)
    }

    /// What another live node said of room `room_id` at the last heartbeat: its index,
    /// collection and filter, so that `realtime:join` on this node can recreate it (room ids are
    /// derived from index, collection and normalized filter, so the id comes out the same).
    pub fn remote_room(&self, room_id: &str) -> Option<RemoteRoomDefinition> {
        let rooms = self.remote_counts.read();
        let room = rooms.get(room_id)?;
        let filter = serde_json::from_str(room.filter.as_deref()?).ok()?;
        Some(RemoteRoomDefinition {
            index: room.index.clone(),
            collection: room.collection.clone(),
            filter,
        })
    }

    /// Adds the other live nodes' rooms and subscribers to a `realtime:list` answer
    /// (`{index: {collection: {roomId: count}}}`), as they last reported them.
    pub fn merge_list(&self, list: &mut Value) {
        for (room_id, room) in self.remote_counts.read().iter() {
            let counts = &mut list[&room.index][&room.collection][room_id];
            *counts = Value::from(counts.as_u64().unwrap_or(0) + room.count);
        }
    }

    /// Where remote events go from now on (set once, after start-up).
    pub fn attach(&self, destination: Weak<dyn Destination>) {
        let _ = self.destination.set(destination);
        // Listen at once to what every node hears whatever its rooms (security changes).
        self.rooms_changed();
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The Redis URL, and the other shards' after a comma when there are some (the ready
    /// line).
    pub fn url(&self) -> String {
        self.shard_urls.join(", ")
    }

    /// Queues an event (already delivered locally) for the other nodes. Never blocks: a full
    /// queue drops it (counted).
    pub fn publish(&self, event: &DocumentEvent<'_>, contents: &Contents) {
        let outbound = Outbound {
            index: event.index,
            collection: event.collection,
            action: event.action,
            id: event.id,
            extra: event.extra.unwrap_or(""),
            request_id: event.request_id,
            volatile: event.volatile,
            controller: event.controller,
            protocol: event.protocol,
            timestamp: event.timestamp,
            now: contents.now.as_ref(),
            before: contents.before.as_ref(),
        };
        let mut body = Vec::with_capacity(event.source.len() + 256);
        if serde_json::to_writer(&mut body, &outbound).is_err() {
            self.stats.malformed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // `source` is JSON already: spliced in last (in place of the closing brace), not parsed
        // again nor copied twice.
        body.pop();
        body.extend_from_slice(b",\"source\":");
        body.extend_from_slice(event.source.as_bytes());
        body.push(b'}');
        let channel = channel_name(&self.prefix, event.index, event.collection);
        self.queue(channel, b'd', body);
    }

    /// Queues someone's arrival in or departure from a room, for the other nodes' members of
    /// it. Never blocks.
    pub fn publish_user(&self, change: &UserChange, event: UserEvent, protocol: Option<&str>) {
        let user = UserOutbound {
            room_id: &change.room_id,
            user: if event == UserEvent::In { "in" } else { "out" },
            volatile: change.volatile.as_ref(),
            protocol,
        };
        let Ok(body) = serde_json::to_vec(&user) else {
            self.stats.malformed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let channel = channel_name(&self.prefix, &change.index, &change.collection);
        self.queue(channel, b'u', body);
    }

    fn queue(&self, channel: String, kind: u8, body: Vec<u8>) {
        let shard = shard_of(&channel, self.outgoing.len());
        match self.outgoing[shard].try_send(Queued {
            channel,
            kind,
            body,
        }) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// What tells the other nodes that this node wrote security object `(collection, id)`
    /// (users, profiles, roles, credentials, tokens, API keys live in the store, which nodes
    /// share with PostgreSQL; each node also keeps them in memory). Never blocks.
    pub fn security_publisher(&self) -> impl Fn(&str, &str) + Send + Sync + 'static {
        let outgoing = self.outgoing[0].clone();
        let stats = Arc::clone(&self.stats);
        let channel = security_channel(&self.prefix);
        move |collection: &str, id: &str| {
            let body = serde_json::json!({ "c": collection, "id": id }).to_string();
            match outgoing.try_send(Queued {
                channel: channel.clone(),
                kind: b's',
                body: body.into_bytes(),
            }) {
                Ok(()) => stats.queued.fetch_add(1, Ordering::Relaxed),
                Err(_) => stats.dropped.fetch_add(1, Ordering::Relaxed),
            };
        }
    }

    /// Tells the `cluster` thread the node's rooms changed: it subscribes to the channels of
    /// new collections and unsubscribes from those left. Never blocks (requests coalesce).
    pub fn rooms_changed(&self) {
        for shard in &self.changed {
            let _ = shard.try_send(());
        }
    }

    /// The counters, for `server:info`.
    pub fn info(&self) -> Value {
        let stats = &*self.stats;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        serde_json::json!({
            "node": &*self.node,
            "epoch": self.epoch,
            "redis": self.url,
            "shards": self.shard_urls,
            "channels": get(&stats.channels),
            "queued": get(&stats.queued),
            "dropped": get(&stats.dropped),
            "published": get(&stats.published),
            "batches": get(&stats.batches),
            "publishFailed": get(&stats.publish_failed),
            "received": get(&stats.received),
            "delivered": get(&stats.delivered),
            "echoes": get(&stats.echoes),
            "duplicates": get(&stats.duplicates),
            "lost": get(&stats.lost),
            "malformed": get(&stats.malformed),
            "disconnections": get(&stats.disconnections),
            "batching": stats.batching.load(Ordering::Relaxed),
            "rateLimits": self.rate_limits.get().map(|sharing| sharing.info()),
        })
    }
}

/// The shard a channel lives on, among `shards`: FNV-1a of its name, so every node agrees as
/// long as they list the same shards in the same order.
pub fn shard_of(channel: &str, shards: usize) -> usize {
    if shards <= 1 {
        return 0;
    }
    let hash = channel
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    (hash % shards as u64) as usize
}

/// Changes to security objects waiting to be read again, at most.
const SECURITY_QUEUE: usize = 4096;

/// The `cluster-security` thread: reads again, in order, each security object another node
/// changed (a store read that may block: never on a `cluster` thread).
fn security_reader(
    destination: Arc<OnceLock<Weak<dyn Destination>>>,
) -> Result<std::sync::mpsc::SyncSender<SecurityInbound>, String> {
    let (sender, receiver) = std::sync::mpsc::sync_channel::<SecurityInbound>(SECURITY_QUEUE);
    std::thread::Builder::new()
        .name("cluster-security".to_string())
        .spawn(move || {
            while let Ok(change) = receiver.recv() {
                if let Some(destination) = destination.get().and_then(Weak::upgrade) {
                    destination.deliver_security(&change.collection, &change.id);
                }
            }
        })
        .map_err(|error| format!("cannot start the cluster-security thread: {error}"))?;
    Ok(sender)
}

/// Connects one shard's two connections and starts its thread (`cluster` for the first shard,
/// `cluster-<n>` for the others); returns once connected, or with the reason it could not.
fn start_worker(
    worker: Worker,
    config: &ClusterConfig,
    outgoing: mpsc::Receiver<Queued>,
    changed: mpsc::Receiver<()>,
) -> Result<(), String> {
    let (ready, started) = std::sync::mpsc::channel::<Result<(), String>>();
    let settings = config.clone();
    let name = if worker.shard == 0 {
        "cluster".to_string()
    } else {
        format!("cluster-{}", worker.shard)
    };
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = ready.send(Err(format!("cannot start its runtime: {error}")));
                    return;
                }
            };
            runtime.block_on(async move {
                let (push_tx, push_rx) = mpsc::unbounded_channel::<PushInfo>();
                let connections = tokio::time::timeout(
                    Duration::from_millis(settings.connect_timeout.saturating_mul(2)),
                    connect(&worker.url, &settings, push_tx),
                )
                .await
                .unwrap_or_else(|_| Err("timed out".to_string()));
                let (publisher, subscriber) = match connections {
                    Ok(connections) => connections,
                    Err(error) => {
                        let _ = ready.send(Err(error));
                        return;
                    }
                };
                let _ = ready.send(Ok(()));
                worker
                    .run(publisher, subscriber, outgoing, changed, push_rx)
                    .await;
            });
        })
        .map_err(|error| format!("cannot start the cluster thread: {error}"))?;
    started
        .recv()
        .map_err(|_| "the cluster thread stopped".to_string())?
}

/// The channel of security changes, `<prefix>~security` (on the first shard; no index name
/// has a `~`).
pub fn security_channel(prefix: &str) -> String {
    format!("{prefix}~security")
}

/// `<prefix><index>/<collection>`.
pub fn channel_name(prefix: &str, index: &str, collection: &str) -> String {
    format!("{prefix}{index}/{collection}")
}

/// The publisher's and the subscriber's connections (RESP3, the subscriber's pushes to `push`).
async fn connect(
    url: &str,
    config: &ClusterConfig,
    push: mpsc::UnboundedSender<PushInfo>,
) -> Result<(ConnectionManager, ConnectionManager), String> {
    let info = url
        .into_connection_info()
        .map_err(|error| format!("invalid URL: {error}"))?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let client = redis::Client::open(info.set_redis_settings(settings))
        .map_err(|error| error.to_string())?;
    let base = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(config.connect_timeout)))
        .set_response_timeout(Some(Duration::from_millis(config.response_timeout)))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(config.retry_interval));
    let publisher = ConnectionManager::new_with_config(client.clone(), base.clone())
        .await
        .map_err(|error| error.to_string())?;
    let subscriber = ConnectionManager::new_with_config(
        client,
        base.set_push_sender(push).set_automatic_resubscription(),
    )
    .await
    .map_err(|error| error.to_string())?;
    Ok((publisher, subscriber))
}

/// One shard's `cluster` thread's state (one thread: cells, no locks).
struct Worker {
    node: Arc<str>,
    epoch: u64,
    /// Which shard this thread serves (0: `cluster.redis`, which also keeps the room counts).
    shard: usize,
    /// How many shards there are.
    shards: usize,
    url: String,
    prefix: String,
    retry: Duration,
    heartbeat: Duration,
    /// `cluster.flushInterval`: the publisher takes what is queued at most once per this long
    /// while events keep coming; an event arriving later than that after the last flush goes at
    /// once.
    flush_spacing: Duration,
    remote_counts: Arc<RwLock<HashMap<String, RemoteRoom>>>,
    destination: Arc<OnceLock<Weak<dyn Destination>>>,
    stats: Arc<Stats>,
    down: Cell<bool>,
    last_log: RefCell<HashMap<&'static str, Instant>>,
    subscribed: RefCell<HashSet<String>>,
    /// Last sequence by (channel, origin, epoch).
    last_seq: RefCell<HashMap<(String, String, u64), u64>>,
    /// The first shard's: where security changes go to be read again, in order.
    security: Option<std::sync::mpsc::SyncSender<SecurityInbound>>,
}

impl Worker {
    async fn run(
        &self,
        publisher: ConnectionManager,
        subscriber: ConnectionManager,
        outgoing: mpsc::Receiver<Queued>,
        changed: mpsc::Receiver<()>,
        pushes: mpsc::UnboundedReceiver<PushInfo>,
    ) {
        tokio::select! {
            () = self.publish_loop(publisher.clone(), outgoing) => {}
            () = self.receive_loop(pushes) => {}
            () = self.control_loop(publisher, subscriber, changed) => {}
        }
    }

    /// Logs `message` unless the same kind was logged within [`LOG_EVERY`].
    fn log_limited(&self, kind: &'static str, message: impl FnOnce() -> String) {
        let mut last = self.last_log.borrow_mut();
        let now = Instant::now();
        if last
            .get(kind)
            .is_some_and(|at| now.duration_since(*at) < LOG_EVERY)
        {
            return;
        }
        last.insert(kind, now);
        tracing::warn!("{}", message());
    }

    fn lost_redis(&self, error: &dyn std::fmt::Display) {
        if !self.down.replace(true) {
            self.stats.disconnections.fetch_add(1, Ordering::Relaxed);
            self.last_log.borrow_mut().remove("down");
        }
        self.log_limited("down", || {
            format!(
                "cluster: lost Redis at {}: {error}; serving this node's clients only until it returns",
                self.url
            )
        });
    }

    /// Takes what is queued, one batch envelope per channel (numbered from the channel's next
    /// sequence on), and PUBLISHes them in one pipeline; then waits, at a high rate, for the
    /// rest of its flush spacing, so that the publishing threads' events pile up without
    /// waking this thread (the queue's receiver only wakes when it waits on an empty queue).
    async fn publish_loop(
        &self,
        mut publisher: ConnectionManager,
        mut outgoing: mpsc::Receiver<Queued>,
    ) {
        let mut sequences: HashMap<String, u64> = HashMap::new();
        let mut queued = Vec::with_capacity(BATCH);
        let mut batches: Vec<Batch> = Vec::new();
        let mut last_flush: Option<tokio::time::Instant> = None;
        loop {
            if let Some(last) = last_flush.filter(|last| last.elapsed() < self.flush_spacing) {
                tokio::time::sleep_until(last + self.flush_spacing).await;
            }
            if outgoing.recv_many(&mut queued, BATCH).await == 0 {
                return;
            }
            if !self.stats.batching.load(Ordering::Relaxed) {
                // A live node from before batches: one `SY1` message per event, as it reads.
                let mut pipe = redis::pipe();
                let events = queued.len() as u64;
                for event in queued.drain(..) {
                    let next = match sequences.get_mut(&event.channel) {
                        Some(last) => last,
                        None => sequences.entry(event.channel.clone()).or_insert(0),
                    };
                    *next += 1;
                    let message = single_event(&self.node, self.epoch, *next, &event);
                    pipe.publish(event.channel, message).ignore();
                }
                self.published(pipe.query_async::<()>(&mut publisher).await, events, events);
                last_flush = Some(tokio::time::Instant::now());
                continue;
            }
            for event in queued.drain(..) {
                let open = batches.iter().position(|batch| {
                    batch.channel == event.channel && batch.frames.len() < BATCH_BYTES
                });
                let batch = match open {
                    Some(open) => &mut batches[open],
                    None => {
                        batches.push(Batch {
                            channel: event.channel,
                            frames: Vec::with_capacity(event.body.len() + 16),
                            count: 0,
                        });
                        batches.last_mut().expect("just pushed")
                    }
                };
                batch.push(event.kind, &event.body);
            }
            let mut pipe = redis::pipe();
            let mut events = 0;
            for batch in batches.drain(..) {
                let next = match sequences.get_mut(&batch.channel) {
                    Some(last) => last,
                    None => sequences.entry(batch.channel.clone()).or_insert(0),
                };
                let first = *next + 1;
                *next += batch.count;
                events += batch.count;
                let message = batch.envelope(&self.node, self.epoch, first);
                pipe.publish(batch.channel, message).ignore();
            }
            let commands = pipe.len() as u64;
            self.published(
                pipe.query_async::<()>(&mut publisher).await,
                events,
                commands,
            );
            last_flush = Some(tokio::time::Instant::now());
        }
    }

    /// Counts what a pipeline of `commands` PUBLISHes carrying `events` events came to.
    fn published(&self, outcome: redis::RedisResult<()>, events: u64, commands: u64) {
        match outcome {
            Ok(()) => {
                self.stats.published.fetch_add(events, Ordering::Relaxed);
                self.stats.batches.fetch_add(commands, Ordering::Relaxed);
            }
            Err(error) => {
                self.stats
                    .publish_failed
                    .fetch_add(events, Ordering::Relaxed);
                self.lost_redis(&error);
            }
        }
    }

    async fn receive_loop(&self, mut pushes: mpsc::UnboundedReceiver<PushInfo>) {
        while let Some(push) = pushes.recv().await {
            match push.kind {
                PushKind::Message => self.receive(&push.data),
                PushKind::Disconnection => self.lost_redis(&"connection closed"),
                _ => {}
            }
        }
    }

    /// One message (a batch of events): header, echo, sequences, then each event.
    fn receive(&self, data: &[redis::Value]) {
        let (Some(redis::Value::BulkString(channel)), Some(redis::Value::BulkString(payload))) =
            (data.first(), data.get(1))
        else {
            self.stats.received.fetch_add(1, Ordering::Relaxed);
            self.stats.malformed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(header) = parse_header(payload) else {
            self.stats.received.fetch_add(1, Ordering::Relaxed);
            self.stats.malformed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        self.stats
            .received
            .fetch_add(header.count, Ordering::Relaxed);
        // Redis sends every PUBLISH back to the publisher's own subscriber connection: dropped
        // on its header, before its events are even split.
        if header.origin == &*self.node && header.epoch == self.epoch {
            self.stats.echoes.fetch_add(header.count, Ordering::Relaxed);
            return;
        }
        let Some(frames) = header.frames() else {
            self.stats
                .malformed
                .fetch_add(header.count, Ordering::Relaxed);
            return;
        };
        let (origin, epoch, first) = (header.origin, header.epoch, header.first);
        let end = first + header.count - 1;
        let channel = String::from_utf8_lossy(channel).into_owned();
        // Events of this batch seen already (a duplicate batch, or one overlapping the last).
        let seen = {
            let mut last_seq = self.last_seq.borrow_mut();
            let last = last_seq
                .entry((channel.clone(), origin.to_string(), epoch))
                .or_insert(0);
            let previous = *last;
            if previous != 0 && end <= previous {
                self.stats
                    .duplicates
                    .fetch_add(header.count, Ordering::Relaxed);
                return;
            }
            if previous != 0 && first > previous + 1 {
                let missing = first - previous - 1;
                self.stats.lost.fetch_add(missing, Ordering::Relaxed);
                self.log_limited("lost", || {
                    format!(
                        "cluster: lost {missing} event(s) from node {origin} on {channel} (sequence {previous} to {first})"
                    )
                });
            }
            *last = end;
            if previous != 0 && first <= previous {
                previous - first + 1
            } else {
                0
            }
        };
        if seen > 0 {
            self.stats.duplicates.fetch_add(seen, Ordering::Relaxed);
        }
        let Some(destination) = self.destination.get().and_then(Weak::upgrade) else {
            return;
        };
        for (kind, body) in frames.into_iter().skip(seen as usize) {
            self.receive_event(&*destination, kind, body);
        }
    }

    /// One event of a batch, in order.
    fn receive_event(&self, destination: &dyn Destination, kind: u8, body: &[u8]) {
        // Counted before delivery, so whoever saw the notification sees the count too.
        match kind {
            b'd' => match serde_json::from_slice::<Inbound>(body) {
                Ok(event) => {
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    destination.deliver(&event);
                }
                Err(_) => {
                    self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                }
            },
            b's' => match serde_json::from_slice::<SecurityInbound>(body) {
                Ok(event) => {
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    // Reading the object again may block on the store (PostgreSQL's client
                    // runs its own runtime): on the `cluster-security` thread, not this one.
                    if let Some(security) = &self.security {
                        if security.try_send(event).is_err() {
                            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                            self.log_limited("security", || {
                                "cluster: security changes from other nodes arrive faster than this node reads them; some were dropped".to_string()
                            });
                        }
                    }
                }
                Err(_) => {
                    self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                }
            },
            b'u' => match serde_json::from_slice::<UserInbound>(body) {
                Ok(event) => {
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    destination.deliver_user(&event);
                }
                Err(_) => {
                    self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                }
            },
            _ => {
                self.stats.malformed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    async fn control_loop(
        &self,
        mut publisher: ConnectionManager,
        mut subscriber: ConnectionManager,
        mut changed: mpsc::Receiver<()>,
    ) {
        let mut tick = tokio::time::interval(self.retry);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heartbeat = tokio::time::interval(self.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = heartbeat.tick() => {
                    // Room counts live on the first shard only.
                    if self.shard == 0 && !self.down.get() {
                        self.exchange_counts(&mut publisher).await;
                    }
                }
                message = changed.recv() => {
                    if message.is_none() {
                        return;
                    }
                    self.reconcile(&mut subscriber).await;
                }
                _ = tick.tick() => {
                    if self.down.get() {
                        self.recover(&mut publisher, &mut subscriber).await;
                    }
                }
            }
        }
    }

    /// Writes this node's room counts (`<prefix>cnt:<node>`, expiring after three heartbeats,
    /// and its entry in `<prefix>nodes`), then reads the other live nodes' counts.
    async fn exchange_counts(&self, connection: &mut ConnectionManager) {
        let Some(destination) = self.destination.get().and_then(Weak::upgrade) else {
            return;
        };
        let counts = destination.room_counts();
        drop(destination);
        let ttl = self.heartbeat.as_millis() as u64 * 3;
        let now = crate::realtime::now_ms();
        let nodes = format!("{}nodes", self.prefix);
        let wire = format!("{}wire", self.prefix);
        let own = format!("{}cnt:{}", self.prefix, self.node);
        let mut pipe = redis::pipe();
        pipe.atomic().del(&own).ignore();
        if !counts.is_empty() {
            // roomId → "count\nindex\ncollection\nfilter" (names have no newline, and compact
            // JSON escapes the ones inside strings).
            let fields: Vec<(&str, String)> = counts
                .iter()
                .map(|room| {
                    let value = format!(
                        "{}\n{}\n{}\n{}",
                        room.count, room.index, room.collection, room.filter
                    );
                    (&*room.room_id, value)
                })
                .collect();
            pipe.hset_multiple(&own, &fields).ignore();
        }
        pipe.pexpire(&own, ttl as i64)
            .ignore()
            .zadd(&nodes, &*self.node, now + ttl)
            .ignore()
            .zrembyscore(&nodes, "-inf", now)
            .ignore()
            .hset(&wire, &*self.node, now + ttl)
            .ignore()
            .zrangebyscore(&nodes, now, "+inf")
            .hgetall(&wire);
        let (alive, stamps): (Vec<String>, HashMap<String, String>) =
            match pipe.query_async(connection).await {
                Ok(answer) => answer,
                Err(error) => return self.lost_redis(&error),
            };
        // A stamp that is not a number (written by hand) counts as expired.
        let stamps: HashMap<String, u64> = stamps
            .into_iter()
            .map(|(node, until)| (node, until.parse().unwrap_or(0)))
            .collect();
        let others: Vec<&String> = alive.iter().filter(|node| **node != *self.node).collect();
        let batching = others
            .iter()
            .all(|node| stamps.get(*node).is_some_and(|until| *until >= now));
        if self.stats.batching.swap(batching, Ordering::Relaxed) != batching {
            tracing::info!(
                "cluster: {}",
                if batching {
                    "every live node reads batches: publishing in batches"
                } else {
                    "a live node does not read batches (an earlier version): publishing one event per message"
                }
            );
        }
        let mut read = redis::pipe();
        // Stamps of nodes gone (expired, and no longer live) are forgotten.
        let gone: Vec<&String> = stamps
            .iter()
            .filter(|(node, until)| **until < now && !alive.contains(node))
            .map(|(node, _)| node)
            .collect();
        if !gone.is_empty() {
            read.hdel(&wire, gone).ignore();
        }
        for node in &others {
            read.hgetall(format!("{}cnt:{node}", self.prefix));
        }
        let hashes: Vec<HashMap<String, String>> = if read.is_empty() {
            Vec::new()
        } else if others.is_empty() {
            if let Err(error) = read.query_async::<()>(connection).await {
                return self.lost_redis(&error);
            }
            Vec::new()
        } else {
            match read.query_async(connection).await {
                Ok(hashes) => hashes,
                Err(error) => return self.lost_redis(&error),
            }
        };
        let mut sums: HashMap<String, RemoteRoom> = HashMap::new();
        for hash in hashes {
            for (room_id, value) in hash {
                let mut parts = value.splitn(4, '\n');
                let (Some(count), Some(index), Some(collection)) = (
                    parts.next().and_then(|count| count.parse::<u64>().ok()),
                    parts.next(),
                    parts.next(),
                ) else {
                    continue;
                };
                let filter = parts.next();
                let room = sums.entry(room_id).or_insert_with(|| RemoteRoom {
                    index: index.to_string(),
                    collection: collection.to_string(),
                    count: 0,
                    filter: None,
                });
                room.count += count;
                if room.filter.is_none() {
                    room.filter = filter.map(str::to_string);
                }
            }
        }
        *self.remote_counts.write() = sums;
    }

    /// Subscribes to the channels of collections with rooms here, unsubscribes from the rest.
    async fn reconcile(&self, subscriber: &mut ConnectionManager) {
        let Some(destination) = self.destination.get().and_then(Weak::upgrade) else {
            return;
        };
        let wanted: HashSet<String> = destination
            .collections()
            .into_iter()
            .map(|(index, collection)| channel_name(&self.prefix, &index, &collection))
            .filter(|channel| shard_of(channel, self.shards) == self.shard)
            // The first shard also carries security changes, heard whatever the rooms.
            .chain((self.shard == 0).then(|| security_channel(&self.prefix)))
            .collect();
        let before = self.subscribed.borrow().len() as u64;
        drop(destination);
        let current = self.subscribed.borrow().clone();
        for channel in wanted.difference(&current) {
            match subscriber.subscribe(channel).await {
                Ok(()) => {
                    self.subscribed.borrow_mut().insert(channel.clone());
                    tracing::info!("cluster: subscribed to {channel}");
                }
                Err(error) => self.lost_redis(&error),
            }
        }
        for channel in current.difference(&wanted) {
            self.subscribed.borrow_mut().remove(channel);
            self.last_seq
                .borrow_mut()
                .retain(|(name, _, _), _| name != channel);
            match subscriber.unsubscribe(channel).await {
                Ok(()) => tracing::info!("cluster: unsubscribed from {channel}"),
                Err(error) => self.lost_redis(&error),
            }
        }
        // Every shard's thread adds its own channels to the one counter.
        let after = self.subscribed.borrow().len() as u64;
        if after >= before {
            self.stats
                .channels
                .fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.stats
                .channels
                .fetch_sub(before - after, Ordering::Relaxed);
        }
    }

    /// While Redis is lost: pings both connections; once both answer, subscribes again.
    async fn recover(&self, publisher: &mut ConnectionManager, subscriber: &mut ConnectionManager) {
        let ping = redis::cmd("PING");
        if let Err(error) = ping.query_async::<()>(publisher).await {
            return self.lost_redis(&error);
        }
        if let Err(error) = ping.query_async::<()>(subscriber).await {
            return self.lost_redis(&error);
        }
        let channels: Vec<String> = self.subscribed.borrow().iter().cloned().collect();
        for channel in &channels {
            if let Err(error) = subscriber.subscribe(channel).await {
                return self.lost_redis(&error);
            }
        }
        self.down.set(false);
        tracing::warn!(
            "cluster: Redis at {} is back; resubscribed to {} channel(s)",
            self.url,
            channels.len()
        );
        // Rooms may have come and gone meanwhile.
        self.reconcile(subscriber).await;
    }
}

/// Events of one channel on their way to Redis together: `<kind><length>\n<body>` each.
struct Batch {
    channel: String,
    frames: Vec<u8>,
    count: u64,
}

impl Batch {
    fn push(&mut self, kind: u8, body: &[u8]) {
        use std::io::Write as _;
        self.frames.push(kind);
        let _ = writeln!(self.frames, "{}", body.len());
        self.frames.extend_from_slice(body);
        self.count += 1;
    }

    /// `SY2 <origin> <epoch> <first> <count>\n` then the frames.
    fn envelope(&self, origin: &str, epoch: u64, first: u64) -> Vec<u8> {
        use std::io::Write as _;
        let mut message = Vec::with_capacity(self.frames.len() + origin.len() + 64);
        let _ = writeln!(message, "SY2 {origin} {epoch} {first} {}", self.count);
        message.extend_from_slice(&self.frames);
        message
    }
}

/// `SY1 <origin> <epoch> <seq> <kind>\n<body>`: one event, for nodes from before batches.
fn single_event(origin: &str, epoch: u64, seq: u64, event: &Queued) -> Vec<u8> {
    use std::io::Write as _;
    let mut message = Vec::with_capacity(event.body.len() + origin.len() + 48);
    let _ = write!(message, "SY1 {origin} {epoch} {seq} ");
    message.push(event.kind);
    message.push(b'\n');
    message.extend_from_slice(&event.body);
    message
}

/// A message's header: who sent it, and which of its sequence numbers it carries.
#[derive(Debug, PartialEq)]
struct Header<'a> {
    origin: &'a str,
    epoch: u64,
    /// The first event's sequence number; the others follow, one each.
    first: u64,
    /// How many events (at least one).
    count: u64,
    /// `SY1`: the one event's kind; `SY2`: none (each frame has its own).
    kind: Option<u8>,
    /// What follows the header's line.
    rest: &'a [u8],
}

/// `SY2 <origin> <epoch> <first> <count>\n<frames>` (a batch: `count` frames
/// `<kind><length>\n<body>`, sequences `first` to `first + count - 1`), or, from nodes before
/// batches, `SY1 <origin> <epoch> <seq> <kind>\n<body>` (one event). Kinds: `d` a document
/// event, `u` a user event, `s` a security change.
fn parse_header(payload: &[u8]) -> Option<Header<'_>> {
    let newline = payload.iter().position(|byte| *byte == b'\n')?;
    let line = std::str::from_utf8(&payload[..newline]).ok()?;
    let rest = &payload[newline + 1..];
    let mut parts = line.split(' ');
    let version = parts.next()?;
    let origin = parts.next()?;
    let epoch = parts.next()?.parse().ok()?;
    let first: u64 = parts.next()?.parse().ok()?;
    let last = parts.next()?;
    if parts.next().is_some() || first == 0 {
        return None;
    }
    let (count, kind) = match version {
        "SY1" => match last.as_bytes() {
            [kind] => (1, Some(*kind)),
            _ => return None,
        },
        "SY2" => (last.parse().ok().filter(|count| *count > 0)?, None),
        _ => return None,
    };
    first.checked_add(count)?;
    Some(Header {
        origin,
        epoch,
        first,
        count,
        kind,
        rest,
    })
}

impl<'a> Header<'a> {
    /// The events, as (kind, body), exactly `count` of them; `None` if the frames do not
    /// add up.
    fn frames(&self) -> Option<Vec<(u8, &'a [u8])>> {
        if let Some(kind) = self.kind {
            return Some(vec![(kind, self.rest)]);
        }
        let mut frames = Vec::with_capacity(self.count.min(BATCH as u64) as usize);
        let mut rest = self.rest;
        while !rest.is_empty() {
            let (&kind, after) = rest.split_first()?;
            let newline = after.iter().position(|byte| *byte == b'\n')?;
            let length: usize = std::str::from_utf8(&after[..newline]).ok()?.parse().ok()?;
            let body = after.get(newline + 1..newline + 1 + length)?;
            frames.push((kind, body));
            rest = &after[newline + 1 + length..];
        }
        (frames.len() as u64 == self.count).then_some(frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_a_stable_hash_of_the_channel_name() {
        // Every node, of every version, must put a channel on the same shard: these values
        // are part of the cluster's wire contract.
        assert_eq!(shard_of("switchyard:i/c", 1), 0);
        let spread: Vec<usize> = (0..8)
            .map(|number| shard_of(&format!("switchyard:i/c{number}"), 2))
            .collect();
        assert_eq!(spread, [0, 1, 0, 1, 0, 1, 0, 1]);
        assert_eq!(
            shard_of("switchyard:orders/eu", 3),
            shard_of("switchyard:orders/eu", 3)
        );
    }

    #[test]
    fn single_event_messages_are_what_older_nodes_read() {
        let event = Queued {
            channel: "switchyard:i/c".to_string(),
            kind: b'd',
            body: b"{}".to_vec(),
        };
        let message = single_event("node-a", 12, 7, &event);
        assert_eq!(message, b"SY1 node-a 12 7 d\n{}");
        let header = parse_header(&message).expect("a header");
        assert_eq!(
            (header.first, header.count, header.kind),
            (7, 1, Some(b'd'))
        );
        assert_eq!(header.rest, b"{}");
    }

    #[test]
    fn single_event_headers_of_older_nodes_parse() {
        let header = parse_header(b"SY1 node-a 12 3 d\n{}").expect("a header");
        assert_eq!(
            (header.origin, header.epoch, header.first, header.count),
            ("node-a", 12, 3, 1)
        );
        assert_eq!(header.frames(), Some(vec![(b'd', &b"{}"[..])]));
        assert!(parse_header(b"SY1 a x 1 d\n{}").is_none());
        assert!(parse_header(b"SY1 a 1 1\n{}").is_none());
        assert!(parse_header(b"SY1 a 1 1 dd\n{}").is_none());
        assert!(parse_header(b"SY1 a 1 0 d\n{}").is_none());
        assert!(parse_header(b"no newline").is_none());
    }

    #[test]
    fn batches_round_trip_and_bad_frames_are_refused() {
        let mut batch = Batch {
            channel: "switchyard:i/c".to_string(),
            frames: Vec::new(),
            count: 0,
        };
        batch.push(b'd', br#"{"a":"x\ny"}"#);
        batch.push(b'u', b"{}");
        batch.push(b'd', b"");
        let message = batch.envelope("node-a", 12, 41);
        assert!(message.starts_with(b"SY2 node-a 12 41 3\n"));
        let header = parse_header(&message).expect("a header");
        assert_eq!(
            (header.origin, header.epoch, header.first, header.count),
            ("node-a", 12, 41, 3)
        );
        assert_eq!(
            header.frames(),
            Some(vec![
                (b'd', &br#"{"a":"x\ny"}"#[..]),
                (b'u', &b"{}"[..]),
                (b'd', &b""[..])
            ])
        );
        // A count that does not match the frames, a length past the end, trailing bytes.
        for bad in [
            &b"SY2 a 1 1 2\nd2\n{}"[..],
            b"SY2 a 1 1 1\nd3\n{}",
            b"SY2 a 1 1 1\nd2\n{}x",
            b"SY2 a 1 1 1\nd\n{}",
        ] {
            let header = parse_header(bad).expect("a header");
            assert_eq!(header.frames(), None, "{}", String::from_utf8_lossy(bad));
        }
        assert!(parse_header(b"SY2 a 1 1 0\n").is_none());
        assert!(parse_header(b"SY2 a 1 1 x\nd2\n{}").is_none());
        assert!(parse_header(b"SY3 a 1 1 1\nd2\n{}").is_none());
        assert!(parse_header(b"SY2 a 1 18446744073709551615 1\nd2\n{}").is_none());
    }
}
