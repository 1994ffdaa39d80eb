"""A session-wide metrics stack: the simulated AI gateway and a real Prometheus scraping it every
second (``gitlab_sandbox/metrics_stack.py``, which the demo starts too). The fixture waits for the
first scrape, so a test's clock starts with data flowing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gitlab_sandbox.metrics_stack import JOB, MetricsStack, MetricsStackError, prometheus_config
from model_migration.domain.errors import DomainError
from model_migration.prometheus_setup import check_prometheus

__all__ = ["JOB", "MetricsStack", "metrics_stack", "prometheus_config"]


@pytest.fixture(scope="session")
def metrics_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetricsStack]:
    stack = MetricsStack(tmp_path_factory.mktemp("prometheus"), _prometheus())
    try:
        stack.start()
    except MetricsStackError as err:
        pytest.fail(str(err), pytrace=False)
    try:
        yield stack
    finally:
        stack.stop()


def _prometheus() -> Path:
    """The binary; without it the test fails (never skips) naming the install command."""
    try:
        return check_prometheus()
    except DomainError as err:
        missing = str(err)
    pytest.fail(missing, pytrace=False)
