//! Failover after SIGKILL side by side in one run (issue 13): a real Flink 2.3.0
//! JobManager and `flink-ha jobmanager`, each with a standby already running, on the test
//! control plane, with the same election timings (lease 5 s, renew deadline 4 s, retry
//! period 1 s):
//!
//! - Flink → Flink: the leader is SIGKILLed; time until the standby holds the lock, and
//!   until it restored the job (REST `latest.restored`).
//! - runtime → runtime: the same with two `flink-ha jobmanager` processes (the new
//!   leader's history says when it recovered the job at its latest checkpoint).
//! - runtime → Flink and Flink → runtime: the leader of one kind is killed, a standby of
//!   the other takes the lock (Flink then runs with no job; the runtime refuses Flink's
//!   job and gives the lock up, which is timed too).
//!
//! `cargo bench --profile dev -p flink-ha-cli --bench interop_failover` (`INTEROP_KILLS`,
//! default 3, per row; a few minutes, most of it JVM starts). Needs `scripts/setup-flink`.

#[path = "../tests/common/flink.rs"]
mod flink;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flink::{
    Error, Flink, FlinkProcess, Site, checkpoints, holder, lock_holder, signal, submit, until_ready, wait_for,
};
use flink_ha_runtime::history::{Event, Line};
use flink_ha_testenv::TestEnv;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use rustix::process::Signal;

/// What one kill measured.
struct Failover {
    leader: Duration,
    /// Until the job ran again (restored), or the runtime gave Flink's cluster up.
    after: Option<Duration>,
}

/// A `flink-ha jobmanager` on `site`, writing its history.
struct Runtime {
    child: Child,
    history: PathBuf,
}

impl Runtime {
    fn start(env: &TestEnv, site: &Site, name: &str) -> Result<Runtime, Error> {
        let config = site.path("runtime-config.yaml");
        std::fs::write(&config, site.ha_config())?;
        let history = site.path(&format!("{name}.jsonl"));
        let child = Command::new(env!("CARGO_BIN_EXE_flink-ha"))
            .args(["jobmanager", "--jobs", "1", "--checkpoint-interval", "1 s"])
            .arg("--config")
            .arg(&config)
            .arg("--history")
            .arg(&history)
            .env("KUBECONFIG", &site.kubeconfig)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        env.plane.adopt(child.id());
        Ok(Runtime { child, history })
    }

    fn lines(&self) -> Vec<Line> {
        std::fs::read_to_string(&self.history)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Line>(l).ok())
            .collect()
    }

    fn identity(&self) -> Option<String> {
        self.lines().first().map(|l| l.identity.clone())
    }

    fn has(&self, what: impl Fn(&Event) -> bool) -> bool {
        self.lines().iter().any(|l| what(&l.event))
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether something listens on `port` (a standby JobManager's REST server is up).
fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

async fn standby_up(jm: &FlinkProcess) -> Result<(), Error> {
    wait_for(
        "a standby JobManager",
        Duration::from_secs(120),
        || jm.log_tail(),
        async || listening(jm.rest).then_some(()),
    )
    .await?;
    // Listening is not yet contending: give its election a retry period to start.
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(())
}

/// Kills by `kill`, then times until the lock record no longer names the killed holder
/// (polled every 20 ms: a runtime that refuses Flink's cluster holds the lock for
/// milliseconds before it releases it, and the release counts), and until `after` holds.
async fn measure(
    api: &Api<ConfigMap>,
    cluster_id: &str,
    kill: impl FnOnce(),
    mut after: impl AsyncFnMut() -> bool,
) -> Result<Failover, Error> {
    let before = lock_holder(api, cluster_id).await.ok_or("no leader before the kill")?;
    kill();
    let killed = Instant::now();
    loop {
        if holder(api, cluster_id).await.is_some_and(|h| h != before) {
            break;
        }
        if killed.elapsed() > Duration::from_secs(120) {
            return Err("no new lock holder within 120 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let leader = killed.elapsed();
    let done = wait_for(
        "the job running again",
        Duration::from_secs(120),
        String::new,
        async || after().await.then_some(()),
    )
    .await;
    Ok(Failover {
        leader,
        after: done.ok().map(|()| killed.elapsed()),
    })
}

/// A Flink JobManager and TaskManager on `site`, running the job with a completed
/// checkpoint: the JobManager, the TaskManager and the job id.
async fn flink_with_a_job(
    env: &TestEnv,
    flink: &Flink,
    site: &Site,
) -> Result<(FlinkProcess, FlinkProcess, String), Error> {
    let leader = site.start(env, "jobmanager", "jm-0")?;
    let tm = site.start(env, "taskmanager", "tm")?;
    until_ready(&leader, 1).await?;
    let job = submit(flink, &leader)?;
    wait_for(
        "checkpoints",
        Duration::from_secs(120),
        || leader.log_tail(),
        async || checkpoints(&leader, &job).filter(|(completed, _, _)| *completed >= 1),
    )
    .await?;
    Ok((leader, tm, job))
}

async fn flink_to_flink(
    env: &TestEnv,
    flink: &Flink,
    api: &Api<ConfigMap>,
    kills: usize,
) -> Result<Vec<Failover>, Error> {
    let site = Site::new(env, "ff")?;
    let (mut leader, _tm, job) = flink_with_a_job(env, flink, &site).await?;
    let mut out = Vec::new();
    for i in 1..=kills {
        let standby = site.start(env, "jobmanager", &format!("jm-{i}"))?;
        standby_up(&standby).await?;
        let restored_before = checkpoints(&leader, &job).and_then(|(_, _, r)| r);
        let failover = measure(
            api,
            "ff",
            || leader.signal(Signal::KILL),
            async || {
                checkpoints(&standby, &job)
                    .and_then(|(_, _, restored)| restored)
                    .is_some_and(|r| Some(r) != restored_before)
            },
        )
        .await?;
        out.push(failover);
        leader = standby;
    }
    Ok(out)
}

async fn runtime_to_runtime(env: &TestEnv, api: &Api<ConfigMap>, kills: usize) -> Result<Vec<Failover>, Error> {
    let site = Site::new(env, "rr")?;
    let mut leader = Runtime::start(env, &site, "rt-0")?;
    wait_for(
        "the runtime's checkpoints",
        Duration::from_secs(60),
        String::new,
        async || leader.has(|e| matches!(e, Event::CheckpointAcked { .. })).then_some(()),
    )
    .await?;
    let mut out = Vec::new();
    for i in 1..=kills {
        let standby = Runtime::start(env, &site, &format!("rt-{i}"))?;
        wait_for("a standby runtime", Duration::from_secs(30), String::new, async || {
            standby.identity()
        })
        .await?;
        let failover = measure(
            api,
            "rr",
            || signal(leader.child.id(), Signal::KILL),
            async || {
                standby.has(|e| {
                    matches!(
                        e,
                        Event::Recovered {
                            checkpoint: Some(_),
                            ..
                        }
                    )
                })
            },
        )
        .await?;
        out.push(failover);
        leader = standby;
    }
    Ok(out)
}

async fn runtime_to_flink(env: &TestEnv, api: &Api<ConfigMap>, kills: usize) -> Result<Vec<Failover>, Error> {
    let mut out = Vec::new();
    for i in 0..kills {
        let id = format!("rf{i}");
        let site = Site::new(env, &id)?;
        let runtime = Runtime::start(env, &site, "rt")?;
        wait_for(
            "the runtime's checkpoints",
            Duration::from_secs(60),
            String::new,
            async || {
                runtime
                    .has(|e| matches!(e, Event::CheckpointAcked { .. }))
                    .then_some(())
            },
        )
        .await?;
        let standby = site.start(env, "jobmanager", "jm")?;
        standby_up(&standby).await?;
        let failover = measure(
            api,
            &id,
            || signal(runtime.child.id(), Signal::KILL),
            async || flink::rest("GET", standby.rest, "/overview", &[]).is_ok(),
        )
        .await?;
        out.push(failover);
    }
    Ok(out)
}

async fn flink_to_runtime(
    env: &TestEnv,
    flink: &Flink,
    api: &Api<ConfigMap>,
    kills: usize,
) -> Result<Vec<Failover>, Error> {
    let mut out = Vec::new();
    for i in 0..kills {
        let id = format!("fr{i}");
        let site = Site::new(env, &id)?;
        let (leader, _tm, _job) = flink_with_a_job(env, flink, &site).await?;
        let standby = Runtime::start(env, &site, "rt")?;
        wait_for("a standby runtime", Duration::from_secs(30), String::new, async || {
            standby.identity()
        })
        .await?;
        let failover = measure(
            api,
            &id,
            || leader.signal(Signal::KILL),
            async || standby.has(|e| matches!(e, Event::GaveUp { .. })),
        )
        .await?;
        out.push(failover);
    }
    Ok(out)
}

fn describe(rows: &[Failover]) -> (String, String) {
    let seconds = |d: &Duration| format!("{:.1}", d.as_secs_f64());
    let leader: Vec<String> = rows.iter().map(|f| seconds(&f.leader)).collect();
    let after: Vec<String> = rows
        .iter()
        .map(|f| f.after.as_ref().map_or("-".to_string(), seconds))
        .collect();
    (leader.join(", "), after.join(", "))
}

fn main() -> Result<(), Error> {
    let kills: usize = std::env::var("INTEROP_KILLS")
        .ok()
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let flink = Flink::setup()?;
        let env = TestEnv::new("interop-failover").await?;
        let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
        let rows = [
            (
                "Flink → Flink",
                "job restored",
                flink_to_flink(&env, &flink, &api, kills).await?,
            ),
            (
                "runtime → runtime",
                "job recovered",
                runtime_to_runtime(&env, &api, kills).await?,
            ),
            (
                "runtime → Flink",
                "REST answers",
                runtime_to_flink(&env, &api, kills).await?,
            ),
            (
                "Flink → runtime",
                "refused, lock given up",
                flink_to_runtime(&env, &flink, &api, kills).await?,
            ),
        ];
        println!("failover after SIGKILL, standby running, lease 5 s / renew 4 s / retry 1 s, {kills} kills each (s):");
        println!("| from → to | new lock holder | then | |");
        println!("|---|---|---|---|");
        for (name, then, failovers) in &rows {
            let (leader, after) = describe(failovers);
            println!("| {name} | {leader} | {after} | {then} |");
        }
        Ok(())
    })
}
