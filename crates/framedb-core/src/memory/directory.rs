//! The in-memory `ClusterDirectoryStore`: a map from cluster id to entry, for a global
//! service without MongoDB (its directory then lasts as long as the process) and tests.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;

use crate::directory::{DirectoryEntry, LocalToken, Recorded};
use crate::error::Result;
use crate::ports::ClusterDirectoryStore;
use crate::types::ClusterId;

/// A `ClusterDirectoryStore` in a map. Never fails.
#[derive(Debug, Default)]
pub struct InMemoryDirectoryStore {
    entries: Mutex<BTreeMap<ClusterId, DirectoryEntry>>,
}

impl InMemoryDirectoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    // Every write is one map operation, so a poisoned lock is still consistent.
    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<ClusterId, DirectoryEntry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl ClusterDirectoryStore for InMemoryDirectoryStore {
    async fn load(&self) -> Result<Vec<DirectoryEntry>> {
        Ok(self.entries().values().cloned().collect())
    }

    async fn get(&self, cluster: &ClusterId) -> Result<Option<DirectoryEntry>> {
        Ok(self.entries().get(cluster).cloned())
    }

    async fn record(&self, entry: &DirectoryEntry) -> Result<Recorded> {
        let mut entries = self.entries();
        if let Some(existing) = entries.get(&entry.cluster_id) {
            return Ok(Recorded::Existing(existing.clone()));
        }
        entries.insert(entry.cluster_id.clone(), entry.clone());
        Ok(Recorded::New)
    }

    async fn replace(&self, entry: &DirectoryEntry) -> Result<Option<DirectoryEntry>> {
        Ok(self
            .entries()
            .insert(entry.cluster_id.clone(), entry.clone()))
    }

    async fn remove<'a>(&self, cluster: &ClusterId, token: Option<&'a LocalToken>) -> Result<bool> {
        let mut entries = self.entries();
        let held = entries
            .get(cluster)
            .is_some_and(|entry| token.is_none_or(|token| entry.token == *token));
        Ok(held && entries.remove(cluster).is_some())
    }
}
