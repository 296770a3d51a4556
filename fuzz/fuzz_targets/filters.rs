//! Koncorde filter validation and normalization (`filters/`), with the host's `[limits]`
//! defaults (100 conditions, 512 minterms, 64 KB regexps): validate, normalize, store, test a
//! document built from the same input, remove.
//!
//! Input: JSON `[filter, document]`, or any JSON as the filter.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use switchyard_filters::{Engine, EngineConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let (filter, document) = match &value {
        Value::Array(pair) if pair.len() == 2 => (&pair[0], pair[1].clone()),
        other => (other, Value::Null),
    };
    let mut engine = Engine::new(EngineConfig::new(100, 512, 64 * 1024));
    let validated = engine.validate(filter);
    match engine.normalize("index/collection", filter) {
        Ok(normalized) => {
            assert!(validated.is_ok(), "normalized but invalid: {validated:?}");
            let id = engine.store(normalized);
            let matched = engine.test("index/collection", &document);
            assert!(matched.len() <= 1);
            engine.remove(&id);
            assert!(engine.test("index/collection", &document).is_empty());
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
