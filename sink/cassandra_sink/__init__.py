"""The project's own Cassandra sink for Debezium topics.

The DataStax Apache Cassandra sink connector is not published on Maven Central,
so the native stack runs this process instead. It reads the very same connector
JSON (`register_cassandra.json`) and gives the same guarantee: at-least-once
delivery into idempotent upserts keyed by each table's primary key, so a replay
after a crash rewrites identical rows and never duplicates one.
"""
