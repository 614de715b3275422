"""Stage 0, the model: every table declared once; each store's DDL, the sink mapping and the
dashboards' event-time columns are derived from it."""
