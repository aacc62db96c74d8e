//! A real S3-compatible server on loopback for the storageDir tests: moto's standalone
//! server (PyPI `moto[server]`, installed by `scripts/setup`). It speaks S3's wire
//! protocol over HTTP, checks SigV4-signed requests' shape, and honours conditional
//! writes (`If-None-Match: *` answered with 412), which the payload store relies on.
//!
//! ```no_run
//! # fn demo() -> Result<(), flink_ha_testenv::Error> {
//! let s3 = flink_ha_testenv::S3Server::shared()?;
//! s3.create_bucket("flink-ha")?;
//! // storageDir: s3://flink-ha/recovery, with s3.endpoint = s3.endpoint()
//! # Ok(()) }
//! ```

use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::Error;
use crate::process::{ManagedProcess, Reaper, free_port, http_exchange, http_get_ok, http_ok};

/// What installs the server, for the error when it is missing.
pub const INSTALL_COMMAND: &str = "pip install 'moto[server]==5.2.1' (scripts/setup does)";

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running S3-compatible server; stopped when dropped or when the test process exits.
pub struct S3Server {
    port: u16,
    _process: Mutex<ManagedProcess>,
    _reaper: Reaper,
    _dir: tempfile::TempDir,
}

static SHARED: OnceLock<Result<S3Server, String>> = OnceLock::new();

impl S3Server {
    /// The server shared by the tests of this process, started on first use. Tests keep
    /// out of each other's way with buckets of their own.
    pub fn shared() -> Result<&'static S3Server, Error> {
        SHARED
            .get_or_init(|| S3Server::start().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Error::Startup(e.clone()))
    }

    /// Starts a private server on a free port.
    pub fn start() -> Result<S3Server, Error> {
        let dir = tempfile::Builder::new()
            .prefix("flink-ha-s3-")
            .tempdir()
            .map_err(|source| Error::Io {
                what: "create a folder for the S3 server".into(),
                source,
            })?;
        let mut reaper = Reaper::start(dir.path())?;
        let mut last_error = None;
        for _ in 0..3 {
            let port = free_port()?;
            let mut command = Command::new("python3");
            command.args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()]);
            let log = dir.path().join(format!("moto-{port}.log"));
            let mut process = ManagedProcess::spawn("moto_server", command, log, &mut reaper)?;
            match process.wait_until(READY_TIMEOUT, || http_get_ok(port, "/", "ListAllMyBucketsResult")) {
                Ok(()) => {
                    tracing::info!(port, "S3 server (moto) ready");
                    return Ok(S3Server {
                        port,
                        _process: Mutex::new(process),
                        _reaper: reaper,
                        _dir: dir,
                    });
                }
                Err(_) if process.log_tail().contains("No module named") => {
                    return Err(Error::Startup(format!(
                        "the S3 test server is not installed: {INSTALL_COMMAND}\n{}",
                        process.log_tail()
                    )));
                }
                Err(error) if process.lost_a_port_race() => last_error = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| Error::Startup("the S3 server did not start".into())))
    }

    /// `http://127.0.0.1:<port>`: the value for Flink's `s3.endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket (path style; this server does not check the signature of a
    /// bucket creation, so a plain request does).
    pub fn create_bucket(&self, bucket: &str) -> Result<(), Error> {
        let request = format!(
            "PUT /{bucket} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\r\n",
            self.port
        );
        let response = http_exchange(self.port, &request, Duration::from_secs(10)).map_err(|source| Error::Io {
            what: format!("creating bucket {bucket} at {}", self.endpoint()),
            source,
        })?;
        if http_ok(&response) {
            Ok(())
        } else {
            Err(Error::Startup(format!(
                "creating bucket {bucket}: the S3 server answered:\n{response}"
            )))
        }
    }
}
