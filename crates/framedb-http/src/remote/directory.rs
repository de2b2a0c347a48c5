//! The cluster directory: where each known cluster's local config service answers.

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
#[derive(Debug, Default)]
pub struct ClusterDirectory {
    urls: RwLock<BTreeMap<ClusterId, Url>>,
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

    /// Records (or replaces) where `cluster`'s service answers.
    pub fn insert(&self, cluster: ClusterId, url: Url) {
        tracing::info!(cluster_id = %cluster, %url, "local config service recorded");
        self.urls
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(cluster, url);
    }

    /// Whether `cluster` is known.
    pub fn contains(&self, cluster: &ClusterId) -> bool {
        self.urls
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(cluster)
    }

    /// Where `cluster`'s service answers, if the cluster is known.
    pub fn url(&self, cluster: &ClusterId) -> Option<Url> {
        self.urls
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(cluster)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
