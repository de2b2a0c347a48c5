//! The five scenarios, each measured against its baseline in the same run:
//! read (and memory, which shares its server), query, create, and port allocation.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use framedb_core::memory::InMemoryRegistry;
use framedb_core::{
    ClusterDeployer, ClusterId, DeletionPolicy, DeploymentSpec, FramedbId, NodeId, PORT_RANGE,
    PortAllocator, Stamp, StorageSize, Timestamp,
};
use framedb_k8s::{KubeFleet, Layout};
use framedb_kube_sim::{RequestStats, SimConfig, Simulator, Verb};
use framedb_mongo::MongoRegistry;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use mongodb::bson::{Document, doc};
use serde_json::json;

use crate::child::ServerProcess;
use crate::data;
use crate::load::{self, Connection, Request};
use crate::report::Report;
use crate::stats::{Latencies, resident_kib};
use crate::topology::{self, Shape};

const BASE: &str = "/global/framedb/persistent-instances";
/// Instances the read scenario reads, round-robin.
const READ_IDS: usize = 8;

/// The sizes and durations of a run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `quick` or `full`.
    pub mode: &'static str,
    /// Warm-up of each closed-loop run.
    pub warmup: Duration,
    /// Measured part of each closed-loop run.
    pub duration: Duration,
    /// Concurrent connections of the read scenario.
    pub connections: usize,
    /// Instances held by the memory scenario's registry and the query scenario's MongoDB.
    pub fleet: usize,
    /// Query repetitions per shape and side, at most.
    pub queries: usize,
    /// Time budget per query shape.
    pub query_budget: Duration,
    /// Creates of the create scenario, and their concurrency.
    pub creates: usize,
    /// Concurrency of the creates.
    pub create_concurrency: usize,
    /// Foreign Services of the port-allocation scenario.
    pub service_counts: Vec<usize>,
    /// Allocations timed per size.
    pub allocations: usize,
}

impl Plan {
    /// The plan of `--quick` (under a minute) or of the full run (under ten).
    pub fn new(quick: bool) -> Self {
        if quick {
            Self {
                mode: "quick",
                warmup: Duration::from_millis(300),
                duration: Duration::from_millis(1500),
                connections: 64,
                fleet: 10_000,
                queries: 10,
                query_budget: Duration::from_secs(3),
                creates: 200,
                create_concurrency: 16,
                service_counts: vec![0, 100, 1_000],
                allocations: 20,
            }
        } else {
            Self {
                mode: "full",
                warmup: Duration::from_secs(2),
                duration: Duration::from_secs(10),
                connections: 64,
                fleet: 100_000,
                queries: 100,
                query_budget: Duration::from_secs(40),
                creates: 200,
                create_concurrency: 16,
                service_counts: vec![0, 1_000, 10_000],
                allocations: 20,
            }
        }
    }
}

/// Creates the read scenario's instances through the API and returns their GET requests
/// and the body of the first answer.
async fn create_read_instances(server: &ServerProcess) -> Result<(Vec<Request>, String)> {
    let mut requests = Vec::new();
    for n in 1..=READ_IDS {
        let cluster = format!("cluster-{:02}", 1 + n % 2);
        let body = json!({"framedb_id": format!("bench-read-{n}"), "node_id": "node-a",
            "cluster_id": cluster, "storage_size": "2Gi",
            "metadata": {"team": "team-01", "env": "prod"}});
        let (status, answer) =
            load::once(server.addr, &Request::post_json(BASE, &body.to_string())).await?;
        ensure!(
            status == 201 || status == 409,
            "creating a read instance answered {status}: {}",
            String::from_utf8_lossy(&answer)
        );
        requests.push(Request::get(&format!("{BASE}/bench-read-{n}")));
    }
    let (status, body) = load::once(server.addr, &requests[0]).await?;
    ensure!(status == 200, "reading an instance answered {status}");
    Ok((requests, String::from_utf8(body)?))
}

fn read_row(report: &mut Report, case: &str, run: &load::Run) {
    report.row(
        "read",
        case,
        vec![
            ("rate", run.rate(), "req/s"),
            ("p50", run.latencies.p50(), "ms"),
            ("p99", run.latencies.p99(), "ms"),
            ("errors", run.errors as f64, ""),
        ],
    );
}

/// Read (1) and memory (5): FrameDB on the in-memory registry, against the axum ceiling,
/// with the breakdowns that show where the time goes.
///
/// # Errors
/// When a server cannot be started or answers wrongly.
pub async fn read_and_memory(plan: &Plan, report: &mut Report) -> Result<()> {
    let mut framedb = ServerProcess::start(&[]).await?;
    let (requests, body) = create_read_instances(&framedb).await?;
    let closed = |addr, requests| {
        load::closed_loop(
            addr,
            requests,
            200,
            plan.connections,
            plan.warmup,
            plan.duration,
        )
    };
    // A short load first, so the empty figure includes what serving itself keeps.
    load::closed_loop(
        framedb.addr,
        requests.clone(),
        200,
        plan.connections,
        Duration::ZERO,
        plan.warmup,
    )
    .await?;
    let (empty_kib, _) = resident_kib(framedb.pid());
    if std::env::var_os("XNOLOAD").is_none() {
        framedb.load(plan.fleet).await?;
    }
    let (loaded_kib, _) = resident_kib(framedb.pid());
    let framedb_run = closed(framedb.addr, requests.clone()).await?;
    let (_, peak_kib) = resident_kib(framedb.pid());
    framedb.stop().await;

    let ceiling = ServerProcess::start(&["--ceiling-body".into(), body.clone()]).await?;
    let ceiling_run = closed(ceiling.addr, requests.clone()).await?;
    ceiling.stop().await;

    read_row(report, "axum ceiling (same JSON body)", &ceiling_run);
    read_row(
        report,
        &format!(
            "FrameDB, in-memory registry ({} instances), two tiers",
            plan.fleet
        ),
        &framedb_run,
    );
    for (shape, name) in [
        (
            "direct",
            "breakdown: one tier (kube-rs to the cluster directly)",
        ),
        ("no-cluster", "breakdown: no cluster (status from memory)"),
    ] {
        let server = ServerProcess::start(&["--shape".into(), shape.into()]).await?;
        let (requests, _) = create_read_instances(&server).await?;
        let run = closed(server.addr, requests).await?;
        server.stop().await;
        read_row(report, name, &run);
    }
    report.row(
        "memory",
        format!("FrameDB server, {} instances in memory", plan.fleet),
        vec![
            ("empty RSS", empty_kib as f64 / 1024.0, "MiB"),
            ("loaded RSS", loaded_kib as f64 / 1024.0, "MiB"),
            (
                "per instance",
                (loaded_kib.saturating_sub(empty_kib) * 1024) as f64 / plan.fleet as f64,
                "B",
            ),
            ("peak under read load", peak_kib as f64 / 1024.0, "MiB"),
        ],
    );
    report.target(
        "read, in-memory: requests/s ≥ 0.7 × axum",
        framedb_run.rate() / ceiling_run.rate(),
        0.7,
        true,
        "FrameDB req/s ÷ ceiling req/s",
    );
    report.target(
        "read, in-memory: p99 ≤ 2 × axum",
        framedb_run.latencies.p99() / ceiling_run.latencies.p99(),
        2.0,
        false,
        "FrameDB p99 ÷ ceiling p99",
    );
    report.target(
        "memory: ≤ 1 KiB per instance",
        (loaded_kib.saturating_sub(empty_kib) * 1024) as f64 / plan.fleet as f64 / 1024.0,
        1.0,
        false,
        "(loaded RSS − empty RSS) ÷ instances, KiB",
    );
    Ok(())
}

/// The MongoDB side: loads the fleet with `insert_many`, then read (1) and query (2)
/// against the driver's own `find_one` / `find`.
///
/// # Errors
/// When MongoDB cannot be used or a server fails.
pub async fn mongo(plan: &Plan, report: &mut Report, uri: &str, database: &str) -> Result<()> {
    let config = framedb_mongo::MongoConfig::new(uri).database(database);
    let registry = MongoRegistry::connect(&config).await?;
    let collection = registry.collection().clone();
    collection.delete_many(doc! {}).await?;
    let started = Instant::now();
    let batch = 1_000;
    let mut next = 0;
    while next < plan.fleet {
        let end = (next + batch).min(plan.fleet);
        collection
            .insert_many((next..end).map(data::document))
            .ordered(false)
            .await?;
        next = end;
    }
    let load_secs = started.elapsed().as_secs_f64();
    // The registry reads the synthetic documents back as records.
    framedb_core::InstanceRegistry::get(&registry, &data::record(1).framedb_id)
        .await
        .context("the registry cannot read the synthetic documents")?;
    report.note(format!(
        "MongoDB: {} synthetic instances loaded with insert_many in batches of {batch} in \
         {load_secs:.1} s",
        plan.fleet
    ));

    let server = ServerProcess::start(&[
        "--mongo-uri".into(),
        uri.into(),
        "--mongo-database".into(),
        database.into(),
    ])
    .await?;
    let (requests, _) = create_read_instances(&server).await?;
    let framedb_run = load::closed_loop(
        server.addr,
        requests,
        200,
        plan.connections,
        plan.warmup,
        plan.duration,
    )
    .await?;
    let raw_run = raw_find_one(plan, &collection).await?;
    read_row(report, "driver find_one (MongoDB ceiling)", &raw_run);
    read_row(report, "FrameDB, MongoDB registry, two tiers", &framedb_run);
    report.target(
        "read, MongoDB: requests/s ≥ 0.8 × driver",
        framedb_run.rate() / raw_run.rate(),
        0.8,
        true,
        "FrameDB req/s ÷ find_one req/s",
    );

    let shapes = [
        (
            "indexed {cluster_id, node_id}",
            json!({"cluster_id": "cluster-01", "node_id": "node-02"}),
            doc! {"cluster_id": "cluster-01", "node_id": "node-02"},
        ),
        (
            "not indexed {metadata.team}",
            json!({"metadata.team": "team-07"}),
            doc! {"metadata.team": "team-07"},
        ),
    ];
    for (name, filter, raw_filter) in shapes {
        let request = Request::post_json(&format!("{BASE}/query?limit=100"), &filter.to_string());
        let mut link = Connection::open(server.addr).await?;
        let mut framedb = Latencies::default();
        let mut raw = Latencies::default();
        let deadline = Instant::now() + plan.query_budget;
        // One of each in turn, after one unrecorded of each, so that noise hits both.
        for round in 0..=plan.queries {
            if Instant::now() > deadline {
                break;
            }
            let sent = Instant::now();
            let status = link.send(&request).await?;
            let took = sent.elapsed();
            ensure!(status == 200, "the query answered {status}");
            let count = serde_json::from_slice::<serde_json::Value>(&link.body)?["data"]
                .as_array()
                .map_or(0, Vec::len);
            ensure!(count == 100, "the query found {count} instances, not 100");
            let sent = Instant::now();
            let found = raw_find(&collection, raw_filter.clone()).await?;
            let raw_took = sent.elapsed();
            ensure!(found == 100, "find found {found} documents, not 100");
            if round > 0 {
                framedb.push(took);
                raw.push(raw_took);
            }
        }
        report.row(
            "query",
            format!("driver find {name}, limit 100"),
            vec![
                ("p50", raw.p50(), "ms"),
                ("p99", raw.p99(), "ms"),
                ("n", raw.len() as f64, ""),
            ],
        );
        report.row(
            "query",
            format!("FrameDB /query {name}, limit 100"),
            vec![
                ("p50", framedb.p50(), "ms"),
                ("p99", framedb.p99(), "ms"),
                ("n", framedb.len() as f64, ""),
            ],
        );
        report.target(
            format!("query {name}: latency ≤ 1.25 × driver"),
            framedb.p50() / raw.p50(),
            1.25,
            false,
            "FrameDB p50 ÷ find p50 (sequential)",
        );
    }
    server.stop().await;
    Ok(())
}

/// The driver's `find` as the registry issues it (same sort, limit and projection);
/// returns how many documents it read.
async fn raw_find(collection: &mongodb::Collection<Document>, filter: Document) -> Result<usize> {
    let mut cursor = collection
        .find(filter)
        .sort(doc! {"framedb_id": 1})
        .limit(100)
        .projection(doc! {"_id": 0})
        .await?;
    let mut found = 0;
    while cursor.advance().await? {
        let _document: Document = cursor.deserialize_current()?;
        found += 1;
    }
    Ok(found)
}

/// `find_one` by id at the read scenario's concurrency, on the same collection.
async fn raw_find_one(
    plan: &Plan,
    collection: &mongodb::Collection<Document>,
) -> Result<load::Run> {
    let start = Instant::now() + plan.warmup;
    let end = start + plan.duration;
    let mut tasks = Vec::new();
    for task in 0..plan.connections {
        let collection = collection.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Latencies::default();
            let mut errors = 0_u64;
            let mut next = task;
            loop {
                let id = format!("bench-read-{}", 1 + next % READ_IDS);
                next += 1;
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let found = collection
                    .find_one(doc! {"framedb_id": id})
                    .projection(doc! {"_id": 0})
                    .await;
                if sent < start {
                    continue;
                }
                match found {
                    Ok(Some(_)) => latencies.push(sent.elapsed()),
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    load::gather(tasks, plan.duration).await
}

/// Sums the request counts of every simulated cluster.
fn requests_of(clusters: &[(ClusterId, Simulator)]) -> Vec<RequestStats> {
    clusters.iter().map(|(_, sim)| sim.requests()).collect()
}

/// Requests between two snapshots: (total, list Services, patch Services).
fn delta(before: &[RequestStats], after: &[RequestStats]) -> (u64, u64, u64) {
    before.iter().zip(after).fold((0, 0, 0), |acc, (b, a)| {
        let d = a.since(b);
        (
            acc.0 + d.total(),
            acc.1 + d.count(Verb::List, Some("services")),
            acc.2 + d.count(Verb::Patch, Some("services")),
        )
    })
}

/// Create (3): creates over HTTP on simulated clusters whose API answers after 5 ms.
///
/// # Errors
/// When the stack cannot start or a create fails.
pub async fn create(plan: &Plan, report: &mut Report) -> Result<()> {
    const CLUSTERS: usize = 4;
    let latency = Duration::from_millis(5);
    let stack = topology::build(
        Shape::TwoTier,
        Arc::new(InMemoryRegistry::new()),
        CLUSTERS,
        latency,
    )
    .await?;
    let addr = stack.address;
    let body = |name: String, n: usize| {
        data::create_body(&name, &format!("cluster-{:02}", 1 + n % CLUSTERS), n)
    };
    // The first create on a cluster also creates the namespace; the common case follows.
    for n in 0..CLUSTERS {
        let request = Request::post_json(BASE, &body(format!("warm-{n}"), n));
        let (status, _) = load::once(addr, &request).await?;
        ensure!(status == 201, "a warm-up create answered {status}");
    }
    // One at a time: the sequential chain without contention.
    let sequential = 8;
    let before = requests_of(&stack.clusters);
    let mut alone = Latencies::default();
    let mut link = Connection::open(addr).await?;
    for n in 0..sequential {
        let request = Request::post_json(BASE, &body(format!("alone-{n}"), n));
        let sent = Instant::now();
        let status = link.send(&request).await?;
        alone.push(sent.elapsed());
        ensure!(status == 201, "a create answered {status}");
    }
    let (alone_requests, _, _) = delta(&before, &requests_of(&stack.clusters));

    let before = requests_of(&stack.clusters);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..plan.create_concurrency {
        let next = next.clone();
        let total = plan.creates;
        let mut link = Connection::open(addr).await?;
        let requests: Vec<Request> = (0..total)
            .map(|n| Request::post_json(BASE, &body(format!("bench-create-{n}"), n)))
            .collect();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Latencies::default();
            let mut failed = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let sent = Instant::now();
                match link.send(&requests[n]).await {
                    Ok(201) => latencies.push(sent.elapsed()),
                    Ok(status) => {
                        failed.push(format!("{status} {}", String::from_utf8_lossy(&link.body)))
                    }
                    Err(error) => failed.push(error.to_string()),
                }
            }
            (latencies, failed)
        }));
    }
    let mut latencies = Latencies::default();
    let mut failed = Vec::new();
    for task in tasks {
        let (more, errors) = task.await?;
        latencies.extend(more);
        failed.extend(errors);
    }
    let elapsed = started.elapsed();
    let (total, lists, patches) = delta(&before, &requests_of(&stack.clusters));
    if let Some(first) = failed.first() {
        report.note(format!(
            "create: {} creates failed, e.g. {first}",
            failed.len()
        ));
    }
    let creates = plan.creates as f64;
    // Unavoidable round-trips in sequence: create the Service (the port's reservation;
    // the free ports come from the watch-kept view of the cluster's node ports), then the
    // rest, which does not depend on each other and goes out together.
    let floor_trips = 2.0;
    let floor_ms = floor_trips * latency.as_secs_f64() * 1000.0;
    report.row(
        "create",
        format!("one at a time ({sequential} creates, {CLUSTERS} clusters, API latency 5 ms)"),
        vec![
            ("p50", alone.p50(), "ms"),
            ("max", alone.quantile_ms(1.0), "ms"),
            (
                "kube requests/create",
                alone_requests as f64 / sequential as f64,
                "",
            ),
        ],
    );
    report.row(
        "create",
        format!(
            "{} creates at concurrency {} ({CLUSTERS} clusters, API latency 5 ms)",
            plan.creates, plan.create_concurrency
        ),
        vec![
            (
                "rate",
                latencies.len() as f64 / elapsed.as_secs_f64(),
                "creates/s",
            ),
            ("p50", latencies.p50(), "ms"),
            ("p99", latencies.p99(), "ms"),
            ("kube requests/create", total as f64 / creates, ""),
            ("Service lists/create", lists as f64 / creates, ""),
            ("Service applies/create", patches as f64 / creates, ""),
            ("floor", floor_ms, "ms"),
            ("failed", failed.len() as f64, ""),
        ],
    );
    report.target(
        // The Service, then in one round trip the ConfigMap, Secret, NetworkPolicy, claim
        // and StatefulSet (and the Services' list while the view of the node ports is not
        // in step).
        "create: ≤ 7 Kubernetes requests per create",
        total as f64 / creates,
        7.0,
        false,
        "API requests ÷ creates, at concurrency 16",
    );
    report.target(
        "create: p99 ≤ 1.5 × floor",
        latencies.p99() / floor_ms,
        1.5,
        false,
        "p99 ÷ (2 sequential round-trips × 5 ms)",
    );
    if !failed.is_empty() {
        bail!("{} creates failed", failed.len());
    }
    Ok(())
}

/// Port allocation (4): a create through `KubeFleet` as the local service makes it (the
/// lowest free port from `free_ports`, then `deploy` on it) on a cluster holding many
/// foreign Services, against the same on an empty cluster; and the allocation on a
/// cluster whose instance ports are all taken, against one read of its Services.
///
/// # Errors
/// When the simulator cannot start or refuses the Services, or a create fails.
pub async fn ports(plan: &Plan, report: &mut Report) -> Result<()> {
    let cluster = ClusterId::new("ports").expect("a cluster id");
    let list = Request::get("/api/v1/services");
    let mut creates = Vec::new();
    let mut last_cluster = None;
    for &count in &plan.service_counts {
        // A cluster of its own for each size, so that each measures the same number of
        // instances (the simulator's scheduler looks at every pending pod on each write).
        let sim =
            Simulator::start(SimConfig::new("ports").with_images(framedb_k8s::default_images()))
                .await?;
        let client = sim.client().await;
        let fleet = KubeFleet::new(Layout::default()).with_cluster(cluster.clone(), client.clone());
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some("foreign".into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await?;
        let services: Api<Service> = Api::namespaced(client.clone(), "foreign");
        fill(&services, 0..count, foreign_service).await?;
        // The first create also makes the instances' namespace.
        create_on_lowest(&fleet, &cluster, "ports-warm").await?;
        in_step(&sim, &fleet, &cluster, &services).await?;
        let addr: std::net::SocketAddr = sim.url().trim_start_matches("http://").parse()?;
        let (status, body) = load::once(addr, &list).await?;
        ensure!(status == 200, "listing Services answered {status}");
        let read = services_read(&client, plan.allocations).await?;
        let before = sim.requests();
        let mut latencies = Latencies::default();
        for i in 0..plan.allocations {
            let sent = Instant::now();
            create_on_lowest(&fleet, &cluster, &format!("ports-{i}")).await?;
            latencies.push(sent.elapsed());
        }
        let lists = sim
            .requests()
            .since(&before)
            .count(Verb::List, Some("services"));
        creates.push(latencies.p50());
        report.row(
            "ports",
            format!("{count} foreign Services"),
            vec![
                ("create p50", latencies.p50(), "ms"),
                (
                    "Service lists/create",
                    lists as f64 / plan.allocations as f64,
                    "",
                ),
                ("one read of the Services p50", read, "ms"),
                ("bytes of that read", body.len() as f64, "B"),
            ],
        );
        if let Some((sim, ..)) = last_cluster.replace((sim, client, fleet, services)) {
            sim.shutdown().await;
        }
    }
    let (sim, client, fleet, services) = last_cluster.expect("a cluster per size");
    let last = *plan.service_counts.last().expect("Service counts");
    report.target(
        format!("ports: a create on {last} foreign Services ≤ 1.2 × on none"),
        creates[creates.len() - 1] / creates[0],
        1.2,
        false,
        format!("create p50 with {last} foreign Services ÷ create p50 on an empty cluster"),
    );

    // Every instance port taken (by foreign NodePort Services where no instance is): the
    // next create finds none left.
    let free = fleet.free_ports(&cluster, &[]).await?;
    fill(&services, 0..free.len(), |n| foreign_node_port(n, free[n])).await?;
    let exhausted = || async {
        let sent = Instant::now();
        match fleet.lowest_free(&cluster, &[]).await {
            Err(framedb_core::Error::PortsExhausted(_)) => Ok(sent.elapsed()),
            other => bail!("a full cluster answered {other:?}"),
        }
    };
    // In step once an allocation finds the range full and costs no request.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let before = sim.requests();
        let full = exhausted().await.is_ok();
        if full && sim.requests().since(&before).total() == 0 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the full cluster's view never came in step"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = sim.requests();
    let mut latencies = Latencies::default();
    for _ in 0..plan.allocations {
        latencies.push(exhausted().await?);
    }
    let requests = sim.requests().since(&before).total();
    let read = services_read(&client, plan.allocations).await?;
    report.row(
        "ports",
        format!("{last} foreign Services, every instance port taken"),
        vec![
            ("ports_exhausted p50", latencies.p50() * 1000.0, "µs"),
            (
                "kube requests",
                requests as f64 / plan.allocations as f64,
                "",
            ),
            ("one read of the Services p50", read, "ms"),
        ],
    );
    report.target(
        "ports: the 101st create's ports_exhausted ≤ 2 × one read of the Services",
        latencies.p50() / read,
        2.0,
        false,
        "ports_exhausted p50 ÷ p50 of one paged read of the cluster's Services",
    );
    sim.shutdown().await;
    Ok(())
}

/// Creates the Services `make` makes of each of `range`, 16 at a time.
async fn fill(
    services: &Api<Service>,
    range: std::ops::Range<usize>,
    make: impl Fn(usize) -> Service,
) -> Result<()> {
    let made: Vec<Service> = range.map(make).collect();
    let next = Arc::new(AtomicUsize::new(0));
    let made = Arc::new(made);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (next, made, services) = (next.clone(), made.clone(), services.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some(service) = made.get(n) else {
                    return Ok::<_, kube::Error>(());
                };
                services.create(&PostParams::default(), service).await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Waits (at most a minute) until the fleet's view of the node ports is in step and has
/// taken in every change made so far: a Service made now on the range's last port, then
/// deleted, is seen to come and go by allocations that cost no request.
async fn in_step(
    sim: &Simulator,
    fleet: &KubeFleet,
    cluster: &ClusterId,
    services: &Api<Service>,
) -> Result<()> {
    let last = *PORT_RANGE.end();
    let sentinel = foreign_node_port(999, last);
    let name = sentinel.metadata.name.clone().unwrap_or_default();
    services.create(&PostParams::default(), &sentinel).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    for wanted in [false, true] {
        loop {
            let before = sim.requests();
            let free = fleet.free_ports(cluster, &[]).await?.contains(&last);
            if free == wanted && sim.requests().since(&before).total() == 0 {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "the node port view never came in step"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if !wanted {
            services.delete(&name, &Default::default()).await?;
        }
    }
    Ok(())
}

/// A create as the local service makes it: the lowest free port, then the deploy on it.
async fn create_on_lowest(fleet: &KubeFleet, cluster: &ClusterId, id: &str) -> Result<()> {
    let port = fleet.lowest_free(cluster, &[]).await?;
    let spec = DeploymentSpec {
        framedb_id: FramedbId::new(id)?,
        cluster_id: cluster.clone(),
        node_id: NodeId::new("node-a")?,
        storage_size: StorageSize::new("1Gi")?,
        port,
        stamp: Stamp::generate()?,
        deletion_policy: DeletionPolicy::Delete,
        created_at: Timestamp::now(),
        metadata: Default::default(),
        resources: None,
    };
    fleet.deploy(&spec).await?;
    Ok(())
}

/// The median time of `times` reads of every Service of the cluster, as the allocator
/// read them before it kept a view (pages of 500).
async fn services_read(client: &kube::Client, times: usize) -> Result<f64> {
    let all = Api::<Service>::all(client.clone());
    let mut latencies = Latencies::default();
    for _ in 0..times {
        let sent = Instant::now();
        let mut params = ListParams::default().limit(500);
        loop {
            let page = all.list(&params).await?;
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => params = params.continue_token(&token),
                _ => break,
            }
        }
        latencies.push(sent.elapsed());
    }
    Ok(latencies.p50())
}

/// A NodePort Service of another tenant on `port`.
fn foreign_node_port(n: usize, port: u16) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": format!("np-{n:03}")},
        "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": port}]}
    }))
    .expect("a Service")
}

/// A ClusterIP Service as other tenants of a cluster have.
fn foreign_service(n: usize) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": format!("svc-{n:05}"), "labels": {"app": format!("app-{n}")}},
        "spec": {"type": "ClusterIP", "selector": {"app": format!("app-{n}")},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    }))
    .expect("a Service")
}
