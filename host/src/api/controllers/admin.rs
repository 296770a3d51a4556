//! The `admin` controller: `resetDatabase` (deletes every index; users, profiles, roles and
//! credentials are not in the document store and are left alone, as in Kuzzle).

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;
use switchyard_plugin_api::errors;

use crate::api::action::{ActionResult, Args, BlockingContext, Controller, Run};
use crate::api::documents::stored;
use crate::api::{Action, Request};

/// The `admin` controller.
pub static CONTROLLER: Controller = Controller {
    name: "admin",
    actions: &[Action {
        name: "resetDatabase",
        http: &[("post", "/admin/_resetDatabase")],
        args: Args::NONE,
        run: Run::Blocking(reset_database),
    }],
};

/// Held while a reset runs: a second one is refused (`api.process.action_locked`).
static RESETTING: AtomicBool = AtomicBool::new(false);

/// `admin:resetDatabase`: `{acknowledge: true}` (sic, Kuzzle's key).
fn reset_database(context: &BlockingContext<'_>, _request: &mut Request<'_>) -> ActionResult {
    if RESETTING.swap(true, Ordering::AcqRel) {
        return Err(errors::API_PROCESS_ACTION_LOCKED.with(&["admin:resetDatabase"]));
    }
    let outcome = (|| {
        let storage = context.storage();
        for index in stored(storage.list_indexes())? {
            match storage.delete_index(&index) {
                Ok(()) | Err(switchyard_storage::StorageError::IndexNotFound { .. }) => {}
                Err(error) => return Err(crate::api::documents::storage_error(error)),
            }
        }
        Ok(())
    })();
    RESETTING.store(false, Ordering::Release);
    outcome?;
    Ok(json!({ "acknowledge": true }).into())
}

#[cfg(test)]
mod tests {
    use crate::api::testing::Harness;
    use serde_json::json;

    #[test]
    fn reset_deletes_every_index() {
        let harness = Harness::new();
        for index in ["a", "b"] {
            harness.call(&format!(
                r#"{{"controller":"index","action":"create","index":"{index}"}}"#
            ));
        }
        let reset = harness.call(r#"{"controller":"admin","action":"resetDatabase"}"#);
        assert_eq!(reset["result"], json!({"acknowledge": true}), "{reset}");
        let list = harness.call(r#"{"controller":"index","action":"list"}"#);
        assert_eq!(list["result"], json!({"indexes": []}));
    }
}
