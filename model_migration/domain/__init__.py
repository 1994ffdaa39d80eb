"""Pure domain: models, catalog, stages, deadlines, escalation. No I/O, no Temporal."""
