//! The `DELETE` verb, as kube-apiserver's generic registry (`Store.Delete`,
//! `rest.BeforeDelete`) and its namespace storage run it, as more methods of `store`'s
//! [`State`]:
//!
//! - preconditions on the uid and resourceVersion;
//! - graceful deletion of pods: a scheduled pod gets a `deletionTimestamp` at the end of
//!   its grace period (the request's `gracePeriodSeconds`, else its
//!   `terminationGracePeriodSeconds`) and stays until the kubelet is done with it;
//! - the garbage collector's finalizers that a propagation policy asks for (`orphan`,
//!   `foregroundDeletion`);
//! - an object with finalizers is kept, with a `deletionTimestamp` and a zero
//!   `deletionGracePeriodSeconds` (`markAsDeleting`), until they are all removed;
//! - a DELETE of an object already being deleted changes nothing (but for a shorter
//!   grace period, or other garbage-collector finalizers), and answers with it;
//! - namespaces go `Terminating` and stay until the namespace controller has emptied and
//!   finalized them; `default`, `kube-system` and `kube-public` may not be deleted.
//!
//! What then finishes a deletion (the kubelet, the garbage collector, the namespace and
//! protection controllers) is in `termination`.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::json::{
    finalizers, is_terminating, meta, now_rfc3339, rfc3339_in, shifted_rfc3339, str_at,
};
use super::resources::{NAMESPACES, ObjKey, PODS, ResourceDef, key};
use super::status::{ApiError, ApiResult};
use super::store::{DeleteOptions, Propagation, State};

/// The finalizer of an object whose dependents the garbage collector orphans first.
pub(crate) const ORPHAN: &str = "orphan";
/// The finalizer of an object whose dependents the garbage collector deletes first.
pub(crate) const FOREGROUND: &str = "foregroundDeletion";
/// The namespace finalizer the namespace controller removes once the namespace is empty.
pub(crate) const NAMESPACE_FINALIZER: &str = "kubernetes";
/// Namespaces the `NamespaceLifecycle` admission plugin never lets go.
const IMMORTAL_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

/// What `rest.BeforeDelete` decides for a pod.
enum Graceful {
    /// Not a graceful deletion (not a pod, or a pod whose grace period is over).
    No,
    /// Already being deleted with a grace period no longer than the one asked for.
    Pending,
    /// A graceful deletion with this many seconds (0: at once).
    Yes(i64),
}

impl State {
    /// DELETE of one object: answers with the object as deleted, or as kept while its
    /// finalizers or grace period run.
    pub fn delete(
        &mut self,
        res: &'static ResourceDef,
        url_ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Value> {
        let ns = if res.namespaced {
            url_ns.unwrap_or("default")
        } else {
            ""
        };
        let k = key(ns, name);
        let Some(old) = self.lookup(res.plural, &k).cloned() else {
            return Err(ApiError::not_found(res, name));
        };
        if res.plural == NAMESPACES {
            return self.delete_namespace(res, &k, old, opts);
        }
        check_preconditions(res, name, &old, opts)?;
        let mut obj = old.clone();
        let grace = match graceful(res, &mut obj, opts) {
            // Finalizers cannot change through a DELETE once a grace period runs.
            Graceful::Pending => return Ok(old),
            Graceful::No => None,
            Graceful::Yes(period) => Some(period),
        };
        set_gc_finalizers(&mut obj, opts);
        let pending = !finalizers(&obj).is_empty();
        match grace {
            None if pending => {
                mark_as_deleting(&mut obj);
                Ok(self.keep(res, &k, &old, obj))
            }
            None => Ok(self.remove(res, &k).expect("looked up above")),
            Some(0) if !pending => {
                // The graceful path stores the deletion before it removes the object, so
                // watchers see the pod marked, then gone.
                self.keep(res, &k, &old, obj);
                Ok(self.remove(res, &k).expect("just written"))
            }
            Some(period) => {
                if period > 0 {
                    let real = Duration::from_secs_f64(period as f64 / self.time_scale);
                    if self
                        .terminate_at
                        .insert(k.clone(), Instant::now() + real)
                        .is_none()
                    {
                        self.stopping.push(k.clone());
                    }
                }
                Ok(self.keep(res, &k, &old, obj))
            }
        }
    }

    /// Stores `obj`, the object `old` marked for deletion, unless nothing changed (a
    /// second DELETE); returns it as stored.
    fn keep(&mut self, res: &ResourceDef, k: &ObjKey, old: &Value, obj: Value) -> Value {
        if obj == *old {
            return obj;
        }
        self.dirty = true;
        Value::clone(&self.put(res.plural, k.clone(), obj))
    }

    /// DELETE of a namespace, as its storage's `Delete`: the first sets its
    /// `deletionTimestamp` and phase `Terminating`; later ones answer with it while its
    /// `spec.finalizers` remain; once they are done, it goes as any object does.
    fn delete_namespace(
        &mut self,
        res: &'static ResourceDef,
        k: &ObjKey,
        old: Value,
        opts: &DeleteOptions,
    ) -> ApiResult<Value> {
        let name = &k.1;
        if IMMORTAL_NAMESPACES.contains(&name.as_str()) {
            return Err(ApiError::forbidden(
                res,
                name,
                "this namespace may not be deleted",
            ));
        }
        // The namespace storage words its precondition failures as the etcd layer does.
        for (wanted, field, label) in [
            (&opts.uid, "uid", "UID"),
            (&opts.resource_version, "resourceVersion", "ResourceVersion"),
        ] {
            if let Some(wanted) = wanted
                && wanted != meta(&old, field)
            {
                return Err(ApiError::conflict(
                    res,
                    name,
                    &format!(
                        "Precondition failed: {label} in precondition: {wanted}, {label} in object meta: {}",
                        meta(&old, field)
                    ),
                ));
            }
        }
        if !is_terminating(&old) {
            let mut ns = old.clone();
            ns["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            ns["status"]["phase"] = json!("Terminating");
            // `shouldHaveOrphanFinalizer` and `shouldHaveDeleteDependentsFinalizer`.
            let current = finalizers(&ns);
            let (orphan, foreground) = match (opts.orphan_dependents, opts.propagation) {
                (Some(orphan), _) => (orphan, !orphan),
                (None, Some(p)) => (p == Propagation::Orphan, p == Propagation::Foreground),
                (None, None) => (
                    current.iter().any(|f| f == ORPHAN),
                    current.iter().any(|f| f == FOREGROUND),
                ),
            };
            write_gc_finalizers(&mut ns, &current, orphan, foreground);
            return Ok(self.keep(res, k, &old, ns));
        }
        if old["spec"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
        {
            return Ok(old);
        }
        let mut ns = old.clone();
        set_gc_finalizers(&mut ns, opts);
        if finalizers(&ns).is_empty() {
            return Ok(self.remove(res, k).expect("looked up above"));
        }
        mark_as_deleting(&mut ns);
        Ok(self.keep(res, k, &old, ns))
    }
}

/// The uid and resourceVersion preconditions, as `rest.BeforeDelete` checks them.
fn check_preconditions(
    res: &ResourceDef,
    name: &str,
    obj: &Value,
    opts: &DeleteOptions,
) -> ApiResult<()> {
    for (wanted, field) in [
        (&opts.uid, "uid"),
        (&opts.resource_version, "resourceVersion"),
    ] {
        if let Some(wanted) = wanted
            && wanted != meta(obj, field)
        {
            return Err(ApiError::precondition_failed(
                res,
                name,
                field,
                wanted,
                meta(obj, field),
            ));
        }
    }
    Ok(())
}

/// `rest.BeforeDelete` with the pod strategy's `CheckGracefulDelete`: marks `obj` (a
/// pod) with its deletion, or tells why not.
fn graceful(res: &ResourceDef, obj: &mut Value, opts: &DeleteOptions) -> Graceful {
    if res.plural != PODS {
        return Graceful::No;
    }
    if is_terminating(obj) {
        let current = obj["metadata"]["deletionGracePeriodSeconds"].as_i64();
        let Some(current) = current.filter(|c| *c > 0) else {
            return Graceful::No;
        };
        // Only a shorter grace period may be asked for once one runs.
        return match opts.grace_period_seconds {
            Some(period) if period < current => {
                let at = shifted_rfc3339(
                    str_at(obj, &["metadata", "deletionTimestamp"]),
                    period - current,
                );
                obj["metadata"]["deletionTimestamp"] = json!(at);
                obj["metadata"]["deletionGracePeriodSeconds"] = json!(period);
                Graceful::Yes(period)
            }
            _ => Graceful::Pending,
        };
    }
    let mut period = opts
        .grace_period_seconds
        .or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(0);
    // A pod no kubelet runs, or that has finished, has nothing to wait for.
    let phase = str_at(obj, &["status", "phase"]);
    if str_at(obj, &["spec", "nodeName"]).is_empty() || matches!(phase, "Failed" | "Succeeded") {
        period = 0;
    }
    if period < 0 {
        period = 1;
    }
    obj["metadata"]["deletionTimestamp"] = json!(rfc3339_in(period));
    obj["metadata"]["deletionGracePeriodSeconds"] = json!(period);
    bump_generation(obj);
    Graceful::Yes(period)
}

/// `markAsDeleting`: a deletion that waits for finalizers only.
fn mark_as_deleting(obj: &mut Value) {
    let now = now_rfc3339();
    let at = str_at(obj, &["metadata", "deletionTimestamp"]).to_string();
    if at.is_empty() {
        bump_generation(obj);
    }
    // Whole-second RFC 3339 timestamps of one format compare as text.
    if at.is_empty() || at > now {
        obj["metadata"]["deletionTimestamp"] = json!(now);
    }
    obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
}

/// The first deletion of an object is a change of it (`generation` + 1).
fn bump_generation(obj: &mut Value) {
    if let Some(generation) = obj["metadata"]["generation"].as_i64().filter(|g| *g > 0) {
        obj["metadata"]["generation"] = json!(generation + 1);
    }
}

/// `deletionFinalizersForGarbageCollection`: the `orphan` and `foregroundDeletion`
/// finalizers that the options (or else the finalizers already there) ask for.
fn set_gc_finalizers(obj: &mut Value, opts: &DeleteOptions) {
    let current = finalizers(obj);
    let first = current
        .iter()
        .find(|f| *f == ORPHAN || *f == FOREGROUND)
        .map(String::as_str);
    let (orphan, foreground) = match (opts.orphan_dependents, opts.propagation) {
        (Some(orphan), _) => (orphan, false),
        (None, Some(p)) => (p == Propagation::Orphan, p == Propagation::Foreground),
        (None, None) => (first == Some(ORPHAN), first == Some(FOREGROUND)),
    };
    write_gc_finalizers(obj, &current, orphan, foreground);
}

/// Writes `current` without the garbage collector's finalizers, then with those wanted,
/// unless that is the same set.
fn write_gc_finalizers(obj: &mut Value, current: &[String], orphan: bool, foreground: bool) {
    let mut wanted: Vec<String> = current
        .iter()
        .filter(|f| *f != ORPHAN && *f != FOREGROUND)
        .cloned()
        .collect();
    if orphan {
        wanted.push(ORPHAN.to_string());
    }
    if foreground {
        wanted.push(FOREGROUND.to_string());
    }
    let same = wanted.len() == current.len() && wanted.iter().all(|f| current.contains(f));
    if !same {
        obj["metadata"]["finalizers"] = json!(wanted);
    }
}
