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
//! compile. In a cluster, a node that changes specifications tells the others through the
//! cluster's security channel (kind [`CLUSTER_KIND`]); each reads the record again from the
//! shared store on its `cluster-security` thread ([`Registry::reload`]), one Redis hop later.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::{Mutex, RwLock};
use serde_json::Value;
use switchyard_storage::{Storage, StorageError};

use super::{specifications_key, Specification, SPECIFICATIONS};

/// The catalog's key among the specification records: it has no `#`, so it is never a
/// `<index>#<collection>` key.
const CATALOG: &str = "%catalog";

/// The kind that names a change of specifications among the cluster's security changes (no
/// security collection starts with `%`); its id is the `<index>#<collection>` key.
pub const CLUSTER_KIND: &str = "%specifications";

/// Told the key of every specifications change this node made (the cluster's publisher).
pub type ChangeObserver = Box<dyn Fn(&str, &str) + Send + Sync>;

/// Compiled specifications by `<index>#<collection>`.
#[derive(Default)]
pub struct Registry {
    by_key: RwLock<HashMap<String, Arc<Specification>>>,
    /// False while no collection has specifications: a publish then skips the lookup (and the
    /// key it would build).
    any: AtomicBool,
    /// Serializes the catalog's read-modify-write.
    catalog: Mutex<()>,
    /// Set once in a cluster: tells the other nodes to read a changed key again.
    observer: OnceLock<ChangeObserver>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("by_key", &self.by_key)
            .field("any", &self.any)
            .field("observed", &self.observer.get().is_some())
            .finish()
    }
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
        self.set(&key, specification.map(Arc::new));
        if let Some(observer) = self.observer.get() {
            observer(CLUSTER_KIND, &key);
        }
        Ok(())
    }

    /// In a cluster: `observer` is told the key of each change this node makes, for the other
    /// nodes to [`reload`](Registry::reload) it. Set once; later calls are ignored.
    pub fn on_change(&self, observer: ChangeObserver) {
        let _ = self.observer.set(observer);
    }

    /// Another node changed the specifications under `key`: reads the record again from the
    /// shared store (the catalog is that node's to update). A record that no longer compiles
    /// is dropped, as at start-up.
    pub fn reload(&self, storage: &dyn Storage, key: &str) -> Result<(), StorageError> {
        let specification = match storage.get_internal(SPECIFICATIONS, key)? {
            None => None,
            Some(record) => {
                let index = record["index"].as_str().unwrap_or_default();
                let collection = record["collection"].as_str().unwrap_or_default();
                match Specification::compile(index, collection, &record["validation"]) {
                    Ok(specification) => Some(Arc::new(specification)),
                    Err(invalid) => {
                        tracing::error!(index, collection, problems = %invalid.joined(), "specifications changed by another node do not compile; ignored");
                        None
                    }
                }
            }
        };
        self.set(key, specification);
        Ok(())
    }

    fn set(&self, key: &str, specification: Option<Arc<Specification>>) {
        let mut by_key = self.by_key.write();
        match specification {
            Some(specification) => {
                by_key.insert(key.to_string(), specification);
            }
            None => {
                by_key.remove(key);
            }
        }
        self.any.store(!by_key.is_empty(), Ordering::Release);
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
