//! OpenAPI schemas of the domain types that the HTTP API reads and writes (feature
//! `openapi`). The types whose JSON is a checked string or object (ids, sizes, times,
//! metadata, credentials) describe themselves here, with the same limits their
//! constructors check; the plain structs and enums derive theirs where they are declared.

use std::borrow::Cow;

use serde_json::json;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{KnownFormat, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::types::{ClusterId, Credentials, FramedbId, Metadata, NodeId, StorageSize, Timestamp};

/// A string schema with a description, length bounds, an optional pattern and an example.
fn string(
    description: &str,
    pattern: Option<&str>,
    max_length: usize,
    example: &str,
) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .min_length(Some(1))
        .max_length(Some(max_length))
        .pattern(pattern)
        .examples([json!(example)])
        .into()
}

/// Implements `ToSchema` under the type's own name for a type whose `PartialSchema` is
/// given.
macro_rules! named {
    ($($name:ident),*) => {
        $(impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        })*
    };
}

named!(
    FramedbId,
    ClusterId,
    NodeId,
    StorageSize,
    Timestamp,
    Metadata,
    Credentials
);

impl PartialSchema for FramedbId {
    fn schema() -> RefOr<Schema> {
        // `query` and `cluster` (path words of the API) are refused too; the pattern
        // cannot say so in a form every generator reads.
        string(
            "The instance's id: a DNS-1123 label of at most 40 characters starting with a \
             letter; not `query` or `cluster`.",
            Some("^[a-z]([-a-z0-9]*[a-z0-9])?$"),
            40,
            "tidb-001",
        )
    }
}

/// A Kubernetes label value (cluster and node ids).
fn label_value(description: &str, example: &str) -> RefOr<Schema> {
    string(
        description,
        Some("^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"),
        63,
        example,
    )
}

impl PartialSchema for ClusterId {
    fn schema() -> RefOr<Schema> {
        label_value(
            "A cluster's id in the fleet: a Kubernetes label value.",
            "cluster-01",
        )
    }
}

impl PartialSchema for NodeId {
    fn schema() -> RefOr<Schema> {
        label_value(
            "A node's id, matched against the cluster's node label (by default \
             `kubernetes.io/hostname`): a Kubernetes label value.",
            "node-a",
        )
    }
}

impl PartialSchema for StorageSize {
    fn schema() -> RefOr<Schema> {
        string(
            "The volume's size: a Kubernetes quantity (`1Gi`, `1536Mi`, `2e9`, `1.5Ti`) from \
             1Gi to 1Pi.",
            Some("^[+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"),
            32,
            "2Gi",
        )
    }
}

impl PartialSchema for Timestamp {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some("A moment in UTC to the millisecond, in RFC 3339."))
            .examples([json!("2026-11-25T19:00:00.000Z")])
            .into()
    }
}

impl PartialSchema for Metadata {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "The caller's own JSON object: at most 64 KiB and 8 levels deep; keys are \
                 not empty, do not start with `$` and hold no `.` or NUL.",
            ))
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .examples([json!({"team": "analytics"})])
            .into()
    }
}

impl PartialSchema for Credentials {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("The instance's database user and password."))
            .property(
                "user",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([crate::types::ROOT_USER])),
            )
            .property(
                "password",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("32 characters of URL-safe base64.")),
            )
            .required("user")
            .required("password")
            .into()
    }
}
