"""Branches, commits, files, merge requests and pipelines for ``GitLabClient`` (a base class).

``ensure_*`` methods and ``commit_files`` are safe to call again after a retry: they look
for what an earlier attempt made before they make it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import gitlab.exceptions

from model_migration.clients.gitlab_errors import gitlab_call
from model_migration.domain.errors import ErrorType, GitLabError
from model_migration.domain.models import Branch, Commit, Job, MergeRequest, Pipeline


def git_blob_id(content: bytes) -> str:
    """git's blob id, as the repository tree API reports it for each file."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class RepositoryMixin:
    """The project's repository, merge requests and CI pipelines, as domain models."""

    _gl: Any
    _project: Any
    project_path: str

    # -- branches, commits, files ------------------------------------------------------------

    @gitlab_call("ensure branch {name!r}")
    def ensure_branch(self, name: str, ref: str = "main") -> Branch:
        """The branch ``name``; created from ``ref`` if it does not exist yet."""
        try:
            return _branch(self._project.branches.get(name).attributes)
        except gitlab.exceptions.GitlabGetError as exc:
            if exc.response_code != 404:
                raise
        try:
            return _branch(self._project.branches.create({"branch": name, "ref": ref}).attributes)
        except gitlab.exceptions.GitlabCreateError as exc:
            if exc.response_code == 400 and "already exists" in str(exc.error_message):
                return _branch(self._project.branches.get(name).attributes)  # a concurrent create
            raise

    @gitlab_call("commit {message!r} to branch {branch!r}")
    def commit_files(
        self, branch: str, message: str, files: Mapping[str, str], deletes: Collection[str] = ()
    ) -> Commit:
        """One commit that makes each path hold its content and removes ``deletes``; none if
        nothing differs.

        A path in ``deletes`` is a file or a folder (every file under it). What the branch does
        not have is skipped: GitLab refuses to delete a missing file, and a retry finds the
        files gone. The branch's tree gives each file's blob id, so unchanged files are not
        downloaded."""
        folders = _folders(deletes)
        if clash := sorted(_under(files, folders)):
            raise ValueError(f"{clash} are both written and deleted")
        blobs = self._blobs(branch)
        actions: list[dict[str, str]] = [
            {"action": "delete", "file_path": path} for path in _under(blobs, folders)
        ]
        actions += [
            {"action": "update" if path in blobs else "create", "file_path": path, "content": text}
            for path, text in sorted(files.items())
            if blobs.get(path) != git_blob_id(text.encode())
        ]
        if not actions:
            return _commit(self._project.branches.get(branch).commit)
        data = {"branch": branch, "commit_message": message, "actions": actions}
        return _commit(self._project.commits.create(data).attributes)

    @gitlab_call("list the files under {paths!r} at {ref!r}")
    def existing_files(self, paths: Collection[str], ref: str = "main") -> list[str]:
        """The files of ``ref`` that are one of ``paths`` or lie in one of them, as folders."""
        folders = _folders(paths)
        return _under(self._blobs(ref), folders) if folders else []

    def _blobs(self, ref: str) -> dict[str, str]:
        """Each file of ``ref``, with its blob id."""
        tree = self._project.repository_tree(ref=ref, recursive=True, get_all=True, per_page=100)
        return {entry["path"]: entry["id"] for entry in tree if entry["type"] == "blob"}

    @gitlab_call("read file {path!r} at {ref!r}")
    def read_file(self, path: str, ref: str = "main") -> str | None:
        """The file's text, or ``None`` if ``ref`` has no such file."""
        try:
            raw = self._project.files.raw(path, ref=ref)
        except gitlab.exceptions.GitlabGetError as exc:
            if exc.response_code == 404:
                return None
            raise
        return bytes(raw).decode()

    # -- merge requests ----------------------------------------------------------------------

    @gitlab_call("find merge request from {source_branch!r}")
    def find_merge_request(self, source_branch: str) -> MergeRequest | None:
        """The open merge request from ``source_branch``, else its newest one in any state."""
        found = self._project.mergerequests.list(
            source_branch=source_branch, state="all", order_by="created_at", sort="desc",
            per_page=100, get_all=False,
        )  # fmt: skip
        found = [mr for mr in found if mr.attributes.get("source_branch") == source_branch]
        opened = [mr for mr in found if mr.attributes.get("state") == "opened"]
        chosen = (opened or found)[:1]
        return _merge_request(chosen[0].attributes) if chosen else None

    @gitlab_call("create merge request from {source_branch!r}")
    def create_merge_request(
        self,
        source_branch: str,
        target_branch: str,
        title: str,
        description: str = "",
        labels: list[str] | None = None,
        remove_source_branch: bool = True,
    ) -> MergeRequest:
        data: dict[str, Any] = {
            "source_branch": source_branch, "target_branch": target_branch, "title": title,
            "description": description, "remove_source_branch": remove_source_branch,
        }  # fmt: skip
        if labels:
            data["labels"] = ",".join(labels)
        return _merge_request(self._project.mergerequests.create(data).attributes)

    def ensure_merge_request(
        self,
        source_branch: str,
        target_branch: str,
        title: str,
        description: str = "",
        labels: list[str] | None = None,
    ) -> MergeRequest:
        """The merge request from ``source_branch`` (in any state: a closed or merged one is
        a person's decision, not something to redo), or a new one."""
        found = self.find_merge_request(source_branch)
        if found is not None:
            return found
        try:
            return self.create_merge_request(
                source_branch, target_branch, title, description, labels
            )
        except GitLabError as exc:
            if exc.type != ErrorType.GITLAB_CONFLICT:  # 409: another attempt just opened it
                raise
            again = self.find_merge_request(source_branch)
            if again is None:
                raise
            return again

    @gitlab_call("get merge request !{iid}")
    def get_merge_request(self, iid: int) -> MergeRequest:
        return _merge_request(self._project.mergerequests.get(iid).attributes)

    @gitlab_call("merge merge request !{iid}")
    def merge_merge_request(self, iid: int) -> MergeRequest:
        mr = self._project.mergerequests.get(iid, lazy=True)
        return _merge_request(mr.merge())

    # -- pipelines ---------------------------------------------------------------------------

    @gitlab_call("create a pipeline on {ref!r}")
    def create_pipeline(self, ref: str, variables: Mapping[str, str] | None = None) -> Pipeline:
        pairs = [{"key": k, "value": str(v)} for k, v in sorted((variables or {}).items())]
        return _pipeline(
            self._project.pipelines.create({"ref": ref, "variables": pairs}).attributes
        )

    @gitlab_call("get pipeline {pipeline_id}")
    def get_pipeline(self, pipeline_id: int) -> Pipeline:
        return _pipeline(self._project.pipelines.get(pipeline_id).attributes)

    @gitlab_call("list the jobs of pipeline {pipeline_id}")
    def pipeline_jobs(self, pipeline_id: int) -> list[Job]:
        pipeline = self._project.pipelines.get(pipeline_id, lazy=True)
        return [_job(job.attributes) for job in pipeline.jobs.list(get_all=True, per_page=100)]

    @gitlab_call("download artifact {path!r} of job {job_id}")
    def job_artifact(self, job_id: int, path: str) -> bytes:
        return bytes(self._project.jobs.get(job_id, lazy=True).artifact(path))

    @gitlab_call("read the log of job {job_id}")
    def job_trace(self, job_id: int) -> str:
        return bytes(self._project.jobs.get(job_id, lazy=True).trace()).decode(errors="replace")


def _folders(paths: Collection[str]) -> tuple[str, ...]:
    if isinstance(paths, str):  # one path, iterated, would delete single characters
        raise TypeError(f"paths must be a collection of paths, not the string {paths!r}")
    folders = tuple(p.strip("/") for p in paths)
    if "" in folders:  # the repository's root: never what a caller means to delete
        raise ValueError("an empty path names the whole repository")
    return folders


def _under(paths: Iterable[str], folders: tuple[str, ...]) -> list[str]:
    """The sorted ``paths`` that are one of ``folders`` or lie under one."""
    return sorted(p for p in paths if any(p == f or p.startswith(f + "/") for f in folders))


def _branch(data: dict[str, Any]) -> Branch:
    commit = data.get("commit") or {}
    return Branch(
        name=data["name"], commit_id=commit.get("id") or "", default=bool(data.get("default")),
        web_url=data.get("web_url") or "",
    )  # fmt: skip


def _commit(data: dict[str, Any]) -> Commit:
    return Commit(
        id=data["id"], short_id=data.get("short_id") or data["id"][:8],
        title=data.get("title") or "", message=data.get("message") or "",
        author_name=data.get("author_name") or "", created_at=data.get("created_at"),
        web_url=data.get("web_url") or "",
    )  # fmt: skip


def _merge_request(data: dict[str, Any]) -> MergeRequest:
    return MergeRequest(
        id=data["id"], iid=data["iid"], project_id=data.get("project_id") or 0,
        title=data.get("title") or "", description=data.get("description") or "",
        state=data.get("state") or "opened", source_branch=data.get("source_branch") or "",
        target_branch=data.get("target_branch") or "",
        labels=[x if isinstance(x, str) else x["name"] for x in data.get("labels") or []],
        web_url=data.get("web_url") or "", sha=data.get("sha"),
        merge_commit_sha=data.get("merge_commit_sha"), merged_at=data.get("merged_at"),
    )  # fmt: skip


def _pipeline(data: dict[str, Any]) -> Pipeline:
    return Pipeline(
        id=data["id"], iid=data.get("iid") or 0, project_id=data.get("project_id") or 0,
        ref=data.get("ref") or "", sha=data.get("sha") or "",
        status=data.get("status") or "created",
        source=data.get("source") or "", web_url=data.get("web_url") or "",
        created_at=data.get("created_at"), finished_at=data.get("finished_at"),
        duration=data.get("duration"),
    )  # fmt: skip


def _job(data: dict[str, Any]) -> Job:
    return Job(
        id=data["id"], name=data["name"], stage=data.get("stage") or "",
        status=data.get("status") or "created",
        pipeline_id=(data.get("pipeline") or {}).get("id") or 0,
        started_at=data.get("started_at"), finished_at=data.get("finished_at"),
        duration=data.get("duration"), failure_reason=data.get("failure_reason"),
        has_artifacts=any(a.get("file_type") == "archive" for a in data.get("artifacts") or []),
        web_url=data.get("web_url") or "",
    )  # fmt: skip
