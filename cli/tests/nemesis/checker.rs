//! The nemesis test's checker: reads what every JobManager wrote down (its history),
//! what the harness saw (faults, storage deletions) and the HA state left at the end,
//! and names each broken guarantee with the history lines that show it.
//!
//! | rule | the guarantee |
//! |---|---|
//! | a | a recovery restores a checkpoint at least as new as the newest acknowledged before its grant |
//! | b | no payload of a job's newest checkpoint is deleted (only subsumed ones, or an ended job's), and the orphan sweep deletes no acknowledged checkpoint's |
//! | c | leader intervals never overlap, and every leader action lies inside its own interval |
//! | d | no write of a deposed epoch is accepted after a newer epoch claimed the job |
//! | e | a job's checkpoint counter never repeats or goes back |
//! | f | a finished job is never started again |
//! | g | at the end nothing leaks: no marked key, no pointer without payload, no ended job's data, no payload without a pointer |
//!
//! Pure: the planted-violation tests at the end feed it made-up histories.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use flink_ha_runtime::history::{Event, Line};

/// One history line with where it came from (`jm-1.jsonl:42`), for explanations.
#[derive(Clone, Debug)]
pub struct Record {
    pub line: Line,
    pub source: String,
    pub text: String,
}

impl Record {
    fn cite(&self) -> String {
        format!("{}: {}", self.source, self.text)
    }
}

/// What the harness itself saw.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// DELETE requests the storage proxy forwarded: `CLOCK_MONOTONIC` ns and the object's
    /// URI (`s3://bucket/key`).
    pub storage_deletes: Vec<(u64, String)>,
}

/// The HA state after the run, with every JobManager stopped.
#[derive(Clone, Debug, Default)]
pub struct FinalState {
    /// Every pointer of every HA ConfigMap: (ConfigMap, key, payload URI, marked).
    pub pointers: Vec<(String, String, String, bool)>,
    /// The URIs of every object under the cluster's payload folder.
    pub payloads: BTreeSet<String>,
    /// Job ids with a job ConfigMap.
    pub job_config_maps: BTreeSet<String>,
    /// Job ids with an execution plan.
    pub plans: BTreeSet<String>,
    /// Job ids with a dirty entry in the job-result store.
    pub dirty_results: BTreeSet<String>,
    /// Job ids with a clean entry (with delete-on-commit off) or none left to see.
    pub clean_results: BTreeSet<String>,
}

/// One broken guarantee.
#[derive(Clone, Debug)]
pub struct Violation {
    pub rule: char,
    pub explanation: String,
    pub evidence: Vec<String>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "violation ({}): {}", self.rule, self.explanation)?;
        for line in &self.evidence {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}

/// A leader's interval: from its grant to the last step-down deadline it knew of.
#[derive(Clone, Debug)]
struct Interval<'a> {
    identity: &'a str,
    epoch: u64,
    start: u64,
    end: u64,
    granted: &'a Record,
    ended_by: &'a Record,
    /// When the process wrote that the grant was over, if it did.
    released: Option<u64>,
}

/// All the checks. `final_state` is `None` when the run could not read it.
pub fn check(history: &[Record], observed: &Observed, final_state: Option<&FinalState>) -> Vec<Violation> {
    let mut records: Vec<&Record> = history.iter().collect();
    records.sort_by_key(|r| r.line.mono_ns);
    let mut violations = Vec::new();
    let intervals = intervals(&records);
    recoveries_are_at_least_the_newest_acknowledged(&records, &intervals, &mut violations);
    newest_payloads_are_never_deleted(&records, observed, &mut violations);
    intervals_do_not_overlap(&records, &intervals, &mut violations);
    deposed_writes_are_refused(&records, &mut violations);
    counters_never_repeat(&records, &mut violations);
    finished_jobs_never_restart(&records, &mut violations);
    if let Some(state) = final_state {
        nothing_leaks(&records, state, &mut violations);
    }
    violations
}

/// Grants by (identity, epoch), each extended by every deadline its process recorded.
fn intervals<'a>(records: &[&'a Record]) -> Vec<Interval<'a>> {
    let mut intervals: Vec<Interval<'a>> = Vec::new();
    // The grant a session id belongs to (renewals name the session, actions the epoch).
    let mut by_session: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut by_epoch: BTreeMap<(&str, u64), usize> = BTreeMap::new();
    for record in records {
        let identity = record.line.identity.as_str();
        let mut extend = |index: Option<usize>, until: u64| {
            if let Some(interval) = index.and_then(|i| intervals.get_mut(i))
                && until > interval.end
            {
                interval.end = until;
                interval.ended_by = record;
            }
        };
        match &record.line.event {
            Event::Granted {
                session,
                epoch,
                valid_until_ns,
            } => {
                let index = intervals.len();
                intervals.push(Interval {
                    identity,
                    epoch: *epoch,
                    start: record.line.mono_ns,
                    end: valid_until_ns.unwrap_or(record.line.mono_ns),
                    granted: record,
                    ended_by: record,
                    released: None,
                });
                by_session.insert((identity, session.as_str()), index);
                by_epoch.insert((identity, *epoch), index);
            }
            Event::Renewed {
                session,
                valid_until_ns,
            } => extend(by_session.get(&(identity, session.as_str())).copied(), *valid_until_ns),
            // The process stopped acting here (its jobs stopped before the line), and a
            // release may hand the lock over before the deadline.
            Event::Revoked { session } | Event::GaveUp { session } => {
                if let Some(interval) = by_session
                    .get(&(identity, session.as_str()))
                    .and_then(|&i| intervals.get_mut(i))
                {
                    interval.released = Some(interval.released.unwrap_or(record.line.mono_ns));
                }
            }
            Event::JobSubmitted {
                epoch, valid_until_ns, ..
            }
            | Event::Recovered {
                epoch, valid_until_ns, ..
            }
            | Event::CheckpointAcked {
                epoch, valid_until_ns, ..
            } => extend(by_epoch.get(&(identity, *epoch)).copied(), *valid_until_ns),
            _ => {}
        }
    }
    // An interval ends at its last deadline, or earlier where the process said it stopped.
    for interval in &mut intervals {
        if let Some(released) = interval.released {
            interval.end = interval.end.min(released.max(interval.start));
        }
    }
    intervals
}

/// The grant an action was taken under: the latest grant of its process with its epoch.
fn grant_of<'a, 'b>(intervals: &'b [Interval<'a>], record: &Record, epoch: u64) -> Option<&'b Interval<'a>> {
    intervals
        .iter()
        .filter(|i| i.identity == record.line.identity && i.epoch == epoch && i.start <= record.line.mono_ns)
        .max_by_key(|i| i.start)
}

/// (a)
fn recoveries_are_at_least_the_newest_acknowledged(
    records: &[&Record],
    intervals: &[Interval<'_>],
    violations: &mut Vec<Violation>,
) {
    for record in records {
        let Event::Recovered {
            job, epoch, checkpoint, ..
        } = &record.line.event
        else {
            continue;
        };
        let Some(grant) = grant_of(intervals, record, *epoch) else {
            violations.push(Violation {
                rule: 'a',
                explanation: format!(
                    "job {job} was recovered under epoch {epoch}, which its process was never granted"
                ),
                evidence: vec![record.cite()],
            });
            continue;
        };
        let newest = records
            .iter()
            .filter(|r| r.line.mono_ns < grant.start)
            .filter_map(|r| match &r.line.event {
                Event::CheckpointAcked { job: j, id, .. } if j == job => Some((*id, *r)),
                _ => None,
            })
            .max_by_key(|(id, _)| *id);
        if let Some((newest, acked)) = newest
            && checkpoint.is_none_or(|restored| restored < newest)
        {
            violations.push(Violation {
                rule: 'a',
                explanation: format!(
                    "job {job} was recovered at {} though checkpoint {newest} was acknowledged before the grant",
                    checkpoint.map_or("no checkpoint".to_string(), |c| format!("checkpoint {c}"))
                ),
                evidence: vec![acked.cite(), grant.granted.cite(), record.cite()],
            });
        }
    }
}

/// (b) A deletion of checkpoint N's payload is sound once the job has a newer checkpoint
/// (its id was handed out before the deletion) or the job is ending.
fn newest_payloads_are_never_deleted(records: &[&Record], observed: &Observed, violations: &mut Vec<Violation>) {
    let mut checkpoint_of_path: BTreeMap<&str, (&str, u64, &Record)> = BTreeMap::new();
    for record in records {
        if let Event::CheckpointAcked { job, id, path, .. } = &record.line.event {
            checkpoint_of_path.insert(path.as_str(), (job.as_str(), *id, record));
        }
    }
    for (deleted_at, uri) in &observed.storage_deletes {
        let Some(&(job, id, acked)) = checkpoint_of_path.get(uri.as_str()) else {
            continue;
        };
        let superseded = records.iter().any(|r| {
            r.line.mono_ns < *deleted_at
                && match &r.line.event {
                    Event::CheckpointStarted { job: j, id: newer, .. } => j == job && *newer > id,
                    Event::JobEnding { job: j, .. } => j == job,
                    _ => false,
                }
        });
        if !superseded {
            violations.push(Violation {
                rule: 'b',
                explanation: format!(
                    "the payload of checkpoint {id} of job {job} was deleted while it was the job's newest ({uri})"
                ),
                evidence: vec![
                    acked.cite(),
                    format!("storage proxy: DELETE {uri} at mono {deleted_at}"),
                ],
            });
        }
    }
    // The sweep deletes only what no pointer named; an acknowledged checkpoint had one,
    // and its removal deletes the payload before the pointer: never the sweep's.
    for record in records {
        if let Event::Swept { deleted, .. } = &record.line.event {
            for uri in deleted {
                if let Some(&(job, id, acked)) = checkpoint_of_path.get(uri.as_str()) {
                    violations.push(Violation {
                        rule: 'b',
                        explanation: format!(
                            "the orphan sweep deleted the payload of acknowledged checkpoint {id} of job {job} ({uri})"
                        ),
                        evidence: vec![acked.cite(), record.cite()],
                    });
                }
            }
        }
    }
}

/// (c)
fn intervals_do_not_overlap(records: &[&Record], intervals: &[Interval<'_>], violations: &mut Vec<Violation>) {
    let mut sorted: Vec<&Interval<'_>> = intervals.iter().collect();
    sorted.sort_by_key(|i| i.start);
    for (index, earlier) in sorted.iter().enumerate() {
        for later in &sorted[index + 1..] {
            if later.identity != earlier.identity && later.start < earlier.end {
                violations.push(Violation {
                    rule: 'c',
                    explanation: format!(
                        "two leaders at once: {} (epoch {}) could act until {:.3} s after {} (epoch {}) was granted",
                        short(earlier.identity),
                        earlier.epoch,
                        (earlier.end - later.start) as f64 / 1e9,
                        short(later.identity),
                        later.epoch
                    ),
                    evidence: vec![earlier.granted.cite(), earlier.ended_by.cite(), later.granted.cite()],
                });
            }
        }
    }
    for record in records {
        let (epoch, acted, until) = match &record.line.event {
            Event::JobSubmitted {
                epoch,
                acted_ns,
                valid_until_ns,
                ..
            }
            | Event::Recovered {
                epoch,
                acted_ns,
                valid_until_ns,
                ..
            } => (*epoch, *acted_ns, *valid_until_ns),
            Event::CheckpointAcked {
                epoch,
                sent_ns,
                valid_until_ns,
                ..
            } => (*epoch, *sent_ns, *valid_until_ns),
            _ => continue,
        };
        let inside = grant_of(intervals, record, epoch).is_some_and(|grant| grant.start <= acted && acted < until);
        if !inside {
            violations.push(Violation {
                rule: 'c',
                explanation: format!(
                    "a leader action of {} under epoch {epoch} lies outside its interval",
                    short(&record.line.identity)
                ),
                evidence: vec![record.cite()],
            });
        }
    }
}

/// (d)
fn deposed_writes_are_refused(records: &[&Record], violations: &mut Vec<Violation>) {
    let mut claims: BTreeMap<&str, Vec<(u64, u64, &Record)>> = BTreeMap::new();
    for record in records {
        if let Event::JobClaimed { job, epoch } = &record.line.event {
            claims
                .entry(job.as_str())
                .or_default()
                .push((record.line.mono_ns, *epoch, record));
        }
    }
    for record in records {
        let Event::CheckpointAcked {
            job,
            epoch,
            sent_ns,
            id,
            ..
        } = &record.line.event
        else {
            continue;
        };
        let newer = claims
            .get(job.as_str())
            .into_iter()
            .flatten()
            .find(|(claimed_at, claimed_epoch, _)| claimed_epoch > epoch && claimed_at < sent_ns);
        if let Some((_, newer_epoch, claim)) = newer {
            violations.push(Violation {
                rule: 'd',
                explanation: format!(
                    "checkpoint {id} of job {job} was accepted from epoch {epoch} after epoch {newer_epoch} claimed the job"
                ),
                evidence: vec![claim.cite(), record.cite()],
            });
        }
    }
}

/// (e) Ids are unique per job, and grow in the order the increments were decided on
/// (`sent_ns`: a process frozen after its increment landed records it late).
fn counters_never_repeat(records: &[&Record], violations: &mut Vec<Violation>) {
    let mut by_job: BTreeMap<&str, Vec<(u64, u64, &Record)>> = BTreeMap::new();
    for record in records {
        if let Event::CheckpointStarted { job, id, sent_ns, .. } = &record.line.event {
            by_job.entry(job.as_str()).or_default().push((*sent_ns, *id, record));
        }
    }
    for (job, mut started) in by_job {
        let mut seen: BTreeMap<u64, &Record> = BTreeMap::new();
        for (_, id, record) in &started {
            if let Some(first) = seen.insert(*id, record) {
                violations.push(Violation {
                    rule: 'e',
                    explanation: format!("job {job}'s counter handed out {id} twice"),
                    evidence: vec![first.cite(), record.cite()],
                });
            }
        }
        started.sort_by_key(|(sent_ns, id, _)| (*sent_ns, *id));
        for pair in started.windows(2) {
            let [(_, earlier_id, earlier), (_, id, record)] = pair else {
                continue;
            };
            if id < earlier_id {
                violations.push(Violation {
                    rule: 'e',
                    explanation: format!("job {job}'s counter handed out {id} after {earlier_id}"),
                    evidence: vec![earlier.cite(), record.cite()],
                });
            }
        }
    }
}

/// (f)
fn finished_jobs_never_restart(records: &[&Record], violations: &mut Vec<Violation>) {
    let mut finished: BTreeMap<&str, &Record> = BTreeMap::new();
    for record in records {
        match &record.line.event {
            Event::JobFinished { job, .. } | Event::CleanupFinished { job, .. } => {
                finished.entry(job.as_str()).or_insert(record);
            }
            Event::Recovered { job, .. } | Event::JobSubmitted { job, .. } => {
                if let Some(ended) = finished.get(job.as_str()) {
                    violations.push(Violation {
                        rule: 'f',
                        explanation: format!("job {job} was started again after it finished"),
                        evidence: vec![ended.cite(), record.cite()],
                    });
                }
            }
            _ => {}
        }
    }
}

/// (g)
fn nothing_leaks(records: &[&Record], state: &FinalState, violations: &mut Vec<Violation>) {
    let mut leak = |explanation: String, evidence: Vec<String>| {
        violations.push(Violation {
            rule: 'g',
            explanation,
            evidence,
        })
    };
    for (config_map, key, path, marked) in &state.pointers {
        if *marked {
            leak(
                format!("{config_map} still holds the marked key {key} after the run"),
                vec![format!("{key}: {path}")],
            );
        }
        if !state.payloads.contains(path) {
            leak(
                format!("{config_map}/{key} points at a payload that does not exist"),
                vec![path.clone()],
            );
        }
    }
    let ended: BTreeSet<&str> = records
        .iter()
        .filter_map(|r| match &r.line.event {
            Event::JobFinished { job, .. } | Event::CleanupFinished { job, .. } => Some(job.as_str()),
            _ => None,
        })
        .chain(state.dirty_results.iter().map(String::as_str))
        .chain(state.clean_results.iter().map(String::as_str))
        .collect();
    for job in ended {
        if state.dirty_results.contains(job) {
            leak(
                format!("job {job} ended but its cleanup never finished (dirty result)"),
                vec![],
            );
        }
        if state.job_config_maps.contains(job) {
            leak(format!("job {job} ended but its job ConfigMap is still there"), vec![]);
        }
        if state.plans.contains(job) {
            leak(format!("job {job} ended but its execution plan is still there"), vec![]);
        }
    }
    // A payload no pointer names: written by an add whose outcome its writer never
    // learned (a kill, a lost answer it could not settle). The leader's orphan sweep
    // removes it, and the harness stops the run only after a sweep that saw every such
    // payload old enough: one left is a leak.
    let referenced: BTreeSet<&str> = state.pointers.iter().map(|(_, _, path, _)| path.as_str()).collect();
    let orphans: Vec<&String> = state
        .payloads
        .iter()
        .filter(|p| !referenced.contains(p.as_str()))
        .collect();
    if !orphans.is_empty() {
        leak(
            format!(
                "{} payloads no pointer names are left after the last orphan sweep",
                orphans.len()
            ),
            orphans.iter().map(|p| p.to_string()).collect(),
        );
    }
}

fn short(identity: &str) -> &str {
    identity.get(..8).unwrap_or(identity)
}

/// The number of violations per rule, `a=0 b=1 ...` style, for the summary line.
pub fn summary(violations: &[Violation]) -> String {
    let mut text = String::new();
    for rule in 'a'..='g' {
        let count = violations.iter().filter(|v| v.rule == rule).count();
        if count > 0 {
            let _ = write!(text, " {rule}={count}");
        }
    }
    text
}

#[cfg(test)]
mod planted {
    //! Each rule, shown to catch its violation: a sound history passes, and one change
    //! that breaks exactly one guarantee is named by that rule.

    use super::*;

    const S: u64 = 1_000_000_000;

    struct Builder {
        records: Vec<Record>,
    }

    impl Builder {
        fn new() -> Builder {
            Builder { records: Vec::new() }
        }

        fn at(&mut self, seconds: f64, identity: &str, event: Event) -> &mut Builder {
            let line = Line {
                mono_ns: (seconds * S as f64) as u64,
                wall_ms: 0,
                pid: 1,
                identity: identity.to_string(),
                event,
            };
            let text = serde_json::to_string(&line).expect("serializes");
            let source = format!("{identity}.jsonl:{}", self.records.len() + 1);
            self.records.push(Record { line, source, text });
            self
        }
    }

    fn ns(seconds: f64) -> u64 {
        (seconds * S as f64) as u64
    }

    fn granted(epoch: u64, until: f64) -> Event {
        Event::Granted {
            session: format!("session-{epoch}"),
            epoch,
            valid_until_ns: Some(ns(until)),
        }
    }

    fn recovered(epoch: u64, checkpoint: Option<u64>, at: f64, until: f64) -> Event {
        Event::Recovered {
            job: "j".into(),
            epoch,
            checkpoint,
            acted_ns: ns(at),
            valid_until_ns: ns(until),
        }
    }

    /// Checkpoint `id` taken from the counter; decided on just before the line's time.
    fn started(epoch: u64, id: u64, at: f64) -> Event {
        Event::CheckpointStarted {
            job: "j".into(),
            epoch,
            id,
            sent_ns: ns(at),
        }
    }

    fn acked(epoch: u64, id: u64, at: f64, until: f64) -> Event {
        Event::CheckpointAcked {
            job: "j".into(),
            epoch,
            id,
            path: format!("s3://b/ha/c/completedCheckpoint{id}"),
            sent_ns: ns(at),
            valid_until_ns: ns(until),
        }
    }

    fn claimed(epoch: u64) -> Event {
        Event::JobClaimed { job: "j".into(), epoch }
    }

    /// A sound history: A leads (epoch 1), checkpoints 1 and 2, is killed; B is granted
    /// after A's deadline (epoch 2), recovers 2, checkpoints 3 (deleting 1's payload).
    fn sound() -> (Builder, Observed, FinalState) {
        let mut b = Builder::new();
        b.at(1.0, "A", granted(1, 3.0))
            .at(1.1, "A", claimed(1))
            .at(1.2, "A", recovered(1, None, 1.15, 3.0))
            .at(1.3, "A", started(1, 1, 1.3))
            .at(1.4, "A", acked(1, 1, 1.3, 3.0))
            .at(2.0, "A", started(1, 2, 2.0))
            .at(2.1, "A", acked(1, 2, 2.0, 3.0))
            .at(5.0, "B", granted(2, 7.0))
            .at(5.1, "B", claimed(2))
            .at(5.2, "B", recovered(2, Some(2), 5.15, 7.0))
            .at(5.3, "B", started(2, 3, 5.3))
            .at(5.5, "B", acked(2, 3, 5.3, 7.0));
        let observed = Observed {
            storage_deletes: vec![(ns(5.4), "s3://b/ha/c/completedCheckpoint1".into())],
        };
        let state = FinalState {
            pointers: vec![
                (
                    "c-j-config-map".into(),
                    "checkpointID-2".into(),
                    "s3://b/ha/c/completedCheckpoint2".into(),
                    false,
                ),
                (
                    "c-j-config-map".into(),
                    "checkpointID-3".into(),
                    "s3://b/ha/c/completedCheckpoint3".into(),
                    false,
                ),
            ],
            payloads: [
                "s3://b/ha/c/completedCheckpoint2".to_string(),
                "s3://b/ha/c/completedCheckpoint3".to_string(),
            ]
            .into(),
            job_config_maps: ["j".to_string()].into(),
            plans: ["j".to_string()].into(),
            ..FinalState::default()
        };
        (b, observed, state)
    }

    fn rules(b: &Builder, observed: &Observed, state: &FinalState) -> Vec<char> {
        let violations = check(&b.records, observed, Some(state));
        for violation in &violations {
            eprint!("{violation}");
        }
        let mut rules: Vec<char> = violations.iter().map(|v| v.rule).collect();
        rules.dedup();
        rules
    }

    #[test]
    fn a_sound_history_has_no_violation() {
        let (b, observed, state) = sound();
        assert_eq!(rules(&b, &observed, &state), Vec::<char>::new());
    }

    #[test]
    fn a_recovery_older_than_an_acknowledged_checkpoint_is_a() {
        let (mut b, observed, state) = sound();
        // B restores checkpoint 1 though 2 was acknowledged before its grant.
        b.records[9].line.event = recovered(2, Some(1), 5.15, 7.0);
        assert_eq!(rules(&b, &observed, &state), ['a']);
        // And starting empty is the same violation.
        b.records[9].line.event = recovered(2, None, 5.15, 7.0);
        assert_eq!(rules(&b, &observed, &state), ['a']);
    }

    #[test]
    fn deleting_the_newest_payload_is_b() {
        let (b, mut observed, state) = sound();
        // Checkpoint 2's payload deleted before any newer id was handed out.
        observed
            .storage_deletes
            .push((ns(5.25), "s3://b/ha/c/completedCheckpoint2".into()));
        assert_eq!(rules(&b, &observed, &state), ['b']);
    }

    #[test]
    fn two_leaders_at_once_is_c() {
        let (mut b, observed, state) = sound();
        // A renewed until 6 s, but B was granted at 5 s.
        b.at(
            2.5,
            "A",
            Event::Renewed {
                session: "session-1".into(),
                valid_until_ns: ns(6.0),
            },
        );
        assert_eq!(rules(&b, &observed, &state), ['c']);
    }

    #[test]
    fn a_takeover_right_after_a_release_is_not_two_leaders() {
        let (mut b, observed, state) = sound();
        // A renewed until 6 s but gave the lock up at 4.9 s; B was granted at 5 s.
        b.at(
            2.5,
            "A",
            Event::Renewed {
                session: "session-1".into(),
                valid_until_ns: ns(6.0),
            },
        )
        .at(
            4.9,
            "A",
            Event::GaveUp {
                session: "session-1".into(),
            },
        );
        assert_eq!(rules(&b, &observed, &state), Vec::<char>::new());
        // Said after B's grant, it does not end A's interval in time.
        let last = b.records.len() - 1;
        b.records[last].line.mono_ns = ns(5.1);
        assert_eq!(rules(&b, &observed, &state), ['c']);
    }

    #[test]
    fn acting_past_the_deadline_is_c() {
        let (mut b, observed, state) = sound();
        // A's checkpoint 2 was decided on after its step-down deadline.
        b.records[6].line.event = acked(1, 2, 3.5, 3.0);
        assert_eq!(rules(&b, &observed, &state), ['c']);
    }

    #[test]
    fn an_accepted_write_of_a_deposed_epoch_is_d() {
        let (mut b, observed, state) = sound();
        // A late ack from epoch 1, sent after epoch 2 claimed the job (and inside a
        // deadline A believed in, so only (d) and (c)'s overlap see it).
        b.at(
            5.3,
            "A",
            Event::Renewed {
                session: "session-1".into(),
                valid_until_ns: ns(4.9),
            },
        );
        b.at(5.6, "A", started(1, 4, 5.2)).at(5.7, "A", acked(1, 4, 5.2, 5.3));
        let found = rules(&b, &observed, &state);
        assert!(found.contains(&'d'), "{found:?}");
    }

    #[test]
    fn a_repeated_checkpoint_id_is_e() {
        let (mut b, observed, state) = sound();
        b.records[10].line.event = started(2, 2, 5.3);
        b.records[11].line.event = acked(2, 2, 5.3, 7.0);
        assert_eq!(rules(&b, &observed, &state), ['e']);
    }

    #[test]
    fn a_counter_going_back_is_e_but_a_late_line_is_not() {
        // A, frozen after its increment to 3 landed at 4.0 s, writes the line at 6 s,
        // after B's 4 (decided at 5.3 s): sound, the ids grew in the order decided.
        let (mut b, observed, state) = sound();
        b.records[10].line.event = started(2, 4, 5.3);
        b.records[11].line.event = acked(2, 4, 5.3, 7.0);
        b.at(6.0, "A", started(1, 3, 4.0));
        let mut late = state.clone();
        late.pointers[1].2 = "s3://b/ha/c/completedCheckpoint4".into();
        late.payloads = [
            "s3://b/ha/c/completedCheckpoint2".to_string(),
            "s3://b/ha/c/completedCheckpoint4".to_string(),
        ]
        .into();
        assert_eq!(rules(&b, &observed, &late), Vec::<char>::new());
        // The same ids decided the other way round: the counter went back.
        let last = b.records.len() - 1;
        b.records[last].line.event = started(1, 3, 5.5);
        assert_eq!(rules(&b, &observed, &late), ['e']);
    }

    #[test]
    fn restarting_a_finished_job_is_f() {
        let (mut b, observed, mut state) = sound();
        b.records.truncate(7);
        b.at(
            2.2,
            "A",
            Event::JobEnding {
                job: "j".into(),
                epoch: 1,
            },
        )
        .at(
            2.5,
            "A",
            Event::JobFinished {
                job: "j".into(),
                epoch: 1,
                cleaned: true,
            },
        )
        .at(5.0, "B", granted(2, 7.0))
        .at(5.2, "B", recovered(2, Some(2), 5.15, 7.0));
        state.pointers.clear();
        state.payloads.clear();
        state.job_config_maps.clear();
        state.plans.clear();
        state.clean_results.insert("j".into());
        assert_eq!(rules(&b, &observed, &state), ['f']);
    }

    #[test]
    fn leftovers_after_the_run_are_g() {
        let (b, observed, state) = sound();
        let mut marked = state.clone();
        marked.pointers[0].3 = true;
        assert_eq!(rules(&b, &observed, &marked), ['g']);

        let mut dangling = state.clone();
        dangling.payloads.remove("s3://b/ha/c/completedCheckpoint3");
        assert_eq!(rules(&b, &observed, &dangling), ['g']);

        let mut ended = state.clone();
        ended.dirty_results.insert("j".into());
        assert_eq!(rules(&b, &observed, &ended), ['g']);

        // One payload no pointer names is a leak, whatever the faults: the last sweep
        // should have taken it.
        let mut orphan = state.clone();
        orphan.payloads.insert("s3://b/ha/c/completedCheckpointX".into());
        assert_eq!(rules(&b, &observed, &orphan), ['g']);
    }

    #[test]
    fn a_sweep_that_deletes_an_acknowledged_payload_is_b() {
        let (mut b, observed, state) = sound();
        // An orphan sweep may delete what no pointer named, never an acknowledged one.
        b.at(
            6.0,
            "B",
            Event::Swept {
                epoch: 2,
                listed_ns: ns(5.9),
                deleted: vec!["s3://b/ha/c/completedCheckpointX".into()],
                young: 0,
            },
        );
        assert_eq!(rules(&b, &observed, &state), Vec::<char>::new());
        b.at(
            6.5,
            "B",
            Event::Swept {
                epoch: 2,
                listed_ns: ns(6.4),
                deleted: vec!["s3://b/ha/c/completedCheckpoint2".into()],
                young: 0,
            },
        );
        assert_eq!(rules(&b, &observed, &state), ['b']);
    }
}
