//! The nemesis test's fault injectors on the wire, both on loopback:
//!
//! - [`TcpProxy`]: one per JobManager in front of the API server. TLS passes through
//!   untouched; answers can be dropped (the request reaches the server, its answer never
//!   reaches the JobManager, and the connection is closed) or delayed, and connections cut.
//! - [`StorageProxy`]: an HTTP/1.1 reverse proxy in front of the S3 server. Requests can
//!   be answered 500 without reaching the server, forwarded and then left unanswered (the
//!   connection dropped: the write may have happened), stalled, answered 404 or 412
//!   without reaching the server, or cut off. One per JobManager, so one can be
//!   partitioned from storage alone. All of them log every write they forward (PUT,
//!   POST, DELETE) with the server's status and a PUT's body, for the checker.

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
    /// This share of reads (GET, HEAD) is answered 404 NoSuchKey without reaching the
    /// server, though the object may well exist (a lagging replica, a misrouted request).
    NotFound(f64),
    /// This share of writes (PUT) is answered 412 PreconditionFailed without reaching the
    /// server.
    PreconditionFailed(f64),
    /// No request reaches the server, none is answered: the JobManager behind this proxy
    /// is cut off from storage (and only from storage).
    Partitioned,
    /// Requests to the job-result store wait this long before they are forwarded; the
    /// rest pass.
    StallJobResults(Duration),
}

/// One write the storage proxy forwarded (PUT, POST, DELETE), with what the server said.
#[derive(Clone, Debug)]
pub struct StorageOp {
    /// Which proxy: the JobManager slot behind it.
    pub via: String,
    pub method: String,
    /// `s3://bucket/key`.
    pub uri: String,
    /// `CLOCK_MONOTONIC` ns when it was forwarded, and when the server's answer came.
    pub sent_ns: u64,
    pub answered_ns: u64,
    /// The server's status; `None` if the server never answered.
    pub status: Option<u16>,
    /// A PUT's body (they are small here), for what the payload says of itself; `None`
    /// for a copy (`x-amz-copy-source`, as a rename sends it).
    pub body: Option<Bytes>,
}

impl StorageOp {
    /// Whether the server did it (2xx).
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// The writes all storage proxies of a run forwarded, in one log.
pub type StorageLog = Arc<Mutex<Vec<StorageOp>>>;

/// An HTTP reverse proxy in front of the S3 server.
pub struct StorageProxy {
    pub port: u16,
    fault: watch::Sender<StorageFault>,
    /// Bumped at every listing (GET with `list-type`) through this proxy.
    listings: watch::Receiver<u64>,
    /// Bumped at every PUT this proxy is about to forward.
    puts: watch::Receiver<u64>,
}

type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// What every connection of one proxy shares.
#[derive(Clone)]
struct Shared {
    via: String,
    fault: watch::Receiver<StorageFault>,
    log: StorageLog,
    listings: Arc<watch::Sender<u64>>,
    puts: Arc<watch::Sender<u64>>,
    rng: Arc<Mutex<fastrand::Rng>>,
    /// How far off the storage server's clock is, in ms: its Last-Modified times move.
    skew_ms: i64,
}

impl StorageProxy {
    /// A proxy named `via` (the JobManager behind it) logging its writes into `log`.
    pub async fn start(
        upstream: SocketAddr,
        seed: u64,
        via: &str,
        log: StorageLog,
        skew_ms: i64,
    ) -> std::io::Result<StorageProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (fault, fault_rx) = watch::channel(StorageFault::Pass);
        let (listed, listings) = watch::channel(0u64);
        let (put, puts) = watch::channel(0u64);
        let shared = Shared {
            via: via.to_string(),
            fault: fault_rx,
            log,
            listings: Arc::new(listed),
            puts: Arc::new(put),
            rng: Arc::new(Mutex::new(fastrand::Rng::with_seed(seed))),
            skew_ms,
        };
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(client, upstream, shared).await;
                });
            }
        });
        Ok(StorageProxy {
            port,
            fault,
            listings,
            puts,
        })
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set(&self, fault: StorageFault) {
        self.fault.send_replace(fault);
    }

    /// Waits (up to `within`) for the next listing of a folder through this proxy: the
    /// start of an orphan sweep or of a recovery's reads. Whether one came.
    pub async fn next_listing(&self, within: Duration) -> bool {
        next_bump(&self.listings, within).await
    }

    /// Waits (up to `within`) for the next PUT through this proxy (a checkpoint's payload,
    /// first step of an add whose pointer comes next). Whether one came.
    pub async fn next_put(&self, within: Duration) -> bool {
        next_bump(&self.puts, within).await
    }
}

/// Whether `counter` is bumped within `within` from now.
async fn next_bump(counter: &watch::Receiver<u64>, within: Duration) -> bool {
    let mut counter = counter.clone();
    counter.borrow_and_update();
    tokio::time::timeout(within, counter.changed())
        .await
        .is_ok_and(|r| r.is_ok())
}

/// One client connection, with one upstream connection of its own.
async fn serve(client: TcpStream, upstream: SocketAddr, shared: Shared) -> Result<(), BoxError> {
    if *shared.fault.borrow() == StorageFault::Partitioned {
        // Cut off: the connection is accepted and dropped unanswered.
        return Ok(());
    }
    let server = TcpStream::connect(upstream).await?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(server)).await?;
    tokio::spawn(connection);
    let sender = Arc::new(tokio::sync::Mutex::new(sender));
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let fault = *shared.fault.borrow();
        let roll = shared.rng.lock().map(|mut r| r.f64()).unwrap_or(1.0);
        handle(request, sender.clone(), fault, roll, shared.clone())
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(client), service)
        .await?;
    Ok(())
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
type Upstream = Arc<tokio::sync::Mutex<hyper::client::conn::http1::SendRequest<Full<Bytes>>>>;

/// One request under `fault`; `roll` (uniform in 0..1) decides whether it is hit.
async fn handle(
    request: Request<Incoming>,
    upstream: Upstream,
    fault: StorageFault,
    roll: f64,
    shared: Shared,
) -> Result<Response<ProxyBody>, BoxError> {
    let method = request.method().clone();
    let is_read = method == hyper::Method::GET || method == hyper::Method::HEAD;
    let query = request.uri().query().unwrap_or_default().to_string();
    // Path style: /<bucket>/<key> is s3://<bucket>/<key>.
    let uri = format!("s3:/{}", request.uri().path());
    match fault {
        StorageFault::Errors(share) if roll < share => {
            return Ok(answer(StatusCode::INTERNAL_SERVER_ERROR, "InternalError"));
        }
        StorageFault::NotFound(share) if roll < share && is_read && !query.contains("list-type") => {
            return Ok(answer(StatusCode::NOT_FOUND, "NoSuchKey"));
        }
        StorageFault::PreconditionFailed(share) if roll < share && method == hyper::Method::PUT => {
            return Ok(answer(StatusCode::PRECONDITION_FAILED, "PreconditionFailed"));
        }
        StorageFault::Partitioned => return Err(Box::new(LostAnswer)),
        StorageFault::Stall(by) => tokio::time::sleep(by).await,
        StorageFault::StallJobResults(by) if uri.contains("/job-result-store/") => tokio::time::sleep(by).await,
        _ => {}
    }
    if method == hyper::Method::GET && query.contains("list-type") {
        shared.listings.send_modify(|n| *n += 1);
    }
    if method == hyper::Method::PUT {
        shared.puts.send_modify(|n| *n += 1);
    }
    let is_copy = request.headers().contains_key("x-amz-copy-source");
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let is_write = !is_read && method != hyper::Method::OPTIONS;
    let request = Request::from_parts(parts, Full::new(body.clone()));
    let sent_ns = monotonic_ns();
    let response = upstream.lock().await.send_request(request).await;
    if is_write && let Ok(mut log) = shared.log.lock() {
        let op = StorageOp {
            via: shared.via.clone(),
            method: method.to_string(),
            uri,
            sent_ns,
            answered_ns: monotonic_ns(),
            status: response.as_ref().ok().map(|r| r.status().as_u16()),
            body: (method == hyper::Method::PUT && !is_copy).then_some(body.clone()),
        };
        if method == hyper::Method::POST && query.split('&').any(|q| q == "delete" || q.starts_with("delete=")) {
            // A bulk delete (object_store's way): one DELETE per key it names. The
            // server's answer may refuse single keys; none is refused here but by a fault.
            for key in keys_of_bulk_delete(&body) {
                log.push(StorageOp {
                    method: "DELETE".into(),
                    uri: format!("{}/{key}", op.uri.trim_end_matches('/')),
                    body: None,
                    ..op.clone()
                });
            }
        } else {
            log.push(op);
        }
    }
    let response = response?;
    if matches!(fault, StorageFault::Resets(share) if roll < share) {
        // Forwarded, then the answer is lost with the connection.
        return Err(Box::new(LostAnswer));
    }
    if shared.skew_ms == 0 {
        return Ok(response.map(|body| body.boxed()));
    }
    // A storage server whose clock is off: every Last-Modified it gives is skewed.
    let (mut parts, body) = response.into_parts();
    if let Some(skewed) = parts
        .headers
        .get(hyper::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| skew_http_date(v, shared.skew_ms))
        .and_then(|v| hyper::header::HeaderValue::from_str(&v).ok())
    {
        parts.headers.insert(hyper::header::LAST_MODIFIED, skewed);
    }
    let body = if query.contains("list-type") {
        let text = body.collect().await?.to_bytes();
        let skewed = skew_listing(&String::from_utf8_lossy(&text), shared.skew_ms);
        parts.headers.remove(hyper::header::CONTENT_LENGTH);
        Full::new(Bytes::from(skewed))
            .map_err(|never: Infallible| match never {})
            .boxed()
    } else {
        body.boxed()
    };
    Ok(Response::from_parts(parts, body))
}

/// An HTTP date (`Tue, 08 Dec 2026 01:00:00 GMT`) moved by `skew_ms`.
fn skew_http_date(text: &str, skew_ms: i64) -> Option<String> {
    let at = jiff::fmt::rfc2822::parse(text).ok()?.timestamp();
    let skewed = at.checked_add(jiff::SignedDuration::from_millis(skew_ms)).ok()?;
    jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&skewed)
        .ok()
}

/// A ListObjectsV2 answer with every `<LastModified>` moved by `skew_ms`.
fn skew_listing(xml: &str, skew_ms: i64) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(start) = rest.find("<LastModified>") {
        let (before, after) = rest.split_at(start + "<LastModified>".len());
        out.push_str(before);
        let Some(end) = after.find("</LastModified>") else {
            rest = after;
            break;
        };
        let value = &after[..end];
        let skewed = value
            .parse::<jiff::Timestamp>()
            .ok()
            .and_then(|at| at.checked_add(jiff::SignedDuration::from_millis(skew_ms)).ok())
            .map(|at| at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
        out.push_str(skewed.as_deref().unwrap_or(value));
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The keys in an S3 `DeleteObjects` request body (`<Key>…</Key>`; the runtime's names
/// need no XML escapes).
fn keys_of_bulk_delete(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    text.split("<Key>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_string()))
        .collect()
}

#[derive(Debug)]
struct LostAnswer;

impl std::fmt::Display for LostAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the nemesis dropped this answer")
    }
}

impl std::error::Error for LostAnswer {}

/// An S3 error answer with `code`, made up by the nemesis.
fn answer(status: StatusCode, code: &str) -> Response<ProxyBody> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the nemesis</Message></Error>"
    );
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response
}
