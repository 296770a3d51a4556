//! Rights, decided exactly as Kuzzle decides them (`Role.isActionAllowed`,
//! `Role.checkRestrictions`, `Profile.isActionAllowed`, `User.isActionAllowed` and
//! `areTargetsAllowed`), precompiled per user so a check is two hash lookups and, for restricted
//! policies, one or two more.
//!
//! Invariant: [`UserRights::is_allowed`] answers what [`reference::is_allowed`] (a line-by-line
//! transcription of Kuzzle's code over the plain model) answers, for every request; the tests
//! compare both on a wide table.

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;
use serde_json::{Map, Value};
use switchyard_plugin_api::errors::{self, KuzzleError};

use crate::model::{Profile, Role, ANONYMOUS_KUID};

type FastMap<K, V> = HashMap<K, V, RandomState>;

/// An index and its sorted collections (empty: all of them).
type IndexEntry = (Box<str>, Box<[Box<str>]>);

/// What a rights check looks at in a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct RightsRequest<'a> {
    /// `controller`.
    pub controller: &'a str,
    /// `action`.
    pub action: &'a str,
    /// The `index` argument, if the request has one.
    pub index: Option<&'a str>,
    /// The `collection` argument, if the request has one.
    pub collection: Option<&'a str>,
    /// The `targets` argument of multi-target actions; `None` or empty is "no targets".
    pub targets: Option<&'a [Target]>,
}

impl<'a> RightsRequest<'a> {
    /// A request for `controller:action` without index or collection.
    pub fn new(controller: &'a str, action: &'a str) -> Self {
        RightsRequest {
            controller,
            action,
            ..Default::default()
        }
    }

    /// The same request on `index` / `collection`.
    pub fn on(mut self, index: &'a str, collection: &'a str) -> Self {
        self.index = Some(index);
        self.collection = Some(collection);
        self
    }

    /// The same request on `index` only.
    pub fn on_index(mut self, index: &'a str) -> Self {
        self.index = Some(index);
        self
    }

    /// The same request with `targets`.
    pub fn with_targets(mut self, targets: &'a [Target]) -> Self {
        self.targets = Some(targets);
        self
    }
}

/// One entry of a `targets` argument: `{index, collections}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Target {
    /// The index; a target without one is skipped.
    pub index: Option<String>,
    /// The collections; a target without them is skipped.
    pub collections: Option<Vec<String>>,
}

/// A policy's `restrictedTo` as Kuzzle optimises it (`profileRepository.optimizePolicy`):
/// restrictions with an empty index are dropped, entries of the same index are merged (the union
/// of their collections, so an entry without collections merged with one that has some is
/// restricted to those), collections sorted and deduplicated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restrictions {
    /// `(index, sorted collections)`, indexes in first-appearance order.
    entries: Vec<IndexEntry>,
    /// Index → position in `entries`, once there are enough to be worth hashing.
    by_index: FastMap<Box<str>, usize>,
}

impl Restrictions {
    /// `None` when the policy has no `restrictedTo`; `Some` (maybe empty) otherwise.
    pub fn optimize(restricted_to: Option<&[crate::model::Restriction]>) -> Option<Restrictions> {
        let restricted_to = restricted_to?;
        let mut entries: Vec<(Box<str>, Vec<Box<str>>)> = Vec::new();
        for restriction in restricted_to {
            if restriction.index.is_empty() {
                continue;
            }
            let at = match entries
                .iter()
                .position(|(index, _)| **index == *restriction.index)
            {
                Some(at) => at,
                None => {
                    entries.push((restriction.index.as_str().into(), Vec::new()));
                    entries.len() - 1
                }
            };
            if let Some(collections) = &restriction.collections {
                entries[at]
                    .1
                    .extend(collections.iter().map(|c| Box::<str>::from(c.as_str())));
            }
        }
        let entries: Vec<IndexEntry> = entries
            .into_iter()
            .map(|(index, mut collections)| {
                collections.sort_unstable();
                collections.dedup();
                (index, collections.into_boxed_slice())
            })
            .collect();
        let by_index = entries
            .iter()
            .enumerate()
            .map(|(at, (index, _))| (index.clone(), at))
            .collect();
        Some(Restrictions { entries, by_index })
    }

    /// `Role.checkRestrictions` for one policy's restrictions.
    pub fn admits(&self, index: Option<&str>, collection: Option<&str>) -> bool {
        if self.entries.is_empty() {
            return true;
        }
        // `!index`: no index argument, or an empty one, ignores restrictions.
        let Some(index) = index.filter(|index| !index.is_empty()) else {
            return true;
        };
        let Some(&at) = self.by_index.get(index) else {
            return false;
        };
        let collections = &self.entries[at].1;
        if collections.is_empty() {
            return true;
        }
        match collection {
            // Quirk: Kuzzle's binary-search comparator says "equal" for `undefined`, so a
            // request with an index and no collection passes any restriction on that index.
            None => true,
            Some(collection) => collections
                .binary_search_by(|probe| (**probe).cmp(collection))
                .is_ok(),
        }
    }

    /// `(index, collections)` for the flattening of `getMyRights`.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &[Box<str>])> {
        self.entries
            .iter()
            .map(|(index, collections)| (&**index, &**collections))
    }

    /// Whether no restriction survived optimisation (then the policy applies everywhere).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What the policies of a user decide for one `controller:action`, whatever the index.
#[derive(Debug, Clone)]
enum Decision {
    /// No policy's role allows it.
    Deny,
    /// Some allowing policy has no (effective) restriction.
    Anywhere,
    /// The allowing policies' restrictions; allowed where any admits.
    Where(Arc<[Arc<Restrictions>]>),
}

/// A user's rights, compiled from its profiles, their policies and roles.
#[derive(Debug, Clone)]
pub struct UserRights {
    /// The kuid, for the error message.
    kuid: Arc<str>,
    /// Controller named by some role → its actions.
    controllers: FastMap<Box<str>, ActionTable>,
    /// Every other controller (each role's `*` entry).
    other_controllers: ActionTable,
    /// The per-profile `rateLimit` folded as Kuzzle folds it: `None` is unlimited.
    rate_limit: Option<u64>,
}

#[derive(Debug, Clone)]
struct ActionTable {
    /// Action named by some chosen role entry → decision.
    actions: FastMap<Box<str>, Decision>,
    /// Every other action (each chosen entry's `*`).
    other_actions: Decision,
}

/// A policy with its role looked up.
struct ResolvedPolicy<'a> {
    role: &'a Role,
    restrictions: Option<Arc<Restrictions>>,
}

impl UserRights {
    /// Compiles the rights of `kuid`, whose profiles (in its `profileIds` order) are `profiles`;
    /// `role_of` finds a role by id (a policy whose role is missing grants nothing, as a role
    /// that failed to load would not in Kuzzle, which refuses to load such a profile).
    pub fn compile<'r>(
        kuid: &str,
        profiles: &[&Profile],
        role_of: impl Fn(&str) -> Option<&'r Role>,
    ) -> UserRights {
        let mut policies = Vec::new();
        for profile in profiles {
            for policy in &profile.policies {
                let Some(role) = role_of(&policy.role_id) else {
                    continue;
                };
                let restrictions =
                    Restrictions::optimize(policy.restricted_to.as_deref()).map(Arc::new);
                policies.push(ResolvedPolicy { role, restrictions });
            }
        }

        // Every controller name some role decides differently from its `*` entry.
        let mut names: Vec<&str> = vec!["ms", "memoryStorage"];
        for policy in &policies {
            for (controller, _) in &policy.role.controllers {
                if controller != "*" && !names.contains(&controller.as_str()) {
                    names.push(controller);
                }
            }
        }
        let controllers = names
            .iter()
            .map(|name| (Box::<str>::from(*name), action_table(&policies, Some(name))))
            .collect();
        // A name no role mentions (and not an `ms` alias) resolves to each role's `*` entry.
        let other_controllers = action_table(&policies, None);

        UserRights {
            kuid: kuid.into(),
            controllers,
            other_controllers,
            rate_limit: fold_rate_limits(profiles.iter().map(|p| p.rate_limit)),
        }
    }

    /// The kuid these rights belong to.
    pub fn kuid(&self) -> &str {
        &self.kuid
    }

    /// Whether the user may run `request` (`User.isActionAllowed`).
    pub fn is_allowed(&self, request: &RightsRequest<'_>) -> bool {
        let table = self
            .controllers
            .get(request.controller)
            .unwrap_or(&self.other_controllers);
        let decision = table
            .actions
            .get(request.action)
            .unwrap_or(&table.other_actions);
        match request.targets {
            Some(targets) if !targets.is_empty() => targets_allowed(decision, targets),
            _ => match decision {
                Decision::Deny => false,
                Decision::Anywhere => true,
                Decision::Where(restrictions) => restrictions
                    .iter()
                    .any(|restriction| restriction.admits(request.index, request.collection)),
            },
        }
    }

    /// `Ok` when allowed, else Kuzzle's error: `security.rights.unauthorized` for the anonymous
    /// user, `security.rights.forbidden` for the others.
    pub fn check(&self, request: &RightsRequest<'_>) -> Result<(), KuzzleError> {
        if self.is_allowed(request) {
            Ok(())
        } else {
            Err(denied(&self.kuid, request.controller, request.action))
        }
    }

    /// Requests per second this user may make; `None` is unlimited.
    pub fn rate_limit(&self) -> Option<u64> {
        self.rate_limit
    }
}

/// The error for a denied `controller:action`.
pub fn denied(kuid: &str, controller: &str, action: &str) -> KuzzleError {
    if kuid == ANONYMOUS_KUID {
        errors::SECURITY_RIGHTS_UNAUTHORIZED.with(&[controller, action])
    } else {
        errors::SECURITY_RIGHTS_FORBIDDEN.with(&[controller, action, kuid])
    }
}

/// Kuzzle's fold of the profiles' `rateLimit`: 0 anywhere is unlimited, else the largest.
pub fn fold_rate_limits(limits: impl IntoIterator<Item = u64>) -> Option<u64> {
    let mut most = None;
    for limit in limits {
        if limit == 0 {
            return None;
        }
        most = Some(most.map_or(limit, |m: u64| m.max(limit)));
    }
    // A user without profiles has no limit to apply (and no rights either).
    most
}

fn targets_allowed(decision: &Decision, targets: &[Target]) -> bool {
    for target in targets {
        let (Some(index), Some(collections)) = (&target.index, &target.collections) else {
            continue;
        };
        if index.contains('*') {
            return false;
        }
        for collection in collections {
            if collection.contains('*') {
                return false;
            }
            let allowed = match decision {
                Decision::Deny => false,
                Decision::Anywhere => true,
                Decision::Where(restrictions) => restrictions
                    .iter()
                    .any(|r| r.admits(Some(index), Some(collection))),
            };
            if !allowed {
                return false;
            }
        }
    }
    // Quirk: targets that are all skipped (no index or no collections) allow the request
    // whatever the roles say, as in Kuzzle.
    true
}

/// The action table for requests on `controller` (`None`: a controller no role names).
fn action_table(policies: &[ResolvedPolicy<'_>], controller: Option<&str>) -> ActionTable {
    let entries: Vec<(Option<&crate::model::ControllerRights>, &ResolvedPolicy<'_>)> = policies
        .iter()
        .map(|policy| {
            let entry = match controller {
                Some(controller) => resolve_controller(policy.role, controller),
                None => policy.role.controller("*"),
            };
            (entry, policy)
        })
        .collect();
    let mut names: Vec<&str> = Vec::new();
    for (entry, _) in &entries {
        for (action, _) in entry.map(|e| e.actions.as_slice()).unwrap_or_default() {
            if action != "*" && !names.contains(&action.as_str()) {
                names.push(action);
            }
        }
    }
    let decide = |action: Option<&str>| {
        let allowing = entries.iter().filter(|(entry, _)| {
            entry.is_some_and(|entry| {
                let named = action.and_then(|action| entry.action(action));
                named.or_else(|| entry.action("*")) == Some(true)
            })
        });
        let mut restrictions = Vec::new();
        for (_, policy) in allowing {
            match &policy.restrictions {
                Some(r) if !r.is_empty() => restrictions.push(Arc::clone(r)),
                _ => return Decision::Anywhere,
            }
        }
        if restrictions.is_empty() {
            Decision::Deny
        } else {
            Decision::Where(restrictions.into())
        }
    };
    ActionTable {
        actions: names
            .iter()
            .map(|name| (Box::<str>::from(*name), decide(Some(name))))
            .collect(),
        other_actions: decide(None),
    }
}

/// `Role.isActionAllowed`'s choice of controller entry: the `ms`/`memoryStorage` alias (`ms`
/// first), else the controller's own key, else `*`. No fall-through to `*` afterwards.
fn resolve_controller<'r>(
    role: &'r Role,
    controller: &str,
) -> Option<&'r crate::model::ControllerRights> {
    if controller == "ms" || controller == "memoryStorage" {
        if let Some(rights) = role
            .controller("ms")
            .or_else(|| role.controller("memoryStorage"))
        {
            return Some(rights);
        }
    }
    role.controller(controller).or_else(|| role.controller("*"))
}

/// One line of `getMyRights`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RightsItem {
    /// Controller or `*`.
    pub controller: String,
    /// Action or `*`.
    pub action: String,
    /// Index or `*`.
    pub index: String,
    /// Collection or `*`.
    pub collection: String,
    /// Whether allowed (`"allowed"`/`"denied"` on the wire).
    pub allowed: bool,
}

impl RightsItem {
    /// `{controller, action, index, collection, value}`.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("controller".into(), Value::String(self.controller.clone()));
        out.insert("action".into(), Value::String(self.action.clone()));
        out.insert("index".into(), Value::String(self.index.clone()));
        out.insert("collection".into(), Value::String(self.collection.clone()));
        let value = if self.allowed { "allowed" } else { "denied" };
        out.insert("value".into(), Value::String(value.into()));
        Value::Object(out)
    }
}

/// `getMyRights` / `getUserRights` / `getProfileRights`: one item per distinct (controller,
/// action, index, collection) over every policy of `profiles`, merged "allowed if any allowed".
/// Items come in first-seen order (Kuzzle's order follows its murmur hashes of the items; no
/// client relies on it).
pub fn flatten_rights<'r>(
    profiles: &[&Profile],
    role_of: impl Fn(&str) -> Option<&'r Role>,
) -> Vec<RightsItem> {
    let mut items: Vec<RightsItem> = Vec::new();
    let mut seen: FastMap<(String, String, String, String), usize> = FastMap::default();
    let star = || "*".to_owned();
    for profile in profiles {
        for policy in &profile.policies {
            let Some(role) = role_of(&policy.role_id) else {
                continue;
            };
            let restrictions = Restrictions::optimize(policy.restricted_to.as_deref());
            let places: Vec<(String, Vec<String>)> = match &restrictions {
                Some(r) if !r.is_empty() => r
                    .entries()
                    .map(|(index, collections)| {
                        let collections = if collections.is_empty() {
                            vec![star()]
                        } else {
                            collections.iter().map(|c| c.to_string()).collect()
                        };
                        (index.to_owned(), collections)
                    })
                    .collect(),
                _ => vec![(star(), vec![star()])],
            };
            for (controller, rights) in &role.controllers {
                for (action, allowed) in &rights.actions {
                    for (index, collections) in &places {
                        for collection in collections {
                            let key = (
                                controller.clone(),
                                action.clone(),
                                index.clone(),
                                collection.clone(),
                            );
                            match seen.get(&key) {
                                Some(&at) => items[at].allowed |= *allowed,
                                None => {
                                    seen.insert(key, items.len());
                                    items.push(RightsItem {
                                        controller: controller.clone(),
                                        action: action.clone(),
                                        index: index.clone(),
                                        collection: collection.clone(),
                                        allowed: *allowed,
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    items
}

/// Kuzzle's algorithm transcribed over the plain model, without precompilation: the yardstick
/// [`UserRights`] is tested against.
pub mod reference {
    use super::*;

    /// `Role.isActionAllowed`.
    pub fn role_allows(role: &Role, controller: &str, action: &str) -> bool {
        let Some(rights) = resolve_controller(role, controller) else {
            return false;
        };
        let value = rights.action(action).or_else(|| rights.action("*"));
        value == Some(true)
    }

    /// `User.isActionAllowed` with its profiles and roles.
    pub fn is_allowed<'r>(
        profiles: &[&Profile],
        role_of: impl Fn(&str) -> Option<&'r Role>,
        request: &RightsRequest<'_>,
    ) -> bool {
        if profiles.is_empty() {
            return false;
        }
        let allowed_policies: Vec<Option<Restrictions>> = profiles
            .iter()
            .flat_map(|profile| profile.policies.iter())
            .filter_map(|policy| {
                let role = role_of(&policy.role_id)?;
                role_allows(role, request.controller, request.action)
                    .then(|| Restrictions::optimize(policy.restricted_to.as_deref()))
            })
            .collect();
        let admits = |restrictions: &Option<Restrictions>, index, collection| {
            restrictions
                .as_ref()
                .is_none_or(|r| r.admits(index, collection))
        };
        match request.targets {
            Some(targets) if !targets.is_empty() => {
                for target in targets {
                    let (Some(index), Some(collections)) = (&target.index, &target.collections)
                    else {
                        continue;
                    };
                    if index.contains('*') {
                        return false;
                    }
                    for collection in collections {
                        if collection.contains('*') {
                            return false;
                        }
                        if !allowed_policies
                            .iter()
                            .any(|r| admits(r, Some(index.as_str()), Some(collection.as_str())))
                        {
                            return false;
                        }
                    }
                }
                true
            }
            _ => allowed_policies
                .iter()
                .any(|r| admits(r, request.index, request.collection)),
        }
    }
}
