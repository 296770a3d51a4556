//! `switchyard-bench`: drives the real `switchyard` from outside and, in the same run, the
//! baselines that give each figure its meaning. Prints a table and writes JSON.
//!
//! ```text
//! switchyard-bench ws-fanout       [--subscribers N] [--payload BYTES] [--window W | --burst N]
//!                                  [--tls]
//! switchyard-bench ws-rtt          [--connections C] [--auth] [--tls]
//! switchyard-bench http            [--connections C] [--path /_now] [--auth] [--tls]
//! switchyard-bench mqtt-fanout     [--subscribers N] [--payload BYTES] [--window W | --burst N]
//!                                  [--per-write P] [--via topics|kuzzle] [--broker HOST:PORT]
//! switchyard-bench mqtt-rtt        [--connections C] [--via kuzzle|topics] [--broker HOST:PORT]
//! switchyard-bench socketio-fanout [--subscribers N] [--payload BYTES] [--window W | --burst N]
//! switchyard-bench connections     [--connections C]
//! switchyard-bench documents       [--connections C] [--document-cache BYTES]
//! switchyard-bench documents-search [--documents N] [--connections C]
//! switchyard-bench documents-subscribed [--rooms R] [--connections C]
//! switchyard-bench cluster-fanout  [--subscribers N] [--payload BYTES] [--window W]
//! switchyard-bench login           [--connections C]
//! common: [--target switchyard|baseline|both] [--seconds S] [--warmup S] [--rounds N]
//!         [--json PATH]
//! ```

mod baseline_http;
mod baseline_ws;
mod mqttclient;
mod report;
mod scenarios;
mod target;
mod tls;
mod wsclient;

use std::time::Duration;

use anyhow::{bail, Context as _};

/// Settings shared by every scenario.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Which servers to measure.
    pub targets: Vec<target::Kind>,
    /// Measured time.
    pub seconds: Duration,
    /// Unmeasured time before it.
    pub warmup: Duration,
    /// Subscribers (fan-out).
    pub subscribers: usize,
    /// Connections (round trips, idle memory).
    pub connections: usize,
    /// Message body size in bytes (fan-out).
    pub payload: usize,
    /// Messages a publisher may have in flight ahead of the average subscriber (default per
    /// scenario).
    pub window: Option<u64>,
    /// Messages per publisher write (MQTT fan-out, windowed mode).
    pub per_write: Option<u64>,
    /// Burst mode (fan-out): publish this many messages back to back, no window.
    pub burst: Option<u64>,
    /// The HTTP path requested (`http`; default `/_now`).
    pub path: Option<String>,
    /// How MQTT clients reach switchyard (default per scenario).
    pub via: Option<Via>,
    /// An external MQTT broker measured instead of mosquitto.
    pub broker: Option<String>,
    /// `ws-rtt`, `http`: also measure switchyard as a logged-in user (its token in every
    /// request), after anonymous, on the same server.
    pub auth: bool,
    /// `ws-rtt`, `http`: also measure switchyard over TLS (a second server, its `ssl` table
    /// naming a certificate made for the run), after plain text.
    pub tls: bool,
    /// Where to write the JSON record.
    pub json: Option<std::path::PathBuf>,
    /// How many times the whole scenario runs (ratios: the median).
    pub rounds: usize,
    /// Documents loaded before searching (`documents-search`; default 1 M).
    pub documents: Option<u64>,
    /// Rooms subscribed on the collection (`documents-subscribed`; default 10,000).
    pub rooms: Option<usize>,
    /// `documents`: the host's `[storage] documentCacheBytes` (default: the host's default).
    pub document_cache: Option<usize>,
    /// `cluster-fanout`: the nodes' `[cluster] flushInterval` in ms (default: the host's).
    pub flush_interval: Option<u64>,
}

/// How the MQTT scenarios use switchyard (a baseline broker always gets `Topics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Plain MQTT topics: the plugin as a broker (`allowPubSub`).
    Topics,
    /// Kuzzle requests on `Kuzzle/request`: through the host's API and realtime engine.
    Kuzzle,
}

impl Via {
    /// Its name in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Via::Topics => "topics",
            Via::Kuzzle => "kuzzle",
        }
    }
}

fn parse(args: &[String]) -> anyhow::Result<(String, Settings)> {
    let mut scenario = None;
    let mut settings = Settings {
        targets: vec![target::Kind::Switchyard, target::Kind::Baseline],
        seconds: Duration::from_secs(5),
        warmup: Duration::from_secs(1),
        subscribers: 1000,
        connections: 0,
        payload: 100,
        window: None,
        per_write: None,
        burst: None,
        path: None,
        via: None,
        broker: None,
        json: None,
        auth: false,
        tls: false,
        rounds: 1,
        documents: None,
        rooms: None,
        document_cache: None,
        flush_interval: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .cloned()
                .with_context(|| format!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--subscribers" | "-s" => settings.subscribers = value()?.parse()?,
            "--connections" | "-c" => settings.connections = value()?.parse()?,
            "--seconds" => settings.seconds = Duration::from_secs_f64(value()?.parse()?),
            "--warmup" => settings.warmup = Duration::from_secs_f64(value()?.parse()?),
            "--payload" => settings.payload = value()?.parse()?,
            "--window" => settings.window = Some(value()?.parse()?),
            "--per-write" => settings.per_write = Some(value()?.parse()?),
            "--burst" => {
                let burst: u64 = value()?.parse()?;
                if burst == 0 {
                    bail!("--burst must be at least 1");
                }
                settings.burst = Some(burst);
            }
            "--path" => settings.path = Some(value()?),
            "--documents" => settings.documents = Some(value()?.parse()?),
            "--rooms" => settings.rooms = Some(value()?.parse()?),
            "--document-cache" => settings.document_cache = Some(value()?.parse()?),
            "--flush-interval" => settings.flush_interval = Some(value()?.parse()?),
            "--auth" => settings.auth = true,
            "--tls" => settings.tls = true,
            "--rounds" => {
                settings.rounds = value()?.parse()?;
                if settings.rounds == 0 {
                    bail!("--rounds must be at least 1");
                }
            }
            "--broker" => settings.broker = Some(value()?),
            "--via" => {
                settings.via = match value()?.as_str() {
                    "topics" => Some(Via::Topics),
                    "kuzzle" => Some(Via::Kuzzle),
                    other => bail!("unknown --via {other}: topics or kuzzle"),
                }
            }
            "--json" => settings.json = Some(value()?.into()),
            "--target" => {
                settings.targets = match value()?.as_str() {
                    "switchyard" => vec![target::Kind::Switchyard],
                    "baseline" => vec![target::Kind::Baseline],
                    "both" => vec![target::Kind::Switchyard, target::Kind::Baseline],
                    other => bail!("unknown target {other}: switchyard, baseline or both"),
                }
            }
            name if scenario.is_none() && !name.starts_with('-') => {
                scenario = Some(name.to_string())
            }
            other => bail!("unexpected argument {other}"),
        }
    }
    let scenario = scenario
        .with_context(|| format!("name a scenario: {}", scenarios::SCENARIOS.join(", ")))?;
    Ok((scenario, settings))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The baselines run in their own process: this binary, re-executed.
    if args.first().map(String::as_str) == Some("__baseline-ws") {
        let threads = args.get(1).and_then(|t| t.parse().ok()).unwrap_or(1);
        let read_buffer = args.get(2).and_then(|size| size.parse().ok());
        return baseline_ws::run_ws_broadcast(0, threads, read_buffer);
    }
    if args.first().map(String::as_str) == Some("__baseline-http") {
        return baseline_http::run_http(args.get(1).map(String::as_str) == Some("1"));
    }
    if args.is_empty() || args.iter().any(|arg| arg == "--help" || arg == "-h") {
        println!("{}", include_str!("usage.txt"));
        return Ok(());
    }
    let (scenario, settings) = parse(&args)?;
    let mut records = Vec::with_capacity(settings.rounds);
    for round in 1..=settings.rounds {
        let record = scenarios::run(&scenario, &settings)?;
        if settings.rounds > 1 {
            println!("round {round} of {}:", settings.rounds);
            report::print(&record);
        }
        records.push(record);
    }
    report::print_and_save(&report::combine(records), settings.json.as_deref())
}
