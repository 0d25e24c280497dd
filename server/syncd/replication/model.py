"""The replicated repository's vocabulary: versions, changes, pages and the conflict rules.

A record is `(type, id)` with a version `(hlc, origin)`, a `deleted` flag (a tombstone) and a
JSON body. Versions compare by hlc, then by origin (code point order, which is UTF-8 byte
order), so every replica picks the same winner on its own. Pure values, no I/O.
"""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

# The record types, and who may write them.
JOB = "job"  # job definitions: parent-authoritative
RUN = "run"  # run records: written only by the repository that ran them
HOLD = "hold"  # pauses: last writer wins
NOTE = "note"  # operator notes on jobs and runs: last writer wins
REPO = "repo"  # a repository's own name card (id -> name): written only by itself
TYPES = (JOB, RUN, HOLD, NOTE, REPO)
OWNED = frozenset({RUN, REPO})  # only the record's origin may write it
PARENT_ONLY = frozenset({JOB})

# Streams a cursor is kept for.
FROM_PARENT = "from_parent"
FROM_CHILD = "from_child"
ACKED_BY_CHILD = "acked_by_child"
ACKED_BY_PARENT = "acked_by_parent"  # a child's copy of what its parent imported (bundles)
STREAMS = (FROM_PARENT, FROM_CHILD, ACKED_BY_CHILD, ACKED_BY_PARENT)


@dataclass(frozen=True, slots=True, order=True)
class Version:
    """A write's identity: 64-bit hybrid logical clock, then the writing repository's id."""

    hlc: int
    origin: str

    @property
    def wall_ms(self) -> int:
        return self.hlc >> 16


Key = tuple[str, str]  # (type, id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """One record's state as it travels: the whole record, never a diff."""

    type: str
    id: str
    version: Version
    deleted: bool = False
    body: Mapping[str, Any] = field(default_factory=dict)
    base: Version | None = None  # the version the writer had read (conflict audit only)
    out_of_band: bool = False  # a ping-back: applied even when its batch is a retry
    # The message this change arrived in, which a client relaying it (the cycle between two
    # daemons) sends on as it is instead of encoding it again. Not an argument: a change made
    # from this one (`dataclasses.replace`) has none, so what is sent is always what it holds.
    wire: Any = field(default=None, init=False, compare=False, repr=False)

    @property
    def key(self) -> Key:
        return (self.type, self.id)


# A frozen dataclass's __init__ sets each field through object.__setattr__ (about 1.4 µs a
# change, the largest part of decoding a page); the slots' own setters take half of that.
_CHANGE_SETTERS: tuple[Callable[[object, object], None], ...] = tuple(
    getattr(Change, f.name).__set__ for f in fields(Change)
)
_VERSION_SETTERS: tuple[Callable[[object, object], None], ...] = tuple(
    getattr(Version, f.name).__set__ for f in fields(Version)
)
assert [f.name for f in fields(Version)] == ["hlc", "origin"]
assert [f.name for f in fields(Change)] == [
    "type", "id", "version", "deleted", "body", "base", "out_of_band", "wire"
]  # fmt: skip


def version_of(hlc: int, origin: str) -> Version:
    """`Version(hlc, origin)`, for loops over a page's records."""
    version: Version = object.__new__(Version)
    set_hlc, set_origin = _VERSION_SETTERS
    set_hlc(version, hlc)
    set_origin(version, origin)
    return version


def change_of(
    type_: str,
    id_: str,
    version: Version,
    deleted: bool,
    body: Mapping[str, Any],
    base: Version | None = None,
    out_of_band: bool = False,
) -> Change:
    """`Change(...)` with every field given, for loops over a page's records."""
    change: Change = object.__new__(Change)
    s_type, s_id, s_version, s_deleted, s_body, s_base, s_oob, s_wire = _CHANGE_SETTERS
    s_type(change, type_)
    s_id(change, id_)
    s_version(change, version)
    s_deleted(change, deleted)
    s_body(change, body)
    s_base(change, base)
    s_oob(change, out_of_band)
    s_wire(change, None)
    return change


@dataclass(frozen=True, slots=True)
class ChangePage:
    # A list, or (a page read over gRPC) a sequence that builds its `Change` values only when
    # something reads them, and is sent on as the bytes it came as when it is sent whole.
    changes: Sequence[Change]
    next_cursor: int
    has_more: bool


@dataclass(frozen=True, slots=True)
class Rejected:
    key: Key
    reason: str


@dataclass(frozen=True, slots=True)
class ApplyResult:
    applied: int
    stale: list[Key]
    rejected: list[Rejected]
    stored_cursor: int
    conflicts: int = 0


@dataclass(frozen=True, slots=True)
class RepoInfo:
    repo_id: str
    name: str
    epoch: str
    cluster_id: str
    hlc_now: int
    schema_version: int
    stable_watermark: int
    gc_floor: int = 0


class Verdict(enum.Enum):
    APPLY = "apply"  # incoming is newer (or new): store it
    DUPLICATE = "duplicate"  # the same version is here already
    STALE = "stale"  # the local version is newer: the sender needs a ping-back
    REJECT = "reject"  # the sender may not write this record


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    reason: str = ""
    conflict: bool = False  # both sides wrote without seeing each other (audit only)


_APPLY_NEW = Judgement(Verdict.APPLY)  # a key with no row here: one answer, shared (most of a seed)


def judge(
    local: Version | None,
    local_origin_owner: str | None,
    incoming: Change,
    *,
    from_child: bool,
) -> Judgement:
    """The conditional upsert's decision for one incoming change (the rules of the README).

    `local_origin_owner` is, for owned types, the repository that owns the local record.
    A parent (`from_child`) refuses job definitions written on a child; anyone refuses a
    write to an owned record (a run) by a repository other than its owner.
    """
    if from_child and incoming.type in PARENT_ONLY:
        return Judgement(Verdict.REJECT, "job definitions are edited on the parent only")
    if (
        incoming.type in OWNED
        and local_origin_owner is not None
        and local_origin_owner != incoming.version.origin
    ):
        return Judgement(
            Verdict.REJECT, f"{incoming.type} {incoming.id} belongs to another repository"
        )
    if local is None:
        return _APPLY_NEW
    concurrent = incoming.base is not None and incoming.base != local and incoming.type not in OWNED
    if incoming.version > local:
        return Judgement(Verdict.APPLY, conflict=concurrent)
    if incoming.version == local:
        return Judgement(Verdict.DUPLICATE)
    return Judgement(Verdict.STALE, conflict=concurrent)


def new_id(now_ms: int | None = None) -> str:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits; time-ordered."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 68 & 0xFFF) << 64
    value |= 0b10 << 62 | rand & ((1 << 62) - 1)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
