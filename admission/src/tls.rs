//! Serving certificates: loading, reloading without a restart, mTLS, self-signed pairs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use rustls::RootCertStore;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::WebhookError;

/// A certificate chain and key from PEM texts, ready for rustls.
pub fn certified_key_from_pem(cert: &str, key: &str) -> Result<CertifiedKey, WebhookError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| WebhookError::Tls(format!("bad certificate PEM: {e}")))?;
    if chain.is_empty() {
        return Err(WebhookError::Tls("the certificate PEM holds no certificate".into()));
    }
    let key_der =
        PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| WebhookError::Tls(format!("bad key PEM: {e}")))?;
    CertifiedKey::from_der(chain, key_der, &rustls::crypto::ring::default_provider())
        .map_err(|e| WebhookError::Tls(format!("the certificate and key do not make a usable pair: {e}")))
}

/// A certificate chain and key from PEM files, ready for rustls.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, WebhookError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| WebhookError::Tls(format!("cannot read certificates from {}: {e}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| WebhookError::Tls(format!("{}: bad PEM: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(WebhookError::Tls(format!("{} holds no certificate", cert.display())));
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| WebhookError::Tls(format!("cannot read a private key from {}: {e}", key.display())))?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, key_der, &provider).map_err(|e| {
        WebhookError::Tls(format!(
            "{} and {} do not make a usable pair: {e}",
            cert.display(),
            key.display()
        ))
    })?;
    Ok(certified)
}

/// The serving certificate, swappable while connections are being accepted.
#[derive(Debug)]
pub struct ReloadingCert {
    current: ArcSwapOption<CertifiedKey>,
}

impl ReloadingCert {
    /// Serving `key` from the start.
    pub fn new(key: CertifiedKey) -> ReloadingCert {
        ReloadingCert {
            current: ArcSwapOption::from_pointee(key),
        }
    }

    /// No certificate yet (a managed one is being fetched): handshakes fail until
    /// [`ReloadingCert::replace`], and the webhook is not ready.
    pub fn empty() -> ReloadingCert {
        ReloadingCert {
            current: ArcSwapOption::empty(),
        }
    }

    /// New handshakes use `key`; established connections keep theirs.
    pub fn replace(&self, key: CertifiedKey) {
        self.current.store(Some(Arc::new(key)));
    }

    /// True when `key`'s certificate is the one served now.
    pub fn serves(&self, key: &CertifiedKey) -> bool {
        self.current
            .load()
            .as_ref()
            .is_some_and(|current| current.cert.first() == key.cert.first())
    }

    /// When the served certificate expires, as Unix seconds.
    pub fn not_after_unix(&self) -> Option<i64> {
        let key = self.current.load_full()?;
        crate::managed_certs::not_after_unix(key.cert.first()?.as_ref())
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.load_full()
    }
}

/// The rustls server configuration: HTTP/2 and HTTP/1.1 by ALPN, and client
/// certificates required when `client_ca` is given.
pub fn server_config(cert: Arc<ReloadingCert>, client_ca: Option<&Path>) -> Result<rustls::ServerConfig, WebhookError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| WebhookError::Tls(e.to_string()))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| WebhookError::Tls(format!("cannot read the client CA {}: {e}", path.display())))?;
            for cert in certs {
                let cert = cert.map_err(|e| WebhookError::Tls(format!("{}: bad PEM: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| WebhookError::Tls(format!("{}: unusable CA certificate: {e}", path.display())))?;
            }
            if roots.is_empty() {
                return Err(WebhookError::Tls(format!("{} holds no CA certificate", path.display())));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| WebhookError::Tls(format!("client CA {}: {e}", path.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A self-signed certificate for local use, written as `tls.crt` and `tls.key` into
/// `dir`. It names localhost, 127.0.0.1 and ::1; it is its own CA, so `tls.crt` is
/// also the caBundle of a webhook registration that points at it.
pub fn write_self_signed(dir: &Path) -> Result<(PathBuf, PathBuf), WebhookError> {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    let generated = rcgen::generate_simple_self_signed(names)
        .map_err(|e| WebhookError::Tls(format!("cannot generate a certificate: {e}")))?;
    std::fs::create_dir_all(dir).map_err(|source| WebhookError::File {
        path: dir.to_path_buf(),
        source,
    })?;
    let cert = dir.join("tls.crt");
    let key = dir.join("tls.key");
    for (path, pem) in [
        (&cert, generated.cert.pem()),
        (&key, generated.signing_key.serialize_pem()),
    ] {
        std::fs::write(path, pem).map_err(|source| WebhookError::File {
            path: path.clone(),
            source,
        })?;
    }
    Ok((cert, key))
}
