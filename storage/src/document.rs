//! Documents as stored, and the batch write operations with their preconditions and outcomes.

use serde_json::{Map, Value};

use crate::error::{Result, StorageError};

/// Kuzzle's `_kuzzle_info`. The host fills it by Kuzzle's per-action rules; the store keeps it as
/// given. Times are epoch milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KuzzleInfo {
    pub author: Option<String>,
    pub created_at: Option<u64>,
    pub updated_at: Option<u64>,
    pub updater: Option<String>,
}

impl KuzzleInfo {
    /// `{author, createdAt, updatedAt, updater}`, absent values as `null`.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("author".into(), self.author.clone().into());
        map.insert("createdAt".into(), self.created_at.into());
        map.insert("updatedAt".into(), self.updated_at.into());
        map.insert("updater".into(), self.updater.clone().into());
        Value::Object(map)
    }

    /// The field a query path under `_kuzzle_info.` names.
    pub(crate) fn field(&self, name: &str) -> Option<Value> {
        match name {
            "author" => self.author.clone().map(Value::from),
            "createdAt" => self.created_at.map(Value::from),
            "updatedAt" => self.updated_at.map(Value::from),
            "updater" => self.updater.clone().map(Value::from),
            _ => None,
        }
    }
}

/// A stored document.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub id: String,
    /// 1 on creation, +1 on every write; a deleted then re-created document starts again at 1.
    pub version: u64,
    /// The body, a JSON object, without `_kuzzle_info`.
    pub source: Value,
    pub info: KuzzleInfo,
    /// Opaque bytes the caller stores with the document (the host keeps the realtime rooms the
    /// document matched at its last write). Durable with the document.
    pub meta: Vec<u8>,
}

impl Document {
    /// `_source` as Kuzzle returns it: the body plus `_kuzzle_info`.
    pub fn source_with_info(&self) -> Value {
        let mut source = self.source.clone();
        if let Value::Object(map) = &mut source {
            map.insert("_kuzzle_info".into(), self.info.to_json());
        }
        source
    }
}

/// A stored document with its body as JSON text, for answers that only copy it out
/// (`document:get`): no parse into a `Value`, no serialization back.
#[derive(Debug, Clone, PartialEq)]
pub struct RawDocument {
    pub id: String,
    pub version: u64,
    /// The body's compact JSON text (an object), without `_kuzzle_info`.
    pub source: String,
    pub info: KuzzleInfo,
}

impl From<Document> for RawDocument {
    fn from(doc: Document) -> RawDocument {
        RawDocument {
            source: doc.source.to_string(),
            id: doc.id,
            version: doc.version,
            info: doc.info,
        }
    }
}

/// What must be true of the stored document for an operation to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// No such document (create).
    Absent,
    /// The document exists (replace, delete).
    Present,
    /// The document exists at exactly this version (read-modify-write: update, upsert).
    Version(u64),
    /// No check (createOrReplace).
    Any,
}

/// One write of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    /// Store the whole document (create or replace); the store assigns the version.
    Put {
        id: String,
        source: Value,
        info: KuzzleInfo,
        meta: Vec<u8>,
        precondition: Precondition,
    },
    /// Remove the document. A missing document fails with `DocumentNotFound` whatever the
    /// precondition.
    Delete {
        id: String,
        precondition: Precondition,
    },
}

impl Operation {
    pub fn id(&self) -> &str {
        match self {
            Operation::Put { id, .. } | Operation::Delete { id, .. } => id,
        }
    }
}

/// Writes to one collection, committed atomically and durably together (with whatever other
/// batches group commit joins them to). Operations apply in order: a later one sees the earlier.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteBatch {
    pub index: String,
    pub collection: String,
    pub operations: Vec<Operation>,
}

/// What happened to one operation of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Written {
        id: String,
        version: u64,
        /// No document existed before.
        created: bool,
        /// The document this write replaced (for "out" notifications and `source`).
        previous: Option<Document>,
    },
    Deleted {
        id: String,
        /// The document as it was (delete notifications test its last content).
        previous: Document,
    },
    /// This operation did not apply; the others of the batch did.
    Failed { id: String, error: StorageError },
}

/// Binary record of a stored document: a version byte, then fields, then the source JSON.
pub(crate) mod codec {
    use super::*;

    const FORMAT: u8 = 1;

    fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }

    fn put_opt_str(out: &mut Vec<u8>, value: &Option<String>) {
        match value {
            None => out.push(0),
            Some(s) => {
                out.push(1);
                put_bytes(out, s.as_bytes());
            }
        }
    }

    fn put_opt_u64(out: &mut Vec<u8>, value: Option<u64>) {
        match value {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }

    pub(crate) fn encode(version: u64, source: &Value, info: &KuzzleInfo, meta: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + meta.len());
        out.push(FORMAT);
        out.extend_from_slice(&version.to_le_bytes());
        put_opt_str(&mut out, &info.author);
        put_opt_u64(&mut out, info.created_at);
        put_opt_u64(&mut out, info.updated_at);
        put_opt_str(&mut out, &info.updater);
        put_bytes(&mut out, meta);
        serde_json::to_writer(&mut out, source).expect("a Value always serialises");
        out
    }

    struct Reader<'a> {
        bytes: &'a [u8],
    }

    impl<'a> Reader<'a> {
        fn take(&mut self, n: usize) -> Result<&'a [u8]> {
            if self.bytes.len() < n {
                return Err(corrupt());
            }
            let (head, tail) = self.bytes.split_at(n);
            self.bytes = tail;
            Ok(head)
        }
        fn u8(&mut self) -> Result<u8> {
            Ok(self.take(1)?[0])
        }
        fn u64(&mut self) -> Result<u64> {
            Ok(u64::from_le_bytes(
                self.take(8)?.try_into().expect("8 bytes"),
            ))
        }
        fn bytes(&mut self) -> Result<&'a [u8]> {
            let n = u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"));
            self.take(n as usize)
        }
        fn opt_str(&mut self) -> Result<Option<String>> {
            match self.u8()? {
                0 => Ok(None),
                _ => Ok(Some(
                    String::from_utf8(self.bytes()?.to_vec()).map_err(|_| corrupt())?,
                )),
            }
        }
        fn opt_u64(&mut self) -> Result<Option<u64>> {
            match self.u8()? {
                0 => Ok(None),
                _ => Ok(Some(self.u64()?)),
            }
        }
    }

    fn corrupt() -> StorageError {
        StorageError::Store {
            message: "a stored document record is corrupt".into(),
        }
    }

    /// The version, `_kuzzle_info` and meta of a record, and its body's bytes.
    fn split(bytes: &[u8]) -> Result<(u64, KuzzleInfo, &[u8], &[u8])> {
        let mut reader = Reader { bytes };
        if reader.u8()? != FORMAT {
            return Err(corrupt());
        }
        let version = reader.u64()?;
        let info = KuzzleInfo {
            author: reader.opt_str()?,
            created_at: reader.opt_u64()?,
            updated_at: reader.opt_u64()?,
            updater: reader.opt_str()?,
        };
        let meta = reader.bytes()?;
        Ok((version, info, meta, reader.bytes))
    }

    /// A record with its body left as text (written by `encode`: compact JSON).
    pub(crate) fn decode_raw(id: &str, bytes: &[u8]) -> Result<RawDocument> {
        let (version, info, _meta, source) = split(bytes)?;
        let source = std::str::from_utf8(source).map_err(|_| corrupt())?;
        if !source.starts_with('{') || !source.ends_with('}') {
            return Err(corrupt());
        }
        Ok(RawDocument {
            id: id.into(),
            version,
            source: source.into(),
            info,
        })
    }

    pub(crate) fn decode(id: &str, bytes: &[u8]) -> Result<Document> {
        let (version, info, meta, source) = split(bytes)?;
        let meta = meta.to_vec();
        let source = serde_json::from_slice(source).map_err(|_| corrupt())?;
        Ok(Document {
            id: id.into(),
            version,
            source,
            info,
            meta,
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn round_trip() {
            let info = KuzzleInfo {
                author: Some("-1".into()),
                created_at: Some(1_700_000_000_000),
                updated_at: None,
                updater: None,
            };
            let source = serde_json::json!({"a": [1, "b", {"c": null}]});
            let bytes = encode(7, &source, &info, b"rooms");
            let doc = decode("x", &bytes).unwrap();
            assert_eq!(doc.version, 7);
            assert_eq!(doc.source, source);
            assert_eq!(doc.info, info);
            assert_eq!(doc.meta, b"rooms");
            assert!(decode("x", &bytes[..10]).is_err());
            let raw = decode_raw("x", &bytes).unwrap();
            assert_eq!(raw, RawDocument::from(doc));
            assert_eq!(raw.source, r#"{"a":[1,"b",{"c":null}]}"#);
            assert!(decode_raw("x", &bytes[..10]).is_err());
        }
    }
}
