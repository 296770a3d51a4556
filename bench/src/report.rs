//! Output: a table on standard output and a JSON record with the machine's description.

use std::path::Path;

use serde_json::{json, Value};

/// CPU model and core count, as Linux reports them.
pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map(|(_, model)| model.trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    json!({
        "cpu": model,
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "os": std::env::consts::OS,
    })
}

fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&key, value, out);
            }
        }
        Value::String(text) => out.push((prefix.to_string(), text.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// One record from the records of several rounds of the same scenario: every `ratio…` field
/// becomes the median of the rounds' (the rounds' own values kept beside it as
/// `<ratio>_rounds`), `results` are those of the round with the median first ratio, and
/// `rounds` holds each round's results. A shared machine's noise moves
/// single runs by ±10 %; the median of a few rounds, each measuring both sides one after the
/// other, is what BENCHMARKS.md quotes.
pub fn combine(mut records: Vec<Value>) -> Value {
    if records.len() <= 1 {
        return records.pop().unwrap_or(Value::Null);
    }
    let ratio_keys: Vec<String> = records[0]
        .as_object()
        .map(|map| {
            map.keys()
                .filter(|key| key.starts_with("ratio"))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    // The round whose first ratio is the median (the lower middle one for an even count).
    let median_round = ratio_keys.first().map_or(0, |key| {
        let mut order: Vec<usize> = (0..records.len()).collect();
        order.sort_by(|&a, &b| {
            let ratio = |index: usize| records[index][key].as_f64().unwrap_or(f64::NAN);
            ratio(a).total_cmp(&ratio(b))
        });
        order[(order.len() - 1) / 2]
    });
    let mut combined = records[median_round].clone();
    combined["median_round"] = json!(median_round + 1);
    for key in ratio_keys {
        let mut values: Vec<f64> = records.iter().filter_map(|r| r[&key].as_f64()).collect();
        combined[format!("{key}_rounds")] = json!(values);
        values.sort_by(f64::total_cmp);
        combined[&key] = match values.len() {
            0 => Value::Null,
            n if n % 2 == 1 => json!(values[n / 2]),
            n => json!(((values[n / 2 - 1] + values[n / 2]) / 2.0 * 100.0).round() / 100.0),
        };
    }
    combined["rounds"] = records.iter().map(|r| r["results"].clone()).collect();
    combined
}

/// Prints the record as a table and writes it as JSON (default `target/bench/<scenario>.json`).
pub fn print_and_save(record: &Value, path: Option<&Path>) -> anyhow::Result<()> {
    let mut record = record.clone();
    record["machine"] = machine();
    record["unix_time"] = json!(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs()));
    print(&record);
    let scenario = record["scenario"].as_str().unwrap_or("bench").to_string();
    let default = Path::new("target/bench").join(format!("{scenario}.json"));
    let path = path.unwrap_or(&default);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(&record)?)?;
    println!("written to {}", path.display());
    Ok(())
}

/// Prints a record as a table: parameters, one line per target, the ratios.
pub fn print(record: &Value) {
    let scenario = record["scenario"].as_str().unwrap_or("bench").to_string();
    println!("{scenario} — {}", record["parameters"]);
    if !record["machine"].is_null() {
        println!("machine: {}", record["machine"]);
    }
    if let Some(round) = record["median_round"].as_u64() {
        println!("  results of round {round}, the median one:");
    }
    for result in record["results"].as_array().into_iter().flatten() {
        let mut cells = Vec::new();
        flatten("", result, &mut cells);
        let line: Vec<String> = cells
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        println!("  {}", line.join("  "));
    }
    if let Some(map) = record.as_object() {
        for (key, value) in map.iter().filter(|(key, _)| key.starts_with("ratio")) {
            // `--auth`'s ratio compares switchyard with itself.
            let sides = if key.starts_with("ratio_user_vs_anonymous") {
                "logged-in user / anonymous"
            } else if key.starts_with("ratio_tls_vs_plain") {
                "TLS / plain"
            } else {
                "switchyard / baseline"
            };
            if let Some(rounds) = key.strip_suffix("_rounds") {
                println!("  {rounds} per round = {value}");
            } else if record.get("rounds").is_some() {
                println!("  {key} ({sides}), median of the rounds = {value}");
            } else {
                println!("  {key} ({sides}) = {value}");
            }
        }
    }
}
