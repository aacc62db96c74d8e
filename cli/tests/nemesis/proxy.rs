//! The nemesis test's fault injectors on the wire, both on loopback:
//!
//! - [`TcpProxy`]: one per JobManager in front of the API server. TLS passes through
//!   untouched; answers can be dropped (the request reaches the server, its answer never
//!   reaches the JobManager, and the connection is closed) or delayed, and connections cut.
//! - [`StorageProxy`]: an HTTP/1.1 reverse proxy in front of the S3 server. Requests can
//!   be answered 500 without reaching the server, forwarded and then left unanswered (the
//!   connection dropped: the write may have happened), or stalled. It also notes every
//!   DELETE it forwards, for the checker's rule (b).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use flink_ha_runtime::history::monotonic_ns;

/// What a [`TcpProxy`] does to the traffic now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireFault {
    Pass,
    /// Each answer chunk is held back this long.
    Delay(Duration),
    /// Requests go through; answers are thrown away and the connection closed.
    DropAnswers,
}

/// A TCP proxy with a fault switch, forwarding to `upstream`.
pub struct TcpProxy {
    pub port: u16,
    fault: watch::Sender<WireFault>,
    /// Bumped to cut every open connection.
    generation: watch::Sender<u64>,
}

impl TcpProxy {
    pub async fn start(upstream: SocketAddr) -> std::io::Result<TcpProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (fault, fault_rx) = watch::channel(WireFault::Pass);
        let (generation, generation_rx) = watch::channel(0u64);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let fault = fault_rx.clone();
                let generation = generation_rx.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        pipe(client, server, fault, generation).await;
                    }
                });
            }
        });
        Ok(TcpProxy {
            port,
            fault,
            generation,
        })
    }

    pub fn set(&self, fault: WireFault) {
        self.fault.send_replace(fault);
    }

    /// Closes every open connection (in-flight requests get no answer).
    pub fn cut(&self) {
        self.generation.send_modify(|g| *g += 1);
    }
}

async fn pipe(
    client: TcpStream,
    server: TcpStream,
    fault: watch::Receiver<WireFault>,
    generation: watch::Receiver<u64>,
) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let born = *generation.borrow();
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let mut cut = generation.clone();
    let upstream = async {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let n = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if server_write.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    };
    let downstream = async {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let n = match server_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let now = *fault.borrow();
            match now {
                WireFault::Pass => {}
                WireFault::Delay(by) => tokio::time::sleep(by).await,
                // The answer is lost, and so is the connection (TLS cannot resume mid-stream).
                WireFault::DropAnswers => return,
            }
            if client_write.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    };
    let cut_off = async {
        while cut.changed().await.is_ok() {
            if *cut.borrow() != born {
                return;
            }
        }
        std::future::pending::<()>().await
    };
    // Whichever ends first closes both directions.
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
        _ = cut_off => {}
    }
}

/// What a [`StorageProxy`] does to each request now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StorageFault {
    Pass,
    /// This share of requests is answered 500 InternalError without reaching the server.
    Errors(f64),
    /// This share of requests is forwarded and then left unanswered (connection dropped).
    Resets(f64),
    /// Each request waits this long before it is forwarded.
    Stall(Duration),
}

/// An HTTP reverse proxy in front of the S3 server.
pub struct StorageProxy {
    pub port: u16,
    fault: watch::Sender<StorageFault>,
    deletes: Arc<Mutex<Vec<(u64, String)>>>,
}

type ProxyBody = BoxBody<Bytes, hyper::Error>;

impl StorageProxy {
    pub async fn start(upstream: SocketAddr, seed: u64) -> std::io::Result<StorageProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (fault, fault_rx) = watch::channel(StorageFault::Pass);
        let deletes = Arc::new(Mutex::new(Vec::new()));
        let noted = deletes.clone();
        let rng = Arc::new(Mutex::new(fastrand::Rng::with_seed(seed)));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let fault = fault_rx.clone();
                let noted = noted.clone();
                let rng = rng.clone();
                tokio::spawn(async move {
                    let _ = serve(client, upstream, fault, noted, rng).await;
                });
            }
        });
        Ok(StorageProxy { port, fault, deletes })
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set(&self, fault: StorageFault) {
        self.fault.send_replace(fault);
    }

    /// Every DELETE forwarded so far: when (`CLOCK_MONOTONIC` ns, at forwarding) and the
    /// object's URI.
    pub fn deletes(&self) -> Vec<(u64, String)> {
        self.deletes.lock().map(|d| d.clone()).unwrap_or_default()
    }
}

/// One client connection, with one upstream connection of its own.
async fn serve(
    client: TcpStream,
    upstream: SocketAddr,
    fault: watch::Receiver<StorageFault>,
    deletes: Arc<Mutex<Vec<(u64, String)>>>,
    rng: Arc<Mutex<fastrand::Rng>>,
) -> Result<(), BoxError> {
    let server = TcpStream::connect(upstream).await?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(server)).await?;
    tokio::spawn(connection);
    let sender = Arc::new(tokio::sync::Mutex::new(sender));
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let fault = *fault.borrow();
        let roll = rng.lock().map(|mut r| r.f64()).unwrap_or(1.0);
        handle(request, sender.clone(), fault, roll, deletes.clone())
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(client), service)
        .await?;
    Ok(())
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
type Upstream = Arc<tokio::sync::Mutex<hyper::client::conn::http1::SendRequest<Incoming>>>;

/// One request under `fault`; `roll` (uniform in 0..1) decides whether it is hit.
async fn handle(
    request: Request<Incoming>,
    upstream: Upstream,
    fault: StorageFault,
    roll: f64,
    deletes: Arc<Mutex<Vec<(u64, String)>>>,
) -> Result<Response<ProxyBody>, BoxError> {
    match fault {
        StorageFault::Errors(share) if roll < share => return Ok(internal_error()),
        StorageFault::Stall(by) => tokio::time::sleep(by).await,
        _ => {}
    }
    if request.method() == hyper::Method::DELETE {
        // Path style: /<bucket>/<key> is s3://<bucket>/<key>.
        let uri = format!("s3:/{}", request.uri().path());
        if let Ok(mut deletes) = deletes.lock() {
            deletes.push((monotonic_ns(), uri));
        }
    }
    let response = upstream.lock().await.send_request(request).await?;
    if matches!(fault, StorageFault::Resets(share) if roll < share) {
        // Forwarded, then the answer is lost with the connection.
        return Err(Box::new(LostAnswer));
    }
    Ok(response.map(|body| body.boxed()))
}

#[derive(Debug)]
struct LostAnswer;

impl std::fmt::Display for LostAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the nemesis dropped this answer")
    }
}

impl std::error::Error for LostAnswer {}

fn internal_error() -> Response<ProxyBody> {
    let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InternalError</Code><Message>injected by the nemesis</Message></Error>";
    let mut response = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}
