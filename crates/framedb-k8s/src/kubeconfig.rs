//! Kubeconfigs sent by callers: parsed, checked, and turned into a kube-rs client. A
//! kubeconfig is a secret and a code-execution risk, so only inline data is accepted — no
//! credential plugin, no auth provider, no local file, no proxy — and no message here
//! quotes any of its values.

use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::{Error, Result};

/// How long a client waits for a cluster's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To open a connection.
    pub connect: Duration,
    /// For an answer to one request.
    pub read: Duration,
}

impl Timeouts {
    /// Sets these timeouts on a client configuration, and turns kube-rs's own retries off:
    /// they back off for minutes on a 503, far past any caller's patience, and FrameDB
    /// decides itself what to retry.
    pub fn apply(self, config: &mut kube::Config) {
        config.connect_timeout = Some(self.connect);
        config.read_timeout = Some(self.read);
        config.write_timeout = Some(self.read);
        config.default_retry = false;
    }

    /// How long a watch request may stay open on a client with these timeouts: shorter
    /// than the read timeout (5 s shorter, or half of it when it is short), so that the
    /// server ends a quiet watch before the client counts the silence as a failure.
    pub fn watch_window(self) -> Duration {
        self.read
            .saturating_sub(Duration::from_secs(5))
            .max(self.read / 2)
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            read: Duration::from_secs(30),
        }
    }
}

/// Reads a kubeconfig given as a JSON object or as a YAML (or JSON) string, and checks
/// that it carries inline data only.
///
/// # Errors
/// [`Error::Kubeconfig`] when it is neither, cannot be read as a kubeconfig, or names an
/// `exec` plugin, an `auth-provider`, a file path or a proxy.
pub fn parse(value: &serde_json::Value) -> Result<Kubeconfig> {
    let kubeconfig = match value {
        serde_json::Value::String(text) => Kubeconfig::from_yaml(text).map_err(|_| {
            Error::Kubeconfig("kube_config is not a readable kubeconfig document".into())
        })?,
        serde_json::Value::Object(_) => serde_path_to_error::deserialize(value).map_err(
            |error: serde_path_to_error::Error<_>| {
                Error::Kubeconfig(format!(
                    "kube_config is not a valid kubeconfig: the value at '{}' has the wrong type",
                    error.path()
                ))
            },
        )?,
        _ => {
            return Err(Error::Kubeconfig(
                "kube_config must be a kubeconfig, as a JSON object or a YAML string".into(),
            ));
        }
    };
    check_inline_only(&kubeconfig)?;
    if kubeconfig.clusters.is_empty() || kubeconfig.contexts.is_empty() {
        return Err(Error::Kubeconfig(
            "kube_config must name at least one cluster and one context".into(),
        ));
    }
    Ok(kubeconfig)
}

fn check_inline_only(kubeconfig: &Kubeconfig) -> Result<()> {
    let refuse = |what: &str, name: &str| {
        Err(Error::Kubeconfig(format!(
            "kube_config {what} (in '{name}'); only inline credentials and certificates \
             (token, client-certificate-data, client-key-data, certificate-authority-data) \
             are accepted"
        )))
    };
    for named in &kubeconfig.auth_infos {
        let Some(user) = &named.auth_info else {
            continue;
        };
        let name = &named.name;
        if user.exec.is_some() {
            return refuse("names an exec credential plugin", name);
        }
        if user.auth_provider.is_some() {
            return refuse("names an auth-provider", name);
        }
        if user.client_certificate.is_some() || user.client_key.is_some() {
            return refuse("names a client certificate or key file", name);
        }
        if user.token_file.is_some() {
            return refuse("names a token file", name);
        }
    }
    for named in &kubeconfig.clusters {
        let Some(cluster) = &named.cluster else {
            continue;
        };
        let name = &named.name;
        if cluster.certificate_authority.is_some() {
            return refuse("names a certificate-authority file", name);
        }
        if cluster.proxy_url.is_some() {
            return refuse("names a proxy", name);
        }
    }
    Ok(())
}

/// Refuses a kubeconfig whose cluster (the one its current context, or its first one,
/// points at) FrameDB should not call on a caller's behalf, unless `allow_insecure`:
/// an API server on a loopback, link-local or unspecified address (the global service's
/// own host, or a cloud's metadata service: a caller could probe them through setup),
/// plain `http://` (the kubeconfig's credentials would cross the network in clear), or
/// `insecure-skip-tls-verify`. Host names are checked as written; a name that resolves to
/// such an address is not caught here.
///
/// # Errors
/// [`Error::Kubeconfig`] with a sentence that quotes none of the kubeconfig's values.
pub fn check_server(kubeconfig: &Kubeconfig, allow_insecure: bool) -> Result<()> {
    if allow_insecure {
        return Ok(());
    }
    let refuse = |why: &str| {
        Err(Error::Kubeconfig(format!(
            "kube_config's cluster {why}; FrameDB only calls TLS-verified API servers on \
             routable addresses unless its operator allows others (--allow-insecure-clusters)"
        )))
    };
    let Some(cluster) = current_cluster(kubeconfig) else {
        return Ok(());
    };
    if cluster.insecure_skip_tls_verify == Some(true) {
        return refuse("turns TLS verification off (insecure-skip-tls-verify)");
    }
    let Some(server) = cluster.server.as_deref() else {
        return Ok(());
    };
    let Ok(url) = url::Url::parse(server) else {
        return refuse("has a server that is not a URL");
    };
    if url.scheme() != "https" {
        return refuse("is not served over https");
    }
    let private = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_link_local() || ip.is_unspecified(),
        Some(url::Host::Ipv6(ip)) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_unicast_link_local()
                || ip
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || v4.is_link_local() || v4.is_unspecified())
        }
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        None => true,
    };
    if private {
        return refuse("is on a loopback, link-local or unspecified address");
    }
    Ok(())
}

/// The cluster the kubeconfig's current context (or its first one) points at.
fn current_cluster(kubeconfig: &Kubeconfig) -> Option<&kube::config::Cluster> {
    let name = context_cluster(kubeconfig)?;
    kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == name)?
        .cluster
        .as_ref()
}

/// Who the kubeconfig's cluster is: its API server's URL, and the SHA-256 of its
/// `certificate-authority-data` (of the certificates it decodes to; of the text itself
/// when that is not base64), which the cluster directory records at a cluster's first
/// setup and compares at every later one.
///
/// # Errors
/// [`Error::Kubeconfig`] when the current context's cluster has no server.
pub fn identity(kubeconfig: &Kubeconfig) -> Result<framedb_core::ClusterIdentity> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let cluster = current_cluster(kubeconfig);
    let Some(server) = cluster.and_then(|cluster| cluster.server.clone()) else {
        return Err(Error::Kubeconfig(
            "kube_config's current context names no cluster with a server".into(),
        ));
    };
    let ca_sha256 = cluster
        .and_then(|cluster| cluster.certificate_authority_data.as_deref())
        .map(|data| {
            let compact: String = data.split_whitespace().collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&compact)
                .unwrap_or_else(|_| compact.into_bytes());
            sha2::Sha256::digest(&bytes)
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect()
        });
    Ok(framedb_core::ClusterIdentity {
        api_server: server,
        ca_sha256,
    })
}

/// The name of the cluster the kubeconfig's current context (or its first one) points at.
pub fn context_cluster(kubeconfig: &Kubeconfig) -> Option<String> {
    let wanted = kubeconfig
        .current_context
        .as_deref()
        .or_else(|| kubeconfig.contexts.first().map(|c| c.name.as_str()))?;
    let context = kubeconfig.contexts.iter().find(|c| c.name == wanted)?;
    Some(context.context.as_ref()?.cluster.clone())
}

/// A client for the kubeconfig's current context (or its first one).
///
/// # Errors
/// [`Error::Kubeconfig`] when the context cannot be resolved or the client not built.
pub async fn client(kubeconfig: Kubeconfig, timeouts: Timeouts) -> Result<kube::Client> {
    let options = KubeConfigOptions {
        context: kubeconfig
            .current_context
            .clone()
            .or_else(|| kubeconfig.contexts.first().map(|c| c.name.clone())),
        ..KubeConfigOptions::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|_| {
            Error::Kubeconfig(
                "kube_config's context does not resolve to a usable cluster and user".into(),
            )
        })?;
    timeouts.apply(&mut config);
    kube::Client::try_from(config)
        .map_err(|_| Error::Kubeconfig("kube_config cannot be used to build a client".into()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_watch_window_ends_before_the_read_timeout() {
        let window = |read| {
            let timeouts = Timeouts {
                connect: Duration::from_secs(1),
                read: Duration::from_secs(read),
            };
            timeouts.watch_window().as_secs_f64()
        };
        assert_eq!(window(30), 25.0);
        assert_eq!(window(8), 4.0);
        assert_eq!(window(2), 1.0);
    }

    fn base() -> serde_json::Value {
        json!({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "k", "cluster": {"server": "http://127.0.0.1:1"}}],
            "users": [{"name": "u", "user": {"token": "s3cr3t-token"}}],
            "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}]
        })
    }

    #[test]
    fn accepts_inline_kubeconfigs_as_json_or_yaml() {
        parse(&base()).unwrap();
        let yaml = serde_json::to_string(&base()).unwrap();
        parse(&serde_json::Value::String(yaml)).unwrap();
    }

    #[test]
    fn refuses_plugins_providers_files_and_proxies_without_quoting_values() {
        let cases = [
            (
                "/users/0/user/exec",
                json!({"command": "/bin/sh", "apiVersion": "client.authentication.k8s.io/v1"}),
                "exec",
            ),
            (
                "/users/0/user/auth-provider",
                json!({"name": "gcp", "config": {}}),
                "auth-provider",
            ),
            (
                "/users/0/user/client-certificate",
                json!("/etc/cert.pem"),
                "certificate",
            ),
            (
                "/users/0/user/client-key",
                json!("/etc/key.pem"),
                "key file",
            ),
            (
                "/users/0/user/tokenFile",
                json!("/var/run/token"),
                "token file",
            ),
            (
                "/clusters/0/cluster/certificate-authority",
                json!("/etc/ca.pem"),
                "certificate-authority",
            ),
            (
                "/clusters/0/cluster/proxy-url",
                json!("http://proxy:3128"),
                "proxy",
            ),
        ];
        for (pointer, value, says) in cases {
            let mut config = base();
            let (parent, key) = pointer.rsplit_once('/').unwrap();
            config.pointer_mut(parent).unwrap()[key] = value;
            let message = parse(&config).unwrap_err().to_string();
            assert!(message.contains(says), "{pointer}: {message}");
            assert!(!message.contains("s3cr3t"), "{message}");
            assert!(
                !message.contains("/etc") && !message.contains("/bin"),
                "{message}"
            );
        }
    }

    #[test]
    fn only_tls_verified_servers_on_routable_addresses_unless_allowed() {
        let with = |server: &str, skip_verify: bool| {
            let mut config = base();
            config["clusters"][0]["cluster"]["server"] = json!(server);
            if skip_verify {
                config["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = json!(true);
            }
            parse(&config).unwrap()
        };
        for fine in [
            "https://10.0.0.7:6443",
            "https://api.example.com",
            "https://[2001:db8::1]:6443",
        ] {
            check_server(&with(fine, false), false).unwrap();
        }
        for (refused, says) in [
            ("https://127.0.0.1:6443", "loopback"),
            ("https://localhost:6443", "loopback"),
            ("https://api.localhost", "loopback"),
            ("https://[::1]:6443", "loopback"),
            ("https://[::ffff:127.0.0.1]", "loopback"),
            ("https://169.254.169.254", "link-local"),
            ("https://[fe80::1]", "link-local"),
            ("https://0.0.0.0:6443", "unspecified"),
            ("http://10.0.0.7:8080", "https"),
        ] {
            let config = with(refused, false);
            let message = check_server(&config, false).unwrap_err().to_string();
            assert!(message.contains(says), "{refused}: {message}");
            assert!(
                !message.contains("s3cr3t") && !message.contains(refused),
                "{message}"
            );
            check_server(&config, true).unwrap();
        }
        let message = check_server(&with("https://10.0.0.7:6443", true), false)
            .unwrap_err()
            .to_string();
        assert!(message.contains("insecure-skip-tls-verify"), "{message}");
    }

    #[test]
    fn refuses_what_is_not_a_kubeconfig_without_quoting_it() {
        for bad in [
            json!(7),
            json!(null),
            json!({"users": "s3cr3t-token"}),
            json!("::: not yaml s3cr3t"),
            json!({}),
        ] {
            let message = parse(&bad).unwrap_err().to_string();
            assert!(message.starts_with("kube_config"), "{message}");
            assert!(!message.contains("s3cr3t"), "{message}");
        }
    }

    #[test]
    fn identity_is_the_server_and_the_sha256_of_the_decoded_ca() {
        let mut config = base();
        config["clusters"][0]["cluster"]["server"] = json!("https://10.0.0.7:6443");
        let bare = identity(&parse(&config).unwrap()).unwrap();
        assert_eq!(bare.api_server, "https://10.0.0.7:6443");
        assert_eq!(bare.ca_sha256, None);
        // base64 of "abc", whose SHA-256 is well known.
        config["clusters"][0]["cluster"]["certificate-authority-data"] = json!("YWJj");
        let with_ca = identity(&parse(&config).unwrap()).unwrap();
        assert_eq!(
            with_ca.ca_sha256.as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        config["clusters"][0]["cluster"]
            .as_object_mut()
            .unwrap()
            .remove("server");
        assert!(identity(&parse(&config).unwrap()).is_err());
    }
}
