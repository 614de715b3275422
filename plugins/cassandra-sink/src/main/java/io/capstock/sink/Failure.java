package io.capstock.sink;

/**
 * One record that could not be written to one table, and why.
 *
 * @param cql the statement Cassandra refused; null when the record never became a statement (the
 *     engine could not map it, or {@link TextColumnPolicy} refused it)
 */
record Failure(ConnectRecord record, Throwable error, String cql) {
  /** Cassandra refused (or could not take) the write, as opposed to a record never mapped. */
  boolean write() {
    return cql != null;
  }
}
