"""The airlab reviewer service."""
