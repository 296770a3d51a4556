//! The shapes a filter takes once checked: conditions, the standardized tree, minterms.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::geo::GeoShape;

/// One condition (Koncorde's "term" once standardized). `in` and `ids` have become `or`s of
/// `equals`, `missing` a negated `exists`, `bool` a tree of `and`/`or`/`not`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cond {
    /// The empty filter.
    Everything,
    /// `nothing`: never matches.
    Nothing,
    /// `equals: {field: scalar}`.
    Equals { field: String, value: Value },
    /// `exists: "path"` or `exists: 'path["json"]'` (`array` set, `value` the parsed JSON).
    Exists {
        path: String,
        array: bool,
        value: Value,
    },
    /// `range: {field: {gt|gte|lt|lte: n}}`, bounds in the filter's key order.
    Range {
        field: String,
        bounds: Vec<(RangeOp, f64)>,
    },
    /// `regexp: {field: {value, flags}}`, compiled once when the filter is checked.
    Regexp {
        field: String,
        pattern: String,
        flags: Option<String>,
        regex: CompiledRegex,
    },
    /// Every geo keyword, with its shape already converted.
    Geo { field: String, shape: GeoShape },
    /// `match: {…}`: recursive subset match against the flattened document.
    Match { value: Map<String, Value> },
    /// `select: {field, index, query}`.
    Select {
        field: String,
        index: i64,
        query: Value,
    },
}

/// A regexp compiled by the standardizer and shared by every term of the normal form that holds
/// it: compiling is what a regexp costs (about 2 ms at the 64 KB limit), and the normal form
/// repeats a condition in every term (issue 19: it was compiled again for each).
#[derive(Debug, Clone)]
pub(crate) struct CompiledRegex(pub(crate) Arc<regex::Regex>);

impl PartialEq for CompiledRegex {
    /// The same program: conditions compare by pattern and flags, and this follows from them.
    fn eq(&self, other: &CompiledRegex) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.as_str() == other.0.as_str()
    }
}

/// A range bound keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum RangeOp {
    Gt,
    Gte,
    Lt,
    Lte,
}

impl RangeOp {
    pub(crate) fn name(self) -> &'static str {
        match self {
            RangeOp::Gt => "gt",
            RangeOp::Gte => "gte",
            RangeOp::Lt => "lt",
            RangeOp::Lte => "lte",
        }
    }
}

impl Cond {
    /// Koncorde's keyword for this condition once standardized (used to sort terms).
    pub(crate) fn keyword(&self) -> &'static str {
        match self {
            Cond::Everything => "everything",
            Cond::Nothing => "nothing",
            Cond::Equals { .. } => "equals",
            Cond::Exists { .. } => "exists",
            Cond::Range { .. } => "range",
            Cond::Regexp { .. } => "regexp",
            Cond::Geo { .. } => "geospatial",
            Cond::Match { .. } => "match",
            Cond::Select { .. } => "select",
        }
    }
}

/// The standardized filter tree, shaped exactly as Koncorde's standardizer leaves it (this
/// shape decides how conditions are counted against `max_conditions`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Cond(Cond),
    /// Only ever wraps a `Cond`: negations of `and`/`or` are pushed down.
    Not(Box<Node>),
    /// `and` (`is_and`) or `or`. `leaf` is Koncorde's `_isLeaf`: the group holds only
    /// conditions and counts as a single variable of the boolean formula.
    Op {
        is_and: bool,
        items: Vec<Node>,
        leaf: bool,
    },
}

/// A condition with its polarity, as stored in a minterm.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Literal {
    pub(crate) cond: Cond,
    pub(crate) not: bool,
}
