"""Prometheus's HTTP API (``GET /api/v1/query``): the instant queries of the rollout analysis.

An instant query answers one number or nothing: a vector of one sample gives its value, an empty
vector or NaN/±Inf (a ratio over no traffic) gives None, a scalar gives its value. More than one
series means the query forgot to aggregate, and is refused rather than guessed at.

Nothing here retries (Temporal does); each failure maps to one error type:

- no connection, a timeout, 429, 5xx, or a page instead of JSON: retried, after ``Retry-After``
  when sent;
- 400/422 (a query Prometheus cannot parse or run), 401/403 (the token), another 4xx, or an answer
  of the wrong shape: never retried, with Prometheus's own error on one line.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import requests
from pydantic import SecretStr

from model_migration.domain.errors import ErrorType, ServiceError
from model_migration.domain.rollout import Measurement, MetricTemplate

QUERY = "/api/v1/query"
#: The metrics are the AI gateway's, so until ErrorType has members for the metrics backend its
#: failures travel under the gateway's two types: the same retry rule, one place to change.
UNAVAILABLE, REFUSED = ErrorType.METRICS_UNAVAILABLE, ErrorType.METRICS_REFUSED


class PrometheusError(ServiceError):
    """A query failed."""


class PrometheusClient:
    """One Prometheus (or a compatible API: Thanos, Mimir). ``token`` is sent as a bearer token."""

    def __init__(self, base_url: str, token: SecretStr | None = None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._session = requests.Session()
        self._session.trust_env = False  # no .netrc or proxies picked up from the environment
        self._session.headers["Accept"] = "application/json"
        if token is not None:
            self._session.headers["Authorization"] = f"Bearer {token.get_secret_value()}"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def instant(self, query: str) -> float | None:
        """The query's value now, or None when there is none (no series, NaN, ±Inf)."""
        try:
            response = self._session.get(self.base_url + QUERY, params={"query": query}, timeout=self._timeout)
        except requests.RequestException as err:
            raise PrometheusError(f"cannot reach Prometheus at {self.base_url}: {type(err).__name__}", type=UNAVAILABLE) from None
        body = _json(response)
        status = response.status_code
        if status == 429 or status >= 500:
            raise PrometheusError(
                f"Prometheus could not answer ({status}{_reason(body)}); query: {_short(query)}",
                type=UNAVAILABLE, status=status, retry_after=_seconds(response.headers.get("Retry-After")),
            )
        if status in (401, 403):
            raise PrometheusError(f"Prometheus refused the token ({status}{_reason(body)})", type=REFUSED, status=status)
        if not response.ok:
            raise PrometheusError(
                f"Prometheus rejected the query ({status}{_reason(body)}); query: {_short(query)}", type=REFUSED, status=status,
            )
        if body is None:
            kind = response.headers.get("Content-Type", "no content type").split(";")[0]
            raise PrometheusError(f"Prometheus answered {status} with {kind}, not JSON", type=UNAVAILABLE, status=status)
        return _value(body, query, status)

    def measure(
        self, template: MetricTemplate, feature: str, candidate: str, baseline: str, window: timedelta,
        baseline_window: timedelta | None = None,
    ) -> Measurement:
        """One analysis metric, candidate over ``window`` against baseline over ``baseline_window``,
        with the candidate's request count."""
        query, requests_query = template.render(feature, candidate, baseline, window, baseline_window)
        value = self.instant(query)
        return Measurement(metric=template.name, value=value, requests=self.instant(requests_query) or 0.0)


def _value(body: Any, query: str, status: int) -> float | None:
    def wrong(what: str) -> PrometheusError:
        return PrometheusError(f"Prometheus answered {what}; query: {_short(query)}", type=REFUSED, status=status)

    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict) or body.get("status") != "success":
        raise wrong(f"without data{_reason(body)}")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return _number(result, wrong)
    if kind != "vector" or not isinstance(result, list):
        raise wrong(f"a {kind}, not a vector or a scalar")
    if not result:
        return None
    if len(result) > 1:
        first = result[0].get("metric") if isinstance(result[0], dict) else None
        raise wrong(f"{len(result)} series, not one (aggregate them, e.g. with sum); the first: {_labels(first)}")
    sample = result[0].get("value") if isinstance(result[0], dict) else None
    return _number(sample, wrong)


def _number(sample: Any, wrong: Callable[[str], PrometheusError]) -> float | None:
    """A ``[timestamp, "value"]`` pair's value; NaN and ±Inf (no traffic on one side of a ratio) are no value."""
    try:
        value = float(sample[1])
    except (TypeError, ValueError, IndexError, KeyError):
        raise wrong(f"a sample that is not [time, value]: {str(sample)[:80]}") from None
    return None if math.isnan(value) or math.isinf(value) else value


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _reason(body: Any) -> str:
    """``: <errorType>: <error>`` from Prometheus's error body, on one line."""
    if not isinstance(body, dict) or not body.get("error"):
        return ""
    kind = f"{body['errorType']}: " if body.get("errorType") else ""
    return ": " + " ".join(f"{kind}{body['error']}".split())[:400]


def _short(query: str, limit: int = 200) -> str:
    flat = " ".join(query.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _labels(metric: Any) -> str:
    if not isinstance(metric, dict):
        return "{}"
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items())) + "}"


def _seconds(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None  # an HTTP date: the next retry's own backoff will do
