//! Users, profiles and roles as Kuzzle stores them, parsed from their JSON bodies with Kuzzle's
//! validation: the same checks in the same order, so the same bad body gets the same error id and
//! message (`lib/model/security/{role,profile}.ts`, `lib/core/security/roleRepository.js`).

use serde_json::{Map, Value};
use switchyard_plugin_api::errors;

use crate::catalog::ApiCatalog;
use crate::error::Result;

/// The roles and profiles that can never be deleted.
pub const PROTECTED_IDS: [&str; 3] = ["anonymous", "default", "admin"];

/// The anonymous user's kuid.
pub const ANONYMOUS_KUID: &str = "-1";

/// The actions of one controller in a role: `action → allowed`, in the body's order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ControllerRights {
    /// `(action or "*", allowed)`.
    pub actions: Vec<(String, bool)>,
}

impl ControllerRights {
    /// The value of `action` itself, if the role names it.
    pub fn action(&self, action: &str) -> Option<bool> {
        self.actions
            .iter()
            .find(|(name, _)| name == action)
            .map(|(_, allowed)| *allowed)
    }
}

/// A role: which controllers and actions it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// The role's id.
    pub id: String,
    /// `(controller or "*", actions)`, in the body's order (`getMyRights` lists them so).
    pub controllers: Vec<(String, ControllerRights)>,
}

impl Role {
    /// A role granting `(controller, action, allowed)` triples, for tests and defaults.
    pub fn from_triples(id: &str, triples: &[(&str, &str, bool)]) -> Role {
        let mut controllers: Vec<(String, ControllerRights)> = Vec::new();
        for (controller, action, allowed) in triples {
            let at = match controllers.iter().position(|(name, _)| name == controller) {
                Some(at) => at,
                None => {
                    controllers.push(((*controller).to_owned(), ControllerRights::default()));
                    controllers.len() - 1
                }
            };
            controllers[at]
                .1
                .actions
                .push(((*action).to_owned(), *allowed));
        }
        Role {
            id: id.to_owned(),
            controllers,
        }
    }

    /// Parses and validates a role body `{controllers:{…}}` as `Role.validateDefinition`.
    pub fn from_json(id: &str, body: &Value) -> Result<Role> {
        let controllers = match body.get("controllers") {
            None | Some(Value::Null) => {
                return Err(missing_argument(&format!("{id}.controllers")));
            }
            Some(Value::Object(controllers)) => controllers,
            Some(_) => return Err(invalid_type(&format!("{id}.controllers"), "object")),
        };
        if controllers.is_empty() {
            return Err(empty_argument(&format!("{id}.controllers")));
        }
        let mut parsed = Vec::with_capacity(controllers.len());
        for (name, controller) in controllers {
            parsed.push((name.clone(), parse_controller_rights(name, controller)?));
        }
        Ok(Role {
            id: id.to_owned(),
            controllers: parsed,
        })
    }

    /// The role body, `{controllers:{<c>:{actions:{<a>:bool}}}}`.
    pub fn to_source(&self) -> Value {
        let mut controllers = Map::new();
        for (name, rights) in &self.controllers {
            let actions: Map<String, Value> = rights
                .actions
                .iter()
                .map(|(a, v)| (a.clone(), Value::Bool(*v)))
                .collect();
            let mut entry = Map::new();
            entry.insert("actions".into(), Value::Object(actions));
            controllers.insert(name.clone(), Value::Object(entry));
        }
        let mut source = Map::new();
        source.insert("controllers".into(), Value::Object(controllers));
        Value::Object(source)
    }

    /// The rights of `controller` itself, if the role names it.
    pub fn controller(&self, controller: &str) -> Option<&ControllerRights> {
        self.controllers
            .iter()
            .find(|(name, _)| name == controller)
            .map(|(_, rights)| rights)
    }

    /// `Role.canLogIn`: `auth` or `*` grants `login` or `*`.
    pub fn can_log_in(&self) -> bool {
        ["auth", "*"]
            .iter()
            .filter_map(|c| self.controller(c))
            .any(|rights| {
                ["login", "*"]
                    .iter()
                    .any(|action| rights.action(action) == Some(true))
            })
    }

    /// The checks `roleRepository.validateAndSaveRole` makes before a write: the anonymous role
    /// keeps `auth:login`; native controllers only name their actions (`*` only `*`); plugin
    /// controllers must exist unless `force`.
    pub fn validate_for_save(&self, catalog: &dyn ApiCatalog, force: bool) -> Result<()> {
        if self.id == "anonymous" && !self.can_log_in() {
            return Err(errors::SECURITY_ROLE_LOGIN_REQUIRED.error().into());
        }
        for (controller, rights) in &self.controllers {
            if controller == "*" {
                if let Some((action, _)) = rights.actions.iter().find(|(a, _)| a != "*") {
                    // Kuzzle passes three arguments to a four-placeholder message: the last
                    // `%s` stays as is.
                    return Err(errors::SECURITY_ROLE_UNKNOWN_ACTION
                        .with(&[&self.id, action, "*"])
                        .into());
                }
            } else if catalog.is_native_controller(controller) {
                if let Some((action, _)) = rights
                    .actions
                    .iter()
                    .find(|(a, _)| a != "*" && !catalog.is_native_action(controller, a))
                {
                    // The fourth argument is `didYouMean`, empty outside development mode.
                    return Err(errors::SECURITY_ROLE_UNKNOWN_ACTION
                        .with(&[&self.id, action, controller, ""])
                        .into());
                }
            } else if !catalog.is_plugin_controller(controller) {
                if !force {
                    return Err(errors::SECURITY_ROLE_UNKNOWN_CONTROLLER
                        .with(&[&self.id, controller, ""])
                        .into());
                }
            } else if !force {
                if let Some((action, _)) = rights
                    .actions
                    .iter()
                    .find(|(a, _)| a != "*" && !catalog.is_plugin_action(controller, a))
                {
                    return Err(errors::SECURITY_ROLE_UNKNOWN_ACTION
                        .with(&[&self.id, action, controller, ""])
                        .into());
                }
            }
        }
        Ok(())
    }
}

fn parse_controller_rights(name: &str, controller: &Value) -> Result<ControllerRights> {
    let Value::Object(controller) = controller else {
        return Err(invalid_type(name, "object"));
    };
    if controller.is_empty() {
        return Err(empty_argument(name));
    }
    let actions = match controller.get("actions") {
        None => return Err(missing_argument(name)),
        Some(Value::Object(actions)) => actions,
        Some(_) => return Err(invalid_type(&format!("{name}.actions"), "object")),
    };
    if actions.is_empty() {
        return Err(empty_argument(&format!("{name}.actions")));
    }
    let mut parsed = Vec::with_capacity(actions.len());
    for (action, allowed) in actions {
        let Value::Bool(allowed) = allowed else {
            return Err(invalid_type(&format!("{name}.actions.{action}"), "boolean"));
        };
        parsed.push((action.clone(), *allowed));
    }
    Ok(ControllerRights { actions: parsed })
}

/// One `restrictedTo` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restriction {
    /// The index.
    pub index: String,
    /// The collections; `None` (or empty) means all of the index's.
    pub collections: Option<Vec<String>>,
}

/// One policy of a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The role this policy applies.
    pub role_id: String,
    /// Where it applies; `None` means everywhere.
    pub restricted_to: Option<Vec<Restriction>>,
}

/// A profile: policies and a per-user request rate limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The profile's id.
    pub id: String,
    /// The policies, in order.
    pub policies: Vec<Policy>,
    /// Requests per second per user; 0 is unlimited.
    pub rate_limit: u64,
}

impl Profile {
    /// A profile with one unrestricted policy per role, for tests and defaults.
    pub fn with_roles(id: &str, role_ids: &[&str], rate_limit: u64) -> Profile {
        Profile {
            id: id.to_owned(),
            policies: role_ids
                .iter()
                .map(|role| Policy {
                    role_id: (*role).to_owned(),
                    restricted_to: None,
                })
                .collect(),
            rate_limit,
        }
    }

    /// Parses and validates `{policies, rateLimit?}` as `Profile.validateDefinition` (without
    /// `strict`, which needs the document store: the host checks index existence).
    pub fn from_json(id: &str, body: &Value) -> Result<Profile> {
        let rate_limit = parse_rate_limit(body.get("rateLimit"))?;
        let policies = match body.get("policies") {
            None => return Err(missing_argument(&format!("{id}.policies"))),
            Some(value) if !js_truthy(value) => {
                return Err(missing_argument(&format!("{id}.policies")));
            }
            Some(Value::Array(policies)) => policies,
            Some(_) => return Err(invalid_type(&format!("{id}.policies"), "object[]")),
        };
        if policies.is_empty() {
            return Err(empty_argument(&format!("{id}.policies")));
        }
        let mut parsed = Vec::with_capacity(policies.len());
        for (i, policy) in policies.iter().enumerate() {
            parsed.push(parse_policy(id, i, policy)?);
        }
        Ok(Profile {
            id: id.to_owned(),
            policies: parsed,
            rate_limit,
        })
    }

    /// The profile body, `{policies:[…], rateLimit}`.
    pub fn to_source(&self) -> Value {
        let policies: Vec<Value> = self
            .policies
            .iter()
            .map(|policy| {
                let mut out = Map::new();
                out.insert("roleId".into(), Value::String(policy.role_id.clone()));
                if let Some(restrictions) = &policy.restricted_to {
                    let list = restrictions
                        .iter()
                        .map(|r| {
                            let mut entry = Map::new();
                            entry.insert("index".into(), Value::String(r.index.clone()));
                            if let Some(collections) = &r.collections {
                                entry.insert(
                                    "collections".into(),
                                    collections.iter().cloned().map(Value::String).collect(),
                                );
                            }
                            Value::Object(entry)
                        })
                        .collect();
                    out.insert("restrictedTo".into(), Value::Array(list));
                }
                Value::Object(out)
            })
            .collect();
        let mut source = Map::new();
        source.insert("policies".into(), Value::Array(policies));
        source.insert("rateLimit".into(), Value::from(self.rate_limit));
        Value::Object(source)
    }

    /// The role ids of the policies, in order.
    pub fn role_ids(&self) -> impl Iterator<Item = &str> {
        self.policies.iter().map(|policy| policy.role_id.as_str())
    }

    /// The check `profileRepository.validateAndSaveProfile` adds: the anonymous profile keeps
    /// the anonymous role.
    pub fn validate_for_save(&self) -> Result<()> {
        if self.id == "anonymous" && !self.role_ids().any(|role| role == "anonymous") {
            return Err(errors::SECURITY_PROFILE_MISSING_ANONYMOUS_ROLE
                .error()
                .into());
        }
        Ok(())
    }
}

fn parse_rate_limit(value: Option<&Value>) -> Result<u64> {
    let number = match value {
        None | Some(Value::Null) => return Ok(0),
        Some(Value::Number(number)) => number,
        Some(_) => return Err(invalid_type("rateLimit", "integer")),
    };
    let integer = if let Some(n) = number.as_i64() {
        n
    } else if let Some(n) = number.as_u64() {
        return Ok(n);
    } else {
        // `Number.isInteger(10.0)` is true: JSON `10.0` is an integer to Kuzzle.
        let float = number.as_f64().unwrap_or(f64::NAN);
        if float.fract() != 0.0 || !float.is_finite() || float.abs() > 9.007_199_254_740_991e15 {
            return Err(invalid_type("rateLimit", "integer"));
        }
        float as i64
    };
    u64::try_from(integer).map_err(|_| {
        errors::API_ASSERT_INVALID_ARGUMENT
            .with(&["rateLimit", "positive integer, or zero"])
            .into()
    })
}

fn parse_policy(id: &str, i: usize, policy: &Value) -> Result<Policy> {
    let Value::Object(members) = policy else {
        // `policy.roleId` of a non-object is undefined.
        return Err(missing_argument(&format!("{id}.policies[{i}].roleId")));
    };
    let role_id = match members.get("roleId") {
        Some(value) if js_truthy(value) => match value {
            Value::String(role_id) => role_id.clone(),
            // Kuzzle would store a number and never find its role; we refuse it here.
            _ => {
                return Err(invalid_type(
                    &format!("{id}.policies[{i}].roleId"),
                    "string",
                ))
            }
        },
        _ => return Err(missing_argument(&format!("{id}.policies[{i}].roleId"))),
    };
    for member in members.keys() {
        if member != "roleId" && member != "restrictedTo" {
            return Err(errors::API_ASSERT_UNEXPECTED_ARGUMENT
                .with(&[
                    &format!("{id}.policies[{i}].{member}"),
                    r#""roleId", "restrictedTo""#,
                ])
                .into());
        }
    }
    let restricted_to = match members.get("restrictedTo") {
        Some(value) if js_truthy(value) => {
            let Value::Array(restrictions) = value else {
                return Err(invalid_type(
                    &format!("{id}.policies[{i}].restrictedTo"),
                    "object[]",
                ));
            };
            let mut parsed = Vec::with_capacity(restrictions.len());
            for (j, restriction) in restrictions.iter().enumerate() {
                parsed.push(parse_restriction(id, i, j, restriction)?);
            }
            Some(parsed)
        }
        _ => None,
    };
    Ok(Policy {
        role_id,
        restricted_to,
    })
}

fn parse_restriction(id: &str, i: usize, j: usize, restriction: &Value) -> Result<Restriction> {
    let Value::Object(members) = restriction else {
        // Kuzzle interpolates the restriction itself, not its position (`restrictedTo[foo]`).
        return Err(invalid_type(
            &format!(
                "{id}.policies[{i}].restrictedTo[{}]",
                js_string(restriction)
            ),
            "object",
        ));
    };
    let path = format!("{id}.policies[{i}].restrictedTo[{j}]");
    let index = match members.get("index") {
        None | Some(Value::Null) => return Err(missing_argument(&format!("{path}.index"))),
        Some(Value::String(index)) => index.clone(),
        // Kuzzle would keep a non-string index and never match it; we refuse it here.
        Some(_) => return Err(invalid_type(&format!("{path}.index"), "string")),
    };
    let collections = match members.get("collections") {
        None | Some(Value::Null) => None,
        Some(Value::Array(collections)) => {
            let mut names = Vec::with_capacity(collections.len());
            for collection in collections {
                let Value::String(name) = collection else {
                    return Err(invalid_type(&format!("{path}.collections"), "string[]"));
                };
                names.push(name.clone());
            }
            Some(names)
        }
        Some(_) => return Err(invalid_type(&format!("{path}.collections"), "string[]")),
    };
    for member in members.keys() {
        if member != "index" && member != "collections" {
            return Err(errors::API_ASSERT_UNEXPECTED_ARGUMENT
                .with(&[&format!("{path}.{member}"), r#""index", "collections""#])
                .into());
        }
    }
    Ok(Restriction { index, collections })
}

/// A user: its kuid, profiles and custom content (everything else of its document, including
/// `_kuzzle_info`). Credentials live with their strategy, not here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The kuid.
    pub id: String,
    /// The profiles, in order; never empty for a stored user.
    pub profile_ids: Vec<String>,
    /// Every other field of the user document.
    pub content: Map<String, Value>,
}

impl User {
    /// The in-memory anonymous user, `{_id:"-1", name:"Anonymous", profileIds:["anonymous"]}`.
    pub fn anonymous() -> User {
        let mut content = Map::new();
        content.insert("name".into(), Value::String("Anonymous".into()));
        User {
            id: ANONYMOUS_KUID.into(),
            profile_ids: vec!["anonymous".into()],
            content,
        }
    }

    /// Whether this is the anonymous user.
    pub fn is_anonymous(&self) -> bool {
        self.id == ANONYMOUS_KUID
    }

    /// Builds a user from `body.content` of `security:createUser`: `profileIds` is required and
    /// must be a non-empty array of strings; the rest is custom content.
    pub fn from_content(id: &str, content: &Value) -> Result<User> {
        let Value::Object(content) = content else {
            return Err(invalid_type("body.content", "object"));
        };
        let profile_ids = match content.get("profileIds") {
            None | Some(Value::Null) => {
                return Err(missing_argument("body.content.profileIds"));
            }
            Some(Value::Array(ids)) => {
                let mut out = Vec::with_capacity(ids.len());
                for profile in ids {
                    let Value::String(profile) = profile else {
                        return Err(invalid_type("body.content.profileIds", "string[]"));
                    };
                    out.push(profile.clone());
                }
                out
            }
            Some(_) => return Err(invalid_type("body.content.profileIds", "string[]")),
        };
        let mut rest = content.clone();
        rest.remove("profileIds");
        let user = User {
            id: id.to_owned(),
            profile_ids,
            content: rest,
        };
        user.validate_profiles()?;
        Ok(user)
    }

    /// `{_id, _source:{profileIds, …content}}`, as the API serialises a user.
    pub fn to_api(&self) -> Value {
        let mut source = Map::new();
        source.insert(
            "profileIds".into(),
            self.profile_ids
                .iter()
                .cloned()
                .map(Value::String)
                .collect(),
        );
        for (key, value) in &self.content {
            source.insert(key.clone(), value.clone());
        }
        let mut out = Map::new();
        out.insert("_id".into(), Value::String(self.id.clone()));
        out.insert("_source".into(), Value::Object(source));
        Value::Object(out)
    }

    /// A user needs at least one profile (`security.user.no_profile`), and the anonymous user
    /// keeps the anonymous one.
    pub fn validate_profiles(&self) -> Result<()> {
        if self.profile_ids.is_empty() {
            return Err(errors::SECURITY_USER_NO_PROFILE.with(&[&self.id]).into());
        }
        if self.is_anonymous() && !self.profile_ids.iter().any(|p| p == "anonymous") {
            return Err(errors::SECURITY_USER_ANONYMOUS_PROFILE_REQUIRED
                .error()
                .into());
        }
        Ok(())
    }
}

/// JavaScript truthiness of a JSON value.
pub(crate) fn js_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// `${value}` in JavaScript, for the few messages Kuzzle builds that way.
pub(crate) fn js_string(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::String(s) => s.clone(),
        Value::Object(_) => "[object Object]".into(),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                if item.is_null() {
                    String::new()
                } else {
                    js_string(item)
                }
            })
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

fn missing_argument(path: &str) -> crate::error::SecurityError {
    errors::API_ASSERT_MISSING_ARGUMENT.with(&[path]).into()
}

fn invalid_type(path: &str, expected: &str) -> crate::error::SecurityError {
    errors::API_ASSERT_INVALID_TYPE
        .with(&[path, expected])
        .into()
}

fn empty_argument(path: &str) -> crate::error::SecurityError {
    errors::API_ASSERT_EMPTY_ARGUMENT.with(&[path]).into()
}
