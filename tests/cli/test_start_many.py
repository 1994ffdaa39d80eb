"""``model-migration start`` with 200 features: started, with every search attribute within the server's limits."""

from __future__ import annotations

import json
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from tests.cli.run import cli, env
from tests.scale_catalog import generated_catalog
from workflows import attributes


async def test_a_200_feature_migration_starts_from_the_cli(dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    """No traceback: MigrationFeatures keeps the names that fit in 2,048 bytes; each feature stays findable by its own workflow."""
    catalog = generated_catalog(tmp_path / "catalog", 200)
    names = [f.name for f in catalog.features]
    assert len(json.dumps(sorted(names))) > 2 * attributes.VALUE_LIMIT  # far past the limit
    environ = env(
        MODEL_MIGRATION_TEMPORAL_ADDRESS=dev_env.client.service_client.config.target_host,
        MODEL_MIGRATION_CATALOG_DIR=str(tmp_path / "catalog"), MODEL_MIGRATION_TASK_QUEUE=f"nobody-{tmp_path.name}",
    )
    args = ["start", "--model", "claude_sonnet_4_5_vertex"]
    done = cli(*args, *(a for n in names for a in ("--feature", n)), environ=environ)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "with 200 features" in done.stdout and "and 188 more" in done.stdout and len(done.stdout.splitlines()[0]) < 600
    workflow_id = done.stdout.split()[1]
    handle = dev_env.client.get_workflow_handle(workflow_id)
    try:
        listed = (await handle.describe()).typed_search_attributes.get(attributes.FEATURES) or []
        assert list(listed) == sorted(names)[: len(listed)] and 80 <= len(listed) < 200
        assert len(json.dumps(list(listed)).encode()) <= attributes.VALUE_LIMIT
    finally:
        await handle.terminate("test over")
