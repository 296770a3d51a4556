//! `[server.protocols.http]` as written (serde) and as used (validated `Settings`).

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;
use switchyard_plugin_api::BoxError;
use switchyard_plugin_kit::config::{self as kit_config, RawSection, Section};
use switchyard_plugin_kit::gate::ConnectionLimits;
use switchyard_plugin_kit::partial;
use switchyard_plugin_kit::tls::{self, TlsSettings};

use crate::cors::{Cors, OriginRule};

/// Our default port. Kuzzle serves HTTP and WebSocket on one port (7512); here each protocol is
/// its own listener, so HTTP takes the port just below.
pub const DEFAULT_PORT: u16 = 7511;
pub use switchyard_plugin_api::config::DEFAULT_MAX_REQUEST_SIZE;
/// Kuzzle's `http.accessControlAllowMethods`.
pub const DEFAULT_ALLOW_METHODS: &str = "GET,POST,PUT,PATCH,DELETE,OPTIONS,HEAD";
/// Kuzzle's `http.accessControlAllowHeaders`.
pub const DEFAULT_ALLOW_HEADERS: &str = "Content-Type, Access-Control-Allow-Headers, Authorization, X-Requested-With, Content-Encoding, Content-Length, X-Kuzzle-Volatile";
/// Kuzzle's `server.protocols.http.maxEncodingLayers`.
pub const DEFAULT_MAX_ENCODING_LAYERS: usize = 3;
/// Milliseconds a client has to send a request's headers (slow-loris protection).
pub const DEFAULT_HEADER_TIMEOUT_MS: u64 = 10_000;
/// Milliseconds a client has to send a request's body once its headers arrived.
pub const DEFAULT_BODY_TIMEOUT_MS: u64 = 10_000;
/// New connections per second per source address. Higher than the other protocols' 64: many
/// HTTP clients open a connection per request (curl in a loop, `Connection: close`, agents
/// without keep-alive), so connections come at the request rate. 512 a second from one address
/// is still a few percent of a core (a connection and its request cost tens of µs).
pub const DEFAULT_MAX_CONNECTION_RATE_PER_ADDRESS: u32 = 512;

switchyard_plugin_kit::raw_section! {
    /// The section as written. Keys are camelCase, as in Kuzzle's `http` and
    /// `server.protocols.http` sections (merged here: each protocol owns its whole section).
    pub struct RawConfig {
        @listen(DEFAULT_PORT),
        @max_request_size,
        /// Bytes of request bodies being received, all connections together; 0 = no limit.
        #[serde(default)]
        max_total_partial_bytes: Option<switchyard_plugin_api::config::Size>,
        /// `"*"`, a comma-separated list, or an array of origins (regexps with the next key).
        #[serde(default)]
        access_control_allow_origin: Option<Origins>,
        /// Read every `accessControlAllowOrigin` entry as a regular expression.
        #[serde(default)]
        access_control_allow_origin_use_reg_exp: bool,
        /// `Access-Control-Allow-Methods`, sent as is.
        #[serde(default)]
        access_control_allow_methods: Option<String>,
        /// `Access-Control-Allow-Headers`, sent as is.
        #[serde(default)]
        access_control_allow_headers: Option<String>,
        /// Compress responses for clients that ask, accept compressed request bodies.
        #[serde(default = "default_true")]
        allow_compression: bool,
        /// Most `Content-Encoding` layers a request body may have.
        #[serde(default = "switchyard_plugin_kit::config::default_usize::<DEFAULT_MAX_ENCODING_LAYERS>")]
        max_encoding_layers: usize,
        /// Milliseconds to receive a request's headers.
        #[serde(default = "switchyard_plugin_kit::config::default_u64::<DEFAULT_HEADER_TIMEOUT_MS>")]
        header_timeout: u64,
        /// Milliseconds to receive a request's body.
        #[serde(default = "switchyard_plugin_kit::config::default_u64::<DEFAULT_BODY_TIMEOUT_MS>")]
        body_timeout: u64,
        /// Request threads, each with its own connections (0: half the cores, at least one).
        #[serde(default)]
        worker_threads: usize,
        @connections,
        @tls,
    }
}

/// `accessControlAllowOrigin`: a string (comma-separated) or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Origins {
    One(String),
    Many(Vec<String>),
}

fn default_true() -> bool {
    true
}

/// The validated configuration of one instance.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where to listen.
    pub address: IpAddr,
    /// Port to listen on (0: any free port).
    pub port: u16,
    /// Largest request body, before and after decompression.
    pub max_request_size: usize,
    /// Bytes of request bodies being received, all connections together (0: no limit).
    pub max_total_partial_bytes: usize,
    /// CORS: allowed origins and the headers every answer carries.
    pub cors: Cors,
    /// Compress responses on request; accept compressed bodies.
    pub allow_compression: bool,
    /// Most `Content-Encoding` layers a body may have.
    pub max_encoding_layers: usize,
    /// Time allowed for a request's headers.
    pub header_timeout: Duration,
    /// Time allowed for a request's body.
    pub body_timeout: Duration,
    /// Request threads (0: half the cores, at least one).
    pub worker_threads: usize,
    /// Per-address connection limits and the file-descriptor reserve (the accept loop's).
    pub connections: ConnectionLimits,
    /// TLS (`https://`), when the section has an `ssl` table.
    pub tls: Option<TlsSettings>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings::from_json("http", "{}", "{}").expect("the defaults are valid")
    }
}

impl Section for Settings {
    type Raw = RawConfig;

    fn validate(raw: RawConfig, max_request_size: u64, section: &str) -> Result<Self, BoxError> {
        kit_config::require_positive(max_request_size, section, "maxRequestSize")?;
        let connections = ConnectionLimits::from_raw_or(
            raw.connection_limits(),
            ConnectionLimits {
                rate_per_address: DEFAULT_MAX_CONNECTION_RATE_PER_ADDRESS,
                ..ConnectionLimits::default()
            },
        );
        let tls = tls::validate(raw.tls(), section)?;
        // Kuzzle splits a string on commas; a list is taken as is.
        let origins: Vec<String> = match raw.access_control_allow_origin {
            None => vec!["*".to_string()],
            Some(Origins::One(text)) => text.split(',').map(|o| o.trim().to_string()).collect(),
            Some(Origins::Many(list)) => list,
        };
        let mut rules = Vec::with_capacity(origins.len());
        for (position, origin) in origins.iter().enumerate() {
            let rule = if origin == "*" {
                OriginRule::Any
            } else if raw.access_control_allow_origin_use_reg_exp {
                let regex = regex::Regex::new(origin).map_err(|error| {
                    format!("{section}.accessControlAllowOrigin[{position}]: invalid regular expression: {error}")
                })?;
                OriginRule::Pattern(regex)
            } else {
                OriginRule::Exact(origin.clone())
            };
            rules.push(rule);
        }
        for (key, value) in [
            ("headerTimeout", raw.header_timeout),
            ("bodyTimeout", raw.body_timeout),
        ] {
            if value == 0 {
                return Err(
                    format!("{section}.{key}: must be greater than 0 (milliseconds)").into(),
                );
            }
        }
        if raw.max_encoding_layers == 0 {
            return Err(format!("{section}.maxEncodingLayers: must be greater than 0").into());
        }
        Ok(Settings {
            address: raw.address,
            port: raw.port,
            max_request_size: usize::try_from(max_request_size).unwrap_or(usize::MAX),
            max_total_partial_bytes: partial::configured(raw.max_total_partial_bytes),
            cors: Cors::new(
                rules,
                raw.access_control_allow_methods
                    .as_deref()
                    .unwrap_or(DEFAULT_ALLOW_METHODS),
                raw.access_control_allow_headers
                    .as_deref()
                    .unwrap_or(DEFAULT_ALLOW_HEADERS),
            )
            .map_err(|key| format!("{section}.{key}: not a valid HTTP header value"))?,
            allow_compression: raw.allow_compression,
            max_encoding_layers: raw.max_encoding_layers,
            header_timeout: Duration::from_millis(raw.header_timeout),
            body_timeout: Duration::from_millis(raw.body_timeout),
            worker_threads: raw.worker_threads,
            connections,
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(section: &str, server: &str) -> Result<Settings, String> {
        Settings::from_json("http", section, server).map_err(|error| error.to_string())
    }

    #[test]
    fn defaults() {
        let settings = parse("{}", "{}").unwrap();
        assert_eq!(settings.port, 7511);
        assert_eq!(settings.max_request_size, 1024 * 1024);
        assert_eq!(settings.max_total_partial_bytes, 256 << 20);
        assert!(settings.allow_compression);
        assert_eq!(settings.max_encoding_layers, 3);
        assert_eq!(settings.header_timeout, Duration::from_secs(10));
        assert_eq!(settings.body_timeout, Duration::from_secs(10));
        assert_eq!(settings.worker_threads, 0);
        assert!(settings.cors.allows("https://anything.example"));
        assert_eq!(settings.cors.allow_methods(), DEFAULT_ALLOW_METHODS);
        assert_eq!(
            settings.connections,
            ConnectionLimits {
                max_per_address: 256,
                rate_per_address: 512,
                file_descriptor_reserve: 64
            }
        );
        let written = parse(r#"{"maxConnectionRatePerAddress":0}"#, "{}").unwrap();
        assert_eq!(written.connections.rate_per_address, 0);
    }

    #[test]
    fn every_key_is_read() {
        let settings = parse(
            r#"{"port":0,"address":"127.0.0.1","maxRequestSize":"2KB",
                "accessControlAllowOrigin":["https://a.example"],
                "accessControlAllowMethods":"GET","accessControlAllowHeaders":"X-A",
                "allowCompression":false,"maxEncodingLayers":1,"headerTimeout":500,"bodyTimeout":700,
                "workerThreads":3,"maxTotalPartialBytes":"3MB"}"#,
            r#"{"maxRequestSize":"1GB"}"#,
        )
        .unwrap();
        assert_eq!(settings.port, 0);
        assert_eq!(settings.address, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(settings.max_request_size, 2048);
        assert_eq!(settings.max_total_partial_bytes, 3 << 20);
        assert!(settings.cors.allows("https://a.example"));
        assert!(!settings.cors.allows("https://b.example"));
        assert_eq!(settings.cors.allow_methods(), "GET");
        assert_eq!(settings.cors.allow_headers(), "X-A");
        assert!(!settings.allow_compression);
        assert_eq!(settings.max_encoding_layers, 1);
        assert_eq!(settings.header_timeout, Duration::from_millis(500));
        assert_eq!(settings.body_timeout, Duration::from_millis(700));
        assert_eq!(settings.worker_threads, 3);
    }

    #[test]
    fn max_request_size_is_inherited_from_server() {
        let settings = parse("{}", r#"{"maxRequestSize":"16KB"}"#).unwrap();
        assert_eq!(settings.max_request_size, 16384);
    }

    #[test]
    fn origins_as_a_comma_list_or_regexps() {
        let settings = parse(
            r#"{"accessControlAllowOrigin":"https://a.example, https://b.example"}"#,
            "{}",
        )
        .unwrap();
        assert!(settings.cors.allows("https://b.example"));
        assert!(!settings.cors.allows("https://c.example"));
        let settings = parse(
            r#"{"accessControlAllowOrigin":["^https://[a-z]+\\.example$"],"accessControlAllowOriginUseRegExp":true}"#,
            "{}",
        )
        .unwrap();
        assert!(settings.cors.allows("https://c.example"));
        assert!(!settings.cors.allows("https://c.example.evil"));
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                r#"{"port":70000}"#,
                "server.protocols.http.port: invalid value: integer `70000`, expected u16",
            ),
            (
                r#"{"maxRequestSize":0}"#,
                "server.protocols.http.maxRequestSize: must be greater than 0",
            ),
            (
                r#"{"accessControlAllowOrigin":["("],"accessControlAllowOriginUseRegExp":true}"#,
                "server.protocols.http.accessControlAllowOrigin[0]: invalid regular expression: regex parse error:\n    (\n    ^\nerror: unclosed group",
            ),
            (
                r#"{"accessControlAllowOrigin":5}"#,
                "server.protocols.http.accessControlAllowOrigin: data did not match any variant of untagged enum Origins",
            ),
            (
                r#"{"bodyTimeout":0}"#,
                "server.protocols.http.bodyTimeout: must be greater than 0 (milliseconds)",
            ),
            (
                r#"{"accessControlAllowHeaders":"a\nb"}"#,
                "server.protocols.http.accessControlAllowHeaders: not a valid HTTP header value",
            ),
            (
                r#"{"compression":true}"#,
                "server.protocols.http.compression: unknown field `compression`, expected one of `port`, `address`, `maxRequestSize`, `maxTotalPartialBytes`, `accessControlAllowOrigin`, `accessControlAllowOriginUseRegExp`, `accessControlAllowMethods`, `accessControlAllowHeaders`, `allowCompression`, `maxEncodingLayers`, `headerTimeout`, `bodyTimeout`, `workerThreads`, `maxConnectionsPerAddress`, `maxConnectionRatePerAddress`, `fileDescriptorReserve`, `ssl`",
            ),
        ];
        for (section, expected) in cases {
            assert_eq!(parse(section, "{}").unwrap_err(), expected, "{section}");
        }
    }
}
