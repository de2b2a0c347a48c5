//! Whose an object is. Every object of an instance carries the stamp of the create that
//! made it (`objects::annotations::STAMP`); this module creates objects so that none is
//! taken over, and removes an instance's objects so that none of another create's goes.
//!
//! A create POSTs each object: an object of that name that exists already is completed
//! only if it carries the create's own stamp (a retried deploy), taken back only if it is
//! a volume (or its credentials) retained for the same id on the same node, and refused
//! otherwise, with nothing changed. An object of that name that is being deleted (a
//! claim kept by `kubernetes.io/pvc-protection` while the pod of an instance deleted a
//! moment ago terminates) is never taken, whatever its stamp: the create waits a while
//! for it to go and makes its own, or is refused saying what it waits for. A removal
//! reads each object and deletes it only if it carries the removal's stamp, with the
//! object's uid as a precondition, so that an object re-made meanwhile is left alone; one
//! already being deleted is left to finish.

use std::fmt::Debug;
use std::time::Duration;

use framedb_core::{DeploymentSpec, Removal, Stamp};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::apply::{FIELD_MANAGER, server_side_apply};
use crate::error::{Error, Result, is_already_exists, is_conflict, is_not_found};
use crate::objects::{RETAINED, annotations};

/// How long a create waits, by default, for an object of its name that is being deleted
/// to go: a pod's grace period is 30 seconds unless it says otherwise, and a claim it
/// used goes when it does; the wait stays within a local service's call timeout.
pub const DELETION_WAIT: Duration = Duration::from_secs(20);

/// How many times a write guarded by the object's resourceVersion is tried, each time on
/// the object read again: the cluster's controllers update volumes (binding, protection)
/// and a concurrent removal of the same instance (a reconcile pass, a repeated delete)
/// may write first. A conflict is a reason to look again, not a failure.
const CONFLICT_ATTEMPTS: usize = 4;

/// What [`create_owned`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taken {
    /// The object is new.
    Created,
    /// The object was this create's already (a retried deploy): it is applied again.
    Completed,
    /// A retained object of this id was taken back.
    Reattached,
}

/// Whether an object may be taken back from retention: only volumes and their
/// credentials may, for the same id on the same node with the same size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reclaim {
    /// Never (workloads, Services, policies).
    Never,
    /// When it is retained for this spec's node and size.
    Retained,
}

pub(crate) fn stamp_of(meta: &kube::api::ObjectMeta) -> &str {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(annotations::STAMP))
        .map_or("", String::as_str)
}

fn annotation<'a>(meta: &'a kube::api::ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

fn is_retained(meta: &kube::api::ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(RETAINED))
        .is_some_and(|v| v == "true")
}

/// `Kind namespace/name` (or `Kind name` for cluster-scoped objects).
fn shown<K>(object: &K) -> String
where
    K: Resource,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    match object.meta().namespace.as_deref() {
        Some(namespace) => format!("{kind} {namespace}/{}", object.name_any()),
        None => format!("{kind} {}", object.name_any()),
    }
}

/// Creates `object` (which carries `spec`'s stamp), as the module docs say: what it
/// did, and the object as the API server answered the create or the apply.
///
/// # Errors
/// [`Error::Foreign`] when an object of its name exists that this create may not take;
/// [`Error::Kube`] when the cluster refuses or cannot be reached (a 422 or 404 comes back
/// as the driver's error, for the caller to tell a taken port or a missing namespace).
pub(crate) async fn create_owned<K>(
    api: &Api<K>,
    object: &K,
    spec: &DeploymentSpec,
    reclaim: Reclaim,
    wait: Duration,
) -> Result<(Taken, K), CreateError>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    let existing = match create_or_existing(api, object, spec, wait).await? {
        Posted::Created(created) => return Ok((Taken::Created, created)),
        Posted::Found(existing) => existing,
    };
    let taken = claim_existing(api, &existing, spec, reclaim)
        .await
        .map_err(CreateError::Other)?;
    let applied = server_side_apply(api, object)
        .await
        .map_err(CreateError::Refused)?;
    Ok((taken, applied))
}

/// What [`create_or_existing`]'s POST met, each as the API server answered it.
#[derive(Debug)]
pub(crate) enum Posted<K> {
    /// The object, created.
    Created(K),
    /// The object of its name that was there already (not being deleted).
    Found(K),
}

/// POSTs `object`: the object created, or the object of its name that was there. An
/// object of its name that is being deleted is never the answer: the create waits up to
/// `wait` for it to go (polling, from 50 ms apart up to a second) and POSTs again.
///
/// # Errors
/// [`CreateError::Refused`] when the API server refuses the POST for another reason;
/// [`CreateError::Other`] with [`Error::Foreign`] when the object being deleted is still
/// there after `wait`, or with [`Error::Kube`] when reading it fails.
pub(crate) async fn create_or_existing<K>(
    api: &Api<K>,
    object: &K,
    spec: &DeploymentSpec,
    wait: Duration,
) -> Result<Posted<K>, CreateError>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    let cluster = spec.cluster_id.as_str();
    let name = object.name_any();
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    let deadline = tokio::time::Instant::now() + wait;
    let mut pause = Duration::from_millis(50);
    loop {
        match api.create(&params, object).await {
            Ok(created) => return Ok(Posted::Created(created)),
            Err(error) if is_already_exists(&error) => {}
            Err(error) => return Err(CreateError::Refused(error)),
        }
        let existing = api
            .get_opt(&name)
            .await
            .map_err(|error| CreateError::Other(reading::<K>(cluster, &name, error)))?;
        match existing {
            Some(existing) if existing.meta().deletion_timestamp.is_none() => {
                return Ok(Posted::Found(existing));
            }
            Some(existing) if tokio::time::Instant::now() >= deadline => {
                return Err(CreateError::Other(still_deleting(spec, &existing, wait)));
            }
            // Going, or gone since the POST: try again after a while, or at once.
            Some(_) => {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                tokio::time::sleep(pause.min(left)).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            None => {}
        }
    }
}

/// The refusal of a create that waited `wait` for an object of its name to finish being
/// deleted: what holds it, and that the create can simply be made again.
fn still_deleting<K>(spec: &DeploymentSpec, object: &K, wait: Duration) -> Error
where
    K: Resource,
    K::DynamicType: Default,
{
    let held = object.meta().finalizers.clone().unwrap_or_default();
    let holding = if held.is_empty() {
        String::new()
    } else {
        format!(", held by its finalizers {}", held.join(", "))
    };
    foreign(
        spec,
        object,
        &format!(
            "is still being deleted (Terminating{holding}) {} s after this create met it, \
             most likely by the deletion of an earlier instance of this id; FrameDB never \
             takes over an object being deleted: retry the create once it is gone",
            wait.as_secs()
        ),
    )
}

/// What a create may do with `existing`, an object of the name it wanted: complete it if
/// it carries the create's stamp; take it back (under `reclaim`) if it is retained for
/// the same id, node and size; refuse otherwise.
///
/// # Errors
/// [`Error::Foreign`] when it is another's; [`Error::Kube`] when taking it back fails.
pub(crate) async fn claim_existing<K>(
    api: &Api<K>,
    existing: &K,
    spec: &DeploymentSpec,
    reclaim: Reclaim,
) -> Result<Taken>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    let meta = existing.meta();
    if stamp_of(meta) == spec.stamp.as_str() && !is_retained(meta) {
        return Ok(Taken::Completed);
    }
    if reclaim == Reclaim::Retained && is_retained(meta) {
        check_retained(existing, spec)?;
        take_back(api, existing, spec).await?;
        return Ok(Taken::Reattached);
    }
    Err(foreign(
        spec,
        existing,
        "exists and was not made by this create",
    ))
}

/// A create's refusal: the driver's answer to the create itself, or anything else.
#[derive(Debug)]
pub(crate) enum CreateError {
    /// The API server refused or failed the write (the caller reads its code).
    Refused(kube::Error),
    /// The object is another's, or reading it failed.
    Other(Error),
}

fn reading<K>(cluster: &str, name: &str, error: kube::Error) -> Error
where
    K: Resource,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    Error::kube(cluster, format!("reading {kind} {name}"), error)
}

fn foreign<K>(spec: &DeploymentSpec, object: &K, why: &str) -> Error
where
    K: Resource,
    K::DynamicType: Default,
{
    let object = shown(object);
    Error::Foreign {
        cluster: spec.cluster_id.clone(),
        sentence: format!(
            "{object} on cluster '{}' {why}; FrameDB takes over no object it did not make \
             (delete it, or use another framedb_id)",
            spec.cluster_id
        ),
        object,
    }
}

/// A retained volume comes back only to its node, at its size.
fn check_retained<K>(existing: &K, spec: &DeploymentSpec) -> Result<()>
where
    K: Resource,
    K::DynamicType: Default,
{
    let meta = existing.meta();
    let node = annotation(meta, annotations::NODE).unwrap_or_default();
    let size = annotation(meta, annotations::STORAGE_SIZE).unwrap_or_default();
    // The size is the volume's, so it is the claim's (and its PV's) to tell, in bytes
    // (`2048Mi` is `2Gi`): a Secret's may be behind the claim's when a PATCH that grew
    // the volume stopped before writing it, and must not lock the volume out.
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let size_matches = kind == "Secret"
        || framedb_core::StorageSize::new(size)
            .is_ok_and(|size| size.bytes() == spec.storage_size.bytes());
    if node != spec.node_id.as_str() || !size_matches {
        return Err(foreign(
            spec,
            existing,
            &format!(
                "is retained from a deleted instance of this id on node '{node}' with size \
                 {size}; create the instance there with that size to take it back, or purge \
                 it (create it so, then DELETE with purge=true)"
            ),
        ));
    }
    Ok(())
}

/// Takes a retained object back for `spec`'s create: its stamp becomes the create's, and
/// the stamp that retained it is kept, so that undoing the create retains it again. The
/// object's resourceVersion guards the write against a concurrent one; after a conflict
/// the object is read and checked again.
async fn take_back<K>(api: &Api<K>, existing: &K, spec: &DeploymentSpec) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    let name = existing.name_any();
    let failed = |error| {
        Error::kube(
            spec.cluster_id.as_str(),
            format!("taking back {}", shown(existing)),
            error,
        )
    };
    let mut current = existing.clone();
    for attempt in 1..=CONFLICT_ATTEMPTS {
        let meta = current.meta();
        let patch = json!({
            "metadata": {
                "resourceVersion": meta.resource_version,
                "labels": { RETAINED: null },
                "annotations": {
                    annotations::STAMP: spec.stamp.as_str(),
                    annotations::REATTACHED_FROM: stamp_of(meta),
                },
            }
        });
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(error) if is_conflict(&error) && attempt < CONFLICT_ATTEMPTS => {
                current = api.get(&name).await.map_err(failed)?;
                let meta = current.meta();
                if stamp_of(meta) == spec.stamp.as_str() && !is_retained(meta) {
                    // This create's own repeated deploy took it back meanwhile.
                    return Ok(());
                }
                if !is_retained(meta) {
                    return Err(foreign(spec, &current, "was taken by another create"));
                }
                check_retained(&current, spec)?;
            }
            Err(error) => return Err(failed(error)),
        }
    }
    unreachable!("the last attempt returns")
}

/// Removes the object `name` if it carries `stamp`, as `removal` says: deletes it, or,
/// for a volume (`keep` true), marks it retained. Returns whether it carried the stamp.
///
/// An object of the stamp that is retained already is left as it is, but by a purge,
/// which deletes it: a removal of the stamp that came first (a failed create's undo
/// giving back the volume it took, a delete that retained the volume and then failed)
/// must not leave behind a volume that a purge was asked to remove, and answer that it
/// did. Never by another removal: a second undo of a create whose first one gave the
/// volume back must not delete it.
///
/// # Errors
/// [`Error::Kube`] when the cluster refuses or cannot be reached.
pub(crate) async fn remove_owned<K>(
    api: &Api<K>,
    cluster: &str,
    name: &str,
    stamp: &Stamp,
    removal: Removal,
    keep: impl Fn(&K) -> bool,
) -> Result<bool>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    for attempt in 1..=CONFLICT_ATTEMPTS {
        let existing = match api.get_opt(name).await {
            Ok(Some(existing)) => existing,
            Ok(None) => return Ok(false),
            Err(error) => return Err(reading::<K>(cluster, name, error)),
        };
        let meta = existing.meta();
        if stamp_of(meta) != stamp.as_str() || (is_retained(meta) && removal != Removal::Purge) {
            return Ok(false);
        }
        if meta.deletion_timestamp.is_some() {
            // Already going (a removal run again while the object waits for its
            // finalizers): a second delete would change nothing, and it can no longer be
            // retained.
            return Ok(true);
        }
        if !keep(&existing) {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: meta.uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::background()
            };
            match api.delete(name, &params).await {
                Ok(_) => return Ok(true),
                Err(error) if is_not_found(&error) => return Ok(true),
                // Another object of the name (another uid) replaced it: look again.
                Err(error) if is_conflict(&error) && attempt < CONFLICT_ATTEMPTS => continue,
                Err(error) => {
                    return Err(Error::kube(
                        cluster,
                        format!("deleting {kind} {name}"),
                        error,
                    ));
                }
            }
        }
        // An undo gives a volume it took back to the retention it came from, under the
        // stamp of the delete that retained it: as if the failed create had never touched
        // it (so that a purge of the failed create's record leaves it, as it leaves a
        // retained volume that the create failed before taking back).
        let owner = match (removal, annotation(meta, annotations::REATTACHED_FROM)) {
            (Removal::Undo, Some(from)) => from,
            _ => stamp.as_str(),
        };
        let patch = json!({
            "metadata": {
                "resourceVersion": meta.resource_version,
                "labels": { RETAINED: "true" },
                "annotations": {
                    annotations::STAMP: owner,
                    annotations::REATTACHED_FROM: null,
                },
            }
        });
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(true),
            // Changed since the read: read it again (it may be retained already).
            Err(error) if is_conflict(&error) && attempt < CONFLICT_ATTEMPTS => {}
            Err(error) => {
                return Err(Error::kube(
                    cluster,
                    format!("retaining {kind} {name}"),
                    error,
                ));
            }
        }
    }
    unreachable!("the last attempt returns")
}

/// Changes the object `name` of `spec`'s instance with the strategic merge patch
/// `change`, guarded by its resourceVersion (see [`amend_owned_as`]). Returns whether it
/// was changed.
///
/// # Errors
/// As [`amend_owned_as`].
pub(crate) async fn amend_owned<K>(
    api: &Api<K>,
    spec: &DeploymentSpec,
    name: &str,
    change: &serde_json::Value,
) -> Result<bool, CreateError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    let changed = amend_owned_as(api, spec, name, |_| Some(change.clone())).await?;
    Ok(changed.is_some())
}

/// Changes the object `name` of `spec`'s instance with the strategic merge patch that
/// `decide` makes of it as just read (none: it needs no change), guarded by its
/// resourceVersion, so that a write that meets a newer version reads it again and
/// decides again. Only an object of `spec`'s stamp is changed; a missing one, or one
/// being deleted, is left so (a patch never makes an object, so an update racing a
/// delete brings nothing back). Returns the object as read before the write that was
/// made (or found unneeded), or `None` when it is missing or being deleted.
///
/// # Errors
/// [`CreateError::Other`] with [`Error::Foreign`] for an object of another stamp (or one
/// retained), or [`Error::Kube`] when reading it fails; [`CreateError::Refused`] with the
/// API server's refusal of the patch.
pub(crate) async fn amend_owned_as<K>(
    api: &Api<K>,
    spec: &DeploymentSpec,
    name: &str,
    decide: impl Fn(&K) -> Option<serde_json::Value>,
) -> Result<Option<K>, CreateError>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    let cluster = spec.cluster_id.as_str();
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    for attempt in 1..=CONFLICT_ATTEMPTS {
        let existing = match api.get_opt(name).await {
            Ok(Some(existing)) if existing.meta().deletion_timestamp.is_none() => existing,
            Ok(_) => return Ok(None),
            Err(error) => return Err(CreateError::Other(reading::<K>(cluster, name, error))),
        };
        let meta = existing.meta();
        if stamp_of(meta) != spec.stamp.as_str() || is_retained(meta) {
            return Err(CreateError::Other(foreign(
                spec,
                &existing,
                "was not made by this instance's create",
            )));
        }
        let Some(mut patch) = decide(&existing) else {
            return Ok(Some(existing));
        };
        patch["metadata"]["resourceVersion"] = json!(meta.resource_version);
        match api.patch(name, &params, &Patch::Strategic(&patch)).await {
            Ok(_) => return Ok(Some(existing)),
            Err(error) if is_conflict(&error) && attempt < CONFLICT_ATTEMPTS => {}
            Err(error) if is_not_found(&error) => return Ok(None),
            Err(error) => return Err(CreateError::Refused(error)),
        }
    }
    unreachable!("the last attempt returns")
}

/// Whether `removal` keeps a volume (or its credentials) that `object` is.
pub(crate) fn keeps_volume<K: Resource>(removal: Removal, object: &K) -> bool {
    match removal {
        Removal::Purge => false,
        Removal::Retain => true,
        Removal::Undo => annotation(object.meta(), annotations::REATTACHED_FROM).is_some(),
    }
}
