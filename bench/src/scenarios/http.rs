//! `http`: keep-alive request/response. C connections on one thread of this process, raw
//! HTTP/1.1, one request in flight per connection: `GET /_now` (`server:now`) through the real
//! host and its HTTP plugin, against a bare hyper server answering a fixed JSON body of the same
//! size (`baseline_http.rs`). `--path /_healthcheck` measures the plugin without a host call.
//! `--auth` measures the same server again as a logged-in user (`Authorization: Bearer`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::{Buf, BytesMut};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use super::{auth, cpu_figures, histogram, percentiles, ratio, runtime};
use crate::target::{Kind, Protocol, Running};
use crate::tls::{self, tls_vs_plain, Pki, Stream, TLS_TARGET};
use crate::wsclient::find;
use crate::Settings;

/// `http`: C keep-alive connections doing request/response.
pub fn http(settings: &Settings) -> anyhow::Result<Value> {
    let connections = if settings.connections == 0 {
        32
    } else {
        settings.connections
    };
    let path = settings.path.as_deref().unwrap_or("/_now");
    let mut results = Vec::new();
    for &kind in &settings.targets {
        let server = Running::start(kind, Protocol::Http, None)?;
        // The baseline answers every path the same way.
        let result = drive(
            &server,
            path,
            None,
            None,
            connections,
            settings,
            server.name(),
        )
        .with_context(|| format!("http against {}", server.name()))?;
        results.push(result);
        if kind == Kind::Switchyard && settings.tls {
            // A second server whose section serves TLS; the same anonymous requests.
            let pki = Pki::generate()?;
            let secure = Running::start_switchyard(Protocol::Http, &pki.ssl_section("http"))?;
            let connector = pki.connector()?;
            let result = drive(
                &secure,
                path,
                None,
                Some(&connector),
                connections,
                settings,
                TLS_TARGET.to_string(),
            )
            .context("http against switchyard over TLS")?;
            results.push(result);
        }
        if kind == Kind::Switchyard && settings.auth {
            let jwt = runtime().block_on(auth::user_token_http(&server.address()))?;
            let result = drive(
                &server,
                path,
                Some(&jwt),
                None,
                connections,
                settings,
                auth::USER_TARGET.to_string(),
            )
            .context("http against switchyard as a logged-in user")?;
            results.push(result);
        }
    }
    // The same bare server on a single current-thread runtime, measured after the others.
    let single_thread = if settings.targets.contains(&Kind::Baseline) {
        let server = Running::start_single_thread_http_baseline()?;
        let result = drive(
            &server,
            path,
            None,
            None,
            connections,
            settings,
            server.name(),
        )
        .with_context(|| format!("http against {}", server.name()))?;
        results.push(result.clone());
        Some(result)
    } else {
        None
    };
    let ours = results
        .iter()
        .find(|result| result["target"] == "switchyard")
        .cloned();
    let vs_single_thread = match (ours, single_thread) {
        (Some(ours), Some(theirs)) => ratio(&[ours, theirs], "requests_per_second"),
        _ => Value::Null,
    };
    Ok(json!({
        "scenario": "http",
        "parameters": {
            "connections": connections,
            "path": path,
            "seconds": settings.seconds.as_secs_f64(),
            "warmup": settings.warmup.as_secs_f64(),
            "auth": settings.auth,
            "tls": settings.tls,
            "request": "switchyard: GET path (server:now by default; with --auth, also as a logged-in user: Authorization: Bearer; with --tls, also over https:// on a second server); baseline: a fixed body of the same size",
        },
        "ratio_requests_per_second": ratio(&results, "requests_per_second"),
        "ratio_requests_per_second_vs_single_thread_hyper": vs_single_thread,
        "ratio_user_vs_anonymous": auth::user_vs_anonymous(&results, "requests_per_second"),
        "ratio_tls_vs_plain": tls_vs_plain(&results, "requests_per_second"),
        "results": results,
    }))
}

/// C connections requesting `GET path` (with `Authorization: Bearer <jwt>` when given, over
/// TLS when `tls` is given) until the measured time is over; the record is named `target`.
fn drive(
    server: &Running,
    path: &str,
    jwt: Option<&str>,
    tls: Option<&TlsConnector>,
    connections: usize,
    settings: &Settings,
    target: String,
) -> anyhow::Result<Value> {
    let address = server.address();
    let authorization = jwt.map_or(String::new(), |jwt| {
        format!("Authorization: Bearer {jwt}\r\n")
    });
    let request = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n{authorization}\r\n").into_bytes();
    runtime().block_on(async {
        let counted = Arc::new(AtomicU64::new(0));
        let measuring = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let latency = Arc::new(histogram());
        let response_bytes = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::with_capacity(connections);
        for _ in 0..connections {
            let mut stream = tls::connect(&address, tls).await?;
            let response_bytes = Arc::clone(&response_bytes);
            let (request, counted, measuring, stop, latency) = (
                request.clone(),
                Arc::clone(&counted),
                Arc::clone(&measuring),
                Arc::clone(&stop),
                Arc::clone(&latency),
            );
            tasks.push(tokio::spawn(async move {
                let mut buffer = BytesMut::with_capacity(8192);
                while !stop.load(Ordering::Relaxed) {
                    let sent_at = Instant::now();
                    stream.write_all(&request).await?;
                    let (size, body) = read_response(&mut stream, &mut buffer).await?;
                    response_bytes.store(((size as u64) << 32) | body as u64, Ordering::Relaxed);
                    if measuring.load(Ordering::Relaxed) {
                        counted.fetch_add(1, Ordering::Relaxed);
                        let micros = sent_at.elapsed().as_micros() as u64;
                        let _ = latency.lock().expect("not poisoned").record(micros.max(1));
                    }
                }
                anyhow::Ok(())
            }));
        }
        tokio::time::sleep(settings.warmup).await;
        measuring.store(true, Ordering::Release);
        let (started, cpu_before) = (Instant::now(), server.cpu_seconds());
        tokio::time::sleep(settings.seconds).await;
        measuring.store(false, Ordering::Release);
        let (elapsed, cpu_after) = (started.elapsed(), server.cpu_seconds());
        stop.store(true, Ordering::Release);
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .context("a connection got no answer within 10 s")???;
        }
        let requests = counted.load(Ordering::Acquire);
        let latency = latency.lock().expect("not poisoned");
        anyhow::Ok(json!({
            "target": target,
            "requests_per_second": (requests as f64 / elapsed.as_secs_f64()).round(),
            "requests": requests,
            "response_bytes": response_bytes.load(Ordering::Relaxed) >> 32,
            "body_bytes": response_bytes.load(Ordering::Relaxed) & u64::from(u32::MAX),
            "server_cpu": cpu_figures(cpu_before, cpu_after, requests),
            "latency": percentiles(&latency),
        }))
    })
}

/// Reads one `200` response with a `Content-Length` body (both servers send one); what follows
/// it stays in `buffer`. Returns its size, head included, and its body's.
async fn read_response(
    stream: &mut Stream,
    buffer: &mut BytesMut,
) -> anyhow::Result<(usize, usize)> {
    loop {
        if let Some(end) = find(buffer, b"\r\n\r\n") {
            let head = std::str::from_utf8(&buffer[..end]).context("ASCII headers")?;
            if !head.starts_with("HTTP/1.1 200") {
                bail!("not a 200 answer: {head}");
            }
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .context("an answer without Content-Length")?;
            if buffer.len() >= end + 4 + length {
                buffer.advance(end + 4 + length);
                return Ok((end + 4 + length, length));
            }
        }
        if stream.read_buf(buffer).await? == 0 {
            bail!("the server closed a keep-alive connection");
        }
    }
}
