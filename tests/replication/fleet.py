"""A parent and children in one process: real SQL repositories (SQLite), a hand-moved clock
per replica, and peers that fail on request the way a network and a daemon do."""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from syncd.errors import PeerUnavailableError
from syncd.ledger.schema import meta_table
from syncd.ledger.sql import SqlLedger
from syncd.replication.children import ChildRow
from syncd.replication.cycle import Synchronizer, SyncReport
from syncd.replication.hlc import Hlc
from syncd.replication.model import (
    ApplyResult,
    Change,
    ChangePage,
    Key,
    RepoInfo,
)
from syncd.replication.store import SqlRepository
from syncd.retry import Backoff

T0 = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)


class Crash(BaseException):
    """The daemon running the cycle died here (nothing catches it)."""


class Clock:
    """One shared true time, and a skew per replica."""

    def __init__(self) -> None:
        self.ms = T0_MS
        self.skew: dict[str, int] = {}

    def wall(self, name: str) -> Callable[[], int]:
        return lambda: self.ms + self.skew.get(name, 0)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.ms / 1000, UTC)

    def advance(self, ms: int) -> None:
        self.ms += ms


@dataclass
class Faults:
    """What the next calls to one peer do wrong."""

    down: bool = False
    refuse: set[str] = field(default_factory=set)  # these calls fail (unreachable) until healed
    lose_reply: set[str] = field(default_factory=set)  # these calls commit, then fail
    duplicate_apply: bool = False  # the next apply_changes arrives twice
    crash_after_calls: int | None = None  # the cycle's daemon dies after this many calls
    # These calls of a method (numbered from 1 in `seen`) fail as unreachable.
    fail_calls: dict[str, set[int]] = field(default_factory=dict)
    seen: Counter[str] = field(default_factory=Counter)  # calls made, by method
    reads: list[int] = field(default_factory=list)  # the cursor each get_changes read from
    on_call: Callable[[str, int], None] | None = None  # told (method, call number) first


class FaultyPeer:
    """A repository reached through a network that fails as `faults` says."""

    def __init__(self, name: str, repo: SqlRepository, faults: Faults) -> None:
        self.name = name
        self.repo = repo
        self.faults = faults

    def _through(self, method: str, fn: Callable[[], Any]) -> Any:
        f = self.faults
        f.seen[method] += 1
        if f.on_call is not None:
            f.on_call(method, f.seen[method])
        if f.crash_after_calls is not None:
            if f.crash_after_calls <= 0:
                f.crash_after_calls = None
                raise Crash(self.name)
            f.crash_after_calls -= 1
        if f.down or method in f.refuse or f.seen[method] in f.fail_calls.get(method, ()):
            raise PeerUnavailableError(self.name, "connection refused")
        result = fn()
        if method in f.lose_reply:
            f.lose_reply.discard(method)
            raise PeerUnavailableError(self.name, "reply lost")
        return result

    def info(self) -> RepoInfo:
        return self._through("info", self.repo.info)  # type: ignore[no-any-return]

    def get_changes(
        self,
        since: int,
        limit: int,
        *,
        up_to: int | None = None,
        min_hlc: int = 0,
        skip_via: str = "",
    ) -> ChangePage:
        self.faults.reads.append(since)
        return self._through(  # type: ignore[no-any-return]
            "get_changes",
            lambda: self.repo.get_changes(
                since, limit, up_to=up_to, min_hlc=min_hlc, skip_via=skip_via
            ),
        )

    def apply_changes(self, **kw: Any) -> ApplyResult:
        if self.faults.duplicate_apply:
            self.faults.duplicate_apply = False
            self._through("apply_changes", lambda: self.repo.apply_changes(**kw))
        return self._through("apply_changes", lambda: self.repo.apply_changes(**kw))  # type: ignore[no-any-return]

    def cursor(self, peer_id: str, peer_epoch: str, stream: str) -> int | None:
        return self._through("cursor", lambda: self.repo.cursor(peer_id, peer_epoch, stream))  # type: ignore[no-any-return]

    def ack_cursor(self, peer_id: str, peer_epoch: str, stream: str, cursor: int) -> int:
        return self._through(  # type: ignore[no-any-return]
            "ack_cursor", lambda: self.repo.ack_cursor(peer_id, peer_epoch, stream, cursor)
        )

    def pingbacks(self, child_id: str, *, with_graveyard: bool = False) -> list[Change]:
        return self._through(  # type: ignore[no-any-return]
            "pingbacks", lambda: self.repo.pingbacks(child_id, with_graveyard=with_graveyard)
        )

    def clear_pingbacks(self, child_id: str, keys: Iterable[Key]) -> None:
        keys = list(keys)
        self._through("clear_pingbacks", lambda: self.repo.clear_pingbacks(child_id, keys))

    def digest(self, bits: int = 8) -> dict[int, str]:
        return self._through("digest", lambda: self.repo.digest(bits))  # type: ignore[no-any-return]

    def list_versions(self, bucket: int, bits: int = 8) -> list[Change]:
        return self._through(  # type: ignore[no-any-return]
            "list_versions", lambda: self.repo.list_versions(bucket, bits)
        )


class Replica:
    """One repository: a SQLite state file, reopened like a restarted daemon when asked."""

    def __init__(self, name: str, folder: Path, clock: Clock) -> None:
        self.name = name
        self.folder = folder
        self.clock = clock
        self.path = folder / f"{name}.sqlite3"
        self.faults = Faults()
        self.ledger = self._open()

    def _open(self) -> SqlLedger:
        if not self.path.exists():
            # Fixed ids, so a failing example replays exactly (origins break hlc ties).
            engine = sa.create_engine(f"sqlite:///{self.path}")
            with engine.begin() as conn:
                meta_table.create(conn)
                conn.execute(meta_table.insert().values(key="repo.id", value=f"id-{self.name}"))
                conn.execute(meta_table.insert().values(key="repo.epoch", value="epoch-0"))
            engine.dispose()
        ledger = SqlLedger(
            f"sqlite:///{self.path}", hlc=Hlc(self.clock.wall(self.name)), now=self.clock.now
        )
        if ledger.repository.name != self.name:
            ledger.repository.configure(name=self.name, cluster_id="test-cluster")
        return ledger

    @property
    def repo(self) -> SqlRepository:
        return self.ledger.repository

    def peer(self) -> FaultyPeer:
        return FaultyPeer(self.name, self.repo, self.faults)

    def snapshot_file(self, to: Path) -> None:
        self.ledger.close()  # checkpoints the WAL into the file
        shutil.copyfile(self.path, to)
        self.ledger = self._open()

    def restore(self, source: Path) -> None:
        """Replace the state by an earlier copy: a restore from backup (a new epoch)."""
        self.ledger.close()
        for suffix in ("-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(source, self.path)
        self.ledger = self._open()
        self.repo.new_epoch()

    def records(self) -> dict[Key, Change]:
        return self.repo.snapshot()

    def close(self) -> None:
        self.ledger.close()


class Fleet:
    """A parent and `n` children, synchronised by `cycle()` with faults applied per peer."""

    def __init__(self, n: int = 3, *, folder: Path | None = None) -> None:
        self._own_folder = folder is None
        self.folder = folder or Path(tempfile.mkdtemp(prefix="syncd-fleet-"))
        self.clock = Clock()
        self.parent = Replica("parent", self.folder, self.clock)
        self.children = [Replica(f"child{i}", self.folder, self.clock) for i in range(1, n + 1)]
        self.page_limit = 1000

    @property
    def replicas(self) -> list[Replica]:
        return [self.parent, *self.children]

    def by_name(self, name: str) -> Replica:
        return next(r for r in self.replicas if r.name == name)

    def rows(self, names: Sequence[str] | None = None, **times: str) -> list[ChildRow]:
        return [
            ChildRow(c.name, True, "true", f"local:{c.name}", None, times.get(c.name, ""))
            for c in self.children
            if names is None or c.name in names
        ]

    def cycle(
        self,
        rows: Sequence[ChildRow] | None = None,
        *,
        parallel: int = 1,
        anti_entropy: bool = False,
    ) -> SyncReport:
        sync = Synchronizer(
            self.parent.peer(),
            lambda row: self.by_name(row.name).peer(),
            page_limit=self.page_limit,
            backoff=Backoff(initial=0.01, maximum=0.01, attempts=3),
            wait=lambda _s: False,  # retries in tests do not wait
            parallel=parallel,
            now=self.clock.now,
            anti_entropy=anti_entropy,
        )
        return sync.run(self.rows() if rows is None else rows)

    def heal(self) -> None:
        for r in self.replicas:
            r.faults = Faults()
        self.clock.skew.clear()
        self.clock.advance(3 * 3600 * 1000)  # past any skewed clock's stamps

    def quiesce(self, max_cycles: int = 3) -> int:
        """Cycles until one moves nothing; returns how many it took."""
        for n in range(1, max_cycles + 2):
            report = self.cycle()
            assert report.status == 0, [r.as_dict() for r in report.rows]
            if not any(r.pulled or r.pushed for r in report.rows):
                return n
        raise AssertionError(f"no quiet cycle within {max_cycles + 1}")

    def close(self) -> None:
        for r in self.replicas:
            r.close()
        if self._own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)


def live(records: dict[Key, Change]) -> dict[Key, tuple[bool, dict[str, Any]]]:
    """What a reader sees: deleted keys are absent (a tombstone and no record read the same)."""
    return {k: (False, dict(c.body)) for k, c in records.items() if not c.deleted}


def counts(engine_url: str) -> dict[str, int]:  # pragma: no cover - debugging aid
    engine = sa.create_engine(engine_url)
    with engine.connect() as conn:
        tables = ["syncd_runs", "syncd_holds", "syncd_notes", "syncd_changes"]
        out = {
            t: int(conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in tables
        }
    engine.dispose()
    return out


def later(clock: Clock, minutes: float) -> None:
    clock.advance(int(timedelta(minutes=minutes).total_seconds() * 1000))
