"""A simulated AI gateway's traffic, exported for Prometheus to scrape.

Every tick, for each configured feature, ``requests_per_tick`` simulated users make a request
(``User:<n>``, GitLab's flipper ids, out of ``users``). A *router* (``route(feature, user_id) ->
model``) says which model serves each; the default one splits the feature's actors between ``candidate`` and ``baseline``
at ``percentage``, hashing each actor as Flipper's percentage-of-actors gate does (crc32 of the
flag name and the actor id), so the users on the candidate stay there as the percentage rises.
``set_gate(feature, gate)`` routes one feature by a flag instead (``gate(user_id)`` true: the
candidate), as the gateway asks its feature flag; ``gitlab_sandbox/flag_routers.py`` has gates
for an Unleash server (its Python SDK) and for GitLab's project and instance flags.

Each request is counted per ``feature`` and ``model``: ``ai_gateway_requests_total``, its
latency in ``ai_gateway_request_duration_seconds`` (log-normal around the profile's median), an
error in ``ai_gateway_request_errors_total``, otherwise a suggestion in
``ai_gateway_suggestions_shown_total``, and an accepted one in
``ai_gateway_suggestions_accepted_total``. Errors and acceptances follow their rates exactly
(a running remainder, not a coin), so only the users and latencies come from the seeded random
generator: two sims with one seed and one config export the same numbers. As in a real exporter, a
label set appears with its first increment.

A feature's ``scenario``:

- ``healthy``: the candidate behaves as the baseline (``error_rate``, ``latency_seconds``,
  ``acceptance``);
- ``regressing``: so does the candidate while it serves at most ``regress_above`` % of the
  feature's recent requests; above that its error rate rises by 0.10, its latency triples and its
  acceptance falls by 0.10, well past the rollout analysis's failure thresholds;
- ``no_traffic``: no requests at all.

HTTP: ``GET /metrics`` (text or OpenMetrics, as the scraper asks), ``GET /-/config``, and
``PUT /-/config`` with ``{"features": {"<feature>": {field: value, ...} | null}}``: each named
feature's traffic is replaced (null stops it); features not named keep theirs.
Run alone with ``python -m gitlab_sandbox.gateway_sim --port P``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import threading
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder

SCENARIOS = ("healthy", "regressing", "no_traffic")
CONFIG_PATH = "/-/config"
#: Seconds; fine enough around a second that a p95 ratio of 1.5 is told apart from 1.
BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 30.0)
LATENCY_SIGMA = 0.3
#: How a regressing candidate degrades past ``regress_above``.
REGRESSED_ERRORS, REGRESSED_LATENCY, REGRESSED_ACCEPTANCE = 0.10, 3.0, -0.10
#: The fewest routed requests the candidate's share is judged over.
SHARE_MINIMUM = 200
#: The candidate's share is measured over this many of the feature's latest requests.
SHARE_WINDOW = 400

Router = Callable[[str, str], str]
Gate = Callable[[str], bool]


@dataclass(frozen=True)
class FeatureTraffic:
    """One feature's simulated traffic. ``percentage`` and ``flag`` are read by the default router only."""

    candidate: str
    baseline: str
    scenario: str = "healthy"
    percentage: float = 0.0
    flag: str = ""  # the flag whose actors are split; the feature's name when empty
    regress_above: float = 10.0
    requests_per_tick: int = 20
    users: int = 1000
    error_rate: float = 0.01
    latency_seconds: float = 0.6
    acceptance: float = 0.3

    @classmethod
    def from_json(cls, data: Any) -> FeatureTraffic:
        """Check a config entry; a ValueError's message says what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("a feature's traffic must be an object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown field {unknown[0]!r}; known: {', '.join(sorted(known))}")
        for name in ("candidate", "baseline"):
            if not isinstance(data.get(name), str) or not data[name]:
                raise ValueError(f"{name} must be a model name")
        try:
            traffic = cls(**data)
        except TypeError as err:
            raise ValueError(str(err)) from None
        traffic._check()
        return traffic

    def _check(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(f"scenario {self.scenario!r} is not one of {', '.join(SCENARIOS)}")
        if not isinstance(self.flag, str):
            raise ValueError("flag must be a string")
        bounds = {"percentage": (0, 100), "regress_above": (0, 100), "requests_per_tick": (0, 10_000), "users": (1, 10_000_000),
                  "error_rate": (0, 1), "latency_seconds": (0.001, 60), "acceptance": (0, 1)}
        for name, (low, high) in bounds.items():
            value = getattr(self, name)
            integral = name in ("requests_per_tick", "users")
            if isinstance(value, bool) or not isinstance(value, int if integral else (int, float)) or not low <= value <= high:
                raise ValueError(f"{name} must be {'an integer' if integral else 'a number'} from {low} to {high}")


def actor_percentage(flag: str, actor: str) -> float:
    """Where ``actor`` falls in [0, 100) for ``flag``: Flipper's crc32 of the flag name and the actor id, in thousandths."""
    return zlib.crc32(f"{flag}{actor}".encode()) % 100_000 / 1000


def split_route(feature: str, traffic: FeatureTraffic, user_id: str) -> str:
    """The default router's answer: the candidate for the actors below ``percentage``, else the baseline."""
    return traffic.candidate if actor_percentage(traffic.flag or feature, user_id) < traffic.percentage else traffic.baseline


@dataclass
class _FeatureState:
    recent: deque[bool] = field(default_factory=lambda: deque(maxlen=SHARE_WINDOW))
    carry: dict[tuple[str, str], float] = field(default_factory=dict)

    def due(self, model: str, kind: str, rate: float) -> bool:
        """Whether this request is the one that keeps ``kind`` at ``rate`` for ``model``."""
        total = self.carry.get((model, kind), 0.0) + rate
        self.carry[(model, kind)] = total - 1 if total >= 1 else total
        return total >= 1


class GatewaySim:
    """The metrics registry, the traffic loop and the HTTP server; ``tick()`` runs one tick by hand."""

    def __init__(self, *, seed: int = 0, tick_seconds: float = 0.1, router: Router | None = None,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.tick_seconds = tick_seconds
        self.registry = CollectorRegistry()
        labels = ("feature", "model")
        self.requests = Counter("ai_gateway_requests_total", "Requests served", labels, registry=self.registry)
        self.errors = Counter("ai_gateway_request_errors_total", "Requests that failed", labels, registry=self.registry)
        self.duration = Histogram("ai_gateway_request_duration_seconds", "Request latency", labels, buckets=BUCKETS, registry=self.registry)
        self.shown = Counter("ai_gateway_suggestions_shown_total", "Suggestions shown", labels, registry=self.registry)
        self.accepted = Counter("ai_gateway_suggestions_accepted_total", "Suggestions accepted", labels, registry=self.registry)
        self._router = router
        self._gates: dict[str, Gate] = {}
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._features: dict[str, FeatureTraffic] = {}
        self._states: dict[str, _FeatureState] = {}
        self._address = (host, port)
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    # -- configuration and traffic ------------------------------------------------------------

    def configure(self, features: Mapping[str, FeatureTraffic | None]) -> None:
        """Replace the named features' traffic; None stops a feature's."""
        with self._lock:
            for name, traffic in features.items():
                if traffic is None:  # stopped: a feature configured again later starts with no recent share
                    self._features.pop(name, None)
                    self._states.pop(name, None)
                else:
                    self._features[name] = traffic if traffic.flag else replace(traffic, flag=name)
                    self._states.setdefault(name, _FeatureState())
                    for model in (traffic.candidate, traffic.baseline):
                        # Every series exported from the start at zero, as a gateway should: a counter
                        # born at its first increment misses rate()'s first samples, and a ratio of
                        # two counters born at different times reads as a false drop.
                        for counter in (self.requests, self.errors, self.shown, self.accepted):
                            counter.labels(name, model)
                        self.duration.labels(name, model)

    def config(self) -> dict[str, Any]:
        with self._lock:
            return {"features": {name: asdict(t) for name, t in sorted(self._features.items())}}

    def candidate_share(self, feature: str) -> float:
        """The percentage of the feature's recent requests that the candidate served."""
        with self._lock:
            recent = self._states.get(feature, _FeatureState()).recent
            return 100 * sum(recent) / len(recent) if recent else 0.0

    def set_gate(self, feature: str, gate: Gate | None) -> None:
        """Route ``feature``'s users by ``gate`` (true: the candidate) instead of its ``percentage``; None undoes it."""
        with self._lock:
            if gate is None:
                self._gates.pop(feature, None)
            else:
                self._gates[feature] = gate

    def route(self, feature: str, user_id: str) -> str:
        gate = self._gates.get(feature)
        if gate is not None:
            traffic = self._features[feature]
            return traffic.candidate if gate(user_id) else traffic.baseline
        if self._router is not None:
            return self._router(feature, user_id)
        return split_route(feature, self._features[feature], user_id)

    def tick(self) -> None:
        """One tick: every feature's requests, routed and counted."""
        with self._lock:
            for feature, traffic in sorted(self._features.items()):
                if traffic.scenario != "no_traffic":
                    self._simulate(feature, traffic, self._states[feature])

    def _simulate(self, feature: str, traffic: FeatureTraffic, state: _FeatureState) -> None:
        users = [f"User:{self._rng.randint(1, traffic.users)}" for _ in range(traffic.requests_per_tick)]
        models = [self.route(feature, user) for user in users]
        state.recent.extend(model == traffic.candidate for model in models)
        share = 100 * sum(state.recent) / len(state.recent) if state.recent else 0.0
        # The candidate's share is judged over enough requests that a few unlucky first ones do not count.
        regressed = traffic.scenario == "regressing" and len(state.recent) >= SHARE_MINIMUM and share > traffic.regress_above
        for model in models:
            errors, latency, acceptance = traffic.error_rate, traffic.latency_seconds, traffic.acceptance
            if regressed and model == traffic.candidate:
                errors = min(1.0, errors + REGRESSED_ERRORS)
                latency *= REGRESSED_LATENCY
                acceptance = max(0.0, acceptance + REGRESSED_ACCEPTANCE)
            self.requests.labels(feature, model).inc()
            self.duration.labels(feature, model).observe(latency * math.exp(LATENCY_SIGMA * self._rng.gauss(0.0, 1.0)))
            if state.due(model, "error", errors):
                self.errors.labels(feature, model).inc()
                continue
            self.shown.labels(feature, model).inc()
            if state.due(model, "accepted", acceptance):
                self.accepted.labels(feature, model).inc()

    # -- serving ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the gateway sim is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _bind(self) -> ThreadingHTTPServer:
        server = _Server(self._address, self)
        self._server = server
        self._stopping.clear()
        traffic = threading.Thread(target=self._traffic_loop, name="gateway-sim-traffic", daemon=True)
        traffic.start()
        self._threads = [traffic]
        return server

    def _traffic_loop(self) -> None:
        while not self._stopping.wait(self.tick_seconds):
            self.tick()

    def start(self) -> str:
        """Serve and send traffic on daemon threads; return the base URL."""
        server = self._bind()
        serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="gateway-sim", daemon=True)
        serving.start()
        self._threads.append(serving)
        return self.url

    def serve_forever(self, on_ready: Callable[[str], None] | None = None) -> None:
        """Serve on this thread until ``stop()`` or an interrupt; ``on_ready`` gets the URL once bound."""
        server = self._bind()
        if on_ready is not None:
            on_ready(self.url)
        try:
            server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            self._stopping.set()
            server.server_close()

    def stop(self) -> None:
        server = self._server
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        server.server_close()
        self._server = None

    def __enter__(self) -> GatewaySim:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], sim: GatewaySim) -> None:
        self.sim = sim
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.partition("?")[0]
        if path == "/metrics":
            encode, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._send(200, encode(self.server.sim.registry), content_type)
        elif path == CONFIG_PATH:
            self._json(200, self.server.sim.config())
        else:
            self._json(404, {"error": f"no {path} here: GET /metrics, GET or PUT {CONFIG_PATH}"})

    def do_PUT(self) -> None:  # noqa: N802
        if self.path.partition("?")[0] != CONFIG_PATH:
            self._json(404, {"error": f"PUT {CONFIG_PATH} only"})
            return
        try:
            self.server.sim.configure(_parse_config(self.rfile.read(int(self.headers.get("Content-Length") or 0))))
        except ValueError as err:
            self._json(400, {"error": str(err)})
            return
        self._json(200, self.server.sim.config())

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: Prometheus scrapes every second."""


def _parse_config(raw: bytes) -> dict[str, FeatureTraffic | None]:
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise ValueError("the body is not valid JSON") from None
    features = body.get("features") if isinstance(body, dict) else None
    if not isinstance(features, dict):
        raise ValueError('the body must be {"features": {"<feature>": {...} | null}}')
    parsed: dict[str, FeatureTraffic | None] = {}
    for name, entry in features.items():
        try:
            parsed[name] = None if entry is None else FeatureTraffic.from_json(entry)
        except ValueError as err:
            raise ValueError(f"features.{name}: {err}") from None
    return parsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gitlab_sandbox.gateway_sim", description="A simulated AI gateway's metrics.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tick", type=float, default=0.1, help="seconds between ticks")
    parser.add_argument("--config", help=f"a JSON file shaped as the body of PUT {CONFIG_PATH}")
    args = parser.parse_args(argv)
    sim = GatewaySim(seed=args.seed, tick_seconds=args.tick, host=args.host, port=args.port)
    if args.config:
        with open(args.config, encoding="utf-8") as file:
            sim.configure(_parse_config(file.read().encode()))
    sim.serve_forever(lambda url: print(f"AI gateway sim serving {url}/metrics", flush=True))


if __name__ == "__main__":
    main()
