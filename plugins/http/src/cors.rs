//! CORS: which origins may call, and the `Access-Control-*` headers every answer carries.
//!
//! As Kuzzle: every answer carries `Access-Control-Allow-Methods` and `-Headers`; an allowed
//! request `Origin` is echoed in `Access-Control-Allow-Origin` with `Vary: Origin` (never `*`,
//! so the answer stays valid for credentialed requests). Unlike Kuzzle, a refused origin is not
//! echoed: the browser then blocks the answer, and a non-preflight request is refused with
//! `api.process.unauthorized_origin` (Kuzzle refuses it the same way, in its funnel).

use hyper::header::{HeaderMap, HeaderValue};

/// One `accessControlAllowOrigin` entry.
#[derive(Debug, Clone)]
pub enum OriginRule {
    /// `*`: every origin.
    Any,
    /// An origin compared byte for byte (`https://app.example`).
    Exact(String),
    /// With `accessControlAllowOriginUseRegExp`: a regular expression searched in the origin
    /// (as JavaScript's `RegExp.test`, so anchor it with `^…$` to match the whole origin).
    Pattern(regex::Regex),
}

/// The CORS policy of one instance.
#[derive(Debug, Clone)]
pub struct Cors {
    /// Allowed origins; any match allows.
    rules: Vec<OriginRule>,
    /// True when a rule is `*`: skips matching on every request.
    any: bool,
    /// `Access-Control-Allow-Methods`, validated once.
    allow_methods: HeaderValue,
    /// `Access-Control-Allow-Headers`, validated once.
    allow_headers: HeaderValue,
}

impl Cors {
    /// A policy; `Err` names the key whose value is not a valid header value.
    pub fn new(
        rules: Vec<OriginRule>,
        allow_methods: &str,
        allow_headers: &str,
    ) -> Result<Cors, &'static str> {
        let any = rules.iter().any(|rule| matches!(rule, OriginRule::Any));
        Ok(Cors {
            rules,
            any,
            allow_methods: HeaderValue::from_str(allow_methods)
                .map_err(|_| "accessControlAllowMethods")?,
            allow_headers: HeaderValue::from_str(allow_headers)
                .map_err(|_| "accessControlAllowHeaders")?,
        })
    }

    /// True when `origin` may call.
    pub fn allows(&self, origin: &str) -> bool {
        self.any
            || self.rules.iter().any(|rule| match rule {
                OriginRule::Any => true,
                OriginRule::Exact(allowed) => allowed == origin,
                OriginRule::Pattern(pattern) => pattern.is_match(origin),
            })
    }

    /// `Access-Control-Allow-Methods` as configured.
    pub fn allow_methods(&self) -> &str {
        self.allow_methods.to_str().unwrap_or_default()
    }

    /// `Access-Control-Allow-Headers` as configured.
    pub fn allow_headers(&self) -> &str {
        self.allow_headers.to_str().unwrap_or_default()
    }

    /// Adds the CORS headers of an answer to a request from `origin` (if it sent one).
    pub fn apply(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        headers.insert(
            hyper::header::ACCESS_CONTROL_ALLOW_HEADERS,
            self.allow_headers.clone(),
        );
        headers.insert(
            hyper::header::ACCESS_CONTROL_ALLOW_METHODS,
            self.allow_methods.clone(),
        );
        if let Some(origin) = origin {
            // The answer depends on the origin either way: caches must key on it.
            headers.insert(hyper::header::VARY, HeaderValue::from_static("Origin"));
            if origin.to_str().is_ok_and(|text| self.allows(text)) {
                headers.insert(hyper::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rules: Vec<OriginRule>) -> Cors {
        Cors::new(rules, "GET", "Content-Type").unwrap()
    }

    #[test]
    fn origins_match_as_configured() {
        let exact = policy(vec![OriginRule::Exact("https://a.example".into())]);
        let pattern = policy(vec![OriginRule::Pattern(
            regex::Regex::new(r"^https://.*\.a\.example$").unwrap(),
        )]);
        let unanchored = policy(vec![OriginRule::Pattern(
            regex::Regex::new(r"a\.example").unwrap(),
        )]);
        let any = policy(vec![OriginRule::Exact("x".into()), OriginRule::Any]);
        let cases: [(&Cors, &str, bool); 9] = [
            (&exact, "https://a.example", true),
            (&exact, "https://a.example.evil", false),
            (&exact, "http://a.example", false),
            (&pattern, "https://app.a.example", true),
            (&pattern, "https://a.example", false),
            (&pattern, "https://app.a.example.evil", false),
            (&unanchored, "https://evil.example/?a.example", true),
            (&any, "null", true),
            (&any, "https://whatever", true),
        ];
        for (cors, origin, expected) in cases {
            assert_eq!(cors.allows(origin), expected, "{origin}");
        }
    }

    #[test]
    fn allowed_origins_are_echoed_with_vary() {
        let cors = policy(vec![OriginRule::Exact("https://a.example".into())]);
        let mut headers = HeaderMap::new();
        cors.apply(
            Some(&HeaderValue::from_static("https://a.example")),
            &mut headers,
        );
        assert_eq!(headers["access-control-allow-origin"], "https://a.example");
        assert_eq!(headers["vary"], "Origin");
        assert_eq!(headers["access-control-allow-methods"], "GET");
        assert_eq!(headers["access-control-allow-headers"], "Content-Type");

        let mut headers = HeaderMap::new();
        cors.apply(
            Some(&HeaderValue::from_static("https://b.example")),
            &mut headers,
        );
        assert!(!headers.contains_key("access-control-allow-origin"));
        assert_eq!(headers["vary"], "Origin");

        let mut headers = HeaderMap::new();
        cors.apply(None, &mut headers);
        assert!(!headers.contains_key("vary"));
        assert!(headers.contains_key("access-control-allow-methods"));
    }
}
