//! A Kuzzle API request, parsed and type-checked as Kuzzle's `RequestInput` does.
//!
//! `controller`, `action`, `requestId`, `jwt`, `volatile`, `body`, `index` and `collection` are
//! pulled out; every other key (including `_id`, `scope`, `users` and unknown ones the SDK adds,
//! such as `verb` or `cookieAuth`) stays in `args`. A `null` value counts as absent.

use serde_json::{Map, Value};
use switchyard_plugin_api::errors::{self, KuzzleError};

/// A parsed request.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The client's `requestId`, or a generated UUID.
    pub request_id: String,
    /// Controller name (empty when the request had none: only in error answers).
    pub controller: String,
    /// Action name (likewise).
    pub action: String,
    /// `index`, when given.
    pub index: Option<String>,
    /// `collection`, when given.
    pub collection: Option<String>,
    /// The JWT, when given.
    pub jwt: Option<String>,
    /// `volatile` (an object), when given.
    pub volatile: Option<Value>,
    /// `body` (an object), when given.
    pub body: Option<Value>,
    /// Every other key.
    pub args: Map<String, Value>,
}

/// A request that failed its checks: what could be read of it, and why it failed.
#[derive(Debug)]
pub struct Rejected {
    /// The request as far as it was read (for `requestId`, `controller`… in the answer).
    pub request: Request,
    /// Kuzzle's error.
    pub error: KuzzleError,
}

impl Request {
    /// Parses and checks a request. On error, also returns what could be read of it, so the
    /// error response still echoes `requestId`, `controller`, `action`…
    pub fn parse(text: &str) -> Result<Request, Box<Rejected>> {
        let object = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => object,
            Ok(_) | Err(_) => {
                return Err(Box::new(Rejected {
                    request: Request::with_generated_id(),
                    error: errors::API_ASSERT_INVALID_ARGUMENT.with(&["request", "a JSON object"]),
                }))
            }
        };
        Request::from_object(object)
    }

    /// What can be read of a request without failing: used to answer refusals.
    pub fn parse_lenient(text: &str) -> Request {
        match Request::parse(text) {
            Ok(request) => request,
            Err(rejected) => rejected.request,
        }
    }

    fn with_generated_id() -> Request {
        Request {
            request_id: uuid::Uuid::new_v4().to_string(),
            ..Request::default()
        }
    }

    fn from_object(mut object: Map<String, Value>) -> Result<Request, Box<Rejected>> {
        // A UUID costs a `getrandom` call: draw one only for requests without an id.
        let mut request = match object.get("requestId") {
            Some(Value::String(_)) => Request::default(),
            _ => Request::with_generated_id(),
        };
        let mut errors_found: Vec<KuzzleError> = Vec::new();
        let mut fail = |error: KuzzleError| errors_found.push(error);

        match object.remove("requestId") {
            None | Some(Value::Null) => {}
            Some(Value::String(id)) => request.request_id = id,
            Some(_) => fail(errors::API_ASSERT_INVALID_TYPE.with(&["requestId", "string"])),
        }
        for (key, slot) in [
            ("controller", &mut request.controller),
            ("action", &mut request.action),
        ] {
            match object.remove(key) {
                None | Some(Value::Null) => {}
                Some(Value::String(value)) => *slot = value,
                Some(_) => fail(errors::API_ASSERT_INVALID_TYPE.with(&[key, "string"])),
            }
        }
        for (key, slot) in [
            ("index", &mut request.index),
            ("collection", &mut request.collection),
            ("jwt", &mut request.jwt),
        ] {
            match object.remove(key) {
                None | Some(Value::Null) => {}
                Some(Value::String(value)) => *slot = Some(value),
                Some(_) => fail(errors::API_ASSERT_INVALID_TYPE.with(&[key, "string"])),
            }
        }
        for (key, slot) in [
            ("volatile", &mut request.volatile),
            ("body", &mut request.body),
        ] {
            match object.remove(key) {
                None | Some(Value::Null) => {}
                Some(value @ Value::Object(_)) => *slot = Some(value),
                Some(_) => fail(errors::API_ASSERT_INVALID_TYPE.with(&[key, "object"])),
            }
        }
        object.retain(|_, value| !value.is_null());
        request.args = object;

        if errors_found.is_empty() {
            if request.controller.is_empty() {
                errors_found.push(errors::API_ASSERT_MISSING_ARGUMENT.with(&["controller"]));
            } else if request.action.is_empty() {
                errors_found.push(errors::API_ASSERT_MISSING_ARGUMENT.with(&["action"]));
            }
        }
        match errors_found.into_iter().next() {
            None => Ok(request),
            Some(error) => Err(Box::new(Rejected { request, error })),
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
        assert_eq!(
            (request.controller.as_str(), request.action.as_str()),
            ("server", "now")
        );
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
