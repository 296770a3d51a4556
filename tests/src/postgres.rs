//! A throwaway PostgreSQL for tests: `initdb` in a temporary folder, `postgres` on a free
//! loopback port (trust authentication, user `postgres`), started once per test binary and
//! removed when the binary exits (a shell watches the binary's pipe; nothing outlives it).
//! As root, PostgreSQL runs as the `postgres` user (Debian's package creates it).
//!
//! `SWITCHYARD_POSTGRES_URL` (a `postgres://` URL to a server where `CREATE DATABASE` is
//! allowed) uses that server instead. Without either, [`server`] returns `None` and the test
//! skips with a message, unless `SWITCHYARD_REQUIRE_POSTGRES` is set, which makes it fail
//! (CI sets it: `scripts/test.sh` installs Debian's `postgresql`).
//!
//! Std only: the storage crate's tests include this file by path.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// A running server: its base URL (without a database) and, when this process started it,
/// the shell that stops it.
pub struct PostgresServer {
    /// `postgres://postgres@127.0.0.1:<port>`.
    base: String,
    /// The folder of the binaries (`psql`), when known.
    bin: Option<PathBuf>,
    /// The watching shell: closing its stdin (this process exiting) stops PostgreSQL.
    _watch: Option<Mutex<(Child, ChildStdin)>>,
}

impl PostgresServer {
    /// A new, empty database on the server, for one test; returns its URL.
    pub fn database(&self, label: &str) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "t{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            label
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(30)
                .collect::<String>()
                .to_ascii_lowercase()
        );
        self.psql(&format!("CREATE DATABASE {name}"));
        format!("{}/{name}", self.base)
    }

    /// Runs one SQL command on the `postgres` database.
    pub fn psql(&self, sql: &str) {
        self.psql_in("postgres", sql);
    }

    /// Runs one SQL command on database `database`.
    pub fn psql_in(&self, database: &str, sql: &str) {
        let psql = self
            .bin
            .as_ref()
            .map_or(PathBuf::from("psql"), |bin| bin.join("psql"));
        let output = Command::new(&psql)
            .arg(format!("{}/{database}", self.base))
            .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", psql.display()));
        assert!(
            output.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The server for this test binary, or `None` (after saying why) when there is none and
/// `SWITCHYARD_REQUIRE_POSTGRES` is unset.
pub fn server(test: &str) -> Option<&'static PostgresServer> {
    static SERVER: OnceLock<Result<PostgresServer, String>> = OnceLock::new();
    match SERVER.get_or_init(start) {
        Ok(server) => Some(server),
        Err(why) if std::env::var_os("SWITCHYARD_REQUIRE_POSTGRES").is_some() => {
            panic!("{test}: PostgreSQL is required (SWITCHYARD_REQUIRE_POSTGRES) but {why}")
        }
        Err(why) => {
            eprintln!("skipping {test} on PostgreSQL: {why} (scripts/test.sh installs Debian's postgresql)");
            None
        }
    }
}

/// Where `initdb` and `postgres` are: `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/<version>/bin`.
fn binaries() -> Option<PathBuf> {
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if output.status.success() && dir.join("initdb").is_file() {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn start() -> Result<PostgresServer, String> {
    if let Ok(url) = std::env::var("SWITCHYARD_POSTGRES_URL") {
        return Ok(PostgresServer {
            base: url.trim_end_matches('/').to_string(),
            bin: binaries(),
            _watch: None,
        });
    }
    let bin = binaries().ok_or("no PostgreSQL binaries (initdb) found")?;
    let dir = std::env::temp_dir().join(format!("switchyard-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let port = free_port();
    // initdb and postgres refuse to run as root: drop to `postgres`, which owns the folder.
    let as_user = if is_root() {
        let status = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status()
            .map_err(|e| format!("chown: {e}"))?;
        if !status.success() {
            return Err("running as root and there is no `postgres` user to run it as".into());
        }
        "setpriv --reuid=postgres --regid=postgres --clear-groups --"
    } else {
        ""
    };
    let script = r#"
        set -e
        dir="$1"; bin="$2"; port="$3"; as_user="$4"
        $as_user "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; echo "initdb failed" >&2; exit 1; }
        $as_user "$bin/postgres" -D "$dir/data" -c listen_addresses=127.0.0.1 -c port="$port" \
            -c unix_socket_directories="$dir" -c max_connections=300 -c logging_collector=off &
        pid=$!
        read -r _ || true
        kill -INT "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        rm -rf "$dir"
    "#;
    let mut child = Command::new("sh")
        .args(["-c", script, "sh"])
        .arg(&dir)
        .arg(&bin)
        .arg(port.to_string())
        .arg(as_user)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start sh: {e}"))?;
    let stdin = child.stdin.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let (lines, ready) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut log = Vec::new();
    loop {
        match ready.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.contains("ready to accept connections") => break,
            Ok(line) => log.push(line),
            Err(_) => {
                let _ = child.kill();
                return Err(format!(
                    "the throwaway PostgreSQL in {} did not start: {}",
                    dir.display(),
                    log.join("\n")
                ));
            }
        }
    }
    // Keep draining its log so it never blocks on a full pipe.
    std::thread::spawn(move || while ready.recv().is_ok() {});
    let server = PostgresServer {
        base: format!("postgres://postgres@127.0.0.1:{port}"),
        bin: Some(bin),
        _watch: Some(Mutex::new((child, stdin))),
    };
    Ok(server)
}
