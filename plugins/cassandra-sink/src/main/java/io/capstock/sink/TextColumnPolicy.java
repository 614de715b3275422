package io.capstock.sink;

import com.datastax.oss.common.sink.AbstractSinkRecord;
import com.datastax.oss.common.sink.AbstractStruct;
import com.datastax.oss.common.sink.config.CassandraSinkConfig;
import com.datastax.oss.common.sink.config.TableConfig;
import com.datastax.oss.common.sink.config.TopicConfig;
import com.datastax.oss.common.sink.metadata.InnerDataAndMetadata;
import com.datastax.oss.common.sink.metadata.MetadataCreator;
import com.datastax.oss.common.sink.record.HeadersDataMetadata;
import com.datastax.oss.common.sink.record.KeyValueRecord;
import com.datastax.oss.common.sink.record.KeyValueRecordMetadata;
import com.datastax.oss.driver.api.core.CqlIdentifier;
import com.datastax.oss.driver.api.core.metadata.Metadata;
import com.datastax.oss.driver.api.core.metadata.schema.ColumnMetadata;
import com.datastax.oss.driver.api.core.type.DataType;
import com.datastax.oss.driver.api.core.type.DataTypes;
import com.datastax.oss.driver.api.core.type.reflect.GenericType;
import com.datastax.oss.driver.internal.core.type.codec.registry.DefaultCodecRegistry;
import com.datastax.oss.dsbulk.codecs.api.ConvertingCodec;
import com.datastax.oss.dsbulk.codecs.api.ConvertingCodecFactory;
import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.BiFunction;

/**
 * The two rules for text columns that are stricter than the engine, checked before a record is
 * handed to it. The Python sink ({@code sink/cassandra_sink/codecs.py}) applies the same ones,
 * and the differential integration test holds both sinks to identical rows and dead letters:
 *
 * <ul>
 *   <li>a JSON array or object is refused (the engine would store its compact JSON);
 *   <li>a text longer than {@link #TEXT_MAX_CHARS} code points is refused (the engine stores any
 *       length Cassandra takes). The length is that of the text the engine's own codec makes of
 *       the value, so {@code 42}, {@code 1.50} ("1.5") and {@code true} count as their text.
 * </ul>
 *
 * Every text column of the pipeline holds a short identifier (symbol, interval, side, source),
 * so either case is a malformed record, not data.
 *
 * <p>The record is read with the engine's own classes ({@link MetadataCreator}, {@link
 * KeyValueRecord}) so a field means here exactly what it means to the engine. Anything else
 * wrong with a record (missing field, null key, not JSON) is left for the engine to report. A
 * record refused for one table is written to none (every topic of the pipeline feeds one table).
 */
final class TextColumnPolicy {
  /** The longest text accepted, in code points; codecs.py's TEXT_MAX_CHARS. */
  static final int TEXT_MAX_CHARS = 256;

  /** A text column of one table of a topic, with the field mapped to it. */
  private record TextColumn(String table, String column, String field, Codecs codecs) {}

  private final Map<String, List<TextColumn>> columnsByTopic;

  private TextColumnPolicy(Map<String, List<TextColumn>> columnsByTopic) {
    this.columnsByTopic = columnsByTopic;
  }

  /** The policy for the tables as the connected session sees them (after the engine started). */
  static TextColumnPolicy of(CassandraSinkConfig config, Metadata metadata) {
    return of(
        config,
        (table, column) ->
            metadata
                .getKeyspace(table.getKeyspace())
                .flatMap(k -> k.getTable(table.getTable()))
                .flatMap(t -> t.getColumn(column))
                .map(ColumnMetadata::getType));
  }

  /** The policy given each mapped column's CQL type (empty: not a column, e.g. __ttl). */
  static TextColumnPolicy of(
      CassandraSinkConfig config,
      BiFunction<TableConfig, CqlIdentifier, Optional<DataType>> columnType) {
    Map<String, List<TextColumn>> byTopic = new HashMap<>();
    for (TopicConfig topic : config.getTopicConfigs().values()) {
      Codecs codecs = new Codecs(topic);
      List<TextColumn> columns = new ArrayList<>();
      for (TableConfig table : topic.getTableConfigs()) {
        table
            .getMapping()
            .forEach(
                (column, field) -> {
                  // varchar is text to the driver; mapped functions (now()) are never text.
                  if (columnType.apply(table, column).filter(DataTypes.TEXT::equals).isPresent()) {
                    columns.add(
                        new TextColumn(
                            table.getKeyspaceAndTable(),
                            column.asInternal(),
                            field.asInternal(),
                            codecs));
                  }
                });
      }
      if (!columns.isEmpty()) {
        byTopic.put(topic.getTopicName(), List.copyOf(columns));
      }
    }
    return new TextColumnPolicy(byTopic);
  }

  /** Why the record must not be written, or empty when the rules let it through. */
  Optional<String> violation(AbstractSinkRecord record) {
    List<TextColumn> columns = columnsByTopic.get(record.topic());
    if (columns == null) {
      return Optional.empty();
    }
    KeyValueRecord fields;
    KeyValueRecordMetadata types;
    try {
      InnerDataAndMetadata key = MetadataCreator.makeMeta(record.key());
      InnerDataAndMetadata value = MetadataCreator.makeMeta(record.value());
      fields =
          new KeyValueRecord(
              key.getInnerData(), value.getInnerData(), record.timestamp(), record.headers());
      types =
          new KeyValueRecordMetadata(
              key.getInnerMetadata(),
              value.getInnerMetadata(),
              new HeadersDataMetadata(record.headers()));
    } catch (Exception e) {
      return Optional.empty(); // unreadable: the engine reports it with its own message
    }
    for (TextColumn column : columns) {
      // The engine binds only the fields the record has; a missing one is its failure.
      if (!fields.fields().contains(column.field())) {
        continue;
      }
      Optional<String> why = check(column, fields.getFieldValue(column.field()), types);
      if (why.isPresent()) {
        return Optional.of(column.table() + ": column " + column.column() + ": " + why.get());
      }
    }
    return Optional.empty();
  }

  private static Optional<String> check(
      TextColumn column, Object raw, KeyValueRecordMetadata types) {
    String container = containerKind(raw);
    if (container != null) {
      String shown = abbreviate(String.valueOf(raw));
      return Optional.of(shown + " is a JSON " + container + ", not text");
    }
    String text;
    try {
      GenericType<?> type = types.getFieldType(column.field(), DataTypes.TEXT);
      text = type == null || raw == null ? null : column.codecs().toText(type, raw);
    } catch (RuntimeException e) {
      return Optional.empty(); // the engine cannot convert it either and reports it
    }
    return tooLong(text);
  }

  /** "array" or "object" for a container value (JSON, or a Connect struct/list/map), else null. */
  static String containerKind(Object raw) {
    if (raw instanceof JsonNode node && node.isContainerNode()) {
      return node.isArray() ? "array" : "object";
    }
    if (raw instanceof Collection<?>) {
      return "array";
    }
    return raw instanceof Map<?, ?> || raw instanceof AbstractStruct ? "object" : null;
  }

  /** Counted in code points, as Python counts a str: an emoji is one, not two chars. */
  static Optional<String> tooLong(String text) {
    if (text == null) {
      return Optional.empty();
    }
    int length = text.codePointCount(0, text.length());
    if (length <= TEXT_MAX_CHARS) {
      return Optional.empty();
    }
    return Optional.of(
        "text of " + length + " characters is longer than " + TEXT_MAX_CHARS + " (TEXT_MAX_CHARS)");
  }

  private static String abbreviate(String text) {
    return text.length() <= 80 ? text : text.substring(0, 80) + "...";
  }

  /**
   * One topic's text conversions, built from its {@code codec.*} settings as the engine builds
   * its own, so a value becomes the very text the engine would write.
   */
  private static final class Codecs {
    private final ConvertingCodecFactory factory;
    private final Map<GenericType<?>, ConvertingCodec<Object, String>> byType =
        new ConcurrentHashMap<>();

    Codecs(TopicConfig topic) {
      factory = topic.createCodecFactory(new DefaultCodecRegistry("cap-stock-text-policy"));
    }

    @SuppressWarnings("unchecked") // the codec takes the type the record metadata named
    String toText(GenericType<?> type, Object raw) {
      return byType
          .computeIfAbsent(
              type,
              t -> factory.createConvertingCodec(DataTypes.TEXT, (GenericType<Object>) t, true))
          .externalToInternal(raw);
    }
  }
}
