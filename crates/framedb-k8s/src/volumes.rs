//! Local volumes' data on their nodes (docs/architecture.md, "Local volumes"). On a cluster
//! without a dynamic provisioner an instance's volume is a `hostPath` PersistentVolume at
//! `{root}/{id}` of its node, of type `DirectoryOrCreate`: the kubelet makes the directory
//! when the instance's pod first mounts it, and nothing in Kubernetes empties it when the
//! volume goes. So before a removal deletes such a volume (a purge, or the undo of the
//! create that made it), the deployer runs a short-lived pod in the instances' namespace
//! that mounts the instance's own claim and empties it
//! ([`crate::objects::Layout::wipe_pod`]). That pod needs no `hostPath` of its own, so the
//! namespace's Pod Security `baseline` admits it, and the local service needs no right to
//! run pods anywhere else.
//!
//! The wipe runs once the instance's pod is gone and before the claim is deleted (a pod
//! cannot mount a claim being deleted): a removal whose wipe fails, or waits too long,
//! stops there, with the claim and volume in place, and a removal run again (the delete
//! repeated, the reconcile pass) wipes again. Wipe pods are named after their instance,
//! so that a retry or a run after a crash finds the one left behind, and are deleted once
//! done, failed or out of time.

use std::time::Duration;

use framedb_core::{Removal, Stamp};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::time::Instant;

use crate::apply::FIELD_MANAGER;
use crate::error::{Error, Result, is_already_exists, is_conflict, is_not_found};
use crate::objects::{Layout, annotations, wipe_pod_name};
use crate::ownership::{keeps_volume, stamp_of};

/// How long, by default, a wipe pod has to empty its volume, pull of its (small) image
/// included, before the removal it serves reports it (the local service's callers wait
/// 30 s for an answer).
pub const HELPER_WAIT: Duration = Duration::from_secs(20);

/// The wipe pods of one cluster.
pub(crate) struct Helpers<'a> {
    pub client: &'a Client,
    pub layout: &'a Layout,
    /// The cluster's id, for messages and the pods' labels.
    pub cluster: &'a str,
    /// How long a wipe pod has ([`HELPER_WAIT`] by default).
    pub wait: Duration,
    /// How long the instance's pod may take to be gone before its volume is emptied
    /// ([`crate::ownership::DELETION_WAIT`] by default): it terminates first.
    pub release_wait: Duration,
}

/// What a look at a wipe pod found.
enum Seen {
    Done,
    Failed(String),
    Waiting(String),
}

impl Helpers<'_> {
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.layout.namespace)
    }

    /// Notes on `volume` that its instance's pod may now write to it
    /// ([`annotations::DIRECTORY_PREPARED`]): a removal that deletes it empties it first.
    /// A volume without the note (a create that failed before its StatefulSet) was never
    /// mounted, and goes as it is.
    ///
    /// # Errors
    /// [`Error::Kube`] when the cluster refuses or cannot be reached.
    pub async fn mark_prepared(&self, volume: &str) -> Result<()> {
        self.annotate(volume, annotations::DIRECTORY_PREPARED, "true", "prepared")
            .await
    }

    /// Sets annotation `key` of PersistentVolume `volume` to `value` (a merge patch);
    /// `what` names the mark in an error.
    async fn annotate(&self, volume: &str, key: &str, value: &str, what: &str) -> Result<()> {
        let patch = json!({ "metadata": { "annotations": { key: value } } });
        Api::<PersistentVolume>::all(self.client.clone())
            .patch(volume, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(drop)
            .map_err(|error| {
                Error::kube(
                    self.cluster,
                    format!("marking PersistentVolume {volume} {what}"),
                    error,
                )
            })
    }

    /// Empties instance `id`'s volume `volume` (the claim and volume share the name) if
    /// the removal of stamp `stamp` is about to delete it: it carries that stamp, it was
    /// mounted ([`annotations::DIRECTORY_PREPARED`]), `removal` deletes volumes (a purge,
    /// or the undo of the create that made it) and its claim is still there, not being
    /// deleted (a removal that got past its wipe before). Waits for the instance's pod to
    /// be gone first, so that nothing writes while it empties.
    ///
    /// # Errors
    /// [`Error::VolumeHelper`] when the instance's pod is still there after the wait, or
    /// the volume could not be emptied (the claim and volume then stay, and a removal run
    /// again tries again); [`Error::Kube`] when the cluster refuses or cannot be reached.
    pub async fn wipe_before_delete(
        &self,
        volume: &str,
        id: &str,
        stamp: &Stamp,
        removal: Removal,
    ) -> Result<()> {
        let read = |what: &str, error| Error::kube(self.cluster, format!("reading {what}"), error);
        let pv = Api::<PersistentVolume>::all(self.client.clone())
            .get_opt(volume)
            .await
            .map_err(|error| read(&format!("PersistentVolume {volume}"), error))?;
        let Some(pv) = pv else {
            return Ok(());
        };
        let prepared = pv
            .annotations()
            .contains_key(annotations::DIRECTORY_PREPARED);
        let wiped = pv.annotations().get(annotations::WIPED).map(String::as_str);
        // A volume someone else is deleting is theirs to handle (the way out this
        // removal's own refusal below tells the operator).
        if stamp_of(&pv.metadata) != stamp.as_str()
            || pv.metadata.deletion_timestamp.is_some()
            || !prepared
            || keeps_volume(removal, &pv)
            || wiped == Some(stamp.as_str())
        {
            return Ok(());
        }
        let path = pv
            .spec
            .as_ref()
            .and_then(|spec| spec.host_path.as_ref())
            .map(|host_path| host_path.path.clone());
        let claim =
            Api::<PersistentVolumeClaim>::namespaced(self.client.clone(), &self.layout.namespace)
                .get_opt(volume)
                .await
                .map_err(|error| read(&format!("PersistentVolumeClaim {volume}"), error))?;
        let Some(claim) = claim.filter(|claim| claim.metadata.deletion_timestamp.is_none()) else {
            // The claim went first (deleted by hand): the volume cannot be mounted to be
            // emptied, and deleting it would leave its data for the next instance of the
            // id. It stays, and the operator is told where the data is.
            let node = pv.annotations().get(annotations::NODE).cloned();
            return Err(Error::VolumeHelper {
                sentence: format!(
                    "claim {volume} on cluster '{}' was deleted before FrameDB emptied its \
                     volume: the data stays at {} on node '{}'; empty that directory by hand, \
                     delete PersistentVolume {volume}, then delete the instance again",
                    self.cluster,
                    path.unwrap_or_default(),
                    node.unwrap_or_default()
                ),
                pending: false,
            });
        };
        // Only this volume's own claim, of this removal's create, bound to it: a claim of
        // the id that holds another volume (one taken back) is not emptied, and this
        // volume, which it never mounted, holds nothing.
        let bound_here = claim.spec.as_ref().and_then(|s| s.volume_name.as_deref()) == Some(volume)
            && pv
                .spec
                .as_ref()
                .and_then(|s| s.claim_ref.as_ref())
                .and_then(|r| r.uid.as_ref())
                == claim.metadata.uid.as_ref();
        if stamp_of(&claim.metadata) != stamp.as_str()
            || !bound_here
            || keeps_volume(removal, &claim)
        {
            return Ok(());
        }
        let expected = self.layout.volume_path(id);
        // Never a volume but one at `{root}/{id}` of this layout: one made under another
        // root (the flag changed since) is left for the operator.
        if path.is_none() || path != expected {
            return Err(Error::VolumeHelper {
                sentence: format!(
                    "PersistentVolume {volume} on cluster '{}' is not at {}, so FrameDB does \
                     not empty it: empty its directory by hand, then delete the instance again",
                    self.cluster,
                    expected.unwrap_or_default()
                ),
                pending: false,
            });
        }
        self.await_instance_pod_gone(id).await?;
        self.run(id, stamp).await?;
        // Emptied by this removal: a removal run again (after a crash, or once the claim
        // is gone) need not, and cannot, empty it again.
        self.annotate(volume, annotations::WIPED, stamp.as_str(), "emptied")
            .await
    }

    /// Waits until instance `id`'s pod is gone (its StatefulSet deleted a moment ago).
    async fn await_instance_pod_gone(&self, id: &str) -> Result<()> {
        let name = format!("{id}-0");
        let deadline = Instant::now() + self.release_wait;
        let mut pause = Duration::from_millis(50);
        loop {
            let found = self
                .pods()
                .get_opt(&name)
                .await
                .map_err(|error| self.failed_on(&name, "reading", error))?;
            if found.is_none() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::VolumeHelper {
                    sentence: format!(
                        "pod {}/{name} on cluster '{}' is still stopping {} s after its \
                         StatefulSet was deleted; its volume is emptied, and removed, once it \
                         is gone: delete the instance again to finish",
                        self.layout.namespace,
                        self.cluster,
                        self.release_wait.as_secs()
                    ),
                    pending: true,
                });
            }
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// Deletes instance `id`'s wipe pod if it carries `stamp` (one left behind by a
    /// removal that stopped halfway).
    ///
    /// # Errors
    /// [`Error::Kube`] when the cluster refuses or cannot be reached.
    pub async fn remove_left(&self, id: &str, stamp: &Stamp) -> Result<()> {
        let pods = self.pods();
        let name = wipe_pod_name(id);
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

    /// Empties instance `id`'s volume: starts its wipe pod (or finds the one a run of
    /// this stamp left), waits for it to be done, and deletes it whatever came of it.
    async fn run(&self, id: &str, stamp: &Stamp) -> Result<()> {
        let Some(pod) = self.layout.wipe_pod(id, self.cluster, stamp) else {
            return Ok(());
        };
        let pods = self.pods();
        let name = pod.name_any();
        let deadline = Instant::now() + self.wait;
        self.start(&pods, &pod, stamp, deadline).await?;
        let path = self.layout.volume_path(id).unwrap_or_default();
        let outcome = self.outcome(&pods, &name, &path, deadline).await;
        // The pod's job is over either way: nothing of it stays on the cluster.
        let removed = match pods.get_opt(&name).await {
            Ok(Some(pod)) => self.delete(&pods, &pod).await,
            Ok(None) => Ok(()),
            Err(error) => Err(self.failed_on(&name, "reading", error)),
        };
        outcome.and(removed)
    }

    /// Creates `pod`; an earlier one of its name is waited on if a run of this stamp left
    /// it and it has not failed, and replaced otherwise (a failed try, or the pod of an
    /// earlier instance of the id, whose job is over).
    async fn start(
        &self,
        pods: &Api<Pod>,
        pod: &Pod,
        stamp: &Stamp,
        deadline: Instant,
    ) -> Result<()> {
        let name = pod.name_any();
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        let mut pause = Duration::from_millis(50);
        loop {
            match pods.create(&params, pod).await {
                Ok(_) => return Ok(()),
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
                if stamp_of(&existing.metadata) == stamp.as_str() && phase != Some("Failed") {
                    return Ok(());
                }
                self.delete(pods, &existing).await?;
            }
            if Instant::now() >= deadline {
                return Err(Error::VolumeHelper {
                    sentence: format!(
                        "an earlier wipe pod {} on cluster '{}' is still being deleted; try \
                         again once it is gone",
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

    /// Waits until wipe pod `name` has emptied `path`, has failed, or `deadline` passes.
    async fn outcome(
        &self,
        pods: &Api<Pod>,
        name: &str,
        path: &str,
        deadline: Instant,
    ) -> Result<()> {
        let mut pause = Duration::from_millis(50);
        loop {
            let pod = pods
                .get_opt(name)
                .await
                .map_err(|error| self.failed_on(name, "reading", error))?;
            let seen = match &pod {
                Some(pod) => look(pod),
                None => Seen::Failed("it was deleted before it finished".to_owned()),
            };
            let sentence = |why: &str| {
                format!(
                    "wipe pod {} did not empty {path} on cluster '{}': {why}",
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

    fn shown(&self, name: &str) -> String {
        format!("{}/{name}", self.layout.namespace)
    }

    fn failed_on(&self, name: &str, doing: &str, error: kube::Error) -> Error {
        Error::kube(
            self.cluster,
            format!("{doing} pod {}", self.shown(name)),
            error,
        )
    }
}

/// Where wipe pod `pod` is: done once its command succeeded, failed (with the
/// container's exit), or still on its way (and why).
fn look(pod: &Pod) -> Seen {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    let container = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|statuses| statuses.first());
    match phase {
        "Succeeded" => Seen::Done,
        "Failed" => {
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
