//! Kubernetes `Status` failures: the error type of every simulator operation, rendered
//! with the reasons, messages and codes a real API server uses so that clients'
//! error handling (kube-rs `Error::Api`, kubectl) is exercised as it would be in production.

use serde_json::{Value, json};

use super::resources::ResourceDef;

/// The kind of one field error, as Kubernetes' `field.ErrorType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FieldErrorKind {
    Invalid,
    Required,
    Forbidden,
    Duplicate,
    NotSupported,
}

/// One field error of a 422 Invalid answer.
#[derive(Clone, Debug)]
pub(crate) struct FieldError {
    pub kind: FieldErrorKind,
    pub field: String,
    /// The offending value, already rendered as Kubernetes prints it (JSON).
    pub value: String,
    pub detail: String,
}

impl FieldError {
    pub fn invalid(field: impl Into<String>, value: &Value, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Invalid, field, value, detail)
    }

    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Required, field, &Value::Null, detail)
    }

    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Forbidden, field, &Value::Null, detail)
    }

    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        Self::new(FieldErrorKind::Duplicate, field, value, "")
    }

    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Self {
        let list = supported
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ");
        Self::new(
            FieldErrorKind::NotSupported,
            field,
            value,
            format!("supported values: {list}"),
        )
    }

    fn new(
        kind: FieldErrorKind,
        field: impl Into<String>,
        value: &Value,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            field: field.into(),
            value: value.to_string(),
            detail: detail.into(),
        }
    }

    fn reason(&self) -> &'static str {
        match self.kind {
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
        }
    }

    /// The message without the field path, as Kubernetes puts it in `causes[].message`.
    fn body(&self) -> String {
        let with_detail = |head: String| {
            if self.detail.is_empty() {
                head
            } else {
                format!("{head}: {}", self.detail)
            }
        };
        match self.kind {
            FieldErrorKind::Invalid => with_detail(format!("Invalid value: {}", self.value)),
            FieldErrorKind::Required => with_detail("Required value".to_string()),
            FieldErrorKind::Forbidden => with_detail("Forbidden".to_string()),
            FieldErrorKind::Duplicate => format!("Duplicate value: {}", self.value),
            FieldErrorKind::NotSupported => {
                with_detail(format!("Unsupported value: {}", self.value))
            }
        }
    }
}

/// A failed operation, answered as a `Status` object with `code` as the HTTP status.
#[derive(Clone, Debug)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// Boxed, with the token below, so that results carrying an `ApiError` stay small.
    pub details: Option<Box<Value>>,
    /// The `Status`'s `metadata.continue`: where a list whose continue token expired may
    /// go on, inconsistently.
    pub list_continue: Option<String>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
            list_continue: None,
        }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    fn resource_details(res: &ResourceDef, name: &str) -> Value {
        let mut details = json!({ "name": name, "kind": res.plural });
        if !res.group.is_empty() {
            details["group"] = json!(res.group);
        }
        details
    }

    pub fn not_found(res: &ResourceDef, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", res.qualified()),
        )
        .with_details(Self::resource_details(res, name))
    }

    pub fn already_exists(res: &ResourceDef, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", res.qualified()),
        )
        .with_details(Self::resource_details(res, name))
    }

    pub fn conflict(res: &ResourceDef, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                res.qualified()
            ),
        )
        .with_details(Self::resource_details(res, name))
    }

    /// 409 of a server-side apply that would change fields other managers own
    /// (`NewConflictError`): `conflicts` are (the manager as shown, the field path).
    pub fn apply_conflicts(conflicts: &[(String, String)]) -> Self {
        let message = match conflicts {
            [(manager, path)] => {
                format!("Apply failed with 1 conflict: conflict with {manager}: {path}")
            }
            _ => {
                let mut managers: Vec<&String> = conflicts.iter().map(|(m, _)| m).collect();
                managers.sort();
                managers.dedup();
                let mut lines = Vec::new();
                for manager in managers {
                    lines.push(format!("conflicts with {manager}:"));
                    for (_, path) in conflicts.iter().filter(|(m, _)| m == manager) {
                        lines.push(format!("- {path}"));
                    }
                }
                format!(
                    "Apply failed with {} conflicts: {}",
                    conflicts.len(),
                    lines.join("\n")
                )
            }
        };
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(manager, path)| {
                json!({ "reason": "FieldManagerConflict", "message": format!("conflict with {manager}"), "field": path })
            })
            .collect();
        Self::new(409, "Conflict", message).with_details(json!({ "causes": causes }))
    }

    /// 403 Forbidden: `{kind} "{name}" is forbidden: {why}`, as an admission plugin
    /// refuses.
    pub fn forbidden(res: &ResourceDef, name: &str, why: &str) -> Self {
        Self::new(
            403,
            "Forbidden",
            format!("{} \"{name}\" is forbidden: {why}", res.qualified()),
        )
        .with_details(Self::resource_details(res, name))
    }

    pub fn stale(res: &ResourceDef, name: &str) -> Self {
        Self::conflict(
            res,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 409 Conflict of a `DELETE` whose precondition does not hold, as `rest.BeforeDelete`
    /// words it: the kind (group-qualified) instead of the resource, and its own sentence.
    pub fn precondition_failed(
        res: &ResourceDef,
        name: &str,
        field: &str,
        wanted: &str,
        found: &str,
    ) -> Self {
        let (what, hint) = if field == "uid" {
            (
                "UID",
                "The object might have been deleted and then recreated",
            )
        } else {
            ("ResourceVersion", "The object might have been modified")
        };
        let mut details = json!({ "name": name, "kind": res.kind });
        if !res.group.is_empty() {
            details["group"] = json!(res.group);
        }
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the {what} in the precondition \
                 ({wanted}) does not match the {what} in record ({found}). {hint}",
                qualified_kind(res)
            ),
        )
        .with_details(details)
    }

    /// 403 Forbidden: a create in a namespace being deleted, as the `NamespaceLifecycle`
    /// admission plugin refuses it (with its `NamespaceTerminating` cause).
    pub fn namespace_terminating(res: &ResourceDef, name: &str, namespace: &str) -> Self {
        let mut err = Self::forbidden(
            res,
            name,
            &format!(
                "unable to create new content in namespace {namespace} because it is being terminated"
            ),
        );
        if let Some(details) = err.details.as_mut() {
            details["causes"] = json!([{
                "reason": "NamespaceTerminating",
                "message": format!("namespace {namespace} is being terminated"),
                "field": "metadata.namespace",
            }]);
        }
        err
    }

    /// 422 Invalid listing every field error, worded like the API server's.
    pub fn invalid(res: &ResourceDef, name: &str, errors: Vec<FieldError>) -> Self {
        Self::invalid_kind(res.group, res.kind, name, errors)
    }

    /// 422 Invalid of an object of `kind` in `group` (which need not be a served type,
    /// e.g. `DeleteOptions` of `meta.k8s.io`).
    pub fn invalid_kind(group: &str, kind: &str, name: &str, errors: Vec<FieldError>) -> Self {
        let rendered: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.body()))
            .collect();
        let summary = if rendered.len() == 1 {
            rendered[0].clone()
        } else {
            format!("[{}]", rendered.join(", "))
        };
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| json!({ "reason": e.reason(), "message": e.body(), "field": e.field }))
            .collect();
        let mut details = json!({ "name": name, "kind": kind, "causes": causes });
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            details["group"] = json!(group);
            format!("{kind}.{group}")
        };
        Self::new(
            422,
            "Invalid",
            // The group-qualified kind, as `apierrors.NewInvalid` prints it.
            format!("{qualified} \"{name}\" is invalid: {summary}"),
        )
        .with_details(details)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 410: a watch or a list asked for history that is no longer kept.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 410 for a list continued past compaction, with the token that goes on from where
    /// the expired one would have, at the latest version (`handleCompactedErrorForPaging`,
    /// staging/src/k8s.io/apiserver/pkg/storage/etcd3/store.go).
    pub fn continue_expired(token: String) -> Self {
        let mut err = Self::gone(
            "The provided continue parameter is too old to display a consistent list result. \
             You can start a new list without the continue parameter, or use the continue \
             token in this response to retrieve the remainder of the results. Continuing \
             with the provided token results in an inconsistent list - objects that were \
             created, modified, or deleted between the time the first chunk was returned \
             and now may show up in the list.",
        );
        err.list_continue = Some(token);
        err
    }

    /// 504 for a read at a resourceVersion the server has not reached
    /// (`storage.NewTooLargeResourceVersionError`).
    pub fn too_large_resource_version(wanted: u64, current: u64) -> Self {
        Self::new(
            504,
            "Timeout",
            format!("Too large resource version: {wanted}, current: {current}"),
        )
        .with_details(json!({
            "causes": [{
                "reason": "ResourceVersionTooLarge",
                "message": "Too large resource version",
            }],
            "retryAfterSeconds": 1,
        }))
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/merge-patch+json, application/strategic-merge-patch+json, application/json-patch+json, application/apply-patch+yaml (got {content_type:?})"
            ),
        )
    }

    pub fn path_not_found(path: &str) -> Self {
        Self::new(404, "NotFound", format!("the server could not find the requested resource ({path})"))
            .with_details(json!({ "causes": [{ "reason": "UnexpectedServerResponse", "message": "404 page not found" }] }))
    }

    /// A failure injected through `Faults`, with the reason Kubernetes pairs with `code`.
    pub fn injected(code: u16) -> Self {
        let reason = match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            409 => "Conflict",
            410 => "Expired",
            422 => "Invalid",
            429 => "TooManyRequests",
            500 => "InternalError",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "Unknown",
        };
        let message = match code {
            429 => "the server has received too many requests and has asked us to try again later (injected fault)".to_string(),
            500 => "Internal error occurred: injected fault".to_string(),
            503 => "the server is currently unable to handle the request (injected fault)".to_string(),
            504 => "the server was unable to return a response in the time allotted (injected fault)".to_string(),
            _ => format!("injected fault ({code})"),
        };
        let mut err = Self::new(code, reason, message.clone());
        if code == 500 {
            err = err.with_details(json!({ "causes": [{ "message": message }] }));
        }
        err
    }

    /// The `Status` body.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.as_ref().clone();
        }
        if let Some(token) = &self.list_continue {
            status["metadata"]["continue"] = json!(token);
        }
        status
    }
}

/// Shorthand for simulator operation results.
pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// `Kind.group` (`StatefulSet.apps`), or the kind alone in the core group.
fn qualified_kind(res: &ResourceDef) -> String {
    if res.group.is_empty() {
        res.kind.to_string()
    } else {
        format!("{}.{}", res.kind, res.group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::by_plural;

    #[test]
    fn taken_node_port_reads_like_kubernetes() {
        let err = ApiError::invalid(
            by_plural("services"),
            "db",
            vec![FieldError::invalid(
                "spec.ports[0].nodePort",
                &json!(30900),
                "provided port is already allocated",
            )],
        );
        let status = err.to_status();
        assert_eq!(
            status["message"],
            "Service \"db\" is invalid: spec.ports[0].nodePort: Invalid value: 30900: provided port is already allocated"
        );
        assert_eq!(
            status["details"]["causes"][0]["reason"],
            "FieldValueInvalid"
        );
        assert_eq!(
            status["details"]["causes"][0]["message"],
            "Invalid value: 30900: provided port is already allocated"
        );
    }
}
