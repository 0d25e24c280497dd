"""Reloading the configuration: the timetable applies at once; a bad file changes nothing."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import grpc
import pytest

from syncd.app.daemon import Daemon
from syncd.config import load_config
from syncd_api.v1 import management_pb2 as pb
from syncd_api.v1 import management_pb2_grpc as pb_grpc
from tests.daemon_process import daemon_process, e2e_config
from tests.packs.sample import QUICK


def _write(path: Path, at: str) -> None:
    path.write_text(f'[daemon]\nexecution = "thread"\n[jobs.QuickJob]\nat = "{at}"\n')


def test_reload_applies_a_new_timetable_and_refuses_a_bad_one(short_tmp: Path) -> None:
    """reloadConfig moves the next run; a bad file is refused and the old timetable stays."""
    config_file = short_tmp / "syncd.toml"
    _write(config_file, "03:00")

    def load() -> object:
        return load_config(
            config_file,
            env={"SYNCD_STATE_DIR": str(short_tmp / "state"), "SYNCD_HTTP_ADDRESS": "127.0.0.1:0"},
        )

    async def main() -> None:
        daemon = Daemon(load(), [QUICK], reload_config=load)  # type: ignore[arg-type]
        serving = asyncio.create_task(daemon.serve(handle_signals=False))
        async with asyncio.timeout(10):
            await daemon.listening.ready.wait()
        async with grpc.aio.insecure_channel(daemon.listening.addresses[0]) as channel:
            stub: pb_grpc.ManagementAsyncStub = pb_grpc.ManagementStub(channel)
            before = daemon.service.next_run("QuickJob")
            assert before is not None and (before.hour, before.minute) == (3, 0)
            _write(config_file, "04:30")
            reply = await stub.Invoke(pb.InvokeRequest(bean="Daemon", operation="reloadConfig"))
            assert json.loads(reply.result.json_value) == {
                "changedJobs": ["QuickJob"],
                "restartNeeded": [],
            }
            after = daemon.service.next_run("QuickJob")
            assert after is not None and (after.hour, after.minute) == (4, 30)
            _write(config_file, "25:00")
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Invoke(pb.InvokeRequest(bean="Daemon", operation="reloadConfig"))
            assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "jobs.QuickJob.at: hour 25 is not 0-23" in (info.value.details() or "")
            assert daemon.service.next_run("QuickJob") == after
        daemon.request_stop()
        async with asyncio.timeout(10):
            assert await serving == 0

    asyncio.run(main())


def test_sighup_reloads_the_daemon(short_tmp: Path) -> None:
    """SIGHUP re-reads the file: config.reloaded names the changed job."""
    text = e2e_config(short_tmp)
    with daemon_process(short_tmp / "state", text + '[jobs.QuickJob]\nat = "03:00"\n') as d:
        config = short_tmp / "syncd.toml"
        config.write_text(text + '[jobs.QuickJob]\nat = "05:00"\n[daemon.nope]\n')
        d.proc.send_signal(signal.SIGHUP)
        failed = d.wait_for_event("config.reload_failed")
        assert "daemon.nope" in failed["error"] or "daemon" in failed["error"]
        config.write_text(text + '[jobs.QuickJob]\nat = "05:00"\n')
        d.proc.send_signal(signal.SIGHUP)
        reloaded = d.wait_for_event("config.reloaded")
        assert reloaded["changed_jobs"] == ["QuickJob"]
        assert d.stop() == 0
