//! `ClusterDeployer` and `PortAllocator` on kube-rs: instances become the objects of
//! [`crate::objects`] on the cluster that `cluster_id` names, their status is read from
//! their pods (the `status` module) — through a status book kept by watches (the `live`
//! module) while it is in step, by listing otherwise — and free ports are found in a view
//! of the cluster's node ports kept by a watch of its Services (the `node_ports` module)
//! while it is in step, by reading the Services otherwise (docs/architecture.md,
//! "Kubernetes objects", "Status" and "Port allocation").
//!
//! Every write is a server-side apply (the `apply` module), so running a deploy again
//! after a failure halfway completes it without duplicates; deletes treat objects already
//! gone as done. The one exception is the credentials Secret: it is created only when
//! absent and read back otherwise, so a deploy run again never changes a password that
//! an instance may already have bootstrapped with.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use framedb_core::live::{LiveBook, StatusFeed, answer_from};
use framedb_core::{
    ClusterDeployer, ClusterId, Credentials, Deployed, DeploymentSpec, FramedbId, InstanceRecord,
    PORT_RANGE, PortAllocator, Removal, Stamp, StatusReport, StorageSize,
};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, Event, Namespace, PersistentVolume, PersistentVolumeClaim, Pod, Secret, Service,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, Resource};

use crate::apply::applying;
use crate::error::{
    Error, is_already_exists, is_expired, is_not_found, is_port_allocated, port_range_refused,
};
use crate::live::Watches;
use crate::node_ports::{Follows, View, held_by};
use crate::objects::{
    Layout, MANAGED_SELECTOR, PASSWORD_KEY, claim_name, config_name, credentials_name, labels,
};
use crate::ownership::{
    CreateError, Posted, Reclaim, Taken, claim_existing, create_or_existing, create_owned,
    keeps_volume, remove_owned,
};
use crate::slim::Slim;
use crate::status::Sources;
use crate::volumes::Helpers;

pub use crate::apply::FIELD_MANAGER;
pub use crate::ownership::DELETION_WAIT;
pub use crate::status::StatusLimits;

/// How many objects one page of a paged read (the allocator's Services, a namespace's
/// events) holds.
const LIST_PAGE: u32 = 500;

/// How many times a paged read of the Services starts again when its continue token
/// expires, before it reads them in one list.
const PAGED_READ_ATTEMPTS: u32 = 3;

/// The node ports every Service of the cluster holds, read in pages of `page` (see
/// [`read_paged`]), so that a cluster with thousands of Services costs bounded memory per
/// answer and time in proportion to their number: the allocator's read while its view of
/// the node ports is not in step.
async fn used_node_ports(services: &Api<Service>, page: u32) -> Result<BTreeSet<u16>, kube::Error> {
    read_paged(services, page, BTreeSet::new, |used, items| {
        used.extend(items.iter().flat_map(held_by));
    })
    .await
}

/// Reads every object of `api` in pages of `page`, as kubectl does, folding each page
/// into what `start` makes. A continue token expires (410 `Expired`) once the cluster's
/// history of the first page's version is compacted (etcd compacts every 5 minutes by
/// default, and a busy cluster's pages may straddle it): the read then starts again from
/// the first page (and from `start`), since going on with the token the 410 carries
/// would read an inconsistent list, and after [`PAGED_READ_ATTEMPTS`] reads them in one
/// list, as client-go's pager falls back to.
async fn read_paged<K, S>(
    api: &Api<K>,
    page: u32,
    start: impl Fn() -> S,
    mut fold: impl FnMut(&mut S, &[K]),
) -> Result<S, kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    'attempts: for _ in 0..PAGED_READ_ATTEMPTS {
        let mut folded = start();
        let mut params = ListParams::default().limit(page);
        loop {
            let listed = match api.list(&params).await {
                Ok(listed) => listed,
                Err(error) if params.continue_token.is_some() && is_expired(&error) => {
                    continue 'attempts;
                }
                Err(error) => return Err(error),
            };
            fold(&mut folded, &listed.items);
            match listed.metadata.continue_ {
                Some(token) if !token.is_empty() => params = params.continue_token(&token),
                _ => return Ok(folded),
            }
        }
    }
    let mut folded = start();
    fold(&mut folded, &api.list(&ListParams::default()).await?.items);
    Ok(folded)
}

type DomainResult<T> = framedb_core::Result<T>;

/// The clusters FrameDB deploys to, each through its own kube-rs client.
#[derive(Clone)]
pub struct KubeFleet {
    clusters: HashMap<ClusterId, ClusterHandle>,
    layout: Layout,
    watch_window: Duration,
    deletion_wait: Duration,
    limits: StatusLimits,
    helper_wait: Duration,
}

impl KubeFleet {
    /// A fleet without clusters that lays instances out as `layout` says.
    pub fn new(layout: Layout) -> Self {
        Self {
            clusters: HashMap::new(),
            layout,
            watch_window: crate::kubeconfig::Timeouts::default().watch_window(),
            deletion_wait: DELETION_WAIT,
            limits: StatusLimits::default(),
            helper_wait: crate::volumes::HELPER_WAIT,
        }
    }

    /// How long a local volume's wipe pod has to empty it (default
    /// [`crate::HELPER_WAIT`]) before the delete reports it.
    pub fn with_helper_wait(mut self, wait: Duration) -> Self {
        self.helper_wait = wait;
        self
    }

    /// The wipe pods of `cluster`, reached through `client`.
    fn helpers<'a>(&'a self, cluster: &'a str, client: &'a Client) -> Helpers<'a> {
        Helpers {
            client,
            layout: &self.layout,
            cluster,
            wait: self.helper_wait,
            release_wait: self.deletion_wait,
        }
    }

    /// Where instances that do not come up read `Failed` rather than `Provisioning`
    /// (default [`StatusLimits::default`]).
    pub fn with_status_limits(mut self, limits: StatusLimits) -> Self {
        self.limits = limits;
        self
    }

    /// How long a create waits for an object of its names that is being deleted to go
    /// before it is refused (default [`DELETION_WAIT`]): the claim of an instance deleted
    /// a moment ago stays until its pod has terminated.
    pub fn with_deletion_wait(mut self, wait: Duration) -> Self {
        self.deletion_wait = wait;
        self
    }

    /// How long one status watch request stays open: [`Timeouts::watch_window`] of the
    /// clients' timeouts (default: of [`Timeouts::default`], 25 s). Longer than their read
    /// timeout, a quiet watch would end in a timeout error and status reads would go to
    /// the cluster until the next list.
    ///
    /// [`Timeouts::watch_window`]: crate::kubeconfig::Timeouts::watch_window
    /// [`Timeouts::default`]: crate::kubeconfig::Timeouts
    pub fn with_watch_window(mut self, window: Duration) -> Self {
        self.watch_window = window;
        self
    }

    /// Adds a cluster reached through `client`.
    pub fn with_cluster(mut self, id: ClusterId, client: Client) -> Self {
        let handle = ClusterHandle {
            client,
            statuses: Arc::default(),
            book: Arc::default(),
            ports: Arc::default(),
        };
        self.clusters.insert(id, handle);
        self
    }

    /// The cluster's status book; the first call starts its watches.
    fn feed(&self, cluster: &ClusterId, handle: &ClusterHandle) -> StatusFeed {
        handle.book.feed(|book| {
            let watches = Watches {
                cluster: cluster.clone(),
                client: handle.client.clone(),
                namespace: self.layout.namespace.clone(),
                selector: self.status_selector(cluster),
                window: self.watch_window,
                limits: self.limits,
            };
            crate::live::keep(watches, book)
        })
    }

    /// The cluster's view of its node ports; the first call starts its watch.
    fn node_ports(&self, cluster: &ClusterId, handle: &ClusterHandle) -> Option<Arc<View>> {
        let feed = handle.ports.feed(|book| {
            let follows = Follows {
                cluster: cluster.clone(),
                client: handle.client.clone(),
                window: self.watch_window,
            };
            crate::node_ports::keep(follows, book)
        });
        feed.borrow().clone()
    }

    fn status_selector(&self, cluster: &ClusterId) -> String {
        format!("{MANAGED_SELECTOR},{}={cluster}", labels::CLUSTER_ID)
    }

    fn handle(&self, cluster: &ClusterId) -> DomainResult<&ClusterHandle> {
        self.clusters
            .get(cluster)
            .ok_or_else(|| framedb_core::Error::ClusterNotFound(cluster.clone()))
    }

    fn client(&self, cluster: &ClusterId) -> DomainResult<&Client> {
        self.handle(cluster).map(|handle| &handle.client)
    }

    fn namespaced<K>(&self, client: &Client) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(client.clone(), &self.layout.namespace)
    }

    /// Creates the instances' namespace; one that exists already is fine.
    async fn ensure_namespace(&self, cluster: &ClusterId, client: &Client) -> DomainResult<()> {
        let namespace = crate::objects::instance_namespace(&self.layout.namespace);
        match Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if is_already_exists(&error) => Ok(()),
            Err(error) => Err(Error::kube(
                cluster.as_str(),
                format!("creating namespace {}", self.layout.namespace),
                error,
            )
            .into()),
        }
    }
}

#[async_trait]
impl ClusterDeployer for KubeFleet {
    async fn deploy(&self, spec: &DeploymentSpec) -> DomainResult<Deployed> {
        let cluster = &spec.cluster_id;
        let handle = self.handle(cluster)?;
        let client = &handle.client;
        let objects = self.layout.objects(spec);
        let id = spec.framedb_id.as_str();
        let cluster_name = cluster.as_str();

        // The Service goes first: creating it is what reserves the port. Every object is
        // created, never forced over one of its name that this create did not make.
        let services = self.namespaced::<Service>(client);
        let mut created = create_owned(
            &services,
            &objects.service,
            spec,
            Reclaim::Never,
            self.deletion_wait,
        )
        .await;
        if matches!(&created, Err(CreateError::Refused(error)) if is_not_found(error)) {
            // The namespace is created once per cluster, on the first create that needs it.
            self.ensure_namespace(cluster, client).await?;
            created = create_owned(
                &services,
                &objects.service,
                spec,
                Reclaim::Never,
                self.deletion_wait,
            )
            .await;
        }
        match created {
            // The next allocation on the cluster sees its port at once, not when the
            // watch tells.
            Ok((_, service)) => {
                if let Some(view) = handle
                    .ports
                    .started()
                    .and_then(|feed| feed.borrow().clone())
                {
                    view.lock().created(&service);
                }
            }
            Err(CreateError::Refused(error)) if is_port_allocated(&error) => {
                return Err(framedb_core::Error::PortTaken {
                    cluster: cluster.clone(),
                    port: spec.port,
                });
            }
            Err(CreateError::Refused(error)) => {
                return Err(match port_range_refused(&error) {
                    Some(valid) => framedb_core::Error::PortOutOfRange {
                        cluster: cluster.clone(),
                        port: spec.port,
                        valid,
                    },
                    None => created_error::<Service>(cluster_name, id, CreateError::Refused(error)),
                });
            }
            Err(error) => return Err(created_error::<Service>(cluster_name, id, error)),
        }
        if let Some(volume) = &objects.volume {
            let volumes = Api::<PersistentVolume>::all(client.clone());
            create_owned(
                &volumes,
                volume,
                spec,
                Reclaim::Retained,
                self.deletion_wait,
            )
            .await
            .map_err(|error| created_error::<PersistentVolume>(cluster_name, id, error))?;
        }
        // Once the port is reserved, the rest goes in one round trip: nothing of it waits
        // on another's creation. The pod cannot start before its claim binds and its
        // credentials Secret exists (the kubelet waits for both volumes), and the policy
        // lands long before a pod is scheduled, pulled and started.
        let policies = self.namespaced::<NetworkPolicy>(client);
        let claims = self.namespaced::<PersistentVolumeClaim>(client);
        let workloads = self.namespaced::<StatefulSet>(client);
        // All four run to their answers, even when one fails first: a write abandoned while
        // in flight can still land after the create's undo has looked for its object, and
        // leave behind an object that nothing records (a StatefulSet without its Service,
        // which no inventory sees either).
        let configs = self.namespaced::<ConfigMap>(client);
        let (credentials, policy, config, claim, workload) = tokio::join!(
            self.ensure_credentials(spec, client),
            async {
                create_owned(
                    &configs,
                    &objects.config,
                    spec,
                    Reclaim::Never,
                    self.deletion_wait,
                )
                .await
                .map(drop)
                .map_err(|error| created_error::<ConfigMap>(cluster_name, id, error))
            },
            async {
                create_owned(
                    &policies,
                    &objects.network_policy,
                    spec,
                    Reclaim::Never,
                    self.deletion_wait,
                )
                .await
                .map(drop)
                .map_err(|error| created_error::<NetworkPolicy>(cluster_name, id, error))
            },
            async {
                create_owned(
                    &claims,
                    &objects.claim,
                    spec,
                    Reclaim::Retained,
                    self.deletion_wait,
                )
                .await
                .map(|(taken, _)| taken)
                .map_err(|error| created_error::<PersistentVolumeClaim>(cluster_name, id, error))
            },
            async {
                // From here the instance's pod may write to a local volume: a removal
                // that deletes it empties it first.
                if objects.volume.is_some() {
                    self.helpers(cluster_name, client)
                        .mark_prepared(&claim_name(id))
                        .await?;
                }
                create_owned(
                    &workloads,
                    &objects.statefulset,
                    spec,
                    Reclaim::Never,
                    self.deletion_wait,
                )
                .await
                .map(drop)
                .map_err(|error| created_error::<StatefulSet>(cluster_name, id, error))
            },
        );
        let (credentials, (), (), claim, ()) = (credentials?, policy?, config?, claim?, workload?);
        Ok(Deployed {
            credentials,
            reattached: claim == Taken::Reattached,
        })
    }

    async fn undeploy(
        &self,
        cluster: &ClusterId,
        id: &FramedbId,
        stamp: &Stamp,
        removal: Removal,
    ) -> DomainResult<bool> {
        let client = self.client(cluster)?;
        let id = id.as_str();
        let claim = claim_name(id);
        let cluster = cluster.as_str();
        // The workload first, so nothing writes to the volume while it goes.
        let mut found = false;
        let workloads = self.namespaced::<StatefulSet>(client);
        found |= remove_owned(&workloads, cluster, id, stamp, removal, |_| false).await?;
        let services = self.namespaced::<Service>(client);
        found |= remove_owned(&services, cluster, id, stamp, removal, |_| false).await?;
        let policies = self.namespaced::<NetworkPolicy>(client);
        found |= remove_owned(&policies, cluster, id, stamp, removal, |_| false).await?;
        let configs = self.namespaced::<ConfigMap>(client);
        found |= remove_owned(&configs, cluster, &config_name(id), stamp, removal, |_| {
            false
        })
        .await?;
        // The volume and the credentials that open its data stay together.
        let secrets = self.namespaced::<Secret>(client);
        found |= remove_owned(
            &secrets,
            cluster,
            &credentials_name(id),
            stamp,
            removal,
            |object| keeps_volume(removal, object),
        )
        .await?;
        let local = matches!(self.layout.storage, crate::objects::Storage::Local { .. });
        if local {
            // A local volume this removal deletes is emptied first, through its claim,
            // once the instance's pod is gone (the claim must still be there to mount);
            // a wipe pod a removal of this stamp left behind goes too.
            let helpers = self.helpers(cluster, client);
            helpers
                .wipe_before_delete(&claim, id, stamp, removal)
                .await?;
            helpers.remove_left(id, stamp).await?;
        }
        let claims = self.namespaced::<PersistentVolumeClaim>(client);
        found |= remove_owned(&claims, cluster, &claim, stamp, removal, |object| {
            keeps_volume(removal, object)
        })
        .await?;
        if local {
            let volumes = Api::<PersistentVolume>::all(client.clone());
            found |= remove_owned(&volumes, cluster, &claim, stamp, removal, |object| {
                keeps_volume(removal, object)
            })
            .await?;
        }
        Ok(found)
    }

    async fn amend(&self, spec: &DeploymentSpec) -> DomainResult<StorageSize> {
        let client = self.client(&spec.cluster_id)?;
        Ok(crate::amend::amend(client, &self.layout, spec).await?)
    }

    async fn credentials(&self, cluster: &ClusterId, id: &FramedbId) -> DomainResult<Credentials> {
        let client = self.client(cluster)?;
        let name = credentials_name(id.as_str());
        let secret = self
            .namespaced::<Secret>(client)
            .get_opt(&name)
            .await
            .map_err(|error| {
                Error::kube(cluster.as_str(), format!("reading Secret {name}"), error)
            })?;
        match secret {
            Some(secret) => stored_credentials(cluster, &secret),
            None => Err(framedb_core::Error::InstanceNotFound(id.clone())),
        }
    }

    async fn statuses(
        &self,
        cluster: &ClusterId,
        ids: &[FramedbId],
    ) -> DomainResult<HashMap<FramedbId, StatusReport>> {
        let handle = self.handle(cluster)?;
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        if let Some(answer) = answer_from(&self.feed(cluster, handle).borrow(), ids) {
            return Ok(answer);
        }
        // The book is not in step or does not know an id yet: read the cluster.
        // Reads that arrive while another read of this cluster is under way wait for it
        // and then share the next one: every caller gets a status read after it asked,
        // and a burst of callers costs one read instead of one each.
        let arrived = Instant::now();
        let mut latest = handle.statuses.lock().await;
        let reports = match latest.as_ref() {
            Some(snapshot) if snapshot.started >= arrived => snapshot.reports.clone(),
            _ => {
                let started = Instant::now();
                let reports = Arc::new(self.read_statuses(cluster, &handle.client).await?);
                *latest = Some(Snapshot {
                    started,
                    reports: reports.clone(),
                });
                reports
            }
        };
        drop(latest);
        Ok(ids
            .iter()
            .filter_map(|id| Some((id.clone(), reports.get(id)?.clone())))
            .collect())
    }

    async fn inventory(&self, cluster: &ClusterId) -> DomainResult<Vec<InstanceRecord>> {
        let client = self.client(cluster)?;
        let params = ListParams::default().labels(&self.status_selector(cluster));
        let list_failed = |what: &str, error| -> framedb_core::Error {
            Error::kube(cluster.as_str(), format!("listing {what}"), error).into()
        };
        // Slim: a reconcile pass reads every workload and Service of the cluster, and
        // uses their metadata and node ports only.
        let (workloads, services) = tokio::try_join!(
            async {
                self.namespaced::<Slim<StatefulSet>>(client)
                    .list(&params)
                    .await
                    .map_err(|e| list_failed("StatefulSets", e))
            },
            async {
                self.namespaced::<Slim<Service>>(client)
                    .list(&params)
                    .await
                    .map_err(|e| list_failed("Services", e))
            },
        )?;
        let services: Vec<Service> = services.items.into_iter().map(|s| s.0).collect();
        let ports = crate::inventory::node_ports(&services);
        let mut records: Vec<InstanceRecord> = workloads
            .items
            .iter()
            .filter_map(|workload| crate::inventory::deployment_of(cluster, &workload.0, &ports))
            .map(|spec| spec.record())
            .collect();
        records.sort_by(|a, b| a.framedb_id.cmp(&b.framedb_id));
        Ok(records)
    }

    async fn follow(&self, cluster: &ClusterId) -> DomainResult<StatusFeed> {
        let handle = self.handle(cluster)?;
        Ok(self.feed(cluster, handle))
    }
}

/// A failed create of the instance's `K`, as a domain error.
fn created_error<K>(cluster: &str, id: &str, error: CreateError) -> framedb_core::Error
where
    K: Resource,
    K::DynamicType: Default,
{
    match error {
        CreateError::Refused(error) => applying::<K>(cluster, id, error).into(),
        CreateError::Other(error) => error.into(),
    }
}

impl KubeFleet {
    /// The instance's credentials: a new password in a new Secret at the first deploy,
    /// the Secret's own afterwards. Created, never applied: an apply would overwrite the
    /// password of an instance that has bootstrapped with it. Two deploys racing here
    /// both end with the password of the one whose create won.
    async fn ensure_credentials(
        &self,
        spec: &DeploymentSpec,
        client: &Client,
    ) -> DomainResult<Credentials> {
        let cluster = spec.cluster_id.as_str();
        let name = credentials_name(spec.framedb_id.as_str());
        let secrets = self.namespaced::<Secret>(client);
        // Create, and read back only when it exists: a first deploy costs one request.
        let generated = Credentials::generate()?;
        let secret = self.layout.credentials_secret(spec, &generated);
        match create_or_existing(&secrets, &secret, spec, self.deletion_wait).await {
            Ok(Posted::Created(_)) => Ok(generated),
            Ok(Posted::Found(existing)) => {
                // This create's own (a retried deploy), or retained with the volume whose
                // data it opens; never another create's.
                claim_existing(&secrets, &existing, spec, Reclaim::Retained).await?;
                stored_credentials(&spec.cluster_id, &existing)
            }
            Err(CreateError::Refused(error)) => {
                Err(Error::kube(cluster, format!("creating Secret {name}"), error).into())
            }
            Err(CreateError::Other(error)) => Err(error.into()),
        }
    }

    /// The status of every instance FrameDB manages on `cluster`: two lists, and a third
    /// of the namespace's events when a status depends on them.
    async fn read_statuses(
        &self,
        cluster: &ClusterId,
        client: &Client,
    ) -> DomainResult<HashMap<FramedbId, StatusReport>> {
        let params = ListParams::default().labels(&self.status_selector(cluster));
        let list_failed = |what: &str, error| -> framedb_core::Error {
            Error::kube(cluster.as_str(), format!("listing {what}"), error).into()
        };
        let workloads = self
            .namespaced::<Slim<StatefulSet>>(client)
            .list(&params)
            .await
            .map_err(|e| list_failed("StatefulSets", e))?;
        if workloads.items.is_empty() {
            return Ok(HashMap::new());
        }
        let pods = self
            .namespaced::<Slim<Pod>>(client)
            .list(&params)
            .await
            .map_err(|e| list_failed("pods", e))?;
        // Slim, as the watches read them.
        let mut sources = Sources::new(self.limits);
        for workload in &workloads.items {
            sources.workload(&workload.0);
        }
        for pod in &pods.items {
            sources.pod(&pod.0);
        }
        if sources.needs_events() {
            // In pages, as the Services are read: a namespace's events are many.
            let events = self.namespaced::<Slim<Event>>(client);
            let read = read_paged(&events, LIST_PAGE, Vec::new, |kept, page| {
                kept.extend_from_slice(page);
            });
            for event in &read.await.map_err(|e| list_failed("events", e))? {
                sources.event(&event.0);
            }
        }
        Ok(sources.statuses())
    }
}

/// The credentials a Secret of [`credentials_name`] holds; a Secret without a usable
/// password (edited by hand) is an internal error, named without its content.
fn stored_credentials(cluster: &ClusterId, secret: &Secret) -> DomainResult<Credentials> {
    let name = secret.metadata.name.as_deref().unwrap_or_default();
    let password = secret
        .data
        .as_ref()
        .and_then(|data| data.get(PASSWORD_KEY))
        .and_then(|bytes| std::str::from_utf8(&bytes.0).ok());
    password
        .and_then(|password| Credentials::root(password).ok())
        .ok_or_else(|| {
            framedb_core::Error::Internal(
                format!(
                    "Secret {name} on cluster '{cluster}' holds no usable '{PASSWORD_KEY}' key"
                )
                .into(),
            )
        })
}

/// The statuses of a cluster's instances, and when the read that produced them began.
struct Snapshot {
    started: Instant,
    reports: Arc<HashMap<FramedbId, StatusReport>>,
}

/// One cluster of the fleet: its client, its latest direct status read, its status
/// book, and its view of the node ports.
#[derive(Clone)]
struct ClusterHandle {
    client: Client,
    statuses: Arc<tokio::sync::Mutex<Option<Snapshot>>>,
    book: Arc<LiveBook>,
    ports: Arc<LiveBook<Arc<View>>>,
}

#[async_trait]
impl PortAllocator for KubeFleet {
    async fn free_ports(&self, cluster: &ClusterId, skip: &[u16]) -> DomainResult<Vec<u16>> {
        let handle = self.handle(cluster)?;
        let free: Vec<u16> = if let Some(view) = self.node_ports(cluster, handle) {
            let view = view.lock();
            PORT_RANGE
                .filter(|port| !view.holds(*port) && !skip.contains(port))
                .collect()
        } else {
            // Node ports are cluster-wide, so every namespace's Services count.
            let services = Api::<Service>::all(handle.client.clone());
            let used = used_node_ports(&services, LIST_PAGE)
                .await
                .map_err(|error| Error::kube(cluster.as_str(), "listing Services", error))?;
            PORT_RANGE
                .filter(|port| !used.contains(port) && !skip.contains(port))
                .collect()
        };
        if free.is_empty() {
            return Err(framedb_core::Error::PortsExhausted(cluster.clone()));
        }
        Ok(free)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use framedb_kube_sim::{SimConfig, Simulator, Verb};
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, ListParams, PostParams};

    use super::*;

    /// Services made in `default`, `node_ports` of them on those ports and the others
    /// ClusterIP, named in order.
    async fn made(client: &Client, node_ports: &[u16], others: usize) {
        let services: Api<Service> = Api::namespaced(client.clone(), "default");
        let ports = node_ports.iter().map(|port| Some(*port));
        for (i, port) in ports.chain(std::iter::repeat_n(None, others)).enumerate() {
            let kind = if port.is_some() {
                "NodePort"
            } else {
                "ClusterIP"
            };
            let service: Service = serde_json::from_value(serde_json::json!({
                "metadata": { "name": format!("np-{i}") },
                "spec": { "type": kind, "ports": [{ "port": 4000, "nodePort": port }] },
            }))
            .unwrap();
            services
                .create(&PostParams::default(), &service)
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn the_port_read_takes_every_page() {
        let sim =
            Simulator::start(SimConfig::new("ports-pages").with_images(crate::default_images()))
                .await
                .unwrap();
        let client = sim.client().await;
        made(&client, &[30905], 4).await;
        let before = sim.requests();
        let used = used_node_ports(&Api::all(client), 2).await.unwrap();
        assert_eq!(used, BTreeSet::from([30905]));
        let pages = sim
            .requests()
            .since(&before)
            .count(Verb::List, Some("services"));
        assert_eq!(
            pages, 3,
            "5 Services (and the API server's own) in pages of 2"
        );
    }

    /// A paged read of the Services whose continue tokens keep expiring (a history of
    /// one change, and writes between every two pages) still reads every node port.
    #[tokio::test]
    async fn the_port_read_starts_again_when_its_continue_token_expires() {
        let sim = Simulator::start(
            SimConfig::new("ports-expiry")
                .with_images(crate::default_images())
                .with_history(1),
        )
        .await
        .unwrap();
        let client = sim.client().await;
        let services: Api<Service> = Api::namespaced(client.clone(), "default");
        for i in 0..5 {
            let service: Service = serde_json::from_value(serde_json::json!({
                "metadata": { "name": format!("np-{i}") },
                "spec": { "type": "NodePort", "ports": [{ "port": 4000 }] },
            }))
            .unwrap();
            services
                .create(&PostParams::default(), &service)
                .await
                .unwrap();
        }
        let all = Api::<Service>::all(client.clone());
        let expected: BTreeSet<u16> = all
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .filter_map(|s| s.spec.as_ref()?.ports.as_ref())
            .flatten()
            .filter_map(|p| u16::try_from(p.node_port?).ok())
            .collect();
        assert_eq!(expected.len(), 5);
        // Each page takes a while, and the cluster is written to all the time.
        sim.faults()
            .delay(Verb::List, Some("services"), Duration::from_millis(50), 1.0);
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
            tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let map: ConfigMap = serde_json::from_value(
                        serde_json::json!({ "metadata": { "name": format!("churn-{i}") } }),
                    )
                    .unwrap();
                    maps.create(&PostParams::default(), &map).await.unwrap();
                    i += 1;
                }
            })
        };
        let used = used_node_ports(&all, 2).await;
        stop.store(true, Ordering::Relaxed);
        writer.await.unwrap();
        assert_eq!(used.unwrap(), expected);
        assert!(
            sim.requests().count(Verb::List, Some("services")) > 2 + 3,
            "the pages expired and were read again"
        );
    }
}
