//! Leader retrieval against the real API server: it follows the leader entry through
//! elections, malformed entries and deletion, and keeps following across watch renewals.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, PostParams};
use tokio::sync::watch;

use flink_ha_runtime::leader_retrieval::{LeaderInfo, LeaderRetrieval};
use flink_ha_runtime::{LeaderElection, names};
use flink_ha_testenv::TestEnv;

type TestResult = Result<(), Box<dyn std::error::Error>>;

mod common;
use common::fast;

async fn until(
    rx: &mut watch::Receiver<Option<LeaderInfo>>,
    what: &str,
    wanted: impl Fn(&Option<LeaderInfo>) -> bool,
) -> Result<Option<LeaderInfo>, String> {
    let waited = tokio::time::timeout(Duration::from_secs(15), rx.wait_for(|v| wanted(v)))
        .await
        .map(|r| r.map(|value| value.clone()));
    match waited {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err(format!("retrieval stopped while waiting for {what}")),
        Err(_) => Err(format!("no {what} within 15 s; last seen {:?}", *rx.borrow())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_leader_through_elections_and_deletion() -> TestResult {
    let env = TestEnv::new("retrieval").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    // Started before any leader exists, with a short server-side watch timeout so the
    // watch is renewed several times during the test.
    let retrieval = LeaderRetrieval::start_with_timeout(api.clone(), "retr", names::DISPATCHER, Duration::from_secs(1));
    let mut leader = retrieval.leader();
    assert_eq!(*leader.borrow(), None);

    let first = LeaderElection::start(api.clone(), fast("retr"));
    let session = first.wait_for_leadership().await;
    first
        .publish_leader_address(
            names::DISPATCHER,
            "pekko.tcp://flink@10.0.0.1:6123/user/rpc/dispatcher_1",
        )
        .await?;
    let seen = until(&mut leader, "the first leader", |v| v.is_some()).await?;
    assert_eq!(
        seen,
        Some(LeaderInfo {
            session_id: session,
            address: "pekko.tcp://flink@10.0.0.1:6123/user/rpc/dispatcher_1".into()
        })
    );

    // Past several watch timeouts, a new leader is still seen.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let second = LeaderElection::start(api.clone(), fast("retr"));
    first.stop().await;
    let until_none = until(&mut leader, "the entry's removal on release", |v| v.is_none()).await?;
    assert_eq!(until_none, None);
    let second_session = second.wait_for_leadership().await;
    assert_ne!(second_session, session);
    second
        .publish_leader_address(
            names::DISPATCHER,
            "pekko.tcp://flink@10.0.0.2:6123/user/rpc/dispatcher_1",
        )
        .await?;
    let seen = until(&mut leader, "the second leader", |v| v.is_some()).await?;
    assert_eq!(
        seen.map(|l| (l.session_id, l.address)),
        Some((
            second_session,
            "pekko.tcp://flink@10.0.0.2:6123/user/rpc/dispatcher_1".to_string()
        ))
    );

    // A malformed entry is no leader (and no crash); a deleted ConfigMap neither.
    let name = names::cluster_config_map("retr");
    let mut cm = api.get(&name).await?;
    cm.data.get_or_insert_with(Default::default).insert(
        names::leader_entry_key(names::DISPATCHER),
        "garbage-without-comma".into(),
    );
    api.replace(&name, &PostParams::default(), &cm).await?;
    until(&mut leader, "the malformed entry to count as no leader", |v| {
        v.is_none()
    })
    .await?;

    // A valid entry again, then its process is gone without a release (dropped: no more
    // renewals, the entry stays) and the ConfigMap is deleted: no leader.
    second
        .publish_leader_address(
            names::DISPATCHER,
            "pekko.tcp://flink@10.0.0.2:6123/user/rpc/dispatcher_1",
        )
        .await?;
    until(&mut leader, "the entry written again", |v| v.is_some()).await?;
    drop(second);
    api.delete(&name, &DeleteParams::default()).await?;
    until(&mut leader, "no leader once the ConfigMap is deleted", |v| v.is_none()).await?;
    Ok(())
}
