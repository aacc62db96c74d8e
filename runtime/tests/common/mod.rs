//! Helpers shared by the runtime's tests against the real API server.
#![allow(dead_code)] // each test binary uses a part of them

pub mod faults;
pub mod stores;

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

use flink_ha_runtime::cas::ConfigMapCas;
use flink_ha_runtime::{ElectionConfig, LeaderElection, LeaderLease};

/// The names of the files in `dir`, sorted; none if it does not exist.
pub fn file_names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The lease of [`fast`]: short, so expiry happens within a test.
pub const LEASE: Duration = Duration::from_secs(2);

/// Election timings for tests: lease 2 s, renew deadline 1.5 s, retry period 0.4 s.
pub fn fast(cluster_id: &str) -> ElectionConfig {
    ElectionConfig {
        cluster_id: cluster_id.to_string(),
        lease_duration: LEASE,
        renew_deadline: Duration::from_millis(1500),
        retry_period: Duration::from_millis(400),
        max_retries: 15,
    }
}

/// The Flink configuration of runtime cluster `cluster_id` in `namespace` on
/// `storage_dir`, with [`fast`]'s election timings, 2 retries, and the lines `extra`.
pub fn flink_config(namespace: &str, cluster_id: &str, storage_dir: &str, extra: &str) -> String {
    format!(
        "high-availability.type: kubernetes
high-availability.storageDir: {storage_dir}
kubernetes.cluster-id: {cluster_id}
kubernetes.namespace: {namespace}
high-availability.kubernetes.leader-election.lease-duration: 2 s
high-availability.kubernetes.leader-election.renew-deadline: 1500 ms
high-availability.kubernetes.leader-election.retry-period: 400 ms
kubernetes.transactional-operation.max-retries: 2
{extra}"
    )
}

/// Compare-and-set with Flink's default retries and a generous deadline.
pub fn cas(api: &Api<ConfigMap>) -> ConfigMapCas {
    cas_with_retries(api, 15)
}

pub fn cas_with_retries(api: &Api<ConfigMap>, max_retries: u32) -> ConfigMapCas {
    ConfigMapCas::new(api.clone(), max_retries, Duration::from_secs(10))
}

/// The lease of the grant `election` holds now.
pub fn lease_of(election: &LeaderElection) -> Result<LeaderLease, String> {
    let session = election.leadership().borrow().session_id().ok_or("not leading")?;
    Ok(election.lease(session))
}

/// A lease that lasts the whole test, for the stores' own tests with no election.
pub fn long_lease() -> LeaderLease {
    LeaderLease::until("tests", std::time::Instant::now() + Duration::from_secs(600))
}
