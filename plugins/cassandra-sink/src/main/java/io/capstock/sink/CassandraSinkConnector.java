package io.capstock.sink;

import com.datastax.oss.common.sink.config.CassandraSinkConfig;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.common.config.Config;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.config.ConfigValue;
import org.apache.kafka.connect.connector.Task;
import org.apache.kafka.connect.sink.SinkConnector;

/**
 * Kafka Connect sink connector that writes topics into Cassandra with the DataStax sink engine,
 * configured exactly like DataStax's own connector ({@code register_cassandra.json}).
 *
 * <p>Its simple class name equals DataStax's, so a config that says {@code
 * "connector.class": "CassandraSinkConnector"} selects whichever of the two a worker has.
 *
 * <p>Unlike DataStax's connector, {@link #validate} builds the engine's whole configuration, so
 * Connect's validate call also reports errors in {@code topic.*} keys (mappings, codecs) and
 * {@code ${env:...}} references the worker could not resolve, instead of failing only when the
 * task starts.
 */
public class CassandraSinkConnector extends SinkConnector {
  private static final Pattern UNRESOLVED = Pattern.compile("\\$\\{(\\w+):([^}]*)}");
  private Map<String, String> settings;

  @Override
  public String version() {
    return Version.text();
  }

  @Override
  public void start(Map<String, String> props) {
    // Fail the connector now, with the engine's message, rather than each task later.
    new CassandraSinkConfig(props);
    settings = Map.copyOf(props);
  }

  @Override
  public Class<? extends Task> taskClass() {
    return CassandraSinkTask.class;
  }

  @Override
  public List<Map<String, String>> taskConfigs(int maxTasks) {
    // Every task reads the same settings; Connect spreads the topic partitions over them.
    return new ArrayList<>(Collections.nCopies(maxTasks, settings));
  }

  @Override
  public void stop() {}

  @Override
  public ConfigDef config() {
    return CassandraSinkConfig.GLOBAL_CONFIG_DEF;
  }

  @Override
  public Config validate(Map<String, String> props) {
    Config result = super.validate(props);
    Map<String, ConfigValue> values = new HashMap<>();
    result.configValues().forEach(v -> values.put(v.name(), v));
    List<ConfigValue> extra = new ArrayList<>();
    props.forEach(
        (key, value) -> {
          Matcher ref = UNRESOLVED.matcher(value == null ? "" : value);
          if (ref.find()) {
            String error =
                "unresolved reference "
                    + ref.group()
                    + ": the Connect worker has no such "
                    + ("env".equals(ref.group(1)) ? "environment variable" : "value")
                    + " (set it where the worker starts)";
            valueFor(key, value, values, extra).addErrorMessage(error);
          }
        });
    try {
      new CassandraSinkConfig(props);
    } catch (RuntimeException e) {
      valueFor("topics", props.get("topics"), values, extra).addErrorMessage(e.getMessage());
    }
    if (extra.isEmpty()) {
      return result;
    }
    List<ConfigValue> all = new ArrayList<>(result.configValues());
    all.addAll(extra);
    return new Config(all);
  }

  private static ConfigValue valueFor(
      String key, String value, Map<String, ConfigValue> values, List<ConfigValue> extra) {
    return values.computeIfAbsent(
        key,
        k -> {
          ConfigValue created = new ConfigValue(k, value, List.of(), new ArrayList<>());
          extra.add(created);
          return created;
        });
  }
}
