"""Stage 3, staging: the Postgres writer (idempotent batches, retention) and the local spool
that keeps a batch while Postgres is away."""
