//! The fleet scenario: how FrameDB's global service's costs grow with its clusters and
//! instances, up to 200 clusters of 2 nodes holding 100 instances each (every node port
//! of 30900-30999: 20,000 instances; `--quick`: 20 clusters, 2,000 instances).
//!
//! Three processes besides the benchmark, so that the global's own costs are what is
//! measured:
//!
//! - the clusters: `framedb-server simulate`, every API request served after
//!   [`LATENCY`], as a cluster off this machine would;
//! - their local config services: `framedb-bench locals`, one service per cluster built
//!   by `App::local` as `framedb-server local` builds it, all in one process;
//! - the global service: `framedb-server global` on MongoDB, restarted at each stage.
//!
//! The fleet grows in stages (10, 50, 200 clusters; quick: 4, 10, 20). At each stage the
//! new clusters are filled, the global is restarted and timed until every cluster's
//! status book is whole (read from `framedb_instances` of `/metrics`, which shows a
//! cluster only once its book is in step), and its resident memory read. At the last
//! stage, also: throughput over few clusters vs over all of them, reads across the
//! fleet vs the registry alone, a create on a full cluster, and a reconcile pass.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use framedb_core::{
    ClusterDeployer, ClusterId, DeletionPolicy, DeploymentSpec, Filter, FramedbId, InstanceRecord,
    InstanceRegistry, Metadata, NodeId, PortAllocator, Query, QueryOptions, Stamp, StorageSize,
    Timestamp,
};
use framedb_http::remote::directory::service_url;
use framedb_http::remote::{ClusterDirectory, RemoteClusters, RemoteTimeouts};
use framedb_http::settings::{LocalSettings, ServeSettings};
use framedb_http::{Adapters, App};
use framedb_mongo::{MongoConfig, MongoRegistry};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::data::create_body;
use crate::load::{self, Connection, Request};
use crate::report::Report;
use crate::stats::{Latencies, resident_kib};

const BASE: &str = "/global/framedb/persistent-instances";
/// What each of a cluster's 2 nodes has for pods: a small instance's pod requests 1.25
/// CPUs and 3.5Gi, so 50 instances a node (100 a cluster, one per node port) need large
/// nodes; on a kubelet's default (8 CPUs, 32Gi) all but 12 would stay Pending.
const NODE_CAPACITY: &str = "cpu=64,memory=256Gi";

/// The round-trip of every request to a simulated cluster.
const LATENCY: Duration = Duration::from_millis(5);
/// Instances per cluster: every port of 30900-30999.
const PER_CLUSTER: usize = 100;
/// Concurrency of the measured creates.
const CONCURRENCY: usize = 16;
/// Concurrency of the fill, which is not measured.
const FILL_CONCURRENCY: usize = 16;
/// Times the fill deploys an instance before it gives up.
const FILL_ATTEMPTS: usize = 3;
/// Creates of each throughput round.
const ROUND: usize = 200;
/// Creates one at a time, each on another cluster.
const SEQUENTIAL: usize = 20;
/// The most a stage's restarted global may take to be in step.
const IN_STEP_LIMIT: Duration = Duration::from_secs(300);

/// The sizes of a fleet run.
#[derive(Debug, Clone)]
pub struct FleetPlan {
    /// Clusters at each stage; the last is the whole fleet.
    pub stages: Vec<usize>,
    /// Seconds between the global's reconcile passes.
    pub reconcile_secs: u64,
    /// Sequential repetitions of each read.
    pub reads: usize,
}

impl FleetPlan {
    /// The plan of `--quick` or of the full run.
    pub fn new(quick: bool) -> Self {
        if quick {
            Self {
                stages: vec![4, 10, 20],
                reconcile_secs: 10,
                reads: 10,
            }
        } else {
            Self {
                stages: vec![10, 50, 200],
                reconcile_secs: 30,
                reads: 30,
            }
        }
    }
}

/// `fleet-0001`, `fleet-0002`, ... (`count` of them).
fn cluster_names(count: usize) -> Vec<String> {
    (1..=count).map(|n| format!("fleet-{n:04}")).collect()
}

/// Runs the fleet scenario on the MongoDB at `uri` (its database `database` is emptied
/// first).
///
/// # Errors
/// When a process cannot start, or a create or read fails.
pub async fn fleet(plan: &FleetPlan, report: &mut Report, uri: &str, database: &str) -> Result<()> {
    let started = Instant::now();
    let step = |what: &str| {
        eprintln!(
            "        fleet [{:>5.1} s] {what}",
            started.elapsed().as_secs_f64()
        );
    };
    let all = *plan.stages.last().context("no stage")?;
    let names = cluster_names(all);
    let dir = StateDir::new()?;
    mongodb::Client::with_uri_str(uri)
        .await?
        .database(database)
        .drop()
        .await?;
    let registry = MongoRegistry::connect(&MongoConfig::new(uri).database(database)).await?;

    step(&format!(
        "starting {all} simulated clusters and their local services"
    ));
    let sims = Simulate::start(&names, dir.path()).await?;
    let locals = Locals::start(&names, dir.path()).await?;
    let remote = remote_clusters(&locals.urls)?;
    // Memory is read of globals at rest: no reconcile pass, no request but `/metrics`.
    // What grows is the heap the global's allocator holds (`framedb_heap_bytes`, exact):
    // its resident set moves by a few MiB with the pages of its binary that the code it
    // happened to run touched and the freed pages its allocator keeps, more than 1,000
    // instances take (measured: ±2 MiB between starts at 10 clusters). The baseline is a
    // global of one empty cluster (with none named, it would run the embedded default).
    let global = Global::start(uri, database, &locals.urls[..1], 0).await?;
    global.wait_in_step(1, 0).await?;
    let (empty_rss, _) = resident_kib(global.pid());
    let empty_heap = global.heap_bytes().await?;
    global.stop().await;

    let mut filled = 0;
    let mut per_instance = Vec::new();
    let mut in_step = Vec::new();
    for (stage, &clusters) in plan.stages.iter().enumerate() {
        let last = stage + 1 == plan.stages.len();
        let fleet = &locals.urls[..clusters];
        let new = &names[filled..clusters];
        if last {
            let global = Global::start(uri, database, fleet, plan.reconcile_secs).await?;
            let processes = [
                ("global", global.pid()),
                ("local services", locals.pid()),
                ("simulators", sims.pid()),
            ];
            throughput(
                &global,
                &registry,
                &processes,
                &names[..clusters],
                new,
                report,
            )
            .await?;
            let metrics = std::env::temp_dir().join("framedb-fleet-global-metrics.txt");
            global.save_metrics(&metrics).await?;
            step(&format!(
                "the global's /metrics after the rounds: {}",
                metrics.display()
            ));
            global.stop().await;
        }
        // Earlier stages leave ports of each cluster free for the last one's rounds.
        let target = if last {
            PER_CLUSTER
        } else {
            PER_CLUSTER - spread_per_cluster(all) - 1
        };
        step(&format!(
            "{clusters} clusters: filling {} new ones",
            new.len()
        ));
        fill(&remote, &registry, &names[..clusters], target).await?;
        filled = clusters;

        let instances = count_records(&registry).await?;
        // A first global waits until the local services' books hold the new instances,
        // so that the restart below times the global alone.
        let settling = Global::start(uri, database, fleet, 0).await?;
        settling.wait_in_step(clusters, instances).await?;
        settling.stop().await;
        let restarted = Instant::now();
        let global = Global::start(uri, database, fleet, 0).await?;
        global.wait_in_step(clusters, instances).await?;
        let took = restarted.elapsed();
        step(&format!(
            "{clusters} clusters: restarted global in step in {took:.1?}"
        ));
        let (rss, _) = resident_kib(global.pid());
        let heap = global.heap_bytes().await?;
        global.stop().await;
        let grown = heap.saturating_sub(empty_heap) as f64;
        let bytes_per_instance = grown / instances as f64;
        per_instance.push(bytes_per_instance);
        in_step.push((clusters, took.as_secs_f64()));
        report.row(
            "fleet",
            format!("{clusters} clusters, {instances} instances: restarted global"),
            vec![
                ("in step", took.as_secs_f64() * 1000.0, "ms"),
                ("heap", heap as f64 / 1048576.0, "MiB"),
                ("baseline heap", empty_heap as f64 / 1048576.0, "MiB"),
                ("RSS", rss as f64 / 1024.0, "MiB"),
                ("baseline RSS", empty_rss as f64 / 1024.0, "MiB"),
                ("per instance", bytes_per_instance, "B"),
                ("per cluster", grown / clusters as f64 / 1024.0, "KiB"),
            ],
        );
        if last {
            let mut global = Global::start(uri, database, fleet, plan.reconcile_secs).await?;
            global.wait_in_step(clusters, instances).await?;
            step("reads across the fleet");
            reads(&global, &registry, &names[..clusters], plan.reads, report).await?;
            step("a create on a full cluster");
            full_cluster(&global, dir.path(), &names[0], plan.reads, report).await?;
            step("a reconcile pass at steady state");
            let others = [("local services", locals.pid()), ("simulators", sims.pid())];
            reconcile(&mut global, clusters, &others, report).await?;
            global.stop().await;
        }
    }
    if let (Some(first), Some(last)) = (per_instance.first(), per_instance.last()) {
        report.target(
            format!(
                "fleet: memory per instance at {} clusters ≤ 1.1 × at {}",
                plan.stages.last().unwrap_or(&0),
                plan.stages.first().unwrap_or(&0)
            ),
            last / first,
            1.1,
            false,
            "(heap − heap of a global of one empty cluster) ÷ instances of the restarted global, last stage ÷ first",
        );
    }
    if let (Some((c1, t1)), Some((c2, t2))) = (in_step.first(), in_step.last()) {
        report.target(
            format!("fleet: time to be in step at {c2} clusters ≤ linear from {c1}"),
            (t2 / t1) / (*c2 as f64 / *c1 as f64),
            1.0,
            false,
            "(in-step time ratio) ÷ (cluster ratio); 1 = linear",
        );
    }
    drop(sims);
    locals.stop().await;
    report.note(format!(
        "fleet: {all} clusters of 2 nodes in `framedb-server simulate` (API latency {} ms), \
         a local service per cluster in one process, the global on MongoDB; took {:.0} s",
        LATENCY.as_millis(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// The records the registry holds with a port (a create that died before recording its
/// port runs nowhere, and no status book shows it).
async fn count_records(registry: &MongoRegistry) -> Result<usize> {
    let records = registry
        .collection()
        .count_documents(mongodb::bson::doc! {"port": {"$ne": null}})
        .await?;
    Ok(usize::try_from(records)?)
}

/// One sequential registry write's round-trip as the registry is now: the median of 20
/// inserts and deletes of a scratch document in the registry's own collection, with its
/// indexes and records (a write's cost may grow with them).
async fn registry_trip_ms(registry: &MongoRegistry) -> Result<f64> {
    let records = registry.collection();
    let mut trips = Latencies::default();
    for n in 0..20 {
        let scratch = mongodb::bson::doc! {"framedb_id": format!("bench-scratch-{n}")};
        let sent = Instant::now();
        records.insert_one(scratch.clone()).await?;
        trips.push(sent.elapsed());
        let sent = Instant::now();
        records.delete_one(scratch).await?;
        trips.push(sent.elapsed());
    }
    Ok(trips.p50())
}

/// Creates on each cluster in the round over every cluster: [`ROUND`] in all, at least
/// one each.
fn spread_per_cluster(clusters: usize) -> usize {
    ROUND.div_ceil(clusters).max(1)
}

/// What a batch of creates measured.
struct Batch {
    latencies: Latencies,
    failed: Vec<String>,
    elapsed: Duration,
}

impl Batch {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Sends `bodies` as creates over `concurrency` connections.
async fn create_all(addr: SocketAddr, bodies: Vec<String>, concurrency: usize) -> Result<Batch> {
    let requests: Arc<Vec<Request>> = Arc::new(
        bodies
            .iter()
            .map(|body| Request::post_json(BASE, body))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.min(requests.len()) {
        let (next, requests) = (next.clone(), requests.clone());
        let mut link = Connection::open(addr).await?;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Latencies::default();
            let mut failed = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some(request) = requests.get(n) else {
                    break;
                };
                let sent = Instant::now();
                match link.send(request).await {
                    Ok(201) => latencies.push(sent.elapsed()),
                    Ok(status) => {
                        failed.push(format!("{status} {}", String::from_utf8_lossy(&link.body)));
                    }
                    Err(error) => {
                        failed.push(error.to_string());
                        match Connection::open(addr).await {
                            Ok(fresh) => link = fresh,
                            Err(_) => break,
                        }
                    }
                }
            }
            (latencies, failed)
        }));
    }
    let mut batch = Batch {
        latencies: Latencies::default(),
        failed: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let (latencies, failed) = task.await?;
        batch.latencies.extend(latencies);
        batch.failed.extend(failed);
    }
    batch.elapsed = started.elapsed();
    Ok(batch)
}

/// Fills every cluster of `clusters` up to `target` instances, as the global's creates
/// would leave them, without the global: its two registry writes per create are what a
/// Python stand-in for MongoDB (SecantusDB, one core) spends most of a fill on, and the
/// fill is set-up, not a measure. Each instance is deployed through the global's own
/// client of the local services ([`RemoteClusters`]) on a port its local service offers,
/// with a stamp and a registration time of its own, and its record (what the global
/// records once a deploy is done: `Provisioning` with its port) goes into the registry in
/// bulk afterwards. Records and objects then agree as after the global's creates, so a
/// reconcile pass has nothing to repair.
async fn fill(
    remote: &Arc<RemoteClusters>,
    registry: &MongoRegistry,
    clusters: &[String],
    target: usize,
) -> Result<()> {
    let mut specs = Vec::new();
    for name in clusters {
        let cluster = ClusterId::new(name.as_str())?;
        let held = registry
            .find(&Query::with_filter(Filter::cluster(&cluster)))
            .await?
            .len();
        if held >= target {
            continue;
        }
        let free = remote.free_ports(&cluster, &[]).await?;
        for (n, port) in (held..target).zip(free) {
            specs.push(DeploymentSpec {
                framedb_id: FramedbId::new(format!("{name}-i{n:03}"))?,
                cluster_id: cluster.clone(),
                node_id: NodeId::new(if n.is_multiple_of(2) {
                    "node-a"
                } else {
                    "node-b"
                })?,
                storage_size: StorageSize::new("1Gi")?,
                port,
                stamp: Stamp::generate()?,
                deletion_policy: DeletionPolicy::default(),
                resources: None,
                created_at: Timestamp::now(),
                metadata: Metadata::default(),
            });
        }
    }
    // Interleaved, so that every cluster's deploys run at once.
    specs.sort_by_key(|spec| (spec.port, spec.cluster_id.to_string()));
    // A deploy that timed out (a simulator falling behind) is repeated: a repeated deploy
    // of the same stamp completes the same deployment.
    let mut pending = specs.clone();
    for attempt in 1..=FILL_ATTEMPTS {
        let failed = deploy_all(remote, pending).await?;
        if failed.is_empty() {
            break;
        }
        ensure!(
            attempt < FILL_ATTEMPTS,
            "{} deploys of the fill failed {FILL_ATTEMPTS} times, e.g. {}",
            failed.len(),
            failed[0].1
        );
        pending = failed.into_iter().map(|(spec, _)| spec).collect();
    }
    let records: Vec<InstanceRecord> = specs.iter().map(DeploymentSpec::record).collect();
    for chunk in records.chunks(1000) {
        registry.insert_all(chunk).await?;
    }
    Ok(())
}

/// Deploys `specs` at [`FILL_CONCURRENCY`]; returns those that failed, with why.
async fn deploy_all(
    remote: &Arc<RemoteClusters>,
    specs: Vec<DeploymentSpec>,
) -> Result<Vec<(DeploymentSpec, String)>> {
    let specs = Arc::new(specs);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..FILL_CONCURRENCY {
        let (specs, next, remote) = (specs.clone(), next.clone(), remote.clone());
        tasks.push(tokio::spawn(async move {
            let mut failed = Vec::new();
            while let Some(spec) = specs.get(next.fetch_add(1, Ordering::Relaxed)) {
                if let Err(error) = remote.deploy(spec).await {
                    failed.push((spec.clone(), format!("{}: {error}", spec.framedb_id)));
                }
            }
            failed
        }));
    }
    let mut failed = Vec::new();
    for task in tasks {
        failed.extend(task.await?);
    }
    Ok(failed)
}

/// The global's client of the local services `fleet` (`cluster=url`), as
/// `framedb-server global --local-service` builds it.
fn remote_clusters(fleet: &[String]) -> Result<Arc<RemoteClusters>> {
    let directory = Arc::new(ClusterDirectory::new());
    for entry in fleet {
        let (cluster, url) = entry.split_once('=').context("not cluster=url")?;
        directory.insert(
            ClusterId::new(cluster)?,
            service_url(url).map_err(anyhow::Error::msg)?,
            None,
        );
    }
    Ok(Arc::new(RemoteClusters::new(
        directory,
        RemoteTimeouts::default(),
        &[],
    )?))
}

/// Throughput at concurrency 16 over 4 clusters vs over every cluster, before the new
/// clusters of the last stage are filled: their first create each (which also makes the
/// namespace) goes first; then a round on 4 of them, and a round of one create on each
/// cluster (the earlier stages left a port free on theirs).
async fn throughput(
    global: &Global,
    registry: &MongoRegistry,
    processes: &[(&'static str, u32)],
    all: &[String],
    new: &[String],
    report: &mut Report,
) -> Result<()> {
    ensure!(new.len() >= 4, "the last stage adds fewer than 4 clusters");
    let warm: Vec<String> = new
        .iter()
        .map(|cluster| create_body(&format!("{cluster}-warm"), cluster, 0))
        .collect();
    let warmed = create_all(global.addr, warm, CONCURRENCY).await?;
    ensure!(
        warmed.failed.is_empty(),
        "warm-up creates failed: {:?}",
        warmed.failed.first()
    );
    let per = ROUND / 4;
    let few: Vec<String> = (0..per)
        .flat_map(|n| {
            new[..4]
                .iter()
                .map(move |cluster| create_body(&format!("{cluster}-few{n:03}"), cluster, n))
        })
        .collect();
    // One at a time first: the chain of round-trips without contention.
    let alone: Vec<String> = all
        .iter()
        .take(SEQUENTIAL)
        .map(|cluster| create_body(&format!("{cluster}-alone"), cluster, 0))
        .collect();
    let alone = create_all(global.addr, alone, 1).await?;
    let cpu0 = cpu_of(processes)?;
    let few = create_all(global.addr, few, CONCURRENCY).await?;
    let cpu1 = cpu_of(processes)?;
    let spread: Vec<String> = (0..spread_per_cluster(all.len()))
        .flat_map(|n| {
            all.iter()
                .map(move |cluster| create_body(&format!("{cluster}-spread{n:03}"), cluster, n))
        })
        .collect();
    let spread = create_all(global.addr, spread, CONCURRENCY).await?;
    let cpu2 = cpu_of(processes)?;
    for (round, batch) in [("alone", &alone), ("few", &few), ("spread", &spread)] {
        if let Some(first) = batch.failed.first() {
            bail!(
                "{} creates of the {round} round failed, e.g. {first}",
                batch.failed.len()
            );
        }
    }
    // A create's sequential round-trips to its cluster: the Service (the port's
    // reservation), then the rest at once; and to the registry: the record, then its
    // port.
    let floor = 2.0 * LATENCY.as_secs_f64() * 1000.0 + 2.0 * registry_trip_ms(registry).await?;
    report.row(
        "fleet",
        format!(
            "{} creates one at a time, each on another cluster",
            alone.latencies.len()
        ),
        vec![
            ("p50", alone.latencies.p50(), "ms"),
            ("max", alone.latencies.quantile_ms(1.0), "ms"),
            ("floor", floor, "ms"),
        ],
    );
    for (case, batch, clusters, before, after) in [
        ("4 clusters", &few, 4, &cpu0, &cpu1),
        ("every cluster", &spread, all.len(), &cpu1, &cpu2),
    ] {
        let n = batch.latencies.len() as f64;
        let mut figures = vec![
            ("rate", batch.rate(), "creates/s"),
            ("p50", batch.latencies.p50(), "ms"),
            ("p99", batch.latencies.p99(), "ms"),
            ("floor", floor, "ms"),
        ];
        // Where the CPU went, per create: on 2 cores, what the clusters' side takes is
        // what FrameDB's creates wait for.
        for ((name, _), (b, a)) in processes.iter().zip(before.iter().zip(after.iter())) {
            figures.push((*name, (a - b) * 1000.0 / n, "ms CPU/create"));
        }
        report.row(
            "fleet",
            format!(
                "{} creates at concurrency {CONCURRENCY} over {case} ({clusters})",
                batch.latencies.len()
            ),
            figures,
        );
    }
    report.target(
        format!(
            "fleet: create throughput over {} clusters ≥ 0.8 × over 4",
            all.len()
        ),
        spread.rate() / few.rate(),
        0.8,
        true,
        "creates/s over every cluster ÷ creates/s over 4, both at concurrency 16",
    );
    report.target(
        "fleet: create p99 ≤ 1.5 × floor",
        spread.latencies.p99() / floor,
        1.5,
        false,
        "p99 over every cluster ÷ (2 cluster round-trips × 5 ms + 2 registry round-trips)",
    );
    Ok(())
}

/// A cluster's instances and a query of 1,000 across the fleet, with live status,
/// against the same registry reads without status.
async fn reads(
    global: &Global,
    registry: &MongoRegistry,
    clusters: &[String],
    reps: usize,
    report: &mut Report,
) -> Result<()> {
    let cluster = ClusterId::new(clusters[0].as_str())?;
    // 1,000 instances across every cluster: the lowest ports of each.
    let ports = (1000 / clusters.len()).max(1) as u64;
    let filter = json!({"port": {"$lt": 30900 + ports}});
    let query = Query::new(
        Filter::parse(&filter)?,
        QueryOptions {
            limit: Some(1000),
            ..QueryOptions::default()
        },
    )?;
    let by_cluster = Query::with_filter(Filter::cluster(&cluster));
    let get = Request::get(&format!("{BASE}/cluster/{cluster}"));
    let post = Request::post_json(&format!("{BASE}/query?limit=1000"), &filter.to_string());
    let mut link = Connection::open(global.addr).await?;
    let mut sides: [Latencies; 4] = Default::default();
    let mut sizes = [0_usize; 2];
    for _ in 0..reps {
        let sent = Instant::now();
        ensure!(link.send(&get).await? == 200, "GET of a cluster failed");
        sides[0].push(sent.elapsed());
        let sent = Instant::now();
        sizes[0] = registry.find(&by_cluster).await?.len();
        sides[1].push(sent.elapsed());
        let sent = Instant::now();
        ensure!(link.send(&post).await? == 200, "the query failed");
        sides[2].push(sent.elapsed());
        let sent = Instant::now();
        sizes[1] = registry.find(&query).await?.len();
        sides[3].push(sent.elapsed());
    }
    let answered: serde_json::Value = serde_json::from_slice(&link.body)?;
    let statuses = answered["data"].as_array().map_or(0, |all| {
        all.iter().filter(|i| i["status"] != "Unknown").count()
    });
    ensure!(
        statuses == sizes[1],
        "the query's answer lacks live statuses"
    );
    for (n, (case, size)) in [("GET .../cluster/{id}", sizes[0]), ("query", sizes[1])]
        .into_iter()
        .enumerate()
    {
        let (api, store) = (&sides[2 * n], &sides[2 * n + 1]);
        report.row(
            "fleet",
            format!("{case}: {size} instances with live status vs the registry alone"),
            vec![
                ("API p50", api.p50(), "ms"),
                ("registry p50", store.p50(), "ms"),
                ("n", reps as f64, ""),
            ],
        );
        report.target(
            format!("fleet: {case} of {size} with live status ≤ 1.25 × registry"),
            api.p50() / store.p50(),
            1.25,
            false,
            "API p50 ÷ registry find p50 (sequential)",
        );
    }
    Ok(())
}

/// The 101st create on a full cluster against one read of the cluster's Services.
async fn full_cluster(
    global: &Global,
    dir: &Path,
    cluster: &str,
    reps: usize,
    report: &mut Report,
) -> Result<()> {
    let kubeconfig = dir.join(format!("{cluster}.kubeconfig"));
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig)?,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    let client = kube::Client::try_from(config)?;
    let services = kube::Api::<k8s_openapi::api::core::v1::Service>::all(client);
    let mut link = Connection::open(global.addr).await?;
    let (mut refused, mut listed) = (Latencies::default(), Latencies::default());
    for n in 0..reps {
        let sent = Instant::now();
        services.list(&kube::api::ListParams::default()).await?;
        listed.push(sent.elapsed());
        let body = create_body(&format!("{cluster}-over{n}"), cluster, n);
        let sent = Instant::now();
        let status = link.send(&Request::post_json(BASE, &body)).await?;
        refused.push(sent.elapsed());
        let text = String::from_utf8_lossy(&link.body);
        ensure!(
            status == 409 && text.contains("ports_exhausted"),
            "a create on a full cluster answered {status} {text}"
        );
    }
    report.row(
        "fleet",
        format!("create on a full cluster ({PER_CLUSTER} instances) vs one read of its Services"),
        vec![
            ("ports_exhausted p50", refused.p50(), "ms"),
            ("Services read p50", listed.p50(), "ms"),
        ],
    );
    report.target(
        "fleet: ports_exhausted ≤ 2 × one read of the cluster's Services",
        refused.p50() / listed.p50(),
        2.0,
        false,
        "p50 of the refused create ÷ p50 of a list of the cluster's Services",
    );
    Ok(())
}

/// One reconcile pass at steady state: its duration, and the global's CPU over the
/// interval from the end of one pass to the end of the next; beside it, what the
/// `others` (the local services, with their own passes and watches, and the simulators)
/// took over the same interval, idle as the fleet is.
async fn reconcile(
    global: &mut Global,
    clusters: usize,
    others: &[(&'static str, u32)],
    report: &mut Report,
) -> Result<()> {
    // From the end of a pass that began after the reads above, to the end of the next.
    let earlier = global.wait_reconciled(0).await?;
    let first = global.wait_reconciled(earlier.runs).await?;
    let (cpu0, others0, at0) = (global.cpu_seconds()?, cpu_of(others)?, Instant::now());
    let second = global.wait_reconciled(first.runs).await?;
    let (cpu1, others1, at1) = (global.cpu_seconds()?, cpu_of(others)?, Instant::now());
    let interval = (at1 - at0).as_secs_f64();
    let share = (cpu1 - cpu0) / interval;
    let pass = second.seconds - first.seconds;
    let mut figures = vec![
        ("pass", pass * 1000.0, "ms"),
        ("interval", interval, "s"),
        ("CPU", share * 100.0, "% of a core"),
    ];
    for (((name, _), before), after) in others.iter().zip(others0).zip(others1) {
        figures.push((*name, (after - before) / interval * 100.0, "% of a core"));
    }
    report.row(
        "fleet",
        format!("reconcile pass over {clusters} clusters at steady state"),
        figures,
    );
    report.target(
        "fleet: CPU at steady state ≤ 5% of a core",
        share * 100.0,
        5.0,
        false,
        "the global's CPU seconds over one reconcile interval ÷ its length, in %",
    );
    Ok(())
}

/// User and system CPU seconds process `pid` has used (`/proc/PID/stat`, in the kernel's
/// clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').context("an unreadable stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(ticks as f64 / 100.0)
}

/// The CPU seconds each of `processes` has used so far.
fn cpu_of(processes: &[(&'static str, u32)]) -> Result<Vec<f64>> {
    processes.iter().map(|(_, pid)| cpu_seconds(*pid)).collect()
}

/// A temporary directory for the clusters' kubeconfigs, removed when dropped.
struct StateDir(PathBuf);

impl StateDir {
    fn new() -> Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        let path = std::env::temp_dir().join(format!("framedb-fleet-{}", std::process::id()));
        // The simulator writes kubeconfigs only into a directory of this user's alone.
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `framedb-server`, beside this binary (scripts/bench.sh builds both).
fn server_exe() -> Result<PathBuf> {
    let exe = std::env::current_exe()?.with_file_name("framedb-server");
    ensure!(
        exe.exists(),
        "{} is missing: build it (scripts/bench.sh does)",
        exe.display()
    );
    Ok(exe)
}

/// The simulated clusters' process.
struct Simulate {
    child: Child,
}

impl Simulate {
    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }
}

impl Simulate {
    async fn start(names: &[String], dir: &Path) -> Result<Self> {
        let mut child = Command::new(server_exe()?)
            .arg("simulate")
            .arg("--clusters")
            .arg(names.join(","))
            .arg("--state-dir")
            .arg(dir)
            .arg("--api-latency-ms")
            .arg(LATENCY.as_millis().to_string())
            .arg("--node-capacity")
            .arg(NODE_CAPACITY)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting framedb-server simulate")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let mut serving = 0;
        let wait = async {
            let mut said = Vec::new();
            while let Some(line) = lines.next_line().await? {
                if line.contains("simulated cluster serving") {
                    serving += 1;
                    if serving == names.len() {
                        return Ok::<_, anyhow::Error>(());
                    }
                } else {
                    said.push(line);
                }
            }
            bail!("framedb-server simulate exited: {}", said.join("\n"))
        };
        tokio::time::timeout(Duration::from_secs(120), wait)
            .await
            .context("the simulated clusters did not start within 120 s")??;
        // Its later lines are not read, only drained.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child })
    }
}

/// The local services' process (`framedb-bench locals`).
struct Locals {
    child: Child,
    /// `cluster=url` of each, in the clusters' order.
    urls: Vec<String>,
}

impl Locals {
    async fn start(names: &[String], dir: &Path) -> Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("locals")
            .arg("--state-dir")
            .arg(dir)
            .arg("--clusters")
            .arg(names.join(","))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting the local services")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut urls = Vec::new();
        let read = async {
            while let Some(line) = lines.next_line().await? {
                match line.strip_prefix("LOCAL ") {
                    Some(entry) => urls.push(entry.to_owned()),
                    None if line == "READY" => return Ok::<_, anyhow::Error>(()),
                    None => bail!("unexpected line from the local services: {line}"),
                }
            }
            bail!("the local services exited")
        };
        tokio::time::timeout(Duration::from_secs(120), read)
            .await
            .context("the local services did not start within 120 s")??;
        ensure!(urls.len() == names.len(), "not every local service started");
        Ok(Self { child, urls })
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    async fn stop(mut self) {
        drop(self.child.stdin.take());
        crate::child::stop_within(&mut self.child, Duration::from_secs(10)).await;
    }
}

/// The `locals` subcommand's arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct LocalsArgs {
    /// Where the clusters' kubeconfigs are (`DIR/{cluster}.kubeconfig`).
    #[arg(long)]
    pub state_dir: PathBuf,
    /// The clusters.
    #[arg(long, value_delimiter = ',')]
    pub clusters: Vec<String>,
}

/// `framedb-bench locals`: a local config service per cluster, each built by `App::local`
/// from its kubeconfig as `framedb-server local` builds it, on loopback without a token;
/// prints `LOCAL cluster=url` for each, then `READY`, and serves until stdin closes.
///
/// # Errors
/// When a service cannot start.
pub async fn serve_locals(args: LocalsArgs) -> Result<()> {
    let mut running = Vec::new();
    let mut out = tokio::io::stdout();
    for name in &args.clusters {
        let id = ClusterId::new(name.as_str())?;
        let kubeconfig = args.state_dir.join(format!("{name}.kubeconfig"));
        let settings = LocalSettings {
            serve: ServeSettings::loopback(),
            ..LocalSettings::new(id, Some(kubeconfig))
        };
        let local = App::local(&settings, Adapters::default()).await?.spawn();
        out.write_all(format!("LOCAL {name}={}\n", local.url()).as_bytes())
            .await?;
        running.push(local);
    }
    out.write_all(b"READY\n").await?;
    out.flush().await?;
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    while stdin.next_line().await?.is_some() {}
    for local in running {
        let _ = local.stop().await;
    }
    Ok(())
}

/// What `/metrics` says of the reconcile passes.
struct Passes {
    runs: u64,
    seconds: f64,
}

/// The global service's process.
struct Global {
    child: Child,
    addr: SocketAddr,
}

impl Global {
    /// Starts `framedb-server global` on `database` with the local services `fleet`
    /// (`cluster=url`), and waits until it answers `/healthz`.
    async fn start(
        uri: &str,
        database: &str,
        fleet: &[String],
        reconcile_secs: u64,
    ) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut command = Command::new(server_exe()?);
        if !fleet.is_empty() {
            command.env("FRAMEDB_LOCAL_SERVICES", fleet.join(","));
        }
        let child = command
            .arg("global")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--reconcile-interval-secs")
            .arg(reconcile_secs.to_string())
            .arg("--mongo-database")
            .arg(database)
            .env("FRAMEDB_MONGO_URI", uri)
            .env("RUST_LOG", "warn")
            .env("FRAMEDB_HEAP_STATS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting framedb-server global")?;
        let mut global = Self { child, addr };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = load::once(addr, &Request::get("/healthz")).await {
                return Ok(global);
            }
            if let Some(status) = global.child.try_wait()? {
                bail!("framedb-server global exited: {status}");
            }
            ensure!(
                Instant::now() < deadline,
                "framedb-server global did not answer within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    fn cpu_seconds(&self) -> Result<f64> {
        cpu_seconds(self.pid())
    }

    /// Writes its `/metrics` to `path`, for a look at where its time went.
    /// What its allocator holds (`framedb_heap_bytes` of `/metrics`).
    async fn heap_bytes(&self) -> Result<u64> {
        let (status, body) = load::once(self.addr, &Request::get("/metrics")).await?;
        ensure!(status == 200, "/metrics answered {status}");
        let text = String::from_utf8_lossy(&body);
        text.lines()
            .find_map(|line| line.strip_prefix("framedb_heap_bytes "))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .map(|bytes| bytes as u64)
            .context("/metrics has no framedb_heap_bytes")
    }

    async fn save_metrics(&self, path: &Path) -> Result<()> {
        let (status, body) = load::once(self.addr, &Request::get("/metrics")).await?;
        ensure!(status == 200, "/metrics answered {status}");
        std::fs::write(path, body)?;
        Ok(())
    }

    /// The `framedb_instances` series of `/metrics`: instances by cluster, for the
    /// clusters whose status book is in step.
    async fn books(&self, link: &mut Connection) -> Result<BTreeMap<String, f64>> {
        ensure!(
            link.send(&Request::get("/metrics")).await? == 200,
            "/metrics failed"
        );
        let text = String::from_utf8_lossy(&link.body);
        let mut books = BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("framedb_instances{") else {
                continue;
            };
            let Some((labels, value)) = rest.split_once("} ") else {
                continue;
            };
            let Some(cluster) = labels
                .split(',')
                .find_map(|label| label.strip_prefix("cluster_id=\""))
                .and_then(|cluster| cluster.strip_suffix('"'))
            else {
                continue;
            };
            *books.entry(cluster.to_owned()).or_default() += value.trim().parse::<f64>()?;
        }
        Ok(books)
    }

    /// Waits until the status books of `clusters` clusters are in step and hold
    /// `instances` instances in all.
    async fn wait_in_step(&self, clusters: usize, instances: usize) -> Result<()> {
        let deadline = Instant::now() + IN_STEP_LIMIT;
        let mut link = Connection::open(self.addr).await?;
        loop {
            let books = self.books(&mut link).await?;
            let held: f64 = books.values().sum();
            if books.len() == clusters && held as usize == instances {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "after {IN_STEP_LIMIT:?}, {} of {clusters} books were in step with {held} of \
                 {instances} instances",
                books.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until more than `runs` reconcile passes have finished (polling `/metrics`
    /// once a second, which the CPU figure then includes).
    async fn wait_reconciled(&self, runs: u64) -> Result<Passes> {
        let mut link = Connection::open(self.addr).await?;
        let deadline = Instant::now() + IN_STEP_LIMIT;
        loop {
            ensure!(
                link.send(&Request::get("/metrics")).await? == 200,
                "/metrics failed"
            );
            let text = String::from_utf8_lossy(&link.body);
            let sum = |prefix: &str| -> f64 {
                text.lines()
                    .filter_map(|line| line.strip_prefix(prefix))
                    .filter_map(|rest| rest.rsplit_once(' ')?.1.parse::<f64>().ok())
                    .sum()
            };
            let passes = Passes {
                runs: sum("framedb_reconcile_runs_total{") as u64,
                seconds: sum("framedb_reconcile_run_duration_seconds_sum{"),
            };
            if passes.runs > runs {
                return Ok(passes);
            }
            ensure!(
                Instant::now() < deadline,
                "no reconcile pass within {IN_STEP_LIMIT:?}"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Stops it (SIGKILL: a restart after a crash, which is what is measured next).
    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn ids_are_valid_and_distinct() {
        let names = cluster_names(200);
        let ids: BTreeSet<String> = names
            .iter()
            .flat_map(|c| {
                [
                    format!("{c}-i099"),
                    format!("{c}-warm"),
                    format!("{c}-few049"),
                    format!("{c}-spread009"),
                    format!("{c}-over9"),
                ]
            })
            .collect();
        assert_eq!(ids.len(), 200 * 5);
        for id in ids {
            framedb_core::FramedbId::new(id.as_str()).unwrap();
        }
        for name in names {
            ClusterId::new(name.as_str()).unwrap();
        }
    }
}
