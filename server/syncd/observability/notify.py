"""Notifications: a Slack-compatible webhook on chosen outcomes.

A failing webhook never affects a job: deliveries are fire-and-forget tasks with a timeout,
retried with backoff when the webhook does not answer or answers 429/5xx (`syncd.retry`), and a
burst of failures is logged once (then once more when deliveries work again).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
import structlog

from syncd.config import NotifyConfig
from syncd.errors import LedgerUnavailableError
from syncd.ledger.model import RunRecord
from syncd.ledger.recorder import LedgerRecorder
from syncd.observability.events import Event, EventKind
from syncd.retry import Backoff, retrying_async

log = structlog.get_logger("syncd.notify")

MAX_RETRY_DELAY = 60.0  # seconds; a webhook down for long is not hammered, nor waited on forever


def _worth_retrying(error: BaseException) -> str | None:
    """Why a failed post may work later: no answer, throttled, or the server's own fault.
    Other 4xx answers (a wrong URL, a revoked hook) fail the same way every time."""
    if isinstance(error, aiohttp.ClientResponseError):
        if error.status == 429 or error.status >= 500:
            return f"http {error.status}"
        return None
    if isinstance(error, aiohttp.ClientError | TimeoutError):
        return type(error).__name__
    return None


def _outcome_key(event: Event) -> str | None:
    if event.kind is EventKind.RUN_STARTED:
        return "started"
    if event.kind is EventKind.RUN_FINISHED:
        return event.outcome
    if event.kind is EventKind.RUN_SKIPPED:
        return "skipped"
    if event.kind is EventKind.RUN_MISSED:
        return "missed"
    return None


class WebhookNotifier:
    def __init__(self, config: NotifyConfig, ledger: LedgerRecorder) -> None:
        self._config = config
        self._ledger = ledger
        self._wanted = set(config.on)
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._failing = False
        self._backoff = Backoff(
            initial=config.retry_delay,
            maximum=max(config.retry_delay, MAX_RETRY_DELAY),
            attempts=config.attempts,
        )
        self.delivered = 0

    def on_event(self, event: Event) -> None:
        key = _outcome_key(event)
        if key is None or key not in self._wanted or not self._config.webhook_url:
            return
        task = asyncio.get_running_loop().create_task(self._notify(event, key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _notify(self, event: Event, key: str) -> None:
        record = None
        if event.run_id:
            # Off the loop; a ledger that cannot be read leaves the run's figures out.
            with contextlib.suppress(LedgerUnavailableError):
                record = await self._ledger.get(event.run_id)
        await self._deliver(self.payload(event, key, record))

    def payload(self, event: Event, key: str, record: RunRecord | None = None) -> dict[str, Any]:
        if key == "started":
            text = f"Sync [{event.bean}] started (run {event.run_id}, trigger {event.message})."
        elif key == "success":
            took = ""
            if record is not None and record.ended_at is not None:
                took = f" in {(record.ended_at - record.started_at).total_seconds():.1f}s"
            rows = (
                f", {record.rows_read} rows read, {record.rows_written} written" if record else ""
            )
            text = f"Sync [{event.bean}] completed successfully{took}{rows} (run {event.run_id})."
        else:
            why = f": {event.message}" if event.message else ""
            text = f"Sync [{event.bean}] {key.replace('_', ' ')}{why} (run {event.run_id})."
            if self._config.mention_on_failure and key in ("failed", "timed_out", "interrupted"):
                text = f"<!channel> {text}"
        body: dict[str, Any] = {
            "text": text,
            "username": "syncd",
            "attachments": [
                {
                    "color": "good" if key in ("success", "started") else "danger",
                    "fields": [
                        {"title": "job", "value": event.bean, "short": True},
                        {"title": "outcome", "value": key, "short": True},
                        {"title": "run", "value": event.run_id, "short": True},
                        {"title": "at", "value": event.at.isoformat(), "short": True},
                    ],
                }
            ],
        }
        if self._config.channel:
            body["channel"] = self._config.channel
        return body

    async def _deliver(self, body: dict[str, Any]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._config.timeout)
            )
        try:
            await retrying_async(
                lambda: self._post(body), backoff=self._backoff, transient=_worth_retrying
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            if not self._failing:
                self._failing = True
                log.error("notify.failed", error=f"{type(exc).__name__}: {exc}"[:500])
            return
        self.delivered += 1
        if self._failing:
            self._failing = False
            log.info("notify.recovered")

    async def _post(self, body: dict[str, Any]) -> None:
        assert self._session is not None
        async with self._session.post(self._config.webhook_url, json=body) as response:
            if response.status >= 400:
                raise aiohttp.ClientResponseError(
                    response.request_info,
                    (),
                    status=response.status,
                    message=response.reason or "",
                )

    async def close(self) -> None:
        """Give deliveries under way one post's time to finish; the rest (waiting to retry a
        webhook that is down) are given up rather than holding the shutdown."""
        if self._tasks:
            _done, pending = await asyncio.wait(list(self._tasks), timeout=self._config.timeout + 1)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
                log.warning("notify.abandoned", messages=len(pending))
        if self._session is not None:
            await self._session.close()
