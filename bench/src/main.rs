//! `switchyard-bench`: drives the real `switchyard` from outside and, in the same run, the
//! baselines that give each figure its meaning. Prints a table and writes JSON.
//!
//! ```text
//! switchyard-bench ws-fanout   [--subscribers N] [--seconds S] [--payload BYTES] [--window W]
//! switchyard-bench ws-rtt      [--connections C] [--seconds S]
//! switchyard-bench connections [--connections C]
//! common: [--target switchyard|baseline|both] [--json PATH] [--warmup S]
//! ```

mod baseline;
mod report;
mod scenarios;
mod target;
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
    /// Messages a publisher may have in flight ahead of the average subscriber.
    pub window: u64,
    /// Where to write the JSON record.
    pub json: Option<std::path::PathBuf>,
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
        window: 32,
        json: None,
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
            "--window" => settings.window = value()?.parse()?,
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
    let scenario = scenario.context("name a scenario: ws-fanout, ws-rtt or connections")?;
    Ok((scenario, settings))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The baselines run in their own process: this binary, re-executed.
    if args.first().map(String::as_str) == Some("__baseline-ws") {
        let threads = args.get(1).and_then(|t| t.parse().ok()).unwrap_or(1);
        return baseline::run_ws_broadcast(0, threads);
    }
    if args.is_empty() || args.iter().any(|arg| arg == "--help" || arg == "-h") {
        println!("{}", include_str!("usage.txt"));
        return Ok(());
    }
    let (scenario, settings) = parse(&args)?;
    let record = match scenario.as_str() {
        "ws-fanout" => scenarios::ws_fanout(&settings)?,
        "ws-rtt" => scenarios::ws_rtt(&settings)?,
        "connections" => scenarios::connections(&settings)?,
        other => bail!("unknown scenario {other}: ws-fanout, ws-rtt or connections"),
    };
    report::print_and_save(&record, settings.json.as_deref())
}
