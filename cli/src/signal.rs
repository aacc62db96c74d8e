//! The end of a long-running command: SIGTERM (what Kubernetes sends to stop a pod) or
//! Ctrl-C. Where SIGTERM cannot be watched, Ctrl-C alone.

use tokio::signal::unix::{SignalKind, signal};

/// Waits for either, and says which, for the caller's log line.
pub async fn termination() -> &'static str {
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "interrupted";
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "interrupted",
    }
}
