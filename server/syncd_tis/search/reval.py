"""The revalidation publishers: RevalCurrentPmSyncJob and RevalCurrentPlacementSyncJob.

Whom (reference §3.10), for day D (today in UTC unless `dateOverride` names another day):

* PM job: distinct ProgrammeMembership.personId whose membership starts on D or ended on D-1;
* placement job: distinct Placement.traineeId whose placement starts on D or ended on D-1.
  (The old job's SQL had the two dates swapped, matching placements that started yesterday or
  end today; this follows the documented intent, like the PM job.)

Each keyset page of ids (ascending, 5,000 by default, no OFFSET) is published as ONE message:
a JSON array of the ids as strings, e.g. `["12","57"]`, to the exchange (default
`reval.exchange`) with routing key `reval.trainee.update`; content type application/json,
persistent, with the `__TypeId__`/`__ContentTypeId__` headers Spring's JSON converter set in
the old service, so TCS's consumer reads it as before.

Delivery: publisher confirms, and `mandatory` so a message no queue is bound for comes back as
an error instead of vanishing. A page is published again (after a reconnect, with exponential
backoff, up to `publish_attempts` times, cut short by a cancel) until the broker confirms it;
a page whose confirm was lost with the connection may reach TCS twice (at least once), which
only makes TCS re-send those trainees again. An unroutable page fails the run at once: no
retry can create the missing binding.

The exchange: if it exists it is used as it is (whatever its type); if not, the publisher
declares it durable and of type `direct` (the consumer binds the exact routing key).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import date, timedelta
from functools import partial
from typing import Any

import pika  # type: ignore[import-untyped]
import pika.exceptions  # type: ignore[import-untyped]
from sqlalchemy import ColumnElement, Engine, func, or_, select

from syncd.job import RunContext
from syncd_tis._db import RetryPolicy, TisError, retrying
from syncd_tis._schema import placement, programme_membership
from syncd_tis.search.retry import with_retries
from syncd_tis.search.settings import RevalSettings, redacted

EXCHANGE_TYPE = "direct"
# What Spring AMQP's Jackson2JsonMessageConverter adds for a Set<String> payload.
SPRING_HEADERS = {"__TypeId__": "java.util.HashSet", "__ContentTypeId__": "java.lang.String"}


def selection(kind: str, day: date) -> tuple[Any, ColumnElement[bool]]:
    """(the person-id column, the condition) of the PM or placement job for day `day`."""
    yesterday = day - timedelta(days=1)
    if kind == "pm":
        pm = programme_membership
        return pm.c.personId, or_(
            pm.c.programmeStartDate == day, pm.c.programmeEndDate == yesterday
        )
    if kind == "placement":
        pl = placement
        return pl.c.traineeId, or_(pl.c.dateFrom == day, pl.c.dateTo == yesterday)
    raise ValueError(f"unknown reval selection {kind!r}")


def count_persons(engine: Engine, column: Any, condition: ColumnElement[bool]) -> int:
    with engine.connect() as conn:
        query = select(func.count(column.distinct())).where(condition, column.is_not(None))
        return int(conn.execute(query).scalar_one())


def id_pages(
    engine: Engine,
    ctx: RunContext,
    column: Any,
    condition: ColumnElement[bool],
    *,
    page_size: int,
    policy: RetryPolicy,
) -> Iterator[list[int]]:
    """The selected person ids, ascending, `page_size` at a time (keyset on the id)."""

    def read(after: int | None) -> list[int]:
        query = (
            select(column)
            .where(condition, column.is_not(None))
            .distinct()
            .order_by(column)
            .limit(page_size)
        )
        if after is not None:
            query = query.where(column > after)
        with engine.connect() as conn:
            return [int(v) for v in conn.execute(query).scalars()]

    last: int | None = None
    while True:
        ids = retrying(
            partial(read, last),
            policy=policy,
            log=ctx.log,
            what="reval id page",
            before_attempt=ctx.raise_if_cancelled,
            wait=ctx.wait_cancelled,
        )
        if not ids:
            return
        yield ids
        last = ids[-1]


def message_body(ids: list[int]) -> bytes:
    """The message of one page: a JSON array of the ids as strings."""
    return json.dumps([str(i) for i in ids], separators=(",", ":")).encode()


def transient(exc: BaseException) -> str | None:
    """Why a publish failure is worth a reconnect and another try, or None."""
    errors = pika.exceptions
    if isinstance(exc, errors.AuthenticationError | errors.ProbableAuthenticationError):
        return None
    if isinstance(exc, errors.ProbableAccessDeniedError | errors.IncompatibleProtocolError):
        return None
    if isinstance(exc, errors.NackError):
        return "the broker refused the message (nack)"
    if isinstance(exc, errors.AMQPConnectionError):
        return f"connection: {type(exc).__name__}"
    if isinstance(exc, errors.ChannelWrongStateError | OSError):
        return f"connection: {type(exc).__name__}"
    return None


class RevalPublisher:
    """One connection with publisher confirms, opened on first use and reopened after a
    failure; `publish` returns once the broker has confirmed the message."""

    def __init__(
        self, settings: RevalSettings, ctx: RunContext, rng: random.Random | None = None
    ) -> None:
        if settings.amqp_url is None:
            raise TisError("no AMQP broker configured ([packs.tis.reval] amqp_url)")
        self._settings = settings
        self._url = settings.amqp_url
        self._ctx = ctx
        self._rng = rng or random.Random()
        self._connection: Any = None
        self._channel: Any = None
        self._policy = RetryPolicy(
            attempts=settings.publish_attempts,
            initial_delay=settings.retry_initial_delay,
            max_delay=settings.retry_max_delay,
        )

    def _connect(self) -> Any:
        if self._channel is not None and self._channel.is_open:
            return self._channel
        self.close()
        params = pika.URLParameters(self._url)
        params.socket_timeout = self._settings.connect_timeout
        params.blocked_connection_timeout = max(60.0, self._settings.connect_timeout)
        params.connection_attempts = 1
        self._connection = pika.BlockingConnection(params)
        channel = self._connection.channel()
        try:
            channel.exchange_declare(exchange=self._settings.exchange, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 404:
                raise
            # Absent: declare it (the broker closed the channel on the passive check).
            channel = self._connection.channel()
            channel.exchange_declare(
                exchange=self._settings.exchange, exchange_type=EXCHANGE_TYPE, durable=True
            )
            self._ctx.log.info(
                "reval.exchange_declared", exchange=self._settings.exchange, type=EXCHANGE_TYPE
            )
        channel.confirm_delivery()
        self._channel = channel
        self._ctx.log.info(
            "reval.connected", broker=redacted(self._url), exchange=self._settings.exchange
        )
        return channel

    def _publish_once(self, body: bytes) -> None:
        self._ctx.raise_if_cancelled()
        try:
            channel = self._connect()
            channel.basic_publish(
                exchange=self._settings.exchange,
                routing_key=self._settings.routing_key,
                body=body,
                properties=pika.BasicProperties(
                    content_type="application/json",
                    content_encoding="UTF-8",
                    delivery_mode=pika.DeliveryMode.Persistent,
                    headers=SPRING_HEADERS,
                ),
                mandatory=True,
            )
        except pika.exceptions.UnroutableError:
            raise TisError(
                f"no queue is bound to exchange {self._settings.exchange!r} with routing key"
                f" {self._settings.routing_key!r}: the message would be lost (is TCS's consumer"
                " set up?)"
            ) from None
        except Exception:
            self.close()  # the next try starts from a fresh connection
            raise

    def publish(self, body: bytes) -> None:
        with_retries(
            partial(self._publish_once, body),
            policy=self._policy,
            transient=transient,
            log=self._ctx.log,
            event="reval.retry",
            what=f"publish to {self._settings.exchange}",
            wait=self._ctx.wait_cancelled,
            rng=self._rng,
        )

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except Exception as exc:  # closing a broken connection: nothing left to save
                self._ctx.log.debug("reval.close_failed", error=str(exc))


def publish_selected(
    engine: Engine,
    ctx: RunContext,
    *,
    kind: str,
    day: date,
    settings: RevalSettings,
    policy: RetryPolicy,
    publisher: RevalPublisher,
) -> tuple[int, int]:
    """Publish every page of the persons `kind` selects for `day`; returns (pages, ids)."""
    column, condition = selection(kind, day)
    total = count_persons(engine, column, condition)
    ctx.report_progress(0, total)
    ctx.log.info("reval.selected", selection=kind, day=day.isoformat(), persons=total)
    pages = sent = 0
    for ids in id_pages(
        engine, ctx, column, condition, page_size=settings.page_size, policy=policy
    ):
        ctx.raise_if_cancelled()
        publisher.publish(message_body(ids))
        pages += 1
        sent += len(ids)
        ctx.add_rows(read=len(ids), written=len(ids))
        ctx.report_progress(sent, max(total, sent))
        ctx.log.info("reval.page_published", selection=kind, page=pages, ids=len(ids))
    ctx.log.info("reval.done", selection=kind, day=day.isoformat(), pages=pages, persons=sent)
    return pages, sent
