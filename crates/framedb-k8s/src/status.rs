//! Kubernetes objects to instance statuses: what status a pod shows, and how a set of
//! StatefulSets, pods and the events told about them makes the status of every instance
//! (docs/architecture.md, "Status"), with the [`StatusLimits`] past which an instance
//! that does not come up reads `Failed`.
//!
//! This is pure derivation, with no request to a cluster and no dependency on the modules
//! that make requests: the deployer's direct status reads (`deployer`) and the watches
//! that keep the status books (`live`) both feed what they read into [`Sources`], so the
//! two ways of reading a status cannot disagree.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use framedb_core::live::Statuses;
use framedb_core::{FramedbId, InstanceStatus, StatusReport};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};

use crate::objects::labels;

/// Where an instance that is still coming up becomes one that will not come up without
/// help, and reads `Failed` (docs/architecture.md, "Status").
///
/// Both limits are measured on the cluster alone, never against FrameDB's clock: a
/// restart count, and the span between the first and the latest time a component of the
/// cluster told the same cause (the reason of a pod's latest `Warning`) in its events
/// (every timestamp written by that component). So a status crosses a limit when the cluster tells the cause again,
/// which is also when a watch hears of it, and nothing needs a timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusLimits {
    /// How many restarts a container of a pod that is not ready may have had before the
    /// instance reads `Failed` (default 3: with the kubelet's crash back-off of 10 s,
    /// 20 s, 40 s, about a minute and a half of crashing). Fewer read `Provisioning`, with
    /// how the last run ended as the reason. The kubelet never resets a restart count,
    /// but a run of 10 minutes or more resets its back-off, and ends a crash loop here
    /// too: a pod that ran for a week and crashes once reads `Provisioning` while it
    /// comes back, whatever restarts it had before.
    pub restarts: i32,
    /// How long a cause the kubelet retries with a back-off — an image it cannot pull
    /// (`ErrImagePull`, `ImagePullBackOff`), a container it cannot create
    /// (`CreateContainerConfigError`, `CreateContainerError`) — may have been told in the
    /// pod's `Warning` events of one reason before the instance reads `Failed` (default 2
    /// minutes). The kubelet retries a pull after 10 s, 20 s, 40 s, ... up to 5 minutes
    /// and tells the failure again each time, so with the default the instance reads
    /// `Failed` at the retry 150 s after the first failure.
    pub stuck_after: Duration,
}

impl Default for StatusLimits {
    fn default() -> Self {
        Self {
            restarts: 3,
            stuck_after: Duration::from_secs(120),
        }
    }
}

/// What a book is computed from: each StatefulSet's instance, uid and whether it is being
/// deleted, each pod's controller (the uid of the StatefulSet that made it) and what it
/// shows, by object name; and the latest events told about each object, by its uid.
///
/// Indexes from uids to names let a change find the one instance it concerns — a pod its
/// controller's, an event its object's — and [`Sources::take_changes`] re-derives only the
/// instances touched since it was last called, so that keeping a book costs per event
/// what the event concerns, not what the cluster holds.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    limits: StatusLimits,
    workloads: HashMap<String, Workload>,
    pods: HashMap<String, Seen>,
    told: HashMap<String, Told>,
    /// StatefulSet names by uid.
    workload_uids: HashMap<String, String>,
    /// StatefulSet names by instance: one, unless objects not made by FrameDB carry its
    /// labels; the first name then tells the instance's status.
    instances: HashMap<String, BTreeSet<String>>,
    /// Pod names by uid.
    pod_uids: HashMap<String, String>,
    /// The name of the pod each StatefulSet (by uid) made.
    made: HashMap<String, String>,
    /// The instances whose status may have changed since [`Sources::take_changes`].
    touched: HashSet<String>,
}

/// What a StatefulSet tells of its instance.
#[derive(Debug)]
struct Workload {
    name: String,
    instance: String,
    uid: String,
    deleting: bool,
}

/// What a pod tells of its instance.
#[derive(Debug)]
struct Seen {
    name: String,
    uid: String,
    controller: String,
    verdict: Verdict,
}

/// What a pod shows, before its events are taken into account.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    /// The pod alone decides.
    Is(StatusReport),
    /// A cause the kubelet retries, said so: `Provisioning` until the reason of the pod's
    /// latest `Warning` has been told for [`StatusLimits::stuck_after`], `Failed` from
    /// then on.
    Retrying(String),
    /// Scheduled, its containers being created (`ContainerCreating`, `PodInitializing`):
    /// `Provisioning`, with the pod's latest `Warning` (a `FailedMount`, ...) as reason.
    Creating,
}

/// The latest event told about an object, its latest `Warning`, and since when each
/// reason of its `Warning`s has been told.
#[derive(Debug, Default)]
struct Told {
    latest: Option<Said>,
    warning: Option<Said>,
    /// The earliest first timestamp of the object's `Warning`s, by reason: a cause told
    /// in several messages under one reason (the kubelet's `Failed` says "Failed to pull
    /// image ...", then "Error: ErrImagePull", then "Error: ImagePullBackOff") is one
    /// cause, and client-go's correlator folds similar events into a new one ("combined
    /// from similar events") whose own first timestamp is when it began folding.
    since: HashMap<String, Timestamp>,
}

impl Told {
    /// How long the cause of the latest `Warning` has been told.
    fn warned_for(&self) -> Option<Duration> {
        let warning = self.warning.as_ref()?;
        let since = self
            .since
            .get(&warning.reason)
            .map_or(warning.first, |since| (*since).min(warning.first));
        Some(
            warning
                .last
                .duration_since(since)
                .try_into()
                .unwrap_or_default(),
        )
    }
}

/// One event, as far as statuses need it.
#[derive(Debug, Clone)]
struct Said {
    event: String,
    warning: bool,
    reason: String,
    message: String,
    first: Timestamp,
    last: Timestamp,
}

impl Said {
    fn of(event: &Event) -> Option<Self> {
        let micro = |time: &k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime| time.0;
        // Events of the legacy recorder (the kubelet's, the controllers') carry first and
        // last timestamps; those of `events.k8s.io` an event time and a series.
        let first = event
            .first_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| event.event_time.as_ref().map(micro))?;
        let last = event
            .series
            .as_ref()
            .and_then(|s| s.last_observed_time.as_ref())
            .map(micro)
            .or_else(|| event.last_timestamp.as_ref().map(|t| t.0))
            .unwrap_or(first);
        Some(Self {
            event: event.name_any(),
            warning: event.type_.as_deref() == Some("Warning"),
            reason: event.reason.clone().unwrap_or_default(),
            message: event.message.clone().unwrap_or_default(),
            first,
            last,
        })
    }

    fn said(&self) -> String {
        format!("{}: {}", self.reason, self.message)
    }
}

impl Sources {
    /// Sources whose statuses cross into `Failed` at `limits`.
    pub fn new(limits: StatusLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Notes the current state of a StatefulSet (one without an instance label tells of
    /// no instance).
    pub fn workload(&mut self, workload: &StatefulSet) {
        let name = workload.name_any();
        let Some(instance) = instance_of(workload) else {
            // Its label taken away: it tells of no instance any more.
            self.forget_workload(&name);
            return;
        };
        let noted = Workload {
            name: name.clone(),
            instance,
            uid: workload.metadata.uid.clone().unwrap_or_default(),
            deleting: workload.metadata.deletion_timestamp.is_some(),
        };
        self.forget_workload(&name);
        self.workload_uids.insert(noted.uid.clone(), name.clone());
        self.instances
            .entry(noted.instance.clone())
            .or_default()
            .insert(name.clone());
        self.touched.insert(noted.instance.clone());
        self.workloads.insert(name, noted);
    }

    /// Notes the current state of a pod (one without an instance label tells of no
    /// instance). Only the pods of a StatefulSet count: a pod of a deleted workload, still terminating while
    /// the instance is created again under its id, tells nothing of the new one.
    pub fn pod(&mut self, pod: &Pod) {
        if instance_of(pod).is_none() {
            self.forget_pod(&pod.name_any());
            return;
        }
        let controller = pod
            .owner_references()
            .iter()
            .find(|owner| owner.controller == Some(true))
            .map(|owner| owner.uid.clone())
            .unwrap_or_default();
        let name = pod.name_any();
        let seen = Seen {
            name: name.clone(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            controller,
            verdict: judge(pod, &self.limits),
        };
        self.forget_pod(&name);
        self.pod_uids.insert(seen.uid.clone(), name.clone());
        if !seen.controller.is_empty() {
            self.made.insert(seen.controller.clone(), name.clone());
        }
        self.touch_made_by(&seen.controller);
        self.pods.insert(name, seen);
    }

    /// Marks the instance of the StatefulSet of uid `uid`, if it is known, as touched.
    fn touch_made_by(&mut self, uid: &str) {
        let instance = self
            .workload_uids
            .get(uid)
            .and_then(|name| self.workloads.get(name));
        if let Some(workload) = instance {
            self.touched.insert(workload.instance.clone());
        }
    }

    /// Marks the instance that object `uid` (a StatefulSet or a pod) tells of as touched.
    fn touch_object(&mut self, uid: &str) {
        if self.workload_uids.contains_key(uid) {
            self.touch_made_by(uid);
        } else if let Some(pod) = self.pod_uids.get(uid).and_then(|name| self.pods.get(name)) {
            let controller = pod.controller.clone();
            self.touch_made_by(&controller);
        }
    }

    /// Notes an event about an object (of any kind: events carry no labels); one without
    /// a time tells nothing. Only the latest event and the latest `Warning` of each
    /// object are kept, with since when each `Warning` reason has been told; the
    /// object's instance is touched when that changes.
    pub fn event(&mut self, event: &Event) {
        let Some(uid) = event.involved_object.uid.clone() else {
            return;
        };
        let Some(said) = Said::of(event) else {
            return;
        };
        let told = self.told.entry(uid.clone()).or_default();
        // Equal times (a second's resolution) go to the event heard last.
        let newer = |kept: &Option<Said>| kept.as_ref().is_none_or(|kept| said.last >= kept.last);
        let mut changed = false;
        if said.warning {
            // A reason told anew (or again after its earliest event expired) moves the
            // span it has been told for, as an earlier first time does.
            match told.since.entry(said.reason.clone()) {
                Entry::Vacant(entry) => {
                    entry.insert(said.first);
                    changed = true;
                }
                Entry::Occupied(mut entry) if said.first < *entry.get() => {
                    entry.insert(said.first);
                    changed = true;
                }
                Entry::Occupied(_) => {}
            }
        }
        if said.warning && newer(&told.warning) {
            told.warning = Some(said.clone());
            changed = true;
        }
        if newer(&told.latest) {
            told.latest = Some(said);
            changed = true;
        }
        if changed {
            self.touch_object(&uid);
        }
    }

    /// Forgets a deleted event (the API server drops them an hour after they were last
    /// told), touching its object's instance when it was kept.
    pub fn forget_event(&mut self, event: &Event) {
        let Some(uid) = event.involved_object.uid.as_deref() else {
            return;
        };
        let Some(told) = self.told.get_mut(uid) else {
            return;
        };
        let name = event.name_any();
        let mut forgot = false;
        for kept in [&mut told.latest, &mut told.warning] {
            if kept.as_ref().is_some_and(|said| said.event == name) {
                *kept = None;
                forgot = true;
            }
        }
        // The earliest of a reason gone, the next one told sets it again.
        if let Some(said) = Said::of(event)
            && told.since.get(&said.reason) == Some(&said.first)
        {
            told.since.remove(&said.reason);
            forgot = true;
        }
        if told.latest.is_none() && told.warning.is_none() {
            self.told.remove(uid);
        }
        if forgot {
            self.touch_object(uid);
        }
    }

    /// Forgets a deleted StatefulSet, touching its instance.
    pub fn forget_workload(&mut self, name: &str) {
        let Some(gone) = self.workloads.remove(name) else {
            return;
        };
        if self.workload_uids.get(&gone.uid).is_some_and(|n| n == name) {
            self.workload_uids.remove(&gone.uid);
        }
        if let Some(names) = self.instances.get_mut(&gone.instance) {
            names.remove(name);
            if names.is_empty() {
                self.instances.remove(&gone.instance);
            }
        }
        self.touched.insert(gone.instance);
    }

    /// Forgets a deleted pod, touching its instance.
    pub fn forget_pod(&mut self, name: &str) {
        let Some(gone) = self.pods.remove(name) else {
            return;
        };
        if self.pod_uids.get(&gone.uid).is_some_and(|n| n == name) {
            self.pod_uids.remove(&gone.uid);
        }
        if self.made.get(&gone.controller).is_some_and(|n| n == name) {
            self.made.remove(&gone.controller);
        }
        self.touch_made_by(&gone.controller);
    }

    /// Forgets every StatefulSet, before they are all noted again.
    pub fn clear_workloads(&mut self) {
        self.workloads.clear();
        self.workload_uids.clear();
        self.instances.clear();
    }

    /// Forgets every pod, before they are all noted again.
    pub fn clear_pods(&mut self) {
        self.pods.clear();
        self.pod_uids.clear();
        self.made.clear();
    }

    /// Forgets every event, before they are all noted again.
    pub fn clear_events(&mut self) {
        self.told.clear();
    }

    /// The current status of every instance touched since the last call (`None`: it
    /// has no workload any more), and forgets that they were.
    pub fn take_changes(&mut self) -> Vec<(FramedbId, Option<StatusReport>)> {
        let touched = std::mem::take(&mut self.touched);
        touched
            .into_iter()
            .filter_map(|instance| {
                let report = self.shown(&instance).map(|workload| self.report(workload));
                Some((FramedbId::new(&instance).ok()?, report))
            })
            .collect()
    }

    /// Whether a status depends on events: a workload without a pod, or a pod whose
    /// containers wait for something the kubelet retries. A direct read lists the
    /// events only then.
    pub fn needs_events(&self) -> bool {
        self.workloads
            .values()
            .any(|w| !w.deleting && !self.made.contains_key(&w.uid))
            || self
                .pods
                .values()
                .any(|p| !matches!(p.verdict, Verdict::Is(_)))
    }

    /// The status of every instance that has a workload (see [`Sources::report`]).
    pub fn statuses(&self) -> Statuses {
        self.instances
            .keys()
            .filter_map(|instance| {
                let workload = self.shown(instance)?;
                Some((FramedbId::new(instance).ok()?, self.report(workload)))
            })
            .collect()
    }

    /// The StatefulSet whose status `instance` shows: its only one, or the first by
    /// name when objects not made by FrameDB carry its labels too.
    fn shown(&self, instance: &str) -> Option<&Workload> {
        let name = self.instances.get(instance)?.first()?;
        self.workloads.get(name)
    }

    /// The status of a workload's instance (docs/architecture.md, "Status"): `Failed`
    /// while its workload is being deleted — a delete through FrameDB reads `Deleting`
    /// from the instance's record, which wins over this — the status of the pod it made
    /// once it has one, `Failed` with the event when the workload's latest event is a
    /// `FailedCreate` of its pod, `Provisioning` before.
    fn report(&self, workload: &Workload) -> StatusReport {
        if workload.deleting {
            return StatusReport::with_reason(
                InstanceStatus::Failed,
                format!(
                    "its StatefulSet {} is being deleted, not by a delete of the instance \
                     through FrameDB",
                    workload.name
                ),
            );
        }
        match self
            .made
            .get(&workload.uid)
            .and_then(|pod| self.pods.get(pod))
        {
            Some(seen) => self.settle(seen),
            None => self.podless(workload),
        }
    }

    /// A workload that has no pod: a pod the API server refused to its controller (Pod
    /// Security admission, a quota, a webhook) is told only in the workload's events.
    fn podless(&self, workload: &Workload) -> StatusReport {
        let latest = self.told.get(&workload.uid).and_then(|t| t.latest.as_ref());
        match latest {
            Some(said) if said.warning && said.reason == "FailedCreate" => {
                StatusReport::with_reason(InstanceStatus::Failed, said.said())
            }
            _ => StatusReport::new(InstanceStatus::Provisioning),
        }
    }

    /// A pod's status, its events taken into account.
    fn settle(&self, seen: &Seen) -> StatusReport {
        let told = self.told.get(&seen.uid);
        let warning = told.and_then(|t| t.warning.as_ref());
        match &seen.verdict {
            Verdict::Is(report) => report.clone(),
            Verdict::Retrying(said) => match told.and_then(Told::warned_for) {
                Some(span) if span >= self.limits.stuck_after => StatusReport::with_reason(
                    InstanceStatus::Failed,
                    format!("{said}; told for {} s", span.as_secs()),
                ),
                _ => StatusReport::with_reason(InstanceStatus::Provisioning, said.clone()),
            },
            // The scheduler's complaints are over once the pod is scheduled.
            Verdict::Creating => match warning.filter(|told| told.reason != "FailedScheduling") {
                Some(told) => StatusReport::with_reason(
                    InstanceStatus::Provisioning,
                    format!("pod {} is not started yet: {}", seen.name, told.said()),
                ),
                None => StatusReport::new(InstanceStatus::Provisioning),
            },
        }
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

/// The instance status a pod shows on its own, with the default [`StatusLimits`] and
/// without its events (see [`judge`]).
#[cfg(test)]
pub(crate) fn pod_status(pod: &Pod) -> StatusReport {
    let mut sources = Sources::default();
    sources.pod(pod);
    sources.settle(sources.pods.values().next().expect("the pod is noted"))
}

/// What a pod shows, before its events: `Running` once its `Ready` condition holds (TiDB's
/// readiness check passes, and the sidecars PD and TiKV are up), `Pending` while the
/// scheduler cannot place it, `Failed` when it failed or exited, or when a container
/// cannot start for a reason no retry fixes (`InvalidImageName`, `ErrImageNeverPull`).
///
/// A container that keeps crashing — waiting in `CrashLoopBackOff`, ended, or running
/// again after it ended, in a pod that is not ready — reads `Provisioning` with how its
/// last run ended as the reason until it has been restarted [`StatusLimits::restarts`]
/// times, `Failed` from then on. An image the kubelet cannot pull, or a container it
/// cannot create, is [`Verdict::Retrying`]; containers being created (`ContainerCreating`,
/// `PodInitializing`) are [`Verdict::Creating`]. Init containers (PD and TiKV run as
/// native sidecars) are read as containers are; a plain init container that completed is
/// done. Otherwise `Provisioning`, also while it terminates: a pod goes with its grace
/// period when it is restarted or rolled while its workload stays, and TiDB serves no
/// more once it has been told to stop.
///
/// Two cases say more, because they may last: a pod being deleted by a disruption (the
/// taint-eviction controller's, when its node is down; an eviction, as by `kubectl
/// drain`) reads `Pending`, with the disruption as the reason, since its replacement
/// cannot start until it is gone, which on a node that is down waits for the node to
/// come back; and a pod the node lifecycle controller marked not ready (its containers
/// ready, the pod not: its node stopped reporting, or reports not ready) reads `Unknown`,
/// since whether TiDB still serves cannot be told.
fn judge(pod: &Pod, limits: &StatusLimits) -> Verdict {
    use InstanceStatus as S;
    let is = |status, reason: String| Verdict::Is(StatusReport::with_reason(status, reason));
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
            Some(disruption) => is(
                S::Pending,
                format!(
                    "pod {name} is being deleted ({}: {}); its replacement starts once it is gone",
                    disruption.reason.as_deref().unwrap_or("Disrupted"),
                    disruption.message.as_deref().unwrap_or("disrupted"),
                ),
            ),
            None => Verdict::Is(StatusReport::new(S::Provisioning)),
        };
    }
    let Some(status) = &pod.status else {
        return Verdict::Is(StatusReport::new(S::Provisioning));
    };
    if let Some(unscheduled) = condition("PodScheduled").filter(|c| c.status == "False") {
        let reason = unscheduled.reason.as_deref().unwrap_or("Unschedulable");
        let message = unscheduled
            .message
            .as_deref()
            .unwrap_or("the pod cannot be scheduled");
        return is(S::Pending, format!("{reason}: {message}"));
    }
    match status.phase.as_deref() {
        Some("Failed") => {
            let reason = status.message.as_deref().or(status.reason.as_deref());
            return is(S::Failed, reason.unwrap_or("the pod failed").to_owned());
        }
        Some("Succeeded") => return is(S::Failed, "the pod exited".to_owned()),
        _ => {}
    }
    let ready = is_true("Ready");
    // Init containers first: they start first, and a native sidecar that cannot start
    // holds back every container after it.
    let sidecars: Vec<&str> = pod
        .spec
        .iter()
        .flat_map(|spec| spec.init_containers.iter().flatten())
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .map(|c| c.name.as_str())
        .collect();
    let inits = status.init_container_statuses.iter().flatten();
    let mains = status.container_statuses.iter().flatten();
    let containers = inits
        .map(|c| (c, !sidecars.contains(&c.name.as_str())))
        .chain(mains.map(|c| (c, false)));
    let mut creating = false;
    for (container, run_once) in containers {
        match container_verdict(container, run_once, ready, limits) {
            Some(Verdict::Creating) => creating = true,
            Some(verdict) => return verdict,
            None => {}
        }
    }
    if ready {
        Verdict::Is(StatusReport::new(S::Running))
    } else if is_true("ContainersReady") && status.phase.as_deref() == Some("Running") {
        // The kubelet makes both conditions together (FrameDB's pods have no readiness
        // gates): only the node lifecycle controller takes `Ready` away alone.
        is(
            S::Unknown,
            format!("pod {name} was marked not ready because its node is not ready"),
        )
    } else if creating {
        Verdict::Creating
    } else {
        Verdict::Is(StatusReport::new(S::Provisioning))
    }
}

/// What one container says of its pod, if anything: `run_once` for a plain init
/// container, which is done once it completed.
fn container_verdict(
    container: &ContainerStatus,
    run_once: bool,
    ready: bool,
    limits: &StatusLimits,
) -> Option<Verdict> {
    use InstanceStatus as S;
    let name = &container.name;
    let state = container.state.as_ref();
    let last_exit = exit_of(
        container
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref()),
    );
    let restarts = container.restart_count;
    // The run that ended last: the current state's, else the last state's.
    let ended = state
        .and_then(|s| s.terminated.as_ref())
        .or_else(|| container.last_state.as_ref()?.terminated.as_ref());
    // Restarts within the limit are a start-up that may still succeed. A run that lasted
    // long is no crash loop whatever the count (which the kubelet never resets): the
    // kubelet forgets its back-off after such a run, and so does this.
    let restarted = |said: String| {
        let status = if restarts >= limits.restarts && !ended.is_some_and(ran_long) {
            S::Failed
        } else {
            S::Provisioning
        };
        Verdict::Is(StatusReport::with_reason(status, said))
    };
    if let Some(waiting) = state.and_then(|s| s.waiting.as_ref()) {
        let reason = waiting.reason.as_deref().unwrap_or_default();
        let message = waiting.message.as_deref().unwrap_or_default();
        let mut said = format!("container {name} is waiting: {reason} {message}")
            .trim_end()
            .to_owned();
        if let Some(exit) = &last_exit {
            said = format!("{said}; its last run ended: {exit}");
        }
        match reason {
            // The pod's spec names something that cannot be run: only a new spec helps.
            "InvalidImageName" | "ErrImageNeverPull" => {
                return Some(Verdict::Is(StatusReport::with_reason(S::Failed, said)));
            }
            "ErrImagePull"
            | "ImagePullBackOff"
            | "CreateContainerConfigError"
            | "CreateContainerError"
            | "RunContainerError" => return Some(Verdict::Retrying(said)),
            "CrashLoopBackOff" => {
                return Some(restarted(format!("{said}; restarted {restarts} times")));
            }
            "ContainerCreating" | "PodInitializing" => return Some(Verdict::Creating),
            _ => {}
        }
    }
    // An ended container of a pod that is not serving: the kubelet restarts it, or
    // its policy keeps it stopped; either way the instance does not run. (A running
    // pod's phase hides it: only the container statuses tell it.)
    if ready {
        return None;
    }
    if let Some(terminated) = state.and_then(|s| s.terminated.as_ref()) {
        if run_once && terminated.exit_code == 0 {
            return None;
        }
        let exit = exit_of(Some(terminated)).unwrap_or_default();
        return Some(restarted(format!(
            "container {name} ended: {exit}; restarted {restarts} times"
        )));
    }
    // Running again after it ended, not ready yet: a crash loop between two crashes
    // reads as one, not as an instance coming up. Ready again, it is over (the pod may
    // still be not ready for another reason: its node's).
    if let Some(exit) = last_exit.filter(|_| restarts > 0 && !container.ready) {
        return Some(restarted(format!(
            "container {name} restarted {restarts} times; its last run ended: {exit}"
        )));
    }
    None
}

/// A run after which the kubelet restarts a container without back-off: one that lasted
/// twice its longest back-off, 10 minutes (client-go's `Backoff` forgets an entry after
/// twice its maximum), by the kubelet's own timestamps.
fn ran_long(run: &k8s_openapi::api::core::v1::ContainerStateTerminated) -> bool {
    let (Some(started), Some(finished)) = (&run.started_at, &run.finished_at) else {
        return false;
    };
    finished.0.as_second() - started.0.as_second() >= 600
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
    fn a_pod_that_restarted_once_and_recovered_is_unknown_when_its_node_goes() {
        let mut pod = crash_looping(
            json!({ "running": { "startedAt": "2026-01-01T00:00:00Z" } }),
            true,
        );
        let status = pod.status.as_mut().unwrap();
        status.conditions = Some(
            serde_json::from_value(json!([
                { "type": "Ready", "status": "False" },
                { "type": "ContainersReady", "status": "True" },
            ]))
            .unwrap(),
        );
        assert_eq!(pod_status(&pod).status, InstanceStatus::Unknown);
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

    /// A core/v1 event about `kind` `name` of uid `uid`, told from `first` to `last`
    /// (seconds after 2026-01-01T00:00:00Z).
    fn event(
        name: &str,
        (kind, uid): (&str, &str),
        (type_, reason, message): (&str, &str, &str),
        (first, last): (i64, i64),
    ) -> Event {
        let at = |s: i64| {
            Timestamp::from_second(1_767_225_600 + s)
                .unwrap()
                .to_string()
        };
        serde_json::from_value(json!({
            "metadata": { "name": name, "namespace": "framedb-storage" },
            "involvedObject": { "kind": kind, "name": "db-0", "uid": uid },
            "type": type_, "reason": reason, "message": message,
            "firstTimestamp": at(first), "lastTimestamp": at(last),
        }))
        .unwrap()
    }

    /// Pod `db-0` of uid `pod-1`, made by the workload of uid `uid-1`, not ready, with
    /// `init` and `main` as its init and main container statuses; its spec runs the init
    /// containers named in `sidecars` as native sidecars.
    fn starting(sidecars: &[&str], init: serde_json::Value, main: serde_json::Value) -> Pod {
        let mut pod = serde_json::to_value(pod("db", "uid-1", false)).unwrap();
        pod["metadata"]["uid"] = json!("pod-1");
        pod["spec"] = json!({
            "containers": [{ "name": "tidb" }],
            "initContainers": sidecars
                .iter()
                .map(|name| json!({ "name": name, "restartPolicy": "Always" }))
                .collect::<Vec<_>>(),
        });
        pod["status"] = json!({
            "phase": "Pending",
            "conditions": [
                { "type": "PodScheduled", "status": "True" },
                { "type": "Initialized", "status": "False" },
                { "type": "Ready", "status": "False" },
                { "type": "ContainersReady", "status": "False" },
            ],
            "initContainerStatuses": init,
            "containerStatuses": main,
        });
        serde_json::from_value(pod).unwrap()
    }

    fn container(name: &str, restarts: i32, state: serde_json::Value) -> serde_json::Value {
        json!({
            "name": name, "image": format!("pingcap/{name}:v8.5.1"), "imageID": "",
            "ready": false, "restartCount": restarts, "state": state,
        })
    }

    fn waiting(reason: &str, message: &str) -> serde_json::Value {
        json!({ "waiting": { "reason": reason, "message": message } })
    }

    fn report_of(sources: &Sources) -> StatusReport {
        sources.statuses()[&FramedbId::new("db").unwrap()].clone()
    }

    fn sources_with(pod: &Pod) -> Sources {
        let mut sources = Sources::default();
        sources.workload(&workload("db", "uid-1"));
        sources.pod(pod);
        sources
    }

    #[test]
    fn the_changes_taken_after_each_note_keep_a_book_equal_to_a_whole_derivation() {
        let mut sources = Sources::default();
        let mut book = Statuses::new();
        fn step(sources: &mut Sources, book: &mut Statuses, what: &str) {
            for (id, report) in sources.take_changes() {
                match report {
                    Some(report) => book.insert(id, report),
                    None => book.remove(&id),
                };
            }
            assert_eq!(*book, sources.statuses(), "after {what}");
        }
        let mount = event(
            "db-0.1",
            ("Pod", "pod-1"),
            ("Warning", "FailedMount", "no volume"),
            (0, 5),
        );
        sources.event(&mount);
        step(
            &mut sources,
            &mut book,
            "an event before its pod and workload",
        );
        sources.workload(&workload("db", "uid-1"));
        step(&mut sources, &mut book, "the workload");
        let creating = starting(
            &[],
            json!([]),
            json!([container("tidb", 0, waiting("ContainerCreating", ""))]),
        );
        sources.pod(&creating);
        step(&mut sources, &mut book, "its pod, being created");
        assert!(book[&FramedbId::new("db").unwrap()].reason.is_some());
        sources.forget_event(&mount);
        step(&mut sources, &mut book, "the pod's event deleted");
        let mut replaced = serde_json::to_value(pod("db", "uid-1", false)).unwrap();
        replaced["metadata"]["uid"] = json!("pod-2");
        sources.pod(&serde_json::from_value(replaced).unwrap());
        step(&mut sources, &mut book, "the pod replaced under its name");
        sources.workload(&workload("other", "uid-2"));
        sources.event(&event(
            "other.1",
            ("StatefulSet", "uid-2"),
            ("Warning", "FailedCreate", "forbidden"),
            (0, 0),
        ));
        step(&mut sources, &mut book, "a workload whose pod was refused");
        assert_eq!(
            book[&FramedbId::new("other").unwrap()].status,
            InstanceStatus::Failed
        );
        let mut deleting = serde_json::to_value(workload("db", "uid-1")).unwrap();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        sources.workload(&serde_json::from_value(deleting).unwrap());
        step(&mut sources, &mut book, "the workload being deleted");
        sources.forget_workload("db");
        step(&mut sources, &mut book, "the workload gone, its pod left");
        sources.workload(&workload("db", "uid-3"));
        step(
            &mut sources,
            &mut book,
            "the instance made again, the old pod still there",
        );
        sources.pod(&pod("db", "uid-3", false));
        step(&mut sources, &mut book, "its new pod");
        sources.forget_pod("db-0");
        sources.forget_workload("other");
        step(&mut sources, &mut book, "pod and workload gone");
        assert_eq!(book.len(), 1);

        // A StatefulSet not made by FrameDB with the instance's label, then gone.
        let mut stray = serde_json::to_value(workload("db", "uid-9")).unwrap();
        stray["metadata"]["name"] = json!("stray");
        sources.workload(&serde_json::from_value(stray.clone()).unwrap());
        step(&mut sources, &mut book, "a second workload of one instance");
        sources.forget_workload("stray");
        step(&mut sources, &mut book, "the second one gone");
        assert_eq!(book.len(), 1);
        // Its label taken away: it tells of no instance.
        sources.workload(&serde_json::from_value(stray.clone()).unwrap());
        stray["metadata"]["labels"] = json!({});
        sources.workload(&serde_json::from_value(stray).unwrap());
        step(&mut sources, &mut book, "the stray's label removed");
        sources.forget_workload("db");
        step(&mut sources, &mut book, "the instance gone");
        assert!(book.is_empty());
    }

    #[test]
    fn a_reason_told_again_after_its_earliest_event_expired_changes_the_span_it_was_told_for() {
        let limits = StatusLimits {
            stuck_after: Duration::from_secs(160),
            ..StatusLimits::default()
        };
        let mut sources = Sources::new(limits);
        let pull = starting(
            &[],
            json!([]),
            json!([container("tidb", 0, waiting("ErrImagePull", "not found"))]),
        );
        sources.workload(&workload("db", "uid-1"));
        sources.pod(&pull);
        let told = |name: &str, (first, last): (i64, i64)| {
            event(
                name,
                ("Pod", "pod-1"),
                ("Warning", "Failed", "Error: ErrImagePull"),
                (first, last),
            )
        };
        sources.event(&told("e0", (0, 10)));
        sources.event(&told("e1", (20, 90)));
        sources.event(&told("e2", (50, 200)));
        sources.take_changes();
        assert_eq!(
            report_of(&sources).status,
            InstanceStatus::Failed,
            "told for 200 s"
        );
        sources.forget_event(&told("e0", (0, 10)));
        sources.take_changes();
        assert_eq!(
            report_of(&sources).status,
            InstanceStatus::Provisioning,
            "150 s"
        );
        // e1 told again, earlier than the kept warning: the reason has been told since 20.
        sources.event(&told("e1", (20, 95)));
        let changes = sources.take_changes();
        assert_eq!(changes.len(), 1, "the instance is touched");
        assert_eq!(
            changes[0].1.as_ref().map(|report| report.status),
            Some(InstanceStatus::Failed),
            "told for 180 s"
        );
    }

    #[test]
    fn a_sidecar_that_cannot_pull_is_provisioning_until_the_kubelet_has_told_it_for_the_limit() {
        let pull = "rpc error: code = NotFound desc = failed to pull and unpack image \
                    \"docker.io/pingcap/pd:v9\": not found";
        let pod = starting(
            &["pd", "tikv"],
            json!([
                container("pd", 0, waiting("ErrImagePull", pull)),
                container("tikv", 0, waiting("PodInitializing", "")),
            ]),
            json!([container("tidb", 0, waiting("PodInitializing", ""))]),
        );
        let mut sources = sources_with(&pod);
        let report = report_of(&sources);
        assert_eq!(report.status, InstanceStatus::Provisioning);
        let reason = report.reason.unwrap();
        assert!(
            reason.starts_with("container pd is waiting: ErrImagePull rpc error"),
            "{reason}"
        );
        // Told again and again by the kubelet: within the limit, still coming up.
        let failed = ("Warning", "Failed", "Error: ErrImagePull");
        sources.event(&event("e1", ("Pod", "pod-1"), failed, (0, 110)));
        assert_eq!(report_of(&sources).status, InstanceStatus::Provisioning);
        // Past it (2 minutes by default), measured on the event's own timestamps.
        sources.event(&event("e1", ("Pod", "pod-1"), failed, (0, 150)));
        let report = report_of(&sources);
        assert_eq!(report.status, InstanceStatus::Failed);
        let reason = report.reason.unwrap();
        assert!(reason.contains(pull), "{reason}");
        assert!(reason.ends_with("; told for 150 s"), "{reason}");
        // The event expires: what is left says nothing of how long; coming up again.
        sources.forget_event(&event("e1", ("Pod", "pod-1"), failed, (0, 150)));
        assert_eq!(report_of(&sources).status, InstanceStatus::Provisioning);
        // The same cause in other messages (and folded by the correlator into a new
        // event) counts from its first telling.
        let back_off = ("Warning", "Failed", "Error: ImagePullBackOff");
        sources.event(&event("e2", ("Pod", "pod-1"), back_off, (200, 200)));
        let combined = (
            "Warning",
            "Failed",
            "(combined from similar events): Error: ErrImagePull",
        );
        sources.event(&event("e3", ("Pod", "pod-1"), combined, (290, 300)));
        assert_eq!(report_of(&sources).status, InstanceStatus::Provisioning);
        sources.event(&event("e3", ("Pod", "pod-1"), combined, (290, 320)));
        let report = report_of(&sources);
        assert_eq!(report.status, InstanceStatus::Failed);
        assert!(report.reason.unwrap().ends_with("; told for 120 s"));
    }

    #[test]
    fn the_limits_are_settings() {
        let pod = starting(
            &[],
            json!([]),
            json!([container(
                "tidb",
                0,
                waiting("ImagePullBackOff", "Back-off")
            )]),
        );
        let limits = StatusLimits {
            restarts: 1,
            stuck_after: Duration::from_secs(2),
        };
        let mut sources = Sources::new(limits);
        sources.workload(&workload("db", "uid-1"));
        sources.pod(&pod);
        let failed = ("Warning", "Failed", "Error: ImagePullBackOff");
        sources.event(&event("e1", ("Pod", "pod-1"), failed, (0, 2)));
        assert_eq!(report_of(&sources).status, InstanceStatus::Failed);
        let exited = json!({ "terminated": { "exitCode": 1, "reason": "Error" } });
        sources.pod(&starting(
            &[],
            json!([]),
            json!([container("tidb", 1, exited)]),
        ));
        assert_eq!(report_of(&sources).status, InstanceStatus::Failed);
    }

    #[test]
    fn restarts_read_provisioning_until_the_limit_then_failed() {
        let crashed = |restarts| {
            let mut tidb = container(
                "tidb",
                restarts,
                waiting("CrashLoopBackOff", "back-off 10s"),
            );
            tidb["lastState"] = json!({ "terminated": { "exitCode": 1, "reason": "Error" } });
            starting(&["pd", "tikv"], json!([]), json!([tidb]))
        };
        for (restarts, expected) in [
            (1, InstanceStatus::Provisioning),
            (2, InstanceStatus::Provisioning),
            (3, InstanceStatus::Failed),
            (7, InstanceStatus::Failed),
        ] {
            let report = pod_status(&crashed(restarts));
            assert_eq!(report.status, expected, "{restarts} restarts");
            let reason = report.reason.unwrap();
            assert!(
                reason.contains("its last run ended: Error (exit code 1)"),
                "{reason}"
            );
            assert!(
                reason.ends_with(&format!("restarted {restarts} times")),
                "{reason}"
            );
        }
        // A sidecar crash-looping in `initContainerStatuses` reads the same.
        let mut tikv = container("tikv", 4, waiting("CrashLoopBackOff", "back-off 40s"));
        tikv["lastState"] = json!({ "terminated": { "exitCode": 137, "reason": "OOMKilled" } });
        let pod = starting(&["pd", "tikv"], json!([tikv]), json!([]));
        let report = pod_status(&pod);
        assert_eq!(report.status, InstanceStatus::Failed);
        assert!(report.reason.unwrap().contains("container tikv"));
    }

    #[test]
    fn a_crash_after_a_long_run_is_no_crash_loop_whatever_the_count() {
        // Ten restarts over its life, then a week of running, then a crash.
        let crashed = |started: &str| {
            let tidb = container(
                "tidb",
                10,
                json!({ "terminated": {
                    "exitCode": 1, "reason": "Error",
                    "startedAt": started, "finishedAt": "2026-01-08T00:00:00Z",
                } }),
            );
            starting(&["pd", "tikv"], json!([]), json!([tidb]))
        };
        let report = pod_status(&crashed("2026-01-01T00:00:00Z"));
        assert_eq!(report.status, InstanceStatus::Provisioning, "{report:?}");
        assert!(report.reason.unwrap().contains("restarted 10 times"));
        // A run of a minute is part of a crash loop.
        let report = pod_status(&crashed("2026-01-07T23:59:00Z"));
        assert_eq!(report.status, InstanceStatus::Failed, "{report:?}");
    }

    #[test]
    fn sidecars_starting_and_completed_init_containers_are_provisioning() {
        let running = json!({ "running": { "startedAt": "2026-01-01T00:00:00Z" } });
        let completed = json!({ "terminated": { "exitCode": 0, "reason": "Completed" } });
        // A plain init container done, PD started, TiKV not yet started (its startup
        // probe), TiDB waiting for the pod to be initialized.
        let pod = starting(
            &["pd", "tikv"],
            json!([
                container("prepare", 0, completed),
                container("pd", 0, running.clone()),
                container("tikv", 0, running),
            ]),
            json!([container("tidb", 0, waiting("PodInitializing", ""))]),
        );
        assert_eq!(
            pod_status(&pod),
            StatusReport::new(InstanceStatus::Provisioning)
        );
        // A native sidecar that exited is not done: the kubelet restarts it.
        let exited = json!({ "terminated": { "exitCode": 0, "reason": "Completed" } });
        let pod = starting(&["pd"], json!([container("pd", 1, exited)]), json!([]));
        let report = pod_status(&pod);
        assert_eq!(report.status, InstanceStatus::Provisioning);
        assert!(
            report
                .reason
                .unwrap()
                .starts_with("container pd ended: Completed")
        );
        // An image name that no retry can pull fails at once, sidecar or not.
        let pod = starting(
            &["pd"],
            json!([container("pd", 0, waiting("InvalidImageName", "bad"))]),
            json!([]),
        );
        assert_eq!(pod_status(&pod).status, InstanceStatus::Failed);
    }

    #[test]
    fn a_pod_being_created_reads_its_latest_warning_since_it_was_scheduled() {
        let pod = starting(
            &["pd", "tikv"],
            json!([container("pd", 0, waiting("ContainerCreating", ""))]),
            json!([container("tidb", 0, waiting("PodInitializing", ""))]),
        );
        let mut sources = sources_with(&pod);
        assert_eq!(
            report_of(&sources),
            StatusReport::new(InstanceStatus::Provisioning)
        );
        let unscheduled = ("Warning", "FailedScheduling", "0/2 nodes are available");
        sources.event(&event("e1", ("Pod", "pod-1"), unscheduled, (0, 0)));
        assert_eq!(
            report_of(&sources),
            StatusReport::new(InstanceStatus::Provisioning),
            "the scheduler's complaint is over"
        );
        let mount = "MountVolume.NewMounter initialization failed for volume \"db\" : \
                     path \"/mnt/framedb/db\" does not exist";
        sources.event(&event(
            "e2",
            ("Pod", "pod-1"),
            ("Warning", "FailedMount", mount),
            (1, 600),
        ));
        let report = report_of(&sources);
        assert_eq!(
            report.status,
            InstanceStatus::Provisioning,
            "the kubelet mounts it once the directory is made"
        );
        assert_eq!(
            report.reason.unwrap(),
            format!("pod db-0 is not started yet: FailedMount: {mount}")
        );
    }

    #[test]
    fn a_workload_whose_pod_is_refused_is_failed_until_a_pod_is_made() {
        let mut sources = Sources::default();
        sources.workload(&workload("db", "uid-1"));
        assert_eq!(
            report_of(&sources),
            StatusReport::new(InstanceStatus::Provisioning)
        );
        let refused = "create Pod db-0 in StatefulSet db failed error: pods \"db-0\" is \
                       forbidden: violates PodSecurity \"restricted:latest\"";
        let failed_create = ("Warning", "FailedCreate", refused);
        sources.event(&event(
            "e1",
            ("StatefulSet", "uid-1"),
            failed_create,
            (0, 5),
        ));
        assert!(sources.needs_events());
        assert_eq!(
            report_of(&sources),
            StatusReport::with_reason(InstanceStatus::Failed, format!("FailedCreate: {refused}"))
        );
        // The controller's next try succeeds (the namespace's level was lowered).
        let created = (
            "Normal",
            "SuccessfulCreate",
            "create Pod db-0 in StatefulSet db successful",
        );
        sources.event(&event("e2", ("StatefulSet", "uid-1"), created, (9, 9)));
        assert_eq!(
            report_of(&sources),
            StatusReport::new(InstanceStatus::Provisioning)
        );
        // An older event heard later (a relist's order) does not undo it.
        sources.event(&event(
            "e1",
            ("StatefulSet", "uid-1"),
            failed_create,
            (0, 5),
        ));
        assert_eq!(
            report_of(&sources),
            StatusReport::new(InstanceStatus::Provisioning)
        );
    }

    #[test]
    fn a_workload_deleted_outside_frame_db_is_failed_not_deleting() {
        let mut sources = Sources::default();
        let mut deleted = serde_json::to_value(workload("db", "uid-1")).unwrap();
        deleted["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        sources.workload(&serde_json::from_value(deleted).unwrap());
        sources.pod(&pod("db", "uid-1", false));
        assert_eq!(
            report_of(&sources),
            StatusReport::with_reason(
                InstanceStatus::Failed,
                "its StatefulSet db is being deleted, not by a delete of the instance \
                 through FrameDB"
            )
        );
    }
}
