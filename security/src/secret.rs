//! `Secret`: a value that never shows itself: redacted `Debug`, no `Display`, no `Serialize`,
//! constant-time equality. Passwords, hashes, salts, signing keys and tokens travel in it.

use std::fmt;

use subtle::ConstantTimeEq;

/// A secret string. The only way to read it is [`Secret::expose`], which names the intent at
/// every call site; `Debug` prints `Secret(***)`.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the code that must use it (hashing, signing, sending it once).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares with `other` in time that depends only on the lengths.
    pub fn ct_eq(&self, other: &str) -> bool {
        constant_time_eq(self.0.as_bytes(), other.as_bytes())
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(&other.0)
    }
}

impl Eq for Secret {}

impl<'de> serde::Deserialize<'de> for Secret {
    // Deserializing is allowed (the config's `secret`); serializing is not: nothing may write a
    // secret out by accident.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// Byte-slice equality whose time depends only on the lengths, for every secret comparison.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Equality of two tokens (or any secret text) whose time depends only on the lengths: every
/// byte is read, with no early exit (`switchyard_plugin_api::json::same_bytes`, sixteen bytes a
/// step): cheaper than [`constant_time_eq`] on the ~230 bytes of a token the gate compares on
/// every request.
pub fn same_secret_text(a: &str, b: &str) -> bool {
    switchyard_plugin_api::json::same_bytes(a.as_bytes(), b.as_bytes())
}

/// `n` random bytes from the operating system.
///
/// # Panics
/// When the operating system has no randomness to give, which leaves nothing safe to do.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    bytes
}

/// Lowercase hexadecimal, as Node's `toString('hex')`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 15)] as char);
    }
    out
}

/// Lowercase hex of SHA-256: Kuzzle's API key fingerprint, and our token record key.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    to_hex(&sha2::Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_text_is_equal_only_byte_for_byte() {
        let token = "kauth-".to_string() + &"x".repeat(224);
        assert!(same_secret_text(&token, &token.clone()));
        assert!(same_secret_text("", ""));
        for at in [0, 1, 31, 32, 100, token.len() - 1] {
            let mut other = token.clone().into_bytes();
            other[at] = b'y';
            let other = String::from_utf8(other).unwrap();
            assert!(!same_secret_text(&token, &other), "a difference at {at}");
        }
        assert!(!same_secret_text(&token, &token[..token.len() - 1]));
        assert!(!same_secret_text("a", ""));
    }

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(
            format!("{:#?}", Some(&secret)),
            "Some(\n    Secret(***),\n)"
        );
    }

    #[test]
    fn comparisons_are_by_value() {
        let table = [
            ("a", "a", true),
            ("a", "b", false),
            ("a", "ab", false),
            ("", "", true),
        ];
        for (left, right, equal) in table {
            assert_eq!(
                Secret::new(left).ct_eq(right),
                equal,
                "{left:?} vs {right:?}"
            );
        }
    }

    #[test]
    fn hex_and_sha256_match_node() {
        assert_eq!(to_hex(&[0, 1, 0xab, 0xff]), "0001abff");
        // node -e "console.log(require('crypto').createHash('sha256').update('kapikey-x').digest('hex'))"
        assert_eq!(
            sha256_hex(b"kapikey-x"),
            "d7e010f00060e8deb902731ece79804d51fcc44c30021c5daf27868577497800"
        );
    }
}
