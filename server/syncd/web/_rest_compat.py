"""The old TIS-SYNC REST API, kept answer for answer so its scripts keep working.

`GET api/jobs/status` → `{jobKey: running}`; `PUT api/job/{jobKey}` → `{"status": "Just
started"}` or `{"status": "Already running"}`, 400 `{"error": "Job not found"}` or 400
`{"error": "<why the arguments are wrong>"}` (nothing is started then); `PUT api/jobs` runs all
and answers 200 with an empty body; `GET api/sys/profile` → the profile as plain text.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from syncd.errors import AlreadyRunningError, BeanNotFoundError, InvalidArgumentError
from syncd.job import JobSpec
from syncd.security import Principal
from syncd.service import RunAllRequest
from syncd.web._api import start_run
from syncd.web._http import json_object
from syncd.web.plane import WebPlane

log = structlog.get_logger("syncd.web")

JUST_STARTED = {"status": "Just started"}
ALREADY_RUNNING = {"status": "Already running"}
JOB_NOT_FOUND = {"error": "Job not found"}


def _json(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, headers={"Cache-Control": "no-store"})


class RestCompat:
    def __init__(self, plane: WebPlane) -> None:
        self._plane = plane

    def _by_key(self, key: str) -> JobSpec | None:
        """The job with this old REST key; else the job the registry knows by this name or
        alias (old runbooks name jobs by their bean or class names)."""
        service = self._plane.service
        found = next((s for s in service.specs() if s.job_key == key), None)
        if found is not None:
            return found
        try:
            return service.spec(self._plane.registry.get(key).name)
        except BeanNotFoundError:
            return None

    async def status(self, _request: web.Request, _caller: Principal) -> web.Response:
        service = self._plane.service
        return _json(
            {
                spec.job_key: service.active(spec.name) is not None
                for spec in self._plane.service.ordered_specs()
                if spec.job_key
            }
        )

    async def profile(self, _request: web.Request) -> web.Response:
        return web.Response(text=self._plane.config.profile, content_type="text/plain")

    async def run_job(self, request: web.Request, caller: Principal) -> web.Response:
        spec = self._by_key(request.match_info["name"])
        if spec is None:
            return _json(JOB_NOT_FOUND, 400)
        body = await json_object(request)  # e.g. {"dateOverride": "2026-01-31"}
        # The old API's own answers to these two; every other refusal is the HTTP table's.
        try:
            await start_run(self._plane, spec, body, caller)
        except InvalidArgumentError as exc:
            return _json({"error": str(exc)}, 400)
        except AlreadyRunningError:
            return _json(ALREADY_RUNNING)
        return _json(JUST_STARTED)

    async def run_all(self, _request: web.Request, caller: Principal) -> web.Response:
        names = list((await self._plane.service.run_all(RunAllRequest(actor=caller.actor))).jobs)
        log.info("web.run_all", jobs=names, actor=caller.actor)
        return web.Response(status=200, headers={"Cache-Control": "no-store"})
