//! What a real cluster does when a node goes down, as more methods of `store`'s
//! [`State`], run with the other controllers (see `controllers`):
//!
//! - the node lifecycle controller (`pkg/controller/nodelifecycle`): it watches each
//!   node's `Ready` condition; once a node is not ready for long enough (on the
//!   simulator's clock: the next `--node-monitor-period` pass, 5 s, for `False`; the
//!   `--node-monitor-grace-period`, 50 s in 1.33, for `Unknown`, the kubelet having
//!   stopped posting) it taints the node `node.kubernetes.io/not-ready` or
//!   `node.kubernetes.io/unreachable` (`NoSchedule` and `NoExecute`), records
//!   `NodeNotReady`, and marks the node's pods not ready (`MarkPodsNotReady`); it takes
//!   the taints off once the node is ready again;
//! - the taint-eviction controller (`pkg/controller/tainteviction`): a pod on a node
//!   with `NoExecute` taints it does not tolerate is deleted at once, one that tolerates
//!   them for `tolerationSeconds` after that long (`TaintManagerEviction` events, a
//!   `DisruptionTarget` condition); the deletion is cancelled if the taints go first;
//! - the simulated kubelet of a node that is not ready: it is down (or unhealthy), so it
//!   neither readies pods nor finishes their deletions, which stay `Terminating`; once
//!   the node is ready again it reports its pods ready and finishes those deletions.
//!
//! The simulator has no kubelet heartbeat: a node's `Ready` condition is what a client
//! last wrote through `nodes/status` (or what the node was made with), and a `False` or
//! `Unknown` one stands for a kubelet that posts not-ready or has stopped posting, until
//! a client writes `True` again.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::admission::kubelet_condition;
use super::events::EventType::{Normal, Warning};
use super::events::Source;
use super::json::{is_terminating, meta, now_rfc3339, set_list, str_at};
use super::resources::{NODES, ObjKey, PODS, by_plural, key};
use super::scheduling::tolerates;
use super::status::{ApiError, ApiResult};
use super::store::{DeleteOptions, NodeHealth, Propagation, State};

/// The node lifecycle controller, as events name it.
const NODE_CONTROLLER: Source<'static> = Source::component("node-controller");
/// The taint-eviction controller, as events name it (a controller of its own since the
/// `SeparateTaintEvictionController` gate, on by default from 1.29).
const TAINT_EVICTION: Source<'static> = Source::component("taint-eviction-controller");

/// The taint of a node whose `Ready` condition is `False`.
pub(crate) const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
/// The taint of a node whose `Ready` condition is `Unknown`.
pub(crate) const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";

/// `--node-monitor-period`: how often the controller looks at the nodes' health.
const NODE_MONITOR_PERIOD_SECONDS: f64 = 5.0;
/// `--node-monitor-grace-period`: how long a node's kubelet may stay silent before the
/// controller acts (50 s since 1.32).
const NODE_MONITOR_GRACE_PERIOD_SECONDS: f64 = 50.0;

/// The status of a node's `Ready` condition; `Unknown` without one (a kubelet that never
/// posted).
pub(crate) fn ready_status(node: &Value) -> &str {
    node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .map_or("Unknown", |c| str_at(c, &["status"]))
}

/// The node lifecycle controller's taint for a not-ready status (`False`, `Unknown`).
fn taint_key_for(ready: &str) -> &'static str {
    if ready == "False" {
        NOT_READY_TAINT
    } else {
        UNREACHABLE_TAINT
    }
}

/// Whether a taint is one the node lifecycle controller manages for readiness.
fn readiness_taint(taint: &Value) -> bool {
    matches!(str_at(taint, &["key"]), NOT_READY_TAINT | UNREACHABLE_TAINT)
        && matches!(str_at(taint, &["effect"]), "NoSchedule" | "NoExecute")
}

/// The pod a key names, as an event's involved object when the pod itself is gone.
fn pod_reference(k: &ObjKey) -> Value {
    json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "namespace": k.0, "name": k.1 } })
}

/// `GetMatchingTolerations` and `getMinTolerationTime`: whether `tolerations` tolerate
/// every one of `taints` (the first matching toleration of each is the one used), and
/// for how long (`None`: forever).
fn toleration_time(tolerations: &[Value], taints: &[Value]) -> Option<Option<Duration>> {
    let mut used = Vec::new();
    for taint in taints {
        used.push(tolerations.iter().find(|t| tolerates(t, taint))?);
    }
    if used.is_empty() {
        return Some(Some(Duration::ZERO));
    }
    let mut least: Option<i64> = None;
    for toleration in used {
        if let Some(seconds) = toleration["tolerationSeconds"].as_i64() {
            if seconds <= 0 {
                return Some(Some(Duration::ZERO));
            }
            least = Some(least.map_or(seconds, |l| l.min(seconds)));
        }
    }
    Some(least.map(|s| Duration::from_secs(s as u64)))
}

impl State {
    /// Simulated seconds as real time on this simulator's clock.
    fn scaled(&self, seconds: f64) -> Duration {
        Duration::from_secs_f64(seconds / self.time_scale)
    }

    /// Whether the kubelet of node `name` is down or unhealthy (its `Ready` condition is
    /// not `True`): it starts, readies and finishes nothing.
    pub(crate) fn kubelet_down(&self, name: &str) -> bool {
        !name.is_empty()
            && self
                .lookup(NODES, &key("", name))
                .is_some_and(|node| ready_status(node) != "True")
    }

    /// When the controller acts on a node not ready since `since`.
    fn acts_at(&self, health: &NodeHealth) -> Instant {
        let wait = if health.ready == "False" {
            NODE_MONITOR_PERIOD_SECONDS
        } else {
            NODE_MONITOR_GRACE_PERIOD_SECONDS
        };
        health.since + self.scaled(wait)
    }

    /// Whether the node lifecycle or taint-eviction controller has something due.
    pub(crate) fn node_lifecycle_due(&self, now: Instant) -> bool {
        self.node_health
            .values()
            .any(|h| !h.acted && h.ready != "True" && self.acts_at(h) <= now)
            || self
                .evict_at
                .values()
                .any(|at| at.is_some_and(|at| at <= now))
    }

    /// `monitorNodeHealth`: notes each node's `Ready` transitions, taints nodes not ready
    /// for long enough and marks their pods not ready, and untaints nodes ready again.
    pub(crate) fn monitor_nodes(&mut self, now: Instant) {
        let nodes: Vec<(String, String)> = self
            .iter(NODES)
            .map(|(k, node)| (k.1.clone(), ready_status(node).to_string()))
            .collect();
        let names: BTreeSet<&String> = nodes.iter().map(|(name, _)| name).collect();
        self.node_health.retain(|name, _| names.contains(name));
        for (name, ready) in &nodes {
            let previous = self.node_health.get(name).cloned();
            let changed = previous.as_ref().is_none_or(|h| h.ready != *ready);
            if changed {
                let was_tainted = previous.as_ref().is_some_and(|h| h.acted);
                let health = NodeHealth {
                    ready: ready.clone(),
                    since: now,
                    acted: ready == "True",
                };
                self.node_health.insert(name.clone(), health);
                if ready == "True" {
                    if previous.is_some() {
                        self.node_back(name);
                    }
                } else {
                    // `doNoScheduleTaintingPass` follows the condition at once; the
                    // `NoExecute` taint waits, unless the node already has the other
                    // not-ready one, which `processTaintBaseEviction` swaps straight away.
                    let swap = was_tainted && previous.as_ref().is_some_and(|h| h.ready != "True");
                    self.taint_not_ready(name, ready, swap);
                    if let Some(h) = self.node_health.get_mut(name) {
                        h.acted = swap;
                    }
                }
            }
            let Some(health) = self.node_health.get(name).cloned() else {
                continue;
            };
            if health.ready == "True" {
                continue;
            }
            if !health.acted && self.acts_at(&health) <= now {
                self.node_down(name, ready);
                if let Some(h) = self.node_health.get_mut(name) {
                    h.acted = true;
                }
            } else if health.acted {
                // `processPod`: a pod that shows up ready on a node that is not is marked
                // not ready too.
                self.mark_pods_not_ready(name);
            }
        }
    }

    /// The controller acts on a node not ready: taints, events, pods not ready.
    fn node_down(&mut self, name: &str, ready: &str) {
        self.taint_not_ready(name, ready, true);
        if ready != "False" {
            self.kubelet_conditions(name, false);
        }
        let Some(node) = self.lookup(NODES, &key("", name)).cloned() else {
            return;
        };
        let message = format!("Node {name} status is now: NodeNotReady");
        // A kubelet that posts `False` tells it itself; one that stopped posting cannot,
        // and the controller does when it marks the node `Unknown`.
        let source = if ready == "False" {
            Source {
                component: "kubelet",
                host: Some(name),
            }
        } else {
            NODE_CONTROLLER
        };
        self.record_event(&node, Normal, "NodeNotReady", &message, source);
        self.mark_pods_not_ready(name);
    }

    /// `SwapNodeControllerTaint`: the node gets the taints of `ready` (`NoSchedule`, and
    /// `NoExecute` when `no_execute`, stamped `timeAdded`) instead of those of the other
    /// not-ready status.
    fn taint_not_ready(&mut self, name: &str, ready: &str, no_execute: bool) {
        let k = key("", name);
        let Some(node) = self.lookup(NODES, &k) else {
            return;
        };
        let wanted = taint_key_for(ready);
        let stamp = now_rfc3339();
        let mut taints: Vec<Value> = node["spec"]["taints"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|t| !readiness_taint(t) || str_at(t, &["key"]) == wanted)
            .collect();
        let effects: &[&str] = if no_execute {
            &["NoSchedule", "NoExecute"]
        } else {
            &["NoSchedule"]
        };
        for effect in effects {
            if !taints
                .iter()
                .any(|t| str_at(t, &["key"]) == wanted && str_at(t, &["effect"]) == *effect)
            {
                taints.push(json!({ "key": wanted, "effect": effect, "timeAdded": stamp }));
            }
        }
        self.set_taints(&k, taints);
    }

    /// The node's conditions other than `Ready` that its kubelet posts (`MemoryPressure`,
    /// `DiskPressure`, `PIDPressure`): as the kubelet posts them when `posting` (back to
    /// health), else `Unknown` as the controller sets them once the kubelet stopped
    /// posting (`tryUpdateNodeHealth`).
    fn kubelet_conditions(&mut self, name: &str, posting: bool) {
        let k = key("", name);
        let Some(node) = self.lookup(NODES, &k) else {
            return;
        };
        let mut status = node["status"].clone();
        let stamp = now_rfc3339();
        for c in status["conditions"].as_array_mut().into_iter().flatten() {
            let kind = str_at(c, &["type"]);
            let Some(healthy) = kubelet_condition(kind) else {
                continue;
            };
            // `Ready` is the client's to write: the kubelet back posts its reason, the
            // controller never touches it here (a stopped kubelet's is already `Unknown`).
            let (status, reason, message) = match (posting, kind) {
                (true, "Ready") => (str_at(c, &["status"]).to_string(), healthy.1, healthy.2),
                (false, "Ready") => continue,
                (true, _) => (healthy.0.to_string(), healthy.1, healthy.2),
                (false, _) => (
                    "Unknown".to_string(),
                    "NodeStatusUnknown",
                    "Kubelet stopped posting node status.",
                ),
            };
            if c["status"] != status.as_str() {
                c["lastTransitionTime"] = json!(stamp);
            }
            if posting {
                c["lastHeartbeatTime"] = json!(stamp);
            }
            c["status"] = json!(status);
            c["reason"] = json!(reason);
            c["message"] = json!(message);
        }
        self.set_status(NODES, &k, status);
    }

    /// Writes a node's taints, if they changed.
    fn set_taints(&mut self, k: &ObjKey, taints: Vec<Value>) {
        let Some(node) = self.lookup(NODES, k) else {
            return;
        };
        let current = node["spec"]["taints"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if current == taints {
            return;
        }
        let mut node = node.clone();
        set_list(&mut node, "spec", "taints", taints);
        self.put(NODES, k.clone(), node);
    }

    /// `MarkPodsNotReady`: the `Ready` condition of each pod on the node goes `False`,
    /// with a `NodeNotReady` warning.
    fn mark_pods_not_ready(&mut self, node: &str) {
        let ready: Vec<ObjKey> = self
            .iter(PODS)
            .filter(|(_, pod)| str_at(pod, &["spec", "nodeName"]) == node)
            .filter(|(_, pod)| {
                pod["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
            .map(|(k, _)| k.clone())
            .collect();
        let stamp = now_rfc3339();
        for k in ready {
            let Some(pod) = self.lookup(PODS, &k).cloned() else {
                continue;
            };
            let mut status = pod["status"].clone();
            for c in status["conditions"].as_array_mut().into_iter().flatten() {
                if c["type"] == "Ready" {
                    c["status"] = json!("False");
                    c["lastTransitionTime"] = json!(stamp);
                }
            }
            self.set_status(PODS, &k, status);
            if let Some(pod) = self.lookup(PODS, &k).cloned() {
                self.record_event(
                    &pod,
                    Warning,
                    "NodeNotReady",
                    "Node is not ready",
                    NODE_CONTROLLER,
                );
            }
        }
    }

    /// The node is ready again: its readiness taints go (`markNodeAsReachable` and the
    /// `NoSchedule` pass), its kubelet says so, reports its running pods ready again and
    /// finishes the deletions that waited for it.
    fn node_back(&mut self, name: &str) {
        let k = key("", name);
        let Some(node) = self.lookup(NODES, &k).cloned() else {
            return;
        };
        let taints: Vec<Value> = node["spec"]["taints"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|t| !readiness_taint(t))
            .collect();
        self.set_taints(&k, taints);
        self.kubelet_conditions(name, true);
        let kubelet = Source {
            component: "kubelet",
            host: Some(name),
        };
        let message = format!("Node {name} status is now: NodeReady");
        self.record_event(&node, Normal, "NodeReady", &message, kubelet);
        let now = Instant::now();
        let running: Vec<ObjKey> = self
            .iter(PODS)
            .filter(|(_, pod)| str_at(pod, &["spec", "nodeName"]) == name && !is_terminating(pod))
            .map(|(k, _)| k.clone())
            .collect();
        // The kubelet looks at its pods again (`kubelet`), and reports them as they are.
        for k in running {
            self.runtime.wake_at.insert(k, now);
        }
        let held: Vec<ObjKey> = self
            .held_terminations
            .iter()
            .filter(|k| {
                self.lookup(PODS, k)
                    .is_some_and(|pod| str_at(pod, &["spec", "nodeName"]) == name)
            })
            .cloned()
            .collect();
        for k in held {
            self.held_terminations.remove(&k);
            self.terminate_at.insert(k.clone(), now);
            self.stopping.push(k);
        }
        self.dirty = true;
    }

    /// The taint-eviction controller: deletions of pods on nodes with `NoExecute` taints
    /// they do not tolerate (at once) or tolerate for a while (after it), cancelled when
    /// the taints go first.
    pub(crate) fn evict_on_taints(&mut self, now: Instant) {
        let mut tainted: HashMap<String, Vec<Value>> = HashMap::new();
        for (k, node) in self.iter(NODES) {
            let taints: Vec<Value> = node["spec"]["taints"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| str_at(t, &["effect"]) == "NoExecute")
                .cloned()
                .collect();
            if !taints.is_empty() {
                tainted.insert(k.1.clone(), taints);
            }
        }
        if tainted.is_empty() && self.evict_at.is_empty() {
            return;
        }
        // Work for pods gone, or whose node lost its taints, is cancelled; work already
        // done is forgotten silently.
        let stale: Vec<(ObjKey, bool)> = self
            .evict_at
            .iter()
            .filter(|(k, _)| {
                self.lookup(PODS, k)
                    .is_none_or(|pod| !tainted.contains_key(str_at(pod, &["spec", "nodeName"])))
            })
            .map(|(k, at)| (k.clone(), at.is_some()))
            .collect();
        for (k, pending) in stale {
            self.evict_at.remove(&k);
            if pending {
                let pod = self
                    .lookup(PODS, &k)
                    .cloned()
                    .unwrap_or_else(|| pod_reference(&k));
                self.record_eviction(&pod, &k, "Cancelling deletion of");
            }
        }
        let mut scheduled = Vec::new();
        for (k, pod) in self.iter(PODS) {
            let Some(taints) = tainted.get(str_at(pod, &["spec", "nodeName"])) else {
                continue;
            };
            if self.evict_at.contains_key(k) {
                continue;
            }
            let tolerations = pod["spec"]["tolerations"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            match toleration_time(tolerations, taints) {
                None => scheduled.push((k.clone(), now)),
                Some(None) => {}
                Some(Some(after)) => {
                    scheduled.push((k.clone(), now + self.scaled(after.as_secs_f64())));
                }
            }
        }
        for (k, at) in scheduled {
            self.evict_at.insert(k, Some(at));
        }
        let due: Vec<ObjKey> = self
            .evict_at
            .iter()
            .filter(|(_, at)| at.is_some_and(|at| at <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            self.evict_at.insert(k.clone(), None);
            let Some(pod) = self.lookup(PODS, &k).cloned() else {
                continue;
            };
            self.record_eviction(&pod, &k, "Marking for deletion");
            let _ = self.disrupt_and_delete(
                &k,
                "DeletionByTaintManager",
                "Taint manager: deleting due to NoExecute taint",
                &DeleteOptions::propagating(Propagation::Background),
            );
        }
    }

    /// The taint-eviction controller's `TaintManagerEviction` event: "`what` Pod ns/name".
    fn record_eviction(&mut self, pod: &Value, k: &ObjKey, what: &str) {
        let message = format!("{what} Pod {}/{}", k.0, k.1);
        self.record_event(
            pod,
            Normal,
            "TaintManagerEviction",
            &message,
            TAINT_EVICTION,
        );
    }

    /// Adds the pod's `DisruptionTarget` condition (why it is being deleted), then
    /// deletes it with `options`, as the taint-eviction controller and the eviction
    /// subresource do.
    pub(crate) fn disrupt_and_delete(
        &mut self,
        k: &ObjKey,
        reason: &str,
        message: &str,
        options: &DeleteOptions,
    ) -> ApiResult<Value> {
        let pod = self
            .lookup(PODS, k)
            .cloned()
            .ok_or_else(|| ApiError::not_found(by_plural(PODS), &k.1))?;
        if !is_terminating(&pod) {
            let mut status = pod["status"].clone();
            let condition = json!({
                "type": "DisruptionTarget", "status": "True", "reason": reason,
                "message": message, "lastProbeTime": null, "lastTransitionTime": now_rfc3339(),
            });
            let conditions = status["conditions"].as_array().cloned().unwrap_or_default();
            if !conditions
                .iter()
                .any(|c| c["type"] == "DisruptionTarget" && c["status"] == "True")
            {
                let mut conditions: Vec<Value> = conditions
                    .into_iter()
                    .filter(|c| c["type"] != "DisruptionTarget")
                    .collect();
                conditions.push(condition);
                status["conditions"] = json!(conditions);
                self.set_status(PODS, k, status);
            }
        }
        let opts = DeleteOptions {
            uid: Some(meta(&pod, "uid").to_string()),
            ..options.clone()
        };
        self.delete(by_plural(PODS), Some(&k.0), &k.1, &opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toleration_times_follow_the_taint_manager() {
        let not_ready = json!({ "key": NOT_READY_TAINT, "effect": "NoExecute" });
        let other = json!({ "key": "x", "value": "y", "effect": "NoExecute" });
        let default = json!({ "key": NOT_READY_TAINT, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300 });
        let forever = json!({ "operator": "Exists" });
        let zero = json!({ "key": NOT_READY_TAINT, "operator": "Exists", "tolerationSeconds": -1 });
        let both = [not_ready.clone(), other];
        let time = |tolerations: &Value, taints: &[Value]| {
            toleration_time(std::slice::from_ref(tolerations), taints)
        };
        assert_eq!(toleration_time(&[], std::slice::from_ref(&not_ready)), None);
        let five_minutes = Some(Some(Duration::from_secs(300)));
        assert_eq!(
            time(&default, std::slice::from_ref(&not_ready)),
            five_minutes
        );
        assert_eq!(time(&default, &both), None);
        assert_eq!(time(&forever, &both), Some(None));
        assert_eq!(
            time(&zero, std::slice::from_ref(&not_ready)),
            Some(Some(Duration::ZERO))
        );
    }
}
