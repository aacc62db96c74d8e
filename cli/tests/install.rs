//! `kubectl apply -k deploy/` is the whole install (issue 15): on a fresh real API
//! server, the webhook run as the Deployment runs it (the Deployment's own args and env,
//! its service account's token, so its RBAC is what is tested) issues its certificate
//! into the Secret, fills in the caBundle, and the API server then calls it through the
//! Service. Then: a restart reuses the Secret, a re-apply keeps what the webhook wrote,
//! two replicas racing for an empty Secret serve one certificate, and the certificate and
//! its CA rotate with every review still answered.
//!
//! This binary has a control plane of its own: the registration of deploy/ matches every
//! namespace but `flink-ha-system` with `failurePolicy: Fail`, which would reach into
//! other tests' namespaces on a shared one.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::webhook::{owned_ha_configmap, real_flink_configmaps};
use flink_ha_testenv::TestEnv;
use flink_ha_testenv::process::{free_port, http_get_ok};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Secret};
use kube::api::{Api, DeleteParams, PostParams};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const NAMESPACE: &str = "flink-ha-system";
const SECRET: &str = "flink-ha-webhook-tls";
const HOOKS: &str = "flink-ha-webhook";

fn deploy_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("deploy")
}

fn kubectl(env: &TestEnv, args: &[&str]) -> std::io::Result<std::process::Output> {
    Command::new("kubectl")
        .arg(format!("--kubeconfig={}", env.kubeconfig.display()))
        .args(args)
        .output()
}

/// `kubectl apply -k deploy/`. The 1.20 test server has no `policy/v1`, so the
/// PodDisruptionBudget (and only it) is refused there; everything else must apply.
fn apply_deploy(env: &TestEnv) -> Result<String, Box<dyn std::error::Error>> {
    let out = kubectl(env, &["apply", "-k", &deploy_dir().display().to_string()])?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let unexpected: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            let pdb = l.contains("PodDisruptionBudget") && l.contains("policy/v1");
            !l.trim().is_empty() && !pdb && l.trim() != "ensure CRDs are installed first"
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "kubectl apply -k deploy/ failed:\n{stderr}\n{stdout}"
    );
    Ok(stdout)
}

/// This machine's address that is not loopback: Endpoints may not name 127.0.0.1.
fn host_address() -> Result<std::net::IpAddr, Box<dyn std::error::Error>> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0")?;
    socket.connect("192.0.2.1:9")?;
    let ip = socket.local_addr()?.ip();
    if ip.is_loopback() || ip.is_unspecified() {
        return Err("this machine has no non-loopback IPv4 address for the Service's Endpoints".into());
    }
    Ok(ip)
}

/// The Endpoints kube-proxy-less clusters lack: the Service `flink-ha-webhook` (port 443,
/// `https`) at this machine's address and the replica's port.
async fn route_service_to(env: &TestEnv, port: u16) -> TestResult {
    let ip = host_address()?;
    let endpoints: Endpoints = serde_json::from_value(serde_json::json!({
        "metadata": {"name": HOOKS, "namespace": NAMESPACE},
        "subsets": [{"addresses": [{"ip": ip.to_string()}], "ports": [{"name": "https", "port": port}]}]
    }))?;
    let api: Api<Endpoints> = Api::namespaced(env.client.clone(), NAMESPACE);
    match api.get_opt(HOOKS).await? {
        None => {
            api.create(&PostParams::default(), &endpoints).await?;
        }
        Some(old) => {
            let mut new = endpoints;
            new.metadata.resource_version = old.metadata.resource_version;
            api.replace(HOOKS, &PostParams::default(), &new).await?;
        }
    }
    Ok(())
}

/// A replica as the Deployment runs it: its args and env from the applied object, with
/// local ports, the service account's token, and `extra` flags.
struct Replica {
    child: Child,
    port: u16,
    probe: u16,
    log: std::path::PathBuf,
}

impl Replica {
    async fn start(
        env: &TestEnv,
        kubeconfig: &Path,
        dir: &Path,
        name: &str,
        extra: &[&str],
    ) -> Result<Replica, Box<dyn std::error::Error>> {
        let deployments: Api<Deployment> = Api::namespaced(env.client.clone(), NAMESPACE);
        let deployment = deployments.get(HOOKS).await?;
        let pod = deployment.spec.template.spec.ok_or("no pod spec")?;
        assert_eq!(
            pod.automount_service_account_token,
            Some(true),
            "the token is the webhook's credential"
        );
        let container = &pod.containers[0];
        let (port, probe) = (free_port()?, free_port()?);
        let mut args = container.args.clone().ok_or("no args")?;
        for (flag, value) in [("--address", port), ("--probe-address", probe)] {
            let at = args
                .iter()
                .position(|a| a == flag)
                .ok_or(format!("no {flag} in the Deployment"))?;
            // 0.0.0.0, as in the pod: the API server reaches it at the Endpoints address.
            args[at + 1] = format!("0.0.0.0:{value}");
        }
        // ConfigMap volumes (the settings) as the kubelet would mount them: their keys
        // as files in a folder, the args pointing there.
        let config_maps: Api<ConfigMap> = Api::namespaced(env.client.clone(), NAMESPACE);
        for mount in container.volume_mounts.iter().flatten() {
            let volume = pod
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == mount.name)
                .ok_or("a mount without a volume")?;
            let Some(source) = &volume.config_map else {
                return Err(format!(
                    "volume {} is not a ConfigMap: the webhook should need no other files",
                    volume.name
                )
                .into());
            };
            let folder = dir.join(format!("{name}-{}", volume.name));
            std::fs::create_dir_all(&folder)?;
            for (key, value) in config_maps.get(&source.name).await?.data.unwrap_or_default() {
                std::fs::write(folder.join(key), value)?;
            }
            for arg in args.iter_mut() {
                if let Some(rest) = arg.strip_prefix(&mount.mount_path) {
                    *arg = format!("{}{rest}", folder.display());
                }
            }
        }
        args.extend(["--reload-interval-secs", "1"].map(String::from));
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = dir.join(format!("{name}.log"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_flink-ha"));
        command
            .args(&args)
            .env_clear()
            .env("KUBECONFIG", kubeconfig)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?);
        for var in container.env.iter().flatten() {
            let value = match (&var.value, &var.value_from) {
                (Some(value), _) => value.clone(),
                (None, Some(from)) => {
                    let field = from.field_ref.as_ref().ok_or("only fieldRef env is expected")?;
                    assert_eq!(field.field_path, "metadata.namespace");
                    NAMESPACE.to_string()
                }
                (None, None) => String::new(),
            };
            command.env(&var.name, value);
        }
        let child = command.spawn()?;
        env.plane.adopt(child.id());
        Ok(Replica {
            child,
            port,
            probe,
            log,
        })
    }

    async fn wait_ready(&mut self) -> TestResult {
        let started = Instant::now();
        while !http_get_ok(self.probe, "/readyz", "ready") {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!("the webhook exited ({status}):\n{}", self.log_text()).into());
            }
            if started.elapsed() > Duration::from_secs(90) {
                return Err(format!("the webhook did not become ready:\n{}", self.log_text()).into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Secret's PEM text under `key`.
async fn secret_text(env: &TestEnv, key: &str) -> Result<String, Box<dyn std::error::Error>> {
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), NAMESPACE);
    let secret = secrets.get(SECRET).await?;
    let bytes = secret
        .data
        .and_then(|d| d.get(key).cloned())
        .ok_or(format!("the Secret has no {key}"))?;
    Ok(String::from_utf8(bytes.0)?)
}

async fn empty_the_secret(env: &TestEnv) -> TestResult {
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), NAMESPACE);
    let mut secret = secrets.get(SECRET).await?;
    secret.data = None;
    secrets.replace(SECRET, &PostParams::default(), &secret).await?;
    Ok(())
}

async fn ca_bundle(env: &TestEnv) -> Result<String, Box<dyn std::error::Error>> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(env.client.clone());
    let hooks = api.get(HOOKS).await?;
    let bundle = hooks
        .webhooks
        .and_then(|w| w.first().and_then(|h| h.client_config.ca_bundle.clone()))
        .ok_or("no caBundle")?;
    Ok(String::from_utf8(bundle.0)?)
}

fn der_of(pem: &str) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    Ok(CertificateDer::from_pem_slice(pem.as_bytes())?.to_vec())
}

/// The certificate a replica serves, by a handshake that trusts only `ca_pem` and asks
/// for the Service's name, as the API server does.
async fn served_certificate(port: u16, ca_pem: &str) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = rustls_pki_types::ServerName::try_from(format!("{HOOKS}.{NAMESPACE}.svc"))?;
    let tls = connector.connect(name, tcp).await?;
    let (_, session) = tls.get_ref();
    let chain = session.peer_certificates().ok_or("no certificate served")?;
    Ok(chain[0].to_vec())
}

/// What the API server answered a dry-run create the policy denies with HA201.
#[derive(Debug, PartialEq, Eq)]
enum Probe {
    /// The webhook answered (HA201).
    Reviewed,
    /// The API server could not call the webhook (`failurePolicy: Fail`).
    Refused,
    /// Admitted: the API server has not picked the registration up yet.
    Unregistered,
}

async fn probe(env: &TestEnv) -> Result<Probe, Box<dyn std::error::Error>> {
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    match api.create(&dry_run, &owned_ha_configmap("install-probe")).await {
        Err(kube::Error::Api(e)) if e.message.contains("[HA201]") => Ok(Probe::Reviewed),
        Err(kube::Error::Api(e)) if e.message.contains("failed calling webhook") => Ok(Probe::Refused),
        Ok(_) => Ok(Probe::Unregistered),
        other => Err(format!("unexpected answer to the probe: {other:?}").into()),
    }
}

/// `Ok(true)` when the webhook answered, `Ok(false)` when the API server could not call it.
async fn reviewed(env: &TestEnv) -> Result<bool, Box<dyn std::error::Error>> {
    match probe(env).await? {
        Probe::Reviewed => Ok(true),
        Probe::Refused => Ok(false),
        Probe::Unregistered => Err("the registration is in place, yet the request was admitted".into()),
    }
}

async fn wait_reviewed(env: &TestEnv) -> TestResult {
    let started = Instant::now();
    while !reviewed(env).await? {
        if started.elapsed() > Duration::from_secs(30) {
            return Err("the API server did not get an answer from the webhook within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

fn issued_count(replicas: &[&Replica]) -> usize {
    replicas
        .iter()
        .map(|r| r.log_text().matches("issued a serving certificate").count())
        .sum()
}

#[tokio::test]
async fn kubectl_apply_k_deploy_is_the_whole_install_and_the_webhook_keeps_its_certificate() -> TestResult {
    let env = TestEnv::new("install").await?;
    let dir = tempfile::tempdir()?;

    // 1. The install: one apply. The Secret is created empty, the registration without
    //    a caBundle.
    let applied = apply_deploy(&env)?;
    for object in [
        "secret/flink-ha-webhook-tls created",
        "role.rbac.authorization.k8s.io/flink-ha-webhook-certificate created",
        "clusterrole.rbac.authorization.k8s.io/flink-ha-webhook-ca-bundle created",
        "validatingwebhookconfiguration.admissionregistration.k8s.io/flink-ha-webhook created",
    ] {
        assert!(applied.contains(object), "{object} missing from:\n{applied}");
    }
    assert!(ca_bundle(&env).await.is_err(), "the manifests carry no caBundle");
    // No replica yet: refused, as in an outage (once the API server has the registration).
    let started = Instant::now();
    loop {
        match probe(&env).await? {
            Probe::Refused => break,
            Probe::Unregistered if started.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            other => return Err(format!("before any replica: {other:?}").into()),
        }
    }

    // The replica's credential: its service account's token, nothing more.
    let token = kubectl(&env, &["-n", NAMESPACE, "create", "token", HOOKS, "--duration=1h"])?;
    assert!(token.status.success(), "{}", String::from_utf8_lossy(&token.stderr));
    let token = String::from_utf8(token.stdout)?;
    let kubeconfig = env.plane.kubeconfig_for_token("flink-ha-webhook", token.trim())?;

    let mut first = Replica::start(&env, &kubeconfig, dir.path(), "first", &[]).await?;
    route_service_to(&env, first.port).await?;
    first.wait_ready().await?;
    let (ca, cert, bundle) = (
        secret_text(&env, "ca.crt").await?,
        secret_text(&env, "tls.crt").await?,
        secret_text(&env, "ca-bundle.crt").await?,
    );
    assert_eq!(ca_bundle(&env).await?, bundle, "the caBundle is the Secret's");
    assert_eq!(served_certificate(first.port, &ca).await?, der_of(&cert)?);
    wait_reviewed(&env).await?;
    assert_eq!(issued_count(&[&first]), 1, "{}", first.log_text());
    // HA205 reads a job ConfigMap's cluster lease with the service account's RBAC: the
    // delete is denied by the rule, not refused for want of an answer.
    let configmaps: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let (job, cluster) = real_flink_configmaps()?;
    configmaps.create(&PostParams::default(), &cluster).await?;
    configmaps.create(&PostParams::default(), &job).await?;
    let job_name = job.metadata.name.clone().ok_or("no name")?;
    match configmaps.delete(&job_name, &DeleteParams::default()).await {
        Err(kube::Error::Api(e)) if e.message.contains("[HA205]") => {}
        other => {
            return Err(format!(
                "a job ConfigMap delete under a live lease: {other:?}\n{}",
                first.log_text()
            )
            .into());
        }
    }
    eprintln!("first replica's log:\n{}", first.log_text());

    // 2. A restart reuses the Secret: same certificate, nothing written.
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), NAMESPACE);
    let version = secrets.get(SECRET).await?.metadata.resource_version;
    first.stop();
    let mut again = Replica::start(&env, &kubeconfig, dir.path(), "again", &[]).await?;
    route_service_to(&env, again.port).await?;
    again.wait_ready().await?;
    assert_eq!(secrets.get(SECRET).await?.metadata.resource_version, version);
    assert_eq!(served_certificate(again.port, &ca).await?, der_of(&cert)?);
    assert_eq!(issued_count(&[&again]), 0, "{}", again.log_text());
    wait_reviewed(&env).await?;

    // 3. Applying the manifests again keeps what the webhook wrote.
    apply_deploy(&env)?;
    assert_eq!(secret_text(&env, "tls.crt").await?, cert);
    assert_eq!(ca_bundle(&env).await?, bundle);
    assert!(reviewed(&env).await?);
    again.stop();

    // 4. Two replicas racing for an empty Secret: one issues, both serve that one.
    empty_the_secret(&env).await?;
    let (mut a, mut b) = (
        Replica::start(&env, &kubeconfig, dir.path(), "race-a", &[]).await?,
        Replica::start(&env, &kubeconfig, dir.path(), "race-b", &[]).await?,
    );
    route_service_to(&env, a.port).await?;
    a.wait_ready().await?;
    b.wait_ready().await?;
    let (ca, cert) = (secret_text(&env, "ca.crt").await?, secret_text(&env, "tls.crt").await?);
    assert_eq!(served_certificate(a.port, &ca).await?, der_of(&cert)?);
    assert_eq!(served_certificate(b.port, &ca).await?, der_of(&cert)?);
    assert_eq!(issued_count(&[&a, &b]), 1, "{}\n{}", a.log_text(), b.log_text());
    wait_reviewed(&env).await?;
    a.stop();
    b.stop();

    // 5. Rotation: a 9 s certificate under a 24 s CA, renewed at two thirds of their
    //    lives. For 30 s every review must be answered, across at least two
    //    certificates and two CAs.
    empty_the_secret(&env).await?;
    let short = ["--cert-validity", "9 s", "--ca-validity", "24 s"];
    let mut rotating = Replica::start(&env, &kubeconfig, dir.path(), "rotating", &short).await?;
    route_service_to(&env, rotating.port).await?;
    rotating.wait_ready().await?;
    wait_reviewed(&env).await?;
    let (mut certs, mut cas, mut bundles) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let (mut answered, mut refused) = (0, 0);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if reviewed(&env).await? {
            answered += 1;
        } else {
            refused += 1;
        }
        certs.insert(secret_text(&env, "tls.crt").await?);
        cas.insert(secret_text(&env, "ca.crt").await?);
        bundles.insert(ca_bundle(&env).await?);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let log = rotating.log_text();
    assert_eq!(
        refused,
        0,
        "{refused} of {} reviews went unanswered during rotation:\n{log}",
        answered + refused
    );
    assert!(certs.len() >= 3, "{} certificates in 30 s:\n{log}", certs.len());
    assert!(cas.len() >= 2, "{} CAs in 30 s:\n{log}", cas.len());
    assert!(
        bundles.iter().any(|b| b.matches("BEGIN CERTIFICATE").count() == 2),
        "the bundle never held the old and the new CA together"
    );
    // /metrics tells when the served certificate runs out.
    let metrics = flink_ha_testenv::process::http_exchange(
        rotating.probe,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )?;
    assert!(
        metrics.contains("flink_ha_webhook_certificate_expiry_timestamp_seconds"),
        "{metrics}"
    );
    eprintln!(
        "rotation: {answered} reviews answered, {} certificates, {} CAs",
        certs.len(),
        cas.len()
    );
    rotating.stop();
    Ok(())
}
