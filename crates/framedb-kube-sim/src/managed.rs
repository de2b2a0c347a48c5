//! Field ownership and server-side apply as structured merge (structured-merge-diff, as
//! kube-apiserver 1.33 runs it): every write records, in `metadata.managedFields`, which
//! manager set which fields; an apply merges the applied configuration into the object
//! field by field (list-maps by their keys), removes the fields its manager applied
//! before and now leaves out (unless another manager owns them too), and is refused with
//! 409 `Conflict` when it would change a field another manager owns, unless forced.
//!
//! Field sets are kept as paths of `FieldsV1` segments (`f:spec`, `k:{"name":"c"}`,
//! `v:"x"`, `.` for a list element itself), the form `managedFields` stores them in.
//! Which lists are maps, and by which keys, is the types' `listType`/`listMapKeys`
//! (`list_type`); any list not named there is atomic (replaced whole).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::json::now_rfc3339;
use super::status::ApiError;

/// One field: its `FieldsV1` segments from the object's root.
type Path = Vec<String>;
type FieldSet = BTreeSet<Path>;

/// The annotation client-side `kubectl apply` records its configuration in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// How a write's `managedFields` come about.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Fields<'a> {
    /// A write by the simulator's own components: ownership as it was.
    Kept,
    /// A create, update or patch by a client: it owns what it changed.
    Update(&'a Writer),
    /// A server-side apply: [`apply`] has set them on the object already.
    Applied,
}

/// Who writes, and how (the request's `fieldManager`, or its user agent's product).
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    pub manager: String,
    /// An apply's `force=true`: take over the fields of others rather than conflict.
    pub force: bool,
}

impl Writer {
    /// The manager of a request: `fieldManager`, else the user agent up to its first `/`
    /// (`kubectl/v1.33.1 (linux/amd64) ...` is `kubectl`), as the API server defaults it.
    pub fn of_request(field_manager: Option<&str>, user_agent: &str, force: bool) -> Self {
        let manager = field_manager.map_or_else(
            || user_agent.split('/').next().unwrap_or_default().to_string(),
            str::to_string,
        );
        Self { manager, force }
    }
}

/// How a list merges (`+listType`, `+listMapKeys` of the Kubernetes types).
enum ListType {
    Atomic,
    Set,
    Map(&'static [&'static str]),
}

/// The list type of the list at `names` (the field names from the root, no keys).
fn list_type(names: &[&str]) -> ListType {
    let (last, parent) = match names {
        [.., parent, last] => (*last, *parent),
        [last] => (*last, ""),
        [] => return ListType::Atomic,
    };
    match (parent, last) {
        (_, "containers" | "initContainers" | "ephemeralContainers") => ListType::Map(&["name"]),
        ("containers" | "initContainers" | "ephemeralContainers", "ports") => {
            ListType::Map(&["containerPort", "protocol"])
        }
        // A Service's ports; a NetworkPolicy's are inside its rules, atomic.
        ("spec", "ports") => ListType::Map(&["port", "protocol"]),
        (_, "env" | "volumes" | "imagePullSecrets" | "resourceClaims") => ListType::Map(&["name"]),
        (_, "volumeMounts") => ListType::Map(&["mountPath"]),
        (_, "volumeDevices") => ListType::Map(&["devicePath"]),
        (_, "hostAliases") => ListType::Map(&["ip"]),
        (_, "topologySpreadConstraints") => ListType::Map(&["topologyKey", "whenUnsatisfiable"]),
        (_, "conditions") => ListType::Map(&["type"]),
        ("metadata", "ownerReferences") => ListType::Map(&["uid"]),
        ("metadata", "finalizers") => ListType::Set,
        _ => ListType::Atomic,
    }
}

/// The key segment of a list-map element (`k:{"containerPort":80,"protocol":"TCP"}`):
/// its key fields in name order; `protocol`, defaulted by the server, as `TCP` when the
/// element leaves it out.
fn key_segment(element: &Value, keys: &[&str]) -> String {
    let mut sorted: Vec<&&str> = keys.iter().collect();
    sorted.sort();
    let mut fields = Map::new();
    for key in sorted {
        match element.get(*key) {
            Some(v) if !v.is_null() => {
                fields.insert((*key).to_string(), v.clone());
            }
            _ if *key == "protocol" => {
                fields.insert("protocol".into(), json!("TCP"));
            }
            _ => {}
        }
    }
    format!("k:{}", Value::Object(fields))
}

/// Fields no manager owns: the object's identity, the server's own metadata, and the
/// type (`stripmeta`).
fn unowned(names: &[&str]) -> bool {
    matches!(
        names,
        ["apiVersion" | "kind"]
            | [
                "metadata",
                "name"
                    | "namespace"
                    | "uid"
                    | "resourceVersion"
                    | "generation"
                    | "creationTimestamp"
                    | "managedFields"
                    | "selfLink"
                    | "deletionTimestamp"
                    | "deletionGracePeriodSeconds"
            ]
    )
}

/// The fields `obj` sets, each with its value (a list element's `.` with the element);
/// `status` counts only for a write of the status subresource, and only it does then.
fn leaves(obj: &Value, status: bool) -> BTreeMap<Path, &Value> {
    let mut found = BTreeMap::new();
    let Some(fields) = obj.as_object() else {
        return found;
    };
    for (name, value) in fields {
        if (name == "status") != status || unowned(&[name.as_str()]) {
            continue;
        }
        walk(
            value,
            &mut vec![format!("f:{name}")],
            &mut vec![name.as_str()],
            &mut found,
        );
    }
    found
}

fn walk<'a>(
    value: &'a Value,
    path: &mut Path,
    names: &mut Vec<&'a str>,
    found: &mut BTreeMap<Path, &'a Value>,
) {
    match value {
        Value::Object(fields) if !fields.is_empty() => {
            for (name, v) in fields {
                names.push(name);
                if !unowned(names) {
                    path.push(format!("f:{name}"));
                    walk(v, path, names, found);
                    path.pop();
                }
                names.pop();
            }
        }
        Value::Array(items) => match list_type(names) {
            ListType::Atomic => {
                found.insert(path.clone(), value);
            }
            ListType::Set => {
                for item in items {
                    path.push(format!("v:{item}"));
                    found.insert(path.clone(), item);
                    path.pop();
                }
            }
            ListType::Map(keys) => {
                for item in items {
                    path.push(key_segment(item, keys));
                    path.push(".".into());
                    found.insert(path.clone(), item);
                    path.pop();
                    if let Value::Object(fields) = item {
                        for (name, v) in fields {
                            names.push(name);
                            path.push(format!("f:{name}"));
                            walk(v, path, names, found);
                            path.pop();
                            names.pop();
                        }
                    }
                    path.pop();
                }
            }
        },
        _ => {
            found.insert(path.clone(), value);
        }
    }
}

/// The value at `path` in `obj`, if it has one.
fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut at = obj;
    for segment in path {
        at = if let Some(name) = segment.strip_prefix("f:") {
            at.get(name)?
        } else if let Some(key) = segment.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(key).ok()?;
            at.as_array()?.iter().find(|item| matches_key(item, &key))?
        } else if let Some(v) = segment.strip_prefix("v:") {
            let v: Value = serde_json::from_str(v).ok()?;
            at.as_array()?.iter().find(|item| **item == v)?
        } else {
            at
        };
    }
    Some(at)
}

/// Whether a list element has the key fields `key` names (a defaulted `protocol` left
/// out counts as `TCP`).
fn matches_key(item: &Value, key: &Map<String, Value>) -> bool {
    // An element that names none of its keys is no other element.
    !key.is_empty()
        && key.iter().all(|(k, v)| match item.get(k) {
            Some(have) if !have.is_null() => have == v,
            _ => k == "protocol" && v == "TCP",
        })
}

/// Removes the field at `path` from `obj` (a list element with its `.` or `v:` path).
fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    if last == "." {
        if let Some((element, list)) = parent.split_last()
            && let Some(key) = element.strip_prefix("k:")
            && let Ok(key) = serde_json::from_str::<Map<String, Value>>(key)
            && let Some(Value::Array(items)) = value_at_mut(obj, list)
        {
            items.retain(|item| !matches_key(item, &key));
        }
        return;
    }
    match value_at_mut(obj, parent) {
        Some(Value::Object(fields)) => {
            if let Some(name) = last.strip_prefix("f:") {
                fields.remove(name);
            }
        }
        Some(Value::Array(items)) => {
            if let Some(v) = last
                .strip_prefix("v:")
                .and_then(|v| serde_json::from_str::<Value>(v).ok())
            {
                items.retain(|item| *item != v);
            }
        }
        _ => {}
    }
}

fn value_at_mut<'a>(obj: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut at = obj;
    for segment in path {
        at = if let Some(name) = segment.strip_prefix("f:") {
            at.get_mut(name)?
        } else if let Some(key) = segment.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(key).ok()?;
            at.as_array_mut()?
                .iter_mut()
                .find(|item| matches_key(item, &key))?
        } else {
            return None;
        };
    }
    Some(at)
}

/// Merges the applied configuration `applied` into `live`: structs and maps field by
/// field, list-maps element by element (by key), sets by value, atomic lists and
/// scalars replaced.
fn merge(live: &mut Value, applied: &Value, names: &mut Vec<String>) {
    match (live, applied) {
        (Value::Object(have), Value::Object(want)) => {
            for (name, v) in want {
                names.push(name.clone());
                match have.get_mut(name) {
                    Some(existing) if !existing.is_null() => merge(existing, v, names),
                    _ => {
                        have.insert(name.clone(), v.clone());
                    }
                }
                names.pop();
            }
        }
        (Value::Array(have), Value::Array(want)) => {
            let list: Vec<&str> = names.iter().map(String::as_str).collect();
            match list_type(&list) {
                ListType::Atomic => *have = want.clone(),
                ListType::Set => {
                    for v in want {
                        if !have.contains(v) {
                            have.push(v.clone());
                        }
                    }
                }
                ListType::Map(keys) => {
                    for element in want {
                        let key = key_segment(element, keys);
                        let key: Map<String, Value> =
                            serde_json::from_str(key.trim_start_matches("k:")).unwrap_or_default();
                        match have.iter_mut().find(|item| matches_key(item, &key)) {
                            Some(existing) => merge(existing, element, names),
                            None => have.push(element.clone()),
                        }
                    }
                }
            }
        }
        (live, applied) => *live = applied.clone(),
    }
}

/// One `managedFields` entry, read.
struct Entry {
    manager: String,
    operation: String,
    subresource: String,
    api_version: String,
    time: String,
    fields: FieldSet,
}

impl Entry {
    fn read(entry: &Value) -> Self {
        let mut fields = FieldSet::new();
        tree_paths(&entry["fieldsV1"], &mut Vec::new(), &mut fields);
        Self {
            manager: entry["manager"].as_str().unwrap_or_default().to_string(),
            operation: entry["operation"].as_str().unwrap_or_default().to_string(),
            subresource: entry["subresource"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            api_version: entry["apiVersion"].as_str().unwrap_or_default().to_string(),
            time: entry["time"].as_str().unwrap_or_default().to_string(),
            fields,
        }
    }

    fn write(&self) -> Value {
        let mut tree = Map::new();
        for path in &self.fields {
            let mut at = &mut tree;
            for segment in path {
                at = at
                    .entry(segment.clone())
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .expect("built as objects");
            }
        }
        let mut entry = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": tree,
        });
        if !self.subresource.is_empty() {
            entry["subresource"] = json!(self.subresource);
        }
        entry
    }

    /// How a conflict names this manager (`printManager`): an apply by its name, an
    /// update with its version and time.
    fn shown(&self) -> String {
        let mut shown = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            shown = format!("{shown} with subresource {:?}", self.subresource);
        }
        if self.operation == "Update" {
            shown = format!("{shown} using {} at {}", self.api_version, self.time);
        }
        shown
    }
}

/// The paths of a `FieldsV1` tree: its leaves, and every `.` marker.
fn tree_paths(tree: &Value, path: &mut Path, set: &mut FieldSet) {
    let Some(children) = tree.as_object().filter(|c| !c.is_empty()) else {
        if !path.is_empty() {
            set.insert(path.clone());
        }
        return;
    };
    for (segment, child) in children {
        path.push(segment.clone());
        tree_paths(child, path, set);
        path.pop();
    }
}

fn entries(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|entries| entries.iter().map(Entry::read).collect())
        .unwrap_or_default()
}

fn store_entries(obj: &mut Value, entries: &[Entry]) {
    let Some(metadata) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let kept: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(Entry::write)
        .collect();
    if kept.is_empty() {
        metadata.remove("managedFields");
    } else {
        metadata.insert("managedFields".into(), Value::Array(kept));
    }
}

/// A field path as a conflict names it (`.spec.template.spec.containers[name="c"].image`).
fn shown_path(path: &[String]) -> String {
    let mut out = String::new();
    for segment in path {
        if let Some(name) = segment.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(key) = segment.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
            let pairs: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", pairs.join(",")));
        } else if let Some(v) = segment.strip_prefix("v:") {
            out.push_str(&format!("[={v}]"));
        }
    }
    out
}

/// A server-side apply of `applied` by `writer` to `live` (the stored object, or an empty
/// one for a create), whose type is `api_version`: the merged object, with its
/// `managedFields`, or the 409 of the conflicts.
///
/// # Errors
///
/// 409 `Conflict` (`Apply failed with N conflict(s): ...`, a `FieldManagerConflict` cause
/// per field) when the apply would change fields other managers own and is not forced.
pub(crate) fn apply(
    live: &Value,
    applied: &Value,
    writer: &Writer,
    api_version: &str,
) -> Result<Value, ApiError> {
    let applied_leaves = leaves(applied, false);
    let live_leaves = leaves(live, false);
    let wanted: FieldSet = applied_leaves.keys().cloned().collect();
    let mut managers = entries(live);
    let mine = |e: &Entry| {
        e.manager == writer.manager && e.operation == "Apply" && e.subresource.is_empty()
    };
    let mut conflicts: Vec<(String, Path)> = Vec::new();
    for other in managers.iter().filter(|e| !mine(e)) {
        for path in wanted.intersection(&other.fields) {
            if path.last().is_some_and(|s| s == ".") {
                continue;
            }
            if live_leaves
                .get(path)
                .is_some_and(|have| Some(have) != applied_leaves.get(path))
            {
                conflicts.push((other.shown(), path.clone()));
            }
        }
    }
    // `kubectl apply --server-side` takes over what a client-side `kubectl apply` set:
    // the fields whose live value is still the one its last-applied annotation records
    // (`lastAppliedManager`).
    let mut blocking = conflicts.clone();
    if writer.manager == "kubectl" {
        let last_applied: Option<Value> = live["metadata"]["annotations"][LAST_APPLIED]
            .as_str()
            .and_then(|text| serde_json::from_str(text).ok());
        if let Some(last_applied) = last_applied {
            blocking.retain(|(_, path)| value_at(&last_applied, path) != value_at(live, path));
        }
    }
    if !blocking.is_empty() && !writer.force {
        let shown: Vec<(String, String)> = blocking
            .iter()
            .map(|(m, p)| (m.clone(), shown_path(p)))
            .collect();
        return Err(ApiError::apply_conflicts(&shown));
    }
    let mut merged = live.clone();
    merge(&mut merged, applied, &mut Vec::new());
    let unchanged_fields = managers.iter().any(|e| mine(e) && e.fields == wanted);
    // What this manager applied before and leaves out now goes, unless another owns it.
    let before: FieldSet = managers
        .iter()
        .filter(|e| mine(e))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let owned_by_others: FieldSet = managers
        .iter()
        .filter(|e| !mine(e))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    // A list element stays, with its key fields, while another manager owns anything
    // inside it (structured-merge-diff adds such items back after pruning).
    let kept_by_others = |element: &[String]| {
        owned_by_others
            .iter()
            .any(|p| p.len() > element.len() && p.starts_with(element))
            || wanted
                .iter()
                .any(|p| p.len() > element.len() && p.starts_with(element))
    };
    for path in before.difference(&wanted) {
        if owned_by_others.contains(path) {
            continue;
        }
        let element_stays = match path.as_slice() {
            [parent @ .., last] if last == "." => kept_by_others(parent),
            [parent @ .., element, field] if element.starts_with("k:") => {
                let key_field = field
                    .strip_prefix("f:")
                    .is_some_and(|name| element.contains(&format!("\"{name}\":")));
                key_field && {
                    let mut whole = parent.to_vec();
                    whole.push(element.clone());
                    !before.contains(&[whole.as_slice(), &[".".to_string()]].concat())
                        || kept_by_others(&whole)
                        || wanted.contains(&[whole.as_slice(), &[".".to_string()]].concat())
                }
            }
            _ => false,
        };
        if !element_stays {
            remove_at(&mut merged, path);
        }
    }
    // Forced: the conflicting fields change hands.
    for (_, path) in &conflicts {
        for other in managers.iter_mut().filter(|e| !mine(e)) {
            other.fields.remove(path);
        }
    }
    if unchanged_fields && conflicts.is_empty() && without_managed(&merged) == without_managed(live)
    {
        // A no-op apply writes nothing, not even a new time (no new resourceVersion).
        return Ok(live.clone());
    }
    managers.retain(|e| !mine(e));
    managers.push(Entry {
        manager: writer.manager.clone(),
        operation: "Apply".into(),
        subresource: String::new(),
        api_version: api_version.to_string(),
        time: now_rfc3339(),
        fields: wanted,
    });
    store_entries(&mut merged, &managers);
    Ok(merged)
}

fn without_managed(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(metadata) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    obj
}

/// Records a non-apply write (create, update, patch) of `new` over `old` (`None` for a
/// create) by `writer`: it owns the fields it changed, which no other manager owns any
/// longer; `status` for a write of the status subresource. `managedFields` the write
/// itself sets are taken as the ownership so far (kubectl rewrites them so to move a
/// client-side apply's fields to its server-side apply; `[]` clears them); left out,
/// they stay as they were.
pub(crate) fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    writer: &Writer,
    api_version: &str,
    status: bool,
) {
    let set_by_write = matches!(new["metadata"].get("managedFields"), Some(Value::Array(_)));
    let changed: FieldSet = {
        let after = leaves(new, status);
        match old {
            None => after.into_keys().collect(),
            Some(old) => {
                let before = leaves(old, status);
                after
                    .into_iter()
                    // An element that was there already is not changed itself when a
                    // field inside it is (upstream's Compare): its `.` stays its owner's.
                    .filter(|(p, v)| match before.get(p) {
                        None => true,
                        Some(_) if p.last().is_some_and(|s| s == ".") => false,
                        Some(was) => was != v,
                    })
                    .map(|(p, _)| p)
                    .collect()
            }
        }
    };
    if changed.is_empty() && !set_by_write {
        if let Some(old) = old {
            keep(old, new);
        }
        return;
    }
    let mut managers = if set_by_write {
        entries(new)
    } else {
        old.map(entries).unwrap_or_default()
    };
    if changed.is_empty() {
        store_entries(new, &managers);
        return;
    }
    let subresource = if status { "status" } else { "" };
    for other in managers.iter_mut() {
        if other.manager != writer.manager
            || other.operation != "Update"
            || other.subresource != subresource
        {
            other.fields.retain(|p| !changed.contains(p));
        }
    }
    match managers.iter_mut().find(|e| {
        e.manager == writer.manager && e.operation == "Update" && e.subresource == subresource
    }) {
        Some(entry) => {
            entry.fields.extend(changed);
            entry.time = now_rfc3339();
            entry.api_version = api_version.to_string();
        }
        None => managers.push(Entry {
            manager: writer.manager.clone(),
            operation: "Update".into(),
            subresource: subresource.to_string(),
            api_version: api_version.to_string(),
            time: now_rfc3339(),
            fields: changed,
        }),
    }
    store_entries(new, &managers);
}

/// Keeps `old`'s `managedFields` on `new`: a write by the simulator's own components.
pub(crate) fn keep(old: &Value, new: &mut Value) {
    let Some(metadata) = new.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    match old["metadata"].get("managedFields") {
        Some(managed) => metadata.insert("managedFields".into(), managed.clone()),
        None => metadata.remove("managedFields"),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(manager: &str, force: bool) -> Writer {
        Writer {
            manager: manager.into(),
            force,
        }
    }

    fn deployment(image: &str, replicas: Option<i64>) -> Value {
        let mut d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "web", "labels": { "app": "web" } },
            "spec": { "template": { "spec": { "containers": [{ "name": "web", "image": image, "ports": [{ "containerPort": 80 }] }] } } },
        });
        if let Some(n) = replicas {
            d["spec"]["replicas"] = json!(n);
        }
        d
    }

    /// Adds a `log` container of `image` to deployment `d`.
    fn with_log(d: &mut Value, image: &str) {
        d["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "name": "log", "image": image }));
    }

    /// `live` as `kubectl edit` leaves it after `change`, with the update recorded.
    fn edited_by_kubectl(live: &Value, change: impl FnOnce(&mut Value)) -> Value {
        let mut edited = live.clone();
        change(&mut edited);
        record_update(
            Some(live),
            &mut edited,
            &writer("kubectl-edit", false),
            "apps/v1",
            false,
        );
        edited
    }

    fn containers_of(d: &Value) -> &Vec<Value> {
        d["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
    }

    /// The deployment as manager `a` first applies it (2 replicas of `nginx:1`).
    fn created_by_a() -> Value {
        apply(
            &json!({}),
            &deployment("nginx:1", Some(2)),
            &writer("a", false),
            "apps/v1",
        )
        .unwrap()
    }

    #[test]
    fn list_maps_merge_by_key_and_omitted_fields_go() {
        let live = created_by_a();
        // Another manager adds a sidecar container and a label by update.
        let edited = edited_by_kubectl(&live, |d| {
            with_log(d, "busybox");
            d["metadata"]["labels"]["team"] = json!("db");
        });

        // `a` applies again without replicas, with a new image: its container merges by
        // name, the sidecar stays, replicas (only `a`'s) goes.
        let next = apply(
            &edited,
            &deployment("nginx:2", None),
            &writer("a", false),
            "apps/v1",
        )
        .unwrap();
        let containers = containers_of(&next);
        assert_eq!(containers.len(), 2, "{next}");
        assert_eq!(containers[0]["image"], "nginx:2");
        assert_eq!(containers[1]["name"], "log");
        assert!(next["spec"].get("replicas").is_none(), "{next}");
        assert_eq!(next["metadata"]["labels"]["team"], "db");
        let managers: Vec<&str> = next["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers, ["kubectl-edit", "a"]);
    }

    #[test]
    fn an_element_another_manager_changed_stays_whole_when_its_applier_drops_it() {
        let mut two = deployment("nginx:1", None);
        with_log(&mut two, "busybox:1");
        let live = apply(&json!({}), &two, &writer("a", false), "apps/v1").unwrap();
        let edited = edited_by_kubectl(&live, |d| {
            d["spec"]["template"]["spec"]["containers"][1]["image"] = json!("busybox:2");
        });

        let next = apply(
            &edited,
            &deployment("nginx:1", None),
            &writer("a", false),
            "apps/v1",
        )
        .unwrap();
        let containers = containers_of(&next);
        assert_eq!(containers.len(), 2, "{next}");
        assert_eq!(
            containers[1],
            json!({ "name": "log", "image": "busybox:2" }),
            "{next}"
        );
    }

    #[test]
    fn changing_another_manager_s_field_conflicts_unless_forced() {
        let live = created_by_a();
        let err = apply(
            &live,
            &deployment("nginx:1", Some(5)),
            &writer("b", false),
            "apps/v1",
        )
        .unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"a\": .spec.replicas"
        );
        // The same value is shared ownership, not a conflict.
        let shared = apply(
            &live,
            &deployment("nginx:1", Some(2)),
            &writer("b", false),
            "apps/v1",
        )
        .unwrap();
        assert_eq!(entries(&shared).len(), 2);
        // Forced, the field changes hands.
        let forced = apply(
            &live,
            &deployment("nginx:1", Some(5)),
            &writer("b", true),
            "apps/v1",
        )
        .unwrap();
        assert_eq!(forced["spec"]["replicas"], 5);
        let a = entries(&forced)
            .into_iter()
            .find(|e| e.manager == "a")
            .unwrap();
        assert!(
            !a.fields
                .contains(&vec!["f:spec".to_string(), "f:replicas".to_string()])
        );
    }

    #[test]
    fn field_sets_use_the_fields_v1_segments() {
        let set: FieldSet = leaves(&deployment("nginx:1", Some(1)), false)
            .into_keys()
            .collect();
        let container = [
            "f:spec",
            "f:template",
            "f:spec",
            "f:containers",
            "k:{\"name\":\"web\"}",
        ];
        let with = |rest: &[&str]| {
            container
                .iter()
                .chain(rest)
                .map(|s| s.to_string())
                .collect::<Path>()
        };
        assert!(set.contains(&with(&["."])));
        assert!(set.contains(&with(&["f:image"])));
        assert!(set.contains(&with(&[
            "f:ports",
            "k:{\"containerPort\":80,\"protocol\":\"TCP\"}",
            "f:containerPort"
        ])));
        assert_eq!(
            shown_path(&with(&["f:image"])),
            ".spec.template.spec.containers[name=\"web\"].image"
        );
    }
}
