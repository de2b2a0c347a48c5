//! GET of a collection, and the checks of a watch's list options, as kube-apiserver 1.33
//! serves them over etcd:
//!
//! - `resourceVersion` unset: the latest state; `0`: any state (the watch cache's, which
//!   in 1.33 ignores `limit`); `N`: not older than `N` (504 when the server has not
//!   reached it). `resourceVersionMatch=Exact` (and, as etcd's legacy case, a `limit`ed
//!   list naming `N` without a match) reads the state at exactly `N`, 410 once compacted.
//! - `limit` and `continue`: pages in key order; the token (base64 of the version of the
//!   first page and the key to start at, as `storage.EncodeContinue` makes it) serves
//!   every page at the first page's version, so a paged list is consistent; once that
//!   version is compacted, 410 `Expired` with a token that goes on at the latest version.
//!   `remainingItemCount` is set on a page when the list has no selector.
//! - `ValidateListOptions`' checks (422 `ListOptions.meta.k8s.io`), for lists and watches.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64;
use serde_json::{Value, json};

use super::resources::{ObjKey, ResourceDef, key};
use super::selectors::{FieldSelector, LabelSelector};
use super::status::{ApiError, ApiResult, FieldError};
use super::store::{State, list_page};

/// A list's answer: its items and its `ListMeta`.
pub(crate) struct Listed {
    pub items: Vec<std::sync::Arc<Value>>,
    /// `metadata`: `resourceVersion`, and `continue` and `remainingItemCount` when more
    /// pages follow.
    pub metadata: Value,
}

/// The list options of a request, checked as `ValidateListOptions` does for a list
/// (`watch` false) or a watch. The WatchList feature gate (`sendInitialEvents`) is off by
/// default in kube-apiserver 1.33, so it is off here.
pub(crate) fn validate<'a>(param: impl Fn(&str) -> Option<&'a str>, watch: bool) -> ApiResult<()> {
    let rv = param("resourceVersion").unwrap_or("");
    let matching = param("resourceVersionMatch").unwrap_or("");
    let continued = param("continue").is_some();
    let send_initial = param("sendInitialEvents").is_some();
    let forbidden = |detail: &str| FieldError::forbidden("resourceVersionMatch", detail);
    let mut errors = Vec::new();
    if watch {
        if send_initial {
            if matching != "NotOlderThan" {
                errors.push(forbidden(
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
            errors.push(FieldError::forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
            ));
        }
        if !matching.is_empty() {
            if !send_initial {
                errors.push(forbidden(
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                ));
            }
            if matching != "NotOlderThan" {
                errors.push(FieldError::not_supported(
                    "resourceVersionMatch",
                    &json!(matching),
                    &["NotOlderThan"],
                ));
            }
            if continued {
                errors.push(forbidden(
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
        }
    } else {
        if !matching.is_empty() {
            if rv.is_empty() {
                errors.push(forbidden(
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            if continued {
                errors.push(forbidden(
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
            if matching != "Exact" && matching != "NotOlderThan" {
                errors.push(FieldError::not_supported(
                    "resourceVersionMatch",
                    &json!(matching),
                    &["Exact", "NotOlderThan", ""],
                ));
            }
            if matching == "Exact" && rv == "0" {
                errors.push(forbidden(
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
        }
        if send_initial {
            errors.push(FieldError::forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for list",
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_kind(
            "meta.k8s.io",
            "ListOptions",
            "",
            errors,
        ))
    }
}

/// A resourceVersion of a request (`storage.ParseResourceVersion`'s check).
pub(crate) fn parse_resource_version(text: &str) -> ApiResult<u64> {
    text.parse::<u64>().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid resource version {text:?}: must be a non-negative integer"
        ))
    })
}

/// GET of a collection of `res`, in `ns` or all, with the request's query `param`s.
pub(crate) fn list<'a>(
    state: &State,
    res: &ResourceDef,
    ns: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
    param: impl Fn(&str) -> Option<&'a str>,
) -> ApiResult<Listed> {
    validate(&param, false)?;
    let current = state.resource_version_number();
    let rv = param("resourceVersion");
    let matching = param("resourceVersionMatch");
    let mut limit = param("limit")
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|l| *l > 0)
        .map(|l| usize::try_from(l).unwrap_or(usize::MAX));
    let (at, after) = match param("continue") {
        Some(token) => {
            if rv.is_some_and(|rv| rv != "0") {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            let (version, start) = decode_continue(token)?;
            // -1: the token of an expired one, which goes on at the latest version.
            let at = u64::try_from(version).unwrap_or(current);
            if at < state.changes.compacted_at() {
                return Err(ApiError::continue_expired(encode_continue(-1, &start)));
            }
            (at, Some(start))
        }
        None => {
            let at = match (rv, matching) {
                (None, _) => current,
                (Some("0"), _) => {
                    // "Any": served by the watch cache, which in 1.33 answers whole.
                    limit = None;
                    current
                }
                (Some(text), Some("Exact")) => exact(state, parse_resource_version(text)?)?,
                // etcd's legacy case: a paged list at N reads exactly N.
                (Some(text), None) if limit.is_some() => {
                    exact(state, parse_resource_version(text)?)?
                }
                (Some(text), _) => {
                    let wanted = parse_resource_version(text)?;
                    if wanted > current {
                        return Err(ApiError::too_large_resource_version(wanted, current));
                    }
                    current
                }
            };
            (at, None)
        }
    };
    let table = state
        .table_at(res.plural, at)
        .ok_or_else(|| ApiError::gone("The resourceVersion for the provided list is too old."))?;
    let page = list_page(&table, ns, labels, fields, after.as_ref(), limit);
    let mut metadata = json!({ "resourceVersion": at.to_string() });
    if let Some(last) = &page.last {
        metadata["continue"] = json!(encode_continue(i64::try_from(at).unwrap_or(i64::MAX), last));
        if labels.is_empty() && fields.is_empty() {
            metadata["remainingItemCount"] = json!(page.remaining);
        }
    }
    Ok(Listed {
        items: page.items,
        metadata,
    })
}

/// The version a read at exactly `wanted` is served at: 504 when the server has not
/// reached it; 410 when it is compacted is left to the read.
fn exact(state: &State, wanted: u64) -> ApiResult<u64> {
    let current = state.resource_version_number();
    if wanted > current {
        return Err(ApiError::too_large_resource_version(wanted, current));
    }
    Ok(wanted)
}

/// etcd's key of an object, below its resource's prefix: `ns/name`, or `name` for a
/// cluster-scoped one.
fn etcd_key(k: &ObjKey) -> String {
    if k.0.is_empty() {
        k.1.clone()
    } else {
        format!("{}/{}", k.0, k.1)
    }
}

/// A continue token: `{"v":"meta.k8s.io/v1","rv":N,"start":"KEY\u0000"}` in unpadded
/// URL-safe base64, where KEY is the last key of the page (the next starts just after).
fn encode_continue(version: i64, last: &ObjKey) -> String {
    let token = json!({
        "v": "meta.k8s.io/v1",
        "rv": version,
        "start": format!("{}\u{0}", etcd_key(last)),
    });
    BASE64.encode(token.to_string())
}

/// The version and the last key of the page before, from a continue token (400
/// `invalid continue token` otherwise, as `decodeContinue`'s callers answer).
fn decode_continue(token: &str) -> ApiResult<(i64, ObjKey)> {
    let invalid = |why: &str| {
        ApiError::bad_request(format!(
            "invalid continue token: continue key is not valid: {why}"
        ))
    };
    let bytes = BASE64
        .decode(token.trim_end_matches('='))
        .map_err(|e| invalid(&e.to_string()))?;
    let value: BTreeMap<String, Value> =
        serde_json::from_slice(&bytes).map_err(|e| invalid(&e.to_string()))?;
    if value.get("v").and_then(Value::as_str) != Some("meta.k8s.io/v1") {
        return Err(invalid("server does not recognize this encoded version"));
    }
    let version = value.get("rv").and_then(Value::as_i64).ok_or_else(|| {
        invalid("incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    })?;
    let start = value
        .get("start")
        .and_then(Value::as_str)
        .and_then(|s| s.strip_suffix('\u{0}'))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("encoded start key is not valid"))?;
    let last = match start.split_once('/') {
        Some((ns, name)) => key(ns, name),
        None => key("", start),
    };
    Ok((version, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_refuse_garbage() {
        let token = encode_continue(1234, &key("ns", "pod-1"));
        assert_eq!(decode_continue(&token).unwrap(), (1234, key("ns", "pod-1")));
        let cluster = encode_continue(-1, &key("", "node-a"));
        assert_eq!(decode_continue(&cluster).unwrap(), (-1, key("", "node-a")));
        let err = decode_continue("ns/pod-1").unwrap_err();
        assert_eq!((err.code, err.reason), (400, "BadRequest"));
    }
}
