//! Who makes a request, and whether they may: the one check every request passes before
//! dispatch, whatever its protocol.
//!
//! [`service::Security`] is the real gate (Kuzzle's users, profiles, roles and tokens, kept in
//! the document store's internal index by [`store::StoredRepository`]); [`OpenGate`] lets
//! everyone in as the anonymous user, for tests of what lies behind the gate.

pub mod service;
pub mod store;

pub use service::{Security, SecuritySettings};

use std::sync::Arc;

use switchyard_plugin_api::errors::KuzzleError;
use switchyard_plugin_api::ConnectionId;

/// Kuzzle's anonymous user id.
pub const ANONYMOUS_USER: &str = "-1";

/// Who a request runs as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The user's id (`kuid`); `None` for the anonymous user (no allocation, no shared counter
    /// touched for the common case).
    user: Option<Arc<str>>,
    /// The token the request authenticated with, if any.
    pub token: Option<Arc<str>>,
}

impl Identity {
    /// The anonymous user, without a token.
    pub fn anonymous() -> Identity {
        Identity::default()
    }

    /// A known user, authenticated with `token`.
    pub fn user(user_id: Arc<str>, token: Option<Arc<str>>) -> Identity {
        Identity {
            user: Some(user_id),
            token,
        }
    }

    /// The user's id: `-1` for the anonymous user.
    pub fn user_id(&self) -> &str {
        self.user.as_deref().unwrap_or(ANONYMOUS_USER)
    }

    /// True for the anonymous user.
    pub fn is_anonymous(&self) -> bool {
        self.user.is_none()
    }
}

/// What the gate looks at to decide: the request's address in the API and its credentials.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    /// The connection the request came from.
    pub connection: ConnectionId,
    /// Its protocol's index.
    pub protocol: usize,
    /// Controller name.
    pub controller: &'a str,
    /// Action name.
    pub action: &'a str,
    /// `index`, when given.
    pub index: Option<&'a str>,
    /// `collection`, when given.
    pub collection: Option<&'a str>,
    /// The request's `jwt`, when given.
    pub jwt: Option<&'a str>,
}

/// Decides who a request runs as and whether it may run. Called once per request, before
/// dispatch, on the thread that dispatches it (a plugin's thread for inline actions): it must
/// not block — everything it needs is in memory.
pub trait Gatekeeper: Send + Sync + 'static {
    /// The identity the request runs as, or the error to answer (Kuzzle's
    /// `security.rights.unauthorized`, `security.rights.forbidden`, `security.token.*`).
    fn admit(&self, access: &Access<'_>) -> Result<Identity, KuzzleError>;
}

/// The gate of a server without users: everyone is anonymous, everything is allowed.
#[derive(Debug, Default, Clone, Copy)]
pub struct OpenGate;

impl Gatekeeper for OpenGate {
    fn admit(&self, _access: &Access<'_>) -> Result<Identity, KuzzleError> {
        Ok(Identity::anonymous())
    }
}
