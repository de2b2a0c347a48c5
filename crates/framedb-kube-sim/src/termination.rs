//! The controllers that finish what a `DELETE` starts, run with the others (see
//! `controllers`), as more methods of `store`'s [`State`]:
//!
//! - the kubelet's side of a pod's grace period: it stops the containers (a `Killing`
//!   event each) and, at the end of the period, sends a last DELETE with a zero grace
//!   period, as its status manager does, after which the pod goes (or waits for its
//!   finalizers); a kubelet that is down (its node not ready, see `node_lifecycle`) does
//!   neither until it is back;
//! - the garbage collector (`garbagecollector.go`): it orphans the dependents of an
//!   owner deleted with the `orphan` finalizer, deletes those of an owner deleted with
//!   `foregroundDeletion` and keeps the owner until its blocking dependents are gone, and
//!   deletes objects whose owners are all gone (or going in the foreground);
//! - the namespace controller: it deletes everything in a namespace being deleted,
//!   reports what remains in the namespace's conditions, and once nothing does, removes
//!   its `kubernetes` finalizer, which lets it go;
//! - the PVC and PV protection controllers: a claim being deleted keeps
//!   `kubernetes.io/pvc-protection` while a scheduled pod names it, a volume keeps
//!   `kubernetes.io/pv-protection` while it is `Bound`;
//! - the persistent-volume controller's side of a deleted claim: its volume is
//!   `Released`, and deleted when its reclaim policy is `Delete`.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::admission::{PV_PROTECTION, PVC_PROTECTION};
use super::deletion::{FOREGROUND, NAMESPACE_FINALIZER, ORPHAN};
use super::events::{EventType, Source};
use super::json::{finalizers, is_terminating, meta, now_rfc3339, set_list, str_at};
use super::resources::{
    NAMESPACES, ObjKey, PODS, PVCS, PVS, RESOURCES, ResourceDef, by_kind, by_plural, key,
};
use super::store::{DeleteOptions, Propagation, State};

/// An object the garbage collector looks at: its type and key.
type Node = (&'static str, ObjKey);

/// What an owner reference points at, as the garbage collector classifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    /// It exists and is not deleting its dependents first (or its kind is not known,
    /// which the collector cannot resolve and so never acts on).
    Solid,
    /// It does not exist, or another object of its name does (another uid).
    Dangling,
    /// It is being deleted in the foreground: its dependents go first.
    Waiting,
}

impl State {
    /// Pods whose grace period began: their kubelet stops each container, and says so
    /// (`Killing`, "Stopping container NAME", as `killContainer` records it).
    pub fn stop_containers(&mut self) {
        for k in std::mem::take(&mut self.stopping) {
            let Some(pod) = self.lookup(PODS, &k).cloned() else {
                continue;
            };
            let node = str_at(&pod, &["spec", "nodeName"]).to_string();
            // A kubelet that is down stops nothing; it does once it is back
            // (`node_lifecycle`).
            if self.kubelet_down(&node) {
                continue;
            }
            let kubelet = Source {
                component: "kubelet",
                host: Some(&node),
            };
            // Only what runs is stopped: a container waiting for its image, or in
            // back-off, has nothing to kill. Sidecars go last, in reverse order, once
            // the containers they serve have stopped.
            let running = |field: &str| -> Vec<String> {
                pod["status"][field]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|c| c["state"]["running"].is_object())
                    .map(|c| str_at(c, &["name"]).to_string())
                    .collect()
            };
            let mut names = running("containerStatuses");
            names.extend(running("initContainerStatuses").into_iter().rev());
            for name in names {
                let stopping = format!("Stopping container {name}");
                self.record_event(&pod, EventType::Normal, "Killing", &stopping, kubelet);
            }
        }
    }

    /// Pods whose grace period is over: the kubelet has stopped their containers and
    /// deletes them for good. Returns whether any was due.
    pub fn finish_terminations(&mut self, now: Instant) -> bool {
        let due: Vec<ObjKey> = self
            .terminate_at
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &due {
            self.terminate_at.remove(k);
            let Some(pod) = self.lookup(PODS, k) else {
                continue;
            };
            // No kubelet confirms the end of a pod on a node that is down: it stays
            // `Terminating` until the node is back (`node_lifecycle`).
            if self.kubelet_down(str_at(pod, &["spec", "nodeName"])) {
                self.held_terminations.insert(k.clone());
                continue;
            }
            let opts = DeleteOptions {
                grace_period_seconds: Some(0),
                uid: Some(meta(pod, "uid").to_string()),
                ..DeleteOptions::default()
            };
            let _ = self.delete(by_plural(PODS), Some(&k.0), &k.1, &opts);
        }
        !due.is_empty()
    }

    /// One pass of the garbage collector: the owners being deleted, and the dependents
    /// queued since the last pass (`gc_queue`: their owners were written or removed, or
    /// they were written themselves), as its graph builder queues them from events.
    pub fn collect_garbage(&mut self) {
        let owners_going: Vec<(&'static str, ObjKey)> = self
            .terminating()
            .into_iter()
            .filter(|(res, k)| {
                self.lookup(res, k).is_some_and(|obj| {
                    finalizers(obj)
                        .iter()
                        .any(|f| f == ORPHAN || f == FOREGROUND)
                })
            })
            .collect();
        for (res, k) in owners_going {
            let Some(obj) = self.lookup(res, &k) else {
                continue;
            };
            let uid = meta(obj, "uid").to_string();
            let deps = self.dependents_of(&uid);
            if finalizers(obj).iter().any(|f| f == ORPHAN) {
                self.orphan_dependents(by_plural(res), &k, &uid, &deps);
            } else {
                self.finish_foreground(by_plural(res), &k, &uid, &deps);
            }
        }
        let queued = std::mem::take(&mut self.gc_queue);
        let unsettled: Vec<(&'static str, ObjKey)> = queued
            .into_iter()
            .filter(|(res, k)| {
                self.lookup(res, k).is_some_and(|obj| {
                    !is_terminating(obj)
                        && obj["metadata"]["ownerReferences"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|r| self.owner_of(by_plural(res), k, r) != Owner::Solid)
                })
            })
            .collect();
        for (res, k) in unsettled {
            self.attempt_to_delete(by_plural(res), &k);
            // One that this could not settle (its delete refused) is tried again.
            let settled = self.lookup(res, &k).is_none_or(|obj| {
                is_terminating(obj)
                    || owner_refs(obj)
                        .iter()
                        .all(|r| self.owner_of(by_plural(res), &k, r) == Owner::Solid)
            });
            if !settled {
                self.gc_queue.insert((res, k));
            }
        }
    }

    /// The objects that name `uid` as an owner.
    fn dependents_of(&self, uid: &str) -> Vec<Node> {
        self.dependents(uid).cloned().collect()
    }

    /// `orphanDependents`: the owner reference to `uid` goes from every dependent, then
    /// the `orphan` finalizer from the owner.
    fn orphan_dependents(
        &mut self,
        res: &'static ResourceDef,
        k: &ObjKey,
        uid: &str,
        deps: &[Node],
    ) {
        for (dep_res, dep) in deps {
            self.drop_owner_refs(dep_res, dep, |r| r["uid"] == uid);
        }
        self.drop_finalizer(res, k, ORPHAN);
    }

    /// `processDeletingDependentsItem`: the `foregroundDeletion` finalizer goes once no
    /// dependent that blocks its owner's deletion is left (the dependents themselves are
    /// deleted by [`attempt_to_delete`](State::attempt_to_delete), which sees their owner
    /// waiting).
    fn finish_foreground(
        &mut self,
        res: &'static ResourceDef,
        k: &ObjKey,
        uid: &str,
        deps: &[Node],
    ) {
        let blocking = deps.iter().any(|(dep_res, dep)| {
            self.lookup(dep_res, dep).is_some_and(|obj| {
                owner_refs(obj)
                    .iter()
                    .any(|r| r["uid"] == uid && r["blockOwnerDeletion"] == true)
            })
        });
        if !blocking {
            self.drop_finalizer(res, k, FOREGROUND);
        }
    }

    /// `attemptToDeleteItem`: an object none of whose owners is solid is deleted; one with
    /// a solid owner loses its references to the others.
    fn attempt_to_delete(&mut self, res: &'static ResourceDef, k: &ObjKey) {
        let Some(obj) = self.lookup(res.plural, k) else {
            return;
        };
        if is_terminating(obj) {
            // Already going; one deleting its own dependents first is handled as an owner.
            return;
        }
        let refs = owner_refs(obj);
        let classes: Vec<Owner> = refs.iter().map(|r| self.owner_of(res, k, r)).collect();
        if classes.is_empty() {
            return;
        }
        let uid = meta(obj, "uid").to_string();
        if classes.contains(&Owner::Solid) {
            if classes.iter().any(|c| *c != Owner::Solid) {
                let gone: Vec<Value> = refs
                    .iter()
                    .zip(&classes)
                    .filter(|(_, c)| **c != Owner::Solid)
                    .map(|(r, _)| r["uid"].clone())
                    .collect();
                self.drop_owner_refs(res.plural, k, |r| gone.contains(&r["uid"]));
            }
            return;
        }
        let held = finalizers(obj);
        let propagation =
            if classes.contains(&Owner::Waiting) && !self.dependents_of(&uid).is_empty() {
                Propagation::Foreground
            } else if held.iter().any(|f| f == ORPHAN) {
                Propagation::Orphan
            } else if held.iter().any(|f| f == FOREGROUND) {
                Propagation::Foreground
            } else {
                Propagation::Background
            };
        let opts = DeleteOptions {
            uid: Some(uid),
            ..DeleteOptions::propagating(propagation)
        };
        let ns = (!k.0.is_empty()).then_some(k.0.as_str());
        let _ = self.delete(res, ns, &k.1, &opts);
    }

    /// How the owner an owner reference of the object `k` names stands.
    fn owner_of(&self, res: &ResourceDef, k: &ObjKey, reference: &Value) -> Owner {
        let Some(owner_res) = reference["kind"].as_str().and_then(by_kind) else {
            return Owner::Solid;
        };
        let ns = if owner_res.namespaced && res.namespaced {
            k.0.as_str()
        } else {
            ""
        };
        match self.lookup(owner_res.plural, &key(ns, str_at(reference, &["name"]))) {
            Some(owner) if owner["metadata"]["uid"] == reference["uid"] => {
                if is_terminating(owner) && finalizers(owner).iter().any(|f| f == FOREGROUND) {
                    Owner::Waiting
                } else {
                    Owner::Solid
                }
            }
            _ => Owner::Dangling,
        }
    }

    /// Removes the owner references that `drop` selects from an object.
    fn drop_owner_refs(&mut self, res: &'static str, k: &ObjKey, drop: impl Fn(&Value) -> bool) {
        let Some(obj) = self.lookup(res, k) else {
            return;
        };
        let refs = owner_refs(obj);
        let kept: Vec<Value> = refs.iter().filter(|r| !drop(r)).cloned().collect();
        if kept.len() == refs.len() {
            return;
        }
        let mut obj = obj.clone();
        set_list(&mut obj, "metadata", "ownerReferences", kept);
        self.put(res, k.clone(), obj);
    }

    fn drop_finalizer(&mut self, res: &'static ResourceDef, k: &ObjKey, finalizer: &str) {
        let Some(obj) = self.lookup(res.plural, k) else {
            return;
        };
        let kept: Vec<String> = finalizers(obj)
            .into_iter()
            .filter(|f| f != finalizer)
            .collect();
        self.set_finalizers(res, k, kept);
    }

    /// One pass of the namespace controller over the namespaces being deleted.
    pub fn finalize_namespaces(&mut self) {
        let namespaces = by_plural(NAMESPACES);
        for (res, k) in self.terminating() {
            if res != NAMESPACES {
                continue;
            }
            let Some(namespace) = self.lookup(NAMESPACES, &k).cloned() else {
                continue;
            };
            let spec_finalizers: Vec<Value> = namespace["spec"]["finalizers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if !spec_finalizers.iter().any(|f| f == NAMESPACE_FINALIZER) {
                continue;
            }
            let ns = k.1.clone();
            let remaining = self.delete_content(&ns);
            let conditions = namespace_conditions(&namespace, &remaining);
            let mut status = namespace["status"].clone();
            status["conditions"] = json!(conditions);
            self.set_status(NAMESPACES, &k, status);
            if !remaining.is_empty() {
                continue;
            }
            // `finalizeNamespace`: what the `/finalize` subresource writes.
            let mut finalized = self
                .lookup(NAMESPACES, &k)
                .expect("looked up above")
                .clone();
            let kept: Vec<Value> = spec_finalizers
                .into_iter()
                .filter(|f| f != NAMESPACE_FINALIZER)
                .collect();
            finalized["spec"]["finalizers"] = json!(kept);
            self.dirty = true;
            let old = self.lookup(NAMESPACES, &k).expect("looked up above");
            if super::store::deletion_completes(old, &finalized) {
                self.remove(namespaces, &k);
            } else {
                self.put(NAMESPACES, k.clone(), finalized);
            }
        }
    }

    /// Deletes everything in namespace `ns` (in the background, as the namespace
    /// controller's deletecollection does); returns what remains, by type, with each
    /// remaining object's finalizers.
    fn delete_content(&mut self, ns: &str) -> BTreeMap<&'static str, Vec<Vec<String>>> {
        let mut remaining: BTreeMap<&'static str, Vec<Vec<String>>> = BTreeMap::new();
        for res in RESOURCES.iter().filter(|r| r.namespaced) {
            for k in self.keys_in(res.plural, ns) {
                let going = self.lookup(res.plural, &k).is_some_and(is_terminating);
                if !going {
                    let opts = DeleteOptions::propagating(Propagation::Background);
                    let _ = self.delete(res, Some(ns), &k.1, &opts);
                }
                if let Some(obj) = self.lookup(res.plural, &k) {
                    remaining
                        .entry(res.plural)
                        .or_default()
                        .push(finalizers(obj));
                }
            }
        }
        remaining
    }

    /// One pass of the PVC and PV protection controllers over the claims and volumes
    /// being deleted.
    pub fn protect_storage(&mut self) {
        for (res, k) in self.terminating() {
            let Some(obj) = self.lookup(res, &k) else {
                continue;
            };
            let held = finalizers(obj);
            let release = match res {
                PVCS => held.iter().any(|f| f == PVC_PROTECTION) && !self.claim_in_use(&k),
                PVS => {
                    held.iter().any(|f| f == PV_PROTECTION)
                        && str_at(obj, &["status", "phase"]) != "Bound"
                }
                _ => false,
            };
            if release {
                let finalizer = if res == PVCS {
                    PVC_PROTECTION
                } else {
                    PV_PROTECTION
                };
                self.drop_finalizer(by_plural(res), &k, finalizer);
            }
        }
    }

    /// `podUsesPVC`: a scheduled pod of the claim's namespace names it, whatever its
    /// phase, for as long as the pod exists.
    fn claim_in_use(&self, claim: &ObjKey) -> bool {
        self.objects_in(PODS, &claim.0).any(|(_, pod)| {
            !str_at(pod, &["spec", "nodeName"]).is_empty()
                && pod["spec"]["volumes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|v| v["persistentVolumeClaim"]["claimName"] == claim.1.as_str())
        })
    }

    /// The persistent-volume controller's answer to deleted claims: each one's volume is
    /// `Released`, and deleted when its reclaim policy is `Delete` (the dynamic
    /// provisioner's).
    pub fn release_volumes(&mut self) {
        for claim in std::mem::take(&mut self.released_claims) {
            let pv_key = key("", str_at(&claim, &["spec", "volumeName"]));
            let Some(pv) = self.lookup(PVS, &pv_key) else {
                continue;
            };
            if pv["spec"]["claimRef"]["uid"] != claim["metadata"]["uid"] {
                continue;
            }
            let delete = str_at(pv, &["spec", "persistentVolumeReclaimPolicy"]) == "Delete";
            let mut status = pv["status"].clone();
            status["phase"] = json!("Released");
            self.set_status(PVS, &pv_key, status);
            if delete {
                let opts = DeleteOptions::propagating(Propagation::Background);
                let _ = self.delete(by_plural(PVS), None, &pv_key.1, &opts);
            }
        }
    }
}

/// An object's owner references.
fn owner_refs(obj: &Value) -> Vec<Value> {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The namespace deleter's conditions (`namespaceConditionUpdater`), given what remains;
/// a condition keeps its transition time while its status does not change.
fn namespace_conditions(
    namespace: &Value,
    remaining: &BTreeMap<&'static str, Vec<Vec<String>>>,
) -> Vec<Value> {
    let mut resources: Vec<String> = remaining
        .iter()
        .map(|(plural, items)| {
            let group = by_plural(plural).group;
            format!("{plural}.{group} has {} resource instances", items.len())
        })
        .collect();
    resources.sort();
    let mut by_finalizer: BTreeMap<String, usize> = BTreeMap::new();
    for finalizer in remaining.values().flatten().flatten() {
        *by_finalizer.entry(finalizer.clone()).or_default() += 1;
    }
    let mut held: Vec<String> = by_finalizer
        .iter()
        .map(|(f, n)| format!("{f} in {n} resource instances"))
        .collect();
    held.sort();
    let mut wanted = vec![
        (
            "NamespaceDeletionDiscoveryFailure",
            false,
            "ResourcesDiscovered",
            "All resources successfully discovered".to_string(),
        ),
        (
            "NamespaceDeletionGroupVersionParsingFailure",
            false,
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed".to_string(),
        ),
        (
            "NamespaceDeletionContentFailure",
            false,
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization".to_string(),
        ),
    ];
    wanted.push(if resources.is_empty() {
        (
            "NamespaceContentRemaining",
            false,
            "ContentRemoved",
            "All content successfully removed".to_string(),
        )
    } else {
        (
            "NamespaceContentRemaining",
            true,
            "SomeResourcesRemain",
            format!("Some resources are remaining: {}", resources.join(", ")),
        )
    });
    wanted.push(if held.is_empty() {
        (
            "NamespaceFinalizersRemaining",
            false,
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished".to_string(),
        )
    } else {
        (
            "NamespaceFinalizersRemaining",
            true,
            "SomeFinalizersRemain",
            format!(
                "Some content in the namespace has finalizers remaining: {}",
                held.join(", ")
            ),
        )
    });
    let now = now_rfc3339();
    wanted
        .into_iter()
        .map(|(kind, status, reason, message)| {
            let status = if status { "True" } else { "False" };
            let since = namespace["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == kind && c["status"] == status)
                .map_or(now.as_str(), |c| str_at(c, &["lastTransitionTime"]))
                .to_string();
            json!({
                "type": kind, "status": status, "lastTransitionTime": since,
                "reason": reason, "message": message,
            })
        })
        .collect()
}
