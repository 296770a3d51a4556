//! Which controllers and actions exist, for validating roles: Kuzzle's native API (2.56.0), so
//! that roles written for Kuzzle (importing one, or the SDK's suite) validate the same way here
//! whatever subset of it the host serves yet.

/// What role validation asks about the API.
pub trait ApiCatalog: Send + Sync {
    /// Whether `controller` is one of the server's own controllers (not a plugin's).
    fn is_native_controller(&self, controller: &str) -> bool;
    /// Whether native `controller` has `action`.
    fn is_native_action(&self, controller: &str, action: &str) -> bool;
}

/// Kuzzle 2.56.0's native controllers and their actions (`lib/api/controllers/*`, `funnel.js`;
/// `ms` is an alias of `memoryStorage`, whose actions are its Redis command mapping).
pub const KUZZLE_NATIVE_API: &[(&str, &[&str])] = &[
    (
        "admin",
        &[
            "dump", "loadFixtures", "loadMappings", "loadSecurities", "refreshIndexCache",
            "resetCache", "resetDatabase", "resetSecurity", "shutdown",
        ],
    ),
    (
        "auth",
        &[
            "checkRights", "checkToken", "createApiKey", "createMyCredentials", "createToken",
            "credentialsExist", "deleteApiKey", "deleteMyCredentials", "getCurrentUser",
            "getMyCredentials", "getMyRights", "getStrategies", "login", "logout", "refreshToken",
            "searchApiKeys", "updateMyCredentials", "updateSelf", "validateMyCredentials",
        ],
    ),
    (
        "bulk",
        &[
            "import", "write", "mWrite", "deleteByQuery", "updateByQuery",
        ],
    ),
    (
        "cluster",
        &[
            "status",
        ],
    ),
    (
        "collection",
        &[
            "create", "delete", "deleteSpecifications", "exists", "getMapping", "getSettings",
            "getSpecifications", "list", "refresh", "scrollSpecifications",
            "searchSpecifications", "truncate", "update", "updateMapping", "updateSpecifications",
            "validateSpecifications",
        ],
    ),
    (
        "debug",
        &[
            "nodeVersion", "enable", "disable", "post", "addListener", "removeListener",
        ],
    ),
    (
        "document",
        &[
            "count", "create", "createOrReplace", "delete", "deleteByQuery", "deleteFields",
            "exists", "export", "get", "mCreate", "mCreateOrReplace", "mDelete", "mExists",
            "mGet", "mReplace", "mUpdate", "mUpsert", "replace", "scroll", "search", "update",
            "updateByQuery", "upsert", "validate",
        ],
    ),
    (
        "index",
        &[
            "create", "delete", "exists", "list", "mDelete", "stats",
        ],
    ),
    (
        "memoryStorage",
        &[
            "append", "bitcount", "bitop", "bitpos", "dbsize", "decr", "decrby", "del", "exists",
            "expire", "expireat", "flushdb", "geoadd", "geodist", "geohash", "geopos",
            "georadius", "georadiusbymember", "get", "getbit", "getrange", "getset", "hdel",
            "hexists", "hget", "hgetall", "hincrby", "hincrbyfloat", "hkeys", "hlen", "hmget",
            "hmset", "hscan", "hset", "hsetnx", "hstrlen", "hvals", "incr", "incrby",
            "incrbyfloat", "keys", "lindex", "linsert", "llen", "lpop", "lpush", "lpushx",
            "lrange", "lrem", "lset", "ltrim", "mexecute", "mget", "mset", "msetnx", "object",
            "persist", "pexpire", "pexpireat", "pfadd", "pfcount", "pfmerge", "ping", "psetex",
            "pttl", "randomkey", "rename", "renamenx", "rpop", "rpoplpush", "rpush", "rpushx",
            "sadd", "scan", "scard", "sdiff", "sdiffstore", "set", "setex", "setnx", "sinter",
            "sinterstore", "sismember", "smembers", "smove", "sort", "spop", "srandmember",
            "srem", "sscan", "strlen", "sunion", "sunionstore", "time", "touch", "ttl", "type",
            "zadd", "zcard", "zcount", "zincrby", "zinterstore", "zlexcount", "zrange",
            "zrangebylex", "zrangebyscore", "zrank", "zrem", "zremrangebylex", "zremrangebyrank",
            "zremrangebyscore", "zrevrange", "zrevrangebylex", "zrevrangebyscore", "zrevrank",
            "zscan", "zscore", "zunionstore",
        ],
    ),
    (
        "ms",
        &[
            "append", "bitcount", "bitop", "bitpos", "dbsize", "decr", "decrby", "del", "exists",
            "expire", "expireat", "flushdb", "geoadd", "geodist", "geohash", "geopos",
            "georadius", "georadiusbymember", "get", "getbit", "getrange", "getset", "hdel",
            "hexists", "hget", "hgetall", "hincrby", "hincrbyfloat", "hkeys", "hlen", "hmget",
            "hmset", "hscan", "hset", "hsetnx", "hstrlen", "hvals", "incr", "incrby",
            "incrbyfloat", "keys", "lindex", "linsert", "llen", "lpop", "lpush", "lpushx",
            "lrange", "lrem", "lset", "ltrim", "mexecute", "mget", "mset", "msetnx", "object",
            "persist", "pexpire", "pexpireat", "pfadd", "pfcount", "pfmerge", "ping", "psetex",
            "pttl", "randomkey", "rename", "renamenx", "rpop", "rpoplpush", "rpush", "rpushx",
            "sadd", "scan", "scard", "sdiff", "sdiffstore", "set", "setex", "setnx", "sinter",
            "sinterstore", "sismember", "smembers", "smove", "sort", "spop", "srandmember",
            "srem", "sscan", "strlen", "sunion", "sunionstore", "time", "touch", "ttl", "type",
            "zadd", "zcard", "zcount", "zincrby", "zinterstore", "zlexcount", "zrange",
            "zrangebylex", "zrangebyscore", "zrank", "zrem", "zremrangebylex", "zremrangebyrank",
            "zremrangebyscore", "zrevrange", "zrevrangebylex", "zrevrangebyscore", "zrevrank",
            "zscan", "zscore", "zunionstore",
        ],
    ),
    (
        "realtime",
        &[
            "count", "join", "list", "publish", "subscribe", "unsubscribe", "validate",
        ],
    ),
    (
        "security",
        &[
            "checkRights", "createApiKey", "createCredentials", "createFirstAdmin",
            "restrictDefaultRights", "createOrReplaceProfile", "createOrReplaceRole",
            "createProfile", "createRestrictedUser", "createRole", "createUser", "deleteApiKey",
            "deleteCredentials", "deleteProfile", "deleteRole", "deleteUser",
            "getAllCredentialFields", "getCredentialFields", "getCredentials",
            "getCredentialsById", "getProfile", "getProfileMapping", "getProfileRights",
            "getRole", "getRoleMapping", "getUser", "getUserMapping", "getUserRights",
            "getUserStrategies", "hasCredentials", "mDeleteProfiles", "mDeleteRoles",
            "mDeleteUsers", "mGetProfiles", "mGetRoles", "mGetUsers", "refresh", "replaceUser",
            "revokeTokens", "scrollProfiles", "scrollUsers", "searchApiKeys", "searchProfiles",
            "searchRoles", "searchUsers", "searchUsersByCredentials", "updateCredentials",
            "updateProfile", "updateProfileMapping", "updateRole", "updateRoleMapping",
            "updateUser", "updateUserMapping", "upsertUser", "validateCredentials",
        ],
    ),
    (
        "server",
        &[
            "adminExists", "capabilities", "getAllStats", "getConfig", "getLastStats", "getStats",
            "healthCheck", "info", "metrics", "now", "publicApi", "openapi",
        ],
    ),
];

/// The catalogue of [`KUZZLE_NATIVE_API`].
#[derive(Debug, Clone, Copy, Default)]
pub struct KuzzleCatalog;

impl ApiCatalog for KuzzleCatalog {
    fn is_native_controller(&self, controller: &str) -> bool {
        KUZZLE_NATIVE_API.iter().any(|(name, _)| *name == controller)
    }

    fn is_native_action(&self, controller: &str, action: &str) -> bool {
        KUZZLE_NATIVE_API
            .iter()
            .find(|(name, _)| *name == controller)
            .is_some_and(|(_, actions)| actions.contains(&action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_kuzzles_controllers_and_aliases() {
        let table = [
            ("auth", "login", true),
            ("auth", "nope", false),
            ("ms", "get", true),
            ("memoryStorage", "zscan", true),
            ("document", "mUpsert", true),
            ("plugin", "x", false),
        ];
        for (controller, action, known) in table {
            assert_eq!(KuzzleCatalog.is_native_action(controller, action), known, "{controller}:{action}");
        }
        assert!(KuzzleCatalog.is_native_controller("ms"));
        assert!(!KuzzleCatalog.is_native_controller("*"));
    }
}
