//! Kuzzle's validation field types (`lib/core/validation/types/*.js`): what each accepts in
//! `typeOptions` (checked when the specifications are stored) and what each accepts as a value,
//! with Kuzzle's messages. Emails, URLs and IP addresses follow npm `validator`'s defaults;
//! dates follow `moment`'s parsing of Elasticsearch's named formats (see [`date`]).

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
                        .filter(|f| !f.as_str().is_some_and(date::is_format))
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
                    Value::String(text) => date::parse_iso(text, false)
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
                Kind::Email if !formats::is_email(text) => {
                    fail("The string must be a valid email address.")
                }
                Kind::Url if !formats::is_url(text) => fail("The string must be a valid URL."),
                Kind::IpAddress if !formats::is_ip(text) => {
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
                .find_map(|format| date::parse(format, value));
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

/// Emails, URLs and IP addresses as npm `validator`'s `isEmail`, `isURL` and `isIP` with their
/// default options (approximated: no quoted local parts, no IP-literal email domains).
mod formats {
    /// `isFQDN` with `require_tld`, no underscores, no trailing dot.
    pub fn is_fqdn(host: &str) -> bool {
        if host.is_empty() || host.len() > 253 {
            return false;
        }
        let labels: Vec<&str> = host.split('.').collect();
        if labels.len() < 2 {
            return false;
        }
        let tld = labels[labels.len() - 1];
        let tld_ok = (tld.chars().count() >= 2 && tld.chars().all(|c| c.is_alphabetic()))
            || (tld.len() > 4
                && tld.to_ascii_lowercase().starts_with("xn")
                && tld.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        if !tld_ok {
            return false;
        }
        labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '-' || (c as u32) >= 0xa1)
        })
    }

    pub fn is_email(text: &str) -> bool {
        if text.len() > 254 {
            return false;
        }
        let Some((user, domain)) = text.rsplit_once('@') else {
            return false;
        };
        if user.is_empty() || user.len() > 64 || domain.len() > 254 {
            return false;
        }
        let special = "!#$%&'*+-/=?^_`{|}~";
        is_fqdn(&domain.to_lowercase())
            && user.split('.').all(|part| {
                !part.is_empty()
                    && part.chars().all(|c| {
                        c.is_ascii_alphanumeric() || special.contains(c) || (c as u32) >= 0xa1
                    })
            })
    }

    pub fn is_ip(text: &str) -> bool {
        if text.parse::<std::net::Ipv4Addr>().is_ok() {
            return true;
        }
        let address = text.split_once('%').map_or(
            text,
            |(address, zone)| {
                if zone.is_empty() {
                    ""
                } else {
                    address
                }
            },
        );
        address.parse::<std::net::Ipv6Addr>().is_ok()
    }

    pub fn is_url(text: &str) -> bool {
        if text.len() >= 2083
            || text
                .chars()
                .any(|c| c.is_whitespace() || c == '<' || c == '>')
        {
            return false;
        }
        if text.to_ascii_lowercase().starts_with("mailto:") {
            return false;
        }
        let rest = match text.split_once("://") {
            Some((protocol, rest)) => {
                if !["http", "https", "ftp"].contains(&protocol.to_ascii_lowercase().as_str()) {
                    return false;
                }
                rest
            }
            None if text.starts_with("//") => return false,
            None => text,
        };
        let rest = rest.split('#').next().unwrap_or("");
        let rest = rest.split('?').next().unwrap_or("");
        let authority = rest.split('/').next().unwrap_or("");
        let host_port = match authority.rsplit_once('@') {
            Some((auth, host)) => {
                if auth.is_empty() || auth.split(':').count() > 2 {
                    return false;
                }
                host
            }
            None => authority,
        };
        let (host, port) = if let Some(inner) = host_port.strip_prefix('[') {
            match inner.split_once(']') {
                Some((host, after)) => {
                    if host.parse::<std::net::Ipv6Addr>().is_err() {
                        return false;
                    }
                    return after.is_empty() || after.strip_prefix(':').is_some_and(valid_port);
                }
                None => return false,
            }
        } else {
            match host_port.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (host_port, None),
            }
        };
        if port.is_some_and(|p| !valid_port(p)) {
            return false;
        }
        !host.is_empty()
            && (host.parse::<std::net::Ipv4Addr>().is_ok() || is_fqdn(&host.to_lowercase()))
    }

    fn valid_port(port: &str) -> bool {
        !port.is_empty()
            && port.len() <= 5
            && port.chars().all(|c| c.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| p > 0 && p <= 65535)
    }
}

/// Dates as `moment` parses Elasticsearch's named formats (`date.js`'s `formatMap`), in epoch
/// milliseconds. Strict formats must match exactly; the others are read as moment's forgiving
/// mode does (digits found in order, separators skipped, a prefix is enough). Week-based
/// formats (`gggg`, `ww`, `e`) count weeks from the year's first day.
pub mod date {
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
                    return parse_iso(&text, true);
                }
                let (_, pattern, strict) = FORMATS.iter().find(|(n, ..)| *n == name)?;
                parse_pattern(pattern, &text, *strict)
            }
        }
    }

    /// ISO 8601 as `moment.ISO_8601` reads it: a date, optionally a time and an offset.
    pub fn parse_iso(text: &str, strict: bool) -> Option<f64> {
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
        let _ = strict;
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
}
