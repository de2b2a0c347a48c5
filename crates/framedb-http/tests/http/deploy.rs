//! The global service's manifests (`deploy/`, README "Deploying the global service"):
//! kubectl's built-in kustomize renders them, and `kubectl apply --server-side -k` puts
//! them on a simulated cluster, which stores what was meant: two replicas with their
//! probes and a restricted security context, the Service, the budget, the policy and the
//! generated Secret. The server image is not run here: the pods are admitted (Pod
//! Security `restricted`) and wait for an image the simulated registry does not hold.

use std::path::PathBuf;

use framedb_kube_sim::{SimConfig, Simulator};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::fleet::kubectl;

/// The repository's `deploy/` directory.
fn deploy_dir() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .canonicalize()
        .unwrap()
        .display()
        .to_string()
}

/// `kubectl get KIND NAME -n framedb-system -o json`.
async fn get(kubeconfig: &std::path::Path, kind: &str, name: &str) -> Value {
    let out = kubectl(
        kubeconfig,
        &["get", kind, name, "-n", "framedb-system", "-o", "json"],
    )
    .await;
    serde_json::from_str(&out).unwrap()
}

#[tokio::test]
async fn the_deploy_manifests_render_with_kustomize_and_apply_to_a_cluster() {
    let sim = Simulator::start(SimConfig::new("deploy")).await.unwrap();
    let dir = std::env::temp_dir().join(format!("framedb-deploy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig.json");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let deploy = deploy_dir();

    let rendered = kubectl(&kubeconfig, &["kustomize", &deploy]).await;
    let mut kinds: Vec<&str> = rendered
        .lines()
        .filter_map(|line| line.strip_prefix("kind: "))
        .collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "Deployment",
            "Namespace",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Secret",
            "Service",
            "ServiceAccount"
        ]
    );

    // Validated on the server (the simulator serves the OpenAPI v3 documents kubectl
    // asks for), and applied again without a change or a conflict.
    for _ in 0..2 {
        let applied = kubectl(&kubeconfig, &["apply", "--server-side", "-k", &deploy]).await;
        for object in [
            "namespace/framedb-system",
            "serviceaccount/framedb-global",
            "service/framedb-global",
            "deployment.apps/framedb-global",
            "poddisruptionbudget.policy/framedb-global",
            "networkpolicy.networking.k8s.io/framedb-global",
        ] {
            assert!(
                applied.contains(&format!("{object} serverside-applied")),
                "{object}: {applied}"
            );
        }
    }

    let namespace = kubectl(
        &kubeconfig,
        &["get", "namespace", "framedb-system", "-o", "json"],
    )
    .await;
    let namespace: Value = serde_json::from_str(&namespace).unwrap();
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    let account = get(&kubeconfig, "serviceaccount", "framedb-global").await;
    assert_eq!(account["automountServiceAccountToken"], false);

    let deployment = get(&kubeconfig, "deployment", "framedb-global").await;
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 2);
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
    );
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(
        pod["topologySpreadConstraints"][0]["topologyKey"],
        "kubernetes.io/hostname"
    );
    let container = &pod["containers"][0];
    assert_eq!(container["args"], json!(["global"]));
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["startupProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(
        container["securityContext"],
        json!({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
            "runAsNonRoot": true, "capabilities": {"drop": ["ALL"]}})
    );
    for quantity in ["requests", "limits"] {
        assert!(
            container["resources"][quantity]["memory"].is_string(),
            "{quantity}"
        );
    }
    // The secrets come from the generated Secret, under the flags' own variables.
    let env = container["env"].as_array().unwrap();
    let from_secret = |variable: &str| {
        env.iter()
            .find(|e| e["name"] == variable)
            .and_then(|e| e["valueFrom"]["secretKeyRef"]["name"].as_str())
            .unwrap_or_else(|| panic!("{variable} is not read from a Secret: {env:?}"))
            .to_owned()
    };
    let secret_name = from_secret("FRAMEDB_MONGO_URI");
    assert_eq!(from_secret("FRAMEDB_API_TOKEN"), secret_name);
    assert!(secret_name.starts_with("framedb-global-"), "{secret_name}");
    let secret = get(&kubeconfig, "secret", &secret_name).await;
    let mut keys: Vec<&String> = secret["data"].as_object().unwrap().keys().collect();
    keys.sort_unstable();
    assert_eq!(keys, ["api-token", "local-token", "mongo-uri"]);
    let config_map = pod["containers"][0]["envFrom"][0]["configMapRef"]["name"]
        .as_str()
        .unwrap();
    let config_map = get(&kubeconfig, "configmap", config_map).await;
    the_pod_s_environment_is_the_global_server_s(container, &config_map, &secret).await;

    let service = get(&kubeconfig, "service", "framedb-global").await;
    assert_eq!(service["spec"]["type"], "ClusterIP");
    assert_eq!(service["spec"]["ports"][0]["port"], 8080);
    let budget = get(&kubeconfig, "poddisruptionbudget", "framedb-global").await;
    assert_eq!(budget["spec"]["minAvailable"], 1);
    let policy = get(&kubeconfig, "networkpolicy", "framedb-global").await;
    assert_eq!(policy["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(policy["spec"]["ingress"][0]["ports"][0]["port"], 8080);

    // Both replicas' pods pass Pod Security `restricted` (a refused pod is never made),
    // and wait for the server image, which this cluster's registry does not hold.
    let pods: kube::Api<Pod> = kube::Api::namespaced(sim.client().await, "framedb-system");
    let mut waiting = Vec::new();
    for _ in 0..400 {
        waiting = pods
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|pod| {
                let status = pod.status?.container_statuses?.into_iter().next()?;
                status.state?.waiting?.reason
            })
            .collect();
        if waiting.len() == 2
            && waiting
                .iter()
                .all(|reason| matches!(reason.as_str(), "ErrImagePull" | "ImagePullBackOff"))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(waiting.len(), 2, "two pods, pulling the image: {waiting:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts `framedb-server global` with the environment the pod gets from `container`'s
/// `env` and `envFrom` (`config_map`, `secret`), its MongoDB moved to a closed port: every
/// variable is one of the server's and every value one it takes, since it gets past its
/// settings to its registry, and the placeholder password stays out of its log.
async fn the_pod_s_environment_is_the_global_server_s(
    container: &Value,
    config_map: &Value,
    secret: &Value,
) {
    use base64::Engine;
    let mut env: Vec<(String, String)> = config_map["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, value)| (name.clone(), value.as_str().unwrap().to_owned()))
        .collect();
    for variable in container["env"].as_array().unwrap() {
        let name = variable["name"].as_str().unwrap().to_owned();
        let value = match variable["value"].as_str() {
            Some(value) => value.to_owned(),
            None => {
                let key = variable["valueFrom"]["secretKeyRef"]["key"]
                    .as_str()
                    .unwrap();
                let encoded = secret["data"][key].as_str().unwrap();
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .unwrap();
                String::from_utf8(decoded).unwrap()
            }
        };
        env.push((name, value));
    }
    let mut password = None;
    for (name, value) in &mut env {
        match name.as_str() {
            "FRAMEDB_LISTEN" => *value = "127.0.0.1:0".to_owned(),
            "FRAMEDB_MONGO_URI" => {
                let (credentials, rest) = value.split_once('@').unwrap();
                password = credentials.rsplit(':').next().map(str::to_owned);
                let (_, path) = rest.split_once('/').unwrap();
                *value = format!("{credentials}@127.0.0.1:1/{path}");
            }
            _ => {}
        }
    }
    env.push(("FRAMEDB_MONGO_TIMEOUT_MS".to_owned(), "300".to_owned()));
    let run = |env: Vec<(String, String)>| async move {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_framedb-server"));
        // Only the pod's settings: none of the test's own.
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("FRAMEDB_")) {
            command.env_remove(name);
        }
        command.arg("global").envs(env).output().await.unwrap()
    };
    // Applied as published, the placeholders open nothing: the server refuses to start.
    let output = run(env.clone()).await;
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{log}");
    assert!(log.contains("placeholder"), "{log}");
    // Filled in as the README says, the pod's settings are the server's own.
    for (name, value) in &mut env {
        if value.contains("REPLACE-ME") && name != "FRAMEDB_MONGO_URI" {
            *value = format!("filled-in-{name}-0123456789abcdef");
        }
    }
    let output = run(env).await;
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{log}");
    assert!(
        log.contains("the registry cannot be used"),
        "the server read its settings and went on to MongoDB: {log}"
    );
    let password = password.expect("the URI has a password");
    assert!(
        !log.contains(&password),
        "the password reached the log: {log}"
    );
}
