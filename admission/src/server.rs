//! The HTTPS server: routes, limits, timeouts, reloads, graceful shutdown.
//!
//! Paths: `POST /validate` (AdmissionReviews), `GET /healthz` (the process serves),
//! `GET /readyz` (a policy is compiled, the listener is bound, and the server is not
//! shutting down), `GET /metrics` (Prometheus text). The optional plain-HTTP probe
//! listener serves all but `/validate`, for kubelet probes and scrapers when the TLS
//! port requires client certificates.
//!
//! Each review is evaluated on the connection's own task. A review takes tens of
//! microseconds, less than a thread hand-off costs. A runaway policy is cut off at
//! the epoch deadline, and the semaphore (no larger than the pool) bounds how many
//! workers can be inside the policy at once.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{error, info, warn};

use crate::context::ContextLookup;
use crate::managed_certs::CertManager;
use crate::metrics::ExemptionLabels;
use crate::metrics::Metrics;
use crate::policy::{Limits, Policy, PolicyEngine, ReviewError};
use crate::reload::FileSetWatch;
use crate::settings::{ApiClient, HostSettings, NamespaceLabels};
use crate::tls::{ReloadingCert, certified_key_from_pem, load_certified_key, server_config};
use crate::{EMBEDDED_POLICY, WebhookError};

/// An `info!` event about one review, with the fields that name it (uid, kind,
/// namespace, name, operation) before the event's own.
macro_rules! review_event {
    ($reviewed:expr, $($rest:tt)+) => {
        info!(
            uid = %$reviewed.uid,
            kind = %$reviewed.kind,
            namespace = %$reviewed.namespace,
            name = %$reviewed.name,
            operation = %$reviewed.operation,
            $($rest)+
        )
    };
}

/// Largest body read: the API server sends objects of at most ~3 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 << 20;

/// Where the serving certificate comes from.
#[derive(Clone, Debug)]
pub enum TlsSource {
    /// PEM files, reloaded when they change.
    Files {
        /// The certificate chain.
        cert: PathBuf,
        /// Its private key.
        key: PathBuf,
    },
    /// A CA and certificate the webhook issues into a Secret and renews itself, with the
    /// caBundle of its webhook configuration kept in step (see [`crate::managed_certs`]).
    Managed(CertManager),
}

/// How long the API server is given to see a changed caBundle before a certificate of
/// a new CA is served: it watches webhook configurations and picks a change up in well
/// under a second.
const BUNDLE_PROPAGATION: Duration = Duration::from_secs(2);

/// Which policy component runs.
#[derive(Clone, Debug)]
pub enum PolicySource {
    /// The one built with this crate.
    Embedded,
    /// A `.wasm` component file, reloaded when it changes.
    File(PathBuf),
}

/// Everything `flink-ha webhook` can set.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Where HTTPS is served.
    pub address: SocketAddr,
    /// Where the serving certificate comes from.
    pub tls: TlsSource,
    /// Require client certificates signed by this CA (mTLS).
    pub client_ca: Option<PathBuf>,
    /// Plain-HTTP listener for `/healthz`, `/readyz` and `/metrics` only.
    pub probe_address: Option<SocketAddr>,
    /// Which policy component runs.
    pub policy: PolicySource,
    /// Rule ids that never deny or warn (e.g. HA205).
    pub disabled_rules: Vec<String>,
    /// The settings file (exemptions, rules off), reloaded when it changes.
    pub settings_file: Option<PathBuf>,
    /// The API server: the cluster ConfigMaps HA205 asks for (a job ConfigMap's lease),
    /// and the namespace labels of `namespaceSelector` exemptions. Without it a review
    /// that needs a lease fails with HTTP 500 (the failurePolicy decides).
    pub kube_client: Option<ApiClient>,
    /// Admit everything and send would-be denials as warnings (a dry run); a policy
    /// failure is admitted too, with a warning naming it (else it is an HTTP 500).
    pub warn_only: bool,
    /// Pool size, memory cap and deadline of the policy.
    pub limits: Limits,
    /// Largest request body read.
    pub max_body_bytes: usize,
    /// Budget for a client's TLS handshake, headers and body.
    pub client_timeout: Duration,
    /// How often the certificate and policy files are checked for changes.
    pub reload_interval: Duration,
    /// How long to keep accepting after shutdown starts, not ready: endpoints leave the
    /// Service some time after the pod starts terminating, and until then the API
    /// server still sends requests here (refusing them would deny them under
    /// `failurePolicy: Fail`).
    pub drain_delay: Duration,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_grace: Duration,
}

impl ServerConfig {
    /// The defaults of `flink-ha webhook`, serving on `address` with `tls`.
    pub fn new(address: SocketAddr, tls: TlsSource) -> ServerConfig {
        ServerConfig {
            address,
            tls,
            client_ca: None,
            probe_address: None,
            policy: PolicySource::Embedded,
            disabled_rules: Vec::new(),
            settings_file: None,
            kube_client: None,
            warn_only: false,
            limits: Limits::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            client_timeout: Duration::from_secs(10),
            reload_interval: Duration::from_secs(5),
            drain_delay: Duration::ZERO,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// The state every connection shares: the engine, the policy and the settings in use
/// (swapped on reload), the limits, the metrics and readiness.
struct ServerState {
    engine: PolicyEngine,
    policy: ArcSwapOption<Policy>,
    settings: ArcSwap<HostSettings>,
    namespace_labels: Option<NamespaceLabels>,
    context: ContextLookup,
    permits: Semaphore,
    metrics: Metrics,
    ready: AtomicBool,
    max_body_bytes: usize,
    client_timeout: Duration,
    deadline: Duration,
}

/// A bound, not yet running webhook: bind first, so callers learn the address (port 0
/// picks a free one) before serving starts.
pub struct Webhook {
    config: ServerConfig,
    shared: Arc<ServerState>,
    listener: TcpListener,
    probe_listener: Option<TcpListener>,
    cert: Arc<ReloadingCert>,
    acceptor: TlsAcceptor,
}

impl Webhook {
    /// Loads the certificate, binds the listeners and creates the engine. The policy
    /// is compiled by [`Webhook::run`] while `/healthz` already answers.
    pub async fn bind(config: ServerConfig) -> Result<Webhook, WebhookError> {
        let cert = Arc::new(match &config.tls {
            TlsSource::Files { cert, key } => ReloadingCert::new(load_certified_key(cert, key)?),
            TlsSource::Managed(_) => ReloadingCert::empty(),
        });
        let tls = server_config(cert.clone(), config.client_ca.as_deref())?;
        let listener = TcpListener::bind(config.address)
            .await
            .map_err(|source| WebhookError::Listen {
                address: config.address,
                source,
            })?;
        let probe_listener = match config.probe_address {
            None => None,
            Some(address) => Some(
                TcpListener::bind(address)
                    .await
                    .map_err(|source| WebhookError::Listen { address, source })?,
            ),
        };
        let engine = PolicyEngine::new(config.limits.clone())?;
        let settings = load_settings(&config)?;
        let shared = Arc::new(ServerState {
            permits: Semaphore::new(config.limits.max_concurrency as usize),
            engine,
            policy: ArcSwapOption::empty(),
            settings: ArcSwap::from_pointee(settings),
            namespace_labels: config
                .kube_client
                .clone()
                .map(|client| NamespaceLabels::new(client.0, NAMESPACE_LABELS_TTL)),
            context: ContextLookup::new(
                config.kube_client.clone().map(|client| client.0),
                crate::context::DEFAULT_TTL,
                crate::context::DEFAULT_TIMEOUT,
                crate::context::DEFAULT_MAX_ENTRIES,
            ),
            metrics: Metrics::new(),
            ready: AtomicBool::new(false),
            max_body_bytes: config.max_body_bytes,
            client_timeout: config.client_timeout,
            deadline: config.limits.deadline,
        });
        Ok(Webhook {
            acceptor: TlsAcceptor::from(Arc::new(tls)),
            config,
            shared,
            listener,
            probe_listener,
            cert,
        })
    }

    /// The bound TLS address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.address)
    }

    /// The bound probe address, if any.
    pub fn probe_addr(&self) -> Option<SocketAddr> {
        self.probe_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Compiles the policy, serves until `shutdown` resolves, then drains. A policy
    /// that does not load at start is an error; after start, a failed reload keeps the
    /// policy in use.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), WebhookError> {
        let Webhook {
            config,
            shared,
            listener,
            probe_listener,
            cert,
            acceptor,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let graceful = Arc::new(GracefulShutdown::new());
        let address = listener.local_addr().unwrap_or(config.address);

        let accept_tls = tokio::spawn(accept_loop(
            listener,
            Some(acceptor),
            shared.clone(),
            stop_rx.clone(),
            graceful.clone(),
        ));
        let accept_probe = probe_listener
            .map(|l| tokio::spawn(accept_loop(l, None, shared.clone(), stop_rx.clone(), graceful.clone())));

        let mut shutdown = std::pin::pin!(shutdown);
        let outcome = async {
            // A managed certificate may take a while (the Secret or the webhook
            // configuration not applied yet, RBAC missing): a stop request ends the wait.
            let started = async {
                tokio::try_join!(
                    load_policy(&shared, &config.policy),
                    first_certificate(&config.tls, &cert, &shared)
                )
            };
            tokio::select! {
                started = started => { started?; }
                _ = &mut shutdown => return Ok(()),
            }
            shared.ready.store(true, Ordering::SeqCst);
            info!(%address, "ready: serving AdmissionReviews on /validate");
            let reloads = tokio::spawn(reload_loop(config.clone(), shared.clone(), cert, stop_rx.clone()));
            shutdown.await;
            reloads.abort();
            Ok::<(), WebhookError>(())
        }
        .await;

        // Stop being ready first, keep serving while the endpoints leave the Service,
        // then stop accepting and let in-flight requests finish.
        shared.ready.store(false, Ordering::SeqCst);
        if outcome.is_ok() && !config.drain_delay.is_zero() {
            info!(delay = ?config.drain_delay, "not ready; still serving while the endpoints go");
            tokio::time::sleep(config.drain_delay).await;
        }
        let _ = stop_tx.send(true);
        let _ = accept_tls.await;
        if let Some(task) = accept_probe {
            let _ = task.await;
        }
        // The accept loops have returned, so this is the last reference.
        if let Ok(graceful) = Arc::try_unwrap(graceful) {
            match tokio::time::timeout(config.shutdown_grace, graceful.shutdown()).await {
                Ok(()) => info!("shut down: every connection finished"),
                Err(_) => {
                    warn!(grace = ?config.shutdown_grace, "shut down with connections still open after the grace period")
                }
            }
        }
        outcome
    }
}

async fn load_policy(shared: &Arc<ServerState>, source: &PolicySource) -> Result<(), WebhookError> {
    let shared2 = shared.clone();
    let source = source.clone();
    let policy = tokio::task::spawn_blocking(move || compile(&shared2.engine, &source))
        .await
        .map_err(|e| crate::PolicyError::Config(format!("the compile task failed: {e}")))??;
    info!(
        source = policy.source(),
        version = policy.version(),
        compile_ms = policy.compile_time().as_millis() as u64,
        "policy loaded"
    );
    shared
        .metrics
        .policy_compile_seconds
        .set(policy.compile_time().as_secs_f64());
    shared.policy.store(Some(Arc::new(policy)));
    Ok(())
}

fn compile(engine: &PolicyEngine, source: &PolicySource) -> Result<Policy, WebhookError> {
    match source {
        PolicySource::Embedded => Ok(engine.compile(EMBEDDED_POLICY, "embedded")?),
        PolicySource::File(path) => {
            let wasm = std::fs::read(path).map_err(|source| WebhookError::File {
                path: path.clone(),
                source,
            })?;
            Ok(engine.compile(&wasm, &path.display().to_string())?)
        }
    }
}

/// How long a namespace's labels are reused for `namespaceSelector` exemptions.
const NAMESPACE_LABELS_TTL: Duration = Duration::from_secs(30);

/// The flags and the settings file, checked: a selector needs the API server.
fn load_settings(config: &ServerConfig) -> Result<HostSettings, WebhookError> {
    let settings = crate::settings::load(
        &config.disabled_rules,
        config.warn_only,
        config.settings_file.as_deref(),
    )?;
    if settings.needs_namespace_labels && config.kube_client.is_none() {
        return Err(WebhookError::Settings(
            "a namespaceSelector exemption needs the API server (a kubeconfig or the pod's service account token) to read namespace labels".into(),
        ));
    }
    Ok(settings)
}

/// Waits for a managed certificate to be issued or read; files are loaded at bind.
/// Failures are logged and retried (1 s doubling to 30 s): the rest of an install may
/// still be on its way.
async fn first_certificate(tls: &TlsSource, cert: &ReloadingCert, shared: &ServerState) -> Result<(), WebhookError> {
    let TlsSource::Managed(manager) = tls else {
        shared
            .metrics
            .certificate_expiry
            .set(cert.not_after_unix().unwrap_or(0));
        return Ok(());
    };
    let mut backoff = Duration::from_secs(1);
    loop {
        match manager.reconcile().await {
            Ok(reconciled) => {
                let key = certified_key_from_pem(&reconciled.certs.cert, &reconciled.certs.key)?;
                serve_managed(cert, key, reconciled.bundle_changed, shared).await;
                info!(
                    secret = %manager.config().secret,
                    issued = reconciled.issued.as_deref().unwrap_or("no, reused the Secret's"),
                    "serving the managed certificate"
                );
                return Ok(());
            }
            Err(e) => {
                error!(error = %e, retry_in = ?backoff, "no serving certificate yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Serves `key`, once the API server has had time to see a changed caBundle.
async fn serve_managed(
    cert: &ReloadingCert,
    key: rustls::sign::CertifiedKey,
    bundle_changed: bool,
    shared: &ServerState,
) {
    if bundle_changed {
        tokio::time::sleep(BUNDLE_PROPAGATION).await;
    }
    cert.replace(key);
    shared
        .metrics
        .certificate_expiry
        .set(cert.not_after_unix().unwrap_or(0));
}

/// One round of a managed certificate: renew when due, and serve what the Secret holds.
async fn refresh_managed(manager: &CertManager, cert: &ReloadingCert, shared: &ServerState) {
    match manager.reconcile().await {
        Ok(reconciled) => match certified_key_from_pem(&reconciled.certs.cert, &reconciled.certs.key) {
            Ok(key) if cert.serves(&key) => {}
            Ok(key) => {
                serve_managed(cert, key, reconciled.bundle_changed, shared).await;
                shared.metrics.reloaded("certificate", true);
                info!(
                    issued = reconciled.issued.as_deref().unwrap_or("no, another replica did"),
                    "serving a renewed certificate"
                );
            }
            Err(e) => reload_failed(shared, "certificate", &e, "the Secret's certificate is unusable"),
        },
        Err(e) => reload_failed(shared, "certificate", &e, "certificate check failed"),
    }
}

/// Counts a refused reload and logs why; what was loaded before keeps serving.
fn reload_failed(shared: &ServerState, what: &'static str, error: &dyn std::fmt::Display, why: &str) {
    shared.metrics.reloaded(what, false);
    error!(error = %error, "{why}; still serving the previous {what}");
}

/// Reloads the certificate and the policy file when they change, and keeps a managed
/// certificate renewed.
async fn reload_loop(
    config: ServerConfig,
    shared: Arc<ServerState>,
    cert: Arc<ReloadingCert>,
    mut stop: watch::Receiver<bool>,
) {
    let mut cert_watch = match &config.tls {
        TlsSource::Files { cert, key } => Some(FileSetWatch::new(vec![cert.clone(), key.clone()])),
        TlsSource::Managed(_) => None,
    };
    let mut settings_watch = config
        .settings_file
        .as_ref()
        .map(|path| FileSetWatch::new(vec![path.clone()]));
    let mut policy_watch = match &config.policy {
        PolicySource::File(path) => Some(FileSetWatch::new(vec![path.clone()])),
        PolicySource::Embedded => None,
    };
    let mut interval = tokio::time::interval(config.reload_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => return,
        }
        if let TlsSource::Managed(manager) = &config.tls {
            refresh_managed(manager, &cert, &shared).await;
        }
        if let (
            Some(watch),
            TlsSource::Files {
                cert: cert_path,
                key: key_path,
            },
        ) = (cert_watch.as_mut(), &config.tls)
            && watch.changed()
        {
            match load_certified_key(cert_path, key_path) {
                Ok(key) => {
                    cert.replace(key);
                    shared
                        .metrics
                        .certificate_expiry
                        .set(cert.not_after_unix().unwrap_or(0));
                    shared.metrics.reloaded("certificate", true);
                    info!(cert = %cert_path.display(), "serving certificate reloaded");
                }
                Err(e) => reload_failed(&shared, "certificate", &e, "certificate reload failed"),
            }
        }
        if let Some(watch) = settings_watch.as_mut()
            && watch.changed()
        {
            match load_settings(&config) {
                Ok(settings) => {
                    info!(exemptions = ?settings.exemption_names, "settings reloaded");
                    shared.settings.store(Arc::new(settings));
                    shared.metrics.reloaded("settings", true);
                }
                Err(e) => reload_failed(&shared, "settings", &e, "settings reload refused"),
            }
        }
        if let Some(watch) = policy_watch.as_mut()
            && watch.changed()
        {
            match load_policy(&shared, &config.policy).await {
                Ok(()) => shared.metrics.reloaded("policy", true),
                Err(e) => reload_failed(&shared, "policy", &e, "policy reload failed"),
            }
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<ServerState>,
    mut stop: watch::Receiver<bool>,
    graceful: Arc<GracefulShutdown>,
) {
    let reviews = tls.is_some();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off, do not spin.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let tls = tls.clone();
        let graceful = graceful.watcher();
        tokio::spawn(async move {
            if let Err(e) = serve_connection(stream, tls, shared, reviews, graceful).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

async fn serve_connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    shared: Arc<ServerState>,
    reviews: bool,
    graceful: hyper_util::server::graceful::Watcher,
) -> Result<(), String> {
    let timeout = shared.client_timeout;
    let service = hyper::service::service_fn(move |request| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(route(request, &shared, reviews).await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)));
    match tls {
        Some(acceptor) => {
            let stream = tokio::time::timeout(timeout, acceptor.accept(stream))
                .await
                .map_err(|_| "TLS handshake timed out".to_string())?
                .map_err(|e| format!("TLS handshake failed: {e}"))?;
            let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
            graceful.watch(connection).await.map_err(|e| e.to_string())
        }
        None => {
            let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
            graceful.watch(connection).await.map_err(|e| e.to_string())
        }
    }
}

async fn route(request: Request<Incoming>, shared: &ServerState, reviews: bool) -> Response<Full<Bytes>> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => {
            if shared.ready.load(Ordering::SeqCst) {
                text(StatusCode::OK, "ready\n")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: the policy is not loaded yet, or the server is stopping\n",
                )
            }
        }
        (&Method::GET, "/metrics") => {
            let mut response = Response::new(Full::new(Bytes::from(shared.metrics.encode())));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            );
            response
        }
        (&Method::POST, "/validate") if reviews => validate(request, shared).await,
        (_, "/validate") if reviews => text(StatusCode::METHOD_NOT_ALLOWED, "POST an AdmissionReview to /validate\n"),
        (_, path) => text(
            StatusCode::NOT_FOUND,
            &format!("no such path `{path}`: the webhook serves /validate, /healthz, /readyz, /metrics\n"),
        ),
    }
}

async fn validate(request: Request<Incoming>, shared: &ServerState) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let response = review_body(request, shared, started).await;
    shared.metrics.review_seconds.observe(started.elapsed().as_secs_f64());
    response
}

async fn review_body(request: Request<Incoming>, shared: &ServerState, started: Instant) -> Response<Full<Bytes>> {
    let limit = shared.max_body_bytes;
    let body = match tokio::time::timeout(
        shared.client_timeout,
        Limited::new(request.into_body(), limit).collect(),
    )
    .await
    {
        Err(_) => {
            shared.metrics.count("bad_request");
            return text(StatusCode::REQUEST_TIMEOUT, "the request body did not arrive in time\n");
        }
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            shared.metrics.count("bad_request");
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body is larger than {limit} bytes; an AdmissionReview is far smaller\n"),
            );
        }
        Ok(Err(e)) => {
            shared.metrics.count("bad_request");
            return text(StatusCode::BAD_REQUEST, &format!("cannot read the body: {e}\n"));
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    if body.is_empty() {
        shared.metrics.count("bad_request");
        return text(
            StatusCode::BAD_REQUEST,
            "empty body: expected an AdmissionReview (admission.k8s.io/v1) as JSON\n",
        );
    }
    let Ok(body) = std::str::from_utf8(&body) else {
        shared.metrics.count("bad_request");
        return text(
            StatusCode::BAD_REQUEST,
            "the body is not UTF-8 JSON: expected an AdmissionReview\n",
        );
    };
    let Some(policy) = shared.policy.load_full() else {
        shared.metrics.count("not_ready");
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the policy is still loading\n",
        );
    };
    let Ok(_permit) = tokio::time::timeout(shared.deadline, shared.permits.acquire()).await else {
        shared.metrics.count("overloaded");
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded: every policy slot stayed busy past the deadline\n",
        );
    };

    let host = shared.settings.load_full();
    let with_labels;
    let settings = match (&shared.namespace_labels, host.needs_namespace_labels) {
        (Some(lookup), true) => {
            let mut settings = host.review.clone();
            if let Some(namespace) = crate::settings::request_namespace(body) {
                settings.namespace_labels = lookup.get(&namespace).await.map(|labels| labels.into_iter().collect());
            }
            with_labels = settings;
            &with_labels
        }
        _ => &host.review,
    };

    let evaluate = |now_ms: i64, context: Option<&crate::policy::ReviewContext>| {
        shared.metrics.in_flight.inc();
        let policy_started = Instant::now();
        let outcome = policy.review(body, now_ms, settings, context);
        shared
            .metrics
            .policy_seconds
            .observe(policy_started.elapsed().as_secs_f64());
        shared.metrics.in_flight.dec();
        outcome
    };
    let mut outcome = evaluate(jiff::Timestamp::now().as_millisecond(), None);
    // The decision turns on objects beside the request (a job ConfigMap's cluster
    // ConfigMap, which holds the lease): look them up, and review again as of when they
    // were read.
    if let Ok(Err(ReviewError::ContextNeeded(refs))) = &outcome {
        let looked = shared.context.lookup(refs).await;
        outcome = evaluate(looked.read_at_ms, Some(&looked.context));
    }

    match outcome {
        Ok(Ok(reviewed)) => {
            let decision = if reviewed.allowed { "allowed" } else { "denied" };
            shared.metrics.count(decision);
            for exempted in &reviewed.exempted {
                shared
                    .metrics
                    .exemptions
                    .get_or_create(&ExemptionLabels {
                        rule: exempted.rule.clone(),
                        exemption: exempted.exemption.clone(),
                    })
                    .inc();
                review_event!(
                    reviewed,
                    rule = %exempted.rule,
                    exemption = %exempted.exemption,
                    why = %exempted.why,
                    "exempted"
                );
            }
            review_event!(
                reviewed,
                decision,
                rules = %reviewed.rules.join(","),
                duration_us = started.elapsed().as_micros() as u64,
                "review"
            );
            json(reviewed.response)
        }
        Ok(Err(ReviewError::BadRequest(reason))) => {
            shared.metrics.count("bad_request");
            warn!(%reason, "not an AdmissionReview");
            text(StatusCode::BAD_REQUEST, &format!("{reason}\n"))
        }
        // No decision without a lease that could not be read: HTTP 500, so the API
        // server applies the webhook's failurePolicy (Fail: denied; Ignore: admitted).
        Ok(Err(ReviewError::ContextUnavailable(why))) => {
            shared.metrics.count("context_unavailable");
            let uid = request_uid(body);
            error!(%uid, error = %why, duration_us = started.elapsed().as_micros() as u64, "no decision: the context could not be read");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("flink-ha cannot decide this request: {why}\n"),
            )
        }
        Ok(Err(ReviewError::ContextNeeded(refs))) => {
            shared.metrics.count("context_unavailable");
            let uid = request_uid(body);
            let asked: Vec<String> = refs.iter().map(|r| format!("{}/{}", r.namespace, r.name)).collect();
            error!(%uid, asked = ?asked, "no decision: the policy asked for context again after it was given");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "flink-ha cannot decide this request: the policy asked for its context twice\n",
            )
        }
        Err(failure) => {
            shared.metrics.count(failure.outcome());
            let uid = request_uid(body);
            let duration_us = started.elapsed().as_micros() as u64;
            if host.review.warn_only {
                // A dry run never blocks a write, not even when the policy fails.
                warn!(%uid, error = %failure, duration_us, "policy failed; admitted (warn-only)");
                json(admitted_with_warning(&uid, &failure.to_string()))
            } else {
                // No decision: HTTP 500, so the API server applies the failurePolicy
                // (Fail: denied; Ignore: admitted), as when the context cannot be read.
                error!(%uid, error = %failure, duration_us, "no decision: the policy failed");
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("flink-ha cannot decide this request: {failure}\n"),
                )
            }
        }
    }
}

/// `request.uid` of a body the policy could not review, so the API server can match
/// the answer to its request. Only the uid is read: the body may be large or hostile,
/// and a failed review must not build its whole tree.
fn request_uid(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Review {
        request: Option<Uid>,
    }
    #[derive(serde::Deserialize)]
    struct Uid {
        uid: Option<String>,
    }
    serde_json::from_str::<Review>(body)
        .ok()
        .and_then(|review| review.request)
        .and_then(|request| request.uid)
        .unwrap_or_default()
}

/// Admitted with a warning naming the failure: under `--warn-only` the policy failing
/// must not block the write. It lives here, not in the core: only a host can see a
/// policy fail, and the host runs the core as a component, not linked in.
fn admitted_with_warning(uid: &str, failure: &str) -> String {
    serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {
            "uid": uid,
            "allowed": true,
            "warnings": [format!("flink-ha did not review this request (admitted, warn-only): {failure}")]
        }
    })
    .to_string()
}

fn json(body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uid_is_read_alone_and_a_bad_body_gives_an_empty_one() {
        let body = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-1","object":{"data":{"a":[1,{"b":null}]}}}}"#;
        assert_eq!(request_uid(body), "u-1");
        assert_eq!(request_uid(r#"{"request":{"uid":7}}"#), "");
        assert_eq!(request_uid("not json"), "");
        assert_eq!(request_uid("{}"), "");
    }

    #[test]
    fn a_warn_only_failure_is_admitted_and_names_the_failure() {
        let answer: serde_json::Value =
            serde_json::from_str(&admitted_with_warning("u-2", "the policy trapped: boom")).unwrap();
        assert_eq!(answer["response"]["uid"], "u-2");
        assert_eq!(answer["response"]["allowed"], true);
        assert!(
            answer["response"]["warnings"][0]
                .as_str()
                .unwrap()
                .contains("the policy trapped: boom")
        );
    }
}
