//! Koncorde-compatible realtime filters: validation, normalization, indexed matching.
//!
//! Kuzzle's realtime subscriptions are [Koncorde 4](https://www.npmjs.com/package/koncorde)
//! filters. This crate accepts exactly what Koncorde accepts, rejects what it rejects with the
//! same messages, and matches what it matches, with an index so that testing a document costs
//! far less than testing every filter. See `filters/README.md`.
//!
//! ```
//! use switchyard_filters::{Engine, EngineConfig};
//! use serde_json::json;
//!
//! let mut engine = Engine::new(EngineConfig::default());
//! let filter = engine.normalize("index/collection", &json!({"range": {"age": {"gte": 18}}})).unwrap();
//! let room = engine.store(filter);
//! assert_eq!(engine.test("index/collection", &json!({"age": 20})), vec![room.as_str()]);
//! ```

#![forbid(unsafe_code)]

mod canonical;
mod cost;
mod error;
mod flatten;
mod geo;
mod index;
mod interval;
mod js;
mod matcher;
mod model;
mod normalized;
mod re2;
mod standardize;
mod units;

use std::sync::Arc;

use serde_json::Value;

pub use cost::{weigh, Weight};
pub use error::{FilterError, FilterErrorKind};
pub use normalized::NormalizedFilter;

use flatten::Flat;
use index::Collection;
use standardize::Standardizer;

/// Hash maps keyed by document fields and values: foldhash (randomly seeded per map) is much
/// faster than SipHash on short keys.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use FastMap as HashMap;

/// Koncorde's default `maxConditions`, used when `max_conditions` is 0 (as Koncorde does).
pub const KONCORDE_DEFAULT_MAX_CONDITIONS: usize = 50;

/// The most minterms (terms of a filter's disjunctive normal form) any filter may have,
/// whatever the configuration: Koncorde enumerates a truth table of 2^conditions rows and never
/// finishes on such filters; we refuse them instead.
pub const MAX_MINTERMS: usize = 1 << 14;

/// RE2's default memory budget for one compiled regexp (npm `re2`, which Koncorde uses).
pub const DEFAULT_REGEXP_SIZE_LIMIT: usize = 8 << 20;

/// Engine settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// Koncorde's `maxConditions`: a filter with more conditions is refused at normalization.
    /// Kuzzle passes `limits.subscriptionConditionsCount` (100). 0 means Koncorde's default
    /// (50), as in Koncorde.
    pub max_conditions: usize,
    /// Kuzzle's `limits.subscriptionMinterms`: a filter whose disjunctive normal form has more
    /// terms is refused with [`FilterErrorKind::TooManyTerms`], counted before any term is
    /// built (so refusing costs time proportional to the filter's size, not its terms). 0 means
    /// no limit but [`MAX_MINTERMS`].
    pub max_minterms: usize,
    /// The largest compiled program one `regexp` condition may have, in bytes (RE2's
    /// `max_mem`); a pattern longer than this is refused before it is compiled.
    pub regexp_size_limit: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_conditions: 100,
            max_minterms: 0,
            regexp_size_limit: DEFAULT_REGEXP_SIZE_LIMIT,
        }
    }
}

/// The limits normalization applies, as the internal passes use them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_conditions: usize,
    pub(crate) max_minterms: usize,
    pub(crate) regexp_size_limit: usize,
}

impl EngineConfig {
    /// An engine configuration with Kuzzle's limits.
    pub fn new(max_conditions: usize, max_minterms: usize, regexp_size_limit: usize) -> Self {
        EngineConfig {
            max_conditions,
            max_minterms,
            regexp_size_limit,
        }
    }

    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_conditions: if self.max_conditions == 0 {
                KONCORDE_DEFAULT_MAX_CONDITIONS
            } else {
                self.max_conditions
            },
            max_minterms: if self.max_minterms == 0 {
                MAX_MINTERMS
            } else {
                self.max_minterms.min(MAX_MINTERMS)
            },
            regexp_size_limit: self.regexp_size_limit,
        }
    }

    /// Checks and normalizes a filter for `index` (`"<index>/<collection>"`) with these
    /// limits. Needs no engine: callers normalize before taking the lock around their engine,
    /// and store the result under it.
    pub fn normalize(&self, index: &str, filter: &Value) -> Result<NormalizedFilter, FilterError> {
        let limits = self.limits();
        let node = Standardizer::new(&limits).standardize(filter)?;
        let minterms = canonical::canonical(node.as_ref(), &limits)?;
        let compiled = matcher::compile_minterms(&minterms, &limits)?;
        Ok(normalized::finish(index, minterms, compiled))
    }
}

/// Stores normalized filters per index and tells which ones a document matches.
///
/// `Send + Sync`: wrap it in a `RwLock`, test under the read lock.
#[derive(Debug, Default)]
pub struct Engine {
    /// Settings given at creation.
    config: EngineConfig,
    /// One index of filters per Kuzzle `"<index>/<collection>"`.
    collections: HashMap<Arc<str>, Collection>,
    /// Filter id -> the index holding it (ids already encode the index) and its slot there.
    filters: HashMap<Arc<str>, (Arc<str>, u32)>,
}

impl Engine {
    /// An empty engine.
    pub fn new(config: EngineConfig) -> Self {
        Engine {
            config,
            collections: HashMap::default(),
            filters: HashMap::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Checks a filter's syntax, as Koncorde's `validate` (which does not count conditions:
    /// [`normalize`](Self::normalize) does).
    pub fn validate(&self, filter: &Value) -> Result<(), FilterError> {
        Standardizer::new(&self.config.limits())
            .standardize(filter)
            .map(|_| ())
    }

    /// Checks and normalizes a filter for `index` (`"<index>/<collection>"`). Nothing is stored.
    pub fn normalize(&self, index: &str, filter: &Value) -> Result<NormalizedFilter, FilterError> {
        self.config.normalize(index, filter)
    }

    /// Stores a normalized filter and returns its id. Storing the same filter again does nothing.
    pub fn store(&mut self, filter: NormalizedFilter) -> String {
        if self.filters.contains_key(filter.id.as_str()) {
            return filter.id;
        }
        let id: Arc<str> = Arc::from(filter.id.as_str());
        let index = match self.collections.get_key_value(filter.index.as_str()) {
            Some((name, _)) => Arc::clone(name),
            None => Arc::from(filter.index.as_str()),
        };
        let slot = self
            .collections
            .entry(Arc::clone(&index))
            .or_default()
            .insert(Arc::clone(&id), &filter);
        self.filters.insert(id, (index, slot));
        filter.id
    }

    /// Removes a filter; its conditions leave the index once no other filter uses them.
    pub fn remove(&mut self, id: &str) {
        let Some((index, slot)) = self.filters.remove(id) else {
            return;
        };
        if let Some(collection) = self.collections.get_mut(&index) {
            collection.remove(slot);
            if collection.is_empty() {
                self.collections.remove(&index);
            }
        }
        if self.filters.capacity() > 64 && self.filters.len() * 4 < self.filters.capacity() {
            self.filters.shrink_to(self.filters.len() * 2);
        }
    }

    /// Is a filter with this id stored?
    pub fn has(&self, id: &str) -> bool {
        self.filters.contains_key(id)
    }

    /// Number of stored filters.
    pub fn len(&self) -> usize {
        self.filters.len()
    }

    /// True when no filter is stored.
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Sizes of the index of `index` (all zero when it holds nothing).
    #[cfg(test)]
    pub(crate) fn stats(&self, index: &str) -> index::Stats {
        self.collections
            .get(index)
            .map(Collection::stats)
            .unwrap_or_default()
    }

    /// Ids of the filters of `index` that `document` matches, in no particular order.
    pub fn test<'e>(&'e self, index: &str, document: &Value) -> Vec<&'e str> {
        let mut out = Vec::new();
        self.test_into(index, document, &mut out);
        out
    }

    /// Like [`test`](Self::test), appending to `out` (reuse it to avoid allocations).
    pub fn test_into<'e>(&'e self, index: &str, document: &Value, out: &mut Vec<&'e str>) {
        let Some(collection) = self.collections.get(index) else {
            return;
        };
        let flat = Flat::new(document);
        collection.matches(&flat, out);
    }
}

/// Koncorde's `convertGeopoint`: `(lat, lon)`, or `None` when the value is not a geo point in
/// one of Koncorde's forms (the host's `geo_point` validation type asks the same question).
pub fn convert_geopoint(point: &Value) -> Option<(f64, f64)> {
    geo::convert_geopoint(point)
}

/// Koncorde's `convertDistance`: a distance string (`"10km"`) in meters, or `None` when
/// Koncorde would throw.
pub fn convert_distance(distance: &str) -> Option<f64> {
    units::convert_distance(distance)
}

/// A number as JavaScript's `String(number)` writes it (`2`, not `2.0`; `1e+21`).
pub fn js_number_to_string(number: f64) -> String {
    js::number_to_string(number)
}

#[cfg(test)]
mod tests;
