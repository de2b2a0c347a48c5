//! The cluster directory: where each known cluster's local config service answers, and
//! the token that service requires (each cluster its own, so that no cluster's service
//! can act for another's). What setup records is kept in a [`ClusterDirectoryStore`]
//! (MongoDB with `--mongo-uri`, so that every replica and every restart knows it); the
//! directory is the in-memory view of it and of the operator's flags.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use framedb_core::memory::InMemoryDirectoryStore;
use framedb_core::{
    Chain, ClusterDirectoryStore, ClusterId, ClusterIdentity, Conflict, DirectoryEntry, Recorded,
};
use url::Url;

pub use framedb_core::LocalToken;

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

/// Where each known cluster's local config service answers: the fast in-memory view that
/// the remote client reads synchronously, over the [`ClusterDirectoryStore`] that keeps
/// what setup recorded.
///
/// Entries come from the operator (`--local-service`, `--known-cluster`, the embedded
/// default; never stored, they come from the flags at every start) or from
/// `/framedb-config/setup` (written to the store first, then to the view). An API call
/// never replaces or removes an operator's entry, nor re-points one that setup recorded
/// unless the caller asks for it (`"replace": true`): a caller must not be able to send
/// a cluster's traffic, and its token, elsewhere.
///
/// The view is loaded from the store at start-up ([`Self::load`]); a stored entry for a
/// cluster that a flag names is ignored (the flag wins, and a warning says so). A cluster
/// the view does not know is looked up in the store before it is called unknown
/// ([`Self::lookup`]), so that a recording by another replica is found; the whole view is
/// also reloaded periodically ([`Self::keep_refreshed`]), so that another replica's
/// replace or remove reaches this one.
pub struct ClusterDirectory {
    entries: RwLock<BTreeMap<ClusterId, Entry>>,
    store: Arc<dyn ClusterDirectoryStore>,
}

impl std::fmt::Debug for ClusterDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterDirectory")
            .field("entries", &*self.read())
            .finish_non_exhaustive()
    }
}

impl Default for ClusterDirectory {
    fn default() -> Self {
        Self::with_store(Arc::new(InMemoryDirectoryStore::new()))
    }
}

#[derive(Debug, Clone)]
struct Entry {
    url: Url,
    /// The token calls carry: the one setup recorded, else the operator's.
    token: Option<LocalToken>,
    origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// A flag names the cluster (its URL and token are the flags'). Setup may install its
    /// service only when the operator knows its identity too (the embedded default's
    /// clusters): a setup through that API server then installs the entry's token, and
    /// any other is refused.
    Configured(Option<ClusterIdentity>),
    /// Only setup recorded it.
    Setup,
}

impl Entry {
    fn configured(&self) -> bool {
        matches!(self.origin, Origin::Configured(..))
    }

    /// The view's entry of a stored one, unless its URL is unusable (written by hand).
    fn of(stored: &DirectoryEntry) -> Option<Self> {
        match service_url(&stored.local_url) {
            Ok(url) => Some(Self {
                url,
                token: Some(stored.token.clone()),
                origin: Origin::Setup,
            }),
            Err(message) => {
                tracing::warn!(cluster_id = %stored.cluster_id, %message,
                    "a stored directory entry has an unusable local_url; it is ignored");
                None
            }
        }
    }
}

/// What setup claimed in the directory for a cluster: the token to install, and how to
/// undo the claim if installing fails.
#[derive(Debug)]
pub struct Claim {
    /// The token to install with the cluster's local service.
    pub token: LocalToken,
    undo: Undo,
}

#[derive(Debug)]
enum Undo {
    /// The cluster was recorded already, as asked: nothing to undo.
    Nothing,
    /// The claim recorded it: remove it (if it still holds this claim's token).
    Remove(ClusterId),
    /// The claim replaced this entry (or none): put it back.
    Restore(ClusterId, Option<DirectoryEntry>),
}

impl ClusterDirectory {
    /// An empty directory on an in-memory store: every cluster is unknown.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty directory on `store`; [`Self::load`] reads what it holds.
    pub fn with_store(store: Arc<dyn ClusterDirectoryStore>) -> Self {
        Self {
            entries: RwLock::default(),
            store,
        }
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
    /// operator configured it (not stored: the flags say it again at every start).
    pub fn insert(&self, cluster: ClusterId, url: Url, token: Option<LocalToken>) {
        self.configure(cluster, url, token, None);
    }

    /// As [`Self::insert`], for a cluster whose API server the operator knows as well:
    /// setup through it installs `token`, and setup through another is refused.
    pub fn insert_known(
        &self,
        cluster: ClusterId,
        url: Url,
        token: LocalToken,
        identity: ClusterIdentity,
    ) {
        self.configure(cluster, url, Some(token), Some(identity));
    }

    fn configure(
        &self,
        cluster: ClusterId,
        url: Url,
        token: Option<LocalToken>,
        identity: Option<ClusterIdentity>,
    ) {
        tracing::info!(cluster_id = %cluster, %url, "local config service configured");
        let entry = Entry {
            url,
            token,
            origin: Origin::Configured(identity),
        };
        self.write().insert(cluster, entry);
    }

    /// Reads every stored entry into the view (at start-up, after the operator's
    /// entries), and returns how many it took. A stored entry of a cluster the operator
    /// configured gives it the token setup installed there, if it is at the flag's URL;
    /// at another URL it is ignored, with a warning: the flag wins.
    ///
    /// # Errors
    /// The store's, when it cannot be read.
    pub async fn load(&self) -> framedb_core::Result<usize> {
        let stored = self.store.load().await?;
        let loaded = self.take_in(&stored, true);
        tracing::info!(clusters = loaded, "cluster directory loaded from its store");
        Ok(loaded)
    }

    /// Makes the view's entries recorded by setup those of the store: entries another
    /// replica recorded, replaced or removed since are taken in.
    ///
    /// # Errors
    /// The store's, when it cannot be read; the view is unchanged then.
    pub async fn refresh(&self) -> framedb_core::Result<()> {
        let stored = self.store.load().await?;
        self.take_in(&stored, false);
        Ok(())
    }

    /// Makes the view the operator's entries plus `stored`; returns how many stored
    /// entries it took.
    fn take_in(&self, stored: &[DirectoryEntry], warn: bool) -> usize {
        let mut entries = self.write();
        entries.retain(|_, entry| entry.configured());
        stored
            .iter()
            .filter(|stored| Self::put_into(&mut entries, stored, warn))
            .count()
    }

    /// Puts a stored entry into `entries`; whether it took it.
    fn put_into(
        entries: &mut BTreeMap<ClusterId, Entry>,
        stored: &DirectoryEntry,
        warn: bool,
    ) -> bool {
        let Some(recorded) = Entry::of(stored) else {
            return false;
        };
        match entries.get(&stored.cluster_id) {
            Some(configured) if configured.configured() => {
                if warn {
                    tracing::warn!(cluster_id = %stored.cluster_id, configured = %configured.url,
                        stored = %stored.local_url,
                        "the directory's store records a cluster that a flag configures; the \
                         flag wins (remove the cluster, or drop the flag)");
                }
                false
            }
            _ => {
                entries.insert(stored.cluster_id.clone(), recorded);
                true
            }
        }
    }

    /// Reloads the view every `every` while the directory is in use (the task holds it
    /// weakly, and ends once it is dropped). A failed reload is logged and tried at the
    /// next tick; the view keeps its entries meanwhile.
    pub fn keep_refreshed(self: &Arc<Self>, every: std::time::Duration) {
        let directory = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(directory) = directory.upgrade() else {
                    return;
                };
                if let Err(error) = directory.refresh().await {
                    tracing::warn!(cause = %Chain(&error),
                        "the cluster directory could not be refreshed from its store");
                }
            }
        });
    }

    /// Whether `cluster` is known, looking it up in the store when the view does not know
    /// it (another replica may have recorded it).
    ///
    /// # Errors
    /// The store's, when it cannot be read.
    pub async fn lookup(&self, cluster: &ClusterId) -> framedb_core::Result<bool> {
        if self.contains(cluster) {
            return Ok(true);
        }
        let Some(stored) = self.store.get(cluster).await? else {
            return Ok(false);
        };
        let Some(entry) = Entry::of(&stored) else {
            return Ok(false);
        };
        // An operator's entry or a newer recording may have arrived meanwhile: it stays.
        self.write().entry(cluster.clone()).or_insert(entry);
        Ok(true)
    }

    /// The URL of `cluster`'s entry if the operator configured it; `None` when the
    /// operator did not configure it.
    pub fn configured(&self, cluster: &ClusterId) -> Option<Url> {
        let entries = self.read();
        let entry = entries.get(cluster).filter(|entry| entry.configured())?;
        Some(entry.url.clone())
    }

    /// The token and identity of an operator's entry whose identity the operator knows.
    fn known(&self, cluster: &ClusterId) -> Option<(LocalToken, ClusterIdentity)> {
        let entries = self.read();
        let entry = entries.get(cluster)?;
        match (&entry.token, &entry.origin) {
            (Some(token), Origin::Configured(Some(identity))) => {
                Some((token.clone(), identity.clone()))
            }
            _ => None,
        }
    }

    /// Claims `cluster` for setup as `wanted` says (its URL, a new token, its identity),
    /// in the store first, then in the view. A cluster recorded as asked keeps its entry
    /// and its token (so its running service keeps working); one recorded otherwise is a
    /// conflict, unless `replace`, which records `wanted` with its new token in place of
    /// the old entry (so the old address never receives the new token). A cluster the
    /// operator configured with its identity (the embedded default's) is claimed with its
    /// own token when `wanted` names that identity.
    ///
    /// # Errors
    /// [`framedb_core::Error::ClusterConflict`] when the operator configured the cluster
    /// (without its identity, or with another), or setup recorded it otherwise and
    /// `replace` is not set; nothing is changed then. The store's errors.
    pub async fn claim(
        &self,
        wanted: DirectoryEntry,
        replace: bool,
    ) -> framedb_core::Result<Claim> {
        let cluster = wanted.cluster_id.clone();
        let conflict = |conflict| framedb_core::Error::ClusterConflict {
            cluster: cluster.clone(),
            conflict,
        };
        if let Some((token, known)) = self.known(&cluster) {
            let known = DirectoryEntry {
                identity: known,
                ..wanted.clone()
            };
            if let Some(differs) = known.conflict_with(&wanted) {
                return Err(conflict(differs));
            }
            return Ok(Claim {
                token,
                undo: Undo::Nothing,
            });
        }
        // An operator's cluster whose API server this service does not know: nothing shows
        // that the kubeconfig reaches the service at the configured URL, so setup installs
        // nothing there (neither the operator's token, which other clusters share, nor a
        // new one, which that service would not have).
        if self.configured(&cluster).is_some() {
            return Err(conflict(Conflict::Configured));
        }
        let (kept, undo) = if replace {
            let previous = self.store.replace(&wanted).await?;
            tracing::warn!(cluster_id = %cluster, url = %wanted.local_url,
                re_pointed = previous.is_some(),
                "cluster recorded by setup with \"replace\": true");
            (wanted, Undo::Restore(cluster.clone(), previous))
        } else {
            match self.store.record(&wanted).await? {
                Recorded::New => (wanted, Undo::Remove(cluster.clone())),
                Recorded::Existing(existing) => {
                    if let Some(differs) = existing.conflict_with(&wanted) {
                        return Err(conflict(differs));
                    }
                    (existing, Undo::Nothing)
                }
            }
        };
        self.put(&kept);
        Ok(Claim {
            token: kept.token,
            undo,
        })
    }

    /// Undoes `claim` after its setup failed: the store and the view are as before it
    /// (unless another setup changed the entry meanwhile, which then stays).
    ///
    /// # Errors
    /// The store's.
    pub async fn undo(&self, claim: Claim) -> framedb_core::Result<()> {
        let (cluster, previous) = match claim.undo {
            Undo::Nothing => return Ok(()),
            Undo::Remove(cluster) => (cluster, None),
            Undo::Restore(cluster, previous) => (cluster, previous),
        };
        match previous {
            Some(previous) => {
                self.store.replace(&previous).await?;
                self.put(&previous);
            }
            None => {
                if self.store.remove(&cluster, Some(&claim.token)).await? {
                    self.drop_recorded(&cluster);
                }
            }
        }
        Ok(())
    }

    /// What the store recorded about `cluster`, if anything.
    ///
    /// # Errors
    /// The store's.
    pub async fn stored(
        &self,
        cluster: &ClusterId,
    ) -> framedb_core::Result<Option<DirectoryEntry>> {
        self.store.get(cluster).await
    }

    /// Forgets `cluster`: removes its stored entry, then its entry in the view if setup
    /// recorded it (an operator's entry stays); its instances' calls are then 404
    /// `cluster_not_found`.
    ///
    /// # Errors
    /// The store's; the view is unchanged then.
    pub async fn forget(&self, cluster: &ClusterId) -> framedb_core::Result<()> {
        self.store.remove(cluster, None).await?;
        if self.drop_recorded(cluster) {
            tracing::info!(cluster_id = %cluster, "local config service forgotten");
        }
        Ok(())
    }

    /// Puts a stored entry into the view, unless an operator's entry names the cluster.
    fn put(&self, stored: &DirectoryEntry) {
        if Self::put_into(&mut self.write(), stored, true) {
            tracing::info!(cluster_id = %stored.cluster_id, url = %stored.local_url,
                "local config service recorded by setup");
        }
    }

    /// Drops `cluster` from the view if setup recorded it; whether it did.
    fn drop_recorded(&self, cluster: &ClusterId) -> bool {
        let mut entries = self.write();
        let recorded = entries
            .get(cluster)
            .is_some_and(|entry| !entry.configured());
        if recorded {
            entries.remove(cluster);
        }
        recorded
    }

    /// Every cluster the view knows.
    pub fn clusters(&self) -> Vec<ClusterId> {
        self.read().keys().cloned().collect()
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

    fn wanted(cluster: &ClusterId, url: &Url, server: &str) -> DirectoryEntry {
        DirectoryEntry {
            cluster_id: cluster.clone(),
            local_url: url.to_string(),
            token: LocalToken::generate(),
            identity: framedb_core::ClusterIdentity {
                api_server: server.into(),
                ca_sha256: None,
            },
        }
    }

    fn conflict(cluster: &ClusterId, conflict: Conflict) -> framedb_core::Error {
        framedb_core::Error::ClusterConflict {
            cluster: cluster.clone(),
            conflict,
        }
    }

    #[tokio::test]
    async fn setup_never_re_points_a_cluster_nor_touches_an_operators_entry() {
        let store = Arc::new(InMemoryDirectoryStore::new());
        let directory = ClusterDirectory::with_store(store.clone());
        let (configured, installed) =
            (ClusterId::new("c1").unwrap(), ClusterId::new("c2").unwrap());
        let here = service_url("http://10.0.0.1:32566").unwrap();
        let there = service_url("http://10.6.6.6:32566").unwrap();
        let operators = LocalToken::new("operators-shared-token").unwrap();
        directory.insert(configured.clone(), here.clone(), Some(operators.clone()));
        // Nothing shows that a caller's kubeconfig reaches the configured service: setup
        // installs nothing there, at any address, even with "replace".
        for (url, replace) in [(&there, false), (&here, false), (&here, true)] {
            let refused = directory
                .claim(wanted(&configured, url, "https://k"), replace)
                .await;
            assert_eq!(
                refused.unwrap_err(),
                conflict(&configured, Conflict::Configured)
            );
        }
        directory.forget(&configured).await.unwrap();
        assert_eq!(
            directory.endpoint(&configured),
            Some((here.clone(), Some(operators.clone())))
        );
        // An operator's cluster whose API server the operator knows (the embedded
        // default's) is set up through that server only, with its own token.
        let known = ClusterId::new("c3").unwrap();
        let identity = wanted(&known, &here, "https://known").identity;
        directory.insert_known(known.clone(), here.clone(), operators.clone(), identity);
        let claim = directory
            .claim(wanted(&known, &here, "https://known"), false)
            .await
            .unwrap();
        assert_eq!(claim.token, operators);
        let refused = directory
            .claim(wanted(&known, &here, "https://evil"), true)
            .await;
        assert_eq!(refused.unwrap_err(), conflict(&known, Conflict::ApiServer));

        let first = directory
            .claim(wanted(&installed, &here, "https://k"), false)
            .await
            .unwrap();
        // The same setup again keeps the token its service has.
        let again = directory
            .claim(wanted(&installed, &here, "https://k"), false)
            .await
            .unwrap();
        assert_eq!(again.token, first.token);
        for (url, server, differs) in [
            (&there, "https://k", Conflict::LocalUrl),
            (&here, "https://evil", Conflict::ApiServer),
        ] {
            let refused = directory
                .claim(wanted(&installed, url, server), false)
                .await;
            assert_eq!(refused.unwrap_err(), conflict(&installed, differs));
        }
        assert_eq!(directory.url(&installed), Some(here.clone()));
        assert_eq!(directory.token(&installed), Some(first.token.clone()));

        // The override re-points with a new token; undoing it puts the old entry back.
        let replaced = directory
            .claim(wanted(&installed, &there, "https://k"), true)
            .await
            .unwrap();
        assert_ne!(replaced.token, first.token);
        assert_eq!(directory.url(&installed), Some(there.clone()));
        directory.undo(replaced).await.unwrap();
        assert_eq!(
            directory.endpoint(&installed),
            Some((here.clone(), Some(first.token.clone())))
        );

        // A fresh view on the same store (a restart) knows it; the flag's entry wins.
        let restarted = ClusterDirectory::with_store(store.clone());
        restarted.insert(installed.clone(), there.clone(), None);
        assert_eq!(restarted.load().await.unwrap(), 0);
        assert_eq!(restarted.url(&installed), Some(there.clone()));
        let other = ClusterDirectory::with_store(store.clone());
        assert!(other.lookup(&installed).await.unwrap());
        assert_eq!(other.token(&installed), Some(first.token.clone()));

        directory.forget(&installed).await.unwrap();
        assert!(!directory.contains(&installed));
        assert!(
            !ClusterDirectory::with_store(store)
                .lookup(&installed)
                .await
                .unwrap()
        );
        other.refresh().await.unwrap();
        assert!(
            !other.contains(&installed),
            "a refresh takes in another's remove"
        );
        assert!(!format!("{directory:?}").contains(first.token.expose()));
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
