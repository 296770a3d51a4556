//! Kuzzle's search subset (reference §B7) as an AST, parsed from Elasticsearch-style JSON, and
//! evaluated against stored documents (`eval`). Anything outside the subset is refused with the
//! error Kuzzle would give, never answered wrongly.

mod eval;
mod page;
mod parse;

pub(crate) use page::page;

pub use eval::compare_values;
pub(crate) use eval::{field_values, values_at};

use serde_json::Value;

/// One query clause.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    /// `match_all: {}`.
    MatchAll,
    /// `ids: {values: […]}`: `_id` in the set.
    Ids(Vec<String>),
    /// `term: {field: value}`: exact equality with any of the field's values.
    Term { field: String, value: Value },
    /// `terms: {field: [values]}`: any of.
    Terms { field: String, values: Vec<Value> },
    /// `range: {field: {gt, gte, lt, lte}}`: numbers with numbers, strings with strings.
    Range {
        field: String,
        bounds: Box<RangeBounds>,
    },
    /// `exists: {field}`: a non-null value (an empty array is missing).
    Exists { field: String },
    /// `prefix: {field: "p"}`: a string value starting with `p`.
    Prefix { field: String, prefix: String },
    /// `match: {field: v}`: equality on `_id`, keyword and non-string values; on other strings a
    /// case-insensitive token match, OR (or AND with `operator: "and"`) over the query's tokens.
    Match {
        field: String,
        query: Value,
        operator_and: bool,
    },
    /// `bool`: `must` and `filter` all match, no `must_not` matches, and at least
    /// `minimum_should_match` of `should` (default 1 when there is no must/filter, else 0).
    Bool(Box<BoolQuery>),
}

/// The bounds of a `range` clause; a missing bound is open.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RangeBounds {
    pub gt: Option<Value>,
    pub gte: Option<Value>,
    pub lt: Option<Value>,
    pub lte: Option<Value>,
}

/// The parts of a `bool` clause.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BoolQuery {
    pub must: Vec<Query>,
    pub filter: Vec<Query>,
    pub should: Vec<Query>,
    pub must_not: Vec<Query>,
    pub minimum_should_match: Option<usize>,
}

impl BoolQuery {
    /// How many `should` clauses must match.
    pub fn required_should(&self) -> usize {
        self.minimum_should_match.unwrap_or(
            if self.must.is_empty() && self.filter.is_empty() && !self.should.is_empty() {
                1
            } else {
                0
            },
        )
    }
}

impl Query {
    /// Parses an Elasticsearch query clause (the value of a search body's `query`). An empty
    /// object means `match_all`.
    pub fn parse(query: &Value) -> Result<Query, crate::QueryError> {
        parse::query(query)
    }
}

/// One sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub field: String,
    pub descending: bool,
}

/// A parsed `document:search` request. Hits are ordered by `sort` then `_id`, so pages are stable.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    pub query: Query,
    pub sort: Vec<SortKey>,
    pub from: usize,
    pub size: usize,
    /// Raw source values, one per sort key, optionally followed by an `_id` (as
    /// [`SearchPage::next_search_after`] gives): only hits strictly after it are returned.
    pub search_after: Option<Vec<Value>>,
}

impl SearchRequest {
    /// Kuzzle's default page size.
    pub const DEFAULT_SIZE: usize = 10;

    /// Every document, first page.
    pub fn match_all() -> SearchRequest {
        SearchRequest {
            query: Query::MatchAll,
            sort: Vec::new(),
            from: 0,
            size: Self::DEFAULT_SIZE,
            search_after: None,
        }
    }

    /// Parses a search body (`{query, sort, from, size, search_after, …}`); the `from` and `size`
    /// request arguments, when given, win over the body's. Body keys outside Kuzzle's whitelist
    /// give `ForbiddenArgument`; whitelisted keys this store does not implement (`aggregations`,
    /// `highlight`, …) give `Unsupported`.
    pub fn from_body(
        body: &Value,
        from: Option<usize>,
        size: Option<usize>,
    ) -> Result<SearchRequest, crate::QueryError> {
        parse::search_body(body, from, size)
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage {
    /// Every match, not only this page's.
    pub total: u64,
    pub hits: Vec<crate::Document>,
    /// The last hit's sort values then its `_id`: pass it as `search_after` for the next page (a
    /// scroll cursor). `None` when the page is empty.
    pub next_search_after: Option<Vec<Value>>,
}
