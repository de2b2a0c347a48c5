//! `kubectl apply`, `create -f`, `diff` and server-side apply as against a real cluster:
//! the OpenAPI v3 documents let kubectl validate on the server (its default), which
//! refuses unknown fields with the API server's words, and client-side apply computes
//! its patches against what is stored.

use framedb_kube_sim::SimConfig;

use super::kubectl::Kubectl;
use super::start_with;

#[tokio::test]
async fn kubectl_apply_validates_on_the_server_and_configures_what_changed() {
    let (sim, _client) = start_with(SimConfig::new("sim-apply")).await;
    let Some(kubectl) = Kubectl::for_sim(&sim, "apply") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("sim-apply-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let typo = manifest(
        "typo.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndataa:\n  a: b\n",
    );
    let refused = kubectl.refused(&["apply", "-f", &typo]).await;
    assert!(
        refused.contains(
            "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding \
             error: unknown field \"dataa\""
        ),
        "{refused}"
    );
    let refused = kubectl.refused(&["create", "-f", &typo]).await;
    assert!(refused.contains("unknown field \"dataa\""), "{refused}");

    let good = manifest(
        "good.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n",
    );
    assert!(
        kubectl
            .ok(&["apply", "-f", &good])
            .await
            .contains("configmap/settings created")
    );
    assert!(
        kubectl
            .ok(&["apply", "-f", &good])
            .await
            .contains("configmap/settings unchanged")
    );
    let changed = manifest(
        "changed.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: c\n",
    );
    let diff = kubectl.run(&["diff", "-f", &changed]).await;
    assert!(
        diff.stdout.contains("-  a: b") && diff.stdout.contains("+  a: c"),
        "{}",
        diff.stdout
    );
    assert!(
        kubectl
            .ok(&["apply", "-f", &changed])
            .await
            .contains("configmap/settings configured")
    );
    assert_eq!(
        kubectl
            .ok(&["get", "configmap", "settings", "-o", "jsonpath={.data.a}"])
            .await,
        "c"
    );
    assert!(
        kubectl
            .ok(&["apply", "--server-side", "-f", &good])
            .await
            .contains("serverside-applied")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Server-side apply as structured merge: ownership per manager in `managedFields`,
/// list-maps merged by key, a manager's omitted fields removed, conflicts refused with
/// the API server's words unless forced.
#[tokio::test]
async fn server_side_apply_merges_by_key_tracks_owners_and_refuses_conflicts() {
    let (sim, client) = start_with(SimConfig::new("sim-ssa")).await;
    let Some(kubectl) = Kubectl::for_sim(&sim, "ssa") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("sim-ssa-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = |name: &str, labels: &str, replicas: &str, containers: &[(&str, &str)]| {
        let containers: String = containers
            .iter()
            .map(|(name, image)| format!("      - name: {name}\n        image: {image}\n"))
            .collect();
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("  labels: {{{labels}}}\n")
        };
        let text = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n{labels}\
             spec:\n{replicas}  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      \
             labels: {{app: web}}\n    spec:\n      containers:\n{containers}"
        );
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let first = manifest(
        "first.yaml",
        "tier: front",
        "  replicas: 2\n",
        &[("web", "nginx:1.27")],
    );
    kubectl.ok(&["apply", "--server-side", "-f", &first]).await;

    // Another manager changing a field kubectl owns is refused, as a real server words it.
    // An apply configuration holds only what its manager cares about.
    let scaled = dir.join("scaled.yaml");
    std::fs::write(
        &scaled,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 5\n",
    )
    .unwrap();
    let scaled = scaled.to_str().unwrap().to_owned();
    let refused = kubectl
        .refused(&[
            "apply",
            "--server-side",
            "--field-manager=scaler",
            "-f",
            &scaled,
        ])
        .await;
    assert!(
        refused.contains("Apply failed with 1 conflict: conflict with \"kubectl\": .spec.replicas"),
        "{refused}"
    );
    kubectl
        .ok(&[
            "apply",
            "--server-side",
            "--field-manager=scaler",
            "--force-conflicts",
            "-f",
            &scaled,
        ])
        .await;

    // A third manager adds a container: the list merges by name.
    let sidecar = manifest("sidecar.yaml", "", "", &[("log", "busybox:1.36")]);
    kubectl
        .ok(&[
            "apply",
            "--server-side",
            "--field-manager=sidecar",
            "-f",
            &sidecar,
        ])
        .await;

    // kubectl applies again without its label and without replicas (no longer its own):
    // the label goes, replicas stays, both containers stay.
    let again = manifest("again.yaml", "", "", &[("web", "nginx:1.28")]);
    kubectl.ok(&["apply", "--server-side", "-f", &again]).await;
    let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::default_namespaced(client);
    let web = deployments.get("web").await.unwrap();
    assert!(!web.metadata.labels.unwrap_or_default().contains_key("tier"));
    let spec = web.spec.unwrap();
    assert_eq!(spec.replicas, Some(5));
    let containers = spec.template.spec.unwrap().containers;
    let images: Vec<(&str, &str)> = containers
        .iter()
        .map(|c| (c.name.as_str(), c.image.as_deref().unwrap()))
        .collect();
    assert_eq!(images, [("web", "nginx:1.28"), ("log", "busybox:1.36")]);
    let managers: Vec<String> = web
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .map(|m| format!("{}/{}", m.manager.unwrap(), m.operation.unwrap()))
        .collect();
    assert_eq!(managers, ["scaler/Apply", "sidecar/Apply", "kubectl/Apply"]);
    let yaml = kubectl
        .ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "yaml",
            "--show-managed-fields",
        ])
        .await;
    assert!(yaml.contains("k:{\"name\":\"log\"}:"), "{yaml}");
    std::fs::remove_dir_all(&dir).unwrap();
}
