"""Jobs and runs as the JSON the console and its API speak (camelCase, UTC instants)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from syncd.enums import RunState
from syncd.execution.run import Run
from syncd.job import JobSpec
from syncd.ledger.model import RunRecord
from syncd.scheduling.plan import dependants
from syncd.web._http import instant, plain, plain_mapping
from syncd.web.plane import WebPlane


def is_reval(spec: JobSpec) -> bool:
    """The revalidation publishers, which the old page hid on the NIMDTA deployment."""
    key = (spec.job_key or spec.name).lower()
    return key.startswith("reval") or spec.name.lower().startswith("reval")


def hidden(plane: WebPlane, spec: JobSpec) -> bool:
    return "nimdta" in plane.config.profile.lower() and is_reval(spec)


def run_view(record: RunRecord, elapsed: timedelta | None = None) -> dict[str, Any]:
    if elapsed is not None:
        seconds: float | None = elapsed.total_seconds()
    elif record.ended_at is not None:
        seconds = (record.ended_at - record.started_at).total_seconds()
    else:
        seconds = None
    return {
        "runId": record.run_id,
        "job": record.bean,
        "operation": record.operation,
        "arguments": plain_mapping(record.arguments),
        "trigger": record.trigger.value,
        "actor": record.actor,
        "state": record.state.value,
        "outcome": record.outcome.value if record.outcome else None,
        "slotTime": instant(record.slot_time),
        "startedAt": instant(record.started_at),
        "endedAt": instant(record.ended_at),
        "durationSeconds": round(max(seconds, 0.0), 3) if seconds is not None else None,
        "progressDone": record.progress_done,
        "progressTotal": record.progress_total,
        "rowsRead": record.rows_read,
        "rowsWritten": record.rows_written,
        "errorType": record.error_type or None,
        "errorMessage": record.error_message or None,
    }


def live_run_view(plane: WebPlane, target: Run | RunRecord) -> dict[str, Any]:
    """A run as it stands now: a live run's record and elapsed time, else the ledger's."""
    if isinstance(target, Run):
        if target.record.state is RunState.FINISHED:
            return run_view(target.record)
        return run_view(target.record, plane.service.elapsed(target))
    return run_view(target)


def job_view(plane: WebPlane, spec: JobSpec) -> dict[str, Any]:
    status = plane.jobs.status(spec.name)
    plans = plane.service.plans
    plan = plans.get(spec.name)
    run = plane.service.active(spec.name)
    last = status.last_finished
    return {
        "name": spec.name,
        "aliases": list(spec.aliases),
        "jobKey": spec.job_key,
        "description": spec.description,
        "state": status.state.value,
        "disabledReason": status.disabled_reason,
        "hidden": hidden(plane, spec),
        "parameters": [
            {
                "name": p.name,
                "type": p.type.value,
                "description": p.description,
                "required": p.required,
                "default": plain(p.default),
            }
            for p in spec.parameters
        ],
        "schedule": plan.schedule_source if plan else "none",
        "after": list(plan.after) if plan else [],
        "dependants": dependants(plans, spec.name) if plan else [],
        "current": (
            live_run_view(plane, run)
            if run is not None
            # Cluster mode: another replica's run, as of the last heartbeat.
            else run_view(status.current, status.elapsed)
            if status.current is not None
            else None
        ),
        "replica": status.replica or None,  # cluster mode: the replica that runs it
        "last": run_view(last) if last is not None else None,
        # The daemon's one verdict (syncd.execution.health); the page renders it and derives nothing.
        "health": status.verdict.health.value,
        "healthReason": status.verdict.reason or None,
        "needsRerun": status.verdict.needs_rerun,
        "lastSuccessAt": instant(status.last_success.ended_at) if status.last_success else None,
        "nextRunAt": instant(status.next_run_at),
    }


def progress_view(plane: WebPlane, run: Run) -> dict[str, Any]:
    """What changes while a run progresses, without reading the ledger."""
    return {"job": run.record.bean, "current": live_run_view(plane, run)}
