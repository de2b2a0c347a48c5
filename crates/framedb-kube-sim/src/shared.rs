//! What a running simulator's request handlers, watches and timer share: the cluster
//! state behind its lock, the fault injector, request counts and the watch epoch.

use std::sync::{Mutex, MutexGuard};

use super::faults::{Faults, RequestStats};
use super::store::State;

/// What the request handlers share.
pub(crate) struct Shared {
    pub state: Mutex<State>,
    pub faults: Faults,
    pub stats: Mutex<RequestStats>,
    /// `127.0.0.1:PORT`, for `/api`'s server address.
    pub address: String,
    /// Bumped to end every open watch (a restart of the API server, or its shutdown).
    pub watch_epoch: tokio::sync::watch::Sender<u64>,
}

impl Shared {
    pub fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock must not take every later request down with it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn stats(&self) -> MutexGuard<'_, RequestStats> {
        self.stats
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
