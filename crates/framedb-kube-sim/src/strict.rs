//! Server-side field validation (`?fieldValidation=Strict`, what `kubectl apply` and
//! `kubectl create -f` ask for by default): a body with a field its kind does not have
//! is refused with the API server's `strict decoding error: unknown field "spec.x"`.
//!
//! The kinds' fields are k8s-openapi's: a body read into its type and written back
//! loses exactly the fields the type does not know.

use k8s_openapi::api::{apps, core, networking, policy, rbac};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::resources::ResourceDef;

/// The fields of `body` that a `res` object does not have, as the API server names them
/// (`spec.containers[0].imagee`); `None` when the body cannot be read as that kind at
/// all (admission then says what is wrong with it).
pub(crate) fn unknown_fields(res: &ResourceDef, body: &Value) -> Option<Vec<String>> {
    let known = match res.plural {
        "namespaces" => round_trip::<core::v1::Namespace>(body),
        "nodes" => round_trip::<core::v1::Node>(body),
        "services" => round_trip::<core::v1::Service>(body),
        "pods" => round_trip::<core::v1::Pod>(body),
        "persistentvolumeclaims" => round_trip::<core::v1::PersistentVolumeClaim>(body),
        "persistentvolumes" => round_trip::<core::v1::PersistentVolume>(body),
        "configmaps" => round_trip::<core::v1::ConfigMap>(body),
        "secrets" => round_trip::<core::v1::Secret>(body),
        "serviceaccounts" => round_trip::<core::v1::ServiceAccount>(body),
        "events" => round_trip::<core::v1::Event>(body),
        "deployments" => round_trip::<apps::v1::Deployment>(body),
        "statefulsets" => round_trip::<apps::v1::StatefulSet>(body),
        "clusterroles" => round_trip::<rbac::v1::ClusterRole>(body),
        "clusterrolebindings" => round_trip::<rbac::v1::ClusterRoleBinding>(body),
        "roles" => round_trip::<rbac::v1::Role>(body),
        "rolebindings" => round_trip::<rbac::v1::RoleBinding>(body),
        "networkpolicies" => round_trip::<networking::v1::NetworkPolicy>(body),
        "poddisruptionbudgets" => round_trip::<policy::v1::PodDisruptionBudget>(body),
        _ => None,
    }?;
    let mut unknown = Vec::new();
    missing(body, &known, String::new(), &mut unknown);
    Some(unknown)
}

fn round_trip<K: DeserializeOwned + Serialize>(body: &Value) -> Option<Value> {
    let typed: K = serde_json::from_value(body.clone()).ok()?;
    serde_json::to_value(typed).ok()
}

/// Adds to `unknown` the paths of `given` that `known` lacks.
fn missing(given: &Value, known: &Value, path: String, unknown: &mut Vec<String>) {
    match (given, known) {
        (Value::Object(given), Value::Object(known)) => {
            for (key, value) in given {
                let at = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match known.get(key) {
                    Some(kept) => missing(value, kept, at, unknown),
                    // A null says "no value", which the type drops without knowing less.
                    None if value.is_null() => {}
                    None => unknown.push(at),
                }
            }
        }
        (Value::Array(given), Value::Array(known)) => {
            for (i, (value, kept)) in given.iter().zip(known).enumerate() {
                missing(value, kept, format!("{path}[{i}]"), unknown);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources::by_plural;

    #[test]
    fn fields_a_kind_does_not_have_are_named_by_their_path() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labelz": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "x", "imagee": "y"}],
                     "nodeName": null}});
        assert_eq!(
            unknown_fields(by_plural("pods"), &pod).unwrap(),
            ["metadata.labelz", "spec.containers[0].imagee"]
        );
        let fine = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c"}, "data": {"k": "v"}});
        assert_eq!(
            unknown_fields(by_plural("configmaps"), &fine).unwrap(),
            Vec::<String>::new()
        );
    }
}
