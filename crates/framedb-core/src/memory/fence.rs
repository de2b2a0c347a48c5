//! The [`Fence`] in memory: the undone or deleted creates of this process's lifetime
//! (entries older than a day are dropped as new ones come).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::error::Result;
use crate::ports::Fence;
use crate::types::{FramedbId, Stamp};

/// How long an entry is kept.
const KEPT: Duration = Duration::from_secs(24 * 60 * 60);

/// Undone or deleted creates, in memory.
#[derive(Debug, Default)]
pub struct InMemoryFence {
    buried: Mutex<HashMap<(FramedbId, Stamp), Instant>>,
}

impl InMemoryFence {
    /// An empty fence.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Fence for InMemoryFence {
    async fn bury(&self, id: &FramedbId, stamp: &Stamp) -> Result<()> {
        let now = Instant::now();
        let mut buried = self.buried.lock().unwrap_or_else(PoisonError::into_inner);
        buried.retain(|_, at| now.duration_since(*at) < KEPT);
        buried.insert((id.clone(), stamp.clone()), now);
        Ok(())
    }

    async fn is_buried(&self, id: &FramedbId, stamp: &Stamp) -> Result<bool> {
        let buried = self.buried.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(buried.contains_key(&(id.clone(), stamp.clone())))
    }
}
