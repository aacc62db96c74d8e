//! A real Flink 2.3.0 JobManager in the test suite (issue 13): Flink's own jars (PyPI's
//! `apache-flink-libraries` wheel, `scripts/setup-flink`), started as its standalone
//! scripts start it (`scripts/flink-process`), with Kubernetes HA against the test
//! control plane, behind `flink-ha webhook` registered with `failurePolicy: Fail`, and a
//! small stateful job that checkpoints (`tests/real-flink/job/`).
//!
//! - Behind the webhook, nothing Flink writes is denied across start, checkpoints, a
//!   SIGKILL failover, a job cancel and a graceful cluster shutdown (which exits 0 and
//!   leaves no cluster ConfigMap); an owner reference on Flink's ConfigMap (HA201) and a
//!   delete of its live cluster ConfigMap (HA205) are denied.
//! - Beside `flink-ha jobmanager` on one cluster id: a Flink JobManager that takes over
//!   from the runtime runs (no crash on the runtime's entries); the runtime that takes over
//!   from Flink leaves Flink's job untouched, says why and gives the lock up; the next
//!   Flink JobManager restores its job at its latest checkpoint.
//!
//! The two tests take turns (each runs two or three JVMs; the machine has two cores).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flink_ha_runtime::history::{Event, Line};
use flink_ha_runtime::names;
use flink_ha_testenv::TestEnv;
use flink_ha_testenv::process::free_port;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use rustix::process::{Pid, Signal};

mod common;
use common::webhook::{enforced_env, webhook};

type TestResult = Result<(), Box<dyn std::error::Error>>;
type Error = Box<dyn std::error::Error>;

/// One test at a time: a Flink cluster is two or three JVMs.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Where `scripts/setup-flink` put Flink and the job.
struct Flink {
    job_jar: PathBuf,
}

impl Flink {
    /// Runs `scripts/setup-flink` (idempotent: a second run takes about a second) and
    /// reads what it prints. A machine without it fails here, saying how to set it up.
    fn setup() -> Result<Flink, Error> {
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

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One Flink cluster id in the test's namespace: its folder, its config.
struct Site {
    run: tempfile::TempDir,
    namespace: String,
    kubeconfig: PathBuf,
    cluster_id: String,
}

/// A Flink process (its pid is the JVM's: `flink-process` execs it).
struct FlinkProcess {
    child: Child,
    rest: u16,
    log_dir: PathBuf,
}

impl FlinkProcess {
    fn signal(&self, signal: Signal) {
        if let Some(pid) = i32::try_from(self.child.id()).ok().and_then(Pid::from_raw) {
            let _ = rustix::process::kill_process(pid, signal);
        }
    }

    /// The process's log, for failure messages.
    fn log_tail(&self) -> String {
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
    fn new(env: &TestEnv, cluster_id: &str) -> Result<Site, Error> {
        Ok(Site {
            run: tempfile::Builder::new().prefix("flink-ha-real-flink-").tempdir()?,
            namespace: env.namespace.clone(),
            kubeconfig: env.kubeconfig.clone(),
            cluster_id: cluster_id.to_string(),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.run.path().join(name)
    }

    /// The Flink configuration both Flink and `flink-ha jobmanager` read (Flink's
    /// standalone defaults: no `high-availability.cluster-id`, so payloads go under
    /// `<storageDir>/default/` for both).
    fn ha_config(&self) -> String {
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
    fn flink_conf(&self, name: &str, rest: u16) -> Result<PathBuf, Error> {
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

    fn start(&self, env: &TestEnv, role: &str, name: &str) -> Result<FlinkProcess, Error> {
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
fn rest(method: &str, port: u16, path: &str, extra: &[&str]) -> Result<serde_json::Value, String> {
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
async fn wait_for<T>(
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

/// The holder of the cluster's lock, if any.
async fn lock_holder(api: &Api<ConfigMap>, cluster_id: &str) -> Option<String> {
    let cm = api.get_opt(&names::cluster_config_map(cluster_id)).await.ok()??;
    let record = cm.metadata.annotations?.remove(names::LEADER_ANNOTATION)?;
    let holder = serde_json::from_str::<serde_json::Value>(&record).ok()?["holderIdentity"]
        .as_str()?
        .to_string();
    (!holder.is_empty()).then_some(holder)
}

/// Waits until a JobManager leads with a TaskManager registered (its REST answers).
async fn until_ready(jm: &FlinkProcess, taskmanagers: u64) -> Result<(), Error> {
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
fn submit(flink: &Flink, jm: &FlinkProcess) -> Result<String, Error> {
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
fn checkpoints(jm: &FlinkProcess, job: &str) -> Option<(u64, Option<u64>, Option<u64>)> {
    let stats = rest("GET", jm.rest, &format!("/jobs/{job}/checkpoints"), &[]).ok()?;
    Some((
        stats["counts"]["completed"].as_u64()?,
        stats["latest"]["completed"]["id"].as_u64(),
        stats["latest"]["restored"]["id"].as_u64(),
    ))
}

/// The highest checkpoint id in Flink's job ConfigMap (`checkpointID-…`).
async fn pointed_checkpoint(api: &Api<ConfigMap>, cluster_id: &str, job: &str) -> Option<u64> {
    let cm = api.get_opt(&names::job_config_map(cluster_id, job)).await.ok()??;
    cm.data?
        .keys()
        .filter_map(|k| flink_ha_policy::ha_layout::checkpoint_id(k))
        .max()
}

/// `flink_ha_webhook_reviews_total{outcome="denied"}` from the webhook's `/metrics`.
fn webhook_denials(probe: u16) -> Result<u64, Error> {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .arg(format!("http://127.0.0.1:{probe}/metrics"))
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter(|l| l.starts_with("flink_ha_webhook_reviews_total") && l.contains(r#"outcome="denied""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_flink_behind_the_webhook_is_never_denied_and_shuts_down_cleanly() -> TestResult {
    let _turn = TURN.lock().await;
    let flink = Flink::setup()?;
    let env = enforced_env("real-flink").await?;
    let probe = webhook(&env).await?.probe;
    let denied_before = webhook_denials(probe)?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let site = Site::new(&env, "real-flink")?;
    let cluster_cm = names::cluster_config_map("real-flink");

    let jm1 = site.start(&env, "jobmanager", "jm1")?;
    let tm = site.start(&env, "taskmanager", "tm")?;
    until_ready(&jm1, 1).await?;
    let job = submit(&flink, &jm1)?;
    let (_, before_kill, _) = wait_for(
        "three completed checkpoints",
        Duration::from_secs(120),
        || jm1.log_tail(),
        async || checkpoints(&jm1, &job).filter(|(completed, _, _)| *completed >= 3),
    )
    .await?;
    let before_kill = before_kill.ok_or("no completed checkpoint id")?;

    // What would lose Flink's HA data is denied on Flink's own objects. (The API server
    // may review one PATCH twice: it retries an update that raced Flink's renewal.)
    let denied_before_ours = webhook_denials(probe)?;
    assert_eq!(denied_before_ours, denied_before, "Flink's start was denied");
    let owner = serde_json::json!({"metadata": {"ownerReferences": [{
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "real-flink",
        "uid": "6a1c2a4e-0f3b-4c3e-9d7a-2b1f0e9c8d7a", "controller": true
    }]}});
    let owned = api
        .patch(&cluster_cm, &PatchParams::default(), &Patch::Merge(&owner))
        .await;
    assert!(
        matches!(&owned, Err(kube::Error::Api(e)) if e.message.contains("[HA201]")),
        "{owned:?}"
    );
    let deleted = api.delete(&cluster_cm, &DeleteParams::default()).await;
    assert!(
        matches!(&deleted, Err(kube::Error::Api(e)) if e.message.contains("[HA205]") && e.message.contains("execution plan")),
        "{deleted:?}"
    );
    let denied_after_ours = webhook_denials(probe)?;

    // SIGKILL the leader; a second JobManager takes over and restores the job at the
    // checkpoint Flink's job ConfigMap points to (at least the one completed before).
    let pointed = pointed_checkpoint(&api, "real-flink", &job)
        .await
        .ok_or("no checkpoint in Flink's job ConfigMap")?;
    jm1.signal(Signal::KILL);
    let killed = Instant::now();
    let jm2 = site.start(&env, "jobmanager", "jm2")?;
    let restored = wait_for(
        "the job restored by the second JobManager",
        Duration::from_secs(180),
        || jm2.log_tail(),
        async || checkpoints(&jm2, &job).and_then(|(_, _, restored)| restored),
    )
    .await?;
    let failover = killed.elapsed();
    assert!(
        restored >= before_kill.max(pointed),
        "restored {restored}, completed {before_kill}, pointed {pointed}"
    );
    eprintln!(
        "real flink: SIGKILL → second JobManager restored checkpoint {restored} in {failover:.1?} (JVM start included)"
    );

    // Cancel the job (Flink deletes its job ConfigMap), then shut the cluster down:
    // Flink releases the lock, takes it again and deletes the emptied ConfigMap.
    rest("PATCH", jm2.rest, &format!("/jobs/{job}?mode=cancel"), &[])?;
    let job_cm = names::job_config_map("real-flink", &job);
    wait_for(
        "the job ConfigMap gone after the cancel",
        Duration::from_secs(60),
        || jm2.log_tail(),
        async || api.get_opt(&job_cm).await.ok()?.is_none().then_some(()),
    )
    .await?;
    rest("DELETE", jm2.rest, "/cluster", &[])?;
    let mut jm2 = jm2;
    let status = wait_for(
        "the JobManager to exit",
        Duration::from_secs(60),
        String::new,
        async || jm2.child.try_wait().ok()?,
    )
    .await?;
    assert_eq!(status.code(), Some(0), "Flink's shutdown failed:\n{}", jm2.log_tail());
    assert!(
        api.get_opt(&cluster_cm).await?.is_none(),
        "the cluster ConfigMap is left"
    );
    tm.signal(Signal::TERM);

    // Nothing Flink asked for was denied: no denial before this test's own two
    // requests or after them, and each denial logged is one of those two.
    let denied_at_end = webhook_denials(probe)?;
    let running = webhook(&env).await?;
    let denials: Vec<String> = running
        .log()
        .lines()
        .filter(|l| l.contains(&format!("namespace={}", env.namespace)) || l.contains(&env.namespace))
        .filter(|l| l.contains("denied") && !l.contains("probe-cluster-config-map"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        denied_at_end,
        denied_after_ours,
        "Flink's requests were denied:\n{}",
        denials.join("\n")
    );
    assert!(
        denied_after_ours - denied_before_ours >= 2,
        "the owner reference and the delete were not both denied"
    );
    for line in &denials {
        let ours =
            (line.contains("UPDATE") && line.contains("HA201")) || (line.contains("DELETE") && line.contains("HA205"));
        assert!(ours, "a denial that is not this test's own: {line}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flink_and_the_runtime_take_over_from_each_other_without_harm() -> TestResult {
    let _turn = TURN.lock().await;
    let flink = Flink::setup()?;
    let env = enforced_env("flink-and-runtime").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let site = Site::new(&env, "shared")?;
    let runtime_config = site.path("runtime-config.yaml");
    std::fs::write(&runtime_config, site.ha_config())?;

    let runtime = |name: &str| -> Result<Child, Error> {
        let child = Command::new(env!("CARGO_BIN_EXE_flink-ha"))
            .args(["jobmanager", "--jobs", "1", "--checkpoint-interval", "300 ms"])
            .args(["--address", "pekko.tcp://flink@127.0.0.1:6123/user/rpc/dispatcher_1"])
            .arg("--config")
            .arg(&runtime_config)
            .arg("--history")
            .arg(site.path(&format!("{name}.jsonl")))
            .env("KUBECONFIG", &site.kubeconfig)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(site.path(&format!("{name}.log")))?)
            .spawn()?;
        env.plane.adopt(child.id());
        Ok(child)
    };
    let history = |name: &str| -> Vec<Event> {
        std::fs::read_to_string(site.path(&format!("{name}.jsonl")))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Line>(l).ok())
            .map(|l| l.event)
            .collect()
    };
    let runtime_log = |name: &str| std::fs::read_to_string(site.path(&format!("{name}.log"))).unwrap_or_default();

    // 1. The runtime leads `shared` first, with a job that checkpoints, then stops (and
    //    releases the lock): its entries stay in the ConfigMaps.
    let mut first = runtime("runtime-1")?;
    wait_for(
        "the runtime's checkpoints",
        Duration::from_secs(60),
        || runtime_log("runtime-1"),
        async || {
            (history("runtime-1")
                .iter()
                .filter(|e| matches!(e, Event::CheckpointAcked { .. }))
                .count()
                >= 3)
                .then_some(())
        },
    )
    .await?;
    signal(first.id(), Signal::TERM);
    first.wait()?;

    // 2. A Flink JobManager takes the lock over and runs: nothing of the runtime's
    //    crashes it. Its own job checkpoints.
    let jm1 = site.start(&env, "jobmanager", "jm1")?;
    let tm = site.start(&env, "taskmanager", "tm")?;
    until_ready(&jm1, 1).await?;
    let job = submit(&flink, &jm1)?;
    wait_for(
        "Flink's checkpoints beside the runtime's entries",
        Duration::from_secs(120),
        || jm1.log_tail(),
        async || checkpoints(&jm1, &job).filter(|(completed, _, _)| *completed >= 2),
    )
    .await?;
    let mut jm1 = jm1;
    assert!(
        jm1.child.try_wait()?.is_none(),
        "Flink's JobManager died:\n{}",
        jm1.log_tail()
    );

    // 3. Flink's JobManager is SIGKILLed; the runtime wins the lock, finds Flink's plan,
    //    touches nothing, says why and gives the lock up.
    let flink_state = |cms: Vec<ConfigMap>| -> Vec<(String, Vec<(String, String)>)> {
        cms.into_iter()
            .map(|cm| {
                let data = cm
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(k, _)| !k.starts_with(names::LEADER_ENTRY_PREFIX))
                    .collect();
                (cm.metadata.name.unwrap_or_default(), data)
            })
            .collect()
    };
    let list = async || -> Result<Vec<ConfigMap>, kube::Error> {
        Ok(api
            .list(&kube::api::ListParams::default().labels(&names::ha_selector("shared")))
            .await?
            .items)
    };
    jm1.signal(Signal::KILL);
    let killed = Instant::now();
    let flink_data = flink_state(list().await?);
    let mut second = runtime("runtime-2")?;
    wait_for(
        "the runtime to give Flink's cluster up",
        Duration::from_secs(60),
        || runtime_log("runtime-2"),
        async || {
            history("runtime-2")
                .iter()
                .any(|e| matches!(e, Event::GaveUp { .. }))
                .then_some(())
        },
    )
    .await?;
    let why = history("runtime-2")
        .into_iter()
        .find_map(|e| match e {
            Event::WriteFailed { error, .. } => Some(error),
            _ => None,
        })
        .ok_or("the runtime did not say why")?;
    assert!(why.contains(&format!("executionPlan-{job}")), "{why}");
    assert!(
        !history("runtime-2").iter().any(|e| matches!(
            e,
            Event::JobClaimed { .. } | Event::Recovered { .. } | Event::JobSubmitted { .. }
        )),
        "the runtime started jobs on Flink's cluster"
    );
    assert_eq!(
        flink_state(list().await?),
        flink_data,
        "the runtime changed Flink's entries"
    );

    // 4. The next Flink JobManager gets the lock and restores its job.
    let pointed = pointed_checkpoint(&api, "shared", &job)
        .await
        .ok_or("no checkpoint in Flink's job ConfigMap")?;
    let jm2 = site.start(&env, "jobmanager", "jm2")?;
    let restored = wait_for(
        "Flink's job restored beside the runtime",
        Duration::from_secs(180),
        || jm2.log_tail(),
        async || checkpoints(&jm2, &job).and_then(|(_, _, restored)| restored),
    )
    .await?;
    assert!(
        restored >= pointed,
        "restored {restored}, the ConfigMap pointed at {pointed}"
    );
    eprintln!(
        "real flink: SIGKILL → the runtime refused, a Flink JobManager restored checkpoint {restored} after {:.1?}",
        killed.elapsed()
    );
    let holder = lock_holder(&api, "shared").await;
    assert!(holder.is_some(), "no one holds the lock");
    signal(second.id(), Signal::TERM);
    second.wait()?;
    tm.signal(Signal::TERM);
    Ok(())
}

fn signal(pid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}
