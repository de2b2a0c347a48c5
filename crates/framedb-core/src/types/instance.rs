//! The persistent instance: the create request, the registry record, the live status, and
//! the view that the API returns.

use std::fmt;
use std::ops::RangeInclusive;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::{
    ClusterId, DeletionPolicy, FramedbId, Metadata, NodeId, Removal, ResourceProfile, Stamp,
    StorageSize,
};

/// The node ports that persistent instances get (docs/architecture.md, "Port allocation").
pub const PORT_RANGE: RangeInclusive<u16> = 30900..=30999;

/// What a caller asks for when creating an instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewInstance {
    /// Unique id of the instance; it names its Kubernetes objects.
    pub framedb_id: FramedbId,
    /// The node the instance is pinned to.
    pub node_id: NodeId,
    /// The cluster the instance runs in.
    pub cluster_id: ClusterId,
    /// Size of the instance's volume.
    pub storage_size: StorageSize,
    /// The caller's own data about the instance.
    #[serde(default)]
    pub metadata: Metadata,
    /// What deleting it does with its volume (`Delete` unless given).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// The CPU and memory it asks for (the cluster's default profile unless given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceProfile>,
}

/// What a caller asks to change in an instance (`PATCH`): its metadata, as an RFC 7386
/// JSON merge patch, and its volume's size, which may only grow. At least one is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(try_from = "ChangeFields")]
pub struct InstanceChange {
    /// A merge patch onto the instance's metadata (`null` values remove keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<serde_json::Value>,
    /// The volume's new size (at least the present one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_size: Option<StorageSize>,
}

/// [`InstanceChange`] as read, before the check that it changes something.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeFields {
    #[serde(default)]
    metadata: Option<serde_json::Value>,
    #[serde(default)]
    storage_size: Option<StorageSize>,
}

impl TryFrom<ChangeFields> for InstanceChange {
    type Error = super::Invalid;
    fn try_from(fields: ChangeFields) -> Result<Self, Self::Error> {
        if fields.metadata.is_none() && fields.storage_size.is_none() {
            return Err(super::Invalid::new(
                "a change names metadata (a JSON merge patch), storage_size, or both",
            ));
        }
        Ok(Self {
            metadata: fields.metadata,
            storage_size: fields.storage_size,
        })
    }
}

/// Where an instance is in its life, as read from its cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum InstanceStatus {
    /// Being created, or its pods are starting.
    Provisioning,
    /// TiDB answers its health endpoint.
    Running,
    /// Its pod cannot be scheduled or started yet; the reason says why.
    Pending,
    /// Its workload failed or is missing; the reason says why.
    Failed,
    /// Being deleted.
    Deleting,
    /// Its cluster cannot be reached, so its state is not known.
    Unknown,
}

impl InstanceStatus {
    /// Every status.
    pub const ALL: [Self; 6] = [
        Self::Provisioning,
        Self::Running,
        Self::Pending,
        Self::Failed,
        Self::Deleting,
        Self::Unknown,
    ];

    /// The status as it appears in JSON and filters.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provisioning => "Provisioning",
            Self::Running => "Running",
            Self::Pending => "Pending",
            Self::Failed => "Failed",
            Self::Deleting => "Deleting",
            Self::Unknown => "Unknown",
        }
    }
}

impl fmt::Display for InstanceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The longest `status_reason`, in bytes: room for a scheduler's or kubelet's sentence
/// with its object names, not for a message a cluster's admin blew up.
pub const MAX_REASON_BYTES: usize = 1024;

/// A status read from a cluster, with the reason when it is not plain progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The status.
    pub status: InstanceStatus,
    /// Why, for `Pending`, `Failed` and `Unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl StatusReport {
    /// A status without a reason.
    pub fn new(status: InstanceStatus) -> Self {
        Self {
            status,
            reason: None,
        }
    }

    /// A status with a reason, cut to [`MAX_REASON_BYTES`] (ending in `…` when cut): a
    /// reason quotes what a cluster said (an event's message, a container's), which a
    /// cluster's admin writes, and it reaches every reader of the instance.
    pub fn with_reason(status: InstanceStatus, reason: impl Into<String>) -> Self {
        let mut reason = reason.into();
        if reason.len() > MAX_REASON_BYTES {
            let mut cut = MAX_REASON_BYTES - '…'.len_utf8();
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
            reason.push('…');
        }
        Self {
            status,
            reason: Some(reason),
        }
    }
}

/// A moment in UTC, kept to the millisecond and written as fixed-width RFC 3339
/// (`2026-11-25T19:00:00.000Z`) so that comparing the strings compares the times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The current time, truncated to the millisecond.
    pub fn now() -> Self {
        Self::from(Utc::now())
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(value: DateTime<Utc>) -> Self {
        let millis = value.timestamp_millis();
        Self(DateTime::from_timestamp_millis(millis).unwrap_or(value))
    }
}

impl From<Timestamp> for DateTime<Utc> {
    fn from(value: Timestamp) -> Self {
        value.0
    }
}

impl TryFrom<String> for Timestamp {
    type Error = chrono::ParseError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Ok(Self::from(
            DateTime::parse_from_rfc3339(&value)?.with_timezone(&Utc),
        ))
    }
}

impl From<Timestamp> for String {
    fn from(value: Timestamp) -> Self {
        format_timestamp(&value.0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_timestamp(&self.0))
    }
}

/// The one text form of a timestamp in records, responses and filters.
pub fn format_timestamp(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What the registry keeps about an instance. URLs are derived, not stored; the status is
/// the last one the provisioning service recorded (reads overlay the live one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceRecord {
    /// Unique id of the instance.
    pub framedb_id: FramedbId,
    /// The cluster it runs in.
    pub cluster_id: ClusterId,
    /// The node it is pinned to.
    pub node_id: NodeId,
    /// Size of its volume.
    pub storage_size: StorageSize,
    /// The caller's data.
    pub metadata: Metadata,
    /// What deleting it does with its volume (`Delete` in records from before it existed).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// The CPU and memory it asked for (none: its cluster's default profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceProfile>,
    /// The creation stamp its objects carry (none in records from before stamps).
    #[serde(default)]
    pub stamp: Stamp,
    /// Its node port, once deployed.
    pub port: Option<u16>,
    /// The last recorded status.
    pub status: InstanceStatus,
    /// With status `Deleting`: how the delete under way removes the instance's objects,
    /// so that whoever finishes it (a repeated delete, a reconcile pass) removes them as
    /// it was asked (a purge stays a purge, an undo an undo). Absent otherwise, and in
    /// records from before it existed (the deletion policy decides then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removal: Option<Removal>,
    /// When it was registered.
    pub created_at: Timestamp,
    /// When the record last changed.
    pub updated_at: Timestamp,
}

impl InstanceRecord {
    /// A fresh record for a create that is starting, under `stamp`: no port yet,
    /// `Provisioning`.
    pub fn provisioning(request: NewInstance, stamp: Stamp, now: Timestamp) -> Self {
        Self {
            framedb_id: request.framedb_id,
            cluster_id: request.cluster_id,
            node_id: request.node_id,
            storage_size: request.storage_size,
            metadata: request.metadata,
            deletion_policy: request.deletion_policy,
            resources: request.resources,
            stamp,
            port: None,
            status: InstanceStatus::Provisioning,
            removal: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// The address clients outside the cluster use: `http://{cluster_id}:{port}`.
    pub fn public_url(&self) -> Option<String> {
        self.port
            .map(|port| format!("http://{}:{port}", self.cluster_id))
    }

    /// The MySQL address inside the cluster, from the instance's Service name.
    pub fn local_url(&self) -> String {
        format!(
            "mysql://{}.framedb-storage.svc.cluster.local:4000",
            self.framedb_id
        )
    }
}

/// An instance as the API shows it: the record, its URLs and its live status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Instance {
    /// Unique id of the instance.
    pub framedb_id: FramedbId,
    /// The node it is pinned to.
    pub node_id: NodeId,
    /// The cluster it runs in.
    pub cluster_id: ClusterId,
    /// Its node port (absent while it is first being provisioned).
    pub port: Option<u16>,
    /// `http://{cluster_id}:{port}` (absent without a port).
    pub public_url: Option<String>,
    /// `mysql://{framedb_id}.framedb-storage.svc.cluster.local:4000`.
    pub local_url: String,
    /// The caller's data.
    pub metadata: Metadata,
    /// Size of its volume.
    pub storage_size: StorageSize,
    /// What deleting it does with its volume.
    pub deletion_policy: DeletionPolicy,
    /// The resource profile it asked for (`null`: its cluster's default).
    #[serde(default)]
    pub resources: Option<ResourceProfile>,
    /// Its status, read from the cluster.
    pub status: InstanceStatus,
    /// Why it has that status, where there is more to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// When it was registered.
    pub created_at: Timestamp,
    /// When its record last changed.
    pub updated_at: Timestamp,
}

impl Instance {
    /// The view of `record` with the status `report`.
    pub fn new(record: InstanceRecord, report: StatusReport) -> Self {
        Self {
            public_url: record.public_url(),
            local_url: record.local_url(),
            framedb_id: record.framedb_id,
            node_id: record.node_id,
            cluster_id: record.cluster_id,
            port: record.port,
            metadata: record.metadata,
            storage_size: record.storage_size,
            deletion_policy: record.deletion_policy,
            resources: record.resources,
            status: report.status,
            status_reason: report.reason,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_reason_is_cut_to_its_bound_on_a_character() {
        let short = StatusReport::with_reason(InstanceStatus::Pending, "Insufficient memory");
        assert_eq!(short.reason.as_deref(), Some("Insufficient memory"));
        // Two-byte characters, so that the cut falls inside one unless it is moved.
        let long = StatusReport::with_reason(InstanceStatus::Failed, "é".repeat(100_000));
        let reason = long.reason.unwrap();
        assert!(reason.len() <= MAX_REASON_BYTES, "{}", reason.len());
        assert!(reason.ends_with('…'));
        assert!(reason.starts_with("éé"));
    }

    #[test]
    fn create_request_rejects_unknown_fields_and_defaults_metadata() {
        let ok: NewInstance = serde_json::from_value(json!({
            "framedb_id": "tidb-001", "node_id": "node-a", "cluster_id": "cluster-01",
            "storage_size": "2Gi"
        }))
        .unwrap();
        assert!(ok.metadata.as_map().is_empty());
        let err = serde_json::from_value::<NewInstance>(json!({
            "framedb_id": "tidb-001", "node_id": "node-a", "cluster_id": "cluster-01",
            "storage_size": "2Gi", "replicas": 3
        }))
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown field `replicas`"),
            "{err}"
        );
    }

    #[test]
    fn timestamps_are_fixed_width_millis() {
        let t = Timestamp::from(DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap());
        assert_eq!(t.to_string(), "2023-11-14T22:13:20.123Z");
        let back: Timestamp = serde_json::from_value(json!("2023-11-14T22:13:20.123Z")).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn urls_derive_from_the_record() {
        let request: NewInstance = serde_json::from_value(json!({
            "framedb_id": "tidb-001", "node_id": "node-a", "cluster_id": "cluster-01",
            "storage_size": "2Gi"
        }))
        .unwrap();
        let mut record =
            InstanceRecord::provisioning(request, Stamp::unstamped(), Timestamp::now());
        assert_eq!(record.public_url(), None);
        record.port = Some(30903);
        assert_eq!(record.public_url().unwrap(), "http://cluster-01:30903");
        assert_eq!(
            record.local_url(),
            "mysql://tidb-001.framedb-storage.svc.cluster.local:4000"
        );
    }
}
