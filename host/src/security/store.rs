//! The security objects in the document store: a [`SecurityRepository`] over the internal index
//! `%kuzzle`, with everything also kept in memory so reads (the per-request gate) never touch
//! the disk.
//!
//! At open, every collection is read into an [`InMemoryRepository`]; afterwards a write goes to
//! the store first (durably, on the caller's thread: only the blocking pool writes) and then to
//! memory, under one lock so memory and disk apply writes in the same order. Expired token
//! records are dropped at open.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use switchyard_security::error::RepositoryError;
use switchyard_security::password::{LocalCredentials, StoredPassword};
use switchyard_security::repository::{InMemoryRepository, SecurityRepository};
use switchyard_security::secret::Secret;
use switchyard_security::token::{ApiKey, TokenKind, TokenRecord};
use switchyard_security::{Profile, Role, User};
use switchyard_storage::{
    KuzzleInfo, Operation, Outcome, Precondition, SearchRequest, Storage, StorageError, WriteBatch,
};

/// Kuzzle's internal index.
pub const INTERNAL_INDEX: &str = "%kuzzle";
const USERS: &str = "users";
const PROFILES: &str = "profiles";
const ROLES: &str = "roles";
/// The `local` strategy's credentials, by username.
const CREDENTIALS: &str = "credentials-local";
/// Token records, by fingerprint (Kuzzle keeps them in Redis; here they survive a restart).
const TOKENS: &str = "tokens";
/// API keys, by `<kuid>#<id>`.
const API_KEYS: &str = "api-keys";
/// `security.jwt.secret`: the generated signing seed.
const CONFIG: &str = "config";
const SEED_ID: &str = "security.jwt.secret";
const COLLECTIONS: [&str; 7] = [
    USERS,
    PROFILES,
    ROLES,
    CREDENTIALS,
    TOKENS,
    API_KEYS,
    CONFIG,
];

/// The repository: the store, and all of it in memory.
pub struct StoredRepository {
    memory: InMemoryRepository,
    storage: Arc<dyn Storage>,
    /// Serialises writes, so memory applies them in the store's order.
    writes: Mutex<()>,
    /// Bumped by every token record write or deletion (the gate's verified-token cache checks
    /// it).
    token_generation: AtomicU64,
    /// Told `(collection, id)` after each durable write (cluster mode: the other nodes then
    /// [`refresh`](StoredRepository::refresh) that object from the shared store).
    on_change: OnceLock<ChangeObserver>,
}

/// What [`StoredRepository::on_change`] calls after a write: `(collection, id)`.
pub type ChangeObserver = Box<dyn Fn(&str, &str) + Send + Sync>;

/// What [`StoredRepository::refresh`] changed in memory.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Refreshed {
    /// A user, profile or role changed: compiled rights are stale.
    pub rights_changed: bool,
    /// A token record that is gone from the store (logged out or revoked elsewhere).
    pub token_gone: Option<String>,
}

impl std::fmt::Debug for StoredRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredRepository").finish_non_exhaustive()
    }
}

fn storage_error(error: StorageError) -> RepositoryError {
    RepositoryError::Storage(error.to_string())
}

/// A stored document that cannot be read back (never its content: it may hold a secret).
fn corrupt(collection: &str, id: &str) -> RepositoryError {
    RepositoryError::Storage(format!(
        "unreadable document {id:?} in {INTERNAL_INDEX}/{collection}"
    ))
}

impl StoredRepository {
    /// Opens the repository: creates the internal index and its collections if needed, then
    /// reads them. `now_ms` drops the token records that expired while the server was down.
    pub fn open(
        storage: Arc<dyn Storage>,
        now_ms: i64,
    ) -> Result<StoredRepository, RepositoryError> {
        match storage.create_internal_index(INTERNAL_INDEX) {
            Ok(()) | Err(StorageError::IndexAlreadyExists { .. }) => {}
            Err(error) => return Err(storage_error(error)),
        }
        for collection in COLLECTIONS {
            match storage.create_collection(INTERNAL_INDEX, collection, &json!({})) {
                Ok(()) | Err(StorageError::CollectionAlreadyExists { .. }) => {}
                Err(error) => return Err(storage_error(error)),
            }
        }
        let repository = StoredRepository {
            memory: InMemoryRepository::new(),
            storage,
            writes: Mutex::new(()),
            token_generation: AtomicU64::new(0),
            on_change: OnceLock::new(),
        };
        repository.load(now_ms)?;
        Ok(repository)
    }

    fn load(&self, now_ms: i64) -> Result<(), RepositoryError> {
        for (id, source) in self.read_all(ROLES)? {
            let role = Role::from_json(&id, &source).map_err(|_| corrupt(ROLES, &id))?;
            self.memory.put_role(&role, false)?;
        }
        for (id, source) in self.read_all(PROFILES)? {
            let profile = Profile::from_json(&id, &source).map_err(|_| corrupt(PROFILES, &id))?;
            self.memory.put_profile(&profile, false)?;
        }
        for (id, source) in self.read_all(USERS)? {
            let user = user_from_source(&id, source).ok_or_else(|| corrupt(USERS, &id))?;
            self.memory.put_user(&user, false)?;
        }
        for (id, source) in self.read_all(CREDENTIALS)? {
            let credentials =
                credentials_from_source(&id, &source).ok_or_else(|| corrupt(CREDENTIALS, &id))?;
            self.memory.put_credentials(&credentials)?;
        }
        let mut expired = Vec::new();
        for (id, source) in self.read_all(TOKENS)? {
            let record = token_from_source(&id, &source).ok_or_else(|| corrupt(TOKENS, &id))?;
            if record.valid_until >= 0 && record.valid_until <= now_ms {
                expired.push(id);
            } else {
                self.memory.put_token(&record)?;
            }
        }
        if !expired.is_empty() {
            self.write(
                TOKENS,
                expired
                    .into_iter()
                    .map(|id| Operation::Delete {
                        id,
                        precondition: Precondition::Any,
                    })
                    .collect(),
            )?;
        }
        for (id, source) in self.read_all(API_KEYS)? {
            let key = api_key_from_source(&source).ok_or_else(|| corrupt(API_KEYS, &id))?;
            self.memory.put_api_key(&key, false)?;
        }
        if let Some(seed) = self.stored_seed()? {
            self.memory.put_signing_seed(&seed)?;
        }
        Ok(())
    }

    /// The signing seed as stored, if any.
    fn stored_seed(&self) -> Result<Option<Secret>, RepositoryError> {
        let Some(seed) = self
            .storage
            .get(INTERNAL_INDEX, CONFIG, SEED_ID)
            .map_err(storage_error)?
        else {
            return Ok(None);
        };
        let seed = seed
            .source
            .get("seed")
            .and_then(Value::as_str)
            .ok_or_else(|| corrupt(CONFIG, SEED_ID))?;
        Ok(Some(Secret::new(seed)))
    }

    /// Every document of an internal collection, `(id, source)`.
    fn read_all(&self, collection: &str) -> Result<Vec<(String, Value)>, RepositoryError> {
        let mut out = Vec::new();
        let mut request = SearchRequest::match_all();
        request.size = 1000;
        loop {
            let page = self
                .storage
                .search(INTERNAL_INDEX, collection, &request)
                .map_err(storage_error)?;
            let done = page.hits.len() < request.size;
            out.extend(page.hits.into_iter().map(|doc| {
                let source = if collection == USERS {
                    doc.source_with_info()
                } else {
                    doc.source
                };
                (doc.id, source)
            }));
            match page.next_search_after {
                Some(after) if !done => request.search_after = Some(after),
                _ => return Ok(out),
            }
        }
    }

    /// Applies `operations` to `collection` durably; the first failed one is the error.
    fn write(&self, collection: &str, operations: Vec<Operation>) -> Result<(), RepositoryError> {
        let changed: Vec<String> = match self.on_change.get() {
            Some(_) => operations
                .iter()
                .map(|operation| match operation {
                    Operation::Put { id, .. } | Operation::Delete { id, .. } => id.clone(),
                })
                .collect(),
            None => Vec::new(),
        };
        let written = self.write_durably(collection, operations);
        if let (Ok(()), Some(observer)) = (&written, self.on_change.get()) {
            for id in &changed {
                observer(collection, id);
            }
        }
        written
    }

    fn write_durably(
        &self,
        collection: &str,
        operations: Vec<Operation>,
    ) -> Result<(), RepositoryError> {
        let outcomes = self
            .storage
            .write(WriteBatch {
                index: INTERNAL_INDEX.into(),
                collection: collection.into(),
                operations,
            })
            .map_err(storage_error)?;
        for outcome in outcomes {
            match outcome {
                Outcome::Failed {
                    id,
                    error: StorageError::DocumentAlreadyExists { .. },
                } => {
                    return Err(RepositoryError::AlreadyExists {
                        collection: collection_name(collection),
                        id,
                    })
                }
                Outcome::Failed {
                    error: StorageError::DocumentNotFound { .. },
                    ..
                } => {}
                Outcome::Failed { error, .. } => return Err(storage_error(error)),
                Outcome::Written { .. } | Outcome::Deleted { .. } => {}
            }
        }
        Ok(())
    }

    fn put(
        &self,
        collection: &str,
        id: &str,
        source: Value,
        info: KuzzleInfo,
        create_only: bool,
    ) -> Result<(), RepositoryError> {
        self.write(
            collection,
            vec![Operation::Put {
                id: id.to_owned(),
                source,
                info,
                meta: Vec::new(),
                precondition: if create_only {
                    Precondition::Absent
                } else {
                    Precondition::Any
                },
            }],
        )
    }

    fn delete(&self, collection: &str, id: &str) -> Result<(), RepositoryError> {
        self.write(
            collection,
            vec![Operation::Delete {
                id: id.to_owned(),
                precondition: Precondition::Any,
            }],
        )
    }
}

impl StoredRepository {
    /// Changes with every token record write or deletion.
    pub fn token_generation(&self) -> u64 {
        self.token_generation.load(Ordering::Acquire)
    }

    /// From now on, `observer` hears `(collection, id)` after every durable write (set once:
    /// cluster mode sets it at start-up).
    pub fn on_change(&self, observer: ChangeObserver) {
        let _ = self.on_change.set(observer);
    }

    /// Writes each of `roles` and `profiles` unless the store already has one with its id, and
    /// keeps in memory what the store holds. Two nodes starting together on one empty store
    /// (PostgreSQL) both see no roles: the second's writes must not overwrite what the first
    /// wrote, nor what a `security:createFirstAdmin` with `reset` made of it in between.
    pub fn create_absent(
        &self,
        roles: &[Role],
        profiles: &[Profile],
    ) -> Result<(), RepositoryError> {
        for role in roles {
            match self.put_role(role, true) {
                Err(RepositoryError::AlreadyExists { .. }) => {
                    self.refresh(ROLES, &role.id)?;
                }
                other => other?,
            }
        }
        for profile in profiles {
            match self.put_profile(profile, true) {
                Err(RepositoryError::AlreadyExists { .. }) => {
                    self.refresh(PROFILES, &profile.id)?;
                }
                other => other?,
            }
        }
        Ok(())
    }

    /// Reads one object again from the store into memory: another node sharing the store
    /// changed it (cluster mode). An object gone from the store leaves memory too.
    pub fn refresh(&self, collection: &str, id: &str) -> Result<Refreshed, RepositoryError> {
        let _writes = self.writes.lock();
        let stored = self
            .storage
            .get(INTERNAL_INDEX, collection, id)
            .map_err(storage_error)?;
        let mut refreshed = Refreshed::default();
        match (collection, stored) {
            (USERS, Some(doc)) => {
                let user = user_from_source(id, doc.source_with_info())
                    .ok_or_else(|| corrupt(USERS, id))?;
                self.memory.put_user(&user, false)?;
                refreshed.rights_changed = true;
            }
            (USERS, None) => {
                self.memory.delete_user(id)?;
                refreshed.rights_changed = true;
            }
            (PROFILES, Some(doc)) => {
                let profile =
                    Profile::from_json(id, &doc.source).map_err(|_| corrupt(PROFILES, id))?;
                self.memory.put_profile(&profile, false)?;
                refreshed.rights_changed = true;
            }
            (PROFILES, None) => {
                self.memory.delete_profile(id)?;
                refreshed.rights_changed = true;
            }
            (ROLES, Some(doc)) => {
                let role = Role::from_json(id, &doc.source).map_err(|_| corrupt(ROLES, id))?;
                self.memory.put_role(&role, false)?;
                refreshed.rights_changed = true;
            }
            (ROLES, None) => {
                self.memory.delete_role(id)?;
                refreshed.rights_changed = true;
            }
            (CREDENTIALS, Some(doc)) => {
                let credentials = credentials_from_source(id, &doc.source)
                    .ok_or_else(|| corrupt(CREDENTIALS, id))?;
                self.memory.put_credentials(&credentials)?;
            }
            (CREDENTIALS, None) => {
                if let Some(credentials) = self.memory.credentials_by_username(id)? {
                    self.memory.delete_credentials(&credentials.kuid)?;
                }
            }
            (TOKENS, Some(doc)) => {
                let record =
                    token_from_source(id, &doc.source).ok_or_else(|| corrupt(TOKENS, id))?;
                self.memory.put_token(&record)?;
                self.token_generation.fetch_add(1, Ordering::AcqRel);
            }
            (TOKENS, None) => {
                if self.memory.delete_token(id)? {
                    refreshed.token_gone = Some(id.to_string());
                }
                self.token_generation.fetch_add(1, Ordering::AcqRel);
            }
            (API_KEYS, Some(doc)) => {
                let key = api_key_from_source(&doc.source).ok_or_else(|| corrupt(API_KEYS, id))?;
                self.memory.put_api_key(&key, false)?;
            }
            (API_KEYS, None) => {
                if let Some((kuid, key_id)) = id.split_once('#') {
                    self.memory.delete_api_key(kuid, key_id)?;
                }
            }
            // The signing seed never changes once stored; unknown collections: nothing kept.
            _ => {}
        }
        Ok(refreshed)
    }
}

fn collection_name(collection: &str) -> &'static str {
    COLLECTIONS
        .iter()
        .find(|name| **name == collection)
        .copied()
        .unwrap_or("security")
}

/// A user's `_source` minus `_kuzzle_info`, which the store keeps apart.
fn user_document(user: &User) -> (Value, KuzzleInfo) {
    let mut source = Map::new();
    source.insert(
        "profileIds".into(),
        user.profile_ids
            .iter()
            .cloned()
            .map(Value::String)
            .collect(),
    );
    let mut info = KuzzleInfo::default();
    for (key, value) in &user.content {
        if key == "_kuzzle_info" {
            info = KuzzleInfo {
                author: value
                    .get("author")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                created_at: value.get("createdAt").and_then(Value::as_u64),
                updated_at: value.get("updatedAt").and_then(Value::as_u64),
                updater: value
                    .get("updater")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            };
        } else {
            source.insert(key.clone(), value.clone());
        }
    }
    (Value::Object(source), info)
}

fn user_from_source(id: &str, source: Value) -> Option<User> {
    let Value::Object(mut content) = source else {
        return None;
    };
    let profile_ids = content
        .remove("profileIds")?
        .as_array()?
        .iter()
        .map(|p| p.as_str().map(str::to_owned))
        .collect::<Option<Vec<String>>>()?;
    Some(User {
        id: id.to_owned(),
        profile_ids,
        content,
    })
}

fn credentials_source(credentials: &LocalCredentials) -> Value {
    match &credentials.password {
        StoredPassword::Argon2id(phc) => json!({
            "kuid": credentials.kuid,
            "userPassword": phc.expose(),
            "algorithm": "argon2id",
        }),
        StoredPassword::Kuzzle {
            hash,
            salt,
            algorithm,
            stretching,
            encryption,
            digest,
        } => json!({
            "kuid": credentials.kuid,
            "userPassword": hash.expose(),
            "userSalt": salt.expose(),
            "algorithm": algorithm,
            "stretching": stretching,
            "encryption": encryption,
            "digest": digest,
        }),
    }
}

fn credentials_from_source(username: &str, source: &Value) -> Option<LocalCredentials> {
    let map = source.as_object()?;
    let digest = map.get("digest").and_then(Value::as_str).unwrap_or("hex");
    LocalCredentials::from_kuzzle_document(username, map, digest).ok()
}

fn token_source(record: &TokenRecord) -> Value {
    json!({
        "userId": record.user_id,
        "kind": match record.kind { TokenKind::AuthToken => "auth", TokenKind::ApiKey => "apiKey" },
        "expiresAt": record.expires_at,
        "ttl": record.ttl,
        "refreshed": record.refreshed,
        "singleUse": record.single_use,
        "validUntil": record.valid_until,
    })
}

fn token_from_source(fingerprint: &str, source: &Value) -> Option<TokenRecord> {
    Some(TokenRecord {
        fingerprint: fingerprint.to_owned(),
        user_id: source.get("userId")?.as_str()?.to_owned(),
        kind: match source.get("kind")?.as_str()? {
            "auth" => TokenKind::AuthToken,
            "apiKey" => TokenKind::ApiKey,
            _ => return None,
        },
        expires_at: source.get("expiresAt")?.as_i64()?,
        ttl: source.get("ttl")?.as_i64()?,
        refreshed: source.get("refreshed")?.as_bool()?,
        single_use: source.get("singleUse")?.as_bool()?,
        valid_until: source.get("validUntil")?.as_i64()?,
    })
}

fn api_key_id(kuid: &str, id: &str) -> String {
    format!("{kuid}#{id}")
}

fn api_key_source(key: &ApiKey) -> Value {
    json!({
        "id": key.id,
        "userId": key.user_id,
        "description": key.description,
        "expiresAt": key.expires_at,
        "ttl": key.ttl,
        "fingerprint": key.fingerprint,
    })
}

fn api_key_from_source(source: &Value) -> Option<ApiKey> {
    let text = |key: &str| source.get(key)?.as_str().map(str::to_owned);
    Some(ApiKey {
        id: text("id")?,
        user_id: text("userId")?,
        description: text("description")?,
        expires_at: source.get("expiresAt")?.as_i64()?,
        ttl: source.get("ttl")?.as_i64()?,
        fingerprint: text("fingerprint")?,
    })
}

impl SecurityRepository for StoredRepository {
    fn user(&self, kuid: &str) -> Result<Option<User>, RepositoryError> {
        self.memory.user(kuid)
    }
    fn put_user(&self, user: &User, create_only: bool) -> Result<(), RepositoryError> {
        let _writes = self.writes.lock();
        let (source, info) = user_document(user);
        self.put(USERS, &user.id, source, info, create_only)?;
        self.memory.put_user(user, false)
    }
    fn delete_user(&self, kuid: &str) -> Result<bool, RepositoryError> {
        let _writes = self.writes.lock();
        if self.memory.user(kuid)?.is_none() {
            return Ok(false);
        }
        self.delete(USERS, kuid)?;
        self.memory.delete_user(kuid)
    }
    fn users_with_profile(&self, profile_id: &str) -> Result<Vec<String>, RepositoryError> {
        self.memory.users_with_profile(profile_id)
    }

    fn profile(&self, id: &str) -> Result<Option<Profile>, RepositoryError> {
        self.memory.profile(id)
    }
    fn put_profile(&self, profile: &Profile, create_only: bool) -> Result<(), RepositoryError> {
        let _writes = self.writes.lock();
        let source = profile.to_source();
        self.put(
            PROFILES,
            &profile.id,
            source,
            KuzzleInfo::default(),
            create_only,
        )?;
        self.memory.put_profile(profile, false)
    }
    fn delete_profile(&self, id: &str) -> Result<bool, RepositoryError> {
        let _writes = self.writes.lock();
        if self.memory.profile(id)?.is_none() {
            return Ok(false);
        }
        self.delete(PROFILES, id)?;
        self.memory.delete_profile(id)
    }
    fn profiles_with_role(&self, role_id: &str) -> Result<Vec<String>, RepositoryError> {
        self.memory.profiles_with_role(role_id)
    }

    fn role(&self, id: &str) -> Result<Option<Role>, RepositoryError> {
        self.memory.role(id)
    }
    fn put_role(&self, role: &Role, create_only: bool) -> Result<(), RepositoryError> {
        let _writes = self.writes.lock();
        self.put(
            ROLES,
            &role.id,
            role.to_source(),
            KuzzleInfo::default(),
            create_only,
        )?;
        self.memory.put_role(role, false)
    }
    fn delete_role(&self, id: &str) -> Result<bool, RepositoryError> {
        let _writes = self.writes.lock();
        if self.memory.role(id)?.is_none() {
            return Ok(false);
        }
        self.delete(ROLES, id)?;
        self.memory.delete_role(id)
    }

    fn credentials_by_username(
        &self,
        username: &str,
    ) -> Result<Option<LocalCredentials>, RepositoryError> {
        self.memory.credentials_by_username(username)
    }
    fn credentials_by_kuid(&self, kuid: &str) -> Result<Option<LocalCredentials>, RepositoryError> {
        self.memory.credentials_by_kuid(kuid)
    }
    fn put_credentials(&self, credentials: &LocalCredentials) -> Result<(), RepositoryError> {
        let _writes = self.writes.lock();
        let mut operations = Vec::new();
        if let Some(previous) = self.memory.credentials_by_kuid(&credentials.kuid)? {
            if previous.username != credentials.username {
                operations.push(Operation::Delete {
                    id: previous.username,
                    precondition: Precondition::Any,
                });
            }
        }
        operations.push(Operation::Put {
            id: credentials.username.clone(),
            source: credentials_source(credentials),
            info: KuzzleInfo::default(),
            meta: Vec::new(),
            precondition: Precondition::Any,
        });
        self.write(CREDENTIALS, operations)?;
        self.memory.put_credentials(credentials)
    }
    fn delete_credentials(&self, kuid: &str) -> Result<bool, RepositoryError> {
        let _writes = self.writes.lock();
        let Some(previous) = self.memory.credentials_by_kuid(kuid)? else {
            return Ok(false);
        };
        self.delete(CREDENTIALS, &previous.username)?;
        self.memory.delete_credentials(kuid)
    }

    fn token(&self, fingerprint: &str) -> Result<Option<TokenRecord>, RepositoryError> {
        self.memory.token(fingerprint)
    }
    fn put_token(&self, record: &TokenRecord) -> Result<(), RepositoryError> {
        let _writes = self.writes.lock();
        self.put(
            TOKENS,
            &record.fingerprint,
            token_source(record),
            KuzzleInfo::default(),
            false,
        )?;
        let stored = self.memory.put_token(record);
        self.token_generation.fetch_add(1, Ordering::AcqRel);
        stored
    }
    fn delete_token(&self, fingerprint: &str) -> Result<bool, RepositoryError> {
        let _writes = self.writes.lock();
        if self.memory.token(fingerprint)?.is_none() {
            return Ok(false);
        }
        self.delete(TOKENS, fingerprint)?;
        let deleted = self.memory.delete_token(fingerprint);
        self.token_generation.fetch_add(1, Ordering::AcqRel);
        deleted
    }
    fn tokens_of_user(&self, kuid: &str) -> Result<Vec<TokenRecord>, RepositoryError> {
        self.memory.tokens_of_user(kuid)
    }

    fn api_key(&self, kuid: &str, id: &str) -> Result<Option<ApiKey>, RepositoryError> {
        self.memory.api_key(kuid, id)
    }
    fn put_api_key(&self, key: &ApiKey, create_only: bool) -> Result<(), RepositoryError> {
        let _writes = self.writes.lock();
        self.put(
            API_KEYS,
            &api_key_id(&key.user_id, &key.id),
            api_key_source(key),
            KuzzleInfo::default(),
            create_only,
        )?;
        self.memory.put_api_key(key, false)
    }
    fn delete_api_key(&self, kuid: &str, id: &str) -> Result<bool, RepositoryError> {
        let _writes = self.writes.lock();
        if self.memory.api_key(kuid, id)?.is_none() {
            return Ok(false);
        }
        self.delete(API_KEYS, &api_key_id(kuid, id))?;
        self.memory.delete_api_key(kuid, id)
    }
    fn api_keys_of_user(&self, kuid: &str) -> Result<Vec<ApiKey>, RepositoryError> {
        self.memory.api_keys_of_user(kuid)
    }

    fn signing_seed(&self) -> Result<Option<Secret>, RepositoryError> {
        self.memory.signing_seed()
    }
    /// Insert if absent: a node that finds another's seed stored (both started on one empty
    /// store) keeps that one, so every node signs with the same.
    fn put_signing_seed(&self, seed: &Secret) -> Result<(), RepositoryError> {
        let _writes = self.writes.lock();
        let stored = match self.put(
            CONFIG,
            SEED_ID,
            json!({ "seed": seed.expose() }),
            KuzzleInfo::default(),
            true,
        ) {
            Ok(()) => seed.clone(),
            Err(RepositoryError::AlreadyExists { .. }) => self
                .stored_seed()?
                .ok_or_else(|| corrupt(CONFIG, SEED_ID))?,
            Err(error) => return Err(error),
        };
        self.memory.put_signing_seed(&stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_security::defaults;
    use switchyard_security::password::Argon2Params;
    use switchyard_storage::{EmbeddedOptions, EmbeddedStorage};

    fn open(dir: &std::path::Path) -> StoredRepository {
        let storage = EmbeddedStorage::open(dir, EmbeddedOptions::default()).unwrap();
        StoredRepository::open(Arc::new(storage), 1_000).unwrap()
    }

    #[test]
    fn everything_survives_a_reopen_and_expired_tokens_do_not() {
        let dir = tempfile::tempdir().unwrap();
        {
            let repository = open(dir.path());
            for role in defaults::bootstrap_roles() {
                repository.put_role(&role, true).unwrap();
            }
            for profile in defaults::standard_profiles() {
                repository.put_profile(&profile, false).unwrap();
            }
            let mut user =
                User::from_content("u1", &json!({"profileIds": ["admin"], "name": "x"})).unwrap();
            user.content.insert(
                "_kuzzle_info".into(),
                json!({"author": "-1", "createdAt": 5}),
            );
            repository.put_user(&user, true).unwrap();
            assert_eq!(
                repository.put_user(&user, true),
                Err(RepositoryError::AlreadyExists {
                    collection: "users",
                    id: "u1".into()
                })
            );
            let params = Argon2Params {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            };
            let password = StoredPassword::hash(&Secret::new("pw"), &params).unwrap();
            let credentials = LocalCredentials {
                username: "alice".into(),
                kuid: "u1".into(),
                password,
            };
            repository.put_credentials(&credentials).unwrap();
            // A new username replaces the old one.
            repository
                .put_credentials(&LocalCredentials {
                    username: "alice2".into(),
                    ..credentials
                })
                .unwrap();
            let live = TokenRecord {
                fingerprint: "f1".into(),
                user_id: "u1".into(),
                kind: TokenKind::AuthToken,
                expires_at: 5_000,
                ttl: 4_000,
                refreshed: false,
                single_use: false,
                valid_until: 5_000,
            };
            repository.put_token(&live).unwrap();
            repository
                .put_token(&TokenRecord {
                    fingerprint: "f2".into(),
                    valid_until: 900,
                    ..live
                })
                .unwrap();
            repository.put_signing_seed(&Secret::new("seed")).unwrap();
        }
        let repository = open(dir.path());
        assert_eq!(repository.role("admin").unwrap().unwrap().id, "admin");
        assert_eq!(
            repository.profile("default").unwrap().unwrap().rate_limit,
            10
        );
        let user = repository.user("u1").unwrap().unwrap();
        assert_eq!(user.profile_ids, ["admin"]);
        assert_eq!(user.content["name"], "x");
        assert_eq!(user.content["_kuzzle_info"]["createdAt"], 5);
        assert!(repository
            .credentials_by_username("alice")
            .unwrap()
            .is_none());
        let credentials = repository
            .credentials_by_username("alice2")
            .unwrap()
            .unwrap();
        assert!(credentials.password.verify(&Secret::new("pw")).unwrap());
        assert!(repository.token("f1").unwrap().is_some());
        assert!(repository.token("f2").unwrap().is_none(), "expired at open");
        assert_eq!(repository.signing_seed().unwrap().unwrap().expose(), "seed");
    }

    /// Two nodes sharing one store (what PostgreSQL gives a cluster): what one writes, the other
    /// hears of through `on_change` and reads again with `refresh`.
    #[test]
    fn a_node_sharing_the_store_reads_again_what_another_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> =
            Arc::new(EmbeddedStorage::open(dir.path(), EmbeddedOptions::default()).unwrap());
        let writer = StoredRepository::open(Arc::clone(&storage), 1_000).unwrap();
        let reader = StoredRepository::open(storage, 1_000).unwrap();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&heard);
        writer.on_change(Box::new(move |collection: &str, id: &str| {
            log.lock().push(format!("{collection}/{id}"));
        }));
        let user = User::from_content("u1", &json!({"profileIds": ["default"]})).unwrap();
        writer.put_user(&user, true).unwrap();
        let token = TokenRecord {
            fingerprint: "f1".into(),
            user_id: "u1".into(),
            kind: TokenKind::AuthToken,
            expires_at: 5_000,
            ttl: 4_000,
            refreshed: false,
            single_use: false,
            valid_until: -1,
        };
        writer.put_token(&token).unwrap();
        assert_eq!(*heard.lock(), ["users/u1", "tokens/f1"]);
        // Not in the other node's memory until it reads them again.
        assert_eq!(reader.user("u1").unwrap(), None);
        assert_eq!(reader.token("f1").unwrap(), None);
        let generation = reader.token_generation();
        assert_eq!(
            reader.refresh(USERS, "u1").unwrap(),
            Refreshed {
                rights_changed: true,
                token_gone: None
            }
        );
        assert_eq!(reader.refresh(TOKENS, "f1").unwrap(), Refreshed::default());
        assert_eq!(reader.user("u1").unwrap().unwrap().id, "u1");
        assert_eq!(reader.token("f1").unwrap().unwrap().user_id, "u1");
        assert!(reader.token_generation() > generation);
        // A logout elsewhere: the record is gone, and the reader says so once.
        writer.delete_token("f1").unwrap();
        assert_eq!(heard.lock().last().unwrap(), "tokens/f1");
        assert_eq!(
            reader.refresh(TOKENS, "f1").unwrap().token_gone.as_deref(),
            Some("f1")
        );
        assert_eq!(reader.token("f1").unwrap(), None);
        assert_eq!(reader.refresh(TOKENS, "f1").unwrap(), Refreshed::default());
        writer.delete_user("u1").unwrap();
        assert!(reader.refresh(USERS, "u1").unwrap().rights_changed);
        assert_eq!(reader.user("u1").unwrap(), None);
    }

    /// Two nodes opening one empty store together, both before either wrote the bootstrap
    /// roles: the first writes them and restricts one (a `createFirstAdmin` with `reset`), then
    /// the second's bootstrap keeps the restricted one, in the store and in its memory.
    #[test]
    fn a_late_bootstrap_never_overwrites_what_another_node_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> =
            Arc::new(EmbeddedStorage::open(dir.path(), EmbeddedOptions::default()).unwrap());
        let first = StoredRepository::open(Arc::clone(&storage), 1_000).unwrap();
        let second = StoredRepository::open(Arc::clone(&storage), 1_000).unwrap();
        assert_eq!(second.role("anonymous").unwrap(), None);
        first
            .create_absent(
                &defaults::bootstrap_roles(),
                &defaults::bootstrap_profiles(),
            )
            .unwrap();
        let restricted = defaults::standard_roles()
            .into_iter()
            .find(|role| role.id == "anonymous")
            .unwrap();
        assert_ne!(Some(&restricted), first.role("anonymous").unwrap().as_ref());
        first.put_role(&restricted, false).unwrap();
        second
            .create_absent(
                &defaults::bootstrap_roles(),
                &defaults::bootstrap_profiles(),
            )
            .unwrap();
        assert_eq!(second.role("anonymous").unwrap(), Some(restricted.clone()));
        assert_eq!(
            second.profile("admin").unwrap(),
            first.profile("admin").unwrap()
        );
        assert_eq!(
            StoredRepository::open(storage, 1_000)
                .unwrap()
                .role("anonymous")
                .unwrap(),
            Some(restricted)
        );
    }

    /// Another node sharing the store had written the bootstrap roles, not yet its profiles,
    /// when this one loaded: this one writes the profiles, and the anonymous user hydrates.
    #[test]
    fn a_node_that_loaded_a_half_written_bootstrap_completes_it() {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> =
            Arc::new(EmbeddedStorage::open(dir.path(), EmbeddedOptions::default()).unwrap());
        let other = StoredRepository::open(Arc::clone(&storage), 1_000).unwrap();
        for role in defaults::bootstrap_roles() {
            other.put_role(&role, true).unwrap();
        }
        let security = super::super::service::Security::with_defaults(storage).unwrap();
        for profile in defaults::bootstrap_profiles() {
            assert_eq!(
                security.repository.profile(&profile.id).unwrap().as_ref(),
                Some(&profile)
            );
        }
        assert!(security.rights_of("-1").is_ok());
    }

    /// Two nodes opening one empty store together (both before either generated a signing
    /// seed): the second's insert finds the first's seed, and both sign with it.
    #[test]
    fn nodes_starting_together_on_an_empty_store_sign_with_one_seed() {
        use switchyard_security::clock::ManualClock;
        use switchyard_security::token::{TokenConfig, TokenService};
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> =
            Arc::new(EmbeddedStorage::open(dir.path(), EmbeddedOptions::default()).unwrap());
        let first = Arc::new(StoredRepository::open(Arc::clone(&storage), 1_000).unwrap());
        let second = Arc::new(StoredRepository::open(Arc::clone(&storage), 1_000).unwrap());
        let service = |repository: &Arc<StoredRepository>| {
            let repository: Arc<dyn SecurityRepository> = repository.clone();
            TokenService::new(
                TokenConfig::default(),
                None,
                repository,
                Arc::new(ManualClock::at(1_000)),
            )
            .unwrap()
            .1
        };
        assert!(service(&first), "the first generated its seed");
        assert!(!service(&second), "the second found the first's");
        let seed = |repository: &StoredRepository| {
            repository
                .signing_seed()
                .unwrap()
                .unwrap()
                .expose()
                .to_string()
        };
        assert_eq!(seed(&first), seed(&second));
        assert_eq!(
            seed(&StoredRepository::open(storage, 1_000).unwrap()),
            seed(&first)
        );
    }
}
