//! FrameDB's registry in MongoDB: an `InstanceRegistry` on the official driver that
//! renders the core's typed filter to BSON (DESIGN.md §1, §3, §5).
//!
//! Not built yet: see issue 4. Until then the registry is [`framedb_core::memory`]'s.
