//! The cluster directory: where each known cluster's local config service answers, and
//! the token that service requires (each cluster its own, so that no cluster's service
//! can act for another's).

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};

use framedb_core::ClusterId;
use url::Url;

/// The node port on which a cluster's config service answers.
pub const LOCAL_SERVICE_PORT: u16 = 32566;

/// A local config service's base URL: `http` or `https`, with a host, and no credentials,
/// query or fragment.
///
/// # Errors
/// A sentence that says what is wrong with `text`.
pub fn service_url(text: &str) -> Result<Url, String> {
    // The sentences never quote the text: it may hold credentials.
    let mut url = Url::parse(text).map_err(|error| format!("the URL is not valid ({error})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the URL must not carry credentials".into());
    }
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("the URL must be http:// or https:// with a host".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the URL must have no query or fragment".into());
    }
    // The API's paths are joined below the URL's own path, so that a service behind a
    // path prefix keeps it.
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// Where each known cluster's local config service answers.
///
/// Entries come from the operator (`--local-service`, `--known-cluster`, the embedded
/// default) or from `/framedb-config/setup`. An API call never replaces or removes an
/// operator's entry, nor re-points one that setup recorded: a caller must not be able to
/// send a cluster's traffic, and its token, elsewhere.
#[derive(Debug, Default)]
pub struct ClusterDirectory {
    entries: RwLock<BTreeMap<ClusterId, Entry>>,
}

#[derive(Debug, Clone)]
struct Entry {
    url: Url,
    token: Option<LocalToken>,
    by_setup: bool,
}

/// The token one cluster's local service requires. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct LocalToken(std::sync::Arc<str>);

impl LocalToken {
    /// Wraps `token`; an empty one is none.
    pub fn new(token: impl Into<String>) -> Option<Self> {
        let token = token.into();
        (!token.is_empty()).then(|| Self(token.into()))
    }

    /// A new token of 256 bits from the operating system's random source, URL-safe.
    ///
    /// # Panics
    /// When the operating system has no random source to read.
    pub fn generate() -> Self {
        use base64::Engine as _;
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the operating system's random source");
        Self(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(bytes)
                .into(),
        )
    }

    /// The token itself, to send or to install.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for LocalToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalToken(..)")
    }
}

/// Why setup may not record a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// The operator configured this cluster.
    Configured,
    /// Setup recorded this cluster at another address.
    Elsewhere,
}

impl ClusterDirectory {
    /// An empty directory: every cluster is unknown.
    pub fn new() -> Self {
        Self::default()
    }

    /// The URL a cluster's service has unless configured otherwise:
    /// `http://{cluster_id}:32566`.
    ///
    /// # Errors
    /// When the cluster id is not a valid host name.
    pub fn default_url(cluster: &ClusterId) -> Result<Url, String> {
        service_url(&format!("http://{cluster}:{LOCAL_SERVICE_PORT}"))
    }

    /// Records where `cluster`'s service answers and the token it requires, as the
    /// operator configured it.
    pub fn insert(&self, cluster: ClusterId, url: Url, token: Option<LocalToken>) {
        tracing::info!(cluster_id = %cluster, %url, "local config service configured");
        let entry = Entry {
            url,
            token,
            by_setup: false,
        };
        self.write().insert(cluster, entry);
    }

    /// Whether setup may record `cluster` at `url`: when it is unknown, or setup recorded
    /// it at that same address before.
    ///
    /// # Errors
    /// The [`Conflict`] otherwise.
    pub fn may_record(&self, cluster: &ClusterId, url: &Url) -> Result<(), Conflict> {
        match self.read().get(cluster) {
            None => Ok(()),
            Some(entry) if !entry.by_setup => Err(Conflict::Configured),
            Some(entry) if entry.url != *url => Err(Conflict::Elsewhere),
            Some(_) => Ok(()),
        }
    }

    /// Records where setup installed `cluster`'s service, and the token it installed.
    ///
    /// # Errors
    /// As [`Self::may_record`]; nothing is changed then.
    pub fn record(&self, cluster: ClusterId, url: Url, token: LocalToken) -> Result<(), Conflict> {
        let mut entries = self.write();
        match entries.get(&cluster) {
            Some(entry) if !entry.by_setup => return Err(Conflict::Configured),
            Some(entry) if entry.url != url => return Err(Conflict::Elsewhere),
            _ => {}
        }
        tracing::info!(cluster_id = %cluster, %url, "local config service recorded by setup");
        entries.insert(
            cluster,
            Entry {
                url,
                token: Some(token),
                by_setup: true,
            },
        );
        Ok(())
    }

    /// Forgets `cluster` if setup recorded it (an operator's entry stays); its instances'
    /// calls are then 404 `cluster_not_found`.
    pub fn forget(&self, cluster: &ClusterId) {
        let mut entries = self.write();
        if entries.get(cluster).is_some_and(|entry| entry.by_setup) {
            entries.remove(cluster);
            tracing::info!(cluster_id = %cluster, "local config service forgotten");
        }
    }

    /// Whether `cluster` is known.
    pub fn contains(&self, cluster: &ClusterId) -> bool {
        self.read().contains_key(cluster)
    }

    /// Where `cluster`'s service answers, if the cluster is known.
    pub fn url(&self, cluster: &ClusterId) -> Option<Url> {
        self.read().get(cluster).map(|entry| entry.url.clone())
    }

    /// Where `cluster`'s service answers and the token it requires, if it is known.
    pub fn endpoint(&self, cluster: &ClusterId) -> Option<(Url, Option<LocalToken>)> {
        self.read()
            .get(cluster)
            .map(|entry| (entry.url.clone(), entry.token.clone()))
    }

    /// The token of `cluster`'s service, if the cluster is known and has one.
    pub fn token(&self, cluster: &ClusterId) -> Option<LocalToken> {
        self.read().get(cluster)?.token.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<ClusterId, Entry>> {
        self.entries.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<ClusterId, Entry>> {
        self.entries.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_never_re_points_a_cluster_nor_touches_an_operators_entry() {
        let directory = ClusterDirectory::new();
        let (configured, installed) =
            (ClusterId::new("c1").unwrap(), ClusterId::new("c2").unwrap());
        let here = service_url("http://10.0.0.1:32566").unwrap();
        let there = service_url("http://10.6.6.6:32566").unwrap();
        let token = || LocalToken::new("t").unwrap();
        directory.insert(configured.clone(), here.clone(), None);
        for url in [&there, &here] {
            let refused = directory.record(configured.clone(), url.clone(), token());
            assert_eq!(refused, Err(Conflict::Configured));
        }
        directory.forget(&configured);
        assert_eq!(directory.url(&configured), Some(here.clone()));

        directory
            .record(installed.clone(), here.clone(), token())
            .unwrap();
        directory
            .record(installed.clone(), here.clone(), token())
            .unwrap();
        assert_eq!(
            directory.may_record(&installed, &there),
            Err(Conflict::Elsewhere)
        );
        let refused = directory.record(installed.clone(), there, token());
        assert_eq!(refused, Err(Conflict::Elsewhere));
        assert_eq!(directory.url(&installed), Some(here));
        assert_eq!(directory.token(&installed), Some(token()));
        assert_eq!(format!("{:?}", token()), "LocalToken(..)");
        directory.forget(&installed);
        assert!(!directory.contains(&installed));
    }

    #[test]
    fn service_urls_are_http_with_a_host_and_keep_their_path() {
        let url = service_url("http://127.0.0.1:9000").unwrap();
        assert_eq!(
            url.join("local/v1/instances").unwrap().as_str(),
            "http://127.0.0.1:9000/local/v1/instances"
        );
        let prefixed = service_url("https://fleet.example/cluster-01").unwrap();
        assert_eq!(
            prefixed.join("local/v1/instances").unwrap().as_str(),
            "https://fleet.example/cluster-01/local/v1/instances"
        );
        for bad in [
            "ftp://host",
            "host:9000",
            "http://user:pw@host",
            "ftp://user:pw@host",
            "http://host/?a=b",
            "http://host/#x",
            "not a url",
        ] {
            let message = service_url(bad).unwrap_err();
            assert!(!message.contains("pw"), "{message}");
        }
    }
}
