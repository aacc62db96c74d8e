//! README's demo, run as a user runs it: `flink-ha demo` starts its own control plane,
//! kills the leader, deletes the Deployment and must show every job recovered.

use std::process::Command;

#[test]
fn the_demo_recovers_every_job_after_a_leader_kill_and_a_deployment_deletion() {
    let out = Command::new(env!("CARGO_BIN_EXE_flink-ha"))
        .args(["demo", "--jobs", "2"])
        .output()
        .expect("run flink-ha demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\n{stdout}\n{stderr}", out.status);
    for needle in [
        "leads after",
        "flink-config-demo: gone. Kept: 3 HA ConfigMaps",
        "jm-c leads and recovered every job at its latest checkpoint",
        "no job lost",
    ] {
        assert!(stdout.contains(needle), "`{needle}` missing from:\n{stdout}");
    }
}
