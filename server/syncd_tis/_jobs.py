"""The job bodies: thin adapters from a run's context to the job modules.

Bodies are module-level functions and take everything from `ctx` (settings included), so the
daemon can run them on a thread or in a child process alike. The job modules (and the SQL
dialects they build statements with) are imported by the bodies, when they run: the daemon,
which only names the bodies, never loads them; the fork server does, once (JOB_MODULES, each
spec's `preload`), so a job process starts with them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime

from sqlalchemy import Engine, inspect, make_url

from syncd.job import RunContext
from syncd_tis import _record_status
from syncd_tis._db import RetryPolicy, TisError, job_engine, retrying
from syncd_tis._schema import TCS
from syncd_tis._settings import TisSettings

JOB_MODULES = ("syncd_tis._owner", "syncd_tis._trusts", "syncd_tis._funding")


def utc_today() -> date:
    """Today in UTC, the daemon's only zone (the old service ran its containers in UTC)."""
    return datetime.now(UTC).date()


def settings_of(ctx: RunContext) -> TisSettings:
    settings = ctx.settings
    if not isinstance(settings, TisSettings) or settings.source_url is None:
        raise TisError("the TIS jobs need resolved TisSettings (built by the tis pack)")
    return settings


def require_tables(engine: Engine, *names: str) -> None:
    """Fail early, and plainly, when the database lacks a table the job needs."""
    present = set(inspect(engine).get_table_names())
    missing = [n for n in names if n not in present]
    if missing:
        where = make_url(str(engine.url)).render_as_string(hide_password=True)
        raise TisError(
            f"database {where} has no table {', '.join(missing)}; "
            "point [packs.tis] source_url at the TCS schema, or run `syncd db init` for a new one"
        )


def _tables(*names: str) -> tuple[str, ...]:
    assert all(n in TCS.tables for n in names)
    return names


OWNER_TABLES = _tables(
    "Person", "ProgrammeMembership", "Programme", "Placement", "Post", "PersonOwner"
)
PERSON_TRUST_TABLES = _tables("Person", "Placement", "Post", "PersonTrust")
POST_TRUST_TABLES = _tables("Post", "PostTrust")
RECORD_STATUS_TABLES = _tables("Person", "ProgrammeMembership")
FUNDING_TABLES = _tables("Post", "PostFunding")


def person_owner_rebuild(ctx: RunContext) -> None:
    """PersonOwnerRebuildJob."""

    from syncd_tis import _owner

    def rebuild(engine: Engine, ctx: RunContext, *, settings: TisSettings) -> object:
        # Today is read per attempt: a retry after midnight uses the new day, as before.
        return _owner.rebuild(engine, ctx, today=utc_today(), settings=settings)

    _rebuild(ctx, OWNER_TABLES, rebuild, "PersonOwner rebuild")


def _rebuild(
    ctx: RunContext, tables: Sequence[str], work: Callable[..., object], what: str
) -> None:
    """Open the job's engine, check its tables, and run `work(engine, ctx, settings=…)` as one
    retried unit."""
    settings = settings_of(ctx)
    with job_engine(settings) as engine:
        require_tables(engine, *tables)
        retrying(
            lambda: work(engine, ctx, settings=settings),
            policy=RetryPolicy.of(settings),
            log=ctx.log,
            what=what,
            before_attempt=ctx.raise_if_cancelled,
            wait=ctx.wait_cancelled,
        )


def _person_trusts(ctx: RunContext) -> None:
    from syncd_tis import _trusts

    _rebuild(ctx, PERSON_TRUST_TABLES, _trusts.rebuild_person_trusts, "PersonTrust rebuild")


def _post_trusts(ctx: RunContext) -> None:
    from syncd_tis import _trusts

    _rebuild(ctx, POST_TRUST_TABLES, _trusts.rebuild_post_trusts, "PostTrust rebuild")


def person_trust_employing_body(ctx: RunContext) -> None:
    """PersonPlacementEmployingBodyTrustJob: the complete PersonTrust set (see _trusts)."""
    _person_trusts(ctx)


def person_trust_training_body(ctx: RunContext) -> None:
    """PersonPlacementTrainingBodyTrustJob: the complete PersonTrust set (see _trusts)."""
    _person_trusts(ctx)


def post_trust_employing_body(ctx: RunContext) -> None:
    """PostEmployingBodyTrustJob: the complete PostTrust set (see _trusts)."""
    _post_trusts(ctx)


def post_trust_training_body(ctx: RunContext) -> None:
    """PostTrainingBodyTrustJob: the complete PostTrust set (see _trusts)."""
    _post_trusts(ctx)


def person_record_status(ctx: RunContext) -> None:
    """PersonRecordStatusJob; the argument is checked before the database is touched."""
    settings = settings_of(ctx)
    today = utc_today()
    sel = _record_status.selection(
        ctx.args.get(_record_status.PARAMETER),
        configured=settings.record_status_date_override,
        today=today,
    )
    with job_engine(settings) as engine:
        require_tables(engine, *RECORD_STATUS_TABLES)
        _record_status.recompute(
            engine,
            ctx,
            sel=sel,
            today=today,
            page_size=settings.page_size,
            policy=RetryPolicy.of(settings),
        )


def post_funding_status(ctx: RunContext) -> None:
    """PostFundingStatusSyncJob."""
    from syncd_tis import _funding

    settings = settings_of(ctx)
    with job_engine(settings) as engine:
        require_tables(engine, *FUNDING_TABLES)
        _funding.recompute(
            engine,
            ctx,
            today=utc_today(),
            page_size=settings.page_size,
            policy=RetryPolicy.of(settings),
        )
