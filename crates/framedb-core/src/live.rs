//! Status books: what a watch on one cluster knows of its instances' statuses, shared
//! with readers through a `tokio::sync::watch` channel.
//!
//! Deployers that can watch a cluster (Kubernetes, a remote local config service) keep
//! one book per cluster and answer status reads from it, so a read costs no round-trip.
//! A book is `None` while its watch is not in step with the cluster — before the first
//! full read, and from a broken watch until it has read everything again — and readers
//! then read the cluster directly, so a status is never older than the last event the
//! cluster sent on a working watch.
//!
//! The keeping itself — [`keep`]'s backoff between follows, [`LiveBook`]'s start on
//! first use — does not depend on what a book holds, so other watch-kept views of a
//! cluster (the Kubernetes adapter's node ports) use it too, with a book of their own.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::types::{ClusterId, FramedbId, StatusReport};

/// The statuses of a cluster's instances, by id.
pub type Statuses = HashMap<FramedbId, StatusReport>;

/// Every instance's status on a cluster as of its watch's last event, or `None` while
/// the watch is not in step with the cluster.
pub type StatusBook = Option<Arc<Statuses>>;

/// A reader's end of a cluster's [`StatusBook`].
pub type StatusFeed = watch::Receiver<StatusBook>;

/// The statuses of `ids` from `book`, when it is in step and knows every one of them.
///
/// An id that an in-step book does not know is either brand new (its workload's first
/// event is still on its way) or has lost its workload; only a direct read tells which,
/// so the answer is `None` then too.
pub fn answer_from(book: &StatusBook, ids: &[FramedbId]) -> Option<Statuses> {
    let book = book.as_ref()?;
    ids.iter()
        .map(|id| Some((id.clone(), book.get(id)?.clone())))
        .collect()
}

/// A feed that never holds a book, for deployers that have no watch: their readers
/// always read directly.
pub fn no_feed() -> StatusFeed {
    watch::channel(None).1
}

/// Sets the book to `statuses`, waking readers only when it changed.
pub fn publish(book: &watch::Sender<StatusBook>, statuses: Option<Statuses>) {
    book.send_if_modified(|current| {
        if current.as_deref() == statuses.as_ref() {
            return false;
        }
        *current = statuses.map(Arc::new);
        true
    });
}

/// The first wait before following again after a failure; it doubles up to
/// [`MAX_BACKOFF`], and starts over once the book was in step again.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Keeps `cluster`'s book with `follow` until every reader is gone. `follow` keeps the
/// book current for as long as it can (publishing `Some` once in step), then returns
/// why it stopped; the book is then `None` — readers read directly — until a later
/// `follow` is in step again. `source` names what is followed in the log line.
pub async fn keep<T, F, Fut>(
    book: watch::Sender<Option<T>>,
    cluster: ClusterId,
    source: &'static str,
    mut follow: F,
) where
    F: FnMut(watch::Sender<Option<T>>) -> Fut,
    Fut: Future<Output = String>,
{
    let mut backoff = MIN_BACKOFF;
    loop {
        let why = tokio::select! {
            () = book.closed() => return,
            why = follow(book.clone()) => why,
        };
        if book.send_replace(None).is_some() {
            backoff = MIN_BACKOFF;
        }
        tracing::warn!(cluster_id = %cluster, %why,
            "{source} broken: reads go to the cluster directly until it is back");
        tokio::select! {
            () = book.closed() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One cluster's book (a [`StatusBook`] unless told otherwise), kept by a task that
/// starts on first use and stops when the `LiveBook` is dropped.
#[derive(Debug)]
pub struct LiveBook<T = Arc<Statuses>> {
    started: OnceLock<Started<T>>,
}

impl<T> Default for LiveBook<T> {
    fn default() -> Self {
        Self {
            started: OnceLock::new(),
        }
    }
}

#[derive(Debug)]
struct Started<T> {
    feed: watch::Receiver<Option<T>>,
    task: JoinHandle<()>,
}

impl<T> Drop for Started<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<T> LiveBook<T> {
    /// The book's feed; the first call starts `keeper`, which owns the writing end for
    /// as long as it runs. Must be called within a Tokio runtime.
    pub fn feed<F, Fut>(&self, keeper: F) -> watch::Receiver<Option<T>>
    where
        F: FnOnce(watch::Sender<Option<T>>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.started
            .get_or_init(|| {
                let (book, feed) = watch::channel(None);
                Started {
                    feed,
                    task: tokio::spawn(keeper(book)),
                }
            })
            .feed
            .clone()
    }

    /// The book's feed when its keeper has been started, `None` before the first
    /// [`Self::feed`].
    pub fn started(&self) -> Option<watch::Receiver<Option<T>>> {
        self.started.get().map(|started| started.feed.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::InstanceStatus;

    fn id(name: &str) -> FramedbId {
        FramedbId::new(name).unwrap()
    }

    #[test]
    fn answers_only_from_an_in_step_book_that_knows_every_id() {
        let running = StatusReport::new(InstanceStatus::Running);
        let book: StatusBook = Some(Arc::new(Statuses::from([(id("a"), running.clone())])));
        assert_eq!(
            answer_from(&book, &[id("a")]),
            Some(Statuses::from([(id("a"), running)]))
        );
        assert_eq!(answer_from(&book, &[id("a"), id("b")]), None);
        assert_eq!(answer_from(&None, &[id("a")]), None);
        assert_eq!(answer_from(&book, &[]), Some(Statuses::new()));
    }

    #[tokio::test]
    async fn the_keeper_starts_once_and_stops_with_the_book() {
        let book = LiveBook::default();
        assert!(book.started().is_none());
        let (stopped_tx, stopped) = tokio::sync::oneshot::channel::<()>();
        let mut feed = book.feed(|sender| async move {
            let _stopped = stopped_tx;
            sender.send_replace(Some(Arc::new(Statuses::new())));
            std::future::pending::<()>().await;
        });
        feed.changed().await.unwrap();
        assert!(feed.borrow().is_some());
        let again = book.feed(|_| async { panic!("a second keeper started") });
        assert!(again.borrow().is_some());
        assert!(book.started().is_some_and(|feed| feed.borrow().is_some()));
        drop(book);
        // The keeper's end of the oneshot goes when its task is aborted.
        assert!(stopped.await.is_err());
    }
}
