"""SynchronizeJobData: pull every connected child into the parent, then push the consolidated
changes to every child; one status and one table row per child.

The cycle talks to the parent and the children through `Peer` alone (a local repository, or a
gRPC client), so the same code runs in the daemon and in the in-process tests. Each child is
handled on its own: a child that fails is reported and the others carry on. Nothing is lost
on any failure: every batch moves its cursor in the same transaction as its data, so a retry
or the next cycle re-sends at most what was not committed.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog

from syncd.errors import PeerUnavailableError, SyncdError
from syncd.replication._streams import Pages, read_page, reading_ahead, relay
from syncd.replication.antientropy import Repairable, repair
from syncd.replication.children import ChildRow
from syncd.replication.model import (
    ACKED_BY_CHILD,
    ACKED_BY_PARENT,
    FROM_CHILD,
    FROM_PARENT,
    ApplyResult,
    Change,
    ChangePage,
    Key,
    RepoInfo,
    Version,
)
from syncd.retry import Backoff, retrying

log = structlog.get_logger("syncd.replication")

OK, FAILED, SKIPPED = "ok", "failed", "skipped"


class Peer(Repairable, Protocol):
    """What the cycle needs of a repository (`SqlRepository` is one; so is the gRPC client):
    what a repair needs (digest, versions, apply) and the exchange's reads and cursors."""

    def info(self) -> RepoInfo: ...
    def get_changes(
        self,
        since: int,
        limit: int,
        *,
        up_to: int | None = None,
        min_hlc: int = 0,
        skip_via: str = "",
    ) -> ChangePage: ...
    def cursor(self, peer_id: str, peer_epoch: str, stream: str) -> int | None: ...
    def ack_cursor(self, peer_id: str, peer_epoch: str, stream: str, cursor: int) -> int: ...
    def pingbacks(self, child_id: str, *, with_graveyard: bool = False) -> list[Change]: ...
    def clear_pingbacks(self, child_id: str, keys: Iterable[Key]) -> None: ...


@dataclass(slots=True)
class ChildResult:
    """One row of the output table."""

    child_repository: str
    connected: str
    url: str
    result: str = OK
    last_sync_time: str = ""
    pulled: int = 0
    pushed: int = 0
    stale_or_rejected: int = 0
    conflicts: int = 0
    pull_cursor: int = 0
    push_cursor: int = 0
    repaired: int = 0  # records an anti-entropy pass fixed (both ways)
    error: str = ""
    warning: str = ""
    duration_ms: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class SyncReport:
    status: int  # 0 all connected children synced, 1 some failed, 2 nothing done
    rows: list[ChildResult]
    parent_error: str = ""


@dataclass(slots=True)
class _Child:
    row: ChildRow
    result: ChildResult
    peer: Peer | None = None
    info: RepoInfo | None = None
    sent: set[tuple[Key, Version]] = field(default_factory=set)
    started: float = 0.0
    pulled_to: int | None = None  # where the parent's cursor of this child's log stands
    restored: bool = False  # a known child under a new epoch: compared after the push


def _transient(exc: BaseException) -> str | None:
    return "unavailable" if isinstance(exc, PeerUnavailableError) else None


class Synchronizer:
    """Runs cycles between one parent and the children named in each call."""

    def __init__(
        self,
        parent: Peer,
        connect: Callable[[ChildRow], Peer],
        *,
        page_limit: int = 1000,
        backoff: Backoff | None = None,
        wait: Callable[[float], bool] | None = None,
        parallel: int = 4,
        safety_margin: timedelta = timedelta(hours=24),
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        anti_entropy: bool = False,
    ) -> None:
        self._parent = parent
        self._connect = connect
        self._limit = page_limit
        self._backoff = backoff or Backoff(initial=0.2, maximum=5.0, attempts=4)
        self._wait = wait
        self._parallel = parallel
        self._margin = safety_margin
        self._now = now
        self._monotonic = monotonic
        self._anti_entropy = anti_entropy  # compare every child's digest this cycle

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One peer call, retried on UNAVAILABLE-like failures; anything else is raised."""
        work = functools.partial(fn, *args, **kwargs)
        if self._wait is None:
            return retrying(work, backoff=self._backoff, transient=_transient)
        return retrying(work, backoff=self._backoff, transient=_transient, wait=self._wait)

    def _each(self, children: list[_Child], work: Callable[[_Child], None]) -> None:
        if self._parallel <= 1 or len(children) <= 1:
            for child in children:
                work(child)
            return
        with ThreadPoolExecutor(min(self._parallel, len(children))) as pool:
            list(pool.map(work, children))

    def run(self, rows: Sequence[ChildRow]) -> SyncReport:
        children = [
            _Child(
                row,
                ChildResult(
                    row.name,
                    row.connected_text,
                    row.url,
                    last_sync_time=row.last_sync_text,
                    result=OK if row.connected else SKIPPED,
                ),
            )
            for row in rows
        ]
        active = [c for c in children if c.row.connected]
        for child in children:
            if not child.row.connected:
                child.result.warning = f"connected is {child.row.connected_text!r}, not true"
        try:
            parent_info = self._call(self._parent.info)
        except SyncdError as exc:
            for child in active:
                child.result.result, child.result.error = FAILED, f"parent unreachable: {exc}"
            log.error("replication.parent_unreachable", error=str(exc))
            return SyncReport(2, [c.result for c in children], str(exc))
        self._each(active, lambda c: self._preflight(c, parent_info))
        reachable = [c for c in active if c.info is not None]
        via = f"{parent_info.repo_id}:{parent_info.epoch}"
        self._each(reachable, lambda c: self._guard(c, "pull", lambda: self._pull(c, via)))
        try:
            watermark = self._call(self._parent.info).stable_watermark
        except SyncdError as exc:
            for child in reachable:
                self._fail(child, "push", exc)
            return SyncReport(1, [c.result for c in children], str(exc))
        self._each(
            reachable,
            lambda c: self._guard(c, "push", lambda: self._push(c, parent_info, watermark)),
        )
        self._each(
            [c for c in reachable if c.result.result == OK and (self._anti_entropy or c.restored)],
            lambda c: self._guard(c, "repair", lambda: self._repair(c, parent_info)),
        )
        for child in active:
            child.result.duration_ms = int((self._monotonic() - child.started) * 1000)
            log.info("replication.child_synced", **child.result.as_dict())
        status = 0 if all(c.result.result == OK for c in active) else 1
        return SyncReport(status, [c.result for c in children])

    def _fail(self, child: _Child, phase: str, exc: BaseException) -> None:
        child.result.result = FAILED
        message = f"{phase}: {exc}"
        child.result.error = f"{child.result.error}; {message}" if child.result.error else message
        log.warning("replication.child_failed", child=child.row.name, phase=phase, error=str(exc))

    def _guard(self, child: _Child, phase: str, work: Callable[[], None]) -> None:
        try:
            work()
        except SyncdError as exc:
            self._fail(child, phase, exc)

    def _preflight(self, child: _Child, parent: RepoInfo) -> None:
        child.started = self._monotonic()
        try:
            child.peer = self._connect(child.row)
            info: RepoInfo = self._call(child.peer.info)
        except SyncdError as exc:
            self._fail(child, "connect", exc)
            return
        if info.repo_id == parent.repo_id:
            self._fail(child, "connect", SyncdError("the child is the parent repository itself"))
            return
        if parent.cluster_id and info.cluster_id and info.cluster_id != parent.cluster_id:
            problem = f"cluster {info.cluster_id!r} is not the parent's {parent.cluster_id!r}"
            self._fail(child, "connect", SyncdError(problem))
            return
        if info.schema_version != parent.schema_version:
            problem = (
                f"schema version {info.schema_version}, the parent's is {parent.schema_version}"
            )
            self._fail(child, "connect", SyncdError(problem))
            return
        child.info = info

    def _first_hlc(self, row: ChildRow) -> int:
        """With no cursor yet, the old tool's last_sync_time (less a margin) bounds the first
        pass; without a usable one, everything is sent (a full, idempotent pass)."""
        if row.last_sync_time is None:
            return 0
        return max(0, int((row.last_sync_time - self._margin).timestamp() * 1000)) << 16

    def _pull(self, child: _Child, via: str) -> None:
        assert child.peer is not None and child.info is not None
        peer, info = child.peer, child.info
        stored = self._call(self._parent.cursor, info.repo_id, info.epoch, FROM_CHILD)
        cursor = stored or 0
        min_hlc = self._first_hlc(child.row) if stored is None else 0
        if stored is None:
            # New to us under this epoch, yet it knows us: restored from a backup (or its
            # store was replaced). The change log cannot show what it lost: compare digests.
            parent_id, parent_epoch = via.split(":", 1)
            child.restored = (
                self._call(peer.cursor, parent_id, parent_epoch, FROM_PARENT) is not None
            )
        read = functools.partial(
            read_page, peer.get_changes, self._limit, min_hlc=min_hlc, skip_via=via
        )
        with reading_ahead(self._call, read) as pages:
            self._pull_pages(child, pages, cursor)

    def _pull_pages(self, child: _Child, pages: Pages, cursor: int) -> None:
        assert child.info is not None
        info = child.info

        def done(page: ChangePage, count: int, result: ApplyResult, cursor: int) -> None:
            log.info(
                "replication.page",
                child=child.row.name,
                phase="pull",
                cursor=page.next_cursor,
                changes=count,
            )
            child.sent.update((c.key, c.version) for c in page.changes)
            child.result.pulled += result.applied
            child.result.stale_or_rejected += len(result.stale) + len(result.rejected)
            child.result.conflicts += result.conflicts
            if result.rejected:
                child.result.warning = (
                    f"{len(result.rejected)} change(s) refused by the parent and sent back"
                    f" (first: {result.rejected[0].reason})"
                )
            child.result.pull_cursor = cursor

        send = self._sender(self._parent, info, FROM_CHILD)
        child.pulled_to = relay(pages, cursor, lambda page: page.changes, send, done)

    def _push(self, child: _Child, parent: RepoInfo, watermark: int) -> None:
        assert child.peer is not None and child.info is not None
        peer, info = child.peer, child.info
        stored = self._call(peer.cursor, parent.repo_id, parent.epoch, FROM_PARENT)
        cursor = stored or 0
        min_hlc = self._first_hlc(child.row) if stored is None else 0
        # A child behind the parent's gc floor missed tombstones that are gone from the log:
        # it is sent every collected tombstone (its newer writes win over them).
        behind = stored is None or stored < parent.gc_floor
        pingbacks: list[Change] = self._call(
            self._parent.pingbacks, info.repo_id, with_graveyard=behind and parent.gc_floor > 0
        )
        read = functools.partial(
            read_page, self._parent.get_changes, self._limit, up_to=watermark, min_hlc=min_hlc
        )
        with reading_ahead(self._call, read) as pages:
            cursor = self._push_pages(child, parent, pages, cursor, pingbacks)
        if pingbacks:  # a collected tombstone has no ping-back row: clearing it is a no-op
            self._call(self._parent.clear_pingbacks, info.repo_id, [c.key for c in pingbacks])
        self._call(self._parent.ack_cursor, info.repo_id, info.epoch, ACKED_BY_CHILD, cursor)
        if child.pulled_to:
            # The child's receipt of what the parent holds of its log: its tombstones there
            # may be collected (after the retention), and its next bundle starts above it.
            self._call(
                peer.ack_cursor, parent.repo_id, parent.epoch, ACKED_BY_PARENT, child.pulled_to
            )
        child.result.last_sync_time = self._now().isoformat(timespec="seconds")

    def _push_pages(
        self,
        child: _Child,
        parent: RepoInfo,
        pages: Pages,
        cursor: int,
        pingbacks: list[Change],
    ) -> int:
        assert child.peer is not None
        peer = child.peer

        def pick(page: ChangePage) -> Sequence[Change]:
            # Echo suppression: what this child sent in this cycle it holds already.
            sent = child.sent
            tail = pingbacks if not page.has_more else []  # ping-backs go with the last page
            if not sent and not tail:
                return page.changes  # nothing to leave out or add: the page as it came
            return [c for c in page.changes if (c.key, c.version) not in sent] + tail

        def done(page: ChangePage, count: int, result: ApplyResult, cursor: int) -> None:
            log.info(
                "replication.page",
                child=child.row.name,
                phase="push",
                cursor=page.next_cursor,
                changes=count,
            )
            child.result.pushed += result.applied
            child.result.push_cursor = cursor

        return relay(pages, cursor, pick, self._sender(peer, parent, FROM_PARENT), done)

    def _sender(
        self, target: Peer, source: RepoInfo, stream: str
    ) -> Callable[[int, ChangePage, Sequence[Change]], ApplyResult]:
        """How a page goes to `target`: applied there as `source`'s changes on `stream`."""

        def send(start: int, page: ChangePage, changes: Sequence[Change]) -> ApplyResult:
            result: ApplyResult = self._call(
                target.apply_changes,
                source_id=source.repo_id,
                source_epoch=source.epoch,
                stream=stream,
                from_cursor=start,
                to_cursor=page.next_cursor,
                changes=changes,
            )
            return result

        return send

    def _repair(self, child: _Child, parent: RepoInfo) -> None:
        assert child.peer is not None and child.info is not None
        done = repair(
            self._parent, child.peer, parent, child.info, call=self._call, page_limit=self._limit
        )
        child.result.repaired += done.to_parent + done.to_child
        child.result.stale_or_rejected += done.refused
        log.info(
            "replication.anti_entropy",
            child=child.row.name,
            restored=child.restored,
            buckets=done.buckets,
            differing=done.differing,
            to_parent=done.to_parent,
            to_child=done.to_child,
            refused=done.refused,
        )
