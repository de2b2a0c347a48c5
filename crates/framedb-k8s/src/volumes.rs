//! Local volumes' directories on their nodes (docs/architecture.md, "Local volumes").
//! A `local` PersistentVolume names a directory, `{root}/{id}`, that must exist on its
//! node before its pod can mount it, and that keeps the data after the volume object is
//! gone. Nothing in Kubernetes makes or removes it, so the deployer runs a short-lived
//! helper pod on the node ([`crate::objects::Layout::volume_helper`]) whose `hostPath`
//! mount of that directory alone makes it (`DirectoryOrCreate`), and whose command, on a
//! purge, empties it.
//!
//! Helper pods live in the instances' namespace's `-volumes` namespace (a `hostPath`
//! breaks Pod Security `baseline`, which the instances' namespace enforces), are named
//! after their instance and job, so that a retry or a run after a crash finds the one
//! left behind, and are deleted once their job is done, failed or out of time.
//!
//! A purged volume keeps its [`VOLUME_CLEANUP_FINALIZER`] until its directory is
//! emptied: the volume object, with its node and path, is the record of the clean-up
//! still owed, and a create of the same id cannot make a new volume on the old data
//! meanwhile.

use std::time::Duration;

use framedb_core::{Removal, Stamp};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::time::Instant;

use crate::apply::FIELD_MANAGER;
use crate::error::{Error, Result, is_already_exists, is_conflict, is_not_found};
use crate::objects::{
    Layout, VOLUME_CLEANUP_FINALIZER, VolumeJob, annotations, helper_name, volumes_namespace,
    volumes_namespace_name,
};
use crate::ownership::{keeps_volume, stamp_of};

/// How long, by default, a helper pod has to do its job, pull of its (small) image
/// included, before the create or delete it serves reports it (the local service's
/// callers wait 30 s for an answer).
pub const HELPER_WAIT: Duration = Duration::from_secs(20);

/// The finalizer the volume controller keeps on a volume while a claim is bound to it:
/// once it is gone, no pod uses the volume, and its directory may be emptied.
const PV_PROTECTION: &str = "kubernetes.io/pv-protection";

/// How many times the removal of the clean-up finalizer is tried on a volume read again.
const CONFLICT_ATTEMPTS: usize = 4;

/// The helper pods of one cluster.
pub(crate) struct Helpers<'a> {
    pub client: &'a Client,
    pub layout: &'a Layout,
    /// The cluster's id, for messages and the pods' labels.
    pub cluster: &'a str,
    /// How long a helper pod has ([`HELPER_WAIT`] by default).
    pub wait: Duration,
    /// How long a purged volume may take to be released ([`crate::ownership::DELETION_WAIT`]
    /// by default): its instance's pod terminates first.
    pub release_wait: Duration,
}

/// What a look at a helper pod found.
enum Seen {
    Done,
    Failed(String),
    Waiting(String),
}

impl Helpers<'_> {
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(
            self.client.clone(),
            &volumes_namespace_name(&self.layout.namespace),
        )
    }

    /// Makes instance `id`'s volume directory on `node` (a create of stamp `stamp`), and
    /// returns once the helper pod has mounted it and `volume` says so
    /// ([`annotations::DIRECTORY_PREPARED`]).
    ///
    /// # Errors
    /// [`Error::VolumeHelper`] when the helper fails or does not run within the wait;
    /// [`Error::Kube`] when the cluster refuses or cannot be reached.
    pub async fn prepare(&self, volume: &str, id: &str, stamp: &Stamp, node: &str) -> Result<()> {
        self.run(VolumeJob::Prepare, id, stamp, node).await?;
        let patch = json!({
            "metadata": { "annotations": { annotations::DIRECTORY_PREPARED: "true" } }
        });
        Api::<PersistentVolume>::all(self.client.clone())
            .patch(volume, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
            .map_err(|error| {
                Error::kube(
                    self.cluster,
                    format!("marking PersistentVolume {volume} prepared"),
                    error,
                )
            })
    }

    /// Empties the directory of instance `id`'s volume if the volume is being deleted by
    /// the removal of stamp `stamp` (it holds [`VOLUME_CLEANUP_FINALIZER`]) and `removal`
    /// is one that deletes volumes (a purge, or the undo of a create that made it): once
    /// no pod uses it, a helper pod on its node empties `{root}/{id}`, and then the
    /// finalizer is removed, which lets the volume go. A volume never prepared (no
    /// [`annotations::DIRECTORY_PREPARED`]: a create that failed before its StatefulSet)
    /// was never mounted, and goes at once. A volume being deleted while `removal` keeps
    /// volumes (someone ran `kubectl delete pv`, then the instance was deleted with its
    /// volume retained) keeps its directory: the finalizer goes, the data stays. A volume
    /// that is not being deleted, or not of this stamp, is left alone.
    ///
    /// # Errors
    /// [`Error::VolumeHelper`] when the volume is still in use after the wait, or the
    /// directory could not be emptied (the volume then stays, and a delete run again
    /// tries again); [`Error::Kube`] when the cluster refuses or cannot be reached.
    pub async fn release(
        &self,
        volume: &str,
        id: &str,
        stamp: &Stamp,
        removal: Removal,
    ) -> Result<()> {
        let volumes = Api::<PersistentVolume>::all(self.client.clone());
        let read = |error| {
            Error::kube(
                self.cluster,
                format!("reading PersistentVolume {volume}"),
                error,
            )
        };
        let deadline = Instant::now() + self.release_wait;
        let mut pause = Duration::from_millis(50);
        let pv = loop {
            let Some(pv) = volumes.get_opt(volume).await.map_err(read)? else {
                return Ok(());
            };
            let finalizers = pv.finalizers();
            if stamp_of(&pv.metadata) != stamp.as_str()
                || pv.metadata.deletion_timestamp.is_none()
                || !finalizers.iter().any(|f| f == VOLUME_CLEANUP_FINALIZER)
            {
                return Ok(());
            }
            // Kept, it needs no wipe, so nothing to wait for: the claim that keeps it
            // bound stays, and the volume goes once that claim does.
            if keeps_volume(removal, &pv) {
                return self.drop_finalizer(&volumes, pv).await;
            }
            if !finalizers.iter().any(|f| f == PV_PROTECTION) {
                break pv;
            }
            if Instant::now() >= deadline {
                return Err(Error::VolumeHelper {
                    sentence: format!(
                        "PersistentVolume {volume} on cluster '{}' is still in use {} s after \
                         its deletion (its instance's pod is stopping); its directory is \
                         emptied, and the volume removed, once it is released: delete the \
                         instance again to finish",
                        self.cluster,
                        self.release_wait.as_secs()
                    ),
                    pending: true,
                });
            }
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        };
        if pv
            .annotations()
            .contains_key(annotations::DIRECTORY_PREPARED)
        {
            self.wipe(&pv, id, stamp).await?;
        }
        self.drop_finalizer(&volumes, pv).await
    }

    /// Empties `pv`'s directory, `{root}/{id}`, on its node.
    async fn wipe(&self, pv: &PersistentVolume, id: &str, stamp: &Stamp) -> Result<()> {
        let volume = pv.name_any();
        let node = pv
            .annotations()
            .get(annotations::NODE)
            .cloned()
            .unwrap_or_default();
        let path = pv
            .spec
            .as_ref()
            .and_then(|spec| spec.local.as_ref())
            .map(|local| local.path.clone());
        let expected = self.layout.volume_path(id);
        // Never a directory but `{root}/{id}` of this layout: a volume made under another
        // root (the flag changed since) or without its node is left for the operator.
        if node.is_empty() || path.is_none() || path != expected {
            return Err(Error::VolumeHelper {
                sentence: format!(
                    "PersistentVolume {volume} on cluster '{}' is not at {} on a named node, \
                     so FrameDB does not empty its directory: remove the directory by hand, \
                     then the volume's finalizer {VOLUME_CLEANUP_FINALIZER}",
                    self.cluster,
                    expected.unwrap_or_default()
                ),
                pending: false,
            });
        }
        self.run(VolumeJob::Wipe, id, stamp, &node).await
    }

    /// Removes [`VOLUME_CLEANUP_FINALIZER`] from `pv`, guarded by its resourceVersion and
    /// read again after a conflict.
    async fn drop_finalizer(
        &self,
        volumes: &Api<PersistentVolume>,
        pv: PersistentVolume,
    ) -> Result<()> {
        let name = pv.name_any();
        let failed = |error| {
            Error::kube(
                self.cluster,
                format!(
                    "removing the finalizer {VOLUME_CLEANUP_FINALIZER} of PersistentVolume {name}"
                ),
                error,
            )
        };
        let mut current = pv;
        for attempt in 1..=CONFLICT_ATTEMPTS {
            let kept: Vec<&String> = current
                .finalizers()
                .iter()
                .filter(|f| *f != VOLUME_CLEANUP_FINALIZER)
                .collect();
            let patch = json!({
                "metadata": {
                    "resourceVersion": current.metadata.resource_version,
                    "finalizers": kept,
                }
            });
            match volumes
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                Err(error) if is_not_found(&error) => return Ok(()),
                Err(error) if is_conflict(&error) && attempt < CONFLICT_ATTEMPTS => {
                    match volumes.get_opt(&name).await.map_err(failed)? {
                        Some(pv)
                            if pv
                                .finalizers()
                                .iter()
                                .any(|f| f == VOLUME_CLEANUP_FINALIZER) =>
                        {
                            current = pv;
                        }
                        _ => return Ok(()),
                    }
                }
                Err(error) => return Err(failed(error)),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Deletes instance `id`'s helper pod of `job` if it carries `stamp` (one left behind
    /// by a create or delete that stopped halfway).
    ///
    /// # Errors
    /// [`Error::Kube`] when the cluster refuses or cannot be reached.
    pub async fn remove_left(&self, id: &str, job: VolumeJob, stamp: &Stamp) -> Result<()> {
        let pods = self.pods();
        let name = helper_name(id, job);
        let found = pods
            .get_opt(&name)
            .await
            .map_err(|error| self.failed_on(&name, "reading", error))?;
        match found {
            Some(pod) if stamp_of(&pod.metadata) == stamp.as_str() => {
                self.delete(&pods, &pod).await
            }
            _ => Ok(()),
        }
    }

    /// Runs `job` for instance `id` on `node`: starts its helper pod (or finds the one a
    /// run of this stamp left), waits for it to be done, and deletes it whatever came of
    /// it.
    async fn run(&self, job: VolumeJob, id: &str, stamp: &Stamp, node: &str) -> Result<()> {
        let Some(pod) = self
            .layout
            .volume_helper(job, id, self.cluster, stamp, node)
        else {
            return Ok(());
        };
        let pods = self.pods();
        let name = pod.name_any();
        let deadline = Instant::now() + self.wait;
        self.start(&pods, &pod, stamp, node, deadline).await?;
        let path = self.layout.volume_path(id).unwrap_or_default();
        let task = match job {
            VolumeJob::Prepare => format!("make {path}"),
            VolumeJob::Wipe => format!("empty {path}"),
        };
        let outcome = self.outcome(&pods, &name, job, &task, node, deadline).await;
        // The helper's job is over either way: nothing of it stays on the cluster.
        let removed = match pods.get_opt(&name).await {
            Ok(Some(pod)) => self.delete(&pods, &pod).await,
            Ok(None) => Ok(()),
            Err(error) => Err(self.failed_on(&name, "reading", error)),
        };
        outcome.and(removed)
    }

    /// Creates `pod`; an earlier one of its name is waited on if a run of this stamp on
    /// this node left it and it has not failed, and replaced otherwise (a failed try, or
    /// a helper of an earlier instance of the id, whose job is over: this create holds
    /// the id now).
    async fn start(
        &self,
        pods: &Api<Pod>,
        pod: &Pod,
        stamp: &Stamp,
        node: &str,
        deadline: Instant,
    ) -> Result<()> {
        let name = pod.name_any();
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        let mut namespace_made = false;
        let mut pause = Duration::from_millis(50);
        loop {
            match pods.create(&params, pod).await {
                Ok(_) => return Ok(()),
                Err(error) if is_not_found(&error) && !namespace_made => {
                    // The namespace is made once per cluster, by the first helper.
                    self.ensure_namespace().await?;
                    namespace_made = true;
                    continue;
                }
                Err(error) if is_already_exists(&error) => {}
                Err(error) => return Err(self.failed_on(&name, "creating", error)),
            }
            let existing = pods
                .get_opt(&name)
                .await
                .map_err(|error| self.failed_on(&name, "reading", error))?;
            let Some(existing) = existing else {
                continue;
            };
            if existing.metadata.deletion_timestamp.is_none() {
                let phase = existing.status.as_ref().and_then(|s| s.phase.as_deref());
                let ours = stamp_of(&existing.metadata) == stamp.as_str()
                    && existing
                        .annotations()
                        .get(annotations::NODE)
                        .map(String::as_str)
                        == Some(node);
                if ours && phase != Some("Failed") {
                    return Ok(());
                }
                self.delete(pods, &existing).await?;
            }
            if Instant::now() >= deadline {
                return Err(Error::VolumeHelper {
                    sentence: format!(
                        "an earlier helper pod {} on cluster '{}' is still being deleted; \
                         try again once it is gone",
                        self.shown(&name),
                        self.cluster
                    ),
                    pending: true,
                });
            }
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// Waits until helper pod `name` is done with `job` (`task`, in words), has failed,
    /// or `deadline` passes.
    async fn outcome(
        &self,
        pods: &Api<Pod>,
        name: &str,
        job: VolumeJob,
        task: &str,
        node: &str,
        deadline: Instant,
    ) -> Result<()> {
        let mut pause = Duration::from_millis(50);
        loop {
            let pod = pods
                .get_opt(name)
                .await
                .map_err(|error| self.failed_on(name, "reading", error))?;
            let seen = match &pod {
                Some(pod) => look(job, pod),
                None => Seen::Failed("it was deleted before it finished".to_owned()),
            };
            let sentence = |why: &str| {
                format!(
                    "helper pod {} did not {task} on node '{node}' of cluster '{}': {why}",
                    self.shown(name),
                    self.cluster
                )
            };
            match seen {
                Seen::Done => return Ok(()),
                Seen::Failed(why) => {
                    return Err(Error::VolumeHelper {
                        sentence: sentence(&why),
                        pending: false,
                    });
                }
                Seen::Waiting(why) if Instant::now() >= deadline => {
                    return Err(Error::VolumeHelper {
                        sentence: sentence(&format!("still {why} after {} s", self.wait.as_secs())),
                        pending: true,
                    });
                }
                Seen::Waiting(_) => {}
            }
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// Deletes `pod` (its uid as a precondition); one already gone is fine.
    async fn delete(&self, pods: &Api<Pod>, pod: &Pod) -> Result<()> {
        let name = pod.name_any();
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match pods.delete(&name, &params).await {
            Ok(_) => Ok(()),
            Err(error) if is_not_found(&error) || is_conflict(&error) => Ok(()),
            Err(error) => Err(self.failed_on(&name, "deleting", error)),
        }
    }

    /// Creates the helper pods' namespace; one that exists already is fine.
    async fn ensure_namespace(&self) -> Result<()> {
        let namespace: Namespace = volumes_namespace(&self.layout.namespace);
        match Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &namespace)
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if is_already_exists(&error) => Ok(()),
            Err(error) => Err(Error::kube(
                self.cluster,
                format!("creating namespace {}", namespace.name_any()),
                error,
            )),
        }
    }

    fn shown(&self, name: &str) -> String {
        format!("{}/{name}", volumes_namespace_name(&self.layout.namespace))
    }

    fn failed_on(&self, name: &str, doing: &str, error: kube::Error) -> Error {
        Error::kube(
            self.cluster,
            format!("{doing} pod {}", self.shown(name)),
            error,
        )
    }
}

/// Where helper pod `pod` is with `job`: done (the mount of a prepare precedes its
/// container, so a running pod has made the directory; a wipe is done once its command
/// succeeded), failed (with the container's exit), or still on its way (and why).
fn look(job: VolumeJob, pod: &Pod) -> Seen {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    let container = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|statuses| statuses.first());
    match (job, phase) {
        (_, "Succeeded") | (VolumeJob::Prepare, "Running") => Seen::Done,
        (_, "Failed") => {
            let terminated = container
                .and_then(|c| c.state.as_ref())
                .and_then(|s| s.terminated.as_ref());
            Seen::Failed(match terminated {
                Some(t) => format!(
                    "its command exited with code {} ({}){}",
                    t.exit_code,
                    t.reason.as_deref().unwrap_or("Error"),
                    t.message
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ),
                None => format!(
                    "it failed{}",
                    status
                        .and_then(|s| s.message.as_deref())
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ),
            })
        }
        _ => {
            let waiting = container
                .and_then(|c| c.state.as_ref())
                .and_then(|s| s.waiting.as_ref());
            let unscheduled = status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| {
                    cs.iter()
                        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
                })
                .and_then(|c| c.message.clone());
            Seen::Waiting(match (waiting, unscheduled) {
                (Some(w), _) => format!(
                    "waiting in {}{}",
                    w.reason.as_deref().unwrap_or("Pending"),
                    w.message
                        .as_deref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                ),
                (None, Some(message)) => format!("unscheduled ({message})"),
                (None, None) => phase.to_owned(),
            })
        }
    }
}
