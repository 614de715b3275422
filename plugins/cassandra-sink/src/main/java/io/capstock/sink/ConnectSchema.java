package io.capstock.sink;

import com.datastax.oss.common.sink.AbstractField;
import com.datastax.oss.common.sink.AbstractSchema;
import java.util.List;
import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.Schema;

/** A Connect {@link Schema} seen through the engine's schema interface. */
final class ConnectSchema implements AbstractSchema {
  private final Schema schema;

  private ConnectSchema(Schema schema) {
    this.schema = schema;
  }

  /** Null stays null: a schemaless value has no schema to describe. */
  static ConnectSchema of(Schema schema) {
    return schema == null ? null : new ConnectSchema(schema);
  }

  @Override
  public AbstractSchema valueSchema() {
    return of(schema.valueSchema());
  }

  @Override
  public AbstractSchema keySchema() {
    return of(schema.keySchema());
  }

  @Override
  public Type type() {
    // Both enums name the same core types.
    return Type.valueOf(schema.type().name());
  }

  @Override
  public List<? extends AbstractField> fields() {
    return schema.fields().stream().map(ConnectField::new).toList();
  }

  @Override
  public AbstractField field(String name) {
    Field field = schema.field(name);
    return field == null ? null : new ConnectField(field);
  }

  /** One field of a Connect struct schema. */
  record ConnectField(Field field) implements AbstractField {
    @Override
    public String name() {
      return field.name();
    }

    @Override
    public AbstractSchema schema() {
      return of(field.schema());
    }
  }
}
