//! TLS on rustls with the ring provider (the one stack kube and mongodb use too): the
//! server side of a service started with `--tls-cert`/`--tls-key`, and the client side
//! that calls local services on `https://` URLs, trusting the public web roots and the
//! certificates of `--local-ca-file`.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{what} {path} cannot be used: {reason}")]
    Pem {
        /// What the file was for.
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("the TLS configuration is refused")]
    Rustls(#[source] rustls::Error),
}

fn pem_error(what: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::Pem {
        what,
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// The certificates of a PEM file.
///
/// # Errors
/// When the file cannot be read or holds no certificate.
pub fn certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| pem_error(what, path, error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_error(what, path, error))?;
    if certificates.is_empty() {
        return Err(pem_error(what, path, "it holds no certificate"));
    }
    Ok(certificates)
}

/// Makes ring the process's default rustls provider, once; later calls do nothing.
/// reqwest's clients (this crate's, and any other in the process: cargo features are
/// shared) need a default provider to be installed before they are built, and the
/// services' start-up code calls this first.
pub fn install_provider() {
    // An error means a provider is installed already, which is all that is needed.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration with the chain in `cert` and the key in `key`, for HTTP/1.1.
///
/// # Errors
/// When a file cannot be read, or the key does not fit the certificate.
pub fn server(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = certificates("the TLS certificate", cert)?;
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|error| pem_error("the TLS key", key, error))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Rustls)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration that trusts the public web roots and `extra` (a private CA),
/// for HTTP/1.1.
///
/// # Errors
/// When rustls refuses a certificate of `extra` as a root.
pub fn client(extra: &[CertificateDer<'static>]) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for certificate in extra {
        roots.add(certificate.clone()).map_err(TlsError::Rustls)?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rustls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
