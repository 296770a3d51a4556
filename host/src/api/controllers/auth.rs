//! The `auth` controller: log in with the `local` strategy, tokens (check, refresh, log out),
//! the caller's user, rights, credentials and API keys — Kuzzle's arguments, results, errors and
//! HTTP routes (`lib/api/controllers/authController.ts`).
//!
//! Actions that hash a password or write go to the blocking pool; the others read memory.

use serde_json::{json, Map, Value};
use switchyard_plugin_api::errors::{self, KuzzleError};
use switchyard_plugin_api::ConnectionId;
use switchyard_security::password::LocalCredentials;
use switchyard_security::rights::flatten_rights;
use switchyard_security::secret::{sha256_hex, Secret};
use switchyard_security::token::{ExpiresIn, TokenKind};
use switchyard_security::{RightsRequest, User};
use switchyard_storage::SearchRequest;

use crate::api::action::{ActionResult, Args, BlockingContext, Context, Controller, Run};
use crate::api::{Action, Request};
use crate::security::service::kuzzle;
use crate::security::store::INTERNAL_INDEX;
use crate::security::Security;
use crate::services::Services;

/// The `auth` controller.
pub static CONTROLLER: Controller = Controller {
    name: "auth",
    actions: &[
        action("checkRights", &[("POST", "/_checkRights")], Run::Inline(check_rights)),
        action("checkToken", &[("POST", "/_checkToken")], Run::Inline(check_token)),
        action(
            "createApiKey",
            &[("POST", "/users/_me/api-keys/_create")],
            Run::Blocking(create_api_key),
        ),
        action(
            "createToken",
            &[("POST", "/_createToken")],
            Run::Blocking(create_token),
        ),
        action(
            "createMyCredentials",
            &[("POST", "/credentials/:strategy/_me/_create")],
            Run::Blocking(create_my_credentials),
        ),
        action(
            "credentialsExist",
            &[("GET", "/credentials/:strategy/_me/_exists")],
            Run::Inline(credentials_exist),
        ),
        action(
            "deleteApiKey",
            &[("DELETE", "/users/_me/api-keys/:_id")],
            Run::Blocking(delete_api_key),
        ),
        action(
            "deleteMyCredentials",
            &[("DELETE", "/credentials/:strategy/_me")],
            Run::Blocking(delete_my_credentials),
        ),
        action(
            "getCurrentUser",
            &[("GET", "/users/_me")],
            Run::Inline(get_current_user),
        ),
        action(
            "getMyCredentials",
            &[("GET", "/credentials/:strategy/_me")],
            Run::Inline(get_my_credentials),
        ),
        action(
            "getMyRights",
            &[("GET", "/users/_me/_rights")],
            Run::Inline(get_my_rights),
        ),
        action("getStrategies", &[("GET", "/strategies")], Run::Inline(get_strategies)),
        action(
            "login",
            &[("POST", "/_login/:strategy"), ("GET", "/_login/:strategy")],
            Run::Blocking(login),
        ),
        action("logout", &[("POST", "/_logout")], Run::Blocking(logout)),
        action(
            "refreshToken",
            &[("POST", "/_refreshToken")],
            Run::Blocking(refresh_token),
        ),
        action(
            "searchApiKeys",
            &[("POST", "/users/_me/api-keys/_search")],
            Run::Blocking(search_api_keys),
        ),
        action("updateMyCredentials", &[("PUT", "/credentials/:strategy/_me/_update")], Run::Blocking(update_my_credentials)),
        action("updateSelf", &[("PUT", "/users/_me")], Run::Blocking(update_self)),
        action(
            "validateMyCredentials",
            &[("POST", "/credentials/:strategy/_me/_validate")],
            Run::Inline(validate_my_credentials),
        ),
    ],
};

const fn action(
    name: &'static str,
    http: &'static [(&'static str, &'static str)],
    run: Run,
) -> Action {
    Action {
        name,
        http,
        args: Args::NONE,
        run,
    }
}

fn security<'a>(context: &Context<'a>) -> &'a Security {
    &context.services.security
}

/// `assertIsAuthenticated`: anonymous callers get `security.rights.unauthorized`.
pub(super) fn assert_authenticated(
    context: &Context<'_>,
    request: &Request<'_>,
) -> Result<(), KuzzleError> {
    if context.caller.identity.is_anonymous() {
        return Err(errors::SECURITY_RIGHTS_UNAUTHORIZED.with(&[&request.controller, &request.action]));
    }
    Ok(())
}

/// The `strategy` argument: required, and `local` is the only one.
pub(super) fn strategy(request: &Request<'_>) -> Result<(), KuzzleError> {
    match request.args.get("strategy") {
        None => Err(errors::API_ASSERT_MISSING_ARGUMENT.with(&["strategy"])),
        Some(Value::String(name)) if name == "local" => Ok(()),
        Some(Value::String(name)) => {
            Err(errors::SECURITY_CREDENTIALS_UNKNOWN_STRATEGY.with(&[name]))
        }
        Some(_) => Err(errors::API_ASSERT_INVALID_TYPE.with(&["strategy", "string"])),
    }
}

/// The `expiresIn` argument, when given.
pub(super) fn expires_in(request: &Request<'_>) -> Option<ExpiresIn> {
    request.args.get("expiresIn").map(ExpiresIn::parse)
}

/// A required string argument.
pub(super) fn required_string<'r>(request: &'r Request<'_>, key: &str) -> Result<&'r str, KuzzleError> {
    match request.args.get(key) {
        None => Err(errors::API_ASSERT_MISSING_ARGUMENT.with(&[key])),
        Some(Value::String(value)) => Ok(value),
        Some(_) => Err(errors::API_ASSERT_INVALID_TYPE.with(&[key, "string"])),
    }
}

/// A boolean argument (`true`, or `"true"` from a query string).
pub(super) fn flag(request: &Request<'_>, key: &str) -> bool {
    matches!(request.args.get(key), Some(Value::Bool(true)))
        || request.string_arg(key) == Some("true")
}

/// Revocation: the connections still linked to revoked tokens lose their subscriptions,
/// without a notification (Kuzzle's `core:realtime:connection:remove`).
pub(super) fn drop_subscriptions(services: &Services, connections: Vec<ConnectionId>) {
    services.drop_subscriptions(connections);
}

/// Revokes every token of `kuid` (API keys too unless `keep_api_keys`), dropping the
/// subscriptions of their connections.
pub(super) fn revoke_user_tokens(
    services: &Services,
    kuid: &str,
    keep_api_keys: bool,
) -> Result<(), KuzzleError> {
    let security = &services.security;
    for fingerprint in security.tokens.revoke_user(kuid, keep_api_keys).map_err(kuzzle)? {
        drop_subscriptions(services, security.revoke_links(&fingerprint));
    }
    Ok(())
}

/// `{_id, _source, strategies}` of `getCurrentUser`.
fn current_user(security: &Security, user: &User) -> Value {
    let mut out = user.to_api();
    let has_local = !user.is_anonymous()
        && security
            .repository
            .credentials_by_kuid(&user.id)
            .ok()
            .flatten()
            .is_some();
    out["strategies"] = if has_local { json!(["local"]) } else { json!([]) };
    out
}

/// The caller's user (`-1` is the in-memory anonymous user).
fn caller_user(context: &Context<'_>) -> Result<User, KuzzleError> {
    let kuid = context.caller.identity.user_id();
    if context.caller.identity.is_anonymous() {
        return Ok(User::anonymous());
    }
    security(context)
        .repository
        .user(kuid)
        .map_err(|error| kuzzle(error.into()))?
        .ok_or_else(|| errors::SECURITY_USER_NOT_FOUND.with(&[kuid]))
}

/// `{hits, total}`: the flattened rights of `profile_ids`.
pub(super) fn rights_of_profiles(security: &Security, profile_ids: &[String]) -> Result<Value, KuzzleError> {
    let repository = &security.repository;
    let mut profiles = Vec::new();
    for id in profile_ids {
        if let Some(profile) = repository.profile(id).map_err(|e| kuzzle(e.into()))? {
            profiles.push(profile);
        }
    }
    let mut roles = Vec::new();
    for profile in &profiles {
        for role_id in profile.role_ids() {
            if let Some(role) = repository.role(role_id).map_err(|e| kuzzle(e.into()))? {
                roles.push(role);
            }
        }
    }
    let refs: Vec<_> = profiles.iter().collect();
    let hits: Vec<Value> = flatten_rights(&refs, |id| roles.iter().find(|r| r.id == id))
        .iter()
        .map(|item| item.to_json())
        .collect();
    Ok(json!({ "total": hits.len(), "hits": hits }))
}

/// `auth:checkToken`: `{valid:true, kuid, expiresAt}`, or `{valid:false, state}` for a bad token.
fn check_token(context: &Context<'_>, request: &mut Request<'_>) -> ActionResult {
    let token = request
        .body
        .as_ref()
        .and_then(|body| body.get("token"))
        .filter(|token| !token.is_null());
    let token = match token {
        None => None,
        Some(Value::String(token)) if token.is_empty() => None,
        Some(Value::String(token)) => Some(token.as_str()),
        Some(_) => return Err(errors::API_ASSERT_INVALID_TYPE.with(&["body.token", "string"])),
    };
    let Some(token) = token else {
        return Ok(json!({ "valid": true, "kuid": "-1", "expiresAt": Value::Null }).into());
    };
    match security(context).tokens.verify(Some(token)) {
        Ok(switchyard_security::token::Identity::Token(record)) => Ok(json!({
            "valid": true,
            "kuid": record.user_id,
            "expiresAt": record.expires_at,
        })
        .into()),
        Ok(switchyard_security::token::Identity::Anonymous) => {
            Ok(json!({ "valid": true, "kuid": "-1", "expiresAt": Value::Null }).into())
        }
        Err(error) => {
            let error = kuzzle(error);
            if error.status() == 401 {
                Ok(json!({ "valid": false, "state": error.message }).into())
            } else {
                Err(error)
            }
        }
    }
}

/// `auth:login`: `{_id, jwt, expiresAt, ttl}`; the token is linked to the connection.
///
/// A username or source address locked out by `[security.loginLockout]` is refused before the
/// password is hashed; a wrong password counts against both.
fn login(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    strategy(request)?;
    let security = security(context);
    let body = request.body.clone().unwrap_or(Value::Null);
    let (username, _) = local_fields(&body);
    let address = context
        .services
        .connections
        .peer_address(context.caller.connection)
        .unwrap_or_default();
    if let Some(username) = username {
        security.check_login_lockout(username, &address)?;
    }
    let verified = security.local.verify(&body).map_err(kuzzle);
    if let Some(username) = username {
        // "Missing credentials" (no password) checked nothing: only a checked password counts.
        if local_fields(&body).1.is_some() {
            security.record_login(username, &address, verified.is_ok());
        }
    }
    let kuid = verified?;
    let issued = security
        .tokens
        .issue(&kuid, expires_in(request), Default::default())
        .map_err(kuzzle)?;
    if security.is_notifiable(context.caller.protocol) {
        security.link(context.caller.connection, &issued.record);
    }
    Ok(issued.to_login_result().into())
}

/// `auth:createToken` (Kuzzle 2.20+): a token for the caller, `{token, expiresAt, ttl,
/// singleUse}`; never infinite; `singleUse` ones are consumed by their first request. Not
/// linked to the connection (the caller hands it to someone else). As in Kuzzle
/// (`authController.createToken` asserts nothing, `generateToken` takes any stored id), the
/// anonymous user, where its role allows the action (a fresh, open install; the standard
/// `anonymous` role does not), gets a token for kuid `-1`: requests with it run as the
/// anonymous user, with its rights.
fn create_token(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let expires_in = expires_in(request);
    if matches!(expires_in, Some(ExpiresIn::Never)) {
        return Err(errors::SECURITY_TOKEN_INVALID_EXPIRATION.with(&["expiresIn cannot be infinite"]));
    }
    let options = switchyard_security::token::IssueOptions {
        single_use: flag(request, "singleUse"),
        ..Default::default()
    };
    let issued = security(context)
        .tokens
        .issue(context.caller.identity.user_id(), expires_in, options)
        .map_err(kuzzle)?;
    Ok(issued.to_create_token_result().into())
}

/// `auth:logout`: unlinks this connection, then revokes the token (all of the user's with
/// `global`; never an API key).
fn logout(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    assert_authenticated(context, request)?;
    let services = context.services;
    let security = &services.security;
    security.unlink(context.caller.connection);
    if flag(request, "global") {
        revoke_user_tokens(services, context.caller.identity.user_id(), true)?;
    } else if let Some(token) = &context.caller.identity.token {
        let fingerprint = sha256_hex(token.as_bytes());
        if let Some(record) = security.repository.token(&fingerprint).map_err(|e| kuzzle(e.into()))? {
            if record.kind != TokenKind::ApiKey {
                security.tokens.revoke(&fingerprint).map_err(kuzzle)?;
                drop_subscriptions(services, security.revoke_links(&fingerprint));
            }
        }
    }
    Ok(json!({ "acknowledged": true }).into())
}

/// `auth:refreshToken`: a new token, the old one valid for the grace period.
fn refresh_token(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    assert_authenticated(context, request)?;
    let security = security(context);
    let record = context
        .caller
        .identity
        .token
        .as_deref()
        .and_then(|token| security.record_of(token))
        .ok_or_else(|| errors::SECURITY_TOKEN_INVALID.error())?;
    let issued = security
        .tokens
        .refresh(&record, expires_in(request))
        .map_err(kuzzle)?;
    security.refresh_links(&record.fingerprint, &issued.record);
    Ok(issued.to_login_result().into())
}

/// `auth:getCurrentUser`.
fn get_current_user(context: &Context<'_>, _request: &mut Request<'_>) -> ActionResult {
    let user = caller_user(context)?;
    Ok(current_user(security(context), &user).into())
}

/// `auth:getMyRights`: `{hits, total}`.
fn get_my_rights(context: &Context<'_>, _request: &mut Request<'_>) -> ActionResult {
    let user = caller_user(context)?;
    rights_of_profiles(security(context), &user.profile_ids).map(Into::into)
}

/// `auth:getStrategies`.
fn get_strategies(_context: &Context<'_>, _request: &mut Request<'_>) -> ActionResult {
    Ok(json!(["local"]).into())
}

/// `auth:checkRights`: whether the caller may run the request in the body.
fn check_rights(context: &Context<'_>, request: &mut Request<'_>) -> ActionResult {
    let kuid = context.caller.identity.user_id().to_owned();
    check_rights_of(context, request, &kuid)
}

/// `{allowed}` for `kuid` and the request in the body.
pub(super) fn check_rights_of(
    context: &Context<'_>,
    request: &Request<'_>,
    kuid: &str,
) -> ActionResult {
    let controller = request.body_string("controller")?;
    let action = request.body_string("action")?;
    let body = request.body.as_ref().expect("body_string checked it");
    let text = |key: &str| body.get(key).and_then(Value::as_str);
    let rights = security(context).rights_of(kuid)?;
    let allowed = rights.is_allowed(&RightsRequest {
        controller,
        action,
        index: text("index"),
        collection: text("collection"),
        targets: None,
    });
    Ok(json!({ "allowed": allowed }).into())
}

/// `body.username` and `body.password` of `local` credentials, as given.
fn local_fields(body: &Value) -> (Option<&str>, Option<&str>) {
    let field = |name: &str| body.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
    (field("username"), field("password"))
}

fn precondition(message: String) -> KuzzleError {
    errors::PLUGIN_STRATEGY_PRECONDITION_FAILED.with(&[&message])
}

/// The `local` strategy's `validate`: `update` accepts partial credentials.
pub(super) fn validate_local(
    security: &Security,
    kuid: &str,
    body: &Value,
    update: bool,
) -> Result<(), KuzzleError> {
    if !body.is_object() {
        return Err(errors::API_ASSERT_BODY_REQUIRED.error());
    }
    if body.get("kuid").is_some() {
        return Err(errors::SECURITY_CREDENTIALS_REJECTED.with(&["kuid cannot be specified in credentials."]));
    }
    let (username, password) = local_fields(body);
    if !update && (username.is_none() || password.is_none()) {
        return Err(errors::SECURITY_CREDENTIALS_REJECTED.with(&["Username and password are required."]));
    }
    if let Some(username) = username {
        let owner = security
            .repository
            .credentials_by_username(username)
            .map_err(|e| kuzzle(e.into()))?;
        if owner.is_some_and(|owner| owner.kuid != kuid) {
            return Err(precondition(format!("Login \"{username}\" is already used.")));
        }
    }
    Ok(())
}

/// Creates `kuid`'s `local` credentials (hashes: blocking pool).
pub(super) fn create_local(security: &Security, kuid: &str, body: &Value) -> ActionResult {
    validate_local(security, kuid, body, false)?;
    if security
        .repository
        .credentials_by_kuid(kuid)
        .map_err(|e| kuzzle(e.into()))?
        .is_some()
    {
        return Err(precondition(format!("A strategy already exists for user \"{kuid}\".")));
    }
    let (Some(username), Some(password)) = local_fields(body) else {
        unreachable!("validate_local checked both");
    };
    let stored = security
        .local
        .store(kuid, username, &Secret::new(password))
        .map_err(kuzzle)?;
    Ok(stored.to_api().into())
}

/// Updates `kuid`'s `local` credentials (a new password is hashed: blocking pool).
pub(super) fn update_local(security: &Security, kuid: &str, body: &Value) -> ActionResult {
    validate_local(security, kuid, body, true)?;
    let Some(current) = security
        .repository
        .credentials_by_kuid(kuid)
        .map_err(|e| kuzzle(e.into()))?
    else {
        return Err(precondition("A strategy does not exist for this user.".into()));
    };
    let (username, password) = local_fields(body);
    let username = username.unwrap_or(&current.username).to_owned();
    let stored = match password {
        Some(password) => security
            .local
            .store(kuid, &username, &Secret::new(password))
            .map_err(kuzzle)?,
        None => {
            let credentials = LocalCredentials {
                username,
                ..current
            };
            security
                .repository
                .put_credentials(&credentials)
                .map_err(|e| kuzzle(e.into()))?;
            credentials
        }
    };
    Ok(stored.to_api().into())
}

fn create_my_credentials(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    assert_authenticated(context, request)?;
    strategy(request)?;
    let body = request.body.clone().unwrap_or(Value::Null);
    create_local(security(context), context.caller.identity.user_id(), &body)
}

fn update_my_credentials(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    assert_authenticated(context, request)?;
    strategy(request)?;
    let body = request.body.clone().unwrap_or(Value::Null);
    update_local(security(context), context.caller.identity.user_id(), &body)
}

fn validate_my_credentials(context: &Context<'_>, request: &mut Request<'_>) -> ActionResult {
    assert_authenticated(context, request)?;
    strategy(request)?;
    let body = request.body.clone().unwrap_or(Value::Null);
    validate_local(security(context), context.caller.identity.user_id(), &body, false)?;
    Ok(Value::Bool(true).into())
}

fn credentials_exist(context: &Context<'_>, request: &mut Request<'_>) -> ActionResult {
    assert_authenticated(context, request)?;
    strategy(request)?;
    let exists = security(context)
        .repository
        .credentials_by_kuid(context.caller.identity.user_id())
        .map_err(|e| kuzzle(e.into()))?
        .is_some();
    Ok(Value::Bool(exists).into())
}

fn get_my_credentials(context: &Context<'_>, request: &mut Request<'_>) -> ActionResult {
    assert_authenticated(context, request)?;
    strategy(request)?;
    let credentials = security(context)
        .repository
        .credentials_by_kuid(context.caller.identity.user_id())
        .map_err(|e| kuzzle(e.into()))?;
    Ok(credentials.map_or_else(|| json!({}), |c| c.to_api()).into())
}

fn delete_my_credentials(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    assert_authenticated(context, request)?;
    strategy(request)?;
    let kuid = context.caller.identity.user_id();
    let deleted = security(context)
        .repository
        .delete_credentials(kuid)
        .map_err(|e| kuzzle(e.into()))?;
    if !deleted {
        return Err(precondition("A strategy does not exist for this user.".into()));
    }
    Ok(json!({ "acknowledged": true }).into())
}

/// `auth:updateSelf`: merges the body into the caller's content.
fn update_self(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    assert_authenticated(context, request)?;
    let Some(Value::Object(body)) = request.body.clone() else {
        return Err(errors::API_ASSERT_BODY_REQUIRED.error());
    };
    for forbidden in ["profileIds", "_id"] {
        if body.contains_key(forbidden) {
            return Err(errors::API_ASSERT_FORBIDDEN_ARGUMENT.with(&[&format!("body.{forbidden}")]));
        }
    }
    let mut user = caller_user(context)?;
    let kuid = user.id.clone();
    merge_content(&mut user.content, body, &kuid, security(context).clock.now_ms());
    security(context)
        .repository
        .put_user(&user, false)
        .map_err(|e| kuzzle(e.into()))?;
    Ok(user.to_api().into())
}

/// Shallow-merges `changes` into a user's content and stamps `_kuzzle_info.updatedAt/updater`.
pub(super) fn merge_content(content: &mut Map<String, Value>, changes: Map<String, Value>, updater: &str, now_ms: i64) {
    for (key, value) in changes {
        if key != "_kuzzle_info" {
            content.insert(key, value);
        }
    }
    let info = content
        .entry("_kuzzle_info")
        .or_insert_with(|| json!({"author": null, "createdAt": null}));
    if let Value::Object(info) = info {
        info.insert("updatedAt".into(), json!(now_ms));
        info.insert("updater".into(), json!(updater));
    }
}

/// Creates an API key for `kuid` (`auth:createApiKey`, `security:createApiKey`).
pub(super) fn create_api_key_for(
    security: &Security,
    request: &Request<'_>,
    kuid: &str,
    bypass_max_ttl: bool,
) -> ActionResult {
    let description = request.body_string("description")?;
    let expires_in = expires_in(request);
    let (key, token) = security
        .tokens
        .create_api_key(kuid, description, expires_in, request.string_arg("_id"), bypass_max_ttl)
        .map_err(kuzzle)?;
    Ok(key.to_api(Some(&token)).into())
}

fn create_api_key(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    assert_authenticated(context, request)?;
    let kuid = context.caller.identity.user_id().to_owned();
    create_api_key_for(security(context), request, &kuid, false)
}

/// Deletes `kuid`'s key `_id`, which expires its token (its connections lose their
/// subscriptions).
pub(super) fn delete_api_key_of(context: &Context<'_>, request: &Request<'_>, kuid: &str) -> ActionResult {
    let id = required_string(request, "_id")?;
    let services = context.services;
    let key = services
        .security
        .tokens
        .delete_api_key(kuid, id)
        .map_err(kuzzle)?
        .ok_or_else(|| errors::SECURITY_STORAGE_NOT_FOUND.with(&[id, INTERNAL_INDEX, "api-keys"]))?;
    drop_subscriptions(services, services.security.revoke_links(&key.fingerprint));
    Ok(json!({ "_id": id }).into())
}

fn delete_api_key(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    assert_authenticated(context, request)?;
    let kuid = context.caller.identity.user_id().to_owned();
    delete_api_key_of(context, request, &kuid)
}

/// `searchApiKeys` of `kuid`: the body's query (Elasticsearch's subset), limited to the user's
/// keys; `{hits:[{_id, _source}], total}`, never the tokens.
pub(super) fn search_api_keys_of(
    context: &BlockingContext<'_>,
    request: &Request<'_>,
    kuid: &str,
) -> ActionResult {
    let body = request.body.clone().unwrap_or_else(|| json!({}));
    let query = body.get("query").cloned().unwrap_or_else(|| json!({"match_all": {}}));
    let mut wrapped = body.as_object().cloned().unwrap_or_default();
    wrapped.insert(
        "query".into(),
        json!({"bool": {"filter": [{"term": {"userId": kuid}}, query]}}),
    );
    let number = |key: &str| request.args.get(key).and_then(Value::as_u64).map(|n| n as usize);
    let search = SearchRequest::from_body(&Value::Object(wrapped), number("from"), number("size"))
        .map_err(|error| errors::API_ASSERT_INVALID_ARGUMENT.with(&["body", &error.to_string()]))?;
    let page = context
        .storage()
        .search(INTERNAL_INDEX, "api-keys", &search)
        .map_err(|error| errors::CORE_FATAL_UNEXPECTED_ERROR.with(&[&error.to_string()]))?;
    let hits: Vec<Value> = page
        .hits
        .into_iter()
        .map(|doc| {
            let mut source = doc.source;
            let id = source
                .as_object_mut()
                .and_then(|s| s.remove("id"))
                .unwrap_or(Value::Null);
            json!({ "_id": id, "_source": source })
        })
        .collect();
    Ok(json!({ "hits": hits, "total": page.total }).into())
}

fn search_api_keys(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    assert_authenticated(context, request)?;
    let kuid = context.caller.identity.user_id().to_owned();
    search_api_keys_of(context, request, &kuid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::testing::Harness;

    #[test]
    fn no_token_is_the_anonymous_user_and_a_bad_token_is_invalid() {
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
            json!({"valid": false, "state": "Invalid token."})
        );
    }
}

#[cfg(test)]
mod expiry_tests {
    use serde_json::json;
    use switchyard_security::clock::ManualClock;
    use switchyard_storage::EmbeddedStorage;

    use std::sync::Arc;

    use crate::api::testing::Harness;
    use crate::services::Services;
    use crate::sessions::expire_due;
    use crate::api::Router;
    use crate::config::Config;
    use crate::security::Security;
    use crate::services::security_settings;

    #[test]
    fn an_expired_token_drops_its_connections_subscriptions_once() {
        let config = Config::parse(
            std::path::Path::new("test.toml"),
            "[server]\n[security.argon2]\nmemoryKib = 64\niterations = 1\nparallelism = 1\n",
        )
        .unwrap();
        let storage: Arc<dyn switchyard_storage::Storage> =
            Arc::new(EmbeddedStorage::in_memory().unwrap());
        let clock = ManualClock::at(1_000_000);
        let security = Security::open(
            Arc::clone(&storage),
            security_settings(&config),
            Arc::new(clock.clone()),
        )
        .unwrap();
        let services = Services::with_security(Arc::new(config), storage, Arc::new(security));
        let connection = services.connections.declare(0, &["127.0.0.1"], "");
        let harness = Harness {
            services: Arc::new(services),
            router: Arc::new(Router::standard()),
            connection,
        };
        let call = |request: serde_json::Value| harness.call(&request.to_string());
        assert_eq!(
            call(
                json!({"controller": "security", "action": "createUser", "_id": "u",
                        "body": {"content": {"profileIds": ["default"]},
                                 "credentials": {"local": {"username": "u", "password": "p"}}}})
            )["status"],
            200
        );
        let login = call(
            json!({"controller": "auth", "action": "login", "strategy": "local",
                                "expiresIn": "3s", "body": {"username": "u", "password": "p"}}),
        );
        assert_eq!(login["result"]["expiresAt"], 1_003_000, "{login}");
        assert_eq!(login["result"]["ttl"], 3_000);
        let jwt = login["result"]["jwt"].as_str().unwrap().to_owned();
        let subscribed = call(
            json!({"controller": "realtime", "action": "subscribe", "jwt": jwt,
                                     "index": "i", "collection": "c", "body": {}}),
        );
        let room = subscribed["result"]["roomId"].as_str().unwrap().to_owned();
        let count = || harness.services.realtime.count(&room).unwrap_or(0);
        assert_eq!(count(), 1);

        clock.advance(2_999);
        assert_eq!(expire_due(&harness.services), 0);
        assert_eq!(count(), 1);
        clock.advance(1);
        assert_eq!(expire_due(&harness.services), 1);
        assert_eq!(count(), 0);
        assert_eq!(expire_due(&harness.services), 0, "told once");
        let late = call(json!({"controller": "server", "action": "now", "jwt": jwt}));
        assert_eq!(late["error"]["id"], "security.token.expired");
    }
}

#[cfg(test)]
mod abuse_tests;

#[cfg(test)]
mod create_token_tests;

#[cfg(test)]
mod admitted_tests;

#[cfg(test)]
mod gate_cost {
    use std::time::Instant;

    use serde_json::json;

    use crate::api::dispatch::{dispatch, Dispatched};
    use crate::api::testing::Harness;
    use crate::security::OpenGate;

    /// ns per `server:now` through `dispatch` (parse, route, gate, run, answer).
    fn per_request(harness: &Harness, request: &str) -> f64 {
        let rounds = 200_000;
        let mut best = f64::MAX;
        for _ in 0..5 {
            let begun = Instant::now();
            for _ in 0..rounds {
                match dispatch(&harness.services, &harness.router, harness.connection, request) {
                    Dispatched::Answered(answer) => assert!(answer.content.len() > 10),
                    Dispatched::Blocking(_) | Dispatched::Paced(_) => unreachable!(),
                }
            }
            best = best.min(begun.elapsed().as_nanos() as f64 / rounds as f64);
        }
        best
    }

    /// `cargo test -p switchyard --release --lib gate_cost -- --ignored --nocapture`: what the
    /// gate adds to `server:now` dispatched in memory (no network: the strictest ratio).
    #[test]
    #[ignore = "a measurement, run in release"]
    fn what_the_gate_costs_per_request() {
        let harness = Harness::new();
        let created = harness.call(
            &json!({"controller": "security", "action": "createUser", "_id": "u",
                    "body": {"content": {"profileIds": ["default"]},
                             "credentials": {"local": {"username": "u", "password": "p"}}}})
            .to_string(),
        );
        assert_eq!(created["status"], 200);
        let login = harness.call(
            r#"{"controller":"auth","action":"login","strategy":"local","body":{"username":"u","password":"p"}}"#,
        );
        let jwt = login["result"]["jwt"].as_str().unwrap().to_owned();
        let anonymous = r#"{"controller":"server","action":"now","requestId":"r"}"#;
        let with_jwt =
            format!(r#"{{"controller":"server","action":"now","requestId":"r","jwt":"{jwt}"}}"#);
        let gate_anonymous = per_request(&harness, anonymous);
        let gate_token = per_request(&harness, &with_jwt);
        let mut open = Harness::new();
        std::sync::Arc::get_mut(&mut open.services).unwrap().gate = Box::new(OpenGate);
        let open_anonymous = per_request(&open, anonymous);
        let open_token = per_request(&open, &with_jwt);
        println!(
            "server:now via dispatch, ns/request: open gate {open_anonymous:.0} (anonymous) / \
             {open_token:.0} (with jwt); security gate {gate_anonymous:.0} (anonymous) / \
             {gate_token:.0} (authenticated)"
        );

        // The same with a rate limit on both profiles, too high to refuse: every request is
        // counted (Kuzzle's standard profiles have one: anonymous 200/s, default 10/s).
        for profile in ["default", "anonymous"] {
            let limited = harness.call(
                &json!({"controller": "security", "action": "updateProfile", "_id": profile,
                        "body": {"rateLimit": 1_000_000_000}})
                .to_string(),
            );
            assert_eq!(limited["status"], 200, "{limited}");
        }
        let limited_anonymous = per_request(&harness, anonymous);
        let limited_token = per_request(&harness, &with_jwt);
        println!(
            "with a rateLimit on the profiles: {limited_anonymous:.0} (anonymous) / \
             {limited_token:.0} (authenticated)"
        );
    }
}
