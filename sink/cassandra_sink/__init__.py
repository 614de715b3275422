"""cap-stock-sink: the Python alternative to the DataStax Cassandra sink.

The pipeline's default sink is the DataStax sink engine inside Kafka Connect. This
process is the selectable alternative: it reads the very same connector JSON
(`register_cassandra.json`) and behaves like the engine for the pipeline's column types:
flat JSON rows in, the engine's conversions (codecs.py, two stricter rules for text),
nulls left unset, unmappable records and records Cassandra refuses to the dead-letter
topic or a stop, per the config's error settings.

It gives the same guarantee: at-least-once delivery into idempotent upserts keyed by
each table's primary key, so a replay after a crash rewrites identical rows and never
duplicates one. It consumes in its own group (cap-stock-python-sink-<connector name>),
not Connect's, so switching sinks never continues the other's offsets.
"""
