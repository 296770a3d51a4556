//! The router: assembles the controllers' tables into one lookup, and describes the API
//! (`server:info`'s routes, `server:publicApi`) from that same table.

use rustc_hash::FxHashMap;
use serde_json::{json, Map, Value};
use switchyard_plugin_api::errors::{self, KuzzleError};

use super::action::{Action, Controller};

/// Every controller and action the API serves.
#[derive(Debug)]
pub struct Router {
    /// In declaration order (descriptions list them this way).
    controllers: Vec<&'static Controller>,
    /// Controller name → action name → (the action's id, the action). Hashed with Fx, not
    /// SipHash: the keys are fixed at start-up (a client's names are looked up, never
    /// inserted, so colliding names cannot grow a bucket), and this runs on every request.
    lookup: FxHashMap<&'static str, FxHashMap<&'static str, (u16, &'static Action)>>,
    /// `controller:action` names by id (ids are dense, in declaration order: metrics index by
    /// them).
    names: Vec<(&'static str, &'static str)>,
    /// By id: whether the action fans out (`action::FAN_OUT`).
    fans_out: Vec<bool>,
}

impl Router {
    /// A router over `controllers`. A controller or action declared twice is a bug: panics.
    pub fn new(controllers: &[&'static Controller]) -> Router {
        let mut lookup: FxHashMap<&'static str, FxHashMap<&'static str, (u16, &'static Action)>> =
            FxHashMap::default();
        let mut names = Vec::new();
        for controller in controllers {
            let actions = lookup.entry(controller.name).or_default();
            assert!(
                actions.is_empty(),
                "controller {} is declared twice",
                controller.name
            );
            for action in controller.actions {
                let id = u16::try_from(names.len()).expect("fewer than 65536 actions");
                names.push((controller.name, action.name));
                let previous = actions.insert(action.name, (id, action));
                assert!(
                    previous.is_none(),
                    "action {}:{} is declared twice",
                    controller.name,
                    action.name
                );
            }
        }
        let fans_out = names
            .iter()
            .map(|name| super::action::FAN_OUT.contains(name))
            .collect();
        Router {
            controllers: controllers.to_vec(),
            lookup,
            names,
            fans_out,
        }
    }

    /// The router of every built-in controller.
    pub fn standard() -> Router {
        Router::new(super::controllers::ALL)
    }

    /// Every controller, in declaration order.
    pub fn controllers(&self) -> &[&'static Controller] {
        &self.controllers
    }

    /// The action `controller:action`, or Kuzzle's not-found error.
    pub fn find(&self, controller: &str, action: &str) -> Result<&'static Action, KuzzleError> {
        self.locate(controller, action).map(|(_, action)| action)
    }

    /// The action `controller:action` with its id, or Kuzzle's not-found error.
    pub fn locate(
        &self,
        controller: &str,
        action: &str,
    ) -> Result<(u16, &'static Action), KuzzleError> {
        let Some(actions) = self.lookup.get(controller) else {
            return Err(errors::API_PROCESS_CONTROLLER_NOT_FOUND.with(&[controller]));
        };
        actions
            .get(action)
            .copied()
            .ok_or_else(|| errors::API_PROCESS_ACTION_NOT_FOUND.with(&[controller, action]))
    }

    /// Whether the action `id` fans out (it waits while a protocol is congested).
    pub fn fans_out(&self, id: u16) -> bool {
        self.fans_out.get(usize::from(id)).copied().unwrap_or(false)
    }

    /// `(controller, action)` of every action, by id.
    pub fn action_names(&self) -> &[(&'static str, &'static str)] {
        &self.names
    }

    /// `server:info`'s `api.routes`: `{controller: {action: {controller, action, http:
    /// [{verb, url, path}]}}}`, verbs as declared (the HTTP plugin builds its table from it).
    pub fn routes(&self) -> Value {
        self.describe(|verb| verb.to_string(), true)
    }

    /// `server:publicApi`'s result: Kuzzle's shape, upper-case verbs, no `http` key for an
    /// action without a route.
    pub fn public_api(&self) -> Value {
        self.describe(|verb| verb.to_ascii_uppercase(), false)
    }

    fn describe(&self, verb: impl Fn(&str) -> String, always_http: bool) -> Value {
        let mut described = Map::new();
        for controller in &self.controllers {
            let mut actions = Map::new();
            for action in controller.actions {
                let http: Vec<Value> = action
                    .http
                    .iter()
                    .map(|(method, url)| json!({ "verb": verb(method), "url": url, "path": url }))
                    .collect();
                let mut entry = json!({ "controller": controller.name, "action": action.name });
                if always_http || !http.is_empty() {
                    entry["http"] = Value::Array(http);
                }
                actions.insert(action.name.to_string(), entry);
            }
            described.insert(controller.name.to_string(), Value::Object(actions));
        }
        Value::Object(described)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::action::{ActionResult, Args, Context, Run};
    use crate::api::request::Request;

    fn ok(_context: &Context<'_>, _request: &mut Request<'_>) -> ActionResult {
        Ok(json!(true).into())
    }

    static ALPHA: Controller = Controller {
        name: "alpha",
        actions: &[
            Action {
                name: "one",
                http: &[("get", "/_one")],
                args: Args::NONE,
                run: Run::Inline(ok),
            },
            Action {
                name: "two",
                http: &[],
                args: Args::NONE,
                run: Run::Inline(ok),
            },
        ],
    };

    #[test]
    fn finds_actions_and_names_what_is_missing() {
        let router = Router::new(&[&ALPHA]);
        assert_eq!(router.find("alpha", "two").unwrap().name, "two");
        assert_eq!(
            router.find("beta", "one").unwrap_err().message,
            "API controller \"beta\" not found."
        );
        assert_eq!(
            router.find("alpha", "three").unwrap_err().message,
            "API action \"alpha\":\"three\" not found"
        );
    }

    #[test]
    fn describes_the_api_from_the_same_table() {
        let router = Router::new(&[&ALPHA]);
        assert_eq!(
            router.routes(),
            json!({"alpha": {
                "one": {"controller": "alpha", "action": "one", "http": [{"verb": "get", "url": "/_one", "path": "/_one"}]},
                "two": {"controller": "alpha", "action": "two", "http": []},
            }})
        );
        assert_eq!(
            router.public_api(),
            json!({"alpha": {
                "one": {"controller": "alpha", "action": "one", "http": [{"verb": "GET", "url": "/_one", "path": "/_one"}]},
                "two": {"controller": "alpha", "action": "two"},
            }})
        );
    }

    #[test]
    #[should_panic(expected = "action alpha:one is declared twice")]
    fn a_duplicate_action_is_a_bug() {
        static TWICE: Controller = Controller {
            name: "alpha",
            actions: &[
                Action {
                    name: "one",
                    http: &[],
                    args: Args::NONE,
                    run: Run::Inline(ok),
                },
                Action {
                    name: "one",
                    http: &[],
                    args: Args::NONE,
                    run: Run::Inline(ok),
                },
            ],
        };
        Router::new(&[&TWICE]);
    }
}
