//! `?watch=true` on a collection: a chunked stream of JSON lines, one per change
//! (`{"type": "ADDED" | "MODIFIED" | "DELETED", "object": ...}`), as the API server
//! sends it.
//!
//! A watch starts after the `resourceVersion` it names (a list's), or with a synthetic
//! `ADDED` for every object when it names none or `0`. A version older than the kept
//! history (compacted) gets an `ERROR` event with a 410 `Expired` `Status` (`too old
//! resource version: X (Y)`, Y the oldest version still kept, less one), in a 200 stream
//! as the watch cache answers, so clients list again. With `allowWatchBookmarks`, a watch
//! gets a `BOOKMARK` at the server's discretion: about once a minute of simulated time
//! (the watch cache's `bookmarkFrequency`), whether or not events came, and one as its
//! `timeoutSeconds` runs out, which ends the stream; clients resume from the last version
//! they saw. The list options are checked as for a list (`lists::validate`): the WatchList
//! feature (`sendInitialEvents`) is off by default in kube-apiserver 1.33, and so here.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::events_v1;
use super::lists;
use super::resources::ResourceDef;
use super::selectors::{FieldSelector, LabelSelector};
use super::shared::Shared;
use super::status::{ApiError, ApiResult};
use super::store::State;

/// The longest a watch stays open when the client names no `timeoutSeconds`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// What a watch follows.
struct Scope {
    res: &'static ResourceDef,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Scope {
    fn covers(&self, res: &str, object: &Value) -> bool {
        res == self.res.plural
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| object["metadata"]["namespace"] == ns)
            && self.labels.matches_object(object)
            && self.fields.matches(object)
    }
}

/// Starts a watch of `res` (in `namespace`, or all) with the request's parameters.
pub(crate) fn start(
    shared: &Arc<Shared>,
    res: &'static ResourceDef,
    namespace: Option<String>,
    query: &HashMap<String, String>,
) -> ApiResult<Response> {
    let param = |name: &str| {
        query
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let scope = Scope {
        res,
        namespace,
        labels: LabelSelector::parse(param("labelSelector").unwrap_or(""))?,
        fields: FieldSelector::parse(param("fieldSelector").unwrap_or(""), res)?,
    };
    let timeout = match param("timeoutSeconds") {
        Some(text) => Duration::from_secs(
            text.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {text:?}")))?,
        ),
        None => DEFAULT_TIMEOUT,
    };
    lists::validate(param, true)?;
    let bookmarks = param("allowWatchBookmarks") == Some("true");
    let since = match param("resourceVersion") {
        None | Some("0") => None,
        Some(text) => Some(lists::parse_resource_version(text)?),
    };

    let (lines, body) = mpsc::channel::<Bytes>(64);
    let mut ended = shared.watch_epoch.subscribe();
    ended.mark_unchanged();
    let (first, cursor, wake, bookmark_every) = {
        let state = shared.state();
        let first = match since {
            None => Ok(state
                .iter(res.plural)
                .filter(|(_, object)| scope.covers(res.plural, object))
                .map(|(_, object)| event(res, "ADDED", object))
                .collect()),
            Some(version) => changes_after(&state, &scope, version),
        };
        (
            first,
            state.resource_version_number(),
            state.changes.subscribe(),
            state.bookmark_every,
        )
    };
    let shared = Arc::downgrade(shared);
    tokio::spawn(async move {
        let events = match first {
            Ok(events) => events,
            Err(gone) => {
                let _ = lines.send(gone).await;
                return;
            }
        };
        for line in events {
            if lines.send(line).await.is_err() {
                return;
            }
        }
        let watching = Watching {
            shared,
            scope,
            lines,
            timeout,
            bookmarks,
            bookmark_every,
        };
        tokio::select! {
            () = watching.follow(cursor, wake) => {}
            _ = ended.changed() => {}
        }
    });
    let stream = futures_util::stream::unfold(body, |mut body| async move {
        let line = body.recv().await?;
        Some((Ok::<_, Infallible>(line), body))
    });
    Ok((
        StatusCode::OK,
        [(CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// An open watch.
struct Watching {
    shared: std::sync::Weak<Shared>,
    scope: Scope,
    lines: mpsc::Sender<Bytes>,
    timeout: Duration,
    bookmarks: bool,
    bookmark_every: Duration,
}

impl Watching {
    /// Sends the changes after `cursor` as they happen, until the timeout, until the client
    /// goes, or until the simulator is gone.
    async fn follow(self, mut cursor: u64, mut wake: tokio::sync::watch::Receiver<u64>) {
        let Self {
            shared,
            scope,
            lines,
            timeout,
            bookmarks,
            bookmark_every,
        } = self;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut bookmark_at = tokio::time::Instant::now() + bookmark_every;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {
                    // The watch cache bookmarks a watch whose deadline comes, so that its
                    // client resumes from as recent a version as possible.
                    if bookmarks {
                        let _ = lines.send(bookmark(scope.res, cursor)).await;
                    }
                    return;
                }
                () = lines.closed() => return,
                () = tokio::time::sleep_until(bookmark_at), if bookmarks => {
                    bookmark_at += bookmark_every;
                    let line = bookmark(scope.res, cursor);
                    if lines.send(line).await.is_err() {
                        return;
                    }
                }
                changed = wake.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let Some(shared) = shared.upgrade() else { return };
                    let (batch, latest) = {
                        let state = shared.state();
                        (changes_after(&state, &scope, cursor), state.resource_version_number())
                    };
                    cursor = latest;
                    match batch {
                        Ok(events) => {
                            for line in events {
                                if lines.send(line).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Err(gone) => {
                            let _ = lines.send(gone).await;
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// The events after `version` that `scope` covers, or the `ERROR` line of a 410 when
/// they are no longer all kept.
fn changes_after(state: &State, scope: &Scope, version: u64) -> Result<Vec<Bytes>, Bytes> {
    match state.changes.after(version) {
        Some(changes) => Ok(changes
            .filter(|c| scope.covers(c.res, &c.object))
            .map(|c| event(scope.res, c.kind, &c.object))
            .collect()),
        None => {
            let gone = ApiError::gone(format!(
                "too old resource version: {version} ({})",
                state.changes.compacted_at()
            ));
            Err(line(
                &json!({ "type": "ERROR", "object": gone.to_status() }),
            ))
        }
    }
}

/// One watch event; `events.k8s.io/v1` watchers see Events in their shape. Written
/// straight from the stored object: every watch of a type serializes each of its changes.
fn event(res: &ResourceDef, kind: &str, object: &Value) -> Bytes {
    #[derive(serde::Serialize)]
    struct Event<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        object: &'a Value,
    }
    let converted;
    let object = if events_v1::is_v1(res) {
        converted = events_v1::from_core(object.clone());
        &converted
    } else {
        object
    };
    let mut text = serde_json::to_vec(&Event { kind, object }).expect("a JSON value serializes");
    text.push(b'\n');
    Bytes::from(text)
}

fn bookmark(res: &ResourceDef, version: u64) -> Bytes {
    line(&json!({
        "type": "BOOKMARK",
        "object": {
            "apiVersion": res.api_version(),
            "kind": res.kind,
            "metadata": { "resourceVersion": version.to_string() },
        },
    }))
}

fn line(value: &Value) -> Bytes {
    let mut text = value.to_string();
    text.push('\n');
    Bytes::from(text)
}
