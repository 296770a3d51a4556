//! The servers under test: the real `switchyard` (the release binary with one protocol plugin,
//! started with a generated config) and, per protocol, the baseline that gives its figures a
//! meaning — a bare tokio-tungstenite broadcast server or a bare hyper server (this binary
//! re-executed), Debian's `mosquitto`, or npm `socket.io` 4.x on Node.js — or an external MQTT
//! broker (`--broker HOST:PORT`).

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use switchyard_tests::{protocol_section, Server};

/// Which side of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `switchyard` with the scenario's protocol plugin.
    Switchyard,
    /// The scenario's baseline (tungstenite, hyper, mosquitto or `--broker`, npm socket.io).
    Baseline,
}

/// The protocol a scenario speaks; it picks the plugin and the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// WebSocket: plugin `websocket`, baseline the tokio-tungstenite broadcast server.
    WebSocket,
    /// HTTP/1.1: plugin `http`, baseline a bare hyper server with a fixed body.
    Http,
    /// MQTT 3.1.1: plugin `mqtt` (`allowPubSub = true`), baseline mosquitto or `--broker`.
    Mqtt,
    /// Socket.IO 5 over Engine.IO 4: plugin `socketio`, baseline npm `socket.io` 4.x
    /// (`tests/js/socketio/reference_server.js` on Node.js).
    SocketIo,
}

/// A running server.
pub enum Running {
    /// The host (stopped when dropped).
    Switchyard(Server),
    /// A baseline process we started (killed when dropped).
    Baseline {
        child: Child,
        address: String,
        name: String,
    },
    /// A server somebody else runs (`--broker`): no pid, so no memory or CPU readings.
    External { address: String },
}

impl Running {
    /// Starts one; `broker` replaces mosquitto as the MQTT baseline.
    pub fn start(kind: Kind, protocol: Protocol, broker: Option<&str>) -> anyhow::Result<Running> {
        match (kind, protocol) {
            (Kind::Switchyard, protocol) => Ok(Running::Switchyard(Server::start(&format!(
                "[server]\n{}",
                switchyard_section(protocol)
            )))),
            (Kind::Baseline, Protocol::WebSocket) => {
                reexecute(&["__baseline-ws", "1"], "tungstenite-baseline")
            }
            (Kind::Baseline, Protocol::Http) => reexecute(&["__baseline-http"], "hyper-baseline"),
            (Kind::Baseline, Protocol::Mqtt) => match broker {
                Some(address) => Ok(Running::External {
                    address: address.to_string(),
                }),
                None => start_mosquitto(),
            },
            (Kind::Baseline, Protocol::SocketIo) => start_socketio_reference(),
        }
    }

    /// The real host with `protocol`'s plugin and `extra` configuration after its section
    /// (e.g. a `[limits]` table).
    pub fn start_switchyard(protocol: Protocol, extra: &str) -> anyhow::Result<Running> {
        Ok(Running::Switchyard(Server::start(&format!(
            "[server]\n{}\n{extra}",
            switchyard_section(protocol)
        ))))
    }

    /// The HTTP baseline on one current-thread runtime: the thread shape of the HTTP plugin with
    /// one request thread (its default on 2 cores).
    pub fn start_single_thread_http_baseline() -> anyhow::Result<Running> {
        reexecute(&["__baseline-http", "1"], "hyper-baseline-1-thread")
    }

    /// The WebSocket baseline with a 4 KiB read buffer per connection instead of tungstenite's
    /// default 128 KiB (zero-filled, so all resident): the fair baseline for idle memory.
    pub fn start_lean_ws_baseline() -> anyhow::Result<Running> {
        reexecute(
            &["__baseline-ws", "1", "4096"],
            "tungstenite-baseline-4k-buffer",
        )
    }

    /// `host:port` of its listener.
    pub fn address(&self) -> String {
        match self {
            Running::Switchyard(server) => server
                .listeners
                .keys()
                .next()
                .map(|protocol| server.address(protocol))
                .unwrap_or_default(),
            Running::Baseline { address, .. } | Running::External { address } => address.clone(),
        }
    }

    /// Its process id (memory and CPU readings), if we started it.
    pub fn pid(&self) -> Option<u32> {
        match self {
            Running::Switchyard(server) => Some(server.pid()),
            Running::Baseline { child, .. } => Some(child.id()),
            Running::External { .. } => None,
        }
    }

    /// Which side it is.
    pub fn kind(&self) -> Kind {
        match self {
            Running::Switchyard(_) => Kind::Switchyard,
            Running::Baseline { .. } | Running::External { .. } => Kind::Baseline,
        }
    }

    /// Its name in tables and JSON (`switchyard`, `mosquitto`, `broker 10.0.0.5:1883`…).
    pub fn name(&self) -> String {
        match self {
            Running::Switchyard(_) => "switchyard".to_string(),
            Running::Baseline { name, .. } => name.clone(),
            Running::External { address } => format!("broker {address}"),
        }
    }

    /// CPU seconds (user + system) it has used so far, if we started it.
    pub fn cpu_seconds(&self) -> Option<f64> {
        self.pid().and_then(cpu_seconds)
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

/// The host's config section for a protocol: any free port on loopback; queues large enough
/// that the bench measures speed, not refusals; no per-address limit (every bench client
/// comes from 127.0.0.1, up to 1,000 at once).
fn switchyard_section(protocol: Protocol) -> String {
    let section = match protocol {
        Protocol::WebSocket => protocol_section(
            "websocket",
            "websocket",
            "port = 0\nmaxQueuedBytes = \"16MB\"",
        ),
        Protocol::Http => protocol_section("http", "http", "port = 0\naddress = \"127.0.0.1\""),
        Protocol::Mqtt => protocol_section(
            "mqtt",
            "mqtt",
            "port = 0\naddress = \"127.0.0.1\"\nallowPubSub = true",
        ),
        Protocol::SocketIo => protocol_section(
            "socketio",
            "socketio",
            "port = 0\naddress = \"127.0.0.1\"\nmaxQueuedBytes = \"16MB\"",
        ),
    };
    format!("{section}{UNLIMITED_CONNECTIONS}")
}

/// `maxConnectionsPerAddress` and `maxConnectionRatePerAddress` off, appended to a section.
pub(crate) const UNLIMITED_CONNECTIONS: &str =
    "maxConnectionsPerAddress = 0\nmaxConnectionRatePerAddress = 0\n";

/// Runs this binary with `args`; it prints `listening on HOST:PORT` once ready.
fn reexecute(args: &[&str], name: &'static str) -> anyhow::Result<Running> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("start the {name} server"))?;
    let stdout = child.stdout.take().context("piped")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let address = line
        .trim()
        .strip_prefix("listening on ")
        .with_context(|| format!("the {name} server did not say where it listens"))?
        .to_string();
    Ok(Running::Baseline {
        child,
        address,
        name: name.to_string(),
    })
}

/// Debian's mosquitto (package `mosquitto`) on a free loopback port, default settings.
/// `SWITCHYARD_BENCH_MOSQUITTO` names another binary.
fn start_mosquitto() -> anyhow::Result<Running> {
    let binary = std::env::var("SWITCHYARD_BENCH_MOSQUITTO").unwrap_or_else(|_| {
        ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|path| std::path::Path::new(path).is_file())
            .unwrap_or("mosquitto")
            .to_string()
    });
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port();
    let mut child = Command::new(&binary)
        .args(["-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| {
            anyhow::anyhow!(
                "the MQTT baseline needs the mosquitto broker; {binary} could not be run ({error}): \
                 install Debian's package `mosquitto` (apt-get install -y mosquitto; .ci/run does), \
                 point --broker HOST:PORT at another broker, or use --target switchyard"
            )
        })?;
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let until = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(address).is_err() {
        if let Some(status) = child.try_wait()? {
            bail!("mosquitto exited ({status}) before listening on {address}");
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            bail!("mosquitto did not listen on {address} within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Running::Baseline {
        child,
        address: address.to_string(),
        name: "mosquitto".to_string(),
    })
}

/// npm `socket.io` 4.x (`tests/js/socketio/reference_server.js`) on a free port, run by
/// `node` (`SWITCHYARD_BENCH_NODE` names another binary). Installs the npm packages with
/// `npm ci` when they are missing (`switchyard_tests::node_modules`); fails saying what to
/// install when Node.js or npm is not there.
fn start_socketio_reference() -> anyhow::Result<Running> {
    let node = std::env::var("SWITCHYARD_BENCH_NODE").unwrap_or_else(|_| "node".to_string());
    const INSTALL: &str = "install Node.js 18 or later and npm (Debian: apt-get install -y nodejs \
                           npm; .ci/run does), then `npm ci` in tests/js, or use --target switchyard";
    let version = Command::new(&node)
        .arg("--version")
        .stderr(Stdio::null())
        .output()
        .map_err(|error| {
            anyhow::anyhow!(
                "the socket.io baseline is npm `socket.io` 4.x on Node.js; {node} could not be \
                 run ({error}): {INSTALL}"
            )
        })?;
    let node_version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    let js = std::panic::catch_unwind(switchyard_tests::node_modules).map_err(|panic| {
        let reason = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
            .unwrap_or_default();
        anyhow::anyhow!(
            "the socket.io baseline needs the npm package `socket.io` 4.x in tests/js/node_modules, \
             and installing it failed ({reason}): {INSTALL}"
        )
    })?;
    let package = std::fs::read_to_string(js.join("node_modules/socket.io/package.json"))?;
    let socketio_version = serde_json::from_str::<serde_json::Value>(&package)?["version"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    let mut child = Command::new(&node)
        .arg(js.join("socketio/reference_server.js"))
        .current_dir(js)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {node} socketio/reference_server.js"))?;
    // It prints `{"port": N}` once listening.
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("piped")?).read_line(&mut line)?;
    let port = serde_json::from_str::<serde_json::Value>(&line)
        .ok()
        .and_then(|printed| printed["port"].as_u64());
    let Some(port) = port else {
        let _ = child.kill();
        let _ = child.wait();
        bail!(
            "the npm socket.io reference server did not say where it listens (printed {line:?}; \
             its error output is above): {INSTALL}"
        );
    };
    Ok(Running::Baseline {
        child,
        address: format!("127.0.0.1:{port}"),
        name: format!("npm socket.io {socketio_version} (node {node_version})"),
    })
}

/// Resident memory of a process, in bytes (Linux: `/proc/<pid>/status`, `VmRSS`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU seconds a process has used in user and in system (kernel) mode (Linux:
/// `/proc/<pid>/stat`, 100 Hz ticks).
pub fn cpu_split(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user / 100.0, system / 100.0))
}

/// Write system calls (`write`, `writev`…) a process made and the bytes they passed (Linux:
/// `/proc/<pid>/io`, `syscw` and `wchar`).
pub fn write_calls(pid: u32) -> Option<(u64, u64)> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let field = |name: &str| -> Option<u64> {
        io.lines()
            .find_map(|line| line.strip_prefix(name))?
            .trim()
            .parse()
            .ok()
    };
    Some((field("syscw:")?, field("wchar:")?))
}

/// CPU seconds (user + system) a process has used (Linux: `/proc/<pid>/stat`, 100 Hz ticks).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..13)?
        .iter()
        .filter_map(|t| t.parse::<f64>().ok())
        .sum();
    Some(ticks / 100.0)
}
