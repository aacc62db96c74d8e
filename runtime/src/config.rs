//! The runtime's settings, read from a Flink configuration (`config.yaml` or a legacy
//! `flink-conf.yaml`) exactly as the policy core reads it — and only after the core's
//! lint found no error. A configuration the admission webhook would reject never runs.

use std::time::Duration;

use flink_ha_policy::config::FlinkConfig;
use flink_ha_policy::ha_config::{self, HaKind};
use flink_ha_policy::options::{self, OptionSpec};
use flink_ha_policy::{LintRun, Report, Severity, detect, duration, lint_as, read_config_text};

use crate::checkpoint_store::MissingCheckpoint;
use crate::leader_election::ElectionConfig;
use crate::names::ClusterId;
use crate::storage::StorageOptions;

/// Why the runtime will not start with a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The lint found errors; `report` is what `flink-ha lint` prints for the file.
    #[error("{name}: the configuration has {errors} error(s); the HA runtime does not start with it\n{report}")]
    Rejected {
        /// The configuration file's name, as given.
        name: String,
        /// How many errors the lint found.
        errors: usize,
        /// The lint's report, as text.
        report: String,
    },
    /// Not a configuration the runtime can run with (a manifest, HA off).
    #[error("{name}: {reason}")]
    Unusable {
        /// The configuration file's name, as given.
        name: String,
        /// Why the runtime cannot run with it.
        reason: String,
    },
}

/// What the HA services need from a Flink configuration.
#[derive(Clone, Debug)]
pub struct HaSettings {
    /// `kubernetes.cluster-id`: names the HA ConfigMaps.
    pub cluster_id: ClusterId,
    /// `kubernetes.namespace` (`default`).
    pub namespace: String,
    /// `high-availability.storageDir` (current key or a deprecated one).
    pub storage_dir: String,
    /// The folder under `storage_dir` for this cluster's payloads, where a Flink
    /// JobManager with the same configuration puts its own: `high-availability.cluster-id`,
    /// `default` when unset (Flink's default `/default`; native deployments and the
    /// operator write the cluster id into the JobManager's configuration).
    pub storage_cluster_id: String,
    /// The election's cluster id, timings and retry limit, from the same configuration.
    pub election: ElectionConfig,
    /// The options of Flink's file-system plugins (`s3.endpoint`, `s3.access-key`, …)
    /// that configure the storageDir's object store; `Debug` hides their values.
    pub storage_options: StorageOptions,
    /// `execution.checkpointing.num-retained` (1).
    pub num_retained: u32,
    /// `job-result-store.storage-path`; as in Flink, when unset (or blank)
    /// `<storageDir>/job-result-store/<ha-cluster-id>`.
    pub job_result_store_path: String,
    /// `job-result-store.delete-on-commit` (true): a finished cleanup deletes the job's
    /// entry instead of keeping it as `<job-id>.json`.
    pub job_result_delete_on_commit: bool,
    /// What recovery does when a job's newest checkpoint payload is missing from
    /// storageDir: fail (the default, as Flink does), unless the operator chose to fall
    /// back to an older checkpoint. Not a Flink option: set it in code or with
    /// `flink-ha jobmanager --recover-from-older-checkpoint`.
    pub on_missing_checkpoint: MissingCheckpoint,
    /// The lint's warnings and infos, for the caller to log.
    pub report: Report,
}

impl HaSettings {
    /// Lints `text` (named `name`, whose name decides between `config.yaml` and
    /// `flink-conf.yaml` as for `flink-ha lint`) and reads the settings from it.
    pub fn from_flink_config(name: &str, text: &str) -> Result<HaSettings, ConfigError> {
        let unusable = |reason: String| ConfigError::Unusable {
            name: name.to_string(),
            reason,
        };
        let Some(file) = detect(name, text).config_file() else {
            return Err(unusable(
                "is a Kubernetes manifest; give the runtime the Flink configuration file itself".into(),
            ));
        };
        let report = lint_as(name, text.as_bytes(), file.into());
        let errors = report.findings.iter().filter(|f| f.severity == Severity::Error).count();
        if errors > 0 {
            return Err(ConfigError::Rejected {
                name: name.to_string(),
                errors,
                report: LintRun::new([(name.to_string(), report)]).to_text(),
            });
        }
        let (Some(config), _) = read_config_text(text, file) else {
            return Err(unusable("holds no configuration".into()));
        };
        let ha_type = config.value_or_default(options::HA_TYPE).unwrap_or("NONE");
        if !matches!(ha_config::classify(ha_type), HaKind::Kubernetes) {
            return Err(unusable(format!(
                "high-availability.type is `{ha_type}`, not `kubernetes`; the runtime provides Kubernetes HA only"
            )));
        }
        // The lint passed, so these are present and well-formed; say so if not anyway.
        let text_of = |option: &OptionSpec| -> Result<String, ConfigError> {
            config
                .value_or_default(option)
                .map(str::to_string)
                .ok_or_else(|| unusable(format!("`{}` is not set", option.key)))
        };
        let cluster_id = ClusterId::parse(&text_of(options::K8S_CLUSTER_ID)?).map_err(|e| unusable(e.to_string()))?;
        let election = ElectionConfig {
            cluster_id: cluster_id.to_string(),
            lease_duration: duration_of(&config, options::LEASE_DURATION).map_err(unusable)?,
            renew_deadline: duration_of(&config, options::RENEW_DEADLINE).map_err(unusable)?,
            retry_period: duration_of(&config, options::RETRY_PERIOD).map_err(unusable)?,
            max_retries: integer_of(&config, options::MAX_RETRIES).map_err(unusable)?,
        };
        let location = StorageLocation::from_config(&config).map_err(unusable)?;
        Ok(HaSettings {
            namespace: text_of(options::K8S_NAMESPACE)?,
            storage_dir: location.storage_dir,
            storage_cluster_id: location.storage_cluster_id,
            storage_options: location.storage_options,
            num_retained: integer_of(&config, options::NUM_RETAINED).map_err(unusable)?,
            job_result_store_path: location.job_result_store_path,
            job_result_delete_on_commit: boolean_of(&config, options::JOB_RESULT_STORE_DELETE).map_err(unusable)?,
            on_missing_checkpoint: MissingCheckpoint::Fail,
            cluster_id,
            election,
            report,
        })
    }
}

/// Where a cluster's HA payloads live, from a Flink configuration. Unlike [`HaSettings`]
/// it does not judge the rest of the configuration: `flink-ha inspect` and `gc` read the
/// storage of clusters whose configuration may well have problems.
#[derive(Clone, Debug)]
pub struct StorageLocation {
    /// `high-availability.storageDir` (current key or a deprecated one).
    pub storage_dir: String,
    /// The payload folder under it: `high-availability.cluster-id`, `default` when unset.
    pub storage_cluster_id: String,
    /// The file-system options (`s3.*`, `gs.*`, `fs.azure.*`); `Debug` hides their values.
    pub storage_options: StorageOptions,
    /// `job-result-store.storage-path`, or `<storageDir>/job-result-store/<ha-cluster-id>`.
    pub job_result_store_path: String,
}

impl StorageLocation {
    /// Reads the storage settings of a Flink configuration file (`config.yaml` or
    /// `flink-conf.yaml`, decided from `name` and `text` as for `flink-ha lint`).
    pub fn from_flink_config(name: &str, text: &str) -> Result<StorageLocation, ConfigError> {
        let unusable = |reason: String| ConfigError::Unusable {
            name: name.to_string(),
            reason,
        };
        let Some(file) = detect(name, text).config_file() else {
            return Err(unusable(
                "is a Kubernetes manifest, not a Flink configuration file".into(),
            ));
        };
        let (Some(config), _) = read_config_text(text, file) else {
            return Err(unusable("holds no configuration that can be read".into()));
        };
        StorageLocation::from_config(&config).map_err(unusable)
    }

    fn from_config(config: &FlinkConfig) -> Result<StorageLocation, String> {
        let storage_dir = config
            .value_or_default(options::STORAGE_DIR)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("`{}` is not set", options::STORAGE_DIR.key))?;
        let storage_cluster_id = match config.effective(options::HA_CLUSTER_ID) {
            Some(entry) => entry.value.trim_start_matches('/').to_string(),
            None => STANDALONE_HA_CLUSTER_ID.to_string(),
        };
        // Flink's `FileSystemJobResultStore.createDefaultJobResultStorePath`; its `Path`
        // drops the doubled or trailing slashes that plain concatenation leaves.
        let job_result_store_path = match config.value_or_default(options::JOB_RESULT_STORE_PATH) {
            Some(path) if !path.trim().is_empty() => path.trim().to_string(),
            _ => format!(
                "{}/job-result-store/{storage_cluster_id}",
                storage_dir.trim_end_matches('/')
            ),
        };
        Ok(StorageLocation {
            storage_dir,
            storage_cluster_id,
            storage_options: StorageOptions::from_entries(
                config.entries.iter().map(|e| (e.key.as_str(), e.value.as_str())),
            ),
            job_result_store_path,
        })
    }
}

/// Flink's `high-availability.cluster-id` when unset (`/default`, without the slash).
pub const STANDALONE_HA_CLUSTER_ID: &str = "default";

fn duration_of(config: &FlinkConfig, option: &OptionSpec) -> Result<Duration, String> {
    let value = config.value_or_default(option).unwrap_or_default();
    duration::parse(value).map_err(|e| format!("`{}`: {e}", option.key))
}

fn integer_of(config: &FlinkConfig, option: &OptionSpec) -> Result<u32, String> {
    let value = config.value_or_default(option).unwrap_or_default();
    value
        .trim()
        .parse()
        .map_err(|_| format!("`{}` is `{value}`, not a whole number", option.key))
}

/// Flink's booleans: `true` or `false`, in any case.
fn boolean_of(config: &FlinkConfig, option: &OptionSpec) -> Result<bool, String> {
    let value = config.value_or_default(option).unwrap_or_default();
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("`{}` is `{value}`, not `true` or `false`", option.key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: &str = "high-availability.type: kubernetes
high-availability.storageDir: s3://flink-ha/recovery
kubernetes.cluster-id: orders-etl
high-availability.cluster-id: orders-etl
execution.checkpointing.interval: 30 s
execution.checkpointing.num-retained: 3
high-availability.kubernetes.leader-election.lease-duration: 20 s
";

    #[test]
    fn reads_what_flink_would_with_defaults() {
        let settings = HaSettings::from_flink_config("config.yaml", CLEAN).expect("a clean config");
        assert_eq!(settings.cluster_id, "orders-etl");
        assert_eq!(settings.namespace, "default");
        assert_eq!(settings.storage_dir, "s3://flink-ha/recovery");
        assert_eq!(settings.storage_cluster_id, "orders-etl");
        assert_eq!(settings.num_retained, 3);
        assert_eq!(settings.election.lease_duration, Duration::from_secs(20));
        assert_eq!(settings.election.renew_deadline, Duration::from_secs(15));
        assert_eq!(settings.election.retry_period, Duration::from_secs(5));
        assert_eq!(settings.election.max_retries, 15);
    }

    #[test]
    fn the_job_result_store_defaults_as_in_flink() {
        let settings = HaSettings::from_flink_config("config.yaml", CLEAN).expect("a clean config");
        assert_eq!(
            settings.job_result_store_path,
            "s3://flink-ha/recovery/job-result-store/orders-etl"
        );
        assert!(settings.job_result_delete_on_commit);

        // The HA cluster id, not the Kubernetes one; a trailing slash on storageDir and a
        // leading one on the cluster id leave no empty path segment.
        let text = CLEAN.replace("recovery\n", "recovery/\n").replace(
            "high-availability.cluster-id: orders-etl",
            "high-availability.cluster-id: /orders-ha",
        );
        let settings = HaSettings::from_flink_config("config.yaml", &text).expect("usable");
        assert_eq!(
            settings.job_result_store_path,
            "s3://flink-ha/recovery/job-result-store/orders-ha"
        );

        // Without high-availability.cluster-id, Flink's JobManager uses its default
        // `/default` (a standalone deployment; native ones write the id into the
        // JobManager's configuration), and so does the runtime: payloads and results
        // land where Flink's own would (HA117 warns about this configuration).
        let text = CLEAN.replace("high-availability.cluster-id: orders-etl\n", "");
        let settings = HaSettings::from_flink_config("config.yaml", &text).expect("usable");
        assert_eq!(settings.storage_cluster_id, "default");
        assert_eq!(
            settings.job_result_store_path,
            "s3://flink-ha/recovery/job-result-store/default"
        );
    }

    #[test]
    fn the_job_result_store_is_read_from_its_own_keys() {
        let text = format!(
            "{CLEAN}job-result-store.storage-path: gs://results/flink\njob-result-store.delete-on-commit: FALSE\n"
        );
        let settings = HaSettings::from_flink_config("config.yaml", &text).expect("usable");
        assert_eq!(settings.job_result_store_path, "gs://results/flink");
        assert!(!settings.job_result_delete_on_commit);
        let legacy = "high-availability: kubernetes\nhigh-availability.storageDir: file:///mnt/ha\nkubernetes.cluster-id: legacy\nexecution.checkpointing.interval: 10 s\njob-result-store.delete-on-commit: false\n";
        let settings = HaSettings::from_flink_config("flink-conf.yaml", legacy).expect("usable");
        assert_eq!(
            settings.job_result_store_path,
            "file:///mnt/ha/job-result-store/default"
        );
        assert!(!settings.job_result_delete_on_commit);
    }

    #[test]
    fn legacy_files_and_deprecated_keys_are_read_as_flink_reads_them() {
        let text = "high-availability: kubernetes\nhigh-availability.zookeeper.storageDir: file:///mnt/ha\nkubernetes.cluster-id: legacy\nkubernetes.namespace: flink\nexecution.checkpointing.interval: 10 s\n";
        let settings = HaSettings::from_flink_config("conf/flink-conf.yaml", text).expect("usable");
        assert_eq!(settings.storage_dir, "file:///mnt/ha");
        assert_eq!(settings.namespace, "flink");
        // Deprecated keys are warnings, and the caller gets them.
        assert!(settings.report.findings.iter().any(|f| f.rule.as_str() == "HA107"));
    }

    #[test]
    fn a_config_with_errors_is_refused_with_the_lint_report() {
        let text = CLEAN.replace("type: kubernetes", "type: kubernets");
        let error = HaSettings::from_flink_config("config.yaml", &text).expect_err("HA109");
        let message = error.to_string();
        assert!(matches!(error, ConfigError::Rejected { errors: 1, .. }), "{message}");
        assert!(message.contains("config.yaml:1:"), "{message}");
        assert!(message.contains("HA109"), "{message}");
    }

    #[test]
    fn ha_off_or_a_manifest_is_unusable() {
        let off = "kubernetes.cluster-id: x\n";
        let error = HaSettings::from_flink_config("config.yaml", off).expect_err("HA off");
        assert!(error.to_string().contains("not `kubernetes`"), "{error}");
        let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: flink-config-x\n";
        let error = HaSettings::from_flink_config("cm.yaml", manifest).expect_err("a manifest");
        assert!(error.to_string().contains("manifest"), "{error}");
    }
}
