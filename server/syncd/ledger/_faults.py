"""Ledger faults in an operator's words, and the guard that keeps SQLite off an unlinked file.

A storage fault reaches the daemon as a driver exception (`sqlite3.OperationalError: database
or disk is full`, `psycopg.OperationalError: connection refused`, `OSError: [Errno 28]`). The
ledger turns each into a `LedgerUnavailableError` whose `problem` says what to fix, so callers
answer UNAVAILABLE with one clear line instead of INTERNAL with a driver's text.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

from syncd.errors import LedgerUnavailableError

DISK_FULL = "disk full"
READ_ONLY = "read-only (file, directory or file system)"
LOCKED = "locked by another writer"
UNREACHABLE = "database unreachable"

_BY_ERRNO = {
    errno.ENOSPC: DISK_FULL,
    errno.EDQUOT: DISK_FULL,
    errno.EROFS: READ_ONLY,
    errno.EACCES: READ_ONLY,
    errno.EPERM: READ_ONLY,
    errno.EIO: "I/O error",
}

# Lower-cased fragments of driver messages, most specific first.
_BY_TEXT = (
    ("database or disk is full", DISK_FULL),
    ("no space left", DISK_FULL),
    ("readonly database", READ_ONLY),
    ("read-only", READ_ONLY),
    ("database is locked", LOCKED),
    ("lock timeout", LOCKED),
    ("could not obtain lock", LOCKED),
    ("disk i/o error", "I/O error"),
    ("file is not a database", "its file is not a SQLite database"),
    ("unable to open database file", "its file cannot be opened"),
    ("no such table", "its tables are missing (was the file replaced?)"),
    ("connection refused", UNREACHABLE),
    ("terminating connection", UNREACHABLE),
    ("server closed the connection", UNREACHABLE),
    ("connection is closed", UNREACHABLE),
    ("connection timeout", UNREACHABLE),
    ("timeout expired", UNREACHABLE),
    ("the database system is", UNREACHABLE),  # starting up / shutting down
    ("could not connect", UNREACHABLE),
)

MAX_DETAIL = 200


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)  # SQLAlchemy keeps the driver's exception here
        current = (
            orig if isinstance(orig, BaseException) else (current.__cause__ or current.__context__)
        )


def problem_of(exc: BaseException) -> str:
    """A short reason for a ledger failure: "disk full", "locked by another writer", …"""
    for link in _chain(exc):
        if isinstance(link, LedgerUnavailableError):
            return link.problem
        if isinstance(link, OSError) and link.errno in _BY_ERRNO:
            return _BY_ERRNO[link.errno]
        text = str(link).lower()
        for fragment, problem in _BY_TEXT:
            if fragment in text:
                return problem
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first[:MAX_DETAIL]}"


def check_writable(path: Path) -> None:
    """Raise LedgerUnavailableError when `path` is read-only, immutable or on a read-only
    mount. access() sees the immutable flag and read-only mounts, which bind root too; a file
    with no write bit is taken as the operator's "do not write", even by root."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise LedgerUnavailableError(problem_of(exc)) from exc
    if not mode & 0o222 or not os.access(path, os.W_OK):
        raise LedgerUnavailableError(f"its file {path} is read-only or immutable")
    if not os.access(path.parent, os.W_OK):
        raise LedgerUnavailableError(f"its directory {path.parent} is read-only")


class SqliteFileGuard:
    """Knows which file the ledger opened, and notices when the path no longer leads to it.

    SQLite keeps writing to an open file after it is unlinked or replaced, so those writes
    would vanish at the next start. `check()` runs before every write: a deleted file is
    refused, a replaced one reported so the ledger can reopen it, a file made read-only or
    immutable (which even root cannot write) refused before SQLite half-writes to it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.wal = Path(f"{path}-wal")
        self._identity = self._stat_identity()
        self._wal_identity = self._journal_identity()

    def _stat_identity(self) -> tuple[int, int]:
        st = os.stat(self.path)
        return st.st_dev, st.st_ino

    def _journal_identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.wal)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def replaced(self) -> bool:
        """True when the path now names another file; raises when it names none or is unwritable."""
        try:
            identity = self._stat_identity()
        except FileNotFoundError:
            raise LedgerUnavailableError(
                f"its file {self.path} was deleted; runs are refused until it is restored"
                " or syncd is restarted"
            ) from None
        except OSError as exc:
            raise LedgerUnavailableError(problem_of(exc)) from exc
        if identity != self._identity:
            return True
        check_writable(self.path)
        self._wal_identity = self._journal_identity() or self._wal_identity
        return False

    def set_aside_old_journal(self) -> Path | None:
        """After the file was replaced or deleted, and the old connections are closed: move
        the old file's WAL away from the path. SQLite does not checkpoint a moved file on
        close, and would replay its leftover WAL into the new file. Kept, renamed, because it
        holds the old file's last commits."""
        if self._wal_identity is None or self._journal_identity() != self._wal_identity:
            return None
        kept = self.wal.with_name(f"{self.wal.name}.replaced-{self._identity[1]}")
        os.replace(self.wal, kept)
        Path(f"{self.path}-shm").unlink(missing_ok=True)  # its index; SQLite rebuilds one
        return kept

    def accept(self) -> None:
        """The file now at the path is the one the ledger has (re)opened."""
        self._identity = self._stat_identity()
        self._wal_identity = self._journal_identity()
