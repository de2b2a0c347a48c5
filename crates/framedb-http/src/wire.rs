//! What travels between the two tiers: the local config service's internal API, as its
//! server (`api/local.rs`) answers and its client ([`crate::remote`]) reads it, and
//! the failure envelope that both APIs share. One definition for both ends, so they
//! cannot drift apart.
//!
//! | method, path | answer |
//! |---|---|
//! | `GET /local/v1/ports/free?skip=30900,30901` | [`FreePorts`]: the lowest free port not in `skip`, and all of them, lowest first; 409 `ports_exhausted` |
//! | `PUT /local/v1/instances/{id}` [`DeployRequest`] | [`PortAnswer`]: deploys on exactly `port` (409 `port_taken`, with `details.port`); repeating it completes it and answers the same credentials |
//! | `GET /local/v1/instances/{id}/credentials` | `{success, data: {user, password}}`, read from the cluster; 404 `instance_not_found` |
//! | `DELETE /local/v1/instances/{id}` | `{success, message}`; 404 `instance_not_found` |
//! | `PATCH /local/v1/instances/{id}` [`AmendRequest`] | [`Amended`]: the instance of that stamp with that metadata and a volume of at least that size (409 `not_expandable`, `instance_busy`); repeating it changes nothing more |
//! | `GET /local/v1/instances/{id}` | `{success, data: Instance}` with live status |
//! | `GET /local/v1/instances` | `{success, data: [Instance]}`: every instance of this cluster |
//! | `POST /local/v1/statuses` [`StatusesRequest`] | `{success, data: {id: {status, reason?}}}` for the ids that have a workload |
//! | `GET /local/v1/statuses/watch?changes=true` | a stream of [`BookLine`]s, one JSON object per line |
//!
//! The watch stream sends the cluster's whole status book (see [`framedb_core::live`])
//! at once, then after every change either the whole book again (the default, which
//! every global understands) or, when the query asks for `changes`, only the instances
//! that changed (`{"changed": {id: status}, "gone": [id]}`), the whole book again only
//! when the local book was replaced or the reader fell more than a thousand changes
//! behind. A line goes every [`HEARTBEAT`] in any case (`{}` on a stream of changes),
//! so that a reader can tell a quiet stream from a dead one. `"statuses": null` means
//! the local service's own watch of the cluster is not in step, and readers must ask
//! `POST /local/v1/statuses`.

use std::borrow::Cow;
use std::time::Duration;

use framedb_core::live::Statuses;
use framedb_core::{
    Credentials, DeletionPolicy, FramedbId, Metadata, NodeId, ResourceProfile, Stamp, StorageSize,
    Timestamp,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The paths of the internal API.
pub mod paths {
    /// `GET`: free node ports.
    pub const FREE_PORTS: &str = "/local/v1/ports/free";
    /// `GET`: every instance of the cluster.
    pub const INSTANCES: &str = "/local/v1/instances";
    /// `GET`, `PUT`, `PATCH`, `DELETE`: one instance (the router's pattern).
    pub const INSTANCE: &str = "/local/v1/instances/{framedb_id}";
    /// `GET`: one instance's database credentials (the router's pattern).
    pub const CREDENTIALS: &str = "/local/v1/instances/{framedb_id}/credentials";
    /// `POST`: the statuses of some instances.
    pub const STATUSES: &str = "/local/v1/statuses";
    /// `GET`: the status stream.
    pub const STATUS_WATCH: &str = "/local/v1/statuses/watch";
    /// `GET`: the instances the cluster's objects describe (records rebuilt from them).
    pub const INVENTORY: &str = "/local/v1/inventory";
}

/// How often the status stream repeats itself when nothing changes.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// The longest line a status stream may send: a book of a full cluster (100 instances,
/// each with a reason of a few hundred bytes) is far below it.
pub const MAX_BOOK_LINE: usize = 1024 * 1024;

/// The most instances a status book may hold: each instance holds a node port of its
/// cluster, so a cluster has fewer. A stream whose changes grow the book past it is a
/// peer's error, and is ended: lines of changes are bounded one by one, not in sum.
pub const MAX_BOOK_ENTRIES: usize = 65_535;

/// The failure envelope of both APIs: `{success: false, message, error, details?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Failure {
    /// Always false.
    pub success: bool,
    /// A sentence for a person.
    pub message: String,
    /// The stable code, which clients act on: `malformed_json`, `invalid_input`,
    /// `unauthorized`, `forbidden`, `instance_not_found`, `cluster_not_found`,
    /// `route_not_found`, `method_not_allowed`, `already_exists`, `conflict`,
    /// `ports_exhausted`, `port_out_of_range`, `port_taken`, `cluster_conflict`,
    /// `cluster_in_use`, `shrink_refused`, `not_expandable`, `instance_busy`,
    /// `payload_too_large`, `unsupported_media_type`, `bad_gateway`, `unavailable`,
    /// `overloaded`, `not_ready`, `timeout`, `internal` (README, "The API", says when).
    #[schema(example = "instance_not_found")]
    pub error: String,
    /// Data a client may need to act on the failure, e.g. `{"port": 30901}` for
    /// `port_taken`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

/// The query string of `GET /local/v1/ports/free`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreePortQuery {
    /// Comma-separated ports to pass over.
    #[serde(default)]
    pub skip: String,
}

/// `{success, port, free}`: the answer of `GET /local/v1/ports/free`.
#[derive(Debug, Serialize, Deserialize)]
pub struct FreePorts {
    /// Always true.
    pub success: bool,
    /// The lowest free port.
    pub port: u16,
    /// Every free port, lowest first.
    pub free: Vec<u16>,
}

/// The body of `PUT /local/v1/instances/{id}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// The node to pin the instance to.
    pub node_id: NodeId,
    /// Its volume's size.
    pub storage_size: StorageSize,
    /// The node port to claim.
    pub port: u16,
    /// The caller's data, kept in the local record too.
    #[serde(default)]
    pub metadata: Metadata,
    /// The create's stamp, which the local record and every object carry (none from a
    /// global service older than stamps).
    #[serde(default)]
    pub stamp: Stamp,
    /// What deleting the instance does with its volume.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// When the global service registered it (the local record says the same; now, from
    /// a global service older than this field).
    #[serde(default)]
    pub created_at: Option<Timestamp>,
    /// The resource profile the create asked for (absent: the cluster's default; left
    /// out then, so that a local service older than this field still takes the body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceProfile>,
}

/// The body of `PATCH /local/v1/instances/{id}`: what the instance becomes, as the
/// global service computed it from its record (the whole metadata, not a patch, so that
/// a repeated call is idempotent).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmendRequest {
    /// The stamp of the create whose objects change.
    pub stamp: Stamp,
    /// The instance's metadata.
    pub metadata: Metadata,
    /// The size its volume grows to (a larger volume stays as it is).
    pub storage_size: StorageSize,
}

/// `{success, storage_size}`: the answer of `PATCH /local/v1/instances/{id}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Amended {
    /// Always true.
    pub success: bool,
    /// The size the instance's volume asks for now.
    pub storage_size: StorageSize,
}

/// The query of `DELETE /local/v1/instances/{id}`: which create's objects go, and how.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveQuery {
    /// The stamp of the create whose objects go (without it: the local record's).
    #[serde(default)]
    pub stamp: Option<Stamp>,
    /// `purge` (the default), `retain` or `undo`.
    #[serde(default)]
    pub removal: Option<String>,
}

/// `{success, port, credentials}`: the answer of `PUT /local/v1/instances/{id}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PortAnswer {
    /// Always true.
    pub success: bool,
    /// The port.
    pub port: u16,
    /// The instance's database credentials (the same on every repeat of the call).
    pub credentials: Credentials,
    /// Whether the create took back a volume retained for its id.
    #[serde(default)]
    pub reattached: bool,
}

/// The body of `POST /local/v1/statuses`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusesRequest {
    /// The instances asked about.
    pub ids: Vec<FramedbId>,
}

/// `{success: true, data}`: an answer with data, in both APIs.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Data<T> {
    /// Always true.
    pub success: bool,
    /// The data.
    pub data: T,
}

/// One line of the status stream: the whole book (`statuses`, `null` while the local
/// service's watch is not in step), or — on a stream opened with `?changes=true`, after
/// a whole book — what changed since the line before (`changed`, `gone`; `{}` when
/// nothing did).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct BookLine<'a> {
    /// Every instance's status: `Some(None)` is `null`, out of step; `None` (absent)
    /// makes this a line of changes.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub statuses: Option<Option<Cow<'a, Statuses>>>,
    /// The instances whose status changed, with their status.
    #[serde(default, skip_serializing_if = "Statuses::is_empty")]
    pub changed: Statuses,
    /// The instances that left the book.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gone: Vec<FramedbId>,
}

impl BookLine<'_> {
    /// The line as JSON, with its newline.
    pub fn to_line(&self) -> Vec<u8> {
        // Maps of ids to statuses always serialize.
        let mut text = serde_json::to_vec(self).unwrap_or_else(|_| b"{\"statuses\":null}".to_vec());
        text.push(b'\n');
        text
    }
}

/// A field that is present, `null` or not (`Some(None)` for `null`); an absent one
/// takes its default, `None`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// The query of `GET /local/v1/statuses/watch`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct WatchQuery {
    /// Send what changed after the first whole book, instead of the whole book again
    /// (a local service older than this sends whole books whatever it is asked).
    #[serde(default)]
    pub changes: bool,
}
