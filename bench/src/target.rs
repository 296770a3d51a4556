//! The servers under test: the real `switchyard` (the release binary and its WebSocket plugin,
//! started with a generated config) and the bare baseline (this binary re-executed).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use anyhow::Context as _;
use switchyard_tests::{protocol_section, Server};

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `switchyard` with its WebSocket plugin.
    Switchyard,
    /// The bare tokio-tungstenite broadcast server.
    Baseline,
}

impl Kind {
    /// Its name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Switchyard => "switchyard",
            Kind::Baseline => "tungstenite-baseline",
        }
    }
}

/// A running server.
pub enum Running {
    /// The host (stopped when dropped).
    Switchyard(Server),
    /// The baseline process (killed when dropped).
    Baseline { child: Child, address: String },
}

impl Running {
    /// Starts one.
    pub fn start(kind: Kind) -> anyhow::Result<Running> {
        match kind {
            Kind::Switchyard => {
                // A large request queue and outbox: the bench measures speed, not refusals.
                let config = format!(
                    "[server]\n{}",
                    protocol_section(
                        "websocket",
                        "websocket",
                        "port = 0\nmaxQueuedBytes = \"16MB\""
                    )
                );
                Ok(Running::Switchyard(Server::start(&config)))
            }
            Kind::Baseline => {
                let exe = std::env::current_exe()?;
                let mut child = Command::new(exe)
                    .args(["__baseline-ws", "1"])
                    .stdout(Stdio::piped())
                    .spawn()
                    .context("start the baseline server")?;
                let stdout = child.stdout.take().context("piped")?;
                let mut line = String::new();
                BufReader::new(stdout).read_line(&mut line)?;
                let address = line
                    .trim()
                    .strip_prefix("listening on ")
                    .context("the baseline did not say where it listens")?
                    .to_string();
                Ok(Running::Baseline { child, address })
            }
        }
    }

    /// `host:port` of its WebSocket listener.
    pub fn address(&self) -> String {
        match self {
            Running::Switchyard(server) => server.address("websocket"),
            Running::Baseline { address, .. } => address.clone(),
        }
    }

    /// Its process id (for memory readings).
    pub fn pid(&self) -> u32 {
        match self {
            Running::Switchyard(server) => server.pid(),
            Running::Baseline { child, .. } => child.id(),
        }
    }

    /// Which kind it is.
    pub fn kind(&self) -> Kind {
        match self {
            Running::Switchyard(_) => Kind::Switchyard,
            Running::Baseline { .. } => Kind::Baseline,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Running::Baseline { child, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Resident memory of a process, in bytes (Linux: `/proc/<pid>/status`, `VmRSS`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
