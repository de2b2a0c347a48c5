//! Simulated clusters as `framedb-server` runs them: the embedded default (the whole
//! two-tier topology in one process) and the `simulate` role (the clusters alone, for a
//! fleet of separate processes).

use std::future::Future;

use framedb_core::ClusterId;
use framedb_kube_sim::{SimFleet, SimNode};

use super::{Adapters, App, Running, StartError};
use crate::remote::ClusterDirectory;
use crate::remote::directory::{LocalToken, service_url};
use crate::settings::{
    GlobalSettings, LayoutSettings, LocalSettings, ServeSettings, SimulateSettings,
};

/// Starts the demo fleet, writes its kubeconfigs, and serves a local config service for
/// each cluster (built by [`App::local`] from the kubeconfig file, as a separate process
/// would be), recorded in `directory`.
pub(super) async fn start_embedded(
    settings: &GlobalSettings,
    directory: &ClusterDirectory,
) -> Result<(SimFleet, Vec<Running>), StartError> {
    let fleet = SimFleet::demo(
        settings.demo.ready_after(),
        settings.demo.demo_time_scale,
        deployed_images(&settings.layout),
    )
    .await?;
    let paths = fleet.write_kubeconfigs(&settings.demo.state_dir)?;
    let mut locals = Vec::new();
    for (simulator, path) in fleet.clusters().iter().zip(paths) {
        let id = ClusterId::new(simulator.name()).map_err(|e| StartError::Domain(e.into()))?;
        // Each local service a token of its own, never the global API's.
        let token = LocalToken::generate();
        let local = LocalSettings {
            serve: ServeSettings {
                token: Some(token.expose().into()),
                ..ServeSettings::loopback()
            },
            mongo: Default::default(),
            kube: settings.kube.clone(),
            layout: settings.layout.clone(),
            ..LocalSettings::new(id.clone(), Some(path.clone()))
        };
        let running = App::local(&local, Adapters::default()).await?.spawn();
        let url = service_url(&running.url()).map_err(StartError::Settings)?;
        tracing::info!(cluster_id = %id, api = %simulator.url(), local_service = %url,
            kubeconfig = %path.display(),
            "simulated cluster (nodes node-a, node-b) with its local config service; watch it with: kubectl --kubeconfig {} get sts,svc,pvc,pods -A",
            path.display());
        // The embedded default knows its clusters' API servers: setup through one of them
        // installs the token its running local service has.
        let identity = framedb_k8s::kubeconfig::identity(&simulator.kubeconfig())
            .map_err(|e| StartError::Domain(e.into()))?;
        directory.insert_known(id, url, token, identity);
        locals.push(running);
    }
    tracing::info!(
        "embedded default: the global service, and a local config service per simulated \
         Kubernetes cluster, all in this process; nothing outside it is touched"
    );
    Ok((fleet, locals))
}

/// What the simulated clusters' registries hold: exactly the images FrameDB deploys with
/// `layout` and the config service's settings (the same the services are built with),
/// so an image the product names but the registry lacks fails as on a real cluster.
fn deployed_images(layout: &LayoutSettings) -> Vec<String> {
    framedb_k8s::deployed_images(
        &layout.layout(),
        &framedb_k8s::config_service::Settings::default(),
    )
}

/// The `simulate` role: serves the simulated clusters until `shutdown` resolves.
///
/// # Errors
/// When a cluster cannot start or its kubeconfig cannot be written.
pub async fn simulate(
    settings: &SimulateSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    for name in &settings.clusters {
        ClusterId::new(name.as_str()).map_err(|e| StartError::Domain(e.into()))?;
    }
    let fleet = SimFleet::start(
        settings.clusters.iter().cloned(),
        settings.nodes.iter().map(|name| {
            settings
                .node_capacity
                .iter()
                .fold(SimNode::new(name), |node, (resource, amount)| {
                    node.with_capacity(resource, amount)
                })
        }),
        settings.demo.ready_after(),
        settings.demo.demo_time_scale,
        // The local services of a `simulate` fleet run apart, with the default layout
        // unless told otherwise; their clusters hold what that layout deploys, and what
        // the user names for the others.
        deployed_images(&LayoutSettings::default())
            .into_iter()
            .chain(settings.images.iter().cloned()),
    )
    .await?;
    let paths = fleet.write_kubeconfigs(&settings.demo.state_dir)?;
    let latency = std::time::Duration::from_millis(settings.api_latency_ms);
    for (simulator, path) in fleet.clusters().iter().zip(&paths) {
        simulator.faults().set_latency(latency);
        tracing::info!(cluster = simulator.name(), api = %simulator.url(), kubeconfig = %path.display(),
            nodes = %settings.nodes.join(","),
            "simulated cluster serving; watch it with: kubectl --kubeconfig {} get nodes",
            path.display());
    }
    shutdown.await;
    fleet.shutdown().await;
    tracing::info!("simulated clusters stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_demo_clock_defaults_to_the_simulator_s() {
        assert_eq!(
            crate::settings::DemoSettings::default().demo_time_scale,
            framedb_kube_sim::SimFleet::DEMO_TIME_SCALE
        );
    }
}
