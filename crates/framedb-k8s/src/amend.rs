//! Changes to a running instance (`PATCH`): its metadata and a larger volume, written
//! onto its objects (docs/architecture.md, "Updates").
//!
//! The claim goes first: when it cannot grow, nothing is changed. Kubernetes expands a
//! bound claim whose request grows if its StorageClass has `allowVolumeExpansion: true`
//! (the `PersistentVolumeClaimResize` admission plugin refuses the rest with 403), so
//! that is checked before the write where the class can be read, and the API server's
//! refusal is told the same way. A static volume (no class, as FrameDB's local hostPath
//! volumes) never grows. The instance's claim is its own object, not a StatefulSet
//! `volumeClaimTemplates` entry (which is immutable), so it is patched directly.
//!
//! The StatefulSet goes last: it records the metadata and size that
//! [`crate::inventory`] rebuilds records from, so it never says more than the claim holds.
//! A larger volume also changes TiKV's `--capacity` in its pod template (and its config
//! file), so that TiKV uses the new space: the instance's pod restarts once. Every other
//! object's `framedb.io/storage-size` follows, so that a volume retained later is taken
//! back at its real size; a metadata-only change, whose StatefulSet records the size
//! already, writes the StatefulSet alone. Every write is a patch guarded by the object's
//! resourceVersion, made only on objects of the instance's stamp, and never makes a
//! missing object (a reconcile pass restores those from the record).

use framedb_core::{DeploymentSpec, StorageSize};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::Api;
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::objects::{Layout, Storage, annotations, claim_name, config_name, credentials_name};
use crate::ownership::{CreateError, amend_owned, amend_owned_as};

/// Brings the instance `spec` describes to its metadata and a volume of at least its
/// size; returns the size the volume asks for now.
pub(crate) async fn amend(
    client: &Client,
    layout: &Layout,
    spec: &DeploymentSpec,
) -> Result<StorageSize> {
    let cluster = spec.cluster_id.as_str();
    let id = spec.framedb_id.as_str();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &layout.namespace);
    let claim_name = claim_name(id);
    let claim = claims.get_opt(&claim_name).await.map_err(|error| {
        Error::kube(
            cluster,
            format!("reading PersistentVolumeClaim {claim_name}"),
            error,
        )
    })?;
    // Without its claim (gone, being deleted, or asking for what FrameDB cannot read) the
    // instance's size cannot be told: nothing is written, rather than a size no volume
    // holds.
    let (claim, held) = match claim.as_ref().and_then(|claim| {
        let held = requested_size(claim)?;
        claim
            .metadata
            .deletion_timestamp
            .is_none()
            .then_some((claim, held))
    }) {
        Some(found) => found,
        None => {
            return Err(Error::Domain(framedb_core::Error::InstanceBusy {
                id: spec.framedb_id.clone(),
                sentence: format!(
                    "instance '{id}' on cluster '{cluster}' has no usable volume claim                      ({}/{claim_name} is missing, being deleted or unreadable); it cannot be                      changed now",
                    layout.namespace
                ),
            }));
        }
    };
    // The volume never shrinks: a claim that asks for more already keeps its size, and
    // the size that goes on is the claim's as read when it is written (a concurrent
    // change may have grown it further meanwhile).
    let size = if held.bytes() < spec.storage_size.bytes() {
        check_expandable(client, layout, spec, claim).await?;
        grow_claim(&claims, layout, spec, &claim_name).await?
    } else {
        held.clone()
    };
    let grew = size.bytes() != held.bytes();
    let target = DeploymentSpec {
        storage_size: size.clone(),
        ..spec.clone()
    };
    let noted =
        json!({ "metadata": { "annotations": { annotations::STORAGE_SIZE: size.as_str() } } });
    let workloads: Api<StatefulSet> = Api::namespaced(client.clone(), &layout.namespace);
    // The StatefulSet is written last: while it records another size, an earlier amend
    // may have stopped halfway, and every object's size is written (again).
    let recorded = workloads
        .get_opt(id)
        .await
        .map_err(|error| Error::kube(cluster, format!("reading StatefulSet {id}"), error))?
        .and_then(|workload| {
            let noted = workload.metadata.annotations?;
            noted.get(annotations::STORAGE_SIZE).cloned()
        });
    let resized = grew || recorded.as_deref() != Some(size.as_str());
    if !grew && resized {
        annotate(&claims, spec, &claim_name, &noted).await?;
    }

    let objects = layout.objects(&target);
    if resized {
        resize_others(client, layout, spec, &noted, &objects).await?;
    }

    let metadata = serde_json::to_string(&spec.metadata).map_err(|error| {
        Error::Domain(framedb_core::Error::Internal(
            framedb_core::Fault::new("the instance's metadata could not be written as JSON")
                .because(error),
        ))
    })?;
    let mut workload = json!({
        "metadata": { "annotations": {
            annotations::STORAGE_SIZE: size.as_str(),
            annotations::METADATA: metadata,
        } },
    });
    // TiKV's capacity flag, so that it fills the larger volume; a native sidecar, its
    // container merges by name.
    let tikv = objects
        .statefulset
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref()?.init_containers.as_ref())
        .and_then(|containers| containers.iter().find(|c| c.name == "tikv"));
    if let Some(tikv) = tikv {
        workload["spec"] = json!({ "template": { "spec": { "initContainers": [
            { "name": "tikv", "args": tikv.args },
        ] } } });
    }
    annotate(&workloads, spec, id, &workload).await?;
    Ok(size)
}

/// Writes the size of the volume onto the instance's Secret, Service and NetworkPolicy
/// (a retained volume comes back only at the size its objects say), and sizes TiKV's
/// configuration file to it.
async fn resize_others(
    client: &Client,
    layout: &Layout,
    spec: &DeploymentSpec,
    noted: &Value,
    objects: &crate::objects::InstanceObjects,
) -> Result<()> {
    let id = spec.framedb_id.as_str();
    let size = &noted["metadata"]["annotations"][annotations::STORAGE_SIZE];
    annotate(
        &Api::<Secret>::namespaced(client.clone(), &layout.namespace),
        spec,
        &credentials_name(id),
        noted,
    )
    .await?;
    annotate(
        &Api::<Service>::namespaced(client.clone(), &layout.namespace),
        spec,
        id,
        noted,
    )
    .await?;
    annotate(
        &Api::<NetworkPolicy>::namespaced(client.clone(), &layout.namespace),
        spec,
        id,
        noted,
    )
    .await?;
    let config = json!({
        "metadata": { "annotations": { annotations::STORAGE_SIZE: size } },
        "data": objects.config.data,
    });
    annotate(
        &Api::<ConfigMap>::namespaced(client.clone(), &layout.namespace),
        spec,
        &config_name(id),
        &config,
    )
    .await?;
    Ok(())
}

/// Raises the claim's request to `spec`'s size, deciding on the claim as read just
/// before each write: one that asks for as much or more already (a concurrent change grew
/// it) is left as it is. Returns the size it asks for afterwards.
async fn grow_claim(
    claims: &Api<PersistentVolumeClaim>,
    layout: &Layout,
    spec: &DeploymentSpec,
    claim_name: &str,
) -> Result<StorageSize> {
    let cluster = spec.cluster_id.as_str();
    let asked = &spec.storage_size;
    let grow = json!({
        "metadata": { "annotations": { annotations::STORAGE_SIZE: asked.as_str() } },
        "spec": { "resources": { "requests": { "storage": asked.as_str() } } },
    });
    let read = amend_owned_as(claims, spec, claim_name, |claim| {
        let held = requested_size(claim)?;
        (held.bytes() < asked.bytes()).then(|| grow.clone())
    })
    .await
    .map_err(|error| match error {
        CreateError::Refused(error) if is_forbidden(&error) => not_expandable(
            spec,
            format!(
                "cluster '{cluster}' forbids expanding PersistentVolumeClaim \
                 {}/{claim_name}: only a bound claim of a StorageClass with \
                 allowVolumeExpansion: true can grow; nothing was changed",
                layout.namespace
            ),
        ),
        error => written::<PersistentVolumeClaim>(cluster, claim_name, error),
    })?;
    match read.as_ref().and_then(requested_size) {
        Some(held) if held.bytes() >= asked.bytes() => Ok(held),
        Some(_) => Ok(asked.clone()),
        None => Err(Error::Domain(framedb_core::Error::InstanceBusy {
            id: spec.framedb_id.clone(),
            sentence: format!(
                "the volume claim of instance '{}' on cluster '{cluster}' went away while it \
                 was being grown; it cannot be changed now",
                spec.framedb_id
            ),
        })),
    }
}

/// The size a claim asks for, if it is one FrameDB reads.
fn requested_size(claim: &PersistentVolumeClaim) -> Option<StorageSize> {
    let requests = claim.spec.as_ref()?.resources.as_ref()?.requests.as_ref()?;
    StorageSize::new(requests.get("storage")?.0.clone()).ok()
}

/// Refuses a claim that cannot grow, where that can be told before writing: a static
/// volume, a claim not bound yet, a class that does not allow expansion or does not
/// exist. A class the local service may not read is left to the API server's answer.
async fn check_expandable(
    client: &Client,
    layout: &Layout,
    spec: &DeploymentSpec,
    claim: &PersistentVolumeClaim,
) -> Result<()> {
    let cluster = spec.cluster_id.as_str();
    let id = &spec.framedb_id;
    let class = claim
        .spec
        .as_ref()
        .and_then(|spec| spec.storage_class_name.clone())
        .unwrap_or_default();
    if matches!(layout.storage, Storage::Local { .. }) || class.is_empty() {
        return Err(not_expandable(
            spec,
            format!(
                "the volume of instance '{id}' on cluster '{cluster}' is a static \
                 PersistentVolume that no StorageClass provisions (FrameDB's local volumes \
                 are hostPath volumes pinned to a node), and Kubernetes cannot expand it; \
                 nothing was changed"
            ),
        ));
    }
    let phase = claim.status.as_ref().and_then(|s| s.phase.as_deref());
    if phase != Some("Bound") {
        return Err(not_expandable(
            spec,
            format!(
                "the claim of instance '{id}' on cluster '{cluster}' is not bound to a volume \
                 yet, and Kubernetes expands bound claims only; try again once the instance \
                 has started"
            ),
        ));
    }
    let classes: Api<StorageClass> = Api::all(client.clone());
    match classes.get_opt(&class).await {
        Ok(Some(found)) if found.allow_volume_expansion == Some(true) => Ok(()),
        Ok(Some(_)) => Err(not_expandable(
            spec,
            format!(
                "StorageClass '{class}' of instance '{id}' on cluster '{cluster}' does not \
                 allow volume expansion (allowVolumeExpansion is not true), so Kubernetes \
                 refuses to grow its claim; a cluster administrator can allow it on the class \
                 if its driver supports expansion; nothing was changed"
            ),
        )),
        Ok(None) => Err(not_expandable(
            spec,
            format!(
                "StorageClass '{class}' of instance '{id}' on cluster '{cluster}' does not \
                 exist, and Kubernetes grows only claims of a class that allows expansion; \
                 nothing was changed"
            ),
        )),
        Err(error) if is_forbidden(&error) => Ok(()),
        Err(error) => Err(Error::kube(
            cluster,
            format!("reading StorageClass {class}"),
            error,
        )),
    }
}

/// Patches the object `name` of the instance with `change`, if it exists (see
/// [`amend_owned`]).
async fn annotate<K>(api: &Api<K>, spec: &DeploymentSpec, name: &str, change: &Value) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    amend_owned(api, spec, name, change)
        .await
        .map(drop)
        .map_err(|error| written::<K>(spec.cluster_id.as_str(), name, error))
}

/// A failed change of the `K` named `name`.
fn written<K>(cluster: &str, name: &str, error: CreateError) -> Error
where
    K: Resource,
    K::DynamicType: Default,
{
    match error {
        CreateError::Refused(error) => {
            let kind = K::kind(&K::DynamicType::default()).into_owned();
            Error::kube(cluster, format!("patching {kind} {name}"), error)
        }
        CreateError::Other(error) => error,
    }
}

fn not_expandable(spec: &DeploymentSpec, sentence: String) -> Error {
    Error::Domain(framedb_core::Error::NotExpandable {
        cluster: spec.cluster_id.clone(),
        sentence,
    })
}

/// Whether the API answered 403: RBAC, or an admission plugin's refusal.
fn is_forbidden(error: &kube::Error) -> bool {
    crate::error::api_status(error).is_some_and(|s| s.code == 403)
}
