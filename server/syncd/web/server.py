"""The HTTP listener: `/metrics`, `/healthz`, and the routes of the web console.

aiohttp because it is asyncio-native: it runs on the daemon's one event loop beside the gRPC
server, the scheduler and the runs, with no second server thread or framework.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from syncd.config import HttpConfig, split_host_port
from syncd.errors import PermissionDeniedError, UnauthenticatedError
from syncd.observability.metrics import Metrics
from syncd.security import Action, Guard
from syncd.web._http import error


class HttpServer:
    def __init__(
        self,
        config: HttpConfig,
        metrics: Metrics,
        serving: Callable[[], bool],
        extra_routes: Callable[[web.Application], None] | None = None,
        ledger_problem: Callable[[], str] = lambda: "",
        *,
        guard: Guard,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._config = config
        self._guard = guard
        self._ssl = ssl_context
        self._metrics = metrics
        self._serving = serving
        self._ledger_problem = ledger_problem
        self.app = web.Application()
        self.app.router.add_get("/metrics", self._metrics_handler)
        self.app.router.add_get("/healthz", self._health)
        if extra_routes is not None:
            extra_routes(self.app)
        self._runner: web.AppRunner | None = None
        self.address = ""

    async def _metrics_handler(self, request: web.Request) -> web.Response:
        # Prometheus sends a bearer token (`authorization` in its scrape config); a viewer's
        # will do. `http.open_metrics` opens it to every caller instead.
        if not self._config.open_metrics:
            header = request.headers.get("Authorization")
            if header is None:
                raise error(401, "/metrics needs a viewer token (Authorization: Bearer <token>)")
            try:
                who = self._guard.from_authorization(header, request.remote or "", "http")
                Guard.authorize(who, Action.READ)
            except UnauthenticatedError as exc:
                raise error(401, str(exc)) from None
            except PermissionDeniedError as exc:
                raise error(403, str(exc)) from None
        body = generate_latest(self._metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _health(self, _request: web.Request) -> web.Response:
        if not self._serving():
            return web.json_response({"status": "draining"}, status=503)
        # A node whose ledger cannot record runs cannot start them: out of rotation.
        if problem := self._ledger_problem():
            return web.json_response(
                {"status": "ledger-unavailable", "ledger": problem}, status=503
            )
        return web.json_response({"status": "serving", "ledger": "ok"})

    async def start(self) -> str:
        host, port = split_host_port(self._config.address)
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=self._ssl)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        scheme = "https" if self._ssl is not None else "http"
        self.address = f"{scheme}://{host}:{bound}"
        return self.address

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
