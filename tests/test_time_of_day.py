"""Nothing depends on the time of day: the daemons that benchmarks and tests start do not catch
up, whatever the wall clock says.

The catch-up window is set to the whole day (`catch_up_window = "00:00-24:00"`), so the daemon's
clock is inside it whenever these tests run; a job's midnight slot has always passed by then.
A control daemon with catch-up on shows that this set-up would catch up; the harnesses' daemons
must not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench._daemon import bench_config
from bench.cli_latency import Daemon as LatencyDaemon
from syncd.config import load_config
from tests.daemon_process import daemon_process, e2e_config, without_catch_up

pytestmark = pytest.mark.e2e

SYNCCTL = Path(sys.executable).with_name("syncctl")
WHOLE_DAY = '[scheduler]\ncatch_up_window = "00:00-24:00"\n'
MIDNIGHT_JOB = '[jobs.QuickJob]\nat = "00:00"\n'


@pytest.fixture
def short_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="tod-") as tmp:  # unix socket paths stay short
        yield Path(tmp)


def _events(lines: list[str]) -> list[str]:
    events = []
    for line in lines:
        try:
            events.append(json.loads(line).get("event", ""))
        except (ValueError, AttributeError):
            continue
    return events


def test_the_control_daemon_does_catch_up_in_this_window(short_dir: Path) -> None:
    """With catch-up on, the whole-day window runs QuickJob's passed midnight slot at start."""
    config = e2e_config(short_dir) + WHOLE_DAY + MIDNIGHT_JOB
    with daemon_process(short_dir / "state", config) as process:
        caught = process.wait_for_event("scheduler.catch_up")
        assert caught["jobs"] == ["QuickJob"]
        assert process.stop() == 0


def test_the_bench_config_turns_catch_up_off_even_inside_the_window(tmp_path: Path) -> None:
    """bench_config keeps a benchmark's own scheduler settings and adds catch_up = false."""
    for text in ("", WHOLE_DAY, '[daemon]\nexecution = "thread"\n' + WHOLE_DAY + MIDNIGHT_JOB):
        path = tmp_path / "syncd.toml"
        path.write_text(bench_config(text))
        config = load_config(path, env={})
        assert config.scheduler.catch_up is False, text
    explicit = tmp_path / "explicit.toml"
    explicit.write_text(bench_config("[scheduler]\ncatch_up = true\n"))
    assert load_config(explicit, env={}).scheduler.catch_up is True


def test_test_daemons_do_not_catch_up_unless_a_test_configures_the_scheduler() -> None:
    """The tests' subprocess helper: off by default; a test about catch-up sets [scheduler]."""
    assert "catch_up = false" in without_catch_up(e2e_config(Path("/x")) + MIDNIGHT_JOB)
    assert without_catch_up(WHOLE_DAY) == WHOLE_DAY


def test_the_cli_latency_daemon_idles_inside_the_window(short_dir: Path) -> None:
    """bench/cli_latency's daemon, inside the window: `syncctl status` exits 0 (the bench's
    check) and the daemon's whole log shows no catch-up and no run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    env["SYNCD_HTTP_ADDRESS"] = "127.0.0.1:0"
    config = '[daemon]\npacks = ["tests.packs.sample:E2E"]\nentry_points = false\n'
    daemon = LatencyDaemon(short_dir / "state", env, config + WHOLE_DAY + MIDNIGHT_JOB)
    try:
        daemon.wait_ready()
        # The daemon decides on catch-up before it serves this call (same event loop, no await
        # in between), so once it is answered the decision is in the log.
        status = subprocess.run(
            [str(SYNCCTL), "--address", daemon.address, "status"],
            capture_output=True,
            text=True,
            env=env,
            timeout=20,
            check=False,
        )
        assert status.returncode == 0, status.stderr
        assert "QuickJob\tidle" in status.stdout
    finally:
        daemon.stop()
    events = _events(daemon.log_lines)
    assert "daemon.started" in events
    assert "scheduler.catch_up" not in events
    assert "run.started" not in events
