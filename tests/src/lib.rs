//! Support for the integration tests: build the real binaries, start `switchyard` with a
//! configuration, wait for its ready line, and stop it with a real signal.
//!
//! Nothing here sleeps to synchronise: every wait is for a line of output, with a deadline.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub mod postgres;
pub mod redis;

/// How long a server gets to print its ready line.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The binaries the tests run, built once per test process.
#[derive(Debug)]
pub struct Artifacts {
    /// The `switchyard` binary.
    pub host: PathBuf,
    /// Every cdylib of the workspace, by library name (`fixture_line`, `websocket`…).
    pub libraries: HashMap<String, PathBuf>,
    /// `plugin-api/`'s metadata (`deps/lib…-<hash>.rmeta`; today's SDK, not a frozen copy in
    /// `compat/`), for tests that type-check a plugin with `rustc` directly.
    pub plugin_api_rmeta: PathBuf,
}

impl Artifacts {
    /// The path of a library built from this workspace.
    pub fn library(&self, name: &str) -> &Path {
        self.libraries.get(name).unwrap_or_else(|| {
            panic!(
                "no library named {name} was built: {:?}",
                self.libraries.keys()
            )
        })
    }
}

/// Builds the host, the plugins and the fixtures (a no-op when `cargo test` already did) and
/// returns where they are. `cargo` tells us the paths, so any target dir or profile works.
pub fn artifacts() -> &'static Artifacts {
    static ARTIFACTS: OnceLock<Artifacts> = OnceLock::new();
    ARTIFACTS.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let mut command = Command::new(cargo);
        command
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "--workspace", "--exclude", "switchyard-tests"])
            // The load generator runs this too: it must not rebuild itself while running.
            .args(["--exclude", "switchyard-bench"])
            .args(["--message-format", "json-render-diagnostics"]);
        if !cfg!(debug_assertions) {
            command.arg("--release");
        }
        let output = command
            .stderr(Stdio::inherit())
            .output()
            .expect("cargo runs");
        assert!(output.status.success(), "building the workspace failed");
        let mut host = None;
        let mut libraries = HashMap::new();
        let mut plugin_api_rmeta = None;
        let plugin_api_manifest = repository().join("plugin-api/Cargo.toml");
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if message["reason"] != "compiler-artifact" {
                continue;
            }
            let kinds = message["target"]["kind"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let name = message["target"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if message["manifest_path"].as_str() == plugin_api_manifest.to_str()
                && kinds.iter().any(|kind| kind == "lib")
            {
                plugin_api_rmeta = message["filenames"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|file| file.as_str())
                    .find(|file| file.ends_with(".rmeta"))
                    .map(PathBuf::from);
            }
            if kinds.iter().any(|kind| kind == "bin") && name == "switchyard" {
                host = message["executable"].as_str().map(PathBuf::from);
            }
            if kinds.iter().any(|kind| kind == "cdylib") {
                let suffix = std::env::consts::DLL_SUFFIX;
                if let Some(file) = message["filenames"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|file| file.as_str())
                    .find(|file| file.ends_with(suffix))
                {
                    libraries.insert(name.replace('-', "_"), PathBuf::from(file));
                }
            }
        }
        Artifacts {
            host: host.expect("cargo built the switchyard binary"),
            libraries,
            plugin_api_rmeta: plugin_api_rmeta.expect("cargo built plugin-api"),
        }
    })
}

/// `tests/js` with its npm dependencies (`kuzzle-sdk`, `socket.io-client`, `socket.io`,
/// `playwright-core`)
/// installed: runs `npm ci` there once when one of them is missing. An exclusive lock on `tests/js/.npm-ci.lock` keeps test
/// binaries running in parallel from installing at the same time. Panics with npm's reason if
/// npm is missing or fails (the packages come from the npm registry).
pub fn node_modules() -> &'static Path {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY.get_or_init(|| {
        let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("js");
        let installed = || {
            [
                "kuzzle-sdk",
                "socket.io-client",
                "socket.io",
                "playwright-core",
            ]
            .iter()
            .all(|package| {
                js.join("node_modules")
                    .join(package)
                    .join("package.json")
                    .is_file()
            })
        };
        if installed() {
            return js;
        }
        let lock =
            std::fs::File::create(js.join(".npm-ci.lock")).expect("create the npm lock file");
        let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, error)| error)
            .expect("lock tests/js/.npm-ci.lock");
        if !installed() {
            let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
            let output = Command::new(npm)
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&js)
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|error| {
                    panic!(
                        "the SDK tests need Node.js and npm on PATH; running `npm` failed: {error}"
                    )
                });
            assert!(
                output.status.success() && installed(),
                "`npm ci` in {} failed ({}):\n{}{}",
                js.display(),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        js
    })
}

/// A scratch folder for one test's configuration, removed when dropped.
#[derive(Debug)]
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// A new empty folder.
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("a temporary folder"),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` to `name` inside it; returns the file's path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write a scratch file");
        path
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

/// A `[server.protocols.<name>]` section loading a workspace library by path.
pub fn protocol_section(name: &str, library: &str, extra: &str) -> String {
    format!(
        "[server.protocols.{name}]\nlibrary = {:?}\n{extra}\n",
        artifacts().library(library)
    )
}

/// What a finished `switchyard` run printed.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `switchyard` with `args` to completion (at most `timeout`).
pub fn run_host(args: &[&str], timeout: Duration) -> Finished {
    run_host_in(Path::new("."), args, timeout)
}

/// Runs `switchyard` with `args` in the folder `dir` to completion (at most `timeout`).
pub fn run_host_in(dir: &Path, args: &[&str], timeout: Duration) -> Finished {
    let mut child = Command::new(&artifacts().host)
        .current_dir(dir)
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("switchyard starts");
    let stdout = drain(child.stdout.take().expect("piped"));
    let stderr = drain(child.stderr.take().expect("piped"));
    let status = wait_with_deadline(&mut child, timeout)
        .unwrap_or_else(|| panic!("switchyard {args:?} did not exit within {timeout:?}"));
    Finished {
        status,
        stdout: stdout.join().expect("reader thread"),
        stderr: strip_ansi(&stderr.join().expect("reader thread")),
    }
}

/// Runs `switchyard --config <file>` with `config` to completion: for start-up refusals.
pub fn run_config(config: &str, timeout: Duration) -> Finished {
    let scratch = Scratch::new();
    let path = scratch.write("config.toml", config);
    run_host(&["--config", path.to_str().expect("utf-8 path")], timeout)
}

fn drain<R: Read + Send + 'static>(mut reader: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = reader.read_to_string(&mut text);
        text
    })
}

fn wait_with_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let until = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait for switchyard") {
            return Some(status);
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Removes terminal colour codes, in case a log line carries them.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A running `switchyard`, stopped (SIGKILL) when dropped if still running.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// The ready line.
    pub ready_line: String,
    /// Listener URLs by protocol name, from the ready line, an unspecified address (`0.0.0.0`,
    /// `[::]`: every interface) replaced by loopback's so that clients can connect.
    pub listeners: HashMap<String, Vec<String>>,
    stderr_lines: Receiver<String>,
    stderr_seen: Arc<Mutex<Vec<String>>>,
    _scratch: Scratch,
}

impl Server {
    /// Starts `switchyard` with `config` and waits for its ready line. Panics with everything
    /// it printed if it exits or does not get ready in time.
    pub fn start(config: &str) -> Server {
        let filter = std::env::var("SWITCHYARD_TEST_LOG").unwrap_or_else(|_| "info".into());
        Server::start_with_log(config, &filter)
    }

    /// [`Server::start`] with `RUST_LOG` set to `filter` (`"trace"`: every log line).
    pub fn start_with_log(config: &str, filter: &str) -> Server {
        let scratch = Scratch::new();
        let path = scratch.write("config.toml", config);
        let mut child = Command::new(&artifacts().host)
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", filter)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("switchyard starts");

        let (stdout_lines, stdout_receiver) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if stdout_lines.send(line).is_err() {
                    break;
                }
            }
        });
        let (stderr_sender, stderr_lines) = mpsc::channel();
        let stderr_seen = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&stderr_seen);
        let stderr = child.stderr.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let line = strip_ansi(&line);
                seen.lock().expect("not poisoned").push(line.clone());
                let _ = stderr_sender.send(line);
            }
        });

        let until = Instant::now() + START_TIMEOUT;
        let ready_line = loop {
            let left = until.saturating_duration_since(Instant::now());
            match stdout_receiver.recv_timeout(left) {
                Ok(line) if line.contains(" ready in ") => break line,
                Ok(_) => continue,
                Err(error) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let printed = stderr_seen.lock().expect("not poisoned").join("\n");
                    let why = match error {
                        RecvTimeoutError::Timeout => "did not get ready in time",
                        RecvTimeoutError::Disconnected => "exited before getting ready",
                    };
                    panic!("switchyard {why}; it printed:\n{printed}");
                }
            }
        };
        let listeners = parse_ready_line(&ready_line)
            .into_iter()
            .map(|(name, urls)| (name, urls.iter().map(|url| reachable(url)).collect()))
            .collect();
        Server {
            child,
            ready_line,
            listeners,
            stderr_lines,
            stderr_seen,
            _scratch: scratch,
        }
    }

    /// The first listener URL a protocol announced (`ws://127.0.0.1:41234`).
    pub fn url(&self, protocol: &str) -> &str {
        self.listeners
            .get(protocol)
            .and_then(|urls| urls.first())
            .unwrap_or_else(|| {
                panic!(
                    "protocol {protocol} announced no listener: {}",
                    self.ready_line
                )
            })
    }

    /// The `host:port` of a protocol's first listener.
    pub fn address(&self, protocol: &str) -> String {
        let url = self.url(protocol);
        url.split_once("://")
            .map_or(url, |(_, rest)| rest)
            .trim_end_matches('/')
            .to_string()
    }

    /// Waits for a log line containing every one of `needles`; returns it.
    pub fn wait_for_log(&self, needles: &[&str], timeout: Duration) -> String {
        let until = Instant::now() + timeout;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) if needles.iter().all(|needle| line.contains(needle)) => return line,
                Ok(_) => continue,
                Err(_) => panic!(
                    "no log line with {needles:?} within {timeout:?}; log so far:\n{}",
                    self.log()
                ),
            }
        }
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        self.stderr_seen.lock().expect("not poisoned").join("\n")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`SIGTERM`, `SIGINT`) without waiting.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal switchyard");
    }

    /// Sends `signal` and waits for the process to exit.
    pub fn stop_with(mut self, signal: nix::sys::signal::Signal, timeout: Duration) -> ExitStatus {
        self.signal(signal);
        wait_with_deadline(&mut self.child, timeout)
            .unwrap_or_else(|| panic!("switchyard did not exit within {timeout:?} of {signal}"))
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(mut self, timeout: Duration) -> ExitStatus {
        wait_with_deadline(&mut self.child, timeout)
            .unwrap_or_else(|| panic!("switchyard did not exit within {timeout:?}"))
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The URL a client on this machine uses for a listener announced as `url`: the ready line
/// names the bound address, and one bound on every interface is reached on loopback.
pub fn reachable(url: &str) -> String {
    url.replacen("://0.0.0.0:", "://127.0.0.1:", 1)
        .replacen("://[::]:", "://[::1]:", 1)
}

/// `name (plugin version) on url, url; name …` → listener URLs by protocol name, as printed.
pub fn parse_ready_line(line: &str) -> HashMap<String, Vec<String>> {
    let mut listeners = HashMap::new();
    let Some((_, list)) = line.split_once(": ") else {
        return listeners;
    };
    for entry in list.split("; ") {
        if let Some(url) = entry.strip_prefix("admin on ") {
            listeners.insert("admin".to_string(), vec![url.to_string()]);
            continue;
        }
        let Some((name, rest)) = entry.split_once(" (") else {
            continue;
        };
        let urls = rest
            .split_once(") on ")
            .map(|(_, urls)| urls.split(", ").map(str::to_string).collect())
            .unwrap_or_default();
        listeners.insert(name.to_string(), urls);
    }
    listeners
}

/// A client of the line-protocol fixture: one JSON request per line.
#[derive(Debug)]
pub struct LineClient {
    reader: BufReader<std::net::TcpStream>,
    writer: std::net::TcpStream,
}

impl LineClient {
    /// Connects to `address` (`127.0.0.1:port`).
    pub fn connect(address: &str) -> LineClient {
        let stream = std::net::TcpStream::connect(address).expect("connect to the line fixture");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("set a read timeout");
        LineClient {
            writer: stream.try_clone().expect("clone the stream"),
            reader: BufReader::new(stream),
        }
    }

    /// Sends one line.
    pub fn send(&mut self, line: &str) {
        use std::io::Write;
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .expect("send a line");
    }

    /// Reads one line (10 s at most); `None` at end of stream.
    pub fn read_line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(line.trim_end_matches('\n').to_string()),
            Err(error) => panic!("no line from the line fixture: {error}"),
        }
    }

    /// Sends a request and returns `(timing, status, content)` of its answer.
    pub fn request(&mut self, request: &str) -> (String, u16, serde_json::Value) {
        self.send(request);
        let line = self.read_line().expect("an answer");
        parse_answer(&line)
    }
}

/// Splits an answer line `sync 200 {…}` into its parts.
pub fn parse_answer(line: &str) -> (String, u16, serde_json::Value) {
    let mut parts = line.splitn(3, ' ');
    let timing = parts.next().unwrap_or_default().to_string();
    let status = parts
        .next()
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("not an answer line: {line}"));
    let content = serde_json::from_str(parts.next().unwrap_or_default())
        .unwrap_or_else(|error| panic!("answer content is not JSON ({error}): {line}"));
    (timing, status, content)
}

/// The repository's root folder.
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_path_buf()
}

/// Builds the C example `examples/<name>` as an author would outside this repository: copies
/// its files and `switchyard_protocol.h` (nothing else) into `out`, and runs a bare `make`
/// there with the system C compiler. Returns the library's path (`build/lib<name with _>.so`).
/// Panics with make's output.
pub fn build_c_example(name: &str, out: &Path) -> PathBuf {
    let example = repository().join("examples").join(name);
    for entry in std::fs::read_dir(&example).expect("the example's folder") {
        let entry = entry.expect("a folder entry");
        if entry.file_type().expect("a file type").is_file() {
            std::fs::copy(entry.path(), out.join(entry.file_name())).expect("copy a file");
        }
    }
    std::fs::copy(
        repository().join("plugin-api/include/switchyard_protocol.h"),
        out.join("switchyard_protocol.h"),
    )
    .expect("copy the header");
    let output = Command::new("make")
        .current_dir(out)
        .stdin(Stdio::null())
        .output()
        .expect("make runs (the C example needs make and cc)");
    assert!(
        output.status.success(),
        "building examples/{name} in {} failed:\n{}{}",
        out.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    out.join("build").join(format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        name.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    ))
}

/// Compiles C source `source` with the system `cc` and `plugin-api/include` on the include
/// path, with extra `args` (`-shared`, `-D…`), into `out`. Panics with the compiler's output.
pub fn compile_c(source: &Path, out: &Path, args: &[&str]) {
    let output = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".to_string()))
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-fPIC",
        ])
        .arg("-I")
        .arg(repository().join("plugin-api/include"))
        .args(args)
        .arg("-o")
        .arg(out)
        .arg(source)
        .stdin(Stdio::null())
        .output()
        .expect("the system C compiler `cc` runs");
    assert!(
        output.status.success(),
        "compiling {} failed:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}
