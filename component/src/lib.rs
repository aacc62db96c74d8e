//! The policy core as a Wasm component: the exports of `wit/policy.wit`.
//!
//! Glue only. Every export calls the same function the CLI calls, so the component's
//! JSON is the native JSON byte for byte (admission/tests/parity.rs). The crate is
//! built for `wasm32-unknown-unknown`, which has no WASI, and `admission/build.rs`
//! encodes it as a component with no imports at all.

// Bad input is an error value, never a panic: no unwrap or expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

// In a module of its own so the lint allowance covers only generated code: the canonical
// ABI flattens `review`'s settings record into more parameters than clippy likes.
#[allow(clippy::too_many_arguments)]
mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "policy",
    });
}

// Every instance lives for one call: allocations are pointer bumps in the memory it
// starts with (arena.rs says why, BENCHMARKS.md what it saved).
#[cfg(target_arch = "wasm32")]
mod arena;

// memcmp/bcmp eight bytes at a time, over compiler-builtins' byte loop (memcmp.rs).
mod memcmp;

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: arena::Arena = arena::Arena::new();

use bindings::{ExemptionApplied, Guest, InputFormat, ObjectRef, ReviewContext, ReviewError, ReviewSettings, Reviewed};

use flink_ha_policy::{
    InputFormat as CoreFormat, LintRun, ReviewContext as CoreContext, ReviewError as CoreError,
    ReviewSettings as CoreSettings,
};

struct Policy;

impl Guest for Policy {
    fn lint(name: String, input: Vec<u8>, format: InputFormat) -> String {
        lint_json(&name, &input, core_format(format))
    }

    fn review(
        admission_review: String,
        now_unix_ms: i64,
        settings: ReviewSettings,
        context: Option<ReviewContext>,
    ) -> Result<Reviewed, ReviewError> {
        let exemptions = match settings.exemptions_json.trim() {
            "" => Vec::new(),
            json => serde_json::from_str(json)
                .map_err(|e| ReviewError::BadRequest(format!("the host sent unusable exemptions: {e}")))?,
        };
        let settings = CoreSettings {
            disabled_rules: settings.disabled_rules,
            warn_only: settings.warn_only,
            exemptions,
            namespace_labels: settings.namespace_labels.map(|labels| labels.into_iter().collect()),
        };
        let context = context.map(|context| match context {
            ReviewContext::Found(found) => CoreContext::Found(found),
            ReviewContext::Unknown(why) => CoreContext::Unknown(why),
        });
        let reviewed = flink_ha_policy::review_in_context(&admission_review, now_unix_ms, &settings, context.as_ref())
            .map_err(review_error)?;
        Ok(Reviewed {
            rules: reviewed.findings.iter().map(|f| f.rule.as_str().to_string()).collect(),
            exempted: reviewed
                .exempted
                .into_iter()
                .map(|e| ExemptionApplied {
                    rule: e.rule.as_str().to_string(),
                    exemption: e.exemption,
                    why: e.why,
                })
                .collect(),
            uid: reviewed.uid,
            kind: reviewed.kind,
            namespace: reviewed.namespace,
            name: reviewed.name,
            operation: reviewed.operation,
            allowed: reviewed.allowed,
            response: reviewed.response,
        })
    }

    fn rules() -> String {
        flink_ha_policy::rules::catalogue_json()
    }

    fn version() -> String {
        flink_ha_policy::version().to_string()
    }
}

bindings::export!(Policy with_types_in bindings);

/// The core's error as the WIT variant: a context to look up or one that failed, else a
/// bad request with the core's message.
fn review_error(error: CoreError) -> ReviewError {
    match error {
        CoreError::ContextNeeded(refs) => ReviewError::ContextNeeded(
            refs.into_iter()
                .map(|r| ObjectRef {
                    namespace: r.namespace,
                    name: r.name,
                })
                .collect(),
        ),
        CoreError::ContextUnavailable(why) => ReviewError::ContextUnavailable(why),
        other => ReviewError::BadRequest(other.to_string()),
    }
}

/// `flink-ha lint --input-format FORMAT NAME --format json`, without the newline.
pub fn lint_json(name: &str, bytes: &[u8], format: CoreFormat) -> String {
    LintRun::of_one(name, bytes, format).to_json()
}

fn core_format(format: InputFormat) -> CoreFormat {
    match format {
        InputFormat::Auto => CoreFormat::Auto,
        InputFormat::FlinkConf => CoreFormat::FlinkConf,
        InputFormat::ConfigYaml => CoreFormat::ConfigYaml,
        InputFormat::Kubernetes => CoreFormat::Kubernetes,
    }
}
