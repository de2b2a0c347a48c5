//! The resource types the simulator serves, described once so that routing, discovery,
//! validation and error messages all agree on names, scope and kind; and the key that
//! names one object of a type.

/// `(namespace, name)`; the namespace is empty for cluster-scoped objects.
pub(crate) type ObjKey = (String, String);

/// Builds an [`ObjKey`].
pub(crate) fn key(namespace: &str, name: &str) -> ObjKey {
    (namespace.to_string(), name.to_string())
}

/// Which naming rule `metadata.name` must follow (Kubernetes differs per type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NameRule {
    /// DNS-1123 subdomain: most types.
    Subdomain,
    /// DNS-1123 label: namespaces.
    Label,
    /// DNS-1035 label (starts with a letter): services.
    Dns1035,
}

/// One served resource type.
#[derive(Debug)]
pub(crate) struct ResourceDef {
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    /// API group; empty for the core ("legacy") group.
    pub group: &'static str,
    pub version: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// Types whose `status` is only written through the `/status` subresource.
    pub has_status: bool,
    pub name_rule: NameRule,
}

impl ResourceDef {
    /// `apiVersion` of objects of this type, e.g. `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The group-qualified plural used in Kubernetes error messages (`statefulsets.apps`).
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// A core-group (`v1`) type.
const fn core(
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    has_status: bool,
    name_rule: NameRule,
) -> ResourceDef {
    ResourceDef {
        plural,
        singular,
        kind,
        group: "",
        version: "v1",
        namespaced,
        short_names,
        has_status,
        name_rule,
    }
}

/// A namespaced type of a named group, with DNS-subdomain names.
const fn grouped(
    group: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    short_names: &'static [&'static str],
    has_status: bool,
) -> ResourceDef {
    let mut def = core(
        plural,
        singular,
        kind,
        true,
        short_names,
        has_status,
        NameRule::Subdomain,
    );
    def.group = group;
    def
}

/// An `apps/v1` type: all namespaced, with a status subresource.
const fn apps(
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    short_names: &'static [&'static str],
) -> ResourceDef {
    grouped("apps", plural, singular, kind, short_names, true)
}

/// An `rbac.authorization.k8s.io/v1` type: stored, not enforced.
const fn rbac(
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
) -> ResourceDef {
    let mut def = core(
        plural,
        singular,
        kind,
        namespaced,
        &[],
        false,
        NameRule::Subdomain,
    );
    def.group = "rbac.authorization.k8s.io";
    def
}

/// A `networking.k8s.io/v1` type: namespaced, without a status subresource.
const fn networking(
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    short_names: &'static [&'static str],
) -> ResourceDef {
    grouped(
        "networking.k8s.io",
        plural,
        singular,
        kind,
        short_names,
        false,
    )
}

/// A `storage.k8s.io/v1` type: cluster-scoped, without a status subresource.
const fn storage(
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    short_names: &'static [&'static str],
) -> ResourceDef {
    let mut def = core(
        plural,
        singular,
        kind,
        false,
        short_names,
        false,
        NameRule::Subdomain,
    );
    def.group = "storage.k8s.io";
    def
}

pub(crate) const NAMESPACES: &str = "namespaces";
pub(crate) const NODES: &str = "nodes";
pub(crate) const SERVICES: &str = "services";
pub(crate) const PODS: &str = "pods";
pub(crate) const PVCS: &str = "persistentvolumeclaims";
pub(crate) const PVS: &str = "persistentvolumes";
pub(crate) const STATEFULSETS: &str = "statefulsets";
pub(crate) const DEPLOYMENTS: &str = "deployments";
pub(crate) const NETWORK_POLICIES: &str = "networkpolicies";
pub(crate) const EVENTS: &str = "events";
pub(crate) const STORAGE_CLASSES: &str = "storageclasses";
pub(crate) const DISRUPTION_BUDGETS: &str = "poddisruptionbudgets";

/// Every served type; core group first, in the order discovery lists them.
/// Whether `res` has a `/scale` subresource (the workloads).
pub(crate) fn scalable(res: &ResourceDef) -> bool {
    matches!(res.plural, STATEFULSETS | DEPLOYMENTS)
}

pub(crate) static RESOURCES: &[ResourceDef] = &[
    core(
        NAMESPACES,
        "namespace",
        "Namespace",
        false,
        &["ns"],
        true,
        NameRule::Label,
    ),
    core(
        NODES,
        "node",
        "Node",
        false,
        &["no"],
        true,
        NameRule::Subdomain,
    ),
    core(
        SERVICES,
        "service",
        "Service",
        true,
        &["svc"],
        true,
        NameRule::Dns1035,
    ),
    core(PODS, "pod", "Pod", true, &["po"], true, NameRule::Subdomain),
    core(
        PVCS,
        "persistentvolumeclaim",
        "PersistentVolumeClaim",
        true,
        &["pvc"],
        true,
        NameRule::Subdomain,
    ),
    core(
        PVS,
        "persistentvolume",
        "PersistentVolume",
        false,
        &["pv"],
        true,
        NameRule::Subdomain,
    ),
    core(
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        &["cm"],
        false,
        NameRule::Subdomain,
    ),
    core(
        "secrets",
        "secret",
        "Secret",
        true,
        &[],
        false,
        NameRule::Subdomain,
    ),
    core(
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        &["sa"],
        false,
        NameRule::Subdomain,
    ),
    CORE_EVENTS,
    apps(DEPLOYMENTS, "deployment", "Deployment", &["deploy"]),
    apps(STATEFULSETS, "statefulset", "StatefulSet", &["sts"]),
    rbac("clusterroles", "clusterrole", "ClusterRole", false),
    rbac(
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        false,
    ),
    rbac("roles", "role", "Role", true),
    rbac("rolebindings", "rolebinding", "RoleBinding", true),
    networking(
        NETWORK_POLICIES,
        "networkpolicy",
        "NetworkPolicy",
        &["netpol"],
    ),
    storage(STORAGE_CLASSES, "storageclass", "StorageClass", &["sc"]),
    // `policy/v1`: stored and validated; no disruption controller writes their status.
    grouped(
        "policy",
        DISRUPTION_BUDGETS,
        "poddisruptionbudget",
        "PodDisruptionBudget",
        &["pdb"],
        true,
    ),
    // The same Events as `core/v1`'s, in `events.k8s.io/v1`'s shape (`events_v1`
    // converts): one table, two views, as the API server stores them once.
    ResourceDef {
        group: EVENTS_GROUP,
        ..CORE_EVENTS
    },
];

/// Core `v1` Events, which `events.k8s.io/v1` serves too.
const CORE_EVENTS: ResourceDef = core(
    EVENTS,
    "event",
    "Event",
    true,
    &["ev"],
    false,
    NameRule::Subdomain,
);

/// The group of the newer Events API.
pub(crate) const EVENTS_GROUP: &str = "events.k8s.io";

/// Looks a type up by group and plural name.
pub(crate) fn find(group: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural)
}

/// Looks a type up by plural name alone (plurals are unique among the served types but
/// for `events`, which names the core type here).
pub(crate) fn by_plural(plural: &str) -> &'static ResourceDef {
    RESOURCES
        .iter()
        .find(|r| r.plural == plural)
        .unwrap_or_else(|| panic!("unknown simulated resource {plural}"))
}

/// Looks a type up by kind, as found in owner references.
pub(crate) fn by_kind(kind: &str) -> Option<&'static ResourceDef> {
    RESOURCES.iter().find(|r| r.kind == kind)
}
