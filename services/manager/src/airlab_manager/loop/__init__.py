"""The research loop as pure transitions over typed state (loop.proto): one module per phase, chosen by
the dispatch table in `transitions`. `apply` takes the research, its loop, the event and what was looked
up for it, and returns the new state with the events to publish and the memories to write; the
Conductor (conductor.py) is the I/O around it."""

from airlab_manager.loop.step import LoopConfig, Memory, StepContext
from airlab_manager.loop.transitions import HANDLED, Outcome, apply, handles

__all__ = ["HANDLED", "LoopConfig", "Memory", "Outcome", "StepContext", "apply", "handles"]
