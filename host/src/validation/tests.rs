//! The checker against Kuzzle's own messages (`lib/core/validation`, `lib/kerror/codes`).

use serde_json::{json, Map, Value};

use super::{Invalid, Specification};

fn compile(spec: Value) -> Result<Specification, Invalid> {
    Specification::compile("i", "c", &spec)
}

fn listed(spec: Value) -> Vec<String> {
    match compile(spec) {
        Err(Invalid::Listed(messages)) => messages,
        other => panic!("expected listed problems, got {other:?}"),
    }
}

fn thrown(spec: Value) -> String {
    match compile(spec) {
        Err(invalid @ Invalid::Thrown(_)) => invalid.joined(),
        other => panic!("expected a thrown error, got {other:?}"),
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

/// The first problem of `document` as Kuzzle's non-verbose check reports it.
fn first(spec: &Specification, document: Value) -> Option<(Option<String>, String)> {
    spec.first_problem(None, &object(document))
}

fn field_problem(field: &str, message: &str) -> Option<(Option<String>, String)> {
    Some((Some(field.to_string()), message.to_string()))
}

#[test]
fn specifications_are_refused_with_kuzzles_messages() {
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"foo": 1}), vec!["The object \"i.c\" contains unexpected properties (allowed: strict, fields, validators)."]),
        (json!({"fields": {"a": {"type": "nope"}}}), vec!["In \"i.c.a\": unknown type \"nope\"."]),
        // A missing type is also an unknown one, as in Kuzzle.
        (json!({"fields": {"a": {}}}), vec!["Missing property \"type\" in field \"i.c.a\".", "In \"i.c.a\": unknown type \"undefined\"."]),
        (json!({"fields": {"a": {"type": "string", "foo": 1}}}), vec!["The object \"i.c.a\" contains unexpected properties (allowed: mandatory, type, defaultValue, description, multivalued, typeOptions)."]),
        (json!({"fields": {"a": {"type": "string", "multivalued": {"minCount": 1}}}}), vec![
            "Missing property \"value\" in field \"i.c.a.multivalued\".",
            "Wrong type for parameter \"i.c.a.multivalued.value\" (expected: boolean).",
            "Field \"i.c.a\": cannot set a property \"minCount\" if the field is not multivalued.",
        ]),
        (json!({"fields": {"a": {"type": "string", "multivalued": {"value": true, "minCount": 3, "maxCount": 2}}}}), vec!["Property \"i.c.a\": invalid range (minCount > maxCount)."]),
        (json!({"fields": {"a": {"type": "boolean", "typeOptions": {"x": 1}}}}), vec!["The object \"i.c.a\" contains unexpected properties (allowed: )."]),
        (json!({"fields": {"a": {"type": "string", "typeOptions": {"length": {"min": "1"}}}}}), vec!["Wrong type for parameter \"length.min\" (expected: number)."]),
        (json!({"fields": {"a": {"type": "string", "typeOptions": {"length": {"min": 3, "max": 1}}}}}), vec!["Property \"length\": invalid range (min > max)."]),
        (json!({"fields": {"a": {"type": "string", "typeOptions": {"length": {"least": 3}}}}}), vec!["The object \"length\" contains unexpected properties (allowed: min, max)."]),
        (json!({"fields": {"a": {"type": "numeric", "typeOptions": {"range": {"min": 3, "max": 1}}}}}), vec!["Property \"range\": invalid range (min > max)."]),
        (json!({"fields": {"a": {"type": "integer", "typeOptions": {"range": {"max": true}}}}}), vec!["Wrong type for parameter \"range.max\" (expected: number)."]),
        (json!({"fields": {"a": {"type": "email", "typeOptions": {"notEmpty": 1}}}}), vec!["Wrong type for parameter \"notEmpty\" (expected: boolean)."]),
        (json!({"fields": {"a": {"type": "enum"}}}), vec!["The \"enum\" type requires a \"values\" property holding the list of the enum values."]),
        (json!({"fields": {"a": {"type": "enum", "typeOptions": {"values": [1]}}}}), vec!["Wrong type for parameter \"values\" (expected: string[])."]),
        (json!({"fields": {"a": {"type": "object", "typeOptions": {"strict": "yes"}}}}), vec!["Wrong type for parameter \"strict\" (expected: boolean)."]),
        (json!({"fields": {"a": {"type": "date", "typeOptions": {"formats": []}}}}), vec!["Wrong type for parameter \"formats\" (expected: non-empty array)."]),
        (json!({"fields": {"a": {"type": "date", "typeOptions": {"formats": ["nope", "strict_date", "bad"]}}}}), vec!["The following date types are invalid: nope, bad."]),
        (json!({"fields": {"a": {"type": "date", "typeOptions": {"range": {"min": "yesterday"}}}}}), vec!["Cannot parse the date value: \"yesterday\"."]),
        (json!({"fields": {"a": {"type": "date", "typeOptions": {"range": {"min": "2020-01-02", "max": "2020-01-01"}}}}}), vec!["Property \"range\": invalid range (min > max)."]),
        (json!({"fields": {"a": {"type": "geo_shape", "typeOptions": {"shapeTypes": ["point", "blob"]}}}}), vec!["The following shapes are invalid: [ 'blob' ]."]),
        (json!({"fields": {"a": {"type": "geo_shape", "typeOptions": {"shapeTypes": "point"}}}}), vec!["Wrong type for parameter \"shapeTypes\" (expected: string[])."]),
    ];
    for (spec, expected) in cases {
        assert_eq!(listed(spec.clone()), expected, "{spec}");
    }
    // Problems of several fields are all listed.
    assert_eq!(
        listed(
            json!({"fields": {"a": {"type": "nope"}, "b": {"type": "string", "typeOptions": {"x": 1}}}})
        ),
        vec![
            "In \"i.c.a\": unknown type \"nope\".",
            "The object \"i.c.b\" contains unexpected properties (allowed: length).",
        ]
    );
}

#[test]
fn nesting_and_validator_errors_are_thrown_as_kuzzle_throws_them() {
    assert_eq!(
        thrown(json!({"fields": {"a/b": {"type": "string"}}})),
        "PreconditionError: All levels of an object have to be defined in the specification."
    );
    assert_eq!(
        thrown(json!({"fields": {"a": {"type": "object"}, "b/c": {"type": "string"}}})),
        "PreconditionError: The parent field of the field \"b.c\" is not defined."
    );
    assert_eq!(
        thrown(json!({"fields": {"a": {"type": "string"}, "a/c": {"type": "string"}}})),
        "PreconditionError: The field type \"string\" is not allowed to have children fields."
    );
    let invalid = compile(json!({"validators": [{"nope": {}}]})).unwrap_err();
    assert_eq!(
        invalid.joined(),
        "BadRequestError: Invalid filters validator: \"bool.and.nope\": unknown keyword"
    );
    assert_eq!(
        invalid.details()[0]["id"],
        "validation.assert.invalid_filters"
    );
    assert_eq!(invalid.details()[0]["code"], 83951629);
    assert_eq!(
        compile(json!({"fields": {"a/b": {"type": "string"}}}))
            .unwrap_err()
            .details()[0]["code"],
        83951617
    );
}

#[test]
fn every_type_refuses_a_bad_value_with_its_message() {
    let spec = |kind: &str, options: Value| {
        compile(json!({"fields": {"f": {"type": kind, "typeOptions": options}}}))
            .expect("valid specifications")
    };
    let cases: Vec<(&str, Value, Value, Option<&str>)> = vec![
        (
            "boolean",
            json!({}),
            json!(1),
            Some("The field must be of type boolean."),
        ),
        ("boolean", json!({}), json!(false), None),
        (
            "numeric",
            json!({}),
            json!("1"),
            Some("The field must be a number."),
        ),
        (
            "numeric",
            json!({"range": {"min": 2}}),
            json!(1.5),
            Some("Value 1.5 is lesser than the allowed minimum (2)"),
        ),
        (
            "numeric",
            json!({"range": {"max": 2}}),
            json!(3),
            Some("Value 3 is greater than the allowed maximum (2)"),
        ),
        (
            "integer",
            json!({}),
            json!(1.5),
            Some("The field must be an integer."),
        ),
        ("integer", json!({}), json!(2.0), None),
        (
            "integer",
            json!({"range": {"min": 2}}),
            json!(1.5),
            Some("Value 1.5 is lesser than the allowed minimum (2)"),
        ),
        (
            "string",
            json!({}),
            json!(1),
            Some("The field must be a string."),
        ),
        (
            "string",
            json!({"length": {"min": 3}}),
            json!("ab"),
            Some("Invalid string length. Expected min: 3. Received: 2 (\"ab\")"),
        ),
        (
            "string",
            json!({"length": {"max": 1}}),
            json!("ab"),
            Some("Invalid string length. Expected max: 1. Received: 2 (\"ab\")"),
        ),
        (
            "email",
            json!({}),
            json!("a@b"),
            Some("The string must be a valid email address."),
        ),
        ("email", json!({}), json!("someone@example.com"), None),
        ("email", json!({}), json!(""), None),
        (
            "email",
            json!({"notEmpty": true}),
            json!(""),
            Some("The string must not be empty."),
        ),
        (
            "url",
            json!({}),
            json!("not a url"),
            Some("The string must be a valid URL."),
        ),
        ("url", json!({}), json!("https://example.com/a?b=c"), None),
        ("url", json!({}), json!("example.com"), None),
        (
            "ip_address",
            json!({}),
            json!("1.2.3.256"),
            Some("The string must be a valid IP address."),
        ),
        ("ip_address", json!({}), json!("::1"), None),
        (
            "ip_address",
            json!({}),
            json!(5),
            Some("The field must be a string."),
        ),
        (
            "enum",
            json!({"values": ["a", "b"]}),
            json!("c"),
            Some("The field only accepts following values: \"a, b\"."),
        ),
        (
            "enum",
            json!({"values": ["a", "b"]}),
            json!(1),
            Some("The field must be a string."),
        ),
        (
            "object",
            json!({}),
            json!("x"),
            Some("The value must be an object."),
        ),
        (
            "geo_point",
            json!({}),
            json!({"lat": 1}),
            Some("Invalid GeoPoint format"),
        ),
        ("geo_point", json!({}), json!({"lat": 1, "lon": 2}), None),
        (
            "geo_shape",
            json!({}),
            json!({"coordinates": [1, 2]}),
            Some("The shape object has no type defined."),
        ),
        (
            "geo_shape",
            json!({}),
            json!({"type": "point", "coordinates": [200, 2]}),
            Some("The shape type \"point\" has bad coordinates."),
        ),
        (
            "geo_shape",
            json!({"shapeTypes": ["point"]}),
            json!({"type": "circle", "coordinates": [1, 2], "radius": 3}),
            Some("The provided shape type is not allowed."),
        ),
        (
            "geo_shape",
            json!({}),
            json!({"type": "circle", "coordinates": [1, 2], "radius": "far"}),
            Some("The radius property has not a valid format."),
        ),
        (
            "geo_shape",
            json!({}),
            json!({"type": "circle", "coordinates": [1, 2], "radius": "10km"}),
            None,
        ),
        (
            "date",
            json!({}),
            json!("2020-01-01"),
            Some("The date format is invalid."),
        ),
        (
            "date",
            json!({"formats": ["strict_date"]}),
            json!("2020-01-01"),
            None,
        ),
        (
            "date",
            json!({"formats": ["strict_date"], "range": {"min": "2021-01-01"}}),
            json!("2020-01-01"),
            Some("The provided date is before the defined minimum."),
        ),
        (
            "date",
            json!({"range": {"max": "NOW"}}),
            json!(4_102_444_800_000_u64),
            Some("The provided date is after the defined maximum."),
        ),
        (
            "anything",
            json!({}),
            json!([{}]),
            Some("The field is not a multivalued field; Multiple values provided."),
        ),
    ];
    for (kind, options, value, expected) in cases {
        let specification = spec(kind, options.clone());
        assert_eq!(
            first(&specification, json!({ "f": value })),
            expected.and_then(|message| field_problem("f", message)),
            "{kind} {options} {value}"
        );
    }
}

#[test]
fn nested_fields_strictness_arity_and_the_verbose_shape() {
    let specification = compile(json!({"strict": true, "fields": {
        "name": {"type": "string", "mandatory": true},
        "address": {"type": "object", "typeOptions": {"strict": true}},
        "address/city": {"type": "string", "mandatory": true},
        "address/geo": {"type": "object"},
        "address/geo/lat": {"type": "numeric"},
        "tags": {"type": "string", "multivalued": {"value": true, "minCount": 1, "maxCount": 2}},
    }}))
    .expect("valid specifications");
    assert_eq!(
        first(
            &specification,
            json!({"name": "n", "address": {"city": "c", "geo": {"lat": 1}}, "tags": ["a"]})
        ),
        None
    );
    assert_eq!(
        first(&specification, json!({"name": "n", "address": {}})),
        field_problem("address.city", "The field is mandatory.")
    );
    assert_eq!(
        first(
            &specification,
            json!({"name": "n", "address": {"city": "c", "geo": {"lat": "x"}}})
        ),
        field_problem("address.geo.lat", "The field must be a number.")
    );
    assert_eq!(
        first(
            &specification,
            json!({"name": "n", "address": {"city": "c", "zip": 1}})
        ),
        field_problem(
            "address",
            "The field is set to \"strict\"; cannot add unspecified sub-field \"zip\"."
        )
    );
    assert_eq!(
        first(&specification, json!({"name": "n", "tags": []})),
        field_problem("tags", "Not enough elements. Minimum count is set to 1.")
    );
    assert_eq!(
        first(
            &specification,
            json!({"name": "n", "tags": ["a", "b", "c"]})
        ),
        field_problem("tags", "Too many elements. Maximum count is set to 2.")
    );
    assert_eq!(
        first(&specification, json!({"name": "n", "extra": 1})),
        Some((
            None,
            "The document validation is strict. Cannot add unspecified sub-field \"extra\""
                .to_string()
        ))
    );
    // Verbose: every problem, nested under `children`; a root strictness problem alone stops
    // the field checks.
    let verbose = specification.check(
        None,
        &object(json!({"address": {"city": 1, "geo": {"lat": "x"}}, "tags": "a"})),
    );
    assert_eq!(
        Value::Object(verbose),
        json!({"fieldScope": {"children": {
            "name": {"messages": ["The field is mandatory."]},
            "address": {"children": {
                "city": {"messages": ["The field must be a string."]},
                "geo": {"children": {"lat": {"messages": ["The field must be a number."]}}},
            }},
            "tags": {"messages": ["The field must be multivalued, unary value provided."]},
        }}})
    );
    let verbose = specification.check(None, &object(json!({"extra": 1})));
    assert_eq!(
        Value::Object(verbose),
        json!({"documentScope": ["The document validation is strict. Cannot add unspecified sub-field \"extra\""]})
    );
}

#[test]
fn defaults_fill_absent_fields_and_nulls_on_update_only() {
    let specification = compile(json!({"fields": {
        "a": {"type": "string", "defaultValue": "x", "mandatory": true},
        "zero": {"type": "integer", "defaultValue": 0},
        "o": {"type": "object"},
        "o/b": {"type": "integer", "defaultValue": 7},
    }}))
    .expect("valid specifications");
    // Mandatory with a default: never missing.
    assert_eq!(first(&specification, json!({})), None);
    let mut created = object(json!({"o": {}}));
    specification.apply_defaults(&mut created, false);
    // A falsy default is never applied (Kuzzle's truthiness test); objects are walked into.
    assert_eq!(Value::Object(created), json!({"o": {"b": 7}, "a": "x"}));
    let mut changes = object(json!({"a": null, "o": [{"b": null}, {}]}));
    specification.apply_defaults(&mut changes, true);
    assert_eq!(
        Value::Object(changes),
        json!({"a": "x", "o": [{"b": 7}, {}]})
    );
    assert!(specification.has_defaults());
}

#[test]
fn validators_are_koncorde_filters_the_document_must_match() {
    let specification = compile(json!({
        "fields": {"age": {"type": "integer"}},
        "validators": [{"range": {"age": {"gte": 18}}}, {"not": {"ids": {"values": ["banned"]}}}],
    }))
    .expect("valid specifications");
    let document = |value: Value| object(value);
    assert_eq!(
        specification.first_problem(Some("ok"), &document(json!({"age": 20}))),
        None
    );
    let refused = Some((
        None,
        "The document does not match validation filters.".to_string(),
    ));
    assert_eq!(
        specification.first_problem(Some("ok"), &document(json!({"age": 10}))),
        refused
    );
    assert_eq!(
        specification.first_problem(Some("banned"), &document(json!({"age": 20}))),
        refused
    );
    // A field problem comes first and stops the check.
    assert_eq!(
        specification.first_problem(Some("ok"), &document(json!({"age": "x"}))),
        field_problem("age", "The field must be a number.")
    );
    // Verbose: both.
    assert_eq!(
        Value::Object(specification.check(Some("ok"), &document(json!({"age": 1.5})))),
        json!({
            "documentScope": ["The document does not match validation filters."],
            "fieldScope": {"children": {"age": {"messages": ["The field must be an integer."]}}},
        })
    );
}
