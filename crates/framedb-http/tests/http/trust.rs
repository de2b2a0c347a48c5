//! The trust boundary between the global service and the clusters' API servers: a fake
//! API server (a recording proxy in front of a simulated cluster) sees everything setup,
//! status and remove send it, and none of it is a token that is not that cluster's own.

use std::sync::{Arc, Mutex};

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use framedb_http::remote::ClusterDirectory;
use framedb_http::settings::GlobalSettings;
use framedb_kube_sim::{SimConfig, Simulator};
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::http_client;

/// Everything a fake API server received: request lines, headers and bodies.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<u8>>>);

impl Received {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A fake API server: it records each request whole, then passes it on to `upstream`.
async fn recording_api_server(upstream: String) -> (String, Received) {
    let received = Received::default();
    let log = received.clone();
    let client = http_client().build().unwrap();
    let app = axum::Router::new().fallback(move |request: Request<Body>| {
        let (log, client, upstream) = (log.clone(), client.clone(), upstream.clone());
        async move {
            let (parts, body) = request.into_parts();
            let body = to_bytes(body, 64 << 20).await.unwrap();
            {
                let mut log = log.0.lock().unwrap();
                log.extend_from_slice(format!("{} {}\n", parts.method, parts.uri).as_bytes());
                for (name, value) in &parts.headers {
                    log.extend_from_slice(format!("{name}: ").as_bytes());
                    log.extend_from_slice(value.as_bytes());
                    log.push(b'\n');
                }
                log.extend_from_slice(&body);
                log.push(b'\n');
            }
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let mut forward = client.request(parts.method, format!("{upstream}{path}"));
            for (name, value) in &parts.headers {
                if name != "host" && name != "content-length" {
                    forward = forward.header(name, value);
                }
            }
            let answer = forward.body(body).send().await.unwrap();
            let status = answer.status();
            let content_type = answer.headers().get("content-type").cloned();
            let bytes = answer.bytes().await.unwrap();
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            if let Some(content_type) = content_type {
                response.headers_mut().insert("content-type", content_type);
            }
            response.into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

const GLOBAL_TOKEN: &str = "global-api-t0ken-stays-home";
const OPERATOR_LOCAL_TOKEN: &str = "operator-local-t0ken-for-configured-clusters";
const KUBE_TOKEN: &str = "callers-kube-t0ken";

#[tokio::test]
async fn a_fake_api_server_receives_no_token_but_its_own_cluster_s() {
    let directory = Arc::new(ClusterDirectory::new());
    // One cluster the operator configured, with the token all such clusters share.
    directory.insert(
        "trust-configured".parse().unwrap(),
        framedb_http::remote::directory::service_url("http://trust-configured.invalid:32566")
            .unwrap(),
        framedb_http::remote::directory::LocalToken::new(OPERATOR_LOCAL_TOKEN),
    );
    let mut settings = GlobalSettings::default();
    settings.serve.token = Some(GLOBAL_TOKEN.into());
    settings.fleet.local_token = Some(OPERATOR_LOCAL_TOKEN.into());
    settings.fleet.allow_insecure_clusters = true;
    let parts = framedb_http::startup::GlobalParts {
        registry: Arc::new(framedb_core::memory::InMemoryRegistry::new()),
        clusters: framedb_http::Clusters::of(Arc::new(framedb_core::memory::InMemoryFleet::demo(
            std::time::Duration::ZERO,
        ))),
        directory: Some(directory),
    };
    let app = framedb_http::startup::global_router(&settings, parts);
    let call = |method: &str, path: &str, body: Value| {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {GLOBAL_TOKEN}"))
            .body(Body::from(body.to_string()))
            .unwrap();
        app.clone().oneshot(request)
    };

    let mut clusters = Vec::new();
    for name in ["trust-alpha", "trust-beta"] {
        let sim = Simulator::start(SimConfig::new(name).with_images(framedb_k8s::default_images()))
            .await
            .unwrap();
        let (fake, received) = recording_api_server(sim.url()).await;
        let mut kube_config = sim.kubeconfig_json();
        kube_config["clusters"][0]["cluster"]["server"] = json!(fake);
        for user in kube_config["users"].as_array_mut().unwrap() {
            user["user"] = json!({"token": KUBE_TOKEN});
        }
        let setup = json!({"kube_config": kube_config, "cluster_id": name,
                           "local_url": format!("http://{name}.invalid:32566")});
        let answer = call("POST", "/framedb-config/setup", setup).await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        let status = json!({ "kube_config": kube_config });
        let answer = call("POST", "/framedb-config/status", status)
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        let secret = kube::Api::<Secret>::namespaced(sim.client().await, "framedb-config")
            .get("framedb-config-token")
            .await
            .unwrap();
        let token = String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap();
        clusters.push((name, kube_config, received, token, sim));
    }
    // A cluster the operator configured: nothing shows that a caller's kubeconfig reaches
    // its service, so setup is refused and its API server receives nothing at all.
    let sim = Simulator::start(
        SimConfig::new("trust-configured").with_images(framedb_k8s::default_images()),
    )
    .await
    .unwrap();
    let (fake, received) = recording_api_server(sim.url()).await;
    let mut kube_config = sim.kubeconfig_json();
    kube_config["clusters"][0]["cluster"]["server"] = json!(fake);
    for (replace, refused) in [(false, StatusCode::CONFLICT), (true, StatusCode::FORBIDDEN)] {
        let setup = json!({"kube_config": kube_config, "cluster_id": "trust-configured",
                           "replace": replace});
        let answer = call("POST", "/framedb-config/setup", setup).await.unwrap();
        assert_eq!(answer.status(), refused);
    }
    assert_eq!(
        received.text(),
        "",
        "nothing reached the caller's API server"
    );

    // Removing the first sends nothing more than its own cluster's business either.
    let remove = json!({"kube_config": clusters[0].1, "cluster_id": clusters[0].0});
    let answer = call("DELETE", "/framedb-config/remove", remove)
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);

    let tokens: Vec<&str> = clusters.iter().map(|cluster| cluster.3.as_str()).collect();
    for (index, (name, _, received, own, _)) in clusters.iter().enumerate() {
        let seen = received.text();
        assert!(
            seen.contains(own),
            "{name}: the recorder saw its own token installed"
        );
        let others = tokens.iter().enumerate().filter(|(i, _)| *i != index);
        let foreign = [GLOBAL_TOKEN, OPERATOR_LOCAL_TOKEN]
            .into_iter()
            .chain(others.map(|(_, token)| *token));
        for foreign in foreign {
            assert!(
                !seen.contains(foreign),
                "{name} received a token not its own"
            );
        }
        for line in seen.lines() {
            if let Some(value) = line.strip_prefix("authorization: ") {
                assert_eq!(value, format!("Bearer {KUBE_TOKEN}"), "{name}");
            }
        }
    }
}
