//! gc's output: per cluster what goes and why, what stays and why; after `--yes`, what
//! happened. JSON carries the context and digest `--apply` checks.

use super::GcFormat;
use super::execute::{PlanContext, digest};
use super::plan::{Deletion, Inventory, Plan};

pub fn print(plans: &[Plan], context: &PlanContext, inventory: Option<&Inventory>, format: GcFormat, deleting: bool) {
    if let GcFormat::Json = format {
        let value = serde_json::json!({
            "dry_run": !deleting,
            "context": context,
            "digest": digest(context, plans),
            "plans": plans,
        });
        println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
        return;
    }
    if let Some(inventory) = inventory {
        let (count, bytes) = inventory.totals();
        println!(
            "storage root {}: {count} object(s), {bytes} bytes, all in Flink's HA layout",
            inventory.root_uri
        );
    }
    if plans.is_empty() {
        println!("nothing to collect: no Flink HA ConfigMaps found");
        return;
    }
    let verb = if deleting { "delete" } else { "would delete" };
    let mut total = (0usize, 0u64);
    for plan in plans {
        println!(
            "cluster {} (namespace {}): {}",
            plan.cluster_id, plan.namespace, plan.reason
        );
        if plan.refused {
            continue;
        }
        // After a run, what happened replaces what was planned.
        let planned = if plan.outcome.is_empty() {
            &plan.deletions[..]
        } else {
            &[]
        };
        for deletion in planned {
            total.0 += 1;
            match deletion {
                Deletion::Configmap {
                    namespace,
                    name,
                    uid,
                    resource_version,
                    size_bytes,
                } => println!(
                    "  {verb} configmap {namespace}/{name} ({size_bytes} bytes; if still uid {}, resourceVersion {})",
                    uid.as_deref().unwrap_or("?"),
                    resource_version.as_deref().unwrap_or("?")
                ),
                Deletion::Object { uri, size, why, .. } => {
                    total.1 += size;
                    println!("  {verb} {uri} ({size} bytes): {why}");
                }
            }
        }
        for kept in &plan.kept {
            println!("  keep {kept}");
        }
        for outcome in &plan.outcome {
            println!("  {outcome}");
        }
    }
    if !deleting {
        let candidates = plans.iter().filter(|p| !p.refused && !p.deletions.is_empty()).count();
        if candidates > 0 {
            println!(
                "dry run: {} object(s), {} bytes of payloads; run again with --yes to delete (or save --format json and --apply it)",
                total.0, total.1
            );
        }
    }
}
