"""Notifiers reach people outside GitLab. The log notifier writes one structured line per notice;
the Slack notifier also posts it to a Slack (or Slack-compatible) incoming webhook.

A webhook URL is a credential: whoever has it can post to the channel. It never appears in a
log line or an error; only its host does.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections import deque
from enum import Enum
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import structlog
from pydantic import SecretStr

from model_migration.clients.gitlab_errors import retry_after_seconds
from model_migration.domain.errors import DomainError, ErrorType
from model_migration.domain.models import Notice
from model_migration.settings import Settings


class Notifier(ABC):
    @abstractmethod
    def send(self, notice: Notice) -> None: ...


class LogNotifier(Notifier):
    """Writes notices to the worker's log, where alerting picks them up.

    ``sent`` keeps the last ``keep`` notices (for tests and the demo's summary): a worker runs
    for months, and an unbounded list would grow with every escalation it ever sent.
    """

    def __init__(self, keep: int = 1000) -> None:
        self.sent: deque[Notice] = deque(maxlen=keep)
        self._lock = threading.Lock()  # sends come from many activity threads
        self._log = structlog.get_logger("notify")

    def send(self, notice: Notice) -> None:
        with self._lock:
            self.sent.append(notice)
        self._log.warning("notice", workflow_id=notice.workflow_id, audience=list(notice.audience),
                          subject=notice.subject, body=notice.body)


class NotifierError(DomainError):
    """A notice could not be delivered; ``type`` says whether to retry, ``retry_after`` (seconds)
    when the receiver said how long to wait."""

    def __init__(self, message: str, *, type: ErrorType, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, type=type)
        self.status = status
        self.retry_after = retry_after


class _Default(Enum):
    LOG = "log"


#: Slack's answers to a refused webhook post (its body is one of these words), and what to do.
_HINTS: Final = {
    "invalid_payload": "the message was malformed",
    "invalid_blocks": "the message's blocks were malformed",
    "invalid_blocks_format": "the message's blocks were malformed",
    "no_text": "the message had no text",
    "user_not_found": "a user in the message does not exist",
    "action_prohibited": "the workspace forbids this webhook to post here",
    "invalid_token": "the webhook was revoked; create a new one",
    "no_service": "the webhook was removed or its URL is wrong; create a new one",
    "no_team": "the webhook's workspace is gone; create a new one",
    "no_active_hooks": "the webhook is disabled",
    "channel_not_found": "the webhook's channel was deleted",
    "channel_is_archived": "the webhook's channel is archived",
}
_ERROR_WORD = re.compile(r"[a-z][a-z_]{0,63}")
#: A recipient already written in Slack's own syntax: a user or group id, or ``<!here>``.
_SLACK_MENTION = re.compile(r"<[@!#][A-Za-z0-9^|_.-]+>")
_HEADER_MAX, _SECTION_MAX = 150, 3000  # Block Kit's limits for a header's and a section's text


class SlackWebhookNotifier(Notifier):
    """Posts each notice to an incoming webhook, after writing it to ``fallback`` (by default a
    ``LogNotifier``) so a notice the webhook loses is still on record.

    Nothing here retries (Temporal does). A 429 (with its ``Retry-After``), a 408, a 5xx or a
    connection problem is ``NOTIFIER_UNAVAILABLE``; any other refusal is ``NOTIFIER_REFUSED``.
    Each retry writes the notice to ``fallback`` again: a duplicate log line, never a lost one.
    """

    def __init__(
        self,
        url: SecretStr,
        *,
        timeout: float = 10.0,
        fallback: Notifier | None | Literal[_Default.LOG] = _Default.LOG,
    ) -> None:
        value = url.get_secret_value()
        try:
            parts = urlsplit(value)
        except ValueError:
            parts = urlsplit("")
        printable = value.isascii() and value.isprintable() and " " not in value
        if parts.scheme not in ("http", "https") or not parts.hostname or not printable:
            raise DomainError("the Slack webhook URL must be an http(s) URL with a host, no spaces", type=ErrorType.INVALID_INPUT)
        self._url = url
        self.host = parts.hostname
        self.fallback = LogNotifier() if fallback is _Default.LOG else fallback
        self._timeout = timeout
        # Env proxies are honoured (a worker often reaches Slack only through one); redirects are
        # not: following one would turn the POST into a GET that "succeeds" without posting.
        self._opener = urllib.request.build_opener(_NoRedirect)
        self._log = structlog.get_logger("notify")

    def send(self, notice: Notice) -> None:
        if self.fallback is not None:
            self.fallback.send(notice)
        log = self._log.bind(workflow_id=notice.workflow_id, webhook_host=self.host)
        request = urllib.request.Request(
            self._url.get_secret_value(), data=json.dumps(slack_payload(notice)).encode(), method="POST",
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                response.read()
        except urllib.error.HTTPError as err:
            word = _error_word(err)
            log.warning("slack_post_failed", status=err.code, error=word)
            raise self._refusal(err.code, word, err.headers) from None
        except ValueError:  # http.client's InvalidURL and UnicodeEncodeError; the first quotes the URL
            log.warning("slack_post_failed", error="InvalidURL")
            raise NotifierError(f"the Slack webhook URL for {self.host} is malformed", type=ErrorType.NOTIFIER_REFUSED) from None
        except (OSError, http.client.HTTPException) as err:  # URLError, refused, reset, timed out
            cause = getattr(err, "reason", None)
            reason = type(cause if isinstance(cause, BaseException) else err).__name__
            log.warning("slack_post_failed", error=reason)
            message = f"cannot post to the Slack webhook at {self.host}: {reason}"
            raise NotifierError(message, type=ErrorType.NOTIFIER_UNAVAILABLE) from None

    def _refusal(self, status: int, word: str, headers: Any) -> NotifierError:
        said = f" {word}" if word else ""
        if status in (408, 429) or status >= 500:
            wait = retry_after_seconds(headers, rate_limited=status == 429) or None
            after = f"; retry after {wait:g}s" if wait else ""
            message = f"the Slack webhook at {self.host} answered {status}{said}{after}"
            return NotifierError(message, type=ErrorType.NOTIFIER_UNAVAILABLE, status=status, retry_after=wait)
        hint = _HINTS.get(word) or ("it redirects; check the URL" if status < 400 else "check the webhook URL")
        message = f"the Slack webhook at {self.host} refused the notice: {status}{said} ({hint})"
        return NotifierError(message, type=ErrorType.NOTIFIER_REFUSED, status=status)

    def __repr__(self) -> str:
        return f"SlackWebhookNotifier(host={self.host!r})"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx reaches the caller as an HTTPError


def _error_word(err: urllib.error.HTTPError) -> str:
    """Slack's one-word reason, if the body is one; anything else is not repeated, in case a
    receiver echoes the request (and with it the URL)."""
    try:
        body = err.read(200).decode("utf-8", "replace").strip()
    except (OSError, http.client.HTTPException):
        return ""
    finally:
        err.close()
    return body if _ERROR_WORD.fullmatch(body) else ""


def slack_payload(notice: Notice) -> dict[str, Any]:
    """Slack's incoming-webhook JSON: ``blocks`` for Slack, and the whole notice in ``text`` too,
    which Slack shows in notifications and Slack-compatible receivers show instead of blocks."""
    subject, body = _escape(notice.subject), _escape(notice.body)
    mentions = " ".join(_mention(name) for name in notice.audience)
    footer = [f"For {mentions}"] if mentions else []
    footer.append(f"Workflow `{_escape(notice.workflow_id)}`")
    text = "\n".join([f"*{subject}*", *([body] if body else []), " · ".join(footer)])
    header = notice.subject.strip() or "Notice from the model migration engine"  # Slack refuses an empty header
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(header, _HEADER_MAX), "emoji": True}},
    ]
    if body:
        section = _clip(body, _SECTION_MAX)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": re.sub(r"&[a-z]*…$", "…", section)}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": line} for line in footer]})
    return {"text": text, "blocks": blocks}


def _mention(name: str) -> str:
    # A GitLab username is shown as @name (Slack links it only if a Slack user has that name);
    # a recipient given in Slack's syntax (<@U123>, <!subteam^S1>, <!here>) really notifies.
    if _SLACK_MENTION.fullmatch(name):
        return name
    return "@" + _escape(name.removeprefix("@"))


def _escape(text: str) -> str:
    """Slack's mrkdwn escaping: these three characters are its control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def notifier_from(settings: Settings) -> Notifier:
    """The log, plus Slack when ``MODEL_MIGRATION_SLACK_WEBHOOK_URL`` is set."""
    url = settings.slack_webhook_url
    if url is None or not url.get_secret_value().strip():  # an empty variable means "not set"
        return LogNotifier()
    return SlackWebhookNotifier(SecretStr(url.get_secret_value().strip()))
