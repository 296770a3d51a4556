//! Which documents a query can match, read from the secondary index. A plan may return more ids
//! than match (every candidate is checked with `Query::matches`), never fewer. `None` means a
//! full scan: the query touches an unmapped or unindexed field in a way no index can narrow.

use std::collections::BTreeSet;

use redb::ReadableTable;
use serde_json::Value;

use super::keys;
use super::store_error;
use crate::error::Result;
use crate::mapping::{FieldType, Schema};
use crate::query::Query;

pub(super) type Ids = BTreeSet<String>;

/// The ids of the index entries in `[start, end)`.
fn scan(
    index: &impl ReadableTable<&'static [u8], ()>,
    start: &[u8],
    end: &[u8],
    field_prefix_len: usize,
    out: &mut Ids,
) -> Result<()> {
    for entry in index.range(start..end).map_err(store_error)? {
        let (key, _) = entry.map_err(store_error)?;
        if let Some(id) = keys::entry_id(key.value(), field_prefix_len) {
            out.insert(id.to_string());
        }
    }
    Ok(())
}

fn term(
    index: &impl ReadableTable<&'static [u8], ()>,
    field: &str,
    value: &Value,
    out: &mut Ids,
) -> Result<()> {
    let Some(prefix) = keys::value_prefix(field, value) else {
        return Ok(());
    };
    let field_len = keys::field_prefix(field).len();
    scan(index, &prefix, &keys::after_prefix(&prefix), field_len, out)
}

fn tag_of(value: &Value) -> Option<u8> {
    match value {
        Value::Bool(_) => Some(keys::TAG_BOOL),
        Value::Number(_) => Some(keys::TAG_NUMBER),
        Value::String(_) => Some(keys::TAG_STRING),
        _ => None,
    }
}

/// Whether [`candidates`] gives exactly the matches of `query` (every candidate matches): a
/// `term` or `terms` of strings or booleans on an indexed field, whose index entries hold the
/// exact value (numbers may round, see `keys.rs`). A search then needs no document but those
/// of its page.
pub(super) fn is_exact(query: &Query, schema: &Schema) -> bool {
    let exact_value = |value: &Value| matches!(value, Value::String(_) | Value::Bool(_));
    let indexed = |field: &str| !field.starts_with('_') && schema.is_indexed(field);
    match query {
        Query::Term { field, value } => indexed(field) && exact_value(value),
        Query::Terms { field, values } => indexed(field) && values.iter().all(exact_value),
        _ => false,
    }
}

pub(super) fn candidates(
    query: &Query,
    schema: &Schema,
    index: &impl ReadableTable<&'static [u8], ()>,
) -> Result<Option<Ids>> {
    let ids_of = |values: &[&Value]| -> Ids {
        values
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    Ok(match query {
        Query::MatchAll => None,
        Query::Ids(ids) => Some(ids.iter().cloned().collect()),
        Query::Term { field, value } if field == "_id" => Some(ids_of(&[value])),
        Query::Terms { field, values } if field == "_id" => {
            Some(ids_of(&values.iter().collect::<Vec<_>>()))
        }
        Query::Match { field, query, .. } if field == "_id" => Some(ids_of(&[query])),
        Query::Term { field, value } if schema.is_indexed(field) => {
            let mut out = Ids::new();
            term(index, field, value, &mut out)?;
            Some(out)
        }
        Query::Terms { field, values } if schema.is_indexed(field) => {
            let mut out = Ids::new();
            for value in values {
                term(index, field, value, &mut out)?;
            }
            Some(out)
        }
        Query::Match { field, query, .. }
            if schema.is_indexed(field)
                && (!query.is_string()
                    || schema
                        .field(field)
                        .is_some_and(|f| f.field_type == FieldType::Keyword)) =>
        {
            let mut out = Ids::new();
            term(index, field, query, &mut out)?;
            Some(out)
        }
        Query::Range { field, bounds } if schema.is_indexed(field) => {
            let present: Vec<&Value> = [&bounds.gt, &bounds.gte, &bounds.lt, &bounds.lte]
                .into_iter()
                .flatten()
                .collect();
            let tags: BTreeSet<Option<u8>> = present.iter().map(|v| tag_of(v)).collect();
            match tags.into_iter().collect::<Vec<_>>().as_slice() {
                // No bound: every value of the field.
                [] => {
                    let prefix = keys::field_prefix(field);
                    let mut out = Ids::new();
                    scan(
                        index,
                        &prefix,
                        &keys::after_prefix(&prefix),
                        prefix.len(),
                        &mut out,
                    )?;
                    Some(out)
                }
                [Some(tag)] => {
                    let field_prefix = keys::field_prefix(field);
                    let lower = bounds.gt.as_ref().or(bounds.gte.as_ref());
                    let upper = bounds.lt.as_ref().or(bounds.lte.as_ref());
                    // Inclusive on both sides: the exclusive ends are checked by `matches`.
                    let start = match lower {
                        Some(bound) => keys::value_prefix(field, bound).expect("a scalar bound"),
                        None => [field_prefix.as_slice(), &[*tag]].concat(),
                    };
                    let end = match upper {
                        Some(bound) => keys::after_prefix(
                            &keys::value_prefix(field, bound).expect("a scalar bound"),
                        ),
                        None => [field_prefix.as_slice(), &[*tag + 1]].concat(),
                    };
                    let mut out = Ids::new();
                    if start < end {
                        scan(index, &start, &end, field_prefix.len(), &mut out)?;
                    }
                    Some(out)
                }
                // Bounds of different types never match together.
                _ => Some(Ids::new()),
            }
        }
        Query::Exists { field } if schema.is_indexed(field) => {
            let prefix = keys::field_prefix(field);
            let mut out = Ids::new();
            scan(
                index,
                &prefix,
                &keys::after_prefix(&prefix),
                prefix.len(),
                &mut out,
            )?;
            Some(out)
        }
        Query::Prefix { field, prefix } if schema.is_indexed(field) => {
            let start = keys::string_prefix(field, prefix);
            let mut out = Ids::new();
            let field_len = keys::field_prefix(field).len();
            scan(
                index,
                &start,
                &keys::after_prefix(&start),
                field_len,
                &mut out,
            )?;
            Some(out)
        }
        Query::Bool(b) => {
            let mut required: Option<Ids> = None;
            for clause in b.must.iter().chain(&b.filter) {
                if let Some(ids) = candidates(clause, schema, index)? {
                    required = Some(match required {
                        None => ids,
                        Some(acc) => acc.intersection(&ids).cloned().collect(),
                    });
                }
            }
            if required.is_some() {
                required
            } else if b.must.is_empty() && b.filter.is_empty() && b.required_should() >= 1 {
                // Every match matches one of the should clauses: the union, if each has a plan.
                let mut union = Ids::new();
                for clause in &b.should {
                    match candidates(clause, schema, index)? {
                        Some(ids) => union.extend(ids),
                        None => return Ok(None),
                    }
                }
                Some(union)
            } else {
                None
            }
        }
        _ => None,
    })
}
