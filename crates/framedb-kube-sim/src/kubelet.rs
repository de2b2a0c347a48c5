//! The simulated kubelet's container lifecycle (more methods of `store`'s `State`): it
//! pulls each container's image from the cluster's registry (`images`), with the
//! `Pulling` / `Pulled` / `Failed` / `BackOff` events and the `ErrImagePull` /
//! `ImagePullBackOff` waiting reasons of a real kubelet, retried with its back-off;
//! starts the containers (`Created`, `Started`); and plays the injected container
//! faults: a container that exits (`Error`, or `OOMKilled`) is restarted as its pod's
//! `restartPolicy` says, after the crash back-off (`CrashLoopBackOff`), and one that
//! starts slowly is not ready until it has. Back-offs run on the simulator's clock.
//!
//! The pod's phase, its `Ready` and `ContainersReady` conditions and its container
//! statuses are written from the containers' state on every change, as the kubelet's
//! status manager does (`getPhase`, `GeneratePodReadyCondition`).

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::events::EventType::{Normal, Warning};
use super::events::Source;
use super::faults::seed_from;
use super::images::{
    Container, ContainerFaultKind, Exit, ImageRef, MAX_BACKOFF, Phase, go_duration, next_backoff,
};
use super::json::{is_terminating, meta, now_rfc3339, str_at};
use super::resources::{ObjKey, PODS};
use super::store::State;

/// How long (simulated) the kubelet takes to notice a change of a container and act on
/// it (the PLEG's relist period): an exited container shows `terminated` this long
/// before it is restarted or backs off, a failed pull `ErrImagePull` before
/// `ImagePullBackOff`.
const RELIST: Duration = Duration::from_secs(1);

/// A run longer than this resets the crash back-off (client-go's `Backoff` forgets an
/// entry after twice its maximum).
const BACKOFF_RESET: Duration = Duration::from_secs(2 * MAX_BACKOFF.as_secs());

/// A condition, keeping the previous transition time when its status did not change.
pub(crate) fn condition(
    old_status: &Value,
    kind: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: &str,
) -> Value {
    let status = if status { "True" } else { "False" };
    let previous = old_status["conditions"].as_array().and_then(|cs| {
        cs.iter()
            .find(|c| c["type"] == kind && c["status"] == status)
    });
    let since = previous.map_or(now, |c| str_at(c, &["lastTransitionTime"]));
    let mut c = json!({ "type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": since });
    if !reason.is_empty() {
        c["reason"] = json!(reason);
    }
    if !message.is_empty() {
        c["message"] = json!(message);
    }
    c
}

/// A 64-hex-digit id, stable for its input.
fn hex_id(input: &str) -> String {
    let mut h = seed_from(input);
    let mut hex = String::new();
    while hex.len() < 64 {
        h = h.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(23) ^ 0x5DEE_CE66;
        hex.push_str(&format!("{h:016x}"));
    }
    hex[..64].to_string()
}

impl State {
    /// A simulated duration in the real time the simulator runs on.
    fn real(&self, simulated: Duration) -> Duration {
        simulated.div_f64(self.time_scale)
    }

    /// Starts the containers of pod `k`, just bound to `node` with its sandbox (IPs)
    /// made: pulls their images, starts them, and writes the pod's status.
    pub(crate) fn start_containers(&mut self, k: &ObjKey, pod: Value, now: Instant) {
        let uid = meta(&pod, "uid").to_string();
        self.runtime.containers.entry((k.clone(), uid)).or_default();
        self.put(PODS, k.clone(), pod);
        self.sync_pod_containers(k, now);
    }

    /// Whether the kubelet has something to do now for a pod it runs.
    pub(crate) fn kubelet_due(&self, now: Instant) -> bool {
        self.runtime.wake_at.values().any(|at| *at <= now)
    }

    /// Runs the kubelet for each pod whose next change is due.
    pub(crate) fn sync_kubelet(&mut self, now: Instant) {
        let due: Vec<ObjKey> = self
            .runtime
            .wake_at
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            self.runtime.wake_at.remove(&k);
            self.sync_pod_containers(&k, now);
        }
    }

    /// Moves the containers of pod `k` on to where they are at `now`, records what the
    /// kubelet did, writes the pod's status, and notes when it next has to look.
    fn sync_pod_containers(&mut self, k: &ObjKey, now: Instant) {
        let Some(pod) = self.lookup(PODS, k).cloned() else {
            self.runtime.forget(k);
            return;
        };
        // A pod being deleted is the terminating path's (`termination`).
        if is_terminating(&pod) {
            self.runtime.wake_at.remove(k);
            return;
        }
        // A kubelet that is down reports nothing; once back it looks again
        // (`node_lifecycle`).
        if self.kubelet_down(str_at(&pod, &["spec", "nodeName"])) {
            self.runtime.wake_at.remove(k);
            return;
        }
        let uid = meta(&pod, "uid").to_string();
        let record_key = (k.clone(), uid);
        let mut records = self
            .runtime
            .containers
            .remove(&record_key)
            .unwrap_or_default();
        let node = str_at(&pod, &["spec", "nodeName"]).to_string();
        let list = |field: &str| pod["spec"][field].as_array().cloned().unwrap_or_default();
        let (init_specs, specs) = (list("initContainers"), list("containers"));
        // Once a container of the pod has run, the pod has initialized for good: a
        // sidecar that restarts later does not hold the others back.
        let mut initialized = specs.iter().any(|spec| {
            records
                .get(str_at(spec, &["name"]))
                .is_some_and(|c| !matches!(c.phase, Phase::New))
        });
        let mut wake: Option<Instant> = None;
        let mut note_wake = |next: Option<Instant>| {
            if let Some(next) = next {
                wake = Some(wake.map_or(next, |w| w.min(next)));
            }
        };
        // Init containers run one at a time, in order: the next starts once the one
        // before has completed or, for a sidecar, has started (`computeInitContainerActions`).
        let mut init_statuses = Vec::new();
        let mut pending = Vec::new();
        let mut blocked = false;
        for spec in &init_specs {
            let name = str_at(spec, &["name"]).to_string();
            if blocked {
                init_statuses.push(waiting(spec, "PodInitializing"));
                pending.push(name);
                continue;
            }
            let role = if is_sidecar(spec) {
                Role::Sidecar
            } else {
                Role::Init
            };
            let record = records.entry(name.clone()).or_default();
            self.advance(&pod, &node, spec, role, record, now);
            let (status, next) = self.container_status(&pod, spec, record, now);
            note_wake(next);
            let done = match role {
                Role::Sidecar => status["started"] == true,
                _ => status["state"]["terminated"]["exitCode"] == 0,
            };
            if !done && !initialized {
                blocked = true;
                pending.push(name);
            }
            init_statuses.push(status);
        }
        initialized = initialized || !blocked;
        let mut statuses = Vec::new();
        for spec in &specs {
            if !initialized {
                statuses.push(waiting(spec, "PodInitializing"));
                continue;
            }
            let name = str_at(spec, &["name"]).to_string();
            let record = records.entry(name).or_default();
            self.advance(&pod, &node, spec, Role::Main, record, now);
            let (status, next) = self.container_status(&pod, spec, record, now);
            note_wake(next);
            statuses.push(status);
        }
        self.runtime.containers.insert(record_key, records);
        match wake {
            Some(at) => {
                self.runtime.wake_at.insert(k.clone(), at);
            }
            None => {
                self.runtime.wake_at.remove(k);
            }
        }
        let status = pod_status(&pod, &init_specs, init_statuses, statuses, &pending);
        self.set_status(PODS, k, status);
    }

    /// One container's state machine, run up to `now`.
    fn advance(
        &mut self,
        pod: &Value,
        node: &str,
        spec: &Value,
        role: Role,
        c: &mut Container,
        now: Instant,
    ) {
        let kubelet = Source {
            component: "kubelet",
            host: Some(node),
        };
        let name = str_at(spec, &["name"]).to_string();
        // Messages name the image as the pod spells it (`requestedImage`).
        let image = str_at(spec, &["image"]);
        // Enough for any catch-up: each step moves the container on or stops.
        for _ in 0..64 {
            match &mut c.phase {
                Phase::New => self.pull_and_start(pod, node, spec, role, c, now),
                Phase::PullFailed { retry_at, .. } if *retry_at <= now => {
                    self.pull_and_start(pod, node, spec, role, c, now);
                }
                Phase::PullFailed {
                    backoff_at,
                    told_backoff,
                    ..
                } if *backoff_at <= now && !*told_backoff => {
                    *told_backoff = true;
                    let backoff = format!("Back-off pulling image \"{image}\"");
                    self.record_event(pod, Normal, "BackOff", &backoff, kubelet);
                    self.record_event(pod, Warning, "Failed", "Error: ImagePullBackOff", kubelet);
                }
                Phase::Running {
                    started,
                    since,
                    ends_at: Some((at, exit)),
                    ..
                } if *at <= now => {
                    let ran = at
                        .saturating_duration_since(*since)
                        .mul_f64(self.time_scale);
                    if ran > BACKOFF_RESET {
                        c.crash_backoff = Duration::ZERO;
                    }
                    let terminated = json!({
                        "exitCode": exit.code(), "reason": exit.reason(),
                        "startedAt": started, "finishedAt": now_rfc3339(),
                        "containerID": c.container_id,
                    });
                    let completed = *exit == Exit::Completed;
                    let restarts = match (role, str_at(pod, &["spec", "restartPolicy"])) {
                        // A sidecar runs as long as its pod, whatever the pod's policy.
                        (Role::Sidecar, _) => true,
                        (_, "Never") => false,
                        (Role::Init, _) | (Role::Main, "OnFailure") => !completed,
                        (Role::Main, _) => true,
                    };
                    let waiting_at = *at + self.real(RELIST);
                    let restart_at = restarts.then(|| waiting_at + self.real(c.crash_backoff));
                    c.phase = Phase::Exited {
                        terminated,
                        waiting_at,
                        restart_at,
                        told_backoff: false,
                    };
                }
                Phase::Exited {
                    terminated,
                    restart_at: Some(at),
                    ..
                } if *at <= now => {
                    c.last_terminated = Some(terminated.clone());
                    c.restarts += 1;
                    c.crash_backoff = next_backoff(c.crash_backoff);
                    self.pull_and_start(pod, node, spec, role, c, now);
                }
                Phase::Exited {
                    waiting_at,
                    restart_at: Some(_),
                    told_backoff,
                    ..
                } if *waiting_at <= now && !*told_backoff && !c.crash_backoff.is_zero() => {
                    *told_backoff = true;
                    let backoff = format!(
                        "Back-off restarting failed container {name} in pod {}",
                        pod_ref(pod)
                    );
                    self.record_event(pod, Warning, "BackOff", &backoff, kubelet);
                }
                _ => break,
            }
        }
    }

    /// `EnsureImageExists`, then `startContainer`: pulls the image as the pull policy
    /// says (or finds it on the node), and starts the container if it has it.
    fn pull_and_start(
        &mut self,
        pod: &Value,
        node: &str,
        spec: &Value,
        role: Role,
        c: &mut Container,
        now: Instant,
    ) {
        let kubelet = Source {
            component: "kubelet",
            host: Some(node),
        };
        // Messages name the image as the pod spells it (`requestedImage`).
        let image = str_at(spec, &["image"]);
        let parsed = ImageRef::parse(str_at(spec, &["image"]));
        let full = parsed.as_ref().map(ImageRef::full).unwrap_or_default();
        let present = self
            .runtime
            .pulled
            .get(node)
            .is_some_and(|images| images.contains(&full));
        let policy = str_at(spec, &["imagePullPolicy"]);
        if present && policy != "Always" {
            let already = format!("Container image \"{image}\" already present on machine");
            self.record_event(pod, Normal, "Pulled", &already, kubelet);
        } else if policy == "Never" {
            let message =
                format!("Container image \"{image}\" is not present with pull policy of Never");
            self.record_event(pod, Warning, "ErrImageNeverPull", &message, kubelet);
            self.record_event(pod, Warning, "Failed", "Error: ErrImageNeverPull", kubelet);
            c.phase = Phase::PullFailed {
                reason: "ErrImageNeverPull",
                message,
                backoff_at: now + Duration::from_secs(86_400 * 365),
                told_backoff: true,
                retry_at: now + self.real(super::images::INITIAL_BACKOFF),
            };
            return;
        } else {
            self.record_event(
                pod,
                Normal,
                "Pulling",
                &format!("Pulling image \"{image}\""),
                kubelet,
            );
            let found = parsed
                .as_ref()
                .is_some_and(|p| self.runtime.registry.holds(p));
            if !found {
                let shown = if full.is_empty() {
                    image
                } else {
                    full.as_str()
                };
                let error = format!(
                    "rpc error: code = NotFound desc = failed to pull and unpack image \"{shown}\": failed to resolve reference \"{shown}\": {shown}: not found"
                );
                let failed = format!("Failed to pull image \"{image}\": {error}");
                self.record_event(pod, Warning, "Failed", &failed, kubelet);
                self.record_event(pod, Warning, "Failed", "Error: ErrImagePull", kubelet);
                c.pull_backoff = next_backoff(c.pull_backoff);
                c.phase = Phase::PullFailed {
                    reason: "ErrImagePull",
                    message: error,
                    backoff_at: now + self.real(RELIST),
                    told_backoff: false,
                    retry_at: now + self.real(c.pull_backoff),
                };
                return;
            }
            // Sizes and times made up, stable per image.
            let h = seed_from(&full);
            let took = Duration::from_millis(200 + h % 1800);
            let size = 2_000_000 + h % 200_000_000;
            let pulled = format!(
                "Successfully pulled image \"{image}\" in {took:?} ({took:?} including waiting). Image size: {size} bytes."
            );
            self.record_event(pod, Normal, "Pulled", &pulled, kubelet);
            self.runtime
                .pulled
                .entry(node.to_string())
                .or_default()
                .insert(full);
            c.pull_backoff = Duration::ZERO;
        }
        let name = str_at(spec, &["name"]).to_string();
        self.record_event(
            pod,
            Normal,
            "Created",
            &format!("Created container: {name}"),
            kubelet,
        );
        self.record_event(
            pod,
            Normal,
            "Started",
            &format!("Started container {name}"),
            kubelet,
        );
        c.container_id = format!(
            "containerd://{}",
            hex_id(&format!("{}/{name}/{}", meta(pod, "uid"), c.restarts))
        );
        let fault = self
            .runtime
            .fault(meta(pod, "namespace"), meta(pod, "name"), &name);
        // The program answers its probes `ready_after` from its start: a startup probe
        // holds `started` until then, a readiness probe `ready`; without them the
        // kubelet takes the container as started, and ready, once it runs.
        let answers_at = now + self.ready_after;
        let probed = |probe: &str| spec[probe].is_object();
        let mut starts_at = if probed("startupProbe") {
            answers_at
        } else {
            now
        };
        let mut ends_at = None;
        match fault {
            Some(ContainerFaultKind::SlowStart { by }) => {
                starts_at = starts_at.max(now + self.real(by));
            }
            Some(ContainerFaultKind::CrashLoop { after }) => {
                ends_at = Some((now + self.real(after), Exit::Error));
            }
            Some(ContainerFaultKind::OomKilled { after }) => {
                ends_at = Some((now + self.real(after), Exit::OomKilled));
            }
            Some(ContainerFaultKind::Completes { after }) => {
                ends_at = Some((now + self.real(after), Exit::Completed));
            }
            None => {}
        }
        let ready_at = if probed("readinessProbe") {
            answers_at.max(starts_at)
        } else {
            starts_at
        };
        // A plain init container does its work and exits; nothing runs a command here,
        // so it is done as soon as it starts (unless a fault makes it fail).
        if role == Role::Init && ends_at.is_none() {
            ends_at = Some((now, Exit::Completed));
        }
        c.phase = Phase::Running {
            started: now_rfc3339(),
            since: now,
            starts_at,
            ready_at,
            ends_at,
        };
    }

    /// A container's status as the kubelet reports it at `now`, and when it next
    /// changes by itself.
    fn container_status(
        &self,
        pod: &Value,
        spec: &Value,
        c: &Container,
        now: Instant,
    ) -> (Value, Option<Instant>) {
        let image = str_at(spec, &["image"]);
        let parsed = ImageRef::parse(image);
        let mut status = json!({
            "name": spec["name"], "image": image, "imageID": "",
            "ready": false, "started": false, "restartCount": c.restarts,
            "lastState": {},
        });
        if let Some(last) = &c.last_terminated {
            status["lastState"] = json!({ "terminated": last });
        }
        let ran = |status: &mut Value| {
            if let Some(p) = &parsed {
                status["image"] = json!(p.full());
                status["imageID"] = json!(p.image_id());
            }
            status["containerID"] = json!(c.container_id);
        };
        let next = match &c.phase {
            Phase::New => None,
            Phase::PullFailed {
                reason,
                message,
                backoff_at,
                told_backoff,
                retry_at,
            } => {
                let waiting = if *told_backoff && *reason == "ErrImagePull" {
                    json!({
                        "reason": "ImagePullBackOff",
                        "message": format!("Back-off pulling image \"{image}\": ErrImagePull: {message}"),
                    })
                } else {
                    json!({ "reason": reason, "message": message })
                };
                status["state"] = json!({ "waiting": waiting });
                Some(if *told_backoff {
                    *retry_at
                } else {
                    *backoff_at
                })
            }
            Phase::Running {
                started,
                starts_at,
                ready_at,
                ends_at,
                ..
            } => {
                ran(&mut status);
                let ready = *ready_at <= now;
                status["state"] = json!({ "running": { "startedAt": started } });
                status["ready"] = json!(ready);
                status["started"] = json!(*starts_at <= now);
                let end = ends_at.as_ref().map(|(at, _)| *at);
                match (ready, end) {
                    (false, Some(end)) => Some((*ready_at).min(end)),
                    (false, None) => Some(*ready_at),
                    (true, end) => end.or((*starts_at > now).then_some(*starts_at)),
                }
            }
            Phase::Exited {
                terminated,
                waiting_at,
                restart_at,
                ..
            } => {
                ran(&mut status);
                if *waiting_at <= now && restart_at.is_some() {
                    let message = format!(
                        "back-off {} restarting failed container={} pod={}",
                        go_duration(c.crash_backoff),
                        str_at(spec, &["name"]),
                        pod_ref(pod)
                    );
                    // Waiting to restart: what ended is the last state now.
                    status["state"] =
                        json!({ "waiting": { "reason": "CrashLoopBackOff", "message": message } });
                    status["lastState"] = json!({ "terminated": terminated });
                    *restart_at
                } else {
                    status["state"] = json!({ "terminated": terminated });
                    restart_at.map(|_| *waiting_at)
                }
            }
        };
        (status, next)
    }
}

/// A pod as the kubelet names it in messages (`format.Pod`): `name_namespace(uid)`.
fn pod_ref(pod: &Value) -> String {
    format!(
        "{}_{}({})",
        meta(pod, "name"),
        meta(pod, "namespace"),
        meta(pod, "uid")
    )
}

/// What a container is to its pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// One of `spec.containers`.
    Main,
    /// A plain init container: runs to completion before the next starts.
    Init,
    /// An init container with `restartPolicy: Always` (a native sidecar): the next
    /// starts once it has started, and it runs beside the pod's containers.
    Sidecar,
}

/// Whether an init container is a sidecar (`restartPolicy: Always`).
fn is_sidecar(spec: &Value) -> bool {
    spec["restartPolicy"] == "Always"
}

/// The status of a container the kubelet has not started yet, waiting for `reason`
/// (`ContainerCreating`, or `PodInitializing` in a pod with init containers).
pub(crate) fn waiting(spec: &Value, reason: &str) -> Value {
    json!({
        "name": spec["name"], "image": spec["image"], "imageID": "",
        "ready": false, "started": false, "restartCount": 0,
        "state": { "waiting": { "reason": reason } },
    })
}

/// The pod's status with these init and container statuses: its phase as `getPhase`
/// makes it (`Pending` until its init containers are done, `pending` names those that
/// are not), and its conditions (`GeneratePodInitializedCondition`,
/// `GenerateContainersReadyCondition`: a sidecar's readiness counts).
fn pod_status(
    pod: &Value,
    init_specs: &[Value],
    init_statuses: Vec<Value>,
    statuses: Vec<Value>,
    pending: &[String],
) -> Value {
    let stamp = now_rfc3339();
    let old = &pod["status"];
    let (mut running, mut waiting, mut stopped, mut failed) = (0, 0, 0, 0);
    for s in &statuses {
        let state = &s["state"];
        if state["running"].is_object() {
            running += 1;
        } else if state["terminated"].is_object() {
            stopped += 1;
            if state["terminated"]["exitCode"].as_i64().unwrap_or(0) != 0 {
                failed += 1;
            }
        } else if s["lastState"]["terminated"].is_object() {
            // Waiting to restart after it ran.
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    let initialized = pending.is_empty();
    let policy = str_at(pod, &["spec", "restartPolicy"]);
    // A plain init container that failed is never run again under `Never`: the pod
    // cannot start (`getPhase`'s `initFailed`).
    let init_failed = policy == "Never"
        && init_statuses.iter().zip(init_specs).any(|(status, spec)| {
            !is_sidecar(spec)
                && status["state"]["terminated"]["exitCode"]
                    .as_i64()
                    .is_some_and(|code| code != 0)
        });
    let phase = if init_failed {
        "Failed"
    } else if !initialized || waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 && policy == "Never" {
        if failed > 0 { "Failed" } else { "Succeeded" }
    } else {
        "Running"
    };
    let sidecars = init_statuses
        .iter()
        .zip(init_specs)
        .filter(|(_, spec)| is_sidecar(spec))
        .map(|(status, _)| status);
    let unready: Vec<&str> = sidecars
        .chain(&statuses)
        .filter(|s| s["ready"] != true)
        .filter_map(|s| s["name"].as_str())
        .collect();
    let ready = unready.is_empty();
    let message = if ready {
        String::new()
    } else {
        format!("containers with unready status: [{}]", unready.join(" "))
    };
    let (reason, message) = if ready {
        ("", "")
    } else if phase == "Failed" || phase == "Succeeded" {
        ("PodCompleted", "")
    } else {
        ("ContainersNotReady", message.as_str())
    };
    let not_initialized = format!("containers with incomplete status: [{}]", pending.join(" "));
    let (init_reason, init_message) = if initialized {
        ("", "")
    } else {
        ("ContainersNotInitialized", not_initialized.as_str())
    };
    let mut status = old.clone();
    status["phase"] = json!(phase);
    status["conditions"] = json!([
        condition(old, "PodReadyToStartContainers", true, "", "", &stamp),
        condition(
            old,
            "Initialized",
            initialized,
            init_reason,
            init_message,
            &stamp
        ),
        condition(old, "Ready", ready, reason, message, &stamp),
        condition(old, "ContainersReady", ready, reason, message, &stamp),
        condition(old, "PodScheduled", true, "", "", &stamp),
    ]);
    if init_statuses.is_empty() {
        if let Some(status) = status.as_object_mut() {
            status.remove("initContainerStatuses");
        }
    } else {
        status["initContainerStatuses"] = json!(init_statuses);
    }
    status["containerStatuses"] = json!(statuses);
    status
}
