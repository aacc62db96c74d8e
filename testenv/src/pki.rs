//! The credentials of one control plane, written into its folder: a CA, the API
//! server's serving certificate for 127.0.0.1, the service-account signing key, the
//! static token file (an admin and a user with no rights), and the kubeconfigs.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

use crate::Error;

/// The bearer token of `system:masters` member `flink-ha-admin`.
pub const ADMIN_TOKEN: &str = "flink-ha-admin-token";
/// The bearer token of `flink-ha-nobody`, a user RBAC grants nothing.
pub const NOBODY_TOKEN: &str = "flink-ha-nobody-token";

/// Paths of the files [`write()`] produced.
#[derive(Clone, Debug)]
pub struct Pki {
    /// The CA of the serving certificate (clients trust it).
    pub ca_cert: PathBuf,
    /// The API server's serving certificate, for 127.0.0.1 and localhost.
    pub serving_cert: PathBuf,
    /// Its key.
    pub serving_key: PathBuf,
    /// The key service-account tokens are signed with.
    pub service_account_key: PathBuf,
    /// Its public half, which the API server verifies tokens with.
    pub service_account_public_key: PathBuf,
    /// The static bearer tokens (`--token-auth-file`).
    pub token_file: PathBuf,
}

/// Writes a CA, the API server's serving certificate, a service-account key pair and
/// the token file into `dir`.
pub fn write(dir: &Path) -> Result<Pki, Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "flink-ha testenv CA");
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca = Issuer::new(ca_params, ca_key);

    // rustls checks the name: the server is reached as 127.0.0.1 (and localhost for kubectl).
    let serving_key = KeyPair::generate()?;
    let mut serving_params = CertificateParams::new(vec!["localhost".to_string()])?;
    serving_params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    serving_params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    let serving_cert = serving_params.signed_by(&serving_key, &ca)?;

    // ECDSA P-256: kube-apiserver signs service-account tokens with it (ES256) and checks
    // them with the public half, which it wants in a file of its own.
    let service_account_key = KeyPair::generate()?;

    let pki = Pki {
        ca_cert: dir.join("ca.crt"),
        serving_cert: dir.join("apiserver.crt"),
        serving_key: dir.join("apiserver.key"),
        service_account_key: dir.join("service-account.key"),
        service_account_public_key: dir.join("service-account.pub"),
        token_file: dir.join("tokens.csv"),
    };
    write_file(&pki.ca_cert, &ca_cert.pem())?;
    write_file(&pki.serving_cert, &serving_cert.pem())?;
    write_file(&pki.serving_key, &serving_key.serialize_pem())?;
    write_file(&pki.service_account_key, &service_account_key.serialize_pem())?;
    write_file(&pki.service_account_public_key, &service_account_key.public_key_pem())?;
    // token,user,uid,"group1,group2"
    write_file(
        &pki.token_file,
        &format!("{ADMIN_TOKEN},flink-ha-admin,1000,\"system:masters\"\n{NOBODY_TOKEN},flink-ha-nobody,1001\n"),
    )?;
    Ok(pki)
}

/// A kubeconfig for `server` with a bearer token, trusting the control plane's CA.
pub fn write_kubeconfig(path: &Path, server: &str, ca_cert: &Path, token: &str) -> Result<(), Error> {
    let text = format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: testenv\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\n\
         users:\n\
         - name: testenv\n  user:\n    token: {token}\n\
         contexts:\n\
         - name: testenv\n  context:\n    cluster: testenv\n    user: testenv\n\
         current-context: testenv\n",
        ca = ca_cert.display(),
    );
    write_file(path, &text)
}

fn write_file(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|source| Error::Io {
        what: format!("write {}", path.display()),
        source,
    })
}
