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

/// What a book is computed from: each StatefulSet's instance and whether it is being
/// deleted, and each pod's instance and the status it shows, by object name.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    workloads: HashMap<String, (String, bool)>,
    pods: HashMap<String, (String, StatusReport)>,
}

impl Sources {
    /// Notes the current state of a StatefulSet; `false` when it has no instance label.
    pub fn workload(&mut self, workload: &StatefulSet) -> bool {
        let Some(instance) = instance_of(workload) else {
            return false;
        };
        let deleting = workload.metadata.deletion_timestamp.is_some();
        self.workloads
            .insert(workload.name_any(), (instance, deleting));
        true
    }

    /// Notes the current state of a pod; `false` when it has no instance label.
    pub fn pod(&mut self, pod: &Pod) -> bool {
        let Some(instance) = instance_of(pod) else {
            return false;
        };
        self.pods
            .insert(pod.name_any(), (instance, pod_status(pod)));
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

    /// The status of every instance that has a workload: `Deleting` while it goes, its
    /// pod's status once it has one, `Provisioning` before.
    pub fn statuses(&self) -> Statuses {
        let pods: HashMap<&str, &StatusReport> = self
            .pods
            .values()
            .map(|(instance, report)| (instance.as_str(), report))
            .collect();
        self.workloads
            .values()
            .filter_map(|(instance, deleting)| {
                let report = if *deleting {
                    StatusReport::new(InstanceStatus::Deleting)
                } else {
                    pods.get(instance.as_str()).map_or_else(
                        || StatusReport::new(InstanceStatus::Provisioning),
                        |report| (*report).clone(),
                    )
                };
                Some((FramedbId::new(instance).ok()?, report))
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
/// or keeps crashing, `Provisioning` otherwise.
pub fn pod_status(pod: &Pod) -> StatusReport {
    use InstanceStatus as S;
    if pod.metadata.deletion_timestamp.is_some() {
        return StatusReport::new(S::Deleting);
    }
    let Some(status) = &pod.status else {
        return StatusReport::new(S::Provisioning);
    };
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let condition = |kind: &str| conditions.iter().find(|c| c.type_ == kind);
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
    for container in status.container_statuses.as_deref().unwrap_or_default() {
        let waiting = container.state.as_ref().and_then(|s| s.waiting.as_ref());
        if let Some(waiting) = waiting {
            let reason = waiting.reason.as_deref().unwrap_or_default();
            if matches!(
                reason,
                "CrashLoopBackOff"
                    | "ImagePullBackOff"
                    | "ErrImagePull"
                    | "InvalidImageName"
                    | "CreateContainerConfigError"
                    | "CreateContainerError"
            ) {
                let message = waiting.message.as_deref().unwrap_or_default();
                return StatusReport::with_reason(
                    S::Failed,
                    format!(
                        "container {} is waiting: {reason} {message}",
                        container.name
                    )
                    .trim_end()
                    .to_owned(),
                );
            }
        }
    }
    if condition("Ready").is_some_and(|c| c.status == "True") {
        StatusReport::new(S::Running)
    } else {
        StatusReport::new(S::Provisioning)
    }
}
