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

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::types::{ClusterId, FramedbId, StatusReport};

/// The statuses of a cluster's instances, by id.
pub type Statuses = HashMap<FramedbId, StatusReport>;

/// Every instance's status on a cluster as of its watch's last event, or `None` while
/// the watch is not in step with the cluster.
pub type StatusBook = Option<Arc<Book>>;

/// A reader's end of a cluster's [`StatusBook`].
pub type StatusFeed = watch::Receiver<StatusBook>;

/// How many of its latest changes a [`Book`] remembers, for [`Book::changes_since`].
const JOURNAL: usize = 1024;

/// Hands out [`Book::edition`]s: unique within the process.
static EDITIONS: AtomicU64 = AtomicU64::new(1);

/// An in-step book's statuses (it derefs to them), and which of its instances changed
/// lately, so that a follower that has seen an earlier state of the same book can be
/// told only what changed since ([`Book::changes_since`]) rather than everything again.
///
/// A book changes one instance at a time ([`amend`]): a watch event touches one
/// instance, so keeping and telling a change costs the same in a cluster of 10 or of
/// 10,000 instances.
#[derive(Debug, Clone)]
pub struct Book {
    statuses: Statuses,
    /// Which book this is: one published whole ([`publish`]) is a new edition, whose
    /// changes do not follow from an earlier one's.
    edition: u64,
    /// How many changes this edition has had.
    changes: u64,
    /// The ids of its latest changes, oldest first; the last is change `changes`.
    journal: VecDeque<FramedbId>,
}

/// Where a follower of a book is: which edition it saw, and how many of its changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    edition: u64,
    changes: u64,
}

/// What changed in a book since a [`Mark`]: the current status of each instance that
/// changed, and the instances that left it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Each changed instance's current status.
    pub changed: Statuses,
    /// The instances no longer in the book.
    pub gone: Vec<FramedbId>,
}

impl Changes {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.gone.is_empty()
    }

    /// The changes as (id, status) pairs, `None` for an instance that is gone, as
    /// [`amend`] takes them.
    pub fn into_amendments(self) -> impl Iterator<Item = (FramedbId, Option<StatusReport>)> {
        let gone = self.gone.into_iter().map(|id| (id, None));
        self.changed
            .into_iter()
            .map(|(id, report)| (id, Some(report)))
            .chain(gone)
    }
}

impl Book {
    /// A new edition holding `statuses`.
    pub fn new(statuses: Statuses) -> Self {
        Self {
            statuses,
            edition: EDITIONS.fetch_add(1, Ordering::Relaxed),
            changes: 0,
            journal: VecDeque::new(),
        }
    }

    /// The statuses, by id.
    pub fn statuses(&self) -> &Statuses {
        &self.statuses
    }

    /// Where a follower that has seen this state is.
    pub fn mark(&self) -> Mark {
        Mark {
            edition: self.edition,
            changes: self.changes,
        }
    }

    /// What changed since `mark`; `None` when `mark` is of another edition, or further
    /// back than the book remembers: the follower must then be told the whole book.
    pub fn changes_since(&self, mark: Mark) -> Option<Changes> {
        if mark.edition != self.edition || mark.changes > self.changes {
            return None;
        }
        let behind = usize::try_from(self.changes - mark.changes).ok()?;
        let skip = self.journal.len().checked_sub(behind)?;
        let ids: HashSet<&FramedbId> = self.journal.iter().skip(skip).collect();
        let mut changes = Changes::default();
        for id in ids {
            match self.statuses.get(id) {
                Some(report) => {
                    changes.changed.insert(id.clone(), report.clone());
                }
                None => changes.gone.push(id.clone()),
            }
        }
        Some(changes)
    }

    /// Sets `id`'s status (`None`: it left the book); whether that changed it.
    fn set(&mut self, id: FramedbId, report: Option<StatusReport>) -> bool {
        let changed = match report {
            Some(report) => match self.statuses.get_mut(&id) {
                Some(kept) if *kept == report => false,
                Some(kept) => {
                    *kept = report;
                    true
                }
                None => {
                    self.statuses.insert(id.clone(), report);
                    true
                }
            },
            None => self.statuses.remove(&id).is_some(),
        };
        if changed {
            self.changes += 1;
            if self.journal.len() == JOURNAL {
                self.journal.pop_front();
            }
            self.journal.push_back(id);
        }
        changed
    }
}

impl Deref for Book {
    type Target = Statuses;

    fn deref(&self) -> &Statuses {
        &self.statuses
    }
}

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

/// Sets the whole book to `statuses` (a new edition), waking readers only when it
/// changed.
pub fn publish(book: &watch::Sender<StatusBook>, statuses: Option<Statuses>) {
    book.send_if_modified(|current| {
        if current.as_deref().map(Book::statuses) == statuses.as_ref() {
            return false;
        }
        *current = statuses.map(|statuses| Arc::new(Book::new(statuses)));
        true
    });
}

/// Changes the in-step book one instance at a time (`None`: the instance left it),
/// waking readers only when that changed it; `false` when the book is not in step,
/// which it cannot be changed from.
///
/// The book is changed in place unless a reader holds it at that moment (then it is
/// copied once), so a change costs what it changes, not what the book holds.
pub fn amend(
    book: &watch::Sender<StatusBook>,
    amendments: impl IntoIterator<Item = (FramedbId, Option<StatusReport>)>,
) -> bool {
    let mut in_step = false;
    book.send_if_modified(|current| {
        let Some(kept) = current else {
            return false;
        };
        in_step = true;
        let mut changed = false;
        for (id, report) in amendments {
            // A copy only for an actual change, and at most one.
            let differs = match &report {
                Some(report) => kept.get(&id) != Some(report),
                None => kept.contains_key(&id),
            };
            if differs {
                changed |= Arc::make_mut(kept).set(id, report);
            }
        }
        changed
    });
    in_step
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
pub struct LiveBook<T = Arc<Book>> {
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
        let book: StatusBook = Some(Arc::new(Book::new(Statuses::from([(
            id("a"),
            running.clone(),
        )]))));
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
            sender.send_replace(Some(Arc::new(Book::new(Statuses::new()))));
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

    #[test]
    fn a_follower_is_told_what_changed_since_its_mark_or_the_whole_book() {
        use InstanceStatus::{Provisioning, Running};
        let (book, feed) = watch::channel(None);
        assert!(!amend(&book, [(id("a"), Some(StatusReport::new(Running)))]));
        assert!(
            feed.borrow().is_none(),
            "an out-of-step book is not amended"
        );

        publish(
            &book,
            Some(Statuses::from([(id("a"), StatusReport::new(Provisioning))])),
        );
        let first = feed.borrow().as_ref().unwrap().mark();
        assert!(amend(&book, [(id("a"), Some(StatusReport::new(Running)))]));
        assert!(amend(
            &book,
            [(id("b"), Some(StatusReport::new(Provisioning)))]
        ));
        assert!(amend(&book, [(id("b"), None), (id("c"), None)]));
        let kept = feed.borrow().clone().unwrap();
        assert_eq!(
            kept.changes_since(first),
            Some(Changes {
                changed: Statuses::from([(id("a"), StatusReport::new(Running))]),
                gone: vec![id("b")],
            })
        );
        assert_eq!(kept.changes_since(kept.mark()), Some(Changes::default()));
        assert_eq!(kept.len(), 1);

        // Nothing changed: no wake-up, and no change counted.
        let mut watching = feed.clone();
        watching.borrow_and_update();
        amend(&book, [(id("a"), Some(StatusReport::new(Running)))]);
        assert!(!watching.has_changed().unwrap());

        // A whole book is a new edition: a mark of the old one gets `None`.
        publish(&book, Some(Statuses::new()));
        assert_eq!(feed.borrow().as_ref().unwrap().changes_since(first), None);

        // Further back than the journal reaches: `None`.
        let start = feed.borrow().as_ref().unwrap().mark();
        for n in 0..=JOURNAL {
            let status = if n % 2 == 0 { Running } else { Provisioning };
            amend(&book, [(id("a"), Some(StatusReport::new(status)))]);
        }
        let kept = feed.borrow().clone().unwrap();
        assert_eq!(kept.changes_since(start), None);
        assert!(kept.changes_since(kept.mark()).is_some());
    }

    #[test]
    fn a_book_is_amended_in_place_unless_a_reader_holds_it() {
        let (book, feed) = watch::channel(None);
        publish(&book, Some(Statuses::new()));
        let before = Arc::as_ptr(feed.borrow().as_ref().unwrap());
        amend(
            &book,
            [(id("a"), Some(StatusReport::new(InstanceStatus::Running)))],
        );
        assert_eq!(Arc::as_ptr(feed.borrow().as_ref().unwrap()), before);
        let held = feed.borrow().clone().unwrap();
        amend(&book, [(id("a"), None)]);
        assert_ne!(Arc::as_ptr(feed.borrow().as_ref().unwrap()), before);
        assert_eq!(held.len(), 1, "the reader's copy stays as it was");
    }
}
