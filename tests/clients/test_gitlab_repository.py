"""GitLabClient's repository, merge request and pipeline methods against the sandbox."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import pytest

from model_migration.clients.gitlab import GitLabClient
from model_migration.clients.gitlab_repository import git_blob_id
from model_migration.domain.errors import ErrorType, GitLabError
from model_migration.domain.models import Pipeline
from tests.clients.gitlab_helpers import api, unique

if TYPE_CHECKING:
    from tests.conftest import SandboxInfo


def _commit_count(sandbox: SandboxInfo, branch: str) -> int:
    return int(api(sandbox, "/repository/commits", ref_name=branch).headers["x-total"])


def _finished(client: GitLabClient, pipeline_id: int) -> Pipeline:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pipeline = client.get_pipeline(pipeline_id)
        if pipeline.finished:
            return pipeline
        time.sleep(0.05)
    raise AssertionError(f"pipeline {pipeline_id} did not finish in 20 s")


# -- branches and files ----------------------------------------------------------------------


def test_ensure_branch_creates_once_from_the_ref(gitlab_client: GitLabClient) -> None:
    """ensure_branch creates the branch at the ref's head, and a second call returns it."""
    name = f"model-migration/{unique('b')}"
    main = gitlab_client.ensure_branch("main")
    created = gitlab_client.ensure_branch(name)
    again = gitlab_client.ensure_branch(name, ref="no-such-ref")
    assert created.name == name and created.commit_id == main.commit_id
    assert again == created and main.default and not created.default


def test_commit_files_creates_updates_and_skips_unchanged(
    gitlab_client: GitLabClient, gitlab_sandbox: SandboxInfo
) -> None:
    """The first call creates files, a repeat makes no commit, a change updates only one."""
    branch = gitlab_client.ensure_branch(f"model-migration/{unique('c')}").name
    files = {"models/new.yml": "- name: New\n", "prompts/p/base/1.0.0-dev.yml": "name: p\n"}
    before = _commit_count(gitlab_sandbox, branch)
    first = gitlab_client.commit_files(branch, "Add the model", files)
    repeat = gitlab_client.commit_files(branch, "Add the model", files)
    assert (first.title, len(first.id)) == ("Add the model", 40)
    assert repeat.id == first.id
    assert _commit_count(gitlab_sandbox, branch) == before + 1
    changed = gitlab_client.commit_files(
        branch, "Tune", {**files, "models/new.yml": "- name: v2\n"}
    )
    assert changed.id != first.id
    assert gitlab_client.read_file("models/new.yml", branch) == "- name: v2\n"
    untouched = api(
        gitlab_sandbox, "/repository/files/prompts%2Fp%2Fbase%2F1.0.0-dev.yml", ref=branch
    )
    assert untouched.json()["last_commit_id"] == first.id


def test_commit_files_deletes_files_and_folders_once(
    gitlab_client: GitLabClient, gitlab_sandbox: SandboxInfo
) -> None:
    """Deleting a folder removes every file under it (not a sibling sharing its prefix); missing
    paths are skipped, and a repeat makes no commit, as GitLab refuses a delete of a missing file."""
    branch = gitlab_client.ensure_branch(f"model-migration/{unique('d')}").name
    old = "prompts/p/claude_3"
    kept = {"prompts/p/claude_3x/1.0.0.yml": "x\n", "prompts/p/claude_4/1.0.0.yml": "y\n"}
    files = {f"{old}/1.0.0.yml": "a\n", f"{old}/1.0.1.yml": "b\n", "notes.md": "n\n", **kept}
    gitlab_client.commit_files(branch, "Add", files)
    deletes = (old + "/", "notes.md", "prompts/never-there")
    assert gitlab_client.existing_files(deletes, branch) == ["notes.md", f"{old}/1.0.0.yml", f"{old}/1.0.1.yml"]
    before = _commit_count(gitlab_sandbox, branch)
    removed = gitlab_client.commit_files(branch, "Remove", {}, deletes=deletes)
    again = gitlab_client.commit_files(branch, "Remove", {}, deletes=deletes)
    assert again.id == removed.id and _commit_count(gitlab_sandbox, branch) == before + 1
    assert gitlab_client.existing_files(deletes, branch) == []
    assert all(gitlab_client.read_file(path, branch) == text for path, text in kept.items())
    assert gitlab_client.read_file("README.md", branch)


def test_commit_files_refuses_ambiguous_deletes(gitlab_client: GitLabClient) -> None:
    """A path both written and deleted, the repository root, or a bare string is a caller's
    mistake, refused before GitLab is asked."""
    calls = gitlab_client.calls
    with pytest.raises(ValueError, match="both written and deleted"):
        gitlab_client.commit_files("main", "x", {"a/b.yml": "x"}, deletes=["a"])
    with pytest.raises(ValueError, match="whole repository"):
        gitlab_client.commit_files("main", "x", {}, deletes=["/"])
    with pytest.raises(TypeError):
        gitlab_client.existing_files("prompts", "main")
    assert gitlab_client.calls == calls


def test_read_file_returns_none_for_a_missing_file(gitlab_client: GitLabClient) -> None:
    """read_file gives the text of a file and None where there is none."""
    assert gitlab_client.read_file("README.md", "main")
    assert gitlab_client.read_file(f"{unique('missing')}.yml", "main") is None


def test_commit_files_to_a_missing_branch_is_not_found(gitlab_client: GitLabClient) -> None:
    """Committing to a branch that does not exist is a non-retryable not-found error."""
    with pytest.raises(GitLabError) as missing:
        gitlab_client.commit_files(unique("no-branch"), "x", {"a.txt": "a"})
    assert missing.value.type == ErrorType.GITLAB_NOT_FOUND


def test_git_blob_id_matches_the_tree_api(
    gitlab_client: GitLabClient, gitlab_sandbox: SandboxInfo
) -> None:
    """The local blob id equals the one the tree API reports, which idempotency relies on."""
    tree = api(gitlab_sandbox, "/repository/tree", ref="main").json()
    readme = next(e for e in tree if e["path"] == "README.md")
    content = gitlab_client.read_file("README.md", "main")
    assert content is not None and git_blob_id(content.encode()) == readme["id"]


# -- merge requests --------------------------------------------------------------------------


def _branch_with_change(client: GitLabClient) -> tuple[str, str]:
    branch = client.ensure_branch(f"model-migration/{unique('mr')}").name
    path = f"gateway/{unique('f')}.yml"
    client.commit_files(branch, "Add", {path: "x: 1\n"})
    return branch, path


def test_ensure_merge_request_twice_returns_the_same_one(gitlab_client: GitLabClient) -> None:
    """A second ensure_merge_request finds the first MR by source branch instead of failing."""
    branch, _ = _branch_with_change(gitlab_client)
    first = gitlab_client.ensure_merge_request(
        branch, "main", "Add model", "body", ["AI Model Migration"]
    )
    second = gitlab_client.ensure_merge_request(
        branch, "main", "Add model", "body", ["AI Model Migration"]
    )
    assert second == first
    assert (first.state, first.labels, first.source_branch) == (
        "opened",
        ["AI Model Migration"],
        branch,
    )
    assert first.web_url.endswith(f"/-/merge_requests/{first.iid}")
    assert gitlab_client.find_merge_request(branch) == first
    assert gitlab_client.get_merge_request(first.iid) == first


def test_create_merge_request_twice_is_a_conflict(gitlab_client: GitLabClient) -> None:
    """A second open MR for a source branch maps to the non-retryable conflict type."""
    branch, _ = _branch_with_change(gitlab_client)
    gitlab_client.create_merge_request(branch, "main", "one")
    with pytest.raises(GitLabError) as conflict:
        gitlab_client.create_merge_request(branch, "main", "two")
    assert conflict.value.type == ErrorType.GITLAB_CONFLICT and conflict.value.status == 409


def test_find_merge_request_prefers_the_open_one(gitlab_client: GitLabClient) -> None:
    """Among a closed and an open MR of a branch, find returns the open one; else the newest."""
    branch, _ = _branch_with_change(gitlab_client)
    assert gitlab_client.find_merge_request(branch) is None
    old = gitlab_client.create_merge_request(branch, "main", "old")
    gitlab_client._project.mergerequests.update(old.iid, {"state_event": "close"})
    assert gitlab_client.find_merge_request(branch) == gitlab_client.get_merge_request(old.iid)
    new = gitlab_client.create_merge_request(branch, "main", "new")
    assert gitlab_client.find_merge_request(branch) == new
    assert gitlab_client.ensure_merge_request(branch, "main", "again") == new


def test_merge_merge_request_lands_the_files_on_the_target(gitlab_client: GitLabClient) -> None:
    """Merging puts the branch's files on main and reports merged; merging again is refused."""
    branch, path = _branch_with_change(gitlab_client)
    mr = gitlab_client.ensure_merge_request(branch, "main", "Add model")
    merged = gitlab_client.merge_merge_request(mr.iid)
    assert merged.state == "merged" and merged.merged_at and merged.merge_commit_sha
    assert gitlab_client.read_file(path, "main") == "x: 1\n"
    with pytest.raises(GitLabError) as again:
        gitlab_client.merge_merge_request(mr.iid)
    assert again.value.status == 405


# -- pipelines -------------------------------------------------------------------------------


def test_pipeline_runs_and_its_artifact_holds_the_variables(gitlab_client: GitLabClient) -> None:
    """create_pipeline → get_pipeline until finished → jobs → the echo job's artifact."""
    variables = {"EVAL_DATASET": unique("duo_chat.q"), "EVAL_MODEL": "codestral"}
    started = gitlab_client.create_pipeline("main", variables)
    assert started.status in ("created", "pending", "running") and started.ref == "main"
    done = _finished(gitlab_client, started.id)
    assert (done.status, done.finished, done.sha) == ("success", True, started.sha)
    [job] = gitlab_client.pipeline_jobs(started.id)
    assert (job.name, job.status, job.has_artifacts, job.pipeline_id) == (
        "echo_variables", "success", True, started.id,
    )  # fmt: skip
    assert json.loads(gitlab_client.job_artifact(job.id, "variables.json")) == variables


def test_pipeline_errors_map_to_domain_types(gitlab_client: GitLabClient) -> None:
    """An unknown ref is invalid; a missing pipeline or artifact file is not found."""
    with pytest.raises(GitLabError) as bad_ref:
        gitlab_client.create_pipeline(unique("no-ref"), {})
    assert (
        bad_ref.value.type == ErrorType.GITLAB_INVALID
        and "Reference not found" in bad_ref.value.message
    )
    with pytest.raises(GitLabError) as no_pipeline:
        gitlab_client.get_pipeline(1)
    assert no_pipeline.value.type == ErrorType.GITLAB_NOT_FOUND
    job = gitlab_client.pipeline_jobs(gitlab_client.create_pipeline("main", {}).id)[0]
    _finished(gitlab_client, job.pipeline_id)
    with pytest.raises(GitLabError) as no_file:
        gitlab_client.job_artifact(job.id, "nope.json")
    assert no_file.value.type == ErrorType.GITLAB_NOT_FOUND
