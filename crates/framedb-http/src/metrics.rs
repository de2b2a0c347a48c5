//! Prometheus metrics: one registry per service, filled by a request middleware, by
//! decorators around the ports (the registry, the clusters, their node ports), by the
//! handlers of creates and deletes and by the reconciler, and read at `GET /metrics` in
//! the OpenMetrics text format. The decorators measure what crosses the hexagon's edge,
//! so no adapter and nothing of the domain knows about metrics.
//!
//! | series | labels |
//! |---|---|
//! | `framedb_http_requests_total`, `framedb_http_request_duration_seconds` | `route` (the matched pattern), `method`, `status` (the counter only) |
//! | `framedb_instance_operations_total`, `framedb_instance_operation_duration_seconds` | `operation` (`create`, `delete`, `update`), `outcome` |
//! | `framedb_cluster_calls_total`, `framedb_cluster_call_duration_seconds` | `via` (`local_service`, `kubernetes`, `supplied`), `operation`, `outcome` |
//! | `framedb_registry_operation_duration_seconds` | `operation`, `outcome` |
//! | `framedb_reconcile_runs_total`, `framedb_reconcile_run_duration_seconds`, `framedb_reconcile_repairs_total` | `outcome`; `kind` |
//! | `framedb_instances` | `cluster_id`, `status`: from the clusters' status books at each scrape (0 for a status no instance has; none for a cluster whose book is not in step) |
//! | `framedb_free_node_ports` | `cluster_id`: as of the last allocation on the cluster (0 once exhausted) |
//! | `framedb_heap_bytes` | none: what the process's allocator holds for it, at each scrape (`framedb-server` with `FRAMEDB_HEAP_STATS=1`; a process whose allocator does not count has no such series) |
//!
//! `outcome` is `ok`, or what kind of failure: `refused` (the caller's or the cluster's
//! refusal), `unavailable`, `timeout`, `bad_gateway`, `internal`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header::CONTENT_TYPE};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use framedb_core::live::{StatusFeed, answer_from};
use framedb_core::{
    ClusterDeployer, ClusterId, Credentials, Deployed, DeploymentSpec, FramedbId, InstanceRecord,
    InstanceRegistry, InstanceStatus, Metadata, PortAllocator, Query, Removal, Repairs, Stamp,
    StatusReport, StorageSize,
};
use prometheus_client::encoding::{EncodeLabelSet, text::encode};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::startup::{Clusters, Fleet};

/// Every series of one service, and the registry that renders them.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<RouteLabels, Histogram>,
    operations: Family<Outcome, Counter>,
    operation_seconds: Family<Outcome, Histogram>,
    cluster_calls: Family<CallLabels, Counter>,
    cluster_call_seconds: Family<CallLabels, Histogram>,
    registry_seconds: Family<Outcome, Histogram>,
    reconcile_runs: Family<OutcomeOnly, Counter>,
    reconcile_seconds: Family<OutcomeOnly, Histogram>,
    repairs: Family<KindLabels, Counter>,
    instances: Family<InstanceLabels, Gauge>,
    free_ports: Family<ClusterLabels, Gauge>,
    /// The heap in use, when the process's allocator counts it.
    heap: Option<Gauge>,
    /// Held while a scrape counts instances and renders.
    scraping: std::sync::Mutex<()>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeOnly {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    via: &'static str,
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    cluster_id: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabels {
    cluster_id: String,
}

/// Latency buckets from 1 ms to about 65 s, a factor of 4 apart: a read from memory to a
/// create that waits for its cluster, in few series.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 4.0, 9))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every series, none observed yet.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("framedb");
        let requests = Family::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route pattern, method and status",
            requests.clone(),
        );
        let request_seconds = Family::new_with_constructor(seconds as fn() -> Histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route pattern and method",
            request_seconds.clone(),
        );
        let operations = Family::default();
        registry.register(
            "instance_operations",
            "Creates and deletes of instances, by outcome",
            operations.clone(),
        );
        let operation_seconds = Family::new_with_constructor(seconds as fn() -> Histogram);
        registry.register(
            "instance_operation_duration_seconds",
            "Time a create or delete took, by outcome",
            operation_seconds.clone(),
        );
        let cluster_calls = Family::default();
        registry.register(
            "cluster_calls",
            "Calls to clusters (through their local services, or to Kubernetes), by outcome",
            cluster_calls.clone(),
        );
        let cluster_call_seconds = Family::new_with_constructor(seconds as fn() -> Histogram);
        registry.register(
            "cluster_call_duration_seconds",
            "Time a call to a cluster took",
            cluster_call_seconds.clone(),
        );
        let registry_seconds = Family::new_with_constructor(seconds as fn() -> Histogram);
        registry.register(
            "registry_operation_duration_seconds",
            "Time a registry operation took, by operation and outcome",
            registry_seconds.clone(),
        );
        let reconcile_runs = Family::default();
        registry.register(
            "reconcile_runs",
            "Reconcile passes run, by outcome",
            reconcile_runs.clone(),
        );
        let reconcile_seconds = Family::new_with_constructor(seconds as fn() -> Histogram);
        registry.register(
            "reconcile_run_duration_seconds",
            "Time a reconcile pass took, by outcome",
            reconcile_seconds.clone(),
        );
        let repairs = Family::default();
        registry.register(
            "reconcile_repairs",
            "What reconcile passes repaired (or could not), by kind",
            repairs.clone(),
        );
        let instances = Family::default();
        registry.register(
            "instances",
            "Instances by cluster and live status, from the clusters' status books",
            instances.clone(),
        );
        let free_ports = Family::default();
        registry.register(
            "free_node_ports",
            "Free node ports of 30900-30999 by cluster, as of the last allocation there",
            free_ports.clone(),
        );
        let heap = framedb_alloc::allocated().map(|_| {
            let heap = Gauge::default();
            registry.register(
                "heap_bytes",
                "Bytes the process's allocator holds for it (its heap in use)",
                heap.clone(),
            );
            heap
        });
        Self(Arc::new(Inner {
            registry,
            requests,
            request_seconds,
            operations,
            operation_seconds,
            cluster_calls,
            cluster_call_seconds,
            registry_seconds,
            reconcile_runs,
            reconcile_seconds,
            repairs,
            instances,
            free_ports,
            heap,
            scraping: std::sync::Mutex::new(()),
        }))
    }

    /// Every series as OpenMetrics text.
    pub fn render(&self) -> String {
        if let (Some(gauge), Some(bytes)) = (&self.0.heap, framedb_alloc::allocated()) {
            gauge.set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.0.registry);
        text
    }

    /// Counts a create or delete that ended with `result` after `started`.
    pub(crate) fn operation<T>(
        &self,
        operation: &'static str,
        started: Instant,
        result: &framedb_core::Result<T>,
    ) {
        let labels = Outcome {
            operation,
            outcome: outcome(result),
        };
        self.0.operations.get_or_create(&labels).inc();
        self.0
            .operation_seconds
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
    }

    /// Counts a reconcile pass that took `took`, and what it repaired.
    pub(crate) fn reconciled(&self, result: &framedb_core::Result<Repairs>, took: Duration) {
        let labels = OutcomeOnly {
            outcome: outcome(result),
        };
        self.0.reconcile_runs.get_or_create(&labels).inc();
        self.0
            .reconcile_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        if let Ok(repairs) = result {
            for (kind, count) in [
                ("rebuilt", repairs.rebuilt),
                ("completed", repairs.completed),
                ("settled", repairs.settled),
                ("deleted", repairs.deleted),
                ("restored", repairs.restored),
                ("failed", repairs.failed),
            ] {
                self.0
                    .repairs
                    .get_or_create(&KindLabels { kind })
                    .inc_by(count as u64);
            }
        }
    }

    /// Sets `framedb_instances` from the clusters' status books and renders every
    /// series, as one step (two scrapes at once cannot interleave): a cluster whose book
    /// is in step shows every status, 0 included; one whose book is not (its watch is
    /// starting or broken) is left out rather than guessed.
    pub(crate) fn render_with_instances(&self, books: &[(ClusterId, StatusFeed)]) -> String {
        let _one_at_a_time = self
            .0
            .scraping
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut counts: HashMap<InstanceLabels, i64> = HashMap::new();
        for (cluster, feed) in books {
            let Some(book) = feed.borrow().clone() else {
                continue;
            };
            for status in InstanceStatus::ALL {
                counts.insert(
                    InstanceLabels {
                        cluster_id: cluster.to_string(),
                        status: status.as_str(),
                    },
                    0,
                );
            }
            for report in book.values() {
                *counts
                    .entry(InstanceLabels {
                        cluster_id: cluster.to_string(),
                        status: report.status.as_str(),
                    })
                    .or_default() += 1;
            }
        }
        self.0.instances.clear();
        for (labels, count) in counts {
            self.0.instances.get_or_create(&labels).set(count);
        }
        self.render()
    }

    /// The ports wrapped so that their calls are measured, `via` naming what they reach.
    pub(crate) fn measured_clusters(&self, clusters: Clusters, via: &'static str) -> Clusters {
        Clusters {
            deployer: Arc::new(Measured {
                inner: clusters.deployer,
                metrics: self.clone(),
                via,
            }),
            ports: Arc::new(Measured {
                inner: clusters.ports,
                metrics: self.clone(),
                via,
            }),
        }
    }

    /// The registry wrapped so that its operations are timed.
    pub(crate) fn measured_registry(
        &self,
        registry: Arc<dyn InstanceRegistry>,
    ) -> Arc<dyn InstanceRegistry> {
        Arc::new(Measured {
            inner: registry,
            metrics: self.clone(),
            via: "registry",
        })
    }

    fn call<T>(
        &self,
        via: &'static str,
        operation: &'static str,
        started: Instant,
        result: &framedb_core::Result<T>,
    ) {
        let labels = CallLabels {
            via,
            operation,
            outcome: outcome(result),
        };
        self.0.cluster_calls.get_or_create(&labels).inc();
        self.0
            .cluster_call_seconds
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
    }

    fn registry_call<T>(
        &self,
        operation: &'static str,
        started: Instant,
        result: &framedb_core::Result<T>,
    ) {
        self.0
            .registry_seconds
            .get_or_create(&Outcome {
                operation,
                outcome: outcome(result),
            })
            .observe(started.elapsed().as_secs_f64());
    }
}

/// What kind of end `result` had, in a word.
fn outcome<T>(result: &framedb_core::Result<T>) -> &'static str {
    use framedb_core::Error as E;
    match result {
        Ok(_) => "ok",
        Err(E::Unavailable(_)) => "unavailable",
        Err(E::Timeout(_)) => "timeout",
        Err(E::BadGateway(_)) => "bad_gateway",
        Err(E::Internal(_)) => "internal",
        Err(_) => "refused",
    }
}

/// A method as a label: the standard ones by name, anything else as `other`, so that a
/// caller cannot mint a series per request.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Counts and times every request by its route's pattern (never its path, whose ids
/// would make a series each); requests no route matched share `unmatched`.
pub(crate) async fn track(
    State(metrics): State<Metrics>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    metrics
        .0
        .requests
        .get_or_create(&RequestLabels {
            route: route.clone(),
            method,
            status,
        })
        .inc();
    metrics
        .0
        .request_seconds
        .get_or_create(&RouteLabels { route, method })
        .observe(started.elapsed().as_secs_f64());
    response
}

/// What `GET /metrics` reads: the service's series, and the clusters whose status books
/// it counts instances from.
#[derive(Clone)]
pub(crate) struct Scrape {
    /// The series.
    pub metrics: Metrics,
    /// The provisioning service, for its clusters' status books.
    pub service: framedb_core::ProvisioningService,
    /// Its clusters.
    pub fleet: Fleet,
    /// The scrape-only token (`--metrics-token`), which `/metrics` takes besides the
    /// API's.
    pub token: crate::api::ApiToken,
}

/// `GET /metrics`: the series as OpenMetrics text, the instance counts read from the
/// clusters' status books (in memory) first.
#[utoipa::path(
    get, path = "/metrics", tag = "service",
    responses((status = 200, description = "Prometheus metrics in the OpenMetrics text \
        format (README, \"Metrics\"); behind the token like the API, or `--metrics-token`.",
        content_type = "application/openmetrics-text", body = String))
)]
pub(crate) async fn scrape(State(scrape): State<Arc<Scrape>>) -> Response {
    let mut books = Vec::new();
    for cluster in scrape.fleet.clusters() {
        // A cluster that cannot be followed now is left out of this scrape's counts.
        if let Ok(feed) = scrape.service.follow_statuses(&cluster).await {
            books.push((cluster, feed));
        }
    }
    let text = scrape.metrics.render_with_instances(&books);
    (
        StatusCode::OK,
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// A port, measured.
struct Measured<P: ?Sized> {
    inner: Arc<P>,
    metrics: Metrics,
    via: &'static str,
}

impl<P: ?Sized> Measured<P> {
    async fn time<T>(
        &self,
        operation: &'static str,
        work: impl Future<Output = framedb_core::Result<T>>,
    ) -> framedb_core::Result<T> {
        let started = Instant::now();
        let result = work.await;
        if self.via == "registry" {
            self.metrics.registry_call(operation, started, &result);
        } else {
            self.metrics.call(self.via, operation, started, &result);
        }
        result
    }
}

#[async_trait]
impl InstanceRegistry for Measured<dyn InstanceRegistry> {
    async fn insert(&self, record: &InstanceRecord) -> framedb_core::Result<()> {
        self.time("insert", self.inner.insert(record)).await
    }

    async fn update_deployment(
        &self,
        id: &FramedbId,
        stamp: &Stamp,
        port: Option<u16>,
        status: InstanceStatus,
    ) -> framedb_core::Result<()> {
        self.time(
            "update_deployment",
            self.inner.update_deployment(id, stamp, port, status),
        )
        .await
    }

    async fn mark_deleting(
        &self,
        id: &FramedbId,
        stamp: &Stamp,
        removal: Removal,
    ) -> framedb_core::Result<()> {
        self.time(
            "mark_deleting",
            self.inner.mark_deleting(id, stamp, removal),
        )
        .await
    }

    async fn get(&self, id: &FramedbId) -> framedb_core::Result<InstanceRecord> {
        self.time("get", self.inner.get(id)).await
    }

    async fn remove(&self, id: &FramedbId) -> framedb_core::Result<bool> {
        self.time("remove", self.inner.remove(id)).await
    }

    async fn remove_stamped(&self, id: &FramedbId, stamp: &Stamp) -> framedb_core::Result<bool> {
        self.time("remove_stamped", self.inner.remove_stamped(id, stamp))
            .await
    }

    async fn find(&self, query: &Query) -> framedb_core::Result<Vec<InstanceRecord>> {
        self.time("find", self.inner.find(query)).await
    }

    async fn amend(
        &self,
        id: &FramedbId,
        stamp: &Stamp,
        metadata: &Metadata,
        storage_size: &StorageSize,
    ) -> framedb_core::Result<()> {
        self.time("amend", self.inner.amend(id, stamp, metadata, storage_size))
            .await
    }

    async fn ping(&self) -> framedb_core::Result<()> {
        self.time("ping", self.inner.ping()).await
    }
}

#[async_trait]
impl ClusterDeployer for Measured<dyn ClusterDeployer> {
    async fn deploy(&self, spec: &DeploymentSpec) -> framedb_core::Result<Deployed> {
        self.time("deploy", self.inner.deploy(spec)).await
    }

    async fn amend(&self, spec: &DeploymentSpec) -> framedb_core::Result<StorageSize> {
        self.time("amend", self.inner.amend(spec)).await
    }

    async fn undeploy(
        &self,
        cluster: &ClusterId,
        id: &FramedbId,
        stamp: &Stamp,
        removal: Removal,
    ) -> framedb_core::Result<bool> {
        self.time("undeploy", self.inner.undeploy(cluster, id, stamp, removal))
            .await
    }

    async fn credentials(
        &self,
        cluster: &ClusterId,
        id: &FramedbId,
    ) -> framedb_core::Result<Credentials> {
        self.time("credentials", self.inner.credentials(cluster, id))
            .await
    }

    async fn statuses(
        &self,
        cluster: &ClusterId,
        ids: &[FramedbId],
    ) -> framedb_core::Result<HashMap<FramedbId, StatusReport>> {
        // What the cluster's status book answers (in memory, as the adapter would) is no
        // call to the cluster.
        if let Ok(feed) = self.inner.follow(cluster).await
            && let Some(answer) = answer_from(&feed.borrow(), ids)
        {
            return Ok(answer);
        }
        self.time("statuses", self.inner.statuses(cluster, ids))
            .await
    }

    async fn follow(&self, cluster: &ClusterId) -> framedb_core::Result<StatusFeed> {
        // Not a call: the feed is the adapter's book, kept by its own watch.
        self.inner.follow(cluster).await
    }

    async fn inventory(&self, cluster: &ClusterId) -> framedb_core::Result<Vec<InstanceRecord>> {
        self.time("inventory", self.inner.inventory(cluster)).await
    }
}

#[async_trait]
impl PortAllocator for Measured<dyn PortAllocator> {
    async fn free_ports(
        &self,
        cluster: &ClusterId,
        skip: &[u16],
    ) -> framedb_core::Result<Vec<u16>> {
        let free = self
            .time("free_ports", self.inner.free_ports(cluster, skip))
            .await;
        // The ports that creates in progress here hold (`skip`) are not free either.
        let count = match &free {
            Ok(free) => i64::try_from(free.len()).unwrap_or(i64::MAX),
            Err(framedb_core::Error::PortsExhausted(_)) => 0,
            Err(_) => return free,
        };
        self.metrics
            .0
            .free_ports
            .get_or_create(&ClusterLabels {
                cluster_id: cluster.to_string(),
            })
            .set(count);
        free
    }

    async fn lowest_free(&self, cluster: &ClusterId, skip: &[u16]) -> framedb_core::Result<u16> {
        self.time("lowest_free", self.inner.lowest_free(cluster, skip))
            .await
    }
}
