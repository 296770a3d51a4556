//! `[server.protocols.socketio]` as written (serde) and as used (validated `Settings`).

use std::net::IpAddr;
use std::time::Duration;

use switchyard_plugin_api::BoxError;
use switchyard_plugin_kit::config::{RawSection, Section};
use switchyard_plugin_kit::flow::Flow;
use switchyard_plugin_kit::gate::ConnectionLimits;
use switchyard_plugin_kit::partial;
use switchyard_plugin_kit::tls::{self, TlsSettings};

/// Next to Kuzzle's ports (HTTP 7511, WebSocket 7512).
pub const DEFAULT_PORT: u16 = 7513;
/// Engine.IO's default path.
pub const DEFAULT_PATH: &str = "/socket.io/";
/// Engine.IO's default `pingInterval`.
pub const DEFAULT_PING_INTERVAL_MS: u64 = 25_000;
/// Engine.IO's default `pingTimeout`.
pub const DEFAULT_PING_TIMEOUT_MS: u64 = 20_000;
/// Engine.IO's default `upgradeTimeout`.
pub const DEFAULT_UPGRADE_TIMEOUT_MS: u64 = 10_000;
/// Socket.IO's default `connectTimeout`: a session that joins no namespace by then is closed.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 45_000;
/// New connections per second per source address: HTTP's 512, not WebSocket's 64, since a
/// polling client without keep-alive opens a connection per poll and per POST.
pub const DEFAULT_MAX_CONNECTION_RATE_PER_ADDRESS: u32 = 512;
pub use switchyard_plugin_api::config::DEFAULT_MAX_REQUEST_SIZE;

switchyard_plugin_kit::raw_section! {
    /// The section as written. Keys are camelCase, as in Kuzzle's configuration.
    pub struct RawConfig {
        @listen(DEFAULT_PORT),
        /// Where Engine.IO is served (`path` of socket.io-client).
        #[serde(default = "default_path")]
        path: String,
        /// Allowed `Origin` values; `*` allows any (Kuzzle 1's `origins`, default `*:*`).
        #[serde(default = "default_origins")]
        origins: Vec<String>,
        /// Milliseconds between pings.
        #[serde(default = "switchyard_plugin_kit::config::default_u64::<DEFAULT_PING_INTERVAL_MS>")]
        ping_interval: u64,
        /// Milliseconds a client has to answer a ping.
        #[serde(default = "switchyard_plugin_kit::config::default_u64::<DEFAULT_PING_TIMEOUT_MS>")]
        ping_timeout: u64,
        /// Milliseconds a client has to finish an upgrade to WebSocket.
        #[serde(default = "switchyard_plugin_kit::config::default_u64::<DEFAULT_UPGRADE_TIMEOUT_MS>")]
        upgrade_timeout: u64,
        /// Milliseconds a session has to join the main namespace.
        #[serde(default = "switchyard_plugin_kit::config::default_u64::<DEFAULT_CONNECT_TIMEOUT_MS>")]
        connect_timeout: u64,
        // Overrides `[server] maxRequestSize`: Engine.IO's `maxHttpBufferSize`.
        @max_request_size,
        /// Bytes of unfinished POST bodies and WebSocket messages, all sessions together;
        /// 0 = no limit.
        #[serde(default)]
        max_total_partial_bytes: Option<switchyard_plugin_api::config::Size>,
        @flow,
        @connections,
        @tls,
    }
}

fn default_path() -> String {
    DEFAULT_PATH.to_string()
}
fn default_origins() -> Vec<String> {
    vec!["*".to_string()]
}

/// Which origins may connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origins {
    /// Any origin (and requests without one).
    Any,
    /// These origins (lower-case `scheme://host[:port]`), and requests without an `Origin`.
    Only(Vec<String>),
}

impl Origins {
    /// Whether a request with this `Origin` header (if any) is allowed.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        match (self, origin) {
            (Origins::Any, _) | (_, None) => true,
            (Origins::Only(list), Some(origin)) => list
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(origin)),
        }
    }
}

/// The validated configuration of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where to listen.
    pub address: IpAddr,
    /// Port (0: any free port).
    pub port: u16,
    /// The Engine.IO path, always ending with `/`.
    pub path: String,
    /// Allowed origins.
    pub origins: Origins,
    /// Time between pings.
    pub ping_interval: Duration,
    /// Time a client has to answer a ping.
    pub ping_timeout: Duration,
    /// Time a client has to finish an upgrade.
    pub upgrade_timeout: Duration,
    /// Time a session has to join the main namespace.
    pub connect_timeout: Duration,
    /// Largest POST body or WebSocket message.
    pub max_request_size: usize,
    /// Bytes of unfinished POST bodies and WebSocket messages, all sessions (0: no limit).
    pub max_total_partial_bytes: usize,
    /// Flow control: pressure marks, slow-consumer caps, pending requests.
    pub flow: Flow,
    /// Per-address connection limits and the file-descriptor reserve (the accept loop's).
    pub connections: ConnectionLimits,
    /// TLS (`https://`, `wss://` after the upgrade), when the section has an `ssl` table.
    pub tls: Option<TlsSettings>,
}

impl Section for Settings {
    type Raw = RawConfig;

    fn validate(raw: RawConfig, max_request_size: u64, section: &str) -> Result<Self, BoxError> {
        validate(raw, max_request_size, section)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::from_json("socketio", "{}", "{}").expect("the defaults are valid")
    }
}

fn validate(raw: RawConfig, max_request_size: u64, section: &str) -> Result<Settings, BoxError> {
    let flow = Flow::validate(raw.flow(), section)?;
    let connections = ConnectionLimits::from_raw_or(
        raw.connection_limits(),
        ConnectionLimits {
            rate_per_address: DEFAULT_MAX_CONNECTION_RATE_PER_ADDRESS,
            ..ConnectionLimits::default()
        },
    );
    let tls = tls::validate(raw.tls(), section)?;
    for (key, value) in [
        ("maxRequestSize", max_request_size),
        ("pingInterval", raw.ping_interval),
        ("pingTimeout", raw.ping_timeout),
        ("upgradeTimeout", raw.upgrade_timeout),
        ("connectTimeout", raw.connect_timeout),
    ] {
        if value == 0 {
            return Err(format!("{section}.{key}: must be greater than 0").into());
        }
    }
    if !raw.path.starts_with('/') || raw.path.contains(['?', '#', ' ']) {
        return Err(format!(
            "{section}.path: \"{}\" is not a URL path\nhint: socket.io-client's default is \"/socket.io/\"",
            raw.path
        )
        .into());
    }
    let path = format!("{}/", raw.path.trim_end_matches('/'));
    let origins = if raw
        .origins
        .iter()
        .any(|origin| origin == "*" || origin == "*:*")
    {
        Origins::Any
    } else {
        Origins::Only(
            raw.origins
                .iter()
                .map(|origin| origin.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        )
    };
    Ok(Settings {
        address: raw.address,
        port: raw.port,
        path,
        origins,
        ping_interval: Duration::from_millis(raw.ping_interval),
        ping_timeout: Duration::from_millis(raw.ping_timeout),
        upgrade_timeout: Duration::from_millis(raw.upgrade_timeout),
        connect_timeout: Duration::from_millis(raw.connect_timeout),
        max_request_size: usize::try_from(max_request_size).unwrap_or(usize::MAX),
        max_total_partial_bytes: partial::configured(raw.max_total_partial_bytes),
        flow,
        connections,
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(section: &str, server: &str) -> Result<Settings, String> {
        Settings::from_json("socketio", section, server).map_err(|error| error.to_string())
    }

    #[test]
    fn defaults_follow_engine_io_and_kuzzle() {
        let settings = parse("{}", "{}").unwrap();
        assert_eq!(settings.port, 7513);
        assert_eq!(settings.path, "/socket.io/");
        assert_eq!(settings.origins, Origins::Any);
        assert_eq!(settings.ping_interval, Duration::from_secs(25));
        assert_eq!(settings.ping_timeout, Duration::from_secs(20));
        assert_eq!(settings.upgrade_timeout, Duration::from_secs(10));
        assert_eq!(settings.connect_timeout, Duration::from_secs(45));
        assert_eq!(settings.max_request_size, 1 << 20);
        assert_eq!(settings.max_total_partial_bytes, 256 << 20);
        assert_eq!(settings.flow, Flow::default());
        assert_eq!(settings.connections.max_per_address, 256);
        assert_eq!(settings.connections.rate_per_address, 512);
    }

    #[test]
    fn every_key_is_read() {
        let settings = parse(
            r#"{"port":0,"address":"127.0.0.1","path":"/io","origins":["https://App.example"],
                "pingInterval":100,"pingTimeout":200,"upgradeTimeout":300,"connectTimeout":400,
                "maxRequestSize":"2KB","maxQueuedBytes":4096,"maxTotalPartialBytes":"3MB"}"#,
            r#"{"maxRequestSize":"1GB","pluginDir":"x"}"#,
        )
        .unwrap();
        assert_eq!(settings.port, 0);
        assert_eq!(settings.address, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(settings.path, "/io/");
        assert!(settings.origins.allows(Some("https://app.example")));
        assert!(settings.origins.allows(None));
        assert!(!settings.origins.allows(Some("https://evil.example")));
        assert_eq!(settings.ping_interval, Duration::from_millis(100));
        assert_eq!(settings.ping_timeout, Duration::from_millis(200));
        assert_eq!(settings.upgrade_timeout, Duration::from_millis(300));
        assert_eq!(settings.connect_timeout, Duration::from_millis(400));
        assert_eq!(settings.max_request_size, 2048);
        assert_eq!(settings.max_total_partial_bytes, 3 << 20);
        assert_eq!(settings.flow.max_queued_bytes, 4096);
        assert_eq!(
            parse("{}", r#"{"maxRequestSize":512}"#)
                .unwrap()
                .max_request_size,
            512
        );
        assert_eq!(
            parse(r#"{"origins":["*:*"]}"#, "{}").unwrap().origins,
            Origins::Any
        );
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (r#"{"port":"x"}"#, "{}", "server.protocols.socketio.port: invalid type: string \"x\", expected u16"),
            (r#"{"pingInterval":0}"#, "{}", "server.protocols.socketio.pingInterval: must be greater than 0"),
            (r#"{"maxRequestSize":0}"#, "{}", "server.protocols.socketio.maxRequestSize: must be greater than 0"),
            ("{}", r#"{"maxRequestSize":"big"}"#, "server.maxRequestSize: \"big\" is not a size (expected bytes, or a number with B, KB, MB or GB)"),
            (r#"{"path":"socket.io"}"#, "{}", "server.protocols.socketio.path: \"socket.io\" is not a URL path\nhint: socket.io-client's default is \"/socket.io/\""),
            (r#"{"origins":"*"}"#, "{}", "server.protocols.socketio.origins: invalid type: string \"*\", expected a sequence"),
            (r#"{"pingIntervall":1}"#, "{}", "server.protocols.socketio.pingIntervall: unknown field `pingIntervall`, expected one of `port`, `address`, `path`, `origins`, `pingInterval`, `pingTimeout`, `upgradeTimeout`, `connectTimeout`, `maxRequestSize`, `maxTotalPartialBytes`, `maxQueuedBytes`, `highWaterMark`, `lowWaterMark`, `maxTotalQueuedBytes`, `slowConsumerTimeout`, `maxPendingRequests`, `maxConnectionsPerAddress`, `maxConnectionRatePerAddress`, `fileDescriptorReserve`, `ssl`"),
        ];
        for (section, server, expected) in cases {
            assert_eq!(parse(section, server).unwrap_err(), expected, "{section}");
        }
    }
}
