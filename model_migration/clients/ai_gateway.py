"""The AI gateway's model definitions (``GET /v1/models/definitions``), as the deprecation watch reads them.

The gateway serves this path without authentication (the Rails monolith reads it to list models),
so no token is sent. Nothing here retries (Temporal does); each answer maps to one error type:

- no connection, a timeout, 429 or 5xx, or a body that is not JSON (a proxy's or a maintenance
  page in the way): ``AI_GATEWAY_UNAVAILABLE``, retried, after ``Retry-After`` when it is sent;
- any other 4xx (a wrong URL) or JSON that is not the definitions' shape: ``AI_GATEWAY_REFUSED``,
  never retried: the URL points elsewhere or the gateway's contract changed, and a person must look.
"""

from __future__ import annotations

from typing import Any

import requests
from pydantic import BaseModel, ConfigDict, ValidationError

from model_migration.domain.deprecation_notices import GatewayModel
from model_migration.domain.errors import DomainError, ErrorType

DEFINITIONS = "/v1/models/definitions"


class AiGatewayError(DomainError):
    """The gateway could not be read; ``type`` says whether to retry, ``retry_after`` (seconds) when it said."""

    def __init__(self, message: str, *, type: ErrorType, retry_after: float | None = None) -> None:
        super().__init__(message, type=type)
        self.retry_after = retry_after


class _Definitions(BaseModel):
    model_config = ConfigDict(frozen=True)
    models: list[GatewayModel]


class AiGatewayClient:
    """One gateway. ``base_url`` is its root, e.g. ``https://cloud.gitlab.com/ai`` or ``<sandbox>/ai-gateway``."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._session = requests.Session()
        self._session.trust_env = False  # no .netrc or proxies picked up from the environment

    def close(self) -> None:
        self._session.close()

    def model_definitions(self) -> list[GatewayModel]:
        """Every model the gateway serves, with its ``deprecation`` when it has one."""
        url = self.base_url + DEFINITIONS
        try:
            response = self._session.get(url, timeout=self._timeout, headers={"Accept": "application/json"})
        except requests.RequestException as err:
            raise _unavailable(f"{type(err).__name__} reaching {self.base_url}") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise _unavailable(f"it answered {status}", retry_after=_seconds(response.headers.get("Retry-After")))
        if not response.ok:
            raise AiGatewayError(
                f"cannot read the AI gateway's model definitions: {url} answered {status}; check MODEL_MIGRATION_AI_GATEWAY_URL",
                type=ErrorType.AI_GATEWAY_REFUSED,
            )
        try:
            body = response.json()
        except ValueError:
            kind = response.headers.get("Content-Type", "no content type").split(";")[0]
            raise _unavailable(f"it answered {status} with {kind}, not JSON") from None
        try:
            return list(_Definitions.model_validate(body).models)
        except ValidationError as err:
            raise AiGatewayError(
                f"the AI gateway sent malformed model definitions: {_first_problem(err, body)}", type=ErrorType.AI_GATEWAY_REFUSED,
            ) from None


def _unavailable(reason: str, *, retry_after: float | None = None) -> AiGatewayError:
    return AiGatewayError(
        f"cannot read the AI gateway's model definitions: {reason}", type=ErrorType.AI_GATEWAY_UNAVAILABLE, retry_after=retry_after,
    )


def _first_problem(err: ValidationError, body: Any) -> str:
    """The first field in error, naming the model by identifier when it has one: ``models[3] (id).field: msg``."""
    first = err.errors()[0]
    loc = list(first["loc"])
    where = ""
    if len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int):
        entry = body["models"][loc[1]]
        identifier = entry.get("identifier") if isinstance(entry, dict) else None
        where = f"models[{loc[1]}]" + (f" ({identifier})" if isinstance(identifier, str) else "")
        loc = loc[2:]
    rest = ".".join(str(part) for part in loc)
    where = ".".join(part for part in (where, rest) if part) or "(the answer)"
    return " ".join(f"{where}: {first['msg']}".split())[:300]


def _seconds(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None  # an HTTP date: the next retry's own backoff will do
