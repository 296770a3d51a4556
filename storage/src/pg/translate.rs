//! A [`Query`] as a SQL condition that PostgreSQL can answer from its indexes: the primary key
//! for `_id`, the GIN index (`jsonb_path_ops`) on `body` for `@?` JSON path tests.
//!
//! The condition is a *superset*: it never drops a document the query matches, and may keep
//! some it does not. Every row it returns is checked with [`Query::matches`], the embedded
//! store's own evaluation, so both stores give the same answers by construction; SQL only
//! narrows. Where no safe narrowing exists (`must_not`, `_kuzzle_info.*`, a `range` with
//! boolean bounds, a `match` on text) the condition is `TRUE` for that clause.
//!
//! Values never enter the SQL text: each JSON path (field names and values as JSON literals,
//! written by serde_json) and each id list is a bound parameter.

use postgres::types::ToSql;
use serde_json::Value;

use crate::mapping::{FieldType, Schema};
use crate::query::{BoolQuery, Query, RangeBounds};

/// Fields with more dots than this are not narrowed (every way of splitting the path into keys
/// is one alternative: 2^dots of them).
const MAX_DOTS: usize = 4;
/// Array levels unwrapped under each key (`[*]` is a no-op on a non-array in lax mode), on top
/// of the one lax mode unwraps by itself (four in all, measured on PostgreSQL 15). A document
/// with arrays nested deeper ([`too_deep`]) is kept `deep` and is a candidate of every query.
const UNWRAP: &str = "[*][*][*]";
/// Arrays directly inside arrays, counted from the outermost, that `UNWRAP` surely handles.
const MAX_ARRAY_NESTING: usize = 3;

/// Whether `body` has arrays nested deeper than the JSON paths unwrap: such documents are
/// kept (`deep`) and always candidates, so they are never missed.
pub(crate) fn too_deep(body: &Value) -> bool {
    fn nesting(value: &Value, run: usize) -> bool {
        match value {
            Value::Array(items) => {
                run + 1 > MAX_ARRAY_NESTING || items.iter().any(|item| nesting(item, run + 1))
            }
            Value::Object(fields) => fields.values().any(|field| nesting(field, 0)),
            _ => false,
        }
    }
    nesting(body, 0)
}

/// A narrowing condition.
#[derive(Debug, Clone, PartialEq)]
enum Condition {
    True,
    False,
    Sql(String),
}

/// Bound parameters. While translating, each is written `$#<slot>#` (a clause dropped by a
/// simplification leaves its parameters unused); `narrow` renumbers those used.
pub(crate) struct Params {
    values: Vec<Box<dyn ToSql + Sync>>,
}

impl Params {
    fn push(&mut self, value: impl ToSql + Sync + 'static) -> String {
        self.values.push(Box::new(value));
        format!("$#{}#", self.values.len() - 1)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &(dyn ToSql + Sync)> {
        self.values.iter().map(|b| &**b as &(dyn ToSql + Sync))
    }
}

/// Replaces each `$#<slot>#` with `$<n>`, numbered from `first` in order of appearance, and
/// keeps only the parameters used, in that order.
fn renumber(sql: &str, params: Params, first: usize) -> (String, Params) {
    let mut slots: Vec<Option<Box<dyn ToSql + Sync>>> =
        params.values.into_iter().map(Some).collect();
    let mut used = Vec::new();
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(start) = rest.find("$#") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('#').expect("a slot ends with #");
        let slot: usize = after[..end].parse().expect("a slot number");
        used.push(slots[slot].take().expect("each slot used once"));
        out.push_str(&format!("${}", first + used.len() - 1));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    (out, Params { values: used })
}

/// The condition for `query` (SQL text over the columns `id` and `body`) and its parameters,
/// numbered from `$first`. `None`: no narrowing, every document of the collection is a
/// candidate. `Some("FALSE")` never happens: an impossible query gives `Some` of a constant.
pub(crate) fn narrow(query: &Query, schema: &Schema, first: usize) -> (Option<String>, Params) {
    let mut params = Params { values: Vec::new() };
    match translate(query, schema, &mut params) {
        Condition::True => (None, Params { values: Vec::new() }),
        Condition::False => (Some("FALSE".to_string()), Params { values: Vec::new() }),
        Condition::Sql(sql) => {
            let (sql, params) = renumber(&sql, params, first);
            (Some(sql), params)
        }
    }
}

fn and(parts: Vec<Condition>) -> Condition {
    let mut sql = Vec::new();
    for part in parts {
        match part {
            Condition::True => {}
            Condition::False => return Condition::False,
            Condition::Sql(s) => sql.push(s),
        }
    }
    match sql.len() {
        0 => Condition::True,
        1 => Condition::Sql(sql.remove(0)),
        _ => Condition::Sql(format!("({})", sql.join(" AND "))),
    }
}

fn or(parts: Vec<Condition>) -> Condition {
    let mut sql = Vec::new();
    for part in parts {
        match part {
            Condition::True => return Condition::True,
            Condition::False => {}
            Condition::Sql(s) => sql.push(s),
        }
    }
    match sql.len() {
        0 => Condition::False,
        1 => Condition::Sql(sql.remove(0)),
        _ => Condition::Sql(format!("({})", sql.join(" OR "))),
    }
}

/// A scalar the embedded store can compare (`compare_values`): string, number or boolean.
fn is_scalar(value: &Value) -> bool {
    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

/// Whether PostgreSQL's exact comparison of this literal agrees with the embedded store's
/// (`compare_values`: integers exactly, anything with a float as doubles). They can only
/// disagree where doubles round integers, from 2^53 on: such a literal is not narrowed.
fn compares_alike(value: &Value) -> bool {
    match value {
        Value::Number(number) => number
            .as_f64()
            .is_some_and(|x| x.abs() < 9_007_199_254_740_992.0),
        _ => true,
    }
}

/// A JSON literal, which is also a JSON path literal (same escapes, same number syntax).
fn literal(value: &Value) -> String {
    value.to_string()
}

/// Every way to read a dotted source path as nested keys (`a.b` is key `a.b`, or `a` then
/// `b`), as JSON path accessors that unwrap arrays under each key. `None` past `MAX_DOTS`.
fn accessors(path: &str) -> Option<Vec<String>> {
    let parts: Vec<&str> = path.split('.').collect();
    if parts.len() > MAX_DOTS + 1 || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let mut out = Vec::new();
    // Bit i set: a key boundary after part i.
    for cuts in 0u32..(1 << (parts.len() - 1)) {
        let mut accessor = String::from("$");
        let mut key = String::from(parts[0]);
        for (i, part) in parts.iter().enumerate().skip(1) {
            if cuts & (1 << (i - 1)) != 0 {
                accessor.push('.');
                accessor.push_str(&literal(&Value::String(std::mem::take(&mut key))));
                accessor.push_str(UNWRAP);
                key.push_str(part);
            } else {
                key.push('.');
                key.push_str(part);
            }
        }
        accessor.push('.');
        accessor.push_str(&literal(&Value::String(key)));
        accessor.push_str(UNWRAP);
        out.push(accessor);
    }
    Some(out)
}

/// `body @? '<accessor> ? (<filter>)'` for each reading of the path, OR-ed.
fn path_test(schema: &Schema, field: &str, filter: &str, params: &mut Params) -> Condition {
    if field.starts_with("_kuzzle_info.") {
        // Kept in columns of their own, not in `body`: no narrowing.
        return Condition::True;
    }
    let Some(accessors) = accessors(schema.source_path(field)) else {
        return Condition::True;
    };
    or(accessors
        .into_iter()
        .map(|accessor| {
            let path = format!("{accessor} ? ({filter})");
            Condition::Sql(format!("body @? {}::text::jsonpath", params.push(path)))
        })
        .collect())
}

fn equal_any(schema: &Schema, field: &str, values: &[&Value], params: &mut Params) -> Condition {
    if field == "_id" {
        let ids: Vec<String> = values
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        if ids.is_empty() {
            return Condition::False;
        }
        return Condition::Sql(format!("id = ANY({}::text[])", params.push(ids)));
    }
    if !values.iter().all(|v| compares_alike(v)) {
        return Condition::True;
    }
    let scalars: Vec<String> = values
        .iter()
        .filter(|v| is_scalar(v))
        .map(|v| format!("@ == {}", literal(v)))
        .collect();
    if scalars.is_empty() {
        // compare_values is None for every value: nothing matches.
        return Condition::False;
    }
    path_test(schema, field, &scalars.join(" || "), params)
}

fn range(schema: &Schema, field: &str, bounds: &RangeBounds, params: &mut Params) -> Condition {
    let bounds = [
        (">", &bounds.gt),
        (">=", &bounds.gte),
        ("<", &bounds.lt),
        ("<=", &bounds.lte),
    ];
    let mut tests = Vec::new();
    for (operator, bound) in bounds {
        match bound {
            None => {}
            // Strings and numbers order the same way in JSON path (code points, exact
            // numbers); booleans may not, and other bounds never match anyway.
            Some(bound @ (Value::String(_) | Value::Number(_))) if compares_alike(bound) => {
                tests.push(format!("@ {operator} {}", literal(bound)))
            }
            Some(_) => return Condition::True,
        }
    }
    if tests.is_empty() || field == "_id" {
        return Condition::True;
    }
    path_test(schema, field, &tests.join(" && "), params)
}

/// Lower-cased alphanumeric runs, as `eval` tokenizes.
fn has_tokens(text: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric())
        .any(|t| !t.is_empty())
}

fn translate(query: &Query, schema: &Schema, params: &mut Params) -> Condition {
    match query {
        Query::MatchAll => Condition::True,
        Query::Ids(ids) => {
            if ids.is_empty() {
                Condition::False
            } else {
                Condition::Sql(format!("id = ANY({}::text[])", params.push(ids.clone())))
            }
        }
        Query::Term { field, value } => equal_any(schema, field, &[value], params),
        Query::Terms { field, values } => {
            equal_any(schema, field, &values.iter().collect::<Vec<_>>(), params)
        }
        Query::Range { field, bounds } => range(schema, field, bounds, params),
        Query::Exists { field } => {
            if field == "_id" {
                Condition::True
            } else {
                path_test(schema, field, "@.type() != \"null\"", params)
            }
        }
        Query::Prefix { field, prefix } => {
            if field == "_id" {
                Condition::Sql(format!(
                    "starts_with(id, {}::text)",
                    params.push(prefix.clone())
                ))
            } else {
                let filter = format!("@ starts with {}", literal(&Value::String(prefix.clone())));
                path_test(schema, field, &filter, params)
            }
        }
        Query::Match {
            field,
            query: wanted,
            ..
        } => {
            // The same rule as `eval`: exact equality, else a token match on strings.
            let exact = field == "_id"
                || field.starts_with("_kuzzle_info.")
                || !wanted.is_string()
                || schema
                    .field(field)
                    .is_some_and(|f| f.field_type == FieldType::Keyword);
            if exact {
                equal_any(schema, field, &[wanted], params)
            } else if !has_tokens(wanted.as_str().unwrap_or_default()) {
                Condition::False
            } else {
                path_test(schema, field, "@.type() == \"string\"", params)
            }
        }
        Query::Bool(b) => translate_bool(b, schema, params),
    }
}

fn translate_bool(b: &BoolQuery, schema: &Schema, params: &mut Params) -> Condition {
    let mut parts: Vec<Condition> = b
        .must
        .iter()
        .chain(&b.filter)
        .map(|q| translate(q, schema, params))
        .collect();
    let required = b.required_should();
    if required > b.should.len() {
        return Condition::False;
    }
    if required > 0 {
        // At least one of them must match: their union is a superset.
        parts.push(or(b
            .should
            .iter()
            .map(|q| translate(q, schema, params))
            .collect()));
    }
    // `must_not` cannot narrow: the complement of a superset is not one.
    and(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accessors_cover_every_reading_of_a_dotted_path() {
        assert_eq!(accessors("a").unwrap(), [r#"$."a"[*][*][*]"#]);
        assert_eq!(
            accessors("a.b").unwrap(),
            [r#"$."a.b"[*][*][*]"#, r#"$."a"[*][*][*]."b"[*][*][*]"#]
        );
        assert_eq!(accessors("a.b.c").unwrap().len(), 4);
        assert_eq!(accessors("a.b.c.d.e.f"), None);
        assert_eq!(
            accessors("q\"x").unwrap(),
            [r#"$."q\"x"[*][*][*]"#],
            "keys are JSON string literals"
        );
    }

    #[test]
    fn deep_arrays_are_flagged() {
        assert!(!too_deep(
            &json!({"a": [[[1]]], "b": {"c": [[[{"d": [[[2]]]}]]]}})
        ));
        assert!(too_deep(&json!({"a": [[[[1]]]]})));
        assert!(too_deep(&json!({"b": {"c": [1, [[[{}]]]]}})));
    }

    #[test]
    fn values_are_parameters_never_sql() {
        let schema = Schema::default();
        let query = Query::parse(&json!({"bool": {
            "must": [{"term": {"city": "x'); DROP TABLE t; --"}}, {"ids": {"values": ["a"]}}],
            "must_not": {"term": {"k": 1}}
        }}))
        .unwrap();
        let (sql, params) = narrow(&query, &schema, 2);
        assert_eq!(
            sql.unwrap(),
            "(body @? $2::text::jsonpath AND id = ANY($3::text[]))"
        );
        assert_eq!(params.values().count(), 2);
        // A clause dropped by a simplification takes its parameters with it.
        let query = Query::parse(&json!({"bool": {"should": [
            {"term": {"a": 1}}, {"match_all": {}}
        ], "filter": {"term": {"b": 2}}}}))
        .unwrap();
        let (sql, params) = narrow(&query, &schema, 2);
        assert_eq!(sql.unwrap(), "body @? $2::text::jsonpath");
        assert_eq!(params.values().count(), 1);
        let (sql, _) = narrow(&Query::MatchAll, &schema, 2);
        assert_eq!(sql, None);
        let impossible = Query::parse(&json!({"terms": {"city": []}})).unwrap();
        assert_eq!(narrow(&impossible, &schema, 2).0.unwrap(), "FALSE");
    }
}
