"""Adversity on demand for the GitLab sandbox: injected faults and a per-token rate limit.

``GitLabApp`` consults both on every ``/api/`` request. Tests drive them through Python
(``GitLabSandbox.inject_fault``, ``set_rate_limit``) or over HTTP, with the sandbox token:

- ``POST /-/sandbox/faults`` ``{method, path, fault, count, fraction, retry_after, delay, seed}``
- ``GET /-/sandbox/faults`` lists the rules, ``DELETE /-/sandbox/faults`` clears them;
- ``POST /-/sandbox/rate_limit`` ``{limit, window}`` (``limit: null`` is unlimited).
"""

from __future__ import annotations

import itertools
import math
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from gitlab_sandbox.routing import ApiError, Request, Response, Router, html_response, json_response

ADMIN = "/-/sandbox"
FAULTS = ("500", "502", "429", "timeout", "drop_after_write", "slow")
METHODS = ("*", "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
#: What the headers advertise when no budget is set: present, but never reached.
UNLIMITED = 1_000_000


@dataclass
class Fault:
    """One rule. ``count`` is how many times it may fire in all (None: forever); ``fraction`` is
    the chance that a matching request fires it, drawn from a generator seeded with ``seed``."""

    id: int
    method: str
    path: str
    fault: str
    count: int | None = None
    fraction: float | None = None
    retry_after: int = 1
    delay: float = 30.0
    seed: int | None = None
    fired: int = 0
    _pattern: re.Pattern[str] = field(init=False, repr=False)
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._pattern = re.compile(self.path)
        self._random = random.Random(self.seed)

    def fires(self, method: str, path: str) -> bool:
        if self.count is not None and self.fired >= self.count:
            return False
        if self.method not in ("*", method) or not self._pattern.search(path):
            return False
        if self.fraction is not None and self._random.random() >= self.fraction:
            return False
        self.fired += 1
        return True

    def to_json(self) -> dict[str, Any]:
        remaining = None if self.count is None else self.count - self.fired
        return {
            "id": self.id, "method": self.method, "path": self.path, "fault": self.fault,
            "count": self.count, "fraction": self.fraction, "retry_after": self.retry_after,
            "delay": self.delay, "seed": self.seed, "fired": self.fired, "remaining": remaining,
        }  # fmt: skip


class FaultInjector:
    """The ordered fault rules; the first one that fires answers the request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Fault] = []
        self._ids = itertools.count(1)
        #: Set when the sandbox stops, so that requests held by ``timeout`` let go at once.
        self.stopping = threading.Event()

    def add(self, path: str, fault: str, **options: Any) -> Fault:
        options = {name: value for name, value in options.items() if value is not None}
        method = str(options.pop("method", "*")).upper()
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}")
        if fault not in FAULTS:
            raise ValueError(f"fault must be one of {', '.join(FAULTS)}")
        count, fraction = options.get("count"), options.get("fraction")
        if count is not None and not (_number(count, int) and count >= 1):
            raise ValueError("count must be a positive integer or null")
        if fraction is not None and not (_number(fraction) and 0 <= fraction <= 1):
            raise ValueError("fraction must be a number from 0 to 1 or null")
        retry_after = options.get("retry_after", 1)
        if not (_number(retry_after, int) and retry_after >= 1):
            raise ValueError("retry_after must be a whole number of seconds, at least 1")
        delay = options.get("delay", 30.0)
        if not (_number(delay) and delay >= 0):
            raise ValueError("delay must be a number of seconds")
        seed = options.get("seed")
        if seed is not None and not _number(seed, int):
            raise ValueError("seed must be an integer")
        try:
            re.compile(path)
        except re.error as exc:
            raise ValueError(f"path is not a valid regular expression: {exc}") from None
        with self._lock:
            rule = Fault(next(self._ids), method, path, fault, count, fraction, retry_after,
                         float(delay), seed)  # fmt: skip
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[Fault]:
        with self._lock:
            return list(self._rules)

    def pick(self, method: str, path: str) -> Fault | None:
        with self._lock:
            return next((rule for rule in self._rules if rule.fires(method, path)), None)

    def apply(self, rule: Fault, handler: Callable[[], Response]) -> Response:
        """The response a request gets when ``rule`` fires; ``handler`` runs the real request."""
        if rule.fault == "500":
            return json_response({"message": "500 Internal Server Error"}, 500)
        if rule.fault == "502":  # what the load balancer in front of GitLab sends: a page
            return html_response(_page("502 Bad Gateway", "GitLab is not responding."), 502)
        if rule.fault == "429":
            reset = time.time() + rule.retry_after
            return json_response(
                {"message": "Retry later"},
                429,
                {**_reset_headers(reset, 0), "Retry-After": str(rule.retry_after)},
            )
        if rule.fault == "timeout":
            self.stopping.wait(rule.delay)
            return html_response(_page("504 Gateway Time-out", "The request took too long."), 504)
        if rule.fault == "slow":  # a busy GitLab: the request is served as usual, after ``delay`` seconds
            self.stopping.wait(rule.delay)
            return handler()
        response = handler()  # drop_after_write: the write happens, the answer never leaves
        response.drop = True
        return response


class RateLimiter:
    """Per-token request budgets, ``limit`` requests per ``window`` seconds.

    GitLab (Rack::Attack) aligns windows to the epoch; here a token's window starts with its
    first request, so a test's budget cannot be split by a window boundary mid-test.
    """

    def __init__(
        self, limit: int | None = None, window: float = 60, clock: Callable[[], float] = time.time
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}
        self.limit: int | None = None
        self.window: float = 60
        self.configure(limit, window)

    def configure(self, limit: int | None, window: float = 60) -> None:
        """A new budget; every token starts again from zero."""
        if limit is not None and not (_number(limit, int) and limit >= 0):
            raise ValueError("limit must be a non-negative integer or null")
        if not (_number(window) and window > 0):
            raise ValueError("window must be a positive number of seconds")
        with self._lock:
            self.limit, self.window = limit, window
            self._windows.clear()

    def hit(self, key: str) -> tuple[bool, dict[str, str]]:
        """Count one request; ``(allowed, headers)``. Refused requests are observed too."""
        now = self._clock()
        with self._lock:
            start, observed = self._windows.get(key, (now, 0))
            if now >= start + self.window:
                start, observed = now, 0
            observed += 1
            self._windows[key] = (start, observed)
            limit, reset = self.limit, start + self.window
        budget = UNLIMITED if limit is None else limit
        headers = {
            "RateLimit-Name": "throttle_authenticated_api",
            "RateLimit-Limit": str(budget),
            "RateLimit-Observed": str(observed),
            **_reset_headers(reset, max(budget - observed, 0)),
        }
        if limit is not None and observed > limit:
            headers["Retry-After"] = str(max(1, math.ceil(reset - now)))
            return False, headers
        return True, headers


def _number(value: Any, kind: type | tuple[type, ...] = (int, float)) -> bool:
    """A JSON number of that kind; booleans are not numbers here."""
    return isinstance(value, kind) and not isinstance(value, bool)


def _reset_headers(reset: float, remaining: int) -> dict[str, str]:
    return {
        "RateLimit-Remaining": str(remaining),
        "RateLimit-Reset": str(math.ceil(reset)),
        "RateLimit-ResetTime": formatdate(math.ceil(reset), usegmt=True),
    }


def _page(title: str, text: str) -> str:
    head = f"<!DOCTYPE html><html><head><title>{title}</title></head>"
    return f"{head}<body><h1>{title}</h1><p>{text}</p></body></html>"


class SandboxAdmin:
    """The ``/-/sandbox`` endpoints; ``GitLabApp`` checks the token before they run."""

    def __init__(self, faults: FaultInjector, limiter: RateLimiter) -> None:
        self.faults = faults
        self.limiter = limiter

    def register(self, router: Router) -> None:
        router.add("GET", f"{ADMIN}/faults", self.list_faults)
        router.add("POST", f"{ADMIN}/faults", self.add_fault)
        router.add("DELETE", f"{ADMIN}/faults", self.clear_faults)
        router.add("GET", f"{ADMIN}/rate_limit", self.get_rate_limit)
        router.add("POST", f"{ADMIN}/rate_limit", self.set_rate_limit)

    def list_faults(self, req: Request) -> Response:
        return json_response([rule.to_json() for rule in self.faults.rules()])

    def add_fault(self, req: Request) -> Response:
        body = dict(req.body)
        for required in ("path", "fault"):
            if not isinstance(body.get(required), str):
                raise ApiError.missing(required)
        known = ("method", "count", "fraction", "retry_after", "delay", "seed")
        options = {name: body[name] for name in known if name in body}
        try:
            rule = self.faults.add(body["path"], body["fault"], **options)
        except ValueError as exc:
            raise ApiError(400, {"error": str(exc)}) from None
        return json_response(rule.to_json(), 201)

    def clear_faults(self, req: Request) -> Response:
        self.faults.clear()
        return Response(204)

    def get_rate_limit(self, req: Request) -> Response:
        return json_response({"limit": self.limiter.limit, "window": self.limiter.window})

    def set_rate_limit(self, req: Request) -> Response:
        try:
            self.limiter.configure(req.body.get("limit"), req.body.get("window", 60))
        except ValueError as exc:
            raise ApiError(400, {"error": str(exc)}) from None
        return self.get_rate_limit(req)
