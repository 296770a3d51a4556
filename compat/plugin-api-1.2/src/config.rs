//! Configuration values every protocol reads the same way: sizes such as `maxRequestSize`.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// Kuzzle's default `server.maxRequestSize`: 1 MB.
pub const DEFAULT_MAX_REQUEST_SIZE: u64 = 1024 * 1024;

/// A size in bytes, as written in `config.toml`: a number, or a string such as `"1MB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

/// Parses `"1MB"`, `"512 kb"`, `"100"`, `"100B"`: an integer and an optional unit, `B`, `KB`,
/// `MB` or `GB`, case-insensitive, powers of 1024 (as Kuzzle's `bytes`).
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: u64 = text[..digits_end].parse().ok()?;
    let multiplier: u64 = match text[digits_end..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1 << 10,
        "mb" => 1 << 20,
        "gb" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(multiplier)
}

/// What a bad size is told: `"lots" is not a size (expected bytes, or a number with …)`.
pub fn size_error(text: &str) -> String {
    format!("\"{text}\" is not a size (expected bytes, or a number with B, KB, MB or GB)")
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Size, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = Size;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number of bytes, or a string such as \"1MB\"")
            }

            fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<Size, E> {
                Ok(Size(bytes))
            }

            fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<Size, E> {
                u64::try_from(bytes).map(Size).map_err(|_| {
                    E::custom(format!("{bytes} is not a size: it must not be negative"))
                })
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Size, E> {
                parse_size(text)
                    .map(Size)
                    .ok_or_else(|| E::custom(size_error(text)))
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_kuzzle() {
        let cases = [
            ("100", Some(100)),
            ("100B", Some(100)),
            ("1kb", Some(1024)),
            ("512kb", Some(512 << 10)),
            ("1MB", Some(1 << 20)),
            (" 2 GB ", Some(2 << 30)),
            ("1.5MB", None),
            ("MB", None),
            ("-1", None),
            ("1TB", None),
            ("99999999999999999999GB", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_size(text), expected, "{text}");
        }
    }

    #[test]
    fn a_protocol_inherits_max_request_size_from_server() {
        let config = |server| crate::InitConfig {
            name: "p",
            config: "{}",
            server,
        };
        let with_server = config(r#"{"maxRequestSize":"16KB","pluginDir":"x"}"#);
        assert_eq!(with_server.max_request_size(Some(Size(10))).unwrap(), 10);
        assert_eq!(with_server.max_request_size(None).unwrap(), 16 << 10);
        assert_eq!(
            config("{}").max_request_size(None).unwrap(),
            DEFAULT_MAX_REQUEST_SIZE
        );
        let error = config(r#"{"maxRequestSize":"lots"}"#)
            .max_request_size(None)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("server.maxRequestSize: \"lots\" is not a size"),
            "{error}"
        );
    }

    #[test]
    fn sizes_deserialize_from_numbers_and_strings() {
        let parse = |json: &str| serde_json::from_str::<Size>(json).map_err(|e| e.to_string());
        assert_eq!(parse("2048"), Ok(Size(2048)));
        assert_eq!(parse("\"2KB\""), Ok(Size(2048)));
        assert!(parse("-3")
            .unwrap_err()
            .starts_with("-3 is not a size: it must not be negative"));
        assert!(parse("\"lots\"").unwrap_err().starts_with(
            "\"lots\" is not a size (expected bytes, or a number with B, KB, MB or GB)"
        ));
    }
}
