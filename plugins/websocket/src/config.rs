//! `[server.protocols.websocket]` as written (serde) and as used (validated `Settings`).

use std::net::IpAddr;
use std::time::Duration;

use switchyard_plugin_api::BoxError;
use switchyard_plugin_kit::config::{self as kit_config, RawSection, Section};
use switchyard_plugin_kit::flow::Flow;
use switchyard_plugin_kit::gate::ConnectionLimits;
use switchyard_plugin_kit::tls::{self, TlsSettings};

/// Kuzzle's default port, shared with HTTP there.
pub const DEFAULT_PORT: u16 = 7512;
pub use switchyard_plugin_api::config::DEFAULT_MAX_REQUEST_SIZE;
/// Kuzzle's default `idleTimeout`, and what values below 1 s are forced to.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 60_000;
/// Messages per second per connection (Kuzzle's default is 0, none). Above every legitimate
/// load measured here — the busiest single connection is the burst benchmark's publisher,
/// about 25 k/s; a Kuzzle SDK client sends far fewer — so no client notices it, while one
/// connection can no longer make the server answer an unbounded stream of small messages
/// (errors, 429s) at others' expense. Compression's amplification is the inflate budget's.
pub const DEFAULT_RATE_LIMIT: u32 = 50_000;
/// Bytes one connection's compressed messages may inflate to per second (issue 19: a 1.1 KB
/// frame inflates to 1 MB for about 1 ms of CPU). 16 maximum-size messages a second is far
/// above what a Kuzzle client sends, and bounds a connection to about 16 ms of inflating per
/// second (1.6 % of a core) instead of a whole core.
pub const DEFAULT_INFLATE_BUDGET: u64 = 16 << 20;
/// Bytes of unfinished messages all connections may hold together (issue 19: 500 connections
/// each holding an unfinished 1 MB frame held 500 MB).
pub use switchyard_plugin_kit::partial::DEFAULT_MAX_TOTAL_PARTIAL_BYTES;

switchyard_plugin_kit::raw_section! {
    /// The section as written. Keys are camelCase, as in Kuzzle's `server.protocols.websocket`.
    pub struct RawConfig {
        @listen(DEFAULT_PORT),
        @max_request_size,
        /// Bytes of unfinished messages all connections may hold together; 0 = no limit.
        #[serde(default)]
        max_total_partial_bytes: Option<switchyard_plugin_api::config::Size>,
        /// Milliseconds without a whole message from the client before it is closed.
        #[serde(default = "switchyard_plugin_kit::config::default_u64::<DEFAULT_IDLE_TIMEOUT_MS>")]
        idle_timeout: u64,
        /// Messages per second per connection; 0 = unlimited (Kuzzle's default).
        #[serde(default = "default_rate_limit")]
        rate_limit: u32,
        @flow,
        @connections,
        /// Accept permessage-deflate (RFC 7692) when a client offers it.
        #[serde(default)]
        compression: bool,
        /// Bytes one connection's compressed messages may inflate to per second; 0 = no limit.
        #[serde(default)]
        inflate_budget: Option<switchyard_plugin_api::config::Size>,
        /// Threads of this listener's runtime; 0 = one per core.
        #[serde(default = "default_worker_threads")]
        worker_threads: usize,
        @tls,
    }
}

/// One thread by default: with every connection's writer on the thread that fans a message
/// out, the writers run after the whole fan-out and each writes all its queued frames at once.
/// With two threads, writers are stolen while the fan-out is still pushing and each write
/// carries fewer frames: on two cores, 1,000 subscribers got 2.3 M deliveries/s with one
/// thread and 1.0 M with two (`switchyard-bench ws-fanout`, BENCHMARKS.md).
fn default_worker_threads() -> usize {
    1
}

fn default_rate_limit() -> u32 {
    DEFAULT_RATE_LIMIT
}

/// The validated configuration of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where to listen.
    pub address: IpAddr,
    /// Port to listen on (0: any free port).
    pub port: u16,
    /// Largest message accepted, after reassembly and decompression.
    pub max_message_size: usize,
    /// Bytes of unfinished messages all connections may hold together (0: no limit).
    pub max_total_partial_bytes: usize,
    /// Close connections that sent no whole message for this long.
    pub idle_timeout: Duration,
    /// Messages per second per connection before 429 answers; 0 = off.
    pub rate_limit: u32,
    /// Flow control: pressure marks, slow-consumer caps, pending requests.
    pub flow: Flow,
    /// Per-address connection limits and the file-descriptor reserve (the accept loop's).
    pub connections: ConnectionLimits,
    /// Whether permessage-deflate is negotiated.
    pub compression: bool,
    /// Bytes one connection's compressed messages may inflate to per second (0: no limit).
    pub inflate_budget: usize,
    /// Runtime threads (0: one per core).
    pub worker_threads: usize,
    /// Set when `idleTimeout` was out of range and replaced: `init` logs it.
    pub idle_timeout_warning: Option<String>,
    /// TLS (`wss://`), when the section has an `ssl` table.
    pub tls: Option<TlsSettings>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            address: kit_config::any_address(),
            port: DEFAULT_PORT,
            max_message_size: DEFAULT_MAX_REQUEST_SIZE as usize,
            max_total_partial_bytes: DEFAULT_MAX_TOTAL_PARTIAL_BYTES as usize,
            idle_timeout: Duration::from_millis(DEFAULT_IDLE_TIMEOUT_MS),
            rate_limit: DEFAULT_RATE_LIMIT,
            flow: Flow::default(),
            connections: ConnectionLimits::default(),
            compression: false,
            inflate_budget: DEFAULT_INFLATE_BUDGET as usize,
            worker_threads: 1,
            idle_timeout_warning: None,
            tls: None,
        }
    }
}

impl Section for Settings {
    type Raw = RawConfig;

    fn validate(raw: RawConfig, max_request_size: u64, section: &str) -> Result<Self, BoxError> {
        kit_config::require_positive(max_request_size, section, "maxRequestSize")?;
        let flow = Flow::validate(raw.flow(), section)?;
        let tls = tls::validate(raw.tls(), section)?;
        // Kuzzle forces values below one second (0 included) to its default, with a warning;
        // an idle timeout cannot be switched off there either.
        let (idle_timeout, idle_timeout_warning) = if raw.idle_timeout < 1000 {
            let warning = format!(
                "{section}.idleTimeout: {} ms is below the 1000 ms minimum; using {DEFAULT_IDLE_TIMEOUT_MS} ms",
                raw.idle_timeout
            );
            (DEFAULT_IDLE_TIMEOUT_MS, Some(warning))
        } else {
            (raw.idle_timeout, None)
        };
        let inflate_budget = raw
            .inflate_budget
            .map_or(DEFAULT_INFLATE_BUDGET, |size| size.0);
        // A budget below one message would refuse a legitimate message of the largest size.
        if inflate_budget != 0 && inflate_budget < max_request_size {
            return Err(format!(
                "{section}.inflateBudget: {inflate_budget} bytes is below maxRequestSize ({max_request_size})\nhint: a budget must let one message of the largest size through; 0 turns it off"
            )
            .into());
        }
        Ok(Settings {
            address: raw.address,
            port: raw.port,
            max_message_size: usize::try_from(max_request_size).unwrap_or(usize::MAX),
            max_total_partial_bytes: raw
                .max_total_partial_bytes
                .map_or(DEFAULT_MAX_TOTAL_PARTIAL_BYTES, |size| size.0)
                .try_into()
                .unwrap_or(usize::MAX),
            idle_timeout: Duration::from_millis(idle_timeout),
            rate_limit: raw.rate_limit,
            flow,
            connections: ConnectionLimits::from_raw(raw.connection_limits()),
            compression: raw.compression,
            inflate_budget: usize::try_from(inflate_budget).unwrap_or(usize::MAX),
            worker_threads: raw.worker_threads,
            idle_timeout_warning,
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(section: &str, server: &str) -> Result<Settings, String> {
        Settings::from_json("websocket", section, server).map_err(|error| error.to_string())
    }

    #[test]
    fn defaults_follow_kuzzle() {
        let settings = parse("{}", "{}").unwrap();
        assert_eq!(settings, Settings::default());
        assert_eq!(settings.port, 7512);
        assert_eq!(settings.max_message_size, 1024 * 1024);
        assert_eq!(settings.idle_timeout, Duration::from_secs(60));
        assert_eq!(settings.rate_limit, 50_000);
        assert_eq!(settings.inflate_budget, 16 << 20);
        assert!(!settings.compression);
        assert_eq!(settings.max_total_partial_bytes, 256 << 20);
    }

    #[test]
    fn every_key_is_read() {
        let settings = parse(
            r#"{"port":0,"address":"127.0.0.1","maxRequestSize":"2KB","idleTimeout":1500,
                "rateLimit":10,"maxQueuedBytes":4096,"compression":true,"workerThreads":2,
                "highWaterMark":"1MB","lowWaterMark":"256KB","maxTotalQueuedBytes":"8MB",
                "slowConsumerTimeout":2500,"maxPendingRequests":8,"maxTotalPartialBytes":"3MB",
                "maxConnectionsPerAddress":10,"maxConnectionRatePerAddress":0,
                "fileDescriptorReserve":32,"inflateBudget":"4KB"}"#,
            r#"{"maxRequestSize":"1GB","pluginDir":"x"}"#,
        )
        .unwrap();
        assert_eq!(settings.max_total_partial_bytes, 3 << 20);
        assert_eq!(settings.inflate_budget, 4096);
        assert_eq!(settings.port, 0);
        assert_eq!(settings.address, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(settings.max_message_size, 2048);
        assert_eq!(settings.idle_timeout, Duration::from_millis(1500));
        assert_eq!(settings.rate_limit, 10);
        assert_eq!(settings.flow.max_queued_bytes, 4096);
        assert!(settings.compression);
        assert_eq!(settings.worker_threads, 2);
        assert_eq!(settings.idle_timeout_warning, None);
        assert_eq!(settings.flow.marks.high, 1 << 20);
        assert_eq!(settings.flow.marks.low, 256 << 10);
        assert_eq!(settings.flow.marks.max_total, 8 << 20);
        assert_eq!(
            settings.flow.slow_consumer_timeout,
            Duration::from_millis(2500)
        );
        assert_eq!(settings.flow.max_pending_requests, 8);
        assert_eq!(
            settings.connections,
            ConnectionLimits {
                max_per_address: 10,
                rate_per_address: 0,
                file_descriptor_reserve: 32
            }
        );
    }

    #[test]
    fn max_request_size_is_inherited_from_server() {
        assert_eq!(
            parse("{}", r#"{"maxRequestSize":"16KB"}"#)
                .unwrap()
                .max_message_size,
            16384
        );
        assert_eq!(
            parse("{}", r#"{"maxRequestSize":512}"#)
                .unwrap()
                .max_message_size,
            512
        );
    }

    #[test]
    fn short_idle_timeouts_are_forced_to_the_default_with_a_warning() {
        for value in [0, 999] {
            let settings = parse(&format!(r#"{{"idleTimeout":{value}}}"#), "{}").unwrap();
            assert_eq!(settings.idle_timeout, Duration::from_secs(60));
            assert_eq!(
                settings.idle_timeout_warning.as_deref(),
                Some(
                    format!(
                        "server.protocols.websocket.idleTimeout: {value} ms is below the 1000 ms minimum; using 60000 ms"
                    )
                    .as_str()
                )
            );
        }
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                r#"{"port":"x"}"#,
                "{}",
                "server.protocols.websocket.port: invalid type: string \"x\", expected u16",
            ),
            (
                r#"{"port":70000}"#,
                "{}",
                "server.protocols.websocket.port: invalid value: integer `70000`, expected u16",
            ),
            (
                r#"{"prot":1}"#,
                "{}",
                "server.protocols.websocket.prot: unknown field `prot`, expected one of `port`, `address`, `maxRequestSize`, `maxTotalPartialBytes`, `idleTimeout`, `rateLimit`, `maxQueuedBytes`, `highWaterMark`, `lowWaterMark`, `maxTotalQueuedBytes`, `slowConsumerTimeout`, `maxPendingRequests`, `maxConnectionsPerAddress`, `maxConnectionRatePerAddress`, `fileDescriptorReserve`, `compression`, `inflateBudget`, `workerThreads`, `ssl`",
            ),
            (
                r#"{"inflateBudget":"512KB"}"#,
                "{}",
                "server.protocols.websocket.inflateBudget: 524288 bytes is below maxRequestSize (1048576)\nhint: a budget must let one message of the largest size through; 0 turns it off",
            ),
            (
                r#"{"maxRequestSize":"1XB"}"#,
                "{}",
                "server.protocols.websocket.maxRequestSize: \"1XB\" is not a size (expected bytes, or a number with B, KB, MB or GB)",
            ),
            (
                "{}",
                r#"{"maxRequestSize":"big"}"#,
                "server.maxRequestSize: \"big\" is not a size (expected bytes, or a number with B, KB, MB or GB)",
            ),
            (
                r#"{"maxRequestSize":0}"#,
                "{}",
                "server.protocols.websocket.maxRequestSize: must be greater than 0",
            ),
            (
                r#"{"maxQueuedBytes":-5}"#,
                "{}",
                "server.protocols.websocket.maxQueuedBytes: -5 is not a size: it must not be negative",
            ),
            (
                r#"{"maxQueuedBytes":0}"#,
                "{}",
                "server.protocols.websocket.maxQueuedBytes: must be greater than 0",
            ),
            (
                r#"{"address":"localhost"}"#,
                "{}",
                "server.protocols.websocket.address: invalid IP address syntax",
            ),
            (
                r#"{"compression":"yes"}"#,
                "{}",
                "server.protocols.websocket.compression: invalid type: string \"yes\", expected a boolean",
            ),
        ];
        for (section, server, expected) in cases {
            assert_eq!(
                parse(section, server).unwrap_err(),
                expected,
                "{section} {server}"
            );
        }
    }
}
