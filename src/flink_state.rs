//! Flink's HA state read out of its Java-serialized form: the pointers in HA ConfigMaps and
//! the payload files they name. Pure, like the rest of the core; `flink-ha inspect`, `gc`
//! and `audit` bring the bytes.
//!
//! A Flink pointer (`checkpointID-…`, `executionPlan-…`, `jobGraph-…` values) is Base64 of
//! a serialized `KubernetesStateHandleStore$StateHandleWithDeleteMarker` wrapping a
//! `RetrievableStreamStateHandle` wrapping the stream handle of the payload: a
//! `FileStateHandle` (URI and size), a `RelativeFileStateHandle`, or a small payload inline
//! (`ByteStreamStateHandle`). Flink before 1.15 wrote the `RetrievableStreamStateHandle`
//! without the marker; both are read. The runtime's own pointers (`flink-ha.` keys) are
//! JSON, `{"path": "<uri>", "markedForDeletion": true}`; [`HaPointer::decode`] reads either.
//!
//! Payload files: a `CompletedCheckpoint` ([`CompletedCheckpointInfo`]: id, job, and the
//! external pointer, the `chk-N` directory `flink run -s` restores from) or an execution
//! plan (`StreamGraph`/`JobGraph`, [`ExecutionPlanInfo`]).

use base64::Engine;
use serde::Serialize;
use thiserror::Error;

use crate::java_serial::{JavaStream, JavaStreamError, ObjectView};

const DELETE_MARKER_CLASS: &str =
    "org.apache.flink.kubernetes.highavailability.KubernetesStateHandleStore$StateHandleWithDeleteMarker";
const RETRIEVABLE_CLASS: &str = "org.apache.flink.runtime.state.RetrievableStreamStateHandle";
const FILE_HANDLE_CLASS: &str = "org.apache.flink.runtime.state.filesystem.FileStateHandle";
const RELATIVE_FILE_HANDLE_CLASS: &str = "org.apache.flink.runtime.state.filesystem.RelativeFileStateHandle";
const BYTE_STREAM_HANDLE_CLASS: &str = "org.apache.flink.runtime.state.memory.ByteStreamStateHandle";
const COMPLETED_CHECKPOINT_CLASS: &str = "org.apache.flink.runtime.checkpoint.CompletedCheckpoint";

/// Why a pointer or payload could not be read. Displayed as the rest of a sentence about
/// the value (`checkpointID-… <error>`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StateReadError {
    /// Not Base64 (a Flink key) or not JSON (a runtime key).
    #[error("is not Base64: {0}")]
    Base64(String),
    /// Base64, but not a Java serialization stream this reader can follow.
    #[error("is not a readable Java serialization stream: {0}")]
    Stream(#[from] JavaStreamError),
    /// A readable stream of a class that is not where Flink puts it.
    #[error("holds a {found} where Flink writes a {expected}")]
    UnexpectedClass {
        /// The class found.
        found: String,
        /// What Flink writes there.
        expected: &'static str,
    },
    /// A class Flink writes, without a field Flink always sets.
    #[error("holds a {class} without its `{field}` field")]
    MissingField {
        /// The class.
        class: String,
        /// The field.
        field: &'static str,
    },
    /// A runtime pointer that is not `{"path": …}` JSON.
    #[error(transparent)]
    Json(#[from] RuntimePointerError),
}

/// Which writer's format a pointer is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PointerFormat {
    /// Flink's: Base64 of a Java-serialized state handle.
    FlinkJava,
    /// `flink-ha jobmanager`'s JSON.
    FlinkHaJson,
}

/// Where a pointer's payload is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PayloadLocation {
    /// A file, by its full URI (Flink's `Path`: `file:/…`, `s3://bucket/…`).
    File {
        /// The payload's URI as Flink wrote it.
        uri: String,
        /// Its size as the pointer records it (Flink's `stateSize`); `None` for the
        /// runtime's pointers, which do not record it.
        size: Option<u64>,
    },
    /// The payload itself, inline in the pointer (Flink's `ByteStreamStateHandle`).
    Inline {
        /// The handle's name.
        name: String,
        /// Its length.
        size: u64,
    },
}

/// Why a ConfigMap value is not one of the runtime's pointers. Displayed as the rest of
/// a sentence about the value.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RuntimePointerError {
    /// The value is not JSON; holds the parser's message.
    #[error("is not a flink-ha pointer ({0})")]
    NotJson(String),
    /// The JSON has no `path` string, or an empty one.
    #[error("is not a flink-ha pointer (no `path`)")]
    NoPath,
}

/// The pointer `flink-ha-runtime` writes ([`PointerFormat::FlinkHaJson`]):
/// `{"path":"<payload URI>"}`, plus `"markedForDeletion":true` during a two-phase
/// removal (Flink's delete marker). The runtime writes and reads it with these two
/// functions, and [`HaPointer::decode`] reads it with the first, so they cannot differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimePointer {
    /// `path`: the payload's full URI (a bare object path in earlier versions' pointers).
    pub path: String,
    /// `markedForDeletion`: the entry is in the middle of a two-phase removal.
    pub marked_for_deletion: bool,
}

impl RuntimePointer {
    /// The pointer as the ConfigMap value holds it; `markedForDeletion` only when set.
    pub fn to_json(&self) -> String {
        if self.marked_for_deletion {
            serde_json::json!({ "path": self.path, "markedForDeletion": true }).to_string()
        } else {
            serde_json::json!({ "path": self.path }).to_string()
        }
    }

    /// Reads a pointer; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<RuntimePointer, RuntimePointerError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| RuntimePointerError::NotJson(e.to_string()))?;
        let path = value["path"]
            .as_str()
            .filter(|p| !p.is_empty())
            .ok_or(RuntimePointerError::NoPath)?;
        Ok(RuntimePointer {
            path: path.to_owned(),
            marked_for_deletion: value["markedForDeletion"].as_bool().unwrap_or(false),
        })
    }
}

/// A decoded HA pointer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HaPointer {
    /// Whose format.
    pub format: PointerFormat,
    /// Whether the entry is being removed (Flink's two-phase delete marker).
    pub marked_for_deletion: bool,
    /// Where its payload is.
    pub location: PayloadLocation,
}

impl HaPointer {
    /// Decodes a ConfigMap entry: under the runtime's keys (`flink-ha.`) its JSON, else
    /// Flink's Base64 (or JSON, where an earlier runtime wrote it under Flink's keys).
    pub fn decode_entry(key: &str, value: &str) -> Result<HaPointer, StateReadError> {
        if key.starts_with(crate::ha_layout::RUNTIME_KEY_PREFIX) {
            return HaPointer::decode_json(value.trim());
        }
        HaPointer::decode(value)
    }

    /// Decodes a ConfigMap value: the runtime's JSON if it is a JSON object, else a Flink
    /// pointer (Base64, Java-serialized).
    pub fn decode(value: &str) -> Result<HaPointer, StateReadError> {
        let trimmed = value.trim();
        if trimmed.starts_with('{') {
            return HaPointer::decode_json(trimmed);
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(trimmed)
            .map_err(|e| StateReadError::Base64(e.to_string()))?;
        HaPointer::decode_java(&bytes)
    }

    /// Decodes the bytes of a Java-serialized Flink pointer.
    pub fn decode_java(bytes: &[u8]) -> Result<HaPointer, StateReadError> {
        let stream = JavaStream::parse(bytes)?;
        let root = stream.root().ok_or(StateReadError::UnexpectedClass {
            found: "stream without an object".to_owned(),
            expected: "StateHandleWithDeleteMarker",
        })?;
        let (marked_for_deletion, retrievable) = match root.class_name() {
            DELETE_MARKER_CLASS => (
                root.bool_field("markedForDeletion").unwrap_or(false),
                required_object(&root, "inner")?,
            ),
            RETRIEVABLE_CLASS => (false, root),
            other => {
                return Err(StateReadError::UnexpectedClass {
                    found: other.to_owned(),
                    expected: "StateHandleWithDeleteMarker",
                });
            }
        };
        if retrievable.class_name() != RETRIEVABLE_CLASS {
            return Err(StateReadError::UnexpectedClass {
                found: retrievable.class_name().to_owned(),
                expected: "RetrievableStreamStateHandle",
            });
        }
        let handle = required_object(&retrievable, "wrappedStreamStateHandle")?;
        Ok(HaPointer {
            format: PointerFormat::FlinkJava,
            marked_for_deletion,
            location: stream_handle_location(&handle)?,
        })
    }

    fn decode_json(text: &str) -> Result<HaPointer, StateReadError> {
        let pointer = RuntimePointer::parse(text)?;
        Ok(HaPointer {
            format: PointerFormat::FlinkHaJson,
            marked_for_deletion: pointer.marked_for_deletion,
            location: PayloadLocation::File {
                uri: pointer.path,
                size: None,
            },
        })
    }

    /// Whether an entry is marked for deletion, when its format has the mark: Flink's
    /// `StateHandleWithDeleteMarker` (1.15 on) and the runtime's JSON pointers, whose
    /// writers remove an entry in two steps (mark it, then remove the key). `None` when
    /// the value has no mark to read: a pointer of Flink before 1.15, which removed keys
    /// in one step, or a value that is not a pointer at all.
    pub fn removal_mark(key: &str, value: &str) -> Option<bool> {
        let trimmed = value.trim();
        if key.starts_with(crate::ha_layout::RUNTIME_KEY_PREFIX) || trimmed.starts_with('{') {
            return RuntimePointer::parse(trimmed).ok().map(|p| p.marked_for_deletion);
        }
        let bytes = base64::engine::general_purpose::STANDARD.decode(trimmed).ok()?;
        let stream = JavaStream::parse(&bytes).ok()?;
        let root = stream.root()?;
        (root.class_name() == DELETE_MARKER_CLASS).then(|| root.bool_field("markedForDeletion").unwrap_or(false))
    }

    /// The payload's URI, if it is a file.
    pub fn uri(&self) -> Option<&str> {
        match &self.location {
            PayloadLocation::File { uri, .. } => Some(uri),
            PayloadLocation::Inline { .. } => None,
        }
    }
}

/// A payload URI in the form object stores and `url` read: Flink's `Path` writes
/// `file:/x` (no authority), they want `file:///x`; Hadoop's `s3a://` and `s3p://` are S3.
pub fn normalize_uri(uri: &str) -> String {
    let uri = uri.trim();
    if let Some(rest) = uri.strip_prefix("file:")
        && !rest.starts_with("//")
    {
        return format!("file://{rest}");
    }
    for alias in ["s3a://", "s3p://"] {
        if let Some(rest) = uri.strip_prefix(alias) {
            return format!("s3://{rest}");
        }
    }
    uri.to_owned()
}

/// What a completed checkpoint's payload says: the facts a manual restore needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompletedCheckpointInfo {
    /// The checkpoint id.
    pub checkpoint_id: i64,
    /// The job (32 hex digits).
    pub job_id: Option<String>,
    /// When it was triggered (Unix ms).
    pub timestamp_ms: Option<i64>,
    /// When it completed (Unix ms).
    pub completion_timestamp_ms: Option<i64>,
    /// The external pointer: the `chk-N` directory to restore from (`flink run -s`).
    pub external_pointer: Option<String>,
    /// The `_metadata` file inside it, from the metadata handle.
    pub metadata_uri: Option<String>,
}

/// What an execution-plan payload says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecutionPlanInfo {
    /// The plan's class (`…StreamGraph`, `…JobGraph`).
    pub class: String,
    /// The job (32 hex digits).
    pub job_id: Option<String>,
    /// The job's name.
    pub job_name: Option<String>,
}

/// Reads a completed checkpoint's payload file (a Java-serialized `CompletedCheckpoint`).
pub fn read_completed_checkpoint(bytes: &[u8]) -> Result<CompletedCheckpointInfo, StateReadError> {
    let stream = JavaStream::parse(bytes)?;
    let root = root_object(&stream, "CompletedCheckpoint")?;
    if root.class_name() != COMPLETED_CHECKPOINT_CLASS {
        return Err(StateReadError::UnexpectedClass {
            found: root.class_name().to_owned(),
            expected: "CompletedCheckpoint",
        });
    }
    let checkpoint_id = root
        .long_field("checkpointID")
        .ok_or_else(|| missing(&root, "checkpointID"))?;
    let metadata_uri = match root.object_field("metadataHandle") {
        Some(handle) => match stream_handle_location(&handle) {
            Ok(PayloadLocation::File { uri, .. }) => Some(uri),
            _ => None,
        },
        None => None,
    };
    Ok(CompletedCheckpointInfo {
        checkpoint_id,
        job_id: root.object_field("job").and_then(|job| abstract_id_hex(&job)),
        timestamp_ms: root.long_field("timestamp"),
        completion_timestamp_ms: root.long_field("completionTimestamp"),
        external_pointer: root.string_field("externalPointer").map(str::to_owned),
        metadata_uri,
    })
}

/// Reads an execution-plan payload file (a Java-serialized `StreamGraph` or `JobGraph`).
pub fn read_execution_plan(bytes: &[u8]) -> Result<ExecutionPlanInfo, StateReadError> {
    let stream = JavaStream::parse(bytes)?;
    let root = root_object(&stream, "ExecutionPlan")?;
    let class = root.class_name();
    if !class.starts_with("org.apache.flink.") {
        return Err(StateReadError::UnexpectedClass {
            found: class.to_owned(),
            expected: "StreamGraph or JobGraph",
        });
    }
    let job_id = ["jobID", "jobId", "jobID_"]
        .iter()
        .find_map(|f| root.object_field(f))
        .and_then(|job| abstract_id_hex(&job));
    Ok(ExecutionPlanInfo {
        class: class.to_owned(),
        job_id,
        job_name: root.string_field("jobName").map(str::to_owned),
    })
}

fn root_object<'s>(stream: &'s JavaStream, expected: &'static str) -> Result<ObjectView<'s>, StateReadError> {
    stream.root().ok_or(StateReadError::UnexpectedClass {
        found: "stream without an object".to_owned(),
        expected,
    })
}

fn missing(object: &ObjectView<'_>, field: &'static str) -> StateReadError {
    StateReadError::MissingField {
        class: object.class_name().to_owned(),
        field,
    }
}

fn required_object<'s>(object: &ObjectView<'s>, field: &'static str) -> Result<ObjectView<'s>, StateReadError> {
    object.object_field(field).ok_or_else(|| missing(object, field))
}

/// A `StreamStateHandle`: a file (absolute or relative) or bytes inline.
fn stream_handle_location(handle: &ObjectView<'_>) -> Result<PayloadLocation, StateReadError> {
    match handle.class_name() {
        FILE_HANDLE_CLASS | RELATIVE_FILE_HANDLE_CLASS => {
            let path = required_object(handle, "filePath")?;
            let uri = path
                .object_field("uri")
                .and_then(|uri| uri.string_field("string"))
                .ok_or_else(|| missing(&path, "uri"))?;
            Ok(PayloadLocation::File {
                uri: uri.to_owned(),
                size: handle.long_field("stateSize").and_then(|s| u64::try_from(s).ok()),
            })
        }
        BYTE_STREAM_HANDLE_CLASS => {
            let data = handle
                .field("data")
                .and_then(|v| handle.stream().byte_array(v))
                .ok_or_else(|| missing(handle, "data"))?;
            Ok(PayloadLocation::Inline {
                name: handle.string_field("handleName").unwrap_or("").to_owned(),
                size: data.len() as u64,
            })
        }
        other => Err(StateReadError::UnexpectedClass {
            found: other.to_owned(),
            expected: "FileStateHandle or ByteStreamStateHandle",
        }),
    }
}

/// Flink's `AbstractID` (`JobID`) as its 32 hex digits: the lower part's bytes, then the
/// upper part's (`AbstractID.toHexString`).
fn abstract_id_hex(id: &ObjectView<'_>) -> Option<String> {
    let lower = id.long_field("lowerPart")?;
    let upper = id.long_field("upperPart")?;
    Some(format!("{:016x}{:016x}", lower as u64, upper as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPTURE: &str = include_str!("../tests/real-flink/capture-2.3/configmaps-after-recovery.yaml");

    /// The value of `key` in the capture's `kubectl get cm -o yaml` (one line each).
    fn captured_value(key: &str) -> &'static str {
        CAPTURE
            .lines()
            .find_map(|line| line.trim().strip_prefix(key)?.strip_prefix(": "))
            .unwrap()
    }

    #[test]
    fn a_real_flink_checkpoint_pointer_decodes_to_its_payload_uri_and_size() {
        let pointer = HaPointer::decode(captured_value("checkpointID-0000000000000000066")).unwrap();
        assert_eq!(pointer.format, PointerFormat::FlinkJava);
        assert!(!pointer.marked_for_deletion);
        assert_eq!(
            pointer.location,
            PayloadLocation::File {
                uri: "file:/var/flink-data/ha/default/completedCheckpointe31c6049fc69".into(),
                size: Some(8817),
            }
        );
        let plan = HaPointer::decode(captured_value("executionPlan-25fc957960a1789dd1ef3466290fa995")).unwrap();
        assert_eq!(
            plan.uri(),
            Some("file:/var/flink-data/ha/default/submittedExecutionPlan0036a6a2eccb")
        );
    }

    #[test]
    fn a_real_flink_completed_checkpoint_names_its_external_pointer() {
        let info = read_completed_checkpoint(include_bytes!(
            "../tests/real-flink/capture-2.3/completedCheckpointe31c6049fc69"
        ))
        .unwrap();
        assert_eq!(info.checkpoint_id, 66);
        assert_eq!(info.job_id.as_deref(), Some("25fc957960a1789dd1ef3466290fa995"));
        assert_eq!(
            info.external_pointer.as_deref(),
            Some("file:/var/flink-data/ckpt/25fc957960a1789dd1ef3466290fa995/chk-66")
        );
        assert_eq!(
            info.metadata_uri.as_deref(),
            Some("file:/var/flink-data/ckpt/25fc957960a1789dd1ef3466290fa995/chk-66/_metadata")
        );
        assert!(info.completion_timestamp_ms >= info.timestamp_ms);
    }

    #[test]
    fn a_real_flink_execution_plan_names_its_job() {
        let info = read_execution_plan(include_bytes!(
            "../tests/real-flink/capture-2.3/submittedExecutionPlan0036a6a2eccb"
        ))
        .unwrap();
        assert_eq!(info.class, "org.apache.flink.streaming.api.graph.StreamGraph");
        assert_eq!(info.job_id.as_deref(), Some("25fc957960a1789dd1ef3466290fa995"));
        assert!(info.job_name.is_some());
    }

    #[test]
    fn flink_paths_and_hadoop_schemes_normalise() {
        assert_eq!(normalize_uri("file:/var/ha/x"), "file:///var/ha/x");
        assert_eq!(normalize_uri("file:///var/ha/x"), "file:///var/ha/x");
        assert_eq!(normalize_uri("s3a://b/ha"), "s3://b/ha");
        assert_eq!(normalize_uri("gs://b/ha"), "gs://b/ha");
    }

    #[test]
    fn runtime_json_pointers_and_broken_values_are_told_apart() {
        let own = HaPointer::decode(r#"{"path":"s3://b/ha/default/completedCheckpoint0123","markedForDeletion":true}"#)
            .unwrap();
        assert_eq!(own.format, PointerFormat::FlinkHaJson);
        assert!(own.marked_for_deletion);
        assert!(matches!(
            HaPointer::decode("not base64!"),
            Err(StateReadError::Base64(_))
        ));
        assert!(matches!(HaPointer::decode("aGVsbG8="), Err(StateReadError::Stream(_))));
        assert!(matches!(HaPointer::decode("{\"x\":1}"), Err(StateReadError::Json(_))));
        assert!(matches!(
            HaPointer::decode_entry("flink-ha.checkpointID-0000000000000000007", "path=s3://b/x"),
            Err(StateReadError::Json(_))
        ));
        // A real pointer cut short anywhere is an error, never a panic.
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(captured_value("checkpointID-0000000000000000066"))
            .unwrap();
        for len in 0..bytes.len() {
            assert!(HaPointer::decode_java(&bytes[..len]).is_err(), "prefix {len}");
        }
    }
}
