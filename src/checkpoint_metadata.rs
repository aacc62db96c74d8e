//! A bounded reader of Flink's checkpoint metadata file: the `_metadata` in a `chk-N`
//! directory, and in a savepoint's directory, that `flink run -s` restores from. It says which
//! operators a checkpoint holds and every file their state lives in, so a caller can check that
//! a checkpoint is whole (every file it names is there) before restoring from it. Pure, like
//! the rest of the core: the caller brings the bytes.
//!
//! # The format
//!
//! `Checkpoints.storeCheckpointMetadata` writes, with `java.io.DataOutputStream` (big-endian;
//! strings as `writeUTF`: a 2-byte length, then modified UTF-8):
//!
//! ```text
//! file       := magic:i32 = 0x4960672d  version:i32  body
//! body       := checkpointId:i64  masters:i32 master*  operators:i32 operator*  [properties]
//! master     := 0xc96b1696:i32  len:i32  { version:i32 name:utf len:i32 bytes }
//! operator   := [name:utf uid:utf]   (version 5 and later; "" when unset)
//!               operatorId:16 bytes  parallelism:i32  maxParallelism:i32
//!               coordinatorState:stream-handle (null or bytes)
//!               subtasks:i32 (negative: the operator finished)  subtask*
//! subtask    := index:i32 (negative: -index-1, finished, nothing follows)
//!               hasManaged:i32 [operator-handle]  hasRaw:i32 [operator-handle]
//!               managedKeyed:keyed-handle  rawKeyed:keyed-handle
//!               inputChannels:i32 channel*  resultSubpartitions:i32 channel*
//! properties := a Java-serialized CheckpointProperties (version 4 and later)
//! ```
//!
//! Each handle starts with a type byte (`MetadataV2V3SerializerBase`): stream handles are a
//! file by URI (2), a file relative to the checkpoint directory (6), bytes inline (1), a
//! segment of a merged file (15, 16 empty); keyed handles are key groups (3, 12, 7 for a
//! savepoint), RocksDB incremental (5, 11) and the changelog backend's (8, 14, 9, 10, 13);
//! operator handles are 4, and 17 for file merging.
//!
//! Which Flink writes which version, all read here (what `Checkpoints` writes, per release;
//! the handle types per `MetadataV2V3SerializerBase` at the same point):
//!
//! | version | written by | adds |
//! |---|---|---|
//! | 3 | 1.15 | (the base; handle types 0–12) |
//! | 4 | 1.16 – 1.20 | `CheckpointProperties` at the end; handle types 13, 14 (1.16), 15–17 (1.20) |
//! | 5 | 2.0 | operator name and uid |
//! | 6 | 2.1 – 2.3 | channel state handles with a type byte, and merged channel state (`ChannelStateHandleSerializerV2`) |
//!
//! Versions 1 and 2 (Flink 1.10 and older) and anything newer than 6 are refused with
//! [`MetadataError::UnsupportedVersion`]; a handle type this reader does not know is an
//! error naming the byte and its offset, never a guess.
//!
//! # Bounds
//!
//! The input is whatever sits in a checkpoint directory, so the reader is bounded by
//! construction, like [`java_serial`](crate::java_serial): at most [`MAX_METADATA_BYTES`];
//! every length and count is checked against the bytes left (each element costs at least one
//! byte) before anything is allocated, so memory is linear in the input; nesting (changelog
//! handles hold keyed handles, key-group handles hold stream handles) is limited to
//! [`MAX_DEPTH`]; every error names the byte offset and what was expected there.
//!
//! # Paths
//!
//! Flink writes a file's path as a string: an absolute URI (`file:/…`, `s3://…`), or a bare
//! file name for a relative handle, which Flink resolves against the directory the
//! `_metadata` was read from. Flink 2.3 writes the files in the checkpoint's own directory
//! (`chk-N/`: full keyed state, operator state, RocksDB's meta data file) as relative
//! handles, and RocksDB's shared and private files (under `shared/`) as absolute ones; state
//! under the inline threshold has no file at all. The format does not record the directory
//! (Flink's external pointer): the caller knows it, and [`Location::resolve`] joins the two.

use std::collections::BTreeSet;

use serde::Serialize;
use thiserror::Error;

use crate::java_serial::{Entry, JavaStream, JavaStreamError, Value};

/// Largest metadata file accepted: 64 MiB. A checkpoint of a large job is a few MiB (inline
/// state is bounded by `execution.checkpointing.data-inline-threshold`, 20 KiB a handle by
/// default); a bigger file is refused, not read.
pub const MAX_METADATA_BYTES: usize = 64 << 20;

/// Deepest nesting of handles accepted. Flink nests at most three deep (a changelog handle
/// holding a key-groups handle holding its stream handle).
pub const MAX_DEPTH: usize = 32;

/// The first four bytes of every metadata file (`Checkpoints.HEADER_MAGIC_NUMBER`).
pub const MAGIC: u32 = 0x4960_672D;

/// The format versions this reader knows: what Flink 1.15 through 2.3 write.
pub const SUPPORTED_VERSIONS: std::ops::RangeInclusive<u32> = 3..=6;

const MASTER_STATE_MAGIC: u32 = 0xC96B_1696;

// Handle type bytes (`MetadataV2V3SerializerBase`).
const NULL_HANDLE: u8 = 0;
const BYTE_STREAM_STATE_HANDLE: u8 = 1;
const FILE_STREAM_STATE_HANDLE: u8 = 2;
const KEY_GROUPS_HANDLE: u8 = 3;
const PARTITIONABLE_OPERATOR_STATE_HANDLE: u8 = 4;
const INCREMENTAL_KEY_GROUPS_HANDLE: u8 = 5;
const RELATIVE_STREAM_STATE_HANDLE: u8 = 6;
const SAVEPOINT_KEY_GROUPS_HANDLE: u8 = 7;
const CHANGELOG_HANDLE: u8 = 8;
const CHANGELOG_BYTE_INCREMENT_HANDLE: u8 = 9;
const CHANGELOG_FILE_INCREMENT_HANDLE: u8 = 10;
const INCREMENTAL_KEY_GROUPS_HANDLE_V2: u8 = 11;
const KEY_GROUPS_HANDLE_V2: u8 = 12;
const CHANGELOG_FILE_INCREMENT_HANDLE_V2: u8 = 13;
const CHANGELOG_HANDLE_V2: u8 = 14;
const SEGMENT_FILE_HANDLE: u8 = 15;
const EMPTY_SEGMENT_FILE_HANDLE: u8 = 16;
const SEGMENT_PARTITIONABLE_OPERATOR_STATE_HANDLE: u8 = 17;

// Channel state handle type bytes (`ChannelStateHandleSerializerV2`, version 6).
const INPUT_CHANNEL_STATE_HANDLE: u8 = 1;
const RESULT_SUBPARTITION_STATE_HANDLE: u8 = 2;
const MERGED_INPUT_CHANNEL_STATE_HANDLE: u8 = 3;
const MERGED_RESULT_SUBPARTITION_STATE_HANDLE: u8 = 4;

const CHECKPOINT_PROPERTIES_CLASS: &str = "org.apache.flink.runtime.checkpoint.CheckpointProperties";
const CHECKPOINT_TYPE_CLASS: &str = "org.apache.flink.runtime.checkpoint.CheckpointType";
const SAVEPOINT_TYPE_CLASS: &str = "org.apache.flink.runtime.checkpoint.SavepointType";

/// Why a metadata file could not be read. `offset` is the byte where reading stopped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MetadataError {
    /// The file is longer than [`MAX_METADATA_BYTES`].
    #[error("metadata file of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Length of the file.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The file does not start with Flink's magic number.
    #[error("not a Flink checkpoint metadata file (starts with 0x{found:08x}, not 0x4960672d)")]
    NotMetadata {
        /// The first four bytes (fewer are zero-padded).
        found: u32,
    },
    /// A format version this reader does not know.
    #[error("metadata format version {version} is not supported (this reader knows 3 to 6: Flink 1.15 to 2.3)")]
    UnsupportedVersion {
        /// The version the file declares.
        version: i32,
    },
    /// The file ends inside an element.
    #[error("metadata ends early at byte {offset} (expected {expected})")]
    Truncated {
        /// Byte offset.
        offset: usize,
        /// What was being read.
        expected: &'static str,
    },
    /// A length or count larger than the bytes left could hold.
    #[error("{what} at byte {offset} claims {length} elements, more than the {left} bytes left can hold")]
    LengthPastEnd {
        /// Byte offset of the length field.
        offset: usize,
        /// What it counts.
        what: &'static str,
        /// The length read.
        length: i64,
        /// Bytes left after it.
        left: usize,
    },
    /// A value Flink never writes there (a negative count, a bad ordinal, a wrong magic).
    #[error("invalid {what} {value} at byte {offset}")]
    Invalid {
        /// Byte offset.
        offset: usize,
        /// What was read.
        what: &'static str,
        /// The value found.
        value: i64,
    },
    /// A string that is not modified UTF-8.
    #[error("malformed modified UTF-8 in {what} at byte {offset}")]
    BadString {
        /// Byte offset of the string's length.
        offset: usize,
        /// What the string is.
        what: &'static str,
    },
    /// A handle type byte this reader does not know at this place.
    #[error("unknown {context} type {type_byte} at byte {offset}")]
    UnknownHandle {
        /// Byte offset of the type byte.
        offset: usize,
        /// The type byte.
        type_byte: u8,
        /// Which kind of handle was expected.
        context: &'static str,
    },
    /// Handles nested deeper than [`MAX_DEPTH`].
    #[error("state handles nested deeper than {MAX_DEPTH} at byte {offset}")]
    TooDeep {
        /// Byte offset.
        offset: usize,
    },
    /// The checkpoint properties (version 4 and later) are not a readable Java stream.
    #[error("checkpoint properties at byte {offset} are not readable: {source}")]
    Properties {
        /// Byte offset where the properties start.
        offset: usize,
        /// The stream reader's error (its offsets count from `offset`).
        source: JavaStreamError,
    },
    /// The checkpoint properties hold something Flink does not write there.
    #[error("checkpoint properties at byte {offset} hold {found} where Flink writes a CheckpointProperties")]
    PropertiesClass {
        /// Byte offset where the properties start.
        offset: usize,
        /// What was found.
        found: String,
    },
    /// Bytes after the end of the metadata.
    #[error("{count} unexpected bytes after the end of the metadata at byte {offset}")]
    TrailingBytes {
        /// Byte offset where the metadata ended.
        offset: usize,
        /// How many bytes follow.
        count: usize,
    },
}

/// A checkpoint's (or savepoint's) metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointMetadata {
    /// The format version (3 to 6).
    pub version: u32,
    /// The checkpoint id (`N` of `chk-N`).
    pub checkpoint_id: u64,
    /// How many master (JobManager-side hook) states it holds.
    pub master_states: usize,
    /// The operators' states, in file order.
    pub operators: Vec<OperatorState>,
    /// The checkpoint's properties: whether it is a checkpoint or a savepoint, and of which
    /// kind. Written from version 4 on; `None` in version 3.
    pub properties: Option<CheckpointProperties>,
}

/// What `CheckpointProperties` says about the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckpointProperties {
    /// Checkpoint or savepoint.
    pub kind: SnapshotKind,
    /// Flink's name for the type: `Checkpoint`, `Full Checkpoint`, `Savepoint`,
    /// `Suspend Savepoint`, `Terminate Savepoint`.
    pub name: Option<String>,
    /// For a checkpoint, how it shares files with others (`FORWARD_BACKWARD` for an
    /// incremental checkpoint, `FORWARD` for a full one, `NO_SHARING`).
    pub sharing_files_strategy: Option<String>,
    /// For a savepoint, its format (`CANONICAL`, `NATIVE`).
    pub savepoint_format: Option<String>,
    /// Whether it was triggered by hand (`forced`).
    pub forced: Option<bool>,
}

/// Checkpoint or savepoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotKind {
    /// A checkpoint (`CheckpointType`).
    Checkpoint,
    /// A savepoint (`SavepointType`).
    Savepoint,
}

/// One operator's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperatorState {
    /// The operator id, 32 hex digits as Flink prints it (`OperatorID.toHexString`).
    pub operator_id: String,
    /// The operator's name (version 5 and later, when set).
    pub name: Option<String>,
    /// The operator's uid (version 5 and later, when set).
    pub uid: Option<String>,
    /// Its parallelism.
    pub parallelism: i32,
    /// Its maximum parallelism (the number of key groups).
    pub max_parallelism: i32,
    /// The operator coordinator's state, if it has one: its size in bytes (always inline).
    pub coordinator_state: Option<u64>,
    /// Whether every subtask of the operator had finished (no subtask states follow).
    pub fully_finished: bool,
    /// The subtasks' states, in file order.
    pub subtasks: Vec<SubtaskState>,
}

/// One subtask's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubtaskState {
    /// The subtask index.
    pub index: u32,
    /// Whether the subtask had finished (it then holds no state).
    pub finished: bool,
    /// Its state handles, in file order.
    pub handles: Vec<StateHandle>,
}

/// A state handle of a subtask and the files it references.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateHandle {
    /// Which of the subtask's states it is.
    pub slot: StateSlot,
    /// Which Flink handle it is (its type byte).
    pub handle_type: HandleType,
    /// The key groups it covers (keyed handles).
    pub key_groups: Option<KeyGroupRange>,
    /// The handle's id, where the format records it (keyed handles of the newer types).
    pub state_handle_id: Option<String>,
    /// Its checkpointed (incremental) size, where the format records it.
    pub checkpointed_size: Option<i64>,
    /// Every file it references, and inline data, in file order. A changelog handle's list
    /// holds the files of the handles inside it. Channel state handles of one subtask share
    /// one file, which each of them lists.
    pub files: Vec<StateFile>,
}

/// Which of a subtask's states a handle is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StateSlot {
    /// Managed operator state.
    ManagedOperator,
    /// Raw operator state.
    RawOperator,
    /// Managed keyed state.
    ManagedKeyed,
    /// Raw keyed state.
    RawKeyed,
    /// In-flight data of an input channel (unaligned checkpoints).
    InputChannel,
    /// In-flight data of a result subpartition (unaligned checkpoints).
    ResultSubpartition,
}

/// Which Flink handle a [`StateHandle`] is, by its type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HandleType {
    /// 3: `KeyGroupsStateHandle` (full snapshot, before 1.15).
    KeyGroups,
    /// 12: `KeyGroupsStateHandle` with its id (full snapshot: hashmap backend, RocksDB full).
    KeyGroupsV2,
    /// 7: `KeyGroupsSavepointStateHandle` (canonical savepoint).
    SavepointKeyGroups,
    /// 5: `IncrementalRemoteKeyedStateHandle` (RocksDB incremental).
    Incremental,
    /// 11: `IncrementalRemoteKeyedStateHandle` with checkpointed size and id.
    IncrementalV2,
    /// 8: `ChangelogStateBackendHandle`.
    Changelog,
    /// 14: `ChangelogStateBackendHandle` with its checkpoint id.
    ChangelogV2,
    /// 9: `InMemoryChangelogStateHandle` (changes inline).
    ChangelogBytes,
    /// 10: `ChangelogStateHandleStreamImpl` (changelog files).
    ChangelogFile,
    /// 13: `ChangelogStateHandleStreamImpl` with its storage identifier.
    ChangelogFileV2,
    /// 4: `OperatorStreamStateHandle`.
    OperatorStream,
    /// 17: `FileMergingOperatorStreamStateHandle` (file merging, 1.20 and later).
    FileMergingOperatorStream,
    /// `InputChannelStateHandle` (type 1 in version 6).
    InputChannel,
    /// `ResultSubpartitionStateHandle` (type 2 in version 6).
    ResultSubpartition,
    /// 3 (version 6): `MergedInputChannelStateHandle`.
    MergedInputChannel,
    /// 4 (version 6): `MergedResultSubpartitionStateHandle`.
    MergedResultSubpartition,
}

/// A range of key groups: `count` groups from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct KeyGroupRange {
    /// The first key group.
    pub start: i32,
    /// How many (0: the empty range).
    pub count: i32,
}

/// A file a handle references, or its data inline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateFile {
    /// Where the bytes are.
    pub location: Location,
    /// The size Flink recorded: the file's state size, a segment's length, or the inline
    /// data's length.
    pub size: u64,
    /// What the file is to the checkpoint.
    pub kind: FileKind,
}

/// Where a state file's bytes are.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Location {
    /// A file by its absolute URI, as Flink wrote it (`file:/…`, `s3://…`).
    Uri {
        /// The URI.
        uri: String,
    },
    /// A file by its name in the checkpoint's own directory (the one holding `_metadata`).
    Relative {
        /// The file name.
        name: String,
    },
    /// A range of a file that several handles share (checkpoint file merging, 1.20 and
    /// later).
    Segment {
        /// The merged (physical) file's URI.
        uri: String,
        /// Where the range starts.
        start: u64,
        /// The logical file's id.
        logical_file_id: String,
        /// The merged file's scope: `exclusive` (the checkpoint's own) or `shared`.
        scope: SegmentScope,
    },
    /// No file: the bytes are in the metadata itself.
    Inline {
        /// The handle's name (often the path Flink would have written, had the state been
        /// larger than the inline threshold).
        name: String,
    },
}

/// The scope of a merged file's segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SegmentScope {
    /// Owned by one checkpoint.
    Exclusive,
    /// Shared between checkpoints.
    Shared,
}

/// What a file is to the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum FileKind {
    /// A file the checkpoint wrote for itself: full keyed state, operator state, channel
    /// state, or inline data.
    Exclusive,
    /// A RocksDB incremental checkpoint's shared file (an `.sst`), which an earlier
    /// checkpoint may have written and later ones go on using.
    Shared {
        /// The name it has in RocksDB's directory (`000042.sst`); Flink keys the shared file
        /// by it (the `StateHandleID` before 1.18, the local path from 1.18 on: the same
        /// string for RocksDB).
        local_name: String,
        /// The checkpoint that made the incremental handle holding it.
        checkpoint_id: i64,
        /// The RocksDB instance's id (a UUID).
        backend_id: String,
    },
    /// A RocksDB incremental checkpoint's private file (`MANIFEST-…`, `OPTIONS-…`,
    /// `CURRENT`), this checkpoint's own.
    Private {
        /// The name it has in RocksDB's directory.
        local_name: String,
    },
    /// A RocksDB incremental checkpoint's meta data (state names and serializers).
    Meta,
    /// A changelog file (the changelog backend's state changes, shared between checkpoints
    /// until the next materialization), read from `offset`.
    Changelog {
        /// Where this handle's changes start in the file.
        offset: i64,
        /// The changelog storage (`filesystem`, or `memory` for inline changes).
        storage: String,
    },
}

impl Location {
    /// The file's URI: as written for an absolute file or a segment, joined to
    /// `checkpoint_dir` (the directory holding `_metadata`, as Flink's external pointer
    /// names it) for a relative one, `None` for inline data.
    pub fn resolve(&self, checkpoint_dir: &str) -> Option<String> {
        match self {
            Location::Uri { uri } | Location::Segment { uri, .. } => Some(uri.clone()),
            Location::Relative { name } => Some(format!("{}/{name}", checkpoint_dir.trim_end_matches('/'))),
            Location::Inline { .. } => None,
        }
    }

    /// Whether the bytes are in a file (not inline).
    pub fn is_file(&self) -> bool {
        !matches!(self, Location::Inline { .. })
    }
}

impl CheckpointMetadata {
    /// Every file reference of every handle, with the operator and subtask holding it.
    pub fn files(&self) -> impl Iterator<Item = (&OperatorState, &SubtaskState, &StateHandle, &StateFile)> {
        self.operators.iter().flat_map(|op| {
            op.subtasks.iter().flat_map(move |subtask| {
                subtask
                    .handles
                    .iter()
                    .flat_map(move |handle| handle.files.iter().map(move |file| (op, subtask, handle, file)))
            })
        })
    }

    /// The distinct files the checkpoint needs (inline data left out), resolved against
    /// `checkpoint_dir` (see [`Location::resolve`]), sorted. What must exist for a restore
    /// from this checkpoint to find its state.
    pub fn required_uris(&self, checkpoint_dir: &str) -> Vec<String> {
        let set: BTreeSet<String> = self
            .files()
            .filter_map(|(_, _, _, file)| file.location.resolve(checkpoint_dir))
            .collect();
        set.into_iter().collect()
    }
}

/// Reads a metadata file (`_metadata`).
pub fn read(bytes: &[u8]) -> Result<CheckpointMetadata, MetadataError> {
    if bytes.len() > MAX_METADATA_BYTES {
        return Err(MetadataError::TooLarge {
            len: bytes.len(),
            max: MAX_METADATA_BYTES,
        });
    }
    let mut padded = [0u8; 4];
    for (slot, byte) in padded.iter_mut().zip(bytes) {
        *slot = *byte;
    }
    if bytes.len() < 4 || u32::from_be_bytes(padded) != MAGIC {
        return Err(MetadataError::NotMetadata {
            found: u32::from_be_bytes(padded),
        });
    }
    let mut r = Reader {
        bytes,
        pos: 4,
        depth: 0,
        version: 0,
    };
    let version_field = r.i32("the format version")?;
    let version = u32::try_from(version_field)
        .ok()
        .filter(|v| SUPPORTED_VERSIONS.contains(v))
        .ok_or(MetadataError::UnsupportedVersion { version: version_field })?;
    r.version = version;

    let id_offset = r.pos;
    let checkpoint_id = r.i64("the checkpoint id")?;
    let checkpoint_id = u64::try_from(checkpoint_id).map_err(|_| MetadataError::Invalid {
        offset: id_offset,
        what: "checkpoint id",
        value: checkpoint_id,
    })?;

    // A master state is at least its magic, length and 4 + 2 + 4 bytes of content.
    let master_states = r.count("master state count", 18)?;
    for _ in 0..master_states {
        r.master_state()?;
    }
    // An operator is at least 16 + 4 + 4 + 1 + 4 bytes.
    let operator_count = r.count("operator count", 29)?;
    let mut operators = Vec::with_capacity(operator_count);
    for _ in 0..operator_count {
        operators.push(r.operator()?);
    }
    let properties = if version >= 4 { Some(r.properties()?) } else { None };
    if r.pos < bytes.len() {
        return Err(MetadataError::TrailingBytes {
            offset: r.pos,
            count: bytes.len() - r.pos,
        });
    }
    Ok(CheckpointMetadata {
        version,
        checkpoint_id,
        master_states,
        operators,
        properties,
    })
}

struct Reader<'b> {
    bytes: &'b [u8],
    pos: usize,
    depth: usize,
    version: u32,
}

impl Reader<'_> {
    fn left(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize, expected: &'static str) -> Result<&[u8], MetadataError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(MetadataError::Truncated {
                offset: self.pos,
                expected,
            })?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, expected: &'static str) -> Result<[u8; N], MetadataError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, expected)?);
        Ok(out)
    }

    fn u8(&mut self, expected: &'static str) -> Result<u8, MetadataError> {
        Ok(self.array::<1>(expected)?[0])
    }

    fn i32(&mut self, expected: &'static str) -> Result<i32, MetadataError> {
        Ok(i32::from_be_bytes(self.array(expected)?))
    }

    fn i64(&mut self, expected: &'static str) -> Result<i64, MetadataError> {
        Ok(i64::from_be_bytes(self.array(expected)?))
    }

    fn bool(&mut self, expected: &'static str) -> Result<bool, MetadataError> {
        Ok(self.u8(expected)? != 0)
    }

    /// A non-negative size (`i64`): a state size, an offset.
    fn size(&mut self, what: &'static str) -> Result<u64, MetadataError> {
        let offset = self.pos;
        let value = self.i64(what)?;
        u64::try_from(value).map_err(|_| MetadataError::Invalid { offset, what, value })
    }

    /// `DataInput.readUTF`: a 2-byte length, then modified UTF-8.
    fn utf(&mut self, what: &'static str) -> Result<String, MetadataError> {
        let offset = self.pos;
        let len = u16::from_be_bytes(self.array(what)?);
        let bytes = self.take(usize::from(len), what)?;
        modified_utf8(bytes).ok_or(MetadataError::BadString { offset, what })
    }

    /// An `i32` count of elements each at least `min_bytes` long: negative counts and
    /// counts the bytes left cannot hold are errors, before anything is allocated.
    fn count(&mut self, what: &'static str, min_bytes: usize) -> Result<usize, MetadataError> {
        let offset = self.pos;
        let value = self.i32(what)?;
        let count = usize::try_from(value).map_err(|_| MetadataError::Invalid {
            offset,
            what,
            value: i64::from(value),
        })?;
        if count.saturating_mul(min_bytes.max(1)) > self.left() {
            return Err(MetadataError::LengthPastEnd {
                offset,
                what,
                length: i64::from(value),
                left: self.left(),
            });
        }
        Ok(count)
    }

    fn enter(&mut self) -> Result<(), MetadataError> {
        if self.depth >= MAX_DEPTH {
            return Err(MetadataError::TooDeep { offset: self.pos });
        }
        self.depth += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn master_state(&mut self) -> Result<(), MetadataError> {
        let offset = self.pos;
        let magic = self.i32("a master state's magic number")?;
        if magic as u32 != MASTER_STATE_MAGIC {
            return Err(MetadataError::Invalid {
                offset,
                what: "master state magic number",
                value: i64::from(magic),
            });
        }
        let len_offset = self.pos;
        let len = self.i32("a master state's length")?;
        if len <= 0 {
            return Err(MetadataError::Invalid {
                offset: len_offset,
                what: "master state length",
                value: i64::from(len),
            });
        }
        let end = self.pos.saturating_add(len as usize);
        if end > self.bytes.len() {
            return Err(MetadataError::LengthPastEnd {
                offset: len_offset,
                what: "master state",
                length: i64::from(len),
                left: self.left(),
            });
        }
        // The content, read within its own length: version, name, payload, nothing more.
        let mut inner = Reader {
            bytes: &self.bytes[..end],
            pos: self.pos,
            depth: self.depth,
            version: self.version,
        };
        inner.i32("a master state's version")?;
        inner.utf("a master state's name")?;
        let payload = inner.count("master state payload length", 1)?;
        inner.take(payload, "a master state's payload")?;
        if inner.pos != end {
            return Err(MetadataError::TrailingBytes {
                offset: inner.pos,
                count: end - inner.pos,
            });
        }
        self.pos = end;
        Ok(())
    }

    fn operator(&mut self) -> Result<OperatorState, MetadataError> {
        let (name, uid) = if self.version >= 5 {
            let name = self.utf("an operator's name")?;
            let uid = self.utf("an operator's uid")?;
            (
                Some(name).filter(|s| !s.is_empty()),
                Some(uid).filter(|s| !s.is_empty()),
            )
        } else {
            (None, None)
        };
        let id = self.array::<16>("an operator id")?;
        let operator_id = id.iter().map(|b| format!("{b:02x}")).collect();
        let parallelism = self.i32("an operator's parallelism")?;
        let max_parallelism = self.i32("an operator's maximum parallelism")?;
        let coordinator_offset = self.pos;
        let coordinator_state = match self.stream_handle("a coordinator state handle")? {
            None => None,
            Some(StreamHandle {
                location: Location::Inline { .. },
                size,
            }) => Some(size),
            Some(_) => {
                return Err(MetadataError::UnknownHandle {
                    offset: coordinator_offset,
                    type_byte: self.bytes.get(coordinator_offset).copied().unwrap_or(0),
                    context: "coordinator state handle (Flink writes inline bytes)",
                });
            }
        };
        let count_offset = self.pos;
        let subtask_count = self.i32("a subtask count")?;
        let mut state = OperatorState {
            operator_id,
            name,
            uid,
            parallelism,
            max_parallelism,
            coordinator_state,
            fully_finished: false,
            subtasks: Vec::new(),
        };
        if subtask_count < 0 {
            // `FullyFinishedOperatorState`: Flink checks it has no coordinator state.
            if state.coordinator_state.is_some() {
                return Err(MetadataError::Invalid {
                    offset: count_offset,
                    what: "subtask count of an operator with coordinator state",
                    value: i64::from(subtask_count),
                });
            }
            state.fully_finished = true;
            return Ok(state);
        }
        self.pos = count_offset;
        // A subtask is at least its index.
        let subtask_count = self.count("subtask count", 4)?;
        state.subtasks = Vec::with_capacity(subtask_count);
        for _ in 0..subtask_count {
            state.subtasks.push(self.subtask()?);
        }
        Ok(state)
    }

    fn subtask(&mut self) -> Result<SubtaskState, MetadataError> {
        let stored = self.i32("a subtask index")?;
        if stored < 0 {
            // Finished: `-index - 1`, no state follows.
            return Ok(SubtaskState {
                index: (-(i64::from(stored)) - 1) as u32,
                finished: true,
                handles: Vec::new(),
            });
        }
        let mut handles = Vec::new();
        for slot in [StateSlot::ManagedOperator, StateSlot::RawOperator] {
            if self.i32("an operator state flag")? != 0
                && let Some(handle) = self.operator_handle(slot)?
            {
                handles.push(handle);
            }
        }
        for slot in [StateSlot::ManagedKeyed, StateSlot::RawKeyed] {
            if let Some(handle) = self.keyed_handle(slot)? {
                handles.push(handle);
            }
        }
        for slot in [StateSlot::InputChannel, StateSlot::ResultSubpartition] {
            // A channel handle is at least 4 + 8 + 1 bytes.
            let count = self.count("channel state handle count", 13)?;
            handles.reserve(count);
            for _ in 0..count {
                handles.push(self.channel_handle(slot)?);
            }
        }
        Ok(SubtaskState {
            index: stored as u32,
            finished: false,
            handles,
        })
    }

    /// `deserializeOperatorStateHandle`.
    fn operator_handle(&mut self, slot: StateSlot) -> Result<Option<StateHandle>, MetadataError> {
        let type_offset = self.pos;
        let type_byte = self.u8("an operator state handle type")?;
        let handle_type = match type_byte {
            NULL_HANDLE => return Ok(None),
            PARTITIONABLE_OPERATOR_STATE_HANDLE => HandleType::OperatorStream,
            SEGMENT_PARTITIONABLE_OPERATOR_STATE_HANDLE => HandleType::FileMergingOperatorStream,
            other => {
                return Err(MetadataError::UnknownHandle {
                    offset: type_offset,
                    type_byte: other,
                    context: "operator state handle",
                });
            }
        };
        // A state entry is at least a 2-byte name, the mode and the offset count.
        let entries = self.count("operator state entry count", 7)?;
        for _ in 0..entries {
            self.utf("an operator state name")?;
            let mode_offset = self.pos;
            let mode = self.u8("a distribution mode")?;
            // SPLIT_DISTRIBUTE, UNION, BROADCAST.
            if mode > 2 {
                return Err(MetadataError::Invalid {
                    offset: mode_offset,
                    what: "distribution mode",
                    value: i64::from(mode),
                });
            }
            let offsets = self.count("partition offset count", 8)?;
            self.take(offsets * 8, "partition offsets")?;
        }
        let mut files = Vec::new();
        if handle_type == HandleType::FileMergingOperatorStream {
            self.utf("a task-owned directory")?;
            self.utf("a shared directory")?;
            self.bool("the empty flag")?;
            let delegate_offset = self.pos;
            match self.bytes.get(delegate_offset).copied() {
                Some(SEGMENT_FILE_HANDLE | EMPTY_SEGMENT_FILE_HANDLE) | None => {}
                Some(other) => {
                    return Err(MetadataError::UnknownHandle {
                        offset: delegate_offset,
                        type_byte: other,
                        context: "file-merging operator state delegate (Flink writes a segment)",
                    });
                }
            }
        }
        if let Some(delegate) = self.stream_handle("an operator state's stream handle")? {
            files.push(delegate.file(FileKind::Exclusive));
        }
        Ok(Some(StateHandle {
            slot,
            handle_type,
            key_groups: None,
            state_handle_id: None,
            checkpointed_size: None,
            files,
        }))
    }

    fn key_group_range(&mut self) -> Result<KeyGroupRange, MetadataError> {
        let start = self.i32("the first key group")?;
        let offset = self.pos;
        let count = self.i32("a key group count")?;
        if count < 0 {
            return Err(MetadataError::Invalid {
                offset,
                what: "key group count",
                value: i64::from(count),
            });
        }
        Ok(KeyGroupRange { start, count })
    }

    /// `deserializeKeyedStateHandle`.
    fn keyed_handle(&mut self, slot: StateSlot) -> Result<Option<StateHandle>, MetadataError> {
        self.enter()?;
        let result = self.keyed_handle_inner(slot);
        self.leave();
        result
    }

    fn keyed_handle_inner(&mut self, slot: StateSlot) -> Result<Option<StateHandle>, MetadataError> {
        let type_offset = self.pos;
        let type_byte = self.u8("a keyed state handle type")?;
        let mut handle = StateHandle {
            slot,
            handle_type: HandleType::KeyGroups,
            key_groups: None,
            state_handle_id: None,
            checkpointed_size: None,
            files: Vec::new(),
        };
        match type_byte {
            NULL_HANDLE => return Ok(None),
            KEY_GROUPS_HANDLE | KEY_GROUPS_HANDLE_V2 | SAVEPOINT_KEY_GROUPS_HANDLE => {
                handle.handle_type = match type_byte {
                    KEY_GROUPS_HANDLE => HandleType::KeyGroups,
                    KEY_GROUPS_HANDLE_V2 => HandleType::KeyGroupsV2,
                    _ => HandleType::SavepointKeyGroups,
                };
                let range = self.key_group_offsets()?;
                handle.key_groups = Some(range);
                if let Some(delegate) = self.stream_handle("a key-groups handle's stream handle")? {
                    handle.files.push(delegate.file(FileKind::Exclusive));
                }
                if type_byte == KEY_GROUPS_HANDLE_V2 {
                    handle.state_handle_id = Some(self.utf("a state handle id")?);
                }
            }
            INCREMENTAL_KEY_GROUPS_HANDLE | INCREMENTAL_KEY_GROUPS_HANDLE_V2 => {
                let v2 = type_byte == INCREMENTAL_KEY_GROUPS_HANDLE_V2;
                handle.handle_type = if v2 {
                    HandleType::IncrementalV2
                } else {
                    HandleType::Incremental
                };
                let checkpoint_id = self.i64("an incremental handle's checkpoint id")?;
                let backend_id = self.utf("a backend id")?;
                handle.key_groups = Some(self.key_group_range()?);
                if v2 {
                    handle.checkpointed_size = Some(self.i64("a checkpointed size")?);
                }
                if let Some(meta) = self.stream_handle("an incremental handle's meta data handle")? {
                    handle.files.push(meta.file(FileKind::Meta));
                }
                // An entry is at least a 2-byte name and a type byte.
                let shared = self.count("shared file count", 3)?;
                for _ in 0..shared {
                    let local_name = self.utf("a shared file's name")?;
                    if let Some(file) = self.stream_handle("a shared file's handle")? {
                        handle.files.push(file.file(FileKind::Shared {
                            local_name,
                            checkpoint_id,
                            backend_id: backend_id.clone(),
                        }));
                    }
                }
                let private = self.count("private file count", 3)?;
                for _ in 0..private {
                    let local_name = self.utf("a private file's name")?;
                    if let Some(file) = self.stream_handle("a private file's handle")? {
                        handle.files.push(file.file(FileKind::Private { local_name }));
                    }
                }
                if v2 {
                    handle.state_handle_id = Some(self.utf("a state handle id")?);
                }
            }
            CHANGELOG_HANDLE | CHANGELOG_HANDLE_V2 => {
                handle.handle_type = if type_byte == CHANGELOG_HANDLE_V2 {
                    HandleType::ChangelogV2
                } else {
                    HandleType::Changelog
                };
                handle.key_groups = Some(self.key_group_range()?);
                handle.checkpointed_size = Some(self.i64("a checkpointed size")?);
                // Materialized state: any keyed handles (Flink skips nulls).
                let materialized = self.count("materialized handle count", 1)?;
                for _ in 0..materialized {
                    if let Some(inner) = self.keyed_handle(slot)? {
                        handle.files.extend(inner.files);
                    }
                }
                // Changes since: changelog handles only.
                let deltas = self.count("changelog handle count", 1)?;
                for _ in 0..deltas {
                    let offset = self.pos;
                    match self.bytes.get(offset).copied() {
                        Some(
                            CHANGELOG_BYTE_INCREMENT_HANDLE
                            | CHANGELOG_FILE_INCREMENT_HANDLE
                            | CHANGELOG_FILE_INCREMENT_HANDLE_V2,
                        )
                        | None => {}
                        Some(other) => {
                            return Err(MetadataError::UnknownHandle {
                                offset,
                                type_byte: other,
                                context: "changelog state handle",
                            });
                        }
                    }
                    if let Some(inner) = self.keyed_handle(slot)? {
                        handle.files.extend(inner.files);
                    }
                }
                self.i64("a materialization id")?;
                if type_byte == CHANGELOG_HANDLE_V2 {
                    self.i64("a changelog handle's checkpoint id")?;
                }
                handle.state_handle_id = Some(self.utf("a state handle id")?);
            }
            CHANGELOG_BYTE_INCREMENT_HANDLE => {
                handle.handle_type = HandleType::ChangelogBytes;
                handle.key_groups = Some(self.key_group_range()?);
                let from = self.i64("a sequence number")?;
                self.i64("a sequence number")?;
                let changes = self.count("state change count", 8)?;
                let mut size = 0u64;
                for _ in 0..changes {
                    self.i32("a state change's key group")?;
                    let len = self.count("state change length", 1)?;
                    self.take(len, "a state change")?;
                    size = size.saturating_add(len as u64);
                }
                handle.state_handle_id = Some(self.utf("a state handle id")?);
                handle.files.push(StateFile {
                    location: Location::Inline { name: String::new() },
                    size,
                    kind: FileKind::Changelog {
                        offset: from,
                        storage: "memory".to_owned(),
                    },
                });
            }
            CHANGELOG_FILE_INCREMENT_HANDLE | CHANGELOG_FILE_INCREMENT_HANDLE_V2 => {
                handle.handle_type = if type_byte == CHANGELOG_FILE_INCREMENT_HANDLE_V2 {
                    HandleType::ChangelogFileV2
                } else {
                    HandleType::ChangelogFile
                };
                handle.key_groups = Some(self.key_group_range()?);
                // An entry is at least its offset and a type byte.
                let count = self.count("changelog file count", 9)?;
                let mut files = Vec::with_capacity(count);
                for _ in 0..count {
                    let offset = self.i64("a changelog offset")?;
                    if let Some(file) = self.stream_handle("a changelog file handle")? {
                        files.push((offset, file));
                    }
                }
                self.i64("a changelog handle's state size")?;
                handle.checkpointed_size = Some(self.i64("a checkpointed size")?);
                handle.state_handle_id = Some(self.utf("a state handle id")?);
                let storage = if type_byte == CHANGELOG_FILE_INCREMENT_HANDLE_V2 {
                    self.utf("a changelog storage identifier")?
                } else {
                    "filesystem".to_owned()
                };
                for (offset, file) in files {
                    handle.files.push(file.file(FileKind::Changelog {
                        offset,
                        storage: storage.clone(),
                    }));
                }
            }
            other => {
                return Err(MetadataError::UnknownHandle {
                    offset: type_offset,
                    type_byte: other,
                    context: "keyed state handle",
                });
            }
        }
        Ok(Some(handle))
    }

    /// A key group range and one offset per key group.
    fn key_group_offsets(&mut self) -> Result<KeyGroupRange, MetadataError> {
        let range = self.key_group_range()?;
        let offsets_at = self.pos;
        let count = range.count as usize;
        if count.saturating_mul(8) > self.left() {
            return Err(MetadataError::LengthPastEnd {
                offset: offsets_at.saturating_sub(4),
                what: "key group count",
                length: i64::from(range.count),
                left: self.left(),
            });
        }
        self.take(count * 8, "key group offsets")?;
        Ok(range)
    }

    /// An element of the input-channel or result-subpartition collection.
    fn channel_handle(&mut self, slot: StateSlot) -> Result<StateHandle, MetadataError> {
        let unmerged = match slot {
            StateSlot::InputChannel => HandleType::InputChannel,
            _ => HandleType::ResultSubpartition,
        };
        let handle_type = if self.version >= 6 {
            // `ChannelStateHandleSerializerV2`: a type byte first.
            let offset = self.pos;
            let type_byte = self.u8("a channel state handle type")?;
            match (slot, type_byte) {
                (StateSlot::InputChannel, INPUT_CHANNEL_STATE_HANDLE)
                | (StateSlot::ResultSubpartition, RESULT_SUBPARTITION_STATE_HANDLE) => unmerged,
                (StateSlot::InputChannel, MERGED_INPUT_CHANNEL_STATE_HANDLE) => HandleType::MergedInputChannel,
                (StateSlot::ResultSubpartition, MERGED_RESULT_SUBPARTITION_STATE_HANDLE) => {
                    HandleType::MergedResultSubpartition
                }
                (StateSlot::InputChannel, other) => {
                    return Err(MetadataError::UnknownHandle {
                        offset,
                        type_byte: other,
                        context: "input channel state handle",
                    });
                }
                (_, other) => {
                    return Err(MetadataError::UnknownHandle {
                        offset,
                        type_byte: other,
                        context: "result subpartition state handle",
                    });
                }
            }
        } else {
            unmerged
        };
        let mut files = Vec::new();
        if matches!(
            handle_type,
            HandleType::MergedInputChannel | HandleType::MergedResultSubpartition
        ) {
            self.i32("a subtask index")?;
            self.i64("a channel state size")?;
            if let Some(delegate) = self.stream_handle("a channel state's stream handle")? {
                files.push(delegate.file(FileKind::Exclusive));
            }
            let len = self.count("serialized channel offsets length", 1)?;
            self.take(len, "serialized channel offsets")?;
        } else {
            // `ChannelStateHandleSerializerV1`: subtask, the channel (two ints), offsets, size.
            self.i32("a subtask index")?;
            self.i32("a gate or partition index")?;
            self.i32("a channel or subpartition index")?;
            let offsets = self.count("channel offset count", 8)?;
            self.take(offsets * 8, "channel offsets")?;
            self.i64("a channel state size")?;
            if let Some(delegate) = self.stream_handle("a channel state's stream handle")? {
                files.push(delegate.file(FileKind::Exclusive));
            }
        }
        Ok(StateHandle {
            slot,
            handle_type,
            key_groups: None,
            state_handle_id: None,
            checkpointed_size: None,
            files,
        })
    }

    /// `deserializeStreamStateHandle`: where the bytes of one stream are.
    fn stream_handle(&mut self, expected: &'static str) -> Result<Option<StreamHandle>, MetadataError> {
        self.enter()?;
        let result = self.stream_handle_inner(expected);
        self.leave();
        result
    }

    fn stream_handle_inner(&mut self, expected: &'static str) -> Result<Option<StreamHandle>, MetadataError> {
        let type_offset = self.pos;
        let type_byte = self.u8(expected)?;
        Ok(match type_byte {
            NULL_HANDLE => None,
            FILE_STREAM_STATE_HANDLE => {
                let size = self.size("state size")?;
                let uri = self.utf("a file path")?;
                Some(StreamHandle {
                    location: Location::Uri { uri },
                    size,
                })
            }
            BYTE_STREAM_STATE_HANDLE => {
                let name = self.utf("a handle name")?;
                let len = self.count("inline state length", 1)?;
                self.take(len, "inline state")?;
                Some(StreamHandle {
                    location: Location::Inline { name },
                    size: len as u64,
                })
            }
            RELATIVE_STREAM_STATE_HANDLE => {
                let name = self.utf("a relative path")?;
                let size = self.size("state size")?;
                Some(StreamHandle {
                    location: Location::Relative { name },
                    size,
                })
            }
            KEY_GROUPS_HANDLE => {
                // A key-groups handle used as a stream (older incremental handles' shared
                // state): its delegate is where the bytes are.
                self.key_group_offsets()?;
                self.stream_handle("a key-groups handle's stream handle")?
            }
            SEGMENT_FILE_HANDLE => {
                let start = self.size("segment start")?;
                let size = self.size("state size")?;
                let scope_offset = self.pos;
                let scope = match self.i32("a segment scope")? {
                    0 => SegmentScope::Exclusive,
                    1 => SegmentScope::Shared,
                    other => {
                        return Err(MetadataError::Invalid {
                            offset: scope_offset,
                            what: "segment scope",
                            value: i64::from(other),
                        });
                    }
                };
                let uri = self.utf("a merged file path")?;
                let logical_file_id = self.utf("a logical file id")?;
                Some(StreamHandle {
                    location: Location::Segment {
                        uri,
                        start,
                        logical_file_id,
                        scope,
                    },
                    size,
                })
            }
            // `EmptySegmentFileStateHandle`: no bytes, no file.
            EMPTY_SEGMENT_FILE_HANDLE => None,
            other => {
                return Err(MetadataError::UnknownHandle {
                    offset: type_offset,
                    type_byte: other,
                    context: "stream state handle",
                });
            }
        })
    }

    /// The Java-serialized `CheckpointProperties` that ends version 4 and later.
    fn properties(&mut self) -> Result<CheckpointProperties, MetadataError> {
        let offset = self.pos;
        let rest = &self.bytes[offset..];
        let stream = JavaStream::parse(rest).map_err(|source| match source {
            JavaStreamError::NotJavaSerialization if rest.len() < 4 => MetadataError::Truncated {
                offset,
                expected: "the checkpoint properties",
            },
            source => MetadataError::Properties { offset, source },
        })?;
        let class_error = |found: String| MetadataError::PropertiesClass { offset, found };
        if stream.contents.is_empty() {
            // A stream cut right after its header.
            return Err(MetadataError::Truncated {
                offset: self.bytes.len(),
                expected: "the checkpoint properties",
            });
        }
        let root = stream.root().ok_or_else(|| class_error("no object".to_owned()))?;
        if root.class_name() != CHECKPOINT_PROPERTIES_CLASS {
            return Err(class_error(root.class_name().to_owned()));
        }
        if stream.contents.len() != 1 {
            return Err(class_error(format!(
                "{} objects (Flink writes one)",
                stream.contents.len()
            )));
        }
        let snapshot = root
            .object_field("checkpointType")
            .ok_or_else(|| class_error("a CheckpointProperties without its checkpointType".to_owned()))?;
        let kind = match snapshot.class_name() {
            CHECKPOINT_TYPE_CLASS => SnapshotKind::Checkpoint,
            SAVEPOINT_TYPE_CLASS => SnapshotKind::Savepoint,
            other => return Err(class_error(format!("a checkpointType of class {other}"))),
        };
        let enum_constant = |field: &str| -> Option<String> {
            let Some(Value::Entry(id)) = snapshot.field(field) else {
                return None;
            };
            match stream.entry(*id)? {
                Entry::Enum { constant, .. } => Some(constant.clone()),
                _ => None,
            }
        };
        self.pos = self.bytes.len();
        Ok(CheckpointProperties {
            kind,
            name: snapshot.string_field("name").map(str::to_owned),
            sharing_files_strategy: enum_constant("sharingFilesStrategy"),
            savepoint_format: enum_constant("formatType"),
            forced: root.bool_field("forced"),
        })
    }
}

/// A stream handle's location and recorded size, before its role is known.
struct StreamHandle {
    location: Location,
    size: u64,
}

impl StreamHandle {
    fn file(self, kind: FileKind) -> StateFile {
        StateFile {
            location: self.location,
            size: self.size,
            kind,
        }
    }
}

/// `DataInput.readUTF`'s modified UTF-8 (NUL as `C0 80`, supplementary characters as two
/// 3-byte surrogates); `None` where `readUTF` throws `UTFDataFormatException`.
fn modified_utf8(bytes: &[u8]) -> Option<String> {
    if bytes.is_ascii() {
        return std::str::from_utf8(bytes).ok().map(str::to_owned);
    }
    let mut units = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let continuation = |k: usize| bytes.get(i + k).copied().filter(|c| c & 0xC0 == 0x80);
        if b < 0x80 {
            units.push(u16::from(b));
            i += 1;
        } else if b & 0xE0 == 0xC0 {
            let c1 = continuation(1)?;
            units.push((u16::from(b & 0x1F) << 6) | u16::from(c1 & 0x3F));
            i += 2;
        } else if b & 0xF0 == 0xE0 {
            let c1 = continuation(1)?;
            let c2 = continuation(2)?;
            units.push((u16::from(b & 0x0F) << 12) | (u16::from(c1 & 0x3F) << 6) | u16::from(c2 & 0x3F));
            i += 3;
        } else {
            return None;
        }
    }
    // Java strings may hold unpaired surrogates; a path with one cannot name a file here.
    String::from_utf16(&units).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `chk-66/_metadata` of a real Flink 2.3.0 job (hashmap state backend).
    const REAL_2_3: &[u8] = include_bytes!("../tests/real-flink/capture-2.3/_metadata-chk-66");
    /// The checkpoint directory listed at the same moment.
    const REAL_LISTING: &str =
        include_str!("../tests/real-flink/capture-2.3/checkpoint-dir-listing-after-recovery.txt");
    /// Where the real file's Java-serialized `CheckpointProperties` start.
    const REAL_PROPERTIES_AT: usize = 0xE62;
    const CHK_66: &str = "file:/var/flink-data/ckpt/25fc957960a1789dd1ef3466290fa995/chk-66";

    /// The real file's properties: a Flink 2.3 `CheckpointProperties` of a checkpoint.
    fn checkpoint_properties() -> &'static [u8] {
        &REAL_2_3[REAL_PROPERTIES_AT..]
    }

    /// What Flink's `DataOutputStream` writes, call for call.
    #[derive(Default)]
    struct W(Vec<u8>);

    impl W {
        fn byte(&mut self, v: u8) -> &mut Self {
            self.0.push(v);
            self
        }
        fn int(&mut self, v: i32) -> &mut Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn long(&mut self, v: i64) -> &mut Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn utf(&mut self, s: &str) -> &mut Self {
            // ASCII only here: modified UTF-8 is plain bytes then.
            self.0.extend_from_slice(&(s.len() as u16).to_be_bytes());
            self.0.extend_from_slice(s.as_bytes());
            self
        }
        fn v(&mut self) -> Vec<u8> {
            std::mem::take(&mut self.0)
        }
        fn raw(&mut self, bytes: &[u8]) -> &mut Self {
            self.0.extend_from_slice(bytes);
            self
        }

        // Stream handles (`serializeStreamStateHandle`).
        fn file(&mut self, size: i64, path: &str) -> &mut Self {
            self.byte(2).long(size).utf(path)
        }
        fn relative(&mut self, name: &str, size: i64) -> &mut Self {
            self.byte(6).utf(name).long(size)
        }
        fn inline(&mut self, name: &str, data: &[u8]) -> &mut Self {
            self.byte(1).utf(name).int(data.len() as i32).raw(data)
        }
        fn segment(&mut self, start: i64, size: i64, scope: i32, path: &str, id: &str) -> &mut Self {
            self.byte(15).long(start).long(size).int(scope).utf(path).utf(id)
        }
        fn null(&mut self) -> &mut Self {
            self.byte(0)
        }

        /// Key group range and one offset per group.
        fn key_groups(&mut self, start: i32, count: i32) -> &mut Self {
            self.int(start).int(count);
            for i in 0..count {
                self.long(i64::from(i) * 10);
            }
            self
        }
        /// An operator state handle's map: one entry per mode.
        fn partition_offsets(&mut self) -> &mut Self {
            self.int(3);
            for (name, mode) in [("split", 0u8), ("union", 1), ("broadcast", 2)] {
                self.utf(name).byte(mode).int(2).long(0).long(7);
            }
            self
        }
    }

    /// A whole file: header, checkpoint id, one master state, the operators, properties.
    fn metadata(version: i32, operators: &[Vec<u8>]) -> Vec<u8> {
        let mut w = W::default();
        w.int(0x4960_672D).int(version).long(7);
        let mut master = W::default();
        master.int(1).utf("hook").int(3).raw(b"abc");
        w.int(1)
            .int(0xC96B_1696u32 as i32)
            .int(master.0.len() as i32)
            .raw(&master.0);
        w.int(operators.len() as i32);
        for op in operators {
            w.raw(op);
        }
        if version >= 4 {
            w.raw(checkpoint_properties());
        }
        w.0
    }

    /// An operator: name and uid from version 5, id, parallelism, coordinator state, subtasks.
    fn operator(version: i32, id_byte: u8, coordinator: bool, subtasks: &[Vec<u8>]) -> Vec<u8> {
        let mut w = W::default();
        if version >= 5 {
            w.utf("op").utf("");
        }
        w.raw(&[id_byte; 16]).int(subtasks.len() as i32).int(128);
        if coordinator {
            w.inline("coordinator", &[1, 2, 3]);
        } else {
            w.null();
        }
        w.int(subtasks.len() as i32);
        for s in subtasks {
            w.raw(s);
        }
        w.0
    }

    fn files_of(handle: &StateHandle) -> Vec<(Location, u64, FileKind)> {
        handle
            .files
            .iter()
            .map(|f| (f.location.clone(), f.size, f.kind.clone()))
            .collect()
    }

    fn uri(s: &str) -> Location {
        Location::Uri { uri: s.to_owned() }
    }

    #[test]
    fn the_real_flink_2_3_checkpoint_reads_whole() {
        let meta = read(REAL_2_3).unwrap();
        assert_eq!((meta.version, meta.checkpoint_id, meta.master_states), (6, 66, 0));
        let summary: Vec<_> = meta
            .operators
            .iter()
            .map(|op| {
                (
                    op.operator_id.as_str(),
                    op.name.as_deref(),
                    op.parallelism,
                    op.max_parallelism,
                    op.coordinator_state,
                    op.subtasks.len(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("20ba6b65f97481d5570070de90e4e791", Some("Map"), 1, 128, None, 1),
                (
                    "bc764cd8ddf7a0cff126f51c16239658",
                    Some("Source: generator"),
                    1,
                    128,
                    Some(16),
                    1
                ),
                (
                    "c09dc291fad93d575e015871097bfc60",
                    Some("Sink: Writer"),
                    1,
                    128,
                    None,
                    1
                ),
            ]
        );
        // The counter's ValueState: key groups 0..128 of the hashmap backend, and the
        // source's split state; both under the inline threshold, so inline.
        let map = &meta.operators[0].subtasks[0].handles[0];
        assert_eq!(map.slot, StateSlot::ManagedKeyed);
        assert_eq!(map.handle_type, HandleType::KeyGroupsV2);
        assert_eq!(map.key_groups, Some(KeyGroupRange { start: 0, count: 128 }));
        assert_eq!(
            map.state_handle_id.as_deref(),
            Some("6c3b7229-a253-4851-bd4a-8a61ce476a8e")
        );
        let inline = |name: &str| Location::Inline {
            name: format!("{CHK_66}/{name}"),
        };
        assert_eq!(
            files_of(map),
            [(
                inline("77077af3-debc-46cb-80e3-05d2b49fd697"),
                1817,
                FileKind::Exclusive
            )]
        );
        let source = &meta.operators[1].subtasks[0].handles[0];
        assert_eq!(
            (source.slot, source.handle_type),
            (StateSlot::ManagedOperator, HandleType::OperatorStream)
        );
        assert_eq!(
            files_of(source),
            [(inline("6d1bb41d-80f8-42c2-b6cc-552674dafd30"), 265, FileKind::Exclusive)]
        );
        assert!(meta.operators[2].subtasks[0].handles.is_empty());
        assert_eq!(
            meta.properties,
            Some(CheckpointProperties {
                kind: SnapshotKind::Checkpoint,
                name: Some("Checkpoint".to_owned()),
                sharing_files_strategy: Some("FORWARD_BACKWARD".to_owned()),
                savepoint_format: None,
                forced: Some(false),
            })
        );
    }

    #[test]
    fn the_real_checkpoint_needs_exactly_the_files_its_directory_listing_shows() {
        // The listing: `mtime size path` under the checkpoint storage's parent.
        let listed: Vec<(u64, &str)> = REAL_LISTING
            .lines()
            .filter_map(|line| {
                let mut parts = line.split_whitespace().skip(2);
                Some((parts.next()?.parse().ok()?, parts.next()?))
            })
            .collect();
        let chk_66 = "ckpt/25fc957960a1789dd1ef3466290fa995/chk-66/";
        let in_chk_66: Vec<_> = listed.iter().filter(|(_, p)| p.starts_with(chk_66)).collect();
        // Only `_metadata` is in chk-66, with this file's size...
        assert_eq!(
            in_chk_66,
            [&(
                REAL_2_3.len() as u64,
                "ckpt/25fc957960a1789dd1ef3466290fa995/chk-66/_metadata"
            )]
        );
        // ...and the metadata names no file besides itself: all its state is inline, and
        // the paths inline handles carry were never written.
        let meta = read(REAL_2_3).unwrap();
        assert!(meta.required_uris(CHK_66).is_empty());
        let names: Vec<_> = meta
            .files()
            .map(|(_, _, _, f)| match &f.location {
                Location::Inline { name } => name.strip_prefix("file:/var/flink-data/").unwrap().to_owned(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(names.len(), 2);
        assert!(
            names
                .iter()
                .all(|n| n.starts_with(chk_66) && !listed.iter().any(|(_, p)| p == n))
        );
    }

    /// The metadata as `MetadataOracle.java` prints what Flink's own deserializer reads:
    /// the same facts, in the same words.
    fn render(meta: &CheckpointMetadata) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(out, "checkpoint {} masters {}", meta.checkpoint_id, meta.master_states);
        if let Some(p) = &meta.properties {
            let _ = writeln!(
                out,
                "properties {} savepoint={}",
                p.name.as_deref().unwrap_or("-"),
                p.kind == SnapshotKind::Savepoint
            );
        }
        for op in &meta.operators {
            let _ = writeln!(
                out,
                "operator {} name={} uid={} parallelism={} max={} coordinator={} fully-finished={}",
                op.operator_id,
                op.name.as_deref().unwrap_or("-"),
                op.uid.as_deref().unwrap_or("-"),
                op.parallelism,
                op.max_parallelism,
                op.coordinator_state.map_or("-".to_owned(), |n| n.to_string()),
                op.fully_finished
            );
            let mut subtasks: Vec<_> = op.subtasks.iter().collect();
            subtasks.sort_by_key(|s| s.index);
            for subtask in subtasks {
                let _ = writeln!(out, "  subtask {} finished={}", subtask.index, subtask.finished);
                for handle in &subtask.handles {
                    let slot = serde_json::to_value(handle.slot).unwrap();
                    // Flink's classes: the type bytes' V2 variants are the same classes.
                    let class = match handle.handle_type {
                        HandleType::KeyGroups | HandleType::KeyGroupsV2 => "key-groups".to_owned(),
                        HandleType::Incremental | HandleType::IncrementalV2 => "incremental".to_owned(),
                        HandleType::Changelog | HandleType::ChangelogV2 => "changelog".to_owned(),
                        other => serde_json::to_value(other).unwrap().as_str().unwrap().to_owned(),
                    };
                    let _ = writeln!(out, "    {} {class}", slot.as_str().unwrap());
                    for file in &handle.files {
                        let kind = match &file.kind {
                            FileKind::Exclusive => "exclusive".to_owned(),
                            FileKind::Meta => "meta".to_owned(),
                            FileKind::Shared {
                                local_name,
                                checkpoint_id,
                                backend_id,
                            } => format!("shared:{local_name}:{checkpoint_id}:{backend_id}"),
                            FileKind::Private { local_name } => format!("private:{local_name}"),
                            FileKind::Changelog { offset, storage } => format!("changelog:{offset}:{storage}"),
                        };
                        let location = match &file.location {
                            Location::Uri { uri } => format!("uri:{uri}"),
                            Location::Relative { name } => format!("relative:{name}"),
                            Location::Inline { name } => format!("inline:{name}"),
                            Location::Segment {
                                uri,
                                start,
                                logical_file_id,
                                scope,
                            } => format!(
                                "segment:{uri}@{start}:{logical_file_id}:{}",
                                serde_json::to_value(scope).unwrap().as_str().unwrap()
                            ),
                        };
                        let _ = writeln!(out, "      {kind} {location} {}", file.size);
                    }
                }
            }
        }
        out
    }

    #[test]
    fn files_flink_2_3_serializes_read_as_flink_2_3_reads_them() {
        // `tests/real-flink/serializer-2.3`: one checkpoint with every handle type, written
        // by Flink 2.3.0's own serializer for each version, and what Flink's own
        // deserializer reads back from each file.
        let cases: [(u32, &[u8], &str); 4] = [
            (
                3,
                include_bytes!("../tests/real-flink/serializer-2.3/metadata-v3"),
                include_str!("../tests/real-flink/serializer-2.3/metadata-v3.flink.txt"),
            ),
            (
                4,
                include_bytes!("../tests/real-flink/serializer-2.3/metadata-v4"),
                include_str!("../tests/real-flink/serializer-2.3/metadata-v4.flink.txt"),
            ),
            (
                5,
                include_bytes!("../tests/real-flink/serializer-2.3/metadata-v5"),
                include_str!("../tests/real-flink/serializer-2.3/metadata-v5.flink.txt"),
            ),
            (
                6,
                include_bytes!("../tests/real-flink/serializer-2.3/metadata-v6"),
                include_str!("../tests/real-flink/serializer-2.3/metadata-v6.flink.txt"),
            ),
        ];
        for (version, bytes, flink) in cases {
            let meta = read(bytes).unwrap_or_else(|e| panic!("v{version}: {e}"));
            assert_eq!(meta.version, version);
            assert_eq!(render(&meta), flink, "v{version}");
            for len in 0..bytes.len() {
                assert!(read(&bytes[..len]).is_err(), "v{version} cut at {len}");
            }
        }
        let v5 = read(include_bytes!("../tests/real-flink/serializer-2.3/metadata-v5")).unwrap();
        assert_eq!(
            v5.properties,
            Some(CheckpointProperties {
                kind: SnapshotKind::Savepoint,
                name: Some("Savepoint".to_owned()),
                sharing_files_strategy: None,
                savepoint_format: Some("NATIVE".to_owned()),
                forced: Some(true),
            })
        );
        assert_eq!(
            render(&read(REAL_2_3).unwrap()),
            include_str!("../tests/real-flink/serializer-2.3/_metadata-chk-66.flink.txt")
        );
    }

    #[test]
    fn a_real_rocksdb_incremental_checkpoint_names_exactly_the_files_in_its_directory() {
        // `tests/real-flink/rocksdb-2.3`: two retained incremental checkpoints of a Flink 2.3
        // RocksDB job, and the listing of their checkpoint directory (`size path`).
        const LISTING: &str = include_str!("../tests/real-flink/rocksdb-2.3/checkpoint-dir-listing.txt");
        const ROOT: &str = "file:/tmp/rocks/ckpt/3fe5bf3fc560c9b1d6a3a258a235c6f6";
        let listed: Vec<(String, u64)> = LISTING
            .lines()
            .map(|line| {
                let (size, path) = line.split_once(' ').unwrap();
                let path = path.strip_prefix("3fe5bf3fc560c9b1d6a3a258a235c6f6").unwrap();
                (format!("{ROOT}{path}"), size.parse().unwrap())
            })
            .collect();
        let checkpoints: [(u64, &[u8], &str); 2] = [
            (
                8,
                include_bytes!("../tests/real-flink/rocksdb-2.3/_metadata-chk-8"),
                include_str!("../tests/real-flink/rocksdb-2.3/_metadata-chk-8.flink.txt"),
            ),
            (
                9,
                include_bytes!("../tests/real-flink/rocksdb-2.3/_metadata-chk-9"),
                include_str!("../tests/real-flink/rocksdb-2.3/_metadata-chk-9.flink.txt"),
            ),
        ];
        let mut named = BTreeSet::new();
        for (id, bytes, flink) in checkpoints {
            let meta = read(bytes).unwrap();
            assert_eq!((meta.version, meta.checkpoint_id), (6, id));
            assert_eq!(render(&meta), flink, "chk-{id}");
            let dir = format!("{ROOT}/chk-{id}");
            // Every file it names is there, with the size it records.
            for (_, _, _, file) in meta.files() {
                let uri = file.location.resolve(&dir).unwrap();
                let size = listed.iter().find(|(p, _)| *p == uri).map(|(_, s)| *s);
                assert_eq!(size, Some(file.size), "chk-{id}: {uri}");
            }
            // Its exclusive files are relative; RocksDB's files absolute, under shared/.
            let kinds: BTreeSet<_> = meta
                .files()
                .map(|(_, _, _, f)| match (&f.kind, &f.location) {
                    (FileKind::Shared { .. } | FileKind::Private { .. }, Location::Uri { uri }) => {
                        assert!(uri.starts_with(&format!("{ROOT}/shared/")), "{uri}");
                        "rocksdb"
                    }
                    (FileKind::Meta | FileKind::Exclusive, Location::Relative { .. }) => "own",
                    other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(kinds, BTreeSet::from(["own", "rocksdb"]));
            // Everything in chk-N besides `_metadata` is named by it.
            let required = meta.required_uris(&dir);
            let own: Vec<_> = listed
                .iter()
                .map(|(p, _)| p.clone())
                .filter(|p| p.starts_with(&format!("{dir}/")) && !p.ends_with("/_metadata"))
                .collect();
            assert_eq!(
                own,
                required
                    .iter()
                    .filter(|u| u.starts_with(&dir))
                    .cloned()
                    .collect::<Vec<_>>()
            );
            named.extend(required);
        }
        // And nothing else is in the directory: shared/ holds exactly what the two name.
        let unnamed: Vec<_> = listed
            .iter()
            .filter(|(p, _)| !p.ends_with("/_metadata") && !named.contains(p))
            .collect();
        assert!(unnamed.is_empty(), "{unnamed:?}");
        assert_eq!(named.len(), listed.len() - 2);
    }

    #[test]
    fn every_truncation_of_the_real_file_is_an_error() {
        for len in 0..REAL_2_3.len() {
            let err = read(&REAL_2_3[..len]).unwrap_err();
            match err {
                MetadataError::Truncated { offset, .. } | MetadataError::LengthPastEnd { offset, .. } => {
                    assert!(offset <= len, "{len}: {err}")
                }
                MetadataError::NotMetadata { .. } => assert!(len < 4),
                // Inside the properties: the Java stream reader's own truncation error.
                MetadataError::Properties { offset, .. } => assert_eq!(offset, REAL_PROPERTIES_AT, "{len}"),
                other => panic!("{len}: {other}"),
            }
        }
        assert!(read(REAL_2_3).is_ok());
        let mut longer = REAL_2_3.to_vec();
        longer.push(0);
        assert!(matches!(
            read(&longer),
            Err(MetadataError::Properties { .. } | MetadataError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn every_byte_of_the_real_file_changed_is_a_reading_or_an_error() {
        // Each byte set to values that make lengths huge, negative or zero, and type bytes
        // unknown: never a panic, and an error points inside the input.
        let mut bytes = REAL_2_3.to_vec();
        for at in 0..bytes.len() {
            let original = bytes[at];
            for value in [0x00, 0x01, 0x7F, 0x80, 0xFF, original.wrapping_add(1)] {
                bytes[at] = value;
                if let Ok(meta) = read(&bytes) {
                    assert!(read(&bytes[..bytes.len() - 1]).is_err(), "{at}: a prefix read too");
                    assert_eq!(meta.version, 6);
                }
            }
            bytes[at] = original;
        }
    }

    #[test]
    fn version_3_flink_1_15_with_every_handle_it_writes() {
        // Subtask 0: operator state (4) on a file, key groups (3) on a relative file, raw
        // keyed RocksDB incremental (5), one input channel and one result subpartition.
        let mut s0 = W::default();
        s0.int(0);
        s0.int(1).byte(4).partition_offsets().file(30, "s3://b/chk-7/op");
        s0.int(0);
        s0.byte(3).key_groups(0, 2).relative("kg", 20);
        s0.byte(5).long(5).utf("backend-uuid").int(2).int(2);
        s0.file(9, "s3://b/chk-5/meta");
        s0.int(2)
            .utf("000001.sst")
            .file(100, "s3://b/shared/a")
            .utf("000002.sst")
            .inline("x", b"yy");
        s0.int(1).utf("MANIFEST-000003").file(50, "s3://b/chk-5/m");
        s0.int(1)
            .int(0)
            .int(1)
            .int(2)
            .int(1)
            .long(0)
            .long(40)
            .file(40, "s3://b/chk-7/channel");
        s0.int(1)
            .int(0)
            .int(3)
            .int(4)
            .int(0)
            .long(40)
            .file(40, "s3://b/chk-7/channel");
        // Subtask 1: changelog (8): a key-groups handle materialized, changes in a file (10)
        // and inline (9); raw keyed is a key-groups handle whose stream is itself a
        // key-groups handle (3 as a stream handle).
        let mut s1 = W::default();
        s1.int(1).int(0).int(0);
        s1.byte(8).int(2).int(2).long(77);
        s1.int(2).byte(3).key_groups(2, 2).file(60, "s3://b/chk-6/kg").null();
        s1.int(2);
        s1.byte(10)
            .int(2)
            .int(2)
            .int(1)
            .long(12)
            .file(300, "s3://b/dstl/f1")
            .long(300)
            .long(30)
            .utf("cl-id");
        s1.byte(9)
            .int(2)
            .int(2)
            .long(1)
            .long(3)
            .int(1)
            .int(2)
            .int(4)
            .raw(b"abcd")
            .utf("mem-id");
        s1.long(4).utf("changelog-id");
        s1.byte(3)
            .key_groups(2, 2)
            .byte(3)
            .key_groups(2, 2)
            .file(8, "s3://b/chk-7/nested");
        s1.int(0).int(0);
        // Subtask 2 finished; a second operator fully finished.
        let mut s2 = W::default();
        s2.int(-3);
        let op = operator(3, 0xAB, true, &[s0.0, s1.0, s2.0]);
        let mut finished = W::default();
        finished.raw(&[0xCD; 16]).int(1).int(128).null().int(-1);
        let bytes = metadata(3, &[op, finished.0]);

        let meta = read(&bytes).unwrap();
        assert_eq!((meta.version, meta.checkpoint_id, meta.master_states), (3, 7, 1));
        assert_eq!(meta.properties, None);
        let op = &meta.operators[0];
        assert_eq!(op.operator_id, "ab".repeat(16));
        assert_eq!(
            (op.name.as_deref(), op.coordinator_state, op.fully_finished),
            (None, Some(3), false)
        );
        let s0 = &op.subtasks[0];
        let types: Vec<_> = s0.handles.iter().map(|h| (h.slot, h.handle_type)).collect();
        assert_eq!(
            types,
            [
                (StateSlot::ManagedOperator, HandleType::OperatorStream),
                (StateSlot::ManagedKeyed, HandleType::KeyGroups),
                (StateSlot::RawKeyed, HandleType::Incremental),
                (StateSlot::InputChannel, HandleType::InputChannel),
                (StateSlot::ResultSubpartition, HandleType::ResultSubpartition),
            ]
        );
        assert_eq!(
            files_of(&s0.handles[0]),
            [(uri("s3://b/chk-7/op"), 30, FileKind::Exclusive)]
        );
        assert_eq!(
            files_of(&s0.handles[1]),
            [(Location::Relative { name: "kg".into() }, 20, FileKind::Exclusive)]
        );
        assert_eq!(s0.handles[1].key_groups, Some(KeyGroupRange { start: 0, count: 2 }));
        let shared = |name: &str| FileKind::Shared {
            local_name: name.to_owned(),
            checkpoint_id: 5,
            backend_id: "backend-uuid".to_owned(),
        };
        assert_eq!(
            files_of(&s0.handles[2]),
            [
                (uri("s3://b/chk-5/meta"), 9, FileKind::Meta),
                (uri("s3://b/shared/a"), 100, shared("000001.sst")),
                (Location::Inline { name: "x".into() }, 2, shared("000002.sst")),
                (
                    uri("s3://b/chk-5/m"),
                    50,
                    FileKind::Private {
                        local_name: "MANIFEST-000003".into()
                    }
                ),
            ]
        );
        assert_eq!(
            (s0.handles[2].state_handle_id.as_ref(), s0.handles[2].checkpointed_size),
            (None, None)
        );
        assert_eq!(
            files_of(&s0.handles[3]),
            [(uri("s3://b/chk-7/channel"), 40, FileKind::Exclusive)]
        );

        let s1 = &op.subtasks[1];
        assert_eq!(s1.handles[0].handle_type, HandleType::Changelog);
        assert_eq!(s1.handles[0].state_handle_id.as_deref(), Some("changelog-id"));
        assert_eq!(
            files_of(&s1.handles[0]),
            [
                (uri("s3://b/chk-6/kg"), 60, FileKind::Exclusive),
                (
                    uri("s3://b/dstl/f1"),
                    300,
                    FileKind::Changelog {
                        offset: 12,
                        storage: "filesystem".into()
                    }
                ),
                (
                    Location::Inline { name: String::new() },
                    4,
                    FileKind::Changelog {
                        offset: 1,
                        storage: "memory".into()
                    }
                ),
            ]
        );
        assert_eq!(
            files_of(&s1.handles[1]),
            [(uri("s3://b/chk-7/nested"), 8, FileKind::Exclusive)]
        );
        assert_eq!((op.subtasks[2].index, op.subtasks[2].finished), (2, true));
        assert!(meta.operators[1].fully_finished && meta.operators[1].subtasks.is_empty());

        assert_eq!(
            meta.required_uris("s3://b/chk-7/"),
            [
                "s3://b/chk-5/m",
                "s3://b/chk-5/meta",
                "s3://b/chk-6/kg",
                "s3://b/chk-7/channel",
                "s3://b/chk-7/kg",
                "s3://b/chk-7/nested",
                "s3://b/chk-7/op",
                "s3://b/dstl/f1",
                "s3://b/shared/a",
            ]
        );
    }

    #[test]
    fn version_4_flink_1_16_to_1_20_with_the_newer_handles() {
        // Key groups with id (12), savepoint key groups (7), incremental v2 (11) on
        // segments of merged files, changelog v2 (14) over file increments v2 (13), and
        // file-merging operator state (17), one on an empty segment (16).
        let mut s0 = W::default();
        s0.int(0);
        s0.int(1)
            .byte(17)
            .partition_offsets()
            .utf("s3://b/taskowned")
            .utf("s3://b/shared")
            .byte(0);
        s0.segment(10, 30, 0, "s3://b/taskowned/merged-1", "lf-1");
        s0.int(1)
            .byte(17)
            .int(0)
            .utf("s3://b/taskowned")
            .utf("s3://b/shared")
            .byte(1)
            .byte(16);
        s0.byte(11).long(9).utf("uuid-b").int(0).int(4).long(1234);
        s0.segment(0, 5, 0, "s3://b/taskowned/merged-1", "lf-2");
        s0.int(1)
            .utf("000009.sst")
            .segment(40, 500, 1, "s3://b/shared/merged-2", "lf-3");
        s0.int(0);
        s0.utf("incremental-id");
        s0.byte(14).int(0).int(4).long(99);
        s0.int(1)
            .byte(12)
            .key_groups(0, 4)
            .file(70, "s3://b/chk-8/full")
            .utf("kg-id");
        s0.int(1)
            .byte(13)
            .int(0)
            .int(4)
            .int(1)
            .long(5)
            .file(10, "s3://b/dstl/f2")
            .long(10)
            .long(10)
            .utf("f2-id")
            .utf("filesystem");
        s0.long(3).long(9).utf("cl2-id");
        s0.int(0).int(0);
        let mut s1 = W::default();
        s1.int(1).int(0).int(0);
        s1.byte(7).key_groups(4, 1).relative("savepoint-kg", 15);
        s1.null().int(0).int(0);
        let bytes = metadata(4, &[operator(4, 1, false, &[s0.0, s1.0])]);

        let meta = read(&bytes).unwrap();
        assert_eq!(meta.version, 4);
        assert_eq!(meta.properties.as_ref().map(|p| p.kind), Some(SnapshotKind::Checkpoint));
        let handles = &meta.operators[0].subtasks[0].handles;
        let types: Vec<_> = handles.iter().map(|h| (h.slot, h.handle_type)).collect();
        assert_eq!(
            types,
            [
                (StateSlot::ManagedOperator, HandleType::FileMergingOperatorStream),
                (StateSlot::RawOperator, HandleType::FileMergingOperatorStream),
                (StateSlot::ManagedKeyed, HandleType::IncrementalV2),
                (StateSlot::RawKeyed, HandleType::ChangelogV2),
            ]
        );
        let segment = |uri: &str, start, id: &str, scope| Location::Segment {
            uri: uri.to_owned(),
            start,
            logical_file_id: id.to_owned(),
            scope,
        };
        assert_eq!(
            files_of(&handles[0]),
            [(
                segment("s3://b/taskowned/merged-1", 10, "lf-1", SegmentScope::Exclusive),
                30,
                FileKind::Exclusive
            )]
        );
        assert!(handles[1].files.is_empty(), "an empty segment is no file");
        assert_eq!(
            (handles[2].state_handle_id.as_deref(), handles[2].checkpointed_size),
            (Some("incremental-id"), Some(1234))
        );
        assert_eq!(
            files_of(&handles[2]),
            [
                (
                    segment("s3://b/taskowned/merged-1", 0, "lf-2", SegmentScope::Exclusive),
                    5,
                    FileKind::Meta
                ),
                (
                    segment("s3://b/shared/merged-2", 40, "lf-3", SegmentScope::Shared),
                    500,
                    FileKind::Shared {
                        local_name: "000009.sst".into(),
                        checkpoint_id: 9,
                        backend_id: "uuid-b".into()
                    }
                ),
            ]
        );
        assert_eq!(handles[3].state_handle_id.as_deref(), Some("cl2-id"));
        assert_eq!(
            files_of(&handles[3]),
            [
                (uri("s3://b/chk-8/full"), 70, FileKind::Exclusive),
                (
                    uri("s3://b/dstl/f2"),
                    10,
                    FileKind::Changelog {
                        offset: 5,
                        storage: "filesystem".into()
                    }
                ),
            ]
        );
        let savepoint = &meta.operators[0].subtasks[1].handles[0];
        assert_eq!(
            (savepoint.slot, savepoint.handle_type),
            (StateSlot::ManagedKeyed, HandleType::SavepointKeyGroups)
        );
        assert_eq!(savepoint.state_handle_id, None);
        assert_eq!(
            savepoint.files[0].location.resolve("file:/sp/savepoint-1/"),
            Some("file:/sp/savepoint-1/savepoint-kg".to_owned())
        );
        // The merged file appears once among the required files.
        assert_eq!(
            meta.required_uris("unused"),
            [
                "s3://b/chk-8/full",
                "s3://b/dstl/f2",
                "s3://b/shared/merged-2",
                "s3://b/taskowned/merged-1",
                "unused/savepoint-kg",
            ]
        );
    }

    #[test]
    fn version_5_flink_2_0_names_operators() {
        let mut s0 = W::default();
        s0.int(0)
            .int(0)
            .int(0)
            .byte(12)
            .key_groups(0, 1)
            .file(5, "s3://b/chk-7/f")
            .utf("id")
            .null()
            .int(0)
            .int(0);
        let mut named = W::default();
        named
            .utf("Window(Tumbling)")
            .utf("my-uid")
            .raw(&[2; 16])
            .int(1)
            .int(1)
            .null()
            .int(1)
            .raw(&s0.0);
        let unnamed = operator(5, 3, false, &[]);
        let meta = read(&metadata(5, &[named.0, unnamed])).unwrap();
        assert_eq!(meta.version, 5);
        let op = &meta.operators[0];
        assert_eq!(
            (op.name.as_deref(), op.uid.as_deref()),
            (Some("Window(Tumbling)"), Some("my-uid"))
        );
        assert_eq!(
            files_of(&op.subtasks[0].handles[0]),
            [(uri("s3://b/chk-7/f"), 5, FileKind::Exclusive)]
        );
        // Flink writes "" for an unset uid.
        assert_eq!(meta.operators[1].uid, None);
    }

    #[test]
    fn version_6_flink_2_1_to_2_3_types_its_channel_state_handles() {
        let mut s0 = W::default();
        s0.int(0).int(0).int(0).null().null();
        s0.int(2);
        s0.byte(1)
            .int(0)
            .int(0)
            .int(0)
            .int(1)
            .long(0)
            .long(8)
            .file(16, "s3://b/chk-7/ch");
        s0.byte(3)
            .int(0)
            .long(8)
            .file(16, "s3://b/chk-7/ch")
            .int(3)
            .raw(&[9, 9, 9]);
        s0.int(2);
        s0.byte(2)
            .int(0)
            .int(1)
            .int(1)
            .int(0)
            .long(0)
            .segment(0, 4, 0, "s3://b/merged", "lf");
        s0.byte(4).int(0).long(4).inline("small", &[1, 2, 3, 4]).int(0);
        let meta = read(&metadata(6, &[operator(6, 4, false, &[s0.0])])).unwrap();
        let types: Vec<_> = meta.operators[0].subtasks[0]
            .handles
            .iter()
            .map(|h| h.handle_type)
            .collect();
        assert_eq!(
            types,
            [
                HandleType::InputChannel,
                HandleType::MergedInputChannel,
                HandleType::ResultSubpartition,
                HandleType::MergedResultSubpartition,
            ]
        );
        assert_eq!(meta.required_uris(""), ["s3://b/chk-7/ch", "s3://b/merged"]);

        // The same bytes without the type bytes are version 5's channel state, and a type
        // byte of the wrong direction is refused.
        let mut wrong = W::default();
        wrong.int(0).int(0).int(0).null().null().int(1).byte(2);
        let bytes = metadata(6, &[operator(6, 4, false, &[wrong.0])]);
        let at = bytes.len() - checkpoint_properties().len() - 1;
        assert_eq!(
            read(&bytes),
            Err(MetadataError::UnknownHandle {
                offset: at,
                type_byte: 2,
                context: "input channel state handle"
            })
        );
    }

    /// `metadata(version, [operator with one subtask holding `subtask`])`, and the offset
    /// where the subtask's bytes start.
    fn with_subtask(version: i32, subtask: &[u8]) -> (Vec<u8>, usize) {
        let bytes = metadata(version, &[operator(version, 1, false, &[subtask.to_vec()])]);
        let props = if version >= 4 { checkpoint_properties().len() } else { 0 };
        let at = bytes.len() - props - subtask.len();
        (bytes, at)
    }

    #[test]
    fn unknown_handle_types_name_the_byte_and_its_offset() {
        // A keyed handle of type 18, a stream handle of type 99, an operator handle of type
        // 5, a file-merging operator handle over a plain file, a changelog delta that is not
        // a changelog handle.
        let cases: Vec<(Vec<u8>, usize, u8, &str)> = vec![
            (
                W::default().int(0).int(0).int(0).byte(18).v(),
                12,
                18,
                "keyed state handle",
            ),
            (
                W::default().int(0).int(0).int(0).byte(3).key_groups(0, 0).byte(99).v(),
                21,
                99,
                "stream state handle",
            ),
            (W::default().int(0).int(1).byte(5).v(), 8, 5, "operator state handle"),
            (
                W::default()
                    .int(0)
                    .int(1)
                    .byte(17)
                    .int(0)
                    .utf("a")
                    .utf("b")
                    .byte(0)
                    .file(1, "f")
                    .v(),
                20,
                2,
                "file-merging operator state delegate (Flink writes a segment)",
            ),
            (
                W::default()
                    .int(0)
                    .int(0)
                    .int(0)
                    .byte(14)
                    .int(0)
                    .int(0)
                    .long(0)
                    .int(0)
                    .int(1)
                    .byte(12)
                    .v(),
                37,
                12,
                "changelog state handle",
            ),
        ];
        for (subtask, offset_in_subtask, type_byte, context) in cases {
            let (bytes, at) = with_subtask(3, &subtask);
            assert_eq!(
                read(&bytes),
                Err(MetadataError::UnknownHandle {
                    offset: at + offset_in_subtask,
                    type_byte,
                    context
                }),
                "{context}"
            );
        }
        // Coordinator state in a file: Flink writes it inline only.
        let mut op = W::default();
        op.raw(&[1; 16]).int(1).int(1).file(1, "f").int(0);
        let bytes = metadata(3, &[op.0]);
        assert!(matches!(
            read(&bytes),
            Err(MetadataError::UnknownHandle { type_byte: 2, .. })
        ));
        // A bad distribution mode and a bad segment scope.
        let (bytes, _) = with_subtask(
            3,
            &W::default()
                .int(0)
                .int(1)
                .byte(4)
                .int(1)
                .utf("s")
                .byte(3)
                .raw(&[0; 16])
                .v(),
        );
        assert!(matches!(
            read(&bytes),
            Err(MetadataError::Invalid {
                what: "distribution mode",
                value: 3,
                ..
            })
        ));
        let (bytes, _) = with_subtask(
            4,
            &W::default().int(0).int(1).byte(4).int(0).segment(0, 1, 2, "f", "l").v(),
        );
        assert!(matches!(
            read(&bytes),
            Err(MetadataError::Invalid {
                what: "segment scope",
                value: 2,
                ..
            })
        ));
    }

    #[test]
    fn huge_and_negative_lengths_are_errors_before_any_allocation() {
        let header = |version: i32| {
            let mut w = W::default();
            w.int(0x4960_672D).int(version).long(1);
            w
        };
        // i32::MAX master states and operators.
        let bytes = header(3).int(i32::MAX).v();
        assert!(matches!(
            read(&bytes),
            Err(MetadataError::LengthPastEnd { offset: 16, .. })
        ));
        let bytes = header(3).int(0).int(i32::MAX).v();
        assert!(matches!(
            read(&bytes),
            Err(MetadataError::LengthPastEnd { offset: 20, .. })
        ));
        // Negative counts.
        let bytes = header(3).int(-1).v();
        assert!(matches!(read(&bytes), Err(MetadataError::Invalid { offset: 16, .. })));
        // A master state claiming i32::MAX bytes, and one claiming none.
        let bytes = header(3)
            .int(1)
            .int(0xC96B_1696u32 as i32)
            .int(i32::MAX)
            .raw(&[0; 16])
            .v();
        assert!(matches!(
            read(&bytes),
            Err(MetadataError::LengthPastEnd { offset: 24, .. })
        ));
        let bytes = header(3).int(1).int(0xC96B_1696u32 as i32).int(0).raw(&[0; 16]).v();
        assert!(matches!(read(&bytes), Err(MetadataError::Invalid { offset: 24, .. })));
        // Inside a subtask: key groups, inline bytes, a UTF string, shared files, offsets.
        let cases: Vec<Vec<u8>> = vec![
            W::default().int(0).int(0).int(0).byte(12).int(0).int(i32::MAX).v(),
            W::default().int(0).int(0).int(0).byte(12).int(0).int(-5).v(),
            W::default()
                .int(0)
                .int(0)
                .int(0)
                .byte(3)
                .int(0)
                .int(0)
                .byte(1)
                .utf("n")
                .int(i32::MAX)
                .v(),
            W::default()
                .int(0)
                .int(0)
                .int(0)
                .byte(3)
                .int(0)
                .int(0)
                .byte(2)
                .long(1)
                .raw(&[0xFF, 0xFF, b'a'])
                .v(),
            W::default()
                .int(0)
                .int(0)
                .int(0)
                .byte(5)
                .long(1)
                .utf("b")
                .int(0)
                .int(0)
                .null()
                .int(i32::MAX)
                .v(),
            W::default()
                .int(0)
                .int(1)
                .byte(4)
                .int(1)
                .utf("s")
                .byte(0)
                .int(i32::MAX)
                .v(),
            W::default().int(0).int(0).int(0).null().null().int(i32::MAX).v(),
            W::default()
                .int(0)
                .int(0)
                .int(0)
                .byte(3)
                .int(0)
                .int(0)
                .byte(2)
                .long(-1)
                .utf("f")
                .v(),
        ];
        for subtask in cases {
            let (bytes, at) = with_subtask(3, &subtask);
            let err = read(&bytes).unwrap_err();
            match err {
                MetadataError::LengthPastEnd { offset, .. }
                | MetadataError::Truncated { offset, .. }
                | MetadataError::Invalid { offset, .. } => {
                    assert!(offset >= at && offset <= bytes.len(), "{err}")
                }
                other => panic!("{other}"),
            }
        }
        // The size limit.
        let big = vec![0u8; MAX_METADATA_BYTES + 1];
        assert!(matches!(read(&big), Err(MetadataError::TooLarge { .. })));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        // Changelog handles each materializing the next, 10 000 deep.
        let mut subtask = W::default();
        subtask.int(0).int(0).int(0);
        for _ in 0..10_000 {
            subtask.byte(8).int(0).int(0).long(0).int(1);
        }
        let (bytes, _) = with_subtask(3, &subtask.0);
        assert!(matches!(read(&bytes), Err(MetadataError::TooDeep { .. })));
        // Key-groups handles as stream handles of each other.
        let mut subtask = W::default();
        subtask.int(0).int(0).int(0).byte(3).int(0).int(0);
        for _ in 0..10_000 {
            subtask.byte(3).int(0).int(0);
        }
        let (bytes, _) = with_subtask(3, &subtask.0);
        assert!(matches!(read(&bytes), Err(MetadataError::TooDeep { .. })));
    }

    #[test]
    fn versions_and_magic_outside_flink_1_15_to_2_3_are_refused() {
        for version in [0, 1, 2, 7, -1, i32::MAX] {
            let mut bytes = W::default();
            bytes.int(0x4960_672D).int(version).long(1).int(0).int(0);
            assert_eq!(read(&bytes.0), Err(MetadataError::UnsupportedVersion { version }));
        }
        assert_eq!(
            read(b"\xAC\xED\x00\x05"),
            Err(MetadataError::NotMetadata { found: 0xACED_0005 })
        );
        assert_eq!(read(b"I`"), Err(MetadataError::NotMetadata { found: 0x4960_0000 }));
        // A negative checkpoint id.
        let mut bytes = W::default();
        bytes.int(0x4960_672D).int(3).long(-2).int(0).int(0);
        assert!(matches!(
            read(&bytes.0),
            Err(MetadataError::Invalid {
                offset: 8,
                value: -2,
                ..
            })
        ));
        // Version 3 with bytes after its last operator, version 4 without properties.
        let mut bytes = W::default();
        bytes.int(0x4960_672D).int(3).long(2).int(0).int(0);
        assert!(read(&bytes.0).is_ok());
        bytes.byte(0);
        assert_eq!(
            read(&bytes.0),
            Err(MetadataError::TrailingBytes { offset: 24, count: 1 })
        );
        let mut v4 = W::default();
        v4.int(0x4960_672D).int(4).long(1).int(0).int(0);
        assert!(matches!(read(&v4.0), Err(MetadataError::Truncated { offset: 24, .. })));
        // Properties that are some other Java object.
        let mut other = v4.0.clone();
        other.extend_from_slice(&[0xAC, 0xED, 0, 5, 0x74, 0, 1, b'x']);
        assert!(matches!(
            read(&other),
            Err(MetadataError::PropertiesClass { offset: 24, .. })
        ));
    }

    #[test]
    fn strings_are_modified_utf8_and_malformed_ones_are_errors() {
        // NUL as C0 80, U+00E9, and U+1F600 as two 3-byte surrogates.
        let bytes = [b'a', 0xC0, 0x80, 0xC3, 0xA9, 0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80];
        assert_eq!(modified_utf8(&bytes).as_deref(), Some("a\0\u{e9}\u{1F600}"));
        assert_eq!(modified_utf8(&[0xC3]), None);
        assert_eq!(modified_utf8(&[0xFF]), None);
        assert_eq!(modified_utf8(&[0xED, 0xA0, 0xBD]), None, "an unpaired surrogate");
        let mut subtask = W::default();
        subtask
            .int(0)
            .int(0)
            .int(0)
            .byte(3)
            .int(0)
            .int(0)
            .byte(2)
            .long(1)
            .raw(&[0, 1, 0xFF]);
        let (bytes, at) = with_subtask(3, &subtask.0);
        assert_eq!(
            read(&bytes),
            Err(MetadataError::BadString {
                offset: at + 30,
                what: "a file path"
            })
        );
    }
}
