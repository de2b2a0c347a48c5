//! In-process adapters: a registry and a fleet of simulated clusters that keep everything
//! in memory. They serve the core's and the HTTP layer's tests, the benchmark's
//! no-cluster breakdown, and Rust programs that embed FrameDB without infrastructure; the
//! server uses the registry when no MongoDB is named. State is lost when the process ends.

mod directory;
mod fence;
mod fleet;
mod lease;
mod registry;

pub use directory::InMemoryDirectoryStore;
pub use fence::InMemoryFence;
pub use fleet::InMemoryFleet;
pub use lease::InMemoryLease;
pub use registry::InMemoryRegistry;
