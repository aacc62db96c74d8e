//! The HA runtime's rows of `../shared/spec/benchmarks.md`, against a real API server:
//! `cargo bench -p flink-ha-cli --bench failover` (several minutes: Flink's default
//! timings, 15 s leases).
//!
//! - Failover: three `flink-ha jobmanager` processes; the leader is SIGKILLed N times
//!   (a fresh standby replaces it each time); time until another process's address is
//!   in the dispatcher's leader entry. Bar: every one within lease + 2.2 × retry period.
//! - Graceful hand-over: the leader gets SIGTERM; same measure. Bar: < 1 s.
//! - Checkpoint commits through the store (counter + add with retention), payload on
//!   file:// and on a real S3-compatible server (moto), sequentially: commits/s and
//!   latency percentiles.
//!
//! `FAILOVER_KILLS` (default 10) sets N; 0 measures the commits only.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

use flink_ha_runtime::cas::ConfigMapCas;
use flink_ha_runtime::checkpoint_counter::CheckpointIdCounter;
use flink_ha_runtime::checkpoint_store::CompletedCheckpointStore;
use flink_ha_runtime::fence::Fence;
use flink_ha_runtime::names;
use flink_ha_runtime::payloads::PayloadStore;
use flink_ha_runtime::storage::StorageOptions;
use flink_ha_testenv::{S3Server, TestEnv};

const LEASE: Duration = Duration::from_secs(15);
const RETRY: Duration = Duration::from_secs(5);

struct Processes(Vec<(String, Child)>);

impl Processes {
    /// Takes the process whose address is `address` (the leader's) out of the set.
    fn take(&mut self, address: &str) -> Child {
        let at = self
            .0
            .iter()
            .position(|(a, _)| a == address)
            .expect("the leader is ours");
        self.0.remove(at).1
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(env: &TestEnv, config: &std::path::Path, address: &str) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_flink-ha"))
        .args([
            "jobmanager",
            "--jobs",
            "2",
            "--checkpoint-interval",
            "1 s",
            "--address",
            address,
        ])
        .arg("--config")
        .arg(config)
        .env("KUBECONFIG", &env.kubeconfig)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start flink-ha jobmanager");
    // Dies with this process even if it is killed.
    env.plane.adopt(child.id());
    child
}

async fn leader(api: &Api<ConfigMap>) -> Option<String> {
    let cm = api.get_opt(&names::cluster_config_map("bench")).await.ok()??;
    let entry = cm.data?.remove(&names::leader_entry_key(names::DISPATCHER))?;
    names::parse_leader_entry(&entry).map(|(_, a)| a.to_string())
}

async fn next_leader(api: &Api<ConfigMap>, not: &str) -> Duration {
    let start = Instant::now();
    loop {
        if let Some(now) = leader(api).await
            && now != not
        {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no new leader after 120 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    if samples.is_empty() {
        return;
    }
    samples.sort();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name}: n={} min {:.3?} median {:.3?} p90 {:.3?} p99 {:.3?} max {:.3?}",
        samples.len(),
        samples[0],
        pick(0.5),
        pick(0.9),
        pick(0.99),
        samples[samples.len() - 1]
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let kills: usize = std::env::var("FAILOVER_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let env = TestEnv::new("bench-failover").await.expect("control plane");
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "high-availability.type: kubernetes\nhigh-availability.storageDir: file://{}\nhigh-availability.cluster-id: bench\nkubernetes.cluster-id: bench\nkubernetes.namespace: {}\nexecution.checkpointing.interval: 1 s\n",
            dir.path().join("ha").display(),
            env.namespace
        ),
    )
    .expect("write config");

    let mut next_address = 0;
    let mut processes = Processes(Vec::new());
    let contenders = if kills > 0 { 3 } else { 0 };
    for _ in 0..contenders {
        let address = format!("jm-{next_address}");
        next_address += 1;
        processes.0.push((address.clone(), spawn(&env, &config, &address)));
    }
    while kills > 0 && leader(&api).await.is_none() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let bound = LEASE + RETRY.mul_f64(2.2);
    let mut failovers = Vec::new();
    for round in 0..kills {
        // Kill at a random point of the renewal cycle (retry period 5 s), past the start.
        tokio::time::sleep(Duration::from_millis(2_000 + fastrand::u64(..5_000))).await;
        let current = leader(&api).await.expect("a leader");
        let mut child = processes.take(&current);
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let took = next_leader(&api, &current).await;
        println!("kill {round}: new leader after {took:.3?}");
        assert!(took <= bound, "failover {took:?} over the bound {bound:?}");
        failovers.push(took);
        let address = format!("jm-{next_address}");
        next_address += 1;
        processes.0.push((address.clone(), spawn(&env, &config, &address)));
    }
    summary("failover after SIGKILL (Flink defaults 15 s / 15 s / 5 s)", failovers);

    let mut handovers = Vec::new();
    for round in 0..kills {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let current = leader(&api).await.expect("a leader");
        let mut child = processes.take(&current);
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let took = next_leader(&api, &current).await;
        println!("stop {round}: new leader after {took:.3?}");
        let _ = child.wait();
        handovers.push(took);
        let address = format!("jm-{next_address}");
        next_address += 1;
        processes.0.push((address.clone(), spawn(&env, &config, &address)));
    }
    summary("graceful hand-over after SIGTERM", handovers);
    drop(processes);

    // Checkpoint commits through the store, sequentially: payloads on file://, then on a
    // real S3-compatible server on loopback (moto).
    let local =
        PayloadStore::open(&format!("file://{}", dir.path().join("commits").display()), "bench").expect("payloads");
    commits(&api, local, "file://", "c0ffeec0ffeec0ffeec0ffeec0ffee00").await;
    let s3 = S3Server::shared().expect("S3 server");
    s3.create_bucket("bench").expect("bucket");
    let options = StorageOptions::from_entries([
        ("s3.endpoint", s3.endpoint().as_str()),
        ("s3.path.style.access", "true"),
        ("s3.access-key", "bench"),
        ("s3.secret-key", "bench"),
    ]);
    let remote = PayloadStore::open_with("s3://bench/ha", "bench", &options).expect("payloads on S3");
    commits(
        &api,
        remote,
        "S3 (moto on loopback)",
        "c0ffeec0ffeec0ffeec0ffeec0ffee01",
    )
    .await;
}

/// 300 sequential commits (counter increment + pointer with retention of 1, 4 KiB payload).
async fn commits(api: &Api<ConfigMap>, payloads: PayloadStore, storage: &str, job: &str) {
    let cas = ConfigMapCas::new(api.clone(), 15, Duration::from_secs(10));
    let fence = Fence::new(u64::MAX - 1, "bench");
    fence.claim_job(&cas, "commits", job).await.expect("claim");
    let counter = CheckpointIdCounter::new(cas.clone(), "commits", job, fence.clone());
    counter.start().await.expect("counter");
    let store = CompletedCheckpointStore::new(cas, "commits", job, payloads, fence, 1);
    store.recover().await.expect("recover");
    let payload = Bytes::from(vec![b'x'; 4096]);
    let mut latencies = Vec::new();
    let started = Instant::now();
    for _ in 0..300 {
        let t = Instant::now();
        let id = counter.get_and_increment().await.expect("increment");
        store.add(id, payload.clone()).await.expect("add");
        latencies.push(t.elapsed());
    }
    let elapsed = started.elapsed();
    println!(
        "checkpoint commits (counter + pointer + retention of 1, 4 KiB payload on {storage}): {:.0}/s",
        latencies.len() as f64 / elapsed.as_secs_f64()
    );
    summary(&format!("checkpoint commit latency on {storage}"), latencies);
}
