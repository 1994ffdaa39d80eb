"""Infrastructure compatibility: can the target model serve every feature being moved?"""

from __future__ import annotations

from collections.abc import Sequence

from model_migration.domain.models import PROVIDERS, FeatureSpec, ModelDefinition


def compatibility_problems(model: ModelDefinition, features: Sequence[FeatureSpec]) -> list[str]:
    """Every reason the migration cannot start; empty when it can."""
    problems: list[str] = []
    if model.provider not in PROVIDERS:
        problems.append(f"provider {model.provider!r} is not served by the AI gateway (known: {', '.join(sorted(PROVIDERS))})")
    if not model.params.model.strip():
        problems.append(f"model definition {model.gitlab_identifier} has no params.model")
    if model.max_context_tokens <= 0:
        problems.append(f"model definition {model.gitlab_identifier} has no max_context_tokens")
    if not features:
        problems.append("no features to migrate")
    for feature in features:
        if feature.min_context_tokens > model.max_context_tokens:
            problems.append(
                f"{feature.title} needs {feature.min_context_tokens} context tokens; "
                f"{model.gitlab_identifier} offers {model.max_context_tokens}"
            )
        if feature.current_model == model.gitlab_identifier:
            problems.append(f"{feature.title} already runs on {model.gitlab_identifier}")
    return problems
