"""The replication benchmark runs end to end (a small instance; figures are not judged here)."""

from __future__ import annotations

import pytest

from bench import replication


def test_the_replication_benchmark_seeds_a_child_and_prints_every_figure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--records", "3000", "--steady", "1000", "--page", "500", "--quiet", "2"]
    assert replication.main([*argv, "--backends", "sqlite"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[sqlite]")]
    assert len(lines) == 4, lines
    seed, steady = lines[1], lines[2]
    assert "seed of the child: 3,002 records" in seed  # and both repositories' name cards
    assert "steady state: 1,000 records" in steady
    assert all("records per cpu-second" in line for line in lines[:3])
