//! A [`Query`] as a SQL condition that PostgreSQL can answer from its indexes: the primary key
//! for `_id`, the GIN index (`jsonb_path_ops`) on `body` for `@?` JSON path tests, the btree
//! indexes of `switchyard_terms` (see `terms`) for `range` and `prefix` on indexed fields.
//!
//! The condition is a *superset*: it never drops a document the query matches, and may keep
//! some it does not. Every row it returns is checked with [`Query::matches`], the embedded
//! store's own evaluation, so both stores give the same answers by construction; SQL only
//! narrows. Where no safe narrowing exists (`must_not`, `_kuzzle_info.*` but a `range` or
//! `prefix` on an indexed one, a `match` on text) the condition is `TRUE` for that clause.
//!
//! Values never enter the SQL text: each JSON path (field names and values as JSON literals,
//! written by serde_json), each id list, field name and bound is a bound parameter. `$1` is
//! the collection's `cid` (the terms subqueries read it).
//!
//! `deep` documents (arrays nested deeper than the JSON paths unwrap) are candidates of every
//! JSON path test: such a test becomes `(deep OR <test>)`, once, at the outermost `AND`/`OR`
//! made only of JSON path tests. Tests on `id` and on `switchyard_terms` (which holds every
//! value, however deep) need no such escape, so `deep` does not stop PostgreSQL from driving a
//! search from their indexes.

use postgres::types::ToSql;
use serde_json::Value;

use super::terms;
use crate::mapping::{FieldType, Schema};
use crate::query::{compare_values, BoolQuery, Query, RangeBounds};

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
    /// Made of JSON path tests only: misses `deep` documents until wrapped (`with_deep`).
    Sql(String),
    /// Holds for `deep` documents as for the others.
    Exact(String),
    /// A subquery giving the candidates' ids (from `switchyard_terms`): an `OR` of them is one
    /// `UNION ALL` (PostgreSQL cannot join through `id IN (…) OR id IN (…)`: it would test
    /// every document of the collection against both).
    Ids(String),
}

impl Condition {
    /// The condition as SQL that holds for `deep` documents too: a JSON path test lets them
    /// through, a subquery of ids becomes a test on `id`.
    fn with_deep(self) -> Condition {
        match self {
            Condition::Sql(sql) => Condition::Exact(format!("(deep OR {sql})")),
            Condition::Ids(query) => Condition::Exact(format!("id IN ({query})")),
            other => other,
        }
    }
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
    match translate(query, schema, &mut params).with_deep() {
        Condition::True => (None, Params { values: Vec::new() }),
        Condition::False => (Some("FALSE".to_string()), Params { values: Vec::new() }),
        Condition::Sql(sql) | Condition::Exact(sql) | Condition::Ids(sql) => {
            let (sql, params) = renumber(&sql, params, first);
            (Some(sql), params)
        }
    }
}

/// `parts` joined with `operator`, `None` when there are none; JSON path tests stay
/// unwrapped while every part is one (see the module's note on `deep`).
fn join(mut parts: Vec<Condition>, operator: &str) -> Option<Condition> {
    if parts.len() < 2 {
        return parts.pop();
    }
    if operator == " OR " && parts.iter().all(|p| matches!(p, Condition::Ids(_))) {
        let queries: Vec<String> = parts
            .into_iter()
            .filter_map(|part| match part {
                Condition::Ids(query) => Some(query),
                _ => None,
            })
            .collect();
        return Some(Condition::Ids(queries.join(" UNION ALL ")));
    }
    let json_only = parts.iter().all(|p| matches!(p, Condition::Sql(_)));
    let mut sql: Vec<String> = parts
        .into_iter()
        .map(
            |part| match if json_only { part } else { part.with_deep() } {
                Condition::Sql(s) | Condition::Exact(s) => s,
                _ => unreachable!("constants are removed before joining, subqueries rendered"),
            },
        )
        .collect();
    let joined = match sql.len() {
        0 => return None,
        1 => sql.remove(0),
        _ => format!("({})", sql.join(operator)),
    };
    Some(if json_only {
        Condition::Sql(joined)
    } else {
        Condition::Exact(joined)
    })
}

fn and(parts: Vec<Condition>) -> Condition {
    let mut kept = Vec::new();
    for part in parts {
        match part {
            Condition::True => {}
            Condition::False => return Condition::False,
            other => kept.push(other),
        }
    }
    join(kept, " AND ").unwrap_or(Condition::True)
}

fn or(parts: Vec<Condition>) -> Condition {
    let mut kept = Vec::new();
    for part in parts {
        match part {
            Condition::True => return Condition::True,
            Condition::False => {}
            other => kept.push(other),
        }
    }
    join(kept, " OR ").unwrap_or(Condition::False)
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
        // An id with NUL is never stored (nor may it be a parameter).
        let ids: Vec<String> = values
            .iter()
            .filter_map(|v| v.as_str().filter(|id| !id.contains('\0')))
            .map(str::to_string)
            .collect();
        if ids.is_empty() {
            return Condition::False;
        }
        return Condition::Exact(format!("id = ANY({}::text[])", params.push(ids)));
    }
    if !values.iter().all(|v| compares_alike(v)) {
        return Condition::True;
    }
    let scalars: Vec<String> = values
        .iter()
        // A string with NUL equals nothing stored (PostgreSQL holds none), nor can it be a
        // JSON path literal.
        .filter(|v| is_scalar(v) && !v.as_str().is_some_and(|s| s.contains('\0')))
        .map(|v| format!("@ == {}", literal(v)))
        .collect();
    if scalars.is_empty() {
        // compare_values is None for every value: nothing matches.
        return Condition::False;
    }
    path_test(schema, field, &scalars.join(" || "), params)
}

/// The ids of the rows of `switchyard_terms` for `field` passing `tests` (over `num` or
/// `str`).
fn terms_test(field: &str, tests: &[String], params: &mut Params) -> Condition {
    let field = params.push(field.to_string());
    Condition::Ids(format!(
        "SELECT t.id FROM switchyard_terms t WHERE t.cid = $1 AND t.field = {field}::text AND {}",
        tests.join(" AND ")
    ))
}

/// A prefix on a field of `switchyard_terms`: its strings in `[prefix, successor)`.
fn prefix_terms(field: &str, prefix: &str, params: &mut Params) -> Condition {
    let Some((lower, upper)) = terms::prefix_range(prefix) else {
        // No stored string holds a NUL.
        return Condition::False;
    };
    let mut tests = vec![format!(
        "t.str >= {}::text COLLATE \"C\"",
        params.push(lower)
    )];
    if let Some(upper) = upper {
        tests.push(format!(
            "t.str < {}::text COLLATE \"C\"",
            params.push(upper)
        ));
    }
    terms_test(field, &tests, params)
}

/// Which of `false` and `true` are within boolean `bounds` (`compare_values`, as `eval`).
fn booleans_in(bounds: &RangeBounds) -> Vec<Value> {
    [false, true]
        .into_iter()
        .map(Value::Bool)
        .filter(|value| {
            let within = |bound: &Option<Value>, ok: fn(std::cmp::Ordering) -> bool| {
                bound
                    .as_ref()
                    .is_none_or(|bound| compare_values(value, bound).is_some_and(ok))
            };
            within(&bounds.gt, |o| o.is_gt())
                && within(&bounds.gte, |o| o.is_ge())
                && within(&bounds.lt, |o| o.is_lt())
                && within(&bounds.lte, |o| o.is_le())
        })
        .collect()
}

fn range(schema: &Schema, field: &str, bounds: &RangeBounds, params: &mut Params) -> Condition {
    let present: Vec<&Value> = [&bounds.gt, &bounds.gte, &bounds.lt, &bounds.lte]
        .into_iter()
        .flatten()
        .collect();
    if field != "_id" && !present.is_empty() {
        let same = |kind: fn(&Value) -> bool| present.iter().all(|v| kind(v));
        if same(Value::is_boolean) {
            let values = booleans_in(bounds);
            return if values.is_empty() {
                Condition::False
            } else {
                equal_any(schema, field, &values.iter().collect::<Vec<_>>(), params)
            };
        }
        if !same(Value::is_number) && !same(Value::is_string) {
            // A value compares with bounds of its own type only: mixed or non-scalar bounds
            // never match.
            return Condition::False;
        }
        if terms::is_termed(schema, field) {
            let mut tests = Vec::new();
            for (bound, strict, inclusive) in [
                (&bounds.gt, ">", ">="),
                (&bounds.gte, ">=", ">="),
                (&bounds.lt, "<", "<="),
                (&bounds.lte, "<=", "<="),
            ] {
                // Inclusive where doubles or cut strings may tie while the values differ: a
                // number from 2^53 on, a string of `MAX_STR_CHARS` characters or more, or
                // with NUL (`terms::string_bound`).
                match bound {
                    Some(bound @ Value::Number(n)) => tests.push(format!(
                        "t.num {} {}::float8",
                        if compares_alike(bound) {
                            strict
                        } else {
                            inclusive
                        },
                        params.push(n.as_f64().unwrap_or(0.0))
                    )),
                    Some(Value::String(s)) => {
                        let exact =
                            !s.contains('\0') && s.chars().nth(terms::MAX_STR_CHARS - 1).is_none();
                        tests.push(format!(
                            "t.str {} {}::text COLLATE \"C\"",
                            if exact { strict } else { inclusive },
                            params.push(terms::string_bound(s))
                        ))
                    }
                    _ => {}
                }
            }
            let column = if same(Value::is_number) { "num" } else { "str" };
            tests.push(format!("t.{column} IS NOT NULL"));
            return terms_test(field, &tests, params);
        }
    }
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
            // No stored string holds NUL, nor may a JSON path literal: a bound `x\0y` selects
            // what `x` does, inclusive (see `terms::string_bound`).
            Some(Value::String(text)) if text.contains('\0') => {
                let inclusive = if operator.starts_with('>') {
                    ">="
                } else {
                    "<="
                };
                let cut = Value::String(text.split('\0').next().unwrap_or_default().into());
                tests.push(format!("@ {inclusive} {}", literal(&cut)))
            }
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
            let ids: Vec<String> = ids
                .iter()
                .filter(|id| !id.contains('\0'))
                .cloned()
                .collect();
            if ids.is_empty() {
                Condition::False
            } else {
                Condition::Exact(format!("id = ANY({}::text[])", params.push(ids)))
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
            if field == "_id" && prefix.contains('\0') {
                Condition::False
            } else if field == "_id" {
                Condition::Exact(format!(
                    "starts_with(id, {}::text)",
                    params.push(prefix.clone())
                ))
            } else if terms::is_termed(schema, field) {
                prefix_terms(field, prefix, params)
            } else if prefix.contains('\0') {
                Condition::False
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
            "((deep OR body @? $2::text::jsonpath) AND id = ANY($3::text[]))"
        );
        assert_eq!(params.values().count(), 2);
        // A clause dropped by a simplification takes its parameters with it.
        let query = Query::parse(&json!({"bool": {"should": [
            {"term": {"a": 1}}, {"match_all": {}}
        ], "filter": {"term": {"b": 2}}}}))
        .unwrap();
        let (sql, params) = narrow(&query, &schema, 2);
        assert_eq!(sql.unwrap(), "(deep OR body @? $2::text::jsonpath)");
        assert_eq!(params.values().count(), 1);
        let (sql, _) = narrow(&Query::MatchAll, &schema, 2);
        assert_eq!(sql, None);
        let impossible = Query::parse(&json!({"terms": {"city": []}})).unwrap();
        assert_eq!(narrow(&impossible, &schema, 2).0.unwrap(), "FALSE");
    }

    #[test]
    fn range_and_prefix_on_indexed_fields_read_the_terms_table() {
        let schema = Schema::from_mapping(&json!({"properties": {
            "city": {"type": "keyword"}, "age": {"type": "integer"}, "bio": {"type": "text"}
        }}))
        .unwrap();
        let sql = |query: Value| narrow(&Query::parse(&query).unwrap(), &schema, 2).0;
        let terms = "id IN (SELECT t.id FROM switchyard_terms t WHERE t.cid = $1 AND t.field = ";
        assert_eq!(
            sql(json!({"range": {"age": {"gt": 3, "lte": 9}}})).unwrap(),
            format!("{terms}$2::text AND t.num > $3::float8 AND t.num <= $4::float8 AND t.num IS NOT NULL)")
        );
        assert_eq!(
            sql(json!({"prefix": {"city": "ab"}})).unwrap(),
            format!("{terms}$2::text AND t.str >= $3::text COLLATE \"C\" AND t.str < $4::text COLLATE \"C\")")
        );
        // Bounds where doubles round are inclusive.
        assert_eq!(
            sql(json!({"range": {"age": {"lt": 9_007_199_254_740_993u64}}})).unwrap(),
            format!("{terms}$2::text AND t.num <= $3::float8 AND t.num IS NOT NULL)")
        );
        // Only the JSON path test lets `deep` documents through.
        assert_eq!(
            sql(json!({"bool": {"must": [{"prefix": {"city": "a"}}, {"term": {"bio": "x"}}]}}))
                .unwrap(),
            format!("({terms}$2::text AND t.str >= $3::text COLLATE \"C\" AND t.str < $4::text COLLATE \"C\") AND (deep OR body @? $5::text::jsonpath))")
        );
        // Alternatives from the table: one subquery.
        assert_eq!(
            sql(json!({"bool": {"should": [{"prefix": {"city": "a"}}, {"range": {"age": {"gte": 3}}}]}}))
                .unwrap(),
            format!("{terms}$2::text AND t.str >= $3::text COLLATE \"C\" AND t.str < $4::text COLLATE \"C\" UNION ALL SELECT t.id FROM switchyard_terms t WHERE t.cid = $1 AND t.field = $5::text AND t.num >= $6::float8 AND t.num IS NOT NULL)")
        );
        // Unindexed: the JSON path filter, as before.
        assert_eq!(
            sql(json!({"prefix": {"bio": "a"}})).unwrap(),
            "(deep OR body @? $2::text::jsonpath)"
        );
        assert_eq!(sql(json!({"prefix": {"city": "a\u{0}"}})).unwrap(), "FALSE");
        assert_eq!(
            sql(json!({"range": {"age": {"gt": 1, "lt": "9"}}})).unwrap(),
            "FALSE"
        );
        assert_eq!(sql(json!({"range": {"age": {}}})), None);
    }
}
