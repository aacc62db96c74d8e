//! `flink-ha demo`: the HA runtime's story on this machine, with nothing to set up but
//! the control plane's binaries. A local etcd + kube-apiserver + kube-controller-manager
//! (flink-ha-testenv), HA storage on file://, and `flink-ha jobmanager` processes.
//! The demo kills the leader and then deletes the cluster's Deployment, and shows that
//! every job goes on from its latest checkpoint.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use flink_ha_runtime::checkpoint_store::checkpoint_id;
use flink_ha_runtime::names;
use flink_ha_testenv::{ControlPlane, client_from_kubeconfig};

const CLUSTER: &str = "demo";
const NAMESPACE: &str = "flink";
const LEASE: Duration = Duration::from_secs(2);
const RETRY: Duration = Duration::from_millis(400);

#[derive(Args)]
pub struct DemoArgs {
    /// Fake jobs the cluster runs.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
}

/// The JobManager processes; killed when dropped, also on an error.
struct JobManagers(BTreeMap<String, Child>);

impl Drop for JobManagers {
    fn drop(&mut self) {
        for child in self.0.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn run(args: &DemoArgs) -> Result<ExitCode> {
    let started = Instant::now();
    step("starting a local control plane: etcd, kube-apiserver, kube-controller-manager");
    let plane = ControlPlane::start().context("cannot start the local control plane")?;
    plane
        .ensure_controller_manager()
        .context("cannot start kube-controller-manager")?;
    say(&format!("ready in {:.1?} at {}", plane.startup, plane.server));

    let storage = tempfile::tempdir().context("cannot create the storageDir")?;
    let config_file = storage.path().join("config.yaml");
    let config = format!(
        "kubernetes.cluster-id: {CLUSTER}
kubernetes.namespace: {NAMESPACE}
high-availability.type: kubernetes
high-availability.storageDir: file://{}/ha
high-availability.cluster-id: {CLUSTER}
execution.checkpointing.interval: 300 ms
execution.checkpointing.num-retained: 2
high-availability.kubernetes.leader-election.lease-duration: {} ms
high-availability.kubernetes.leader-election.renew-deadline: 1500 ms
high-availability.kubernetes.leader-election.retry-period: {} ms
",
        storage.path().display(),
        LEASE.as_millis(),
        RETRY.as_millis()
    );
    std::fs::write(&config_file, &config).context("cannot write config.yaml")?;

    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let client = client_from_kubeconfig(&plane.kubeconfig).await?;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        namespaces.create(&PostParams::default(), &serde_json::from_value(serde_json::json!({"metadata": {"name": NAMESPACE}}))?).await?;
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
        let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);

        step(&format!("cluster `{CLUSTER}`: a Deployment and the flink-config-{CLUSTER} ConfigMap it owns (HA on file://)"));
        let deployment = deployments.create(&PostParams::default(), &deployment()?).await?;
        let uid = deployment.metadata.uid.clone().ok_or_else(|| anyhow!("the Deployment has no uid"))?;
        config_maps.create(&PostParams::default(), &flink_config(&config, &uid)?).await?;

        step(&format!("two JobManagers, {} jobs checkpointing every 300 ms, leases of {LEASE:?}", args.jobs));
        let mut jms = JobManagers(BTreeMap::new());
        for name in ["jm-a", "jm-b"] {
            jms.0.insert(name.to_string(), spawn_jobmanager(&plane, &config_file, name, args.jobs, false)?);
        }
        let first = wait_until("a leader", || leader(&config_maps)).await?;
        let before = wait_until("checkpoints", || async {
            latest_checkpoints(&config_maps).await.filter(|l| l.len() == args.jobs && l.values().all(|&id| id >= 3))
        })
        .await?;
        say(&format!("{first} leads; latest checkpoints: {}", show(&before)));

        step(&format!("SIGKILL the leader, {first}: it releases nothing"));
        let killed = Instant::now();
        if let Some(mut child) = jms.0.remove(&first) {
            child.kill()?;
            child.wait()?;
        }
        let next = wait_until("a new leader", || async { leader(&config_maps).await.filter(|l| *l != first) }).await?;
        let failover = killed.elapsed();
        let resumed = wait_until("checkpoints past the kill", || async {
            latest_checkpoints(&config_maps).await.filter(|l| l.iter().all(|(job, id)| before.get(job).is_some_and(|b| id > b)))
        })
        .await?;
        say(&format!("{next} leads after {failover:.1?} (the lease had to run out); jobs go on: {}", show(&resumed)));

        step(&format!("kubectl delete deployment {CLUSTER}: the garbage collector removes what it owns"));
        deployments.delete(CLUSTER, &DeleteParams::background()).await?;
        // The JobManager pods would go with the Deployment.
        for (_, mut child) in std::mem::take(&mut jms.0) {
            child.kill()?;
            child.wait()?;
        }
        let last = latest_checkpoints(&config_maps).await.unwrap_or_default();
        wait_until("flink-config to be garbage-collected", || async {
            matches!(config_maps.get_opt(&format!("flink-config-{CLUSTER}")).await, Ok(None)).then_some(())
        })
        .await?;
        let kept = config_maps.list(&ListParams::default().labels(&names::ha_selector(CLUSTER))).await?;
        // Payloads only: the orphan sweep's owner marker and probe hold no data.
        let payloads = std::fs::read_dir(storage.path().join("ha").join(CLUSTER))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.file_name() != flink_ha_runtime::payloads::OWNER_MARKER)
                    .filter(|e| {
                        !e.file_name()
                            .to_string_lossy()
                            .starts_with(flink_ha_runtime::payloads::PROBE_KIND)
                    })
                    .count()
            })
            .unwrap_or(0);
        say(&format!(
            "flink-config-{CLUSTER}: gone. Kept: {} HA ConfigMaps (no owner references) and {payloads} files in the storageDir; latest checkpoints {}",
            kept.items.len(),
            show(&last)
        ));

        step("a new JobManager with the same cluster id (the Deployment re-created)");
        let mut jm_c = spawn_jobmanager(&plane, &config_file, "jm-c", args.jobs, true)?;
        let recoveries = recoveries_logged(&mut jm_c);
        jms.0.insert("jm-c".to_string(), jm_c);
        let recovered = wait_until("jm-c to recover every job", || async {
            let seen = recoveries.lock().map(|r| r.clone()).unwrap_or_default();
            (seen.len() == last.len()).then_some(seen)
        })
        .await?;
        if recovered != last {
            bail!("jm-c recovered {} but the latest checkpoints were {}", show(&recovered), show(&last));
        }
        let resumed = wait_until("the jobs to go on from their checkpoints", || async {
            latest_checkpoints(&config_maps).await.filter(|l| l.len() == last.len() && l.iter().all(|(job, id)| last.get(job).is_some_and(|b| id > b)))
        })
        .await?;
        say(&format!("jm-c leads and recovered every job at its latest checkpoint ({}); they go on: {}", show(&recovered), show(&resumed)));
        step(&format!("done in {:.1?}: no job lost to the kill or to the Deployment's deletion", started.elapsed()));
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn step(text: &str) {
    println!("\n== {text}");
}

fn say(text: &str) {
    println!("   {text}");
}

fn show(latest: &BTreeMap<String, u64>) -> String {
    latest
        .iter()
        .map(|(job, id)| format!("job {}… at {id}", &job[..8.min(job.len())]))
        .collect::<Vec<_>>()
        .join(", ")
}

fn deployment() -> Result<Deployment> {
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": {"name": CLUSTER, "labels": {"app": CLUSTER}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": CLUSTER, "component": "jobmanager"}},
            "template": {
                "metadata": {"labels": {"app": CLUSTER, "component": "jobmanager"}},
                "spec": {"containers": [{"name": "jobmanager", "image": "flink:2.1"}]}
            }
        }
    }))?)
}

fn flink_config(config: &str, owner_uid: &str) -> Result<ConfigMap> {
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": format!("flink-config-{CLUSTER}"),
            "labels": {"app": CLUSTER},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "Deployment", "name": CLUSTER, "uid": owner_uid,
                "controller": true, "blockOwnerDeletion": true
            }]
        },
        "data": {"config.yaml": config}
    }))?)
}

fn spawn_jobmanager(
    plane: &ControlPlane,
    config: &std::path::Path,
    name: &str,
    jobs: usize,
    read_recoveries: bool,
) -> Result<Child> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let child = Command::new(exe)
        .args([
            "jobmanager",
            "--jobs",
            &jobs.to_string(),
            "--checkpoint-interval",
            "300 ms",
            "--address",
            name,
        ])
        .arg("--config")
        .arg(config)
        .env("KUBECONFIG", &plane.kubeconfig)
        // Errors only, but the recoveries too where the demo reads them from a pipe.
        .env(
            "RUST_LOG",
            if read_recoveries {
                "error,flink_ha_runtime::jobmanager=info"
            } else {
                "error"
            },
        )
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(if read_recoveries {
            Stdio::piped()
        } else {
            Stdio::inherit()
        })
        .spawn()
        .context("cannot start a JobManager")?;
    plane.adopt(child.id());
    Ok(child)
}

/// The `recovered job=… checkpoint=N` lines of a JobManager's log, as they come; other
/// lines above INFO are passed on to this process's stderr.
fn recoveries_logged(child: &mut Child) -> Arc<Mutex<BTreeMap<String, u64>>> {
    let seen = Arc::new(Mutex::new(BTreeMap::new()));
    if let Some(stderr) = child.stderr.take() {
        let seen = Arc::clone(&seen);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                match parse_recovery(&line) {
                    Some((job, id)) => {
                        if let Ok(mut seen) = seen.lock() {
                            seen.insert(job, id);
                        }
                    }
                    None if line.contains(" INFO ") => {}
                    None => eprintln!("{line}"),
                }
            }
        });
    }
    seen
}

/// `… recovered job=<id> checkpoint=<n>` from the tracing fmt layer's output.
fn parse_recovery(line: &str) -> Option<(String, u64)> {
    let rest = &line[line.find(" recovered ")? + " recovered ".len()..];
    let field = |name: &str| {
        rest.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=').map(str::to_string))
    };
    Some((field("job")?, field("checkpoint")?.parse().ok()?))
}

/// The address in the dispatcher's leader entry: which JobManager leads.
async fn leader(api: &Api<ConfigMap>) -> Option<String> {
    let cm = api.get_opt(&names::cluster_config_map(CLUSTER)).await.ok()??;
    let entry = cm.data?.remove(&names::leader_entry_key(names::DISPATCHER))?;
    names::parse_leader_entry(&entry).map(|(_, address)| address.to_string())
}

/// The highest checkpoint id of every job, from the job ConfigMaps.
async fn latest_checkpoints(api: &Api<ConfigMap>) -> Option<BTreeMap<String, u64>> {
    let list = api
        .list(&ListParams::default().labels(&names::ha_selector(CLUSTER)))
        .await
        .ok()?;
    let mut latest = BTreeMap::new();
    for cm in list.items {
        let name = cm.metadata.name.unwrap_or_default();
        let Some(job) = name
            .strip_prefix(&format!("{CLUSTER}-"))
            .and_then(|n| n.strip_suffix("-config-map"))
        else {
            continue;
        };
        if job == "cluster" {
            continue;
        }
        if let Some(id) = cm
            .data
            .unwrap_or_default()
            .keys()
            .filter_map(|k| checkpoint_id(k))
            .max()
        {
            latest.insert(job.to_string(), id);
        }
    }
    Some(latest)
}

async fn wait_until<F, Fut, T>(what: &str, mut probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        if Instant::now() > deadline {
            bail!("gave up waiting for {what} after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
