"""Kafka Connect: one distributed worker with the Debezium source and our Cassandra sink."""

from __future__ import annotations

from dataclasses import dataclass

from stack.connect_api import request
from stack.process import StackError
from stack.services.base import (
    STACK_DIR,
    Component,
    connection_env,
    read_classpath,
    render,
)

DEBEZIUM_POSTGRES_CLASS = "io.debezium.connector.postgresql.PostgresConnector"
# Our Connect adapter around the DataStax sink engine (plugins/cassandra-sink).
CASSANDRA_SINK_CLASS = "io.capstock.sink.CassandraSinkConnector"
CASSANDRA_SINK_PLUGIN_DIR = "cap-stock-cassandra-sink"


@dataclass
class Connect(Component):
    name: str = "connect"
    start_timeout: float = 180.0

    @property
    def port(self) -> int:
        return self.settings.connect_port

    def worker_env(self) -> dict[str, str]:
        """What ${env:...} in connector configs can read: Debezium's and the sink's logins only."""
        s = self.settings
        return {
            **connection_env(s),
            "POSTGRES_CDC_USER": s.postgres_cdc_user,
            "POSTGRES_CDC_PASSWORD": s.postgres_cdc_password.get_secret_value(),
            "CASSANDRA_USER": s.cassandra_user,
            "CASSANDRA_PASSWORD": s.cassandra_password.get_secret_value(),
        }

    def launch(self) -> int:
        classpath = read_classpath(self.settings, "kafka")
        for plugin in ("debezium-connector-postgres", CASSANDRA_SINK_PLUGIN_DIR):
            if not any(self.settings.plugin_dir.glob(f"{plugin}/*.jar")):
                raise StackError(f"connect: plugins/{plugin} has no jars; run `make fetch` first")
        config = render(
            STACK_DIR / "kafka" / "connect-distributed.properties",
            self.settings.conf_dir / "connect.properties",
            kafka_port=self.settings.kafka_port,
            connect_port=self.port,
            plugin_path=self.settings.plugin_dir,
        )
        argv = self.java(
            classpath,
            self.settings.connect_heap,
            "org.apache.kafka.connect.cli.ConnectDistributed",
            str(config),
            opts=[*self.log4j_options(), "-XX:+UseG1GC"],
        )
        return self.detach(argv, self.out_file, env=self.worker_env())

    def plugins(self) -> list[str]:
        listed = request("GET", f"{self.settings.connect_url}/connector-plugins", timeout=3)
        return [p["class"] for p in listed]  # type: ignore[union-attr, index]

    def healthy(self) -> bool:
        plugins = self.plugins()
        return DEBEZIUM_POSTGRES_CLASS in plugins and CASSANDRA_SINK_CLASS in plugins

    def version(self) -> str:
        return str(request("GET", f"{self.settings.connect_url}/", timeout=3)["version"])

    def connectors(self) -> dict[str, dict]:
        """Every connector: {"status": ..., "info": {"config": ..., "type": ...}}."""
        url = f"{self.settings.connect_url}/connectors?expand=status&expand=info"
        return request("GET", url, timeout=3)
