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
    /// Switchyard's (not in Kuzzle's catalogue; code 100 of the subdomain, clear of Kuzzle's):
    /// the connection holds `limits.subscriptionsPerConnection` subscriptions already.
    CORE_REALTIME_TOO_MANY_SUBSCRIPTIONS = ("core.realtime.too_many_subscriptions", 65636, 413, "Unable to subscribe: this connection already holds the maximum number of subscriptions (%s).");
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
    /// Switchyard's (not in Kuzzle's catalogue; code 100 of the subdomain, clear of Kuzzle's):
    /// a realtime subscription asked over a protocol whose connection ends with the request
    /// (HTTP). A client mistake, so 400, where Kuzzle answers 500 `unsupported_protocol`.
    API_ASSERT_PERSISTENT_CONNECTION_REQUIRED = ("api.assert.persistent_connection_required", 33620068, 400, "The API action \"%s\" subscribes to notifications, which needs a persistent connection: use WebSocket, MQTT or Socket.io, not %s.");
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
    /// Switchyard's (not in Kuzzle's catalogue; codes 100 to 102 of the subdomain, clear of
    /// Kuzzle's): a connection refused before it is served, by its protocol's own means (an
    /// HTTP answer, a WebSocket handshake refused, an MQTT CONNACK). The address holds
    /// `maxConnectionsPerAddress` connections already.
    NETWORK_ENTRYPOINT_TOO_MANY_CONNECTIONS = ("network.entrypoint.too_many_connections", 50593892, 429, "Rejected: too many connections from this address");
    /// The address opened more than `maxConnectionRatePerAddress` connections in the last second.
    NETWORK_ENTRYPOINT_TOO_MANY_NEW_CONNECTIONS = ("network.entrypoint.too_many_new_connections", 50593893, 429, "Rejected: too many new connections per second from this address");
    /// The process is near its file-descriptor limit (`fileDescriptorReserve`).
    NETWORK_ENTRYPOINT_CONNECTIONS_FULL = ("network.entrypoint.connections_full", 50593894, 503, "Rejected: the server is at its connection limit");

    // ---- documents (switchyard-storage): indexes, collections, documents, search ----
    /// The index does not exist.
    SERVICES_STORAGE_UNKNOWN_INDEX = ("services.storage.unknown_index", 16842753, 412, "The index \"%s\" does not exist.");
    /// The collection does not exist.
    SERVICES_STORAGE_UNKNOWN_COLLECTION = ("services.storage.unknown_collection", 16842754, 412, "The collection \"%s\":\"%s\" does not exist.");
    /// More documents asked for than `limits.documentsFetchCount`.
    SERVICES_STORAGE_GET_LIMIT_EXCEEDED = ("services.storage.get_limit_exceeded", 16842755, 413, "The number of documents returned by this request exceeds the configured server limit.");
    /// More documents written than `limits.documentsWriteCount`.
    SERVICES_STORAGE_WRITE_LIMIT_EXCEEDED = ("services.storage.write_limit_exceeded", 16842756, 413, "The number of documents edited by this request exceeds the configured server limit.");
    /// No such document.
    SERVICES_STORAGE_NOT_FOUND = ("services.storage.not_found", 16842763, 404, "Document \"%s\" not found in \"%s\":\"%s\".");
    /// A scroll id that never existed or has expired.
    SERVICES_STORAGE_UNKNOWN_SCROLL_ID = ("services.storage.unknown_scroll_id", 16842766, 404, "Non-existing or expired scroll identifier.");
    /// `_search` as a document id.
    SERVICES_STORAGE_SEARCH_AS_AN_ID = ("services.storage.search_as_an_id", 16842767, 400, "_search is not a valid document identifier");
    /// Creating a document whose id is taken.
    SERVICES_STORAGE_DOCUMENT_ALREADY_EXISTS = ("services.storage.document_already_exists", 16842769, 400, "Document already exists.");
    /// A storage argument with a wrong value (`refresh`).
    SERVICES_STORAGE_INVALID_ARGUMENT = ("services.storage.invalid_argument", 16842771, 400, "Argument \"%s\" is invalid (expected: %s)");
    /// A read-modify-write kept conflicting with concurrent writes.
    SERVICES_STORAGE_TOO_MANY_CHANGES = ("services.storage.too_many_changes", 16842784, 500, "Unable to modify document \"%s\": cluster sync failed (too many simultaneous changes applied)");
    /// A request the store refused (a malformed query clause or mapping).
    SERVICES_STORAGE_UNEXPECTED_BAD_REQUEST = ("services.storage.unexpected_bad_request", 16842785, 400, "%s");
    /// A document missing for a partial update.
    SERVICES_STORAGE_UNEXPECTED_NOT_FOUND = ("services.storage.unexpected_not_found", 16842786, 404, "%s");
    /// The store failed (I/O, a full disk): nothing acknowledged is lost.
    SERVICES_STORAGE_UNEXPECTED_ERROR = ("services.storage.unexpected_error", 16842787, 500, "%s");
    /// Creating an index that exists.
    SERVICES_STORAGE_INDEX_ALREADY_EXISTS = ("services.storage.index_already_exists", 16842790, 412, "A %s index named \"%s\" already exists");
    /// A search body key outside Kuzzle's whitelist.
    SERVICES_STORAGE_INVALID_SEARCH_QUERY = ("services.storage.invalid_search_query", 16842792, 400, "The argument \"%s\" is not allowed at this level of a search query.");
    /// An index name breaking Kuzzle's rules.
    SERVICES_STORAGE_INVALID_INDEX_NAME = ("services.storage.invalid_index_name", 16842793, 400, "The index name \"%s\" is invalid");
    /// A collection name breaking Kuzzle's rules.
    SERVICES_STORAGE_INVALID_COLLECTION_NAME = ("services.storage.invalid_collection_name", 16842794, 400, "The collection name \"%s\" is invalid");
    /// A scroll TTL above the maximum (1 minute).
    SERVICES_STORAGE_SCROLL_DURATION_TOO_GREAT = ("services.storage.scroll_duration_too_great", 16842796, 400, "Scroll duration \"%s\" is too great.");
    /// A query keyword that is not Elasticsearch DSL.
    SERVICES_STORAGE_UNKNOWN_QUERY_KEYWORD = ("services.storage.unknown_query_keyword", 16842797, 400, "The keyword \"%s\" is not part of Elasticsearch Query DSL. Are you trying to use a Koncorde query?");
    /// A query keyword this store refuses.
    SERVICES_STORAGE_INVALID_QUERY_KEYWORD = ("services.storage.invalid_query_keyword", 16842799, 400, "The \"%s\" keyword is not allowed in this query.");
    /// An action that refuses to run twice at once (`admin:resetDatabase`).
    API_PROCESS_ACTION_LOCKED = ("api.process.action_locked", 33685505, 412, "Cannot execute action \"%s\": already executing.");
    /// `strict` m* request with a failed item.
    API_PROCESS_INCOMPLETE_MULTIPLE_REQUEST = ("api.process.incomplete_multiple_request", 33685514, 400, "At least one of the %s actions failed.");
    /// A Koncorde keyword search queries cannot use (`lang: "koncorde"`).
    API_ASSERT_KONCORDE_RESTRICTED_KEYWORD = ("api.assert.koncorde_restricted_keyword", 33619981, 400, "The %s \"%s\" of Koncorde DSL is not supported for search queries.");
    /// Specifications with unknown keys, bad types or unknown field types.
    VALIDATION_ASSERT_INVALID_SPECIFICATIONS = ("validation.assert.invalid_specifications", 83951627, 400, "Errors occured with the provided specifications:\n%s");
    /// `collection:getSpecifications` on a collection that has none.
    VALIDATION_ASSERT_NOT_FOUND = ("validation.assert.not_found", 83951628, 404, "No specifications defined for index %s and collection %s");
    /// A write refused by its collection's specifications, at the document's level (`strict`).
    VALIDATION_CHECK_FAILED_DOCUMENT = ("validation.check.failed_document", 84082689, 400, "Failed to validate document: %s");
    /// A write refused by its collection's specifications, at one field.
    VALIDATION_CHECK_FAILED_FIELD = ("validation.check.failed_field", 84082690, 400, "Validation failed. Field \"%s\": %s");
    /// Switchyard's (not in Kuzzle's catalogue; code 100 of the subdomain, clear of Kuzzle's):
    /// a document larger than `limits.documentMaxSize`, refused before it is stored.
    SERVICES_STORAGE_DOCUMENT_TOO_LARGE = ("services.storage.document_too_large", 16842852, 413, "Document \"%s\" is too large: %s bytes (limits.documentMaxSize: %s bytes).");
    // ---- end of documents ----

    // ---- security (switchyard-security): users, profiles, roles, rights, tokens, credentials ----
    /// An argument that must not be empty is.
    API_ASSERT_EMPTY_ARGUMENT = ("api.assert.empty_argument", 33619972, 400, "The argument \"%s\" is empty.");
    /// An argument the action does not accept (a member of a policy or restriction).
    API_ASSERT_UNEXPECTED_ARGUMENT = ("api.assert.unexpected_argument", 33619975, 400, "Unexpected argument \"%s\" (accepted arguments: %s)");
    /// An argument this action refuses (`profileIds` in `createFirstAdmin`).
    API_ASSERT_FORBIDDEN_ARGUMENT = ("api.assert.forbidden_argument", 33619979, 400, "The argument \"%s\" is not allowed by this API action.");
    /// More requests per second than the user's profiles allow (`rateLimit`).
    API_PROCESS_TOO_MANY_REQUESTS = ("api.process.too_many_requests", 33685512, 429, "Rejected: requests rate limit exceeded for this user.");
    /// `createFirstAdmin` when an admin exists.
    API_PROCESS_ADMIN_EXISTS = ("api.process.admin_exists", 33685513, 412, "Admin user is already set.");
    /// More `auth:login` per second on one connection than `loginsPerSecond`.
    API_PROCESS_TOO_MANY_LOGINS_REQUESTS = ("api.process.too_many_logins_requests", 33685517, 429, "Rejected: Too many login attempts per second");
    /// A strategy refused the credentials (the message is the strategy's).
    PLUGIN_STRATEGY_MISSING_USER = ("plugin.strategy.missing_user", 67305492, 401, "%s");
    /// A token that is malformed, badly signed, revoked or past its grace period.
    SECURITY_TOKEN_INVALID = ("security.token.invalid", 117506049, 401, "Invalid token.");
    /// A token asked for a user that does not exist.
    SECURITY_TOKEN_UNKNOWN_USER = ("security.token.unknown_user", 117506050, 500, "Unknown User : cannot generate token");
    /// `expiresIn` above `maxTTL`.
    SECURITY_TOKEN_TTL_EXCEEDED = ("security.token.ttl_exceeded", 117506052, 400, "expiresIn value exceeds maximum allowed value");
    /// A token past its `exp`.
    SECURITY_TOKEN_EXPIRED = ("security.token.expired", 117506054, 401, "Token expired");
    /// Verification failed for another reason than the token itself.
    SECURITY_TOKEN_VERIFICATION_ERROR = ("security.token.verification_error", 117506055, 500, "Error verifying token: %s");
    /// Refreshing an API key or a token that never expires.
    SECURITY_TOKEN_REFRESH_FORBIDDEN = ("security.token.refresh_forbidden", 117506056, 401, "Token cannot be refreshed.");
    /// `auth:createToken` with `expiresIn: -1`.
    SECURITY_TOKEN_INVALID_EXPIRATION = ("security.token.invalid_expiration", 117506057, 400, "Token can not be created with this expiration time: %s");
    /// A strategy name no strategy has.
    SECURITY_CREDENTIALS_UNKNOWN_STRATEGY = ("security.credentials.unknown_strategy", 117571585, 400, "Unknown authentication strategy \"%s\"");
    /// Credentials that exist for a user that does not.
    SECURITY_CREDENTIALS_DATABASE_INCONSISTENCY = ("security.credentials.database_inconsistency", 117571586, 500, "Internal database inconsistency detected: existing credentials found on non-existing user %s.");
    /// A strategy refused credentials while a user was created.
    SECURITY_CREDENTIALS_REJECTED = ("security.credentials.rejected", 117571587, 400, "Credentials rejected: %s");
    /// The anonymous user lacks a right.
    SECURITY_RIGHTS_UNAUTHORIZED = ("security.rights.unauthorized", 117637121, 401, "Unauthorized: authentication required to execute the action \"%s:%s\".");
    /// An authenticated user lacks a right.
    SECURITY_RIGHTS_FORBIDDEN = ("security.rights.forbidden", 117637122, 403, "Insufficient permissions to execute the action \"%s:%s\" (User \"%s\").");
    /// Creating a user whose id is taken.
    SECURITY_USER_ALREADY_EXISTS = ("security.user.already_exists", 117702657, 412, "User %s already exists.");
    /// No such user.
    SECURITY_USER_NOT_FOUND = ("security.user.not_found", 117702658, 404, "User \"%s\" not found.");
    /// Taking the anonymous profile away from the anonymous user.
    SECURITY_USER_ANONYMOUS_PROFILE_REQUIRED = ("security.user.anonymous_profile_required", 117702659, 400, "The anonymous user must be assigned to the anonymous profile");
    /// A user whose profiles do not all exist.
    SECURITY_USER_CANNOT_HYDRATE = ("security.user.cannot_hydrate", 117702660, 500, "Unable to hydrate the user \"%s\": missing profile(s) in the database");
    /// A user without profiles.
    SECURITY_USER_NO_PROFILE = ("security.user.no_profile", 117702663, 500, "Cannot load user \"%s\": there is no security profiles associated to it");
    /// No such role.
    SECURITY_ROLE_NOT_FOUND = ("security.role.not_found", 117768193, 404, "Role \"%s\" not found.");
    /// The anonymous role must keep `auth:login`.
    SECURITY_ROLE_LOGIN_REQUIRED = ("security.role.login_required", 117768194, 400, "Cannot remove the \"login\" action from the anonymous role.");
    /// Deleting `anonymous`, `default` or `admin`.
    SECURITY_ROLE_CANNOT_DELETE = ("security.role.cannot_delete", 117768195, 400, "The following roles are protected and cannot be deleted: anonymous, default, admin");
    /// Deleting a role some profile uses.
    SECURITY_ROLE_IN_USE = ("security.role.in_use", 117768196, 412, "The role \"%s\" is still used and cannot be deleted.");
    /// A role naming a controller that does not exist.
    SECURITY_ROLE_UNKNOWN_CONTROLLER = ("security.role.unknown_controller", 117768201, 400, "Trying to set role %s with a non-existing controller '%s'. %s");
    /// A role naming an action its controller does not have.
    SECURITY_ROLE_UNKNOWN_ACTION = ("security.role.unknown_action", 117768202, 400, "Trying to set role %s with a non-existing action '%s' in controller '%s'. %s");
    /// No such profile.
    SECURITY_PROFILE_NOT_FOUND = ("security.profile.not_found", 117833729, 404, "Profile \"%s\" not found.");
    /// Deleting `anonymous`, `default` or `admin`.
    SECURITY_PROFILE_CANNOT_DELETE = ("security.profile.cannot_delete", 117833730, 400, "The following profiles are protected and cannot be deleted: anonymous, default, admin");
    /// Deleting a profile some user has.
    SECURITY_PROFILE_IN_USE = ("security.profile.in_use", 117833731, 412, "The profile \"%s\" is still used and cannot be deleted.");
    /// A profile whose roles do not all exist.
    SECURITY_PROFILE_CANNOT_HYDRATE = ("security.profile.cannot_hydrate", 117833732, 500, "Unable to hydrate the profile \"%s\": missing role(s) in the database");
    /// The anonymous profile must keep the anonymous role.
    SECURITY_PROFILE_MISSING_ANONYMOUS_ROLE = ("security.profile.missing_anonymous_role", 117833733, 400, "The anonymous profile must include the anonymous role");
    /// The `local` strategy's `PreconditionError` (`Login "<u>" is already used.`, `A strategy
    /// already exists for user "<kuid>".`). Kuzzle sends it with status 412 and no id or code;
    /// this id and code are Switchyard's.
    PLUGIN_STRATEGY_PRECONDITION_FAILED = ("plugin.strategy.precondition_failed", 67305472, 412, "%s");
    /// A security document (an API key) that does not exist: Kuzzle's storage error.
    SECURITY_STORAGE_NOT_FOUND = ("services.storage.not_found", 16842763, 404, "Document \"%s\" not found in \"%s\":\"%s\".");
    /// A role or profile `create*` on an existing id: Kuzzle's storage error.
    SECURITY_STORAGE_DOCUMENT_ALREADY_EXISTS = ("services.storage.document_already_exists", 16842769, 400, "Document already exists.");
    // ---- end of security ----
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
