"""Stage 4, change data capture: the Debezium source and Cassandra sink connector configs,
generated from the model."""
