//! Pod Security Admission, as the built-in plugin enforces it: a namespace labelled
//! `pod-security.kubernetes.io/enforce: baseline` (or `restricted`) refuses a pod that
//! breaks the level's checks, with the plugin's own sentence:
//! `violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true), ...`.
//!
//! Modelled checks (k8s.io/pod-security-admission/policy): baseline's host namespaces,
//! privileged containers, non-default capabilities, hostPath volumes, host ports and an
//! `Unconfined` seccomp profile; restricted's volume types, privilege escalation,
//! capabilities (drop `ALL`, add only `NET_BIND_SERVICE`), non-root, `runAsUser` 0 and a
//! required seccomp profile. Not modelled: AppArmor, SELinux options, `/proc` mount
//! types, sysctls, Windows host processes, and the `warn` and `audit` modes.

use serde_json::Value;

use super::json::str_at;

/// The label that sets a namespace's enforced level.
pub(crate) const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";
/// The label that pins the enforced level's version (`latest` by default).
const ENFORCE_VERSION_LABEL: &str = "pod-security.kubernetes.io/enforce-version";

/// The capabilities a baseline pod may add (the container runtime's defaults).
const DEFAULT_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// The volume types a restricted pod may use.
const RESTRICTED_VOLUMES: [&str; 8] = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// Why a pod may not run in a namespace with `labels`, as the plugin words it after
/// `pods "name" is forbidden: `; `None` when it may.
pub(crate) fn refusal(labels: &Value, pod: &Value) -> Option<String> {
    let level = labels[ENFORCE_LABEL].as_str()?;
    let restricted = match level {
        "baseline" => false,
        "restricted" => true,
        _ => return None,
    };
    let version = labels[ENFORCE_VERSION_LABEL].as_str().unwrap_or("latest");
    let broken = checks(pod, restricted);
    (!broken.is_empty()).then(|| {
        let listed: Vec<String> = broken
            .into_iter()
            .map(|(check, detail)| format!("{check} ({detail})"))
            .collect();
        format!(
            "violates PodSecurity \"{level}:{version}\": {}",
            listed.join(", ")
        )
    })
}

/// The containers of every kind, with their names.
fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(move |kind| spec[kind].as_array().into_iter().flatten())
}

/// `container "a"` or `containers "a", "b"`.
fn named(noun: &str, names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    let plural = if names.len() == 1 { "" } else { "s" };
    format!("{noun}{plural} {}", quoted.join(", "))
}

/// The names of the containers for which `broken` holds.
fn offenders(spec: &Value, broken: impl Fn(&Value) -> bool) -> Vec<&str> {
    containers(spec)
        .filter(|c| broken(c))
        .map(|c| str_at(c, &["name"]))
        .collect()
}

/// Each broken check, with its detail, in the plugin's order.
fn checks(pod: &Value, restricted: bool) -> Vec<(&'static str, String)> {
    let spec = &pod["spec"];
    let mut broken = Vec::new();

    let hosts: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .into_iter()
        .filter(|field| spec[*field] == true)
        .map(|field| format!("{field}=true"))
        .collect();
    if !hosts.is_empty() {
        broken.push(("host namespaces", hosts.join(", ")));
    }

    let privileged = offenders(spec, |c| c["securityContext"]["privileged"] == true);
    if !privileged.is_empty() {
        broken.push((
            "privileged",
            format!(
                "{} must not set securityContext.privileged=true",
                named("container", &privileged)
            ),
        ));
    }

    let added = |c: &Value| -> Vec<String> {
        c["securityContext"]["capabilities"]["add"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    let beyond_default: Vec<(&str, Vec<String>)> = containers(spec)
        .map(|c| {
            let extra = added(c)
                .into_iter()
                .filter(|cap| !DEFAULT_CAPABILITIES.contains(&cap.as_str()))
                .collect::<Vec<_>>();
            (str_at(c, &["name"]), extra)
        })
        .filter(|(_, extra)| !extra.is_empty())
        .collect();
    if !beyond_default.is_empty() {
        let details: Vec<String> = beyond_default
            .iter()
            .map(|(name, caps)| {
                let caps: Vec<String> = caps.iter().map(|c| format!("\"{c}\"")).collect();
                format!(
                    "container \"{name}\" must not include {} in securityContext.capabilities.add",
                    caps.join(", ")
                )
            })
            .collect();
        broken.push(("non-default capabilities", details.join("; ")));
    }

    let volumes: Vec<&Value> = spec["volumes"].as_array().into_iter().flatten().collect();
    let host_paths: Vec<&str> = volumes
        .iter()
        .filter(|v| !v["hostPath"].is_null())
        .map(|v| str_at(v, &["name"]))
        .collect();
    if !host_paths.is_empty() {
        broken.push(("hostPath volumes", named("volume", &host_paths)));
    }

    let host_ports: Vec<String> = containers(spec)
        .flat_map(|c| {
            c["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["hostPort"].as_u64().filter(|port| *port != 0))
                .map(move |port| {
                    format!(
                        "container \"{}\" uses hostPort {port}",
                        str_at(c, &["name"])
                    )
                })
        })
        .collect();
    if !host_ports.is_empty() {
        broken.push(("hostPort", host_ports.join(", ")));
    }

    let unconfined_pod =
        str_at(spec, &["securityContext", "seccompProfile", "type"]) == "Unconfined";
    let unconfined = offenders(spec, |c| {
        str_at(c, &["securityContext", "seccompProfile", "type"]) == "Unconfined"
    });
    if unconfined_pod || !unconfined.is_empty() {
        let mut who = Vec::new();
        if unconfined_pod {
            who.push("pod".to_owned());
        }
        if !unconfined.is_empty() {
            who.push(named("container", &unconfined));
        }
        broken.push((
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to \"Unconfined\"",
                who.join(" and ")
            ),
        ));
    }

    if !restricted {
        return broken;
    }

    let restricted_types: Vec<String> = volumes
        .iter()
        .filter_map(|v| {
            let kind = v
                .as_object()?
                .keys()
                .find(|k| k.as_str() != "name")?
                .clone();
            (!RESTRICTED_VOLUMES.contains(&kind.as_str())).then(|| {
                format!(
                    "volume \"{}\" uses restricted volume type \"{kind}\"",
                    str_at(v, &["name"])
                )
            })
        })
        .collect();
    if !restricted_types.is_empty() {
        broken.push(("restricted volume types", restricted_types.join(", ")));
    }

    let escalating = offenders(spec, |c| {
        c["securityContext"]["allowPrivilegeEscalation"] != false
    });
    if !escalating.is_empty() {
        broken.push((
            "allowPrivilegeEscalation != false",
            format!(
                "{} must set securityContext.allowPrivilegeEscalation=false",
                named("container", &escalating)
            ),
        ));
    }

    let not_dropping = offenders(spec, |c| {
        !c["securityContext"]["capabilities"]["drop"]
            .as_array()
            .is_some_and(|drop| drop.iter().any(|d| d == "ALL"))
    });
    let adding: Vec<(&str, Vec<String>)> = containers(spec)
        .map(|c| {
            let extra = added(c)
                .into_iter()
                .filter(|cap| cap != "NET_BIND_SERVICE")
                .collect::<Vec<_>>();
            (str_at(c, &["name"]), extra)
        })
        .filter(|(_, extra)| !extra.is_empty())
        .collect();
    if !not_dropping.is_empty() || !adding.is_empty() {
        let mut details = Vec::new();
        if !not_dropping.is_empty() {
            details.push(format!(
                "{} must set securityContext.capabilities.drop=[\"ALL\"]",
                named("container", &not_dropping)
            ));
        }
        for (name, caps) in adding {
            let caps: Vec<String> = caps.iter().map(|c| format!("\"{c}\"")).collect();
            details.push(format!(
                "container \"{name}\" must not include {} in securityContext.capabilities.add",
                caps.join(", ")
            ));
        }
        broken.push(("unrestricted capabilities", details.join("; ")));
    }

    let pod_non_root = spec["securityContext"]["runAsNonRoot"] == true;
    let rooting = offenders(spec, |c| {
        let own = &c["securityContext"]["runAsNonRoot"];
        *own == false || (own.is_null() && !pod_non_root)
    });
    if spec["securityContext"]["runAsNonRoot"] == false || !rooting.is_empty() {
        let who = if pod_non_root || rooting.is_empty() {
            named("container", &rooting)
        } else {
            format!("pod or {}", named("container", &rooting))
        };
        broken.push((
            "runAsNonRoot != true",
            format!("{who} must set securityContext.runAsNonRoot=true"),
        ));
    }

    let root_user = spec["securityContext"]["runAsUser"] == 0
        || containers(spec).any(|c| c["securityContext"]["runAsUser"] == 0);
    if root_user {
        broken.push(("runAsUser=0", "pod must not set runAsUser=0".to_owned()));
    }

    let pod_profile = str_at(spec, &["securityContext", "seccompProfile", "type"]);
    let pod_confined = matches!(pod_profile, "RuntimeDefault" | "Localhost");
    let unprofiled = offenders(spec, |c| {
        let own = str_at(c, &["securityContext", "seccompProfile", "type"]);
        !matches!(own, "RuntimeDefault" | "Localhost") && (!own.is_empty() || !pod_confined)
    });
    if !unprofiled.is_empty() && !unconfined_pod && unconfined.is_empty() {
        let who = if pod_confined {
            named("container", &unprofiled)
        } else {
            format!("pod or {}", named("container", &unprofiled))
        };
        broken.push((
            "seccompProfile",
            format!(
                "{who} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\""
            ),
        ));
    }
    broken
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn labels(level: &str) -> Value {
        json!({ ENFORCE_LABEL: level })
    }

    #[test]
    fn baseline_refuses_host_access_and_privilege_with_the_plugin_s_words() {
        let pod = json!({"spec": {
            "hostNetwork": true,
            "containers": [
                {"name": "a", "securityContext": {"privileged": true},
                 "ports": [{"containerPort": 80, "hostPort": 8080}]},
                {"name": "b", "securityContext": {"capabilities": {"add": ["NET_ADMIN", "CHOWN"]}}},
            ],
            "volumes": [{"name": "data", "hostPath": {"path": "/var/lib/x"}},
                        {"name": "conf", "configMap": {"name": "c"}}],
        }});
        assert_eq!(
            refusal(&labels("baseline"), &pod).unwrap(),
            "violates PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true), \
             privileged (container \"a\" must not set securityContext.privileged=true), \
             non-default capabilities (container \"b\" must not include \"NET_ADMIN\" in \
             securityContext.capabilities.add), hostPath volumes (volume \"data\"), hostPort \
             (container \"a\" uses hostPort 8080)"
        );
        let plain = json!({"spec": {"containers": [{"name": "a"}],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "c"}}]}});
        assert_eq!(refusal(&labels("baseline"), &plain), None);
        assert_eq!(refusal(&labels("privileged"), &pod), None);
        assert_eq!(refusal(&json!({}), &pod), None);
    }

    #[test]
    fn restricted_asks_for_non_root_no_escalation_dropped_capabilities_and_a_profile() {
        let plain = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert_eq!(
            refusal(&labels("restricted"), &plain).unwrap(),
            "violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false \
             (containers \"a\", \"b\" must set securityContext.allowPrivilegeEscalation=false), \
             unrestricted capabilities (containers \"a\", \"b\" must set \
             securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or \
             containers \"a\", \"b\" must set securityContext.runAsNonRoot=true), \
             seccompProfile (pod or containers \"a\", \"b\" must set \
             securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
        let hardened = json!({"spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "a", "securityContext": {
                "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}],
        }});
        assert_eq!(refusal(&labels("restricted"), &hardened), None);
    }
}
