//! The orphan sweep against the real API server (issue 12's rule (g): after a run,
//! nothing leaks, not even the payload of a writer killed between its payload and its
//! pointer). The sweep deletes exactly the old payloads of this cluster no pointer
//! names, and nothing a pointer names or may yet name: not a marked entry's payload,
//! not an add of this process whose outcome is unknown, not Flink's own files or a
//! user's, not another cluster's (in a folder two clusters write), not an earlier
//! version's, nothing in a folder another cluster owns, nothing while another process
//! holds the lock, nothing in the shared `default/` folder, nothing on a store that
//! ignores create-only writes, nothing while a pointer cannot be read.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

use flink_ha_runtime::cas::Change;
use flink_ha_runtime::checkpoint_store::{CompletedCheckpointStore, PAYLOAD_KIND};
use flink_ha_runtime::cleanup::ExecutionPlanStore;
use flink_ha_runtime::fence::Fence;
use flink_ha_runtime::payloads::{OWNER_MARKER, PayloadOwner, PayloadStore, Pointer, owner_token};
use flink_ha_runtime::sweep::{Refusal, Sweep, SweepReport, min_age_floor, sweep_orphans};
use flink_ha_runtime::{Error, HaServices, HaSettings, JobId, LeaderElection, names};
use flink_ha_testenv::TestEnv;

type TestResult = Result<(), Box<dyn std::error::Error>>;

mod common;
use common::{cas, fast};

const JOB: &str = "cccccccccccccccccccccccccccccccc";
const HOUR: Duration = Duration::from_secs(3600);

fn report(sweep: Sweep) -> SweepReport {
    match sweep {
        Sweep::Done(report) => report,
        Sweep::NotOurFolder { owner } => panic!("the folder was taken for {owner}'s"),
        Sweep::Refused(refusal) => panic!("{refusal}"),
    }
}

/// Whose names the payloads of `cluster_id` in `namespace` carry: from the owner token
/// of its cluster ConfigMap, as `HaServices` derives it for a grant.
async fn owner_of(
    api: &Api<ConfigMap>,
    namespace: &str,
    cluster_id: &str,
) -> Result<PayloadOwner, Box<dyn std::error::Error>> {
    let cm = api.get(&names::cluster_config_map(cluster_id)).await?;
    let token = owner_token(&cm).ok_or("a cluster ConfigMap without an owner token")?;
    Ok(PayloadOwner::new(namespace, cluster_id, token))
}

/// Sets the file's modification time `ago` into the past: storage's clock, which the
/// sweep must not go by.
fn written_ago(path: &std::path::Path, ago: Duration) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.set_modified(std::time::SystemTime::now() - ago)
}

/// The local path of a `file://` URI.
fn local(uri: &str) -> &std::path::Path {
    std::path::Path::new(uri.trim_start_matches("file://"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_deletes_old_orphans_and_nothing_a_pointer_names_or_may_name() -> TestResult {
    let env = TestEnv::new("sweep").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let uri = format!("file://{}", storage.path().display());
    let election = LeaderElection::start(api.clone(), fast("shop"));
    let (_, epoch) = election.wait_for_grant().await;
    let owner = owner_of(&api, &env.namespace, "shop").await?;
    let payloads = PayloadStore::open(&uri, "shop")?.owned_by(owner.clone());

    // What a running cluster references: a plan and three checkpoints (two retained,
    // so the first is marked and removed by the third add).
    let plans = ExecutionPlanStore::new(cas(&api), "shop", payloads.clone(), election.identity());
    plans.put(JOB, Bytes::from_static(b"plan")).await?;
    let fence = Fence::new(epoch, election.identity());
    fence.claim_job(&cas(&api), "shop", JOB).await?;
    let checkpoints = CompletedCheckpointStore::new(cas(&api), "shop", JOB, payloads.clone(), fence, 2);
    checkpoints.recover().await?;
    for id in 1..=3 {
        checkpoints.add(id, Bytes::from(format!("checkpoint {id}"))).await?;
    }

    // An earlier version's plan (a name without an owner): still read, never swept.
    let earlier = ExecutionPlanStore::new(
        cas(&api),
        "shop",
        PayloadStore::open(&uri, "shop")?,
        election.identity(),
    );
    earlier.put(OTHER_JOB, Bytes::from_static(b"earlier plan")).await?;

    // A writer killed between payload and pointer: another process's store (its
    // memory of the unsettled write died with it). Storage says it is two hours old;
    // this process has never seen it.
    let killed = PayloadStore::open(&uri, "shop")?.owned_by(owner.clone());
    let orphan = killed.put_new(PAYLOAD_KIND, Bytes::from_static(b"orphan")).await?;
    written_ago(local(&orphan), 2 * HOUR)?;
    // The same of an earlier version: its name carries no owner, so nothing proves it
    // this cluster's.
    let unowned = PayloadStore::open(&uri, "shop")?
        .put_new(PAYLOAD_KIND, Bytes::from_static(b"unowned"))
        .await?;
    written_ago(local(&unowned), 2 * HOUR)?;
    // This process's own add whose pointer write has not settled: put_new marked it
    // before it wrote it.
    let pending = payloads.put_new(PAYLOAD_KIND, Bytes::from_static(b"pending")).await?;
    assert!(payloads.is_unsettled(&pending));
    // Beside them: Flink's own payload name, its blob folder, a user's file.
    let folder = storage.path().join("shop");
    std::fs::write(folder.join("completedCheckpointe31c6049fc69"), b"flink")?;
    std::fs::create_dir_all(folder.join("blob"))?;
    std::fs::write(
        folder.join("blob").join(format!("{PAYLOAD_KIND}{}", "a".repeat(24))),
        b"blob",
    )?;
    std::fs::write(folder.join("notes.txt"), b"a user's")?;

    let cas = cas(&api);
    let sweep = |min_age| sweep_orphans(&cas, &env.namespace, "shop", &payloads, election.identity(), min_age);

    // Too young at an hour, by this process's clock (storage's says two hours): nothing
    // goes, and the folder is claimed for this cluster.
    let first = report(sweep(HOUR).await?);
    assert_eq!(first.deleted, Vec::<String>::new());
    assert_eq!((first.young, first.unsettled, first.referenced), (1, 1, 3), "{first:?}");
    assert_eq!(first.not_ours, 2, "the earlier version's plan and orphan: {first:?}");
    assert!(folder.join(OWNER_MARKER).exists());

    // Old enough: exactly the orphan goes.
    let second = report(sweep(Duration::ZERO).await?);
    assert_eq!(second.deleted, vec![orphan.clone()], "{second:?}");
    assert_eq!(
        (second.young, second.unsettled, second.referenced, second.not_ours),
        (0, 1, 3, 2)
    );
    assert!(matches!(payloads.get(&orphan).await, Err(Error::PayloadMissing { .. })));
    assert_eq!(payloads.get(&pending).await?, Bytes::from_static(b"pending"));
    assert_eq!(payloads.get(&unowned).await?, Bytes::from_static(b"unowned"));
    let (latest, bytes) = checkpoints.recover().await?.ok_or("no checkpoint after the sweep")?;
    assert_eq!((latest, bytes), (3, Bytes::from_static(b"checkpoint 3")));
    assert_eq!(plans.job_ids().await?, [JOB, OTHER_JOB]);
    assert_eq!(plans.get(OTHER_JOB).await?, Some(Bytes::from_static(b"earlier plan")));
    for kept in ["completedCheckpointe31c6049fc69", "notes.txt", "blob"] {
        assert!(folder.join(kept).exists(), "{kept} was deleted");
    }
    // The sweeps' probes of create-only writes are gone with them.
    let probes: Vec<String> = common::file_names(&folder)
        .into_iter()
        .filter(|name| name.starts_with(flink_ha_runtime::payloads::PROBE_KIND))
        .collect();
    assert_eq!(probes, Vec::<String>::new());

    // Once the pending add settled as not written, it is an orphan like any other.
    payloads.settled(&pending);
    let third = report(sweep(Duration::ZERO).await?);
    assert_eq!(third.deleted, vec![pending]);
    election.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_sweep_without_the_lock_or_in_another_clusters_folder() -> TestResult {
    let env = TestEnv::new("sweep-guard").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let uri = format!("file://{}", storage.path().display());
    let payloads = PayloadStore::open(&uri, "twin")?;
    let election = LeaderElection::start(api.clone(), fast("twin"));
    election.wait_for_grant().await;
    let orphan = PayloadStore::open(&uri, "twin")?
        .owned_by(owner_of(&api, &env.namespace, "twin").await?)
        .put_new(PAYLOAD_KIND, Bytes::from_static(b"orphan"))
        .await?;

    // A standby's sweep is refused before it deletes anything.
    let standby = sweep_orphans(
        &cas(&api),
        &env.namespace,
        "twin",
        &payloads,
        "a-standby",
        Duration::ZERO,
    )
    .await;
    assert!(matches!(standby, Err(Error::NotLeader { .. })), "{standby:?}");
    assert!(payloads.get(&orphan).await.is_ok());

    // The same cluster id in another namespace owns the folder: hands off.
    let other = "another-namespace/twin";
    assert_eq!(
        payloads.claim_folder(other).await?,
        flink_ha_runtime::payloads::FolderOwner::This
    );
    let foreign = sweep_orphans(
        &cas(&api),
        &env.namespace,
        "twin",
        &payloads,
        election.identity(),
        Duration::ZERO,
    )
    .await?;
    assert_eq!(foreign, Sweep::NotOurFolder { owner: other.into() });
    assert!(payloads.get(&orphan).await.is_ok());

    // Its owner's cleanup releases the marker only when the marker is its own.
    payloads.release_folder(&format!("{}/twin", env.namespace)).await?;
    assert!(storage.path().join("twin").join(OWNER_MARKER).exists());
    payloads.release_folder(other).await?;
    assert!(!storage.path().join("twin").join(OWNER_MARKER).exists());
    election.stop().await;
    Ok(())
}

// ---- Two clusters, one folder: the sweep deletes only what is provably its own. ----

const OTHER_JOB: &str = "dddddddddddddddddddddddddddddddd";

/// A Flink configuration for cluster `cluster_id` in `namespace`, payloads under
/// `storage_dir` in the folder `ha_cluster_id` (unset: Flink's `default`), with leases
/// of 2 s and no retries: a sweep floor of 6 s, short enough for a test.
fn flink_config(namespace: &str, cluster_id: &str, storage_dir: &str, ha_cluster_id: Option<&str>) -> String {
    let folder = ha_cluster_id.map_or(String::new(), |id| format!("high-availability.cluster-id: {id}\n"));
    format!(
        "high-availability.type: kubernetes
high-availability.storageDir: {storage_dir}
kubernetes.cluster-id: {cluster_id}
kubernetes.namespace: {namespace}
{folder}high-availability.kubernetes.leader-election.lease-duration: 2 s
high-availability.kubernetes.leader-election.renew-deadline: 1500 ms
high-availability.kubernetes.leader-election.retry-period: 400 ms
kubernetes.transactional-operation.max-retries: 0
"
    )
}

/// One runtime cluster as `flink-ha jobmanager` runs one: a namespace of its own, its
/// services built from a Flink configuration, and this process leading it.
struct Cluster {
    _env: TestEnv,
    api: Api<ConfigMap>,
    services: HaServices,
    election: LeaderElection,
    epoch: u64,
}

impl Cluster {
    async fn start(
        test: &str,
        cluster_id: &str,
        storage_dir: &str,
        ha_cluster_id: Option<&str>,
    ) -> Result<Cluster, Box<dyn std::error::Error>> {
        let env = TestEnv::new(test).await?;
        let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
        let config = flink_config(&env.namespace, cluster_id, storage_dir, ha_cluster_id);
        let settings = HaSettings::from_flink_config("config.yaml", &config)?;
        let services = HaServices::new(env.client.clone(), settings)?;
        let election = services.leader_election();
        let (_, epoch) = tokio::time::timeout(Duration::from_secs(20), election.wait_for_grant()).await?;
        Ok(Cluster {
            _env: env,
            api,
            services,
            election,
            epoch,
        })
    }

    /// What a JobManager writes for a job: its plan, then two checkpoints (one retained).
    async fn run_job(&self, job: &str) -> TestResult {
        self.services
            .execution_plans(&self.election)
            .put(job, Bytes::from(format!("plan of {job}")))
            .await?;
        let ha = self
            .services
            .take_up_job(&self.election, self.epoch, &JobId::parse(job)?)
            .await?;
        ha.checkpoints().recover().await?;
        for id in 1..=2 {
            ha.checkpoints()
                .add(id, Bytes::from(format!("checkpoint {id} of {job}")))
                .await?;
        }
        Ok(())
    }

    /// A payload of this cluster no pointer names, as a writer killed between payload
    /// and pointer leaves one (another process: this one never marked it unsettled).
    async fn orphan(&self) -> Result<String, Box<dyn std::error::Error>> {
        let token = self.election.payload_owner_token().ok_or("not leading")?;
        let namespace = &self.services.settings().namespace;
        let owner = PayloadOwner::new(namespace, self.services.cluster_id(), &token);
        let settings = self.services.settings();
        let killed = PayloadStore::open(&settings.storage_dir, &settings.storage_cluster_id)?.owned_by(owner);
        Ok(killed.put_new(PAYLOAD_KIND, Bytes::from_static(b"orphan")).await?)
    }

    /// The sweep as the JobManager runs it: at the youngest minimum age allowed.
    async fn sweep(&self) -> Result<Sweep, Error> {
        let floor = min_age_floor(&self.services.settings().election);
        self.services.sweep_orphans(&self.election, floor).await
    }

    /// Every payload a pointer of this cluster names, each read back; how many.
    async fn named_payloads_are_there(&self) -> Result<usize, Box<dyn std::error::Error>> {
        let cluster_id = self.services.cluster_id().as_str();
        let cas = cas(&self.api);
        let mut config_maps = cas.job_config_maps(cluster_id).await?;
        config_maps.extend(cas.get(&names::cluster_config_map(cluster_id)).await?);
        let mut named = 0;
        for cm in &config_maps {
            for (key, value) in cm.data.iter().flatten() {
                if !key.starts_with("flink-ha.executionPlan-") && !key.starts_with("flink-ha.checkpointID-") {
                    continue;
                }
                let pointer = Pointer::parse(value)?;
                self.services
                    .payloads()
                    .get(&pointer.path)
                    .await
                    .map_err(|e| format!("{key} of {cluster_id} names {}: {e}", pointer.path))?;
                named += 1;
            }
        }
        Ok(named)
    }
}

/// Waits past the sweep floor, so every payload written so far is old enough to go.
async fn past_the_floor(cluster: &Cluster) {
    let floor = min_age_floor(&cluster.services.settings().election);
    tokio::time::sleep(floor + Duration::from_secs(1)).await;
}

/// The user's report: two standalone clusters (namespaces of their own,
/// `high-availability.cluster-id` unset) both write into `<storageDir>/default/`, as
/// every standalone cluster does. The one that claimed the folder first read only its
/// own ConfigMaps and deleted the other's plans one floor after they were written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_clusters_in_default_never_sweep_each_others_payloads() -> TestResult {
    let storage = tempfile::tempdir()?;
    let uri = format!("file://{}", storage.path().display());
    let a = Cluster::start("sweep-default-a", "shop", &uri, None).await?;
    let b = Cluster::start("sweep-default-b", "bank", &uri, None).await?;
    assert!(matches!(
        a.services.orphan_sweep_refusal(),
        Some(Refusal::SharedFolder { .. })
    ));
    a.run_job(JOB).await?;
    b.run_job(OTHER_JOB).await?;
    past_the_floor(&a).await;
    // Twice, a floor apart: whatever one sweep takes for young, the next takes for old.
    for _ in 0..2 {
        for cluster in [&a, &b] {
            let swept = cluster.sweep().await?;
            let Sweep::Refused(refusal @ Refusal::SharedFolder { .. }) = &swept else {
                panic!("a sweep in default/: {swept:?}");
            };
            assert!(
                refusal.to_string().contains("high-availability.cluster-id"),
                "{refusal}"
            );
        }
        assert_eq!(a.named_payloads_are_there().await?, 2, "a's plan and checkpoint");
        assert_eq!(b.named_payloads_are_there().await?, 2, "b's plan and checkpoint");
        past_the_floor(&a).await;
    }
    // Nothing was touched: not even the owner marker was written.
    assert!(!storage.path().join("default").join(OWNER_MARKER).exists());
    Ok(())
}

/// Twin clusters: one cluster id and one `high-availability.cluster-id` in two
/// namespaces, one folder. Neither deletes what the other's pointers name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twin_clusters_in_two_namespaces_never_sweep_each_others_payloads() -> TestResult {
    let storage = tempfile::tempdir()?;
    let uri = format!("file://{}", storage.path().display());
    let a = Cluster::start("sweep-twin-a", "twin", &uri, Some("twin")).await?;
    let b = Cluster::start("sweep-twin-b", "twin", &uri, Some("twin")).await?;
    a.run_job(JOB).await?;
    b.run_job(OTHER_JOB).await?;
    // Each leaves an orphan, as a writer killed between payload and pointer does.
    let orphan_a = a.orphan().await?;
    let orphan_b = b.orphan().await?;
    past_the_floor(&a).await;
    // a claims the folder; its first sweep sees its orphan for the first time, its
    // second (a floor later) deletes it. b's payloads are never a's candidates.
    let mut deleted = Vec::new();
    for _ in 0..2 {
        let swept = report(a.sweep().await?);
        assert_eq!(
            (swept.referenced, swept.not_ours),
            (2, 3),
            "b's plan, checkpoint and orphan: {swept:?}"
        );
        deleted.extend(swept.deleted);
        let other = b.sweep().await?;
        assert!(
            matches!(&other, Sweep::NotOurFolder { owner } if owner.ends_with("/twin")),
            "{other:?}"
        );
        assert_eq!(a.named_payloads_are_there().await?, 2, "a's plan and checkpoint");
        assert_eq!(b.named_payloads_are_there().await?, 2, "b's plan and checkpoint");
        past_the_floor(&a).await;
    }
    assert_eq!(deleted, vec![orphan_a]);
    assert_eq!(
        b.services.payloads().get(&orphan_b).await?,
        Bytes::from_static(b"orphan")
    );
    Ok(())
}

/// The local file system, except that a create-only write overwrites: an S3-compatible
/// store that ignores `If-None-Match`. (A real store that does so is not at hand; the
/// fault is in front of a real one.)
#[derive(Debug)]
struct IgnoresCreateOnly(object_store::local::LocalFileSystem);

impl std::fmt::Display for IgnoresCreateOnly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IgnoresCreateOnly({})", self.0)
    }
}

#[async_trait::async_trait]
impl ObjectStore for IgnoresCreateOnly {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        mut opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if matches!(opts.mode, PutMode::Create) {
            opts.mode = PutMode::Overwrite;
        }
        self.0.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.0.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        self.0.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.0.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.0.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.0.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.0.copy_opts(from, to, options).await
    }
}

/// On a store that does not honour create-only writes, the owner marker proves
/// nothing (every cluster "claims" it) and neither does a fresh name: no sweep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_without_create_only_writes_is_not_swept() -> TestResult {
    let env = TestEnv::new("sweep-no-create-only").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let root = Path::from(storage.path().display().to_string()).join("lax");
    let store: Arc<dyn ObjectStore> = Arc::new(IgnoresCreateOnly(object_store::local::LocalFileSystem::new()));
    let payloads = PayloadStore::with_object_store(store.clone(), "file://", root.clone());
    let election = LeaderElection::start(api.clone(), fast("lax"));
    election.wait_for_grant().await;
    let orphan = PayloadStore::with_object_store(store, "file://", root)
        .owned_by(owner_of(&api, &env.namespace, "lax").await?)
        .put_new(PAYLOAD_KIND, Bytes::from_static(b"orphan"))
        .await?;

    let swept = sweep_orphans(
        &cas(&api),
        &env.namespace,
        "lax",
        &payloads,
        election.identity(),
        Duration::ZERO,
    )
    .await?;
    let Sweep::Refused(refusal @ Refusal::NoCreateOnly { .. }) = &swept else {
        panic!("a sweep on a store that overwrites: {swept:?}");
    };
    assert!(refusal.to_string().contains("If-None-Match"), "{refusal}");
    assert_eq!(payloads.get(&orphan).await?, Bytes::from_static(b"orphan"));
    // Only the orphan is there: no owner marker was claimed, the probe is deleted.
    let left = common::file_names(&storage.path().join("lax"));
    assert_eq!(
        left,
        [local(&orphan).file_name().and_then(|n| n.to_str()).ok_or("a name")?]
    );
    election.stop().await;
    Ok(())
}

/// A pointer the sweep cannot read may name any payload: nothing is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pointer_that_does_not_parse_stops_the_sweep_before_any_delete() -> TestResult {
    let storage = tempfile::tempdir()?;
    let uri = format!("file://{}", storage.path().display());
    let a = Cluster::start("sweep-bad-pointer", "shop", &uri, Some("shop")).await?;
    a.run_job(JOB).await?;
    // The plan's pointer, cut short (a hand edit, a truncated restore).
    let name = names::cluster_config_map("shop");
    let key = format!("flink-ha.executionPlan-{JOB}");
    let mut plan = None;
    cas(&a.api)
        .update(&name, |cm| {
            let value = cm
                .data
                .get_or_insert_with(Default::default)
                .get_mut(&key)
                .ok_or_else(|| Error::Refused("no plan".into()))?;
            plan = Some(Pointer::parse(value).map_err(|e| Error::Refused(e.to_string()))?.path);
            value.truncate(value.len() - 2);
            Ok(Change::Write)
        })
        .await?;
    let plan = plan.ok_or("no plan pointer")?;
    // And an orphan, which a sweep a floor after it first saw it would delete.
    let orphan = a.orphan().await?;
    past_the_floor(&a).await;
    for _ in 0..2 {
        let swept = a.sweep().await;
        assert!(
            matches!(&swept, Err(Error::Corrupt { key: bad, .. }) if *bad == key),
            "{swept:?}"
        );
        assert_eq!(
            a.services.payloads().get(&plan).await?,
            Bytes::from(format!("plan of {JOB}"))
        );
        assert_eq!(a.services.payloads().get(&orphan).await?, Bytes::from_static(b"orphan"));
        past_the_floor(&a).await;
    }
    Ok(())
}

/// `kubectl delete` of the cluster ConfigMap under its leader: the leader restores it
/// (a new uid) with its owner token, so what the cluster wrote before stays provably
/// its own, and its orphans are still swept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_cluster_config_map_keeps_the_payloads_owner() -> TestResult {
    let storage = tempfile::tempdir()?;
    let uri = format!("file://{}", storage.path().display());
    let a = Cluster::start("sweep-restored", "shop", &uri, Some("shop")).await?;
    a.run_job(JOB).await?;
    let orphan = a.orphan().await?;
    let name = names::cluster_config_map("shop");
    let before = a.api.get(&name).await?;
    // Let the election's watch see the latest state, then delete the ConfigMap.
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.api.delete(&name, &Default::default()).await?;
    let restored = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(Some(cm)) = a.api.get_opt(&name).await
                && cm.metadata.uid != before.metadata.uid
            {
                return cm;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await?;
    assert_eq!(owner_token(&restored), owner_token(&before));
    assert!(owner_token(&restored).is_some());

    let first = report(a.sweep().await?);
    assert_eq!((first.referenced, first.young, first.not_ours), (2, 1, 0), "{first:?}");
    past_the_floor(&a).await;
    let second = report(a.sweep().await?);
    assert_eq!(second.deleted, vec![orphan], "{second:?}");
    assert_eq!(a.named_payloads_are_there().await?, 2);
    Ok(())
}
