//! The config service's MongoDB keeps its registry when its pod moves (issue 14, point 8):
//! a StatefulSet on a claim of its own, with authentication from a generated Secret,
//! resources and probes, read back from the simulated cluster.
//!
//! The simulator runs no `mongod`, so "with its records" is shown by the volume's
//! identity: the pod after a rollout or a reschedule mounts the same claim (same uid),
//! bound to the same PersistentVolume, which is where `mongod` keeps its data files.

use std::time::Duration;

use framedb_k8s::config_service::{
    ConfigService, Install, MONGODB_CLAIM, MONGODB_SECRET, MONGODB_VOLUME, Settings,
};
use framedb_kube_sim::SimConfig;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, EvictParams, ListParams, PostParams};

use super::{Cluster, TIME_SCALE, cluster_id, eventually};

const NS: &str = "framedb-config";
const WAIT: Duration = Duration::from_secs(15);

fn install(local_volume_root: Option<&str>) -> Install {
    Install {
        storage_size: framedb_core::StorageSize::new("1Gi").unwrap(),
        cluster_id: cluster_id(),
        token: Some("t".into()),
        local_volume_root: local_volume_root.map(str::to_owned),
    }
}

async fn set_up(cluster: &Cluster, settings: &Settings, install: &Install) {
    ConfigService::new(&cluster.client, settings, "cluster-01")
        .setup(install)
        .await
        .unwrap();
}

/// MongoDB's pods, terminating ones included.
async fn mongodb_pods(client: &kube::Client) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), NS)
        .list(&ListParams::default().labels("app.kubernetes.io/name=mongodb"))
        .await
        .unwrap()
        .items
}

fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The ready `mongodb-0` once there is one (other than the pod of uid `not`).
async fn ready_mongodb(client: &kube::Client, not: Option<&str>) -> Pod {
    let pods = Api::<Pod>::namespaced(client.clone(), NS);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let found = pods.get_opt("mongodb-0").await.unwrap();
        if let Some(pod) = found.filter(|p| is_ready(p) && p.metadata.uid.as_deref() != not) {
            return pod;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "mongodb-0 never became ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The claim `pod` mounts at `/data/db`, and that claim's uid and volume.
async fn data_of(client: &kube::Client, pod: &Pod) -> (String, String, String) {
    let spec = pod.spec.as_ref().unwrap();
    let mount = spec.containers[0]
        .volume_mounts
        .as_deref()
        .unwrap()
        .iter()
        .find(|m| m.mount_path == "/data/db")
        .unwrap();
    let volume = spec
        .volumes
        .as_deref()
        .unwrap()
        .iter()
        .find(|v| v.name == mount.name)
        .unwrap();
    let name = volume
        .persistent_volume_claim
        .as_ref()
        .unwrap()
        .claim_name
        .clone();
    let claim = Api::<PersistentVolumeClaim>::namespaced(client.clone(), NS)
        .get(&name)
        .await
        .unwrap();
    (
        name,
        claim.metadata.uid.unwrap(),
        claim.spec.unwrap().volume_name.unwrap(),
    )
}

#[tokio::test]
async fn setup_runs_mongodb_as_a_stateful_set_with_its_claim_auth_probes_and_resources() {
    let cluster = Cluster::start(Duration::ZERO).await;
    let settings = Settings::default();
    set_up(&cluster, &settings, &install(None)).await;

    let set = Api::<StatefulSet>::namespaced(cluster.client.clone(), NS)
        .get("mongodb")
        .await
        .unwrap();
    let spec = set.spec.unwrap();
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.service_name.as_deref(), Some("mongodb"));
    assert_eq!(spec.pod_management_policy.as_deref(), Some("OrderedReady"));
    let retention = spec.persistent_volume_claim_retention_policy.unwrap();
    assert_eq!(retention.when_deleted.as_deref(), Some("Retain"));
    let templates = spec.volume_claim_templates.unwrap();
    assert_eq!(templates.len(), 1);
    assert_eq!(templates[0].metadata.name.as_deref(), Some("data"));
    // No class named: the cluster's default.
    assert_eq!(templates[0].spec.as_ref().unwrap().storage_class_name, None);

    let pod = spec.template.spec.unwrap();
    let mongod = &pod.containers[0];
    assert_eq!(
        mongod.image.as_deref(),
        Some(framedb_k8s::config_service::DEFAULT_MONGO_IMAGE)
    );
    for (name, key) in [
        ("MONGO_INITDB_ROOT_USERNAME", "username"),
        ("MONGO_INITDB_ROOT_PASSWORD", "password"),
    ] {
        let env = mongod.env.as_deref().unwrap();
        let var = env.iter().find(|e| e.name == name).unwrap();
        assert!(var.value.is_none(), "{name} has a value in the spec");
        let source = var.value_from.as_ref().unwrap().secret_key_ref.as_ref();
        let source = source.unwrap();
        assert_eq!(
            (source.name.as_str(), source.key.as_str()),
            (MONGODB_SECRET, key)
        );
    }
    let readiness = mongod.readiness_probe.as_ref().unwrap();
    let command = readiness.exec.as_ref().unwrap().command.clone().unwrap();
    assert_eq!(command[0], "mongosh");
    assert!(command.iter().any(|c| c.contains("ping")), "{command:?}");
    assert!(mongod.liveness_probe.as_ref().unwrap().tcp_socket.is_some());
    assert!(mongod.startup_probe.is_some());
    let resources = mongod.resources.as_ref().unwrap();
    let requests = resources.requests.as_ref().unwrap();
    let limits = resources.limits.as_ref().unwrap();
    assert_eq!(requests["memory"], limits["memory"]);
    assert!(requests.contains_key("cpu"));
    let hardened = mongod.security_context.as_ref().unwrap();
    assert_eq!(hardened.allow_privilege_escalation, Some(false));
    assert_eq!(hardened.run_as_non_root, Some(true));
    let seccomp = pod
        .security_context
        .as_ref()
        .unwrap()
        .seccomp_profile
        .as_ref();
    assert_eq!(seccomp.unwrap().type_, "RuntimeDefault");

    // The StatefulSet made the claim on the default class, and the pod runs on it.
    let running = ready_mongodb(&cluster.client, None).await;
    let (claim, _, volume) = data_of(&cluster.client, &running).await;
    assert_eq!(claim, MONGODB_CLAIM);
    let claim = Api::<PersistentVolumeClaim>::namespaced(cluster.client.clone(), NS)
        .get(MONGODB_CLAIM)
        .await
        .unwrap();
    assert_eq!(
        claim.spec.unwrap().storage_class_name.as_deref(),
        Some("standard")
    );
    assert!(volume.starts_with("pvc-"), "{volume}");
    // The old Deployment is not what runs MongoDB any more.
    let old = Api::<Deployment>::namespaced(cluster.client.clone(), NS)
        .get_opt("mongodb")
        .await
        .unwrap();
    assert!(old.is_none());
    let report = ConfigService::new(&cluster.client, &settings, "cluster-01")
        .status()
        .await
        .unwrap();
    assert_eq!(report.stateful_sets[0].name, "mongodb");
    assert!(report.stateful_sets[0].exists);
    assert_eq!(report.persistent_volume_claim.name, MONGODB_CLAIM);
}

#[tokio::test]
async fn the_claim_template_uses_the_layout_s_storage_class() {
    let cluster = Cluster::start(Duration::ZERO).await;
    let mut settings = Settings::default();
    settings.instance_layout.storage = framedb_k8s::Storage::Dynamic {
        storage_class: Some("network".into()),
    };
    network_class(&cluster.client, "network").await;
    set_up(&cluster, &settings, &install(None)).await;
    let running = ready_mongodb(&cluster.client, None).await;
    let (_, _, volume) = data_of(&cluster.client, &running).await;
    let volume = Api::<PersistentVolume>::all(cluster.client.clone())
        .get(&volume)
        .await
        .unwrap();
    assert_eq!(
        volume.spec.unwrap().storage_class_name.as_deref(),
        Some("network")
    );
}

/// A class whose volumes any node reaches (a network disk): bound at once, provisioned
/// without node affinity.
async fn network_class(client: &kube::Client, name: &str) {
    let class: StorageClass = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "provisioner": "example.com/network-disk",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }))
    .unwrap();
    Api::<StorageClass>::all(client.clone())
        .create(&PostParams::default(), &class)
        .await
        .unwrap();
}

/// A new template (another MongoDB image) rolls the pod: the StatefulSet deletes it and
/// makes its successor only once it is gone, so there is never a second `mongod` on the
/// data; the successor mounts the same claim, bound to the same volume.
#[tokio::test]
async fn mongodb_survives_a_rollout_on_the_same_claim_one_pod_at_a_time() {
    let newer = "docker.io/library/mongo:7.0.14";
    let cluster = Cluster::start_with(
        SimConfig::new("cluster-01")
            .with_images(framedb_k8s::default_images())
            .with_image(newer)
            .with_time_scale(TIME_SCALE),
    )
    .await;
    let mut settings = Settings::default();
    set_up(&cluster, &settings, &install(None)).await;
    let first = ready_mongodb(&cluster.client, None).await;
    let before = data_of(&cluster.client, &first).await;

    settings.mongo_image = newer.into();
    set_up(&cluster, &settings, &install(None)).await;
    let uid = first.metadata.uid.clone().unwrap();
    let mut most = 0;
    let deadline = tokio::time::Instant::now() + WAIT;
    let next = loop {
        let pods = mongodb_pods(&cluster.client).await;
        most = most.max(pods.len());
        if let Some(next) = pods
            .into_iter()
            .find(|p| p.metadata.uid.as_deref() != Some(uid.as_str()) && is_ready(p))
        {
            break next;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pod was never replaced"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(most, 1, "two MongoDB pods at once");
    assert_eq!(
        next.spec.as_ref().unwrap().containers[0].image.as_deref(),
        Some(newer)
    );
    assert_eq!(data_of(&cluster.client, &next).await, before);
}

/// The pod deleted, or its node drained: the replacement mounts the same claim. On the
/// default class (local-path: a volume lives on one node) it follows the volume's node
/// affinity back to that node, waiting while the node is cordoned; on a network class it
/// moves to another node with its volume.
#[tokio::test]
async fn mongodb_survives_a_reschedule_on_the_same_claim() {
    let cluster = Cluster::start(Duration::ZERO).await;
    let settings = Settings::default();
    set_up(&cluster, &settings, &install(None)).await;
    let first = ready_mongodb(&cluster.client, None).await;
    let before = data_of(&cluster.client, &first).await;
    let node = first.spec.as_ref().unwrap().node_name.clone().unwrap();
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), NS);

    // Deleted: made again, on the volume's node.
    pods.delete("mongodb-0", &Default::default()).await.unwrap();
    let second = ready_mongodb(&cluster.client, first.metadata.uid.as_deref()).await;
    assert_eq!(data_of(&cluster.client, &second).await, before);
    assert_eq!(
        second.spec.as_ref().unwrap().node_name.as_ref(),
        Some(&node)
    );

    // Drained: the volume's node is cordoned, so the replacement waits for it (a real
    // local-path volume cannot follow the pod) and runs there once it is back.
    let nodes = Api::<Node>::all(cluster.client.clone());
    nodes.cordon(&node).await.unwrap();
    pods.evict("mongodb-0", &EvictParams::default())
        .await
        .unwrap();
    let waiting = eventually(WAIT, || async {
        pods.get_opt("mongodb-0").await.unwrap().is_some_and(|p| {
            p.metadata.uid != second.metadata.uid && p.spec.as_ref().unwrap().node_name.is_none()
        })
    })
    .await;
    assert!(waiting, "the replacement was placed away from its volume");
    nodes.uncordon(&node).await.unwrap();
    let third = ready_mongodb(&cluster.client, second.metadata.uid.as_deref()).await;
    assert_eq!(data_of(&cluster.client, &third).await, before);
    assert_eq!(third.spec.as_ref().unwrap().node_name.as_ref(), Some(&node));
}

#[tokio::test]
async fn on_a_network_class_mongodb_moves_to_another_node_with_its_claim() {
    let cluster = Cluster::start(Duration::ZERO).await;
    let mut settings = Settings::default();
    settings.instance_layout.storage = framedb_k8s::Storage::Dynamic {
        storage_class: Some("network".into()),
    };
    network_class(&cluster.client, "network").await;
    set_up(&cluster, &settings, &install(None)).await;
    let first = ready_mongodb(&cluster.client, None).await;
    let before = data_of(&cluster.client, &first).await;
    let node = first.spec.as_ref().unwrap().node_name.clone().unwrap();

    Api::<Node>::all(cluster.client.clone())
        .cordon(&node)
        .await
        .unwrap();
    Api::<Pod>::namespaced(cluster.client.clone(), NS)
        .evict("mongodb-0", &EvictParams::default())
        .await
        .unwrap();
    let moved = ready_mongodb(&cluster.client, first.metadata.uid.as_deref()).await;
    assert_ne!(moved.spec.as_ref().unwrap().node_name.as_ref(), Some(&node));
    assert_eq!(data_of(&cluster.client, &moved).await, before);
}

/// The password is made once (a second setup keeps it: `mongod` made its root user with
/// it), and it is in no spec and no status: the workloads name the Secret's key only.
#[tokio::test]
async fn the_mongodb_password_is_made_once_and_shown_nowhere() {
    let cluster = Cluster::start(Duration::ZERO).await;
    let settings = Settings::default();
    let secrets = Api::<Secret>::namespaced(cluster.client.clone(), NS);
    let password =
        |secret: Secret| String::from_utf8(secret.data.unwrap()["password"].0.clone()).unwrap();
    set_up(&cluster, &settings, &install(None)).await;
    let first = password(secrets.get(MONGODB_SECRET).await.unwrap());
    assert!(first.len() >= 32, "a short password");
    assert!(
        first
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "the password needs URL escaping"
    );
    set_up(&cluster, &settings, &install(None)).await;
    assert_eq!(password(secrets.get(MONGODB_SECRET).await.unwrap()), first);

    let set = Api::<StatefulSet>::namespaced(cluster.client.clone(), NS)
        .get("mongodb")
        .await
        .unwrap();
    let local = Api::<Deployment>::namespaced(cluster.client.clone(), NS)
        .get("framedb-config")
        .await
        .unwrap();
    for spec in [
        serde_json::to_string(&set).unwrap(),
        serde_json::to_string(&local).unwrap(),
    ] {
        assert!(!spec.contains(&first), "the password is in a spec");
    }
    // The local service's URI names it as a variable the kubelet expands.
    let env = local.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap();
    let uri = env.iter().find(|e| e.name == "FRAMEDB_MONGO_URI").unwrap();
    assert_eq!(
        uri.value.as_deref(),
        Some(
            "mongodb://framedb:$(FRAMEDB_MONGO_PASSWORD)@mongodb.framedb-config.svc:27017/\
             ?authSource=admin"
        )
    );
    let position = |name: &str| env.iter().position(|e| e.name == name).unwrap();
    assert!(
        position("FRAMEDB_MONGO_PASSWORD") < position("FRAMEDB_MONGO_URI"),
        "a dependent variable is expanded only from those before it"
    );
    let report = ConfigService::new(&cluster.client, &settings, "cluster-01")
        .status()
        .await
        .unwrap();
    let shown = format!("{report:?} {}", serde_json::to_string(&report).unwrap());
    assert!(!shown.contains(&first), "the password is in the status");
}

/// Without a dynamic provisioner, the registry is a `local` volume pinned to the first
/// Ready, schedulable node, whose directory the pod makes; setup again keeps it there.
#[tokio::test]
async fn with_local_volumes_the_registry_is_pinned_to_one_node() {
    let cluster = Cluster::start(Duration::ZERO).await;
    let settings = Settings::default();
    let nodes = Api::<Node>::all(cluster.client.clone());
    // node-a, first by name, cannot take it now.
    nodes.cordon("node-a").await.unwrap();
    set_up(&cluster, &settings, &install(Some("/mnt/framedb/"))).await;
    // Its pod mounts a `hostPath`, which the namespace lets it (whatever the cluster's
    // default Pod Security level).
    let namespace = Api::<k8s_openapi::api::core::v1::Namespace>::all(cluster.client.clone())
        .get(NS)
        .await
        .unwrap();
    assert_eq!(
        namespace.metadata.labels.unwrap()["pod-security.kubernetes.io/enforce"],
        "privileged"
    );
    let volume = Api::<PersistentVolume>::all(cluster.client.clone())
        .get(MONGODB_VOLUME)
        .await
        .unwrap();
    let spec = volume.spec.unwrap();
    // This installation's directory: named after its MongoDB Secret, so that a setup
    // after a remove never opens a directory whose users it cannot log in as.
    let secret = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(cluster.client.clone(), NS)
        .get("framedb-config-mongodb")
        .await
        .unwrap();
    assert_eq!(
        spec.local.as_ref().unwrap().path,
        format!(
            "/mnt/framedb/.framedb-config-mongodb-{}",
            secret.metadata.uid.unwrap()
        )
    );
    assert_eq!(
        spec.persistent_volume_reclaim_policy.as_deref(),
        Some("Retain")
    );
    let terms = spec
        .node_affinity
        .unwrap()
        .required
        .unwrap()
        .node_selector_terms;
    let pinned = terms[0].match_expressions.as_ref().unwrap()[0].clone();
    assert_eq!(pinned.values.unwrap(), ["node-b"]);

    // Its directory made, the pod runs there on the pre-bound volume.
    let running = ready_mongodb(&cluster.client, None).await;
    assert_eq!(
        running.spec.as_ref().unwrap().node_name.as_deref(),
        Some("node-b")
    );
    assert_eq!(data_of(&cluster.client, &running).await.2, MONGODB_VOLUME);

    // Later setups keep the node the data is on, whatever is schedulable then.
    nodes.uncordon("node-a").await.unwrap();
    set_up(&cluster, &settings, &install(Some("/mnt/framedb"))).await;
    let volume = Api::<PersistentVolume>::all(cluster.client.clone())
        .get(MONGODB_VOLUME)
        .await
        .unwrap();
    let terms = volume
        .spec
        .unwrap()
        .node_affinity
        .unwrap()
        .required
        .unwrap();
    let pinned = terms.node_selector_terms[0]
        .match_expressions
        .clone()
        .unwrap();
    assert_eq!(pinned[0].values.clone().unwrap(), ["node-b"]);
    // And without a root now: the installed claim template and volume stay as they are.
    set_up(&cluster, &settings, &install(None)).await;
    let again = ready_mongodb(&cluster.client, None).await;
    assert_eq!(
        again.metadata.uid, running.metadata.uid,
        "the pod was rolled"
    );
}

/// A StatefulSet's claim templates cannot change (the API refuses with 422): a setup
/// asking for other storage than the installed one keeps the installed claim, and its
/// registry, instead of failing.
#[tokio::test]
async fn setup_again_with_other_storage_keeps_the_installed_claim() {
    let cluster = Cluster::start(Duration::ZERO).await;
    let settings = Settings::default();
    set_up(&cluster, &settings, &install(None)).await;
    let first = ready_mongodb(&cluster.client, None).await;
    let before = data_of(&cluster.client, &first).await;

    let mut bigger = install(Some("/mnt/framedb"));
    bigger.storage_size = framedb_core::StorageSize::new("5Gi").unwrap();
    set_up(&cluster, &settings, &bigger).await;
    let volume = Api::<PersistentVolume>::all(cluster.client.clone())
        .get_opt(MONGODB_VOLUME)
        .await
        .unwrap();
    assert!(
        volume.is_none(),
        "a local volume beside the installed claim"
    );
    let again = ready_mongodb(&cluster.client, None).await;
    assert_eq!(again.metadata.uid, first.metadata.uid, "the pod was rolled");
    assert_eq!(data_of(&cluster.client, &again).await, before);
}

/// A cluster set up by the version before: its MongoDB Deployment goes, so two MongoDBs
/// never run side by side; remove takes its claim and volume with the new ones.
#[tokio::test]
async fn setup_retires_the_old_mongodb_deployment_and_remove_takes_its_volume() {
    let cluster = Cluster::start(Duration::ZERO).await;
    let settings = Settings::default();
    set_up(&cluster, &settings, &install(None)).await;
    let old: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "mongodb", "labels": {"app.kubernetes.io/name": "mongodb"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "mongodb"}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "mongodb"}},
                "spec": {"containers": [{"name": "mongodb", "image": framedb_k8s::config_service::DEFAULT_MONGO_IMAGE}]},
            },
        },
    }))
    .unwrap();
    let deployments = Api::<Deployment>::namespaced(cluster.client.clone(), NS);
    deployments
        .create(&PostParams::default(), &old)
        .await
        .unwrap();
    let old_volume: PersistentVolume = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "framedb-config-mongodb"},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "hostPath": {"path": "/var/lib/framedb-config/mongodb", "type": "DirectoryOrCreate"},
        },
    }))
    .unwrap();
    let volumes = Api::<PersistentVolume>::all(cluster.client.clone());
    volumes
        .create(&PostParams::default(), &old_volume)
        .await
        .unwrap();

    set_up(&cluster, &settings, &install(None)).await;
    assert!(deployments.get_opt("mongodb").await.unwrap().is_none());
    let alone = eventually(WAIT, || async {
        let pods = mongodb_pods(&cluster.client).await;
        pods.len() == 1 && pods[0].metadata.name.as_deref() == Some("mongodb-0")
    })
    .await;
    assert!(alone, "the old MongoDB's pod stayed");
    // Setup left the old volume alone (it may hold the old registry).
    assert!(
        volumes
            .get_opt("framedb-config-mongodb")
            .await
            .unwrap()
            .is_some()
    );

    ConfigService::new(&cluster.client, &settings, "cluster-01")
        .remove()
        .await
        .unwrap();
    let gone = eventually(WAIT, || async {
        volumes
            .get_opt("framedb-config-mongodb")
            .await
            .unwrap()
            .is_none()
    })
    .await;
    assert!(gone, "remove left the old volume");
}

/// The node under MongoDB goes down: after the `not-ready` toleration (300 s) its pod is
/// evicted but stays `Terminating`, since no kubelet confirms it stopped, and the
/// StatefulSet makes no second pod meanwhile (at most one `mongod` on the data, which a
/// Deployment would not hold to). Once the operator force-deletes it (the node is known
/// dead), the replacement runs on another node with the same claim (a network class).
#[tokio::test]
async fn a_down_node_keeps_one_mongodb_until_its_pod_is_force_deleted() {
    let cluster = Cluster::start(Duration::ZERO).await;
    let mut settings = Settings::default();
    settings.instance_layout.storage = framedb_k8s::Storage::Dynamic {
        storage_class: Some("network".into()),
    };
    network_class(&cluster.client, "network").await;
    set_up(&cluster, &settings, &install(None)).await;
    let first = ready_mongodb(&cluster.client, None).await;
    let before = data_of(&cluster.client, &first).await;
    let node = first.spec.as_ref().unwrap().node_name.clone().unwrap();

    cluster
        .sim
        .set_node_ready(&node, framedb_kube_sim::NodeReadiness::NotReady);
    let pods = Api::<Pod>::namespaced(cluster.client.clone(), NS);
    let evicted = eventually(WAIT, || async {
        pods.get("mongodb-0")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    })
    .await;
    assert!(evicted, "the pod on the down node was never evicted");
    // Its grace period (30 s, half a second here) long past: still the one pod.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < deadline {
        let all = mongodb_pods(&cluster.client).await;
        assert_eq!(all.len(), 1, "a second MongoDB pod beside the stuck one");
        assert_eq!(all[0].metadata.uid, first.metadata.uid);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    pods.delete(
        "mongodb-0",
        &kube::api::DeleteParams::default().grace_period(0),
    )
    .await
    .unwrap();
    let moved = ready_mongodb(&cluster.client, first.metadata.uid.as_deref()).await;
    assert_ne!(moved.spec.as_ref().unwrap().node_name.as_ref(), Some(&node));
    assert_eq!(data_of(&cluster.client, &moved).await, before);
}
