//! The public API's OpenAPI 3.1 document, derived from the handlers' `#[utoipa::path]`
//! annotations and the types they read and answer. It is served at `GET /openapi.json`
//! and committed as `docs/openapi.json` (a test keeps the two equal).

use std::sync::LazyLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::wire::Failure;

/// The document's source: every public route and the schemas they use.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "FrameDB",
        description = "Persistent TiDB instances on a fleet of Kubernetes clusters: create \
            one on a given cluster and node, read its port, URLs and live status, query the \
            registry, delete it; and install each cluster's config service. Every failure is \
            `{success: false, message, error, details?}`; clients read `error` and `details`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        super::instances::create,
        super::instances::query,
        super::instances::list_cluster,
        super::instances::list_node,
        super::instances::get,
        super::instances::delete,
        super::instances::update,
        super::instances::credentials,
        super::config_service::setup,
        super::config_service::remove,
        super::config_service::status,
        super::healthz,
        super::readyz,
        document,
        crate::metrics::scrape,
    ),
    components(schemas(Failure)),
    modifiers(&Common),
    tags(
        (name = "instances", description = "Persistent TiDB instances."),
        (name = "config-service", description = "The per-cluster config service, installed \
            with the kubeconfig the caller sends."),
        (name = "service", description = "The service itself."),
    )
)]
struct ApiDoc;

/// The document as served, made once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes")
});

/// The OpenAPI document as pretty JSON (what `GET /openapi.json` answers and
/// `docs/openapi.json` holds).
pub fn document_json() -> &'static str {
    &DOCUMENT
}

/// This document.
#[utoipa::path(
    get, path = "/openapi.json", tag = "service", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.",
        content_type = "application/json", body = Object))
)]
pub(crate) async fn document() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], document_json())
}

/// What every operation shares: the bearer token (where the operator set one) and the
/// failures any route can answer.
struct Common;

/// The failures every route can answer, as (status, description).
const EVERY_ROUTE: [(&str, &str); 4] = [
    (
        "400",
        "`invalid_input` or `malformed_json`: a path, query string or body the API cannot \
         take; the message says what is wrong.",
    ),
    (
        "500",
        "`internal`: the cause is in the server's log, not the answer.",
    ),
    (
        "503",
        "`unavailable` (a cluster or the registry cannot be reached) or `overloaded` (the \
         server serves `--max-requests` already).",
    ),
    (
        "504",
        "`timeout`: a cluster or the registry did not answer in time, or the request took \
         longer than `--request-timeout-secs`.",
    ),
];

/// The failures of routes that take a body.
const WITH_BODY: [(&str, &str); 2] = [
    ("413", "`payload_too_large`: a body over 1 MiB."),
    (
        "415",
        "`unsupported_media_type`: a body sent as something other than JSON.",
    ),
];

/// The failure of routes behind the token.
const WITH_TOKEN: (&str, &str) = (
    "401",
    "`unauthorized`: a token is configured and the request lacks it (`WWW-Authenticate: \
     Bearer`).",
);

fn failure(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Failure")))
                .build(),
        )
        .build()
        .into()
}

fn add(operation: &mut Operation, (status, description): (&str, &str)) {
    operation
        .responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| failure(description));
}

impl Modify for Common {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![
            utoipa::openapi::security::SecurityRequirement::new("bearer", Vec::<String>::new()),
            // The token is the operator's choice: without one, no header is needed.
            utoipa::openapi::security::SecurityRequirement::default(),
        ]);
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                let open = operation
                    .security
                    .as_ref()
                    .is_some_and(|requirements| requirements.iter().all(is_empty));
                for response in EVERY_ROUTE {
                    add(operation, response);
                }
                if operation.request_body.is_some() {
                    for response in WITH_BODY {
                        add(operation, response);
                    }
                }
                if !open {
                    add(operation, WITH_TOKEN);
                }
            }
        }
    }
}

fn is_empty(requirement: &utoipa::openapi::security::SecurityRequirement) -> bool {
    requirement == &utoipa::openapi::security::SecurityRequirement::default()
}
