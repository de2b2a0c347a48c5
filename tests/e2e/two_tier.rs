//! The two tiers over real HTTP on loopback: a global server on its registry, a local
//! config service per simulated cluster on its own registry, and the clusters. Every
//! check looks at all three layers: the global records, the local records, and the
//! Kubernetes objects.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use framedb_core::memory::InMemoryRegistry;
use framedb_core::{Error, FramedbId, InstanceRecord, InstanceRegistry, InstanceStatus, Query};
use framedb_http::settings::{GlobalSettings, LocalSettings, ServeSettings};
use framedb_http::{Adapters, App};
use framedb_kube_sim::Verb;
use framedb_mongo::{MongoConfig, MongoRegistry};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use super::{BASE, Clusters, Server, call, ids, mongo_uri};

mod ownership;
mod soak;
mod updates;

const GLOBAL_TOKEN: &str = "global-token-9c1";
const LOCAL_TOKEN: &str = "local-token-47e";

/// A local config service, restartable on the same address.
struct Local {
    settings: LocalSettings,
    registry: Arc<dyn InstanceRegistry>,
    server: Option<Server>,
    /// The `POST /local/v1/statuses` calls it has answered.
    status_calls: Arc<AtomicUsize>,
    /// How long each `PUT` of an instance waits before it is handled (a slow network).
    put_delay: Duration,
    /// The `PUT`s of an instance it has finished answering.
    puts_done: Arc<AtomicUsize>,
}

impl Local {
    /// Builds and serves it, counting status calls.
    async fn start(&mut self) {
        let adapters = Adapters {
            registry: Some(self.registry.clone()),
            ..Adapters::default()
        };
        let calls = self.status_calls.clone();
        let (delay, puts_done) = (self.put_delay, self.puts_done.clone());
        let app = App::local(&self.settings, adapters)
            .await
            .unwrap()
            .map_router(|router| {
                router.layer(axum::middleware::from_fn(
                    move |request: axum::extract::Request, next: axum::middleware::Next| {
                        if request.uri().path() == "/local/v1/statuses" {
                            calls.fetch_add(1, Ordering::SeqCst);
                        }
                        let put = request.method() == Method::PUT;
                        let puts_done = puts_done.clone();
                        // Delivered late by the network: it runs even when the caller
                        // has given up and hung up meanwhile.
                        let delivered = tokio::spawn(async move {
                            if put {
                                tokio::time::sleep(delay).await;
                            }
                            let response = next.run(request).await;
                            if put {
                                puts_done.fetch_add(1, Ordering::SeqCst);
                            }
                            response
                        });
                        async move { delivered.await.unwrap() }
                    },
                ))
            });
        // A restart serves on the address of the first start.
        self.settings.serve.listen = app.address();
        self.server = Some(Server::serve(app));
    }
}

struct Topology {
    clusters: Clusters,
    locals: Vec<Local>,
    global: Server,
    global_registry: Arc<dyn InstanceRegistry>,
    /// How the global was started (to start another like it).
    global_settings: GlobalSettings,
    client: Client,
}

impl Topology {
    /// Starts it all; `registry` makes each tier's registry from a name.
    async fn start<F, Fut>(
        test: &str,
        ready_after: Duration,
        registry: F,
        timeout: Duration,
    ) -> Self
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Arc<dyn InstanceRegistry>>,
    {
        Self::start_tuned(test, ready_after, registry, timeout, |_| {}).await
    }

    /// As [`Topology::start`], with `tune` applied to every tier's serving settings (its
    /// reconcile interval, say).
    async fn start_tuned<F, Fut>(
        test: &str,
        ready_after: Duration,
        registry: F,
        timeout: Duration,
        tune: impl Fn(&mut ServeSettings),
    ) -> Self
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Arc<dyn InstanceRegistry>>,
    {
        let clusters = Clusters::demo(&format!("two-tier-{test}"), ready_after).await;
        let mut settings = GlobalSettings {
            serve: ServeSettings {
                token: Some(GLOBAL_TOKEN.into()),
                ..ServeSettings::loopback()
            },
            ..GlobalSettings::default()
        };
        tune(&mut settings.serve);
        settings.fleet.local_token = Some(LOCAL_TOKEN.into());
        settings.fleet.local_connect_timeout_ms = u64::try_from(timeout.as_millis()).unwrap();
        settings.fleet.local_timeout_ms = u64::try_from(timeout.as_millis()).unwrap();
        let mut locals = Vec::new();
        for (id, _) in clusters.each() {
            let mut serve = ServeSettings {
                token: Some(LOCAL_TOKEN.into()),
                ..ServeSettings::loopback()
            };
            tune(&mut serve);
            let mut local = Local {
                settings: LocalSettings {
                    serve,
                    ..LocalSettings::new(id.clone(), Some(clusters.kubeconfig(&id)))
                },
                registry: registry(format!("local_{}", id.as_str().replace('-', "_"))).await,
                server: None,
                status_calls: Arc::default(),
                put_delay: Duration::ZERO,
                puts_done: Arc::default(),
            };
            local.start().await;
            let url = local.server.as_ref().unwrap().url.parse().unwrap();
            settings.fleet.local_services.push((id, url));
            locals.push(local);
        }
        let global_registry = registry("global".into()).await;
        let adapters = Adapters {
            registry: Some(global_registry.clone()),
            ..Adapters::default()
        };
        let global = Server::global(&settings, adapters).await;
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {GLOBAL_TOKEN}")).unwrap(),
        );
        let client = super::http_client()
            .default_headers(headers)
            .build()
            .unwrap();
        Self {
            clusters,
            locals,
            global,
            global_registry,
            global_settings: settings,
            client,
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        call(&self.client, method, self.global.at(path), body).await
    }

    async fn create(&self, id: &str, cluster: &str, node: &str, team: &str) -> (StatusCode, Value) {
        let body = json!({"framedb_id": id, "cluster_id": cluster, "node_id": node, "storage_size": "1Gi", "metadata": {"team": team}});
        self.send(Method::POST, BASE, Some(body)).await
    }

    async fn stop_local(&mut self, index: usize) {
        let local = &mut self.locals[index];
        local.server.take().unwrap().stop().await;
    }

    async fn restart_local(&mut self, index: usize) {
        self.locals[index].start().await;
    }

    /// Stops the global service gracefully and starts another on the same address and
    /// registry (a restart of its process on a persistent registry).
    async fn restart_global(&mut self) {
        self.global.halt().await;
        self.global_settings.serve.listen = self.global.address();
        let adapters = Adapters {
            registry: Some(self.global_registry.clone()),
            ..Adapters::default()
        };
        self.global = Server::global(&self.global_settings, adapters).await;
    }

    /// The status of `id` that the global API answers.
    async fn status_of(&self, id: &str) -> Value {
        let (status, body) = self.send(Method::GET, &format!("{BASE}/{id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"]["status"].clone()
    }

    /// Reads `id` until its status is `wanted`, for at most five seconds.
    async fn status_until(&self, id: &str, wanted: &str) -> Value {
        // Long enough for a pod to end its 60-second grace period on the demo clock.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status = self.status_of(id).await;
            if status == wanted || Instant::now() > deadline {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs the machine's `kubectl` (an independent client) against `cluster` of
    /// the topology, feeding it `stdin`; `None` (with a note) where kubectl is not installed.
    async fn kubectl(
        &self,
        cluster: &str,
        args: &[&str],
        stdin: &str,
    ) -> Option<std::process::Output> {
        use tokio::io::AsyncWriteExt;
        const KUBECTL: &str = "/usr/bin/kubectl";
        if !std::path::Path::new(KUBECTL).exists() {
            println!("kubectl is not installed at {KUBECTL}: skipping");
            return None;
        }
        let kubeconfig = self.clusters.kubeconfig(&cluster.parse().unwrap());
        let mut child = tokio::process::Command::new(KUBECTL)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(kubeconfig.with_extension("kubectl-cache"))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .await
            .unwrap();
        let output = child.wait_with_output().await.unwrap();
        println!(
            "$ kubectl {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Some(output)
    }

    /// Every global record has its local record and its Kubernetes objects on its
    /// cluster, and nothing else exists anywhere, once what deletes and undos deleted has
    /// gone (a claim stays while its pod's grace period runs). Returns the ids.
    async fn assert_consistent(&self) -> BTreeSet<String> {
        for (_, simulator) in self.clusters.each() {
            let client = simulator.client().await;
            assert!(
                claims_settled(&client).await,
                "claims still being deleted on {}",
                simulator.name()
            );
        }
        let ids = |records: Vec<InstanceRecord>| -> BTreeSet<String> {
            records.iter().map(|r| r.framedb_id.to_string()).collect()
        };
        let everything = Query::with_filter(framedb_core::Filter::all());
        let global = ids(self.global_registry.find(&everything).await.unwrap());
        let mut union = BTreeSet::new();
        for (local, (cluster, simulator)) in self.locals.iter().zip(self.clusters.each()) {
            let on_cluster = Query::with_filter(framedb_core::Filter::cluster(&cluster));
            let global_here = ids(self.global_registry.find(&on_cluster).await.unwrap());
            let local_here = ids(local.registry.find(&everything).await.unwrap());
            assert_eq!(local_here, global_here, "local records of {cluster}");
            let client = simulator.client().await;
            let services = names::<Service>(&client).await;
            let sets = names::<StatefulSet>(&client).await;
            let claims: BTreeSet<String> = names::<PersistentVolumeClaim>(&client)
                .await
                .iter()
                .map(|n| n.trim_end_matches("-data").to_owned())
                .collect();
            assert_eq!(services, global_here, "Services on {cluster}");
            assert_eq!(sets, global_here, "StatefulSets on {cluster}");
            assert_eq!(claims, global_here, "PVCs on {cluster}");
            union.extend(global_here);
        }
        assert_eq!(union, global, "every global record is on a known cluster");
        global
    }
}

/// Waits (up to 20 s: a grace period is 3 s on the demo's clock) until no claim in
/// `framedb-storage` is being deleted; whether none is.
async fn claims_settled(client: &kube::Client) -> bool {
    let claims = kube::Api::<PersistentVolumeClaim>::namespaced(client.clone(), "framedb-storage");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let going = claims
            .list(&Default::default())
            .await
            .map(|list| {
                list.items
                    .iter()
                    .any(|claim| claim.metadata.deletion_timestamp.is_some())
            })
            .unwrap_or(false);
        if !going {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The names of FrameDB's objects of one kind in `framedb-storage`.
async fn names<K>(client: &kube::Client) -> BTreeSet<String>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    // No namespace yet (nothing ever deployed) reads as no objects.
    kube::Api::<K>::namespaced(client.clone(), "framedb-storage")
        .list(&Default::default())
        .await
        .map(|list| {
            list.items
                .iter()
                .filter_map(|o| o.meta().name.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// A registry per tier on this test's own MongoDB databases.
fn mongo_registries(
    uri: String,
    test: &'static str,
) -> impl Fn(String) -> std::pin::Pin<Box<dyn Future<Output = Arc<dyn InstanceRegistry>>>> {
    move |tier| {
        let uri = uri.clone();
        Box::pin(async move {
            let config = MongoConfig::new(uri)
                .database(format!("framedb_e2e_{test}_{tier}_{}", std::process::id()))
                .server_selection_timeout(Duration::from_secs(5));
            Arc::new(MongoRegistry::connect(&config).await.unwrap()) as Arc<dyn InstanceRegistry>
        })
    }
}

/// Whether `name` is one of [`mongo_registries`]' databases for `test` in this process.
fn is_test_database(name: &str, test: &str) -> bool {
    name.starts_with(&format!("framedb_e2e_{test}_"))
        && name.ends_with(&format!("_{}", std::process::id()))
}

async fn drop_databases(uri: &str, test: &str) {
    let client = mongodb::Client::with_uri_str(uri).await.unwrap();
    for name in client.list_database_names().await.unwrap() {
        if is_test_database(&name, test) {
            client.database(&name).drop().await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_live_on_both_clusters_through_their_local_services() {
    let Some(uri) = mongo_uri() else { return };
    // Pods become ready 2 s after they are scheduled: long enough for the creates and
    // the queries below to see b-1 still provisioning even on a loaded machine (at 800 ms
    // a full parallel suite once saw it running already).
    let topology = Topology::start(
        "tiers",
        Duration::from_secs(2),
        mongo_registries(uri.clone(), "tiers"),
        Duration::from_secs(10),
    )
    .await;

    for (id, cluster, node, team) in [
        ("a-1", "cluster-01", "node-a", "analytics"),
        ("a-2", "cluster-01", "node-b", "billing"),
        ("b-1", "cluster-02", "node-a", "analytics"),
        ("b-2", "cluster-02", "node-a", "search"),
    ] {
        let (status, body) = topology.create(id, cluster, node, team).await;
        assert_eq!(status, StatusCode::CREATED, "{id}: {body}");
    }
    let (_, body) = topology.create("b-3", "cluster-02", "node-b", "x").await;
    assert_eq!(
        body["port"], 30902,
        "ports are allocated per cluster by its local service"
    );

    let (_, body) = topology
        .send(Method::GET, &format!("{BASE}/cluster/cluster-01"), None)
        .await;
    assert_eq!(ids(&body), ["a-1", "a-2"]);
    let (_, body) = topology
        .send(
            Method::GET,
            &format!("{BASE}/cluster/cluster-02/node/node-a"),
            None,
        )
        .await;
    assert_eq!(ids(&body), ["b-1", "b-2"]);
    let (_, body) = topology
        .send(
            Method::POST,
            &format!("{BASE}/query"),
            Some(json!({"metadata.team": "analytics"})),
        )
        .await;
    assert_eq!(ids(&body), ["a-1", "b-1"]);

    // The status comes live from the local service, which reads the pods.
    let (_, body) = topology
        .send(Method::GET, &format!("{BASE}/b-1"), None)
        .await;
    assert_eq!(body["data"]["status"], "Provisioning");
    let mut status = String::new();
    for _ in 0..200 {
        let (_, body) = topology
            .send(Method::GET, &format!("{BASE}/b-1"), None)
            .await;
        status = body["data"]["status"].as_str().unwrap().to_owned();
        if status == "Running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "Running");
    assert_eq!(topology.assert_consistent().await.len(), 5);

    for id in ["a-2", "b-1"] {
        let (status, body) = topology
            .send(Method::DELETE, &format!("{BASE}/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, _) = topology
        .send(Method::GET, &format!("{BASE}/a-2"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        topology.assert_consistent().await,
        ["a-1", "b-2", "b-3"].map(String::from).into()
    );

    let (status, body) = topology.create("c-1", "cluster-77", "node-a", "x").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "cluster_not_found");
    drop_databases(&uri, "tiers").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_local_service_is_503_and_unknown_and_heals_when_it_returns() {
    let Some(uri) = mongo_uri() else { return };
    let timeout = Duration::from_secs(2);
    let mut topology = Topology::start(
        "outage",
        Duration::ZERO,
        mongo_registries(uri.clone(), "outage"),
        timeout,
    )
    .await;
    topology.create("up-1", "cluster-01", "node-a", "t").await;
    topology.create("down-1", "cluster-02", "node-a", "t").await;

    // The global service follows cluster-02's status stream from the first read on.
    assert_eq!(topology.status_until("down-1", "Running").await, "Running");
    topology.stop_local(1).await;
    let started = Instant::now();
    let (status, body) = topology.create("down-2", "cluster-02", "node-a", "t").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("cluster-02"),
        "{body}"
    );
    assert!(
        started.elapsed() < timeout * 4,
        "answered within the configured timeout: {:?}",
        started.elapsed()
    );

    // The stream ended with the service, so reads go to it, and find it gone.
    assert_eq!(topology.status_until("down-1", "Unknown").await, "Unknown");
    let (status, body) = topology
        .send(Method::GET, &format!("{BASE}/down-1"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["status"], InstanceStatus::Unknown.as_str());
    assert!(
        body["data"]["status_reason"]
            .as_str()
            .unwrap()
            .contains("cannot be reached")
    );
    let (_, body) = topology
        .send(Method::GET, &format!("{BASE}/cluster/cluster-02"), None)
        .await;
    assert_eq!(body["data"][0]["status"], "Unknown");

    // The other cluster keeps working.
    let (status, _) = topology.create("up-2", "cluster-01", "node-b", "t").await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, body) = topology
        .send(Method::GET, &format!("{BASE}/up-1"), None)
        .await;
    assert_eq!(body["data"]["status"], "Running");

    topology.restart_local(1).await;
    let (status, _) = topology.create("down-2", "cluster-02", "node-a", "t").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(topology.status_of("down-1").await, "Running");
    assert_eq!(topology.assert_consistent().await.len(), 4);
    drop_databases(&uri, "outage").await;
}

/// A registry whose recording of a deployment fails, as a registry that went away
/// between the two writes of a create would.
struct FailsToRecord(InMemoryRegistry);

#[async_trait]
impl InstanceRegistry for FailsToRecord {
    async fn insert(&self, record: &InstanceRecord) -> framedb_core::Result<()> {
        self.0.insert(record).await
    }
    async fn update_deployment(
        &self,
        _: &FramedbId,
        _: &framedb_core::Stamp,
        _: Option<u16>,
        _: InstanceStatus,
    ) -> framedb_core::Result<()> {
        Err(Error::Unavailable(
            "the registry (MongoDB) cannot be reached".into(),
        ))
    }
    async fn mark_deleting(
        &self,
        id: &FramedbId,
        stamp: &framedb_core::Stamp,
        removal: framedb_core::Removal,
    ) -> framedb_core::Result<()> {
        self.0.mark_deleting(id, stamp, removal).await
    }
    async fn amend(
        &self,
        id: &FramedbId,
        stamp: &framedb_core::Stamp,
        metadata: &framedb_core::Metadata,
        storage_size: &framedb_core::StorageSize,
    ) -> framedb_core::Result<()> {
        self.0.amend(id, stamp, metadata, storage_size).await
    }
    async fn remove_stamped(
        &self,
        id: &FramedbId,
        stamp: &framedb_core::Stamp,
    ) -> framedb_core::Result<bool> {
        self.0.remove_stamped(id, stamp).await
    }
    async fn get(&self, id: &FramedbId) -> framedb_core::Result<InstanceRecord> {
        self.0.get(id).await
    }
    async fn remove(&self, id: &FramedbId) -> framedb_core::Result<bool> {
        self.0.remove(id).await
    }
    async fn find(&self, query: &Query) -> framedb_core::Result<Vec<InstanceRecord>> {
        self.0.find(query).await
    }
    async fn ping(&self) -> framedb_core::Result<()> {
        self.0.ping().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_creates_leave_nothing_in_either_tier_or_on_the_cluster() {
    let registries = |tier: String| async move {
        if tier == "global" {
            Arc::new(FailsToRecord(InMemoryRegistry::new())) as Arc<dyn InstanceRegistry>
        } else {
            Arc::new(InMemoryRegistry::new()) as Arc<dyn InstanceRegistry>
        }
    };
    let topology = Topology::start(
        "failed-creates",
        Duration::ZERO,
        registries,
        Duration::from_secs(10),
    )
    .await;

    // The global registry fails after the local deploy: the deployment is undone.
    let (status, body) = topology.create("half-1", "cluster-01", "node-a", "t").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(topology.assert_consistent().await.is_empty());

    // The local deploy fails: nothing is recorded anywhere.
    let simulator = &topology.clusters.fleet.clusters()[1];
    simulator
        .faults()
        .fail(Verb::Create, Some("statefulsets"), 500, 1.0);
    let (status, body) = topology.create("half-2", "cluster-02", "node-a", "t").await;
    assert!(status.is_server_error(), "{status} {body}");
    assert!(
        simulator
            .requests()
            .count(Verb::Create, Some("statefulsets"))
            > 0,
        "the local deploy is what failed"
    );
    simulator.faults().clear();
    assert!(topology.assert_consistent().await.is_empty());
}

#[tokio::test]
async fn without_the_right_token_both_apis_answer_401_and_change_nothing() {
    let registries =
        |_: String| async { Arc::new(InMemoryRegistry::new()) as Arc<dyn InstanceRegistry> };
    let topology = Topology::start(
        "tokens",
        Duration::ZERO,
        registries,
        Duration::from_secs(10),
    )
    .await;
    let body = json!({"framedb_id": "sneaky", "cluster_id": "cluster-01", "node_id": "node-a", "storage_size": "1Gi"});
    let plain = super::http_client().build().unwrap();
    for header in [
        None,
        Some("Bearer wrong"),
        Some(GLOBAL_TOKEN),
        Some("Bearer global-token-9c"),
    ] {
        let mut request = plain.post(topology.global.at(BASE)).json(&body);
        if let Some(header) = header {
            request = request.header(AUTHORIZATION, header);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{header:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"], "unauthorized");
    }
    let local = topology.locals[0].server.as_ref().unwrap();
    let response = plain
        .put(local.at("local/v1/instances/sneaky"))
        .header(AUTHORIZATION, format!("Bearer {GLOBAL_TOKEN}"))
        .json(&json!({"node_id": "node-a", "storage_size": "1Gi", "port": 30950}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let health = plain
        .get(topology.global.at("healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK, "/healthz stays open");
    // The probes' routes need no token on either role: the kubelet sends none.
    for server in [&topology.global, local] {
        let ready = plain.get(server.at("readyz")).send().await.unwrap();
        assert_eq!(ready.status(), StatusCode::OK, "/readyz stays open");
        let ready: Value = ready.json().await.unwrap();
        assert_eq!(ready, json!({"success": true, "status": "ready"}));
    }
    assert!(topology.assert_consistent().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_the_status_stream_is_in_step_reads_call_no_local_service() {
    let registries =
        |_: String| async { Arc::new(InMemoryRegistry::new()) as Arc<dyn InstanceRegistry> };
    let topology = Topology::start(
        "streamed",
        Duration::from_millis(700),
        registries,
        Duration::from_secs(10),
    )
    .await;
    let (status, body) = topology
        .create("streamed", "cluster-01", "node-a", "t")
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(topology.status_of("streamed").await, "Provisioning");

    // Within moments both books (the local service's watch, the global service's
    // stream) know the instance; from then on reads are answered in the global process.
    let calls = &topology.locals[0].status_calls;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let before = calls.load(Ordering::SeqCst);
        topology.status_of("streamed").await;
        if calls.load(Ordering::SeqCst) == before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reads still call the local service"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = calls.load(Ordering::SeqCst);
    // The pod turns ready on the cluster; the change reaches the global API by the
    // watch and the stream, with no call.
    assert_eq!(
        topology.status_until("streamed", "Running").await,
        "Running"
    );
    assert_eq!(calls.load(Ordering::SeqCst), before);
}

/// A status stream, read line by line.
struct StreamLines {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl StreamLines {
    /// Opens `local`'s status stream, with `query`.
    async fn open(local: &Local, query: &str) -> Self {
        let server = local.server.as_ref().unwrap();
        let response = super::http_client()
            .build()
            .unwrap()
            .get(server.at(&format!("local/v1/statuses/watch{query}")))
            .header(AUTHORIZATION, format!("Bearer {LOCAL_TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        Self {
            response,
            buffer: Vec::new(),
        }
    }

    /// The next line; fails after 30 s without one.
    async fn next(&mut self) -> Value {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return serde_json::from_slice(&line[..end]).unwrap();
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.response.chunk())
                .await
                .expect("a line within 30 s")
                .unwrap()
                .expect("the stream stays open");
            self.buffer.extend_from_slice(&chunk);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_changes_sends_the_whole_book_once_then_only_the_instances_that_changed() {
    let registries =
        |_: String| async { Arc::new(InMemoryRegistry::new()) as Arc<dyn InstanceRegistry> };
    let topology = Topology::start(
        "changes",
        Duration::from_millis(300),
        registries,
        Duration::from_secs(10),
    )
    .await;
    let (status, body) = topology.create("steady", "cluster-01", "node-a", "t").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(topology.status_until("steady", "Running").await, "Running");

    let local = &topology.locals[0];
    let mut changes = StreamLines::open(local, "?changes=true").await;
    let mut whole = StreamLines::open(local, "").await;
    for stream in [&mut changes, &mut whole] {
        let first = stream.next().await;
        assert_eq!(first["statuses"]["steady"]["status"], "Running", "{first}");
    }

    let (status, body) = topology.create("moving", "cluster-01", "node-b", "t").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Applied line by line, the changes make the book; no line tells of the instance
    // that did not change, nor is the whole book sent again.
    let mut book = serde_json::Map::new();
    while book
        .get("moving")
        .is_none_or(|report| report["status"] != "Running")
    {
        let line = changes.next().await;
        assert!(line.get("statuses").is_none(), "a whole book again: {line}");
        let changed = line.get("changed").and_then(Value::as_object);
        assert!(
            changed.is_none_or(|changed| !changed.contains_key("steady")),
            "{line}"
        );
        book.extend(changed.cloned().unwrap_or_default());
        for gone in line
            .get("gone")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            book.remove(gone.as_str().unwrap());
        }
    }
    // The stream that did not ask for changes gets the whole book every time.
    loop {
        let line = whole.next().await;
        let statuses = line["statuses"].as_object().expect("a whole book");
        assert_eq!(statuses["steady"]["status"], "Running", "{line}");
        if statuses
            .get("moving")
            .is_some_and(|report| report["status"] == "Running")
        {
            break;
        }
    }
}

#[tokio::test]
async fn the_local_api_refuses_ports_outside_the_instance_range() {
    let registries =
        |_: String| async { Arc::new(InMemoryRegistry::new()) as Arc<dyn InstanceRegistry> };
    let topology = Topology::start(
        "port-range",
        Duration::ZERO,
        registries,
        Duration::from_secs(10),
    )
    .await;
    let local = topology.locals[0].server.as_ref().unwrap();
    for port in [30899, 31000, 32566, 8080] {
        let response = super::http_client()
            .build()
            .unwrap()
            .put(local.at("local/v1/instances/stray"))
            .header(AUTHORIZATION, format!("Bearer {LOCAL_TOKEN}"))
            .json(&json!({"node_id": "node-a", "storage_size": "1Gi", "port": port}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{port}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"], "invalid_input", "{answer}");
        assert!(
            answer["message"].as_str().unwrap().contains("30900-30999"),
            "{answer}"
        );
    }
    assert!(topology.assert_consistent().await.is_empty());
}

/// The test certificates: a CA, and a certificate it signed for 127.0.0.1 and localhost.
fn tls_file(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("e2e/tls")
        .join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_service_over_https_is_reached_with_the_operators_ca_only() {
    let clusters = Clusters::demo("https", Duration::ZERO).await;
    let cluster: framedb_core::ClusterId = "cluster-01".parse().unwrap();
    let local = LocalSettings {
        serve: ServeSettings {
            token: Some(LOCAL_TOKEN.into()),
            tls_cert: Some(tls_file("cert.pem")),
            tls_key: Some(tls_file("key.pem")),
            ..ServeSettings::loopback()
        },
        ..LocalSettings::new(cluster.clone(), Some(clusters.kubeconfig(&cluster)))
    };
    let local = Server::local(&local, Adapters::default()).await;
    let https = local.url.replace("http://", "https://");
    let global_with = |ca: Option<std::path::PathBuf>| {
        let mut settings = GlobalSettings {
            serve: ServeSettings::loopback(),
            ..GlobalSettings::default()
        };
        settings.fleet.local_token = Some(LOCAL_TOKEN.into());
        settings.fleet.local_ca_file = ca;
        settings
            .fleet
            .local_services
            .push((cluster.clone(), https.parse().unwrap()));
        settings
    };
    let client = super::http_client().build().unwrap();
    let body = |id: &str| json!({"framedb_id": id, "cluster_id": "cluster-01", "node_id": "node-a", "storage_size": "1Gi"});

    // Without the CA, the local service's certificate is not trusted: nothing is sent.
    let untrusting = Server::global(&global_with(None), Adapters::default()).await;
    let (status, answer) = call(
        &client,
        Method::POST,
        untrusting.at(BASE),
        Some(body("untrusted")),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");

    let trusting =
        Server::global(&global_with(Some(tls_file("ca.pem"))), Adapters::default()).await;
    let (status, answer) = call(
        &client,
        Method::POST,
        trusting.at(BASE),
        Some(body("over-tls")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    // The status comes back over the TLS status stream (or a direct read).
    let mut seen = Value::Null;
    for _ in 0..200 {
        let (_, instance) = call(
            &client,
            Method::GET,
            trusting.at(&format!("{BASE}/over-tls")),
            None,
        )
        .await;
        seen = instance["data"]["status"].clone();
        if seen == "Running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(seen, "Running");
    let sim = clusters.fleet.get("cluster-01").unwrap();
    let services = names::<Service>(&sim.client().await).await;
    assert_eq!(
        services,
        BTreeSet::from(["over-tls".to_owned()]),
        "nothing of the untrusted create"
    );
}

/// Every document of the test's MongoDB databases, as JSON text.
async fn every_document(uri: &str, test: &str) -> String {
    let client = mongodb::Client::with_uri_str(uri).await.unwrap();
    let mut text = String::new();
    for name in client.list_database_names().await.unwrap() {
        if !is_test_database(&name, test) {
            continue;
        }
        let database = client.database(&name);
        for collection in database.list_collection_names().await.unwrap() {
            let mut cursor = database
                .collection::<mongodb::bson::Document>(&collection)
                .find(mongodb::bson::doc! {})
                .await
                .unwrap();
            while cursor.advance().await.unwrap() {
                text.push_str(&cursor.deserialize_current().unwrap().to_string());
                text.push('\n');
            }
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_come_from_the_cluster_through_both_tiers_and_stay_out_of_the_registries() {
    let Some(uri) = mongo_uri() else { return };
    let topology = Topology::start(
        "credentials",
        Duration::ZERO,
        mongo_registries(uri.clone(), "credentials"),
        Duration::from_secs(10),
    )
    .await;
    let (status, created) = topology.create("vault", "cluster-01", "node-a", "x").await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["credentials"]["user"], "root");
    let password = created["credentials"]["password"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, other) = topology.create("other", "cluster-02", "node-a", "x").await;
    assert_ne!(other["credentials"]["password"], password);

    // The password is the one in the instance's Secret on its cluster.
    let (_, sim) = topology.clusters.each().next().unwrap();
    let secret = kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(
        sim.client().await,
        "framedb-storage",
    )
    .get("vault-credentials")
    .await
    .unwrap();
    let stored = String::from_utf8(secret.data.unwrap()["password"].0.clone()).unwrap();
    assert_eq!(stored, password);

    // GET .../credentials reads it again from the cluster, through the local service,
    // and no cache may keep the answer.
    let response = topology
        .client
        .get(topology.global.at(&format!("{BASE}/vault/credentials")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer,
        json!({"success": true, "data": {"user": "root", "password": password}})
    );

    // A repeated deploy (as the global retries it, with its create's stamp) answers the
    // same password.
    let local = topology.locals[0].server.as_ref().unwrap();
    let port = created["port"].as_u64().unwrap();
    let documents = every_document(&uri, "credentials").await;
    let stamp = documents
        .split("\"stamp\": \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the registries record the create's stamp")
        .to_owned();
    let again: Value = super::http_client()
        .build()
        .unwrap()
        .put(local.at("local/v1/instances/vault"))
        .header(AUTHORIZATION, format!("Bearer {LOCAL_TOKEN}"))
        .json(
            &json!({"node_id": "node-a", "storage_size": "1Gi", "port": port,
                      "metadata": {"team": "x"}, "stamp": stamp}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        again["credentials"]["password"],
        password.as_str(),
        "{again}"
    );

    // Neither tier's registry holds it.
    let documents = every_document(&uri, "credentials").await;
    assert!(documents.contains("vault"), "the test read the registries");
    assert!(
        !documents.contains(&password),
        "a registry holds the password"
    );

    // Gone with the instance.
    let (status, _) = topology
        .send(Method::DELETE, &format!("{BASE}/vault"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = topology
        .send(Method::GET, &format!("{BASE}/vault/credentials"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "instance_not_found");
    drop_databases(&uri, "credentials").await;
}

#[tokio::test]
async fn status_streams_past_the_cap_are_503_and_a_closed_one_frees_its_slot() {
    let clusters = Clusters::demo("stream-cap", Duration::ZERO).await;
    let (id, _) = clusters.each().next().unwrap();
    let mut settings = LocalSettings {
        serve: ServeSettings {
            token: Some(LOCAL_TOKEN.into()),
            ..ServeSettings::loopback()
        },
        ..LocalSettings::new(id.clone(), Some(clusters.kubeconfig(&id)))
    };
    settings.cluster.max_status_streams = 2;
    let adapters = Adapters {
        registry: Some(Arc::new(InMemoryRegistry::new())),
        ..Adapters::default()
    };
    let local = Server::local(&settings, adapters).await;
    let client = super::http_client().build().unwrap();
    let watch = || {
        client
            .get(local.at("local/v1/statuses/watch"))
            .header(AUTHORIZATION, format!("Bearer {LOCAL_TOKEN}"))
            .send()
    };
    // Two streams stay open (their first line read), the third is refused at once.
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut stream = watch().await.unwrap();
        assert_eq!(stream.status(), StatusCode::OK);
        assert!(stream.chunk().await.unwrap().is_some());
        open.push(stream);
    }
    let refused = watch().await.unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "overloaded", "{body}");

    // Closing one frees its slot (the server notices at its next write, the heartbeat).
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let next = watch().await.unwrap();
        if next.status() == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed stream's slot was not freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    local.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_refuses_the_instance_ports_says_why_through_both_tiers() {
    // A cluster whose API server runs with --service-node-port-range=30000-30900.
    let sim = framedb_kube_sim::Simulator::start(
        framedb_kube_sim::SimConfig::new("narrow")
            .with_images(framedb_k8s::default_images())
            .with_node_port_range(30000..=30900),
    )
    .await
    .unwrap();
    let kubeconfig =
        std::env::temp_dir().join(format!("framedb-e2e-narrow-{}.json", std::process::id()));
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let id: framedb_core::ClusterId = "narrow".parse().unwrap();
    let local = LocalSettings {
        serve: ServeSettings {
            token: Some(LOCAL_TOKEN.into()),
            ..ServeSettings::loopback()
        },
        ..LocalSettings::new(id.clone(), Some(kubeconfig.clone()))
    };
    let local = Server::local(&local, Adapters::default()).await;
    let mut settings = GlobalSettings {
        serve: ServeSettings::loopback(),
        ..GlobalSettings::default()
    };
    settings.fleet.local_token = Some(LOCAL_TOKEN.into());
    settings
        .fleet
        .local_services
        .push((id, local.url.parse().unwrap()));
    let global = Server::global(&settings, Adapters::default()).await;
    let client = super::http_client().build().unwrap();
    let create = |name: &str| {
        json!({"framedb_id": name, "cluster_id": "narrow", "node_id": "node-a",
               "storage_size": "1Gi"})
    };

    let (status, body) = call(&client, Method::POST, global.at(BASE), Some(create("fits"))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["port"], 30900);
    let (status, body) = call(
        &client,
        Method::POST,
        global.at(BASE),
        Some(create("outside")),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "port_out_of_range", "{body}");
    assert_eq!(
        body["details"],
        json!({"cluster_id": "narrow", "port": 30901, "valid_ports": "30000-30900"})
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("--service-node-port-range"),
        "{body}"
    );
    let (status, _) = call(
        &client,
        Method::GET,
        global.at(&format!("{BASE}/outside")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    global.stop().await;
    local.stop().await;
    let _ = std::fs::remove_file(&kubeconfig);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_on_a_tainted_node_is_pending_with_the_scheduler_s_reason_until_untainted() {
    let registries =
        |_: String| async { Arc::new(InMemoryRegistry::new()) as Arc<dyn InstanceRegistry> };
    let topology =
        Topology::start("taint", Duration::ZERO, registries, Duration::from_secs(10)).await;
    let Some(tainted) = topology
        .kubectl(
            "cluster-01",
            &["taint", "nodes", "node-a", "maintenance=disk:NoSchedule"],
            "",
        )
        .await
    else {
        return;
    };
    assert!(tainted.status.success());
    let (status, body) = topology
        .create("patient", "cluster-01", "node-a", "t")
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The claim and the workload are made in one round trip: the scheduler may first
    // see the pod before its claim (Pending, "persistentvolumeclaim ... not found"), as
    // kube-scheduler would, and tell the taint once it looks again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let read = loop {
        let (_, read) = topology
            .send(Method::GET, &format!("{BASE}/patient"), None)
            .await;
        let reason = read["data"]["status_reason"].as_str().unwrap_or_default();
        let tainted = read["data"]["status"] == "Pending" && reason.contains("taint");
        if tainted || Instant::now() > deadline {
            break read;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(read["data"]["status"], "Pending", "{read}");
    let reason = read["data"]["status_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("untolerated taint {maintenance: disk}"),
        "{read}"
    );

    topology
        .kubectl(
            "cluster-01",
            &["taint", "nodes", "node-a", "maintenance=disk:NoSchedule-"],
            "",
        )
        .await
        .unwrap();
    assert_eq!(topology.status_until("patient", "Running").await, "Running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_instance_is_failed_with_its_last_exit_through_both_tiers() {
    let registries =
        |_: String| async { Arc::new(InMemoryRegistry::new()) as Arc<dyn InstanceRegistry> };
    // Ready a second after each start: every run is OOM-killed (a simulated second in,
    // a tenth of a real one on the demo clock) before it would be.
    let topology = Topology::start(
        "oom",
        Duration::from_secs(1),
        registries,
        Duration::from_secs(10),
    )
    .await;
    let sim = topology.clusters.fleet.get("cluster-01").unwrap();
    sim.inject_container_fault(
        framedb_kube_sim::ContainerFault::oom_killed("tidb").in_pods_named("hungry"),
    );
    let (status, body) = topology.create("hungry", "cluster-01", "node-a", "t").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let read = loop {
        let (_, read) = topology
            .send(Method::GET, &format!("{BASE}/hungry"), None)
            .await;
        if read["data"]["status"] == "Failed" || Instant::now() > deadline {
            break read;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(read["data"]["status"], "Failed", "{read}");
    let reason = read["data"]["status_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("container tidb"), "{read}");
    assert!(reason.contains("OOMKilled (exit code 137)"), "{read}");

    // Lifted, the next restart comes up and stays.
    sim.clear_container_faults();
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut status = topology.status_of("hungry").await;
    while status != "Running" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = topology.status_of("hungry").await;
    }
    assert_eq!(status, "Running");
}
