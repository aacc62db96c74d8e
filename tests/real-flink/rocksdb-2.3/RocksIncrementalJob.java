import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.util.Collector;

public class RocksIncrementalJob {
    public static void main(String[] args) throws Exception {
        Configuration conf = new Configuration();
        conf.setString("state.backend.type", "rocksdb");
        conf.setString("execution.checkpointing.incremental", "true");
        conf.setString("execution.checkpointing.dir", args[0]);
        conf.setString("execution.checkpointing.interval", "1 s");
        conf.setString("execution.checkpointing.num-retained", "2");
        conf.setString("execution.checkpointing.data-inline-threshold", args[1]);
        conf.setString("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION");
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(2);
        env.fromSequence(0, Long.MAX_VALUE)
            .map(x -> { if (x % 100 == 0) Thread.sleep(5); return x; }).returns(Types.LONG)
            .keyBy(x -> x % 64)
            .process(new KeyedProcessFunction<Long, Long, String>() {
                transient ValueState<Long> count;
                @Override public void open(OpenContext ctx) {
                    count = getRuntimeContext().getState(new ValueStateDescriptor<>("count", Types.LONG));
                }
                @Override public void processElement(Long v, Context ctx, Collector<String> out) throws Exception {
                    Long c = count.value();
                    count.update(c == null ? 1 : c + 1);
                }
            }).returns(Types.STRING).uid("counter").name("counter")
            .sinkTo(new DiscardingSink<>());
        JobClient client = env.executeAsync("rocks-incremental");
        Thread.sleep(Long.parseLong(args[2]));
        client.cancel().get();
        System.out.println("JOB " + client.getJobID());
    }
}
