"""The four jobs as the daemon sees them: specs, bodies and the `search` operation.

`search_and_reval_jobs(ctx, settings)` returns the JobSpecs; the tis pack adds them to its own.
Bodies are module-level functions taking everything from `ctx.settings` (a picklable frozen
dataclass), so they run in a child process like the other tis jobs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Table, func, select

from syncd.job import (
    Invocation,
    JobSpec,
    Operation,
    PackContext,
    Parameter,
    Result,
    RunContext,
    Value,
    ValueType,
)
from syncd_tis import _fencing
from syncd_tis._db import RetryPolicy, TisError, job_engine, retrying
from syncd_tis._jobs import require_tables
from syncd_tis._schema import person, post
from syncd_tis._settings import TisSettings, parse_iso_date
from syncd_tis.search import mappings, persons, posts
from syncd_tis.search.embedded import EmbeddedSearcher, EmbeddedSink
from syncd_tis.search.settings import (
    RevalSettings,
    SearchSettings,
    reval_from_env,
    search_from_env,
)
from syncd_tis.search.sink import Document, SearchError, Sink

S = TypeVar("S")
INDEX_DIR = "search"  # under the state directory
MAX_LIMIT = 1000
DATE_PARAMETER = "dateOverride"


@dataclass(frozen=True, slots=True)
class IndexKind:
    """What differs between the persons and the posts index."""

    key: str  # "persons" or "posts"
    table: Table
    tables: tuple[str, ...]
    page: Callable[[Connection, int | None, int, date], list[Document]]
    mappings: dict[str, Any]
    search_fields: tuple[str, ...]

    def alias(self, search: SearchSettings) -> str:
        return search.person_index if self.key == "persons" else search.post_index


PERSONS = IndexKind(
    "persons", person, persons.TABLES, persons.page, mappings.PERSONS, mappings.PERSON_SEARCH_FIELDS
)
POSTS = IndexKind(
    "posts", post, posts.TABLES, posts.page, mappings.POSTS, mappings.POST_SEARCH_FIELDS
)
KINDS = {k.key: k for k in (PERSONS, POSTS)}


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexJobSettings:
    """What an index job's body gets as `ctx.settings`."""

    tis: TisSettings  # resolved: source_url is set
    search: SearchSettings
    index_dir: Path  # where the embedded sink keeps its files
    kind: str  # a key of KINDS


@dataclass(frozen=True, slots=True, kw_only=True)
class RevalJobSettings:
    """What a reval job's body gets as `ctx.settings`."""

    tis: TisSettings
    reval: RevalSettings
    selection: str  # "pm" or "placement"


def utc_today() -> date:
    return datetime.now(UTC).date()


def _settings(ctx: RunContext, kind: type[S]) -> S:
    settings = ctx.settings
    if not isinstance(settings, kind):
        raise TisError(f"this job needs {kind.__name__} (built by search_and_reval_jobs)")
    return settings


# ---- the index jobs ------------------------------------------------------------------------


def open_sink(settings: IndexJobSettings, kind: IndexKind, ctx: RunContext) -> Sink:
    alias = kind.alias(settings.search)
    if settings.search.embedded:
        return EmbeddedSink(settings.index_dir, alias, ctx.log)
    # Imported here: the Elasticsearch client costs the idle daemon ~30 MB it never uses.
    from syncd_tis.search.elastic import ElasticsearchSink, make_client, policy_of

    return ElasticsearchSink(
        make_client(settings.search),
        alias,
        kind.mappings,
        max_bytes=settings.search.bulk_max_bytes,
        policy=policy_of(settings.search),
        log=ctx.log,
        wait=ctx.wait_cancelled,
    )


def _read_page(
    engine: Engine, kind: IndexKind, after: int | None, size: int, today: date
) -> list[Document]:
    with engine.connect() as conn:
        return kind.page(conn, after, size, today)


def build_index(ctx: RunContext, kind: IndexKind) -> int:
    """Build `kind`'s index aside from the database and switch to it; returns documents."""
    settings = _settings(ctx, IndexJobSettings)
    alias = kind.alias(settings.search)
    today = utc_today()
    with job_engine(settings.tis) as engine:
        require_tables(engine, *kind.tables)
        _fencing.prepare(engine, ctx)
        with engine.connect() as conn:
            total = int(conn.execute(select(func.count()).select_from(kind.table)).scalar_one())
        ctx.report_progress(0, total)
        sink = open_sink(settings, kind, ctx)
        ctx.log.info(
            "search.index.start",
            index=alias,
            sink="embedded" if settings.search.embedded else "elasticsearch",
            expected=total,
        )
        try:
            sink.begin()
            last: int | None = None
            while True:
                batch = retrying(
                    partial(_read_page, engine, kind, last, settings.search.page_size, today),
                    policy=RetryPolicy.of(settings.tis),
                    log=ctx.log,
                    what=f"{alias} page",
                    before_attempt=ctx.raise_if_cancelled,
                    wait=ctx.wait_cancelled,
                )
                if not batch:
                    break
                sink.write(batch)
                last = batch[-1].id
                ctx.add_rows(read=len(batch), written=len(batch))
                ctx.report_progress(sink.written, max(total, sink.written))
                ctx.log.info("search.index.page", index=alias, documents=sink.written)
                ctx.raise_if_cancelled()
            # The fence row stays locked while the switch is made: a run that lost its lease
            # switches nothing, and a newer run's switch waits for this one's to end.
            with engine.begin() as conn:
                _fencing.hold(conn, ctx)
                sink.commit()
        except BaseException:
            sink.abort()
            raise
    ctx.log.info("search.index.done", index=alias, documents=sink.written)
    return sink.written


def person_index(ctx: RunContext) -> None:
    """PersonElasticSearchJob: the persons index."""
    build_index(ctx, PERSONS)


def post_index(ctx: RunContext) -> None:
    """PostElasticSearchJob: the posts index."""
    build_index(ctx, POSTS)


def searcher(settings: IndexJobSettings, kind: IndexKind) -> Any:
    alias = kind.alias(settings.search)
    if settings.search.embedded:
        return EmbeddedSearcher(settings.index_dir, alias)
    from syncd_tis.search.elastic import ElasticsearchSearcher, make_client

    return ElasticsearchSearcher(make_client(settings.search), alias, kind.search_fields)


def search(settings: IndexJobSettings, kind: IndexKind, invocation: Invocation) -> Result:
    """The `search` operation: matching documents, best first, from the configured sink."""
    query = str(invocation.arguments.get("query") or "")
    given = invocation.arguments.get("limit")
    limit = given if isinstance(given, int) and not isinstance(given, bool) else 10
    found = searcher(settings, kind)
    try:
        documents = found.search(query, limit)
    except SearchError as exc:
        return Result(value=[], message=str(exc))
    finally:
        close = getattr(found, "close", None)  # the Elasticsearch searcher holds a client
        if close is not None:
            close()
    return Result(value=documents, message=f"{len(documents)} document(s)")


def _validate_limit(value: Value) -> Value:
    if not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise ValueError(f"must be between 1 and {MAX_LIMIT}, got {value!r}")
    return value


def search_operation(settings: IndexJobSettings, kind: IndexKind) -> Operation:
    return Operation(
        name="search",
        handler=partial(search, settings, kind),
        description=(
            f"Search the {kind.alias(settings.search)} index (every word must match, as a"
            " prefix in the embedded index); returns the matching documents as JSON"
        ),
        parameters=(
            Parameter(
                name="query",
                type=ValueType.STRING,
                description="words to look for: names, GMC/GDC numbers, ids…",
                required=True,
            ),
            Parameter(
                name="limit",
                type=ValueType.INT,
                description=f"most documents to return (1-{MAX_LIMIT})",
                default=10,
                validate=_validate_limit,
            ),
        ),
        returns=ValueType.JSON,
        blocking=True,
    )


# ---- the reval jobs ------------------------------------------------------------------------


def validate_day(value: Value) -> Value:
    """Blank (today) or YYYY-MM-DD."""
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__}")
    text = value.strip()
    if text:
        parse_iso_date(text)
    return text


def reval_day(ctx: RunContext) -> date:
    text = validate_day(ctx.args.get(DATE_PARAMETER) or "")
    return parse_iso_date(str(text)) if text else utc_today()


def _publish(ctx: RunContext) -> None:
    settings = _settings(ctx, RevalJobSettings)
    day = reval_day(ctx)
    tables = ("ProgrammeMembership",) if settings.selection == "pm" else ("Placement",)
    # Imported here: pika is needed only while a reval job runs, never by the idle daemon.
    from syncd_tis.search.reval import RevalPublisher, publish_selected

    with job_engine(settings.tis) as engine:
        require_tables(engine, *tables)
        publisher = RevalPublisher(settings.reval, ctx)
        try:
            publish_selected(
                engine,
                ctx,
                kind=settings.selection,
                day=day,
                settings=settings.reval,
                policy=RetryPolicy.of(settings.tis),
                publisher=publisher,
            )
        finally:
            publisher.close()


def reval_current_pm(ctx: RunContext) -> None:
    """RevalCurrentPmSyncJob."""
    _publish(ctx)


def reval_current_placement(ctx: RunContext) -> None:
    """RevalCurrentPlacementSyncJob."""
    _publish(ctx)


DAY_PARAMETER = Parameter(
    name=DATE_PARAMETER,
    type=ValueType.STRING,
    description=(
        "the day D whose changes to publish: blank = today; YYYY-MM-DD to replay a missed"
        " night (started on D or ended on D-1)"
    ),
    validate=validate_day,
)
NO_BROKER = "no AMQP broker configured: set [packs.tis.reval] amqp_url or RABBITMQ_*"


# ---- the specs -----------------------------------------------------------------------------


def _nested(settings: object, name: str, kind: type[S]) -> S:
    """`settings.<name>` once TisSettings carries it, else the defaults."""
    value = getattr(settings, name, None)
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise TypeError(f"settings.{name} must be {kind.__name__}, got {type(value).__name__}")
    return value


def search_and_reval_jobs(
    ctx: PackContext,
    settings: TisSettings,
    *,
    search: SearchSettings | None = None,
    reval: RevalSettings | None = None,
    env: Mapping[str, str] | None = None,
) -> list[JobSpec]:
    """The two index jobs and the two reval publishers.

    `search` / `reval` default to `settings.search` / `settings.reval` (the `[packs.tis.search]`
    and `[packs.tis.reval]` tables), then the old environment variables fill what they leave
    unset (`env`, default os.environ).
    """
    env = os.environ if env is None else env
    tis = settings.resolved(ctx.state_dir)
    search_settings = search_from_env(search or _nested(settings, "search", SearchSettings), env)
    reval_settings = reval_from_env(reval or _nested(settings, "reval", RevalSettings), env)
    index_dir = ctx.state_dir / INDEX_DIR
    where = (
        f"<state_dir>/{INDEX_DIR}/<index>.sqlite3 (embedded full-text index)"
        if search_settings.embedded
        else "Elasticsearch (new index per run, then an atomic alias switch)"
    )

    def index_settings(kind: IndexKind) -> IndexJobSettings:
        return IndexJobSettings(tis=tis, search=search_settings, index_dir=index_dir, kind=kind.key)

    person_settings, post_settings = index_settings(PERSONS), index_settings(POSTS)
    disabled = NO_BROKER if reval_settings.amqp_url is None else None
    return [
        JobSpec(
            name="PersonElasticSearchJob",
            aliases=("PersonElasticSearchSyncJob",),  # the old timetable's (class) name
            trigger_operation="personElasticSearchSync",
            body=person_index,
            description=(
                f"Rebuilds the {search_settings.person_index} search index (one document per"
                f" person) aside in {where}; searchers keep the previous index until the switch"
            ),
            extra_operations=(search_operation(person_settings, PERSONS),),
            job_key="personElasticSearchSyncJob",
            settings=person_settings,
            default_at="01:29",
            default_after=(
                "PersonOwnerRebuildJob",
                "PersonPlacementEmployingBodyTrustJob",
                "PersonPlacementTrainingBodyTrustJob",
                "PersonRecordStatusJob",
            ),
            cron_env="APPLICATION_CRON_PERSONELASTICSEARCHJOB",
        ),
        JobSpec(
            name="PostElasticSearchJob",
            aliases=("PostElasticSearchSyncJob",),  # the old timetable's (class) name
            trigger_operation="postElasticSearchSync",
            body=post_index,
            description=(
                f"Rebuilds the {search_settings.post_index} search index (one document per"
                f" post) aside in {where}; searchers keep the previous index until the switch"
            ),
            extra_operations=(search_operation(post_settings, POSTS),),
            job_key="postElasticSearchSyncJob",
            settings=post_settings,
            default_at="01:55",
            default_after=(
                "PostEmployingBodyTrustJob",
                "PostTrainingBodyTrustJob",
                "PostFundingStatusSyncJob",
            ),
            cron_env="APPLICATION_CRON_POSTELASTICSEARCHJOB",
        ),
        JobSpec(
            name="RevalCurrentPmSyncJob",
            trigger_operation="revalCurrentPmSyncJob",
            body=reval_current_pm,
            description=(
                "Publishes the ids of persons whose programme membership starts today or ended"
                f" yesterday to {reval_settings.exchange} ({reval_settings.routing_key}), a page"
                " per message, with publisher confirms"
            ),
            parameters=(DAY_PARAMETER,),
            job_key="revalCurrentPmJob",
            settings=RevalJobSettings(tis=tis, reval=reval_settings, selection="pm"),
            disabled_reason=disabled,
            default_at="01:39",
            cron_env="APPLICATION_CRON_REVALCURRENTPMJOB",
        ),
        JobSpec(
            name="RevalCurrentPlacementSyncJob",
            trigger_operation="revalCurrentPlacementSyncJob",
            body=reval_current_placement,
            description=(
                "Publishes the ids of persons whose placement starts today or ended yesterday"
                f" to {reval_settings.exchange} ({reval_settings.routing_key}), a page per"
                " message, with publisher confirms"
            ),
            parameters=(DAY_PARAMETER,),
            job_key="revalCurrentPlacementJob",
            settings=RevalJobSettings(tis=tis, reval=reval_settings, selection="placement"),
            disabled_reason=disabled,
            default_at="01:49",
            cron_env="APPLICATION_CRON_REVALCURRENTPLACEMENTJOB",
        ),
    ]
