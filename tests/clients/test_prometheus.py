"""The Prometheus client against a real Prometheus scraping the simulated AI gateway, and its error mapping."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any, TypeVar

import pytest
import requests
from pydantic import SecretStr

from model_migration import apt, prometheus_setup
from model_migration.clients.prometheus import PrometheusClient, PrometheusError
from model_migration.devserver import free_port
from model_migration.domain.errors import DomainError, ErrorType
from model_migration.domain.rollout import DEFAULT_ANALYSIS, Measurement, Outcome, judge
from tests.metrics_fixtures import MetricsStack

T = TypeVar("T")
WINDOW = timedelta(seconds=10)
HEALTHY, REGRESSING, QUIET = "prom_code_suggestions", "prom_duo_chat", "prom_code_review"
SCENARIOS = {
    HEALTHY: {"candidate": "m2", "baseline": "m1", "percentage": 50},
    REGRESSING: {"candidate": "m2", "baseline": "m1", "percentage": 25, "scenario": "regressing", "regress_above": 10},
    QUIET: {"candidate": "m2", "baseline": "m1", "percentage": 50, "scenario": "no_traffic"},
}


def eventually(check: Callable[[], T], timeout: float = 40.0, interval: float = 0.5) -> T:
    """Retry ``check`` until it stops raising AssertionError, or fail with its last error."""
    end = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > end:
                raise
        time.sleep(interval)


@pytest.fixture(scope="module")
def prometheus(metrics_stack: MetricsStack) -> Iterator[PrometheusClient]:
    answer = requests.put(f"{metrics_stack.gateway_url}/-/config", json={"features": SCENARIOS}, timeout=5)
    assert answer.status_code == 200, answer.text
    with PrometheusClient(metrics_stack.prometheus_url) as client:
        yield client
    requests.put(f"{metrics_stack.gateway_url}/-/config", json={"features": dict.fromkeys(SCENARIOS)}, timeout=5)


def analysis(client: PrometheusClient, feature: str) -> dict[str, tuple[Measurement, Outcome]]:
    measured = {t.name: client.measure(t, feature, "m2", "m1", WINDOW) for t in DEFAULT_ANALYSIS}
    return {t.name: (measured[t.name], judge(t, measured[t.name])) for t in DEFAULT_ANALYSIS}


def test_a_healthy_candidate_passes_every_default_metric_at_50_percent(prometheus: PrometheusClient) -> None:
    """Healthy at 50 %: error ratio, p95 latency and acceptance rate are each measured and judged successful."""

    def check() -> dict[str, tuple[Measurement, Outcome]]:
        result = analysis(prometheus, HEALTHY)
        assert all(outcome == Outcome.SUCCESSFUL for _, outcome in result.values()), result
        # Once the window is full: the series start at zero when the feature is configured.
        assert all(m.requests >= 50 for m, _ in result.values()), result
        assert result["error_ratio"][0].value == pytest.approx(0.0, abs=0.005), result
        return result

    result = eventually(check)
    assert result["latency_p95"][0].value == pytest.approx(1.0, abs=0.15)


def test_a_regressing_candidate_fails_error_ratio_and_latency_at_25_percent(prometheus: PrometheusClient) -> None:
    """Regressing at 25 %: error_ratio and latency_p95 fail, with values well past their failure thresholds."""

    def check() -> dict[str, tuple[Measurement, Outcome]]:
        result = analysis(prometheus, REGRESSING)
        assert result["error_ratio"][1] == Outcome.FAILED and result["latency_p95"][1] == Outcome.FAILED, result
        # Once the window holds only regressed requests (the gateway judges the share after its first 200).
        assert result["error_ratio"][0].value == pytest.approx(0.10, abs=0.02), result
        return result

    result = eventually(check)
    latency = result["latency_p95"][0].value
    assert latency is not None and latency > 2.0


def test_a_feature_without_traffic_is_inconclusive(prometheus: PrometheusClient) -> None:
    """no_traffic: no value and no requests, so every metric is inconclusive."""
    result = analysis(prometheus, QUIET)
    assert {name: (m.value, m.requests, outcome) for name, (m, outcome) in result.items()} == {
        t.name: (None, 0.0, Outcome.INCONCLUSIVE) for t in DEFAULT_ANALYSIS
    }


def test_a_bad_query_is_refused_on_one_line_with_prometheus_s_reason(prometheus: PrometheusClient) -> None:
    """A query Prometheus cannot parse is never retried; the error carries its parse error on one line."""
    with pytest.raises(PrometheusError) as caught:
        prometheus.instant('sum(rate(ai_gateway_requests_total{feature="x"}[1m])')
    err = caught.value
    assert not err.retryable and err.type in ErrorType.non_retryable() and err.status == 400
    assert "\n" not in err.message
    assert err.message.startswith("Prometheus rejected the query (400: bad_data: invalid parameter \"query\": ")
    assert "parse error" in err.message and 'query: sum(rate(ai_gateway_requests_total{feature="x"}[1m])' in err.message


def test_more_than_one_series_is_refused(prometheus: PrometheusClient) -> None:
    """An unaggregated query gives several series: refused, naming the count and the first series, not guessed at."""
    eventually(lambda: prometheus.instant(f'sum(ai_gateway_requests_total{{feature="{HEALTHY}"}})') is not None or _fail())
    with pytest.raises(PrometheusError, match=r"answered \d+ series, not one \(aggregate them, e\.g\. with sum\); the first: \{") as caught:
        prometheus.instant(f'ai_gateway_requests_total{{feature="{HEALTHY}"}}')
    assert not caught.value.retryable


def test_scalars_empty_vectors_nan_and_inf(prometheus: PrometheusClient) -> None:
    """A scalar is its value; an empty vector, NaN and ±Inf are no value."""
    assert prometheus.instant("1 + 1.5") == 2.5
    assert prometheus.instant("vector(0.25)") == 0.25
    assert prometheus.instant('ai_gateway_requests_total{feature="no such feature"}') is None
    assert prometheus.instant("0 / 0") is None
    assert prometheus.instant("vector(1) / 0") is None
    assert prometheus.instant("-vector(1) / 0") is None


def test_no_prometheus_there_is_retried() -> None:
    """A refused connection is retryable and names the URL."""
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(PrometheusError, match=f"cannot reach Prometheus at {url}: ConnectionError") as caught:
        PrometheusClient(url).instant("1")
    assert caught.value.retryable and caught.value.type == ErrorType.METRICS_UNAVAILABLE


# -- answers a real Prometheus gives only when something is in the way: a canned server ----------


class _Canned(BaseHTTPRequestHandler):
    answer: tuple[int, dict[str, str], bytes] = (200, {}, b"")
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802
        type(self).seen.append(dict(self.headers))
        status, headers, body = type(self).answer
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def canned() -> Iterator[tuple[str, type[_Canned]]]:
    handler = type("Handler", (_Canned,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def _error(kind: str, message: str) -> bytes:
    return json.dumps({"status": "error", "errorType": kind, "error": message}).encode()


@pytest.mark.parametrize(("status", "headers", "body", "retryable", "message"), [
    (503, {"Content-Type": "application/json"}, _error("unavailable", "too many queries\nin flight"), True,
     "Prometheus could not answer (503: unavailable: too many queries in flight); query: up"),
    (429, {"Retry-After": "7"}, b"slow down", True, "Prometheus could not answer (429); query: up"),
    (200, {"Content-Type": "text/html"}, b"<html>maintenance</html>", True, "Prometheus answered 200 with text/html, not JSON"),
    (401, {}, b"Unauthorized", False, "Prometheus refused the token (401)"),
    (422, {}, _error("execution", "many-to-many matching not allowed"), False,
     "Prometheus rejected the query (422: execution: many-to-many matching not allowed); query: up"),
    (200, {}, json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}}).encode(), False,
     "Prometheus answered a matrix, not a vector or a scalar; query: up"),
], ids=["503", "429", "html", "401", "422", "matrix"])
def test_error_mapping(canned: tuple[str, type[_Canned]], status: int, headers: dict[str, str], body: bytes, retryable: bool,
                       message: str) -> None:
    """5xx, 429 and a page instead of JSON are retried; the token, a query Prometheus refuses and a wrong shape are not."""
    url, handler = canned
    handler.answer = (status, headers, body)
    with pytest.raises(PrometheusError) as caught:
        PrometheusClient(url).instant("up")
    assert (caught.value.message, caught.value.retryable, caught.value.status) == (message, retryable, status)
    assert caught.value.retry_after == (7.0 if status == 429 else None)


def test_the_token_is_sent_as_a_bearer_token(canned: tuple[str, type[_Canned]]) -> None:
    """``token`` goes in the Authorization header, and never into an error."""
    url, handler = canned
    handler.answer = (200, {}, json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}).encode())
    assert PrometheusClient(url + "/", token=SecretStr("s3cret")).instant("up") is None
    assert handler.seen[-1]["Authorization"] == "Bearer s3cret"


# -- setup-prometheus ----------------------------------------------------------------------------


def test_check_prometheus_names_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without the binary, one line naming the setup command and apt-get's."""
    monkeypatch.setattr(prometheus_setup.shutil, "which", lambda name: None)
    monkeypatch.setattr(prometheus_setup, "DEBIAN_BINARY", tmp_path / "prometheus")
    with pytest.raises(DomainError) as caught:
        prometheus_setup.check_prometheus()
    assert caught.value.message == (
        "prometheus is not installed (Debian's prometheus 2.42): run model-migration setup-prometheus, "
        "or as root: apt-get install -y --no-install-recommends prometheus"
    )


def test_setup_prometheus_does_nothing_when_it_is_there(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """An installed prometheus is left alone: apt-get is not run."""
    monkeypatch.setattr(prometheus_setup, "find_prometheus", lambda: Path("/usr/bin/prometheus"))
    monkeypatch.setattr(apt, "_apt", _fail)
    prometheus_setup.setup_prometheus()
    assert capsys.readouterr().out == "prometheus is already installed: /usr/bin/prometheus; nothing to do\n"


def test_setup_prometheus_as_another_user_names_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not root: one line naming the apt-get command, and apt-get is not run."""
    monkeypatch.setattr(prometheus_setup, "find_prometheus", lambda: None)
    monkeypatch.setattr(apt.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(apt, "_apt", _fail)
    with pytest.raises(DomainError, match=f"^prometheus not installed; as root, run: {prometheus_setup.INSTALL}$"):
        prometheus_setup.setup_prometheus()


def _fail(*args: object) -> Any:
    raise AssertionError(f"not expected: {args}")
