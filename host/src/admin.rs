//! The admin listener (`[server.admin]`): Prometheus metrics, liveness and readiness, and the
//! admin page (`admin/page.rs`), on a port of its own so that load balancers and scrapers never
//! touch a protocol port.
//!
//! A deliberately small HTTP/1.1 server on std threads: one request per connection
//! (`Connection: close`), GET and HEAD only, a request head of at most `MAX_HEAD` bytes read
//! within `READ_TIMEOUT`, at most `MAX_CLIENTS` connections served at once (more are closed
//! at once). Nothing here is on a request's or a notification's path: a scrape sums the
//! per-thread counters of `metrics.rs` and reads the services.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use switchyard_plugin_api::StatId;

use crate::entry_point::EntryPoint;
use crate::plugin::registry::{ProtocolSlot, ProtocolStats};

mod page;
pub mod warnings;

/// Longest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client has to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once.
const MAX_CLIENTS: usize = 16;

/// Serves the admin listener (`listener`, the host's socket for `[server.admin]`) on a thread
/// of its own. Returns the bound address.
pub fn start(entry: Arc<EntryPoint>, listener: TcpListener) -> std::io::Result<SocketAddr> {
    // Blocking accepts on a plain thread, whatever mode a previous holder left the socket in.
    listener.set_nonblocking(false)?;
    let address = listener.local_addr()?;
    let clients = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("admin".to_string())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else {
                    // Out of descriptors, most likely: pause rather than spin.
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                if clients.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
                    clients.fetch_sub(1, Ordering::AcqRel);
                    continue; // dropped: closed at once
                }
                let (entry, served) = (Arc::clone(&entry), Arc::clone(&clients));
                let spawned = std::thread::Builder::new()
                    .name("admin-client".to_string())
                    .spawn(move || {
                        serve(&entry, stream);
                        served.fetch_sub(1, Ordering::AcqRel);
                    });
                if spawned.is_err() {
                    clients.fetch_sub(1, Ordering::AcqRel);
                }
            }
        })?;
    Ok(address)
}

/// One response.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: String,
}

impl Reply {
    fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

fn serve(entry: &EntryPoint, mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(READ_TIMEOUT));
    let mut head = Vec::with_capacity(1024);
    let mut buffer = [0u8; 1024];
    let complete = loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break false,
            Ok(read) => {
                head.extend_from_slice(&buffer[..read]);
                if head.windows(4).any(|window| window == b"\r\n\r\n") {
                    break true;
                }
                if head.len() > MAX_HEAD {
                    break false;
                }
            }
        }
    };
    let reply = if complete {
        route(entry, &head)
    } else if head.len() > MAX_HEAD {
        Reply::text(431, "request head too large\n")
    } else {
        return;
    };
    let head_only = head.starts_with(b"HEAD ");
    let reason = match reply.status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Bad Request",
    };
    let mut response = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: {}\r\ncontent-length: {}\r\ncache-control: no-store\r\ncontent-security-policy: default-src 'self'\r\nx-content-type-options: nosniff\r\nconnection: close\r\n\r\n",
        reply.status,
        reply.content_type,
        reply.body.len()
    );
    if !head_only {
        response.push_str(&reply.body);
    }
    let _ = stream.write_all(response.as_bytes());
}

fn route(entry: &EntryPoint, head: &[u8]) -> Reply {
    let line = head.split(|&byte| byte == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !matches!(parts.next(), Some(version) if version.starts_with("HTTP/1.")) {
        return Reply::text(400, "bad request line\n");
    }
    if method != "GET" && method != "HEAD" {
        return Reply::text(405, "only GET and HEAD\n");
    }
    if let Some(host) = header(head, "host").filter(|host| !is_loopback_host(host)) {
        return Reply::text(
            421,
            format!(
                "Host {host:?} is not a loopback name: the admin listener answers only requests addressed to 127.0.0.1, localhost or [::1] (a web page elsewhere must not reach it through DNS rebinding; a proxy in front must set Host to 127.0.0.1)\n"
            ),
        );
    }
    let path = target.split('?').next().unwrap_or("");
    match path {
        "/metrics" => Reply {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: prometheus(entry),
        },
        "/healthz" => Reply::text(200, "ok\n"),
        "/readyz" if entry.is_draining() => Reply::text(503, "shutting down\n"),
        "/readyz" => Reply::text(200, "ready\n"),
        _ => page::route(entry, path).unwrap_or_else(|| {
            Reply::text(404, "not found: try /, /metrics, /healthz or /readyz\n")
        }),
    }
}

/// The value of the first `name` header in a request head (names compared ignoring case).
fn header<'h>(head: &'h [u8], name: &str) -> Option<&'h str> {
    let head = std::str::from_utf8(head).ok()?;
    head.split("\r\n").skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// Whether a `Host` value names this machine's loopback: `localhost`, `127.x.x.x` or `[::1]`,
/// with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(name, _port)| name)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// The counters each protocol reports itself (ABI 1.2's `stats` hook, asked now): closes by
/// reason, deliveries, bytes in and out, queued bytes. A plugin that predates the hook has no
/// series.
fn protocol_stats(out: &mut String, protocols: &[Arc<ProtocolSlot>]) {
    let reported: Vec<(String, ProtocolStats)> = protocols
        .iter()
        .filter_map(|protocol| Some((label(&protocol.name), protocol.stats()?)))
        .collect();
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(
        out,
        "switchyard_protocol_connections_closed_total",
        "counter",
        "Connections the protocol closed itself, by reason (as the plugin counts them).",
    );
    for (name, stats) in &reported {
        for (stat, reason) in [
            (StatId::CLOSED_SLOW_CONSUMER, "slow_consumer"),
            (StatId::CLOSED_IDLE, "idle"),
            (StatId::CLOSED_RATE_LIMIT, "rate_limit"),
            (StatId::CLOSED_ERROR, "error"),
        ] {
            if let Some(value) = stats.get(stat) {
                let _ = writeln!(
                    out,
                    "switchyard_protocol_connections_closed_total{{protocol=\"{name}\",reason=\"{reason}\"}} {value}"
                );
            }
        }
    }
    let simple = [
        (
            StatId::DELIVERIES,
            "switchyard_protocol_deliveries_total",
            "counter",
            "Notification frames the protocol queued for its clients (one per member per channel).",
        ),
        (
            StatId::BYTES_IN,
            "switchyard_protocol_received_bytes_total",
            "counter",
            "Bytes the protocol read from its clients.",
        ),
        (
            StatId::BYTES_OUT,
            "switchyard_protocol_sent_bytes_total",
            "counter",
            "Bytes the protocol wrote to its clients.",
        ),
        (
            StatId::QUEUED_BYTES,
            "switchyard_protocol_queued_bytes",
            "gauge",
            "Bytes queued for the protocol's clients now.",
        ),
        (
            StatId::CONNECTIONS_REFUSED,
            "switchyard_protocol_connections_refused_total",
            "counter",
            "Connections the protocol refused before serving them (per-address limits, descriptor reserve).",
        ),
    ];
    for (stat, metric, kind, help) in simple {
        family(out, metric, kind, help);
        for (name, stats) in &reported {
            if let Some(value) = stats.get(stat) {
                let _ = writeln!(out, "{metric}{{protocol=\"{name}\"}} {value}");
            }
        }
    }
}

/// A label value, escaped as the text format wants.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The whole exposition, in the Prometheus text format (version 0.0.4).
pub fn prometheus(entry: &EntryPoint) -> String {
    let services = &entry.services;
    let protocols = services.protocols.all();
    let snapshot = entry.metrics.snapshot();
    let mut out = String::with_capacity(8 * 1024);
    let family = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };

    family(
        &mut out,
        "switchyard_build_info",
        "gauge",
        "Version of the host.",
    );
    let _ = writeln!(
        out,
        "switchyard_build_info{{version=\"{}\",plugin_api=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        switchyard_plugin_api::INTERFACE_VERSION
    );
    family(
        &mut out,
        "switchyard_uptime_seconds",
        "gauge",
        "Seconds since the host started.",
    );
    let _ = writeln!(
        out,
        "switchyard_uptime_seconds {:.3}",
        services.started_at.elapsed().as_secs_f64()
    );

    family(
        &mut out,
        "switchyard_protocol_info",
        "gauge",
        "Each enabled protocol: its plugin, version, plugin-api version and library.",
    );
    for protocol in protocols {
        let _ = writeln!(
            out,
            "switchyard_protocol_info{{protocol=\"{}\",plugin=\"{}\",version=\"{}\",plugin_api=\"{}\",library=\"{}\"}} 1",
            label(&protocol.name),
            label(protocol.library.plugin_name),
            label(protocol.library.plugin_version),
            protocol.library.interface_version,
            label(&protocol.path.display().to_string())
        );
    }
    family(
        &mut out,
        "switchyard_protocol_enabled",
        "gauge",
        "1 while the protocol runs, 0 once disabled after too many hook panics.",
    );
    for protocol in protocols {
        let _ = writeln!(
            out,
            "switchyard_protocol_enabled{{protocol=\"{}\"}} {}",
            label(&protocol.name),
            u8::from(!protocol.is_disabled())
        );
    }
    family(
        &mut out,
        "switchyard_hook_panics_total",
        "counter",
        "Panics caught in the protocol's hooks.",
    );
    for protocol in protocols {
        let _ = writeln!(
            out,
            "switchyard_hook_panics_total{{protocol=\"{}\"}} {}",
            label(&protocol.name),
            protocol.panics()
        );
    }

    let mut open = vec![0u64; protocols.len()];
    for (_, protocol) in services.connections.ids() {
        if let Some(count) = open.get_mut(protocol) {
            *count += 1;
        }
    }
    family(
        &mut out,
        "switchyard_connections_open",
        "gauge",
        "Connections the protocol has declared and not removed.",
    );
    for (protocol, count) in protocols.iter().zip(&open) {
        let _ = writeln!(
            out,
            "switchyard_connections_open{{protocol=\"{}\"}} {count}",
            label(&protocol.name)
        );
    }
    family(
        &mut out,
        "switchyard_connections_accepted_total",
        "counter",
        "Connections the protocol declared.",
    );
    for (index, protocol) in protocols.iter().enumerate() {
        let _ = writeln!(
            out,
            "switchyard_connections_accepted_total{{protocol=\"{}\"}} {}",
            label(&protocol.name),
            snapshot.connections(index).0
        );
    }
    family(
        &mut out,
        "switchyard_connections_closed_total",
        "counter",
        "Connections the protocol removed.",
    );
    for (index, protocol) in protocols.iter().enumerate() {
        let _ = writeln!(
            out,
            "switchyard_connections_closed_total{{protocol=\"{}\"}} {}",
            label(&protocol.name),
            snapshot.connections(index).1
        );
    }

    protocol_stats(&mut out, protocols);

    family(
        &mut out,
        "switchyard_requests_total",
        "counter",
        "Answered requests by protocol, controller:action and status class (series with no request are left out).",
    );
    let names = entry.router.action_names();
    let protocol_labels: Vec<(Option<usize>, String)> = protocols
        .iter()
        .map(|protocol| (Some(protocol.index), label(&protocol.name)))
        .chain(std::iter::once((None, "unknown".to_string())))
        .collect();
    let actions: Vec<(Option<usize>, &str, &str)> = names
        .iter()
        .enumerate()
        .map(|(id, (controller, action))| (Some(id), *controller, *action))
        .chain(std::iter::once((None, "none", "none")))
        .collect();
    for (protocol, protocol_label) in &protocol_labels {
        for (action, controller_name, action_name) in &actions {
            for class in 1..=5u16 {
                let count = snapshot.requests(*protocol, *action, class);
                if count > 0 {
                    let _ = writeln!(
                        out,
                        "switchyard_requests_total{{protocol=\"{protocol_label}\",controller=\"{controller_name}\",action=\"{action_name}\",status=\"{class}xx\"}} {count}"
                    );
                }
            }
        }
    }
    family(
        &mut out,
        "switchyard_request_duration_seconds",
        "histogram",
        "Time from a request's admission to its answer.",
    );
    for (protocol, protocol_label) in &protocol_labels {
        let (buckets, sum) = snapshot.latency(*protocol);
        let count = buckets.last().map_or(0, |(_, count)| *count);
        if count == 0 && protocol.is_none() {
            continue;
        }
        for (le, cumulative) in &buckets {
            let _ = writeln!(
                out,
                "switchyard_request_duration_seconds_bucket{{protocol=\"{protocol_label}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "switchyard_request_duration_seconds_sum{{protocol=\"{protocol_label}\"}} {sum}\nswitchyard_request_duration_seconds_count{{protocol=\"{protocol_label}\"}} {count}"
        );
    }

    family(
        &mut out,
        "switchyard_requests_in_flight",
        "gauge",
        "Requests admitted and not answered yet.",
    );
    let _ = writeln!(out, "switchyard_requests_in_flight {}", entry.in_flight());
    family(
        &mut out,
        "switchyard_queue_depth",
        "gauge",
        "Requests waiting for a thread, by pool (api: in-memory actions; blocking: disk, hashing).",
    );
    let (api, blocking) = entry.queue_depths();
    let _ = writeln!(
        out,
        "switchyard_queue_depth{{pool=\"api\"}} {api}\nswitchyard_queue_depth{{pool=\"blocking\"}} {blocking}"
    );
    family(
        &mut out,
        "switchyard_rooms",
        "gauge",
        "Realtime rooms (distinct filters with at least one subscriber).",
    );
    let _ = writeln!(out, "switchyard_rooms {}", services.realtime.room_count());
    out
}

#[cfg(test)]
mod tests {
    use super::{header, is_loopback_host, label};

    #[test]
    fn only_loopback_host_names_are_answered() {
        for host in [
            "127.0.0.1",
            "127.0.0.1:7510",
            "localhost",
            "LOCALHOST:1",
            "[::1]",
            "[::1]:80",
            "127.8.9.1",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:7510",
            "10.0.0.1",
            "0.0.0.0:7510",
            "[::2]:1",
            "localhost.evil.example",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
        let head = b"GET / HTTP/1.1\r\nAccept: */*\r\nHOST:  evil.example:80 \r\n\r\n";
        assert_eq!(header(head, "host"), Some("evil.example:80"));
        assert_eq!(header(b"GET / HTTP/1.0\r\n\r\n", "host"), None);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
