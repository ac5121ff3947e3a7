"""The MCP client of ``mcp_call`` steps: the workflow's servers started on first use
(tools.py), each with the bounded tail of its stderr (stderr.py)."""
