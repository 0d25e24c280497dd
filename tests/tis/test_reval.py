"""The reval publishers against the local RabbitMQ: which persons, one JSON array of id strings
per page, publisher confirms, retries, and disabled when no broker is configured.

Each test uses an exchange of its own (deleted afterwards) declared as the publisher declares
one (durable, direct), with a fresh exclusive queue bound by the routing key.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pika  # type: ignore[import-untyped]
import pytest

from syncd.enums import BeanState
from syncd.errors import BeanDisabledError, RunCancelled
from syncd.job import JobSpec, PackContext
from syncd.ledger.model import MemoryLedger
from syncd.service import StartRequest
from syncd_tis import TisSettings
from syncd_tis._db import TisError
from syncd_tis.search.jobs import NO_BROKER, search_and_reval_jobs
from syncd_tis.search.reval import EXCHANGE_TYPE
from syncd_tis.search.settings import RevalSettings
from tests.run_service import build_service
from tests.services import RABBITMQ_URL, require_tcp
from tests.tis.conftest import Db, RecordingRunContext

ROUTING_KEY = "reval.trainee.update"
BOUND = 10.0


@dataclass
class Broker:
    """An exchange for one test, and a queue bound to it that collects what arrives."""

    exchange: str
    channel: Any
    queue: str

    def received(self, expected: int) -> list[tuple[list[Any], Any]]:
        """The messages in the queue (body, properties); waits at most BOUND for `expected`."""
        out: list[tuple[list[Any], Any]] = []
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            method, properties, body = self.channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                if len(out) >= expected:
                    break
                self.channel.connection.process_data_events(time_limit=0.05)
                continue
            out.append((json.loads(body), properties))
        return out


@pytest.fixture
def broker() -> Iterator[Broker]:
    parts = urlsplit(RABBITMQ_URL)
    require_tcp("RabbitMQ", parts.hostname or "127.0.0.1", parts.port or 5672)
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    channel = connection.channel()
    exchange = f"reval.test.{secrets.token_hex(4)}"
    channel.exchange_declare(exchange=exchange, exchange_type=EXCHANGE_TYPE, durable=True)
    queue = channel.queue_declare(queue="", exclusive=True).method.queue
    channel.queue_bind(queue=queue, exchange=exchange, routing_key=ROUTING_KEY)
    try:
        yield Broker(exchange, channel, queue)
    finally:
        channel.exchange_delete(exchange=exchange)
        connection.close()


def reval_specs(db: Db, tmp_path: Path, **reval: Any) -> dict[str, JobSpec]:
    values: dict[str, Any] = {"amqp_url": RABBITMQ_URL, "page_size": 2, "publish_attempts": 3}
    values.update(reval)
    built = search_and_reval_jobs(
        PackContext(state_dir=tmp_path, settings=None),
        db.settings(),
        reval=RevalSettings(**values),
        env={},
    )
    return {s.name: s for s in built}


def today() -> datetime:
    return datetime.now(UTC)


class TestPublishing:
    def test_pm_job_publishes_each_page_as_one_array_of_id_strings(
        self, db: Db, broker: Broker, tmp_path: Path
    ) -> None:
        """Persons whose membership starts today or ended yesterday, ascending, two a page;
        each person once however many memberships match."""
        day = today().date()
        prog = db.programme("Wessex")
        people = [db.person() for _ in range(8)]
        chosen = [people[0], people[2], people[3], people[5], people[7]]
        for pid in chosen[:3]:
            db.membership(pid, prog, day, day + timedelta(days=300))
        for pid in chosen[2:]:
            db.membership(pid, prog, day - timedelta(days=300), day - timedelta(days=1))
        db.membership(people[1], prog, day - timedelta(days=1), day + timedelta(days=9))
        db.membership(people[4], prog, day + timedelta(days=1), day + timedelta(days=9))
        db.membership(people[6], prog, day - timedelta(days=9), day)  # ends today: not yet

        job = reval_specs(db, tmp_path, exchange=broker.exchange)["RevalCurrentPmSyncJob"]
        ctx = RecordingRunContext(job.settings)
        job.body(ctx)

        messages = broker.received(3)
        ids = [str(p) for p in chosen]
        assert [body for body, _ in messages] == [ids[0:2], ids[2:4], ids[4:5]]
        properties = messages[0][1]
        assert properties.content_type == "application/json"
        assert properties.delivery_mode == 2
        assert properties.headers["__TypeId__"] == "java.util.HashSet"
        assert (ctx.rows_read, ctx.rows_written) == (5, 5)
        assert ctx.progress[-1] == (5, 5)

    def test_placement_job_selects_placements_starting_today_or_ended_yesterday(
        self, db: Db, broker: Broker, tmp_path: Path
    ) -> None:
        day = today().date()
        a_post = db.post()
        starts, ended, neither, later = db.person(), db.person(), db.person(), db.person()
        db.placement(starts, a_post, day, day + timedelta(days=90))
        db.placement(ended, a_post, day - timedelta(days=90), day - timedelta(days=1))
        db.placement(neither, a_post, day - timedelta(days=1), day)
        db.placement(later, a_post, day + timedelta(days=1), day + timedelta(days=2))
        job = reval_specs(db, tmp_path, exchange=broker.exchange, page_size=5000)[
            "RevalCurrentPlacementSyncJob"
        ]
        job.body(RecordingRunContext(job.settings))
        assert [body for body, _ in broker.received(1)] == [[str(starts), str(ended)]]

    def test_a_missed_night_can_be_replayed_with_a_date(
        self, db: Db, broker: Broker, tmp_path: Path
    ) -> None:
        day = today().date() - timedelta(days=20)
        prog = db.programme("Wessex")
        pid = db.person()
        db.membership(pid, prog, day, day + timedelta(days=100))
        db.membership(db.person(), prog, today().date(), None)
        job = reval_specs(db, tmp_path, exchange=broker.exchange)["RevalCurrentPmSyncJob"]
        (param,) = job.parameters
        job.body(RecordingRunContext(job.settings, {param.name: day.isoformat()}))
        assert [body for body, _ in broker.received(1)] == [[str(pid)]]

    def test_nothing_selected_publishes_nothing(
        self, db: Db, broker: Broker, tmp_path: Path
    ) -> None:
        job = reval_specs(db, tmp_path, exchange=broker.exchange)["RevalCurrentPmSyncJob"]
        ctx = RecordingRunContext(job.settings)
        job.body(ctx)
        assert broker.received(0) == []
        assert ctx.rows_written == 0

    def test_an_existing_topic_exchange_is_used_as_it_is(
        self, db: Db, broker: Broker, tmp_path: Path
    ) -> None:
        """The publisher never redeclares an exchange that exists, whatever its type."""
        topic = f"{broker.exchange}.topic"
        broker.channel.exchange_declare(exchange=topic, exchange_type="topic", durable=False)
        broker.channel.queue_bind(queue=broker.queue, exchange=topic, routing_key="reval.#")
        try:
            pid = db.person()
            db.membership(pid, db.programme("X"), today().date(), None)
            job = reval_specs(db, tmp_path, exchange=topic)["RevalCurrentPmSyncJob"]
            job.body(RecordingRunContext(job.settings))
            assert [body for body, _ in broker.received(1)] == [[str(pid)]]
        finally:
            broker.channel.exchange_delete(exchange=topic)

    def test_a_missing_exchange_is_declared_durable_direct(
        self, db: Db, broker: Broker, tmp_path: Path
    ) -> None:
        """With no exchange and so no binding, the exchange is created and the unroutable page
        fails the run at once, instead of being dropped."""
        missing = f"{broker.exchange}.new"
        pid = db.person()
        db.membership(pid, db.programme("X"), today().date(), None)
        job = reval_specs(db, tmp_path, exchange=missing)["RevalCurrentPmSyncJob"]
        ctx = RecordingRunContext(job.settings)
        try:
            with pytest.raises(TisError, match="no queue is bound"):
                job.body(ctx)
            # Passive declare succeeds only if it exists now, with the type we chose.
            broker.channel.exchange_declare(
                exchange=missing, exchange_type="direct", durable=True, passive=True
            )
        finally:
            broker.channel.exchange_delete(exchange=missing)
        assert "reval.exchange_declared" in ctx.recorder.names()
        assert ctx.waits == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestWithoutABroker:
    def test_an_unreachable_broker_is_retried_with_backoff_then_fails(
        self, db: Db, tmp_path: Path
    ) -> None:
        pid = db.person()
        db.membership(pid, db.programme("X"), today().date(), None)
        url = f"amqp://guest:guest@127.0.0.1:{_closed_port()}/%2F"
        job = reval_specs(db, tmp_path, amqp_url=url, publish_attempts=3)["RevalCurrentPmSyncJob"]
        ctx = RecordingRunContext(job.settings)
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            job.body(ctx)
        # Exponential: 1 s then 2 s ceilings (default initial delay), jittered to [0.5, 1].
        assert len(ctx.waits) == 2 and 0.5 <= ctx.waits[0] <= 1.0 <= ctx.waits[1] <= 2.0
        reasons = [e["reason"] for e in ctx.recorder.events if e["event"] == "reval.retry"]
        assert len(reasons) == 2 and all(r.startswith("connection") for r in reasons)

    def test_a_cancel_cuts_the_backoff_short(self, db: Db, tmp_path: Path) -> None:
        pid = db.person()
        db.membership(pid, db.programme("X"), today().date(), None)
        url = f"amqp://guest:guest@127.0.0.1:{_closed_port()}/%2F"
        job = reval_specs(db, tmp_path, amqp_url=url, publish_attempts=5)["RevalCurrentPmSyncJob"]
        ctx = RecordingRunContext(job.settings)
        ctx.recorder.on("reval.retry", ctx.cancel)
        with pytest.raises(RunCancelled):
            job.body(ctx)
        assert len(ctx.waits) == 1

    def test_without_a_broker_the_jobs_are_disabled_with_the_reason(self, tmp_path: Path) -> None:
        built = search_and_reval_jobs(
            PackContext(state_dir=tmp_path, settings=None), TisSettings(), env={}
        )
        reasons = {s.name: s.disabled_reason for s in built}
        assert reasons == {
            "PersonElasticSearchJob": None,
            "PostElasticSearchJob": None,
            "RevalCurrentPmSyncJob": NO_BROKER,
            "RevalCurrentPlacementSyncJob": NO_BROKER,
        }
        assert "amqp_url" in NO_BROKER

    def test_a_disabled_job_is_refused_and_shows_as_disabled(self, tmp_path: Path) -> None:
        """Through the daemon's job beans: status DISABLED with the reason, runs refused."""
        spec = next(
            s
            for s in search_and_reval_jobs(
                PackContext(state_dir=tmp_path, settings=None), TisSettings(), env={}
            )
            if s.name == "RevalCurrentPmSyncJob"
        )

        built = build_service(MemoryLedger(), [spec])
        status = built.jobs.status(spec.name)
        assert (status.state, status.disabled_reason) == (BeanState.DISABLED, NO_BROKER)
        with pytest.raises(BeanDisabledError):
            asyncio.run(built.service.start(StartRequest(bean=spec.name, actor="t")))
