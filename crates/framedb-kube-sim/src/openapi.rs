//! OpenAPI v3 documents (`/openapi/v3` and `/openapi/v3/{api/v1 | apis/{group}/v1}`), as
//! much of them as `kubectl` reads: one path per served collection and object, each
//! operation marked with its `x-kubernetes-group-version-kind`, and the `PATCH`
//! operations declaring the `fieldValidation` query parameter. That is what lets
//! `kubectl apply` and `kubectl create -f` validate on the server (`--validate=strict`, the
//! default) instead of failing with "failed to download openapi".
//!
//! Not served: the component schemas (`kubectl explain` has nothing to explain, and
//! `kubectl apply` computes its patches from its built-in types) and `/openapi/v2`.

use serde_json::{Map, Value, json};

use super::resources::{RESOURCES, ResourceDef};

/// `group`'s path in the v3 index: `api/v1` or `apis/{group}/v1`.
fn group_path(group: &str) -> String {
    if group.is_empty() {
        "api/v1".to_owned()
    } else {
        format!("apis/{group}/v1")
    }
}

/// A stable hash of a group's document, which clients cache by.
fn hash(group: &str) -> String {
    let digest = group.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{digest:016X}")
}

/// `/openapi/v3`: where each group version's document is.
pub(crate) fn index() -> Value {
    let mut paths = Map::new();
    for res in RESOURCES {
        let path = group_path(res.group);
        paths.entry(path.clone()).or_insert_with(|| {
            json!({ "serverRelativeURL": format!("/openapi/v3/{path}?hash={}", hash(res.group)) })
        });
    }
    json!({ "paths": paths })
}

/// The group whose document `rest` (what follows `/openapi/v3/`) names, if it is served.
pub(crate) fn group_of(rest: &str) -> Option<&'static str> {
    RESOURCES
        .iter()
        .map(|res| res.group)
        .find(|group| group_path(group) == rest.trim_matches('/'))
}

/// The document of one group version.
pub(crate) fn document(group: &str) -> Value {
    let mut paths = Map::new();
    for res in RESOURCES.iter().filter(|res| res.group == group) {
        let base = format!("/{}", group_path(group));
        let collection = if res.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", res.plural)
        } else {
            format!("{base}/{}", res.plural)
        };
        paths.insert(
            collection.clone(),
            json!({
                "get": operation(res, "list"),
                "post": operation(res, "create"),
                "delete": operation(res, "deletecollection"),
            }),
        );
        paths.insert(
            format!("{collection}/{{name}}"),
            json!({
                "get": operation(res, "get"),
                "put": operation(res, "update"),
                "patch": operation(res, "patch"),
                "delete": operation(res, "delete"),
            }),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": "v1.33.0" },
        "paths": paths,
        "components": { "schemas": {} },
    })
}

/// One operation: its kind and, on writes, the parameters kubectl looks for.
fn operation(res: &ResourceDef, action: &str) -> Value {
    let mut parameters =
        vec![json!({ "name": "pretty", "in": "query", "schema": { "type": "string" } })];
    if matches!(action, "create" | "update" | "patch") {
        for name in ["dryRun", "fieldManager", "fieldValidation"] {
            parameters.push(json!({ "name": name, "in": "query", "schema": { "type": "string" } }));
        }
    }
    if action == "patch" {
        parameters.push(json!({ "name": "force", "in": "query", "schema": { "type": "boolean" } }));
    }
    json!({
        "operationId": format!("{action}{}", res.kind),
        "parameters": parameters,
        "responses": { "200": { "description": "OK" } },
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": res.group, "version": res.version, "kind": res.kind,
        },
    })
}
