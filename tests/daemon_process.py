"""Start `python -m syncd` as a real subprocess and read its JSON log lines with deadlines."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SYNCD = Path(sys.executable).parent / "syncd"  # the installed console script
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
    """A daemon started as a process. Two reader threads drain its stdout and stderr from the
    start, so a chatty daemon can never block on a full pipe while a test is busy elsewhere;
    every stdout line is kept (parsed JSON in `lines`) and waited for under a condition."""

    proc: subprocess.Popen[bytes]
    state_dir: Path
    lines: list[dict[str, Any]] = field(default_factory=list)
    unparsed: list[bytes] = field(default_factory=list)
    longest: int = 0  # bytes of the longest stdout line
    _buffer: bytes = b""
    _stderr: bytearray = field(default_factory=bytearray)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _stdout_open: bool = True
    _readers: list[threading.Thread] = field(default_factory=list)
    # Written at close: the readers take what is in the pipes and stop, even while a process
    # the daemon left (a test's surviving grandchildren) still holds the pipes' other ends.
    _stop: tuple[int, int] = field(default_factory=os.pipe)
    _closed: bool = False

    def __post_init__(self) -> None:
        for target, stream in (
            (self._read_stdout, self.proc.stdout),
            (self._read_stderr, self.proc.stderr),
        ):
            if stream is not None:
                # The reader owns a duplicate of the pipe and closes it itself: closing the
                # stream here can then never hand its fd number to another pipe mid-read.
                own = os.dup(stream.fileno())
                reader = threading.Thread(target=target, args=(own,), daemon=True)
                reader.start()
                self._readers.append(reader)
        if self.proc.stdout is None:
            self._stdout_open = False

    @property
    def address(self) -> str:
        return f"unix:{self.state_dir}/run/syncd.sock"

    def wait_for_event(self, event: str, timeout: float = BOUND, **match: Any) -> dict[str, Any]:
        """The first log line with this event (and fields), waiting until the deadline. A
        field's value may be a predicate instead of the value itself.

        Every line read is kept, also those after the match: one read often brings several
        lines (a loaded machine reads late), and the next wait may be for them.
        """
        deadline = time.monotonic() + timeout
        checked = 0
        with self._changed:
            while True:
                found = self._find(checked, event, match)
                if found is not None:
                    return found
                checked = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or not self._stdout_open:
                    break
                self._changed.wait(left)
            raise AssertionError(
                f"no {event} {match} within {timeout}s; saw {self.lines[-5:]}"
                f"; events {[line.get('event') for line in self.lines]}"
                f"; unparsed {self.unparsed[-3:]}; stderr {bytes(self._stderr[-500:])!r}"
            )

    def stderr_text(self, timeout: float = BOUND) -> str:
        """What the daemon wrote to stderr; once it has exited, all of it."""
        if self.proc.poll() is not None:
            for reader in self._readers:
                reader.join(timeout)
        with self._changed:
            return self._stderr.decode(errors="replace")

    def _find(self, start: int, event: str, match: dict[str, Any]) -> dict[str, Any] | None:
        for line in self.lines[start:]:
            if line.get("event") == event and all(
                v(line.get(k)) if callable(v) else line.get(k) == v for k, v in match.items()
            ):
                return line
        return None

    def _read_stdout(self, fd: int) -> None:
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            self._take_stdout(pipe.fileno())
        with self._changed:
            self._stdout_open = False
            self._changed.notify_all()

    def _take_stdout(self, fd: int) -> None:
        for chunk in self._chunks(fd):
            with self._changed:
                *complete, self._buffer = (self._buffer + chunk).split(b"\n")
                for raw in complete:
                    self.longest = max(self.longest, len(raw))
                    try:
                        self.lines.append(json.loads(raw))
                    except json.JSONDecodeError:
                        # Kept for the failure message: a mangled line may hide the event.
                        self.unparsed.append(raw[:500])
                self._changed.notify_all()

    def _read_stderr(self, fd: int) -> None:
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            for chunk in self._chunks(pipe.fileno()):
                with self._changed:
                    self._stderr += chunk

    def stop(self, sig: int = signal.SIGTERM, timeout: float = BOUND) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def close(self) -> None:
        """After the process has ended: let the readers take what is left, then close. A second
        close does nothing."""
        if self._closed:
            return
        self._closed = True
        os.write(self._stop[1], b"x")
        for reader in self._readers:
            reader.join(BOUND)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        for end in self._stop:
            os.close(end)

    def _chunks(self, fd: int) -> Iterator[bytes]:
        """What the pipe brings, until its end of file or, once `close` asks, until it is
        empty."""
        stopping = False
        while True:
            ready, _, _ = select.select(
                [fd] if stopping else [fd, self._stop[0]], [], [], 0 if stopping else None
            )
            if fd not in ready:
                if stopping:
                    return  # asked to stop, and nothing more is waiting
                stopping = True
                continue
            chunk = _read(fd)
            if not chunk:
                return
            yield chunk


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # closed at teardown: nothing more to read
        return b""


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
    console_script: bool = False,
) -> Iterator[DaemonProcess]:
    """The daemon as a process (`python -m syncd`, or with `console_script` the installed
    `syncd` command); `env` adds variables to its environment."""
    config = state_dir.parent / "syncd.toml"
    config.write_text(without_catch_up(config_text))
    command = [str(SYNCD)] if console_script else [sys.executable, "-m", "syncd"]
    proc = subprocess.Popen(
        [*command, "--config", str(config), *args, "serve"],
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
        handle.close()


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
