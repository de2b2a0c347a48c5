//! A Kubernetes API server simulator, served over real HTTP on loopback, so that the
//! real kube-rs client code (`kube::Client`, `kube::Api<K>`) and `kubectl` run against
//! it unchanged; and the demo fleet ([`SimFleet`]) of such clusters that `framedb-server`
//! runs by default and with `simulate`.
//!
//! It keeps objects with resourceVersions, answers with Kubernetes `Status` failures
//! (404, 409, 422 for a taken node port, ...), deletes as a real cluster does (see
//! [Deletion](#deletion)), runs StatefulSets and Deployments as pods scheduled onto
//! simulated nodes by node selector, binds volume claims as a cluster with a default
//! StorageClass does (see [Storage](#storage)), pulls images from a simulated registry and
//! runs containers as a kubelet does, with injectable crashes, OOM kills and slow starts
//! (see [Images and containers](#images-and-containers)), and can inject failed answers,
//! latency and dropped connections ([`Faults`]).
//!
//! Served: core `v1` namespaces, nodes, services, pods, persistentvolumeclaims,
//! persistentvolumes, configmaps, secrets, serviceaccounts and events; `apps/v1`
//! deployments and statefulsets; `rbac.authorization.k8s.io/v1` roles, clusterroles and
//! their bindings; `networking.k8s.io/v1` networkpolicies; `storage.k8s.io/v1`
//! storageclasses; `policy/v1` poddisruptionbudgets (validated and stored; see below);
//! `events.k8s.io/v1` events (a view of the core ones);
//! watches of every collection; discovery and server-side `Table`s for `kubectl get`;
//! the subresources `/status`, a workload's `/scale` and a pod's `/eviction` (see
//! [Node lifecycle](#node-lifecycle)).
//! Bodies are read as JSON or, as kubectl's typed clients send them, in Kubernetes'
//! protobuf encoding (`protobuf`); answers are JSON, which every client accepts.
//! Not served: other subresources, other API groups.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use framedb_kube_sim::{SimConfig, SimNode, Simulator};
//! use k8s_openapi::api::core::v1::Namespace;
//!
//! let sim = Simulator::start(SimConfig::new("cluster-01").with_nodes([SimNode::new("node-1")])).await?;
//! let namespaces: kube::Api<Namespace> = kube::Api::all(sim.client().await);
//! assert!(namespaces.get("default").await.is_ok());
//! sim.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Layering
//!
//! The modules depend one way only: each uses only modules of the steps before its own
//! (lowest first), and none imports from the crate root, which only re-exports.
//!
//! 1. `resources` (the served types, object keys), `json` (helpers on stored objects),
//!    `protobuf` (protobuf request bodies read into JSON, on k8s-pb's message types),
//!    `faults` (fault injection, request counts, the seeded PRNG), `patch` (patch
//!    bodies, on the `json-patch` crate) and `quantity` (resource quantities) use no
//!    other module.
//! 2. `status` (`Status` failures) uses `resources`; `managed` (field ownership and
//!    server-side apply) uses `json` and `status`; `events_v1` (the `events.k8s.io/v1`
//!    shape of Events) uses `resources`; `selectors` uses `resources` and
//!    `status`; `discovery`, `openapi` (the OpenAPI v3 documents) and `strict` (strict
//!    field validation) use `resources`; `table` uses `json` and `resources`;
//!    `scheduling` (taints, cordons and requests, as the scheduler's filters judge them)
//!    uses `json` and `quantity`; `pod_security` (Pod Security Admission's checks) uses
//!    `json`.
//! 3. `allocations` (uids, name suffixes, IPs, the node-port table) uses `faults` and
//!    `resources`.
//! 4. `services` (Service defaulting, cluster IPs, node ports) uses `allocations`,
//!    `json`, `resources` and `status`.
//! 5. `admission` (validation and defaulting per type) uses `services` and steps 1–3. It
//!    sees the object being written and the allocations, never the store, which is why
//!    the allocations live apart from it; the storage plugins (`DefaultStorageClass`,
//!    `PersistentVolumeClaimResize`) are handed the StorageClasses by `store`.
//! 6. `store` (the objects and the API verbs) uses `admission`, `allocations`, `images`
//!    (it holds the container runtime), `json`, `managed`, `patch`, `resources`,
//!    `scheduling` (what a pod takes of its node, for the node-usage index), `selectors`
//!    and `status`; it admits every write, and keeps, as each write lands, the queues and
//!    indexes the controllers act on (the controllers' informers). `deletion`
//!    (the `DELETE` verb, more methods of `store`'s `State`, which is how `routes` and
//!    the controllers reach it) uses `store`, `json`, `resources` and `status`.
//! 7. `events` (what the components record) uses `store`, `json` and `resources`;
//!    `kubelet` (container pulls, starts, restarts and faults, more methods of `State`)
//!    uses `events`, `faults`, `images`, `json`, `resources` and `store` (and asks
//!    `node_lifecycle` whether its node's kubelet is down);
//!    `termination` (the controllers that finish deletions, more methods of `State`)
//!    uses `deletion`, `events`, `store`, `admission`, `json` and `resources`;
//!    `node_lifecycle` (the node lifecycle and taint-eviction controllers, and a down
//!    kubelet's idleness, more methods of `State`) uses `admission`, `deletion`, `events`,
//!    `store`, `json`, `resources`, `scheduling` and `status`; `eviction` (the
//!    `pods/eviction` subresource) uses `node_lifecycle`, `store`, `resources` and
//!    `status`; `controllers` uses `store` (its reconcile loop is methods of `store`'s
//!    `State`), `admission`, `events`, `faults`, `json`, `kubelet`, `managed`, `resources`,
//!    `scheduling` and `selectors`, and runs `termination`'s and `node_lifecycle`'s
//!    controllers (`termination` asks `node_lifecycle` whether a pod's kubelet is down).
//! 8. `shared` (what a running simulator's tasks share) uses `faults` and `store`.
//! 9. `lists` (GET of a collection: resourceVersion semantics, pages and continue
//!    tokens, the list options' checks) uses `store`, `resources`, `selectors` and
//!    `status`; `watch` uses `events_v1`, `lists`, `shared`, `store`, `resources`,
//!    `selectors` and `status`.
//! 10. `routes` (the HTTP face, and the accept loop that serves it) uses `lists`, `watch`,
//!     `shared`, `store` (and the controllers through `State`), `discovery`, `table`,
//!     `events_v1`, `faults`, `managed`, `protobuf`, `resources`, `selectors` and
//!     `status`.
//! 11. `simulator` uses `routes`, `shared`, `store` (and the controllers through
//!     `State`), `admission`, `faults`, `images`, `managed`, `resources` and `services` (the
//!     default node-port range); `fleet` uses `simulator`.
//!
//! # Deletion
//!
//! A `DELETE` is answered as kube-apiserver 1.33 answers it, and what it starts is
//! finished by the controllers a real cluster runs:
//!
//! - An object with `metadata.finalizers` is kept, with a `deletionTimestamp` and a zero
//!   `deletionGracePeriodSeconds` (the answer is the object, 200; watches see
//!   `MODIFIED`), until an update removes its last finalizer, which deletes it
//!   (`DELETED`). No finalizer may be added to it meanwhile (422).
//! - A pod is deleted over its grace period (the request's `gracePeriodSeconds`, else its
//!   `terminationGracePeriodSeconds`, 30 by default): it stays, `Terminating` in
//!   `kubectl get`, with its `deletionTimestamp` at the end of that period, until the
//!   simulated kubelet is done with it; a pod never scheduled, or finished, goes at once,
//!   and so does one deleted with `gracePeriodSeconds=0` (`kubectl delete --force
//!   --grace-period=0`). A second DELETE changes nothing but may shorten the period.
//! - Every new claim and volume gets its protection finalizer
//!   (`kubernetes.io/pvc-protection`, `kubernetes.io/pv-protection`): a claim being
//!   deleted stays while a scheduled pod names it, a volume while it is `Bound`; a
//!   deleted claim's volume is `Released`, and deleted if its reclaim policy is `Delete`.
//! - A namespace goes `Terminating`; the namespace controller deletes its content (which
//!   may itself wait on finalizers and grace periods), reports what remains in its
//!   conditions, and lets it go once empty. A create in it is 403 Forbidden.
//! - The garbage collector follows `ownerReferences` (StatefulSet and Deployment to their
//!   pods, StatefulSet or pod to the claims its `persistentVolumeClaimRetentionPolicy`
//!   gives them, and any owner a client names): `propagationPolicy` `Background` (the
//!   default) removes the owner at once and its dependents after, `Foreground` keeps the
//!   owner (`foregroundDeletion` finalizer) until its blocking dependents are gone,
//!   `Orphan` (`orphan` finalizer) strips the owner reference from its dependents, which
//!   stay, and which a new workload of the same selector adopts.
//!
//! Grace periods run on the simulator's clock, [`SimConfig::with_time_scale`] times
//! faster than real time (1 by default; the demo fleet's is
//! [`SimFleet::DEMO_TIME_SCALE`], 10); timestamps written into objects stay wall-clock.
//! `kubectl delete` waits for what it deletes to be gone (`--wait=false` does not).
//!
//! # Lists and watches
//!
//! resourceVersions are etcd revisions as a client sees them: large, different per
//! simulator (seeded by its name), increasing, with gaps (every write of the cluster
//! counts). The history of changes behind watches and reads at older versions keeps the
//! last [`SimConfig::with_history`] writes (1000 by default), the stand-in for etcd's
//! compaction: a watch resuming from an older version gets an `ERROR` event with 410
//! `Expired`, a list continued past it a 410 `Expired` with a token to go on, a list at
//! exactly an older version a 410. Watches that allow bookmarks get one about once a
//! simulated minute ([`SimConfig::with_bookmark_interval`] to change it) and one as their
//! `timeoutSeconds` runs out.
//!
//! # Storage
//!
//! Each simulator starts with a default StorageClass ([`SimStorageClass`]: `standard`,
//! provisioner `rancher.io/local-path`, `reclaimPolicy: Delete`, `volumeBindingMode:
//! WaitForFirstConsumer`, `allowVolumeExpansion` false unless
//! [`SimConfig::with_volume_expansion`]; the fleets of [`SimFleet`] allow it, as cloud
//! CSI default classes do), or none
//! ([`SimConfig::without_default_storage_class`]), or one of `Immediate` binding
//! ([`SimConfig::with_immediate_binding`]).
//!
//! - A claim created without `storageClassName` gets the default class's name (the field
//!   absent; `""` means no class); without a default class it stays without one.
//! - The volume controller binds a pending claim to the volume it names (same class,
//!   large enough; else a `VolumeMismatch` event), to a volume pre-bound to it, to the
//!   smallest matching available volume of its class, or to one its class's provisioner
//!   makes. A claim of no class with no matching volume stays `Pending` (`FailedBinding`:
//!   "no persistent volumes available for this claim and no storage class is set"); one
//!   of a missing class too (`ProvisioningFailed`).
//! - A claim of a `WaitForFirstConsumer` class stays `Pending` (`WaitForFirstConsumer`,
//!   or `WaitForPodScheduled` while a pod using it is not scheduled) until the scheduler
//!   places a pod using it: the claim gets `volume.kubernetes.io/selected-node`, the
//!   provisioner makes a volume with node affinity to that node, and the claim binds
//!   before the pod is bound (the scheduler's PreBind). Any other unbound claim keeps its
//!   pod off every node ("pod has unbound immediate PersistentVolumeClaims").
//! - A bound claim's storage request may grow if its class has `allowVolumeExpansion`
//!   (403 otherwise); the volume and the claim's `status.capacity` then take the new
//!   size. It may not shrink to or below `status.capacity` (422).
//! - Each node has a set of directories (`SimNode::with_directory`, and every `hostPath`
//!   of type `DirectoryOrCreate` that a container of a pod placed there mounts: as a
//!   kubelet, the simulator sets up only the volumes some container mounts or maps). A pod whose `local` volume's
//!   path is not one of its node's stays `Pending` with its containers waiting in
//!   `ContainerCreating` and a `FailedMount` event, until the directory exists.
//!
//! # Images and containers
//!
//! Each simulator has a registry ([`SimConfig::images`]): [`DEFAULT_IMAGES`] (the pause
//! image, `busybox`, `nginx`) plus what [`SimConfig::with_images`] adds, or exactly those
//! after [`SimConfig::without_images`]; the demo fleet's hold exactly the images FrameDB
//! deploys, as `framedb-server` passes them ([`SimFleet::demo`]). A running simulator
//! takes more with [`Simulator::push_image`]. References are read as a registry reads
//! them: `busybox` is `docker.io/library/busybox:latest`, `pingcap/pd:v8.5.1` is
//! `docker.io/pingcap/pd:v8.5.1`, a digest must match one pushed.
//!
//! The kubelet on each node pulls a container's image as its `imagePullPolicy` says
//! (admission defaults it: `Always` for `:latest` or no tag, else `IfNotPresent`):
//! `Pulling`, then `Pulled` ("Successfully pulled image ..."), or "already present on
//! machine" where the node has it. An image the registry lacks fails (`Failed`: "Failed
//! to pull image ..." and "Error: ErrImagePull"; the container waits in `ErrImagePull`),
//! then backs off (`BackOff` "Back-off pulling image ...", waiting `ImagePullBackOff`),
//! retried after 10 simulated seconds, doubling up to 5 minutes; once pushed, the next
//! retry pulls it and the pod starts. The pod is `Pending` meanwhile.
//!
//! Container faults ([`ContainerFault`], injected with
//! [`Simulator::inject_container_fault`], lifted with
//! [`Simulator::clear_container_faults`]) name a container, optionally only in one
//! namespace or pods of a name prefix:
//!
//! - [`ContainerFault::crash_loop`]: each run exits with code 1 (`Error`) a simulated
//!   second in (or [`ContainerFault::after`]); the kubelet restarts it at once the first
//!   time, then after a back-off of 10 s doubling to 5 min: the container waits in
//!   `CrashLoopBackOff` ("back-off 10s restarting failed container=X pod=Y_ns(uid)"),
//!   `restartCount` rises, `lastState.terminated` tells the exit, a `BackOff` event says
//!   "Back-off restarting failed container X in pod Y_ns(uid)". Lifted, the next restart
//!   runs.
//! - [`ContainerFault::oom_killed`]: the same with reason `OOMKilled` and exit code 137.
//! - [`ContainerFault::slow_start`]: the container runs, but is started and ready only
//!   after the given simulated time.
//! - [`ContainerFault::completes`]: the container's command finishes a simulated second
//!   in: terminated `Completed` with exit code 0; under `restartPolicy: Never` the pod
//!   `Succeeded` (`OnFailure` does not restart it; `Always` does, with back-off). The
//!   simulator runs no command, so this is how a test says that a one-shot command
//!   (a clean-up, a job) ends; it does nothing else the command would (it removes no
//!   directory of the node).
//!
//! A pod of `restartPolicy: Never` whose container ended is `Failed`. The pod's `Ready`
//! and `ContainersReady` conditions are false while any container is not running and
//! ready; `kubectl get pod` shows the reasons (`ErrImagePull`, `ImagePullBackOff`,
//! `CrashLoopBackOff`, `OOMKilled`, `Error`) and restarts as `printPod` does.
//!
//! # Node lifecycle
//!
//! The simulator has no kubelet heartbeat: a node's `Ready` condition is what it was made
//! with (`True`) or what a client last wrote through `nodes/status` (`kubectl patch node
//! NAME --subresource=status`, or [`Simulator::set_node_ready`]), and it sticks. A
//! client-written `False` stands for a kubelet that posts not-ready, `Unknown` for one
//! that stopped posting; either way the node's kubelet is down (or unhealthy) until a
//! client writes `True` again: it readies no pod and finishes no deletion.
//!
//! - The node lifecycle controller taints the node `node.kubernetes.io/not-ready`
//!   (`False`) or `node.kubernetes.io/unreachable` (`Unknown`) `NoSchedule` at once, and
//!   `NoExecute` on the simulator's clock: for `False` on its next pass
//!   (`--node-monitor-period`, 5 s), for `Unknown` after `--node-monitor-grace-period`
//!   (50 s in 1.33) from the write, when it also sets the kubelet's other conditions
//!   (`MemoryPressure`, `DiskPressure`, `PIDPressure`) `Unknown`. Then it records
//!   `NodeNotReady` on the node (by the kubelet for `False`, by `node-controller` for
//!   `Unknown`) and marks the node's pods not ready (`MarkPodsNotReady`: `Ready=False`, a
//!   `NodeNotReady` warning each; `ContainersReady` stays). Ready again, the node loses
//!   those taints, its kubelet posts its conditions and records `NodeReady`, reports its
//!   running pods ready and finishes the deletions that waited.
//! - `DefaultTolerationSeconds` gives every new pod tolerations of both `NoExecute`
//!   taints for 300 s, unless it already tolerates them.
//! - The taint-eviction controller deletes a pod on a node with `NoExecute` taints at
//!   once if it does not tolerate them all, after the shortest `tolerationSeconds` of the
//!   tolerations used if it does (never, without one), with a `TaintManagerEviction`
//!   event and a `DisruptionTarget` condition; taints gone first cancel the deletion.
//!   This holds for any `NoExecute` taint (`kubectl taint nodes n k=v:NoExecute`).
//! - A pod deleted on a node whose kubelet is down stays `Terminating` (its
//!   `deletionTimestamp` passes, no kubelet confirms), so its StatefulSet makes no
//!   replacement (a Deployment does, as a ReplicaSet does not count terminating pods).
//! - `POST .../pods/NAME/eviction` (a `policy/v1` `Eviction`, listed in discovery as
//!   `pods/eviction`) deletes the pod with the eviction's `deleteOptions` after a
//!   `DisruptionTarget` condition, answering `201` with a `Success` `Status`; so `kubectl
//!   drain` cordons, applies its own checks (no controller: `--force`; DaemonSet pods,
//!   `emptyDir`), evicts, and waits for the pods to go.
//!
//! # Conformance
//!
//! What the simulator plays of a real cluster, the Kubernetes source it follows (paths in
//! kubernetes/kubernetes, 1.33), and the test (in `tests/sim/`) that shows it, with real
//! `kubectl` wherever kubectl can express the step.
//!
//! | behaviour | reference | modelled | test |
//! |---|---|---|---|
//! | server-side apply as structured merge: `metadata.managedFields` per manager and operation (`FieldsV1`: `f:`, `k:{...}`, `v:`, `.`); list-maps merged by their keys (containers, volumes, env by `name`; container ports by `containerPort`+`protocol`; Service ports by `port`+`protocol`; `volumeMounts` by `mountPath`; conditions by `type`; owner references by `uid`), `finalizers` as a set, other lists atomic; a manager's previously applied fields it now omits removed unless another owns them; 409 `Apply failed with N conflict(s): conflict with "m": .path` (`FieldManagerConflict` causes) for another manager's field with a different value, unless `force`; `kubectl apply --server-side` takes over a client-side apply's fields still at their last-applied values; no-op applies write nothing; updates (`fieldManager`, else the user agent's product) take the fields they change; `managedFields` a write sets are kept (`[]` clears) | staging/src/k8s.io/apimachinery/pkg/util/managedfields (`internal/structuredmerge.go`, `lastappliedmanager.go`, `conflict.go`); sigs.k8s.io/structured-merge-diff; the types' `+listType`/`+listMapKeys` | yes (the simulator's own controllers do not record their writes) | `apply::server_side_apply_merges_by_key_tracks_owners_and_refuses_conflicts`; `apply::kubectl_apply_validates_on_the_server_and_configures_what_changed`; unit tests in `managed.rs` |
//! | strategic merge patches (`kubectl apply`, `patch --type=strategic`, `edit`): lists merged by their `patchMergeKey` (containers, volumes, env by `name`, container ports by `containerPort`, Service ports by `port`, ...), `finalizers` united, other lists replaced; `$patch: replace|delete|merge`, `$setElementOrder/`, `$retainKeys`, `$deleteFromPrimitiveList/` obeyed and not stored; `null` deletes | staging/src/k8s.io/apimachinery/pkg/util/strategicpatch (`patch.go`); the types' `patchStrategy`/`patchMergeKey` | yes | `apply::strategic_merge_patches_merge_lists_by_key`; unit tests in `patch.rs` |
//! | finalizers keep a deleted object (`deletionTimestamp`, `deletionGracePeriodSeconds: 0`, 200 with the object, `MODIFIED`); removing the last one deletes it | `Store.Delete`, `markAsDeleting`, `ShouldDeleteDuringUpdate` (staging/src/k8s.io/apiserver/pkg/registry/generic/registry/store.go) | yes | `deletion::a_finalizer_keeps_a_deleted_object_until_the_last_one_is_removed` |
//! | no new finalizer on an object being deleted (422, `ValidateNoNewFinalizers`' sentence) | staging/src/k8s.io/apimachinery/pkg/api/validation/objectmeta.go | yes | same |
//! | a second DELETE of an object being deleted: no change, 200 with the object; only a shorter grace period is taken | `rest.BeforeDelete` (staging/src/k8s.io/apiserver/pkg/registry/rest/delete.go) | yes | same; `deletion::a_pod_terminates_over_its_grace_period_on_the_simulated_clock` |
//! | pods terminate over their grace period (request, else `terminationGracePeriodSeconds`); unscheduled or finished pods and `gracePeriodSeconds=0` go at once; the kubelet's last DELETE | `podStrategy.CheckGracefulDelete` (pkg/registry/core/pod/strategy.go), the kubelet's status manager | yes | `deletion::a_pod_terminates_over_its_grace_period_on_the_simulated_clock` |
//! | the kubelet stops a terminating pod's containers: a `Killing` event each (`Stopping container NAME`), in `kubectl get events` | `killContainer` (pkg/kubelet/kuberuntime/kuberuntime_container.go) | yes | `deletion::a_pod_terminates_over_its_grace_period_on_the_simulated_clock` |
//! | `kubectl get` shows `Terminating` for pods, claims and volumes being deleted | `printPod`, `printPersistentVolumeClaim`, `printPersistentVolume` (pkg/printers/internalversion/printers.go) | yes | the pod, claim and volume tests |
//! | `kubernetes.io/pvc-protection` added at create; kept while a scheduled pod names the claim | plugin/pkg/admission/storage/storageobjectinuseprotection; `podUsesPVC` (pkg/controller/volume/pvcprotection) | yes | `deletion::a_claim_in_use_stays_terminating_until_its_pod_is_gone` |
//! | a pod naming a claim being deleted is unschedulable (`persistentvolumeclaim "x" is being deleted`) | `podHasPVCs` (pkg/scheduler/framework/plugins/volumebinding) | yes | same |
//! | `kubernetes.io/pv-protection` added at create; kept while the volume is `Bound`; a deleted claim's volume is `Released`, and deleted with reclaim policy `Delete` | `isBeingUsed` (pkg/controller/volume/pvprotection); pkg/controller/volume/persistentvolume | yes | `deletion::a_volume_stays_terminating_while_a_claim_is_bound_to_it`; the claim test |
//! | a namespace goes `Terminating` (`kubernetes` in `spec.finalizers`); its content is deleted; its conditions say what remains; it goes once empty; a second DELETE changes nothing | namespace `REST.Delete` (pkg/registry/core/namespace/storage/storage.go); pkg/controller/namespace/deletion (`namespaced_resources_deleter.go`, `status_condition_utils.go`) | yes | `deletion::a_namespace_terminates_once_its_content_is_gone` |
//! | a create in a namespace being deleted is 403 `unable to create new content in namespace X because it is being terminated` (cause `NamespaceTerminating`); `default`, `kube-system`, `kube-public` may not be deleted | staging/src/k8s.io/apiserver/pkg/admission/plugin/namespace/lifecycle/admission.go | yes | same |
//! | `propagationPolicy: Background` (default): the owner goes at once, its dependents after | `deletionFinalizersForGarbageCollection` (store.go); `attemptToDeleteItem` (pkg/controller/garbagecollector/garbagecollector.go) | yes | `deletion::background_deletion_removes_the_owner_first_and_its_dependents_after` |
//! | `Foreground`: `foregroundDeletion` finalizer, dependents deleted, owner kept until those with `blockOwnerDeletion` are gone; the workload makes no pods meanwhile | `processDeletingDependentsItem` (garbagecollector.go) | yes | `deletion::foreground_deletion_keeps_the_owner_until_its_blocking_dependents_are_gone` |
//! | `Orphan` (and `orphanDependents: true`): `orphan` finalizer, owner references removed, dependents kept; a new workload adopts them | `orphanDependents` (garbagecollector.go); `ClaimPods` (pkg/controller/controller_ref_manager.go) | yes | `deletion::orphan_deletion_leaves_the_dependents_running_without_their_owner`; `deployment_pods_follow_replicas_and_template` |
//! | a StatefulSet's claims: kept by default; owned by the set (`whenDeleted: Delete`) or by a scaled-away pod (`whenScaled: Delete`) and collected with it | `updateClaimOwnerRefForSetAndPod`, `PodClaimIsStale` (pkg/controller/statefulset/stateful_set_utils.go, stateful_pod_control.go) | yes | `deletion::statefulset_claims_follow_their_retention_policy` |
//! | `DeleteOptions` checked (422 for an unknown `propagationPolicy`, or with `orphanDependents`); uid and resourceVersion preconditions (409, `BeforeDelete`'s sentence; a namespace's own) | `ValidateDeleteOptions` (staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/validation/validation.go); `rest.BeforeDelete` | yes | `deletion::delete_options_and_preconditions_are_checked` |
//! | grace periods on a scaled clock ([`SimConfig::with_time_scale`]) | (the simulator's own) | yes | `deletion::a_pod_terminates_over_its_grace_period_on_the_simulated_clock` |
//! | StatefulSet spec immutable but for `replicas`, `ordinals`, `template`, `updateStrategy`, `revisionHistoryLimit`, `persistentVolumeClaimRetentionPolicy`, `minReadySeconds`; claim spec; Service `clusterIP` (422, real sentences) | `ValidateStatefulSetUpdate` (pkg/apis/apps/validation), `ValidatePersistentVolumeClaimUpdate`, `ValidateServiceUpdate` (pkg/apis/core/validation) | yes | `immutability::*` |
//! | node ports in the API server's `--service-node-port-range` ([`SimConfig::with_node_port_range`]); outside it 422 `provided port is not in the valid range`; taken: `provided port is already allocated`; random allocation from the dynamic band first | pkg/registry/core/service/portallocator | yes | `node_ports::a_node_port_outside_the_cluster_s_range_is_refused_and_allocation_stays_inside` |
//! | scheduler filters in order: cordon (`node(s) were unschedulable`, unless tolerated), taints (`node(s) had untolerated taint {k: v}`), node selector and required affinity, requests against allocatable (`Insufficient cpu`, `Insufficient memory`, `Too many pods`; sidecars summed, init containers peaked), volume node affinity; the `preemption:` sentence | pkg/scheduler/framework/plugins (`nodeunschedulable`, `tainttoleration`, `nodeaffinity`, `noderesources/fit.go`, `volumebinding`) | yes | `scheduling::taints_refuse_pods_that_do_not_tolerate_them_until_they_go`, `scheduling::requests_beyond_what_a_node_has_left_wait_with_insufficient_memory` |
//! | `core/v1` Events: `FailedScheduling` (once per reason), `Scheduled`, the kubelet's `Pulling`/`Pulled`/`Failed`/`BackOff`/`Created`/`Started`/`Killing`, `SuccessfulCreate`/`FailedCreate`; aggregated by count; field selectors on `involvedObject.*`; `kubectl get events`, `kubectl describe` | staging/src/k8s.io/client-go/tools/record (`events_cache.go`); pkg/registry/core/event; `--event-ttl` (1 h) | yes (at most 5,000 kept) | `events::what_the_scheduler_and_the_controllers_did_is_in_the_events` |
//! | `events.k8s.io/v1` Events: the same stored Events in the newer shape (`regarding`, `note`, `reportingController`, `deprecatedCount`, ...; `eventTime: null` for those recorded through `core/v1`), both ways for get, list, watch, create, update, merge and JSON patches; field selectors by the newer names (`regarding.name`) | pkg/apis/events/v1/conversion.go; pkg/registry/core/event (one storage, both groups) | yes | `events::the_events_api_group_is_a_second_view_of_the_same_events` |
//! | Pod Security Admission by namespace label (`pod-security.kubernetes.io/enforce`: `baseline`, `restricted`), 403 with the plugin's sentence; controllers' pods refused too (`FailedCreate`) | staging/src/k8s.io/pod-security-admission (`policy/check_*.go`, `admission/admission.go`) | enforce mode (no `warn`/`audit`, no AppArmor, SELinux, sysctls, `/proc` mount) | `pod_security::a_namespace_s_enforced_level_refuses_pods_that_break_it` |
//! | OpenAPI v3 index and group documents (operations with their kind and `fieldValidation`), so kubectl validates on the server; `fieldValidation=Strict` refuses unknown fields (`... cannot be handled as a Kind: strict decoding error: unknown field "x"`) | staging/src/k8s.io/cli-runtime/pkg/resource/query_param_verifier_v3.go; apiserver `fieldValidation` | yes (no component schemas, no `/openapi/v2`) | `apply::kubectl_apply_validates_on_the_server_and_configures_what_changed` |
//! | resourceVersions are opaque: large, per-cluster, increasing with gaps (etcd revisions count every write of the cluster) | API concepts, "Resource versions" (docs); staging/src/k8s.io/apiserver/pkg/storage/etcd3 (`APIObjectVersioner`) | yes | `lists::resource_versions_are_opaque_gapped_and_differ_per_simulator` |
//! | list `resourceVersion`: unset the latest, `0` any (the watch cache, whole in 1.33 whatever the `limit`), `N` not older than N (504 `Timeout` "Too large resource version: N, current: C" when not reached); `resourceVersionMatch=Exact` (and a `limit`ed list at `N` without a match, etcd's legacy case) at exactly N, 410 `Expired` "The resourceVersion for the provided list is too old." once compacted | API concepts, "Semantics for get and list"; `GetList` (staging/src/k8s.io/apiserver/pkg/storage/etcd3/store.go), `shouldDelegateList` (pkg/storage/cacher) | yes | `lists::list_resource_version_semantics_and_validation` |
//! | `ValidateListOptions`' 422s (`ListOptions.meta.k8s.io "" is invalid: ...`) for lists and watches | staging/src/k8s.io/apimachinery/pkg/apis/meta/internalversion/validation/validation.go | yes | same; `lists::watch_list_is_refused_as_by_a_1_33_server` |
//! | `limit` and `continue`: pages in key order; the token (unpadded URL-safe base64 of `{"v","rv","start"}`) serves every page at the first page's version; `remainingItemCount` without selectors; a malformed token is 400 `invalid continue token` | API concepts, "Retrieving large results sets in chunks"; `storage.EncodeContinue` / `DecodeContinue` (staging/src/k8s.io/apiserver/pkg/storage/continue.go) | yes | `lists::kubectl_pages_a_list_and_a_continued_list_is_consistent_at_its_first_page` (`kubectl get --chunk-size=2`, `--raw` with tokens) |
//! | a continue token past compaction: 410 `Expired` with `handleCompactedErrorForPaging`'s sentence and a fresh token (version -1: the latest) in the `Status`'s `metadata.continue` | `handleCompactedErrorForPaging` (etcd3/store.go) | yes | `lists::a_continue_token_past_compaction_is_expired_with_a_token_to_go_on` |
//! | a watch from a compacted version: 200 stream with one `ERROR` event, 410 `Expired` "too old resource version: X (Y)"; kube-runtime's watcher relists | `watchCache.getAllEventsSinceLocked` (pkg/storage/cacher/watch_cache.go), `newErrWatcher` | yes | `lists::a_watch_from_a_compacted_version_gets_410_expired`; `lists::kube_runtime_s_watcher_relists_after_a_410` |
//! | bookmarks (`allowWatchBookmarks`) at the server's discretion: about once a minute, and as the watch's timeout runs out; `timeoutSeconds` ends the stream | API concepts, "Watch bookmarks"; `bookmarkFrequency`, `cacheWatcher.nextBookmarkTime` (pkg/storage/cacher) | yes | `lists::bookmarks_come_at_the_server_s_discretion_and_timeouts_end_watches`; `lists::kubectl_watches_with_output_watch_events` |
//! | `sendInitialEvents` (watch-list): the WatchList gate is off by default in 1.33, so 422 "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled"; neither kubectl nor kube-runtime's default watcher asks for it | `validateWatchOptions` (validation.go); pkg/features/kube_features.go | refused, as a default 1.33 server | `lists::watch_list_is_refused_as_by_a_1_33_server` |
//! | StorageClasses served (`storage.k8s.io/v1`, `sc`), a default class marked `storageclass.kubernetes.io/is-default-class`, `kubectl get sc` with `(default)`; `provisioner` required, `reclaimPolicy`/`volumeBindingMode` defaulted, and with `parameters` fixed once created | `printStorageClass` (pkg/printers/internalversion/printers.go); `ValidateStorageClass`, `ValidateStorageClassUpdate` (pkg/apis/storage/validation/validation.go); pkg/apis/storage/v1/defaults.go | yes | `storage::the_default_storage_class_is_served_and_marked` |
//! | a claim without `storageClassName` gets the default class at create; none without a default class | plugin/pkg/admission/storage/storageclass/setdefault (`DefaultStorageClass`) | yes | `storage::a_claim_waits_for_its_first_consumer_and_binds_on_its_node`; `storage::without_a_default_class_a_claim_stays_pending_and_its_pod_unschedulable` |
//! | `WaitForFirstConsumer`: the claim stays `Pending` (`WaitForFirstConsumer` / `WaitForPodScheduled` events) until a pod using it is scheduled; `volume.kubernetes.io/selected-node`; the volume provisioned with node affinity to that node; the claim bound before the pod | `emitEventForUnboundDelayBindingClaim`, `syncUnboundClaim` (pkg/controller/volume/persistentvolume/pv_controller.go); pkg/scheduler/framework/plugins/volumebinding (`binder.go`) | yes | `storage::a_claim_waits_for_its_first_consumer_and_binds_on_its_node`; `storage::a_claim_of_an_unscheduled_pod_says_it_waits_for_that_pod` |
//! | `Immediate` binding: bound (matching volume, else provisioned) at once; a missing class is `ProvisioningFailed` (`storageclass.storage.k8s.io "x" not found`) | `syncUnboundClaim`, `provisionClaimOperation` (pv_controller.go) | yes | `storage::an_immediate_class_binds_claims_at_once_and_a_missing_class_is_told`; `claims_bind_to_provisioned_or_named_volumes` |
//! | no class and no matching volume: `Pending`, `FailedBinding` "no persistent volumes available for this claim and no storage class is set"; its pod unschedulable ("pod has unbound immediate PersistentVolumeClaims"); a matching class-less volume made later binds it | `syncUnboundClaim`, `FindMatchingVolume` (pkg/controller/volume/persistentvolume); volumebinding `PreFilter` | yes | `storage::without_a_default_class_a_claim_stays_pending_and_its_pod_unschedulable` |
//! | a claim naming a volume of another class is not bound (`VolumeMismatch`: `Cannot bind to requested volume "x": storageClassName does not match`) | `checkVolumeSatisfyClaim` (pv_controller.go) | yes | `deletion::a_volume_stays_terminating_while_a_claim_is_bound_to_it` (its fixture names `""`) |
//! | expansion: a bound claim's request grows only if its class has `allowVolumeExpansion` (403 `only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize`); an unbound claim's spec is immutable (422); shrinking to or below `status.capacity` is 422 `field can not be less than status.capacity` (`RecoverVolumeExpansionFailure`, on by default in 1.33); the volume and `status.capacity` take the new size | plugin/pkg/admission/storage/persistentvolume/resize; `ValidatePersistentVolumeClaimUpdate` (pkg/apis/core/validation/validation.go) | yes | `storage::a_bound_claim_grows_only_if_its_class_allows_expansion`; `storage::a_class_without_expansion_refuses_a_bigger_claim`; `storage::a_claim_of_a_static_volume_cannot_grow` |
//! | a `local` volume whose path does not exist on its node: the pod stays `Pending`, containers waiting `ContainerCreating` (shown by `kubectl get pod`), `FailedMount` `MountVolume.NewMounter initialization failed for volume "X" : path "/p" does not exist`; retried until the directory exists (`hostPath` `DirectoryOrCreate` of a pod on the node, or of a PersistentVolume a pod there mounts, or [`SimNode::with_directory`]) | pkg/volume/local (`NewMounter`); pkg/kubelet/volumemanager; `printPod` | yes | `storage::a_local_volume_without_its_directory_leaves_the_pod_container_creating`; `storage::a_local_volume_on_a_prepared_node_mounts_at_once` |
//! | the kubelet sets up only the volumes a container (init, regular or ephemeral) mounts or maps: a declared volume no container uses is skipped (no `hostPath` directory made, no `local` path checked) | `processPodVolumes` ("Skipping unused volume", pkg/kubelet/volumemanager/populator/desired_state_of_world_populator.go); `GetPodVolumeNames` (pkg/volume/util/util.go) | yes | `storage::a_local_volume_without_its_directory_leaves_the_pod_container_creating` |
//! | a registry per cluster ([`SimConfig::with_images`], [`Simulator::push_image`]); references normalised as a registry does (`busybox` = `docker.io/library/busybox:latest`; digests) | `docker.ParseDockerRef` (github.com/distribution/reference `normalize.go`); `applyDefaultImageTag` (pkg/kubelet/images/image_manager.go) | yes | `images::references_resolve_as_a_registry_reads_them_and_pull_policies_hold` |
//! | pulls by `imagePullPolicy` (`Always` pulls each time, `IfNotPresent` finds it on the node, `Never` is `ErrImageNeverPull`): `Pulling`, `Pulled` ("Successfully pulled image \"X\" in D (D including waiting). Image size: N bytes." / "Container image \"X\" already present on machine") | `EnsureImageExists` (pkg/kubelet/images/image_manager.go) | yes | same |
//! | a missing image: `Failed` "Failed to pull image \"X\": rpc error: code = NotFound desc = ..." and "Error: ErrImagePull"; waiting `ErrImagePull`, then `ImagePullBackOff` ("Back-off pulling image \"X\": ErrImagePull: ...") with `BackOff` (Normal) and "Error: ImagePullBackOff"; retried after 10 s doubling to 5 min; pulled once pushed; the pod `Pending` | `EnsureImageExists`, `evalCRIPullErr` (image_manager.go); `startContainer` (pkg/kubelet/kuberuntime/kuberuntime_container.go); `getPhase` (pkg/kubelet/kubelet_pods.go) | yes | `images::an_image_the_registry_lacks_backs_off_until_it_is_pushed` (`kubectl run`, `get pod`, `get events`, `describe pod`) |
//! | a crashing container ([`ContainerFault::crash_loop`]): terminated `Error` (1), restarted at once, then `CrashLoopBackOff` "back-off 10s restarting failed container=X pod=Y_ns(uid)", 10 s doubling to 5 min, `BackOff` "Back-off restarting failed container X in pod Y_ns(uid)"; `restartCount`, `lastState.terminated`; `Ready`/`ContainersReady` false; lifted, it runs | `doBackOff` (kuberuntime_manager.go); `flowcontrol.Backoff` (client-go/util/flowcontrol/backoff.go); `MaxContainerBackOff` (pkg/kubelet/kubelet.go) | yes | `images::a_crashing_container_backs_off_in_crash_loop_and_recovers_once_cleared` |
//! | `OOMKilled` (137), restarted with back-off, or the pod `Failed` under `restartPolicy: Never` | `getPhase` (kubelet_pods.go) | yes | `images::an_oom_killed_container_is_shown_and_restarted_with_back_off` |
//! | a finished command ([`ContainerFault::completes`]): terminated `Completed` (0), not restarted under `restartPolicy: Never` (the pod `Succeeded`, `Ready` false with `PodCompleted`) or `OnFailure`, restarted with back-off under `Always` (the pod stays `Running`) | `ShouldContainerBeRestarted` (pkg/kubelet/container/helpers.go); `getPhase` (kubelet_pods.go) | as an injected end, no command runs (its effects, such as files removed, are not played) | `images::a_completing_container_of_a_never_restarted_pod_succeeds` |
//! | a slow start: running, `started: false`, not ready until it has started | `prober` results (pkg/kubelet/prober) | as a delay, no probes run | `images::a_slow_container_runs_unready_until_it_has_started` (`kubectl wait --for=condition=Ready`) |
//! | probes: a container with a `startupProbe` is `started` [`SimConfig::with_pod_ready_after`] after it starts, one with a `readinessProbe` `ready` then (not before it has started); without them it is started and ready once it runs | `prober` manager and `results` (pkg/kubelet/prober); `started` defaulting (pkg/kubelet/kuberuntime/kuberuntime_container.go) | the answer of the program is a delay: no probe is run, none fails, liveness never kills | `sidecars::sidecars_start_in_order_and_the_pod_is_ready_once_all_are`; `statefulset_pods_are_scheduled_by_node_selector_and_become_ready_after_the_delay` |
//! | init containers, one at a time in order: a plain one runs to completion (`Completed`, exit 0) before the next; a native sidecar (`restartPolicy: Always`) lets the next start once it has started and runs on, restarted whatever the pod's policy; containers wait `PodInitializing` until all are done; a plain one that fails under `restartPolicy: Never` fails the pod (`Init:Error`); `Initialized` false ("containers with incomplete status: [..]") and phase `Pending` meanwhile; a sidecar's readiness counts in `Ready`; `initContainerStatuses`; sidecars stopped after the containers | `computeInitContainerActions` (pkg/kubelet/kuberuntime/kuberuntime_container.go); `GeneratePodInitializedCondition`, `GenerateContainersReadyCondition` (pkg/kubelet/status/generate.go); `getPhase`; KEP-753 | a plain init container's command is not run: it completes at once unless a fault makes it fail | `sidecars::*` (`kubectl get pod`: `Init:0/2`, `Init:CrashLoopBackOff`, READY counting sidecars) |
//! | `kubectl get pod` STATUS: the first container's waiting or terminated reason (`ExitCode:N`, `Signal:N` without one), `Completed` with a running one as `Running`/`NotReady`, `Terminating`; `Init:N/M`, `Init:REASON` while init containers run, sidecars counted in READY once started; RESTARTS summed, "N (AGE ago)" | `printPod` (pkg/printers/internalversion/printers.go) | yes | the `images::*` tests |
//! | protobuf request bodies (`k8s\0` magic, `runtime.Unknown` envelope, the kind's message), as kubectl's typed clients send them (`kubectl create namespace|configmap|secret|deployment|service|role|rolebinding`, `drain`'s evictions); plain fields' zero values read as absent (Go's `omitempty`), so defaulting applies; fields newer than 1.33 skipped | staging/src/k8s.io/apimachinery/pkg/runtime/serializer/protobuf/protobuf.go; API concepts, "Protobuf encoding" (docs) | yes, for every served kind | `protobuf::kubectl_create_s_protobuf_bodies_are_read_and_defaulted`; unit tests in `protobuf.rs` |
//! | defaulting field by field (`SetDefaults_Deployment` strategy, `SetDefaults_StatefulSet` update strategy and claim retention, container port `protocol: TCP`, Secret `type: Opaque`); a Secret's `data` read as Go reads `[]byte` (`base64.StdEncoding`: line breaks, as kustomize's generators wrap values, skipped) and served unbroken | pkg/apis/apps/v1/defaults.go, pkg/apis/core/v1/defaults.go; encoding/base64 | yes (the defaults FrameDB and kubectl's generators meet) | same |
//! | a node's `Ready` written through `nodes/status` (GET/PUT/PATCH, merge and strategic merge, which merges `conditions` by `type`) sticks, the spec untouched; `kubectl get nodes` shows `NotReady`; the kubelet's other conditions (`MemoryPressure`, `DiskPressure`, `PIDPressure`) are posted | pkg/registry/core/node (status strategy); `NodeStatus.Conditions` `patchMergeKey:"type"` (staging/src/k8s.io/api/core/v1/types.go); `printNode`; pkg/kubelet/nodestatus/setters.go | yes (no heartbeat: see [Node lifecycle](#node-lifecycle)) | `nodes::the_node_status_subresource_reads_and_writes_only_the_status` (`kubectl get`/`replace --subresource=status`), `nodes::an_unreachable_node_s_pods_stay_terminating_until_it_is_back`, `nodes::taints_evict_what_does_not_tolerate_them_and_a_not_ready_node_is_tainted` |
//! | node lifecycle controller: `not-ready` / `unreachable` `NoSchedule` taint at once (new pods unschedulable: `untolerated taint`); after `--node-monitor-period` (`False`) or `--node-monitor-grace-period` 50 s (`Unknown`: the other conditions `Unknown`, `NodeStatusUnknown`) the `NoExecute` taint (with `timeAdded`, swapped between the two), `NodeNotReady` on the node, `MarkPodsNotReady` (`Ready=False`, `NodeNotReady` "Node is not ready" on each pod); taints removed once ready | `doNoScheduleTaintingPass`, `monitorNodeHealth`, `processTaintBaseEviction`, `tryUpdateNodeHealth` (pkg/controller/nodelifecycle/node_lifecycle_controller.go); `MarkPodsNotReady`, `RecordNodeStatusChange`, `SwapNodeControllerTaint` (pkg/controller/util/node/controller_utils.go) | yes (no zones, rate limits or leases) | `nodes::an_unreachable_node_s_pods_stay_terminating_until_it_is_back` (also `kubectl describe node`), `nodes::taints_evict_what_does_not_tolerate_them_and_a_not_ready_node_is_tainted`, `nodes::a_not_ready_node_refuses_new_pods_at_once` |
//! | `DefaultTolerationSeconds`: `not-ready` and `unreachable` `NoExecute` tolerations, 300 s, unless tolerated already | plugin/pkg/admission/defaulttolerationseconds/admission.go | yes | `nodes::an_unreachable_node_s_pods_stay_terminating_until_it_is_back` |
//! | taint eviction: untolerated `NoExecute` taint → deleted at once; tolerated → after the least `tolerationSeconds`; forever without; `TaintManagerEviction` "Marking for deletion Pod ns/name" / "Cancelling deletion of Pod ns/name"; `DisruptionTarget` (`DeletionByTaintManager`) | `processPodOnNode`, `getMinTolerationTime`, `addConditionAndDeletePod` (pkg/controller/tainteviction/taint_eviction.go) | yes | `nodes::taints_evict_what_does_not_tolerate_them_and_a_not_ready_node_is_tainted`, `nodes::an_unreachable_node_s_pods_stay_terminating_until_it_is_back` |
//! | a pod deleted on a node that is down stays `Terminating` (until the node is back, or `kubectl delete --force --grace-period=0`); its StatefulSet makes no replacement, a Deployment does (elsewhere); the kubelet back finishes it and the set makes the pod again | the kubelet's status manager (a pod goes on its last DELETE); the StatefulSet controller's `isTerminating` wait (pkg/controller/statefulset/stateful_set_control.go); `FilterActivePods` (pkg/controller/controller_utils.go) | yes | `nodes::an_unreachable_node_s_pods_stay_terminating_until_it_is_back`, `nodes::a_deployment_replaces_its_evicted_pod_elsewhere_and_a_stuck_pod_can_be_forced` |
//! | `pods/eviction`: policy/v1 `Eviction` → `DisruptionTarget` (`EvictionByEvictionAPI`), delete with its `deleteOptions`, 201 `Success`; name mismatch 400; missing pod 404; in discovery (`CheckEvictionSupport`) | `EvictionREST.Create` (pkg/registry/core/pod/storage/eviction.go); staging/src/k8s.io/kubectl/pkg/drain | yes (no PodDisruptionBudgets, so never 429) | `nodes::the_eviction_subresource_deletes_its_pod_gracefully` (kube-rs `evict`, `kubectl create --raw`) |
//! | `policy/v1` PodDisruptionBudgets (`pdb`): at most one of `minAvailable`/`maxUnavailable` (422 "minAvailable and maxUnavailable cannot be both set"), each a non-negative integer or a percentage up to 100%, a valid selector and `unhealthyPodEvictionPolicy`; a new budget's status the zeros; `kubectl get pdb` columns (MIN AVAILABLE, MAX UNAVAILABLE, ALLOWED DISRUPTIONS) | `ValidatePodDisruptionBudgetSpec` (pkg/apis/policy/validation/validation.go); pkg/registry/policy/poddisruptionbudget/strategy.go; `printPodDisruptionBudget` | stored and validated: no disruption controller (status stays zeros), evictions do not consult budgets | `apply::pod_disruption_budgets_are_validated_stored_and_listed` (`kubectl create pdb`, protobuf; `kubectl apply`) |
//! | `kubectl cordon` / `uncordon` (`Ready,SchedulingDisabled`), `kubectl drain` (cordon, `--force` for pods without a controller, evictions, waits for the pods to go) | staging/src/k8s.io/kubectl/pkg/drain (`cordon.go`, `filters.go`, `drain.go`); `printNode` | yes | `nodes::cordon_and_uncordon_show_in_kubectl_get_nodes`, `nodes::kubectl_drain_cordons_and_evicts_a_node_s_pods` |
//!
//! Knowingly not modelled:
//!
//! - Protobuf and CBOR *answers* (every answer is JSON, which kubectl and client-go accept
//!   as they list it in `Accept`), CBOR and YAML request bodies (415), and protobuf
//!   watch streams. A pointer field set to its zero value in a protobuf body reads as
//!   unset unless it is one of the pointer fields `protobuf.rs` lists (`replicas`,
//!   `runAsUser`, `storageClassName`, ...): the wire does not tell pointers from plain
//!   fields.
//! - Server-side apply: maps and structs the types mark atomic (label selectors, a
//!   Service's `selector`, `nodeSelector`, object references) merge key by key; an
//!   element missing its key fields is appended rather than refused; `fieldManager` may
//!   be left out of an apply (the user agent names the manager); apply to `/status` is a
//!   merge; fields an update removes stay in its manager's set.
//! - A protobuf body is decoded whole into k8s-pb's types before it is checked: a body of
//!   many empty repeated messages costs far more memory than its bytes (the simulator
//!   serves loopback only).
//! - `/openapi/v2` (kubectl asks for it as a protobuf-encoded gnostic document to validate
//!   a `v1 List` on the client: `kubectl create -f` of a List needs `--validate=false`), and
//!   the OpenAPI v3 component schemas (`kubectl explain` says the kind is not in the
//!   schema).
//! - Events beyond 5,000 per cluster (the oldest go first).
//! - Images and containers: pulls are instant and never fail but for a missing image
//!   (no registry outages, auth, rate limits, `InvalidImageName`, image garbage
//!   collection); no probe is run (see the probes row), no lifecycle hooks or resource-limit
//!   enforcement (a container is OOMKilled only when told); container events carry no
//!   `fieldPath`; a container's first start and its back-offs are decided when the
//!   kubelet next looks, a simulated second after a change (the PLEG's relist); a
//!   `BackOff` event is told once per wait (a real kubelet re-tells it on each sync
//!   during the wait, so its count grows faster).
//! - Node lifecycle: no kubelet heartbeat or node leases (a node's `Ready` is what a
//!   client wrote, and a not-ready kubelet is taken as down: it neither readies nor stops
//!   pods); a pod that tolerates the `NoSchedule` taint and is scheduled onto such a node
//!   shows its containers started (never ready), where a down kubelet would leave it
//!   `Pending`; no zones, eviction rate limits or `node.kubernetes.io/exclude-disruption`;
//!   the pod garbage collector does not force-delete pods of deleted nodes or of nodes
//!   tainted `node.kubernetes.io/out-of-service`; PodDisruptionBudgets are validated and
//!   stored, but no disruption controller computes their status (it stays at a new
//!   budget's zeros) and evictions do not consult them (never `429`).
//! - A DELETE answers with the object for every type (a real server answers a `Status`
//!   when an object without `ReturnDeletedObject` storage, e.g. a ConfigMap, goes at once).
//! - A pod always takes its whole grace period (real containers often exit sooner on
//!   SIGTERM), and is removed without first showing stopped containers and a terminal
//!   phase.
//! - The namespace `/finalize` subresource is not served; the namespace controller always
//!   finishes, so no `NamespaceDeletionContentFailure` is ever reported.
//! - Finalizer names are not validated, and an owner of an unknown kind counts as
//!   present; the `OwnerReferencesPermissionEnforcement` admission plugin is not played.
//! - Deployments own their pods directly (no ReplicaSets in between); propagation
//!   policies act on those pods.
//! - A StatefulSet replaces pods of an old revision all at once (a real one rolls them
//!   one at a time, from the highest ordinal).
//! - Compaction is count-based (the last N writes), not etcd's 5-minute timer; one
//!   history serves watches and lists (a real server's watch cache keeps its own, per
//!   resource, window, so a watch may be 410 while a list at the same version is not).
//! - A read at a version not yet reached is 504 at once (the watch cache waits up to 3
//!   seconds for it first); a watch from such a version waits for it silently.
//! - Watch-list (`sendInitialEvents=true`, the initial-events-end bookmark) is not
//!   served, as by a 1.33 server with its default gates; `resourceVersion=0` lists are
//!   whole (no pagination from the watch cache, which 1.34 adds).
//! - Bookmarks are sent on their period even to a watch that just got events (the watch
//!   cache skips those whose version did not move on), and carry the version of the
//!   last change of any resource.
//! - Storage: provisioning, binding and expansion are instant (no `ExternalProvisioning`
//!   wait, no `Resizing` / `FileSystemResizeRequired` steps or conditions, no
//!   `allocatedResourceStatuses`); the provisioner serves every node, so a delayed claim
//!   never narrows where its pod may go, and the scheduler does not pick pre-made
//!   volumes for delayed claims (a `WaitForFirstConsumer` claim is always provisioned); a
//!   StorageClass's `allowedTopologies`, `mountOptions` and `parameters` are stored, not
//!   acted on; a missing StorageClass for a pod's claim reads as an unbound immediate
//!   claim to the scheduler (the real one fails its PreFilter with the lookup error);
//!   `volumeAttributesClassName` is not validated; `hostPath` types other than
//!   `DirectoryOrCreate` are not checked, and a node's directories are never removed (no
//!   command a container runs is played).
//!   Claims left without a class are not given a default class made later
//!   (`RetroactiveDefaultStorageClass`); the binder tells what keeps a claim pending once
//!   (a real one re-tells it, counted, on each resync).

mod admission;
mod allocations;
mod controllers;
mod deletion;
mod discovery;
mod events;
mod events_v1;
mod eviction;
mod faults;
mod fleet;
mod images;
mod json;
mod kubelet;
mod lists;
mod managed;
mod node_lifecycle;
mod openapi;
mod patch;
mod pod_security;
mod protobuf;
mod quantity;
mod resources;
mod routes;
mod scheduling;
mod selectors;
mod services;
mod shared;
mod simulator;
mod status;
mod store;
mod strict;
mod table;
mod termination;
mod watch;

pub use faults::{DropWhen, Faults, Injected, RequestStats, Verb};
pub use fleet::{DEMO_CLUSTERS, DEMO_NODES, SimFleet};
pub use images::{ContainerFault, ContainerFaultKind, DEFAULT_IMAGES};
pub use services::{NODE_PORT_MAX, NODE_PORT_MIN};
pub use simulator::{NodeReadiness, SimConfig, SimNode, SimStorageClass, Simulator};
