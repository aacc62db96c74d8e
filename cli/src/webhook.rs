//! `flink-ha webhook`: the admission webhook (flink-ha-admission) from the command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use flink_ha_admission::{Limits, PolicySource, ServerConfig, TlsSource, Webhook};
use tracing::{info, warn};

#[derive(Args)]
pub struct WebhookArgs {
    /// Address to serve HTTPS on.
    #[arg(long, default_value = "0.0.0.0:8443")]
    address: SocketAddr,
    /// Serving certificate chain (PEM); it must name `<service>.<namespace>.svc`.
    /// Without --tls-cert and --tls-key, a self-signed pair for localhost is generated
    /// (for local use only).
    #[arg(long, requires = "tls_key", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// Private key of the serving certificate (PEM).
    #[arg(long, requires = "tls_cert", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Where to write the generated self-signed pair (tls.crt is also its caBundle).
    #[arg(long, value_name = "DIR", conflicts_with = "tls_cert")]
    self_signed_dir: Option<PathBuf>,
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

pub fn run(args: &WebhookArgs) -> Result<ExitCode> {
    if args.memory_cap_mib == 0 || args.reload_interval_secs == 0 || args.client_timeout_secs == 0 {
        bail!("--memory-cap-mib, --client-timeout-secs and --reload-interval-secs must be above zero");
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => TlsSource::Files {
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

    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let webhook = Webhook::bind(config).await?;
        info!(address = %webhook.local_addr(), probe = ?webhook.probe_addr(), "listening");
        webhook
            .run(async { info!("{}: draining", crate::signal::termination().await) })
            .await?;
        Ok(ExitCode::SUCCESS)
    })
}
