"""The worker's telemetry settings: GitLab endpoint classes, when tracing is on, health addresses."""

from __future__ import annotations

import pytest

from model_migration.domain.errors import DomainError
from model_migration.health import split_address
from model_migration.metrics import endpoint_class
from model_migration.observability import tracing, tracing_enabled


@pytest.mark.parametrize(("path", "expected"), [
    ("/api/v4/projects/a%2Fb/issues/3/notes", "notes"),
    ("/api/v4/projects/a%2Fb/issues?search=x", "issues"),
    ("/api/v4/groups/g/epics/3/issues", "epics"),
    ("/api/v4/projects/a%2Fb/labels", "labels"),
    ("/api/v4/features/duo_chat_claude", "flags"),
    ("/api/v4/projects/a%2Fb/feature_flags/x", "flags"),
    ("/api/v4/projects/a%2Fb/repository/files/ai%2Fmodels.yml", "repository"),
    ("/api/v4/projects/a%2Fb/merge_requests/4", "merge_requests"),
    ("/api/v4/projects/a%2Fb/pipelines/9/jobs", "pipelines"),
    ("/api/v4/user", "users"),
    ("/api/v4/users?username=x", "users"),
    ("/api/v4/projects/a%2Fb", "projects"),
    ("/api/v4/version", "other"),
])
def test_endpoint_class(path: str, expected: str) -> None:
    assert endpoint_class(path) == expected


def test_tracing_follows_the_otel_variables() -> None:
    assert not tracing_enabled({})
    assert tracing_enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing_enabled({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"})
    assert not tracing_enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "TRUE"})
    assert tracing({}).interceptors == []
    on = tracing({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_SERVICE_NAME": "w1"})
    try:
        assert len(on.interceptors) == 1
        assert on.provider.resource.attributes["service.name"] == "w1"
    finally:
        on.shutdown()


@pytest.mark.parametrize(("address", "expected"), [
    ("0.0.0.0:8080", ("0.0.0.0", 8080)), ("[::]:9464", ("::", 9464)), (":8080", ("0.0.0.0", 8080)),
])
def test_addresses(address: str, expected: tuple[str, int]) -> None:
    assert split_address(address, "MODEL_MIGRATION_HEALTH_ADDRESS") == expected


@pytest.mark.parametrize("address", ["localhost", "host:port", "1.2.3.4:70000", ""])
def test_bad_addresses_are_one_clear_line(address: str) -> None:
    with pytest.raises(DomainError, match="MODEL_MIGRATION_HEALTH_ADDRESS=.* is not host:port"):
        split_address(address, "MODEL_MIGRATION_HEALTH_ADDRESS")
