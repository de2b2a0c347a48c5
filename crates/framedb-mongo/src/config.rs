//! Where the registry lives and how long it may take: the connection string, the database
//! and collection names, and the time limits applied to every operation.

use std::fmt;
use std::time::Duration;

use crate::uri::redact_uri;

/// Database that holds the registry unless configured otherwise.
pub const DEFAULT_DATABASE: &str = "framedb";
/// Collection that holds the registry unless configured otherwise.
pub const DEFAULT_COLLECTION: &str = "persistent_instances";
/// Default time the driver may spend finding a usable server before an operation fails.
pub const DEFAULT_SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time the driver may spend opening one connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default server-side time limit of one query (`maxTimeMS`).
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach the MongoDB registry.
///
/// The connection string may carry credentials; [`fmt::Debug`] shows it redacted, and
/// nothing in this crate logs or returns it unredacted.
#[derive(Clone, PartialEq, Eq)]
pub struct MongoConfig {
    /// The connection string (`mongodb://user:pass@host:27017/?options`).
    pub uri: String,
    /// The database of the registry (default `framedb`).
    pub database: String,
    /// The collection of the registry (default `persistent_instances`).
    pub collection: String,
    /// How long an operation may wait for a reachable server (default 5 s). It replaces
    /// any `serverSelectionTimeoutMS` of the connection string.
    pub server_selection_timeout: Duration,
    /// How long opening one connection may take (default 5 s). It replaces any
    /// `connectTimeoutMS` of the connection string.
    pub connect_timeout: Duration,
    /// How long the server may work on one query, sent as `maxTimeMS` (default 10 s).
    pub query_timeout: Duration,
    /// How durable a write is before MongoDB acknowledges it (default
    /// [`Durability::Journaled`]). It replaces any `w` or `journal` of the connection
    /// string: an answer of the API depends on it.
    pub durability: Durability,
}

/// How durable a registry write is when MongoDB acknowledges it, and so when FrameDB
/// answers the call that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// In the journal of the server that took it (`j: true`): it survives a crash of that
    /// server. For a single server.
    #[default]
    Journaled,
    /// In the journals of a majority of the replica set (`w: "majority", j: true`), and
    /// read with read concern `majority`: it survives the loss of the primary.
    Majority,
    /// Acknowledged from memory (`w: 1`, the driver's default): a crash of MongoDB can
    /// lose it after FrameDB has answered. For throw-away registries only.
    Acknowledged,
}

impl MongoConfig {
    /// The default configuration for the server at `uri`.
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            database: DEFAULT_DATABASE.to_owned(),
            collection: DEFAULT_COLLECTION.to_owned(),
            server_selection_timeout: DEFAULT_SERVER_SELECTION_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            query_timeout: DEFAULT_QUERY_TIMEOUT,
            durability: Durability::default(),
        }
    }

    /// Uses the database `name`.
    #[must_use]
    pub fn database(mut self, name: impl Into<String>) -> Self {
        self.database = name.into();
        self
    }

    /// Uses the collection `name`.
    #[must_use]
    pub fn collection(mut self, name: impl Into<String>) -> Self {
        self.collection = name.into();
        self
    }

    /// Sets how long an operation may wait for a reachable server.
    #[must_use]
    pub fn server_selection_timeout(mut self, timeout: Duration) -> Self {
        self.server_selection_timeout = timeout;
        self
    }

    /// Sets how long opening one connection may take.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the server-side time limit of one query.
    #[must_use]
    pub fn query_timeout(mut self, timeout: Duration) -> Self {
        self.query_timeout = timeout;
        self
    }

    /// Sets how durable a write is before it is acknowledged.
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The connection string without its credentials, for logs and messages.
    pub fn redacted_uri(&self) -> String {
        redact_uri(&self.uri)
    }

    /// The longest one operation may take before the registry gives up on it by itself:
    /// finding a server, opening a connection and the query's own limit together. It only
    /// matters when a server accepts connections but stops answering.
    pub fn operation_deadline(&self) -> Duration {
        self.server_selection_timeout
            .saturating_add(self.connect_timeout)
            .saturating_add(self.query_timeout)
    }
}

impl fmt::Debug for MongoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoConfig")
            .field("uri", &self.redacted_uri())
            .field("database", &self.database)
            .field("collection", &self.collection)
            .field("server_selection_timeout", &self.server_selection_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("query_timeout", &self.query_timeout)
            .field("durability", &self.durability)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_builders() {
        let config = MongoConfig::new("mongodb://localhost");
        assert_eq!(config.database, "framedb");
        assert_eq!(config.collection, "persistent_instances");
        assert_eq!(config.server_selection_timeout, Duration::from_secs(5));
        assert_eq!(config.connect_timeout, Duration::from_secs(5));
        assert_eq!(config.query_timeout, Duration::from_secs(10));
        let config = config
            .database("db")
            .collection("coll")
            .server_selection_timeout(Duration::from_secs(1))
            .connect_timeout(Duration::from_secs(2))
            .query_timeout(Duration::from_secs(3));
        assert_eq!(
            (config.database.as_str(), config.collection.as_str()),
            ("db", "coll")
        );
        assert_eq!(config.operation_deadline(), Duration::from_secs(6));
    }

    #[test]
    fn debug_hides_credentials() {
        let config = MongoConfig::new("mongodb://admin:s3cret@db.example:27017/?tls=true");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(!shown.contains("admin"), "{shown}");
        assert!(shown.contains("db.example:27017"), "{shown}");
    }
}
