//! Every collection's specifications, compiled and kept in memory, for `realtime:publish`: it
//! runs on the calling plugin's thread and may not read the store, yet Kuzzle validates
//! published messages against their collection's specifications.
//!
//! Loaded once at start-up from the store: the keys listed in a catalog record (kept beside
//! the specifications, updated by `updateSpecifications`/`deleteSpecifications`), plus a probe
//! of every existing collection (specifications stored before the catalog existed). On a single
//! node, document writes use it too (`api::documents::load_specifications`); in a cluster they
//! read the store on each request, since other nodes write it too.
//!
//! Invariant: on a single node, the registry holds exactly the stored specifications that
//! compile. In a cluster, a node learns another node's change at its next start.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde_json::Value;
use switchyard_storage::{Storage, StorageError};

use super::{specifications_key, Specification, SPECIFICATIONS};

/// The catalog's key among the specification records: it has no `#`, so it is never a
/// `<index>#<collection>` key.
const CATALOG: &str = "%catalog";

/// Compiled specifications by `<index>#<collection>`.
#[derive(Debug, Default)]
pub struct Registry {
    by_key: RwLock<HashMap<String, Arc<Specification>>>,
    /// False while no collection has specifications: a publish then skips the lookup (and the
    /// key it would build).
    any: AtomicBool,
    /// Serializes the catalog's read-modify-write.
    catalog: Mutex<()>,
}

impl Registry {
    /// Loads every stored specification; a failure to read leaves the registry empty (logged).
    pub fn load(storage: &dyn Storage) -> Registry {
        let registry = Registry::default();
        if let Err(error) = registry.load_from(storage) {
            tracing::error!(%error, "validation specifications not loaded for realtime:publish");
        }
        registry
    }

    fn load_from(&self, storage: &dyn Storage) -> Result<(), StorageError> {
        let mut keys: Vec<String> = catalog_keys(storage)?;
        for index in storage.list_indexes()? {
            if switchyard_storage::names::is_internal_index(&index) {
                continue;
            }
            for collection in storage.list_collections(&index)? {
                keys.push(specifications_key(&index, &collection));
            }
        }
        keys.sort();
        keys.dedup();
        let mut by_key = self.by_key.write();
        for key in keys {
            let Some(record) = storage.get_internal(SPECIFICATIONS, &key)? else {
                continue;
            };
            let (Some(index), Some(collection)) =
                (record["index"].as_str(), record["collection"].as_str())
            else {
                continue;
            };
            match Specification::compile(index, collection, &record["validation"]) {
                Ok(specification) => {
                    by_key.insert(key, Arc::new(specification));
                }
                Err(invalid) => {
                    tracing::error!(index, collection, problems = %invalid.joined(), "stored specifications no longer compile; ignored")
                }
            }
        }
        self.any.store(!by_key.is_empty(), Ordering::Release);
        Ok(())
    }

    /// A collection's specifications, if it has any.
    pub fn get(&self, index: &str, collection: &str) -> Option<Arc<Specification>> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        self.by_key
            .read()
            .get(&specifications_key(index, collection))
            .cloned()
    }

    /// Records that a collection's specifications were stored (`Some`) or deleted (`None`):
    /// the catalog record, then the registry.
    pub fn changed(
        &self,
        storage: &dyn Storage,
        index: &str,
        collection: &str,
        specification: Option<Specification>,
    ) -> Result<(), StorageError> {
        let key = specifications_key(index, collection);
        {
            let _guard = self.catalog.lock();
            let mut keys = catalog_keys(storage)?;
            let listed = keys.contains(&key);
            match (&specification, listed) {
                (Some(_), false) => keys.push(key.clone()),
                (None, true) => keys.retain(|k| *k != key),
                _ => {}
            }
            if listed != specification.is_some() {
                storage.put_internal(SPECIFICATIONS, CATALOG, Some(&Value::from(keys)))?;
            }
        }
        let mut by_key = self.by_key.write();
        match specification {
            Some(specification) => {
                by_key.insert(key, Arc::new(specification));
            }
            None => {
                by_key.remove(&key);
            }
        }
        self.any.store(!by_key.is_empty(), Ordering::Release);
        Ok(())
    }
}

fn catalog_keys(storage: &dyn Storage) -> Result<Vec<String>, StorageError> {
    Ok(storage
        .get_internal(SPECIFICATIONS, CATALOG)?
        .and_then(|catalog| {
            catalog.as_array().map(|keys| {
                keys.iter()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect()
            })
        })
        .unwrap_or_default())
}
