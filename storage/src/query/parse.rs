//! From Elasticsearch JSON to [`Query`] and [`SearchRequest`], with Kuzzle's errors.

use serde_json::{Map, Value};

use super::{BoolQuery, Query, RangeBounds, SearchRequest, SortKey};
use crate::QueryError;

/// Search body keys Kuzzle lets through to Elasticsearch (`elasticsearch.ts` `searchBodyKeys`).
const BODY_KEYS: &[&str] = &[
    "aggregations",
    "aggs",
    "collapse",
    "explain",
    "fields",
    "from",
    "highlight",
    "post_filter",
    "query",
    "search_after",
    "search_timeout",
    "size",
    "sort",
    "suggest",
    "_name",
    "_source",
    "_source_excludes",
    "_source_includes",
];

/// Whitelisted body keys that change the answer and that this store does not implement.
const UNSUPPORTED_BODY_KEYS: &[&str] = &[
    "aggregations",
    "aggs",
    "collapse",
    "fields",
    "highlight",
    "post_filter",
    "suggest",
    "_source_excludes",
    "_source_includes",
];

/// Elasticsearch query clauses outside the subset: refused as unsupported rather than reported
/// as not being Elasticsearch.
const UNSUPPORTED_CLAUSES: &[&str] = &[
    "boosting",
    "combined_fields",
    "constant_score",
    "dis_max",
    "distance_feature",
    "function_score",
    "fuzzy",
    "geo_bounding_box",
    "geo_distance",
    "geo_polygon",
    "geo_shape",
    "has_child",
    "has_parent",
    "intervals",
    "match_bool_prefix",
    "match_none",
    "match_phrase",
    "match_phrase_prefix",
    "more_like_this",
    "multi_match",
    "nested",
    "parent_id",
    "percolate",
    "pinned",
    "query_string",
    "rank_feature",
    "regexp",
    "script",
    "script_score",
    "shape",
    "simple_query_string",
    "span_containing",
    "span_first",
    "span_multi",
    "span_near",
    "span_not",
    "span_or",
    "span_term",
    "span_within",
    "terms_set",
    "wildcard",
    "wrapper",
];

fn malformed(keyword: &str, reason: impl Into<String>) -> QueryError {
    QueryError::Malformed {
        keyword: keyword.into(),
        reason: reason.into(),
    }
}

pub(super) fn search_body(
    body: &Value,
    from: Option<usize>,
    size: Option<usize>,
) -> Result<SearchRequest, QueryError> {
    let empty = Map::new();
    let body = match body {
        Value::Null => &empty,
        Value::Object(map) => map,
        _ => return Err(malformed("body", "a search body is a JSON object")),
    };
    for key in body.keys() {
        if !BODY_KEYS.contains(&key.as_str()) {
            return Err(QueryError::ForbiddenArgument {
                argument: key.clone(),
            });
        }
        if UNSUPPORTED_BODY_KEYS.contains(&key.as_str()) {
            return Err(QueryError::Unsupported {
                keyword: key.clone(),
            });
        }
    }
    if let Some(source) = body.get("_source") {
        if source != &Value::Bool(true) {
            return Err(QueryError::Unsupported {
                keyword: "_source".into(),
            });
        }
    }
    let query = match body.get("query") {
        None | Some(Value::Null) => Query::MatchAll,
        Some(query) => self::query(query)?,
    };
    let number = |key: &str| -> Result<Option<usize>, QueryError> {
        match body.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value
                .as_u64()
                .map(|n| Some(n as usize))
                .ok_or_else(|| malformed(key, "a non-negative integer is expected")),
        }
    };
    let from = match from {
        Some(from) => from,
        None => number("from")?.unwrap_or(0),
    };
    let size = match size {
        Some(size) => size,
        None => number("size")?.unwrap_or(SearchRequest::DEFAULT_SIZE),
    };
    let sort = match body.get("sort") {
        None | Some(Value::Null) => Vec::new(),
        Some(sort) => self::sort(sort)?,
    };
    let search_after = match body.get("search_after") {
        None | Some(Value::Null) => None,
        Some(Value::Array(values)) => Some(values.clone()),
        Some(_) => return Err(malformed("search_after", "an array is expected")),
    };
    Ok(SearchRequest {
        query,
        sort,
        from,
        size,
        search_after,
    })
}

/// `"f"`, `{f: "desc"}`, `{f: {order: "desc"}}`, or an array of those. `_score` is dropped (every
/// hit scores 1).
fn sort(sort: &Value) -> Result<Vec<SortKey>, QueryError> {
    let items: Vec<&Value> = match sort {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut keys = Vec::new();
    for item in items {
        let (field, order) = match item {
            Value::String(field) => (field.clone(), None),
            Value::Object(map) if map.len() == 1 => {
                let (field, spec) = map.iter().next().expect("one entry");
                let order = match spec {
                    Value::String(order) => Some(order.as_str()),
                    Value::Object(spec) => {
                        for key in spec.keys() {
                            if !matches!(key.as_str(), "order" | "missing" | "unmapped_type") {
                                return Err(QueryError::Unsupported {
                                    keyword: format!("sort.{key}"),
                                });
                            }
                        }
                        spec.get("order").and_then(Value::as_str)
                    }
                    _ => return Err(malformed("sort", "a sort order is \"asc\" or \"desc\"")),
                };
                (field.clone(), order)
            }
            _ => {
                return Err(malformed(
                    "sort",
                    "a sort key is a field name or {field: order}",
                ))
            }
        };
        let descending = match order {
            None => field == "_score",
            Some("asc") => false,
            Some("desc") => true,
            Some(other) => return Err(malformed("sort", format!("unknown order \"{other}\""))),
        };
        if field != "_score" {
            keys.push(SortKey { field, descending });
        }
    }
    Ok(keys)
}

pub(super) fn query(query: &Value) -> Result<Query, QueryError> {
    let Value::Object(map) = query else {
        return Err(malformed("query", "a query clause is a JSON object"));
    };
    if map.is_empty() {
        return Ok(Query::MatchAll);
    }
    if map.len() > 1 {
        let keys: Vec<&str> = map.keys().map(String::as_str).collect();
        return Err(malformed(
            "query",
            format!("one clause per object, found {}", keys.join(", ")),
        ));
    }
    let (keyword, body) = map.iter().next().expect("one entry");
    match keyword.as_str() {
        "match_all" => Ok(Query::MatchAll),
        "ids" => ids(body),
        "term" => term(body),
        "terms" => terms(body),
        "range" => range(body),
        "exists" => exists(body),
        "prefix" => prefix(body),
        "match" => match_clause(body),
        "bool" => bool_clause(body),
        other if UNSUPPORTED_CLAUSES.contains(&other) => Err(QueryError::Unsupported {
            keyword: other.into(),
        }),
        other => Err(QueryError::UnknownKeyword {
            keyword: other.into(),
        }),
    }
}

fn object<'a>(keyword: &str, body: &'a Value) -> Result<&'a Map<String, Value>, QueryError> {
    body.as_object()
        .ok_or_else(|| malformed(keyword, "an object is expected"))
}

/// The one `{field: spec}` entry of a field clause, ignoring `boost` and `_name`.
fn field_entry<'a>(keyword: &str, body: &'a Value) -> Result<(&'a String, &'a Value), QueryError> {
    let mut entries = object(keyword, body)?
        .iter()
        .filter(|(key, _)| !matches!(key.as_str(), "boost" | "_name"));
    match (entries.next(), entries.next()) {
        (Some(entry), None) => Ok(entry),
        _ => Err(malformed(keyword, "exactly one field is expected")),
    }
}

fn scalar(keyword: &str, value: &Value) -> Result<Value, QueryError> {
    match value {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(value.clone()),
        _ => Err(malformed(
            keyword,
            "a string, number or boolean is expected",
        )),
    }
}

/// A clause's value and, in the long form, its options.
type LongForm<'a> = (&'a Value, Option<&'a Map<String, Value>>);

/// `{value: v, …}` or a bare `v`; unknown options of the long form are refused.
fn long_form<'a>(
    keyword: &str,
    spec: &'a Value,
    value_key: &str,
    allowed: &[&str],
) -> Result<LongForm<'a>, QueryError> {
    match spec {
        Value::Object(options) => {
            for key in options.keys() {
                if key != value_key
                    && !matches!(key.as_str(), "boost" | "_name")
                    && !allowed.contains(&key.as_str())
                {
                    return Err(QueryError::Unsupported {
                        keyword: format!("{keyword}.{key}"),
                    });
                }
            }
            let value = options
                .get(value_key)
                .ok_or_else(|| malformed(keyword, format!("\"{value_key}\" is missing")))?;
            Ok((value, Some(options)))
        }
        other => Ok((other, None)),
    }
}

fn ids(body: &Value) -> Result<Query, QueryError> {
    let values = object("ids", body)?
        .get("values")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("ids", "\"values\" must be an array"))?;
    values
        .iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            _ => Err(malformed("ids", "ids are strings")),
        })
        .collect::<Result<_, _>>()
        .map(Query::Ids)
}

fn term(body: &Value) -> Result<Query, QueryError> {
    let (field, spec) = field_entry("term", body)?;
    let (value, _) = long_form("term", spec, "value", &[])?;
    Ok(Query::Term {
        field: field.clone(),
        value: scalar("term", value)?,
    })
}

fn terms(body: &Value) -> Result<Query, QueryError> {
    let (field, values) = field_entry("terms", body)?;
    let Value::Array(values) = values else {
        return Err(malformed("terms", "an array of values is expected"));
    };
    Ok(Query::Terms {
        field: field.clone(),
        values: values
            .iter()
            .map(|v| scalar("terms", v))
            .collect::<Result<_, _>>()?,
    })
}

fn range(body: &Value) -> Result<Query, QueryError> {
    let (field, spec) = field_entry("range", body)?;
    let spec = object("range", spec)?;
    let mut bounds = RangeBounds::default();
    for (key, value) in spec {
        let slot = match key.as_str() {
            "gt" => &mut bounds.gt,
            "gte" | "from" => &mut bounds.gte,
            "lt" => &mut bounds.lt,
            "lte" | "to" => &mut bounds.lte,
            "boost" | "_name" => continue,
            other => {
                return Err(QueryError::Unsupported {
                    keyword: format!("range.{other}"),
                })
            }
        };
        if !value.is_null() {
            *slot = Some(scalar("range", value)?);
        }
    }
    Ok(Query::Range {
        field: field.clone(),
        bounds: Box::new(bounds),
    })
}

fn exists(body: &Value) -> Result<Query, QueryError> {
    let field = object("exists", body)?
        .get("field")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("exists", "\"field\" must be a string"))?;
    Ok(Query::Exists {
        field: field.into(),
    })
}

fn prefix(body: &Value) -> Result<Query, QueryError> {
    let (field, spec) = field_entry("prefix", body)?;
    let (value, _) = long_form("prefix", spec, "value", &[])?;
    let prefix = value
        .as_str()
        .ok_or_else(|| malformed("prefix", "the prefix is a string"))?;
    Ok(Query::Prefix {
        field: field.clone(),
        prefix: prefix.into(),
    })
}

fn match_clause(body: &Value) -> Result<Query, QueryError> {
    let (field, spec) = field_entry("match", body)?;
    let (value, options) = long_form("match", spec, "query", &["operator"])?;
    let operator_and = match options.and_then(|o| o.get("operator")) {
        None => false,
        Some(Value::String(op)) if op.eq_ignore_ascii_case("or") => false,
        Some(Value::String(op)) if op.eq_ignore_ascii_case("and") => true,
        Some(_) => return Err(malformed("match", "\"operator\" is \"and\" or \"or\"")),
    };
    Ok(Query::Match {
        field: field.clone(),
        query: scalar("match", value)?,
        operator_and,
    })
}

fn bool_clause(body: &Value) -> Result<Query, QueryError> {
    let mut parsed = BoolQuery::default();
    for (key, value) in object("bool", body)? {
        let slot = match key.as_str() {
            "must" => &mut parsed.must,
            "filter" => &mut parsed.filter,
            "should" => &mut parsed.should,
            "must_not" => &mut parsed.must_not,
            "minimum_should_match" => {
                let n = match value {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.parse::<u64>().ok(),
                    _ => None,
                };
                parsed.minimum_should_match = Some(n.ok_or_else(|| QueryError::Unsupported {
                    keyword: "minimum_should_match (only a non-negative integer)".into(),
                })? as usize);
                continue;
            }
            "boost" | "_name" => continue,
            other => {
                return Err(QueryError::Unsupported {
                    keyword: format!("bool.{other}"),
                })
            }
        };
        match value {
            Value::Array(clauses) => {
                for clause in clauses {
                    slot.push(query(clause)?);
                }
            }
            clause => slot.push(query(clause)?),
        }
    }
    Ok(Query::Bool(Box::new(parsed)))
}
