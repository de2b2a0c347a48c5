//! Each cluster's status book ([`framedb_core::live`]), kept by two watches — FrameDB's
//! StatefulSets and their pods — so that status reads cost no request to the cluster.
//!
//! The keeper lists both kinds, publishes the book, then applies watch events as they
//! come, resuming each watch from the last resourceVersion it saw when the server ends
//! it. A `410 Gone` means history was compacted: it lists again. Any other failure
//! takes the book away (`None`), so readers go to the cluster directly — and get its
//! error, hence `Unknown` when it cannot be reached — until a new list succeeds.
//!
//! kube-runtime's `watcher` does the same dance, but it does not tell when a broken
//! watch is whole again, which is exactly when the book may be trusted again.

use std::collections::HashMap;
use std::time::Duration;

use framedb_core::live::{StatusBook, Statuses, publish};
use framedb_core::{ClusterId, FramedbId, InstanceStatus, StatusReport};
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::deployer::pod_status;
use crate::error::Error;
use crate::objects::labels;

/// What a book is computed from: each StatefulSet's instance and whether it is being
/// deleted, and each pod's instance and the status it shows, by object name.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    workloads: HashMap<String, (String, bool)>,
    pods: HashMap<String, (String, StatusReport)>,
}

impl Sources {
    /// Notes the current state of a StatefulSet; `false` when it has no instance label.
    pub fn workload(&mut self, workload: &StatefulSet) -> bool {
        let Some(instance) = instance_of(workload) else {
            return false;
        };
        let deleting = workload.metadata.deletion_timestamp.is_some();
        self.workloads
            .insert(workload.name_any(), (instance, deleting));
        true
    }

    /// Notes the current state of a pod; `false` when it has no instance label.
    pub fn pod(&mut self, pod: &Pod) -> bool {
        let Some(instance) = instance_of(pod) else {
            return false;
        };
        self.pods
            .insert(pod.name_any(), (instance, pod_status(pod)));
        true
    }

    /// Forgets a deleted StatefulSet; `false` when it was not known.
    pub fn forget_workload(&mut self, name: &str) -> bool {
        self.workloads.remove(name).is_some()
    }

    /// Forgets a deleted pod; `false` when it was not known.
    pub fn forget_pod(&mut self, name: &str) -> bool {
        self.pods.remove(name).is_some()
    }

    /// The status of every instance that has a workload: `Deleting` while it goes, its
    /// pod's status once it has one, `Provisioning` before.
    pub fn statuses(&self) -> Statuses {
        let pods: HashMap<&str, &StatusReport> = self
            .pods
            .values()
            .map(|(instance, report)| (instance.as_str(), report))
            .collect();
        self.workloads
            .values()
            .filter_map(|(instance, deleting)| {
                let report = if *deleting {
                    StatusReport::new(InstanceStatus::Deleting)
                } else {
                    pods.get(instance.as_str()).map_or_else(
                        || StatusReport::new(InstanceStatus::Provisioning),
                        |report| (*report).clone(),
                    )
                };
                Some((FramedbId::new(instance).ok()?, report))
            })
            .collect()
    }
}

fn instance_of<K: Resource>(object: &K) -> Option<String> {
    object
        .meta()
        .labels
        .as_ref()?
        .get(labels::INSTANCE)
        .cloned()
}

/// Where to watch, and for how long one watch request may stay open.
#[derive(Clone)]
pub(crate) struct Watches {
    pub cluster: ClusterId,
    pub client: Client,
    pub namespace: String,
    pub selector: String,
    /// Shorter than the client's read timeout, so that the server ends a quiet watch
    /// before the client gives up on it.
    pub window: Duration,
}

/// Keeps `book` current until every reader is gone.
pub(crate) async fn keep(watches: Watches, book: watch::Sender<StatusBook>) {
    let cluster = watches.cluster.clone();
    framedb_core::live::keep(book, cluster, "status watch", |book| {
        let watches = watches.clone();
        async move { follow(&watches, &book).await.to_string() }
    })
    .await;
}

/// How one watch event changed the sources.
enum Applied {
    Changed,
    Unchanged,
    /// The watch's resourceVersion is too old: list again.
    Gone,
}

/// Lists, publishes and follows; returns only when it cannot go on.
async fn follow(watches: &Watches, book: &watch::Sender<StatusBook>) -> Error {
    let workloads: Api<StatefulSet> = Api::namespaced(watches.client.clone(), &watches.namespace);
    let pods: Api<Pod> = Api::namespaced(watches.client.clone(), &watches.namespace);
    let failed = |action: &str, source| Error::kube(watches.cluster.as_str(), action, source);
    let window = u32::try_from(watches.window.as_secs())
        .unwrap_or(u32::MAX)
        .clamp(1, 290);
    let params = WatchParams::default()
        .labels(&watches.selector)
        .timeout(window);
    loop {
        let list = ListParams::default().labels(&watches.selector);
        let mut sources = Sources::default();
        let (mut workloads_at, mut pods_at) = match tokio::try_join!(
            async {
                workloads
                    .list(&list)
                    .await
                    .map_err(|e| failed("listing StatefulSets", e))
            },
            async {
                pods.list(&list)
                    .await
                    .map_err(|e| failed("listing pods", e))
            },
        ) {
            Ok((workload_list, pod_list)) => {
                workload_list.items.iter().for_each(|w| {
                    sources.workload(w);
                });
                pod_list.items.iter().for_each(|p| {
                    sources.pod(p);
                });
                (
                    workload_list.metadata.resource_version.unwrap_or_default(),
                    pod_list.metadata.resource_version.unwrap_or_default(),
                )
            }
            Err(error) => return error,
        };
        publish(book, Some(sources.statuses()));

        // One watch window after another, each resuming where the last one stopped.
        'window: loop {
            let (workload_events, pod_events) = match tokio::try_join!(
                async {
                    workloads
                        .watch(&params, &workloads_at)
                        .await
                        .map_err(|e| failed("watching StatefulSets", e))
                },
                async {
                    pods.watch(&params, &pods_at)
                        .await
                        .map_err(|e| failed("watching pods", e))
                },
            ) {
                Ok(streams) => streams,
                Err(error) => return error,
            };
            let mut workload_events = workload_events.boxed();
            let mut pod_events = pod_events.boxed();
            loop {
                let applied = tokio::select! {
                    event = workload_events.next() => match event {
                        None => continue 'window,
                        Some(Err(e)) => return failed("watching StatefulSets", e),
                        Some(Ok(event)) => apply(event, &mut workloads_at, &mut sources, Sources::workload, Sources::forget_workload),
                    },
                    event = pod_events.next() => match event {
                        None => continue 'window,
                        Some(Err(e)) => return failed("watching pods", e),
                        Some(Ok(event)) => apply(event, &mut pods_at, &mut sources, Sources::pod, Sources::forget_pod),
                    },
                };
                match applied {
                    Ok(Applied::Changed) => publish(book, Some(sources.statuses())),
                    Ok(Applied::Unchanged) => {}
                    Ok(Applied::Gone) => break 'window,
                    Err(status) => {
                        return failed("watching", kube::Error::Api(status));
                    }
                }
            }
        }
    }
}

/// Applies one event to the sources through `upsert` and `remove`, and moves `at` to
/// its resourceVersion.
fn apply<K>(
    event: WatchEvent<K>,
    at: &mut String,
    sources: &mut Sources,
    upsert: fn(&mut Sources, &K) -> bool,
    remove: fn(&mut Sources, &str) -> bool,
) -> Result<Applied, Box<kube::core::Status>>
where
    K: Resource + DeserializeOwned,
{
    let (object, deleted) = match event {
        WatchEvent::Added(object) | WatchEvent::Modified(object) => (object, false),
        WatchEvent::Deleted(object) => (object, true),
        WatchEvent::Bookmark(bookmark) => {
            *at = bookmark.metadata.resource_version;
            return Ok(Applied::Unchanged);
        }
        WatchEvent::Error(status) if status.code == 410 => return Ok(Applied::Gone),
        WatchEvent::Error(status) => return Err(status),
    };
    if let Some(version) = &object.meta().resource_version {
        at.clone_from(version);
    }
    let changed = if deleted {
        remove(sources, &object.name_any())
    } else {
        upsert(sources, &object)
    };
    Ok(if changed {
        Applied::Changed
    } else {
        Applied::Unchanged
    })
}
