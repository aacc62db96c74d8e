//! The webhook's policy settings: `--disable-rule`, `--warn-only` and the settings file
//! (`--settings`, the format of [`flink_ha_policy::settings`]) combined into what every
//! review gets, and the namespace labels a `namespaceSelector` exemption needs.
//!
//! Of a settings file the webhook uses `exemptions` and the rules set to `off`; severity
//! changes and `overrides` are `flink-ha lint`'s and are left aside with a log line, so
//! one file can serve both. A file that does not parse is refused whole: at start that
//! stops the webhook, on a reload the settings in use keep serving.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use flink_ha_policy::settings::{self, Level};
use k8s_openapi::api::core::v1::Namespace;

use crate::WebhookError;
use crate::policy::ReviewSettings;

/// What every review is given, and what the host must add per request.
#[derive(Clone, Debug)]
pub struct HostSettings {
    /// What the policy's `review` is given (namespace labels added per request).
    pub review: ReviewSettings,
    /// Some exemption selects namespaces by label: look the labels up per request.
    pub needs_namespace_labels: bool,
    /// The exemptions' names, for the log line at load.
    pub exemption_names: Vec<String>,
}

/// Builds the settings from the flags and the file, if any.
pub fn load(disabled_rules: &[String], warn_only: bool, file: Option<&Path>) -> Result<HostSettings, WebhookError> {
    let mut disabled = disabled_rules.to_vec();
    let parsed = match file {
        None => settings::PolicySettings::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| WebhookError::File {
                path: path.to_path_buf(),
                source,
            })?;
            settings::parse(&text).map_err(|e| WebhookError::Settings(format!("{}:{e}", path.display())))?
        }
    };
    disabled.extend(parsed.rules_off().map(|rule| rule.as_str().to_string()));
    for (rule, level) in parsed.rules.iter().filter(|(_, level)| *level != Level::Off) {
        tracing::info!(rule = %rule, level = ?level, "severity settings are flink-ha lint's; the webhook leaves them aside");
    }
    if !parsed.overrides.is_empty() {
        tracing::info!("`overrides` (path globs) are flink-ha lint's; the webhook leaves them aside");
    }
    let exemptions_json = if parsed.exemptions.is_empty() {
        String::new()
    } else {
        serde_json::to_string(&parsed.exemptions).map_err(|e| WebhookError::Settings(e.to_string()))?
    };
    Ok(HostSettings {
        needs_namespace_labels: parsed.exemptions.iter().any(|e| e.namespace_selector.is_some()),
        exemption_names: parsed.exemptions.iter().map(|e| e.name.clone()).collect(),
        review: ReviewSettings {
            disabled_rules: disabled,
            warn_only,
            exemptions_json,
            namespace_labels: None,
        },
    })
}

/// A client of the API server, for [`crate::ServerConfig`] (which is `Debug`).
#[derive(Clone)]
pub struct ApiClient(pub kube::Client);

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiClient")
    }
}

/// When a namespace's labels were read, and what they were (`None`: unreadable).
type CachedLabels = (Instant, Option<BTreeMap<String, String>>);

/// The most namespaces whose labels are kept: a request names any namespace it likes,
/// so the cache must not grow with what requests name.
pub const MAX_CACHED_NAMESPACES: usize = 1024;

/// Namespace labels from the API server, kept for a while: labels change rarely, and a
/// review must not wait on the API server each time. At most `max_entries` are kept,
/// the oldest evicted first; failed lookups (a namespace that does not exist, an outage)
/// are kept too, so naming namespaces costs one API call per namespace and TTL.
pub struct NamespaceLabels {
    client: kube::Client,
    ttl: Duration,
    max_entries: usize,
    cache: Mutex<HashMap<String, CachedLabels>>,
}

impl NamespaceLabels {
    /// Lookups through `client`, each answer kept for `ttl`, at most
    /// [`MAX_CACHED_NAMESPACES`] at a time.
    pub fn new(client: kube::Client, ttl: Duration) -> NamespaceLabels {
        NamespaceLabels {
            client,
            ttl,
            max_entries: MAX_CACHED_NAMESPACES,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The labels of `namespace`, or `None` when they cannot be read (then no
    /// namespaceSelector exemption applies: failing to look up never widens an
    /// exemption).
    pub async fn get(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        if namespace.is_empty() {
            return None;
        }
        if let Ok(cache) = self.cache.lock()
            && let Some((at, labels)) = cache.get(namespace)
            && at.elapsed() < self.ttl
        {
            return labels.clone();
        }
        let api: kube::Api<Namespace> = kube::Api::all(self.client.clone());
        let labels = match tokio::time::timeout(Duration::from_secs(1), api.get(namespace)).await {
            Ok(Ok(ns)) => Some(ns.metadata.labels.unwrap_or_default()),
            Ok(Err(e)) => {
                tracing::warn!(namespace, error = %e, "cannot read the namespace's labels; its namespaceSelector exemptions do not apply");
                None
            }
            Err(_) => {
                tracing::warn!(
                    namespace,
                    "reading the namespace's labels timed out; its namespaceSelector exemptions do not apply"
                );
                None
            }
        };
        if let Ok(mut cache) = self.cache.lock() {
            // A failed lookup (no such namespace, an outage) is remembered too, so it
            // costs one API call per namespace and TTL, not one per review.
            remember(
                &mut cache,
                self.max_entries,
                self.ttl,
                namespace.to_string(),
                labels.clone(),
            );
        }
        labels
    }
}

/// Keeps `labels` for `namespace`, holding at most `max_entries`: when full, expired
/// entries go first, then the oldest.
fn remember(
    cache: &mut HashMap<String, CachedLabels>,
    max_entries: usize,
    ttl: Duration,
    namespace: String,
    labels: Option<BTreeMap<String, String>>,
) {
    if cache.len() >= max_entries && !cache.contains_key(&namespace) {
        cache.retain(|_, (at, _)| at.elapsed() < ttl);
        while cache.len() >= max_entries {
            let Some(oldest) = cache.iter().min_by_key(|(_, (at, _))| *at).map(|(k, _)| k.clone()) else {
                break;
            };
            cache.remove(&oldest);
        }
    }
    if max_entries > 0 {
        cache.insert(namespace, (Instant::now(), labels));
    }
}

/// `request.namespace` of an AdmissionReview, read without building the whole tree.
pub fn request_namespace(body: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Review {
        request: Option<Request>,
    }
    #[derive(serde::Deserialize)]
    struct Request {
        namespace: Option<String>,
    }
    serde_json::from_str::<Review>(body).ok()?.request?.namespace
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_adds_rules_off_and_exemptions_and_a_broken_one_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.yaml");
        std::fs::write(
            &path,
            "rules:\n  HA117: off\n  HA114: warning\nexemptions:\n  - name: migration\n    rules: [HA201]\n    namespaceSelector:\n      matchLabels: {stage: migration}\n",
        )
        .unwrap();
        let loaded = load(&["HA205".into()], false, Some(&path)).unwrap();
        assert_eq!(
            loaded.review.disabled_rules,
            vec!["HA205".to_string(), "HA117".to_string()]
        );
        assert!(loaded.needs_namespace_labels);
        assert!(loaded.review.exemptions_json.contains("\"namespaceSelector\""));

        std::fs::write(&path, "exemptions:\n  - name: x\n    rules: [HA2O5]\n    users: [u]\n").unwrap();
        let error = load(&[], false, Some(&path)).unwrap_err().to_string();
        assert!(
            error.contains("settings.yaml:3:") && error.contains("`HA2O5` is not a rule"),
            "{error}"
        );
    }

    #[test]
    fn the_namespace_is_read_from_the_request() {
        let body = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","namespace":"team-a","object":{"big":[1,2,3]}}}"#;
        assert_eq!(request_namespace(body).as_deref(), Some("team-a"));
        assert_eq!(request_namespace("{}"), None);
    }

    #[test]
    fn the_namespace_cache_stays_within_its_bound_and_keeps_misses() {
        let mut cache = HashMap::new();
        let ttl = Duration::from_secs(60);
        for i in 0..(MAX_CACHED_NAMESPACES + 500) {
            // Every other one a namespace that does not exist: kept as a miss.
            let labels = (i % 2 == 0).then(BTreeMap::new);
            remember(&mut cache, MAX_CACHED_NAMESPACES, ttl, format!("ns-{i}"), labels);
            assert!(cache.len() <= MAX_CACHED_NAMESPACES);
        }
        assert_eq!(cache.len(), MAX_CACHED_NAMESPACES);
        // The newest stay, the oldest went; a miss is held like a hit.
        let last = MAX_CACHED_NAMESPACES + 499;
        assert!(cache.contains_key(&format!("ns-{last}")));
        assert_eq!(cache[&format!("ns-{last}")].1, None);
        assert!(!cache.contains_key("ns-0"));
        // An entry already held is refreshed in place, evicting nothing.
        remember(
            &mut cache,
            MAX_CACHED_NAMESPACES,
            ttl,
            format!("ns-{last}"),
            Some(BTreeMap::new()),
        );
        assert_eq!(cache.len(), MAX_CACHED_NAMESPACES);
        assert!(cache.contains_key(&format!("ns-{}", last - 1)));
    }
}
