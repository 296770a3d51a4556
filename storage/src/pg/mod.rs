//! The PostgreSQL store: the same [`Storage`] as the embedded one, shared by every node of a
//! cluster. Synchronous (`postgres` crate) over a bounded pool; the host calls it from its
//! blocking pool as it calls the embedded store.
//!
//! Layout, created on first start (idempotent, under an advisory lock so nodes starting
//! together do not race), one set of tables for every index and collection:
//! * `switchyard_indexes`: index names;
//! * `switchyard_collections`: (index, name) → `cid`, a number never reused, and the mapping
//!   as given (text, key order kept);
//! * `switchyard_documents`: (cid, id) → version, `source` (the body's compact JSON text,
//!   returned as stored), `body` (the same as `jsonb`, for queries, with a GIN
//!   `jsonb_path_ops` index), `_kuzzle_info` in four columns, `meta` (bytes: the rooms the
//!   document matched at its last write), `deep` (arrays nested deeper than the query
//!   translation unwraps: such a document is a candidate of every JSON path test, see
//!   `translate`);
//! * `switchyard_terms` (version 2): (cid, id, field, num | str), one row per number or string
//!   of a field the mapping indexes, written and deleted by the statements that write and
//!   delete the document (see `terms`), read by `range` and `prefix`;
//! * `switchyard_internal`: (kind, key) → JSON text, outside every index;
//! * `switchyard_schema`: one row, the layout's version ([`SCHEMA_VERSION`]). A database of a
//!   newer version is refused at start-up ([`StorageError::SchemaTooNew`]) before anything is
//!   created or changed in it; an older one is migrated in the same start-up transaction
//!   (version 1 → 2: `migrate_to_2`).
//!
//! Why one documents table and not one per collection: collections come and go through the
//! API (`collection:create`, `admin:resetDatabase`, tests); DDL per collection would take
//! catalog locks on every node's hot path and leave thousands of tables in the catalog. A
//! re-created collection gets a new `cid`, so it starts empty and a write racing a delete
//! never lands in the new one; deleting is `ON DELETE CASCADE` from the catalog row.
//!
//! Invariant: `write` runs one transaction per batch, holding the collection's catalog row
//! `FOR SHARE` (a concurrent delete waits for it, or it sees the collection gone) and each
//! document's row `FOR UPDATE`; it returns only after `COMMIT` succeeded with
//! `synchronous_commit = on`, so an acknowledged write is on the server's disk.

mod pool;
mod terms;
mod translate;

use std::time::Duration;

use postgres::error::SqlState;
use postgres::{GenericClient, Row};
use serde_json::Value;

use crate::document::{Document, KuzzleInfo, Operation, Outcome, Precondition, RawDocument};
use crate::error::{Result, StorageError};
use crate::mapping::{merge_mapping, Schema};
use crate::names::{
    is_internal_index, validate_collection_name, validate_document_id, validate_index_name,
    validate_internal_index_name,
};
use crate::query::{page, Query, SearchPage, SearchRequest};
use crate::storage::Storage;
use crate::WriteBatch;
use pool::{Pool, Pooled, Statements};

/// How the PostgreSQL store connects.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// `postgres://user:password@host:port/database` or libpq's `key=value` form.
    pub url: String,
    /// Connections at most (each call holds one for its duration).
    pub pool_size: usize,
    /// How long opening one connection may take, unless the URL says (`connect_timeout`).
    pub connect_timeout: Duration,
    /// How long a call waits for a free connection before failing.
    pub acquire_timeout: Duration,
}

impl PostgresOptions {
    /// Defaults for `url`: 10 connections, 5 s to connect, 30 s to get a connection.
    pub fn new(url: impl Into<String>) -> PostgresOptions {
        PostgresOptions {
            url: url.into(),
            pool_size: 10,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(30),
        }
    }
}

/// Serialises schema creation across nodes (`pg_advisory_xact_lock`); any constant will do.
const SCHEMA_LOCK: i64 = 0x5359_5043_0001;

/// The layout this build creates and reads (the tables below); `switchyard_schema` records
/// it. Bump it with a migration from the previous one when the layout changes.
/// Version 2 added `switchyard_terms` (see `terms`); `connect` builds it for a version-1 database.
pub const SCHEMA_VERSION: i32 = 2;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS switchyard_indexes (
    name text COLLATE "C" PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS switchyard_collections (
    idx text COLLATE "C" NOT NULL REFERENCES switchyard_indexes (name) ON DELETE CASCADE,
    name text COLLATE "C" NOT NULL,
    cid bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    mapping text NOT NULL,
    PRIMARY KEY (idx, name)
);
CREATE TABLE IF NOT EXISTS switchyard_documents (
    cid bigint NOT NULL REFERENCES switchyard_collections (cid) ON DELETE CASCADE,
    id text COLLATE "C" NOT NULL,
    version bigint NOT NULL,
    source text NOT NULL,
    body jsonb NOT NULL,
    author text,
    created_at bigint,
    updated_at bigint,
    updater text,
    meta bytea NOT NULL,
    deep boolean NOT NULL,
    PRIMARY KEY (cid, id)
);
CREATE INDEX IF NOT EXISTS switchyard_documents_body
    ON switchyard_documents USING gin (body jsonb_path_ops);
CREATE INDEX IF NOT EXISTS switchyard_documents_deep
    ON switchyard_documents (cid) WHERE deep;
CREATE TABLE IF NOT EXISTS switchyard_internal (
    kind text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (kind, key)
);
"#;

const DOCUMENT_COLUMNS: &str = "id, version, source, author, created_at, updated_at, updater, meta";

/// The URL with its password replaced by `***` (URL and `key=value` forms), for messages.
pub fn redact_url(url: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            let userinfo = &rest[..at];
            if let Some(colon) = userinfo.find(':') {
                return format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &rest[at..]
                );
            }
        }
        return url.to_string();
    }
    // key=value form: `password=secret` or `password='a secret'`.
    let mut out = String::new();
    let mut rest = url;
    while let Some(found) = rest.find("password") {
        let (before, after) = rest.split_at(found + "password".len());
        out.push_str(before);
        let trimmed = after.trim_start();
        let Some(value) = trimmed.strip_prefix('=') else {
            rest = after;
            continue;
        };
        let value = value.trim_start();
        let end = if let Some(quoted) = value.strip_prefix('\'') {
            quoted.find('\'').map_or(value.len(), |i| i + 2)
        } else {
            value.find(char::is_whitespace).unwrap_or(value.len())
        };
        out.push_str("=***");
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

/// An error of the `postgres` crate with its causes (its `Display` alone says "db error").
pub(crate) fn describe(error: &postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{} ({}): {}", db.severity(), db.code().code(), db.message());
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn store_error(error: postgres::Error) -> StorageError {
    StorageError::store(format!("PostgreSQL: {}", describe(&error)))
}

/// Whether PostgreSQL rolled the transaction back and asks for a retry.
fn is_retryable(error: &postgres::Error) -> bool {
    error.code().is_some_and(|code| {
        *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
    })
}

/// Whether the connection is gone: closed, or the server ended the session (an administrator,
/// a shutdown, a crash), which the client may not have noticed yet.
fn is_broken(error: &postgres::Error) -> bool {
    error.is_closed()
        || error.code().is_some_and(|code| {
            *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
        })
}

/// What one attempt of a call ended with.
enum Failure {
    /// Safe to run again: a deadlock or serialization failure (rolled back by the server), or
    /// a connection found broken before anything could have been committed.
    Retry(postgres::Error),
    /// Final.
    Fail(StorageError),
}

impl From<postgres::Error> for Failure {
    fn from(error: postgres::Error) -> Failure {
        Failure::Retry(error)
    }
}

impl From<StorageError> for Failure {
    fn from(error: StorageError) -> Failure {
        Failure::Fail(error)
    }
}

/// The PostgreSQL document store. Cheap to share: wrap it in an `Arc`.
pub struct PostgresStorage {
    pool: Pool,
}

impl std::fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStorage")
            .field("url", &self.pool.redacted_url())
            .finish()
    }
}

/// A document from `row`'s columns `id, version, source, author, created_at, updated_at,
/// updater, meta`, starting at column `at`.
fn document_at(row: &Row, at: usize) -> Document {
    let source: &str = row.get(at + 2);
    Document {
        id: row.get(at),
        version: row.get::<_, i64>(at + 1) as u64,
        // `source` was written by serde_json from a Value: it parses back.
        source: serde_json::from_str(source).unwrap_or(Value::Null),
        info: info_at(row, at),
        meta: row.get(at + 7),
    }
}

fn document_from_row(row: &Row) -> Document {
    document_at(row, 0)
}

fn info_at(row: &Row, at: usize) -> KuzzleInfo {
    KuzzleInfo {
        author: row.get(at + 3),
        created_at: row.get::<_, Option<i64>>(at + 4).map(|v| v as u64),
        updated_at: row.get::<_, Option<i64>>(at + 5).map(|v| v as u64),
        updater: row.get(at + 6),
    }
}

fn index_not_found(index: &str) -> StorageError {
    StorageError::IndexNotFound {
        index: index.into(),
    }
}

fn collection_not_found(index: &str, collection: &str) -> StorageError {
    StorageError::CollectionNotFound {
        index: index.into(),
        collection: collection.into(),
    }
}

/// A collection's catalog entry.
struct CollectionRecord {
    cid: i64,
    mapping: String,
}

impl CollectionRecord {
    fn mapping(&self) -> Result<Value> {
        serde_json::from_str(&self.mapping)
            .map_err(|_| StorageError::store("a stored mapping is corrupt"))
    }
}

const FIND_COLLECTION: &str =
    "SELECT cid, mapping FROM switchyard_collections WHERE idx = $1 AND name = $2";
const FIND_COLLECTION_FOR_SHARE: &str =
    "SELECT cid, mapping FROM switchyard_collections WHERE idx = $1 AND name = $2 FOR SHARE";
const FIND_COLLECTION_FOR_UPDATE: &str =
    "SELECT cid, mapping FROM switchyard_collections WHERE idx = $1 AND name = $2 FOR UPDATE";
const INDEX_EXISTS: &str = "SELECT 1 FROM switchyard_indexes WHERE name = $1";
/// One document with the catalog lookup: no row when the collection is missing, a row of
/// nulls after `cid` when the document is.
const GET_DOCUMENT: &str = "SELECT c.cid, d.id, d.version, d.source, d.author, d.created_at, \
     d.updated_at, d.updater, d.meta FROM switchyard_collections c \
     LEFT JOIN switchyard_documents d ON d.cid = c.cid AND d.id = $3 \
     WHERE c.idx = $1 AND c.name = $2";
const LOCK_DOCUMENT: &str = "SELECT id, version, source, author, created_at, updated_at, \
     updater, meta FROM switchyard_documents WHERE cid = $1 AND id = $2 FOR UPDATE";
/// The document and its `switchyard_terms` rows (`$11`–`$13`: fields, numbers, strings) in one
/// statement (one round trip); its one row counts the documents inserted (0: created meanwhile
/// by another transaction, then no term row is written either).
const INSERT_DOCUMENT: &str = "WITH doc AS (INSERT INTO switchyard_documents \
     (cid, id, version, source, body, author, created_at, updated_at, updater, meta, deep) \
     VALUES ($1, $2, $3, $4::text, $4::text::jsonb, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT DO NOTHING RETURNING id), \
     terms AS (INSERT INTO switchyard_terms (cid, id, field, num, str) \
     SELECT $1, doc.id, u.f, u.n, u.s FROM doc, \
     unnest($11::text[], $12::float8[], $13::text[]) AS u (f, n, s)) \
     SELECT count(*) FROM doc";
/// The document, its old `switchyard_terms` rows replaced by the new ones (as `INSERT_DOCUMENT`).
const UPDATE_DOCUMENT: &str = "WITH old AS (DELETE FROM switchyard_terms \
     WHERE cid = $1 AND id = $2), \
     doc AS (UPDATE switchyard_documents SET version = $3, source = $4::text, \
     body = $4::text::jsonb, author = $5, created_at = $6, updated_at = $7, updater = $8, \
     meta = $9, deep = $10 WHERE cid = $1 AND id = $2), \
     terms AS (INSERT INTO switchyard_terms (cid, id, field, num, str) \
     SELECT $1, $2, u.f, u.n, u.s FROM \
     unnest($11::text[], $12::float8[], $13::text[]) AS u (f, n, s)) \
     SELECT 1";
/// The document and its `switchyard_terms` rows (the document's row is locked `FOR UPDATE`
/// first: no other writer changes them meanwhile).
const DELETE_DOCUMENT: &str = "WITH terms AS (DELETE FROM switchyard_terms \
     WHERE cid = $1 AND id = $2) \
     DELETE FROM switchyard_documents WHERE cid = $1 AND id = $2";

/// Which of index and collection is missing.
fn missing(
    client: &mut impl GenericClient,
    statements: &mut Statements,
    index: &str,
    collection: &str,
) -> std::result::Result<StorageError, postgres::Error> {
    let statement = statements.get(client, INDEX_EXISTS)?;
    Ok(if client.query_opt(&statement, &[&index])?.is_some() {
        collection_not_found(index, collection)
    } else {
        index_not_found(index)
    })
}

/// The catalog entry (read with `sql`: one of the `FIND_COLLECTION` statements), or which of
/// index and collection is missing.
fn find_collection(
    client: &mut impl GenericClient,
    statements: &mut Statements,
    index: &str,
    collection: &str,
    sql: &'static str,
) -> std::result::Result<Result<CollectionRecord>, postgres::Error> {
    let statement = statements.get(client, sql)?;
    if let Some(row) = client.query_opt(&statement, &[&index, &collection])? {
        return Ok(Ok(CollectionRecord {
            cid: row.get(0),
            mapping: row.get(1),
        }));
    }
    Ok(Err(missing(client, statements, index, collection)?))
}

impl PostgresStorage {
    /// Connects (one connection, to check the server and create the schema) and returns the
    /// store. The error names the URL, its password redacted.
    pub fn connect(options: &PostgresOptions) -> Result<PostgresStorage> {
        let pool = Pool::new(
            &options.url,
            options.pool_size,
            options.connect_timeout,
            options.acquire_timeout,
        )?;
        let storage = PostgresStorage { pool };
        storage.run(|client| {
            let mut txn = client.transaction()?;
            txn.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
            txn.batch_execute(
                "CREATE TABLE IF NOT EXISTS switchyard_schema (version integer NOT NULL)",
            )?;
            let found: Option<i32> = txn
                .query_opt("SELECT max(version) FROM switchyard_schema", &[])?
                .and_then(|row| row.get(0));
            if let Some(found) = found.filter(|found| *found > SCHEMA_VERSION) {
                return Err(Failure::Fail(StorageError::SchemaTooNew {
                    found,
                    known: SCHEMA_VERSION,
                }));
            }
            txn.batch_execute(SCHEMA)?;
            txn.batch_execute(terms::SCHEMA)?;
            if found.is_none_or(|found| found < 2) {
                // A new database, one of version 1, or one laid out before the version was
                // recorded (version 1): its documents' term rows, then the version. Writers of
                // an older build wait for this transaction (the table lock); started after,
                // they refuse the database (`SchemaTooNew`).
                Self::migrate_to_2(&mut txn)?;
                txn.execute("DELETE FROM switchyard_schema", &[])?;
                txn.execute(
                    "INSERT INTO switchyard_schema (version) VALUES ($1)",
                    &[&SCHEMA_VERSION],
                )?;
            }
            txn.commit().map_err(|e| Failure::Fail(store_error(e)))?;
            Ok(())
        })?;
        Ok(storage)
    }

    /// Schema version 1 to 2: `switchyard_terms` for every collection's documents (the table
    /// was just created, empty). Holds writers off until the caller commits.
    fn migrate_to_2(txn: &mut postgres::Transaction<'_>) -> Result<(), Failure> {
        txn.batch_execute("LOCK TABLE switchyard_documents IN SHARE MODE")?;
        let collections = txn.query("SELECT cid, mapping FROM switchyard_collections", &[])?;
        for row in collections {
            let record = CollectionRecord {
                cid: row.get(0),
                mapping: row.get(1),
            };
            let schema = Schema::from_mapping(&record.mapping()?)?;
            terms::rebuild(txn, record.cid, &schema)?;
        }
        Ok(())
    }

    /// The URL, password redacted.
    pub fn redacted_url(&self) -> &str {
        self.pool.redacted_url()
    }

    /// Runs `call` on a pooled connection; runs it again (a few times) when it fails in a way
    /// that left nothing applied: a deadlock or serialization failure, or a connection that
    /// broke (PostgreSQL restarted, the idle connection timed out) — then on a new one.
    fn run<T>(&self, mut call: impl FnMut(&mut Pooled<'_>) -> Result<T, Failure>) -> Result<T> {
        let mut fresh = false;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut client = self.pool.get(fresh)?;
            match call(&mut client) {
                Ok(value) => return Ok(value),
                Err(Failure::Fail(error)) => return Err(error),
                Err(Failure::Retry(error)) => {
                    let broken = client.is_closed() || is_broken(&error);
                    if attempts >= 5 || !(broken || is_retryable(&error)) {
                        return Err(store_error(error));
                    }
                    fresh = broken;
                }
            }
        }
    }

    /// A read: `call` gets a connection and the collection's catalog entry.
    fn read<T>(
        &self,
        index: &str,
        collection: &str,
        mut call: impl FnMut(&mut Pooled<'_>, &CollectionRecord) -> Result<T, Failure>,
    ) -> Result<T> {
        self.run(|client| {
            let (connection, statements) = client.split();
            let record =
                find_collection(connection, statements, index, collection, FIND_COLLECTION)??;
            call(client, &record)
        })
    }

    /// One document's row (`GET_DOCUMENT`: the document's columns from column 1), `None` if
    /// absent, in one round trip with the catalog lookup.
    fn get_row(&self, index: &str, collection: &str, id: &str) -> Result<Option<Row>> {
        self.run(|client| {
            let (connection, statements) = client.split();
            let statement = statements.get(connection, GET_DOCUMENT)?;
            // An id with NUL was never stored (see `apply`), and PostgreSQL refuses it as a
            // parameter: look the collection up with an empty id instead.
            let lookup = if id.contains('\0') { "" } else { id };
            let Some(row) = connection.query_opt(&statement, &[&index, &collection, &lookup])?
            else {
                return Err(Failure::Fail(missing(
                    connection, statements, index, collection,
                )?));
            };
            let found = !id.contains('\0') && row.get::<_, Option<String>>(1).is_some();
            Ok(found.then_some(row))
        })
    }

    fn insert_index(&self, index: &str) -> Result<()> {
        self.run(|client| {
            let inserted = client.execute(
                "INSERT INTO switchyard_indexes (name) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&index],
            )?;
            if inserted == 0 {
                return Err(Failure::Fail(StorageError::IndexAlreadyExists {
                    index: index.into(),
                }));
            }
            Ok(())
        })
    }

    /// Documents of the collection that `query` may match (the SQL narrows, see `translate`),
    /// then exactly those that match, and the collection's schema.
    fn matching(
        &self,
        index: &str,
        collection: &str,
        query: &Query,
    ) -> Result<(Vec<Document>, Schema)> {
        self.read(index, collection, |client, record| {
            let schema = Schema::from_mapping(&record.mapping()?)?;
            let (condition, params) = translate::narrow(query, &schema, 2);
            let mut sql =
                format!("SELECT {DOCUMENT_COLUMNS} FROM switchyard_documents WHERE cid = $1");
            if let Some(condition) = condition {
                // `deep` documents are let through by the condition itself (see `translate`).
                sql.push_str(" AND ");
                sql.push_str(&condition);
            }
            let mut values: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![&record.cid];
            values.extend(params.values());
            let rows = client.query(&sql, &values)?;
            let found = rows
                .iter()
                .map(document_from_row)
                .filter(|document| query.matches(document, &schema))
                .collect();
            Ok((found, schema))
        })
    }

    /// One batch in one transaction; `Ok(Err(_))` when the collection is missing.
    fn write_once(
        client: &mut Pooled<'_>,
        batch: &WriteBatch,
    ) -> Result<Result<Vec<Outcome>>, Failure> {
        let (connection, statements) = client.split();
        let mut txn = connection.transaction()?;
        let found = find_collection(
            &mut txn,
            statements,
            &batch.index,
            &batch.collection,
            FIND_COLLECTION_FOR_SHARE,
        )?;
        let record = match found {
            Ok(record) => record,
            Err(error) => return Ok(Err(error)),
        };
        let fields = terms::fields(&Schema::from_mapping(&record.mapping()?)?);
        let mut outcomes = Vec::with_capacity(batch.operations.len());
        for operation in &batch.operations {
            outcomes.push(Self::apply(
                &mut txn, statements, batch, record.cid, &fields, operation,
            )?);
        }
        // Past this point a broken connection leaves the outcome unknown: never retried.
        txn.commit().map_err(|e| Failure::Fail(store_error(e)))?;
        Ok(Ok(outcomes))
    }

    fn apply(
        txn: &mut postgres::Transaction<'_>,
        statements: &mut Statements,
        batch: &WriteBatch,
        cid: i64,
        fields: &[(String, String)],
        operation: &Operation,
    ) -> Result<Outcome, Failure> {
        let id = operation.id().to_string();
        if let Err(error) = validate_document_id(&id) {
            return Ok(Outcome::Failed { id, error });
        }
        if id.contains('\0') {
            return Ok(Outcome::Failed {
                error: StorageError::InvalidId {
                    id: id.clone(),
                    reason: "PostgreSQL cannot store the NUL character",
                },
                id,
            });
        }
        let not_found = || StorageError::DocumentNotFound {
            index: batch.index.clone(),
            collection: batch.collection.clone(),
            id: id.clone(),
        };
        let precondition = match operation {
            Operation::Put { precondition, .. } | Operation::Delete { precondition, .. } => {
                *precondition
            }
        };
        // Twice at most: a create that lost the race to a concurrent one reads again.
        loop {
            let lock = statements.get(txn, LOCK_DOCUMENT)?;
            let previous = txn
                .query_opt(&lock, &[&cid, &id])?
                .map(|row| document_from_row(&row));
            let check = match (precondition, &previous) {
                (Precondition::Absent, Some(_)) => Err(StorageError::DocumentAlreadyExists {
                    index: batch.index.clone(),
                    collection: batch.collection.clone(),
                    id: id.clone(),
                }),
                (Precondition::Present | Precondition::Version(_), None) => Err(not_found()),
                (Precondition::Version(expected), Some(doc)) if doc.version != expected => {
                    Err(StorageError::VersionConflict {
                        id: id.clone(),
                        expected,
                        actual: doc.version,
                    })
                }
                _ => Ok(()),
            };
            if let Err(error) = check {
                return Ok(Outcome::Failed { id, error });
            }
            match operation {
                Operation::Put {
                    source, info, meta, ..
                } => {
                    if !source.is_object() {
                        return Ok(Outcome::Failed {
                            id: id.clone(),
                            error: StorageError::InvalidDocument {
                                id,
                                reason: "document body must be an object",
                            },
                        });
                    }
                    let text = source.to_string();
                    if text.contains("\\u0000") {
                        return Ok(Outcome::Failed {
                            id: id.clone(),
                            error: StorageError::InvalidDocument {
                                id,
                                reason: "PostgreSQL cannot store the NUL character (\\u0000)",
                            },
                        });
                    }
                    let version = previous.as_ref().map_or(1, |d| d.version + 1) as i64;
                    let created_at = info.created_at.map(|v| v as i64);
                    let updated_at = info.updated_at.map(|v| v as i64);
                    let deep = translate::too_deep(source);
                    let mut rows = terms::Rows::default();
                    rows.add(fields, &id, source, info);
                    let values: [&(dyn postgres::types::ToSql + Sync); 13] = [
                        &cid,
                        &id,
                        &version,
                        &text,
                        &info.author,
                        &created_at,
                        &updated_at,
                        &info.updater,
                        meta,
                        &deep,
                        &rows.fields,
                        &rows.nums,
                        &rows.strs,
                    ];
                    let values = &values[..];
                    if previous.is_none() {
                        let insert = statements.get(txn, INSERT_DOCUMENT)?;
                        let inserted: i64 = txn.query_one(&insert, values)?.get(0);
                        if inserted == 0 {
                            // Created meanwhile by a transaction that has now committed.
                            continue;
                        }
                    } else {
                        let update = statements.get(txn, UPDATE_DOCUMENT)?;
                        txn.execute(&update, values)?;
                    }
                    return Ok(Outcome::Written {
                        id,
                        version: version as u64,
                        created: previous.is_none(),
                        previous,
                    });
                }
                Operation::Delete { .. } => {
                    let Some(old) = previous else {
                        return Ok(Outcome::Failed {
                            error: not_found(),
                            id,
                        });
                    };
                    let delete = statements.get(txn, DELETE_DOCUMENT)?;
                    txn.execute(&delete, &[&cid, &id])?;
                    return Ok(Outcome::Deleted { id, previous: old });
                }
            }
        }
    }
}

impl Storage for PostgresStorage {
    fn create_index(&self, index: &str) -> Result<()> {
        validate_index_name(index)?;
        self.insert_index(index)
    }

    fn create_internal_index(&self, index: &str) -> Result<()> {
        validate_internal_index_name(index)?;
        self.insert_index(index)
    }

    fn delete_index(&self, index: &str) -> Result<()> {
        self.run(|client| {
            let mut txn = client.transaction()?;
            // The index row FOR UPDATE: no collection is created in it from now on (that
            // takes it FOR SHARE), so the list of its collections is final.
            if txn
                .query_opt(
                    "SELECT 1 FROM switchyard_indexes WHERE name = $1 FOR UPDATE",
                    &[&index],
                )?
                .is_none()
            {
                return Err(Failure::Fail(index_not_found(index)));
            }
            let cids: Vec<i64> = txn
                .query(
                    "SELECT cid FROM switchyard_collections WHERE idx = $1",
                    &[&index],
                )?
                .iter()
                .map(|row| row.get(0))
                .collect();
            // Collections and documents go with it (ON DELETE CASCADE), once their writers
            // have committed (they hold the collection's row FOR SHARE); then their term rows.
            txn.execute("DELETE FROM switchyard_indexes WHERE name = $1", &[&index])?;
            txn.execute("DELETE FROM switchyard_terms WHERE cid = ANY($1)", &[&cids])?;
            txn.commit().map_err(|e| Failure::Fail(store_error(e)))
        })
    }

    fn index_exists(&self, index: &str) -> Result<bool> {
        self.run(|client| {
            Ok(client
                .query_opt(
                    "SELECT 1 FROM switchyard_indexes WHERE name = $1",
                    &[&index],
                )?
                .is_some())
        })
    }

    fn list_indexes(&self) -> Result<Vec<String>> {
        self.run(|client| {
            let rows = client.query("SELECT name FROM switchyard_indexes ORDER BY name", &[])?;
            Ok(rows
                .iter()
                .map(|row| row.get::<_, String>(0))
                .filter(|name| !is_internal_index(name))
                .collect())
        })
    }

    fn create_collection(&self, index: &str, collection: &str, mapping: &Value) -> Result<()> {
        validate_collection_name(collection)?;
        Schema::from_mapping(mapping)?;
        let mapping = mapping.to_string();
        self.run(|client| {
            let mut txn = client.transaction()?;
            // The index row FOR SHARE: a concurrent delete_index waits for this transaction.
            if txn
                .query_opt(
                    "SELECT 1 FROM switchyard_indexes WHERE name = $1 FOR SHARE",
                    &[&index],
                )?
                .is_none()
            {
                return Err(Failure::Fail(index_not_found(index)));
            }
            let inserted = txn.execute(
                "INSERT INTO switchyard_collections (idx, name, mapping) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
                &[&index, &collection, &mapping],
            )?;
            if inserted == 0 {
                return Err(Failure::Fail(StorageError::CollectionAlreadyExists {
                    index: index.into(),
                    collection: collection.into(),
                }));
            }
            txn.commit().map_err(|e| Failure::Fail(store_error(e)))
        })
    }

    fn update_mapping(&self, index: &str, collection: &str, mapping: &Value) -> Result<Value> {
        if !mapping.is_object() {
            return Err(StorageError::InvalidMapping {
                reason: "a mapping is a JSON object".into(),
            });
        }
        self.run(|client| {
            let mut txn = client.transaction()?;
            let record = find_collection(
                &mut txn,
                &mut Statements::default(),
                index,
                collection,
                FIND_COLLECTION_FOR_UPDATE,
            )??;
            let mut merged = record.mapping()?;
            merge_mapping(&mut merged, mapping);
            let schema = Schema::from_mapping(&merged)?;
            // The GIN index covers every field, mapped or not; `switchyard_terms` holds the
            // indexed ones: rebuilt when they change (writers wait: the row is FOR UPDATE).
            if terms::fields(&schema) != terms::fields(&Schema::from_mapping(&record.mapping()?)?) {
                terms::rebuild(&mut txn, record.cid, &schema)?;
            }
            txn.execute(
                "UPDATE switchyard_collections SET mapping = $2 WHERE cid = $1",
                &[&record.cid, &merged.to_string()],
            )?;
            txn.commit().map_err(|e| Failure::Fail(store_error(e)))?;
            Ok(merged)
        })
    }

    fn get_mapping(&self, index: &str, collection: &str) -> Result<Value> {
        self.read(index, collection, |_, record| Ok(record.mapping()?))
    }

    fn delete_collection(&self, index: &str, collection: &str) -> Result<()> {
        self.run(|client| {
            let (connection, statements) = client.split();
            let mut txn = connection.transaction()?;
            // Documents go with it (ON DELETE CASCADE), once its writers have committed (they
            // hold its row FOR SHARE); then, in a later snapshot, every term row they wrote.
            let Some(row) = txn.query_opt(
                "DELETE FROM switchyard_collections WHERE idx = $1 AND name = $2 RETURNING cid",
                &[&index, &collection],
            )?
            else {
                return Err(Failure::Fail(missing(
                    &mut txn, statements, index, collection,
                )?));
            };
            let cid: i64 = row.get(0);
            txn.execute("DELETE FROM switchyard_terms WHERE cid = $1", &[&cid])?;
            txn.commit().map_err(|e| Failure::Fail(store_error(e)))
        })
    }

    fn collection_exists(&self, index: &str, collection: &str) -> Result<bool> {
        self.run(|client| {
            Ok(client
                .query_opt(
                    "SELECT 1 FROM switchyard_collections WHERE idx = $1 AND name = $2",
                    &[&index, &collection],
                )?
                .is_some())
        })
    }

    fn list_collections(&self, index: &str) -> Result<Vec<String>> {
        self.run(|client| {
            let mut txn = client.transaction()?;
            if txn
                .query_opt(
                    "SELECT 1 FROM switchyard_indexes WHERE name = $1",
                    &[&index],
                )?
                .is_none()
            {
                return Err(Failure::Fail(index_not_found(index)));
            }
            let rows = txn.query(
                "SELECT name FROM switchyard_collections WHERE idx = $1 ORDER BY name",
                &[&index],
            )?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }

    fn truncate_collection(&self, index: &str, collection: &str) -> Result<()> {
        self.run(|client| {
            let mut txn = client.transaction()?;
            let record = find_collection(
                &mut txn,
                &mut Statements::default(),
                index,
                collection,
                // Not FOR SHARE as writers: a write between the two deletes would leave a
                // document without its term rows, or rows without their document.
                FIND_COLLECTION_FOR_UPDATE,
            )??;
            txn.execute(
                "DELETE FROM switchyard_terms WHERE cid = $1",
                &[&record.cid],
            )?;
            txn.execute(
                "DELETE FROM switchyard_documents WHERE cid = $1",
                &[&record.cid],
            )?;
            txn.commit().map_err(|e| Failure::Fail(store_error(e)))
        })
    }

    fn get(&self, index: &str, collection: &str, id: &str) -> Result<Option<Document>> {
        Ok(self
            .get_row(index, collection, id)?
            .map(|row| document_at(&row, 1)))
    }

    fn get_raw(&self, index: &str, collection: &str, id: &str) -> Result<Option<RawDocument>> {
        Ok(self.get_row(index, collection, id)?.map(|row| RawDocument {
            id: row.get(1),
            version: row.get::<_, i64>(2) as u64,
            source: row.get(3),
            info: info_at(&row, 1),
        }))
    }

    fn mget(&self, index: &str, collection: &str, ids: &[String]) -> Result<Vec<Option<Document>>> {
        let wanted: Vec<&String> = ids.iter().filter(|id| !id.contains('\0')).collect();
        let found = self.read(index, collection, |client, record| {
            let rows = client.query(
                &format!("SELECT {DOCUMENT_COLUMNS} FROM switchyard_documents WHERE cid = $1 AND id = ANY($2::text[])"),
                &[&record.cid, &wanted],
            )?;
            Ok(rows
                .iter()
                .map(|row| {
                    let document = document_from_row(row);
                    (document.id.clone(), document)
                })
                .collect::<std::collections::HashMap<String, Document>>())
        })?;
        Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
    }

    fn write(&self, batch: WriteBatch) -> Result<Vec<Outcome>> {
        self.run(|client| Self::write_once(client, &batch))?
    }

    fn search(&self, index: &str, collection: &str, request: &SearchRequest) -> Result<SearchPage> {
        let (found, schema) = self.matching(index, collection, &request.query)?;
        Ok(page(found, request, &schema))
    }

    fn count(&self, index: &str, collection: &str, query: &Query) -> Result<u64> {
        Ok(self.matching(index, collection, query)?.0.len() as u64)
    }

    fn get_internal(&self, kind: &str, key: &str) -> Result<Option<Value>> {
        let text: Option<String> = self.run(|client| {
            Ok(client
                .query_opt(
                    "SELECT value FROM switchyard_internal WHERE kind = $1 AND key = $2",
                    &[&kind, &key],
                )?
                .map(|row| row.get(0)))
        })?;
        text.map(|text| {
            serde_json::from_str(&text)
                .map_err(|e| StorageError::store(format!("internal record {kind}/{key}: {e}")))
        })
        .transpose()
    }

    fn put_internal(&self, kind: &str, key: &str, value: Option<&Value>) -> Result<bool> {
        let text = value.map(Value::to_string);
        self.run(|client| {
            let mut txn = client.transaction()?;
            let existed = txn.execute(
                "DELETE FROM switchyard_internal WHERE kind = $1 AND key = $2",
                &[&kind, &key],
            )? > 0;
            if let Some(text) = &text {
                txn.execute(
                    "INSERT INTO switchyard_internal (kind, key, value) VALUES ($1, $2, $3) \
                     ON CONFLICT (kind, key) DO UPDATE SET value = EXCLUDED.value",
                    &[&kind, &key, text],
                )?;
            }
            txn.commit().map_err(|e| Failure::Fail(store_error(e)))?;
            Ok(existed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cr%40t@db:5432/sy"),
            "postgres://app:***@db:5432/sy"
        );
        assert_eq!(
            redact_url("postgresql://app@db/sy"),
            "postgresql://app@db/sy"
        );
        assert_eq!(
            redact_url("host=db user=app password=secret dbname=sy"),
            "host=db user=app password=*** dbname=sy"
        );
        assert_eq!(
            redact_url("host=db password = 'a b' dbname=sy"),
            "host=db password=*** dbname=sy"
        );
    }
}
