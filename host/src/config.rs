//! `config.toml`: the file as written (serde) and the validated configuration the host runs with.
//!
//! Every `[server.protocols.<name>]` section enables protocol `<name>`. The host reads its own
//! keys there (`enabled`, `library`); everything else is the plugin's, handed over as JSON.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Protocol names a section may not take: Kuzzle's always-present embedded protocol.
pub const RESERVED_PROTOCOL_NAMES: &[&str] = &["internal"];

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from (for messages).
    pub path: PathBuf,
    /// Where libraries named without a path are looked up, in order.
    pub plugin_dirs: Vec<PathBuf>,
    /// The document store's folder (`server.dataDir`, relative to the config file's folder).
    pub data_dir: PathBuf,
    /// `server.maxRequestSize`, in bytes.
    pub max_request_size: u64,
    /// How long one protocol's `init` may take.
    pub init_timeout: Duration,
    /// How long in-flight requests get to finish on shutdown.
    pub shutdown_timeout: Duration,
    /// Requests run at once on the calling protocol's thread; past this many in flight, requests
    /// wait in the queue for an API worker (Kuzzle's `limits.concurrentRequests`). 0: always queue.
    pub concurrent_requests: usize,
    /// Bound of the request queue; past it, requests get `api.process.overloaded`.
    pub request_queue_size: usize,
    /// How long a request that fans out may wait for congested protocols to drain.
    pub pacing_timeout: Duration,
    /// Requests waiting for congested protocols to drain; past it, 503.
    pub pacing_queue_size: usize,
    /// Threads of the blocking pool (actions that touch the disk or hash passwords).
    pub blocking_threads: usize,
    /// Bound of the blocking pool's queue; past it, requests get `api.process.overloaded`.
    pub blocking_queue_size: usize,
    /// Panics after which a protocol is disabled (0: never).
    pub hook_panic_limit: u32,
    /// `[server.admin]`: the admin listener (metrics, health, admin page); `None`: off.
    pub admin: Option<AdminConfig>,
    /// `[limits]`: Kuzzle's limits, and Switchyard's own beside them.
    pub limits: Limits,
    /// `[cluster]`: realtime shared with other nodes through Redis; `None`: a single node.
    pub cluster: Option<ClusterConfig>,
    /// `[storage]`: the document store, embedded (in `data_dir`) or PostgreSQL.
    pub storage: StorageConfig,
    /// Enabled protocols, in file order.
    pub protocols: Vec<ProtocolConfig>,
    /// The whole `[server]` table as JSON (given to every plugin, as Kuzzle does).
    pub server_json: String,
    /// `[security]`: tokens, API keys, password hashing.
    pub security: SecurityConfig,
}

/// `[security]` (Kuzzle's `security` keys, same names; `argon2` is Switchyard's).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct SecurityConfig {
    /// `[security.authToken]`.
    pub auth_token: AuthTokenConfig,
    /// `[security.apiKey]`.
    pub api_key: ApiKeyConfig,
    /// `[security.argon2]`: new passwords' Argon2id cost (OWASP's recommendation by default).
    pub argon2: Option<switchyard_security::password::Argon2Params>,
    /// Profiles `security:createRestrictedUser` assigns (Kuzzle's default: `["default"]`).
    pub restricted_profile_ids: Option<Vec<String>>,
    /// `[security.loginLockout]`: failed logins per username and per source address.
    pub login_lockout: LoginLockoutConfig,
}

/// `[security.loginLockout]` (Switchyard's; Kuzzle has none): after `maxFailures` wrong
/// passwords within `failureWindow` ms for one username, or from one source address, logins
/// for it are refused for `lockoutDuration` ms (429 `api.process.too_many_logins_requests`,
/// without checking the password). `maxFailures = 0` turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct LoginLockoutConfig {
    /// Wrong passwords that lock a username or an address (0: never).
    pub max_failures: u32,
    /// Milliseconds the failures are counted over.
    pub failure_window: i64,
    /// Milliseconds a lockout lasts.
    pub lockout_duration: i64,
}

impl Default for LoginLockoutConfig {
    /// 10 failures within 5 minutes lock for 15 minutes.
    fn default() -> Self {
        let crate_default = switchyard_security::limits::LockoutConfig::default();
        LoginLockoutConfig {
            max_failures: crate_default.max_failures,
            failure_window: crate_default.window_ms,
            lockout_duration: crate_default.lockout_ms,
        }
    }
}

impl LoginLockoutConfig {
    /// The lockout's settings, `None` when it is off.
    pub fn settings(&self) -> Option<switchyard_security::limits::LockoutConfig> {
        (self.max_failures > 0).then_some(switchyard_security::limits::LockoutConfig {
            max_failures: self.max_failures,
            window_ms: self.failure_window,
            lockout_ms: self.lockout_duration,
        })
    }
}

/// `[security.authToken]`: Kuzzle's token settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct AuthTokenConfig {
    /// `HS256`, `HS384` or `HS512`.
    pub algorithm: String,
    /// Default token lifetime: milliseconds, or a string such as `"1h"`; -1 never expires.
    pub expires_in: serde_json::Value,
    /// Milliseconds a refreshed token stays valid.
    pub grace_period: i64,
    /// Longest lifetime a client may ask for (milliseconds; -1: no limit).
    #[serde(rename = "maxTTL")]
    pub max_ttl: i64,
    /// The signing secret; unset, one is generated once and kept in the internal index.
    pub secret: Option<switchyard_security::secret::Secret>,
}

impl Default for AuthTokenConfig {
    fn default() -> Self {
        AuthTokenConfig {
            algorithm: "HS256".into(),
            expires_in: serde_json::Value::String("1h".into()),
            grace_period: 1000,
            max_ttl: -1,
            secret: None,
        }
    }
}

/// `[security.apiKey]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ApiKeyConfig {
    /// Longest API key lifetime (milliseconds; -1: no limit).
    #[serde(rename = "maxTTL")]
    pub max_ttl: i64,
}

impl Default for ApiKeyConfig {
    fn default() -> Self {
        ApiKeyConfig { max_ttl: -1 }
    }
}

impl SecurityConfig {
    /// The token service's settings.
    pub fn token_config(&self) -> switchyard_security::token::TokenConfig {
        use switchyard_security::token::{ExpiresIn, TokenConfig};
        let cap = |ms: i64| (ms >= 0).then_some(ms);
        TokenConfig {
            algorithm: self.auth_token.algorithm.clone(),
            expires_in: ExpiresIn::parse(&self.auth_token.expires_in),
            grace_period_ms: self.auth_token.grace_period.max(0),
            max_ttl_ms: cap(self.auth_token.max_ttl),
            api_key_max_ttl_ms: cap(self.api_key.max_ttl),
        }
    }

    /// Every problem, with its key.
    fn problems(&self) -> Vec<String> {
        use switchyard_security::token::ExpiresIn;
        let mut problems = Vec::new();
        if !["HS256", "HS384", "HS512"].contains(&self.auth_token.algorithm.as_str()) {
            problems.push(format!(
                "security.authToken.algorithm: \"{}\" is not HS256, HS384 or HS512",
                self.auth_token.algorithm
            ));
        }
        if let ExpiresIn::Millis(ms) = ExpiresIn::parse(&self.auth_token.expires_in) {
            if ms <= 0 {
                problems.push(format!(
                    "security.authToken.expiresIn: {} is not a duration (milliseconds, a string such as \"1h\", or -1)",
                    self.auth_token.expires_in
                ));
            }
        }
        if let Some(params) = &self.argon2 {
            if switchyard_security::password::StoredPassword::hash(
                &switchyard_security::secret::Secret::new("check"),
                params,
            )
            .is_err()
            {
                problems.push("security.argon2: parameters out of Argon2's range".to_string());
            }
        }
        let lockout = &self.login_lockout;
        if lockout.max_failures > 0 {
            for (key, value) in [
                ("failureWindow", lockout.failure_window),
                ("lockoutDuration", lockout.lockout_duration),
            ] {
                if value <= 0 {
                    problems.push(format!(
                        "security.loginLockout.{key}: {value} is not a positive number of milliseconds"
                    ));
                }
            }
        }
        problems
    }
}

/// One enabled `[server.protocols.<name>]` section.
#[derive(Debug, Clone)]
pub struct ProtocolConfig {
    /// The section's name: the protocol's name.
    pub name: String,
    /// How to find the library.
    pub library: LibrarySpec,
    /// The section without the host's keys, as JSON: the plugin's own configuration.
    pub config_json: String,
}

/// Where a protocol's library is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LibrarySpec {
    /// A library name (`websocket`), looked up as `lib<name>.so` in the plugin folders.
    Named(String),
    /// An explicit path (relative paths are relative to the config file).
    Path(PathBuf),
}

/// Everything wrong with a configuration file.
#[derive(Debug)]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// One line per problem, each naming the key.
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.problems.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "invalid configuration {}: {problem}",
                self.path.display()
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// `[server.admin]`: where the admin listener (metrics, health, admin page) listens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct AdminConfig {
    /// `false` keeps the section but turns the listener off.
    pub enabled: bool,
    /// The address to bind: loopback only (`config.rs` refuses others: the admin page has no
    /// login).
    pub host: String,
    /// The port (0: any free port).
    pub port: u16,
}

impl Default for AdminConfig {
    fn default() -> AdminConfig {
        AdminConfig {
            enabled: true,
            host: "127.0.0.1".to_string(),
            port: 7510,
        }
    }
}

/// `[cluster]`: several nodes share realtime through Redis (README, "Cluster").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ClusterConfig {
    /// `false` keeps the section but runs a single node.
    pub enabled: bool,
    /// The Redis URL (`redis://host:port/db`): room counts, and the first shard of channels.
    pub redis: String,
    /// More Redis URLs to spread channels over (by a stable hash of the channel's name, so
    /// every node must list the same ones in the same order); empty: every channel on `redis`.
    pub shards: Vec<String>,
    /// This node's name, unique in the cluster; generated (`node-<8 hex>`) when absent.
    pub node_name: Option<String>,
    /// Milliseconds one connection attempt to Redis may take (start-up and reconnects).
    pub connect_timeout: u64,
    /// Milliseconds one Redis command may take.
    pub response_timeout: u64,
    /// Milliseconds between checks while Redis is unreachable.
    pub retry_interval: u64,
    /// Events waiting to be published; past it, new ones are dropped (and counted).
    pub outgoing_queue_size: usize,
    /// Milliseconds between two publications while events keep coming (one Redis message per
    /// collection for what piled up meanwhile; a lone event goes at once): longer carries more
    /// events per message, so receiving nodes write more frames per `writev`, at the price of
    /// up to this much more latency between nodes (BENCHMARKS.md, issue 16). 0 to 1000.
    pub flush_interval: u64,
    /// Milliseconds between two writes of this node's room counts to Redis (and reads of the
    /// others'); they expire after three.
    pub heartbeat_interval: u64,
    /// Prefix of the Redis channels (`<prefix><index>/<collection>`).
    pub channel_prefix: String,
    /// Milliseconds between two shares of this node's per-user request counts (rate limits
    /// held cluster-wide, `cluster/rate_limits.rs`); 0: each node counts its own, as Kuzzle.
    pub rate_limit_interval: u64,
}

impl Default for ClusterConfig {
    fn default() -> ClusterConfig {
        ClusterConfig {
            enabled: true,
            redis: "redis://127.0.0.1:6379".to_string(),
            shards: Vec::new(),
            node_name: None,
            connect_timeout: 1_000,
            response_timeout: 500,
            retry_interval: 500,
            outgoing_queue_size: 10_000,
            flush_interval: 1,
            heartbeat_interval: 2_000,
            channel_prefix: "switchyard:".to_string(),
            rate_limit_interval: 100,
        }
    }
}

impl ClusterConfig {
    /// The node's name (set by validation).
    pub fn node(&self) -> &str {
        self.node_name.as_deref().unwrap_or("")
    }
}

/// `[storage]`: where documents (and users, profiles, roles) live (README, "Storage").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct StorageConfig {
    /// `"embedded"` (redb in `server.dataDir`, one node) or `"postgres"` (shared by nodes).
    pub backend: StorageBackend,
    /// PostgreSQL's URL (`postgres://user:password@host:port/database`, or libpq's
    /// `key=value` form); required with `backend = "postgres"`.
    pub url: String,
    /// Connections to PostgreSQL at most; a call past them waits for one (30 s at most).
    pub pool_size: usize,
    /// Milliseconds one connection attempt to PostgreSQL may take (unless the URL says).
    pub connect_timeout: u64,
    /// Embedded store: bytes of recently read and written document bodies kept in memory, so
    /// that `document:get` of one is answered without the blocking pool; 0 turns it off.
    pub document_cache_bytes: usize,
}

impl Default for StorageConfig {
    fn default() -> StorageConfig {
        StorageConfig {
            backend: StorageBackend::Embedded,
            url: String::new(),
            pool_size: 16,
            connect_timeout: 5_000,
            document_cache_bytes: switchyard_storage::DEFAULT_DOCUMENT_CACHE_BYTES,
        }
    }
}

/// `storage.backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// redb in `server.dataDir`.
    Embedded,
    /// PostgreSQL at `storage.url`.
    Postgres,
}

/// `[limits]`: what one request or one connection may cost (Kuzzle's `limits`, same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Limits {
    /// Conditions one filter may have (Kuzzle's `subscriptionConditionsCount`, Koncorde's
    /// `maxConditions`).
    pub subscription_conditions_count: usize,
    /// Terms of one filter's disjunctive normal form (Kuzzle's `subscriptionMinterms`; Kuzzle's
    /// default is 0, no limit; ours bounds the cost of one subscription to about 2 ms). 0: no
    /// limit but the filter engine's hard cap (16,384).
    pub subscription_minterms: usize,
    /// Rooms (distinct filters) on the server (Kuzzle's `subscriptionRooms`).
    pub subscription_rooms: usize,
    /// Rooms one connection may be in (Switchyard's; Kuzzle has none). 0: no limit.
    pub subscriptions_per_connection: usize,
    /// Largest compiled program of one `regexp` filter condition, in bytes (RE2's budget is
    /// 8 MB; ours bounds one compilation to about 2 ms).
    pub regexp_size_limit: usize,
    /// Documents one request may read: `mGet` ids, `search`'s `size - from` (Kuzzle's
    /// `documentsFetchCount`).
    pub documents_fetch_count: usize,
    /// Documents one request may write: m* actions, the matches of by-query actions (Kuzzle's
    /// `documentsWriteCount`).
    pub documents_write_count: usize,
    /// Bytes of one document's JSON (Switchyard's; Kuzzle leaves it to Elasticsearch): a larger
    /// create, replace or update is refused before it is stored.
    pub document_max_size: usize,
    /// `auth:login` requests one connection may make per second (Kuzzle's `loginsPerSecond`,
    /// default 1); more are refused with 429 `api.process.too_many_logins_requests`; 0 is no
    /// limit, as in Kuzzle.
    pub logins_per_second: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            subscription_conditions_count: 100,
            subscription_minterms: 512,
            subscription_rooms: 1_000_000,
            subscriptions_per_connection: 10_000,
            regexp_size_limit: 64 * 1024,
            documents_fetch_count: 10_000,
            documents_write_count: 200,
            document_max_size: DEFAULT_MAX_REQUEST_SIZE as usize,
            logins_per_second: 1,
        }
    }
}

/// The file as written. Keys are camelCase, as in Kuzzle's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawFile {
    server: RawServer,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    cluster: Option<ClusterConfig>,
    #[serde(default)]
    storage: StorageConfig,
    #[serde(default)]
    security: SecurityConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawServer {
    #[serde(default)]
    plugin_dir: Option<String>,
    #[serde(default)]
    data_dir: Option<String>,
    #[serde(default)]
    max_request_size: Option<Size>,
    #[serde(default)]
    init_timeout: Option<u64>,
    #[serde(default)]
    shutdown_timeout: Option<u64>,
    #[serde(default)]
    concurrent_requests: Option<usize>,
    #[serde(default)]
    request_queue_size: Option<usize>,
    #[serde(default)]
    pacing_timeout: Option<u64>,
    #[serde(default)]
    pacing_queue_size: Option<usize>,
    #[serde(default)]
    blocking_threads: Option<usize>,
    #[serde(default)]
    blocking_queue_size: Option<usize>,
    #[serde(default)]
    hook_panic_limit: Option<u32>,
    #[serde(default)]
    admin: Option<AdminConfig>,
    #[serde(default)]
    protocols: toml::Table,
}

/// A size: a number of bytes, or a string such as `"1MB"` (Kuzzle's units, powers of 1024).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(String),
}

pub use switchyard_plugin_api::config::{parse_size, DEFAULT_MAX_REQUEST_SIZE};

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError {
            path: path.to_path_buf(),
            problems: vec![format!("cannot read the file: {error}")],
        })?;
        Config::parse(path, &text)
    }

    /// Validates `text` as the content of `path`, reporting every problem it can find.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let fail = |problems: Vec<String>| ConfigError {
            path: path.to_path_buf(),
            problems,
        };
        let deserializer = toml::Deserializer::new(text);
        let raw: RawFile = serde_path_to_error::deserialize(deserializer)
            .map_err(|error| fail(vec![describe_toml_error(text, &error)]))?;

        let mut problems = Vec::new();
        let base = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();

        let mut plugin_dirs = Vec::new();
        if let Some(dir) = &raw.server.plugin_dir {
            plugin_dirs.push(base.join(dir));
        }
        // The folder of the running binary comes next: `cargo build` puts the plugins there.
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
        {
            if !plugin_dirs.contains(&dir) {
                plugin_dirs.push(dir);
            }
        }

        let max_request_size = match &raw.server.max_request_size {
            None => DEFAULT_MAX_REQUEST_SIZE,
            Some(Size::Bytes(bytes)) => *bytes,
            Some(Size::Text(text)) => parse_size(text).unwrap_or_else(|| {
                problems.push(format!(
                    "server.maxRequestSize: {}",
                    switchyard_plugin_api::config::size_error(text)
                ));
                DEFAULT_MAX_REQUEST_SIZE
            }),
        };
        if max_request_size == 0 {
            problems.push("server.maxRequestSize: must be greater than 0".to_string());
        }
        let request_queue_size = raw.server.request_queue_size.unwrap_or(50_000);
        if request_queue_size == 0 {
            problems.push("server.requestQueueSize: must be greater than 0".to_string());
        }
        let blocking_threads = raw.server.blocking_threads.unwrap_or(32);
        if blocking_threads == 0 {
            problems.push("server.blockingThreads: must be greater than 0".to_string());
        }
        let blocking_queue_size = raw.server.blocking_queue_size.unwrap_or(10_000);
        if blocking_queue_size == 0 {
            problems.push("server.blockingQueueSize: must be greater than 0".to_string());
        }
        if raw.limits.regexp_size_limit == 0 {
            problems.push("limits.regexpSizeLimit: must be greater than 0".to_string());
        }
        if let Some(admin) = raw.server.admin.as_ref().filter(|admin| admin.enabled) {
            if !is_loopback(&admin.host) {
                problems.push(format!(
                    "server.admin.host: {:?} is not a loopback address; the admin listener (metrics, admin page) has no login, so it binds only 127.0.0.1, ::1 or localhost (reach it from elsewhere through an SSH tunnel or an authenticating proxy)",
                    admin.host
                ));
            }
        }

        let cluster = raw
            .cluster
            .clone()
            .filter(|cluster| cluster.enabled)
            .map(|mut cluster| {
                let name = cluster.node_name.get_or_insert_with(|| {
                    format!("node-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
                });
                if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    problems.push(
                        "cluster.nodeName: must be non-empty, without spaces or control characters"
                            .to_string(),
                    );
                }
                if cluster.outgoing_queue_size == 0 {
                    problems.push("cluster.outgoingQueueSize: must be greater than 0".to_string());
                }
                if cluster.flush_interval > 1_000 {
                    problems.push(format!(
                        "cluster.flushInterval: {} ms is more than 1000 (every event between nodes would wait up to that long)",
                        cluster.flush_interval
                    ));
                }
                if cluster.connect_timeout == 0 || cluster.response_timeout == 0 {
                    problems.push(
                        "cluster.connectTimeout, cluster.responseTimeout: must be greater than 0"
                            .to_string(),
                    );
                }
                cluster.retry_interval = cluster.retry_interval.max(10);
                cluster.heartbeat_interval = cluster.heartbeat_interval.max(10);
                if cluster.rate_limit_interval > 0 {
                    cluster.rate_limit_interval = cluster.rate_limit_interval.max(10);
                }
                cluster
            });

        if raw.storage.backend == StorageBackend::Postgres && raw.storage.url.is_empty() {
            problems.push(
                "storage.url: required with storage.backend = \"postgres\" (postgres://user:password@host:port/database)"
                    .to_string(),
            );
        }
        if raw.storage.pool_size == 0 || raw.storage.connect_timeout == 0 {
            problems.push(
                "storage.poolSize, storage.connectTimeout: must be greater than 0".to_string(),
            );
        }

        let mut protocols = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for (name, value) in &raw.server.protocols {
            let key = format!("server.protocols.{name}");
            let toml::Value::Table(section) = value else {
                problems.push(format!(
                    "{key}: invalid type: {}, expected a table",
                    value.type_str()
                ));
                continue;
            };
            if !is_valid_name(name) {
                problems.push(format!(
                    "{key}: invalid protocol name \"{name}\" (use letters, digits, '-' and '_')"
                ));
                continue;
            }
            let lower = name.to_ascii_lowercase();
            if RESERVED_PROTOCOL_NAMES.contains(&lower.as_str()) {
                problems.push(format!("{key}: protocol name \"{name}\" is reserved"));
                continue;
            }
            if let Some(first) = seen
                .iter()
                .find(|other| other.to_ascii_lowercase() == lower)
            {
                problems.push(format!(
                    "{key}: duplicate protocol name \"{name}\" (same as \"{first}\"; names are case-insensitive)"
                ));
                continue;
            }
            seen.push(name.clone());

            let mut section = section.clone();
            let enabled = match section.remove("enabled") {
                None => true,
                Some(toml::Value::Boolean(enabled)) => enabled,
                Some(other) => {
                    problems.push(format!(
                        "{key}.enabled: invalid type: {}, expected a boolean",
                        other.type_str()
                    ));
                    continue;
                }
            };
            let library = match section.remove("library") {
                None => LibrarySpec::Named(name.clone()),
                Some(toml::Value::String(library)) if library.is_empty() => {
                    problems.push(format!("{key}.library: must not be empty"));
                    continue;
                }
                Some(toml::Value::String(library)) => {
                    if library.contains('/')
                        || library.contains('\\')
                        || library.ends_with(std::env::consts::DLL_SUFFIX)
                    {
                        LibrarySpec::Path(base.join(library))
                    } else {
                        LibrarySpec::Named(library)
                    }
                }
                Some(other) => {
                    problems.push(format!(
                        "{key}.library: invalid type: {}, expected a string",
                        other.type_str()
                    ));
                    continue;
                }
            };
            if !enabled {
                continue;
            }
            resolve_tls_paths(&mut section, &base);
            let config_json = serde_json::to_string(&section).expect("TOML values are JSON");
            protocols.push(ProtocolConfig {
                name: name.clone(),
                library,
                config_json,
            });
        }

        problems.extend(raw.security.problems());
        if !problems.is_empty() {
            return Err(fail(problems));
        }

        let server_json = server_table_json(text);
        Ok(Config {
            path: path.to_path_buf(),
            plugin_dirs,
            data_dir: base.join(raw.server.data_dir.as_deref().unwrap_or("data")),
            max_request_size,
            init_timeout: Duration::from_millis(raw.server.init_timeout.unwrap_or(10_000)),
            shutdown_timeout: Duration::from_millis(raw.server.shutdown_timeout.unwrap_or(10_000)),
            concurrent_requests: raw.server.concurrent_requests.unwrap_or(50),
            request_queue_size,
            blocking_threads,
            blocking_queue_size,
            pacing_timeout: Duration::from_millis(raw.server.pacing_timeout.unwrap_or(5_000)),
            pacing_queue_size: raw.server.pacing_queue_size.unwrap_or(10_000).max(1),
            hook_panic_limit: raw.server.hook_panic_limit.unwrap_or(100),
            limits: raw.limits,
            cluster,
            storage: raw.storage,
            admin: raw.server.admin.clone().filter(|admin| admin.enabled),
            protocols,
            server_json,
            security: raw.security,
        })
    }
}

/// The `[server]` table as JSON, with `maxRequestSize` as plugins expect it.
/// The files of a protocol's `ssl` table (`certificate`, `privateKey`, `clientCa`) are
/// relative to the config file's folder, as `dataDir` and `pluginDir` are: the plugin reads
/// them knowing only the path it is given.
fn resolve_tls_paths(section: &mut toml::Table, base: &Path) {
    let Some(toml::Value::Table(ssl)) = section.get_mut("ssl") else {
        return;
    };
    for key in ["certificate", "privateKey", "clientCa"] {
        if let Some(toml::Value::String(path)) = ssl.get_mut(key) {
            if Path::new(path.as_str()).is_relative() {
                *path = base.join(path.as_str()).to_string_lossy().into_owned();
            }
        }
    }
}

fn server_table_json(text: &str) -> String {
    let table: toml::Table = toml::from_str(text).unwrap_or_default();
    let server = table
        .get("server")
        .cloned()
        .unwrap_or(toml::Value::Table(toml::Table::new()));
    serde_json::to_string(&server).expect("TOML values are JSON")
}

/// True for a host that names only this machine: `localhost` or a loopback IP address.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `server.protocols.ws.port: invalid type: string "x", expected u16 (line 4, column 8)`.
fn describe_toml_error(text: &str, error: &serde_path_to_error::Error<toml::de::Error>) -> String {
    let inner = error.inner();
    let position = inner
        .span()
        .map(|span| {
            let (line, column) = line_and_column(text, span.start);
            format!(" (line {line}, column {column})")
        })
        .unwrap_or_default();
    let message = inner
        .message()
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let path = error.path().to_string();
    if path == "." {
        format!("{message}{position}")
    } else {
        format!("{path}: {message}{position}")
    }
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.chars().rev().take_while(|&c| c != '\n').count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, Vec<String>> {
        Config::parse(Path::new("conf/config.toml"), text).map_err(|error| error.problems)
    }

    #[test]
    fn storage_is_embedded_unless_postgres_is_chosen() {
        let embedded = parse("[server]\n").expect("valid").storage;
        assert_eq!(embedded.backend, StorageBackend::Embedded);
        let pg = parse("[server]\n[storage]\nbackend = \"postgres\"\nurl = \"postgres://a@b/c\"\npoolSize = 4\n")
            .expect("valid")
            .storage;
        assert_eq!(pg.backend, StorageBackend::Postgres);
        assert_eq!((pg.url.as_str(), pg.pool_size), ("postgres://a@b/c", 4));
        let problems = parse("[server]\n[storage]\nbackend = \"postgres\"\npoolSize = 0\n")
            .expect_err("invalid");
        assert!(
            problems[0].starts_with("storage.url: required"),
            "{problems:?}"
        );
        assert!(problems[1].starts_with("storage.poolSize"), "{problems:?}");
        let problems = parse("[server]\n[storage]\nbackend = \"mysql\"\n").expect_err("invalid");
        assert!(
            problems[0].starts_with("storage.backend: unknown variant `mysql`"),
            "{problems:?}"
        );
    }

    #[test]
    fn cluster_is_off_unless_its_section_is_enabled() {
        assert_eq!(parse("[server]\n").expect("valid").cluster, None);
        let off = parse("[server]\n[cluster]\nenabled = false\n").expect("valid");
        assert_eq!(off.cluster, None);
        let on = parse("[server]\n[cluster]\nredis = \"redis://r:1\"\n").expect("valid");
        let cluster = on.cluster.expect("on");
        assert_eq!(cluster.redis, "redis://r:1");
        assert!(cluster.node().starts_with("node-") && cluster.node().len() == 13);
        let named = parse("[server]\n[cluster]\nnodeName = \"a\"\n").expect("valid");
        assert_eq!(named.cluster.expect("on").node(), "a");
        let problems = parse("[server]\n[cluster]\nnodeName = \"a b\"\noutgoingQueueSize = 0\n")
            .expect_err("invalid");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("cluster.nodeName"), "{problems:?}");
    }

    #[test]
    fn the_cluster_flush_interval_defaults_to_one_millisecond_and_is_bounded() {
        let default = parse("[server]\n[cluster]\n").expect("valid");
        assert_eq!(default.cluster.expect("on").flush_interval, 1);
        for interval in [0, 5, 1_000] {
            let config = parse(&format!(
                "[server]\n[cluster]\nflushInterval = {interval}\n"
            ))
            .expect("valid");
            assert_eq!(config.cluster.expect("on").flush_interval, interval);
        }
        assert_eq!(
            parse("[server]\n[cluster]\nflushInterval = 1001\n").expect_err("too long"),
            ["cluster.flushInterval: 1001 ms is more than 1000 (every event between nodes would wait up to that long)"]
        );
    }

    #[test]
    fn the_admin_listener_binds_loopback_only() {
        for host in ["127.0.0.1", "127.0.0.2", "::1", "localhost"] {
            let config = parse(&format!("[server.admin]\nhost = {host:?}\n")).expect(host);
            assert_eq!(config.admin.expect("on").host, host);
        }
        for host in ["0.0.0.0", "::", "10.1.2.3", "example.com"] {
            assert_eq!(
                parse(&format!("[server.admin]\nhost = {host:?}\n")).expect_err(host),
                [format!("server.admin.host: {host:?} is not a loopback address; the admin listener (metrics, admin page) has no login, so it binds only 127.0.0.1, ::1 or localhost (reach it from elsewhere through an SSH tunnel or an authenticating proxy)")]
            );
        }
        let off = parse("[server.admin]\nenabled = false\nhost = \"0.0.0.0\"\n").expect("off");
        assert_eq!(off.admin, None);
    }

    #[test]
    fn tls_files_are_relative_to_the_config_file() {
        let config = parse(
            r#"
            [server.protocols.websocket.ssl]
            certificate = "tls/chain.pem"
            privateKey = "/etc/keys/key.pem"
            clientCa = "ca.pem"
            "#,
        )
        .unwrap();
        assert_eq!(
            config.protocols[0].config_json,
            r#"{"ssl":{"certificate":"conf/tls/chain.pem","privateKey":"/etc/keys/key.pem","clientCa":"conf/ca.pem"}}"#
        );
    }

    #[test]
    fn sections_enable_protocols_in_file_order() {
        let config = parse(
            r#"
            [server]
            pluginDir = "plugins"
            [server.protocols.ws2]
            library = "websocket"
            port = 7513
            [server.protocols.websocket]
            port = 7512
            [server.protocols.mqtt]
            enabled = false
            [server.protocols.custom]
            library = "build/libcustom.so"
            "#,
        )
        .unwrap();
        let names: Vec<_> = config.protocols.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["ws2", "websocket", "custom"]);
        assert_eq!(
            config.protocols[0].library,
            LibrarySpec::Named("websocket".into())
        );
        assert_eq!(config.protocols[0].config_json, r#"{"port":7513}"#);
        assert_eq!(
            config.protocols[2].library,
            LibrarySpec::Path(PathBuf::from("conf/build/libcustom.so"))
        );
        assert_eq!(config.plugin_dirs[0], PathBuf::from("conf/plugins"));
        assert_eq!(config.max_request_size, 1 << 20);
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let problems = parse(
            r#"
            [server]
            maxRequestSize = "lots"
            [server.protocols.a]
            enabled = "yes"
            [server.protocols.internal]
            [server.protocols.B]
            [server.protocols.b]
            library = 3
            "#,
        )
        .unwrap_err();
        assert_eq!(
            problems,
            [
                "server.maxRequestSize: \"lots\" is not a size (expected bytes, or a number with B, KB, MB or GB)",
                "server.protocols.a.enabled: invalid type: string, expected a boolean",
                "server.protocols.internal: protocol name \"internal\" is reserved",
                "server.protocols.b: duplicate protocol name \"b\" (same as \"B\"; names are case-insensitive)",
            ]
        );
    }

    #[test]
    fn security_keys_are_checked() {
        let config = parse(
            "[server]\n[security.authToken]\nexpiresIn = \"2h\"\nmaxTTL = 60000\nsecret = \"s\"\n",
        )
        .unwrap();
        let tokens = config.security.token_config();
        assert_eq!(
            tokens.expires_in,
            switchyard_security::token::ExpiresIn::Millis(7_200_000)
        );
        assert_eq!(tokens.max_ttl_ms, Some(60_000));
        assert!(
            !format!("{config:?}").contains("\"s\""),
            "the secret is never printed"
        );
        let problems =
            parse("[server]\n[security.authToken]\nalgorithm = \"none\"\nexpiresIn = \"soon\"\n")
                .unwrap_err();
        assert_eq!(
            problems,
            [
                "security.authToken.algorithm: \"none\" is not HS256, HS384 or HS512",
                "security.authToken.expiresIn: \"soon\" is not a duration (milliseconds, a string such as \"1h\", or -1)",
            ]
        );
    }

    #[test]
    fn syntax_and_type_errors_give_line_and_column() {
        let problems = parse("[server]\nmaxRequestSize = = 3\n").unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("(line 2, column 18)"),
            "{}",
            problems[0]
        );

        let problems = parse("[server]\ninitTimeout = \"soon\"\n").unwrap_err();
        assert_eq!(
            problems,
            ["server.initTimeout: invalid type: string \"soon\", expected u64 (line 2, column 15)"]
        );

        let problems = parse("[server]\nportt = 1\n").unwrap_err();
        assert_eq!(
            problems,
            ["server.portt: unknown field `portt`, expected one of `pluginDir`, `dataDir`, `maxRequestSize`, \
              `initTimeout`, `shutdownTimeout`, `concurrentRequests`, `requestQueueSize`, \
              `pacingTimeout`, `pacingQueueSize`, `blockingThreads`, `blockingQueueSize`, `hookPanicLimit`, `admin`, `protocols` (line 2, column 1)"]
        );
    }
}
