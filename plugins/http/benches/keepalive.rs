//! Benchmark (not a test): `server:now` over keep-alive HTTP/1.1 through the real host and the
//! HTTP plugin, against a bare hyper server answering a fixed JSON body of the same size, in
//! the same run. Prints requests/s, p50 and p99 for each, and the ratio.
//!
//! Both servers run in their own processes (the host binary; this binary re-run with
//! `--baseline`), each with a tokio runtime sized as the plugin's; the load comes from this
//! process: `CONNECTIONS` keep-alive connections on one thread, raw HTTP/1.1, one request in
//! flight per connection.
//!
//! `cargo bench -p plugin-http --bench keepalive [-- SECONDS CONNECTIONS ROUNDS]`; with
//! `BENCH_PATH=/_healthcheck` the plugin answers without calling the host (its own overhead).

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the baseline answers: the shape and size of a real `server:now` response.
const FIXED_BODY: &str = r#"{"requestId":"3f9a12c0-123456","status":200,"error":null,"controller":"server","action":"now","collection":null,"index":null,"volatile":null,"headers":{},"result":{"now":1764432000000}}"#;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--baseline") {
        return serve_baseline();
    }
    // `cargo bench` passes `--bench`; every other argument is ours.
    let numbers: Vec<u64> = args.iter().filter_map(|arg| arg.parse().ok()).collect();
    let seconds = numbers.first().copied().unwrap_or(5);
    let connections = numbers.get(1).copied().unwrap_or(32) as usize;
    let rounds = numbers.get(2).copied().unwrap_or(3) as usize;

    let host = switchyard_tests::Server::start(&format!(
        "[server]\n{}",
        switchyard_tests::protocol_section("http", "http", "port = 0\naddress = \"127.0.0.1\"")
    ));
    let switchyard_address = host.address("http");
    let mut baseline = Command::new(std::env::current_exe().expect("this binary"))
        .arg("--baseline")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the baseline server");
    let mut line = String::new();
    BufReader::new(baseline.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("the baseline prints its address");
    let baseline_address = line.trim().to_string();

    println!(
        "server:now over keep-alive HTTP/1.1: {connections} connections, {seconds} s per run, {rounds} rounds, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let bare = drive(&baseline_address, "/", connections, seconds);
        let path = std::env::var("BENCH_PATH").unwrap_or_else(|_| "/_now".into());
        let ours = drive(&switchyard_address, &path, connections, seconds);
        let ratio = ours.per_second / bare.per_second;
        println!("round {round}: bare hyper {bare}");
        println!("round {round}: switchyard {ours}  ratio {ratio:.2}x");
        ratios.push(ratio);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "median ratio switchyard / bare hyper: {:.2}x",
        ratios[ratios.len() / 2]
    );
    let _ = baseline.kill();
    let _ = baseline.wait();
}

/// The bare hyper server: same runtime shape as the plugin's (multi-thread, one worker per
/// core), same builder settings, a fixed body.
fn serve_baseline() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("{}", listener.local_addr().expect("bound"));
        std::io::stdout().flush().expect("flush");
        loop {
            let (stream, _) = listener.accept().await.expect("accept");
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|_request| async {
                    let mut response =
                        hyper::Response::new(Full::new(Bytes::from_static(FIXED_BODY.as_bytes())));
                    response.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static("application/json"),
                    );
                    Ok::<_, Infallible>(response)
                });
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

/// One run's figures.
struct Figures {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>9.0} req/s  p50 {:>5} µs  p99 {:>5} µs",
            self.per_second,
            self.p50.as_micros(),
            self.p99.as_micros()
        )
    }
}

/// Drives `address` with `connections` keep-alive connections for `seconds` (after a 1 s
/// warm-up), from one thread.
fn drive(address: &str, path: &str, connections: usize, seconds: u64) -> Figures {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").into_bytes();
        let warm_up = Instant::now() + Duration::from_secs(1);
        let end = warm_up + Duration::from_secs(seconds);
        let mut tasks = Vec::with_capacity(connections);
        for _ in 0..connections {
            let request = request.clone();
            let address = address.to_string();
            tasks.push(tokio::spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(&address)
                    .await
                    .expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                let mut buffer = vec![0u8; 4096];
                let mut latencies = Vec::with_capacity(1 << 16);
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    stream.write_all(&request).await.expect("send");
                    read_response(&mut stream, &mut buffer).await;
                    if sent >= warm_up {
                        latencies.push(sent.elapsed());
                    }
                }
                latencies
            }));
        }
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.expect("a load task"));
        }
        latencies.sort_unstable();
        let at =
            |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        Figures {
            per_second: latencies.len() as f64 / seconds as f64,
            p50: at(0.50),
            p99: at(0.99),
        }
    })
}

/// Reads one response with a `Content-Length` body (both servers send one).
async fn read_response(stream: &mut tokio::net::TcpStream, buffer: &mut [u8]) {
    let mut filled = 0;
    loop {
        let read = stream.read(&mut buffer[filled..]).await.expect("read");
        assert!(read > 0, "the server closed a keep-alive connection");
        filled += read;
        let Some(end) = buffer[..filled].windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = std::str::from_utf8(&buffer[..end]).expect("ASCII headers");
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .expect("a Content-Length");
        if filled >= end + 4 + length {
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            return;
        }
    }
}
