//! An instance as an attacker on the cluster's network would see it: PD and TiKV on
//! loopback only, a NetworkPolicy admitting MySQL alone, and a root password generated
//! per instance, kept in its Secret, stable across re-deploys and gone with the instance.

use std::time::Duration;

use framedb_core::{ClusterDeployer, Error};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Container, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Api;
use kube::api::DeleteParams;

use super::{Cluster, cluster_id, spec};

const NS: &str = "framedb-storage";

fn container<'a>(sts: &'a StatefulSet, name: &str) -> &'a Container {
    let pod = sts.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    // PD and TiKV are native sidecars (init containers), TiDB the pod's container.
    let inits = pod.init_containers.iter().flatten();
    inits
        .chain(&pod.containers)
        .find(|c| c.name == name)
        .unwrap()
}

fn args(container: &Container) -> Vec<String> {
    container.args.clone().unwrap_or_default()
}

/// The value of `--{flag}=` in `args`.
fn flag(args: &[String], flag: &str) -> String {
    let prefix = format!("--{flag}=");
    args.iter()
        .find_map(|a| a.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {args:?}"))
        .to_owned()
}

async fn statefulset(cluster: &Cluster, id: &str) -> StatefulSet {
    Api::<StatefulSet>::namespaced(cluster.client.clone(), NS)
        .get(id)
        .await
        .unwrap()
}

async fn secret(cluster: &Cluster, id: &str) -> Option<Secret> {
    Api::<Secret>::namespaced(cluster.client.clone(), NS)
        .get_opt(&format!("{id}-credentials"))
        .await
        .unwrap()
}

fn key(secret: &Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

#[tokio::test]
async fn pd_and_tikv_listen_on_loopback_only() {
    let cluster = Cluster::start(Duration::ZERO).await;
    cluster.deployed("tidb-001", 30900).await;
    let sts = statefulset(&cluster, "tidb-001").await;
    let pd = args(container(&sts, "pd"));
    assert_eq!(flag(&pd, "client-urls"), "http://127.0.0.1:2379");
    assert_eq!(flag(&pd, "peer-urls"), "http://127.0.0.1:2380");
    let tikv = args(container(&sts, "tikv"));
    assert_eq!(flag(&tikv, "addr"), "127.0.0.1:20160");
    assert_eq!(flag(&tikv, "status-addr"), "127.0.0.1:20180");
    for name in ["pd", "tikv", "tidb"] {
        let all = args(container(&sts, name)).join(" ");
        assert!(
            !all.contains("0.0.0.0"),
            "{name} listens on every address: {all}"
        );
    }
}

#[tokio::test]
async fn a_network_policy_admits_mysql_only() {
    let cluster = Cluster::start(Duration::ZERO).await;
    cluster.deployed("tidb-001", 30900).await;
    let policy = Api::<NetworkPolicy>::namespaced(cluster.client.clone(), NS)
        .get("tidb-001")
        .await
        .unwrap();
    let labels = policy.metadata.labels.unwrap();
    assert_eq!(labels["app.kubernetes.io/instance"], "tidb-001");
    assert_eq!(labels["framedb.io/cluster-id"], "cluster-01");
    let spec = policy.spec.unwrap();
    assert_eq!(spec.policy_types.unwrap(), ["Ingress"]);
    // It selects the instance's pods: its selector is within their labels.
    let sts = statefulset(&cluster, "tidb-001").await;
    let pod_labels = sts.spec.unwrap().template.metadata.unwrap().labels.unwrap();
    let selector = spec.pod_selector.unwrap().match_labels.unwrap();
    assert!(!selector.is_empty());
    for (key, value) in &selector {
        assert_eq!(pod_labels.get(key), Some(value), "{key}");
    }
    let rules = spec.ingress.unwrap();
    assert_eq!(rules.len(), 1);
    let ports = rules[0].ports.clone().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
    assert_eq!(
        ports[0].port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(4000))
    );
    assert!(ports[0].end_port.is_none());
}

#[tokio::test]
async fn the_password_is_generated_kept_in_the_secret_and_set_at_bootstrap() {
    let cluster = Cluster::start(Duration::ZERO).await;
    let one = cluster
        .fleet
        .deploy(&spec("tidb-001", "node-a", 30900))
        .await
        .unwrap();
    let two = cluster
        .fleet
        .deploy(&spec("tidb-002", "node-a", 30901))
        .await
        .unwrap();
    assert_eq!(one.credentials.user(), "root");
    assert_ne!(one.credentials.password(), two.credentials.password());

    let stored = secret(&cluster, "tidb-001").await.unwrap();
    assert_eq!(key(&stored, "password"), one.credentials.password());
    let sql = key(&stored, "init.sql");
    assert_eq!(
        sql.trim(),
        format!(
            "ALTER USER 'root'@'%' IDENTIFIED BY '{}';",
            one.credentials.password()
        )
    );
    assert_eq!(
        stored.metadata.labels.unwrap()["app.kubernetes.io/instance"],
        "tidb-001"
    );
    assert_eq!(
        cluster
            .fleet
            .credentials(&cluster_id(), &spec("tidb-001", "node-a", 30900).framedb_id)
            .await
            .unwrap(),
        one.credentials
    );

    // tidb-server runs the SQL at its first bootstrap, from the Secret mounted read-only
    // with that key alone (not the bare password) and mode 0400.
    let sts = statefulset(&cluster, "tidb-001").await;
    let tidb = container(&sts, "tidb").clone();
    let file = flag(&args(&tidb), "initialize-sql-file");
    let mount = tidb
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| file.starts_with(&format!("{}/", m.mount_path)))
        .unwrap_or_else(|| panic!("{file} is on no mount"))
        .clone();
    assert_eq!(mount.read_only, Some(true));
    let pod = sts.spec.unwrap().template.spec.unwrap();
    let volume = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == mount.name)
        .unwrap();
    let source = volume.secret.unwrap();
    assert_eq!(source.secret_name.as_deref(), Some("tidb-001-credentials"));
    assert_eq!(source.default_mode, Some(0o400));
    let items = source.items.unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].key, "init.sql");
    assert!(file.ends_with(&format!("/{}", items[0].path)));
    // PD and TiKV see no credentials.
    for name in ["pd", "tikv"] {
        let mounts = container_mounts(&pod.containers, name);
        assert!(!mounts.contains(&mount.name), "{name} mounts {mounts:?}");
    }
}

fn container_mounts(containers: &[Container], name: &str) -> Vec<String> {
    containers
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.volume_mounts.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.name)
        .collect()
}

#[tokio::test]
async fn a_redeploy_after_a_partial_failure_keeps_the_password() {
    let cluster = Cluster::start(Duration::ZERO).await;
    let spec = spec("tidb-001", "node-a", 30900);
    let first = cluster.fleet.deploy(&spec).await.unwrap();
    // As if the first deploy had stopped after the Secret: the workload is missing.
    Api::<StatefulSet>::namespaced(cluster.client.clone(), NS)
        .delete("tidb-001", &DeleteParams::default())
        .await
        .unwrap();
    let again = cluster.fleet.deploy(&spec).await.unwrap();
    assert_eq!(first, again);
    let stored = secret(&cluster, "tidb-001").await.unwrap();
    assert_eq!(key(&stored, "password"), first.credentials.password());
}

#[tokio::test]
async fn undeploy_removes_the_secret_and_the_policy() {
    let cluster = Cluster::start(Duration::ZERO).await;
    let id = cluster.deployed("tidb-001", 30900).await;
    let (here, unstamped) = (cluster_id(), framedb_core::Stamp::unstamped());
    let purge = || {
        let removal = framedb_core::Removal::Purge;
        cluster.fleet.undeploy(&here, &id, &unstamped, removal)
    };
    purge().await.unwrap();
    assert!(secret(&cluster, "tidb-001").await.is_none());
    let policy = Api::<NetworkPolicy>::namespaced(cluster.client.clone(), NS)
        .get_opt("tidb-001")
        .await
        .unwrap();
    assert!(policy.is_none());
    assert_eq!(
        cluster
            .fleet
            .credentials(&cluster_id(), &id)
            .await
            .unwrap_err(),
        Error::InstanceNotFound(id.clone())
    );
    // Already gone is fine.
    purge().await.unwrap();
}

#[tokio::test]
async fn a_hand_edited_secret_is_refused_not_bootstrapped() {
    let cluster = Cluster::start(Duration::ZERO).await;
    let id = cluster.deployed("tidb-001", 30900).await;
    let secrets = Api::<Secret>::namespaced(cluster.client.clone(), NS);
    let patch = serde_json::json!({"stringData": {"password": "x' OR '1"}});
    secrets
        .patch(
            "tidb-001-credentials",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
    let error = cluster
        .fleet
        .credentials(&cluster_id(), &id)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Internal(_)), "{error:?}");
    assert!(!error.to_string().contains("OR"), "{error}");
}

#[tokio::test]
async fn the_installed_roles_grant_what_an_instance_s_life_needs_on_its_secret_and_policy() {
    use framedb_k8s::config_service::{ConfigService, Install, Settings};
    use framedb_kube_sim::Verb;
    use k8s_openapi::api::rbac::v1::{ClusterRole, Role};

    let cluster = Cluster::start(Duration::ZERO).await;
    let settings = Settings::default();
    let install = Install {
        storage_size: framedb_core::StorageSize::new("1Gi").unwrap(),
        cluster_id: cluster_id(),
        token: Some("t".into()),
        local_volume_root: None,
    };
    ConfigService::new(&cluster.client, &settings, "cluster-01")
        .setup(&install)
        .await
        .unwrap();
    // The local service finds its MongoDB by the namespace-relative name, which the
    // pod's DNS search path resolves whatever the cluster's domain.
    let local = Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(
        cluster.client.clone(),
        &settings.namespace,
    )
    .get("framedb-config")
    .await
    .unwrap();
    let env = local.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap();
    let uri = env.iter().find(|e| e.name == "FRAMEDB_MONGO_URI").unwrap();
    let uri = uri.value.as_deref().unwrap();
    assert!(
        uri.contains(&format!("@mongodb.{}.svc:27017/", settings.namespace)),
        "{uri}"
    );
    let role = Api::<Role>::namespaced(cluster.client.clone(), NS)
        .get("framedb-config")
        .await
        .unwrap();
    let cluster_role = Api::<ClusterRole>::all(cluster.client.clone())
        .get("framedb-config")
        .await
        .unwrap();
    let rules: Vec<_> = role
        .rules
        .unwrap()
        .into_iter()
        .chain(cluster_role.rules.unwrap())
        .collect();
    let granted = |resource: &str| -> Vec<String> {
        rules
            .iter()
            .filter(|r| {
                r.resources
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .any(|x| x == resource)
            })
            .flat_map(|r| r.verbs.clone())
            .collect()
    };

    // An instance's whole life: deploy, deploy again, read its credentials, delete it
    // retaining its volume, take the volume back with a new create, purge.
    let before = cluster.sim.requests();
    let spec = spec("tidb-001", "node-a", 30900);
    cluster.fleet.deploy(&spec).await.unwrap();
    cluster.fleet.deploy(&spec).await.unwrap();
    cluster
        .fleet
        .credentials(&cluster_id(), &spec.framedb_id)
        .await
        .unwrap();
    let id = &spec.framedb_id;
    let retain = framedb_core::Removal::Retain;
    cluster
        .fleet
        .undeploy(&cluster_id(), id, &spec.stamp, retain)
        .await
        .unwrap();
    let again = framedb_core::DeploymentSpec {
        stamp: framedb_core::Stamp::generate().unwrap(),
        ..spec.clone()
    };
    assert!(cluster.fleet.deploy(&again).await.unwrap().reattached);
    let purge = framedb_core::Removal::Purge;
    cluster
        .fleet
        .undeploy(&cluster_id(), id, &again.stamp, purge)
        .await
        .unwrap();
    let used = cluster.sim.requests().since(&before);

    let verbs = [
        Verb::Get,
        Verb::List,
        Verb::Watch,
        Verb::Create,
        Verb::Update,
        Verb::Patch,
        Verb::Delete,
    ];
    for resource in [
        "secrets",
        "networkpolicies",
        "configmaps",
        "statefulsets",
        "services",
        "persistentvolumeclaims",
    ] {
        let granted = granted(resource);
        // The simulator names its verbs as RBAC does.
        let mut needed: Vec<String> = verbs
            .iter()
            .filter(|verb| used.count(**verb, Some(resource)) > 0)
            .map(ToString::to_string)
            .collect();
        // A server-side apply that creates its object is authorized as a create too.
        if needed.iter().any(|verb| verb == "patch") {
            needed.push("create".into());
        }
        for verb in &needed {
            assert!(granted.contains(verb), "{verb} {resource} is not granted");
        }
        // On what this change added, nothing more is granted than is used.
        if matches!(resource, "secrets" | "networkpolicies" | "configmaps") {
            for verb in &granted {
                assert!(
                    needed.contains(verb),
                    "{verb} {resource} is granted, unused"
                );
            }
        }
    }
}

#[tokio::test]
async fn the_instances_namespace_runs_instances_but_refuses_privileged_and_host_path_pods() {
    let cluster = Cluster::start(Duration::ZERO).await;
    // The namespace comes with the first instance, and the instance runs under its level.
    cluster.deployed("tenant", 30900).await;
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(cluster.client.clone(), NS);
    assert!(pods.get_opt("tenant-0").await.unwrap().is_some());

    // Whoever may create pods there (the local service's role) cannot reach the node.
    let escape: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "escape" },
        "spec": {
            "containers": [{ "name": "shell", "image": "busybox:1.36",
                             "securityContext": { "privileged": true } }],
            "volumes": [{ "name": "host", "hostPath": { "path": "/" } }],
        },
    }))
    .unwrap();
    let refused = pods
        .create(&kube::api::PostParams::default(), &escape)
        .await
        .unwrap_err();
    let kube::Error::Api(status) = refused else {
        panic!("{refused:?}");
    };
    assert_eq!(status.code, 403, "{status:?}");
    assert!(
        status
            .message
            .contains("violates PodSecurity \"baseline:latest\""),
        "{status:?}"
    );
}

/// A local volume root from setup's body replaces the global's storage class: the server
/// refuses both at once, so the local service would never start with the two.
#[tokio::test]
async fn a_local_volume_root_replaces_the_global_s_storage_class() {
    use framedb_k8s::config_service::{ConfigService, Install, Settings};

    let cluster = Cluster::start(Duration::ZERO).await;
    let mut settings = Settings::default();
    settings.instance_layout.storage = framedb_k8s::Storage::Dynamic {
        storage_class: Some("fast".into()),
    };
    let install = Install {
        storage_size: framedb_core::StorageSize::new("1Gi").unwrap(),
        cluster_id: cluster_id(),
        token: None,
        local_volume_root: Some("/var/lib/framedb-volumes".into()),
    };
    let service = ConfigService::new(&cluster.client, &settings, "cluster-01");
    service.setup(&install).await.unwrap();
    let flags = service.status().await.unwrap().settings;
    assert_eq!(
        flags.get("FRAMEDB_LOCAL_VOLUME_ROOT").map(String::as_str),
        Some("/var/lib/framedb-volumes")
    );
    assert!(!flags.contains_key("FRAMEDB_STORAGE_CLASS"), "{flags:?}");
}
