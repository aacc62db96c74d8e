//! The nemesis test: three real `flink-ha jobmanager` processes run jobs that checkpoint,
//! finish and are replaced, against the real API server and the real S3 server, while a
//! seeded schedule of faults hits them: SIGKILL and SIGSTOP (past the lease) of the
//! leader, SIGSTOP of the API server, answers dropped or delayed between a JobManager
//! and the API server (a proxy per JobManager), storage errors, lost answers and stalls
//! (a proxy in front of S3), and the cluster ConfigMap deleted under the running
//! cluster. Every JobManager writes down what it did (`--history`); at the end the
//! checker (`nemesis/checker.rs`) reads those histories, what the proxies saw and the HA
//! state left behind, and names every broken guarantee.
//!
//! `NEMESIS_SECS` (default 60) sets how long faults are injected, `NEMESIS_SEED` the
//! schedule (printed at the start; the same seed gives the same schedule of faults,
//! though not the same timing of the processes). The long run:
//! `NEMESIS_SECS=1800 cargo test --release -p flink-ha-cli --test nemesis -- --nocapture`.

#[path = "nemesis/checker.rs"]
mod checker;
#[path = "nemesis/proxy.rs"]
mod proxy;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams};
use rustix::process::{Pid, Signal};

use checker::{FinalState, Observed, Record};
use flink_ha_runtime::checkpoint_store::CHECKPOINT_PREFIX;
use flink_ha_runtime::cleanup::EXECUTION_PLAN_PREFIX;
use flink_ha_runtime::history::{Event, Line, monotonic_ns};
use flink_ha_runtime::job_result_store::JobResultStore;
use flink_ha_runtime::payloads::{OWNER_MARKER, PROBE_KIND, PayloadStore, Pointer};
use flink_ha_runtime::{HaSettings, names};
use flink_ha_testenv::{S3Server, TestEnv, pki};
use proxy::{StorageFault, StorageProxy, TcpProxy, WireFault};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const CLUSTER: &str = "nemesis";
const JOBMANAGERS: usize = 3;
const LEASE: Duration = Duration::from_secs(2);
/// The orphan sweep's minimum age: the floor for the lease and the 3 retries of
/// `config` ((2 × 4 + 1) × 2 s; `flink-ha jobmanager` refuses less).
const ORPHAN_MIN_AGE: Duration = Duration::from_secs(18);

/// The faults, by the name the summary line counts them under.
const FAULT_KINDS: [&str; 10] = [
    "kill",
    "pause",
    "apiserver-pause",
    "api-drop",
    "api-delay",
    "api-cut",
    "storage-errors",
    "storage-resets",
    "storage-stall",
    "delete-cluster-cm",
];

fn config(namespace: &str, storage_endpoint: &str) -> String {
    format!(
        "high-availability.type: kubernetes
high-availability.storageDir: s3://nemesis/recovery
s3.endpoint: {storage_endpoint}
s3.path.style.access: true
s3.access-key: flink-ha-test
s3.secret-key: flink-ha-test-secret
high-availability.cluster-id: {CLUSTER}
kubernetes.cluster-id: {CLUSTER}
kubernetes.namespace: {namespace}
execution.checkpointing.interval: 200 ms
execution.checkpointing.num-retained: 2
job-result-store.delete-on-commit: false
high-availability.kubernetes.leader-election.lease-duration: 2 s
high-availability.kubernetes.leader-election.renew-deadline: 1500 ms
high-availability.kubernetes.leader-election.retry-period: 400 ms
kubernetes.transactional-operation.max-retries: 3
"
    )
}

/// One JobManager slot: its proxy to the API server, its files, its current process.
struct Slot {
    proxy: TcpProxy,
    kubeconfig: PathBuf,
    history: PathBuf,
    child: Option<Child>,
}

/// Everything the run started; stops it all when dropped, also when the test fails.
struct Cluster {
    slots: Vec<Slot>,
    config: PathBuf,
    apiserver_pid: Option<u32>,
}

impl Cluster {
    fn spawn(&mut self, index: usize, plane: &flink_ha_testenv::ControlPlane) -> std::io::Result<()> {
        let slot = &mut self.slots[index];
        let child = Command::new(env!("CARGO_BIN_EXE_flink-ha"))
            .args(["jobmanager", "--jobs", "2", "--checkpoint-interval", "200 ms"])
            .args(["--finish-after", "25"])
            .args(["--orphan-sweep-interval", "1 s"])
            .args(["--orphan-min-age", &format!("{} s", ORPHAN_MIN_AGE.as_secs())])
            .arg("--config")
            .arg(&self.config)
            .arg("--history")
            .arg(&slot.history)
            .args(["--address", &format!("jm-{index}")])
            .env("KUBECONFIG", &slot.kubeconfig)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        plane.adopt(child.id());
        slot.child = Some(child);
        Ok(())
    }

    fn pid(&self, index: usize) -> Option<u32> {
        self.slots[index].child.as_ref().map(Child::id)
    }
}

impl Drop for Cluster {
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

/// Every line of every history file, in file order.
fn read_histories(slots: &[Slot]) -> Result<Vec<Record>, String> {
    let mut records = Vec::new();
    for slot in slots {
        let name = slot
            .history
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&slot.history).unwrap_or_default();
        for (number, text) in text.lines().enumerate() {
            // A line cut by a SIGKILL is the only one that may not parse: the last.
            match serde_json::from_str::<Line>(text) {
                Ok(line) => records.push(Record {
                    line,
                    source: format!("{name}:{}", number + 1),
                    text: text.to_string(),
                }),
                Err(error) if number + 1 == text.lines().count() => {
                    eprintln!("nemesis: {name}:{}: a cut line ({error})", number + 1)
                }
                Err(error) => return Err(format!("{name}:{}: {error}: {text}", number + 1)),
            }
        }
    }
    Ok(records)
}

/// The slot whose current process holds the lock, by the identity in the lock record
/// and the identities the processes wrote into their histories.
async fn leader_slot(api: &Api<ConfigMap>, cluster: &Cluster) -> Option<usize> {
    let cm = tokio::time::timeout(Duration::from_secs(2), api.get_opt(&names::cluster_config_map(CLUSTER)))
        .await
        .ok()?
        .ok()??;
    let raw = cm.metadata.annotations?.remove(names::LEADER_ANNOTATION)?;
    let holder = serde_json::from_str::<serde_json::Value>(&raw).ok()?["holderIdentity"]
        .as_str()?
        .to_string();
    (0..cluster.slots.len()).find(|&index| {
        cluster
            .pid(index)
            .is_some_and(|pid| identity_of(&cluster.slots[index].history, pid) == holder)
    })
}

/// The HA state after the run, read around the proxies.
async fn final_state(api: &Api<ConfigMap>, settings: &HaSettings) -> Result<FinalState, Box<dyn std::error::Error>> {
    let mut state = FinalState::default();
    let list = api
        .list(&ListParams::default().labels(&names::ha_selector(CLUSTER)))
        .await?;
    for cm in list.items {
        let name = cm.metadata.name.clone().unwrap_or_default();
        if let Some(job) = name
            .strip_prefix(&format!("{CLUSTER}-"))
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
    let payloads = PayloadStore::for_settings(settings)?;
    let (store, root) = payloads.object_store();
    let objects: Vec<_> = store.list(Some(root)).try_collect().await?;
    // Everything but the sweep's owner marker and its probe (of a sweep cut off by the
    // stop), which hold no data.
    state.payloads = objects
        .iter()
        .filter(|o| o.location.filename() != Some(OWNER_MARKER))
        .filter(|o| !o.location.filename().is_some_and(|name| name.starts_with(PROBE_KIND)))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_checkpoint_is_lost_and_no_finished_job_rerun_under_faults() -> TestResult {
    let seconds = env_u64("NEMESIS_SECS")?.unwrap_or(60);
    let seed = env_u64("NEMESIS_SEED")?.unwrap_or_else(|| fastrand::u64(..));
    eprintln!(
        "nemesis: seed {seed}, {seconds} s of faults (NEMESIS_SEED={seed} NEMESIS_SECS={seconds} repeats the schedule)"
    );
    let mut rng = fastrand::Rng::with_seed(seed);

    let env = TestEnv::new("nemesis").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let s3 = S3Server::shared()?;
    s3.create_bucket("nemesis")?;
    let storage = StorageProxy::start(socket_of(&s3.endpoint())?, seed).await?;
    let apiserver = socket_of(&env.plane.server)?;

    let dir = tempfile::Builder::new().prefix("flink-ha-nemesis-").tempdir()?;
    let config_path = dir.path().join("config.yaml");
    std::fs::write(&config_path, config(&env.namespace, &storage.endpoint()))?;
    let mut cluster = Cluster {
        slots: Vec::new(),
        config: config_path,
        apiserver_pid: env.plane.apiserver_pid(),
    };
    for index in 0..JOBMANAGERS {
        let proxy = TcpProxy::start(apiserver).await?;
        let kubeconfig = dir.path().join(format!("kubeconfig-{index}"));
        pki::write_kubeconfig(
            &kubeconfig,
            &format!("https://127.0.0.1:{}", proxy.port),
            env.plane.ca_cert(),
            pki::ADMIN_TOKEN,
        )?;
        cluster.slots.push(Slot {
            proxy,
            kubeconfig,
            history: dir.path().join(format!("jm-{index}.jsonl")),
            child: None,
        });
        cluster.spawn(index, env.plane)?;
    }

    // Faults only once the cluster runs: a leader with checkpoints.
    let warm_up = Instant::now() + Duration::from_secs(30);
    while leader_slot(&api, &cluster).await.is_none() {
        if Instant::now() > warm_up {
            return Err("no leader within 30 s of the start".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut faults: BTreeMap<&str, usize> = BTreeMap::new();
    let mut pauses: Vec<(u64, String)> = Vec::new();
    let mut timeline: Vec<String> = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        let kind = FAULT_KINDS[rng.usize(..FAULT_KINDS.len())];
        let target = match leader_slot(&api, &cluster).await {
            Some(index) => index,
            None => rng.usize(..JOBMANAGERS),
        };
        let lasting = Duration::from_millis(rng.u64(500..3000));
        *faults.entry(kind).or_default() += 1;
        timeline.push(format!(
            "{:.3} {kind} jm-{target} for {lasting:?}",
            monotonic_ns() as f64 / 1e9
        ));
        match kind {
            "kill" => {
                if let Some(mut child) = cluster.slots[target].child.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                tokio::time::sleep(lasting).await;
                cluster.spawn(target, env.plane)?;
            }
            "pause" => {
                if let Some(pid) = cluster.pid(target) {
                    let identity = identity_of(&cluster.slots[target].history, pid);
                    pauses.push((monotonic_ns(), identity));
                    signal(pid, Signal::STOP);
                    tokio::time::sleep(LEASE + lasting).await;
                    signal(pid, Signal::CONT);
                }
            }
            "apiserver-pause" => {
                if let Some(pid) = cluster.apiserver_pid {
                    signal(pid, Signal::STOP);
                    tokio::time::sleep(lasting).await;
                    signal(pid, Signal::CONT);
                }
            }
            "api-drop" => {
                cluster.slots[target].proxy.set(WireFault::DropAnswers);
                tokio::time::sleep(lasting).await;
                cluster.slots[target].proxy.set(WireFault::Pass);
            }
            "api-delay" => {
                let by = Duration::from_millis(rng.u64(200..1500));
                cluster.slots[target].proxy.set(WireFault::Delay(by));
                tokio::time::sleep(lasting).await;
                cluster.slots[target].proxy.set(WireFault::Pass);
            }
            "api-cut" => cluster.slots[target].proxy.cut(),
            "storage-errors" | "storage-resets" | "storage-stall" => {
                storage.set(match kind {
                    "storage-errors" => StorageFault::Errors(0.5),
                    "storage-resets" => StorageFault::Resets(0.5),
                    _ => StorageFault::Stall(Duration::from_millis(rng.u64(500..3000))),
                });
                tokio::time::sleep(lasting).await;
                storage.set(StorageFault::Pass);
            }
            "delete-cluster-cm" => {
                let name = names::cluster_config_map(CLUSTER);
                let _ = api.delete(&name, &DeleteParams::default()).await;
            }
            _ => unreachable!("a fault kind without an action: {kind}"),
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(500..2500))).await;
    }
    let faulted = started.elapsed();

    // Heal, let the cluster settle (a leader whose jobs checkpoint again, interrupted
    // cleanups finished, and an orphan sweep that found every payload the faults left
    // old enough to delete), then stop every JobManager gracefully.
    for slot in &cluster.slots {
        slot.proxy.set(WireFault::Pass);
    }
    storage.set(StorageFault::Pass);
    // Requests the faults held back (a storage stall: up to 3 s) land after the heal.
    let last_write_ns = monotonic_ns() + 5_000_000_000;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let swept_by = Instant::now() + ORPHAN_MIN_AGE + Duration::from_secs(40);
    while !swept_since(&read_histories(&cluster.slots)?, last_write_ns, ORPHAN_MIN_AGE) {
        if Instant::now() > swept_by {
            return Err(format!(
                "no orphan sweep listed the payloads {ORPHAN_MIN_AGE:?} after its process first listed them once the faults ended (seed {seed}); histories in {}",
                dir.keep().display()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for index in 0..JOBMANAGERS {
        if let Some(pid) = cluster.pid(index) {
            signal(pid, Signal::TERM);
        }
    }
    let stop_by = Instant::now() + Duration::from_secs(20);
    for slot in &mut cluster.slots {
        if let Some(child) = slot.child.as_mut() {
            while child.try_wait()?.is_none() && Instant::now() < stop_by {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    let history = read_histories(&cluster.slots)?;
    let observed = Observed {
        storage_deletes: storage.deletes(),
    };
    // The state is read around the proxies, from the servers themselves.
    let direct = config(&env.namespace, &s3.endpoint());
    let settings = HaSettings::from_flink_config("config.yaml", &direct)?;
    let state = final_state(&api, &settings).await?;
    let violations = checker::check(&history, &observed, Some(&state));

    let acks = count(&history, |e| matches!(e, Event::CheckpointAcked { .. }));
    let recoveries = count(&history, |e| {
        matches!(
            e,
            Event::Recovered {
                checkpoint: Some(_),
                ..
            }
        )
    });
    let finished = count(&history, |e| matches!(e, Event::JobFinished { .. }));
    let kinds: Vec<String> = faults.iter().map(|(kind, n)| format!("{kind}={n}")).collect();
    let failovers = failovers_after_pauses(&history, &pauses);
    let swept: usize = history
        .iter()
        .map(|r| match &r.line.event {
            Event::Swept { deleted, .. } => deleted.len(),
            _ => 0,
        })
        .sum();
    eprintln!(
        "nemesis: failover after a pause past the lease: {} ({} pauses), {finished} jobs finished, {swept} orphaned payloads swept, histories in {}",
        describe(&failovers),
        pauses.len(),
        dir.path().display()
    );
    for violation in &violations {
        eprint!("{violation}");
    }
    eprintln!(
        "nemesis: {} s, seed {seed}, {} faults ({}), {acks} checkpoints acknowledged, {recoveries} recoveries, violations: {}{}",
        faulted.as_secs(),
        faults.values().sum::<usize>(),
        kinds.join(", "),
        violations.len(),
        checker::summary(&violations)
    );
    if !violations.is_empty() {
        eprintln!("nemesis: the faults (CLOCK_MONOTONIC s, kind, target):");
        for line in &timeline {
            eprintln!("    {line}");
        }
        orphans_explained(&history, &state, &settings).await;
        // Keep the histories for a look.
        let kept = dir.keep();
        return Err(format!(
            "{} violations (seed {seed}); histories kept in {}",
            violations.len(),
            kept.display()
        )
        .into());
    }
    assert!(acks > 0, "no checkpoint was acknowledged: the run proves nothing");
    Ok(())
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
