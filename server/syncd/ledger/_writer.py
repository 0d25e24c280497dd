"""The ledger's one writer thread, committing writes in groups.

Every write queued while the writer is busy joins the next group, and a group is written in
one transaction (`RunLedger.batch()`): a run's end, another's start and an audit row that
arrive together cost one commit, one connection check-out and one change-log counter lock
between them instead of three. Each write's future resolves only once its group has
committed, so whoever sees a write done finds it durable.

If a group fails — one write raised, or the commit did — its writes are written again one at
a time, in order, each in its own transaction: a bad write fails alone, the others land, and
a storage fault reaches each write's caller as it would have without grouping. Writes are
idempotent (the `RunLedger` contract), so writing again one that a ledger without
transactions (memory) had already applied is harmless.

Writes that must see their own effects from other connections, or that may run long (start-up
repairs, retention, a replicated batch), are queued `alone` and never share a transaction.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, TypeVar

_T = TypeVar("_T")

MAX_GROUP = 64  # bounds a group's transaction (and the rewrite of a failed one)


@dataclass(slots=True)
class _Item:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    alone: bool
    future: Future[Any] = field(default_factory=Future)


class GroupWriter:
    """One thread running queued writes in order, each group in one transaction."""

    def __init__(self, batch: Callable[[], AbstractContextManager[object]], *, name: str) -> None:
        self._batch = batch
        self._queue: deque[_Item] = deque()
        self._ready = threading.Condition()
        self._shut = False
        # A daemon thread: a normal stop drains it (`LedgerRecorder.close`); a forced exit
        # waits for it only as long as it bounds the wait.
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., _T], *args: Any, alone: bool = False) -> Future[_T]:
        """Queue `fn(*args)`; `alone` keeps it out of any group."""
        item = _Item(fn, args, alone)
        with self._ready:
            if self._shut:
                raise RuntimeError("the ledger writer is shut down")
            self._queue.append(item)
            self._ready.notify()
        return item.future

    def shutdown(self) -> None:
        """Take no more writes; the thread ends once those queued are written."""
        with self._ready:
            self._shut = True
            self._ready.notify()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _next_group(self) -> list[_Item] | None:
        with self._ready:
            while not self._queue:
                if self._shut:
                    return None
                self._ready.wait()
            group = [self._queue.popleft()]
            if not group[0].alone:
                while self._queue and not self._queue[0].alone and len(group) < MAX_GROUP:
                    group.append(self._queue.popleft())
        # A write its caller gave up on before it began is dropped, as an executor would.
        return [item for item in group if item.future.set_running_or_notify_cancel()]

    def _loop(self) -> None:
        while (group := self._next_group()) is not None:
            if len(group) == 1:
                _write_alone(group[0])
            elif group:
                self._write_group(group)

    def _write_group(self, group: list[_Item]) -> None:
        try:
            with self._batch():
                results = [item.fn(*item.args) for item in group]
        except BaseException:  # each write is written again alone, and answers for itself
            for item in group:
                _write_alone(item)
            return
        for item, result in zip(group, results, strict=True):
            item.future.set_result(result)


def _write_alone(item: _Item) -> None:
    try:
        result = item.fn(*item.args)
    except BaseException as exc:  # handed to the caller, as an executor does
        item.future.set_exception(exc)
    else:
        item.future.set_result(result)
