//! The admission webhook end to end: a real `flink-ha webhook` process registered with
//! a real kube-apiserver through a ValidatingWebhookConfiguration, and requests made
//! with kubectl and with kube-rs, as an operator would make them.

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
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use tokio::sync::OnceCell;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Namespaces with this label are under the webhook; the rest of the shared control
/// plane (other tests, kube-system) is not.
const SELECTOR_LABEL: &str = "flink-ha-e2e/webhook";

/// The webhook process, kept for the whole test binary.
struct Running {
    _child: Child,
    _dir: tempfile::TempDir,
}

static WEBHOOK: OnceCell<Running> = OnceCell::const_new();

/// Starts `flink-ha webhook` with a self-signed certificate for 127.0.0.1 and registers
/// it (once per test binary).
async fn webhook(env: &TestEnv) -> Result<&'static Running, Box<dyn std::error::Error>> {
    WEBHOOK
        .get_or_try_init(|| async {
            let dir = tempfile::tempdir()?;
            let (port, probe) = (free_port()?, free_port()?);
            let log = std::fs::File::create(dir.path().join("webhook.log"))?;
            let child = Command::new(env!("CARGO_BIN_EXE_flink-ha"))
                .args(["webhook", "--address", &format!("127.0.0.1:{port}")])
                .args(["--probe-address", &format!("127.0.0.1:{probe}")])
                .arg("--self-signed-dir")
                .arg(dir.path())
                .args(["--deadline-ms", "1000"])
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
            register(env, port, std::fs::read(dir.path().join("tls.crt"))?).await?;
            Ok::<_, Box<dyn std::error::Error>>(Running {
                _child: child,
                _dir: dir,
            })
        })
        .await
}

/// The ValidatingWebhookConfiguration of deploy/, pointed at the local process by URL.
async fn register(env: &TestEnv, port: u16, ca_pem: Vec<u8>) -> Result<(), kube::Error> {
    let rule = |group: &str, resources: &[&str], operations: &[&str]| RuleWithOperations {
        api_groups: Some(vec![group.to_string()]),
        api_versions: Some(vec!["*".to_string()]),
        operations: Some(operations.iter().map(|s| s.to_string()).collect()),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        scope: Some("Namespaced".to_string()),
    };
    let config = ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some("flink-ha-e2e".to_string()),
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
                match_labels: Some([(SELECTOR_LABEL.to_string(), "on".to_string())].into()),
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
async fn enforced_env(test: &str) -> Result<TestEnv, Box<dyn std::error::Error>> {
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

fn ha_labels(cluster: &str) -> std::collections::BTreeMap<String, String> {
    [
        ("app", cluster),
        ("configmap-type", "high-availability"),
        ("type", "flink-native-kubernetes"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn owned_ha_configmap(cluster: &str) -> ConfigMap {
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

fn kubectl(env: &TestEnv, args: &[&str], stdin: Option<&str>) -> std::io::Result<Output> {
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

/// A `flink-config-<cluster>` ConfigMap holding `config_yaml`.
fn flink_config(cluster: &str, config_yaml: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": format!("flink-config-{cluster}"), "labels": {"app": cluster}},
        "data": {"config.yaml": config_yaml}
    }))
    .expect("a ConfigMap")
}

/// The same as a manifest for `kubectl apply -f -` (JSON is YAML).
fn manifest(cm: &ConfigMap) -> String {
    serde_json::to_string(cm).expect("serializable")
}

#[tokio::test]
async fn an_owner_referenced_ha_configmap_is_denied_with_ha201_by_kubectl_and_kube_rs() -> TestResult {
    let env = enforced_env("webhook-ha201").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    match api.create(&PostParams::default(), &owned_ha_configmap("orders")).await {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 403, "{e:?}");
            assert!(
                e.message.contains("[HA201]") && e.message.contains("orders-cluster-config-map"),
                "{}",
                e.message
            );
        }
        other => panic!("an owned HA ConfigMap was not denied: {other:?}"),
    }
    assert!(api.get_opt("orders-cluster-config-map").await?.is_none());

    let yaml = serde_json::to_string(&owned_ha_configmap("billing"))?;
    let out = kubectl(&env, &["create", "-f", "-"], Some(&yaml))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("denied the request") && stderr.contains("[HA201]"),
        "{stderr}"
    );
    Ok(())
}

#[tokio::test]
async fn a_flink_config_with_a_typo_in_the_ha_type_is_denied_with_ha109() -> TestResult {
    let env = enforced_env("webhook-ha109").await?;
    let cm = flink_config(
        "orders",
        "high-availability.type: kubernets\nhigh-availability.storageDir: s3://flink/ha\nkubernetes.cluster-id: orders\nexecution.checkpointing.interval: 30 s\n",
    );
    let out = kubectl(&env, &["apply", "-f", "-"], Some(&manifest(&cm)))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "admitted: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.contains("[HA109]") && stderr.contains("kubernets"), "{stderr}");
    // README quotes this line.
    eprintln!("kubectl apply said: {stderr}");

    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let err = api.create(&PostParams::default(), &cm).await.expect_err("denied");
    assert!(err.to_string().contains("[HA109]"), "{err}");
    Ok(())
}

#[tokio::test]
async fn a_clean_ha_setup_is_admitted_and_warnings_reach_kubectl() -> TestResult {
    let env = enforced_env("webhook-clean").await?;
    let clean = flink_config(
        "orders",
        "high-availability.type: kubernetes\nhigh-availability.storageDir: s3://flink/ha\nkubernetes.cluster-id: orders\nhigh-availability.cluster-id: orders\nexecution.checkpointing.interval: 30 s\n",
    );
    let out = kubectl(&env, &["apply", "-f", "-"], Some(&manifest(&clean)))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("Warning"), "{stderr}");

    // HA ConfigMaps as Flink writes them: no owners.
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let mut ha = owned_ha_configmap("orders");
    ha.metadata.owner_references = None;
    api.create(&PostParams::default(), &ha).await?;

    // Only a warning (HA114: HA without checkpointing): admitted, and kubectl says so.
    let warned = flink_config(
        "billing",
        "high-availability.type: kubernetes\nhigh-availability.storageDir: s3://flink/ha\nkubernetes.cluster-id: billing\nhigh-availability.cluster-id: billing\n",
    );
    let out = kubectl(&env, &["apply", "-f", "-"], Some(&manifest(&warned)))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Warning: [HA114]"), "{stderr}");
    assert!(api.get_opt("flink-config-billing").await?.is_some());
    Ok(())
}

#[tokio::test]
async fn deleting_an_ha_configmap_under_a_live_leader_is_denied_until_the_lease_expires() -> TestResult {
    let env = enforced_env("webhook-ha205").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let now = jiff::Timestamp::now();
    let lease = Duration::from_secs(4);
    let record = serde_json::json!({
        "holderIdentity": "72194ce9-ba00-45d8-92ae-a8574f6f53dd",
        "leaseDuration": "PT4S",
        "acquireTime": now.to_string(),
        "renewTime": now.to_string(),
        "leaderTransitions": 0
    });
    let mut cm = owned_ha_configmap("orders");
    cm.metadata.owner_references = None;
    cm.metadata.annotations = Some(
        [(
            "control-plane.alpha.kubernetes.io/leader".to_string(),
            record.to_string(),
        )]
        .into(),
    );
    api.create(&PostParams::default(), &cm).await?;
    let name = "orders-cluster-config-map";

    let err = api
        .delete(name, &DeleteParams::default())
        .await
        .expect_err("denied while the lease is live");
    assert!(err.to_string().contains("[HA205]"), "{err}");
    let out = kubectl(&env, &["delete", "configmap", name], None)?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("[HA205]"));
    assert!(api.get_opt(name).await?.is_some(), "the ConfigMap must still be there");

    // The leader is gone (nothing renews): once the lease ran out, deleting is fine.
    let expiry = std::time::SystemTime::now() + lease;
    while std::time::SystemTime::now() < expiry + Duration::from_millis(500) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    api.delete(name, &DeleteParams::default()).await?;
    assert!(api.get_opt(name).await?.is_none());
    Ok(())
}

/// deploy/ as kustomize renders it, with `caBundle` filled in the way the README does.
fn rendered(overlay: &str, ca_pem: &[u8]) -> Result<String, Box<dyn std::error::Error>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(overlay);
    let out = Command::new("kubectl").arg("kustomize").arg(&dir).output()?;
    if !out.status.success() {
        return Err(format!("kubectl kustomize {overlay}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let mut base64 = Command::new("base64")
        .arg("-w0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    {
        use std::io::Write;
        base64.stdin.take().expect("stdin").write_all(ca_pem)?;
    }
    let bundle = String::from_utf8(base64.wait_with_output()?.stdout)?;
    Ok(String::from_utf8(out.stdout)?.replace("CA_BUNDLE_PLACEHOLDER", bundle.trim()))
}

/// The objects of a rendered stream, as JSON.
fn objects(yaml: &str) -> Result<Vec<serde_json::Value>, Box<dyn std::error::Error>> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for document in serde_yaml::Deserializer::from_str(yaml) {
        let value = serde_json::Value::deserialize(document)?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

#[tokio::test]
async fn the_deploy_manifests_follow_the_conventions_and_pass_the_api_servers_validation() -> TestResult {
    let env = TestEnv::new("webhook-deploy").await?;
    let certs = tempfile::tempdir()?;
    let (cert, _) = flink_ha_admission::tls::write_self_signed(certs.path())?;
    let ca = &std::fs::read(cert)?;
    let enforce = objects(&rendered("deploy", ca)?)?;
    let kinds: Vec<&str> = enforce.iter().filter_map(|o| o["kind"].as_str()).collect();
    for kind in [
        "Namespace",
        "ServiceAccount",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "ValidatingWebhookConfiguration",
    ] {
        assert!(kinds.contains(&kind), "deploy/ has no {kind}: {kinds:?}");
    }
    let of = |kind: &str| enforce.iter().find(|o| o["kind"] == kind).cloned().expect("present");

    let hook = &of("ValidatingWebhookConfiguration")["webhooks"][0];
    assert_eq!(hook["admissionReviewVersions"], serde_json::json!(["v1"]));
    assert_eq!(hook["sideEffects"], "None");
    assert_eq!(hook["failurePolicy"], "Fail");
    assert_eq!(hook["matchPolicy"], "Equivalent");
    let timeout = hook["timeoutSeconds"].as_i64().expect("timeoutSeconds");
    assert!((2..=5).contains(&timeout), "timeoutSeconds {timeout}");
    assert_eq!(hook["clientConfig"]["service"]["path"], "/validate");
    assert!(
        !hook["clientConfig"]["caBundle"]
            .as_str()
            .unwrap_or("")
            .contains("PLACEHOLDER")
    );
    let rules = hook["rules"].to_string();
    for needle in [
        "configmaps",
        "DELETE",
        "flinkdeployments",
        "flinksessionjobs",
        "flink.apache.org",
    ] {
        assert!(rules.contains(needle), "rules lack {needle}: {rules}");
    }
    let selector = hook["namespaceSelector"].to_string();
    assert!(
        selector.contains("NotIn") && selector.contains("flink-ha-system"),
        "{selector}"
    );

    let pod = &of("Deployment")["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["args"][0], "webhook");
    for probe in ["readinessProbe", "livenessProbe"] {
        assert!(container[probe].is_object(), "no {probe}");
    }
    assert!(
        container["resources"]["limits"]["memory"].is_string(),
        "no memory limit"
    );
    // A subPath mount never sees a rotated Secret; the reload needs the directory.
    assert!(container["volumeMounts"].to_string().find("subPath").is_none());

    let audit = objects(&rendered("deploy/audit", ca)?)?;
    let audit_hook = audit
        .iter()
        .find(|o| o["kind"] == "ValidatingWebhookConfiguration")
        .expect("present");
    assert_eq!(audit_hook["webhooks"][0]["failurePolicy"], "Ignore");

    // The real API server accepts every object (server-side dry run). Its namespace
    // must exist for that; PodDisruptionBudget policy/v1 is newer than this 1.20 server.
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let ns: Namespace = serde_json::from_value(of("Namespace"))?;
    if namespaces.get_opt("flink-ha-system").await?.is_none() {
        namespaces.create(&PostParams::default(), &ns).await?;
    }
    let checked: Vec<serde_json::Value> = enforce
        .into_iter()
        .filter(|o| o["kind"] != "PodDisruptionBudget" && o["kind"] != "Namespace")
        .collect();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": checked}).to_string();
    let mut apply = Command::new("kubectl")
        .arg(format!("--kubeconfig={}", env.kubeconfig.display()))
        .args(["apply", "--dry-run=server", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    {
        use std::io::Write;
        apply.stdin.take().expect("stdin").write_all(list.as_bytes())?;
    }
    let out = apply.wait_with_output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("validatingwebhookconfiguration") && stdout.contains("(server dry run)"),
        "{stdout}"
    );
    Ok(())
}
