"""Every command the README shows, run through the installed console scripts as written.

The commands are read from the README itself (code blocks and inline code, tables included),
so a command that exists only in the docs fails here. Concrete commands run for real, in README
order, against a daemon started as `make run` starts it (`syncd serve --seed-demo`, the embedded
demo data); syntax lines with placeholders (`<bean>`, `[--wait]`, `N`) are checked against the
command's `--help`: the subcommand exists and every option they show is accepted. `make`
targets are checked with `make -n`, which proves the target exists without running it.
"""

from __future__ import annotations

import os
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from syncd_api.v1 import management_pb2 as pb
from syncd_api.v1 import management_pb2_grpc as pb_grpc
from tests.daemon_process import BOUND, ROOT, DaemonProcess, daemon_env

pytestmark = pytest.mark.e2e

README = ROOT / "README.md"
VENV_BIN = Path(sys.executable).parent
TOOLS = ("syncd", "syncctl", "make")
# Words the README uses as placeholders in syntax lines, besides <x>, [x], … and CAPITALS.
PLACEHOLDER_WORDS = {"Bean", "op", "arg1", "arg2"}
# Commands that follow the daemon until stopped: run, read a first line, then Ctrl-C.
FOLLOWING = {("logs", "-f"), ("watch",)}
# The daemon itself: the fixture runs it for real (`syncd serve --seed-demo`, as `make run`
# does); a second one on the same state directory would only meet the instance lock.
SERVING = {("serve",), ("serve", "--seed-demo")}


def _code_fragments(text: str) -> list[str]:
    """Lines of fenced code blocks, then inline code spans, in README order."""
    fragments: list[tuple[int, str]] = []
    for block in re.finditer(r"```[^\n]*\n(.*?)```", text, re.S):
        fragments += [(block.start(), line) for line in block.group(1).splitlines()]
    prose = re.sub(r"```.*?```", lambda m: " " * len(m.group(0)), text, flags=re.S)
    fragments += [(m.start(), m.group(1)) for m in re.finditer(r"`([^`\n]+)`", prose)]
    return [fragment for _, fragment in sorted(fragments)]


def readme_commands() -> list[str]:
    """Every `syncd …`, `syncctl …` and `make …` the README shows, once each, in order."""
    found: list[str] = []
    for fragment in _code_fragments(README.read_text(encoding="utf-8")):
        fragment = fragment.split(" # ")[0].strip()
        for match in re.finditer(
            r"(?:^|(?<=\$\()|(?<=\s))((?:\.venv/bin/)?(?:syncd|syncctl|make)\b[^#)]*)", fragment
        ):
            command = match.group(1).strip()
            # A bare `syncd` is the package's name in prose, not a command.
            if len(command.split()) < 2 or command in found:
                continue
            if command.split()[0].rsplit("/", 1)[-1] in TOOLS:
                found.append(command)
    return found


def is_template(argv: list[str]) -> bool:
    joined = " ".join(argv)
    if re.search(r"<[^>]*>|\[[^\]]*\]|…", joined):
        return True
    return any(word in PLACEHOLDER_WORDS or re.fullmatch(r"[A-Z]+", word) for word in argv[1:])


@dataclass
class Demo:
    process: DaemonProcess
    workdir: Path  # the "repository": .venv/bin/… resolves to the installed scripts
    env: dict[str, str]

    def shell(self, command: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", command],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=self.workdir,
            env=self.env,
            timeout=120,
            check=False,
        )

    def settle(self) -> None:
        """Wait, by following each run to its end, until no bean is running."""
        with grpc.insecure_channel(self.process.address) as channel:
            stub = pb_grpc.ManagementStub(channel)
            for bean in stub.GetStatus(pb.GetStatusRequest(), timeout=BOUND).beans:
                if bean.current_run.run_id:
                    request = pb.WatchRunRequest(run_id=bean.current_run.run_id)
                    for _ in stub.WatchRun(request, timeout=120):
                        pass


def subcommand(argv: list[str]) -> list[str]:
    """The subcommand words of a syntax line: the leading plain words after the tool."""
    words: list[str] = []
    for word in argv[1:]:
        if not re.fullmatch(r"[a-z][a-z-]*", word) or word in PLACEHOLDER_WORDS:
            break
        words.append(word)
    return words


def options(command: str) -> list[str]:
    return re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", command)


class Stream:
    """A following command (`logs -f`, `watch`) run as written; lines read with deadlines."""

    def __init__(self, demo: Demo, command: str) -> None:
        self.proc = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=demo.workdir,
            env=demo.env,
        )

    def line(self, timeout: float) -> bytes | None:
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                return None
        return self.proc.stdout.readline() or None

    def interrupt(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(BOUND)
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read().decode()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(BOUND)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    """The daemon as `make run` starts it (`syncd serve --seed-demo`, installed script), on its
    own state directory. The timetable and the start-up catch-up are off, so only the README's
    commands run jobs, whatever the time of day."""
    root = Path(tempfile.mkdtemp(prefix="sc-readme-"))
    state = root / "state"
    workdir = root / "repo"
    workdir.mkdir()
    (workdir / ".venv").symlink_to(VENV_BIN.parent)
    (workdir / "runbook.txt").write_text(
        "bean sync.mbean:name=PersonOwnerRebuildJob\nrun isCurrentlyRunning\n"
    )
    config = root / "syncd.toml"
    config.write_text("[scheduler]\nenabled = false\ncatch_up = false\n")
    env = daemon_env(state)
    env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", "")])
    proc = subprocess.Popen(
        [str(VENV_BIN / "syncd"), "--config", str(config), "serve", "--seed-demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=workdir,
    )
    process = DaemonProcess(proc, state)
    try:
        process.wait_for_event("daemon.started", timeout=120)  # seeding comes first
        drain = threading.Thread(target=_drain, args=(proc,), daemon=True)
        drain.start()
        yield Demo(process, workdir, env)
        assert process.stop() == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(BOUND)
        process.close()
        shutil.rmtree(root, ignore_errors=True)


def _drain(proc: subprocess.Popen[bytes]) -> None:
    """Read the daemon's stdout to its end, so its log lines never fill the pipe."""
    try:
        while proc.stdout is not None and os.read(proc.stdout.fileno(), 65536):
            pass
    except (OSError, ValueError):
        return


def test_the_readme_shows_the_commands_this_test_runs() -> None:
    """The extraction finds the README's set-up and operator commands (it cannot go blind)."""
    commands = readme_commands()
    for expected in ("make run", "make test", "syncctl status", "syncd check-config"):
        assert any(c.endswith(expected) for c in commands), (expected, commands)
    assert len(commands) > 30


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_works_as_written(demo: Demo, command: str) -> None:
    argv = shlex.split(command)
    tool = Path(argv[0]).name
    if tool == "make":
        # `make -n` proves the target exists without running the daemon or the suite again.
        result = subprocess.run(
            ["make", "-n", *argv[1:]], cwd=ROOT, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        return
    if is_template(argv):
        _check_syntax(demo, tool, command, argv)
        return
    if tool == "syncd" and tuple(argv[1:]) in SERVING:
        _check_syntax(demo, tool, command, argv)
        return
    if tuple(argv[1:]) in FOLLOWING:
        _check_following(demo, command, argv)
        return
    result = demo.shell(command)
    if result.returncode == 2 and len(argv) == 2:
        # A bare subcommand named in prose ("`syncctl run` piped prints …"): it must exist.
        _check_syntax(demo, tool, command, argv)
        return
    assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    demo.settle()


def _check_syntax(demo: Demo, tool: str, command: str, argv: list[str]) -> None:
    words = subcommand(argv)
    result = demo.shell(shlex.join([tool, *words, "--help"]))
    assert result.returncode == 0, (command, result.stderr[-2000:])
    for option in options(command):
        assert re.search(rf"(?<![\w-]){re.escape(option)}\b", result.stdout), (
            f"{command!r} shows {option}, which `{tool} {' '.join(words)} --help` lacks"
        )


def _check_following(demo: Demo, command: str, argv: list[str]) -> None:
    stream = Stream(demo, command)
    try:
        if argv[1] == "logs":
            # The backlog comes first: a line proves the follower is attached and printing.
            assert stream.line(BOUND) is not None, command
        else:
            # WatchEvents says nothing when it attaches: pause and resume until the watcher
            # prints an event.
            with grpc.insecure_channel(demo.process.address) as channel:
                stub = pb_grpc.ManagementStub(channel)
                for _ in range(100):
                    stub.Pause(pb.PauseRequest(bean="PersonOwnerRebuildJob"), timeout=BOUND)
                    stub.Resume(pb.PauseRequest(bean="PersonOwnerRebuildJob"), timeout=BOUND)
                    if stream.line(0.2) is not None:
                        break
                else:
                    raise AssertionError(f"{command!r} printed no event")
        code, stderr = stream.interrupt()
        assert code in (0, 130), (command, stderr[-2000:])
        assert "Traceback" not in stderr
    finally:
        stream.close()


def test_every_test_the_readme_cites_exists() -> None:
    """The reliability table names its proofs: each cited file and test name must exist."""
    text = README.read_text(encoding="utf-8")
    cited = re.findall(r"`(tests/[\w/]+\.py)((?:::\w+)*)`", text)
    assert len(cited) >= 10
    for path, names in cited:
        source = ROOT / path
        assert source.is_file(), path
        body = source.read_text(encoding="utf-8")
        for name in filter(None, names.split("::")):
            assert re.search(rf"\b(def|class) {name}\b", body), f"{path}::{name}"
