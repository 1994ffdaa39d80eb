"""The Slack incoming-webhook notifier, over real HTTP to a receiver started here: the payload,
Slack's answers mapped to retryable or not, the notify activity's errors, and the URL kept secret."""

from __future__ import annotations

import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from activities.payloads import NotifyInput
from model_migration.clients.notifier import LogNotifier, NotifierError, SlackWebhookNotifier, notifier_from, slack_payload
from model_migration.domain.errors import DomainError, ErrorType
from model_migration.domain.models import Notice
from model_migration.settings import Settings

NOTICE = Notice(
    workflow_id="feature:duo_chat/claude-4/1",
    audience=("dri-chat", "mgr-chat", "<@U012AB3CD>"),
    subject="Duo Chat migration is blocked in rollout on GitLab access",
    body="403 Forbidden <token> & co. Fix the token, then run: model-migration resume feature:duo_chat/claude-4/1",
)


@dataclass
class Answer:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A stand-in for Slack's webhook endpoint: answers from a queue (else 200 ``ok``) and keeps each request."""

    def __init__(self) -> None:
        #: The secret part, as Slack's own URLs carry it: /services/<team>/<hook>/<token>.
        self.path = f"/services/T0TEST/B0TEST/{secrets.token_urlsafe(18)}"
        self.answers: list[Answer] = []
        self.received: list[Received] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append(Received("POST", self.path, dict(self.headers.items()), body))
                answer = receiver.answers.pop(0) if receiver.answers else Answer()
                time.sleep(answer.delay)
                payload = answer.body.replace("{path}", self.path).encode()
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the default writes the request line, secret path and all, to stderr

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that timed out and hung up is the point of one test

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{self.path}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def answer(self, *answers: Answer) -> None:
        self.answers.extend(answers)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()
        r.thread.join(timeout=5)


def slack(receiver: Receiver, **kwargs: Any) -> SlackWebhookNotifier:
    return SlackWebhookNotifier(SecretStr(receiver.url), **kwargs)


def refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nothing listens there


def failure(notifier: SlackWebhookNotifier, notice: Notice = NOTICE) -> NotifierError:
    with pytest.raises(NotifierError) as info:
        notifier.send(notice)
    return info.value


# --- the payload --------------------------------------------------------------------------------


def test_posts_slack_webhook_json_and_logs_the_notice(receiver: Receiver) -> None:
    """One POST of JSON to the URL: a header, the body as mrkdwn, the audience and workflow id; the log has it too."""
    log = LogNotifier()
    slack(receiver, fallback=log).send(NOTICE)
    [request] = receiver.received
    assert request.path == receiver.path and request.headers["Content-Type"].startswith("application/json")
    payload = json.loads(request.body)
    assert set(payload) == {"text", "blocks"}
    header, section, context = payload["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": NOTICE.subject, "emoji": True}}
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert "403 Forbidden &lt;token&gt; &amp; co." in section["text"]["text"]  # Slack's three control characters escaped
    assert context["type"] == "context"
    lines = [element["text"] for element in context["elements"]]
    assert lines == ["For @dri-chat @mgr-chat <@U012AB3CD>", "Workflow `feature:duo_chat/claude-4/1`"]
    # ``text`` is the notification, and all that a Slack-compatible receiver without blocks shows.
    assert payload["text"].startswith(f"*{NOTICE.subject}*\n") and section["text"]["text"] in payload["text"]
    assert payload["text"].endswith("For @dri-chat @mgr-chat <@U012AB3CD> · Workflow `feature:duo_chat/claude-4/1`")
    assert list(log.sent) == [NOTICE]


def test_payload_keeps_within_block_kit_limits() -> None:
    """A long subject and body are clipped to Block Kit's 150 and 3000 characters; no body, no section; no audience, no mentions."""
    long = Notice(workflow_id="wf", audience=(), subject="s" * 400, body="a&" * 2000)
    header, section, _ = slack_payload(long)["blocks"]
    assert len(header["text"]["text"]) == 150 and len(section["text"]["text"]) <= 3000
    assert not section["text"]["text"].removesuffix("…").endswith(("&", "&a", "&am", "&amp"))  # no half entity
    bare = slack_payload(Notice(workflow_id="wf", audience=(), subject=""))
    assert [block["type"] for block in bare["blocks"]] == ["header", "context"]
    assert bare["blocks"][0]["text"]["text"] and bare["blocks"][1]["elements"] == [{"type": "mrkdwn", "text": "Workflow `wf`"}]


# --- Slack's answers ----------------------------------------------------------------------------


def test_rate_limit_is_retryable_after_slacks_wait(receiver: Receiver) -> None:
    """429 ``rate_limited`` with ``Retry-After: 7`` is retryable and carries the 7 seconds; the log still has the notice."""
    receiver.answer(Answer(429, "rate_limited", {"Retry-After": "7"}))
    log = LogNotifier()
    err = failure(slack(receiver, fallback=log))
    assert (err.type, err.status, err.retry_after) == (ErrorType.NOTIFIER_UNAVAILABLE, 429, 7.0)
    assert "429 rate_limited" in err.message and list(log.sent) == [NOTICE]


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retryable(receiver: Receiver, status: int) -> None:
    """Slack's 5xx (``rollup_error``) is retried, with no wait of its own."""
    receiver.answer(Answer(status, "rollup_error"))
    err = failure(slack(receiver))
    assert (err.type, err.status, err.retry_after) == (ErrorType.NOTIFIER_UNAVAILABLE, status, None)


@pytest.mark.parametrize(
    ("status", "word", "hint"),
    [
        (400, "invalid_payload", "malformed"),
        (403, "action_prohibited", "forbids"),
        (404, "no_service", "create a new one"),
        (404, "channel_not_found", "deleted"),
        (410, "channel_is_archived", "archived"),
        (404, "<html>not a slack word</html>", "check the webhook URL"),
    ],
)
def test_refusals_are_not_retried(receiver: Receiver, status: int, word: str, hint: str) -> None:
    """4xx answers fail for good, naming Slack's reason and what to do; a body that is not one word is not repeated."""
    receiver.answer(Answer(status, word))
    err = failure(slack(receiver))
    assert (err.type, err.status, err.retry_after) == (ErrorType.NOTIFIER_REFUSED, status, None)
    assert hint in err.message and "html" not in err.message
    assert ErrorType.NOTIFIER_REFUSED in ErrorType.non_retryable() and ErrorType.NOTIFIER_UNAVAILABLE not in ErrorType.non_retryable()


def test_a_redirect_is_not_followed(receiver: Receiver) -> None:
    """A 302 is a refusal: following it would GET another page and call that a delivery."""
    receiver.answer(Answer(302, "", {"Location": "/elsewhere"}))
    err = failure(slack(receiver))
    assert err.type is ErrorType.NOTIFIER_REFUSED and len(receiver.received) == 1


def test_connection_refused_and_timeout_are_retryable(receiver: Receiver) -> None:
    """Nothing listening, or no answer within the timeout: retried."""
    err = failure(SlackWebhookNotifier(SecretStr(f"http://127.0.0.1:{refused_port()}/services/T/B/x")))
    assert err.type is ErrorType.NOTIFIER_UNAVAILABLE and "ConnectionRefusedError" in err.message
    receiver.answer(Answer(delay=1.0))
    err = failure(slack(receiver, timeout=0.2))
    assert err.type is ErrorType.NOTIFIER_UNAVAILABLE and "Timeout" in err.message


def test_the_url_never_shows(receiver: Receiver, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    """Across every failure, no error, activity error or log line holds the URL's secret path; the host may show."""
    caplog.set_level(logging.DEBUG)
    receiver.answer(
        Answer(429, "rate_limited", {"Retry-After": "1"}), Answer(500, "rollup_error"), Answer(404, "no_service"),
        Answer(400, "{path}"),  # a receiver that echoes the request line back
    )
    secret_url = SecretStr(receiver.url)
    unreachable = SecretStr(f"http://127.0.0.1:{refused_port()}{receiver.path}")
    texts: list[str] = []
    with capture_logs() as logs:
        for url in (secret_url, secret_url, secret_url, secret_url, unreachable):
            notifier = SlackWebhookNotifier(url)
            try:  # a refusal completes the activity, its error in the log (which is checked below too)
                ActivityEnvironment().run(NotifyActivities(notifier).notify, NotifyInput(**NOTICE.model_dump()))
            except ApplicationError as err:
                texts += [str(err), repr(err), repr(err.__cause__), repr(err.__context__)]
            texts.append(repr(notifier))
        for bad in (f"ftp://127.0.0.1{receiver.path}", f"http://127.0.0.1:1{receiver.path} with spaces", f"http://[::1{receiver.path}"):
            with pytest.raises(DomainError) as refused:
                SlackWebhookNotifier(SecretStr(bad))
            assert refused.value.type is ErrorType.INVALID_INPUT
            texts.append(str(refused.value))
    texts += [repr(logs), caplog.text, *capsys.readouterr()]
    texts.append(repr(Settings(slack_webhook_url=secret_url)))
    assert len(receiver.received) == 4
    token = receiver.path.rsplit("/", 1)[1]
    leaks = [text for text in texts if token in text or "/services/" in text]
    assert not leaks
    assert any("127.0.0.1" in text for text in texts)  # the host is how an operator knows which webhook


# --- wiring ---------------------------------------------------------------------------------------


def test_notifier_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``MODEL_MIGRATION_SLACK_WEBHOOK_URL`` set: Slack, logging too; unset or empty: the log only."""
    url = "https://hooks.slack.com/services/T0/B0/" + secrets.token_urlsafe(12)
    monkeypatch.setenv("MODEL_MIGRATION_SLACK_WEBHOOK_URL", url)
    chosen = notifier_from(Settings())
    assert isinstance(chosen, SlackWebhookNotifier) and isinstance(chosen.fallback, LogNotifier)
    assert chosen.host == "hooks.slack.com"
    monkeypatch.setenv("MODEL_MIGRATION_SLACK_WEBHOOK_URL", "")
    assert type(notifier_from(Settings())) is LogNotifier
    monkeypatch.delenv("MODEL_MIGRATION_SLACK_WEBHOOK_URL")
    assert type(notifier_from(Settings())) is LogNotifier


def test_each_notifier_gets_its_own_log() -> None:
    """The default fallback is a fresh ``LogNotifier`` per notifier, not one shared by all; ``None`` turns it off."""
    first, second = (SlackWebhookNotifier(SecretStr("https://hooks.slack.com/services/a")) for _ in range(2))
    assert first.fallback is not second.fallback
    assert SlackWebhookNotifier(SecretStr("https://hooks.slack.com/services/a"), fallback=None).fallback is None


# --- the activity ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "kind", "non_retryable", "delay"),
    [
        (Answer(429, "rate_limited", {"Retry-After": "7"}), ErrorType.NOTIFIER_UNAVAILABLE, False, timedelta(seconds=7)),
        (Answer(503, "rollup_error"), ErrorType.NOTIFIER_UNAVAILABLE, False, None),
    ],
)
def test_activity_raises_typed_application_errors(
    receiver: Receiver, answer: Answer, kind: ErrorType, non_retryable: bool, delay: timedelta | None
) -> None:
    """The notify activity turns the notifier's error into an ``ApplicationError`` Temporal retries, or not, as typed."""
    receiver.answer(answer)
    with pytest.raises(ApplicationError) as info:
        ActivityEnvironment().run(NotifyActivities(slack(receiver)).notify, NotifyInput(**NOTICE.model_dump()))
    err = info.value
    assert (err.type, err.non_retryable, err.next_retry_delay) == (kind.value, non_retryable, delay)
    assert err.__cause__ is None and err.__suppress_context__


@pytest.mark.parametrize("answer", [Answer(404, "no_service"), Answer(400, "invalid_payload")])
def test_a_refusal_does_not_fail_the_sender(receiver: Receiver, answer: Answer) -> None:
    """A refused notice is kept in the log and logged as an error; the activity completes, so the workflow goes on."""
    receiver.answer(answer)
    log = LogNotifier()
    with capture_logs() as logs:
        ActivityEnvironment().run(NotifyActivities(slack(receiver, fallback=log)).notify, NotifyInput(**NOTICE.model_dump()))
    assert list(log.sent) == [NOTICE]
    refused = [entry for entry in logs if entry["event"] == "notice_refused"]
    assert len(refused) == 1 and refused[0]["log_level"] == "error" and refused[0]["error_type"] == ErrorType.NOTIFIER_REFUSED.value


def test_activity_succeeds_when_slack_says_ok(receiver: Receiver) -> None:
    """A 200 ``ok`` completes the activity; one post, one log line."""
    log = LogNotifier()
    with capture_logs() as logs:
        ActivityEnvironment().run(NotifyActivities(slack(receiver, fallback=log)).notify, NotifyInput(**NOTICE.model_dump()))
    assert len(receiver.received) == 1 and list(log.sent) == [NOTICE]
    assert [entry["event"] for entry in logs] == ["notice"]
