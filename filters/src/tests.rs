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
    let engine = Engine::new(EngineConfig { max_conditions: 2 });
    let filter = json!({"and": [{"equals": {"a": 1}}, {"in": {"b": ["x", "y"]}}]});
    engine.validate(&filter).unwrap();
    let err = engine.normalize(INDEX, &filter).unwrap_err();
    assert_eq!(err.kind(), FilterErrorKind::TooComplex);
    assert_eq!(
        err.to_string(),
        "Filter too complex: exceeds the configured maximum number of conditions (conditions: 3, max: 2)"
    );
    // 0 means Koncorde's default, 50.
    let engine = Engine::new(EngineConfig { max_conditions: 0 });
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
