//! [`MongoLease`]: a [`Lease`] shared by every replica on one MongoDB, so that one global
//! service reconciles at a time.
//!
//! One document per lease in [`LEASE_COLLECTION`]: `_id` (the lease's name), `holder`
//! and `expires_at` (a BSON date). Taking it is one conditional upsert: the filter
//! matches the document only when `holder` has it or its term has ended; otherwise the
//! upsert's insert of the same `_id` fails with a duplicate key, which means another
//! holder has it. Writes use the registry's durability.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use framedb_core::Lease;
use mongodb::bson::{DateTime, Document, doc};
use mongodb::{Client, Collection};

use crate::config::MongoConfig;
use crate::error::Error;
use crate::registry::bounded;

/// The collection of leases, in the registry's database.
pub const LEASE_COLLECTION: &str = "leases";

/// One named lease in MongoDB.
#[derive(Clone)]
pub struct MongoLease {
    collection: Collection<Document>,
    name: String,
    deadline: Duration,
}

impl MongoLease {
    /// The lease `name` in `config`'s database, on an existing client (the registry's:
    /// nothing is sent to the server).
    pub fn new(client: &Client, config: &MongoConfig, name: &str) -> Self {
        Self {
            collection: client
                .database(&config.database)
                .collection::<Document>(LEASE_COLLECTION),
            name: name.to_owned(),
            deadline: config.operation_deadline(),
        }
    }

    /// The lease's collection.
    pub fn collection(&self) -> &Collection<Document> {
        &self.collection
    }
}

impl fmt::Debug for MongoLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoLease")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Lease for MongoLease {
    async fn hold(&self, holder: &str, term: Duration) -> framedb_core::Result<bool> {
        let operation = "taking the reconcile lease";
        let now = DateTime::now();
        let until = DateTime::from_millis(
            now.timestamp_millis()
                .saturating_add(i64::try_from(term.as_millis()).unwrap_or(i64::MAX)),
        );
        let takeable = doc! {
            "_id": { "$eq": &self.name },
            "$or": [ { "holder": { "$eq": holder } }, { "expires_at": { "$lte": now } } ],
        };
        let take = doc! { "$set": { "holder": holder, "expires_at": until } };
        let taken = bounded(self.deadline, operation, async {
            self.collection
                .update_one(takeable, take)
                .upsert(true)
                .await
                .map_err(|source| Error::driver(operation, source))
        })
        .await;
        match taken {
            Ok(_) => Ok(true),
            // The document exists and the filter did not match it: another holder's term.
            Err(error) if error.is_duplicate_key() => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    async fn release(&self, holder: &str) -> framedb_core::Result<()> {
        let operation = "giving the reconcile lease up";
        let held = doc! { "_id": { "$eq": &self.name }, "holder": { "$eq": holder } };
        bounded(self.deadline, operation, async {
            self.collection
                .delete_one(held)
                .await
                .map_err(|source| Error::driver(operation, source))
        })
        .await?;
        Ok(())
    }
}
