//! `switchyard_terms`: the PostgreSQL store's secondary index for `range` and `prefix`, one row
//! per (document, indexed field, number or string value), arrays flattened, written in the
//! same transaction as the document.
//!
//! Which fields and which values: exactly the embedded store's (`Schema::indexed_fields`, each
//! read with `field_values`: a multi-field `name.keyword` holds `name`'s values under its own
//! name, `_kuzzle_info.*` the document's own fields). Booleans, objects and nulls get no row:
//! a `range` with boolean bounds is a `term` on the booleans in range (`translate`), `exists`
//! keeps its JSON path test.
//!
//! How values compare, so that a btree range over the rows is a superset of the embedded
//! store's answers (every candidate is then checked with `Query::matches`, as for every
//! search): numbers as `double precision` (the embedded store compares integers exactly and
//! everything else as doubles; rounding to a double is monotonic, so with both bounds taken
//! inclusive nothing in range is missed; strict where the bound is below 2^53 and no tie can
//! hide a difference), strings `COLLATE "C"` (byte order, as `compare_values`). A string is
//! stored cut to its first [`MAX_STR_CHARS`] characters (a btree entry holds at most 2,704
//! bytes); cutting to a number of characters is monotonic in that order and keeps a prefix a
//! prefix, so bounds cut the same way still select a superset. Field
//! paths longer than [`MAX_FIELD_BYTES`] get no rows: queries on them keep the JSON path scan.

use postgres::GenericClient;
use serde_json::Value;

use crate::document::KuzzleInfo;
use crate::mapping::Schema;
use crate::query::values_at;

/// Field paths longer than this (bytes) are not in the table: with the id (512 bytes at
/// most) and a cut string, an index entry stays under PostgreSQL's 2,704 bytes.
pub(crate) const MAX_FIELD_BYTES: usize = 512;
/// Strings are stored cut to this many characters (1,024 bytes at most).
pub(crate) const MAX_STR_CHARS: usize = 256;

/// The table and its indexes (schema version 2). No foreign key (its check, one query per
/// row, doubled the cost of a write): every statement that deletes documents deletes their
/// rows (`mod.rs`: a document's delete, `truncate`, deleted collections and indexes).
pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS switchyard_terms (
    cid bigint NOT NULL,
    id text COLLATE "C" NOT NULL,
    field text COLLATE "C" NOT NULL,
    num double precision,
    str text COLLATE "C"
);
CREATE INDEX IF NOT EXISTS switchyard_terms_document ON switchyard_terms (cid, id);
CREATE INDEX IF NOT EXISTS switchyard_terms_num
    ON switchyard_terms (cid, field, num, id) WHERE num IS NOT NULL;
CREATE INDEX IF NOT EXISTS switchyard_terms_str
    ON switchyard_terms (cid, field, str, id) WHERE str IS NOT NULL;
"#;

/// Adds rows (`$1` the cid; the arrays: ids, fields, numbers, strings).
pub(crate) const INSERT: &str = "INSERT INTO switchyard_terms (cid, id, field, num, str) \
     SELECT $1, * FROM unnest($2::text[], $3::text[], $4::float8[], $5::text[])";

/// Whether queries on `field` can read the table.
pub(crate) fn is_termed(schema: &Schema, field: &str) -> bool {
    field != "_id" && field.len() <= MAX_FIELD_BYTES && schema.is_indexed(field)
}

/// The fields with rows: (query path, where its values are read).
pub(crate) fn fields(schema: &Schema) -> Vec<(String, String)> {
    schema
        .indexed_fields()
        .filter(|(path, _)| is_termed(schema, path))
        .map(|(path, field)| (path.clone(), field.source_path.clone()))
        .collect()
}

/// `s` cut to its first [`MAX_STR_CHARS`] characters.
pub(crate) fn cut(s: &str) -> &str {
    match s.char_indices().nth(MAX_STR_CHARS) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// A string bound as compared with the stored (cut) strings: inclusive, unless it has fewer
/// than [`MAX_STR_CHARS`] characters and no NUL (then it is the bound itself). PostgreSQL text
/// holds no NUL (no stored value has one): a bound `x\0y` selects what `x` does (`v >= x\0y`
/// implies `v >= x`; `v <= x\0y` is `v <= x` for a `v` without NUL).
pub(crate) fn string_bound(s: &str) -> String {
    cut(s.split('\0').next().unwrap_or_default()).to_string()
}

/// The stored strings starting with `prefix`: `[lower, upper)` (no upper: every string from
/// `lower` on), or `None` when nothing can (a NUL in the prefix).
pub(crate) fn prefix_range(prefix: &str) -> Option<(String, Option<String>)> {
    if prefix.contains('\0') {
        return None;
    }
    let lower = cut(prefix).to_string();
    let upper = successor(&lower);
    Some((lower, upper))
}

/// The smallest string greater than every string starting with `prefix` (in code point order,
/// which is UTF-8 byte order), `None` when there is none (empty, or only U+10FFFF).
fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last as u32 + 1 {
            0xD800 => Some('\u{E000}'),
            code => char::from_u32(code),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Rows to insert, as the arrays of [`INSERT`].
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Rows {
    pub ids: Vec<String>,
    pub fields: Vec<String>,
    pub nums: Vec<Option<f64>>,
    pub strs: Vec<Option<String>>,
}

impl Rows {
    /// Adds the rows of one document.
    pub(crate) fn add(
        &mut self,
        fields: &[(String, String)],
        id: &str,
        source: &Value,
        info: &KuzzleInfo,
    ) {
        for (path, source_path) in fields {
            for value in values_at(source, info, id, source_path) {
                let (num, str) = match value {
                    Value::Number(n) => (n.as_f64(), None),
                    Value::String(s) => (None, Some(cut(&s).to_string())),
                    _ => continue,
                };
                if num.is_none() && str.is_none() {
                    continue;
                }
                self.ids.push(id.to_string());
                self.fields.push(path.clone());
                self.nums.push(num);
                self.strs.push(str);
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Inserts the rows for collection `cid` (nothing when there are none).
    pub(crate) fn insert(
        &self,
        client: &mut impl GenericClient,
        statement: &postgres::Statement,
        cid: i64,
    ) -> Result<(), postgres::Error> {
        if !self.is_empty() {
            client.execute(
                statement,
                &[&cid, &self.ids, &self.fields, &self.nums, &self.strs],
            )?;
        }
        Ok(())
    }
}

/// Documents read per round trip while rebuilding.
const REBUILD_CHUNK: i32 = 1_000;

/// Deletes collection `cid`'s rows and writes them again from its documents, for `schema`
/// (a mapping change, the migration from schema version 1). Runs in the caller's transaction.
pub(crate) fn rebuild(
    txn: &mut postgres::Transaction<'_>,
    cid: i64,
    schema: &Schema,
) -> Result<(), postgres::Error> {
    txn.execute("DELETE FROM switchyard_terms WHERE cid = $1", &[&cid])?;
    let fields = fields(schema);
    if fields.is_empty() {
        return Ok(());
    }
    let insert = txn.prepare(INSERT)?;
    let portal = txn.bind(
        "SELECT id, source, author, created_at, updated_at, updater \
         FROM switchyard_documents WHERE cid = $1",
        &[&cid],
    )?;
    loop {
        let documents = txn.query_portal(&portal, REBUILD_CHUNK)?;
        let mut rows = Rows::default();
        for document in &documents {
            let id: String = document.get(0);
            let source: &str = document.get(1);
            // `source` was written by serde_json from a Value: it parses back.
            let source: Value = serde_json::from_str(source).unwrap_or(Value::Null);
            let info = KuzzleInfo {
                author: document.get(2),
                created_at: document.get::<_, Option<i64>>(3).map(|v| v as u64),
                updated_at: document.get::<_, Option<i64>>(4).map(|v| v as u64),
                updater: document.get(5),
            };
            rows.add(&fields, &id, &source, &info);
        }
        rows.insert(txn, &insert, cid)?;
        if documents.len() < REBUILD_CHUNK as usize {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn successors_bound_exactly_the_strings_with_the_prefix() {
        assert_eq!(successor("ab"), Some("ac".into()));
        assert_eq!(successor("a\u{D7FF}"), Some("a\u{E000}".into()));
        assert_eq!(successor("a\u{10FFFF}\u{10FFFF}"), Some("b".into()));
        assert_eq!(successor("\u{10FFFF}"), None);
        assert_eq!(successor(""), None);
        assert_eq!(successor("é"), Some("ê".into()));
        let (lower, upper) = prefix_range("ca").unwrap();
        let upper = upper.unwrap();
        for (s, inside) in [
            ("ca", true),
            ("caz", true),
            ("ca\u{10FFFF}", true),
            ("cb", false),
            ("c", false),
            ("c\u{7F}", false),
            ("d", false),
        ] {
            let within = s.as_bytes() >= lower.as_bytes() && s.as_bytes() < upper.as_bytes();
            assert_eq!(within, inside, "{s:?}");
        }
        assert_eq!(prefix_range("a\0"), None);
    }

    #[test]
    fn long_strings_and_bounds_are_cut_alike() {
        let long = "é".repeat(300);
        assert_eq!(cut(&long).chars().count(), MAX_STR_CHARS);
        assert_eq!(string_bound(&long), cut(&long));
        assert_eq!(string_bound("ab\0c"), "ab");
        let (lower, _) = prefix_range(&long).unwrap();
        assert_eq!(lower, cut(&long));
    }

    #[test]
    fn rows_flatten_arrays_and_keep_numbers_and_strings() {
        let schema = Schema::from_mapping(&json!({"properties": {
            "tags": {"type": "keyword"},
            "n": {"type": "double"},
            "name": {"type": "text", "fields": {"raw": {"type": "keyword"}}},
            "free": {"type": "text"},
            "_kuzzle_info": {"properties": {"createdAt": {"type": "date"}}}
        }}))
        .unwrap();
        let fields = fields(&schema);
        let mut rows = Rows::default();
        let info = KuzzleInfo {
            created_at: Some(7),
            ..KuzzleInfo::default()
        };
        rows.add(
            &fields,
            "d",
            &json!({"tags": ["a", ["b", true, null, {"x": 1}]], "n": [1, 2.5], "name": "Al", "free": "x"}),
            &info,
        );
        let got: Vec<(&str, Option<f64>, Option<&str>)> = rows
            .fields
            .iter()
            .zip(&rows.nums)
            .zip(&rows.strs)
            .map(|((f, n), s)| (f.as_str(), *n, s.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("_kuzzle_info.createdAt", Some(7.0), None),
                ("n", Some(1.0), None),
                ("n", Some(2.5), None),
                ("name.raw", None, Some("Al")),
                ("tags", None, Some("a")),
                ("tags", None, Some("b")),
            ]
        );
        assert!(rows.ids.iter().all(|id| id == "d"));
    }
}
