//! Events, as the cluster's components record them (`core/v1` `Event`): what the
//! scheduler, the controllers and the kubelet stand-in did or could not do, so that
//! `kubectl get events` and `kubectl describe` tell the story they tell on a real
//! cluster.
//!
//! A recorder aggregates as client-go's event correlator does: the same reason and
//! message about the same object bumps `count` and `lastTimestamp` of the event already
//! recorded instead of adding another. Events expire an hour after their last
//! occurrence, as the API server's default `--event-ttl` has them; beyond
//! [`MAX_EVENTS`] the oldest go first (a knowing difference from a real server).

use serde_json::{Value, json};
use tokio::time::Instant;

use super::json::{age_seconds, meta, now_rfc3339, str_at};
use super::resources::{EVENTS, ObjKey, by_plural, key};
use super::store::State;

/// How long an event is kept after it last happened (`--event-ttl`).
const EVENT_TTL_SECONDS: i64 = 60 * 60;
/// How many events a simulator keeps at most: a real API server keeps every event for
/// its TTL, but a fleet of simulators in one process cannot (the oldest go first).
const MAX_EVENTS: usize = 5_000;

/// `Normal` or `Warning`, as Kubernetes types events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

/// Who records an event: a component name (`default-scheduler`, `kubelet`,
/// `statefulset-controller`) and, for the kubelet, its node.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Source<'a> {
    pub component: &'a str,
    pub host: Option<&'a str>,
}

impl Source<'_> {
    pub(crate) const fn component(component: &str) -> Source<'_> {
        Source {
            component,
            host: None,
        }
    }
}

impl State {
    /// Records that `reason` happened to `involved` (an object as stored), saying
    /// `message`.
    pub(crate) fn record_event(
        &mut self,
        involved: &Value,
        kind: EventType,
        reason: &str,
        message: &str,
        source: Source<'_>,
    ) {
        let namespace = namespace_of(involved).to_owned();
        let uid = meta(involved, "uid");
        let now = now_rfc3339();
        let same = self.told(involved, reason, message, source);
        if let Some((k, mut event)) = same {
            // Controllers retry after every write here; once a second is what a real
            // one's back-off lets through, and what keeps watches quiet.
            if event["lastTimestamp"] == now.as_str() {
                return;
            }
            event["count"] = json!(event["count"].as_u64().unwrap_or(1) + 1);
            event["lastTimestamp"] = json!(now);
            self.put(EVENTS, k, event);
            return;
        }
        // Named as client-go names them: the object's name and a unique hex suffix.
        let name = format!(
            "{}.{:016x}",
            meta(involved, "name"),
            self.alloc.rng.next_u64()
        );
        let mut source_json = json!({ "component": source.component });
        if let Some(host) = source.host {
            source_json["host"] = json!(host);
        }
        let event = json!({
            "metadata": { "name": name, "namespace": namespace },
            "involvedObject": {
                "kind": involved["kind"], "namespace": meta(involved, "namespace"),
                "name": meta(involved, "name"), "uid": uid,
                "apiVersion": involved["apiVersion"],
                "resourceVersion": meta(involved, "resourceVersion"),
            },
            "reason": reason,
            "message": message,
            "source": source_json,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": kind.as_str(),
            "eventTime": null,
            "reportingComponent": source.component,
            "reportingInstance": source.host.unwrap_or_default(),
        });
        self.insert_new(by_plural(EVENTS), key(&namespace, &name), event);
    }

    /// Records an event unless `involved` already has one of this reason and message:
    /// for what a controller finds again on every pass while nothing changes (a real one
    /// re-tells it on its resync period, which the count would show), so that the
    /// simulator's pass after every write does not rewrite events all the time.
    pub(crate) fn record_event_once(
        &mut self,
        involved: &Value,
        kind: EventType,
        reason: &str,
        message: &str,
        source: Source<'_>,
    ) {
        let told = self.told(involved, reason, message, source).is_some();
        if !told {
            self.record_event(involved, kind, reason, message, source);
        }
    }

    /// The event of `source` already recorded about `involved` with this reason and
    /// message, if any.
    fn told(
        &self,
        involved: &Value,
        reason: &str,
        message: &str,
        source: Source<'_>,
    ) -> Option<(ObjKey, Value)> {
        let namespace = namespace_of(involved);
        let name = meta(involved, "name");
        let uid = meta(involved, "uid");
        // An object's events are named after it: `{name}.{suffix}` sort between
        // `{name}.` and `{name}/`.
        self.range(
            EVENTS,
            key(namespace, &format!("{name}.")),
            key(namespace, &format!("{name}/")),
        )
        .find(|(_, event)| {
            str_at(event, &["involvedObject", "uid"]) == uid
                && str_at(event, &["reason"]) == reason
                && str_at(event, &["message"]) == message
                && str_at(event, &["source", "component"]) == source.component
        })
        .map(|(k, event)| (k.clone(), event.clone()))
    }

    /// Removes the events that last happened longer ago than the event TTL, and the
    /// oldest beyond [`MAX_EVENTS`].
    pub(crate) fn expire_events(&mut self, now: Instant) {
        // Once a minute is close enough to a TTL of an hour; the count is checked always.
        let due = self.events_expire_at.is_none_or(|at| at <= now);
        if !due && self.count(EVENTS) <= MAX_EVENTS {
            return;
        }
        self.events_expire_at = Some(now + std::time::Duration::from_secs(60));
        let mut expired: Vec<_> = self
            .iter(EVENTS)
            .filter(|(_, event)| age_seconds(str_at(event, &["lastTimestamp"])) > EVENT_TTL_SECONDS)
            .map(|(k, _)| k.clone())
            .collect();
        let kept = self.count(EVENTS) - expired.len();
        if kept > MAX_EVENTS {
            // Down to nine tenths, so that this sort runs once per many events.
            let mut by_age: Vec<_> = self
                .iter(EVENTS)
                .filter(|(k, _)| !expired.contains(k))
                .map(|(k, event)| (str_at(event, &["lastTimestamp"]).to_owned(), k.clone()))
                .collect();
            by_age.sort();
            let excess = kept - MAX_EVENTS * 9 / 10;
            expired.extend(by_age.into_iter().take(excess).map(|(_, k)| k));
        }
        for k in expired {
            self.remove(by_plural(EVENTS), &k);
        }
    }
}

/// Where events about `involved` live: its namespace, or `default` for a cluster-scoped
/// object.
fn namespace_of(involved: &Value) -> &str {
    match meta(involved, "namespace") {
        "" => "default",
        ns => ns,
    }
}
