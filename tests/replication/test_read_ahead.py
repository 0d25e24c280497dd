"""Reading one page ahead (§3.4): while page n is applied on one side, page n + 1 is read from
the other, and sent before page n is answered. The cursor rule holds: a read ahead that fails
after page n was applied loses nothing, the failure is the child's, and the next cycle resumes
at the stored cursor; a page that overtakes the one before it is answered with a gap and sent
again."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from syncd.errors import CursorGapError
from syncd.replication.model import FROM_CHILD, FROM_PARENT, NOTE, ApplyResult
from tests.replication.fleet import Fleet, live
from tests.waiting import BOUND

PAGE = 3


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    f = Fleet(1)
    f.page_limit = PAGE
    yield f
    f.close()


def note(text: str) -> dict[str, str]:
    return {"body": json.dumps({"text": text, "subject": "job:A", "author": "op"})}


def readers_alive() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("syncd-read-ahead")]


def test_pages_are_read_one_ahead_of_the_apply_in_both_directions(fleet: Fleet) -> None:
    parent, child = fleet.parent, fleet.children[0]
    for i in range(10):
        child.repo.write(NOTE, f"c{i}", note("up"))
        parent.repo.write(NOTE, f"p{i}", note("down"))
    report = fleet.cycle()
    assert report.status == 0
    assert live(child.records()) == live(parent.records())
    # Each page read from the cursor the previous one ended at. A page sent ahead may overtake
    # the one before it (a loaded machine's timing): it is answered with a gap and read again
    # from where the receiver stands, a cursor read before, never one skipped or gone back past.
    for reads in (child.faults.reads, parent.faults.reads):
        firsts = list(dict.fromkeys(reads))
        assert firsts == sorted(firsts) and len(firsts) >= 4, reads
        assert len(reads) <= 2 * len(firsts), reads  # no more re-reads than pages
    assert readers_alive() == []


def test_page_two_is_read_while_page_one_is_applied_in_both_directions(fleet: Fleet) -> None:
    """The apply of the first page waits (bounded) until the read of the second has begun:
    with the reads and applies taking turns, it would wait out the bound."""
    parent, child = fleet.parent, fleet.children[0]
    for i in range(10):
        child.repo.write(NOTE, f"c{i}", note("up"))
        parent.repo.write(NOTE, f"p{i}", note("down"))
    reading = {"pull": threading.Event(), "push": threading.Event()}
    overlapped: dict[str, bool] = {}

    def on_child(method: str, n: int) -> None:
        if method == "get_changes" and n == 2:
            reading["pull"].set()
        if method == "apply_changes" and n == 1:
            overlapped["push"] = reading["push"].wait(BOUND)

    def on_parent(method: str, n: int) -> None:
        if method == "get_changes" and n == 2:
            reading["push"].set()
        if method == "apply_changes" and n == 1:
            overlapped["pull"] = reading["pull"].wait(BOUND)

    child.faults.on_call, parent.faults.on_call = on_child, on_parent
    assert fleet.cycle().status == 0
    assert overlapped == {"pull": True, "push": True}
    assert live(child.records()) == live(parent.records())


def test_a_read_ahead_that_fails_once_is_read_again_and_the_cycle_completes(
    fleet: Fleet,
) -> None:
    parent, child = fleet.parent, fleet.children[0]
    for i in range(10):
        child.repo.write(NOTE, f"c{i}", note("up"))
    child.faults.fail_calls = {"get_changes": {2}}  # the first read ahead
    report = fleet.cycle()
    assert report.status == 0, report.rows[0].error
    assert child.faults.reads[1] == child.faults.reads[2]  # the same page, read again
    assert live(parent.records()) == live(child.records())


def test_a_failed_pull_read_ahead_after_a_page_applied_loses_nothing(fleet: Fleet) -> None:
    parent, child = fleet.parent, fleet.children[0]
    for i in range(10):
        child.repo.write(NOTE, f"c{i}", note("up"))
    first = child.repo.get_changes(0, PAGE)
    # The read ahead of page 2 and every retry of it: the child is gone after page 1.
    child.faults.fail_calls = {"get_changes": set(range(2, 100))}
    report = fleet.cycle()
    assert report.status == 1
    assert report.rows[0].result == "failed" and "pull" in report.rows[0].error
    # Page 1 is applied and its cursor moved with it; nothing of page 2 arrived.
    stored = parent.repo.cursor(child.repo.repo_id, child.repo.epoch, FROM_CHILD)
    assert stored == first.next_cursor
    notes = {k for k in parent.records() if k[0] == NOTE}
    assert notes == {c.key for c in first.changes if c.type == NOTE}
    assert readers_alive() == []

    child.faults = type(child.faults)()
    assert fleet.cycle().status == 0
    assert child.faults.reads[0] == stored  # resumed at the cursor
    assert live(parent.records()) == live(child.records())


def test_a_failed_push_read_ahead_after_a_page_applied_loses_nothing(fleet: Fleet) -> None:
    parent, child = fleet.parent, fleet.children[0]
    for i in range(10):
        parent.repo.write(NOTE, f"p{i}", note("down"))
    first = parent.repo.get_changes(0, PAGE)
    parent.faults.fail_calls = {"get_changes": set(range(2, 100))}
    report = fleet.cycle()
    assert report.status == 1
    assert report.rows[0].result == "failed" and "push" in report.rows[0].error
    info = parent.repo.info()
    stored = child.repo.cursor(info.repo_id, info.epoch, FROM_PARENT)
    assert stored == first.next_cursor
    notes = {k for k in child.records() if k[0] == NOTE}
    assert notes == {c.key for c in first.changes if c.type == NOTE}
    assert readers_alive() == []

    parent.faults = type(parent.faults)()
    assert fleet.cycle().status == 0
    assert parent.faults.reads[0] == stored
    assert live(parent.records()) == live(child.records())


def test_an_apply_that_fails_while_a_page_is_read_ahead_leaves_no_reader(fleet: Fleet) -> None:
    parent, child = fleet.parent, fleet.children[0]
    for i in range(10):
        parent.repo.write(NOTE, f"p{i}", note("down"))
    child.faults.fail_calls = {"apply_changes": set(range(2, 100))}  # page 2 on
    report = fleet.cycle()
    assert report.rows[0].result == "failed" and "push" in report.rows[0].error
    assert readers_alive() == []
    child.faults = type(child.faults)()
    assert fleet.cycle().status == 0
    assert live(parent.records()) == live(child.records())


def test_page_two_is_sent_while_page_one_is_applied_in_both_directions(fleet: Fleet) -> None:
    """The apply of the first page waits (bounded) until the second page has been sent: with
    each page sent only once the one before it is answered, it would wait out the bound."""
    parent, child = fleet.parent, fleet.children[0]
    for i in range(10):
        child.repo.write(NOTE, f"c{i}", note("up"))
        parent.repo.write(NOTE, f"p{i}", note("down"))
    sending = {"pull": threading.Event(), "push": threading.Event()}
    overlapped: dict[str, bool] = {}

    def watching(phase: str) -> Any:
        def on_call(method: str, n: int) -> None:
            if method == "apply_changes" and n == 2:
                sending[phase].set()
            if method == "apply_changes" and n == 1:
                overlapped[phase] = sending[phase].wait(BOUND)

        return on_call

    child.faults.on_call, parent.faults.on_call = watching("push"), watching("pull")
    assert fleet.cycle().status == 0
    assert overlapped == {"pull": True, "push": True}
    assert live(child.records()) == live(parent.records())
    info = parent.repo.info()
    assert child.repo.cursor(info.repo_id, info.epoch, FROM_PARENT) == info.stable_watermark


def test_a_page_that_overtakes_the_one_before_it_is_answered_with_a_gap_and_sent_again(
    fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Page 2 reaches the child first (page 1 held until page 2 was answered): the child's
    cursor rule refuses it as a gap, nothing of it is stored, and it is sent again after
    page 1, so the cycle completes with nothing lost and nothing applied twice."""
    parent, child = fleet.parent, fleet.children[0]
    for i in range(10):
        parent.repo.write(NOTE, f"p{i}", note("down"))
    real = child.repo.apply_changes
    answered = threading.Event()
    calls: list[tuple[int, str]] = []

    def apply_changes(**kw: Any) -> ApplyResult:
        n = len(calls) + 1
        calls.append((kw["from_cursor"], ""))
        if n == 1:
            assert answered.wait(BOUND), "page 2 was not sent while page 1 was unanswered"
        try:
            return real(**kw)
        except CursorGapError:
            calls[n - 1] = (kw["from_cursor"], "gap")
            raise
        finally:
            if n == 2:
                answered.set()

    monkeypatch.setattr(child.repo, "apply_changes", apply_changes)
    report = fleet.cycle()
    assert report.status == 0, report.rows[0].error
    assert calls[1][1] == "gap"  # page 2, before page 1 was stored
    stored = [start for start, answer in calls if answer != "gap"]
    assert calls[1][0] in stored  # page 2 again, from the cursor page 1 left
    assert stored == sorted(set(stored))  # each page stored once, in order
    # Every record of the parent's but the child's own name card (pulled), applied once.
    assert report.rows[0].pushed == len(parent.records()) - 1
    assert live(child.records()) == live(parent.records())
