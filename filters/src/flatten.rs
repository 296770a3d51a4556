//! Document flattening (Koncorde's `flattenObject`) and field lookups with V8's quirks.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::js;
use crate::FastMap as HashMap;

/// A document seen as Koncorde sees it: every nested object also reachable by its dotted path
/// (`{a: {b: 1}}` has keys `a` and `a.b`). Arrays are not descended into.
#[derive(Debug, Default)]
pub(crate) struct Flat<'a> {
    /// Dotted path -> value. Top-level keys are borrowed; nested ones are built.
    entries: HashMap<Cow<'a, str>, &'a Value>,
}

/// What `document[key]` yields in JavaScript.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Lookup<'a> {
    /// `undefined`.
    Missing,
    /// An own property.
    Value(&'a Value),
    /// A property inherited from `Object.prototype` (`constructor`, `toString`, …): a function,
    /// or for `__proto__` the prototype object.
    Inherited(&'static str),
}

/// Names of `Object.prototype` properties, which every JavaScript object "has".
const INHERITED: [&str; 12] = [
    "constructor",
    "__defineGetter__",
    "__defineSetter__",
    "hasOwnProperty",
    "__lookupGetter__",
    "__lookupSetter__",
    "isPrototypeOf",
    "propertyIsEnumerable",
    "toString",
    "valueOf",
    "__proto__",
    "toLocaleString",
];

impl<'a> Flat<'a> {
    /// Flattens `document` (an object; arrays are read by index, other values are empty).
    pub(crate) fn new(document: &'a Value) -> Self {
        let mut flat = Flat {
            entries: HashMap::default(),
        };
        match document {
            Value::Object(map) => flat.step(map, None),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    flat.entries.insert(Cow::Owned(i.to_string()), item);
                }
            }
            _ => {}
        }
        flat
    }

    /// A document `{value: <value>}`, as `select` builds.
    pub(crate) fn wrap(value: &'a Value) -> Self {
        let mut flat = Flat {
            entries: HashMap::default(),
        };
        flat.entries.insert(Cow::Borrowed("value"), value);
        if let Value::Object(map) = value {
            flat.step(map, Some("value"));
        }
        flat
    }

    fn step(&mut self, map: &'a Map<String, Value>, prev: Option<&str>) {
        for (key, value) in js::keys(map) {
            // `prev ? prev + '.' + key : key`: an empty prefix is falsy.
            let new_key: Cow<'a, str> = match prev {
                Some(p) if !p.is_empty() => Cow::Owned(format!("{p}.{key}")),
                _ => Cow::Borrowed(key),
            };
            if let Value::Object(inner) = value {
                let owned = new_key.clone().into_owned();
                self.entries.insert(new_key, value);
                self.step(inner, Some(&owned));
            } else {
                self.entries.insert(new_key, value);
            }
        }
    }

    /// `document[key]`.
    pub(crate) fn get(&self, key: &str) -> Lookup<'a> {
        match self.entries.get(key) {
            Some(v) => Lookup::Value(v),
            None => match inherited_name(key) {
                Some(name) => Lookup::Inherited(name),
                None => Lookup::Missing,
            },
        }
    }

    /// Number of own paths.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Every own (path, value) pair, in no particular order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&str, &'a Value)> + '_ {
        self.entries.iter().map(|(k, v)| (k.as_ref(), *v))
    }

    /// The own value at `key`, if any.
    pub(crate) fn value(&self, key: &str) -> Option<&'a Value> {
        self.entries.get(key).copied()
    }
}

/// The `Object.prototype` property called `key`, if it is one.
pub(crate) fn inherited_name(key: &str) -> Option<&'static str> {
    INHERITED.iter().find(|n| **n == key).copied()
}

impl Lookup<'_> {
    /// `String(document[key])` for an inherited property.
    pub(crate) fn inherited_string(name: &str) -> String {
        match name {
            "__proto__" => "[object Object]".to_owned(),
            "constructor" => "function Object() { [native code] }".to_owned(),
            other => format!("function {other}() {{ [native code] }}"),
        }
    }
}
