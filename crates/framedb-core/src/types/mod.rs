//! Validated domain types: every value here has passed the rules of the API (README, "The API"), so
//! code that holds one never checks it again. Each type deserializes through its
//! validating constructor, so an invalid value cannot be built from JSON either.

mod credentials;
mod ids;
mod instance;
mod invalid;
mod metadata;
mod ownership;
mod quantity;
mod resources;

pub use credentials::{Credentials, ROOT_USER};
pub use ids::{ClusterId, FramedbId, NodeId};
pub use instance::{
    Instance, InstanceChange, InstanceRecord, InstanceStatus, MAX_REASON_BYTES, NewInstance,
    PORT_RANGE, StatusReport, Timestamp, format_timestamp,
};
pub use invalid::Invalid;
pub use metadata::Metadata;
pub use ownership::{DeletionPolicy, Removal, Stamp};
pub use quantity::StorageSize;
pub use resources::ResourceProfile;
