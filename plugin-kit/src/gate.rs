//! Who gets in, decided in the accept loop before a connection is served (issue 19, item 4):
//! connections per source address, new connections per second per address (a token bucket),
//! and a reserve of file descriptors kept for the host's admin listener. Refusals are counted
//! (the `stats` hook's `connectionsRefused`) and logged at most once per interval, with how many
//! lines were left out; accept failures (EMFILE…) are logged the same way.
//!
//! The accept path stays cheap: nothing is looked up when both address limits are 0; otherwise
//! one lock of one of 32 shards (picked by the address's hash) for a map lookup and two integer
//! updates, taken again when the connection ends (about 0.3 µs for both, 0.7–1.1 µs with the
//! reserve's `getrlimit`, on the loaded 2-core bench machine: `benches/gate.rs`). The fd check
//! costs no `/proc` walk: the kernel gives every new descriptor the lowest free number, so an
//! accepted socket numbered `n` proves `0..=n` are all open, and `getrlimit` (one syscall)
//! gives the limit.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use switchyard_plugin_api::errors::{self, KuzzleError};
use switchyard_plugin_api::{StatId, StatsSink};
use tracing::warn;

/// Connections one address may hold on one protocol. One client is one connection on
/// WebSocket and MQTT (a Socket.io client holds one or two while it upgrades, a browser up to
/// six on HTTP), and many users can share an address (an office or a carrier's NAT): 256 lets
/// a large NAT'd site in, while one address holds at most 0.4 % of a 65,536-descriptor process
/// (issue 19: one address held 20,000 and starved everyone).
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: u32 = 256;
/// New connections per second one address may open, sustained. The bucket holds as many as
/// the per-address cap allows (a whole NAT'd site reconnecting after a restart gets in at
/// once); past that, 64 a second bounds the CPU one address spends on handshakes while a
/// client reconnecting every few seconds never meets it. HTTP and Socket.io default to 512
/// (`ConnectionLimits::from_raw_or`): their clients may open a connection per request.
pub const DEFAULT_MAX_CONNECTION_RATE_PER_ADDRESS: u32 = 64;
/// File descriptors the plugins leave free for the host: its admin listener (`/healthz`,
/// `/metrics`), its storage files and logs. A protocol refuses new connections once fewer than
/// this many are left under `RLIMIT_NOFILE`.
pub const DEFAULT_FILE_DESCRIPTOR_RESERVE: u32 = 64;

/// How often a refusal, or a failed accept, may be logged: one line per interval per protocol,
/// carrying how many were left out since the previous line.
pub const LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Shards of the address table: accepts from different addresses rarely share a lock.
const SHARDS: usize = 32;

/// The per-address and descriptor limits of one protocol's listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections per source address (0: unlimited).
    pub max_per_address: u32,
    /// New connections per second per source address (0: unlimited).
    pub rate_per_address: u32,
    /// Descriptors left for the host under `RLIMIT_NOFILE` (0: none).
    pub file_descriptor_reserve: u32,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            rate_per_address: DEFAULT_MAX_CONNECTION_RATE_PER_ADDRESS,
            file_descriptor_reserve: DEFAULT_FILE_DESCRIPTOR_RESERVE,
        }
    }
}

impl ConnectionLimits {
    /// No limit at all (tests, benchmarks).
    pub const UNLIMITED: ConnectionLimits = ConnectionLimits {
        max_per_address: 0,
        rate_per_address: 0,
        file_descriptor_reserve: 0,
    };

    /// The keys as written (`maxConnectionsPerAddress`, `maxConnectionRatePerAddress`,
    /// `fileDescriptorReserve`), the kit's defaults for those left out.
    pub fn from_raw(raw: RawConnectionLimits) -> ConnectionLimits {
        ConnectionLimits::from_raw_or(raw, ConnectionLimits::default())
    }

    /// The same with a protocol's own `defaults` (HTTP opens more connections per client).
    pub fn from_raw_or(raw: RawConnectionLimits, defaults: ConnectionLimits) -> ConnectionLimits {
        ConnectionLimits {
            max_per_address: raw
                .max_connections_per_address
                .unwrap_or(defaults.max_per_address),
            rate_per_address: raw
                .max_connection_rate_per_address
                .unwrap_or(defaults.rate_per_address),
            file_descriptor_reserve: raw
                .file_descriptor_reserve
                .unwrap_or(defaults.file_descriptor_reserve),
        }
    }

    /// The token bucket's size: the per-address cap, so an address may reach it at once, and at
    /// least one second's worth.
    fn burst(&self) -> f64 {
        f64::from(self.rate_per_address.max(self.max_per_address))
    }
}

/// The connection-limit keys as written (see `raw_section!`'s `@connections`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RawConnectionLimits {
    /// `maxConnectionsPerAddress`.
    pub max_connections_per_address: Option<u32>,
    /// `maxConnectionRatePerAddress`.
    pub max_connection_rate_per_address: Option<u32>,
    /// `fileDescriptorReserve`.
    pub file_descriptor_reserve: Option<u32>,
}

/// Why a connection was refused; each protocol answers it with its own bytes
/// (`Service::refuse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The address holds `maxConnectionsPerAddress` connections already.
    TooManyConnections,
    /// The address opened more than `maxConnectionRatePerAddress` in the last second.
    TooManyNewConnections,
    /// Fewer than `fileDescriptorReserve` descriptors are left (or none: EMFILE).
    OutOfFileDescriptors,
}

impl Refusal {
    /// The Kuzzle-style error for a refusal: 429 for the address limits, 503 for descriptors
    /// (logged; the client itself is closed without a word then).
    pub fn error(self) -> KuzzleError {
        match self {
            Refusal::TooManyConnections => errors::NETWORK_ENTRYPOINT_TOO_MANY_CONNECTIONS.error(),
            Refusal::TooManyNewConnections => {
                errors::NETWORK_ENTRYPOINT_TOO_MANY_NEW_CONNECTIONS.error()
            }
            Refusal::OutOfFileDescriptors => errors::NETWORK_ENTRYPOINT_CONNECTIONS_FULL.error(),
        }
    }

    /// The key whose limit was met, for logs.
    pub fn key(self) -> &'static str {
        match self {
            Refusal::TooManyConnections => "maxConnectionsPerAddress",
            Refusal::TooManyNewConnections => "maxConnectionRatePerAddress",
            Refusal::OutOfFileDescriptors => "fileDescriptorReserve",
        }
    }
}

/// One line per interval: [`LogLimiter::allow`] says when one may be written and how many were
/// left out before it.
#[derive(Debug)]
pub struct LogLimiter {
    /// When the last line was written, and the events left out since.
    state: Mutex<(Option<Instant>, u64)>,
    /// The shortest time between two lines.
    interval: Duration,
}

impl LogLimiter {
    /// At most one line per `interval`.
    pub fn new(interval: Duration) -> LogLimiter {
        LogLimiter {
            state: Mutex::new((None, 0)),
            interval,
        }
    }

    /// One event: `Some(left_out)` when it may be logged now (with the count of events not
    /// logged since the last line), `None` when it is only counted.
    pub fn allow(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock();
        let (last, left_out) = &mut *state;
        match last {
            Some(at) if now.saturating_duration_since(*at) < self.interval => {
                *left_out += 1;
                None
            }
            _ => {
                *last = Some(now);
                Some(std::mem::take(left_out))
            }
        }
    }
}

/// One address's entry.
#[derive(Debug)]
struct Entry {
    /// Its connections open now.
    open: u32,
    /// New connections it may open now (the token bucket).
    tokens: f64,
    /// When `tokens` was last refilled.
    refilled: Instant,
}

impl Entry {
    /// Adds what `rate` a second earned since the last refill, up to `burst`.
    fn refill(&mut self, now: Instant, rate: u32, burst: f64) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(rate)).min(burst);
        self.refilled = now;
    }

    /// True when the entry says nothing a fresh one would not: no connection, a full bucket.
    fn is_idle(&self, now: Instant, rate: u32, burst: f64) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.open == 0 && (rate == 0 || self.tokens + elapsed * f64::from(rate) >= burst)
    }
}

/// One shard of the address table.
#[derive(Debug, Default)]
struct Shard {
    /// Addresses with a connection open or a bucket not yet full.
    addresses: HashMap<IpAddr, Entry>,
    /// The size past which idle entries are swept (doubles with the live ones).
    sweep_at: usize,
}

/// One listener's gate: its limits, the address table, refusal counts and log limiters.
#[derive(Debug)]
pub struct Gate {
    /// What is enforced.
    limits: ConnectionLimits,
    /// Address → entry, sharded by the address's hash.
    shards: Box<[Mutex<Shard>]>,
    /// Hashes addresses to shards.
    hasher: std::collections::hash_map::RandomState,
    /// Connections refused since start (the `stats` hook).
    refused: AtomicU64,
    /// Refusals being written now: past [`MAX_REFUSALS_IN_PROGRESS`], a refused connection is
    /// closed without an answer, so a flood cannot hold descriptors through its refusals.
    refusals_in_progress: AtomicUsize,
    /// One refusal line per interval.
    refusal_log: LogLimiter,
    /// One accept-failure line per interval.
    accept_failure_log: LogLimiter,
}

/// Refusals a listener writes at once; more are closed without a word.
pub const MAX_REFUSALS_IN_PROGRESS: usize = 64;

/// How long a refused client is given to send its request and read the answer.
pub const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);

impl Gate {
    /// A gate enforcing `limits`.
    pub fn new(limits: ConnectionLimits) -> Gate {
        Gate {
            limits,
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            refused: AtomicU64::new(0),
            refusals_in_progress: AtomicUsize::new(0),
            refusal_log: LogLimiter::new(LOG_INTERVAL),
            accept_failure_log: LogLimiter::new(LOG_INTERVAL),
        }
    }

    /// What is enforced.
    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }

    /// Admits or refuses the connection `socket` just accepted from `address`. The returned
    /// [`Admitted`] must live as long as the connection: dropping it gives the address's slot
    /// back.
    pub fn admit(
        self: &Arc<Self>,
        socket: &impl AsRawFd,
        address: IpAddr,
    ) -> Result<Admitted, Refusal> {
        if self.limits.file_descriptor_reserve > 0 {
            let limit = open_file_limit();
            if past_reserve(
                socket.as_raw_fd(),
                limit,
                self.limits.file_descriptor_reserve,
            ) {
                return Err(Refusal::OutOfFileDescriptors);
            }
        }
        self.admit_address(address, Instant::now())
    }

    /// The address limits alone, at `now` (tests drive the clock).
    fn admit_address(self: &Arc<Self>, address: IpAddr, now: Instant) -> Result<Admitted, Refusal> {
        let limits = self.limits;
        if limits.max_per_address == 0 && limits.rate_per_address == 0 {
            return Ok(Admitted {
                gate: None,
                address,
            });
        }
        let address = address.to_canonical();
        let burst = limits.burst();
        let mut shard = self.shard(address).lock();
        if shard.addresses.len() >= shard.sweep_at.max(64) {
            shard
                .addresses
                .retain(|_, entry| !entry.is_idle(now, limits.rate_per_address, burst));
            shard.sweep_at = shard.addresses.len() * 2;
        }
        let entry = shard.addresses.entry(address).or_insert(Entry {
            open: 0,
            tokens: burst,
            refilled: now,
        });
        if limits.max_per_address != 0 && entry.open >= limits.max_per_address {
            return Err(Refusal::TooManyConnections);
        }
        if limits.rate_per_address != 0 {
            entry.refill(now, limits.rate_per_address, burst);
            if entry.tokens < 1.0 {
                return Err(Refusal::TooManyNewConnections);
            }
            entry.tokens -= 1.0;
        }
        entry.open += 1;
        Ok(Admitted {
            gate: Some(Arc::clone(self)),
            address,
        })
    }

    fn shard(&self, address: IpAddr) -> &Mutex<Shard> {
        &self.shards[self.hasher.hash_one(address) as usize % SHARDS]
    }

    /// A connection of `address` ended.
    fn release(&self, address: IpAddr) {
        let limits = self.limits;
        let now = Instant::now();
        let mut shard = self.shard(address).lock();
        if let Some(entry) = shard.addresses.get_mut(&address) {
            entry.open = entry.open.saturating_sub(1);
            if entry.is_idle(now, limits.rate_per_address, limits.burst()) {
                shard.addresses.remove(&address);
            }
        }
    }

    /// Counts a refusal and logs it, at most one line per interval.
    pub fn refused(&self, address: IpAddr, refusal: Refusal) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        if let Some(left_out) = self.refusal_log.allow(Instant::now()) {
            warn!(
                address = %address,
                limit = refusal.key(),
                suppressed = left_out,
                "connection refused: {}",
                refusal.error().message
            );
        }
    }

    /// Logs a failed accept, at most one line per interval.
    pub fn accept_failed(&self, error: &std::io::Error) {
        if let Some(left_out) = self.accept_failure_log.allow(Instant::now()) {
            warn!(error = %error, suppressed = left_out, "accept failed");
        }
    }

    /// Connections refused since start.
    pub fn refused_count(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Addresses in the table now (tests).
    pub fn tracked_addresses(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().addresses.len())
            .sum()
    }

    /// Takes a slot to write a refusal, if fewer than [`MAX_REFUSALS_IN_PROGRESS`] are being
    /// written; the slot is given back when the returned value drops.
    pub fn refusal_slot(self: &Arc<Self>) -> Option<RefusalSlot> {
        let taken = self.refusals_in_progress.fetch_add(1, Ordering::Relaxed);
        let slot = RefusalSlot {
            gate: Arc::clone(self),
        };
        (taken < MAX_REFUSALS_IN_PROGRESS).then_some(slot)
    }

    /// Writes `connectionsRefused` into the `stats` hook's sink.
    pub fn report_stats(&self, sink: &mut StatsSink<'_>) {
        sink.record(StatId::CONNECTIONS_REFUSED, self.refused_count());
    }
}

/// A refusal being written (see [`Gate::refusal_slot`]).
#[derive(Debug)]
pub struct RefusalSlot {
    gate: Arc<Gate>,
}

impl Drop for RefusalSlot {
    fn drop(&mut self) {
        self.gate
            .refusals_in_progress
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// An admitted connection's place in its address's count, given back on drop: held by the
/// connection's task for as long as it runs.
#[derive(Debug)]
pub struct Admitted {
    /// `None` when no address limit applies (nothing to give back).
    gate: Option<Arc<Gate>>,
    /// The client's address (canonical: IPv4-mapped IPv6 as IPv4).
    address: IpAddr,
}

impl Admitted {
    /// The client's address.
    pub fn address(&self) -> IpAddr {
        self.address
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(gate) = &self.gate {
            gate.release(self.address);
        }
    }
}

/// True when the socket numbered `fd` leaves fewer than `reserve` descriptors free under
/// `limit`: numbers `0..=fd` are all taken (the kernel hands out the lowest free one), so at
/// most `limit - fd - 1` are left.
fn past_reserve(fd: i32, limit: u64, reserve: u32) -> bool {
    let taken = u64::try_from(fd).unwrap_or(0) + 1;
    taken + u64::from(reserve) > limit
}

/// The soft `RLIMIT_NOFILE`, read on every accept: one syscall, about 0.5 µs on the 2-core
/// bench machine (`cargo bench -p switchyard-plugin-kit --bench gate`), where walking
/// `/proc/self/fd` costs 23 µs with 16 descriptors open and 1 ms with 1,000. Not cached, so a
/// limit lowered from outside (`prlimit`) holds from the next accept. Unlimited reads as
/// `u64::MAX`.
pub fn open_file_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
