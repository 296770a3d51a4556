//! Validation specifications, as Kuzzle's `lib/core/validation/validation.js`: a collection's
//! `{strict, fields, validators}` checked when stored (`collection:updateSpecifications` and
//! `validateSpecifications` list every problem, in Kuzzle's words), then compiled into a
//! [`Specification`] that checks documents (`document:validate`: every problem, Kuzzle's
//! verbose shape; writes and `realtime:publish`: the first problem, Kuzzle's error) and fills
//! in `defaultValue`s.
//!
//! Fields are paths (`"address/city"`): every level must be specified and only `object` fields
//! have children. `validators` are Koncorde filters the document (with its `_id`) must match
//! all of, as `{bool: {must: validators}}`. Types and their `typeOptions` are in `types.rs`.
//!
//! Kuzzle's quirks kept: a mandatory field with a `defaultValue` is never reported missing; a
//! falsy `defaultValue` (`false`, `0`, `""`) is never applied; `update` applies defaults only to
//! fields it sets to `null`; `strict`, `mandatory` and `multivalued.value` are read as JavaScript
//! truthiness.

mod date;
mod formats;
pub mod registry;
mod types;

pub use registry::Registry;

use serde_json::{Map, Value};
use switchyard_filters::{EngineConfig, FilterError};
use switchyard_storage::StorageError;

use types::{Kind, Options};

/// The internal record kind of validation specifications (Kuzzle's internal `validations`
/// collection), keyed `<index>#<collection>`: outside every index, so `admin:resetDatabase` and
/// index deletion keep them, as Kuzzle does.
pub const SPECIFICATIONS: &str = "validations";

/// The key of a collection's specifications.
pub fn specifications_key(index: &str, collection: &str) -> String {
    format!("{index}#{collection}")
}

/// JavaScript truthiness of a JSON value.
pub(crate) fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// A number as JavaScript writes it.
pub(crate) fn number_text(number: f64) -> String {
    switchyard_filters::js_number_to_string(number)
}

/// `String(value)` for what a message interpolates.
pub(crate) fn js_string(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), number_text),
        Value::String(s) => s.clone(),
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
        Value::Object(_) => "[object Object]".into(),
    }
}

/// An error Kuzzle throws out of its verbose specification check instead of listing it (the
/// nesting and `validators` errors): `updateSpecifications` shows it as `"<Class>: <message>"`,
/// `validateSpecifications` as the error object.
#[derive(Debug, Clone, PartialEq)]
pub struct Thrown {
    pub id: &'static str,
    pub code: u32,
    pub status: u16,
    pub class: &'static str,
    pub message: String,
}

/// Why specifications were refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Invalid {
    /// Every problem found, in Kuzzle's words.
    Listed(Vec<String>),
    /// An error that stopped the check.
    Thrown(Thrown),
}

impl Invalid {
    /// The problems as `validateSpecifications`'s `details`.
    pub fn details(&self) -> Value {
        match self {
            Invalid::Listed(messages) => Value::from(messages.clone()),
            Invalid::Thrown(thrown) => serde_json::json!([{
                "code": thrown.code,
                "id": thrown.id,
                "message": thrown.message,
                "status": thrown.status,
            }]),
        }
    }

    /// The problems as `updateSpecifications`'s message (joined as Kuzzle joins them).
    pub fn joined(&self) -> String {
        match self {
            Invalid::Listed(messages) => messages.join("\n\t- "),
            Invalid::Thrown(thrown) => format!("{}: {}", thrown.class, thrown.message),
        }
    }
}

/// `validation.assert.*` codes: domain 5, subdomain 1.
const fn assert_code(n: u32) -> u32 {
    (5 << 24) | (1 << 16) | n
}

fn precondition(id: &'static str, n: u32, message: String) -> Invalid {
    Invalid::Thrown(Thrown {
        id,
        code: assert_code(n),
        status: 412,
        class: "PreconditionError",
        message,
    })
}

/// One specified field, curated.
#[derive(Debug, Clone)]
struct Field {
    /// Its path from the document's root.
    path: Vec<String>,
    kind: Kind,
    mandatory: bool,
    /// `defaultValue`, when present (even falsy: it still waives `mandatory`).
    default: Option<Value>,
    /// `multivalued`: `(value, minCount, maxCount)`.
    multivalued: (bool, Option<f64>, Option<f64>),
    options: Options,
    /// Sub-fields (`object` fields only), in the specification's order.
    children: Vec<(String, Field)>,
}

/// A collection's specifications, compiled.
#[derive(Debug)]
pub struct Specification {
    strict: bool,
    /// Top-level fields, in the specification's order.
    fields: Vec<(String, Field)>,
    /// `{bool: {must: validators}}` in an engine of its own, when `validators` is an array.
    validators: Option<switchyard_filters::Engine>,
}

/// The Koncorde index validators are stored under (one engine per specification).
const VALIDATORS_INDEX: &str = "validation/validators";

impl Specification {
    /// Checks specifications as Kuzzle's `validateFormat` does (verbose) and compiles them.
    pub fn compile(index: &str, collection: &str, spec: &Value) -> Result<Specification, Invalid> {
        const ALLOWED: &[&str] = &["strict", "fields", "validators"];
        let at = format!("{index}.{collection}");
        let Some(spec) = spec
            .as_object()
            .filter(|spec| spec.keys().all(|key| ALLOWED.contains(&key.as_str())))
        else {
            return Err(Invalid::Listed(vec![format!(
                "The object \"{at}\" contains unexpected properties (allowed: {}).",
                ALLOWED.join(", ")
            )]));
        };
        let mut fields = Vec::new();
        if let Some(specified) = spec.get("fields").filter(|f| truthy(f)) {
            let Some(specified) = specified.as_object() else {
                return Err(Invalid::Listed(vec![format!(
                    "Wrong type for parameter \"fields\" (expected: object)."
                )]));
            };
            let mut errors = Vec::new();
            let mut curated = Vec::new();
            for (name, field) in specified {
                match curate_field(&format!("{at}.{name}"), field) {
                    Ok(mut field) => {
                        field.path = name.split('/').map(str::to_string).collect();
                        curated.push(field);
                    }
                    Err(mut problems) => errors.append(&mut problems),
                }
            }
            if !errors.is_empty() {
                return Err(Invalid::Listed(errors));
            }
            fields = structure(curated)?;
        }
        let validators = match spec.get("validators") {
            Some(Value::Array(validators)) => {
                let filter = serde_json::json!({ "bool": { "must": validators } });
                let invalid = |error: FilterError| {
                    Invalid::Thrown(Thrown {
                        id: "validation.assert.invalid_filters",
                        code: assert_code(13),
                        status: 400,
                        class: "BadRequestError",
                        message: format!("Invalid filters validator: {}", error.message()),
                    })
                };
                // Kuzzle's validation Koncorde is built with Koncorde's defaults (0: its 50
                // conditions), not with the subscriptions' limits.
                let mut engine = switchyard_filters::Engine::new(EngineConfig::new(
                    0,
                    0,
                    switchyard_filters::DEFAULT_REGEXP_SIZE_LIMIT,
                ));
                let normalized = engine
                    .normalize(VALIDATORS_INDEX, &filter)
                    .map_err(invalid)?;
                engine.store(normalized);
                Some(engine)
            }
            _ => None,
        };
        Ok(Specification {
            strict: spec.get("strict").is_some_and(truthy),
            fields,
            validators,
        })
    }

    /// Every problem of `document` (`document:validate`): Kuzzle's verbose shape,
    /// `{documentScope?: [..], fieldScope?: {children: {<field>: {messages, children?}}}}`,
    /// empty when the document is valid.
    pub fn check(&self, id: Option<&str>, document: &Map<String, Value>) -> Map<String, Value> {
        let mut report = Report {
            verbose: true,
            ..Report::default()
        };
        let _ = self.run(id, document, &mut report);
        let mut out = Map::new();
        if !report.document.is_empty() {
            out.insert("documentScope".into(), Value::from(report.document));
        }
        if !report.fields.is_empty() {
            let mut scope = Map::new();
            scope.insert("children".into(), Value::Object(report.fields));
            out.insert("fieldScope".into(), Value::Object(scope));
        }
        out
    }

    /// The first problem of `document`, as Kuzzle's non-verbose check stops on it: `(None,
    /// message)` for the document (`validation.check.failed_document`), `(Some(path),
    /// message)` for a field (`failed_field`, the path dotted).
    pub fn first_problem(
        &self,
        id: Option<&str>,
        document: &Map<String, Value>,
    ) -> Option<(Option<String>, String)> {
        let mut report = Report::default();
        let _ = self.run(id, document, &mut report);
        report.first
    }

    fn run(
        &self,
        id: Option<&str>,
        document: &Map<String, Value>,
        report: &mut Report,
    ) -> Result<(), Stop> {
        if !self.fields.is_empty() {
            match check_fields(document, &self.fields, self.strict, report) {
                Err(Halt::Strict(field)) => report.add(
                    None,
                    format!("The document validation is strict. Cannot add unspecified sub-field \"{field}\""),
                )?,
                Err(Halt::Stop) => return Err(Stop),
                Ok(_) => {}
            }
        }
        if let Some(engine) = &self.validators {
            let mut tested = document.clone();
            if let Some(id) = id {
                tested.insert("_id".into(), Value::String(id.to_string()));
            }
            if engine
                .test(VALIDATORS_INDEX, &Value::Object(tested))
                .is_empty()
            {
                report.add(
                    None,
                    "The document does not match validation filters.".into(),
                )?;
            }
        }
        Ok(())
    }

    /// Why a write of `document` (without `_kuzzle_info`) is refused, as Kuzzle's non-verbose
    /// check answers it: its first problem (`validation.check.failed_document` or
    /// `failed_field` once mapped by `api::documents::storage_error`).
    pub fn enforce(&self, id: &str, document: &Value) -> Result<(), StorageError> {
        let Value::Object(document) = document else {
            return Ok(()); // The store refuses a non-object itself.
        };
        match self.first_problem(Some(id), document) {
            None => Ok(()),
            Some((field, message)) => Err(StorageError::FailedValidation {
                id: id.to_string(),
                field,
                message,
            }),
        }
    }

    /// Fills in `defaultValue`s (Kuzzle's `recurseApplyDefault`): a field absent (not on
    /// update) or null gets its truthy default; objects are walked into.
    pub fn apply_defaults(&self, document: &mut Map<String, Value>, is_update: bool) {
        apply_defaults(document, &self.fields, is_update);
    }

    /// True when it has defaults to apply (saves walking documents otherwise).
    pub fn has_defaults(&self) -> bool {
        fn any(fields: &[(String, Field)]) -> bool {
            fields
                .iter()
                .any(|(_, f)| f.default.as_ref().is_some_and(truthy) || any(&f.children))
        }
        any(&self.fields)
    }
}

/// Checks one field's specification (`curateFieldSpecificationFormat`, then the type's
/// options): every problem, or the curated field (its path set by the caller).
fn curate_field(at: &str, field: &Value) -> Result<Field, Vec<String>> {
    const PROPERTIES: &[&str] = &[
        "mandatory",
        "type",
        "defaultValue",
        "description",
        "multivalued",
        "typeOptions",
    ];
    let mut errors = Vec::new();
    let empty = Map::new();
    let object = field.as_object();
    if !object.is_some_and(|f| f.keys().all(|k| PROPERTIES.contains(&k.as_str()))) {
        errors.push(format!(
            "The object \"{at}\" contains unexpected properties (allowed: {}).",
            PROPERTIES.join(", ")
        ));
    }
    let field = object.unwrap_or(&empty);
    let kind_name = field.get("type");
    if kind_name.is_none() {
        errors.push(format!("Missing property \"type\" in field \"{at}\"."));
    }
    let kind = kind_name.and_then(Value::as_str).and_then(Kind::parse);
    if kind.is_none() {
        let name = kind_name.map_or_else(|| "undefined".to_string(), js_string);
        errors.push(format!("In \"{at}\": unknown type \"{name}\"."));
    }
    let mut multivalued = (false, None, None);
    if let Some(spec) = field.get("multivalued") {
        const KEYS: &[&str] = &["value", "minCount", "maxCount"];
        let object = spec.as_object();
        if !object.is_some_and(|m| m.keys().all(|k| KEYS.contains(&k.as_str()))) {
            errors.push(format!(
                "The object \"{at}.multivalued\" contains unexpected properties (allowed: {}).",
                KEYS.join(", ")
            ));
        }
        let spec = object.unwrap_or(&empty);
        match spec.get("value") {
            None => {
                errors.push(format!(
                    "Missing property \"value\" in field \"{at}.multivalued\"."
                ));
                errors.push(format!(
                    "Wrong type for parameter \"{at}.multivalued.value\" (expected: boolean)."
                ));
            }
            Some(Value::Bool(value)) => multivalued.0 = *value,
            Some(_) => errors.push(format!(
                "Wrong type for parameter \"{at}.multivalued.value\" (expected: boolean)."
            )),
        }
        for key in ["minCount", "maxCount"] {
            if !multivalued.0 && spec.contains_key(key) {
                errors.push(format!("Field \"{at}\": cannot set a property \"{key}\" if the field is not multivalued."));
            }
        }
        multivalued.1 = spec.get("minCount").and_then(Value::as_f64);
        multivalued.2 = spec.get("maxCount").and_then(Value::as_f64);
        if let (Some(Value::Number(min)), Some(Value::Number(max))) =
            (spec.get("minCount"), spec.get("maxCount"))
        {
            if min.as_f64() > max.as_f64() {
                errors.push(format!(
                    "Property \"{at}\": invalid range (minCount > maxCount)."
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let kind = kind.expect("checked above");
    let options = field
        .get("typeOptions")
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    let allowed = kind.allowed_options();
    let options = match options
        .as_object()
        .filter(|o| o.keys().all(|k| allowed.contains(&k.as_str())))
    {
        Some(options) => options.clone(),
        None => {
            errors.push(format!(
                "The object \"{at}\" contains unexpected properties (allowed: {}).",
                allowed.join(", ")
            ));
            options.as_object().cloned().unwrap_or_default()
        }
    };
    let options = match types::curate(kind, &options) {
        Ok(options) => options,
        Err(message) => {
            errors.push(message);
            return Err(errors);
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Field {
        path: Vec::new(),
        kind,
        mandatory: field.get("mandatory").is_some_and(truthy),
        default: field.get("defaultValue").cloned(),
        multivalued,
        options,
        children: Vec::new(),
    })
}

/// Builds the tree of fields by depth (`curateStructuredFields`): every level must be
/// specified, a parent must exist and allow children.
fn structure(fields: Vec<Field>) -> Result<Vec<(String, Field)>, Invalid> {
    let depth = fields.iter().map(|f| f.path.len()).max().unwrap_or(0);
    let mut root: Vec<(String, Field)> = Vec::new();
    for level in 1..=depth {
        let at_level: Vec<&Field> = fields.iter().filter(|f| f.path.len() == level).collect();
        if at_level.is_empty() {
            return Err(precondition(
                "validation.assert.missing_nested_spec",
                1,
                "All levels of an object have to be defined in the specification.".into(),
            ));
        }
        for field in at_level {
            let mut siblings = &mut root;
            let mut parent_kind = None;
            for name in &field.path[..field.path.len() - 1] {
                let Some(position) = siblings.iter().position(|(n, _)| n == name) else {
                    return Err(precondition(
                        "validation.assert.missing_parent",
                        3,
                        format!(
                            "The parent field of the field \"{}\" is not defined.",
                            field.path.join(".")
                        ),
                    ));
                };
                let parent = &mut siblings[position].1;
                parent_kind = Some(parent.kind);
                siblings = &mut parent.children;
            }
            if let Some(kind) = parent_kind.filter(|kind| !kind.allows_children()) {
                return Err(precondition(
                    "validation.assert.unexpected_children",
                    2,
                    format!(
                        "The field type \"{}\" is not allowed to have children fields.",
                        kind_name(kind)
                    ),
                ));
            }
            let name = field.path[field.path.len() - 1].clone();
            siblings.push((name, field.clone()));
        }
    }
    Ok(root)
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Anything => "anything",
        Kind::Boolean => "boolean",
        Kind::Date => "date",
        Kind::Email => "email",
        Kind::Enum => "enum",
        Kind::GeoPoint => "geo_point",
        Kind::GeoShape => "geo_shape",
        Kind::Integer => "integer",
        Kind::IpAddress => "ip_address",
        Kind::Numeric => "numeric",
        Kind::Object => "object",
        Kind::String => "string",
        Kind::Url => "url",
    }
}

/// The non-verbose check stops at its first problem.
struct Stop;

/// What stops checking a level: a strictness violation (caught by the level above) or the
/// first problem of a non-verbose check.
enum Halt {
    Strict(String),
    Stop,
}

impl From<Stop> for Halt {
    fn from(_: Stop) -> Halt {
        Halt::Stop
    }
}

/// The problems found.
#[derive(Default)]
struct Report {
    /// Collect every problem (`document:validate`) or stop at the first.
    verbose: bool,
    document: Vec<String>,
    fields: Map<String, Value>,
    first: Option<(Option<String>, String)>,
}

impl Report {
    fn add(&mut self, path: Option<&[String]>, message: String) -> Result<(), Stop> {
        if !self.verbose {
            self.first = Some((path.map(|p| p.join(".")), message));
            return Err(Stop);
        }
        match path {
            None => self.document.push(message),
            Some(path) => insert_message(&mut self.fields, path, message),
        }
        Ok(())
    }
}

/// Adds `message` at `path` in Kuzzle's verbose tree: `{<name>: {messages?, children?}}`.
fn insert_message(children: &mut Map<String, Value>, path: &[String], message: String) {
    let node = children
        .entry(path[0].clone())
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(node) = node else { return };
    if path.len() == 1 {
        if let Value::Array(messages) = node
            .entry("messages")
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            messages.push(Value::String(message));
        }
    } else if let Value::Object(inner) = node
        .entry("children")
        .or_insert_with(|| Value::Object(Map::new()))
    {
        insert_message(inner, &path[1..], message);
    }
}

/// `recurseFieldValidation`: strictness first, then each field in order.
fn check_fields(
    document: &Map<String, Value>,
    fields: &[(String, Field)],
    strict: bool,
    report: &mut Report,
) -> Result<bool, Halt> {
    if strict {
        if let Some(unknown) = document
            .keys()
            .find(|key| *key != "_kuzzle_info" && !fields.iter().any(|(name, _)| name == *key))
        {
            return Err(Halt::Strict(unknown.clone()));
        }
    }
    let mut valid = true;
    for (name, field) in fields {
        if !check_field(document.get(name), field, strict, report)? {
            valid = false;
        }
    }
    Ok(valid)
}

/// `isValidField`.
fn check_field(
    value: Option<&Value>,
    field: &Field,
    strict: bool,
    report: &mut Report,
) -> Result<bool, Stop> {
    let path = Some(field.path.as_slice());
    let value = match value {
        None | Some(Value::Null) => {
            if field.mandatory && field.default.is_none() {
                report.add(path, "The field is mandatory.".into())?;
                return Ok(false);
            }
            return Ok(true);
        }
        Some(value) => value,
    };
    let values: Vec<&Value> = match (field.multivalued, value) {
        ((true, min, max), Value::Array(items)) => {
            let count = items.len() as f64;
            if let Some(min) = min.filter(|min| count < *min) {
                report.add(
                    path,
                    format!(
                        "Not enough elements. Minimum count is set to {}.",
                        number_text(min)
                    ),
                )?;
                return Ok(false);
            }
            if let Some(max) = max.filter(|max| count > *max) {
                report.add(
                    path,
                    format!(
                        "Too many elements. Maximum count is set to {}.",
                        number_text(max)
                    ),
                )?;
                return Ok(false);
            }
            items.iter().collect()
        }
        ((true, ..), _) => {
            report.add(
                path,
                "The field must be multivalued, unary value provided.".into(),
            )?;
            return Ok(false);
        }
        ((false, ..), Value::Array(_)) => {
            report.add(
                path,
                "The field is not a multivalued field; Multiple values provided.".into(),
            )?;
            return Ok(false);
        }
        ((false, ..), value) => vec![value],
    };
    let nested_strict = field.options.strict.unwrap_or(strict);
    let mut valid = true;
    for value in values {
        if let Err(messages) = types::check(field.kind, &field.options, value) {
            if messages.is_empty() {
                report.add(path, "An error has occurred during validation.".into())?;
            }
            for message in messages {
                report.add(path, message)?;
            }
            return Ok(false);
        }
        if field.kind.allows_children() && !field.children.is_empty() {
            let Value::Object(object) = value else {
                continue;
            };
            match check_fields(object, &field.children, nested_strict, report) {
                Ok(true) => {}
                Ok(false) => valid = false,
                Err(Halt::Strict(unknown)) => {
                    report.add(
                        path,
                        format!("The field is set to \"strict\"; cannot add unspecified sub-field \"{unknown}\"."),
                    )?;
                    valid = false;
                }
                Err(Halt::Stop) => return Err(Stop),
            }
        }
    }
    Ok(valid)
}

fn apply_defaults(document: &mut Map<String, Value>, fields: &[(String, Field)], is_update: bool) {
    for (name, field) in fields {
        match document.get_mut(name) {
            Some(value) if field.kind.allows_children() && !field.children.is_empty() => {
                match value {
                    Value::Array(items) => {
                        for item in items {
                            if let Value::Object(object) = item {
                                apply_defaults(object, &field.children, is_update);
                            }
                        }
                    }
                    Value::Object(object) => apply_defaults(object, &field.children, is_update),
                    _ => {}
                }
            }
            current => {
                let Some(default) = field.default.as_ref().filter(|d| truthy(d)) else {
                    continue;
                };
                let apply = match current {
                    Some(Value::Null) => true,
                    Some(_) => false,
                    None => !is_update,
                };
                if apply {
                    document.insert(name.clone(), default.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
