//! Loading a `[server.protocols.<name>]` section: every plugin parses its own keys (serde, as
//! written) and validates them into its settings; the steps around that are the same for all.
//!
//! The keys every protocol shares (`port` and `address`, `maxRequestSize`, the flow-control
//! keys) are declared once, in [`raw_section!`]: serde's `flatten` does not work with
//! `deny_unknown_fields`, so the macro writes them into the plugin's own struct, where the plugin
//! puts them, keeping the order of keys (and so of `unknown field` messages) as written.

use std::net::IpAddr;

use serde::de::DeserializeOwned;
use switchyard_plugin_api::config::Size;
use switchyard_plugin_api::{BoxError, InitConfig};

use crate::flow::RawFlow;
use crate::gate::RawConnectionLimits;
use crate::tls::RawTls;

/// A section as written (serde, `deny_unknown_fields`): the shared keys it holds. Implemented
/// by [`raw_section!`]; the defaults are for a section without those keys.
pub trait RawSection: DeserializeOwned {
    /// The section's own `maxRequestSize`, if it has one (it overrides `[server]`'s).
    fn max_request_size(&self) -> Option<Size> {
        None
    }

    /// The flow-control keys (`maxQueuedBytes`, `highWaterMark`, …) as written.
    fn flow(&self) -> RawFlow {
        RawFlow::default()
    }

    /// The per-address and descriptor keys (`maxConnectionsPerAddress`, …) as written.
    fn connection_limits(&self) -> RawConnectionLimits {
        RawConnectionLimits::default()
    }

    /// The `ssl` table (certificate, private key, client CA) as written, if any.
    fn tls(&self) -> Option<&RawTls> {
        None
    }
}

/// A protocol's validated settings, made from its section as written.
pub trait Section: Sized {
    /// The section as written.
    type Raw: RawSection;

    /// Checks the section and makes the settings; `section` is its path, for messages.
    fn validate(raw: Self::Raw, max_request_size: u64, section: &str) -> Result<Self, BoxError>;

    /// Reads the protocol's section and `[server] maxRequestSize`.
    fn from_init(config: &InitConfig<'_>) -> Result<Self, BoxError> {
        load(config, Self::Raw::max_request_size, Self::validate)
    }

    /// Parses from JSON text, as `InitConfig` would give it (tests, tools).
    fn from_json(name: &str, section: &str, server: &str) -> Result<Self, BoxError> {
        Self::from_init(&init_config(name, section, server))
    }
}

/// Parses the protocol's section into `Raw`, resolves `maxRequestSize` (the section's own value
/// from `own_max_request_size`, else `[server] maxRequestSize`), and hands both to `validate`
/// with the section's path for messages (`server.protocols.<name>`).
pub fn load<Raw: DeserializeOwned, Settings>(
    config: &InitConfig<'_>,
    own_max_request_size: impl FnOnce(&Raw) -> Option<Size>,
    validate: impl FnOnce(Raw, u64, &str) -> Result<Settings, BoxError>,
) -> Result<Settings, BoxError> {
    let raw: Raw = config.parse()?;
    let max_request_size = config.max_request_size(own_max_request_size(&raw))?;
    validate(raw, max_request_size, &section_path(config.name))
}

/// Declares a section as written: a serde struct with camelCase keys and
/// `deny_unknown_fields`, deriving `Debug`, implementing [`RawSection`]. Its fields are the
/// plugin's own (each ending with a comma) and, where the plugin puts them, the shared ones:
///
/// - `@listen(DEFAULT_PORT),` — `port` (that default; 0 asks for a free one) and `address`
///   (every interface by default, as Kuzzle);
/// - `@max_request_size,` — `maxRequestSize`, overriding `[server] maxRequestSize`;
/// - `@flow,` — `maxQueuedBytes`, `highWaterMark`, `lowWaterMark`, `maxTotalQueuedBytes`,
///   `slowConsumerTimeout` and `maxPendingRequests`, read by [`crate::flow::Flow::validate`];
/// - `@connections,` — `maxConnectionsPerAddress`, `maxConnectionRatePerAddress` and
///   `fileDescriptorReserve`, read by [`crate::gate::ConnectionLimits::from_raw`].
/// - `@tls,` — the `ssl` table (`certificate`, `privateKey`, `clientCa`), read by
///   [`crate::tls::validate`].
///
/// The plugin depends on `serde` (the derive) and names the kit `switchyard_plugin_kit`.
#[macro_export]
macro_rules! raw_section {
    ($(#[$meta:meta])* $vis:vis struct $name:ident { $($body:tt)* }) => {
        $crate::raw_section!(@munch [$(#[$meta])* $vis struct $name] $name [] [] [] $($body)*);
    };
    (@munch $head:tt $name:ident [$($fields:tt)*] [$($methods:tt)*] [$($items:tt)*]
        @listen($port:expr), $($rest:tt)*) => {
        $crate::raw_section!(@munch $head $name [$($fields)*
            /// Listening port; 0 asks the system for a free one (tests).
            #[serde(default = "__raw_section_default_port")]
            port: u16,
            /// Listening address; Kuzzle listens on every interface.
            #[serde(default = "switchyard_plugin_kit::config::any_address")]
            address: ::std::net::IpAddr,
        ] [$($methods)*] [$($items)*
            fn __raw_section_default_port() -> u16 {
                $port
            }
        ] $($rest)*);
    };
    (@munch $head:tt $name:ident [$($fields:tt)*] [$($methods:tt)*] [$($items:tt)*]
        @max_request_size, $($rest:tt)*) => {
        $crate::raw_section!(@munch $head $name [$($fields)*
            /// Overrides `[server] maxRequestSize` for this listener.
            #[serde(default)]
            max_request_size: Option<$crate::__api::config::Size>,
        ] [$($methods)*
            fn max_request_size(&self) -> Option<$crate::__api::config::Size> {
                self.max_request_size
            }
        ] [$($items)*] $($rest)*);
    };
    (@munch $head:tt $name:ident [$($fields:tt)*] [$($methods:tt)*] [$($items:tt)*]
        @flow, $($rest:tt)*) => {
        $crate::raw_section!(@munch $head $name [$($fields)*
            /// Hard cap on bytes waiting to be written to one connection (the last resort).
            #[serde(default)]
            max_queued_bytes: Option<$crate::__api::config::Size>,
            /// The instance's queued bytes past which the host paces publishers.
            #[serde(default)]
            high_water_mark: Option<$crate::__api::config::Size>,
            /// The instance's queued bytes below which pacing stops.
            #[serde(default)]
            low_water_mark: Option<$crate::__api::config::Size>,
            /// Cap on the instance's queued bytes (memory bound).
            #[serde(default)]
            max_total_queued_bytes: Option<$crate::__api::config::Size>,
            /// Milliseconds of writes without progress before a connection is closed as too slow.
            #[serde(default)]
            slow_consumer_timeout: Option<u64>,
            /// Requests of one connection awaiting answers before it stops being read.
            #[serde(default)]
            max_pending_requests: Option<usize>,
        ] [$($methods)*
            fn flow(&self) -> $crate::flow::RawFlow {
                $crate::flow::RawFlow {
                    high_water_mark: self.high_water_mark,
                    low_water_mark: self.low_water_mark,
                    max_total_queued_bytes: self.max_total_queued_bytes,
                    max_queued_bytes: self.max_queued_bytes,
                    slow_consumer_timeout: self.slow_consumer_timeout,
                    max_pending_requests: self.max_pending_requests,
                }
            }
        ] [$($items)*] $($rest)*);
    };
    (@munch $head:tt $name:ident [$($fields:tt)*] [$($methods:tt)*] [$($items:tt)*]
        @connections, $($rest:tt)*) => {
        $crate::raw_section!(@munch $head $name [$($fields)*
            /// Connections one source address may hold open; 0 = unlimited.
            #[serde(default)]
            max_connections_per_address: Option<u32>,
            /// New connections per second one source address may open; 0 = unlimited.
            #[serde(default)]
            max_connection_rate_per_address: Option<u32>,
            /// File descriptors left free for the host's admin listener; 0 = none.
            #[serde(default)]
            file_descriptor_reserve: Option<u32>,
        ] [$($methods)*
            fn connection_limits(&self) -> $crate::gate::RawConnectionLimits {
                $crate::gate::RawConnectionLimits {
                    max_connections_per_address: self.max_connections_per_address,
                    max_connection_rate_per_address: self.max_connection_rate_per_address,
                    file_descriptor_reserve: self.file_descriptor_reserve,
                }
            }
        ] [$($items)*] $($rest)*);
    };
    (@munch $head:tt $name:ident [$($fields:tt)*] [$($methods:tt)*] [$($items:tt)*]
        @tls, $($rest:tt)*) => {
        $crate::raw_section!(@munch $head $name [$($fields)*
            /// TLS: certificate chain, private key and optional client CA (PEM files).
            #[serde(default)]
            ssl: Option<$crate::tls::RawTls>,
        ] [$($methods)*
            fn tls(&self) -> Option<&$crate::tls::RawTls> {
                self.ssl.as_ref()
            }
        ] [$($items)*] $($rest)*);
    };
    (@munch $head:tt $name:ident [$($fields:tt)*] [$($methods:tt)*] [$($items:tt)*]
        $(#[$field_meta:meta])* $field:ident : $type:ty, $($rest:tt)*) => {
        $crate::raw_section!(@munch $head $name
            [$($fields)* $(#[$field_meta])* $field: $type,] [$($methods)*] [$($items)*] $($rest)*);
    };
    (@munch [$($head:tt)*] $name:ident [$($fields:tt)*] [$($methods:tt)*] [$($items:tt)*]) => {
        #[derive(Debug, serde::Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        $($head)* {
            $($fields)*
        }

        impl $crate::config::RawSection for $name {
            $($methods)*
        }

        $($items)*
    };
}

/// `server.protocols.<name>`: how messages name a protocol's section.
pub fn section_path(name: &str) -> String {
    format!("server.protocols.{name}")
}

/// The init configuration of a protocol from JSON text (tests, tools).
pub fn init_config<'a>(name: &'a str, section: &'a str, server: &'a str) -> InitConfig<'a> {
    InitConfig {
        name,
        config: section,
        server,
    }
}

/// A serde `default` of the constant `N`, so that a constant needs no function of its own:
/// `#[serde(default = "switchyard_plugin_kit::config::default_u64::<DEFAULT_X>")]`.
pub fn default_u64<const N: u64>() -> u64 {
    N
}

/// [`default_u64`] for `usize` keys.
pub fn default_usize<const N: usize>() -> usize {
    N
}

/// Every interface (`0.0.0.0`), where Kuzzle listens by default.
pub fn any_address() -> IpAddr {
    IpAddr::from([0, 0, 0, 0])
}

/// Fails with `<section>.<key>: must be greater than 0` when `value` is 0.
pub fn require_positive(value: u64, section: &str, key: &str) -> Result<(), BoxError> {
    if value == 0 {
        return Err(format!("{section}.{key}: must be greater than 0").into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::IpAddr;

    use crate as switchyard_plugin_kit;

    crate::raw_section! {
        /// Shared keys around a plugin's own.
        struct Raw {
            /// A plugin's own key.
            #[serde(default)]
            own: u8,
            @listen(7000),
            @max_request_size,
            #[serde(default)]
            enabled: bool,
            @flow,
            @connections,
            @tls,
        }
    }

    fn settings(section: &str, server: &str) -> Result<(u64, String), BoxError> {
        load(
            &init_config("demo", section, server),
            Raw::max_request_size,
            |_, max, path| Ok((max, path.to_string())),
        )
    }

    fn parse_raw(section: &str) -> Result<Raw, String> {
        init_config("demo", section, "{}")
            .parse()
            .map_err(|error| error.to_string())
    }

    #[test]
    fn the_macro_puts_the_shared_keys_where_they_are_written() {
        let raw = parse_raw(r#"{"enabled":true}"#).unwrap();
        assert_eq!((raw.own, raw.port, raw.enabled), (0, 7000, true));
        assert_eq!(raw.address, IpAddr::from([0, 0, 0, 0]));
        assert_eq!(raw.max_request_size(), None);
        assert!(raw.tls().is_none());
        let raw = parse_raw(r#"{"ssl":{"certificate":"c.pem","privateKey":"k.pem"}}"#).unwrap();
        let tls = raw.tls().unwrap();
        assert_eq!(
            (tls.certificate.to_str(), tls.client_ca.as_deref()),
            (Some("c.pem"), None)
        );
        assert_eq!(
            parse_raw(r#"{"ssl":{"certificate":"c.pem","privateKey":"k.pem","ca":"x"}}"#)
                .unwrap_err(),
            "server.protocols.demo.ssl.ca: unknown field `ca`, expected one of `certificate`, \
             `privateKey`, `clientCa`"
        );
        assert_eq!(
            parse_raw(r#"{"ssl":{"certificate":"c.pem"}}"#).unwrap_err(),
            "server.protocols.demo.ssl: missing field `privateKey`"
        );
        let raw = parse_raw(
            r#"{"enabled":false,"port":1,"address":"127.0.0.1","maxRequestSize":"1kb",
                "highWaterMark":4096,"lowWaterMark":1024,"maxTotalQueuedBytes":8192,
                "maxQueuedBytes":512,"slowConsumerTimeout":10,"maxPendingRequests":2,
                "maxConnectionsPerAddress":3,"maxConnectionRatePerAddress":0,
                "fileDescriptorReserve":16}"#,
        )
        .unwrap();
        assert_eq!((raw.port, raw.max_request_size()), (1, Some(Size(1024))));
        let flow = raw.flow();
        assert_eq!(
            (flow.high_water_mark, flow.low_water_mark),
            (Some(Size(4096)), Some(Size(1024)))
        );
        assert_eq!(
            (flow.max_total_queued_bytes, flow.max_queued_bytes),
            (Some(Size(8192)), Some(Size(512)))
        );
        assert_eq!(
            (flow.slow_consumer_timeout, flow.max_pending_requests),
            (Some(10), Some(2))
        );
        let limits = crate::gate::ConnectionLimits::from_raw(raw.connection_limits());
        assert_eq!(
            limits,
            crate::gate::ConnectionLimits {
                max_per_address: 3,
                rate_per_address: 0,
                file_descriptor_reserve: 16
            }
        );
        assert_eq!(
            crate::gate::ConnectionLimits::from_raw(parse_raw("{}").unwrap().connection_limits()),
            crate::gate::ConnectionLimits::default()
        );
        assert_eq!(
            parse_raw(r#"{"enabled":true,"nope":1}"#).unwrap_err(),
            "server.protocols.demo.nope: unknown field `nope`, expected one of `own`, `port`, \
             `address`, `maxRequestSize`, `enabled`, `maxQueuedBytes`, `highWaterMark`, \
             `lowWaterMark`, `maxTotalQueuedBytes`, `slowConsumerTimeout`, `maxPendingRequests`, \
             `maxConnectionsPerAddress`, `maxConnectionRatePerAddress`, `fileDescriptorReserve`, `ssl`"
        );
    }

    #[test]
    fn the_section_overrides_the_server_and_messages_name_the_section() {
        let (max, path) =
            settings(r#"{"maxRequestSize":"2kb"}"#, r#"{"maxRequestSize":"1mb"}"#).unwrap();
        assert_eq!((max, path.as_str()), (2048, "server.protocols.demo"));
        let (max, _) = settings("{}", r#"{"maxRequestSize":"1kb"}"#).unwrap();
        assert_eq!(max, 1024);
        assert!(settings(r#"{"unknown":1}"#, "{}").is_err());
        assert_eq!(
            require_positive(0, "server.protocols.demo", "port")
                .unwrap_err()
                .to_string(),
            "server.protocols.demo.port: must be greater than 0"
        );
    }
}
