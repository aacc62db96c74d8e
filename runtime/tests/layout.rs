//! The runtime and the linter agree on what a Flink HA ConfigMap is: every ConfigMap the
//! runtime writes while it runs a job (the cluster ConfigMap with the lock, leader
//! entries and a plan; the job ConfigMap with the fence, the counter and checkpoints) is
//! named and labelled as the policy core's `ha_layout` says, lints clean, and is treated
//! by the linter as an HA ConfigMap: given an owner reference, it is denied (HA201).

use bytes::Bytes;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ListParams};

use flink_ha_policy::ha_layout::HaConfigMapName;
use flink_ha_policy::{RuleId, Severity};
use flink_ha_runtime::checkpoint_counter::CheckpointIdCounter;
use flink_ha_runtime::checkpoint_store::CompletedCheckpointStore;
use flink_ha_runtime::cleanup::ExecutionPlanStore;
use flink_ha_runtime::fence::Fence;
use flink_ha_runtime::payloads::PayloadStore;
use flink_ha_runtime::{LeaderElection, names};
use flink_ha_testenv::TestEnv;

mod common;
use common::{cas, fast};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const JOB: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";

fn lint_as_manifest(cm: &ConfigMap) -> Result<flink_ha_policy::Report, serde_json::Error> {
    // JSON is YAML: the linter reads it as a manifest would be read.
    let mut object = serde_json::to_value(cm)?;
    object["apiVersion"] = "v1".into();
    object["kind"] = "ConfigMap".into();
    Ok(flink_ha_policy::lint("configmap.yaml", &object.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_config_map_the_runtime_writes_is_one_the_linter_knows_as_flinks() -> TestResult {
    let env = TestEnv::new("layout").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let storage = tempfile::tempdir()?;
    let payloads = PayloadStore::open(&format!("file://{}", storage.path().display()), "orders")?;

    let election = LeaderElection::start(api.clone(), fast("orders"));
    let (_, epoch) = tokio::time::timeout(std::time::Duration::from_secs(10), election.wait_for_grant()).await?;
    election
        .publish_leader_address(names::DISPATCHER, "http://10.0.0.9:8081")
        .await?;
    ExecutionPlanStore::new(cas(&api), "orders", payloads.clone(), election.identity())
        .put(JOB, Bytes::from_static(b"plan"))
        .await?;
    let fence = Fence::new(epoch, election.identity());
    fence.claim_job(&cas(&api), "orders", JOB).await?;
    election
        .publish_leader_address(
            &names::job_component(JOB),
            "pekko.tcp://flink@10.0.0.9:6123/user/rpc/jobmanager_2",
        )
        .await?;
    let counter = CheckpointIdCounter::new(cas(&api), "orders", JOB, fence.clone());
    counter.start().await?;
    let checkpoints = CompletedCheckpointStore::new(cas(&api), "orders", JOB, payloads, fence, 1);
    checkpoints.recover().await?;
    for _ in 0..3 {
        let id = counter.get_and_increment().await?;
        checkpoints.add(id, Bytes::from(format!("checkpoint {id}"))).await?;
    }

    // Every ConfigMap of the namespace (kube-root-ca.crt is the controller-manager's, when it runs).
    let written: Vec<ConfigMap> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|cm| cm.metadata.name.as_deref() != Some("kube-root-ca.crt"))
        .collect();
    let mut kinds = Vec::new();
    for cm in &written {
        let name = cm.metadata.name.as_deref().unwrap_or_default();
        let parsed = HaConfigMapName::parse(name).ok_or_else(|| format!("{name}: not one of Flink's HA names"))?;
        assert_eq!(parsed.cluster_id(), "orders", "{name}");
        kinds.push(parsed);
        assert_eq!(
            cm.metadata.labels.clone().unwrap_or_default(),
            names::ha_labels("orders"),
            "{name}"
        );

        let report = lint_as_manifest(cm)?;
        let serious: Vec<_> = report
            .findings
            .iter()
            .filter(|f| matches!(f.severity, Severity::Error | Severity::Warning))
            .collect();
        assert!(serious.is_empty(), "{name} as the runtime wrote it: {serious:#?}");

        let mut owned = cm.clone();
        owned.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "orders".into(),
            uid: "6f1c3c8e-1f7d-4a59-a0a4-0a9c2e3b1d21".into(),
            ..OwnerReference::default()
        }]);
        let report = lint_as_manifest(&owned)?;
        assert!(
            report.findings.iter().any(|f| f.rule == RuleId::HA201),
            "{name} with an owner reference is not denied: the linter does not see an HA ConfigMap: {:#?}",
            report.findings
        );
    }
    kinds.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(
        kinds,
        [
            HaConfigMapName::Cluster { cluster_id: "orders" },
            HaConfigMapName::Job {
                cluster_id: "orders",
                job_id: JOB
            },
        ],
        "the runtime wrote exactly the cluster and the job ConfigMap"
    );
    election.stop().await;
    Ok(())
}
