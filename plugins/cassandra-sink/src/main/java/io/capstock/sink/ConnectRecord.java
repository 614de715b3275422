package io.capstock.sink;

import com.datastax.oss.common.sink.AbstractSchema;
import com.datastax.oss.common.sink.AbstractSinkRecord;
import com.datastax.oss.common.sink.AbstractSinkRecordHeader;
import java.util.ArrayList;
import java.util.List;
import org.apache.kafka.connect.header.Header;
import org.apache.kafka.connect.sink.SinkRecord;

/**
 * One Connect record handed to the engine.
 *
 * <p>A value read with {@code StringConverter} arrives as the JSON text itself, which the
 * engine parses with its own JSON reader (big integers and decimals kept exact). A {@code
 * JsonConverter} value without schemas arrives as a Map, which the engine turns back into JSON;
 * a value with schemas arrives as a Struct and is read field by field.
 */
record ConnectRecord(SinkRecord record) implements AbstractSinkRecord {

  @Override
  public Iterable<AbstractSinkRecordHeader> headers() {
    List<AbstractSinkRecordHeader> headers = new ArrayList<>();
    for (Header header : record.headers()) {
      headers.add(new ConnectHeader(header));
    }
    return headers;
  }

  @Override
  public Object key() {
    return ConnectStruct.wrap(record.key());
  }

  @Override
  public Object value() {
    return ConnectStruct.wrap(record.value());
  }

  @Override
  public Long timestamp() {
    return record.timestamp();
  }

  @Override
  public String topic() {
    return record.topic();
  }

  /** Where the record sits in Kafka, for log lines: {@code topic[partition]@offset}. */
  String coordinates() {
    return record.topic() + "[" + record.kafkaPartition() + "]@" + record.kafkaOffset();
  }

  /** A record header, for mappings such as {@code col=header.name}. */
  record ConnectHeader(Header header) implements AbstractSinkRecordHeader {
    @Override
    public String key() {
      return header.key();
    }

    @Override
    public Object value() {
      return ConnectStruct.wrap(header.value());
    }

    @Override
    public AbstractSchema schema() {
      return ConnectSchema.of(header.schema());
    }
  }
}
