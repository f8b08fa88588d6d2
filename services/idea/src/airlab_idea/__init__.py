"""The airlab idea service."""
