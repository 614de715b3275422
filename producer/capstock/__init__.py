"""cap-stock: Binance market data → Postgres → Debezium/Kafka → Cassandra."""
