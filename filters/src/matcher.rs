//! Conditions compiled for matching, and how each one (or its negation) tests a document.
//!
//! A negated condition is not always the complement of the condition: Koncorde's matchers for
//! `not range`, `not regexp` and `not geo*` have their own rules (other epsilons, string
//! coercion, early exits), and these are mirrored here.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::canonical;
use crate::error::{FilterError, FilterErrorKind};
use crate::flatten::{Flat, Lookup};
use crate::geo::{self, GeoShape};
use crate::js;
use crate::model::{Cond, Literal, RangeOp};
use crate::standardize::Standardizer;
use crate::Limits;

/// Koncorde widens or narrows exclusive bounds by this much (its interval tree is inclusive).
const EPSILON: f64 = 1e-10;

/// A condition ready to test documents.
#[derive(Debug)]
pub(crate) enum Test {
    Everything,
    Nothing,
    Equals {
        field: String,
        value: Value,
    },
    Exists {
        path: String,
        array: bool,
        value: Value,
    },
    Range {
        field: String,
        bounds: RangeBounds,
    },
    Regexp {
        field: String,
        regex: regex::Regex,
    },
    Geo {
        field: String,
        shape: GeoShape,
    },
    Match {
        value: Map<String, Value>,
    },
    Select {
        field: String,
        index: i64,
        inner: Vec<Vec<CompiledLiteral>>,
    },
}

/// Interval bounds of a range condition, for both polarities.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RangeBounds {
    /// Inclusive interval matched by the condition (Koncorde swaps inverted bounds).
    pub(crate) low: f64,
    pub(crate) high: f64,
    /// The negation matches numbers `<= not_low` or `>= not_high` (infinite = absent).
    pub(crate) not_low: f64,
    pub(crate) not_high: f64,
}

impl RangeBounds {
    fn new(bounds: &[(RangeOp, f64)]) -> Self {
        let compute = |not: bool| {
            let (mut low, mut high) = (f64::NEG_INFINITY, f64::INFINITY);
            for &(op, v) in bounds {
                match op {
                    RangeOp::Gt => low = if not { v } else { v + EPSILON },
                    RangeOp::Gte => low = if not { v - EPSILON } else { v },
                    RangeOp::Lt => high = if not { v } else { v - EPSILON },
                    RangeOp::Lte => high = if not { v + EPSILON } else { v },
                }
            }
            (low, high)
        };
        let (low, high) = compute(false);
        let (low, high) = if low > high { (high, low) } else { (low, high) };
        let (not_low, not_high) = compute(true);
        RangeBounds {
            low,
            high,
            not_low,
            not_high,
        }
    }

    pub(crate) fn contains(&self, v: f64) -> bool {
        self.low <= v && v <= self.high
    }

    pub(crate) fn not_contains(&self, v: f64) -> bool {
        (self.not_low != f64::NEG_INFINITY && v <= self.not_low)
            || (self.not_high != f64::INFINITY && v >= self.not_high)
    }
}

/// A literal of a minterm, compiled. Conditions are shared between filters by the index.
#[derive(Debug, Clone)]
pub(crate) struct CompiledLiteral {
    pub(crate) test: Arc<Test>,
    pub(crate) not: bool,
}

/// Compiles a literal. Negated `nothing` and `select` are refused, as Koncorde fails to store
/// them (it has no operand for them).
pub(crate) fn compile(literal: &Literal, limits: &Limits) -> Result<CompiledLiteral, FilterError> {
    if literal.not && matches!(literal.cond, Cond::Nothing | Cond::Select { .. }) {
        return Err(FilterError::plain(
            FilterErrorKind::Type,
            "this.storeOperand[cond.keyword] is not a function",
        ));
    }
    let test = match &literal.cond {
        Cond::Everything => Test::Everything,
        Cond::Nothing => Test::Nothing,
        Cond::Equals { field, value } => Test::Equals {
            field: field.clone(),
            value: value.clone(),
        },
        Cond::Exists { path, array, value } => Test::Exists {
            path: path.clone(),
            array: *array,
            value: value.clone(),
        },
        Cond::Range { field, bounds } => Test::Range {
            field: field.clone(),
            bounds: RangeBounds::new(bounds),
        },
        // Compiled by the standardizer; every term holding it shares that program.
        Cond::Regexp { field, regex, .. } => Test::Regexp {
            field: field.clone(),
            regex: regex::Regex::clone(&regex.0),
        },
        Cond::Geo { field, shape } => {
            if let GeoShape::Box {
                top,
                left,
                bottom,
                right,
            } = shape
            {
                // boost-geospatial-index refuses such boxes when Koncorde stores them.
                let refusal = if bottom >= top {
                    Some("min_lat argument cannot be greater or equal max_lat")
                } else if left >= right {
                    Some("min_lon argument cannot be greater or equal max_lon")
                } else {
                    None
                };
                if let Some(message) = refusal {
                    return Err(FilterError::plain(FilterErrorKind::Store, message));
                }
            }
            Test::Geo {
                field: field.clone(),
                shape: shape.clone(),
            }
        }
        Cond::Match { value } => Test::Match {
            value: value.clone(),
        },
        Cond::Select {
            field,
            index,
            query,
        } => {
            let node = Standardizer::new(limits).standardize(query)?;
            let minterms = canonical::canonical(node.as_ref(), limits)?;
            let inner = compile_minterms(&minterms, limits)?;
            Test::Select {
                field: field.clone(),
                index: *index,
                inner,
            }
        }
    };
    Ok(CompiledLiteral {
        test: Arc::new(test),
        not: literal.not,
    })
}

pub(crate) fn compile_minterms(
    minterms: &[Vec<Literal>],
    limits: &Limits,
) -> Result<Vec<Vec<CompiledLiteral>>, FilterError> {
    minterms
        .iter()
        .map(|m| m.iter().map(|l| compile(l, limits)).collect())
        .collect()
}

/// Does any minterm hold (every literal true)?
pub(crate) fn eval_minterms(minterms: &[Vec<CompiledLiteral>], flat: &Flat<'_>) -> bool {
    minterms
        .iter()
        .any(|m| m.iter().all(|l| l.test.eval(flat, l.not)))
}

impl Test {
    /// Whether the condition (or, with `not`, its negation) holds for the document, taken on
    /// its own.
    pub(crate) fn eval(&self, flat: &Flat<'_>, not: bool) -> bool {
        let lookup = match self.field() {
            Some(field) => flat.get(field),
            None => Lookup::Missing,
        };
        self.eval_at(lookup, flat, not)
    }

    /// The field the condition reads first: the index files it under this name. A condition
    /// without one (`everything`, `nothing`) does not depend on the document. `match` reads
    /// several fields and needs all of them: it is filed under its first.
    pub(crate) fn field(&self) -> Option<&str> {
        match self {
            Test::Everything | Test::Nothing => None,
            Test::Equals { field, .. }
            | Test::Range { field, .. }
            | Test::Regexp { field, .. }
            | Test::Geo { field, .. }
            | Test::Select { field, .. } => Some(field),
            Test::Exists { path, .. } => Some(path),
            Test::Match { value } => value.keys().next().map(String::as_str),
        }
    }

    /// Like [`eval`](Self::eval), with `lookup` the document's value at [`field`](Self::field)
    /// (`match` and `select` also read `flat`).
    pub(crate) fn eval_at(&self, lookup: Lookup<'_>, flat: &Flat<'_>, not: bool) -> bool {
        match self {
            Test::Everything => !not,
            Test::Nothing => false,
            Test::Equals { value, .. } => {
                let hit = matches!(lookup, Lookup::Value(v) if js::strict_equals(v, value));
                hit != not
            }
            Test::Exists { array, value, .. } => {
                let hit = match lookup {
                    Lookup::Value(Value::Array(items)) if *array => {
                        items.iter().any(|i| js::strict_equals(i, value))
                    }
                    Lookup::Value(_) => !*array,
                    // Koncorde's `exists` reads own keys only; `not exists` reads
                    // `document[key] === undefined`, which is false for inherited names.
                    Lookup::Inherited(_) => not && !*array,
                    Lookup::Missing => false,
                };
                hit != not
            }
            Test::Range { bounds, .. } => match lookup {
                Lookup::Value(Value::Number(n)) => {
                    let v = js::num(n);
                    if not {
                        bounds.not_contains(v)
                    } else {
                        bounds.contains(v)
                    }
                }
                _ => not,
            },
            Test::Regexp { regex, .. } => match lookup {
                Lookup::Value(Value::String(s)) => regex.is_match(s) != not,
                Lookup::Missing => not,
                Lookup::Value(other) => not && !regex.is_match(&js::to_string(other)),
                Lookup::Inherited(name) => not && !regex.is_match(&Lookup::inherited_string(name)),
            },
            Test::Geo { shape, .. } => {
                let point = match lookup {
                    Lookup::Value(v) if js::truthy(v) => geo::convert_geopoint(v),
                    Lookup::Value(_) | Lookup::Missing => return not,
                    Lookup::Inherited(_) => None,
                };
                match point {
                    // Koncorde stops testing geo conditions on an invalid point.
                    None => false,
                    Some((lat, lon)) => shape.covers(lat, lon) != not,
                }
            }
            Test::Match { value } => match_object(flat, value) != not,
            Test::Select {
                field,
                index,
                inner,
            } => {
                if not {
                    return false;
                }
                let Some(Value::Array(items)) = flat.value(field) else {
                    return false;
                };
                let len = items.len() as i64;
                let at = if *index >= 0 { *index } else { len + index };
                if at < 0 || at >= len {
                    return false;
                }
                let wrapped = Flat::wrap(&items[at as usize]);
                eval_minterms(inner, &wrapped)
            }
        }
    }
}

/// `matchObject(flattenedDocument, match)`.
fn match_object(flat: &Flat<'_>, wanted: &Map<String, Value>) -> bool {
    wanted.iter().all(|(key, want)| match flat.get(key) {
        Lookup::Value(have) => match_any(have, want),
        // Functions never match JSON values; `__proto__` is not worth imitating.
        Lookup::Inherited(_) | Lookup::Missing => false,
    })
}

/// Koncorde's `matchAny`: recursive subset match.
fn match_any(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Array(h), Value::Array(w)) => match_array(h, w),
        (Value::Object(h), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| h.get(k).is_some_and(|hv| match_any(hv, wv))),
        (Value::Array(_), Value::Object(_)) | (Value::Object(_), Value::Array(_)) => false,
        (a, b) => js::strict_equals(a, b),
    }
}

/// Koncorde's `matchArray`: every wanted item finds a distinct item, greedily, in order.
fn match_array(have: &[Value], want: &[Value]) -> bool {
    if have.len() < want.len() {
        return false;
    }
    let mut remaining: Vec<&Value> = have.iter().collect();
    for w in want {
        match remaining.iter().position(|h| match_any(h, w)) {
            Some(i) => {
                remaining.remove(i);
            }
            None => return false,
        }
    }
    true
}
