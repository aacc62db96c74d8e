//! Test support for flink-ha: a real Kubernetes control plane on loopback.
//!
//! The webhook and the HA runtime are tested against the real API server, not a mock:
//! resourceVersion conflicts, watches, label selectors, owner-reference garbage
//! collection and admission call-outs are what a mock gets wrong. This crate starts
//! `etcd` and `kube-apiserver` (TLS on 127.0.0.1, token authentication, RBAC) and, on
//! request, `kube-controller-manager`, on free ports, and hands each test a
//! [`kube::Client`], a kubeconfig file (for `kubectl`) and a namespace of its own.
//!
//! The binaries come from an envtest-style folder: `$KUBEBUILDER_ASSETS`, else the cache
//! that `scripts/provision-kube-test-assets` fills (it builds kube-apiserver and
//! kube-controller-manager from Debian's Kubernetes source). Without them a test fails
//! with one line naming that command; it is never skipped.
//!
//! ```no_run
//! # async fn demo() -> Result<(), flink_ha_testenv::Error> {
//! let env = flink_ha_testenv::TestEnv::new("my-test").await?;
//! let config_maps: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
//!     kube::Api::namespaced(env.client.clone(), &env.namespace);
//! # Ok(()) }
//! ```
//!
//! All tests of one test binary share one control plane (started by the first, stopped
//! when the binary exits, also on panic or SIGKILL: see [`process`]), each test in its
//! own namespace. [`ControlPlane::start`] gives a private one where a test needs that.
//!
//! For storageDir tests, [`S3Server`] runs a real S3-compatible server on loopback.

// Bad input is an error value, never a panic: no unwrap or expect outside tests.
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod assets;
mod control_plane;
pub mod pki;
pub mod process;
mod s3;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ObjectMeta, PostParams};

pub use assets::{Assets, PROVISION_COMMAND};
pub use control_plane::{ControlPlane, client_from_kubeconfig};
pub use s3::S3Server;

/// Why a control plane or a test environment could not be had.
#[derive(thiserror::Error)]
pub enum Error {
    #[error(
        "Kubernetes test assets (etcd, kube-apiserver, kube-controller-manager) not found in {}: run `{PROVISION_COMMAND}` (or set KUBEBUILDER_ASSETS to a folder holding them)",
        display_paths(.looked)
    )]
    /// The binaries are in none of the folders looked in.
    AssetsMissing {
        /// The folders looked in.
        looked: Vec<PathBuf>,
    },
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// etcd, the API server or the controller manager exited while starting.
    #[error("{name} exited during startup ({status}); the end of its log:\n{log_tail}")]
    ProcessDied {
        /// Which process.
        name: &'static str,
        /// Its exit status.
        status: String,
        /// The last lines of its log.
        log_tail: String,
    },
    /// A process did not answer its readiness check in time.
    #[error("{name} was not ready after {waited:?}; the end of its log:\n{log_tail}")]
    NotReady {
        /// Which process.
        name: &'static str,
        /// How long it was given.
        waited: Duration,
        /// The last lines of its log.
        log_tail: String,
    },
    /// rcgen could not make the control plane's certificates.
    #[error("generating the control plane's certificates: {0}")]
    Certificates(#[from] rcgen::Error),
    /// A kubeconfig that kube-rs cannot use.
    #[error("reading the kubeconfig: {0}")]
    Kubeconfig(String),
    /// An API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Startup failed earlier in this process (the message of that failure).
    #[error("{0}")]
    Startup(String),
}

/// Tests return `Result<_, Error>`; libtest prints the error with `Debug`, so `Debug`
/// says what `Display` says: one readable reason, logs included.
impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

fn display_paths(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    if shown.is_empty() {
        "no folder ($KUBEBUILDER_ASSETS and $HOME are unset)".into()
    } else {
        shown.join(", ")
    }
}

static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();

/// The control plane shared by the tests of this process, started on first use.
pub fn shared() -> Result<&'static ControlPlane, Error> {
    SHARED
        .get_or_init(|| {
            let started = ControlPlane::start().map_err(|e| e.to_string());
            if let Ok(plane) = &started {
                // Shown by `cargo test` for failing tests and with --nocapture.
                eprintln!(
                    "flink-ha-testenv: control plane ready in {:.1?} at {} ({})",
                    plane.startup,
                    plane.server,
                    plane.dir().display()
                );
            }
            started
        })
        .as_ref()
        .map_err(|message| Error::Startup(message.clone()))
}

/// What one test gets: a client with full rights, a namespace of its own on the shared
/// control plane, and a kubeconfig for `kubectl`.
pub struct TestEnv {
    /// A client with the admin token (`system:masters`).
    pub client: kube::Client,
    /// The test's own namespace, already created.
    pub namespace: String,
    /// A kubeconfig with the admin token, for `kubectl` and child processes.
    pub kubeconfig: PathBuf,
    /// The control plane shared by the tests of this process.
    pub plane: &'static ControlPlane,
}

impl TestEnv {
    /// A fresh namespace, named after the test, on the shared control plane.
    pub async fn new(test_name: &str) -> Result<TestEnv, Error> {
        let plane = shared()?;
        plane.check_alive()?;
        let client = client_from_kubeconfig(&plane.kubeconfig).await?;
        let namespace = unique_namespace(test_name);
        let namespaces: kube::Api<Namespace> = kube::Api::all(client.clone());
        let object = Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        namespaces.create(&PostParams::default(), &object).await?;
        Ok(TestEnv {
            client,
            namespace,
            kubeconfig: plane.kubeconfig.clone(),
            plane,
        })
    }

    /// As [`TestEnv::new`], with kube-controller-manager running (garbage collection,
    /// Deployments and ReplicaSets, namespace deletion).
    pub async fn with_controller_manager(test_name: &str) -> Result<TestEnv, Error> {
        let env = TestEnv::new(test_name).await?;
        let plane = env.plane;
        tokio::task::spawn_blocking(move || plane.ensure_controller_manager())
            .await
            .map_err(|e| Error::Startup(format!("starting the controller manager: {e}")))??;
        Ok(env)
    }

    /// A client that authenticates with another bearer token of the control plane's
    /// token file (e.g. [`pki::NOBODY_TOKEN`], a user RBAC grants nothing).
    pub async fn client_with_token(&self, name: &str, token: &str) -> Result<kube::Client, Error> {
        let path = self.plane.kubeconfig_for_token(name, token)?;
        client_from_kubeconfig(&path).await
    }
}

/// `<test name, as a DNS label>-<n>`: unique within the process, which owns the plane.
fn unique_namespace(test_name: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let mut label: String = test_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    label.truncate(50);
    let label = label.trim_matches('-');
    let label = if label.is_empty() { "test" } else { label };
    format!("{label}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::unique_namespace;

    #[test]
    fn namespaces_are_dns_labels_and_unique() {
        let a = unique_namespace("Watch_sees::ADDED events!");
        let b = unique_namespace("Watch_sees::ADDED events!");
        assert_ne!(a, b);
        for name in [a, b, unique_namespace("__"), unique_namespace(&"x".repeat(99))] {
            assert!(name.len() <= 63, "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{name}"
            );
            assert!(!name.starts_with('-') && !name.ends_with('-'), "{name}");
        }
    }
}
