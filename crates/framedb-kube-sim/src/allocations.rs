//! What the cluster hands out to objects when they are written: uids, generated name
//! suffixes, cluster, pod and node IPs, and node ports, with the seeded random source
//! behind them.
//!
//! It sits below admission, so that validating a write can allocate without reaching
//! back into the whole store.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use super::faults::Rng;
use super::resources::ObjKey;

/// Kubernetes' default `--service-node-port-range`, 30000-32767.
pub(crate) const DEFAULT_NODE_PORTS: RangeInclusive<u16> = 30000..=32767;

/// The simulated cluster's allocations.
#[derive(Clone, Debug)]
pub(crate) struct Allocations {
    pub rng: Rng,
    /// The gaps between resourceVersions, apart from `rng` so that what the other
    /// allocations hand out does not depend on how many writes there were.
    versions: Rng,
    /// nodePort → the Service holding it; node ports are cluster-wide.
    node_ports: BTreeMap<u16, ObjKey>,
    /// The API server's `--service-node-port-range`.
    pub node_port_range: RangeInclusive<u16>,
    next_cluster_ip: u32,
    next_pod_ip: u32,
    next_node_ip: u32,
}

impl Allocations {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Rng::new(seed),
            versions: Rng::new(seed ^ 0x9e37_79b9_7f4a_7c15),
            node_ports: BTreeMap::new(),
            node_port_range: DEFAULT_NODE_PORTS,
            next_cluster_ip: 1,
            next_pod_ip: 2,
            next_node_ip: 2,
        }
    }

    /// The first resourceVersion of a new cluster: large and different per simulator,
    /// as an etcd revision of a cluster that has run for a while is, so that no client
    /// can take versions for small counters that start anywhere in particular.
    pub fn first_resource_version(&mut self) -> u64 {
        1_000_000 + self.versions.below(9_000_000_000)
    }

    /// The resourceVersion after `current`. etcd's revision counts every write to any
    /// key of the cluster (leases, events, other API servers' objects), so the versions
    /// one client sees have gaps; they stay increasing, which is all the simulator
    /// itself relies on.
    pub fn next_resource_version(&mut self, current: u64) -> u64 {
        current + 1 + self.versions.below(7)
    }

    pub fn next_uid(&mut self) -> String {
        let a = self.rng.next_u64();
        let b = self.rng.next_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            ((b >> 48) & 0x3fff) | 0x8000,
            b & 0xffff_ffff_ffff
        )
    }

    /// `n` random characters from Kubernetes' name-suffix alphabet (no vowels).
    pub fn random_suffix(&mut self, n: usize) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..n)
            .map(|_| ALPHABET[self.rng.below(ALPHABET.len() as u64) as usize] as char)
            .collect()
    }

    pub fn next_cluster_ip(&mut self) -> String {
        let n = self.next_cluster_ip;
        self.next_cluster_ip += 1;
        format!("10.96.{}.{}", (n >> 8) & 0xff, n & 0xff)
    }

    pub fn next_pod_ip(&mut self) -> String {
        let n = self.next_pod_ip;
        self.next_pod_ip += 1;
        format!("10.244.{}.{}", (n >> 8) & 0xff, n & 0xff)
    }

    pub fn next_node_ip(&mut self) -> String {
        let n = self.next_node_ip;
        self.next_node_ip += 1;
        format!("172.18.0.{n}")
    }

    /// The Service holding node port `port`, if any.
    pub fn node_port_holder(&self, port: u16) -> Option<&ObjKey> {
        self.node_ports.get(&port)
    }

    /// Makes `ports` the node ports `holder` holds, freeing any others it held.
    pub fn hold_node_ports(&mut self, holder: &ObjKey, ports: impl IntoIterator<Item = u16>) {
        self.free_node_ports(holder);
        for port in ports {
            self.node_ports.insert(port, holder.clone());
        }
    }

    /// Frees every node port `holder` holds.
    pub fn free_node_ports(&mut self, holder: &ObjKey) {
        self.node_ports.retain(|_, h| h != holder);
    }
}
