//! Fan-out benchmark: N socket.io clients (Socket.IO over WebSocket) in one room, one publisher,
//! against the real host with the socketio plugin and, in the same run, against a reference npm
//! `socket.io` 4.x server (`tests/js/socketio/reference_server.js`). Prints deliveries/s for
//! both, server CPU seconds, and the ratio. Figures, never assertions.
//!
//! `cargo bench -p plugin-socketio --bench fanout`; `SIO_BENCH_CLIENTS` (default 1000),
//! `SIO_BENCH_SECONDS` (default 5), `SIO_BENCH_WINDOW` (publications in flight, default 16).

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use switchyard_tests::{node_modules, protocol_section, Server};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The server under test, and how its clients join and publish.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    /// Switchyard: Kuzzle requests on the `kuzzle` event.
    Switchyard,
    /// npm socket.io: `join` and `publish` events with acks.
    Reference,
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// A Socket.IO client over WebSocket that joined the main namespace.
async fn connect(address: &str) -> Socket {
    let url = format!("ws://{address}/socket.io/?EIO=4&transport=websocket");
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    next_text(&mut socket).await; // 0{"sid":…}
    socket.send(Message::text("40")).await.expect("send 40");
    let connected = next_text(&mut socket).await;
    assert!(connected.starts_with("40"), "{connected}");
    socket
}

/// The next text message, answering Engine.IO pings on the way.
async fn next_text(socket: &mut Socket) -> String {
    loop {
        match socket.next().await.expect("open").expect("readable") {
            Message::Text(text) if text.as_str() == "2" => {
                socket.send(Message::text("3")).await.expect("pong");
            }
            Message::Text(text) => return text.to_string(),
            _ => {}
        }
    }
}

/// Joins the room; returns the event name notifications arrive on.
async fn join(socket: &mut Socket, target: Target) -> String {
    match target {
        Target::Switchyard => {
            let subscribe = r#"42["kuzzle",{"controller":"realtime","action":"subscribe","index":"bench","collection":"c","body":{},"requestId":"sub"}]"#;
            socket.send(Message::text(subscribe)).await.expect("send");
            let answer = next_text(socket).await;
            let json = answer
                .strip_prefix(r#"42["sub","#)
                .expect("the subscribe answer");
            let value: serde_json::Value = serde_json::from_str(&json[..json.len() - 1]).unwrap();
            value["result"]["channel"].as_str().unwrap().to_string()
        }
        Target::Reference => {
            socket
                .send(Message::text(r#"420["join","bench"]"#))
                .await
                .expect("send");
            next_text(socket).await; // 430[]
            "bench".to_string()
        }
    }
}

/// Reads notifications until the socket closes, counting them.
async fn subscriber(mut socket: Socket, delivered: Arc<AtomicU64>) {
    while let Some(Ok(message)) = socket.next().await {
        if let Message::Text(text) = message {
            if text.starts_with("42[") {
                delivered.fetch_add(1, Ordering::Relaxed);
            } else if text.as_str() == "2" && socket.send(Message::text("3")).await.is_err() {
                return;
            }
        }
    }
}

/// Publishes flat out with `window` publications in flight until `stop`.
async fn publisher(mut socket: Socket, target: Target, window: u64, stop: Instant) -> u64 {
    let mut sent = 0u64;
    let mut answered = 0u64;
    while Instant::now() < stop {
        while sent - answered < window {
            let text = match target {
                Target::Switchyard => format!(
                    r#"42["kuzzle",{{"controller":"realtime","action":"publish","index":"bench","collection":"c","body":{{"n":{sent},"text":"hello"}},"requestId":"p{sent}"}}]"#
                ),
                Target::Reference => {
                    format!(r#"42{sent}["publish","bench",{{"n":{sent},"text":"hello"}}]"#)
                }
            };
            socket.send(Message::text(text)).await.expect("publish");
            sent += 1;
        }
        let answer = next_text(&mut socket).await;
        if answer.starts_with("42[\"p") || answer.starts_with("43") {
            answered += 1;
        }
    }
    sent
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|t| t.parse::<f64>().ok()).sum())
        .unwrap_or(0.0);
    ticks / 100.0
}

struct Figures {
    deliveries_per_second: f64,
    publications: u64,
    cpu_seconds: f64,
}

async fn run(address: &str, pid: u32, target: Target) -> Figures {
    let clients = env("SIO_BENCH_CLIENTS", 1000);
    let seconds = env("SIO_BENCH_SECONDS", 5);
    let window = env("SIO_BENCH_WINDOW", 16);
    let delivered = Arc::new(AtomicU64::new(0));
    for _ in 0..clients {
        let mut socket = connect(address).await;
        join(&mut socket, target).await;
        tokio::spawn(subscriber(socket, delivered.clone()));
    }
    let publisher_socket = connect(address).await;
    // Warm up for a second, then measure.
    let stop = Instant::now() + Duration::from_secs(seconds + 1);
    let publishing = tokio::spawn(publisher(publisher_socket, target, window, stop));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (count_start, cpu_start, started) = (
        delivered.load(Ordering::Relaxed),
        cpu_seconds(pid),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (count_end, cpu_end, elapsed) = (
        delivered.load(Ordering::Relaxed),
        cpu_seconds(pid),
        started.elapsed(),
    );
    let publications = publishing.await.expect("publisher");
    Figures {
        deliveries_per_second: (count_end - count_start) as f64 / elapsed.as_secs_f64(),
        publications,
        cpu_seconds: cpu_end - cpu_start,
    }
}

/// Starts the reference server; returns it and its address.
fn start_reference() -> (Child, String) {
    let js = node_modules();
    let mut child = Command::new("node")
        .arg(js.join("socketio/reference_server.js"))
        .current_dir(js)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node runs");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("piped")),
        &mut line,
    )
    .expect("the reference server prints its port");
    let value: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
    (child, format!("127.0.0.1:{}", value["port"]))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let server = Server::start(&format!(
        "[server]\n{}",
        protocol_section(
            "socketio",
            "socketio",
            "port = 0\naddress = \"127.0.0.1\"\nmaxQueuedBytes = \"64MB\""
        )
    ));
    let ours = runtime.block_on(run(
        &server.address("socketio"),
        server.pid(),
        Target::Switchyard,
    ));
    drop(server);
    let (mut reference, address) = start_reference();
    let theirs = runtime.block_on(run(&address, reference.id(), Target::Reference));
    let _ = reference.kill();
    let _ = reference.wait();

    let clients = env("SIO_BENCH_CLIENTS", 1000);
    println!("fan-out to {clients} socket.io clients over WebSocket, one room, one publisher");
    let seconds = env("SIO_BENCH_SECONDS", 5) as f64;
    let per_cpu = |f: &Figures| f.deliveries_per_second * seconds / f.cpu_seconds.max(0.01);
    for (name, figures) in [
        ("switchyard socketio", &ours),
        ("npm socket.io 4.x", &theirs),
    ] {
        println!(
            "{name:>20}: {:>9.0} deliveries/s, {:>9.0} per server CPU-second ({} publications, {:.2} CPU-s/s)",
            figures.deliveries_per_second,
            per_cpu(figures),
            figures.publications,
            figures.cpu_seconds / seconds
        );
    }
    println!(
        "{:>20}: {:.1}x deliveries/s, {:.1}x per server CPU-second",
        "ratio",
        ours.deliveries_per_second / theirs.deliveries_per_second.max(1.0),
        per_cpu(&ours) / per_cpu(&theirs).max(1.0)
    );
}
