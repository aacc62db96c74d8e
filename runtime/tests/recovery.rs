//! Recovery under storage faults (issue 12, path 2), against the real API server with
//! payloads on the local file system. A read error that may pass is retried and must not
//! start the job empty; one that persists fails the recovery, and nothing is dropped;
//! a payload proven missing is skipped only for an older readable one. A payload write
//! whose answer was lost leaves no orphan behind.
//!
//! The faults sit in front of the real store in an `ObjectStore` wrapper, because no
//! real store fails a chosen request on cue.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult,
};

use flink_ha_runtime::checkpoint_store::{CompletedCheckpointStore, MissingCheckpoint, ReadRetries, checkpoint_key};
use flink_ha_runtime::cleanup::ExecutionPlanStore;
use flink_ha_runtime::fence::Fence;
use flink_ha_runtime::history::{Event, History, Line};
use flink_ha_runtime::jobmanager::{self, JobManagerOptions};
use flink_ha_runtime::payloads::PayloadStore;
use flink_ha_runtime::{Error, HaSettings, LeaderElection};
use flink_ha_testenv::TestEnv;

mod common;
use common::cas;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const JOB: &str = "7777bbbb7777bbbb7777bbbb7777bbbb";

/// The local file system, with the next `failing_reads` reads failing as a lost
/// connection does, and the next `lost_put_answers` writes landing but answered with
/// an error: a lost connection (as object_store reports one after its retries) or, for
/// `put_answer_already_exists`, the "already exists" a create-only retry of a landed
/// write gets.
#[derive(Debug)]
struct FlakyReads {
    inner: object_store::local::LocalFileSystem,
    failing_reads: AtomicU32,
    lost_put_answers: AtomicU32,
    put_answer_already_exists: bool,
}

impl fmt::Display for FlakyReads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FlakyReads({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for FlakyReads {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let written = self.inner.put_opts(location, payload, opts).await?;
        let lose = self
            .lost_put_answers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if !lose {
            return Ok(written);
        }
        Err(if self.put_answer_already_exists {
            object_store::Error::AlreadyExists {
                path: location.to_string(),
                source: "injected: the retry of a write that landed".into(),
            }
        } else {
            object_store::Error::Generic {
                store: "FlakyReads",
                source: "injected: connection reset by peer after the write".into(),
            }
        })
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        let fail = self
            .failing_reads
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Err(object_store::Error::Generic {
                store: "FlakyReads",
                source: "injected: connection reset by peer".into(),
            });
        }
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

struct Setup {
    _env: TestEnv,
    api: Api<ConfigMap>,
    storage: tempfile::TempDir,
    fence: Fence,
}

/// Checkpoints 1 and 2 of `JOB` written by the first leader (one retained: only 2 is
/// left), then claimed by a second leader, epoch 1.
async fn written_then_taken_over(test: &str) -> Result<Setup, Box<dyn std::error::Error>> {
    let env = TestEnv::new(test).await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let first = Fence::new(0, "jm-1");
    first.claim_job(&cas(&api), "orders", JOB).await?;
    let writer = CompletedCheckpointStore::new(cas(&api), "orders", JOB, plain(&storage)?, first, 1);
    assert_eq!(writer.recover().await?, None);
    writer.add(1, Bytes::from_static(b"one")).await?;
    writer.add(2, Bytes::from_static(b"two")).await?;
    let fence = Fence::new(1, "jm-2");
    fence.claim_job(&cas(&api), "orders", JOB).await?;
    Ok(Setup {
        _env: env,
        api,
        storage,
        fence,
    })
}

fn plain(storage: &tempfile::TempDir) -> Result<PayloadStore, Error> {
    PayloadStore::open(&format!("file://{}", storage.path().display()), "orders")
}

/// The same folder, read through `FlakyReads`.
fn flaky(storage: &tempfile::TempDir, failing_reads: u32) -> PayloadStore {
    flaky_store(storage, failing_reads, 0, false)
}

/// The same folder through `FlakyReads`, with any of its faults.
fn flaky_store(
    storage: &tempfile::TempDir,
    failing_reads: u32,
    lost_put_answers: u32,
    put_answer_already_exists: bool,
) -> PayloadStore {
    let store = FlakyReads {
        inner: object_store::local::LocalFileSystem::new(),
        failing_reads: AtomicU32::new(failing_reads),
        lost_put_answers: AtomicU32::new(lost_put_answers),
        put_answer_already_exists,
    };
    let root = Path::from(storage.path().display().to_string()).join("orders");
    PayloadStore::with_object_store(Arc::new(store), "file://", root)
}

const QUICK: ReadRetries = ReadRetries {
    attempts: 4,
    first_backoff: Duration::from_millis(20),
};

/// Before the fix, one failed read at takeover was taken as "no checkpoint": the job
/// started empty, and its first new checkpoint marked and deleted the real latest one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_read_error_at_takeover_is_retried_and_the_latest_recovered() -> TestResult {
    let s = written_then_taken_over("recovery-transient").await?;
    let successor = CompletedCheckpointStore::new(cas(&s.api), "orders", JOB, flaky(&s.storage, 2), s.fence.clone(), 1)
        .with_read_retries(QUICK);
    assert_eq!(successor.recover().await?, Some((2, Bytes::from_static(b"two"))));
    successor.add(3, Bytes::from_static(b"three")).await?;
    assert_eq!(successor.checkpoint_ids().await?, [3]);
    Ok(())
}

/// A read error that does not pass fails the recovery loudly; adds are refused after
/// it, so retention cannot drop the checkpoint the job must restart from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_read_error_fails_the_recovery_and_drops_nothing() -> TestResult {
    let s = written_then_taken_over("recovery-persistent").await?;
    let successor = CompletedCheckpointStore::new(
        cas(&s.api),
        "orders",
        JOB,
        flaky(&s.storage, u32::MAX),
        s.fence.clone(),
        1,
    )
    .with_read_retries(QUICK);
    match successor.recover().await {
        Err(error @ Error::StorageIo { .. }) => assert!(error.is_transient_storage_error(), "{error}"),
        other => panic!("expected the storage error, got {other:?}"),
    }
    match successor.add(3, Bytes::from_static(b"three")).await {
        Err(Error::Refused(reason)) => assert!(reason.contains("not recovered"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Checkpoint 2 is intact for the next attempt.
    let next = CompletedCheckpointStore::new(cas(&s.api), "orders", JOB, plain(&s.storage)?, s.fence.clone(), 1);
    assert_eq!(next.recover().await?, Some((2, Bytes::from_static(b"two"))));
    Ok(())
}

/// Checkpoints 1 and 2 of `JOB`, both retained, on the local file system; the path of
/// each payload file, by its content.
struct TwoRetained {
    _env: TestEnv,
    api: Api<ConfigMap>,
    storage: tempfile::TempDir,
    fence: Fence,
    one: std::path::PathBuf,
    two: std::path::PathBuf,
}

async fn two_retained(test: &str) -> Result<TwoRetained, Box<dyn std::error::Error>> {
    let env = TestEnv::new(test).await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let fence = Fence::new(0, "jm-1");
    fence.claim_job(&cas(&api), "orders", JOB).await?;
    let store = CompletedCheckpointStore::new(cas(&api), "orders", JOB, plain(&storage)?, fence.clone(), 2);
    assert_eq!(store.recover().await?, None);
    store.add(1, Bytes::from_static(b"one")).await?;
    store.add(2, Bytes::from_static(b"two")).await?;
    let payload_of = |content: &[u8]| -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
        for entry in std::fs::read_dir(storage.path().join("orders"))? {
            let path = entry?.path();
            if std::fs::read(&path)? == content {
                return Ok(path);
            }
        }
        Err(format!("no payload holds {content:?}").into())
    };
    let (one, two) = (payload_of(b"one")?, payload_of(b"two")?);
    Ok(TwoRetained {
        _env: env,
        api,
        storage,
        fence,
        one,
        two,
    })
}

/// The URI the pointer under `key` of `JOB`'s ConfigMap names.
async fn pointed_uri(api: &Api<ConfigMap>, key: &str) -> Result<String, Box<dyn std::error::Error>> {
    let cm = api.get(&flink_ha_runtime::names::job_config_map("orders", JOB)).await?;
    let value = cm.data.unwrap_or_default().remove(key).ok_or("no such key")?;
    let pointer: serde_json::Value = serde_json::from_str(&value)?;
    Ok(pointer["path"].as_str().ok_or("no path")?.to_string())
}

/// The newest checkpoint's payload is gone (a lifecycle rule, a hand that cleaned the
/// bucket): recovery fails, naming the key and the URI, as Flink's does. (Before the fix
/// it silently recovered checkpoint 1, rolling the job's state back without a word to
/// anyone but the log.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_newest_payload_fails_the_recovery_naming_the_key_and_the_uri() -> TestResult {
    let s = two_retained("recovery-missing-newest").await?;
    let key = checkpoint_key(2);
    let uri = pointed_uri(&s.api, &key).await?;
    std::fs::remove_file(&s.two)?;
    let reader = CompletedCheckpointStore::new(cas(&s.api), "orders", JOB, plain(&s.storage)?, s.fence.clone(), 2);
    match reader.recover().await {
        Err(error @ Error::CheckpointPayloadMissing { .. }) => {
            let message = error.to_string();
            assert!(message.contains(&key) && message.contains(&uri), "{message}");
            let Error::CheckpointPayloadMissing {
                name,
                key: named,
                uri: pointed,
            } = error
            else {
                unreachable!()
            };
            assert_eq!(
                (name, named, pointed),
                (flink_ha_runtime::names::job_config_map("orders", JOB), key, uri)
            );
        }
        Err(error) => panic!("expected CheckpointPayloadMissing, got {error:?}"),
        Ok(recovered) => panic!("recovered {recovered:?} past the missing newest checkpoint"),
    }
    // Nothing was dropped: the pointer is still there for the operator to judge, and
    // adds stay refused, so retention cannot drop checkpoint 1 either.
    assert_eq!(reader.checkpoint_ids().await?, [1, 2]);
    assert!(matches!(
        reader.add(3, Bytes::from_static(b"three")).await,
        Err(Error::Refused(_))
    ));
    Ok(())
}

/// With the operator's explicit choice, a missing newest payload is skipped for the
/// newest older one that can be read; if every retained payload is missing, the store is
/// not the one that wrote them (another endpoint, an emptied bucket), and the job is not
/// started empty even then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_explicit_choice_a_missing_payload_is_skipped_only_for_a_readable_older_one() -> TestResult {
    let s = two_retained("recovery-missing-opt-in").await?;
    let fall_back = || -> Result<CompletedCheckpointStore, Error> {
        Ok(
            CompletedCheckpointStore::new(cas(&s.api), "orders", JOB, plain(&s.storage)?, s.fence.clone(), 2)
                .with_missing_checkpoint(MissingCheckpoint::FallBackToOlder),
        )
    };
    std::fs::remove_file(&s.two)?;
    assert_eq!(fall_back()?.recover().await?, Some((1, Bytes::from_static(b"one"))));

    std::fs::remove_file(&s.one)?;
    match fall_back()?.recover().await {
        Err(Error::Refused(reason)) => assert!(reason.contains("missing"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    Ok(())
}

/// The payload write landed but its answer was lost: the add fails, and the object it
/// may have left under its fresh name is deleted. (Before the fix it stayed in storage
/// for good, named by no pointer.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_write_whose_answer_was_lost_leaves_no_orphan() -> TestResult {
    let s = written_then_taken_over("recovery-lost-put").await?;
    let folder = s.storage.path().join("orders");
    let store = CompletedCheckpointStore::new(
        cas(&s.api),
        "orders",
        JOB,
        flaky_store(&s.storage, 0, 1, false),
        s.fence.clone(),
        1,
    );
    assert_eq!(store.recover().await?, Some((2, Bytes::from_static(b"two"))));
    let failed = store.add(3, Bytes::from_static(b"three")).await;
    assert!(matches!(failed, Err(Error::StorageIo { .. })), "{failed:?}");
    assert_eq!(store.checkpoint_ids().await?, [2]);
    assert_eq!(
        common::file_names(&folder).len(),
        1,
        "only checkpoint 2's payload is left"
    );
    Ok(())
}

/// object_store retried a create-only write whose answer was lost, and the retry found
/// the object the first attempt wrote: that is this write, landed. (Before the fix the
/// payload was written again under another name, and the first copy was left behind.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_payload_write_that_finds_its_own_object_succeeds() -> TestResult {
    let s = written_then_taken_over("recovery-retried-put").await?;
    let folder = s.storage.path().join("orders");
    let store = CompletedCheckpointStore::new(
        cas(&s.api),
        "orders",
        JOB,
        flaky_store(&s.storage, 0, 1, true),
        s.fence.clone(),
        1,
    );
    assert_eq!(store.recover().await?, Some((2, Bytes::from_static(b"two"))));
    let added = store.add(3, Bytes::from_static(b"three")).await?;
    assert_eq!(added.subsumed, [2]);
    assert_eq!(store.checkpoint_ids().await?, [3]);
    assert_eq!(
        common::file_names(&folder).len(),
        1,
        "checkpoint 3's payload, once; 2's went with retention"
    );
    assert_eq!(store.recover().await?, Some((3, Bytes::from_static(b"three"))));
    Ok(())
}

/// Two jobs to recover; every retained checkpoint of the first is missing from storage.
/// That job fails to recover, and says so; the other one is recovered and runs. (Before
/// the fix the first job's failure failed the whole takeover: the leader gave the lock
/// up, the next one did the same, and no job of the cluster ran at all.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_job_whose_payloads_are_missing_does_not_stop_the_others() -> TestResult {
    const LOST: &str = "1111aaaa1111aaaa1111aaaa1111aaaa";
    const KEPT: &str = "2222bbbb2222bbbb2222bbbb2222bbbb";
    let env = TestEnv::new("recovery-one-job-lost").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let config = format!(
        "high-availability.type: kubernetes
high-availability.storageDir: file://{}/ha
high-availability.cluster-id: orders
kubernetes.cluster-id: orders
kubernetes.namespace: {}
high-availability.kubernetes.leader-election.lease-duration: 2 s
high-availability.kubernetes.leader-election.renew-deadline: 1500 ms
high-availability.kubernetes.leader-election.retry-period: 400 ms
",
        storage.path().display(),
        env.namespace
    );
    let settings = HaSettings::from_flink_config("config.yaml", &config)?;
    let payloads = PayloadStore::for_settings(&settings)?;

    // An earlier JobManager ran both jobs; each has one checkpoint.
    let earlier = LeaderElection::start(api.clone(), settings.election.clone());
    let (_, epoch) = earlier.wait_for_grant().await;
    let plans = ExecutionPlanStore::new(cas(&api), "orders", payloads.clone(), earlier.identity());
    let fence = Fence::new(epoch, earlier.identity());
    let mut lost_payload = String::new();
    for job in [LOST, KEPT] {
        plans.put(job, Bytes::from(format!("{{\"job\":\"{job}\"}}"))).await?;
        fence.claim_job(&cas(&api), "orders", job).await?;
        let store = CompletedCheckpointStore::new(cas(&api), "orders", job, payloads.clone(), fence.clone(), 1);
        store.recover().await?;
        let added = store.add(1, Bytes::from_static(b"state")).await?;
        if job == LOST {
            lost_payload = added.path;
        }
    }
    earlier.stop().await;
    let lost_file = lost_payload.strip_prefix("file://").ok_or("a file:// URI")?;
    std::fs::remove_file(lost_file)?;

    let history_path = storage.path().join("history.jsonl");
    let options = JobManagerOptions {
        address: "pekko.tcp://flink@127.0.0.1:16123/user/rpc/dispatcher_1".into(),
        rest_address: "http://127.0.0.1:18081".into(),
        jobs: 2,
        checkpoint_interval: Duration::from_millis(200),
        history: History::open(&history_path)?,
        ..JobManagerOptions::default()
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(jobmanager::run(env.client.clone(), settings, options, stopped));
    let events = || -> Vec<Event> {
        std::fs::read_to_string(&history_path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Line>(l).ok())
            .map(|l| l.event)
            .collect()
    };
    let recovered = |job: &str| {
        events()
            .iter()
            .any(|e| matches!(e, Event::Recovered { job: j, .. } if j == job))
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !recovered(KEPT) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send_replace(true);
    running.await??;
    let history = events();
    assert!(
        recovered(KEPT),
        "the job with its checkpoint was not recovered: {history:?}"
    );
    assert!(!recovered(LOST), "{history:?}");
    // The lost job's failure was reported, naming it.
    assert!(
        history.iter().any(
            |e| matches!(e, Event::WriteFailed { job, error, .. } if job == LOST && error.contains(&lost_payload))
        ),
        "{history:?}"
    );
    assert!(
        !history.iter().any(|e| matches!(e, Event::GaveUp { .. })),
        "the leader gave the lock up over one job: {history:?}"
    );
    Ok(())
}
