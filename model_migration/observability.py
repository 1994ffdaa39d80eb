"""The worker's telemetry: the SDK runtime that serves Prometheus metrics, and OpenTelemetry traces.

Metrics: ``MODEL_MIGRATION_METRICS_ADDRESS`` (``ip:port``) makes the worker's client run on a
``Runtime`` whose Prometheus exporter serves the SDK's metrics and the engine's (see
``model_migration.metrics``) on ``GET /metrics``.

Traces: the standard OpenTelemetry variables. ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) turns tracing on; spans go there as OTLP over HTTP
(protobuf), batched; ``OTEL_SDK_DISABLED=true`` turns it off; the service is
``OTEL_SERVICE_NAME``, default ``model-migration-worker``. Headers, timeouts and the rest come
from the exporter's own ``OTEL_EXPORTER_OTLP_*`` variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Interceptor

from model_migration.domain.errors import DomainError, ErrorType
from model_migration.health import split_address
from model_migration.metrics import BUCKET_OVERRIDES
from model_migration.settings import Settings

SERVICE_NAME = "model-migration-worker"


def worker_runtime(settings: Settings) -> Runtime | None:
    """A runtime serving Prometheus metrics at ``settings.metrics_address``; None when it is unset."""
    address = settings.metrics_address
    if not address:
        return None
    split_address(address, "MODEL_MIGRATION_METRICS_ADDRESS")
    try:
        return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(
            bind_address=address, durations_as_seconds=True, counters_total_suffix=True, unit_suffix=True,
            histogram_bucket_overrides=BUCKET_OVERRIDES,
        )))
    except ValueError as err:  # the SDK's exporter: a bad address, or one in use
        reason = str(err).removeprefix("Failed starting Prometheus exporter: ")
        raise DomainError(
            f"cannot serve metrics on {address}: {reason}; set MODEL_MIGRATION_METRICS_ADDRESS to a free ip:port (e.g. 0.0.0.0:9464)",
            type=ErrorType.INVALID_INPUT,
        ) from None


@dataclass
class Tracing:
    """The interceptors that trace workflows and activities, and the provider to flush at exit."""

    interceptors: list[Interceptor] = field(default_factory=list)
    provider: Any = None

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()  # flushes the batch of spans not sent yet
            self.provider = None


def tracing_enabled(environ: Mapping[str, str]) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def tracing(environ: Mapping[str, str] | None = None) -> Tracing:
    """Tracing as the ``OTEL_*`` variables say; no interceptors when they do not turn it on."""
    environ = os.environ if environ is None else environ
    if not tracing_enabled(environ):
        return Tracing()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME as SERVICE_NAME_KEY
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from temporalio.contrib.opentelemetry import TracingInterceptor

    # Resource.create reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; the default is ours, not "unknown_service".
    resource = Resource.create({SERVICE_NAME_KEY: environ.get("OTEL_SERVICE_NAME") or SERVICE_NAME})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    # Workflows are started by the command line, which does not trace: a workflow's spans start their own trace.
    interceptor = TracingInterceptor(provider.get_tracer("model_migration"), always_create_workflow_spans=True)
    return Tracing([interceptor], provider)
