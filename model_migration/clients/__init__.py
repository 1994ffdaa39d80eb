"""Adapters over external systems. They return domain models and raise domain errors."""
