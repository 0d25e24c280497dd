"""`syncd check-config` and `syncd serve` through the installed console script: every bad
configuration and every unusable environment is one line on stderr naming the key or path,
exit status 2 (configuration) or 3 (environment), and never a traceback."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_process import SYNCD

BOUND = 60.0
JOB = "PersonOwnerRebuildJob"
OTHER = "PersonRecordStatusJob"


@pytest.fixture(scope="module", autouse=True)
def _installed() -> None:
    assert SYNCD.exists(), f"the console script {SYNCD} is not installed (make dev)"


def syncd(state_dir: Path, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run the installed `syncd` to its end; (exit status, stdout, stderr)."""
    run_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SYNCD_", "APPLICATION_CRON_", "ES_URLS", "RABBITMQ_"))
    }
    run_env |= {"SYNCD_STATE_DIR": str(state_dir), "SYNCD_HTTP_ADDRESS": "127.0.0.1:0"}
    run_env |= env or {}
    done = subprocess.run(
        [str(SYNCD), *argv], capture_output=True, env=run_env, timeout=BOUND, check=False
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def assert_one_line(code: int, out: str, err: str, expected_code: int, fragment: str) -> None:
    assert "Traceback" not in out + err, out + err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("syncd: "), err
    assert fragment in lines[0], err
    assert code == expected_code, err


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "syncd.toml"
    path.write_text(text)
    return path


BAD_CONFIGS = {
    "unknown job": ('[jobs.NoSuchJob]\nat = "01:00"\n', "jobs.NoSuchJob: no job named"),
    "hour 25": (f'[jobs.{JOB}]\nat = "25:00"\n', f"jobs.{JOB}.at: hour 25 is not 0-23"),
    "every 0s": (f'[jobs.{JOB}]\nevery = "0s"\n', f"jobs.{JOB}.every: an interval must be"),
    "garbage cron": (f'[jobs.{JOB}]\ncron = "garbage"\n', f"jobs.{JOB}.cron: cron needs 6"),
    "cron out of range": (f'[jobs.{JOB}]\ncron = "0 0 25 * * *"\n', f"jobs.{JOB}.cron: hour"),
    "cron never fires": (f'[jobs.{JOB}]\ncron = "0 0 0 31 2 *"\n', "never fires"),
    "dependency cycle": (
        f'[jobs.{JOB}]\nafter = ["{OTHER}"]\n[jobs.{OTHER}]\nafter = ["{JOB}"]\n',
        "dependency cycle:",
    ),
    "self dependency": (
        f'[jobs.{JOB}]\nafter = ["{JOB}"]\n',
        f"jobs.{JOB}.after: a job cannot depend on itself",
    ),
    "after unknown": (f'[jobs.{JOB}]\nafter = ["Nope"]\n', f"jobs.{JOB}.after: unknown job"),
    "keep_days nan": ("[ledger]\nkeep_days = nan\n", "ledger.keep_days"),
    "keep_days inf": ("[ledger]\nkeep_days = inf\n", "ledger.keep_days"),
    "keep_days 1e12": ("[ledger]\nkeep_days = 1e12\n", "ledger.keep_days"),
    "negative cancel_grace": (
        f"[jobs.{JOB}]\ncancel_grace = -1\n",
        f"jobs.{JOB}.cancel_grace: a duration cannot be negative",
    ),
    "infinite shutdown_grace": ("[daemon]\nshutdown_grace = inf\n", "daemon.shutdown_grace"),
    "deep nesting": (
        "[daemon]\nx = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n",
        "nested too deeply",
    ),
    "unknown key": ("[daemon]\nshutdown_grase = 3\n", "daemon.shutdown_grase: unknown key"),
    "not TOML": ("[daemon\n", "not valid TOML"),
    "bad pack setting": ("[packs.tis]\npage_size = 0\n", "packs.tis.page_size"),
    "remote listener": ('[daemon]\naddress = "10.0.0.1:7601"\n', "daemon.address"),
}
REPRODUCED = {
    "unknown job",
    "hour 25",
    "every 0s",
    "garbage cron",
    "dependency cycle",
    "self dependency",
    "after unknown",
    "keep_days nan",
    "keep_days inf",
    "keep_days 1e12",
    "deep nesting",
    "negative cancel_grace",
}


# The reproduction list runs through both commands; the rest through check-config,
# which is the same validation (the tests above show serve refuses alike).
CASES = [
    (case, command)
    for case in sorted(BAD_CONFIGS)
    for command in ("check-config", "serve")
    if command == "check-config" or case in REPRODUCED
]


@pytest.mark.parametrize(("case", "command"), CASES)
def test_a_bad_configuration_exits_2_with_one_line(
    short_tmp: Path, case: str, command: str
) -> None:
    """The same refusal, with the key path, from check-config and from serve."""
    text, fragment = BAD_CONFIGS[case]
    config = write_config(short_tmp, text)
    result = syncd(short_tmp / "state", "--config", str(config), command)
    assert_one_line(*result, 2, fragment)
    assert not (short_tmp / "state").exists()  # refused before anything was created


def test_an_unknown_command_is_a_usage_error(short_tmp: Path) -> None:
    """argparse's own usage error keeps exit status 2."""
    code, _, err = syncd(short_tmp, "no-such-command")
    assert code == 2 and "invalid choice" in err and "Traceback" not in err


def test_a_valid_configuration_is_ok(short_tmp: Path) -> None:
    """check-config names the jobs it would serve, and creates nothing."""
    config = write_config(short_tmp, f'[jobs.{JOB}]\ncancel_grace = "10s"\nat = "03:00"\n')
    code, out, err = syncd(short_tmp / "state", "--config", str(config), "check-config")
    assert (code, err) == (0, "")
    assert out.startswith("configuration ok:") and JOB in out
    assert not (short_tmp / "state").exists()


@contextlib.contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """`path` made unwritable for this user: by mode, or for root (whom modes do not stop)
    with the immutable attribute."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    try:
        subprocess.run(["chattr", "+i", str(path)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"running as root, and cannot set the immutable attribute here: {exc}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True, capture_output=True)


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A loopback port some other program is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_a_state_dir_owned_by_another_user_is_an_environment_error(short_tmp: Path) -> None:
    """Someone else's state directory is refused with exit 3 (environment), never used."""
    state = short_tmp / "state"
    state.mkdir(mode=0o700)
    os.chown(state, 65534, 65534)
    result = syncd(state, "serve")
    assert_one_line(*result, 3, f"{state}: owned by uid 65534, not by this user")


@pytest.mark.parametrize("command", ["check-config", "serve"])
class TestUnusablePaths:
    def test_a_state_dir_that_is_a_file(self, short_tmp: Path, command: str) -> None:
        """The state directory must be a directory."""
        state = short_tmp / "state"
        state.write_text("not a directory")
        result = syncd(state, command)
        assert_one_line(*result, 3, f"daemon.state_dir: {state} is not a directory")

    def test_a_state_dir_below_a_file(self, short_tmp: Path, command: str) -> None:
        """A state directory that cannot be created (its parent is a file) is named."""
        (short_tmp / "file").write_text("")
        result = syncd(short_tmp / "file" / "state", command)
        assert_one_line(*result, 3, "daemon.state_dir:")

    def test_a_log_file_that_is_a_directory(self, short_tmp: Path, command: str) -> None:
        """logging.file must name a file."""
        logs = short_tmp / "logs"
        logs.mkdir()
        config = write_config(short_tmp, f'[logging]\nfile = "{logs}"\n')
        result = syncd(short_tmp / "state", "--config", str(config), command)
        assert_one_line(*result, 3, f"logging.file: {logs} is a directory")

    def test_an_unwritable_log_file(self, short_tmp: Path, command: str) -> None:
        """A log file this user cannot write is refused at start, not at the first line."""
        log = short_tmp / "sync.log"
        log.write_text("")
        config = write_config(short_tmp, f'[logging]\nfile = "{log}"\n')
        with unwritable(log):
            result = syncd(short_tmp / "state", "--config", str(config), command)
        assert_one_line(*result, 3, f"logging.file: {log} is not writable")

    def test_an_unwritable_ledger(self, short_tmp: Path, command: str) -> None:
        """A read-only SQLite ledger is refused at start with its path."""
        state = short_tmp / "state"
        state.mkdir(mode=0o700)
        ledger = state / "ledger.sqlite3"
        ledger.write_bytes(b"")
        with unwritable(ledger):
            result = syncd(state, command)
        assert_one_line(*result, 3, f"ledger: {ledger} is not writable")


class TestWhatOnlyServingShows:
    def test_an_http_port_in_use(self, short_tmp: Path, listening_port: int) -> None:
        """serve names http.address and the address; check-config cannot know (exit 0)."""
        env = {"SYNCD_HTTP_ADDRESS": f"127.0.0.1:{listening_port}"}
        result = syncd(short_tmp / "state", "serve", env=env)
        assert_one_line(*result, 3, f"http.address: cannot listen on 127.0.0.1:{listening_port}")
        assert "address already in use" in result[2]
        assert syncd(short_tmp / "state", "check-config", env=env)[0] == 0

    def test_a_tcp_control_port_in_use(self, short_tmp: Path, listening_port: int) -> None:
        """The extra gRPC listener's port in use names daemon.tcp_address."""
        env = {"SYNCD_TCP_ADDRESS": f"127.0.0.1:{listening_port}"}
        result = syncd(short_tmp / "state", "serve", env=env)
        assert_one_line(*result, 3, "daemon.tcp_address: cannot listen on")

    def test_a_ledger_that_is_not_a_database(self, short_tmp: Path) -> None:
        """A corrupt ledger file: one line naming the ledger, exit 3."""
        state = short_tmp / "state"
        state.mkdir(mode=0o700)
        (state / "ledger.sqlite3").write_bytes(b"this is not an SQLite file" * 100)
        result = syncd(state, "serve")
        assert_one_line(*result, 3, "ledger: the run ledger cannot be opened")

    def test_a_ledger_server_that_refuses(self, short_tmp: Path) -> None:
        """A PostgreSQL ledger nobody answers for: one line naming the ledger, exit 3."""
        with socket.socket() as sock:  # a port nothing listens on once this closes
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        config = write_config(
            short_tmp, f'[ledger]\nurl = "postgresql+psycopg://syncd@127.0.0.1:{port}/syncd"\n'
        )
        result = syncd(short_tmp / "state", "--config", str(config), "serve")
        assert_one_line(*result, 3, "ledger: the run ledger cannot be opened")
