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


def paginate(req: Request, items: Sequence[Any]) -> tuple[list[Any], dict[str, str]]:
    """GitLab offset pagination: one page of ``items`` and the headers that describe it."""
    per_page = req.get_int("per_page", DEFAULT_PER_PAGE) or DEFAULT_PER_PAGE
    per_page = min(max(per_page, 1), MAX_PER_PAGE)
    page = max(req.get_int("page", 1) or 1, 1)
    total = len(items)
    total_pages = max(math.ceil(total / per_page), 1)
    chunk = list(items[(page - 1) * per_page : page * per_page])
    next_page = page + 1 if page < total_pages else None
    prev_page = page - 1 if 1 < page <= total_pages + 1 else None

    def link(number: int) -> str:
        query = [(k, v) for k, v in req.query if k not in ("page", "per_page")]
        query += [("page", str(number)), ("per_page", str(per_page))]
        return f"<{req.base_url}{req.path}?{urlencode(query)}>"

    rels = [(prev_page, "prev"), (next_page, "next"), (1, "first"), (total_pages, "last")]
    headers = {
        "x-page": str(page),
        "x-per-page": str(per_page),
        "x-next-page": str(next_page or ""),
        "x-prev-page": str(prev_page or ""),
        "x-total": str(total),
        "x-total-pages": str(total_pages),
        "Link": ", ".join(f'{link(n)}; rel="{rel}"' for n, rel in rels if n),
    }
    return chunk, headers


def paged_json(req: Request, items: Sequence[Any], render: Callable[[Any], Any]) -> Response:
    chunk, headers = paginate(req, items)
    return json_response([render(item) for item in chunk], headers=headers)
