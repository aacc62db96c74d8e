//! Leader retrieval: who leads a component, from its entry
//! `org.apache.flink.k8s.leader.<component>` = `<session-uuid>,<address>` in the cluster
//! ConfigMap, kept current by a watch.
//!
//! The watch starts from a list's resourceVersion, so no change between the read and
//! the watch is missed; when the server ends it (timeout, `410 Gone` after compaction,
//! a broken connection) the retrieval lists again and resumes. Subscribers see only
//! changes of the entry itself, not every lease renewal.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use tokio::sync::watch;
use uuid::Uuid;

use crate::names;

/// The leader of a component as its entry names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderInfo {
    /// The leader's session id: fresh for every grant.
    pub session_id: Uuid,
    /// The component's address as published (an RPC address, or a URL for `restserver`).
    pub address: String,
}

/// How long the server may keep one watch open before the retrieval renews it.
pub const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(290);

/// A running retrieval; dropping it stops the watch.
pub struct LeaderRetrieval {
    leader: watch::Receiver<Option<LeaderInfo>>,
    task: tokio::task::JoinHandle<()>,
}

impl LeaderRetrieval {
    /// Follows the leader of `component` of cluster `cluster_id`.
    pub fn start(api: Api<ConfigMap>, cluster_id: &str, component: &str) -> LeaderRetrieval {
        LeaderRetrieval::start_with_timeout(api, cluster_id, component, DEFAULT_WATCH_TIMEOUT)
    }

    /// As [`LeaderRetrieval::start`], with the server-side watch timeout (tests use a
    /// short one to exercise reconnecting).
    pub fn start_with_timeout(
        api: Api<ConfigMap>,
        cluster_id: &str,
        component: &str,
        watch_timeout: Duration,
    ) -> LeaderRetrieval {
        let (tx, leader) = watch::channel(None);
        let follower = Follower {
            api,
            name: names::cluster_config_map(cluster_id),
            key: names::leader_entry_key(component),
            watch_timeout,
            tx,
        };
        LeaderRetrieval {
            leader,
            task: tokio::spawn(follower.run()),
        }
    }

    /// The current leader (`None`: no leader entry, or an unreadable one); `changed()`
    /// on it waits for the next change.
    pub fn leader(&self) -> watch::Receiver<Option<LeaderInfo>> {
        self.leader.clone()
    }
}

impl Drop for LeaderRetrieval {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Follower {
    api: Api<ConfigMap>,
    name: String,
    key: String,
    watch_timeout: Duration,
    tx: watch::Sender<Option<LeaderInfo>>,
}

impl Follower {
    async fn run(self) {
        let fields = format!("metadata.name={}", self.name);
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.follow(&fields).await {
                // The server ended the watch in order: resume at once.
                Ok(()) => backoff = Duration::from_millis(100),
                Err(error) => {
                    tracing::debug!(name = %self.name, %error, "leader retrieval interrupted");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// One list + watch cycle; returns when the watch ends.
    async fn follow(&self, fields: &str) -> Result<(), String> {
        let list = self
            .api
            .list(&ListParams::default().fields(fields))
            .await
            .map_err(|e| e.to_string())?;
        self.publish(list.items.first());
        let version = list.metadata.resource_version.unwrap_or_default();
        let seconds = u32::try_from(self.watch_timeout.as_secs().max(1)).unwrap_or(290);
        let params = WatchParams::default().fields(fields).timeout(seconds);
        let mut events = self
            .api
            .watch(&params, &version)
            .await
            .map_err(|e| e.to_string())?
            .boxed();
        while let Some(event) = events.next().await {
            match event.map_err(|e| e.to_string())? {
                WatchEvent::Added(cm) | WatchEvent::Modified(cm) => self.publish(Some(&cm)),
                WatchEvent::Deleted(_) => self.publish(None),
                WatchEvent::Bookmark(_) => {}
                // 410 Gone (the version was compacted away) and other ends: list again.
                WatchEvent::Error(status) => return Err(format!("watch ended: {} {}", status.code, status.message)),
            }
        }
        Ok(())
    }

    fn publish(&self, cm: Option<&ConfigMap>) {
        let entry = cm.and_then(|cm| cm.data.as_ref()).and_then(|d| d.get(&self.key));
        let leader = entry.and_then(|value| {
            let parsed = names::parse_leader_entry(value);
            if parsed.is_none() {
                tracing::warn!(key = %self.key, %value, "leader entry is not `<session-uuid>,<address>`; ignored");
            }
            parsed.map(|(session_id, address)| LeaderInfo {
                session_id,
                address: address.to_string(),
            })
        });
        // Only real changes wake subscribers (renewals touch the ConfigMap every period).
        self.tx.send_if_modified(|current| {
            if *current == leader {
                false
            } else {
                *current = leader;
                true
            }
        });
    }
}
