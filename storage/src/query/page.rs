//! Sorting matches, `search_after`, and cutting the `from`/`size` page.

use std::cmp::Ordering;

use serde_json::Value;

use super::eval::{field_values, sort_order};
use super::{SearchPage, SearchRequest, SortKey};
use crate::mapping::Schema;
use crate::Document;

/// The sort value of one key: the smallest value ascending, the largest descending (as
/// Elasticsearch does for arrays), `None` when missing.
fn sort_value(document: &Document, key: &SortKey, schema: &Schema) -> Option<Value> {
    let values = field_values(document, schema.source_path(&key.field));
    let pick = if key.descending {
        Iterator::max_by
    } else {
        Iterator::min_by
    };
    pick(values.into_iter(), |a: &Value, b: &Value| {
        sort_order(Some(a), Some(b))
    })
}

/// Compares two sort tuples (the keys' values, then `_id`) over the first `len` positions.
fn compare(a: &[Option<Value>], b: &[Option<Value>], sort: &[SortKey]) -> Ordering {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let descending = sort.get(i).is_some_and(|k| k.descending);
        let mut order = sort_order(x.as_ref(), y.as_ref());
        // Missing values stay last in both directions.
        if descending && x.is_some() && y.is_some() {
            order = order.reverse();
        }
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

/// Sorts `matches`, drops those not after `search_after`, and keeps the requested page.
pub(crate) fn page(matches: Vec<Document>, request: &SearchRequest, schema: &Schema) -> SearchPage {
    let total = matches.len() as u64;
    let mut keyed: Vec<(Vec<Option<Value>>, Document)> = matches
        .into_iter()
        .map(|document| {
            let mut key: Vec<Option<Value>> = request
                .sort
                .iter()
                .map(|k| sort_value(&document, k, schema))
                .collect();
            key.push(Some(Value::String(document.id.clone())));
            (key, document)
        })
        .collect();
    keyed.sort_by(|(a, _), (b, _)| compare(a, b, &request.sort));
    if let Some(after) = &request.search_after {
        let after: Vec<Option<Value>> = after
            .iter()
            .map(|v| (!v.is_null()).then(|| v.clone()))
            .collect();
        let len = after.len().min(request.sort.len() + 1);
        keyed.retain(|(key, _)| {
            compare(&key[..len], &after[..len], &request.sort) == Ordering::Greater
        });
    }
    let hits: Vec<(Vec<Option<Value>>, Document)> = keyed
        .into_iter()
        .skip(request.from)
        .take(request.size)
        .collect();
    let next_search_after = hits.last().map(|(key, _)| {
        key.iter()
            .map(|v| v.clone().unwrap_or(Value::Null))
            .collect()
    });
    SearchPage {
        total,
        hits: hits.into_iter().map(|(_, d)| d).collect(),
        next_search_after,
    }
}
