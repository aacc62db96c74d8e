//! A real Flink 2.3.0 as the tests and benchmarks run it: `scripts/setup-flink` installs it,
//! `scripts/flink-process` starts a JobManager or TaskManager as Flink's standalone scripts
//! would, and REST (curl) drives it. One [`Site`] is one Flink cluster id in a test
//! namespace, with its folder and config; `tests/real-flink/README.md` has the recipe.
#![allow(dead_code)] // each test binary uses a part of it

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use flink_ha_runtime::names;
use flink_ha_testenv::TestEnv;
use flink_ha_testenv::process::free_port;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use rustix::process::{Pid, Signal};

pub type Error = Box<dyn std::error::Error>;

/// Where `scripts/setup-flink` put Flink and the job.
pub struct Flink {
    pub job_jar: PathBuf,
}

impl Flink {
    /// Runs `scripts/setup-flink` (idempotent: a second run takes about a second) and
    /// reads what it prints. A machine without it fails here, saying how to set it up.
    pub fn setup() -> Result<Flink, Error> {
        let script = repo().join("scripts/setup-flink");
        let out = Command::new(&script).output()?;
        if !out.status.success() {
            return Err(format!(
                "{} failed (it installs a JDK and Flink 2.3.0's jars; README's test command runs it): {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let value = |key: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .map(|v| PathBuf::from(v.trim().trim_matches('"').trim_matches('\'')))
                .ok_or_else(|| format!("setup-flink printed no {key}=: {stdout}"))
        };
        Ok(Flink {
            job_jar: value("FLINK_JOB_JAR")?,
        })
    }
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One Flink cluster id in the test's namespace: its folder, its config.
pub struct Site {
    pub run: tempfile::TempDir,
    pub namespace: String,
    pub kubeconfig: PathBuf,
    pub cluster_id: String,
}

/// A Flink process (its pid is the JVM's: `flink-process` execs it).
pub struct FlinkProcess {
    pub child: Child,
    pub rest: u16,
    pub log_dir: PathBuf,
}

impl FlinkProcess {
    pub fn signal(&self, signal: Signal) {
        if let Some(pid) = i32::try_from(self.child.id()).ok().and_then(Pid::from_raw) {
            let _ = rustix::process::kill_process(pid, signal);
        }
    }

    /// The process's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        for entry in std::fs::read_dir(&self.log_dir).into_iter().flatten().flatten() {
            if entry.path().extension().is_some_and(|e| e == "log" || e == "out") {
                let body = std::fs::read_to_string(entry.path()).unwrap_or_default();
                let tail: Vec<&str> = body.lines().rev().take(30).collect();
                text.push_str(&format!("--- {}\n", entry.path().display()));
                for line in tail.into_iter().rev() {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
        text
    }
}

impl Drop for FlinkProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Site {
    pub fn new(env: &TestEnv, cluster_id: &str) -> Result<Site, Error> {
        Ok(Site {
            run: tempfile::Builder::new().prefix("flink-ha-real-flink-").tempdir()?,
            namespace: env.namespace.clone(),
            kubeconfig: env.kubeconfig.clone(),
            cluster_id: cluster_id.to_string(),
        })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.run.path().join(name)
    }

    /// The Flink configuration both Flink and `flink-ha jobmanager` read (Flink's
    /// standalone defaults: no `high-availability.cluster-id`, so payloads go under
    /// `<storageDir>/default/` for both).
    pub fn ha_config(&self) -> String {
        format!(
            "high-availability.type: kubernetes
high-availability.storageDir: file://{run}/ha
kubernetes.cluster-id: {id}
kubernetes.namespace: {namespace}
kubernetes.config.file: {kubeconfig}
high-availability.kubernetes.leader-election.lease-duration: 5 s
high-availability.kubernetes.leader-election.renew-deadline: 4 s
high-availability.kubernetes.leader-election.retry-period: 1 s
execution.checkpointing.interval: 2 s
execution.checkpointing.dir: file://{run}/ckpt
execution.checkpointing.num-retained: 1
",
            run = self.run.path().display(),
            id = self.cluster_id,
            namespace = self.namespace,
            kubeconfig = self.kubeconfig.display(),
        )
    }

    /// A conf folder for one Flink process, with its own ports.
    pub fn flink_conf(&self, name: &str, rest: u16) -> Result<PathBuf, Error> {
        let conf = self.path(&format!("conf-{name}"));
        std::fs::create_dir_all(&conf)?;
        let tmp = self.path(&format!("tmp-{name}"));
        std::fs::create_dir_all(&tmp)?;
        let text = format!(
            "{ha}jobmanager.rpc.address: 127.0.0.1
jobmanager.bind-host: 127.0.0.1
jobmanager.rpc.port: {rpc}
blob.server.port: {blob}
rest.address: 127.0.0.1
rest.bind-address: 127.0.0.1
rest.port: {rest}
taskmanager.host: 127.0.0.1
taskmanager.bind-host: 127.0.0.1
taskmanager.rpc.port: {tm_rpc}
taskmanager.data.port: {tm_data}
taskmanager.numberOfTaskSlots: 1
parallelism.default: 1
jobmanager.memory.process.size: 1024m
taskmanager.memory.process.size: 1280m
io.tmp.dirs: {tmp}
web.tmpdir: {tmp}/web
",
            ha = self.ha_config(),
            rpc = free_port()?,
            blob = free_port()?,
            tm_rpc = free_port()?,
            tm_data = free_port()?,
            tmp = tmp.display(),
        );
        std::fs::write(conf.join("config.yaml"), text)?;
        Ok(conf)
    }

    pub fn start(&self, env: &TestEnv, role: &str, name: &str) -> Result<FlinkProcess, Error> {
        let rest = free_port()?;
        let conf = self.flink_conf(name, rest)?;
        let log_dir = self.path(&format!("log-{name}"));
        std::fs::create_dir_all(&log_dir)?;
        let out = std::fs::File::create(log_dir.join(format!("{name}.out")))?;
        let child = Command::new(repo().join("scripts/flink-process"))
            .arg(role)
            .arg(&conf)
            .arg(&log_dir)
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        env.plane.adopt(child.id());
        Ok(FlinkProcess { child, rest, log_dir })
    }
}

/// `curl` against a Flink REST endpoint: the body, or why not.
pub fn rest(method: &str, port: u16, path: &str, extra: &[&str]) -> Result<serde_json::Value, String> {
    let out = Command::new("curl")
        .args(["-s", "-S", "--max-time", "20", "-X", method])
        .args(extra)
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .arg("-w")
        .arg("\n%{http_code}")
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or((&text, ""));
    if !code.starts_with('2') {
        return Err(format!(
            "{method} {path}: HTTP {code}: {body} {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if body.trim().is_empty() {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_str(body).map_err(|e| format!("{method} {path}: {e}: {body}"))
}

/// Polls `check` every 500 ms until it gives a value, or fails after `limit` saying
/// what it waited for (and the process's log).
pub async fn wait_for<T>(
    what: &str,
    limit: Duration,
    log: impl Fn() -> String,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> Result<T, Error> {
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if started.elapsed() > limit {
            return Err(format!("waited {limit:?} for {what}\n{}", log()).into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The lock record's holder as written, `""` once released.
pub async fn holder(api: &Api<ConfigMap>, cluster_id: &str) -> Option<String> {
    let cm = api.get_opt(&names::cluster_config_map(cluster_id)).await.ok()??;
    let record = cm.metadata.annotations?.remove(names::LEADER_ANNOTATION)?;
    Some(
        serde_json::from_str::<serde_json::Value>(&record).ok()?["holderIdentity"]
            .as_str()?
            .to_string(),
    )
}

/// The holder of the cluster's lock, if any (none once released).
pub async fn lock_holder(api: &Api<ConfigMap>, cluster_id: &str) -> Option<String> {
    holder(api, cluster_id).await.filter(|h| !h.is_empty())
}

/// Waits until a JobManager leads with a TaskManager registered (its REST answers).
pub async fn until_ready(jm: &FlinkProcess, taskmanagers: u64) -> Result<(), Error> {
    wait_for(
        "a leading JobManager with its TaskManager",
        Duration::from_secs(180),
        || jm.log_tail(),
        async || {
            let overview = rest("GET", jm.rest, "/overview", &[]).ok()?;
            (overview["taskmanagers"].as_u64()? >= taskmanagers).then_some(())
        },
    )
    .await
}

/// Uploads the job's jar and runs it; the job id.
pub fn submit(flink: &Flink, jm: &FlinkProcess) -> Result<String, Error> {
    let upload = rest(
        "POST",
        jm.rest,
        "/jars/upload",
        &["-H", "Expect:", "-F", &format!("jarfile=@{}", flink.job_jar.display())],
    )?;
    let jar = upload["filename"]
        .as_str()
        .and_then(|f| f.rsplit('/').next())
        .ok_or_else(|| format!("no jar id in {upload}"))?;
    let run = rest(
        "POST",
        jm.rest,
        &format!("/jars/{jar}/run"),
        &[
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"entryClass":"StatefulCounterJob","programArgsList":["--rate","50"],"parallelism":1}"#,
        ],
    )?;
    Ok(run["jobid"]
        .as_str()
        .ok_or_else(|| format!("no job id in {run}"))?
        .to_string())
}

/// The job's checkpoint figures from REST: completed count, latest completed id, the id
/// it restored from.
pub fn checkpoints(jm: &FlinkProcess, job: &str) -> Option<(u64, Option<u64>, Option<u64>)> {
    let stats = rest("GET", jm.rest, &format!("/jobs/{job}/checkpoints"), &[]).ok()?;
    Some((
        stats["counts"]["completed"].as_u64()?,
        stats["latest"]["completed"]["id"].as_u64(),
        stats["latest"]["restored"]["id"].as_u64(),
    ))
}

/// The highest checkpoint id in Flink's job ConfigMap (`checkpointID-…`).
pub async fn pointed_checkpoint(api: &Api<ConfigMap>, cluster_id: &str, job: &str) -> Option<u64> {
    let cm = api.get_opt(&names::job_config_map(cluster_id, job)).await.ok()??;
    cm.data?
        .keys()
        .filter_map(|k| flink_ha_policy::ha_layout::checkpoint_id(k))
        .max()
}

pub fn signal(pid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}
