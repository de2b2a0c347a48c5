//! Services: defaulting, cluster IPs and node ports.
//!
//! Node ports are what FrameDB's port allocator races other clients for, so this part
//! follows Kubernetes closely: ports live in the cluster's `--service-node-port-range`
//! (30000–32767 unless `SimConfig::with_node_port_range` says otherwise), are unique
//! across the whole cluster, a taken or out-of-range port is a 422 `FieldValueInvalid`
//! worded like the API server's, and automatic allocation picks a random free port from
//! the upper (dynamic) band first, as Kubernetes' allocator does.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use serde_json::{Value, json};

use super::allocations::{Allocations, DEFAULT_NODE_PORTS};
use super::json::{default_at, str_at};
use super::resources::ObjKey;
use super::status::FieldError;

/// Lower end of Kubernetes' default `--service-node-port-range` (inclusive).
pub const NODE_PORT_MIN: u16 = *DEFAULT_NODE_PORTS.start();
/// Upper end of the default range (inclusive).
pub const NODE_PORT_MAX: u16 = *DEFAULT_NODE_PORTS.end();

/// First port of the dynamic band of `range`: Kubernetes reserves the lowest
/// `min(max(16, size/32), 128)` ports for static assignment and allocates automatically
/// from the rest first.
fn dynamic_band_start(range: &RangeInclusive<u16>) -> u16 {
    let size = u32::from(range.end() - range.start()) + 1;
    let static_band = (size / 32).clamp(16, 128);
    // A range of 16 ports or fewer is all static band: allocate from its start.
    range
        .start()
        .saturating_add(static_band as u16)
        .min(*range.end())
}

const TYPES: [&str; 4] = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];

/// Defaults and validates a Service, allocating its cluster IP and missing node ports.
pub(crate) fn prepare(
    alloc: &mut Allocations,
    key: &ObjKey,
    svc: &mut Value,
    old: Option<&Value>,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    default_at(svc, &["spec", "type"], json!("ClusterIP"));
    default_at(svc, &["spec", "sessionAffinity"], json!("None"));
    let ty = str_at(svc, &["spec", "type"]).to_string();
    if !TYPES.contains(&ty.as_str()) {
        errors.push(FieldError::not_supported("spec.type", &json!(ty), &TYPES));
        return errors;
    }
    let wants_node_ports = ty == "NodePort" || ty == "LoadBalancer";
    let headless = str_at(svc, &["spec", "clusterIP"]) == "None";

    let old_ports: Vec<Value> = old
        .and_then(|o| o["spec"]["ports"].as_array().cloned())
        .unwrap_or_default();
    let ports = svc["spec"]["ports"].as_array_mut();
    let ports: &mut [Value] = match ports {
        Some(ports) => ports.as_mut_slice(),
        None => &mut [],
    };
    if ports.is_empty() && ty != "ExternalName" && !headless {
        errors.push(FieldError::required("spec.ports", ""));
    }
    let many = ports.len() > 1;
    let mut taken_here = BTreeSet::new();
    let mut to_allocate = Vec::new();
    for (i, port) in ports.iter_mut().enumerate() {
        let path = format!("spec.ports[{i}]");
        default_at(port, &["protocol"], json!("TCP"));
        let number = port["port"].as_i64().unwrap_or(0);
        if !(1..=65535).contains(&number) {
            errors.push(FieldError::invalid(
                format!("{path}.port"),
                &port["port"],
                "must be between 1 and 65535, inclusive",
            ));
        }
        default_at(port, &["targetPort"], json!(number));
        if many && str_at(port, &["name"]).is_empty() {
            errors.push(FieldError::required(format!("{path}.name"), ""));
        }
        // The same port of the previous revision keeps its node port, as in Kubernetes.
        let previous = old_ports
            .iter()
            .find(|p| p["port"] == port["port"] && p["protocol"] == port["protocol"])
            .and_then(|p| p["nodePort"].as_i64());
        let requested = port["nodePort"].as_i64().filter(|n| *n != 0);
        if !wants_node_ports {
            match requested {
                Some(n) if Some(n) == previous => {
                    port.as_object_mut()
                        .expect("port is an object")
                        .remove("nodePort");
                }
                Some(_) => errors.push(FieldError::forbidden(
                    format!("{path}.nodePort"),
                    format!("may not be used when `type` is '{ty}'"),
                )),
                None => {}
            }
            continue;
        }
        match requested.or(previous) {
            None => to_allocate.push(i),
            Some(n) => {
                let field = format!("{path}.nodePort");
                let range = &alloc.node_port_range;
                if !u16::try_from(n).is_ok_and(|n| range.contains(&n)) {
                    errors.push(FieldError::invalid(
                        field,
                        &json!(n),
                        format!(
                            "provided port is not in the valid range. The range of valid ports is {}-{}",
                            range.start(),
                            range.end()
                        ),
                    ));
                    continue;
                }
                let n = n as u16;
                if !taken_here.insert(n) {
                    errors.push(FieldError::duplicate(field, &json!(n)));
                } else if alloc
                    .node_port_holder(n)
                    .is_some_and(|holder| holder != key)
                {
                    errors.push(FieldError::invalid(
                        field,
                        &json!(n),
                        "provided port is already allocated",
                    ));
                } else {
                    port["nodePort"] = json!(n);
                }
            }
        }
    }
    if !errors.is_empty() {
        return errors;
    }
    for i in to_allocate {
        match allocate(alloc, key, &taken_here) {
            Some(n) => {
                taken_here.insert(n);
                svc["spec"]["ports"][i]["nodePort"] = json!(n);
            }
            None => {
                errors.push(FieldError::invalid(
                    format!("spec.ports[{i}].nodePort"),
                    &json!(0),
                    "failed to allocate a nodePort: range is full",
                ));
                return errors;
            }
        }
    }

    // A Service keeps the cluster IP it was given (ValidateServiceUpdate).
    let before = old.map_or("", |o| str_at(o, &["spec", "clusterIP"]));
    let wanted = str_at(svc, &["spec", "clusterIP"]);
    if !before.is_empty() && !wanted.is_empty() && wanted != before {
        errors.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            &json!([wanted]),
            "may not change once set",
        ));
        return errors;
    }
    let cluster_ip = match str_at(svc, &["spec", "clusterIP"]) {
        "" => match old
            .map(|o| str_at(o, &["spec", "clusterIP"]))
            .filter(|ip| !ip.is_empty())
        {
            Some(ip) => ip.to_string(),
            None if ty == "ExternalName" => String::new(),
            None => alloc.next_cluster_ip(),
        },
        ip => ip.to_string(),
    };
    if !cluster_ip.is_empty() {
        svc["spec"]["clusterIP"] = json!(cluster_ip);
        svc["spec"]["clusterIPs"] = json!([cluster_ip]);
        default_at(svc, &["spec", "ipFamilies"], json!(["IPv4"]));
        default_at(svc, &["spec", "ipFamilyPolicy"], json!("SingleStack"));
        default_at(svc, &["spec", "internalTrafficPolicy"], json!("Cluster"));
    }
    if wants_node_ports {
        default_at(svc, &["spec", "externalTrafficPolicy"], json!("Cluster"));
    }
    if old.is_none() {
        svc["status"] = json!({ "loadBalancer": {} });
    }
    errors
}

/// A free node port, random within the dynamic band, else within the static band.
fn allocate(alloc: &mut Allocations, key: &ObjKey, also_taken: &BTreeSet<u16>) -> Option<u16> {
    let free = |p: &u16| {
        alloc
            .node_port_holder(*p)
            .is_none_or(|holder| holder == key)
            && !also_taken.contains(p)
    };
    let range = alloc.node_port_range.clone();
    let dynamic = dynamic_band_start(&range);
    for band in [
        dynamic..=*range.end(),
        *range.start()..=dynamic.saturating_sub(1),
    ] {
        let candidates: Vec<u16> = band.filter(free).collect();
        if !candidates.is_empty() {
            let pick = alloc.rng.below(candidates.len() as u64) as usize;
            return Some(candidates[pick]);
        }
    }
    None
}
