//! Start-up: load and check every library, check names, then `init` every protocol.
//!
//! Any failure stops start-up with every problem found, not only the first: all libraries are
//! checked before reporting, and all `init`s run (in parallel, as Kuzzle does) before
//! reporting. No `init` runs unless every library passed its checks.

use std::fmt::{self, Write as _};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use abi_stable::std_types::{RErr, ROk, RStr};
use switchyard_plugin_api::abi::{FfiInitArgs, LogLevel};
use switchyard_security::clock::SystemClock;
use switchyard_storage::{EmbeddedOptions, EmbeddedStorage, PostgresOptions, PostgresStorage};

use crate::admin;
use crate::api::Router;
use crate::cluster::{Cluster, Destination};
use crate::config::{Config, ConfigError, StorageBackend};
use crate::entry_point::EntryPoint;
use crate::listeners::{ListenerKey, Listeners};
use crate::plugin::host_api::{self, EntryPointApi};
use crate::plugin::loader::{self, PluginModule, RustInit};
use crate::plugin::registry::ProtocolSlot;
use crate::security::Security;
use crate::services::{security_settings, Services};

/// One reason the host will not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong, naming the protocol and the file.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

/// Everything that stopped start-up.
#[derive(Debug)]
pub struct StartupError {
    /// The problems, in the order found.
    pub problems: Vec<Problem>,
}

impl fmt::Display for StartupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in &self.problems {
            writeln!(f, "{problem}")?;
        }
        let count = self.problems.len();
        write!(
            f,
            "error: switchyard did not start ({count} problem{})",
            if count == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for StartupError {}

impl From<ConfigError> for StartupError {
    fn from(error: ConfigError) -> Self {
        let path = error.path.display().to_string();
        StartupError {
            problems: error
                .problems
                .into_iter()
                .map(|problem| Problem {
                    message: format!("invalid configuration {path}: {problem}"),
                    hint: None,
                })
                .collect(),
        }
    }
}

/// A started host: every protocol initialized and listening.
#[derive(Debug)]
pub struct Started {
    /// The shared state.
    pub entry: Arc<EntryPoint>,
    /// How long start-up took.
    pub elapsed: Duration,
    /// Where the admin listener is bound, when it is on.
    pub admin: Option<std::net::SocketAddr>,
}

impl Started {
    /// The ready line: `switchyard 0.1.0 ready in 9 ms: websocket (websocket 0.1.0) on ws://…`.
    pub fn ready_line(&self) -> String {
        let protocols: Vec<String> = self
            .entry
            .services
            .protocols
            .all()
            .iter()
            .map(|protocol| {
                let listeners = protocol.listeners();
                let place = if listeners.is_empty() {
                    "not listening".to_string()
                } else {
                    format!("on {}", listeners.join(", "))
                };
                format!(
                    "{} ({} {}) {place}",
                    protocol.name, protocol.library.plugin_name, protocol.library.plugin_version
                )
            })
            .collect();
        let mut list = if protocols.is_empty() {
            "no protocols enabled".to_string()
        } else {
            protocols.join("; ")
        };
        if let Some(admin) = self.admin {
            let _ = write!(list, "; admin on http://{admin}");
        }
        if let Some(cluster) = &self.entry.services.cluster {
            let _ = write!(
                list,
                "; cluster node {} via {}",
                cluster.node(),
                cluster.url()
            );
        }
        format!(
            "switchyard {} ready in {} ms: {list}",
            env!("CARGO_PKG_VERSION"),
            self.elapsed.as_millis()
        )
    }
}

/// The most verbose level the host prints, handed to plugins so they skip formatting the rest.
pub fn plugin_log_level() -> LogLevel {
    match tracing::level_filters::LevelFilter::current().into_level() {
        None => LogLevel::OFF,
        Some(tracing::Level::ERROR) => LogLevel::ERROR,
        Some(tracing::Level::WARN) => LogLevel::WARN,
        Some(tracing::Level::INFO) => LogLevel::INFO,
        Some(tracing::Level::DEBUG) => LogLevel::DEBUG,
        Some(tracing::Level::TRACE) => LogLevel::TRACE,
    }
}

fn describe(protocol: &str, path: &std::path::Path) -> String {
    format!("protocol \"{protocol}\" ({})", path.display())
}

/// A configuration whose every library passed its checks (loadable, a Switchyard plugin,
/// version, hooks, layout, panic strategy), nothing started yet: what a hot upgrade's new
/// process proves before the old one hands over (`upgrade.rs`).
#[derive(Debug)]
pub struct Checked {
    config: Arc<Config>,
    slots: Vec<Arc<ProtocolSlot>>,
    begun: Instant,
}

impl Checked {
    /// The configuration checked.
    pub fn config(&self) -> &Config {
        &self.config
    }
}

/// Loads, checks and starts every enabled protocol.
pub fn start(config: Config) -> Result<Started, StartupError> {
    start_checked(check(config)?, Listeners::default(), Duration::ZERO)
}

/// Loads and checks every enabled protocol's library; starts nothing.
pub fn check(config: Config) -> Result<Checked, StartupError> {
    let begun = Instant::now();
    let config = Arc::new(config);

    let mut problems = Vec::new();
    let mut slots = Vec::new();
    for (index, protocol) in config.protocols.iter().enumerate() {
        match loader::load(&protocol.library, &config.plugin_dirs) {
            Ok(library) => slots.push(Arc::new(ProtocolSlot::new(
                index,
                protocol.name.clone(),
                loader::candidate_paths(&protocol.library, &config.plugin_dirs)
                    .into_iter()
                    .find(|path| path.is_file())
                    .unwrap_or_default(),
                library,
                config.hook_panic_limit,
            ))),
            Err(error) => problems.push(Problem {
                message: format!("{} {}", describe(&protocol.name, &error.path), error.kind),
                hint: error.kind.hint(),
            }),
        }
    }
    if !problems.is_empty() {
        return Err(StartupError { problems });
    }
    Ok(Checked {
        config,
        slots,
        begun,
    })
}

/// Starts a checked configuration: the store, the API, every protocol's `init` (their
/// listeners from `listeners`: inherited ones first), the admin listener. `store_wait`: how
/// long to retry opening the store while another process still holds it (the process a hot
/// upgrade replaces, exiting).
pub fn start_checked(
    checked: Checked,
    listeners: Listeners,
    store_wait: Duration,
) -> Result<Started, StartupError> {
    let Checked {
        config,
        slots,
        begun,
    } = checked;
    let (storage, place) = open_storage(&config, store_wait)?;
    let security = Security::open(
        Arc::clone(&storage),
        security_settings(&config),
        Arc::new(SystemClock),
    )
    .map_err(|error| StartupError {
        problems: vec![Problem {
            message: format!(
                "cannot open the security objects in {place}: {}",
                error.message()
            ),
            hint: None,
        }],
    })?;
    let cluster = start_cluster(&config)?;
    let mut services = Services::with_security(Arc::clone(&config), storage, Arc::new(security));
    if let Some(cluster) = &cluster {
        services.realtime.share();
        // Security objects live in the store (shared by the nodes with PostgreSQL) and in each
        // node's memory: the others read again what this one writes.
        services
            .security
            .on_store_change(Box::new(cluster.security_publisher()));
        // Likewise for validation specifications, which `realtime:publish` reads from memory.
        services
            .specifications
            .on_change(Box::new(cluster.security_publisher()));
        if let Some(settings) = &config.cluster {
            cluster
                .share_rate_limits(settings, services.security.user_rate_limiter())
                .map_err(|error| StartupError {
                    problems: vec![Problem {
                        message: error,
                        hint: None,
                    }],
                })?;
        }
    }
    services.cluster = cluster;
    services.listeners = Arc::new(listeners);
    services.protocols.set(slots.clone());
    let entry = EntryPoint::start(services, Router::standard()).map_err(|error| StartupError {
        problems: vec![Problem {
            message: format!("cannot start the API's threads: {error}"),
            hint: None,
        }],
    })?;

    if let Some(cluster) = &entry.services.cluster {
        let services = Arc::downgrade(&entry.services);
        let destination: std::sync::Weak<dyn Destination> = services;
        cluster.attach(destination);
    }
    crate::sessions::start_timer(&entry.services).map_err(|error| StartupError {
        problems: vec![Problem {
            message: format!("cannot start the token expiry thread: {error}"),
            hint: None,
        }],
    })?;
    let problems = init_all(&entry, &slots, config.init_timeout);
    if !problems.is_empty() {
        entry.drain(Instant::now());
        return Err(StartupError { problems });
    }
    let admin = match &config.admin {
        Some(admin) => Some(start_admin(&entry, admin).map_err(|error| {
            entry.drain(Instant::now());
            StartupError {
                problems: vec![Problem {
                    message: format!(
                        "cannot listen for the admin listener on {}:{}: {error}",
                        admin.host, admin.port
                    ),
                    hint: Some("change or free server.admin.port".to_string()),
                }],
            }
        })?),
        None => None,
    };
    for key in entry.services.listeners.drop_unclaimed() {
        tracing::info!(listener = %key, "closed an inherited listener the configuration no longer names");
    }
    Ok(Started {
        entry,
        elapsed: begun.elapsed(),
        admin,
    })
}

/// `[storage]`: opens the embedded store in `server.dataDir`, or connects to PostgreSQL (and
/// creates its tables on first start), or refuses to start naming the folder or the URL
/// (password redacted) and the error. Returns the store and where it is, for messages.
/// `wait`: how long to retry opening the embedded store while another process still holds it
/// (the process a hot upgrade replaces, exiting).
fn open_storage(
    config: &Config,
    wait: Duration,
) -> Result<(Arc<dyn switchyard_storage::Storage>, String), StartupError> {
    let refuse = |message: String, hint: &str| StartupError {
        problems: vec![Problem {
            message,
            hint: Some(hint.to_string()),
        }],
    };
    match config.storage.backend {
        StorageBackend::Embedded => {
            let storage = open_embedded(config, wait).map_err(|error| {
                    refuse(
                        format!(
                            "cannot open the document store in {}: {error}",
                            config.data_dir.display()
                        ),
                        "set server.dataDir to a writable folder; another switchyard may be using this one",
                    )
                })?;
            Ok((Arc::new(storage), config.data_dir.display().to_string()))
        }
        StorageBackend::Postgres => {
            let mut options = PostgresOptions::new(config.storage.url.clone());
            options.pool_size = config.storage.pool_size;
            options.connect_timeout = Duration::from_millis(config.storage.connect_timeout);
            let storage = PostgresStorage::connect(&options).map_err(|error| {
                if let switchyard_storage::StorageError::SchemaTooNew { .. } = error {
                    return refuse(
                        format!(
                            "cannot open the document store (storage.url): PostgreSQL at {}: {error}",
                            switchyard_storage::redact_url(&config.storage.url)
                        ),
                        "run the Switchyard version that laid it out (or a newer one), or point storage.url at another database",
                    );
                }
                let message = match error {
                    switchyard_storage::StorageError::Store { message } => message,
                    other => other.to_string(),
                };
                refuse(
                    format!("cannot open the document store (storage.url): {message}"),
                    "start PostgreSQL, fix storage.url, or remove [storage] to use the embedded store",
                )
            })?;
            let place = format!("PostgreSQL at {}", storage.redacted_url());
            Ok((Arc::new(storage), place))
        }
    }
}

/// Opens the embedded store, retrying for `wait` (a process being replaced may still hold it).
fn open_embedded(
    config: &Config,
    wait: Duration,
) -> Result<EmbeddedStorage, switchyard_storage::StorageError> {
    let deadline = Instant::now() + wait;
    loop {
        let options = EmbeddedOptions {
            document_cache_bytes: config.storage.document_cache_bytes,
            ..EmbeddedOptions::default()
        };
        match EmbeddedStorage::open(&config.data_dir, options) {
            Ok(storage) => return Ok(storage),
            Err(error) if Instant::now() >= deadline => return Err(error),
            // Pacing the retries of a lock held by a process that is exiting.
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The admin listener on the host's socket for it (inherited in a hot upgrade).
fn start_admin(
    entry: &Arc<EntryPoint>,
    admin: &crate::config::AdminConfig,
) -> std::io::Result<std::net::SocketAddr> {
    use std::net::ToSocketAddrs as _;
    let address = (admin.host.as_str(), admin.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("the host name resolves to no address"))?;
    let listener = entry.services.listeners.take(&ListenerKey {
        owner: "admin".to_string(),
        address: address.ip(),
        port: admin.port,
    })?;
    admin::start(Arc::clone(entry), listener)
}

/// `[cluster]`: connects to Redis, or refuses to start naming the URL and the error.
fn start_cluster(config: &Config) -> Result<Option<Cluster>, StartupError> {
    let Some(settings) = &config.cluster else {
        return Ok(None);
    };
    Cluster::start(settings)
        .map(Some)
        .map_err(|error| StartupError {
            problems: vec![Problem {
                message: format!(
                    "cannot reach Redis at {} (cluster.redis): {error}",
                    settings.redis
                ),
                hint: Some(
                    "start Redis, fix cluster.redis, or remove [cluster] to run a single node"
                        .to_string(),
                ),
            }],
        })
}

enum InitOutcome {
    Ready,
    Failed(String),
}

/// Runs every `init` on its own thread and waits for all, up to `timeout` in total.
fn init_all(
    entry: &Arc<EntryPoint>,
    slots: &[Arc<ProtocolSlot>],
    timeout: Duration,
) -> Vec<Problem> {
    let (report, outcomes) = mpsc::channel::<(usize, InitOutcome)>();
    let level = plugin_log_level();
    let config = entry.config();
    let server_json: Arc<str> = Arc::from(config.server_json.as_str());
    let api: Arc<dyn EntryPointApi> = Arc::clone(entry) as Arc<dyn EntryPointApi>;
    for slot in slots {
        let slot = Arc::clone(slot);
        let api = Arc::clone(&api);
        let report = report.clone();
        let server_json = Arc::clone(&server_json);
        let config_json = config.protocols[slot.index].config_json.clone();
        let (index, failure_report) = (slot.index, report.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("init-{}", slot.name))
            .spawn(move || {
                let plugin_name = slot.library.plugin_name;
                let outcome = match slot.library.module {
                    PluginModule::Rust(hooks) => {
                        let args = FfiInitArgs {
                            name: RStr::from_str(&slot.name),
                            config: RStr::from_str(&config_json),
                            server: RStr::from_str(&server_json),
                            max_log_level: level,
                        };
                        let (index, name) = (slot.index, slot.name.as_str());
                        let initialized = match hooks.init {
                            RustInit::Current(init) => {
                                init(host_api::host_for(&api, index, name, plugin_name), args)
                            }
                            RustInit::V1_2(init) => init(
                                host_api::host_for_v1_2(&api, index, name, plugin_name),
                                args,
                            ),
                            RustInit::V1_0(init) => init(
                                host_api::host_for_v1_0(&api, index, name, plugin_name),
                                args,
                            ),
                        };
                        match initialized {
                            ROk(instance) => Ok(instance),
                            RErr(error) if error.panicked => Err(format!("init {}", error.message)),
                            RErr(error) => {
                                Err(format!("init returned an error: {}", error.message))
                            }
                        }
                    }
                    PluginModule::C(module) => {
                        let host = host_api::c_host_for(&api, slot.index, &slot.name, plugin_name);
                        module
                            .init(host, &slot.name, &config_json, &server_json, level)
                            .map_err(|message| format!("init returned an error: {message}"))
                    }
                };
                let outcome = match outcome {
                    Ok(instance) => {
                        slot.set_instance(instance);
                        InitOutcome::Ready
                    }
                    Err(reason) => InitOutcome::Failed(reason),
                };
                let _ = report.send((slot.index, outcome));
            });
        if let Err(error) = spawned {
            let _ = failure_report.send((
                index,
                InitOutcome::Failed(format!("cannot start a thread for init: {error}")),
            ));
        }
    }
    drop(report);

    let deadline = Instant::now() + timeout;
    let mut results: Vec<Option<InitOutcome>> = slots.iter().map(|_| None).collect();
    let mut pending = slots.len();
    while pending > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        match outcomes.recv_timeout(left) {
            Ok((index, outcome)) => {
                if let Some(position) = slots.iter().position(|slot| slot.index == index) {
                    results[position] = Some(outcome);
                    pending -= 1;
                }
            }
            Err(_) => break,
        }
    }

    let mut problems = Vec::new();
    for (slot, result) in slots.iter().zip(results) {
        let what = describe(&slot.name, &slot.path);
        match result {
            Some(InitOutcome::Ready) => {}
            Some(InitOutcome::Failed(reason)) => problems.push(Problem {
                message: format!("{what} failed to start: {reason}"),
                hint: None,
            }),
            None => problems.push(Problem {
                message: format!(
                    "{what} failed to start: init did not return within {} ms",
                    timeout.as_millis()
                ),
                hint: Some(
                    "increase server.initTimeout (milliseconds) if it is just slow".to_string(),
                ),
            }),
        }
    }
    problems
}

/// `switchyard check`: what was checked, and the outcome for each library.
#[derive(Debug)]
pub struct CheckReport {
    /// One line per library.
    pub lines: Vec<String>,
    /// True when every library passed.
    pub ok: bool,
}

/// Checks libraries (ABI version, layout, hooks) without calling `init`.
pub fn check_libraries(paths: &[PathBuf], verbose: bool) -> CheckReport {
    let mut lines = Vec::new();
    let mut ok = true;
    for path in paths {
        let shown = path.display();
        if !path.is_file() {
            ok = false;
            lines.push(format!("{shown}: error: library not found"));
            continue;
        }
        match loader::load_path(path) {
            Ok(library) => lines.push(format!(
                "{shown}: {} {}, plugin-api {}: OK",
                library.plugin_name, library.plugin_version, library.interface_version
            )),
            Err(kind) => {
                ok = false;
                lines.push(format!("{shown}: error: {kind}"));
                if let Some(hint) = kind.hint() {
                    lines.push(format!("{shown}: hint: {hint}"));
                }
                if let (true, loader::LoadErrorKind::LayoutMismatch { report, .. }) =
                    (verbose, &kind)
                {
                    lines.push(report.clone());
                }
            }
        }
    }
    CheckReport { lines, ok }
}

/// A protocol's `[server.protocols.<name>.ssl]` files (certificate chain, private key,
/// client CA), read and checked as its plugin's `init` will: with plugin-kit's
/// `tls::validate`, which every shipped plugin calls, so the message is start-up's (the key's
/// path, the file, why). `ssl` is the kit's convention the host already knows (config.rs
/// resolves its paths); a section without one is not looked at.
fn check_tls(protocol: &crate::config::ProtocolConfig) -> Result<(), String> {
    use switchyard_plugin_kit::{config::section_path, tls};
    let Ok(section) = serde_json::from_str::<serde_json::Value>(&protocol.config_json) else {
        return Ok(());
    };
    let Some(ssl) = section.get("ssl") else {
        return Ok(());
    };
    let path = section_path(&protocol.name);
    let raw: tls::RawTls =
        serde_json::from_value(ssl.clone()).map_err(|error| format!("{path}.ssl: {error}"))?;
    tls::validate(Some(&raw), &path)
        .map(drop)
        .map_err(|error| error.to_string())
}

/// Checks every protocol a configuration enables (steps 1–3 of start-up, no `init`), and the
/// files of each protocol's `ssl` table ([`check_tls`]).
pub fn check_config(config: &Config) -> CheckReport {
    let mut lines = Vec::new();
    let mut ok = true;
    for protocol in &config.protocols {
        if let Err(message) = check_tls(protocol) {
            ok = false;
            lines.push(format!("error: {message}"));
        }
        match loader::load(&protocol.library, &config.plugin_dirs) {
            Ok(library) => {
                let path = loader::candidate_paths(&protocol.library, &config.plugin_dirs)
                    .into_iter()
                    .find(|path| path.is_file())
                    .unwrap_or_default();
                lines.push(format!(
                    "{}: {} {}, plugin-api {}: OK",
                    describe(&protocol.name, &path),
                    library.plugin_name,
                    library.plugin_version,
                    library.interface_version
                ))
            }
            Err(error) => {
                ok = false;
                lines.push(format!(
                    "error: {} {}",
                    describe(&protocol.name, &error.path),
                    error.kind
                ));
                if let Some(hint) = error.kind.hint() {
                    lines.push(format!("hint: {hint}"));
                }
            }
        }
    }
    CheckReport { lines, ok }
}
