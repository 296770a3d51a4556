//! Kuzzle error entries this plugin needs that `switchyard_plugin_api::errors` lacks yet, with
//! Kuzzle's exact ids, codes, statuses and messages (`lib/kerror/codes/*.json`, Kuzzle 2.56.0).
//!
//! Move them to the SDK's catalogue when it gains them; the test below pins their codes.

use switchyard_plugin_api::errors::ErrorSpec;

/// The body is not JSON (Kuzzle quotes the first 50 characters of the body).
pub const NETWORK_HTTP_BODY_PARSE_FAILED: ErrorSpec = ErrorSpec {
    id: "network.http.body_parse_failed",
    code: 50397196,
    status: 400,
    template: "Unable to convert the HTTP body to JSON: %s",
};

/// `X-Kuzzle-Volatile` is not JSON.
pub const NETWORK_HTTP_VOLATILE_PARSE_FAILED: ErrorSpec = ErrorSpec {
    id: "network.http.volatile_parse_failed",
    code: 50397195,
    status: 400,
    template: "Unable to convert the \"x-kuzzle-volatile\" HTTP header to JSON: %s",
};

/// A compressed body while `allowCompression` is false.
pub const NETWORK_HTTP_COMPRESSION_DISABLED: ErrorSpec = ErrorSpec {
    id: "network.http.compression_disabled",
    code: 50397189,
    status: 400,
    template: "Compression support is disabled.",
};

/// A request whose `Origin` is not in `accessControlAllowOrigin`.
pub const API_PROCESS_UNAUTHORIZED_ORIGIN: ErrorSpec = ErrorSpec {
    id: "api.process.unauthorized_origin",
    code: 33685516,
    status: 401,
    template: "The origin \"%s\" is not authorized.",
};

/// An action this protocol cannot serve (a realtime subscription over HTTP). Kuzzle's class for
/// it is `InternalError`, hence 500.
pub const API_ASSERT_UNSUPPORTED_PROTOCOL: ErrorSpec = ErrorSpec {
    id: "api.assert.unsupported_protocol",
    code: 33619984,
    status: 500,
    template: "The protocol \"%s\" is not supported by the API action \"%s\".",
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
            (API_ASSERT_UNSUPPORTED_PROTOCOL, (2, 1, 16)),
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
