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
mod tests;
