//! A Kuzzle API request, parsed and type-checked as Kuzzle's `RequestInput` does.
//!
//! `controller`, `action`, `requestId`, `jwt`, `volatile`, `body`, `index` and `collection` are
//! pulled out; every other key (including `_id`, `scope`, `users` and unknown ones the SDK adds,
//! such as `verb` or `cookieAuth`) stays in `args`. A `null` value counts as absent.

use std::borrow::Cow;
use std::cell::RefCell;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use switchyard_plugin_api::errors::{self, KuzzleError};
use switchyard_plugin_api::json::{self, KnownPlainString};

/// A parsed request. Its strings borrow from the request's text unless they had escapes.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    /// The client's `requestId`, or a generated UUID.
    pub request_id: Cow<'a, str>,
    /// Controller name (empty when the request had none: only in error answers).
    pub controller: Cow<'a, str>,
    /// Action name (likewise).
    pub action: Cow<'a, str>,
    /// `index`, when given.
    pub index: Option<Cow<'a, str>>,
    /// `collection`, when given.
    pub collection: Option<Cow<'a, str>>,
    /// The JWT, when given. Read by the security gate only: a request handed to another
    /// thread after it no longer holds it (its caller's identity does).
    pub jwt: Option<Cow<'a, str>>,
    /// `volatile` (an object), when given.
    pub volatile: Option<Value>,
    /// `body` (an object), when given.
    pub body: Option<Value>,
    /// Every other key.
    pub args: Map<String, Value>,
}

/// A request that failed its checks: what could be read of it, and why it failed.
#[derive(Debug)]
pub struct Rejected<'a> {
    /// The request as far as it was read (for `requestId`, `controller`… in the answer).
    pub request: Request<'a>,
    /// Kuzzle's error.
    pub error: KuzzleError,
}

impl<'a> Request<'a> {
    /// Parses and checks a request. On error, also returns what could be read of it, so the
    /// error response still echoes `requestId`, `controller`, `action`…
    ///
    /// The top-level object is read key by key: the fields Kuzzle pulls out go straight to
    /// their slots and only the other keys build a map, so a typical request allocates its
    /// strings and nothing else.
    pub fn parse(text: &'a str) -> Result<Request<'a>, Box<Rejected<'a>>> {
        if let Some(fields) = flat_fields(text) {
            return Request::from_fields(fields);
        }
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let fields = Deserializer::deserialize_map(&mut deserializer, FieldsVisitor)
            .and_then(|fields| deserializer.end().map(|()| fields));
        match fields {
            Ok(fields) => Request::from_fields(fields),
            Err(_) => Err(Box::new(Rejected {
                request: Request::with_generated_id(),
                error: errors::API_ASSERT_INVALID_ARGUMENT.with(&["request", "a JSON object"]),
            })),
        }
    }

    /// What can be read of a request without failing: used to answer refusals.
    pub fn parse_lenient(text: &'a str) -> Request<'a> {
        match Request::parse(text) {
            Ok(request) => request,
            Err(rejected) => rejected.request,
        }
    }

    fn with_generated_id() -> Request<'a> {
        Request {
            request_id: Cow::Owned(uuid::Uuid::new_v4().to_string()),
            ..Request::default()
        }
    }

    /// Type-checks the pulled-out fields, in Kuzzle's order: the first wrong one is the error.
    fn from_fields(fields: Fields<'a>) -> Result<Request<'a>, Box<Rejected<'a>>> {
        let Fields {
            request_id,
            controller,
            action,
            index,
            collection,
            jwt,
            volatile,
            body,
            args,
        } = fields;
        // A UUID costs a `getrandom` call: draw one only for requests without an id.
        let mut request = match request_id {
            Some(Text::String(_)) => Request::default(),
            _ => Request::with_generated_id(),
        };
        request.args = args;
        let mut first_error: Option<KuzzleError> = None;
        let mut fail = |error: KuzzleError| {
            first_error.get_or_insert(error);
        };

        match request_id {
            None | Some(Text::Null) => {}
            Some(Text::String(id)) => request.request_id = id,
            Some(Text::Other) => {
                fail(errors::API_ASSERT_INVALID_TYPE.with(&["requestId", "string"]))
            }
        }
        for (key, value, slot) in [
            ("controller", controller, &mut request.controller),
            ("action", action, &mut request.action),
        ] {
            match value {
                None | Some(Text::Null) => {}
                Some(Text::String(value)) => *slot = value,
                Some(Text::Other) => fail(errors::API_ASSERT_INVALID_TYPE.with(&[key, "string"])),
            }
        }
        for (key, value, slot) in [
            ("index", index, &mut request.index),
            ("collection", collection, &mut request.collection),
            ("jwt", jwt, &mut request.jwt),
        ] {
            match value {
                None | Some(Text::Null) => {}
                Some(Text::String(value)) => *slot = Some(value),
                Some(Text::Other) => fail(errors::API_ASSERT_INVALID_TYPE.with(&[key, "string"])),
            }
        }
        for (key, value, slot) in [
            ("volatile", volatile, &mut request.volatile),
            ("body", body, &mut request.body),
        ] {
            match value {
                None | Some(Value::Null) => {}
                Some(value @ Value::Object(_)) => *slot = Some(value),
                Some(_) => fail(errors::API_ASSERT_INVALID_TYPE.with(&[key, "object"])),
            }
        }

        if first_error.is_none() {
            if request.controller.is_empty() {
                first_error = Some(errors::API_ASSERT_MISSING_ARGUMENT.with(&["controller"]));
            } else if request.action.is_empty() {
                first_error = Some(errors::API_ASSERT_MISSING_ARGUMENT.with(&["action"]));
            }
        }
        match first_error {
            None => Ok(request),
            Some(error) => Err(Box::new(Rejected { request, error })),
        }
    }

    /// The same request, owning its strings: to hand it to another thread.
    pub fn into_owned(self) -> Request<'static> {
        let own = |text: Cow<'_, str>| Cow::Owned(text.into_owned());
        Request {
            request_id: own(self.request_id),
            controller: own(self.controller),
            action: own(self.action),
            index: self.index.map(own),
            collection: self.collection.map(own),
            jwt: self.jwt.map(own),
            volatile: self.volatile,
            body: self.body,
            args: self.args,
        }
    }

    /// `body.<key>` as a string: Kuzzle's errors when the body, the key or its type is wrong.
    pub fn body_string(&self, key: &str) -> Result<&str, KuzzleError> {
        let Some(body) = &self.body else {
            return Err(errors::API_ASSERT_BODY_REQUIRED.error());
        };
        match body.get(key) {
            None | Some(Value::Null) => {
                Err(errors::API_ASSERT_MISSING_ARGUMENT.with(&[&format!("body.{key}")]))
            }
            Some(Value::String(value)) => Ok(value),
            Some(_) => {
                Err(errors::API_ASSERT_INVALID_TYPE.with(&[&format!("body.{key}"), "string"]))
            }
        }
    }

    /// `index` and `collection`, both required.
    pub fn index_and_collection(&self) -> Result<(&str, &str), KuzzleError> {
        let index = self
            .index
            .as_deref()
            .ok_or_else(|| errors::API_ASSERT_MISSING_ARGUMENT.with(&["index"]))?;
        let collection = self
            .collection
            .as_deref()
            .ok_or_else(|| errors::API_ASSERT_MISSING_ARGUMENT.with(&["collection"]))?;
        Ok((index, collection))
    }

    /// A string argument (`args[key]`), if present and a string.
    pub fn string_arg(&self, key: &str) -> Option<&str> {
        self.args.get(key).and_then(Value::as_str)
    }
}

/// The top-level members of a request as read, before type checks. A repeated key keeps its
/// last value, as a JSON object parsed whole would.
#[derive(Debug, Default, PartialEq)]
struct Fields<'de> {
    request_id: Option<Text<'de>>,
    controller: Option<Text<'de>>,
    action: Option<Text<'de>>,
    index: Option<Text<'de>>,
    collection: Option<Text<'de>>,
    jwt: Option<Text<'de>>,
    volatile: Option<Value>,
    body: Option<Value>,
    /// Every other key; `null` values are left out (absent, for Kuzzle).
    args: Map<String, Value>,
}

/// An object key, borrowed from the request text unless it has escapes (serde's own `Cow`
/// always copies).
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_string())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The fast path of [`Request::parse`]: an object whose members are all plain strings (no
/// escapes) or `null`, as an HTTP REST route or a hand-written client sends. Anything else
/// (escapes, numbers, nested values, any syntax error) returns `None` and takes serde's path,
/// so what this accepts is valid JSON read exactly as serde would.
fn flat_fields(text: &str) -> Option<Fields<'_>> {
    let bytes = text.as_bytes();
    let mut at = 0;
    let skip_space = |at: &mut usize| {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(*at) {
            *at += 1;
        }
    };
    // A string without escapes or control characters: its text between the quotes.
    let string_with = |at: &mut usize, find_special: fn(&[u8]) -> Option<usize>| {
        let rest = bytes.get(*at..)?.strip_prefix(b"\"")?;
        let length = find_special(rest)?;
        if rest[length] != b'"' {
            return None;
        }
        let start = *at + 1;
        *at = start + length + 1;
        // Both ends are ASCII quotes, so they are character boundaries.
        text.get(start..start + length)
    };
    let string = |at: &mut usize| string_with(at, json::find_special);
    let mut fields = Fields::default();
    skip_space(&mut at);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    at += 1;
    skip_space(&mut at);
    if bytes.get(at) == Some(&b'}') {
        at += 1;
    } else {
        loop {
            let key = string(&mut at)?;
            skip_space(&mut at);
            if bytes.get(at) != Some(&b':') {
                return None;
            }
            at += 1;
            skip_space(&mut at);
            let member = fields.member(key);
            let value = if bytes[at..].starts_with(b"null") {
                at += 4;
                Text::Null
            } else if let Member::Token(_) = member {
                Text::String(Cow::Borrowed(string_with(&mut at, find_special_in_token)?))
            } else {
                Text::String(Cow::Borrowed(string(&mut at)?))
            };
            match member {
                Member::Text(slot) | Member::Token(slot) => *slot = Some(value),
                // Anything but an object there is a type error: serde's path words it.
                Member::Object(_) => return None,
                Member::Other(args) => match value {
                    Text::String(value) => {
                        args.insert(key.to_string(), Value::String(value.into_owned()));
                    }
                    _ => {
                        args.shift_remove(key);
                    }
                },
            }
            skip_space(&mut at);
            match bytes.get(at) {
                Some(b',') => {
                    at += 1;
                    skip_space(&mut at);
                }
                Some(b'}') => {
                    at += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    skip_space(&mut at);
    (at == bytes.len()).then_some(fields)
}

thread_local! {
    /// The last token a request read on this thread carried: a connection sends the same one
    /// with every request, so the next copy is compared (in constant time), not scanned.
    static LAST_TOKEN: RefCell<KnownPlainString> = RefCell::new(KnownPlainString::new());
}

/// `json::find_special` for a `jwt` member's string, through this thread's [`LAST_TOKEN`].
fn find_special_in_token(rest: &[u8]) -> Option<usize> {
    LAST_TOKEN
        .try_with(|known| match known.try_borrow_mut() {
            Ok(mut known) => known.find_special(rest),
            Err(_) => json::find_special(rest),
        })
        .unwrap_or_else(|_| json::find_special(rest))
}

/// Where a top-level member goes, by its key: the one table both parsing paths use.
enum Member<'f, 'de> {
    /// `requestId`, `controller`, `action`, `index`, `collection`.
    Text(&'f mut Option<Text<'de>>),
    /// `jwt` (a string too; the fast path reads it through [`LAST_TOKEN`]).
    Token(&'f mut Option<Text<'de>>),
    /// `volatile`, `body`.
    Object(&'f mut Option<Value>),
    /// Any other key: `args`.
    Other(&'f mut Map<String, Value>),
}

impl<'de> Fields<'de> {
    fn member(&mut self, key: &str) -> Member<'_, 'de> {
        match key {
            "requestId" => Member::Text(&mut self.request_id),
            "controller" => Member::Text(&mut self.controller),
            "action" => Member::Text(&mut self.action),
            "index" => Member::Text(&mut self.index),
            "collection" => Member::Text(&mut self.collection),
            "jwt" => Member::Token(&mut self.jwt),
            "volatile" => Member::Object(&mut self.volatile),
            "body" => Member::Object(&mut self.body),
            _ => Member::Other(&mut self.args),
        }
    }
}

/// A member that must be a string: only its kind matters when it is not one (the value is
/// skipped, never built).
#[derive(Debug, PartialEq)]
enum Text<'de> {
    String(Cow<'de, str>),
    Null,
    Other,
}

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Text<'de>, E> {
                Ok(Text::String(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<Text<'de>, E> {
                Ok(Text::String(Cow::Owned(text.to_string())))
            }
            fn visit_string<E>(self, text: String) -> Result<Text<'de>, E> {
                Ok(Text::String(Cow::Owned(text)))
            }
            fn visit_unit<E>(self) -> Result<Text<'de>, E> {
                Ok(Text::Null)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Text<'de>, E> {
                Ok(Text::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Text<'de>, E> {
                Ok(Text::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Text<'de>, E> {
                Ok(Text::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Text<'de>, E> {
                Ok(Text::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Text<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Text::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Text<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Text::Other)
            }
        }
        deserializer.deserialize_any(TextVisitor)
    }
}

/// Reads a JSON object into [`Fields`]; anything but an object is refused.
struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields<'de>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
        let mut fields = Fields::default();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match fields.member(&key) {
                Member::Text(slot) | Member::Token(slot) => *slot = Some(map.next_value()?),
                Member::Object(slot) => *slot = Some(map.next_value()?),
                Member::Other(args) => {
                    let value: Value = map.next_value()?;
                    if value.is_null() {
                        args.shift_remove(&*key);
                    } else {
                        args.insert(key.into_owned(), value);
                    }
                }
            }
        }
        Ok(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        Request::parse(text).unwrap_err().error.message.into_owned()
    }

    #[test]
    fn fields_are_pulled_out_and_the_rest_kept() {
        let request = Request::parse(
            r#"{"controller":"server","action":"now","requestId":"r1","index":"i","collection":"c",
                "volatile":{"a":1},"body":{"b":2},"_id":null,"verb":"POST","scope":"in"}"#,
        )
        .unwrap();
        assert_eq!(request.request_id, "r1");
        assert_eq!((&*request.controller, &*request.action), ("server", "now"));
        assert_eq!(request.index.as_deref(), Some("i"));
        assert_eq!(request.collection.as_deref(), Some("c"));
        assert_eq!(request.volatile.as_ref().unwrap()["a"], 1);
        assert_eq!(request.body.as_ref().unwrap()["b"], 2);
        assert_eq!(request.args.len(), 2);
        assert_eq!(request.string_arg("scope"), Some("in"));
        assert!(!request.args.contains_key("_id"));
    }

    #[test]
    fn bad_requests_get_kuzzles_errors() {
        let cases = [
            (
                "[1]",
                "Invalid argument \"request\". Expected: a JSON object",
            ),
            (
                "{oops",
                "Invalid argument \"request\". Expected: a JSON object",
            ),
            (r#"{"action":"now"}"#, "Missing argument \"controller\"."),
            (r#"{"controller":"server"}"#, "Missing argument \"action\"."),
            (
                r#"{"controller":"","action":"now"}"#,
                "Missing argument \"controller\".",
            ),
            (
                r#"{"controller":3,"action":"now"}"#,
                "Wrong type for argument \"controller\" (expected: string)",
            ),
            (
                r#"{"controller":"s","action":"n","body":[1]}"#,
                "Wrong type for argument \"body\" (expected: object)",
            ),
            (
                r#"{"controller":"s","action":"n","requestId":7}"#,
                "Wrong type for argument \"requestId\" (expected: string)",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(error_of(text), expected, "{text}");
        }
    }

    #[test]
    fn members_read_as_a_whole_object_would_be() {
        // A repeated key keeps its last value; escapes are decoded; `null` is absence.
        let request = Request::parse(
            r#"{"controller":"x","controller":"server","act\u0069on":"n\u006fw","a":1,"a":null,
                "b":[1,{"c":null}],"b":2,"index":null,"jwt":"t\"k"}"#,
        )
        .unwrap();
        assert_eq!((&*request.controller, &*request.action), ("server", "now"));
        assert!(matches!(request.controller, Cow::Borrowed(_)));
        assert!(matches!(request.action, Cow::Owned(_)));
        assert_eq!(request.index, None);
        assert_eq!(request.jwt.as_deref(), Some("t\"k"));
        assert_eq!(Value::Object(request.args), serde_json::json!({"b": 2}));
    }

    #[test]
    fn every_string_member_refuses_other_types() {
        for key in [
            "requestId",
            "controller",
            "action",
            "index",
            "collection",
            "jwt",
        ] {
            for value in ["true", "1", "-1", "1.5", "[\"s\"]", r#"{"s":"t"}"#] {
                let text = format!(r#"{{"controller":"s","action":"n","{key}":{value}}}"#);
                assert_eq!(
                    error_of(&text),
                    format!("Wrong type for argument \"{key}\" (expected: string)"),
                    "{text}"
                );
            }
        }
        for text in [
            "",
            "{",
            r#"{"controller":"s","action":"n"} x"#,
            "null",
            "\"s\"",
        ] {
            assert_eq!(
                error_of(text),
                "Invalid argument \"request\". Expected: a JSON object",
                "{text}"
            );
        }
    }

    /// serde's path alone.
    fn serde_fields(text: &str) -> Option<Fields<'_>> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let fields = Deserializer::deserialize_map(&mut deserializer, FieldsVisitor).ok()?;
        deserializer.end().ok().map(|()| fields)
    }

    #[test]
    fn the_flat_fast_path_reads_what_serde_reads() {
        let taken = [
            r#"{"controller":"server","action":"now","requestId":"r1"}"#,
            " \t\r\n{ \"controller\" : \"s\" , \"action\":\"n\" } \n",
            "{}",
            r#"{"controller":"s","controller":"t","x":"1","x":null,"y":"é✓","index":null}"#,
            r#"{"a":"","b":"c","a":"d"}"#,
        ];
        for text in taken {
            let fast = flat_fields(text);
            assert!(fast.is_some(), "{text}");
            assert_eq!(fast, serde_fields(text), "{text}");
        }
        // Left to serde: escapes, other values, nesting, and every syntax error.
        let passed_on = [
            r#"{"controller":"s\"t"}"#,
            r#"{"contr\u006fller":"s"}"#,
            r#"{"a":1}"#,
            r#"{"a":true}"#,
            r#"{"a":[]}"#,
            r#"{"body":{}}"#,
            r#"{"volatile":null}"#,
            r#"{"a":"b",}"#,
            r#"{"a":"b""#,
            r#"{"a" "b"}"#,
            r#"{"a":"b"} x"#,
            r#"{"a":nul}"#,
            r#"{"a":nullx}"#,
            "{\"a\":\"b\u{1}\"}",
            r#"["a"]"#,
            "",
            "{",
        ];
        for text in passed_on {
            assert_eq!(flat_fields(text), None, "{text}");
        }
    }

    #[test]
    fn the_flat_fast_path_never_accepts_what_serde_reads_otherwise() {
        // Random texts of JSON-ish pieces, many of them invalid: whatever the scanner accepts,
        // serde must accept and read the same way.
        const PIECES: [&str; 20] = [
            "{",
            "}",
            "\"",
            ":",
            ",",
            " ",
            "\n",
            "null",
            "nul",
            "\"a\"",
            "\"jwt\"",
            "\"index\"",
            "\"controller\"",
            "\"body\"",
            "1",
            "[",
            "\\",
            "é",
            "\u{1}",
            "\"x\":\"y\"",
        ];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut accepted = 0;
        for _ in 0..50_000 {
            let mut text = String::from("{");
            for _ in 0..next() % 12 {
                text.push_str(PIECES[(next() % PIECES.len() as u64) as usize]);
            }
            if next() % 2 == 0 {
                text.push('}');
            }
            if let Some(fast) = flat_fields(&text) {
                accepted += 1;
                assert_eq!(Some(fast), serde_fields(&text), "{text:?}");
            }
        }
        // The generator must reach the fast path often enough to mean something.
        assert!(accepted > 500, "only {accepted} texts took the fast path");
    }

    /// The thread's remembered token changes nothing the fast path reads: texts whose `jwt`
    /// is the token, or the token changed anywhere (special bytes included), read as serde
    /// reads them, the memory primed with the token before each.
    #[test]
    fn a_remembered_token_reads_as_serde_does() {
        let token = format!("kauth-{}", "eyJfaWQiOiJiZW5jaCJ9.".repeat(10));
        let around = |jwt: &str| {
            format!(r#"{{"controller":"server","action":"now","jwt":"{jwt}","requestId":"r"}}"#)
        };
        let mut texts = vec![around(&token)];
        for at in [0, 1, 31, 32, 33, 64, 100, token.len() - 1, token.len()] {
            for inserted in ["\u{1}", "\\\"", "\\n", "\"", "é", "x"] {
                let mut jwt = token.clone();
                jwt.insert_str(at, inserted);
                texts.push(around(&jwt));
            }
        }
        texts.push(format!(r#"{{"jwt":"{token}"#));
        texts.push(format!(r#"{{"jwt":"{token}"}} x"#));
        texts.push(format!(r#"{{"jwt":"{token}\""}}"#));
        for text in &texts {
            assert_eq!(flat_fields(&around(&token)), serde_fields(&around(&token)));
            let fast = flat_fields(text);
            if fast.is_some() {
                assert_eq!(fast, serde_fields(text), "{text:?}");
            }
            let parsed = Request::parse_lenient(text).jwt.map(Cow::into_owned);
            let expected = serde_fields(text).and_then(|fields| match fields.jwt {
                Some(Text::String(jwt)) => Some(jwt.into_owned()),
                _ => None,
            });
            assert_eq!(parsed, expected, "{text:?}");
        }
    }

    #[test]
    fn a_request_without_id_gets_a_uuid() {
        let request = Request::parse(r#"{"controller":"server","action":"now"}"#).unwrap();
        assert_eq!(request.request_id.len(), 36);
        let partial = Request::parse(r#"{"controller":"x","requestId":"keep"}"#)
            .unwrap_err()
            .request;
        assert_eq!(partial.request_id, "keep");
        assert_eq!(partial.controller, "x");
    }
}
