//! Kubeconfigs sent by callers: parsed, checked, and turned into a kube-rs client. A
//! kubeconfig is a secret and a code-execution risk, so only inline data is accepted — no
//! credential plugin, no auth provider, no local file, no proxy — and no message here
//! quotes any of its values.

use std::net::IpAddr;
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
/// `insecure-skip-tls-verify`. Host names are checked as written here; [`caller_client`]
/// also checks the addresses they resolve to.
///
/// # Errors
/// [`Error::Kubeconfig`] with a sentence that quotes none of the kubeconfig's values.
pub fn check_server(kubeconfig: &Kubeconfig, allow_insecure: bool) -> Result<()> {
    if allow_insecure {
        return Ok(());
    }
    let Some(cluster) = current_cluster(kubeconfig) else {
        return Ok(());
    };
    if cluster.insecure_skip_tls_verify == Some(true) {
        return refuse_server("turns TLS verification off (insecure-skip-tls-verify)");
    }
    let Some(server) = cluster.server.as_deref() else {
        return Ok(());
    };
    let Ok(url) = url::Url::parse(server) else {
        return refuse_server("has a server that is not a URL");
    };
    if url.scheme() != "https" {
        return refuse_server("is not served over https");
    }
    let private = match url.host() {
        Some(url::Host::Ipv4(ip)) => is_private(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => is_private(IpAddr::V6(ip)),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        None => true,
    };
    if private {
        return refuse_server("is on a loopback, link-local or unspecified address");
    }
    Ok(())
}

fn refuse_server<T>(why: &str) -> Result<T> {
    Err(Error::Kubeconfig(format!(
        "kube_config's cluster {why}; FrameDB only calls TLS-verified API servers on \
         routable addresses unless its operator allows others (--allow-insecure-clusters)"
    )))
}

/// Loopback, link-local (a cloud's metadata service) or unspecified, also when written as
/// an IPv4-mapped IPv6 address.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => ip.is_loopback() || ip.is_link_local() || ip.is_unspecified(),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => is_private(IpAddr::V4(v4)),
            None => ip.is_loopback() || ip.is_unspecified() || ip.is_unicast_link_local(),
        },
    }
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

/// A client for a kubeconfig a caller sent, checked as [`check_server`] says. When its
/// server is a host name (and `allow_insecure` is off), the name is resolved once, every
/// address it resolves to must pass the same check, and the client connects to the first
/// of them while TLS still verifies the name: a name cannot resolve to a public address
/// for the check and to a private one for the calls.
///
/// # Errors
/// [`Error::Kubeconfig`] when the server is refused, its name does not resolve within the
/// connect timeout, or the client cannot be built.
pub async fn caller_client(
    kubeconfig: Kubeconfig,
    timeouts: Timeouts,
    allow_insecure: bool,
) -> Result<kube::Client> {
    check_server(&kubeconfig, allow_insecure)?;
    let pinned = if allow_insecure {
        None
    } else {
        resolve_server(&kubeconfig, timeouts.connect).await?
    };
    let mut config = config_of(kubeconfig, timeouts).await?;
    if let Some((address, name)) = pinned {
        pin(&mut config, address, name)?;
    }
    build(config)
}

/// Points `config` at `address` instead of the host `name`, which TLS still verifies
/// (and sends as SNI) unless the kubeconfig names another `tls-server-name`.
fn pin(config: &mut kube::Config, address: IpAddr, name: String) -> Result<()> {
    let not_a_url = || Error::Kubeconfig("kube_config's cluster server is not a URL".into());
    let mut url = url::Url::parse(&config.cluster_url.to_string()).map_err(|_| not_a_url())?;
    url.set_ip_host(address).map_err(|()| not_a_url())?;
    config.cluster_url = url.as_str().parse().map_err(|_| not_a_url())?;
    config.tls_server_name.get_or_insert(name);
    Ok(())
}

/// The address the kubeconfig's server name resolves to and the name, when the server is
/// given by name; every address the name resolves to is checked.
async fn resolve_server(
    kubeconfig: &Kubeconfig,
    timeout: Duration,
) -> Result<Option<(IpAddr, String)>> {
    let Some(url) = current_cluster(kubeconfig)
        .and_then(|cluster| cluster.server.as_deref())
        .and_then(|server| url::Url::parse(server).ok())
    else {
        return Ok(None);
    };
    let Some(url::Host::Domain(name)) = url.host() else {
        return Ok(None);
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let lookup = tokio::net::lookup_host((name, port));
    let addresses: Vec<IpAddr> = match tokio::time::timeout(timeout, lookup).await {
        Ok(Ok(found)) => found.map(|address| address.ip()).collect(),
        _ => return refuse_server("has a server name that does not resolve"),
    };
    match addresses.first() {
        None => refuse_server("has a server name that does not resolve"),
        Some(_) if addresses.iter().copied().any(is_private) => refuse_server(
            "has a server name that resolves to a loopback, link-local or unspecified address",
        ),
        Some(first) => Ok(Some((*first, name.to_owned()))),
    }
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
            sha256_hex(&bytes)
        });
    Ok(framedb_core::ClusterIdentity {
        api_server: server,
        ca_sha256,
    })
}

/// The SHA-256 of `bytes`, in lower-case hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
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

/// A client for the kubeconfig's current context (or its first one), as it is: for
/// kubeconfigs the operator gave. A caller's goes through [`caller_client`].
///
/// # Errors
/// [`Error::Kubeconfig`] when the context cannot be resolved or the client not built.
pub async fn client(kubeconfig: Kubeconfig, timeouts: Timeouts) -> Result<kube::Client> {
    build(config_of(kubeconfig, timeouts).await?)
}

async fn config_of(kubeconfig: Kubeconfig, timeouts: Timeouts) -> Result<kube::Config> {
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
    Ok(config)
}

fn build(config: kube::Config) -> Result<kube::Client> {
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

    fn with_server(server: &str) -> Kubeconfig {
        let mut config = base();
        config["clusters"][0]["cluster"]["server"] = json!(server);
        parse(&config).unwrap()
    }

    #[tokio::test]
    async fn a_server_name_that_resolves_to_loopback_is_refused_unless_allowed() {
        // This machine's own name resolves to a loopback address on the machines FrameDB
        // is built on (the name is in /etc/hosts); elsewhere there is nothing to show.
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let name = name.trim();
        let resolved: Vec<IpAddr> = match tokio::net::lookup_host((name, 443)).await {
            Ok(found) => found.map(|address| address.ip()).collect(),
            Err(_) => Vec::new(),
        };
        if name.is_empty() || resolved.is_empty() || !resolved.iter().all(|ip| ip.is_loopback()) {
            eprintln!("skipped: this host's name does not resolve to loopback only");
            return;
        }
        let config = with_server(&format!("https://{name}:6443"));
        check_server(&config, false).unwrap();
        let refused = caller_client(config.clone(), Timeouts::default(), false).await;
        let message = refused.err().unwrap().to_string();
        assert!(message.contains("resolves to a loopback"), "{message}");
        assert!(!message.contains(name), "{message}");
        caller_client(config, Timeouts::default(), true)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_refused() {
        let config = with_server("https://framedb-no-such-host.invalid:6443");
        let message = caller_client(config, Timeouts::default(), false)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(message.contains("does not resolve"), "{message}");
    }

    #[tokio::test]
    async fn a_pinned_client_connects_to_the_checked_address_and_verifies_the_name() {
        let config = with_server("https://api.example.com:6443/prefix");
        let mut pinned = config_of(config, Timeouts::default()).await.unwrap();
        pin(
            &mut pinned,
            "203.0.113.7".parse().unwrap(),
            "api.example.com".into(),
        )
        .unwrap();
        assert_eq!(
            pinned.cluster_url.to_string(),
            "https://203.0.113.7:6443/prefix"
        );
        assert_eq!(pinned.tls_server_name.as_deref(), Some("api.example.com"));

        let v6 = with_server("https://api.example.com");
        let mut pinned = config_of(v6, Timeouts::default()).await.unwrap();
        pin(
            &mut pinned,
            "2001:db8::7".parse().unwrap(),
            "api.example.com".into(),
        )
        .unwrap();
        assert!(
            pinned
                .cluster_url
                .to_string()
                .starts_with("https://[2001:db8::7]")
        );
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
