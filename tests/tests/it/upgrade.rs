//! Hot upgrades against the real binary (issue 18, item 4): `switchyard upgrade` (SIGUSR2)
//! starts the binary and plugins now on disk, hands them the listeners, and the old process
//! drains and exits. Clients connect in a loop throughout and not one is refused; existing
//! WebSocket clients are closed with 1012; a broken new plugin leaves the old process serving.
//!
//! Each test copies the binary and the plugins to a folder of its own (an upgrade starts the
//! files on disk, and one test replaces a plugin there), and reads the output of both processes
//! from the same pipes: the new process inherits the old one's standard output and error.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use switchyard_tests::{artifacts, parse_ready_line, reachable, strip_ansi};
use tungstenite::Message;

const TIMEOUT: Duration = Duration::from_secs(60);

/// The binary, the plugins and the configuration, copied to a folder of their own, and the
/// running process's output.
struct Deployment {
    dir: tempfile::TempDir,
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Deployment {
    /// Copies the host, `websocket` and `http` to a new folder and starts it there.
    fn start() -> Deployment {
        let dir = tempfile::tempdir().expect("a temporary folder");
        std::fs::create_dir(dir.path().join("plugins")).unwrap();
        std::fs::copy(&artifacts().host, dir.path().join("switchyard")).unwrap();
        for name in ["websocket", "http"] {
            install(
                artifacts().library(name),
                &dir.path().join("plugins").join(file(name)),
            );
        }
        std::fs::write(
            dir.path().join("config.toml"),
            "[server]\npluginDir = \"plugins\"\nshutdownTimeout = 5000\n\
             [server.protocols.websocket]\nlibrary = \"websocket\"\nport = 0\naddress = \"127.0.0.1\"\n\
             [server.protocols.http]\nlibrary = \"http\"\nport = 0\naddress = \"127.0.0.1\"\n",
        )
        .unwrap();
        let mut command = Command::new(dir.path().join("switchyard"));
        command
            .current_dir(dir.path())
            .args(["--config", "config.toml", "--pid-file", "switchyard.pid"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn_copied(&mut command);
        let log = Arc::new(Mutex::new(Vec::new()));
        let stdout = lines(child.stdout.take().unwrap(), Arc::clone(&log));
        let stderr = lines(child.stderr.take().unwrap(), Arc::clone(&log));
        Deployment {
            dir,
            child,
            stdout,
            stderr,
            log,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The next ready line (the first process's, then the new one's), as `protocol → address`.
    fn ready(&self) -> (String, String) {
        let until = Instant::now() + TIMEOUT;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) if line.contains(" ready in ") => {
                    let listeners = parse_ready_line(&line);
                    let address = |protocol: &str| {
                        let url = reachable(&listeners[protocol][0]);
                        url.split_once("://")
                            .unwrap()
                            .1
                            .trim_end_matches('/')
                            .to_string()
                    };
                    return (address("websocket"), address("http"));
                }
                Ok(_) => continue,
                Err(_) => panic!("no ready line; log:\n{}", self.log()),
            }
        }
    }

    /// Waits for a log line containing every needle.
    fn wait_for_log(&self, needles: &[&str]) -> String {
        let until = Instant::now() + TIMEOUT;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if needles.iter().all(|needle| line.contains(needle)) => return line,
                Ok(_) => continue,
                Err(_) => panic!("no log line with {needles:?}; log:\n{}", self.log()),
            }
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn pid_file(&self) -> u32 {
        std::fs::read_to_string(self.path().join("switchyard.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Runs `switchyard upgrade --pid-file switchyard.pid`, as an operator would.
    fn upgrade(&self) {
        let output = Command::new(self.path().join("switchyard"))
            .current_dir(self.path())
            .args(["upgrade", "--pid-file", "switchyard.pid"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let said = String::from_utf8_lossy(&output.stdout);
        assert!(
            said.starts_with(&format!(
                "sent SIGUSR2 to switchyard (process {}): ",
                self.child.id()
            )),
            "{said}"
        );
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        // The new process is not our child: stop it through its pid file.
        if let Ok(text) = std::fs::read_to_string(self.dir.path().join("switchyard.pid")) {
            if let Ok(pid) = text.trim().parse::<i32>() {
                if pid as u32 != self.child.id() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn file(library: &str) -> String {
    format!(
        "{}{library}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// Puts a library at `to` as a new file (a rename): a running process keeps its mapping of
/// the old one, as with a package manager's upgrade.
fn install(from: &Path, to: &Path) {
    let staging: PathBuf = to.with_extension("new");
    std::fs::copy(from, &staging).unwrap();
    std::fs::rename(&staging, to).unwrap();
}

fn lines(
    reader: impl std::io::Read + Send + 'static,
    log: Arc<Mutex<Vec<String>>>,
) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            let line = strip_ansi(&line);
            log.lock().unwrap().push(line.clone());
            let _ = sender.send(line);
        }
    });
    receiver
}

type Socket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>;

fn websocket(address: &str) -> Result<Socket, String> {
    let (socket, _) = tungstenite::connect(format!("ws://{address}/"))
        .map_err(|error| format!("connect: {error}"))?;
    if let tungstenite::stream::MaybeTlsStream::Plain(stream) = socket.get_ref() {
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    }
    Ok(socket)
}

/// What a WebSocket `server:now` got.
#[derive(Debug, PartialEq)]
enum Outcome {
    Answered,
    /// Closed with this code and reason before the answer came.
    Closed(u16, String),
}

fn server_now(socket: &mut Socket, id: &str) -> Result<Outcome, String> {
    let request = format!(r#"{{"controller":"server","action":"now","requestId":"{id}"}}"#);
    socket
        .send(Message::text(request))
        .map_err(|error| format!("send: {error}"))?;
    loop {
        match socket.read().map_err(|error| format!("read: {error}"))? {
            Message::Text(text) => {
                let answer: Value = serde_json::from_str(&text).unwrap();
                if answer["requestId"] == id {
                    assert_eq!(answer["status"], 200, "{answer}");
                    return Ok(Outcome::Answered);
                }
            }
            Message::Close(frame) => {
                let frame = frame.expect("a close frame with a code");
                return Ok(Outcome::Closed(
                    u16::from(frame.code),
                    frame.reason.to_string(),
                ));
            }
            _ => {}
        }
    }
}

/// Reads until the server closes: its close code and reason.
fn read_close(socket: &mut Socket) -> Result<(u16, String), String> {
    loop {
        match socket.read().map_err(|error| format!("read: {error}"))? {
            Message::Close(frame) => {
                let frame = frame.expect("a close frame with a code");
                return Ok((u16::from(frame.code), frame.reason.to_string()));
            }
            _ => continue,
        }
    }
}

/// One `GET /_now` on a new connection; the status line.
fn http_now(address: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(address).map_err(|error| format!("connect: {error}"))?;
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
        .write_all(b"GET /_now HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|error| format!("write: {error}"))?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|error| format!("read: {error}"))?;
    Ok(answer.lines().next().unwrap_or("").to_string())
}

/// Clients connecting in a loop on a few threads until stopped: every connection's outcome,
/// and the longest one took (the pause an upgrade causes).
struct Looper {
    stop: Arc<AtomicBool>,
    done: mpsc::Receiver<()>,
    threads: Vec<std::thread::JoinHandle<Vec<Attempt>>>,
}

/// One connection's outcome and how long it took.
type Attempt = (Result<String, String>, Duration);

/// Threads per protocol: while no process accepts, each waits in the socket's queue.
const CLIENT_THREADS: usize = 3;

impl Looper {
    fn start(attempt: impl Fn(usize) -> Result<String, String> + Send + Sync + 'static) -> Looper {
        let stop = Arc::new(AtomicBool::new(false));
        let (done, done_receiver) = mpsc::channel();
        let attempt = Arc::new(attempt);
        let threads = (0..CLIENT_THREADS)
            .map(|thread| {
                let (stopping, done, attempt) =
                    (Arc::clone(&stop), done.clone(), Arc::clone(&attempt));
                std::thread::spawn(move || {
                    let mut outcomes = Vec::new();
                    let mut number = thread * 1_000_000;
                    while !stopping.load(Ordering::Acquire) {
                        number += 1;
                        let began = Instant::now();
                        let outcome = attempt(number);
                        outcomes.push((outcome, began.elapsed()));
                        let _ = done.send(());
                    }
                    outcomes
                })
            })
            .collect();
        Looper {
            stop,
            done: done_receiver,
            threads,
        }
    }

    /// Waits until `count` more attempts finished.
    fn wait_for(&self, count: usize) {
        for _ in 0..count {
            self.done
                .recv_timeout(TIMEOUT)
                .expect("the loop makes progress");
        }
    }

    fn finish(self) -> (Vec<Result<String, String>>, Duration) {
        self.stop.store(true, Ordering::Release);
        let mut outcomes = Vec::new();
        let mut longest = Duration::ZERO;
        for thread in self.threads {
            for (outcome, took) in thread.join().unwrap() {
                outcomes.push(outcome);
                longest = longest.max(took);
            }
        }
        (outcomes, longest)
    }
}

#[test]
fn an_upgrade_refuses_no_connection_and_closes_websocket_clients_with_1012() {
    let deployment = Deployment::start();
    let (ws, http) = deployment.ready();
    let old_pid = deployment.child.id();
    assert_eq!(deployment.pid_file(), old_pid);

    // Existing clients, each answered once.
    let mut existing: Vec<Socket> = (0..3).map(|_| websocket(&ws).unwrap()).collect();
    for (number, socket) in existing.iter_mut().enumerate() {
        assert_eq!(
            server_now(socket, &format!("before-{number}")),
            Ok(Outcome::Answered)
        );
    }

    let ws_address = ws.clone();
    let ws_loop = Looper::start(move |number| {
        let mut socket = websocket(&ws_address)?;
        match server_now(&mut socket, &format!("loop-{number}"))? {
            Outcome::Answered => Ok("answered".to_string()),
            // Accepted by the old process just before it drained: a restart, not a refusal.
            Outcome::Closed(1012, reason) if reason == "service restart" => {
                Ok("closed 1012".to_string())
            }
            other => Err(format!("{other:?}")),
        }
    });
    let http_address = http.clone();
    let http_loop = Looper::start(move |_| http_now(&http_address));
    ws_loop.wait_for(20);
    http_loop.wait_for(20);

    deployment.upgrade();
    deployment.wait_for_log(&["upgrade: the new process passed its checks"]);
    for socket in &mut existing {
        assert_eq!(
            read_close(socket),
            Ok((1012, "service restart".to_string())),
            "{}",
            deployment.log()
        );
    }

    // The new process announces the same addresses: the same sockets.
    assert_eq!(deployment.ready(), (ws.clone(), http.clone()));
    let mut old = deployment;
    let status = old.child.wait().unwrap();
    assert!(status.success(), "{status}: {}", old.log());
    let new_pid = old.pid_file();
    assert_ne!(new_pid, old_pid);

    // Clients keep being served by the new process.
    ws_loop.wait_for(20);
    http_loop.wait_for(20);
    let (ws_outcomes, ws_longest) = ws_loop.finish();
    let (http_outcomes, http_longest) = http_loop.finish();
    let ws_failures: Vec<_> = ws_outcomes
        .iter()
        .filter(|outcome| outcome.is_err())
        .collect();
    assert!(
        ws_failures.is_empty(),
        "{} of {} WebSocket connections failed: {ws_failures:?}\n{}",
        ws_failures.len(),
        ws_outcomes.len(),
        old.log()
    );
    let http_failures: Vec<_> = http_outcomes
        .iter()
        .filter(|outcome| outcome.as_deref() != Ok("HTTP/1.1 200 OK"))
        .collect();
    assert!(
        http_failures.is_empty(),
        "{} of {} HTTP connections failed: {http_failures:?}\n{}",
        http_failures.len(),
        http_outcomes.len(),
        old.log()
    );
    let restarted = ws_outcomes
        .iter()
        .filter(|outcome| outcome.as_deref() == Ok("closed 1012"))
        .count();
    eprintln!(
        "during the upgrade: {} WebSocket connections ({restarted} closed with 1012 after being accepted by the old process, the longest {ws_longest:?}), {} HTTP requests (the longest {http_longest:?}), none refused",
        ws_outcomes.len(),
        http_outcomes.len()
    );
    let mut socket = websocket(&ws).unwrap();
    assert_eq!(server_now(&mut socket, "new"), Ok(Outcome::Answered));
}

#[test]
fn an_upgrade_to_a_broken_plugin_leaves_the_old_process_serving() {
    let deployment = Deployment::start();
    let (ws, http) = deployment.ready();
    let old_pid = deployment.child.id();
    let mut existing = websocket(&ws).unwrap();
    assert_eq!(server_now(&mut existing, "before"), Ok(Outcome::Answered));

    // The new `http` plugin on disk lacks two hooks.
    let http_library = deployment.path().join("plugins").join(file("http"));
    install(artifacts().library("fixture_missing_hooks"), &http_library);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old_pid as i32),
        nix::sys::signal::Signal::SIGUSR2,
    )
    .unwrap();

    // The old process logs the new one's refusal, which the new one printed too.
    let logged = deployment.wait_for_log(&[
        "upgrade failed: the new process did not start; still serving",
        "is missing hooks: joinChannel, leaveChannel",
    ]);
    assert!(logged.contains("exit status: 1"), "{logged}");
    let log = deployment.log();
    assert!(
        log.lines()
            .any(|line| line.starts_with("error: protocol \"http\"")
                && line.ends_with("is missing hooks: joinChannel, leaveChannel")),
        "{log}"
    );

    // The old process still serves, old and new clients, on both protocols.
    assert_eq!(server_now(&mut existing, "after"), Ok(Outcome::Answered));
    let mut fresh = websocket(&ws).unwrap();
    assert_eq!(server_now(&mut fresh, "fresh"), Ok(Outcome::Answered));
    assert_eq!(http_now(&http).as_deref(), Ok("HTTP/1.1 200 OK"));
    assert_eq!(deployment.pid_file(), old_pid);
    let mut deployment = deployment;
    assert!(matches!(deployment.child.try_wait(), Ok(None)));
}

#[test]
fn an_upgrade_to_a_bad_configuration_leaves_the_old_process_serving() {
    let deployment = Deployment::start();
    let (ws, _) = deployment.ready();
    let old_pid = deployment.child.id();
    std::fs::write(
        deployment.path().join("config.toml"),
        "[server]\npluginDir = \"plugins\"\nshutdownTimeout = \"soon\"\n",
    )
    .unwrap();
    deployment.upgrade();
    let logged = deployment.wait_for_log(&[
        "upgrade failed: the new process did not start; still serving",
        "server.shutdownTimeout",
    ]);
    assert!(logged.contains("exit status: 1"), "{logged}");
    let mut client = websocket(&ws).unwrap();
    assert_eq!(server_now(&mut client, "still"), Ok(Outcome::Answered));
    assert_eq!(deployment.pid_file(), old_pid);
}

#[test]
fn upgrade_without_a_running_process_says_why() {
    let scratch = tempfile::tempdir().unwrap();
    let output = Command::new(&artifacts().host)
        .current_dir(scratch.path())
        .args(["upgrade", "--pid-file", "missing.pid"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.starts_with("error: cannot read the pid file missing.pid: "),
        "{said}"
    );
    let output = Command::new(&artifacts().host)
        .arg("upgrade")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr)
        .starts_with("error: upgrade needs --pid-file PATH (the running process's)\n"));
}

/// Spawns a binary this test just copied. Another test thread forking at the moment of the copy
/// holds the file open for writing in its child until that child's exec, and exec then fails
/// with ETXTBSY ("Text file busy"): retried, a bounded number of times.
fn spawn_copied(command: &mut Command) -> std::process::Child {
    let mut attempts = 0;
    loop {
        match command.spawn() {
            Ok(child) => return child,
            Err(error) if error.raw_os_error() == Some(26) && attempts < 100 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(error) => panic!("switchyard starts: {error}"),
        }
    }
}
