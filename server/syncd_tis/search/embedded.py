"""The embedded sink: an SQLite FTS5 index file per index, in the state directory.

`<state_dir>/search/persons.sqlite3` and `posts.sqlite3` hold the documents (table `docs`: id,
JSON body) and a contentless FTS5 index over each document's search text (table `fts`, rowid =
document id). So `make run` has searchable indices without any server.

A build writes a new file beside the live one (`persons.sqlite3.<token>.building`, no journal,
no fsync per write: the file is scratch until it is complete), then `commit()` optimises it,
syncs it to disk and renames it over the live file with `os.replace`, which is atomic: a
searcher opening the index gets either the old file or the new one, complete, and a search
already running on the old file finishes on it (the old inode lives until it is closed).
A failed build deletes its scratch file; the live file is never written to.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syncd_tis.search.sink import Document, SearchError

SUFFIX = ".sqlite3"
_TERM = re.compile(r"\w+")
MAX_TERMS = 16


def index_path(directory: Path, name: str) -> Path:
    return directory / f"{name}{SUFFIX}"


def fts_query(query: str) -> str:
    """An FTS5 MATCH expression for free text: every word must occur, each as a prefix.

    Words are quoted, so FTS5 operators and punctuation in the input are plain text
    ("NPN/0001/F1" matches the words NPN, 0001 and F1 in that document).
    """
    terms = _TERM.findall(query)[:MAX_TERMS]
    return " ".join(f'"{term}"*' for term in terms)


class EmbeddedSink:
    """Builds `<directory>/<name>.sqlite3` aside and switches it in with `os.replace`."""

    def __init__(self, directory: Path, name: str, log: Any) -> None:
        self.path = index_path(directory, name)
        self._name = name
        self._log = log
        self._scratch: Path | None = None
        self._conn: sqlite3.Connection | None = None
        self._written = 0

    @property
    def written(self) -> int:
        return self._written

    def begin(self) -> None:
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        # Scratch files of a build that died (kill -9, power loss); runs of one job never
        # overlap, so any such file is an orphan.
        for stale in directory.glob(f"{self.path.name}.*.building*"):
            stale.unlink(missing_ok=True)
        self._scratch = directory / f"{self.path.name}.{secrets.token_hex(4)}.building"
        conn = sqlite3.connect(self._scratch, isolation_level=None)
        self._conn = conn
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        conn.execute(
            "CREATE VIRTUAL TABLE fts USING fts5("
            "text, content='', tokenize='unicode61 remove_diacritics 2')"
        )
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        self._log.info("search.embedded.begin", index=self._name, scratch=str(self._scratch))

    def write(self, batch: Sequence[Document]) -> None:
        conn = self._require()
        conn.execute("BEGIN")
        try:
            # The primary key refuses a second document with one id: one per person or post.
            conn.executemany(
                "INSERT INTO docs (id, body) VALUES (?, ?)",
                [
                    (d.id, json.dumps(d.source, separators=(",", ":"), ensure_ascii=False))
                    for d in batch
                ],
            )
            conn.executemany(
                "INSERT INTO fts (rowid, text) VALUES (?, ?)", [(d.id, d.text) for d in batch]
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._written += len(batch)

    def commit(self) -> None:
        conn = self._require()
        scratch = self._scratch
        assert scratch is not None
        conn.execute("INSERT INTO fts (fts) VALUES ('optimize')")  # one b-tree: faster queries
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [("built_at", datetime.now(UTC).isoformat()), ("documents", str(self._written))],
        )
        # A normal journal again, so readers open it like any database.
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.close()
        self._conn = None
        _fsync(scratch)
        os.replace(scratch, self.path)
        _fsync(self.path.parent)
        self._scratch = None
        self._log.info(
            "search.embedded.switched",
            index=self._name,
            path=str(self.path),
            documents=self._written,
        )

    def abort(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
        if self._scratch is not None:
            self._scratch.unlink(missing_ok=True)
            self._log.info("search.embedded.aborted", index=self._name, scratch=str(self._scratch))
            self._scratch = None

    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("EmbeddedSink used outside begin() ... commit()")
        return self._conn


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class EmbeddedSearcher:
    """Searches the live file of one embedded index, opened read-only per search."""

    def __init__(self, directory: Path, name: str) -> None:
        self.path = index_path(directory, name)
        self._name = name

    def exists(self) -> bool:
        return self.path.exists()

    def search(self, query: str, limit: int) -> list[dict[str, Any]]:
        match = fts_query(query)
        if not match:
            return []
        try:
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
        except sqlite3.OperationalError:
            raise SearchError(
                f"the {self._name} index has not been built yet: run its index job"
            ) from None
        try:
            rows = conn.execute(
                "SELECT docs.body, fts.rank FROM fts JOIN docs ON docs.id = fts.rowid"
                " WHERE fts MATCH ? ORDER BY fts.rank, docs.id LIMIT ?",
                (match, limit),
            ).fetchall()
        finally:
            conn.close()
        # FTS5's rank is bm25 negated (lower is better); `_score` is it the right way up, as
        # Elasticsearch's hits carry theirs.
        return [{**json.loads(body), "_score": -rank} for body, rank in rows]

    def count(self) -> int:
        """Documents in the live file (0 when there is none)."""
        if not self.path.exists():
            return 0
        conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return int(conn.execute("SELECT count(*) FROM docs").fetchone()[0])
        finally:
            conn.close()
