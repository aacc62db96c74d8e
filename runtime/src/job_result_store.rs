//! The job-result store, as Flink 1.15+'s `FileSystemJobResultStore` keeps it: one JSON
//! file per globally terminated job under `job-result-store.storage-path` (default
//! `<storageDir>/job-result-store/<ha-cluster-id>`).
//!
//! - `<job-id>_DIRTY.json` is written (create-only) **before** any of the job's HA data
//!   is removed; once the cleanup finished it is renamed to `<job-id>.json`, or deleted
//!   when `job-result-store.delete-on-commit` is true (Flink's default).
//! - A job with an entry, dirty or clean, is never recovered from its plan again: without
//!   the entry, a cleanup interrupted after the checkpoints went but before the plan did
//!   would make the next leader rerun a finished job from no checkpoint at all. A dirty
//!   entry means "finish the cleanup" ([`crate::cleanup::recoverable_jobs`]).
//!
//! **One folder per cluster.** Flink's default folder is per HA cluster id, and every
//! standalone cluster without `high-availability.cluster-id` shares `default`, as do two
//! clusters with one id in two namespaces; a leader that took another cluster's dirty
//! entry for its own would mark it clean, and that cluster would run its finished job
//! again. So [`JobResultStore::for_settings`] keeps a cluster's entries in
//! `<job-result-store.storage-path>/<namespace>/<kubernetes.cluster-id>/`, in Flink's
//! file names and JSON (Flink lists only the files of its folder, so a Flink JobManager
//! sharing it sees none of them). Entries an earlier version wrote into the folder itself
//! are still read, for the jobs this cluster has plans of, and never written or deleted
//! ([`JobResultStore::legacy_entries`]).
//!
//! **Every write is fenced by the lease.** No compare-and-set guards a file, and
//! object_store retries a slow store for minutes: a dirty entry landing after the lease
//! ran out could end a job the next leader already runs again. So each write takes the
//! grant's [`LeaderLease`], runs only while it is valid and is cut off at its step-down
//! moment ([`LeaderLease::bounded`]).
//!
//! The file layout is Flink's, version 1:
//! `{"result":{"id":"<job-id>","application-status":"SUCCEEDED","accumulator-results":{},"net-runtime":<ms>},"version":1}`.
//! Readers ignore fields they do not know (Flink 2.x adds `name`, `start-time`, …); a
//! file that is not a job result is an error naming the file, never a panic or a skip.

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::config::HaSettings;
use crate::error::{Error, Result};
use crate::leader_election::LeaderLease;
use crate::names::is_job_id;
use crate::storage::{self, StorageOptions};

/// The name of an entry whose job's cleanup has not finished: `<job-id>_DIRTY.json`.
pub const DIRTY_SUFFIX: &str = "_DIRTY.json";
/// The name of a committed entry (kept when delete-on-commit is false): `<job-id>.json`.
pub const CLEAN_SUFFIX: &str = ".json";

/// Flink's `ApplicationStatus`, the job's final state as the store records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplicationStatus {
    /// `SUCCEEDED`: the job finished normally.
    Succeeded,
    /// `FAILED`: the job failed for good.
    Failed,
    /// `CANCELED`: the job was cancelled.
    Canceled,
    /// `UNKNOWN`: the final state is not known (also read when an entry has no status).
    Unknown,
}

impl ApplicationStatus {
    /// The status as Flink writes it: `SUCCEEDED`, `FAILED`, `CANCELED` or `UNKNOWN`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplicationStatus::Succeeded => "SUCCEEDED",
            ApplicationStatus::Failed => "FAILED",
            ApplicationStatus::Canceled => "CANCELED",
            ApplicationStatus::Unknown => "UNKNOWN",
        }
    }

    /// The status Flink's name `text` stands for (exact, upper-case); `None` otherwise.
    pub fn parse(text: &str) -> Option<ApplicationStatus> {
        [
            ApplicationStatus::Succeeded,
            ApplicationStatus::Failed,
            ApplicationStatus::Canceled,
            ApplicationStatus::Unknown,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// One job's result, as a store entry holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct JobResult {
    /// 32 lower-case hex digits.
    pub job_id: String,
    /// `application-status`: the job's final state.
    pub status: ApplicationStatus,
    /// `net-runtime` in milliseconds (-1 when absent, as Flink's reader defaults it).
    pub net_runtime_ms: i64,
    /// `failure-cause`, Flink's serialized throwable, kept as written and never interpreted.
    pub failure_cause: Option<serde_json::Value>,
}

/// Why a job-result entry cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JobResultError {
    /// The file is not JSON; holds the parser's message.
    #[error("not JSON: {0}")]
    NotJson(String),
    /// There is no `result` object at the top level.
    #[error("no `result` object")]
    NoResult,
    /// `result.id` is absent or not a string.
    #[error("no `result.id` string")]
    NoJobId,
    /// `result.id` (held here) is not a job id.
    #[error("`result.id` `{0}` is not a job id (32 lower-case hex digits)")]
    NotAJobId(String),
    /// `application-status` (held here) is a string but not a Flink status.
    #[error("`application-status` `{0}` is not a Flink application status")]
    UnknownStatus(String),
    /// `application-status` is not a string; holds the value as JSON.
    #[error("`application-status` is {0}, not a string")]
    StatusNotAString(String),
    /// `net-runtime` is not a whole number; holds the value as JSON.
    #[error("`net-runtime` is {0}, not a whole number")]
    RuntimeNotANumber(String),
}

impl JobResult {
    /// A result for `job_id` with its status and `net-runtime` (ms), no failure cause.
    pub fn new(job_id: &str, status: ApplicationStatus, net_runtime_ms: i64) -> JobResult {
        JobResult {
            job_id: job_id.to_string(),
            status,
            net_runtime_ms,
            failure_cause: None,
        }
    }

    /// The entry's file content, field for field in the order Flink writes them.
    pub fn to_json(&self) -> String {
        let failure = match &self.failure_cause {
            Some(cause) => format!(",\"failure-cause\":{cause}"),
            None => String::new(),
        };
        format!(
            "{{\"result\":{{\"id\":{},\"application-status\":\"{}\",\"accumulator-results\":{{}},\"net-runtime\":{}{failure}}},\"version\":1}}",
            serde_json::Value::String(self.job_id.clone()),
            self.status.as_str(),
            self.net_runtime_ms,
        )
    }

    /// Reads an entry's file content; the error says what is wrong with it.
    pub fn from_json(text: &str) -> Result<JobResult, JobResultError> {
        use JobResultError as E;
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| E::NotJson(e.to_string()))?;
        let result = value
            .get("result")
            .and_then(serde_json::Value::as_object)
            .ok_or(E::NoResult)?;
        let job_id = result.get("id").and_then(serde_json::Value::as_str).ok_or(E::NoJobId)?;
        if !is_job_id(job_id) {
            return Err(E::NotAJobId(job_id.to_string()));
        }
        let status = match result.get("application-status") {
            None => ApplicationStatus::Unknown,
            Some(serde_json::Value::String(text)) => {
                ApplicationStatus::parse(text).ok_or_else(|| E::UnknownStatus(text.clone()))?
            }
            Some(other) => return Err(E::StatusNotAString(other.to_string())),
        };
        let net_runtime_ms = match result.get("net-runtime") {
            None => -1,
            Some(value) => value.as_i64().ok_or_else(|| E::RuntimeNotANumber(value.to_string()))?,
        };
        Ok(JobResult {
            job_id: job_id.to_string(),
            status,
            net_runtime_ms,
            failure_cause: result.get("failure-cause").filter(|v| !v.is_null()).cloned(),
        })
    }
}

/// What the store holds for one job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// The job ended; its cleanup has not finished.
    Dirty,
    /// The job ended and its cleanup finished (only with delete-on-commit false).
    Clean,
}

/// Every entry of the store, from one listing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Entries {
    /// The results whose cleanup must be finished, by job id.
    pub dirty: Vec<JobResult>,
    /// The jobs whose cleanup finished, sorted.
    pub clean: Vec<String>,
}

/// The job-result store of one cluster.
#[derive(Clone)]
pub struct JobResultStore {
    store: Arc<dyn ObjectStore>,
    base: Path,
    description: String,
    delete_on_commit: bool,
    /// The folder earlier versions wrote this cluster's entries into (shared with other
    /// clusters): read for this cluster's planned jobs only, never written.
    legacy_base: Option<Path>,
}

impl JobResultStore {
    /// The store at `storage_path` (a storageDir-style URI), configured by `options`.
    pub fn open(storage_path: &str, options: &StorageOptions, delete_on_commit: bool) -> Result<JobResultStore> {
        let (store, base) = storage::open(storage_path, options)?;
        let description = format!("{}/{base}", storage::store_uri(storage_path)?.trim_end_matches('/'));
        Ok(JobResultStore::with_object_store(
            store,
            base,
            description,
            delete_on_commit,
        ))
    }

    /// The store of the cluster `settings` describe: its own folder
    /// `<job-result-store.storage-path>/<namespace>/<kubernetes.cluster-id>/` (see the
    /// module docs), `.delete-on-commit` as configured.
    pub fn for_settings(settings: &HaSettings) -> Result<JobResultStore> {
        let path = &settings.job_result_store_path;
        let (store, shared) = storage::open(path, &settings.storage_options)?;
        let base = shared
            .clone()
            .join(settings.namespace.as_str())
            .join(settings.cluster_id.as_str());
        let description = format!("{}/{base}", storage::store_uri(path)?.trim_end_matches('/'));
        let mut results =
            JobResultStore::with_object_store(store, base, description, settings.job_result_delete_on_commit);
        results.legacy_base = Some(shared);
        Ok(results)
    }

    /// A store on an object store the caller built: entries under `base`, `description`
    /// naming it in messages. For embedders and for tests that put faults in front of it.
    pub fn with_object_store(
        store: Arc<dyn ObjectStore>,
        base: Path,
        description: String,
        delete_on_commit: bool,
    ) -> JobResultStore {
        JobResultStore {
            store,
            base,
            description,
            delete_on_commit,
            legacy_base: None,
        }
    }

    /// Where the entries are, for messages.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Records `result` as a dirty entry; call it before removing any of the job's HA
    /// data. Create-only: the same result already there (a retried cleanup) is success,
    /// another one is refused. A job whose entry is already clean has nothing to record.
    /// Only inside `lease`, cut off at its step-down moment ([`Error::CutOff`]: the entry
    /// may or may not have landed).
    pub async fn create_dirty(&self, result: &JobResult, lease: &LeaderLease) -> Result<()> {
        let what = || format!("record the result of job {} in {}", result.job_id, self.description);
        lease.bounded(what, self.create_dirty_unbounded(result)).await?
    }

    async fn create_dirty_unbounded(&self, result: &JobResult) -> Result<()> {
        let path = self.entry_path(&result.job_id, DIRTY_SUFFIX)?;
        if self.exists(&self.entry_path(&result.job_id, CLEAN_SUFFIX)?).await? {
            return Ok(());
        }
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let payload = PutPayload::from(Bytes::from(result.to_json()));
        match self.store.put_opts(&path, payload, options).await {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => {
                let existing = self.read(&path).await?;
                if existing == *result {
                    Ok(())
                } else {
                    Err(Error::Refused(format!(
                        "{} already records job {} as {} (net runtime {} ms), not as {} ({} ms)",
                        self.name_of(&path),
                        result.job_id,
                        existing.status.as_str(),
                        existing.net_runtime_ms,
                        result.status.as_str(),
                        result.net_runtime_ms
                    )))
                }
            }
            Err(error) => Err(self.failed("write a job result to", error)),
        }
    }

    /// The job's cleanup finished: delete its dirty entry (delete-on-commit) or rename it
    /// to `<job-id>.json`. Idempotent: an entry already committed is fine. Only inside
    /// `lease`, cut off at its step-down moment.
    pub async fn mark_clean(&self, job_id: &str, lease: &LeaderLease) -> Result<()> {
        let what = || format!("mark the result of job {job_id} clean in {}", self.description);
        lease.bounded(what, self.mark_clean_unbounded(job_id)).await?
    }

    async fn mark_clean_unbounded(&self, job_id: &str) -> Result<()> {
        let dirty = self.entry_path(job_id, DIRTY_SUFFIX)?;
        if self.delete_on_commit {
            return match self.store.delete(&dirty).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(error) => Err(self.failed("delete a job result in", error)),
            };
        }
        let clean = self.entry_path(job_id, CLEAN_SUFFIX)?;
        match self.store.rename(&dirty, &clean).await {
            Ok(()) => Ok(()),
            Err(object_store::Error::NotFound { .. }) if self.exists(&clean).await? => Ok(()),
            Err(object_store::Error::NotFound { .. }) => Err(Error::Storage(format!(
                "job result store {}: job {job_id} has no entry to mark clean",
                self.description
            ))),
            Err(error) => Err(self.failed("commit a job result in", error)),
        }
    }

    /// The job's entry, if it has one.
    pub async fn entry(&self, job_id: &str) -> Result<Option<Entry>> {
        if self.exists(&self.entry_path(job_id, DIRTY_SUFFIX)?).await? {
            Ok(Some(Entry::Dirty))
        } else if self.exists(&self.entry_path(job_id, CLEAN_SUFFIX)?).await? {
            Ok(Some(Entry::Clean))
        } else {
            Ok(None)
        }
    }

    /// Whether the job has ended for good (an entry, dirty or clean): then it is never
    /// recovered from its plan.
    pub async fn has_entry(&self, job_id: &str) -> Result<bool> {
        Ok(self.entry(job_id).await?.is_some())
    }

    /// The results whose cleanup must be finished.
    pub async fn dirty_results(&self) -> Result<Vec<JobResult>> {
        Ok(self.entries().await?.dirty)
    }

    /// The jobs whose cleanup finished and whose entries were kept.
    pub async fn clean_job_ids(&self) -> Result<Vec<String>> {
        Ok(self.entries().await?.clean)
    }

    /// Every entry, from one listing of the folder (only its own files, as Flink lists
    /// it). Dirty entries are read; one that is not a job result of its file's job is an
    /// error naming the file. Files of other names are ignored.
    pub async fn entries(&self) -> Result<Entries> {
        self.entries_in(&self.base, None).await
    }

    /// The entries an earlier version of the runtime wrote into the shared folder
    /// (`job-result-store.storage-path` itself) for the jobs in `jobs`; none for a store
    /// not opened [`JobResultStore::for_settings`]. Entries of other jobs there are not
    /// this cluster's to judge and are left out. Read only: nothing here ever writes or
    /// deletes them.
    pub async fn legacy_entries(&self, jobs: &[&str]) -> Result<Entries> {
        let Some(shared) = &self.legacy_base else {
            return Ok(Entries::default());
        };
        self.entries_in(shared, Some(jobs)).await
    }

    /// The entries in `folder`, of the jobs in `only` if given (the others' files are not
    /// even read).
    async fn entries_in(&self, folder: &Path, only: Option<&[&str]>) -> Result<Entries> {
        let listed = self
            .store
            .list_with_delimiter(Some(folder))
            .await
            .map_err(|e| self.failed("list the job results in", e))?;
        let mut entries = Entries::default();
        let mut objects: Vec<Path> = listed.objects.into_iter().map(|meta| meta.location).collect();
        objects.sort();
        for path in objects {
            let Some(file) = path.filename() else { continue };
            let wanted = |job_id: &str| only.is_none_or(|jobs| jobs.contains(&job_id));
            if let Some(job_id) = file.strip_suffix(DIRTY_SUFFIX).filter(|id| wanted(id)) {
                let result = self.read(&path).await?;
                if result.job_id != job_id {
                    return Err(self.malformed(&path, &format!("it holds the result of job {}", result.job_id)));
                }
                entries.dirty.push(result);
            } else if let Some(job_id) = file.strip_suffix(CLEAN_SUFFIX).filter(|id| is_job_id(id) && wanted(id)) {
                entries.clean.push(job_id.to_string());
            }
        }
        Ok(entries)
    }

    /// Reads and parses one entry.
    async fn read(&self, path: &Path) -> Result<JobResult> {
        let got = self
            .store
            .get(path)
            .await
            .map_err(|e| self.failed("read a job result from", e))?;
        let bytes = got
            .bytes()
            .await
            .map_err(|e| self.failed("read a job result from", e))?;
        let text = std::str::from_utf8(&bytes).map_err(|_| self.malformed(path, "it is not UTF-8"))?;
        JobResult::from_json(text).map_err(|error| self.malformed(path, &error.to_string()))
    }

    async fn exists(&self, path: &Path) -> Result<bool> {
        match self.store.head(path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(self.failed("look up a job result in", error)),
        }
    }

    /// `<base>/<job-id><suffix>`; a job id that is not one never names a file.
    fn entry_path(&self, job_id: &str, suffix: &str) -> Result<Path> {
        if !is_job_id(job_id) {
            return Err(Error::Refused(format!(
                "`{job_id}` is not a job id (32 lower-case hex digits); it names no job result in {}",
                self.description
            )));
        }
        Ok(self.base.clone().join(format!("{job_id}{suffix}")))
    }

    fn name_of(&self, path: &Path) -> String {
        format!("{}/{}", self.description, path.filename().unwrap_or_default())
    }

    fn malformed(&self, path: &Path, reason: &str) -> Error {
        Error::Storage(format!("{} is not a job result: {reason}", self.name_of(path)))
    }

    fn failed(&self, what: &str, source: object_store::Error) -> Error {
        Error::StorageIo {
            what: format!("{what} {}", self.description),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOB: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";

    #[test]
    fn writes_flinks_version_1_layout() {
        let result = JobResult::new(JOB, ApplicationStatus::Succeeded, 1234);
        assert_eq!(
            result.to_json(),
            format!(
                "{{\"result\":{{\"id\":\"{JOB}\",\"application-status\":\"SUCCEEDED\",\"accumulator-results\":{{}},\"net-runtime\":1234}},\"version\":1}}"
            )
        );
        assert_eq!(JobResult::from_json(&result.to_json()), Ok(result));
    }

    #[test]
    fn reads_what_flink_writes_ignoring_what_it_does_not_know() {
        // As a Flink 2.x JobManager writes a failed job's entry.
        let text = format!(
            r#"{{"result":{{"id":"{JOB}","name":"orders","application-status":"FAILED","accumulator-results":{{"n":"rO0ABXQ="}},"net-runtime":99,"failure-cause":{{"class":"java.lang.RuntimeException","stack-trace":"boom","serialized-throwable":"rO0AB"}},"start-time":1,"end-time":100}},"version":1}}"#
        );
        let result = JobResult::from_json(&text).expect("Flink's entry");
        assert_eq!(result.job_id, JOB);
        assert_eq!(result.status, ApplicationStatus::Failed);
        assert_eq!(result.net_runtime_ms, 99);
        assert_eq!(
            result.failure_cause.as_ref().map(|c| c["class"].clone()),
            Some("java.lang.RuntimeException".into())
        );
        // Written back, the cause is kept as it was.
        assert_eq!(JobResult::from_json(&result.to_json()), Ok(result));
        // Older entries without a status or a runtime.
        let bare = JobResult::from_json(&format!(r#"{{"result":{{"id":"{JOB}"}}}}"#)).expect("bare");
        assert_eq!((bare.status, bare.net_runtime_ms), (ApplicationStatus::Unknown, -1));
    }

    #[test]
    fn malformed_entries_say_what_is_wrong() {
        for (text, expected) in [
            ("", "not JSON"),
            ("[]", "no `result` object"),
            (r#"{"result":{}}"#, "no `result.id`"),
            (r#"{"result":{"id":"../../etc"}}"#, "not a job id"),
            (
                &format!(r#"{{"result":{{"id":"{JOB}","application-status":"DONE"}}}}"#),
                "not a Flink application status",
            ),
            (
                &format!(r#"{{"result":{{"id":"{JOB}","net-runtime":"soon"}}}}"#),
                "not a whole number",
            ),
        ] {
            let error = JobResult::from_json(text).expect_err(text).to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn only_flinks_job_ids_name_entries() {
        assert!(is_job_id(JOB));
        assert!(!is_job_id(&JOB.to_uppercase()));
        assert!(!is_job_id(&JOB[1..]));
        assert!(!is_job_id("../a1b2c3d4e5f60718293a4b5c6d7e8f"));
    }
}
