//! One control plane: etcd and kube-apiserver (and, when asked, kube-controller-manager)
//! on free loopback ports, with their files in a temporary folder.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::Request;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::Error;
use crate::assets::Assets;
use crate::pki::{self, Pki};
use crate::process::{ManagedProcess, Reaper, free_port, http_get_ok};

/// Port races (a free port taken before the process binds it) are retried this often.
const START_ATTEMPTS: usize = 3;
const ETCD_READY_TIMEOUT: Duration = Duration::from_secs(30);
const APISERVER_READY_TIMEOUT: Duration = Duration::from_secs(90);
const CONTROLLER_MANAGER_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The controllers the tests need: garbage collection of owned objects, Deployments and
/// their ReplicaSets, namespace deletion, and service accounts with their tokens.
const CONTROLLERS: &str = "garbagecollector,deployment,replicaset,namespace,serviceaccount,serviceaccount-token";

/// A running control plane. Dropping it stops every process and removes its folder.
pub struct ControlPlane {
    // Fields drop in order: processes first, then the reaper, then the folder.
    controller_manager: Mutex<Option<ManagedProcess>>,
    apiserver: Mutex<ManagedProcess>,
    etcd: Mutex<ManagedProcess>,
    reaper: Mutex<Reaper>,
    /// `https://127.0.0.1:<port>`.
    pub server: String,
    /// A kubeconfig with the admin token (`system:masters`), usable by kubectl.
    pub kubeconfig: PathBuf,
    /// How long etcd and kube-apiserver took to become ready.
    pub startup: Duration,
    pki: Pki,
    assets: Assets,
    dir: tempfile::TempDir,
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver and waits until the API server is ready. Blocking;
    /// safe to call from inside an async runtime (the work runs on a thread of its own).
    pub fn start() -> Result<ControlPlane, Error> {
        ControlPlane::start_with(Assets::find()?)
    }

    /// As [`ControlPlane::start`], with these binaries.
    pub fn start_with(assets: Assets) -> Result<ControlPlane, Error> {
        std::thread::spawn(move || start_blocking(assets))
            .join()
            .unwrap_or_else(|_| Err(Error::Startup("the startup thread panicked".into())))
    }

    /// The folder holding the credentials, kubeconfigs, etcd's data and the logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA that signed the API server's serving certificate.
    pub fn ca_cert(&self) -> &Path {
        &self.pki.ca_cert
    }

    /// A kubeconfig for this server with another bearer token (see [`crate::pki`]).
    pub fn kubeconfig_for_token(&self, name: &str, token: &str) -> Result<PathBuf, Error> {
        let path = self.dir.path().join(format!("kubeconfig-{name}"));
        pki::write_kubeconfig(&path, &self.server, &self.pki.ca_cert, token)?;
        Ok(path)
    }

    /// Starts kube-controller-manager once; later calls return at once.
    pub fn ensure_controller_manager(&self) -> Result<(), Error> {
        let mut slot = self
            .controller_manager
            .lock()
            .map_err(|_| Error::Startup("a test panicked while starting the controller manager".into()))?;
        if let Some(process) = slot.as_mut() {
            return process.check_alive();
        }
        let binary = self.assets.kube_controller_manager();
        if !binary.is_file() {
            return Err(Error::AssetsMissing { looked: vec![binary] });
        }
        let started = Instant::now();
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let port = free_port()?;
            let mut command = Command::new(&binary);
            command.args([
                format!("--kubeconfig={}", self.kubeconfig.display()),
                format!("--authentication-kubeconfig={}", self.kubeconfig.display()),
                format!("--authorization-kubeconfig={}", self.kubeconfig.display()),
                "--leader-elect=false".into(),
                format!("--controllers={CONTROLLERS}"),
                format!(
                    "--service-account-private-key-file={}",
                    self.pki.service_account_key.display()
                ),
                format!("--root-ca-file={}", self.pki.ca_cert.display()),
                "--use-service-account-credentials=false".into(),
                // Health on plain HTTP on loopback (1.20's insecure port); no HTTPS port.
                "--address=127.0.0.1".into(),
                format!("--port={port}"),
                "--secure-port=0".into(),
                // Tests wait on garbage collection: make it prompt.
                "--concurrent-gc-syncs=5".into(),
                "--v=1".into(),
            ]);
            let log = self.dir.path().join("kube-controller-manager.log");
            let mut reaper = self
                .reaper
                .lock()
                .map_err(|_| Error::Startup("reaper lock poisoned".into()))?;
            let mut process = ManagedProcess::spawn("kube-controller-manager", command, log, &mut reaper)?;
            drop(reaper);
            match process.wait_until(CONTROLLER_MANAGER_READY_TIMEOUT, || http_get_ok(port, "/healthz", "ok")) {
                Ok(()) => {
                    tracing::info!(elapsed = ?started.elapsed(), "kube-controller-manager ready");
                    *slot = Some(process);
                    return Ok(());
                }
                Err(error) if process.lost_a_port_race() => last_error = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| Error::Startup("kube-controller-manager did not start".into())))
    }

    /// The kube-apiserver's process id, for fault tests (e.g. SIGSTOP it to make the API
    /// unreachable; use a private plane from [`ControlPlane::start`] for that).
    pub fn apiserver_pid(&self) -> Option<u32> {
        self.apiserver.lock().ok().map(|p| p.pid())
    }

    /// Has the reaper kill `pid` when the test process exits, however it exits: for
    /// processes a test starts against this control plane (they would otherwise outlive
    /// a killed test run, retrying a server that is gone).
    pub fn adopt(&self, pid: u32) {
        if let Ok(mut reaper) = self.reaper.lock() {
            reaper.register(pid);
        }
    }

    /// Errors if a process of this control plane has died (with its log's tail).
    pub fn check_alive(&self) -> Result<(), Error> {
        for process in [&self.etcd, &self.apiserver] {
            if let Ok(mut p) = process.lock() {
                p.check_alive()?;
            }
        }
        if let Ok(mut cm) = self.controller_manager.lock()
            && let Some(p) = cm.as_mut()
        {
            p.check_alive()?;
        }
        Ok(())
    }
}

fn start_blocking(assets: Assets) -> Result<ControlPlane, Error> {
    let started = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("flink-ha-testenv-")
        .tempdir()
        .map_err(|source| Error::Io {
            what: "create the control plane's folder".into(),
            source,
        })?;
    let mut reaper = Reaper::start(dir.path())?;
    let pki = pki::write(dir.path())?;

    let (etcd, etcd_port) = start_etcd(&assets, dir.path(), &mut reaper)?;
    let (apiserver, server) = start_apiserver(&assets, dir.path(), &pki, etcd_port, &mut reaper)?;
    let kubeconfig = dir.path().join("kubeconfig");
    pki::write_kubeconfig(&kubeconfig, &server, &pki.ca_cert, pki::ADMIN_TOKEN)?;
    let mut apiserver = apiserver;
    wait_for_readyz(&mut apiserver, &kubeconfig)?;

    let startup = started.elapsed();
    tracing::info!(?startup, %server, dir = %dir.path().display(), "control plane ready");
    Ok(ControlPlane {
        controller_manager: Mutex::new(None),
        apiserver: Mutex::new(apiserver),
        etcd: Mutex::new(etcd),
        reaper: Mutex::new(reaper),
        server,
        kubeconfig,
        startup,
        pki,
        assets,
        dir,
    })
}

fn start_etcd(assets: &Assets, dir: &Path, reaper: &mut Reaper) -> Result<(ManagedProcess, u16), Error> {
    let mut last_error = None;
    for attempt in 0..START_ATTEMPTS {
        let (client, peer) = (free_port()?, free_port()?);
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut command = Command::new(assets.etcd());
        command.args([
            "--name=testenv".to_string(),
            format!("--data-dir={}", dir.join(format!("etcd-data-{attempt}")).display()),
            format!("--listen-client-urls={client_url}"),
            format!("--advertise-client-urls={client_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=testenv={peer_url}"),
            "--log-level=warn".into(),
        ]);
        let mut process = ManagedProcess::spawn("etcd", command, dir.join("etcd.log"), reaper)?;
        match process.wait_until(ETCD_READY_TIMEOUT, || http_get_ok(client, "/health", "true")) {
            Ok(()) => return Ok((process, client)),
            Err(error) if process.lost_a_port_race() => last_error = Some(error),
            Err(error) => return Err(error),
        }
    }
    Err(last_error.unwrap_or_else(|| Error::Startup("etcd did not start".into())))
}

fn start_apiserver(
    assets: &Assets,
    dir: &Path,
    pki: &Pki,
    etcd_port: u16,
    reaper: &mut Reaper,
) -> Result<(ManagedProcess, String), Error> {
    let mut last_error = None;
    for _ in 0..START_ATTEMPTS {
        let port = free_port()?;
        let mut command = Command::new(assets.kube_apiserver());
        command.args([
            "--bind-address=127.0.0.1".to_string(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={port}"),
            // 1.20 also serves plain HTTP on 8080 unless told not to.
            "--insecure-port=0".into(),
            format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
            format!("--tls-cert-file={}", pki.serving_cert.display()),
            format!("--tls-private-key-file={}", pki.serving_key.display()),
            format!("--token-auth-file={}", pki.token_file.display()),
            "--authorization-mode=RBAC".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!(
                "--service-account-key-file={}",
                pki.service_account_public_key.display()
            ),
            format!(
                "--service-account-signing-key-file={}",
                pki.service_account_key.display()
            ),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            // No kubelets, no Endpoints for the `kubernetes` Service.
            "--endpoint-reconciler-type=none".into(),
            // A webhook named by a Service is called at the Service's Endpoints, not its
            // ClusterIP (there is no kube-proxy here): a test that runs a webhook from
            // the deploy manifests writes those Endpoints itself.
            "--enable-aggregator-routing=true".into(),
            // Pods are never run; the ServiceAccount admission plugin would only get in the way.
            "--disable-admission-plugins=ServiceAccount".into(),
            "--v=1".into(),
        ]);
        let log = dir.join("kube-apiserver.log");
        let mut process = ManagedProcess::spawn("kube-apiserver", command, log, reaper)?;
        // Wait for the port to accept connections; readiness proper comes next.
        let accepting = process.wait_until(APISERVER_READY_TIMEOUT, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        match accepting {
            Ok(()) => return Ok((process, format!("https://127.0.0.1:{port}"))),
            Err(error) if process.lost_a_port_race() => last_error = Some(error),
            Err(error) => return Err(error),
        }
    }
    Err(last_error.unwrap_or_else(|| Error::Startup("kube-apiserver did not start".into())))
}

/// Polls `/readyz` through a real client (TLS, token) until it answers `ok`.
fn wait_for_readyz(apiserver: &mut ManagedProcess, kubeconfig: &Path) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            what: "build a runtime for the readiness check".into(),
            source,
        })?;
    let client = runtime.block_on(client_from_kubeconfig(kubeconfig))?;
    apiserver.wait_until(APISERVER_READY_TIMEOUT, || {
        runtime.block_on(async {
            let Ok(request) = Request::get("/readyz").body(Vec::new()) else {
                return false;
            };
            matches!(client.request_text(request).await, Ok(body) if body.trim() == "ok")
        })
    })
}

/// A `kube::Client` from a kubeconfig file.
pub async fn client_from_kubeconfig(path: &Path) -> Result<kube::Client, Error> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| Error::Kubeconfig(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| Error::Kubeconfig(e.to_string()))?;
    kube::Client::try_from(config).map_err(Error::Kube)
}
