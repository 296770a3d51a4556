//! The `local` strategy's passwords: verifying the hashes Kuzzle's
//! `kuzzle-plugin-auth-passport-local` stored (so exported users can be imported) and hashing new
//! ones with Argon2id.
//!
//! Kuzzle's scheme (`lib/passwordManager.js`, defaults `algorithm:"sha512"`, `stretching:true`,
//! `digest:"hex"`, `encryption:"hmac"`): the salt is `randomBytes(128).toString('hex')`, used as
//! the 256-byte ASCII string itself; the hash is PBKDF2-HMAC-SHA512(password, salt, 10 000
//! iterations, 512-byte key) in hex. Without stretching it is HMAC(salt, password), or with
//! `encryption:"hash"` SHA(`salt:password`).
//!
//! Ours: Argon2id, PHC string, OWASP's current first recommendation by default (m = 19 MiB,
//! t = 2, p = 1), a 16-byte random salt.

use std::fmt;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::secret::{constant_time_eq, random_bytes, to_hex, Secret};

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Argon2Params {
    /// Memory, in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for Argon2Params {
    /// OWASP Password Storage Cheat Sheet: Argon2id, m = 19456 KiB, t = 2, p = 1.
    fn default() -> Self {
        Argon2Params {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl Argon2Params {
    pub(crate) fn hasher(&self) -> Result<argon2::Argon2<'static>, PasswordError> {
        let params = argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|_| PasswordError::BadParameters)?;
        Ok(argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params,
        ))
    }
}

/// Why a password could not be hashed or checked (never carries the password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// Argon2 parameters out of range.
    #[error("argon2 parameters out of range")]
    BadParameters,
    /// A stored hash this code cannot read.
    #[error("unsupported stored password: {0}")]
    Unsupported(String),
}

/// A stored password, in one of the schemes we read.
#[derive(Clone, PartialEq, Eq)]
pub enum StoredPassword {
    /// Kuzzle's local strategy document fields.
    Kuzzle {
        /// `userPassword`.
        hash: Secret,
        /// `userSalt`.
        salt: Secret,
        /// `algorithm` (`sha512`, `sha384`, `sha256`).
        algorithm: String,
        /// `stretching`.
        stretching: bool,
        /// `encryption` (`hmac` or `hash`).
        encryption: String,
        /// The plugin's `digest` setting when it was hashed (`hex` or `base64`).
        digest: String,
    },
    /// An Argon2id PHC string.
    Argon2id(Secret),
}

impl fmt::Debug for StoredPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoredPassword::Kuzzle {
                algorithm,
                stretching,
                encryption,
                ..
            } => f
                .debug_struct("Kuzzle")
                .field("algorithm", algorithm)
                .field("stretching", stretching)
                .field("encryption", encryption)
                .finish_non_exhaustive(),
            StoredPassword::Argon2id(_) => f.write_str("Argon2id(***)"),
        }
    }
}

impl StoredPassword {
    /// Hashes `password` with Argon2id.
    pub fn hash(password: &Secret, params: &Argon2Params) -> Result<StoredPassword, PasswordError> {
        let salt = SaltString::encode_b64(&random_bytes(16))
            .map_err(|e| PasswordError::Unsupported(e.to_string()))?;
        let phc = params
            .hasher()?
            .hash_password(password.expose().as_bytes(), &salt)
            .map_err(|_| PasswordError::BadParameters)?;
        Ok(StoredPassword::Argon2id(Secret::new(phc.to_string())))
    }

    /// Whether `password` matches. Comparisons are constant-time.
    pub fn verify(&self, password: &Secret) -> Result<bool, PasswordError> {
        match self {
            StoredPassword::Argon2id(phc) => {
                let parsed = PasswordHash::new(phc.expose())
                    .map_err(|_| PasswordError::Unsupported("malformed argon2 hash".into()))?;
                // The parameters come from the PHC string; the verifier compares in constant
                // time.
                Ok(argon2::Argon2::default()
                    .verify_password(password.expose().as_bytes(), &parsed)
                    .is_ok())
            }
            StoredPassword::Kuzzle {
                hash,
                salt,
                algorithm,
                stretching,
                encryption,
                digest,
            } => {
                let computed = kuzzle_hash(
                    password.expose(),
                    salt.expose(),
                    algorithm,
                    *stretching,
                    encryption,
                    digest,
                )?;
                Ok(constant_time_eq(
                    computed.as_bytes(),
                    hash.expose().as_bytes(),
                ))
            }
        }
    }

    /// Whether a successful login should store a fresh Argon2id hash: any Kuzzle hash, or
    /// Argon2 parameters other than the configured ones.
    pub fn needs_rehash(&self, params: &Argon2Params) -> bool {
        match self {
            StoredPassword::Kuzzle { .. } => true,
            StoredPassword::Argon2id(phc) => {
                let Ok(parsed) = PasswordHash::new(phc.expose()) else {
                    return true;
                };
                let Ok(current) = argon2::Params::try_from(&parsed) else {
                    return true;
                };
                parsed.algorithm.as_str() != "argon2id"
                    || current.m_cost() != params.memory_kib
                    || current.t_cost() != params.iterations
                    || current.p_cost() != params.parallelism
            }
        }
    }
}

/// `PasswordManager.encryptPassword` of the local strategy.
pub fn kuzzle_hash(
    password: &str,
    salt: &str,
    algorithm: &str,
    stretching: bool,
    encryption: &str,
    digest: &str,
) -> Result<String, PasswordError> {
    // The key length table lists bit sizes, passed to PBKDF2 as bytes (512 bytes for sha512).
    let key_length = match algorithm {
        "sha256" | "RSA-SHA256" | "sha256WithRSAEncryption" => 256,
        "sha384" | "RSA-SHA384" | "sha384WithRSAEncryption" => 384,
        "sha512" | "RSA-SHA512" | "sha512WithRSAEncryption" => 512,
        // sha1 and sha224 are in Kuzzle's table; nobody should have used them. Refuse rather
        // than carry their crates.
        _ => {
            return Err(PasswordError::Unsupported(format!(
                "algorithm {algorithm:?}"
            )))
        }
    };
    let bytes: Vec<u8> = if stretching {
        let mut out = vec![0u8; key_length];
        let (p, s) = (password.as_bytes(), salt.as_bytes());
        match key_length {
            256 => pbkdf2::pbkdf2_hmac::<Sha256>(p, s, 10_000, &mut out),
            384 => pbkdf2::pbkdf2_hmac::<Sha384>(p, s, 10_000, &mut out),
            _ => pbkdf2::pbkdf2_hmac::<Sha512>(p, s, 10_000, &mut out),
        }
        out
    } else if encryption == "hmac" {
        fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
            let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key)
                .expect("HMAC takes keys of any length");
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        let (key, data) = (salt.as_bytes(), password.as_bytes());
        match key_length {
            256 => mac::<Hmac<Sha256>>(key, data),
            384 => mac::<Hmac<Sha384>>(key, data),
            _ => mac::<Hmac<Sha512>>(key, data),
        }
    } else if encryption == "hash" {
        let salted = if salt.is_empty() {
            password.to_owned()
        } else {
            format!("{salt}:{password}")
        };
        match key_length {
            256 => Sha256::digest(salted.as_bytes()).to_vec(),
            384 => Sha384::digest(salted.as_bytes()).to_vec(),
            _ => Sha512::digest(salted.as_bytes()).to_vec(),
        }
    } else {
        return Err(PasswordError::Unsupported(format!(
            "encryption {encryption:?}"
        )));
    };
    match digest {
        "hex" => Ok(to_hex(&bytes)),
        "base64" => {
            use base64::Engine;
            Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        _ => Err(PasswordError::Unsupported(format!("digest {digest:?}"))),
    }
}

/// A user's `local` credentials: the username (unique), its kuid and the stored password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCredentials {
    /// The login name (the document id in Kuzzle's plugin storage).
    pub username: String,
    /// The user it logs in.
    pub kuid: String,
    /// The password.
    pub password: StoredPassword,
}

impl LocalCredentials {
    /// Reads a document of Kuzzle's local strategy (`{kuid, userPassword, userSalt, algorithm,
    /// stretching, encryption}`, its `_id` being the username). `digest` is the plugin's
    /// setting (`"hex"` by default), which the documents do not record.
    pub fn from_kuzzle_document(
        username: &str,
        source: &Map<String, Value>,
        digest: &str,
    ) -> Result<LocalCredentials, PasswordError> {
        let text = |key: &str| source.get(key).and_then(Value::as_str).map(str::to_owned);
        let kuid = text("kuid").ok_or_else(|| PasswordError::Unsupported("no kuid".into()))?;
        let hash = text("userPassword")
            .ok_or_else(|| PasswordError::Unsupported("no userPassword".into()))?;
        let password = if text("algorithm").as_deref() == Some("argon2id") {
            StoredPassword::Argon2id(Secret::new(hash))
        } else {
            StoredPassword::Kuzzle {
                hash: Secret::new(hash),
                salt: Secret::new(text("userSalt").unwrap_or_default()),
                algorithm: text("algorithm").unwrap_or_else(|| "sha512".into()),
                // Documents written before stretching existed have no flag: they were not
                // stretched.
                stretching: source
                    .get("stretching")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                encryption: text("encryption").unwrap_or_else(|| "hmac".into()),
                digest: digest.to_owned(),
            }
        };
        Ok(LocalCredentials {
            username: username.to_owned(),
            kuid,
            password,
        })
    }

    /// What `getCredentials`/`createCredentials` return for `local`: `{username, kuid}`.
    pub fn to_api(&self) -> Value {
        let mut out = Map::new();
        out.insert("username".into(), Value::String(self.username.clone()));
        out.insert("kuid".into(), Value::String(self.kuid.clone()));
        Value::Object(out)
    }
}
