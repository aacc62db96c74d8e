//! # flink-ha-admission: the admission webhook host
//!
//! Runs the flink-ha policy, a Wasm component exporting `wit/policy.wit`, on every
//! AdmissionReview the API server sends, and answers allow or deny in the way
//! `kubectl` users can act on. The parts:
//!
//! - [`policy`]: wasmtime. Compile once, `InstancePre` + pooling allocator, a fresh
//!   instance per call, a memory cap and an epoch deadline per call.
//! - [`server`]: the HTTPS server (tokio, hyper, rustls). It serves the validate path,
//!   `/healthz`, `/readyz` and `/metrics`, bounds concurrency and body sizes, times out
//!   slow clients, and shuts down gracefully.
//! - [`tls`]: serving certificates. It loads them, reloads them when the files change
//!   (mounted Secrets rotate), takes an optional client CA for mTLS, and generates a
//!   self-signed pair for local use.
//! - [`managed_certs`]: certificates the webhook issues and renews itself in a Secret,
//!   with the caBundle of its own webhook configuration kept in step.
//! - [`settings`]: `--settings` (exemptions, rules off) with `--disable-rule` and
//!   `--warn-only`, and the namespace labels a `namespaceSelector` exemption needs.
//! - [`context`]: what a review asks to see beside the request (HA205: a job
//!   ConfigMap's cluster ConfigMap, which holds the lease), read from the API server
//!   with a timeout into a small bounded cache.
//! - [`reload`]: the file watcher behind certificate reload and policy hot swap.
//! - [`metrics`]: the Prometheus text endpoint.
//!
//! `flink-ha webhook` (cli/) is the command in front of [`server::Webhook`] (`bind`, then `run`).

#![warn(missing_docs)]
// Bad input is an error value, never a panic: no unwrap or expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod context;
pub mod managed_certs;
pub mod metrics;
pub mod policy;
pub mod reload;
pub mod server;
pub mod settings;
pub mod tls;

pub use policy::{EMBEDDED_POLICY, Limits, Policy, PolicyEngine};
pub use server::{PolicySource, ServerConfig, TlsSource, Webhook};

/// Path of the fault-test policy component built with this crate (see build.rs); empty
/// when the build embedded a prebuilt policy and skipped it.
#[doc(hidden)]
pub const FAULTY_POLICY_PATH: &str = env!("FLINK_HA_FAULTY_POLICY");

/// Why a policy could not be loaded or did not answer.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The engine's limits cannot work (a zero pool, deadline or tick).
    #[error("invalid policy engine settings: {0}")]
    Config(String),
    /// A component that does not compile, link or answer its first call.
    #[error("cannot load the policy from {source_name}: {reason}")]
    Load {
        /// `embedded` or the file's path.
        source_name: String,
        /// What went wrong, with its causes.
        reason: String,
    },
    /// The policy trapped (a panic in the guest is one).
    #[error("the policy trapped: {0}")]
    Trap(String),
    /// The epoch deadline stopped the call.
    #[error("the policy ran past its {deadline_ms} ms deadline and was stopped")]
    Deadline {
        /// The deadline it ran past.
        deadline_ms: u64,
    },
    /// The memory limiter refused to grow the instance's memory.
    #[error("the policy reached its memory cap of {cap_mib} MiB and was stopped")]
    MemoryCap {
        /// The cap it reached.
        cap_mib: usize,
    },
}

impl PolicyError {
    /// The `outcome` label of the metrics for this failure.
    pub fn outcome(&self) -> &'static str {
        match self {
            PolicyError::Deadline { .. } => "policy_deadline",
            PolicyError::MemoryCap { .. } => "policy_memory_cap",
            _ => "policy_trap",
        }
    }
}

/// Why the webhook cannot start or go on.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The policy could not be loaded.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A certificate, key or client CA that cannot be used.
    #[error("TLS: {0}")]
    Tls(String),
    /// A settings file refused (with its place), or settings that cannot work together.
    #[error("settings: {0}")]
    Settings(String),
    /// A listener that cannot be bound.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address asked for.
        address: std::net::SocketAddr,
        /// Why the bind failed.
        source: std::io::Error,
    },
    /// A file that cannot be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}
