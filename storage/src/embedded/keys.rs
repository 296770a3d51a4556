//! Secondary index keys: `field ‖ tag ‖ value ‖ id`, ordered so that a term is a prefix and a range
//! or a string prefix is one contiguous key range.
//!
//! * field and string values: bytes with `00` escaped as `00 FF`, ended by `00 01`, so encoded
//!   order is byte order and a string prefix stays a key prefix;
//! * numbers: an f64 whose bits are flipped to sort as unsigned big-endian. Integers beyond 2^53
//!   round, which can only add candidates: every candidate is checked against the query anyway;
//! * the id last, raw: ids are UTF-8, so a `FF` byte after a value sorts after every id;
//! * an object stored under an indexed field has no value to order by: its entry is
//!   `field ‖ TAG_OBJECT ‖ id`, there only so that `exists` (and a `range` with no bound, which
//!   reads every entry of the field) finds it through the index as a scan does.

use serde_json::Value;

pub(crate) const TAG_BOOL: u8 = 0x10;
pub(crate) const TAG_NUMBER: u8 = 0x20;
pub(crate) const TAG_STRING: u8 = 0x30;
/// An object: present, with no value a term or a bounded range could match.
pub(crate) const TAG_OBJECT: u8 = 0x40;

fn escape(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
}

fn terminate(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0, 1]);
}

/// `field ‖ 00 01`.
pub(crate) fn field_prefix(field: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len() + 24);
    escape(field.as_bytes(), &mut out);
    terminate(&mut out);
    out
}

pub(crate) fn sortable_f64(f: f64) -> [u8; 8] {
    let f = if f == 0.0 { 0.0 } else { f };
    let bits = f.to_bits();
    let bits = if bits >> 63 == 1 {
        !bits
    } else {
        bits ^ (1 << 63)
    };
    bits.to_be_bytes()
}

/// The tag and encoded value of an indexable scalar; `None` for null, arrays and objects.
pub(crate) fn encode_value(value: &Value, out: &mut Vec<u8>) -> bool {
    match value {
        Value::Bool(b) => {
            out.push(TAG_BOOL);
            out.push(u8::from(*b));
        }
        Value::Number(n) => {
            out.push(TAG_NUMBER);
            out.extend_from_slice(&sortable_f64(n.as_f64().unwrap_or(0.0)));
        }
        Value::String(s) => {
            out.push(TAG_STRING);
            escape(s.as_bytes(), out);
            terminate(out);
        }
        _ => return false,
    }
    true
}

/// `field ‖ tag ‖ value`: every entry for this exact value starts with it.
pub(crate) fn value_prefix(field: &str, value: &Value) -> Option<Vec<u8>> {
    let mut out = field_prefix(field);
    encode_value(value, &mut out).then_some(out)
}

/// A full entry key; `None` for null (absent, as for `exists`). Objects get a presence entry
/// (`TAG_OBJECT`); arrays never reach here (`field_values` flattens them).
pub(crate) fn entry(field_prefix: &[u8], value: &Value, id: &str) -> Option<Vec<u8>> {
    let mut out = field_prefix.to_vec();
    if !encode_value(value, &mut out) {
        match value {
            Value::Object(_) => out.push(TAG_OBJECT),
            _ => return None,
        }
    }
    out.extend_from_slice(id.as_bytes());
    Some(out)
}

/// `field ‖ TAG_STRING ‖ escaped prefix` (no terminator): every string starting with the prefix.
pub(crate) fn string_prefix(field: &str, prefix: &str) -> Vec<u8> {
    let mut out = field_prefix(field);
    out.push(TAG_STRING);
    escape(prefix.as_bytes(), &mut out);
    out
}

/// The document id of an entry key, given the length of its field prefix.
pub(crate) fn entry_id(key: &[u8], field_prefix_len: usize) -> Option<&str> {
    let rest = key.get(field_prefix_len..)?;
    let (&tag, rest) = rest.split_first()?;
    let id = match tag {
        TAG_BOOL => rest.get(1..)?,
        TAG_NUMBER => rest.get(8..)?,
        TAG_OBJECT => rest,
        TAG_STRING => {
            let mut i = 0;
            loop {
                match (rest.get(i)?, rest.get(i + 1)) {
                    (0, Some(1)) => break rest.get(i + 2..)?,
                    (0, Some(0xFF)) => i += 2,
                    _ => i += 1,
                }
            }
        }
        _ => return None,
    };
    std::str::from_utf8(id).ok()
}

/// The smallest key after every key starting with `prefix` (ids and values never contain `FF`
/// outside an escape, and escapes start with `00`).
pub(crate) fn after_prefix(prefix: &[u8]) -> Vec<u8> {
    let mut out = prefix.to_vec();
    out.push(0xFF);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn order_and_ids() {
        let field = field_prefix("f");
        let values = [
            json!(-1e300),
            json!(-5),
            json!(-0.5),
            json!(0),
            json!(0.25),
            json!(3),
            json!(1e300),
        ];
        let keys: Vec<Vec<u8>> = values
            .iter()
            .map(|v| entry(&field, v, "id").unwrap())
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        let strings = ["", "a", "a\u{0}", "a\u{0}b", "ab", "b", "é"];
        let keys: Vec<Vec<u8>> = strings
            .iter()
            .map(|s| entry(&field, &json!(s), "the-id").unwrap())
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        for key in &keys {
            assert_eq!(entry_id(key, field.len()), Some("the-id"));
        }
        let object = entry(&field, &json!({"a": 1}), "the-id").unwrap();
        assert_eq!(entry_id(&object, field.len()), Some("the-id"));
        assert!(keys.iter().all(|key| *key < object));
        assert_eq!(entry(&field, &Value::Null, "the-id"), None);
        let prefix = string_prefix("f", "a");
        let end = after_prefix(&prefix);
        let inside: Vec<_> = keys.iter().filter(|k| **k >= prefix && **k < end).collect();
        assert_eq!(inside.len(), 4);
    }
}
