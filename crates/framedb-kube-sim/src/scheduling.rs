//! What the scheduler's filter plugins check beyond labels and volumes, with the reasons
//! they give: a node's taints against a pod's tolerations (`TaintToleration`), a cordoned
//! node (`NodeUnschedulable`), and a pod's requests against what the node's allocatable
//! leaves once its other pods are counted (`NodeResourcesFit`).

use serde_json::Value;

use super::json::str_at;
use super::quantity::{millicores, units};

/// The taint `kubectl cordon` stands for, which a pod may tolerate.
const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

/// What a pod asks of a node.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Requests {
    /// CPU, in millicores.
    pub cpu: u128,
    /// Memory, in bytes.
    pub memory: u128,
}

impl Requests {
    fn of_container(container: &Value) -> Self {
        let requests = &container["resources"]["requests"];
        // Without requests a limit is the request, as the API server defaults it.
        let limits = &container["resources"]["limits"];
        let read = |name: &str, parse: fn(&str) -> Option<u128>| {
            requests[name]
                .as_str()
                .or_else(|| limits[name].as_str())
                .and_then(parse)
                .unwrap_or(0)
        };
        Self {
            cpu: read("cpu", millicores),
            memory: read("memory", units),
        }
    }

    fn plus(self, other: Self) -> Self {
        Self {
            cpu: self.cpu + other.cpu,
            memory: self.memory + other.memory,
        }
    }

    fn minus(self, other: Self) -> Self {
        Self {
            cpu: self.cpu.saturating_sub(other.cpu),
            memory: self.memory.saturating_sub(other.memory),
        }
    }

    fn max(self, other: Self) -> Self {
        Self {
            cpu: self.cpu.max(other.cpu),
            memory: self.memory.max(other.memory),
        }
    }
}

/// A pod's effective requests: its containers' sum plus its sidecars' (init containers
/// with `restartPolicy: Always`, which run beside them), or what any init container needs
/// while it runs (with the sidecars started before it), whichever is larger.
pub(crate) fn requests(pod: &Value) -> Requests {
    let spec = &pod["spec"];
    let mut sidecars = Requests::default();
    let mut init_peak = Requests::default();
    for init in spec["initContainers"].as_array().into_iter().flatten() {
        let own = Requests::of_container(init);
        if str_at(init, &["restartPolicy"]) == "Always" {
            sidecars = sidecars.plus(own);
            init_peak = init_peak.max(sidecars);
        } else {
            init_peak = init_peak.max(own.plus(sidecars));
        }
    }
    let containers = spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(Requests::of_container)
        .fold(Requests::default(), Requests::plus);
    containers.plus(sidecars).max(init_peak)
}

/// Whether `toleration` tolerates `taint`.
pub(crate) fn tolerates(toleration: &Value, taint: &Value) -> bool {
    let effect = str_at(toleration, &["effect"]);
    if !effect.is_empty() && effect != str_at(taint, &["effect"]) {
        return false;
    }
    let key = str_at(toleration, &["key"]);
    match str_at(toleration, &["operator"]) {
        // An empty key with `Exists` tolerates every taint.
        "Exists" => key.is_empty() || key == str_at(taint, &["key"]),
        "" | "Equal" => {
            key == str_at(taint, &["key"])
                && str_at(toleration, &["value"]) == str_at(taint, &["value"])
        }
        _ => false,
    }
}

fn tolerated(pod: &Value, taint: &Value) -> bool {
    pod["spec"]["tolerations"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|toleration| tolerates(toleration, taint))
}

/// `NodeUnschedulable`: whether a cordoned `node` refuses `pod` (unless the pod tolerates
/// the cordon's taint).
pub(crate) fn refused_as_cordoned(pod: &Value, node: &Value) -> bool {
    node["spec"]["unschedulable"] == true
        && !tolerated(
            pod,
            &serde_json::json!({ "key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule" }),
        )
}

/// `TaintToleration`: the first `NoSchedule` or `NoExecute` taint of `node` that `pod`
/// does not tolerate, as the scheduler reports it.
pub(crate) fn untolerated_taint(pod: &Value, node: &Value) -> Option<String> {
    node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|taint| matches!(str_at(taint, &["effect"]), "NoSchedule" | "NoExecute"))
        .find(|taint| !tolerated(pod, taint))
        .map(|taint| {
            format!(
                "node(s) had untolerated taint {{{}: {}}}",
                str_at(taint, &["key"]),
                str_at(taint, &["value"])
            )
        })
}

/// What the pods assigned to a node take of it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    /// How many pods.
    pub pods: usize,
    /// Their requests, summed.
    pub requests: Requests,
}

impl Usage {
    /// Counts `pod` in.
    pub(crate) fn add(&mut self, pod: &Value) {
        self.pods += 1;
        self.requests = self.requests.plus(requests(pod));
    }

    /// Counts `pod` out.
    pub(crate) fn remove(&mut self, pod: &Value) {
        self.pods = self.pods.saturating_sub(1);
        self.requests = self.requests.minus(requests(pod));
    }
}

/// The node whose resources `pod` takes: the one it is bound to, until it has finished.
pub(crate) fn node_taken(pod: &Value) -> Option<&str> {
    let node = str_at(pod, &["spec", "nodeName"]);
    (!node.is_empty() && !matches!(str_at(pod, &["status", "phase"]), "Succeeded" | "Failed"))
        .then_some(node)
}

/// `NodeResourcesFit`: what `node` lacks for `pod` beside what its pods take (`used`), as
/// the scheduler reports it ("Too many pods", "Insufficient cpu", "Insufficient memory").
pub(crate) fn insufficient(pod: &Value, node: &Value, used: Usage) -> Vec<&'static str> {
    let allocatable = &node["status"]["allocatable"];
    let has =
        |name: &str, parse: fn(&str) -> Option<u128>| allocatable[name].as_str().and_then(parse);
    let mut lacking = Vec::new();
    if has("pods", units).is_some_and(|pods| used.pods as u128 >= pods) {
        lacking.push("Too many pods");
    }
    let wanted = requests(pod);
    let used = used.requests;
    if wanted.cpu > 0 && has("cpu", millicores).is_some_and(|cpu| used.cpu + wanted.cpu > cpu) {
        lacking.push("Insufficient cpu");
    }
    if wanted.memory > 0
        && has("memory", units).is_some_and(|memory| used.memory + wanted.memory > memory)
    {
        lacking.push("Insufficient memory");
    }
    lacking
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sidecars_add_up_and_init_containers_peak() {
        let pod = json!({"spec": {
            "initContainers": [
                {"name": "setup", "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}},
                {"name": "pd", "restartPolicy": "Always",
                 "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}}},
                {"name": "tikv", "restartPolicy": "Always",
                 "resources": {"limits": {"cpu": "1", "memory": "2Gi"}}},
            ],
            "containers": [{"name": "tidb", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}],
        }});
        // Running: 1 + 0.5 + 1 CPU, 1Gi + 512Mi + 2Gi; the first init step alone needs 2 CPU.
        assert_eq!(
            requests(&pod),
            Requests {
                cpu: 2500,
                memory: (3 << 30) + (512 << 20)
            }
        );
    }

    #[test]
    fn tolerations_match_taints_as_the_scheduler_matches_them() {
        let node = json!({"spec": {"taints": [
            {"key": "dedicated", "value": "db", "effect": "NoSchedule"},
            {"key": "soft", "effect": "PreferNoSchedule"},
        ]}});
        let pod = |tolerations: Value| json!({"spec": {"tolerations": tolerations}});
        assert_eq!(
            untolerated_taint(&pod(json!([])), &node).as_deref(),
            Some("node(s) had untolerated taint {dedicated: db}")
        );
        for tolerating in [
            json!([{"key": "dedicated", "operator": "Equal", "value": "db"}]),
            json!([{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]),
            json!([{"operator": "Exists"}]),
        ] {
            assert_eq!(
                untolerated_taint(&pod(tolerating.clone()), &node),
                None,
                "{tolerating}"
            );
        }
        for not in [
            json!([{"key": "dedicated", "value": "other"}]),
            json!([{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}]),
        ] {
            assert!(
                untolerated_taint(&pod(not.clone()), &node).is_some(),
                "{not}"
            );
        }
    }
}
