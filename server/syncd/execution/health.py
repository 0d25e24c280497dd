"""The one definition of a job's health: failing, stuck, and whether it needs a re-run.

The daemon computes it in its status projection and ships it in every status message (gRPC
BeanStatus, the console's job JSON, /metrics); `syncctl status`, the metrics and the page only
render it, and the scheduler asks the same rule whether a prerequisite blocks its dependants.

* failing: the job's last executed run ended `failed`, `timed_out` or `interrupted`. A cancelled
  run was an operator's choice (or the daemon's shutdown), so it is not a failure; skipped and
  missed runs did not run at all (a skipped dependant's prerequisite is flagged itself).
* stuck: its current run is cancelling (the daemon force-stops a run within its cancel_grace,
  so one still cancelling when a check looks is worth a look), or has been under way longer
  than the stuck threshold. A stuck run wins over an older failure.
* needs re-run: the last executed run did not complete — failed, timed out, interrupted or
  cancelled — so what it writes, and what its dependants read, is stale until a run succeeds.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from syncd.enums import RunOutcome, RunState
from syncd.ledger.model import RunRecord

FAILING_OUTCOMES = frozenset({RunOutcome.FAILED, RunOutcome.TIMED_OUT, RunOutcome.INTERRUPTED})
INCOMPLETE_OUTCOMES = FAILING_OUTCOMES | {RunOutcome.CANCELLED}
# A prerequisite whose last run did not complete within this long blocks its dependants'
# scheduled runs; older than that, the operator has had a day to act and the chain goes on.
RERUN_MEMORY = timedelta(hours=24)
REASON_LIMIT = 300  # characters of a run's error quoted in a reason


class Health(enum.StrEnum):
    OK = "ok"
    FAILING = "failing"
    STUCK = "stuck"


@dataclass(frozen=True, slots=True)
class Verdict:
    health: Health
    reason: str  # why, for a person; "" when OK
    needs_rerun: bool


def is_failing(last: RunRecord | None) -> bool:
    return last is not None and last.outcome in FAILING_OUTCOMES


def needs_rerun(last: RunRecord | None) -> bool:
    return last is not None and last.outcome in INCOMPLETE_OUTCOMES


def blocks_dependants(last: RunRecord | None, now: datetime) -> bool:
    """Does this prerequisite's last executed run hold back its dependants' scheduled runs?"""
    return last is not None and needs_rerun(last) and last.started_at >= now - RERUN_MEMORY


def stuck_threshold(
    asked: timedelta | None, timeout: float, cancel_grace: float
) -> timedelta | None:
    """The operator's threshold when given; else the job's timeout plus its cancel grace (by
    then the daemon has ended the run itself); else none: a job without a timeout may run
    as long as it needs."""
    if asked is not None:
        return asked
    if timeout > 0:
        return timedelta(seconds=timeout + cancel_grace)
    return None


def judge(
    last: RunRecord | None,
    current: RunRecord | None,
    elapsed: timedelta | None,
    stuck_after: timedelta | None,
) -> Verdict:
    """The verdict over the last executed run and the run under way (with its elapsed time)."""
    rerun = needs_rerun(last)
    if current is not None:
        if current.state is RunState.CANCELLING:
            return Verdict(Health.STUCK, f"run {current.run_id} is cancelling", rerun)
        if stuck_after is not None and elapsed is not None and elapsed > stuck_after:
            return Verdict(
                Health.STUCK,
                f"run {current.run_id} has been running for {short_duration(elapsed)} "
                f"(over {short_duration(stuck_after)})",
                rerun,
            )
    if last is not None and is_failing(last):
        assert last.outcome is not None
        return Verdict(Health.FAILING, f"last run {last.outcome.value}{_error(last)}", rerun)
    return Verdict(Health.OK, "", rerun)


def _error(record: RunRecord) -> str:
    text = f"{record.error_type}: {record.error_message}" if record.error_type else ""
    text = text or record.error_message
    text = " ".join(text.split())  # one line, for a check's output
    if len(text) > REASON_LIMIT:
        text = text[: REASON_LIMIT - 1] + "…"
    return f": {text}" if text else ""


def short_duration(span: timedelta) -> str:
    """42s, 3m12s, 2h05m, 3d04h: as `syncctl` shows durations."""
    total = int(span.total_seconds())
    if total < 60:
        return f"{max(total, 0)}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"
