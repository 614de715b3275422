package io.capstock.sink;

import com.datastax.oss.common.sink.AbstractSinkRecord;
import com.datastax.oss.common.sink.AbstractSinkTask;
import com.datastax.oss.common.sink.config.CassandraSinkConfig.IgnoreErrorsPolicy;
import com.datastax.oss.driver.api.core.AllNodesFailedException;
import com.datastax.oss.driver.api.core.DriverTimeoutException;
import com.datastax.oss.driver.api.core.auth.AuthenticationException;
import com.datastax.oss.driver.api.core.servererrors.InvalidQueryException;
import com.datastax.oss.driver.api.core.servererrors.SyntaxError;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletionException;
import org.apache.kafka.connect.errors.ConnectException;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.errors.RetriableException;
import org.apache.kafka.connect.sink.ErrantRecordReporter;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.sink.SinkTask;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes each batch Connect hands over through the DataStax sink engine, then settles the
 * records the engine could not write.
 *
 * <p>Guarantee: {@code put} returns only when every record of the batch is either written or
 * handed to Connect's error handler, so the offsets Connect commits afterwards never skip an
 * unwritten row. Writes are idempotent upserts, so a retried batch leaves Cassandra as before.
 *
 * <p>If Cassandra cannot be reached when the task starts (it is still starting, or down), the
 * task stays RUNNING and tries again before each batch, with a growing pause, instead of
 * failing for good; a wrong password, mapping or table still fails it at once.
 *
 * <p>What happens to a failed record (the engine's {@code ignoreErrors}, default None):
 *
 * <ul>
 *   <li>A write that failed because Cassandra was unavailable, overloaded or slow is retried:
 *       the whole batch is handed back to Connect with a growing pause (None only; All and
 *       Driver skip it, as the engine documents).
 *   <li>A record the engine cannot map (a missing field, a value its codecs reject), that {@link
 *       TextColumnPolicy} refuses (a JSON array/object or an over-long text for a text column,
 *       as the Python sink refuses it) or that Cassandra rejects as invalid goes to Connect's
 *       error handler: with {@code errors.tolerance=all} it is counted, logged once with
 *       topic/partition/offset and written to the dead-letter topic if one is configured, and
 *       the rest keeps flowing; with the default {@code errors.tolerance=none} the task fails
 *       and says which record.
 *   <li>The engine writes the records of one table and partition as one batch; when Cassandra
 *       rejects that batch as invalid, its records are written again one at a time, so only the
 *       record at fault is rejected and its neighbours are stored.
 * </ul>
 */
public class CassandraSinkTask extends SinkTask {
  private static final Logger log = LoggerFactory.getLogger(CassandraSinkTask.class);
  private static final long RETRY_FIRST_MS = 500;
  // Capped low: once Cassandra is back, writes resume within seconds (issue 10).
  private static final long RETRY_MAX_MS = 5_000;

  private final Engine engine = new Engine();
  private final List<Failure> failures = new ArrayList<>();
  private Map<String, String> settings;
  private boolean engineStarted;
  private TextColumnPolicy textPolicy;
  private ErrantRecordReporter reporter;
  private int retries;
  private long rejected;

  @Override
  public String version() {
    return Version.text();
  }

  @Override
  public void start(Map<String, String> props) {
    settings = props;
    reporter = errantRecordReporter();
    startEngine();
  }

  /** Connects and prepares the statements; false (and a pause set) while Cassandra is away. */
  private boolean startEngine() {
    if (engineStarted && sessionClosed()) {
      // The engine shares one session among a connector's tasks and closes it when the
      // last one stops; a task started while its predecessor was stopping (a rebalance
      // after a broker restart) joins that closing state and every write would fail with
      // "Session is closed", forever. Leave it and start on a new one.
      log.warn("The engine's Cassandra session was closed under this task; connecting again");
      engine.stop();
      engineStarted = false;
    }
    if (engineStarted) {
      return true;
    }
    try {
      engine.start(settings);
    } catch (RuntimeException e) {
      if (!isUnreachable(e)) {
        throw new ConnectException("The Cassandra sink cannot start: " + e.getMessage(), e);
      }
      long pause = nextPause();
      log.warn("Cassandra is not reachable ({}); connecting again in {} ms", e.getMessage(), pause);
      return false;
    }
    // The column types come from the session's schema, known only once the engine is up.
    textPolicy =
        TextColumnPolicy.of(
            engine.getInstanceState().getConfig(),
            engine.getInstanceState().getSession().getMetadata());
    engineStarted = true;
    if (retries > 0) {
      log.info("Connected to Cassandra after {} attempts", retries + 1);
      retries = 0;
    }
    return true;
  }

  private boolean sessionClosed() {
    return engine.getInstanceState().getSession().isClosed();
  }

  /** Cassandra still starting, restarting or down; not a refused login. */
  static boolean isUnreachable(Throwable error) {
    Throwable cause = rootCause(error);
    if (cause instanceof DriverTimeoutException) {
      return true;
    }
    return cause instanceof AllNodesFailedException nodes
        && nodes.getAllErrors().values().stream()
            .flatMap(List::stream)
            .noneMatch(e -> e instanceof AuthenticationException);
  }

  private long nextPause() {
    long pause = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS << Math.min(retries, 10));
    retries++;
    context.timeout(pause);
    return pause;
  }

  private ErrantRecordReporter errantRecordReporter() {
    try {
      return context.errantRecordReporter();
    } catch (NoSuchMethodError | NoClassDefFoundError e) {
      return null; // a Connect runtime older than 2.6
    }
  }

  @Override
  public void put(Collection<SinkRecord> records) {
    if (!startEngine()) {
      throw new RetriableException("Cassandra is not reachable yet; the batch will be retried");
    }
    if (records.isEmpty()) {
      return;
    }
    List<Failure> failed = new ArrayList<>();
    List<AbstractSinkRecord> accepted = screen(records, failed);
    List<Failure> engineFailures = write(accepted);
    // Nothing is settled before the batch is written for good: a batch handed back to Connect
    // comes back whole, and its rejected records would otherwise be reported twice.
    retryIfTransient(engineFailures, records.size());
    failed.addAll(BatchFallback.isolate(engineFailures, r -> write(List.of(r))));
    retryIfTransient(failed, records.size());
    if (retries > 0) {
      log.info("Cassandra writes succeed again after {} retries", retries);
      retries = 0;
    }
    IgnoreErrorsPolicy policy = engine.getInstanceState().getConfig().getIgnoreErrors();
    failed.forEach(f -> reject(f, policy));
  }

  /** The records the text policy lets through; the others are added to {@code failed}. */
  private List<AbstractSinkRecord> screen(Collection<SinkRecord> records, List<Failure> failed) {
    List<AbstractSinkRecord> accepted = new ArrayList<>(records.size());
    for (SinkRecord r : records) {
      ConnectRecord record = new ConnectRecord(r);
      Optional<String> violation = textPolicy.violation(record);
      if (violation.isPresent()) {
        failed.add(new Failure(record, new DataException(violation.get()), null));
      } else {
        accepted.add(record);
      }
    }
    return accepted;
  }

  /** Hands the records to the engine; what it could not write. */
  private List<Failure> write(Collection<AbstractSinkRecord> records) {
    synchronized (failures) {
      failures.clear();
    }
    engine.put(records);
    synchronized (failures) {
      return new ArrayList<>(failures);
    }
  }

  /** Hands the batch back to Connect when Cassandra did not take a write for now. */
  private void retryIfTransient(List<Failure> failed, int batchSize) {
    IgnoreErrorsPolicy policy = engine.getInstanceState().getConfig().getIgnoreErrors();
    long transientFailures =
        failed.stream().filter(f -> f.write() && isTransient(f.error())).count();
    if (policy == IgnoreErrorsPolicy.NONE && transientFailures > 0) {
      long pause = nextPause();
      Failure first =
          failed.stream()
              .filter(f -> f.write() && isTransient(f.error()))
              .findFirst()
              .orElseThrow();
      log.warn(
          "Cassandra did not take {} of {} records ({}); retry {} of the batch in {} ms",
          transientFailures,
          batchSize,
          rootCause(first.error()).getMessage(),
          retries,
          pause);
      throw new RetriableException("Cassandra write failed; the batch will be retried");
    }
  }

  private void reject(Failure failure, IgnoreErrorsPolicy policy) {
    String where = failure.record().coordinates();
    String reason = rootCause(failure.error()).getMessage();
    boolean ignored =
        policy == IgnoreErrorsPolicy.ALL || (policy == IgnoreErrorsPolicy.DRIVER && failure.write());
    rejected++;
    if (ignored) {
      log.warn("Skipped record {} (ignoreErrors={}): {}", where, policy, reason);
      return;
    }
    if (reporter == null) {
      throw new ConnectException("Cannot write record " + where + ": " + reason);
    }
    log.error(
        "Rejected record {} ({} rejected so far): {}; handed to Connect's error handler "
            + "(errors.tolerance, errors.deadletterqueue.topic.name)",
        where,
        rejected,
        reason);
    // With errors.tolerance=none this throws and the task fails, naming the record.
    reporter.report(failure.record().record(), failure.error());
  }

  /** Cassandra may accept the same write later; an invalid statement never. */
  static boolean isTransient(Throwable error) {
    Throwable cause = rootCause(error);
    return !(cause instanceof InvalidQueryException || cause instanceof SyntaxError);
  }

  static Throwable rootCause(Throwable error) {
    Throwable cause = error;
    while (cause instanceof CompletionException && cause.getCause() != null) {
      cause = cause.getCause();
    }
    return cause;
  }

  @Override
  public void stop() {
    engine.stop();
  }

  /** The engine; failures are collected here and settled once the batch is done. */
  private final class Engine extends AbstractSinkTask {
    @Override
    protected void handleFailure(
        AbstractSinkRecord record, Throwable error, String cql, Runnable failCounter) {
      failCounter.run();
      synchronized (failures) {
        failures.add(new Failure((ConnectRecord) record, error, cql));
      }
    }

    @Override
    public String version() {
      return Version.text();
    }

    @Override
    public String applicationName() {
      return "cap-stock Cassandra sink (DataStax sink engine)";
    }
  }
}
