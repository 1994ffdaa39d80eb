"""CI pipelines and jobs: GitLab's endpoints, with jobs that really run.

A pipeline runs the jobs configured for its project (``GitLabSandbox(jobs={path: [JobSpec]})``),
or ``DEFAULT_JOBS`` (one built-in ``echo_variables`` job), so every pipeline does something.
Creating one returns at once; ``pipeline_runner`` moves it on in the background and each
status change is announced on ``store.events`` as GitLab's pipeline webhook payload.

Pipeline variables are refused as GitLab refuses them: a project's
``ci_pipeline_variables_minimum_override_role`` says who may pass them, and a project stored
without it is treated as GitLab.com treats new projects since 17.7: ``no_one_allowed``. The
projects the sandbox seeds carry ``developer``; ``PUT /projects/:id`` changes it.
"""

from __future__ import annotations

import base64
import io
import weakref
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any

from gitlab_sandbox.git_objects import DEFAULT_BRANCH, Repository
from gitlab_sandbox.gitlab_api import PROJECT, GitLabApi
from gitlab_sandbox.gitlab_json import Renderer
from gitlab_sandbox.pipeline_runner import FINISHED, JobSpec, PipelineRunner, echo_variables
from gitlab_sandbox.routing import ApiError, Request, Response, Router, json_response, paged_json
from gitlab_sandbox.store import ID_BASES, Store, now_iso

__all__ = ["DEFAULT_JOBS", "SEEDED_VARIABLES_ROLE", "VARIABLES_ROLE", "JobSpec", "PipelinesApi", "configure_jobs", "echo_variables"]

# Ids apart from iids and from each other, like every other sandbox table.
ID_BASES.setdefault("pipelines", 1_400_000_000)
ID_BASES.setdefault("ci_jobs", 8_900_000_000)

PIPELINE = rf"{PROJECT}/pipelines/(?P<pipeline_id>\d+)"
JOB = rf"{PROJECT}/jobs/(?P<job_id>\d+)"
_LISTED = ("id", "iid", "project_id", "sha", "ref", "status", "source", "created_at",
           "updated_at", "web_url")  # fmt: skip
_BUILD_KEYS = ("id", "stage", "name", "status", "created_at", "started_at", "finished_at",
               "duration", "queued_duration", "failure_reason", "allow_failure", "user",
               "artifacts_file")  # fmt: skip
_EVENT_KEYS = ("id", "iid", "ref", "tag", "sha", "before_sha", "source", "status", "created_at",
               "finished_at", "duration", "queued_duration", "name")  # fmt: skip

SCHEMA = """
CREATE TABLE IF NOT EXISTS pipelines (
    id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, iid INTEGER NOT NULL, data TEXT NOT NULL,
    UNIQUE (project_id, iid));
CREATE TABLE IF NOT EXISTS ci_jobs (
    id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, pipeline_id INTEGER NOT NULL,
    data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ci_jobs_by_pipeline ON ci_jobs (pipeline_id);
CREATE TABLE IF NOT EXISTS ci_artifacts (
    id INTEGER PRIMARY KEY, job_id INTEGER NOT NULL UNIQUE, data TEXT NOT NULL);
"""

#: The project setting that says who may pass pipeline variables, and its values, least open first.
VARIABLES_ROLE = "ci_pipeline_variables_minimum_override_role"
VARIABLES_ROLES = ("no_one_allowed", "owner", "maintainer", "developer")
#: GitLab.com's default for new projects in new namespaces (GitLab 17.7 on).
DEFAULT_VARIABLES_ROLE = "no_one_allowed"
#: What the sandbox's seeded projects carry, as their owners would have set it.
SEEDED_VARIABLES_ROLE = "developer"
_VARIABLES_REFUSED = {"message": {"base": ["Insufficient permissions to set pipeline variables"]}}

#: What a project without configured jobs runs.
DEFAULT_JOBS = (JobSpec("echo_variables", handler=echo_variables),)
_CONFIG: weakref.WeakKeyDictionary[Store, dict[str, tuple[JobSpec, ...]]] = (
    weakref.WeakKeyDictionary()
)


def configure_jobs(store: Store, jobs: Mapping[str, Sequence[JobSpec]] | None) -> None:
    """The jobs per project path for the sandbox on ``store``; other projects get
    ``DEFAULT_JOBS``. ``GitLabSandbox`` calls this before it builds the modules."""
    _CONFIG[store] = {path.lower(): tuple(specs) for path, specs in (jobs or {}).items()}


class PipelinesApi:
    SCHEMA = SCHEMA

    def __init__(self, store: Store) -> None:
        self.store = store
        self.repo = Repository(store)
        self.api = GitLabApi(store)
        self.runner = PipelineRunner(store, self._announce)
        self.runner.fail_abandoned()

    def register(self, router: Router) -> None:
        add = router.add
        add("PUT", PROJECT, self.update_project)
        add("POST", f"{PROJECT}/pipeline", self.create)
        add("POST", f"{PROJECT}/trigger/pipeline", self.trigger)
        add("GET", f"{PROJECT}/pipelines", self.list)
        add("GET", PIPELINE, self.get)
        add("GET", f"{PIPELINE}/variables", self.variables)
        add("GET", f"{PIPELINE}/jobs", self.list_jobs)
        add("POST", f"{PIPELINE}/cancel", self.cancel)
        add("GET", f"{PROJECT}/jobs", self.list_jobs)
        add("GET", JOB, self.get_job)
        add("GET", f"{JOB}/trace", self.trace)
        add("GET", f"{JOB}/artifacts", self.artifacts)
        add("GET", f"{JOB}/artifacts/(?P<artifact_path>.+)", self.artifact_file)

    # -- rendering ---------------------------------------------------------------------------

    def pipeline_json(
        self, project: dict[str, Any], pipeline: dict[str, Any], base: str
    ) -> dict[str, Any]:
        status, path = pipeline["status"], project["path_with_namespace"]
        return {
            "id": pipeline["id"], "iid": pipeline["iid"], "project_id": project["id"],
            "sha": pipeline["sha"], "ref": pipeline["ref"], "status": status,
            "source": pipeline["source"], "created_at": pipeline["created_at"],
            "updated_at": pipeline["updated_at"], "started_at": pipeline.get("started_at"),
            "finished_at": pipeline.get("finished_at"), "committed_at": None,
            "duration": pipeline.get("duration"), "queued_duration": None, "coverage": None,
            "before_sha": "0" * 40, "tag": False, "yaml_errors": None, "name": None,
            "user": Renderer(self.store, base).user(self.api.me()),
            "web_url": f"{base}/{project['path_with_namespace']}/-/pipelines/{pipeline['id']}",
            "detailed_status": {"icon": f"status_{status}", "text": status, "label": status,
                                "group": status, "tooltip": status, "has_details": True,
                                "details_path": f"/{path}/-/pipelines/{pipeline['id']}"},
        }  # fmt: skip

    def job_json(self, project: dict[str, Any], job: dict[str, Any], base: str) -> dict[str, Any]:
        pipeline = self.store.find("pipelines", id=job["pipeline_id"]) or {}
        size = job.get("artifacts_size")
        archive = [{"file_type": "archive", "size": size, "filename": "artifacts.zip",
                    "file_format": "zip"}] if size is not None else []  # fmt: skip
        return {
            "id": job["id"], "name": job["name"], "stage": job["stage"], "status": job["status"],
            "ref": pipeline.get("ref"), "tag": False, "coverage": None, "allow_failure": False,
            "created_at": job["created_at"], "started_at": job.get("started_at"),
            "finished_at": job.get("finished_at"), "erased_at": None,
            "duration": job.get("duration"), "queued_duration": None,
            "failure_reason": job.get("failure_reason"),
            "user": Renderer(self.store, base).user(self.api.me()),
            "pipeline": {k: v for k, v in self.pipeline_json(project, pipeline, base).items()
                         if k in ("id", "iid", "project_id", "sha", "ref", "status", "source",
                                  "created_at", "updated_at", "web_url")},
            "commit": {"id": pipeline.get("sha"), "short_id": (pipeline.get("sha") or "")[:8]},
            "web_url": f"{base}/{project['path_with_namespace']}/-/jobs/{job['id']}",
            "artifacts": archive, "artifacts_file": {"filename": "artifacts.zip", "size": size}
            if size is not None else None, "artifacts_expire_at": None, "archived": False,
            "runner": None, "tag_list": [], "project": {"ci_job_token_scope_enabled": False},
        }  # fmt: skip

    # -- pipelines ---------------------------------------------------------------------------

    def create(self, req: Request) -> Response:
        given = req.get("variables") or []
        if not isinstance(given, list) or not all(
            isinstance(v, dict) and v.get("key") for v in given
        ):
            raise ApiError.invalid("variables")
        variables = [
            {"key": str(v["key"]), "value": str(v.get("value") or ""),
             "variable_type": str(v.get("variable_type") or "env_var")}
            for v in given
        ]  # fmt: skip
        return self._start(req, variables, "api")

    def trigger(self, req: Request) -> Response:
        """Any trigger token is accepted: the sandbox has no trigger tokens to check."""
        if not req.get("token"):
            raise ApiError.missing("token")
        given = req.get("variables") or {}
        if not isinstance(given, dict):
            raise ApiError.invalid("variables")
        for key, value in req.query:  # the form style: variables[KEY]=value
            if key.startswith("variables[") and key.endswith("]"):
                given[key[10:-1]] = value
        variables = [
            {"key": str(k), "value": str(v), "variable_type": "env_var"} for k, v in given.items()
        ]
        return self._start(req, variables, "trigger")

    def _start(self, req: Request, variables: list[dict[str, str]], source: str) -> Response:
        project = self.api.project(req)
        # The token's user owns every sandbox project, so only no_one_allowed stops it. GitLab
        # checks this before the ref, and for triggered pipelines too (as the trigger's owner).
        if variables and project.get(VARIABLES_ROLE, DEFAULT_VARIABLES_ROLE) == "no_one_allowed":
            raise ApiError(400, _VARIABLES_REFUSED)
        self.repo.init(project)
        if not req.get("ref"):
            raise ApiError.missing("ref")
        ref = str(req.get("ref"))
        branch = self.repo.branch(project["id"], ref)  # pipelines run on branches here
        if branch is None:
            raise ApiError(400, {"message": {"base": ["Reference not found"]}})
        configured = _CONFIG.get(self.store, {})
        specs = configured.get(project["path_with_namespace"].lower()) or DEFAULT_JOBS
        now = now_iso()
        with self.store.lock:
            iid = self.store.count("pipelines", project_id=project["id"]) + 1
            data = {"iid": iid, "ref": ref, "sha": branch["commit"], "status": "created",
                    "source": source, "variables": variables, "created_at": now,
                    "updated_at": now, "base_url": req.base_url}  # fmt: skip
            pipeline = self.store.insert("pipelines", data, project_id=project["id"], iid=iid)
            for spec in specs:
                job = {"name": spec.name, "stage": spec.stage, "status": "created",
                       "created_at": now, "pipeline_id": pipeline["id"]}  # fmt: skip
                columns = {"project_id": project["id"], "pipeline_id": pipeline["id"]}
                self.store.insert("ci_jobs", job, **columns)
        body = self.pipeline_json(project, pipeline, req.base_url)
        self.runner.start(project, pipeline["id"], specs)
        return json_response(body, 201)

    def update_project(self, req: Request) -> Response:
        """``PUT /projects/:id`` for the one project setting the sandbox keeps; any other is refused
        by name rather than silently dropped."""
        project = self.api.project(req)
        others = sorted(set(req.body) - {VARIABLES_ROLE, "id"})
        if others:
            raise ApiError(400, {"error": f"the sandbox keeps only {VARIABLES_ROLE} of a project, not: {', '.join(others)}"})
        if not req.has(VARIABLES_ROLE):
            raise ApiError(400, {"error": f"{VARIABLES_ROLE} is missing, at least one parameter must be provided"})
        role = req.get(VARIABLES_ROLE)
        if role not in VARIABLES_ROLES:
            raise ApiError.not_valid_value(VARIABLES_ROLE)
        with self.store.lock:
            project = self.store.update("projects", {**self.api.project(req), VARIABLES_ROLE: role})
        rendered = Renderer(self.store, req.base_url).project(project)
        return json_response({**rendered, "restrict_user_defined_variables": True, VARIABLES_ROLE: role})

    def _pipeline(self, req: Request, project: dict[str, Any]) -> dict[str, Any]:
        pipeline_id = int(req.match["pipeline_id"])
        found = self.store.find("pipelines", id=pipeline_id, project_id=project["id"])
        if found is None:
            raise ApiError.not_found()
        return found

    def list(self, req: Request) -> Response:
        project = self.api.project(req)
        wanted = {k: req.get(k) for k in ("ref", "status", "source", "sha") if req.get(k)}
        found = [p for p in self.store.select("pipelines", project_id=project["id"])
                 if all(p[k] == v for k, v in wanted.items())]  # fmt: skip
        found.sort(key=lambda p: p["id"], reverse=req.get("sort", "desc") != "asc")

        def render(pipeline: dict[str, Any]) -> dict[str, Any]:
            full = self.pipeline_json(project, pipeline, req.base_url)
            return {k: full[k] for k in _LISTED}

        return paged_json(req, found, render)

    def get(self, req: Request) -> Response:
        project = self.api.project(req)
        pipeline = self._pipeline(req, project)
        return json_response(self.pipeline_json(project, pipeline, req.base_url))

    def variables(self, req: Request) -> Response:
        project = self.api.project(req)
        return json_response(self._pipeline(req, project)["variables"])

    def cancel(self, req: Request) -> Response:
        project = self.api.project(req)
        pipeline = self._pipeline(req, project)
        if pipeline["status"] not in FINISHED:
            pipeline = self.runner.cancel(project, pipeline["id"])
        return json_response(self.pipeline_json(project, pipeline, req.base_url))

    # -- jobs --------------------------------------------------------------------------------

    def list_jobs(self, req: Request) -> Response:
        project = self.api.project(req)
        if "pipeline_id" in req.match:
            jobs = self.store.select("ci_jobs", pipeline_id=self._pipeline(req, project)["id"])
        else:
            jobs = sorted(
                self.store.select("ci_jobs", project_id=project["id"]), key=lambda j: -j["id"]
            )
        scope = req.get_list("scope")
        jobs = [j for j in jobs if not scope or j["status"] in scope]
        return paged_json(req, jobs, lambda job: self.job_json(project, job, req.base_url))

    def _job(self, req: Request) -> tuple[dict[str, Any], dict[str, Any]]:
        project = self.api.project(req)
        job = self.store.find("ci_jobs", id=int(req.match["job_id"]), project_id=project["id"])
        if job is None:
            raise ApiError.not_found()
        return project, job

    def get_job(self, req: Request) -> Response:
        project, job = self._job(req)
        return json_response(self.job_json(project, job, req.base_url))

    def trace(self, req: Request) -> Response:
        _, job = self._job(req)
        return Response(200, str(job.get("trace") or "").encode(), "text/plain; charset=utf-8")

    def _archive(self, req: Request) -> bytes:
        _, job = self._job(req)
        row = self.store.find("ci_artifacts", job_id=job["id"])
        if row is None:
            raise ApiError.not_found()
        return base64.b64decode(row["zip"])

    def artifacts(self, req: Request) -> Response:
        disposition = {"Content-Disposition": 'attachment; filename="artifacts.zip"'}
        return Response(200, self._archive(req), "application/zip", disposition)

    def artifact_file(self, req: Request) -> Response:
        with zipfile.ZipFile(io.BytesIO(self._archive(req))) as archive:
            try:
                content = archive.read(req.match["artifact_path"])
            except KeyError:
                raise ApiError.not_found() from None
        return Response(200, content, "application/octet-stream")

    # -- events ------------------------------------------------------------------------------

    def _announce(self, project: dict[str, Any], pipeline: dict[str, Any]) -> None:
        """Emit GitLab's pipeline webhook payload."""
        base = pipeline["base_url"]
        rendered = self.pipeline_json(project, pipeline, base)
        jobs = self.store.select("ci_jobs", pipeline_id=pipeline["id"])
        builds = [self.job_json(project, job, base) for job in jobs]
        web = f"{base}/{project['path_with_namespace']}"
        payload = {
            "object_kind": "pipeline",
            "object_attributes": {
                **{k: rendered[k] for k in _EVENT_KEYS},
                "detailed_status": pipeline["status"], "url": rendered["web_url"],
                "stages": list(dict.fromkeys(job["stage"] for job in jobs)),
                "variables": [{k: v[k] for k in ("key", "value")} for v in pipeline["variables"]],
            },
            "merge_request": None, "user": rendered["user"],
            "project": {"id": project["id"], "name": project["name"], "web_url": web,
                        "path_with_namespace": project["path_with_namespace"],
                        "default_branch": DEFAULT_BRANCH},
            "commit": {"id": pipeline["sha"], "url": f"{web}/-/commit/{pipeline['sha']}"},
            "builds": [{k: build[k] for k in _BUILD_KEYS} for build in builds],
        }  # fmt: skip
        self.store.events.emit("pipeline", project["id"], payload)
