//! Several simulated clusters started together: the demo fleet that `framedb-server`
//! runs by default and with `simulate`, and that tests and benchmarks start.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::simulator::{SimConfig, SimNode, Simulator};

/// The demo fleet's clusters.
pub const DEMO_CLUSTERS: [&str; 2] = ["cluster-01", "cluster-02"];
/// The nodes of each of the demo fleet's clusters.
pub const DEMO_NODES: [&str; 2] = ["node-a", "node-b"];

/// Simulated clusters, each on its own loopback port; they stop when the fleet is dropped.
#[derive(Debug)]
pub struct SimFleet {
    clusters: Vec<Simulator>,
}

impl SimFleet {
    /// Starts one simulated cluster per name, each with `nodes`, whose pods become ready
    /// `ready_after` they are scheduled.
    ///
    /// # Errors
    /// When a name or a node name is not a DNS-1123 subdomain, or a port cannot be bound.
    pub async fn start<C, N>(clusters: C, nodes: N, ready_after: Duration) -> std::io::Result<Self>
    where
        C: IntoIterator,
        C::Item: Into<String>,
        N: IntoIterator,
        N::Item: Into<String>,
    {
        let nodes: Vec<SimNode> = nodes.into_iter().map(SimNode::new).collect();
        let mut started = Vec::new();
        for name in clusters {
            let config = SimConfig::new(name)
                .with_nodes(nodes.clone())
                .with_pod_ready_after(ready_after);
            started.push(Simulator::start(config).await?);
        }
        Ok(Self { clusters: started })
    }

    /// The demo fleet: [`DEMO_CLUSTERS`], each with [`DEMO_NODES`].
    ///
    /// # Errors
    /// When a port cannot be bound.
    pub async fn demo(ready_after: Duration) -> std::io::Result<Self> {
        Self::start(DEMO_CLUSTERS, DEMO_NODES, ready_after).await
    }

    /// The clusters, in the order they were named.
    pub fn clusters(&self) -> &[Simulator] {
        &self.clusters
    }

    /// The cluster called `name`.
    pub fn get(&self, name: &str) -> Option<&Simulator> {
        self.clusters.iter().find(|cluster| cluster.name() == name)
    }

    /// Writes each cluster's kubeconfig to `dir/{name}.kubeconfig`, creating `dir`;
    /// returns the paths, in the clusters' order.
    ///
    /// # Errors
    /// When the directory or a file cannot be written.
    pub fn write_kubeconfigs(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        self.clusters
            .iter()
            .map(|cluster| {
                let path = dir.join(format!("{}.kubeconfig", cluster.name()));
                cluster.write_kubeconfig(&path)?;
                Ok(path)
            })
            .collect()
    }

    /// Stops every cluster.
    pub async fn shutdown(self) {
        for cluster in self.clusters {
            cluster.shutdown().await;
        }
    }
}
