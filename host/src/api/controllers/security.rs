//! The `security` controller: the first admin, users, profiles and roles (create, get, update,
//! replace, delete, search), credentials of any user, their rights, tokens and API keys —
//! Kuzzle's arguments, results, errors and HTTP routes (`lib/api/controllers/securityController.ts`).
//!
//! Every write runs on the blocking pool (the store is durable) and then drops the compiled
//! rights ([`crate::security::Security::rights_changed`]).

use serde_json::{json, Map, Value};
use switchyard_plugin_api::errors::{self, KuzzleError};
use switchyard_security::catalog::KuzzleCatalog;
use switchyard_security::error::RepositoryError;
use switchyard_security::model::PROTECTED_IDS;
use switchyard_security::{defaults, Profile, Role, User};
use switchyard_storage::SearchRequest;

use super::auth::{
    check_rights_of, create_api_key_for, create_local, delete_api_key_of, flag, merge_content,
    required_string, revoke_user_tokens, rights_of_profiles, search_api_keys_of, strategy,
    update_local,
};
use crate::api::action::{ActionResult, Args, BlockingContext, Context, Controller, Run};
use crate::api::{Action, Request};
use crate::security::service::kuzzle;
use crate::security::store::INTERNAL_INDEX;
use crate::security::Security;

/// The `security` controller.
pub static CONTROLLER: Controller = Controller {
    name: "security",
    actions: &[
        blocking("checkRights", &[("POST", "/_checkRights/:userId")], check_rights),
        blocking("createApiKey", &[("POST", "/users/:userId/api-keys/_create")], create_api_key),
        blocking("createCredentials", &[("POST", "/credentials/:strategy/:_id/_create")], create_credentials),
        blocking("createFirstAdmin", &[("POST", "/_createFirstAdmin"), ("POST", "/:_id/_createFirstAdmin")], create_first_admin),
        blocking("createOrReplaceProfile", &[("PUT", "/profiles/:_id")], create_or_replace_profile),
        blocking("createOrReplaceRole", &[("PUT", "/roles/:_id")], create_or_replace_role),
        blocking("createProfile", &[("POST", "/profiles/:_id/_create")], create_profile),
        blocking("createRestrictedUser", &[("POST", "/users/_createRestricted"), ("POST", "/users/:_id/_createRestricted")], create_restricted_user),
        blocking("createRole", &[("POST", "/roles/:_id/_create")], create_role),
        blocking("createUser", &[("POST", "/users/_create"), ("POST", "/users/:_id/_create")], create_user),
        blocking("deleteApiKey", &[("DELETE", "/users/:userId/api-keys/:_id")], delete_api_key),
        blocking("deleteCredentials", &[("DELETE", "/credentials/:strategy/:_id")], delete_credentials),
        blocking("deleteProfile", &[("DELETE", "/profiles/:_id")], delete_profile),
        blocking("deleteRole", &[("DELETE", "/roles/:_id")], delete_role),
        blocking("deleteUser", &[("DELETE", "/users/:_id")], delete_user),
        inline("getCredentials", &[("GET", "/credentials/:strategy/:_id")], get_credentials),
        inline("getProfile", &[("GET", "/profiles/:_id")], get_profile),
        inline("getProfileRights", &[("GET", "/profiles/:_id/_rights")], get_profile_rights),
        inline("getRole", &[("GET", "/roles/:_id")], get_role),
        inline("getUser", &[("GET", "/users/:_id")], get_user),
        inline("getUserRights", &[("GET", "/users/:_id/_rights")], get_user_rights),
        inline("hasCredentials", &[("GET", "/credentials/:strategy/:_id/_exists")], has_credentials),
        blocking("replaceUser", &[("PUT", "/users/:_id/_replace")], replace_user),
        blocking("restrictDefaultRights", &[], restrict_default_rights),
        blocking("revokeTokens", &[("DELETE", "/users/:_id/tokens")], revoke_tokens),
        blocking("searchApiKeys", &[("POST", "/users/:userId/api-keys/_search")], search_api_keys),
        blocking("searchProfiles", &[("POST", "/profiles/_search")], search_profiles),
        blocking("searchRoles", &[("POST", "/roles/_search")], search_roles),
        blocking("searchUsers", &[("POST", "/users/_search")], search_users),
        blocking("updateCredentials", &[("PUT", "/credentials/:strategy/:_id/_update")], update_credentials),
        blocking("updateProfile", &[("PUT", "/profiles/:_id/_update")], update_profile),
        blocking("updateRole", &[("PUT", "/roles/:_id/_update")], update_role),
        blocking("updateUser", &[("PUT", "/users/:_id/_update")], update_user),
    ],
};

type Blocking = fn(&BlockingContext<'_>, &mut Request<'_>) -> ActionResult;
type Inline = fn(&Context<'_>, &mut Request<'_>) -> ActionResult;

const fn blocking(
    name: &'static str,
    http: &'static [(&'static str, &'static str)],
    handler: Blocking,
) -> Action {
    Action {
        name,
        http,
        args: Args::NONE,
        run: Run::Blocking(handler),
    }
}

const fn inline(
    name: &'static str,
    http: &'static [(&'static str, &'static str)],
    handler: Inline,
) -> Action {
    Action {
        name,
        http,
        args: Args::NONE,
        run: Run::Inline(handler),
    }
}

fn security<'a>(context: &Context<'a>) -> &'a Security {
    &context.services.security
}

fn repo(error: RepositoryError) -> KuzzleError {
    kuzzle(error.into())
}

fn id(request: &Request<'_>) -> Result<String, KuzzleError> {
    required_string(request, "_id").map(str::to_owned)
}

fn body_object(request: &Request<'_>) -> Result<Map<String, Value>, KuzzleError> {
    match &request.body {
        Some(Value::Object(body)) => Ok(body.clone()),
        _ => Err(errors::API_ASSERT_BODY_REQUIRED.error()),
    }
}

fn load_user(security: &Security, kuid: &str) -> Result<User, KuzzleError> {
    if kuid == "-1" || kuid == "anonymous" {
        return Ok(User::anonymous());
    }
    security
        .repository
        .user(kuid)
        .map_err(repo)?
        .ok_or_else(|| errors::SECURITY_USER_NOT_FOUND.with(&[kuid]))
}

fn stored_user(security: &Security, kuid: &str) -> Result<User, KuzzleError> {
    security
        .repository
        .user(kuid)
        .map_err(repo)?
        .ok_or_else(|| errors::SECURITY_USER_NOT_FOUND.with(&[kuid]))
}

/// Every profile of `user` must exist (`security.user.cannot_hydrate`).
fn check_profiles(security: &Security, user: &User) -> Result<(), KuzzleError> {
    user.validate_profiles().map_err(kuzzle)?;
    for profile in &user.profile_ids {
        if security.repository.profile(profile).map_err(repo)?.is_none() {
            return Err(errors::SECURITY_USER_CANNOT_HYDRATE.with(&[&user.id]));
        }
    }
    Ok(())
}

fn new_kuid() -> String {
    format!("kuid-{}", uuid::Uuid::new_v4())
}

/// `createUser` and friends: `profile_ids` forced when given; the credentials of
/// `body.credentials` created after the user, the user removed again if they fail.
fn create_user_with(
    context: &Context<'_>,
    request: &Request<'_>,
    forced_profiles: Option<Vec<String>>,
) -> Result<User, KuzzleError> {
    let security = security(context);
    let body = body_object(request)?;
    let mut content = match body.get("content") {
        Some(Value::Object(content)) => content.clone(),
        Some(_) => return Err(errors::API_ASSERT_INVALID_TYPE.with(&["body.content", "object"])),
        None => return Err(errors::API_ASSERT_MISSING_ARGUMENT.with(&["body.content"])),
    };
    if let Some(profiles) = forced_profiles {
        if content.contains_key("profileIds") {
            return Err(errors::API_ASSERT_FORBIDDEN_ARGUMENT.with(&["body.content.profileIds"]));
        }
        content.insert("profileIds".into(), json!(profiles));
    }
    let credentials = match body.get("credentials") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(credentials)) => credentials.clone(),
        Some(_) => {
            return Err(errors::API_ASSERT_INVALID_TYPE.with(&["body.credentials", "object"]))
        }
    };
    for name in credentials.keys() {
        if name != "local" {
            return Err(errors::SECURITY_CREDENTIALS_UNKNOWN_STRATEGY.with(&[name]));
        }
    }
    let kuid = request.string_arg("_id").map_or_else(new_kuid, str::to_owned);
    let mut user = User::from_content(&kuid, &Value::Object(content)).map_err(kuzzle)?;
    check_profiles(security, &user)?;
    if let Some(local) = credentials.get("local") {
        super::auth::validate_local(security, &kuid, local, false)?;
        if security.repository.credentials_by_kuid(&kuid).map_err(repo)?.is_some() {
            return Err(errors::PLUGIN_STRATEGY_PRECONDITION_FAILED
                .with(&[&format!("A strategy already exists for user \"{kuid}\".")]));
        }
    }
    user.content.insert(
        "_kuzzle_info".into(),
        json!({
            "author": context.caller.identity.user_id(),
            "createdAt": security.clock.now_ms(),
            "updatedAt": null,
            "updater": null,
        }),
    );
    match security.repository.put_user(&user, true) {
        Ok(()) => {}
        Err(RepositoryError::AlreadyExists { .. }) => {
            return Err(errors::SECURITY_USER_ALREADY_EXISTS.with(&[&kuid]))
        }
        Err(error) => return Err(repo(error)),
    }
    if let Some(local) = credentials.get("local") {
        if let Err(error) = create_local(security, &kuid, local) {
            let _ = security.repository.delete_user(&kuid);
            return Err(error);
        }
    }
    security.rights_changed();
    Ok(user)
}

fn create_user(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    create_user_with(context, request, None).map(|user| user.to_api().into())
}

fn create_restricted_user(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let profiles = security(context).settings.restricted_profile_ids.clone();
    create_user_with(context, request, Some(profiles)).map(|user| user.to_api().into())
}

/// `security:createFirstAdmin`: a user with profile `admin`, once; `reset` applies the
/// standard (restricted) roles and profiles.
fn create_first_admin(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let security = security(context);
    if !security.repository.users_with_profile("admin").map_err(repo)?.is_empty() {
        return Err(errors::API_PROCESS_ADMIN_EXISTS.error());
    }
    let user = create_user_with(context, request, Some(vec!["admin".to_owned()]))?;
    if flag(request, "reset") {
        restrict(security)?;
    }
    Ok(user.to_api().into())
}

/// `restrictDefaultRights`: createOrReplace every standard role, then every standard profile.
fn restrict(security: &Security) -> Result<(), KuzzleError> {
    for role in defaults::standard_roles() {
        security.repository.put_role(&role, false).map_err(repo)?;
    }
    for profile in defaults::standard_profiles() {
        security.repository.put_profile(&profile, false).map_err(repo)?;
    }
    security.rights_changed();
    Ok(())
}

fn restrict_default_rights(context: &BlockingContext<'_>, _request: &mut Request<'_>) -> ActionResult {
    restrict(security(context))?;
    Ok(json!({ "acknowledged": true }).into())
}

fn get_user(context: &Context<'_>, request: &mut Request<'_>) -> ActionResult {
    let kuid = id(request)?;
    Ok(load_user(security(context), &kuid)?.to_api().into())
}

fn get_user_rights(context: &Context<'_>, request: &mut Request<'_>) -> ActionResult {
    let kuid = id(request)?;
    let user = load_user(security(context), &kuid)?;
    rights_of_profiles(security(context), &user.profile_ids).map(Into::into)
}

fn profile_ids_of(value: &Value) -> Result<Vec<String>, KuzzleError> {
    value
        .as_array()
        .and_then(|ids| {
            ids.iter()
                .map(|id| id.as_str().map(str::to_owned))
                .collect::<Option<Vec<String>>>()
        })
        .ok_or_else(|| errors::API_ASSERT_INVALID_TYPE.with(&["body.profileIds", "string[]"]))
}

fn update_user(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let security = security(context);
    let kuid = id(request)?;
    let mut changes = body_object(request)?;
    let mut user = stored_user(security, &kuid)?;
    if let Some(profiles) = changes.remove("profileIds") {
        user.profile_ids = profile_ids_of(&profiles)?;
        check_profiles(security, &user)?;
    }
    merge_content(
        &mut user.content,
        changes,
        context.caller.identity.user_id(),
        security.clock.now_ms(),
    );
    security.repository.put_user(&user, false).map_err(repo)?;
    security.rights_changed();
    Ok(user.to_api().into())
}

fn replace_user(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let security = security(context);
    let kuid = id(request)?;
    let body = body_object(request)?;
    let previous = stored_user(security, &kuid)?;
    let mut user = User::from_content(&kuid, &Value::Object(body)).map_err(|error| {
        let error = kuzzle(error);
        if error.id() == errors::API_ASSERT_MISSING_ARGUMENT.id {
            errors::API_ASSERT_MISSING_ARGUMENT.with(&["body.profileIds"])
        } else {
            error
        }
    })?;
    check_profiles(security, &user)?;
    let created = previous.content.get("_kuzzle_info").cloned();
    user.content.insert(
        "_kuzzle_info".into(),
        json!({
            "author": created.as_ref().and_then(|i| i.get("author")).cloned().unwrap_or(Value::Null),
            "createdAt": created.as_ref().and_then(|i| i.get("createdAt")).cloned().unwrap_or(Value::Null),
            "updatedAt": security.clock.now_ms(),
            "updater": context.caller.identity.user_id(),
        }),
    );
    security.repository.put_user(&user, false).map_err(repo)?;
    security.rights_changed();
    Ok(user.to_api().into())
}

/// `deleteUser`: its credentials, API keys and tokens go with it.
fn delete_user(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let services = context.services;
    let security = &services.security;
    let kuid = id(request)?;
    stored_user(security, &kuid)?;
    security.repository.delete_credentials(&kuid).map_err(repo)?;
    for key in security.repository.api_keys_of_user(&kuid).map_err(repo)? {
        security.tokens.delete_api_key(&kuid, &key.id).map_err(kuzzle)?;
    }
    revoke_user_tokens(services, &kuid, false)?;
    security.repository.delete_user(&kuid).map_err(repo)?;
    security.rights_changed();
    Ok(json!({ "_id": kuid }).into())
}

fn revoke_tokens(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let kuid = id(request)?;
    stored_user(security(context), &kuid)?;
    revoke_user_tokens(context.services, &kuid, true)?;
    Ok(Value::Null.into())
}

/// `from`/`size` arguments and the body of a search over an internal collection.
fn search_internal(
    context: &BlockingContext<'_>,
    request: &Request<'_>,
    collection: &str,
    body: Value,
) -> Result<switchyard_storage::SearchPage, KuzzleError> {
    let number = |key: &str| request.args.get(key).and_then(Value::as_u64).map(|n| n as usize);
    let search = SearchRequest::from_body(&body, number("from"), number("size"))
        .map_err(|error| errors::API_ASSERT_INVALID_ARGUMENT.with(&["body", &error.to_string()]))?;
    context
        .storage()
        .search(INTERNAL_INDEX, collection, &search)
        .map_err(|error| errors::CORE_FATAL_UNEXPECTED_ERROR.with(&[&error.to_string()]))
}

/// `searchUsers`: `{hits:[{_id, _source}], total}`.
fn search_users(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let body = request.body.clone().unwrap_or_else(|| json!({}));
    let page = search_internal(context, request, "users", body)?;
    let hits: Vec<Value> = page
        .hits
        .iter()
        .map(|doc| json!({ "_id": doc.id, "_source": doc.source_with_info() }))
        .collect();
    Ok(json!({ "hits": hits, "total": page.total }).into())
}

/// Every document of an internal collection, for the role and profile searches (few).
fn all_of(
    context: &BlockingContext<'_>,
    request: &Request<'_>,
    collection: &str,
) -> Result<Vec<(String, Value)>, KuzzleError> {
    let _ = request;
    let mut out = Vec::new();
    let mut search = SearchRequest::match_all();
    search.size = 1000;
    loop {
        let page = context
            .storage()
            .search(INTERNAL_INDEX, collection, &search)
            .map_err(|error| errors::CORE_FATAL_UNEXPECTED_ERROR.with(&[&error.to_string()]))?;
        let full = page.hits.len() == search.size;
        out.extend(page.hits.into_iter().map(|doc| (doc.id, doc.source)));
        match page.next_search_after {
            Some(after) if full => search.search_after = Some(after),
            _ => return Ok(out),
        }
    }
}

/// `from` and `size` applied to a list; `{hits, total}`.
fn paged(request: &Request<'_>, hits: Vec<Value>) -> Value {
    let total = hits.len();
    let from = request.args.get("from").and_then(Value::as_u64).unwrap_or(0) as usize;
    let size = request.args.get("size").and_then(Value::as_u64).map_or(usize::MAX, |n| n as usize);
    let hits: Vec<Value> = hits.into_iter().skip(from).take(size).collect();
    json!({ "hits": hits, "total": total })
}

/// `searchRoles`: roles naming one of `body.controllers` (all without it).
fn search_roles(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let wanted: Option<Vec<String>> = request
        .body
        .as_ref()
        .and_then(|b| b.get("controllers"))
        .and_then(Value::as_array)
        .map(|c| c.iter().filter_map(Value::as_str).map(str::to_owned).collect());
    let hits = all_of(context, request, "roles")?
        .into_iter()
        .filter(|(_, source)| match &wanted {
            None => true,
            Some(wanted) => source
                .get("controllers")
                .and_then(Value::as_object)
                .is_some_and(|c| c.keys().any(|k| k == "*" || wanted.contains(k))),
        })
        .map(|(id, source)| json!({ "_id": id, "_source": source }))
        .collect();
    Ok(paged(request, hits).into())
}

/// `searchProfiles`: profiles with a policy on one of `body.roles` (all without it).
fn search_profiles(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let wanted: Option<Vec<String>> = request
        .body
        .as_ref()
        .and_then(|b| b.get("roles"))
        .and_then(Value::as_array)
        .map(|c| c.iter().filter_map(Value::as_str).map(str::to_owned).collect());
    let hits = all_of(context, request, "profiles")?
        .into_iter()
        .filter(|(_, source)| match &wanted {
            None => true,
            Some(wanted) => source
                .get("policies")
                .and_then(Value::as_array)
                .is_some_and(|p| {
                    p.iter().any(|policy| {
                        policy
                            .get("roleId")
                            .and_then(Value::as_str)
                            .is_some_and(|r| wanted.iter().any(|w| w == r))
                    })
                }),
        })
        .map(|(id, source)| json!({ "_id": id, "_source": source }))
        .collect();
    Ok(paged(request, hits).into())
}

// ---- roles ----

fn role_api(role: &Role) -> Value {
    json!({ "_id": role.id, "_source": role.to_source() })
}

fn save_role(
    context: &BlockingContext<'_>,
    request: &Request<'_>,
    role: Role,
    create_only: bool,
) -> ActionResult {
    let security = security(context);
    role.validate_for_save(&KuzzleCatalog, flag(request, "force"))
        .map_err(kuzzle)?;
    match security.repository.put_role(&role, create_only) {
        Ok(()) => {}
        Err(RepositoryError::AlreadyExists { .. }) => {
            return Err(errors::SECURITY_STORAGE_DOCUMENT_ALREADY_EXISTS.error())
        }
        Err(error) => return Err(repo(error)),
    }
    security.rights_changed();
    Ok(role_api(&role).into())
}

fn create_role(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let role_id = id(request)?;
    let body = Value::Object(body_object(request)?);
    let role = Role::from_json(&role_id, &body).map_err(kuzzle)?;
    save_role(context, request, role, true)
}

fn create_or_replace_role(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let role_id = id(request)?;
    let body = Value::Object(body_object(request)?);
    let role = Role::from_json(&role_id, &body).map_err(kuzzle)?;
    save_role(context, request, role, false)
}

fn update_role(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let role_id = id(request)?;
    let changes = body_object(request)?;
    let current = get_role_of(security(context), &role_id)?;
    let mut source = current.to_source();
    for (key, value) in changes {
        source[key] = value;
    }
    let role = Role::from_json(&role_id, &source).map_err(kuzzle)?;
    save_role(context, request, role, false)
}

fn get_role_of(security: &Security, role_id: &str) -> Result<Role, KuzzleError> {
    security
        .repository
        .role(role_id)
        .map_err(repo)?
        .ok_or_else(|| errors::SECURITY_ROLE_NOT_FOUND.with(&[role_id]))
}

fn get_role(context: &Context<'_>, request: &mut Request<'_>) -> ActionResult {
    let role_id = id(request)?;
    Ok(role_api(&get_role_of(security(context), &role_id)?).into())
}

fn delete_role(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let security = security(context);
    let role_id = id(request)?;
    if PROTECTED_IDS.contains(&role_id.as_str()) {
        return Err(errors::SECURITY_ROLE_CANNOT_DELETE.error());
    }
    get_role_of(security, &role_id)?;
    if !security.repository.profiles_with_role(&role_id).map_err(repo)?.is_empty() {
        return Err(errors::SECURITY_ROLE_IN_USE.with(&[&role_id]));
    }
    security.repository.delete_role(&role_id).map_err(repo)?;
    security.rights_changed();
    Ok(json!({ "_id": role_id }).into())
}

// ---- profiles ----

fn profile_api(profile: &Profile) -> Value {
    json!({ "_id": profile.id, "_source": profile.to_source() })
}

fn save_profile(context: &BlockingContext<'_>, profile: Profile, create_only: bool) -> ActionResult {
    let security = security(context);
    profile.validate_for_save().map_err(kuzzle)?;
    for role_id in profile.role_ids() {
        get_role_of(security, role_id)?;
    }
    match security.repository.put_profile(&profile, create_only) {
        Ok(()) => {}
        Err(RepositoryError::AlreadyExists { .. }) => {
            return Err(errors::SECURITY_STORAGE_DOCUMENT_ALREADY_EXISTS.error())
        }
        Err(error) => return Err(repo(error)),
    }
    security.rights_changed();
    Ok(profile_api(&profile).into())
}

fn create_profile(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let profile_id = id(request)?;
    let body = Value::Object(body_object(request)?);
    let profile = Profile::from_json(&profile_id, &body).map_err(kuzzle)?;
    save_profile(context, profile, true)
}

fn create_or_replace_profile(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let profile_id = id(request)?;
    let body = Value::Object(body_object(request)?);
    let profile = Profile::from_json(&profile_id, &body).map_err(kuzzle)?;
    save_profile(context, profile, false)
}

fn get_profile_of(security: &Security, profile_id: &str) -> Result<Profile, KuzzleError> {
    security
        .repository
        .profile(profile_id)
        .map_err(repo)?
        .ok_or_else(|| errors::SECURITY_PROFILE_NOT_FOUND.with(&[profile_id]))
}

fn update_profile(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let profile_id = id(request)?;
    let changes = body_object(request)?;
    let mut source = get_profile_of(security(context), &profile_id)?.to_source();
    for (key, value) in changes {
        source[key] = value;
    }
    let profile = Profile::from_json(&profile_id, &source).map_err(kuzzle)?;
    save_profile(context, profile, false)
}

fn get_profile(context: &Context<'_>, request: &mut Request<'_>) -> ActionResult {
    let profile_id = id(request)?;
    Ok(profile_api(&get_profile_of(security(context), &profile_id)?).into())
}

fn get_profile_rights(context: &Context<'_>, request: &mut Request<'_>) -> ActionResult {
    let profile_id = id(request)?;
    get_profile_of(security(context), &profile_id)?;
    rights_of_profiles(security(context), &[profile_id]).map(Into::into)
}

fn delete_profile(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let security = security(context);
    let profile_id = id(request)?;
    if PROTECTED_IDS.contains(&profile_id.as_str()) {
        return Err(errors::SECURITY_PROFILE_CANNOT_DELETE.error());
    }
    get_profile_of(security, &profile_id)?;
    if !security.repository.users_with_profile(&profile_id).map_err(repo)?.is_empty() {
        return Err(errors::SECURITY_PROFILE_IN_USE.with(&[&profile_id]));
    }
    security.repository.delete_profile(&profile_id).map_err(repo)?;
    security.rights_changed();
    Ok(json!({ "_id": profile_id }).into())
}

// ---- credentials, API keys, rights of another user ----

fn create_credentials(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    strategy(request)?;
    let kuid = id(request)?;
    stored_user(security(context), &kuid)?;
    let body = request.body.clone().unwrap_or(Value::Null);
    create_local(security(context), &kuid, &body)
}

fn update_credentials(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    strategy(request)?;
    let kuid = id(request)?;
    stored_user(security(context), &kuid)?;
    let body = request.body.clone().unwrap_or(Value::Null);
    update_local(security(context), &kuid, &body)
}

fn has_credentials(context: &Context<'_>, request: &mut Request<'_>) -> ActionResult {
    strategy(request)?;
    let kuid = id(request)?;
    let exists = security(context)
        .repository
        .credentials_by_kuid(&kuid)
        .map_err(repo)?
        .is_some();
    Ok(Value::Bool(exists).into())
}

fn get_credentials(context: &Context<'_>, request: &mut Request<'_>) -> ActionResult {
    strategy(request)?;
    let kuid = id(request)?;
    let credentials = security(context)
        .repository
        .credentials_by_kuid(&kuid)
        .map_err(repo)?;
    Ok(credentials.map_or_else(|| json!({}), |c| c.to_api()).into())
}

fn delete_credentials(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    strategy(request)?;
    let kuid = id(request)?;
    if !security(context).repository.delete_credentials(&kuid).map_err(repo)? {
        return Err(errors::PLUGIN_STRATEGY_PRECONDITION_FAILED
            .with(&["A strategy does not exist for this user."]));
    }
    Ok(json!({ "acknowledged": true }).into())
}

fn create_api_key(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let kuid = required_string(request, "userId")?.to_owned();
    stored_user(security(context), &kuid)?;
    create_api_key_for(security(context), request, &kuid, true)
}

fn delete_api_key(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let kuid = required_string(request, "userId")?.to_owned();
    delete_api_key_of(context, request, &kuid)
}

fn search_api_keys(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let kuid = required_string(request, "userId")?.to_owned();
    search_api_keys_of(context, request, &kuid)
}

fn check_rights(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let kuid = required_string(request, "userId")?.to_owned();
    load_user(security(context), &kuid)?;
    check_rights_of(context, request, &kuid)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::api::testing::Harness;

    fn call(harness: &Harness, request: Value) -> Value {
        harness.call(&request.to_string())
    }

    use serde_json::Value;

    fn login(harness: &Harness, username: &str, password: &str) -> String {
        let answer = call(
            harness,
            json!({"controller": "auth", "action": "login", "strategy": "local",
                   "body": {"username": username, "password": password}}),
        );
        assert_eq!(answer["status"], 200, "{answer}");
        answer["result"]["jwt"].as_str().unwrap().to_owned()
    }

    #[test]
    fn a_fresh_install_is_open_until_the_first_admin_resets_the_rights() {
        let harness = Harness::new();
        let publish = json!({"controller": "realtime", "action": "publish", "index": "i",
                             "collection": "c", "body": {}});
        assert_eq!(call(&harness, publish.clone())["status"], 200);

        let admin = call(
            &harness,
            json!({"controller": "security", "action": "createFirstAdmin", "_id": "root",
                   "reset": true,
                   "body": {"content": {"name": "Root"},
                            "credentials": {"local": {"username": "root", "password": "secret"}}}}),
        );
        assert_eq!(admin["status"], 200, "{admin}");
        assert_eq!(admin["result"]["_id"], "root");
        assert_eq!(admin["result"]["_source"]["profileIds"], json!(["admin"]));
        assert_eq!(admin["result"]["_source"]["name"], "Root");

        // Anonymous lost everything but the standard anonymous role.
        let denied = call(&harness, publish.clone());
        assert_eq!(
            denied["error"],
            json!({"message": "Unauthorized: authentication required to execute the action \"realtime:publish\".",
                   "status": 401, "id": "security.rights.unauthorized", "code": 117637121, "props": []})
        );
        let again = call(
            &harness,
            json!({"controller": "security", "action": "createFirstAdmin", "body": {"content": {}}}),
        );
        assert_eq!(again["error"]["id"], "security.rights.unauthorized");

        // Wrong password: Kuzzle's refusal.
        let refused = call(
            &harness,
            json!({"controller": "auth", "action": "login", "strategy": "local",
                   "body": {"username": "root", "password": "nope"}}),
        );
        assert_eq!(refused["status"], 401);
        assert_eq!(refused["error"]["id"], "plugin.strategy.missing_user");
        assert_eq!(refused["error"]["message"], "wrong username or password");

        let jwt = login(&harness, "root", "secret");
        assert!(jwt.starts_with("kauth-"));
        let mut with_jwt = publish.clone();
        with_jwt["jwt"] = json!(jwt);
        assert_eq!(call(&harness, with_jwt)["status"], 200);

        let check = call(
            &harness,
            json!({"controller": "auth", "action": "checkToken", "body": {"token": jwt}}),
        );
        assert_eq!(check["result"]["valid"], true);
        assert_eq!(check["result"]["kuid"], "root");

        let rights = call(&harness, json!({"controller": "auth", "action": "getMyRights", "jwt": jwt}));
        assert_eq!(
            rights["result"],
            json!({"total": 1, "hits": [{"controller": "*", "action": "*", "index": "*",
                                          "collection": "*", "value": "allowed"}]})
        );
        let me = call(&harness, json!({"controller": "auth", "action": "getCurrentUser", "jwt": jwt}));
        assert_eq!(me["result"]["_id"], "root");
        assert_eq!(me["result"]["strategies"], json!(["local"]));

        // A restricted user: allowed what the default role grants, 403 for the rest.
        let created = call(
            &harness,
            json!({"controller": "security", "action": "createRestrictedUser", "_id": "bob", "jwt": jwt,
                   "body": {"content": {}, "credentials": {"local": {"username": "bob", "password": "pw"}}}}),
        );
        assert_eq!(created["result"]["_source"]["profileIds"], json!(["default"]), "{created}");
        let bob = login(&harness, "bob", "pw");
        let mut as_bob = publish.clone();
        as_bob["jwt"] = json!(bob);
        assert_eq!(
            call(&harness, as_bob)["error"],
            json!({"message": "Insufficient permissions to execute the action \"realtime:publish\" (User \"bob\").",
                   "status": 403, "id": "security.rights.forbidden", "code": 117637122, "props": []})
        );
        let bob_me = call(&harness, json!({"controller": "auth", "action": "getCurrentUser", "jwt": bob}));
        assert_eq!(bob_me["result"]["_id"], "bob");

        // A role change applies at once: the compiled rights are dropped.
        let granted = call(
            &harness,
            json!({"controller": "security", "action": "updateRole", "_id": "default", "jwt": jwt,
                   "body": {"controllers": {"realtime": {"actions": {"publish": true}},
                                            "auth": {"actions": {"*": true}}}}}),
        );
        assert_eq!(granted["status"], 200, "{granted}");
        let mut as_bob = publish.clone();
        as_bob["jwt"] = json!(bob);
        assert_eq!(call(&harness, as_bob)["status"], 200);

        // Logout revokes the token.
        let out = call(&harness, json!({"controller": "auth", "action": "logout", "jwt": bob}));
        assert_eq!(out["result"], json!({"acknowledged": true}));
        let check = call(
            &harness,
            json!({"controller": "auth", "action": "checkToken", "body": {"token": bob}}),
        );
        assert_eq!(check["result"], json!({"valid": false, "state": "Invalid token."}));
        let mut as_bob = publish;
        as_bob["jwt"] = json!(bob);
        assert_eq!(call(&harness, as_bob)["error"]["id"], "security.token.invalid");
    }

    #[test]
    fn users_profiles_and_roles_are_validated_and_protected() {
        let harness = Harness::new();
        let role = call(
            &harness,
            json!({"controller": "security", "action": "createOrReplaceRole", "_id": "reader",
                   "body": {"controllers": {"document": {"actions": {"get": true}}}}}),
        );
        assert_eq!(
            role["result"],
            json!({"_id": "reader", "_source": {"controllers": {"document": {"actions": {"get": true}}}}})
        );
        let bad = call(
            &harness,
            json!({"controller": "security", "action": "createRole", "_id": "x",
                   "body": {"controllers": {"document": {"actions": {"nope": true}}}}}),
        );
        assert_eq!(bad["error"]["id"], "security.role.unknown_action");
        let profile = call(
            &harness,
            json!({"controller": "security", "action": "createProfile", "_id": "readers",
                   "body": {"policies": [{"roleId": "reader", "restrictedTo": [{"index": "i"}]}]}}),
        );
        assert_eq!(profile["status"], 200, "{profile}");
        let missing = call(
            &harness,
            json!({"controller": "security", "action": "createProfile", "_id": "p2",
                   "body": {"policies": [{"roleId": "ghost"}]}}),
        );
        assert_eq!(missing["error"]["id"], "security.role.not_found");
        let user = call(
            &harness,
            json!({"controller": "security", "action": "createUser", "_id": "u",
                   "body": {"content": {"profileIds": ["readers"]}}}),
        );
        assert_eq!(user["status"], 200, "{user}");
        let twice = call(
            &harness,
            json!({"controller": "security", "action": "createUser", "_id": "u",
                   "body": {"content": {"profileIds": ["readers"]}}}),
        );
        assert_eq!(twice["error"]["id"], "security.user.already_exists");
        assert_eq!(
            call(&harness, json!({"controller": "security", "action": "deleteRole", "_id": "reader"}))
                ["error"]["id"],
            "security.role.in_use"
        );
        assert_eq!(
            call(&harness, json!({"controller": "security", "action": "deleteProfile", "_id": "admin"}))
                ["error"]["id"],
            "security.profile.cannot_delete"
        );
        let rights = call(
            &harness,
            json!({"controller": "security", "action": "getUserRights", "_id": "u"}),
        );
        assert_eq!(
            rights["result"]["hits"],
            json!([{"controller": "document", "action": "get", "index": "i", "collection": "*",
                    "value": "allowed"}])
        );
        let found = call(
            &harness,
            json!({"controller": "security", "action": "searchUsers",
                   "body": {"query": {"term": {"profileIds": "readers"}}}}),
        );
        assert_eq!(found["result"]["total"], 1, "{found}");
        assert_eq!(found["result"]["hits"][0]["_id"], "u");
        let deleted = call(&harness, json!({"controller": "security", "action": "deleteUser", "_id": "u"}));
        assert_eq!(deleted["result"], json!({"_id": "u"}));
        assert_eq!(
            call(&harness, json!({"controller": "security", "action": "getUser", "_id": "u"}))["error"]
                ["id"],
            "security.user.not_found"
        );
    }
}
