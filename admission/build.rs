//! Builds the policy components the webhook embeds and tests with.
//!
//! `flink-ha webhook` must work with no extra files, so the default policy (the core
//! built from `component/`) is compiled here and embedded with `include_bytes!`. The
//! build is a nested `cargo build --target wasm32-unknown-unknown --profile
//! policy-component` into its own target folder (`<target>/wasm-components`, so it
//! never waits on the outer build's lock). `wit-component` then encodes each core module as a component. The
//! target has no WASI, so the component imports nothing.
//!
//! `FLINK_HA_POLICY_WASM=<file>` embeds a prebuilt policy component instead (for
//! packaging, or a machine without the wasm32 target); the fault-test fixture is then
//! not built, and the fault tests say so.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

/// The cargo profile of the guests (the root Cargo.toml): release, fat LTO, one unit.
const PROFILE: &str = "policy-component";

const GUESTS: [(&str, &str); 2] = [
    ("flink-ha-policy-component", "flink_ha_policy_component"),
    ("flink-ha-faulty-policy", "flink_ha_faulty_policy"),
];

fn main() {
    if let Err(e) = run() {
        // A build script fails by panicking; say what to do first.
        panic!("\n\nbuilding the policy component failed: {e}\n\n");
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?);
    let workspace = manifest_dir.parent().ok_or("admission/ has no parent")?.to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").map_err(|e| e.to_string())?);
    println!("cargo:rerun-if-env-changed=FLINK_HA_POLICY_WASM");

    if let Ok(prebuilt) = env::var("FLINK_HA_POLICY_WASM") {
        println!("cargo:rerun-if-changed={prebuilt}");
        fs::copy(&prebuilt, out_dir.join("policy.wasm")).map_err(|e| format!("cannot copy {prebuilt}: {e}"))?;
        println!("cargo:rustc-env=FLINK_HA_FAULTY_POLICY=");
        return Ok(());
    }

    for watched in [
        "src",
        "Cargo.toml",
        "component",
        "wit",
        "admission/faulty-policy",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(watched).display());
    }

    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("wasm-components");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut build = Command::new(cargo);
    build
        .current_dir(&workspace)
        .args([
            "build",
            "--profile",
            PROFILE,
            "--locked",
            "--target",
            "wasm32-unknown-unknown",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    for (package, _) in GUESTS {
        build.args(["-p", package]);
    }
    // The outer build's settings are for the host; the guests get their own.
    for (key, _) in env::vars() {
        if key.starts_with("CARGO_") && !key.starts_with("CARGO_HOME") && key != "CARGO_NET_OFFLINE"
            || key == "RUSTFLAGS"
            || key == "RUSTC_WRAPPER"
            || key == "RUSTC_WORKSPACE_WRAPPER"
        {
            build.env_remove(key);
        }
    }
    // Wasm SIMD (on in wasmtime by default): memchr's searches and LLVM's vectorised
    // loops use 16-byte lanes in the guest as they use SSE2 natively (issue 16).
    build.env(
        "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS",
        "-Ctarget-feature=+simd128",
    );
    let status = build.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "`cargo build --target wasm32-unknown-unknown` exited with {status} (is the target installed? `rustup toolchain install` adds the targets rust-toolchain.toml names)"
        ));
    }

    for (package, file) in GUESTS {
        let module = target_dir
            .join("wasm32-unknown-unknown")
            .join(PROFILE)
            .join(format!("{file}.wasm"));
        let component = encode(&module)?;
        let out = if package == "flink-ha-policy-component" {
            out_dir.join("policy.wasm")
        } else {
            out_dir.join("faulty-policy.wasm")
        };
        fs::write(&out, component).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
        if package == "flink-ha-faulty-policy" {
            println!("cargo:rustc-env=FLINK_HA_FAULTY_POLICY={}", out.display());
        }
    }
    Ok(())
}

/// A core module with wit-bindgen's component-type section, encoded as a component.
fn encode(module: &Path) -> Result<Vec<u8>, String> {
    let bytes = fs::read(module).map_err(|e| format!("cannot read {}: {e}", module.display()))?;
    wit_component::ComponentEncoder::default()
        .module(&bytes)
        .and_then(|encoder| encoder.validate(true).encode())
        .map_err(|e| format!("cannot encode {} as a component: {e:#}", module.display()))
}
