"""`cap-stock-sink --config register_cassandra.json`: run the sink until SIGTERM."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from cassandra_sink.config import SinkConfigError, load_config_file
from cassandra_sink.runner import CassandraSink


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cap-stock-sink",
        description="Write Debezium topics into Cassandra, configured by a DataStax "
        "sink connector JSON. Example: cap-stock-sink --config register_cassandra.json",
    )
    parser.add_argument("--config", type=Path, required=True, help="connector JSON file")
    parser.add_argument(
        "--bootstrap-servers",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:29092"),
        help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP_SERVERS; default %(default)s)",
    )
    parser.add_argument("--group-id", help="consumer group (default connect-<connector name>)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(message)s",
    )
    logging.getLogger("cassandra").setLevel(logging.ERROR)
    try:
        config = load_config_file(args.config)
        return CassandraSink(config, args.bootstrap_servers, args.group_id).run()
    except SinkConfigError as err:
        print(f"cap-stock-sink: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
