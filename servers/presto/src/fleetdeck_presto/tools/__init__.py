"""The Presto server's tools: thin MCP adapters over the warehouse backend."""
