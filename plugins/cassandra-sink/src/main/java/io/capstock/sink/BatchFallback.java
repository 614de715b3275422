package io.capstock.sink;

import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Finds the record at fault when Cassandra refuses a whole batch.
 *
 * <p>The engine writes the records of one table and partition key as one unlogged batch (up to
 * {@code maxNumberOfRecordsInBatch}) and, when Cassandra refuses it, fails every record in it
 * with the batch's one exception (BoundStatementProcessor in messaging-connectors-commons
 * 1.0.15). One record Cassandra refuses as invalid would so take all its neighbours to the
 * dead-letter topic. Those records are written again one at a time, in Kafka order, and only
 * those Cassandra refuses alone fail; the Python sink isolates a refused record the same way.
 * Rewriting a stored row is harmless: writes are upserts with the record's own timestamp.
 */
final class BatchFallback {
  private static final Logger log = LoggerFactory.getLogger(BatchFallback.class);
  private static final Comparator<Failure> KAFKA_ORDER =
      Comparator.comparing((Failure f) -> f.record().record().topic())
          .thenComparing(f -> f.record().record().kafkaPartition())
          .thenComparingLong(f -> f.record().record().kafkaOffset());

  private BatchFallback() {}

  /**
   * The failures, with every record of a refused batch replaced by what writing it alone gave.
   *
   * @param writeAlone writes one record through the engine and returns its failures
   */
  static List<Failure> isolate(
      List<Failure> failed, Function<ConnectRecord, List<Failure>> writeAlone) {
    Set<Throwable> batchErrors = batchRefusals(failed);
    if (batchErrors.isEmpty()) {
      return failed;
    }
    List<Failure> settled = new ArrayList<>();
    List<Failure> again = new ArrayList<>();
    for (Failure failure : failed) {
      (batchErrors.contains(failure.error()) ? again : settled).add(failure);
    }
    log.warn(
        "Cassandra refused {} batch(es) holding {} records ({}); writing each of them alone",
        batchErrors.size(),
        again.size(),
        CassandraSinkTask.rootCause(again.get(0).error()).getMessage());
    again.sort(KAFKA_ORDER);
    for (Failure failure : again) {
      for (Failure alone : writeAlone.apply(failure.record())) {
        // Only its write to this table: its other tables were settled by the first attempt.
        if (failure.cql().equals(alone.cql())) {
          settled.add(alone);
        }
      }
    }
    return settled;
  }

  /**
   * The errors Cassandra gave a whole batch as invalid: one exception instance shared by
   * several failed writes. A write refused alone, or not taken for now (retried as a batch
   * anyway), is not one.
   */
  static Set<Throwable> batchRefusals(List<Failure> failed) {
    Map<Throwable, Integer> writes = new IdentityHashMap<>();
    for (Failure failure : failed) {
      if (failure.write() && !CassandraSinkTask.isTransient(failure.error())) {
        writes.merge(failure.error(), 1, Integer::sum);
      }
    }
    Set<Throwable> shared = Collections.newSetFromMap(new IdentityHashMap<>());
    writes.forEach(
        (error, count) -> {
          if (count > 1) {
            shared.add(error);
          }
        });
    return shared;
  }
}
