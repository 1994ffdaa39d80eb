"""The promptfoo harness: candidate against baseline, run by the promptfoo CLI on this worker's machine.

``register`` writes a run directory, ``<work dir>/<run id>/``, and starts the CLI there detached
(its own session), so the run outlives the worker that started it: a new attempt, in a new
process, polls the same run id and reads everything from that directory.

- ``promptfooconfig.yaml``: the run's config (``promptfoo_config``); ``request.json``: what was asked;
- ``run.sh``: runs the CLI once and then records its exit code in ``exit_code``; it writes its own
  pid to ``runner.pid`` first, and ``state`` knows the process by that pid and its command line;
- ``promptfoo.log``: the CLI's output; ``results.json``: its results (exit 0, or 100 when some
  assertion failed: that run is complete too).

The config is what a deployment runs; settings switch its providers, nothing else:

- two providers labelled ``baseline`` and ``candidate``; each ``config`` names the side's
  ``model`` (GitLab identifier), ``prompt_id``, ``prompt_version`` and ``dataset``. By default a
  provider is the model's own promptfoo provider (``anthropic:messages:<params.model>``,
  ``vertex:<params.model>``, ...) with the catalog's temperature and token limit;
  ``promptfoo_provider`` replaces both with one provider that reads the model and prompt version
  from its config: an AI-gateway provider, or the sandbox's simulator
  (``file://<gitlab_sandbox>/promptfoo_provider.py``);
- one test per dataset example, ``vars: {example_id, input, reference}``; the prompt is the input;
- one assertion per requested evaluator, ``metric:`` its name, so ``namedScores`` come out per
  metric: the judges are ``llm-rubric`` (a 1–4 grade sent as ``(grade - 1) / 3``), similarity is
  ``similar`` to the reference (cosine of embeddings), exact match is ``equals`` the reference
  (after dropping one trailing HTML comment, where a provider may annotate its answer);
- the graders are promptfoo's own unless ``promptfoo_grader`` (judge) and ``promptfoo_embedder``
  name others; offline, both are ``file://<gitlab_sandbox>/promptfoo_grader.js``, which reads back
  the scores the simulator annotated its answers with.

Latency is promptfoo's ``latencyMs``: what the provider call took, measured by promptfoo.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from model_migration.clients.experiments import ExperimentRequest, ExperimentState, HarnessError
from model_migration.clients.promptfoo_config import paired_examples, promptfoo_config, read_dataset
from model_migration.domain.errors import ErrorType
from model_migration.domain.gate import PairedExample
from model_migration.domain.models import ModelDefinition

if TYPE_CHECKING:
    from model_migration.settings import Settings

SETUP_COMMAND = "model-migration setup-promptfoo"
CONFIG, REQUEST, RUNNER, PID, EXIT, LOG, RESULTS = (
    "promptfooconfig.yaml", "request.json", "run.sh", "runner.pid", "exit_code", "promptfoo.log", "results.json",
)
#: promptfoo's exit codes of a run that finished: 0, or 100 when an assertion failed.
FINISHED = (0, 100)
QUIET = {"PROMPTFOO_DISABLE_TELEMETRY": "1", "PROMPTFOO_DISABLE_UPDATE": "1", "PROMPTFOO_DISABLE_SHARING": "1"}
#: How long a run directory may have no runner pid before the run counts as never started.
START_GRACE_SECONDS = 30.0
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def promptfoo_cli(directory: Path) -> Path:
    """The CLI's entry script inside an install directory (run with ``node``)."""
    return directory / "node_modules" / "promptfoo" / "dist" / "src" / "main.js"


class PromptfooHarness:
    """Runs live in ``work_dir``; the CLI comes from ``promptfoo_dir`` (``setup-promptfoo``)."""

    def __init__(
        self,
        promptfoo_dir: Path,
        work_dir: Path,
        datasets_dir: Path | None,
        *,
        models: Mapping[str, ModelDefinition] | None = None,
        provider: str | None = None,
        grader: str | None = None,
        embedder: str | None = None,
        concurrency: int = 4,
        max_examples: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.promptfoo_dir = Path(os.path.abspath(promptfoo_dir))
        self.work_dir = Path(os.path.abspath(work_dir))  # the runner is known by its absolute path
        self.datasets_dir = datasets_dir
        self._models = dict(models or {})
        self._provider, self._grader, self._embedder = provider, grader, embedder
        self._concurrency = max(1, concurrency)
        #: Only the first ``max_examples`` of a dataset, when set: for quick runs (tests, demos).
        self._max_examples = max_examples
        self._env = dict(env or {})

    def register(self, request: ExperimentRequest) -> str:
        node, cli = self._cli()
        examples = read_dataset(self.datasets_dir, request.dataset)[: self._max_examples]
        config = promptfoo_config(
            request, examples, models=self._models, provider=self._provider, grader=self._grader, embedder=self._embedder,
        )
        run_id = uuid.uuid4().hex
        run_dir = self.work_dir / run_id
        run_dir.mkdir(parents=True)
        (run_dir / CONFIG).write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
        (run_dir / REQUEST).write_text(json.dumps({**request.model_dump(mode="json"), "example_count": len(examples)}), encoding="utf-8")
        command = [node, str(cli), "eval", "-c", CONFIG, "-o", RESULTS, "--no-cache", "--no-table", "--no-progress-bar"]
        command += ["-j", str(self._concurrency)]
        (run_dir / RUNNER).write_text(
            "#!/bin/sh\n# Written by the promptfoo harness: runs promptfoo once, then records its exit code.\n"
            f'cd "$(dirname "$0")" || exit 1\nexec >> {LOG} 2>&1 < /dev/null\necho $$ > {PID}\n{shlex.join(command)}\n'
            f"echo $? > {EXIT}.tmp && mv {EXIT}.tmp {EXIT}\n",
            encoding="utf-8",
        )
        # Started in the background of a shell that exits at once: the runner belongs to no worker
        # process (none has to reap it, none takes it down) and leads its own session's group.
        subprocess.run(
            ["/bin/sh", "-c", '/bin/sh "$0" > /dev/null 2>&1 < /dev/null &', str(run_dir / RUNNER)],
            cwd=run_dir, env=self._child_env(run_dir), stdin=subprocess.DEVNULL, start_new_session=True, check=True, timeout=30,
        )  # fmt: skip
        return run_id

    def state(self, run_id: str) -> ExperimentState:
        run_dir = self._run_dir(run_id)
        request = _read_json(run_dir / REQUEST)
        known: dict[str, Any] = {
            "request_id": run_id, "results_url": (run_dir / RESULTS).resolve().as_uri(),
            "example_count": request.get("example_count", 0) if isinstance(request, dict) else 0,
        }
        code = _read_int(run_dir / EXIT)
        if code is None:
            pid = _read_int(run_dir / PID)
            if pid is not None and _alive(pid, run_dir / RUNNER):
                return ExperimentState(state="running", **known)
            if pid is None and time.time() - (run_dir / CONFIG).stat().st_mtime < START_GRACE_SECONDS:
                return ExperimentState(state="running", **known)
            code = _read_int(run_dir / EXIT)  # it may have ended between the two reads
            if code is None:
                reason = "promptfoo stopped before it finished (its process is gone)" if pid else "promptfoo never started"
                return ExperimentState(state="fail", reason=f"{reason}: {_log_tail(run_dir)}", **known)
        if code not in FINISHED:
            return ExperimentState(state="fail", reason=f"promptfoo exited with code {code}: {_log_tail(run_dir)}", **known)
        if not isinstance(_read_json(run_dir / RESULTS), dict):
            reason = f"promptfoo exited with code {code} but left no readable {RESULTS}: {_log_tail(run_dir)}"
            return ExperimentState(state="fail", reason=reason, **known)
        return ExperimentState(state="complete", **known)

    def results(self, run_id: str) -> tuple[PairedExample, ...]:
        state = self.state(run_id)
        if state.state == "running":
            raise HarnessError(f"promptfoo run {run_id} has not finished yet", type=ErrorType.HARNESS_UNAVAILABLE)
        if state.state == "fail":
            raise HarnessError(f"promptfoo run {run_id} failed: {state.reason}", type=ErrorType.HARNESS_REFUSED)
        run_dir = self._run_dir(run_id)
        request = ExperimentRequest.model_validate(_read_json(run_dir / REQUEST))
        return paired_examples(_read_json(run_dir / RESULTS), request.evaluators, f"promptfoo run {run_id}")

    def _cli(self) -> tuple[str, Path]:
        cli = promptfoo_cli(self.promptfoo_dir)
        if not cli.is_file():
            raise HarnessError(f"promptfoo is not installed in {self.promptfoo_dir}: run {SETUP_COMMAND}", type=ErrorType.HARNESS_REFUSED)
        node = shutil.which("node", path=self._child_env().get("PATH"))
        if node is None:
            raise HarnessError(
                "the promptfoo harness needs Node.js >= 20 on PATH (apt-get install -y nodejs npm)", type=ErrorType.HARNESS_REFUSED,
            )
        return node, cli

    def _child_env(self, run_dir: Path | None = None) -> dict[str, str]:
        # The Python that runs this worker runs promptfoo's Python providers, so they import what it
        # imports; each run keeps promptfoo's own database (it writes results.json from it) to itself.
        base = {"PROMPTFOO_PYTHON": sys.executable, **({"PROMPTFOO_CONFIG_DIR": str(run_dir / ".promptfoo")} if run_dir else {})}
        return {**os.environ, **base, **QUIET, **self._env}

    def _run_dir(self, run_id: str) -> Path:
        run_dir = self.work_dir / run_id
        if not RUN_ID.match(run_id) or not (run_dir / REQUEST).is_file():
            raise HarnessError(f"no promptfoo run {run_id!r} in {self.work_dir}", type=ErrorType.HARNESS_REFUSED)
        return run_dir


def promptfoo_harness_factory(settings: Settings) -> Callable[[], PromptfooHarness]:
    """A harness per call, configured by ``settings``, with the catalog's models as its providers."""
    from model_migration.catalog import load_catalog

    models = {m.gitlab_identifier: m for m in load_catalog(settings.catalog_dir).models}

    def make() -> PromptfooHarness:
        return PromptfooHarness(
            settings.resolved_promptfoo_dir(), settings.state_dir / "promptfoo-runs", settings.datasets_dir,
            models=models, provider=settings.promptfoo_provider, grader=settings.promptfoo_grader,
            embedder=settings.promptfoo_embedder, concurrency=settings.promptfoo_concurrency,
        )  # fmt: skip

    return make


def _alive(pid: int, runner: Path) -> bool:
    """Whether ``pid`` is still this run's runner: a reused pid or a zombie is not."""
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it if this process started it and it has ended
    except (ChildProcessError, OSError):
        pass
    proc = Path("/proc") / str(pid)
    if Path("/proc/self").exists():
        try:
            return str(runner) in proc.joinpath("cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _log_tail(run_dir: Path, lines: int = 3) -> str:
    """The last lines of the run's log, on one line."""
    try:
        with open(run_dir / LOG, "rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - 8192))
            text = log.read().decode(errors="replace")
    except OSError:
        return "it left no log"
    kept = [" ".join(ANSI.sub("", line).split()) for line in text.splitlines()]
    kept = [line for line in kept if len(line) > 1 and set(line) - set("=-─{}[]") and not line.startswith("at ")]
    tail = kept[-lines:]
    errors = [line for line in kept if re.match(r"^(\w*Error|error)\b", line)]
    if errors and errors[-1] not in tail:  # a stack trace's last lines say less than its first
        tail = [errors[-1], *tail[1:]]
    return " | ".join(tail)[:400] or "its log is empty"
