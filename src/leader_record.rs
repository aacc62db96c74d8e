//! The leader record Flink keeps in the `control-plane.alpha.kubernetes.io/leader`
//! annotation of its cluster ConfigMap (fabric8's format, not client-go's).
//!
//! `leaseDuration` is decimal seconds (`15.000000000`) up to Flink 2.0 and an ISO-8601
//! duration (`"PT15S"`) from Flink 2.3; plain integers occur too. All are read; the
//! ISO form is written, which every Flink version reads.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

/// The annotation that carries the record.
pub const ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";

/// The record in the leader annotation: who holds the lock, and since when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderRecord {
    /// Empty when the lock was released.
    pub holder_identity: String,
    /// How long the lock is held without renewal (`leaseDuration`).
    pub lease_duration: Duration,
    /// When the holder took the lock (`acquireTime`).
    pub acquire_time: Timestamp,
    /// When the holder last renewed the lock (`renewTime`).
    pub renew_time: Timestamp,
    /// How often the lock changed holders (`leaderTransitions`; 0 when absent).
    pub leader_transitions: u64,
}

/// What is wrong with a leader record. Displayed as the rest of a sentence about it
/// ("the leader annotation has no `renewTime`").
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaderRecordError {
    /// The text is not JSON; the value is the parser's message.
    #[error("is not JSON ({0})")]
    NotJson(String),
    /// The JSON is not an object.
    #[error("is not a JSON object")]
    NotAnObject,
    /// `holderIdentity` is neither a string nor null.
    #[error("has a `holderIdentity` that is not a string")]
    HolderNotAString,
    /// A numeric `leaseDuration` is negative, not finite or too large.
    #[error("has a negative or huge `leaseDuration`")]
    LeaseOutOfRange,
    /// A string `leaseDuration` is not an ISO-8601 duration.
    #[error("has a `leaseDuration` that is not an ISO-8601 duration such as PT15S")]
    LeaseNotIso8601,
    /// `leaseDuration` is missing or neither a number nor a string.
    #[error("has no `leaseDuration`")]
    NoLease,
    /// A time field is missing or not a string; the value is its name.
    #[error("has no `{0}`")]
    NoTime(&'static str),
    /// A time field is not an RFC 3339 time; the value is its name.
    #[error("has a `{0}` that is not an RFC 3339 time")]
    TimeNotRfc3339(&'static str),
    /// `leaderTransitions` is not a non-negative integer.
    #[error("has a `leaderTransitions` that is not a count")]
    TransitionsNotACount,
}

impl LeaderRecord {
    /// Reads a record; the error names the field that is wrong.
    pub fn parse(json: &str) -> Result<LeaderRecord, LeaderRecordError> {
        use LeaderRecordError as E;
        let v: Value = serde_json::from_str(json).map_err(|e| E::NotJson(e.to_string()))?;
        let obj = v.as_object().ok_or(E::NotAnObject)?;
        let holder_identity = match obj.get("holderIdentity") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(E::HolderNotAString),
        };
        let lease_duration = match obj.get("leaseDuration") {
            Some(Value::Number(n)) => n
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e12)
                .map(Duration::from_secs_f64)
                .ok_or(E::LeaseOutOfRange)?,
            Some(Value::String(s)) => s
                .parse::<SignedDuration>()
                .ok()
                .and_then(|d| Duration::try_from(d).ok())
                .ok_or(E::LeaseNotIso8601)?,
            _ => return Err(E::NoLease),
        };
        let time = |field: &'static str| -> Result<Timestamp, LeaderRecordError> {
            obj.get(field)
                .and_then(Value::as_str)
                .ok_or(E::NoTime(field))?
                .parse::<Timestamp>()
                .map_err(|_| E::TimeNotRfc3339(field))
        };
        let acquire_time = time("acquireTime")?;
        let renew_time = time("renewTime")?;
        let leader_transitions = match obj.get("leaderTransitions") {
            None | Some(Value::Null) => 0,
            Some(v) => v.as_u64().ok_or(E::TransitionsNotACount)?,
        };
        Ok(LeaderRecord {
            holder_identity,
            lease_duration,
            acquire_time,
            renew_time,
            leader_transitions,
        })
    }

    /// The record as Flink 2.3 writes it: times in UTC with six fractional digits and a
    /// literal `Z`, the lease as an ISO-8601 duration.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "holderIdentity": self.holder_identity,
            "leaseDuration": iso_duration(self.lease_duration),
            "acquireTime": fabric8_time(self.acquire_time),
            "renewTime": fabric8_time(self.renew_time),
            "leaderTransitions": self.leader_transitions,
        })
        .to_string()
    }

    /// Whether someone holds the lock at `now` by the record's own clock fields
    /// (holder set and `renewTime + leaseDuration` after `now`).
    pub fn is_live_at(&self, now: Timestamp) -> bool {
        if self.holder_identity.is_empty() {
            return false;
        }
        let Ok(lease) = SignedDuration::try_from(self.lease_duration) else {
            return true;
        };
        match self.renew_time.checked_add(lease) {
            Ok(expiry) => expiry > now,
            Err(_) => true,
        }
    }
}

fn fabric8_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn iso_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("PT{}S", ms / 1000)
    } else {
        format!("PT{}.{:03}S", ms / 1000, ms % 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_lease_forms() {
        let old = r#"{"holderIdentity":"a","leaseDuration":15.000000000,"acquireTime":"2020-10-20T04:06:31.431000Z","renewTime":"2020-10-22T08:51:36.843000Z","leaderTransitions":37981}"#;
        let new = r#"{"holderIdentity":"72194ce9-ba00-45d8-92ae-a8574f6f53dd","leaseDuration":"PT15S","acquireTime":"2026-11-24T01:32:23.627628Z","renewTime":"2026-11-24T01:34:33.692391Z","leaderTransitions":0}"#;
        let a = LeaderRecord::parse(old).unwrap();
        let b = LeaderRecord::parse(new).unwrap();
        assert_eq!(a.lease_duration, Duration::from_secs(15));
        assert_eq!(b.lease_duration, Duration::from_secs(15));
        assert_eq!(a.leader_transitions, 37981);
        assert_eq!(LeaderRecord::parse(&b.to_json()).unwrap(), b);
        assert!(b.to_json().contains("\"renewTime\":\"2026-11-24T01:34:33.692391Z\""));
        let renew: Timestamp = "2026-11-24T01:34:33.692391Z".parse().unwrap();
        assert!(b.is_live_at(renew));
        assert!(!b.is_live_at(renew.checked_add(SignedDuration::from_secs(16)).unwrap()));
        assert_eq!(LeaderRecord::parse("{}"), Err(LeaderRecordError::NoLease));
        assert_eq!(
            LeaderRecord::parse(r#"{"leaseDuration":"soon"}"#),
            Err(LeaderRecordError::LeaseNotIso8601)
        );
    }
}
