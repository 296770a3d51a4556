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
