"""airlab's shared library: contract, settings, logging, gRPC helpers, event bus, state, embedded stack."""

__version__ = "0.1.0"
