//! `flink-ha webhook`: the admission webhook (flink-ha-admission) from the command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use flink_ha_admission::managed_certs::{CertManager, ManagedCertConfig};
use flink_ha_admission::{Limits, PolicySource, ServerConfig, TlsSource, Webhook};
use tracing::{info, warn};

#[derive(Args)]
pub struct WebhookArgs {
    /// Address to serve HTTPS on.
    #[arg(long, default_value = "0.0.0.0:8443")]
    address: SocketAddr,
    /// Serving certificate chain (PEM); it must name `<service>.<namespace>.svc`.
    /// Without --tls-cert/--tls-key or --cert-secret, a self-signed pair for localhost is
    /// generated (for local use only).
    #[arg(long, requires = "tls_key", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// Private key of the serving certificate (PEM).
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Where to write the generated self-signed pair (tls.crt is also its caBundle).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["tls_cert", "cert_secret"])]
    self_signed_dir: Option<PathBuf>,
    #[command(flatten)]
    managed: ManagedCertArgs,
    /// Require client certificates signed by this CA (mTLS).
    #[arg(long, value_name = "FILE")]
    client_ca: Option<PathBuf>,
    /// Also serve /healthz, /readyz and /metrics over plain HTTP here (for probes and
    /// scrapers when --client-ca is set).
    #[arg(long, value_name = "ADDR")]
    probe_address: Option<SocketAddr>,
    /// A policy component (.wasm) to run instead of the embedded one; reloaded when the
    /// file changes, and the previous policy kept if the new one fails to load.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    #[command(flatten)]
    disabled: crate::rule_arg::DisabledRules,
    /// Policy settings (YAML, `flink-ha schema --settings`): scoped exemptions and rules
    /// set to `off`. Checked at start (a bad file stops the webhook, naming its line) and
    /// reloaded when it changes (a bad change is refused and the settings in use keep
    /// serving). namespaceSelector exemptions read namespace labels from the API server.
    #[arg(long, value_name = "FILE")]
    settings: Option<PathBuf>,
    /// Admit everything and send what would deny as warnings marked "(not enforced)":
    /// a dry run of the policy on a live cluster before enforcing it.
    #[arg(long)]
    warn_only: bool,
    /// Budget of one policy evaluation; keep it well under the webhook's timeoutSeconds.
    #[arg(long, default_value_t = 500, value_name = "MS")]
    deadline_ms: u64,
    /// Memory one policy instance may use.
    #[arg(long, default_value_t = 128, value_name = "MIB")]
    memory_cap_mib: usize,
    /// Reviews evaluated at once (the instance pool's size).
    #[arg(long, default_value_t = 64)]
    max_concurrency: u32,
    /// Largest request body read.
    #[arg(long, default_value_t = flink_ha_admission::server::DEFAULT_MAX_BODY_BYTES, value_name = "BYTES")]
    max_body_bytes: usize,
    /// Budget for a client's TLS handshake, request headers and body.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    client_timeout_secs: u64,
    /// How often the certificate and policy files are checked for changes.
    #[arg(long, default_value_t = 5, value_name = "SECONDS")]
    reload_interval_secs: u64,
    /// After SIGTERM, keep serving (not ready) this long before closing the listener,
    /// while Kubernetes takes the pod out of the Service.
    #[arg(long, default_value_t = 5, value_name = "SECONDS")]
    drain_delay_secs: u64,
    /// How long in-flight requests may take to finish once the listener is closed.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    shutdown_grace_secs: u64,
}

/// Certificates the webhook issues and renews itself (what deploy/ uses).
#[derive(Args)]
#[command(next_help_heading = "Managed certificates")]
struct ManagedCertArgs {
    /// Keep a CA and the serving certificate in this Secret of --namespace, issuing them
    /// when it is empty and renewing them after two thirds of their life, and keep the
    /// caBundle of --webhook-configuration in step. The Secret must exist (deploy/
    /// creates it empty); the webhook needs get and update on it and on the webhook
    /// configuration, nothing else. Replicas share the Secret and agree on one
    /// certificate.
    #[arg(long, value_name = "NAME", conflicts_with = "tls_cert")]
    cert_secret: Option<String>,
    /// The ValidatingWebhookConfiguration whose caBundle names the managed CA.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "flink-ha-webhook",
        requires = "cert_secret"
    )]
    webhook_configuration: String,
    /// The Service in front of the webhook: the certificate names it as
    /// `<service>`, `<service>.<namespace>`, `….svc` and `….svc.cluster.local`.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "flink-ha-webhook",
        requires = "cert_secret"
    )]
    service: String,
    /// Namespace of the Secret and the Service [default: $POD_NAMESPACE, else the
    /// kubeconfig's namespace].
    #[arg(long, value_name = "NAMESPACE", requires = "cert_secret")]
    namespace: Option<String>,
    /// A further name or IP address for the certificate (repeatable), e.g. for a
    /// webhook configuration that calls a URL.
    #[arg(long = "cert-san", value_name = "NAME", requires = "cert_secret")]
    extra_names: Vec<String>,
    /// Life of a serving certificate (Flink's duration syntax).
    #[arg(long, value_name = "DURATION", default_value = "90 d", value_parser = crate::parse_duration, requires = "cert_secret")]
    cert_validity: Duration,
    /// Life of the CA (Flink's duration syntax); the previous CA stays trusted until it
    /// expires.
    #[arg(long, value_name = "DURATION", default_value = "1095 d", value_parser = crate::parse_duration, requires = "cert_secret")]
    ca_validity: Duration,
}

impl ManagedCertArgs {
    /// The certificate manager, when --cert-secret is given.
    async fn manager(&self) -> Result<Option<CertManager>> {
        let Some(secret) = &self.cert_secret else {
            return Ok(None);
        };
        let client = kube::Client::try_default()
            .await
            .context("--cert-secret needs the API server: no usable service account token or kubeconfig")?;
        let namespace = match (&self.namespace, std::env::var("POD_NAMESPACE")) {
            (Some(namespace), _) => namespace.clone(),
            (None, Ok(namespace)) if !namespace.is_empty() => namespace,
            _ => client.default_namespace().to_string(),
        };
        let mut dns_names = ManagedCertConfig::service_names(&self.service, &namespace);
        dns_names.extend(self.extra_names.iter().cloned());
        let config = ManagedCertConfig {
            namespace,
            secret: secret.clone(),
            webhook_configuration: self.webhook_configuration.clone(),
            dns_names,
            cert_validity: self.cert_validity,
            ca_validity: self.ca_validity,
        };
        info!(
            secret = %format!("{}/{}", config.namespace, config.secret),
            webhook_configuration = %config.webhook_configuration,
            names = ?config.dns_names,
            "managing the serving certificate"
        );
        Ok(Some(CertManager::new(client, config)?))
    }
}

pub fn run(args: &WebhookArgs) -> Result<ExitCode> {
    if args.memory_cap_mib == 0 || args.reload_interval_secs == 0 || args.client_timeout_secs == 0 {
        bail!("--memory-cap-mib, --client-timeout-secs and --reload-interval-secs must be above zero");
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let managed = runtime.block_on(args.managed.manager())?;
    // The API server: HA205 reads a job ConfigMap's cluster ConfigMap (its lease) when a
    // decision turns on it, and namespaceSelector exemptions read namespace labels.
    // Without it, a review that needs a lease fails with HTTP 500 (the failurePolicy
    // decides), and a namespaceSelector exemption is refused when the settings load.
    let kube_client = match &managed {
        Some(manager) => Some(manager.client()),
        None => match runtime.block_on(kube::Client::try_default()) {
            Ok(client) => Some(client),
            Err(e) => {
                warn!(error = %e, "no API server access: a review that needs a cluster's lease (HA205 on a job ConfigMap) fails with HTTP 500");
                None
            }
        },
    };
    let tls = match (&args.tls_cert, &args.tls_key, managed) {
        (_, _, Some(manager)) => TlsSource::Managed(manager),
        (Some(cert), Some(key), None) => TlsSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ => {
            let dir = match &args.self_signed_dir {
                Some(dir) => dir.clone(),
                None => std::env::temp_dir().join(format!("flink-ha-webhook-{}", std::process::id())),
            };
            let (cert, key) =
                flink_ha_admission::tls::write_self_signed(&dir).context("cannot create a self-signed certificate")?;
            warn!(
                cert = %cert.display(),
                "no --tls-cert/--tls-key: serving a self-signed certificate for localhost, 127.0.0.1 and ::1 (for local use only; the API server of a real cluster needs one naming <service>.<namespace>.svc)"
            );
            TlsSource::Files { cert, key }
        }
    };
    let mut config = ServerConfig::new(args.address, tls);
    config.client_ca = args.client_ca.clone();
    config.probe_address = args.probe_address;
    config.policy = match &args.policy {
        Some(path) => PolicySource::File(path.clone()),
        None => PolicySource::Embedded,
    };
    config.disabled_rules = args.disabled.ids();
    config.settings_file = args.settings.clone();
    config.kube_client = kube_client.map(flink_ha_admission::settings::ApiClient);
    config.warn_only = args.warn_only;
    config.limits = Limits {
        max_concurrency: args.max_concurrency,
        memory_cap_bytes: args.memory_cap_mib << 20,
        deadline: Duration::from_millis(args.deadline_ms),
        ..Limits::default()
    };
    config.max_body_bytes = args.max_body_bytes;
    config.client_timeout = Duration::from_secs(args.client_timeout_secs);
    config.reload_interval = Duration::from_secs(args.reload_interval_secs);
    config.drain_delay = Duration::from_secs(args.drain_delay_secs);
    config.shutdown_grace = Duration::from_secs(args.shutdown_grace_secs);

    runtime.block_on(async move {
        let webhook = Webhook::bind(config).await?;
        info!(address = %webhook.local_addr(), probe = ?webhook.probe_addr(), "listening");
        webhook
            .run(async { info!("{}: draining", crate::signal::termination().await) })
            .await?;
        Ok(ExitCode::SUCCESS)
    })
}
