//! The admission webhook as the end-to-end tests run it: one `flink-ha webhook` process
//! per test binary, registered with the test control plane by a
//! ValidatingWebhookConfiguration (`failurePolicy: Fail`) for the namespaces that carry
//! [`SELECTOR_LABEL`]; and the small tools those tests share.
#![allow(dead_code)] // each test binary uses a part of it

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use flink_ha_testenv::TestEnv;
use flink_ha_testenv::process::{free_port, http_get_ok};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    RuleWithOperations, ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use tokio::sync::OnceCell;

/// Namespaces with this label are under the webhook; the rest of the shared control
/// plane (other tests, kube-system) is not.
pub const SELECTOR_LABEL: &str = "flink-ha-e2e/webhook";

/// The webhook process, kept for the whole test binary.
pub struct Running {
    _child: Child,
    _dir: tempfile::TempDir,
    /// The plain-HTTP port of `/healthz`, `/readyz` and `/metrics`.
    pub probe: u16,
}

impl Running {
    /// `/metrics` as text.
    pub fn metrics(&self) -> std::io::Result<String> {
        flink_ha_testenv::process::http_exchange(
            self.probe,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            Duration::from_secs(5),
        )
    }
}

impl Running {
    /// The webhook's log: one `review` line per AdmissionReview, with its decision.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("webhook.log")).unwrap_or_default()
    }
}

static WEBHOOK: OnceCell<Running> = OnceCell::const_new();

/// Starts `flink-ha webhook` with a self-signed certificate for 127.0.0.1 and registers
/// it (once per test binary).
pub async fn webhook(env: &TestEnv) -> Result<&'static Running, Box<dyn std::error::Error>> {
    WEBHOOK
        .get_or_try_init(|| start_registered(env, "flink-ha-e2e", SELECTOR_LABEL, &[]))
        .await
}

/// Starts a `flink-ha webhook` process with `extra` flags (the admin kubeconfig in its
/// environment) and registers it as `name` for the namespaces labelled `label: on`.
pub async fn start_registered(
    env: &TestEnv,
    name: &str,
    label: &str,
    extra: &[&str],
) -> Result<Running, Box<dyn std::error::Error>> {
    start_registered_as(env, &env.kubeconfig, name, label, extra).await
}

/// [`start_registered`] with the API server access of `kubeconfig`.
pub async fn start_registered_as(
    env: &TestEnv,
    kubeconfig: &std::path::Path,
    name: &str,
    label: &str,
    extra: &[&str],
) -> Result<Running, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let (port, probe) = (free_port()?, free_port()?);
    let log = std::fs::File::create(dir.path().join("webhook.log"))?;
    let child = Command::new(env!("CARGO_BIN_EXE_flink-ha"))
        .args(["webhook", "--address", &format!("127.0.0.1:{port}")])
        .args(["--probe-address", &format!("127.0.0.1:{probe}")])
        .arg("--self-signed-dir")
        .arg(dir.path())
        .args(["--deadline-ms", "1000"])
        .args(extra)
        .env("KUBECONFIG", kubeconfig)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    env.plane.adopt(child.id());
    let started = Instant::now();
    while !http_get_ok(probe, "/readyz", "ready") {
        if started.elapsed() > Duration::from_secs(120) {
            let log = std::fs::read_to_string(dir.path().join("webhook.log")).unwrap_or_default();
            return Err(format!("the webhook did not become ready:\n{log}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    register(env, name, label, port, std::fs::read(dir.path().join("tls.crt"))?).await?;
    Ok(Running {
        _child: child,
        _dir: dir,
        probe,
    })
}

/// The ValidatingWebhookConfiguration of deploy/, pointed at the local process by URL.
async fn register(env: &TestEnv, name: &str, label: &str, port: u16, ca_pem: Vec<u8>) -> Result<(), kube::Error> {
    let rule = |group: &str, resources: &[&str], operations: &[&str]| RuleWithOperations {
        api_groups: Some(vec![group.to_string()]),
        api_versions: Some(vec!["*".to_string()]),
        operations: Some(operations.iter().map(|s| s.to_string()).collect()),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        scope: Some("Namespaced".to_string()),
    };
    let config = ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        webhooks: Some(vec![ValidatingWebhook {
            name: "flink-ha.policy.flink-ha.io".to_string(),
            admission_review_versions: vec!["v1".to_string()],
            side_effects: "None".to_string(),
            failure_policy: Some("Fail".to_string()),
            match_policy: Some("Equivalent".to_string()),
            timeout_seconds: Some(5),
            client_config: WebhookClientConfig {
                url: Some(format!("https://127.0.0.1:{port}/validate")),
                ca_bundle: Some(ByteString(ca_pem)),
                service: None,
            },
            namespace_selector: Some(LabelSelector {
                match_labels: Some([(label.to_string(), "on".to_string())].into()),
                ..LabelSelector::default()
            }),
            rules: Some(vec![
                rule("", &["configmaps"], &["CREATE", "UPDATE", "DELETE"]),
                rule(
                    "flink.apache.org",
                    &["flinkdeployments", "flinksessionjobs"],
                    &["CREATE", "UPDATE"],
                ),
            ]),
            ..ValidatingWebhook::default()
        }]),
    };
    let api: Api<ValidatingWebhookConfiguration> = Api::all(env.client.clone());
    api.create(&PostParams::default(), &config).await?;
    Ok(())
}

/// A namespace under the webhook, once the API server enforces it there (it picks up
/// new webhook configurations within a second or so).
pub async fn enforced_env(test: &str) -> Result<TestEnv, Box<dyn std::error::Error>> {
    let env = TestEnv::new(test).await?;
    webhook(&env).await?;
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let label = serde_json::json!({"metadata": {"labels": {SELECTOR_LABEL: "on"}}});
    namespaces
        .patch(&env.namespace, &PatchParams::default(), &Patch::Merge(&label))
        .await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let probe = owned_ha_configmap("probe");
    let started = Instant::now();
    loop {
        match api
            .create(
                &PostParams {
                    dry_run: true,
                    ..PostParams::default()
                },
                &probe,
            )
            .await
        {
            Err(kube::Error::Api(e)) if e.message.contains("[HA201]") => return Ok(env),
            _ if started.elapsed() > Duration::from_secs(30) => {
                return Err("the API server did not start calling the webhook within 30 s".into());
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

pub fn ha_labels(cluster: &str) -> std::collections::BTreeMap<String, String> {
    [("app", cluster), ("type", "flink-native-kubernetes")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn owned_ha_configmap(cluster: &str) -> ConfigMap {
    let mut cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": format!("{cluster}-cluster-config-map"),
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "Deployment", "name": cluster,
                "uid": "6a1c2a4e-0f3b-4c3e-9d7a-2b1f0e9c8d7a", "controller": true
            }]
        }
    }))
    .expect("a ConfigMap");
    cm.metadata.labels = Some(ha_labels(cluster));
    cm
}

pub fn kubectl(env: &TestEnv, args: &[&str], stdin: Option<&str>) -> std::io::Result<Output> {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .arg(format!("--kubeconfig={}", env.kubeconfig.display()))
        .args(["-n", &env.namespace])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(text) = stdin {
        child.stdin.take().expect("stdin").write_all(text.as_bytes())?;
    }
    drop(child.stdin.take());
    child.wait_with_output()
}

/// The real Flink 2.3 capture's job and cluster ConfigMaps (tests/fixtures), ready to
/// create: server-set metadata dropped, the cluster's lease renewed now for a minute.
pub fn real_flink_configmaps() -> Result<(ConfigMap, ConfigMap), Box<dyn std::error::Error>> {
    let text = include_str!("../../../tests/fixtures/inspect-real-flink-2.3-after-recovery/configmaps.yaml");
    let list: serde_json::Value = serde_yaml::from_str(text)?;
    let mut items = Vec::new();
    for mut item in list["items"].as_array().cloned().unwrap_or_default() {
        let meta = item["metadata"].as_object_mut().ok_or("no metadata")?;
        for field in ["namespace", "resourceVersion", "uid", "creationTimestamp"] {
            meta.remove(field);
        }
        items.push(item);
    }
    let [job, mut cluster] = <[serde_json::Value; 2]>::try_from(items).map_err(|_| "two ConfigMaps")?;
    cluster["metadata"]["annotations"]["control-plane.alpha.kubernetes.io/leader"] =
        serde_json::json!(lease_record(jiff::Timestamp::now(), "PT60S"));
    Ok((serde_json::from_value(job)?, serde_json::from_value(cluster)?))
}

pub fn lease_record(renewed: jiff::Timestamp, duration: &str) -> String {
    serde_json::json!({
        "holderIdentity": "6f46063f-947d-4e5c-9045-709dda02fdae",
        "leaseDuration": duration,
        "acquireTime": renewed.to_string(),
        "renewTime": renewed.to_string(),
        "leaderTransitions": 1
    })
    .to_string()
}
