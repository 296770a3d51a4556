//! Evaluating a [`Query`] against one document, and the value order used by `range`, `sort` and
//! `search_after`.

use std::cmp::Ordering;

use serde_json::{Number, Value};

use super::{Query, RangeBounds};
use crate::mapping::{FieldType, Schema};
use crate::{Document, KuzzleInfo};

/// Every leaf value at a dotted path, arrays flattened (as Elasticsearch indexes them). `_id` and
/// `_kuzzle_info.*` come from the document's own fields.
pub(crate) fn field_values(document: &Document, path: &str) -> Vec<Value> {
    values_at(&document.source, &document.info, &document.id, path)
}

/// [`field_values`] of a document given by its parts (a write that has no `Document`).
pub(crate) fn values_at(source: &Value, info: &KuzzleInfo, id: &str, path: &str) -> Vec<Value> {
    if path == "_id" {
        return vec![Value::String(id.to_string())];
    }
    if let Some(name) = path.strip_prefix("_kuzzle_info.") {
        return info.field(name).into_iter().collect();
    }
    let mut out = Vec::new();
    collect(source, path, &mut out);
    out
}

fn collect(value: &Value, path: &str, out: &mut Vec<Value>) {
    match value {
        Value::Array(items) => {
            for item in items {
                collect(item, path, out);
            }
        }
        Value::Object(map) if !path.is_empty() => {
            // The whole remaining path may be one key containing dots; try that first.
            if let Some(found) = map.get(path) {
                collect(found, "", out);
            }
            for (at, _) in path.match_indices('.') {
                if let Some(child) = map.get(&path[..at]) {
                    collect(child, &path[at + 1..], out);
                }
            }
        }
        Value::Null => {}
        leaf if path.is_empty() => out.push(leaf.clone()),
        _ => {}
    }
}

fn compare_numbers(a: &Number, b: &Number) -> Ordering {
    if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
        return a.cmp(&b);
    }
    if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
        return a.cmp(&b);
    }
    let (a, b) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
    a.partial_cmp(&b).unwrap_or(Ordering::Equal)
}

/// Same-type comparison: numbers with numbers, strings with strings (bytes), booleans with
/// booleans. `None` for different types: a `range` bound of another type never matches.
pub fn compare_values(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => Some(compare_numbers(a, b)),
        (Value::String(a), Value::String(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

/// A total order for sorting: missing last, then booleans, numbers, strings.
pub(crate) fn sort_order(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Bool(_) => 0,
            Value::Number(_) => 1,
            Value::String(_) => 2,
            _ => 3,
        }
    }
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(a), Some(b)) => compare_values(a, b).unwrap_or_else(|| rank(a).cmp(&rank(b))),
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    compare_values(a, b) == Some(Ordering::Equal)
}

fn in_range(value: &Value, bounds: &RangeBounds) -> bool {
    let check = |bound: &Option<Value>, ok: fn(Ordering) -> bool| match bound {
        None => true,
        Some(bound) => compare_values(value, bound).is_some_and(ok),
    };
    check(&bounds.gt, |o| o == Ordering::Greater)
        && check(&bounds.gte, |o| o != Ordering::Less)
        && check(&bounds.lt, |o| o == Ordering::Less)
        && check(&bounds.lte, |o| o != Ordering::Greater)
}

/// Lower-cased alphanumeric runs: a rough standard analyzer.
fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

impl Query {
    /// Whether `document` matches. `schema` says which strings are keywords (exact `match`).
    pub fn matches(&self, document: &Document, schema: &Schema) -> bool {
        let values = |field: &str| field_values(document, schema.source_path(field));
        match self {
            Query::MatchAll => true,
            Query::Ids(ids) => ids.contains(&document.id),
            Query::Term { field, value } => values(field).iter().any(|v| equal(v, value)),
            Query::Terms {
                field,
                values: wanted,
            } => values(field)
                .iter()
                .any(|v| wanted.iter().any(|w| equal(v, w))),
            Query::Range { field, bounds } => values(field).iter().any(|v| in_range(v, bounds)),
            Query::Exists { field } => !values(field).is_empty(),
            Query::Prefix { field, prefix } => values(field)
                .iter()
                .any(|v| v.as_str().is_some_and(|s| s.starts_with(prefix.as_str()))),
            Query::Match {
                field,
                query,
                operator_and,
            } => {
                let exact = field == "_id"
                    || field.starts_with("_kuzzle_info.")
                    || !query.is_string()
                    || schema
                        .field(field)
                        .is_some_and(|f| f.field_type == FieldType::Keyword);
                let found = values(field);
                if exact {
                    return found.iter().any(|v| equal(v, query));
                }
                let wanted = tokens(query.as_str().unwrap_or_default());
                if wanted.is_empty() {
                    return false;
                }
                let have: Vec<String> = found
                    .iter()
                    .filter_map(Value::as_str)
                    .flat_map(tokens)
                    .collect();
                let present = |t: &String| have.contains(t);
                if *operator_and {
                    wanted.iter().all(present)
                } else {
                    wanted.iter().any(present)
                }
            }
            Query::Bool(b) => {
                b.must.iter().all(|q| q.matches(document, schema))
                    && b.filter.iter().all(|q| q.matches(document, schema))
                    && !b.must_not.iter().any(|q| q.matches(document, schema))
                    && b.should
                        .iter()
                        .filter(|q| q.matches(document, schema))
                        .take(b.required_should())
                        .count()
                        >= b.required_should()
            }
        }
    }
}
