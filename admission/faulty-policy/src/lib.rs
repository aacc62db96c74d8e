//! A deliberately broken policy for the webhook's fault tests.
//!
//! It exports the real world (`wit/policy.wit`), so the host loads it like any policy.
//! `review` misbehaves when the AdmissionReview's text holds a marker:
//! - `fault:trap`: panics, which is a trap (`unreachable`) on this target;
//! - `fault:loop`: spins forever, so only the epoch deadline stops it;
//! - `fault:alloc`: allocates until the memory cap refuses to grow the memory;
//! - otherwise: allows the request (a uid it cannot parse out is left empty).

// A module of its own, as in component/: the allowance covers generated code only.
#[allow(clippy::too_many_arguments)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "policy",
    });
}

use bindings::{Guest, InputFormat, ReviewContext, ReviewError, ReviewSettings, Reviewed};

struct Faulty;

impl Guest for Faulty {
    fn lint(_name: String, _input: Vec<u8>, _format: InputFormat) -> String {
        "{}".to_string()
    }

    fn review(
        admission_review: String,
        _now_unix_ms: i64,
        _settings: ReviewSettings,
        _context: Option<ReviewContext>,
    ) -> Result<Reviewed, ReviewError> {
        if admission_review.contains("fault:trap") {
            panic!("the faulty policy traps on request");
        }
        if admission_review.contains("fault:loop") {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        if admission_review.contains("fault:alloc") {
            // Reserved, not written: each block grows the memory by 4 MiB at once, so
            // the cap is reached in a few steps, long before the 200 ms deadline even on
            // a loaded machine (writing every byte, as this did, took the deadline first
            // while an image built beside the tests).
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                let mut block = Vec::<u8>::with_capacity(4 << 20);
                block.push(1);
                hoard.push(std::hint::black_box(block));
            }
        }
        let uid = uid_of(&admission_review);
        Ok(Reviewed {
            response: format!(
                r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{{"uid":"{uid}","allowed":true}}}}"#
            ),
            uid,
            kind: String::new(),
            namespace: String::new(),
            name: String::new(),
            operation: String::new(),
            allowed: true,
            rules: Vec::new(),
            exempted: Vec::new(),
        })
    }

    fn rules() -> String {
        "[]".to_string()
    }

    fn version() -> String {
        "faulty".to_string()
    }
}

/// The first `"uid":"…"` value, without a JSON parser (this fixture stays tiny).
fn uid_of(text: &str) -> String {
    let Some(start) = text.find(r#""uid":""#) else {
        return String::new();
    };
    let rest = &text[start + 7..];
    rest[..rest.find('"').unwrap_or(0)].to_string()
}

bindings::export!(Faulty with_types_in bindings);
