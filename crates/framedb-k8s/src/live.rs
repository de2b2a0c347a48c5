//! Each cluster's status book ([`framedb_core::live`]), kept by three watches — FrameDB's
//! StatefulSets, their pods, and the events of the instances' namespace — so that status
//! reads cost no request to the cluster. The statuses themselves are derived by
//! [`crate::status`].
//!
//! Events carry no labels, so their watch takes every event of the namespace, which holds
//! FrameDB's objects only; of each object just the latest event and the latest `Warning`
//! are kept, so memory stays in proportion to the objects, not to what was told of them.
//!
//! # What kube-runtime's `watcher` gives
//!
//! Each kind is followed by a [`watcher()`], namespaced, with FrameDB's label selector
//! (events without one):
//!
//! - **List pages**: it lists the kind in pages (500 objects a page, each a quorum read),
//!   announced as [`Event::Init`], one [`Event::InitApply`] per object, and
//!   [`Event::InitDone`] once the last page is in.
//! - **Watch resume**: it then watches from the list's resourceVersion, one watch request
//!   per window (shorter than the client's read timeout, see [`Watches::window`]); when
//!   the server ends one, or nothing comes for the window and 5 s more, it opens the next
//!   from the last resourceVersion it saw, silently. Changes come as [`Event::Apply`] and
//!   [`Event::Delete`].
//! - **Bookmarks**: it asks for them, and moves its resourceVersion to theirs, so a resume
//!   after a quiet spell does not start from a version the server has forgotten.
//! - **410 relist**: an error event `410 Gone` on a watch means the history it would
//!   resume from was compacted; the watcher yields it as an error, then lists again from
//!   scratch, starting with a new `Init`.
//!
//! # What it lacks, and how this module makes up for it
//!
//! After any other error while watching — a watch request refused (even with a 410), a
//! broken stream, an error event other than 410 — the watcher goes on where it was on its
//! next poll (the same stream, or a new watch from its last resourceVersion), without a
//! new `Init`, and emits no event when the resumed watch is up. Events may have been
//! missed in between, and nothing would tell the book when it is in step again, which is
//! exactly when it may be trusted again. So:
//!
//! - The book is `Some` only while all three kinds have reached `InitDone` since their watchers
//!   started (or since a 410 made one of them list again): an `Init`, or a 410, takes it
//!   to `None` until that kind's `InitDone`.
//! - On any other error (also a failed list, after which the watcher would list again
//!   itself), [`follow`] returns, dropping both watchers, with the error as the reason.
//!   [`framedb_core::live::keep`] then sets the book to `None` — readers read the cluster
//!   directly, and get its error, hence `Unknown`, when it cannot be reached — backs off,
//!   and calls [`follow`] again, whose new watchers start with a full list (`Init` …
//!   `InitDone`) of each kind.
//!
//! # Statuses that change with time
//!
//! A status crosses a [`StatusLimits`] limit only when the cluster tells something again
//! — a restart in a pod's status, an event told once more with a later `lastTimestamp` —
//! since the limits are measured between the cluster's own timestamps, never against
//! FrameDB's clock. Each of those is a watch event, so the book needs no timer.
//!
//! The watchers run without kube-runtime's backoff (`default_backoff`): the keeper's own
//! backoff applies between follows, and the one error a follow goes on after, a 410, is
//! answered by an immediate relist (a failure of which ends the follow), so no loop of
//! errors can run without a pause.
//!
//! The book is set whole through [`publish`] when the kinds come into step (or leave it),
//! and otherwise changed by [`amend`] with the statuses of the instances the event touched
//! ([`Sources::take_changes`]); both wake readers only when the book changed.

use std::fmt::Debug;
use std::time::Duration;

use framedb_core::ClusterId;
use framedb_core::live::{StatusBook, amend, publish};
use futures_util::StreamExt;
use futures_util::stream::select;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event as KubeEvent, Pod};
use kube::api::Api;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::error::Error;
use crate::slim::Slim;
use crate::status::{Sources, StatusLimits};

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
    /// Where statuses cross into `Failed`.
    pub limits: StatusLimits,
}

/// Keeps `book` current until every reader is gone.
pub(crate) async fn keep(watches: Watches, book: watch::Sender<StatusBook>) {
    let cluster = watches.cluster.clone();
    framedb_core::live::keep(book, cluster, "status watch", |book| {
        let watches = watches.clone();
        async move { follow(&watches, &book).await }
    })
    .await;
}

/// What one of the three watchers yielded (boxed: the kinds differ much in size).
enum Said {
    Workload(Box<watcher::Result<Event<Slim<StatefulSet>>>>),
    Pod(Box<watcher::Result<Event<Slim<Pod>>>>),
    Told(Box<watcher::Result<Event<Slim<KubeEvent>>>>),
}

/// Starts the watchers, keeps the book from their events, and returns why it stopped:
/// at the first error other than a `410` (see the module's documentation).
async fn follow(watches: &Watches, book: &watch::Sender<StatusBook>) -> String {
    let config = watch_config(watches.window);
    // Slim: read without what statuses do not need (`managedFields` first of all).
    let workloads = watcher(
        api::<Slim<StatefulSet>>(watches),
        config.clone().labels(&watches.selector),
    )
    .map(|said| Said::Workload(Box::new(said)));
    let pods = watcher(
        api::<Slim<Pod>>(watches),
        config.clone().labels(&watches.selector),
    )
    .map(|said| Said::Pod(Box::new(said)));
    // Events have no labels: every event of the namespace, which holds FrameDB's only.
    let events =
        watcher(api::<Slim<KubeEvent>>(watches), config).map(|said| Said::Told(Box::new(said)));
    let mut said = select(select(workloads.boxed(), pods.boxed()), events.boxed());
    let mut kept = Kept::new(watches.limits);
    loop {
        let taken = match said.next().await {
            Some(Said::Workload(said)) => kept.take(*said, book),
            Some(Said::Pod(said)) => kept.take(*said, book),
            Some(Said::Told(said)) => kept.take(*said, book),
            // A watcher's stream never ends; were all to, the book could not be kept.
            None => return "the watches ended".to_owned(),
        };
        if let Err(Failure { plural, error }) = taken {
            return broken(&watches.cluster, plural, error);
        }
    }
}

fn api<K>(watches: &Watches) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope>,
    K::DynamicType: Default,
{
    Api::namespaced(watches.client.clone(), &watches.namespace)
}

/// A kind the book is kept from, and how its objects enter and leave the sources.
trait Watched: Resource + Clone + DeserializeOwned + Debug + Send + 'static {
    /// The kind's name in messages.
    const PLURAL: &'static str;
    /// Notes an object's current state.
    fn note(sources: &mut Sources, object: &Self);
    /// Forgets a deleted object.
    fn forget(sources: &mut Sources, object: &Self);
    /// Forgets every object of the kind.
    fn clear(sources: &mut Sources);
    /// Whether the kind has been listed in full since its watcher (re)started.
    fn listed(kept: &mut Kept) -> &mut bool;
}

impl Watched for Slim<StatefulSet> {
    const PLURAL: &'static str = "StatefulSets";
    fn note(sources: &mut Sources, object: &Self) {
        sources.workload(&object.0);
    }
    fn forget(sources: &mut Sources, object: &Self) {
        sources.forget_workload(&object.0.name_any());
    }
    fn clear(sources: &mut Sources) {
        sources.clear_workloads();
    }
    fn listed(kept: &mut Kept) -> &mut bool {
        &mut kept.workloads_listed
    }
}

impl Watched for Slim<Pod> {
    const PLURAL: &'static str = "pods";
    fn note(sources: &mut Sources, object: &Self) {
        sources.pod(&object.0);
    }
    fn forget(sources: &mut Sources, object: &Self) {
        sources.forget_pod(&object.0.name_any());
    }
    fn clear(sources: &mut Sources) {
        sources.clear_pods();
    }
    fn listed(kept: &mut Kept) -> &mut bool {
        &mut kept.pods_listed
    }
}

impl Watched for Slim<KubeEvent> {
    const PLURAL: &'static str = "events";
    fn note(sources: &mut Sources, object: &Self) {
        sources.event(&object.0);
    }
    fn forget(sources: &mut Sources, object: &Self) {
        sources.forget_event(&object.0);
    }
    fn clear(sources: &mut Sources) {
        sources.clear_events();
    }
    fn listed(kept: &mut Kept) -> &mut bool {
        &mut kept.events_listed
    }
}

/// What the watchers have told so far, and whether each kind is in step.
#[derive(Default)]
struct Kept {
    sources: Sources,
    workloads_listed: bool,
    pods_listed: bool,
    events_listed: bool,
}

/// A watcher's error that ends a follow, with the kind it watched.
#[derive(Debug)]
struct Failure {
    plural: &'static str,
    error: watcher::Error,
}

impl Kept {
    fn new(limits: StatusLimits) -> Self {
        Self {
            sources: Sources::new(limits),
            ..Self::default()
        }
    }

    /// Whether every kind is in step.
    fn in_step(&self) -> bool {
        self.workloads_listed && self.pods_listed && self.events_listed
    }

    /// Takes in what a watcher on `K` yielded, and brings `book` up to date: whole when
    /// the kinds came into step or left it, otherwise by the instances the event
    /// touched.
    fn take<K: Watched>(
        &mut self,
        said: watcher::Result<Event<K>>,
        book: &watch::Sender<StatusBook>,
    ) -> Result<(), Failure> {
        let event = match said {
            Ok(event) => event,
            // The watcher lists again, starting with `Init`: out of step until `InitDone`.
            Err(error) if relists(&error) => {
                *K::listed(self) = false;
                publish(book, None);
                return Ok(());
            }
            Err(error) => {
                return Err(Failure {
                    plural: K::PLURAL,
                    error,
                });
            }
        };
        match event {
            Event::Init => {
                *K::listed(self) = false;
                K::clear(&mut self.sources);
                publish(book, None);
            }
            Event::InitApply(object) => {
                K::note(&mut self.sources, &object);
            }
            Event::InitDone => {
                *K::listed(self) = true;
                if self.in_step() {
                    // Whole: what was touched on the way is in it.
                    self.sources.take_changes();
                    publish(book, Some(self.sources.statuses()));
                }
            }
            Event::Apply(object) => {
                K::note(&mut self.sources, &object);
                self.amend(book);
            }
            Event::Delete(object) => {
                K::forget(&mut self.sources, &object);
                self.amend(book);
            }
        }
        Ok(())
    }

    /// Sets the statuses of the instances touched since the last change in `book`, when
    /// in step (out of step, they are taken in by the whole book at `InitDone`).
    fn amend(&mut self, book: &watch::Sender<StatusBook>) {
        if self.in_step() {
            amend(book, self.sources.take_changes());
        }
    }
}

/// The watcher configuration of a follow whose watch requests stay open for at most
/// `window` (see [`Watches::window`]): kube-runtime's defaults otherwise (pages of 500,
/// bookmarks asked for, lists read from a quorum).
pub(crate) fn watch_config(window: Duration) -> watcher::Config {
    let window = u32::try_from(window.as_secs())
        .unwrap_or(u32::MAX)
        .clamp(1, 290);
    watcher::Config::default().timeout(window)
}

/// Whether the watcher answers `error` by listing again from scratch (a `410 Gone`
/// event: the history it would resume from was compacted), so that the follow goes on
/// and is in step again at that list's `InitDone`; after any other error it must end.
pub(crate) fn relists(error: &watcher::Error) -> bool {
    matches!(error, watcher::Error::WatchError(status) if status.code == 410)
}

/// Why a follow ended at a watcher's `error` on `plural`, as the keeper logs it.
pub(crate) fn broken(cluster: &ClusterId, plural: &str, error: watcher::Error) -> String {
    let failed = |action: String, source| Error::kube(cluster.as_str(), action, source);
    match error {
        watcher::Error::InitialListFailed(source) => failed(format!("listing {plural}"), source),
        watcher::Error::WatchStartFailed(source) | watcher::Error::WatchFailed(source) => {
            failed(format!("watching {plural}"), source)
        }
        watcher::Error::WatchError(status) => {
            failed(format!("watching {plural}"), kube::Error::Api(status))
        }
        watcher::Error::NoResourceVersion => {
            return format!(
                "watching {plural} on cluster '{cluster}' failed: the list or an event \
                 carried no resourceVersion"
            );
        }
    }
    .to_string()
}

/// The error a watcher yields at a `410 Gone` event.
#[cfg(test)]
pub(crate) fn gone() -> watcher::Error {
    let status = kube::core::Status::failure("too old resource version", "Expired");
    watcher::Error::WatchError(status.with_code(410).boxed())
}

#[cfg(test)]
mod tests {
    use framedb_core::{FramedbId, InstanceStatus};
    use serde_json::json;

    use super::*;
    use crate::objects::labels;

    fn workload(name: &str) -> Slim<StatefulSet> {
        serde_json::from_value(json!({
            "metadata": { "name": name, "uid": format!("uid-{name}"), "labels": { labels::INSTANCE: name } },
        }))
        .unwrap()
    }

    /// The ready pod that the workload of `instance` made.
    fn ready_pod(instance: &str) -> Slim<Pod> {
        serde_json::from_value(json!({
            "metadata": {
                "name": format!("{instance}-0"), "labels": { labels::INSTANCE: instance },
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "StatefulSet", "name": instance,
                    "uid": format!("uid-{instance}"), "controller": true,
                }],
            },
            "status": { "conditions": [{ "type": "Ready", "status": "True" }] },
        }))
        .unwrap()
    }

    /// A [`Kept`] and the book it keeps.
    struct Keeping {
        kept: Kept,
        book: watch::Sender<StatusBook>,
    }

    impl Keeping {
        fn new() -> Self {
            Self {
                kept: Kept::default(),
                book: watch::channel(None).0,
            }
        }

        /// The book, sorted, after checking that the changes made it what a whole
        /// derivation from the same sources makes.
        fn statuses(&self) -> Option<Vec<(String, InstanceStatus)>> {
            let book = self.book.borrow().clone()?;
            assert_eq!(book.statuses(), &self.kept.sources.statuses());
            let mut statuses: Vec<_> = book
                .iter()
                .map(|(id, report)| (id.to_string(), report.status))
                .collect();
            statuses.sort_by(|a, b| a.0.cmp(&b.0));
            Some(statuses)
        }

        /// Feeds `events`, each `Ok`.
        fn feed<K: Watched>(&mut self, events: Vec<Event<K>>) {
            for event in events {
                self.kept.take(Ok(event), &self.book).unwrap();
            }
        }

        fn listed<K: Watched>(&mut self, objects: Vec<K>) {
            let mut events = vec![Event::Init];
            events.extend(objects.into_iter().map(Event::InitApply));
            events.push(Event::InitDone);
            self.feed(events);
        }
    }

    #[test]
    fn the_book_is_in_step_once_every_kind_is_listed_and_then_changes_by_instance() {
        let mut kept = Keeping::new();
        kept.listed(vec![workload("a"), workload("b")]);
        assert_eq!(kept.statuses(), None, "pods not listed yet");
        kept.listed::<Slim<KubeEvent>>(vec![]);
        assert_eq!(kept.statuses(), None, "pods still not listed");
        kept.listed(vec![ready_pod("a")]);
        assert_eq!(
            kept.statuses(),
            Some(vec![
                ("a".into(), InstanceStatus::Running),
                ("b".into(), InstanceStatus::Provisioning),
            ])
        );
        let mark = kept.book.borrow().as_ref().unwrap().mark();

        kept.feed(vec![Event::Apply(ready_pod("b"))]);
        kept.feed(vec![Event::Delete(workload("a"))]);
        assert_eq!(
            kept.statuses(),
            Some(vec![("b".into(), InstanceStatus::Running)])
        );
        let changes = kept.book.borrow().as_ref().unwrap().changes_since(mark);
        let changes = changes.expect("the same edition, changed by instance");
        assert_eq!(changes.gone, vec![FramedbId::new("a").unwrap()]);
        assert_eq!(changes.changed.len(), 1);

        let unlabelled: Slim<Pod> =
            serde_json::from_value(json!({ "metadata": { "name": "x" } })).unwrap();
        let feed = kept.book.subscribe();
        kept.feed(vec![Event::Apply(unlabelled)]);
        assert!(!feed.has_changed().unwrap(), "nothing changed");
    }

    #[test]
    fn a_relist_takes_the_book_out_of_step_until_it_is_done_and_replaces_its_kind() {
        let mut kept = Keeping::new();
        kept.listed(vec![workload("a"), workload("b")]);
        kept.listed(vec![ready_pod("a"), ready_pod("b")]);
        kept.listed::<Slim<KubeEvent>>(vec![]);
        assert!(kept.statuses().is_some());

        // 410: the watcher lists pods again; the book waits for the new list.
        kept.kept
            .take::<Slim<Pod>>(Err(gone()), &kept.book)
            .unwrap();
        assert_eq!(kept.statuses(), None);
        kept.feed(vec![Event::Init, Event::InitApply(ready_pod("a"))]);
        assert_eq!(kept.statuses(), None, "the list is not done");
        // A change of another kind meanwhile does not bring the book back.
        kept.feed(vec![Event::Apply(workload("c"))]);
        assert_eq!(kept.statuses(), None, "the list is still not done");
        kept.feed::<Slim<Pod>>(vec![Event::InitDone]);
        assert_eq!(
            kept.statuses(),
            Some(vec![
                ("a".into(), InstanceStatus::Running),
                ("b".into(), InstanceStatus::Provisioning),
                ("c".into(), InstanceStatus::Provisioning),
            ]),
            "the pod missing from the new list is gone"
        );
    }

    #[test]
    fn any_other_error_ends_the_follow_with_the_kind_and_the_cause() {
        let mut kept = Kept::default();
        let book = watch::channel(None).0;
        let cluster = ClusterId::new("c1").unwrap();
        let unavailable = kube::core::Status::failure("unavailable", "ServiceUnavailable")
            .with_code(503)
            .boxed();
        let start_failed = watcher::Error::WatchStartFailed(kube::Error::Api(unavailable));
        let failure = kept
            .take::<Slim<StatefulSet>>(Err(start_failed), &book)
            .unwrap_err();
        let why = broken(&cluster, failure.plural, failure.error);
        assert!(
            why.starts_with("watching StatefulSets on cluster 'c1' failed"),
            "{why}"
        );
        let failure = kept
            .take::<Slim<Pod>>(Err(watcher::Error::NoResourceVersion), &book)
            .unwrap_err();
        let why = broken(&cluster, failure.plural, failure.error);
        assert!(
            why.starts_with("watching pods on cluster 'c1' failed"),
            "{why}"
        );
    }
}
