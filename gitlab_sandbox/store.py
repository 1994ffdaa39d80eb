"""SQLite state for the local sandboxes: one file, a table per resource, a JSON document per row.

Lookup columns (ids, paths, iids) are real columns with unique constraints; everything else
lives in ``data``. Every write runs in ``BEGIN IMMEDIATE`` under one lock, so concurrent
requests (and a second process on the same file) never hand out the same id or iid.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY, username TEXT NOT NULL UNIQUE COLLATE NOCASE, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS groups (
    id INTEGER PRIMARY KEY, full_path TEXT NOT NULL UNIQUE COLLATE NOCASE, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS projects (
    id INTEGER PRIMARY KEY, path_with_namespace TEXT NOT NULL UNIQUE COLLATE NOCASE,
    data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL,
    UNIQUE (project_id, name));
CREATE TABLE IF NOT EXISTS issues (
    id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, iid INTEGER NOT NULL, data TEXT NOT NULL,
    UNIQUE (project_id, iid));
CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, issue_iid INTEGER NOT NULL,
    data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS notes_by_issue ON notes (project_id, issue_iid);
"""

#: Ids start above these, so that ids never look like iids and mixing them up fails loudly.
ID_BASES: dict[str, int] = {
    "users": 0,
    "groups": 9969,
    "projects": 59_000_000,
    "labels": 31_000_000,
    "issues": 170_000_000,
    "notes": 2_400_000_000,
}


def now_iso() -> str:
    """A timestamp in GitLab's format, e.g. ``2025-01-21T09:30:00.123Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Events:
    """Modules announce changes here (``emit``); the webhook module listens (``subscribe``)."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[str, int, dict[str, Any]], None]] = []
        self._interest: list[Callable[[int], bool]] = []

    def wanted(self, project_id: int) -> bool:
        """Whether anyone listens for this project, so an emitter can skip building a payload."""
        return any(check(project_id) for check in self._interest)

    def interested(self, check: Callable[[int], bool]) -> None:
        self._interest.append(check)

    def subscribe(self, listener: Callable[[str, int, dict[str, Any]], None]) -> None:
        self._listeners.append(listener)

    def emit(self, kind: str, project_id: int, payload: dict[str, Any]) -> None:
        """``kind`` is GitLab's ``object_kind``: issue, note, merge_request, pipeline."""
        for listener in self._listeners:
            listener(kind, project_id, payload)


class Store:
    """A thread-safe SQLite store. Table and column names come from code, never from requests."""

    def __init__(self, path: Path, schema: str = SCHEMA) -> None:
        self.events = Events()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")  # WAL keeps it safe across crashes of the process
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(schema)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @property
    def lock(self) -> threading.RLock:
        """Hold this around a read-modify-write so that concurrent requests do not interleave."""
        return self._lock

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # -- reads -------------------------------------------------------------------------------

    def find(self, table: str, **where: Any) -> dict[str, Any] | None:
        rows = self.select(table, **where)
        return rows[0] if rows else None

    def select(self, table: str, **where: Any) -> list[dict[str, Any]]:
        """Rows whose lookup columns equal ``where``, by id."""
        clause = " AND ".join(f"{column} = ?" for column in where) or "1"
        with self._lock:
            rows = self._conn.execute(
                f"SELECT data FROM {table} WHERE {clause} ORDER BY id",  # noqa: S608
                tuple(where.values()),
            ).fetchall()
        return [json.loads(row["data"]) for row in rows]

    def select_containing(
        self, table: str, needles: list[str], fields: tuple[str, ...] = (), **where: Any
    ) -> list[dict[str, Any]]:
        """As ``select``, keeping only rows whose stored JSON contains every needle
        (case-insensitive): a cheap pre-filter, so a search does not decode every row.
        ``fields``: look only in those top-level text fields (a title search then skips the
        long descriptions), else in the whole row."""
        if not all(f.isidentifier() for f in fields):
            raise ValueError(f"not a field name: {fields!r}")
        haystack = (
            "lower(" + " || ' ' || ".join(f"coalesce(json_extract(data, '$.{f}'), '')" for f in fields) + ")"
            if fields else "lower(data)"
        )
        clause = " AND ".join([*(f"{column} = ?" for column in where), *(f"instr({haystack}, ?) > 0" for _ in needles)]) or "1"
        with self._lock:
            rows = self._conn.execute(
                f"SELECT data FROM {table} WHERE {clause} ORDER BY id",  # noqa: S608
                (*where.values(), *(n.lower() for n in needles)),
            ).fetchall()
        return [json.loads(row["data"]) for row in rows]

    def count(self, table: str, **where: Any) -> int:
        clause = " AND ".join(f"{column} = ?" for column in where) or "1"
        with self._lock:
            (total,) = self._conn.execute(
                f"SELECT COUNT(*) FROM {table} WHERE {clause}",  # noqa: S608
                tuple(where.values()),
            ).fetchone()
        return int(total)

    # -- writes ------------------------------------------------------------------------------

    def insert(self, table: str, data: dict[str, Any], **columns: Any) -> dict[str, Any]:
        """Store ``data`` with a fresh ``id``; ``columns`` fill the lookup columns."""
        with self.transaction() as conn:
            return self._insert(conn, table, data, columns)

    def insert_if_absent(self, table: str, data: dict[str, Any], **columns: Any) -> dict[str, Any]:
        """Seed a row once: if a row with these lookup columns exists, return it unchanged."""
        with self.transaction() as conn:
            clause = " AND ".join(f"{column} = ?" for column in columns)
            row = conn.execute(
                f"SELECT data FROM {table} WHERE {clause}",  # noqa: S608
                tuple(columns.values()),
            ).fetchone()
            if row is not None:
                return json.loads(row["data"])
            return self._insert(conn, table, data, columns)

    def insert_issue(self, project_id: int, data: dict[str, Any]) -> dict[str, Any]:
        """Store an issue with the project's next iid, atomically."""
        with self.transaction() as conn:
            (last,) = conn.execute(
                "SELECT COALESCE(MAX(iid), 0) FROM issues WHERE project_id = ?", (project_id,)
            ).fetchone()
            data = {**data, "iid": last + 1}
            return self._insert(conn, "issues", data, {"project_id": project_id, "iid": last + 1})

    def update(self, table: str, data: dict[str, Any]) -> dict[str, Any]:
        with self.transaction() as conn:
            conn.execute(
                f"UPDATE {table} SET data = ? WHERE id = ?",  # noqa: S608
                (json.dumps(data), data["id"]),
            )
        return data

    def _insert(
        self, conn: sqlite3.Connection, table: str, data: dict[str, Any], columns: dict[str, Any]
    ) -> dict[str, Any]:
        (last,) = conn.execute(f"SELECT MAX(id) FROM {table}").fetchone()  # noqa: S608
        row_id = max(last or 0, ID_BASES.get(table, 0)) + 1
        data = {"id": row_id, **{k: v for k, v in data.items() if k != "id"}}
        names = ", ".join(["id", "data", *columns])
        marks = ", ".join("?" for _ in range(len(columns) + 2))
        conn.execute(
            f"INSERT INTO {table} ({names}) VALUES ({marks})",  # noqa: S608
            (row_id, json.dumps(data), *columns.values()),
        )
        return data
