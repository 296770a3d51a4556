//! The `document` controller: single and m* writes, reads, search, scroll, count, by-query
//! actions, `deleteFields` and `validate`. Every action touches the document store, so every
//! one runs on the blocking pool — but `get`, answered from the store's document cache when it
//! can, and `create`, whose write is prepared where it is dispatched and answered by the store's
//! log thread once durable (`Run::Staged`).
//!
//! A write computes the rooms its new content matches before it is stored (they go into the
//! document's `meta`, durable with it), then, once the store acknowledged it, notifies
//! (`api/notify.rs`) unless `silent`. The response follows the notifications, as in Kuzzle.
//!
//! Read-modify-write actions (`update`, `upsert`, `deleteFields`, `mUpdate`, `mUpsert`,
//! `updateByQuery`) read the document, apply the change and write it back only if its version
//! did not move meanwhile, retrying up to `retryOnConflict` times (default 10; Kuzzle's 0 would
//! fail concurrent updates of one document that this store can serialize cheaply).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use switchyard_plugin_api::errors::{self, KuzzleError};
use switchyard_plugin_api::json;
use switchyard_storage::{
    Document, KuzzleInfo, Operation, Outcome, Precondition, Query, RawDocument, SearchRequest,
    StorageError, WriteBatch,
};

use crate::api::action::{
    ActionResult, Args, BlockingContext, Context, Controller, Finish, Output, Run, Staged,
    StagedWrite,
};
use crate::api::documents::{
    body_array, body_object, check_fetch, check_refresh, check_size, check_size_of, check_write,
    created_info, flag, generate_id, integer, load_specifications, merge, optional_id,
    query_error, remove_path, replaced_info, required_id, storage_error, stored, string_list,
    strip_info, take_body, target, updated_fields, updated_info,
};
use crate::api::notify::{notify, Change, Rooms};
use crate::api::{Action, Request};
use crate::validation::Specification;

const IC: Args = Args::INDEX_COLLECTION;
const ICB: Args = Args::INDEX_COLLECTION_BODY;

macro_rules! action {
    ($name:literal, $args:expr, $handler:ident, [$(($verb:literal, $path:literal)),* $(,)?]) => {
        Action {
            name: $name,
            http: &[$(($verb, $path)),*],
            args: $args,
            run: Run::Blocking($handler),
        }
    };
}

/// The `document` controller.
pub static CONTROLLER: Controller = Controller {
    name: "document",
    actions: &[
        action!("count", IC, count, [("get", "/:index/:collection/_count"), ("post", "/:index/:collection/_count")]),
        Action {
            name: "create",
            http: &[("post", "/:index/:collection/_create"), ("post", "/:index/:collection/:_id/_create")],
            args: ICB,
            run: Run::Staged(create_staged, create),
        },
        action!("createOrReplace", ICB, create_or_replace, [("put", "/:index/:collection/:_id")]),
        action!("delete", IC, delete, [("delete", "/:index/:collection/:_id")]),
        action!("deleteByQuery", ICB, delete_by_query, [("delete", "/:index/:collection/_query")]),
        action!("deleteFields", ICB, delete_fields, [("put", "/:index/:collection/:_id/_fields")]),
        action!("exists", IC, exists, [("get", "/:index/:collection/:_id/_exists")]),
        Action {
            name: "get",
            http: &[("get", "/:index/:collection/:_id")],
            args: IC,
            run: Run::Cached(get_in_memory, get),
        },
        action!("mCreate", ICB, m_create, [("post", "/:index/:collection/_mCreate")]),
        action!("mCreateOrReplace", ICB, m_create_or_replace, [("put", "/:index/:collection/_mCreateOrReplace")]),
        action!("mDelete", ICB, m_delete, [("delete", "/:index/:collection/_mDelete")]),
        action!("mExists", IC, m_exists, [("get", "/:index/:collection/_mExists"), ("post", "/:index/:collection/_mExists")]),
        action!("mGet", IC, m_get, [("get", "/:index/:collection/_mGet"), ("post", "/:index/:collection/_mGet")]),
        action!("mReplace", ICB, m_replace, [("put", "/:index/:collection/_mReplace")]),
        action!("mUpdate", ICB, m_update, [("put", "/:index/:collection/_mUpdate"), ("patch", "/:index/:collection/_mUpdate")]),
        action!("mUpsert", ICB, m_upsert, [("post", "/:index/:collection/_mUpsert")]),
        action!("replace", ICB, replace, [("put", "/:index/:collection/:_id/_replace")]),
        action!("scroll", Args::NONE, scroll, [("get", "/_scroll/:scrollId")]),
        action!("search", Args::NONE, search, [("get", "/:index/:collection/_search"), ("post", "/:index/:collection/_search")]),
        action!("update", ICB, update, [("put", "/:index/:collection/:_id/_update"), ("patch", "/:index/:collection/:_id")]),
        action!("updateByQuery", ICB, update_by_query, [("put", "/:index/:collection/_query")]),
        action!("upsert", ICB, upsert, [("post", "/:index/:collection/:_id/_upsert")]),
        action!("validate", ICB, validate, [("post", "/:index/:collection/_validate")]),
    ],
};

/// Default `retryOnConflict` (see the module's doc).
const DEFAULT_RETRIES: usize = 10;
/// Elasticsearch's `index.max_result_window`: `from + size` past it is refused.
const MAX_RESULT_WINDOW: usize = 10_000;
/// Kuzzle's `services.storage.maxScrollDuration`.
const MAX_SCROLL: Duration = Duration::from_secs(60);

/// One write request's common state: where, who, when, and whether to notify.
struct Writer<'c, 'a> {
    context: &'c BlockingContext<'a>,
    index: String,
    collection: String,
    user: String,
    now: u64,
    silent: bool,
    /// The collection's validation specifications, looked up on the request's first write
    /// (once per request, whatever its number of documents); `None` when it has none.
    specifications: std::cell::OnceCell<Option<std::sync::Arc<Specification>>>,
}

impl<'c, 'a> Writer<'c, 'a> {
    fn new(context: &'c BlockingContext<'a>, request: &Request<'_>) -> Result<Self, KuzzleError> {
        check_refresh(request)?;
        let silent = flag(request, "silent")?;
        let (index, collection) = target(request)?;
        Ok(Writer {
            context,
            index,
            collection,
            user: context.caller.identity.user_id().to_string(),
            now: crate::realtime::now_ms(),
            silent,
            specifications: std::cell::OnceCell::new(),
        })
    }

    fn rooms(&self, id: &str, source: &Value, info: &KuzzleInfo) -> Rooms {
        Rooms::matching(
            self.context,
            &self.index,
            &self.collection,
            id,
            source,
            info,
        )
    }

    fn put(
        &self,
        id: String,
        source: Value,
        info: KuzzleInfo,
        rooms: &Rooms,
        precondition: Precondition,
    ) -> Operation {
        Operation::Put {
            id,
            source,
            info,
            meta: rooms.encode(),
            precondition,
        }
    }

    /// The collection's specifications (see `specifications`).
    fn specifications(&self) -> Result<Option<&Specification>, KuzzleError> {
        if let Some(specifications) = self.specifications.get() {
            return Ok(specifications.as_deref());
        }
        let specifications = load_specifications(self.context, &self.index, &self.collection)?;
        Ok(self.specifications.get_or_init(|| specifications).as_deref())
    }

    /// Fills in the collection's `defaultValue`s (Kuzzle's rules: see `validation.rs`)
    /// in a body about to be written; `is_update` for the changes of an update.
    fn apply_defaults(
        &self,
        body: &mut Map<String, Value>,
        is_update: bool,
    ) -> Result<(), KuzzleError> {
        if let Some(specification) = self.specifications()?.filter(|s| s.has_defaults()) {
            specification.apply_defaults(body, is_update);
        }
        Ok(())
    }

    /// Writes a batch. A document over `limits.documentMaxSize`, or breaking its collection's
    /// specifications (every write path ends here: single, m*, read-modify-write with the
    /// merged document, by query), is refused here, before the store sees it: its outcome is
    /// `Failed` (never notified) and the others are written.
    fn write(&self, operations: Vec<Operation>) -> Result<Vec<Outcome>, KuzzleError> {
        self.write_measured(operations, None)
    }

    /// [`write`](Self::write), `known_size` being the JSON size of a lone `Put`'s source when
    /// the caller already wrote that JSON (it is not measured again).
    fn write_measured(
        &self,
        operations: Vec<Operation>,
        known_size: Option<usize>,
    ) -> Result<Vec<Outcome>, KuzzleError> {
        let known_size = known_size.filter(|_| operations.len() == 1);
        let limits = &self.context.services.config.limits;
        let has_puts = operations
            .iter()
            .any(|operation| matches!(operation, Operation::Put { .. }));
        let specifications = if has_puts {
            self.specifications()?
        } else {
            None
        };
        let mut refused = Vec::new();
        let mut accepted = Vec::with_capacity(operations.len());
        for (position, operation) in operations.into_iter().enumerate() {
            if let Operation::Put { id, source, .. } = &operation {
                let size_checked = match known_size {
                    Some(size) => check_size_of(limits, id, size),
                    None => check_size(limits, id, source),
                };
                let checked = size_checked.and_then(|()| {
                    specifications.map_or(Ok(()), |spec| spec.enforce(id, source))
                });
                if let Err(error) = checked {
                    refused.push((position, id.clone(), error));
                    continue;
                }
            }
            accepted.push(operation);
        }
        let mut outcomes = if accepted.is_empty() {
            Vec::new()
        } else {
            stored(self.context.storage().write(WriteBatch {
                index: self.index.clone(),
                collection: self.collection.clone(),
                operations: accepted,
            }))?
        };
        for (position, id, error) in refused {
            outcomes.insert(position, Outcome::Failed { id, error });
        }
        Ok(outcomes)
    }

    /// One operation, its failure as the request's error.
    fn write_one(&self, operation: Operation) -> Result<Outcome, KuzzleError> {
        self.write_one_measured(operation, None)
    }

    /// [`write_one`](Self::write_one) with the source's JSON size when already known.
    fn write_one_measured(
        &self,
        operation: Operation,
        known_size: Option<usize>,
    ) -> Result<Outcome, KuzzleError> {
        match self.write_measured(vec![operation], known_size)?.pop() {
            Some(Outcome::Failed { error, .. }) => Err(storage_error(error)),
            Some(outcome) => Ok(outcome),
            None => Err(errors::CORE_FATAL_UNEXPECTED_ERROR.with(&["no outcome for a write"])),
        }
    }

    /// Notifies one change, unless `silent`.
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        request: &Request<'_>,
        id: &str,
        action: &'static str,
        source: &Value,
        extra: String,
        rooms: &Rooms,
        previous: Option<&Document>,
    ) {
        if !self.notifies(rooms, previous) {
            return;
        }
        let change = Change {
            id,
            action,
            source: source.to_string(),
            extra,
            matching: rooms,
            before: previous.map_or_else(Vec::new, |doc| Rooms::decode(&doc.meta)),
            content: Some(source),
            previous,
        };
        notify(
            self.context,
            request,
            &self.index,
            &self.collection,
            &change,
        );
    }

    /// Whether a write whose new content matches `rooms` sends anything: not when `silent`, nor
    /// when no room matches it now or matched it before and no other node could have one (no
    /// cluster). Building a notification nobody receives (its JSON, the source serialized) was
    /// a tenth of a create's instructions.
    fn notifies(&self, rooms: &Rooms, previous: Option<&Document>) -> bool {
        !self.silent
            && (!rooms.0.is_empty()
                || previous.is_some_and(|doc| !Rooms::decode(&doc.meta).is_empty())
                || self.context.services.cluster.is_some())
    }

    /// Notifies a deleted document to the rooms its content matches (`out`).
    fn notify_delete(&self, request: &Request<'_>, previous: &Document, extra: String) {
        if self.silent {
            return;
        }
        let rooms = Rooms::of_document(self.context, &self.index, &self.collection, previous);
        let change = Change {
            id: &previous.id,
            action: "delete",
            source: previous.source_with_info().to_string(),
            extra,
            matching: &rooms,
            before: Vec::new(),
            content: None,
            previous: Some(previous),
        };
        notify(
            self.context,
            request,
            &self.index,
            &self.collection,
            &change,
        );
    }
}

/// `"_version":v` and other result members for notifications.
fn members(value: &Value) -> String {
    let text = value.to_string();
    text[1..text.len() - 1].to_string()
}

fn with_info(source: &Value, info: &KuzzleInfo) -> Value {
    let mut source = source.clone();
    if let Value::Object(map) = &mut source {
        map.insert("_kuzzle_info".into(), info.to_json());
    }
    source
}

// ---- single writes ----

/// `document:create`: `{_id, _version, _source}`, on the blocking pool: staged as on a network
/// thread, then written here.
fn create(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let specifications = |index: &str, collection: &str| {
        load_specifications(context, index, collection)
    };
    match stage_create(context, request, specifications) {
        Staged::Write(StagedWrite { batch, finish }) => {
            let result = context.storage().write(batch);
            finish(&context.context, request, result)
        }
        Staged::Answer(result) => result,
        Staged::Pool => Err(unexpected_outcome()),
    }
}

/// `document:create` where it is dispatched: its write prepared in memory, answered by the
/// store's log thread. In a cluster another node may have changed the collection's
/// specifications, which are then read from the store: the blocking pool's `create` does.
fn create_staged(context: &Context<'_>, request: &mut Request<'_>) -> Staged {
    if context.services.cluster.is_some() {
        return Staged::Pool;
    }
    let registry = &context.services.specifications;
    stage_create(context, request, |index, collection| {
        Ok(registry.get(index, collection))
    })
}

/// Everything `document:create` does but the store's write: the arguments, `_kuzzle_info`, the
/// defaults, the rooms, the size and specification checks (a refused document is answered
/// here, before the store sees it, as `Writer::write` refuses it); then, once the write is
/// durable, the notification and the answer.
fn stage_create(
    context: &Context<'_>,
    request: &mut Request<'_>,
    specifications: impl FnOnce(&str, &str) -> Result<Option<Arc<Specification>>, KuzzleError>,
) -> Staged {
    let prepared = (|| -> Result<StagedWrite, KuzzleError> {
        check_refresh(request)?;
        let silent = flag(request, "silent")?;
        let (index, collection) = target(request)?;
        let user = context.caller.identity.user_id().to_string();
        let now = crate::realtime::now_ms();
        let id = optional_id(request)?.unwrap_or_else(generate_id);
        let mut body = take_body(request)?;
        strip_info(&mut body);
        let specifications = specifications(&index, &collection)?;
        if let Some(specification) = specifications.as_deref().filter(|s| s.has_defaults()) {
            specification.apply_defaults(&mut body, false);
        }
        let info = created_info(&user, now);
        let source = Value::Object(body);
        let rooms = Rooms::matching(context, &index, &collection, &id, &source, &info);
        // The answer is written around the body's text, as `get`'s is: no copy of the body as a
        // `Value`, unless a notification needs one. Its length is the size to check.
        let text = source.to_string();
        let limits = &context.services.config.limits;
        check_size_of(limits, &id, text.len())
            .and_then(|()| {
                specifications
                    .as_deref()
                    .map_or(Ok(()), |spec| spec.enforce(&id, &source))
            })
            .map_err(storage_error)?;
        // As `Writer::notifies`, with no previous document.
        let notifies = !silent && (!rooms.0.is_empty() || context.services.cluster.is_some());
        let kept = notifies.then(|| with_info(&source, &info));
        let batch = WriteBatch {
            index: index.clone(),
            collection: collection.clone(),
            operations: vec![Operation::Put {
                id: id.clone(),
                source,
                info: info.clone(),
                meta: rooms.encode(),
                precondition: Precondition::Absent,
            }],
        };
        let finish: Finish = Box::new(move |context, request, result| {
            let outcome = match stored(result)?.pop() {
                Some(Outcome::Failed { error, .. }) => return Err(storage_error(error)),
                Some(outcome) => outcome,
                None => {
                    return Err(
                        errors::CORE_FATAL_UNEXPECTED_ERROR.with(&["no outcome for a write"])
                    )
                }
            };
            let Outcome::Written { version, .. } = outcome else {
                return Err(unexpected_outcome());
            };
            if let Some(source) = kept {
                let change = Change {
                    id: &id,
                    action: "create",
                    source: source.to_string(),
                    extra: members(&json!({ "_version": version })),
                    matching: &rooms,
                    before: Vec::new(),
                    content: Some(&source),
                    previous: None,
                };
                notify(context, request, &index, &collection, &change);
            }
            Ok(Output::Json(raw_hit(&RawDocument {
                id,
                version,
                source: text,
                info,
            })))
        });
        Ok(StagedWrite { batch, finish })
    })();
    match prepared {
        Ok(write) => Staged::Write(write),
        Err(error) => Staged::Answer(Err(error)),
    }
}

fn unexpected_outcome() -> KuzzleError {
    errors::CORE_FATAL_UNEXPECTED_ERROR.with(&["unexpected write outcome"])
}

/// `document:createOrReplace`: `{_id, _version, _source, created}`.
fn create_or_replace(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    write_whole(context, request, false)
}

/// `document:replace`: `{_id, _version, _source}`; the document must exist.
fn replace(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    write_whole(context, request, true)
}

fn write_whole(
    context: &BlockingContext<'_>,
    request: &mut Request<'_>,
    must_exist: bool,
) -> ActionResult {
    let writer = Writer::new(context, request)?;
    let id = required_id(request)?;
    let mut body = take_body(request)?;
    strip_info(&mut body);
    writer.apply_defaults(&mut body, false)?;
    let info = replaced_info(&writer.user, writer.now);
    let body = Value::Object(body);
    let rooms = writer.rooms(&id, &body, &info);
    let precondition = if must_exist {
        Precondition::Present
    } else {
        Precondition::Any
    };
    let outcome =
        writer.write_one(writer.put(id.clone(), body.clone(), info.clone(), &rooms, precondition))?;
    let Outcome::Written {
        version,
        created,
        previous,
        ..
    } = outcome
    else {
        return Err(unexpected_outcome());
    };
    let source = with_info(&body, &info);
    if must_exist {
        // Kuzzle notifies a replace with the request's body, without `_kuzzle_info`.
        writer.notify(
            request,
            &id,
            "replace",
            &body,
            String::new(),
            &rooms,
            previous.as_ref(),
        );
        Ok(json!({ "_id": id, "_version": version, "_source": source }).into())
    } else {
        let action = if created { "create" } else { "replace" };
        writer.notify(
            request,
            &id,
            action,
            &source,
            members(&json!({ "_version": version, "created": created })),
            &rooms,
            previous.as_ref(),
        );
        Ok(json!({ "_id": id, "_version": version, "_source": source, "created": created }).into())
    }
}

// ---- read-modify-write ----

/// What a read-modify-write does to one document.
enum Edit {
    /// Deep-merge the changes (`update`).
    Update(Map<String, Value>),
    /// Update, or create `{...default, ...changes}` when absent.
    Upsert {
        changes: Map<String, Value>,
        default: Map<String, Value>,
    },
    /// Remove these dotted paths.
    DeleteFields(Vec<String>),
}

/// One applied read-modify-write.
struct Edited {
    version: u64,
    created: bool,
    /// The new content, without `_kuzzle_info`.
    source: Value,
    info: KuzzleInfo,
    rooms: Rooms,
    /// The document before the write (its `meta` holds the rooms it matched).
    previous: Option<Document>,
}

impl Edited {
    fn full_source(&self) -> Value {
        with_info(&self.source, &self.info)
    }
}

fn retries(request: &Request<'_>) -> Result<usize, KuzzleError> {
    Ok(integer(request, "retryOnConflict")?.unwrap_or(DEFAULT_RETRIES))
}

impl Writer<'_, '_> {
    /// Applies `edits` in one batch per round; a document whose version moved is read again and
    /// retried, up to `retries` more rounds. One result per edit, in order.
    fn read_modify_write(
        &self,
        edits: &[(String, Edit)],
        retries: usize,
    ) -> Result<Vec<Result<Edited, StorageError>>, KuzzleError> {
        let mut results: Vec<Option<Result<Edited, StorageError>>> =
            edits.iter().map(|_| None).collect();
        let mut pending: Vec<usize> = (0..edits.len()).collect();
        let storage = self.context.storage();
        for round in 0..=retries {
            if pending.is_empty() {
                break;
            }
            let ids: Vec<String> = pending.iter().map(|&i| edits[i].0.clone()).collect();
            let documents = stored(storage.mget(&self.index, &self.collection, &ids))?;
            let mut operations = Vec::new();
            let mut planned = Vec::new();
            for (&i, document) in pending.iter().zip(documents) {
                let (id, edit) = &edits[i];
                let (source, info, precondition) = match (document, edit) {
                    (Some(document), edit) => {
                        let Value::Object(mut source) = document.source else {
                            results[i] = Some(Err(StorageError::InvalidDocument {
                                id: id.clone(),
                                reason: "the stored document is not an object",
                            }));
                            continue;
                        };
                        match edit {
                            Edit::Update(changes) | Edit::Upsert { changes, .. } => {
                                merge(&mut source, changes)
                            }
                            Edit::DeleteFields(paths) => {
                                paths.iter().for_each(|path| remove_path(&mut source, path))
                            }
                        }
                        (
                            Value::Object(source),
                            updated_info(&document.info, &self.user, self.now),
                            Precondition::Version(document.version),
                        )
                    }
                    (None, Edit::Upsert { changes, default }) => {
                        let mut source = default.clone();
                        source.extend(changes.iter().map(|(k, v)| (k.clone(), v.clone())));
                        let info = KuzzleInfo {
                            author: Some(self.user.clone()),
                            created_at: Some(self.now),
                            updated_at: None,
                            updater: None,
                        };
                        (Value::Object(source), info, Precondition::Absent)
                    }
                    (None, _) => {
                        results[i] = Some(Err(StorageError::DocumentNotFound {
                            index: self.index.clone(),
                            collection: self.collection.clone(),
                            id: id.clone(),
                        }));
                        continue;
                    }
                };
                let rooms = self.rooms(id, &source, &info);
                operations.push(self.put(
                    id.clone(),
                    source.clone(),
                    info.clone(),
                    &rooms,
                    precondition,
                ));
                planned.push((i, source, info, rooms));
            }
            let outcomes = self.write(operations)?;
            let mut again = Vec::new();
            for ((i, source, info, rooms), outcome) in planned.into_iter().zip(outcomes) {
                match outcome {
                    Outcome::Written {
                        version,
                        created,
                        previous,
                        ..
                    } => {
                        results[i] = Some(Ok(Edited {
                            version,
                            created,
                            source,
                            info,
                            rooms,
                            previous,
                        }))
                    }
                    Outcome::Failed {
                        error:
                            error @ (StorageError::VersionConflict { .. }
                            | StorageError::DocumentAlreadyExists { .. }),
                        ..
                    } => {
                        if round < retries {
                            again.push(i);
                        } else {
                            let id = edits[i].0.clone();
                            results[i] = Some(Err(match error {
                                StorageError::VersionConflict { .. } => error,
                                _ => StorageError::VersionConflict {
                                    id,
                                    expected: 0,
                                    actual: 0,
                                },
                            }));
                        }
                    }
                    Outcome::Failed { error, .. } => results[i] = Some(Err(error)),
                    Outcome::Deleted { .. } => {}
                }
            }
            pending = again;
        }
        Ok(results
            .into_iter()
            .map(|result| result.unwrap_or_else(|| Err(StorageError::store("no outcome"))))
            .collect())
    }
}

/// `document:update`: `{_id, _version, _source: {...changes, _kuzzle_info}}`, or the whole
/// document with `source`.
fn update(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let writer = Writer::new(context, request)?;
    let id = required_id(request)?;
    let source_flag = flag(request, "source")?;
    let retries = retries(request)?;
    let mut changes = take_body(request)?;
    strip_info(&mut changes);
    writer.apply_defaults(&mut changes, true)?;
    let fields = updated_fields(&changes);
    let edits = [(id.clone(), Edit::Update(changes.clone()))];
    let edited = writer
        .read_modify_write(&edits, retries)?
        .pop()
        .expect("one result per edit")
        .map_err(storage_error)?;
    let full = edited.full_source();
    writer.notify(
        request,
        &id,
        "update",
        &full,
        members(&json!({ "_updatedFields": fields })),
        &edited.rooms,
        edited.previous.as_ref(),
    );
    let source = if source_flag {
        full
    } else {
        let mut partial = Value::Object(changes);
        partial["_kuzzle_info"] = edited.info.to_json();
        partial
    };
    Ok(json!({ "_id": id, "_version": edited.version, "_source": source }).into())
}

/// `document:upsert`: `{_id, _version, created}` (plus `_source` with `source`).
fn upsert(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let writer = Writer::new(context, request)?;
    let id = required_id(request)?;
    let source_flag = flag(request, "source")?;
    let retries = retries(request)?;
    let mut body = take_body(request)?;
    let mut changes = body_object(&mut body, "changes", true)?;
    let mut default = body_object(&mut body, "default", false)?;
    strip_info(&mut changes);
    strip_info(&mut default);
    let fields = updated_fields(&changes);
    let edits = [(id.clone(), Edit::Upsert { changes, default })];
    let edited = writer
        .read_modify_write(&edits, retries)?
        .pop()
        .expect("one result per edit")
        .map_err(storage_error)?;
    let full = edited.full_source();
    // Unlike Kuzzle (which notifies the request body), a created document is notified as a
    // create of the stored document.
    let (action, extra) = if edited.created {
        ("create", members(&json!({ "_version": edited.version })))
    } else {
        ("update", members(&json!({ "_updatedFields": fields })))
    };
    writer.notify(
        request,
        &id,
        action,
        &full,
        extra,
        &edited.rooms,
        edited.previous.as_ref(),
    );
    let mut result = json!({ "_id": id, "_version": edited.version, "created": edited.created });
    if source_flag {
        result["_source"] = full;
    }
    Ok(result.into())
}

/// `document:deleteFields`: `{_id, _version}`, or the whole document with `source`.
fn delete_fields(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let writer = Writer::new(context, request)?;
    let id = required_id(request)?;
    let source_flag = flag(request, "source")?;
    let retries = retries(request)?;
    let mut body = take_body(request)?;
    let fields = string_list(body_array(&mut body, "fields")?, "body.fields")?;
    let edits = [(id.clone(), Edit::DeleteFields(fields))];
    let edited = writer
        .read_modify_write(&edits, retries)?
        .pop()
        .expect("one result per edit")
        .map_err(storage_error)?;
    let full = edited.full_source();
    writer.notify(
        request,
        &id,
        "update",
        &full,
        String::new(),
        &edited.rooms,
        edited.previous.as_ref(),
    );
    let mut result = json!({ "_id": id, "_version": edited.version });
    if source_flag {
        result["_source"] = full;
    }
    Ok(result.into())
}

// ---- deletes ----

/// `document:delete`: `{_id}`, or the deleted document with `source`.
fn delete(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let writer = Writer::new(context, request)?;
    let id = required_id(request)?;
    let source_flag = flag(request, "source")?;
    let outcome = writer.write_one(Operation::Delete {
        id: id.clone(),
        precondition: Precondition::Present,
    })?;
    let Outcome::Deleted { previous, .. } = outcome else {
        return Err(unexpected_outcome());
    };
    writer.notify_delete(
        request,
        &previous,
        members(&json!({ "_version": previous.version })),
    );
    if source_flag {
        Ok(json!({
            "_id": id,
            "_version": previous.version,
            "_source": previous.source_with_info(),
        })
        .into())
    } else {
        Ok(json!({ "_id": id }).into())
    }
}

/// `document:mDelete`: `{successes: [ids], errors: [{_id, reason, status}]}`.
fn m_delete(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let writer = Writer::new(context, request)?;
    let strict = flag(request, "strict")?;
    let mut body = take_body(request)?;
    let ids = body_array(&mut body, "ids")?;
    check_write(&writer.context.services.config.limits, ids.len())?;
    let mut errors_out = Vec::new();
    let mut operations = Vec::new();
    for id in ids {
        match id {
            Value::String(id) => operations.push(Operation::Delete {
                id,
                precondition: Precondition::Present,
            }),
            other => errors_out.push(json!({
                "_id": other,
                "reason": "document _id must be a string",
                "status": 400,
            })),
        }
    }
    let mut successes = Vec::new();
    let mut deleted = Vec::new();
    for outcome in writer.write(operations)? {
        match outcome {
            Outcome::Deleted { id, previous } => {
                successes.push(Value::String(id));
                deleted.push(previous);
            }
            Outcome::Failed { id, error } => {
                let (reason, status) = item_reason(&error);
                errors_out.push(json!({ "_id": id, "reason": reason, "status": status }));
            }
            Outcome::Written { .. } => {}
        }
    }
    if strict && !errors_out.is_empty() {
        return Err(errors::API_PROCESS_INCOMPLETE_MULTIPLE_REQUEST.with(&["delete"]));
    }
    for previous in &deleted {
        writer.notify_delete(request, previous, String::new());
    }
    Ok(json!({ "successes": successes, "errors": errors_out }).into())
}

/// An m* error item's `reason` and `status`, with Kuzzle's wording.
fn item_reason(error: &StorageError) -> (String, u16) {
    match error {
        StorageError::DocumentAlreadyExists { .. } => ("document already exists".into(), 400),
        StorageError::DocumentNotFound { .. } => ("document not found".into(), 404),
        StorageError::InvalidDocument { .. } => ("document body must be an object".into(), 400),
        StorageError::InvalidId { reason, .. } => ((*reason).to_string(), 400),
        other => {
            let error = storage_error(other.clone());
            (error.message.to_string(), error.status())
        }
    }
}

// ---- m* writes ----

/// What one m* write action does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MWrite {
    Create,
    CreateOrReplace,
    Replace,
}

/// Checks the `documents` list: the write limit, no `_source` instead of `body`.
fn documents_of(
    writer: &Writer<'_, '_>,
    request: &mut Request<'_>,
) -> Result<Vec<Value>, KuzzleError> {
    let mut body = take_body(request)?;
    let documents = body_array(&mut body, "documents")?;
    check_write(&writer.context.services.config.limits, documents.len())?;
    for (i, document) in documents.iter().enumerate() {
        if document.get("_source").is_some() {
            return Err(errors::API_ASSERT_UNEXPECTED_ARGUMENT.with(&[
                &format!("documents[{i}]._source"),
                &format!("documents[{i}].body"),
            ]));
        }
    }
    Ok(documents)
}

fn error_item(document: Value, reason: &str, status: u16) -> Value {
    json!({ "document": document, "reason": reason, "status": status })
}

fn m_create(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    m_write(context, request, MWrite::Create, "mCreate")
}

fn m_create_or_replace(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    m_write(context, request, MWrite::CreateOrReplace, "mCreateOrReplace")
}

fn m_replace(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    m_write(context, request, MWrite::Replace, "mReplace")
}

/// `mCreate`, `mCreateOrReplace`, `mReplace`: one batch, `{successes, errors}`.
fn m_write(
    context: &BlockingContext<'_>,
    request: &mut Request<'_>,
    kind: MWrite,
    name: &str,
) -> ActionResult {
    let writer = Writer::new(context, request)?;
    let strict = flag(request, "strict")?;
    let documents = documents_of(&writer, request)?;
    let mut errors_out = Vec::new();
    let mut operations = Vec::new();
    let mut planned = Vec::new();
    let info = created_info(&writer.user, writer.now);
    for document in documents {
        let id = match document.get("_id") {
            None | Some(Value::Null) if kind == MWrite::Create => generate_id(),
            Some(Value::String(id)) => id.clone(),
            _ => {
                errors_out.push(error_item(document, "document _id must be a string", 400));
                continue;
            }
        };
        let Some(Value::Object(body)) = document.get("body") else {
            errors_out.push(error_item(document, "document body must be an object", 400));
            continue;
        };
        let mut body = body.clone();
        strip_info(&mut body);
        writer.apply_defaults(&mut body, false)?;
        let source = Value::Object(body);
        let rooms = writer.rooms(&id, &source, &info);
        let precondition = match kind {
            MWrite::Create => Precondition::Absent,
            MWrite::CreateOrReplace => Precondition::Any,
            MWrite::Replace => Precondition::Present,
        };
        operations.push(writer.put(
            id.clone(),
            source.clone(),
            info.clone(),
            &rooms,
            precondition,
        ));
        planned.push((document, source, rooms));
    }
    let outcomes = writer.write(operations)?;
    let mut successes = Vec::new();
    let mut notifications = Vec::new();
    for ((document, source, rooms), outcome) in planned.into_iter().zip(outcomes) {
        match outcome {
            Outcome::Written {
                id,
                version,
                created,
                previous,
            } => {
                let item = json!({
                    "_id": id,
                    "_source": with_info(&source, &info),
                    "_version": version,
                    "created": created,
                    "result": if created { "created" } else { "updated" },
                    "status": if created { 201 } else { 200 },
                });
                let action = match kind {
                    MWrite::Create => "create",
                    MWrite::Replace => "replace",
                    MWrite::CreateOrReplace if created => "create",
                    MWrite::CreateOrReplace => "replace",
                };
                notifications.push((item.clone(), action, rooms, previous));
                successes.push(item);
            }
            Outcome::Failed { error, .. } => {
                let (reason, status) = item_reason(&error);
                errors_out.push(error_item(document, &reason, status));
            }
            Outcome::Deleted { .. } => {}
        }
    }
    if strict && !errors_out.is_empty() {
        return Err(errors::API_PROCESS_INCOMPLETE_MULTIPLE_REQUEST.with(&[name]));
    }
    for (item, action, rooms, previous) in &notifications {
        notify_item(&writer, request, item, action, rooms, previous.as_ref(), None);
    }
    Ok(json!({ "successes": successes, "errors": errors_out }).into())
}

/// Notifies an m* success item (Kuzzle sends the item as `result`).
fn notify_item(
    writer: &Writer<'_, '_>,
    request: &Request<'_>,
    item: &Value,
    action: &'static str,
    rooms: &Rooms,
    previous: Option<&Document>,
    updated: Option<Vec<String>>,
) {
    let mut rest = item.clone();
    let Value::Object(fields) = &mut rest else {
        return;
    };
    let id = fields
        .remove("_id")
        .and_then(|id| id.as_str().map(str::to_string))
        .unwrap_or_default();
    let source = fields.remove("_source").unwrap_or(Value::Null);
    if let Some(updated) = updated {
        fields.insert("_updatedFields".into(), json!(updated));
    }
    writer.notify(request, &id, action, &source, members(&rest), rooms, previous);
}

fn m_update(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    m_edit(context, request, false)
}

fn m_upsert(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    m_edit(context, request, true)
}

/// `mUpdate` (`[{_id, body}]`) and `mUpsert` (`[{_id, changes, default?}]`).
fn m_edit(context: &BlockingContext<'_>, request: &mut Request<'_>, upsert: bool) -> ActionResult {
    let writer = Writer::new(context, request)?;
    let strict = flag(request, "strict")?;
    let retries = retries(request)?;
    let with_source = request.string_arg("source") != Some("false")
        && !matches!(request.args.get("source"), Some(Value::Bool(false)));
    let documents = documents_of(&writer, request)?;
    let mut errors_out = Vec::new();
    let mut edits = Vec::new();
    let mut inputs = Vec::new();
    for document in documents {
        let Some(Value::String(id)) = document.get("_id") else {
            errors_out.push(error_item(document, "document _id must be a string", 400));
            continue;
        };
        let id = id.clone();
        let changes_key = if upsert { "changes" } else { "body" };
        let Some(Value::Object(changes)) = document.get(changes_key) else {
            errors_out.push(error_item(document, "document body must be an object", 400));
            continue;
        };
        let mut changes = changes.clone();
        strip_info(&mut changes);
        if !upsert {
            writer.apply_defaults(&mut changes, true)?;
        }
        let edit = if upsert {
            let mut default = document
                .get("default")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            strip_info(&mut default);
            Edit::Upsert {
                changes: changes.clone(),
                default,
            }
        } else {
            Edit::Update(changes.clone())
        };
        edits.push((id, edit));
        inputs.push((document, updated_fields(&changes)));
    }
    let results = writer.read_modify_write(&edits, retries)?;
    let mut successes = Vec::new();
    let mut notifications = Vec::new();
    for (((id, _), (document, fields)), result) in edits.iter().zip(inputs).zip(results) {
        match result {
            Ok(edited) => {
                let mut item = json!({ "_id": id, "_version": edited.version });
                if with_source {
                    item["_source"] = edited.full_source();
                }
                if upsert {
                    item["created"] = edited.created.into();
                }
                item["status"] = if edited.created { 201 } else { 200 }.into();
                let mut notified = item.clone();
                notified["_source"] = edited.full_source();
                let (action, updated) = if edited.created {
                    ("create", None)
                } else {
                    ("update", Some(fields))
                };
                notifications.push((notified, action, edited, updated));
                successes.push(item);
            }
            Err(error) => {
                let (reason, status) = item_reason(&error);
                errors_out.push(error_item(document, &reason, status));
            }
        }
    }
    if strict && !errors_out.is_empty() {
        let name = if upsert { "mUpsert" } else { "mUpdate" };
        return Err(errors::API_PROCESS_INCOMPLETE_MULTIPLE_REQUEST.with(&[name]));
    }
    for (item, action, edited, updated) in notifications {
        notify_item(
            &writer,
            request,
            &item,
            action,
            &edited.rooms,
            edited.previous.as_ref(),
            updated,
        );
    }
    Ok(json!({ "successes": successes, "errors": errors_out }).into())
}

// ---- by query ----

/// The query of a by-query action or of `count` (`lang: "koncorde"` translated).
fn query_of(request: &Request<'_>, query: Option<&Value>) -> Result<Query, KuzzleError> {
    let query = match query {
        None | Some(Value::Null) => json!({}),
        Some(query) => translate_lang(request, query.clone())?,
    };
    Query::parse(&query).map_err(query_error)
}

fn translate_lang(request: &Request<'_>, query: Value) -> Result<Value, KuzzleError> {
    match request.args.get("lang") {
        None | Some(Value::Null) => Ok(query),
        Some(Value::String(lang)) if lang == "elasticsearch" => Ok(query),
        Some(Value::String(lang)) if lang == "koncorde" => koncorde_to_es(&query),
        Some(_) => Err(errors::API_ASSERT_INVALID_ARGUMENT
            .with(&["lang", "\"elasticsearch\" or \"koncorde\""])),
    }
}

/// Kuzzle's Koncorde → Elasticsearch translation (`queryTranslator.ts`): `equals`, `in`,
/// `range`, `exists`, `missing`, `ids`, `and`, `or`, `not`; `bool` is refused; other keys pass
/// through as Elasticsearch clauses.
fn koncorde_to_es(filter: &Value) -> Result<Value, KuzzleError> {
    let Value::Object(fields) = filter else {
        return Err(errors::API_ASSERT_INVALID_TYPE.with(&["body.query", "object"]));
    };
    let Some((keyword, value)) = fields.iter().next() else {
        return Ok(json!({ "match_all": {} }));
    };
    let list = |value: &Value| -> Result<Vec<Value>, KuzzleError> {
        match value {
            Value::Array(items) => items.iter().map(koncorde_to_es).collect(),
            other => Ok(vec![koncorde_to_es(other)?]),
        }
    };
    let field_of = |value: &Value| match value {
        Value::String(field) => Value::String(field.clone()),
        other => other.get("field").cloned().unwrap_or(Value::Null),
    };
    Ok(match keyword.as_str() {
        "equals" => json!({ "term": value }),
        "in" => json!({ "terms": value }),
        "range" => json!({ "range": value }),
        "exists" => json!({ "exists": { "field": field_of(value) } }),
        "missing" => {
            json!({ "bool": { "must_not": [{ "exists": { "field": field_of(value) } }] } })
        }
        "ids" => json!({ "ids": value }),
        "and" => json!({ "bool": { "filter": list(value)? } }),
        "or" => json!({ "bool": { "should": list(value)? } }),
        "not" => json!({ "bool": { "must_not": list(value)? } }),
        "bool" => {
            return Err(errors::API_ASSERT_KONCORDE_RESTRICTED_KEYWORD.with(&["operator", "bool"]))
        }
        _ => filter.clone(),
    })
}

/// The ids of every document matching `query`, refused past `documentsWriteCount`.
fn matching_documents(
    writer: &Writer<'_, '_>,
    query: Query,
) -> Result<Vec<Document>, KuzzleError> {
    let limit = writer.context.services.config.limits.documents_write_count;
    let page = stored(writer.context.storage().search(
        &writer.index,
        &writer.collection,
        &SearchRequest {
            query,
            sort: Vec::new(),
            from: 0,
            size: limit,
            search_after: None,
        },
    ))?;
    check_write(&writer.context.services.config.limits, page.total as usize)?;
    Ok(page.hits)
}

/// `document:deleteByQuery`: `{documents: [{_id, _source?}], ids}`.
fn delete_by_query(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let writer = Writer::new(context, request)?;
    let source_flag = flag(request, "source")?;
    let query = query_of(request, request.body.as_ref().and_then(|b| b.get("query")))?;
    let found = matching_documents(&writer, query)?;
    let operations = found
        .iter()
        .map(|doc| Operation::Delete {
            id: doc.id.clone(),
            precondition: Precondition::Present,
        })
        .collect();
    let mut documents = Vec::new();
    let mut ids = Vec::new();
    for outcome in writer.write(operations)? {
        if let Outcome::Deleted { id, previous } = outcome {
            writer.notify_delete(request, &previous, String::new());
            let mut item = json!({ "_id": id });
            if source_flag {
                item["_source"] = previous.source_with_info();
            }
            documents.push(item);
            ids.push(Value::String(id));
        }
    }
    Ok(json!({ "documents": documents, "ids": ids }).into())
}

/// `document:updateByQuery`: `{successes: [{_id, _version, status, _source?}], errors}`.
fn update_by_query(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let writer = Writer::new(context, request)?;
    let source_flag = flag(request, "source")?;
    let retries = retries(request)?;
    let mut body = take_body(request)?;
    let query_value = body_object(&mut body, "query", true)?;
    let mut changes = body_object(&mut body, "changes", true)?;
    strip_info(&mut changes);
    let query = query_of(request, Some(&Value::Object(query_value)))?;
    let found = matching_documents(&writer, query)?;
    let fields = updated_fields(&changes);
    let edits: Vec<(String, Edit)> = found
        .into_iter()
        .map(|doc| (doc.id, Edit::Update(changes.clone())))
        .collect();
    let results = writer.read_modify_write(&edits, retries)?;
    let mut successes = Vec::new();
    let mut errors_out = Vec::new();
    for ((id, _), result) in edits.iter().zip(results) {
        match result {
            Ok(edited) => {
                let full = edited.full_source();
                writer.notify(
                    request,
                    id,
                    "update",
                    &full,
                    members(&json!({ "_updatedFields": fields })),
                    &edited.rooms,
                    edited.previous.as_ref(),
                );
                let mut item = json!({ "_id": id, "_version": edited.version, "status": 200 });
                if source_flag {
                    item["_source"] = full;
                }
                successes.push(item);
            }
            Err(error) => {
                let (reason, status) = item_reason(&error);
                errors_out.push(error_item(json!({ "_id": id }), &reason, status));
            }
        }
    }
    Ok(json!({ "successes": successes, "errors": errors_out }).into())
}

// ---- reads ----

fn reader(request: &Request<'_>) -> Result<(String, String), KuzzleError> {
    target(request)
}

/// `document:get`: `{_id, _version, _source}`.
fn get(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let (index, collection) = reader(request)?;
    let id = required_id(request)?;
    match stored(context.storage().get_raw(&index, &collection, &id))? {
        Some(doc) => Ok(Output::Json(raw_hit(&doc))),
        None => Err(errors::SERVICES_STORAGE_NOT_FOUND.with(&[&id, &index, &collection])),
    }
}

/// `document:get` where it is dispatched, when the store holds the document in memory (the
/// embedded store's document cache): the same answer as [`get`] without the hop to the
/// blocking pool and back, which was half of a get's CPU. Anything else — a miss, a bad
/// argument (its error comes from `get`) — goes to the blocking pool.
fn get_in_memory(context: &Context<'_>, request: &mut Request<'_>) -> Option<ActionResult> {
    let (index, collection) = reader(request).ok()?;
    let id = required_id(request).ok()?;
    let doc = context
        .services
        .document_in_memory(&index, &collection, &id)?;
    Some(Ok(Output::Json(raw_hit(&doc))))
}

/// [`hit`]'s text, written around the stored body without parsing it: `document:get` is the
/// hottest read, and parsing then re-serializing the body was most of its cost.
fn raw_hit(doc: &RawDocument) -> String {
    let mut out = String::with_capacity(doc.source.len() + doc.id.len() + 160);
    out.push_str("{\"_id\":");
    json::push_str(&mut out, &doc.id);
    out.push_str(",\"_version\":");
    json::push_u64(&mut out, doc.version);
    out.push_str(",\"_source\":");
    // The stored body is compact JSON text of an object: `_kuzzle_info` goes in last, as
    // `source_with_info` puts it.
    let body = doc.source.trim_end();
    let body = body.strip_suffix('}').unwrap_or(body).trim_end();
    out.push_str(body);
    if !body.ends_with('{') {
        out.push(',');
    }
    out.push_str("\"_kuzzle_info\":{\"author\":");
    push_opt_str(&mut out, doc.info.author.as_deref());
    out.push_str(",\"createdAt\":");
    push_opt_u64(&mut out, doc.info.created_at);
    out.push_str(",\"updatedAt\":");
    push_opt_u64(&mut out, doc.info.updated_at);
    out.push_str(",\"updater\":");
    push_opt_str(&mut out, doc.info.updater.as_deref());
    out.push_str("}}}");
    out
}

fn push_opt_str(out: &mut String, value: Option<&str>) {
    match value {
        Some(value) => json::push_str(out, value),
        None => out.push_str("null"),
    }
}

fn push_opt_u64(out: &mut String, value: Option<u64>) {
    match value {
        Some(value) => json::push_u64(out, value),
        None => out.push_str("null"),
    }
}

fn hit(doc: &Document) -> Value {
    json!({ "_id": doc.id, "_version": doc.version, "_source": doc.source_with_info() })
}

/// `document:exists`: a boolean.
fn exists(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let (index, collection) = reader(request)?;
    let id = required_id(request)?;
    Ok(Value::Bool(stored(context.storage().get(&index, &collection, &id))?.is_some()).into())
}

/// `ids` from `body.ids`, else the `ids` argument (an array, or comma-separated over HTTP).
fn ids_of(request: &mut Request<'_>) -> Result<Vec<String>, KuzzleError> {
    if let Some(Value::Object(body)) = &mut request.body {
        if let Some(ids) = body.remove("ids") {
            return match ids {
                Value::Array(ids) => string_list(ids, "body.ids"),
                _ => Err(errors::API_ASSERT_INVALID_TYPE.with(&["body.ids", "array"])),
            };
        }
    }
    match request.args.remove("ids") {
        Some(Value::Array(ids)) => string_list(ids, "ids"),
        Some(Value::String(ids)) => Ok(ids.split(',').map(str::to_string).collect()),
        None | Some(Value::Null) => Err(errors::API_ASSERT_MISSING_ARGUMENT.with(&["ids"])),
        Some(_) => Err(errors::API_ASSERT_INVALID_TYPE.with(&["ids", "array"])),
    }
}

/// `document:mGet`: `{successes: [{_id, _source, _version}], errors: [ids]}`.
fn m_get(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    m_fetch(context, request, true)
}

/// `document:mExists`: `{successes: [ids], errors: [ids]}`.
fn m_exists(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    m_fetch(context, request, false)
}

fn m_fetch(context: &BlockingContext<'_>, request: &mut Request<'_>, documents: bool) -> ActionResult {
    let (index, collection) = reader(request)?;
    let strict = flag(request, "strict")?;
    let ids = ids_of(request)?;
    check_fetch(&context.services.config.limits, ids.len())?;
    let found = stored(context.storage().mget(&index, &collection, &ids))?;
    let mut successes = Vec::new();
    let mut errors_out = Vec::new();
    for (id, doc) in ids.into_iter().zip(found) {
        match doc {
            Some(doc) if documents => successes.push(hit(&doc)),
            Some(_) => successes.push(Value::String(id)),
            None => errors_out.push(Value::String(id)),
        }
    }
    if strict && !errors_out.is_empty() {
        return Err(errors::API_PROCESS_INCOMPLETE_MULTIPLE_REQUEST.with(&["get"]));
    }
    Ok(json!({ "successes": successes, "errors": errors_out }).into())
}

/// `document:count`: `{count}`.
fn count(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let (index, collection) = reader(request)?;
    let query = query_of(request, request.body.as_ref().and_then(|b| b.get("query")))?;
    let count = stored(context.storage().count(&index, &collection, &query))?;
    Ok(json!({ "count": count }).into())
}

/// `document:validate`: `{errorMessages, valid}`, the body checked against the collection's
/// specifications if it has any: every problem, in Kuzzle's verbose shape (`validation.rs`).
fn validate(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let (index, collection) = reader(request)?;
    let storage = context.storage();
    if !stored(storage.index_exists(&index))? {
        return Err(errors::SERVICES_STORAGE_UNKNOWN_INDEX.with(&[&index]));
    }
    if !stored(storage.collection_exists(&index, &collection))? {
        return Err(errors::SERVICES_STORAGE_UNKNOWN_COLLECTION.with(&[&index, &collection]));
    }
    let body = take_body(request)?;
    let id = request.string_arg("_id").map(str::to_string);
    let messages = match load_specifications(context, &index, &collection)? {
        Some(specification) => specification.check(id.as_deref(), &body),
        None => Map::new(),
    };
    let valid = messages.is_empty();
    Ok(json!({ "errorMessages": messages, "valid": valid }).into())
}

// ---- search and scroll ----

/// A search being scrolled: the request with its cursor.
struct Scroll {
    index: String,
    collection: String,
    request: SearchRequest,
    fetched: u64,
    total: u64,
    ttl: Duration,
    expires: Instant,
}

/// Open scrolls, by id. Kept in memory (a restart forgets them, as Elasticsearch's scroll
/// contexts); expired ones are dropped on every access.
fn scrolls() -> &'static Mutex<HashMap<String, Scroll>> {
    static SCROLLS: OnceLock<Mutex<HashMap<String, Scroll>>> = OnceLock::new();
    SCROLLS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// A scroll TTL: milliseconds, or a number with `ms`, `s`, `m`, `h`; at most one minute.
fn scroll_ttl(value: Option<&Value>) -> Result<Option<Duration>, KuzzleError> {
    let invalid = || errors::API_ASSERT_INVALID_TYPE.with(&["scroll", "string"]);
    let ttl = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(ms)) => Duration::from_millis(ms.as_u64().ok_or_else(invalid)?),
        Some(Value::String(text)) => {
            let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
            let unit = &text[digits.len()..];
            let n: u64 = digits.parse().map_err(|_| invalid())?;
            let ms = match unit {
                "" | "ms" => n,
                "s" => n.saturating_mul(1_000),
                "m" => n.saturating_mul(60_000),
                "h" => n.saturating_mul(3_600_000),
                "d" => n.saturating_mul(86_400_000),
                _ => return Err(invalid()),
            };
            if Duration::from_millis(ms) > MAX_SCROLL {
                return Err(errors::SERVICES_STORAGE_SCROLL_DURATION_TOO_GREAT.with(&[text]));
            }
            Duration::from_millis(ms)
        }
        Some(_) => return Err(invalid()),
    };
    if ttl > MAX_SCROLL {
        return Err(errors::SERVICES_STORAGE_SCROLL_DURATION_TOO_GREAT.with(&[&ttl.as_millis().to_string()]));
    }
    Ok(Some(ttl))
}

fn hits_json(hits: &[Document], index: &str, collection: &str) -> Vec<Value> {
    hits.iter()
        .map(|doc| {
            json!({
                "_id": doc.id,
                "_score": 1,
                "_source": doc.source_with_info(),
                "index": index,
                "collection": collection,
            })
        })
        .collect()
}

/// `document:search`: `{hits, total}`, plus `scrollId` and `remaining` with `scroll`.
fn search(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let index = request
        .index
        .as_deref()
        .ok_or_else(|| errors::API_ASSERT_MISSING_ARGUMENT.with(&["index"]))?
        .to_string();
    let collection = request
        .collection
        .as_deref()
        .ok_or_else(|| errors::API_ASSERT_MISSING_ARGUMENT.with(&["collection"]))?
        .to_string();
    let from = integer(request, "from")?;
    let size = integer(request, "size")?;
    let ttl = scroll_ttl(request.args.get("scroll"))?;
    let mut body = match request.body.take() {
        None | Some(Value::Null) => json!({}),
        Some(body @ Value::Object(_)) => body,
        Some(_) => return Err(errors::API_ASSERT_INVALID_TYPE.with(&["body", "object"])),
    };
    if let Some(query) = body.get("query").cloned() {
        body["query"] = translate_lang(request, query)?;
    }
    let mut search = SearchRequest::from_body(&body, from, size).map_err(query_error)?;
    let limits = &context.services.config.limits;
    check_fetch(limits, search.size.saturating_sub(search.from))?;
    if ttl.is_none() && search.from + search.size > MAX_RESULT_WINDOW {
        return Err(errors::SERVICES_STORAGE_UNEXPECTED_BAD_REQUEST.with(&[&format!(
            "Result window is too large, from + size must be less than or equal to: [{MAX_RESULT_WINDOW}] but was [{}].",
            search.from + search.size
        )]));
    }
    let page = stored(context.storage().search(&index, &collection, &search))?;
    let hits = hits_json(&page.hits, &index, &collection);
    let mut result = json!({ "hits": hits, "total": page.total });
    if let Some(ttl) = ttl {
        let fetched = (search.from + page.hits.len()) as u64;
        search.from = 0;
        search.search_after = page.next_search_after.clone();
        let id = uuid::Uuid::new_v4().to_string();
        result["scrollId"] = Value::String(id.clone());
        result["remaining"] = page.total.saturating_sub(fetched).into();
        let mut open = scrolls().lock();
        let now = Instant::now();
        open.retain(|_, scroll| scroll.expires > now);
        open.insert(
            id,
            Scroll {
                index,
                collection,
                request: search,
                fetched,
                total: page.total,
                ttl,
                expires: now + ttl,
            },
        );
    }
    Ok(result.into())
}

/// `document:scroll`: the next page: `{hits, remaining, scrollId, total}`.
fn scroll(context: &BlockingContext<'_>, request: &mut Request<'_>) -> ActionResult {
    let id = match request.args.get("scrollId") {
        Some(Value::String(id)) => id.clone(),
        None | Some(Value::Null) => {
            return Err(errors::API_ASSERT_MISSING_ARGUMENT.with(&["scrollId"]))
        }
        Some(_) => return Err(errors::API_ASSERT_INVALID_TYPE.with(&["scrollId", "string"])),
    };
    let ttl = scroll_ttl(request.args.get("scroll"))?;
    let taken = {
        let mut open = scrolls().lock();
        let now = Instant::now();
        open.retain(|_, scroll| scroll.expires > now);
        open.remove(&id)
    };
    let Some(mut state) = taken else {
        return Err(errors::SERVICES_STORAGE_UNKNOWN_SCROLL_ID.error());
    };
    let mut hits = Vec::new();
    if state.request.search_after.is_some() && state.fetched < state.total {
        let page = stored(
            context
                .storage()
                .search(&state.index, &state.collection, &state.request),
        )?;
        state.fetched += page.hits.len() as u64;
        if page.next_search_after.is_some() {
            state.request.search_after = page.next_search_after.clone();
        }
        hits = hits_json(&page.hits, &state.index, &state.collection);
    }
    if let Some(ttl) = ttl {
        state.ttl = ttl;
    }
    let result = json!({
        "hits": hits,
        "remaining": state.total.saturating_sub(state.fetched),
        "scrollId": id,
        "total": state.total,
    });
    state.expires = Instant::now() + state.ttl;
    scrolls().lock().insert(id, state);
    Ok(result.into())
}

#[cfg(test)]
mod tests;
