"""structlog set-up, called once by each entry point: JSON off a terminal, readable on one.

structlog's own loggers and the standard library's (temporalio, python-gitlab, urllib3, and the
Temporal core, forwarded) all end in one renderer, so a log collector reading a worker's
stderr gets one JSON object per line, tracebacks included (in ``exception``).
"""

from __future__ import annotations

import logging
import sys

import structlog

_json = False


def json_enabled() -> bool:
    """Whether ``configure`` chose JSON: a fatal error is then logged, not printed as text."""
    return _json


def configure(level: str = "info", fmt: str = "auto") -> None:
    global _json
    _json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    final: list[structlog.typing.Processor] = (
        [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
        if _json
        else [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    ))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    # python-gitlab and urllib3 log request URLs and can be chatty; keep them quiet.
    for noisy in ("urllib3", "gitlab", "temporalio.activity", "temporalio.workflow"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    _forward_temporal_core()


def _forward_temporal_core() -> None:
    """The Temporal core (Rust) writes its own text lines to stderr unless told to log through
    Python; it has to be told before the first client connects."""
    from temporalio.runtime import LogForwardingConfig, LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

    forwarding = LogForwardingConfig(logger=logging.getLogger("temporalio.core"))
    telemetry = TelemetryConfig(logging=LoggingConfig(
        filter=TelemetryFilter(core_level="WARN", other_level="ERROR"), forwarding=forwarding,
    ))
    Runtime.set_default(Runtime(telemetry=telemetry), error_if_already_set=False)
