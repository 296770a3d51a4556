//! The Kuzzle error entries specific to HTTP, from the SDK's catalogue; the test below pins
//! their codes to Kuzzle's (`lib/kerror/codes/*.json`, Kuzzle 2.56.0).

pub use switchyard_plugin_api::errors::{
    API_ASSERT_PERSISTENT_CONNECTION_REQUIRED, API_PROCESS_UNAUTHORIZED_ORIGIN,
    NETWORK_HTTP_BODY_PARSE_FAILED, NETWORK_HTTP_COMPRESSION_DISABLED,
    NETWORK_HTTP_VOLATILE_PARSE_FAILED,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_kuzzles_layout() {
        // (domain, subdomain, error) numbers from Kuzzle's JSON files.
        let cases = [
            (NETWORK_HTTP_BODY_PARSE_FAILED, (3, 1, 12)),
            (NETWORK_HTTP_VOLATILE_PARSE_FAILED, (3, 1, 11)),
            (NETWORK_HTTP_COMPRESSION_DISABLED, (3, 1, 5)),
            (API_PROCESS_UNAUTHORIZED_ORIGIN, (2, 2, 12)),
            // Switchyard's own: code 100 of api.assert, clear of Kuzzle's.
            (API_ASSERT_PERSISTENT_CONNECTION_REQUIRED, (2, 1, 100)),
        ];
        for (spec, (domain, subdomain, error)) in cases {
            assert_eq!(
                spec.code,
                (domain << 24) | (subdomain << 16) | error,
                "{}",
                spec.id
            );
        }
    }
}
