"""Start `python -m syncd` as a real subprocess and read its JSON log lines with deadlines."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BOUND = 20.0


def without_catch_up(config_text: str) -> str:
    """`config_text` with start-up catch-up off unless it has a `[scheduler]` table of its own.

    Started between 00:00 and 07:00 UTC (the catch-up window), a daemon runs every job whose
    slot tonight has passed; a test would then see runs it did not ask for, depending on the
    hour. A test about catch-up configures the scheduler itself (e.g. a 24-hour window).
    """
    if re.search(r"^\[scheduler\][ \t]*$", config_text, re.MULTILINE):
        return config_text
    return f"{config_text.rstrip()}\n[scheduler]\ncatch_up = false\n".lstrip()


@dataclass
class DaemonProcess:
    proc: subprocess.Popen[bytes]
    state_dir: Path
    lines: list[dict[str, Any]] = field(default_factory=list)
    unparsed: list[bytes] = field(default_factory=list)
    _buffer: bytes = b""

    @property
    def address(self) -> str:
        return f"unix:{self.state_dir}/run/syncd.sock"

    def wait_for_event(self, event: str, timeout: float = BOUND, **match: Any) -> dict[str, Any]:
        """The first log line with this event (and fields), reading stdout until the deadline.

        Every line read is kept, also those after the match in the same read: one read often
        brings several lines (a loaded machine reads late), and the next wait may be for them.
        """
        found = self._find(0, event, match)
        if found is not None:
            return found
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while (left := deadline - time.monotonic()) > 0 and sel.select(left):
                checked = len(self.lines)
                if not self._read_lines():
                    break
                found = self._find(checked, event, match)
                if found is not None:
                    return found
        raise AssertionError(
            f"no {event} {match} within {timeout}s; saw {self.lines[-5:]}"
            f"; events {[line.get('event') for line in self.lines]}; unparsed {self.unparsed[-3:]}"
        )

    def _find(self, start: int, event: str, match: dict[str, Any]) -> dict[str, Any] | None:
        for line in self.lines[start:]:
            if line.get("event") == event and all(line.get(k) == v for k, v in match.items()):
                return line
        return None

    def _read_lines(self) -> bool:
        """Read what stdout has and keep each complete line; False once stdout has closed."""
        assert self.proc.stdout is not None
        chunk = os.read(self.proc.stdout.fileno(), 65536)
        if not chunk:
            return False
        *complete, self._buffer = (self._buffer + chunk).split(b"\n")
        for raw in complete:
            try:
                self.lines.append(json.loads(raw))
            except json.JSONDecodeError:
                # Kept for the failure message: a mangled line may hide the event.
                self.unparsed.append(raw[:500])
        return True

    def stop(self, sig: int = signal.SIGTERM, timeout: float = BOUND) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def daemon_env(state_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["SYNCD_STATE_DIR"] = str(state_dir)
    env["SYNCD_HTTP_ADDRESS"] = "127.0.0.1:0"  # never collide with a running daemon's 8101
    env.pop("SYNCD_ADDRESS", None)
    return env


@contextmanager
def daemon_process(
    state_dir: Path,
    config_text: str = "",
    *args: str,
    wait_ready: bool = True,
    env: dict[str, str] | None = None,
) -> Iterator[DaemonProcess]:
    """The daemon as a process; `env` adds variables to its environment."""
    config = state_dir.parent / "syncd.toml"
    config.write_text(without_catch_up(config_text))
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd", "--config", str(config), *args, "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=daemon_env(state_dir) | (env or {}),
        cwd=ROOT,
    )
    handle = DaemonProcess(proc, state_dir)
    try:
        if wait_ready:
            handle.wait_for_event("daemon.started")
        yield handle
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(BOUND)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def e2e_config(gate_dir: Path, **daemon: str) -> str:
    extra = "".join(f"{k} = {v}\n" for k, v in daemon.items())
    return (
        "[daemon]\n"
        'packs = ["tests.packs.sample:E2E"]\n'
        "entry_points = false\n"
        f"{extra}"
        "[packs.e2e]\n"
        f'gate_dir = "{gate_dir}"\n'
    )
