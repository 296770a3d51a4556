//! Canonical form: the standardized tree rewritten as a disjunction of minterms (DNF).
//!
//! Koncorde turns the tree into a boolean formula whose variables are its "conditions" (a
//! condition, or a leaf `and`/`or` group, each occurrence its own variable), minimizes it with
//! espresso, expands the groups back, then drops minterms it believes impossible. Every variable
//! occurs once, so the formula is unate and its minimal cover is unique: the plain distribution
//! of the formula. We compute that directly, in the same column order, so the minterms (and the
//! order of terms inside each, which the impossibility check depends on) are Koncorde's.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::error::{FilterError, FilterErrorKind};
use crate::js;
use crate::model::{Cond, Literal, Node, RangeOp};
use crate::{Limits, MAX_MINTERMS};

type Cube = Vec<(usize, bool)>;

fn too_many_terms() -> FilterError {
    FilterError::plain(
        FilterErrorKind::TooComplex,
        format!("Filter too complex: its disjunctive normal form exceeds {MAX_MINTERMS} terms"),
    )
}

/// How many minterms `canonical` would build (before dropping impossible ones), computed
/// without building any: a product node multiplies its children's counts, a union adds them,
/// and a condition group that ends up as an `or` inside a minterm multiplies by its size.
/// Saturating: a huge filter costs time proportional to its size, not to its terms.
fn count_minterms(node: &Node, positive: bool) -> usize {
    match node {
        Node::Not(inner) => count_minterms(inner, !positive),
        Node::Op {
            is_and,
            items,
            leaf: false,
        } => {
            let counts = items.iter().map(|item| count_minterms(item, positive));
            if *is_and == positive {
                counts.fold(1usize, usize::saturating_mul)
            } else {
                counts.fold(0usize, usize::saturating_add)
            }
        }
        // A leaf group: its conditions join the minterm when it is a product, or multiply the
        // minterms when it is a union.
        Node::Op { is_and, items, .. } => {
            if *is_and == positive {
                1
            } else {
                items.len().max(1)
            }
        }
        Node::Cond(_) => 1,
    }
}

/// Koncorde's `_extractConditions`: the formula's variables, in order.
fn extract<'n>(node: &'n Node, out: &mut Vec<&'n Node>) {
    match node {
        Node::Not(inner) => extract(inner, out),
        Node::Op {
            leaf: false, items, ..
        } => items.iter().for_each(|item| extract(item, out)),
        other => out.push(other),
    }
}

/// DNF of `node` (or of its negation when `!positive`), as cubes over column indices.
fn dnf(node: &Node, positive: bool, next_column: &mut usize) -> Result<Vec<Cube>, FilterError> {
    match node {
        Node::Not(inner) => dnf(inner, !positive, next_column),
        Node::Op {
            is_and,
            items,
            leaf: false,
        } => {
            // and+positive or or+negative: product; otherwise: union.
            let product = *is_and == positive;
            let mut acc: Vec<Cube> = if product {
                vec![Vec::new()]
            } else {
                Vec::new()
            };
            for item in items {
                let sub = dnf(item, positive, next_column)?;
                if product {
                    if acc.len().saturating_mul(sub.len()) > MAX_MINTERMS {
                        return Err(too_many_terms());
                    }
                    let mut next = Vec::with_capacity(acc.len() * sub.len());
                    for a in &acc {
                        for s in &sub {
                            let mut cube = a.clone();
                            cube.extend_from_slice(s);
                            next.push(cube);
                        }
                    }
                    acc = next;
                } else {
                    acc.extend(sub);
                    if acc.len() > MAX_MINTERMS {
                        return Err(too_many_terms());
                    }
                }
            }
            Ok(acc)
        }
        _ => {
            let column = *next_column;
            *next_column += 1;
            Ok(vec![vec![(column, positive)]])
        }
    }
}

fn literal_of(item: &Node, negate: bool) -> Literal {
    match item {
        Node::Not(inner) => match inner.as_ref() {
            Node::Cond(c) => Literal {
                cond: c.clone(),
                not: !negate,
            },
            other => unreachable!("groups hold conditions only, got {other:?}"),
        },
        Node::Cond(c) => Literal {
            cond: c.clone(),
            not: negate,
        },
        other => unreachable!("groups hold conditions only, got {other:?}"),
    }
}

/// Checks the number of conditions and returns Koncorde's minterms, impossible ones removed.
pub(crate) fn canonical(
    node: Option<&Node>,
    limits: &Limits,
) -> Result<Vec<Vec<Literal>>, FilterError> {
    let max_conditions = limits.max_conditions;
    let Some(node) = node else {
        return Ok(vec![vec![Literal {
            cond: Cond::Everything,
            not: false,
        }]]);
    };
    let mut columns = Vec::new();
    extract(node, &mut columns);
    let count: usize = columns
        .iter()
        .map(|c| match c {
            Node::Op { items, .. } => items.len(),
            _ => 1,
        })
        .sum();
    if max_conditions > 0 && count > max_conditions {
        return Err(FilterError::plain(
            FilterErrorKind::TooComplex,
            format!(
                "Filter too complex: exceeds the configured maximum number of conditions (conditions: {count}, max: {max_conditions})"
            ),
        ));
    }
    let terms = count_minterms(node, true);
    if terms > limits.max_minterms {
        return Err(if limits.max_minterms == MAX_MINTERMS {
            too_many_terms()
        } else {
            FilterError::too_many_terms(limits.max_minterms, terms)
        });
    }
    let mut next_column = 0;
    let mut cubes = dnf(node, true, &mut next_column)?;
    let mut minterms: Vec<Vec<Literal>> = Vec::new();
    for cube in &mut cubes {
        cube.sort_by_key(|(column, _)| *column);
        let mut inline: Vec<Literal> = Vec::new();
        let mut ors: Vec<Vec<Literal>> = Vec::new();
        for &(column, positive) in cube.iter() {
            match columns[column] {
                Node::Op { is_and, items, .. } => {
                    let negate = !positive;
                    let conds: Vec<Literal> = items.iter().map(|i| literal_of(i, negate)).collect();
                    if *is_and == positive {
                        inline.extend(conds);
                    } else {
                        ors.push(conds);
                    }
                }
                Node::Cond(c) => inline.push(Literal {
                    cond: c.clone(),
                    not: !positive,
                }),
                Node::Not(_) => unreachable!("negations are unwrapped"),
            }
        }
        if ors.is_empty() {
            minterms.push(inline);
            continue;
        }
        let mut combos: Vec<Vec<Literal>> = vec![inline];
        for group in ors {
            if combos.len().saturating_mul(group.len()) + minterms.len() > MAX_MINTERMS {
                return Err(too_many_terms());
            }
            let mut next = Vec::with_capacity(combos.len() * group.len());
            for c in &combos {
                for g in &group {
                    let mut m = c.clone();
                    m.push(g.clone());
                    next.push(m);
                }
            }
            combos = next;
        }
        minterms.extend(combos);
        if minterms.len() > MAX_MINTERMS {
            return Err(too_many_terms());
        }
    }
    minterms.retain(|m| !impossible(m));
    if minterms.is_empty() {
        minterms.push(vec![Literal {
            cond: Cond::Nothing,
            not: false,
        }]);
    }
    Ok(minterms)
}

/// `value` outside a range's bounds, with JavaScript's relational comparison (`"5" >= 3`).
fn range_excludes(bounds: &[(RangeOp, f64)], value: &Value) -> bool {
    let v = js::to_number(value);
    bounds.iter().any(|(op, b)| match op {
        RangeOp::Lt => v >= *b,
        RangeOp::Lte => v > *b,
        RangeOp::Gt => v <= *b,
        RangeOp::Gte => v < *b,
    })
}

/// Koncorde's `_removeImpossiblePredicates` for one minterm, order-sensitive as it is.
fn impossible(minterm: &[Literal]) -> bool {
    let mut equals: HashMap<&str, &Value> = HashMap::new();
    let mut exists: HashSet<&str> = HashSet::new();
    let mut not_equals: HashMap<&str, HashSet<String>> = HashMap::new();
    let mut not_exists: HashSet<&str> = HashSet::new();
    let mut range: HashMap<&str, &[(RangeOp, f64)]> = HashMap::new();
    for literal in minterm {
        match (&literal.cond, literal.not) {
            (Cond::Equals { field, value }, false) => {
                if let Some(previous) = equals.get(field.as_str()) {
                    if !js::strict_equals(previous, value) {
                        return true;
                    }
                }
                equals.insert(field, value);
                if not_exists.contains(field.as_str())
                    || not_equals
                        .get(field.as_str())
                        .is_some_and(|s| s.contains(&js::to_string(value)))
                    || range
                        .get(field.as_str())
                        .is_some_and(|r| range_excludes(r, value))
                {
                    return true;
                }
            }
            (Cond::Equals { field, value }, true) => {
                not_equals
                    .entry(field)
                    .or_default()
                    .insert(js::to_string(value));
                if equals
                    .get(field.as_str())
                    .is_some_and(|v| js::strict_equals(v, value))
                {
                    return true;
                }
            }
            (Cond::Exists { path, .. }, false) => {
                exists.insert(path);
                if not_exists.contains(path.as_str()) {
                    return true;
                }
            }
            (Cond::Exists { path, .. }, true) => {
                not_exists.insert(path);
                if equals.contains_key(path.as_str())
                    || exists.contains(path.as_str())
                    || range.contains_key(path.as_str())
                {
                    return true;
                }
            }
            (Cond::Range { field, bounds }, false) => {
                range.insert(field, bounds);
                if not_exists.contains(field.as_str())
                    || equals
                        .get(field.as_str())
                        .is_some_and(|v| range_excludes(bounds, v))
                {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}
