//! The object store and the API verbs on it: create, get, list, replace, patch and
//! apply, with Kubernetes' metadata bookkeeping (uid, resourceVersion, generation,
//! creationTimestamp), the rules an update follows on an object being deleted (no new
//! finalizers; removing the last one completes the deletion), and what removing an
//! object frees (node ports, a claim's volume). The `DELETE` verb itself is in
//! `deletion`, as more methods of [`State`].
//!
//! Everything lives behind one lock held for a whole operation, which is what makes
//! check-and-insert steps (name uniqueness, node-port allocation) atomic.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::admission;
use super::allocations::Allocations;
use super::images::Runtime;
use super::json::{finalizers, is_terminating, meta, now_rfc3339, object_at, str_at};
use super::managed::{self, Fields, Writer};
use super::patch::{json_patch, merge_patch, strategic_merge_patch};
use super::pod_security;
use super::resources::{
    DEPLOYMENTS, NAMESPACES, ObjKey, PODS, PVCS, PVS, RESOURCES, ResourceDef, SERVICES,
    STATEFULSETS, STORAGE_CLASSES, by_plural, key,
};
use super::scheduling::{Usage, node_taken};
use super::selectors::{FieldSelector, LabelSelector};
use super::status::{ApiError, ApiResult, FieldError};

/// How `DELETE` treats the deleted object's dependents (`propagationPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Propagation {
    /// The object goes at once; the garbage collector deletes its dependents afterwards.
    Background,
    /// The object stays, with the `foregroundDeletion` finalizer, until the garbage
    /// collector has deleted its dependents that block their owner's deletion.
    Foreground,
    /// The object stays, with the `orphan` finalizer, until the garbage collector has
    /// removed the owner reference to it from its dependents, which stay.
    Orphan,
}

impl Propagation {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "Background" => Some(Self::Background),
            "Foreground" => Some(Self::Foreground),
            "Orphan" => Some(Self::Orphan),
            _ => None,
        }
    }
}

/// Options of a `DELETE` (a `meta.k8s.io/v1` `DeleteOptions`), from its body or query.
#[derive(Clone, Debug, Default)]
pub(crate) struct DeleteOptions {
    pub propagation: Option<Propagation>,
    /// The deprecated `orphanDependents`, still honoured by the API server.
    pub orphan_dependents: Option<bool>,
    pub grace_period_seconds: Option<i64>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

impl DeleteOptions {
    /// Options that name only a propagation policy, as controllers delete.
    pub fn propagating(propagation: Propagation) -> Self {
        Self {
            propagation: Some(propagation),
            ..Self::default()
        }
    }

    /// The options of a request: its body (a `DeleteOptions`) when it has one, its query
    /// otherwise, as the API server reads them; checked as `ValidateDeleteOptions` does.
    pub fn from_request<'a>(
        body: Option<&Value>,
        query: impl Fn(&str) -> Option<&'a str>,
    ) -> ApiResult<Self> {
        let text = |name: &str| -> Option<String> {
            match body {
                Some(body) => body[name].as_str().map(str::to_string),
                None => query(name).map(str::to_string),
            }
        };
        let number = |name: &str| -> ApiResult<Option<i64>> {
            match body {
                Some(body) => Ok(body[name].as_i64()),
                None => query(name)
                    .map(|v| {
                        v.parse::<i64>().map_err(|_| {
                            ApiError::bad_request(format!("invalid {name} {v:?}: not an integer"))
                        })
                    })
                    .transpose(),
            }
        };
        let orphan_dependents = match body {
            Some(body) => body["orphanDependents"].as_bool(),
            None => query("orphanDependents").map(|v| v == "true" || v == "1"),
        };
        let policy = text("propagationPolicy").filter(|p| !p.is_empty());
        let mut errors = Vec::new();
        if orphan_dependents.is_some() && policy.is_some() {
            errors.push(FieldError::invalid(
                "propagationPolicy",
                &json!(policy),
                "orphanDependents and deletionPropagation cannot be both set",
            ));
        }
        let propagation = policy.as_deref().and_then(Propagation::parse);
        if let (Some(policy), None) = (&policy, propagation) {
            errors.push(FieldError::not_supported(
                "propagationPolicy",
                &json!(policy),
                &["Foreground", "Background", "Orphan", "nil"],
            ));
        }
        if !errors.is_empty() {
            return Err(ApiError::invalid_kind(
                "meta.k8s.io",
                "DeleteOptions",
                "",
                errors,
            ));
        }
        let preconditions = body.map(|b| &b["preconditions"]);
        let precondition = |name: &str| {
            preconditions
                .and_then(|p| p[name].as_str())
                .map(str::to_string)
        };
        Ok(Self {
            propagation,
            orphan_dependents,
            // Negative grace periods count as one second on the delete path.
            grace_period_seconds: number("gracePeriodSeconds")?.map(|g| if g < 0 { 1 } else { g }),
            uid: precondition("uid"),
            resource_version: precondition("resourceVersion"),
        })
    }
}

/// The simulated cluster's state.
#[derive(Clone, Debug)]
pub(crate) struct State {
    objects: HashMap<&'static str, Table>,
    resource_version: u64,
    /// Kept apart from the objects so that admission can allocate without the store.
    pub alloc: Allocations,
    /// How long a started container takes to become ready (`kubelet`).
    pub ready_after: Duration,
    /// When events are next looked at for expiry (`events`).
    pub events_expire_at: Option<Instant>,
    /// Recent changes, for watches.
    pub changes: Changes,
    /// Pod-template hashes by workload uid and generation (see `template_hash_of`).
    pub template_hashes: std::cell::RefCell<HashMap<(String, u64), String>>,
    /// Simulated seconds per real second: grace periods pass this much faster.
    pub time_scale: f64,
    /// Pods in their grace period, and when (real time) the kubelet is done with them.
    pub terminate_at: BTreeMap<ObjKey, Instant>,
    /// How often (real time) a watch that asked for bookmarks gets one.
    pub bookmark_every: Duration,
    /// Pods whose grace period just began: their kubelet stops their containers.
    pub stopping: Vec<ObjKey>,
    /// The objects that reference each owner uid: the garbage collector's dependency
    /// graph (and the workload controllers' pod index), kept as objects are written.
    dependents: HashMap<String, BTreeSet<(&'static str, ObjKey)>>,
    /// Objects whose owners may have changed (gone, being deleted in the foreground) or
    /// that were written with owner references: the garbage collector's queue, as its
    /// graph builder fills it from events (`collect_garbage`).
    pub gc_queue: BTreeSet<(&'static str, ObjKey)>,
    /// Every object with a `deletionTimestamp`, for the controllers that finish deletions.
    terminating: BTreeSet<(&'static str, ObjKey)>,
    /// The workloads (StatefulSets, Deployments) whose pods or selves changed since their
    /// status was last written: the workload-status controller's queue, as informers fill
    /// it (`update_workload_status`).
    pub touched_workloads: BTreeSet<(&'static str, ObjKey)>,
    /// What the pods bound to each node take of it (by node name), kept as pods are
    /// written: the scheduler's cache of node usage.
    pub node_usage: HashMap<String, Usage>,
    /// The StatefulSets whose pods or selves changed since the StatefulSet controller last
    /// synced them, or that it must look at again: its queue (`sync_statefulsets`).
    pub statefulset_queue: BTreeSet<ObjKey>,
    /// Claims removed since the volume controller last looked: their volumes are released.
    pub released_claims: Vec<Value>,
    /// The directories that exist on each node (by node name): a `local` volume mounts
    /// only at one of them (`controllers`' simulated kubelet).
    pub directories: HashMap<String, BTreeSet<String>>,
    /// The container runtime: the registry, what the nodes pulled, container faults and
    /// the kubelet's record of each container (`images`, `kubelet`).
    pub runtime: Runtime,
    /// Something the deletion controllers act on happened (an object was removed, or
    /// began or changed its deletion): the controllers run again.
    pub dirty: bool,
    /// What the node lifecycle controller last saw of each node's `Ready` condition
    /// (`node_lifecycle`).
    pub node_health: BTreeMap<String, NodeHealth>,
    /// The taint-eviction controller's timed work, by pod: when (real time) the pod is
    /// deleted, or `None` once that was done (`node_lifecycle`).
    pub evict_at: BTreeMap<ObjKey, Option<Instant>>,
    /// Pods being deleted on a node whose kubelet is down: they stay `Terminating` until
    /// it is back (`node_lifecycle`).
    pub held_terminations: BTreeSet<ObjKey>,
}

/// What the node lifecycle controller knows of a node's health.
#[derive(Clone, Debug)]
pub(crate) struct NodeHealth {
    /// The `Ready` condition's status as last seen (`True`, `False`, `Unknown`).
    pub ready: String,
    /// When (real time) that status was first seen: the last word from the kubelet.
    pub since: Instant,
    /// Whether the controller has acted on it (tainted the node, marked its pods).
    pub acted: bool,
}

/// How many changes are kept by default (see [`Changes`]); an older resourceVersion is
/// `410 Gone`, as when a real cluster's etcd has compacted its history. A change shares
/// its object with the table and with the next change of that object, and the embedded
/// default keeps its simulators in the server's process.
pub(crate) const CHANGES_KEPT: usize = 1_000;

/// The objects of one type by namespace and name; each object is shared with the
/// history ([`Changes`]) that recorded it.
pub(crate) type Table = BTreeMap<ObjKey, Arc<Value>>;

/// A change to one object, as a watch reports it.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub resource_version: u64,
    pub res: &'static str,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    /// The object's key.
    pub key: ObjKey,
    /// The object as of the change.
    pub object: Arc<Value>,
    /// The object before the change (`None` for `ADDED`): what a read at an older
    /// resourceVersion sees (a continued list, an `Exact` one).
    pub previous: Option<Arc<Value>>,
}

/// The latest changes, oldest first, and a signal that wakes watches on each new one.
///
/// This is the simulator's etcd history: watches resume from it, and lists read older
/// versions from it (continued pages, `resourceVersionMatch=Exact`). Only the last
/// `kept` changes are kept, the count-based stand-in for etcd's compaction (every 5
/// minutes by default, in kube-apiserver's `--etcd-compaction-interval`); reads that need
/// older ones are `410 Gone`.
#[derive(Clone, Debug)]
pub(crate) struct Changes {
    log: VecDeque<Change>,
    kept: usize,
    /// Changes after this resourceVersion are all in `log`.
    complete_after: u64,
    signal: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Changes {
    fn new() -> Self {
        Self {
            log: VecDeque::new(),
            kept: CHANGES_KEPT,
            complete_after: 0,
            signal: Arc::new(tokio::sync::watch::channel(0).0),
        }
    }

    fn record(&mut self, change: Change) {
        let resource_version = change.resource_version;
        while self.log.len() >= self.kept
            && let Some(dropped) = self.log.pop_front()
        {
            self.complete_after = dropped.resource_version;
        }
        self.log.push_back(change);
        self.signal.send_replace(resource_version);
    }

    /// The changes after `resource_version`, or `None` when some of them are no longer
    /// kept.
    pub fn after(&self, resource_version: u64) -> Option<impl Iterator<Item = &Change>> {
        if resource_version < self.complete_after {
            return None;
        }
        let start = self
            .log
            .partition_point(|c| c.resource_version <= resource_version);
        Some(self.log.range(start..))
    }

    /// Keeps only the last `kept` changes (at least one) from now on.
    pub fn keep(&mut self, kept: usize) {
        self.kept = kept.max(1);
    }

    /// The oldest resourceVersion still readable: every change after it is kept.
    pub fn compacted_at(&self) -> u64 {
        self.complete_after
    }

    /// A receiver that wakes on every change from now on.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.signal.subscribe()
    }
}

impl State {
    pub fn new(seed: u64, ready_after: Duration, time_scale: f64) -> Self {
        let mut state = Self {
            objects: RESOURCES
                .iter()
                .map(|r| (r.plural, BTreeMap::new()))
                .collect(),
            resource_version: 0,
            alloc: Allocations::new(seed),
            ready_after,
            events_expire_at: None,
            changes: Changes::new(),
            template_hashes: std::cell::RefCell::default(),
            time_scale,
            terminate_at: BTreeMap::new(),
            bookmark_every: Duration::from_secs(60),
            stopping: Vec::new(),
            dependents: HashMap::new(),
            gc_queue: BTreeSet::new(),
            terminating: BTreeSet::new(),
            touched_workloads: BTreeSet::new(),
            statefulset_queue: BTreeSet::new(),
            node_usage: HashMap::new(),
            released_claims: Vec::new(),
            directories: HashMap::new(),
            runtime: Runtime::default(),
            dirty: false,
            node_health: BTreeMap::new(),
            evict_at: BTreeMap::new(),
            held_terminations: BTreeSet::new(),
        };
        state.resource_version = state.alloc.first_resource_version();
        state.changes.complete_after = state.resource_version;
        let ns = by_plural(NAMESPACES);
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            state
                .create(
                    ns,
                    None,
                    json!({ "metadata": { "name": name } }),
                    Fields::Kept,
                )
                .expect("built-in namespaces are valid");
        }
        // Like a real cluster, `default` holds the API server's own Service.
        state
            .create(
                by_plural(SERVICES),
                Some("default"),
                json!({
                    "metadata": { "name": "kubernetes", "labels": { "component": "apiserver", "provider": "kubernetes" } },
                    "spec": { "ports": [{ "name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443 }] },
                }),
                Fields::Kept,
            )
            .expect("the kubernetes service is valid");
        state
    }

    // --- raw access, used by the controllers too --------------------------------

    fn table(&self, res: &str) -> &Table {
        &self.objects[res]
    }

    fn table_mut(&mut self, res: &str) -> &mut Table {
        self.objects
            .get_mut(res)
            .expect("every served resource has a table")
    }

    /// All objects of a type, sorted by namespace and name.
    pub fn iter(&self, res: &str) -> impl Iterator<Item = (&ObjKey, &Value)> {
        self.table(res).iter().map(|(k, v)| (k, &**v))
    }

    /// How many objects of a type there are.
    pub fn count(&self, res: &str) -> usize {
        self.table(res).len()
    }

    /// The objects of a type whose keys lie in `from..to`, sorted.
    pub fn range(
        &self,
        res: &str,
        from: ObjKey,
        to: ObjKey,
    ) -> impl Iterator<Item = (&ObjKey, &Value)> {
        self.table(res).range(from..to).map(|(k, v)| (k, &**v))
    }

    pub fn lookup(&self, res: &str, key: &ObjKey) -> Option<&Value> {
        self.table(res).get(key).map(|v| &**v)
    }

    /// The objects that reference the owner with `uid`, by type and key.
    pub fn dependents(&self, uid: &str) -> impl Iterator<Item = &(&'static str, ObjKey)> {
        self.dependents.get(uid).into_iter().flatten()
    }

    /// The objects being deleted, by type and key.
    pub fn terminating(&self) -> Vec<(&'static str, ObjKey)> {
        self.terminating.iter().cloned().collect()
    }

    /// The objects of a type in namespace `ns`, by name.
    pub fn objects_in<'a>(
        &'a self,
        res: &str,
        ns: &'a str,
    ) -> impl Iterator<Item = (&'a ObjKey, &'a Value)> {
        self.table(res)
            .range(key(ns, "")..)
            .take_while(move |((obj_ns, _), _)| obj_ns == ns)
            .map(|(k, v)| (k, &**v))
    }

    /// The keys of the objects of a type in namespace `ns`.
    pub fn keys_in(&self, res: &str, ns: &str) -> Vec<ObjKey> {
        self.objects_in(res, ns).map(|(k, _)| k.clone()).collect()
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> String {
        self.resource_version.to_string()
    }

    /// The current global resourceVersion, as a number.
    pub fn resource_version_number(&self) -> u64 {
        self.resource_version
    }

    /// Stores `obj` as a new revision: bumps the global resourceVersion into it.
    pub fn put(&mut self, res: &'static str, key: ObjKey, mut obj: Value) -> Arc<Value> {
        self.resource_version = self.alloc.next_resource_version(self.resource_version);
        object_at(&mut obj, &["metadata"]).insert(
            "resourceVersion".into(),
            json!(self.resource_version.to_string()),
        );
        index(&mut self.terminating, res, &key, is_terminating(&obj));
        // One object, shared by the table and the history: a write copies nothing.
        let obj = Arc::new(obj);
        let previous = self.table_mut(res).insert(key.clone(), Arc::clone(&obj));
        self.track_owners(res, &key, previous.as_deref(), Some(&obj));
        self.changes.record(Change {
            resource_version: self.resource_version,
            res,
            kind: if previous.is_some() {
                "MODIFIED"
            } else {
                "ADDED"
            },
            key,
            object: obj.clone(),
            previous,
        });
        obj
    }

    /// Keeps the dependency graph and the queues of the garbage collector and the
    /// workload-status controller up to date with a write of `key` from `old` to `new`
    /// (`None`: absent).
    fn track_owners(
        &mut self,
        res: &'static str,
        key: &ObjKey,
        old: Option<&Value>,
        new: Option<&Value>,
    ) {
        let node = (res, key.clone());
        for uid in owner_uids(old) {
            if let Some(dependents) = self.dependents.get_mut(uid) {
                dependents.remove(&node);
                if dependents.is_empty() {
                    self.dependents.remove(uid);
                }
            }
        }
        for uid in owner_uids(new) {
            self.dependents
                .entry(uid.to_owned())
                .or_default()
                .insert(node.clone());
        }
        // An owner come, gone, or whose deletion began or changed its finalizers: its
        // dependents are looked at again (that is all the collector judges an owner by;
        // its status writes change none of it); a dependent is looked at when written
        // (an owner it names may not exist).
        let standing = |obj: Option<&Value>| obj.map(|o| (is_terminating(o), finalizers(o)));
        if standing(old) != standing(new)
            && let Some(owner) = new.or(old)
            && let Some(dependents) = self.dependents.get(meta(owner, "uid"))
        {
            self.gc_queue.extend(dependents.iter().cloned());
        }
        if new.is_some_and(has_owners) {
            self.gc_queue.insert(node);
        }
        match res {
            PODS => {
                if let Some(pod) = old
                    && let Some(node) = node_taken(pod)
                {
                    self.node_usage
                        .entry(node.to_owned())
                        .or_default()
                        .remove(pod);
                }
                if let Some(pod) = new
                    && let Some(node) = node_taken(pod)
                {
                    self.node_usage.entry(node.to_owned()).or_default().add(pod);
                }
                for obj in [old, new].into_iter().flatten() {
                    for owner in obj["metadata"]["ownerReferences"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        let workload = match owner["kind"].as_str() {
                            Some("StatefulSet") => STATEFULSETS,
                            Some("Deployment") => DEPLOYMENTS,
                            _ => continue,
                        };
                        let k = super::resources::key(&key.0, str_at(owner, &["name"]));
                        if workload == STATEFULSETS {
                            self.statefulset_queue.insert(k.clone());
                        }
                        self.touched_workloads.insert((workload, k));
                    }
                }
            }
            STATEFULSETS => {
                self.statefulset_queue.insert(key.clone());
                self.touched_workloads.insert((res, key.clone()));
            }
            DEPLOYMENTS => {
                self.touched_workloads.insert((res, key.clone()));
            }
            _ => {}
        }
    }

    /// The pods that reference the owner with `uid`, sorted.
    pub fn pods_owned_by(&self, uid: &str) -> impl Iterator<Item = &ObjKey> {
        self.dependents(uid)
            .filter(|(res, _)| *res == PODS)
            .map(|(_, k)| k)
    }

    /// Replaces `status` if it differs, so that a steady state does not churn revisions.
    pub fn set_status(&mut self, res: &'static str, key: &ObjKey, status: Value) {
        let Some(current) = self.lookup(res, key) else {
            return;
        };
        if current["status"] == status {
            return;
        }
        let mut obj = current.clone();
        obj["status"] = status;
        self.put(res, key.clone(), obj);
    }

    /// Fills the server-owned metadata of a new object and stores it.
    pub fn insert_new(&mut self, res: &ResourceDef, key: ObjKey, obj: Value) -> Arc<Value> {
        self.insert_new_managed(res, key, obj, None)
    }

    /// [`State::insert_new`], with the `managedFields` the write recorded.
    fn insert_new_managed(
        &mut self,
        res: &ResourceDef,
        key: ObjKey,
        mut obj: Value,
        managed: Option<Value>,
    ) -> Arc<Value> {
        obj["apiVersion"] = json!(res.api_version());
        obj["kind"] = json!(res.kind);
        let uid = self.alloc.next_uid();
        let metadata = object_at(&mut obj, &["metadata"]);
        metadata.insert("uid".into(), json!(uid));
        metadata.insert("creationTimestamp".into(), json!(now_rfc3339()));
        metadata.insert("generation".into(), json!(1));
        for transient in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
        ] {
            metadata.remove(transient);
        }
        if let Some(managed) = managed {
            metadata.insert("managedFields".into(), managed);
        }
        let obj = self.put(res.plural, key.clone(), obj);
        self.after_write(res, &key);
        obj
    }

    /// Keeps the node-port table in step with a Service that was just written.
    fn after_write(&mut self, res: &ResourceDef, key: &ObjKey) {
        if res.plural != SERVICES {
            return;
        }
        let ports: Vec<u16> = self
            .lookup(SERVICES, key)
            .and_then(|svc| svc["spec"]["ports"].as_array())
            .map(|ports| {
                ports
                    .iter()
                    .filter_map(|p| p["nodePort"].as_u64().and_then(|n| u16::try_from(n).ok()))
                    .collect()
            })
            .unwrap_or_default();
        self.alloc.hold_node_ports(key, ports);
    }

    // --- verbs ------------------------------------------------------------------

    fn namespace_of(res: &ResourceDef, url_ns: Option<&str>) -> String {
        if res.namespaced {
            url_ns.unwrap_or("default").to_string()
        } else {
            String::new()
        }
    }

    fn require_namespace(&self, ns: &str) -> ApiResult<()> {
        if self.lookup(NAMESPACES, &key("", ns)).is_some() {
            Ok(())
        } else {
            Err(ApiError::not_found(by_plural(NAMESPACES), ns))
        }
    }

    /// The `NamespaceLifecycle` admission plugin: nothing new in a namespace being
    /// deleted (403, with the name the create asked for, or its `generateName`).
    fn refuse_if_terminating(&self, res: &ResourceDef, ns: &str, obj: &Value) -> ApiResult<()> {
        let terminating = self
            .lookup(NAMESPACES, &key("", ns))
            .is_some_and(|n| str_at(n, &["status", "phase"]) == "Terminating");
        if !terminating {
            return Ok(());
        }
        // As `admission.NewForbidden` names the object before its name is generated.
        let name = match (meta(obj, "name"), meta(obj, "generateName")) {
            ("", "") => "Unknown",
            ("", prefix) => prefix,
            (name, _) => name,
        };
        Err(ApiError::namespace_terminating(res, name, ns))
    }

    /// Checks that the body's name and namespace agree with the URL and fills them in.
    fn reconcile_identity(
        res: &ResourceDef,
        obj: &mut Value,
        ns: &str,
        name: Option<&str>,
    ) -> ApiResult<()> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(format!(
                "the body of a {} must be a JSON object",
                res.kind
            )));
        }
        let metadata = object_at(obj, &["metadata"]);
        if res.namespaced {
            match metadata.get("namespace").and_then(Value::as_str) {
                Some(body_ns) if !body_ns.is_empty() && body_ns != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    metadata.insert("namespace".into(), json!(ns));
                }
            }
        } else {
            metadata.remove("namespace");
        }
        if let Some(url_name) = name {
            match metadata.get("name").and_then(Value::as_str) {
                Some(body_name) if !body_name.is_empty() && body_name != url_name => {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({body_name}) does not match the name on the URL ({url_name})"
                    )));
                }
                _ => {
                    metadata.insert("name".into(), json!(url_name));
                }
            }
        }
        Ok(())
    }

    /// POST: creates an object (409 AlreadyExists, 404 for a missing namespace, 422 Invalid).
    pub fn create(
        &mut self,
        res: &'static ResourceDef,
        url_ns: Option<&str>,
        mut obj: Value,
        fields: Fields,
    ) -> ApiResult<Value> {
        let ns = Self::namespace_of(res, url_ns);
        Self::reconcile_identity(res, &mut obj, &ns, None)?;
        // Admission (the namespace's lifecycle) comes before names are generated.
        if res.namespaced {
            self.require_namespace(&ns)?;
            self.refuse_if_terminating(res, &ns, &obj)?;
        }
        if meta(&obj, "name").is_empty() {
            let prefix = meta(&obj, "generateName").to_string();
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    res,
                    "",
                    vec![FieldError::required(
                        "metadata.name",
                        "name or generateName is required",
                    )],
                ));
            }
            let name = loop {
                let candidate = format!("{prefix}{}", self.alloc.random_suffix(5));
                if self.lookup(res.plural, &key(&ns, &candidate)).is_none() {
                    break candidate;
                }
            };
            obj["metadata"]["name"] = json!(name);
        }
        let name = meta(&obj, "name").to_string();
        let k = key(&ns, &name);
        let mut errors: Vec<FieldError> =
            admission::validate_name(res, &name).into_iter().collect();
        if res.has_status && res.plural != "nodes" {
            // Status is the controllers' to write; a client cannot create it.
            obj.as_object_mut().expect("checked above").remove("status");
        }
        if res.plural == PVCS {
            // Mutating admission (`DefaultStorageClass`) runs before validation.
            admission::default_storage_class(&mut obj, &self.storage_classes());
        }
        errors.extend(admission::prepare(&mut self.alloc, res, &k, &mut obj, None));
        if !errors.is_empty() {
            return Err(ApiError::invalid(res, &name, errors));
        }
        if self.lookup(res.plural, &k).is_some() {
            return Err(ApiError::already_exists(res, &name));
        }
        if res.plural == PODS
            && let Some(why) = self.pod_security_refusal(&ns, &obj)
        {
            return Err(ApiError::forbidden(res, &name, &why));
        }
        let managed = match fields {
            Fields::Kept => None,
            Fields::Applied => obj["metadata"].get("managedFields").cloned(),
            Fields::Update(writer) => {
                let mut recorded = obj.clone();
                managed::record_update(None, &mut recorded, writer, &res.api_version(), false);
                recorded["metadata"].get("managedFields").cloned()
            }
        };
        Ok(Value::clone(&self.insert_new_managed(res, k, obj, managed)))
    }

    /// The StorageClasses, for the storage admission plugins.
    pub fn storage_classes(&self) -> Vec<&Value> {
        self.iter(STORAGE_CLASSES).map(|(_, class)| class).collect()
    }

    /// Why Pod Security Admission refuses `pod` in namespace `ns`, if it does.
    pub fn pod_security_refusal(&self, ns: &str, pod: &Value) -> Option<String> {
        let namespace = self.lookup(NAMESPACES, &key("", ns))?;
        pod_security::refusal(&namespace["metadata"]["labels"], pod)
    }

    /// GET of one object.
    pub fn get(&self, res: &ResourceDef, url_ns: Option<&str>, name: &str) -> ApiResult<Value> {
        let ns = Self::namespace_of(res, url_ns);
        self.lookup(res.plural, &key(&ns, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(res, name))
    }

    /// GET of a collection: every matching object of one namespace or of all.
    pub fn list(
        &self,
        res: &ResourceDef,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Vec<Value> {
        list_page(self.table(res.plural), ns, labels, fields, None, None)
            .items
            .iter()
            .map(|obj| Value::clone(obj))
            .collect()
    }

    /// The objects of a type as they were at `resource_version`: the current ones with
    /// the changes since taken back, or `None` when some of those changes are no longer
    /// kept (compacted). Copies the table only when it changed since.
    pub fn table_at(&self, res: &str, resource_version: u64) -> Option<Cow<'_, Table>> {
        let since: Vec<&Change> = self
            .changes
            .after(resource_version)?
            .filter(|c| c.res == res)
            .collect();
        if since.is_empty() {
            return Some(Cow::Borrowed(self.table(res)));
        }
        let mut table = self.table(res).clone();
        // Newest first, so that each key ends as it was before its oldest change since.
        for change in since.iter().rev() {
            match &change.previous {
                Some(previous) => table.insert(change.key.clone(), previous.clone()),
                None => table.remove(&change.key),
            };
        }
        Some(Cow::Owned(table))
    }

    /// PUT of an object, or of its `status` when `status_only`.
    pub fn replace(
        &mut self,
        res: &'static ResourceDef,
        url_ns: Option<&str>,
        name: &str,
        mut body: Value,
        status_only: bool,
        fields: Fields,
    ) -> ApiResult<Value> {
        let ns = Self::namespace_of(res, url_ns);
        Self::reconcile_identity(res, &mut body, &ns, Some(name))?;
        let k = key(&ns, name);
        let old = self
            .lookup(res.plural, &k)
            .cloned()
            .ok_or_else(|| ApiError::not_found(res, name))?;
        let wanted_rv = meta(&body, "resourceVersion");
        if !wanted_rv.is_empty() && wanted_rv != meta(&old, "resourceVersion") {
            return Err(ApiError::stale(res, name));
        }
        let mut new = if status_only {
            let mut new = old.clone();
            new["status"] = body.get("status").cloned().unwrap_or(Value::Null);
            new
        } else {
            let mut new = body;
            if res.has_status {
                // The main resource cannot change status, as with a real status subresource.
                match old.get("status") {
                    Some(status) => new["status"] = status.clone(),
                    None => {
                        new.as_object_mut()
                            .expect("checked object")
                            .remove("status");
                    }
                }
            }
            new
        };
        new["apiVersion"] = json!(res.api_version());
        new["kind"] = json!(res.kind);
        {
            let metadata = object_at(&mut new, &["metadata"]);
            // An update can never set, remove or change a deletion (`rest.BeforeUpdate`).
            for kept in [
                "uid",
                "creationTimestamp",
                "generation",
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            ] {
                match old["metadata"].get(kept) {
                    Some(v) => metadata.insert(kept.into(), v.clone()),
                    None => metadata.remove(kept),
                };
            }
        }
        if !status_only {
            let mut errors = no_new_finalizers(&old, &new)
                .into_iter()
                .collect::<Vec<_>>();
            errors.extend(admission::prepare(
                &mut self.alloc,
                res,
                &k,
                &mut new,
                Some(&old),
            ));
            if !errors.is_empty() {
                return Err(ApiError::invalid(res, name, errors));
            }
            // Validating admission (`PersistentVolumeClaimResize`) after validation.
            if res.plural == PVCS
                && let Some(why) = admission::resize_refusal(&old, &new, &self.storage_classes())
            {
                return Err(ApiError::forbidden(res, name, &why));
            }
        }
        match fields {
            Fields::Kept => managed::keep(&old, &mut new),
            Fields::Update(writer) => {
                managed::record_update(
                    Some(&old),
                    &mut new,
                    writer,
                    &res.api_version(),
                    status_only,
                );
            }
            Fields::Applied => {}
        }
        if new == old {
            // A no-op write does not bump the revision (as in Kubernetes).
            return Ok(old);
        }
        if deletion_completes(&old, &new) {
            // The last finalizer of an object being deleted went: the update deletes it
            // instead (`ShouldDeleteDuringUpdate`), and answers with the object as stored.
            return Ok(self.remove(res, &k).expect("looked up above"));
        }
        if spec_changed(&old, &new) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            new["metadata"]["generation"] = json!(generation);
        }
        let stored = self.put(res.plural, k.clone(), new);
        self.after_write(res, &k);
        Ok(Value::clone(&stored))
    }

    /// PATCH with an already parsed body (`patch`: its kind and the body); `apply`
    /// creates a missing object. `writer` is `None` for the simulator's own components.
    pub fn patch(
        &mut self,
        res: &'static ResourceDef,
        url_ns: Option<&str>,
        name: &str,
        patch: (PatchKind, &Value),
        status_only: bool,
        writer: Option<&Writer>,
    ) -> ApiResult<Value> {
        let (kind, body) = patch;
        let ns = Self::namespace_of(res, url_ns);
        let fields = writer.map_or(Fields::Kept, Fields::Update);
        if kind == PatchKind::Apply && !status_only {
            if !body.is_object() {
                return Err(ApiError::bad_request(
                    "an apply configuration must be a JSON object",
                ));
            }
            let mut applied = body.clone();
            Self::reconcile_identity(res, &mut applied, &ns, Some(name))?;
            let fallback = Writer {
                manager: String::new(),
                force: true,
            };
            let writer = writer.unwrap_or(&fallback);
            let live = self.lookup(res.plural, &key(&ns, name)).cloned();
            let merged = managed::apply(
                live.as_ref().unwrap_or(&json!({})),
                &applied,
                writer,
                &res.api_version(),
            )?;
            return match live {
                None => self.create(res, url_ns, merged, Fields::Applied),
                Some(live) if merged == live => Ok(live),
                Some(_) => self.replace(res, url_ns, name, merged, false, Fields::Applied),
            };
        }
        let Some(old) = self.lookup(res.plural, &key(&ns, name)).cloned() else {
            return Err(ApiError::not_found(res, name));
        };
        let mut merged = old;
        match kind {
            PatchKind::Merge | PatchKind::Apply => {
                if !body.is_object() {
                    return Err(ApiError::bad_request("a merge patch must be a JSON object"));
                }
                merge_patch(&mut merged, body);
            }
            PatchKind::Strategic => {
                strategic_merge_patch(&mut merged, body).map_err(ApiError::bad_request)?;
            }
            PatchKind::Json => json_patch(&mut merged, body).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {e}"),
                )
            })?,
        }
        self.replace(res, url_ns, name, merged, status_only, fields)
    }

    /// The `/scale` of a workload: an `autoscaling/v1` `Scale` of its replicas.
    pub fn scale(&self, res: &ResourceDef, url_ns: Option<&str>, name: &str) -> ApiResult<Value> {
        Ok(scale_of(&self.get(res, url_ns, name)?))
    }

    /// Writes a workload's `/scale`: `body` is a whole `Scale` (`kind` `None`) or a patch
    /// of the current one; only its `spec.replicas` is taken.
    pub fn set_scale(
        &mut self,
        res: &'static ResourceDef,
        url_ns: Option<&str>,
        name: &str,
        kind: Option<PatchKind>,
        body: &Value,
    ) -> ApiResult<Value> {
        let mut scale = self.scale(res, url_ns, name)?;
        match kind {
            None => scale = body.clone(),
            Some(PatchKind::Json) => {
                json_patch(&mut scale, body).map_err(|e| ApiError::new(422, "Invalid", e))?
            }
            Some(_) => merge_patch(&mut scale, body),
        }
        let Some(replicas) = scale["spec"]["replicas"].as_i64() else {
            return Err(ApiError::new(
                422,
                "Invalid",
                format!("Scale.autoscaling \"{name}\" is invalid: spec.replicas: Required value"),
            ));
        };
        let patch = json!({ "spec": { "replicas": replicas } });
        let updated = self.patch(res, url_ns, name, (PatchKind::Merge, &patch), false, None)?;
        Ok(scale_of(&updated))
    }

    /// Removes an object as a new revision and applies what its removal frees; `None`
    /// if it was not there. Its dependents are the garbage collector's to find.
    pub fn remove(&mut self, res: &'static ResourceDef, k: &ObjKey) -> Option<Value> {
        let previous = self.table_mut(res.plural).remove(k)?;
        self.track_owners(res.plural, k, Some(&previous), None);
        let mut gone = Value::clone(&previous);
        self.resource_version = self.alloc.next_resource_version(self.resource_version);
        object_at(&mut gone, &["metadata"]).insert(
            "resourceVersion".into(),
            json!(self.resource_version.to_string()),
        );
        self.changes.record(Change {
            resource_version: self.resource_version,
            res: res.plural,
            kind: "DELETED",
            key: k.clone(),
            object: Arc::new(gone.clone()),
            previous: Some(previous),
        });
        let indexed = (res.plural, k.clone());
        self.terminating.remove(&indexed);
        self.dirty = true;
        match res.plural {
            SERVICES => self.alloc.free_node_ports(k),
            PODS => {
                self.terminate_at.remove(k);
                self.runtime.forget(k);
                self.held_terminations.remove(k);
            }
            PVCS => self.released_claims.push(gone.clone()),
            PVS => self.lose_claim(&gone),
            _ => {}
        }
        Some(gone)
    }

    /// Sets the finalizers of an object, as a controller's update does: when the object
    /// is being deleted and none is left, it goes (see [`deletion_completes`]). Returns
    /// the object as written, or as removed.
    pub fn set_finalizers(
        &mut self,
        res: &'static ResourceDef,
        k: &ObjKey,
        kept: Vec<String>,
    ) -> Option<Value> {
        let old = self.lookup(res.plural, k)?.clone();
        let mut new = old.clone();
        if kept.is_empty() {
            object_at(&mut new, &["metadata"]).remove("finalizers");
        } else {
            new["metadata"]["finalizers"] = json!(kept);
        }
        if new == old {
            return Some(old);
        }
        self.dirty = true;
        if deletion_completes(&old, &new) {
            return self.remove(res, k);
        }
        Some(Value::clone(&self.put(res.plural, k.clone(), new)))
    }

    /// A deleted volume leaves its bound claim `Lost`.
    fn lose_claim(&mut self, volume: &Value) {
        let claim_ref = &volume["spec"]["claimRef"];
        let claim_key = key(
            str_at(claim_ref, &["namespace"]),
            str_at(claim_ref, &["name"]),
        );
        if let Some(claim) = self.lookup(PVCS, &claim_key)
            && claim["spec"]["volumeName"] == volume["metadata"]["name"]
        {
            let mut status = claim["status"].clone();
            status["phase"] = json!("Lost");
            self.set_status(PVCS, &claim_key, status);
        }
    }
}

/// One page of a list.
pub(crate) struct Page {
    pub items: Vec<Arc<Value>>,
    /// The key of the page's last object, when more follow.
    pub last: Option<ObjKey>,
    /// How many objects of the scope (namespace) follow the page, before selectors: what
    /// the API server reports as `remainingItemCount` (it counts keys in etcd).
    pub remaining: usize,
}

/// One page of `table`: the matching objects after `after` (in namespace and name order),
/// at most `limit` of them, and the key of the last one when more follow. It walks only
/// as far as the page goes (and counts the rest), as the API server's paged reads of
/// etcd do, so reading a collection page by page costs what reading it at once does.
pub(crate) fn list_page(
    table: &Table,
    ns: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
    after: Option<&ObjKey>,
    limit: Option<usize>,
) -> Page {
    use std::ops::Bound;
    let start = after.map_or(Bound::Unbounded, Bound::Excluded);
    let mut in_scope = table
        .range((start, Bound::Unbounded))
        .filter(|((obj_ns, _), _)| ns.is_none_or(|ns| ns == obj_ns));
    let mut items = Vec::new();
    let mut last = None;
    for (key, obj) in in_scope.by_ref() {
        if !(labels.matches_object(obj) && fields.matches(obj)) {
            continue;
        }
        items.push(Arc::clone(obj));
        last = Some(key);
        if limit.is_some_and(|limit| items.len() == limit) {
            break;
        }
    }
    let more = limit.is_some()
        && in_scope
            .clone()
            .any(|(_, obj)| labels.matches_object(obj) && fields.matches(obj));
    let remaining = if more { in_scope.count() } else { 0 };
    Page {
        items,
        last: more.then(|| last.cloned()).flatten(),
        remaining,
    }
}

/// Adds `k` of type `res` to an index when `member`, removes it otherwise.
fn index(set: &mut BTreeSet<(&'static str, ObjKey)>, res: &'static str, k: &ObjKey, member: bool) {
    let entry = (res, k.clone());
    if member {
        set.insert(entry);
    } else {
        set.remove(&entry);
    }
}

/// The uids of the owners `obj` references.
fn owner_uids(obj: Option<&Value>) -> impl Iterator<Item = &str> {
    obj.and_then(|obj| obj["metadata"]["ownerReferences"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|owner| owner["uid"].as_str())
}

fn has_owners(obj: &Value) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| !refs.is_empty())
}

/// `ValidateNoNewFinalizers`: an object being deleted can lose finalizers, never gain one.
fn no_new_finalizers(old: &Value, new: &Value) -> Option<FieldError> {
    if !is_terminating(old) {
        return None;
    }
    let before: BTreeSet<String> = finalizers(old).into_iter().collect();
    let added: BTreeSet<String> = finalizers(new)
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    if added.is_empty() {
        return None;
    }
    // Go's `%#v` of a sorted `[]string`.
    let listed: Vec<String> = added.iter().map(|f| format!("{f:?}")).collect();
    Some(FieldError::forbidden(
        "metadata.finalizers",
        format!(
            "no new finalizers can be added if the object is being deleted, found new \
             finalizers []string{{{}}}",
            listed.join(", ")
        ),
    ))
}

/// Whether writing `new` over `old` deletes the object (`ShouldDeleteDuringUpdate`): it
/// is being deleted, has no finalizer left and no grace period running; a namespace also
/// needs its `spec.finalizers` done.
pub(crate) fn deletion_completes(old: &Value, new: &Value) -> bool {
    let grace = &old["metadata"]["deletionGracePeriodSeconds"];
    let namespace_done = new["kind"] != "Namespace"
        || new["spec"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty);
    is_terminating(old)
        && finalizers(new).is_empty()
        && (grace.is_null() || grace.as_i64() == Some(0))
        && namespace_done
}

/// The patch flavours the simulator accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PatchKind {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/json-patch+json`.
    Json,
    /// `application/apply-patch+yaml`: server-side apply (`managed`).
    Apply,
}

/// Whether anything outside `metadata` and `status` changed (what bumps `generation`).
/// The `autoscaling/v1` `Scale` of a workload.
fn scale_of(workload: &Value) -> Value {
    let metadata = &workload["metadata"];
    let selector = workload["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "uid": metadata["uid"],
            "resourceVersion": metadata["resourceVersion"],
            "creationTimestamp": metadata["creationTimestamp"],
        },
        "spec": { "replicas": workload["spec"]["replicas"] },
        "status": {
            "replicas": workload["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": selector,
        },
    })
}

fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(map) = v.as_object_mut() {
            map.remove("metadata");
            map.remove("status");
        }
        v
    };
    strip(old) != strip(new)
}

#[cfg(test)]
mod change_log_tests {
    use super::*;

    #[test]
    fn history_older_than_what_is_kept_is_gone() {
        let mut changes = Changes::new();
        let change = |resource_version| Change {
            resource_version,
            res: PODS,
            kind: "ADDED",
            key: key("", "p"),
            object: Arc::new(Value::Null),
            previous: None,
        };
        for version in 1..=5 {
            changes.record(change(version));
        }
        let versions = |after| {
            changes
                .after(after)
                .map(|c| c.map(|c| c.resource_version).collect::<Vec<_>>())
        };
        assert_eq!(versions(3), Some(vec![4, 5]));
        assert_eq!(versions(0), Some(vec![1, 2, 3, 4, 5]));
        let mut changes = Changes::new();
        for version in 1..=(CHANGES_KEPT as u64 + 2) {
            changes.record(change(version));
        }
        assert!(changes.after(1).is_none(), "change 2 is no longer kept");
        assert_eq!(changes.after(2).map(Iterator::count), Some(CHANGES_KEPT));
    }
}
