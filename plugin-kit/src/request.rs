//! Kuzzle requests as text, before they reach the host: the checks every protocol makes.

use serde::de::IgnoredAny;
use switchyard_plugin_api::json::KnownPlainString;

/// Why a text is not one JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAnObject {
    /// Not JSON at all; serde_json's message.
    InvalidJson(String),
    /// JSON, but not an object.
    OtherJson,
}

/// Checks that `text` is one JSON object, without building it.
///
/// Runs on every request: a scanner that accepts only what is certainly valid JSON answers
/// first (no allocation, a few instructions per byte); anything it is not sure of (escapes
/// `\u`, deep nesting, any error) goes to serde_json, whose message the client then gets.
pub fn check_object(text: &str) -> Result<(), NotAnObject> {
    if scan::is_plain_object(text.as_bytes()) {
        return Ok(());
    }
    check_with_serde(text)
}

/// [`check_object`] for a connection that sends the same token with every request: the
/// top-level `jwt` string is compared with the one `token` remembers (and remembered when it
/// is new) instead of being scanned byte by byte. Same answers as [`check_object`].
pub fn check_object_with_token(
    text: &str,
    token: &mut KnownPlainString,
) -> Result<(), NotAnObject> {
    if scan::is_plain_object_with_token(text.as_bytes(), token) {
        return Ok(());
    }
    check_with_serde(text)
}

/// What serde_json says of a text the scanner was not sure of.
fn check_with_serde(text: &str) -> Result<(), NotAnObject> {
    if let Err(error) = serde_json::from_str::<IgnoredAny>(text) {
        return Err(NotAnObject::InvalidJson(error.to_string()));
    }
    if text.trim_start().starts_with('{') {
        Ok(())
    } else {
        Err(NotAnObject::OtherJson)
    }
}

/// The request's `requestId` when `bytes` is a JSON object holding a string one.
pub fn request_id_of(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "requestId")]
        request_id: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes).ok()?;
    match probe.request_id? {
        serde_json::Value::String(id) => Some(id),
        _ => None,
    }
}

/// A JSON scanner that errs on the side of "not sure": it says yes only to texts serde_json
/// accepts too (the tests compare them), so its yes can skip serde.
mod scan {
    use switchyard_plugin_api::json::{find_special, KnownPlainString};

    /// Deeper than this, serde_json decides (its own limit is 128).
    const MAX_DEPTH: u32 = 100;

    /// True when `bytes` is one JSON object with optional whitespace around it, holding no
    /// `\u` escape and nested at most `MAX_DEPTH` deep.
    pub fn is_plain_object(bytes: &[u8]) -> bool {
        let mut at = skip_space(bytes, 0);
        if bytes.get(at) != Some(&b'{') {
            return false;
        }
        match value(bytes, at, 0) {
            Some(end) => at = end,
            None => return false,
        }
        skip_space(bytes, at) == bytes.len()
    }

    /// [`is_plain_object`], the top-level `jwt` string read through `token`.
    pub fn is_plain_object_with_token(bytes: &[u8], token: &mut KnownPlainString) -> bool {
        let mut at = skip_space(bytes, 0);
        if bytes.get(at) != Some(&b'{') {
            return false;
        }
        match top_members(bytes, at + 1, token) {
            Some(end) => at = end,
            None => return false,
        }
        skip_space(bytes, at) == bytes.len()
    }

    /// [`container`] for the top-level object's members, from just after its `{`: a `jwt`
    /// member's string goes through `token`.
    fn top_members(bytes: &[u8], mut at: usize, token: &mut KnownPlainString) -> Option<usize> {
        at = skip_space(bytes, at);
        if *bytes.get(at)? == b'}' {
            return Some(at + 1);
        }
        loop {
            if *bytes.get(at)? != b'"' {
                return None;
            }
            let key_end = string(bytes, at + 1)?;
            let is_jwt = key_end - at == 5 && &bytes[at + 1..at + 4] == b"jwt";
            at = skip_space(bytes, key_end);
            if *bytes.get(at)? != b':' {
                return None;
            }
            at = skip_space(bytes, at + 1);
            let end = if is_jwt && bytes.get(at) == Some(&b'"') {
                token_string(bytes, at + 1, token)
            } else {
                value(bytes, at, 1)
            };
            at = skip_space(bytes, end?);
            match *bytes.get(at)? {
                b',' => at = skip_space(bytes, at + 1),
                b'}' => return Some(at + 1),
                _ => return None,
            }
        }
    }

    /// [`string`] through `token`: a plain string is found by comparison when it is the one
    /// remembered; anything else (escapes, a control character) takes [`string`]'s path.
    fn token_string(bytes: &[u8], at: usize, token: &mut KnownPlainString) -> Option<usize> {
        let rest = bytes.get(at..)?;
        let length = token.find_special(rest)?;
        if rest[length] == b'"' {
            return Some(at + length + 1);
        }
        string(bytes, at)
    }

    fn skip_space(bytes: &[u8], mut at: usize) -> usize {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(at) {
            at += 1;
        }
        at
    }

    /// The end of the value starting at `at` (no leading space), or None.
    fn value(bytes: &[u8], at: usize, depth: u32) -> Option<usize> {
        match *bytes.get(at)? {
            b'{' => container(bytes, at + 1, depth + 1, b'}'),
            b'[' => container(bytes, at + 1, depth + 1, b']'),
            b'"' => string(bytes, at + 1),
            b't' => literal(bytes, at, b"true"),
            b'f' => literal(bytes, at, b"false"),
            b'n' => literal(bytes, at, b"null"),
            b'-' | b'0'..=b'9' => number(bytes, at),
            _ => None,
        }
    }

    /// An object's members or an array's elements, from just after the opening bracket.
    fn container(bytes: &[u8], mut at: usize, depth: u32, close: u8) -> Option<usize> {
        if depth > MAX_DEPTH {
            return None;
        }
        at = skip_space(bytes, at);
        if *bytes.get(at)? == close {
            return Some(at + 1);
        }
        loop {
            if close == b'}' {
                if *bytes.get(at)? != b'"' {
                    return None;
                }
                at = skip_space(bytes, string(bytes, at + 1)?);
                if *bytes.get(at)? != b':' {
                    return None;
                }
                at = skip_space(bytes, at + 1);
            }
            at = skip_space(bytes, value(bytes, at, depth)?);
            match *bytes.get(at)? {
                b',' => at = skip_space(bytes, at + 1),
                byte if byte == close => return Some(at + 1),
                _ => return None,
            }
        }
    }

    /// A string's end, from just after its opening quote.
    fn string(bytes: &[u8], mut at: usize) -> Option<usize> {
        loop {
            at += find_special(bytes.get(at..)?)?;
            match bytes[at] {
                b'"' => return Some(at + 1),
                b'\\' => match *bytes.get(at + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => at += 2,
                    // `\u` (surrogates) and anything else: serde decides.
                    _ => return None,
                },
                // A control character.
                _ => return None,
            }
        }
    }

    fn literal(bytes: &[u8], at: usize, word: &[u8]) -> Option<usize> {
        let end = at + word.len();
        (bytes.get(at..end)? == word).then_some(end)
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(bytes: &[u8], mut at: usize) -> Option<usize> {
        let digits = |bytes: &[u8], mut at: usize| {
            let start = at;
            while bytes.get(at).is_some_and(u8::is_ascii_digit) {
                at += 1;
            }
            (at > start).then_some(at)
        };
        if bytes.get(at) == Some(&b'-') {
            at += 1;
        }
        at = match *bytes.get(at)? {
            b'0' => at + 1,
            b'1'..=b'9' => digits(bytes, at)?,
            _ => return None,
        };
        if bytes.get(at) == Some(&b'.') {
            at = digits(bytes, at + 1)?;
        }
        if let Some(b'e' | b'E') = bytes.get(at) {
            at += 1;
            if let Some(b'+' | b'-') = bytes.get(at) {
                at += 1;
            }
            at = digits(bytes, at)?;
        }
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde_json says of `text`: one JSON object or not.
    fn serde_says_object(text: &str) -> bool {
        serde_json::from_str::<IgnoredAny>(text).is_ok() && text.trim_start().starts_with('{')
    }

    #[test]
    fn the_scanner_says_yes_only_where_serde_does() {
        let cases = [
            r#"{}"#,
            r#" {"a":1} "#,
            "\t{\"a\":[1,2,{\"b\":null}]}\r\n",
            r#"{"controller":"server","action":"now","requestId":"r"}"#,
            r#"{"a":-0.5e+10,"b":1E3,"c":0,"d":[true,false]}"#,
            r#"{"a":"\"\\\/\b\f\n\r\t"}"#,
            r#"{"a":"é✓"}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":.5}"#,
            r#"{"a":-}"#,
            r#"{"a":1e}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":"\x"}"#,
            "{\"a\":\"\u{1}\"}",
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{a:1}"#,
            r#"{"a":1}}"#,
            r#"{"a":1} x"#,
            r#"[1]"#,
            r#""a""#,
            r#"{"a":[1,]}"#,
            r#"{"a":tru}"#,
            r#"{"a":nul}"#,
            "{\"a\":1}\u{c}",
            "",
            "{",
        ];
        for text in cases {
            if scan::is_plain_object(text.as_bytes()) {
                assert!(serde_says_object(text), "scanner accepted {text:?}");
            }
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(!scan::is_plain_object(deep.as_bytes()));
        assert!(scan::is_plain_object(
            br#"{"controller":"server","action":"now"}"#
        ));
    }

    /// Random objects, half of them with one byte changed: wherever the scanner says yes,
    /// serde agrees; and it says yes to most of the valid ones, or it would save nothing.
    #[test]
    fn the_scanner_agrees_with_serde_on_random_texts() {
        struct Random(u64);
        impl Random {
            fn below(&mut self, n: usize) -> usize {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                (self.0 % n as u64) as usize
            }
        }
        fn value(random: &mut Random, depth: u32, out: &mut String) {
            const ATOMS: &[&str] = &[
                "0",
                "-12",
                "3.25",
                "1e9",
                "-0.5E-3",
                "true",
                "false",
                "null",
                r#""""#,
                r#""text""#,
                r#""a\nb""#,
                r#""\\\"""#,
                r#""\u00e9""#,
                r#""é""#,
            ];
            match random.below(if depth > 3 { 1 } else { 3 }) {
                0 => out.push_str(ATOMS[random.below(ATOMS.len())]),
                1 => {
                    out.push('[');
                    for i in 0..random.below(4) {
                        if i > 0 {
                            out.push(',');
                        }
                        value(random, depth + 1, out);
                    }
                    out.push(']');
                }
                _ => object(random, depth + 1, out),
            }
        }
        fn object(random: &mut Random, depth: u32, out: &mut String) {
            out.push('{');
            for i in 0..random.below(4) {
                if i > 0 {
                    out.push(',');
                }
                out.push_str([r#""k""#, r#""key" "#, r#""""#, r#""jwt""#][random.below(4)]);
                out.push(':');
                if random.below(4) == 0 {
                    out.push(' ');
                }
                value(random, depth, out);
            }
            out.push('}');
        }
        const ALPHABET: &[u8] = b"{}[]:,\"\\ \t\nabefnlrstu0123456789.-+eE/\x01";
        let mut random = Random(0x9e37_79b9_7f4a_7c15);
        let mut known = KnownPlainString::new();
        let (mut yes, mut valid) = (0, 0);
        for _ in 0..100_000 {
            let mut text = String::new();
            object(&mut random, 0, &mut text);
            let mut bytes = text.into_bytes();
            if random.below(2) == 0 {
                let at = random.below(bytes.len());
                if bytes[at].is_ascii() {
                    bytes[at] = ALPHABET[random.below(ALPHABET.len())];
                }
            }
            let text = String::from_utf8(bytes).expect("ASCII replaced ASCII");
            let scanned = scan::is_plain_object(text.as_bytes());
            // The top-level loop that reads a token agrees with the generic one.
            let with_token = scan::is_plain_object_with_token(text.as_bytes(), &mut known);
            assert_eq!(with_token, scanned, "{text:?}");
            let serde = serde_says_object(&text);
            assert!(!scanned || serde, "scanner accepted {text:?}");
            yes += usize::from(scanned);
            valid += usize::from(serde);
        }
        // Objects holding `\u` escapes are left to serde on purpose.
        assert!(valid > 30_000 && yes * 10 >= valid * 7, "{yes} of {valid}");
    }

    /// A connection's remembered token changes no answer: every text gets from
    /// `check_object_with_token` what it gets from `check_object`, the memory primed with the
    /// token or holding an earlier text's.
    #[test]
    fn a_remembered_token_changes_no_answer() {
        let token = format!("kauth-{}", "eyJfaWQiOiJiZW5jaCJ9.".repeat(10));
        let around = |jwt: &str| {
            format!(r#"{{"controller":"server","action":"now","jwt":"{jwt}","x":[1]}}"#)
        };
        let mut texts = vec![around(&token), around(&token)];
        for at in [0, 1, 31, 32, 33, 64, 100, token.len() - 1, token.len()] {
            for inserted in [
                "\u{1}", "\u{1f}", "\\\"", "\\n", "\\u0041", "\\x", "\"", "é",
            ] {
                let mut jwt = token.clone();
                jwt.insert_str(at, inserted);
                texts.push(around(&jwt));
                texts.push(around(&token));
            }
        }
        texts.push(format!(r#"{{"jwt":"{token}"#));
        texts.push(format!(r#"{{"jwt":"{token}""#));
        texts.push(format!(r#"{{"jwt":"{token}"}}"#));
        texts.push(format!(r#"{{"jwt":"{token}"}} x"#));
        texts.push(format!(r#"{{"jwt":"{token}\""}}"#));
        texts.push(format!(r#"{{"jwt":"{}"}}"#, &token[..100]));
        texts.push(format!(r#"{{"a":{{"jwt":"{token}"}},"jwt":"{token}"}}"#));
        texts.push(format!(r#"{{"jwt":1,"b":"{token}"}}"#));
        texts.push(format!(r#"["jwt","{token}"]"#));
        let mut known = KnownPlainString::new();
        for text in &texts {
            assert_eq!(
                check_object_with_token(text, &mut known),
                check_object(text),
                "{text:?}"
            );
        }
    }

    #[test]
    fn objects_pass_and_request_ids_are_found() {
        assert_eq!(check_object(r#" {"a":1}"#), Ok(()));
        assert_eq!(check_object("[1]"), Err(NotAnObject::OtherJson));
        assert!(matches!(
            check_object("{"),
            Err(NotAnObject::InvalidJson(_))
        ));
        assert_eq!(
            request_id_of(br#"{"requestId":"r1"}"#).as_deref(),
            Some("r1")
        );
        assert_eq!(request_id_of(br#"{"requestId":1}"#), None);
        assert_eq!(request_id_of(b"nope"), None);
    }
}
