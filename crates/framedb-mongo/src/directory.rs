//! [`MongoDirectoryStore`]: the global service's cluster directory (the clusters setup
//! recorded) in its own collection of the registry's database, so that every replica and
//! every restart knows the same fleet.
//!
//! One document per cluster: `cluster_id`, `local_url`, `token` (the token installed with
//! the cluster's local service, which the global needs to call it: whoever can read this
//! collection can call every recorded cluster's local service), `api_server`, `ca_sha256`
//! (a string or `null`) and `recorded_at`. The unique index on `cluster_id`
//! ([`DIRECTORY_INDEX`]) is what makes a record conditional: of concurrent inserts of
//! one cluster, from any replica, exactly one succeeds and the others get duplicate key
//! (11000), then read the winner's entry. Writes are acknowledged by a majority and
//! journaled, and reads are majority reads, so an acknowledged record survives a
//! failover and every replica reads it.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use framedb_core::{
    ClusterDirectoryStore, ClusterId, ClusterIdentity, DirectoryEntry, LocalToken, Recorded,
    Timestamp,
};
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::{
    Acknowledgment, CollectionOptions, IndexOptions, ReadConcern, ReturnDocument, WriteConcern,
};
use mongodb::{Client, Collection, IndexModel};

use crate::config::MongoConfig;
use crate::error::{Error, Result};
use crate::registry::bounded;

/// The collection of the directory, in the registry's database.
pub const DIRECTORY_COLLECTION: &str = "cluster_directory";
/// Name of the unique index on `cluster_id`.
pub const DIRECTORY_INDEX: &str = "cluster_id_unique";

/// How many times a record tries again when the entry that made its insert a duplicate
/// was removed before it could be read.
const RECORD_ATTEMPTS: usize = 3;

/// The cluster directory in MongoDB.
#[derive(Clone)]
pub struct MongoDirectoryStore {
    collection: Collection<Document>,
    query_timeout: Duration,
    deadline: Duration,
}

impl MongoDirectoryStore {
    /// The directory in `config`'s database, on an existing client (the registry's:
    /// nothing is sent to the server). Call [`Self::ensure_indexes`] once at start-up.
    pub fn new(client: &Client, config: &MongoConfig) -> Self {
        let options = CollectionOptions::builder()
            .write_concern(
                WriteConcern::builder()
                    .w(Acknowledgment::Majority)
                    .journal(true)
                    .build(),
            )
            .read_concern(ReadConcern::majority())
            .build();
        let collection = client
            .database(&config.database)
            .collection_with_options::<Document>(DIRECTORY_COLLECTION, options);
        Self {
            collection,
            query_timeout: config.query_timeout,
            deadline: config.operation_deadline(),
        }
    }

    /// Creates the unique index on `cluster_id` ([`DIRECTORY_INDEX`]) unless it exists.
    ///
    /// # Errors
    /// [`Error::Driver`] when the server cannot be reached or refuses the index;
    /// [`Error::Deadline`] when it does not answer in time.
    pub async fn ensure_indexes(&self) -> Result<()> {
        let options = IndexOptions::builder()
            .name(DIRECTORY_INDEX.to_owned())
            .unique(true)
            .build();
        let index = IndexModel::builder()
            .keys(doc! { "cluster_id": 1 })
            .options(options)
            .build();
        let operation = "creating the cluster directory's index";
        bounded(self.deadline, operation, async {
            self.collection
                .create_index(index)
                .await
                .map_err(|source| Error::driver(operation, source))
        })
        .await?;
        Ok(())
    }

    /// The directory's collection.
    pub fn collection(&self) -> &Collection<Document> {
        &self.collection
    }

    async fn find_entries(&self, filter: Document) -> Result<Vec<DirectoryEntry>> {
        let operation = "reading the cluster directory";
        let failed = |source| Error::driver(operation, source);
        bounded(self.deadline, operation, async {
            let mut cursor = self
                .collection
                .find(filter)
                .sort(doc! { "cluster_id": 1 })
                .projection(doc! { "_id": 0 })
                .max_time(self.query_timeout)
                .await
                .map_err(failed)?;
            let mut entries = Vec::new();
            while cursor.advance().await.map_err(failed)? {
                let document = cursor.deserialize_current().map_err(failed)?;
                entries.push(document_to_entry(&document)?);
            }
            Ok(entries)
        })
        .await
    }

    async fn find_entry(&self, cluster: &ClusterId) -> Result<Option<DirectoryEntry>> {
        Ok(self.find_entries(by_cluster(cluster)).await?.pop())
    }

    async fn record_entry(&self, entry: &DirectoryEntry) -> Result<Recorded> {
        let operation = "recording a cluster in the directory";
        for _ in 0..RECORD_ATTEMPTS {
            let inserted = bounded(self.deadline, operation, async {
                self.collection
                    .insert_one(entry_to_document(entry))
                    .await
                    .map_err(|source| Error::driver(operation, source))
            })
            .await;
            match inserted {
                Ok(_) => return Ok(Recorded::New),
                // Another setup recorded the cluster first: its entry is the answer.
                Err(error) if error.is_duplicate_key() => {
                    if let Some(existing) = self.find_entry(&entry.cluster_id).await? {
                        return Ok(Recorded::Existing(existing));
                    }
                }
                Err(error) => return Err(error),
            }
        }
        Err(Error::Contended {
            operation,
            cluster_id: entry.cluster_id.to_string(),
        })
    }

    async fn replace_entry(&self, entry: &DirectoryEntry) -> Result<Option<DirectoryEntry>> {
        let operation = "replacing a cluster in the directory";
        let before = bounded(self.deadline, operation, async {
            self.collection
                .find_one_and_replace(by_cluster(&entry.cluster_id), entry_to_document(entry))
                .upsert(true)
                .return_document(ReturnDocument::Before)
                .projection(doc! { "_id": 0 })
                .max_time(self.query_timeout)
                .await
                .map_err(|source| Error::driver(operation, source))
        })
        .await?;
        before.as_ref().map(document_to_entry).transpose()
    }

    async fn remove_entry(&self, cluster: &ClusterId, token: Option<&LocalToken>) -> Result<bool> {
        let operation = "removing a cluster from the directory";
        let mut filter = by_cluster(cluster);
        if let Some(token) = token {
            filter.insert("token", token.expose());
        }
        let result = bounded(self.deadline, operation, async {
            self.collection
                .delete_one(filter)
                .await
                .map_err(|source| Error::driver(operation, source))
        })
        .await?;
        Ok(result.deleted_count > 0)
    }
}

impl fmt::Debug for MongoDirectoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoDirectoryStore")
            .field("namespace", &self.collection.namespace().to_string())
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// The filter of one cluster's entry.
fn by_cluster(cluster: &ClusterId) -> Document {
    doc! { "cluster_id": { "$eq": cluster.as_str() } }
}

fn entry_to_document(entry: &DirectoryEntry) -> Document {
    doc! {
        "cluster_id": entry.cluster_id.as_str(),
        "local_url": &entry.local_url,
        "token": entry.token.expose(),
        "api_server": &entry.identity.api_server,
        "ca_sha256": entry.identity.ca_sha256.as_deref().map_or(Bson::Null, Bson::from),
        "recorded_at": Timestamp::now().to_string(),
    }
}

fn document_to_entry(document: &Document) -> Result<DirectoryEntry> {
    let claimed = document
        .get_str("cluster_id")
        .unwrap_or_default()
        .to_owned();
    let corrupt = |reason: String| Error::CorruptEntry {
        cluster_id: claimed.clone(),
        reason,
    };
    let text = |field: &str| {
        document
            .get_str(field)
            .map(str::to_owned)
            .map_err(|_| corrupt(format!("field {field} is not a string")))
    };
    let cluster_id = ClusterId::new(text("cluster_id")?).map_err(|e| corrupt(e.into()))?;
    let token = LocalToken::new(text("token")?)
        .ok_or_else(|| corrupt("field token is empty".to_owned()))?;
    let ca_sha256 = match document.get("ca_sha256") {
        None | Some(Bson::Null) => None,
        Some(Bson::String(hash)) => Some(hash.clone()),
        Some(_) => return Err(corrupt("field ca_sha256 is not a string".to_owned())),
    };
    Ok(DirectoryEntry {
        cluster_id,
        local_url: text("local_url")?,
        token,
        identity: ClusterIdentity {
            api_server: text("api_server")?,
            ca_sha256,
        },
    })
}

#[async_trait]
impl ClusterDirectoryStore for MongoDirectoryStore {
    async fn load(&self) -> framedb_core::Result<Vec<DirectoryEntry>> {
        Ok(self.find_entries(Document::new()).await?)
    }

    async fn get(&self, cluster: &ClusterId) -> framedb_core::Result<Option<DirectoryEntry>> {
        Ok(self.find_entry(cluster).await?)
    }

    async fn record(&self, entry: &DirectoryEntry) -> framedb_core::Result<Recorded> {
        Ok(self.record_entry(entry).await?)
    }

    async fn replace(
        &self,
        entry: &DirectoryEntry,
    ) -> framedb_core::Result<Option<DirectoryEntry>> {
        Ok(self.replace_entry(entry).await?)
    }

    async fn remove<'a>(
        &self,
        cluster: &ClusterId,
        token: Option<&'a LocalToken>,
    ) -> framedb_core::Result<bool> {
        Ok(self.remove_entry(cluster, token).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_bad_documents_are_corrupt_without_their_token() {
        let entry = DirectoryEntry {
            cluster_id: ClusterId::new("edge-7").unwrap(),
            local_url: "https://edge-7.example/".into(),
            token: LocalToken::generate(),
            identity: ClusterIdentity {
                api_server: "https://10.0.0.7:6443".into(),
                ca_sha256: Some("ab".into()),
            },
        };
        let document = entry_to_document(&entry);
        assert_eq!(document_to_entry(&document).unwrap(), entry);
        let mut bad = document.clone();
        bad.insert("ca_sha256", 7);
        let error = document_to_entry(&bad).unwrap_err();
        let shown = format!("{error} {error:?}");
        assert!(
            shown.contains("edge-7") && shown.contains("ca_sha256"),
            "{shown}"
        );
        assert!(!shown.contains(entry.token.expose()), "{shown}");
        let mut no_ca = document;
        no_ca.insert("ca_sha256", Bson::Null);
        assert_eq!(document_to_entry(&no_ca).unwrap().identity.ca_sha256, None);
    }
}
