//! The fault soak of issue 12: 200 creates and deletes over two clusters through both
//! tiers, while each simulated cluster fails 20 % of its requests (failed answers,
//! latency, connections dropped before and after the request is applied), and each tier
//! restarts once mid-run. Then the faults stop, and within a few reconcile passes the
//! registries and the clusters must agree exactly:
//!
//! - every Service, StatefulSet, PVC, Secret and NetworkPolicy of FrameDB's label
//!   belongs, by its stamp, to a record of its cluster's local registry and of the
//!   global registry;
//! - every global record has its local record (same stamp and port) and all its objects,
//!   its Service on its recorded port, and is neither `Deleting` nor without a port;
//! - no two records of a cluster share a port;
//! - a retained volume (PVC and Secret labelled `framedb.io/retained=true`) belongs to
//!   no record, and to an id of policy `Retain` that a delete without purge reached
//!   since it was last created or purged (counted apart);
//! - and every operation was answered rightly: a fault is a failure to act (503, or no
//!   answer while the global restarts), never a conflict, a 404 for a create, or a 500.
//!
//! The registries are MongoDB's when `MONGODB_URI` names one (always under CI), memory
//! otherwise. The figures (operations and their answers, faults injected, reconcile
//! passes and time until the tiers agree, objects and records) are printed in the test's
//! output: `cargo nextest run -p framedb-e2e soak --no-capture` (with `RUST_LOG=info`,
//! the services' logs too).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use framedb_core::memory::InMemoryRegistry;
use framedb_core::{Filter, InstanceRecord, InstanceRegistry, InstanceStatus, Query};
use framedb_k8s::objects::{MANAGED_SELECTOR, RETAINED, annotations, labels};
use framedb_kube_sim::{DropWhen, Injected, RequestStats, Simulator, Verb};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use kube::api::ListParams;
use reqwest::Client;
use serde_json::json;

use super::{BASE, Topology, drop_databases, mongo_registries};

/// A tier's registry, on its way.
type Registry = std::pin::Pin<Box<dyn Future<Output = Arc<dyn InstanceRegistry>>>>;

/// Creates and deletes, in all.
const OPERATIONS: usize = 200;
/// How many run at once.
const CONCURRENCY: usize = 4;
/// Seconds between reconcile passes, at both tiers.
const RECONCILE_SECS: u64 = 1;
/// Seconds after which a record without a port is a dead create's: far longer than a
/// create takes here (the slowest are answered in 1 to 3 s), far shorter than the
/// default five minutes.
const CREATE_DEADLINE_SECS: u64 = 8;
/// When the tiers restart: after this many operations have finished.
const RESTART_LOCAL: [usize; 2] = [60, 90];
const RESTART_GLOBAL: usize = 130;

/// xorshift64*, seeded: the same choices on every run (the interleaving of the concurrent
/// operations, the faults each one meets, and so the answers the plan follows, vary).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
}

/// An instance the plan created, as the create asked for it.
#[derive(Clone, Debug)]
struct Wanted {
    id: String,
    cluster: &'static str,
    node: &'static str,
    retain: bool,
}

#[derive(Debug)]
enum Op {
    Create(Wanted),
    Delete { wanted: Wanted, purge: bool },
}

/// The right answers to a create and to a delete under faults: done, or not done (503;
/// 504 if a local service is slower than the global waits); a delete of an id without
/// record (its create failed) is 404.
const CREATE_ANSWERS: &[u16] = &[201, 503, 504];
const DELETE_ANSWERS: &[u16] = &[200, 404, 503, 504];

/// How an operation was answered: its HTTP status, or none (the global was restarting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Answer {
    Status(u16),
    NoAnswer,
}

/// What the operations did, and what the check needs to know of them.
#[derive(Default)]
struct Plan {
    rng: Option<Rng>,
    issued: usize,
    new_ids: usize,
    /// Created (whatever the answer), and not deleted since: may be deleted.
    deletable: Vec<Wanted>,
    /// Deleted with `Retain` and no purge, answered 200: may be created again.
    retained: Vec<Wanted>,
    /// Per id of policy `Retain`: whether its volume may be retained now (see
    /// [`Plan::may_retain`]).
    retainable: HashMap<String, bool>,
    /// Per id: whether its last create was answered 201.
    created_ok: HashMap<String, bool>,
    creates: BTreeMap<Answer, usize>,
    recreates: usize,
    /// The longest a create took to be answered (the create deadline must exceed it).
    slowest_create: Duration,
    deletes: BTreeMap<Answer, usize>,
    purges: usize,
    /// Per id, what was asked and answered, in order (for a failure's message).
    history: BTreeMap<String, Vec<String>>,
}

impl Plan {
    fn next(&mut self) -> Option<Op> {
        if self.issued == OPERATIONS {
            return None;
        }
        self.issued += 1;
        let rng = self.rng.as_mut().expect("seeded");
        if !self.deletable.is_empty() && rng.chance(0.45) {
            let wanted = self.deletable.swap_remove(rng.below(self.deletable.len()));
            let purge = rng.chance(0.3);
            return Some(Op::Delete { wanted, purge });
        }
        if !self.retained.is_empty() && rng.chance(0.15) {
            // The same id, cluster, node and size: it takes its retained volume back.
            let wanted = self.retained.swap_remove(rng.below(self.retained.len()));
            self.recreates += 1;
            return Some(Op::Create(wanted));
        }
        let n = self.new_ids;
        self.new_ids += 1;
        let wanted = Wanted {
            id: format!("soak-{n:03}"),
            cluster: ["cluster-01", "cluster-02"][rng.below(2)],
            node: ["node-a", "node-b"][rng.below(2)],
            retain: rng.chance(0.35),
        };
        Some(Op::Create(wanted))
    }

    fn created(&mut self, wanted: Wanted, answer: Answer) {
        *self.creates.entry(answer).or_default() += 1;
        self.history
            .entry(wanted.id.clone())
            .or_default()
            .push(format!(
                "create on {} {} ({}): {answer:?}",
                wanted.cluster,
                wanted.node,
                if wanted.retain { "Retain" } else { "Delete" }
            ));
        let rng = self.rng.as_mut().expect("seeded");
        let ok = answer == Answer::Status(201);
        if ok {
            // Its volume is the instance's (taken back, if it was retained).
            self.retainable.insert(wanted.id.clone(), false);
        }
        // A failed create gives a retained volume it took back to the retention it came
        // from; its record, until the reconciler settles it, may still be deleted.
        self.created_ok.insert(wanted.id.clone(), ok);
        // A client deletes what it created, and sometimes what it failed to create.
        if answer == Answer::Status(201) || rng.chance(0.5) {
            self.deletable.push(wanted);
        }
    }

    fn deleted(&mut self, wanted: Wanted, purge: bool, answer: Answer) {
        *self.deletes.entry(answer).or_default() += 1;
        let purged = if purge { " with purge" } else { "" };
        self.history
            .entry(wanted.id.clone())
            .or_default()
            .push(format!("delete{purged}: {answer:?}"));
        self.purges += usize::from(purge);
        if wanted.retain {
            // A delete that found the record (every answer but 404; perhaps one that got
            // none) removes the volume as it asked, now or at a reconcile pass; but the
            // record of a failed create does not own a retained volume (its stamp's
            // objects alone are removed), so its purge leaves that volume retained.
            let reached = answer != Answer::Status(404);
            let certain = answer != Answer::NoAnswer;
            let owned = self.created_ok.get(&wanted.id) == Some(&true);
            if reached && !purge {
                self.retainable.insert(wanted.id.clone(), true);
            } else if reached && certain && owned {
                self.retainable.insert(wanted.id.clone(), false);
            }
        }
        if wanted.retain && !purge && answer == Answer::Status(200) {
            self.retained.push(wanted);
        }
    }

    /// Whether a retained volume of `id` is what the operations asked for: its policy is
    /// `Retain`, a delete without purge reached it, and neither a create that took the
    /// volume back nor a purge of such a create came since.
    fn may_retain(&self, id: &str) -> bool {
        self.retainable.get(id) == Some(&true)
    }
}

/// Sends one operation to the global API. Like any client, it tries again while the
/// global cannot be connected to (it is restarting: nothing was sent); an answer that
/// never came after the request went out is `NoAnswer`.
async fn run(client: &Client, url: &str, op: &Op) -> Answer {
    let request = || match op {
        Op::Create(wanted) => {
            let mut body = json!({"framedb_id": wanted.id, "cluster_id": wanted.cluster,
                                  "node_id": wanted.node, "storage_size": "1Gi",
                                  "metadata": {"soak": true}});
            if wanted.retain {
                body["deletion_policy"] = json!("Retain");
            }
            client.post(format!("{url}/{BASE}")).json(&body)
        }
        Op::Delete { wanted, purge } => {
            let query = if *purge { "?purge=true" } else { "" };
            client.delete(format!("{url}/{BASE}/{}{query}", wanted.id))
        }
    };
    let refused_until = Instant::now() + Duration::from_secs(20);
    loop {
        match request().send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                // Read the answer through, so the connection is reused.
                let body = response.bytes().await.unwrap_or_default();
                let expected = match op {
                    Op::Create(_) => CREATE_ANSWERS,
                    Op::Delete { .. } => DELETE_ANSWERS,
                };
                if !expected.contains(&status) {
                    eprintln!("soak: {status} {op:?}: {}", String::from_utf8_lossy(&body));
                }
                return Answer::Status(status);
            }
            Err(error) if error.is_connect() && Instant::now() < refused_until => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => {
                eprintln!("soak: no answer {op:?}: {error:?}");
                return Answer::NoAnswer;
            }
        }
    }
}

/// The faults of the soak, on every request of `sim`: 20 % in all.
fn inject(sim: &Simulator) {
    let faults = sim.faults();
    faults.fail(Verb::Any, None, 500, 0.03);
    faults.fail(Verb::Any, None, 503, 0.03);
    faults.fail(Verb::Any, None, 429, 0.02);
    faults.delay(Verb::Any, None, Duration::from_millis(150), 0.04);
    faults.drop_connections(Verb::Any, None, DropWhen::BeforeApply, 0.04);
    faults.drop_connections(Verb::Any, None, DropWhen::AfterApply, 0.04);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_soak_ends_with_registries_and_clusters_in_exact_agreement() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    // A restart keeps its registry, MongoDB or memory (a restart on an empty registry is
    // another test's).
    let mongo = std::env::var("MONGODB_URI")
        .ok()
        .filter(|uri| !uri.is_empty());
    let registries: Box<dyn Fn(String) -> Registry> = match &mongo {
        Some(uri) => Box::new(mongo_registries(uri.clone(), "soak")),
        None => Box::new(|_| {
            Box::pin(async { Arc::new(InMemoryRegistry::new()) as Arc<dyn InstanceRegistry> })
        }),
    };
    let mut topology = Topology::start_tuned(
        "soak",
        Duration::ZERO,
        registries,
        Duration::from_secs(10),
        |serve| {
            serve.reconcile_interval_secs = RECONCILE_SECS;
            serve.create_deadline_secs = CREATE_DEADLINE_SECS;
        },
    )
    .await;
    let plan = Arc::new(Mutex::new(Plan {
        rng: Some(Rng(0x5eed_50a4_f00d_cafe)),
        ..Plan::default()
    }));
    for (_, sim) in topology.clusters.each() {
        inject(sim);
    }
    let started = Instant::now();

    // The operations, a few at a time, on the global's address (the same across its
    // restart); and the restarts, when enough of them have finished.
    let (finished, progress) = tokio::sync::watch::channel(0usize);
    let url = topology.global.url.clone();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, url, plan, finished) = (
                topology.client.clone(),
                url.clone(),
                plan.clone(),
                finished.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let Some(op) = plan.lock().unwrap().next() else {
                        break;
                    };
                    let asked = Instant::now();
                    let answer = run(&client, &url, &op).await;
                    let took = asked.elapsed();
                    let mut plan = plan.lock().unwrap();
                    match op {
                        Op::Create(wanted) => {
                            plan.slowest_create = plan.slowest_create.max(took);
                            plan.created(wanted, answer);
                        }
                        Op::Delete { wanted, purge } => plan.deleted(wanted, purge, answer),
                    }
                    drop(plan);
                    finished.send_modify(|n| *n += 1);
                }
            })
        })
        .collect();
    let restarts = async {
        let mut progress = progress.clone();
        for (index, after) in RESTART_LOCAL.into_iter().enumerate() {
            progress.wait_for(|n| *n >= after).await.unwrap();
            topology.stop_local(index).await;
            topology.restart_local(index).await;
        }
        progress.wait_for(|n| *n >= RESTART_GLOBAL).await.unwrap();
        topology.restart_global().await;
    };
    let operations = async {
        for worker in workers {
            worker.await.unwrap();
        }
    };
    tokio::join!(operations, restarts);
    let ran_for = started.elapsed();

    // The faults stop; the reconcile passes settle what they left.
    let mut injected = Vec::new();
    for (_, sim) in topology.clusters.each() {
        sim.faults().clear();
        injected.push(sim.requests());
    }
    let cleared = Instant::now();
    let passes_before = passes(&topology);
    let deadline = cleared + Duration::from_secs(CREATE_DEADLINE_SECS + 10 * RECONCILE_SECS);
    let plan = Arc::try_unwrap(plan).ok().unwrap().into_inner().unwrap();
    let figures = loop {
        match check(&topology, &plan).await {
            Ok(figures) => break figures,
            Err(problems) if Instant::now() > deadline => {
                let mut told = String::new();
                for (id, events) in &plan.history {
                    if problems.contains(&format!("{id} ")) || problems.contains(&format!("{id}'"))
                    {
                        let _ = writeln!(told, "  {id}: {}", events.join("; "));
                    }
                }
                panic!(
                    "the tiers and the clusters disagree {} s after the faults stopped:\n{problems}\nwhat was asked of them:\n{told}",
                    cleared.elapsed().as_secs()
                )
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let converged = cleared.elapsed();
    let passes_after = passes(&topology);

    // And they stay so through one more pass of every tier.
    let settled = passes(&topology);
    while passes(&topology)
        .iter()
        .zip(&settled)
        .any(|(now, then)| now <= then)
    {
        assert!(
            Instant::now() < deadline + Duration::from_secs(5),
            "no more passes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = check(&topology, &plan)
        .await
        .unwrap_or_else(|problems| panic!("agreement did not last one pass:\n{problems}"));
    assert_eq!(again, figures);

    let mut report = String::new();
    let _ = writeln!(
        report,
        "fault soak (issue 12): {OPERATIONS} operations, {CONCURRENCY} at a time, over 2 clusters, registries in {}, in {:.1} s",
        if mongo.is_some() { "MongoDB" } else { "memory" },
        ran_for.as_secs_f64()
    );
    let _ = writeln!(
        report,
        "  creates: {} attempted ({} of a retained id), answered {} (the slowest in {:.1} s)",
        plan.creates.values().sum::<usize>(),
        plan.recreates,
        answers(&plan.creates),
        plan.slowest_create.as_secs_f64()
    );
    let _ = writeln!(
        report,
        "  deletes: {} attempted ({} with purge), answered {}",
        plan.deletes.values().sum::<usize>(),
        plan.purges,
        answers(&plan.deletes)
    );
    for ((cluster, _), stats) in topology.clusters.each().zip(&injected) {
        let _ = writeln!(report, "  {cluster}: {}", faults(stats));
    }
    let _ = writeln!(
        report,
        "  restarts: local cluster-01 after {} operations, local cluster-02 after {}, global after {}",
        RESTART_LOCAL[0], RESTART_LOCAL[1], RESTART_GLOBAL
    );
    let _ = writeln!(
        report,
        "  converged {:.1} s after the faults stopped (create deadline {CREATE_DEADLINE_SECS} s, reconcile every {RECONCILE_SECS} s): reconcile passes global {}, local cluster-01 {}, cluster-02 {}",
        converged.as_secs_f64(),
        passes_after[0] - passes_before[0],
        passes_after[1] - passes_before[1],
        passes_after[2] - passes_before[2],
    );
    let _ = write!(report, "  final: {figures}");
    println!("{report}");
    if let Some(uri) = &mongo {
        drop_databases(uri, "soak").await;
    }

    // A fault is a failure to act (503, or no answer while the global restarts), never a
    // wrong answer: no conflict for an id that is free, no 404 for a create, no 500.
    let wrong = |answers: &BTreeMap<Answer, usize>, right: &[u16]| -> Vec<String> {
        answers
            .iter()
            .filter(|(answer, _)| {
                !matches!(answer, Answer::Status(code) if right.contains(code))
                    && **answer != Answer::NoAnswer
            })
            .map(|(answer, n)| format!("{answer:?} x{n}"))
            .collect()
    };
    assert_eq!(
        wrong(&plan.creates, CREATE_ANSWERS),
        Vec::<String>::new(),
        "creates"
    );
    assert_eq!(
        wrong(&plan.deletes, DELETE_ANSWERS),
        Vec::<String>::new(),
        "deletes"
    );
}

/// The reconcile passes of the global and of each local service, in that order.
fn passes(topology: &Topology) -> Vec<u64> {
    let mut passes = vec![topology.global.reconciles.passes()];
    passes.extend(topology.locals.iter().map(|local| {
        local
            .server
            .as_ref()
            .map_or(0, |server| server.reconciles.passes())
    }));
    passes
}

fn answers(counts: &BTreeMap<Answer, usize>) -> String {
    counts
        .iter()
        .map(|(answer, n)| match answer {
            Answer::Status(code) => format!("{code}: {n}"),
            Answer::NoAnswer => format!("no answer: {n}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn faults(stats: &RequestStats) -> String {
    let kinds = [
        Injected::Error(500),
        Injected::Error(503),
        Injected::Error(429),
        Injected::Latency,
        Injected::Dropped(DropWhen::BeforeApply),
        Injected::Dropped(DropWhen::AfterApply),
    ];
    let each: Vec<String> = kinds
        .iter()
        .map(|kind| format!("{kind} {}", stats.injected(*kind)))
        .collect();
    format!(
        "{} requests, {} faults injected ({})",
        stats.total(),
        stats.faults_total(),
        each.join(", ")
    )
}

/// One of FrameDB's objects on a cluster.
#[derive(Debug)]
struct Object {
    kind: &'static str,
    id: String,
    stamp: String,
    retained: bool,
    /// A Service's node port.
    port: Option<u16>,
}

/// What agrees once the tiers and clusters do.
#[derive(Debug, PartialEq, Eq)]
struct Figures {
    records: BTreeMap<String, usize>,
    objects: BTreeMap<&'static str, usize>,
    retained_volumes: usize,
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let records: Vec<String> = self
            .records
            .iter()
            .map(|(cluster, n)| format!("{cluster} {n}"))
            .collect();
        let objects: Vec<String> = self
            .objects
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        write!(
            f,
            "records (each in both registries) {}; live objects {}; retained volumes {}",
            records.join(", "),
            objects.join(", "),
            self.retained_volumes
        )
    }
}

/// FrameDB's objects of kind `K` in the instances' namespace.
async fn objects<K>(client: &kube::Client, kind: &'static str) -> Vec<Object>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + serde::Serialize,
    K::DynamicType: Default,
{
    let params = ListParams::default().labels(MANAGED_SELECTOR);
    let Ok(list) = kube::Api::<K>::namespaced(client.clone(), "framedb-storage")
        .list(&params)
        .await
    else {
        // No namespace yet: nothing was ever deployed.
        return Vec::new();
    };
    list.items
        .iter()
        .map(|object| {
            let value = serde_json::to_value(object).unwrap();
            let port = value["spec"]["ports"][0]["nodePort"]
                .as_u64()
                .map(|port| u16::try_from(port).unwrap());
            Object {
                kind,
                id: object.labels()[labels::INSTANCE].clone(),
                stamp: object
                    .annotations()
                    .get(annotations::STAMP)
                    .cloned()
                    .unwrap_or_default(),
                retained: object.labels().get(RETAINED).is_some_and(|v| v == "true"),
                port,
            }
        })
        .collect()
}

/// The check of the module docs: the figures when it holds, every problem otherwise.
async fn check(topology: &Topology, plan: &Plan) -> Result<Figures, String> {
    let mut problems = String::new();
    let mut figures = Figures {
        records: BTreeMap::new(),
        objects: BTreeMap::new(),
        retained_volumes: 0,
    };
    let everything = Query::with_filter(Filter::all());
    let by_id = |records: Vec<InstanceRecord>| -> BTreeMap<String, InstanceRecord> {
        records
            .into_iter()
            .map(|r| (r.framedb_id.to_string(), r))
            .collect()
    };
    let global = by_id(
        topology
            .global_registry
            .find(&everything)
            .await
            .map_err(|e| e.to_string())?,
    );
    let mut known = BTreeSet::new();
    for (local, (cluster, sim)) in topology.locals.iter().zip(topology.clusters.each()) {
        known.insert(cluster.to_string());
        let locals = by_id(
            local
                .registry
                .find(&everything)
                .await
                .map_err(|e| e.to_string())?,
        );
        let globals: BTreeMap<&String, &InstanceRecord> = global
            .iter()
            .filter(|(_, r)| r.cluster_id == cluster)
            .collect();
        figures.records.insert(cluster.to_string(), globals.len());
        let client = sim.client().await;
        let mut found = Vec::new();
        found.extend(objects::<Service>(&client, "Service").await);
        found.extend(objects::<StatefulSet>(&client, "StatefulSet").await);
        found.extend(objects::<PersistentVolumeClaim>(&client, "PVC").await);
        found.extend(objects::<Secret>(&client, "Secret").await);
        found.extend(objects::<NetworkPolicy>(&client, "NetworkPolicy").await);

        // Both registries hold the same instances, settled.
        for (id, record) in &globals {
            match locals.get(*id) {
                None => {
                    let _ = writeln!(problems, "{cluster}: {id} has no local record");
                }
                Some(mine) if mine.stamp != record.stamp || mine.port != record.port => {
                    let _ = writeln!(
                        problems,
                        "{cluster}: {id}'s records differ: global {} {:?}, local {} {:?}",
                        record.stamp, record.port, mine.stamp, mine.port
                    );
                }
                Some(_) => {}
            }
        }
        for (id, record) in &locals {
            if !globals.contains_key(id) {
                let _ = writeln!(
                    problems,
                    "{cluster}: {id} has a local record ({:?}, port {:?}) and no global one",
                    record.status, record.port
                );
            }
        }
        for (tier, records) in [
            ("global", globals.values().copied().collect::<Vec<_>>()),
            ("local", locals.values().collect()),
        ] {
            let mut ports = BTreeMap::new();
            for record in records {
                let id = &record.framedb_id;
                if record.status == InstanceStatus::Deleting || record.port.is_none() {
                    let _ = writeln!(
                        problems,
                        "{cluster}: {tier} record {id} is unsettled: {:?}, port {:?}",
                        record.status, record.port
                    );
                }
                if let Some(port) = record.port
                    && let Some(other) = ports.insert(port, id.to_string())
                {
                    let _ = writeln!(
                        problems,
                        "{cluster}: {tier} records {other} and {id} share port {port}"
                    );
                }
            }
        }

        // Every record has its objects, under its stamp, its Service on its port.
        for (id, record) in &globals {
            for kind in ["Service", "StatefulSet", "PVC", "Secret", "NetworkPolicy"] {
                let mine = found
                    .iter()
                    .find(|o| o.kind == kind && &&o.id == id && o.stamp == record.stamp.as_str());
                match mine {
                    None => {
                        let _ = writeln!(problems, "{cluster}: {id} has no {kind} of its stamp");
                    }
                    Some(object) if object.retained => {
                        let _ = writeln!(problems, "{cluster}: {id}'s {kind} is retained");
                    }
                    Some(object) if kind == "Service" && object.port != record.port => {
                        let _ = writeln!(
                            problems,
                            "{cluster}: {id}'s Service holds {:?}, its record {:?}",
                            object.port, record.port
                        );
                    }
                    Some(_) => {}
                }
            }
        }
        // Every object belongs to a record, or is a volume retained as asked.
        for object in &found {
            let owner = globals
                .get(&object.id)
                .filter(|r| r.stamp.as_str() == object.stamp);
            if object.retained {
                if !matches!(object.kind, "PVC" | "Secret") {
                    let _ = writeln!(
                        problems,
                        "{cluster}: a {} of {} is retained",
                        object.kind, object.id
                    );
                } else if globals.contains_key(&object.id) || !plan.may_retain(&object.id) {
                    let _ = writeln!(
                        problems,
                        "{cluster}: {}'s {} is retained, but it has a record, or its policy is \
                         Delete, or no delete without purge reached it since it was last \
                         created or purged",
                        object.id, object.kind,
                    );
                } else if object.kind == "PVC" {
                    figures.retained_volumes += 1;
                }
                continue;
            }
            if owner.is_none() {
                let _ = writeln!(
                    problems,
                    "{cluster}: {} {} (stamp {}) belongs to no record",
                    object.kind, object.id, object.stamp
                );
            } else {
                *figures.objects.entry(object.kind).or_default() += 1;
            }
        }
    }
    for (id, record) in &global {
        if !known.contains(record.cluster_id.as_str()) {
            let _ = writeln!(problems, "{id} is on an unknown cluster");
        }
    }
    if problems.is_empty() {
        Ok(figures)
    } else {
        Err(problems)
    }
}
