//! What one subscription's normalization costs, by the size of its disjunctive normal form and
//! by regexp size: the figures behind the default `limits.subscriptionMinterms` and
//! `limits.regexpSizeLimit` (see the host's README).
//!
//! `cargo bench -p switchyard-filters --bench normalize`. Prints figures; asserts nothing.

use std::time::Instant;

use serde_json::{json, Value};
use switchyard_filters::{EngineConfig, DEFAULT_REGEXP_SIZE_LIMIT, MAX_MINTERMS};

/// `{"and": [{"or": [4 equals]} × groups]}`: 4^groups terms, in a few hundred bytes.
fn product(groups: usize) -> Value {
    let group = |n: usize| json!({"or": (0..4).map(|v| json!({"equals": {format!("f{n}"): v}})).collect::<Vec<_>>()});
    json!({"and": (0..groups).map(group).collect::<Vec<_>>()})
}

/// Median time of `runs` normalizations, in microseconds.
fn time(config: &EngineConfig, filter: &Value, runs: usize) -> (f64, bool) {
    let mut samples = Vec::with_capacity(runs);
    let mut ok = false;
    for _ in 0..runs {
        let begun = Instant::now();
        ok = config.normalize("index/collection", filter).is_ok();
        samples.push(begun.elapsed().as_secs_f64() * 1e6);
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    (samples[samples.len() / 2], ok)
}

fn main() {
    let unlimited = EngineConfig::new(100, 0, DEFAULT_REGEXP_SIZE_LIMIT);
    println!("normalize, terms of the DNF (no minterm limit but the hard cap {MAX_MINTERMS}):");
    for groups in 1..=7 {
        let filter = product(groups);
        let runs = if groups >= 6 { 3 } else { 20 };
        let (micros, ok) = time(&unlimited, &filter, runs);
        println!(
            "  {:>6} terms ({} bytes): {micros:>10.0} µs{}",
            4usize.pow(groups as u32),
            filter.to_string().len(),
            if ok { "" } else { " (refused)" }
        );
    }
    let limited = EngineConfig::new(100, 256, DEFAULT_REGEXP_SIZE_LIMIT);
    let (micros, ok) = time(&limited, &product(7), 20);
    println!(
        "  16384 terms refused by a limit of 256: {micros:.1} µs (refused: {})",
        !ok
    );

    // A regexp and-ed with a product: the regexp is a literal of every term of the normal
    // form, and (before issue 19's fix) was compiled once to check it and once per term.
    println!("normalize, one regexp (n alternatives) and-ed with 4^k terms:");
    for (alternatives, groups) in [(100usize, 0usize), (100, 3), (100, 4), (150, 0), (150, 4)] {
        let pattern: String = (0..alternatives)
            .map(|i| format!("word{i}"))
            .collect::<Vec<_>>()
            .join("|");
        let mut items = vec![json!({"regexp": {"text": {"value": pattern}}})];
        if groups > 0 {
            items.push(product(groups));
        }
        let filter = json!({ "and": items });
        let config = EngineConfig::new(100, 512, 64 << 10);
        let (micros, ok) = time(&config, &filter, 5);
        println!(
            "  {alternatives:>6} alternatives ({:>6} bytes) x {:>3} terms: {micros:>10.0} µs{}",
            pattern.len(),
            4usize.pow(groups as u32),
            if ok { "" } else { " (refused)" }
        );
    }

    println!("normalize, one regexp of n alternatives:");
    for alternatives in [100usize, 1_000, 10_000, 80_000] {
        let pattern: String = (0..alternatives)
            .map(|i| format!("word{i}"))
            .collect::<Vec<_>>()
            .join("|");
        let filter = json!({"regexp": {"text": {"value": pattern}}});
        for limit in [DEFAULT_REGEXP_SIZE_LIMIT, 64 << 10] {
            let config = EngineConfig::new(100, 0, limit);
            let (micros, ok) = time(&config, &filter, 3);
            println!(
                "  {alternatives:>6} alternatives ({:>7} bytes), size limit {:>7}: {micros:>10.0} µs{}",
                pattern.len(),
                limit,
                if ok { "" } else { " (refused)" }
            );
        }
    }
}
