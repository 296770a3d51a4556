//! Dates as `moment` parses Elasticsearch's named formats (`date.js`'s `formatMap`), in epoch
//! milliseconds. Strict formats must match exactly; the others are read as moment's forgiving
//! mode does (digits found in order, separators skipped, a prefix is enough). Week-based
//! formats (`gggg`, `ww`, `e`) count weeks from the year's first day.

use serde_json::Value;

/// (name, pattern, strict). Patterns use moment's tokens; `\T` and `\W` are literals.
const FORMATS: &[(&str, &str, bool)] = &[
    ("basic_date", "YYYYMMDD", true),
    ("basic_date_time", "YYYYMMDD\\THHmmss.SSSZ", true),
    ("basic_date_time_no_millis", "YYYYMMDD\\THHmmssZ", true),
    ("basic_ordinal_date", "YYYYDDD", true),
    ("basic_ordinal_date_time", "YYYYDDD\\THHmmss.SSSZ", true),
    (
        "basic_ordinal_date_time_no_millis",
        "YYYYDDD\\THHmmssZ",
        true,
    ),
    ("basic_t_time", "\\THHmmss.SSSZ", true),
    ("basic_t_time_no_millis", "\\THHmmssZ", true),
    ("basic_time", "HHmmss.SSSZ", true),
    ("basic_time_no_millis", "HHmmssZ", true),
    ("basic_week_date", "gggg\\Wwwe", false),
    ("basic_week_date_time", "gggg\\Wwwe\\THHmmss.SSSZ", false),
    (
        "basic_week_date_time_no_millis",
        "gggg\\Wwwe\\THHmmssZ",
        false,
    ),
    ("date", "YYYY-MM-DD", false),
    ("date_hour", "YYYY-MM-DD\\THH", false),
    ("date_hour_minute", "YYYY-MM-DD\\THH:mm", false),
    ("date_hour_minute_second", "YYYY-MM-DD\\THH:mm:ss", false),
    (
        "date_hour_minute_second_fraction",
        "YYYY-MM-DD\\THH:mm:ss.SSS",
        false,
    ),
    (
        "date_hour_minute_second_millis",
        "YYYY-MM-DD\\THH:mm:ss.SSS",
        false,
    ),
    ("date_time", "YYYY-MM-DD\\THH:mm:ss.SSSZZ", false),
    ("date_time_no_millis", "YYYY-MM-DD\\THH:mm:ssZZ", false),
    ("hour", "HH", false),
    ("hour_minute", "HH:mm", false),
    ("hour_minute_second", "HH:mm:ss", false),
    ("hour_minute_second_fraction", "HH:mm:ss.SSS", false),
    ("hour_minute_second_millis", "HH:mm:ss.SSS", false),
    ("ordinal_date", "YYYY-DDD", false),
    ("ordinal_date_time", "YYYY-DDD\\THH:mm:ss.SSSZZ", false),
    (
        "ordinal_date_time_no_millis",
        "YYYY-DDD\\THH:mm:ssZZ",
        false,
    ),
    ("strict_basic_week_date", "gggg\\Wwwe", true),
    (
        "strict_basic_week_date_time",
        "gggg\\Wwwe\\THHmmss.SSSZ",
        true,
    ),
    (
        "strict_basic_week_date_time_no_millis",
        "gggg\\Wwwe\\THHmmssZ",
        true,
    ),
    ("strict_date", "YYYY-MM-DD", true),
    ("strict_date_hour", "YYYY-MM-DD\\THH", true),
    ("strict_date_hour_minute", "YYYY-MM-DD\\THH:mm", true),
    (
        "strict_date_hour_minute_second",
        "YYYY-MM-DD\\THH:mm:ss",
        true,
    ),
    (
        "strict_date_hour_minute_second_fraction",
        "YYYY-MM-DD\\THH:mm:ss.SSS",
        true,
    ),
    (
        "strict_date_hour_minute_second_millis",
        "YYYY-MM-DD\\THH:mm:ss.SSS",
        true,
    ),
    ("strict_date_time", "YYYY-MM-DD\\THH:mm:ss.SSSZZ", true),
    (
        "strict_date_time_no_millis",
        "YYYY-MM-DD\\THH:mm:ssZZ",
        true,
    ),
    ("strict_hour", "HH", true),
    ("strict_hour_minute", "HH:mm", true),
    ("strict_hour_minute_second", "HH:mm:ss", true),
    ("strict_hour_minute_second_fraction", "HH:mm:ss.SSS", true),
    ("strict_hour_minute_second_millis", "HH:mm:ss.SSS", true),
    ("strict_ordinal_date", "YYYY-DDD", true),
    (
        "strict_ordinal_date_time",
        "YYYY-DDD\\THH:mm:ss.SSSZZ",
        true,
    ),
    (
        "strict_ordinal_date_time_no_millis",
        "YYYY-DDD\\THH:mm:ssZZ",
        true,
    ),
    ("strict_t_time", "\\THH:mm:ss.SSSZZ", true),
    ("strict_t_time_no_millis", "\\THH:mm:ssZZ", true),
    ("strict_time", "HH:mm:ss.SSSZZ", true),
    ("strict_time_no_millis", "HH:mm:ssZZ", true),
    ("strict_week_date", "gggg-\\Www-e", true),
    (
        "strict_week_date_time",
        "gggg-\\Www-e\\THH:mm:ss.SSSZZ",
        true,
    ),
    (
        "strict_week_date_time_no_millis",
        "gggg-\\Www-e\\THH:mm:ssZZ",
        true,
    ),
    ("strict_weekyear", "gggg", true),
    ("strict_weekyear_week", "ggggww", true),
    ("strict_weekyear_week_day", "ggggwwe", true),
    ("strict_year", "YYYY", true),
    ("strict_year_month", "YYYYMM", true),
    ("strict_year_month_day", "YYYYMMDD", true),
    ("t_time", "\\THH:mm:ss.SSSZZ", false),
    ("t_time_no_millis", "\\THH:mm:ssZZ", false),
    ("time", "HH:mm:ss.SSSZZ", false),
    ("time_no_millis", "HH:mm:ssZZ", false),
    ("week_date", "gggg-\\Www-e", false),
    ("week_date_time", "gggg-\\Www-e\\THH:mm:ss.SSSZZ", false),
    (
        "week_date_time_no_millis",
        "gggg-\\Www-e\\THH:mm:ssZZ",
        false,
    ),
    ("weekyear", "gggg", false),
    ("weekyear_week", "ggggww", false),
    ("weekyear_week_day", "ggggwwe", false),
    ("year", "YYYY", false),
    ("year_month", "YYYYMM", false),
    ("year_month_day", "YYYYMMDD", false),
];

/// Is `name` one of the formats?
pub fn is_format(name: &str) -> bool {
    name == "epoch_millis"
        || name == "epoch_second"
        || name == "strict_date_optional_time"
        || FORMATS.iter().any(|(n, ..)| *n == name)
}

/// `value` read with the format `name`, in epoch milliseconds.
pub fn parse(name: &str, value: &Value) -> Option<f64> {
    match name {
        "epoch_millis" => value.as_f64(),
        "epoch_second" => value.as_f64().map(|s| s * 1000.0),
        _ => {
            // moment reads a non-string input with a format as its text.
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Number(_) => super::js_string(value),
                _ => return None,
            };
            if name == "strict_date_optional_time" {
                return parse_iso(&text);
            }
            let (_, pattern, strict) = FORMATS.iter().find(|(n, ..)| *n == name)?;
            parse_pattern(pattern, &text, *strict)
        }
    }
}

/// ISO 8601 as `moment.ISO_8601` reads it: a date, optionally a time and an offset.
pub fn parse_iso(text: &str) -> Option<f64> {
    const ISO: &[&str] = &[
        "YYYY-MM-DD\\THH:mm:ss.SSSZ",
        "YYYY-MM-DD\\THH:mm:ssZ",
        "YYYY-MM-DD\\THH:mmZ",
        "YYYY-MM-DD\\THHZ",
        "YYYY-MM-DD\\THH:mm:ss.SSS",
        "YYYY-MM-DD\\THH:mm:ss",
        "YYYY-MM-DD\\THH:mm",
        "YYYY-MM-DD\\THH",
        "YYYY-MM-DD",
        "YYYY-MM",
        "YYYY-DDD",
        "YYYYMMDD",
    ];
    let text = text.replacen(' ', "T", 1);
    ISO.iter()
        .find_map(|pattern| parse_pattern(pattern, &text, true))
}

#[derive(Default)]
struct Parts {
    year: Option<i64>,
    month: Option<i64>,
    day: Option<i64>,
    ordinal: Option<i64>,
    week: Option<i64>,
    weekday: Option<i64>,
    hour: i64,
    minute: i64,
    second: i64,
    millis: i64,
    offset_minutes: i64,
}

fn tokens(pattern: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' && i + 1 < chars.len() {
            out.push(chars[i + 1].to_string());
            i += 2;
            continue;
        }
        let c = chars[i];
        if c.is_ascii_alphabetic() {
            let mut j = i;
            while j < chars.len() && chars[j] == c {
                j += 1;
            }
            out.push(chars[i..j].iter().collect());
            i = j;
        } else {
            out.push(c.to_string());
            i += 1;
        }
    }
    out
}

/// Reads `text` with `pattern`; `None` when moment would find it invalid.
fn parse_pattern(pattern: &str, text: &str, strict: bool) -> Option<f64> {
    let mut parts = Parts::default();
    let input: Vec<char> = text.chars().collect();
    let mut at = 0;
    let mut parsed_any = false;
    for token in tokens(pattern) {
        let digits = match token.as_str() {
            "YYYY" | "gggg" => Some((4, 4)),
            "MM" | "DD" | "HH" | "mm" | "ss" | "ww" => Some((2, 2)),
            "DDD" => Some((3, 3)),
            "SSS" => Some((3, 3)),
            "e" => Some((1, 1)),
            _ => None,
        };
        if let Some((min, max)) = digits {
            if !strict {
                while at < input.len() && !input[at].is_ascii_digit() {
                    at += 1;
                }
                if at >= input.len() {
                    break;
                }
            }
            let (min, max) = if strict { (min, max) } else { (1, max) };
            let start = at;
            while at < input.len() && at - start < max && input[at].is_ascii_digit() {
                at += 1;
            }
            if at - start < min {
                return None;
            }
            let number: i64 = input[start..at].iter().collect::<String>().parse().ok()?;
            parsed_any = true;
            match token.as_str() {
                "YYYY" | "gggg" => parts.year = Some(number),
                "MM" => parts.month = Some(number),
                "DD" => parts.day = Some(number),
                "DDD" => parts.ordinal = Some(number),
                "ww" => parts.week = Some(number),
                "e" => parts.weekday = Some(number),
                "HH" => parts.hour = number,
                "mm" => parts.minute = number,
                "ss" => parts.second = number,
                _ => parts.millis = number * 10_i64.pow(3 - (at - start) as u32),
            }
        } else if token == "Z" || token == "ZZ" {
            if at < input.len() && (input[at] == 'Z' || input[at] == 'z') {
                at += 1;
                parsed_any = true;
            } else if at < input.len() && (input[at] == '+' || input[at] == '-') {
                let sign = if input[at] == '-' { -1 } else { 1 };
                let rest: String = input[at + 1..].iter().collect();
                let bytes = rest.as_bytes();
                let two = |s: &[u8]| -> Option<i64> {
                    (s.len() >= 2 && s[0].is_ascii_digit() && s[1].is_ascii_digit())
                        .then(|| i64::from((s[0] - b'0') * 10 + (s[1] - b'0')))
                };
                let hours = two(bytes)?;
                let mut used = 2;
                let mut minutes = 0;
                let tail = &bytes[2..];
                let tail = tail.strip_prefix(b":").map_or(tail, |t| {
                    used += 1;
                    t
                });
                if let Some(m) = two(tail) {
                    minutes = m;
                    used += 2;
                } else if used == 3 {
                    used -= 1;
                }
                parts.offset_minutes = sign * (hours * 60 + minutes);
                at += 1 + used;
                parsed_any = true;
            } else if strict {
                return None;
            } else {
                break;
            }
        } else {
            // A literal.
            let literal: Vec<char> = token.chars().collect();
            if input[at..].starts_with(&literal) {
                at += literal.len();
            } else if strict {
                return None;
            }
        }
    }
    if strict && at != input.len() {
        return None;
    }
    if !parsed_any {
        return None;
    }
    millis(&parts)
}

fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn millis(parts: &Parts) -> Option<f64> {
    let year = parts.year.unwrap_or(1970);
    let days = if let Some(ordinal) = parts.ordinal {
        let length = if is_leap(year) { 366 } else { 365 };
        if !(1..=length).contains(&ordinal) {
            return None;
        }
        days_from_civil(year, 1, 1) + ordinal - 1
    } else if let Some(week) = parts.week {
        if !(1..=53).contains(&week) {
            return None;
        }
        let weekday = parts.weekday.unwrap_or(0);
        if !(0..=6).contains(&weekday) {
            return None;
        }
        days_from_civil(year, 1, 1) + (week - 1) * 7 + weekday
    } else {
        let month = parts.month.unwrap_or(1);
        let day = parts.day.unwrap_or(1);
        if !(1..=12).contains(&month) {
            return None;
        }
        let length = match month {
            2 if is_leap(year) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        if !(1..=length).contains(&day) {
            return None;
        }
        days_from_civil(year, month, day)
    };
    let valid_time = (0..=24).contains(&parts.hour)
        && (0..60).contains(&parts.minute)
        && (0..60).contains(&parts.second)
        && (parts.hour < 24 || (parts.minute == 0 && parts.second == 0 && parts.millis == 0));
    if !valid_time {
        return None;
    }
    let seconds = days * 86_400 + parts.hour * 3600 + parts.minute * 60 + parts.second
        - parts.offset_minutes * 60;
    Some((seconds * 1000 + parts.millis) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn named_formats_read_dates_as_moment_does() {
        assert_eq!(parse("epoch_millis", &json!(1000)), Some(1000.0));
        assert_eq!(parse("epoch_millis", &json!("1000")), None);
        assert_eq!(
            parse("strict_date", &json!("2020-02-29")),
            Some(1_582_934_400_000.0)
        );
        assert_eq!(parse("strict_date", &json!("2019-02-29")), None);
        assert_eq!(parse("strict_date", &json!("2020-2-9")), None);
        assert_eq!(parse("date", &json!("2020-2-9")), Some(1_581_206_400_000.0));
        assert_eq!(
            parse("strict_date_time", &json!("2020-01-01T00:00:00.000+01:00")),
            Some(1_577_833_200_000.0)
        );
        assert_eq!(
            parse("strict_year", &json!(2020)),
            Some(1_577_836_800_000.0)
        );
        assert_eq!(
            parse("strict_date_optional_time", &json!("2020-01-01T10:00")),
            Some(1_577_872_800_000.0)
        );
        assert_eq!(
            parse("basic_date", &json!("20200101")),
            Some(1_577_836_800_000.0)
        );
        assert_eq!(parse("year", &json!("nope")), None);
    }
}
