//! The error a malformed filter produces, with Koncorde's exact wording.

use std::fmt;

/// What kind of failure a [`FilterError`] reports; callers map these to API errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FilterErrorKind {
    /// The filter breaks the DSL (Koncorde's `KoncordeParseError`): `keyword()` and `path()`
    /// say where.
    Parse,
    /// The filter has more conditions than `EngineConfig::max_conditions` (or more terms, once
    /// rewritten in disjunctive normal form, than the engine accepts). Koncorde throws a plain
    /// `Error` for this; Kuzzle answers `core.realtime.too_many_terms`-style errors.
    TooComplex,
    /// The filter's disjunctive normal form has more terms than `EngineConfig::max_minterms`
    /// (Kuzzle's `limits.subscriptionMinterms`): [`FilterError::terms`] gives the limit and
    /// the count.
    TooManyTerms,
    /// A geo distance could not be parsed (Koncorde throws a plain `Error`).
    Distance,
    /// Koncorde fails on this input with a JavaScript `TypeError` rather than a parse error
    /// (e.g. `null` where a geo bounding box is expected). We reject it with the same text.
    Type,
    /// Koncorde accepts the syntax but its store fails with a plain `Error` (e.g. a bounding box
    /// whose bottom is not below its top: "min_lat argument cannot be greater or equal
    /// max_lat"). We refuse such filters at normalization with the same text.
    Store,
}

/// A rejected filter. `Display` gives Koncorde's message, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// What went wrong, for callers that branch on it.
    kind: FilterErrorKind,
    /// The complete message (with the `"path": ` prefix Koncorde adds when it knows a path).
    message: String,
    /// The keyword being parsed, as `KoncordeParseError.keyword`.
    keyword: Option<String>,
    /// The dotted location in the filter, as `KoncordeParseError.path`.
    path: Option<String>,
    /// For `TooManyTerms`: (the limit, the filter's count).
    terms: Option<(usize, usize)>,
}

impl FilterError {
    pub(crate) fn parse(message: impl Into<String>, keyword: &str, path: Option<&str>) -> Self {
        let message = message.into();
        let full = match path {
            Some(p) if !p.is_empty() => format!("\"{p}\": {message}"),
            _ => message,
        };
        FilterError {
            kind: FilterErrorKind::Parse,
            message: full,
            keyword: Some(keyword.to_owned()),
            path: path.map(str::to_owned),
            terms: None,
        }
    }

    pub(crate) fn plain(kind: FilterErrorKind, message: impl Into<String>) -> Self {
        FilterError {
            kind,
            message: message.into(),
            keyword: None,
            path: None,
            terms: None,
        }
    }

    pub(crate) fn too_many_terms(max: usize, received: usize) -> Self {
        FilterError {
            kind: FilterErrorKind::TooManyTerms,
            message: format!(
                "Filter too complex: its disjunctive normal form has {received} terms (max {max})"
            ),
            keyword: None,
            path: None,
            terms: Some((max, received)),
        }
    }

    /// For [`FilterErrorKind::TooManyTerms`]: the limit and the filter's number of terms.
    pub fn terms(&self) -> Option<(usize, usize)> {
        self.terms
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> FilterErrorKind {
        self.kind
    }

    /// The message users see (same as `Display`).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The keyword being parsed when the error was found (`KoncordeParseError.keyword`).
    pub fn keyword(&self) -> Option<&str> {
        self.keyword.as_deref()
    }

    /// Where in the filter, as a dotted path (`KoncordeParseError.path`); `None` at the root.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FilterError {}
