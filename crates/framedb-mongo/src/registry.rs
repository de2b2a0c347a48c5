//! [`MongoRegistry`]: the [`InstanceRegistry`] port on one MongoDB collection.
//!
//! One shared [`Client`] (a pool of connections; cloning the registry shares it) serves
//! every call. The unique index on `framedb_id` is what makes a create exclusive across
//! the service's replicas (docs/architecture.md, "Create and delete sagas"); it and the `cluster_id` + `node_id` index are
//! created at start-up. Every query carries the configured `maxTimeMS`, and every
//! operation a client-side deadline, so a caller always gets an answer.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use framedb_core::{
    FramedbId, InstanceRecord, InstanceRegistry, InstanceStatus, Metadata, Query, Removal, Stamp,
    StorageSize, Timestamp,
};
use mongodb::bson::{Document, doc};
use mongodb::options::{Acknowledgment, ClientOptions, IndexOptions, ReadConcern, WriteConcern};
use mongodb::{Client, Collection, IndexModel};

use crate::config::{Durability, MongoConfig};
use crate::document::{document_to_record, object_to_document, port_to_bson, record_to_document};
use crate::error::{Error, Result};
use crate::render;

/// Name of the unique index on `framedb_id`.
pub const ID_INDEX: &str = "framedb_id_unique";
/// Name of the index on `cluster_id` + `node_id` (+ `framedb_id`, the order results come
/// in, so that listing a cluster or a node needs no sort in memory).
pub const CLUSTER_NODE_INDEX: &str = "cluster_id_node_id_framedb_id";
/// Name of the index on `status` + `port`: every reconcile pass looks for the records it
/// may have to settle (`Deleting`, or `Provisioning` without a port), a handful among all
/// the fleet's; without it each pass scanned the whole collection (0.6 s over 20,000
/// records on SecantusDB, during which it answered nothing else).
pub const STATUS_PORT_INDEX: &str = "status_port";
/// The driver's application name unless the connection string sets one.
const APP_NAME: &str = "framedb";
/// The longest a readiness check ([`InstanceRegistry::ping`]) waits for MongoDB: a probe
/// wants a prompt answer, not the server selection timeout of a request.
pub const PING_DEADLINE: Duration = Duration::from_secs(2);

/// The registry of persistent instances in MongoDB.
#[derive(Clone)]
pub struct MongoRegistry {
    client: Client,
    collection: Collection<Document>,
    query_timeout: Duration,
    deadline: Duration,
}

impl MongoRegistry {
    /// Connects as `config` says and makes sure the registry's indexes exist.
    ///
    /// # Errors
    /// [`Error::InvalidUri`] for a connection string the driver refuses; [`Error::Driver`]
    /// when the server cannot be reached within the server selection timeout or refuses
    /// the indexes (for instance because two records already share a `framedb_id`).
    pub async fn connect(config: &MongoConfig) -> Result<Self> {
        let options = Self::client_options(config).await?;
        let client = Client::with_options(options)
            .map_err(|source| Error::driver("creating the MongoDB client", source))?;
        let registry = Self::new(client, config);
        registry.ensure_indexes().await?;
        tracing::info!(
            uri = %config.redacted_uri(),
            database = %config.database,
            collection = %config.collection,
            "the instance registry is in MongoDB"
        );
        Ok(registry)
    }

    /// The driver options of `config`: its connection string with the configured server
    /// selection and connect timeouts (and the application name `framedb` unless the
    /// string names one). For callers that build a shared [`Client`] themselves.
    ///
    /// # Errors
    /// [`Error::InvalidUri`] for a connection string the driver refuses. Its reason is the
    /// driver's, unless that would quote the credentials.
    pub async fn client_options(config: &MongoConfig) -> Result<ClientOptions> {
        let mut options = ClientOptions::parse(config.uri.as_str())
            .await
            .map_err(|error| Error::InvalidUri {
                uri: config.redacted_uri(),
                reason: scrubbed_reason(&config.uri, &error.kind.to_string()),
            })?;
        options.server_selection_timeout = Some(config.server_selection_timeout);
        options.connect_timeout = Some(config.connect_timeout);
        options.app_name.get_or_insert_with(|| APP_NAME.to_owned());
        let (write, read) = match config.durability {
            Durability::Journaled => (WriteConcern::builder().journal(true).build(), None),
            Durability::Majority => (
                WriteConcern::builder()
                    .w(Acknowledgment::Majority)
                    .journal(true)
                    .build(),
                Some(ReadConcern::majority()),
            ),
            Durability::Acknowledged => (WriteConcern::nodes(1), None),
        };
        options.write_concern = Some(write);
        options.read_concern = read;
        Ok(options)
    }

    /// A registry on an existing client (cheap: nothing is sent to the server). Callers
    /// that share a client this way should call [`Self::ensure_indexes`] once at start-up.
    pub fn new(client: Client, config: &MongoConfig) -> Self {
        let collection = client
            .database(&config.database)
            .collection::<Document>(&config.collection);
        Self {
            client,
            collection,
            query_timeout: config.query_timeout,
            deadline: config.operation_deadline(),
        }
    }

    /// Creates the unique index on `framedb_id` ([`ID_INDEX`]), the index on
    /// `cluster_id` + `node_id` ([`CLUSTER_NODE_INDEX`]) and the one on `status` + `port`
    /// ([`STATUS_PORT_INDEX`]) unless they exist.
    ///
    /// # Errors
    /// [`Error::Driver`] when the server cannot be reached or refuses an index;
    /// [`Error::Deadline`] when it does not answer in time.
    pub async fn ensure_indexes(&self) -> Result<()> {
        let index = |keys: Document, name: &str, unique: bool| {
            let options = IndexOptions::builder()
                .name(name.to_owned())
                .unique(unique.then_some(true))
                .build();
            IndexModel::builder().keys(keys).options(options).build()
        };
        let indexes = [
            index(doc! { "framedb_id": 1 }, ID_INDEX, true),
            index(
                doc! { "cluster_id": 1, "node_id": 1, "framedb_id": 1 },
                CLUSTER_NODE_INDEX,
                false,
            ),
            index(doc! { "status": 1, "port": 1 }, STATUS_PORT_INDEX, false),
        ];
        let operation = "creating the registry's indexes";
        self.bounded(operation, async {
            self.collection
                .create_indexes(indexes)
                .await
                .map_err(|source| Error::driver(operation, source))
        })
        .await?;
        Ok(())
    }

    /// The shared client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The registry's collection.
    pub fn collection(&self) -> &Collection<Document> {
        &self.collection
    }

    /// Runs `operation` under the registry's client-side deadline.
    async fn bounded<T>(
        &self,
        operation: &'static str,
        future: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        bounded(self.deadline, operation, future).await
    }

    /// Records `records` in one write (`insertMany`, ordered): a bulk load of a registry
    /// (an import, the fleet benchmark's fill), not the create path, which registers one
    /// instance at a time through [`InstanceRegistry::insert`]. The unique index on
    /// `framedb_id` holds as for single inserts: a taken id stops the load there.
    ///
    /// # Errors
    /// As [`InstanceRegistry::insert`]; records before the refused one stay recorded.
    pub async fn insert_all(&self, records: &[InstanceRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let operation = "inserting instance records";
        self.bounded(operation, async {
            self.collection
                .insert_many(records.iter().map(record_to_document))
                .await
                .map_err(|source| Error::driver(operation, source))
        })
        .await?;
        Ok(())
    }

    async fn insert_record(&self, record: &InstanceRecord) -> Result<()> {
        let operation = "inserting an instance record";
        self.bounded(operation, async {
            self.collection
                .insert_one(record_to_document(record))
                .await
                .map_err(|source| Error::driver(operation, source).for_instance(&record.framedb_id))
        })
        .await?;
        Ok(())
    }

    /// Whether a record had this id and stamp and was not `Deleting`
    /// (`update_deployment`'s write).
    async fn set_deployment(
        &self,
        id: &FramedbId,
        stamp: &Stamp,
        port: Option<u16>,
        status: InstanceStatus,
    ) -> Result<bool> {
        let operation = "recording an instance's deployment";
        let update = doc! {
            "$set": {
                "port": port_to_bson(port),
                "status": status.as_str(),
                "updated_at": Timestamp::now().to_string(),
            }
        };
        let result = self
            .bounded(operation, async {
                self.collection
                    .update_one(not_deleting(by_id_and_stamp(id, stamp)), update)
                    .await
                    .map_err(|source| Error::driver(operation, source))
            })
            .await?;
        Ok(result.matched_count > 0)
    }

    /// Whether a record had this id and stamp (the write of `mark_deleting` and `amend`,
    /// which `$set` what `set` holds, and the time).
    async fn set_stamped(
        &self,
        operation: &'static str,
        id: &FramedbId,
        stamp: &Stamp,
        mut set: Document,
    ) -> Result<bool> {
        set.insert("updated_at", Timestamp::now().to_string());
        let update = doc! { "$set": set };
        let result = self
            .bounded(operation, async {
                self.collection
                    .update_one(by_id_and_stamp(id, stamp), update)
                    .await
                    .map_err(|source| Error::driver(operation, source))
            })
            .await?;
        Ok(result.matched_count > 0)
    }

    /// Whether a record had this id and stamp (`remove_stamped`'s write).
    async fn delete_stamped_record(&self, id: &FramedbId, stamp: &Stamp) -> Result<bool> {
        let operation = "removing an instance record";
        let result = self
            .bounded(operation, async {
                self.collection
                    .delete_one(by_id_and_stamp(id, stamp))
                    .await
                    .map_err(|source| Error::driver(operation, source))
            })
            .await?;
        Ok(result.deleted_count > 0)
    }

    /// Sends `ping` to the registry's database, within [`PING_DEADLINE`] (or the
    /// registry's own deadline when that is shorter).
    async fn ping_database(&self) -> Result<()> {
        let operation = "checking that the registry answers";
        let database = self.client.database(&self.collection.namespace().db);
        bounded(self.deadline.min(PING_DEADLINE), operation, async {
            database
                .run_command(doc! { "ping": 1 })
                .await
                .map_err(|source| Error::driver(operation, source))
        })
        .await?;
        Ok(())
    }

    async fn find_record(&self, id: &FramedbId) -> Result<Option<InstanceRecord>> {
        let operation = "reading an instance record";
        let document = self
            .bounded(operation, async {
                self.collection
                    .find_one(by_id(id))
                    .projection(doc! { "_id": 0 })
                    .max_time(self.query_timeout)
                    .await
                    .map_err(|source| Error::driver(operation, source))
            })
            .await?;
        document.as_ref().map(document_to_record).transpose()
    }

    async fn delete_record(&self, id: &FramedbId) -> Result<bool> {
        let operation = "removing an instance record";
        let result = self
            .bounded(operation, async {
                self.collection
                    .delete_one(by_id(id))
                    .await
                    .map_err(|source| Error::driver(operation, source))
            })
            .await?;
        Ok(result.deleted_count > 0)
    }

    async fn find_records(&self, query: &Query) -> Result<Vec<InstanceRecord>> {
        // MongoDB reads a limit of 0 as "no limit"; the query means "nothing".
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let operation = "querying instance records";
        let failed = |source| Error::driver(operation, source);
        self.bounded(operation, async {
            let mut cursor = self
                .collection
                .find(render::filter(&query.filter))
                .sort(render::sort(query.sort.as_ref()))
                .skip(query.skip)
                .limit(i64::try_from(query.limit).unwrap_or(i64::MAX))
                .projection(doc! { "_id": 0 })
                .max_time(self.query_timeout)
                .await
                .map_err(failed)?;
            let mut records = Vec::new();
            while cursor.advance().await.map_err(failed)? {
                let document = cursor.deserialize_current().map_err(failed)?;
                records.push(document_to_record(&document)?);
            }
            Ok(records)
        })
        .await
    }
}

impl fmt::Debug for MongoRegistry {
    // The client is left out: its options hold the connection's settings.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoRegistry")
            .field("namespace", &self.collection.namespace().to_string())
            .field("query_timeout", &self.query_timeout)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// Runs `operation` under a client-side `deadline` (a server that accepts connections but
/// stops answering still gets the caller an answer).
pub(crate) async fn bounded<T>(
    deadline: Duration,
    operation: &'static str,
    future: impl Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(deadline, future)
        .await
        .unwrap_or(Err(Error::Deadline {
            operation,
            deadline,
        }))
}

/// The filter of one record.
fn by_id(id: &FramedbId) -> Document {
    doc! { "framedb_id": { "$eq": id.as_str() } }
}

/// The filter of one record, if the create stamped `stamp` made it (a record from before
/// stamps may have no stamp field: the empty stamp matches it).
fn by_id_and_stamp(id: &FramedbId, stamp: &Stamp) -> Document {
    let stamp = if stamp.is_unstamped() {
        doc! { "$in": ["", null] }
    } else {
        doc! { "$eq": stamp.as_str() }
    };
    doc! { "framedb_id": { "$eq": id.as_str() }, "stamp": stamp }
}

/// `filter`, for a record that no delete has begun on.
fn not_deleting(mut filter: Document) -> Document {
    filter.insert("status", doc! { "$ne": InstanceStatus::Deleting.as_str() });
    filter
}

/// The driver's reason for refusing `uri`, unless it quotes any part of the user-info.
fn scrubbed_reason(uri: &str, reason: &str) -> String {
    let after_scheme = uri.split_once("://").map_or(uri, |(_, rest)| rest);
    let user_info = after_scheme.rfind('@').map_or("", |at| &after_scheme[..at]);
    let quotes_credentials = user_info
        .split([':', '@', '?', '/', '&', '='])
        .any(|part| !part.is_empty() && reason.contains(part));
    if quotes_credentials {
        "the driver refused it (its explanation is not shown, as it quotes the credentials)"
            .to_owned()
    } else {
        reason.to_owned()
    }
}

#[async_trait]
impl InstanceRegistry for MongoRegistry {
    async fn insert(&self, record: &InstanceRecord) -> framedb_core::Result<()> {
        Ok(self.insert_record(record).await?)
    }

    async fn update_deployment(
        &self,
        id: &FramedbId,
        stamp: &Stamp,
        port: Option<u16>,
        status: InstanceStatus,
    ) -> framedb_core::Result<()> {
        if self.set_deployment(id, stamp, port, status).await? {
            Ok(())
        } else {
            Err(framedb_core::Error::InstanceNotFound(id.clone()))
        }
    }

    async fn mark_deleting(
        &self,
        id: &FramedbId,
        stamp: &Stamp,
        removal: Removal,
    ) -> framedb_core::Result<()> {
        let set = doc! {
            "status": InstanceStatus::Deleting.as_str(),
            "removal": removal.as_str(),
        };
        if self
            .set_stamped("marking an instance deleting", id, stamp, set)
            .await?
        {
            Ok(())
        } else {
            Err(framedb_core::Error::InstanceNotFound(id.clone()))
        }
    }

    async fn amend(
        &self,
        id: &FramedbId,
        stamp: &Stamp,
        metadata: &Metadata,
        storage_size: &StorageSize,
    ) -> framedb_core::Result<()> {
        let set = doc! {
            "metadata": object_to_document(metadata.as_map()),
            "storage_size": storage_size.as_str(),
        };
        if self
            .set_stamped("changing an instance record", id, stamp, set)
            .await?
        {
            Ok(())
        } else {
            Err(framedb_core::Error::InstanceNotFound(id.clone()))
        }
    }

    async fn get(&self, id: &FramedbId) -> framedb_core::Result<InstanceRecord> {
        self.find_record(id)
            .await?
            .ok_or_else(|| framedb_core::Error::InstanceNotFound(id.clone()))
    }

    async fn remove(&self, id: &FramedbId) -> framedb_core::Result<bool> {
        Ok(self.delete_record(id).await?)
    }

    async fn remove_stamped(&self, id: &FramedbId, stamp: &Stamp) -> framedb_core::Result<bool> {
        Ok(self.delete_stamped_record(id, stamp).await?)
    }

    async fn find(&self, query: &Query) -> framedb_core::Result<Vec<InstanceRecord>> {
        Ok(self.find_records(query).await?)
    }

    async fn ping(&self) -> framedb_core::Result<()> {
        Ok(self.ping_database().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_that_quote_credentials_are_withheld() {
        let uri = "mongodb://admin:pa?ss@host/db";
        assert!(!scrubbed_reason(uri, "invalid server address admin:pa: bad port").contains("pa"));
        assert_eq!(
            scrubbed_reason("mongodb://host:x", "invalid port"),
            "invalid port"
        );
    }

    #[tokio::test]
    async fn options_carry_the_configured_timeouts() {
        let config =
            MongoConfig::new("mongodb://u:p@127.0.0.1:27017/?serverSelectionTimeoutMS=60000")
                .server_selection_timeout(Duration::from_secs(2))
                .connect_timeout(Duration::from_secs(3));
        let options = MongoRegistry::client_options(&config).await.unwrap();
        assert_eq!(
            options.server_selection_timeout,
            Some(Duration::from_secs(2))
        );
        assert_eq!(options.connect_timeout, Some(Duration::from_secs(3)));
        assert_eq!(options.app_name.as_deref(), Some("framedb"));
    }

    #[tokio::test]
    async fn writes_are_journaled_unless_configured_otherwise() {
        // The connection string asks for w=0; an answer of the API depends on the write.
        let uri = "mongodb://127.0.0.1:27017/?w=0&journal=false";
        let options = MongoRegistry::client_options(&MongoConfig::new(uri))
            .await
            .unwrap();
        let write = options.write_concern.unwrap();
        assert_eq!(write.journal, Some(true));
        assert!(write.w.is_none(), "w is the server's default, 1");
        assert!(options.read_concern.is_none());

        let majority = MongoConfig::new(uri).durability(Durability::Majority);
        let options = MongoRegistry::client_options(&majority).await.unwrap();
        let write = options.write_concern.unwrap();
        assert_eq!(
            (write.w, write.journal),
            (Some(Acknowledgment::Majority), Some(true))
        );
        assert_eq!(options.read_concern, Some(ReadConcern::majority()));

        let fast = MongoConfig::new(uri).durability(Durability::Acknowledged);
        let options = MongoRegistry::client_options(&fast).await.unwrap();
        assert_eq!(options.write_concern, Some(WriteConcern::nodes(1)));
    }

    #[tokio::test]
    async fn refused_uris_are_redacted() {
        let config = MongoConfig::new("mongodb://admin:s3cret@host:notaport");
        let error = MongoRegistry::client_options(&config).await.unwrap_err();
        let shown = error.to_string();
        assert!(matches!(error, Error::InvalidUri { .. }));
        assert!(
            !shown.contains("s3cret") && !shown.contains("admin"),
            "{shown}"
        );
    }
}
