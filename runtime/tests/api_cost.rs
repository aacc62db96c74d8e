//! What the leader costs the API server in steady state, counted by the API server
//! itself (`apiserver_request_total`): one request per lease renewal (Flink needs a GET
//! and a PATCH). This test runs alone in its binary, so the control plane serves
//! nothing else while it counts.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, WatchEvent, WatchParams};

use flink_ha_runtime::{LeaderElection, names};
use flink_ha_testenv::TestEnv;

mod common;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// ConfigMap requests by verb, from the API server's metrics.
async fn configmap_requests(
    client: &kube::Client,
) -> Result<std::collections::BTreeMap<String, f64>, Box<dyn std::error::Error>> {
    let text = client
        .request_text(http::Request::get("/metrics").body(Vec::new())?)
        .await?;
    let mut by_verb = std::collections::BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
        if !line.contains(r#"resource="configmaps""#) {
            continue;
        }
        let verb = line
            .split(r#"verb=""#)
            .nth(1)
            .and_then(|v| v.split('"').next())
            .unwrap_or("?");
        let value: f64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        *by_verb.entry(verb.to_string()).or_insert(0.0) += value;
    }
    Ok(by_verb)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_leader_makes_one_request_per_renewal() -> TestResult {
    let env = TestEnv::new("api-cost").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let election = LeaderElection::start(api.clone(), common::fast("cost"));
    election.wait_for_leadership().await;
    // Past the first renewals after the grant.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Every renewal changes the ConfigMap: count the versions a watch sees.
    let name = names::cluster_config_map("cost");
    let params = WatchParams::default().fields(&format!("metadata.name={name}"));
    let current = api.get(&name).await?.metadata.resource_version.unwrap_or_default();
    let mut stream = api.watch(&params, &current).await?.boxed();

    let before = configmap_requests(&env.client).await?;
    let mut versions = BTreeSet::new();
    let window = tokio::time::sleep(Duration::from_secs(6));
    tokio::pin!(window);
    loop {
        tokio::select! {
            _ = &mut window => break,
            event = stream.next() => match event {
                Some(Ok(WatchEvent::Modified(cm))) => {
                    versions.insert(cm.metadata.resource_version.unwrap_or_default());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => break,
            },
        }
    }
    let after = configmap_requests(&env.client).await?;
    let delta = |verb: &str| after.get(verb).copied().unwrap_or(0.0) - before.get(verb).copied().unwrap_or(0.0);
    let (gets, updates, patches) = (delta("GET"), delta("PUT"), delta("PATCH"));
    // The two metric reads are not ConfigMap requests; the watch above is one WATCH.
    let renewals = versions.len() as f64;
    eprintln!(
        "renewals {renewals}, GET {gets}, PUT {updates}, PATCH {patches}, LIST {}",
        delta("LIST")
    );
    assert!(
        renewals >= 10.0,
        "only {renewals} renewals in 6 s with a 0.4 s retry period"
    );
    assert_eq!(gets, 0.0, "a steady leader re-reads nothing");
    assert_eq!(patches, 0.0);
    // The window's edges can split one renewal between the count and the watch.
    assert!(
        (updates - renewals).abs() <= 1.0,
        "{updates} updates for {renewals} renewals"
    );
    election.stop().await;
    Ok(())
}
