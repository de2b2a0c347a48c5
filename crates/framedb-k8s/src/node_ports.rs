//! Each cluster's node ports, kept by a watch of its Services, so that finding a free
//! port for a create costs no request and does not grow with the cluster's Services.
//!
//! FrameDB stays stateless: the view mirrors the cluster and nothing else. The API
//! server's 422 "provided port is already allocated" stays the arbiter of a port — a
//! create on a port the view shows free but that is taken (the view lags) is refused
//! and the service layer tries the next one.
//!
//! # The watch
//!
//! Node ports are cluster-wide, so the watch is on every Service of every namespace
//! (`Api::<Service>::all`), with kube-runtime's [`watcher()`] as the status books of the
//! `live` module use it, and in step by the same rules (see that module's
//! documentation): only between an `InitDone` and the next `Init`, `410`, or other
//! error. A relist builds a fresh view and swaps it in at its `InitDone`; any error
//! other than a `410` ends the follow, and [`framedb_core::live::keep`] follows again
//! after a backoff. While the view is not in step, [`KubeFleet::free_ports`] reads the
//! Services as it did before the view (a paged list).
//!
//! The watch needs each Service's `spec.ports[].nodePort` (and
//! `spec.healthCheckNodePort`, which comes from the same range), so it cannot be a
//! metadata-only watch (`metadata_watcher`, which would save the bodies' bytes on the
//! wire); and no field selector of Services tells which hold node ports (NodePort and
//! LoadBalancer Services do, unless `allocateLoadBalancerNodePorts` is off), so it
//! receives every Service. Of each it keeps only what allocation needs: for a Service
//! that holds node ports, its `namespace/name`, uid and ports; a Service without any is
//! not kept. Memory is in proportion to the ports held, not to the Services.
//!
//! # This process's own creates
//!
//! The view lags the cluster by the time an event takes to arrive. So that the next
//! create on the cluster does not pick the port a create of this process has just
//! taken (and pay a 422), the deployer puts a Service it created into the view from the
//! create's answer ([`NodePorts::created`]); the watch's own event for it replaces the
//! entry later. Deletes come from the watch only: a delete that lags keeps a port
//! looking used a little longer, which is conservative. A create's answer that arrives
//! after the watch told of that Service's end (its uid among the latest that left) is
//! not taken in. An answer taken in while the view is out of step is not needed: the
//! relist that brings the view back in step starts after it, so it lists that Service.
//!
//! [`KubeFleet::free_ports`]: framedb_core::PortAllocator::free_ports

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use framedb_core::ClusterId;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::watch;

use crate::live::{broken, relists, watch_config};
use crate::slim::Slim;

/// The node ports of a cluster while its watch is in step, `None` otherwise.
pub(crate) type PortsBook = Option<Arc<View>>;

/// How many uids of Services that left the view are remembered (see
/// [`NodePorts::created`]).
const LEFT_KEPT: usize = 256;

/// The node ports `service` holds: each port's `nodePort` and the
/// `healthCheckNodePort`, both allocated from the cluster's node port range.
pub(crate) fn held_by(service: &Service) -> impl Iterator<Item = u16> + '_ {
    let spec = service.spec.as_ref();
    let ports = spec
        .and_then(|spec| spec.ports.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|port| port.node_port);
    let health = spec.and_then(|spec| spec.health_check_node_port);
    ports
        .chain(health)
        .filter_map(|port| u16::try_from(port).ok())
}

/// An in-step view, shared by the watch that keeps it and the allocations that read it.
#[derive(Debug, Default)]
pub(crate) struct View(Mutex<NodePorts>);

impl View {
    /// The view, for one short look or change (never held across an await).
    pub(crate) fn lock(&self) -> MutexGuard<'_, NodePorts> {
        // Each change completes before the lock is let go, so a poisoned lock is whole.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The node ports of a cluster's Services, by Service.
#[derive(Debug, Default)]
pub(crate) struct NodePorts {
    /// Each Service that holds node ports, by `namespace/name`.
    services: HashMap<String, Held>,
    /// How many kept Services hold each port: more than one only for a moment, when a
    /// deleted Service's port was given to a new one before the delete arrived.
    used: HashMap<u16, u32>,
    /// The uids of the latest Services that left the view.
    left: Left,
}

/// What the view keeps of one Service.
#[derive(Debug)]
struct Held {
    uid: Option<String>,
    ports: Vec<u16>,
}

impl NodePorts {
    /// Whether a kept Service holds `port`.
    pub(crate) fn holds(&self, port: u16) -> bool {
        self.used.contains_key(&port)
    }

    /// How many Services the view keeps.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.services.len()
    }

    /// Takes in a Service as the watch tells it (listed, added or changed).
    fn note(&mut self, service: &Service) {
        let ports: Vec<u16> = held_by(service).collect();
        let key = key(service);
        if ports.is_empty() {
            if let Some(held) = self.remove(&key) {
                self.left.push(held.uid);
            }
            return;
        }
        self.insert(key, service.uid(), ports);
    }

    /// Forgets a Service the watch says is deleted, unless the view holds a newer
    /// Service of its name (from a create's answer that came first).
    fn forget(&mut self, service: &Service) {
        let key = key(service);
        let uid = service.uid();
        let newer = self
            .services
            .get(&key)
            .is_some_and(|held| held.uid.is_some() && held.uid != uid);
        if !newer {
            self.remove(&key);
        }
        self.left.push(uid);
    }

    /// Takes in a Service this process has just created or applied, from the API
    /// server's answer: unless the watch has told of it already (it is kept, with the
    /// same uid) or of its end (its uid left).
    pub(crate) fn created(&mut self, service: &Service) {
        let uid = service.uid();
        let key = key(service);
        let told = self
            .services
            .get(&key)
            .is_some_and(|held| held.uid.is_some() && held.uid == uid);
        if told || self.left.contains(uid.as_deref()) {
            return;
        }
        let ports: Vec<u16> = held_by(service).collect();
        if !ports.is_empty() {
            self.insert(key, uid, ports);
        }
    }

    fn insert(&mut self, key: String, uid: Option<String>, ports: Vec<u16>) {
        self.remove(&key);
        for port in &ports {
            *self.used.entry(*port).or_default() += 1;
        }
        self.services.insert(key, Held { uid, ports });
    }

    fn remove(&mut self, key: &str) -> Option<Held> {
        let held = self.services.remove(key)?;
        for port in &held.ports {
            if let Some(count) = self.used.get_mut(port) {
                *count -= 1;
                if *count == 0 {
                    self.used.remove(port);
                }
            }
        }
        Some(held)
    }
}

fn key(service: &Service) -> String {
    format!(
        "{}/{}",
        service.namespace().unwrap_or_default(),
        service.name_any()
    )
}

/// The uids of the last [`LEFT_KEPT`] Services that left the view.
#[derive(Debug, Default)]
struct Left {
    order: VecDeque<String>,
    uids: HashSet<String>,
}

impl Left {
    fn push(&mut self, uid: Option<String>) {
        let Some(uid) = uid else { return };
        if !self.uids.insert(uid.clone()) {
            return;
        }
        self.order.push_back(uid);
        if self.order.len() > LEFT_KEPT
            && let Some(oldest) = self.order.pop_front()
        {
            self.uids.remove(&oldest);
        }
    }

    fn contains(&self, uid: Option<&str>) -> bool {
        uid.is_some_and(|uid| self.uids.contains(uid))
    }
}

/// Where to watch, and for how long one watch request may stay open.
#[derive(Clone)]
pub(crate) struct Follows {
    pub cluster: ClusterId,
    pub client: Client,
    /// As [`crate::live::Watches::window`].
    pub window: Duration,
}

/// Keeps `book` current until every reader is gone.
pub(crate) async fn keep(follows: Follows, book: watch::Sender<PortsBook>) {
    let cluster = follows.cluster.clone();
    framedb_core::live::keep(book, cluster, "node port watch", |book| {
        let follows = follows.clone();
        async move { follow(&follows, &book).await }
    })
    .await;
}

/// Starts the watcher, keeps the view from its events, and returns why it stopped: at
/// the first error other than a `410`.
async fn follow(follows: &Follows, book: &watch::Sender<PortsBook>) -> String {
    // Slim: of each Service, its names, uid and ports.
    let services = Api::<Slim<Service>>::all(follows.client.clone());
    let mut said = watcher(services, watch_config(follows.window)).boxed();
    let mut kept = Kept::default();
    loop {
        // A watcher's stream never ends; were it to, the view could not be kept.
        let Some(said) = said.next().await else {
            return "the watch ended".to_owned();
        };
        match kept.take(said) {
            Ok(true) => {
                book.send_replace(kept.book());
            }
            Ok(false) => {}
            Err(error) => return broken(&follows.cluster, "Services", error),
        }
    }
}

/// The view while in step, and the one a list is building.
#[derive(Default)]
struct Kept {
    in_step: Option<Arc<View>>,
    listing: Option<NodePorts>,
}

impl Kept {
    fn book(&self) -> PortsBook {
        self.in_step.clone()
    }

    /// Takes in what the watcher yielded; `Ok(true)` when the book is another now.
    fn take(
        &mut self,
        said: watcher::Result<Event<Slim<Service>>>,
    ) -> Result<bool, watcher::Error> {
        let event = match said {
            Ok(event) => event,
            // The watcher lists again, starting with `Init`: out of step until `InitDone`.
            Err(error) if relists(&error) => return Ok(self.in_step.take().is_some()),
            Err(error) => return Err(error),
        };
        Ok(match event {
            Event::Init => {
                self.listing = Some(NodePorts::default());
                self.in_step.take().is_some()
            }
            Event::InitApply(service) => {
                if let Some(listing) = &mut self.listing {
                    listing.note(&service.0);
                }
                false
            }
            Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                self.in_step = Some(Arc::new(View(Mutex::new(listed))));
                true
            }
            Event::Apply(service) => {
                if let Some(view) = &self.in_step {
                    view.lock().note(&service.0);
                }
                false
            }
            Event::Delete(service) => {
                if let Some(view) = &self.in_step {
                    view.lock().forget(&service.0);
                }
                false
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::live::gone;

    fn service(namespace: &str, name: &str, uid: &str, node_ports: &[u16]) -> Slim<Service> {
        let ports: Vec<_> = node_ports
            .iter()
            .map(|port| json!({ "port": 80, "nodePort": port }))
            .collect();
        let ports = if ports.is_empty() {
            vec![json!({ "port": 80 })]
        } else {
            ports
        };
        serde_json::from_value(json!({
            "metadata": { "namespace": namespace, "name": name, "uid": uid },
            "spec": { "ports": ports },
        }))
        .unwrap()
    }

    fn used(kept: &Kept) -> Option<Vec<u16>> {
        let view = kept.book()?;
        let view = view.lock();
        let mut ports: Vec<u16> = view.used.keys().copied().collect();
        ports.sort_unstable();
        Some(ports)
    }

    fn listed(kept: &mut Kept, services: Vec<Slim<Service>>) {
        assert!(kept.take(Ok(Event::Init)).is_ok());
        for service in services {
            assert!(!kept.take(Ok(Event::InitApply(service))).unwrap());
        }
        assert!(kept.take(Ok(Event::InitDone)).unwrap());
    }

    #[test]
    fn the_view_is_in_step_from_init_done_and_keeps_only_services_with_node_ports() {
        let mut kept = Kept::default();
        assert!(!kept.take(Ok(Event::Init)).unwrap());
        kept.take(Ok(Event::InitApply(service("a", "np", "u1", &[30900]))))
            .unwrap();
        assert_eq!(used(&kept), None, "the list is not done");
        kept.take(Ok(Event::InitApply(service("a", "cip", "u2", &[]))))
            .unwrap();
        assert!(kept.take(Ok(Event::InitDone)).unwrap());
        assert_eq!(used(&kept), Some(vec![30900]));
        assert_eq!(kept.book().unwrap().lock().len(), 1, "no ClusterIP Service");

        kept.take(Ok(Event::Apply(service("b", "np", "u3", &[30901, 30902]))))
            .unwrap();
        kept.take(Ok(Event::Apply(service("a", "np", "u1", &[]))))
            .unwrap();
        assert_eq!(used(&kept), Some(vec![30901, 30902]), "a is ClusterIP now");
        kept.take(Ok(Event::Delete(service("b", "np", "u3", &[30901, 30902]))))
            .unwrap();
        assert_eq!(used(&kept), Some(vec![]));
    }

    #[test]
    fn a_relist_swaps_in_a_fresh_view_at_its_end() {
        let mut kept = Kept::default();
        listed(&mut kept, vec![service("a", "x", "u1", &[30900])]);
        // A 410: out of step until the watcher's new list is done.
        assert!(kept.take(Err(gone())).unwrap());
        assert_eq!(used(&kept), None);
        kept.take(Ok(Event::Init)).unwrap();
        kept.take(Ok(Event::InitApply(service("a", "y", "u2", &[30905]))))
            .unwrap();
        assert_eq!(used(&kept), None);
        kept.take(Ok(Event::InitDone)).unwrap();
        assert_eq!(used(&kept), Some(vec![30905]), "x left while unwatched");

        let unavailable = kube::core::Status::failure("unavailable", "ServiceUnavailable")
            .with_code(503)
            .boxed();
        let failed = watcher::Error::WatchFailed(kube::Error::Api(unavailable));
        let error = kept.take(Err(failed)).unwrap_err();
        let why = broken(&ClusterId::new("c1").unwrap(), "Services", error);
        assert!(
            why.starts_with("watching Services on cluster 'c1' failed"),
            "{why}"
        );
    }

    #[test]
    fn a_create_shows_at_once_and_its_events_replace_it() {
        let mut kept = Kept::default();
        listed(&mut kept, vec![]);
        let view = kept.book().unwrap();
        let mine = service("db", "one", "u1", &[30900]);
        view.lock().created(&mine.0);
        assert!(view.lock().holds(30900));
        // Its ADDED confirms it; its delete takes it away.
        kept.take(Ok(Event::Apply(mine.clone()))).unwrap();
        assert_eq!(view.lock().len(), 1);
        kept.take(Ok(Event::Delete(mine.clone()))).unwrap();
        assert!(!view.lock().holds(30900));
        // An answer that arrives after the watch told of the Service's end is stale.
        view.lock().created(&mine.0);
        assert!(!view.lock().holds(30900));
    }

    #[test]
    fn a_late_delete_of_an_older_service_of_the_name_keeps_the_new_one() {
        let mut kept = Kept::default();
        let old = service("db", "one", "u1", &[30900]);
        listed(&mut kept, vec![old.clone()]);
        let view = kept.book().unwrap();
        // Deleted and made again (by this process) before the watch told of the delete.
        view.lock().created(&service("db", "one", "u2", &[30901]).0);
        assert!(
            !view.lock().holds(30900),
            "the name's Service is the new one"
        );
        kept.take(Ok(Event::Delete(old))).unwrap();
        assert!(view.lock().holds(30901));
    }

    #[test]
    fn a_port_held_twice_for_a_moment_stays_used_until_both_are_gone() {
        let mut kept = Kept::default();
        listed(&mut kept, vec![service("a", "old", "u1", &[30900])]);
        kept.take(Ok(Event::Apply(service("b", "new", "u2", &[30900]))))
            .unwrap();
        kept.take(Ok(Event::Delete(service("a", "old", "u1", &[30900]))))
            .unwrap();
        assert_eq!(used(&kept), Some(vec![30900]));
    }

    #[test]
    fn the_uids_that_left_are_bounded() {
        let mut left = Left::default();
        for n in 0..LEFT_KEPT + 10 {
            left.push(Some(format!("u{n}")));
        }
        assert_eq!(left.uids.len(), LEFT_KEPT);
        assert!(!left.contains(Some("u0")));
        assert!(left.contains(Some(&format!("u{}", LEFT_KEPT + 9))));
    }
}
