//! The nemesis test: real `flink-ha jobmanager` processes of four clusters on one API
//! server and one storageDir (two in different namespaces sharing a payload folder, two
//! with `high-availability.cluster-id` unset sharing `default/`; `delete-on-commit` on
//! for half; wall clocks minutes ahead and behind; a storage server whose Last-Modified
//! times run 7 minutes behind) run jobs that checkpoint and end (succeeded, cancelled or
//! failed) and are replaced, against the real API server and the real S3 server, while a
//! seeded schedule of faults hits them: SIGKILL and SIGSTOP (past the lease) of a leader,
//! SIGSTOP of the API server, answers dropped or delayed between a JobManager and the API
//! server (a proxy per JobManager), storage errors, lost answers, stalls, 404s for
//! objects that exist, 412s, lost objects and a JobManager cut off from storage alone (a
//! storage proxy per JobManager), cluster and job ConfigMaps deleted, and faults on top
//! of each other (a pause as a payload is written or a folder listed, a lost answer
//! during a ConfigMap deletion, a stall during a job-result write). Every JobManager
//! writes down what it did (`--history`); the harness watches every ConfigMap version
//! the API server stores and every write the storage proxies forward; at the end the
//! checker (`nemesis/checker.rs`) reads it all with the HA state left behind, and names
//! every broken guarantee.
//!
//! `NEMESIS_SECS` (default 60) sets how long faults are injected, `NEMESIS_SEED` the
//! schedule (printed at the start; the same seed gives the same schedule of faults,
//! though not the same timing of the processes), `NEMESIS_FAULTS` (comma-separated
//! kinds) narrows the schedule to some kinds. The long run:
//! `NEMESIS_SECS=1800 cargo test --release -p flink-ha-cli --test nemesis -- --nocapture no_acknowledged`.
//!
//! **The mutation check** (`planted_*` tests): the same run with one bug planted in the
//! runtime (`flink_ha_runtime::planted`, switched on by environment variable in the
//! binary the tests build), a fixed seed and the faults that bug needs; the checker must
//! name it, by the rule written beside it.

#[path = "nemesis/checker.rs"]
mod checker;
#[path = "nemesis/proxy.rs"]
mod proxy;
#[path = "nemesis/watch.rs"]
mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams};
use rustix::process::{Pid, Signal};

use checker::{FinalState, Observed, Record, Violation};
use flink_ha_runtime::checkpoint_store::{CHECKPOINT_PREFIX, PAYLOAD_KIND as CHECKPOINT_KIND};
use flink_ha_runtime::cleanup::EXECUTION_PLAN_PREFIX;
use flink_ha_runtime::history::{Event, Line, monotonic_ns};
use flink_ha_runtime::job_result_store::JobResultStore;
use flink_ha_runtime::payloads::{OWNER_MARKER, PROBE_KIND, PayloadOwner, PayloadStore, Pointer, owner_token};
use flink_ha_runtime::planted::{Bug, PLANTED_BUG_ENV};
use flink_ha_runtime::sweep::PAYLOAD_KINDS;
use flink_ha_runtime::{HaSettings, names};
use flink_ha_testenv::{S3Server, TestEnv, pki};
use proxy::{StorageFault, StorageLog, StorageProxy, TcpProxy, WireFault};
use watch::ConfigMapWatch;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const BUCKET: &str = "nemesis";
const LEASE: Duration = Duration::from_secs(2);
/// The orphan sweep's minimum age: the floor for the lease and the 3 retries of
/// `config` ((2 × 4 + 1) × 2 s; `flink-ha jobmanager` refuses less).
const ORPHAN_MIN_AGE: Duration = Duration::from_secs(18);

/// The faults, by the name the summary line counts them under.
const FAULT_KINDS: [&str; 20] = [
    "kill",
    "pause",
    "apiserver-pause",
    "api-drop",
    "api-delay",
    "api-cut",
    "api-delay-then-drop",
    "storage-errors",
    "storage-resets",
    "storage-stall",
    "storage-404",
    "storage-412",
    "storage-partition",
    "lose-object",
    "delete-cluster-cm",
    "delete-job-cm",
    "drop-during-cm-delete",
    "pause-during-sweep",
    "pause-during-write",
    "stall-during-job-result",
];

/// One cluster of a run.
#[derive(Clone, Copy, Debug)]
struct Shape {
    jobmanagers: usize,
    /// `kubernetes.cluster-id` (each cluster has a namespace of its own).
    cluster_id: &'static str,
    /// `high-availability.cluster-id`: the payload folder's name. Two clusters with the
    /// same one share a folder; unset, it is Flink's `default`, shared by all such.
    ha_cluster_id: Option<&'static str>,
    /// `job-result-store.delete-on-commit`.
    delete_on_commit: bool,
    /// `high-availability.kubernetes.leader-election.renew-deadline`, in ms; the lease is
    /// 2 s. Flink's default shape is a renew deadline as long as the lease.
    renew_deadline_ms: u64,
}

/// Two clusters in one folder `nemesis/` (different namespaces, one cluster id, the
/// folder named by `high-availability.cluster-id`), and a pair with it unset (cluster ids
/// `nemesis` and `orders`), in `default/`; all on one storageDir, each in its namespace.
fn four_clusters() -> Vec<Shape> {
    vec![
        Shape {
            jobmanagers: 3,
            cluster_id: "nemesis",
            ha_cluster_id: Some("nemesis"),
            delete_on_commit: false,
            renew_deadline_ms: 1500,
        },
        Shape {
            jobmanagers: 2,
            cluster_id: "nemesis",
            ha_cluster_id: Some("nemesis"),
            delete_on_commit: true,
            renew_deadline_ms: 1500,
        },
        Shape {
            jobmanagers: 1,
            cluster_id: "nemesis",
            ha_cluster_id: None,
            delete_on_commit: false,
            renew_deadline_ms: 1500,
        },
        Shape {
            jobmanagers: 1,
            cluster_id: "orders",
            ha_cluster_id: None,
            delete_on_commit: true,
            renew_deadline_ms: 1500,
        },
    ]
}

/// One cluster of `jobmanagers` in its own folder.
fn one_cluster(jobmanagers: usize) -> Vec<Shape> {
    vec![Shape {
        jobmanagers,
        cluster_id: "nemesis",
        ha_cluster_id: Some("nemesis"),
        delete_on_commit: false,
        renew_deadline_ms: 1500,
    }]
}

/// The JobManagers' wall-clock offsets, dealt out in turn.
const CLOCK_OFFSETS: [&str; 5] = ["0 s", "+3 min", "-2 min", "+45 s", "-5 min"];

/// One run's shape.
struct Scenario {
    name: String,
    seconds: u64,
    seed: u64,
    kinds: Vec<&'static str>,
    clusters: Vec<Shape>,
    finish_after: u64,
    planted: Option<Bug>,
    /// Wait for an orphan sweep after the faults (the leak rule (g) needs it).
    wait_for_sweep: bool,
}

fn config(namespace: &str, storage_endpoint: &str, shape: Shape) -> String {
    let delete_on_commit = shape.delete_on_commit;
    let cluster_id = shape.cluster_id;
    let renew_deadline = shape.renew_deadline_ms;
    let ha_cluster_id = shape
        .ha_cluster_id
        .map(|id| format!("high-availability.cluster-id: {id}\n"))
        .unwrap_or_default();
    format!(
        "{ha_cluster_id}high-availability.type: kubernetes
high-availability.storageDir: s3://{BUCKET}/recovery
s3.endpoint: {storage_endpoint}
s3.path.style.access: true
s3.access-key: flink-ha-test
s3.secret-key: flink-ha-test-secret
kubernetes.cluster-id: {cluster_id}
kubernetes.namespace: {namespace}
execution.checkpointing.interval: 200 ms
execution.checkpointing.num-retained: 2
job-result-store.delete-on-commit: {delete_on_commit}
high-availability.kubernetes.leader-election.lease-duration: 2 s
high-availability.kubernetes.leader-election.renew-deadline: {renew_deadline} ms
high-availability.kubernetes.leader-election.retry-period: 400 ms
kubernetes.transactional-operation.max-retries: 3
"
    )
}

/// One cluster: its namespace, and how its job results are committed.
struct ClusterOf {
    env: TestEnv,
    api: Api<ConfigMap>,
    watch: ConfigMapWatch,
    shape: Shape,
    /// Its settings with the S3 server's own endpoint: the harness reads and destroys
    /// objects around the proxies.
    direct: HaSettings,
}

/// One JobManager slot: its proxies, its files, its current process.
struct Slot {
    cluster: usize,
    name: String,
    /// How far this JobManager's wall clock is off (`--wall-clock-offset`).
    clock_offset: String,
    proxy: TcpProxy,
    storage: StorageProxy,
    kubeconfig: PathBuf,
    config: PathBuf,
    history: PathBuf,
    child: Option<Child>,
}

/// Everything the run started; stops it all when dropped, also when the test fails.
struct Run {
    slots: Vec<Slot>,
    apiserver_pid: Option<u32>,
    finish_after: u64,
    planted: Option<Bug>,
    /// Identities by process id, as [`Run::identity`] found them.
    identities: Mutex<std::collections::HashMap<u32, String>>,
}

impl Run {
    fn spawn(&mut self, index: usize, plane: &flink_ha_testenv::ControlPlane) -> std::io::Result<()> {
        let finish_after = self.finish_after.to_string();
        let slot = &mut self.slots[index];
        let mut command = Command::new(env!("CARGO_BIN_EXE_flink-ha"));
        command
            .args(["jobmanager", "--jobs", "2", "--checkpoint-interval", "200 ms"])
            .args(["--finish-after", &finish_after])
            .args(["--orphan-sweep-interval", "1 s"])
            .args(["--orphan-min-age", &format!("{} s", ORPHAN_MIN_AGE.as_secs())])
            .arg("--config")
            .arg(&slot.config)
            .arg("--history")
            .arg(&slot.history)
            .args(["--address", &slot.name])
            .args(["--wall-clock-offset", &slot.clock_offset])
            .env("KUBECONFIG", &slot.kubeconfig)
            .env("RUST_LOG", "error")
            .env_remove(PLANTED_BUG_ENV)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(bug) = self.planted {
            command.env(PLANTED_BUG_ENV, bug.name());
        }
        let child = command.spawn()?;
        plane.adopt(child.id());
        slot.child = Some(child);
        Ok(())
    }

    /// The identity the process `pid` of slot `index` wrote into its history (read once
    /// per process: a 30-minute history is too long to read at every fault).
    fn identity(&self, index: usize, pid: u32) -> String {
        let mut known = self
            .identities
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(identity) = known.get(&pid) {
            return identity.clone();
        }
        let identity = identity_of(&self.slots[index].history, pid);
        if !identity.is_empty() {
            known.insert(pid, identity.clone());
        }
        identity
    }

    fn pid(&self, index: usize) -> Option<u32> {
        self.slots[index].child.as_ref().map(Child::id)
    }

    fn of_cluster(&self, cluster: usize) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].cluster == cluster)
            .collect()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(pid) = self.apiserver_pid {
            signal(pid, Signal::CONT);
        }
        for slot in &mut self.slots {
            if let Some(mut child) = slot.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn signal(pid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// `host:port` of a URL like `https://127.0.0.1:6443`.
fn socket_of(url: &str) -> Result<SocketAddr, String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.trim_end_matches('/')
        .parse()
        .map_err(|e| format!("{url} is not host:port: {e}"))
}

/// Every line of the history files of `slots`, in file order.
fn read_histories<'a>(slots: impl IntoIterator<Item = &'a Slot>) -> Result<Vec<Record>, String> {
    let mut records = Vec::new();
    for slot in slots {
        let name = slot
            .history
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&slot.history).unwrap_or_default();
        let lines = text.lines().count();
        for (number, text) in text.lines().enumerate() {
            // A line cut by a SIGKILL is the only one that may not parse: the last.
            match serde_json::from_str::<Line>(text) {
                Ok(line) => records.push(Record {
                    line,
                    source: format!("{name}:{}", number + 1),
                    text: text.to_string(),
                }),
                Err(error) if number + 1 == lines => {
                    eprintln!("nemesis: {name}:{}: a cut line ({error})", number + 1)
                }
                Err(error) => return Err(format!("{name}:{}: {error}: {text}", number + 1)),
            }
        }
    }
    Ok(records)
}

/// The slot of `cluster` whose current process holds its lock, by the identity in the
/// lock record and the identities the processes wrote into their histories.
async fn leader_slot(api: &Api<ConfigMap>, cluster_id: &str, run: &Run, cluster: usize) -> Option<usize> {
    let cm = tokio::time::timeout(
        Duration::from_secs(2),
        api.get_opt(&names::cluster_config_map(cluster_id)),
    )
    .await
    .ok()?
    .ok()??;
    let raw = cm.metadata.annotations?.remove(names::LEADER_ANNOTATION)?;
    let holder = serde_json::from_str::<serde_json::Value>(&raw).ok()?["holderIdentity"]
        .as_str()?
        .to_string();
    run.of_cluster(cluster)
        .into_iter()
        .find(|&index| run.pid(index).is_some_and(|pid| run.identity(index, pid) == holder))
}

/// The HA state of one cluster after the run, read around the proxies.
async fn final_state(
    api: &Api<ConfigMap>,
    namespace: &str,
    cluster_id: &str,
    settings: &HaSettings,
    swept: bool,
) -> Result<FinalState, Box<dyn std::error::Error>> {
    let mut state = FinalState {
        orphans_may_stay: !swept,
        ..FinalState::default()
    };
    let list = api
        .list(&ListParams::default().labels(&names::ha_selector(cluster_id)))
        .await?;
    let mut token = None;
    for cm in list.items {
        let name = cm.metadata.name.clone().unwrap_or_default();
        if name == names::cluster_config_map(cluster_id) {
            token = owner_token(&cm).map(str::to_string);
        }
        if let Some(job) = name
            .strip_prefix(&format!("{cluster_id}-"))
            .and_then(|n| n.strip_suffix("-config-map"))
            .filter(|job| *job != "cluster")
        {
            state.job_config_maps.insert(job.to_string());
        }
        for (key, value) in cm.data.unwrap_or_default() {
            let is_pointer = key.starts_with(CHECKPOINT_PREFIX) || key.starts_with(EXECUTION_PLAN_PREFIX);
            if !is_pointer {
                continue;
            }
            if let Some(job) = key.strip_prefix(EXECUTION_PLAN_PREFIX) {
                state.plans.insert(job.to_string());
            }
            let pointer = Pointer::parse(&value).map_err(|e| format!("{name}/{key} {e}"))?;
            state
                .pointers
                .push((name.clone(), key, pointer.path, pointer.marked_for_deletion));
        }
    }
    let owner = token.map(|token| PayloadOwner::new(namespace, cluster_id, &token));
    let payloads = PayloadStore::for_settings(settings)?;
    let (store, root) = payloads.object_store();
    let objects: Vec<_> = store.list(Some(root)).try_collect().await?;
    // This cluster's payloads (the folder is shared), but for the sweep's owner marker
    // and its probe (of a sweep cut off by the stop), which hold no data.
    state.payloads = objects
        .iter()
        .filter(|o| o.location.filename() != Some(OWNER_MARKER))
        .filter(|o| !o.location.filename().is_some_and(|name| name.starts_with(PROBE_KIND)))
        .filter(|o| {
            let name = o.location.filename().unwrap_or_default();
            owner.as_ref().is_some_and(|owner| owner.owns(name, &PAYLOAD_KINDS))
        })
        .map(|o| payloads.uri_of(&o.location))
        .collect();
    let entries = JobResultStore::for_settings(settings)?.entries().await?;
    state.dirty_results = entries.dirty.into_iter().map(|r| r.job_id).collect();
    state.clean_results = entries.clean.into_iter().collect();
    Ok(state)
}

fn env_u64(name: &str) -> Result<Option<u64>, String> {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|e| format!("{name}={text}: not a whole number ({e})")),
        Err(_) => Ok(None),
    }
}

/// Fault kinds the default schedule leaves out, each for a violation it finds that is
/// not fixed yet (`NEMESIS_FAULTS` still runs them). None now; `drop-during-cm-delete`
/// was here until the plan pointers got a copy in each job ConfigMap.
const NOT_YET: [&str; 0] = [];

/// The fault kinds `NEMESIS_FAULTS` names, or all but [`NOT_YET`].
fn kinds_from_env() -> Result<Vec<&'static str>, String> {
    let Ok(text) = std::env::var("NEMESIS_FAULTS") else {
        return Ok(FAULT_KINDS.into_iter().filter(|k| !NOT_YET.contains(k)).collect());
    };
    text.split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|kind| {
            FAULT_KINDS.iter().find(|k| **k == kind).copied().ok_or_else(|| {
                format!(
                    "NEMESIS_FAULTS: no fault kind `{kind}` (kinds: {})",
                    FAULT_KINDS.join(", ")
                )
            })
        })
        .collect()
}

/// One nemesis run at a time in this test binary: two side by side on two cores would
/// miss their leases for the CPU, not for the faults.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_checkpoint_is_lost_and_no_finished_job_rerun_under_faults() -> TestResult {
    let _turn = TURN.lock().await;
    let seconds = env_u64("NEMESIS_SECS")?.unwrap_or(60);
    let seed = env_u64("NEMESIS_SEED")?.unwrap_or_else(|| fastrand::u64(..));
    let outcome = run(Scenario {
        name: "nemesis".into(),
        seconds,
        seed,
        kinds: kinds_from_env()?,
        clusters: four_clusters(),
        finish_after: 25,
        planted: None,
        wait_for_sweep: true,
    })
    .await?;
    if !outcome.violations.is_empty() {
        return Err(format!(
            "{} violations (seed {seed}); histories kept in {}",
            outcome.violations.len(),
            outcome.kept.display()
        )
        .into());
    }
    Ok(())
}

/// The mutation check: `bug` planted, the checker must name it by `rule`.
async fn planted(
    bug: Bug,
    rule: char,
    kinds: &[&'static str],
    seconds: u64,
    clusters: Vec<Shape>,
    finish_after: u64,
) -> TestResult {
    let _turn = TURN.lock().await;
    let seed = env_u64("NEMESIS_SEED")?.unwrap_or(26);
    let outcome = run(Scenario {
        name: format!("planted {}", bug.name()),
        seconds,
        seed,
        kinds: kinds.to_vec(),
        clusters,
        finish_after,
        planted: Some(bug),
        wait_for_sweep: false,
    })
    .await?;
    let named: BTreeSet<char> = outcome.violations.iter().map(|v| v.rule).collect();
    eprintln!(
        "nemesis: planted {} named by {:?} (expected {rule}); histories in {}",
        bug.name(),
        named,
        outcome.kept.display()
    );
    assert!(
        named.contains(&rule),
        "the checker did not name the planted bug {} by rule ({rule}): it named {named:?} (seed {seed}, histories in {})",
        bug.name(),
        outcome.kept.display()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_no_fence_is_named_by_d() -> TestResult {
    planted(Bug::NoFence, 'd', &["pause-during-write"], 30, one_cluster(3), 25).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_older_checkpoint_is_named_by_a() -> TestResult {
    planted(Bug::OlderCheckpoint, 'a', &["kill"], 15, one_cluster(2), 25).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_sweep_any_owner_is_named_by_b() -> TestResult {
    // Jobs that live past the sweep's minimum age, so the other cluster's sweep sees
    // their plans old enough; no faults needed.
    planted(Bug::SweepAnyOwner, 'b', &[], 30, four_clusters()[..2].to_vec(), 1000).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_no_job_result_is_named_by_b() -> TestResult {
    planted(Bug::NoJobResult, 'b', &[], 10, one_cluster(1), 10).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_cleanup_before_result_is_named_by_b() -> TestResult {
    planted(Bug::CleanupBeforeResult, 'b', &[], 10, one_cluster(1), 10).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_step_down_from_answer_is_named_by_c() -> TestResult {
    // Flink's default shape (renew deadline = lease): the step-down margin is a tenth of
    // the lease, and an answer delayed past it shows the bug.
    let shape = Shape {
        renew_deadline_ms: 2000,
        ..one_cluster(3)[0]
    };
    planted(
        Bug::StepDownFromAnswer,
        'c',
        &["api-delay-then-drop"],
        40,
        vec![shape],
        25,
    )
    .await
}

/// What a run left: the violations, and the folder with its histories.
struct Outcome {
    violations: Vec<Violation>,
    kept: PathBuf,
}

async fn run(scenario: Scenario) -> Result<Outcome, Box<dyn std::error::Error>> {
    let Scenario {
        name: run_name,
        seconds,
        seed,
        kinds,
        clusters: shapes,
        finish_after,
        planted,
        wait_for_sweep,
    } = scenario;
    eprintln!(
        "{run_name}: seed {seed}, {seconds} s of faults (NEMESIS_SEED={seed} NEMESIS_SECS={seconds} repeats the schedule)"
    );
    let mut rng = fastrand::Rng::with_seed(seed);

    let s3 = S3Server::shared()?;
    s3.create_bucket(BUCKET)?;
    let upstream = socket_of(&s3.endpoint())?;
    let log: StorageLog = Arc::new(Mutex::new(Vec::new()));
    let dir = tempfile::Builder::new().prefix("flink-ha-nemesis-").tempdir()?;
    let mut clusters: Vec<ClusterOf> = Vec::new();
    for (index, shape) in shapes.iter().enumerate() {
        let env = TestEnv::new(&format!("nemesis-{index}")).await?;
        let api = Api::namespaced(env.client.clone(), &env.namespace);
        let watch = ConfigMapWatch::start(env.client.clone(), &env.namespace).await?;
        let direct = HaSettings::from_flink_config("config.yaml", &config(&env.namespace, &s3.endpoint(), *shape))?;
        clusters.push(ClusterOf {
            env,
            api,
            watch,
            shape: *shape,
            direct,
        });
    }
    let plane = clusters[0].env.plane;
    let apiserver = socket_of(&plane.server)?;
    let mut run = Run {
        slots: Vec::new(),
        apiserver_pid: plane.apiserver_pid(),
        finish_after,
        planted,
        identities: Mutex::new(Default::default()),
    };
    for (cluster, shape) in shapes.iter().enumerate() {
        for n in 0..shape.jobmanagers {
            let name = format!("c{cluster}-jm{n}");
            let proxy = TcpProxy::start(apiserver).await?;
            // The storage server's clock is 7 minutes behind, as its Last-Modified times say.
            let storage =
                StorageProxy::start(upstream, seed ^ (run.slots.len() as u64), &name, log.clone(), -420_000).await?;
            let kubeconfig = dir.path().join(format!("kubeconfig-{name}"));
            pki::write_kubeconfig(
                &kubeconfig,
                &format!("https://127.0.0.1:{}", proxy.port),
                plane.ca_cert(),
                pki::ADMIN_TOKEN,
            )?;
            let config_path = dir.path().join(format!("config-{name}.yaml"));
            let of = &clusters[cluster];
            std::fs::write(&config_path, config(&of.env.namespace, &storage.endpoint(), of.shape))?;
            // Wall clocks minutes ahead and behind: nothing may decide by them.
            let clock_offset = CLOCK_OFFSETS[run.slots.len() % CLOCK_OFFSETS.len()].to_string();
            run.slots.push(Slot {
                cluster,
                name: name.clone(),
                clock_offset,
                proxy,
                storage,
                kubeconfig,
                config: config_path,
                history: dir.path().join(format!("{name}.jsonl")),
                child: None,
            });
            let index = run.slots.len() - 1;
            run.spawn(index, plane)?;
        }
    }

    // Faults only once every cluster runs: a leader with checkpoints.
    let warm_up = Instant::now() + Duration::from_secs(30);
    for (index, cluster) in clusters.iter().enumerate() {
        while leader_slot(&cluster.api, cluster.shape.cluster_id, &run, index)
            .await
            .is_none()
        {
            if Instant::now() > warm_up {
                return Err(format!("cluster {index}: no leader within 30 s of the start").into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut faults: BTreeMap<&str, usize> = BTreeMap::new();
    let mut pauses: Vec<(u64, String)> = Vec::new();
    let mut timeline: Vec<String> = Vec::new();
    let mut lost: BTreeSet<String> = BTreeSet::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        if kinds.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let kind = kinds[rng.usize(..kinds.len())];
        let cluster = rng.usize(..clusters.len());
        let api = &clusters[cluster].api;
        let members = run.of_cluster(cluster);
        let cluster_id = clusters[cluster].shape.cluster_id;
        let leader = leader_slot(api, cluster_id, &run, cluster).await;
        let target = match leader {
            Some(index) => index,
            None => members[rng.usize(..members.len())],
        };
        let lasting = Duration::from_millis(rng.u64(500..3000));
        *faults.entry(kind).or_default() += 1;
        timeline.push(format!(
            "{:.3} {kind} {} for {lasting:?}",
            monotonic_ns() as f64 / 1e9,
            run.slots[target].name
        ));
        let pause = |run: &Run, pauses: &mut Vec<(u64, String)>| {
            let pid = run.pid(target)?;
            pauses.push((monotonic_ns(), run.identity(target, pid)));
            signal(pid, Signal::STOP);
            Some(pid)
        };
        let cluster_storage = |fault: StorageFault| {
            for &member in &members {
                run.slots[member].storage.set(fault);
            }
        };
        match kind {
            "kill" => {
                if let Some(mut child) = run.slots[target].child.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                tokio::time::sleep(lasting).await;
                run.spawn(target, plane)?;
            }
            "pause" => {
                if let Some(pid) = pause(&run, &mut pauses) {
                    tokio::time::sleep(LEASE + lasting).await;
                    signal(pid, Signal::CONT);
                }
            }
            "pause-during-sweep" | "pause-during-write" => {
                // Frozen right as it lists the folder (a sweep's, or a recovery's,
                // listing), or as it writes a payload (an add, its pointer still to come).
                let storage = &run.slots[target].storage;
                let caught = if kind == "pause-during-sweep" {
                    storage.next_listing(Duration::from_secs(3)).await
                } else {
                    storage.next_put(Duration::from_secs(3)).await
                };
                if caught && let Some(pid) = pause(&run, &mut pauses) {
                    tokio::time::sleep(LEASE + lasting).await;
                    signal(pid, Signal::CONT);
                }
            }
            "apiserver-pause" => {
                if let Some(pid) = run.apiserver_pid {
                    signal(pid, Signal::STOP);
                    tokio::time::sleep(lasting).await;
                    signal(pid, Signal::CONT);
                }
            }
            "api-drop" | "api-delay" | "api-delay-then-drop" => {
                let proxy = &run.slots[target].proxy;
                // Delayed then dropped: the renewals that still come back come back late
                // (by more than the step-down margin), then none does for longer than a
                // lease, so a follower takes over while the leader counts on its last one.
                let combined = kind == "api-delay-then-drop";
                if kind != "api-drop" {
                    let by = if combined {
                        rng.u64(600..1200)
                    } else {
                        rng.u64(200..1500)
                    };
                    proxy.set(WireFault::Delay(Duration::from_millis(by)));
                    tokio::time::sleep(lasting).await;
                }
                if kind != "api-delay" {
                    proxy.set(WireFault::DropAnswers);
                    tokio::time::sleep(if combined { LEASE + lasting } else { lasting }).await;
                }
                proxy.set(WireFault::Pass);
            }
            "api-cut" => run.slots[target].proxy.cut(),
            "storage-errors"
            | "storage-resets"
            | "storage-stall"
            | "storage-404"
            | "storage-412"
            | "stall-during-job-result" => {
                let stall = Duration::from_millis(rng.u64(500..3000));
                cluster_storage(match kind {
                    "storage-errors" => StorageFault::Errors(0.5),
                    "storage-resets" => StorageFault::Resets(0.5),
                    "storage-404" => StorageFault::NotFound(0.5),
                    "storage-412" => StorageFault::PreconditionFailed(0.5),
                    "stall-during-job-result" => StorageFault::StallJobResults(stall),
                    _ => StorageFault::Stall(stall),
                });
                tokio::time::sleep(lasting).await;
                cluster_storage(StorageFault::Pass);
            }
            "storage-partition" => {
                run.slots[target].storage.set(StorageFault::Partitioned);
                tokio::time::sleep(lasting).await;
                run.slots[target].storage.set(StorageFault::Pass);
            }
            "lose-object" => {
                if let Some(uri) = lose_a_checkpoint(&clusters[cluster].direct, &mut rng).await? {
                    timeline.push(format!("    lost {uri}"));
                    lost.insert(uri);
                }
            }
            "delete-cluster-cm" | "drop-during-cm-delete" => {
                if kind == "drop-during-cm-delete" {
                    run.slots[target].proxy.set(WireFault::DropAnswers);
                }
                let _ = api
                    .delete(&names::cluster_config_map(cluster_id), &DeleteParams::default())
                    .await;
                if kind == "drop-during-cm-delete" {
                    tokio::time::sleep(lasting).await;
                    run.slots[target].proxy.set(WireFault::Pass);
                }
            }
            "delete-job-cm" => {
                // A job ConfigMap deleted under its running job (kubectl, a GC, a Helm
                // uninstall; the webhook refuses it in production, the runtime must not
                // lose the job when it happens anyway). Only while a leader runs the
                // jobs: deleted between leaders, nobody holds a copy of the job's
                // checkpoint pointers, and they are gone for good (HA205 refuses that).
                let listed = match leader {
                    Some(_) => api
                        .list(&ListParams::default().labels(&names::ha_selector(cluster_id)))
                        .await
                        .map(|l| l.items)
                        .unwrap_or_default(),
                    None => Vec::new(),
                };
                let jobs: Vec<String> = listed
                    .into_iter()
                    .filter_map(|cm| cm.metadata.name)
                    .filter(|name| names::is_job_config_map(cluster_id, name))
                    .collect();
                if !jobs.is_empty() {
                    let victim = &jobs[rng.usize(..jobs.len())];
                    timeline.push(format!("    deleted {victim}"));
                    let _ = api.delete(victim, &DeleteParams::default()).await;
                }
            }
            _ => unreachable!("a fault kind without an action: {kind}"),
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(500..2500))).await;
    }
    let faulted = started.elapsed();

    // Heal, let the clusters settle (leaders whose jobs checkpoint again, interrupted
    // cleanups finished, and an orphan sweep that found every payload the faults left
    // old enough to delete), then stop every JobManager gracefully.
    for slot in &run.slots {
        slot.proxy.set(WireFault::Pass);
        slot.storage.set(StorageFault::Pass);
    }
    // Requests the faults held back (a storage stall: up to 3 s) land after the heal.
    let last_write_ns = monotonic_ns() + 5_000_000_000;
    tokio::time::sleep(Duration::from_secs(8)).await;
    if wait_for_sweep {
        let swept_by = Instant::now() + ORPHAN_MIN_AGE + Duration::from_secs(40);
        while !swept_since(&read_histories(&run.slots)?, last_write_ns, ORPHAN_MIN_AGE) {
            if Instant::now() > swept_by {
                return Err(format!(
                    "no orphan sweep listed the payloads {ORPHAN_MIN_AGE:?} after its process first listed them once the faults ended (seed {seed}); histories in {}",
                    dir.keep().display()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    for index in 0..run.slots.len() {
        if let Some(pid) = run.pid(index) {
            signal(pid, Signal::TERM);
        }
    }
    let stop_by = Instant::now() + Duration::from_secs(20);
    for slot in &mut run.slots {
        if let Some(child) = slot.child.as_mut() {
            while child.try_wait()?.is_none() && Instant::now() < stop_by {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    // The watch takes in the last versions.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut config_maps = watch::Watched::default();
    for cluster in &clusters {
        let seen = cluster.watch.seen();
        config_maps.versions.extend(seen.versions);
        config_maps.gaps.extend(seen.gaps);
    }
    let observed = Observed {
        storage: log.lock().map(|l| l.clone()).unwrap_or_default(),
        config_maps,
        lost,
    };
    let mut violations = Vec::new();
    let mut all_history = Vec::new();
    for (index, cluster) in clusters.iter().enumerate() {
        let history = read_histories(run.slots.iter().filter(|s| s.cluster == index))?;
        // The state is read around the proxies, from the servers themselves.
        let settings = &cluster.direct;
        let swept = history.iter().any(|r| matches!(r.line.event, Event::Swept { .. }));
        let state = final_state(
            &cluster.api,
            &cluster.env.namespace,
            cluster.shape.cluster_id,
            settings,
            swept,
        )
        .await?;
        let found = checker::check(&history, &observed, Some(&state));
        if !found.is_empty() {
            orphans_explained(&history, &state, settings).await;
        }
        violations.extend(found);
        all_history.extend(history);
    }

    if !violations.is_empty() {
        // What the harness saw, kept beside the histories for a post-mortem of a red run.
        let mut seen = String::new();
        for op in &observed.storage {
            let body = op.body.as_ref().map(|b| String::from_utf8_lossy(b).to_string());
            seen.push_str(&format!(
                "storage {} {} {} sent {} answered {} status {:?} body {:?}\n",
                op.via, op.method, op.uri, op.sent_ns, op.answered_ns, op.status, body
            ));
        }
        for v in &observed.config_maps.versions {
            seen.push_str(&format!("configmap {v:?}\n"));
        }
        std::fs::write(dir.path().join("observed.txt"), seen)?;
    }
    let history = &all_history;
    let acks = count(history, |e| matches!(e, Event::CheckpointAcked { .. }));
    let recoveries = count(history, |e| {
        matches!(
            e,
            Event::Recovered {
                checkpoint: Some(_),
                ..
            }
        )
    });
    let finished = count(history, |e| matches!(e, Event::JobFinished { .. }));
    let kinds: Vec<String> = faults.iter().map(|(kind, n)| format!("{kind}={n}")).collect();
    let failovers = failovers_after_pauses(history, &pauses);
    let swept: usize = history
        .iter()
        .map(|r| match &r.line.event {
            Event::Swept { deleted, .. } => deleted.len(),
            _ => 0,
        })
        .sum();
    eprintln!(
        "{run_name}: failover after a pause past the lease: {} ({} pauses), {finished} jobs finished, {swept} orphaned payloads swept, {} ConfigMap versions and {} storage writes observed, histories in {}",
        describe(&failovers),
        pauses.len(),
        observed.config_maps.versions.len(),
        observed.storage.len(),
        dir.path().display()
    );
    for violation in &violations {
        eprint!("{violation}");
    }
    eprintln!(
        "{run_name}: {} s, seed {seed}, {} faults ({}), {acks} checkpoints acknowledged, {recoveries} recoveries, violations: {}{}",
        faulted.as_secs(),
        faults.values().sum::<usize>(),
        kinds.join(", "),
        violations.len(),
        checker::summary(&violations)
    );
    if !violations.is_empty() {
        eprintln!("{run_name}: the faults (CLOCK_MONOTONIC s, kind, target):");
        for line in &timeline {
            eprintln!("    {line}");
        }
    }
    if acks == 0 {
        return Err(format!("{run_name}: no checkpoint was acknowledged: the run proves nothing").into());
    }
    Ok(Outcome {
        violations,
        kept: dir.keep(),
    })
}

/// Destroys one checkpoint payload in the folder of the cluster `settings` describe,
/// directly on the S3 server (a storage that lost an object): its URI, or `None` if
/// there was none.
async fn lose_a_checkpoint(
    settings: &HaSettings,
    rng: &mut fastrand::Rng,
) -> Result<Option<String>, Box<dyn std::error::Error>> {
    let payloads = PayloadStore::for_settings(settings)?;
    let (store, root) = payloads.object_store();
    let objects: Vec<_> = store.list(Some(root)).try_collect().await?;
    let checkpoints: Vec<_> = objects
        .iter()
        .filter(|o| o.location.filename().is_some_and(|n| n.starts_with(CHECKPOINT_KIND)))
        .collect();
    if checkpoints.is_empty() {
        return Ok(None);
    }
    let victim = checkpoints[rng.usize(..checkpoints.len())];
    object_store::ObjectStoreExt::delete(store.as_ref(), &victim.location).await?;
    Ok(Some(payloads.uri_of(&victim.location)))
}

/// What each payload no pointer names holds, and what the histories say of it.
async fn orphans_explained(history: &[Record], state: &FinalState, settings: &HaSettings) {
    let Ok(payloads) = PayloadStore::for_settings(settings) else {
        return;
    };
    let referenced: Vec<&String> = state.pointers.iter().map(|(_, _, path, _)| path).collect();
    for orphan in state.payloads.iter().filter(|p| !referenced.contains(p)) {
        let content = match payloads.get(orphan).await {
            Ok(bytes) => String::from_utf8_lossy(&bytes).to_string(),
            Err(error) => format!("unreadable: {error}"),
        };
        let acked = history
            .iter()
            .find(|r| matches!(&r.line.event, Event::CheckpointAcked { path, .. } if path == orphan));
        eprintln!(
            "nemesis: orphan {orphan}: {content}{}",
            acked.map_or(String::new(), |r| format!(" (acknowledged: {})", r.source))
        );
    }
}

/// Whether a process's orphan sweep began listing `min_age` or more after that
/// process's first listing at `since_ns` or later (and finished). A sweep ages an orphan
/// from when its own process first listed it, not from when it was written: the orphans
/// there at `since_ns` go in the first sweep `min_age` after its process saw them.
fn swept_since(history: &[Record], since_ns: u64, min_age: Duration) -> bool {
    let listings = || {
        history.iter().filter_map(|r| match r.line.event {
            Event::Swept { listed_ns, .. } if listed_ns >= since_ns => Some((r.line.identity.as_str(), listed_ns)),
            _ => None,
        })
    };
    let mut first_seen = std::collections::HashMap::new();
    for (identity, listed_ns) in listings() {
        let first = first_seen.entry(identity).or_insert(listed_ns);
        *first = (*first).min(listed_ns);
    }
    let min_age_ns = u64::try_from(min_age.as_nanos()).unwrap_or(u64::MAX);
    listings().any(|(identity, listed_ns)| {
        first_seen
            .get(identity)
            .is_some_and(|first| listed_ns >= first.saturating_add(min_age_ns))
    })
}

fn count(history: &[Record], what: impl Fn(&Event) -> bool) -> usize {
    history.iter().filter(|r| what(&r.line.event)).count()
}

/// The identity the process `pid` wrote into its history.
fn identity_of(history: &Path, pid: u32) -> String {
    std::fs::read_to_string(history)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Line>(l).ok())
        .find(|l| l.pid == pid)
        .map(|l| l.identity)
        .unwrap_or_default()
}

/// For each pause of a leader: how long until another process was granted.
fn failovers_after_pauses(history: &[Record], pauses: &[(u64, String)]) -> Vec<Duration> {
    pauses
        .iter()
        .filter_map(|(paused_at, identity)| {
            history
                .iter()
                .filter(|r| {
                    r.line.mono_ns > *paused_at
                        && r.line.identity != *identity
                        && matches!(r.line.event, Event::Granted { .. })
                })
                .map(|r| r.line.mono_ns - paused_at)
                .min()
                .map(Duration::from_nanos)
        })
        .collect()
}

fn describe(durations: &[Duration]) -> String {
    if durations.is_empty() {
        return "none measured".into();
    }
    let mut sorted = durations.to_vec();
    sorted.sort();
    format!(
        "median {:.2} s, max {:.2} s",
        sorted[sorted.len() / 2].as_secs_f64(),
        sorted[sorted.len() - 1].as_secs_f64()
    )
}
