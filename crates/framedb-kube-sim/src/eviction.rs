//! The `pods/{name}/eviction` subresource (`EvictionREST.Create`,
//! pkg/registry/core/pod/storage/eviction.go), which `kubectl drain` uses: a
//! `policy/v1` (or `v1beta1`) `Eviction` deletes its pod with the eviction's
//! `deleteOptions`, after marking it with a `DisruptionTarget` condition, and is answered
//! `201` with a `Success` `Status`. PodDisruptionBudgets are stored, but without a
//! disruption controller to count healthy pods none is consulted: no eviction is ever
//! refused for one (no `429`).

use serde_json::{Value, json};

use super::resources::key;
use super::status::{ApiError, ApiResult};
use super::store::{DeleteOptions, State};

impl State {
    /// Evicts pod `name` of namespace `ns` as `eviction` (the request's body) asks.
    pub(crate) fn evict(&mut self, ns: &str, name: &str, eviction: &Value) -> ApiResult<Value> {
        match eviction["kind"].as_str() {
            None | Some("Eviction") => {}
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "not a Eviction object: {other}"
                )));
            }
        }
        if eviction["metadata"]["name"].as_str().unwrap_or_default() != name {
            return Err(ApiError::bad_request(
                "name in URL does not match name in Eviction object",
            ));
        }
        let options = &eviction["deleteOptions"];
        let options = DeleteOptions::from_request(
            Some(if options.is_object() {
                options
            } else {
                &Value::Null
            }),
            |_| None,
        )?;
        let k = key(ns, name);
        self.disrupt_and_delete(
            &k,
            "EvictionByEvictionAPI",
            "Eviction API: evicting",
            &options,
        )?;
        Ok(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Success", "code": 201,
        }))
    }
}
