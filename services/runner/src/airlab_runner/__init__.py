"""The airlab runner service."""
