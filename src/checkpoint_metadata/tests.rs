//! Tests of the `_metadata` reader: real Flink 2.3 files, files Flink's own serializers
//! wrote for every version, hand-built bytes per handle type, and hostile input.

use super::*;

/// `chk-66/_metadata` of a real Flink 2.3.0 job (hashmap state backend).
const REAL_2_3: &[u8] = include_bytes!("../../tests/real-flink/capture-2.3/_metadata-chk-66");
/// The checkpoint directory listed at the same moment.
const REAL_LISTING: &str = include_str!("../../tests/real-flink/capture-2.3/checkpoint-dir-listing-after-recovery.txt");
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
            include_bytes!("../../tests/real-flink/serializer-2.3/metadata-v3"),
            include_str!("../../tests/real-flink/serializer-2.3/metadata-v3.flink.txt"),
        ),
        (
            4,
            include_bytes!("../../tests/real-flink/serializer-2.3/metadata-v4"),
            include_str!("../../tests/real-flink/serializer-2.3/metadata-v4.flink.txt"),
        ),
        (
            5,
            include_bytes!("../../tests/real-flink/serializer-2.3/metadata-v5"),
            include_str!("../../tests/real-flink/serializer-2.3/metadata-v5.flink.txt"),
        ),
        (
            6,
            include_bytes!("../../tests/real-flink/serializer-2.3/metadata-v6"),
            include_str!("../../tests/real-flink/serializer-2.3/metadata-v6.flink.txt"),
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
    let v5 = read(include_bytes!("../../tests/real-flink/serializer-2.3/metadata-v5")).unwrap();
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
        include_str!("../../tests/real-flink/serializer-2.3/_metadata-chk-66.flink.txt")
    );
}

#[test]
fn a_real_rocksdb_incremental_checkpoint_names_exactly_the_files_in_its_directory() {
    // `tests/real-flink/rocksdb-2.3`: two retained incremental checkpoints of a Flink 2.3
    // RocksDB job, and the listing of their checkpoint directory (`size path`).
    const LISTING: &str = include_str!("../../tests/real-flink/rocksdb-2.3/checkpoint-dir-listing.txt");
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
            include_bytes!("../../tests/real-flink/rocksdb-2.3/_metadata-chk-8"),
            include_str!("../../tests/real-flink/rocksdb-2.3/_metadata-chk-8.flink.txt"),
        ),
        (
            9,
            include_bytes!("../../tests/real-flink/rocksdb-2.3/_metadata-chk-9"),
            include_str!("../../tests/real-flink/rocksdb-2.3/_metadata-chk-9.flink.txt"),
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
