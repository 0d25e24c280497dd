"""The old service's names for the tis beans work wherever a bean is named: every syncctl
command, a jmxterm runbook in `syncctl shell`, the console's JSON API and the old REST API.
They are aliases of the one bean, listed with it, never beans of their own."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from syncctl import cli
from syncd.config import HttpConfig, SchedulerConfig
from syncd.job import JobSpec, PackContext
from syncd_tis import PACK, TisSettings
from syncd_tis._db import make_engine
from syncd_tis._schema import create_schema
from syncd_tis._settings import embedded_url
from tests.harness import Running, running_daemon
from tests.web._support import call, console_session, console_url, csrf

# Old name → the bean it denotes (reference: the old timetable and JMX names).
OLD_NAMES = {
    "PersonElasticSearchSyncJob": "PersonElasticSearchJob",
    "PostElasticSearchSyncJob": "PostElasticSearchJob",
    "PersonPlacementEmployingBodyJob": "PersonPlacementEmployingBodyTrustJob",
}
BOUND = 30.0


def _pack_specs(state_dir: Path) -> list[JobSpec]:
    return list(PACK.build(PackContext(state_dir=state_dir, settings=TisSettings())))


def _empty_source(state_dir: Path) -> None:
    """The embedded source with the schema and no rows: jobs run, and succeed, at once."""
    url = embedded_url(state_dir)
    engine = make_engine(url, TisSettings(source_url=url))
    try:
        create_schema(engine)
    finally:
        engine.dispose()


async def syncctl(running: Running, *argv: str, stdin: str = "") -> tuple[int, str, str]:
    """The CLI, in a worker thread (its gRPC calls block), against the in-process daemon."""
    out, err = io.StringIO(), io.StringIO()
    args = [*argv] if argv[0] == "shell" else [*argv, "--address", running.address]

    def call_cli() -> int:
        return cli.run(
            args,
            stdout=out,
            stderr=err,
            stdin=io.StringIO(stdin),
            environ={"SYNCD_ADDRESS": running.address},
            tty=False,
        )

    async with asyncio.timeout(BOUND):
        code = await asyncio.to_thread(call_cli)
    return code, out.getvalue(), err.getvalue()


def _serve(state_dir: Path, http: bool = False) -> AbstractAsyncContextManager[Running]:
    state_dir.mkdir(parents=True, exist_ok=True)
    _empty_source(state_dir)
    return running_daemon(
        state_dir,
        _pack_specs(state_dir),
        scheduler=SchedulerConfig(enabled=False, catch_up=False),
        http=HttpConfig(address="127.0.0.1:0" if http else ""),
    )


def test_the_pack_declares_the_old_names_as_aliases(tmp_path: Path) -> None:
    specs = PACK.build(PackContext(state_dir=tmp_path, settings=None))
    declared = {alias: s.name for s in specs for alias in s.aliases}
    assert declared == OLD_NAMES


def test_beans_and_info_list_aliases_with_their_bean(short_tmp: Path) -> None:
    """`beans` has one row per bean, with its aliases; `info` by an old name describes the
    bean under its own name and lists the aliases."""

    async def main() -> None:
        async with _serve(short_tmp / "s") as running:
            code, out, _ = await syncctl(running, "beans", "--json")
            assert code == 0
            beans = {b["name"]: b["aliases"] for b in json.loads(out)["beans"]}
            assert not set(OLD_NAMES) & set(beans)
            for old, name in OLD_NAMES.items():
                assert beans[name] == [old]
            code, out, _ = await syncctl(running, "beans")
            rows = {line.split("\t")[0]: line.split("\t") for line in out.splitlines()}
            assert rows["PersonElasticSearchJob"][2] == "PersonElasticSearchSyncJob"
            assert rows["PersonOwnerRebuildJob"][2] == "-"
            for old, name in OLD_NAMES.items():
                code, out, _ = await syncctl(running, "info", old, "--json")
                assert code == 0
                bean = json.loads(out)["bean"]
                assert (bean["name"], bean["aliases"]) == (name, [old])
            code, out, _ = await syncctl(running, "info", "PostElasticSearchSyncJob")
            assert out.splitlines()[0] == "alias\tPostElasticSearchSyncJob"

    asyncio.run(main())


@pytest.mark.parametrize(
    ("argv", "check"),
    [
        (["get", "{old}", "State"], "State\tidle"),
        (["run", "sync.mbean:name={old}", "isCurrentlyRunning"], "false"),
        (["run", "{old}", "elapsedTime"], "0s"),
        (["history", "{old}"], ""),
        (["cancel", "{old}"], ""),
        (["logs", "--job", "{old}", "-n", "5"], None),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_every_command_takes_the_old_names(
    short_tmp: Path, argv: Sequence[str], check: str | None
) -> None:
    async def main() -> None:
        async with _serve(short_tmp / "s") as running:
            for old in OLD_NAMES:
                code, out, err = await syncctl(running, *(a.format(old=old) for a in argv))
                assert code == 0, (old, err)
                if check is not None:
                    assert out.strip() == check, (old, out)

    asyncio.run(main())


def test_runs_paused_and_resumed_by_old_name_are_the_beans(short_tmp: Path) -> None:
    """A run started by an old name is recorded under the bean's name; pause and resume by an
    old name hold the bean."""

    async def main() -> None:
        async with _serve(short_tmp / "s") as running:
            old, name = "PersonPlacementEmployingBodyJob", "PersonPlacementEmployingBodyTrustJob"
            code, out, err = await syncctl(running, "run", old, "run", "--wait")
            assert code == 0, err
            code, out, _ = await syncctl(running, "history", old, "--json")
            runs = json.loads(out)["runs"]
            assert [(r["bean"], r["outcome"]) for r in runs] == [(name, "success")]
            assert (await syncctl(running, "pause", old))[0] == 0
            assert running.daemon.service.paused(name)
            assert (await syncctl(running, "resume", old))[0] == 0
            assert not running.daemon.service.paused(name)

    asyncio.run(main())


def test_a_runbook_with_the_old_names_runs_in_the_shell(short_tmp: Path) -> None:
    """`bean sync.mbean:name=<old name>` in a jmxterm runbook selects the bean."""
    runbook = "".join(
        f"bean sync.mbean:name={old}\nrun isCurrentlyRunning\nget State\n" for old in OLD_NAMES
    )

    async def main() -> None:
        async with _serve(short_tmp / "s") as running:
            code, out, err = await syncctl(
                running, "shell", "-n", "-v", "silent", stdin="open 1\n" + runbook
            )
            assert (code, err) == (0, "")
            assert out == "false\nState = idle;\n" * len(OLD_NAMES)

    asyncio.run(main())


def test_the_console_and_the_old_rest_api_take_the_old_names(short_tmp: Path) -> None:
    async def main() -> None:
        async with (
            _serve(short_tmp / "s", http=True) as running,
            console_session(running.daemon) as http,
        ):
            daemon = running.daemon
            for old, name in OLD_NAMES.items():
                status, body = await call(http, "GET", console_url(daemon, f"api/v1/jobs/{old}"))
                assert status == 200
                assert (body["name"], body["aliases"]) == (name, [old])
                status, body = await call(
                    http, "GET", console_url(daemon, f"api/v1/jobs/{old}/runs")
                )
                assert (status, body["job"]) == (200, name)
            token = {"X-CSRF-Token": await csrf(http, daemon)}
            status, body = await call(
                http,
                "PUT",
                console_url(daemon, "api/job/PersonPlacementEmployingBodyJob"),
                headers=token,
            )
            assert (status, body) == (200, {"status": "Just started"})
            status, body = await call(
                http,
                "POST",
                console_url(daemon, "api/v1/jobs/PostElasticSearchSyncJob/run"),
                body={},
                headers=token,
            )
            assert status == 202 and body["run"]["job"] == "PostElasticSearchJob"
            status, body = await call(
                http, "PUT", console_url(daemon, "api/job/NoSuchJob"), headers=token
            )
            assert (status, body) == (400, {"error": "Job not found"})

    asyncio.run(main())
