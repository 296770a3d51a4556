//! The roles and profiles Kuzzle ships: the open bootstrap of a fresh install
//! (`internalIndexHandler.createInitialSecurities`) and the restricted standard set that
//! `createFirstAdmin {reset:true}` / `restrictDefaultRights` apply (`config.security.standard`).

use crate::model::{Profile, Role, User};

/// A fresh install: `admin`, `default` and `anonymous` roles, each `*:*`.
pub fn bootstrap_roles() -> Vec<Role> {
    ["admin", "default", "anonymous"]
        .iter()
        .map(|id| Role::from_triples(id, &[("*", "*", true)]))
        .collect()
}

/// A fresh install: profiles of the same names on those roles (`admin` with `rateLimit: 0`, the
/// others without one, which is also 0).
pub fn bootstrap_profiles() -> Vec<Profile> {
    ["admin", "default", "anonymous"]
        .iter()
        .map(|id| Profile::with_roles(id, &[id], 0))
        .collect()
}

/// `config.security.standard.roles`.
pub fn standard_roles() -> Vec<Role> {
    vec![
        Role::from_triples("admin", &[("*", "*", true)]),
        Role::from_triples(
            "default",
            &[
                ("auth", "checkToken", true),
                ("auth", "getCurrentUser", true),
                ("auth", "getMyRights", true),
                ("auth", "logout", true),
                ("auth", "updateSelf", true),
                ("server", "publicApi", true),
            ],
        ),
        Role::from_triples(
            "anonymous",
            &[
                ("auth", "checkToken", true),
                ("auth", "getCurrentUser", true),
                ("auth", "getMyRights", true),
                ("auth", "login", true),
                ("server", "publicApi", true),
                ("server", "openapi", true),
            ],
        ),
    ]
}

/// `config.security.standard.profiles`: `admin` (rateLimit 0), `default` (10), `anonymous`
/// (200).
pub fn standard_profiles() -> Vec<Profile> {
    vec![
        Profile::with_roles("admin", &["admin"], 0),
        Profile::with_roles("default", &["default"], 10),
        Profile::with_roles("anonymous", &["anonymous"], 200),
    ]
}

/// `security.restrictedProfileIds`' default: what `createRestrictedUser` assigns.
pub fn restricted_profile_ids() -> Vec<String> {
    vec!["default".to_owned()]
}

/// The in-memory anonymous user.
pub fn anonymous_user() -> User {
    User::anonymous()
}
