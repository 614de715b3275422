"""`cap-stock-sink --config register_cassandra.json`: run the sink until SIGTERM."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from capstock.config import ConfigError, KafkaSettings, LogSettings, load

from cassandra_sink.config import SinkConfigError, load_config_file
from cassandra_sink.deadletter import DeadLetterError
from cassandra_sink.runner import (
    GROUP_PREFIX,
    CassandraSink,
    KafkaFailed,
    RecordFailed,
    WriteAbandoned,
)

EPILOG = f"""\
Reads flat JSON rows (Debezium's ExtractNewRecordState at the source) and converts each
field as the DataStax sink engine does, with the topic's topic.<topic>.codec.* settings.
A record that cannot be mapped is parked in errors.deadletterqueue.topic.name (with
errors.tolerance=all), skipped (ignoreErrors=All, or tolerance all without a topic), or
stops the sink (errors.tolerance=none, the default).

The consumer group defaults to {GROUP_PREFIX}<connector name>, never Connect's
connect-<connector name>: switching between the two sinks must not share offsets.

A record Cassandra refuses as invalid is handled the same way (only that record: a
refused batch is written again row by row). Cassandra away or slow: the batch is retried
(pauses up to 5 s) and never skipped. The consumer joins with the static member id
<group>-0, so a restarted sink takes its partitions back at once; run one process per
group (a second one fences the first, which then stops).

exit status: 0 stopped by SIGTERM/SIGINT, 1 stopped at a bad record, an undeliverable
dead letter, a batch Cassandra had not taken by the stop, or a fatal Kafka error (the
batch in hand is not committed: the next start writes it again), 2 unusable config.
"""


def main(argv: list[str] | None = None) -> int:
    try:
        kafka, log = load(KafkaSettings), load(LogSettings)
    except ConfigError as err:
        print(f"cap-stock-sink: {err}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(
        prog="cap-stock-sink",
        description="Write Kafka topics of flat JSON rows into Cassandra, configured by a\n"
        "DataStax sink connector JSON.\n\n"
        "example: cap-stock-sink --config register_cassandra.json",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, required=True, help="connector JSON file")
    parser.add_argument(
        "--bootstrap-servers",
        default=kafka.bootstrap_servers,
        help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP_SERVERS; default %(default)s)",
    )
    parser.add_argument(
        "--group-id",
        help=f"consumer group (default {GROUP_PREFIX}<connector name>)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=log.level,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    logging.getLogger("cassandra").setLevel(logging.ERROR)
    try:
        config = load_config_file(args.config)
        return CassandraSink(config, args.bootstrap_servers, args.group_id).run()
    except SinkConfigError as err:
        print(f"cap-stock-sink: {err}", file=sys.stderr)
        return 2
    except (RecordFailed, DeadLetterError, WriteAbandoned, KafkaFailed) as err:
        print(f"cap-stock-sink: stopped: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
