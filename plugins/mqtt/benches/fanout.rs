//! Fan-out benchmark: the mqtt plugin in the real `switchyard` host against Debian's mosquitto,
//! in the same run, driven by the same Rust load generator (one publisher, N subscribers, QoS 0,
//! 100-byte payloads). Prints deliveries/s, broker CPU, and the ratio. Not a test: no asserts
//! on timings.
//!
//! `cargo bench -p plugin-mqtt --bench fanout [-- SECONDS [N...]]` (default 5 s; N = 1 100 1000).
//! N = 1 is the publish throughput: messages/s through the broker to one subscriber.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mqtt::encode::{self, client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

const TOPIC: &str = "bench/fanout";
const PAYLOAD_SIZE: usize = 100;
/// Messages the publisher may have ahead of the average subscriber.
const WINDOW: u64 = 64;
/// Messages per publisher write.
const BURST: usize = 16;

fn main() {
    let mut args = std::env::args().skip(1).filter(|arg| arg != "--bench");
    let seconds: u64 = args.next().and_then(|arg| arg.parse().ok()).unwrap_or(5);
    let mut sizes: Vec<usize> = args.filter_map(|arg| arg.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = vec![1, 100, 1000];
    }
    let duration = Duration::from_secs(seconds);

    let host = switchyard_tests::Server::start(&format!(
        "[server]\n{}",
        switchyard_tests::protocol_section(
            "mqtt",
            "mqtt",
            "port = 0\naddress = \"127.0.0.1\"\nallowPubSub = true"
        )
    ));
    let ours: SocketAddr = host.address("mqtt").parse().expect("host:port");
    let mosquitto = Mosquitto::start();

    println!("fan-out, QoS 0, {PAYLOAD_SIZE}-byte payloads, {seconds} s per run, window {WINDOW}");
    println!(
        "{:>6} {:>26} {:>26} {:>7}",
        "N", "switchyard mqtt", "mosquitto", "ratio"
    );
    for n in sizes {
        let (our_rate, our_cpu) = run(ours, host.pid(), n, duration);
        let (their_rate, their_cpu) = run(mosquitto.address, mosquitto.child.id(), n, duration);
        println!(
            "{n:>6} {:>13.0}/s {:>5.2} cpu-s {:>13.0}/s {:>5.2} cpu-s {:>6.1}x",
            our_rate,
            our_cpu,
            their_rate,
            their_cpu,
            our_rate / their_rate
        );
    }
}

/// mosquitto on a free loopback port, killed when dropped.
struct Mosquitto {
    child: Child,
    address: SocketAddr,
}

impl Mosquitto {
    fn start() -> Mosquitto {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let binary = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|path| std::path::Path::new(path).is_file())
            .unwrap_or("mosquitto");
        let child = Command::new(binary)
            .args(["-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot run mosquitto ({error})\nhint: apt-get install -y mosquitto")
            });
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let until = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(address).is_err() {
            assert!(
                Instant::now() < until,
                "mosquitto did not listen on {address}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Mosquitto { child, address }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |times| {
        times.iter().filter_map(|t| t.parse::<f64>().ok()).sum()
    });
    ticks / 100.0
}

/// Opens an MQTT connection (blocking), CONNECTs, and subscribes to `TOPIC` if asked.
fn open(address: SocketAddr, id: &str, subscribe: bool) -> std::net::TcpStream {
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream.set_nodelay(true).unwrap();
    stream
        .write_all(&client::connect(&client::ConnectOptions {
            client_id: id,
            clean_session: true,
            ..Default::default()
        }))
        .unwrap();
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0], "CONNACK from {address}");
    if subscribe {
        stream
            .write_all(&client::subscribe(1, &[(TOPIC, 0)]))
            .unwrap();
        let mut suback = [0u8; 5];
        stream.read_exact(&mut suback).unwrap();
        assert_eq!(suback, [0x90, 3, 0, 1, 0], "SUBACK from {address}");
    }
    stream.set_nonblocking(true).unwrap();
    stream
}

/// Shared by the generator's tasks.
struct Counters {
    /// PUBLISH packets received by all subscribers.
    delivered: AtomicU64,
    /// Messages sent by the publisher.
    published: AtomicU64,
    /// Set while the publisher waits for the window to open.
    publisher_waiting: AtomicBool,
    /// Wakes the publisher.
    wake: Notify,
    /// Tells every task to stop.
    stop: AtomicBool,
    /// Subscribers.
    n: u64,
}

/// One measurement: deliveries per second and the broker's CPU seconds over `duration`.
fn run(address: SocketAddr, broker_pid: u32, n: usize, duration: Duration) -> (f64, f64) {
    let subscribers: Vec<_> = (0..n)
        .map(|index| open(address, &format!("sub-{index}"), true))
        .collect();
    let publisher = open(address, "publisher", false);
    let counters = Arc::new(Counters {
        delivered: AtomicU64::new(0),
        published: AtomicU64::new(0),
        publisher_waiting: AtomicBool::new(false),
        wake: Notify::new(),
        stop: AtomicBool::new(false),
        n: n as u64,
    });
    let generator = {
        let counters = counters.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                for stream in subscribers {
                    let stream = tokio::net::TcpStream::from_std(stream).unwrap();
                    tokio::spawn(count_deliveries(stream, counters.clone()));
                }
                let stream = tokio::net::TcpStream::from_std(publisher).unwrap();
                publish(stream, counters).await;
            });
        })
    };
    // Warm up, then measure.
    std::thread::sleep(Duration::from_millis(500));
    let (start, delivered_before, cpu_before) = (
        Instant::now(),
        counters.delivered.load(Ordering::Relaxed),
        cpu_seconds(broker_pid),
    );
    std::thread::sleep(duration);
    let delivered = counters.delivered.load(Ordering::Relaxed) - delivered_before;
    let (elapsed, cpu) = (start.elapsed(), cpu_seconds(broker_pid) - cpu_before);
    counters.stop.store(true, Ordering::Relaxed);
    counters.wake.notify_one();
    generator.join().expect("the load generator");
    (delivered as f64 / elapsed.as_secs_f64(), cpu)
}

/// Publishes in bursts while fewer than `WINDOW` messages are ahead of the average subscriber.
async fn publish(mut stream: tokio::net::TcpStream, counters: Arc<Counters>) {
    let packet = encode::publish(TOPIC, &[b'x'; PAYLOAD_SIZE], 0, false, false, None);
    let burst: Vec<u8> = packet
        .iter()
        .copied()
        .cycle()
        .take(packet.len() * BURST)
        .collect();
    let mut discard = [0u8; 256];
    while !counters.stop.load(Ordering::Relaxed) {
        let published = counters.published.load(Ordering::Relaxed);
        let behind = counters.delivered.load(Ordering::Relaxed) / counters.n;
        if published >= behind + WINDOW {
            counters.publisher_waiting.store(true, Ordering::Release);
            // Re-check after announcing, so a wake-up cannot be missed.
            let behind = counters.delivered.load(Ordering::Relaxed) / counters.n;
            if published >= behind + WINDOW && !counters.stop.load(Ordering::Relaxed) {
                counters.wake.notified().await;
            }
            counters.publisher_waiting.store(false, Ordering::Release);
            continue;
        }
        if stream.write_all(&burst).await.is_err() {
            return;
        }
        counters
            .published
            .fetch_add(BURST as u64, Ordering::Relaxed);
        // The broker sends the publisher nothing, but drain in case.
        let _ = stream.try_read(&mut discard);
    }
}

/// Counts PUBLISH packets arriving on one subscriber's socket.
async fn count_deliveries(mut stream: tokio::net::TcpStream, counters: Arc<Counters>) {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut header: Vec<u8> = Vec::with_capacity(5);
    let mut skip = 0usize;
    while !counters.stop.load(Ordering::Relaxed) {
        let read = match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        let mut count = 0;
        let mut at = 0;
        while at < read {
            if skip > 0 {
                let take = skip.min(read - at);
                skip -= take;
                at += take;
                continue;
            }
            header.push(buffer[at]);
            at += 1;
            if header.len() >= 2 && header[header.len() - 1] & 0x80 == 0 {
                skip = header[1..]
                    .iter()
                    .rev()
                    .fold(0, |length, byte| (length << 7) | usize::from(byte & 0x7f));
                if header[0] >> 4 == 3 {
                    count += 1;
                }
                header.clear();
            }
        }
        counters.delivered.fetch_add(count, Ordering::Relaxed);
        if counters.publisher_waiting.load(Ordering::Acquire) {
            counters.wake.notify_one();
        }
    }
}
