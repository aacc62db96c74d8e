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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderRecord {
    /// Empty when the lock was released.
    pub holder_identity: String,
    pub lease_duration: Duration,
    pub acquire_time: Timestamp,
    pub renew_time: Timestamp,
    pub leader_transitions: u64,
}

impl LeaderRecord {
    /// Reads a record; the error names the field that is wrong.
    pub fn parse(json: &str) -> Result<LeaderRecord, String> {
        let v: Value = serde_json::from_str(json).map_err(|e| format!("is not JSON ({e})"))?;
        let obj = v.as_object().ok_or("is not a JSON object")?;
        let holder_identity = match obj.get("holderIdentity") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err("has a `holderIdentity` that is not a string".into()),
        };
        let lease_duration = match obj.get("leaseDuration") {
            Some(Value::Number(n)) => n
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e12)
                .map(Duration::from_secs_f64)
                .ok_or("has a negative or huge `leaseDuration`")?,
            Some(Value::String(s)) => s
                .parse::<SignedDuration>()
                .ok()
                .and_then(|d| Duration::try_from(d).ok())
                .ok_or("has a `leaseDuration` that is not an ISO-8601 duration such as PT15S")?,
            _ => return Err("has no `leaseDuration`".into()),
        };
        let time = |field: &str| -> Result<Timestamp, String> {
            obj.get(field)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("has no `{field}`"))?
                .parse::<Timestamp>()
                .map_err(|_| format!("has a `{field}` that is not an RFC 3339 time"))
        };
        let acquire_time = time("acquireTime")?;
        let renew_time = time("renewTime")?;
        let leader_transitions = match obj.get("leaderTransitions") {
            None | Some(Value::Null) => 0,
            Some(v) => v.as_u64().ok_or("has a `leaderTransitions` that is not a count")?,
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
        assert!(LeaderRecord::parse("{}").is_err());
        assert!(LeaderRecord::parse(r#"{"leaseDuration":"soon"}"#).is_err());
    }
}
