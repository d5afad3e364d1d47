"""The Airflow server's tools: thin MCP adapters over the backend, per-DAG authorization included."""
