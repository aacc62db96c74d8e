//! What a JobManager did, as JSON lines in a file of its own: leadership gained and lost,
//! jobs started and finished, checkpoints acknowledged, recoveries, fenced-out writes.
//! The nemesis test (`cli/tests/nemesis.rs`) reads the files of all its processes and
//! checks them against each other.
//!
//! Every line carries `CLOCK_MONOTONIC` in nanoseconds (`mono_ns`; one clock for all
//! processes of a machine, it does not jump and keeps counting while a process is
//! stopped) and the wall clock (`wall_ms`). Step-down deadlines, which the runtime keeps
//! as `Instant`s, are written on the same monotonic scale (`*_ns`). Each line is one
//! `write` on a file opened for appending, unbuffered, so a SIGKILL loses at most the
//! line being written and never interleaves two.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// One thing a JobManager did. `epoch` is the fence epoch of the grant it acted under.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The process started contending.
    Started,
    /// Leadership granted; the process may act until `valid_until_ns` unless it renews.
    Granted {
        /// The grant's session id.
        session: String,
        /// The fence epoch of the grant.
        epoch: u64,
        /// The step-down deadline (`CLOCK_MONOTONIC`, ns); `None` if none was known then.
        valid_until_ns: Option<u64>,
    },
    /// A renewal moved the step-down deadline.
    Renewed {
        /// The grant's session id.
        session: String,
        /// The new step-down deadline (`CLOCK_MONOTONIC`, ns).
        valid_until_ns: u64,
    },
    /// The grant is over (revoked, expired, given up or released); the process's jobs
    /// were stopped before this line.
    Revoked {
        /// The grant's session id.
        session: String,
    },
    /// The process gives up the grant (it could not take up its jobs): written after its
    /// jobs stopped and before the lock is released.
    GaveUp {
        /// The grant's session id.
        session: String,
    },
    /// The job's ConfigMap was claimed for `epoch`: from here on, no lower epoch writes it.
    JobClaimed {
        /// The job id.
        job: String,
        /// The fence epoch of the grant.
        epoch: u64,
    },
    /// A job was submitted (its plan written). Decided on at `acted_ns`, after a lease
    /// check against `valid_until_ns`, as every leader action.
    JobSubmitted {
        /// The job id.
        job: String,
        /// The fence epoch of the grant.
        epoch: u64,
        /// When the action was decided on (`CLOCK_MONOTONIC`, ns).
        acted_ns: u64,
        /// The step-down deadline at that moment (`CLOCK_MONOTONIC`, ns).
        valid_until_ns: u64,
    },
    /// A job was recovered from `checkpoint` (`None`: it had none) and starts running.
    Recovered {
        /// The job id.
        job: String,
        /// The fence epoch of the grant.
        epoch: u64,
        /// The id of the checkpoint it resumes from; `None` if it had none.
        checkpoint: Option<u64>,
        /// When the action was decided on (`CLOCK_MONOTONIC`, ns).
        acted_ns: u64,
        /// The step-down deadline at that moment (`CLOCK_MONOTONIC`, ns).
        valid_until_ns: u64,
    },
    /// The counter gave `id` to a checkpoint about to be added (written before the add,
    /// so a process killed during the add still leaves the id behind). The increment was
    /// decided on at `sent_ns`: a process frozen after the increment landed writes this
    /// line late, so order by `sent_ns`, not by the line's time.
    CheckpointStarted {
        /// The job id.
        job: String,
        /// The fence epoch of the grant.
        epoch: u64,
        /// The checkpoint id.
        id: u64,
        /// When the counter increment was decided on (`CLOCK_MONOTONIC`, ns).
        sent_ns: u64,
    },
    /// Checkpoint `id` is in the job's ConfigMap, pointing at `path`. The write was
    /// decided on at `sent_ns` (after the lease check, before the counter increment).
    CheckpointAcked {
        /// The job id.
        job: String,
        /// The fence epoch of the grant.
        epoch: u64,
        /// The checkpoint id.
        id: u64,
        /// The payload the pointer names in `storageDir`.
        path: String,
        /// When the write was decided on (`CLOCK_MONOTONIC`, ns).
        sent_ns: u64,
        /// The step-down deadline at `sent_ns` (`CLOCK_MONOTONIC`, ns).
        valid_until_ns: u64,
    },
    /// A write for the job failed; `fenced` when a newer leader or epoch refused it.
    WriteFailed {
        /// The job id.
        job: String,
        /// The fence epoch of the grant.
        epoch: u64,
        /// Whether a newer leader or epoch refused the write.
        fenced: bool,
        /// The error, as text.
        error: String,
    },
    /// The job reached its end: its result and cleanup come next (they delete its
    /// checkpoints).
    JobEnding {
        /// The job id.
        job: String,
        /// The fence epoch of the grant.
        epoch: u64,
    },
    /// The job reached its end; its result is in the job-result store (dirty) and its
    /// cleanup ran (`cleaned`) or is left for the next leader.
    JobFinished {
        /// The job id.
        job: String,
        /// The fence epoch of the grant.
        epoch: u64,
        /// Whether the job's cleanup ran; if not, the next leader does it.
        cleaned: bool,
    },
    /// A cleanup a crash interrupted was finished.
    CleanupFinished {
        /// The job id.
        job: String,
        /// The fence epoch of the grant.
        epoch: u64,
    },
    /// An orphan sweep whose listing of the payload folder began at `listed_ns`
    /// deleted `deleted` (payload URIs); orphans younger than the minimum age stay.
    Swept {
        /// The fence epoch of the grant.
        epoch: u64,
        /// When the listing of the payload folder began (`CLOCK_MONOTONIC`, ns).
        listed_ns: u64,
        /// The URIs of the payloads deleted.
        deleted: Vec<String>,
        /// How many orphans were kept for being younger than the minimum age.
        young: usize,
    },
    /// The process stopped gracefully.
    Stopped,
}

/// One line of a history file: the event with both clocks and who wrote it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// `CLOCK_MONOTONIC` when the line was written, in ns.
    pub mono_ns: u64,
    /// The wall clock when the line was written, in ms since the Unix epoch.
    pub wall_ms: i64,
    /// The writing process's id.
    pub pid: u32,
    /// The writing process's identity in the lock (empty if not set).
    pub identity: String,
    /// What happened (its fields are flattened into the line).
    #[serde(flatten)]
    pub event: Event,
}

/// The history file of one process; cheap to clone. [`History::disabled`] records nothing.
#[derive(Clone, Default)]
pub struct History {
    file: Option<Arc<Mutex<File>>>,
    identity: String,
}

impl History {
    /// Appends to `path` (created if missing). The lines are signed by the identity
    /// [`History::for_identity`] gives.
    pub fn open(path: &Path) -> std::io::Result<History> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(History {
            file: Some(Arc::new(Mutex::new(file))),
            identity: String::new(),
        })
    }

    /// The same file, with the lines signed by `identity` (the process's identity in the
    /// lock).
    pub fn for_identity(&self, identity: &str) -> History {
        History {
            file: self.file.clone(),
            identity: identity.to_string(),
        }
    }

    /// Records nothing.
    pub fn disabled() -> History {
        History::default()
    }

    /// Whether this history writes to a file (`false` for [`History::disabled`]).
    pub fn is_enabled(&self) -> bool {
        self.file.is_some()
    }

    /// Appends one event. A history that cannot be written is logged, not fatal: it is
    /// a test aid, and the JobManager's work goes on.
    pub fn record(&self, event: Event) {
        let Some(file) = &self.file else { return };
        let line = Line {
            mono_ns: monotonic_ns(),
            wall_ms: crate::clock::wall_now().as_millisecond(),
            pid: std::process::id(),
            identity: self.identity.clone(),
            event,
        };
        let mut text = match serde_json::to_string(&line) {
            Ok(text) => text,
            Err(error) => return tracing::warn!(%error, "history line not serialized"),
        };
        text.push('\n');
        let written = match file.lock() {
            Ok(mut file) => file.write_all(text.as_bytes()),
            Err(_) => return,
        };
        if let Err(error) = written {
            tracing::warn!(%error, "history line not written");
        }
    }
}

/// `CLOCK_MONOTONIC` now, in nanoseconds.
pub fn monotonic_ns() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (now.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(now.tv_nsec as u64)
}

/// `instant` on the `CLOCK_MONOTONIC` scale of [`monotonic_ns`] (std's `Instant` reads
/// that clock on Linux, but keeps its value private).
pub fn instant_ns(instant: Instant) -> u64 {
    let (now_ns, now) = (monotonic_ns(), Instant::now());
    match instant.checked_duration_since(now) {
        Some(ahead) => now_ns.saturating_add(ahead.as_nanos() as u64),
        None => now_ns.saturating_sub(now.duration_since(instant).as_nanos() as u64),
    }
}
