"""Following `run-all` through the daemon's events, without the daemon telling us its run ids.

RunAll answers with the planned jobs only; the daemon then runs them one after another in the
background. The tracker settles the jobs strictly in plan order, which keeps it right when other
runs happen meanwhile:

* it only looks at events for the job the chain is on (the first unsettled one): a scheduled or
  manual run of a later job, or one that ends before the chain gets there, is ignored;
* `run.started` for that job records its run id, and then only that run's `run.finished` counts;
* a `run.finished` without a seen start counts too: the chain joins a run of that job that was
  already under way, and its result stands for the chain's (as the daemon does);
* `run.skipped` (prerequisite failed, job disabled) settles the job as well.

Events alone are not enough: WatchEvents says nothing when it has subscribed, so the first
events after RunAll can be lost (a quick first job may even end before the subscription), and a
slow watcher can lose events later. So the ledger is the fallback: `reconcile` settles the
current job from its recent runs (History), taking only a run that started after RunAll was
asked for (and, once its start was seen, only that run). The caller reconciles when events were
missed, when an event shows the chain has moved past the current job, and after a quiet spell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from syncctl._render import enum_word
from syncd_api.v1 import management_pb2 as pb

_TERMINAL = ("run.finished", "run.skipped", "run.missed")
# Clock slack when matching ledger runs to "started after RunAll" (the daemon is on this host).
_SLACK = 1.0


@dataclass(frozen=True, slots=True)
class Settled:
    """A job of the plan that has ended, with the run that stands for it."""

    bean: str
    run_id: str
    outcome: str


@dataclass
class RunAllTracker:
    jobs: Sequence[str]
    since: float = 0.0  # when RunAll was asked for (seconds since the epoch)
    settled: list[Settled] = field(default_factory=list)
    _run_id: str = ""  # the chain's run of the current job, once known

    @property
    def current(self) -> str | None:
        """The job the chain is on; None when every job has ended."""
        return self.jobs[len(self.settled)] if len(self.settled) < len(self.jobs) else None

    @property
    def done(self) -> bool:
        return self.current is None

    @property
    def remaining(self) -> list[str]:
        return list(self.jobs[len(self.settled) :])

    def _settle(self, bean: str, run_id: str, outcome: str) -> Settled:
        result = Settled(bean, run_id, outcome)
        self.settled.append(result)
        self._run_id = ""
        return result

    def feed(self, event: pb.DaemonEvent) -> Settled | None:
        """Take one event; the job it settled, if any."""
        current = self.current
        if current is None or event.bean != current:
            return None
        if event.kind == "run.started":
            self._run_id = self._run_id or event.run_id
            return None
        if event.kind not in _TERMINAL:
            return None
        if self._run_id and event.run_id != self._run_id:
            return None
        return self._settle(current, event.run_id, event.outcome)

    def moved_on(self, event: pb.DaemonEvent) -> bool:
        """True when `event` is about a later job of the plan starting: the chain only gets
        there after the current job has ended, so that end may have been missed."""
        return event.kind == "run.started" and event.bean in self.jobs[len(self.settled) + 1 :]

    def reconcile(self, recent: Sequence[pb.RunInfo], *, ended: bool = False) -> Settled | None:
        """Settle the current job from its recent runs (newest first, as History sends them),
        or learn which run is the chain's if it is still under way.

        `ended`: the chain is known to have moved on (see `moved_on`). Then, if no run started
        after RunAll, the chain joined one already under way: its newest finished run.
        """
        current = self.current
        if current is None:
            return None
        mine = [r for r in recent if r.bean == current]
        ours = [
            run
            for run in mine
            if run.started_at.seconds + run.started_at.nanos / 1e9 >= self.since - _SLACK
            and (not self._run_id or run.run_id == self._run_id)
        ]
        if not ours and ended:
            ours = [r for r in mine if r.state == pb.RUN_STATE_FINISHED][:1]
        if not ours:
            return None
        run = ours[-1]  # the oldest: the chain runs each job once, and first
        if run.state != pb.RUN_STATE_FINISHED:
            self._run_id = run.run_id
            return None
        return self._settle(current, run.run_id, enum_word(pb.RunOutcome, run.outcome))
