//! Certificates the webhook manages itself (`flink-ha webhook --cert-secret NAME`).
//!
//! One Secret in the webhook's namespace holds a CA and a serving certificate signed by
//! it; the `caBundle` of the webhook's own ValidatingWebhookConfiguration names the CA.
//! Every replica runs the same [`CertManager::reconcile`]:
//!
//! 1. read the Secret;
//! 2. if it is empty, unusable or past two thirds of its life, issue what is needed and
//!    write it back under the resourceVersion it read. A replica that loses that race
//!    gets 409 Conflict, reads the winner's Secret and uses it, so replicas always agree
//!    on one certificate: the Secret is the only source of truth;
//! 3. make every `caBundle` of the webhook configuration equal the Secret's bundle;
//! 4. serve the Secret's certificate.
//!
//! Why the Secret must exist (deploy/ creates it empty): RBAC cannot narrow `create` to
//! one name, and `get` and `update` of one named Secret and one named webhook
//! configuration is all this needs.
//!
//! Rotation: a serving certificate is renewed under the same CA, so the bundle does not
//! change. When the CA itself is renewed, the previous CA stays in the bundle until it
//! expires, and the caller waits for the API server to see a changed bundle
//! ([`Reconciled::bundle_changed`]) before it serves a certificate of the new CA.

use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PublicKeyData,
};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The Secret's keys. `tls.crt`, `tls.key` and `ca.crt` are the names cert-manager and
/// `kubernetes.io/tls` Secrets use, so other tools read it as they expect.
pub const CA_CERT_KEY: &str = "ca.crt";
/// The CA's private key (PEM).
pub const CA_KEY_KEY: &str = "ca.key";
/// The serving certificate (PEM).
pub const CERT_KEY: &str = "tls.crt";
/// The serving certificate's private key (PEM).
pub const KEY_KEY: &str = "tls.key";
/// The CAs the API server is told to trust: the current one, then the previous one
/// while it is still valid.
pub const BUNDLE_KEY: &str = "ca-bundle.crt";

/// What a managed certificate is for, and where it lives.
#[derive(Clone, Debug)]
pub struct ManagedCertConfig {
    /// The namespace of the Secret (the webhook's own).
    pub namespace: String,
    /// The Secret holding the CA and the serving certificate.
    pub secret: String,
    /// The ValidatingWebhookConfiguration whose `caBundle` is kept in step.
    pub webhook_configuration: String,
    /// The names the serving certificate is for (`<service>.<namespace>.svc` and kin).
    pub dns_names: Vec<String>,
    /// Life of a serving certificate; it is renewed after two thirds of it.
    pub cert_validity: Duration,
    /// Life of the CA; it is renewed after two thirds of it.
    pub ca_validity: Duration,
}

impl ManagedCertConfig {
    /// The names a Service's clients use for it, shortest to longest.
    pub fn service_names(service: &str, namespace: &str) -> Vec<String> {
        vec![
            service.to_string(),
            format!("{service}.{namespace}"),
            format!("{service}.{namespace}.svc"),
            format!("{service}.{namespace}.svc.cluster.local"),
        ]
    }

    fn check(&self) -> Result<(), ManagedCertError> {
        if self.dns_names.is_empty() {
            return Err(ManagedCertError::Config(
                "the certificate needs at least one name".into(),
            ));
        }
        if self.cert_validity < Duration::from_secs(3) || self.ca_validity < self.cert_validity {
            return Err(ManagedCertError::Config(format!(
                "the certificate validity ({:?}) must be at least 3 s and at most the CA validity ({:?})",
                self.cert_validity, self.ca_validity
            )));
        }
        Ok(())
    }
}

/// Why a managed certificate could not be read, issued or published.
#[derive(Debug, thiserror::Error)]
pub enum ManagedCertError {
    /// Names or validities that cannot work.
    #[error("invalid certificate settings: {0}")]
    Config(String),
    /// The Secret is not there (the webhook may not create it).
    #[error(
        "Secret {namespace}/{name} does not exist: create it empty (deploy/ does) and give the webhook get and update on it"
    )]
    SecretMissing {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The webhook configuration to keep the caBundle of is not there.
    #[error(
        "ValidatingWebhookConfiguration {name} does not exist: apply it (deploy/ does) and give the webhook get and update on it"
    )]
    WebhookConfigurationMissing {
        /// Its name.
        name: String,
    },
    /// An API call failed (RBAC, the network, a conflict that kept recurring).
    #[error("cannot {action}: {source}")]
    Kube {
        /// What was being done, e.g. `read Secret ns/name`.
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// rcgen could not make a key or a certificate.
    #[error("cannot issue a certificate: {0}")]
    Issue(#[from] rcgen::Error),
}

/// The PEM texts of one issued set, as the Secret stores them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedCerts {
    /// The CA certificate.
    pub ca_cert: String,
    /// The CA's private key.
    pub ca_key: String,
    /// The serving certificate.
    pub cert: String,
    /// The serving certificate's private key.
    pub key: String,
    /// The CAs to trust, current first.
    pub ca_bundle: String,
}

/// What one reconcile found and did.
#[derive(Clone, Debug)]
pub struct Reconciled {
    /// The certificates to serve, as the Secret now holds them.
    pub certs: IssuedCerts,
    /// Why this replica wrote the Secret, when it did.
    pub issued: Option<String>,
    /// True when the webhook configuration's `caBundle` was changed: the API server
    /// needs a moment to pick it up before a certificate of a new CA is served.
    pub bundle_changed: bool,
}

/// The reconcile loop's client side: one per process.
#[derive(Clone)]
pub struct CertManager {
    client: kube::Client,
    config: ManagedCertConfig,
}

impl std::fmt::Debug for CertManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertManager")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl CertManager {
    /// A manager for `config`, refused when its names or validities cannot work.
    pub fn new(client: kube::Client, config: ManagedCertConfig) -> Result<CertManager, ManagedCertError> {
        config.check()?;
        Ok(CertManager { client, config })
    }

    /// The API server client it uses.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// What it manages, and where.
    pub fn config(&self) -> &ManagedCertConfig {
        &self.config
    }

    /// Reads, renews if due, publishes the bundle: see the module's documentation.
    pub async fn reconcile(&self) -> Result<Reconciled, ManagedCertError> {
        let config = &self.config;
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &config.namespace);
        let secret_name = format!("Secret {}/{}", config.namespace, config.secret);
        // A lost race costs one more read; more than a few in a row means something
        // else keeps writing the Secret, which is worth an error.
        let mut attempts = 0;
        let (certs, issued) = loop {
            attempts += 1;
            let mut secret = secrets
                .get_opt(&config.secret)
                .await
                .map_err(|source| ManagedCertError::Kube {
                    action: format!("read {secret_name}"),
                    source,
                })?
                .ok_or_else(|| ManagedCertError::SecretMissing {
                    namespace: config.namespace.clone(),
                    name: config.secret.clone(),
                })?;
            let stored = StoredCerts::from_secret(&secret);
            let now = OffsetDateTime::now_utc();
            match renewal(&stored, config, now) {
                None => {
                    break (
                        stored
                            .into_issued()
                            .ok_or_else(|| unreachable_incomplete(&secret_name))?,
                        None,
                    );
                }
                Some(reason) => {
                    let certs = issue(&stored, config, now, reason.renews_ca())?;
                    secret.data = Some(certs.to_secret_data());
                    secret.string_data = None;
                    match secrets.replace(&config.secret, &PostParams::default(), &secret).await {
                        Ok(_) => {
                            tracing::info!(secret = %secret_name, reason = %reason, "issued a serving certificate");
                            break (certs, Some(reason.to_string()));
                        }
                        Err(kube::Error::Api(e)) if e.code == 409 && attempts < 5 => {
                            tracing::info!(secret = %secret_name, "another replica wrote the Secret first; using theirs");
                            continue;
                        }
                        Err(source) => {
                            return Err(ManagedCertError::Kube {
                                action: format!("write {secret_name}"),
                                source,
                            });
                        }
                    }
                }
            }
        };
        let bundle_changed = self.publish_bundle(&certs.ca_bundle).await?;
        Ok(Reconciled {
            certs,
            issued,
            bundle_changed,
        })
    }

    /// Sets every `caBundle` of the webhook configuration to `bundle`; true if any
    /// differed.
    async fn publish_bundle(&self, bundle: &str) -> Result<bool, ManagedCertError> {
        let name = &self.config.webhook_configuration;
        let api: Api<ValidatingWebhookConfiguration> = Api::all(self.client.clone());
        let mut hooks = api
            .get_opt(name)
            .await
            .map_err(|source| ManagedCertError::Kube {
                action: format!("read ValidatingWebhookConfiguration {name}"),
                source,
            })?
            .ok_or_else(|| ManagedCertError::WebhookConfigurationMissing { name: name.clone() })?;
        let wanted = ByteString(bundle.as_bytes().to_vec());
        let mut changed = false;
        for hook in hooks.webhooks.iter_mut().flatten() {
            if hook.client_config.ca_bundle.as_ref() != Some(&wanted) {
                hook.client_config.ca_bundle = Some(wanted.clone());
                changed = true;
            }
        }
        if changed {
            // The object carries the resourceVersion read: a concurrent writer makes
            // this a 409, and the next round starts again from what is there.
            api.replace(name, &PostParams::default(), &hooks)
                .await
                .map_err(|source| ManagedCertError::Kube {
                    action: format!("update the caBundle of ValidatingWebhookConfiguration {name}"),
                    source,
                })?;
            tracing::info!(webhook_configuration = %name, "caBundle updated");
        }
        Ok(changed)
    }
}

fn unreachable_incomplete(secret: &str) -> ManagedCertError {
    // renewal() returns None only for a complete set; kept as an error, not a panic.
    ManagedCertError::Config(format!("{secret} was judged complete but lacks a key"))
}

/// The Secret's texts, each as it was found (absent or not UTF-8: `None`).
#[derive(Clone, Debug, Default)]
pub struct StoredCerts {
    /// [`CA_CERT_KEY`].
    pub ca_cert: Option<String>,
    /// [`CA_KEY_KEY`].
    pub ca_key: Option<String>,
    /// [`CERT_KEY`].
    pub cert: Option<String>,
    /// [`KEY_KEY`].
    pub key: Option<String>,
    /// [`BUNDLE_KEY`].
    pub ca_bundle: Option<String>,
}

impl StoredCerts {
    /// The texts of `secret`; an empty value counts as absent.
    pub fn from_secret(secret: &Secret) -> StoredCerts {
        let get = |key: &str| {
            secret
                .data
                .as_ref()
                .and_then(|data| data.get(key))
                .and_then(|value| String::from_utf8(value.0.clone()).ok())
                .filter(|text| !text.trim().is_empty())
        };
        StoredCerts {
            ca_cert: get(CA_CERT_KEY),
            ca_key: get(CA_KEY_KEY),
            cert: get(CERT_KEY),
            key: get(KEY_KEY),
            ca_bundle: get(BUNDLE_KEY),
        }
    }

    fn into_issued(self) -> Option<IssuedCerts> {
        let ca_cert = self.ca_cert?;
        Some(IssuedCerts {
            ca_bundle: self.ca_bundle.unwrap_or_else(|| ca_cert.clone()),
            ca_cert,
            ca_key: self.ca_key?,
            cert: self.cert?,
            key: self.key?,
        })
    }
}

impl IssuedCerts {
    fn to_secret_data(&self) -> std::collections::BTreeMap<String, ByteString> {
        [
            (CA_CERT_KEY, &self.ca_cert),
            (CA_KEY_KEY, &self.ca_key),
            (CERT_KEY, &self.cert),
            (KEY_KEY, &self.key),
            (BUNDLE_KEY, &self.ca_bundle),
        ]
        .into_iter()
        .map(|(key, text)| (key.to_string(), ByteString(text.as_bytes().to_vec())))
        .collect()
    }
}

/// Why a set must be (re)issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// The CA is missing, unreadable, not a CA, does not match its key, or is due.
    Ca(String),
    /// The serving certificate is missing, unreadable, not from the CA, lacks a name,
    /// does not match its key, or is due.
    Cert(String),
}

impl Renewal {
    fn renews_ca(&self) -> bool {
        matches!(self, Renewal::Ca(_))
    }
}

impl std::fmt::Display for Renewal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Renewal::Ca(why) => write!(f, "new CA: {why}"),
            Renewal::Cert(why) => write!(f, "new serving certificate: {why}"),
        }
    }
}

/// What, if anything, must be issued for `stored` to be served at `now`.
pub fn renewal(stored: &StoredCerts, config: &ManagedCertConfig, now: OffsetDateTime) -> Option<Renewal> {
    let (Some(ca_pem), Some(ca_key_pem)) = (&stored.ca_cert, &stored.ca_key) else {
        return Some(Renewal::Ca("the Secret holds no CA yet".into()));
    };
    let ca_der = match first_der(ca_pem) {
        Ok(der) => der,
        Err(why) => return Some(Renewal::Ca(format!("{CA_CERT_KEY}: {why}"))),
    };
    let ca = match X509Certificate::from_der(&ca_der) {
        Ok((_, cert)) => cert,
        Err(e) => return Some(Renewal::Ca(format!("{CA_CERT_KEY} is not a certificate: {e}"))),
    };
    if !ca.is_ca() {
        return Some(Renewal::Ca(format!("{CA_CERT_KEY} is not a CA certificate")));
    }
    match KeyPair::from_pem(ca_key_pem) {
        Ok(key) if key.subject_public_key_info() == ca.public_key().raw => {}
        Ok(_) => return Some(Renewal::Ca(format!("{CA_KEY_KEY} does not match {CA_CERT_KEY}"))),
        Err(e) => return Some(Renewal::Ca(format!("{CA_KEY_KEY} is not a usable key: {e}"))),
    }
    if let Some(why) = due(&ca, now) {
        return Some(Renewal::Ca(format!("the CA {why}")));
    }

    let (Some(cert_pem), Some(key_pem)) = (&stored.cert, &stored.key) else {
        return Some(Renewal::Cert("the Secret holds no serving certificate".into()));
    };
    let cert_der = match first_der(cert_pem) {
        Ok(der) => der,
        Err(why) => return Some(Renewal::Cert(format!("{CERT_KEY}: {why}"))),
    };
    let cert = match X509Certificate::from_der(&cert_der) {
        Ok((_, cert)) => cert,
        Err(e) => return Some(Renewal::Cert(format!("{CERT_KEY} is not a certificate: {e}"))),
    };
    if cert.verify_signature(Some(ca.public_key())).is_err() {
        return Some(Renewal::Cert(format!("{CERT_KEY} is not signed by {CA_CERT_KEY}")));
    }
    match KeyPair::from_pem(key_pem) {
        Ok(key) if key.subject_public_key_info() == cert.public_key().raw => {}
        Ok(_) => return Some(Renewal::Cert(format!("{KEY_KEY} does not match {CERT_KEY}"))),
        Err(e) => return Some(Renewal::Cert(format!("{KEY_KEY} is not a usable key: {e}"))),
    }
    let names = subject_alt_names(&cert);
    if let Some(missing) = config.dns_names.iter().find(|name| !names.contains(*name)) {
        return Some(Renewal::Cert(format!("it does not name {missing}")));
    }
    if let Some(why) = due(&cert, now) {
        return Some(Renewal::Cert(format!("the certificate {why}")));
    }
    match &stored.ca_bundle {
        Some(bundle) if bundle.contains(ca_pem.trim()) => None,
        _ => Some(Renewal::Cert(format!("{BUNDLE_KEY} does not hold the CA"))),
    }
}

/// Why `cert` must be replaced at `now`: two thirds of its life gone, or not valid yet.
fn due(cert: &X509Certificate<'_>, now: OffsetDateTime) -> Option<String> {
    let from = cert.validity().not_before.timestamp();
    let to = cert.validity().not_after.timestamp();
    let now = now.unix_timestamp();
    if now >= to {
        return Some("has expired".into());
    }
    if now < from - 300 {
        return Some("is not valid yet (is a clock wrong?)".into());
    }
    let renew_at = from + (to - from) * 2 / 3;
    (now >= renew_at).then(|| format!("is past two thirds of its life (valid until {to})"))
}

fn first_der(pem: &str) -> Result<Vec<u8>, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    match CertificateDer::pem_slice_iter(pem.as_bytes()).next() {
        Some(Ok(der)) => Ok(der.to_vec()),
        Some(Err(e)) => Err(format!("bad PEM: {e}")),
        None => Err("holds no certificate".into()),
    }
}

fn subject_alt_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(dns.to_string()),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes)
                    .ok()
                    .map(|b| std::net::IpAddr::from(b).to_string()),
                16 => <[u8; 16]>::try_from(*bytes)
                    .ok()
                    .map(|b| std::net::IpAddr::from(b).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Issues a serving certificate, and a new CA first when `new_ca` (or when the stored CA
/// cannot sign). The bundle keeps the stored CAs that are still valid after the new one.
pub fn issue(
    stored: &StoredCerts,
    config: &ManagedCertConfig,
    now: OffsetDateTime,
    new_ca: bool,
) -> Result<IssuedCerts, ManagedCertError> {
    // Backdated a little: the API server's clock may be behind ours.
    let skew = time::Duration::seconds((config.cert_validity.as_secs() / 10).min(300) as i64);
    let existing_ca = match (new_ca, &stored.ca_cert, &stored.ca_key) {
        (false, Some(cert), Some(key)) => KeyPair::from_pem(key)
            .ok()
            .and_then(|key| Issuer::from_ca_cert_pem(cert, key).ok())
            .map(|issuer| (cert.clone(), key.clone(), issuer)),
        _ => None,
    };
    let (ca_cert, ca_key, issuer) = match existing_ca {
        Some(ca) => ca,
        None => {
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params.distinguished_name.push(DnType::OrganizationName, "flink-ha");
            params.distinguished_name.push(
                DnType::CommonName,
                format!("flink-ha webhook CA {}", now.unix_timestamp()),
            );
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            params.not_before = now - skew;
            params.not_after = now + to_time(config.ca_validity);
            let key = KeyPair::generate()?;
            let cert = params.self_signed(&key)?;
            let key_pem = key.serialize_pem();
            (cert.pem(), key_pem, Issuer::new(params, key))
        }
    };

    let mut params = CertificateParams::new(config.dns_names.clone())?;
    params
        .distinguished_name
        .push(DnType::CommonName, config.dns_names[0].clone());
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = now - skew;
    // Never past the CA: a certificate its issuer outlives by nothing.
    let ca_not_after = first_der(&ca_cert)
        .ok()
        .and_then(|der| not_after_unix(&der))
        .and_then(|unix| OffsetDateTime::from_unix_timestamp(unix).ok());
    let wanted = now + to_time(config.cert_validity);
    params.not_after = match ca_not_after {
        Some(ca_end) if ca_end < wanted => ca_end,
        _ => wanted,
    };
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;

    let mut bundle = ca_cert.trim().to_string();
    bundle.push('\n');
    for old in stored.ca_bundle.iter().chain(stored.ca_cert.iter()) {
        for pem in split_pem(old) {
            if !bundle.contains(pem.trim()) && still_valid(&pem, now) {
                bundle.push_str(pem.trim());
                bundle.push('\n');
            }
        }
    }
    Ok(IssuedCerts {
        ca_cert,
        ca_key,
        cert: cert.pem(),
        key: key.serialize_pem(),
        ca_bundle: bundle,
    })
}

fn to_time(duration: Duration) -> time::Duration {
    time::Duration::seconds(duration.as_secs().min(i64::MAX as u64) as i64)
}

/// The certificate blocks of a PEM text, each as PEM.
fn split_pem(text: &str) -> Vec<String> {
    const END: &str = "-----END CERTIFICATE-----";
    text.split_inclusive(END)
        .filter(|block| block.contains("-----BEGIN CERTIFICATE-----"))
        .map(|block| block.trim().to_string())
        .collect()
}

fn still_valid(pem: &str, now: OffsetDateTime) -> bool {
    first_der(pem)
        .ok()
        .and_then(|der| not_after_unix(&der))
        .is_some_and(|not_after| not_after > now.unix_timestamp())
}

/// When a PEM certificate expires, as Unix seconds (for the expiry metric).
pub fn not_after_unix(cert_der: &[u8]) -> Option<i64> {
    X509Certificate::from_der(cert_der)
        .ok()
        .map(|(_, cert)| cert.validity().not_after.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(cert_secs: u64, ca_secs: u64) -> ManagedCertConfig {
        ManagedCertConfig {
            namespace: "flink-ha-system".into(),
            secret: "flink-ha-webhook-tls".into(),
            webhook_configuration: "flink-ha-webhook".into(),
            dns_names: ManagedCertConfig::service_names("flink-ha-webhook", "flink-ha-system")
                .into_iter()
                .chain(["127.0.0.1".to_string()])
                .collect(),
            cert_validity: Duration::from_secs(cert_secs),
            ca_validity: Duration::from_secs(ca_secs),
        }
    }

    fn stored(certs: &IssuedCerts) -> StoredCerts {
        StoredCerts {
            ca_cert: Some(certs.ca_cert.clone()),
            ca_key: Some(certs.ca_key.clone()),
            cert: Some(certs.cert.clone()),
            key: Some(certs.key.clone()),
            ca_bundle: Some(certs.ca_bundle.clone()),
        }
    }

    #[test]
    fn an_empty_secret_gets_a_ca_and_a_certificate_that_is_then_kept() {
        let config = config(900, 3600);
        let now = OffsetDateTime::now_utc();
        let empty = StoredCerts::default();
        let why = renewal(&empty, &config, now).expect("an empty Secret needs a CA");
        assert!(matches!(why, Renewal::Ca(_)), "{why}");
        let certs = issue(&empty, &config, now, true).unwrap();
        assert_eq!(renewal(&stored(&certs), &config, now), None);
        assert_eq!(split_pem(&certs.ca_bundle).len(), 1);
        // The served pair loads into rustls.
        let chain = vec![rustls_pki_types::CertificateDer::from(first_der(&certs.cert).unwrap())];
        use rustls_pki_types::pem::PemObject;
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(certs.key.as_bytes()).unwrap();
        rustls::sign::CertifiedKey::from_der(chain, key, &rustls::crypto::ring::default_provider()).unwrap();
    }

    #[test]
    fn a_certificate_past_two_thirds_is_renewed_under_the_same_ca() {
        let config = config(900, 3600);
        let start = OffsetDateTime::now_utc();
        let first = issue(&StoredCerts::default(), &config, start, true).unwrap();
        let later = start + time::Duration::seconds(601);
        let why = renewal(&stored(&first), &config, later).expect("due");
        assert!(matches!(why, Renewal::Cert(_)), "{why}");
        let second = issue(&stored(&first), &config, later, false).unwrap();
        assert_eq!(second.ca_cert, first.ca_cert);
        assert_eq!(second.ca_bundle.trim(), first.ca_bundle.trim());
        assert_ne!(second.cert, first.cert);
        assert_eq!(renewal(&stored(&second), &config, later), None);
    }

    #[test]
    fn a_ca_past_two_thirds_is_replaced_and_the_old_one_stays_in_the_bundle() {
        let config = config(900, 1800);
        let start = OffsetDateTime::now_utc();
        let first = issue(&StoredCerts::default(), &config, start, true).unwrap();
        let later = start + time::Duration::seconds(1201);
        let why = renewal(&stored(&first), &config, later).expect("due");
        assert!(matches!(why, Renewal::Ca(_)), "{why}");
        let second = issue(&stored(&first), &config, later, true).unwrap();
        assert_ne!(second.ca_cert, first.ca_cert);
        let bundle = split_pem(&second.ca_bundle);
        assert_eq!(bundle.len(), 2);
        assert_eq!(bundle[0], second.ca_cert.trim());
        assert_eq!(bundle[1], first.ca_cert.trim());
        // Once the old CA has expired it leaves the bundle.
        let much_later = start + time::Duration::seconds(1801 + 1200);
        let third = issue(&stored(&second), &config, much_later, true).unwrap();
        assert!(!third.ca_bundle.contains(first.ca_cert.trim()));
    }

    #[test]
    fn broken_or_mismatched_contents_are_reissued_with_a_reason() {
        let config = config(900, 3600);
        let now = OffsetDateTime::now_utc();
        let a = issue(&StoredCerts::default(), &config, now, true).unwrap();
        let b = issue(&StoredCerts::default(), &config, now, true).unwrap();

        let mut garbled = stored(&a);
        garbled.ca_cert = Some("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into());
        assert!(matches!(renewal(&garbled, &config, now), Some(Renewal::Ca(_))));

        let mut swapped_key = stored(&a);
        swapped_key.ca_key = Some(b.ca_key.clone());
        let why = renewal(&swapped_key, &config, now).unwrap();
        assert!(why.to_string().contains("does not match"), "{why}");

        let mut foreign_cert = stored(&a);
        foreign_cert.cert = Some(b.cert.clone());
        foreign_cert.key = Some(b.key.clone());
        let why = renewal(&foreign_cert, &config, now).unwrap();
        assert!(why.to_string().contains("not signed by"), "{why}");

        let mut renamed = config.clone();
        renamed.dns_names.push("other.example".into());
        let why = renewal(&stored(&a), &renamed, now).unwrap();
        assert!(why.to_string().contains("other.example"), "{why}");

        let mut no_bundle = stored(&a);
        no_bundle.ca_bundle = Some(b.ca_cert.clone());
        assert!(matches!(renewal(&no_bundle, &config, now), Some(Renewal::Cert(_))));
    }

    #[test]
    fn settings_that_cannot_work_are_refused() {
        assert!(config(2, 3600).check().is_err());
        assert!(config(900, 600).check().is_err());
        let mut nameless = config(900, 3600);
        nameless.dns_names.clear();
        assert!(nameless.check().is_err());
    }
}
