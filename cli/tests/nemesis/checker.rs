//! The nemesis test's checker: reads what every JobManager wrote down (its history),
//! what the harness itself saw (every ConfigMap version the API server stored, every
//! write the storage proxies forwarded with the server's answer) and the HA state left
//! at the end, and names each broken guarantee with the lines that show it.
//!
//! | rule | the guarantee | judged from |
//! |---|---|---|
//! | a | a recovery restores a checkpoint at least as new as the newest acknowledged before its grant | histories |
//! | b | no payload is deleted while a pointer names it unmarked, nor a checkpoint's before a newer one's pointer is stored, unless its job's result is durable | storage proxy, ConfigMap watch |
//! | c | leader intervals never overlap | histories |
//! | d | a job ConfigMap's fence never goes down, and every checkpoint pointer lands on a version fenced by the epoch that wrote its payload | ConfigMap watch, storage proxy |
//! | e | a job's checkpoint counter never repeats or goes back | histories |
//! | f | a job whose result is durable (or that finished) is never started again | storage proxy, histories |
//! | g | at the end nothing leaks: no marked key, no pointer without payload, no ended job's data, no payload without a pointer | final state |
//! | h | every job acknowledged and not ended is recovered by every later leader before it submits a new one, and keeps its plan and job ConfigMap | histories, storage proxy, final state |
//!
//! Version 1 also checked that every leader action lay inside its own interval; the
//! history wrote the very two values that check compared after the runtime had compared
//! them, so it could not fail and is gone. The fence is judged from the API server's
//! versions instead (d). The tests of `mod planted` at the end feed made-up runs and show
//! each rule fails on its violation; the mutation check in `nemesis.rs` shows the rules
//! name bugs planted in the real runtime.
//!
//! Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use flink_ha_runtime::history::{Event, Line};

use crate::proxy::StorageOp;
use crate::watch::{CmVersion, Watched};

/// A payload stored within this much of a ConfigMap version the watch received later
/// still counts as "after" it: the watch lags the API server's answer by milliseconds.
const WATCH_SLACK_NS: u64 = 500_000_000;

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
    /// Every write the storage proxies forwarded, with the server's answer.
    pub storage: Vec<StorageOp>,
    /// Every ConfigMap version the API server stored, from the harness's own watch.
    pub config_maps: Watched,
    /// Payload URIs the nemesis itself destroyed (lost objects): their jobs may fail.
    pub lost: BTreeSet<String>,
}

/// What a payload says of itself (the fake JobManager writes JSON naming its job, the
/// checkpoint id for a checkpoint, and the writer's epoch).
#[derive(Clone, Debug)]
struct PayloadInfo<'a> {
    job: String,
    checkpoint: Option<u64>,
    epoch: u64,
    put: &'a StorageOp,
}

/// The evidence the external rules share, indexed once.
struct Evidence<'a> {
    /// Payload URI to what its (first successful) PUT said.
    payloads: BTreeMap<&'a str, PayloadInfo<'a>>,
    /// Job id to when its dirty job-result entry was durable (the server's answer).
    results: BTreeMap<String, u64>,
    /// ConfigMap versions by (namespace, name), in the order stored.
    versions: BTreeMap<(&'a str, &'a str), Vec<&'a CmVersion>>,
    /// Whether a watch lost versions (a relist): pointer-based rules are then lenient.
    gaps: bool,
}

impl<'a> Evidence<'a> {
    fn of(observed: &'a Observed) -> Evidence<'a> {
        let mut payloads = BTreeMap::new();
        let mut results = BTreeMap::new();
        for op in observed.storage.iter().filter(|op| op.succeeded()) {
            if op.method != "PUT" {
                continue;
            }
            if let Some(job) = op.uri.rsplit('/').next().and_then(|f| f.strip_suffix("_DIRTY.json")) {
                results.entry(job.to_string()).or_insert(op.answered_ns);
                continue;
            }
            let Some(body) = &op.body else { continue };
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
                continue;
            };
            let (Some(job), Some(epoch)) = (value["job"].as_str(), value["epoch"].as_u64()) else {
                continue;
            };
            payloads.entry(op.uri.as_str()).or_insert(PayloadInfo {
                job: job.to_string(),
                checkpoint: value["checkpoint"].as_u64(),
                epoch,
                put: op,
            });
        }
        let mut versions: BTreeMap<(&str, &str), Vec<&CmVersion>> = BTreeMap::new();
        for version in &observed.config_maps.versions {
            versions
                .entry((version.namespace.as_str(), version.name.as_str()))
                .or_default()
                .push(version);
        }
        Evidence {
            payloads,
            results,
            versions,
            gaps: !observed.config_maps.gaps.is_empty(),
        }
    }

    /// When `job`'s result was durable, if it was.
    fn result_at(&self, job: &str) -> Option<u64> {
        self.results.get(job).copied()
    }
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
    /// Orphans may stay: this cluster never swept (another cluster's owner marker holds
    /// the folder they share, and the sweep refuses it).
    pub orphans_may_stay: bool,
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
    let evidence = Evidence::of(observed);
    recoveries_are_at_least_the_newest_acknowledged(&records, &intervals, &mut violations);
    no_live_payload_is_deleted(&records, &evidence, observed, &mut violations);
    intervals_do_not_overlap(&intervals, &mut violations);
    fences_only_rise_and_name_the_writer(&evidence, &mut violations);
    counters_never_repeat(&records, &mut violations);
    finished_jobs_never_restart(&records, &intervals, &evidence, &mut violations);
    if let Some(state) = final_state {
        nothing_leaks(&records, state, &observed.lost, &mut violations);
    }
    live_jobs_are_always_recovered(&records, &intervals, &evidence, observed, final_state, &mut violations);
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
    // Each job's acknowledgements in time order (`records` is sorted): a 30-minute run
    // has a million lines, too many to scan once per recovery.
    let mut acks: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for record in records {
        if let Event::CheckpointAcked { job, .. } = &record.line.event {
            acks.entry(job.as_str()).or_default().push(record);
        }
    }
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
        let newest = acks
            .get(job.as_str())
            .into_iter()
            .flatten()
            .take_while(|r| r.line.mono_ns < grant.start)
            .filter_map(|r| match &r.line.event {
                Event::CheckpointAcked { id, .. } => Some((*id, *r)),
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

/// (b) Judged from the storage proxy and the ConfigMap watch, not from what a process
/// believed: a DELETE the server carried out, of a payload whose pointer was stored
/// (unmarked) and not yet marked or removed by a version the watch received before the
/// DELETE, is a violation, and so is deleting a checkpoint's payload before a newer
/// checkpoint's pointer of its job was stored. A job whose dirty result was durable
/// before the DELETE ended: its data may go. A payload no pointer ever named (an
/// orphan) is the sweep's to delete. The orphan sweep's own report is checked too.
fn no_live_payload_is_deleted(
    records: &[&Record],
    evidence: &Evidence<'_>,
    observed: &Observed,
    violations: &mut Vec<Violation>,
) {
    // Where each payload was first named, unmarked: (ConfigMap, index of the version).
    let mut first_named: BTreeMap<&str, ((&str, &str), usize)> = BTreeMap::new();
    for (key, versions) in &evidence.versions {
        for (index, version) in versions.iter().enumerate() {
            for pointer in version.pointers.iter().filter(|p| !p.marked) {
                first_named.entry(pointer.path.as_str()).or_insert((*key, index));
            }
        }
    }
    for op in observed
        .storage
        .iter()
        .filter(|op| op.method == "DELETE" && op.succeeded())
    {
        let Some(info) = evidence.payloads.get(op.uri.as_str()) else {
            continue;
        };
        if observed.lost.contains(&op.uri) || evidence.result_at(&info.job).is_some_and(|at| at <= op.sent_ns) {
            continue;
        }
        let deadline = op.sent_ns.saturating_add(WATCH_SLACK_NS);
        // The ConfigMap that named the payload first, and whether a later version (one the
        // deleter could have read before its DELETE) marked or dropped it.
        let Some(&(key, index)) = first_named.get(op.uri.as_str()) else {
            continue;
        };
        let Some(versions) = evidence.versions.get(&key) else {
            continue;
        };
        let first = versions[index];
        let released = versions[index..].iter().any(|v| {
            v.received_ns <= deadline && !v.deleted && v.pointers.iter().all(|p| p.path != op.uri || p.marked)
        });
        let what = match info.checkpoint {
            Some(id) => format!("checkpoint {id} of job {}", info.job),
            None => format!("the execution plan of job {}", info.job),
        };
        if !released && !evidence.gaps {
            violations.push(Violation {
                rule: 'b',
                explanation: format!(
                    "the payload of {what} was deleted while {}/{} named it, unmarked, and the job had not ended",
                    first.namespace, first.name
                ),
                evidence: vec![
                    format!("watch: {} rv {} named {}", first.name, first.resource_version, op.uri),
                    format!("storage proxy ({}): DELETE {} at mono {}", op.via, op.uri, op.sent_ns),
                ],
            });
            continue;
        }
        let Some(id) = info.checkpoint else { continue };
        let superseded = evidence
            .versions
            .get(&(first.namespace.as_str(), first.name.as_str()))
            .into_iter()
            .flatten()
            .any(|v| {
                v.received_ns <= deadline
                    && v.pointers.iter().any(|p| {
                        flink_ha_runtime::checkpoint_store::checkpoint_id(&p.key).is_some_and(|newer| newer > id)
                    })
            });
        if !superseded && !evidence.gaps {
            violations.push(Violation {
                rule: 'b',
                explanation: format!(
                    "the payload of {what} was deleted while it was the job's newest: no newer checkpoint's pointer was stored, and the job had not ended"
                ),
                evidence: vec![format!(
                    "storage proxy ({}): DELETE {} at mono {}",
                    op.via, op.uri, op.sent_ns
                )],
            });
        }
    }
    // The sweep deletes only what no pointer named; an acknowledged checkpoint had one.
    let mut acked: BTreeMap<&str, (&str, u64, &Record)> = BTreeMap::new();
    for record in records {
        if let Event::CheckpointAcked { job, id, path, .. } = &record.line.event {
            acked.insert(path.as_str(), (job.as_str(), *id, record));
        }
    }
    for record in records {
        if let Event::Swept { deleted, .. } = &record.line.event {
            for uri in deleted {
                if let Some(&(job, id, acked)) = acked.get(uri.as_str()) {
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

/// (c) No two processes lead at once: no grant starts before another process's last
/// step-down deadline (or its release, if it said it stopped earlier).
fn intervals_do_not_overlap(intervals: &[Interval<'_>], violations: &mut Vec<Violation>) {
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
}

/// (d) From the API server's versions: a job ConfigMap's fence epoch never goes down
/// (a deletion included: a recreated ConfigMap must not carry an older epoch), and the
/// version on which a checkpoint pointer first appears is fenced by the epoch its
/// payload says wrote it. A deposed leader whose write lands after the new leader's
/// claim (the write the fence exists for) breaks the second half.
fn fences_only_rise_and_name_the_writer(evidence: &Evidence<'_>, violations: &mut Vec<Violation>) {
    for ((_, name), versions) in &evidence.versions {
        let mut highest: Option<&CmVersion> = None;
        for version in versions.iter().filter(|v| !v.deleted) {
            let Some((epoch, _)) = &version.fence else { continue };
            if let Some(high) = highest
                && let Some((high_epoch, _)) = &high.fence
                && epoch < high_epoch
            {
                violations.push(Violation {
                    rule: 'd',
                    explanation: format!("the fence of {name} went down from epoch {high_epoch} to {epoch}"),
                    evidence: vec![
                        format!("watch: {name} rv {} fenced by {high_epoch}", high.resource_version),
                        format!("watch: {name} rv {} fenced by {epoch}", version.resource_version),
                    ],
                });
            }
            if highest.is_none_or(|h| h.fence.as_ref().is_none_or(|(e, _)| epoch >= e)) {
                highest = Some(version);
            }
        }
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        for version in versions.iter().filter(|v| !v.deleted) {
            for pointer in &version.pointers {
                if !seen.insert(pointer.path.as_str()) {
                    continue;
                }
                let Some(info) = evidence.payloads.get(pointer.path.as_str()) else {
                    continue;
                };
                if info.checkpoint.is_none() {
                    continue;
                }
                let fenced = version.fence.as_ref().map(|(epoch, _)| *epoch);
                if fenced != Some(info.epoch) {
                    violations.push(Violation {
                        rule: 'd',
                        explanation: format!(
                            "a write of epoch {} landed on {name} while {}: checkpoint pointer {} was accepted from a writer the fence shuts out",
                            info.epoch,
                            fenced.map_or("no leader had claimed it".to_string(), |e| format!("epoch {e} held its fence")),
                            pointer.key
                        ),
                        evidence: vec![
                            format!(
                                "storage proxy ({}): PUT {} from epoch {} at mono {}",
                                info.put.via, pointer.path, info.epoch, info.put.sent_ns
                            ),
                            format!(
                                "watch: {name} rv {} fenced by {:?} first named it",
                                version.resource_version, version.fence
                            ),
                        ],
                    });
                }
            }
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

/// (f) A job is never started again once its dirty result was durable (the storage
/// server's answer to the PUT, seen by the proxy: a process killed right after it wrote
/// no line about it) before the grant that started it, nor after its process said it
/// finished.
fn finished_jobs_never_restart(
    records: &[&Record],
    intervals: &[Interval<'_>],
    evidence: &Evidence<'_>,
    violations: &mut Vec<Violation>,
) {
    let mut finished: BTreeMap<&str, &Record> = BTreeMap::new();
    for record in records {
        match &record.line.event {
            Event::JobFinished { job, .. } | Event::CleanupFinished { job, .. } => {
                finished.entry(job.as_str()).or_insert(record);
            }
            Event::Recovered { job, epoch, .. } | Event::JobSubmitted { job, epoch, .. } => {
                if let Some(ended) = finished.get(job.as_str()) {
                    violations.push(Violation {
                        rule: 'f',
                        explanation: format!("job {job} was started again after it finished"),
                        evidence: vec![ended.cite(), record.cite()],
                    });
                    continue;
                }
                let Some(durable) = evidence.result_at(job) else {
                    continue;
                };
                if let Some(grant) = grant_of(intervals, record, *epoch)
                    && grant.start > durable
                {
                    violations.push(Violation {
                        rule: 'f',
                        explanation: format!(
                            "job {job} was started again by a grant that began after its result was durable"
                        ),
                        evidence: vec![
                            format!("storage proxy: {job}_DIRTY.json stored by mono {durable}"),
                            grant.granted.cite(),
                            record.cite(),
                        ],
                    });
                }
            }
            _ => {}
        }
    }
}

/// (g)
fn nothing_leaks(records: &[&Record], state: &FinalState, lost: &BTreeSet<String>, violations: &mut Vec<Violation>) {
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
        if !state.payloads.contains(path) && !lost.contains(path) {
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
    if !orphans.is_empty() && !state.orphans_may_stay {
        leak(
            format!(
                "{} payloads no pointer names are left after the last orphan sweep",
                orphans.len()
            ),
            orphans.iter().map(|p| p.to_string()).collect(),
        );
    }
}

/// (h) A job with an acknowledged checkpoint and no durable result is live: every grant
/// that begins while it is live recovers it before it submits any new job (the fake
/// JobManager fills up to its number of jobs with new ones: a job it failed to recover
/// would be replaced silently), and at the end it still has its plan and its job
/// ConfigMap. Jobs whose payloads the nemesis itself destroyed are excused.
fn live_jobs_are_always_recovered(
    records: &[&Record],
    intervals: &[Interval<'_>],
    evidence: &Evidence<'_>,
    observed: &Observed,
    final_state: Option<&FinalState>,
    violations: &mut Vec<Violation>,
) {
    let lost_jobs: BTreeSet<&str> = observed
        .lost
        .iter()
        .filter_map(|uri| evidence.payloads.get(uri.as_str()))
        .map(|info| info.job.as_str())
        .collect();
    let mut first_ack: BTreeMap<&str, &Record> = BTreeMap::new();
    for record in records {
        if let Event::CheckpointAcked { job, .. } = &record.line.event {
            first_ack.entry(job.as_str()).or_insert(record);
        }
    }
    let live_at = |job: &str, at: u64| {
        first_ack.get(job).is_some_and(|acked| acked.line.mono_ns < at)
            && evidence.result_at(job).is_none_or(|durable| durable > at)
            && !lost_jobs.contains(job)
    };
    // Each grant's own actions: an epoch is handed out once per grant, so a process's
    // lines with that epoch after the grant are the grant's.
    let mut by_grant: BTreeMap<(&str, u64), Vec<&Record>> = BTreeMap::new();
    for record in records {
        let epoch = match &record.line.event {
            Event::JobSubmitted { epoch, .. } | Event::Recovered { epoch, .. } => *epoch,
            _ => continue,
        };
        by_grant
            .entry((record.line.identity.as_str(), epoch))
            .or_default()
            .push(record);
    }
    for grant in intervals {
        let actions: Vec<&Record> = by_grant
            .get(&(grant.identity, grant.epoch))
            .into_iter()
            .flatten()
            .copied()
            .filter(|r| r.line.mono_ns >= grant.start)
            .collect();
        let Some(submitted) = actions
            .iter()
            .find(|r| matches!(&r.line.event, Event::JobSubmitted { .. }))
        else {
            continue;
        };
        for (job, acked) in &first_ack {
            if !live_at(job, grant.start) {
                continue;
            }
            let recovered = actions.iter().any(|r| {
                r.line.mono_ns <= submitted.line.mono_ns
                    && matches!(&r.line.event, Event::Recovered { job: j, .. } if j == job)
            });
            if !recovered {
                violations.push(Violation {
                    rule: 'h',
                    explanation: format!(
                        "job {job} was live when {} was granted (epoch {}), which submitted a new job without recovering it",
                        short(grant.identity),
                        grant.epoch
                    ),
                    evidence: vec![acked.cite(), grant.granted.cite(), submitted.cite()],
                });
            }
        }
    }
    let Some(state) = final_state else { return };
    for (job, acked) in &first_ack {
        if !live_at(job, u64::MAX) {
            continue;
        }
        for (what, present) in [
            ("execution plan", state.plans.contains(*job)),
            ("job ConfigMap", state.job_config_maps.contains(*job)),
        ] {
            if !present {
                violations.push(Violation {
                    rule: 'h',
                    explanation: format!("job {job} never ended, but its {what} is gone at the end"),
                    evidence: vec![acked.cite()],
                });
            }
        }
    }
}

fn short(identity: &str) -> &str {
    identity.get(..8).unwrap_or(identity)
}

/// The number of violations per rule, `a=0 b=1 ...` style, for the summary line.
pub fn summary(violations: &[Violation]) -> String {
    let mut text = String::new();
    for rule in 'a'..='h' {
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
    use crate::watch::PointerEntry;

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

    fn put(uri: &str, body: String, at: f64) -> StorageOp {
        StorageOp {
            via: "jm".into(),
            method: "PUT".into(),
            uri: uri.into(),
            sent_ns: ns(at),
            answered_ns: ns(at) + 1_000_000,
            status: Some(200),
            body: Some(body.into()),
        }
    }

    fn payload(id: u64, epoch: u64, at: f64) -> StorageOp {
        put(
            &format!("s3://b/ha/c/completedCheckpoint{id}"),
            format!("{{\"job\":\"j\",\"checkpoint\":{id},\"epoch\":{epoch}}}"),
            at,
        )
    }

    /// Job `j`'s dirty job-result entry, stored at `at`.
    fn durable_result(at: f64) -> StorageOp {
        put("s3://b/jrs/ns/c/j_DIRTY.json", String::new(), at)
    }

    fn delete(uri: &str, at: f64) -> StorageOp {
        StorageOp {
            method: "DELETE".into(),
            body: None,
            status: Some(204),
            ..put(uri, String::new(), at)
        }
    }

    /// A version of the job ConfigMap `c-j-config-map`: fenced by `epoch`, holding the
    /// checkpoints `ids` (a negative id is that checkpoint, marked).
    fn version(at: f64, epoch: u64, ids: &[i64]) -> CmVersion {
        CmVersion {
            received_ns: ns(at),
            namespace: "ns".into(),
            name: "c-j-config-map".into(),
            resource_version: format!("{}", ns(at)),
            deleted: false,
            fence: Some((epoch, format!("holder-{epoch}"))),
            pointers: ids
                .iter()
                .map(|id| PointerEntry {
                    key: flink_ha_runtime::checkpoint_store::checkpoint_key(id.unsigned_abs()),
                    path: format!("s3://b/ha/c/completedCheckpoint{}", id.unsigned_abs()),
                    marked: *id < 0,
                })
                .collect(),
        }
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
            storage: vec![
                payload(1, 1, 1.32),
                payload(2, 1, 2.02),
                payload(3, 2, 5.32),
                delete("s3://b/ha/c/completedCheckpoint1", 5.4),
            ],
            config_maps: Watched {
                versions: vec![
                    version(1.1, 1, &[]),
                    version(1.35, 1, &[1]),
                    version(2.05, 1, &[1, 2]),
                    version(5.1, 2, &[1, 2]),
                    version(5.35, 2, &[-1, 2, 3]),
                    version(5.45, 2, &[2, 3]),
                ],
                gaps: vec![],
            },
            lost: BTreeSet::new(),
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
        // Checkpoint 2's payload deleted while its pointer was live and no newer one stored.
        observed.storage.push(delete("s3://b/ha/c/completedCheckpoint2", 5.25));
        assert_eq!(rules(&b, &observed, &state), ['b']);
    }

    #[test]
    fn deleting_a_payload_before_its_pointer_is_marked_is_b() {
        let (b, mut observed, state) = sound();
        // Checkpoint 1 subsumed by 3 (stored at 5.35), but its payload deleted at 5.3,
        // before the version marking it: the order Flink's protocol forbids.
        observed.storage[3] = delete("s3://b/ha/c/completedCheckpoint1", 5.3 - 0.6);
        assert_eq!(rules(&b, &observed, &state), ['b']);
    }

    #[test]
    fn deleting_a_live_jobs_data_is_sound_once_its_result_is_durable() {
        let (b, mut observed, state) = sound();
        observed.storage.push(durable_result(5.6));
        observed.storage.push(delete("s3://b/ha/c/completedCheckpoint3", 5.7));
        let mut ended = state.clone();
        ended.dirty_results.insert("j".into());
        ended.job_config_maps.clear();
        ended.plans.clear();
        ended.pointers.clear();
        ended.payloads.clear();
        assert_eq!(rules(&b, &observed, &ended), ['g']);
        // The same deletion before the result was durable.
        observed.storage.pop();
        observed
            .storage
            .insert(3, delete("s3://b/ha/c/completedCheckpoint3", 5.55));
        assert!(rules(&b, &observed, &ended).contains(&'b'));
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
    fn an_accepted_write_of_a_deposed_epoch_is_d() {
        let (b, mut observed, state) = sound();
        // A's add of checkpoint 4 (payload written under epoch 1) lands after B's claim:
        // the version that first names it is fenced by epoch 2.
        observed.storage.push(payload(4, 1, 2.95));
        observed.config_maps.versions.push(version(5.6, 2, &[2, 3, 4]));
        let mut late = state.clone();
        late.pointers.push((
            "c-j-config-map".into(),
            "checkpointID-4".into(),
            "s3://b/ha/c/completedCheckpoint4".into(),
            false,
        ));
        late.payloads.insert("s3://b/ha/c/completedCheckpoint4".into());
        assert_eq!(rules(&b, &observed, &late), ['d']);
    }

    #[test]
    fn a_fence_going_down_is_d() {
        let (b, mut observed, state) = sound();
        // The job ConfigMap deleted and created again by the deposed epoch 1.
        let mut gone = version(5.5, 2, &[2, 3]);
        gone.deleted = true;
        observed.config_maps.versions.push(gone);
        observed.config_maps.versions.push(version(5.55, 1, &[]));
        observed.config_maps.versions.push(version(5.6, 2, &[2, 3]));
        assert_eq!(rules(&b, &observed, &state), ['d']);
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
        let (mut b, mut observed, mut state) = sound();
        observed.storage.push(durable_result(2.4));
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
    fn restarting_a_job_whose_result_was_durable_is_f_whatever_its_process_wrote() {
        // A wrote the dirty result at 2.3 s and was killed before any line about it; B,
        // granted later, recovers the job all the same.
        let (b, mut observed, state) = sound();
        observed.storage.push(durable_result(2.3));
        let found = rules(&b, &observed, &state);
        assert!(found.contains(&'f'), "{found:?}");
    }

    #[test]
    fn submitting_in_place_of_a_live_job_is_h() {
        let (mut b, observed, state) = sound();
        // B's grant does not recover j (it failed to) and submits a new job instead.
        b.records[9].line.event = Event::WriteFailed {
            job: "j".into(),
            epoch: 2,
            fenced: false,
            error: "payload missing".into(),
        };
        b.records.truncate(10);
        b.at(
            5.4,
            "B",
            Event::JobSubmitted {
                job: "k".into(),
                epoch: 2,
                acted_ns: ns(5.35),
                valid_until_ns: ns(7.0),
            },
        );
        assert_eq!(rules(&b, &observed, &state), ['h']);
        // A live job whose plan is gone at the end.
        let (b, observed, mut state) = sound();
        state.plans.clear();
        assert_eq!(rules(&b, &observed, &state), ['h']);
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
