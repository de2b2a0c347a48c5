//! kubectl's typed clients (`kubectl create namespace|configmap|secret|deployment|
//! service|role|rolebinding`) send their bodies as `application/vnd.kubernetes.protobuf`;
//! the simulator reads them as a real API server does, defaults included.

use framedb_kube_sim::SimConfig;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::Api;

use super::kubectl::Kubectl;
use super::{node_ports, start_with};

#[tokio::test]
async fn kubectl_create_s_protobuf_bodies_are_read_and_defaulted() {
    let (sim, client) = start_with(SimConfig::new("sim-protobuf")).await;
    let Some(kubectl) = Kubectl::for_sim(&sim, "protobuf") else {
        return;
    };
    // -v=8 shows the request's headers: the body really went as protobuf.
    let ran = kubectl.run(&["create", "namespace", "pb", "-v=8"]).await;
    assert!(ran.success, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("Content-Type: application/vnd.kubernetes.protobuf"),
        "{}",
        ran.stderr
    );
    for args in [
        &[
            "create",
            "configmap",
            "settings",
            "-n",
            "pb",
            "--from-literal=mode=fast",
            "--from-literal=empty=",
        ][..],
        &[
            "create",
            "secret",
            "generic",
            "creds",
            "-n",
            "pb",
            "--from-literal=password=hunter2",
        ],
        &[
            "create",
            "deployment",
            "web",
            "-n",
            "pb",
            "--image=busybox:1.36",
            "--replicas=2",
            "--port=8080",
        ],
        &[
            "create",
            "service",
            "nodeport",
            "web",
            "-n",
            "pb",
            "--tcp=80:8080",
        ],
        &[
            "create",
            "role",
            "reader",
            "-n",
            "pb",
            "--verb=get,list",
            "--resource=pods",
        ],
        &[
            "create",
            "rolebinding",
            "readers",
            "-n",
            "pb",
            "--role=reader",
            "--user=ana",
        ],
    ] {
        kubectl.ok(args).await;
    }

    let map = Api::<ConfigMap>::namespaced(client.clone(), "pb")
        .get("settings")
        .await
        .unwrap();
    let data = map.data.unwrap();
    assert_eq!(data["mode"], "fast");
    assert_eq!(data["empty"], "", "a map's empty value is a value");

    let secret = Api::<Secret>::namespaced(client.clone(), "pb")
        .get("creds")
        .await
        .unwrap();
    assert_eq!(
        secret.type_.as_deref(),
        Some("Opaque"),
        "defaulted, though the wire carried \"\""
    );
    assert_eq!(secret.data.unwrap()["password"].0, b"hunter2");

    let deployment = Api::<Deployment>::namespaced(client.clone(), "pb")
        .get("web")
        .await
        .unwrap();
    let spec = deployment.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    let strategy = spec.strategy.unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    assert!(strategy.rolling_update.is_some(), "{strategy:?}");
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Always"));
    let container = &pod.containers[0];
    assert_eq!(container.image.as_deref(), Some("busybox:1.36"));
    assert_eq!(container.image_pull_policy.as_deref(), Some("IfNotPresent"));
    let port = &container.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.container_port, port.protocol.as_deref()),
        (8080, Some("TCP"))
    );

    let service = Api::<Service>::namespaced(client.clone(), "pb")
        .get("web")
        .await
        .unwrap();
    let ports = node_ports(&service);
    assert!(
        ports.len() == 1 && (30000..=32767).contains(&ports[0]),
        "{ports:?}"
    );
    let spec = service.spec.unwrap();
    assert_eq!(spec.session_affinity.as_deref(), Some("None"));
    assert_eq!(spec.selector.unwrap()["app"], "web");

    let role = Api::<Role>::namespaced(client.clone(), "pb")
        .get("reader")
        .await
        .unwrap();
    let rule = &role.rules.unwrap()[0];
    assert_eq!(rule.verbs, ["get", "list"]);
    assert_eq!(rule.resources.as_deref(), Some(&["pods".to_string()][..]));
    let binding = Api::<RoleBinding>::namespaced(client.clone(), "pb")
        .get("readers")
        .await
        .unwrap();
    assert_eq!(binding.role_ref.name, "reader");
    assert_eq!(binding.subjects.unwrap()[0].name, "ana");

    let table = kubectl
        .ok(&["get", "secret,deployment,service", "-n", "pb"])
        .await;
    assert!(table.contains("Opaque"), "{table}");
    sim.shutdown().await;
}
