package io.capstock.sink;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.datastax.oss.common.sink.config.CassandraSinkConfig;
import com.datastax.oss.common.sink.config.CassandraSinkConfig.IgnoreErrorsPolicy;
import com.datastax.oss.common.sink.config.TableConfig;
import com.datastax.oss.common.sink.config.TopicConfig;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.kafka.common.config.Config;
import org.apache.kafka.common.config.ConfigValue;
import org.junit.jupiter.api.Test;

/**
 * The committed register_cassandra.json, read by the engine's own configuration classes: what
 * Connect's validate call never checks for DataStax's connector (topic.* keys are read only when
 * a task starts).
 */
class RegisterCassandraJsonTest {
  private static final Map<String, String> WORKER_ENV =
      Map.of(
          "CASSANDRA_HOST", "127.0.0.1",
          "CASSANDRA_PORT", "9042",
          "CASSANDRA_DATACENTER", "datacenter1",
          "CASSANDRA_USER", "cap_stock",
          "CASSANDRA_PASSWORD", "secret");

  static Map<String, String> committed() throws Exception {
    Path file = Path.of(System.getProperty("repo.root", "../.."), "register_cassandra.json");
    JsonNode document = new ObjectMapper().readTree(file.toFile());
    Map<String, String> settings = new HashMap<>();
    document.get("config").fields().forEachRemaining(e -> settings.put(e.getKey(), e.getValue().asText()));
    settings.put("name", document.get("name").asText());
    return settings;
  }

  /** What Connect's env config provider does in a worker that has WORKER_ENV. */
  static Map<String, String> resolved(Map<String, String> settings) {
    Map<String, String> out = new HashMap<>();
    settings.forEach(
        (key, value) -> {
          String v = value;
          for (Map.Entry<String, String> env : WORKER_ENV.entrySet()) {
            v = v.replace("${env:" + env.getKey() + "}", env.getValue());
          }
          out.put(key, v);
        });
    return out;
  }

  @Test
  void theEngineAcceptsTheCommittedFileAndSeesEveryTable() throws Exception {
    CassandraSinkConfig config = new CassandraSinkConfig(resolved(committed()));
    List<String> topics = List.of(committed().get("topics").split(","));
    assertEquals(6, topics.size());
    assertEquals(IgnoreErrorsPolicy.NONE, config.getIgnoreErrors());
    assertEquals("datacenter1", config.getLocalDc().orElseThrow());
    for (String topic : topics) {
      TopicConfig topicConfig = config.getTopicConfigs().get(topic);
      assertEquals(1, topicConfig.getTableConfigs().size(), topic);
      TableConfig table = topicConfig.getTableConfigs().iterator().next();
      assertEquals("cap_stock", table.getKeyspace().asInternal());
      assertTrue(topic.endsWith("." + table.getTable().asInternal()), topic);
      assertFalse(table.isDeletesEnabled(), topic);
      assertTrue(table.getMapping().size() >= 5, topic);
    }
  }

  @Test
  void tablesWithADateColumnReadDebeziumsOffsetDates() throws Exception {
    CassandraSinkConfig config = new CassandraSinkConfig(resolved(committed()));
    for (String table : List.of("recent_trades", "order_book", "latest_prices")) {
      String topic = "cap_stock.public." + table;
      TopicConfig topicConfig = config.getTopicConfigs().get(topic);
      assertEquals("ISO_DATE", topicConfig.getString("topic." + topic + ".codec.date"), table);
    }
    String klines = "cap_stock.public.kline_data";
    assertEquals(
        "ISO_LOCAL_DATE",
        config.getTopicConfigs().get(klines).getString("topic." + klines + ".codec.date"));
  }

  @Test
  void theEngineRejectsAMisspelledTableSetting() throws Exception {
    Map<String, String> settings = resolved(committed());
    settings.put("topic.cap_stock.public.heartbeat.cap_stock.heartbeat.deleteEnabled", "false");
    assertThrows(RuntimeException.class, () -> new CassandraSinkConfig(settings));
  }

  @Test
  void validateReportsTopicErrorsAndUnresolvedReferences() throws Exception {
    CassandraSinkConnector connector = new CassandraSinkConnector();
    assertEquals(0, errors(connector.validate(resolved(committed()))));

    Map<String, String> unresolved = committed(); // no worker environment at all
    Config config = connector.validate(unresolved);
    ConfigValue dc =
        config.configValues().stream()
            .filter(v -> v.name().equals("loadBalancing.localDc"))
            .findFirst()
            .orElseThrow();
    assertTrue(dc.errorMessages().get(0).contains("CASSANDRA_DATACENTER"), dc.errorMessages().toString());

    Map<String, String> broken = resolved(committed());
    broken.remove("topic.cap_stock.public.heartbeat.cap_stock.heartbeat.mapping");
    assertTrue(errors(connector.validate(broken)) > 0);
  }

  private static long errors(Config config) {
    return config.configValues().stream().mapToLong(v -> v.errorMessages().size()).sum();
  }
}
