//! `/framedb-config/*` against a simulated cluster, with the caller's kubeconfig: setup,
//! status and remove, and the kubeconfig checks — a refused kubeconfig is 400 and no
//! kubeconfig reaches a log line.

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use framedb_kube_sim::{SimConfig, Simulator};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolume, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde_json::{Value, json};

use super::{CapturedLogs, TestApp, assert_failure};

/// Calls a config-service endpoint with `kube_config` as the whole body.
async fn on_cluster(
    app: &TestApp,
    method: &str,
    path: &str,
    kube_config: &Value,
) -> (StatusCode, Value) {
    app.send(method, path, Some(json!({ "kube_config": kube_config })))
        .await
}

const SECRET: &str = "tok-e2b1c9-never-log-me";

/// Checks that no config service was installed on `sim`.
async fn assert_nothing_installed(sim: &Simulator) {
    let namespace = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(sim.client().await)
        .get_opt("framedb-config")
        .await
        .unwrap();
    assert!(namespace.is_none(), "nothing was installed");
}

/// The global API on in-memory instances, with `directory` for setup to record into and
/// `settings`; `insecure` lets it call the simulated clusters, on loopback over http.
fn global_app(
    directory: Option<Arc<framedb_http::remote::ClusterDirectory>>,
    mut settings: framedb_http::settings::GlobalSettings,
    insecure: bool,
) -> axum::Router {
    use framedb_core::memory::{InMemoryFleet, InMemoryRegistry};
    use framedb_http::Clusters;
    use framedb_http::startup::{GlobalParts, global_router};

    let parts = GlobalParts {
        registry: Arc::new(InMemoryRegistry::new()),
        clusters: Clusters::of(Arc::new(InMemoryFleet::demo(std::time::Duration::ZERO))),
        directory,
    };
    settings.fleet.allow_insecure_clusters = insecure;
    global_router(&settings, parts)
}

/// A local service that records the Authorization header of every call.
async fn recording() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let log = log.clone();
        async move {
            let header = headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            log.lock().unwrap().push(header);
            axum::Json(json!({"success": true, "data": {}}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// The simulator's kubeconfig with a recognisable token, as a caller would send it.
fn kubeconfig_of(sim: &Simulator) -> Value {
    let mut config = sim.kubeconfig_json();
    for user in config["users"].as_array_mut().unwrap() {
        user["user"] = json!({"token": SECRET});
    }
    config
}

/// Simulated seconds per real second on these tests' clusters: a pod's 30-second grace
/// period, and so a removal's namespace, takes half a second.
const TIME_SCALE: f64 = 60.0;

/// A simulated cluster named `name` whose registry holds what FrameDB deploys.
fn sim_config(name: &str) -> SimConfig {
    SimConfig::new(name).with_images(framedb_k8s::default_images())
}

/// The status report, once `check` holds of it (within 10 s).
async fn status_until(app: &TestApp, kube_config: &Value, check: impl Fn(&Value) -> bool) -> Value {
    let mut report = Value::Null;
    for _ in 0..400 {
        let (_, body) = on_cluster(app, "POST", "/framedb-config/status", kube_config).await;
        report = body["data"].clone();
        if check(&report) {
            return report;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the status never read as expected: {report}");
}

#[tokio::test]
async fn setup_status_and_remove_work_and_are_idempotent() {
    let logs = CapturedLogs::default();
    let _guard = logs.install();
    let sim = Simulator::start(sim_config("target").with_time_scale(TIME_SCALE))
        .await
        .unwrap();
    let app = TestApp::new();
    let kube_config = kubeconfig_of(&sim);

    let (status, body) = on_cluster(&app, "POST", "/framedb-config/status", &kube_config).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["namespace"]["exists"], false);
    assert_eq!(body["data"]["ready"], false);

    for _ in 0..2 {
        let (status, body) = app
            .send(
                "POST",
                "/framedb-config/setup",
                Some(json!({"kube_config": kube_config, "storage_size": "2Gi"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["success"], true);
    }

    let mut report = Value::Null;
    for _ in 0..40 {
        let (_, body) = on_cluster(&app, "POST", "/framedb-config/status", &kube_config).await;
        report = body["data"].clone();
        if report["ready"] == true {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(report["ready"], true, "{report}");
    assert_eq!(report["namespace"]["name"], "framedb-config");
    let names = |list: &Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .filter(|c| c["exists"] == true)
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&report["deployments"]), ["framedb-config"]);
    assert_eq!(names(&report["stateful_sets"]), ["mongodb"]);
    assert_eq!(
        names(&report["services"]),
        ["mongodb", "framedb-local-config", "framedb-config-service"]
    );
    assert_eq!(report["services"][2]["detail"], "NodePort 8080:32566");
    assert_eq!(report["persistent_volume_claim"]["detail"], "Bound");
    // One pod per component; the second setup's new token rolls the config service's pod,
    // and the one it replaces may still be terminating: it shows so, and is not ready.
    let pods = report["pods"].as_array().unwrap();
    let live: Vec<&Value> = pods
        .iter()
        .filter(|p| p["phase"] != "Terminating")
        .collect();
    assert_eq!(live.len(), 2, "{report}");
    assert!(
        pods.iter()
            .filter(|p| p["phase"] == "Terminating")
            .all(|p| p["ready"] == false && p["component"] == "framedb-config"),
        "{report}"
    );
    // MongoDB's password is in its Secret only: not in the status (nor, below, the logs).
    let kube = sim.client().await;
    let password = kube::Api::<Secret>::namespaced(kube.clone(), "framedb-config")
        .get("framedb-config-mongodb")
        .await
        .unwrap()
        .data
        .unwrap()["password"]
        .0
        .clone();
    let password = String::from_utf8(password).unwrap();
    assert!(!report.to_string().contains(&password), "{report}");
    // The local service's identity and its rights: it writes only in the instances'
    // namespace, and cluster-wide only reads.
    let role = kube::Api::<ClusterRole>::all(kube.clone())
        .get("framedb-config")
        .await
        .unwrap();
    let read = ["get", "list", "watch"];
    for rule in role.rules.unwrap() {
        assert!(
            rule.verbs.iter().all(|v| read.contains(&v.as_str())),
            "{rule:?}"
        );
        let resources = rule.resources.unwrap_or_default();
        assert!(
            resources
                .iter()
                .all(|r| r == "services" || r == "nodes" || r == "storageclasses"),
            "{resources:?}"
        );
    }
    let writes = kube::Api::<Role>::namespaced(kube.clone(), "framedb-storage")
        .get("framedb-config")
        .await
        .unwrap();
    assert!(writes.rules.unwrap().iter().any(|r| {
        r.resources
            .as_deref()
            .unwrap_or_default()
            .contains(&"statefulsets".to_owned())
            && r.verbs.contains(&"patch".to_owned())
    }));
    kube::Api::<RoleBinding>::namespaced(kube.clone(), "framedb-storage")
        .get("framedb-config")
        .await
        .unwrap();
    kube::Api::<ClusterRoleBinding>::all(kube.clone())
        .get("framedb-config")
        .await
        .unwrap();
    kube::Api::<ServiceAccount>::namespaced(kube.clone(), "framedb-config")
        .get("framedb-config")
        .await
        .unwrap();

    for _ in 0..2 {
        let (status, body) =
            on_cluster(&app, "DELETE", "/framedb-config/remove", &kube_config).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // The namespace terminates while its pods do; the status says so.
    let (_, body) = on_cluster(&app, "POST", "/framedb-config/status", &kube_config).await;
    let namespace = &body["data"]["namespace"];
    assert!(
        namespace["exists"] == false || namespace["detail"] == "Terminating",
        "{body}"
    );
    assert_eq!(body["data"]["ready"], false);
    status_until(&app, &kube_config, |r| r["namespace"]["exists"] == false).await;
    let gone = kube::Api::<ClusterRole>::all(kube.clone())
        .get_opt("framedb-config")
        .await
        .unwrap();
    assert!(gone.is_none());
    let gone = kube::Api::<Role>::namespaced(kube.clone(), "framedb-storage")
        .get_opt("framedb-config")
        .await
        .unwrap();
    assert!(gone.is_none());
    // The instances' namespace, which holds their volumes, stays.
    let instances = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(kube.clone())
        .get_opt("framedb-storage")
        .await
        .unwrap();
    assert!(instances.is_some());
    // MongoDB's claim went with the namespace, and its provisioned volume with the claim
    // (the default class's reclaim policy is Delete).
    let volumes = kube::Api::<PersistentVolume>::all(kube);
    let mut left = Vec::new();
    for _ in 0..400 {
        left = volumes.list(&Default::default()).await.unwrap().items;
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(left.is_empty(), "{left:?}");

    let logged = logs.text();
    assert!(
        logged.contains("config service set up"),
        "the test saw the logs"
    );
    assert!(
        !logged.contains(SECRET),
        "the kubeconfig's token reached a log line"
    );
    assert!(
        !logged.contains(&password),
        "MongoDB's password reached a log line"
    );
}

#[tokio::test]
async fn unsafe_or_missing_kubeconfigs_are_400_and_never_logged() {
    let logs = CapturedLogs::default();
    let _guard = logs.install();
    let sim = Simulator::start(sim_config("target")).await.unwrap();
    let app = TestApp::new();
    let exec = json!({"apiVersion": "client.authentication.k8s.io/v1", "command": "/bin/sh", "args": ["-c", SECRET]});
    for (pointer, value, says) in [
        ("/users/0/user/exec", exec, "exec"),
        (
            "/users/0/user/auth-provider",
            json!({"name": "oidc", "config": {"id-token": SECRET}}),
            "auth-provider",
        ),
        (
            "/users/0/user/client-certificate",
            json!(format!("/etc/{SECRET}.pem")),
            "file",
        ),
        (
            "/users/0/user/tokenFile",
            json!(format!("/run/{SECRET}")),
            "token file",
        ),
        (
            "/clusters/0/cluster/certificate-authority",
            json!("/etc/ca.pem"),
            "certificate-authority",
        ),
    ] {
        let mut config = kubeconfig_of(&sim);
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        config.pointer_mut(parent).unwrap()[key] = value;
        for (method, path) in [
            ("POST", "/framedb-config/setup"),
            ("POST", "/framedb-config/status"),
            ("DELETE", "/framedb-config/remove"),
        ] {
            let (status, body) = app
                .send(method, path, Some(json!({"kube_config": config})))
                .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {pointer}: {body}");
            let message = assert_failure(&body, "invalid_input");
            assert!(message.contains(says), "{message}");
            assert!(!message.contains(SECRET), "{message}");
        }
    }
    let (status, body) = app
        .send(
            "POST",
            "/framedb-config/setup",
            Some(json!({"storage_size": "2Gi"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(assert_failure(&body, "invalid_input").contains("kube_config"));
    let (status, body) = app
        .send(
            "POST",
            "/framedb-config/setup",
            Some(json!({"kube_config": kubeconfig_of(&sim), "storage_size": "1MB"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(assert_failure(&body, "invalid_input").contains("storage_size"));
    let (status, body) = app
        .send(
            "POST",
            "/framedb-config/setup",
            Some(json!({"kube_config": format!("token: {SECRET}: [")})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(!body.to_string().contains(SECRET));
    // Nothing was installed by any of the refused calls.
    let (_, body) = on_cluster(&app, "POST", "/framedb-config/status", &kubeconfig_of(&sim)).await;
    assert_eq!(body["data"]["namespace"]["exists"], false);
    assert!(
        !logs.text().contains(SECRET),
        "a kubeconfig reached a log line"
    );
}

#[tokio::test]
async fn an_unreachable_cluster_is_503() {
    let sim = Simulator::start(sim_config("gone")).await.unwrap();
    let config = kubeconfig_of(&sim);
    sim.shutdown().await;
    let app = TestApp::new();
    let (status, body) = app
        .send(
            "POST",
            "/framedb-config/status",
            Some(json!({"kube_config": config})),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_failure(&body, "unavailable");
}

#[tokio::test]
async fn setup_with_a_cluster_id_records_it_and_installs_the_local_token_as_a_secret() {
    use std::sync::Arc;

    use framedb_http::remote::ClusterDirectory;
    use framedb_http::settings::GlobalSettings;

    let sim = Simulator::start(sim_config("target")).await.unwrap();
    let directory = Arc::new(ClusterDirectory::new());
    let app = global_app(Some(directory.clone()), GlobalSettings::default(), true);
    let body = json!({"kube_config": kubeconfig_of(&sim), "cluster_id": "edge-7", "local_url": "http://10.1.2.3:32566"}).to_string();
    let (status, answer) =
        super::send_raw(&app, "POST", "/framedb-config/setup", Some(&body), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        directory.url(&"edge-7".parse().unwrap()),
        Some(framedb_http::remote::directory::service_url("http://10.1.2.3:32566").unwrap())
    );

    let kube = sim.client().await;
    let secret = kube::Api::<Secret>::namespaced(kube.clone(), "framedb-config")
        .get("framedb-config-token")
        .await
        .unwrap();
    assert!(secret.data.unwrap().contains_key("token"));
    let server = kube::Api::<Deployment>::namespaced(kube, "framedb-config")
        .get("framedb-config")
        .await
        .unwrap();
    let env = server.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap();
    let token = env.iter().find(|e| e.name == "FRAMEDB_API_TOKEN").unwrap();
    assert!(
        token.value.is_none(),
        "the token is not in the Deployment's spec"
    );
    assert_eq!(
        token
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap()
            .name,
        "framedb-config-token"
    );
    assert!(
        env.iter()
            .any(|e| e.name == "FRAMEDB_CLUSTER_ID" && e.value.as_deref() == Some("edge-7"))
    );
}

#[tokio::test]
async fn each_cluster_s_local_service_gets_a_token_of_its_own_and_sees_no_other() {
    use axum::body::Body;
    use axum::http::Request;
    use framedb_http::remote::ClusterDirectory;
    use framedb_http::settings::GlobalSettings;
    use tower::ServiceExt;

    const GLOBAL: &str = "global-t0k-never-leaves";
    let directory = Arc::new(ClusterDirectory::new());
    let mut settings = GlobalSettings::default();
    settings.serve.token = Some(GLOBAL.into());
    let app = global_app(Some(directory.clone()), settings, true);
    let send = |method: &str, path: &str, body: Value| {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {GLOBAL}"))
            .body(Body::from(body.to_string()))
            .unwrap();
        app.clone().oneshot(request)
    };

    let mut tokens = Vec::new();
    let mut fakes = Vec::new();
    for name in ["alpha", "beta"] {
        let sim = Simulator::start(sim_config(name)).await.unwrap();
        let (url, seen) = recording().await;
        let body =
            json!({"kube_config": kubeconfig_of(&sim), "cluster_id": name, "local_url": url});
        let response = send("POST", "/framedb-config/setup", body).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let secret = kube::Api::<Secret>::namespaced(sim.client().await, "framedb-config")
            .get("framedb-config-token")
            .await
            .unwrap();
        let token = String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap();
        assert!(token.len() >= 43, "256 bits or more");
        tokens.push(token);
        fakes.push((name, seen, sim));
    }
    assert_ne!(tokens[0], tokens[1], "each cluster has its own token");
    assert!(tokens.iter().all(|token| token != GLOBAL));

    // The global service's client calls each cluster's service with that cluster's token.
    let remote = framedb_http::remote::RemoteClusters::new(
        directory.clone(),
        framedb_http::remote::RemoteTimeouts::default(),
        &[],
    )
    .unwrap();
    for ((name, seen, _), token) in fakes.iter().zip(&tokens) {
        let cluster = name.parse().unwrap();
        let id = framedb_core::FramedbId::new("probe").unwrap();
        framedb_core::ClusterDeployer::statuses(&remote, &cluster, &[id])
            .await
            .unwrap();
        let seen = seen.lock().unwrap().clone();
        assert!(!seen.is_empty());
        let expected = format!("Bearer {token}");
        assert!(
            seen.iter().all(|header| *header == expected),
            "{name} saw {seen:?}"
        );
    }
}

#[tokio::test]
async fn setup_refuses_api_servers_on_private_addresses_unless_allowed() {
    use framedb_http::settings::GlobalSettings;

    // The simulator listens on loopback, over plain http: a caller could point setup at
    // the global service's own host this way.
    let sim = Simulator::start(sim_config("probe")).await.unwrap();
    let app = global_app(None, GlobalSettings::default(), false);
    for (method, path) in [
        ("POST", "/framedb-config/setup"),
        ("POST", "/framedb-config/status"),
        ("DELETE", "/framedb-config/remove"),
    ] {
        let body = json!({"kube_config": kubeconfig_of(&sim)}).to_string();
        let (status, answer) = super::send_raw(&app, method, path, Some(&body), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
        let message = assert_failure(&answer, "invalid_input");
        assert!(message.contains("--allow-insecure-clusters"), "{message}");
        assert!(!message.contains("127.0.0.1"), "{message}");
    }
    assert_nothing_installed(&sim).await;
}

#[tokio::test]
async fn setup_never_re_points_a_known_cluster_at_a_callers_address() {
    use framedb_http::remote::ClusterDirectory;
    use framedb_http::remote::directory::service_url;
    use framedb_http::settings::GlobalSettings;

    let sim = Simulator::start(sim_config("target")).await.unwrap();
    let directory = Arc::new(ClusterDirectory::new());
    let genuine = service_url("http://10.1.2.3:32566").unwrap();
    directory.insert("edge-7".parse().unwrap(), genuine.clone(), None);
    let app = global_app(Some(directory.clone()), GlobalSettings::default(), true);
    let hijack = json!({"kube_config": kubeconfig_of(&sim), "cluster_id": "edge-7", "local_url": "http://10.6.6.6:32566"}).to_string();
    let (status, answer) =
        super::send_raw(&app, "POST", "/framedb-config/setup", Some(&hijack), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(assert_failure(&answer, "cluster_conflict").contains("edge-7"));
    assert_eq!(directory.url(&"edge-7".parse().unwrap()), Some(genuine));
    assert_nothing_installed(&sim).await;
}

#[tokio::test]
async fn remove_keeps_the_config_service_of_a_cluster_with_instances_unless_forced() {
    let app = TestApp::new();
    // The simulated cluster's kubeconfig names it cluster-01, where the instance lives.
    let sim = Simulator::start(sim_config("cluster-01")).await.unwrap();
    let kube_config = kubeconfig_of(&sim);
    let (status, _) = on_cluster(&app, "POST", "/framedb-config/setup", &kube_config).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.create("tidb-001", "cluster-01", "node-a").await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, answer) = on_cluster(&app, "DELETE", "/framedb-config/remove", &kube_config).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_failure(&answer, "cluster_in_use");
    assert_eq!(answer["details"]["instances"], 1);
    let kube = sim.client().await;
    let still = kube::Api::<Deployment>::namespaced(kube.clone(), "framedb-config")
        .get_opt("framedb-config")
        .await
        .unwrap();
    assert!(still.is_some(), "the config service stays");

    let forced = json!({"kube_config": kube_config, "force": true});
    let (status, answer) = app
        .send("DELETE", "/framedb-config/remove", Some(forced))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let gone = kube::Api::<Deployment>::namespaced(kube, "framedb-config")
        .get_opt("framedb-config")
        .await
        .unwrap();
    assert!(gone.is_none());
}

/// The token in the config service's Secret on `sim`.
async fn installed_token(sim: &Simulator) -> String {
    let secret = kube::Api::<Secret>::namespaced(sim.client().await, "framedb-config")
        .get("framedb-config-token")
        .await
        .unwrap();
    String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap()
}

/// Finding 1 and 2 as an attacker tries them: another caller sets up a cluster the
/// directory knows, with its own local_url, its own API server, or its own certificate
/// authority. Each is 409 `cluster_conflict` saying what differs; the directory still
/// points at the first address with the first token, the cluster's Secret is unchanged,
/// and the attacker's API server receives nothing. Only `"replace": true` re-points, with
/// a new token that the old address never receives.
#[tokio::test]
async fn setup_of_a_known_cluster_as_another_is_409_and_only_replace_re_points() {
    use framedb_core::{ClusterDeployer, ClusterId, FramedbId};
    use framedb_http::remote::{ClusterDirectory, RemoteClusters, RemoteTimeouts};
    use framedb_http::settings::GlobalSettings;

    let sim = Simulator::start(sim_config("genuine")).await.unwrap();
    let impostor = Simulator::start(sim_config("impostor")).await.unwrap();
    let (genuine_url, genuine_seen) = recording().await;
    let (hijack_url, hijack_seen) = recording().await;
    let directory = Arc::new(ClusterDirectory::new());
    let mut settings = GlobalSettings::default();
    settings.fleet.allow_setup_replace = true;
    let app = global_app(Some(directory.clone()), settings, true);
    let locked = global_app(
        Some(Arc::new(ClusterDirectory::new())),
        GlobalSettings::default(),
        true,
    );
    let cluster: ClusterId = "edge-9".parse().unwrap();
    let setup = |body: Value| {
        let app = app.clone();
        async move {
            let body = body.to_string();
            super::send_raw(&app, "POST", "/framedb-config/setup", Some(&body), None).await
        }
    };

    let (status, answer) = setup(json!({"kube_config": kubeconfig_of(&sim),
        "cluster_id": "edge-9", "local_url": genuine_url}))
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let first_token = installed_token(&sim).await;
    assert_eq!(directory.token(&cluster).unwrap().expose(), first_token);

    let mut with_ca = kubeconfig_of(&sim);
    with_ca["clusters"][0]["cluster"]["certificate-authority-data"] = json!("YWJj");
    let attempts = [
        (kubeconfig_of(&sim), Some(&hijack_url), "local_url"),
        (kubeconfig_of(&impostor), None, "api_server"),
        (kubeconfig_of(&impostor), Some(&genuine_url), "api_server"),
        (with_ca, None, "certificate_authority"),
    ];
    for (kube_config, local_url, differs) in attempts {
        let mut body = json!({"kube_config": kube_config, "cluster_id": "edge-9"});
        if let Some(url) = local_url {
            body["local_url"] = json!(url);
        }
        let (status, answer) = setup(body).await;
        assert_eq!(status, StatusCode::CONFLICT, "{differs}: {answer}");
        assert!(assert_failure(&answer, "cluster_conflict").contains("edge-9"));
        assert_eq!(answer["details"]["cluster_id"], "edge-9");
        assert_eq!(answer["details"]["differs"], differs, "{answer}");
        assert!(!answer.to_string().contains(&first_token));
    }
    let genuine = framedb_http::remote::directory::service_url(&genuine_url).unwrap();
    assert_eq!(directory.url(&cluster), Some(genuine));
    assert_eq!(directory.token(&cluster).unwrap().expose(), first_token);
    assert_eq!(
        installed_token(&sim).await,
        first_token,
        "the Secret is unchanged"
    );
    assert_nothing_installed(&impostor).await;

    // The same setup again is idempotent: same address, same token.
    let (status, _) =
        setup(json!({"kube_config": kubeconfig_of(&sim), "cluster_id": "edge-9"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(installed_token(&sim).await, first_token);

    // Unless the operator allows it, no caller may re-point a cluster.
    let body = json!({"kube_config": kubeconfig_of(&sim), "cluster_id": "edge-9",
                      "local_url": hijack_url, "replace": true})
    .to_string();
    let (status, answer) =
        super::send_raw(&locked, "POST", "/framedb-config/setup", Some(&body), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(assert_failure(&answer, "forbidden").contains("--allow-setup-replace"));

    // The documented override re-points, with a new token; the service's pod template
    // names the token's digest, so the new token rolls the pod that read the old one.
    let digest = || async {
        let server = kube::Api::<Deployment>::namespaced(sim.client().await, "framedb-config")
            .get("framedb-config")
            .await
            .unwrap();
        server
            .spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap()["framedb.io/token-sha256"]
            .clone()
    };
    let first_digest = digest().await;
    assert!(!first_digest.contains(&first_token));
    let (status, answer) = setup(json!({"kube_config": kubeconfig_of(&sim),
        "cluster_id": "edge-9", "local_url": hijack_url, "replace": true}))
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let second_token = installed_token(&sim).await;
    assert_ne!(second_token, first_token);
    assert_ne!(digest().await, first_digest, "a new token rolls the pod");
    assert_eq!(directory.token(&cluster).unwrap().expose(), second_token);
    let remote = RemoteClusters::new(directory.clone(), RemoteTimeouts::default(), &[]).unwrap();
    let probe = FramedbId::new("probe").unwrap();
    remote.statuses(&cluster, &[probe]).await.unwrap();
    let seen = hijack_seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|h| *h == format!("Bearer {second_token}")),
        "{seen:?}"
    );
    let old = genuine_seen.lock().unwrap().clone();
    assert!(
        !old.iter().any(|h| h.contains(&second_token)),
        "the old address never gets the new token"
    );
}

/// A setup whose install fails leaves no claim behind (the cluster can be set up
/// elsewhere), and only the recorded cluster's own kubeconfig removes its entry: another
/// API server naming its id is 409, and the entry stays.
#[tokio::test]
async fn a_failed_setup_leaves_no_entry_and_remove_checks_the_identity() {
    use framedb_http::remote::ClusterDirectory;
    use framedb_http::settings::GlobalSettings;

    let gone = Simulator::start(sim_config("gone")).await.unwrap();
    let unreachable = kubeconfig_of(&gone);
    gone.shutdown().await;
    let directory = Arc::new(ClusterDirectory::new());
    let app = global_app(Some(directory.clone()), GlobalSettings::default(), true);
    let send = |method: &'static str, path: &'static str, body: Value| {
        let app = app.clone();
        async move { super::send_raw(&app, method, path, Some(&body.to_string()), None).await }
    };
    let cluster = "edge-5".parse().unwrap();
    let (status, answer) = send("POST", "/framedb-config/setup",
        json!({"kube_config": unreachable, "cluster_id": "edge-5", "local_url": "http://10.0.0.5:32566"}))
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert!(!directory.contains(&cluster));
    assert!(directory.stored(&cluster).await.unwrap().is_none());

    let sim = Simulator::start(sim_config("edge-5")).await.unwrap();
    let impostor = Simulator::start(sim_config("edge-5")).await.unwrap();
    let (status, answer) = send("POST", "/framedb-config/setup",
        json!({"kube_config": kubeconfig_of(&sim), "cluster_id": "edge-5", "local_url": "http://10.0.0.6:32566"}))
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let (status, answer) = send(
        "DELETE",
        "/framedb-config/remove",
        json!({"kube_config": kubeconfig_of(&impostor), "cluster_id": "edge-5", "force": true}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["details"]["differs"], "api_server", "{answer}");
    assert!(directory.contains(&cluster));

    let (status, answer) = send(
        "DELETE",
        "/framedb-config/remove",
        json!({"kube_config": kubeconfig_of(&sim)}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(!directory.contains(&cluster));
    assert!(directory.stored(&cluster).await.unwrap().is_none());
}

#[tokio::test]
async fn a_setup_right_after_a_remove_waits_for_the_removal_to_finish() {
    let sim = Simulator::start(sim_config("target").with_time_scale(TIME_SCALE))
        .await
        .unwrap();
    let app = TestApp::new();
    let kube_config = kubeconfig_of(&sim);
    let setup = json!({ "kube_config": kube_config, "storage_size": "1Gi" });
    let (status, body) = app
        .send("POST", "/framedb-config/setup", Some(setup.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    status_until(&app, &kube_config, |r| r["ready"] == true).await;

    let (status, body) = on_cluster(&app, "DELETE", "/framedb-config/remove", &kube_config).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let namespaces = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(sim.client().await);
    let going = namespaces.get("framedb-config").await.unwrap();
    assert!(
        going.metadata.deletion_timestamp.is_some(),
        "the removal is still finishing"
    );

    // At once: the setup waits for the namespace (and MongoDB's volume) to go, then makes
    // them anew, instead of failing in a namespace that refuses new objects.
    let (status, body) = app.send("POST", "/framedb-config/setup", Some(setup)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let fresh = namespaces.get("framedb-config").await.unwrap();
    assert!(fresh.metadata.deletion_timestamp.is_none());
    assert_ne!(fresh.metadata.uid, going.metadata.uid);
    let report = status_until(&app, &kube_config, |r| r["ready"] == true).await;
    assert_eq!(
        report["persistent_volume_claim"]["detail"], "Bound",
        "{report}"
    );
}

/// The local service setup installs lays instances out as the global does (issue 14,
/// item 9), and `/framedb-config/status` reports the layout it was installed with, as its
/// Deployment says.
#[tokio::test]
async fn setup_passes_the_global_s_layout_on_and_status_reports_it() {
    use framedb_http::settings::GlobalSettings;

    let sim = Simulator::start(sim_config("laid-out")).await.unwrap();
    let mut settings = GlobalSettings::default();
    settings.layout.tidb_version = "v8.5.0".into();
    settings.layout.node_label = "example.com/host".into();
    settings.layout.storage_class = Some("fast".into());
    settings.layout.instance_resources = framedb_k8s::Profile::Medium;
    settings.layout.image_pull_secrets = vec!["regcred".into()];
    settings.kube.status_stuck_after_secs = 300;
    settings.layout.helper_image = "registry.example.com/tools/busybox:1.36".into();
    settings.fleet.server_image = "registry.example.com/framedb/framedb-server:dev".into();
    let app = global_app(None, settings, true);
    let kube_config = kubeconfig_of(&sim);
    let body = json!({"kube_config": kube_config, "storage_size": "2Gi"}).to_string();
    let (status, answer) =
        super::send_raw(&app, "POST", "/framedb-config/setup", Some(&body), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let body = json!({"kube_config": kube_config}).to_string();
    let (status, answer) =
        super::send_raw(&app, "POST", "/framedb-config/status", Some(&body), None).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["data"]["settings"],
        json!({
            "FRAMEDB_HELPER_IMAGE": "registry.example.com/tools/busybox:1.36",
            "FRAMEDB_IMAGE_PREFIX": "docker.io/pingcap",
            "FRAMEDB_IMAGE_PULL_SECRETS": "regcred",
            "FRAMEDB_INSTANCE_RESOURCES": "medium",
            "FRAMEDB_KUBE_STATUS_RESTART_LIMIT": "3",
            "FRAMEDB_KUBE_STATUS_STUCK_AFTER_SECS": "300",
            "FRAMEDB_NAMESPACE": "framedb-storage",
            "FRAMEDB_NODE_LABEL": "example.com/host",
            "FRAMEDB_STORAGE_CLASS": "fast",
            "FRAMEDB_TIDB_VERSION": "v8.5.0",
        }),
        "{answer}"
    );
    // The images are the flags' (fully qualified by default), pulled with the secret.
    let client = sim.client().await;
    let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::namespaced(client.clone(), "framedb-config");
    let stateful_sets: kube::Api<k8s_openapi::api::apps::v1::StatefulSet> =
        kube::Api::namespaced(client, "framedb-config");
    let local = deployments.get("framedb-config").await.unwrap().spec;
    let mongodb = stateful_sets.get("mongodb").await.unwrap().spec;
    for (template, image) in [
        (
            local.unwrap().template,
            "registry.example.com/framedb/framedb-server:dev",
        ),
        (
            mongodb.unwrap().template,
            framedb_k8s::config_service::DEFAULT_MONGO_IMAGE,
        ),
    ] {
        let pod = template.spec.unwrap();
        assert_eq!(pod.containers[0].image.as_deref(), Some(image));
        let secrets = pod.image_pull_secrets.unwrap();
        assert_eq!(secrets[0].name, "regcred");
    }
}
