//! The per-collection condition index: matching costs what the document touches, not the
//! number of subscriptions.
//!
//! A filter is a disjunction of minterms, a minterm a conjunction of literals (a condition and
//! its polarity). Literals and minterms are deduplicated and shared between filters, with links
//! both ways so that removing anything costs O(1) per link and frees what no one uses.
//!
//! Each literal has a *default*: its value on a document that lacks its field. A literal whose
//! default is false must be *hit* by the document (`equals`, `exists`, `range`, `regexp`, …);
//! one whose default is true (most negations) holds unless the document *kills* it.
//!
//! Each minterm is indexed under one *driver*: among its literals defaulting to false, the most
//! selective kind (`equals` first, bare `exists` last), then the one driving the fewest minterms. Minterms without one (`{}`, pure
//! negations) are in the `always` list, and their literals are filed so that kills are seen.
//! Only filed literals (drivers and those) are in the per-field structures: hash maps for
//! `equals` and `exists` (and their negations), interval trees for `range` and for geo shapes
//! (by latitude), lists for `regexp`, `match` and `select`. Matching a document:
//! 1. walk the fields present in both the document and the index, and record which filed
//!    literals the value hits or kills; a hit driver makes its minterms candidates;
//! 2. check each candidate and each `always` minterm: every other literal must hold (filed
//!    literals by what step 1 recorded, others evaluated once per document and remembered);
//! 3. report the filters of the minterms that hold, each once.
//!
//! The work is proportional to the fields of the document, the literals they hit and the
//! minterms these drive, not to the number of filters. Per-document state lives in
//! thread-local scratch arrays stamped with an epoch, so nothing is cleared or allocated per
//! document once they have grown (`Engine::test_into`).
//!
//! Literals are evaluated by [`Test::eval_at`], the same code as a filter-by-filter evaluation:
//! the index only decides which literals a document can change.

use std::cell::RefCell;
use std::sync::Arc;

use serde_json::Value;

use crate::flatten::{self, Flat, Lookup};
use crate::geo;
use crate::interval::IntervalTree;
use crate::js;
use crate::matcher::{CompiledLiteral, Test};
use crate::normalized::NormalizedFilter;
use crate::FastMap as HashMap;

/// No id.
const NONE: u32 = u32::MAX;

/// Stable `u32` ids over a vector; freed slots are reused.
#[derive(Debug)]
struct Slab<T> {
    items: Vec<Option<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            items: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    fn insert(&mut self, item: T) -> u32 {
        self.len += 1;
        match self.free.pop() {
            Some(id) => {
                self.items[id as usize] = Some(item);
                id
            }
            None => {
                self.items.push(Some(item));
                u32::try_from(self.items.len() - 1).expect("fewer than 2^32 entries")
            }
        }
    }

    fn remove(&mut self, id: u32) -> T {
        let item = self.items[id as usize].take().expect("live slab id");
        self.len -= 1;
        if self.len == 0 {
            self.items = Vec::new();
            self.free = Vec::new();
        } else {
            self.free.push(id);
        }
        item
    }

    fn get(&self, id: u32) -> &T {
        self.items[id as usize].as_ref().expect("live slab id")
    }

    fn get_mut(&mut self, id: u32) -> &mut T {
        self.items[id as usize].as_mut().expect("live slab id")
    }

    /// One past the highest id ever handed out (scratch arrays are this long).
    fn bound(&self) -> usize {
        self.items.len()
    }
}

/// A literal (a condition and its polarity), shared by every minterm using it.
#[derive(Debug)]
struct Lit {
    test: Arc<Test>,
    not: bool,
    /// The literal's value on a document without its field.
    default: bool,
    /// Its stable key (shared with `Collection::literal_ids`).
    key: Arc<str>,
    /// Minterms using it.
    refs: u32,
    /// Minterms it drives: a hit makes them candidates.
    drives: Vec<u32>,
    /// Minterms requiring no hit that use it (it must then be filed, so kills are seen).
    kill_uses: u32,
    /// Filed under its field: the index reports when the document hits or kills it.
    filed: bool,
    /// Position in its field's `scan` or `geo_neg` list, if in one.
    list_pos: u32,
}

impl Lit {
    fn needs_filing(&self) -> bool {
        !self.drives.is_empty() || self.kill_uses > 0
    }
}

/// A conjunction of literals, shared by every filter using it.
#[derive(Debug)]
struct Minterm {
    /// Its literals, sorted.
    lits: Box<[u32]>,
    /// The literal indexing it: one that defaults to false (the most selective kind), or
    /// `NONE` when all default to true (the minterm is then in `Collection::always`).
    driver: u32,
    /// Position in the driver's `drives`, or in `Collection::always`.
    pos: u32,
    /// (filter, index of this minterm in the filter's `minterms`).
    filters: Vec<(u32, u32)>,
}

/// A stored filter.
#[derive(Debug)]
struct FilterEntry {
    id: Arc<str>,
    /// (minterm, index of this filter in the minterm's `filters`).
    minterms: Vec<(u32, u32)>,
}

/// The positive and the negated literal filed under one key.
#[derive(Debug, Clone, Copy)]
struct Pair {
    pos: u32,
    neg: u32,
}

impl Default for Pair {
    fn default() -> Self {
        Pair {
            pos: NONE,
            neg: NONE,
        }
    }
}

impl Pair {
    fn is_empty(&self) -> bool {
        self.pos == NONE && self.neg == NONE
    }

    fn slot(&mut self, not: bool) -> &mut u32 {
        if not {
            &mut self.neg
        } else {
            &mut self.pos
        }
    }
}

/// Literals keyed by a scalar, under JavaScript's `===` (numbers by value, `-0 === 0`).
#[derive(Debug, Default)]
struct ScalarMap {
    strings: HashMap<Box<str>, Pair>,
    numbers: HashMap<u64, Pair>,
    /// `null`, `false`, `true`.
    others: [Pair; 3],
    len: usize,
}

/// The key of a number for `===`; `None` for NaN, which equals nothing.
fn number_key(n: &serde_json::Number) -> Option<u64> {
    let f = js::num(n);
    if f.is_nan() {
        None
    } else if f == 0.0 {
        Some(0)
    } else {
        Some(f.to_bits())
    }
}

impl ScalarMap {
    fn get(&self, value: &Value) -> Option<&Pair> {
        if self.len == 0 {
            return None;
        }
        match value {
            Value::String(s) => self.strings.get(s.as_str()),
            Value::Number(n) => self.numbers.get(&number_key(n)?),
            Value::Null => Some(&self.others[0]),
            Value::Bool(b) => Some(&self.others[1 + usize::from(*b)]),
            Value::Array(_) | Value::Object(_) => None,
        }
    }

    /// The slot for `value` (created); `None` for values `===` never matches.
    fn slot(&mut self, value: &Value) -> Option<&mut Pair> {
        let pair = match value {
            Value::String(s) => self.strings.entry(s.as_str().into()).or_default(),
            Value::Number(n) => self.numbers.entry(number_key(n)?).or_default(),
            Value::Null => &mut self.others[0],
            Value::Bool(b) => &mut self.others[1 + usize::from(*b)],
            Value::Array(_) | Value::Object(_) => return None,
        };
        Some(pair)
    }

    /// Files `lit` under `value`; false if the slot is taken or the value never matches.
    fn add(&mut self, value: &Value, not: bool, lit: u32) -> bool {
        let Some(pair) = self.slot(value) else {
            return false;
        };
        let slot = pair.slot(not);
        if *slot != NONE {
            return false;
        }
        *slot = lit;
        self.len += 1;
        true
    }

    /// Unfiles `lit`; false if it was not filed here.
    fn remove(&mut self, value: &Value, not: bool, lit: u32) -> bool {
        let removed = match value {
            Value::String(s) => {
                let removed = self
                    .strings
                    .get_mut(s.as_str())
                    .is_some_and(|pair| take(pair.slot(not), lit));
                if removed && self.strings[s.as_str()].is_empty() {
                    self.strings.remove(s.as_str());
                    shrink(&mut self.strings);
                }
                removed
            }
            Value::Number(n) => {
                let Some(key) = number_key(n) else {
                    return false;
                };
                let removed = self
                    .numbers
                    .get_mut(&key)
                    .is_some_and(|pair| take(pair.slot(not), lit));
                if removed && self.numbers[&key].is_empty() {
                    self.numbers.remove(&key);
                    shrink(&mut self.numbers);
                }
                removed
            }
            Value::Null => take(self.others[0].slot(not), lit),
            Value::Bool(b) => take(self.others[1 + usize::from(*b)].slot(not), lit),
            Value::Array(_) | Value::Object(_) => false,
        };
        if removed {
            self.len -= 1;
        }
        removed
    }
}

/// Empties `slot` if it holds `lit`.
fn take(slot: &mut u32, lit: u32) -> bool {
    if *slot == lit {
        *slot = NONE;
        true
    } else {
        false
    }
}

/// Gives memory back once a map is mostly empty (amortized O(1) per removal).
fn shrink<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > 16 && map.len() * 4 < map.capacity() {
        map.shrink_to(map.len() * 2);
    }
}

/// Removes `list[pos]` by swapping the last item in; returns the moved item, if any.
fn swap_out<T: Copy>(list: &mut Vec<T>, pos: u32) -> Option<T> {
    list.swap_remove(pos as usize);
    if list.is_empty() {
        *list = Vec::new();
    } else if list.capacity() > 8 && list.len() * 4 < list.capacity() {
        list.shrink_to(list.len() * 2);
    }
    list.get(pos as usize).copied()
}

/// Everything filed under one document field.
#[derive(Debug, Default)]
struct Field {
    /// `equals` (and `not equals`) by value.
    equals: ScalarMap,
    /// `exists` / `not exists` of the field.
    exists: Pair,
    /// `exists: 'field["value"]'` (and negations) by value.
    exists_values: ScalarMap,
    /// `range` by interval; negations by the interval they are false on.
    ranges: IntervalTree,
    /// Geo shapes (both polarities) by latitude span.
    geo: IntervalTree,
    /// Negated geo literals: a document value that is not a point kills them all.
    geo_neg: Vec<u32>,
    /// Literals evaluated one by one when the field is present: `regexp`, `match`, `select`.
    scan: Vec<u32>,
    /// Literals filed here.
    count: usize,
}

/// Filters of one `"<index>/<collection>"`, indexed.
#[derive(Debug, Default)]
pub(crate) struct Collection {
    filters: Slab<FilterEntry>,
    minterms: Slab<Minterm>,
    /// Sorted literal ids -> minterm.
    minterm_ids: HashMap<Box<[u32]>, u32>,
    lits: Slab<Lit>,
    /// Literal key -> literal.
    literal_ids: HashMap<Arc<str>, u32>,
    fields: HashMap<Box<str>, Field>,
    /// Fields named like `Object.prototype` properties (`document[name]` is never undefined).
    inherited_fields: Vec<&'static str>,
    /// Minterms requiring no hit.
    always: Vec<u32>,
}

/// Sizes of the internal tables, for tests.
#[cfg(test)]
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Stats {
    pub(crate) filters: usize,
    pub(crate) minterms: usize,
    pub(crate) literals: usize,
    pub(crate) fields: usize,
    pub(crate) always: usize,
    /// Entries of the per-field structures (hash slots, tree nodes, lists).
    pub(crate) filed: usize,
}

impl Collection {
    /// Stores a filter (not stored yet) and returns its slot.
    pub(crate) fn insert(&mut self, id: Arc<str>, filter: &NormalizedFilter) -> u32 {
        let slot = self.filters.insert(FilterEntry {
            id,
            minterms: Vec::with_capacity(filter.minterms.len()),
        });
        for (keys, compiled) in filter.minterms.iter().zip(&filter.compiled) {
            let minterm = self.intern_minterm(keys, compiled);
            let m = self.minterms.get_mut(minterm);
            let at_minterm = m.filters.len() as u32;
            m.filters.push((slot, 0));
            let f = self.filters.get_mut(slot);
            m.filters[at_minterm as usize].1 = f.minterms.len() as u32;
            f.minterms.push((minterm, at_minterm));
        }
        slot
    }

    /// Removes the filter in `slot`, and the minterms and literals only it used.
    pub(crate) fn remove(&mut self, slot: u32) {
        let filter = self.filters.remove(slot);
        for (minterm, pos) in filter.minterms {
            let m = self.minterms.get_mut(minterm);
            if let Some((moved, at)) = swap_out(&mut m.filters, pos) {
                self.filters.get_mut(moved).minterms[at as usize].1 = pos;
            }
            if self.minterms.get(minterm).filters.is_empty() {
                self.drop_minterm(minterm);
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.filters.len == 0
    }

    #[cfg(test)]
    pub(crate) fn stats(&self) -> Stats {
        let filed = self
            .fields
            .values()
            .map(|f| {
                f.equals.len
                    + f.exists_values.len
                    + usize::from(f.exists.pos != NONE)
                    + usize::from(f.exists.neg != NONE)
                    + f.ranges.len()
                    + f.geo.len()
                    + f.geo_neg.len()
                    + f.scan.len()
            })
            .sum();
        Stats {
            filters: self.filters.len,
            minterms: self.minterms.len,
            literals: self.lits.len,
            fields: self.fields.len(),
            always: self.always.len(),
            filed,
        }
    }

    fn intern_minterm(
        &mut self,
        keys: &[(String, crate::model::Literal)],
        compiled: &[CompiledLiteral],
    ) -> u32 {
        let mut ids: Vec<u32> = keys
            .iter()
            .map(|(key, _)| self.literal_ids.get(key.as_str()).copied().unwrap_or(NONE))
            .collect();
        if !ids.contains(&NONE) {
            ids.sort_unstable();
            if let Some(&m) = self.minterm_ids.get(ids.as_slice()) {
                return m;
            }
        }
        // A new minterm: create the literals it lacks.
        for (i, ((key, _), c)) in keys.iter().zip(compiled).enumerate() {
            if ids[i] == NONE {
                ids[i] = self.create_literal(key, c);
            }
        }
        ids.sort_unstable();
        let driver = ids
            .iter()
            .copied()
            .filter(|&l| !self.lits.get(l).default)
            // Among equally selective kinds, the literal driving the fewest minterms: a literal
            // shared by many filters (`active == true` in thousands of `and`s) would make them
            // all candidates for every document it hits.
            .min_by_key(|&l| {
                let lit = self.lits.get(l);
                (driver_rank(&lit.test), lit.drives.len())
            })
            .unwrap_or(NONE);
        let minterm = self.minterms.insert(Minterm {
            lits: ids.clone().into_boxed_slice(),
            driver,
            pos: NONE,
            filters: Vec::new(),
        });
        for &l in &ids {
            self.lits.get_mut(l).refs += 1;
        }
        if driver == NONE {
            self.minterms.get_mut(minterm).pos = self.always.len() as u32;
            self.always.push(minterm);
            for &l in &ids {
                self.lits.get_mut(l).kill_uses += 1;
                self.sync_filing(l);
            }
        } else {
            let lit = self.lits.get_mut(driver);
            self.minterms.get_mut(minterm).pos = lit.drives.len() as u32;
            lit.drives.push(minterm);
            self.sync_filing(driver);
        }
        self.minterm_ids.insert(ids.into_boxed_slice(), minterm);
        minterm
    }

    fn drop_minterm(&mut self, minterm: u32) {
        let m = self.minterms.remove(minterm);
        if m.driver == NONE {
            if let Some(moved) = swap_out(&mut self.always, m.pos) {
                self.minterms.get_mut(moved).pos = m.pos;
            }
            for &l in m.lits.iter() {
                self.lits.get_mut(l).kill_uses -= 1;
            }
        } else if let Some(moved) = swap_out(&mut self.lits.get_mut(m.driver).drives, m.pos) {
            self.minterms.get_mut(moved).pos = m.pos;
        }
        self.minterm_ids.remove(&m.lits);
        shrink(&mut self.minterm_ids);
        for &l in m.lits.iter() {
            self.sync_filing(l);
            let lit = self.lits.get_mut(l);
            lit.refs -= 1;
            if lit.refs == 0 {
                self.drop_literal(l);
            }
        }
    }

    /// Files or unfiles a literal as its uses require.
    fn sync_filing(&mut self, l: u32) {
        let lit = self.lits.get(l);
        match (lit.filed, lit.needs_filing()) {
            (false, true) => {
                self.file(l);
                self.lits.get_mut(l).filed = true;
            }
            (true, false) => {
                self.unfile(l);
                self.lits.get_mut(l).filed = false;
            }
            _ => {}
        }
    }

    fn create_literal(&mut self, key: &str, compiled: &CompiledLiteral) -> u32 {
        let test = Arc::clone(&compiled.test);
        let not = compiled.not;
        let default = test.eval_at(Lookup::Missing, &Flat::default(), not);
        let key: Arc<str> = Arc::from(key);
        let id = self.lits.insert(Lit {
            test,
            not,
            default,
            key: Arc::clone(&key),
            refs: 0,
            drives: Vec::new(),
            kill_uses: 0,
            filed: false,
            list_pos: NONE,
        });
        self.literal_ids.insert(key, id);
        id
    }

    fn drop_literal(&mut self, id: u32) {
        let lit = self.lits.remove(id);
        self.literal_ids.remove(&lit.key);
        shrink(&mut self.literal_ids);
    }

    /// Files a new literal under its field.
    fn file(&mut self, id: u32) {
        let lit = self.lits.get(id);
        let test = Arc::clone(&lit.test);
        let not = lit.not;
        let Some(name) = test.field() else {
            // `everything` / `nothing`: constant, nothing to file.
            return;
        };
        if !self.fields.contains_key(name) {
            if let Some(inherited) = flatten::inherited_name(name) {
                self.inherited_fields.push(inherited);
            }
        }
        let field = self.fields.entry(name.into()).or_default();
        field.count += 1;
        let to_scan = match &*test {
            Test::Equals { value, .. } => !field.equals.add(value, not, id),
            Test::Exists { array: false, .. } => {
                let slot = field.exists.slot(not);
                if *slot == NONE {
                    *slot = id;
                    false
                } else {
                    true
                }
            }
            Test::Exists {
                array: true, value, ..
            } => !field.exists_values.add(value, not, id),
            Test::Range { bounds, .. } => {
                let (low, high) = if not {
                    (bounds.not_low, bounds.not_high)
                } else {
                    (bounds.low, bounds.high)
                };
                field.ranges.insert(low, high, id);
                false
            }
            Test::Geo { shape, .. } => {
                let (low, high) = shape.lat_span();
                field.geo.insert(low, high, id);
                if not {
                    let pos = field.geo_neg.len() as u32;
                    field.geo_neg.push(id);
                    self.lits.get_mut(id).list_pos = pos;
                }
                false
            }
            _ => true,
        };
        if to_scan {
            let field = self.fields.get_mut(name).expect("just filed");
            let pos = field.scan.len() as u32;
            field.scan.push(id);
            self.lits.get_mut(id).list_pos = pos;
        }
    }

    /// Undoes [`file`](Self::file).
    fn unfile(&mut self, id: u32) {
        let lit = self.lits.get(id);
        let test = Arc::clone(&lit.test);
        let (not, list_pos) = (lit.not, lit.list_pos);
        let Some(name) = test.field() else {
            return;
        };
        let field = self.fields.get_mut(name).expect("filed literal");
        field.count -= 1;
        let in_scan = match &*test {
            Test::Equals { value, .. } => !field.equals.remove(value, not, id),
            Test::Exists { array: false, .. } => !take(field.exists.slot(not), id),
            Test::Exists {
                array: true, value, ..
            } => !field.exists_values.remove(value, not, id),
            Test::Range { bounds, .. } => {
                let low = if not { bounds.not_low } else { bounds.low };
                let removed = field.ranges.remove(low, id);
                debug_assert!(removed);
                false
            }
            Test::Geo { shape, .. } => {
                let removed = field.geo.remove(shape.lat_span().0, id);
                debug_assert!(removed);
                if not {
                    if let Some(moved) = swap_out(&mut field.geo_neg, list_pos) {
                        self.lits.get_mut(moved).list_pos = list_pos;
                    }
                }
                false
            }
            _ => true,
        };
        let field = self.fields.get_mut(name).expect("filed literal");
        if in_scan {
            if let Some(moved) = swap_out(&mut field.scan, list_pos) {
                self.lits.get_mut(moved).list_pos = list_pos;
            }
        }
        if field.count == 0 {
            self.fields.remove(name);
            shrink(&mut self.fields);
            self.inherited_fields.retain(|n| *n != name);
        }
    }

    /// Appends the ids of the filters `flat` matches.
    pub(crate) fn matches<'e>(&'e self, flat: &Flat<'_>, out: &mut Vec<&'e str>) {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let s = &mut *scratch;
            s.begin(self.lits.bound(), self.filters.bound());
            if self.fields.len() <= flat.len() {
                for (name, field) in &self.fields {
                    if let Some(value) = flat.value(name) {
                        self.visit(field, value, flat, s);
                    }
                }
            } else {
                for (name, value) in flat.entries() {
                    if let Some(field) = self.fields.get(name) {
                        self.visit(field, value, flat, s);
                    }
                }
            }
            for &name in &self.inherited_fields {
                if flat.value(name).is_none() {
                    self.visit_inherited(&self.fields[name], name, flat, s);
                }
            }
            let epoch = s.epoch;
            for i in 0..s.candidates.len() + self.always.len() {
                let m = match s.candidates.get(i) {
                    Some(&m) => m,
                    None => self.always[i - s.candidates.len()],
                };
                let minterm = self.minterms.get(m);
                if !minterm
                    .lits
                    .iter()
                    .all(|&l| l == minterm.driver || self.value(l, flat, s))
                {
                    continue;
                }
                for &(f, _) in &minterm.filters {
                    let seen = &mut s.filter_seen[f as usize];
                    if *seen != epoch {
                        *seen = epoch;
                        out.push(&self.filters.get(f).id);
                    }
                }
            }
        });
    }

    /// The literal's value for the current document: the index's verdict for filed literals,
    /// otherwise evaluated (once per document).
    fn value(&self, l: u32, flat: &Flat<'_>, s: &mut Scratch) -> bool {
        let state = s.lit_state[l as usize];
        if state.epoch == s.epoch {
            return state.value;
        }
        let lit = self.lits.get(l);
        if lit.filed {
            return lit.default;
        }
        let value = lit.test.eval(flat, lit.not);
        s.lit_state[l as usize] = LitState {
            epoch: s.epoch,
            value,
        };
        value
    }

    /// The literals of `field` that its present `value` hits or kills.
    fn visit(&self, field: &Field, value: &Value, flat: &Flat<'_>, s: &mut Scratch) {
        if let Some(pair) = field.equals.get(value) {
            self.pair(*pair, s);
        }
        self.pair(field.exists, s);
        if let Value::Array(items) = value {
            if field.exists_values.len > 0 {
                for item in items {
                    if let Some(pair) = field.exists_values.get(item) {
                        self.pair(*pair, s);
                    }
                }
            }
        }
        let lookup = Lookup::Value(value);
        if let Value::Number(n) = value {
            if !field.ranges.is_empty() {
                let x = js::num(n);
                field.ranges.stab(x, &mut |l| self.eval(l, lookup, flat, s));
            }
        }
        if !field.geo.is_empty() && js::truthy(value) {
            match geo::convert_geopoint(value) {
                // Not a point: positive geo literals are false, as by default; negated ones too.
                None => {
                    for &l in &field.geo_neg {
                        self.set(l, false, s);
                    }
                }
                Some((lat, lon)) => field.geo.stab(lat, &mut |l| {
                    let lit = self.lits.get(l);
                    if let Test::Geo { shape, .. } = &*lit.test {
                        self.set(l, shape.covers(lat, lon) != lit.not, s);
                    }
                }),
            }
        }
        for &l in &field.scan {
            self.eval(l, lookup, flat, s);
        }
    }

    /// A field named like an `Object.prototype` property that the document lacks: JavaScript
    /// finds the inherited function. Only a few negated literals read it differently from a
    /// missing field; they are evaluated.
    fn visit_inherited(&self, field: &Field, name: &'static str, flat: &Flat<'_>, s: &mut Scratch) {
        let lookup = Lookup::Inherited(name);
        for l in [field.exists.pos, field.exists.neg] {
            if l != NONE {
                self.eval(l, lookup, flat, s);
            }
        }
        for &l in field.geo_neg.iter().chain(&field.scan) {
            self.eval(l, lookup, flat, s);
        }
    }

    /// The positive literal of `pair` is hit; the negated one is killed.
    fn pair(&self, pair: Pair, s: &mut Scratch) {
        if pair.pos != NONE {
            self.set(pair.pos, true, s);
        }
        if pair.neg != NONE {
            self.set(pair.neg, false, s);
        }
    }

    fn eval(&self, l: u32, lookup: Lookup<'_>, flat: &Flat<'_>, s: &mut Scratch) {
        let lit = self.lits.get(l);
        let value = lit.test.eval_at(lookup, flat, lit.not);
        self.set(l, value, s);
    }

    /// Records that the filed literal `l` is `value` for this document.
    fn set(&self, l: u32, value: bool, s: &mut Scratch) {
        let lit = self.lits.get(l);
        if value == lit.default {
            return;
        }
        let state = &mut s.lit_state[l as usize];
        if state.epoch == s.epoch {
            return;
        }
        *state = LitState {
            epoch: s.epoch,
            value,
        };
        if value {
            s.candidates.extend_from_slice(&lit.drives);
        }
    }
}

/// How good a literal is at driving a minterm: lower is more selective (a hash hit on a value
/// beats an interval, which beats "the field is there").
fn driver_rank(test: &Test) -> u8 {
    match test {
        Test::Equals { .. } => 0,
        Test::Exists { array: true, .. } => 1,
        Test::Geo { .. } => 2,
        Test::Range { .. } => 3,
        Test::Select { .. } | Test::Match { .. } => 4,
        Test::Regexp { .. } => 5,
        Test::Exists { array: false, .. } => 6,
        Test::Everything | Test::Nothing => 7,
    }
}

/// A literal's value for the document of `epoch`.
#[derive(Debug, Default, Clone, Copy)]
struct LitState {
    epoch: u32,
    value: bool,
}

/// Scratch arrays reused from one document to the next, indexed by slab ids.
#[derive(Debug, Default)]
struct Scratch {
    epoch: u32,
    lit_state: Vec<LitState>,
    filter_seen: Vec<u32>,
    /// Minterms whose driver the document hits.
    candidates: Vec<u32>,
}

impl Scratch {
    fn begin(&mut self, lits: usize, filters: usize) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.lit_state.fill(LitState::default());
            self.filter_seen.fill(0);
            self.epoch = 1;
        }
        if self.lit_state.len() < lits {
            self.lit_state.resize(lits, LitState::default());
        }
        if self.filter_seen.len() < filters {
            self.filter_seen.resize(filters, 0);
        }
        self.candidates.clear();
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}
