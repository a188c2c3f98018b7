"""Adapters that plug Aegis Memory into agent frameworks, each behind its own extra.

``aegis_memory.integrations.langgraph`` (``[langgraph]``), ``.langchain`` (``[langchain]``),
``.crewai`` (``[crewai]``) and ``.mcp`` (``[mcp]``). Importing this package imports none of
the frameworks.
"""
