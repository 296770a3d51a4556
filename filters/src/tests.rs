//! Unit tests: table-driven cases whose expected answers were produced by npm koncorde 4.6.0
//! (`tests/data/*.json`), plus engine bookkeeping.

use serde_json::{json, Value};

use crate::{Engine, EngineConfig, FilterErrorKind};

const INDEX: &str = "i/c";

/// Runs a case file: `[{filter, docs, matches: [bool]} | {filter, docs, error: {message, keyword, path}}]`.
fn run_cases(text: &str) -> usize {
    let cases: Vec<Value> = serde_json::from_str(text).expect("case file is JSON");
    let mut failures = Vec::new();
    for case in &cases {
        let filter = &case["filter"];
        let mut engine = Engine::new(EngineConfig::default());
        let normalized = engine.normalize(INDEX, filter);
        match (&case["error"], normalized) {
            (Value::Null, Ok(n)) => {
                let id = engine.store(n);
                for (doc, want) in case["docs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .zip(case["matches"].as_array().unwrap())
                {
                    let got = engine.test(INDEX, doc).contains(&id.as_str());
                    if Some(got) != want.as_bool() {
                        failures.push(format!("{filter} on {doc}: got {got}, want {want}"));
                    }
                }
            }
            (Value::Null, Err(e)) => failures.push(format!("{filter}: unexpected error {e}")),
            (want, Ok(_)) => failures.push(format!("{filter}: accepted, want error {want}")),
            (want, Err(e)) => {
                let got =
                    json!({"message": e.to_string(), "keyword": e.keyword(), "path": e.path()});
                if &got != want {
                    failures.push(format!("{filter}: got error {got}, want {want}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    cases.len()
}

#[test]
fn subset_cases_match_koncorde() {
    assert!(run_cases(include_str!("../tests/data/subset_cases.json")) > 90);
}

#[test]
fn ids_are_deterministic_and_shared_by_equivalent_filters() {
    let engine = Engine::new(EngineConfig::default());
    let a = engine
        .normalize(
            INDEX,
            &json!({"and": [{"equals": {"a": 1}}, {"exists": "b"}]}),
        )
        .unwrap();
    let b = engine
        .normalize(
            INDEX,
            &json!({"bool": {"must": [{"exists": {"field": "b"}}, {"equals": {"a": 1.0}}]}}),
        )
        .unwrap();
    let c = engine
        .normalize(
            "i/other",
            &json!({"and": [{"equals": {"a": 1}}, {"exists": "b"}]}),
        )
        .unwrap();
    assert_eq!(a.id(), b.id());
    assert_ne!(a.id(), c.id());
    assert_eq!(a.id().len(), 64);
    assert!(a.id().bytes().all(|b| b.is_ascii_hexdigit()));
    // Pinned: the id must not change across releases, processes or restarts.
    let empty = engine.normalize(INDEX, &json!({})).unwrap();
    assert_eq!(
        empty.id(),
        engine.normalize(INDEX, &json!(null)).unwrap().id()
    );
    let in_or = engine
        .normalize(INDEX, &json!({"in": {"a": ["x", "y"]}}))
        .unwrap();
    let or_eq = engine
        .normalize(
            INDEX,
            &json!({"or": [{"equals": {"a": "y"}}, {"equals": {"a": "x"}}]}),
        )
        .unwrap();
    assert_eq!(in_or.id(), or_eq.id());
}

#[test]
fn store_is_idempotent_and_remove_frees() {
    let mut engine = Engine::new(EngineConfig::default());
    let f = engine
        .normalize(INDEX, &json!({"equals": {"a": 1}}))
        .unwrap();
    let id = engine.store(f.clone());
    assert_eq!(engine.store(f), id);
    assert_eq!(engine.len(), 1);
    assert!(engine.has(&id));
    assert_eq!(engine.test(INDEX, &json!({"a": 1})), vec![id.as_str()]);
    assert!(engine.test("other/index", &json!({"a": 1})).is_empty());
    engine.remove(&id);
    assert!(!engine.has(&id));
    assert!(engine.is_empty());
    assert!(engine.test(INDEX, &json!({"a": 1})).is_empty());
    engine.remove(&id);
}

#[test]
fn max_conditions_is_checked_at_normalization_only() {
    let engine = Engine::new(EngineConfig {
        max_conditions: 2,
        ..EngineConfig::default()
    });
    let filter = json!({"and": [{"equals": {"a": 1}}, {"in": {"b": ["x", "y"]}}]});
    engine.validate(&filter).unwrap();
    let err = engine.normalize(INDEX, &filter).unwrap_err();
    assert_eq!(err.kind(), FilterErrorKind::TooComplex);
    assert_eq!(
        err.to_string(),
        "Filter too complex: exceeds the configured maximum number of conditions (conditions: 3, max: 2)"
    );
    // 0 means Koncorde's default, 50.
    let engine = Engine::new(EngineConfig {
        max_conditions: 0,
        ..EngineConfig::default()
    });
    let many: Vec<Value> = (0..51).map(|i| json!({"equals": {"a": i}})).collect();
    assert!(engine.normalize(INDEX, &json!({"or": many})).is_err());
}

#[test]
fn engine_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Engine>();
    check::<crate::NormalizedFilter>();
}

#[test]
fn bounding_boxes_boost_refuses_are_refused() {
    let engine = Engine::new(EngineConfig::default());
    let filter = json!({"geoBoundingBox": {"loc": {"topLeft": "nope", "bottomRight": [1, 2]}}});
    let err = engine.normalize(INDEX, &filter).unwrap_err();
    assert_eq!(
        err.to_string(),
        "min_lat argument cannot be greater or equal max_lat"
    );
}

/// xorshift64*, for the randomized tests below.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as usize % n
    }
    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

/// Fields include dotted paths and `Object.prototype` names (`document.constructor` is a
/// function in JavaScript, which some negations see).
const FIELDS: [&str; 6] = ["a", "b", "c.d", "arr", "constructor", "toString"];

fn scalar(rng: &mut Rng) -> Value {
    rng.pick(&[
        json!(0),
        json!(1),
        json!(-0.0),
        json!(2.5),
        json!("x"),
        json!("y"),
        json!(""),
        json!(true),
        json!(false),
        json!(null),
    ])
}

fn random_leaf(rng: &mut Rng) -> Value {
    let f = rng.pick(&FIELDS);
    match rng.below(12) {
        0 | 1 => json!({"equals": {f: scalar(rng)}}),
        2 => json!({"in": {f: [rng.pick(&["x", "y", "z"]), rng.pick(&["x", "1"])]}}),
        3 => {
            json!({"range": {f: {rng.pick(&["gt", "gte"]): rng.below(4), rng.pick(&["lt", "lte"]): 2 + rng.below(4)}}})
        }
        4 => {
            json!({"range": {f: {rng.pick(&["gt", "gte", "lt", "lte"]): rng.pick(&[0.0, 1.0, 2.5])}}})
        }
        5 => json!({"exists": f}),
        6 => json!({"missing": f}),
        7 => json!({"exists": format!("{f}[{}]", rng.pick(&["\"x\"", "1", "null", "true"]))}),
        8 => json!({"regexp": {f: rng.pick(&["^x", "y$", "^$", "function", "\\d", "object"])}}),
        9 => {
            json!({"geoDistance": {f: {"lat": 43.6, "lon": 3.9}, "distance": rng.pick(&["1km", "20km"])}})
        }
        10 => {
            json!({"geoBoundingBox": {f: {"top": 44.0, "left": 3.0, "bottom": 43.0, "right": 4.0}}})
        }
        _ => match rng.below(3) {
            0 => json!({"match": {f: scalar(rng)}}),
            1 => {
                json!({"select": {"field": "arr", "index": rng.pick(&[0, -1]), "query": {"equals": {"value": scalar(rng)}}}})
            }
            _ => json!({}),
        },
    }
}

fn random_filter(rng: &mut Rng, depth: usize) -> Value {
    if depth == 0 || rng.below(3) == 0 {
        return random_leaf(rng);
    }
    let items: Vec<Value> = (0..1 + rng.below(3))
        .map(|_| random_filter(rng, depth - 1))
        .collect();
    match rng.below(4) {
        0 => json!({"and": items}),
        1 => json!({"or": items}),
        2 => json!({"not": items[0]}),
        _ => json!({"bool": {"must": [items[0]], "must_not": items[1..]}}),
    }
}

fn random_document(rng: &mut Rng) -> Value {
    let mut doc = serde_json::Map::new();
    for f in FIELDS {
        if rng.below(3) > 0 {
            let value = match rng.below(6) {
                0 => json!([scalar(rng), "x", 1]),
                1 => json!({"lat": 43.6 + rng.below(3) as f64 * 0.1, "lon": 3.9}),
                2 => json!(rng.below(6) as f64 * 0.5),
                _ => scalar(rng),
            };
            match f.split_once('.') {
                Some((outer, inner)) if rng.below(2) == 0 => {
                    doc.insert(outer.to_owned(), json!({ inner: value }));
                }
                _ => {
                    doc.insert(f.to_owned(), value);
                }
            }
        }
    }
    Value::Object(doc)
}

/// What a filter-by-filter evaluation says (the previous, unindexed matcher).
fn naive(filters: &[crate::NormalizedFilter], doc: &Value) -> Vec<String> {
    let flat = crate::flatten::Flat::new(doc);
    let mut ids: Vec<String> = filters
        .iter()
        .filter(|f| crate::matcher::eval_minterms(&f.compiled, &flat))
        .map(|f| f.id().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

fn indexed(engine: &Engine, doc: &Value) -> Vec<String> {
    let mut ids: Vec<String> = engine
        .test(INDEX, doc)
        .into_iter()
        .map(str::to_owned)
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(n, ids.len(), "a filter is reported twice");
    ids
}

#[test]
fn index_agrees_with_filter_by_filter_evaluation() {
    let mut rng = Rng(0x1de_a5ed);
    let documents: Vec<Value> = (0..300).map(|_| random_document(&mut rng)).collect();
    for round in 0..20 {
        let mut engine = Engine::new(EngineConfig::default());
        let mut stored: Vec<crate::NormalizedFilter> = Vec::new();
        for _ in 0..60 + round * 10 {
            let Ok(filter) = engine.normalize(INDEX, &random_filter(&mut rng, 3)) else {
                continue;
            };
            if !engine.has(filter.id()) {
                stored.push(filter.clone());
            }
            engine.store(filter);
        }
        for phase in 0..3 {
            for doc in &documents {
                assert_eq!(
                    indexed(&engine, doc),
                    naive(&stored, doc),
                    "round {round}, phase {phase}, document {doc}"
                );
            }
            // Remove a third, at random, and check again.
            for _ in 0..stored.len() / 3 {
                let gone = stored.swap_remove(rng.below(stored.len()));
                engine.remove(gone.id());
            }
        }
    }
}

#[test]
fn removing_everything_leaves_no_residue() {
    let mut rng = Rng(0x000c_1ea4);
    let mut engine = Engine::new(EngineConfig::default());
    let mut ids = Vec::new();
    for _ in 0..2000 {
        if let Ok(filter) = engine.normalize(INDEX, &random_filter(&mut rng, 3)) {
            ids.push(engine.store(filter));
        }
    }
    ids.sort();
    ids.dedup();
    let full = engine.stats(INDEX);
    assert_eq!(full.filters, ids.len());
    assert!(full.minterms > 0 && full.literals > 0 && full.fields > 0 && full.filed > 0);
    // Remove in random order; matching keeps working on what is left.
    while !ids.is_empty() {
        let id = ids.swap_remove(rng.below(ids.len()));
        engine.remove(&id);
        assert!(!engine.has(&id));
        if ids.len() == 10 {
            let stats = engine.stats(INDEX);
            assert_eq!(stats.filters, 10);
            assert!(stats.literals < full.literals && stats.minterms <= 10 * 64);
        }
    }
    assert!(engine.is_empty());
    assert_eq!(engine.stats(INDEX), crate::index::Stats::default());
    assert!(engine.test(INDEX, &json!({"a": 1})).is_empty());
}

#[test]
fn shared_conditions_are_counted_and_freed() {
    let mut engine = Engine::new(EngineConfig::default());
    let store = |engine: &mut Engine, f: Value| {
        let n = engine.normalize(INDEX, &f).unwrap();
        engine.store(n)
    };
    // Three filters sharing `equals a 1` (and the first two its minterm).
    let a = store(&mut engine, json!({"equals": {"a": 1}}));
    let b = store(
        &mut engine,
        json!({"or": [{"equals": {"a": 1}}, {"range": {"b": {"gt": 0}}}]}),
    );
    let c = store(
        &mut engine,
        json!({"and": [{"equals": {"a": 1}}, {"missing": "c"}]}),
    );
    let d = store(&mut engine, json!({"not": {"equals": {"a": 1}}}));
    let stats = engine.stats(INDEX);
    // Literals: a=1, b>0, not exists c, not a=1. Minterms: [a=1], [b>0], [a=1, !c], [!a=1].
    assert_eq!((stats.filters, stats.literals, stats.minterms), (4, 4, 4));
    // Filed: a=1 (drives two minterms), b>0, not a=1 (in a minterm needing no hit); `missing c`
    // is only checked when `a=1` fires.
    assert_eq!((stats.fields, stats.filed, stats.always), (2, 3, 1));
    let hits = |engine: &Engine, doc: Value| {
        let mut v: Vec<String> = engine
            .test(INDEX, &doc)
            .into_iter()
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    };
    let mut abc = vec![a.clone(), b.clone(), c.clone()];
    abc.sort();
    assert_eq!(hits(&engine, json!({"a": 1})), abc);
    assert_eq!(hits(&engine, json!({"a": 2, "b": 1})), {
        let mut v = vec![b.clone(), d.clone()];
        v.sort();
        v
    });
    engine.remove(&a);
    let stats = engine.stats(INDEX);
    assert_eq!((stats.literals, stats.minterms, stats.filed), (4, 4, 3));
    engine.remove(&b);
    let stats = engine.stats(INDEX);
    // [a=1] and [b>0] are gone with b; a=1 still drives c's minterm.
    assert_eq!(
        (stats.literals, stats.minterms, stats.fields, stats.filed),
        (3, 2, 1, 2)
    );
    engine.remove(&d);
    let stats = engine.stats(INDEX);
    assert_eq!(
        (stats.literals, stats.minterms, stats.filed, stats.always),
        (2, 1, 1, 0)
    );
    assert_eq!(hits(&engine, json!({"a": 1})), vec![c.clone()]);
    assert!(hits(&engine, json!({"a": 1, "c": 0})).is_empty());
    engine.remove(&c);
    assert_eq!(engine.stats(INDEX), crate::index::Stats::default());
}

/// Koncorde 4.6.0's own black-box cases (every `it()` of its `#validation` and `#matching`
/// blocks), recorded call by call from its mocha suite by `filters/oracle/record-cases.sh`, and
/// replayed here: each `validate`/`register`/`normalize`/`test`/… must give Koncorde's answer
/// (errors by message, keyword and path; matches as sets, through the id each registration got).
#[test]
fn koncorde_suite_cases_replay() {
    use std::collections::HashMap;

    let cases: Vec<Value> =
        serde_json::from_str(include_str!("../tests/data/koncorde_suite_cases.json")).unwrap();
    let error_json = |e: &crate::FilterError| json!({"message": e.to_string(), "keyword": e.keyword(), "path": e.path()});
    let (mut replayed, mut skipped, mut calls) = (0, Vec::new(), 0);
    let mut failures = Vec::new();
    for case in &cases {
        let title = case["title"].as_str().unwrap();
        if let Some(reason) = case["skip"].as_str() {
            skipped.push(format!("{title}: {reason}"));
            continue;
        }
        let instances = case["instances"].as_array().unwrap();
        if instances.iter().any(|i| i["regExpEngine"] == "js") {
            skipped.push(format!("{title}: JavaScript regexps (regExpEngine: 'js')"));
            continue;
        }
        replayed += 1;
        let mut engines: Vec<Engine> = instances
            .iter()
            .map(|i| {
                Engine::new(EngineConfig {
                    max_conditions: i["maxConditions"].as_u64().unwrap_or(0) as usize,
                    ..EngineConfig::default()
                })
            })
            .collect();
        // (instance, Koncorde id) -> our id; our id -> Koncorde ids mapped to it.
        let mut ids: HashMap<(usize, String), String> = HashMap::new();
        let mut refs: HashMap<String, usize> = HashMap::new();
        let mut pending: HashMap<String, crate::NormalizedFilter> = HashMap::new();
        for call in case["calls"].as_array().unwrap() {
            calls += 1;
            let instance = call["instance"].as_u64().unwrap() as usize;
            let engine = &mut engines[instance];
            let args = call["args"].as_array().unwrap();
            let index = args.get(1).and_then(Value::as_str).unwrap_or("(default)");
            let want_error = &call["error"];
            let check_error = |got: Option<&crate::FilterError>, failures: &mut Vec<String>| {
                let got = got.map_or(Value::Null, error_json);
                // Koncorde's answer may be an error we report the same way, or success.
                if &got != want_error {
                    failures.push(format!(
                        "{title}\n  {} {}\n  koncorde: {want_error}\n  ours:     {got}",
                        call["op"], args[0]
                    ));
                    false
                } else {
                    true
                }
            };
            let mut map_id = |engine_id: String, theirs: &Value| {
                let key = (instance, theirs.as_str().unwrap().to_owned());
                if let std::collections::hash_map::Entry::Vacant(slot) = ids.entry(key) {
                    *refs.entry(engine_id.clone()).or_default() += 1;
                    slot.insert(engine_id);
                }
            };
            match call["op"].as_str().unwrap() {
                "validate" => {
                    check_error(engine.validate(&args[0]).err().as_ref(), &mut failures);
                }
                "register" => match engine.normalize(index, &args[0]) {
                    Ok(n) => {
                        if check_error(None, &mut failures) {
                            let id = engine.store(n);
                            map_id(id, &call["result"]);
                        }
                    }
                    Err(e) => {
                        check_error(Some(&e), &mut failures);
                    }
                },
                "normalize" => match engine.normalize(index, &args[0]) {
                    Ok(n) => {
                        if check_error(None, &mut failures) {
                            pending.insert(call["result"].as_str().unwrap().to_owned(), n);
                        }
                    }
                    Err(e) => {
                        check_error(Some(&e), &mut failures);
                    }
                },
                "store" => {
                    let n = pending[args[0]["normalized"].as_str().unwrap()].clone();
                    let id = engine.store(n);
                    map_id(id, &call["result"]);
                }
                "test" => {
                    let mut ours: Vec<String> = engine
                        .test(index, &args[0])
                        .into_iter()
                        .map(str::to_owned)
                        .collect();
                    ours.sort();
                    let mut theirs: Vec<String> = call["result"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|id| ids[&(instance, id.as_str().unwrap().to_owned())].clone())
                        .collect();
                    theirs.sort();
                    theirs.dedup();
                    if ours != theirs {
                        failures.push(format!(
                            "{title}\n  test {}\n  koncorde: {theirs:?}\n  ours:     {ours:?}",
                            args[0]
                        ));
                    }
                }
                "remove" => {
                    if let Some(id) = ids.remove(&(instance, args[0].as_str().unwrap().to_owned()))
                    {
                        let count = refs.get_mut(&id).unwrap();
                        *count -= 1;
                        if *count == 0 {
                            engine.remove(&id);
                        }
                    }
                }
                "hasFilterId" => {
                    let key = (instance, args[0].as_str().unwrap().to_owned());
                    let ours = ids.get(&key).is_some_and(|id| engine.has(id));
                    if Some(ours) != call["result"].as_bool() {
                        failures.push(format!("{title}\n  hasFilterId {}", args[0]));
                    }
                }
                other => panic!("unknown op {other}"),
            }
        }
    }
    eprintln!(
        "koncorde suite: {replayed} cases replayed ({calls} calls), {} left out:\n  {}",
        skipped.len(),
        skipped.join("\n  ")
    );
    assert!(
        failures.is_empty(),
        "{} differences with Koncorde's own cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(replayed >= 250, "only {replayed} cases replayed");
}

#[test]
fn the_minterm_limit_counts_terms_without_building_them() {
    // (a1 or a2 or a3 or a4) and … 7 times: 4^7 = 16,384 terms, counted, never built.
    let group = |n: usize| json!({"or": (0..4).map(|v| json!({"equals": {format!("f{n}"): v}})).collect::<Vec<_>>()});
    let filter = json!({"and": (0..7).map(group).collect::<Vec<_>>()});
    let engine = Engine::new(EngineConfig::new(
        100,
        256,
        crate::DEFAULT_REGEXP_SIZE_LIMIT,
    ));
    let err = engine.normalize("i/c", &filter).unwrap_err();
    assert_eq!(err.kind(), FilterErrorKind::TooManyTerms);
    assert_eq!(err.terms(), Some((256, 16_384)));
    // 4^4 = 256 terms: exactly at the limit.
    let filter = json!({"and": (0..4).map(group).collect::<Vec<_>>()});
    assert!(engine.normalize("i/c", &filter).is_ok());
    // not(a and b) = not a or not b: 2 terms.
    let negated = json!({"not": {"and": [{"equals": {"a": 1}}, {"equals": {"b": 1}}]}});
    let tight = Engine::new(EngineConfig::new(100, 1, crate::DEFAULT_REGEXP_SIZE_LIMIT));
    assert_eq!(
        tight.normalize("i/c", &negated).unwrap_err().terms(),
        Some((1, 2))
    );
}

#[test]
fn a_regexp_over_the_size_limit_is_refused_uncompiled() {
    let engine = Engine::new(EngineConfig::new(100, 0, 1024));
    let pattern: String = (0..400).map(|i| format!("w{i}|")).collect::<String>() + "end";
    let err = engine
        .normalize("i/c", &json!({"regexp": {"s": {"value": pattern}}}))
        .unwrap_err();
    assert!(
        err.message()
            .ends_with("(pattern too large - compile failed)"),
        "{}",
        err.message()
    );
    assert!(engine
        .normalize("i/c", &json!({"regexp": {"s": {"value": "^a(b|c)$"}}}))
        .is_ok());
}
