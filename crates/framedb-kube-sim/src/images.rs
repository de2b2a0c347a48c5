//! The container runtime's side of the simulated nodes: the registry a cluster pulls
//! from, image references as a registry reads them, what each node has pulled, the
//! container faults a test injects ([`ContainerFault`]), and the kubelet's record of each
//! container (restarts, back-offs). The kubelet that acts on them is `kubelet`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use tokio::time::Instant;

/// The images a simulator's registry holds unless told otherwise
/// ([`SimConfig::new`](crate::SimConfig::new)): the pause image and the small public
/// images that examples and tests run. [`SimConfig::without_images`](crate::SimConfig::without_images)
/// starts from an empty registry instead (the demo fleet holds exactly FrameDB's images).
pub const DEFAULT_IMAGES: [&str; 6] = [
    "registry.k8s.io/pause:3.10",
    "busybox:1",
    "busybox:1.36",
    "busybox:latest",
    "nginx:1.27",
    "nginx:latest",
];

/// An image reference as a registry reads it: `busybox` is
/// `docker.io/library/busybox:latest`; a digest, when given, names the content.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ImageRef {
    /// `docker.io/library/busybox`.
    pub repository: String,
    /// `latest` when the reference names none (and no digest).
    pub tag: Option<String>,
    /// `sha256:...`.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses a reference as containerd's `docker.ParseDockerRef` normalises it; `None`
    /// for an empty or malformed one.
    pub fn parse(reference: &str) -> Option<Self> {
        let (name, digest) = match reference.split_once('@') {
            Some((name, digest)) => (name, Some(digest.to_string())),
            None => (reference, None),
        };
        // A tag follows the last `:` after the last `/` (a `:` before it is a port).
        let slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[slash..].rfind(':') {
            Some(i) => (&name[..slash + i], Some(name[slash + i + 1..].to_string())),
            None => (name, None),
        };
        if name.is_empty()
            || name
                .chars()
                .any(|c| c.is_ascii_uppercase() || c.is_whitespace())
            || tag.as_deref().is_some_and(str::is_empty)
        {
            return None;
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => ("docker.io".to_string(), name.to_string()),
        };
        let path = if domain == "docker.io" && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        let tag = tag.or_else(|| digest.is_none().then(|| "latest".to_string()));
        Some(Self {
            repository: format!("{domain}/{path}"),
            tag,
            digest,
        })
    }

    /// The reference in full, `docker.io/library/busybox:latest` (what a container's
    /// status shows as its image).
    pub fn full(&self) -> String {
        let mut text = self.repository.clone();
        if let Some(tag) = &self.tag {
            text = format!("{text}:{tag}");
        }
        if let Some(digest) = &self.digest {
            text = format!("{text}@{digest}");
        }
        text
    }

    /// The content's digest as the registry serves it: the one named, or a stable one
    /// made up from the reference.
    pub fn content_digest(&self) -> String {
        if let Some(digest) = &self.digest {
            return digest.clone();
        }
        let mut hex = String::new();
        let mut h = super::faults::seed_from(&self.full());
        while hex.len() < 64 {
            h = h.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) ^ 0xA5A5_5A5A;
            hex.push_str(&format!("{h:016x}"));
        }
        format!("sha256:{}", &hex[..64])
    }

    /// `imageID` of a container running it: `docker.io/library/busybox@sha256:...`.
    pub fn image_id(&self) -> String {
        format!("{}@{}", self.repository, self.content_digest())
    }
}

/// The images a simulated cluster can pull: repositories with their tags and digests.
#[derive(Clone, Debug, Default)]
pub(crate) struct Registry {
    repositories: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)>,
}

impl Registry {
    /// Adds an image; false when the reference cannot be read.
    pub fn push(&mut self, reference: &str) -> bool {
        let Some(image) = ImageRef::parse(reference) else {
            return false;
        };
        let (tags, digests) = self.repositories.entry(image.repository).or_default();
        tags.extend(image.tag);
        digests.extend(image.digest);
        true
    }

    /// Whether a pull of `image` finds it: its tag, and its digest when it names one.
    pub fn holds(&self, image: &ImageRef) -> bool {
        self.repositories
            .get(&image.repository)
            .is_some_and(|(tags, digests)| {
                image.tag.as_ref().is_none_or(|t| tags.contains(t))
                    && image.digest.as_ref().is_none_or(|d| digests.contains(d))
            })
    }
}

/// What a [`ContainerFault`] does to the containers it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerFaultKind {
    /// The container exits with code 1 (reason `Error`) `after` it starts, every time:
    /// the kubelet restarts it with back-off (`CrashLoopBackOff`).
    CrashLoop {
        /// How long (simulated time) each run lasts before it exits.
        after: Duration,
    },
    /// The container is killed for exceeding its memory limit (reason `OOMKilled`, exit
    /// code 137) `after` it starts, every time; restarted with back-off as a crash.
    OomKilled {
        /// How long (simulated time) each run lasts before it is killed.
        after: Duration,
    },
    /// The container runs but becomes started and ready only `by` (simulated time) after
    /// it starts: the pod is `Running` and not `Ready` meanwhile.
    SlowStart {
        /// How long (simulated time) it takes to start.
        by: Duration,
    },
    /// The container's command finishes `after` it starts: it exits with code 0 (reason
    /// `Completed`), as a one-shot command does (the simulator runs no command, so a
    /// test says when it ends). Under `restartPolicy: Never` it stays terminated and,
    /// with every other container done, the pod `Succeeded`; `OnFailure` does not
    /// restart it either; under `Always` it is restarted with back-off, as a real kubelet
    /// does.
    Completes {
        /// How long (simulated time) the command runs.
        after: Duration,
    },
}

/// A fault of the containers of a simulated cluster's pods, injected with
/// [`Simulator::inject_container_fault`](crate::Simulator::inject_container_fault) and
/// lifted with [`Simulator::clear_container_faults`](crate::Simulator::clear_container_faults)
/// (after which the next restart of a crashing container succeeds).
///
/// It names a container by name, optionally only in one namespace and only in pods
/// whose name starts with a prefix; it applies to containers that start (or restart)
/// while it is in force.
///
/// ```no_run
/// # async fn demo(sim: &framedb_kube_sim::Simulator) {
/// use std::time::Duration;
/// use framedb_kube_sim::ContainerFault;
///
/// // The `tidb` container of pods `db-*` in `prod` exits with code 1 a second after
/// // each start: `CrashLoopBackOff`, restart counts rising.
/// sim.inject_container_fault(ContainerFault::crash_loop("tidb").in_namespace("prod").in_pods_named("db-"));
/// // Every `mongo` container is OOMKilled (exit code 137) ten seconds after it starts.
/// sim.inject_container_fault(ContainerFault::oom_killed("mongo").after(Duration::from_secs(10)));
/// // The `wipe` container of pods `job-*` finishes its command (exit code 0).
/// sim.inject_container_fault(ContainerFault::completes("wipe").in_pods_named("job-"));
/// // Every `pd` container takes a simulated minute to become ready.
/// sim.inject_container_fault(ContainerFault::slow_start("pd", Duration::from_secs(60)));
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerFault {
    /// The container's name.
    pub container: String,
    /// Only in this namespace, when set.
    pub namespace: Option<String>,
    /// Only in pods whose name starts with this, when set.
    pub pod_prefix: Option<String>,
    /// What happens to it.
    pub kind: ContainerFaultKind,
}

impl ContainerFault {
    /// The container exits with code 1 (`Error`) a simulated second after each start.
    pub fn crash_loop(container: impl Into<String>) -> Self {
        Self::new(
            container,
            ContainerFaultKind::CrashLoop {
                after: Duration::from_secs(1),
            },
        )
    }

    /// The container is `OOMKilled` (exit code 137) a simulated second after each start.
    pub fn oom_killed(container: impl Into<String>) -> Self {
        Self::new(
            container,
            ContainerFaultKind::OomKilled {
                after: Duration::from_secs(1),
            },
        )
    }

    /// The container's command finishes (exit code 0, `Completed`) a simulated second
    /// after each start.
    pub fn completes(container: impl Into<String>) -> Self {
        Self::new(
            container,
            ContainerFaultKind::Completes {
                after: Duration::from_secs(1),
            },
        )
    }

    /// The container takes `by` (simulated time) to become started and ready.
    pub fn slow_start(container: impl Into<String>, by: Duration) -> Self {
        Self::new(container, ContainerFaultKind::SlowStart { by })
    }

    fn new(container: impl Into<String>, kind: ContainerFaultKind) -> Self {
        Self {
            container: container.into(),
            namespace: None,
            pod_prefix: None,
            kind,
        }
    }

    /// Sets how long each run of a crashing, OOMKilled or completing container lasts;
    /// no effect on a slow start.
    pub fn after(mut self, run: Duration) -> Self {
        match &mut self.kind {
            ContainerFaultKind::CrashLoop { after }
            | ContainerFaultKind::OomKilled { after }
            | ContainerFaultKind::Completes { after } => {
                *after = run;
            }
            ContainerFaultKind::SlowStart { .. } => {}
        }
        self
    }

    /// Only in namespace `namespace`.
    pub fn in_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Only in pods whose name starts with `prefix`.
    pub fn in_pods_named(mut self, prefix: impl Into<String>) -> Self {
        self.pod_prefix = Some(prefix.into());
        self
    }

    /// Whether it applies to container `container` of pod `pod` in `namespace`.
    pub(crate) fn applies(&self, namespace: &str, pod: &str, container: &str) -> bool {
        self.container == container
            && self.namespace.as_deref().is_none_or(|ns| ns == namespace)
            && self
                .pod_prefix
                .as_deref()
                .is_none_or(|p| pod.starts_with(p))
    }
}

/// Why a container's last run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Exit code 1, reason `Error`.
    Error,
    /// Exit code 137, reason `OOMKilled`.
    OomKilled,
    /// Exit code 0, reason `Completed`: the command finished (an init container that
    /// did its work, or a container told to).
    Completed,
}

impl Exit {
    pub fn code(&self) -> i64 {
        match self {
            Self::Error => 1,
            Self::OomKilled => 137,
            Self::Completed => 0,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Self::Error => "Error",
            Self::OomKilled => "OOMKilled",
            Self::Completed => "Completed",
        }
    }
}

/// Where a container is in its life, as its kubelet sees it.
#[derive(Clone, Debug)]
pub(crate) enum Phase {
    /// Not tried yet.
    New,
    /// Its image could not be pulled: `ErrImagePull` until `backoff_at`, then
    /// `ImagePullBackOff` until `retry_at`.
    PullFailed {
        /// `ErrImagePull` or `ErrImageNeverPull`.
        reason: &'static str,
        message: String,
        backoff_at: Instant,
        told_backoff: bool,
        retry_at: Instant,
    },
    /// Running since `started` (RFC 3339), started (as a startup probe tells) from
    /// `starts_at`, ready from `ready_at`, ending at `ends_at`.
    Running {
        started: String,
        since: Instant,
        starts_at: Instant,
        ready_at: Instant,
        ends_at: Option<(Instant, Exit)>,
    },
    /// Its last run ended: shown terminated until `waiting_at` (the kubelet's next
    /// look), then waiting in `CrashLoopBackOff` until `restart_at`; `None`: its
    /// restart policy keeps it stopped.
    Exited {
        /// `state.terminated` of the run that ended.
        terminated: serde_json::Value,
        waiting_at: Instant,
        restart_at: Option<Instant>,
        told_backoff: bool,
    },
}

/// The kubelet's record of one container of one pod.
#[derive(Clone, Debug)]
pub(crate) struct Container {
    pub phase: Phase,
    pub restarts: u64,
    /// The current image pull back-off (zero: none yet).
    pub pull_backoff: Duration,
    /// The current restart back-off (zero: the next restart is immediate).
    pub crash_backoff: Duration,
    /// `lastState.terminated` once it has exited.
    pub last_terminated: Option<serde_json::Value>,
    /// The current run's id.
    pub container_id: String,
}

impl Default for Container {
    fn default() -> Self {
        Self {
            phase: Phase::New,
            restarts: 0,
            pull_backoff: Duration::ZERO,
            crash_backoff: Duration::ZERO,
            last_terminated: None,
            container_id: String::new(),
        }
    }
}

/// The kubelet's first back-off, for pulls and restarts alike.
pub(crate) const INITIAL_BACKOFF: Duration = Duration::from_secs(10);
/// The kubelet's longest back-off (`MaxContainerBackOff`, `maxImageBackOff`).
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The next back-off after `current`, as client-go's `flowcontrol.Backoff.Next`: the
/// initial one, then doubled up to the maximum.
pub(crate) fn next_backoff(current: Duration) -> Duration {
    if current.is_zero() {
        INITIAL_BACKOFF
    } else {
        (current * 2).min(MAX_BACKOFF)
    }
}

/// The container runtime of a simulated cluster.
#[derive(Clone, Debug, Default)]
pub(crate) struct Runtime {
    pub registry: Registry,
    /// The images each node has pulled (full references), by node name.
    pub pulled: HashMap<String, BTreeSet<String>>,
    pub faults: Vec<ContainerFault>,
    /// The kubelet's records, by pod key and uid, then container name.
    pub containers: BTreeMap<(super::resources::ObjKey, String), BTreeMap<String, Container>>,
    /// When the kubelet next looks at each pod it runs.
    pub wake_at: BTreeMap<super::resources::ObjKey, Instant>,
}

impl Runtime {
    /// The fault in force for a container, the latest injected first.
    pub fn fault(&self, namespace: &str, pod: &str, container: &str) -> Option<ContainerFaultKind> {
        self.faults
            .iter()
            .rev()
            .find(|f| f.applies(namespace, pod, container))
            .map(|f| f.kind)
    }

    /// Forgets a pod that is gone.
    pub fn forget(&mut self, k: &super::resources::ObjKey) {
        self.wake_at.remove(k);
        let records: Vec<_> = self.records_of(k).cloned().collect();
        for record in records {
            self.containers.remove(&record);
        }
    }

    /// Whether the kubelet has started (tried to start) the pod's containers.
    pub fn runs(&self, k: &super::resources::ObjKey) -> bool {
        self.records_of(k).next().is_some()
    }

    /// The keys of the records of pod `k` (of any uid).
    fn records_of<'a>(
        &'a self,
        k: &'a super::resources::ObjKey,
    ) -> impl Iterator<Item = &'a (super::resources::ObjKey, String)> + 'a {
        self.containers
            .range((k.clone(), String::new())..)
            .map(|(key, _)| key)
            .take_while(move |(key, _)| key == k)
    }
}

/// A duration as Go prints it (`10s`, `1m20s`, `5m0s`), as the kubelet's messages do.
pub(crate) fn go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m{}s", secs / 60, secs % 60)
    } else {
        format!("{}h{}m{}s", secs / 3600, secs % 3600 / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_normalised_as_a_registry_reads_them() {
        let full = |r: &str| ImageRef::parse(r).unwrap().full();
        assert_eq!(full("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(full("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(
            full("docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(full("pingcap/tidb:v8.5.1"), "docker.io/pingcap/tidb:v8.5.1");
        assert_eq!(
            full("registry.k8s.io/pause:3.10"),
            "registry.k8s.io/pause:3.10"
        );
        assert_eq!(full("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(full("x@sha256:ab"), "docker.io/library/x@sha256:ab");
        assert!(ImageRef::parse("Busybox").is_none());
        assert!(ImageRef::parse("").is_none());

        let mut registry = Registry::default();
        registry.push("busybox");
        registry.push("pingcap/pd:v8.5.1@sha256:cd");
        let holds = |r: &str| registry.holds(&ImageRef::parse(r).unwrap());
        assert!(holds("docker.io/library/busybox:latest"));
        assert!(!holds("busybox:1.36"));
        assert!(holds("pingcap/pd:v8.5.1"));
        assert!(holds("pingcap/pd@sha256:cd"));
        assert!(holds("pingcap/pd:v8.5.1@sha256:cd"));
        assert!(!holds("pingcap/pd@sha256:ef"));
    }

    #[test]
    fn back_offs_double_up_to_five_minutes() {
        let mut d = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..7 {
            d = next_backoff(d);
            seen.push(go_duration(d));
        }
        assert_eq!(
            seen,
            ["10s", "20s", "40s", "1m20s", "2m40s", "5m0s", "5m0s"]
        );
    }
}
