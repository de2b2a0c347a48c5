//! The in-memory `InstanceRegistry`: a map from id to record, queried by the core's
//! filter evaluator (which follows MongoDB's semantics, so it answers as MongoDB would).

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::filter::Query;
use crate::ports::InstanceRegistry;
use crate::types::{FramedbId, InstanceRecord, InstanceStatus, Timestamp};

/// An `InstanceRegistry` in a map. Never fails except on a missing or duplicate id.
#[derive(Debug, Default)]
pub struct InMemoryRegistry {
    records: RwLock<HashMap<FramedbId, InstanceRecord>>,
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

    // A panic while holding the lock cannot leave a record half-written (every write is a
    // single map operation), so a poisoned lock is still consistent.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<FramedbId, InstanceRecord>> {
        self.records.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<FramedbId, InstanceRecord>> {
        self.records.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl InstanceRegistry for InMemoryRegistry {
    async fn insert(&self, record: &InstanceRecord) -> Result<()> {
        use std::collections::hash_map::Entry;
        match self.write().entry(record.framedb_id.clone()) {
            Entry::Occupied(_) => Err(Error::AlreadyExists(record.framedb_id.clone())),
            Entry::Vacant(slot) => {
                slot.insert(record.clone());
                Ok(())
            }
        }
    }

    async fn update_deployment(
        &self,
        id: &FramedbId,
        port: Option<u16>,
        status: InstanceStatus,
    ) -> Result<()> {
        let mut records = self.write();
        let record = records
            .get_mut(id)
            .ok_or_else(|| Error::InstanceNotFound(id.clone()))?;
        record.port = port;
        record.status = status;
        record.updated_at = Timestamp::now();
        Ok(())
    }

    async fn get(&self, id: &FramedbId) -> Result<InstanceRecord> {
        self.read()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::InstanceNotFound(id.clone()))
    }

    async fn remove(&self, id: &FramedbId) -> Result<bool> {
        Ok(self.write().remove(id).is_some())
    }

    async fn find(&self, query: &Query) -> Result<Vec<InstanceRecord>> {
        Ok(query.run(self.read().values()))
    }
}
