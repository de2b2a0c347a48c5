//! The cluster's controllers, compressed: StatefulSet and Deployment controllers that
//! create, adopt and remove pods (and a StatefulSet's claims, with its
//! `persistentVolumeClaimRetentionPolicy`), a volume binder with a dynamic provisioner
//! (binding delayed to the scheduler's node for `WaitForFirstConsumer` classes) and
//! volume expansion, a
//! scheduler that honours cordons, taints and tolerations, node selectors, required node
//! affinity, requests against allocatable CPU, memory and pods (`scheduling`), and volume
//! node affinity, and a kubelet stand-in that mounts volumes (a `local` volume only
//! where its directory exists on the node) and has `kubelet` pull, start and restart
//! the containers (Ready after `pod_ready_after`); with those of `termination` (the garbage collector, the
//! namespace and storage-protection controllers, the end of a pod's grace period).
//!
//! They run synchronously after every write (so a client that creates a StatefulSet sees
//! its pods on the next read), again while the deletions they finish lead to more, and
//! on a short timer for readiness deadlines, back-offs and grace periods. As the real
//! controllers act on their informers' events rather than on the whole cluster, the
//! costly ones act on what the writes since their last run touched: the store keeps
//! their queues (the StatefulSets and workloads whose pods or selves changed, the objects
//! whose owners changed) and indexes (pods by owner, what each node's pods take), so that
//! a write costs the same on a cluster of 10 objects and of 10,000.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};
use tokio::time::Instant;

use super::admission;
use super::events::EventType::{Normal, Warning};
use super::events::Source;
use super::faults::seed_from;
use super::json::{is_terminating, meta, now_rfc3339, object_at, str_at};
use super::kubelet::condition;
use super::managed::Fields;
use super::quantity;
use super::resources::{
    DEPLOYMENTS, NAMESPACES, NODES, ObjKey, PODS, PVCS, PVS, STATEFULSETS, STORAGE_CLASSES,
    by_plural, key,
};
use super::scheduling;
use super::selectors::{LabelSelector, labels_of, string_map};
use super::store::{DeleteOptions, Propagation, State};

/// How many times one reconcile runs the controllers while their deletions lead to more
/// (a pod gone frees its claim, which frees its volume, which empties a namespace); what
/// is left waits for the next tick.
const MAX_PASSES: usize = 8;

/// The scheduler, as events name it.
const SCHEDULER: Source<'static> = Source::component("default-scheduler");
/// The StatefulSet controller, as events name it.
const STATEFULSETS_CONTROLLER: Source<'static> = Source::component("statefulset-controller");
/// The persistent-volume controller, as events name it.
const VOLUME_CONTROLLER: Source<'static> = Source::component("persistentvolume-controller");
/// The annotation by which the scheduler tells a delayed claim's provisioner its node.
const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// The ReplicaSet controller, which makes a Deployment's pods, as events name it.
const REPLICAS_CONTROLLER: Source<'static> = Source::component("replicaset-controller");

/// Label carrying a StatefulSet pod's revision.
const REVISION_LABEL: &str = "controller-revision-hash";
/// Label carrying a Deployment pod's template hash.
const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// A short, stable hash of a pod template, spelled like Kubernetes' (no vowels).
fn template_hash(template: &Value) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h = seed_from(&template.to_string());
    (0..10)
        .map(|_| {
            let c = ALPHABET[(h % ALPHABET.len() as u64) as usize] as char;
            h /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

fn replicas_of(workload: &Value) -> u64 {
    workload["spec"]["replicas"].as_u64().unwrap_or(1)
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

impl State {
    /// Runs every controller, again while the deletions they finish lead to more.
    pub fn reconcile(&mut self, now: Instant) {
        for _ in 0..MAX_PASSES {
            self.dirty = false;
            self.monitor_nodes(now);
            self.evict_on_taints(now);
            self.stop_containers();
            self.finish_terminations(now);
            self.finalize_namespaces();
            self.collect_garbage();
            self.sync_statefulsets();
            self.sync_deployments();
            self.release_volumes();
            self.protect_storage();
            self.bind_claims();
            self.schedule(now);
            self.retry_mounts(now);
            self.sync_kubelet(now);
            self.update_workload_status();
            if !self.dirty {
                break;
            }
        }
        self.expire_events(now);
    }

    /// Cheap check run before each request and on the timer: readiness and grace periods
    /// move with time, and a deletion may have left work for the controllers.
    pub fn tick(&mut self, now: Instant) {
        if self.dirty
            || self.terminate_at.values().any(|at| *at <= now)
            || self.node_lifecycle_due(now)
        {
            self.reconcile(now);
        } else if self.kubelet_due(now) {
            // Readiness, restarts and pull retries move with time.
            self.sync_kubelet(now);
            self.update_workload_status();
        }
    }

    fn workloads(&self, res: &str) -> Vec<(ObjKey, Value)> {
        self.iter(res)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The hash of a workload's pod template. The template changes only with the spec,
    /// which bumps the generation, so it is computed once per generation: the workload
    /// controllers look at a workload each time one of its pods changes.
    fn template_hash_of(&self, workload: &Value) -> String {
        let generation = workload["metadata"]["generation"]
            .as_u64()
            .unwrap_or_default();
        let key = (meta(workload, "uid").to_string(), generation);
        self.template_hashes
            .borrow_mut()
            .entry(key)
            .or_insert_with(|| template_hash(&workload["spec"]["template"]))
            .clone()
    }

    /// Deletes a pod as a controller does: in the background, over its grace period.
    fn delete_pod(&mut self, k: &ObjKey) {
        let opts = DeleteOptions::propagating(Propagation::Background);
        let _ = self.delete(by_plural(PODS), Some(&k.0), &k.1, &opts);
    }

    /// Whether namespace `ns` is being deleted: controllers create nothing there (the
    /// API server would refuse it).
    fn namespace_terminating(&self, ns: &str) -> bool {
        self.lookup(NAMESPACES, &key("", ns))
            .is_some_and(|n| str_at(n, &["status", "phase"]) == "Terminating")
    }

    /// Makes `owner` the controller of a pod that has none (`ClaimPods`' adoption).
    fn adopt(&mut self, owner: &Value, pk: &ObjKey) {
        let Some(pod) = self.lookup(PODS, pk) else {
            return;
        };
        let mut pod = pod.clone();
        let reference = controller_ref(owner);
        match pod["metadata"]["ownerReferences"].as_array_mut() {
            Some(refs) => refs.push(reference),
            None => pod["metadata"]["ownerReferences"] = json!([reference]),
        }
        self.put(PODS, pk.clone(), pod);
    }

    /// Creates a pod from a workload's template, owned by the workload; whether
    /// admission let it in.
    fn create_pod(
        &mut self,
        owner: &Value,
        name: &str,
        extra_labels: &[(&str, String)],
        spec: Value,
    ) -> bool {
        let ns = meta(owner, "namespace").to_string();
        let template = &owner["spec"]["template"];
        let mut labels = template["metadata"]["labels"].clone();
        for (k, v) in extra_labels {
            object_at(&mut labels, &[]).insert((*k).to_string(), json!(v));
        }
        let mut pod = json!({
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": labels,
                "ownerReferences": [controller_ref(owner)],
            },
            "spec": spec,
        });
        if let Some(annotations) = template["metadata"]["annotations"].as_object() {
            pod["metadata"]["annotations"] = json!(annotations);
        }
        let k = key(&ns, name);
        let pods = by_plural(PODS);
        // Templates were validated with their workload; the defaults are what matters here.
        let _ = admission::prepare(&mut self.alloc, pods, &k, &mut pod, None);
        // The controller's create goes through admission like anyone's: refused, the
        // workload keeps no pod and says why in an event.
        if let Some(why) = self.pod_security_refusal(&ns, &pod) {
            let failed = format!(
                "create Pod {name} in {} {} failed error: pods \"{name}\" is forbidden: {why}",
                str_at(owner, &["kind"]),
                meta(owner, "name")
            );
            let component = match str_at(owner, &["kind"]) {
                "StatefulSet" => STATEFULSETS_CONTROLLER,
                _ => REPLICAS_CONTROLLER,
            };
            self.record_event(owner, Warning, "FailedCreate", &failed, component);
            return false;
        }
        self.insert_new(pods, k, pod);
        true
    }

    /// The StatefulSet controller, over the sets queued since it last ran
    /// (`statefulset_queue`: their pods or selves changed). A set it must look at again
    /// without a change to them stays queued: one with claim templates (its claims may go
    /// while its pods wait for them), one whose pod create was refused, and one whose
    /// ordinal's name a pod it does not own holds (retried, as the controller's
    /// rate-limited queue retries).
    fn sync_statefulsets(&mut self) {
        let queued = std::mem::take(&mut self.statefulset_queue);
        let mut blocked_sets = Vec::new();
        for (ns, name) in queued {
            let Some(sts) = self.lookup(STATEFULSETS, &key(&ns, &name)) else {
                continue;
            };
            // A StatefulSet being deleted only has its status kept up to date.
            if is_terminating(sts) {
                continue;
            }
            let replicas = replicas_of(sts);
            let revision = format!("{name}-{}", self.template_hash_of(sts));
            let prefix = format!("{name}-");
            let mut condemned = Vec::new();
            for pk in self.pods_owned_by(meta(sts, "uid")) {
                let Some(pod) = self.lookup(PODS, pk) else {
                    continue;
                };
                // A pod that is terminating is replaced once it is gone.
                if is_terminating(pod) {
                    continue;
                }
                let ordinal =
                    pk.1.strip_prefix(&prefix)
                        .and_then(|o| o.parse::<u64>().ok());
                let scaled_down = ordinal.is_none_or(|o| o >= replicas);
                if scaled_down || labels_of(pod).get(REVISION_LABEL) != Some(&revision) {
                    condemned.push((pk.clone(), scaled_down));
                }
            }
            // The selector is read only for a pod without a controller, which is rare.
            let mut selector = None;
            let mut orphans = Vec::new();
            let mut missing = Vec::new();
            // An ordinal's name held by a pod this set does not control (and cannot
            // adopt): the set looks again until the name is free, as the controller's
            // failed create (AlreadyExists) is retried; that pod's going need not queue
            // this set.
            let mut blocked = false;
            for i in 0..replicas {
                let pk = key(&ns, &format!("{name}-{i}"));
                match self.lookup(PODS, &pk) {
                    None => missing.push(i),
                    Some(pod) if !controlled(pod) => {
                        let selector = selector.get_or_insert_with(|| {
                            LabelSelector::from_object(&sts["spec"]["selector"])
                        });
                        if adoptable(pod, selector.as_ref()) {
                            orphans.push(pk);
                        } else {
                            blocked = true;
                        }
                    }
                    Some(pod) => {
                        let ours = pod["metadata"]["ownerReferences"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|r| r["controller"] == true && r["uid"] == sts["metadata"]["uid"]);
                        blocked |= !ours;
                    }
                }
            }
            if blocked {
                blocked_sets.push(key(&ns, &name));
            }
            let templates = sts["spec"]["volumeClaimTemplates"]
                .as_array()
                .is_some_and(|t| !t.is_empty());
            if condemned.is_empty() && orphans.is_empty() && missing.is_empty() && !templates {
                continue;
            }
            // Cloned only when there is something to do, which is rare next to the writes
            // that run this controller.
            let sts = sts.clone();
            if templates {
                self.statefulset_queue.insert(key(&ns, &name));
            }
            for pk in &orphans {
                self.adopt(&sts, pk);
            }
            for (pk, scaled_down) in &condemned {
                if templates {
                    self.own_claims(&sts, pk, *scaled_down);
                }
                self.delete_pod(pk);
            }
            if templates {
                self.keep_claims(&sts, replicas);
            }
            if missing.is_empty() || self.namespace_terminating(&ns) {
                continue;
            }
            for i in missing {
                let pod_name = format!("{name}-{i}");
                if self.claims_stale(&sts, &pod_name, i) {
                    continue;
                }
                let mut spec = sts["spec"]["template"]["spec"].clone();
                spec["hostname"] = json!(pod_name);
                if let Some(service) = sts["spec"]["serviceName"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                {
                    spec["subdomain"] = json!(service);
                }
                self.create_claims(&sts, i);
                mount_claims(&sts, i, &mut spec);
                let labels = [
                    (REVISION_LABEL, revision.clone()),
                    ("statefulset.kubernetes.io/pod-name", pod_name.clone()),
                    ("apps.kubernetes.io/pod-index", i.to_string()),
                ];
                if !self.create_pod(&sts, &pod_name, &labels, spec) {
                    // Ordinals are made in order: one refused stops the rest, as in the
                    // StatefulSet controller.
                    self.statefulset_queue.insert(key(&ns, &name));
                    break;
                }
                if templates {
                    self.own_claims(&sts, &key(&ns, &pod_name), false);
                }
                let created = format!("create Pod {pod_name} in StatefulSet {name} successful");
                self.record_event(
                    &sts,
                    Normal,
                    "SuccessfulCreate",
                    &created,
                    STATEFULSETS_CONTROLLER,
                );
            }
        }
        self.statefulset_queue.extend(blocked_sets);
    }

    /// Creates the missing claims of a StatefulSet's `volumeClaimTemplates` for one
    /// ordinal, as the StatefulSet controller does.
    fn create_claims(&mut self, sts: &Value, ordinal: u64) {
        let ns = meta(sts, "namespace").to_string();
        for template in sts["spec"]["volumeClaimTemplates"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let claim = claim_name(sts, template, ordinal);
            if self.lookup(PVCS, &key(&ns, &claim)).is_none() {
                let mut labels = string_map(&sts["spec"]["selector"]["matchLabels"]);
                labels.extend(labels_of(template));
                let body = json!({ "metadata": { "name": claim, "labels": labels }, "spec": template["spec"] });
                // An invalid template leaves the pod waiting on its claim, as in Kubernetes.
                let _ = self.create(by_plural(PVCS), Some(&ns), body, Fields::Kept);
            }
        }
    }

    /// The claims of the pods a StatefulSet keeps: owned as its retention policy says,
    /// and created again for a pod still waiting for one (a claim deleted meanwhile).
    fn keep_claims(&mut self, sts: &Value, replicas: u64) {
        let ns = meta(sts, "namespace").to_string();
        for i in 0..replicas {
            let pk = key(&ns, &format!("{}-{i}", meta(sts, "name")));
            let Some(pod) = self.lookup(PODS, &pk) else {
                continue;
            };
            let ours = pod["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r["uid"] == sts["metadata"]["uid"]));
            if !ours || is_terminating(pod) {
                continue;
            }
            let waiting = str_at(pod, &["spec", "nodeName"]).is_empty();
            self.own_claims(sts, &pk, false);
            if waiting && !self.namespace_terminating(&ns) {
                self.create_claims(sts, i);
            }
        }
    }

    /// Sets the owner references of a pod's claims as the StatefulSet's
    /// `persistentVolumeClaimRetentionPolicy` says (`updateClaimOwnerRefForSetAndPod`):
    /// `whenDeleted: Delete` makes the StatefulSet their owner, `whenScaled: Delete` makes
    /// a pod scaled away their owner, so that the garbage collector deletes them with it.
    /// A claim that names an earlier StatefulSet or pod of the same name is left alone.
    fn own_claims(&mut self, sts: &Value, pk: &ObjKey, scaled_down: bool) {
        let Some(pod) = self.lookup(PODS, pk).cloned() else {
            return;
        };
        let Some(ordinal) =
            pk.1.strip_prefix(&format!("{}-", meta(sts, "name")))
                .and_then(|o| o.parse::<u64>().ok())
        else {
            return;
        };
        let policy = &sts["spec"]["persistentVolumeClaimRetentionPolicy"];
        let delete_with_set = str_at(policy, &["whenDeleted"]) == "Delete";
        let delete_with_pod = str_at(policy, &["whenScaled"]) == "Delete" && scaled_down;
        for template in sts["spec"]["volumeClaimTemplates"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let ck = key(&pk.0, &claim_name(sts, template, ordinal));
            let Some(claim) = self.lookup(PVCS, &ck) else {
                continue;
            };
            let refs: Vec<Value> = claim["metadata"]["ownerReferences"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let names = |r: &Value, owner: &Value| {
                r["kind"] == owner["kind"] && r["name"] == owner["metadata"]["name"]
            };
            // `hasStaleOwnerRef`: managed by an earlier set or pod of this name.
            if refs.iter().any(|r| {
                (names(r, sts) && r["uid"] != sts["metadata"]["uid"])
                    || (names(r, &pod) && r["uid"] != pod["metadata"]["uid"])
            }) {
                continue;
            }
            let mut wanted: Vec<Value> = refs
                .iter()
                .filter(|r| !names(r, sts) && !names(r, &pod))
                .cloned()
                .collect();
            // Another controller of the claim: ours are scrubbed, none added.
            let foreign = wanted.iter().any(|r| r["controller"] == true);
            if !foreign && delete_with_pod {
                wanted.push(controller_ref(&pod));
            } else if !foreign && delete_with_set && !scaled_down {
                wanted.push(controller_ref(sts));
            }
            if wanted != refs {
                let mut claim = claim.clone();
                if wanted.is_empty() {
                    object_at(&mut claim, &["metadata"]).remove("ownerReferences");
                } else {
                    claim["metadata"]["ownerReferences"] = json!(wanted);
                }
                self.put(PVCS, ck, claim);
            }
        }
    }

    /// `PodClaimIsStale`: with `whenScaled: Delete`, a claim still owned by an earlier pod
    /// of this name is on its way out, and the pod waits for it to go.
    fn claims_stale(&self, sts: &Value, pod_name: &str, ordinal: u64) -> bool {
        let policy = &sts["spec"]["persistentVolumeClaimRetentionPolicy"];
        if str_at(policy, &["whenScaled"]) != "Delete" {
            return false;
        }
        let ns = meta(sts, "namespace");
        sts["spec"]["volumeClaimTemplates"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|template| {
                self.lookup(PVCS, &key(ns, &claim_name(sts, template, ordinal)))
                    .is_some_and(|claim| {
                        claim["metadata"]["ownerReferences"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|r| r["kind"] == "Pod" && r["name"] == pod_name)
                    })
            })
    }

    fn sync_deployments(&mut self) {
        for ((ns, name), deploy) in self.workloads(DEPLOYMENTS) {
            // A Deployment being deleted only has its status kept up to date.
            if is_terminating(&deploy) {
                continue;
            }
            let replicas = replicas_of(&deploy) as usize;
            let hash = template_hash(&deploy["spec"]["template"]);
            let selector = LabelSelector::from_object(&deploy["spec"]["selector"]);
            let mut pods: Vec<ObjKey> = self.pods_owned_by(meta(&deploy, "uid")).cloned().collect();
            let orphans: Vec<ObjKey> = self
                .objects_in(PODS, &ns)
                .filter(|(_, pod)| adoptable(pod, selector.as_ref()))
                .map(|(pk, _)| pk.clone())
                .collect();
            for pk in orphans {
                self.adopt(&deploy, &pk);
                pods.push(pk);
            }
            let mut current = Vec::new();
            for pk in pods {
                let Some(pod) = self.lookup(PODS, &pk) else {
                    continue;
                };
                // Terminating pods are not counted: their replacements start at once.
                if is_terminating(pod) {
                    continue;
                }
                if labels_of(pod).get(TEMPLATE_HASH_LABEL) == Some(&hash) {
                    current.push(pk);
                } else {
                    self.delete_pod(&pk);
                }
            }
            for extra in current.iter().skip(replicas) {
                self.delete_pod(extra);
            }
            if self.namespace_terminating(&ns) {
                continue;
            }
            for _ in current.len()..replicas {
                let pod_name = loop {
                    let candidate = format!("{name}-{hash}-{}", self.alloc.random_suffix(5));
                    if self.lookup(PODS, &key(&ns, &candidate)).is_none() {
                        break candidate;
                    }
                };
                let spec = deploy["spec"]["template"]["spec"].clone();
                let labels = [(TEMPLATE_HASH_LABEL, hash.clone())];
                if !self.create_pod(&deploy, &pod_name, &labels, spec) {
                    break;
                }
            }
        }
    }

    /// The volume controller's pass over claims: pending ones are bound (see
    /// [`State::bind_claim`]), bound ones whose request grew are expanded.
    fn bind_claims(&mut self) {
        let mut pending = Vec::new();
        let mut grown = Vec::new();
        for (ck, claim) in self.iter(PVCS) {
            if is_terminating(claim) {
                continue;
            }
            match str_at(claim, &["status", "phase"]) {
                "Lost" => {}
                "Bound" => {
                    let request = storage_units(&claim["spec"]["resources"]["requests"]);
                    if request > storage_units(&claim["status"]["capacity"]) {
                        grown.push(ck.clone());
                    }
                }
                _ => pending.push(ck.clone()),
            }
        }
        if !pending.is_empty() {
            // Which unscheduled pods name each claim, found once for the pass: every
            // write runs the binder, and pods waiting for a node are few.
            let mut waiting: HashMap<ObjKey, Vec<String>> = HashMap::new();
            for (pk, pod) in self.iter(PODS) {
                if !str_at(pod, &["spec", "nodeName"]).is_empty() {
                    continue;
                }
                for volume in pod["spec"]["volumes"].as_array().into_iter().flatten() {
                    if let Some(claim) = volume["persistentVolumeClaim"]["claimName"].as_str() {
                        waiting
                            .entry(key(&pk.0, claim))
                            .or_default()
                            .push(pk.1.clone());
                    }
                }
            }
            for ck in pending {
                let pods = waiting.get(&ck).map(Vec::as_slice).unwrap_or_default();
                self.bind_claim(&ck, pods);
            }
        }
        for ck in grown {
            self.expand(&ck);
        }
    }

    /// Binds a pending claim as the persistent-volume controller does
    /// (`syncUnboundClaim`): to the volume it names, to a volume pre-bound to it, to a
    /// matching available volume of its class, or to one its class's provisioner makes;
    /// a claim of a `WaitForFirstConsumer` class is provisioned only once the scheduler
    /// has picked its node (`volume.kubernetes.io/selected-node`). What keeps it pending
    /// is told in the controllers' events; `waiting` are the unscheduled pods that use it.
    fn bind_claim(&mut self, ck: &ObjKey, waiting: &[String]) {
        let Some(claim) = self.lookup(PVCS, ck).cloned() else {
            return;
        };
        let wanted = str_at(&claim, &["spec", "volumeName"]);
        let class_name = str_at(&claim, &["spec", "storageClassName"]).to_string();
        let claimed_by_us = |pv: &Value| {
            let r = &pv["spec"]["claimRef"];
            r.is_null()
                || (str_at(r, &["namespace"]) == ck.0
                    && str_at(r, &["name"]) == ck.1
                    && (str_at(r, &["uid"]).is_empty() || r["uid"] == claim["metadata"]["uid"]))
        };
        if !wanted.is_empty() {
            let Some(pv) = self.lookup(PVS, &key("", wanted)) else {
                return;
            };
            if !claimed_by_us(pv) || str_at(pv, &["status", "phase"]) == "Released" {
                return;
            }
            // `checkVolumeSatisfyClaim`, for a claim that names its volume.
            let mismatch = if str_at(pv, &["spec", "storageClassName"]) != class_name {
                Some("storageClassName does not match")
            } else if storage_units(&pv["spec"]["capacity"])
                < storage_units(&claim["spec"]["resources"]["requests"])
            {
                Some("requested PV is too small")
            } else {
                None
            };
            if let Some(why) = mismatch {
                let message = format!("Cannot bind to requested volume \"{wanted}\": {why}");
                self.record_event_once(
                    &claim,
                    Warning,
                    "VolumeMismatch",
                    &message,
                    VOLUME_CONTROLLER,
                );
                return;
            }
            let wanted = wanted.to_string();
            self.bind(ck, &wanted);
            return;
        }
        let prebound = self
            .iter(PVS)
            .find(|(_, pv)| {
                !pv["spec"]["claimRef"].is_null()
                    && claimed_by_us(pv)
                    && str_at(pv, &["status", "phase"]) == "Available"
            })
            .map(|(pk, _)| pk.1.clone());
        if let Some(volume) = prebound {
            self.bind(ck, &volume);
            return;
        }
        if class_name.is_empty() {
            match self.matching_volume(&claim) {
                Some(volume) => self.bind(ck, &volume),
                None => self.record_event_once(
                    &claim,
                    Normal,
                    "FailedBinding",
                    "no persistent volumes available for this claim and no storage class is set",
                    VOLUME_CONTROLLER,
                ),
            }
            return;
        }
        let Some(class) = self.lookup(STORAGE_CLASSES, &key("", &class_name)).cloned() else {
            match self.matching_volume(&claim) {
                Some(volume) => self.bind(ck, &volume),
                None => {
                    let message = format!("storageclass.storage.k8s.io \"{class_name}\" not found");
                    self.record_event_once(
                        &claim,
                        Warning,
                        "ProvisioningFailed",
                        &message,
                        VOLUME_CONTROLLER,
                    );
                }
            }
            return;
        };
        let node = claim["metadata"]["annotations"][SELECTED_NODE]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if str_at(&class, &["volumeBindingMode"]) == "WaitForFirstConsumer" {
            if node.is_empty() {
                self.wait_for_consumer(&claim, waiting);
                return;
            }
        } else if let Some(volume) = self.matching_volume(&claim) {
            self.bind(ck, &volume);
            return;
        }
        let volume = self.provision(&claim, &class, (!node.is_empty()).then_some(node.as_str()));
        self.bind(ck, &volume);
    }

    /// `emitEventForUnboundDelayBindingClaim`: what a claim of a `WaitForFirstConsumer`
    /// class waits for, its first consumer or the scheduling of the pods that use it.
    fn wait_for_consumer(&mut self, claim: &Value, waiting: &[String]) {
        let mut waiting: Vec<&str> = waiting.iter().map(String::as_str).collect();
        waiting.sort_unstable();
        let (reason, message) = match waiting.as_slice() {
            [] => (
                "WaitForFirstConsumer",
                "waiting for first consumer to be created before binding".to_string(),
            ),
            [pod] => (
                "WaitForPodScheduled",
                format!("waiting for pod {pod} to be scheduled"),
            ),
            pods => (
                "WaitForPodScheduled",
                format!("waiting for pods {} to be scheduled", pods.join(",")),
            ),
        };
        self.record_event_once(claim, Normal, reason, &message, VOLUME_CONTROLLER);
    }

    /// The smallest available volume a claim may bind to (`FindMatchingVolume`): no
    /// claim yet, the claim's class, volume mode and access modes, and room enough.
    fn matching_volume(&self, claim: &Value) -> Option<String> {
        let request = storage_units(&claim["spec"]["resources"]["requests"]);
        let modes = claim["spec"]["accessModes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let class = str_at(claim, &["spec", "storageClassName"]);
        self.iter(PVS)
            .filter(|(_, pv)| {
                pv["spec"]["claimRef"].is_null()
                    && !is_terminating(pv)
                    && str_at(pv, &["status", "phase"]) == "Available"
                    && str_at(pv, &["spec", "storageClassName"]) == class
                    && str_at(pv, &["spec", "volumeMode"]) == str_at(claim, &["spec", "volumeMode"])
                    && storage_units(&pv["spec"]["capacity"]) >= request
                    && modes.iter().all(|m| {
                        pv["spec"]["accessModes"]
                            .as_array()
                            .is_some_and(|have| have.contains(m))
                    })
            })
            .min_by_key(|(k, pv)| (storage_units(&pv["spec"]["capacity"]), k.1.clone()))
            .map(|(k, _)| k.1.clone())
    }

    /// Creates a volume for a claim, as its class's provisioner does: on `node`'s
    /// topology when the scheduler picked one (a local-path volume lives on one node).
    fn provision(&mut self, claim: &Value, class: &Value, node: Option<&str>) -> String {
        let name = format!("pvc-{}", meta(claim, "uid"));
        let provisioner = str_at(class, &["provisioner"]).to_string();
        let mut body = json!({
            "metadata": { "name": name, "annotations": { "pv.kubernetes.io/provisioned-by": provisioner } },
            "spec": {
                "capacity": { "storage": claim["spec"]["resources"]["requests"]["storage"] },
                "accessModes": claim["spec"]["accessModes"],
                "persistentVolumeReclaimPolicy": class["reclaimPolicy"],
                "storageClassName": meta(class, "name"),
                "volumeMode": claim["spec"]["volumeMode"],
                "hostPath": {
                    "path": format!("/var/lib/framedb-sim/{name}_{}_{}", meta(claim, "namespace"), meta(claim, "name")),
                    "type": "DirectoryOrCreate",
                },
            },
        });
        if let Some(node) = node {
            body["spec"]["nodeAffinity"] = json!({ "required": { "nodeSelectorTerms": [{
                "matchExpressions": [{ "key": "kubernetes.io/hostname", "operator": "In", "values": [node] }],
            }] } });
        }
        self.create(by_plural(PVS), None, body, Fields::Kept)
            .expect("a provisioned volume is valid");
        let source = Source::component(&provisioner);
        let told = format!(
            "External provisioner is provisioning volume for claim \"{}/{}\"",
            meta(claim, "namespace"),
            meta(claim, "name")
        );
        self.record_event(claim, Normal, "Provisioning", &told, source);
        let done = format!("Successfully provisioned volume {name}");
        self.record_event(claim, Normal, "ProvisioningSucceeded", &done, source);
        name
    }

    /// A bound claim whose request grew: its volume is expanded (the external resizer)
    /// and the claim's status takes the new size (the kubelet's file-system resize).
    fn expand(&mut self, ck: &ObjKey) {
        let Some(claim) = self.lookup(PVCS, ck).cloned() else {
            return;
        };
        let size = claim["spec"]["resources"]["requests"]["storage"].clone();
        let pv_key = key("", str_at(&claim, &["spec", "volumeName"]));
        if let Some(pv) = self.lookup(PVS, &pv_key) {
            let mut pv = pv.clone();
            pv["spec"]["capacity"]["storage"] = size.clone();
            self.put(PVS, pv_key, pv);
        }
        let mut status = claim["status"].clone();
        status["capacity"]["storage"] = size.clone();
        status["allocatedResources"] = json!({ "storage": size });
        self.set_status(PVCS, ck, status);
    }

    fn bind(&mut self, claim_key: &ObjKey, volume: &str) {
        let pv_key = key("", volume);
        let (Some(claim), Some(pv)) = (
            self.lookup(PVCS, claim_key).cloned(),
            self.lookup(PVS, &pv_key).cloned(),
        ) else {
            return;
        };
        let mut pv = pv;
        pv["spec"]["claimRef"] = json!({
            "kind": "PersistentVolumeClaim", "apiVersion": "v1",
            "namespace": claim_key.0, "name": claim_key.1,
            "uid": meta(&claim, "uid"), "resourceVersion": meta(&claim, "resourceVersion"),
        });
        pv["status"] = json!({ "phase": "Bound" });
        let pv = self.put(PVS, pv_key, pv);

        let mut claim = claim;
        claim["spec"]["volumeName"] = json!(volume);
        let annotations = object_at(&mut claim, &["metadata", "annotations"]);
        annotations.insert("pv.kubernetes.io/bind-completed".into(), json!("yes"));
        annotations.insert("pv.kubernetes.io/bound-by-controller".into(), json!("yes"));
        claim["status"] = json!({
            "phase": "Bound",
            "accessModes": pv["spec"]["accessModes"],
            "capacity": pv["spec"]["capacity"],
        });
        self.put(PVCS, claim_key.clone(), claim);
    }

    /// Places pending pods on feasible nodes, or records why none fits.
    fn schedule(&mut self, now: Instant) {
        let pending: Vec<(ObjKey, Value)> = self
            .iter(PODS)
            .filter(|(_, p)| {
                str_at(p, &["spec", "nodeName"]).is_empty()
                    && str_at(p, &["status", "phase"]) == "Pending"
            })
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        if pending.is_empty() {
            return;
        }
        let stamp = now_rfc3339();
        // What the pods already on each node take (kept as pods are written), and kept up
        // to date as this pass places pods.
        let mut usage = self.node_usage.clone();
        for (k, pod) in pending {
            match self.place(&pod, &usage) {
                Ok(node) => {
                    usage.entry(node.clone()).or_default().add(&pod);
                    // PreBind: the pod's delayed claims are provisioned on its node and
                    // bound before the pod is (instantly, in the simulator).
                    self.select_node_for_claims(&pod, &node);
                    let assigned = format!("Successfully assigned {}/{} to {node}", k.0, k.1);
                    self.record_event(&pod, Normal, "Scheduled", &assigned, SCHEDULER);
                    self.run_pod(&k, pod, &node, now, &stamp);
                }
                Err(message) => {
                    // The scheduler retries with back-off; a new reason is a new event.
                    let told = pod["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "PodScheduled" && c["message"] == message)
                    });
                    if !told {
                        self.record_event(&pod, Warning, "FailedScheduling", &message, SCHEDULER);
                    }
                    let status = json!({
                        "phase": "Pending",
                        "conditions": [condition(&pod["status"], "PodScheduled", false, "Unschedulable", &message, &stamp)],
                        "qosClass": pod["status"]["qosClass"],
                    });
                    self.set_status(PODS, &k, status);
                }
            }
        }
    }

    /// Whether a pending claim's class binds it only once a pod using it is scheduled.
    fn waits_for_consumer(&self, claim: &Value) -> bool {
        let class = str_at(claim, &["spec", "storageClassName"]);
        !class.is_empty()
            && self
                .lookup(STORAGE_CLASSES, &key("", class))
                .is_some_and(|c| str_at(c, &["volumeBindingMode"]) == "WaitForFirstConsumer")
    }

    /// Marks the pod's delayed claims with the node the scheduler chose
    /// (`volume.kubernetes.io/selected-node`), and lets the volume controller and the
    /// provisioner bind them there.
    fn select_node_for_claims(&mut self, pod: &Value, node: &str) {
        let ns = meta(pod, "namespace").to_string();
        let claims: Vec<String> = pod["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["persistentVolumeClaim"]["claimName"].as_str())
            .map(String::from)
            .collect();
        for name in claims {
            let ck = key(&ns, &name);
            let Some(claim) = self.lookup(PVCS, &ck) else {
                continue;
            };
            if str_at(claim, &["status", "phase"]) == "Bound" || !self.waits_for_consumer(claim) {
                continue;
            }
            let mut claim = claim.clone();
            object_at(&mut claim, &["metadata", "annotations"])
                .insert(SELECTED_NODE.into(), json!(node));
            self.put(PVCS, ck.clone(), claim);
            // The pod is being bound: no pod waits for this claim any more.
            self.bind_claim(&ck, &[]);
        }
    }

    /// The kubelet on `node` mounts a pod's volumes, then starts its containers; a volume
    /// it cannot mount leaves the pod `ContainerCreating` (retried in `retry_mounts`).
    fn run_pod(&mut self, k: &ObjKey, pod: Value, node: &str, now: Instant, stamp: &str) {
        match self.mount_volumes(&pod, node) {
            Ok(()) => self.start_pod(k, pod, node, now, stamp),
            Err(message) => {
                let kubelet = Source {
                    component: "kubelet",
                    host: Some(node),
                };
                // The kubelet retries with back-off; told once here (see `record_event_once`).
                self.record_event_once(&pod, Warning, "FailedMount", &message, kubelet);
                if str_at(&pod, &["spec", "nodeName"]).is_empty() {
                    self.hold_pod(k, pod, node, stamp);
                }
            }
        }
    }

    /// Mounts a pod's volumes on `node`, as its kubelet does: a `hostPath` (the pod's, or
    /// a PersistentVolume's) of type
    /// `DirectoryOrCreate` makes its directory there; a `local` volume needs its path to
    /// exist there (`MountVolume.NewMounter initialization failed ...` otherwise). Only
    /// the volumes a container mounts or maps are set up: the kubelet skips the others
    /// ("Skipping unused volume").
    fn mount_volumes(&mut self, pod: &Value, node: &str) -> Result<(), String> {
        let ns = meta(pod, "namespace");
        let used = used_volumes(pod);
        let volumes: Vec<Value> = pod["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| used.contains(str_at(v, &["name"])))
            .cloned()
            .collect();
        let mut local = Vec::new();
        let mut made = Vec::new();
        for volume in &volumes {
            if str_at(volume, &["hostPath", "type"]) == "DirectoryOrCreate" {
                let path = str_at(volume, &["hostPath", "path"]).to_string();
                self.directories
                    .entry(node.to_string())
                    .or_default()
                    .insert(path);
            }
            let Some(claim) = volume["persistentVolumeClaim"]["claimName"].as_str() else {
                continue;
            };
            let Some(claim) = self.lookup(PVCS, &key(ns, claim)) else {
                continue;
            };
            let pv_name = str_at(claim, &["spec", "volumeName"]);
            let Some(pv) = self.lookup(PVS, &key("", pv_name)) else {
                continue;
            };
            if let Some(path) = pv["spec"]["local"]["path"].as_str() {
                local.push((pv_name.to_string(), path.to_string()));
            }
            // A `hostPath` PersistentVolume is mounted as a pod's `hostPath` is.
            if str_at(pv, &["spec", "hostPath", "type"]) == "DirectoryOrCreate" {
                let path = str_at(pv, &["spec", "hostPath", "path"]).to_string();
                made.push(path);
            }
        }
        self.directories
            .entry(node.to_string())
            .or_default()
            .extend(made);
        let existing = self.directories.get(node);
        for (pv, path) in local {
            if !existing.is_some_and(|dirs| dirs.contains(&path)) {
                return Err(format!(
                    "MountVolume.NewMounter initialization failed for volume \"{pv}\" : path \"{path}\" does not exist"
                ));
            }
        }
        Ok(())
    }

    /// A pod bound to `node` whose volumes are not mounted yet: `Pending`, its containers
    /// waiting in `ContainerCreating` (`PodInitializing` when it has init containers,
    /// which wait too), no pod IP (no sandbox yet).
    fn hold_pod(&mut self, k: &ObjKey, mut pod: Value, node: &str, stamp: &str) {
        let host_ip = self.host_ip(node);
        let list = |field: &str| pod["spec"][field].as_array().cloned().unwrap_or_default();
        let (inits, containers) = (list("initContainers"), list("containers"));
        let reason = if inits.is_empty() {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        let names = |specs: &[Value]| {
            specs
                .iter()
                .map(|c| str_at(c, &["name"]))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let sidecars: Vec<Value> = inits
            .iter()
            .filter(|c| c["restartPolicy"] == "Always")
            .cloned()
            .collect();
        let not_ready = format!(
            "containers with unready status: [{}]",
            names(&[sidecars, containers.clone()].concat())
        );
        let not_initialized = format!("containers with incomplete status: [{}]", names(&inits));
        let (init_reason, init_message) = if inits.is_empty() {
            ("", "")
        } else {
            ("ContainersNotInitialized", not_initialized.as_str())
        };
        let waiting = |specs: &[Value]| -> Vec<Value> {
            specs
                .iter()
                .map(|c| super::kubelet::waiting(c, reason))
                .collect()
        };
        let old = pod["status"].clone();
        pod["spec"]["nodeName"] = json!(node);
        pod["status"] = json!({
            "phase": "Pending",
            "conditions": [
                condition(&old, "PodReadyToStartContainers", false, "", "", stamp),
                condition(&old, "Initialized", inits.is_empty(), init_reason, init_message, stamp),
                condition(&old, "Ready", false, "ContainersNotReady", &not_ready, stamp),
                condition(&old, "ContainersReady", false, "ContainersNotReady", &not_ready, stamp),
                condition(&old, "PodScheduled", true, "", "", stamp),
            ],
            "hostIP": host_ip, "hostIPs": [{ "ip": host_ip }],
            "startTime": stamp,
            "containerStatuses": waiting(&containers),
            "qosClass": old["qosClass"],
        });
        if !inits.is_empty() {
            pod["status"]["initContainerStatuses"] = json!(waiting(&inits));
        }
        self.put(PODS, k.clone(), pod);
    }

    /// The kubelet retries the mounts of its pods left `ContainerCreating`: once the
    /// directory exists (another pod's `DirectoryOrCreate`, say) the pod starts.
    fn retry_mounts(&mut self, now: Instant) {
        let held: Vec<(ObjKey, Value)> = self
            .iter(PODS)
            .filter(|(_, p)| {
                !str_at(p, &["spec", "nodeName"]).is_empty()
                    && str_at(p, &["status", "phase"]) == "Pending"
                    && !is_terminating(p)
            })
            // A pod whose containers the kubelet started (and waits on, for an image)
            // has its volumes.
            .filter(|(k, _)| !self.runtime.runs(k))
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        if held.is_empty() {
            return;
        }
        let stamp = now_rfc3339();
        for (k, pod) in held {
            let node = str_at(&pod, &["spec", "nodeName"]).to_string();
            self.run_pod(&k, pod, &node, now, &stamp);
        }
    }

    /// The node for a pod, or the scheduler's "0/N nodes are available" explanation.
    fn place(
        &self,
        pod: &Value,
        usage: &HashMap<String, scheduling::Usage>,
    ) -> Result<String, String> {
        let nodes: Vec<&Value> = self.iter(NODES).map(|(_, n)| n).collect();
        let total = nodes.len();
        let hopeless = format!(
            "preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling."
        );
        let ns = meta(pod, "namespace");
        let mut volume_terms = Vec::new();
        for volume in pod["spec"]["volumes"].as_array().into_iter().flatten() {
            let Some(claim_name) = volume["persistentVolumeClaim"]["claimName"].as_str() else {
                continue;
            };
            let Some(claim) = self.lookup(PVCS, &key(ns, claim_name)) else {
                return Err(format!(
                    "0/{total} nodes are available: persistentvolumeclaim \"{claim_name}\" not found. {hopeless}"
                ));
            };
            if is_terminating(claim) {
                return Err(format!(
                    "0/{total} nodes are available: persistentvolumeclaim \"{claim_name}\" is being deleted. {hopeless}"
                ));
            }
            if str_at(claim, &["status", "phase"]) != "Bound" {
                // The volume-binding plugin: a claim of a `WaitForFirstConsumer` class is
                // provisioned on the node the pod goes to (the simulated provisioner
                // serves every node); any other unbound claim keeps the pod off all nodes.
                if self.waits_for_consumer(claim) {
                    continue;
                }
                return Err(format!(
                    "0/{total} nodes are available: pod has unbound immediate PersistentVolumeClaims. {hopeless}"
                ));
            }
            if let Some(pv) = self.lookup(PVS, &key("", str_at(claim, &["spec", "volumeName"])))
                && !pv["spec"]["nodeAffinity"]["required"].is_null()
            {
                volume_terms.push(pv["spec"]["nodeAffinity"]["required"].clone());
            }
        }
        if total == 0 {
            return Err(format!("no nodes available to schedule pods. {hopeless}"));
        }
        let selector = string_map(&pod["spec"]["nodeSelector"]);
        let affinity = &pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        // Nodes that only lack room: preemption could help there, in principle.
        let mut crowded = 0;
        let mut feasible = Vec::new();
        for node in nodes {
            let labels = labels_of(node);
            let name = meta(node, "name");
            // The filter plugins in the scheduler's order; a node fails at the first.
            let failed: Vec<String> = if scheduling::refused_as_cordoned(pod, node) {
                vec!["node(s) were unschedulable".into()]
            } else if let Some(taint) = scheduling::untolerated_taint(pod, node) {
                vec![taint]
            } else if !selector.iter().all(|(k, v)| labels.get(k) == Some(v))
                || (!affinity.is_null() && !node_selector_matches(affinity, node))
            {
                vec!["node(s) didn't match Pod's node affinity/selector".into()]
            } else {
                let used = usage.get(name).copied().unwrap_or_default();
                let lacking = scheduling::insufficient(pod, node, used);
                if !lacking.is_empty() {
                    crowded += 1;
                    lacking.into_iter().map(String::from).collect()
                } else if !volume_terms
                    .iter()
                    .all(|terms| node_selector_matches(terms, node))
                {
                    vec!["node(s) had volume node affinity conflict".into()]
                } else {
                    Vec::new()
                }
            };
            if failed.is_empty() {
                feasible.push(name.to_string());
            }
            for reason in failed {
                *reasons.entry(reason).or_default() += 1;
            }
        }
        if feasible.is_empty() {
            let why: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
            let mut preemption = Vec::new();
            if crowded > 0 {
                preemption.push(format!(
                    "{crowded} No preemption victims found for incoming pod"
                ));
            }
            if total > crowded {
                preemption.push(format!(
                    "{} Preemption is not helpful for scheduling",
                    total - crowded
                ));
            }
            return Err(format!(
                "0/{total} nodes are available: {}. preemption: 0/{total} nodes are available: {}.",
                why.join(", "),
                preemption.join(", ")
            ));
        }
        // Spread: the feasible node running the fewest pods, then by name.
        let load = |node: &str| usage.get(node).map_or(0, |used| used.pods);
        Ok(feasible
            .into_iter()
            .min_by_key(|n| (load(n), n.clone()))
            .expect("not empty"))
    }

    /// Binds a pod to a node, makes its sandbox (IPs) and has the kubelet start its
    /// containers (`kubelet`): pulls, starts, readiness and faults are its.
    fn start_pod(&mut self, k: &ObjKey, mut pod: Value, node: &str, now: Instant, stamp: &str) {
        let host_ip = self.host_ip(node);
        let pod_ip = self.alloc.next_pod_ip();
        pod["spec"]["nodeName"] = json!(node);
        let old = pod["status"].clone();
        pod["status"] = json!({
            "phase": "Pending",
            "conditions": old["conditions"],
            "hostIP": host_ip, "hostIPs": [{ "ip": host_ip }],
            "podIP": pod_ip, "podIPs": [{ "ip": pod_ip }],
            "startTime": stamp,
            "qosClass": old["qosClass"],
        });
        self.start_containers(k, pod, now);
    }

    /// A node's `InternalIP`.
    fn host_ip(&self, node: &str) -> String {
        self.lookup(NODES, &key("", node))
            .and_then(|n| n["status"]["addresses"].as_array())
            .and_then(|addrs| addrs.iter().find(|a| a["type"] == "InternalIP"))
            .map(|a| str_at(a, &["address"]).to_string())
            .unwrap_or_default()
    }

    /// Writes replica counts and conditions into the status of the StatefulSets and
    /// Deployments whose pods or selves changed since it last ran (`touched_workloads`,
    /// filled as objects are written): what the workload controllers' informers queue.
    fn update_workload_status(&mut self) {
        if self.touched_workloads.is_empty() {
            return;
        }
        let touched = std::mem::take(&mut self.touched_workloads);
        // A StatefulSet counts every pod it has made; a Deployment (through its ReplicaSets)
        // only those not being deleted (`FilterActivePods`).
        let count = |state: &State, uid: &str, label: &str, want: &str, active: bool| {
            let pods: Vec<&Value> = state
                .pods_owned_by(uid)
                .filter_map(|k| state.lookup(PODS, k))
                .filter(|pod| !active || !is_terminating(pod))
                .collect();
            let current = pods
                .iter()
                .filter(|p| labels_of(p).get(label).is_some_and(|v| v == want))
                .count();
            let ready = pods.iter().filter(|p| is_ready(p)).count();
            (pods.len() as i64, current as i64, ready as i64)
        };
        for (_, k) in touched.iter().filter(|(res, _)| *res == STATEFULSETS) {
            let Some(sts) = self.lookup(STATEFULSETS, k) else {
                continue;
            };
            let revision = format!("{}-{}", k.1, self.template_hash_of(sts));
            let (total, current, ready) =
                count(self, meta(sts, "uid"), REVISION_LABEL, &revision, false);
            let mut status = json!({
                "observedGeneration": sts["metadata"]["generation"],
                "replicas": total,
                "availableReplicas": ready,
                "currentRevision": revision,
                "updateRevision": revision,
                "collisionCount": 0,
            });
            for (field, n) in [
                ("readyReplicas", ready),
                ("currentReplicas", current),
                ("updatedReplicas", current),
            ] {
                if n > 0 {
                    status[field] = json!(n);
                }
            }
            self.set_status(STATEFULSETS, k, status);
        }
        for (_, k) in touched.iter().filter(|(res, _)| *res == DEPLOYMENTS) {
            let k = k.clone();
            let Some(deploy) = self.lookup(DEPLOYMENTS, &k).cloned() else {
                continue;
            };
            let hash = template_hash(&deploy["spec"]["template"]);
            let (total, current, ready) =
                count(self, meta(&deploy, "uid"), TEMPLATE_HASH_LABEL, &hash, true);
            let desired = replicas_of(&deploy) as i64;
            let stamp = now_rfc3339();
            let old = &deploy["status"];
            let available = ready >= desired;
            let replica_set = format!("{}-{hash}", k.1);
            let (progress_reason, progress_message) = if available && current == desired {
                (
                    "NewReplicaSetAvailable",
                    format!("ReplicaSet \"{replica_set}\" has successfully progressed."),
                )
            } else {
                (
                    "ReplicaSetUpdated",
                    format!("ReplicaSet \"{replica_set}\" is progressing."),
                )
            };
            let mut conditions = vec![
                if available {
                    condition(
                        old,
                        "Available",
                        true,
                        "MinimumReplicasAvailable",
                        "Deployment has minimum availability.",
                        &stamp,
                    )
                } else {
                    condition(
                        old,
                        "Available",
                        false,
                        "MinimumReplicasUnavailable",
                        "Deployment does not have minimum availability.",
                        &stamp,
                    )
                },
                condition(
                    old,
                    "Progressing",
                    true,
                    progress_reason,
                    &progress_message,
                    &stamp,
                ),
            ];
            for c in &mut conditions {
                let c = object_at(c, &[]);
                c.remove("lastProbeTime");
                let since = c["lastTransitionTime"].clone();
                c.insert("lastUpdateTime".into(), since);
            }
            let mut status = json!({ "observedGeneration": deploy["metadata"]["generation"], "conditions": conditions });
            for (field, n) in [
                ("replicas", total),
                ("updatedReplicas", current),
                ("readyReplicas", ready),
                ("availableReplicas", ready),
                ("unavailableReplicas", (desired - ready).max(0)),
            ] {
                if n > 0 {
                    status[field] = json!(n);
                }
            }
            self.set_status(DEPLOYMENTS, &k, status);
        }
        // Its own status writes queued their workloads again: their status is written.
        self.touched_workloads
            .retain(|workload| !touched.contains(workload));
    }
}

/// A controller reference to `owner`, as `metav1.NewControllerRef` makes it.
fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta(owner, "name"),
        "uid": meta(owner, "uid"), "controller": true, "blockOwnerDeletion": true,
    })
}

/// Whether a workload of `selector` adopts `pod`: it has no controller, is not being
/// deleted, and its labels match (an empty or unreadable selector adopts nothing).
fn adoptable(pod: &Value, selector: Option<&LabelSelector>) -> bool {
    !controlled(pod)
        && !is_terminating(pod)
        && selector.is_some_and(|s| !s.is_empty() && s.matches_object(pod))
}

/// Whether an object has a controller (an owner reference with `controller: true`).
fn controlled(obj: &Value) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| r["controller"] == true))
}

/// The `storage` quantity of a resource list (requests, capacity) in bytes; 0 if absent.
fn storage_units(resources: &Value) -> u128 {
    quantity::units(str_at(resources, &["storage"])).unwrap_or_default()
}

/// The names of the volumes a pod's containers (init, regular and ephemeral) mount or
/// map, as the kubelet's `GetPodVolumeNames` collects them.
fn used_volumes(pod: &Value) -> std::collections::HashSet<&str> {
    let spec = &pod["spec"];
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|kind| spec[*kind].as_array().into_iter().flatten())
        .flat_map(|container| {
            ["volumeMounts", "volumeDevices"]
                .iter()
                .flat_map(move |field| container[*field].as_array().into_iter().flatten())
        })
        .filter_map(|mount| mount["name"].as_str())
        .collect()
}

/// The claim of a StatefulSet's volume claim template for one ordinal.
fn claim_name(sts: &Value, template: &Value, ordinal: u64) -> String {
    format!("{}-{}-{ordinal}", meta(template, "name"), meta(sts, "name"))
}

/// Mounts the claims of a StatefulSet's templates for one ordinal in a pod spec.
fn mount_claims(sts: &Value, ordinal: u64, spec: &mut Value) {
    for template in sts["spec"]["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let volume = meta(template, "name");
        let volumes = spec["volumes"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if !volumes.iter().any(|v| v["name"] == volume) {
            let claim = claim_name(sts, template, ordinal);
            let mount = json!({ "name": volume, "persistentVolumeClaim": { "claimName": claim } });
            match spec["volumes"].as_array_mut() {
                Some(vs) => vs.push(mount),
                None => spec["volumes"] = json!([mount]),
            }
        }
    }
}

/// Whether a node satisfies a `NodeSelector` (`nodeSelectorTerms`, ORed; each term's
/// `matchExpressions` and `matchFields` ANDed).
fn node_selector_matches(selector: &Value, node: &Value) -> bool {
    let labels = labels_of(node);
    let terms = selector["nodeSelectorTerms"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    terms.iter().any(|term| {
        let exprs = term["matchExpressions"].as_array().into_iter().flatten();
        let fields = term["matchFields"].as_array().into_iter().flatten();
        let label_ok =
            |e: &Value| requirement_matches(e, labels.get(str_at(e, &["key"])).map(String::as_str));
        let field_ok = |e: &Value| {
            str_at(e, &["key"]) == "metadata.name"
                && requirement_matches(e, Some(meta(node, "name")))
        };
        exprs.clone().all(label_ok)
            && fields.clone().all(field_ok)
            && (exprs.count() + fields.count() > 0)
    })
}

fn requirement_matches(expr: &Value, value: Option<&str>) -> bool {
    let values: Vec<&str> = expr["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let number = |s: &str| s.parse::<i64>().ok();
    match str_at(expr, &["operator"]) {
        "In" => value.is_some_and(|v| values.contains(&v)),
        "NotIn" => value.is_none_or(|v| !values.contains(&v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" => {
            matches!((value.and_then(number), values.first().and_then(|v| number(v))), (Some(a), Some(b)) if a > b)
        }
        "Lt" => {
            matches!((value.and_then(number), values.first().and_then(|v| number(v))), (Some(a), Some(b)) if a < b)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::store::PatchKind;

    /// The controllers' indexes, recomputed from the objects: what the kept ones must
    /// equal after any sequence of writes.
    fn recomputed(
        state: &State,
    ) -> (
        BTreeMap<String, scheduling::Usage>,
        BTreeSet<(String, ObjKey)>,
    ) {
        let mut usage = BTreeMap::<String, scheduling::Usage>::new();
        let mut edges = BTreeSet::new();
        for (k, pod) in state.iter(PODS) {
            if let Some(node) = scheduling::node_taken(pod) {
                usage.entry(node.to_owned()).or_default().add(pod);
            }
            for owner in pod["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
            {
                edges.insert((str_at(owner, &["uid"]).to_owned(), k.clone()));
            }
        }
        (usage, edges)
    }

    fn kept(
        state: &State,
    ) -> (
        BTreeMap<String, scheduling::Usage>,
        BTreeSet<(String, ObjKey)>,
    ) {
        let usage = state
            .node_usage
            .iter()
            .filter(|(_, used)| used.pods > 0)
            .map(|(node, used)| (node.clone(), *used))
            .collect();
        let mut edges = BTreeSet::new();
        for (_, pod) in state.iter(PODS) {
            for owner in pod["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let uid = str_at(owner, &["uid"]);
                edges.extend(
                    state
                        .pods_owned_by(uid)
                        .map(|k| (uid.to_owned(), k.clone())),
                );
            }
        }
        (usage, edges)
    }

    fn settle(state: &mut State) {
        state.reconcile(Instant::now());
        assert_eq!(kept(state), recomputed(state), "the kept indexes drifted");
        assert!(
            state.touched_workloads.is_empty(),
            "every queued workload was looked at"
        );
    }

    #[test]
    fn the_indexes_the_controllers_keep_match_the_objects_through_scaling_and_deletion() {
        let mut state = State::new(7, std::time::Duration::ZERO, 1.0);
        for node in ["node-a", "node-b"] {
            let body = json!({ "metadata": { "name": node },
                "status": { "capacity": { "cpu": "2", "memory": "8Gi", "pods": "110" } } });
            state
                .create(by_plural(NODES), None, body, Fields::Kept)
                .unwrap();
        }
        let template = json!({
            "metadata": { "labels": { "app": "db" } },
            "spec": { "containers": [{ "name": "db", "image": "pingcap/tidb:v8.5.1",
                "resources": { "requests": { "cpu": "500m", "memory": "1Gi" } } }] },
        });
        let sts = json!({ "metadata": { "name": "db" }, "spec": {
            "replicas": 3, "serviceName": "db",
            "selector": { "matchLabels": { "app": "db" } }, "template": template } });
        let deploy = json!({ "metadata": { "name": "web" }, "spec": {
            "replicas": 2, "selector": { "matchLabels": { "app": "web" } },
            "template": { "metadata": { "labels": { "app": "web" } }, "spec": template["spec"] } } });
        let sets = by_plural(STATEFULSETS);
        state
            .create(sets, Some("default"), sts, Fields::Kept)
            .unwrap();
        state
            .create(
                by_plural(DEPLOYMENTS),
                Some("default"),
                deploy,
                Fields::Kept,
            )
            .unwrap();
        settle(&mut state);
        // 5 pods of 500m on 2 nodes of 2 CPUs: all placed.
        let placed: usize = state.node_usage.values().map(|used| used.pods).sum();
        assert_eq!(placed, 5);
        let scale = |replicas: u64| json!({ "spec": { "replicas": replicas } });
        state
            .patch(
                sets,
                Some("default"),
                "db",
                (PatchKind::Merge, &scale(6)),
                false,
                None,
            )
            .unwrap();
        settle(&mut state);
        // 8 pods asked, 8 fit (4 per node); the statefulset says so.
        let status = &state.lookup(STATEFULSETS, &key("default", "db")).unwrap()["status"];
        assert_eq!(status["replicas"], 6, "{status}");
        state.delete_pod(&key("default", "db-1"));
        settle(&mut state);
        state
            .patch(
                sets,
                Some("default"),
                "db",
                (PatchKind::Merge, &scale(1)),
                false,
                None,
            )
            .unwrap();
        settle(&mut state);
        let opts = DeleteOptions::propagating(Propagation::Foreground);
        state.delete(sets, Some("default"), "db", &opts).unwrap();
        for _ in 0..20 {
            settle(&mut state);
        }
    }
}
