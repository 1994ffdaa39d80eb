"""Branches, commits, files, merge requests and pipelines, through python-gitlab only.

Against a real GitLab the repository and merge request tests need Developer rights on the test
project. Tests that rely on the sandbox's job configuration skip there and say why.
"""

from __future__ import annotations

import base64
import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import gitlab
import pytest

from tests.contract import pipelines_fixtures
from tests.contract.conftest import Target
from tests.contract.pipelines_fixtures import SANDBOX_ONLY, Receiver, wait_finished, wait_for

ci_target = pipelines_fixtures.ci_target  # fixtures, found by name
receiver = pipelines_fixtures.receiver


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def branch(target: Target) -> Iterator[str]:
    """A fresh branch (its name has a slash) off the default branch, deleted afterwards."""
    name = f"contract/{_name('branch')}"
    target.project.branches.create({"branch": name, "ref": target.project.default_branch})
    yield name
    try:
        target.project.branches.delete(name)
    except gitlab.GitlabDeleteError:
        pass  # merged with remove_source_branch, or deleted by the test


def _commit(target: Target, branch: str, *actions: dict[str, Any]) -> Any:
    return target.project.commits.create(
        {
            "branch": branch,
            "commit_message": f"contract: {_name('change')}",
            "actions": list(actions),
        }
    )


def _create(path: str, content: str) -> dict[str, str]:
    return {"action": "create", "file_path": path, "content": content}


# -- branches ----------------------------------------------------------------------------------


def test_branch_create_get_duplicate_delete(target: Target) -> None:
    """A branch starts at its ref, a duplicate is GitLab's 400, and a deleted one is 404."""
    project, default = target.project, target.project.default_branch
    name = f"contract/{_name('feature')}"
    created = project.branches.create({"branch": name, "ref": default})
    head = project.branches.get(default).commit["id"]
    assert (created.name, created.commit["id"], created.default) == (name, head, False)
    assert project.branches.get(name).commit["id"] == head
    assert name in [b.name for b in project.branches.list(search=name.split("/")[1], get_all=True)]
    with pytest.raises(gitlab.GitlabCreateError) as duplicate:
        project.branches.create({"branch": name, "ref": default})
    assert duplicate.value.response_code == 400
    assert "Branch already exists" in str(duplicate.value.error_message)
    project.branches.delete(name)
    with pytest.raises(gitlab.GitlabGetError) as gone:
        project.branches.get(name)
    assert gone.value.response_code == 404


# -- commits and files -------------------------------------------------------------------------


def test_commit_actions_create_update_delete_and_read_back(target: Target, branch: str) -> None:
    """create, update and delete actions change the branch's files; commits list newest first."""
    project = target.project
    first = _commit(target, branch, _create("models/a.yml", "a: 1\n"), _create("models/b.yml", "b"))
    assert len(first.id) == 40 and first.short_id == first.id[: len(first.short_id)]
    assert first.title == first.message.splitlines()[0] and first.author_name
    assert first.created_at and first.web_url.endswith(f"/-/commit/{first.id}")
    second = _commit(
        target, branch,
        {"action": "update", "file_path": "models/a.yml", "content": "a: 2\n"},
        {"action": "delete", "file_path": "models/b.yml"},
    )  # fmt: skip
    fetched = project.files.get("models/a.yml", ref=branch)
    assert base64.b64decode(fetched.content) == b"a: 2\n" and fetched.encoding == "base64"
    assert (fetched.file_name, fetched.file_path, fetched.size) == ("a.yml", "models/a.yml", 5)
    assert (fetched.ref, fetched.last_commit_id) == (branch, second.id)
    assert project.files.raw("models/a.yml", ref=branch) == b"a: 2\n"
    with pytest.raises(gitlab.GitlabGetError) as deleted:
        project.files.get("models/b.yml", ref=branch)
    assert deleted.value.response_code == 404
    ids = [c.id for c in project.commits.list(ref_name=branch, per_page=3, get_all=False)]
    assert ids[:2] == [second.id, first.id]


def test_commit_errors_are_gitlabs_and_change_nothing(target: Target, branch: str) -> None:
    """Creating an existing file or touching a missing one is a 400 and makes no commit."""
    _commit(target, branch, _create("config.yml", "x"))
    head = target.project.branches.get(branch).commit["id"]
    cases = [
        (_create("config.yml", "again"), "A file with this name already exists"),
        ({"action": "update", "file_path": "missing.yml", "content": "y"}, "doesn't exist"),
        ({"action": "delete", "file_path": "missing.yml"}, "doesn't exist"),
    ]
    for action, message in cases:
        with pytest.raises(gitlab.GitlabCreateError) as refused:
            _commit(target, branch, action)
        assert refused.value.response_code == 400
        assert message in str(refused.value.error_message)
    assert target.project.branches.get(branch).commit["id"] == head


def test_tree_lists_paths_recursively_or_one_level(target: Target, branch: str) -> None:
    """The tree shows one level by default, everything with recursive, a folder with path."""
    top_dir = f"tree-{branch.rsplit('-', 1)[-1]}"  # a folder of its own: other tests write to the project's main
    _commit(target, branch, _create(f"{top_dir}/chat/1.0.0.yml", "v1"), _create(f"{top_dir}/x.yml", "x"))
    top = {e["path"]: e["type"] for e in target.project.repository_tree(ref=branch, get_all=True)}
    assert top[top_dir] == "tree" and f"{top_dir}/x.yml" not in top
    deep = target.project.repository_tree(ref=branch, recursive=True, get_all=True)
    assert {f"{top_dir}/chat/1.0.0.yml", f"{top_dir}/x.yml"} <= {e["path"] for e in deep}
    inner = target.project.repository_tree(ref=branch, path=top_dir, get_all=True)
    assert {(e["name"], e["type"]) for e in inner} == {("chat", "tree"), ("x.yml", "blob")}


# -- merge requests ----------------------------------------------------------------------------


def test_merge_request_create_list_update_merge(target: Target, branch: str) -> None:
    """An MR is found by source branch, updates, shows its diff and merges onto the target."""
    project, default = target.project, target.project.default_branch
    path = f"contract/{_name('model')}.yml"
    _commit(target, branch, _create(path, "name: test\n"))
    mr = project.mergerequests.create({
        "source_branch": branch, "target_branch": default, "title": "Add model",
        "description": "adds it", "labels": "AI Model Migration", "remove_source_branch": True,
    })  # fmt: skip
    assert (mr.state, mr.labels, mr.source_branch) == ("opened", ["AI Model Migration"], branch)
    assert mr.web_url.endswith(f"/{project.path_with_namespace}/-/merge_requests/{mr.iid}")
    listed = project.mergerequests.list(source_branch=branch, state="opened", get_all=True)
    assert [m.iid for m in listed] == [mr.iid]
    project.mergerequests.update(mr.iid, {"title": "Add model v2", "labels": "a,b"})
    fetched = project.mergerequests.get(mr.iid)
    assert (fetched.title, sorted(fetched.labels)) == ("Add model v2", ["a", "b"])
    changes = fetched.changes()["changes"]
    assert [(c["new_path"], c["new_file"]) for c in changes] == [(path, True)]
    assert "+name: test" in changes[0]["diff"]
    wait_for(lambda: project.mergerequests.get(mr.iid).detailed_merge_status == "mergeable")
    fetched.merge()
    merged = project.mergerequests.get(mr.iid)
    assert merged.state == "merged" and merged.merged_at and merged.merge_commit_sha
    assert project.files.raw(path, ref=default) == b"name: test\n"
    with pytest.raises(gitlab.GitlabMRClosedError) as again:
        merged.merge()
    assert again.value.response_code == 405


def test_second_open_merge_request_for_a_source_branch_is_409(target: Target, branch: str) -> None:
    """GitLab refuses a second open MR per source branch, until the first one is closed."""
    project, default = target.project, target.project.default_branch
    _commit(target, branch, _create(f"{_name('f')}.txt", "x"))
    first = project.mergerequests.create(
        {"source_branch": branch, "target_branch": default, "title": "one"}
    )
    with pytest.raises(gitlab.GitlabCreateError) as refused:
        project.mergerequests.create(
            {"source_branch": branch, "target_branch": default, "title": "two"}
        )
    assert refused.value.response_code == 409
    assert f"Another open merge request already exists for this source branch: !{first.iid}" in str(
        refused.value.error_message
    )
    project.mergerequests.update(first.iid, {"state_event": "close"})
    closed = project.mergerequests.list(source_branch=branch, state="closed", get_all=True)
    assert [m.iid for m in closed] == [first.iid]
    second = project.mergerequests.create(
        {"source_branch": branch, "target_branch": default, "title": "two"}
    )
    assert second.iid != first.iid
    every = project.mergerequests.list(source_branch=branch, state="all", get_all=True)
    assert sorted(m.iid for m in every) == sorted([first.iid, second.iid])
    project.mergerequests.update(second.iid, {"state_event": "close"})


# -- pipelines ---------------------------------------------------------------------------------


def test_pipeline_for_an_unknown_ref_is_400(target: Target) -> None:
    """A pipeline for a ref that does not exist is GitLab's 400 "Reference not found"."""
    with pytest.raises(gitlab.GitlabCreateError) as refused:
        target.project.pipelines.create({"ref": _name("no-such-branch")})
    assert refused.value.response_code == 400
    assert refused.value.error_message == {"base": ["Reference not found"]}


def test_pipeline_with_variables_runs_and_its_artifact_holds_them(target: Target) -> None:
    """The default echo_variables job succeeds and its artifact holds the pipeline variables."""
    if target.name != "sandbox":
        pytest.skip(SANDBOX_ONLY + "; a real project's CI config is unknown")
    variables = {"EVAL_MODEL": "claude-sonnet-4", "EVAL_DATASET": _name("duo_chat.q")}
    pipeline = target.project.pipelines.create(
        {"ref": "main", "variables": [{"key": k, "value": v} for k, v in variables.items()]}
    )
    assert pipeline.status in ("created", "pending", "running")
    assert wait_finished(pipeline).status == "success" and pipeline.duration is not None
    got = {v.key: v.value for v in pipeline.variables.list(get_all=True)}
    assert got == variables
    [job] = pipeline.jobs.list(get_all=True)
    assert (job.name, job.stage, job.status) == ("echo_variables", "test", "success")
    assert job.started_at and job.finished_at and job.duration is not None
    assert [a["file_type"] for a in job.artifacts] == ["archive"]
    full = target.project.jobs.get(job.id)
    assert json.loads(full.artifact("variables.json")) == variables
    with zipfile.ZipFile(io.BytesIO(full.artifacts())) as archive:
        assert json.loads(archive.read("variables.json")) == variables
    listed = target.project.pipelines.list(ref="main", status="success", get_all=True)
    assert pipeline.id in [p.id for p in listed]


def test_trigger_pipeline_passes_variables(target: Target) -> None:
    """A triggered pipeline has source "trigger" and hands its variables to the job."""
    if target.name != "sandbox":
        pytest.skip("a real GitLab needs a trigger token created for the project")
    triggered = target.project.trigger_pipeline("main", token="any", variables={"EVAL_X": "1"})
    assert wait_finished(triggered).status == "success" and triggered.source == "trigger"
    [job] = triggered.jobs.list(get_all=True)
    assert json.loads(target.project.jobs.get(job.id).artifact("variables.json")) == {"EVAL_X": "1"}


def test_command_job_runs_in_a_checkout_with_ci_variables(ci_target: Target) -> None:
    """A command job sees CI_* and pipeline variables and the ref's files; stages run in order."""
    project = ci_target.project
    pipeline = wait_finished(project.pipelines.create(
        {"ref": "main", "variables": [{"key": "EVAL_MODEL", "value": "codestral"}]}
    ))  # fmt: skip
    assert pipeline.status == "success"
    jobs = {job.name: job for job in pipeline.jobs.list(get_all=True)}
    assert {name: (j.stage, j.status) for name, j in jobs.items()} == {
        "prepare": ("build", "success"), "evaluate": ("test", "success"),
        "report": ("report", "success"),
    }  # fmt: skip
    assert jobs["prepare"].finished_at <= jobs["evaluate"].started_at
    results = json.loads(project.jobs.get(jobs["evaluate"].id).artifact("results.json"))
    env = results["env"]
    assert env["EVAL_MODEL"] == "codestral" and env["CI"] == "true"
    assert (env["CI_PIPELINE_ID"], env["CI_JOB_NAME"]) == (str(pipeline.id), "evaluate")
    assert (env["CI_COMMIT_REF_NAME"], env["CI_COMMIT_SHA"]) == ("main", pipeline.sha)
    assert "README.md" in results["checkout"]
    assert b"evaluated codestral" in project.jobs.get(jobs["evaluate"].id).trace()


def test_failing_command_fails_the_pipeline_and_skips_later_stages(ci_target: Target) -> None:
    """A non-zero exit fails its job and the pipeline; the next stage's job is skipped."""
    project = ci_target.project
    pipeline = wait_finished(project.pipelines.create(
        {"ref": "main", "variables": [{"key": "EXIT_CODE", "value": "3"}]}
    ))  # fmt: skip
    assert pipeline.status == "failed"
    statuses = {job.name: job.status for job in pipeline.jobs.list(get_all=True)}
    assert statuses == {"prepare": "success", "evaluate": "failed", "report": "skipped"}
    failed = next(j for j in pipeline.jobs.list(get_all=True) if j.name == "evaluate")
    assert failed.failure_reason == "script_failure"
    assert b"exit code 3" in project.jobs.get(failed.id).trace()
    assert pipeline.id in [p.id for p in project.pipelines.list(status="failed", get_all=True)]


def test_cancel_stops_a_running_pipeline(ci_target: Target) -> None:
    """Cancelling kills the running command; the pipeline and its jobs end canceled."""
    project = ci_target.project
    pipeline = project.pipelines.create(
        {"ref": "main", "variables": [{"key": "SLEEP", "value": "30"}]}
    )
    wait_for(lambda: any(j.status == "running" and j.name == "evaluate"
                         for j in pipeline.jobs.list(get_all=True)))  # fmt: skip
    pipeline.cancel()
    assert wait_finished(pipeline).status == "canceled"
    statuses = {job.name: job.status for job in pipeline.jobs.list(get_all=True)}
    assert statuses == {"prepare": "success", "evaluate": "canceled", "report": "canceled"}


def test_merge_request_and_pipeline_events_reach_webhooks(
    ci_target: Target, receiver: Receiver
) -> None:
    """Opening and merging an MR and running a pipeline send GitLab's hook payloads."""
    project = ci_target.project
    hook = project.hooks.create({"url": receiver.url, "merge_requests_events": True,
                                 "pipeline_events": True, "push_events": False})  # fmt: skip
    try:
        name = _name("events")
        project.branches.create({"branch": name, "ref": "main"})
        _commit(ci_target, name, _create(f"{name}.txt", "x"))
        mr = project.mergerequests.create(
            {"source_branch": name, "target_branch": "main", "title": name}
        )
        mr.merge()
        pipeline = wait_finished(project.pipelines.create({"ref": "main"}))
        wait_for(lambda: any(p["object_attributes"]["status"] == pipeline.status
                             for p in receiver.of("pipeline")))  # fmt: skip
        wait_for(lambda: len(receiver.of("merge_request")) >= 2)
    finally:
        hook.delete()
    actions = [p["object_attributes"]["action"] for p in receiver.of("merge_request")]
    assert actions == ["open", "merge"]
    opened = receiver.of("merge_request")[0]
    assert opened["object_attributes"]["iid"] == mr.iid and opened["project"]["id"] == project.id
    statuses = [p["object_attributes"]["status"] for p in receiver.of("pipeline")
                if p["object_attributes"]["id"] == pipeline.id]  # fmt: skip
    assert statuses[0] == "pending" and statuses[-1] == "success" and "running" in statuses
    assert {b["name"] for b in receiver.of("pipeline")[-1]["builds"]} == {
        "prepare",
        "evaluate",
        "report",
    }
