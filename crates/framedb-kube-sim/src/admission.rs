//! Validation and defaulting of written objects, per type, with the field paths and
//! wording of the real API server's 422 answers. Deliberately partial: it checks what a
//! deployer can get wrong in ways a real cluster would refuse.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use super::allocations::Allocations;
use super::json::{default_at, meta, now_rfc3339, object_at, str_at};
use super::quantity::units;
use super::resources::{
    DEPLOYMENTS, DISRUPTION_BUDGETS, NAMESPACES, NETWORK_POLICIES, NODES, NameRule, ObjKey, PODS,
    PVCS, PVS, ResourceDef, SERVICES, STATEFULSETS, STORAGE_CLASSES,
};
use super::selectors::LabelSelector;
use super::services;
use super::status::FieldError;

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn is_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// The naming rule of `res` applied to `name`.
pub(crate) fn validate_name(res: &ResourceDef, name: &str) -> Option<FieldError> {
    let value = json!(name);
    let bad = |detail: &str| Some(FieldError::invalid("metadata.name", &value, detail));
    match res.name_rule {
        NameRule::Subdomain => {
            if name.len() > 253 {
                bad("must be no more than 253 characters")
            } else if !name.split('.').all(is_label) {
                bad(SUBDOMAIN_MSG)
            } else {
                None
            }
        }
        NameRule::Label | NameRule::Dns1035 => {
            let starts_right = res.name_rule == NameRule::Label
                || name.starts_with(|c: char| c.is_ascii_lowercase());
            if name.len() > 63 {
                bad("must be no more than 63 characters")
            } else if !is_label(name) || !starts_right {
                bad(if res.name_rule == NameRule::Label {
                    LABEL_MSG
                } else {
                    DNS1035_MSG
                })
            } else {
                None
            }
        }
    }
}

/// Defaults and validates `obj` (being created when `old` is `None`); returns the field
/// errors, empty when the object may be stored.
pub(crate) fn prepare(
    alloc: &mut Allocations,
    res: &ResourceDef,
    key: &ObjKey,
    obj: &mut Value,
    old: Option<&Value>,
) -> Vec<FieldError> {
    let creating = old.is_none();
    match res.plural {
        NAMESPACES => {
            let name = meta(obj, "name").to_string();
            object_at(obj, &["metadata", "labels"])
                .insert("kubernetes.io/metadata.name".into(), json!(name));
            match old {
                // `spec.finalizers` changes only through `/finalize`, which the namespace
                // controller uses (the simulator's does so from within).
                Some(old) => obj["spec"]["finalizers"] = old["spec"]["finalizers"].clone(),
                None => default_at(obj, &["spec", "finalizers"], json!(["kubernetes"])),
            }
            if creating {
                obj["status"] = json!({ "phase": "Active" });
            }
            Vec::new()
        }
        NODES => {
            prepare_node(alloc, obj);
            Vec::new()
        }
        SERVICES => services::prepare(alloc, key, obj, old),
        PODS => {
            let errors = validate_pod_spec(&obj["spec"], "spec");
            default_pod_spec(object_at(obj, &["spec"]));
            if creating {
                obj["status"] = json!({ "phase": "Pending", "qosClass": "BestEffort" });
                default_toleration_seconds(obj);
            }
            errors
        }
        PVCS => {
            if creating {
                protect(obj, PVC_PROTECTION);
            }
            prepare_claim(obj, old)
        }
        PVS => {
            if creating {
                protect(obj, PV_PROTECTION);
            }
            prepare_volume(obj, creating)
        }
        "secrets" => {
            prepare_secret(obj);
            Vec::new()
        }
        DEPLOYMENTS | STATEFULSETS => prepare_workload(res, obj, old),
        NETWORK_POLICIES => prepare_network_policy(obj),
        DISRUPTION_BUDGETS => prepare_disruption_budget(obj, creating),
        STORAGE_CLASSES => prepare_storage_class(obj, old),
        _ => Vec::new(),
    }
}

/// The `DefaultTolerationSeconds` admission plugin
/// (plugin/pkg/admission/defaulttolerationseconds): a new pod that does not already
/// tolerate them gets tolerations of the node lifecycle controller's `NoExecute` taints,
/// `node.kubernetes.io/not-ready` and `node.kubernetes.io/unreachable`, for 300 seconds
/// (`--default-not-ready-toleration-seconds`, `--default-unreachable-toleration-seconds`).
fn default_toleration_seconds(pod: &mut Value) {
    const DEFAULT_SECONDS: u64 = 300;
    let tolerations: Vec<Value> = pod["spec"]["tolerations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // A toleration of the key (or of every key) with the `NoExecute` effect (or every
    // effect) counts, whatever its operator and seconds, as in the plugin.
    let tolerated = |taint: &str| {
        tolerations.iter().any(|t| {
            let key = str_at(t, &["key"]);
            (key.is_empty() || key == taint) && matches!(str_at(t, &["effect"]), "" | "NoExecute")
        })
    };
    let mut added = tolerations.clone();
    for taint in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        if !tolerated(taint) {
            added.push(json!({
                "key": taint, "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": DEFAULT_SECONDS,
            }));
        }
    }
    if added.len() != tolerations.len() {
        object_at(pod, &["spec"]).insert("tolerations".into(), json!(added));
    }
}

/// The finalizer that keeps a claim while a pod uses it.
pub(crate) const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
/// The finalizer that keeps a volume while a claim is bound to it.
pub(crate) const PV_PROTECTION: &str = "kubernetes.io/pv-protection";

/// The `StorageObjectInUseProtection` admission plugin: every new claim and volume gets
/// its protection finalizer, which its protection controller removes once unused.
fn protect(obj: &mut Value, finalizer: &str) {
    let metadata = object_at(obj, &["metadata"]);
    let finalizers = metadata.entry("finalizers").or_insert_with(|| json!([]));
    if !finalizers.is_array() {
        *finalizers = json!([]);
    }
    let list = finalizers.as_array_mut().expect("just made an array");
    if !list.iter().any(|f| f == finalizer) {
        list.push(json!(finalizer));
    }
}

/// The node conditions a kubelet posts, in its order.
pub(crate) const KUBELET_CONDITIONS: [&str; 4] =
    ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"];

/// The status, reason and message of a healthy kubelet's condition of type `kind`, as its
/// node status setters post it.
pub(crate) fn kubelet_condition(kind: &str) -> Option<(&'static str, &'static str, &'static str)> {
    let (reason, message) = match kind {
        "Ready" => return Some(("True", "KubeletReady", "kubelet is posting ready status")),
        "MemoryPressure" => (
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        "DiskPressure" => ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        "PIDPressure" => (
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        _ => return None,
    };
    Some(("False", reason, message))
}

fn prepare_node(alloc: &mut Allocations, obj: &mut Value) {
    let name = meta(obj, "name").to_string();
    let labels = object_at(obj, &["metadata", "labels"]);
    for (k, v) in [
        ("kubernetes.io/hostname", name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
    ] {
        labels.entry(k.to_string()).or_insert_with(|| json!(v));
    }
    object_at(obj, &["spec"]);
    if obj["status"]["conditions"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        let ip = alloc.next_node_ip();
        let now = now_rfc3339();
        // What the node was made with (a `SimNode`'s size), else a kubelet's default.
        let mut capacity =
            json!({ "cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi" });
        if let Some(given) = obj["status"]["capacity"].as_object() {
            for (name, value) in given {
                capacity[name] = value.clone();
            }
        }
        // What a healthy kubelet posts.
        let conditions: Vec<Value> = KUBELET_CONDITIONS
            .into_iter()
            .filter_map(|kind| {
                let (status, reason, message) = kubelet_condition(kind)?;
                Some(json!({
                    "type": kind, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": now, "lastTransitionTime": now,
                }))
            })
            .collect();
        obj["status"] = json!({
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": conditions,
            "addresses": [{ "type": "InternalIP", "address": ip }, { "type": "Hostname", "address": name }],
            "nodeInfo": {
                "kubeletVersion": "v1.33.0", "kubeProxyVersion": "v1.33.0",
                "containerRuntimeVersion": "containerd://2.0.0", "operatingSystem": "linux",
                "architecture": "amd64", "osImage": "FrameDB simulated node",
                "kernelVersion": "6.0.0", "machineID": "", "systemUUID": "", "bootID": "",
            },
        });
    }
}

/// Pod spec checks shared by pods and workload templates (`path` is where the spec is).
fn validate_pod_spec(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let containers = spec["containers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if containers.is_empty() {
        errors.push(FieldError::required(format!("{path}.containers"), ""));
    }
    let mut seen = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let name = str_at(c, &["name"]);
        if name.is_empty() {
            errors.push(FieldError::required(
                format!("{path}.containers[{i}].name"),
                "",
            ));
        } else if seen.contains(&name) {
            errors.push(FieldError::duplicate(
                format!("{path}.containers[{i}].name"),
                &json!(name),
            ));
        } else if !is_label(name) || name.len() > 63 {
            errors.push(FieldError::invalid(
                format!("{path}.containers[{i}].name"),
                &json!(name),
                LABEL_MSG,
            ));
        }
        seen.push(name);
        if str_at(c, &["image"]).is_empty() {
            errors.push(FieldError::required(
                format!("{path}.containers[{i}].image"),
                "",
            ));
        }
    }
    errors
}

fn default_pod_spec(spec: &mut serde_json::Map<String, Value>) {
    for (k, v) in [
        ("restartPolicy", json!("Always")),
        ("dnsPolicy", json!("ClusterFirst")),
        ("schedulerName", json!("default-scheduler")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("securityContext", json!({})),
    ] {
        if spec.get(k).is_none_or(Value::is_null) {
            spec.insert(k.to_string(), v);
        }
    }
    if let Some(containers) = spec.get_mut("containers").and_then(Value::as_array_mut) {
        for c in containers.iter_mut().filter(|c| c.is_object()) {
            let policy = if str_at(c, &["image"]).ends_with(":latest")
                || !str_at(c, &["image"]).contains(':')
            {
                "Always"
            } else {
                "IfNotPresent"
            };
            default_at(c, &["imagePullPolicy"], json!(policy));
            default_at(
                c,
                &["terminationMessagePath"],
                json!("/dev/termination-log"),
            );
            default_at(c, &["terminationMessagePolicy"], json!("File"));
            if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                for port in ports.iter_mut().filter(|p| p.is_object()) {
                    default_at(port, &["protocol"], json!("TCP"));
                }
            }
        }
    }
}

const ACCESS_MODES: [&str; 4] = [
    "ReadWriteOnce",
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOncePod",
];

fn validate_access_modes(obj: &Value, errors: &mut Vec<FieldError>) {
    let modes = obj["spec"]["accessModes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if modes.is_empty() {
        errors.push(FieldError::required(
            "spec.accessModes",
            "at least 1 access mode is required",
        ));
    }
    for (i, mode) in modes.iter().enumerate() {
        if !mode.as_str().is_some_and(|m| ACCESS_MODES.contains(&m)) {
            errors.push(FieldError::not_supported(
                format!("spec.accessModes[{i}]"),
                mode,
                &ACCESS_MODES,
            ));
        }
    }
}

fn prepare_claim(obj: &mut Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    validate_access_modes(obj, &mut errors);
    if str_at(obj, &["spec", "resources", "requests", "storage"]).is_empty() {
        errors.push(FieldError::required("spec.resources[storage]", ""));
    }
    default_at(obj, &["spec", "volumeMode"], json!("Filesystem"));
    match old {
        None => obj["status"] = json!({ "phase": "Pending" }),
        Some(old) => errors.extend(claim_update_errors(old, obj)),
    }
    errors
}

/// A claim's spec is fixed at creation, but for its storage request once it is bound
/// (the binder's `volumeName` aside), as `ValidatePersistentVolumeClaimUpdate` says.
fn claim_update_errors(old: &Value, new: &Value) -> Vec<FieldError> {
    let bound = str_at(old, &["status", "phase"]) == "Bound";
    let comparable = |claim: &Value| {
        let mut spec = claim["spec"].clone();
        if let Some(spec) = spec.as_object_mut() {
            if bound {
                spec.remove("resources");
            }
            spec.remove("volumeAttributesClassName");
            // The binder fills volumeName in when the claim named none.
            if str_at(&old["spec"], &["volumeName"]).is_empty()
                || spec.get("volumeName").and_then(Value::as_str) == Some("")
            {
                spec.remove("volumeName");
            }
        }
        spec
    };
    let mut errors = Vec::new();
    // `ValidatePersistentVolumeClaimUpdate` with `RecoverVolumeExpansionFailure` (on by
    // default since 1.32): a bound claim may shrink its request only to above what its
    // status says it has.
    let request = |claim: &Value| {
        units(str_at(claim, &["spec", "resources", "requests", "storage"])).unwrap_or_default()
    };
    if bound && request(new) < request(old) {
        let detail = match units(str_at(old, &["status", "capacity", "storage"])) {
            Some(capacity) if request(new) <= capacity => {
                "field can not be less than status.capacity"
            }
            Some(_) => "",
            None => "field can not be less than previous value",
        };
        if !detail.is_empty() {
            errors.push(FieldError::forbidden(
                "spec.resources.requests.storage",
                detail,
            ));
        }
    }
    if comparable(old) != comparable(new) {
        errors.push(FieldError::forbidden(
            "spec",
            "spec is immutable after creation except resources.requests and \
             volumeAttributesClassName for bound claims",
        ));
    }
    errors
}

/// A StorageClass: `provisioner` required, `reclaimPolicy` `Delete` and
/// `volumeBindingMode` `Immediate` by default, and those three (and `parameters`) fixed
/// once created, as `ValidateStorageClass` and `ValidateStorageClassUpdate` say.
fn prepare_storage_class(obj: &mut Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if str_at(obj, &["provisioner"]).is_empty() {
        errors.push(FieldError::required("provisioner", ""));
    }
    default_at(obj, &["reclaimPolicy"], json!("Delete"));
    default_at(obj, &["volumeBindingMode"], json!("Immediate"));
    const MODES: [&str; 2] = ["Immediate", "WaitForFirstConsumer"];
    if !MODES.contains(&str_at(obj, &["volumeBindingMode"])) {
        errors.push(FieldError::not_supported(
            "volumeBindingMode",
            &obj["volumeBindingMode"],
            &MODES,
        ));
    }
    if let Some(old) = old {
        // `ValidateStorageClassUpdate`: these are fixed once the class exists.
        for (field, detail) in [
            ("parameters", "updates to parameters are forbidden."),
            ("provisioner", "updates to provisioner are forbidden."),
            ("reclaimPolicy", "updates to reclaimPolicy are forbidden."),
        ] {
            if old[field] != obj[field] {
                errors.push(FieldError::forbidden(field, detail));
            }
        }
        if old["volumeBindingMode"] != obj["volumeBindingMode"] {
            errors.push(FieldError::forbidden(
                "volumeBindingMode",
                "field is immutable",
            ));
        }
    }
    errors
}

/// The annotation that makes a StorageClass the cluster's default.
pub(crate) const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

/// The `DefaultStorageClass` admission plugin: a new claim that names no class (the field
/// absent, not `""`) gets the default class's name, the newest one if several are marked
/// default; without a default class it is left as it is.
pub(crate) fn default_storage_class(claim: &mut Value, classes: &[&Value]) {
    if !claim["spec"]["storageClassName"].is_null() {
        return;
    }
    let default = classes
        .iter()
        .filter(|c| c["metadata"]["annotations"][DEFAULT_CLASS_ANNOTATION] == "true")
        .max_by(|a, b| {
            (meta(a, "creationTimestamp"), meta(a, "name"))
                .cmp(&(meta(b, "creationTimestamp"), meta(b, "name")))
        });
    if let Some(class) = default
        && claim["spec"].is_object()
    {
        claim["spec"]["storageClassName"] = json!(meta(class, "name"));
    }
}

/// The `PersistentVolumeClaimResize` admission plugin: a claim's storage request may grow
/// only if its class allows volume expansion; why it refuses (403), if it does.
pub(crate) fn resize_refusal(old: &Value, new: &Value, classes: &[&Value]) -> Option<String> {
    let request = |claim: &Value| {
        units(str_at(claim, &["spec", "resources", "requests", "storage"])).unwrap_or_default()
    };
    if request(new) <= request(old) {
        return None;
    }
    if str_at(old, &["status", "phase"]) != "Bound" {
        return Some("Only bound persistent volume claims can be expanded".into());
    }
    let class = str_at(new, &["spec", "storageClassName"]);
    let allowed = !class.is_empty()
        && classes
            .iter()
            .any(|c| meta(c, "name") == class && c["allowVolumeExpansion"] == true);
    (!allowed).then(|| {
        "only dynamically provisioned pvc can be resized and the storageclass that \
         provisions the pvc must support resize"
            .into()
    })
}

/// The volume sources a PersistentVolume may name (one is required).
const VOLUME_SOURCES: [&str; 8] = [
    "hostPath",
    "local",
    "nfs",
    "csi",
    "iscsi",
    "fc",
    "awsElasticBlockStore",
    "gcePersistentDisk",
];

fn prepare_volume(obj: &mut Value, creating: bool) -> Vec<FieldError> {
    let mut errors = Vec::new();
    validate_access_modes(obj, &mut errors);
    if str_at(obj, &["spec", "capacity", "storage"]).is_empty() {
        errors.push(FieldError::required("spec.capacity", ""));
    }
    if !VOLUME_SOURCES.iter().any(|s| obj["spec"][*s].is_object()) {
        errors.push(FieldError::required("spec", "must specify a volume type"));
    }
    if obj["spec"]["local"].is_object() && !obj["spec"]["nodeAffinity"].is_object() {
        errors.push(FieldError::required(
            "spec.nodeAffinity",
            "Local volume requires node affinity",
        ));
    }
    default_at(
        obj,
        &["spec", "persistentVolumeReclaimPolicy"],
        json!("Retain"),
    );
    default_at(obj, &["spec", "volumeMode"], json!("Filesystem"));
    if creating {
        obj["status"] = json!({ "phase": "Available" });
    }
    errors
}

/// `stringData` is write-only: the API server folds it into base64 `data`.
fn prepare_secret(obj: &mut Value) {
    default_at(obj, &["type"], json!("Opaque"));
    // `data` is `[]byte`, which Go's JSON reads with `base64.StdEncoding`: line breaks
    // are skipped (kustomize's generators wrap long values), and it is written back
    // unbroken.
    if let Some(Value::Object(data)) = obj.get_mut("data") {
        for value in data.values_mut() {
            let Some(wrapped) = value.as_str().filter(|v| v.contains(['\r', '\n'])) else {
                continue;
            };
            let unbroken: String = wrapped
                .chars()
                .filter(|c| !matches!(c, '\r' | '\n'))
                .collect();
            if let Ok(bytes) = BASE64.decode(&unbroken) {
                *value = json!(BASE64.encode(bytes));
            }
        }
    }
    let Some(Value::Object(string_data)) = obj.as_object_mut().and_then(|m| m.remove("stringData"))
    else {
        return;
    };
    let data = object_at(obj, &["data"]);
    for (k, v) in string_data {
        if let Some(text) = v.as_str() {
            data.insert(k, json!(BASE64.encode(text)));
        }
    }
}

/// The protocols a NetworkPolicy port may name.
const POLICY_PROTOCOLS: [&str; 3] = ["TCP", "UDP", "SCTP"];
/// The policy types a NetworkPolicy may list.
const POLICY_TYPES: [&str; 2] = ["Ingress", "Egress"];

/// Defaults and validates a NetworkPolicy as the API server does: `podSelector` is
/// optional (empty: every pod of the namespace) and defaults to `{}`; `policyTypes`
/// defaults to `Ingress`, plus `Egress` when there are egress rules; a port's protocol
/// defaults to TCP. Selectors, policy types, ports and peers are checked.
fn prepare_network_policy(obj: &mut Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    default_at(obj, &["spec", "podSelector"], json!({}));
    validate_selector(&obj["spec"]["podSelector"], "spec.podSelector", &mut errors);
    if obj["spec"]["policyTypes"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        let egress = obj["spec"]["egress"]
            .as_array()
            .is_some_and(|e| !e.is_empty());
        obj["spec"]["policyTypes"] = if egress {
            json!(["Ingress", "Egress"])
        } else {
            json!(["Ingress"])
        };
    }
    let types = obj["spec"]["policyTypes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (i, ty) in types.iter().enumerate() {
        if !ty.as_str().is_some_and(|t| POLICY_TYPES.contains(&t)) {
            errors.push(FieldError::not_supported(
                format!("spec.policyTypes[{i}]"),
                ty,
                &POLICY_TYPES,
            ));
        }
    }
    if types.len() > POLICY_TYPES.len() {
        errors.push(FieldError::invalid(
            "spec.policyTypes",
            &json!(types),
            "may not specify more than two policyTypes",
        ));
    }
    for (direction, peers) in [("ingress", "from"), ("egress", "to")] {
        let Some(rules) = obj["spec"][direction].as_array_mut() else {
            continue;
        };
        for (i, rule) in rules.iter_mut().enumerate() {
            let path = format!("spec.{direction}[{i}]");
            for (j, port) in rule["ports"]
                .as_array_mut()
                .into_iter()
                .flatten()
                .enumerate()
            {
                default_at(port, &["protocol"], json!("TCP"));
                validate_policy_port(port, &format!("{path}.ports[{j}]"), &mut errors);
            }
            for (j, peer) in rule[peers].as_array().into_iter().flatten().enumerate() {
                validate_policy_peer(peer, &format!("{path}.{peers}[{j}]"), &mut errors);
            }
        }
    }
    errors
}

/// `spec.unhealthyPodEvictionPolicy`'s values.
const UNHEALTHY_POD_EVICTION_POLICIES: [&str; 2] = ["IfHealthyBudget", "AlwaysAllow"];

/// Validates a PodDisruptionBudget as `ValidatePodDisruptionBudgetSpec`
/// (pkg/apis/policy/validation) does: at most one of `minAvailable` and `maxUnavailable`,
/// each a non-negative integer or a percentage of at most 100%, a valid selector and a
/// known unhealthy-pod eviction policy. A new one's status is the disruption controller's
/// zeros (`PrepareForCreate`), which no controller here updates.
fn prepare_disruption_budget(obj: &mut Value, creating: bool) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let spec = &obj["spec"];
    let set = |field: &str| spec.get(field).is_some_and(|v| !v.is_null());
    if set("minAvailable") && set("maxUnavailable") {
        errors.push(FieldError::invalid(
            "spec",
            spec,
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for field in ["minAvailable", "maxUnavailable"] {
        let path = format!("spec.{field}");
        match &spec[field] {
            Value::Null => {}
            Value::Number(n) if n.as_i64().is_some_and(|n| n >= 0) => {}
            Value::Number(_) => errors.push(FieldError::invalid(
                path,
                &spec[field],
                "must be greater than or equal to 0",
            )),
            Value::String(percent) => match percent
                .strip_suffix('%')
                .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            {
                // Digits past u64 are past 100% too.
                Some(digits) if digits.parse::<u64>().is_ok_and(|n| n <= 100) => {}
                Some(_) => errors.push(FieldError::invalid(
                    path,
                    &spec[field],
                    "must not be greater than 100%",
                )),
                None => errors.push(FieldError::invalid(
                    path,
                    &spec[field],
                    "a valid percent string must be a numeric string followed by an ending '%' \
                     (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                )),
            },
            other => errors.push(FieldError::invalid(
                path,
                other,
                "must be an integer or percentage",
            )),
        }
    }
    validate_selector(&spec["selector"], "spec.selector", &mut errors);
    let policy = &spec["unhealthyPodEvictionPolicy"];
    if !policy.is_null()
        && !policy
            .as_str()
            .is_some_and(|p| UNHEALTHY_POD_EVICTION_POLICIES.contains(&p))
    {
        errors.push(FieldError::not_supported(
            "spec.unhealthyPodEvictionPolicy",
            policy,
            &UNHEALTHY_POD_EVICTION_POLICIES,
        ));
    }
    if creating {
        obj["status"] = json!({
            "disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0,
        });
    }
    errors
}

/// A structured label selector's operators and values.
fn validate_selector(selector: &Value, path: &str, errors: &mut Vec<FieldError>) {
    for (i, expr) in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("{path}.matchExpressions[{i}]");
        let values = expr["values"].as_array().map_or(0, Vec::len);
        match expr["operator"].as_str().unwrap_or_default() {
            "In" | "NotIn" if values == 0 => errors.push(FieldError::required(
                format!("{at}.values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if values > 0 => errors.push(FieldError::forbidden(
                format!("{at}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            _ => errors.push(FieldError::invalid(
                format!("{at}.operator"),
                &expr["operator"],
                "not a valid selector operator",
            )),
        }
    }
}

fn validate_policy_port(port: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let protocol = &port["protocol"];
    if !protocol
        .as_str()
        .is_some_and(|p| POLICY_PROTOCOLS.contains(&p))
    {
        errors.push(FieldError::not_supported(
            format!("{path}.protocol"),
            protocol,
            &POLICY_PROTOCOLS,
        ));
    }
    let number = port["port"].as_i64();
    match &port["port"] {
        Value::Null => {}
        Value::Number(_) if number.is_some_and(|n| (1..=65535).contains(&n)) => {}
        Value::String(name) if !name.is_empty() && name.len() <= 15 && is_label(name) => {}
        other => errors.push(FieldError::invalid(
            format!("{path}.port"),
            other,
            "must be between 1 and 65535, inclusive, or a valid port name",
        )),
    }
    if let Some(end) = port.get("endPort").filter(|v| !v.is_null()) {
        let end = end.as_i64().unwrap_or(0);
        match number {
            None => errors.push(FieldError::required(
                format!("{path}.port"),
                "must be specified when endPort is specified",
            )),
            Some(start) if end < start => errors.push(FieldError::invalid(
                format!("{path}.endPort"),
                &json!(end),
                "must be greater than or equal to `port`",
            )),
            Some(_) => {}
        }
    }
}

/// A peer names pods and/or namespaces by selector, or an IP block alone.
fn validate_policy_peer(peer: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let selectors = ["podSelector", "namespaceSelector"]
        .iter()
        .filter(|s| peer[**s].is_object())
        .count();
    let ip_block = peer["ipBlock"].is_object();
    if selectors == 0 && !ip_block {
        errors.push(FieldError::required(path, "must specify a peer"));
    } else if selectors > 0 && ip_block {
        errors.push(FieldError::forbidden(
            path,
            "may not specify more than 1 peer type",
        ));
    }
    for selector in ["podSelector", "namespaceSelector"] {
        validate_selector(&peer[selector], &format!("{path}.{selector}"), errors);
    }
    if ip_block && str_at(peer, &["ipBlock", "cidr"]).is_empty() {
        errors.push(FieldError::required(format!("{path}.ipBlock.cidr"), ""));
    }
}

fn prepare_workload(res: &ResourceDef, obj: &mut Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let spec = &obj["spec"];
    match spec.get("replicas").and_then(Value::as_i64) {
        Some(n) if n < 0 => errors.push(FieldError::invalid(
            "spec.replicas",
            &json!(n),
            "must be greater than or equal to 0",
        )),
        _ => {}
    }
    if spec["selector"].is_object() {
        match LabelSelector::from_object(&spec["selector"]) {
            None => errors.push(FieldError::invalid(
                "spec.selector",
                &spec["selector"],
                "invalid label selector",
            )),
            Some(sel) if sel.is_empty() => errors.push(FieldError::invalid(
                "spec.selector",
                &spec["selector"],
                format!("empty selector is invalid for {}", res.singular),
            )),
            Some(sel) if !sel.matches_object(&spec["template"]) => {
                errors.push(FieldError::invalid(
                    "spec.template.metadata.labels",
                    &spec["template"]["metadata"]["labels"],
                    "`selector` does not match template `labels`",
                ))
            }
            Some(_) => {}
        }
    } else {
        errors.push(FieldError::required("spec.selector", ""));
    }
    // A Deployment's selector is immutable; a StatefulSet's falls under the rule on its
    // whole spec below.
    if let Some(old) = old
        && res.plural == DEPLOYMENTS
        && old["spec"]["selector"] != obj["spec"]["selector"]
    {
        errors.push(FieldError::invalid(
            "spec.selector",
            &obj["spec"]["selector"],
            "field is immutable",
        ));
    }
    errors.extend(validate_pod_spec(
        &obj["spec"]["template"]["spec"],
        "spec.template.spec",
    ));
    default_at(obj, &["spec", "replicas"], json!(1));
    default_at(obj, &["spec", "revisionHistoryLimit"], json!(10));
    if res.plural == STATEFULSETS {
        default_at(obj, &["spec", "podManagementPolicy"], json!("OrderedReady"));
        // Field by field, as `SetDefaults_StatefulSet` does: a client may send the
        // structs empty (kubectl's protobuf bodies always carry them).
        if str_at(obj, &["spec", "updateStrategy", "type"]).is_empty() {
            default_at(
                obj,
                &["spec", "updateStrategy", "type"],
                json!("RollingUpdate"),
            );
            default_at(
                obj,
                &["spec", "updateStrategy", "rollingUpdate", "partition"],
                json!(0),
            );
        }
        for when in ["whenDeleted", "whenScaled"] {
            default_at(
                obj,
                &["spec", "persistentVolumeClaimRetentionPolicy", when],
                json!("Retain"),
            );
        }
    } else {
        // `SetDefaults_Deployment`, field by field.
        default_at(obj, &["spec", "strategy", "type"], json!("RollingUpdate"));
        if str_at(obj, &["spec", "strategy", "type"]) == "RollingUpdate" {
            for bound in ["maxSurge", "maxUnavailable"] {
                default_at(
                    obj,
                    &["spec", "strategy", "rollingUpdate", bound],
                    json!("25%"),
                );
            }
        }
        default_at(obj, &["spec", "progressDeadlineSeconds"], json!(600));
    }
    default_pod_spec(object_at(obj, &["spec", "template", "spec"]));
    if let Some(old) = old
        && res.plural == STATEFULSETS
        && fixed_statefulset_spec(old) != fixed_statefulset_spec(obj)
    {
        errors.push(FieldError::forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', \
             'template', 'updateStrategy', 'revisionHistoryLimit', \
             'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ));
    }
    if old.is_none() {
        obj["status"] = if res.plural == STATEFULSETS {
            json!({ "replicas": 0, "availableReplicas": 0 })
        } else {
            json!({})
        };
    }
    errors
}

/// The part of a StatefulSet's spec that an update may not change (`ValidateStatefulSetUpdate`).
fn fixed_statefulset_spec(statefulset: &Value) -> Value {
    let mut spec = statefulset["spec"].clone();
    if let Some(spec) = spec.as_object_mut() {
        for mutable in [
            "replicas",
            "ordinals",
            "template",
            "updateStrategy",
            "revisionHistoryLimit",
            "persistentVolumeClaimRetentionPolicy",
            "minReadySeconds",
        ] {
            spec.remove(mutable);
        }
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{by_plural, key};

    #[test]
    fn names() {
        let svc = by_plural("services");
        let pod = by_plural("pods");
        let ns = by_plural("namespaces");
        assert!(validate_name(svc, "db-1").is_none());
        assert!(validate_name(svc, "1db").is_some());
        assert!(validate_name(ns, "1db").is_none());
        assert!(validate_name(pod, "a.b-c").is_none());
        assert!(validate_name(ns, "a.b").is_some());
        assert!(validate_name(pod, "Bad_Name").is_some());
        assert!(validate_name(pod, "-a").is_some());
        assert!(validate_name(ns, &"a".repeat(64)).is_some());
    }

    #[test]
    fn secret_string_data_becomes_standard_base64_data() {
        let mut alloc = Allocations::new(1);
        let mut secret = json!({
            "metadata": { "name": "s" },
            "stringData": { "a": "", "b": "f", "c": "fo", "d": "foo", "e": "foob", "f": "foobar" },
            "data": { "kept": "eA==", "wrapped": "Zm9v\nYmFy\r\n" },
        });
        let errors = prepare(
            &mut alloc,
            by_plural("secrets"),
            &key("ns", "s"),
            &mut secret,
            None,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            secret,
            json!({
                "metadata": { "name": "s" },
                "type": "Opaque",
                "data": {
                    "kept": "eA==", "wrapped": "Zm9vYmFy", "a": "", "b": "Zg==", "c": "Zm8=", "d": "Zm9v",
                    "e": "Zm9vYg==", "f": "Zm9vYmFy",
                },
            })
        );
    }
}
