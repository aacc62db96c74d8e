//! Failover with real processes: three `flink-ha jobmanager`s against the real API server.
//! The leader is SIGKILLed (no release: a standby takes over once the lease runs out and
//! recovers the jobs at their latest checkpoints), then the next leader gets SIGTERM
//! (it releases the lock: the last standby takes over at once). The payloads go to a
//! real S3-compatible server, configured by the `s3.*` keys of the Flink config.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

use flink_ha_runtime::checkpoint_store::checkpoint_id;
use flink_ha_runtime::payloads::PayloadStore;
use flink_ha_runtime::{HaSettings, names};
use flink_ha_testenv::{S3Server, TestEnv};
use futures::TryStreamExt;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const LEASE: Duration = Duration::from_secs(2);
const RETRY: Duration = Duration::from_millis(400);

/// Kills every process it holds when dropped, also when the test fails.
struct JobManagers(Vec<Option<Child>>);

impl Drop for JobManagers {
    fn drop(&mut self) {
        for child in self.0.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The processes' config: payloads on the S3 test server, configured as Flink's S3
/// plugin is.
fn config(namespace: &str, s3: &S3Server) -> String {
    format!(
        "high-availability.type: kubernetes
high-availability.storageDir: s3://failover/recovery
s3.endpoint: {endpoint}
s3.path.style.access: true
s3.access-key: flink-ha-test
s3.secret-key: flink-ha-test-secret
high-availability.cluster-id: failover
kubernetes.cluster-id: failover
kubernetes.namespace: {namespace}
execution.checkpointing.interval: 300 ms
execution.checkpointing.num-retained: 2
high-availability.kubernetes.leader-election.lease-duration: 2 s
high-availability.kubernetes.leader-election.renew-deadline: 1500 ms
high-availability.kubernetes.leader-election.retry-period: 400 ms
",
        endpoint = s3.endpoint()
    )
}

/// The address in the dispatcher's leader entry: which process leads.
async fn leader_address(api: &Api<ConfigMap>) -> Option<String> {
    let cm = api.get_opt(&names::cluster_config_map("failover")).await.ok()??;
    let entry = cm.data?.remove(&names::leader_entry_key(names::DISPATCHER))?;
    names::parse_leader_entry(&entry).map(|(_, address)| address.to_string())
}

/// The highest checkpoint id of every job.
async fn latest_checkpoints(api: &Api<ConfigMap>) -> Result<BTreeMap<String, u64>, kube::Error> {
    latest_checkpoints_of(api, "failover").await
}

/// The highest checkpoint id of every job of cluster `cluster_id`.
async fn latest_checkpoints_of(api: &Api<ConfigMap>, cluster_id: &str) -> Result<BTreeMap<String, u64>, kube::Error> {
    let list = api
        .list(&kube::api::ListParams::default().labels(&names::ha_selector(cluster_id)))
        .await?;
    let mut latest = BTreeMap::new();
    for cm in list.items {
        let name = cm.metadata.name.unwrap_or_default();
        let Some(job) = name
            .strip_prefix(&format!("{cluster_id}-"))
            .and_then(|n| n.strip_suffix("-config-map"))
        else {
            continue;
        };
        if job == "cluster" {
            continue;
        }
        let highest = cm
            .data
            .unwrap_or_default()
            .keys()
            .filter_map(|k| checkpoint_id(k))
            .max();
        if let Some(id) = highest {
            latest.insert(job.to_string(), id);
        }
    }
    Ok(latest)
}

async fn wait_until<F, Fut, T>(what: &str, within: Duration, mut probe: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        if Instant::now() > deadline {
            return Err(format!("gave up waiting for {what} after {within:?}"));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_graceful_stop_hand_leadership_over_and_jobs_recover() -> TestResult {
    let env = TestEnv::new("jobmanager-failover").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let s3 = S3Server::shared()?;
    s3.create_bucket("failover")?;
    let dir = tempfile::tempdir()?;
    let config_path = dir.path().join("config.yaml");
    let config = config(&env.namespace, s3);
    std::fs::write(&config_path, &config)?;

    let mut processes = JobManagers(Vec::new());
    for i in 0..3 {
        let child = Command::new(env!("CARGO_BIN_EXE_flink-ha"))
            .args(["jobmanager", "--jobs", "2", "--checkpoint-interval", "300 ms"])
            .arg("--config")
            .arg(&config_path)
            .args(["--address", &format!("jm-{i}")])
            .env("KUBECONFIG", &env.kubeconfig)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        env.plane.adopt(child.id());
        processes.0.push(Some(child));
    }

    let first = wait_until("a leader", Duration::from_secs(20), || leader_address(&api)).await?;
    let before = wait_until("two jobs with checkpoints >= 3", Duration::from_secs(20), || async {
        latest_checkpoints(&api)
            .await
            .ok()
            .filter(|l| l.len() == 2 && l.values().all(|&id| id >= 3))
    })
    .await?;

    // SIGKILL the leader: nothing is released.
    let index: usize = first.trim_start_matches("jm-").parse()?;
    let killed_at = Instant::now();
    if let Some(mut child) = processes.0[index].take() {
        child.kill()?;
        child.wait()?;
    }
    let second = wait_until("a new leader after the kill", Duration::from_secs(20), || async {
        leader_address(&api).await.filter(|a| *a != first)
    })
    .await?;
    let failover = killed_at.elapsed();
    eprintln!("failover after SIGKILL: {failover:?}");
    // Not before the lease could have run out, and within lease + retry-period × 2.2.
    assert!(
        failover + RETRY >= LEASE,
        "took over after {failover:?}, before the lease expired"
    );
    assert!(
        failover <= LEASE + RETRY.mul_f64(2.2) + Duration::from_millis(500),
        "failover took {failover:?}"
    );

    // The new leader recovers every job and goes on checkpointing from where it was.
    let after = wait_until(
        "checkpoints past the ones before the kill",
        Duration::from_secs(20),
        || async {
            latest_checkpoints(&api)
                .await
                .ok()
                .filter(|l| l.iter().all(|(job, id)| before.get(job).is_some_and(|b| id > b)))
        },
    )
    .await?;
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "the same jobs, no new ones"
    );
    // Their payloads are in the bucket: at least the two plans and each job's latest
    // checkpoint (more while an add has not yet dropped a subsumed one).
    let payloads = PayloadStore::for_settings(&HaSettings::from_flink_config("config.yaml", &config)?)?;
    let (store, root) = payloads.object_store();
    let objects: Vec<_> = store.list(Some(root)).try_collect().await?;
    assert!(
        objects.len() >= 4,
        "{} objects in {}",
        objects.len(),
        payloads.description()
    );

    // SIGTERM the second leader: it releases the lock and the third takes over at once.
    let index: usize = second.trim_start_matches("jm-").parse()?;
    let child = processes.0[index].as_mut().ok_or("the second leader is gone")?;
    let stopped_at = Instant::now();
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status()?;
    assert!(status.success());
    let third = wait_until("the last standby to lead", Duration::from_secs(20), || async {
        leader_address(&api).await.filter(|a| *a != first && *a != second)
    })
    .await?;
    let handover = stopped_at.elapsed();
    eprintln!("hand-over after SIGTERM: {handover:?} (to {third})");
    assert!(
        handover < LEASE,
        "graceful hand-over took {handover:?}, as long as an expiry"
    );
    let exited = processes.0[index].as_mut().ok_or("gone")?.wait()?;
    assert!(exited.success(), "a graceful stop exits 0: {exited}");
    Ok(())
}

#[test]
fn a_config_with_errors_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, "high-availability.type: kubernets\nkubernetes.cluster-id: x\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_flink-ha"))
        .args(["jobmanager", "--config"])
        .arg(&path)
        .env("KUBECONFIG", dir.path().join("no-such-kubeconfig"))
        .output()
        .expect("run flink-ha");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("HA109"), "{stderr}");
    assert!(stderr.contains("does not start"), "{stderr}");
}

/// A JobManager without `high-availability.cluster-id` writes into the `default` folder
/// every standalone cluster shares: it says once, at its start, that it will not sweep
/// orphans there, and runs on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_orphan_sweep_in_the_shared_default_folder_and_it_says_so_at_start() -> TestResult {
    let env = TestEnv::new("jobmanager-default-folder").await?;
    let dir = tempfile::tempdir()?;
    let config_path = dir.path().join("config.yaml");
    let config = format!(
        "high-availability.type: kubernetes
high-availability.storageDir: file://{}/ha
kubernetes.cluster-id: standalone
kubernetes.namespace: {}
high-availability.kubernetes.leader-election.lease-duration: 2 s
high-availability.kubernetes.leader-election.renew-deadline: 1500 ms
high-availability.kubernetes.leader-election.retry-period: 400 ms
",
        dir.path().display(),
        env.namespace
    );
    std::fs::write(&config_path, config)?;
    let log_path = dir.path().join("stderr.log");
    let child = Command::new(env!("CARGO_BIN_EXE_flink-ha"))
        .args(["jobmanager", "--jobs", "1", "--checkpoint-interval", "300 ms"])
        .arg("--config")
        .arg(&config_path)
        .env("KUBECONFIG", &env.kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path)?)
        .spawn()?;
    env.plane.adopt(child.id());
    let mut processes = JobManagers(vec![Some(child)]);
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    // Leading and checkpointing: the refusal did not stop it.
    wait_until(
        "a checkpoint in the default folder",
        Duration::from_secs(20),
        || async {
            latest_checkpoints_of(&api, "standalone")
                .await
                .ok()
                .filter(|l| !l.is_empty())
        },
    )
    .await?;
    let log = std::fs::read_to_string(&log_path)?;
    let said = log.lines().filter(|l| l.contains("no orphan sweep in")).count();
    assert_eq!(said, 1, "{log}");
    assert!(log.contains("high-availability.cluster-id"), "{log}");
    assert!(dir.path().join("ha").join("default").is_dir());
    // Nothing of the sweep touched the folder: no owner marker.
    assert!(
        !dir.path()
            .join("ha")
            .join("default")
            .join(flink_ha_runtime::payloads::OWNER_MARKER)
            .exists()
    );
    if let Some(mut child) = processes.0[0].take() {
        child.kill()?;
        child.wait()?;
    }
    Ok(())
}

#[test]
fn an_orphan_min_age_below_the_floor_is_refused_unless_the_sweep_is_off() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.yaml");
    let config = format!(
        "high-availability.type: kubernetes\nhigh-availability.storageDir: file://{}/ha\nkubernetes.cluster-id: x\nhigh-availability.cluster-id: x\n",
        dir.path().display()
    );
    std::fs::write(&path, config).expect("write");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_flink-ha"))
            .args(["jobmanager", "--orphan-min-age", "1 s"])
            .args(extra)
            .arg("--config")
            .arg(&path)
            .env("KUBECONFIG", dir.path().join("no-such-kubeconfig"))
            .output()
            .expect("run flink-ha")
    };
    // Flink's defaults: 15 s leases, 15 retries, a floor of 8 min 15 s.
    let refused = run(&[]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--orphan-min-age") && stderr.contains("too young"),
        "{stderr}"
    );
    // Without a sweep the age means nothing: it gets as far as Kubernetes.
    let off = run(&["--no-orphan-sweep"]);
    let stderr = String::from_utf8_lossy(&off.stderr);
    assert!(!stderr.contains("too young"), "{stderr}");
    assert!(stderr.contains("cannot reach Kubernetes"), "{stderr}");
}

/// The operator's explicit choice to recover from an older checkpoint when the newest
/// one's payload is missing is a flag of its own (the runtime fails such a recovery
/// without it); it is accepted like any other option.
#[test]
fn recovering_from_an_older_checkpoint_is_an_explicit_flag() {
    let help = Command::new(env!("CARGO_BIN_EXE_flink-ha"))
        .args(["jobmanager", "--help"])
        .output()
        .expect("run flink-ha");
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("--recover-from-older-checkpoint"), "{text}");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, "high-availability.type: kubernets\nkubernetes.cluster-id: x\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_flink-ha"))
        .args(["jobmanager", "--recover-from-older-checkpoint", "--config"])
        .arg(&path)
        .env("KUBECONFIG", dir.path().join("no-such-kubeconfig"))
        .output()
        .expect("run flink-ha");
    // Parsed: the run gets as far as the configuration's lint (exit 1, not clap's 2).
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
}
