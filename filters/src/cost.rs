//! What normalizing a filter will cost, estimated from its JSON without building anything: the
//! host runs a cheap filter on the protocol's network thread and moves a costly one to a pool
//! (issue 19: one subscribe could take a network thread for a second).
//!
//! The estimate is an upper bound: the terms of the disjunctive normal form as if no two were
//! ever merged, and the bytes of every regexp pattern (compiling is what a regexp costs).

use serde_json::Value;

/// A filter's estimated cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Weight {
    /// Terms of its normal form, at most (saturating).
    pub terms: u64,
    /// Bytes of its `regexp` patterns, in all.
    pub regexp_bytes: usize,
}

impl Weight {
    /// True when normalizing it may take longer than a network thread should spend on one
    /// request: more than `max_terms` terms or `max_regexp_bytes` of regexps.
    pub fn exceeds(&self, max_terms: u64, max_regexp_bytes: usize) -> bool {
        self.terms > max_terms || self.regexp_bytes > max_regexp_bytes
    }
}

/// Estimates what normalizing `filter` costs. Cheap: one walk of the JSON, no allocation.
/// Malformed filters get some estimate; normalizing them refuses them anyway.
pub fn weigh(filter: &Value) -> Weight {
    let mut regexp_bytes = 0;
    let (terms, _) = terms(filter, &mut regexp_bytes);
    Weight {
        terms,
        regexp_bytes,
    }
}

/// (terms of the node, terms of its negation), adding regexp bytes on the way.
fn terms(node: &Value, regexp_bytes: &mut usize) -> (u64, u64) {
    let Value::Object(map) = node else {
        return (1, 1);
    };
    // A filter object has one keyword; more is refused later, but every one is counted.
    let mut all = (1u64, 0u64);
    for (keyword, argument) in map {
        let one = match keyword.as_str() {
            "and" => and(list(argument), regexp_bytes),
            "or" => or(list(argument), regexp_bytes),
            "not" => {
                let (positive, negative) = terms(argument, regexp_bytes);
                (negative, positive)
            }
            "bool" => boolean(argument, regexp_bytes),
            // `in` and `ids` become an `or` of `equals`, one per value.
            "in" | "ids" => {
                let values = match argument {
                    Value::Object(fields) => fields
                        .values()
                        .map(|values| values.as_array().map_or(1, Vec::len))
                        .sum::<usize>(),
                    _ => 1,
                };
                (values.max(1) as u64, 1)
            }
            "regexp" => {
                if let Value::Object(fields) = argument {
                    for spec in fields.values() {
                        let pattern = match spec {
                            Value::Object(spec) => spec.get("value"),
                            other => Some(other),
                        };
                        if let Some(Value::String(pattern)) = pattern {
                            *regexp_bytes = regexp_bytes.saturating_add(pattern.len());
                        }
                    }
                }
                (1, 1)
            }
            _ => (1, 1),
        };
        all = (all.0.saturating_mul(one.0), all.1.saturating_add(one.1));
    }
    (all.0, all.1.max(1))
}

fn list(argument: &Value) -> &[Value] {
    argument.as_array().map_or(&[], Vec::as_slice)
}

/// An `and`: the product of its items' terms; its negation, the sum of theirs.
fn and<'a>(items: impl IntoIterator<Item = &'a Value>, regexp_bytes: &mut usize) -> (u64, u64) {
    let mut out = (1u64, 0u64);
    for item in items {
        let (positive, negative) = terms(item, regexp_bytes);
        out = (
            out.0.saturating_mul(positive),
            out.1.saturating_add(negative),
        );
    }
    (out.0, out.1.max(1))
}

/// An `or`: the sum of its items' terms; its negation, the product of theirs.
fn or<'a>(items: impl IntoIterator<Item = &'a Value>, regexp_bytes: &mut usize) -> (u64, u64) {
    let mut out = (0u64, 1u64);
    for item in items {
        let (positive, negative) = terms(item, regexp_bytes);
        out = (
            out.0.saturating_add(positive),
            out.1.saturating_mul(negative),
        );
    }
    (out.0.max(1), out.1)
}

/// `bool`: `must` and `filter` and-ed, `must_not` and-ed negated, `should` or-ed,
/// `should_not` or-ed negated; all four and-ed together.
fn boolean(argument: &Value, regexp_bytes: &mut usize) -> (u64, u64) {
    let Value::Object(clauses) = argument else {
        return (1, 1);
    };
    let items = |name: &str| clauses.get(name).map_or(&[][..], list);
    let mut parts = Vec::with_capacity(4);
    parts.push(and(
        items("must").iter().chain(items("filter")),
        regexp_bytes,
    ));
    let (positive, negative) = and(items("must_not"), regexp_bytes);
    parts.push((negative, positive));
    if !items("should").is_empty() {
        parts.push(or(items("should"), regexp_bytes));
    }
    if !items("should_not").is_empty() {
        let (positive, negative) = or(items("should_not"), regexp_bytes);
        parts.push((negative, positive));
    }
    parts.into_iter().fold((1, 0), |out, (positive, negative)| {
        (
            out.0.saturating_mul(positive),
            out.1.saturating_add(negative),
        )
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn terms_are_bounded_from_the_json() {
        let four = |field: &str| json!({"or": (0..4).map(|v| json!({"equals": {field: v}})).collect::<Vec<_>>()});
        let cases = [
            (json!({}), 1),
            (json!({"equals": {"a": 1}}), 1),
            (four("a"), 4),
            (json!({"and": [four("a"), four("b"), four("c")]}), 64),
            // De Morgan: not(or) is an and of negations, not(and) an or.
            (json!({"not": four("a")}), 1),
            (json!({"not": {"and": [four("a"), four("b")]}}), 2),
            (json!({"in": {"a": [1, 2, 3]}}), 3),
            (
                json!({"bool": {"must": [four("a")], "should": [{"equals": {"b": 1}}, {"equals": {"b": 2}}]}}),
                8,
            ),
        ];
        for (filter, expected) in cases {
            assert_eq!(weigh(&filter).terms, expected, "{filter}");
        }
        // The 833-byte filter: 4^7 terms.
        let groups = ["a", "b", "c", "d", "e", "f", "g"].map(four);
        let product = json!({ "and": groups });
        assert_eq!(weigh(&product).terms, 16_384);
        assert!(weigh(&product).exceeds(64, 1024));
        // Saturates instead of overflowing.
        let huge = json!({"and": vec![four("a"); 100]});
        assert_eq!(weigh(&huge).terms, u64::MAX);
    }

    #[test]
    fn regexp_bytes_are_summed() {
        let filter = json!({"or": [
            {"regexp": {"a": "^abc"}},
            {"regexp": {"b": {"value": "x|y", "flags": "i"}}},
            {"not": {"regexp": {"c": {"value": "z"}}}}
        ]});
        assert_eq!(weigh(&filter).regexp_bytes, 4 + 3 + 1);
        assert!(!weigh(&filter).exceeds(64, 1024));
        assert!(weigh(&filter).exceeds(64, 7));
    }
}
