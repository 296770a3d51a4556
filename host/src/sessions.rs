//! Token expiry on connections (Kuzzle's token manager, `lib/core/auth/tokenManager.ts`): one
//! timer thread waits for the earliest linked token to expire (the schedule is one ordered
//! structure, `TokenLinks`), then tells each of its connections `TokenExpired` through its
//! protocol's `notify` hook on `kuzzle:notification:server` and removes that connection's
//! subscriptions (user `out` notifications to the others). The socket stays open.

use std::sync::{Arc, Weak};
use std::time::Duration;

use abi_stable::std_types::RStr;
use switchyard_security::expiry::{token_expired_payload, SERVER_NOTIFICATION_CHANNEL};

use crate::services::Services;

/// The `node` of the `TokenExpired` payload (a single-node server).
pub const NODE_ID: &str = "switchyard";

/// Longest wait between two looks at the schedule (also how soon the thread notices the
/// services are gone).
const MAX_WAIT: Duration = Duration::from_secs(1);

/// Sends `TokenExpired` to the connections whose token expired by now and drops their
/// subscriptions; how many connections it told.
pub fn expire_due(services: &Services) -> usize {
    let security = &services.security;
    let expired = security.take_expired(security.clock.now_ms());
    if expired.is_empty() {
        return 0;
    }
    let payload = token_expired_payload(NODE_ID).to_string();
    let channels = [RStr::from_str(SERVER_NOTIFICATION_CHANNEL)];
    let mut told = 0;
    for link in expired {
        let Some(protocol) = services.connections.protocol_of(link.connection) else {
            continue;
        };
        if let Some(slot) = services.protocols.get(protocol) {
            slot.notify(link.connection, &channels, &payload);
        }
        told += 1;
        services
            .realtime
            .remove_connection(link.connection, |departure| {
                services.complete_departure(link.connection, protocol, &departure)
            });
    }
    told
}

/// Starts the timer thread; it ends once the services are dropped.
pub fn start_timer(services: &Arc<Services>) -> std::io::Result<()> {
    let services: Weak<Services> = Arc::downgrade(services);
    std::thread::Builder::new()
        .name("token-expiry".into())
        .spawn(move || loop {
            let Some(services) = services.upgrade() else {
                return;
            };
            services.security.wait_for_expiry(MAX_WAIT);
            expire_due(&services);
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use switchyard_security::clock::ManualClock;
    use switchyard_storage::EmbeddedStorage;

    use super::*;
    use crate::api::testing::Harness;
    use crate::api::Router;
    use crate::config::Config;
    use crate::security::Security;
    use crate::services::security_settings;

    #[test]
    fn an_expired_token_drops_its_connections_subscriptions_once() {
        let config = Config::parse(
            std::path::Path::new("test.toml"),
            "[server]\n[security.argon2]\nmemoryKib = 64\niterations = 1\nparallelism = 1\n",
        )
        .unwrap();
        let storage: Arc<dyn switchyard_storage::Storage> =
            Arc::new(EmbeddedStorage::in_memory().unwrap());
        let clock = ManualClock::at(1_000_000);
        let security = Security::open(
            Arc::clone(&storage),
            security_settings(&config),
            Arc::new(clock.clone()),
        )
        .unwrap();
        let services = Services::with_security(Arc::new(config), storage, Arc::new(security));
        let connection = services.connections.declare(0, &["127.0.0.1"], "");
        let harness = Harness {
            services: Arc::new(services),
            router: Arc::new(Router::standard()),
            connection,
        };
        let call = |request: serde_json::Value| harness.call(&request.to_string());
        assert_eq!(
            call(
                json!({"controller": "security", "action": "createUser", "_id": "u",
                        "body": {"content": {"profileIds": ["default"]},
                                 "credentials": {"local": {"username": "u", "password": "p"}}}})
            )["status"],
            200
        );
        let login = call(
            json!({"controller": "auth", "action": "login", "strategy": "local",
                                "expiresIn": "3s", "body": {"username": "u", "password": "p"}}),
        );
        assert_eq!(login["result"]["expiresAt"], 1_003_000, "{login}");
        assert_eq!(login["result"]["ttl"], 3_000);
        let jwt = login["result"]["jwt"].as_str().unwrap().to_owned();
        let subscribed = call(
            json!({"controller": "realtime", "action": "subscribe", "jwt": jwt,
                                     "index": "i", "collection": "c", "body": {}}),
        );
        let room = subscribed["result"]["roomId"].as_str().unwrap().to_owned();
        let count = || harness.services.realtime.count(&room).unwrap_or(0);
        assert_eq!(count(), 1);

        clock.advance(2_999);
        assert_eq!(expire_due(&harness.services), 0);
        assert_eq!(count(), 1);
        clock.advance(1);
        assert_eq!(expire_due(&harness.services), 1);
        assert_eq!(count(), 0);
        assert_eq!(expire_due(&harness.services), 0, "told once");
        let late = call(json!({"controller": "server", "action": "now", "jwt": jwt}));
        assert_eq!(late["error"]["id"], "security.token.expired");
    }
}
