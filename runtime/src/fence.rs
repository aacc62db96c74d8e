//! Fencing of the job ConfigMaps — beyond Flink.
//!
//! Flink 1.15+ checks leadership only on the cluster ConfigMap; a job ConfigMap
//! (checkpoint pointers, counter) is guarded by its resourceVersion alone, so a leader
//! that was paused and deposed can still write a checkpoint pointer or bump the counter
//! after a new leader recovered the job. Here every job ConfigMap carries a fence, the
//! annotation `flink-ha/leader-fence` = `{"epoch":N,"holder":"<identity>"}`:
//!
//! - A new leader **claims** each job ConfigMap before it recovers the job, raising the
//!   fence to its epoch (the lock's `leaderTransitions` at its grant, which grows with
//!   every grant). A claim never lowers the fence, so a deposed leader's late claim fails.
//! - **Every write** to a job ConfigMap checks, in the same compare-and-set, that the
//!   fence names this leader's epoch and identity exactly.
//!
//! Flink ignores unknown annotations, so a Flink JobManager still reads these ConfigMaps.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;

use crate::cas::{Change, ConfigMapCas};
use crate::error::{Error, Result};
use crate::names;

/// The annotation that carries the fence on a job ConfigMap.
pub const FENCE_ANNOTATION: &str = "flink-ha/leader-fence";

/// The annotation of a job ConfigMap that holds a copy of the job's execution-plan
/// pointer, written with each claim. The cluster ConfigMap holds the plan pointers; if it
/// is deleted while its leader cannot put it back, they would be lost with it (the
/// nemesis found the jobs then replaced by new ones).
pub const PLAN_COPY_ANNOTATION: &str = "flink-ha/execution-plan";

/// One leader's claim on the job ConfigMaps: its grant's epoch and its identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    epoch: u64,
    holder: String,
}

impl Fence {
    /// The fence of the grant with `epoch`, held by the leader `holder`.
    pub fn new(epoch: u64, holder: impl Into<String>) -> Fence {
        Fence {
            epoch,
            holder: holder.into(),
        }
    }

    /// The grant's epoch: the lock's `leaderTransitions` as the grant wrote it.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The leader's identity in the lock.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The fence on `cm`, `None` if it has none; an error says what is malformed.
    pub fn read(cm: &ConfigMap) -> Result<Option<Fence>, String> {
        let Some(raw) = cm.metadata.annotations.as_ref().and_then(|a| a.get(FENCE_ANNOTATION)) else {
            return Ok(None);
        };
        let value: serde_json::Value =
            serde_json::from_str(raw).map_err(|e| format!("fence `{raw}` is not JSON ({e})"))?;
        let epoch = value["epoch"]
            .as_u64()
            .ok_or_else(|| format!("fence `{raw}` has no whole-number `epoch`"))?;
        let holder = value["holder"]
            .as_str()
            .ok_or_else(|| format!("fence `{raw}` has no `holder`"))?;
        Ok(Some(Fence::new(epoch, holder)))
    }

    fn to_json(&self) -> String {
        serde_json::json!({ "epoch": self.epoch, "holder": self.holder }).to_string()
    }

    /// The check every job-ConfigMap write makes in its compare-and-set.
    pub fn check(&self, cm: &ConfigMap, name: &str) -> Result<()> {
        if crate::planted::planted(crate::planted::Bug::NoFence) {
            return Ok(());
        }
        let not_leader = |reason: String| Error::NotLeader {
            name: name.to_string(),
            reason,
        };
        match Fence::read(cm).map_err(not_leader)? {
            Some(fence) if fence == *self => Ok(()),
            Some(fence) => Err(not_leader(format!(
                "the job is fenced by epoch {} of {}, this leader is epoch {}",
                fence.epoch, fence.holder, self.epoch
            ))),
            None => Err(not_leader("the job ConfigMap is not claimed by any leader".into())),
        }
    }

    /// Raises the fence on `cm` to this one; refuses to lower it or to take an epoch
    /// another holder already has.
    pub fn apply_claim(&self, cm: &mut ConfigMap, name: &str) -> Result<Change> {
        let current = Fence::read(cm).map_err(|reason| {
            tracing::warn!(%name, %reason, "malformed fence; claiming over it");
            reason
        });
        match current {
            Ok(Some(fence)) if fence == *self => return Ok(Change::Unchanged),
            Ok(Some(fence)) if fence.epoch >= self.epoch => {
                return Err(Error::NotLeader {
                    name: name.to_string(),
                    reason: format!(
                        "the job is already claimed by epoch {} of {}; this leader is epoch {}",
                        fence.epoch, fence.holder, self.epoch
                    ),
                });
            }
            _ => {}
        }
        cm.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(FENCE_ANNOTATION.to_string(), self.to_json());
        Ok(Change::Write)
    }

    /// Claims the job ConfigMap of `job_id`, creating it (HA labels, no owner
    /// references) if it does not exist. Call after a grant, before recovering the job.
    pub async fn claim_job(&self, cas: &ConfigMapCas, cluster_id: &str, job_id: &str) -> Result<ConfigMap> {
        self.claim_job_noting_plan(cas, cluster_id, job_id, None).await
    }

    /// [`Fence::claim_job`], and in the same write a copy of the job's execution-plan
    /// pointer (`plan`, as the cluster ConfigMap holds it) in the annotation
    /// [`PLAN_COPY_ANNOTATION`]: if the cluster ConfigMap is lost with the plan pointers
    /// in it, the next leader puts them back from there
    /// ([`crate::cleanup::recoverable_jobs`]).
    pub async fn claim_job_noting_plan(
        &self,
        cas: &ConfigMapCas,
        cluster_id: &str,
        job_id: &str,
        plan: Option<&str>,
    ) -> Result<ConfigMap> {
        let name = names::job_config_map(cluster_id, job_id);
        let template = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(names::ha_labels(cluster_id)),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        };
        cas.update_or_create(&name, Some(&template), |cm| {
            let claimed = self.apply_claim(cm, &name)?;
            let Some(plan) = plan else { return Ok(claimed) };
            let annotations = cm.metadata.annotations.get_or_insert_with(Default::default);
            if annotations.get(PLAN_COPY_ANNOTATION).map(String::as_str) == Some(plan) {
                return Ok(claimed);
            }
            annotations.insert(PLAN_COPY_ANNOTATION.to_string(), plan.to_string());
            Ok(Change::Write)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fenced(raw: &str) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.annotations = Some([(FENCE_ANNOTATION.to_string(), raw.to_string())].into());
        cm
    }

    #[test]
    fn claims_only_raise_the_fence() {
        let mut cm = ConfigMap::default();
        let five = Fence::new(5, "a");
        assert_eq!(five.apply_claim(&mut cm, "j").unwrap(), Change::Write);
        assert_eq!(five.apply_claim(&mut cm, "j").unwrap(), Change::Unchanged);
        assert!(five.check(&cm, "j").is_ok());
        // A later grant takes over; the earlier one is shut out, claim and write alike.
        let six = Fence::new(6, "b");
        assert_eq!(six.apply_claim(&mut cm, "j").unwrap(), Change::Write);
        assert!(matches!(five.check(&cm, "j"), Err(Error::NotLeader { .. })));
        assert!(matches!(five.apply_claim(&mut cm, "j"), Err(Error::NotLeader { .. })));
        // The same epoch under another identity is not this fence either.
        assert!(Fence::new(6, "c").check(&cm, "j").is_err());
        assert!(Fence::new(6, "c").apply_claim(&mut cm, "j").is_err());
    }

    #[test]
    fn unclaimed_or_malformed_fences_refuse_writes() {
        let fence = Fence::new(1, "a");
        assert!(fence.check(&ConfigMap::default(), "j").is_err());
        for raw in ["{", "{\"epoch\":-1,\"holder\":\"a\"}", "{\"epoch\":1}", "[]"] {
            assert!(fence.check(&fenced(raw), "j").is_err(), "{raw}");
            // A claim repairs a malformed fence.
            let mut cm = fenced(raw);
            assert_eq!(fence.apply_claim(&mut cm, "j").unwrap(), Change::Write);
            assert!(fence.check(&cm, "j").is_ok());
        }
    }
}
