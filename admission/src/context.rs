//! What a review asks to see beside the request ([`ReviewError::ContextNeeded`]): the
//! cluster ConfigMap whose lease HA205 judges a job ConfigMap by. Read from the API
//! server with a GET per object, each answer (found, absent, failed) kept for a short
//! while in a bounded cache, each GET bounded by a timeout.
//!
//! Only the few requests whose decision turns on a lease ask: a DELETE of a job
//! ConfigMap that still holds pointers, an UPDATE that takes them away unmarked. Flink's
//! own writes (checkpoints, renewals, its cleanup of an ended job) never do, so the
//! webhook reads nothing on Flink's hot path and needs no watch: a GET on `configmaps`
//! is all its RBAC adds. A lookup that fails becomes [`ReviewContext::Unknown`]; the
//! policy then fails the review, and the host answers HTTP 500, so the webhook's
//! failurePolicy decides.
//!
//! [`ReviewError::ContextNeeded`]: crate::policy::ReviewError::ContextNeeded

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;

use crate::policy::{ObjectRef, ReviewContext};

/// How long an answer is reused. Short: a lease is renewed every few seconds, and a copy
/// is judged as of the time it was read, so an old copy only ever errs towards denying.
pub const DEFAULT_TTL: Duration = Duration::from_secs(2);
/// How long one GET may take (the webhook's timeoutSeconds is 3).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Answers kept at most; past it the oldest go.
pub const DEFAULT_MAX_ENTRIES: usize = 1024;
/// Objects one review may ask for (the policy asks for one or two).
pub const MAX_REFS: usize = 4;

/// One object's answer: its JSON, absent, or why it could not be read.
type Answer = Result<Option<String>, String>;

struct Cached {
    at: Instant,
    /// When the GET was sent, in Unix milliseconds: the copy is judged as of then.
    read_at_ms: i64,
    answer: Answer,
}

/// What a lookup gives the policy's second call.
#[derive(Clone, Debug)]
pub struct Looked {
    /// The context to review with.
    pub context: ReviewContext,
    /// When the oldest copy in it was read (Unix milliseconds): the review's `now`.
    pub read_at_ms: i64,
}

/// ConfigMaps by namespace and name, from the API server, cached.
pub struct ContextLookup {
    client: Option<kube::Client>,
    ttl: Duration,
    timeout: Duration,
    max_entries: usize,
    cache: Mutex<HashMap<(String, String), Cached>>,
}

impl ContextLookup {
    /// Lookups through `client`; without one every lookup is [`ReviewContext::Unknown`].
    pub fn new(client: Option<kube::Client>, ttl: Duration, timeout: Duration, max_entries: usize) -> ContextLookup {
        ContextLookup {
            client,
            ttl,
            timeout,
            max_entries: max_entries.max(1),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The objects `refs` names: [`ReviewContext::Found`] with those that exist, or
    /// [`ReviewContext::Unknown`] when one of them could not be read.
    pub async fn lookup(&self, refs: &[ObjectRef]) -> Looked {
        let started_ms = jiff::Timestamp::now().as_millisecond();
        let unknown = |why: String| Looked {
            context: ReviewContext::Unknown(why),
            read_at_ms: started_ms,
        };
        if refs.len() > MAX_REFS {
            return unknown(format!(
                "the policy asked for {} objects; the webhook looks up at most {MAX_REFS}",
                refs.len()
            ));
        }
        let Some(client) = &self.client else {
            return unknown(
                "the webhook has no API server access (no service account token or kubeconfig), so it cannot read the cluster's lease".into(),
            );
        };
        let mut found = Vec::new();
        let mut read_at_ms = started_ms;
        for r in refs {
            let (answer, at_ms) = self.get(client, r).await;
            read_at_ms = read_at_ms.min(at_ms);
            match answer {
                Ok(Some(json)) => found.push(json),
                Ok(None) => {}
                Err(why) => return unknown(why),
            }
        }
        Looked {
            context: ReviewContext::Found(found),
            read_at_ms,
        }
    }

    async fn get(&self, client: &kube::Client, r: &ObjectRef) -> (Answer, i64) {
        let key = (r.namespace.clone(), r.name.clone());
        if let Ok(cache) = self.cache.lock()
            && let Some(cached) = cache.get(&key)
            && cached.at.elapsed() < self.ttl
        {
            return (cached.answer.clone(), cached.read_at_ms);
        }
        let read_at_ms = jiff::Timestamp::now().as_millisecond();
        let api: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), &r.namespace);
        let answer = match tokio::time::timeout(self.timeout, api.get_opt(&r.name)).await {
            Ok(Ok(Some(cm))) => serde_json::to_string(&cm).map(Some).map_err(|e| e.to_string()),
            Ok(Ok(None)) => Ok(None),
            Ok(Err(kube::Error::Api(status))) => Err(format!(
                "cannot read ConfigMap {}/{}: {} (HTTP {})",
                r.namespace, r.name, status.message, status.code
            )),
            Ok(Err(e)) => Err(format!("cannot read ConfigMap {}/{}: {e}", r.namespace, r.name)),
            Err(_) => Err(format!(
                "reading ConfigMap {}/{} timed out after {} ms",
                r.namespace,
                r.name,
                self.timeout.as_millis()
            )),
        };
        if let Err(why) = &answer {
            tracing::warn!(namespace = %r.namespace, name = %r.name, error = %why, "context lookup failed");
        }
        self.remember(key, read_at_ms, answer.clone());
        (answer, read_at_ms)
    }

    /// Keeps an answer, a failure too (briefly, so an outage costs one wait per object
    /// and TTL, not one per review); the cache never holds more than `max_entries`.
    fn remember(&self, key: (String, String), read_at_ms: i64, answer: Answer) {
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        if cache.len() >= self.max_entries && !cache.contains_key(&key) {
            let ttl = self.ttl;
            cache.retain(|_, cached| cached.at.elapsed() < ttl);
            while cache.len() >= self.max_entries {
                let Some(oldest) = cache.iter().min_by_key(|(_, c)| c.at).map(|(k, _)| k.clone()) else {
                    break;
                };
                cache.remove(&oldest);
            }
        }
        cache.insert(
            key,
            Cached {
                at: Instant::now(),
                read_at_ms,
                answer,
            },
        );
    }

    /// Answers held now (for tests and metrics).
    pub fn cached(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str) -> ObjectRef {
        ObjectRef {
            namespace: "default".into(),
            name: name.into(),
        }
    }

    #[tokio::test]
    async fn without_an_api_client_the_lookup_is_unknown_and_says_why() {
        let lookup = ContextLookup::new(None, DEFAULT_TTL, DEFAULT_TIMEOUT, 8);
        let looked = lookup.lookup(&[r("a-cluster-config-map")]).await;
        match looked.context {
            ReviewContext::Unknown(why) => assert!(why.contains("no API server access"), "{why}"),
            other => panic!("{other:?}"),
        }
        let many: Vec<ObjectRef> = (0..=MAX_REFS).map(|i| r(&format!("c{i}"))).collect();
        assert!(matches!(lookup.lookup(&many).await.context, ReviewContext::Unknown(_)));
    }

    #[test]
    fn the_cache_stays_within_its_bound() {
        let lookup = ContextLookup::new(None, Duration::from_secs(60), DEFAULT_TIMEOUT, 3);
        for i in 0..10 {
            lookup.remember(("default".into(), format!("c{i}")), i, Ok(None));
        }
        assert_eq!(lookup.cached(), 3);
        let cache = lookup.cache.lock().unwrap();
        // The newest stay.
        assert!(cache.contains_key(&("default".to_string(), "c9".to_string())));
        assert!(!cache.contains_key(&("default".to_string(), "c0".to_string())));
    }
}
