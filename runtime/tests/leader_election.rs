//! Leader election against the real API server (flink-ha-testenv), with short timings so
//! expiry happens within a test: lease 2 s, renew deadline 1.5 s, retry period 0.4 s.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};

use flink_ha_policy::leader_record::LeaderRecord;
use flink_ha_runtime::leader_election::check_holds_lock;
use flink_ha_runtime::{Error, LeaderElection, Leadership, names};
use flink_ha_testenv::TestEnv;

type TestResult = Result<(), Box<dyn std::error::Error>>;

mod common;
use common::{LEASE, fast};

fn leaders(elections: &[&LeaderElection]) -> Vec<String> {
    elections
        .iter()
        .filter(|e| matches!(*e.leadership().borrow(), Leadership::Leader { .. }))
        .map(|e| e.identity().to_string())
        .collect()
}

async fn record(api: &Api<ConfigMap>, cluster_id: &str) -> Result<LeaderRecord, Box<dyn std::error::Error>> {
    let cm = api.get(&names::cluster_config_map(cluster_id)).await?;
    let raw = cm
        .metadata
        .annotations
        .unwrap_or_default()
        .remove(names::LEADER_ANNOTATION)
        .ok_or("no leader annotation")?;
    Ok(LeaderRecord::parse(&raw)?)
}

/// Waits until one of `elections` leads; returns its index and how long it took.
async fn next_leader(elections: &[&LeaderElection], within: Duration) -> Result<(usize, Duration), String> {
    let start = Instant::now();
    loop {
        if let Some(i) = elections
            .iter()
            .position(|e| matches!(*e.leadership().borrow(), Leadership::Leader { .. }))
        {
            return Ok((i, start.elapsed()));
        }
        if start.elapsed() > within {
            return Err(format!("no leader within {within:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_contenders_one_leader_then_graceful_handover_and_takeover_after_a_crash() -> TestResult {
    let env = TestEnv::new("election-three").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let a = LeaderElection::start(api.clone(), fast("orders"));
    let b = LeaderElection::start(api.clone(), fast("orders"));
    let c = LeaderElection::start(api.clone(), fast("orders"));

    let (first, _) = next_leader(&[&a, &b, &c], Duration::from_secs(10)).await?;
    // Exactly one leader, and the lock names it, over several renewal periods.
    for _ in 0..10 {
        let now_leading = leaders(&[&a, &b, &c]);
        assert!(now_leading.len() <= 1, "two leaders: {now_leading:?}");
        let holder = record(&api, "orders").await?.holder_identity;
        if let [leader] = now_leading.as_slice() {
            assert_eq!(&holder, leader);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let renewed = record(&api, "orders").await?;
    assert!(
        renewed.renew_time > renewed.acquire_time,
        "the leader renews: {renewed:?}"
    );
    assert_eq!(renewed.lease_duration, LEASE);

    // The cluster ConfigMap carries the HA labels and no owner references.
    let cm = api.get(&names::cluster_config_map("orders")).await?;
    assert_eq!(
        cm.metadata.labels.clone().unwrap_or_default(),
        names::ha_labels("orders")
    );
    assert!(cm.metadata.owner_references.is_none());

    // Graceful stop: the lock is released and a standby takes over at once, long
    // before the lease would have expired.
    let mut all = vec![a, b, c];
    let leader = all.remove(first);
    let before = record(&api, "orders").await?.leader_transitions;
    let stopped = Instant::now();
    leader.stop().await;
    let (second, _) = next_leader(&[&all[0], &all[1]], Duration::from_secs(10)).await?;
    let handover = stopped.elapsed();
    assert!(
        handover < LEASE,
        "graceful hand-over took {handover:?}, as long as an expiry"
    );
    assert_eq!(record(&api, "orders").await?.leader_transitions, before + 1);

    // A crash (the task aborted, nothing released): the other takes over only once the
    // lease has run out since the last renewal it saw.
    let crashed = all.remove(second);
    let survivor = all.remove(0);
    let last_renewal = Instant::now();
    drop(crashed);
    let (_, _) = next_leader(&[&survivor], Duration::from_secs(10)).await?;
    let takeover = last_renewal.elapsed();
    assert!(
        takeover + Duration::from_millis(400) >= LEASE,
        "took over after {takeover:?}, before the lease of {LEASE:?} could have expired"
    );
    assert!(
        takeover < LEASE + Duration::from_millis(400) * 3,
        "takeover after {takeover:?}"
    );
    assert_eq!(record(&api, "orders").await?.holder_identity, survivor.identity());
    survivor.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_cannot_publish_and_steps_down() -> TestResult {
    let env = TestEnv::new("election-deposed").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let election = LeaderElection::start(api.clone(), fast("deposed"));
    let session = tokio::time::timeout(Duration::from_secs(10), election.wait_for_leadership()).await?;

    election
        .publish_leader_address(
            names::DISPATCHER,
            "pekko.tcp://flink@10.0.0.7:6123/user/rpc/dispatcher_1",
        )
        .await?;
    let cm = api.get(&names::cluster_config_map("deposed")).await?;
    let entry = cm.data.unwrap_or_default()[&names::leader_entry_key(names::DISPATCHER)].clone();
    assert_eq!(
        names::parse_leader_entry(&entry),
        Some((session, "pekko.tcp://flink@10.0.0.7:6123/user/rpc/dispatcher_1"))
    );

    // Someone else takes the lock behind this leader's back (as after a long pause).
    let mut cm = api.get(&names::cluster_config_map("deposed")).await?;
    let mut usurper = record(&api, "deposed").await?;
    usurper.holder_identity = format!("{}-usurper", election.identity());
    cm.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(names::LEADER_ANNOTATION.to_string(), usurper.to_json());
    api.replace(&names::cluster_config_map("deposed"), &PostParams::default(), &cm)
        .await?;

    // Its next write is refused in the same request that would have made it.
    let refused = election
        .publish_leader_address(names::REST_SERVER, "http://10.0.0.7:8081")
        .await;
    assert!(matches!(refused, Err(Error::NotLeader { .. })), "{refused:?}");
    let cm = api.get(&names::cluster_config_map("deposed")).await?;
    assert!(
        !cm.data
            .unwrap_or_default()
            .contains_key(&names::leader_entry_key(names::REST_SERVER))
    );

    // And it notices at its next renewal.
    let mut state = election.leadership();
    tokio::time::timeout(Duration::from_secs(5), state.wait_for(|s| *s == Leadership::Follower)).await??;
    assert_eq!(record(&api, "deposed").await?.holder_identity, usurper.holder_identity);
    drop(election);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_removes_own_leader_entries_and_keeps_the_rest() -> TestResult {
    let env = TestEnv::new("election-release").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let election = LeaderElection::start(api.clone(), fast("release"));
    tokio::time::timeout(Duration::from_secs(10), election.wait_for_leadership()).await?;
    election
        .publish_leader_address(
            names::DISPATCHER,
            "pekko.tcp://flink@10.0.0.8:6123/user/rpc/dispatcher_1",
        )
        .await?;
    // Data that is not a leader entry of this session stays (execution plans, other entries).
    let mut cm = api.get(&names::cluster_config_map("release")).await?;
    let data = cm.data.get_or_insert_with(Default::default);
    data.insert(
        "executionPlan-a1b2c3d4e5f60718293a4b5c6d7e8f90".into(),
        "{\"pointer\":1}".into(),
    );
    let foreign = names::leader_entry_value(&uuid::Uuid::new_v4(), "http://elsewhere");
    data.insert(
        names::leader_entry_key("job-a1b2c3d4e5f60718293a4b5c6d7e8f90"),
        foreign.clone(),
    );
    api.replace(&names::cluster_config_map("release"), &PostParams::default(), &cm)
        .await?;

    election.stop().await;
    let cm = api.get(&names::cluster_config_map("release")).await?;
    let data = cm.data.clone().unwrap_or_default();
    assert!(!data.contains_key(&names::leader_entry_key(names::DISPATCHER)));
    assert_eq!(
        data.get(&names::leader_entry_key("job-a1b2c3d4e5f60718293a4b5c6d7e8f90")),
        Some(&foreign)
    );
    assert!(data.contains_key("executionPlan-a1b2c3d4e5f60718293a4b5c6d7e8f90"));
    let released = record(&api, "release").await?;
    assert_eq!(released.holder_identity, "");
    assert_eq!(released.lease_duration, Duration::from_secs(1));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_leader_record_is_taken_over_after_a_lease_without_change() -> TestResult {
    let env = TestEnv::new("election-malformed").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(names::cluster_config_map("garbled"));
    cm.metadata.labels = Some(names::ha_labels("garbled"));
    cm.metadata.annotations = Some([(names::LEADER_ANNOTATION.to_string(), "{not json".to_string())].into());
    api.create(&PostParams::default(), &cm).await?;

    let started = Instant::now();
    let election = LeaderElection::start(api.clone(), fast("garbled"));
    tokio::time::timeout(Duration::from_secs(10), election.wait_for_leadership()).await?;
    assert!(
        started.elapsed() >= LEASE,
        "took over a record it could not read after {:?}",
        started.elapsed()
    );
    assert_eq!(record(&api, "garbled").await?.holder_identity, election.identity());
    election.stop().await;
    Ok(())
}

/// Flink matches its identity as a substring of the raw annotation; this runtime
/// compares the parsed holder exactly.
#[test]
fn the_lock_check_compares_the_exact_identity() {
    let identity = "6b0a4e1c-0000-4000-8000-000000000001";
    let with_holder = |holder: &str| {
        let mut cm = ConfigMap::default();
        let record = LeaderRecord {
            holder_identity: holder.to_string(),
            lease_duration: LEASE,
            acquire_time: jiff::Timestamp::UNIX_EPOCH,
            renew_time: jiff::Timestamp::UNIX_EPOCH,
            leader_transitions: 0,
        };
        cm.metadata.annotations = Some([(names::LEADER_ANNOTATION.to_string(), record.to_json())].into());
        cm
    };
    assert!(check_holds_lock(&with_holder(identity), identity, "x").is_ok());
    for other in [format!("{identity}-2"), format!("x{identity}"), String::new()] {
        let refused = check_holds_lock(&with_holder(&other), identity, "x");
        assert!(
            matches!(refused, Err(Error::NotLeader { .. })),
            "{other:?}: {refused:?}"
        );
    }
    let mut garbled = ConfigMap::default();
    garbled.metadata.annotations = Some([(names::LEADER_ANNOTATION.to_string(), format!("\"{identity}\""))].into());
    assert!(check_holds_lock(&garbled, identity, "x").is_err());
    assert!(check_holds_lock(&ConfigMap::default(), identity, "x").is_err());
}

/// `kubectl delete` of the cluster ConfigMap under a running leader: the leader restores
/// it from what it last saw (leader entries and execution plans included) and keeps its
/// grant; the follower beside it never leads. (Before the fix the leader was revoked and
/// the follower created an empty ConfigMap at once, while the old leader could still act
/// for up to a lease: two leaders, and the jobs' plans gone.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_config_map_deleted_under_the_leader_is_restored_with_its_data() -> TestResult {
    let env = TestEnv::new("election-deleted").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let name = names::cluster_config_map("deleted");
    let leader = LeaderElection::start(api.clone(), fast("deleted"));
    let (session, epoch) = tokio::time::timeout(Duration::from_secs(10), leader.wait_for_grant()).await?;
    let follower = LeaderElection::start(api.clone(), fast("deleted"));
    leader.publish_leader_address(names::DISPATCHER, "jm-0").await?;
    let plan_key = "executionPlan-0123456789abcdef0123456789abcdef";
    common::cas(&api)
        .update(&name, |cm| {
            cm.data
                .get_or_insert_with(Default::default)
                .insert(plan_key.into(), r#"{"path":"s3://b/plan"}"#.into());
            Ok(flink_ha_runtime::cas::Change::Write)
        })
        .await?;
    // Let the watch see the plan, then delete the ConfigMap.
    tokio::time::sleep(Duration::from_millis(300)).await;
    api.delete(&name, &Default::default()).await?;

    // For two leases: the leader's grant never ends, the follower never leads.
    let mut state = leader.leadership();
    let ended = tokio::time::timeout(LEASE * 2, state.wait_for(|s| s.session_id() != Some(session)))
        .await
        .is_ok();
    assert!(!ended, "the leader's grant ended: {:?}", *state.borrow());
    assert_eq!(*follower.leadership().borrow(), Leadership::Follower);
    let restored = api.get(&name).await?;
    let data = restored.data.clone().unwrap_or_default();
    assert_eq!(
        data.get(plan_key).map(String::as_str),
        Some(r#"{"path":"s3://b/plan"}"#)
    );
    assert!(
        data.contains_key(&names::leader_entry_key(names::DISPATCHER)),
        "{data:?}"
    );
    assert_eq!(
        restored.metadata.labels.clone().unwrap_or_default(),
        names::ha_labels("deleted")
    );
    let record = record(&api, "deleted").await?;
    assert_eq!(record.holder_identity, leader.identity());
    assert_eq!(record.leader_transitions, epoch);
    follower.stop().await;
    leader.stop().await;
    Ok(())
}

/// The cluster ConfigMap deleted while its leader cannot restore it (killed, or frozen
/// and about to wake): a contender of a cluster with fenced jobs waits a whole lease
/// from when it first found the ConfigMap missing before it creates it, so the old
/// leader's step-down moment has passed. (Before the fix it created it at once.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_lock_of_a_cluster_with_jobs_is_taken_only_after_a_lease() -> TestResult {
    let env = TestEnv::new("election-deleted-wait").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let leader = LeaderElection::start(api.clone(), fast("orphaned"));
    let (_, epoch) = tokio::time::timeout(Duration::from_secs(10), leader.wait_for_grant()).await?;
    flink_ha_runtime::fence::Fence::new(epoch, leader.identity())
        .claim_job(&common::cas(&api), "orphaned", "0123456789abcdef0123456789abcdef")
        .await?;
    // Killed: no release, no restore.
    drop(leader);
    api.delete(&names::cluster_config_map("orphaned"), &Default::default())
        .await?;
    let deleted_at = Instant::now();

    let contender = LeaderElection::start(api.clone(), fast("orphaned"));
    let (_, next_epoch) = tokio::time::timeout(Duration::from_secs(10), contender.wait_for_grant()).await?;
    let waited = deleted_at.elapsed();
    assert!(
        waited >= LEASE,
        "the deleted lock was taken after {waited:?}, within a lease"
    );
    assert!(next_epoch > epoch, "epoch {next_epoch} after {epoch}");
    contender.stop().await;
    Ok(())
}

/// A leader cut off from the API server steps down within renew-deadline, before any
/// other process could take the lock, and leads again once the server is back. The
/// fault is real: the private kube-apiserver is stopped with SIGSTOP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_api_server_steps_down_within_renew_deadline() -> TestResult {
    let plane = flink_ha_testenv::ControlPlane::start()?;
    let client = flink_ha_testenv::client_from_kubeconfig(&plane.kubeconfig).await?;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let config = fast("isolated");
    let election = LeaderElection::start(api.clone(), config.clone());
    tokio::time::timeout(Duration::from_secs(10), election.wait_for_leadership()).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let pid = plane.apiserver_pid().ok_or("no apiserver pid")?.to_string();
    let stopped = std::process::Command::new("kill").args(["-STOP", &pid]).status()?;
    assert!(stopped.success());
    let cut_off = Instant::now();
    let mut state = election.leadership();
    let stepped_down =
        tokio::time::timeout(Duration::from_secs(10), state.wait_for(|s| *s == Leadership::Follower)).await;
    let took = cut_off.elapsed();
    let resumed = std::process::Command::new("kill").args(["-CONT", &pid]).status()?;
    assert!(resumed.success());
    stepped_down??;
    // Within renew-deadline of the last renewal (at most one retry period before the cut),
    // and so before the lease (2 s) could expire for anyone else.
    assert!(
        took <= config.renew_deadline + Duration::from_millis(100),
        "stepped down after {took:?}"
    );
    assert!(took < config.lease_duration, "stepped down after {took:?}");

    tokio::time::timeout(Duration::from_secs(15), election.wait_for_leadership()).await?;
    election.stop().await;
    Ok(())
}

/// Issue 12, path 5: a leader stops acting as leader strictly before anyone else may
/// acquire: counted from the send time of its last successful renewal, with a margin,
/// even where renew-deadline equals the lease (Flink's defaults: 15 s and 15 s). The
/// fault is real: the private kube-apiserver is stopped with SIGSTOP right after a
/// renewal landed. (Before the fix the leader stepped down at the renew deadline
/// counted without a margin, so here at the very moment a follower could take over.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_steps_down_before_the_lease_of_its_last_renewal_runs_out() -> TestResult {
    let plane = flink_ha_testenv::ControlPlane::start()?;
    let client = flink_ha_testenv::client_from_kubeconfig(&plane.kubeconfig).await?;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let config = flink_ha_runtime::ElectionConfig {
        renew_deadline: LEASE,
        ..fast("flink-shaped")
    };
    let election = LeaderElection::start(api.clone(), config.clone());
    let (session, _) = tokio::time::timeout(Duration::from_secs(10), election.wait_for_grant()).await?;
    let lease = election.lease(session);
    lease.check()?;

    // Wait for a renewal to land, then freeze the API server at once.
    let before = record(&api, "flink-shaped").await?.renew_time;
    let renewed = loop {
        let now = record(&api, "flink-shaped").await?.renew_time;
        if now != before {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let pid = plane.apiserver_pid().ok_or("no apiserver pid")?.to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-STOP", &pid])
            .status()?
            .success()
    );
    let mut state = election.leadership();
    let stepped_down =
        tokio::time::timeout(Duration::from_secs(10), state.wait_for(|s| *s == Leadership::Follower)).await;
    let at = jiff::Timestamp::now();
    let lease_check = lease.check();
    assert!(
        std::process::Command::new("kill")
            .args(["-CONT", &pid])
            .status()?
            .success()
    );
    stepped_down??;

    let since_renewal = Duration::try_from(at.duration_since(renewed))?;
    // The renewal's renewTime was stamped before it was sent; a follower may acquire no
    // earlier than a whole lease after it saw the write land.
    assert!(
        since_renewal + Duration::from_millis(50) < config.lease_duration,
        "stepped down {since_renewal:?} after the last renewal; the lease is {:?}",
        config.lease_duration
    );
    assert!(
        lease_check.is_err(),
        "the lease must refuse actions after the step-down"
    );
    election.stop().await;
    Ok(())
}

/// Issue 12, path 4: epochs only grow for a cluster id. The cluster ConfigMap is gone
/// (Flink deletes it on a graceful shutdown) while a job ConfigMap still carries the
/// fence of epoch 5: the next grant's epoch is above it, so the new leader can claim
/// the job. (Before the fix the recreated lock started at 0 again, every claim was
/// refused, and the leader held the lock while running no job.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_lock_grants_an_epoch_above_every_fence() -> TestResult {
    let env = TestEnv::new("election-epoch").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let job = "0123456789abcdef0123456789abcdef";
    let cas = common::cas(&api);
    flink_ha_runtime::fence::Fence::new(5, "a-leader-of-the-past")
        .claim_job(&cas, "epochs", job)
        .await?;

    let election = LeaderElection::start(api.clone(), fast("epochs"));
    let (_, epoch) = tokio::time::timeout(Duration::from_secs(10), election.wait_for_grant()).await?;
    assert!(epoch > 5, "granted epoch {epoch}, below the job's fence");
    assert_eq!(record(&api, "epochs").await?.leader_transitions, epoch);
    flink_ha_runtime::fence::Fence::new(epoch, election.identity())
        .claim_job(&cas, "epochs", job)
        .await?;
    election.stop().await;
    Ok(())
}

/// A leader that cannot take up its jobs gives up the lock, and another contender
/// takes over at once instead of after a lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_gives_up_hands_over_at_once() -> TestResult {
    let env = TestEnv::new("election-give-up").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let a = LeaderElection::start(api.clone(), fast("give-up"));
    let session = tokio::time::timeout(Duration::from_secs(10), a.wait_for_leadership()).await?;
    let b = LeaderElection::start(api.clone(), fast("give-up"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(leaders(&[&a, &b]), [a.identity().to_string()]);

    a.give_up(session);
    let (who, took) = next_leader(&[&b], Duration::from_secs(5)).await?;
    assert_eq!(who, 0);
    assert!(took < LEASE, "took over after {took:?}: the lock was not released");
    assert_eq!(leaders(&[&a, &b]), [b.identity().to_string()]);
    a.stop().await;
    b.stop().await;
    Ok(())
}
