//! Where users, profiles, roles, credentials, token records and API keys are kept: a trait the
//! host backs with its document store, and an in-memory implementation for tests and for a
//! server without persistence.

use std::collections::HashMap;

use parking_lot::RwLock;

use crate::error::RepositoryError;
use crate::model::{Profile, Role, User};
use crate::password::LocalCredentials;
use crate::token::{ApiKey, TokenRecord};

/// Storage for the security objects. Every method is one document operation; the caller does
/// validation and error mapping. Implementations must never put a secret in a
/// [`RepositoryError`].
pub trait SecurityRepository: Send + Sync {
    /// A user by kuid.
    fn user(&self, kuid: &str) -> Result<Option<User>, RepositoryError>;
    /// Writes a user; `create_only` fails with [`RepositoryError::AlreadyExists`] if it exists.
    fn put_user(&self, user: &User, create_only: bool) -> Result<(), RepositoryError>;
    /// Deletes a user; whether it existed.
    fn delete_user(&self, kuid: &str) -> Result<bool, RepositoryError>;
    /// The kuids of the users having `profile_id`.
    fn users_with_profile(&self, profile_id: &str) -> Result<Vec<String>, RepositoryError>;

    /// A profile by id.
    fn profile(&self, id: &str) -> Result<Option<Profile>, RepositoryError>;
    /// Writes a profile; `create_only` as for users.
    fn put_profile(&self, profile: &Profile, create_only: bool) -> Result<(), RepositoryError>;
    /// Deletes a profile; whether it existed.
    fn delete_profile(&self, id: &str) -> Result<bool, RepositoryError>;
    /// The ids of the profiles with a policy on `role_id`.
    fn profiles_with_role(&self, role_id: &str) -> Result<Vec<String>, RepositoryError>;

    /// A role by id.
    fn role(&self, id: &str) -> Result<Option<Role>, RepositoryError>;
    /// Writes a role; `create_only` as for users.
    fn put_role(&self, role: &Role, create_only: bool) -> Result<(), RepositoryError>;
    /// Deletes a role; whether it existed.
    fn delete_role(&self, id: &str) -> Result<bool, RepositoryError>;

    /// `local` credentials by username.
    fn credentials_by_username(
        &self,
        username: &str,
    ) -> Result<Option<LocalCredentials>, RepositoryError>;
    /// `local` credentials by kuid.
    fn credentials_by_kuid(&self, kuid: &str) -> Result<Option<LocalCredentials>, RepositoryError>;
    /// Writes credentials (replacing the kuid's previous ones, whatever their username).
    fn put_credentials(&self, credentials: &LocalCredentials) -> Result<(), RepositoryError>;
    /// Deletes a kuid's credentials; whether there were some.
    fn delete_credentials(&self, kuid: &str) -> Result<bool, RepositoryError>;

    /// A token record by fingerprint.
    fn token(&self, fingerprint: &str) -> Result<Option<TokenRecord>, RepositoryError>;
    /// Writes a token record.
    fn put_token(&self, record: &TokenRecord) -> Result<(), RepositoryError>;
    /// Deletes a token record; whether it existed.
    fn delete_token(&self, fingerprint: &str) -> Result<bool, RepositoryError>;
    /// Every token record of a user.
    fn tokens_of_user(&self, kuid: &str) -> Result<Vec<TokenRecord>, RepositoryError>;

    /// An API key by `(user, id)`.
    fn api_key(&self, kuid: &str, id: &str) -> Result<Option<ApiKey>, RepositoryError>;
    /// Writes an API key; `create_only` as for users.
    fn put_api_key(&self, key: &ApiKey, create_only: bool) -> Result<(), RepositoryError>;
    /// Deletes an API key; whether it existed.
    fn delete_api_key(&self, kuid: &str, id: &str) -> Result<bool, RepositoryError>;
    /// A user's API keys.
    fn api_keys_of_user(&self, kuid: &str) -> Result<Vec<ApiKey>, RepositoryError>;

    /// The generated token-signing seed, once stored.
    fn signing_seed(&self) -> Result<Option<crate::secret::Secret>, RepositoryError>;
    /// Stores the generated seed, unless one is stored already (another node starting on the
    /// same empty store may have stored its own first): then that one is kept. Read
    /// [`SecurityRepository::signing_seed`] after it to learn which.
    fn put_signing_seed(&self, seed: &crate::secret::Secret) -> Result<(), RepositoryError>;
}

/// Everything in memory, behind one lock per collection.
#[derive(Debug, Default)]
pub struct InMemoryRepository {
    users: RwLock<HashMap<String, User>>,
    profiles: RwLock<HashMap<String, Profile>>,
    roles: RwLock<HashMap<String, Role>>,
    /// Username → credentials.
    credentials: RwLock<HashMap<String, LocalCredentials>>,
    tokens: RwLock<HashMap<String, TokenRecord>>,
    /// `(kuid, id)` → key.
    api_keys: RwLock<HashMap<(String, String), ApiKey>>,
    seed: RwLock<Option<crate::secret::Secret>>,
}

impl InMemoryRepository {
    /// An empty repository.
    pub fn new() -> Self {
        Self::default()
    }
}

fn put<K: std::hash::Hash + Eq + Clone, V: Clone>(
    map: &RwLock<HashMap<K, V>>,
    key: K,
    value: &V,
    create_only: bool,
    collection: &'static str,
    id: &str,
) -> Result<(), RepositoryError> {
    let mut map = map.write();
    if create_only && map.contains_key(&key) {
        return Err(RepositoryError::AlreadyExists {
            collection,
            id: id.to_owned(),
        });
    }
    map.insert(key, value.clone());
    Ok(())
}

impl SecurityRepository for InMemoryRepository {
    fn user(&self, kuid: &str) -> Result<Option<User>, RepositoryError> {
        Ok(self.users.read().get(kuid).cloned())
    }
    fn put_user(&self, user: &User, create_only: bool) -> Result<(), RepositoryError> {
        put(
            &self.users,
            user.id.clone(),
            user,
            create_only,
            "users",
            &user.id,
        )
    }
    fn delete_user(&self, kuid: &str) -> Result<bool, RepositoryError> {
        Ok(self.users.write().remove(kuid).is_some())
    }
    fn users_with_profile(&self, profile_id: &str) -> Result<Vec<String>, RepositoryError> {
        let users = self.users.read();
        let mut kuids: Vec<String> = users
            .values()
            .filter(|user| user.profile_ids.iter().any(|p| p == profile_id))
            .map(|user| user.id.clone())
            .collect();
        kuids.sort();
        Ok(kuids)
    }

    fn profile(&self, id: &str) -> Result<Option<Profile>, RepositoryError> {
        Ok(self.profiles.read().get(id).cloned())
    }
    fn put_profile(&self, profile: &Profile, create_only: bool) -> Result<(), RepositoryError> {
        put(
            &self.profiles,
            profile.id.clone(),
            profile,
            create_only,
            "profiles",
            &profile.id,
        )
    }
    fn delete_profile(&self, id: &str) -> Result<bool, RepositoryError> {
        Ok(self.profiles.write().remove(id).is_some())
    }
    fn profiles_with_role(&self, role_id: &str) -> Result<Vec<String>, RepositoryError> {
        let profiles = self.profiles.read();
        let mut ids: Vec<String> = profiles
            .values()
            .filter(|profile| profile.role_ids().any(|r| r == role_id))
            .map(|profile| profile.id.clone())
            .collect();
        ids.sort();
        Ok(ids)
    }

    fn role(&self, id: &str) -> Result<Option<Role>, RepositoryError> {
        Ok(self.roles.read().get(id).cloned())
    }
    fn put_role(&self, role: &Role, create_only: bool) -> Result<(), RepositoryError> {
        put(
            &self.roles,
            role.id.clone(),
            role,
            create_only,
            "roles",
            &role.id,
        )
    }
    fn delete_role(&self, id: &str) -> Result<bool, RepositoryError> {
        Ok(self.roles.write().remove(id).is_some())
    }

    fn credentials_by_username(
        &self,
        username: &str,
    ) -> Result<Option<LocalCredentials>, RepositoryError> {
        Ok(self.credentials.read().get(username).cloned())
    }
    fn credentials_by_kuid(&self, kuid: &str) -> Result<Option<LocalCredentials>, RepositoryError> {
        Ok(self
            .credentials
            .read()
            .values()
            .find(|c| c.kuid == kuid)
            .cloned())
    }
    fn put_credentials(&self, credentials: &LocalCredentials) -> Result<(), RepositoryError> {
        let mut map = self.credentials.write();
        map.retain(|_, existing| existing.kuid != credentials.kuid);
        map.insert(credentials.username.clone(), credentials.clone());
        Ok(())
    }
    fn delete_credentials(&self, kuid: &str) -> Result<bool, RepositoryError> {
        let mut map = self.credentials.write();
        let before = map.len();
        map.retain(|_, existing| existing.kuid != kuid);
        Ok(map.len() != before)
    }

    fn token(&self, fingerprint: &str) -> Result<Option<TokenRecord>, RepositoryError> {
        Ok(self.tokens.read().get(fingerprint).cloned())
    }
    fn put_token(&self, record: &TokenRecord) -> Result<(), RepositoryError> {
        self.tokens
            .write()
            .insert(record.fingerprint.clone(), record.clone());
        Ok(())
    }
    fn delete_token(&self, fingerprint: &str) -> Result<bool, RepositoryError> {
        Ok(self.tokens.write().remove(fingerprint).is_some())
    }
    fn tokens_of_user(&self, kuid: &str) -> Result<Vec<TokenRecord>, RepositoryError> {
        Ok(self
            .tokens
            .read()
            .values()
            .filter(|t| t.user_id == kuid)
            .cloned()
            .collect())
    }

    fn api_key(&self, kuid: &str, id: &str) -> Result<Option<ApiKey>, RepositoryError> {
        Ok(self
            .api_keys
            .read()
            .get(&(kuid.to_owned(), id.to_owned()))
            .cloned())
    }
    fn put_api_key(&self, key: &ApiKey, create_only: bool) -> Result<(), RepositoryError> {
        let map_key = (key.user_id.clone(), key.id.clone());
        put(
            &self.api_keys,
            map_key,
            key,
            create_only,
            "api-keys",
            &key.id,
        )
    }
    fn delete_api_key(&self, kuid: &str, id: &str) -> Result<bool, RepositoryError> {
        Ok(self
            .api_keys
            .write()
            .remove(&(kuid.to_owned(), id.to_owned()))
            .is_some())
    }
    fn api_keys_of_user(&self, kuid: &str) -> Result<Vec<ApiKey>, RepositoryError> {
        let mut keys: Vec<ApiKey> = self
            .api_keys
            .read()
            .values()
            .filter(|k| k.user_id == kuid)
            .cloned()
            .collect();
        keys.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(keys)
    }

    fn signing_seed(&self) -> Result<Option<crate::secret::Secret>, RepositoryError> {
        Ok(self.seed.read().clone())
    }
    fn put_signing_seed(&self, seed: &crate::secret::Secret) -> Result<(), RepositoryError> {
        self.seed.write().get_or_insert_with(|| seed.clone());
        Ok(())
    }
}
