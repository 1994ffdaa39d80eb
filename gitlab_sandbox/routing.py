"""HTTP plumbing shared by the sandboxes: requests, responses, a route table and pagination.

A handler takes a ``Request`` and returns a ``Response`` or raises ``ApiError``. New endpoints
are one ``router.add(method, pattern, handler)`` line each.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import unquote, urlencode


class ApiError(Exception):
    """An HTTP error with GitLab's JSON body shape."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}

    @classmethod
    def not_found(cls, what: str = "") -> ApiError:
        return cls(404, {"message": f"404 {what} Not Found" if what else "404 Not Found"})

    @classmethod
    def missing(cls, name: str) -> ApiError:
        return cls(400, {"error": f"{name} is missing"})

    @classmethod
    def invalid(cls, name: str) -> ApiError:
        """Grape's answer to a parameter of the wrong type."""
        return cls(400, {"error": f"{name} is invalid"})

    @classmethod
    def not_valid_value(cls, name: str) -> ApiError:
        """Grape's answer to a parameter outside its allowed values."""
        return cls(400, {"error": f"{name} does not have a valid value"})

    @classmethod
    def validation(cls, errors: dict[str, list[str]]) -> ApiError:
        """ActiveRecord validation errors, as GitLab renders them."""
        return cls(400, {"message": errors})


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    #: Close the connection without answering (the fault injector's ``drop_after_write``).
    drop: bool = False


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(data).encode(), "application/json", dict(headers or {}))


def html_response(text: str, status: int = 200) -> Response:
    return Response(status, text.encode(), "text/html; charset=utf-8")


@dataclass
class Request:
    method: str
    path: str  # still percent-encoded, without the query string
    query: list[tuple[str, str]]
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any]
    base_url: str  # scheme and host the client used, for links in responses
    match: dict[str, str] = field(default_factory=dict)  # decoded path parameters

    def has(self, name: str) -> bool:
        return name in self.body or any(k in (name, f"{name}[]") for k, _ in self.query)

    def get(self, name: str, default: Any = None) -> Any:
        """A body parameter, else the last query parameter of that name."""
        if name in self.body:
            return self.body[name]
        values = [v for k, v in self.query if k == name]
        return values[-1] if values else default

    def get_list(self, name: str) -> list[str] | None:
        """A JSON array, repeated ``name[]`` parameters, or a comma-separated string."""
        value = self.body.get(name, self.body.get(f"{name}[]"))
        if value is None:
            repeated = [v for k, v in self.query if k == f"{name}[]"]
            value = repeated or self.get(name)
        if value is None:
            return None
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, list):
            value = [value]
        return [str(v).strip() for v in value if str(v).strip()]

    def get_int(self, name: str, default: int | None = None) -> int | None:
        value = self.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            raise ApiError.invalid(name)
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ApiError.invalid(name) from None

    def get_int_list(self, name: str) -> list[int] | None:
        values = self.get_list(name)
        if values is None:
            return None
        try:
            return [int(v) for v in values]
        except ValueError:
            raise ApiError.invalid(name) from None

    def get_bool(self, name: str) -> bool | None:
        value = self.get(name)
        if value is None or isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("true", "1", "yes", "t"):
            return True
        if text in ("false", "0", "no", "f"):
            return False
        raise ApiError.invalid(name)

    def get_date(self, name: str) -> date | None:
        value = self.get(name)
        if value is None or value == "":
            return None
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise ApiError.invalid(name) from None

    def get_choice(self, name: str, choices: Sequence[str], default: str) -> str:
        value = self.get(name, default)
        if value not in choices:
            raise ApiError.not_valid_value(name)
        return str(value)


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    auth: bool


class Router:
    """An ordered table of (method, regex, handler); the first match wins."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler, *, auth: bool = True) -> None:
        self.routes.append(Route(method.upper(), re.compile(f"^{pattern}$"), handler, auth))

    def resolve(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            if route.method != method:
                continue
            found = route.pattern.match(path)
            if found:
                return route, {k: unquote(v) for k, v in found.groupdict().items()}
        return None


DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
#: Above this many items GitLab stops counting: no x-total, x-total-pages or rel="last".
MAX_COUNTED = 10_000
KEYSET_UNAVAILABLE = "Keyset pagination is not yet available for this type of request"


def paginate(
    req: Request, items: Sequence[Any], *, keyset: Sequence[str] = ()
) -> tuple[list[Any], dict[str, str]]:
    """One page of ``items`` and the headers that describe it, the way GitLab pages.

    Offset pagination (``page``, ``per_page``) is the default. ``pagination=keyset`` works only
    where the endpoint passes the ``order_by`` values GitLab supports keyset on (``keyset``);
    elsewhere GitLab answers 405, and so does this.
    """
    per_page = req.get_int("per_page", DEFAULT_PER_PAGE) or DEFAULT_PER_PAGE
    per_page = min(max(per_page, 1), MAX_PER_PAGE)
    if req.get("pagination") == "keyset":
        if str(req.get("order_by")) not in keyset:
            raise ApiError(405, {"error": KEYSET_UNAVAILABLE})
        return _keyset_page(req, items, per_page)
    page = max(req.get_int("page", 1) or 1, 1)
    total = len(items)
    counted = total <= MAX_COUNTED
    total_pages = max(math.ceil(total / per_page), 1)
    chunk = list(items[(page - 1) * per_page : page * per_page])
    next_page = page + 1 if page < total_pages else None
    prev_page = page - 1 if 1 < page <= total_pages + 1 else None

    rels = [(prev_page, "prev"), (next_page, "next"), (1, "first")]
    rels += [(total_pages, "last")] if counted else []
    headers = {
        "x-page": str(page),
        "x-per-page": str(per_page),
        "x-next-page": str(next_page or ""),
        "x-prev-page": str(prev_page or ""),
        "Link": ", ".join(
            f'{_link(req, page=str(n), per_page=str(per_page))}; rel="{rel}"'
            for n, rel in rels
            if n
        ),
    }
    if counted:
        headers.update({"x-total": str(total), "x-total-pages": str(total_pages)})
    return chunk, headers


def _keyset_page(
    req: Request, items: Sequence[Any], per_page: int
) -> tuple[list[Any], dict[str, str]]:
    """GitLab's keyset pages by id: ``id_after`` ascending, ``id_before`` descending. The only
    header is ``Link`` with ``rel="next"``, present while more items follow; no totals."""
    descending = req.get_choice("sort", ("asc", "desc"), "desc") == "desc"
    cursor_name = "id_before" if descending else "id_after"
    cursor = req.get_int(cursor_name)
    ordered = sorted(items, key=lambda item: item["id"], reverse=descending)
    if cursor is not None:
        ordered = [
            item for item in ordered if (item["id"] < cursor if descending else item["id"] > cursor)
        ]
    chunk = ordered[:per_page]
    headers: dict[str, str] = {}
    if len(ordered) > per_page:
        link = _link(req, per_page=str(per_page), **{cursor_name: str(chunk[-1]["id"])})
        headers["Link"] = f'{link}; rel="next"'
    return chunk, headers


def _link(req: Request, **params: str) -> str:
    """This request's URL (on the host the client used) with ``params`` replaced."""
    query = [(k, v) for k, v in req.query if k not in params and k not in ("id_after", "id_before")]
    query += list(params.items())
    return f"<{req.base_url}{req.path}?{urlencode(query)}>"


def paged_json(
    req: Request,
    items: Sequence[Any],
    render: Callable[[Any], Any],
    *,
    keyset: Sequence[str] = (),
) -> Response:
    chunk, headers = paginate(req, items, keyset=keyset)
    return json_response([render(item) for item in chunk], headers=headers)
