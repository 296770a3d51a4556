//! The pieces of authentication that need the repository: the `local` strategy's login check and
//! the loading of a user's compiled rights.
//!
//! Password hashing is deliberately slow (Argon2id, PBKDF2): the host calls
//! [`LocalStrategy::verify`] on its blocking pool, never on a network thread.

use std::sync::Arc;

use serde_json::Value;
use switchyard_plugin_api::errors;

use crate::error::Result;
use crate::model::User;
use crate::password::{Argon2Params, LocalCredentials, StoredPassword};
use crate::repository::SecurityRepository;
use crate::rights::UserRights;
use crate::secret::Secret;

/// The `local` strategy: `{username, password}`.
pub struct LocalStrategy {
    repository: Arc<dyn SecurityRepository>,
    params: Argon2Params,
    /// A hash checked when the username is unknown, so that case costs what a wrong password
    /// costs and timing does not reveal which usernames exist.
    /// Verified against when the username is unknown, so that timing does not tell; hashed on
    /// first use (hashing at start-up would cost the start-up its budget).
    decoy: std::sync::OnceLock<StoredPassword>,
}

impl std::fmt::Debug for LocalStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStrategy")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// The message of every refused login: the same whether the username or the password is wrong.
pub const WRONG_CREDENTIALS: &str = "wrong username or password";

impl LocalStrategy {
    /// A strategy hashing new passwords with `params`.
    pub fn new(repository: Arc<dyn SecurityRepository>, params: Argon2Params) -> Result<Self> {
        // Checks the parameters now (cheap); the decoy hash waits for its first use.
        params
            .hasher()
            .map_err(|error| errors::CORE_FATAL_UNEXPECTED_ERROR.with(&[&error.to_string()]))?;
        Ok(LocalStrategy {
            repository,
            params,
            decoy: std::sync::OnceLock::new(),
        })
    }

    /// `verify` for `auth:login`: the kuid the credentials log in, or
    /// `plugin.strategy.missing_user` (`Missing credentials` or `wrong username or password`).
    /// A password stored with other parameters (or Kuzzle's PBKDF2) is re-hashed on success.
    pub fn verify(&self, body: &Value) -> Result<String> {
        let field = |name: &str| {
            body.get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let (Some(username), Some(password)) = (field("username"), field("password")) else {
            return Err(errors::PLUGIN_STRATEGY_MISSING_USER
                .with(&["Missing credentials"])
                .into());
        };
        let password = Secret::new(password);
        let refused = || {
            errors::PLUGIN_STRATEGY_MISSING_USER
                .with(&[WRONG_CREDENTIALS])
                .into()
        };
        let Some(credentials) = self.repository.credentials_by_username(username)? else {
            let decoy = self.decoy.get_or_init(|| {
                StoredPassword::hash(&Secret::new("decoy"), &self.params)
                    .expect("the parameters were checked at creation")
            });
            let _ = decoy.verify(&password);
            return Err(refused());
        };
        if !credentials.password.verify(&password).unwrap_or(false) {
            return Err(refused());
        }
        if credentials.password.needs_rehash(&self.params) {
            if let Ok(rehashed) = StoredPassword::hash(&password, &self.params) {
                self.repository.put_credentials(&LocalCredentials {
                    password: rehashed,
                    ..credentials.clone()
                })?;
            }
        }
        Ok(credentials.kuid)
    }

    /// Stores new credentials for `kuid` with an Argon2id hash (the caller checked the user
    /// exists and the username is free).
    pub fn store(&self, kuid: &str, username: &str, password: &Secret) -> Result<LocalCredentials> {
        let hashed = StoredPassword::hash(password, &self.params)
            .map_err(|error| errors::CORE_FATAL_UNEXPECTED_ERROR.with(&[&error.to_string()]))?;
        let credentials = LocalCredentials {
            username: username.to_owned(),
            kuid: kuid.to_owned(),
            password: hashed,
        };
        self.repository.put_credentials(&credentials)?;
        Ok(credentials)
    }
}

/// Loads `kuid` (`-1` and `anonymous` are the in-memory anonymous user) and compiles its
/// rights. A missing user is `security.user.not_found`; a user whose profiles are not all there
/// `security.user.cannot_hydrate`; a profile whose roles are not all there
/// `security.profile.cannot_hydrate` (Kuzzle raises it without its argument, so the message
/// keeps its `%s`).
pub fn load_user_rights(
    repository: &dyn SecurityRepository,
    kuid: &str,
) -> Result<(User, UserRights)> {
    let user = if kuid == crate::model::ANONYMOUS_KUID || kuid == "anonymous" {
        User::anonymous()
    } else {
        repository
            .user(kuid)?
            .ok_or_else(|| errors::SECURITY_USER_NOT_FOUND.with(&[kuid]))?
    };
    if user.profile_ids.is_empty() {
        return Err(errors::SECURITY_USER_NO_PROFILE.with(&[&user.id]).into());
    }
    let mut profiles = Vec::with_capacity(user.profile_ids.len());
    for profile_id in &user.profile_ids {
        let profile = repository
            .profile(profile_id)?
            .ok_or_else(|| errors::SECURITY_USER_CANNOT_HYDRATE.with(&[&user.id]))?;
        profiles.push(profile);
    }
    let mut roles = Vec::new();
    for profile in &profiles {
        for role_id in profile.role_ids() {
            if roles
                .iter()
                .any(|role: &crate::model::Role| role.id == role_id)
            {
                continue;
            }
            let role = repository
                .role(role_id)?
                .ok_or_else(|| errors::SECURITY_PROFILE_CANNOT_HYDRATE.error())?;
            roles.push(role);
        }
    }
    let profile_refs: Vec<&crate::model::Profile> = profiles.iter().collect();
    let rights = UserRights::compile(&user.id, &profile_refs, |id| {
        roles.iter().find(|r| r.id == id)
    });
    Ok((user, rights))
}
