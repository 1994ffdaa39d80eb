"""Search attributes that make migrations listable with visibility queries."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

KIND = SearchAttributeKey.for_keyword("MigrationKind")  # "migration" | "feature"
STAGE = SearchAttributeKey.for_keyword("MigrationStage")
MODEL = SearchAttributeKey.for_keyword("MigrationModel")
PROVIDER = SearchAttributeKey.for_keyword("MigrationProvider")
FEATURES = SearchAttributeKey.for_keyword_list("MigrationFeatures")
DUE_DATE = SearchAttributeKey.for_datetime("MigrationDueDate")

ALL = (KIND, STAGE, MODEL, PROVIDER, FEATURES, DUE_DATE)
