//! Loading a `[server.protocols.<name>]` section: every plugin parses its own keys (serde, as
//! written) and validates them into its settings; the steps around that are the same for all.

use std::net::IpAddr;

use serde::de::DeserializeOwned;
use switchyard_plugin_api::config::Size;
use switchyard_plugin_api::{BoxError, InitConfig};

/// A protocol's validated settings, made from its section as written.
pub trait Section: Sized {
    /// The section as written (serde, `deny_unknown_fields`).
    type Raw: DeserializeOwned;

    /// The section's own `maxRequestSize`, if it has one (it overrides `[server]`'s).
    fn own_max_request_size(raw: &Self::Raw) -> Option<Size>;

    /// Checks the section and makes the settings; `section` is its path, for messages.
    fn validate(raw: Self::Raw, max_request_size: u64, section: &str) -> Result<Self, BoxError>;

    /// Reads the protocol's section and `[server] maxRequestSize`.
    fn from_init(config: &InitConfig<'_>) -> Result<Self, BoxError> {
        load(config, Self::own_max_request_size, Self::validate)
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

    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Raw {
        #[serde(default)]
        max_request_size: Option<Size>,
    }

    fn settings(section: &str, server: &str) -> Result<(u64, String), BoxError> {
        load(
            &init_config("demo", section, server),
            |raw: &Raw| raw.max_request_size,
            |_, max, path| Ok((max, path.to_string())),
        )
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
