//! Server-side printing: `meta.k8s.io/v1` `Table` answers for clients that ask for them
//! (`kubectl get` does), with the columns `kubectl` users expect per type.

use serde_json::{Value, json};

use super::json::{age_seconds, human_duration, is_terminating, meta, str_at};
use super::resources::ResourceDef;

fn column(name: &str, kind: &str, priority: u8) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({ "name": name, "type": kind, "format": format, "description": "", "priority": priority })
}

fn age(obj: &Value) -> String {
    human_duration(age_seconds(meta(obj, "creationTimestamp")))
}

fn or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".to_string()
    } else {
        s.to_string()
    }
}

fn access_modes(modes: &Value) -> String {
    modes
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|m| match m {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A structured label selector as `kubectl` prints it: `k=v`, `k in (a,b)`, `k`, `!k`,
/// comma-separated and sorted by key.
fn format_selector(selector: &Value) -> String {
    let values = |expr: &Value| {
        let list: Vec<&str> = expr["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        list.join(",")
    };
    let mut parts: Vec<(String, String)> = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), format!("{k}={}", v.as_str().unwrap_or_default())))
        .collect();
    for expr in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = str_at(expr, &["key"]);
        let text = match str_at(expr, &["operator"]) {
            "In" => format!("{key} in ({})", values(expr)),
            "NotIn" => format!("{key} notin ({})", values(expr)),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => continue,
        };
        parts.push((key.to_string(), text));
    }
    parts.sort();
    parts
        .into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join(",")
}

/// A claim's or volume's phase, or `Terminating` while it is being deleted, as
/// `printPersistentVolumeClaim` and `printPersistentVolume` show it.
fn phase_or_terminating(obj: &Value) -> &str {
    if is_terminating(obj) {
        "Terminating"
    } else {
        str_at(obj, &["status", "phase"])
    }
}

/// A pod's READY, STATUS and RESTARTS as `printPod` makes them: the phase (or the pod's
/// `status.reason`); while its init containers run, `Init:N/M` or the reason of the one
/// that holds the others back (`Init:CrashLoopBackOff`); then replaced by a container's
/// waiting or terminated reason (the first container's that has one wins: the printer
/// walks them from the last), `Terminating` while it is deleted; restarts summed, with
/// the age of the last one. Sidecars (init containers with `restartPolicy: Always`)
/// count among the containers once started.
fn pod_columns(pod: &Value) -> (usize, usize, String, String) {
    let list = |at: &[&str]| {
        let mut value = pod;
        for key in at {
            value = &value[*key];
        }
        value.as_array().map(Vec::as_slice).unwrap_or_default()
    };
    let statuses = list(&["status", "containerStatuses"]);
    let init_specs = list(&["spec", "initContainers"]);
    let sidecar = |name: &str| {
        init_specs
            .iter()
            .any(|c| c["name"] == name && c["restartPolicy"] == "Always")
    };
    let total = list(&["spec", "containers"]).len()
        + init_specs
            .iter()
            .filter(|c| c["restartPolicy"] == "Always")
            .count();
    let phase = str_at(pod, &["status", "phase"]);
    let mut reason = match str_at(pod, &["status", "reason"]) {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    let mut ready = 0;
    let mut restarts = 0;
    let mut last_restart = String::new();
    let (mut sidecar_restarts, mut last_sidecar_restart) = (0, String::new());
    let mut initializing = false;
    for (i, c) in list(&["status", "initContainerStatuses"])
        .iter()
        .enumerate()
    {
        let count = c["restartCount"].as_u64().unwrap_or(0);
        let finished = str_at(c, &["lastState", "terminated", "finishedAt"]);
        restarts += count;
        // RFC 3339 in UTC compares as text.
        if finished > last_restart.as_str() {
            last_restart = finished.to_string();
        }
        let is_sidecar = sidecar(str_at(c, &["name"]));
        if is_sidecar {
            sidecar_restarts += count;
            if finished > last_sidecar_restart.as_str() {
                last_sidecar_restart = finished.to_string();
            }
        }
        let terminated = &c["state"]["terminated"];
        let waiting = str_at(c, &["state", "waiting", "reason"]);
        if terminated.is_object() && terminated["exitCode"].as_i64() == Some(0) {
            continue;
        }
        if is_sidecar && c["started"] == true {
            if c["ready"] == true {
                ready += 1;
            }
            continue;
        }
        reason = if terminated.is_object() {
            match str_at(terminated, &["reason"]) {
                "" => match terminated["signal"].as_i64().unwrap_or(0) {
                    0 => format!(
                        "Init:ExitCode:{}",
                        terminated["exitCode"].as_i64().unwrap_or(0)
                    ),
                    signal => format!("Init:Signal:{signal}"),
                },
                r => format!("Init:{r}"),
            }
        } else if !waiting.is_empty() && waiting != "PodInitializing" {
            format!("Init:{waiting}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }
    let initialized = list(&["status", "conditions"])
        .iter()
        .any(|c| c["type"] == "Initialized" && c["status"] == "True");
    let mut has_running = false;
    if initializing && !initialized {
        return finish(pod, phase, ready, total, reason, restarts, &last_restart);
    }
    restarts = sidecar_restarts;
    last_restart = last_sidecar_restart;
    for c in statuses.iter().rev() {
        restarts += c["restartCount"].as_u64().unwrap_or(0);
        let finished = str_at(c, &["lastState", "terminated", "finishedAt"]);
        if finished > last_restart.as_str() {
            last_restart = finished.to_string();
        }
        let waiting = str_at(c, &["state", "waiting", "reason"]);
        let terminated = &c["state"]["terminated"];
        if !waiting.is_empty() {
            reason = waiting.to_string();
        } else if terminated.is_object() {
            reason = match str_at(terminated, &["reason"]) {
                "" => match terminated["signal"].as_i64().unwrap_or(0) {
                    0 => format!("ExitCode:{}", terminated["exitCode"].as_i64().unwrap_or(0)),
                    signal => format!("Signal:{signal}"),
                },
                r => r.to_string(),
            };
        } else if c["ready"] == true && c["state"]["running"].is_object() {
            has_running = true;
            ready += 1;
        }
    }
    if reason == "Completed" && has_running {
        let ready_condition = pod["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        reason = if ready_condition {
            "Running"
        } else {
            "NotReady"
        }
        .to_string();
    }
    finish(pod, phase, ready, total, reason, restarts, &last_restart)
}

/// The end of `printPod`: `Terminating` while the pod is deleted, and the restarts with
/// the age of the last one.
fn finish(
    pod: &Value,
    phase: &str,
    ready: usize,
    total: usize,
    mut reason: String,
    restarts: u64,
    last_restart: &str,
) -> (usize, usize, String, String) {
    if is_terminating(pod) && !matches!(phase, "Succeeded" | "Failed") {
        reason = "Terminating".to_string();
    }
    let restarts = if restarts != 0 && !last_restart.is_empty() {
        format!(
            "{restarts} ({} ago)",
            human_duration(age_seconds(last_restart))
        )
    } else {
        restarts.to_string()
    };
    (ready, total, reason, restarts)
}

fn count(value: &Value) -> usize {
    value.as_object().map_or(0, |m| m.len())
}

/// Column definitions and one row of cells per object, for `res`.
fn columns_and_cells(res: &ResourceDef, items: &[Value]) -> (Vec<Value>, Vec<Vec<Value>>) {
    let name = column("Name", "string", 0);
    let age_col = column("Age", "string", 0);
    match res.plural {
        "namespaces" => (
            vec![name, column("Status", "string", 0), age_col],
            items
                .iter()
                .map(|o| {
                    vec![
                        json!(meta(o, "name")),
                        json!(str_at(o, &["status", "phase"])),
                        json!(age(o)),
                    ]
                })
                .collect(),
        ),
        "nodes" => (
            vec![
                name,
                column("Status", "string", 0),
                column("Roles", "string", 0),
                age_col,
                column("Version", "string", 0),
            ],
            items
                .iter()
                .map(|o| {
                    let ready = o["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    });
                    let mut status = if ready {
                        "Ready".to_string()
                    } else {
                        "NotReady".to_string()
                    };
                    if o["spec"]["unschedulable"] == true {
                        status.push_str(",SchedulingDisabled");
                    }
                    let roles: Vec<&str> = o["metadata"]["labels"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/"))
                        .collect();
                    vec![
                        json!(meta(o, "name")),
                        json!(status),
                        json!(or_none(&roles.join(","))),
                        json!(age(o)),
                        json!(str_at(o, &["status", "nodeInfo", "kubeletVersion"])),
                    ]
                })
                .collect(),
        ),
        "services" => (
            vec![
                name,
                column("Type", "string", 0),
                column("Cluster-IP", "string", 0),
                column("External-IP", "string", 0),
                column("Port(s)", "string", 0),
                age_col,
                column("Selector", "string", 1),
            ],
            items
                .iter()
                .map(|o| {
                    let ty = str_at(o, &["spec", "type"]);
                    let ports: Vec<String> = o["spec"]["ports"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|p| {
                            let protocol = str_at(p, &["protocol"]);
                            match p["nodePort"].as_u64() {
                                Some(np) => format!("{}:{np}/{protocol}", p["port"]),
                                None => format!("{}/{protocol}", p["port"]),
                            }
                        })
                        .collect();
                    let external = if ty == "LoadBalancer" {
                        "<pending>".to_string()
                    } else {
                        "<none>".to_string()
                    };
                    let selector: Vec<String> = o["spec"]["selector"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect();
                    vec![
                        json!(meta(o, "name")),
                        json!(ty),
                        json!(or_none(str_at(o, &["spec", "clusterIP"]))),
                        json!(external),
                        json!(or_none(&ports.join(","))),
                        json!(age(o)),
                        json!(or_none(&selector.join(","))),
                    ]
                })
                .collect(),
        ),
        "events" => (
            vec![
                column("Last Seen", "string", 0),
                column("Type", "string", 0),
                column("Reason", "string", 0),
                column("Object", "string", 0),
                column("Subobject", "string", 1),
                column("Source", "string", 1),
                column("Message", "string", 0),
                column("First Seen", "string", 1),
                column("Count", "integer", 1),
                column("Name", "string", 1),
            ],
            items
                .iter()
                .map(|o| {
                    let since = |field: &str| human_duration(age_seconds(str_at(o, &[field])));
                    let count = o["count"].as_u64().unwrap_or(1);
                    let last_seen = if count > 1 {
                        format!(
                            "{} (x{count} over {})",
                            since("lastTimestamp"),
                            since("firstTimestamp")
                        )
                    } else {
                        since("lastTimestamp")
                    };
                    let involved = &o["involvedObject"];
                    let mut source = str_at(o, &["source", "component"]).to_owned();
                    if let Some(host) = o["source"]["host"].as_str() {
                        source = format!("{source}, {host}");
                    }
                    vec![
                        json!(last_seen),
                        json!(str_at(o, &["type"])),
                        json!(str_at(o, &["reason"])),
                        json!(format!(
                            "{}/{}",
                            str_at(involved, &["kind"]).to_lowercase(),
                            str_at(involved, &["name"])
                        )),
                        json!(str_at(involved, &["fieldPath"])),
                        json!(source),
                        json!(str_at(o, &["message"])),
                        json!(since("firstTimestamp")),
                        json!(count),
                        json!(meta(o, "name")),
                    ]
                })
                .collect(),
        ),
        "pods" => (
            vec![
                name,
                column("Ready", "string", 0),
                column("Status", "string", 0),
                column("Restarts", "string", 0),
                age_col,
                column("IP", "string", 1),
                column("Node", "string", 1),
            ],
            items
                .iter()
                .map(|o| {
                    let (ready, total, shown, restarts) = pod_columns(o);
                    vec![
                        json!(meta(o, "name")),
                        json!(format!("{ready}/{total}")),
                        json!(shown),
                        json!(restarts),
                        json!(age(o)),
                        json!(or_none(str_at(o, &["status", "podIP"]))),
                        json!(or_none(str_at(o, &["spec", "nodeName"]))),
                    ]
                })
                .collect(),
        ),
        "statefulsets" => (
            vec![name, column("Ready", "string", 0), age_col],
            items
                .iter()
                .map(|o| {
                    let ready = o["status"]["readyReplicas"].as_i64().unwrap_or(0);
                    let want = o["spec"]["replicas"].as_i64().unwrap_or(1);
                    vec![
                        json!(meta(o, "name")),
                        json!(format!("{ready}/{want}")),
                        json!(age(o)),
                    ]
                })
                .collect(),
        ),
        "deployments" => (
            vec![
                name,
                column("Ready", "string", 0),
                column("Up-to-date", "string", 0),
                column("Available", "string", 0),
                age_col,
            ],
            items
                .iter()
                .map(|o| {
                    let n = |f: &str| o["status"][f].as_i64().unwrap_or(0);
                    let want = o["spec"]["replicas"].as_i64().unwrap_or(1);
                    vec![
                        json!(meta(o, "name")),
                        json!(format!("{}/{want}", n("readyReplicas"))),
                        json!(n("updatedReplicas")),
                        json!(n("availableReplicas")),
                        json!(age(o)),
                    ]
                })
                .collect(),
        ),
        "persistentvolumeclaims" => (
            vec![
                name,
                column("Status", "string", 0),
                column("Volume", "string", 0),
                column("Capacity", "string", 0),
                column("Access Modes", "string", 0),
                column("StorageClass", "string", 0),
                age_col,
            ],
            items
                .iter()
                .map(|o| {
                    vec![
                        json!(meta(o, "name")),
                        json!(phase_or_terminating(o)),
                        json!(str_at(o, &["spec", "volumeName"])),
                        json!(str_at(o, &["status", "capacity", "storage"])),
                        json!(access_modes(&o["status"]["accessModes"])),
                        json!(or_none(str_at(o, &["spec", "storageClassName"]))),
                        json!(age(o)),
                    ]
                })
                .collect(),
        ),
        "persistentvolumes" => (
            vec![
                name,
                column("Capacity", "string", 0),
                column("Access Modes", "string", 0),
                column("Reclaim Policy", "string", 0),
                column("Status", "string", 0),
                column("Claim", "string", 0),
                column("StorageClass", "string", 0),
                age_col,
            ],
            items
                .iter()
                .map(|o| {
                    let claim_ref = &o["spec"]["claimRef"];
                    let claim = if claim_ref.is_null() {
                        String::new()
                    } else {
                        format!(
                            "{}/{}",
                            str_at(claim_ref, &["namespace"]),
                            str_at(claim_ref, &["name"])
                        )
                    };
                    vec![
                        json!(meta(o, "name")),
                        json!(str_at(o, &["spec", "capacity", "storage"])),
                        json!(access_modes(&o["spec"]["accessModes"])),
                        json!(str_at(o, &["spec", "persistentVolumeReclaimPolicy"])),
                        json!(phase_or_terminating(o)),
                        json!(claim),
                        json!(str_at(o, &["spec", "storageClassName"])),
                        json!(age(o)),
                    ]
                })
                .collect(),
        ),
        // `printStorageClass`: the default class's name carries ` (default)`.
        "storageclasses" => (
            vec![
                name,
                column("Provisioner", "string", 0),
                column("ReclaimPolicy", "string", 0),
                column("VolumeBindingMode", "string", 0),
                column("AllowVolumeExpansion", "string", 0),
                age_col,
            ],
            items
                .iter()
                .map(|o| {
                    let default = o["metadata"]["annotations"]
                        ["storageclass.kubernetes.io/is-default-class"]
                        == "true";
                    let name = if default {
                        format!("{} (default)", meta(o, "name"))
                    } else {
                        meta(o, "name").to_string()
                    };
                    let or = |v: &str, d: &str| if v.is_empty() { d.to_string() } else { v.to_string() };
                    vec![
                        json!(name),
                        json!(str_at(o, &["provisioner"])),
                        json!(or(str_at(o, &["reclaimPolicy"]), "Delete")),
                        json!(or(str_at(o, &["volumeBindingMode"]), "Immediate")),
                        json!(o["allowVolumeExpansion"] == true),
                        json!(age(o)),
                    ]
                })
                .collect(),
        ),
        "configmaps" => (
            vec![name, column("Data", "integer", 0), age_col],
            items
                .iter()
                .map(|o| {
                    vec![
                        json!(meta(o, "name")),
                        json!(count(&o["data"]) + count(&o["binaryData"])),
                        json!(age(o)),
                    ]
                })
                .collect(),
        ),
        "secrets" => (
            vec![
                name,
                column("Type", "string", 0),
                column("Data", "integer", 0),
                age_col,
            ],
            items
                .iter()
                .map(|o| {
                    vec![
                        json!(meta(o, "name")),
                        json!(str_at(o, &["type"])),
                        json!(count(&o["data"])),
                        json!(age(o)),
                    ]
                })
                .collect(),
        ),
        "networkpolicies" => (
            vec![name, column("Pod-Selector", "string", 0), age_col],
            items
                .iter()
                .map(|o| {
                    vec![
                        json!(meta(o, "name")),
                        json!(or_none(&format_selector(&o["spec"]["podSelector"]))),
                        json!(age(o)),
                    ]
                })
                .collect(),
        ),
        // `printPodDisruptionBudget`.
        "poddisruptionbudgets" => (
            vec![
                name,
                column("Min Available", "string", 0),
                column("Max Unavailable", "string", 0),
                column("Allowed Disruptions", "integer", 0),
                age_col,
            ],
            items
                .iter()
                .map(|o| {
                    let budget = |field: &str| match &o["spec"][field] {
                        Value::Null => "N/A".to_owned(),
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    vec![
                        json!(meta(o, "name")),
                        json!(budget("minAvailable")),
                        json!(budget("maxUnavailable")),
                        json!(o["status"]["disruptionsAllowed"].as_i64().unwrap_or(0)),
                        json!(age(o)),
                    ]
                })
                .collect(),
        ),
        _ => (
            vec![name, age_col],
            items
                .iter()
                .map(|o| vec![json!(meta(o, "name")), json!(age(o))])
                .collect(),
        ),
    }
}

/// How much of each object a row carries (`includeObject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IncludeObject {
    None,
    Metadata,
    Object,
}

/// A `Table` of `items` (one object for a GET, the list for a LIST).
pub(crate) fn table(
    res: &ResourceDef,
    items: &[Value],
    resource_version: &str,
    include: IncludeObject,
) -> Value {
    let (columns, cells) = columns_and_cells(res, items);
    let rows: Vec<Value> = items
        .iter()
        .zip(cells)
        .map(|(obj, cells)| {
            let mut row = json!({ "cells": cells });
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": obj["metadata"],
                    });
                }
                IncludeObject::Object => row["object"] = obj.clone(),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": { "resourceVersion": resource_version },
        "columnDefinitions": columns,
        "rows": rows,
    })
}
