//! Kuzzle's validation field types (`lib/core/validation/types/*.js`): what each accepts in
//! `typeOptions` (checked when the specifications are stored) and what each accepts as a value,
//! with Kuzzle's messages. Emails, URLs and IP addresses follow npm `validator`'s defaults;
//! dates follow `moment`'s parsing of Elasticsearch's named formats (`date.rs`, `formats.rs`).

use serde_json::{Map, Value};

use super::{js_string, number_text, truthy};

/// A field type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Anything,
    Boolean,
    Date,
    Email,
    Enum,
    GeoPoint,
    GeoShape,
    Integer,
    IpAddress,
    Numeric,
    Object,
    String,
    Url,
}

impl Kind {
    /// The type named `name` in a specification (Kuzzle's `typeName`s).
    pub fn parse(name: &str) -> Option<Kind> {
        Some(match name {
            "anything" => Kind::Anything,
            "boolean" => Kind::Boolean,
            "date" => Kind::Date,
            "email" => Kind::Email,
            "enum" => Kind::Enum,
            "geo_point" => Kind::GeoPoint,
            "geo_shape" => Kind::GeoShape,
            "integer" => Kind::Integer,
            "ip_address" => Kind::IpAddress,
            "numeric" => Kind::Numeric,
            "object" => Kind::Object,
            "string" => Kind::String,
            "url" => Kind::Url,
            _ => return None,
        })
    }

    /// The `typeOptions` keys the type accepts (`allowedTypeOptions`).
    pub fn allowed_options(self) -> &'static [&'static str] {
        match self {
            Kind::Date => &["range", "formats"],
            Kind::Email | Kind::IpAddress | Kind::Url => &["notEmpty"],
            Kind::Enum => &["values"],
            Kind::GeoShape => &["shapeTypes"],
            Kind::Integer | Kind::Numeric => &["range"],
            Kind::Object => &["strict"],
            Kind::String => &["length"],
            Kind::Anything | Kind::Boolean | Kind::GeoPoint => &[],
        }
    }

    /// Only `object` fields may have children (`allowChildren`).
    pub fn allows_children(self) -> bool {
        self == Kind::Object
    }
}

/// A field's curated `typeOptions`.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `range` (numeric, integer).
    range: (Option<f64>, Option<f64>),
    /// `length` (string).
    length: (Option<f64>, Option<f64>),
    /// `notEmpty` (email, url, ip_address).
    not_empty: bool,
    /// `values` (enum).
    values: Vec<String>,
    /// `strict` (object): `None` inherits the parent's strictness.
    pub strict: Option<bool>,
    /// `formats` (date), default `["epoch_millis"]`.
    formats: Vec<String>,
    /// `range` (date): epoch milliseconds, `None` for `"NOW"` (the time of each check).
    date_range: (Option<DateBound>, Option<DateBound>),
    /// `shapeTypes` (geo_shape), default every shape.
    shape_types: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
enum DateBound {
    Now,
    At(f64),
}

impl DateBound {
    fn millis(self) -> f64 {
        match self {
            DateBound::Now => crate::realtime::now_ms() as f64,
            DateBound::At(millis) => millis,
        }
    }
}

/// Kuzzle's errors while checking `typeOptions` (`validateFieldSpecification`).
fn unexpected(object: &str, allowed: &str) -> String {
    format!("The object \"{object}\" contains unexpected properties (allowed: {allowed}).")
}
fn wrong_type(parameter: &str, expected: &str) -> String {
    format!("Wrong type for parameter \"{parameter}\" (expected: {expected}).")
}
fn bad_range(property: &str, low: &str, high: &str) -> String {
    format!("Property \"{property}\": invalid range ({low} > {high}).")
}

/// `{min, max}` of numbers (`range`, `length`), checked as the numeric and string types do.
fn number_range(
    options: &Map<String, Value>,
    key: &str,
) -> Result<(Option<f64>, Option<f64>), String> {
    let Some(range) = options.get(key) else {
        return Ok((None, None));
    };
    let Some(range) = range
        .as_object()
        .filter(|r| r.keys().all(|k| k == "min" || k == "max"))
    else {
        return Err(unexpected(key, "min, max"));
    };
    let mut bounds = [None, None];
    for (slot, name) in bounds.iter_mut().zip(["min", "max"]) {
        if let Some(value) = range.get(name) {
            *slot = Some(
                value
                    .as_f64()
                    .ok_or_else(|| wrong_type(&format!("{key}.{name}"), "number"))?,
            );
        }
    }
    if let [Some(min), Some(max)] = bounds {
        if max < min {
            return Err(bad_range(key, "min", "max"));
        }
    }
    Ok((bounds[0], bounds[1]))
}

fn not_empty(options: &Map<String, Value>) -> Result<bool, String> {
    match options.get("notEmpty") {
        None => Ok(false),
        Some(Value::Bool(value)) => Ok(*value),
        Some(_) => Err(wrong_type("notEmpty", "boolean")),
    }
}

const SHAPES: &[&str] = &[
    "point",
    "linestring",
    "polygon",
    "multipoint",
    "multilinestring",
    "multipolygon",
    "geometrycollection",
    "envelope",
    "circle",
];

/// Checks and curates a field's `typeOptions` (already known to hold only allowed keys), with
/// the first error Kuzzle's type throws.
pub fn curate(kind: Kind, options: &Map<String, Value>) -> Result<Options, String> {
    let mut out = Options::default();
    match kind {
        Kind::Numeric | Kind::Integer => out.range = number_range(options, "range")?,
        Kind::String => out.length = number_range(options, "length")?,
        Kind::Email | Kind::Url | Kind::IpAddress => out.not_empty = not_empty(options)?,
        Kind::Enum => {
            let Some(values) = options.get("values") else {
                return Err("The \"enum\" type requires a \"values\" property holding the list of the enum values.".into());
            };
            let values = values
                .as_array()
                .filter(|values| !values.is_empty())
                .and_then(|values| {
                    values
                        .iter()
                        .map(|v| v.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or_else(|| wrong_type("values", "string[]"))?;
            out.values = values;
        }
        Kind::Object => match options.get("strict") {
            None => {}
            Some(Value::Bool(strict)) => out.strict = Some(*strict),
            Some(_) => return Err(wrong_type("strict", "boolean")),
        },
        Kind::Date => {
            out.formats = match options.get("formats") {
                None => vec!["epoch_millis".to_string()],
                Some(Value::Array(formats)) if !formats.is_empty() => {
                    let unknown: Vec<String> = formats
                        .iter()
                        .filter(|f| !f.as_str().is_some_and(super::date::is_format))
                        .map(js_string)
                        .collect();
                    if !unknown.is_empty() {
                        return Err(format!(
                            "The following date types are invalid: {}.",
                            unknown.join(", ")
                        ));
                    }
                    formats
                        .iter()
                        .filter_map(|f| f.as_str().map(str::to_string))
                        .collect()
                }
                Some(_) => return Err(wrong_type("formats", "non-empty array")),
            };
            if let Some(range) = options.get("range") {
                let Some(range) = range
                    .as_object()
                    .filter(|r| r.keys().all(|k| k == "min" || k == "max"))
                else {
                    return Err(unexpected("range", "min, max"));
                };
                let bound = |value: &Value| match value {
                    Value::String(text) if text == "NOW" => Ok(DateBound::Now),
                    Value::String(text) => super::date::parse_iso(text)
                        .map(DateBound::At)
                        .ok_or_else(|| format!("Cannot parse the date value: \"{text}\".")),
                    Value::Number(number) => Ok(DateBound::At(number.as_f64().unwrap_or(f64::NAN))),
                    other => Err(format!(
                        "Cannot parse the date value: \"{}\".",
                        js_string(other)
                    )),
                };
                let min = range.get("min").map(bound).transpose()?;
                let max = range.get("max").map(bound).transpose()?;
                if let (Some(min), Some(max)) = (min, max) {
                    if max.millis() < min.millis() {
                        return Err(bad_range("range", "min", "max"));
                    }
                }
                out.date_range = (min, max);
            }
        }
        Kind::GeoShape => {
            out.shape_types = match options.get("shapeTypes") {
                None => SHAPES.iter().map(|s| s.to_string()).collect(),
                Some(Value::Array(shapes)) if !shapes.is_empty() => {
                    let invalid: Vec<&Value> = shapes
                        .iter()
                        .filter(|s| !s.as_str().is_some_and(|s| SHAPES.contains(&s)))
                        .collect();
                    if !invalid.is_empty() {
                        return Err(format!(
                            "The following shapes are invalid: {}.",
                            inspect(&invalid)
                        ));
                    }
                    shapes
                        .iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                }
                Some(_) => return Err(wrong_type("shapeTypes", "string[]")),
            };
        }
        Kind::Anything | Kind::Boolean | Kind::GeoPoint => {}
    }
    Ok(out)
}

/// Node's `util.format("%s", array)` of an array of scalars: `[ 'a', 1 ]`.
fn inspect(values: &[&Value]) -> String {
    let items: Vec<String> = values
        .iter()
        .map(|value| match value {
            Value::String(text) => format!("'{text}'"),
            other => js_string(other),
        })
        .collect();
    format!("[ {} ]", items.join(", "))
}

/// Checks one value (never null) against its type: `Err` holds the type's messages (most
/// types have one; a geo shape may have several).
pub fn check(kind: Kind, options: &Options, value: &Value) -> Result<(), Vec<String>> {
    let fail = |message: &str| Err(vec![message.to_string()]);
    match kind {
        Kind::Anything => Ok(()),
        Kind::Boolean if value.is_boolean() => Ok(()),
        Kind::Boolean => fail("The field must be of type boolean."),
        Kind::Numeric | Kind::Integer => {
            let Some(number) = value.as_f64() else {
                return fail("The field must be a number.");
            };
            if let Some(min) = options.range.0.filter(|min| number < *min) {
                return Err(vec![format!(
                    "Value {} is lesser than the allowed minimum ({})",
                    number_text(number),
                    number_text(min)
                )]);
            }
            if let Some(max) = options.range.1.filter(|max| number > *max) {
                return Err(vec![format!(
                    "Value {} is greater than the allowed maximum ({})",
                    number_text(number),
                    number_text(max)
                )]);
            }
            if kind == Kind::Integer && number.fract() != 0.0 {
                return fail("The field must be an integer.");
            }
            Ok(())
        }
        Kind::String => {
            let Some(text) = value.as_str() else {
                return fail("The field must be a string.");
            };
            let length = text.encode_utf16().count() as f64;
            if let Some(min) = options.length.0.filter(|min| length < *min) {
                return Err(vec![format!(
                    "Invalid string length. Expected min: {}. Received: {} (\"{text}\")",
                    number_text(min),
                    length
                )]);
            }
            if let Some(max) = options.length.1.filter(|max| length > *max) {
                return Err(vec![format!(
                    "Invalid string length. Expected max: {}. Received: {} (\"{text}\")",
                    number_text(max),
                    length
                )]);
            }
            Ok(())
        }
        Kind::Email | Kind::Url | Kind::IpAddress => {
            let Some(text) = value.as_str() else {
                return fail("The field must be a string.");
            };
            if text.is_empty() {
                return if options.not_empty {
                    fail("The string must not be empty.")
                } else {
                    Ok(())
                };
            }
            match kind {
                Kind::Email if !super::formats::is_email(text) => {
                    fail("The string must be a valid email address.")
                }
                Kind::Url if !super::formats::is_url(text) => {
                    fail("The string must be a valid URL.")
                }
                Kind::IpAddress if !super::formats::is_ip(text) => {
                    fail("The string must be a valid IP address.")
                }
                _ => Ok(()),
            }
        }
        Kind::Enum => {
            let Some(text) = value.as_str() else {
                return fail("The field must be a string.");
            };
            if options.values.iter().any(|v| v == text) {
                Ok(())
            } else {
                Err(vec![format!(
                    "The field only accepts following values: \"{}\".",
                    options.values.join(", ")
                )])
            }
        }
        Kind::Object if value.is_object() => Ok(()),
        Kind::Object => fail("The value must be an object."),
        Kind::GeoPoint if switchyard_filters::convert_geopoint(value).is_some() => Ok(()),
        Kind::GeoPoint => fail("Invalid GeoPoint format"),
        Kind::GeoShape => {
            let mut messages = Vec::new();
            if geo_shape(&options.shape_types, value, &mut messages) {
                Ok(())
            } else {
                Err(messages)
            }
        }
        Kind::Date => {
            let parsed = options
                .formats
                .iter()
                .find_map(|format| super::date::parse(format, value));
            let Some(millis) = parsed else {
                return fail("The date format is invalid.");
            };
            if let Some(min) = options.date_range.0 {
                if millis < min.millis() {
                    return fail("The provided date is before the defined minimum.");
                }
            }
            if let Some(max) = options.date_range.1 {
                if max.millis() < millis {
                    return fail("The provided date is after the defined maximum.");
                }
            }
            Ok(())
        }
    }
}

// ---- geo_shape (`geoShape.js`) ----

fn is_point(point: &Value) -> bool {
    match point.as_array() {
        Some(p) if p.len() == 2 => {
            let (Some(lon), Some(lat)) = (coordinate(&p[0]), coordinate(&p[1])) else {
                // JavaScript compares non-numbers as NaN: never out of range.
                return true;
            };
            (-180.0..=180.0).contains(&lon) && (-90.0..=90.0).contains(&lat)
        }
        _ => false,
    }
}

fn coordinate(value: &Value) -> Option<f64> {
    value.as_f64()
}

fn is_line(line: &Value) -> bool {
    line.as_array()
        .is_some_and(|l| l.len() >= 2 && l.iter().all(is_point))
}

fn is_polygon_part(part: &Value) -> bool {
    part.as_array()
        .is_some_and(|p| p.len() >= 4 && is_line(part) && p[0] == p[p.len() - 1])
}

fn is_polygon(polygon: &Value) -> bool {
    polygon
        .as_array()
        .is_some_and(|p| p.iter().all(is_polygon_part))
}

fn is_envelope(envelope: &Value) -> bool {
    envelope
        .as_array()
        .is_some_and(|e| e.len() == 2 && is_point(&e[0]) && is_point(&e[1]))
}

fn shape_structure(allowed: &[String], shape: &Value, messages: &mut Vec<String>) -> bool {
    let get = |key: &str| shape.get(key).filter(|v| truthy(v));
    let Some(kind) = get("type") else {
        messages.push("The shape object has no type defined.".into());
        return false;
    };
    let kind = js_string(kind);
    let mut ok = true;
    let mut fail = |message: String| {
        messages.push(message);
        ok = false;
    };
    let allowed_keys = ["type", "coordinates", "radius", "orientation", "geometries"];
    if !shape
        .as_object()
        .is_some_and(|m| m.keys().all(|k| allowed_keys.contains(&k.as_str())))
    {
        fail("The shape object has a not allowed property.".into());
    }
    if !allowed.contains(&kind) {
        fail("The provided shape type is not allowed.".into());
    }
    let collection = kind == "geometrycollection";
    if collection && get("coordinates").is_some() {
        fail("The coordinates property must not be provided for the \"geometrycollection\" shape type.".into());
    }
    if !collection && !get("coordinates").is_some_and(Value::is_array) {
        fail(format!(
            "The coordinates property must be provided for the \"{kind}\" shape type."
        ));
    }
    if kind == "circle" && get("radius").is_none() {
        fail("The radius property is mandatory for the \"circle\" shape type.".into());
    }
    if kind != "circle" && get("radius").is_some() {
        fail(format!(
            "The radius property must not be provided for the \"{kind}\" shape type."
        ));
    }
    if kind != "polygon" && kind != "multipolygon" && get("orientation").is_some() {
        fail(format!(
            "The orientation property must not be provided for the \"{kind}\" shape type."
        ));
    }
    if !collection && get("geometries").is_some() {
        fail(format!(
            "The geometries property must not be provided for the \"{kind}\" shape type."
        ));
    }
    if collection && !get("geometries").is_some_and(Value::is_array) {
        fail(
            "The geometries property must be provided for the \"geometrycollection\" shape type."
                .into(),
        );
    }
    ok
}

fn geo_shape(allowed: &[String], shape: &Value, messages: &mut Vec<String>) -> bool {
    if !shape_structure(allowed, shape, messages) {
        return false;
    }
    let kind = js_string(&shape["type"]);
    let multi = matches!(
        kind.as_str(),
        "multipoint" | "multilinestring" | "multipolygon"
    );
    let mut ok = true;
    let valid: fn(&Value) -> bool = match kind.as_str() {
        "point" | "multipoint" => is_point,
        "linestring" | "multilinestring" => is_line,
        "polygon" | "multipolygon" => {
            const ORIENTATIONS: &[&str] = &[
                "right",
                "ccw",
                "counterclockwise",
                "left",
                "cw",
                "clockwise",
            ];
            if let Some(orientation) = shape.get("orientation").filter(|v| truthy(v)) {
                if !orientation
                    .as_str()
                    .is_some_and(|o| ORIENTATIONS.contains(&o))
                {
                    messages.push("The orientation property has not a valid value.".into());
                    ok = false;
                }
            }
            is_polygon
        }
        "geometrycollection" => {
            for geometry in shape["geometries"].as_array().into_iter().flatten() {
                if !geo_shape(allowed, geometry, messages) {
                    ok = false;
                }
            }
            |_| true
        }
        "envelope" => is_envelope,
        "circle" => {
            let radius_ok = match &shape["radius"] {
                Value::String(text) => switchyard_filters::convert_distance(text).is_some(),
                Value::Number(_) => true,
                _ => false,
            };
            if !radius_ok {
                messages.push("The radius property has not a valid format.".into());
                ok = false;
            }
            is_point
        }
        _ => {
            messages.push(format!("Unrecognized shape: {kind}"));
            return false;
        }
    };
    let coordinates = &shape["coordinates"];
    if multi {
        if coordinates
            .as_array()
            .is_some_and(|c| c.iter().any(|c| !valid(c)))
        {
            messages.push(format!(
                "One of the shapes in  the shape type \"{kind}\" has bad coordinates."
            ));
            ok = false;
        }
    } else if kind != "geometrycollection" && !valid(coordinates) {
        messages.push(format!("The shape type \"{kind}\" has bad coordinates."));
        return false;
    }
    ok
}
