"""A local GitLab: the REST v4 subset this engine uses, over real HTTP, kept in one SQLite file.

python-gitlab talks to it unmodified. Endpoints live in ``gitlab_api`` (JSON) and ``gitlab_web``
(HTML pages); this module owns the server, authentication, seeding and the lifecycle.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

from gitlab_sandbox.ai_gateway import PREFIX as AI_GATEWAY
from gitlab_sandbox.evaluation_job import EVALUATION_PROJECT, evaluation_jobs, seed_ci_config
from gitlab_sandbox.faults import ADMIN, FaultInjector, RateLimiter, SandboxAdmin
from gitlab_sandbox.gitlab_api import BOT_USERNAME
from gitlab_sandbox.modules import full_schema, register_all
from gitlab_sandbox.pipelines import SEEDED_VARIABLES_ROLE, VARIABLES_ROLE, JobSpec, configure_jobs
from gitlab_sandbox.routing import ApiError, Request, Response, Router, json_response
from gitlab_sandbox.store import Store, now_iso

log = logging.getLogger(__name__)

DEFAULT_PROJECT = "gitlab-org/modelops/ai-model-migrations"
DEFAULT_GROUP = "gitlab-org"


#: Paths an administrator alone may read (GitLab checks ``authenticated_as_admin!`` on the whole API).
ADMIN_READS = ("/api/v4/features",)

class GitLabApp:
    """Dispatches one request: ``/api/`` paths need the token, HTML pages do not.

    Around every ``/api/`` request: the per-token rate limit (``RateLimit-*`` headers on every
    answer, 429 past the budget), then any injected fault. ``/-/sandbox/`` (the fault and rate
    limit controls) needs the token too, and is never limited or faulted. The AI gateway's paths
    (``/ai-gateway/``) need no token and are not limited, but faults apply to them.
    """

    def __init__(
        self,
        store: Store,
        token: str,
        *,
        faults: FaultInjector | None = None,
        limiter: RateLimiter | None = None,
        guest_token: str | None = None,
        requests: RequestLog | None = None,
    ) -> None:
        self._token = token.encode()
        self._guest = guest_token.encode() if guest_token else None
        self.requests = requests or RequestLog()
        self.faults = faults or FaultInjector()
        self.limiter = limiter or RateLimiter()
        #: Requests that reached a route, by (method, route pattern).
        self.request_counts: Counter[tuple[str, str]] = Counter()
        self._counts_lock = threading.Lock()
        self.router = Router()
        SandboxAdmin(self.faults, self.limiter).register(self.router)  # before the page catch-all
        register_all(store, self.router)

    def close(self) -> None:
        """Release requests held by a ``timeout`` fault, so that stopping never waits on them."""
        self.faults.stopping.set()

    def handle(self, req: Request) -> Response:
        if not req.path.startswith("/api/"):
            # The AI gateway is a service of its own: no GitLab token or rate limit, but faults, as the API gets.
            return self._answer(req, admin=req.path.startswith(f"{ADMIN}/"), faults=req.path.startswith(f"{AI_GATEWAY}/"))
        # As nginx in front of GitLab does: python-gitlab asks for "/features//name".
        req.path = re.sub("/{2,}", "/", req.path).rstrip("/")
        token_key = hashlib.sha256(self._given(req).encode()).hexdigest()
        arrived = time.time()  # the limiter's clock: when the request came in, not when it was answered
        allowed, rate_headers = self.limiter.hit(token_key)
        if allowed:
            response = self._answer(req, admin=True, faults=True)
        else:
            response = json_response({"message": "Retry later"}, 429)
        response.headers = {**rate_headers, **response.headers}
        self.requests.add(arrived, req.method, req.path, response.status, token_key[:12])
        return response

    def _answer(self, req: Request, *, admin: bool, faults: bool = False) -> Response:
        try:
            if admin and not self._authorized(req):
                if not self._is_guest(req):
                    raise ApiError(401, {"message": "401 Unauthorized"})
                # A Guest may read, not write; and not what only an administrator reads (``authenticated_as_admin!``).
                if req.method != "GET" or any(req.path.startswith(path) for path in ADMIN_READS):
                    raise ApiError(403, {"message": "403 Forbidden"})
            found = self.router.resolve(req.method, req.path)
            if found is None:
                raise ApiError.not_found()
            route, req.match = found
            with self._counts_lock:
                self.request_counts[(req.method, route.pattern.pattern)] += 1
            rule = self.faults.pick(req.method, req.path) if faults else None
            if rule is not None:
                return self.faults.apply(rule, lambda: self._run(route.handler, req))
            return self._run(route.handler, req)
        except ApiError as err:
            return json_response(err.body, err.status, err.headers)

    def _run(self, handler: Callable[[Request], Response], req: Request) -> Response:
        try:
            return handler(req)
        except ApiError as err:
            return json_response(err.body, err.status, err.headers)
        except Exception:
            log.exception("GitLab sandbox failed on %s %s", req.method, req.path)
            return json_response({"message": "500 Internal Server Error"}, 500)

    def _given(self, req: Request) -> str:
        given = req.headers.get("private-token", "")
        bearer = req.headers.get("authorization", "")
        if not given and bearer.lower().startswith("bearer "):
            given = bearer[7:].strip()
        return given

    def _is_guest(self, req: Request) -> bool:
        given = self._given(req)
        return bool(given) and self._guest is not None and hmac.compare_digest(given.encode(), self._guest)

    def _authorized(self, req: Request) -> bool:
        given = self._given(req)
        return bool(given) and hmac.compare_digest(given.encode(), self._token)


class RequestLog:
    """The last API requests: when, what, the answer, and which token (hashed). For tests."""

    def __init__(self, size: int = 20_000) -> None:
        self._lock = threading.Lock()
        self._entries: deque[tuple[float, str, str, int, str]] = deque(maxlen=size)

    def add(self, at: float, method: str, path: str, status: int, token: str) -> None:
        with self._lock:
            self._entries.append((at, method, path, status, token))

    def entries(self) -> list[tuple[float, str, str, int, str]]:
        with self._lock:
            return list(self._entries)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: GitLabApp) -> None:
        self.app = app
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def close_connections(self) -> None:
        """Drop kept-alive client connections, so nothing reaches a stopped sandbox."""
        with self.connections_lock:
            connections, self.connections = self.connections, set()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as requests sessions expect
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET  # noqa: N815

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(head=True)

    def _serve(self, head: bool = False) -> None:
        started = time.monotonic()
        path, _, query = self.path.partition("?")
        headers = {name.lower(): value for name, value in self.headers.items()}
        raw = self.rfile.read(int(headers.get("content-length") or 0))
        try:
            body = _parse_body(raw, headers.get("content-type", ""))
        except ApiError as err:
            response = json_response(err.body, err.status)
        else:
            host = headers.get("host") or "{}:{}".format(*self.server.server_address[:2])
            request = Request(
                method="GET" if head else self.command,
                path=path or "/",
                query=parse_qsl(query, keep_blank_values=True),
                headers=headers,
                body=body,
                base_url=f"http://{host}",
            )
            response = self.server.app.handle(request)
        # The path only: a query string could carry a private_token. Logged before the answer
        # goes out, so the line exists by the time the client sees the response.
        elapsed = (time.monotonic() - started) * 1000
        log.debug("%s %s -> %d (%.1f ms)", self.command, path, response.status, elapsed)
        if response.drop:  # an injected fault: the work is done, the answer is lost
            self.close_connection = True
            return
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if not head:
                self.wfile.write(response.body)
        except OSError:  # the client gave up first (e.g. its timeout beat a held request)
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silence http.server's own stderr lines; ``_serve`` logs each request."""


def _parse_body(raw: bytes, content_type: str) -> dict[str, Any]:
    if not raw.strip():
        return {}
    if "application/x-www-form-urlencoded" in content_type:
        body: dict[str, Any] = {}
        for name, value in parse_qsl(raw.decode(), keep_blank_values=True):
            if name.endswith("[]"):
                body.setdefault(name[:-2], []).append(value)
            else:
                body[name] = value
        return body
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, {"error": "The request body is not valid JSON"}) from None
    if not isinstance(body, dict):
        raise ApiError(400, {"error": "The request body must be a JSON object"})
    return body


def seed(store: Store, *, project_path: str, group_path: str, usernames: Iterable[str], projects: Iterable[str] = ()) -> None:
    """Create the bot, the users, the groups and the projects (``project_path`` and ``projects``)
    once; a restart changes nothing."""
    now = now_iso()
    bot = {"is_admin": True, "bot": True}
    people = [(BOT_USERNAME, "Model Migration Bot", bot)]
    people += [(u, u.replace("-", " ").replace("_", " ").title(), {}) for u in usernames]
    for username, name, extra in people:
        data = {"username": username, "name": name, "state": "active", "created_at": now, **extra}
        store.insert_if_absent("users", data, username=username)
    for path in dict.fromkeys([project_path, *projects]):
        _seed_project(store, path, group_path, now)


def _seed_project(store: Store, project_path: str, group_path: str, now: str) -> None:
    namespace, _, project_name = project_path.rpartition("/")
    if not namespace:
        raise ValueError(f"project path {project_path!r} needs a group, e.g. 'group/project'")
    parts = namespace.split("/")
    group_paths = {group_path} | {"/".join(parts[: i + 1]) for i in range(len(parts))}
    for full_path in sorted(group_paths, key=lambda p: p.count("/")):
        parent_path, _, path = full_path.rpartition("/")
        parent = store.find("groups", full_path=parent_path) if parent_path else None
        data = {
            "name": path,
            "path": path,
            "full_path": full_path,
            "full_name": full_path.replace("/", " / "),
            "parent_id": parent["id"] if parent else None,
            "created_at": now,
        }
        store.insert_if_absent("groups", data, full_path=full_path)

    group = store.find("groups", full_path=namespace)
    assert group is not None
    data = {
        "name": project_name,
        "path": project_name,
        "path_with_namespace": project_path,
        "name_with_namespace": project_path.replace("/", " / "),
        "namespace_id": group["id"],
        "created_at": now,
        VARIABLES_ROLE: SEEDED_VARIABLES_ROLE,
    }
    project = store.insert_if_absent("projects", data, path_with_namespace=project_path)
    if VARIABLES_ROLE not in project:  # seeded before the setting existed
        store.update("projects", {**project, VARIABLES_ROLE: SEEDED_VARIABLES_ROLE})


class GitLabSandbox:
    """A local GitLab on ``host:port`` (0 picks a free port) whose state lives in ``state_file``.

    ``token`` is the only accepted token; it belongs to the admin ``model-migration-bot``.
    ``rate_limit`` requests per ``rate_window`` seconds per token (None: unlimited, the
    ``RateLimit-*`` headers are sent anyway); ``inject_fault`` and ``set_rate_limit`` change
    the weather at run time (see ``sandbox.faults``).
    """

    def __init__(
        self,
        state_file: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str,
        project_path: str = DEFAULT_PROJECT,
        group_path: str = DEFAULT_GROUP,
        usernames: Iterable[str] = (),
        rate_limit: int | None = None,
        rate_window: float = 60,
        jobs: dict[str, list[JobSpec]] | None = None,
        guest_token: str | None = None,
        evaluation_project: str | None = EVALUATION_PROJECT,
    ) -> None:
        if not token:
            raise ValueError("the GitLab sandbox needs a token")
        self.state_file = Path(state_file)
        self.host = host
        self.port = port
        self.project_path = project_path
        self.group_path = group_path
        self.usernames = tuple(usernames)
        self.jobs = jobs  # CI jobs per project path; see sandbox.pipelines
        #: Seeded with its .gitlab-ci.yml, its pipelines run the evaluation job (None: not seeded).
        self.evaluation_project = evaluation_project
        self._token = token
        self._server: _Server | None = None
        self._store: Store | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # Kept across restarts, and usable before start(): tests arrange adversity up front.
        self._faults = FaultInjector()
        self._limiter = RateLimiter(rate_limit, rate_window)
        #: A second token whose user is a Guest: it reads, and every write is refused (403).
        self.guest_token = guest_token
        self.requests = RequestLog()

    def __repr__(self) -> str:
        return f"GitLabSandbox({str(self.state_file)!r}, url={self._url_or_none()!r})"

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:41234``; only while running."""
        url = self._url_or_none()
        if url is None:
            raise RuntimeError("the GitLab sandbox is not running")
        return url

    def start(self) -> str:
        """Serve on a daemon thread and return the base URL."""
        server = self._bind()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="gitlab-sandbox"
        )
        self._thread.daemon = True
        self._thread.start()
        return self.url

    def serve_forever(self) -> None:
        """Serve on this thread until ``stop()`` is called from another one, or an interrupt."""
        server = self._bind()
        log.info("GitLab sandbox serving %s (state in %s)", self.url, self.state_file)
        try:
            server.serve_forever(poll_interval=0.2)
        finally:
            self._close()

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._close()

    def __enter__(self) -> GitLabSandbox:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- adversity, for tests ----------------------------------------------------------------

    def inject_fault(
        self,
        path: str,
        fault: str,
        *,
        method: str = "*",
        count: int | None = None,
        fraction: float | None = None,
        retry_after: int = 1,
        delay: float = 30.0,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """Answer requests whose path matches the regex ``path`` with ``fault`` (see ``faults``)."""
        rule = self._faults.add(
            path, fault, method=method, count=count, fraction=fraction,
            retry_after=retry_after, delay=delay, seed=seed,
        )  # fmt: skip
        return rule.to_json()

    def faults(self) -> list[dict[str, Any]]:
        return [rule.to_json() for rule in self._faults.rules()]

    def clear_faults(self) -> None:
        self._faults.clear()

    def set_rate_limit(self, limit: int | None, window: float = 60) -> None:
        """``limit`` requests per ``window`` seconds per token; ``None`` is unlimited."""
        self._limiter.configure(limit, window)

    def request_counts(self) -> dict[tuple[str, str], int]:
        """Requests that reached a route, by (method, route pattern), since start."""
        server = self._server
        return dict(server.app.request_counts) if server is not None else {}

    def _bind(self) -> _Server:
        with self._lock:
            if self._server is not None:
                raise RuntimeError("the GitLab sandbox is already running")
            store = Store(self.state_file, schema=full_schema())
            # The caller's jobs win, also for the evaluation project.
            configure_jobs(store, {**evaluation_jobs(store, self.evaluation_project), **(self.jobs or {})})
            try:
                extra = (self.evaluation_project,) if self.evaluation_project else ()
                seed(
                    store,
                    project_path=self.project_path,
                    group_path=self.group_path,
                    usernames=self.usernames,
                    projects=extra,
                )
                for path in extra:
                    seed_ci_config(store, path)
                self._faults.stopping.clear()
                app = GitLabApp(
                    store, self._token, faults=self._faults, limiter=self._limiter,
                    guest_token=self.guest_token, requests=self.requests,
                )
                server = _Server((self.host, self.port), app)
            except BaseException:
                store.close()
                raise
            self._server, self._store = server, store
            return server

    def _close(self) -> None:
        with self._lock:
            server, store = self._server, self._store
            self._server = self._store = self._thread = None
        if server is not None:
            server.app.close()
            server.close_connections()
            server.server_close()
        if store is not None:
            store.close()

    def _url_or_none(self) -> str | None:
        server = self._server
        if server is None:
            return None
        host, port = server.server_address[:2]
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        return f"http://{host}:{port}"
