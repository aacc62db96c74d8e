// Writes one checkpoint holding every state handle type with Flink's own metadata
// serializers (versions 3 to 6), and prints what Flink's own deserializer reads from a
// `_metadata` file: the reference `src/checkpoint_metadata.rs` is tested against. See
// README.md beside it. Runs against the Flink jars of scripts/setup-flink.
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.core.execution.SavepointFormatType;
import org.apache.flink.core.fs.Path;
import org.apache.flink.runtime.checkpoint.*;
import org.apache.flink.runtime.checkpoint.channel.InputChannelInfo;
import org.apache.flink.runtime.checkpoint.channel.ResultSubpartitionInfo;
import org.apache.flink.runtime.checkpoint.filemerging.LogicalFile;
import org.apache.flink.runtime.checkpoint.metadata.*;
import org.apache.flink.runtime.jobgraph.OperatorID;
import org.apache.flink.runtime.state.*;
import org.apache.flink.runtime.state.IncrementalKeyedStateHandle.HandleAndLocalPath;
import org.apache.flink.runtime.state.changelog.*;
import org.apache.flink.runtime.state.changelog.ChangelogStateBackendHandle.ChangelogStateBackendHandleImpl;
import org.apache.flink.runtime.state.changelog.inmemory.InMemoryChangelogStateHandle;
import org.apache.flink.runtime.state.filemerging.*;
import org.apache.flink.runtime.state.filesystem.*;
import org.apache.flink.runtime.state.memory.ByteStreamStateHandle;

import java.io.*;
import java.nio.file.Files;
import java.util.*;

public class MetadataOracle {
    static FileStateHandle file(String p, long size) { return new FileStateHandle(new Path(p), size); }
    static Map<String, OperatorStateHandle.StateMetaInfo> offsets() {
        Map<String, OperatorStateHandle.StateMetaInfo> m = new LinkedHashMap<>();
        m.put("split", new OperatorStateHandle.StateMetaInfo(new long[] {0, 7}, OperatorStateHandle.Mode.SPLIT_DISTRIBUTE));
        m.put("union", new OperatorStateHandle.StateMetaInfo(new long[] {3}, OperatorStateHandle.Mode.UNION));
        m.put("broadcast", new OperatorStateHandle.StateMetaInfo(new long[] {}, OperatorStateHandle.Mode.BROADCAST));
        return m;
    }
    static KeyGroupRangeOffsets kgo(int start, int count) {
        long[] o = new long[count];
        for (int i = 0; i < count; i++) o[i] = 10L * i;
        return new KeyGroupRangeOffsets(KeyGroupRange.of(start, start + count - 1), o);
    }

    static CheckpointMetadata build(int version) {
        OperatorState op1 = new OperatorState("keyed op", "uid-1", new OperatorID(0x0102030405060708L, 0x1112131415161718L), 4, 128);
        op1.setCoordinatorState(new ByteStreamStateHandle("coordinator", new byte[] {1, 2, 3}));
        FileStateHandle channelFile = file("s3://b/chk-7/channel", 40);
        op1.putState(0, OperatorSubtaskState.builder()
            .setManagedOperatorState(new OperatorStreamStateHandle(offsets(), file("s3://b/chk-7/op", 30)))
            .setManagedKeyedState(KeyGroupsStateHandle.restore(kgo(0, 2), new RelativeFileStateHandle(new Path("s3://b/chk-7/kg"), "kg", 20), new StateHandleID("kg-id")))
            .setRawKeyedState(IncrementalRemoteKeyedStateHandle.restore(
                UUID.fromString("0b8c36a2-5c8e-4d7c-9d4e-7f1a2b3c4d5e"), KeyGroupRange.of(2, 3), 5,
                List.of(HandleAndLocalPath.of(file("s3://b/shared/a", 100), "000001.sst"),
                        HandleAndLocalPath.of(new ByteStreamStateHandle("x", new byte[] {7, 7}), "000002.sst")),
                List.of(HandleAndLocalPath.of(file("s3://b/chk-5/m", 50), "MANIFEST-000003")),
                file("s3://b/chk-5/meta", 9), 1234, new StateHandleID("incremental-id")))
            .setInputChannelState(new StateObjectCollection<>(List.of(
                new InputChannelStateHandle(0, new InputChannelInfo(1, 2), channelFile, List.of(0L), 40))))
            .setResultSubpartitionState(new StateObjectCollection<>(List.of(
                new ResultSubpartitionStateHandle(0, new ResultSubpartitionInfo(3, 4), channelFile, List.of(0L), 40L))))
            .build());
        op1.putState(1, OperatorSubtaskState.builder()
            .setManagedKeyedState(ChangelogStateBackendHandleImpl.restore(
                List.of(KeyGroupsStateHandle.restore(kgo(2, 2), file("s3://b/chk-6/kg", 60), new StateHandleID("mat-id"))),
                List.of(ChangelogStateHandleStreamImpl.restore(List.of(Tuple2.of(file("s3://b/dstl/f1", 300), 12L)), KeyGroupRange.of(2, 3), 300, 30, "filesystem", new StateHandleID("f1-id")),
                        InMemoryChangelogStateHandle.restore(List.of(StateChange.ofDataChange(2, "abcd".getBytes())), SequenceNumber.of(1), SequenceNumber.of(3), KeyGroupRange.of(2, 3), new StateHandleID("mem-id"))),
                KeyGroupRange.of(2, 3), 9, 4, 77, new StateHandleID("changelog-id")))
            .setRawKeyedState(new KeyGroupsSavepointStateHandle(kgo(4, 1), new RelativeFileStateHandle(new Path("s3://b/chk-7/savepoint-kg"), "savepoint-kg", 15)))
            .build());
        op1.putState(2, FinishedOperatorSubtaskState.INSTANCE);

        OperatorState op2 = new OperatorState(null, null, new OperatorID(0x2122232425262728L, 0x3132333435363738L), 1, 32768);
        DirectoryStreamStateHandle owned = DirectoryStreamStateHandle.of(new Path("s3://b/taskowned"));
        DirectoryStreamStateHandle shared = DirectoryStreamStateHandle.of(new Path("s3://b/shared"));
        OperatorSubtaskState.Builder b2 = OperatorSubtaskState.builder()
            .setManagedOperatorState(new FileMergingOperatorStreamStateHandle(owned, shared, offsets(),
                new SegmentFileStateHandle(new Path("s3://b/taskowned/merged-1"), 10, 30, CheckpointedStateScope.EXCLUSIVE, new LogicalFile.LogicalFileId("lf-1"))))
            .setRawOperatorState(new EmptyFileMergingOperatorStreamStateHandle(owned, shared, new HashMap<>(), EmptySegmentFileStateHandle.INSTANCE))
            .setManagedKeyedState(IncrementalRemoteKeyedStateHandle.restore(
                UUID.fromString("1b8c36a2-5c8e-4d7c-9d4e-7f1a2b3c4d5e"), KeyGroupRange.of(0, 32767), 9,
                List.of(HandleAndLocalPath.of(new SegmentFileStateHandle(new Path("s3://b/shared/merged-2"), 40, 500, CheckpointedStateScope.SHARED, new LogicalFile.LogicalFileId("lf-3")), "000009.sst")),
                List.of(),
                new SegmentFileStateHandle(new Path("s3://b/taskowned/merged-1"), 0, 5, CheckpointedStateScope.EXCLUSIVE, new LogicalFile.LogicalFileId("lf-2")),
                1234, new StateHandleID("incremental-2")));
        if (version >= 6) {
            b2.setInputChannelState(new StateObjectCollection<>(List.of(
                new MergedInputChannelStateHandle(0, file("s3://b/chk-7/merged-channel", 16), 8, new byte[] {9, 9, 9}))));
            b2.setResultSubpartitionState(new StateObjectCollection<>(List.of(
                new MergedResultSubpartitionStateHandle(0, new ByteStreamStateHandle("small", new byte[] {1, 2, 3, 4}), 4, new byte[0]))));
        }
        op2.putState(0, b2.build());

        OperatorState op3 = new FullyFinishedOperatorState("done", "uid-3", new OperatorID(0x4142434445464748L, 0x5152535455565758L), 2, 128);

        CheckpointProperties props = version == 5
            ? CheckpointProperties.forSavepoint(true, SavepointFormatType.NATIVE)
            : CheckpointProperties.forCheckpoint(CheckpointRetentionPolicy.RETAIN_ON_FAILURE);
        return new CheckpointMetadata(7, List.of(op1, op2, op3), List.of(new MasterState("hook", "abc".getBytes(), 1)), props);
    }

    static MetadataSerializer serializer(int version) {
        switch (version) {
            case 3: return MetadataV3Serializer.INSTANCE;
            case 4: return MetadataV4Serializer.INSTANCE;
            case 5: return MetadataV5Serializer.INSTANCE;
            default: return MetadataV6Serializer.INSTANCE;
        }
    }

    // ---- dump: what Flink's own deserializer reads ----
    static String loc(StreamStateHandle h) {
        if (h instanceof RelativeFileStateHandle) return "relative:" + ((RelativeFileStateHandle) h).getRelativePath();
        if (h instanceof SegmentFileStateHandle) {
            SegmentFileStateHandle s = (SegmentFileStateHandle) h;
            return "segment:" + s.getFilePath() + "@" + s.getStartPos() + ":" + s.getLogicalFileId().getKeyString() + ":" + s.getScope().name().toLowerCase();
        }
        if (h instanceof FileStateHandle) return "uri:" + ((FileStateHandle) h).getFilePath();
        if (h instanceof ByteStreamStateHandle) return "inline:" + ((ByteStreamStateHandle) h).getHandleName();
        throw new IllegalStateException(h.getClass().getName());
    }
    static void file(PrintStream out, String kind, StreamStateHandle h) {
        if (h == null || h instanceof EmptySegmentFileStateHandle) return;
        out.println("      " + kind + " " + loc(h) + " " + h.getStateSize());
    }
    static String type(Object h) {
        if (h instanceof KeyGroupsSavepointStateHandle) return "savepoint-key-groups";
        if (h instanceof KeyGroupsStateHandle) return "key-groups";
        if (h instanceof IncrementalRemoteKeyedStateHandle) return "incremental";
        if (h instanceof ChangelogStateBackendHandle) return "changelog";
        if (h instanceof FileMergingOperatorStreamStateHandle) return "file-merging-operator-stream";
        if (h instanceof OperatorStreamStateHandle) return "operator-stream";
        if (h instanceof MergedInputChannelStateHandle) return "merged-input-channel";
        if (h instanceof MergedResultSubpartitionStateHandle) return "merged-result-subpartition";
        if (h instanceof InputChannelStateHandle) return "input-channel";
        if (h instanceof ResultSubpartitionStateHandle) return "result-subpartition";
        throw new IllegalStateException(h.getClass().getName());
    }
    static void keyedFiles(PrintStream out, KeyedStateHandle h) {
        if (h instanceof KeyGroupsStateHandle) {
            file(out, "exclusive", ((KeyGroupsStateHandle) h).getDelegateStateHandle());
        } else if (h instanceof IncrementalRemoteKeyedStateHandle) {
            IncrementalRemoteKeyedStateHandle i = (IncrementalRemoteKeyedStateHandle) h;
            file(out, "meta", i.getMetaDataStateHandle());
            for (HandleAndLocalPath p : i.getSharedState())
                file(out, "shared:" + p.getLocalPath() + ":" + i.getCheckpointId() + ":" + i.getBackendIdentifier(), p.getHandle());
            for (HandleAndLocalPath p : i.getPrivateState()) file(out, "private:" + p.getLocalPath(), p.getHandle());
        } else if (h instanceof ChangelogStateBackendHandle) {
            ChangelogStateBackendHandle c = (ChangelogStateBackendHandle) h;
            for (KeyedStateHandle m : c.getMaterializedStateHandles()) keyedFiles(out, m);
            for (ChangelogStateHandle d : c.getNonMaterializedStateHandles()) keyedFiles(out, d);
        } else if (h instanceof ChangelogStateHandleStreamImpl) {
            ChangelogStateHandleStreamImpl c = (ChangelogStateHandleStreamImpl) h;
            for (Tuple2<StreamStateHandle, Long> t : c.getHandlesAndOffsets())
                file(out, "changelog:" + t.f1 + ":" + c.getStorageIdentifier(), t.f0);
        } else if (h instanceof InMemoryChangelogStateHandle) {
            InMemoryChangelogStateHandle m = (InMemoryChangelogStateHandle) h;
            long size = 0;
            for (StateChange s : m.getChanges()) size += s.getChange().length;
            out.println("      changelog:" + m.getFrom() + ":memory inline: " + size);
        } else throw new IllegalStateException(h.getClass().getName());
    }
    static void handle(PrintStream out, String slot, Object h) {
        out.println("    " + slot + " " + type(h));
        if (h instanceof KeyedStateHandle) keyedFiles(out, (KeyedStateHandle) h);
        else if (h instanceof OperatorStateHandle) file(out, "exclusive", ((OperatorStateHandle) h).getDelegateStateHandle());
        else if (h instanceof AbstractChannelStateHandle) file(out, "exclusive", ((AbstractChannelStateHandle<?>) h).getDelegate());
        else if (h instanceof AbstractMergedChannelStateHandle) file(out, "exclusive", ((AbstractMergedChannelStateHandle<?, ?>) h).getDelegate());
        else throw new IllegalStateException(h.getClass().getName());
    }
    static void dump(CheckpointMetadata m, PrintStream out) {
        out.println("checkpoint " + m.getCheckpointId() + " masters " + m.getMasterStates().size());
        CheckpointProperties p = m.getCheckpointProperties();
        if (p != null) out.println("properties " + p.getCheckpointType().getName() + " savepoint=" + p.isSavepoint());
        for (OperatorState op : m.getOperatorStates()) {
            ByteStreamStateHandle c = op.getCoordinatorState();
            out.println("operator " + op.getOperatorID() + " name=" + op.getOperatorName().orElse("-") + " uid=" + op.getOperatorUid().orElse("-")
                + " parallelism=" + op.getParallelism() + " max=" + op.getMaxParallelism()
                + " coordinator=" + (c == null ? "-" : String.valueOf(c.getData().length)) + " fully-finished=" + op.isFullyFinished());
            for (Map.Entry<Integer, OperatorSubtaskState> e : new TreeMap<>(op.getSubtaskStates()).entrySet()) {
                OperatorSubtaskState s = e.getValue();
                out.println("  subtask " + e.getKey() + " finished=" + s.isFinished());
                for (OperatorStateHandle h : s.getManagedOperatorState()) handle(out, "managed-operator", h);
                for (OperatorStateHandle h : s.getRawOperatorState()) handle(out, "raw-operator", h);
                for (KeyedStateHandle h : s.getManagedKeyedState()) handle(out, "managed-keyed", h);
                for (KeyedStateHandle h : s.getRawKeyedState()) handle(out, "raw-keyed", h);
                for (InputStateHandle h : s.getInputChannelState()) handle(out, "input-channel", h);
                for (OutputStateHandle h : s.getResultSubpartitionState()) handle(out, "result-subpartition", h);
            }
        }
    }

    public static void main(String[] args) throws Exception {
        if (args[0].equals("write")) {
            for (int v = 3; v <= 6; v++) {
                ByteArrayOutputStream bytes = new ByteArrayOutputStream();
                DataOutputStream dos = new DataOutputStream(bytes);
                Checkpoints.storeCheckpointMetadata(build(v), dos, serializer(v));
                dos.flush();
                Files.write(new File(args[1], "metadata-v" + v).toPath(), bytes.toByteArray());
            }
        } else {
            try (DataInputStream in = new DataInputStream(new FileInputStream(args[1]))) {
                CheckpointMetadata m = Checkpoints.loadCheckpointMetadata(in, MetadataOracle.class.getClassLoader(), args[2]);
                dump(m, System.out);
            }
        }
    }
}
