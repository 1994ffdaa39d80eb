"""The sandbox's git object store: blobs, commits and branches of every project, in SQLite.

Objects are git-like. A blob's id is its real git blob SHA-1, so clients can compare content
without downloading it. A commit records its parents and its whole tree (path → blob id); a
branch names a commit. Repository endpoints, merge requests and pipelines all share it.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import json
import re
import uuid
from collections import deque
from typing import Any

from gitlab_sandbox.gitlab_api import BOT_USERNAME
from gitlab_sandbox.store import Store, now_iso

DEFAULT_BRANCH = "main"
_BAD_REF = re.compile(
    r"(^[/.-])|([/.]$)|(\.\.)|(//)|(@\{)|(\.lock$)|(/\.)|([\x00-\x20~^:?*\[\\\x7f])"
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS repo_blobs (
    id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, sha TEXT NOT NULL, data TEXT NOT NULL,
    UNIQUE (project_id, sha));
CREATE TABLE IF NOT EXISTS repo_commits (
    id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, sha TEXT NOT NULL, data TEXT NOT NULL,
    UNIQUE (project_id, sha));
CREATE TABLE IF NOT EXISTS repo_branches (
    id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL,
    UNIQUE (project_id, name));
"""


def blob_id(content: bytes) -> str:
    """git's blob id: SHA-1 over ``blob <size>\\0<content>``."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def valid_branch_name(name: str) -> bool:
    """The rules of ``git check-ref-format --branch``, as GitLab applies them."""
    return bool(name) and name != "HEAD" and not _BAD_REF.search(name)


class Repository:
    """The object store. Callers hold ``store.lock`` around read-modify-write sequences."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def init(self, project: dict[str, Any]) -> None:
        """Give a project its default branch with a README, once."""
        if self.store.count("repo_commits", project_id=project["id"]):
            return
        with self.store.lock:
            if self.store.count("repo_commits", project_id=project["id"]):
                return
            readme = f"# {project['name']}\n\nThis repository lives in the GitLab sandbox.\n"
            tree = {"README.md": self.put_blob(project["id"], readme.encode())}
            self.write_commit(project["id"], DEFAULT_BRANCH, [], tree, "Initial commit")

    def put_blob(self, project_id: int, content: bytes) -> str:
        sha = blob_id(content)
        data = {"sha": sha, "content": base64.b64encode(content).decode()}
        self.store.insert_if_absent("repo_blobs", data, project_id=project_id, sha=sha)
        return sha

    def blob(self, project_id: int, sha: str) -> bytes:
        row = self.store.find("repo_blobs", project_id=project_id, sha=sha)
        return base64.b64decode(row["content"]) if row else b""

    def branch(self, project_id: int, name: str) -> dict[str, Any] | None:
        return self.store.find("repo_branches", project_id=project_id, name=name)

    def commit(self, project_id: int, sha: str) -> dict[str, Any] | None:
        return self.store.find("repo_commits", project_id=project_id, sha=sha)

    def resolve(self, project_id: int, ref: str) -> dict[str, Any] | None:
        """A branch name, a full commit id, or an unambiguous prefix of 7+ hex digits."""
        branch = self.branch(project_id, ref)
        if branch is not None:
            return self.commit(project_id, branch["commit"])
        if re.fullmatch(r"[0-9a-f]{7,40}", ref):
            found = [c for c in self.store.select("repo_commits", project_id=project_id)
                     if c["sha"].startswith(ref)]  # fmt: skip
            return found[0] if len(found) == 1 else None
        return None

    def set_branch(self, project_id: int, name: str, sha: str) -> dict[str, Any]:
        with self.store.lock:
            branch = self.branch(project_id, name)
            if branch is not None:
                return self.store.update("repo_branches", {**branch, "commit": sha})
            data = {"name": name, "commit": sha, "created_at": now_iso()}
            return self.store.insert("repo_branches", data, project_id=project_id, name=name)

    def delete_branch(self, project_id: int, name: str) -> None:
        with self.store.transaction() as conn:
            conn.execute(
                "DELETE FROM repo_branches WHERE project_id = ? AND name = ?", (project_id, name)
            )

    def write_commit(
        self, project_id: int, branch: str, parents: list[str], tree: dict[str, str], message: str
    ) -> dict[str, Any]:
        """Store a commit and move ``branch`` to it."""
        now = now_iso()
        seed = json.dumps([parents, tree, message, now, uuid.uuid4().hex])
        sha = hashlib.sha1(seed.encode()).hexdigest()
        data = {
            "sha": sha, "parent_ids": parents, "tree": dict(sorted(tree.items())),
            "title": (message.strip().splitlines() or [""])[0], "message": message,
            "author_name": "Model Migration Bot", "author_email": f"{BOT_USERNAME}@example.com",
            "created_at": now,
        }  # fmt: skip
        commit = self.store.insert("repo_commits", data, project_id=project_id, sha=sha)
        self.set_branch(project_id, branch, sha)
        return commit

    def ancestors(self, project_id: int, sha: str) -> list[dict[str, Any]]:
        """``sha`` and every commit it descends from, newest first."""
        every = {c["sha"]: c for c in self.store.select("repo_commits", project_id=project_id)}
        seen: dict[str, dict[str, Any]] = {}
        queue = deque([sha])
        while queue:
            current = queue.popleft()
            if current not in seen and current in every:
                seen[current] = every[current]
                queue.extend(every[current]["parent_ids"])
        return sorted(seen.values(), key=lambda c: c["id"], reverse=True)

    def merge_base(self, project_id: int, a: str, b: str) -> str | None:
        in_a = {c["sha"] for c in self.ancestors(project_id, a)}
        return next((c["sha"] for c in self.ancestors(project_id, b) if c["sha"] in in_a), None)

    def last_commit_for(self, project_id: int, commit: dict[str, Any], path: str) -> str:
        """The newest commit, along first parents, that gave ``path`` its current blob."""
        wanted = commit["tree"].get(path)
        while commit["parent_ids"]:
            parent = self.commit(project_id, commit["parent_ids"][0])
            if parent is None or parent["tree"].get(path) != wanted:
                break
            commit = parent
        return str(commit["sha"])

    def changes(
        self, project_id: int, old: dict[str, str], new: dict[str, str]
    ) -> list[dict[str, Any]]:
        """GitLab's diff entries between two trees."""
        entries = []
        for path in sorted(set(old) | set(new)):
            if old.get(path) == new.get(path):
                continue
            before = self.blob(project_id, old[path]) if path in old else b""
            after = self.blob(project_id, new[path]) if path in new else b""
            entries.append({
                "old_path": path, "new_path": path, "a_mode": "100644" if path in old else "0",
                "b_mode": "100644" if path in new else "0", "diff": unified_diff(before, after),
                "new_file": path not in old, "renamed_file": False, "deleted_file": path not in new,
                "generated_file": False,
            })  # fmt: skip
        return entries


def unified_diff(before: bytes, after: bytes) -> str:
    """A hunk-only unified diff, as GitLab returns it (no ``---``/``+++`` header)."""
    old = before.decode(errors="replace").splitlines(keepends=True)
    new = after.decode(errors="replace").splitlines(keepends=True)
    lines = list(difflib.unified_diff(old, new, n=3))[2:]
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in lines)  # fmt: skip


def three_way_merge(
    base: dict[str, str], ours: dict[str, str], theirs: dict[str, str]
) -> dict[str, str] | None:
    """``ours`` plus every change ``theirs`` made since ``base``; ``None`` on a conflict."""
    merged = dict(ours)
    for path in set(base) | set(theirs):
        was, mine, wanted = base.get(path), ours.get(path), theirs.get(path)
        if wanted == was or mine == wanted:
            continue
        if mine != was:
            return None
        if wanted is None:
            merged.pop(path, None)
        else:
            merged[path] = wanted
    return merged
