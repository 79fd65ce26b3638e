//! One table of the catalog: a fjall keyspace of JSON values, loaded into
//! memory on open and written through with an fsync on every change.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use fjall::{Database, Keyspace, PersistMode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::CatalogError;

/// A table of `T` by id, sorted by id.
pub struct Table<T> {
    db: Database,
    keyspace: Keyspace,
    name: &'static str,
    /// The whole table. Writers hold the lock across the durable write, so
    /// the memory never shows a change the disk does not have.
    rows: RwLock<BTreeMap<String, T>>,
    /// Bumped by every change, so a reader can tell the table changed.
    version: AtomicU64,
}

impl<T: Serialize + DeserializeOwned + Clone> Table<T> {
    pub(crate) fn load(
        (db, keyspace, name): (Database, Keyspace, &'static str),
    ) -> Result<Self, CatalogError> {
        let mut rows = BTreeMap::new();
        for item in keyspace.iter() {
            let (key, value) = item.into_inner().map_err(|source| CatalogError::Engine {
                what: "read a table",
                source,
            })?;
            let key = String::from_utf8_lossy(&key).into_owned();
            let row = serde_json::from_slice(&value).map_err(|source| CatalogError::Corrupt {
                table: name,
                key: key.clone(),
                source,
            })?;
            rows.insert(key, row);
        }
        Ok(Table {
            db,
            keyspace,
            name,
            rows: RwLock::new(rows),
            version: AtomicU64::new(0),
        })
    }

    /// Changes so far (since the table was loaded).
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub fn get(&self, id: &str) -> Option<T> {
        self.read().get(id).cloned()
    }

    /// Every row, sorted by id.
    pub fn list(&self) -> Vec<T> {
        self.read().values().cloned().collect()
    }

    /// Runs `f` over the rows after `after` (exclusive), sorted by id,
    /// without copying them. Writers wait until it returns: keep it short.
    pub fn scan<R>(
        &self,
        after: Option<&str>,
        f: impl FnOnce(&mut dyn Iterator<Item = &T>) -> R,
    ) -> R {
        let rows = self.read();
        let from = match after {
            Some(after) => std::ops::Bound::Excluded(after),
            None => std::ops::Bound::Unbounded,
        };
        f(&mut rows
            .range::<str, _>((from, std::ops::Bound::Unbounded))
            .map(|(_, row)| row))
    }

    /// Up to `limit` rows after `after` (exclusive) that `keep` accepts,
    /// sorted by id, and whether more follow.
    pub fn page(
        &self,
        after: Option<&str>,
        limit: usize,
        mut keep: impl FnMut(&T) -> bool,
    ) -> (Vec<T>, bool) {
        self.scan(after, |rows| {
            let mut matching = rows.filter(|row| keep(row));
            let page: Vec<T> = matching.by_ref().take(limit).cloned().collect();
            let more = matching.next().is_some();
            (page, more)
        })
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    fn changed(&self) {
        self.version.fetch_add(1, Ordering::Release);
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds `row` under `id`; an existing id is [`CatalogError::Exists`].
    pub fn insert(&self, id: &str, row: T) -> Result<T, CatalogError> {
        let mut rows = self.write();
        if rows.contains_key(id) {
            return Err(CatalogError::Exists {
                what: self.name,
                id: id.to_owned(),
            });
        }
        self.store(id, &row)?;
        rows.insert(id.to_owned(), row.clone());
        self.changed();
        Ok(row)
    }

    /// Adds or replaces the row under `id`.
    pub fn put(&self, id: &str, row: T) -> Result<(), CatalogError> {
        let mut rows = self.write();
        self.store(id, &row)?;
        rows.insert(id.to_owned(), row);
        self.changed();
        Ok(())
    }

    /// Changes the row under `id` with `change` (which may refuse with an
    /// error) and stores the result.
    pub fn update<E: From<CatalogError>>(
        &self,
        id: &str,
        change: impl FnOnce(&mut T) -> Result<(), E>,
    ) -> Result<T, E> {
        let mut rows = self.write();
        let mut row = rows
            .get(id)
            .cloned()
            .ok_or_else(|| CatalogError::NotFound {
                what: self.name,
                id: id.to_owned(),
            })?;
        change(&mut row)?;
        self.store(id, &row)?;
        rows.insert(id.to_owned(), row.clone());
        self.changed();
        Ok(row)
    }

    /// Deletes the row under `id` and returns it.
    pub fn remove(&self, id: &str) -> Result<T, CatalogError> {
        let mut rows = self.write();
        let Some(row) = rows.get(id).cloned() else {
            return Err(CatalogError::NotFound {
                what: self.name,
                id: id.to_owned(),
            });
        };
        self.keyspace
            .remove(id.as_bytes())
            .map_err(|source| CatalogError::Engine {
                what: "delete a row",
                source,
            })?;
        self.sync()?;
        rows.remove(id);
        self.changed();
        Ok(row)
    }

    fn store(&self, id: &str, row: &T) -> Result<(), CatalogError> {
        // Plain structs of strings and numbers: serialisation cannot fail.
        let value = serde_json::to_vec(row).unwrap_or_default();
        self.keyspace
            .insert(id.as_bytes(), value)
            .map_err(|source| CatalogError::Engine {
                what: "write a row",
                source,
            })?;
        self.sync()
    }

    fn sync(&self) -> Result<(), CatalogError> {
        self.db
            .persist(PersistMode::SyncAll)
            .map_err(|source| CatalogError::Engine {
                what: "make a change durable",
                source,
            })
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, T>> {
        self.rows.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<String, T>> {
        self.rows.write().unwrap_or_else(|p| p.into_inner())
    }
}
