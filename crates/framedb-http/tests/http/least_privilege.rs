//! The rights setup gives a local config service: in the instances' namespace exactly
//! what it creates there (Secrets created, read and deleted, never updated or listed;
//! NetworkPolicies applied and deleted), and PersistentVolumes only when setup is told
//! that the cluster uses local volumes.

use axum::http::StatusCode;
use framedb_kube_sim::{SimConfig, Simulator};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use serde_json::{Value, json};

use super::{TestApp, assert_failure};

/// Sets up the config service on a fresh simulated cluster with `extra` in the body;
/// returns the cluster, its ClusterRole's and instance Role's rules and the service's
/// environment.
async fn set_up(
    extra: Value,
) -> (
    Simulator,
    Vec<PolicyRule>,
    Vec<PolicyRule>,
    Vec<(String, String)>,
) {
    let sim = Simulator::start(SimConfig::new("target").with_images(framedb_k8s::default_images()))
        .await
        .unwrap();
    let app = TestApp::new();
    let mut body = json!({"kube_config": sim.kubeconfig_json(), "storage_size": "1Gi"});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (status, answer) = app.send("POST", "/framedb-config/setup", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let kube = sim.client().await;
    let cluster_rules = kube::Api::<ClusterRole>::all(kube.clone())
        .get("framedb-config")
        .await
        .unwrap()
        .rules
        .unwrap();
    let instance_rules = kube::Api::<Role>::namespaced(kube.clone(), "framedb-storage")
        .get("framedb-config")
        .await
        .unwrap()
        .rules
        .unwrap();
    let server = kube::Api::<Deployment>::namespaced(kube, "framedb-config")
        .get("framedb-config")
        .await
        .unwrap();
    let env = server.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap()
        .into_iter()
        .filter_map(|e| Some((e.name, e.value?)))
        .collect();
    (sim, cluster_rules, instance_rules, env)
}

/// The verbs `rules` grant on `resource` of `group`, sorted.
fn verbs(rules: &[PolicyRule], group: &str, resource: &str) -> Vec<String> {
    let mut verbs: Vec<String> = rules
        .iter()
        .filter(|r| {
            r.api_groups
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|g| g == group)
        })
        .filter(|r| {
            r.resources
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|r| r == resource)
        })
        .flat_map(|r| r.verbs.clone())
        .collect();
    verbs.sort();
    verbs
}

fn env_of<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn the_instance_role_covers_credentials_and_policies_with_minimal_verbs() {
    let (_sim, cluster_rules, instance_rules, env) = set_up(json!({})).await;
    assert_eq!(
        verbs(&instance_rules, "", "secrets"),
        ["create", "delete", "get", "patch"]
    );
    assert_eq!(
        verbs(&instance_rules, "networking.k8s.io", "networkpolicies"),
        ["create", "delete", "get", "patch"]
    );
    // The status book follows the namespace's events (what the cluster refused, or
    // retries); it writes none.
    assert_eq!(verbs(&instance_rules, "", "events"), ["list", "watch"]);
    // Without local volumes, nothing cluster-wide is written, and no pod is run: pods
    // are only read.
    assert_eq!(verbs(&instance_rules, "", "pods"), ["get", "list", "watch"]);
    assert!(verbs(&cluster_rules, "", "persistentvolumes").is_empty());
    for rule in &cluster_rules {
        assert!(
            rule.verbs
                .iter()
                .all(|v| ["get", "list", "watch"].contains(&v.as_str())),
            "{rule:?}"
        );
    }
    // The service writes where its Role lets it, and makes no local volumes.
    assert_eq!(env_of(&env, "FRAMEDB_NAMESPACE"), Some("framedb-storage"));
    assert_eq!(env_of(&env, "FRAMEDB_LOCAL_VOLUME_ROOT"), None);
}

#[tokio::test]
async fn local_volumes_bring_persistent_volume_rights_and_their_root() {
    let (sim, cluster_rules, instance_rules, env) =
        set_up(json!({"local_volume_root": "/mnt/framedb"})).await;
    assert_eq!(
        verbs(&cluster_rules, "", "persistentvolumes"),
        ["create", "delete", "get", "list", "patch", "watch"]
    );
    // The pods that empty a purged volume run in the instances' namespace, under its
    // Pod Security `baseline` (they mount the instance's claim, no `hostPath`): no
    // namespace of their own, no right anywhere else.
    assert_eq!(
        verbs(&instance_rules, "", "pods"),
        ["create", "delete", "get", "list", "watch"]
    );
    let kube = sim.client().await;
    assert!(
        kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(kube)
            .get_opt("framedb-storage-volumes")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        env_of(&env, "FRAMEDB_LOCAL_VOLUME_ROOT"),
        Some("/mnt/framedb")
    );
}

#[tokio::test]
async fn an_unusable_local_volume_root_is_400() {
    let sim = Simulator::start(SimConfig::new("target").with_images(framedb_k8s::default_images()))
        .await
        .unwrap();
    let app = TestApp::new();
    for root in ["relative/dir", "/mnt/../etc", "/mnt/a b", ""] {
        let body = json!({"kube_config": sim.kubeconfig_json(), "local_volume_root": root});
        let (status, answer) = app.send("POST", "/framedb-config/setup", Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{root}: {answer}");
        assert!(assert_failure(&answer, "invalid_input").contains("local_volume_root"));
    }
}

#[tokio::test]
async fn setup_fences_the_config_mongodb_and_holds_instances_to_the_baseline_pod_level() {
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::api::networking::v1::NetworkPolicy;

    let (sim, _, _, _) = set_up(json!({})).await;
    let kube = sim.client().await;
    // No pod but the config service reaches its MongoDB (besides its password).
    let policy = kube::Api::<NetworkPolicy>::namespaced(kube.clone(), "framedb-config")
        .get("mongodb")
        .await
        .unwrap();
    let spec = policy.spec.unwrap();
    assert_eq!(
        spec.pod_selector.unwrap().match_labels.unwrap()["app.kubernetes.io/name"],
        "mongodb"
    );
    let rules = spec.ingress.unwrap();
    assert_eq!(rules.len(), 1);
    let from = rules[0].from.clone().unwrap();
    let peer = from[0].pod_selector.clone().unwrap().match_labels.unwrap();
    assert_eq!(peer["app.kubernetes.io/name"], "framedb-config");
    // Workloads in the instances' namespace cannot be privileged or mount the host.
    let namespace = kube::Api::<Namespace>::all(kube)
        .get("framedb-storage")
        .await
        .unwrap();
    assert_eq!(
        namespace.metadata.labels.unwrap()["pod-security.kubernetes.io/enforce"],
        "baseline"
    );
}
