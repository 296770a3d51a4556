//! What a collection's mapping says about its fields: which are indexed (secondary indexes), which
//! are keywords (exact `match`), and multi-field paths such as `name.keyword`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::{Result, StorageError};

/// The type a mapping gives a field, reduced to what the store cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Keyword,
    Text,
    Number,
    Date,
    Boolean,
    /// `object`, `nested`, `geo_point`, …: stored, searchable by scan, not indexed.
    Other,
}

impl FieldType {
    fn from_mapping(name: &str) -> FieldType {
        match name {
            "keyword" | "constant_keyword" | "wildcard" => FieldType::Keyword,
            "text" | "match_only_text" | "search_as_you_type" => FieldType::Text,
            "integer" | "long" | "short" | "byte" | "double" | "float" | "half_float"
            | "scaled_float" | "unsigned_long" => FieldType::Number,
            "date" | "date_nanos" => FieldType::Date,
            "boolean" => FieldType::Boolean,
            _ => FieldType::Other,
        }
    }

    /// Whether values of this type get a secondary index entry.
    pub fn is_indexed(self) -> bool {
        matches!(
            self,
            FieldType::Keyword | FieldType::Number | FieldType::Date | FieldType::Boolean
        )
    }
}

/// One field path a query may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub field_type: FieldType,
    /// Where the value lives in the source: the path itself, or the parent for a multi-field
    /// (`name.keyword` reads `name`).
    pub source_path: String,
}

/// The fields of a collection, from its mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    pub fields: BTreeMap<String, Field>,
}

impl Schema {
    /// Reads `properties` (recursively, with multi-fields under `fields`). Anything else in the
    /// mapping (`dynamic`, `_meta`) is kept by the store but does not change the schema.
    pub fn from_mapping(mapping: &Value) -> Result<Schema> {
        let mut schema = Schema::default();
        let Value::Object(mapping) = mapping else {
            return Err(StorageError::InvalidMapping {
                reason: "a mapping is a JSON object".into(),
            });
        };
        if let Some(properties) = mapping.get("properties") {
            schema.walk("", properties)?;
        }
        Ok(schema)
    }

    fn walk(&mut self, prefix: &str, properties: &Value) -> Result<()> {
        let Value::Object(properties) = properties else {
            return Err(StorageError::InvalidMapping {
                reason: format!("\"{prefix}properties\" must be an object"),
            });
        };
        for (name, definition) in properties {
            let path = format!("{prefix}{name}");
            let Value::Object(definition) = definition else {
                return Err(StorageError::InvalidMapping {
                    reason: format!("field \"{path}\" must be an object"),
                });
            };
            if let Some(children) = definition.get("properties") {
                self.walk(&format!("{path}."), children)?;
                continue;
            }
            let field_type = type_of(definition);
            self.fields.insert(
                path.clone(),
                Field {
                    field_type,
                    source_path: path.clone(),
                },
            );
            if let Some(Value::Object(multi)) = definition.get("fields") {
                for (sub, sub_definition) in multi {
                    if let Value::Object(sub_definition) = sub_definition {
                        self.fields.insert(
                            format!("{path}.{sub}"),
                            Field {
                                field_type: type_of(sub_definition),
                                source_path: path.clone(),
                            },
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// The field a query names, if the mapping declares it.
    pub fn field(&self, path: &str) -> Option<&Field> {
        self.fields.get(path)
    }

    /// Where a query path's values live in the source.
    pub fn source_path<'a>(&'a self, path: &'a str) -> &'a str {
        self.field(path).map_or(path, |f| f.source_path.as_str())
    }

    /// Whether a query path has a secondary index.
    pub fn is_indexed(&self, path: &str) -> bool {
        self.field(path).is_some_and(|f| f.field_type.is_indexed())
    }

    /// The indexed paths, in order.
    pub fn indexed_fields(&self) -> impl Iterator<Item = (&String, &Field)> {
        self.fields
            .iter()
            .filter(|(_, f)| f.field_type.is_indexed())
    }
}

fn type_of(definition: &Map<String, Value>) -> FieldType {
    definition
        .get("type")
        .and_then(Value::as_str)
        .map_or(FieldType::Other, FieldType::from_mapping)
}

/// Elasticsearch's additive mapping update: objects merge key by key, anything else is replaced.
pub fn merge_mapping(existing: &mut Value, update: &Value) {
    match (existing, update) {
        (Value::Object(existing), Value::Object(update)) => {
            for (key, value) in update {
                match existing.get_mut(key) {
                    Some(slot) => merge_mapping(slot, value),
                    None => {
                        existing.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (slot, value) => *slot = value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schema_from_mapping() {
        let schema = Schema::from_mapping(&json!({
            "dynamic": "false",
            "properties": {
                "name": {"type": "text", "fields": {"keyword": {"type": "keyword"}}},
                "age": {"type": "integer"},
                "address": {"properties": {"city": {"type": "keyword"}}},
                "_kuzzle_info": {"properties": {"createdAt": {"type": "date"}}}
            }
        }))
        .unwrap();
        assert!(!schema.is_indexed("name"));
        assert!(schema.is_indexed("name.keyword"));
        assert_eq!(schema.source_path("name.keyword"), "name");
        assert!(schema.is_indexed("age"));
        assert!(schema.is_indexed("address.city"));
        assert!(schema.is_indexed("_kuzzle_info.createdAt"));
        assert!(!schema.is_indexed("unmapped"));
        assert!(Schema::from_mapping(&json!([])).is_err());
    }

    #[test]
    fn merge_is_additive() {
        let mut mapping = json!({"properties": {"a": {"type": "keyword"}}});
        merge_mapping(
            &mut mapping,
            &json!({"dynamic": "true", "properties": {"b": {"type": "long"}}}),
        );
        assert_eq!(
            mapping,
            json!({"properties": {"a": {"type": "keyword"}, "b": {"type": "long"}}, "dynamic": "true"})
        );
    }
}
