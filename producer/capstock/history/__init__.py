"""Stage 3, the history store: Cassandra's schema, its set-up and how to connect."""
