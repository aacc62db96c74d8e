//! Child processes that never outlive the test process: each logs to a file (whose tail
//! goes into startup errors), is killed when dropped, and is registered with a reaper.
//!
//! Why a reaper: a control plane shared by the tests of one binary lives in a `static`,
//! and statics are never dropped. The reaper is a tiny `sh` that reads pids on its stdin
//! and, when that pipe closes (the test process exited, however it exited, SIGKILL
//! included), kills them and removes the control plane's folder.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

/// How much of a log an error quotes.
const LOG_TAIL_BYTES: u64 = 4096;

/// A free TCP port on 127.0.0.1 (free now: the caller retries if it is taken before use).
pub fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|source| Error::Io {
        what: "bind a free port on 127.0.0.1".into(),
        source,
    })?;
    let port = listener.local_addr().map_err(|source| Error::Io {
        what: "read a bound port".into(),
        source,
    })?;
    Ok(port.port())
}

/// Kills registered processes and removes a folder when the test process goes away.
pub struct Reaper {
    child: Child,
    stdin: ChildStdin,
}

impl Reaper {
    /// Starts the reaper: a shell that kills every registered pid once this process
    /// is gone, however it ended.
    pub fn start(dir: &Path) -> Result<Reaper, Error> {
        // Pids arrive one per line; EOF means the owner is gone.
        let script = r#"pids=""
while read -r pid; do pids="$pids $pid"; done
[ -n "$pids" ] && kill -TERM $pids 2>/dev/null
sleep 1
[ -n "$pids" ] && kill -KILL $pids 2>/dev/null
rm -rf -- "$1""#;
        let mut child = Command::new("sh")
            .args(["-c", script, "flink-ha-testenv-reaper"])
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C meant for the tests must not stop the cleanup.
            .process_group(0)
            .spawn()
            .map_err(|source| Error::Io {
                what: "start the reaper (sh)".into(),
                source,
            })?;
        let stdin = child.stdin.take().ok_or_else(|| Error::Io {
            what: "open the reaper's stdin".into(),
            source: std::io::Error::other("no stdin"),
        })?;
        Ok(Reaper { child, stdin })
    }

    /// Hands `pid` to the reaper.
    pub fn register(&mut self, pid: u32) {
        // If the reaper is gone, Drop still kills the process; nothing more to do here.
        let _ = writeln!(self.stdin, "{pid}");
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        // An orderly drop: the processes are already stopped, and the folder is removed by
        // its `TempDir`. Stop the reaper before it signals pids that may be reused.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One running child with its log.
pub struct ManagedProcess {
    /// What it is (`etcd`, `kube-apiserver`), for messages.
    pub name: &'static str,
    child: Child,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

impl ManagedProcess {
    /// Starts `command` with its output in `log`, registered with `reaper`.
    pub fn spawn(
        name: &'static str,
        mut command: Command,
        log: PathBuf,
        reaper: &mut Reaper,
    ) -> Result<ManagedProcess, Error> {
        let out = File::create(&log).map_err(|source| Error::Io {
            what: format!("create {}", log.display()),
            source,
        })?;
        let err = out.try_clone().map_err(|source| Error::Io {
            what: format!("open {}", log.display()),
            source,
        })?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|source| Error::Io {
                what: format!("start {name} ({:?})", command.get_program()),
                source,
            })?;
        reaper.register(child.id());
        tracing::debug!(name, pid = child.id(), log = %log.display(), "started");
        Ok(ManagedProcess { name, child, log })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Err` with the log's tail if the process has exited.
    pub fn check_alive(&mut self) -> Result<(), Error> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::ProcessDied {
                name: self.name,
                status: status.to_string(),
                log_tail: self.log_tail(),
            }),
            Err(source) => Err(Error::Io {
                what: format!("wait for {}", self.name),
                source,
            }),
        }
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// Whether the log says a port was taken (the caller then retries on other ports).
    /// Go says "address already in use", Python "Address already in use".
    pub fn lost_a_port_race(&self) -> bool {
        self.log_tail().to_ascii_lowercase().contains("address already in use")
    }

    /// Waits until `ready()` holds, the process dies, or `timeout` passes.
    pub fn wait_until(&mut self, timeout: Duration, mut ready: impl FnMut() -> bool) -> Result<(), Error> {
        let start = Instant::now();
        loop {
            self.check_alive()?;
            if ready() {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(Error::NotReady {
                    name: self.name,
                    waited: timeout,
                    log_tail: self.log_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` over plain HTTP on loopback; true on a 200 whose body contains `expect`.
pub fn http_get_ok(port: u16, path: &str, expect: &str) -> bool {
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    http_exchange(port, &request, Duration::from_secs(2))
        .is_ok_and(|response| http_ok(&response) && response.contains(expect))
}

/// Sends one HTTP/1.0 request to 127.0.0.1:`port` and reads the answer until the server
/// closes the connection, waiting at most `read_timeout` for each read. A read that fails part way
/// returns what had arrived: the caller judges the answer, not the socket.
pub fn http_exchange(port: u16, request: &str, read_timeout: Duration) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(read_timeout))?;
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    Ok(response)
}

/// Whether an HTTP answer's status is 200.
pub fn http_ok(response: &str) -> bool {
    response.starts_with("HTTP/1.") && response.contains(" 200 ")
}

/// The last few KiB of a log, for error messages.
pub fn log_tail(path: &Path) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}
