"""Grafana dashboards and provisioning for cap-stock.

``dashboard.generate`` is the single source of the dashboard JSON in ``dashboards/``;
``dashboard.expand`` expands a panel's query the way Grafana and its data source plugins
do, so tests can run every query against the real databases.
"""
