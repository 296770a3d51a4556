//! Per-user rate limits across the cluster (`[cluster] rateLimitInterval`): each node counts its
//! own requests (the security service's `UserRateLimiter`, lock-free, no Redis on a request's
//! path), and the `cluster-limits` thread shares them every `rateLimitInterval` ms in one
//! pipeline on the first shard's Redis:
//!
//! ```text
//! HINCRBY <prefix>rate:<second> <kuid> <requests admitted here since the last share>   (each)
//! PEXPIRE <prefix>rate:<second> 3000
//! HGETALL <prefix>rate:<second>
//! ```
//!
//! The hash holds every node's requests of the current second per user; what is not this
//! node's becomes part of the user's limit here until the next share. The tolerance (README,
//! "Cluster"): in one second a user is admitted at most `rateLimit` plus what the other nodes
//! admitted for them after their last share this node read — about one interval's worth of
//! that user's traffic on each other node; a burst reaching every node within the same
//! interval at the start of a second may be admitted up to N × `rateLimit`. Seconds are the
//! nodes' wall clocks (keep them synchronised: skew adds to the tolerance). While Redis is
//! away each node counts only its own (what it admitted meanwhile is never shared).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use switchyard_security::limits::UserRateLimiter;

use crate::config::ClusterConfig;

/// How long a second's hash lives in Redis (only the current second's is read).
const HASH_TTL_MS: i64 = 3_000;
/// Logs a failed share at most once per this long.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The running `cluster-limits` thread's counters.
#[derive(Debug, Default)]
pub struct RateLimitSharing {
    /// Shares completed (this node's counts written and the cluster's read).
    shares: AtomicU64,
    /// Shares that failed (Redis away or too slow).
    failures: AtomicU64,
}

impl RateLimitSharing {
    /// The counters, for `server:info` (`serverInfo.kuzzle.cluster.rateLimits`).
    pub fn info(&self) -> serde_json::Value {
        serde_json::json!({
            "shares": self.shares.load(Ordering::Relaxed),
            "failures": self.failures.load(Ordering::Relaxed),
        })
    }
}

/// Starts the `cluster-limits` thread sharing `limiter`'s counts through `config.redis`.
/// It connects by itself (and again after a loss); it never stops the node.
pub fn start(
    config: &ClusterConfig,
    limiter: Arc<UserRateLimiter>,
) -> Result<Arc<RateLimitSharing>, String> {
    let sharing = Arc::new(RateLimitSharing::default());
    let counters = Arc::clone(&sharing);
    let config = config.clone();
    std::thread::Builder::new()
        .name("cluster-limits".to_string())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    tracing::error!("cluster: cannot start the rate limit sharing runtime: {error}; each node counts its own requests");
                    return;
                }
            };
            runtime.block_on(run(config, limiter, counters));
        })
        .map_err(|error| format!("cannot start the cluster-limits thread: {error}"))?;
    Ok(sharing)
}

/// The thread's loop: connect, then share every interval.
async fn run(config: ClusterConfig, limiter: Arc<UserRateLimiter>, sharing: Arc<RateLimitSharing>) {
    let key_prefix = format!("{}rate:", config.channel_prefix);
    let mut tick = tokio::time::interval(Duration::from_millis(config.rate_limit_interval));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut connection: Option<ConnectionManager> = None;
    let mut last_log: Option<Instant> = None;
    let mut fail = |sharing: &RateLimitSharing, error: &dyn std::fmt::Display| {
        sharing.failures.fetch_add(1, Ordering::Relaxed);
        if last_log.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            last_log = Some(Instant::now());
            tracing::warn!(
                "cluster: cannot share rate limit counts through Redis at {}: {error}; each node counts its own requests until it returns",
                config.redis
            );
        }
    };
    loop {
        tick.tick().await;
        let Some(redis) = connection.as_mut() else {
            match connect(&config).await {
                Ok(manager) => connection = Some(manager),
                Err(error) => fail(&sharing, &error),
            }
            continue;
        };
        let second = limiter.current_second();
        let key = format!("{key_prefix}{second}");
        let unshared = limiter.unshared(second);
        let mut pipe = redis::pipe();
        for count in &unshared {
            pipe.hincr(&key, &*count.kuid, count.count).ignore();
        }
        if !unshared.is_empty() {
            pipe.pexpire(&key, HASH_TTL_MS).ignore();
        }
        pipe.hgetall(&key);
        match pipe
            .query_async::<(std::collections::HashMap<String, u64>,)>(redis)
            .await
        {
            Ok((totals,)) => {
                limiter.set_cluster_totals(second, &totals);
                sharing.shares.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => fail(&sharing, &error),
        }
    }
}

/// One connection to `config.redis` that reconnects by itself.
async fn connect(config: &ClusterConfig) -> Result<ConnectionManager, String> {
    let client = redis::Client::open(config.redis.as_str()).map_err(|error| error.to_string())?;
    let settings = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(config.connect_timeout)))
        .set_response_timeout(Some(Duration::from_millis(config.response_timeout)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(config.retry_interval));
    ConnectionManager::new_with_config(client, settings)
        .await
        .map_err(|error| error.to_string())
}
