//! Validation and standardization: Koncorde's `Standardizer`, rule for rule.
//!
//! Every check runs in the order Koncorde runs it, so that a filter with several faults reports
//! the same one, with the same message, keyword and path. The output keeps Koncorde's tree shape
//! (including its `_isLeaf` marks and the way it flattens and re-standardizes nested `and`/`or`),
//! because the number of conditions a filter counts for depends on that shape.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::error::FilterError;
use crate::geo::{self, GeoShape};
use crate::js;
use crate::model::{CompiledRegex, Cond, Node, RangeOp};
use crate::re2;
use crate::Limits;

type Result<T> = std::result::Result<T, FilterError>;

const KEYWORDS: [&str; 18] = [
    "and",
    "bool",
    "equals",
    "exists",
    "geoBoundingBox",
    "geoDistance",
    "geoDistanceRange",
    "geoPolygon",
    "ids",
    "in",
    "match",
    "missing",
    "not",
    "nothing",
    "or",
    "select",
    "range",
    "regexp",
];

const BOOL_ATTRIBUTES: [&str; 4] = ["must", "must_not", "should", "should_not"];

/// Something to standardize: a filter as the user wrote it, a tree already standardized
/// (Koncorde re-standardizes some of its own output), or one of the objects `bool` builds.
enum Input<'a> {
    Raw(&'a Value),
    Std(Node),
    /// `{and: X}` or `{or: X}` around a user value.
    Op {
        is_and: bool,
        array: &'a Value,
    },
    /// `{not: …}` around another input.
    Not(Box<Input<'a>>),
    /// `{and: [items]}` built by `bool`.
    Items(Vec<Input<'a>>),
}

fn path_add(path: Option<&str>, leaf: &str) -> String {
    match path {
        None => leaf.to_owned(),
        Some(p) => format!("{p}.{leaf}"),
    }
}

fn op_name(is_and: bool) -> &'static str {
    if is_and {
        "and"
    } else {
        "or"
    }
}

/// Options of Koncorde's `isObject` helper.
#[derive(Default)]
struct ObjectRules<'r> {
    non_empty: bool,
    properties: Option<usize>,
    required: &'r [&'r str],
    allowed: &'r [&'r str],
}

/// Koncorde's `isObject`: `value` must be a plain object satisfying `rules`.
fn is_object<'v>(
    value: Option<&'v Value>,
    keyword: &str,
    path: &str,
    rules: &ObjectRules<'_>,
) -> Result<&'v Map<String, Value>> {
    let Some(Value::Object(map)) = value else {
        return Err(FilterError::parse("must be an object", keyword, Some(path)));
    };
    if rules.non_empty && map.is_empty() {
        return Err(FilterError::parse(
            "must be a non-empty object",
            keyword,
            Some(path),
        ));
    }
    if let Some(n) = rules.properties {
        if map.len() != n {
            let noun = if n > 1 { "properties" } else { "property" };
            return Err(FilterError::parse(
                format!(
                    "expected object to have exactly {n} {noun}, got {}",
                    map.len()
                ),
                keyword,
                Some(path),
            ));
        }
    }
    for required in rules.required {
        if !map.contains_key(*required) {
            return Err(FilterError::parse(
                format!("the property \"{required}\" is missing"),
                keyword,
                Some(path),
            ));
        }
    }
    if !rules.allowed.is_empty() {
        for (key, _) in js::keys(map) {
            if !rules.allowed.contains(&key) {
                return Err(FilterError::parse(
                    format!(
                        "\"{key}\" is not an allowed attribute (allowed: {})",
                        rules.allowed.join(",")
                    ),
                    keyword,
                    Some(path),
                ));
            }
        }
    }
    Ok(map)
}

/// Koncorde's `isString`: a non-empty string.
fn is_string<'v>(value: Option<&'v Value>, keyword: &str, path: &str) -> Result<&'v str> {
    let Some(Value::String(s)) = value else {
        return Err(FilterError::parse("must be a string", keyword, Some(path)));
    };
    if s.is_empty() {
        return Err(FilterError::parse("cannot be empty", keyword, Some(path)));
    }
    Ok(s)
}

/// Koncorde's `isArray`, with its `nonEmpty` and `type: 'string'` options.
fn is_array<'v>(
    value: Option<&'v Value>,
    keyword: &str,
    path: &str,
    non_empty: bool,
    strings: bool,
) -> Result<&'v Vec<Value>> {
    let Some(Value::Array(items)) = value else {
        return Err(FilterError::parse("must be an array", keyword, Some(path)));
    };
    if non_empty && items.is_empty() {
        return Err(FilterError::parse("cannot be empty", keyword, Some(path)));
    }
    if strings && !items.iter().all(Value::is_string) {
        return Err(FilterError::parse(
            "must hold only values of type \"string\"",
            keyword,
            Some(path),
        ));
    }
    Ok(items)
}

/// The standardizer.
pub(crate) struct Standardizer {
    /// Largest compiled regexp accepted, in bytes (a longer pattern is refused uncompiled).
    regexp_size_limit: usize,
}

impl Standardizer {
    pub(crate) fn new(limits: &Limits) -> Standardizer {
        Standardizer {
            regexp_size_limit: limits.regexp_size_limit,
        }
    }

    /// Checks `filter` and returns its standardized tree, `None` for a filter that matches
    /// everything (`{}`, `null`, and the other values Koncorde reads as having no keyword).
    pub(crate) fn standardize(&self, filter: &Value) -> Result<Option<Node>> {
        self.run(Input::Raw(filter), None)
    }

    fn run(&self, input: Input<'_>, path: Option<&str>) -> Result<Option<Node>> {
        match input {
            Input::Raw(value) => self.raw(value, path),
            Input::Std(node) => self.restandardize(node, path).map(Some),
            Input::Op { is_and, array } => {
                let p = path_add(path, op_name(is_and));
                let items = is_array(Some(array), op_name(is_and), &p, true, false)?;
                let inputs = items.iter().map(Input::Raw).collect();
                self.filter_array(inputs, is_and, &p).map(Some)
            }
            Input::Not(inner) => self.not(*inner, &path_add(path, "not")).map(Some),
            Input::Items(items) => {
                let p = path_add(path, "and");
                if items.is_empty() {
                    return Err(FilterError::parse("cannot be empty", "and", Some(&p)));
                }
                self.filter_array(items, true, &p).map(Some)
            }
        }
    }

    fn raw(&self, value: &Value, path: Option<&str>) -> Result<Option<Node>> {
        // `filters ? Object.keys(filters) : []`
        let keywords: Vec<String> = match value {
            Value::Object(map) => js::keys(map)
                .into_iter()
                .map(|(k, _)| k.to_owned())
                .collect(),
            Value::Array(items) => (0..items.len()).map(|i| i.to_string()).collect(),
            Value::String(s) => (0..js::utf16_len(s)).map(|i| i.to_string()).collect(),
            _ => Vec::new(),
        };
        if keywords.is_empty() {
            return Ok(None);
        }
        if keywords.len() > 1 {
            return Err(FilterError::parse(
                "Invalid filter syntax. Filters must have one keyword only",
                &keywords.join(","),
                path,
            ));
        }
        let keyword = keywords[0].as_str();
        let kpath = path_add(path, keyword);
        if !KEYWORDS.contains(&keyword) {
            return Err(FilterError::parse("unknown keyword", keyword, Some(&kpath)));
        }
        // Only objects can have a known keyword.
        let arg = value.as_object().and_then(|m| m.get(keyword));
        let node = match keyword {
            "and" | "or" => {
                let is_and = keyword == "and";
                let items = is_array(arg, keyword, &kpath, true, false)?;
                self.filter_array(items.iter().map(Input::Raw).collect(), is_and, &kpath)?
            }
            "not" => {
                is_object(
                    arg,
                    "not",
                    &kpath,
                    &ObjectRules {
                        properties: Some(1),
                        ..Default::default()
                    },
                )?;
                self.not(Input::Raw(arg.unwrap_or(&Value::Null)), &kpath)?
            }
            "bool" => self.bool(arg, &kpath)?,
            "equals" => self.equals(arg, &kpath)?,
            "exists" => Node::Cond(self.exists(arg, &kpath, "exists")?),
            "missing" => Node::Not(Box::new(Node::Cond(self.exists(arg, &kpath, "missing")?))),
            "ids" => self.ids(arg, &kpath)?,
            "in" => self.in_(arg, &kpath)?,
            "nothing" => Node::Cond(Cond::Nothing),
            "range" => self.range(arg, &kpath)?,
            "regexp" => self.regexp(arg, &kpath)?,
            "match" => {
                let map = is_object(
                    arg,
                    "match",
                    &kpath,
                    &ObjectRules {
                        non_empty: true,
                        ..Default::default()
                    },
                )?;
                Node::Cond(Cond::Match { value: map.clone() })
            }
            "select" => self.select(arg, &kpath)?,
            "geoBoundingBox" => self.geo_bounding_box(arg, &kpath)?,
            "geoDistance" => self.geo_distance(arg, &kpath)?,
            "geoDistanceRange" => self.geo_distance_range(arg, &kpath)?,
            "geoPolygon" => self.geo_polygon(arg, &kpath)?,
            _ => unreachable!("keyword list and dispatch agree"),
        };
        Ok(Some(node))
    }

    /// Standardizes a tree that is already standardized, as Koncorde does when it rebuilds an
    /// `and`/`or` or pushes a `not` down. Geo conditions have become `geospatial`, which is not
    /// a keyword: Koncorde rejects them at this point, and so do we.
    fn restandardize(&self, node: Node, path: Option<&str>) -> Result<Node> {
        match node {
            Node::Cond(Cond::Geo { .. }) => Err(FilterError::parse(
                "unknown keyword",
                "geospatial",
                Some(&path_add(path, "geospatial")),
            )),
            Node::Cond(cond) => Ok(Node::Cond(cond)),
            Node::Not(inner) => self.not(Input::Std(*inner), &path_add(path, "not")),
            Node::Op { is_and, items, .. } => {
                let p = path_add(path, op_name(is_and));
                self.filter_array(items.into_iter().map(Input::Std).collect(), is_and, &p)
            }
        }
    }

    fn must(&self, input: Input<'_>, path: &str) -> Result<Node> {
        Ok(self
            .run(input, Some(path))?
            .expect("only the root can be empty"))
    }

    /// `not`: `path` already ends with `not`. The argument has been checked to be an object
    /// with one key.
    fn not(&self, input: Input<'_>, path: &str) -> Result<Node> {
        let result = self.must(input, path)?;
        match result {
            Node::Op { is_and, items, .. } => {
                let mut leaf = true;
                let mut subs = Vec::with_capacity(items.len());
                for item in items {
                    // `this.standardize({not: f})`, without a path.
                    let sub = self.not(Input::Std(item), "not")?;
                    if matches!(sub, Node::Op { .. }) {
                        leaf = false;
                    }
                    subs.push(sub);
                }
                Ok(Node::Op {
                    is_and: !is_and,
                    items: subs,
                    leaf,
                })
            }
            Node::Not(inner) => Ok(*inner),
            other => Ok(Node::Not(Box::new(other))),
        }
    }

    /// Koncorde's `_standardizeFilterArray`.
    fn filter_array(&self, items: Vec<Input<'_>>, is_and: bool, path: &str) -> Result<Node> {
        let operand = op_name(is_and);
        for item in &items {
            if let Input::Raw(v) = item {
                if !matches!(v, Value::Object(m) if !m.is_empty()) {
                    return Err(FilterError::parse(
                        "can only contain non-empty objects",
                        operand,
                        Some(path),
                    ));
                }
            }
        }
        let mut subs = Vec::with_capacity(items.len());
        for item in items {
            subs.push(self.must(item, path)?);
        }
        let mut leaf = true;
        let mut leaves = Vec::new();
        let mut and_ors = Vec::new();
        for sub in subs {
            match sub {
                Node::Op {
                    is_and: sub_and,
                    items,
                    leaf: sub_leaf,
                } if sub_and == is_and => {
                    leaves.extend(items);
                    if !sub_leaf {
                        leaf = false;
                    }
                }
                sub @ Node::Op { .. } => {
                    leaf = false;
                    and_ors.push(sub);
                }
                sub => leaves.push(sub),
            }
        }
        if !leaf && leaves.len() > 1 {
            let regrouped = Node::Op {
                is_and,
                items: leaves,
                leaf: true,
            };
            and_ors.push(self.restandardize(regrouped, Some(path))?);
            return Ok(Node::Op {
                is_and,
                items: and_ors,
                leaf: false,
            });
        }
        and_ors.extend(leaves);
        if and_ors.len() == 1 {
            return Ok(and_ors.pop().expect("one item"));
        }
        Ok(Node::Op {
            is_and,
            items: and_ors,
            leaf,
        })
    }

    fn bool(&self, arg: Option<&Value>, path: &str) -> Result<Node> {
        let map = is_object(
            arg,
            "bool",
            path,
            &ObjectRules {
                allowed: &BOOL_ATTRIBUTES,
                non_empty: true,
                ..Default::default()
            },
        )?;
        let mut items: Vec<Input<'_>> = Vec::new();
        if let Some(must) = map.get("must").filter(|v| js::truthy(v)) {
            match must {
                Value::Array(list) => items.extend(list.iter().map(Input::Raw)),
                other => items.push(Input::Raw(other)),
            }
        }
        if let Some(v) = map.get("must_not").filter(|v| js::truthy(v)) {
            items.push(Input::Not(Box::new(Input::Op {
                is_and: false,
                array: v,
            })));
        }
        if let Some(v) = map.get("should").filter(|v| js::truthy(v)) {
            items.push(Input::Op {
                is_and: false,
                array: v,
            });
        }
        if let Some(v) = map.get("should_not").filter(|v| js::truthy(v)) {
            items.push(Input::Not(Box::new(Input::Op {
                is_and: true,
                array: v,
            })));
        }
        self.must(Input::Items(items), path)
    }

    fn equals(&self, arg: Option<&Value>, path: &str) -> Result<Node> {
        let map = is_object(
            arg,
            "equals",
            path,
            &ObjectRules {
                properties: Some(1),
                ..Default::default()
            },
        )?;
        let (field, value) = js::keys(map)[0];
        if matches!(value, Value::Object(_) | Value::Array(_)) {
            return Err(FilterError::parse(
                "must either be a string, a number, a boolean, or null",
                "equals",
                Some(&format!("{path}.{field}")),
            ));
        }
        Ok(Node::Cond(Cond::Equals {
            field: field.to_owned(),
            value: value.clone(),
        }))
    }

    fn exists(&self, arg: Option<&Value>, path: &str, name: &str) -> Result<Cond> {
        if let Some(Value::String(s)) = arg {
            if s.is_empty() {
                return Err(FilterError::parse(
                    "cannot test empty field name",
                    name,
                    Some(path),
                ));
            }
            return parse_field_syntax(s, name, path);
        }
        let map = is_object(
            arg,
            name,
            path,
            &ObjectRules {
                properties: Some(1),
                required: &["field"],
                ..Default::default()
            },
        )?;
        let field_path = format!("{path}.field");
        let field = is_string(map.get("field"), name, &field_path)?;
        parse_field_syntax(field, name, &field_path)
    }

    fn ids(&self, arg: Option<&Value>, path: &str) -> Result<Node> {
        let map = is_object(
            arg,
            "ids",
            path,
            &ObjectRules {
                properties: Some(1),
                required: &["values"],
                ..Default::default()
            },
        )?;
        let values = is_array(
            map.get("values"),
            "ids",
            &format!("{path}.values"),
            true,
            true,
        )?;
        Ok(equals_group("_id", values))
    }

    fn in_(&self, arg: Option<&Value>, path: &str) -> Result<Node> {
        let map = is_object(
            arg,
            "in",
            path,
            &ObjectRules {
                properties: Some(1),
                ..Default::default()
            },
        )?;
        let (field, value) = js::keys(map)[0];
        let values = is_array(Some(value), "in", &format!("{path}.{field}"), true, true)?;
        Ok(equals_group(field, values))
    }

    fn range(&self, arg: Option<&Value>, path: &str) -> Result<Node> {
        let map = is_object(
            arg,
            "range",
            path,
            &ObjectRules {
                properties: Some(1),
                ..Default::default()
            },
        )?;
        let (field, value) = js::keys(map)[0];
        let field_path = format!("{path}.{field}");
        let bounds = is_object(
            Some(value),
            "range",
            &field_path,
            &ObjectRules {
                allowed: &["gt", "gte", "lt", "lte"],
                non_empty: true,
                ..Default::default()
            },
        )?;
        let mut high = f64::INFINITY;
        let mut low = f64::NEG_INFINITY;
        let mut out = Vec::with_capacity(2);
        for (key, value) in js::keys(bounds) {
            let Value::Number(n) = value else {
                return Err(FilterError::parse(
                    "must be a number",
                    "range",
                    Some(&format!("{field_path}.{key}")),
                ));
            };
            let n = js::num(n);
            let op = match key {
                "gt" => RangeOp::Gt,
                "gte" => RangeOp::Gte,
                "lt" => RangeOp::Lt,
                _ => RangeOp::Lte,
            };
            if matches!(op, RangeOp::Lt | RangeOp::Lte) {
                if high != f64::INFINITY {
                    return Err(FilterError::parse(
                        "only 1 upper boundary allowed",
                        "range",
                        Some(&field_path),
                    ));
                }
                high = n;
            } else {
                if low != f64::NEG_INFINITY {
                    return Err(FilterError::parse(
                        "only 1 lower boundary allowed",
                        "range",
                        Some(&field_path),
                    ));
                }
                low = n;
            }
            out.push((op, n));
        }
        if high <= low {
            return Err(FilterError::parse(
                "lower boundary must be strictly inferior to the upper one",
                "range",
                Some(&field_path),
            ));
        }
        Ok(Node::Cond(Cond::Range {
            field: field.to_owned(),
            bounds: out,
        }))
    }

    fn regexp(&self, arg: Option<&Value>, path: &str) -> Result<Node> {
        let map = is_object(
            arg,
            "regexp",
            path,
            &ObjectRules {
                properties: Some(1),
                ..Default::default()
            },
        )?;
        let (field, spec) = js::keys(map)[0];
        let field_path = format!("{path}.{field}");
        let (pattern, flags): (&Value, Option<&str>) = match spec {
            Value::String(_) => (spec, None),
            Value::Object(_) => {
                let obj = is_object(
                    Some(spec),
                    "regexp",
                    &field_path,
                    &ObjectRules {
                        allowed: &["flags", "value"],
                        non_empty: true,
                        required: &["value"],
                        ..Default::default()
                    },
                )?;
                let mut flags = None;
                if let Some(f) = obj.get("flags").filter(|v| js::truthy(v)) {
                    flags = Some(is_string(
                        Some(f),
                        "regexp",
                        &format!("{field_path}.flags"),
                    )?);
                }
                (&obj["value"], flags)
            }
            _ => {
                return Err(FilterError::parse(
                    "must be either a string or a non-empty object",
                    "regexp",
                    Some(&field_path),
                ))
            }
        };
        let shown = js::to_string(pattern);
        // Compiled here, once: the matcher uses this program (issue 19: it compiled it again
        // for every term of the normal form).
        let compiled = match pattern {
            Value::String(p) => re2::compile(p, flags.unwrap_or(""), self.regexp_size_limit),
            _ => Err("Expected string, Buffer, RegExp, or RE2 as the 1st argument.".to_owned()),
        };
        let regex = match compiled {
            Ok(regex) => CompiledRegex(Arc::new(regex)),
            Err(reason) => {
                return Err(FilterError::parse(
                    format!(
                        "cannot parse regexp expression \"/{shown}/{}\" ({reason})",
                        flags.unwrap_or("undefined")
                    ),
                    "regexp",
                    Some(&field_path),
                ))
            }
        };
        Ok(Node::Cond(Cond::Regexp {
            field: field.to_owned(),
            pattern: shown,
            flags: flags.map(str::to_owned),
            regex,
        }))
    }

    fn select(&self, arg: Option<&Value>, path: &str) -> Result<Node> {
        let map = is_object(
            arg,
            "select",
            path,
            &ObjectRules {
                properties: Some(3),
                ..Default::default()
            },
        )?;
        let field = is_string(map.get("field"), "select", &format!("{path}.field"))?;
        let index_path = format!("{path}.index");
        let Some(Value::Number(index)) = map.get("index") else {
            return Err(FilterError::parse(
                "must be an integer",
                "select",
                Some(&index_path),
            ));
        };
        let index = js::num(index);
        if index.floor() != index {
            return Err(FilterError::parse(
                "cannot have decimals, must be an integer",
                "select",
                Some(&index_path),
            ));
        }
        let query_path = format!("{path}.query");
        let query = map.get("query");
        is_object(
            query,
            "select",
            &query_path,
            &ObjectRules {
                non_empty: true,
                ..Default::default()
            },
        )?;
        let query = query.expect("checked to be an object");
        self.run(Input::Raw(query), Some(&query_path))?;
        Ok(Node::Cond(Cond::Select {
            field: field.to_owned(),
            index: index as i64,
            query: query.clone(),
        }))
    }

    fn geo_bounding_box(&self, arg: Option<&Value>, path: &str) -> Result<Node> {
        let map = is_object(
            arg,
            "geoBoundingBox",
            path,
            &ObjectRules {
                properties: Some(1),
                ..Default::default()
            },
        )?;
        let (field, value) = js::keys(map)[0];
        let field_path = format!("{path}.{field}");
        let shape =
            geo::bounding_box(value).map_err(|e| e.into_error("geoBoundingBox", &field_path))?;
        Ok(geo_node(field, shape))
    }

    fn geo_distance(&self, arg: Option<&Value>, path: &str) -> Result<Node> {
        let map = is_object(
            arg,
            "geoDistance",
            path,
            &ObjectRules {
                properties: Some(2),
                required: &["distance"],
                ..Default::default()
            },
        )?;
        let distance = is_string(
            map.get("distance"),
            "geoDistance",
            &format!("{path}.distance"),
        )?;
        let (field, value) = js::keys(map)
            .into_iter()
            .find(|(k, _)| *k != "distance")
            .expect("two properties, one is distance");
        let Some((lat, lon)) = geo::convert_geopoint(value) else {
            return Err(FilterError::parse(
                "unrecognized point format",
                "geoDistance",
                Some(&format!("{path}.{field}")),
            ));
        };
        let distance = geo::convert_distance(distance)?;
        Ok(geo_node(
            field,
            GeoShape::Circle {
                lat,
                lon,
                radius: distance,
            },
        ))
    }

    fn geo_distance_range(&self, arg: Option<&Value>, path: &str) -> Result<Node> {
        let map = is_object(
            arg,
            "geoDistanceRange",
            path,
            &ObjectRules {
                properties: Some(3),
                required: &["from", "to"],
                ..Default::default()
            },
        )?;
        let (field, value) = js::keys(map)
            .into_iter()
            .find(|(k, _)| *k != "from" && *k != "to")
            .expect("three properties, two are from and to");
        let from = is_string(map.get("from"), "geoDistanceRange", &format!("{path}.from"))?;
        let from = geo::convert_distance(from)?;
        let to = is_string(map.get("to"), "geoDistanceRange", &format!("{path}.to"))?;
        let to = geo::convert_distance(to)?;
        if from >= to {
            return Err(FilterError::parse(
                "inner radius must be smaller than outer radius",
                "geoDistanceRange",
                Some(path),
            ));
        }
        let Some((lat, lon)) = geo::convert_geopoint(value) else {
            return Err(FilterError::parse(
                "unrecognized point format",
                "geoDistanceRange",
                Some(&format!("{path}.{field}")),
            ));
        };
        Ok(geo_node(
            field,
            GeoShape::Annulus {
                lat,
                lon,
                inner: from,
                outer: to,
            },
        ))
    }

    fn geo_polygon(&self, arg: Option<&Value>, path: &str) -> Result<Node> {
        let map = is_object(
            arg,
            "geoPolygon",
            path,
            &ObjectRules {
                properties: Some(1),
                ..Default::default()
            },
        )?;
        let (field, value) = js::keys(map)[0];
        let field_path = format!("{path}.{field}");
        let obj = is_object(
            Some(value),
            "geoPolygon",
            &field_path,
            &ObjectRules {
                properties: Some(1),
                required: &["points"],
                ..Default::default()
            },
        )?;
        let points_path = format!("{field_path}.points");
        let points = is_array(obj.get("points"), "geoPolygon", &points_path, false, false)?;
        if points.len() < 3 {
            return Err(FilterError::parse(
                "at least 3 points are required to build a polygon",
                "geoPolygon",
                Some(&points_path),
            ));
        }
        let mut vertices = Vec::with_capacity(points.len());
        for point in points {
            let Some(p) = geo::convert_geopoint(point) else {
                return Err(FilterError::parse(
                    format!(
                        "unrecognized point format \"{}\"",
                        js::json_stringify(point)
                    ),
                    "geoPolygon",
                    Some(&points_path),
                ));
            };
            vertices.push(p);
        }
        Ok(geo_node(field, GeoShape::Polygon(vertices)))
    }
}

fn geo_node(field: &str, shape: GeoShape) -> Node {
    Node::Cond(Cond::Geo {
        field: field.to_owned(),
        shape,
    })
}

/// `in` and `ids`: an `or` of `equals`, marked as a leaf.
fn equals_group(field: &str, values: &[Value]) -> Node {
    let items = values
        .iter()
        .map(|v| {
            Node::Cond(Cond::Equals {
                field: field.to_owned(),
                value: v.clone(),
            })
        })
        .collect();
    Node::Op {
        is_and: false,
        items,
        leaf: true,
    }
}

/// Koncorde's `parseFieldSyntax`: `path` or `path["json value"]` (an array must hold the value).
fn parse_field_syntax(field: &str, keyword: &str, path: &str) -> Result<Cond> {
    use std::sync::OnceLock;
    static ARRAY_FIELD: OnceLock<regex::Regex> = OnceLock::new();
    static ESCAPED_BRACKET: OnceLock<regex::Regex> = OnceLock::new();
    // JavaScript's `.` stops at line terminators; `[^\\]` does not.
    let array_field = ARRAY_FIELD.get_or_init(|| {
        regex::Regex::new(r"^([^\n\r\u2028\u2029]*?[^\\])\[([^\n\r\u2028\u2029]*)\]$")
            .expect("valid")
    });
    let escaped = ESCAPED_BRACKET.get_or_init(|| regex::Regex::new(r"\\([\[\]])").expect("valid"));

    let (raw_path, array, value) = match array_field.captures(field) {
        Some(caps) => {
            let raw_value = caps.get(2).map_or("", |m| m.as_str());
            let value: Value = serde_json::from_str(raw_value).map_err(|_| {
                FilterError::parse(
                    format!("contains an invalid array value (\"{raw_value}\")"),
                    keyword,
                    Some(path),
                )
            })?;
            (caps.get(1).map_or("", |m| m.as_str()), true, value)
        }
        None => (field, false, Value::Null),
    };
    let clean = escaped.replace_all(raw_path, "$1").into_owned();
    Ok(Cond::Exists {
        path: clean,
        array,
        value,
    })
}
