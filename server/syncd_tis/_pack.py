"""The `tis` job pack: the seven database jobs of the old TIS-SYNC service, and demo seeding."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import structlog

from syncd.job import JobPack, JobSpec, PackContext, Parameter, ValueType
from syncd_tis import _jobs, _record_status
from syncd_tis._settings import TisSettings, embedded_path
from syncd_tis.commands import register_commands
from syncd_tis.search.jobs import search_and_reval_jobs

log = structlog.get_logger("syncd.tis")

SEED_PERSONS = 2000
SEED = 1

DATE_OVERRIDE = Parameter(
    name=_record_status.PARAMETER,
    type=ValueType.STRING,
    description=(
        "whom to look at: blank = memberships that started today or ended yesterday;"
        " YYYY-MM-DD = started that day or ended the day before; ANY = every person with a"
        " programme membership; NONE = the configured record_status_date_override"
    ),
    validate=_record_status.validate_date_override,
)


def settings_from(ctx: PackContext) -> TisSettings:
    settings = ctx.settings if ctx.settings is not None else TisSettings()
    if not isinstance(settings, TisSettings):
        raise TypeError(f"the tis pack expects TisSettings, got {type(settings).__name__}")
    return settings


# The default timetable (UTC) operators know, the old service's rerun table as dependencies,
# and the old APPLICATION_CRON_* variable of each job.
_TIMETABLE: dict[str, tuple[str, tuple[str, ...], str]] = {
    "PersonOwnerRebuildJob": ("00:05", (), "APPLICATION_CRON_PERSONOWNERREBUILDJOB"),
    "PersonPlacementEmployingBodyTrustJob": (
        "00:09",
        (),
        "APPLICATION_CRON_PERSONPLACEMENTEMPLOYINGBODYTRUSTJOB",
    ),
    "PersonPlacementTrainingBodyTrustJob": (
        "00:29",
        ("PersonPlacementEmployingBodyTrustJob",),
        "APPLICATION_CRON_PERSONPLACEMENTTRAININGBODYTRUSTJOB",
    ),
    "PostEmployingBodyTrustJob": ("01:09", (), "APPLICATION_CRON_POSTEMPLOYINGBODYTRUSTJOB"),
    "PostTrainingBodyTrustJob": (
        "01:19",
        ("PostEmployingBodyTrustJob",),
        "APPLICATION_CRON_POSTTRAININGBODYTRUSTJOB",
    ),
    "PostFundingStatusSyncJob": ("01:45", (), "APPLICATION_CRON_POSTFUNDING_STATUS_SYNCJOB"),
    "PersonRecordStatusJob": ("02:00", (), "APPLICATION_CRON_PERSONRECORDSTATUSJOB"),
}


def build(ctx: PackContext) -> Sequence[JobSpec]:
    """The job specs, each carrying the settings with the database URL made concrete."""
    database_jobs = [
        dataclasses.replace(
            spec,
            default_at=_TIMETABLE[spec.name][0],
            default_after=_TIMETABLE[spec.name][1],
            cron_env=_TIMETABLE[spec.name][2],
        )
        for spec in _database_jobs(ctx)
    ]
    return (*database_jobs, *search_and_reval_jobs(ctx, settings_from(ctx)))


def _database_jobs(ctx: PackContext) -> Sequence[JobSpec]:
    settings = settings_from(ctx).resolved(ctx.state_dir)
    return (
        JobSpec(
            name="PersonOwnerRebuildJob",
            trigger_operation="personOwnerRebuildJob",
            body=_jobs.person_owner_rebuild,
            description=(
                "Rebuilds PersonOwner (each person's owning local office, rules P1-P8) aside and"
                " switches it in one transaction"
            ),
            job_key="personOwnerRebuildJob",
            settings=settings,
            preload=_jobs.JOB_MODULES,
        ),
        JobSpec(
            name="PersonPlacementEmployingBodyTrustJob",
            aliases=("PersonPlacementEmployingBodyJob",),  # its JMX name in the old service
            trigger_operation="doPersonPlacementEmployingBodyFullSync",
            body=_jobs.person_trust_employing_body,
            description=(
                "Recomputes PersonTrust (trusts that employ or train a person through any"
                " placement) and switches it in one transaction"
            ),
            job_key="personPlacementEmployingBodyTrustJob",
            settings=settings,
            preload=_jobs.JOB_MODULES,
        ),
        JobSpec(
            name="PersonPlacementTrainingBodyTrustJob",
            trigger_operation="personPlacementTrainingBodyFullSync",
            body=_jobs.person_trust_training_body,
            description=(
                "Recomputes PersonTrust (both roles, so it is complete on its own) and switches"
                " it in one transaction"
            ),
            job_key="personPlacementTrainingBodyTrustJob",
            settings=settings,
            preload=_jobs.JOB_MODULES,
        ),
        JobSpec(
            name="PostEmployingBodyTrustJob",
            trigger_operation="postEmployingBodyTrustFullSync",
            body=_jobs.post_trust_employing_body,
            description=(
                "Recomputes PostTrust (each post's employing and training body) and switches it"
                " in one transaction"
            ),
            job_key="postEmployingBodyTrustJob",
            settings=settings,
            preload=_jobs.JOB_MODULES,
        ),
        JobSpec(
            name="PostTrainingBodyTrustJob",
            trigger_operation="postTrainingBodyTrustFullSync",
            body=_jobs.post_trust_training_body,
            description=(
                "Recomputes PostTrust (both roles, so it is complete on its own) and switches it"
                " in one transaction"
            ),
            job_key="postTrainingBodyTrustJob",
            settings=settings,
            preload=_jobs.JOB_MODULES,
        ),
        JobSpec(
            name="PersonRecordStatusJob",
            trigger_operation="personRecordStatusJob",
            body=_jobs.person_record_status,
            description=(
                "Sets Person.status (CURRENT with a current programme membership, else INACTIVE)"
                " for the persons chosen by dateOverride"
            ),
            parameters=(DATE_OVERRIDE,),
            job_key="personRecordStatusJob",
            settings=settings,
            preload=_jobs.JOB_MODULES,
        ),
        JobSpec(
            name="PostFundingStatusSyncJob",
            trigger_operation="postFundingStatusSyncJob",
            body=_jobs.post_funding_status,
            description=(
                "Recomputes Post.fundingStatus from the post's fundings for every post, catching"
                " up missed nights"
            ),
            job_key="postFundingStatusSyncJob",
            settings=settings,
            preload=_jobs.JOB_MODULES,
        ),
    )


def seed_demo(ctx: PackContext) -> None:
    """Create the embedded demo database with a small dataset, unless it exists already.

    Does nothing when `source_url` points elsewhere: demo data never goes into a real database.
    The file is built under a temporary name and renamed, so an interrupted seeding leaves
    nothing that would look like a finished database.
    """
    # Here, not at the top: the daemon builds the pack's jobs, and seeds only on request.
    from syncd_tis._db import make_engine
    from syncd_tis._demo import generate
    from syncd_tis._schema import create_schema
    from syncd_tis._search_demo import seed_search_demo

    settings = settings_from(ctx)
    if settings.source_url is not None:
        log.info("tis.demo.skipped", reason="source_url is configured")
        return
    target = embedded_path(ctx.state_dir)
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(target.name + ".seeding")
    _remove_sqlite(scratch)
    engine = make_engine(f"sqlite:///{scratch}", settings)
    try:
        create_schema(engine)
        summary = generate(engine, persons=SEED_PERSONS, seed=SEED)
        seed_search_demo(engine, SEED)
        raw = engine.raw_connection()
        try:
            # Fold the write-ahead log into the file so the rename moves everything.
            cursor = raw.cursor()
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cursor.close()
        finally:
            raw.close()
    finally:
        engine.dispose()
    _remove_sqlite(scratch, keep_main=True)
    os.replace(scratch, target)
    log.info(
        "tis.demo.seeded",
        path=str(target),
        persons=summary.persons,
        rows=sum(summary.rows.values()),
    )


def _remove_sqlite(path: Path, *, keep_main: bool = False) -> None:
    names = [path.name + "-wal", path.name + "-shm"] + ([] if keep_main else [path.name])
    for name in names:
        (path.parent / name).unlink(missing_ok=True)


PACK = JobPack(
    name="tis",
    build=build,
    settings_type=TisSettings,
    description=(
        "The TIS-SYNC nightly jobs: person owner, person/post trusts, statuses, the person and"
        " post search indices, the revalidation publishers"
    ),
    seed_demo=seed_demo,
    commands=register_commands,
)
