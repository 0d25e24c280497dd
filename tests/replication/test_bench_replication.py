"""The replication benchmark runs end to end (a small instance; figures are not judged here):
as deployed (parent and child daemons as processes on TCP, the cycle in the benchmark's
process) and in one process."""

from __future__ import annotations

import pytest

from bench import replication


def test_the_replication_benchmark_seeds_a_child_and_prints_every_figure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--records", "3000", "--steady", "1000", "--page", "500", "--quiet", "2"]
    assert replication.main([*argv, "--backends", "sqlite"]) == 0
    out = capsys.readouterr().out.splitlines()
    for mode in ("daemons", "one-process"):
        lines = [line for line in out if line.startswith(f"[sqlite {mode}]")]
        assert len(lines) == 4, lines
        seed, steady = lines[1], lines[2]
        assert "seed of the child: 3,002 records" in seed  # and both repositories' name cards
        assert "steady state: 1,000 records" in steady
        assert all("records per cpu-second" in line for line in lines[:3])
        assert "no-change cycle: median" in lines[3]
