//! Fault injection and request accounting.
//!
//! Three kinds of fault can be injected into resource requests (not into discovery or
//! `/version`), each on a share of the requests of a verb and resource:
//!
//! - **failed answers** ([`Faults::fail`]): an HTTP code and its Kubernetes `Status`
//!   (500, 503, 429, ...), decided before the request touches any object, so an injected
//!   failure has no side effect;
//! - **latency** ([`Faults::delay`]): the request waits, then runs normally
//!   ([`Faults::set_latency`] delays every request instead);
//! - **dropped connections** ([`Faults::drop_connections`]): the connection is closed
//!   without an answer, as a network that fails mid-request does; the client sees a
//!   connection error, never a status. [`DropWhen::BeforeApply`] drops it before the
//!   request runs (nothing happened); [`DropWhen::AfterApply`] runs the request first (a
//!   write is applied, a read is read) and then drops it, so the client cannot tell
//!   whether its write happened: the hard case a real network produces.
//!
//! Every matching rule takes its share of one draw per request, so the shares of the
//! rules a request matches add up (20 % of errors and 10 % of dropped connections make
//! 30 % of faulty requests, and no request gets two faults). The draws come from a small
//! seeded PRNG, so a sequential test that injects a 50 % failure rate sees the same
//! sequence of failures on every run. Every injected fault is counted by kind in the
//! [`RequestStats`].

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

/// When a dropped connection is closed: before or after its request runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropWhen {
    /// Before the request touches anything: nothing happened.
    BeforeApply,
    /// After the request ran (a write is applied), before its answer is sent.
    AfterApply,
}

/// A kind of injected fault, as [`RequestStats::injected`] counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Injected {
    /// A failed answer with this HTTP code.
    Error(u16),
    /// Added latency (of any length).
    Latency,
    /// A connection closed without an answer.
    Dropped(DropWhen),
}

impl fmt::Display for Injected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Injected::Error(code) => write!(f, "error {code}"),
            Injected::Latency => f.write_str("latency"),
            Injected::Dropped(DropWhen::BeforeApply) => f.write_str("dropped before apply"),
            Injected::Dropped(DropWhen::AfterApply) => f.write_str("dropped after apply"),
        }
    }
}

/// What an injected fault does to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Answer this HTTP code at once.
    Fail(u16),
    /// Wait this long, then run the request.
    Delay(Duration),
    /// Close the connection without an answer.
    Drop(DropWhen),
}

impl Action {
    /// The kind of fault it is; rules of the same verb, resource and kind replace each
    /// other.
    pub fn kind(self) -> Injected {
        match self {
            Action::Fail(code) => Injected::Error(code),
            Action::Delay(_) => Injected::Latency,
            Action::Drop(when) => Injected::Dropped(when),
        }
    }
}

#[derive(Clone, Debug)]
struct Rule {
    verb: Verb,
    resource: Option<String>,
    action: Action,
    share: f64,
}

#[derive(Debug)]
struct FaultState {
    rules: Vec<Rule>,
    latency: Duration,
    base_latency: Duration,
    rng: Rng,
}

/// Faults to inject into the simulator's answers (see the module docs); see
/// [`Simulator::faults`].
///
/// Faults apply to requests for resources (not to discovery or `/version`) and are drawn
/// from a PRNG seeded per simulator, so a sequential test sees the same faults on every
/// run.
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

    /// Adds a rule, or replaces the one of the same verb, resource and kind of fault.
    fn add(&self, verb: Verb, resource: Option<&str>, action: Action, share: f64) {
        let rule = Rule {
            verb,
            resource: resource.map(str::to_string),
            action,
            share: share.clamp(0.0, 1.0),
        };
        let mut state = self.lock();
        match state.rules.iter_mut().find(|r| {
            r.verb == rule.verb
                && r.resource == rule.resource
                && r.action.kind() == rule.action.kind()
        }) {
            Some(existing) => *existing = rule,
            None => state.rules.push(rule),
        }
    }

    /// Makes `share` (0.0 to 1.0) of the requests with `verb` on `resource` (a plural
    /// such as `"services"`; `None` for every resource) fail with HTTP `code` and the
    /// matching `Status` (500 InternalError, 503 ServiceUnavailable, 409 Conflict,
    /// 429 TooManyRequests, ...), before they touch anything.
    ///
    /// A rule for the same verb, resource and code replaces the earlier one; the shares
    /// of the rules a request matches add up (see the module docs).
    pub fn fail(&self, verb: Verb, resource: Option<&str>, code: u16, share: f64) {
        self.add(verb, resource, Action::Fail(code), share);
    }

    /// Delays `share` of the requests with `verb` on `resource` by `latency` (on top of
    /// the latency every request gets); they then run normally.
    ///
    /// A rule for the same verb and resource replaces the earlier delay rule.
    pub fn delay(&self, verb: Verb, resource: Option<&str>, latency: Duration, share: f64) {
        self.add(verb, resource, Action::Delay(latency), share);
    }

    /// Closes the connection of `share` of the requests with `verb` on `resource`
    /// without an answer: `when` says whether the request ran first (see [`DropWhen`]).
    /// The client sees a connection error (the connection closed before the message
    /// completed).
    ///
    /// A rule for the same verb, resource and `when` replaces the earlier one.
    pub fn drop_connections(&self, verb: Verb, resource: Option<&str>, when: DropWhen, share: f64) {
        self.add(verb, resource, Action::Drop(when), share);
    }

    /// Adds `latency` to every request from now on (replacing the configured latency).
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Removes every rule and restores the latency of the [`SimConfig`].
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

    /// The fault to inject into this request, if a rule draws one.
    pub(crate) fn decide(&self, verb: Verb, resource: &str) -> Option<Action> {
        let mut state = self.lock();
        // One draw per request that any rule matches, even for shares of 0 and 1, keeps
        // the sequence independent of the shares.
        if !state.rules.iter().any(|r| r.matches(verb, resource)) {
            return None;
        }
        let draw = state.rng.next_f64();
        let mut upto = 0.0;
        state
            .rules
            .iter()
            .filter(|r| r.matches(verb, resource))
            .find_map(|rule| {
                upto += rule.share;
                (draw < upto).then_some(rule.action)
            })
    }
}

impl Rule {
    fn matches(&self, verb: Verb, resource: &str) -> bool {
        self.verb.covers(verb) && self.resource.as_deref().is_none_or(|res| res == resource)
    }
}

/// Counts of the requests a simulator has served, by verb and resource; a snapshot
/// taken by [`Simulator::requests`](super::Simulator::requests).
///
/// Requests that an injected fault failed are counted too, and every injected fault is
/// counted by kind ([`RequestStats::injected`]). Discovery requests (`/api`,
/// `/apis/...`, `/version`) are counted apart, in [`RequestStats::discovery`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestStats {
    counts: BTreeMap<(Verb, String), u64>,
    faults: BTreeMap<Injected, u64>,
    discovery: u64,
}

impl RequestStats {
    pub(crate) fn record(&mut self, verb: Verb, resource: &str) {
        *self.counts.entry((verb, resource.to_string())).or_default() += 1;
    }

    pub(crate) fn record_fault(&mut self, kind: Injected) {
        *self.faults.entry(kind).or_default() += 1;
    }

    /// The faults of `kind` injected so far.
    pub fn injected(&self, kind: Injected) -> u64 {
        self.faults.get(&kind).copied().unwrap_or(0)
    }

    /// Every kind of fault injected at least once, with its count, sorted.
    pub fn faults(&self) -> impl Iterator<Item = (Injected, u64)> + '_ {
        self.faults.iter().map(|(kind, n)| (*kind, *n))
    }

    /// All injected faults.
    pub fn faults_total(&self) -> u64 {
        self.faults.values().sum()
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
        let faults = self
            .faults
            .iter()
            .filter_map(|(kind, n)| {
                let delta = n.saturating_sub(earlier.injected(*kind));
                (delta > 0).then_some((*kind, delta))
            })
            .collect();
        RequestStats {
            counts,
            faults,
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
        if !self.faults.is_empty() {
            write!(f, "; {} faults injected", self.faults_total())?;
            for (kind, n) in self.faults() {
                write!(f, ", {kind}: {n}")?;
            }
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

    #[test]
    fn the_shares_of_matching_rules_add_up_and_each_kind_gets_its_own() {
        let faults = Faults::new(seed_from("mix"), Duration::ZERO);
        faults.fail(Verb::Any, None, 500, 0.1);
        faults.fail(Verb::Any, None, 503, 0.1);
        faults.delay(Verb::Any, None, Duration::from_millis(5), 0.1);
        faults.drop_connections(Verb::Create, None, DropWhen::BeforeApply, 0.1);
        faults.drop_connections(Verb::Create, None, DropWhen::AfterApply, 0.1);
        // The same kind replaces: this 500 rule is the one above.
        faults.fail(Verb::Any, None, 500, 0.1);
        let mut seen: BTreeMap<Injected, u32> = BTreeMap::new();
        let mut clean = 0;
        for _ in 0..10_000 {
            match faults.decide(Verb::Create, "services") {
                Some(action) => *seen.entry(action.kind()).or_default() += 1,
                None => clean += 1,
            }
        }
        assert_eq!(seen.len(), 5, "{seen:?}");
        for (kind, n) in &seen {
            assert!((850..1_150).contains(n), "{kind}: {n}");
        }
        assert!((4_700..5_300).contains(&clean), "{clean}");
        // Reads match only the rules of every verb.
        let reads = (0..10_000)
            .filter(|_| faults.decide(Verb::Get, "pods").is_some())
            .count();
        assert!((2_700..3_300).contains(&reads), "{reads}");
    }
}
