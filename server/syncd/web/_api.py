"""The console's JSON API (`<context>/api/v1/...`): what the page reads and the actions it takes.

Every run starts through the run service, as from the scheduler and the control plane, with
the arguments validated by the job's trigger operation. Refusals are the service's domain
errors, answered through the one HTTP table (`_errors`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from aiohttp import web

from syncd import __version__
from syncd.errors import BeanNotFoundError, RunNotFoundError, closest, quote_input
from syncd.execution.run import Run
from syncd.job import JobSpec
from syncd.ledger.model import RunRecord
from syncd.security import Principal
from syncd.service import CancelRequest, RunAllRequest, StartRequest
from syncd.values import Value, usable_key
from syncd.web._auth import Access
from syncd.web._http import error, instant, json_object, query_int, reply
from syncd.web._model import job_view, live_run_view, run_view
from syncd.web.plane import WebPlane

log = structlog.get_logger("syncd.web")

HISTORY_DEFAULT = 20
HISTORY_MAX = 200


def find_spec(plane: WebPlane, name: str) -> JobSpec:
    """The job named `name` (its name or an alias, short or full, resolved by the registry),
    or 404 naming the nearest job names."""
    try:
        spec = plane.service.spec(plane.registry.get(name).name)
    except BeanNotFoundError:
        spec = None
    if spec is None:
        hint = closest(name, [s.name for s in plane.service.specs()])
        more = f"; did you mean {', '.join(hint)}?" if hint else ""
        raise error(404, f"no job named {quote_input(name)}{more}")
    return spec


async def find_run(plane: WebPlane, run_id: str) -> Run | RunRecord:
    """The run with this id, or RunNotFoundError (without asking the ledger for a non-key)."""
    if not usable_key(run_id):
        raise RunNotFoundError(run_id)
    return await plane.service.get_run(run_id)


async def start_run(
    plane: WebPlane,
    spec: JobSpec,
    named: Mapping[str, Any],
    caller: Principal,
    *,
    with_dependants: bool = False,
) -> tuple[Run, tuple[str, ...]]:
    """Start a run with `named` arguments, checked and typed by the job's trigger operation
    (InvalidArgumentError if they do not fit: nothing starts); the run and what follows it."""
    arguments: dict[str, Value] = plane.service.bind(spec.name, dict(named))
    started = await plane.service.start(
        StartRequest(
            bean=spec.name,
            actor=caller.actor,
            arguments=arguments,
            with_dependants=with_dependants,
        )
    )
    run = started.run
    log.info("web.run", job=spec.name, run_id=run.run_id, chain=started.chain, actor=caller.actor)
    return run, started.chain


def snapshot(plane: WebPlane) -> dict[str, Any]:
    """Every job, and the daemon's own state: the page's whole picture at one moment."""
    return {
        "jobs": [job_view(plane, spec) for spec in plane.service.ordered_specs()],
        "now": instant(plane.clock.now()),
        "draining": plane.service.draining,
        "profile": plane.config.profile,
    }


class JsonApi:
    def __init__(self, plane: WebPlane, access: Access) -> None:
        self._plane = plane
        self._access = access

    async def replication(self, _request: web.Request, _caller: Principal) -> web.Response:
        """The repository's cursors per peer and the last SynchronizeJobData table."""
        if self._plane.replication is None:
            return reply({"enabled": False})
        return reply({"enabled": True, **await self._plane.replication()})

    async def session(self, _request: web.Request, caller: Principal) -> web.Response:
        plane = self._plane
        return reply(
            {
                "csrfToken": self._access.csrf_token,
                "role": caller.role.label,
                "actor": caller.actor,
                "canRun": self._access.can_run(caller),
                "profile": plane.config.profile,
                "version": __version__,
                "startedAt": instant(plane.started_at),
                "now": instant(plane.clock.now()),
                "draining": plane.service.draining,
            }
        )

    async def jobs(self, _request: web.Request, _caller: Principal) -> web.Response:
        return reply(snapshot(self._plane))

    async def job(self, request: web.Request, _caller: Principal) -> web.Response:
        spec = find_spec(self._plane, request.match_info["name"])
        return reply(job_view(self._plane, spec))

    async def history(self, request: web.Request, _caller: Principal) -> web.Response:
        spec = find_spec(self._plane, request.match_info["name"])
        limit = query_int(request, "limit", HISTORY_DEFAULT, 1, HISTORY_MAX)
        service = self._plane.service
        records = await service.history(spec.name, limit)
        live = service.active(spec.name)
        runs = [
            live_run_view(self._plane, live)
            if live is not None and live.run_id == r.run_id
            else run_view(r)
            for r in records
        ]
        return reply({"job": spec.name, "runs": runs})

    async def run(self, request: web.Request, _caller: Principal) -> web.Response:
        target = await find_run(self._plane, request.match_info["run_id"])
        return reply(live_run_view(self._plane, target))

    async def start(self, request: web.Request, caller: Principal) -> web.Response:
        plane = self._plane
        spec = find_spec(plane, request.match_info["name"])
        body = await json_object(request)
        unknown = sorted(set(body) - {"arguments", "withDependants"})
        if unknown:
            raise error(
                400, f"unknown field {quote_input(unknown[0])} (known: arguments, withDependants)"
            )
        named = body.get("arguments") or {}
        if not isinstance(named, dict):
            raise error(400, "arguments must be a JSON object of parameter names to values")
        with_dependants = body.get("withDependants", False)
        if not isinstance(with_dependants, bool):
            raise error(400, "withDependants must be true or false")
        run, chain = await start_run(plane, spec, named, caller, with_dependants=with_dependants)
        return reply(
            {"status": "Just started", "run": live_run_view(plane, run), "then": list(chain)}, 202
        )

    async def cancel(self, request: web.Request, caller: Principal) -> web.Response:
        spec = find_spec(self._plane, request.match_info["name"])
        cancelled = await self._plane.service.cancel(
            CancelRequest(bean=spec.name, actor=caller.actor)
        )
        run = cancelled.run
        if run is None and cancelled.elsewhere is not None:  # cluster mode: another replica
            return reply(
                {
                    "status": "Cancelling",
                    "run": run_view(cancelled.elsewhere),
                    "replica": cancelled.replica,
                },
                202,
            )
        if run is None:
            raise error(409, f"{spec.name} has no run under way")
        return reply({"status": "Cancelling", "run": live_run_view(self._plane, run)}, 202)

    async def run_all(self, _request: web.Request, caller: Principal) -> web.Response:
        names = list((await self._plane.service.run_all(RunAllRequest(actor=caller.actor))).jobs)
        log.info("web.run_all", jobs=names, actor=caller.actor)
        return reply({"status": "Just started", "jobs": names}, 202)
