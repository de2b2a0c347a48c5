//! The API on a MongoDB registry: records outlive the server, racing creates stay
//! exclusive, an outage is a prompt 503 that heals by itself, and refused operators never
//! reach the database.

use std::time::{Duration, Instant};

use framedb_http::Adapters;
use k8s_openapi::api::apps::v1::StatefulSet;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::proxy::{Proxy, first_host};
use super::{BASE, Clusters, Server, call, mongo_settings, mongo_uri};

/// A database name of this test's own, so tests run in parallel.
fn database(test: &str) -> String {
    format!("framedb_e2e_{test}_{}", std::process::id())
}

async fn drop_database(uri: &str, database: &str) {
    let client = mongodb::Client::with_uri_str(uri).await.unwrap();
    client.database(database).drop().await.unwrap();
}

fn create_body(id: &str, cluster: &str, node: &str) -> Value {
    json!({
        "framedb_id": id, "cluster_id": cluster, "node_id": node, "storage_size": "2Gi",
        "metadata": {"team": "durable", "tags": ["a", id], "owner": {"name": id, "n": 3}}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_outlive_the_server_that_wrote_them() {
    let Some(uri) = mongo_uri() else { return };
    let db = database("restart");
    let clusters = Clusters::demo(&db, Duration::ZERO).await;
    let client = super::http_client().build().unwrap();

    let first = Server::global(
        &clusters.direct(mongo_settings(&uri, &db, Duration::from_secs(5))),
        Adapters::default(),
    )
    .await;
    for (id, cluster, node) in [
        ("keep-1", "cluster-01", "node-a"),
        ("keep-2", "cluster-01", "node-b"),
        ("keep-3", "cluster-02", "node-a"),
    ] {
        let (status, body) = call(
            &client,
            Method::POST,
            first.at(BASE),
            Some(create_body(id, cluster, node)),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let query = json!({"metadata.team": "durable"});
    let (_, before) = call(
        &client,
        Method::POST,
        first.at(&format!("{BASE}/query")),
        Some(query.clone()),
    )
    .await;
    assert_eq!(before["data"].as_array().unwrap().len(), 3);
    first.stop().await;

    // A new server, with a new client and registry, on the same database and clusters.
    let second = Server::global(
        &clusters.direct(mongo_settings(&uri, &db, Duration::from_secs(5))),
        Adapters::default(),
    )
    .await;
    let (_, after) = call(
        &client,
        Method::POST,
        second.at(&format!("{BASE}/query")),
        Some(query),
    )
    .await;
    assert_eq!(after, before, "the records read back unchanged");
    let (status, one) = call(
        &client,
        Method::GET,
        second.at(&format!("{BASE}/keep-2")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["data"], before["data"][1]);
    second.stop().await;
    drop_database(&uri, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_racing_creates_of_a_hundred_ids_make_a_hundred_records() {
    let Some(uri) = mongo_uri() else { return };
    let db = database("race");
    let clusters = Clusters::demo(&db, Duration::ZERO).await;
    let server = Server::global(
        &clusters.direct(mongo_settings(&uri, &db, Duration::from_secs(10))),
        Adapters::default(),
    )
    .await;
    let client = super::http_client().build().unwrap();

    let requests: Vec<_> = (0..200)
        .map(|n| {
            let id = n % 100;
            let cluster = if id < 50 { "cluster-01" } else { "cluster-02" };
            let body = create_body(&format!("race-{id:03}"), cluster, "node-a");
            let (client, url) = (client.clone(), server.at(BASE));
            tokio::spawn(async move { call(&client, Method::POST, url, Some(body)).await })
        })
        .collect();
    let (mut created, mut conflicts, mut other) = (0, 0, Vec::new());
    for request in requests {
        match request.await.unwrap() {
            (StatusCode::CREATED, _) => created += 1,
            (StatusCode::CONFLICT, body) => {
                assert_eq!(body["error"], "already_exists", "{body}");
                conflicts += 1;
            }
            (status, body) => other.push(format!("{status} {body}")),
        }
    }
    assert!(other.is_empty(), "no other answers: {other:?}");
    assert_eq!((created, conflicts), (100, 100));
    let (_, all) = call(
        &client,
        Method::POST,
        server.at(&format!("{BASE}/query")),
        Some(json!({})),
    )
    .await;
    assert_eq!(all["data"].as_array().unwrap().len(), 100);
    for cluster in clusters.each() {
        let ports: std::collections::BTreeSet<_> = all["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["cluster_id"] == cluster.0.as_str())
            .map(|i| i["port"].as_u64().unwrap())
            .collect();
        assert_eq!(ports.len(), 50, "distinct ports on {}", cluster.0);
    }
    server.stop().await;
    drop_database(&uri, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_mongodb_is_down_the_api_answers_503_and_recovers_by_itself() {
    let Some(uri) = mongo_uri() else { return };
    let db = database("outage");
    let proxy = Proxy::start(first_host(&uri)).await;
    let timeout = Duration::from_secs(1);
    let clusters = Clusters::demo(&db, Duration::ZERO).await;
    let server = Server::global(
        &clusters.direct(mongo_settings(&proxy.uri(&uri), &db, timeout)),
        Adapters::default(),
    )
    .await;
    let client = super::http_client().build().unwrap();
    let (status, _) = call(
        &client,
        Method::POST,
        server.at(BASE),
        Some(create_body("before", "cluster-01", "node-a")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    proxy.down();
    for (method, path, body) in [
        (Method::GET, format!("{BASE}/before"), None),
        (
            Method::POST,
            BASE.to_owned(),
            Some(create_body("during", "cluster-01", "node-a")),
        ),
        (Method::POST, format!("{BASE}/query"), Some(json!({}))),
        (Method::DELETE, format!("{BASE}/before"), None),
    ] {
        let started = Instant::now();
        let (status, body) = call(&client, method.clone(), server.at(&path), body).await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}: {body}"
        );
        assert_eq!(body["error"], "unavailable");
        assert!(
            body["message"].as_str().unwrap().contains("registry"),
            "{body}"
        );
        // Bounded by the configured timeout, not by a driver default of half a minute.
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{method} {path} took {:?}",
            started.elapsed()
        );
    }
    // The refused create touched no cluster.
    let sim_client = clusters.fleet.clusters()[0].client().await;
    let during =
        kube::Api::<k8s_openapi::api::core::v1::Service>::namespaced(sim_client, "framedb-storage")
            .get_opt("during")
            .await
            .unwrap();
    assert!(during.is_none());

    proxy.up();
    let mut recovered = None;
    for _ in 0..100 {
        let (status, body) = call(
            &client,
            Method::GET,
            server.at(&format!("{BASE}/before")),
            None,
        )
        .await;
        if status == StatusCode::OK {
            recovered = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = recovered.expect("the API recovers once MongoDB is back");
    assert_eq!(body["data"]["port"], 30900);
    let (status, _) = call(
        &client,
        Method::POST,
        server.at(BASE),
        Some(create_body("after", "cluster-01", "node-a")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    server.stop().await;
    drop_database(&uri, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_operators_never_reach_mongodb() {
    let Some(uri) = mongo_uri() else { return };
    let db = database("operators");
    let proxy = Proxy::start(first_host(&uri)).await;
    let clusters = Clusters::demo(&db, Duration::ZERO).await;
    let server = Server::global(
        &clusters.direct(mongo_settings(
            &proxy.uri(&uri),
            &db,
            Duration::from_secs(5),
        )),
        Adapters::default(),
    )
    .await;
    let client = super::http_client().build().unwrap();
    let query = server.at(&format!("{BASE}/query"));

    // The proxy sees what does arrive: a filter that is allowed.
    let (status, _) = call(
        &client,
        Method::POST,
        query.clone(),
        Some(json!({"metadata.visible_marker_7f3": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        proxy.sent().contains("metadata.visible_marker_7f3"),
        "the proxy sees filters arrive"
    );

    for filter in [
        json!({"$where": "sleep(1000) || true"}),
        json!({"$function": {"body": "function() { return true }", "args": [], "lang": "js"}}),
        json!({"$expr": {"$gt": ["$port", 0]}}),
        json!({"port": {"$accumulator": {"init": "function() {}"}}}),
        json!({"$and": [{"cluster_id": "cluster-01"}, {"$where": "true"}]}),
        json!({"metadata.x": {"$not": {"$where": "true"}}}),
    ] {
        let (status, body) = call(&client, Method::POST, query.clone(), Some(filter.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{filter}: {body}");
    }
    let sent = proxy.sent();
    for operator in ["$where", "$function", "$expr", "$accumulator"] {
        assert!(!sent.contains(operator), "{operator} reached MongoDB");
    }
    server.stop().await;
    drop_database(&uri, &db).await;
}

/// The SecantusDB server that scripts/mongo.sh installs, for tests that crash their own.
fn secantusd() -> Option<std::path::PathBuf> {
    match std::env::var_os("FRAMEDB_SECANTUSD") {
        Some(path) if !path.is_empty() => Some(path.into()),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("FRAMEDB_SECANTUSD is not set; under CI scripts/test.sh sets it")
        }
        _ => {
            eprintln!("note: FRAMEDB_SECANTUSD is not set; skipping (scripts/test.sh sets it)");
            None
        }
    }
}

/// A SecantusDB of this test's own, on disk, that the test can kill and start again.
struct OwnMongo {
    binary: std::path::PathBuf,
    dir: std::path::PathBuf,
    port: u16,
    child: Option<tokio::process::Child>,
    /// Whether it requires authentication (`--auth`) from its next start.
    auth: bool,
}

impl OwnMongo {
    async fn start(binary: std::path::PathBuf, test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("framedb-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut mongo = Self {
            binary,
            dir,
            port,
            child: None,
            auth: false,
        };
        mongo.run().await;
        mongo
    }

    fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}", self.port)
    }

    /// Starts the server on its directory and waits until it accepts connections.
    async fn run(&mut self) {
        let child = tokio::process::Command::new(&self.binary)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--storage-path")
            .arg(&self.dir)
            .args(["--log-level", "WARNING"])
            .args(self.auth.then_some("--auth"))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "SecantusDB did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, waiting for it to exit: what it keeps only in memory until it stops (the
    /// users it was given) is saved.
    async fn stop(&mut self) {
        let mut child = self.child.take().unwrap();
        let pid = child.id().unwrap().to_string();
        let sent = tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(sent.success());
        child.wait().await.unwrap();
    }

    /// SIGKILL: no chance to flush anything.
    async fn crash(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().await.unwrap();
    }
}

impl Drop for OwnMongo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_create_answered_201_survives_a_crash_of_mongodb() {
    let Some(binary) = secantusd() else { return };
    let mut mongo = OwnMongo::start(binary, "crash").await;
    let db = "framedb_crash";
    let clusters = Clusters::demo("crash", Duration::ZERO).await;
    let settings = clusters.direct(mongo_settings(&mongo.uri(), db, Duration::from_secs(2)));
    let server = Server::global(&settings, Adapters::default()).await;
    let client = super::http_client().build().unwrap();

    // Creates stream in from sixteen callers; each remembers the ids answered 201.
    let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut callers = Vec::new();
    for caller in 0..16 {
        let (client, url) = (client.clone(), server.at(BASE));
        let (answered, stop) = (answered.clone(), stop.clone());
        callers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let id = format!("crash-{caller}-{n}");
                let (cluster, node) = [
                    ("cluster-01", "node-a"),
                    ("cluster-01", "node-b"),
                    ("cluster-02", "node-a"),
                    ("cluster-02", "node-b"),
                ][n % 4];
                n += 1;
                let body = json!({"framedb_id": id, "cluster_id": cluster, "node_id": node,
                                  "storage_size": "1Gi"});
                let (status, _) = call(&client, Method::POST, url.clone(), Some(body)).await;
                if status == StatusCode::CREATED {
                    answered.lock().unwrap().push(id);
                }
            }
        }));
    }
    let count = || answered.lock().unwrap().len();
    let wait_for = |at_least: usize| async move {
        let deadline = Instant::now() + Duration::from_secs(120);
        while count() < at_least {
            assert!(
                Instant::now() < deadline,
                "only {} creates answered",
                count()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    // Two crashes in the middle of the stream: without journaled writes, one of them
    // loses an answered create more often than not (seen: 4 of 80).
    let mut before_crash = Vec::new();
    for _ in 0..2 {
        wait_for(count() + 40).await;
        mongo.crash().await;
        before_crash.push(count());
        mongo.run().await;
    }
    // The stream goes on once MongoDB is back.
    wait_for(count() + 20).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for caller in callers {
        caller.await.unwrap();
    }
    server.stop().await;

    let records = mongodb::Client::with_uri_str(mongo.uri())
        .await
        .unwrap()
        .database(db)
        .collection::<mongodb::bson::Document>(framedb_mongo::DEFAULT_COLLECTION);
    let answered = answered.lock().unwrap().clone();
    let mut lost = Vec::new();
    for id in &answered {
        let found = records
            .find_one(mongodb::bson::doc! {"framedb_id": id})
            .await
            .unwrap();
        if found.is_none_or(|record| record.get_i32("port").is_err()) {
            lost.push(id.clone());
        }
    }
    println!(
        "{} creates answered 201 (crashes after {before_crash:?}); lost or without a port: {lost:?}",
        answered.len()
    );
    assert!(lost.is_empty(), "answered creates were lost: {lost:?}");

    // Creates that the crashes cut short may have left a record without a port, or
    // objects without a record. A server whose passes take a create for dead after a
    // second settles both: soon no workload runs without a record with its port, and no
    // record waits without one.
    let mut settings = settings;
    settings.serve.reconcile_interval_secs = 1;
    settings.serve.create_deadline_secs = 1;
    let server = Server::global(&settings, Adapters::default()).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut waiting, mut unrecorded);
    let mut first_look = true;
    loop {
        let mut ported = std::collections::BTreeSet::new();
        waiting = Vec::new();
        let mut cursor = records.find(mongodb::bson::doc! {}).await.unwrap();
        while cursor.advance().await.unwrap() {
            let record = cursor.deserialize_current().unwrap();
            let id = record.get_str("framedb_id").unwrap().to_owned();
            if record.get_i32("port").is_ok() {
                ported.insert(id);
            } else {
                waiting.push(id);
            }
        }
        unrecorded = Vec::new();
        let mut missing = ported.clone();
        for (_, sim) in clusters.each() {
            let running: Vec<StatefulSet> =
                kube::Api::namespaced(sim.client().await, "framedb-storage")
                    .list(&Default::default())
                    .await
                    .unwrap()
                    .items;
            for name in running.into_iter().filter_map(|set| set.metadata.name) {
                if !missing.remove(&name) {
                    unrecorded.push(name);
                }
            }
        }
        if first_look {
            first_look = false;
            println!(
                "left by the crashes: {} records without a port, {} workloads without a record",
                waiting.len(),
                unrecorded.len()
            );
        }
        if waiting.is_empty() && unrecorded.is_empty() && missing.is_empty() {
            println!(
                "after reconcile: {} records, each with a port and its workload",
                ported.len()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not settled: records without a port {waiting:?}, workloads without a record \
             {unrecorded:?}, records without a workload {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

/// The token in the config service's Secret on `sim`.
async fn installed_token(sim: &framedb_kube_sim::Simulator) -> String {
    use k8s_openapi::api::core::v1::Secret;
    let secret = kube::Api::<Secret>::namespaced(sim.client().await, "framedb-config")
        .get("framedb-config-token")
        .await
        .unwrap();
    String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap()
}

/// The cluster directory on MongoDB, as replicas and restarts see it: what setup records
/// on one global is known to a restarted one (whose create reaches the recorded URL, and
/// the local service there accepts the recorded token), of two replicas setting up one
/// cluster at different addresses at once exactly one wins (the other is 409), and a
/// remove is forgotten by a restart too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_directory_outlives_the_global_and_is_shared_by_replicas() {
    use framedb_http::settings::{GlobalSettings, LocalSettings, ServeSettings};

    let Some(uri) = mongo_uri() else { return };
    let db = database("directory");
    let settings = || {
        let mut settings = GlobalSettings {
            serve: ServeSettings::loopback(),
            mongo: mongo_settings(&uri, &db, Duration::from_secs(5)),
            ..GlobalSettings::default()
        };
        // A cluster named by flag, so that no embedded default starts.
        settings.fleet.known_clusters = vec!["decoy".parse().unwrap()];
        settings.fleet.allow_insecure_clusters = true;
        settings
    };
    let client = super::http_client().build().unwrap();
    let clusters = Clusters::demo(&db, Duration::ZERO).await;
    let mut each = clusters.each();
    let (edge, sim) = each.next().unwrap();
    let (raced_id, raced) = each.next().unwrap();
    // The address the local service will serve on, known before setup records it.
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();

    let first = Server::global(&settings(), Adapters::default()).await;
    let setup = json!({"kube_config": sim.kubeconfig_json(), "cluster_id": edge,
        "local_url": format!("http://{address}")});
    let (status, body) = call(
        &client,
        Method::POST,
        first.at("framedb-config/setup"),
        Some(setup),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    first.stop().await;
    // The local service setup installed, as the cluster runs it: with the Secret's token.
    let local = LocalSettings {
        serve: ServeSettings {
            listen: address,
            token: Some(installed_token(sim).await.into()),
            ..ServeSettings::loopback()
        },
        ..LocalSettings::new(edge.clone(), Some(clusters.kubeconfig(&edge)))
    };
    let local = Server::local(&local, Adapters::default()).await;

    // A restarted global on the same database calls the recorded URL with the recorded
    // token, which the local service accepts.
    let restarted = Server::global(&settings(), Adapters::default()).await;
    let create = create_body("dir-1", edge.as_str(), "node-a");
    let (status, body) = call(&client, Method::POST, restarted.at(BASE), Some(create)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Two replicas set up one new cluster at different addresses at once: one wins.
    let other = Server::global(&settings(), Adapters::default()).await;
    let race = |server: &Server, url: &str| {
        let body = json!({"kube_config": raced.kubeconfig_json(), "cluster_id": raced_id,
            "local_url": url});
        call(
            &client,
            Method::POST,
            server.at("framedb-config/setup"),
            Some(body),
        )
    };
    let (a, b) = tokio::join!(
        race(&restarted, "http://10.9.0.1:32566"),
        race(&other, "http://10.9.0.2:32566")
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{a:?} {b:?}"
    );
    let loser = if a.0 == StatusCode::CONFLICT {
        &a.1
    } else {
        &b.1
    };
    assert_eq!(loser["error"], "cluster_conflict");
    assert_eq!(loser["details"]["differs"], "local_url");
    let store = framedb_mongo::MongoDirectoryStore::new(
        &mongodb::Client::with_uri_str(&uri).await.unwrap(),
        &framedb_mongo::MongoConfig::new(&uri).database(&db),
    );
    let recorded = framedb_core::ClusterDirectoryStore::get(&store, &raced_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(recorded.token.expose(), installed_token(raced).await);

    // Remove forgets the cluster in the store: a restarted global no longer knows it.
    let remove = json!({"kube_config": sim.kubeconfig_json(), "cluster_id": edge, "force": true});
    let (status, body) = call(
        &client,
        Method::DELETE,
        other.at("framedb-config/remove"),
        Some(remove),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    restarted.stop().await;
    other.stop().await;
    let last = Server::global(&settings(), Adapters::default()).await;
    let create = create_body("dir-2", edge.as_str(), "node-a");
    let (status, body) = call(&client, Method::POST, last.at(BASE), Some(create)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "cluster_not_found");
    last.stop().await;
    local.stop().await;
    drop_database(&uri, &db).await;
}

/// Two global replicas on one MongoDB, as deploy/ runs them: both serve creates and reads
/// (an instance created through either is seen through both), while reconcile passes run
/// on one at a time (the lease's holder), and the other takes over when it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_global_replica_reconciles_at_a_time_and_hands_over_when_it_stops() {
    use mongodb::bson::{Document, doc};

    let Some(uri) = mongo_uri() else { return };
    let db = database("lease");
    let clusters = Clusters::demo(&db, Duration::ZERO).await;
    let settings = || {
        let mut settings = clusters.direct(mongo_settings(&uri, &db, Duration::from_secs(5)));
        settings.serve.reconcile_interval_secs = 1;
        settings
    };
    let leases = mongodb::Client::with_uri_str(&uri)
        .await
        .unwrap()
        .database(&db)
        .collection::<Document>(framedb_mongo::LEASE_COLLECTION);
    // The lease document: its holder and when its term ends.
    let lease = || async {
        let found = leases.find_one(doc! {}).await.unwrap()?;
        let holder = found.get_str("holder").unwrap().to_owned();
        Some((
            holder,
            found.get_datetime("expires_at").unwrap().timestamp_millis(),
        ))
    };
    let deadline = || Instant::now() + Duration::from_secs(20);

    let first = Server::global(&settings(), Adapters::default()).await;
    let until = deadline();
    let (a, mut term) = loop {
        if let Some(held) = lease().await {
            break held;
        }
        assert!(
            Instant::now() < until,
            "the first replica never took the lease"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let second = Server::global(&settings(), Adapters::default()).await;

    // Both replicas serve: a create through each, each instance read through both.
    let client = super::http_client().build().unwrap();
    for (server, id, cluster) in [
        (&first, "via-first", "cluster-01"),
        (&second, "via-second", "cluster-02"),
    ] {
        let create = create_body(id, cluster, "node-a");
        let (status, body) = call(&client, Method::POST, server.at(BASE), Some(create)).await;
        assert_eq!(status, StatusCode::CREATED, "{id}: {body}");
    }
    for server in [&first, &second] {
        for (id, cluster) in [("via-first", "cluster-01"), ("via-second", "cluster-02")] {
            let path = format!("{BASE}/{id}");
            let (status, body) = call(&client, Method::GET, server.at(&path), None).await;
            assert_eq!(status, StatusCode::OK, "{id}: {body}");
            assert_eq!(body["data"]["cluster_id"], cluster);
        }
        let query = format!("{BASE}/query");
        let (_, body) = call(&client, Method::POST, server.at(&query), Some(json!({}))).await;
        assert_eq!(super::ids(&body), ["via-first", "via-second"]);
    }

    // Through three renewals, while the second replica tries at each of its passes too,
    // the first keeps it, and only the first runs passes.
    for _ in 0..3 {
        let until = deadline();
        term = loop {
            let (holder, ends) = lease().await.expect("the lease is held throughout");
            assert_eq!(holder, a, "a second holder while the first renews");
            if ends > term {
                break ends;
            }
            assert!(Instant::now() < until, "the holder stopped renewing");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
    }
    // Each renewal came after a finished pass of the holder's; the other ran none.
    assert!(first.reconciles.passes() >= 3, "the holder reconciles");
    assert_eq!(
        second.reconciles.passes(),
        0,
        "a replica without the lease reconciles"
    );
    // The first stops and gives the lease up; the second takes it at its next pass, and
    // reconciles from then on.
    first.stop().await;
    let until = deadline();
    loop {
        if lease().await.is_some_and(|(holder, _)| holder != a) && second.reconciles.passes() > 0 {
            break;
        }
        assert!(Instant::now() < until, "the second replica never took over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let path = format!("{BASE}/via-first");
    let (status, _) = call(&client, Method::GET, second.at(&path), None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the remaining replica serves every instance"
    );
    second.stop().await;
    drop_database(&uri, &db).await;
}

/// `/readyz` follows MongoDB: 200 while the registry answers, 503 `not_ready` while it is
/// down (an answer that names neither its address nor its password), and 200 again once
/// it is back; without the API's token, which the kubelet's probes do not send. `/healthz`
/// (liveness) stays 200 throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_mongodb_and_names_no_secret() {
    use mongodb::bson::doc;

    let Some(binary) = secantusd() else { return };
    let mut mongo = OwnMongo::start(binary, "readyz").await;
    let password = "r3adyz-pa55-9f1c";
    mongodb::Client::with_uri_str(mongo.uri())
        .await
        .unwrap()
        .database("admin")
        .run_command(doc! {
            "createUser": "framedb", "pwd": password,
            "roles": [{"role": "root", "db": "admin"}],
        })
        .await
        .unwrap();
    mongo.stop().await;
    mongo.auth = true;
    mongo.run().await;
    let uri = format!(
        "mongodb://framedb:{password}@127.0.0.1:{}/?authSource=admin",
        mongo.port
    );
    let clusters = Clusters::demo("readyz", Duration::ZERO).await;
    let mut settings = clusters.direct(mongo_settings(
        &uri,
        "framedb_readyz",
        Duration::from_secs(1),
    ));
    settings.serve.token = Some("readyz-api-t0ken".into());
    let server = Server::global(&settings, Adapters::default()).await;
    let client = super::http_client().build().unwrap();
    let probe = |path: &'static str| call(&client, Method::GET, server.at(path), None);

    let (status, body) = probe("readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"success": true, "status": "ready"}));

    mongo.crash().await;
    // An answer is kept a second (the registry is pinged at most once a second).
    let until = Instant::now() + Duration::from_secs(10);
    let (status, body) = loop {
        let (status, body) = probe("readyz").await;
        if status != StatusCode::OK || Instant::now() > until {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["success"], false);
    assert_eq!(body["error"], "not_ready");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("registry"), "{message}");
    let answer = body.to_string();
    for secret in [password, "mongodb://", "framedb:", &mongo.port.to_string()] {
        assert!(
            !answer.contains(secret),
            "the answer names {secret}: {answer}"
        );
    }
    let (status, _) = probe("healthz").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "liveness does not depend on MongoDB"
    );

    mongo.run().await;
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = probe("readyz").await;
        if status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < until, "never ready again: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}
