package io.capstock.sink;

import com.datastax.oss.common.sink.AbstractSchema;
import com.datastax.oss.common.sink.AbstractStruct;
import org.apache.kafka.connect.data.Struct;

/** A Connect {@link Struct} (a value read with schemas) seen through the engine's interface. */
final class ConnectStruct implements AbstractStruct {
  private final Struct struct;

  ConnectStruct(Struct struct) {
    this.struct = struct;
  }

  /** Structs are wrapped (nested ones too, lazily); every other value passes as it is. */
  static Object wrap(Object value) {
    return value instanceof Struct struct ? new ConnectStruct(struct) : value;
  }

  @Override
  public Object get(String field) {
    return wrap(struct.get(field));
  }

  @Override
  public AbstractSchema schema() {
    return ConnectSchema.of(struct.schema());
  }
}
