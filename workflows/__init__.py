"""Temporal workflows: deterministic state machines. No I/O, no clock, no randomness."""
