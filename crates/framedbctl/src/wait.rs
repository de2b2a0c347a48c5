//! `--wait`: polling an instance until it is `Running` (create) or gone (delete), showing
//! its live status on stderr: a spinner on a terminal, a line per change otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use tokio::time::Instant;

use crate::api::Api;
use crate::error::Error;

/// The first pause between two polls; it doubles up to [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(250);
/// The longest pause between two polls.
const MAX_POLL: Duration = Duration::from_secs(2);

/// What a wait tells as it goes.
struct Progress {
    spinner: Option<ProgressBar>,
    last: Option<String>,
}

impl Progress {
    /// A spinner when stderr is a terminal, plain lines otherwise.
    fn on_stderr() -> Self {
        let spinner = std::io::stderr().is_terminal().then(|| {
            let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            spinner.set_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            spinner.enable_steady_tick(Duration::from_millis(100));
            spinner
        });
        Self {
            spinner,
            last: None,
        }
    }

    /// Shows `line`, its control characters escaped (a line is printed only when it
    /// differs from the last).
    fn show(&mut self, line: &str) {
        let line = crate::output::escaped(line).into_owned();
        if let Some(spinner) = &self.spinner {
            spinner.set_message(line);
        } else if self.last.as_ref() != Some(&line) {
            eprintln!("{line}");
            self.last = Some(line);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(spinner) = &self.spinner {
            spinner.finish_and_clear();
        }
    }
}

/// An instance's status as last read, and FrameDB's reason for it.
struct Seen {
    status: String,
    reason: Option<String>,
}

impl Seen {
    fn of(instance: &Value) -> Self {
        Self {
            status: instance["status"].as_str().unwrap_or("Unknown").to_owned(),
            reason: instance["status_reason"].as_str().map(str::to_owned),
        }
    }

    /// `Status` or `Status: reason`.
    fn line(&self) -> String {
        match &self.reason {
            Some(reason) => format!("{}: {reason}", self.status),
            None => self.status.clone(),
        }
    }
}

/// How one poll went.
enum Poll {
    /// Done waiting.
    Done,
    /// Keep polling.
    Again(Seen),
}

/// Polls until `Running`. `last` keeps the last instance read, whatever the outcome.
///
/// # Errors
/// [`Error::WaitFailed`] when the instance reads `Failed`; [`Error::WaitTimedOut`] after
/// `timeout`; the API's errors but those [`Error::is_transient`].
pub async fn until_running(
    api: &Api,
    id: &str,
    timeout: Duration,
    last: &mut Option<Value>,
) -> Result<(), Error> {
    poll(id, timeout, async || {
        let instance = api.get(id).await?;
        let seen = Seen::of(&instance);
        *last = Some(instance);
        match seen.status.as_str() {
            "Running" => Ok(Poll::Done),
            "Failed" => Err(Error::WaitFailed {
                id: id.to_owned(),
                status: seen.status,
                reason: seen.reason.unwrap_or_else(|| NO_REASON.into()),
            }),
            _ => Ok(Poll::Again(seen)),
        }
    })
    .await
}

/// Polls until the API says the instance is not registered (`instance_not_found`).
///
/// # Errors
/// [`Error::WaitTimedOut`] after `timeout`; the API's errors but those
/// [`Error::is_transient`].
pub async fn until_gone(api: &Api, id: &str, timeout: Duration) -> Result<(), Error> {
    poll(id, timeout, async || match api.get(id).await {
        Ok(instance) => Ok(Poll::Again(Seen::of(&instance))),
        Err(error) if error.is_instance_not_found() => Ok(Poll::Done),
        Err(error) => Err(error),
    })
    .await
}

/// Runs `once` until it is done, fails, or `timeout` has passed, pausing between polls
/// (longer each time, up to [`MAX_POLL`]); errors the next poll may not meet are shown and
/// polled through.
async fn poll(
    id: &str,
    timeout: Duration,
    mut once: impl AsyncFnMut() -> Result<Poll, Error>,
) -> Result<(), Error> {
    let deadline = Instant::now() + timeout;
    let mut progress = Progress::on_stderr();
    let mut pause = FIRST_POLL;
    let mut seen = Seen {
        status: "not read yet".into(),
        reason: None,
    };
    loop {
        let mut trouble = None;
        // A poll is cut at the deadline, so that a slow answer does not stretch the wait.
        match tokio::time::timeout_at(deadline, once()).await {
            Ok(Ok(Poll::Done)) => return Ok(()),
            Ok(Ok(Poll::Again(now))) => seen = now,
            Ok(Err(error)) if error.is_transient() => trouble = Some(error.to_string()),
            Ok(Err(error)) => return Err(error),
            Err(_) => trouble = Some("the last poll had no answer yet".into()),
        }
        let line = match &trouble {
            Some(trouble) => format!("{id}: {} (retrying: {trouble})", seen.line()),
            None => format!("{id}: {}", seen.line()),
        };
        progress.show(&line);
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::WaitTimedOut {
                id: id.to_owned(),
                reason: seen.reason.or(trouble).unwrap_or_else(|| NO_REASON.into()),
                status: seen.status,
                waited: timeout,
            });
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(MAX_POLL);
    }
}

/// What a wait says when FrameDB gave no reason for a status.
const NO_REASON: &str = "FrameDB gives no reason";
