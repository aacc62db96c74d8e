//! The admission webhook end to end: a real `flink-ha webhook` process registered with
//! a real kube-apiserver through a ValidatingWebhookConfiguration, and requests made
//! with kubectl and with kube-rs, as an operator would make them.

use std::process::{Command, Stdio};

use flink_ha_testenv::TestEnv;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, PostParams};

type TestResult = Result<(), Box<dyn std::error::Error>>;

mod common;
use common::webhook::{enforced_env, kubectl, lease_record, owned_ha_configmap, real_flink_configmaps};

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
async fn deleting_an_ha_configmap_with_plans_under_a_live_leader_is_denied_and_flinks_emptied_one_admitted()
-> TestResult {
    let env = enforced_env("webhook-ha205").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let cm = led_ha_configmap("orders", &[]);
    api.create(&PostParams::default(), &cm).await?;
    let name = "orders-cluster-config-map";

    let err = api
        .delete(name, &DeleteParams::default())
        .await
        .expect_err("denied while the lease is live and a plan is there");
    assert!(err.to_string().contains("[HA205]"), "{err}");
    assert!(err.to_string().contains("1 execution plan"), "{err}");
    let out = kubectl(&env, &["delete", "configmap", name], None)?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("[HA205]"));
    assert!(api.get_opt(name).await?.is_some(), "the ConfigMap must still be there");

    // Flink's graceful shutdown: the plans and leader entries are gone, the lock is
    // taken again (still live), and the emptied ConfigMap is deleted: nothing is lost.
    let mut emptied = api.get(name).await?;
    emptied.data = None;
    api.replace(name, &PostParams::default(), &emptied).await?;
    api.delete(name, &DeleteParams::default()).await?;
    assert!(api.get_opt(name).await?.is_none());
    Ok(())
}

/// deploy/ as kustomize renders it.
fn rendered(overlay: &str) -> Result<String, Box<dyn std::error::Error>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(overlay);
    let out = Command::new("kubectl").arg("kustomize").arg(&dir).output()?;
    if !out.status.success() {
        return Err(format!("kubectl kustomize {overlay}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8(out.stdout)?)
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
    let enforce = objects(&rendered("deploy")?)?;
    let kinds: Vec<&str> = enforce.iter().filter_map(|o| o["kind"].as_str()).collect();
    for kind in [
        "Namespace",
        "ServiceAccount",
        "Secret",
        "Role",
        "ClusterRole",
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
    // The webhook fills it in (--cert-secret); a re-apply must not reset it.
    assert!(hook["clientConfig"]["caBundle"].is_null());
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
    let args = container["args"].to_string();
    assert!(
        args.contains("--cert-secret") && args.contains("flink-ha-webhook-tls"),
        "{args}"
    );
    // The least RBAC: get and update of the one Secret and the one configuration; and
    // reads only otherwise: get of ConfigMaps (HA205's cluster leases) and namespaces.
    for kind in ["Role", "ClusterRole"] {
        for role in enforce.iter().filter(|o| o["kind"] == kind) {
            let (name, rules) = (&role["metadata"]["name"], &role["rules"]);
            assert_eq!(rules.as_array().map(Vec::len), Some(1), "{name}: {rules}");
            let resources = rules[0]["resources"].clone();
            if resources == serde_json::json!(["configmaps"]) || resources == serde_json::json!(["namespaces"]) {
                assert_eq!(rules[0]["verbs"], serde_json::json!(["get"]), "{name}: {rules}");
                assert!(rules[0]["apiGroups"] == serde_json::json!([""]), "{name}: {rules}");
            } else {
                assert_eq!(rules[0]["verbs"], serde_json::json!(["get", "update"]), "{name}");
                assert_eq!(rules[0]["resourceNames"].as_array().map(Vec::len), Some(1), "{name}");
            }
        }
    }
    let names: Vec<&str> = enforce.iter().filter_map(|o| o["metadata"]["name"].as_str()).collect();
    assert!(names.contains(&"flink-ha-webhook-configmaps"), "{names:?}");
    assert!(of("Secret")["data"].is_null(), "the Secret is created empty");

    // Bring your own certificates: cert-manager issues them and injects the CA; the
    // webhook reads files and has no API access.
    let own = objects(&rendered("deploy/cert-manager")?)?;
    let own_kinds: Vec<&str> = own.iter().filter_map(|o| o["kind"].as_str()).collect();
    for gone in ["Secret", "Role", "RoleBinding"] {
        assert!(!own_kinds.contains(&gone), "cert-manager/ keeps a {gone}");
    }
    let own_names: Vec<&str> = own.iter().filter_map(|o| o["metadata"]["name"].as_str()).collect();
    assert!(
        !own_names.contains(&"flink-ha-webhook-ca-bundle"),
        "cert-manager/ keeps the caBundle RBAC"
    );
    assert!(
        own_names.contains(&"flink-ha-webhook-configmaps"),
        "cert-manager/ keeps the ConfigMap reads HA205 needs"
    );
    let own_of = |kind: &str| own.iter().find(|o| o["kind"] == kind).cloned().expect("present");
    assert_eq!(
        own_of("ValidatingWebhookConfiguration")["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        "flink-ha-system/flink-ha-webhook"
    );
    let own_pod = &own_of("Deployment")["spec"]["template"]["spec"];
    let own_args = own_pod["containers"][0]["args"].to_string();
    assert!(
        own_args.contains("--tls-cert") && !own_args.contains("--cert-secret"),
        "{own_args}"
    );
    // A subPath mount never sees a rotated Secret; the reload needs the directory.
    assert!(
        own_pod["containers"][0]["volumeMounts"]
            .to_string()
            .find("subPath")
            .is_none()
    );

    let audit = objects(&rendered("deploy/audit")?)?;
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

/// An HA ConfigMap HA205 protects: a live leader record and an execution plan.
fn led_ha_configmap(cluster: &str, annotations: &[(&str, &str)]) -> ConfigMap {
    let now = jiff::Timestamp::now();
    let record = serde_json::json!({
        "holderIdentity": "72194ce9-ba00-45d8-92ae-a8574f6f53dd",
        "leaseDuration": "PT60S",
        "acquireTime": now.to_string(),
        "renewTime": now.to_string(),
        "leaderTransitions": 0
    });
    let mut cm = owned_ha_configmap(cluster);
    cm.metadata.owner_references = None;
    let mut all: std::collections::BTreeMap<String, String> = [(
        "control-plane.alpha.kubernetes.io/leader".to_string(),
        record.to_string(),
    )]
    .into();
    all.extend(annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    cm.metadata.annotations = Some(all);
    cm.data = Some(
        [(
            "executionPlan-25fc957960a1789dd1ef3466290fa995".to_string(),
            "rO0ABXNyAGNvcmcuYXBhY2hlLmZsaW5r".to_string(),
        )]
        .into(),
    );
    cm
}

/// `kubectl apply --dry-run=server` of `cm` in `namespace`: (admitted, stderr).
fn dry_run_apply(env: &TestEnv, namespace: &str, cm: &ConfigMap) -> Result<(bool, String), Box<dyn std::error::Error>> {
    let mut child = Command::new("kubectl")
        .arg(format!("--kubeconfig={}", env.kubeconfig.display()))
        .args(["-n", namespace, "apply", "--dry-run=server", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    {
        use std::io::Write;
        child.stdin.take().ok_or("stdin")?.write_all(manifest(cm).as_bytes())?;
    }
    let out = child.wait_with_output()?;
    Ok((out.status.success(), String::from_utf8_lossy(&out.stderr).to_string()))
}

/// Retries `dry_run_apply` until it is denied with `rule` (a new registration or a
/// settings reload takes a moment to apply).
async fn wait_until_denied(env: &TestEnv, namespace: &str, cm: &ConfigMap, rule: &str, secs: u64) -> TestResult {
    let started = std::time::Instant::now();
    loop {
        let (admitted, stderr) = dry_run_apply(env, namespace, cm)?;
        if !admitted && stderr.contains(rule) {
            return Ok(());
        }
        if started.elapsed() > std::time::Duration::from_secs(secs) {
            return Err(format!("not denied with {rule} within {secs} s: {stderr}").into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn exemptions_waive_exactly_what_the_settings_say_and_a_bad_reload_keeps_them() -> TestResult {
    const LABEL: &str = "flink-ha-e2e/exemptions";
    let env = TestEnv::new("webhook-exemptions").await?;
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    // A second namespace, under migration by label.
    let migrating = format!("{}-migrating", env.namespace);
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": migrating, "labels": {LABEL: "on", "flink-ha.io/migration": "true"}}
    }))?;
    namespaces.create(&PostParams::default(), &ns).await?;
    let label = serde_json::json!({"metadata": {"labels": {LABEL: "on"}}});
    namespaces
        .patch(
            &env.namespace,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&label),
        )
        .await?;

    // The Flink operator's account, allowed to delete ConfigMaps here by RBAC.
    let operator = format!("system:serviceaccount:{}:flink-operator", env.namespace);
    let rbac = format!(
        r#"{{"apiVersion":"v1","kind":"List","items":[
  {{"apiVersion":"v1","kind":"ServiceAccount","metadata":{{"name":"flink-operator"}}}},
  {{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{{"name":"flink-operator"}},
    "rules":[{{"apiGroups":[""],"resources":["configmaps"],"verbs":["get","delete"]}}]}},
  {{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{{"name":"flink-operator"}},
    "roleRef":{{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"flink-operator"}},
    "subjects":[{{"kind":"ServiceAccount","name":"flink-operator","namespace":"{ns}"}}]}}]}}"#,
        ns = env.namespace
    );
    let out = kubectl(&env, &["apply", "-f", "-"], Some(&rbac))?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = kubectl(&env, &["create", "token", "flink-operator"], None)?;
    assert!(token.status.success(), "{}", String::from_utf8_lossy(&token.stderr));
    let as_operator = env
        .client_with_token("flink-operator", String::from_utf8(token.stdout)?.trim())
        .await?;

    let dir = tempfile::tempdir()?;
    let settings = dir.path().join("settings.yaml");
    let good = format!(
        "exemptions:\n  - name: operator-teardown\n    rules: [HA205]\n    users: [\"{operator}\"]\n  - name: migration\n    rules: [HA201]\n    namespaceSelector:\n      matchLabels: {{flink-ha.io/migration: \"true\"}}\n  - name: opt-out\n    rules: [HA205]\n    namespaces: [\"{ns}\"]\n    objectAnnotation: true\n",
        ns = env.namespace
    );
    std::fs::write(&settings, &good)?;
    let settings_arg = settings.display().to_string();
    let hook = common::webhook::start_registered(
        &env,
        "flink-ha-e2e-exemptions",
        LABEL,
        &["--settings", &settings_arg, "--reload-interval-secs", "1"],
    )
    .await?;

    // HA201 by namespace label: denied here, admitted with a warning there. The API
    // server takes a moment to start calling a new registration.
    let owned = owned_ha_configmap("migrated");
    wait_until_denied(&env, &env.namespace, &owned, "[HA201]", 30).await?;
    let (admitted, stderr) = dry_run_apply(&env, &migrating, &owned)?;
    assert!(admitted, "{stderr}");
    assert!(stderr.contains("[HA201] exempted by migration"), "{stderr}");

    // HA205: the operator's account may delete under a live leader, an admin may not.
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    api.create(&PostParams::default(), &led_ha_configmap("orders", &[]))
        .await?;
    let err = api
        .delete("orders-cluster-config-map", &DeleteParams::default())
        .await
        .expect_err("an admin is not exempt");
    assert!(err.to_string().contains("[HA205]"), "{err}");
    let operator_api: Api<ConfigMap> = Api::namespaced(as_operator, &env.namespace);
    operator_api
        .delete("orders-cluster-config-map", &DeleteParams::default())
        .await?;
    assert!(api.get_opt("orders-cluster-config-map").await?.is_none());

    // An object's opt-out needs a reason for an error rule.
    let cm = led_ha_configmap("payments", &[("flink-ha.io/ignore", "HA205")]);
    api.create(&PostParams::default(), &cm).await?;
    let err = api
        .delete("payments-cluster-config-map", &DeleteParams::default())
        .await
        .expect_err("no reason given");
    assert!(
        err.to_string().contains("flink-ha.io/ignore-reason is missing"),
        "{err}"
    );
    let mut with_reason = api.get("payments-cluster-config-map").await?;
    with_reason
        .metadata
        .annotations
        .get_or_insert_default()
        .insert("flink-ha.io/ignore-reason".into(), "planned teardown, OPS-112".into());
    api.replace("payments-cluster-config-map", &PostParams::default(), &with_reason)
        .await?;
    api.delete("payments-cluster-config-map", &DeleteParams::default())
        .await?;

    // Logged and counted, by rule and exemption.
    let metrics = hook.metrics()?;
    for line in [
        r#"flink_ha_webhook_exemptions_total{rule="HA201",exemption="migration"} 1"#,
        r#"flink_ha_webhook_exemptions_total{rule="HA205",exemption="operator-teardown"} 1"#,
        r#"flink_ha_webhook_exemptions_total{rule="HA205",exemption="opt-out"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
    let log = hook.log();
    assert!(log.contains("exempted") && log.contains("OPS-112"), "{log}");

    // A broken change is refused with its line, and the settings in use keep serving.
    std::fs::write(&settings, good.replace("rules: [HA201]", "rules: [HA2O1]"))?;
    let started = std::time::Instant::now();
    while !hook.log().contains("settings reload refused") {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "no refusal:\n{}",
            hook.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        hook.log().contains("settings.yaml:6:") && hook.log().contains("`HA2O1` is not a rule"),
        "{}",
        hook.log()
    );
    let (admitted, stderr) = dry_run_apply(&env, &migrating, &owned)?;
    assert!(admitted, "the old settings still exempt: {stderr}");

    // A good change takes effect: without the migration exemption, HA201 denies there too.
    let without_migration = good.replace("  - name: migration\n    rules: [HA201]\n    namespaceSelector:\n      matchLabels: {flink-ha.io/migration: \"true\"}\n", "");
    assert_ne!(without_migration, good);
    std::fs::write(&settings, without_migration)?;
    wait_until_denied(&env, &migrating, &owned, "[HA201]", 15).await?;
    Ok(())
}

/// A Flink pointer with its delete mark set, as Flink's first removal step writes it.
fn marked_for_deletion(value: &str) -> Result<String, Box<dyn std::error::Error>> {
    use base64::Engine;
    let mut bytes = base64::engine::general_purpose::STANDARD.decode(value)?;
    let field = bytes
        .windows(17)
        .position(|w| w == b"markedForDeletion")
        .ok_or("no delete marker")?;
    // The class description ends (TC_ENDBLOCKDATA, no superclass); the object's data
    // starts with the boolean.
    let end = field
        + bytes[field..]
            .windows(2)
            .position(|w| w == [0x78, 0x70])
            .ok_or("no end")?;
    bytes[end + 2] = 1;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

#[tokio::test]
async fn deleting_a_job_configmap_with_checkpoints_under_its_clusters_live_lease_is_denied_until_the_lease_expires()
-> TestResult {
    const CHECKPOINT: &str = "checkpointID-0000000000000000066";
    let env = enforced_env("webhook-ha205-job").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let (job, cluster) = real_flink_configmaps()?;
    let job_name = job.metadata.name.clone().ok_or("no name")?;
    api.create(&PostParams::default(), &cluster).await?;
    api.create(&PostParams::default(), &job).await?;

    // The job ConfigMap has no lease of its own: the webhook reads its cluster's.
    let err = api
        .delete(&job_name, &DeleteParams::default())
        .await
        .expect_err("denied while the cluster's lease is live");
    let text = err.to_string();
    assert!(
        text.contains("[HA205]") && text.contains("1 checkpoint pointer, a checkpoint counter"),
        "{text}"
    );
    assert!(text.contains("real-flink-cluster-config-map"), "{text}");
    let out = kubectl(&env, &["delete", "configmap", &job_name], None)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("[HA205]"), "{stderr}");
    // README quotes this line.
    eprintln!("kubectl delete said: {stderr}");

    // Emptying it by an update is no way around it.
    let mut emptied = api.get(&job_name).await?;
    emptied.data = Some(Default::default());
    let err = api
        .replace(&job_name, &PostParams::default(), &emptied)
        .await
        .expect_err("an update that takes the pointer away is denied");
    assert!(err.to_string().contains("[HA205]"), "{err}");
    assert!(
        api.get(&job_name)
            .await?
            .data
            .is_some_and(|d| d.contains_key(CHECKPOINT)),
        "the checkpoint pointer must still be there"
    );

    // The cluster's leader is gone: its lease ran out a minute ago. The webhook keeps a
    // read for two seconds, so the first deletes may still see the live lease.
    let mut expired = api.get("real-flink-cluster-config-map").await?;
    expired.metadata.annotations.get_or_insert_default().insert(
        "control-plane.alpha.kubernetes.io/leader".into(),
        lease_record(
            jiff::Timestamp::now().checked_sub(jiff::SignedDuration::from_secs(120))?,
            "PT15S",
        ),
    );
    api.replace("real-flink-cluster-config-map", &PostParams::default(), &expired)
        .await?;
    let started = std::time::Instant::now();
    loop {
        match api.delete(&job_name, &DeleteParams::default()).await {
            Ok(_) => break,
            Err(e) if started.elapsed() < std::time::Duration::from_secs(15) && e.to_string().contains("[HA205]") => {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(e) => return Err(format!("not admitted once the lease expired: {e}").into()),
        }
    }
    assert!(api.get_opt(&job_name).await?.is_none());
    Ok(())
}

#[tokio::test]
async fn flinks_own_job_cleanup_passes_the_webhook_under_a_live_lease() -> TestResult {
    const CHECKPOINT: &str = "checkpointID-0000000000000000066";
    let env = enforced_env("webhook-ha205-cleanup").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let (job, cluster) = real_flink_configmaps()?;
    let job_name = job.metadata.name.clone().ok_or("no name")?;
    api.create(&PostParams::default(), &cluster).await?;
    api.create(&PostParams::default(), &job).await?;

    // As Flink ends a job: the last checkpoint marked, then removed, then the counter,
    // then the emptied ConfigMap deleted, all while the cluster runs on.
    let mut cm = api.get(&job_name).await?;
    let data = cm.data.get_or_insert_default();
    let pointer = data.get(CHECKPOINT).cloned().ok_or("no checkpoint")?;
    data.insert(CHECKPOINT.into(), marked_for_deletion(&pointer)?);
    let mut cm = api.replace(&job_name, &PostParams::default(), &cm).await?;
    cm.data.get_or_insert_default().remove(CHECKPOINT);
    let mut cm = api.replace(&job_name, &PostParams::default(), &cm).await?;
    cm.data.get_or_insert_default().remove("counter");
    api.replace(&job_name, &PostParams::default(), &cm).await?;
    api.delete(&job_name, &DeleteParams::default()).await?;
    assert!(api.get_opt(&job_name).await?.is_none());
    Ok(())
}

#[tokio::test]
async fn a_lease_the_webhook_may_not_read_leaves_the_decision_to_the_failure_policy() -> TestResult {
    const LABEL: &str = "flink-ha-e2e/no-configmap-read";
    let env = TestEnv::new("webhook-ha205-unreadable").await?;
    // A webhook whose service account has no rights at all: it cannot read the lease.
    let out = kubectl(&env, &["create", "serviceaccount", "blind-webhook"], None)?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = kubectl(&env, &["create", "token", "blind-webhook"], None)?;
    assert!(token.status.success(), "{}", String::from_utf8_lossy(&token.stderr));
    let kubeconfig = env
        .plane
        .kubeconfig_for_token("blind-webhook", String::from_utf8(token.stdout)?.trim())?;
    let hook = common::webhook::start_registered_as(&env, &kubeconfig, "flink-ha-e2e-blind", LABEL, &[]).await?;

    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let (job, cluster) = real_flink_configmaps()?;
    let job_name = job.metadata.name.clone().ok_or("no name")?;
    api.create(&PostParams::default(), &cluster).await?;
    api.create(&PostParams::default(), &job).await?;
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let label = serde_json::json!({"metadata": {"labels": {LABEL: "on"}}});
    namespaces
        .patch(
            &env.namespace,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&label),
        )
        .await?;
    wait_until_denied(&env, &env.namespace, &owned_ha_configmap("blind"), "[HA201]", 30).await?;

    // failurePolicy: Fail, so no answer is a refusal; the API server says why.
    let err = api
        .delete(&job_name, &DeleteParams::default())
        .await
        .expect_err("refused: the webhook cannot decide");
    let text = err.to_string();
    assert!(
        text.contains("flink-ha cannot decide this request") && text.contains("forbidden"),
        "{text}"
    );
    assert!(api.get_opt(&job_name).await?.is_some());
    assert!(
        hook.metrics()?
            .contains(r#"flink_ha_webhook_reviews_total{outcome="context_unavailable"} 1"#),
        "{}",
        hook.metrics()?
    );
    // Emptying it by an update turns on the lease too.
    let mut emptied = api.get(&job_name).await?;
    emptied.data = Some(Default::default());
    let err = api
        .replace(&job_name, &PostParams::default(), &emptied)
        .await
        .expect_err("refused: the webhook cannot decide");
    assert!(err.to_string().contains("cannot decide"), "{err}");
    // Decisions that do not turn on the lease are made: Flink's delete of a job
    // ConfigMap it emptied.
    let other_job = "real-flink-0123456789abcdef0123456789abcdef-config-map";
    let mut ended = job.clone();
    ended.metadata.name = Some(other_job.to_string());
    ended.data = Some(Default::default());
    api.create(&PostParams::default(), &ended).await?;
    api.delete(other_job, &DeleteParams::default()).await?;
    eprintln!("kube-rs said: {text}");
    Ok(())
}
