//! A real Flink 2.3.0 JobManager in the test suite (issue 13): Flink's own jars (PyPI's
//! `apache-flink-libraries` wheel, `scripts/setup-flink`), started as its standalone
//! scripts start it (`scripts/flink-process`), with Kubernetes HA against the test
//! control plane, behind `flink-ha webhook` registered with `failurePolicy: Fail`, and a
//! small stateful job that checkpoints (`tests/real-flink/job/`).
//!
//! - Behind the webhook, nothing Flink writes is denied across start, checkpoints, a
//!   SIGKILL failover, a job cancel and a graceful cluster shutdown (which exits 0 and
//!   leaves no cluster ConfigMap); an owner reference on Flink's ConfigMap (HA201), a
//!   delete of its live cluster ConfigMap and one of its running job's ConfigMap (HA205,
//!   by the cluster's lease) are denied.
//! - Beside `flink-ha jobmanager` on one cluster id: a Flink JobManager that takes over
//!   from the runtime runs (no crash on the runtime's entries); the runtime that takes over
//!   from Flink leaves Flink's job untouched, says why and gives the lock up; the next
//!   Flink JobManager restores its job at its latest checkpoint.
//!
//! The two tests take turns (each runs two or three JVMs; the machine has two cores).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flink_ha_runtime::history::{Event, Line};
use flink_ha_runtime::names;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use rustix::process::Signal;

mod common;
use common::flink::{
    Error, Flink, Site, checkpoints, lock_holder, pointed_checkpoint, rest, signal, submit, until_ready, wait_for,
};
use common::webhook::{enforced_env, webhook};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// One test at a time: a Flink cluster is two or three JVMs.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `flink_ha_webhook_reviews_total{outcome="denied"}` from the webhook's `/metrics`.
fn webhook_denials(probe: u16) -> Result<u64, Error> {
    webhook_reviews(probe, "denied")
}

/// `flink_ha_webhook_reviews_total{outcome=...}` from the webhook's `/metrics`.
fn webhook_reviews(probe: u16, outcome: &str) -> Result<u64, Error> {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .arg(format!("http://127.0.0.1:{probe}/metrics"))
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter(|l| l.starts_with("flink_ha_webhook_reviews_total") && l.contains(&format!(r#"outcome="{outcome}""#)))
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
    // Flink's job ConfigMap (checkpoint pointers and counter, no lease of its own) is
    // judged by the cluster's lease: deleting it would restart the job empty.
    let job_cm = names::job_config_map("real-flink", &job);
    let deleted = api.delete(&job_cm, &DeleteParams::default()).await;
    assert!(
        matches!(&deleted, Err(kube::Error::Api(e)) if e.message.contains("[HA205]") && e.message.contains("restarts the job empty")),
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
        denied_after_ours - denied_before_ours >= 3,
        "the owner reference and the two deletes were not all denied"
    );
    // Flink's writes never needed a lease the webhook could not read.
    assert_eq!(webhook_reviews(probe, "context_unavailable")?, 0);
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

/// Every file under `dir` whose name starts with one of `prefixes`, with its bytes.
fn files_named(dir: &std::path::Path, prefixes: &[&str]) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                stack.push(path);
            } else if prefixes.iter().any(|p| name.starts_with(p))
                && let Ok(bytes) = std::fs::read(&path)
            {
                out.insert(path, bytes);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_and_the_sweep_beside_a_live_flink_on_its_storage_dir_leave_it_whole() -> TestResult {
    let _turn = TURN.lock().await;
    let flink = Flink::setup()?;
    let env = enforced_env("gc-beside-flink").await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.namespace);
    let site = Site::new(&env, "live-flink")?;
    let ha = site.path("ha");

    // A dead cluster's state in the same storageDir, two days idle.
    let gone_checkpoint = ha.join(format!("gone/completedCheckpoint{}", "1".repeat(24)));
    std::fs::create_dir_all(ha.join("gone"))?;
    std::fs::write(&gone_checkpoint, b"gone")?;
    std::fs::File::options()
        .write(true)
        .open(&gone_checkpoint)?
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(2 * 24 * 3600))?;
    let renewed = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(48)).to_string();
    let record = serde_json::json!({
        "holderIdentity": "", "leaseDuration": "PT15S", "acquireTime": renewed,
        "renewTime": renewed, "leaderTransitions": 0,
    });
    let pointer = flink_ha_runtime::payloads::Pointer {
        path: format!("file://{}", gone_checkpoint.display()),
        marked_for_deletion: false,
    };
    for cm in [
        serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "gone-cluster-config-map", "labels": { "app": "gone", "type": "flink-native-kubernetes" },
                "annotations": { names::LEADER_ANNOTATION: record.to_string() } },
        }),
        serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": format!("gone-{}-config-map", "7".repeat(32)),
                "labels": { "app": "gone", "type": "flink-native-kubernetes" } },
            "data": { flink_ha_runtime::checkpoint_store::checkpoint_key(3): pointer.to_json() },
        }),
    ] {
        api.create(&Default::default(), &serde_json::from_value::<ConfigMap>(cm)?)
            .await?;
    }

    // A live Flink cluster on the storageDir (its files in `default/`), with a job that
    // checkpoints.
    let jm1 = site.start(&env, "jobmanager", "jm1")?;
    let tm = site.start(&env, "taskmanager", "tm")?;
    until_ready(&jm1, 1).await?;
    let job = submit(&flink, &jm1)?;
    wait_for(
        "three completed checkpoints",
        Duration::from_secs(120),
        || jm1.log_tail(),
        async || checkpoints(&jm1, &job).filter(|(completed, _, _)| *completed >= 3),
    )
    .await?;
    // A cluster of the runtime's on the same storageDir, also in `default/` (no
    // high-availability.cluster-id), with its orphan sweep on: it must refuse to sweep a
    // folder Flink writes too, and say so.
    let runtime_config = site.path("runtime-config.yaml");
    std::fs::write(
        &runtime_config,
        site.ha_config()
            .replace("kubernetes.cluster-id: live-flink", "kubernetes.cluster-id: rt"),
    )?;
    let runtime_log = site.path("runtime.log");
    let mut runtime = Command::new(env!("CARGO_BIN_EXE_flink-ha"))
        .args(["jobmanager", "--jobs", "1", "--checkpoint-interval", "300 ms"])
        .args(["--orphan-sweep-interval", "1 s"])
        .args(["--address", "pekko.tcp://flink@127.0.0.1:6123/user/rpc/dispatcher_1"])
        .arg("--config")
        .arg(&runtime_config)
        .env("KUBECONFIG", &site.kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&runtime_log)?)
        .spawn()?;
    env.plane.adopt(runtime.id());
    let read_runtime_log = || std::fs::read_to_string(&runtime_log).unwrap_or_default();
    wait_for(
        "the runtime's refusal to sweep default/",
        Duration::from_secs(60),
        read_runtime_log,
        async || read_runtime_log().contains("no orphan sweep in").then_some(()),
    )
    .await?;

    // Its plan and blobs do not change while it runs: they must keep their bytes.
    let kept_prefixes = ["submittedExecutionPlan", "blob_"];
    let flink_files = files_named(&ha.join("default"), &kept_prefixes);
    assert!(
        !flink_files.is_empty(),
        "no plan or blob of Flink's in {}",
        ha.display()
    );

    // gc -A --yes on the shared storageDir: only the dead cluster's state goes.
    let backups = tempfile::tempdir()?;
    let out = Command::new(env!("CARGO_BIN_EXE_flink-ha"))
        .args(["gc", "-A", "--older-than", "1 d", "--yes", "--format", "json"])
        .arg("--storage")
        .arg(format!("file://{}", ha.display()))
        .arg("--backup-dir")
        .arg(backups.path().join("gc"))
        .env("KUBECONFIG", &env.kubeconfig)
        .env("RUST_LOG", "warn")
        .output()?;
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let deleted: Vec<String> = json["plans"]
        .as_array()
        .ok_or("plans")?
        .iter()
        .flat_map(|p| p["outcome"].as_array().cloned().unwrap_or_default())
        .filter_map(|o| o.as_str()?.strip_prefix("deleted ").map(str::to_owned))
        .collect();
    assert!(
        deleted.contains(&format!("file://{}", gone_checkpoint.display())),
        "{report}"
    );
    for what in &deleted {
        assert!(
            what.starts_with("configmap ") && what.contains("/gone-") || what.contains("/ha/gone/"),
            "gc deleted {what}, which is not the dead cluster's:\n{report}"
        );
    }
    assert!(api.get_opt("live-flink-cluster-config-map").await?.is_some());
    assert!(api.get_opt(&names::job_config_map("live-flink", &job)).await?.is_some());
    assert_eq!(files_named(&ha.join("default"), &kept_prefixes), flink_files);

    // The next Flink JobManager restores the last completed checkpoint.
    let (_, completed, _) = checkpoints(&jm1, &job).ok_or("no checkpoint figures")?;
    let completed = completed.ok_or("no completed checkpoint")?;
    jm1.signal(Signal::KILL);
    let jm2 = site.start(&env, "jobmanager", "jm2")?;
    let restored = wait_for(
        "the job restored by the second JobManager",
        Duration::from_secs(180),
        || jm2.log_tail(),
        async || checkpoints(&jm2, &job).and_then(|(_, _, restored)| restored),
    )
    .await?;
    assert!(
        restored >= completed,
        "restored {restored}, completed {completed} before the kill"
    );
    assert!(
        runtime.try_wait()?.is_none(),
        "the runtime died:\n{}",
        read_runtime_log()
    );
    assert_eq!(files_named(&ha.join("default"), &kept_prefixes), flink_files);
    signal(runtime.id(), Signal::TERM);
    runtime.wait()?;
    tm.signal(Signal::TERM);
    Ok(())
}
