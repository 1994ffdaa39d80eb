"""Temporal activities: thin, idempotent side effects. Clients are injected by the worker."""
