//! A throwaway `redis-server` (cluster tests and the `cluster-fanout` benchmark): started on a
//! free loopback port without persistence, killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::Scratch;

/// How long `redis-server` may take to say it is ready.
const READY: Duration = Duration::from_secs(15);

/// A `redis-server` this test started, killed when dropped.
pub struct Redis {
    child: Child,
    port: u16,
    dir: Scratch,
}

impl Redis {
    /// Starts one on a free port, or `None` (with a message) when `redis-server` is absent.
    pub fn start(test: &str) -> Option<Redis> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            eprintln!(
                "skipping {test}: redis-server is not installed (scripts/test.sh installs it)"
            );
            return None;
        }
        let dir = Scratch::new();
        let port = free_port();
        let child = spawn_redis(port, &dir);
        Some(Redis { child, port, dir })
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL: no goodbye to clients).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.child = spawn_redis(self.port, &self.dir);
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Starts `redis-server` and waits for "Ready to accept connections".
fn spawn_redis(port: u16, dir: &Scratch) -> Child {
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server starts");
    let (lines, ready) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let until = Instant::now() + READY;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match ready.recv_timeout(left) {
            Ok(line) if line.contains("Ready to accept connections") => break,
            Ok(_) => continue,
            Err(_) => {
                let _ = child.kill();
                panic!("redis-server on port {port} did not get ready");
            }
        }
    }
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || while ready.recv().is_ok() {});
    child
}

impl Redis {
    /// Its process id (the benchmark counts its CPU).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}
