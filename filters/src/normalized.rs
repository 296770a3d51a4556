//! Normalized filters: canonical minterms, their stable serialization and the room id.

use sha2::{Digest, Sha256};

use serde_json::Value;

use crate::geo::GeoShape;
use crate::js;
use crate::matcher::CompiledLiteral;
use crate::model::{Cond, Literal};

/// A filter checked and rewritten in canonical form, ready to [`store`](crate::Engine::store).
///
/// Two filters that normalize to the same minterms (in any order) get the same id, for the
/// same index.
#[derive(Debug, Clone)]
pub struct NormalizedFilter {
    /// Room id: SHA-256 of the index and the canonical form, 64 lowercase hex chars.
    pub(crate) id: String,
    /// Kuzzle's `"<index>/<collection>"`.
    pub(crate) index: String,
    /// Canonical minterms (sorted, deduplicated), with their stable keys.
    pub(crate) minterms: Vec<Vec<(String, Literal)>>,
    /// The same minterms compiled.
    pub(crate) compiled: Vec<Vec<CompiledLiteral>>,
}

impl NormalizedFilter {
    /// The room id: deterministic, the same in every process and after restarts.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The index (`"<index>/<collection>"`) this filter belongs to.
    pub fn index(&self) -> &str {
        &self.index
    }

    /// The canonical form as JSON: an array (or) of arrays (and) of conditions, each with a
    /// `not` flag, close to Koncorde's normalized filters.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.minterms
                .iter()
                .map(|m| {
                    Value::Array(
                        m.iter()
                            .map(|(key, _)| serde_json::from_str(key).unwrap_or(Value::Null))
                            .collect(),
                    )
                })
                .collect(),
        )
    }
}

/// Version tag of the id scheme: bump it if the canonical serialization ever changes.
const ID_SCHEME: &str = "switchyard-filters/room/v1";

/// A minterm with its stable key, its keyed literals and their compiled forms.
type KeyedMinterm = (String, Vec<(String, Literal)>, Vec<CompiledLiteral>);

/// Sorts and deduplicates literals and minterms, and computes the id.
pub(crate) fn finish(
    index: &str,
    minterms: Vec<Vec<Literal>>,
    compiled: Vec<Vec<CompiledLiteral>>,
) -> NormalizedFilter {
    let mut keyed: Vec<KeyedMinterm> = minterms
        .into_iter()
        .zip(compiled)
        .map(|(m, c)| {
            let mut pairs: Vec<(String, Literal, CompiledLiteral)> = m
                .into_iter()
                .zip(c)
                .map(|(l, c)| (literal_key(&l), l, c))
                .collect();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            pairs.dedup_by(|a, b| a.0 == b.0);
            let key = pairs
                .iter()
                .map(|p| p.0.as_str())
                .collect::<Vec<_>>()
                .join(",");
            let compiled = pairs.iter().map(|p| p.2.clone()).collect();
            (
                key,
                pairs.into_iter().map(|(k, l, _)| (k, l)).collect(),
                compiled,
            )
        })
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed.dedup_by(|a, b| a.0 == b.0);

    let mut hasher = Sha256::new();
    hasher.update(ID_SCHEME.as_bytes());
    hasher.update([0]);
    hasher.update(index.as_bytes());
    hasher.update([0]);
    for (key, _, _) in &keyed {
        hasher.update(b"[");
        hasher.update(key.as_bytes());
        hasher.update(b"]");
    }
    let id = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();

    let mut out_minterms = Vec::with_capacity(keyed.len());
    let mut out_compiled = Vec::with_capacity(keyed.len());
    for (_, m, c) in keyed {
        out_minterms.push(m);
        out_compiled.push(c);
    }
    NormalizedFilter {
        id,
        index: index.to_owned(),
        minterms: out_minterms,
        compiled: out_compiled,
    }
}

/// Stable JSON text of a value: keys sorted, numbers as JavaScript prints them.
pub(crate) fn stable_json(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&js::json_stringify(&Value::String(k.clone())));
                out.push(':');
                stable_json(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                stable_json(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&js::json_stringify(other)),
    }
}

fn obj1(key: &str, value: Value) -> Value {
    let mut map = serde_json::Map::new();
    map.insert(key.to_owned(), value);
    Value::Object(map)
}

fn num(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// The stable key of a literal: JSON naming the keyword, the field and the arguments.
pub(crate) fn literal_key(literal: &Literal) -> String {
    let s = |v: &str| Value::String(v.to_owned());
    let body = match &literal.cond {
        Cond::Everything => Value::Bool(true),
        Cond::Nothing => Value::Bool(true),
        Cond::Equals { field, value } => obj1(field, value.clone()),
        Cond::Exists { path, array, value } => {
            serde_json::json!({ "path": path, "array": array, "value": value })
        }
        Cond::Range { field, bounds } => {
            let mut b = serde_json::Map::new();
            for (op, v) in bounds {
                b.insert(op.name().to_owned(), num(*v));
            }
            obj1(field, Value::Object(b))
        }
        Cond::Regexp {
            field,
            pattern,
            flags,
            ..
        } => obj1(
            field,
            serde_json::json!({ "value": pattern, "flags": flags }),
        ),
        Cond::Geo { field, shape } => {
            let shape = match shape {
                GeoShape::Box {
                    top,
                    left,
                    bottom,
                    right,
                } => serde_json::json!({
                    "geoBoundingBox": { "top": num(*top), "left": num(*left), "bottom": num(*bottom), "right": num(*right) }
                }),
                GeoShape::Circle { lat, lon, radius } => serde_json::json!({
                    "geoDistance": { "lat": num(*lat), "lon": num(*lon), "distance": num(*radius) }
                }),
                GeoShape::Annulus {
                    lat,
                    lon,
                    inner,
                    outer,
                } => serde_json::json!({
                    "geoDistanceRange": { "lat": num(*lat), "lon": num(*lon), "from": num(*inner), "to": num(*outer) }
                }),
                GeoShape::Polygon(points) => serde_json::json!({
                    "geoPolygon": points.iter().map(|(a, o)| vec![num(*a), num(*o)]).collect::<Vec<_>>()
                }),
            };
            obj1(field, shape)
        }
        Cond::Match { value } => Value::Object(value.clone()),
        Cond::Select {
            field,
            index,
            query,
        } => {
            serde_json::json!({ "field": s(field), "index": index, "query": query })
        }
    };
    let mut wrapped = serde_json::Map::new();
    wrapped.insert(literal.cond.keyword().to_owned(), body);
    wrapped.insert("not".to_owned(), Value::Bool(literal.not));
    let wrapped = Value::Object(wrapped);
    let mut out = String::new();
    stable_json(&wrapped, &mut out);
    out
}
