//! The API over a real socket on port 0, as clients reach it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use framedb_core::memory::{InMemoryFleet, InMemoryRegistry};
use framedb_core::{
    ClusterDeployer, ClusterId, DeploymentSpec, FramedbId, InstanceRegistry, Result, StatusReport,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{BASE, create_body, serve};

#[tokio::test]
async fn the_api_answers_over_tcp() {
    let fleet = Arc::new(InMemoryFleet::demo(Duration::ZERO));
    let server = serve(Arc::new(InMemoryRegistry::new()), fleet.clone(), fleet).await;
    let url = server.url();
    let client = super::http_client().build().unwrap();

    let response = client
        .post(format!("{url}{BASE}"))
        .json(&create_body("tidb-001", "cluster-01", "node-a"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.json::<Value>().await.unwrap()["port"], 30900);

    let response = client
        .get(format!("{url}{BASE}/tidb-001"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap()["data"]["status"],
        "Running"
    );

    let response = client
        .post(format!("{url}{BASE}/query?limit=5"))
        .json(&json!({"metadata.team": {"$in": ["analytics", "ops"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap()["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let response = client
        .post(format!("{url}{BASE}"))
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (body["success"].clone(), body["error"].clone()),
        (json!(false), json!("malformed_json"))
    );

    let response = client
        .delete(format!("{url}{BASE}/tidb-001"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = client
        .delete(format!("{url}{BASE}/tidb-001"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

/// The record of `id` once it has a port, or as it is after two seconds.
async fn recorded_with_port(
    registry: &InMemoryRegistry,
    id: &FramedbId,
) -> framedb_core::InstanceRecord {
    let mut record = registry.get(id).await.unwrap();
    for _ in 0..100 {
        if record.port.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        record = registry.get(id).await.unwrap();
    }
    record
}

/// A cluster whose deploys take a while, as a real one's do.
struct SlowDeployer {
    inner: Arc<InMemoryFleet>,
    delay: Duration,
}

#[async_trait]
impl ClusterDeployer for SlowDeployer {
    async fn deploy(&self, spec: &DeploymentSpec) -> Result<framedb_core::Deployed> {
        tokio::time::sleep(self.delay).await;
        self.inner.deploy(spec).await
    }
    async fn undeploy(
        &self,
        cluster: &ClusterId,
        id: &FramedbId,
        stamp: &framedb_core::Stamp,
        removal: framedb_core::Removal,
    ) -> Result<bool> {
        self.inner.undeploy(cluster, id, stamp, removal).await
    }
    async fn amend(&self, spec: &DeploymentSpec) -> Result<framedb_core::StorageSize> {
        self.inner.amend(spec).await
    }
    async fn credentials(
        &self,
        cluster: &ClusterId,
        id: &FramedbId,
    ) -> Result<framedb_core::Credentials> {
        self.inner.credentials(cluster, id).await
    }
    async fn statuses(
        &self,
        cluster: &ClusterId,
        ids: &[FramedbId],
    ) -> Result<HashMap<FramedbId, StatusReport>> {
        self.inner.statuses(cluster, ids).await
    }
    async fn inventory(
        &self,
        cluster: &framedb_core::ClusterId,
    ) -> framedb_core::Result<Vec<framedb_core::InstanceRecord>> {
        self.inner.inventory(cluster).await
    }
    async fn follow(&self, cluster: &ClusterId) -> Result<framedb_core::live::StatusFeed> {
        self.inner.follow(cluster).await
    }
}

#[tokio::test]
async fn a_client_hanging_up_mid_create_does_not_cut_the_create_in_half() {
    let fleet = Arc::new(InMemoryFleet::demo(Duration::ZERO));
    let registry = Arc::new(InMemoryRegistry::new());
    let slow = Arc::new(SlowDeployer {
        inner: fleet.clone(),
        delay: Duration::from_millis(400),
    });
    let server = serve(registry.clone(), slow, fleet.clone()).await;
    let url = server.url();
    let impatient = super::http_client()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let sent = impatient
        .post(format!("{url}{BASE}"))
        .json(&create_body("tidb-001", "cluster-01", "node-a"))
        .send()
        .await;
    assert!(sent.unwrap_err().is_timeout());

    // The create goes on without the client and ends consistent: record, port, workload.
    let id = FramedbId::new("tidb-001").unwrap();
    let record = recorded_with_port(&registry, &id).await;
    assert_eq!(record.port, Some(30900));
    let cluster = ClusterId::new("cluster-01").unwrap();
    assert_eq!(fleet.workloads(&cluster).unwrap(), [id]);
}

#[tokio::test]
async fn an_api_without_a_token_is_refused_off_loopback_unless_allowed() {
    use framedb_http::settings::{GlobalSettings, ServeSettings};
    use framedb_http::{Adapters, App, Clusters, StartError};

    let fleet = Arc::new(InMemoryFleet::demo(Duration::ZERO));
    let adapters = Adapters {
        registry: Some(Arc::new(InMemoryRegistry::new())),
        clusters: Some(Clusters::of(fleet)),
        directory_store: None,
        lease: None,
    };
    let open = GlobalSettings {
        serve: ServeSettings {
            listen: "0.0.0.0:0".parse().unwrap(),
            ..ServeSettings::default()
        },
        ..GlobalSettings::default()
    };
    let refused = App::global(&open, adapters.clone()).await.err().unwrap();
    assert!(matches!(refused, StartError::Settings(_)), "{refused}");
    assert!(
        refused.to_string().contains("--allow-open-api"),
        "{refused}"
    );

    let mut tokened = open.clone();
    tokened.serve.token = Some("t0k".into());
    assert!(App::global(&tokened, adapters.clone()).await.is_ok());
    let mut allowed = open;
    allowed.serve.allow_open_api = true;
    assert!(App::global(&allowed, adapters).await.is_ok());
}

/// The global service on in-memory adapters whose deploys take `delay`, with `serve`'s
/// bounds, on a free loopback port.
async fn bounded_server(
    serve: framedb_http::settings::ServeSettings,
    delay: Duration,
) -> (framedb_http::Running, Arc<InMemoryRegistry>) {
    use framedb_http::settings::GlobalSettings;
    use framedb_http::{Adapters, App, Clusters};

    let fleet = Arc::new(InMemoryFleet::demo(Duration::ZERO));
    let registry = Arc::new(InMemoryRegistry::new());
    let slow = Arc::new(SlowDeployer {
        inner: fleet.clone(),
        delay,
    });
    let adapters = Adapters {
        registry: Some(registry.clone()),
        clusters: Some(Clusters {
            deployer: slow,
            ports: fleet,
        }),
        directory_store: None,
        lease: None,
    };
    let settings = GlobalSettings {
        serve,
        ..GlobalSettings::default()
    };
    let app = App::global(&settings, adapters).await.unwrap();
    (app.spawn(), registry)
}

#[tokio::test]
async fn a_client_that_trickles_its_headers_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let serve = framedb_http::settings::ServeSettings {
        header_timeout_secs: 1,
        ..framedb_http::settings::ServeSettings::loopback()
    };
    let (server, _) = bounded_server(serve, Duration::ZERO).await;
    let mut slow = tokio::net::TcpStream::connect(server.address())
        .await
        .unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // The last line of headers never comes: the server hangs up (with or without a 408).
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(15), slow.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection");
    assert!(closed.is_err() || !String::from_utf8_lossy(&answer).contains("200 OK"));
    // Others are still served.
    let health = super::http_client()
        .build()
        .unwrap()
        .get(format!("{}/healthz", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_request_over_its_time_is_504_and_its_create_still_completes() {
    let serve = framedb_http::settings::ServeSettings {
        request_timeout_secs: 1,
        ..framedb_http::settings::ServeSettings::loopback()
    };
    let (server, registry) = bounded_server(serve, Duration::from_millis(1500)).await;
    let response = super::http_client()
        .build()
        .unwrap()
        .post(format!("{}{BASE}", server.url()))
        .json(&create_body("tidb-001", "cluster-01", "node-a"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "timeout", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("within 1 s"),
        "{body}"
    );
    let id = FramedbId::new("tidb-001").unwrap();
    let record = recorded_with_port(&registry, &id).await;
    assert_eq!(
        record.port,
        Some(30900),
        "the create finished on its own task"
    );
}

#[tokio::test]
async fn requests_past_the_limit_are_503_at_once() {
    let serve = framedb_http::settings::ServeSettings {
        max_requests: 1,
        ..framedb_http::settings::ServeSettings::loopback()
    };
    let (server, _) = bounded_server(serve, Duration::from_millis(800)).await;
    let client = super::http_client().build().unwrap();
    let url = format!("{}{BASE}", server.url());
    let first = {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move {
            client
                .post(url)
                .json(&create_body("tidb-001", "cluster-01", "node-a"))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    // Wait until the first create holds the only slot (its record exists).
    let mut refused = None;
    for _ in 0..100 {
        let response = client.get(format!("{url}/tidb-001")).send().await.unwrap();
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            refused = Some(response.json::<Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = refused.expect("a second request while the first runs is refused");
    assert_eq!(refused["error"], "overloaded", "{refused}");
    assert_eq!(first.await.unwrap(), StatusCode::CREATED);
    let after = client.get(format!("{url}/tidb-001")).send().await.unwrap();
    assert_eq!(after.status(), StatusCode::OK, "the slot is free again");
}

#[tokio::test]
async fn a_certificate_without_its_key_is_refused_rather_than_served_in_clear() {
    use framedb_http::settings::{GlobalSettings, ServeSettings};
    use framedb_http::{Adapters, App, StartError};

    let settings = GlobalSettings {
        serve: ServeSettings {
            tls_cert: Some("cert.pem".into()),
            ..ServeSettings::loopback()
        },
        ..GlobalSettings::default()
    };
    let fleet = Arc::new(InMemoryFleet::demo(Duration::ZERO));
    let adapters = Adapters {
        registry: Some(Arc::new(InMemoryRegistry::new())),
        clusters: Some(framedb_http::Clusters::of(fleet)),
        directory_store: None,
        lease: None,
    };
    let refused = App::global(&settings, adapters).await.err().unwrap();
    assert!(matches!(refused, StartError::Settings(_)), "{refused}");
    assert!(refused.to_string().contains("--tls-key"), "{refused}");
}
