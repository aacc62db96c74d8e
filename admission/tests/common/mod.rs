//! Shared by the webhook tests: an in-process webhook on a free port with a
//! self-signed certificate, HTTPS clients that trust it, and AdmissionReview bodies.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use flink_ha_admission::{PolicySource, ServerConfig, TlsSource, Webhook};
use tokio::sync::oneshot;

pub struct Running {
    pub addr: SocketAddr,
    pub probe: Option<SocketAddr>,
    pub ca_pem: Vec<u8>,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<Result<(), flink_ha_admission::WebhookError>>>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    /// Stops the webhook and waits for it to drain.
    pub async fn stop(mut self) -> Result<(), flink_ha_admission::WebhookError> {
        self.begin_stop();
        self.task.take().expect("running").await.expect("the server task")
    }

    /// Starts the shutdown (as SIGTERM does) without waiting for it.
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A config on 127.0.0.1:0 with a fresh self-signed pair and quick test timings.
pub fn config(policy: PolicySource) -> (ServerConfig, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = flink_ha_admission::tls::write_self_signed(dir.path()).expect("self-signed pair");
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), TlsSource::Files { cert, key });
    config.policy = policy;
    config.client_timeout = Duration::from_secs(1);
    config.reload_interval = Duration::from_millis(100);
    config.shutdown_grace = Duration::from_secs(2);
    config.limits.deadline = Duration::from_millis(200);
    config.limits.memory_cap_bytes = 32 << 20;
    config.limits.max_concurrency = 8;
    (config, dir)
}

/// Starts the webhook and waits until `/readyz` says ready.
pub async fn start(config: ServerConfig, dir: tempfile::TempDir) -> Running {
    let running = launch(config, dir).await;
    let client = client(&running.ca_pem);
    wait_ready(&client, running.url("/readyz")).await;
    running
}

/// Starts the webhook and waits on the plain-HTTP probe port (for mTLS setups).
pub async fn start_with_probe(config: ServerConfig, dir: tempfile::TempDir) -> Running {
    let running = launch(config, dir).await;
    let probe = running.probe.expect("a probe address");
    wait_ready(&reqwest::Client::new(), format!("http://{probe}/readyz")).await;
    running
}

async fn wait_ready(client: &reqwest::Client, url: String) {
    for _ in 0..600 {
        if let Ok(r) = client.get(&url).send().await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the webhook did not become ready in 60 s");
}

async fn launch(config: ServerConfig, dir: tempfile::TempDir) -> Running {
    let TlsSource::Files { cert, key } = config.tls.clone() else {
        panic!("these tests serve certificate files");
    };
    let ca_pem = std::fs::read(&cert).expect("cert");
    let webhook = Webhook::bind(config).await.expect("bind");
    let addr = webhook.local_addr();
    let probe = webhook.probe_addr();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(webhook.run(async move {
        let _ = stop_rx.await;
    }));
    Running {
        addr,
        probe,
        ca_pem,
        cert,
        key,
        dir,
        stop: Some(stop_tx),
        task: Some(task),
    }
}

/// An HTTPS client that trusts only `ca_pem`.
pub fn client(ca_pem: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem).expect("PEM"))
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// POSTs `review` to `url` and returns the AdmissionReview the webhook answered.
pub async fn post_review(http: &reqwest::Client, url: &str, review: String) -> serde_json::Value {
    let answer = http.post(url).body(review).send().await.expect("an answer");
    answer.json().await.expect("an AdmissionReview in JSON")
}

/// An AdmissionReview of a ConfigMap CREATE; `extra` is spliced into its data.
pub fn configmap_review(uid: &str, name: &str, data: serde_json::Value, owned: bool) -> String {
    let mut metadata = serde_json::json!({"name": name, "namespace": "streaming"});
    if name.ends_with("-config-map") {
        metadata["labels"] = serde_json::json!({
            "app": "orders-etl", "configmap-type": "high-availability", "type": "flink-native-kubernetes"
        });
    }
    if owned {
        metadata["ownerReferences"] = serde_json::json!([{
            "apiVersion": "apps/v1", "kind": "Deployment", "name": "orders-etl",
            "uid": "0b0a0c1e-0000-4000-8000-000000000001", "controller": true
        }]);
    }
    serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "resource": {"group": "", "version": "v1", "resource": "configmaps"},
            "name": name,
            "namespace": "streaming",
            "operation": "CREATE",
            "userInfo": {"username": "test"},
            "object": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data},
            "oldObject": null,
            "dryRun": false
        }
    })
    .to_string()
}

pub fn faulty_policy() -> PathBuf {
    let path = PathBuf::from(flink_ha_admission::FAULTY_POLICY_PATH);
    assert!(
        path.is_file(),
        "the fault-test policy was not built (FLINK_HA_POLICY_WASM set?): `{}`",
        path.display()
    );
    path
}

pub fn rustls_client(ca_pem: &[u8]) -> Arc<rustls::ClientConfig> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.expect("PEM")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}
