//! JavaScript value semantics that Koncorde's behaviour depends on (key order, truthiness,
//! `String(x)`, `Number(x)`, `parseFloat`, `JSON.stringify`, strict equality).
//!
//! Koncorde runs on V8: users see its quirks (which key of an object is "first", how `"1"` and
//! `1` compare, how a number prints in an error message). Everything that mirrors one of those
//! rules lives here so that the rest of the crate reads as plain Rust.

use serde_json::{Map, Value};

/// True when `key` is a canonical array index (`"0"`, `"17"`, below 2^32 - 1): V8 lists such
/// keys first, in numeric order, before the other keys in insertion order.
fn is_array_index(key: &str) -> Option<u32> {
    let bytes = key.as_bytes();
    if bytes.is_empty() || bytes.len() > 10 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if bytes.len() > 1 && bytes[0] == b'0' {
        return None;
    }
    let n: u64 = key.parse().ok()?;
    (n < u64::from(u32::MAX)).then_some(n as u32)
}

/// The keys of an object in the order `Object.keys` gives them.
///
/// With serde_json's default `BTreeMap` the insertion order is already lost, so the result is
/// exact only when the `preserve_order` feature of serde_json is enabled somewhere in the build.
pub(crate) fn keys(map: &Map<String, Value>) -> Vec<(&str, &Value)> {
    let mut out: Vec<(&str, &Value)> = map.iter().map(|(k, v)| (k.as_str(), v)).collect();
    if out.iter().any(|(k, _)| is_array_index(k).is_some()) {
        // A stable sort keeps the other keys in map order.
        out.sort_by_key(|(k, _)| match is_array_index(k) {
            Some(n) => (0u8, n),
            None => (1u8, 0),
        });
    }
    out
}

/// `Boolean(x)`.
pub(crate) fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// `x.length` of a string: UTF-16 code units.
pub(crate) fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// A number as f64, the way V8 holds every JSON number.
pub(crate) fn num(value: &serde_json::Number) -> f64 {
    value.as_f64().unwrap_or(f64::NAN)
}

/// `a === b` for the values a filter and a document can hold. Objects and arrays are compared by
/// identity in JavaScript, and a filter's value is never the document's object, so they are
/// never equal. Equal to `SameValueZero` as JSON has no NaN.
pub(crate) fn strict_equals(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => num(x) == num(y),
        (Value::String(x), Value::String(y)) => x == y,
        _ => false,
    }
}

/// Whitespace and line terminators that `Number(" 1 ")` and `parseFloat` skip.
fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\u{9}' | '\u{a}' | '\u{b}' | '\u{c}' | '\u{d}' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// Length of the longest prefix of `s` that is a `StrUnsignedDecimalLiteral` without `Infinity`
/// (digits, optional fraction, optional exponent), 0 if none.
fn decimal_prefix(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let int_digits = digits(&mut i);
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        let mut j = i + 1;
        frac_digits = digits(&mut j);
        if int_digits > 0 || frac_digits > 0 {
            i = j;
        }
    }
    if int_digits == 0 && frac_digits == 0 {
        return 0;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if digits(&mut j) > 0 {
            i = j;
        }
    }
    i
}

fn parse_decimal(text: &str) -> f64 {
    // Rust parses every string `decimal_prefix` accepts, with correct rounding.
    text.parse::<f64>().unwrap_or(f64::NAN)
}

/// `Number.parseFloat(string)`.
pub(crate) fn parse_float_str(s: &str) -> f64 {
    let s = s.trim_start_matches(is_js_space);
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'-') => (-1.0, &s[1..]),
        Some(b'+') => (1.0, &s[1..]),
        _ => (1.0, s),
    };
    if rest.starts_with("Infinity") {
        return sign * f64::INFINITY;
    }
    let n = decimal_prefix(rest);
    if n == 0 {
        return f64::NAN;
    }
    sign * parse_decimal(&rest[..n])
}

/// `Number.parseFloat(x)` for any JSON value (`parseFloat` converts its argument to a string).
pub(crate) fn parse_float(value: &Value) -> f64 {
    match value {
        Value::Number(n) => num(n),
        other => parse_float_str(&to_string(other)),
    }
}

/// `Number(string)`.
pub(crate) fn string_to_number(s: &str) -> f64 {
    let t = s.trim_matches(is_js_space);
    if t.is_empty() {
        return 0.0;
    }
    let radix = |digits: &str, radix: u32| -> f64 {
        if digits.is_empty() {
            return f64::NAN;
        }
        let mut acc = 0f64;
        for c in digits.chars() {
            match c.to_digit(radix) {
                Some(d) => acc = acc * f64::from(radix) + f64::from(d),
                None => return f64::NAN,
            }
        }
        acc
    };
    match t.get(..2) {
        Some("0x") | Some("0X") => return radix(&t[2..], 16),
        Some("0o") | Some("0O") => return radix(&t[2..], 8),
        Some("0b") | Some("0B") => return radix(&t[2..], 2),
        _ => {}
    }
    let (sign, rest) = match t.as_bytes()[0] {
        b'-' => (-1.0, &t[1..]),
        b'+' => (1.0, &t[1..]),
        _ => (1.0, t),
    };
    if rest == "Infinity" {
        return sign * f64::INFINITY;
    }
    if decimal_prefix(rest) != rest.len() {
        return f64::NAN;
    }
    sign * parse_decimal(rest)
}

/// `Number(x)` for a scalar (`ToNumber`); objects and arrays give NaN here, which is what the
/// comparisons that use this function need.
pub(crate) fn to_number(value: &Value) -> f64 {
    match value {
        Value::Null => 0.0,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => num(n),
        Value::String(s) => string_to_number(s),
        Value::Array(_) | Value::Object(_) => f64::NAN,
    }
}

/// `String(number)`: shortest round-trip digits, laid out as ECMAScript's Number::toString.
pub(crate) fn number_to_string(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f == 0.0 {
        return "0".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    // `{:e}` prints the shortest digits that round-trip, e.g. "1.2345e-7".
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let k = digits.len() as i32;
    let n = exp.parse::<i32>().unwrap_or(0) + 1;
    let mut out = String::new();
    if f < 0.0 {
        out.push('-');
    }
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if n > 0 { '+' } else { '-' });
        out.push_str(&(n - 1).abs().to_string());
    }
    out
}

/// `String(x)`.
pub(crate) fn to_string(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number_to_string(num(n)),
        Value::String(s) => s.clone(),
        Value::Object(_) => "[object Object]".into(),
        Value::Array(items) => {
            // Array.prototype.toString: join(","), with null elements as "".
            let parts: Vec<String> = items
                .iter()
                .map(|item| match item {
                    Value::Null => String::new(),
                    other => to_string(other),
                })
                .collect();
            parts.join(",")
        }
    }
}

/// `JSON.stringify(x)`, as it appears inside Koncorde's error messages.
pub(crate) fn json_stringify(value: &Value) -> String {
    let mut out = String::new();
    write_json(value, &mut out);
    out
}

fn write_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let f = num(n);
            if f.is_finite() {
                out.push_str(&number_to_string(f));
            } else {
                out.push_str("null");
            }
        }
        Value::String(s) => write_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in keys(map).into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(k, out);
                out.push(':');
                write_json(v, out);
            }
            out.push('}');
        }
    }
}

fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_like_v8() {
        let cases = [
            (1.0, "1"),
            (-1.5, "-1.5"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (1.5e-7, "1.5e-7"),
            (0.000001, "0.000001"),
            (123.456, "123.456"),
            (0.1 + 0.2, "0.30000000000000004"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
        ];
        for (f, want) in cases {
            assert_eq!(number_to_string(f), want, "{f}");
        }
    }

    #[test]
    fn strings_convert_like_v8() {
        assert_eq!(string_to_number(" 12 "), 12.0);
        assert_eq!(string_to_number(""), 0.0);
        assert_eq!(string_to_number("0x10"), 16.0);
        assert!(string_to_number("1e").is_nan());
        assert!(string_to_number("inf").is_nan());
        assert_eq!(string_to_number("-Infinity"), f64::NEG_INFINITY);
        assert_eq!(string_to_number(".5"), 0.5);
        assert!(string_to_number(".").is_nan());
        assert_eq!(parse_float_str(" 12.5abc"), 12.5);
        assert_eq!(parse_float_str("1e5x"), 1e5);
        assert_eq!(parse_float_str("1ex"), 1.0);
        assert!(parse_float_str("abc").is_nan());
        assert_eq!(parse_float_str("-.5"), -0.5);
    }

    #[test]
    fn array_index_keys_come_first() {
        let v: Value = serde_json::from_str(r#"{"b":1,"2":2,"a":3,"1":4,"01":5}"#).unwrap();
        let got: Vec<&str> = keys(v.as_object().unwrap())
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(&got[..2], &["1", "2"]);
        assert_eq!(got.len(), 5);
    }
}
