"""Process trees: parsing /proc, freezing and killing whole trees, subreaping, the durable record
and the start-up sweep of a killed predecessor's survivors."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.enums import RunOutcome, Trigger
from syncd.execution import _jobtrees, _proctree
from syncd.execution._proctree import ProcessId, wait_ended
from syncd.ledger.model import INTERRUPTED_MESSAGE, RunRecord
from syncd.ledger.recorder import LedgerRecorder
from syncd.ledger.sql import SqlLedger
from tests.daemon_process import ROOT, daemon_env

pytestmark = pytest.mark.skipif(not _proctree.has_proc(), reason="needs Linux /proc")

BOUND = 10.0


@given(
    name=st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\0")),
    pid=st.integers(1, 2**22),
    ppid=st.integers(0, 2**22),
    pgid=st.integers(0, 2**22),
    start=st.integers(0, 2**63),
    state=st.sampled_from("RSDZTtXI"),
)
def test_stat_lines_parse_whatever_the_process_name(
    name: str, pid: int, ppid: int, pgid: int, start: int, state: str
) -> None:
    """A name may hold spaces, parentheses and `)`: the fields after it still parse."""
    rest = " ".join(["0"] * 16)
    line = f"{pid} ({name}) {state} {ppid} {pgid} {rest} {start} 0 0 0\n".encode()
    stat = _proctree.parse_stat(line)
    assert (stat.name, stat.state, stat.ppid, stat.pgid, stat.start) == (
        name,
        state,
        ppid,
        pgid,
        start,
    )


def test_a_truncated_stat_line_is_refused_with_a_bounded_message() -> None:
    with pytest.raises(ValueError, match="not a /proc stat line") as info:
        _proctree.parse_stat(b"12 (x" + b"y" * 10_000)
    assert len(str(info.value)) < 200


def _sleeper(**kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "65"], **kwargs)  # type: ignore[call-overload, no-any-return]


@pytest.fixture
def reaped() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Children a test starts; killed (if need be) and reaped at the end."""
    children: list[subprocess.Popen[bytes]] = []
    yield children
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait(BOUND)
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                stream.close()


def _id(pid: int) -> ProcessId:
    proc = _proctree.identify(pid)
    assert proc is not None
    return proc


_HELPER = """
import subprocess, sys
child = subprocess.Popen(["sleep", "65"], start_new_session=True)
print(child.pid, flush=True)
sys.stdin.read()
"""


def test_a_tree_is_ended_through_a_child_in_its_own_session(
    reaped: list[subprocess.Popen[bytes]],
) -> None:
    """The helper's child left its process group and session; killing the tree still ends it."""
    helper = subprocess.Popen(
        [sys.executable, "-c", _HELPER], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    reaped.append(helper)
    assert helper.stdout is not None
    child = _id(int(helper.stdout.readline()))
    top = _id(helper.pid)
    assert child in _proctree.descendants(helper.pid)
    assert os.getpgid(child.pid) != os.getpgid(helper.pid)

    killed = _proctree.end_tree(None, include_root=False, extra=[top])

    assert set(killed) == {top, child}
    assert killed[child] == "sleep"
    assert wait_ended([top, child], BOUND) == []


def test_a_recycled_pid_is_never_killed(reaped: list[subprocess.Popen[bytes]]) -> None:
    """A recorded pid whose start time differs names another process: it is left alone."""
    sleeper = _sleeper()
    reaped.append(sleeper)
    real = _id(sleeper.pid)
    assert (
        _proctree.end_tree(None, include_root=False, extra=[ProcessId(real.pid, real.start + 1)])
        == {}
    )
    assert _proctree.is_alive(real)


def test_a_subreaper_keeps_a_double_forked_daemon_in_its_tree() -> None:
    """In a subreaper, a daemonised grandchild re-parents to it; ending the tree ends it."""
    script = f"""
import json, os, subprocess, sys
sys.path[:0] = {[str(ROOT)]!r}
from syncd.execution import _proctree
from tests.packs.sample import _DAEMONISE
assert _proctree.become_subreaper()
with subprocess.Popen([sys.executable, "-c", _DAEMONISE], stdout=subprocess.PIPE) as middle:
    grandchild = int(middle.stdout.readline())
stat = _proctree.read_stat(grandchild)
killed = _proctree.end_tree(_proctree.identify(os.getpid()), include_root=False)
print(json.dumps({{"grandchild": grandchild, "ppid": stat.ppid, "me": os.getpid(),
                  "killed": sorted(p.pid for p in killed),
                  "alive": _proctree.is_alive(_proctree.ProcessId(grandchild, stat.start))}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        timeout=BOUND,
        check=True,
        env=daemon_env(Path("/nonexistent")),
    )
    seen = json.loads(done.stdout)
    assert seen["ppid"] == seen["me"]
    assert seen["killed"] == [seen["grandchild"]]
    assert seen["alive"] is False


def test_processes_carrying_a_runs_marker_are_found(reaped: list[subprocess.Popen[bytes]]) -> None:
    run_id = f"r-{uuid.uuid4().hex}"
    marked = _sleeper(env={**os.environ, _proctree.RUN_MARKER: run_id})
    other = _sleeper(env={**os.environ, _proctree.RUN_MARKER: run_id + "x"})
    reaped += [marked, other]
    assert _proctree.marked(run_id) == [_id(marked.pid)]


def test_only_a_whole_marker_entry_marks_a_process(reaped: list[subprocess.Popen[bytes]]) -> None:
    """The marker alone in the environment counts; the same text inside another variable's
    value does not."""
    run_id = f"r-{uuid.uuid4().hex}"
    alone = _sleeper(env={_proctree.RUN_MARKER: run_id})
    quoted = _sleeper(env={**os.environ, "OTHER": f"{_proctree.RUN_MARKER}={run_id}"})
    reaped += [alone, quoted]
    assert _proctree.marked(run_id) == [_id(alone.pid)]


_PARENT = """
import json, os, signal, subprocess, sys
sys.path[:0] = {root!r}
from syncd.execution import _proctree
seen = {{"none": _proctree.has_children()}}
child = subprocess.Popen(["sleep", "65"])
seen["living"] = _proctree.has_children()
child.send_signal(signal.SIGKILL)
os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # ended, not reaped: a zombie
seen["zombie"] = _proctree.has_children()
child.wait()
seen["reaped"] = _proctree.has_children()
print(json.dumps(seen))
"""


def test_a_process_knows_whether_it_has_children_zombies_included() -> None:
    """has_children sees a living child and an unreaped one, and nothing once it is reaped."""
    out = subprocess.run(
        [sys.executable, "-c", _PARENT.format(root=[str(ROOT)])],
        capture_output=True,
        check=True,
        timeout=BOUND,
    )
    assert json.loads(out.stdout) == {
        "none": False,
        "living": True,
        "zombie": True,
        "reaped": False,
    }


def _write(directory: Path, run_id: str, procs: list[ProcessId], boot: str | None = None) -> None:
    directory.mkdir(exist_ok=True)
    record = _jobtrees.TreeRecord(
        run_id, "SomeJob", _proctree.boot_id() if boot is None else boot, tuple(procs)
    )
    _jobtrees.write_record(_jobtrees.record_path(directory, run_id), record)


def test_the_start_up_sweep_ends_recorded_survivors_only(
    tmp_path: Path, reaped: list[subprocess.Popen[bytes]]
) -> None:
    """Alive with the recorded start time and boot: killed. A recycled pid or a record of
    another boot: spared. Every record is forgotten afterwards, even an unreadable one."""
    survivor = _sleeper(start_new_session=True)
    recycled = _sleeper(start_new_session=True)
    other_boot = _sleeper(start_new_session=True)
    reaped += [survivor, recycled, other_boot]
    directory = tmp_path / _jobtrees.RECORD_DIR
    recycled_id = _id(recycled.pid)
    _write(directory, "r1", [_id(survivor.pid), ProcessId(recycled_id.pid, recycled_id.start + 7)])
    _write(directory, "r2", [_id(other_boot.pid)], boot="another-boot")
    (directory / "r3.json").write_text("{not json")

    found = _jobtrees.end_survivors(directory)

    assert [(s.run_id, s.bean) for s in found] == [("r1", "SomeJob")]
    assert found[0].processes == ((_id(survivor.pid), "sleep"),)
    assert found[0].describe() == (
        f"ended 1 process(es) the run had left running: {survivor.pid} (sleep)"
    )
    assert wait_ended([_id(survivor.pid)], BOUND) == []
    assert _proctree.is_alive(recycled_id)
    assert _proctree.is_alive(_id(other_boot.pid))
    assert list(directory.iterdir()) == []


def test_survivors_are_noted_with_the_interrupted_run(tmp_path: Path) -> None:
    ledger = SqlLedger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ledger.record_start(
        RunRecord(
            run_id="r1",
            bean="SomeJob",
            operation="run",
            trigger=Trigger.MANUAL,
            actor="test",
            started_at=now,
        )
    )
    ledger.mark_interrupted(now)
    found = [_jobtrees.Survivors("r1", "SomeJob", ((ProcessId(42, 1), "sleep"),))]

    async def note_twice() -> None:
        recorder = LedgerRecorder(ledger)
        await _jobtrees.note_survivors(recorder, found)
        await _jobtrees.note_survivors(recorder, found)  # idempotent
        await recorder.close()

    asyncio.run(note_twice())
    record = ledger.get("r1")
    assert record is not None
    assert record.outcome is RunOutcome.INTERRUPTED
    assert record.error_message == (
        f"{INTERRUPTED_MESSAGE}; ended 1 process(es) the run had left running: 42 (sleep)"
    )
    ledger.close()


def test_a_long_survivor_list_is_bounded_in_the_message() -> None:
    many = tuple((ProcessId(pid, 1), "sleep") for pid in range(100, 150))
    text = _jobtrees.Survivors("r", "J", many).describe()
    assert text.endswith("and 40 more")
    assert len(text) < 300


def test_the_watch_records_the_tree_as_it_changes(
    tmp_path: Path, reaped: list[subprocess.Popen[bytes]]
) -> None:
    path = tmp_path / "r9.json"
    seen: list[tuple[ProcessId, ...]] = []
    watch = _jobtrees.TreeWatch(path, "r9", "SomeJob", on_change=seen.append)
    watch.snapshot()
    first = _jobtrees.read_record(path)
    assert first is not None and _id(os.getpid()) in first.processes
    child = _sleeper()
    reaped.append(child)
    watch.snapshot()
    watch.snapshot()  # unchanged: not written again
    second = _jobtrees.read_record(path)
    assert second is not None and _id(child.pid) in second.processes
    assert (second.run_id, second.bean, second.boot_id) == ("r9", "SomeJob", _proctree.boot_id())
    assert len(seen) == 2
