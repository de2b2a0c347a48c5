//! Kubernetes objects to instance statuses: what status a pod shows, and how a set of
//! StatefulSets and pods makes the status of every instance (docs/architecture.md,
//! "Status").
//!
//! This is pure derivation, with no request to a cluster and no dependency on the modules
//! that make requests: the deployer's direct status reads (`deployer`) and the watches
//! that keep the status books (`live`) both feed what they read into [`Sources`], so the
//! two ways of reading a status cannot disagree.

use std::collections::HashMap;

use framedb_core::live::Statuses;
use framedb_core::{FramedbId, InstanceStatus, StatusReport};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::{Resource, ResourceExt};

use crate::objects::labels;

/// What a book is computed from, by object name: each StatefulSet's instance, uid and
/// whether it is being deleted, and each pod's controller (the uid of the StatefulSet
/// that made it) and the status it shows.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    workloads: HashMap<String, Workload>,
    pods: HashMap<String, (String, StatusReport)>,
}

/// What a StatefulSet tells of its instance.
#[derive(Debug)]
struct Workload {
    instance: String,
    uid: String,
    deleting: bool,
}

impl Sources {
    /// Notes the current state of a StatefulSet; `false` when it has no instance label.
    pub fn workload(&mut self, workload: &StatefulSet) -> bool {
        let Some(instance) = instance_of(workload) else {
            return false;
        };
        let noted = Workload {
            instance,
            uid: workload.metadata.uid.clone().unwrap_or_default(),
            deleting: workload.metadata.deletion_timestamp.is_some(),
        };
        self.workloads.insert(workload.name_any(), noted);
        true
    }

    /// Notes the current state of a pod; `false` when it has no instance label. Only the
    /// pods of a StatefulSet count: a pod of a deleted workload, still terminating while
    /// the instance is created again under its id, tells nothing of the new one.
    pub fn pod(&mut self, pod: &Pod) -> bool {
        if instance_of(pod).is_none() {
            return false;
        }
        let controller = pod
            .owner_references()
            .iter()
            .find(|owner| owner.controller == Some(true))
            .map(|owner| owner.uid.clone())
            .unwrap_or_default();
        self.pods
            .insert(pod.name_any(), (controller, pod_status(pod)));
        true
    }

    /// Forgets a deleted StatefulSet; `false` when it was not known.
    pub fn forget_workload(&mut self, name: &str) -> bool {
        self.workloads.remove(name).is_some()
    }

    /// Forgets a deleted pod; `false` when it was not known.
    pub fn forget_pod(&mut self, name: &str) -> bool {
        self.pods.remove(name).is_some()
    }

    /// Forgets every StatefulSet, before they are all noted again.
    pub fn clear_workloads(&mut self) {
        self.workloads.clear();
    }

    /// Forgets every pod, before they are all noted again.
    pub fn clear_pods(&mut self) {
        self.pods.clear();
    }

    /// The status of every instance that has a workload: `Deleting` while it goes, the
    /// status of the pod it made once it has one, `Provisioning` before.
    pub fn statuses(&self) -> Statuses {
        let pods: HashMap<&str, &StatusReport> = self
            .pods
            .values()
            .filter(|(controller, _)| !controller.is_empty())
            .map(|(controller, report)| (controller.as_str(), report))
            .collect();
        self.workloads
            .values()
            .filter_map(|workload| {
                let report = if workload.deleting {
                    StatusReport::new(InstanceStatus::Deleting)
                } else {
                    pods.get(workload.uid.as_str()).map_or_else(
                        || StatusReport::new(InstanceStatus::Provisioning),
                        |report| (*report).clone(),
                    )
                };
                Some((FramedbId::new(&workload.instance).ok()?, report))
            })
            .collect()
    }
}

fn instance_of<K: Resource>(object: &K) -> Option<String> {
    object
        .meta()
        .labels
        .as_ref()?
        .get(labels::INSTANCE)
        .cloned()
}

/// The instance status a pod shows: `Running` once TiDB's readiness check passes,
/// `Pending` while the scheduler cannot place it, `Failed` when a container cannot start
/// (its image cannot be pulled, ...) or keeps crashing, and while the pod is not ready
/// because a container ended (`OOMKilled`, an error) or runs again after it ended, with
/// how its last run ended in the reason; `Provisioning` otherwise, and while it
/// terminates: a pod goes with its grace period when it is restarted or rolled while its
/// workload stays (an instance being deleted reads `Deleting` from its workload and
/// record instead), and TiDB serves no more once it has been told to stop.
///
/// Two cases say more, because they may last: a pod being deleted by a disruption (the
/// taint-eviction controller's, when its node is down; an eviction, as by `kubectl
/// drain`) reads `Pending`, with the disruption as the reason, since its replacement
/// cannot start until it is gone, which on a node that is down waits for the node to
/// come back; and a pod the node lifecycle controller marked not ready (its containers
/// ready, the pod not: its node stopped reporting, or reports not ready) reads `Unknown`,
/// since whether TiDB still serves cannot be told.
pub fn pod_status(pod: &Pod) -> StatusReport {
    use InstanceStatus as S;
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let conditions = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let condition = |kind: &str| conditions.iter().find(|c| c.type_ == kind);
    let is_true = |kind: &str| condition(kind).is_some_and(|c| c.status == "True");
    if pod.metadata.deletion_timestamp.is_some() {
        return match condition("DisruptionTarget").filter(|c| c.status == "True") {
            Some(disruption) => StatusReport::with_reason(
                S::Pending,
                format!(
                    "pod {name} is being deleted ({}: {}); its replacement starts once it is gone",
                    disruption.reason.as_deref().unwrap_or("Disrupted"),
                    disruption.message.as_deref().unwrap_or("disrupted"),
                ),
            ),
            None => StatusReport::new(S::Provisioning),
        };
    }
    let Some(status) = &pod.status else {
        return StatusReport::new(S::Provisioning);
    };
    if let Some(unscheduled) = condition("PodScheduled").filter(|c| c.status == "False") {
        let reason = unscheduled.reason.as_deref().unwrap_or("Unschedulable");
        let message = unscheduled
            .message
            .as_deref()
            .unwrap_or("the pod cannot be scheduled");
        return StatusReport::with_reason(S::Pending, format!("{reason}: {message}"));
    }
    match status.phase.as_deref() {
        Some("Failed") => {
            let reason = status.message.as_deref().or(status.reason.as_deref());
            return StatusReport::with_reason(
                S::Failed,
                reason.unwrap_or("the pod failed").to_owned(),
            );
        }
        Some("Succeeded") => {
            return StatusReport::with_reason(S::Failed, "the pod exited");
        }
        _ => {}
    }
    let ready = is_true("Ready");
    for container in status.container_statuses.as_deref().unwrap_or_default() {
        let name = &container.name;
        let state = container.state.as_ref();
        let last_exit = exit_of(
            container
                .last_state
                .as_ref()
                .and_then(|s| s.terminated.as_ref()),
        );
        if let Some(waiting) = state.and_then(|s| s.waiting.as_ref()) {
            let reason = waiting.reason.as_deref().unwrap_or_default();
            if matches!(
                reason,
                "CrashLoopBackOff"
                    | "ImagePullBackOff"
                    | "ErrImagePull"
                    | "ErrImageNeverPull"
                    | "InvalidImageName"
                    | "CreateContainerConfigError"
                    | "CreateContainerError"
            ) {
                let message = waiting.message.as_deref().unwrap_or_default();
                let mut said = format!("container {name} is waiting: {reason} {message}")
                    .trim_end()
                    .to_owned();
                if let Some(exit) = &last_exit {
                    said = format!("{said}; its last run ended: {exit}");
                }
                return StatusReport::with_reason(S::Failed, said);
            }
        }
        // An ended container of a pod that is not serving: the kubelet restarts it, or
        // its policy keeps it stopped; either way the instance does not run. (A running
        // pod's phase hides it: only the container statuses tell it.)
        if ready {
            continue;
        }
        if let Some(exit) = exit_of(state.and_then(|s| s.terminated.as_ref())) {
            return StatusReport::with_reason(
                S::Failed,
                format!(
                    "container {name} ended: {exit}; restarted {} times",
                    container.restart_count
                ),
            );
        }
        // Running again after it ended, not ready yet: a crash loop between two crashes
        // reads as one, not as an instance coming up.
        if let Some(exit) = last_exit.filter(|_| container.restart_count > 0) {
            return StatusReport::with_reason(
                S::Failed,
                format!(
                    "container {name} restarted {} times; its last run ended: {exit}",
                    container.restart_count
                ),
            );
        }
    }
    if ready {
        StatusReport::new(S::Running)
    } else if is_true("ContainersReady") && status.phase.as_deref() == Some("Running") {
        // The kubelet makes both conditions together (FrameDB's pods have no readiness
        // gates): only the node lifecycle controller takes `Ready` away alone.
        StatusReport::with_reason(
            S::Unknown,
            format!("pod {name} was marked not ready because its node is not ready"),
        )
    } else {
        StatusReport::new(S::Provisioning)
    }
}

/// How a container's run ended: `OOMKilled (exit code 137)`.
fn exit_of(
    terminated: Option<&k8s_openapi::api::core::v1::ContainerStateTerminated>,
) -> Option<String> {
    let terminated = terminated?;
    let code = terminated.exit_code;
    Some(
        match terminated.reason.as_deref().filter(|r| !r.is_empty()) {
            Some(reason) => format!("{reason} (exit code {code})"),
            None => format!("exit code {code}"),
        },
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn workload(instance: &str, uid: &str) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": { "name": instance, "uid": uid, "labels": { labels::INSTANCE: instance } },
        }))
        .unwrap()
    }

    /// Pod `{instance}-0`, made by the workload of uid `owner`, ready, and terminating
    /// when `terminating`.
    fn pod(instance: &str, owner: &str, terminating: bool) -> Pod {
        let mut pod = json!({
            "metadata": {
                "name": format!("{instance}-0"), "labels": { labels::INSTANCE: instance },
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "StatefulSet", "name": instance,
                    "uid": owner, "controller": true,
                }],
            },
            "status": { "phase": "Running", "conditions": [{ "type": "Ready", "status": "True" }] },
        });
        if terminating {
            pod["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:30Z");
            pod["metadata"]["deletionGracePeriodSeconds"] = json!(30);
        }
        serde_json::from_value(pod).unwrap()
    }

    fn status_of(sources: &Sources, instance: &str) -> InstanceStatus {
        sources.statuses()[&FramedbId::new(instance).unwrap()].status
    }

    #[test]
    fn a_terminating_pod_of_a_live_workload_is_being_replaced_not_deleted() {
        let mut sources = Sources::default();
        sources.workload(&workload("db", "uid-1"));
        sources.pod(&pod("db", "uid-1", false));
        assert_eq!(status_of(&sources, "db"), InstanceStatus::Running);
        // `kubectl delete pod`, an eviction or a roll: the StatefulSet stays and starts
        // it again; the instance is not being deleted.
        sources.pod(&pod("db", "uid-1", true));
        assert_eq!(status_of(&sources, "db"), InstanceStatus::Provisioning);
    }

    #[test]
    fn a_pod_on_a_node_that_is_down_is_unknown_then_pending_while_it_is_evicted() {
        let mut sources = Sources::default();
        sources.workload(&workload("db", "uid-1"));
        let mut value = serde_json::to_value(pod("db", "uid-1", false)).unwrap();
        // `MarkPodsNotReady`: `Ready` goes, `ContainersReady` stays.
        value["status"]["conditions"] = json!([
            { "type": "Ready", "status": "False" },
            { "type": "ContainersReady", "status": "True" },
        ]);
        sources.pod(&serde_json::from_value(value.clone()).unwrap());
        let report = &sources.statuses()[&FramedbId::new("db").unwrap()];
        assert_eq!(report.status, InstanceStatus::Unknown);
        assert_eq!(
            report.reason.as_deref(),
            Some("pod db-0 was marked not ready because its node is not ready")
        );
        // The taint-eviction controller deletes it once its toleration runs out.
        value["status"]["conditions"]
            .as_array_mut()
            .unwrap()
            .push(json!({
                "type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
                "message": "Taint manager: deleting due to NoExecute taint",
            }));
        value["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:30Z");
        sources.pod(&serde_json::from_value(value).unwrap());
        let report = &sources.statuses()[&FramedbId::new("db").unwrap()];
        assert_eq!(report.status, InstanceStatus::Pending);
        assert_eq!(
            report.reason.as_deref(),
            Some(
                "pod db-0 is being deleted (DeletionByTaintManager: Taint manager: deleting \
                 due to NoExecute taint); its replacement starts once it is gone"
            )
        );
    }

    #[test]
    fn the_pod_of_a_deleted_workload_tells_nothing_of_its_successor() {
        let mut sources = Sources::default();
        // The instance was deleted and created again at once: the old pod, ready a moment
        // ago, still terminates; the new workload has not made its pod yet.
        sources.workload(&workload("db", "uid-2"));
        sources.pod(&pod("db", "uid-1", true));
        assert_eq!(status_of(&sources, "db"), InstanceStatus::Provisioning);
        sources.pod(&pod("db", "uid-1", false));
        assert_eq!(
            status_of(&sources, "db"),
            InstanceStatus::Provisioning,
            "not the old pod's Running"
        );
        sources.pod(&pod("db", "uid-2", false));
        assert_eq!(status_of(&sources, "db"), InstanceStatus::Running);
    }

    fn crash_looping(state: serde_json::Value, ready: bool) -> Pod {
        let mut pod = serde_json::to_value(pod("db", "uid-1", false)).unwrap();
        pod["status"]["conditions"][0]["status"] = json!(if ready { "True" } else { "False" });
        pod["status"]["containerStatuses"] = json!([{
            "name": "tidb", "image": "pingcap/tidb:v8.5.1", "imageID": "", "ready": ready,
            "restartCount": 3, "state": state,
            "lastState": { "terminated": { "exitCode": 137, "reason": "OOMKilled" } },
        }]);
        serde_json::from_value(pod).unwrap()
    }

    #[test]
    fn a_crash_looping_container_reads_failed_with_its_last_exit_at_every_step() {
        let steps = [
            json!({ "waiting": { "reason": "CrashLoopBackOff", "message": "back-off 20s restarting failed container=tidb pod=db-0_ns(u)" } }),
            json!({ "running": { "startedAt": "2026-01-01T00:00:00Z" } }),
            json!({ "terminated": { "exitCode": 137, "reason": "OOMKilled" } }),
        ];
        for state in steps {
            let report = pod_status(&crash_looping(state.clone(), false));
            assert_eq!(report.status, InstanceStatus::Failed, "{state}");
            let reason = report.reason.unwrap();
            assert!(reason.contains("container tidb"), "{reason}");
            assert!(reason.contains("OOMKilled (exit code 137)"), "{reason}");
        }
        // Up again and ready: it serves, whatever it went through.
        let running = json!({ "running": { "startedAt": "2026-01-01T00:00:00Z" } });
        assert_eq!(
            pod_status(&crash_looping(running, true)).status,
            InstanceStatus::Running
        );
    }
}
