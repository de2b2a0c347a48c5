//! The [`Lease`] in memory: for replicas that share one process (tests, an embedding
//! program); replicas of separate processes share MongoDB's.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::error::Result;
use crate::ports::Lease;

/// A lease in memory.
#[derive(Debug, Default)]
pub struct InMemoryLease {
    /// The holder and when its term ends.
    held: Mutex<Option<(String, Instant)>>,
}

impl InMemoryLease {
    /// A lease nobody holds.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Lease for InMemoryLease {
    async fn hold(&self, holder: &str, term: Duration) -> Result<bool> {
        let now = Instant::now();
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let free = held
            .as_ref()
            .is_none_or(|(current, until)| current == holder || *until <= now);
        if free {
            *held = Some((holder.to_owned(), now + term));
        }
        Ok(free)
    }

    async fn release(&self, holder: &str) -> Result<()> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if held.as_ref().is_some_and(|(current, _)| current == holder) {
            *held = None;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_at_a_time_until_its_term_ends_or_it_lets_go() {
        let lease = InMemoryLease::new();
        let long = Duration::from_secs(60);
        assert!(lease.hold("a", long).await.unwrap());
        assert!(!lease.hold("b", long).await.unwrap());
        assert!(lease.hold("a", long).await.unwrap(), "renewed");
        lease.release("b").await.unwrap();
        assert!(
            !lease.hold("b", long).await.unwrap(),
            "only its holder lets go"
        );
        lease.release("a").await.unwrap();
        assert!(lease.hold("b", Duration::ZERO).await.unwrap());
        // A term of zero has ended already.
        assert!(lease.hold("a", long).await.unwrap());
    }
}
