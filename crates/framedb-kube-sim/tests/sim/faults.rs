//! Injected dropped connections and latency, seen from the wire: a raw HTTP/1.1 request
//! on a TCP socket shows that a dropped connection is closed without a byte of an answer,
//! and kube-rs shows what a client makes of it (a transport error, never a `Status`).
//! The two variants differ in what happened on the server: nothing, or the write.

use std::time::{Duration, Instant};

use framedb_kube_sim::{DropWhen, Injected, Simulator, Verb};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{config_map, start};

/// POSTs a ConfigMap named `name` to `default` on a fresh connection, and returns every
/// byte of the answer until the server closes it (`Connection: close`).
async fn raw_create(sim: &Simulator, name: &str) -> Vec<u8> {
    let address = sim.url().trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let body = json!({ "metadata": { "name": name }, "data": { "k": "v" } }).to_string();
    let request = format!(
        "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nhost: {address}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    // A reset instead of an orderly close is a dropped connection too: no answer either.
    let _ = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection");
    answer
}

/// Whether kube-rs failed below the API (a transport error, not an answer).
fn is_transport_error<T: std::fmt::Debug>(result: &Result<T, kube::Error>) -> bool {
    matches!(result, Err(error) if !matches!(error, kube::Error::Api(_)))
}

#[tokio::test]
async fn a_connection_dropped_before_apply_is_closed_unanswered_and_changes_nothing() {
    let (sim, client) = start().await;
    sim.faults()
        .drop_connections(Verb::Create, Some("configmaps"), DropWhen::BeforeApply, 1.0);

    let answer = raw_create(&sim, "raw-before").await;
    assert!(
        answer.is_empty(),
        "an answer was sent: {}",
        String::from_utf8_lossy(&answer)
    );
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let result = maps
        .create(
            &PostParams::default(),
            &config_map("kube-before", json!({})),
        )
        .await;
    assert!(is_transport_error(&result), "{result:?}");

    // Nothing was written; other verbs are not concerned.
    assert!(maps.get_opt("raw-before").await.unwrap().is_none());
    assert!(maps.get_opt("kube-before").await.unwrap().is_none());
    let stats = sim.requests();
    assert_eq!(stats.injected(Injected::Dropped(DropWhen::BeforeApply)), 2);
    assert_eq!(stats.faults_total(), 2);

    sim.faults().clear();
    maps.create(&PostParams::default(), &config_map("after", json!({})))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_connection_dropped_after_apply_is_closed_unanswered_but_the_write_happened() {
    let (sim, client) = start().await;
    sim.faults()
        .drop_connections(Verb::Create, Some("configmaps"), DropWhen::AfterApply, 1.0);

    let answer = raw_create(&sim, "raw-after").await;
    assert!(
        answer.is_empty(),
        "an answer was sent: {}",
        String::from_utf8_lossy(&answer)
    );
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let result = maps
        .create(&PostParams::default(), &config_map("kube-after", json!({})))
        .await;
    assert!(is_transport_error(&result), "{result:?}");

    // Both writes happened, although neither client heard of it; a retry of the create
    // now meets its own object (409 AlreadyExists), as it would on a real cluster.
    assert!(maps.get_opt("raw-after").await.unwrap().is_some());
    assert!(maps.get_opt("kube-after").await.unwrap().is_some());
    assert_eq!(
        sim.requests()
            .injected(Injected::Dropped(DropWhen::AfterApply)),
        2
    );
    sim.faults().clear();
    let again = maps
        .create(&PostParams::default(), &config_map("kube-after", json!({})))
        .await;
    assert!(
        matches!(&again, Err(kube::Error::Api(status)) if status.code == 409),
        "{again:?}"
    );
}

#[tokio::test]
async fn latency_falls_on_its_share_of_requests_only() {
    let (sim, client) = start().await;
    let slow = Duration::from_millis(150);
    sim.faults().delay(Verb::Get, None, slow, 0.5);
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    maps.create(&PostParams::default(), &config_map("timed", json!({})))
        .await
        .unwrap();
    let mut delayed = 0;
    for _ in 0..20 {
        let started = Instant::now();
        maps.get("timed").await.unwrap();
        if started.elapsed() >= slow {
            delayed += 1;
        }
    }
    // Every delayed read was counted, and the others were fast.
    let counted = sim.requests().injected(Injected::Latency);
    assert_eq!(delayed, counted, "{}", sim.requests());
    assert!((4..=16).contains(&delayed), "{delayed} of 20 delayed");
}

#[tokio::test]
async fn shares_of_several_kinds_add_up_on_one_request_stream() {
    let (sim, client) = start().await;
    sim.faults().fail(Verb::Get, None, 503, 0.25);
    sim.faults()
        .drop_connections(Verb::Get, None, DropWhen::BeforeApply, 0.25);
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    maps.create(&PostParams::default(), &config_map("mixed", json!({})))
        .await
        .unwrap();
    let (mut answered, mut refused, mut dropped) = (0, 0, 0);
    for _ in 0..200 {
        match maps.get("mixed").await {
            Ok(_) => answered += 1,
            Err(kube::Error::Api(status)) if status.code == 503 => refused += 1,
            Err(_) => dropped += 1,
        }
    }
    let stats = sim.requests();
    assert_eq!(refused, stats.injected(Injected::Error(503)));
    assert_eq!(
        dropped,
        stats.injected(Injected::Dropped(DropWhen::BeforeApply))
    );
    assert!((25..=75).contains(&refused), "{refused} refused");
    assert!((25..=75).contains(&dropped), "{dropped} dropped");
    assert!((70..=130).contains(&answered), "{answered} answered");
}
