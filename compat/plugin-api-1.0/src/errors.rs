//! Kuzzle's typed errors: the catalogue entries Switchyard uses, and their JSON form.
//!
//! Clients (the Kuzzle SDKs first) branch on `id`, `code` and `status`, so these are part of the
//! wire contract: ids, codes and message templates are Kuzzle's own (`lib/kerror/codes/*.json`).
//! `code` is `(domain << 24) | (subdomain << 16) | error`.

use std::borrow::Cow;
use std::fmt;

/// One catalogue entry: an error as Kuzzle declares it, with a `%s` message template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorSpec {
    /// `domain.subdomain.name`.
    pub id: &'static str,
    /// Kuzzle's numeric code.
    pub code: u32,
    /// HTTP-like status of the error's class.
    pub status: u16,
    /// Message template; each `%s` takes one argument, in order.
    pub template: &'static str,
}

impl ErrorSpec {
    /// The error with its template filled in with `args` (missing arguments leave `%s`).
    pub fn with(self, args: &[&str]) -> KuzzleError {
        let message = if args.is_empty() {
            Cow::Borrowed(self.template)
        } else {
            let mut out = String::with_capacity(self.template.len() + 16);
            let mut args = args.iter();
            let mut rest = self.template;
            while let Some(at) = rest.find("%s") {
                out.push_str(&rest[..at]);
                match args.next() {
                    Some(arg) => out.push_str(arg),
                    None => out.push_str("%s"),
                }
                rest = &rest[at + 2..];
            }
            out.push_str(rest);
            Cow::Owned(out)
        };
        KuzzleError {
            spec: self,
            message,
        }
    }

    /// The error with its template as is (for templates without `%s`).
    pub fn error(self) -> KuzzleError {
        self.with(&[])
    }
}

/// A Kuzzle error ready to be sent: `{message, status, id, code}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KuzzleError {
    /// The catalogue entry.
    pub spec: ErrorSpec,
    /// The message, template filled in.
    pub message: Cow<'static, str>,
}

impl KuzzleError {
    /// HTTP-like status.
    pub fn status(&self) -> u16 {
        self.spec.status
    }

    /// Kuzzle's error id, `domain.subdomain.name`.
    pub fn id(&self) -> &'static str {
        self.spec.id
    }

    /// Writes the error object as JSON: `{"message":…,"status":…,"id":…,"code":…,"props":[]}`.
    pub fn write_json(&self, out: &mut String) {
        out.push_str("{\"message\":");
        crate::json::push_str(out, &self.message);
        out.push_str(",\"status\":");
        crate::json::push_u64(out, self.spec.status.into());
        out.push_str(",\"id\":");
        crate::json::push_str(out, self.spec.id);
        out.push_str(",\"code\":");
        crate::json::push_u64(out, self.spec.code.into());
        out.push_str(",\"props\":[]}");
    }

    /// The error object as a JSON string.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(96 + self.message.len());
        self.write_json(&mut out);
        out
    }
}

impl fmt::Display for KuzzleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.spec.id)
    }
}

impl std::error::Error for KuzzleError {}

macro_rules! catalogue {
    ($($(#[$doc:meta])* $name:ident = ($id:literal, $code:literal, $status:literal, $template:literal);)*) => {
        $(
            $(#[$doc])*
            pub const $name: ErrorSpec = ErrorSpec {
                id: $id,
                code: $code,
                status: $status,
                template: $template,
            };
        )*
        /// Every entry of this catalogue, for tests and tools.
        pub const ALL: &[ErrorSpec] = &[$($name),*];
    };
}

catalogue! {
    /// An unexpected internal failure.
    CORE_FATAL_UNEXPECTED_ERROR = ("core.fatal.unexpected_error", 1, 500, "Caught an unexpected error: %s.");
    /// `room` does not exist.
    CORE_REALTIME_ROOM_NOT_FOUND = ("core.realtime.room_not_found", 65537, 404, "The room \"%s\" doesn't exist");
    /// Bad `scope` value.
    CORE_REALTIME_INVALID_SCOPE = ("core.realtime.invalid_scope", 65540, 400, "Invalid value for the \"scope\" parameter (allowed: \"all\", \"in\", \"out\", \"none\").");
    /// Bad `users` value.
    CORE_REALTIME_INVALID_USERS = ("core.realtime.invalid_users", 65541, 400, "Invalid value for the \"users\" parameter (allowed: \"all\", \"in\", \"out\", \"none\").");
    /// Too many conditions in one filter.
    CORE_REALTIME_TOO_MANY_TERMS = ("core.realtime.too_many_terms", 65542, 413, "Unable to subscribe: maximum number of terms exceeded (max %s, received %s).");
    /// The room limit is reached.
    CORE_REALTIME_TOO_MANY_ROOMS = ("core.realtime.too_many_rooms", 65543, 413, "Unable to subscribe: maximum number of unique rooms reached.");
    /// Unsubscribing from a room the connection is not in.
    CORE_REALTIME_NOT_SUBSCRIBED = ("core.realtime.not_subscribed", 65544, 412, "User \"%s\" has not subscribed to \"%s\".");
    /// An argument has the wrong JSON type.
    API_ASSERT_INVALID_TYPE = ("api.assert.invalid_type", 33619969, 400, "Wrong type for argument \"%s\" (expected: %s)");
    /// An argument has a wrong value.
    API_ASSERT_INVALID_ARGUMENT = ("api.assert.invalid_argument", 33619970, 400, "Invalid argument \"%s\". Expected: %s");
    /// A required argument is absent.
    API_ASSERT_MISSING_ARGUMENT = ("api.assert.missing_argument", 33619971, 400, "Missing argument \"%s\".");
    /// The request has no body.
    API_ASSERT_BODY_REQUIRED = ("api.assert.body_required", 33619976, 400, "The request must specify a body.");
    /// An action a protocol cannot serve (a realtime subscription over HTTP). Kuzzle's class
    /// for it is `InternalError`, hence 500.
    API_ASSERT_UNSUPPORTED_PROTOCOL = ("api.assert.unsupported_protocol", 33619984, 500, "The protocol \"%s\" is not supported by the API action \"%s\".");
    /// A malformed Koncorde filter.
    API_ASSERT_KONCORDE_DSL_ERROR = ("api.assert.koncorde_dsl_error", 33619982, 400, "%s");
    /// The request queue is full.
    API_PROCESS_OVERLOADED = ("api.process.overloaded", 33685506, 503, "Request discarded: Kuzzle Server is temporarily overloaded.");
    /// The connection was removed before its request ran.
    API_PROCESS_CONNECTION_DROPPED = ("api.process.connection_dropped", 33685507, 400, "Client connection dropped");
    /// Unknown controller.
    API_PROCESS_CONTROLLER_NOT_FOUND = ("api.process.controller_not_found", 33685508, 404, "API controller \"%s\" not found.");
    /// Unknown action of a known controller.
    API_PROCESS_ACTION_NOT_FOUND = ("api.process.action_not_found", 33685509, 404, "API action \"%s\":\"%s\" not found");
    /// A request whose `Origin` is not allowed.
    API_PROCESS_UNAUTHORIZED_ORIGIN = ("api.process.unauthorized_origin", 33685516, 401, "The origin \"%s\" is not authorized.");
    /// The request is larger than `maxRequestSize` (HTTP).
    NETWORK_HTTP_REQUEST_TOO_LARGE = ("network.http.request_too_large", 50397185, 413, "Maximum HTTP request size exceeded.");
    /// A malformed HTTP request.
    NETWORK_HTTP_UNEXPECTED_ERROR = ("network.http.unexpected_error", 50397186, 400, "Caught an unexpected HTTP error: %s");
    /// Too many `Content-Encoding` layers.
    NETWORK_HTTP_TOO_MANY_ENCODINGS = ("network.http.too_many_encodings", 50397187, 400, "Too many encodings.");
    /// Unknown `Content-Encoding`.
    NETWORK_HTTP_UNSUPPORTED_COMPRESSION = ("network.http.unsupported_compression", 50397188, 400, "Unsupported compression algorithm \"%s\".");
    /// A compressed body while compression is disabled.
    NETWORK_HTTP_COMPRESSION_DISABLED = ("network.http.compression_disabled", 50397189, 400, "Compression support is disabled.");
    /// An HTTP method no route takes.
    NETWORK_HTTP_UNSUPPORTED_VERB = ("network.http.unsupported_verb", 50397190, 400, "Unsupported HTTP verb \"%s\".");
    /// No route for this URL.
    NETWORK_HTTP_URL_NOT_FOUND = ("network.http.url_not_found", 50397191, 404, "API URL not found: %s.");
    /// A content type other than JSON, form or multipart.
    NETWORK_HTTP_UNSUPPORTED_CONTENT = ("network.http.unsupported_content", 50397192, 400, "Invalid request content-type. Expected \"application/json\", got: \"%s\".");
    /// A charset other than UTF-8.
    NETWORK_HTTP_UNSUPPORTED_CHARSET = ("network.http.unsupported_charset", 50397193, 400, "Unsupported request charset. Expected \"utf-8\", got: \"%s\".");
    /// `X-Kuzzle-Volatile` is not JSON.
    NETWORK_HTTP_VOLATILE_PARSE_FAILED = ("network.http.volatile_parse_failed", 50397195, 400, "Unable to convert the \"x-kuzzle-volatile\" HTTP header to JSON: %s");
    /// The HTTP body is not JSON.
    NETWORK_HTTP_BODY_PARSE_FAILED = ("network.http.body_parse_failed", 50397196, 400, "Unable to convert the HTTP body to JSON: %s");
    /// A malformed MQTT request (not UTF-8, not JSON, not an object).
    NETWORK_MQTT_UNEXPECTED_ERROR = ("network.mqtt.unexpected_error", 50462721, 400, "Caught an unexpected MQTT error: %s");
    /// A malformed WebSocket message (invalid JSON, not an object…).
    NETWORK_WEBSOCKET_UNEXPECTED_ERROR = ("network.websocket.unexpected_error", 50528257, 400, "Caught an unexpected WebSocket error: %s");
    /// More messages per second than `rateLimit`.
    NETWORK_WEBSOCKET_RATELIMIT_EXCEEDED = ("network.websocket.ratelimit_exceeded", 50528258, 429, "Rejected: too many requests received from that socket");
    /// The host is shutting down.
    NETWORK_ENTRYPOINT_SHUTTING_DOWN = ("network.entrypoint.shutting_down", 50593795, 503, "Rejected: instance is shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_kuzzles_layout() {
        let domains = [
            ("core", 0),
            ("services", 1),
            ("api", 2),
            ("network", 3),
            ("plugin", 4),
            ("validation", 5),
            ("protocol", 6),
            ("security", 7),
            ("cluster", 8),
        ];
        for spec in ALL {
            let domain = spec.id.split('.').next().unwrap();
            let (_, number) = domains.iter().find(|(name, _)| *name == domain).unwrap();
            assert_eq!(spec.code >> 24, *number, "{}", spec.id);
        }
    }

    #[test]
    fn templates_are_filled_in_order() {
        let error = API_PROCESS_ACTION_NOT_FOUND.with(&["server", "nope"]);
        assert_eq!(error.message, "API action \"server\":\"nope\" not found");
        assert_eq!(
            error.to_json(),
            r#"{"message":"API action \"server\":\"nope\" not found","status":404,"id":"api.process.action_not_found","code":33685509,"props":[]}"#
        );
    }
}
