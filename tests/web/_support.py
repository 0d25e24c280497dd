"""A real daemon with its HTTP listener, configured as a test needs (tokens, profile), and
small helpers to talk to its console."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp

from syncd.app.daemon import Daemon
from syncd.beans.model import Parameter
from syncd.config import (
    AuthConfig,
    Config,
    DaemonConfig,
    HttpConfig,
    JobConfig,
    SchedulerConfig,
    TokenConfig,
)
from syncd.execution.run import Run
from syncd.job import JobSpec
from syncd.observability.loghub import LogHub
from syncd.observability.logs import configure_logging
from syncd.security import hash_token, new_token
from syncd.values import Value, ValueType
from tests.harness import serving_daemon
from tests.packs.sample import Gates, gated_body, quick_body

BOUND = 20.0
OPERATOR = new_token()
VIEWER = new_token()
# Every console daemon of these tests knows these two bearer tokens.
TOKENS = AuthConfig(
    tokens=(
        TokenConfig(name="ci", role="operator", sha256=hash_token(OPERATOR)),
        TokenConfig(name="watcher", role="viewer", sha256=hash_token(VIEWER)),
    )
)


def run(coro: Awaitable[None], bound: float = 60.0) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(bound):
            await coro

    asyncio.run(bounded())


def logging_to_hub() -> LogHub:
    """Log lines of this test go to a fresh hub (the console's log pane reads it)."""
    hub = LogHub()
    configure_logging("info", stream=io.StringIO(), json_output=True, hub=hub, cache=False)
    return hub


@asynccontextmanager
async def console_daemon(
    state_dir: Path,
    jobs: Sequence[JobSpec],
    http: HttpConfig | None = None,
    log_hub: LogHub | None = None,
    job_tables: dict[str, JobConfig] | None = None,
) -> AsyncIterator[Daemon]:
    """A serving daemon on a free loopback port; `daemon.listening.http` is its base URL."""
    config = Config(
        daemon=DaemonConfig(state_dir=state_dir, execution="thread", shutdown_grace=5.0),
        scheduler=SchedulerConfig(catch_up=False),
        http=http or HttpConfig(address="127.0.0.1:0"),
        jobs=job_tables or {},
        auth=TOKENS,
    )
    async with serving_daemon(Daemon(config, jobs, log_hub=log_hub)) as daemon:
        yield daemon


def console_url(daemon: Daemon, path: str = "") -> str:
    return f"{daemon.listening.http}{daemon.config.http.context_path}{path}"


def login_link(daemon: Daemon) -> str:
    """The one-time link `syncd serve` prints (a fresh one, as `consoleLoginLink` makes, once
    that one has been used)."""
    access = daemon._web_access
    assert access is not None
    return f"{console_url(daemon)}?token={access.login_token() or access.new_login_token()}"


@asynccontextmanager
async def console_session(daemon: Daemon | None = None) -> AsyncIterator[aiohttp.ClientSession]:
    """A browser's session: logged in through the daemon's login link when one is given (the
    session cookie then goes with every request), else anonymous."""
    # unsafe=True: keep cookies set by an IP-address host, as browsers do for 127.0.0.1.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        if daemon is not None:
            async with http.get(login_link(daemon), allow_redirects=False) as response:
                assert response.status == 302, await response.text()
        yield http


async def csrf(
    http: aiohttp.ClientSession, daemon: Daemon, headers: dict[str, str] | None = None
) -> str:
    """The page's CSRF token, as the page gets it."""
    async with http.get(console_url(daemon, "api/v1/session"), headers=headers or {}) as response:
        assert response.status == 200, await response.text()
        token: str = (await response.json())["csrfToken"]
        return token


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """Status and body (JSON when it is JSON, else text) of one request."""
    data = None if body is None else body if isinstance(body, str) else json.dumps(body)
    async with http.request(method, url, data=data, headers=headers or {}) as response:
        text = await response.text()
        if response.content_type == "application/json" and text:
            return response.status, json.loads(text)
        return response.status, text


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def sse_events(
    response: aiohttp.ClientResponse,
) -> AsyncIterator[tuple[str, str]]:
    """(event, data) pairs of a Server-Sent Events response, as they arrive."""
    event, data = "message", list[str]()
    while True:
        raw = await response.content.readline()
        if not raw:
            return
        line = raw.decode().rstrip("\n")
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            event = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            data.append(line.partition(":")[2].removeprefix(" "))


def _date_override(value: Value) -> Value:
    """The old job's rule: blank (today), YYYY-MM-DD, ANY or NONE."""
    text = str(value).strip()
    if text.upper() in ("", "ANY", "NONE"):
        return text.upper()
    try:
        date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD), ANY or NONE") from None
    return text


# The old REST API's body {"dateOverride": ...} becomes this parameter's argument.
DATE_OVERRIDE = Parameter(
    name="dateOverride",
    type=ValueType.STRING,
    description="blank (today), YYYY-MM-DD, ANY or NONE",
    validate=_date_override,
)


def record_status_job(gates: Gates | None = None) -> JobSpec:
    """A job with the real record-status job's `dateOverride` parameter and old REST key; it
    waits for `gates` when given, else finishes at once."""
    return JobSpec(
        name="PersonRecordStatusJob",
        trigger_operation="personRecordStatusJob",
        body=quick_body if gates is None else gated_body,
        description="Sets Person.status for the persons chosen by dateOverride.",
        parameters=(DATE_OVERRIDE,),
        job_key="personRecordStatusJob",
        settings=gates,
    )


def reval_job() -> JobSpec:
    return JobSpec(
        name="RevalCurrentPmSyncJob",
        trigger_operation="revalCurrentPmJob",
        body=quick_body,
        description="Publishes person ids to revalidation.",
        job_key="revalCurrentPmJob",
    )


async def finished(daemon: Daemon, run_id: str) -> dict[str, Any]:
    """Wait for a run to finish; its record as the API shows it."""
    target = await daemon.service.get_run(run_id)
    if isinstance(target, Run):
        async with asyncio.timeout(BOUND):
            await target.finished.wait()
        target = target.record
    return {
        "outcome": target.outcome.value if target.outcome else None,
        "arguments": target.arguments,
    }
