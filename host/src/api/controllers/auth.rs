//! The `auth` controller. Switchyard has no users yet: every client is anonymous.

use serde_json::{json, Value};

use crate::api::action::{ActionResult, Args, Context, Controller, Run};
use crate::api::{Action, Request};

/// The `auth` controller.
pub static CONTROLLER: Controller = Controller {
    name: "auth",
    actions: &[Action {
        name: "checkToken",
        http: &[("POST", "/_checkToken")],
        args: Args::NONE,
        run: Run::Inline(check_token),
    }],
};

/// `auth:checkToken`: no token (or an empty one) is the anonymous user, as Kuzzle answers;
/// any other token is invalid, since this server issues none.
fn check_token(_context: &Context<'_>, request: &mut Request<'_>) -> ActionResult {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::testing::Harness;

    #[test]
    fn no_token_is_the_anonymous_user_and_any_token_is_invalid() {
        let harness = Harness::new();
        for request in [
            r#"{"controller":"auth","action":"checkToken"}"#,
            r#"{"controller":"auth","action":"checkToken","body":{"token":""}}"#,
        ] {
            assert_eq!(
                harness.call(request)["result"],
                json!({"valid": true, "kuid": "-1", "expiresAt": null})
            );
        }
        assert_eq!(
            harness.call(r#"{"controller":"auth","action":"checkToken","body":{"token":"kauth-x"}}"#)
                ["result"],
            json!({"valid": false, "state": "Invalid token"})
        );
    }
}
