"""Kafka: one KRaft node (broker and controller at once), storage formatted once."""

from __future__ import annotations

import base64
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from stack.services.base import STACK_DIR, Component, as_service_user, read_classpath, render
from stack.settings import versions

# log4j for the one-shot Kafka tools (warnings on stderr); the servers use log4j.properties.
TOOLS_LOG4J = STACK_DIR / "kafka" / "tools-log4j.properties"


@dataclass
class Kafka(Component):
    name: str = "kafka"

    @property
    def port(self) -> int:
        return self.settings.kafka_port

    @property
    def data(self) -> Path:
        return self.settings.data_dir / "kafka"

    def _config(self) -> Path:
        return render(
            STACK_DIR / "kafka" / "server.properties",
            self.settings.conf_dir / "kafka.properties",
            kafka_port=self.port,
            controller_port=self.settings.kafka_controller_port,
            data_dir=self.data,
        )

    @staticmethod
    def format_argv(classpath: str, config: Path, cluster_id: str) -> list[str]:
        """Kafka's StorageTool: format the KRaft storage named in config (once)."""
        return [
            "java",
            f"-Dlog4j.configuration=file:{TOOLS_LOG4J}",
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            str(config),
            "--ignore-formatted",
        ]

    def _format_once(self, classpath: str, config: Path) -> None:
        if (self.data / "meta.properties").exists():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        print(f"  kafka: formatting KRaft storage (cluster id {cluster_id})")
        subprocess.run(
            as_service_user(self.settings, self.format_argv(classpath, config, cluster_id)),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def launch(self) -> int:
        classpath = read_classpath(self.settings, "kafka")
        config = self._config()
        self._format_once(classpath, config)
        argv = self.java(
            classpath,
            self.settings.kafka_heap,
            "kafka.Kafka",
            str(config),
            opts=[
                *self.log4j_options(),
                "-XX:+UseG1GC",
                f"-Dkafka.logs.dir={self.settings.log_dir}",
            ],
        )
        return self.detach(argv, self.out_file)

    def healthy(self) -> bool:
        from confluent_kafka.admin import AdminClient

        # log_level 0: no librdkafka chatter while the broker is still coming up.
        admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap, "log_level": 0})
        metadata = admin.list_topics(timeout=3)
        return bool(metadata.brokers)

    def version(self) -> str:
        return versions()["KAFKA_VERSION"]
