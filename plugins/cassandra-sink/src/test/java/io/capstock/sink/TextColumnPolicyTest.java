package io.capstock.sink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.datastax.oss.common.sink.config.CassandraSinkConfig;
import com.datastax.oss.driver.api.core.type.DataType;
import com.datastax.oss.driver.api.core.type.DataTypes;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaBuilder;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.sink.SinkRecord;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The text-column rules the Python sink applies too (codecs.py), checked on records as Connect
 * hands them over with the committed register_cassandra.json; the same kinds of values as the
 * symbol probes of tests/integration/test_sink_differential.py.
 */
class TextColumnPolicyTest {
  private static final String TRADES = "cap_stock.public.recent_trades";
  // The pipeline's text columns (producer/capstock/model/tables.py); the rest are never text.
  private static final Set<String> TEXT_COLUMNS = Set.of("symbol", "interval", "side", "source");
  private static final ObjectMapper JSON = new ObjectMapper();
  private static TextColumnPolicy policy;

  @BeforeAll
  static void policy() throws Exception {
    Map<String, String> settings =
        RegisterCassandraJsonTest.resolved(RegisterCassandraJsonTest.committed());
    CassandraSinkConfig config = new CassandraSinkConfig(settings);
    policy =
        TextColumnPolicy.of(
            config,
            (table, column) -> {
              DataType type =
                  TEXT_COLUMNS.contains(column.asInternal()) ? DataTypes.TEXT : DataTypes.BIGINT;
              return Optional.of(type);
            });
  }

  private static Optional<String> trade(Object symbol) throws Exception {
    Map<String, Object> row = new HashMap<>();
    row.put("symbol", symbol);
    row.put("trade_id", 42);
    row.put("price", "0.00001234");
    return check(TRADES, JSON.writeValueAsString(row));
  }

  private static Optional<String> check(String topic, Object value) {
    return check(topic, Schema.OPTIONAL_STRING_SCHEMA, value);
  }

  private static Optional<String> check(String topic, Schema schema, Object value) {
    SinkRecord record =
        new SinkRecord(topic, 0, Schema.OPTIONAL_STRING_SCHEMA, null, schema, value, 7);
    return policy.violation(new ConnectRecord(record));
  }

  @Test
  void theLimitIsThePythonSinks() throws Exception {
    Path root = Path.of(System.getProperty("repo.root", "../.."));
    Path codecs = root.resolve("sink/cassandra_sink/codecs.py");
    Matcher declared =
        Pattern.compile("(?m)^TEXT_MAX_CHARS = (\\d+)$").matcher(Files.readString(codecs));
    assertTrue(declared.find(), "codecs.py declares TEXT_MAX_CHARS");
    assertEquals(Integer.parseInt(declared.group(1)), TextColumnPolicy.TEXT_MAX_CHARS);
  }

  @Test
  void textUpToTheLimitPasses() throws Exception {
    assertEquals(Optional.empty(), trade("BTCUSDT"));
    assertEquals(Optional.empty(), trade(""));
    assertEquals(Optional.empty(), trade("X".repeat(TextColumnPolicy.TEXT_MAX_CHARS)));
  }

  @Test
  void textOverTheLimitIsRejected() throws Exception {
    String why = trade("X".repeat(TextColumnPolicy.TEXT_MAX_CHARS + 1)).orElseThrow();
    assertEquals(
        "cap_stock.recent_trades: column symbol: text of 257 characters is longer than 256"
            + " (TEXT_MAX_CHARS)",
        why);
    assertTrue(trade("X".repeat(2000)).isPresent());
  }

  @Test
  void lengthIsCountedInCodePoints() throws Exception {
    // Each emoji is two UTF-16 chars but one code point, as Python's len() counts it.
    String emoji = "\uD83D\uDE00";
    assertEquals(Optional.empty(), trade(emoji.repeat(TextColumnPolicy.TEXT_MAX_CHARS)));
    assertTrue(trade(emoji.repeat(TextColumnPolicy.TEXT_MAX_CHARS + 1)).isPresent());
  }

  @Test
  void numbersAndBooleansCountAsTheTextTheyBecome() throws Exception {
    assertEquals(Optional.empty(), trade(42));
    assertEquals(Optional.empty(), trade(1.50));
    assertEquals(Optional.empty(), trade(true));
    String digits = "9".repeat(300);
    assertTrue(check(TRADES, "{\"symbol\": " + digits + ", \"trade_id\": 1}").isPresent());
    assertTrue(check(TRADES, "{\"symbol\": " + digits + ".5, \"trade_id\": 1}").isPresent());
  }

  @Test
  void arraysAndObjectsAreRejected() throws Exception {
    assertEquals(
        "cap_stock.recent_trades: column symbol: [\"a\"] is a JSON array, not text",
        trade(List.of("a")).orElseThrow());
    assertEquals(
        "cap_stock.recent_trades: column symbol: {\"a\":1} is a JSON object, not text",
        trade(Map.of("a", 1)).orElseThrow());
    assertTrue(trade(List.of()).isPresent());
  }

  @Test
  void otherFaultsAreLeftToTheEngine() throws Exception {
    assertEquals(Optional.empty(), trade(null)); // a null key column: the engine rejects it
    assertEquals(Optional.empty(), check(TRADES, "{\"trade_id\": 1}")); // missing field
    assertEquals(Optional.empty(), check(TRADES, "X".repeat(1000))); // not JSON at all
    assertEquals(Optional.empty(), check(TRADES, "[\"" + "X".repeat(1000) + "\"]"));
    assertEquals(Optional.empty(), check(TRADES, null)); // a tombstone
    assertEquals(Optional.empty(), check("some.other.topic", "{\"symbol\": [1]}"));
  }

  @Test
  void onlyTextColumnsAreBounded() throws Exception {
    String longNumber = "1".repeat(300);
    assertEquals(
        Optional.empty(),
        check(TRADES, "{\"symbol\": \"BTCUSDT\", \"trade_id\": \"" + longNumber + "\"}"));
    assertEquals(
        Optional.empty(),
        check(TRADES, "{\"symbol\": \"BTCUSDT\", \"trade_id\": [1], \"price\": {\"a\": 1}}"));
  }

  @Test
  void everyTopicsTextColumnsAreChecked() {
    String source = "cap_stock.public.heartbeat";
    assertTrue(check(source, "{\"source\": \"" + "p".repeat(300) + "\"}").isPresent());
    String klines = "cap_stock.public.kline_data";
    assertTrue(check(klines, "{\"symbol\": \"BTCUSDT\", \"interval\": [\"1m\"]}").isPresent());
  }

  @Test
  void valuesWithASchemaOrAsAMapAreCheckedToo() {
    Schema schema = SchemaBuilder.struct().field("symbol", Schema.STRING_SCHEMA).build();
    Struct struct = new Struct(schema).put("symbol", "X".repeat(300));
    assertTrue(check(TRADES, schema, struct).isPresent());
    assertEquals(Optional.empty(), check(TRADES, schema, struct.put("symbol", "BTCUSDT")));
    assertTrue(check(TRADES, null, Map.of("symbol", List.of("a"))).isPresent());
  }
}
