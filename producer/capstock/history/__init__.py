"""Stage 5, the history store: Cassandra's schema, its set-up and how to connect."""
