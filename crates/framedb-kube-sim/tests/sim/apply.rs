//! `kubectl apply`, `create -f`, `diff` and server-side apply as against a real cluster:
//! the OpenAPI v3 documents let kubectl validate on the server (its default), which
//! refuses unknown fields with the API server's words, and client-side apply computes
//! its patches against what is stored.

use framedb_kube_sim::SimConfig;
use serde_json::json;

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

/// Client-side `kubectl apply` and `kubectl patch` send strategic merge patches: lists of
/// containers, ports and env merge by key, and the directives are obeyed, not stored.
#[tokio::test]
async fn strategic_merge_patches_merge_lists_by_key() {
    let (sim, client) = start_with(SimConfig::new("sim-smp")).await;
    let Some(kubectl) = Kubectl::for_sim(&sim, "smp") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("sim-smp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = |image: &str| {
        let text = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    \
             matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      \
             containers:\n      - name: web\n        image: {image}\n        ports:\n        - containerPort: 80\n        \
             env:\n        - {{name: MODE, value: fast}}\n      - name: log\n        image: busybox:1.36\n"
        );
        let path = dir.join(format!("web-{image}.yaml"));
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    kubectl.ok(&["apply", "-f", &manifest("nginx:1.27")]).await;
    // Another client adds an env var to the web container.
    kubectl
        .ok(&[
            "patch", "deployment", "web", "--type=strategic", "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"LEVEL","value":"debug"}]}]}}}}"#,
        ])
        .await;
    // kubectl apply of a new image: a patch naming only what changed.
    kubectl.ok(&["apply", "-f", &manifest("nginx:1.28")]).await;

    let deployments: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::default_namespaced(client);
    let web = deployments.get("web").await.unwrap();
    let pod = web.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.containers.len(), 2);
    let container = &pod.containers[0];
    assert_eq!(container.image.as_deref(), Some("nginx:1.28"));
    assert_eq!(container.ports.as_ref().unwrap()[0].container_port, 80);
    let env: Vec<&str> = container
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(env, ["MODE", "LEVEL"], "merged by name");

    kubectl
        .ok(&[
            "patch",
            "deployment",
            "web",
            "--type=strategic",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"log","$patch":"delete"}]}}}}"#,
        ])
        .await;
    let json = kubectl
        .ok(&["get", "deployment", "web", "-o", "json"])
        .await;
    assert!(
        !json.contains("$setElementOrder") && !json.contains("$patch"),
        "{json}"
    );
    let pod = deployments
        .get("web")
        .await
        .unwrap()
        .spec
        .unwrap()
        .template
        .spec
        .unwrap();
    let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["web"], "`$patch: delete` removed the log container");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `policy/v1` PodDisruptionBudgets: created by kubectl's typed client (protobuf) and by
/// server-side apply, listed with the API server's columns, and refused with
/// `ValidatePodDisruptionBudgetSpec`'s words when both budgets or a bad percentage are
/// given. A new budget's status is the zeros a real server stores before its disruption
/// controller (not modelled) counts pods.
#[tokio::test]
async fn pod_disruption_budgets_are_validated_stored_and_listed() {
    let (sim, _client) = start_with(SimConfig::new("sim-pdb")).await;
    let Some(kubectl) = Kubectl::for_sim(&sim, "pdb") else {
        return;
    };
    let created = kubectl
        .ok(&[
            "create",
            "poddisruptionbudget",
            "typed",
            "--selector=app=typed",
            "--max-unavailable=25%",
        ])
        .await;
    assert!(
        created.contains("poddisruptionbudget.policy/typed created"),
        "{created}"
    );
    let budget = |spec: &str| {
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "applied"},
            "spec": serde_json::from_str::<serde_json::Value>(spec).unwrap()})
    };
    let both = kubectl
        .with_manifest(
            "apply",
            &budget(r#"{"minAvailable": 1, "maxUnavailable": 1, "selector": {"matchLabels": {"app": "a"}}}"#),
        )
        .await;
    assert!(!both.success);
    assert!(
        both.stderr
            .contains("minAvailable and maxUnavailable cannot be both set"),
        "{}",
        both.stderr
    );
    let percent = kubectl
        .with_manifest("apply", &budget(r#"{"minAvailable": "150%"}"#))
        .await;
    assert!(!percent.success);
    assert!(
        percent
            .stderr
            .contains("spec.minAvailable: Invalid value: \"150%\": must not be greater than 100%"),
        "{}",
        percent.stderr
    );
    let good = kubectl
        .with_manifest(
            "apply",
            &budget(r#"{"minAvailable": 1, "selector": {"matchLabels": {"app": "a"}}, "unhealthyPodEvictionPolicy": "AlwaysAllow"}"#),
        )
        .await;
    assert!(good.success, "{}", good.stderr);

    let table = kubectl.ok(&["get", "pdb"]).await;
    let header = table.lines().next().unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        [
            "NAME",
            "MIN",
            "AVAILABLE",
            "MAX",
            "UNAVAILABLE",
            "ALLOWED",
            "DISRUPTIONS",
            "AGE"
        ]
    );
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap()
            .split_whitespace()
            .take(4)
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(row("applied"), ["applied", "1", "N/A", "0"]);
    assert_eq!(row("typed"), ["typed", "N/A", "25%", "0"]);
    let status = kubectl
        .ok(&["get", "pdb", "applied", "-o", "jsonpath={.status}"])
        .await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(
        status,
        json!({"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0})
    );
}
