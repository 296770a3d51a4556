//! Distance strings to meters, as Koncorde's `convertDistance` (npm `node-units`) reads them.

/// Meters for `distance`, or `None` when Koncorde would throw.
pub(crate) fn convert_distance(distance: &str) -> Option<f64> {
    // Koncorde strips '-' and whitespace, turns ',' into '.', lowercases.
    let cleaned: String = distance
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| if c == ',' { '.' } else { c })
        .collect::<String>()
        .to_lowercase();
    let split = cleaned.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = cleaned.split_at(split);
    let value: f64 = number.parse().ok()?;
    let factor = match unit {
        "m" | "meter" | "meters" => 1.0,
        "km" | "kilometer" | "kilometers" => 1000.0,
        "cm" => 0.01,
        "mm" => 0.001,
        "ft" | "feet" => 0.3048,
        "in" | "inch" => 0.0254,
        "yd" | "yard" | "yards" => 0.9144,
        "mi" | "mile" | "miles" => 1609.34,
        _ => return None,
    };
    Some(value * factor)
}
