//! Bugs planted on purpose, for the nemesis test's mutation check — never in a release.
//!
//! The nemesis checker (`cli/tests/nemesis/checker.rs`) is only worth its green runs if
//! it turns red when a guarantee breaks. Each [`Bug`] here removes one safeguard of the
//! runtime; the mutation check (`cli/tests/nemesis.rs`) runs the cluster with one of
//! them switched on and requires the checker to name it.
//!
//! The code exists only with the test-only cargo feature `planted-bugs` (the CLI's
//! tests turn it on; `cargo build` and the image do not), and even then a bug is on only
//! when the environment variable [`PLANTED_BUG_ENV`] names it. Without the feature,
//! [`planted`] is a constant `false` and the compiler removes every branch on it.

/// The environment variable that switches one planted bug on (feature `planted-bugs`).
pub const PLANTED_BUG_ENV: &str = "FLINK_HA_PLANTED_BUG";

/// One safeguard removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// Writes to a job ConfigMap skip the fence check: a deposed leader's write lands.
    NoFence,
    /// Recovery takes the second-newest retained checkpoint.
    OlderCheckpoint,
    /// The orphan sweep ignores the folder's owner marker and the owner in payload names.
    SweepAnyOwner,
    /// A job's cleanup writes no job-result entry.
    NoJobResult,
    /// A renewal's step-down deadline is measured from its answer, not from its send.
    StepDownFromAnswer,
    /// A job's cleanup deletes its HA data first and writes its job-result entry last.
    CleanupBeforeResult,
}

impl Bug {
    /// Every planted bug.
    pub const ALL: [Bug; 6] = [
        Bug::NoFence,
        Bug::OlderCheckpoint,
        Bug::SweepAnyOwner,
        Bug::NoJobResult,
        Bug::StepDownFromAnswer,
        Bug::CleanupBeforeResult,
    ];

    /// The name [`PLANTED_BUG_ENV`] takes.
    pub fn name(self) -> &'static str {
        match self {
            Bug::NoFence => "no-fence",
            Bug::OlderCheckpoint => "older-checkpoint",
            Bug::SweepAnyOwner => "sweep-any-owner",
            Bug::NoJobResult => "no-job-result",
            Bug::StepDownFromAnswer => "step-down-from-answer",
            Bug::CleanupBeforeResult => "cleanup-before-result",
        }
    }

    /// The bug named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|bug| bug.name() == name)
    }
}

/// Whether `bug` is switched on in this process.
#[cfg(feature = "planted-bugs")]
pub fn planted(bug: Bug) -> bool {
    static ON: std::sync::OnceLock<Option<Bug>> = std::sync::OnceLock::new();
    let on = *ON.get_or_init(|| {
        let name = std::env::var(PLANTED_BUG_ENV).ok()?;
        let bug = Bug::from_name(name.trim());
        match bug {
            Some(bug) => tracing::error!(
                bug = bug.name(),
                "a bug is planted in this process on purpose (nemesis mutation check)"
            ),
            None => tracing::error!(%name, "{PLANTED_BUG_ENV} names no planted bug; none is on"),
        }
        bug
    });
    on == Some(bug)
}

/// Whether `bug` is switched on in this process: never, without the feature.
#[cfg(not(feature = "planted-bugs"))]
#[inline(always)]
pub fn planted(_bug: Bug) -> bool {
    false
}
