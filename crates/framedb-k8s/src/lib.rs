//! FrameDB on Kubernetes: the `ClusterDeployer` and `PortAllocator` adapters on kube-rs,
//! the config-service install / remove / status, and the Kubernetes API simulator that
//! tests and the embedded default run against (DESIGN.md §4, §6).
//!
//! Not built yet: see issue 3. Until then the server's embedded default runs on
//! [`framedb_core::memory`].
