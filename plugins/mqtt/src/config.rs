//! `[server.protocols.mqtt]` as written (serde) and as used (validated `Settings`).

use std::net::IpAddr;
use std::time::Duration;

use switchyard_plugin_api::BoxError;
use switchyard_plugin_kit::config::{self as kit_config, RawSection, Section};
use switchyard_plugin_kit::flow::Flow;
use switchyard_plugin_kit::gate::ConnectionLimits;
use switchyard_plugin_kit::partial;
use switchyard_plugin_kit::tls::{self, TlsSettings};

use crate::broker::RetainLimits;

/// MQTT's registered port.
pub const DEFAULT_PORT: u16 = 1883;
pub use switchyard_plugin_api::config::DEFAULT_MAX_REQUEST_SIZE;
/// QoS 1 and 2 messages waiting per session: offline, or past the in-flight window
/// (mosquitto's `max_queued_messages` default too).
pub const DEFAULT_MAX_QUEUED_MESSAGES: usize = 1000;
/// QoS 1 and 2 messages sent and not yet acknowledged per session (mosquitto's
/// `max_inflight_messages` default too).
pub const DEFAULT_MAX_INFLIGHT_MESSAGES: usize = 20;
/// Topics that may hold a retained message (issue 19: one client publishing 500 retained
/// 1 MB messages held 500 MB for ever).
pub const DEFAULT_MAX_RETAINED_MESSAGES: usize = 10_000;
/// Bytes of retained topics and payloads, in all.
pub const DEFAULT_MAX_RETAINED_BYTES: u64 = 64 << 20;
/// Milliseconds a client has to send CONNECT after opening the socket.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;

switchyard_plugin_kit::raw_section! {
    /// The section as written. Keys are camelCase, as in Kuzzle's `server.protocols.mqtt`.
    pub struct RawConfig {
        @listen(DEFAULT_PORT),
        /// Let clients publish and subscribe to ordinary topics (a plain MQTT broker).
        #[serde(default)]
        allow_pub_sub: bool,
        /// Where clients publish Kuzzle API requests.
        #[serde(default = "default_request_topic")]
        request_topic: String,
        /// Where each client receives its own responses.
        #[serde(default = "default_response_topic")]
        response_topic: String,
        // Largest packet accepted; overrides `[server] maxRequestSize`.
        @max_request_size,
        /// Bytes of unfinished packets all connections may hold together; 0 = no limit.
        #[serde(default)]
        max_total_partial_bytes: Option<switchyard_plugin_api::config::Size>,
        /// QoS 1/2 messages waiting per session (offline persistent session, or past the
        /// in-flight window); more are dropped.
        #[serde(default = "switchyard_plugin_kit::config::default_usize::<DEFAULT_MAX_QUEUED_MESSAGES>")]
        max_queued_messages: usize,
        /// QoS 1/2 messages sent and not yet acknowledged per session; the next ones wait.
        /// 0: as many as packet ids allow.
        #[serde(default = "switchyard_plugin_kit::config::default_usize::<DEFAULT_MAX_INFLIGHT_MESSAGES>")]
        max_inflight_messages: usize,
        /// Topics that may hold a retained message; over it a retained publish is delivered
        /// but not retained. 0 retains nothing.
        #[serde(default = "switchyard_plugin_kit::config::default_usize::<DEFAULT_MAX_RETAINED_MESSAGES>")]
        max_retained_messages: usize,
        /// Bytes of retained topics and payloads, in all; same refusal.
        #[serde(default)]
        max_retained_bytes: Option<switchyard_plugin_api::config::Size>,
        @flow,
        @connections,
        /// Largest keep-alive (seconds) a client may ask for; 0 = no limit.
        #[serde(default)]
        max_keep_alive: u16,
        /// Milliseconds to wait for CONNECT after the socket opens.
        #[serde(default = "switchyard_plugin_kit::config::default_u64::<DEFAULT_CONNECT_TIMEOUT_MS>")]
        connect_timeout: u64,
        @tls,
    }
}

fn default_request_topic() -> String {
    "Kuzzle/request".to_string()
}

fn default_response_topic() -> String {
    "Kuzzle/response".to_string()
}

/// The validated configuration of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where to listen.
    pub address: IpAddr,
    /// Port (0: any free port).
    pub port: u16,
    /// Ordinary topics allowed.
    pub allow_pub_sub: bool,
    /// Kuzzle requests are published here.
    pub request_topic: String,
    /// Kuzzle responses are published here, to their requester only.
    pub response_topic: String,
    /// Largest packet, fixed header included.
    pub max_packet_size: usize,
    /// Bytes of unfinished packets all connections may hold together (0: no limit).
    pub max_total_partial_bytes: usize,
    /// Cap on QoS 1/2 messages waiting per session.
    pub max_queued_messages: usize,
    /// Cap on QoS 1/2 messages sent and not yet acknowledged per session (0: none).
    pub max_inflight_messages: usize,
    /// Caps on retained messages.
    pub retain_limits: RetainLimits,
    /// Flow control: pressure marks, slow-consumer caps, pending requests.
    pub flow: Flow,
    /// Per-address connection limits and the file-descriptor reserve (the accept loop's).
    pub connections: ConnectionLimits,
    /// Largest keep-alive accepted, seconds; 0 = any.
    pub max_keep_alive: u16,
    /// Time allowed between accepting a socket and its CONNECT.
    pub connect_timeout: Duration,
    /// TLS (`mqtts://`), when the section has an `ssl` table.
    pub tls: Option<TlsSettings>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            address: kit_config::any_address(),
            port: DEFAULT_PORT,
            allow_pub_sub: false,
            request_topic: default_request_topic(),
            response_topic: default_response_topic(),
            max_packet_size: DEFAULT_MAX_REQUEST_SIZE as usize,
            max_total_partial_bytes: partial::DEFAULT_MAX_TOTAL_PARTIAL_BYTES as usize,
            max_queued_messages: DEFAULT_MAX_QUEUED_MESSAGES,
            max_inflight_messages: DEFAULT_MAX_INFLIGHT_MESSAGES,
            retain_limits: RetainLimits {
                max_messages: DEFAULT_MAX_RETAINED_MESSAGES,
                max_bytes: DEFAULT_MAX_RETAINED_BYTES as usize,
            },
            flow: Flow::default(),
            connections: ConnectionLimits::default(),
            max_keep_alive: 0,
            connect_timeout: Duration::from_millis(DEFAULT_CONNECT_TIMEOUT_MS),
            tls: None,
        }
    }
}

impl Section for Settings {
    type Raw = RawConfig;

    fn validate(raw: RawConfig, max_request_size: u64, section: &str) -> Result<Self, BoxError> {
        // 268,435,455 is the largest remaining length MQTT can encode.
        if !(2..=268_435_460).contains(&max_request_size) {
            return Err(format!(
                "{section}.maxRequestSize: must be between 2 bytes and 256MB (MQTT's largest packet)"
            )
            .into());
        }
        for (key, topic) in [
            ("requestTopic", &raw.request_topic),
            ("responseTopic", &raw.response_topic),
        ] {
            crate::topic::check_name(topic).map_err(|why| {
                format!("{section}.{key}: \"{topic}\" is not a topic name ({why})")
            })?;
        }
        if raw.request_topic == raw.response_topic {
            return Err(format!(
                "{section}.responseTopic: must differ from requestTopic (\"{}\")",
                raw.request_topic
            )
            .into());
        }
        if raw.max_queued_messages == 0 {
            return Err(format!("{section}.maxQueuedMessages: must be greater than 0").into());
        }
        let flow = Flow::validate(raw.flow(), section)?;
        let connections = ConnectionLimits::from_raw(raw.connection_limits());
        let tls = tls::validate(raw.tls(), section)?;
        let retain_limits = RetainLimits {
            max_messages: raw.max_retained_messages,
            max_bytes: raw
                .max_retained_bytes
                .map_or(DEFAULT_MAX_RETAINED_BYTES, |size| size.0)
                .try_into()
                .unwrap_or(usize::MAX),
        };
        if raw.connect_timeout == 0 {
            return Err(format!("{section}.connectTimeout: must be greater than 0").into());
        }
        Ok(Settings {
            address: raw.address,
            port: raw.port,
            allow_pub_sub: raw.allow_pub_sub,
            request_topic: raw.request_topic,
            response_topic: raw.response_topic,
            max_packet_size: max_request_size as usize,
            max_total_partial_bytes: partial::configured(raw.max_total_partial_bytes),
            max_queued_messages: raw.max_queued_messages,
            max_inflight_messages: raw.max_inflight_messages,
            retain_limits,
            flow,
            connections,
            max_keep_alive: raw.max_keep_alive,
            connect_timeout: Duration::from_millis(raw.connect_timeout),
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(section: &str, server: &str) -> Result<Settings, String> {
        Settings::from_json("mqtt", section, server).map_err(|error| error.to_string())
    }

    #[test]
    fn defaults_follow_kuzzle() {
        let settings = parse("{}", "{}").unwrap();
        assert_eq!(settings, Settings::default());
        assert_eq!(settings.port, 1883);
        assert!(!settings.allow_pub_sub);
        assert_eq!(settings.request_topic, "Kuzzle/request");
        assert_eq!(settings.response_topic, "Kuzzle/response");
        assert_eq!(settings.max_packet_size, 1024 * 1024);
        assert_eq!(settings.retain_limits.max_messages, 10_000);
        assert_eq!(settings.retain_limits.max_bytes, 64 << 20);
    }

    #[test]
    fn every_key_is_read() {
        let settings = parse(
            r#"{"port":0,"address":"127.0.0.1","allowPubSub":true,"requestTopic":"api/in",
                "responseTopic":"api/out","maxRequestSize":"2KB","maxQueuedMessages":5,
                "maxQueuedBytes":"64KB","maxKeepAlive":60,"maxRetainedMessages":7,
                "maxRetainedBytes":"3KB","connectTimeout":500,"maxTotalPartialBytes":"5MB",
                "highWaterMark":"1MB","slowConsumerTimeout":3000,"maxPendingRequests":4}"#,
            r#"{"maxRequestSize":"1GB","pluginDir":"x"}"#,
        )
        .unwrap();
        assert_eq!(settings.port, 0);
        assert_eq!(settings.address, IpAddr::from([127, 0, 0, 1]));
        assert!(settings.allow_pub_sub);
        assert_eq!(settings.request_topic, "api/in");
        assert_eq!(settings.response_topic, "api/out");
        assert_eq!(settings.max_packet_size, 2048);
        assert_eq!(settings.max_queued_messages, 5);
        assert_eq!(settings.max_total_partial_bytes, 5 << 20);
        assert_eq!(
            settings.retain_limits,
            RetainLimits {
                max_messages: 7,
                max_bytes: 3072
            }
        );
        assert_eq!(settings.flow.max_queued_bytes, 65536);
        assert_eq!(
            settings.flow.slow_consumer_timeout,
            Duration::from_millis(3000)
        );
        assert_eq!(settings.flow.max_pending_requests, 4);
        assert_eq!(settings.flow.marks.high, 1 << 20);
        assert_eq!(settings.max_keep_alive, 60);
        assert_eq!(settings.connect_timeout, Duration::from_millis(500));
        let inherited = parse("{}", r#"{"maxRequestSize":"16KB"}"#).unwrap();
        assert_eq!(inherited.max_packet_size, 16384);
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (r#"{"port":70000}"#, "server.protocols.mqtt.port: invalid value: integer `70000`, expected u16"),
            (r#"{"allowPubSub":"yes"}"#, "server.protocols.mqtt.allowPubSub: invalid type: string \"yes\", expected a boolean"),
            (r#"{"requestTopic":"a/#"}"#, "server.protocols.mqtt.requestTopic: \"a/#\" is not a topic name (wildcard in a topic name)"),
            (r#"{"responseTopic":""}"#, "server.protocols.mqtt.responseTopic: \"\" is not a topic name (empty topic name)"),
            (r#"{"responseTopic":"Kuzzle/request"}"#, "server.protocols.mqtt.responseTopic: must differ from requestTopic (\"Kuzzle/request\")"),
            (r#"{"maxRequestSize":"1GB"}"#, "server.protocols.mqtt.maxRequestSize: must be between 2 bytes and 256MB (MQTT's largest packet)"),
            (r#"{"maxQueuedMessages":0}"#, "server.protocols.mqtt.maxQueuedMessages: must be greater than 0"),
            (r#"{"maxQueuedBytes":"1XB"}"#, "server.protocols.mqtt.maxQueuedBytes: \"1XB\" is not a size (expected bytes, or a number with B, KB, MB or GB)"),
            (r#"{"connectTimeout":0}"#, "server.protocols.mqtt.connectTimeout: must be greater than 0"),
            (r#"{"server":{"port":1}}"#, "server.protocols.mqtt.server: unknown field `server`, expected one of `port`, `address`, `allowPubSub`, `requestTopic`, `responseTopic`, `maxRequestSize`, `maxTotalPartialBytes`, `maxQueuedMessages`, `maxInflightMessages`, `maxRetainedMessages`, `maxRetainedBytes`, `maxQueuedBytes`, `highWaterMark`, `lowWaterMark`, `maxTotalQueuedBytes`, `slowConsumerTimeout`, `maxPendingRequests`, `maxConnectionsPerAddress`, `maxConnectionRatePerAddress`, `fileDescriptorReserve`, `maxKeepAlive`, `connectTimeout`, `ssl`"),
        ];
        for (section, expected) in cases {
            assert_eq!(parse(section, "{}").unwrap_err(), expected, "{section}");
        }
    }
}
