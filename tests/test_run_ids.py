"""Run ids: readable, ordered by start time, and unique across every repository of a cluster."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from syncd.execution.run import new_run_id

AT = datetime(2026, 11, 22, 3, 15, 0, 123456, tzinfo=UTC)


def test_a_run_id_reads_as_its_start_to_the_millisecond_then_64_random_bits() -> None:
    assert re.fullmatch(r"20261122T031500\.123-[0-9a-f]{16}", new_run_id(AT))


def test_run_ids_sort_in_start_order_across_seconds_and_milliseconds() -> None:
    starts = [AT + timedelta(milliseconds=ms) for ms in (0, 1, 9, 10, 999, 1000, 61_000)]
    ids = [new_run_id(t) for t in reversed(starts)]
    assert sorted(ids) == ids[::-1]


def test_runs_started_in_the_same_millisecond_on_many_repositories_get_distinct_ids() -> None:
    ids = {new_run_id(AT) for _ in range(100_000)}
    assert len(ids) == 100_000


def test_a_run_id_fits_the_ledger_column() -> None:
    from syncd.ledger.schema import runs_table

    assert len(new_run_id(AT)) <= runs_table.c.run_id.type.length  # type: ignore[attr-defined]
