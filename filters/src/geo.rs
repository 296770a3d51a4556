//! Geo points, shapes and distances as Koncorde reads and tests them.
//!
//! Points: `{lat, lon}`, `"lat, lon"`, a geohash, `[lat, lon]`, `{latLon: …}` / `{lat_lon: …}`
//! (`convertGeopoint`). Shapes are tested like `boost-geospatial-index` does: a box by its
//! bounds, circles and annuli by their envelope then by the geodesic distance on the WGS84
//! ellipsoid (Andoyer's formula, Boost.Geometry's default), polygons by a point-in-polygon test.

use serde_json::{Map, Value};

use crate::error::{FilterError, FilterErrorKind};
use crate::js;
use crate::units;

/// A shape, in degrees and meters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum GeoShape {
    /// `geoBoundingBox`.
    Box {
        top: f64,
        left: f64,
        bottom: f64,
        right: f64,
    },
    /// `geoDistance`.
    Circle { lat: f64, lon: f64, radius: f64 },
    /// `geoDistanceRange`.
    Annulus {
        lat: f64,
        lon: f64,
        inner: f64,
        outer: f64,
    },
    /// `geoPolygon`, vertices as (lat, lon).
    Polygon(Vec<(f64, f64)>),
}

/// Why a bounding box was rejected; turned into Koncorde's message by the standardizer.
pub(crate) enum GeoError {
    /// `unrecognized geoBoundingBox format: <json>`
    BoxFormat(String),
    /// `unrecognized geo-point format`
    PointFormat,
    /// A JavaScript TypeError message.
    Type(&'static str),
}

impl GeoError {
    pub(crate) fn into_error(self, keyword: &str, path: &str) -> FilterError {
        match self {
            GeoError::BoxFormat(json) => FilterError::parse(
                format!("unrecognized geoBoundingBox format: {json}"),
                keyword,
                Some(path),
            ),
            GeoError::PointFormat => {
                FilterError::parse("unrecognized geo-point format", keyword, Some(path))
            }
            GeoError::Type(message) => FilterError::plain(FilterErrorKind::Type, message),
        }
    }
}

/// `geoLocationToCamelCase`: renames `lat_lon`, `top_left`, `bottom_right`; later keys win.
fn camel_case(map: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in js::keys(map) {
        let key = match key {
            "lat_lon" => "latLon",
            "top_left" => "topLeft",
            "bottom_right" => "bottomRight",
            other => other,
        };
        out.insert(key.to_owned(), value.clone());
    }
    out
}

fn to_coordinate(lat: &Value, lon: &Value) -> Option<(f64, f64)> {
    let lat = js::parse_float(lat);
    let lon = js::parse_float(lon);
    (!lat.is_nan() && !lon.is_nan()).then_some((lat, lon))
}

fn to_coordinate_str(lat: &str, lon: &str) -> Option<(f64, f64)> {
    let lat = js::parse_float_str(lat);
    let lon = js::parse_float_str(lon);
    (!lat.is_nan() && !lon.is_nan()).then_some((lat, lon))
}

const GEOHASH_ALPHABET: &[u8] = b"0123456789bcdefghjkmnpqrstuvwxyz";

/// `ngeohash.decode`: the center of the cell. Letters outside the alphabet count as 0, as in
/// ngeohash.
fn decode_geohash(hash: &str) -> (f64, f64) {
    let (mut min_lat, mut max_lat, mut min_lon, mut max_lon) =
        (-90.0f64, 90.0f64, -180.0f64, 180.0f64);
    let mut is_lon = true;
    for c in hash.chars() {
        let c = c.to_ascii_lowercase();
        let code = GEOHASH_ALPHABET
            .iter()
            .position(|&a| char::from(a) == c)
            .unwrap_or(0) as u32;
        for bits in (0..5).rev() {
            let bit = (code >> bits) & 1;
            if is_lon {
                let mid = (max_lon + min_lon) / 2.0;
                if bit == 1 {
                    min_lon = mid;
                } else {
                    max_lon = mid;
                }
            } else {
                let mid = (max_lat + min_lat) / 2.0;
                if bit == 1 {
                    min_lat = mid;
                } else {
                    max_lat = mid;
                }
            }
            is_lon = !is_lon;
        }
    }
    ((min_lat + max_lat) / 2.0, (min_lon + max_lon) / 2.0)
}

fn from_string(s: &str) -> Option<(f64, f64)> {
    let parts: Vec<&str> = s.split(',').collect();
    if parts.len() == 2 {
        return to_coordinate_str(parts[0], parts[1]);
    }
    let is_geohash = s.len() >= 4
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
    if is_geohash {
        let (lat, lon) = decode_geohash(s);
        return Some((lat, lon)).filter(|(a, b)| !a.is_nan() && !b.is_nan());
    }
    None
}

/// `convertGeopoint`: (lat, lon), or `None` when the value is not a point.
pub(crate) fn convert_geopoint(point: &Value) -> Option<(f64, f64)> {
    if !js::truthy(point) {
        return None;
    }
    match point {
        Value::String(s) => from_string(s),
        Value::Array(items) => {
            if items.len() == 2 {
                to_coordinate(&items[0], &items[1])
            } else {
                None
            }
        }
        Value::Object(map) => {
            let camel = camel_case(map);
            if let (Some(lat), Some(lon)) = (camel.get("lat"), camel.get("lon")) {
                return to_coordinate(lat, lon);
            }
            match camel.get("latLon") {
                Some(Value::Array(items)) => {
                    if items.len() == 2 {
                        to_coordinate(&items[0], &items[1])
                    } else {
                        None
                    }
                }
                Some(Value::Object(inner)) => match (inner.get("lat"), inner.get("lon")) {
                    (Some(lat), Some(lon)) => to_coordinate(lat, lon),
                    _ => None,
                },
                Some(Value::String(s)) => from_string(s),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The standardizer's `geoBoundingBox` conversion.
pub(crate) fn bounding_box(value: &Value) -> Result<GeoShape, GeoError> {
    let camel = match value {
        Value::Null => return Err(GeoError::Type("Cannot convert undefined or null to object")),
        Value::Object(map) => camel_case(map),
        // `Object.keys` of a string lists its indices; of other scalars, nothing. Either way no
        // usable property.
        _ => Map::new(),
    };
    let names = ["top", "left", "bottom", "right"];
    let all_scalar = names
        .iter()
        .all(|n| matches!(camel.get(*n), Some(Value::String(_) | Value::Number(_))));
    let mut found: Option<[f64; 4]> = None;
    if all_scalar {
        let mut out = [0.0; 4];
        for (i, n) in names.iter().enumerate() {
            let v = js::parse_float(&camel[*n]);
            if v.is_nan() {
                return Err(GeoError::BoxFormat(js::json_stringify(&Value::Object(
                    camel,
                ))));
            }
            out[i] = v;
        }
        found = Some(out);
    } else if let (Some(tl), Some(br)) = (camel.get("topLeft"), camel.get("bottomRight")) {
        if js::truthy(tl) && js::truthy(br) {
            if let (Some(tl), Some(br)) = (convert_geopoint(tl), convert_geopoint(br)) {
                found = Some([tl.0, tl.1, br.0, br.1]);
            }
        }
    }
    let [top, left, bottom, right] = found.ok_or(GeoError::PointFormat)?;
    Ok(GeoShape::Box {
        top,
        left,
        bottom,
        right,
    })
}

/// `convertDistance`: a distance string to meters.
pub(crate) fn convert_distance(distance: &str) -> Result<f64, FilterError> {
    units::convert_distance(distance).ok_or_else(|| {
        FilterError::plain(
            FilterErrorKind::Distance,
            format!("unable to parse distance value \"{distance}\""),
        )
    })
}

const EARTH_RADIUS: f64 = 6_378_137.0;

/// Boost's rough envelope of a circle (`envelopeFromCircle`): (min lon, min lat, max lon, max lat).
fn circle_envelope(lat: f64, lon: f64, radius: f64) -> (f64, f64, f64, f64) {
    let pi = std::f64::consts::PI;
    let dlat = radius / EARTH_RADIUS * (180.0 / pi);
    let dlon = radius / (EARTH_RADIUS * (pi * lat / 180.0).cos()) * (180.0 / pi);
    (lon - dlon, lat - dlat, lon + dlon, lat + dlat)
}

fn in_envelope(env: (f64, f64, f64, f64), lat: f64, lon: f64) -> bool {
    let (min_lon, min_lat, max_lon, max_lat) = env;
    min_lon <= lon && lon <= max_lon && min_lat <= lat && lat <= max_lat
}

/// Geodesic distance in meters on the WGS84 ellipsoid, Andoyer's first-order formula as
/// Boost.Geometry computes it (`formula::andoyer_inverse`, distance only).
pub(crate) fn andoyer_distance(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let a = 6_378_137.0f64;
    let b = 6_356_752.314_245_179f64;
    let f = (a - b) / a;
    let d2r = std::f64::consts::PI / 180.0;
    let (lon1, lat1, lon2, lat2) = (lon1 * d2r, lat1 * d2r, lon2 * d2r, lat2 * d2r);
    let dlon = lon2 - lon1;
    let sin_dlon = dlon.sin();
    let cos_dlon = dlon.cos();
    let (sin_lat1, cos_lat1) = (lat1.sin(), lat1.cos());
    let (sin_lat2, cos_lat2) = (lat2.sin(), lat2.cos());
    let cos_d = sin_lat1 * sin_lat2 + cos_lat1 * cos_lat2 * cos_dlon;
    let cos_d = cos_d.clamp(-1.0, 1.0);
    let d = cos_d.acos();
    let sin_d = d.sin();
    if sin_d == 0.0 {
        return a * d;
    }
    let k = sin_lat1 - sin_lat2;
    let l = sin_lat1 + sin_lat2;
    let one_minus_cos_d = 1.0 - cos_d;
    let one_plus_cos_d = 1.0 + cos_d;
    let h = if one_minus_cos_d == 0.0 {
        0.0
    } else {
        (d + 3.0 * sin_d) / one_minus_cos_d
    };
    let g = if one_plus_cos_d == 0.0 {
        0.0
    } else {
        (d - 3.0 * sin_d) / one_plus_cos_d
    };
    let dd = -(f / 4.0) * (h * k * k + g * l * l);
    let _ = sin_dlon;
    a * (d + dd)
}

/// Point-in-polygon, boundary included, in (lon, lat) as a plane.
fn polygon_covers(vertices: &[(f64, f64)], lat: f64, lon: f64) -> bool {
    let n = vertices.len();
    let mut inside = false;
    for i in 0..n {
        let (alat, alon) = vertices[i];
        let (blat, blon) = vertices[(i + 1) % n];
        // On the segment?
        let cross = (blon - alon) * (lat - alat) - (blat - alat) * (lon - alon);
        if cross == 0.0
            && lon >= alon.min(blon)
            && lon <= alon.max(blon)
            && lat >= alat.min(blat)
            && lat <= alat.max(blat)
        {
            return true;
        }
        if (alat > lat) != (blat > lat) {
            let x = alon + (lat - alat) * (blon - alon) / (blat - alat);
            if lon < x {
                inside = !inside;
            }
        }
    }
    inside
}

impl GeoShape {
    /// Latitudes outside this interval are never covered: the first test of
    /// [`covers`](Self::covers), computed the same way. Used to index shapes.
    pub(crate) fn lat_span(&self) -> (f64, f64) {
        let (low, high) = match self {
            GeoShape::Box { top, bottom, .. } => (*bottom, *top),
            GeoShape::Circle { lat, lon, radius } => {
                let (_, low, _, high) = circle_envelope(*lat, *lon, *radius);
                (low, high)
            }
            GeoShape::Annulus {
                lat, lon, outer, ..
            } => {
                let (_, low, _, high) = circle_envelope(*lat, *lon, *outer);
                (low, high)
            }
            GeoShape::Polygon(vertices) => vertices.iter().fold(
                (f64::INFINITY, f64::NEG_INFINITY),
                |(low, high), (lat, _)| (low.min(*lat), high.max(*lat)),
            ),
        };
        if low.is_nan() || high.is_nan() {
            (f64::NEG_INFINITY, f64::INFINITY)
        } else {
            (low, high)
        }
    }

    /// Does the shape cover the point (boundary included)?
    pub(crate) fn covers(&self, lat: f64, lon: f64) -> bool {
        match self {
            GeoShape::Box {
                top,
                left,
                bottom,
                right,
            } => {
                // Boost stores the box as (left, bottom)-(right, top).
                *left <= lon && lon <= *right && *bottom <= lat && lat <= *top
            }
            GeoShape::Circle {
                lat: clat,
                lon: clon,
                radius,
            } => {
                in_envelope(circle_envelope(*clat, *clon, *radius), lat, lon)
                    && andoyer_distance(*clat, *clon, lat, lon) <= *radius
            }
            GeoShape::Annulus {
                lat: clat,
                lon: clon,
                inner,
                outer,
            } => {
                if !in_envelope(circle_envelope(*clat, *clon, *outer), lat, lon) {
                    return false;
                }
                let d = andoyer_distance(*clat, *clon, lat, lon);
                d <= *outer && d >= *inner
            }
            GeoShape::Polygon(vertices) => {
                let (mut min_lat, mut min_lon, mut max_lat, mut max_lon) = (
                    f64::INFINITY,
                    f64::INFINITY,
                    f64::NEG_INFINITY,
                    f64::NEG_INFINITY,
                );
                for (a, o) in vertices {
                    min_lat = min_lat.min(*a);
                    max_lat = max_lat.max(*a);
                    min_lon = min_lon.min(*o);
                    max_lon = max_lon.max(*o);
                }
                in_envelope((min_lon, min_lat, max_lon, max_lat), lat, lon)
                    && polygon_covers(vertices, lat, lon)
            }
        }
    }
}
