//! The `auth` controller. Switchyard has no users yet: every client is anonymous.

use serde_json::{json, Value};

use super::{ActionResult, Context, Request};

/// `auth:checkToken`: no token (or an empty one) is the anonymous user, as Kuzzle answers;
/// any other token is invalid, since this server issues none.
pub fn check_token(_context: &Context<'_>, request: &mut Request<'_>) -> ActionResult {
    let token = request
        .body
        .as_ref()
        .and_then(|body| body.get("token"))
        .filter(|token| !token.is_null());
    match token {
        None => Ok(json!({ "valid": true, "kuid": "-1", "expiresAt": Value::Null }).into()),
        Some(Value::String(token)) if token.is_empty() => {
            Ok(json!({ "valid": true, "kuid": "-1", "expiresAt": Value::Null }).into())
        }
        Some(_) => Ok(json!({ "valid": false, "state": "Invalid token" }).into()),
    }
}
