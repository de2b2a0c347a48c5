//! A Kubernetes API server simulator, served over real HTTP on loopback, so that the
//! real kube-rs client code (`kube::Client`, `kube::Api<K>`) and `kubectl` run against
//! it unchanged; and the demo fleet ([`SimFleet`]) of such clusters that `framedb-server`
//! runs by default and with `simulate`.
//!
//! It keeps objects with resourceVersions, answers with Kubernetes `Status` failures
//! (404, 409, 422 for a taken node port, ...), cascades namespace deletion, runs
//! StatefulSets and Deployments as pods scheduled onto simulated nodes by node selector,
//! binds volume claims, and can inject failed answers, latency and dropped connections
//! ([`Faults`]).
//!
//! Served: core `v1` namespaces, nodes, services, pods, persistentvolumeclaims,
//! persistentvolumes, configmaps and secrets; `apps/v1` deployments and statefulsets;
//! watches of every collection; discovery and server-side `Table`s for `kubectl get`.
//! Not served: other subresources than `/status`, other API groups.
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
//!    `faults` (fault injection, request counts, the seeded PRNG), `patch` (patch
//!    bodies, on the `json-patch` crate) and `quantity` (resource quantities) use no
//!    other module.
//! 2. `status` (`Status` failures) uses `resources`; `selectors` uses `resources` and
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
//!    the allocations live apart from it.
//! 6. `store` (the objects and the API verbs) uses `admission`, `allocations`, `json`,
//!    `patch`, `resources`, `selectors` and `status`; it admits every write.
//! 7. `events` (what the components record) uses `store`, `json` and `resources`;
//!    `controllers` uses `store` (its reconcile loop is methods of `store`'s `State`),
//!    `admission`, `events`, `faults`, `json`, `resources`, `scheduling` and
//!    `selectors`.
//! 8. `shared` (what a running simulator's tasks share) uses `faults` and `store`.
//! 9. `watch` uses `shared`, `store`, `resources`, `selectors` and `status`.
//! 10. `routes` (the HTTP face, and the accept loop that serves it) uses `watch`,
//!     `shared`, `store` (and the controllers through `State`), `discovery`, `table`,
//!     `faults`, `resources`, `selectors` and `status`.
//! 11. `simulator` uses `routes`, `shared`, `store` (and the controllers through
//!     `State`), `admission`, `faults`, `resources` and `services` (the default node-port
//!     range); `fleet` uses `simulator`.

mod admission;
mod allocations;
mod controllers;
mod discovery;
mod events;
mod faults;
mod fleet;
mod json;
mod openapi;
mod patch;
mod pod_security;
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
mod watch;

pub use faults::{DropWhen, Faults, Injected, RequestStats, Verb};
pub use fleet::{DEMO_CLUSTERS, DEMO_NODES, SimFleet};
pub use services::{NODE_PORT_MAX, NODE_PORT_MIN};
pub use simulator::{SimConfig, SimNode, Simulator};
