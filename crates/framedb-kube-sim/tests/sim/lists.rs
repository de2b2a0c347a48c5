//! Lists and watches as kube-apiserver 1.33 serves them: opaque, gapped resourceVersions;
//! `resourceVersion` / `resourceVersionMatch` semantics; pages with `limit` and
//! `continue`, consistent at the first page's version and 410 `Expired` once compacted;
//! watches that are 410 past compaction, bookmarks at the server's discretion, and
//! `timeoutSeconds`. Driven by real kubectl (`--chunk-size`, `--raw`) wherever it can
//! express the request, and by kube-rs (and kube-runtime's watcher) otherwise.

use std::time::Duration;

use framedb_kube_sim::{SimConfig, Verb};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch_kind};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::kubectl::Kubectl;
use super::{api_error, config_map, create_namespace, eventually, http_get, start_with};

/// Creates config maps `NAME-0` … in `ns`, labelled `set=NAME`; returns their versions.
async fn config_maps(client: &Client, ns: &str, name: &str, count: usize) -> Vec<u64> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let mut versions = Vec::new();
    for i in 0..count {
        let made = maps
            .create(
                &PostParams::default(),
                &config_map(&format!("{name}-{i}"), json!({ "set": name })),
            )
            .await
            .unwrap();
        versions.push(made.resource_version().unwrap().parse().unwrap());
    }
    versions
}

/// Writes `count` times to one config map of `ns` (not in any test's set), so that the
/// history moves on.
async fn churn(client: &Client, ns: &str, count: usize) {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    for i in 0..count {
        let name = format!("churn-{i}");
        maps.create(&PostParams::default(), &config_map(&name, json!({})))
            .await
            .unwrap();
    }
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

async fn raw_json(kubectl: &Kubectl, path: &str) -> Value {
    serde_json::from_str(&kubectl.ok(&["get", "--raw", path]).await).unwrap()
}

#[tokio::test]
async fn resource_versions_are_opaque_gapped_and_differ_per_simulator() {
    let (sim, client) = start_with(SimConfig::new("sim-rv-one")).await;
    let (_other, other_client) = start_with(SimConfig::new("sim-rv-two")).await;
    create_namespace(&client, "rv").await;
    create_namespace(&other_client, "rv").await;
    let versions = config_maps(&client, "rv", "rv", 20).await;
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    assert!(
        versions.windows(2).any(|w| w[1] - w[0] > 1),
        "writes leave gaps: {versions:?}"
    );
    assert!(versions[0] > 1_000_000, "not a small counter: {versions:?}");
    let other = config_maps(&other_client, "rv", "rv", 1).await;
    assert_ne!(other[0], versions[0], "each simulator starts elsewhere");
    // A list's resourceVersion is the cluster's, at least that of its newest item.
    let Some(kubectl) = Kubectl::for_sim(&sim, "rv-opaque") else {
        return;
    };
    let list = raw_json(&kubectl, "/api/v1/namespaces/rv/configmaps").await;
    let listed: u64 = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(listed >= *versions.last().unwrap());
}

#[tokio::test]
async fn kubectl_pages_a_list_and_a_continued_list_is_consistent_at_its_first_page() {
    let (sim, client) = start_with(SimConfig::new("sim-pages")).await;
    create_namespace(&client, "pages").await;
    config_maps(&client, "pages", "page", 5).await;
    let Some(kubectl) = Kubectl::for_sim(&sim, "pages") else {
        return;
    };
    // kubectl reads in chunks of --chunk-size, following continue tokens.
    let ran = kubectl
        .run(&[
            "get",
            "configmaps",
            "-n",
            "pages",
            "-l",
            "set=page",
            "--chunk-size=2",
            "-o",
            "name",
            "-v=6",
        ])
        .await;
    assert!(ran.success, "{}", ran.stderr);
    assert_eq!(
        ran.stdout.lines().collect::<Vec<_>>(),
        (0..5)
            .map(|i| format!("configmap/page-{i}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(ran.stderr.matches("limit=2").count(), 3, "{}", ran.stderr);
    assert_eq!(ran.stderr.matches("continue=").count(), 2, "{}", ran.stderr);

    // A first page: a continue token (opaque base64) and how many items follow.
    let first = raw_json(&kubectl, "/api/v1/namespaces/pages/configmaps?limit=2").await;
    assert_eq!(names(&first), ["page-0", "page-1"]);
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    assert!(!token.contains('/'), "opaque: {token}");
    let remaining = first["metadata"]["remainingItemCount"].as_i64().unwrap();
    let everything = raw_json(&kubectl, "/api/v1/namespaces/pages/configmaps").await;
    assert_eq!(
        remaining as usize,
        names(&everything).len() - 2,
        "remainingItemCount counts what follows"
    );
    // Changes after the first page do not show in the pages after it.
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "pages");
    maps.delete("page-3", &DeleteParams::default())
        .await
        .unwrap();
    maps.create(
        &PostParams::default(),
        &config_map("page-9", json!({ "set": "page" })),
    )
    .await
    .unwrap();
    let rest = raw_json(
        &kubectl,
        &format!("/api/v1/namespaces/pages/configmaps?limit=10&continue={token}"),
    )
    .await;
    assert_eq!(
        rest["metadata"]["resourceVersion"], first["metadata"]["resourceVersion"],
        "served at the first page's version"
    );
    let rest_names = names(&rest);
    assert!(rest_names.contains(&"page-3".to_string()), "{rest_names:?}");
    assert!(
        !rest_names.contains(&"page-9".to_string()),
        "{rest_names:?}"
    );
    assert!(rest["metadata"]["continue"].is_null());
    // With a selector there is no remainingItemCount (the server cannot count it).
    let selected = raw_json(
        &kubectl,
        "/api/v1/namespaces/pages/configmaps?limit=1&labelSelector=set%3Dpage",
    )
    .await;
    assert!(selected["metadata"]["continue"].is_string());
    assert!(selected["metadata"]["remainingItemCount"].is_null());
    // A token that is not one is a 400.
    let refused = kubectl
        .refused(&[
            "get",
            "--raw",
            "/api/v1/namespaces/pages/configmaps?limit=1&continue=pages/page-1",
        ])
        .await;
    assert!(refused.contains("invalid continue token"), "{refused}");
}

#[tokio::test]
async fn a_continue_token_past_compaction_is_expired_with_a_token_to_go_on() {
    let (sim, client) = start_with(SimConfig::new("sim-expired-continue").with_history(5)).await;
    create_namespace(&client, "expiry").await;
    config_maps(&client, "expiry", "exp", 4).await;
    let Some(kubectl) = Kubectl::for_sim(&sim, "expired-continue") else {
        return;
    };
    let first = raw_json(
        &kubectl,
        "/api/v1/namespaces/expiry/configmaps?limit=2&labelSelector=set%3Dexp",
    )
    .await;
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    // More writes than the history keeps: the first page's version is compacted.
    churn(&client, "expiry", 6).await;
    let path = format!(
        "/api/v1/namespaces/expiry/configmaps?limit=2&labelSelector=set%3Dexp&continue={token}"
    );
    let refused = kubectl.refused(&["get", "--raw", &path]).await;
    assert!(
        refused.contains(
            "The provided continue parameter is too old to display a consistent list result."
        ),
        "{refused}"
    );
    let status = api_error(client.request::<Value>(http_get(&path)).await);
    assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
    assert_eq!(
        status.message,
        "The provided continue parameter is too old to display a consistent list result. You \
         can start a new list without the continue parameter, or use the continue token in \
         this response to retrieve the remainder of the results. Continuing with the provided \
         token results in an inconsistent list - objects that were created, modified, or \
         deleted between the time the first chunk was returned and now may show up in the \
         list."
    );
    // The Status's token goes on at the latest version, after the same key.
    let fresh = status.metadata.unwrap().continue_.unwrap();
    let rest = raw_json(
        &kubectl,
        &format!("/api/v1/namespaces/expiry/configmaps?labelSelector=set%3Dexp&continue={fresh}"),
    )
    .await;
    assert_eq!(names(&rest), ["exp-2", "exp-3"]);
    assert_ne!(
        rest["metadata"]["resourceVersion"],
        first["metadata"]["resourceVersion"]
    );
    // A paged list that restarts (as client-go's pager does on 410) reads everything.
    let ran = kubectl
        .ok(&[
            "get",
            "configmaps",
            "-n",
            "expiry",
            "-l",
            "set=exp",
            "--chunk-size=1",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(ran.lines().count(), 4);
}

#[tokio::test]
async fn list_resource_version_semantics_and_validation() {
    let (sim, client) = start_with(SimConfig::new("sim-list-rv").with_history(8)).await;
    create_namespace(&client, "rvm").await;
    let versions = config_maps(&client, "rvm", "m", 3).await;
    let Some(kubectl) = Kubectl::for_sim(&sim, "list-rv") else {
        return;
    };
    let base = "/api/v1/namespaces/rvm/configmaps";
    // Exact: the state at that version, even after later writes.
    let exact = raw_json(
        &kubectl,
        &format!(
            "{base}?resourceVersion={}&resourceVersionMatch=Exact",
            versions[1]
        ),
    )
    .await;
    assert_eq!(names(&exact), ["m-0", "m-1"]);
    assert_eq!(
        exact["metadata"]["resourceVersion"],
        versions[1].to_string()
    );
    // NotOlderThan: at least that fresh (here, the latest).
    let newer = raw_json(
        &kubectl,
        &format!(
            "{base}?resourceVersion={}&resourceVersionMatch=NotOlderThan",
            versions[0]
        ),
    )
    .await;
    assert_eq!(names(&newer), ["m-0", "m-1", "m-2"]);
    // resourceVersion=0, "any": served whole by the watch cache, limit or not.
    let any = raw_json(&kubectl, &format!("{base}?resourceVersion=0&limit=1")).await;
    assert_eq!(names(&any).len(), 3);
    assert!(any["metadata"]["continue"].is_null());
    // A version the server has not reached: 504, and a compacted one: 410.
    let ahead = versions[2] + 1_000_000;
    let status = api_error(
        client
            .request::<Value>(http_get(&format!("{base}?resourceVersion={ahead}")))
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (504, "Timeout"));
    assert!(
        status
            .message
            .starts_with(&format!("Too large resource version: {ahead}, current: ")),
        "{}",
        status.message
    );
    churn(&client, "rvm", 10).await;
    let compacted = format!(
        "{base}?resourceVersion={}&resourceVersionMatch=Exact",
        versions[0]
    );
    let status = api_error(client.request::<Value>(http_get(&compacted)).await);
    assert_eq!(
        (status.code, status.reason.as_str(), status.message.as_str()),
        (
            410,
            "Expired",
            "The resourceVersion for the provided list is too old."
        )
    );
    // ValidateListOptions' 422s, verbatim.
    for (query, message) in [
        (
            "resourceVersionMatch=Exact",
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: \
             resourceVersionMatch is forbidden unless resourceVersion is provided",
        ),
        (
            "resourceVersion=0&resourceVersionMatch=Exact",
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: \
             resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
        ),
        (
            "resourceVersion=1&resourceVersionMatch=Newest",
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Unsupported \
             value: \"Newest\": supported values: \"Exact\", \"NotOlderThan\", \"\"",
        ),
    ] {
        let refused = kubectl
            .refused(&["get", "--raw", &format!("{base}?{query}")])
            .await;
        // kubectl words the failure its own way around the field errors.
        let detail = message.split_once("is invalid: ").unwrap().1;
        assert!(refused.contains(detail), "{query}: {refused}");
        let status = api_error(
            client
                .request::<Value>(http_get(&format!("{base}?{query}")))
                .await,
        );
        assert_eq!((status.code, status.message.as_str()), (422, message));
    }
}

async fn sim_version(client: &Client) -> String {
    let maps: Api<ConfigMap> = Api::all(client.clone());
    maps.list(&ListParams::default().limit(1))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap()
}

#[tokio::test]
async fn a_watch_from_a_compacted_version_gets_410_expired() {
    let (sim, client) = start_with(SimConfig::new("sim-watch-gone").with_history(4)).await;
    create_namespace(&client, "gone").await;
    let from = sim_version(&client).await;
    churn(&client, "gone", 6).await;
    let Some(kubectl) = Kubectl::for_sim(&sim, "watch-gone") else {
        return;
    };
    // The answer is a 200 stream whose one event is the ERROR, as the watch cache sends it.
    let out = kubectl
        .ok(&[
            "get",
            "--raw",
            &format!("/api/v1/namespaces/gone/configmaps?watch=true&resourceVersion={from}"),
        ])
        .await;
    let event: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(event["type"], "ERROR");
    assert_eq!(event["object"]["code"], 410);
    assert_eq!(event["object"]["reason"], "Expired");
    let message = event["object"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("too old resource version: {from} (")),
        "{message}"
    );
}

#[tokio::test]
async fn kube_runtime_s_watcher_relists_after_a_410() {
    let (sim, client) = start_with(SimConfig::new("sim-relist").with_history(4)).await;
    create_namespace(&client, "relist").await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "relist");
    let config = watcher::Config::default().labels("set=relist").timeout(1);
    let mut events = watch_kind(maps.clone(), config).default_backoff().boxed();
    let mut inits = 0;
    let mut seen_late = false;
    let mut failing = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !(inits >= 2 && seen_late) {
        let next = tokio::time::timeout_at(deadline, events.next())
            .await
            .expect("the watcher relists in time")
            .expect("the watcher goes on");
        match next {
            Ok(Event::InitDone) if inits == 0 => {
                inits = 1;
                // Watches fail from now on, while the history moves past the watcher's
                // version and an object of its selector comes.
                sim.faults().fail(Verb::Watch, Some("configmaps"), 503, 1.0);
                failing = true;
            }
            Ok(Event::InitDone) => inits += 1,
            Ok(Event::InitApply(cm)) if inits >= 1 && cm.name_any() == "late" => {
                seen_late = true;
            }
            Ok(_) => {}
            Err(_) if failing => {
                failing = false;
                maps.create(
                    &PostParams::default(),
                    &config_map("late", json!({ "set": "relist" })),
                )
                .await
                .unwrap();
                churn(&client, "relist", 6).await;
                sim.faults().clear();
            }
            Err(_) => {}
        }
    }
}

#[tokio::test]
async fn bookmarks_come_at_the_server_s_discretion_and_timeouts_end_watches() {
    // A real server bookmarks about once a minute: a 2-second watch gets only the one
    // sent as its timeout runs out.
    let (sim, client) = start_with(SimConfig::new("sim-bookmarks")).await;
    create_namespace(&client, "marks").await;
    let Some(kubectl) = Kubectl::for_sim(&sim, "bookmarks") else {
        return;
    };
    let watch = |query: &str| {
        format!("/api/v1/namespaces/marks/configmaps?watch=true&timeoutSeconds=2&{query}")
    };
    let started = std::time::Instant::now();
    let out = kubectl
        .ok(&[
            "get",
            "--raw",
            &watch(&format!(
                "allowWatchBookmarks=true&resourceVersion={}",
                sim_version(&client).await
            )),
        ])
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the stream ended"
    );
    let kinds: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["type"].clone())
        .collect();
    assert_eq!(kinds, [json!("BOOKMARK")]);
    // Without allowWatchBookmarks, none.
    let out = kubectl
        .ok(&["get", "--raw", &watch("resourceVersion=0")])
        .await;
    assert!(!out.contains("BOOKMARK"), "{out}");
    // With a shorter interval (the simulator's option), they come while the watch is open.
    let (sim, client) = start_with(
        SimConfig::new("sim-bookmarks-often").with_bookmark_interval(Duration::from_millis(300)),
    )
    .await;
    create_namespace(&client, "marks").await;
    let kubectl = Kubectl::for_sim(&sim, "bookmarks-often").unwrap();
    let out = kubectl
        .ok(&[
            "get",
            "--raw",
            &watch("allowWatchBookmarks=true&resourceVersion=0"),
        ])
        .await;
    assert!(out.matches("BOOKMARK").count() >= 3, "{out}");
}

#[tokio::test]
async fn watch_list_is_refused_as_by_a_1_33_server() {
    let (sim, _client) = start_with(SimConfig::new("sim-watch-list")).await;
    let Some(kubectl) = Kubectl::for_sim(&sim, "watch-list") else {
        return;
    };
    let refused = kubectl
        .refused(&[
            "get",
            "--raw",
            "/api/v1/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
        ])
        .await;
    assert!(
        refused.contains(
            "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the \
             WatchList feature gate is enabled"
        ),
        "{refused}"
    );
    let refused = kubectl
        .refused(&[
            "get",
            "--raw",
            "/api/v1/configmaps?watch=true&resourceVersionMatch=NotOlderThan",
        ])
        .await;
    assert!(
        refused.contains(
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"
        ),
        "{refused}"
    );
}

#[tokio::test]
async fn kubectl_watches_with_output_watch_events() {
    let (sim, client) = start_with(SimConfig::new("sim-kubectl-watch")).await;
    create_namespace(&client, "kw").await;
    let Some(kubectl) = Kubectl::for_sim(&sim, "kubectl-watch") else {
        return;
    };
    config_maps(&client, "kw", "w", 1).await;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "kw");
    // The server ends the watch after its timeout; kubectl prints each event.
    let watching = tokio::spawn(async move {
        kubectl
            .run(&[
                "get",
                "configmaps",
                "-n",
                "kw",
                "-l",
                "set=w",
                "--watch",
                "--output-watch-events",
                "--request-timeout=3s",
            ])
            .await
    });
    // The config map goes once kubectl's watch is open.
    assert!(
        eventually(Duration::from_secs(20), || {
            let opened = sim.requests().count(Verb::Watch, Some("configmaps")) > 0;
            async move { opened }
        })
        .await
    );
    maps.delete("w-0", &DeleteParams::default()).await.unwrap();
    let ran = watching.await.unwrap();
    let out = ran.stdout;
    assert!(out.contains("ADDED"), "{out}");
    assert!(out.contains("DELETED"), "{out}");
}

/// The allocator's watch: every Service of every namespace (`/api/v1/services`), as a
/// 1.33 server's watch cache serves it — the changes of all namespaces, a bookmark as the
/// timeout ends the watch, and a 410 `Expired` from a compacted version.
#[tokio::test]
async fn a_cluster_wide_watch_of_services_sees_every_namespace_bookmarks_and_expires() {
    use k8s_openapi::api::core::v1::Service;
    use kube::api::{WatchEvent, WatchParams};

    let (_sim, client) = start_with(SimConfig::new("sim-services-watch").with_history(4)).await;
    create_namespace(&client, "east").await;
    create_namespace(&client, "west").await;
    let from = sim_version(&client).await;
    for ns in ["east", "west"] {
        let service: Service = serde_json::from_value(json!({
            "metadata": { "name": format!("np-{ns}") },
            "spec": { "type": "NodePort", "ports": [{ "port": 80 }] },
        }))
        .unwrap();
        Api::<Service>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &service)
            .await
            .unwrap();
    }
    let all: Api<Service> = Api::all(client.clone());
    let params = WatchParams::default().timeout(1);
    let mut seen = Vec::new();
    let mut stream = all.watch(&params, &from).await.unwrap().boxed();
    while let Some(event) = stream.next().await {
        seen.push(match event.unwrap() {
            WatchEvent::Added(service) => {
                let port = service.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].node_port;
                assert!(port.is_some(), "a NodePort Service has its port");
                format!("ADDED {}", service.namespace().unwrap())
            }
            WatchEvent::Bookmark(_) => "BOOKMARK".to_owned(),
            other => panic!("unexpected {other:?}"),
        });
    }
    assert_eq!(seen, ["ADDED east", "ADDED west", "BOOKMARK"]);

    churn(&client, "east", 6).await;
    let mut stream = all.watch(&params, &from).await.unwrap().boxed();
    match stream.next().await.unwrap().unwrap() {
        WatchEvent::Error(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
            assert!(
                status
                    .message
                    .starts_with(&format!("too old resource version: {from} (")),
                "{}",
                status.message
            );
        }
        other => panic!("expected a 410, got {other:?}"),
    }
}
