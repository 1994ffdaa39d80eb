"""How the sandbox runs pipelines: stage by stage on a background thread, one job at a time.

A job is a Python handler, or a local command in a checkout of the pipeline's commit. A command
gets a temporary working directory holding the ref's files, GitLab's ``CI_*`` basics
and the pipeline's variables as its environment (``file`` variables become paths to files),
and nothing else of this process's environment beyond ``PATH``, ``HOME`` and the locale.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import subprocess
import tempfile
import threading
import time
import traceback
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from gitlab_sandbox.git_objects import DEFAULT_BRANCH, Repository
from gitlab_sandbox.store import Store, now_iso

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, str]], dict[str, bytes]]
Announce = Callable[[dict[str, Any], dict[str, Any]], None]
FINISHED = frozenset({"success", "failed", "canceled", "skipped"})
_KEPT_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "SYSTEMROOT", "TMPDIR", "TEMP", "TMP")
_MAX_TRACE = 1_000_000


@dataclass(frozen=True)
class JobSpec:
    """One CI job: exactly one of ``command`` (argv) or ``handler``.

    ``artifacts`` are paths or glob patterns, relative to the command's working directory,
    collected into the job's artifact archive (a handler returns its files instead)."""

    name: str
    command: Sequence[str] | None = None
    handler: Handler | None = None
    stage: str = "test"
    artifacts: Sequence[str] = ()
    timeout: float = 300.0

    def __post_init__(self) -> None:
        if (self.command is None) == (self.handler is None):
            raise ValueError(f"job {self.name!r} needs exactly one of command or handler")


def echo_variables(variables: dict[str, str]) -> dict[str, bytes]:
    """The built-in job: write the pipeline's variables to ``variables.json``."""
    return {"variables.json": json.dumps(variables, indent=2, sort_keys=True).encode()}


@dataclass
class Outcome:
    status: str  # success | failed | canceled
    files: dict[str, bytes] = field(default_factory=dict)
    trace: str = ""
    failure_reason: str | None = None


def run_job(
    spec: JobSpec,
    variables: Mapping[str, str],
    file_variables: set[str],
    ci_env: Mapping[str, str],
    checkout: Mapping[str, bytes],
    cancel: threading.Event,
) -> Outcome:
    """Run ``spec`` to the end, its timeout, or ``cancel``; never raises."""
    if spec.handler is not None:
        try:
            return Outcome("success", dict(spec.handler(dict(variables))))
        except Exception:  # noqa: BLE001 - a failing handler is a failed job
            return Outcome("failed", trace=traceback.format_exc(), failure_reason="script_failure")
    try:
        return _run_command(spec, variables, file_variables, ci_env, checkout, cancel)
    except OSError as exc:  # e.g. the program does not exist
        return Outcome(
            "failed", trace=f"{type(exc).__name__}: {exc}\n", failure_reason="script_failure"
        )


def _run_command(
    spec: JobSpec,
    variables: Mapping[str, str],
    file_variables: set[str],
    ci_env: Mapping[str, str],
    checkout: Mapping[str, bytes],
    cancel: threading.Event,
) -> Outcome:
    assert spec.command is not None
    with tempfile.TemporaryDirectory(prefix="sandbox-job-") as scratch:
        workdir, vardir = Path(scratch, "build"), Path(scratch, "variables")
        vardir.mkdir()
        for path, content in checkout.items():
            (workdir / path).parent.mkdir(parents=True, exist_ok=True)
            (workdir / path).write_bytes(content)
        workdir.mkdir(exist_ok=True)
        env = {k: os.environ[k] for k in _KEPT_ENV if k in os.environ}
        env.update(ci_env, CI_PROJECT_DIR=str(workdir), CI_BUILDS_DIR=str(workdir.parent))
        for key, value in variables.items():
            if key in file_variables:  # GitLab's "file" variables: the value is a file's path
                (vardir / key).write_text(value)
                value = str(vardir / key)
            env[key] = value
        log_path = Path(scratch, "trace.log")
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # argv from the sandbox's configuration
                list(spec.command), cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT
            )
            deadline = time.monotonic() + spec.timeout
            reason: str | None = None
            while process.poll() is None:
                if cancel.is_set() or time.monotonic() > deadline:
                    reason = "canceled" if cancel.is_set() else "job_execution_timeout"
                    process.kill()
                    process.wait()
                    break
                time.sleep(0.05)
        trace = log_path.read_bytes()[-_MAX_TRACE:].decode(errors="replace")
        files = _collect(workdir, spec.artifacts)
        if reason == "canceled":
            return Outcome("canceled", files, trace)
        if reason is not None or process.returncode != 0:
            trace += (
                f"ERROR: Job failed: exit code {process.returncode}\n" if reason is None else ""
            )
            return Outcome("failed", files, trace, reason or "script_failure")
        return Outcome("success", files, trace)


def _collect(workdir: Path, patterns: Sequence[str]) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for pattern in patterns:
        for match in sorted(workdir.glob(pattern)):
            found = (
                [match] if match.is_file() else sorted(p for p in match.rglob("*") if p.is_file())
            )
            for path in found:
                files[path.relative_to(workdir).as_posix()] = path.read_bytes()
    return files


def zip_files(files: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in sorted(files.items()):
            archive.writestr(name, content)
    return buffer.getvalue()


def ci_variables(
    project: dict[str, Any], pipeline: dict[str, Any], job: dict[str, Any]
) -> dict[str, str]:
    """GitLab's predefined variables that a job can rely on."""
    base, path = pipeline["base_url"], project["path_with_namespace"]
    return {
        "CI": "true", "GITLAB_CI": "true", "CI_SERVER_URL": base, "CI_API_V4_URL": f"{base}/api/v4",
        "CI_PROJECT_ID": str(project["id"]), "CI_PROJECT_PATH": path,
        "CI_PROJECT_NAME": project["name"], "CI_PROJECT_NAMESPACE": path.rpartition("/")[0],
        "CI_PROJECT_URL": f"{base}/{path}", "CI_DEFAULT_BRANCH": DEFAULT_BRANCH,
        "CI_COMMIT_SHA": pipeline["sha"], "CI_COMMIT_SHORT_SHA": pipeline["sha"][:8],
        "CI_COMMIT_REF_NAME": pipeline["ref"], "CI_COMMIT_BRANCH": pipeline["ref"],
        "CI_PIPELINE_ID": str(pipeline["id"]), "CI_PIPELINE_IID": str(pipeline["iid"]),
        "CI_PIPELINE_SOURCE": pipeline["source"],
        "CI_PIPELINE_URL": f"{base}/{path}/-/pipelines/{pipeline['id']}",
        "CI_JOB_ID": str(job["id"]), "CI_JOB_NAME": job["name"], "CI_JOB_STAGE": job["stage"],
        "CI_JOB_URL": f"{base}/{path}/-/jobs/{job['id']}",
    }  # fmt: skip


class PipelineRunner:
    """Moves pipelines and jobs through created → pending → running → a finished status.

    ``announce(project, pipeline)`` is called after every pipeline status change."""

    def __init__(self, store: Store, announce: Announce) -> None:
        self.store = store
        self.repo = Repository(store)
        self.announce = announce
        self._cancel: dict[int, threading.Event] = {}

    def fail_abandoned(self) -> None:
        """Work that a previous sandbox process left unfinished has no runner any more."""
        for table in ("pipelines", "ci_jobs"):
            for row in self.store.select(table):
                if row["status"] not in FINISHED:
                    finished = row.get("finished_at") or now_iso()
                    failure = {"status": "failed", "failure_reason": "runner_system_failure"}
                    self.store.update(table, {**row, **failure, "finished_at": finished})

    def start(self, project: dict[str, Any], pipeline_id: int, specs: Sequence[JobSpec]) -> None:
        cancel = self._cancel.setdefault(pipeline_id, threading.Event())
        threading.Thread(
            target=self._run, args=(project, pipeline_id, specs, cancel),
            name=f"sandbox-pipeline-{pipeline_id}", daemon=True,
        ).start()  # fmt: skip

    def cancel(self, project: dict[str, Any], pipeline_id: int) -> dict[str, Any]:
        """Cancel every unfinished job (a running command is killed) and the pipeline."""
        with self.store.lock:
            self._cancel.setdefault(pipeline_id, threading.Event()).set()
            for job in self.store.select("ci_jobs", pipeline_id=pipeline_id):
                self._update_job(job["id"], status="canceled", finished_at=now_iso())
            return self.set_status(project, pipeline_id, "canceled")

    def set_status(self, project: dict[str, Any], pipeline_id: int, status: str) -> dict[str, Any]:
        """Move a pipeline on (never out of a finished status) and announce the change."""
        with self.store.lock:
            pipeline = self.store.find("pipelines", id=pipeline_id)
            assert pipeline is not None
            if pipeline["status"] == status or pipeline["status"] in FINISHED:
                return pipeline
            now = now_iso()
            pipeline.update(status=status, updated_at=now)
            if status == "running":
                pipeline["started_at"] = now
            if status in FINISHED:
                started = datetime.fromisoformat(pipeline.get("started_at") or now)
                elapsed = datetime.fromisoformat(now) - started
                pipeline.update(finished_at=now, duration=round(elapsed.total_seconds(), 3))
            self.store.update("pipelines", pipeline)
        self.announce(project, pipeline)
        return pipeline

    def _update_job(self, job_id: int, **changes: Any) -> None:
        with self.store.lock:
            job = self.store.find("ci_jobs", id=job_id)
            if job is not None and job["status"] not in FINISHED:
                self.store.update("ci_jobs", {**job, **changes})

    def _run(self, project: dict[str, Any], pipeline_id: int, specs: Sequence[JobSpec],
             cancel: threading.Event) -> None:  # fmt: skip
        try:
            self._run_stages(project, pipeline_id, specs, cancel)
        except Exception:
            log.debug("sandbox pipeline %s stopped early", pipeline_id, exc_info=True)
        finally:
            self._cancel.pop(pipeline_id, None)

    def _run_stages(self, project: dict[str, Any], pipeline_id: int, specs: Sequence[JobSpec],
                    cancel: threading.Event) -> None:  # fmt: skip
        pipeline = self.set_status(project, pipeline_id, "pending")
        jobs = self.store.select("ci_jobs", pipeline_id=pipeline_id)
        for job in jobs:
            self._update_job(job["id"], status="pending")
        variables = {v["key"]: v["value"] for v in pipeline["variables"]}
        file_variables = {v["key"] for v in pipeline["variables"] if v["variable_type"] == "file"}
        commit = self.repo.commit(project["id"], pipeline["sha"]) or {"tree": {}}
        checkout = {p: self.repo.blob(project["id"], sha) for p, sha in commit["tree"].items()}
        failed = False
        for stage in dict.fromkeys(spec.stage for spec in specs):
            stage_failed = False
            for spec, job in zip(specs, jobs, strict=True):
                if spec.stage != stage:
                    continue
                if cancel.is_set() or failed:  # GitLab skips the stages after a failed one
                    self._update_job(job["id"], status="canceled" if cancel.is_set() else "skipped")
                    continue
                self.set_status(project, pipeline_id, "running")
                clock = time.monotonic()
                self._update_job(job["id"], status="running", started_at=now_iso())
                env = ci_variables(project, pipeline, job)
                outcome = run_job(spec, variables, file_variables, env, checkout, cancel)
                size = None
                if outcome.files:
                    archive = zip_files(outcome.files)
                    size, encoded = len(archive), base64.b64encode(archive).decode()
                    self.store.insert("ci_artifacts", {"zip": encoded}, job_id=job["id"])
                stage_failed |= outcome.status == "failed"
                self._update_job(
                    job["id"], status="canceled" if cancel.is_set() else outcome.status,
                    finished_at=now_iso(), duration=round(time.monotonic() - clock, 3),
                    trace=outcome.trace, failure_reason=outcome.failure_reason,
                    artifacts_size=size,
                )  # fmt: skip
            failed |= stage_failed
        final = "canceled" if cancel.is_set() else "failed" if failed else "success"
        self.set_status(project, pipeline_id, final)
