//! The per-collection filter store (naive version: every filter is evaluated).

use std::collections::HashMap;

use crate::flatten::Flat;
use crate::matcher::eval_minterms;
use crate::normalized::NormalizedFilter;

/// Filters of one `"<index>/<collection>"`.
#[derive(Debug, Default)]
pub(crate) struct Collection {
    filters: HashMap<String, NormalizedFilter>,
}

impl Collection {
    pub(crate) fn insert(&mut self, filter: NormalizedFilter) {
        self.filters.insert(filter.id.clone(), filter);
    }

    pub(crate) fn remove(&mut self, id: &str) {
        self.filters.remove(id);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    pub(crate) fn matches<'e>(&'e self, flat: &Flat<'_>, out: &mut Vec<&'e str>) {
        for (id, filter) in &self.filters {
            if eval_minterms(&filter.compiled, flat) {
                out.push(id);
            }
        }
    }
}
