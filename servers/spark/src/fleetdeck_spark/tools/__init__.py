"""The Spark server's tools: thin MCP adapters over a Spark source, the diagnosis and the RCA store."""
