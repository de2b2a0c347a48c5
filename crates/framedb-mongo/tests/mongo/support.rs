//! The MongoDB server of the tests and a database of one's own per test, so that tests
//! run in parallel and leave nothing behind.

use std::time::Duration;

use framedb_mongo::{MongoConfig, MongoRegistry};

/// The server's URI, from `MONGODB_URI`. Without it: a panic when `CI=true` (tests are
/// never skipped silently there), else a note on stderr and `None`, and the test returns.
pub fn mongodb_uri(test: &str) -> Option<String> {
    match std::env::var("MONGODB_URI") {
        Ok(uri) if !uri.trim().is_empty() => Some(uri),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => panic!(
            "MONGODB_URI is not set, and with CI=true the MongoDB tests may not be skipped; \
             point it at a MongoDB server (scripts/test.sh starts one)"
        ),
        _ => {
            eprintln!("note: {test}: MONGODB_URI is not set; skipping the MongoDB part");
            None
        }
    }
}

/// The configuration of a test's own database on the test server.
pub fn test_config(uri: &str, test: &str) -> MongoConfig {
    // Database names are at most 63 bytes; test names are kept short enough.
    let database = format!("framedb_test_{test}_{}", std::process::id());
    assert!(database.len() <= 63, "database name {database} is too long");
    MongoConfig::new(uri)
        .database(database)
        .server_selection_timeout(Duration::from_secs(10))
}

/// A registry in a fresh database of its own.
pub struct TestDb {
    /// The registry under test.
    pub registry: MongoRegistry,
    /// Its configuration.
    pub config: MongoConfig,
}

impl TestDb {
    /// A registry in an empty database named after `test`, or `None` without a server.
    pub async fn open(test: &str) -> Option<Self> {
        let uri = mongodb_uri(test)?;
        Some(Self::open_with(test_config(&uri, test)).await)
    }

    /// A registry in an empty database as `config` names it.
    pub async fn open_with(config: MongoConfig) -> Self {
        // A crashed earlier run of the same process id may have left the database behind.
        let options = MongoRegistry::client_options(&config).await.unwrap();
        let client = mongodb::Client::with_options(options).unwrap();
        client.database(&config.database).drop().await.unwrap();
        let registry = MongoRegistry::connect(&config)
            .await
            .unwrap_or_else(|error| panic!("cannot connect to the test server: {error}"));
        Self { registry, config }
    }

    /// Drops the test's database.
    pub async fn drop(self) {
        self.registry
            .client()
            .database(&self.config.database)
            .drop()
            .await
            .unwrap();
    }
}
