//! TLS on every protocol, against the real binary with real clients and a CA the test makes with
//! the `openssl` command: the Kuzzle SDK over `wss://` (the CA trusted through
//! `NODE_EXTRA_CA_CERTS`), curl over `https://` with `--cacert`, `mosquitto_sub`/`mosquitto_pub`
//! with `--cafile` on `mqtts://`, socket.io-client over `https://` and its upgrade; mutual TLS;
//! plain-text clients on TLS ports; certificates reloaded on SIGHUP by every TLS listener while
//! old connections keep working; bad files refused at start-up with the key's path.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{json, Value};
use switchyard_tests::{node_modules, protocol_section, run_host, Scratch, Server};

const WAIT: Duration = Duration::from_secs(20);

/// A CA and what it signed, in a scratch folder.
struct Pki {
    folder: Scratch,
}

impl Pki {
    /// The CA; `server-one` (serial 0x1001) and `server-two` (0x2002) for localhost and
    /// 127.0.0.1; `client` for mutual TLS. Installed as `server.pem`/`server.key`: `server-one`.
    fn new() -> Pki {
        let pki = Pki {
            folder: Scratch::new(),
        };
        pki.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Switchyard Test CA",
        ]);
        pki.folder.write(
            "server.ext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        );
        pki.folder.write(
            "client.ext",
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
        );
        pki.sign("server-one", "switchyard one", "0x1001", "server.ext");
        pki.sign("server-two", "switchyard two", "0x2002", "server.ext");
        pki.sign("client", "a client", "0x3003", "client.ext");
        pki.install("server-one");
        pki
    }

    fn openssl(&self, args: &[&str]) {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(self.folder.path())
            .output()
            .expect("the TLS tests need the openssl command");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn sign(&self, name: &str, subject: &str, serial: &str, extensions: &str) {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        let subject = format!("/CN={subject}");
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &subject,
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            serial,
            "-days",
            "2",
            "-out",
            &pem,
            "-extfile",
            extensions,
        ]);
    }

    /// Copies `name`'s certificate and key over `server.pem` and `server.key` (a rotation).
    fn install(&self, name: &str) {
        for extension in ["pem", "key"] {
            std::fs::copy(
                self.path(&format!("{name}.{extension}")),
                self.path(&format!("server.{extension}")),
            )
            .expect("copy a certificate");
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.folder.path().join(name)
    }

    /// `[server.protocols.<name>]` on a free loopback port, over TLS with `server.pem`.
    fn section(&self, name: &str, library: &str, extra: &str) -> String {
        protocol_section(
            name,
            library,
            &format!(
                "port = 0\naddress = \"127.0.0.1\"\n{extra}\n[server.protocols.{name}.ssl]\n\
                 certificate = {:?}\nprivateKey = {:?}\n",
                self.path("server.pem"),
                self.path("server.key"),
            ),
        )
    }
}

fn port_of(server: &Server, protocol: &str) -> String {
    let address = server.address(protocol);
    address.rsplit(':').next().unwrap().to_string()
}

/// Runs `tests/js/tls.js <scenario> <port>` to completion; its observations.
fn node(pki: &Pki, scenario: &str, port: &str) -> Vec<Value> {
    let output = node_command(pki, scenario, port)
        .stdin(Stdio::null())
        .output()
        .expect("node runs");
    assert!(
        output.status.success(),
        "tls.js {scenario}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    parse_lines(&output.stdout)
}

fn node_command(pki: &Pki, scenario: &str, port: &str) -> Command {
    let js = node_modules();
    let mut command = Command::new("node");
    command
        .arg(js.join("tls.js"))
        .args([scenario, port])
        .current_dir(js)
        .env("NODE_EXTRA_CA_CERTS", pki.path("ca.pem"));
    command
}

fn parse_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect()
}

/// `curl -sS` with `args`: its exit status, and the body followed by the status code.
fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("the TLS tests need curl")
}

/// A client whose stdout lines arrive as they are printed.
struct Running {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn spawn(mut command: Command) -> Running {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
        let stdout = child.stdout.take().expect("piped");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn wait_for(&mut self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(WAIT) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {needle:?}; got:\n{}", self.seen.join("\n")),
            }
        }
    }

    fn stdin(&mut self) -> ChildStdin {
        self.child.stdin.take().expect("piped stdin")
    }

    /// Waits for the exit (it must succeed); every line printed.
    fn finish(mut self) -> Vec<String> {
        while let Ok(line) = self.lines.recv_timeout(WAIT) {
            self.seen.push(line);
        }
        let status = self.child.wait().expect("wait");
        assert!(
            status.success(),
            "{status}; printed:\n{}",
            self.seen.join("\n")
        );
        self.seen
    }
}

fn mosquitto(tool: &str, port: &str, ca: Option<&Path>, args: &[&str]) -> Command {
    // Line-buffered, so the test can wait for "Subscribed" before publishing.
    let mut command = Command::new("stdbuf");
    command
        .args(["-oL", tool, "-h", "localhost", "-p", port])
        .args(args)
        .stdin(Stdio::null());
    if let Some(ca) = ca {
        command.arg("--cafile").arg(ca);
    }
    command
}

fn every_protocol(pki: &Pki) -> String {
    format!(
        "[server]\n{}{}{}{}{}\n[server.protocols.mtls.ssl]\ncertificate = {:?}\nprivateKey = {:?}\nclientCa = {:?}\n",
        pki.section("websocket", "websocket", ""),
        pki.section("http", "http", "workerThreads = 1"),
        pki.section("mqtt", "mqtt", "allowPubSub = true"),
        pki.section("socketio", "socketio", ""),
        protocol_section(
            "mtls",
            "http",
            "port = 0\naddress = \"127.0.0.1\"\nworkerThreads = 1"
        ),
        pki.path("server.pem"),
        pki.path("server.key"),
        pki.path("ca.pem"),
    )
}

#[test]
fn every_protocol_speaks_tls_to_real_clients() {
    let pki = Pki::new();
    let server = Server::start(&every_protocol(&pki));
    for (protocol, scheme) in [
        ("websocket", "wss://"),
        ("http", "https://"),
        ("mqtt", "mqtts://"),
        ("socketio", "https://"),
        ("mtls", "https://"),
    ] {
        assert!(
            server.url(protocol).starts_with(scheme),
            "{}",
            server.ready_line
        );
    }

    // The SDK over wss://: a request, a subscription and its notification.
    let ws_port = port_of(&server, "websocket");
    assert_eq!(
        node(&pki, "sdk", &ws_port),
        [
            json!({"event": "now", "isNumber": true}),
            json!({"event": "notification", "action": "publish", "body": "wss", "bigIntact": true}),
        ]
    );
    let certificate = node(&pki, "serial", &ws_port);
    assert_eq!(certificate[0]["serial"], "1001");
    assert_eq!(certificate[0]["subject"], "switchyard one");

    // curl over https:// trusting the CA.
    let http_port = port_of(&server, "http");
    let ca = pki.path("ca.pem");
    let ca = ca.to_str().unwrap();
    let answer = curl(&[
        "--cacert",
        ca,
        &format!("https://localhost:{http_port}/_now"),
    ]);
    let text = String::from_utf8_lossy(&answer.stdout).into_owned();
    assert!(answer.status.success(), "{text}");
    let (body, code) = text.rsplit_once('\n').unwrap();
    assert_eq!(code, "200", "{text}");
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        (&body["status"], &body["controller"]),
        (&json!(200), &json!("server"))
    );

    // Plain text on a TLS port: an HTTP client is told why, in plain text; a WebSocket client
    // gets the same 400 instead of an upgrade.
    for port in [&http_port, &ws_port] {
        let answer = curl(&[&format!("http://localhost:{port}/_now")]);
        assert_eq!(
            String::from_utf8_lossy(&answer.stdout),
            "this port speaks TLS: use https:// or wss:// URLs to reach it\n400"
        );
    }
    match tungstenite::connect(format!("ws://127.0.0.1:{ws_port}/")) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 400),
        other => panic!("a plain WebSocket client on a TLS port: {other:?}"),
    }

    // mosquitto over mqtts:// trusting the CA: a subscriber gets a publication.
    let mqtt_port = port_of(&server, "mqtt");
    let ca_path = pki.path("ca.pem");
    let mut subscriber = Running::spawn(mosquitto(
        "mosquitto_sub",
        &mqtt_port,
        Some(&ca_path),
        &["-d", "-C", "1", "-t", "tls/topic"],
    ));
    subscriber.wait_for("Subscribed");
    let published = mosquitto(
        "mosquitto_pub",
        &mqtt_port,
        Some(&ca_path),
        &["-t", "tls/topic", "-m", "over mqtts"],
    )
    .output()
    .unwrap();
    assert!(published.status.success(), "{published:?}");
    let lines = subscriber.finish();
    assert!(lines.iter().any(|line| line == "over mqtts"), "{lines:?}");
    // Without TLS, the client's CONNECT is not a handshake: the connection is closed.
    let plain = mosquitto(
        "mosquitto_pub",
        &mqtt_port,
        None,
        &["-t", "tls/topic", "-m", "plain"],
    )
    .output()
    .unwrap();
    assert!(!plain.status.success(), "{plain:?}");

    // socket.io-client over https://, upgraded to WebSocket inside TLS.
    let sio_port = port_of(&server, "socketio");
    assert_eq!(
        node(&pki, "socketio", &sio_port),
        [
            json!({"event": "upgraded", "transport": "websocket"}),
            json!({"event": "now", "status": 200, "transport": "websocket"}),
        ]
    );

    // Mutual TLS: refused without a client certificate, served with one the CA signed.
    let mtls_port = port_of(&server, "mtls");
    let url = format!("https://localhost:{mtls_port}/_now");
    let refused = curl(&["--cacert", ca, &url]);
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("alert"),
        "{refused:?}"
    );
    let client_pem = pki.path("client.pem");
    let client_key = pki.path("client.key");
    let served = curl(&[
        "--cacert",
        ca,
        "--cert",
        client_pem.to_str().unwrap(),
        "--key",
        client_key.to_str().unwrap(),
        &url,
    ]);
    assert!(
        String::from_utf8_lossy(&served.stdout).ends_with("\n200"),
        "{served:?}"
    );

    assert!(server.stop_with(Signal::SIGINT, WAIT).success());
}

#[test]
fn sighup_reloads_every_tls_listener_and_old_connections_stay() {
    let pki = Pki::new();
    let server = Server::start(&every_protocol(&pki));
    let ws_port = port_of(&server, "websocket");
    let mut old = Running::spawn({
        let mut command = node_command(&pki, "reload", &ws_port);
        command.stdin(Stdio::piped());
        command
    });
    let mut go = old.stdin();
    let connected: Value = serde_json::from_str(&old.wait_for("connected")).unwrap();
    assert_eq!(connected["serial"], "1001");

    pki.install("server-two");
    server.signal(Signal::SIGHUP);
    // Each TLS listener, in every plugin library (each with its own tokio and signal handler),
    // reloads: five instances in four libraries.
    let mut reloaded: Vec<String> = (0..5)
        .map(|_| server.wait_for_log(&["TLS certificates reloaded"], WAIT))
        .collect();
    reloaded.sort();
    for name in ["websocket", "http", "mqtt", "socketio", "mtls"] {
        assert!(
            reloaded
                .iter()
                .any(|line| line.contains(&format!("protocol=\"{name}\""))),
            "no reload logged for {name}: {reloaded:?}\n{}",
            server.log()
        );
    }

    // A new handshake sees the new certificate; the old connection still answers.
    writeln!(go, "go").unwrap();
    let lines = old.finish();
    let after: Value = serde_json::from_str(&lines[lines.len() - 2]).unwrap();
    assert_eq!(
        (&after["serial"], &after["subject"]),
        (&json!("2002"), &json!("switchyard two"))
    );
    let still: Value = serde_json::from_str(&lines[lines.len() - 1]).unwrap();
    assert_eq!(still, json!({"event": "old connection", "isNumber": true}));
    for protocol in ["mqtt", "http", "socketio"] {
        let certificate = node(&pki, "serial", &port_of(&server, protocol));
        assert_eq!(certificate[0]["serial"], "2002", "{protocol}");
    }

    // A broken rotation keeps the certificates in use, and says why.
    std::fs::write(pki.path("server.pem"), "not a certificate\n").unwrap();
    server.signal(Signal::SIGHUP);
    let refused = server.wait_for_log(&["TLS certificates not reloaded"], WAIT);
    assert!(
        refused.contains(".ssl.certificate: ")
            && refused.contains("holds no PEM CERTIFICATE blocks"),
        "{refused}"
    );
    assert_eq!(node(&pki, "serial", &ws_port)[0]["serial"], "2002");

    // The host's own signals still work with the plugins' SIGHUP handlers installed.
    assert!(server.stop_with(Signal::SIGTERM, WAIT).success());
}

#[test]
fn bad_tls_files_are_refused_at_start_up_and_by_check_naming_the_key() {
    let pki = Pki::new();
    let cases = [
        (
            "websocket",
            "certificate = \"missing.pem\"\nprivateKey = \"server.key\"".to_string(),
            "server.protocols.websocket.ssl.certificate: cannot read {folder}/missing.pem: No such file or directory (os error 2)",
        ),
        (
            "mqtt",
            "certificate = \"server.pem\"\nprivateKey = \"ca.pem\"".to_string(),
            "server.protocols.mqtt.ssl.privateKey: {folder}/ca.pem holds no PEM PRIVATE KEY block (PKCS#8, RSA or EC)",
        ),
        (
            "http",
            "certificate = \"server.pem\"\nprivateKey = \"client.key\"".to_string(),
            "server.protocols.http.ssl.privateKey: {folder}/client.key does not go with {folder}/server.pem: ",
        ),
        (
            "socketio",
            "certificate = \"server.pem\"\nprivateKey = \"server.key\"\nclientCa = \"server.ext\"".to_string(),
            "server.protocols.socketio.ssl.clientCa: {folder}/server.ext holds no PEM CERTIFICATE blocks",
        ),
    ];
    for (protocol, ssl, expected) in cases {
        let config = format!(
            "[server]\n{}[server.protocols.{protocol}.ssl]\n{ssl}\n",
            protocol_section(protocol, protocol, "port = 0\naddress = \"127.0.0.1\"")
        );
        // Relative paths are relative to the config file's folder.
        let path = pki.folder.write("config.toml", &config);
        let finished = run_host(&["--config", path.to_str().unwrap()], WAIT);
        let expected = expected.replace("{folder}", pki.folder.path().to_str().unwrap());
        assert!(!finished.status.success(), "{protocol}: {finished:?}");
        assert!(
            finished.stderr.contains(&expected),
            "{protocol}: expected {expected:?} in:\n{}",
            finished.stderr
        );
        // `switchyard check` reads the same files with the same function: the same message.
        let checked = run_host(&["check", "--config", path.to_str().unwrap()], WAIT);
        assert!(!checked.status.success(), "{protocol}: {checked:?}");
        assert!(
            checked.stdout.contains(&format!("error: {expected}")),
            "{protocol}: expected {expected:?} in:\n{}",
            checked.stdout
        );
    }
    // Good files pass the check.
    let config = format!(
        "[server]\n{}[server.protocols.websocket.ssl]\ncertificate = \"server.pem\"\nprivateKey = \"server.key\"\n",
        protocol_section("websocket", "websocket", "port = 0\naddress = \"127.0.0.1\"")
    );
    let path = pki.folder.write("config.toml", &config);
    let checked = run_host(&["check", "--config", path.to_str().unwrap()], WAIT);
    assert!(checked.status.success(), "{checked:?}");
}
