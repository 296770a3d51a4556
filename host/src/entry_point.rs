//! Kuzzle's *entry point*: connections, request admission, and shutdown state.
//!
//! Plugins reach it through the host API (`plugin/host_api.rs`), on their own threads. Requests
//! are admitted as Kuzzle's funnel does: while fewer than `concurrentRequests` are in flight and
//! nothing is waiting, a request runs at once on the calling thread (every action is in-memory
//! and short, and this saves a thread wake-up per request); otherwise it waits in a bounded
//! queue for an API worker thread; when the queue is full it is refused with
//! `api.process.overloaded`.
//!
//! Invariant: every accepted `execute` calls its callback exactly once — from the worker that
//! ran it, or at once when it is refused (overloaded, shutting down).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use abi_stable::std_types::RStr;
use parking_lot::RwLock;
use switchyard_plugin_api::abi::{FfiCallback, FfiResponse};
use switchyard_plugin_api::errors::{self, KuzzleError};
use switchyard_plugin_api::{json, ConnectionId};

use crate::api::{self, Api};
use crate::config::Config;
use crate::plugin::registry::ProtocolSlot;
use crate::realtime::{Broadcast, Departure, Realtime};

/// A map keyed by connection id. Ids are sequential and never chosen by clients, so a
/// fixed mixer spreads them as well as SipHash does, at a fraction of its cost (three lookups
/// per HTTP request).
pub type ConnectionMap<V> = HashMap<ConnectionId, V, ConnectionHash>;

/// The hasher of [`ConnectionMap`].
pub type ConnectionHash = BuildHasherDefault<IdHasher>;

/// Hashes one `u64` (a connection id) with splitmix64's finalizer: every bit of the id moves
/// every bit of the hash, the low ones included (the table indexes by the low bits, and the
/// ids of one shard share their low four).
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only ids are hashed; kept correct for any input anyway.
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        let mut mixed = (id ^ (id >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.0 = mixed ^ (mixed >> 31);
    }
}

/// A client connection a protocol declared.
#[derive(Debug)]
pub struct Connection {
    /// The protocol that owns it (index into the protocol list).
    pub protocol: usize,
    /// What the protocol told about the client, in one allocation (an HTTP request declares a
    /// connection): `{"ips":[…],"headers":{…}}`, the socket's peer first in `ips`.
    pub context: Box<str>,
}

/// Connections in shards, so protocols declaring and removing connections on several threads
/// (an HTTP request is a connection) do not all queue on one lock. Ids are sequential, so
/// `id % SHARDS` spreads them evenly.
struct Connections {
    shards: [RwLock<ConnectionMap<Connection>>; CONNECTION_SHARDS],
}

const CONNECTION_SHARDS: usize = 16;

impl Connections {
    fn new() -> Connections {
        // Sized up front: with one HTTP connection per request, a shard that grows and
        // shrinks around a handful of entries would otherwise rehash again and again.
        Connections {
            shards: std::array::from_fn(|_| {
                RwLock::new(HashMap::with_capacity_and_hasher(
                    64,
                    ConnectionHash::default(),
                ))
            }),
        }
    }

    fn shard(&self, id: ConnectionId) -> &RwLock<ConnectionMap<Connection>> {
        &self.shards[(id.0 % CONNECTION_SHARDS as u64) as usize]
    }
}

/// A request waiting for an API worker.
struct Job {
    connection: ConnectionId,
    request: String,
    callback: FfiCallback,
}

/// Host-wide state shared by the host API, the API workers and the start-up code.
pub struct EntryPoint {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Every enabled protocol, set once before any `init` runs.
    protocols: OnceLock<Box<[Arc<ProtocolSlot>]>>,
    /// Declared connections.
    connections: Connections,
    /// The next connection id (never reused; starts at 1).
    next_connection: AtomicU64,
    /// True once shutdown has begun: new requests are refused with 503.
    shutting_down: AtomicBool,
    /// Requests accepted whose callback has not run yet.
    in_flight: AtomicUsize,
    /// Requests in the queue, not yet taken by a worker (the queue's own length takes its
    /// lock, on every request).
    queued: AtomicUsize,
    /// The bounded request queue.
    queue: flume::Sender<Job>,
    /// Kept so workers can be started after the entry point is shared.
    queue_receiver: flume::Receiver<Job>,
    /// Controllers and actions.
    pub api: Api,
    /// Rooms, channels and subscriptions.
    pub realtime: Realtime,
    /// When the host started.
    pub started_at: Instant,
}

impl std::fmt::Debug for EntryPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryPoint").finish_non_exhaustive()
    }
}

impl EntryPoint {
    /// A new entry point with an empty queue and no workers yet.
    pub fn new(config: Arc<Config>) -> Arc<Self> {
        let (queue, queue_receiver) = flume::bounded(config.request_queue_size);
        Arc::new(EntryPoint {
            config,
            protocols: OnceLock::new(),
            connections: Connections::new(),
            next_connection: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            queued: AtomicUsize::new(0),
            queue,
            queue_receiver,
            api: Api::new(),
            realtime: Realtime::new(),
            started_at: Instant::now(),
        })
    }

    /// Sets the protocol list (once, before any `init`).
    pub fn set_protocols(&self, protocols: Vec<Arc<ProtocolSlot>>) {
        let _ = self.protocols.set(protocols.into_boxed_slice());
    }

    /// The enabled protocols.
    pub fn protocols(&self) -> &[Arc<ProtocolSlot>] {
        self.protocols.get().map(|list| &list[..]).unwrap_or(&[])
    }

    /// Starts `count` API worker threads.
    pub fn start_workers(self: &Arc<Self>, count: usize) -> std::io::Result<()> {
        for worker in 0..count {
            let entry = Arc::clone(self);
            let receiver = self.queue_receiver.clone();
            std::thread::Builder::new()
                .name(format!("api-{worker}"))
                .spawn(move || {
                    while let Ok(job) = receiver.recv() {
                        entry.queued.fetch_sub(1, Ordering::AcqRel);
                        entry.run(job);
                    }
                })?;
        }
        Ok(())
    }

    /// Declares a connection for protocol `protocol`.
    pub fn new_connection(&self, protocol: usize, ips: &[RStr<'_>], headers: &str) -> ConnectionId {
        let id = ConnectionId(self.next_connection.fetch_add(1, Ordering::Relaxed));
        let mut context = String::with_capacity(
            24 + headers.len() + ips.iter().map(|ip| ip.len() + 3).sum::<usize>(),
        );
        context.push_str("{\"ips\":[");
        for (index, ip) in ips.iter().enumerate() {
            if index > 0 {
                context.push(',');
            }
            json::push_str(&mut context, ip.as_str());
        }
        context.push_str("],\"headers\":");
        context.push_str(if headers.is_empty() { "{}" } else { headers });
        context.push('}');
        let connection = Connection {
            protocol,
            context: context.into_boxed_str(),
        };
        self.connections.shard(id).write().insert(id, connection);
        id
    }

    /// Forgets a connection: it leaves every room (its protocol hears `leave_channel` for each
    /// channel, the rooms' other members get user "out" notifications). Unknown ids are ignored.
    pub fn remove_connection(&self, id: ConnectionId) {
        let Some(connection) = self.connections.shard(id).write().remove(&id) else {
            return;
        };
        for departure in self.realtime.remove_connection(id) {
            self.complete_departure(id, connection.protocol, &departure);
        }
    }

    /// Tells the plugins about a connection leaving a room.
    pub fn complete_departure(&self, id: ConnectionId, protocol: usize, departure: &Departure) {
        if let Some(protocol) = self.protocols().get(protocol) {
            for channel in &departure.channels {
                protocol.leave_channel(channel, id);
            }
        }
        if let Some(notification) = &departure.user_notification {
            self.broadcast(notification);
        }
    }

    /// Hands a notification to every protocol (each delivers to its own members).
    pub fn broadcast(&self, notification: &Broadcast) {
        let channels: Vec<RStr<'_>> = notification
            .channels
            .iter()
            .map(|channel| RStr::from_str(channel))
            .collect();
        for protocol in self.protocols() {
            protocol.broadcast(&channels, &notification.payload);
        }
    }

    /// How many connections are declared.
    pub fn connection_count(&self) -> usize {
        self.connections
            .shards
            .iter()
            .map(|shard| shard.read().len())
            .sum()
    }

    /// The protocol owning a connection.
    pub fn connection_protocol(&self, id: ConnectionId) -> Option<usize> {
        self.connections
            .shard(id)
            .read()
            .get(&id)
            .map(|c| c.protocol)
    }

    /// Every declared connection with its protocol.
    pub fn connection_ids(&self) -> Vec<(ConnectionId, usize)> {
        let mut ids = Vec::new();
        for shard in &self.connections.shards {
            ids.extend(
                shard
                    .read()
                    .iter()
                    .map(|(id, connection)| (*id, connection.protocol)),
            );
        }
        ids
    }

    /// True once shutdown began.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Starts refusing new requests.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    /// Waits until no request is in flight, or `deadline` passes. Returns how many remain.
    pub fn drain(&self, deadline: Duration) -> usize {
        let until = Instant::now() + deadline;
        loop {
            let remaining = self.in_flight.load(Ordering::Acquire);
            if remaining == 0 || Instant::now() >= until {
                return remaining;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Runs or queues a request; `callback` runs exactly once (see the module's invariant).
    pub fn execute(&self, connection: ConnectionId, request: &str, callback: FfiCallback) {
        if self.is_shutting_down() {
            return answer_refusal(
                request,
                callback,
                errors::NETWORK_ENTRYPOINT_SHUTTING_DOWN.error(),
            );
        }
        let running = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if running < self.config.concurrent_requests && self.queued.load(Ordering::Acquire) == 0 {
            let protocol = self.connection_protocol(connection);
            let answer = api::handle(self, connection, protocol, request);
            deliver(callback, &answer);
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let job = Job {
            connection,
            request: request.to_owned(),
            callback,
        };
        self.queued.fetch_add(1, Ordering::AcqRel);
        if let Err(error) = self.queue.try_send(job) {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            let (job, refusal) = match error {
                flume::TrySendError::Full(job) => (job, errors::API_PROCESS_OVERLOADED.error()),
                flume::TrySendError::Disconnected(job) => {
                    (job, errors::NETWORK_ENTRYPOINT_SHUTTING_DOWN.error())
                }
            };
            answer_refusal(&job.request, job.callback, refusal);
        }
    }

    /// Runs one queued request on an API worker and answers it.
    fn run(&self, job: Job) {
        let protocol = self.connection_protocol(job.connection);
        let answer = api::handle(self, job.connection, protocol, &job.request);
        deliver(job.callback, &answer);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Answers a request that will not run, with the request id when it can be read cheaply.
fn answer_refusal(request: &str, callback: FfiCallback, error: KuzzleError) {
    let answer = api::Answer::refusal(request, error);
    deliver(callback, &answer);
}

fn deliver(callback: FfiCallback, answer: &api::Answer) {
    let response = FfiResponse {
        status: answer.status,
        request_id: RStr::from_str(&answer.request_id),
        content: RStr::from_str(&answer.content),
        headers: RStr::from_str("{}"),
    };
    (callback.call)(callback.context, response);
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn ids_of_one_shard_spread_over_the_low_bits() {
        // The ids a shard holds (`id % 16` fixed) must still reach every bucket of a table.
        let hasher = ConnectionHash::default();
        let buckets: std::collections::HashSet<u64> = (0..4096u64)
            .map(|n| hasher.hash_one(ConnectionId(n * CONNECTION_SHARDS as u64 + 3)) & 255)
            .collect();
        assert_eq!(buckets.len(), 256);
    }
}
