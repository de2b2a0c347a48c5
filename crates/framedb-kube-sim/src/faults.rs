//! Fault injection (failed answers and added latency) and request accounting.
//!
//! Random choices come from a small seeded PRNG so that a test that injects a 50 %
//! failure rate sees the same sequence of failures on every run.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

/// The verb of an API request, as used for fault rules and request counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    /// GET of one object.
    Get,
    /// GET of a collection.
    List,
    /// GET of a collection with `watch=true`.
    Watch,
    /// POST.
    Create,
    /// PUT.
    Update,
    /// PATCH, server-side apply included.
    Patch,
    /// DELETE of one object or of a collection.
    Delete,
    /// Matches every verb (in fault rules and [`RequestStats::count`]).
    Any,
}

impl Verb {
    fn covers(self, other: Verb) -> bool {
        self == Verb::Any || self == other
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::Any => "*",
        };
        f.write_str(text)
    }
}

/// xorshift64*: tiny, seedable and good enough to pick failures and free ports.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // A zero state would stay zero forever.
        Self(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A uniform float in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A stable seed from a name, so two simulators with different names differ but each
/// one repeats itself from run to run.
pub(crate) fn seed_from(name: &str) -> u64 {
    // FNV-1a.
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[derive(Clone, Debug)]
struct Rule {
    verb: Verb,
    resource: Option<String>,
    code: u16,
    share: f64,
}

#[derive(Debug)]
struct FaultState {
    rules: Vec<Rule>,
    latency: Duration,
    base_latency: Duration,
    rng: Rng,
}

/// Failures and latency to inject into the simulator's answers; see [`Simulator::faults`].
///
/// Failures apply to requests for resources (not to discovery or `/version`), are
/// decided before the request touches any object (an injected failure has no side
/// effect), and are drawn from a PRNG seeded per simulator, so a sequential test sees
/// the same failures on every run.
///
/// [`Simulator::faults`]: super::Simulator::faults
#[derive(Debug)]
pub struct Faults {
    state: Mutex<FaultState>,
}

impl Faults {
    pub(crate) fn new(seed: u64, latency: Duration) -> Self {
        Self {
            state: Mutex::new(FaultState {
                rules: Vec::new(),
                latency,
                base_latency: latency,
                rng: Rng::new(seed ^ 0x9e37_79b9_7f4a_7c15),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes `share` (0.0 to 1.0) of the requests with `verb` on `resource` (a plural
    /// such as `"services"`; `None` for every resource) fail with HTTP `code` and the
    /// matching `Status` (500 InternalError, 503 ServiceUnavailable, 409 Conflict,
    /// 429 TooManyRequests, ...).
    ///
    /// A rule for the same verb and resource replaces the earlier one; otherwise the
    /// first matching rule, in the order they were added, decides.
    pub fn fail(&self, verb: Verb, resource: Option<&str>, code: u16, share: f64) {
        let rule = Rule {
            verb,
            resource: resource.map(str::to_string),
            code,
            share: share.clamp(0.0, 1.0),
        };
        let mut state = self.lock();
        match state
            .rules
            .iter_mut()
            .find(|r| r.verb == rule.verb && r.resource == rule.resource)
        {
            Some(existing) => *existing = rule,
            None => state.rules.push(rule),
        }
    }

    /// Adds `latency` to every request from now on (replacing the configured latency).
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Removes every failure rule and restores the latency of the [`SimConfig`].
    ///
    /// [`SimConfig`]: super::SimConfig
    pub fn clear(&self) {
        let mut state = self.lock();
        state.rules.clear();
        state.latency = state.base_latency;
    }

    pub(crate) fn latency(&self) -> Duration {
        self.lock().latency
    }

    /// The HTTP code to fail this request with, if a rule says so.
    pub(crate) fn decide(&self, verb: Verb, resource: &str) -> Option<u16> {
        let mut state = self.lock();
        let rule = state
            .rules
            .iter()
            .find(|r| {
                r.verb.covers(verb) && r.resource.as_deref().is_none_or(|res| res == resource)
            })?
            .clone();
        // Drawing even for shares of 0 and 1 keeps the sequence independent of the rules.
        let draw = state.rng.next_f64();
        (draw < rule.share).then_some(rule.code)
    }
}

/// Counts of the requests a simulator has served, by verb and resource; a snapshot
/// taken by [`Simulator::requests`](super::Simulator::requests).
///
/// Requests that an injected fault failed are counted too. Discovery requests
/// (`/api`, `/apis/...`, `/version`) are counted apart, in [`RequestStats::discovery`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestStats {
    counts: BTreeMap<(Verb, String), u64>,
    discovery: u64,
}

impl RequestStats {
    pub(crate) fn record(&mut self, verb: Verb, resource: &str) {
        *self.counts.entry((verb, resource.to_string())).or_default() += 1;
    }

    pub(crate) fn record_discovery(&mut self) {
        self.discovery += 1;
    }

    /// Requests with `verb` (or any, for [`Verb::Any`]) on `resource` (or any, for `None`).
    pub fn count(&self, verb: Verb, resource: Option<&str>) -> u64 {
        self.counts
            .iter()
            .filter(|((v, r), _)| verb.covers(*v) && resource.is_none_or(|res| res == r))
            .map(|(_, n)| n)
            .sum()
    }

    /// All resource requests (discovery excluded).
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Discovery and version requests.
    pub fn discovery(&self) -> u64 {
        self.discovery
    }

    /// Every non-zero count as `(verb, resource, count)`, sorted.
    pub fn iter(&self) -> impl Iterator<Item = (Verb, &str, u64)> + '_ {
        self.counts.iter().map(|((v, r), n)| (*v, r.as_str(), *n))
    }

    /// The requests served after `earlier` was taken (for "requests per operation").
    pub fn since(&self, earlier: &RequestStats) -> RequestStats {
        let counts = self
            .counts
            .iter()
            .filter_map(|(key, n)| {
                let delta = n.saturating_sub(earlier.counts.get(key).copied().unwrap_or(0));
                (delta > 0).then(|| (key.clone(), delta))
            })
            .collect();
        RequestStats {
            counts,
            discovery: self.discovery.saturating_sub(earlier.discovery),
        }
    }
}

impl fmt::Display for RequestStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} requests", self.total())?;
        for (verb, resource, n) in self.iter() {
            write!(f, ", {verb} {resource}: {n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_roughly_respected() {
        let faults = Faults::new(seed_from("x"), Duration::ZERO);
        faults.fail(Verb::Get, Some("pods"), 500, 0.3);
        let failed = (0..10_000)
            .filter(|_| faults.decide(Verb::Get, "pods").is_some())
            .count();
        assert!((2_700..3_300).contains(&failed), "{failed}");
        assert_eq!(faults.decide(Verb::List, "pods"), None);
        assert_eq!(faults.decide(Verb::Get, "services"), None);
    }
}
