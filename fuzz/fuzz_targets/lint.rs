//! Any bytes, any declared format, any file name: `lint` returns findings, never panics.
#![no_main]

use flink_ha_policy::{InputFormat, LintRun};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the format, so every reader is exercised.
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let (name, format) = match selector % 5 {
        0 => ("config.yaml", InputFormat::Auto),
        1 => ("flink-conf.yaml", InputFormat::Auto),
        2 => ("manifests.yaml", InputFormat::Kubernetes),
        3 => ("config.yaml", InputFormat::ConfigYaml),
        _ => ("flink-conf.yaml", InputFormat::FlinkConf),
    };
    // Rendering must hold up too (positions, masking, escaping).
    let run = LintRun::of_one(name, bytes, format);
    let _ = run.to_json();
    let _ = run.to_text();
    let _ = run.to_sarif();
});
