"""A stream's pages between two repositories: read one ahead, sent one ahead.

The cycle (`cycle.py`) reads a stream's pages from one repository and applies them on the
other, each with its cursor. Here the overlap: page n + 1 is read while page n is applied
(`Pages`), and sent before page n is answered (`relay`); the receiver's cursor rule keeps the
order, so neither changes what is stored, only when.
"""

from __future__ import annotations

import contextvars
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from syncd.errors import CursorGapError, PeerUnavailableError
from syncd.replication.model import ApplyResult, Change, ChangePage

# Pages sent and not yet answered: page n + 1 is sent while page n applies (`relay`).
IN_FLIGHT = 2


class Pages:
    """A stream's pages read one ahead: while page n is applied on the other side, page n + 1
    is read on a thread of its own.

    The read ahead is one attempt: if it fails as unreachable, the page is read again on the
    cycle's thread with the usual retries, whose waits are the ones a cancel cuts short. The
    cursor rule is the caller's and is unchanged: pages are applied in order, each with its
    cursor; a read ahead from a cursor the caller did not reach (a gap answered, a peer that
    stored more) is dropped.
    """

    def __init__(
        self,
        pool: ThreadPoolExecutor,
        call: Callable[..., Any],
        read: Callable[[int], ChangePage],
    ) -> None:
        self._pool = pool
        self._call = call
        self._read = read
        self._ahead: tuple[int, Future[ChangePage]] | None = None

    def read_ahead(self, since: int) -> None:
        context = contextvars.copy_context()  # the run's bound log fields
        self._ahead = (since, self._pool.submit(context.run, self._read, since))

    def get(self, since: int) -> ChangePage:
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            at, future = ahead
            if at == since:
                try:
                    return future.result()
                except PeerUnavailableError:
                    pass  # read again below, retried
            else:
                wait([future])
                error = future.exception()
                if error is not None and not isinstance(error, Exception):
                    raise error  # a cancel or an exit is not swallowed with the page
        page: ChangePage = self._call(self._read, since)
        return page


@contextmanager
def reading_ahead(call: Callable[..., Any], read: Callable[[int], ChangePage]) -> Iterator[Pages]:
    """One thread for the loop's reads ahead; on any exit the read in flight (bounded by its
    call's deadline) is waited for, so no read outlives the loop."""
    with ThreadPoolExecutor(1, thread_name_prefix="syncd-read-ahead") as pool:
        yield Pages(pool, call, read)


@dataclass(frozen=True, slots=True)
class _Sent:
    page: ChangePage
    count: int  # changes sent of it
    behind: bool  # sent while the page before it was unanswered
    reply: Future[ApplyResult]


def relay(
    pages: Pages,
    cursor: int,
    pick: Callable[[ChangePage], Sequence[Change]],
    send: Callable[[int, ChangePage, Sequence[Change]], ApplyResult],
    done: Callable[[ChangePage, int, ApplyResult, int], None],
) -> int:
    """Apply a stream's pages from `cursor` on the other repository, in order, each with its
    cursor; returns the cursor reached. `pick` is what to send of a page, `send` applies it,
    `done` is told of each page applied (with how many of its changes were sent) and the
    cursor after it.

    Page n + 1 is sent while page n applies (at most `IN_FLIGHT` unanswered), so the
    receiver decodes the next page while it writes this one, and the gap between two
    applies is no longer a round trip. The receiver's cursor rule keeps the order: a page
    that arrives before the one ahead of it is committed is answered with a gap, and the
    stream resumes where the receiver stands, as after any gap.
    """
    sent: deque[_Sent] = deque()
    at, last = cursor, False  # where the next page starts; whether the last one is sent
    with ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="syncd-apply") as pool:
        try:
            while True:
                if not last and len(sent) < IN_FLIGHT:
                    page = pages.get(at)
                    changes = pick(page)
                    if page.next_cursor == at and not changes:
                        last = True  # nothing more: what is in flight is awaited below
                        continue
                    last = not page.has_more
                    if not last:
                        pages.read_ahead(page.next_cursor)
                    run = contextvars.copy_context().run  # the run's bound log fields
                    reply = pool.submit(run, send, at, page, changes)
                    sent.append(_Sent(page, len(changes), bool(sent), reply))
                    at = page.next_cursor
                    continue
                if not sent:
                    return cursor
                head = sent.popleft()
                try:
                    result = head.reply.result()
                except CursorGapError as gap:
                    _settle(sent)
                    # A page sent behind another may have overtaken it: the receiver then
                    # stands where the answer to that one left it (its report is older). If
                    # it stands lower still, this page, sent again alone, says so.
                    cursor = at = max(cursor, gap.stored) if head.behind else gap.stored
                    last = False
                    continue
                cursor = max(result.stored_cursor, head.page.next_cursor)
                done(head.page, head.count, result, cursor)
        finally:
            _settle(sent)


def _settle(sent: deque[_Sent]) -> None:
    """Wait for the pages still in flight, whose answers are no longer needed; a cancel or an
    exit raised by one is not swallowed with it."""
    wait([s.reply for s in sent])
    for item in sent:
        error = item.reply.exception()
        if error is not None and not isinstance(error, Exception):
            sent.clear()
            raise error
    sent.clear()


def read_page(
    get_changes: Callable[..., ChangePage], limit: int, since: int, **options: Any
) -> ChangePage:
    return get_changes(since, limit, **options)
