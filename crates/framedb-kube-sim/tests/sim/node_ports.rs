//! The node-port range, as the API server's `--service-node-port-range` sets it: a
//! Service asking for a port outside it is refused with the allocator's sentence, and
//! automatic allocation stays inside it. Driven by kubectl, and by kube-rs for the
//! answer's fields.

use framedb_kube_sim::SimConfig;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use serde_json::json;

use super::kubectl::Kubectl;
use super::{api_error, create_namespace, node_port_service, start_with};

#[tokio::test]
async fn a_node_port_outside_the_cluster_s_range_is_refused_and_allocation_stays_inside() {
    let (sim, client) =
        start_with(SimConfig::new("sim-node-ports").with_node_port_range(32000..=32015)).await;
    create_namespace(&client, "ports").await;
    let services: Api<Service> = Api::namespaced(client.clone(), "ports");

    let status = api_error(
        services
            .create(
                &PostParams::default(),
                &node_port_service("low", Some(30900)),
            )
            .await,
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        status.message,
        "Service \"low\" is invalid: spec.ports[0].nodePort: Invalid value: 30900: provided \
         port is not in the valid range. The range of valid ports is 32000-32015"
    );
    let cause = &status.details.unwrap().causes[0];
    assert_eq!(
        (cause.reason.as_str(), cause.field.as_str()),
        ("FieldValueInvalid", "spec.ports[0].nodePort")
    );

    // Every automatically allocated port lies in the range, until it is full.
    for n in 0..16 {
        let service = services
            .create(
                &PostParams::default(),
                &node_port_service(&format!("auto-{n}"), None),
            )
            .await
            .unwrap();
        let port = service.spec.unwrap().ports.unwrap()[0].node_port.unwrap();
        assert!((32000..=32015).contains(&port), "{port}");
    }
    let full = api_error(
        services
            .create(&PostParams::default(), &node_port_service("one-more", None))
            .await,
    );
    assert!(full.message.contains("range is full"), "{}", full.message);

    let Some(kubectl) = Kubectl::for_sim(&sim, "node-ports") else {
        return;
    };
    let service = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "by-kubectl", "namespace": "ports"},
        "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 31000}]}});
    let ran = kubectl.with_manifest("create", &service).await;
    assert!(!ran.success);
    let refused = ran.stderr;
    assert!(
        refused.contains(
            "spec.ports[0].nodePort: Invalid value: 31000: provided port is not in the valid \
             range. The range of valid ports is 32000-32015"
        ),
        "{refused}"
    );
}
