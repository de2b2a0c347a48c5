//! [`MongoFence`]: the local config service's record of undone or deleted creates (by
//! stamp), in its own collection of the registry's database, so that a restart keeps it.
//!
//! One document per create: `framedb_id`, `stamp` and `buried_at` (a BSON date). A
//! unique index on `framedb_id` + `stamp` ([`FENCE_INDEX`]) keeps one per create, and a
//! TTL index on `buried_at` ([`FENCE_TTL_INDEX`]) lets the server drop them after a day,
//! far longer than any retry of the global service. Writes use the registry's durability.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use framedb_core::{Fence, FramedbId, Stamp};
use mongodb::bson::{DateTime, Document, doc};
use mongodb::options::IndexOptions;
use mongodb::{Client, Collection, IndexModel};

use crate::config::MongoConfig;
use crate::error::{Error, Result};
use crate::registry::bounded;

/// The collection of the fence, in the registry's database.
pub const FENCE_COLLECTION: &str = "tombstones";
/// Name of the unique index on `framedb_id` + `stamp`.
pub const FENCE_INDEX: &str = "framedb_id_stamp_unique";
/// Name of the TTL index on `buried_at`.
pub const FENCE_TTL_INDEX: &str = "buried_at_ttl";
/// How long the server keeps an entry.
const KEPT: Duration = Duration::from_secs(24 * 60 * 60);

/// Undone or deleted creates, in MongoDB.
#[derive(Clone)]
pub struct MongoFence {
    collection: Collection<Document>,
    query_timeout: Duration,
    deadline: Duration,
}

impl MongoFence {
    /// The fence in `config`'s database, on an existing client (the registry's: nothing
    /// is sent to the server). Call [`Self::ensure_indexes`] once at start-up.
    pub fn new(client: &Client, config: &MongoConfig) -> Self {
        Self {
            collection: client
                .database(&config.database)
                .collection::<Document>(FENCE_COLLECTION),
            query_timeout: config.query_timeout,
            deadline: config.operation_deadline(),
        }
    }

    /// Creates [`FENCE_INDEX`] and [`FENCE_TTL_INDEX`] unless they exist.
    ///
    /// # Errors
    /// [`Error::Driver`] when the server cannot be reached or refuses an index;
    /// [`Error::Deadline`] when it does not answer in time.
    pub async fn ensure_indexes(&self) -> Result<()> {
        let unique = IndexModel::builder()
            .keys(doc! { "framedb_id": 1, "stamp": 1 })
            .options(
                IndexOptions::builder()
                    .name(FENCE_INDEX.to_owned())
                    .unique(true)
                    .build(),
            )
            .build();
        let ttl = IndexModel::builder()
            .keys(doc! { "buried_at": 1 })
            .options(
                IndexOptions::builder()
                    .name(FENCE_TTL_INDEX.to_owned())
                    .expire_after(KEPT)
                    .build(),
            )
            .build();
        let operation = "creating the fence's indexes";
        bounded(self.deadline, operation, async {
            self.collection
                .create_indexes([unique, ttl])
                .await
                .map_err(|source| Error::driver(operation, source))
        })
        .await?;
        Ok(())
    }

    /// The fence's collection.
    pub fn collection(&self) -> &Collection<Document> {
        &self.collection
    }
}

fn entry(id: &FramedbId, stamp: &Stamp) -> Document {
    doc! { "framedb_id": { "$eq": id.as_str() }, "stamp": { "$eq": stamp.as_str() } }
}

impl fmt::Debug for MongoFence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoFence")
            .field("collection", &self.collection.name())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Fence for MongoFence {
    async fn bury(&self, id: &FramedbId, stamp: &Stamp) -> framedb_core::Result<()> {
        let operation = "recording an undone create";
        let insert = doc! { "$setOnInsert": {
            "framedb_id": id.as_str(),
            "stamp": stamp.as_str(),
            "buried_at": DateTime::now(),
        }};
        bounded(self.deadline, operation, async {
            self.collection
                .update_one(entry(id, stamp), insert)
                .upsert(true)
                .await
                .map_err(|source| Error::driver(operation, source))
        })
        .await?;
        Ok(())
    }

    async fn is_buried(&self, id: &FramedbId, stamp: &Stamp) -> framedb_core::Result<bool> {
        let operation = "reading the undone creates";
        let found = bounded(self.deadline, operation, async {
            self.collection
                .find_one(entry(id, stamp))
                .max_time(self.query_timeout)
                .await
                .map_err(|source| Error::driver(operation, source))
        })
        .await?;
        Ok(found.is_some())
    }
}
