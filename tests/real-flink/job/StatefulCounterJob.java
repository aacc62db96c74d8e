/*
 * A small stateful streaming job for driving a real Flink 2.3 cluster in tests:
 *
 *   rate-limited generator (DataGeneratorSource) -> keyBy(n % keys)
 *     -> per-key ValueState<Long> counter -> DiscardingSink
 *
 * Checkpointing is NOT set here: it comes from the cluster's configuration
 * (execution.checkpointing.interval etc. in config.yaml), so the same jar serves any
 * checkpoint cadence. Parallelism defaults to 1 (fits a 1-slot TaskManager).
 *
 * Program arguments (all optional): --rate <records per second, default 50>
 *                                   --keys <distinct keys, default 16>
 *                                   --parallelism <default: the cluster's parallelism.default>
 *                                   --name <job name, default StatefulCounterJob>
 *
 * Built by scripts/setup-flink with plain javac against $FLINK_HOME/lib/*; no Maven.
 */

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.source.util.ratelimit.RateLimiterStrategy;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.connector.datagen.source.DataGeneratorSource;
import org.apache.flink.connector.datagen.source.GeneratorFunction;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.util.Collector;

public final class StatefulCounterJob {

    private StatefulCounterJob() {}

    public static void main(String[] args) throws Exception {
        long rate = 50;
        long keys = 16;
        int parallelism = -1;
        String name = "StatefulCounterJob";
        for (int i = 0; i + 1 < args.length; i += 2) {
            switch (args[i]) {
                case "--rate":
                    rate = Long.parseLong(args[i + 1]);
                    break;
                case "--keys":
                    keys = Long.parseLong(args[i + 1]);
                    break;
                case "--parallelism":
                    parallelism = Integer.parseInt(args[i + 1]);
                    break;
                case "--name":
                    name = args[i + 1];
                    break;
                default:
                    throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        if (rate <= 0 || keys <= 0) {
            throw new IllegalArgumentException("--rate and --keys must be positive");
        }

        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        if (parallelism > 0) {
            env.setParallelism(parallelism);
        }

        DataGeneratorSource<Long> source =
                new DataGeneratorSource<>(
                        new Sequence(), Long.MAX_VALUE, RateLimiterStrategy.perSecond(rate), Types.LONG);

        env.fromSource(source, WatermarkStrategy.noWatermarks(), "generator")
                .uid("generator")
                .keyBy(new Modulo(keys))
                .process(new Counter())
                .uid("counter")
                .name("counter")
                .sinkTo(new DiscardingSink<>())
                .uid("sink")
                .name("discard");

        env.execute(name);
    }

    /** index -> index: 0, 1, 2, ... at the rate limiter's pace. */
    static final class Sequence implements GeneratorFunction<Long, Long> {
        private static final long serialVersionUID = 1L;

        @Override
        public Long map(Long index) {
            return index;
        }
    }

    /** The key: n % keys. */
    static final class Modulo implements KeySelector<Long, Long> {
        private static final long serialVersionUID = 1L;
        private final long keys;

        Modulo(long keys) {
            this.keys = keys;
        }

        @Override
        public Long getKey(Long value) {
            return value % keys;
        }
    }

    /** Counts the records per key in keyed ValueState; emits "key=count". */
    static final class Counter extends KeyedProcessFunction<Long, Long, String> {
        private static final long serialVersionUID = 1L;
        private transient ValueState<Long> count;

        @Override
        public void open(OpenContext openContext) {
            count = getRuntimeContext().getState(new ValueStateDescriptor<>("count", Types.LONG));
        }

        @Override
        public void processElement(Long value, Context ctx, Collector<String> out) throws Exception {
            Long previous = count.value();
            long next = previous == null ? 1 : previous + 1;
            count.update(next);
            out.collect(ctx.getCurrentKey() + "=" + next);
        }
    }
}
