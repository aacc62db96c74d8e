//! The runtime on a cluster id a real Flink 2.3 JobManager ran (issue 13): the HA
//! ConfigMaps captured from Flink (`tests/fixtures/clean-real-flink-2.3-configmaps/`) are
//! put on the real API server with an expired lock, and a `jobmanager` of the runtime wins
//! it. It must read before it writes, find Flink's plan it cannot run, leave every one of
//! Flink's entries as it was, write none of its own, say why, and give the lock up so a
//! Flink JobManager can take it.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};

use flink_ha_runtime::history::{Event, History, Line};
use flink_ha_runtime::jobmanager::{self, JobManagerOptions};
use flink_ha_runtime::{HaSettings, names};
use flink_ha_testenv::TestEnv;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const CLUSTER: &str = "real-flink";
const FLINK_JOB: &str = "25fc957960a1789dd1ef3466290fa995";

/// Flink's two HA ConfigMaps as captured, moved into `namespace`, the lock expired.
fn flink_config_maps(namespace: &str) -> Result<Vec<ConfigMap>, Box<dyn std::error::Error>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/clean-real-flink-2.3-configmaps/configmaps.yaml"
    );
    let list: serde_json::Value = serde_yaml::from_str(&std::fs::read_to_string(path)?)?;
    let mut out = Vec::new();
    for item in list["items"].as_array().ok_or("a List")? {
        let mut cm: ConfigMap = serde_json::from_value(item.clone())?;
        cm.metadata.namespace = Some(namespace.to_string());
        cm.metadata.resource_version = None;
        cm.metadata.uid = None;
        cm.metadata.creation_timestamp = None;
        if let Some(annotations) = cm.metadata.annotations.as_mut()
            && let Some(record) = annotations.get_mut(names::LEADER_ANNOTATION)
        {
            // Renewed long ago: Flink's JobManager is gone, the lock is free to take.
            let mut value: serde_json::Value = serde_json::from_str(record)?;
            value["renewTime"] = "2026-11-28T06:36:28.496485Z".into();
            *record = value.to_string();
        }
        out.push(cm);
    }
    Ok(out)
}

fn data(cm: &ConfigMap) -> BTreeMap<String, String> {
    cm.data.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_leaves_a_flink_clusters_jobs_untouched_and_gives_the_lock_up() -> TestResult {
    let env = TestEnv::new("beside-flink").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let flink = flink_config_maps(&env.namespace)?;
    for cm in &flink {
        api.create(&PostParams::default(), cm).await?;
    }

    let storage = tempfile::tempdir()?;
    let config = format!(
        "high-availability.type: kubernetes
high-availability.storageDir: file://{}/ha
kubernetes.cluster-id: {CLUSTER}
kubernetes.namespace: {}
high-availability.kubernetes.leader-election.lease-duration: 2 s
high-availability.kubernetes.leader-election.renew-deadline: 1500 ms
high-availability.kubernetes.leader-election.retry-period: 400 ms
",
        storage.path().display(),
        env.namespace
    );
    let settings = HaSettings::from_flink_config("config.yaml", &config)?;
    let history_path = storage.path().join("history.jsonl");
    let options = JobManagerOptions {
        address: "pekko.tcp://flink@127.0.0.1:16123/user/rpc/dispatcher_1".into(),
        rest_address: "http://127.0.0.1:18081".into(),
        jobs: 1,
        checkpoint_interval: Duration::from_millis(200),
        history: History::open(&history_path)?,
        ..JobManagerOptions::default()
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(jobmanager::run(env.client.clone(), settings, options, stopped));

    // Until the runtime was granted the lock and gave it up again.
    let events = || -> Vec<Event> {
        std::fs::read_to_string(&history_path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Line>(l).ok())
            .map(|l| l.event)
            .collect()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !events().iter().any(|e| matches!(e, Event::GaveUp { .. })) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no grant given up: {:?}",
            events()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send_replace(true);
    running.await??;

    let history = events();
    assert!(
        history.iter().any(|e| matches!(e, Event::Granted { .. })),
        "{history:?}"
    );
    // It said why: the plan it cannot read.
    let refused = history.iter().find_map(|e| match e {
        Event::WriteFailed { error, .. } => Some(error.clone()),
        _ => None,
    });
    let refused = refused.ok_or("no reason recorded")?;
    assert!(refused.contains(&format!("executionPlan-{FLINK_JOB}")), "{refused}");
    // Nothing of a job was started.
    assert!(
        !history.iter().any(|e| matches!(
            e,
            Event::JobSubmitted { .. } | Event::JobClaimed { .. } | Event::Recovered { .. }
        )),
        "{history:?}"
    );

    // Every entry Flink wrote is as Flink wrote it, and none of the runtime's was added.
    for before in &flink {
        let name = before.metadata.name.clone().ok_or("a name")?;
        let after = api.get(&name).await?;
        assert_eq!(data(&after), data(before), "{name}");
        assert_eq!(after.metadata.labels, before.metadata.labels, "{name}");
    }
    // The lock was given back (released: an empty holder), so Flink may take it.
    let cluster = api.get(&names::cluster_config_map(CLUSTER)).await?;
    let record: serde_json::Value = serde_json::from_str(
        cluster
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(names::LEADER_ANNOTATION))
            .ok_or("a lock record")?,
    )?;
    assert_eq!(record["holderIdentity"], "", "{record}");
    // And nothing went into storage.
    assert!(
        !storage.path().join("ha").exists(),
        "the runtime wrote to the storageDir"
    );
    Ok(())
}
