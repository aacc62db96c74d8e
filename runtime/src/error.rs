//! The runtime's errors. What a caller must tell apart is in the variants: a write that
//! definitely did not happen, one that possibly did (never delete its payload then), and
//! a write refused because this process no longer leads.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The compare-and-set lost every attempt to concurrent writers.
    #[error("ConfigMap {name}: still conflicting after {attempts} attempts")]
    Conflict { name: String, attempts: u32 },
    /// A write was sent and its outcome is unknown (timeout, connection lost, 5xx):
    /// the change may be in the ConfigMap. Payloads it points to must be kept.
    #[error("ConfigMap {name}: the write may or may not have happened ({reason})")]
    PossiblyWritten { name: String, reason: String },
    /// The leadership check in the same write failed: the lock names someone else (or
    /// the job's fencing epoch moved on). Nothing was written.
    #[error("ConfigMap {name}: not written, this process does not lead ({reason})")]
    NotLeader { name: String, reason: String },
    /// The ConfigMap does not exist (and the operation does not create it).
    #[error("ConfigMap {name} does not exist")]
    Missing { name: String },
    /// Data in a ConfigMap is not what this key must hold; nothing was written.
    #[error("ConfigMap {name}: key `{key}` is corrupt: {reason}")]
    Corrupt { name: String, key: String, reason: String },
    /// The API server refused or could not be reached before anything was sent.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A request did not finish in time (and was not a write).
    #[error("{what}: no answer from the API server within {waited:?}")]
    Timeout { what: String, waited: Duration },
    /// The key exists with another value: an add never overwrites a live entry.
    #[error("ConfigMap {name}: `{key}` already holds another entry")]
    AlreadyExists { name: String, key: String },
    /// Reading or writing a payload in storageDir failed.
    #[error("storageDir: {0}")]
    Storage(String),
    /// An operation that would lose data the caller did not mean to lose.
    #[error("refused: {0}")]
    Refused(String),
    /// The configuration is not one the runtime can run with.
    #[error("configuration: {0}")]
    Config(String),
}

impl Error {
    /// Whether the write certainly did not happen, so what it pointed to may be deleted.
    pub fn definitely_not_written(&self) -> bool {
        !matches!(self, Error::PossiblyWritten { .. })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
