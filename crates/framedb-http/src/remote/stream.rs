//! Following a local service's status stream (`GET /local/v1/statuses/watch`) into the
//! global tier's book of that cluster ([`framedb_core::live`]).
//!
//! The stream is JSON lines ([`BookLine`]): asked for changes, a local service sends its
//! whole book first and then what changed, which is applied to the book as it comes (one
//! older than that sends whole books, which replace it). It is framed by tokio-util's `LinesCodec` with a
//! maximum line length, so that a hostile or broken peer cannot make the global service
//! buffer without bound. A silent stream is cut by the client's read timeout (three
//! heartbeats), an unreadable or oversized line ends it; either way the book goes back
//! to `None` until a new stream is in step.

use std::borrow::Cow;
use std::sync::Arc;

use framedb_core::ClusterId;
use framedb_core::live::{self, Changes, StatusBook};
use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::watch;
use tokio_util::codec::{FramedRead, LinesCodec};
use tokio_util::io::StreamReader;

use super::directory::ClusterDirectory;
use crate::wire::{BookLine, MAX_BOOK_ENTRIES, MAX_BOOK_LINE, paths};

/// A cluster's status stream, followed into its book.
pub(super) struct StatusStream {
    pub http: reqwest::Client,
    pub directory: Arc<ClusterDirectory>,
    pub cluster: ClusterId,
}

impl StatusStream {
    /// Keeps `book` current until every reader is gone.
    pub async fn keep(self, book: watch::Sender<StatusBook>) {
        let stream = Arc::new(self);
        live::keep(book, stream.cluster.clone(), "status stream", |book| {
            let stream = stream.clone();
            async move { stream.follow(&book).await }
        })
        .await;
    }

    /// Opens the stream and copies each line into `book`; returns why it stopped.
    async fn follow(&self, book: &watch::Sender<StatusBook>) -> String {
        let Some((base, token)) = self.directory.endpoint(&self.cluster) else {
            return "the cluster is no longer in the directory".into();
        };
        let mut url = match base.join(paths::STATUS_WATCH.trim_start_matches('/')) {
            Ok(url) => url,
            Err(error) => return format!("the stream's URL cannot be built: {error}"),
        };
        url.query_pairs_mut().append_pair("changes", "true");
        let mut request = self.http.get(url);
        if let Some(token) = &token {
            request = request.bearer_auth(token.expose());
        }
        let response = match request.send().await {
            Ok(response) if response.status().is_success() => response,
            Ok(response) => return format!("the local service answered {}", response.status()),
            Err(error) => return error.to_string(),
        };
        let body = StreamReader::new(response.bytes_stream().map_err(std::io::Error::other));
        let mut lines = FramedRead::new(body, LinesCodec::new_with_max_length(MAX_BOOK_LINE));
        loop {
            let line = match lines.next().await {
                Some(Ok(line)) => line,
                Some(Err(error)) => return format!("the stream broke: {error}"),
                None => return "the local service closed it".into(),
            };
            let line = match serde_json::from_str::<BookLine>(&line) {
                Ok(line) => line,
                Err(error) => return format!("an unreadable line: {error}"),
            };
            // Past the bound, nothing of the line is taken: readers never see such a book.
            // (A closure: the sentence is made only when a stream ends, not for each line.)
            let past = || format!("the book would grow past {MAX_BOOK_ENTRIES} instances");
            match line.statuses {
                Some(whole) if whole.as_ref().is_some_and(|w| w.len() > MAX_BOOK_ENTRIES) => {
                    return past();
                }
                Some(whole) => live::publish(book, whole.map(Cow::into_owned)),
                None => {
                    let grows = book.borrow().as_ref().map(|kept| {
                        let new = line.changed.keys().filter(|id| !kept.contains_key(*id));
                        kept.len() + new.count()
                    });
                    if grows.is_some_and(|size| size > MAX_BOOK_ENTRIES) {
                        return past();
                    }
                    let changes = Changes {
                        changed: line.changed,
                        gone: line.gone,
                    };
                    if !live::amend(book, changes.into_amendments()) {
                        return "changes came before a whole book".into();
                    }
                }
            }
        }
    }
}
