"""The daemon's own bean, `sync.mbean:name=Daemon`: who it is and what it is doing."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from syncd import __version__
from syncd.beans.model import Attribute, Bean, Operation, Result
from syncd.clock import Clock
from syncd.enums import Impact
from syncd.service.runservice import RunService
from syncd.values import ValueType

NAME = "Daemon"
RELOAD = "reloadConfig"
LOGIN_LINK = "consoleLoginLink"


def daemon_bean(
    *,
    clock: Clock,
    started_at: datetime,
    state_dir: Path,
    service: RunService,
    bean_count: Callable[[], int],
    reload: Callable[[], dict[str, list[str]]],
    login_link: Callable[[], str] | None = None,
) -> Bean:
    def running() -> list[dict[str, str]]:
        return [{"bean": r.record.bean, "runId": r.run_id} for r in service.active_runs()]

    def uptime() -> float:
        return round((clock.now() - started_at).total_seconds(), 3)

    operations = [
        Operation(
            name="version",
            handler=lambda _inv: Result(value=__version__),
            description="The daemon's version.",
            returns=ValueType.STRING,
        ),
        Operation(
            name=RELOAD,
            handler=lambda _inv: Result(value=reload(), message="Reloaded"),
            description=(
                "Re-read the configuration file (as SIGHUP does): the timetable and job settings"
                " apply at once; returns the changed jobs and the keys that need a restart."
            ),
            returns=ValueType.JSON,
            impact=Impact.ACTION,
        ),
        Operation(
            name=LOGIN_LINK,
            handler=lambda _inv: Result(value=login_link() if login_link else ""),
            description=(
                "A new one-time login link for the web console (the one `syncd serve` printed"
                " works once); it logs a browser in as the daemon's owner. Admin only."
            ),
            returns=ValueType.STRING,
            impact=Impact.ACTION,
        ),
        Operation(
            name="runningJobs",
            handler=lambda _inv: Result(value=running()),
            description="The runs under way, as a list of {bean, runId}.",
            returns=ValueType.JSON,
        ),
    ]
    attributes = [
        Attribute(name="Version", type=ValueType.STRING, read=lambda: __version__),
        Attribute(name="Pid", type=ValueType.INT, read=os.getpid),
        Attribute(name="StartedAt", type=ValueType.TIMESTAMP, read=lambda: started_at),
        Attribute(
            name="Uptime", type=ValueType.FLOAT, read=uptime, description="Seconds since start."
        ),
        Attribute(name="Draining", type=ValueType.BOOL, read=lambda: service.draining),
        Attribute(name="StateDir", type=ValueType.STRING, read=lambda: str(state_dir)),
        Attribute(name="BeanCount", type=ValueType.INT, read=bean_count),
        Attribute(name="RunningJobs", type=ValueType.INT, read=lambda: len(service.active_runs())),
    ]
    return Bean.build(NAME, "The syncd daemon itself.", operations, attributes)
