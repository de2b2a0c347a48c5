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
    /// The demo fleet's clock, in simulated seconds per real second: a pod's 30-second
    /// grace period takes 3 seconds, long enough to watch it `Terminating` with kubectl,
    /// short enough not to keep a user waiting on a delete and re-create.
    pub const DEMO_TIME_SCALE: f64 = 10.0;

    /// Starts one simulated cluster per name, each with `nodes` (names, or [`SimNode`]s
    /// with their capacity), whose pods become ready
    /// `ready_after` they are scheduled, whose clocks run `time_scale` times faster
    /// than real time ([`SimConfig::with_time_scale`]), and whose registries hold exactly
    /// `images` (the images the clusters' users deploy; any other does not pull). Their
    /// default StorageClass allows volume expansion, as the default classes of the cloud
    /// providers' CSI drivers (GKE, EKS, AKS) do, so that an instance's volume can grow;
    /// a bare simulator's does not, as kind's `local-path` class does not.
    ///
    /// # Errors
    /// When a name or a node name is not a DNS-1123 subdomain, a node's capacity is not a
    /// quantity of `cpu`, `memory` or `pods`, an image is not an image reference, a port
    /// cannot be bound, or `time_scale` is not a positive, finite number.
    pub async fn start<C, N, I>(
        clusters: C,
        nodes: N,
        ready_after: Duration,
        time_scale: f64,
        images: I,
    ) -> std::io::Result<Self>
    where
        C: IntoIterator,
        C::Item: Into<String>,
        N: IntoIterator,
        N::Item: Into<SimNode>,
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let images: Vec<String> = images.into_iter().map(Into::into).collect();
        if !(time_scale.is_finite() && time_scale > 0.0) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("a time scale must be a positive, finite number, not {time_scale}"),
            ));
        }
        let nodes: Vec<SimNode> = nodes.into_iter().map(Into::into).collect();
        let mut started = Vec::new();
        for name in clusters {
            let config = SimConfig::new(name)
                .with_nodes(nodes.clone())
                .with_pod_ready_after(ready_after)
                .with_time_scale(time_scale)
                .with_volume_expansion(true)
                .without_images()
                .with_images(images.iter().cloned());
            started.push(Simulator::start(config).await?);
        }
        Ok(Self { clusters: started })
    }

    /// The demo fleet: [`DEMO_CLUSTERS`], each with [`DEMO_NODES`], with clocks at
    /// `time_scale` ([`SimFleet::DEMO_TIME_SCALE`] unless the user chose otherwise), and
    /// registries holding exactly `images` (what FrameDB deploys, as its composition root
    /// says).
    ///
    /// # Errors
    /// When an image is not an image reference, a port cannot be bound, or `time_scale`
    /// is not a positive, finite number.
    pub async fn demo<I>(ready_after: Duration, time_scale: f64, images: I) -> std::io::Result<Self>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::start(DEMO_CLUSTERS, DEMO_NODES, ready_after, time_scale, images).await
    }

    /// The clusters, in the order they were named.
    pub fn clusters(&self) -> &[Simulator] {
        &self.clusters
    }

    /// The cluster called `name`.
    pub fn get(&self, name: &str) -> Option<&Simulator> {
        self.clusters.iter().find(|cluster| cluster.name() == name)
    }

    /// Writes each cluster's kubeconfig to `dir/{name}.kubeconfig`; returns the paths, in
    /// the clusters' order. The kubeconfigs are credentials, so `dir` must be private:
    /// it is created with mode 0700 when missing, and an existing one must be a directory
    /// (not a link) of this user that no one else may read or write.
    ///
    /// # Errors
    /// When `dir` is not private, or it or a file cannot be written.
    pub fn write_kubeconfigs(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        private_dir(dir)?;
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

/// Creates `dir` with mode 0700, or checks that the existing `dir` is a real directory of
/// this user that no one else may use: a predictable path in a shared temporary
/// directory could otherwise be prepared by another user to read the kubeconfigs.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, PermissionsExt as _};
    if let Some(parent) = dir.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => return Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(error),
    }
    let found = std::fs::symlink_metadata(dir)?;
    // On Linux, /proc/self belongs to the process's effective user.
    let me = std::fs::metadata("/proc/self").map(|own| own.uid()).ok();
    let private = found.is_dir()
        && me.is_none_or(|uid| uid == found.uid())
        && found.permissions().mode() & 0o077 == 0;
    if private {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} is not a private directory of this user (a directory, not a link, with \
                 mode 0700): remove it, or name another state directory",
                dir.display()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("framedb-sim-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(&dir);
        dir
    }

    #[tokio::test]
    async fn kubeconfigs_go_to_a_private_directory_only() {
        let fleet = SimFleet::start(["private-01"], ["node-a"], Duration::ZERO, 1.0, ["busybox"])
            .await
            .unwrap();
        let dir = scratch("fresh");
        let paths = fleet.write_kubeconfigs(&dir).unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&paths[0]), 0o600);
        // Again into the same, private, directory: fine.
        fleet.write_kubeconfigs(&dir).unwrap();

        let shared = scratch("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let refused = fleet.write_kubeconfigs(&shared).unwrap_err();
        assert_eq!(
            refused.kind(),
            std::io::ErrorKind::PermissionDenied,
            "{refused}"
        );
        assert!(
            std::fs::read_dir(&shared).unwrap().next().is_none(),
            "nothing written"
        );

        let link = scratch("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let refused = fleet.write_kubeconfigs(&link).unwrap_err();
        assert_eq!(
            refused.kind(),
            std::io::ErrorKind::PermissionDenied,
            "{refused}"
        );

        for path in [&dir, &shared] {
            std::fs::remove_dir_all(path).unwrap();
        }
        std::fs::remove_file(&link).unwrap();
    }
}
