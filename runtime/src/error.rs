//! The runtime's errors. What a caller must tell apart is in the variants: a write that
//! definitely did not happen, one that possibly did (never delete its payload then), and
//! a write refused because this process no longer leads.

use std::time::Duration;

/// Everything that can go wrong in the runtime, split by what the caller must do next.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The compare-and-set lost every attempt to concurrent writers.
    #[error("ConfigMap {name}: still conflicting after {attempts} attempts")]
    Conflict {
        /// The ConfigMap's name.
        name: String,
        /// How many compare-and-set attempts were made.
        attempts: u32,
    },
    /// A write was sent and its outcome is unknown (timeout, connection lost, 5xx):
    /// the change may be in the ConfigMap. Payloads it points to must be kept. Whatever
    /// happened after the unknown outcome (a conflict, a fence that moved on) does not
    /// turn it into "not written": only a read that proves the change absent does.
    #[error("ConfigMap {name}: the write may or may not have happened ({reason})")]
    PossiblyWritten {
        /// The ConfigMap's name.
        name: String,
        /// Why the outcome is unknown, and what happened after.
        reason: String,
        /// The resourceVersions the unanswered writes were conditioned on. Once the
        /// ConfigMap has moved past all of them without the change, none of those
        /// writes can land any more (every write is a compare-and-set).
        unanswered_versions: Vec<String>,
    },
    /// A write whose outcome was unknown, proven absent by reading the ConfigMap back:
    /// the ConfigMap moved past every version the write was conditioned on without it.
    #[error("ConfigMap {name}: not written ({reason})")]
    NotWritten {
        /// The ConfigMap's name.
        name: String,
        /// Why the outcome was first unknown.
        reason: String,
    },
    /// The leadership check in the same write failed: the lock names someone else (or
    /// the job's fencing epoch moved on). Nothing was written.
    #[error("ConfigMap {name}: not written, this process does not lead ({reason})")]
    NotLeader {
        /// The ConfigMap's name.
        name: String,
        /// Who holds the lock or the job instead, in words.
        reason: String,
    },
    /// The ConfigMap does not exist (and the operation does not create it).
    #[error("ConfigMap {name} does not exist")]
    Missing {
        /// The ConfigMap's name.
        name: String,
    },
    /// Data in a ConfigMap is not what this key must hold; nothing was written.
    #[error("ConfigMap {name}: key `{key}` is corrupt: {reason}")]
    Corrupt {
        /// The ConfigMap's name.
        name: String,
        /// The data key that holds the bad value.
        key: String,
        /// What is wrong with the value.
        reason: String,
    },
    /// The API server refused or could not be reached before anything was sent.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A request did not finish in time (and was not a write).
    #[error("{what}: no answer from the API server within {waited:?}")]
    Timeout {
        /// The request that timed out, in words.
        what: String,
        /// How long it was given.
        waited: Duration,
    },
    /// The key exists with another value: an add never overwrites a live entry.
    #[error("ConfigMap {name}: `{key}` already holds another entry")]
    AlreadyExists {
        /// The ConfigMap's name.
        name: String,
        /// The data key that already holds another entry.
        key: String,
    },
    /// Reading or writing a payload in storageDir failed.
    #[error("storageDir: {0}")]
    Storage(String),
    /// The object store answered a payload request with an error.
    #[error("storageDir: cannot {what}: {source}")]
    StorageIo {
        /// What the request tried to do, in words (for example which payload it read).
        what: String,
        /// The object store's error.
        #[source]
        source: object_store::Error,
    },
    /// A pointer names a payload that the object store says does not exist.
    #[error("storageDir: the payload {path} does not exist")]
    PayloadMissing {
        /// The payload's path in `storageDir`, as the pointer names it.
        path: String,
    },
    /// The newest checkpoint's pointer names a payload that storage says does not exist.
    /// The recovery fails, as Flink's does, rather than roll the job back to an older
    /// checkpoint without anyone deciding it; that takes the operator's explicit choice
    /// ([`crate::checkpoint_store::MissingCheckpoint::FallBackToOlder`]).
    #[error(
        "ConfigMap {name}: the newest checkpoint `{key}` points to {uri}, which storageDir does not have; the job is not recovered from an older checkpoint unless that is chosen explicitly (flink-ha jobmanager --recover-from-older-checkpoint)"
    )]
    CheckpointPayloadMissing {
        /// The job ConfigMap's name.
        name: String,
        /// The checkpoint's key in it.
        key: String,
        /// The payload URI its pointer names.
        uri: String,
    },
    /// An action bounded by this leader's lease (a payload or job-result write or delete
    /// that no compare-and-set guards) was still unanswered at the lease's step-down
    /// moment and was cut off there: it may or may not have taken effect.
    #[error("{what}: cut off at the end of this leader's lease; it may or may not have taken effect")]
    CutOff {
        /// The action, in words.
        what: String,
    },
    /// Adding the entry would take the ConfigMap past Kubernetes' limit of 1 MiB of
    /// entries: refused before the write (which the API server would reject, naming no
    /// key), and the entry's payload is deleted. The ConfigMap holds too many entries:
    /// fewer retained checkpoints, or fewer jobs in one cluster.
    #[error(
        "ConfigMap {name}: adding `{key}` would make its entries {bytes} bytes, past Kubernetes' limit of {limit}; nothing was written"
    )]
    ConfigMapTooLarge {
        /// The ConfigMap's name.
        name: String,
        /// The key whose entry did not fit.
        key: String,
        /// What its keys and values would have come to, in bytes.
        bytes: usize,
        /// The limit, in bytes.
        limit: usize,
    },
    /// An operation that would lose data the caller did not mean to lose.
    #[error("refused: {0}")]
    Refused(String),
    /// The cluster runs jobs this runtime cannot read: plans in Flink's own format
    /// (Java-serialized handles) or entries that do not parse. They are left untouched;
    /// a JobManager that can read them must lead.
    #[error(
        "ConfigMap {name} holds plans this JobManager cannot read ({}): a Flink JobManager's (Java-serialized) or corrupt; they are left untouched for a JobManager that can run them",
        keys.join(", ")
    )]
    UnreadablePlans {
        /// The ConfigMap's name.
        name: String,
        /// The data keys whose plans cannot be read.
        keys: Vec<String>,
    },
    /// The configuration is not one the runtime can run with.
    #[error("configuration: {0}")]
    Config(String),
}

impl Error {
    /// Whether a storage failure may pass if the request is tried again (a lost
    /// connection, a 5xx, a timeout), as opposed to an answer that will not change (the
    /// object is missing, access is denied, the path is invalid).
    pub fn is_transient_storage_error(&self) -> bool {
        use object_store::Error as E;
        match self {
            Error::StorageIo { source, .. } => !matches!(
                source,
                E::NotFound { .. }
                    | E::PermissionDenied { .. }
                    | E::Unauthenticated { .. }
                    | E::InvalidPath { .. }
                    | E::NotSupported { .. }
                    | E::NotImplemented { .. }
                    | E::AlreadyExists { .. }
                    | E::Precondition { .. }
                    | E::UnknownConfigurationKey { .. }
            ),
            _ => false,
        }
    }
}

/// The runtime's `Result`, with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
