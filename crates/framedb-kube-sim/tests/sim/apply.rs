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
