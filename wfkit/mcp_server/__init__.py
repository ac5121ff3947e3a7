"""``wfkit mcp``: the command functions served as MCP tools and resources for agents."""
