//! The in-memory `InstanceRegistry`: a map from id to record, queried by the core's
//! filter evaluator (which follows MongoDB's semantics, so it answers as MongoDB would).

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::{PoisonError, RwLock};

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::filter::Query;
use crate::ports::InstanceRegistry;
use crate::types::{
    FramedbId, InstanceRecord, InstanceStatus, Metadata, Removal, Stamp, StorageSize, Timestamp,
};

/// An `InstanceRegistry` in a map. Never fails except on a missing or duplicate id.
#[derive(Debug, Default)]
pub struct InMemoryRegistry {
    records: RwLock<HashSet<Keyed>>,
}

/// A record in the set, found by its id: the id is not stored a second time as a key,
/// which is a twentieth of a record's memory. Boxed, so that the set's spare slots (up to
/// an eighth of them, and up to half after it doubles) cost a pointer each, not a record.
#[derive(Debug)]
struct Keyed(Box<InstanceRecord>);

impl PartialEq for Keyed {
    fn eq(&self, other: &Self) -> bool {
        self.0.framedb_id == other.0.framedb_id
    }
}

impl Eq for Keyed {}

impl Hash for Keyed {
    // As `str` hashes, so that lookups by `&str` find it (`Borrow`'s contract).
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.framedb_id.as_str().hash(state);
    }
}

impl Borrow<str> for Keyed {
    fn borrow(&self) -> &str {
        self.0.framedb_id.as_str()
    }
}

impl InMemoryRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Changes the record of `id` and `stamp` with `change` and bumps its `updated_at`.
    fn change_stamped(
        &self,
        id: &FramedbId,
        stamp: &Stamp,
        change: impl FnOnce(&mut InstanceRecord),
    ) -> Result<()> {
        let mut records = self.write();
        if records
            .get(id.as_str())
            .is_none_or(|keyed| keyed.0.stamp != *stamp)
        {
            return Err(Error::InstanceNotFound(id.clone()));
        }
        let Keyed(mut record) = records
            .take(id.as_str())
            .ok_or_else(|| Error::InstanceNotFound(id.clone()))?;
        change(&mut record);
        record.updated_at = Timestamp::now();
        records.insert(Keyed(record));
        Ok(())
    }

    // A panic while holding the lock cannot leave a record half-written (every write is a
    // single map operation), so a poisoned lock is still consistent.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashSet<Keyed>> {
        self.records.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashSet<Keyed>> {
        self.records.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl InstanceRegistry for InMemoryRegistry {
    async fn insert(&self, record: &InstanceRecord) -> Result<()> {
        let mut records = self.write();
        if records.contains(record.framedb_id.as_str()) {
            return Err(Error::AlreadyExists(record.framedb_id.clone()));
        }
        records.insert(Keyed(Box::new(record.clone())));
        Ok(())
    }

    async fn update_deployment(
        &self,
        id: &FramedbId,
        stamp: &Stamp,
        port: Option<u16>,
        status: InstanceStatus,
    ) -> Result<()> {
        let mut records = self.write();
        if records.get(id.as_str()).is_none_or(|keyed| {
            keyed.0.stamp != *stamp || keyed.0.status == InstanceStatus::Deleting
        }) {
            return Err(Error::InstanceNotFound(id.clone()));
        }
        // A set gives no mutable access: the record goes out and back in under one lock.
        let Keyed(mut record) = records
            .take(id.as_str())
            .ok_or_else(|| Error::InstanceNotFound(id.clone()))?;
        record.port = port;
        record.status = status;
        record.updated_at = Timestamp::now();
        records.insert(Keyed(record));
        Ok(())
    }

    async fn mark_deleting(&self, id: &FramedbId, stamp: &Stamp, removal: Removal) -> Result<()> {
        self.change_stamped(id, stamp, |record| {
            record.status = InstanceStatus::Deleting;
            record.removal = Some(removal);
        })
    }

    async fn amend(
        &self,
        id: &FramedbId,
        stamp: &Stamp,
        metadata: &Metadata,
        storage_size: &StorageSize,
    ) -> Result<()> {
        self.change_stamped(id, stamp, |record| {
            record.metadata = metadata.clone();
            record.storage_size = storage_size.clone();
        })
    }

    async fn get(&self, id: &FramedbId) -> Result<InstanceRecord> {
        self.read()
            .get(id.as_str())
            .map(|keyed| (*keyed.0).clone())
            .ok_or_else(|| Error::InstanceNotFound(id.clone()))
    }

    async fn remove(&self, id: &FramedbId) -> Result<bool> {
        Ok(self.write().remove(id.as_str()))
    }

    async fn remove_stamped(&self, id: &FramedbId, stamp: &Stamp) -> Result<bool> {
        let mut records = self.write();
        if records
            .get(id.as_str())
            .is_some_and(|keyed| keyed.0.stamp == *stamp)
        {
            return Ok(records.remove(id.as_str()));
        }
        Ok(false)
    }

    async fn find(&self, query: &Query) -> Result<Vec<InstanceRecord>> {
        Ok(query.run(self.read().iter().map(|keyed| &*keyed.0)))
    }

    // The records live in this process: while it serves, they can be served.
    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}
