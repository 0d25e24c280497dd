"""Anti-entropy (§3.7 steps 1 and 2): compare the parent's and a child's digests and repair the
buckets that differ, both ways, with the normal conditional apply.

It repairs what the change log cannot see: a child restored from a backup, a row edited in the
database behind the log. A pass where nothing differs costs one digest call on each side.
Repairs travel as ping-backs (`out_of_band`) in a batch that does not move any cursor, so the
usual rules decide each record: the greater version wins, a child's job definition is
overruled by the parent, an old write of a collected record brings its tombstone back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from syncd.replication._codec import chunks
from syncd.replication.model import FROM_CHILD, FROM_PARENT, ApplyResult, Change, RepoInfo

DIGEST_BITS = 8  # 256 buckets: a differing one lists about 1/256 of the records


class Repairable(Protocol):
    def digest(self, bits: int = DIGEST_BITS) -> dict[int, str]: ...
    def list_versions(self, bucket: int, bits: int = DIGEST_BITS) -> list[Change]: ...
    def apply_changes(
        self,
        *,
        source_id: str,
        source_epoch: str,
        stream: str,
        from_cursor: int,
        to_cursor: int,
        changes: Sequence[Change],
    ) -> ApplyResult: ...


@dataclass(frozen=True, slots=True)
class Repair:
    buckets: int  # buckets compared
    differing: int  # buckets whose hashes differed
    to_parent: int  # records the parent took from the child
    to_child: int  # records the child took from the parent
    refused: int  # stale or rejected on either side (ping-backs follow)


def differences(
    parent: Sequence[Change], child: Sequence[Change]
) -> tuple[list[Change], list[Change]]:
    """Of one bucket's records: (what the parent lacks or holds older, what the child does)."""
    mine = {c.key: c for c in parent}
    theirs = {c.key: c for c in child}
    up: list[Change] = []
    down: list[Change] = []
    for key in sorted(set(mine) | set(theirs)):
        p, c = mine.get(key), theirs.get(key)
        if c is not None and (p is None or c.version > p.version):
            up.append(c)
        elif p is not None and (c is None or p.version > c.version):
            down.append(p)
    return up, down


def repair(
    parent: Repairable,
    child: Repairable,
    parent_info: RepoInfo,
    child_info: RepoInfo,
    *,
    call: Callable[..., Any],
    page_limit: int = 1000,
) -> Repair:
    """One anti-entropy pass between a parent and a child; `call` makes each peer call (with
    the cycle's retries)."""
    mine: dict[int, str] = call(parent.digest, DIGEST_BITS)
    theirs: dict[int, str] = call(child.digest, DIGEST_BITS)
    differing = sorted(b for b in set(mine) | set(theirs) if mine.get(b) != theirs.get(b))
    up: list[Change] = []
    down: list[Change] = []
    for bucket in differing:
        u, d = differences(
            call(parent.list_versions, bucket, DIGEST_BITS),
            call(child.list_versions, bucket, DIGEST_BITS),
        )
        up += u
        down += d
    to_parent, refused_up = _send(call, parent, child_info, FROM_CHILD, up, page_limit)
    to_child, refused_down = _send(call, child, parent_info, FROM_PARENT, down, page_limit)
    return Repair(
        len(set(mine) | set(theirs)), len(differing), to_parent, to_child, refused_up + refused_down
    )


def _send(
    call: Callable[..., Any],
    target: Repairable,
    source: RepoInfo,
    stream: str,
    changes: list[Change],
    page_limit: int,
) -> tuple[int, int]:
    applied = refused = 0
    for page in chunks(changes, page_limit):
        # A cursor range of (0, 0] is always "already delivered": only ping-backs apply, and
        # no cursor moves, so the change log stays the only thing that advances cursors.
        result: ApplyResult = call(
            target.apply_changes,
            source_id=source.repo_id,
            source_epoch=source.epoch,
            stream=stream,
            from_cursor=0,
            to_cursor=0,
            changes=[replace(c, out_of_band=True, base=None) for c in page],
        )
        applied += result.applied
        refused += len(result.stale) + len(result.rejected)
    return applied, refused
