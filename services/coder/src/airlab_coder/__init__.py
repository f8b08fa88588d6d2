"""The airlab coder service."""
