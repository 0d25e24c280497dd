"""`syncctl status` as a monitoring check: which beans are failing or stuck.

The rules, kept deliberately simple (a check must be predictable):

* failing: the bean's last run ended `failed`, `timed_out` or `interrupted`. Cancelled runs were
  an operator's choice; skipped and missed runs did not run at all (a skipped dependant's
  prerequisite is flagged itself); a disabled or paused bean is a choice too.
* stuck: its current run is `cancelling` (the daemon force-stops a run within the job's
  cancel_grace, so one still cancelling when a check looks is worth a look), or, with
  `--stuck-after`, a run has been under way longer than that. BeanStatus carries no job timeout,
  so there is no "past its timeout" rule without the flag.
"""

from __future__ import annotations

from dataclasses import dataclass

from syncctl._render import enum_word, human_duration, run_elapsed
from syncd_api.v1 import management_pb2 as pb

FAILING_OUTCOMES = frozenset(
    {pb.RUN_OUTCOME_FAILED, pb.RUN_OUTCOME_TIMED_OUT, pb.RUN_OUTCOME_INTERRUPTED}
)


@dataclass(frozen=True, slots=True)
class Problem:
    bean: str
    kind: str  # "failing" or "stuck"
    detail: str


def bean_problem(status: pb.BeanStatus, now: float, stuck_after: float | None) -> Problem | None:
    """What is wrong with one bean, or None; a stuck run wins over an older failure."""
    name = status.ref.name
    if status.HasField("current_run"):
        run = status.current_run
        elapsed = run_elapsed(run, now) or 0.0
        if status.state == pb.BEAN_STATE_CANCELLING or run.state == pb.RUN_STATE_CANCELLING:
            return Problem(name, "stuck", f"run {run.run_id} is cancelling")
        if stuck_after is not None and elapsed > stuck_after:
            return Problem(
                name,
                "stuck",
                f"run {run.run_id} has been running for {human_duration(elapsed)} "
                f"(over {human_duration(stuck_after)})",
            )
    if status.last_outcome in FAILING_OUTCOMES:
        outcome = enum_word(pb.RunOutcome, status.last_outcome)
        error = " ".join(status.last_error.split())
        return Problem(name, "failing", f"last run {outcome}" + (f": {error}" if error else ""))
    return None


def problems(
    reply: pb.GetStatusResponse, now: float, stuck_after: float | None = None
) -> list[Problem]:
    found = (bean_problem(status, now, stuck_after) for status in reply.beans)
    return [p for p in found if p is not None]
