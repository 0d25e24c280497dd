"""Following run-all by events: the tracker settles jobs strictly in plan order."""

from __future__ import annotations

from syncctl._runall import RunAllTracker, Settled
from syncd_api.v1 import management_pb2 as pb

PLAN = ["Owner", "Emp", "Train"]


def event(kind: str, bean: str = "", run_id: str = "", **fields: object) -> pb.DaemonEvent:
    """A DaemonEvent as the tracker receives it (the tracker is tested on its own here)."""
    message = pb.DaemonEvent(kind=kind, bean=bean, run_id=run_id, **fields)  # type: ignore[arg-type]
    message.at.FromSeconds(1_700_000_000)
    return message


def finished(bean: str, run_id: str, outcome: str = "success") -> pb.DaemonEvent:
    return event("run.finished", bean, run_id, outcome=outcome)


def run(
    run_id: str,
    bean: str,
    *,
    at: int,
    outcome: int = pb.RUN_OUTCOME_SUCCESS,
    finished: bool = True,
) -> pb.RunInfo:
    """A run as History returns it."""
    info = pb.RunInfo(run_id=run_id, bean=bean)
    info.started_at.FromSeconds(at)
    if finished:
        info.state, info.outcome = pb.RUN_STATE_FINISHED, outcome  # type: ignore[assignment]
    else:
        info.state = pb.RUN_STATE_RUNNING
    return info


class TestRunAllTracker:
    def test_settles_each_job_on_its_runs_end(self) -> None:
        """started, then finished with the same id: settled, and the chain moves on."""
        tracker = RunAllTracker(PLAN)
        assert tracker.feed(event("run.started", "Owner", "r1")) is None
        assert tracker.feed(finished("Owner", "r1")) == Settled("Owner", "r1", "success")
        assert tracker.current == "Emp"

    def test_ignores_other_beans_and_later_jobs(self) -> None:
        """A scheduled run of a later job that ends first is not the chain's."""
        tracker = RunAllTracker(PLAN)
        assert tracker.feed(finished("Train", "x1")) is None
        assert tracker.feed(finished("Elsewhere", "x2")) is None
        assert tracker.remaining == PLAN

    def test_only_the_started_runs_end_counts(self) -> None:
        """Once the chain's run id is known, another run's end of that job is ignored."""
        tracker = RunAllTracker(PLAN)
        tracker.feed(event("run.started", "Owner", "r1"))
        assert tracker.feed(finished("Owner", "other")) is None
        assert tracker.feed(finished("Owner", "r1", "failed")) == Settled("Owner", "r1", "failed")

    def test_an_end_without_a_start_is_a_joined_run(self) -> None:
        """The chain joined a run already under way: its end settles the job."""
        tracker = RunAllTracker(PLAN)
        assert tracker.feed(finished("Owner", "earlier")) == Settled("Owner", "earlier", "success")

    def test_skipped_settles_the_job(self) -> None:
        """A dependant skipped because its prerequisite failed is settled as such."""
        tracker = RunAllTracker(["Emp", "Train"])
        tracker.feed(finished("Emp", "r1", "failed"))
        skipped = event("run.skipped", "Train", "r2", outcome="skipped_prerequisite_failed")
        assert tracker.feed(skipped) == Settled("Train", "r2", "skipped_prerequisite_failed")
        assert tracker.done

    def test_progress_does_not_settle(self) -> None:
        """Progress events are not ends."""
        tracker = RunAllTracker(PLAN)
        assert tracker.feed(event("run.progress", "Owner", "r1", progress_done=1)) is None

    def test_reconcile_takes_the_oldest_run_since_run_all(self) -> None:
        """From History (newest first): the chain's run is the first one after RunAll; older
        runs of the job are someone else's."""
        tracker = RunAllTracker(PLAN, since=1000.0)
        recent = [
            run("r3", "Owner", at=1005, outcome=pb.RUN_OUTCOME_FAILED),
            run("r2", "Owner", at=1001),
            run("r1", "Owner", at=500),
        ]
        assert tracker.reconcile(recent) == Settled("Owner", "r2", "success")
        assert tracker.current == "Emp"

    def test_reconcile_learns_a_run_still_under_way(self) -> None:
        """A chain run not finished yet is not settled, but from then on only its end counts."""
        tracker = RunAllTracker(PLAN, since=1000.0)
        assert tracker.reconcile([run("r2", "Owner", at=1001, finished=False)]) is None
        assert tracker.feed(finished("Owner", "other")) is None
        assert tracker.feed(finished("Owner", "r2")) == Settled("Owner", "r2", "success")

    def test_reconcile_ignores_runs_from_before(self) -> None:
        """Nothing since RunAll: nothing settled."""
        tracker = RunAllTracker(PLAN, since=1000.0)
        assert tracker.reconcile([run("r1", "Owner", at=900)]) is None
        assert tracker.remaining == PLAN

    def test_reconcile_after_the_chain_moved_on_takes_a_joined_run(self) -> None:
        """Known ended, and nothing started since RunAll: the chain joined an earlier run."""
        tracker = RunAllTracker(PLAN, since=1000.0)
        recent = [run("r1", "Owner", at=900), run("r0", "Owner", at=800)]
        assert tracker.reconcile(recent, ended=True) == Settled("Owner", "r1", "success")

    def test_moved_on_is_a_later_job_starting(self) -> None:
        """A start of a later planned job means the current one has ended."""
        tracker = RunAllTracker(PLAN)
        assert tracker.moved_on(event("run.started", "Train", "r9"))
        assert not tracker.moved_on(event("run.started", "Owner", "r1"))
        assert not tracker.moved_on(event("run.finished", "Train", "r9"))
        assert not tracker.moved_on(event("run.started", "Elsewhere", "r8"))

    def test_an_empty_plan_is_done(self) -> None:
        """No enabled jobs: nothing to wait for."""
        assert RunAllTracker([]).done
