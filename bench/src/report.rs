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

/// Prints the record as a table and writes it as JSON (default `target/bench/<scenario>.json`).
pub fn print_and_save(record: &Value, path: Option<&Path>) -> anyhow::Result<()> {
    let mut record = record.clone();
    record["machine"] = machine();
    record["unix_time"] = json!(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs()));
    let scenario = record["scenario"].as_str().unwrap_or("bench").to_string();
    println!("{scenario} — {}", record["parameters"]);
    println!("machine: {}", record["machine"]);
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
            println!("  {key} (switchyard / baseline) = {value}");
        }
    }
    let default = Path::new("target/bench").join(format!("{scenario}.json"));
    let path = path.unwrap_or(&default);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(&record)?)?;
    println!("written to {}", path.display());
    Ok(())
}
