//! Embedding flink-ha-runtime: one JobManager's HA from start to end against the cluster
//! of the current kubeconfig — win the lock, submit a job, checkpoint it, end it, and
//! clean the cluster's HA data up.
//!
//! ```text
//! cargo run -p flink-ha-runtime --example embed -- config.yaml
//! ```
//!
//! `config.yaml` is a Flink configuration with Kubernetes HA on (`high-availability.type:
//! kubernetes`, `high-availability.storageDir`, `kubernetes.cluster-id`, and
//! `kubernetes.namespace` for where the ConfigMaps go). `cargo test` runs this example
//! against the test control plane (see the test at the end).

use std::time::Duration;

use bytes::Bytes;
use flink_ha_runtime::job_result_store::{ApplicationStatus, JobResult};
use flink_ha_runtime::{HaServices, HaSettings, JobId};

type Error = Box<dyn std::error::Error + Send + Sync>;

const JOB: &str = "e1b2c3d4e5f60718293a4b5c6d7e8f90";

/// What the example does, line by line on stdout.
async fn run(config_path: &str, client: kube::Client) -> Result<(), Error> {
    let text = std::fs::read_to_string(config_path).map_err(|e| format!("cannot read {config_path}: {e}"))?;
    // Linted by the policy core first: a config with errors is refused with its report.
    let settings = HaSettings::from_flink_config(config_path, &text)?;
    let services = HaServices::new(client, settings)?;

    let election = services.leader_election();
    let (_session, epoch) = tokio::time::timeout(Duration::from_secs(60), election.wait_for_grant())
        .await
        .map_err(|_| "no leadership within 60 s: another JobManager holds the lock")?;
    println!("leading {} with epoch {epoch}", services.cluster_id());

    // A new leader first looks at what the cluster already has.
    let plans = services.execution_plans(&election);
    let recovery = services.recoverable_jobs(&plans).await?;
    println!("jobs to recover: {}", recovery.recover.len());

    // Job ids are checked once, here: everything that names the job's data takes a JobId.
    let job_id = JobId::parse(JOB)?;
    plans
        .put(job_id.as_str(), Bytes::from_static(b"the job's execution plan"))
        .await?;
    let job = services.take_up_job(&election, epoch, &job_id).await?;
    if let Some((id, _)) = job.checkpoints().recover().await? {
        println!("recovered checkpoint {id}");
    }
    for _ in 0..3 {
        let id = job.counter().get_and_increment().await?;
        let added = job
            .checkpoints()
            .add(id, Bytes::from(format!("state at checkpoint {id}")))
            .await?;
        println!("checkpoint {id} acknowledged at {}", added.path);
    }

    // The job ends: its result is recorded first, then its HA data goes.
    let result = JobResult::new(JOB, ApplicationStatus::Succeeded, 1_000);
    services.clean_up_job(&job, &result).await?;
    println!("job {JOB} finished and cleaned up");
    // And the cluster shuts down for good (as `flink cancel` of the last job with
    // shutdown would): its HA ConfigMap and payloads go.
    services.clean_up_cluster(election).await?;
    println!("cluster cleaned up");
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let Some(config_path) = std::env::args().nth(1) else {
        return Err("usage: embed CONFIG.yaml".into());
    };
    let client = kube::Client::try_default().await?;
    run(&config_path, client).await
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, ListParams};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_example_runs_against_a_real_api_server_and_leaves_nothing() -> Result<(), super::Error> {
        let env = flink_ha_testenv::TestEnv::new("example-embed").await?;
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "high-availability.type: kubernetes\n\
                 high-availability.storageDir: file://{}/ha\n\
                 kubernetes.cluster-id: embedded\n\
                 high-availability.cluster-id: embedded\n\
                 kubernetes.namespace: {}\n",
                dir.path().display(),
                env.namespace
            ),
        )?;
        super::run(&config.display().to_string(), env.client.clone()).await?;
        let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
        let left = api.list(&ListParams::default().labels("app=embedded")).await?;
        assert!(left.items.is_empty(), "HA ConfigMaps left: {}", left.items.len());
        // Everything the run wrote went under `<storageDir>/embedded/`, and is gone.
        let payloads = walk(&dir.path().join("ha"));
        assert!(payloads.is_empty(), "payloads left: {payloads:?}");
        Ok(())
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .flat_map(|e| {
                let path = e.path();
                if path.is_dir() { walk(&path) } else { vec![path] }
            })
            .collect()
    }
}
