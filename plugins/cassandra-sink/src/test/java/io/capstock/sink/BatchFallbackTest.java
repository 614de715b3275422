package io.capstock.sink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.datastax.oss.driver.api.core.DriverTimeoutException;
import com.datastax.oss.driver.api.core.servererrors.InvalidQueryException;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletionException;
import org.apache.kafka.connect.sink.SinkRecord;
import org.junit.jupiter.api.Test;

/** A batch Cassandra refuses as invalid: only its bad record may reach the dead-letter topic. */
class BatchFallbackTest {
  private static final String INSERT = "INSERT INTO cap_stock.recent_trades ...";
  private static final String OTHER_TABLE = "INSERT INTO cap_stock.other ...";

  private static ConnectRecord record(long offset) {
    return new ConnectRecord(
        new SinkRecord("cap_stock.public.recent_trades", 0, null, null, null, "{}", offset));
  }

  private static InvalidQueryException invalid(String message) {
    return new InvalidQueryException(null, message);
  }

  @Test
  void onlyTheRecordCassandraRefusesAloneFails() {
    InvalidQueryException batchError = invalid("Key length of 70000 is longer than maximum");
    List<Failure> failed = new ArrayList<>();
    for (long offset : new long[] {12, 10, 11}) { // the engine's order is not Kafka's
      failed.add(new Failure(record(offset), batchError, INSERT));
    }
    List<Long> writtenAlone = new ArrayList<>();
    InvalidQueryException aloneError = invalid("Key length of 70000 is longer than maximum");
    List<Failure> settled =
        BatchFallback.isolate(
            failed,
            r -> {
              writtenAlone.add(r.record().kafkaOffset());
              return r.record().kafkaOffset() == 11
                  ? List.of(new Failure(r, aloneError, INSERT))
                  : List.of();
            });
    assertEquals(List.of(10L, 11L, 12L), writtenAlone);
    assertEquals(1, settled.size());
    assertEquals(11L, settled.get(0).record().record().kafkaOffset());
    assertSame(aloneError, settled.get(0).error());
  }

  @Test
  void aRecordRefusedAloneAndMappingFailuresAreKept() {
    List<Failure> failed =
        List.of(
            new Failure(record(1), invalid("bad"), INSERT),
            new Failure(record(2), new IllegalArgumentException("not a number"), null),
            new Failure(record(3), invalid("bad"), INSERT));
    List<Failure> settled =
        BatchFallback.isolate(
            failed,
            r -> {
              throw new AssertionError("nothing to write again");
            });
    assertSame(failed, settled);
  }

  @Test
  void transientBatchFailuresAreNotSplit() {
    DriverTimeoutException timeout = new DriverTimeoutException("Query timed out after PT2S");
    List<Failure> failed =
        List.of(new Failure(record(1), timeout, INSERT), new Failure(record(2), timeout, INSERT));
    assertTrue(BatchFallback.batchRefusals(failed).isEmpty());
  }

  @Test
  void aWrappedRefusalIsRecognised() {
    CompletionException wrapped = new CompletionException(invalid("Batch too large"));
    List<Failure> failed =
        List.of(new Failure(record(1), wrapped, INSERT), new Failure(record(2), wrapped, INSERT));
    assertEquals(Set.of(wrapped), BatchFallback.batchRefusals(failed));
  }

  @Test
  void failuresOfTheRecordsOtherTablesAreNotReportedTwice() {
    InvalidQueryException batchError = invalid("bad");
    List<Failure> failed =
        List.of(
            new Failure(record(1), batchError, INSERT), new Failure(record(2), batchError, INSERT));
    List<Failure> settled =
        BatchFallback.isolate(
            failed,
            r ->
                List.of(
                    new Failure(r, invalid("other table"), OTHER_TABLE),
                    new Failure(r, new IllegalStateException("mapping"), null)));
    assertEquals(List.of(), settled);
  }
}
