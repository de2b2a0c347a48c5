//! Writing and deleting objects as FrameDB: every write is a server-side apply under one
//! field manager, so running a setup again after a failure halfway completes it without
//! duplicates, and every delete treats an object already gone as done. The instance
//! deployer (`deployer`) and the config-service installer (`config_service`) both write
//! through here.

use std::fmt::Debug;

use kube::Resource;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result, is_not_found};

/// The field manager FrameDB's server-side applies run as.
pub const FIELD_MANAGER: &str = "framedb";

/// Server-side applies `object` as [`FIELD_MANAGER`], taking over fields others set; the
/// driver's error as it comes, for callers that tell failures apart (see [`applying`]).
pub(crate) async fn server_side_apply<K>(api: &Api<K>, object: &K) -> Result<K, kube::Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
}

/// A failed apply of a `K` on `cluster`, as "applying {Kind} {shown_as}".
pub(crate) fn applying<K>(cluster: &str, shown_as: &str, error: kube::Error) -> Error
where
    K: Resource,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    Error::kube(cluster, format!("applying {kind} {shown_as}"), error)
}

/// [`server_side_apply`]s `object` on `cluster`; a failure reads "applying {Kind}
/// {shown_as}", where `shown_as` is how the caller names the object to its own callers.
pub(crate) async fn apply<K>(api: &Api<K>, object: &K, cluster: &str, shown_as: &str) -> Result<()>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    server_side_apply(api, object)
        .await
        .map(drop)
        .map_err(|error| applying::<K>(cluster, shown_as, error))
}

/// Deletes the `K` named `name` on `cluster`, in the background; already gone is success.
/// A failure reads "deleting {Kind} {name}".
pub(crate) async fn delete_if_present<K>(api: &Api<K>, cluster: &str, name: &str) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(error) if is_not_found(&error) => Ok(()),
        Err(error) => Err(deleting::<K>(cluster, name, error)),
    }
}

/// A failed delete of the `K` named `name` on `cluster`, as "deleting {Kind} {name}".
fn deleting<K>(cluster: &str, name: &str, error: kube::Error) -> Error
where
    K: Resource,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    Error::kube(cluster, format!("deleting {kind} {name}"), error)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::StatefulSet;
    use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};

    use super::*;

    fn refused() -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("no", "Invalid")
                .with_code(422)
                .boxed(),
        )
    }

    fn action(error: Error) -> String {
        match error {
            Error::Kube { action, .. } => action,
            other => panic!("not a request's failure: {other}"),
        }
    }

    #[test]
    fn failures_name_the_kind_and_the_object_as_the_caller_shows_it() {
        assert_eq!(
            action(applying::<Service>("c1", "tidb-001", refused())),
            "applying Service tidb-001"
        );
        assert_eq!(
            action(applying::<PersistentVolumeClaim>(
                "c1",
                "tidb-001",
                refused()
            )),
            "applying PersistentVolumeClaim tidb-001"
        );
        assert_eq!(
            action(deleting::<StatefulSet>("c1", "tidb-001", refused())),
            "deleting StatefulSet tidb-001"
        );
        assert_eq!(
            action(deleting::<PersistentVolumeClaim>(
                "c1",
                "tidb-001-data",
                refused()
            )),
            "deleting PersistentVolumeClaim tidb-001-data"
        );
    }
}
